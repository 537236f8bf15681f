// DKIM signing of outbound mail (RFC 6376) through mailauth.
import { dkimSign } from 'mailauth/lib/dkim/sign.js';

export interface DkimKey {
  domain: string;
  selector: string;
  privateKeyPem: string;
}

/**
 * The DKIM-Signature header line(s) for `raw`, or an error. The signing time is fixed up front:
 * without one, mailauth reads the clock once for the header it signs and again for the header it
 * writes, and when the two reads fall in different seconds the t= tags differ and the signature
 * cannot verify (about one message in a thousand here, more on a busy machine).
 */
export async function dkimSignature(raw: Buffer, key: DkimKey, now = new Date()): Promise<{ header: string } | { error: string }> {
  // mailauth signs only what is listed in signatureData (its typings say otherwise).
  const options = {
    signTime: now,
    signatureData: [{ signingDomain: key.domain, selector: key.selector, privateKey: key.privateKeyPem, canonicalization: 'relaxed/relaxed' }],
  };
  const result = await dkimSign(raw, options as unknown as Parameters<typeof dkimSign>[1]);
  if (result.errors.length > 0 || !result.signatures.trim()) return { error: String(result.errors[0]?.message ?? 'no signature produced') };
  return { header: result.signatures };
}
