// One CRLF line read off the start of a socket before its protocol begins (a node's PROXY header,
// the gateway's proof of the cluster secret): bounded in bytes and time; the bytes after it are
// put back for the protocol's reader.
import type { Socket } from 'node:net';

export type FirstLineTrouble = 'too-long' | 'closed' | 'timeout';

export interface FirstLineOptions {
  /** The longest line, CRLF included. */
  maxBytes: number;
  timeoutMs: number;
  /** The error the read rejects with for each kind of trouble. */
  error: (trouble: FirstLineTrouble) => Error;
}

/** The first line without its CRLF. The socket is left paused: the protocol attaches its reader and resumes it. */
export function readFirstLine(socket: Socket, options: FirstLineOptions): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    let buffered: Buffer = Buffer.alloc(0);
    const done = (error: Error | undefined, line?: Buffer) => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('close', onClose);
      socket.pause();
      if (error) reject(error);
      else resolve(line!);
    };
    const onData = (chunk: Buffer) => {
      buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
      const end = buffered.indexOf('\r\n');
      if (end < 0 ? buffered.length > options.maxBytes : end + 2 > options.maxBytes) return done(options.error('too-long'));
      if (end < 0) return;
      const line = Buffer.from(buffered.subarray(0, end));
      const rest = Buffer.from(buffered.subarray(end + 2));
      // Stop reading first, then hand the protocol's bytes back to the stream.
      done(undefined, line);
      if (rest.length > 0) socket.unshift(rest);
    };
    const onClose = () => done(options.error('closed'));
    const timer = setTimeout(() => done(options.error('timeout')), options.timeoutMs);
    socket.on('data', onData);
    socket.once('close', onClose);
    socket.resume();
  });
}
