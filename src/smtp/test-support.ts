// Shared by the SMTP tests: Python's smtplib as a client, and what the store holds for a user.
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Store } from '../store/types.js';

const DRIVER = fileURLToPath(new URL('./smtplib-driver.py', import.meta.url));

export interface SmtplibReply {
  code: number;
  text: string;
}

export interface SmtplibResult {
  features: string[];
  size?: string;
  auth?: string;
  login?: SmtplibReply;
  mail: SmtplibReply;
  rcpt: SmtplibReply[];
  data?: SmtplibReply;
}

export function runSmtplib(spec: {
  port: number;
  starttls?: boolean;
  login?: [string, string];
  sender: string;
  recipients: string[];
  message: Buffer;
}): Promise<SmtplibResult> {
  return new Promise((resolve, reject) => {
    const child = execFile('python3', [DRIVER], { timeout: 30_000 }, (error, stdout, stderr) => {
      if (error) return reject(new Error(`smtplib driver failed: ${stderr || error.message}`));
      resolve(JSON.parse(stdout) as SmtplibResult);
    });
    child.stdin!.end(JSON.stringify({ ...spec, message: spec.message.toString('base64') }));
  });
}

export interface StoredMessage {
  uid: number;
  blobHash: string;
  flags: string[];
  raw: Buffer;
}

/** The messages in one of a user's mailboxes, with their bytes. */
export async function storedMessages(store: Store, address: string, mailbox = 'INBOX'): Promise<StoredMessage[]> {
  const user = await store.getUser(address);
  if (!user) throw new Error(`no user ${address}`);
  const box = await store.getMailbox(user.id, mailbox);
  if (!box) throw new Error(`no mailbox ${mailbox} for ${address}`);
  const out: StoredMessage[] = [];
  for (const meta of await store.listMessages(box.id)) {
    const raw = await store.getBlob(meta.blobHash);
    if (!raw) throw new Error(`blob ${meta.blobHash} missing`);
    out.push({ uid: meta.uid, blobHash: meta.blobHash, flags: meta.flags, raw });
  }
  return out;
}

/** Header fields the MX adds below its Received header (mailauth's verdict, RFC 8601, RFC 7208). */
const VERDICT_FIELDS = /^(Authentication-Results|Received-SPF):/i;

/**
 * Splits what the server prepends, its Received header and then any verdict fields, from the
 * bytes the client sent.
 */
export function splitReceived(raw: Buffer): { received: string; verdict: string; rest: Buffer } {
  const text = raw.toString('latin1');
  if (!text.startsWith('Received: ')) throw new Error('message does not start with Received');
  const fieldEnd = (from: number) => {
    let end = text.indexOf('\r\n', from);
    while (text[end + 2] === '\t' || text[end + 2] === ' ') end = text.indexOf('\r\n', end + 2);
    return end + 2;
  };
  const receivedEnd = fieldEnd(0);
  let end = receivedEnd;
  while (VERDICT_FIELDS.test(text.slice(end, end + 40))) end = fieldEnd(end);
  return { received: text.slice(0, receivedEnd), verdict: text.slice(receivedEnd, end), rest: raw.subarray(end) };
}
