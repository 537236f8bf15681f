// Pieces every admin page uses: the error line, the status line, and a button that asks first.
import type { ComponentChildren } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';

/** The API's error message, announced (role="alert") and scrolled into view; nothing when there is none. */
export function Alert({ message }: { message: string }) {
  const line = useRef<HTMLParagraphElement>(null);
  useEffect(() => line.current?.scrollIntoView({ block: 'nearest' }), [message]);
  if (!message) return null;
  return (
    <p class="error" role="alert" ref={line}>
      {message}
    </p>
  );
}

/** What the last action did, announced politely. */
export function Status({ message }: { message: string }) {
  return (
    <p class="notice admin-status" role="status">
      {message}
    </p>
  );
}

/** Runs an action with the page's error and status lines; returns whether it worked. */
export function useAction(setError: (message: string) => void, setStatus: (message: string) => void) {
  const [busy, setBusy] = useState(false);
  async function run(action: () => Promise<unknown>, done: string): Promise<boolean> {
    setBusy(true);
    setError('');
    setStatus('');
    try {
      await action();
      setStatus(done);
      return true;
    } catch (e) {
      setError((e as Error).message);
      return false;
    } finally {
      setBusy(false);
    }
  }
  return { busy, run };
}

/**
 * A button that asks before it acts: the first press shows "Yes" and "Cancel" in its place
 * (focus on "Yes"; Escape cancels). `label` is the accessible name, e.g. "Stop node-a".
 */
export function ConfirmButton({
  label,
  question,
  children,
  onConfirm,
  disabled,
}: {
  label: string;
  question: string;
  children: ComponentChildren;
  onConfirm: () => void;
  disabled?: boolean;
}) {
  const [asking, setAsking] = useState(false);
  const yes = useRef<HTMLButtonElement>(null);
  const first = useRef<HTMLButtonElement>(null);
  const asked = useRef(false);
  // Focus follows the question: onto "Yes" when it appears, back to the button when answered.
  useEffect(() => {
    if (asking) yes.current?.focus();
    else if (asked.current) first.current?.focus();
    asked.current ||= asking;
  }, [asking]);
  if (!asking)
    return (
      <button type="button" ref={first} aria-label={label} disabled={disabled} onClick={() => setAsking(true)}>
        {children}
      </button>
    );
  return (
    <span class="confirm" role="group" aria-label={question} onKeyDown={(e) => e.key === 'Escape' && setAsking(false)}>
      <span>{question}</span>
      <button
        type="button"
        ref={yes}
        class="danger"
        aria-label={`Yes, ${label.charAt(0).toLowerCase()}${label.slice(1)}`}
        onClick={() => {
          setAsking(false);
          onConfirm();
        }}
      >
        Yes
      </button>
      <button type="button" onClick={() => setAsking(false)}>
        Cancel
      </button>
    </span>
  );
}
