// TLS material: the certificate from config, or a self-signed one generated into the data
// directory on first start so STARTTLS works out of the box.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
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
  const keyFile = path.join(dataDir, 'tls-key.pem');
  const certFile = path.join(dataDir, 'tls-cert.pem');
  if (!existsSync(keyFile) || !existsSync(certFile)) {
    const pems = await generate([{ name: 'commonName', value: hostname }], {
      keySize: 2048,
      notAfterDate: new Date(Date.now() + 3650 * 86_400_000),
      algorithm: 'sha256',
      extensions: [
        { name: 'basicConstraints', cA: false },
        { name: 'subjectAltName', altNames: [{ type: 2, value: hostname }, { type: 2, value: 'localhost' }, { type: 7, ip: '127.0.0.1' }] },
      ],
    });
    writeFileSync(keyFile, pems.private, { mode: 0o600 });
    writeFileSync(certFile, pems.cert);
  }
  const key = readFileSync(keyFile);
  const cert = readFileSync(certFile);
  return { key, cert, context: createSecureContext({ key, cert }), selfSigned: true };
}
