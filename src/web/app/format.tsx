// How the mail view writes dates, sizes, people and plain text.
import type { ComponentChildren } from 'preact';
import type { Address } from './api.js';

export const who = (list: Address[]) => list.map((a) => a.name || a.address).join(', ') || '(nobody)';
export const full = (list: Address[]) => list.map((a) => (a.name ? `${a.name.includes(',') ? `"${a.name}"` : a.name} <${a.address}>` : a.address)).join(', ');

const DAY = 86_400_000;

/** Today: the time. Yesterday: "Yesterday". This week: the weekday. Then "4 Mar", then "4 Mar 2025". */
export function friendlyDate(iso: string | null, now = new Date()): string {
  if (!iso) return '';
  const date = new Date(iso);
  const startOfToday = new Date(now.getFullYear(), now.getMonth(), now.getDate()).getTime();
  const t = date.getTime();
  if (t >= startOfToday && t < startOfToday + DAY) return date.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  if (t >= startOfToday - DAY && t < startOfToday) return 'Yesterday';
  if (t >= startOfToday - 6 * DAY && t < startOfToday) return date.toLocaleDateString([], { weekday: 'short' });
  if (date.getFullYear() === now.getFullYear()) return date.toLocaleDateString([], { day: 'numeric', month: 'short' });
  return date.toLocaleDateString([], { day: 'numeric', month: 'short', year: 'numeric' });
}

/** A full date for a message header or a forwarded message: "Mon, 7 Dec 2026, 11:25". */
export function longDate(iso: string | null): string {
  if (!iso) return '';
  return new Date(iso).toLocaleString([], { weekday: 'short', day: 'numeric', month: 'short', year: 'numeric', hour: '2-digit', minute: '2-digit' });
}

export function size(bytes: number): string {
  return bytes < 1024 ? `${bytes} B` : bytes < 1048576 ? `${(bytes / 1024).toFixed(0)} KB` : `${(bytes / 1048576).toFixed(1)} MB`;
}

// http(s) URLs and www. names; the trailing punctuation of a sentence is not part of the link.
const URL_PATTERN = /\b(?:https?:\/\/|www\.)[^\s<>"]+[^\s<>".,;:!?)\]}'*]/gi;

/** Plain text with its web addresses as links: only http and https, opened away from the app. */
export function linkify(text: string): ComponentChildren[] {
  const out: ComponentChildren[] = [];
  let last = 0;
  for (const match of text.matchAll(URL_PATTERN)) {
    const index = match.index ?? 0;
    out.push(text.slice(last, index));
    const href = match[0].startsWith('www.') ? `https://${match[0]}` : match[0];
    out.push(
      <a href={href} target="_blank" rel="noopener noreferrer">
        {match[0]}
      </a>,
    );
    last = index + match[0].length;
  }
  out.push(text.slice(last));
  return out;
}
