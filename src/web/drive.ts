// Drive API (issue 8): folders and files of the logged-in user. Uploads stream into the
// store a chunk at a time and resume after a dropped connection (POST to start, PUT with
// Content-Range to append, HEAD/GET to learn the offset); downloads stream chunk by chunk
// and honour single byte ranges (RFC 9110 14).
import { Readable } from 'node:stream';
import type { FastifyInstance, FastifyReply } from 'fastify';
import type { ServiceDeps } from '../service.js';
import { DRIVE_NAME_MAX_BYTES, StoreError, type DriveNode, type DriveUpload, type Directory, type Drive, type WebState } from '../store/types.js';
import { Errors } from './errors.js';
import { contentDisposition } from './message-view.js';
import { accountOf } from './sessions.js';

/** What one store write holds: an upload is committed in pieces of this size. */
export const DRIVE_CHUNK_BYTES = 1024 * 1024;

/** Header that tells a client how many bytes of an upload the server holds. */
const OFFSET_HEADER = 'upload-offset';

/** Types a download keeps; anything else (HTML, SVG, XML, scripts) goes out as octet-stream. */
const SAFE_TYPES = /^(image\/(png|jpeg|gif|webp|avif|bmp)|application\/(pdf|zip|gzip|x-tar|json)|text\/(plain|csv)|audio\/[\w.+-]+|video\/[\w.+-]+)$/;

const idParams = { type: 'object', required: ['id'], properties: { id: { type: 'integer', minimum: 1 } } } as const;
const uploadParams = { type: 'object', required: ['id'], properties: { id: { type: 'string', pattern: '^[0-9a-f-]{36}$' } } } as const;
// The store checks names fully ('/', control characters, '.', '..'): a clear 400 either way.
const name = { type: 'string', minLength: 1, maxLength: DRIVE_NAME_MAX_BYTES } as const;
const parent = { type: ['integer', 'null'], minimum: 1 } as const;

function nodeOut(node: DriveNode) {
  return {
    id: node.id,
    parent: node.parentId,
    name: node.name,
    kind: node.kind,
    size: node.size,
    contentType: node.contentType,
    created: node.createdAt.toISOString(),
    updated: node.updatedAt.toISOString(),
  };
}

function uploadOut(upload: DriveUpload) {
  return { id: upload.id, parent: upload.parentId, name: upload.name, size: upload.size, offset: upload.received, expires: upload.expiresAt.toISOString() };
}

/** The folders from the root down to `folderId` (breadcrumbs). */
async function pathTo(store: Drive, userId: number, folderId: number | null): Promise<{ id: number; name: string }[]> {
  const path: { id: number; name: string }[] = [];
  for (let at = folderId; at !== null && path.length < 256; ) {
    const node = await store.getDriveNode(userId, at);
    if (!node || node.kind !== 'folder') throw Errors.notFound('no such folder');
    path.unshift({ id: node.id, name: node.name });
    at = node.parentId;
  }
  return path;
}

/** Content-Range of an upload PUT: "bytes first-last/size" (RFC 9110 14.4). */
function parseContentRange(header: string | undefined): { first: number; last: number; size: number } | null {
  const match = header && /^bytes (\d{1,15})-(\d{1,15})\/(\d{1,15})$/.exec(header.trim());
  if (!match) return null;
  const [first, last, size] = [Number(match[1]), Number(match[2]), Number(match[3])];
  return first <= last && last < size ? { first, last, size } : null;
}

/**
 * A Range header against a representation of `size` bytes (RFC 9110 14.1.2, 14.2): one
 * satisfiable range, 'unsatisfiable' (416), or null to send the whole file (no header, a
 * header we do not understand, or several ranges: a server may ignore Range).
 */
export function parseRange(header: string | undefined, size: number): { start: number; end: number } | 'unsatisfiable' | null {
  if (!header) return null;
  const match = /^bytes=\s*(\d*)-(\d*)\s*$/.exec(header.trim());
  if (!match || (match[1] === '' && match[2] === '')) return null;
  if (match[1] === '') {
    const suffix = Number(match[2]);
    if (suffix === 0 || size === 0) return 'unsatisfiable';
    return { start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(match[1]);
  if (match[2] !== '' && Number(match[2]) < start) return null; // invalid, so ignored (14.1.1)
  if (start >= size) return 'unsatisfiable';
  return { start, end: match[2] === '' ? size - 1 : Math.min(Number(match[2]), size - 1) };
}

function sendOffset(reply: FastifyReply, upload: DriveUpload) {
  void reply.header(OFFSET_HEADER, String(upload.received));
  return uploadOut(upload);
}

export function driveRoutes(app: FastifyInstance, deps: ServiceDeps<Drive & Directory & WebState>): void {
  const { store } = deps;

  // Its own scope, so the raw-stream body parser applies to the drive's routes only.
  void app.register(async (drive) => {
    drive.addContentTypeParser('application/octet-stream', (_request, payload, done) => done(null, payload));

    drive.get<{ Querystring: { folder?: number } }>(
      '/drive',
      { schema: { querystring: { type: 'object', additionalProperties: false, properties: { folder: { type: 'integer', minimum: 1 } } } } },
      async (request) => {
        const { user } = accountOf(request);
        const folder = request.query.folder ?? null;
        const path = await pathTo(store, user.id, folder);
        const entries = await store.listDrive(user.id, folder);
        // The account is read afresh for every request, so its usage is current.
        return { folder, path, entries: entries.map(nodeOut), usedBytes: user.usedBytes, quotaBytes: user.quotaBytes };
      },
    );

    drive.get<{ Params: { id: number } }>('/drive/nodes/:id', { schema: { params: idParams } }, async (request) => {
      const { user } = accountOf(request);
      const node = await store.getDriveNode(user.id, request.params.id);
      if (!node) throw Errors.notFound('no such file or folder');
      return nodeOut(node);
    });

    drive.post<{ Body: { parent: number | null; name: string } }>(
      '/drive/folders',
      { schema: { body: { type: 'object', required: ['name'], additionalProperties: false, properties: { parent, name } } } },
      async (request, reply) => {
        const { user } = accountOf(request);
        const folder = await store.createDriveFolder(user.id, request.body.parent ?? null, request.body.name);
        void reply.code(201);
        return nodeOut(folder);
      },
    );

    // Rename and move: {name} or {parent} (null is the root) or both.
    drive.patch<{ Params: { id: number }; Body: { parent?: number | null; name?: string } }>(
      '/drive/nodes/:id',
      { schema: { params: idParams, body: { type: 'object', minProperties: 1, additionalProperties: false, properties: { parent, name } } } },
      async (request) => {
        const { user } = accountOf(request);
        const node = await store.updateDriveNode(user.id, request.params.id, { name: request.body.name, parentId: request.body.parent });
        return nodeOut(node);
      },
    );

    drive.delete<{ Params: { id: number } }>('/drive/nodes/:id', { schema: { params: idParams } }, async (request) => {
      const { user } = accountOf(request);
      return { freedBytes: await store.deleteDriveNode(user.id, request.params.id) };
    });

    drive.post<{ Body: { parent: number | null; name: string; size: number; contentType?: string } }>(
      '/drive/uploads',
      {
        schema: {
          body: {
            type: 'object',
            required: ['name', 'size'],
            additionalProperties: false,
            properties: { parent, name, size: { type: 'integer', minimum: 0, maximum: Number.MAX_SAFE_INTEGER }, contentType: { type: 'string', maxLength: 200, pattern: '^[\\w.+-]+/[\\w.+-]+$' } },
          },
        },
      },
      async (request, reply) => {
        const { user } = accountOf(request);
        const { parent: parentId, name: fileName, size, contentType } = request.body;
        const upload = await store.createDriveUpload(user.id, { parentId: parentId ?? null, name: fileName, size, contentType: contentType?.toLowerCase() ?? null });
        void reply.code(201);
        if (size > 0) return sendOffset(reply, upload);
        // Nothing to send: the empty file exists at once.
        const { file } = await store.appendDriveUpload(user.id, upload.id, 0, Buffer.alloc(0));
        return { ...sendOffset(reply, { ...upload, received: 0 }), file: file && nodeOut(file) };
      },
    );

    // HEAD (Fastify adds it) or GET: where to resume.
    drive.get<{ Params: { id: string } }>('/drive/uploads/:id', { schema: { params: uploadParams } }, async (request, reply) => {
      const { user } = accountOf(request);
      const upload = await store.getDriveUpload(user.id, request.params.id);
      if (!upload) throw Errors.notFound('no such upload (finished, cancelled or expired)');
      return sendOffset(reply, upload);
    });

    drive.delete<{ Params: { id: string } }>('/drive/uploads/:id', { schema: { params: uploadParams } }, async (request) => {
      const { user } = accountOf(request);
      await store.cancelDriveUpload(user.id, request.params.id);
      return { cancelled: true };
    });

    // Appends bytes: Content-Range "bytes first-last/size" (or ?offset=first), first being the
    // bytes the server holds. The body streams through in DRIVE_CHUNK_BYTES pieces, each
    // committed as it fills, so a dropped connection loses at most the piece being filled.
    // The body parser above hands over the raw stream, so the server's bodyLimit does not
    // apply; the upload's declared size is the limit, checked as bytes arrive.
    drive.put<{ Params: { id: string }; Querystring: { offset?: number } }>(
      '/drive/uploads/:id',
      {
        schema: { params: uploadParams, querystring: { type: 'object', additionalProperties: false, properties: { offset: { type: 'integer', minimum: 0 } } } },
        bodyLimit: Number.MAX_SAFE_INTEGER,
      },
      async (request, reply) => {
        const { user } = accountOf(request);
        const body = request.body;
        if (!(body instanceof Readable)) throw Errors.badRequest('send the bytes as application/octet-stream');
        // Refusals come before the body is read: close the connection rather than drain it.
        const refuse = (error: Error) => {
          void reply.header('connection', 'close');
          return error;
        };
        const upload = await store.getDriveUpload(user.id, request.params.id);
        if (!upload) throw refuse(Errors.notFound('no such upload (finished, cancelled or expired)'));
        const header = request.headers['content-range'];
        const range = header === undefined ? null : parseContentRange(header);
        if (header !== undefined && (!range || range.size !== upload.size)) throw refuse(Errors.badRequest(`Content-Range must be "bytes first-last/${upload.size}"`));
        const first = range?.first ?? request.query.offset;
        if (first === undefined) throw refuse(Errors.badRequest('say where the bytes go: Content-Range or ?offset='));
        if (first !== upload.received) {
          void reply.code(409).header(OFFSET_HEADER, String(upload.received)).header('connection', 'close');
          return { error: `the upload continues at byte ${upload.received}`, offset: upload.received };
        }
        const end = range ? range.last + 1 : upload.size;

        let offset = first;
        let current = upload;
        let pieces: Buffer[] = [];
        let held = 0;
        const commit = async (bytes: Buffer) => {
          const result = await store.appendDriveUpload(user.id, upload.id, offset, bytes);
          offset += bytes.length;
          current = result.upload;
          return result.file;
        };
        let file: DriveNode | null = null;
        try {
          for await (const piece of body as AsyncIterable<Buffer>) {
            if (offset + held + piece.length > end) throw refuse(Errors.badRequest(`the body runs past byte ${end - 1}, the end of its range`));
            pieces.push(piece);
            held += piece.length;
            while (held >= DRIVE_CHUNK_BYTES) {
              const all = pieces.length === 1 ? pieces[0]! : Buffer.concat(pieces);
              pieces = held > DRIVE_CHUNK_BYTES ? [all.subarray(DRIVE_CHUNK_BYTES)] : [];
              held -= DRIVE_CHUNK_BYTES;
              file = await commit(all.subarray(0, DRIVE_CHUNK_BYTES));
            }
          }
          if (held > 0) file = await commit(pieces.length === 1 ? pieces[0]! : Buffer.concat(pieces));
        } catch (error) {
          if (request.raw.destroyed || (error as NodeJS.ErrnoException).code === 'ECONNRESET') {
            // The client went away; what was committed stays, and it asks where to resume.
            reply.hijack();
            reply.raw.destroy();
            return;
          }
          if (error instanceof StoreError && error.code === 'conflict' && !file) {
            // Another request for the same upload got in first (a retry racing the original).
            const now = await store.getDriveUpload(user.id, upload.id);
            if (now && now.received !== offset) {
              void reply.code(409).header(OFFSET_HEADER, String(now.received)).header('connection', 'close');
              return { error: error.message, offset: now.received };
            }
          }
          if (error instanceof StoreError) void reply.header('connection', 'close');
          throw error;
        }
        return { ...sendOffset(reply, current), complete: file !== null, file: file && nodeOut(file) };
      },
    );

    // Download: streamed chunk by chunk; never rendered by the browser (attachment, nosniff,
    // no HTML type, and a sandboxing CSP should it be opened anyway).
    drive.get<{ Params: { id: number } }>('/drive/files/:id/content', { schema: { params: idParams } }, async (request, reply) => {
      const { user } = accountOf(request);
      const node = await store.getDriveNode(user.id, request.params.id);
      if (!node || node.kind !== 'file') throw Errors.notFound('no such file');
      // A file's bytes never change under one content id, so it is a strong validator (RFC 9110 8.8.3).
      const etag = `"${node.contentId}-${node.size}"`;
      void reply.header('accept-ranges', 'bytes').header('etag', etag);
      // If-Range with another validator: the whole file instead of a part of the wrong one (13.1.5).
      const ifRange = request.headers['if-range'];
      let range = ifRange === undefined || ifRange === etag ? parseRange(request.headers.range, node.size) : null;
      if (range === 'unsatisfiable') {
        void reply.code(416).header('content-range', `bytes */${node.size}`);
        return { error: `the range is outside the file's ${node.size} bytes` };
      }
      const type = node.contentType && SAFE_TYPES.test(node.contentType) ? node.contentType : 'application/octet-stream';
      void reply
        .header('content-type', type)
        .header('content-disposition', contentDisposition(node.name, 0))
        .header('x-content-type-options', 'nosniff')
        .header('content-security-policy', "default-src 'none'; sandbox")
        .header('last-modified', node.updatedAt.toUTCString());
      if (range) void reply.code(206).header('content-range', `bytes ${range.start}-${range.end}/${node.size}`);
      range ??= { start: 0, end: node.size - 1 };
      void reply.header('content-length', String(range.end - range.start + 1));
      if (request.method === 'HEAD') return reply.send(Readable.from([]));
      return reply.send(Readable.from(store.readDriveFile(user.id, node.id, range), { objectMode: false }));
    });
  });
}
