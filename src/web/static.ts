// The single-page app's files, built by Vite into dist/public (`npm run build`), served with
// a strict Content-Security-Policy. Message HTML is shown in a sandboxed frame inside it.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance, FastifyReply } from 'fastify';
import { Errors } from './errors.js';

/** Same place from src/web (tsx) and dist/web (built). */
export const PUBLIC_DIR = fileURLToPath(new URL('../../dist/public/', import.meta.url));

const TYPES: Record<string, string> = {
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.map': 'application/json',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.woff2': 'font/woff2',
};

// The page may load only its own scripts; images from anywhere since a message's remote images
// appear only after the user asks (the server strips them before); nothing may frame the page.
const PAGE_POLICY = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data: https: http:",
  "connect-src 'self'",
  "frame-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

function pageHeaders(reply: FastifyReply): FastifyReply {
  return reply
    .header('content-security-policy', PAGE_POLICY)
    .header('x-content-type-options', 'nosniff')
    .header('referrer-policy', 'no-referrer')
    .header('x-frame-options', 'DENY');
}

export function staticRoutes(app: FastifyInstance, dir = PUBLIC_DIR): void {
  app.get('/', async (_request, reply) => {
    let html: Buffer;
    try {
      html = await readFile(path.join(dir, 'index.html'));
    } catch {
      return reply.code(503).type('text/plain; charset=utf-8').send('The web app is not built: run npm run build.\n');
    }
    return pageHeaders(reply).header('cache-control', 'no-cache').type('text/html; charset=utf-8').send(html);
  });

  app.get<{ Params: { file: string } }>('/assets/:file', async (request, reply) => {
    const { file } = request.params;
    const type = TYPES[path.extname(file)];
    if (!/^[\w.-]+$/.test(file) || file.startsWith('.') || !type) throw Errors.notFound();
    let body: Buffer;
    try {
      body = await readFile(path.join(dir, 'assets', file));
    } catch {
      throw Errors.notFound();
    }
    // Vite puts a content hash in every asset name: they never change.
    return pageHeaders(reply).header('cache-control', 'public, max-age=31536000, immutable').type(type).send(body);
  });
}
