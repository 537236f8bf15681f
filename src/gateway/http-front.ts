// The gateway's HTTP front end (issue 5). The gateway reads each request itself and sends it
// to the least-loaded live node. When the node fails before its response starts, a request
// that may be repeated (RFC 9110 9.2.2: GET, HEAD, OPTIONS, PUT, DELETE) and whose body was
// small enough to keep goes to the next node, so the browser never sees the failure; any
// other request gets a clear 502 saying it may or may not have been applied. A failure after
// the response started can only cut the connection, as any proxy must.
import http from 'node:http';
import net from 'node:net';
import { TLSSocket } from 'node:tls';
import type { Config } from '../config/config.js';
import { splitHostPort } from '../config/config.js';
import { gatewayHello } from '../net/gateway-link.js';
import { proxyLine } from '../protocol/proxy-header.js';
import type { Logger } from '../util/logger.js';
import type { NodeDirectory } from './directory.js';

const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE']);
/** Request bodies up to this size are kept so the request can go to another node. */
const REPLAY_BODY_LIMIT = 1024 * 1024;
/** RFC 9110 7.6.1 and 9112 9.6: meant for one connection, not passed on. */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade']);
/** Said by the gateway alone: a client's own copy is dropped. */
const GATEWAY_SAYS = new Set(['x-forwarded-proto', 'x-forwarded-for', 'forwarded']);

export interface HttpFrontDeps {
  config: Readonly<Config>;
  directory: NodeDirectory;
  logger: Logger;
  /** Counts requests sent again to another node after their first node failed. */
  onRetry?: () => void;
}

type Outcome = 'done' | 'node-failed';

/** Connections to nodes for one client connection, so each can start with a PROXY line naming that client. */
class ClientAgent extends http.Agent {
  constructor(
    private readonly client: net.Socket,
    private readonly proxyProtocol: boolean,
    private readonly secret: string | undefined,
  ) {
    super({ keepAlive: true, maxSockets: 1 });
  }

  override createConnection(options: net.NetConnectOpts): net.Socket {
    const socket = net.connect(options);
    // The cluster secret's proof first: the node then believes the forwarded headers (src/net/gateway-link.ts).
    if (this.secret) socket.write(gatewayHello(this.secret));
    if (this.proxyProtocol) socket.write(proxyLine(this.client));
    return socket;
  }
}

export class HttpFrontEnd {
  private readonly server: http.Server;
  private readonly agents = new WeakMap<net.Socket, Map<string, ClientAgent>>();

  constructor(private readonly deps: HttpFrontDeps) {
    // No request timeout: uploads may be long and event streams stay open; idle keep-alive
    // connections close after a few seconds so they do not hold session slots.
    this.server = http.createServer({ requestTimeout: 0, headersTimeout: 30_000, keepAliveTimeout: 5_000 }, (req, res) => {
      this.handle(req, res).catch((error: Error) => {
        deps.logger.warn({ err: error.message }, 'gateway: http request failed');
        if (!res.headersSent) reply(res, 502, 'the gateway could not complete the request');
        else res.destroy();
      });
    });
    this.server.on('clientError', (_error, socket) => {
      if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      else socket.destroy();
    });
  }

  /** A client connection the gateway accepted: served until it closes. */
  session(socket: net.Socket): { run(): Promise<void>; readonly nodeId: string | undefined } {
    return {
      nodeId: undefined,
      run: () =>
        new Promise<void>((resolve) => {
          socket.once('close', () => {
            for (const agent of this.agents.get(socket)?.values() ?? []) agent.destroy();
            resolve();
          });
          this.server.emit('connection', socket);
        }),
    };
  }

  private agentFor(client: net.Socket, nodeId: string): ClientAgent {
    let byNode = this.agents.get(client);
    if (!byNode) this.agents.set(client, (byNode = new Map()));
    let agent = byNode.get(nodeId);
    if (!agent) byNode.set(nodeId, (agent = new ClientAgent(client, this.deps.config.gateway.proxyProtocol, this.deps.config.cluster.secret)));
    return agent;
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const method = req.method ?? 'GET';
    const length = req.headers['content-length'] === undefined ? 0 : Number(req.headers['content-length']);
    const streamed = req.headers['transfer-encoding'] !== undefined || !(length <= REPLAY_BODY_LIMIT);
    const body = streamed ? null : await readBody(req);
    const repeatable = IDEMPOTENT.has(method) && body !== null;
    let tried = 0;
    for (const node of this.deps.directory.candidates('http')) {
      if (res.destroyed) return;
      if (tried > 0) this.deps.onRetry?.();
      tried++;
      this.deps.directory.noteOpened(node.id, 'http');
      const outcome = await this.forward(req, res, node, body);
      if (outcome === 'done') return;
      this.deps.directory.markFailed(node.id);
      if (!repeatable) {
        this.deps.logger.warn({ node: node.id, method }, 'gateway: node failed during a request that cannot be repeated');
        return reply(res, 502, `the server handling this ${method} request failed; it may or may not have been applied — check before trying again`);
      }
      this.deps.logger.warn({ node: node.id, method }, 'gateway: node failed before answering; trying the next node');
    }
    res.setHeader('retry-after', '5');
    reply(res, 503, 'no mail server is available right now; try again shortly');
  }

  /** Sends one request to one node; 'node-failed' when the node failed before its response started. */
  private forward(req: http.IncomingMessage, res: http.ServerResponse, node: { id: string; address: string }, body: Buffer | null): Promise<Outcome> {
    const { host, port } = splitHostPort(node.address);
    const headers: http.OutgoingHttpHeaders = {};
    for (const [name, value] of Object.entries(req.headers)) if (!HOP_BY_HOP.has(name) && !GATEWAY_SAYS.has(name) && value !== undefined) headers[name] = value;
    if (body) headers['content-length'] = String(body.length);
    // Whether the browser's connection was encrypted (TLS ends here): the node marks cookies Secure.
    headers['x-forwarded-proto'] = req.socket instanceof TLSSocket && req.socket.encrypted ? 'https' : 'http';
    return new Promise<Outcome>((resolve) => {
      let started = false;
      let settled = false;
      const settle = (outcome: Outcome) => {
        if (!settled) (settled = true), resolve(outcome);
      };
      const upstream = http.request({ host, port, method: req.method, path: req.url, headers, agent: this.agentFor(req.socket, node.id) });
      const connectTimer = setTimeout(() => upstream.destroy(new Error('connect timeout')), this.deps.config.gateway.connectTimeoutMs);
      upstream.once('socket', (socket: net.Socket) => {
        if (!socket.connecting) clearTimeout(connectTimer);
        else socket.once('connect', () => clearTimeout(connectTimer));
      });
      upstream.on('response', (answer) => {
        started = true;
        clearTimeout(connectTimer);
        const out: http.OutgoingHttpHeaders = {};
        for (const [name, value] of Object.entries(answer.headers)) if (!HOP_BY_HOP.has(name) && value !== undefined) out[name] = value;
        res.writeHead(answer.statusCode ?? 502, answer.statusMessage, out);
        res.flushHeaders();
        answer.pipe(res);
        answer.once('end', () => settle('done'));
        answer.once('error', () => (res.destroy(), settle('done')));
        answer.once('aborted', () => (res.destroy(), settle('done')));
      });
      upstream.on('error', () => {
        clearTimeout(connectTimer);
        if (started) {
          res.destroy();
          settle('done');
        } else settle('node-failed');
      });
      // The browser went away: the node's work for it stops too.
      res.once('close', () => {
        if (!res.writableFinished) upstream.destroy();
        settle('done');
      });
      if (body) upstream.end(body);
      else req.pipe(upstream);
    });
  }
}

function readBody(req: http.IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.once('end', () => resolve(Buffer.concat(chunks)));
    req.once('error', reject);
  });
}

function reply(res: http.ServerResponse, status: number, error: string): void {
  if (res.headersSent || res.destroyed) return void res.destroy();
  const body = JSON.stringify({ error });
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' });
  res.end(body);
}
