// Configuration: one YAML file validated once at start (zod, no unknown keys, defaults),
// command-line flags on top, then frozen. Every limit lives here.
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { parseSize } from '../util/size.js';

export class ConfigError extends Error {
  override name = 'ConfigError';
}

const hostPort = z.string().refine(
  (value) => {
    const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^:\s]+)):(\d{1,5})$/.exec(value);
    return match !== null && Number(match[3]) <= 65535;
  },
  { message: 'must be HOST:PORT with a port from 0 to 65535' },
);

const size = z.union([z.number().int().nonnegative(), z.string()]).transform((value, ctx) => {
  try {
    return parseSize(value);
  } catch (error) {
    ctx.addIssue({ code: 'custom', message: (error as Error).message });
    return z.NEVER;
  }
});

const seconds = z.number().positive();

const limitsSchema = z
  .object({
    /** Largest message accepted by SMTP (SIZE), submission and APPEND. */
    messageSize: size.default(25 * 1024 * 1024),
    /** Recipients per SMTP transaction. */
    recipients: z.number().int().positive().default(100),
    /** Longest command line for SMTP, POP3 and IMAP. */
    lineLength: z.number().int().min(512).default(8192),
    /** Longest IMAP ID command line: RFC 2971 allows 30 pairs with values of 1024 octets (about 32 KB). */
    imapIdLineLength: z.number().int().min(512).default(65536),
    /** Concurrent connections from one client address, per protocol. */
    connectionsPerIp: z.number().int().positive().default(50),
    /** Total concurrent connections per protocol listener. */
    connections: z.number().int().positive().default(5000),
    /** Idle time before a session is closed (SMTP and POP3; RFC 1939 asks for at least 10 minutes). */
    idleTimeoutSeconds: seconds.default(600),
    /** IMAP's autologout timer: at least 30 minutes (RFC 3501 5.4). */
    imapIdleTimeoutSeconds: seconds.default(1800),
    /** Failed authentications in one session before it is closed. */
    authFailures: z.number().int().positive().default(3),
    /**
     * Failed authentications per client address (IPv6: per /64) within lockoutSeconds before it
     * is throttled for every account it has not logged in to recently; also the limit for one
     * (account, address) pair. Another account's successful login does not reset it.
     */
    authFailuresPerIp: z.number().int().positive().default(10),
    /** Failed authentications for one account, from any address, before it is throttled for addresses it has not logged in from recently. */
    authFailuresPerAccount: z.number().int().positive().default(30),
    /** Failed authentications from one network (IPv4 /24, IPv6 /48) before it is throttled likewise. */
    authFailuresPerNetwork: z.number().int().positive().default(100),
    /** The window the failure counts above are kept for. */
    lockoutSeconds: seconds.default(300),
    /** How long after a successful login an address stays known to the account (not held back by the account's or the address's count). */
    authKnownAddressHours: z.number().positive().default(168),
    /** Entries in each throttling table (accounts, addresses, networks, pairs); the least recently failing go first. */
    authThrottleEntries: z.number().int().min(100).default(100_000),
    /**
     * scrypt cost N for new password hashes (a power of two; r=8, p=1). Default 131072 (2^17,
     * 128 MiB and ~0.4 s per hash); older, cheaper hashes are rehashed at the next login.
     */
    passwordScryptN: z
      .number()
      .int()
      .min(2 ** 14)
      .max(2 ** 20)
      .refine((n) => (n & (n - 1)) === 0, { message: 'must be a power of two' })
      .optional(),
    /**
     * Password hashes computed at once per process; more wait their turn. Each holds 128*N*8
     * bytes (128 MiB at 2^17): 1 keeps a login flood within the 200 MB a node may grow by.
     */
    passwordHashConcurrency: z.number().int().positive().default(1),
    /** How long a verified password is remembered so repeated logins skip scrypt (0 = off); a changed password applies at once. */
    authCacheSeconds: z.number().nonnegative().default(3600),
    /** Users in the verified-password cache; the least recently used go first. */
    authCacheEntries: z.number().int().positive().default(10_000),
    /** Delay before answering a failed authentication. */
    authFailureDelayMs: z.number().int().nonnegative().default(1000),
    /** Unknown or malformed commands before the session is closed. */
    badCommands: z.number().int().positive().default(10),
    /** IMAP commands per second per session before the server slows the session down. */
    imapCommandsPerSecond: z.number().int().positive().default(200),
    /** IMAP sessions per user. */
    imapConnectionsPerUser: z.number().int().positive().default(50),
  })
  .strict();

const imapSchema = z
  .object({
    loopbackPlainAuth: z.boolean().default(true),
    /** Wildcards ("*", "%") in one LIST or LSUB pattern; past it the command gets BAD. */
    listWildcards: z.number().int().positive().default(64),
    /** Literal bytes one command may carry in all (APPEND: this on top of limits.messageSize); past it NO/BAD [TOOBIG]. */
    commandLiteralBytes: size.default(1024 * 1024),
    /**
     * SEARCH BODY/TEXT narrowed through the full-text index first: fast on big mailboxes, but the
     * index matches words by their start (as Dovecot's fts plugins do), so a string found only
     * inside a word is missed. Off: the exact substring search RFC 3501 6.4.4 asks for.
     */
    searchFullTextIndex: z.boolean().default(false),
    /**
     * Processes that run IMAP sessions on the embedded SQLite store: above 1, `quill start` accepts
     * connections and hands each socket to one of this many child processes sharing the store file
     * (src/imap/processes.ts), so IMAP uses several cores. 1: sessions run in the server process.
     * Ignored on PostgreSQL (run more nodes there). Above 1, `limits.imapConnectionsPerUser` is
     * counted in each child, and the children's metrics are not in the server's /metrics. Each
     * process re-reads the others' changes and takes turns at the store's write lock, so a command
     * costs about a quarter more CPU than in one process: on 2 cores imaptest's mix ran ~1.1x one
     * process's rate (bench/RESULTS.md); more where cores are idle (bench/imaptest.ts --imap-processes 1,2,4).
     */
    processes: z.number().int().min(1).max(64).default(1),
  })
  .strict();

const outboundSchema = z
  .object({
    /** Run the queue worker in this process. */
    enabled: z.boolean().default(true),
    /** Give up and bounce after this long (RFC 5321 4.5.4.1 suggests 4-5 days). */
    lifetimeHours: z.number().positive().default(120),
    /** Tell the sender of the delay once after this long. */
    warnAfterHours: z.number().positive().default(4),
    /** Waits between attempts; the last one repeats. */
    retryIntervalsSeconds: z.array(z.number().positive()).min(1).default([60, 300, 900, 1800, 3600, 7200, 14400]),
    /** Messages being sent at once by this worker, and per destination domain. */
    concurrency: z.number().int().positive().default(10),
    perDomainConcurrency: z.number().int().positive().default(3),
    /** Messages sent per destination domain per minute, from this node (0 = no limit). */
    perDomainPerMinute: z.number().int().nonnegative().default(0),
    /** Port of remote MX hosts (25 on the internet; tests point it elsewhere). */
    port: z.number().int().min(1).max(65535).default(25),
    connectTimeoutSeconds: z.number().positive().default(30),
    /** How often the worker looks for due messages. */
    pollIntervalMs: z.number().int().positive().default(1000),
    /** Send everything through one relay instead of looking up MX records. */
    smarthost: z
      .object({ host: z.string().min(1), port: z.number().int().min(1).max(65535).default(587), user: z.string().optional(), pass: z.string().optional(), tls: z.boolean().default(false) })
      .strict()
      .optional(),
    /** Static routes: destination domain -> HOST:PORT, ahead of MX lookup. */
    routes: z.record(z.string(), hostPort).default({}),
  })
  .strict();

const inboundSchema = z
  .object({
    /** Check SPF, DKIM, DMARC and ARC of mail arriving on the MX port and add Authentication-Results. */
    verify: z.boolean().default(true),
    /** A DMARC failure: 'enforce' follows the sender domain's published policy; or always accept/quarantine/reject. */
    dmarc: z.enum(['enforce', 'accept', 'quarantine', 'reject']).default('enforce'),
    /** An SPF fail on its own (DMARC usually decides): accept, quarantine (to Junk) or reject. */
    spfFail: z.enum(['accept', 'quarantine', 'reject']).default('accept'),
    /** Time for all of one message's SPF/DKIM/DMARC lookups; past it they are temperror (RFC 7208 2.6.6, RFC 7489 6.6.3). */
    budgetMs: z.number().int().positive().default(2500),
    /** Worker threads that run the checks, so the thread that accepts and stores mail is not busy
     * with DKIM hashing; 0 runs them on the main thread. Default max(1, cores - 1). */
    workers: z.number().int().nonnegative().max(64).optional(),
  })
  .strict();

const dnsSchema = z
  .object({
    /** Recursive resolvers to ask, "host" or "host:port" ("[v6]:port"); default: the nameservers of /etc/resolv.conf. */
    servers: z.array(z.string().min(1)).optional(),
    /** How long one query attempt waits for its answer. */
    timeoutMs: z.number().int().positive().default(1000),
    /** Attempts after the first, each to the next server in turn. */
    retries: z.number().int().nonnegative().max(10).default(2),
    /** Answers kept in the cache (positive and negative); the least recently used go first. */
    cacheSize: z.number().int().positive().default(10000),
    /** How long a negative answer without an SOA is kept (RFC 2308 5). */
    negativeTtlSeconds: z.number().int().nonnegative().default(300),
    /** Cap on how long any answer is kept. */
    maxTtlSeconds: z.number().int().positive().default(86400),
    /** Consulted before PTR queries, as getnameinfo does. */
    hostsFile: z.string().min(1).default('/etc/hosts'),
  })
  .strict();

const gatewaySchema = z
  .object({
    /** Client sessions one gateway listener carries at once; past it new clients wait in the queue. */
    maxSessions: z.number().int().positive().default(10000),
    /** Clients waiting for a session slot; past it they get the protocol's temporary error at once. */
    queueLength: z.number().int().nonnegative().default(1000),
    /** How long a queued client waits before it gets the temporary error. */
    queueTimeoutMs: z.number().int().positive().default(5000),
    /** Time to connect to a node before trying the next one. */
    connectTimeoutMs: z.number().int().positive().default(2000),
    /**
     * Affinity: a user's IMAP, POP3 and submission sessions go to one node, the same from every
     * gateway, while it carries at most this many more sessions of the protocol than the least
     * loaded node; past that, least load wins. 0 keeps a user on one node only among equals.
     */
    affinitySlack: z.number().int().nonnegative().default(8),
    /** How often the gateway re-reads the membership and probes every node. */
    probeIntervalMs: z.number().int().positive().default(1000),
    /**
     * Hang detection on the session links: a node that owes a reply on one this long gets a probe
     * that must answer within the same time, or the node is given up and its sessions move (0 = off).
     */
    hangDetectMs: z.number().int().nonnegative().default(300),
    /** A client's TLS handshake (implicit TLS, or after STARTTLS/STLS) that takes longer is closed. */
    tlsHandshakeTimeoutMs: z.number().int().positive().default(10_000),
    /** Start each connection to a node with a PROXY v1 line naming the client (nodes must list this gateway in trustedGateways). */
    proxyProtocol: z.boolean().default(false),
    /** Screening (RFC 2505): addresses and IPv4/IPv6 networks (a.b.c.d/nn) refused at connect. */
    blocklist: z.array(z.string().min(1)).default([]),
    /** Open sessions from one client address, per listener. */
    sessionsPerIp: z.number().int().positive().default(50),
    /** New connections from one client address per minute, per listener. */
    connectsPerIpPerMinute: z.number().int().positive().default(600),
    /** SMTP: wait this long before the greeting and refuse clients that talk first (0 = off). */
    smtpGreetDelayMs: z.number().int().nonnegative().default(0),
    /**
     * Hot standby on one machine: a listening address another process holds is tried again every
     * standbyRetryMs, so this gateway takes it over as soon as that one exits.
     */
    standby: z.boolean().default(false),
    standbyRetryMs: z.number().int().positive().default(250),
    /** HOST:PORT of the gateway's own HTTP endpoint: /metrics, /healthz, /readyz (off when unset). */
    adminListen: hostPort.optional(),
    /** Implicit-TLS listeners (RFC 8314 3.3): TLS from the first byte, ended at the gateway. */
    implicitTls: z
      .object({ submissions: hostPort.optional(), imaps: hostPort.optional(), pop3s: hostPort.optional(), https: hostPort.optional() })
      .strict()
      .default({}),
  })
  .strict();

/**
 * Local parts nobody may claim by signing up (issue 17 row 7): role addresses that RFC 2142
 * and common practice give to the operators, compared with '.', '-' and '_' taken out.
 */
export const RESERVED_NAMES = [
  'postmaster', 'abuse', 'hostmaster', 'webmaster', 'admin', 'administrator', 'root', 'noreply', 'no-reply', 'mailer-daemon',
  'security', 'support', 'info', 'sales', 'marketing', 'billing', 'help', 'www', 'uucp', 'usenet', 'news', 'ftp', 'noc',
  'system', 'daemon', 'nobody', 'operator', 'staff', 'owner', 'ssl-admin', 'dmarc', 'dmarc-reports', 'tls-reports', 'mail', 'quill',
];

const webSchema = z
  .object({
    /** Who may create an account in the browser: nobody (admins use the CLI), anyone on our domains, or holders of an invite code. */
    signup: z.enum(['closed', 'open', 'invite']).default('closed'),
    /** Codes accepted when signup is 'invite'. */
    inviteCodes: z.array(z.string().min(8)).default([]),
    /** Local parts sign-up refuses (compared without '.', '-', '_'); replaces the built-in list when set. */
    reservedNames: z.array(z.string().min(1)).default(RESERVED_NAMES),
    /** Quota of an account made by sign-up; never unlimited. */
    signupQuota: size.refine((bytes) => bytes > 0, { message: 'must be more than 0 (sign-ups are never unlimited)' }).default(1024 ** 3),
    /** Accounts one client address (IPv6: /64) may create per hour. */
    signupsPerIpPerHour: z.number().int().positive().default(3),
    /** How long a browser login lasts. */
    sessionHours: z.number().positive().default(14 * 24),
  })
  .strict();

const listenSchema = z
  .object({
    smtp: hostPort.default('127.0.0.1:2525'),
    submission: hostPort.default('127.0.0.1:2587'),
    pop3: hostPort.default('127.0.0.1:2110'),
    imap: hostPort.default('127.0.0.1:2143'),
    http: hostPort.default('127.0.0.1:8080'),
    /** The same web app and API over TLS (the node's certificate), when set. */
    https: hostPort.optional(),
  })
  .strict();

export const configSchema = z
  .object({
    hostname: z.string().min(1).default('localhost'),
    data: z.string().min(1).default('./quill-data'),
    listen: listenSchema.default(() => listenSchema.parse({})),
    tls: z
      .object({ cert: z.string().min(1), key: z.string().min(1) })
      .strict()
      .optional(),
    store: z
      .object({
        /** Cap on the SQLite file; writes past it fail with a temporary error. */
        maxDatabaseBytes: size.optional(),
        /**
         * PostgreSQL instead of the embedded SQLite file: postgres://user:pw@host:port/db, or several
         * hosts (host1:5432,host2:5432) with target_session_attrs=read-write for a replicated group.
         */
        url: z
          .string()
          .regex(/^postgres(ql)?:\/\//, 'must be a postgres:// URL')
          .optional(),
        /** Connections in each process's PostgreSQL pool. */
        poolSize: z.number().int().min(1).max(1000).default(10),
        /** PostgreSQL cancels a statement running longer than this. */
        statementTimeoutSeconds: seconds.default(30),
        /** How long to wait for a PostgreSQL connection before answering with a temporary error. */
        connectTimeoutSeconds: seconds.default(5),
        /** Apply pending schema migrations at start (under an advisory lock; several nodes may start at once). */
        migrate: z.boolean().default(true),
        /**
         * SQLite: whether flag changes (STORE), expunges and \Recent claims wait for the WAL fsync
         * before OK, as messages always do (APPEND, SMTP's 250, COPY). Default false, like Dovecot's
         * mail_fsync=optimized: they are answered right after COMMIT and on disk within a second; a
         * power cut can undo the last of them, never lose a stored message. PostgreSQL commits are
         * durable either way.
         */
        fsyncFlagChanges: z.boolean().default(false),
      })
      .strict()
      .default({ poolSize: 10, statementTimeoutSeconds: 30, connectTimeoutSeconds: 5, migrate: true, fsyncFlagChanges: false }),
    smtp: z
      .object({
        /** Allow AUTH without TLS for clients on the loopback interface. */
        loopbackPlainAuth: z.boolean().default(true),
        /** Put a copy of submitted mail into the sender's Sent mailbox. */
        sentCopy: z.boolean().default(false),
        /** Look up the client's host name (DNS PTR) for the Received header. */
        reverseLookup: z.boolean().default(true),
        /**
         * Submission: who may send as other addresses of their own domain (MAIL FROM, From:,
         * Sender:). Entries are users ("boss@example.com") or whole domains ("example.com");
         * everyone else may use only their own address (550 5.7.1 otherwise).
         */
        trustedSenders: z.array(z.string().min(1)).default([]),
      })
      .strict()
      .default({ loopbackPlainAuth: true, sentCopy: false, reverseLookup: true, trustedSenders: [] }),
    pop3: z
      .object({ loopbackPlainAuth: z.boolean().default(true) })
      .strict()
      .default({ loopbackPlainAuth: true }),
    imap: imapSchema.default(() => imapSchema.parse({})),
    web: webSchema.default(() => webSchema.parse({})),
    limits: limitsSchema.default(() => limitsSchema.parse({})),
    outbound: outboundSchema.default(() => outboundSchema.parse({})),
    gateway: gatewaySchema.default(() => gatewaySchema.parse({})),
    inbound: inboundSchema.default(() => inboundSchema.parse({})),
    /** The DNS resolver every part of a node uses (src/dns/resolver.ts). */
    dns: dnsSchema.default(() => dnsSchema.parse({})),
    log: z
      .object({ level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info') })
      .strict()
      .default({ level: 'info' }),
    /** /metrics on every node's HTTP port and the gateway's admin port: open unless a bearer token is set. */
    metrics: z
      .object({ token: z.string().min(16, 'must be at least 16 characters').optional() })
      .strict()
      .default({}),
    /**
     * Shared by a cluster's gateways and nodes (src/net/gateway-link.ts): a gateway proves it on
     * every connection to a node, and a node believes PROXY, XCLIENT, XQUILL-LOGIN and forwarded
     * headers only from a trustedGateways address that proved it. Also QUILL_CLUSTER_SECRET.
     */
    cluster: z
      .object({ secret: z.string().min(16, 'must be at least 16 characters').optional() })
      .strict()
      .default({}),
    /** Gateways whose PROXY header a node believes; connections from them must start with one. */
    trustedGateways: z.array(z.string().min(1)).default([]),
    /** How long shutdown waits for open transactions before closing connections. */
    shutdownTimeoutSeconds: seconds.default(10),
  })
  .strict();

export type Config = z.infer<typeof configSchema>;
/** The protocols every node and gateway listens for (HTTPS is the http service's second port). */
export type ProtocolName = Exclude<keyof Config['listen'], 'https'>;

/** Flags from the command line that override the file. */
export interface ConfigOverrides {
  data?: string;
  hostname?: string;
  listen?: Partial<Record<ProtocolName | 'https', string>>;
  logLevel?: Config['log']['level'];
  /** store.url: a postgres:// URL (`--store`). */
  store?: string;
  /** trustedGateways (`--trusted-gateway`, repeatable). */
  trustedGateways?: string[];
  /** cluster.secret (the QUILL_CLUSTER_SECRET environment variable: kept off command lines). */
  clusterSecret?: string;
  /** gateway.implicitTls listeners (`quill gateway --imaps` and the like). */
  implicitTls?: Partial<Record<'submissions' | 'imaps' | 'pop3s' | 'https', string>>;
  /** gateway.standby (`quill gateway --standby`). */
  standby?: boolean;
}

function describeIssue(issue: z.core.$ZodIssue): string {
  const key = issue.path.length > 0 ? issue.path.join('.') : '(top level)';
  if (issue.code === 'unrecognized_keys') {
    const prefix = issue.path.length > 0 ? `${issue.path.join('.')}.` : '';
    return `unknown key ${issue.keys.map((k) => prefix + k).join(', ')}`;
  }
  return `${key}: ${issue.message}`;
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object') {
    for (const inner of Object.values(value)) deepFreeze(inner);
    Object.freeze(value);
  }
  return value;
}

/** Reads and validates the config; throws ConfigError with one line naming the bad key. */
export function loadConfig(file?: string, overrides: ConfigOverrides = {}): Readonly<Config> {
  let raw: Record<string, unknown> = {};
  if (file) {
    if (!existsSync(file)) throw new ConfigError(`config file ${file} does not exist`);
    try {
      raw = (parseYaml(readFileSync(file, 'utf8')) as Record<string, unknown> | null) ?? {};
    } catch (error) {
      throw new ConfigError(`config file ${file} is not valid YAML: ${(error as Error).message.split('\n')[0]}`);
    }
    if (typeof raw !== 'object' || Array.isArray(raw)) throw new ConfigError(`config file ${file} must be a YAML mapping`);
  }
  const merged: Record<string, unknown> = { ...raw };
  if (overrides.data) merged.data = overrides.data;
  if (overrides.hostname) merged.hostname = overrides.hostname;
  if (overrides.listen) {
    const listen = { ...((raw.listen as Record<string, unknown> | undefined) ?? {}) };
    for (const [name, value] of Object.entries(overrides.listen)) if (value !== undefined) listen[name] = value;
    merged.listen = listen;
  }
  if (overrides.trustedGateways?.length) merged.trustedGateways = overrides.trustedGateways;
  if (overrides.clusterSecret) merged.cluster = { ...((raw.cluster as Record<string, unknown> | undefined) ?? {}), secret: overrides.clusterSecret };
  const implicitTls = Object.fromEntries(Object.entries(overrides.implicitTls ?? {}).filter(([, value]) => value !== undefined));
  if (Object.keys(implicitTls).length > 0) {
    const gateway = (raw.gateway as Record<string, unknown> | undefined) ?? {};
    merged.gateway = { ...gateway, implicitTls: { ...((gateway.implicitTls as Record<string, unknown> | undefined) ?? {}), ...implicitTls } };
  }
  if (overrides.standby) merged.gateway = { ...(merged.gateway as Record<string, unknown> | undefined), standby: true };
  if (overrides.store) merged.store = { ...((raw.store as Record<string, unknown> | undefined) ?? {}), url: overrides.store };
  if (overrides.logLevel) merged.log = { ...((raw.log as Record<string, unknown> | undefined) ?? {}), level: overrides.logLevel };
  const result = configSchema.safeParse(merged);
  if (!result.success) {
    const where = file ? `config ${file}` : 'config';
    throw new ConfigError(`${where}: ${describeIssue(result.error.issues[0]!)}`);
  }
  const config = result.data;
  if (file && !path.isAbsolute(config.data)) config.data = path.resolve(overrides.data ? '.' : path.dirname(file), config.data);
  for (const key of ['cert', 'key'] as const) {
    const tlsFile = config.tls?.[key];
    if (tlsFile !== undefined) {
      const resolved = file && !path.isAbsolute(tlsFile) ? path.resolve(path.dirname(file), tlsFile) : tlsFile;
      if (!existsSync(resolved)) throw new ConfigError(`config: tls.${key}: file ${resolved} does not exist`);
      config.tls![key] = resolved;
    }
  }
  return deepFreeze(config);
}

export function splitHostPort(value: string): { host: string; port: number } {
  const index = value.lastIndexOf(':');
  const host = value.slice(0, index).replace(/^\[|\]$/g, '');
  return { host, port: Number(value.slice(index + 1)) };
}
