// Drive throughput benchmark: upload then download one large file through the HTTP API of
// Quillmail from this tree (a child process, embedded SQLite store), with the server's
// memory sampled during the run.
//   node --import tsx bench/drive.ts [--mb 1024] [--piece-mb 0]
// --piece-mb 0 sends the whole file in one streaming PUT; N sends PUTs of N MiB (as the web app does).
// The data is generated as it is sent (never held whole), and hashed on both sides of the trip.
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import { arg, fmt, memorySampler, sleep, startQuill, treeMemory } from './lib.js';

const MiB = 1024 * 1024;
const sizeMb = arg('mb', 1024);
const pieceArg = process.argv.indexOf('--piece-mb');
const pieceMb = pieceArg >= 0 ? Number(process.argv[pieceArg + 1]) : 0;
const SIZE = sizeMb * MiB;
const PASSWORD = 'bench-password';

/** Deterministic, incompressible-looking bytes: a random MiB, each copy stamped with its index. */
const BLOCK = randomBytes(MiB);
function* generate(from: number, to: number): Generator<Buffer> {
  for (let at = from; at < to; ) {
    const index = Math.floor(at / MiB);
    const chunk = Buffer.from(BLOCK);
    chunk.writeUInt32BE(index, 0);
    const start = at - index * MiB;
    const end = Math.min(MiB, to - index * MiB);
    yield chunk.subarray(start, end);
    at += end - start;
  }
}

interface Session {
  base: string;
  cookie: string;
  csrf: string;
}

function request(session: Session, method: string, path: string, options: { json?: unknown; headers?: Record<string, string> } = {}): Promise<{ status: number; body: string }> {
  const url = new URL(session.base + path);
  const body = options.json === undefined ? undefined : JSON.stringify(options.json);
  const headers: Record<string, string> = { ...options.headers };
  if (session.cookie) headers.cookie = session.cookie;
  if (method !== 'GET') headers['x-csrf-token'] = session.csrf;
  if (body) headers['content-type'] = 'application/json';
  return new Promise((resolve, reject) => {
    const req = http.request({ host: url.hostname, port: url.port, path: url.pathname + url.search, method, headers }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (part: string) => (text += part));
      res.on('end', () => {
        const cookie = res.headers['set-cookie']?.[0];
        if (cookie?.startsWith('quill_session=')) session.cookie = cookie.split(';')[0]!;
        resolve({ status: res.statusCode!, body: text });
      });
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** One streaming PUT of bytes [from, to), written with backpressure. */
function put(session: Session, id: string, from: number, to: number, hash: ReturnType<typeof createHash>): Promise<{ status: number; body: string }> {
  const url = new URL(session.base);
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: url.hostname,
        port: url.port,
        path: `/api/drive/uploads/${id}`,
        method: 'PUT',
        headers: {
          cookie: session.cookie,
          'x-csrf-token': session.csrf,
          'content-type': 'application/octet-stream',
          'content-length': String(to - from),
          'content-range': `bytes ${from}-${to - 1}/${SIZE}`,
        },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (part: string) => (text += part));
        res.on('end', () => resolve({ status: res.statusCode!, body: text }));
      },
    );
    req.on('error', reject);
    const parts = generate(from, to);
    const pump = () => {
      for (let next = parts.next(); !next.done; next = parts.next()) {
        hash.update(next.value);
        if (!req.write(next.value)) return void req.once('drain', pump);
      }
      req.end();
    };
    pump();
  });
}

function download(session: Session, fileId: number): Promise<{ bytes: number; digest: string }> {
  const url = new URL(session.base);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: url.hostname, port: url.port, path: `/api/drive/files/${fileId}/content`, method: 'GET', headers: { cookie: session.cookie } }, (res) => {
      if (res.statusCode !== 200) reject(new Error(`download: HTTP ${res.statusCode}`));
      const hash = createHash('sha256');
      let bytes = 0;
      res.on('data', (part: Buffer) => {
        bytes += part.length;
        hash.update(part);
      });
      res.on('end', () => resolve({ bytes, digest: hash.digest('hex') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

async function main(): Promise<void> {
  const quill = await startQuill({ domain: 'bench.test', users: ['drive@bench.test'], password: PASSWORD });
  try {
    const session: Session = { base: `http://127.0.0.1:${quill.ports.http}`, cookie: '', csrf: '' };
    const login = await request(session, 'POST', '/api/login', { json: { address: 'drive@bench.test', password: PASSWORD } });
    if (login.status !== 200) throw new Error(`login: ${login.status} ${login.body}`);
    session.csrf = (JSON.parse(login.body) as { csrfToken: string }).csrfToken;
    // One small round trip first, so the idle figure includes a warmed-up server.
    const warm = await request(session, 'POST', '/api/drive/uploads', { json: { parent: null, name: 'warm.bin', size: 4 } });
    const warmId = (JSON.parse(warm.body) as { id: string }).id;
    await put(session, warmId, 0, 4, createHash('sha256')).catch(() => undefined);
    await sleep(1000);
    const idle = treeMemory(quill.pid);

    const started = await request(session, 'POST', '/api/drive/uploads', { json: { parent: null, name: 'big.bin', size: SIZE } });
    if (started.status !== 201) throw new Error(`start upload: ${started.status} ${started.body}`);
    const id = (JSON.parse(started.body) as { id: string }).id;
    const sent = createHash('sha256');
    const upMemory = memorySampler(() => quill.pid, 200);
    const upStart = performance.now();
    let result = { status: 0, body: '' };
    const piece = pieceMb > 0 ? pieceMb * MiB : SIZE;
    for (let at = 0; at < SIZE; at += piece) {
      result = await put(session, id, at, Math.min(SIZE, at + piece), sent);
      if (result.status !== 200) throw new Error(`upload at ${at}: ${result.status} ${result.body}`);
    }
    const upSeconds = (performance.now() - upStart) / 1000;
    const upPeak = upMemory.stop();
    const file = (JSON.parse(result.body) as { file: { id: number; size: number } | null }).file;
    if (!file || file.size !== SIZE) throw new Error(`upload did not complete: ${result.body}`);

    const downMemory = memorySampler(() => quill.pid, 200);
    const downStart = performance.now();
    const got = await download(session, file.id);
    const downSeconds = (performance.now() - downStart) / 1000;
    const downPeak = downMemory.stop();
    const expected = sent.digest('hex');
    if (got.bytes !== SIZE || got.digest !== expected) throw new Error(`download differs: ${got.bytes} bytes, sha256 ${got.digest} vs ${expected}`);

    const mb = SIZE / MiB;
    console.log(`file: ${mb} MiB, ${pieceMb > 0 ? `PUTs of ${pieceMb} MiB` : 'one streaming PUT'}; download sha256 matches`);
    console.log(`upload:   ${fmt(upSeconds)} s, ${fmt(mb / upSeconds)} MiB/s, server peak RSS ${fmt(upPeak.rssKb / 1024)} MiB`);
    console.log(`download: ${fmt(downSeconds)} s, ${fmt(mb / downSeconds)} MiB/s, server peak RSS ${fmt(downPeak.rssKb / 1024)} MiB`);
    console.log(`server idle RSS before: ${fmt(idle.rssKb / 1024)} MiB`);
  } finally {
    await quill.stop();
  }
}

await main();
