// TLS material: the certificate from config, or a self-signed one generated into the data
// directory on first start so STARTTLS works out of the box.
import { existsSync, mkdirSync, readFileSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { createSecureContext, type SecureContext } from 'node:tls';
import { generate } from 'selfsigned';

export interface TlsMaterial {
  key: Buffer;
  cert: Buffer;
  context: SecureContext;
  selfSigned: boolean;
}

export async function loadTls(dataDir: string, hostname: string, configured?: { cert: string; key: string }): Promise<TlsMaterial> {
  if (configured) {
    const key = readFileSync(configured.key);
    const cert = readFileSync(configured.cert);
    return { key, cert, context: createSecureContext({ key, cert }), selfSigned: false };
  }
  // Key and certificate in one file, written by rename: nodes starting together on one data
  // directory all end up with the same matching pair.
  const file = path.join(dataDir, 'tls-selfsigned.pem');
  if (!existsSync(file)) {
    const pems = await generate([{ name: 'commonName', value: hostname }], {
      keySize: 2048,
      notAfterDate: new Date(Date.now() + 3650 * 86_400_000),
      algorithm: 'sha256',
      extensions: [
        { name: 'basicConstraints', cA: false },
        { name: 'subjectAltName', altNames: [{ type: 2, value: hostname }, { type: 2, value: 'localhost' }, { type: 7, ip: '127.0.0.1' }] },
      ],
    });
    // With a PostgreSQL store nothing else may have made the data directory yet.
    mkdirSync(dataDir, { recursive: true });
    const temp = `${file}.${process.pid}.tmp`;
    writeFileSync(temp, pems.private + pems.cert, { mode: 0o600 });
    if (existsSync(file)) unlinkSync(temp);
    else renameSync(temp, file);
  }
  const pem = readFileSync(file, 'utf8');
  const at = pem.indexOf('-----BEGIN CERTIFICATE-----');
  const key = Buffer.from(pem.slice(0, at));
  const cert = Buffer.from(pem.slice(at));
  return { key, cert, context: createSecureContext({ key, cert }), selfSigned: true };
}
