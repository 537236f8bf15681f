// Binding a listener: resolves with the bound port (the configured one may be 0), rejects
// with the bind error (address in use, no permission) instead of emitting it later.
import type { Server } from 'node:net';

export function listen(server: Server, host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      const address = server.address();
      resolve(typeof address === 'object' && address ? address.port : port);
    });
  });
}
