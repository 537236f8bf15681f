// Backpressure on a socket or stream, once for the servers, the gateway's fronts and its node links.
import type { Writable } from 'node:stream';

/**
 * Resolves once a stream whose buffer is full has room again (its 'drain'), or once it closes:
 * true when it can take more, false when it was destroyed meanwhile.
 */
export function roomOrClose(stream: Writable): Promise<boolean> {
  return new Promise((resolve) => {
    const settle = () => {
      stream.off('drain', settle);
      stream.off('close', settle);
      resolve(!stream.destroyed);
    };
    stream.on('drain', settle);
    stream.on('close', settle);
  });
}
