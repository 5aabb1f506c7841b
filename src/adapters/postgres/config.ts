/**
 * Configuration of a PostgreSQL pool: which keys are pool options, `pg.ClientConfig` fields
 * or adapter policy; their validation; and the merge explicit > URL > `PG*` env > defaults.
 */
import type pg from 'pg';
// The URL parser pg itself uses, declared with a range every pg >= 8.11 accepts so npm installs
// one copy for both. A static import, not a lookup from pg's location at run time: bundlers
// follow it, and the CommonJS build needs no module URL. The default import is the one form
// that works with every 2.x (with or without its ESM wrapper) from ESM and CommonJS alike;
// the parser hangs on it as `.parse`.
import pgConnectionString from 'pg-connection-string';
import { InvalidPoolOptionError, POOL_DEFAULTS, POOL_OPTION_NAMES, defaultOnError, type PoolOptions } from '../../index.js';
import type { SessionLimitCheck } from './server-checks.js';
// Multi-host (hosts, target_session_attrs): parsed in hosts.ts, wired in the marked blocks below.
import { MULTI_HOST_KEYS, extractUrlHosts, resolveHosts, type MultiHostConfig, type ResolvedHosts } from './hosts.js';
// Pooler mode (PgBouncer): its options and checks live in pooler.ts.
import { resolvePoolerPolicy, type Pooler, type PoolerPolicy, type PreparedStatements } from './pooler.js';

const POOLER_KEYS = ['pooler', 'preparedStatements'] as const;

const parseConnectionString: (url: string) => Record<string, unknown> = pgConnectionString.parse;

/** `pg.ClientConfig` fields lifeguard passes through to each client. */
const CLIENT_KEYS: ReadonlySet<string> = new Set([
  'user', 'database', 'password', 'port', 'host', 'connectionString', 'keepAlive', 'keepAliveInitialDelayMillis', 'stream',
  'statement_timeout', 'lock_timeout', 'idle_in_transaction_session_timeout', 'query_timeout', 'ssl', 'types', 'options',
  'application_name', 'fallback_application_name', 'client_encoding', 'binary', 'parseInputDatesAsUTC', 'enableChannelBinding',
  // Pipelined queries sit in pg's _sentQueryQueue, which busy() reads: a lease released mid-pipeline is destroyed.
  'pipeline',
]);
const ADAPTER_KEYS: ReadonlySet<string> = new Set(['resetOnRelease', 'dirtyRelease', 'queryTimeoutMs', ...POOLER_KEYS]);

/** What to run on release. `discard` cleans session state but keeps prepared statements (pg caches them). */
export type ResetOnRelease = 'none' | 'rollback' | 'discard';
/** What to do with a client released inside a transaction: destroy it (pgxpool), or roll back and reuse it. */
export type DirtyRelease = 'destroy' | 'rollback';

/**
 * The `pg.ClientConfig` fields lifeguard passes to each client. `connectionTimeoutMillis` is
 * left out: the pool option `createTimeoutMs` bounds the whole create instead.
 */
export type PostgresClientConfig = Omit<pg.ClientConfig, 'connectionTimeoutMillis'>;

/**
 * Options of {@link createPostgresPool}: `pg.ClientConfig` fields and `connectionString`
 * (merged explicit > URL > `PG*` environment > defaults), the core pool options except
 * `adapter`, and the release policy below.
 */
export interface PostgresPoolConfig extends PostgresClientConfig, Omit<PoolOptions<pg.Client>, 'adapter'>, MultiHostConfig {
  /** On every release: 'rollback' rolls back an open transaction (instead of destroying the client), 'discard' also cleans the session. @default 'none' */
  readonly resetOnRelease?: ResetOnRelease;
  /** A client released inside a (possibly failed) transaction when resetOnRelease is 'none'. Busy or broken clients are always destroyed. @default 'destroy' */
  readonly dirtyRelease?: DirtyRelease;
  /** Client-side bound on each query; when it fires the connection is destroyed. @default none */
  readonly queryTimeoutMs?: number;
  /**
   * A connection pooler (PgBouncer) between the pool and PostgreSQL, in its pool_mode: new
   * clients are validated with a round trip, a busy client is cancelled before it is closed,
   * and what the pooler breaks is refused (startup parameters; in 'transaction' mode also
   * resetOnRelease 'discard' and LISTEN through pool.query). @default 'none'
   */
  readonly pooler?: Pooler;
  /** 'unnamed' sends `{ name, text }` queries without their name (transaction pooling loses named statements). @default 'unnamed' with pooler 'transaction', else 'server' */
  readonly preparedStatements?: PreparedStatements;
}

/**
 * The longest duration lifeguard passes on: Node's `setTimeout` fires anything longer after
 * 1 ms, and PostgreSQL's millisecond settings (`statement_timeout`, …) are 32-bit integers.
 */
const MAX_TIMER_MS = 2_147_483_647;
/** Node's `setKeepAlive` takes whole seconds; Linux refuses (silently, through Node) a TCP_KEEPIDLE above 32767 s. */
const MAX_KEEPALIVE_DELAY_MS = 32_767_000;
/** PostgreSQL drops a connection whose startup packet is longer (MAX_STARTUP_PACKET_LENGTH), without an error. */
const MAX_STARTUP_PACKET_BYTES = 10_000;

/**
 * The keys pg reads from a connection string (its `ConnectionParameters`); pg ignores the
 * others (`connect_timeout`, `keepalives`, …), and so does lifeguard.
 */
const URL_KEYS: ReadonlySet<string> = new Set([
  'user', 'password', 'host', 'port', 'database', 'options', 'application_name', 'fallback_application_name', 'client_encoding',
  'ssl', 'sslnegotiation', 'replication', 'statement_timeout', 'lock_timeout', 'idle_in_transaction_session_timeout', 'query_timeout',
]);
/** Forms pg's connection-string parser understands: postgres(ql)://… (any case), socket:/dir?db=…, and '/dir database'. */
const CONNECTION_STRING_FORM = /^(postgres(ql)?:\/\/|socket:|\/)/i;
/** Settings the server reads as int milliseconds from the startup packet. */
const SERVER_DURATIONS = ['statement_timeout', 'lock_timeout', 'idle_in_transaction_session_timeout'] as const;

/** Where a value came from, for messages: "`port`", or "the `port` in `connectionString`". */
interface Source {
  readonly fromUrl: boolean;
}
const label = (key: string, source: Source): string => (source.fromUrl ? `the \`${key}\` parameter of \`connectionString\`` : `\`${key}\``);
const optionOf = (key: string, source: Source): string => (source.fromUrl ? 'connectionString' : key);

/**
 * A refused value, rendered as `InvalidPoolOptionError.expected` renders one, so these
 * refusals read like the core's. Never given a password or a URL: see {@link refuseHidden}.
 */
function showValue(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.length > 60 ? `${value.slice(0, 57)}...` : value);
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') return String(value);
  if (value === undefined || value === null) return String(value);
  if (typeof value === 'function') return 'a function';
  if (Array.isArray(value)) return 'an array';
  return 'an object';
}

function refuse(key: string, source: Source, expectation: string, value: unknown): never {
  throw new InvalidPoolOptionError(optionOf(key, source), `Expected ${label(key, source)} to be ${expectation}, got ${showValue(value)}`);
}

/** A refusal that never shows the value (a password, or a host that holds one). */
function refuseHidden(key: string, source: Source, expectation: string, what: string, advice = ''): never {
  throw new InvalidPoolOptionError(optionOf(key, source), `Expected ${label(key, source)} to be ${expectation}, got ${what} (not shown: it may hold a password)${advice}`);
}

const typeName = (value: unknown): string =>
  value === null ? 'null' : Array.isArray(value) ? 'an array' : typeof value === 'object' ? 'an object' : `a ${typeof value}`;

/** Strings go into the NUL-terminated startup packet or socket path: a NUL would corrupt it (the server answers 08P01). */
function checkString(key: string, value: unknown, source: Source): string {
  if (typeof value !== 'string') refuse(key, source, 'a string', value);
  if (value.includes('\0')) refuse(key, source, 'a string without NUL bytes', value);
  return value;
}

function checkBoolean(key: string, value: unknown, source: Source): boolean {
  if (typeof value !== 'boolean') refuse(key, source, 'a boolean', value);
  return value;
}

/** An integer in [min, max], or (from a URL, or a `port` anywhere) its decimal string. */
function checkInteger(key: string, value: unknown, source: Source, min: number, max: number, expectation: string, acceptDigits: boolean): number {
  const n = typeof value === 'number' ? value : acceptDigits && typeof value === 'string' && /^\d{1,16}$/.test(value) ? Number(value) : NaN;
  if (!Number.isInteger(n) || n < min || n > max) refuse(key, source, expectation, value);
  return n;
}

function checkHost(value: unknown, source: Source): string {
  if (typeof value !== 'string') refuse('host', source, 'a string (a host name, an IP address or a Unix socket directory)', value);
  const expectation = 'a host name, an IP address or a Unix socket directory';
  if (/^(postgres(ql)?|socket):|:\/\//i.test(value)) {
    refuseHidden('host', source, expectation, 'a URL', ': pass the URL as { connectionString } (or as the only argument) instead');
  }
  if (!value.startsWith('/') && value.includes('@')) {
    refuseHidden('host', source, expectation, "a value with '@'", ': pass `user` and `password` as their own options, or a URL as { connectionString }');
  }
  if (value.includes('\0')) refuseHidden('host', source, 'a string without NUL bytes', 'a string with one');
  return value;
}

function checkPassword(value: unknown, source: Source): unknown {
  if (typeof value === 'function') return value;
  if (typeof value !== 'string') {
    refuseHidden('password', source, 'a string or a function returning one (or a promise of one)', typeName(value));
  }
  if (value.includes('\0')) refuseHidden('password', source, 'a string without NUL bytes', 'a string with one');
  return value;
}

/** A startup-packet duration (ms, int4 on the server): `false`/0 leave the server's setting, above 2^31-1 the server refuses (22023). */
function checkServerDuration(key: string, value: unknown, source: Source): number | false {
  if (value === false && !source.fromUrl) return false;
  return checkInteger(key, value, source, 0, MAX_TIMER_MS, `${source.fromUrl ? '' : 'false or '}an integer number of milliseconds in [0, ${MAX_TIMER_MS}] (PostgreSQL refuses more)`, source.fromUrl);
}

/** Validate one `pg.ClientConfig` field (explicit, or parsed from the URL); returns the value pg gets. */
function checkClientField(key: string, value: unknown, source: Source): unknown {
  switch (key) {
    case 'user':
    case 'database':
    case 'application_name':
    case 'fallback_application_name':
    case 'options':
    case 'client_encoding':
    case 'replication':
      return checkString(key, value, source);
    case 'host':
      return checkHost(value, source);
    case 'password':
      return checkPassword(value, source);
    case 'port':
      return checkInteger(key, value, source, 1, 65_535, 'an integer in [1, 65535]', true);
    case 'ssl':
      if (source.fromUrl) return value; // pg-connection-string's own result (true, false, an object, 'no-verify')
      if (typeof value === 'boolean' || (typeof value === 'object' && value !== null && !Array.isArray(value))) return value;
      return refuse(key, source, 'a boolean or a tls.ConnectionOptions object', value);
    case 'sslnegotiation':
      if (value !== 'postgres' && value !== 'direct') refuse(key, source, "'postgres' or 'direct'", value);
      return value;
    case 'keepAlive':
    case 'binary':
    case 'parseInputDatesAsUTC':
    case 'enableChannelBinding':
      return checkBoolean(key, value, source);
    case 'keepAliveInitialDelayMillis': {
      const ms = checkInteger(key, value, source, 0, MAX_KEEPALIVE_DELAY_MS, `0 (the system default) or a whole number of seconds in ms, at most ${MAX_KEEPALIVE_DELAY_MS} (TCP keepalive has 1 s resolution, Linux's maximum is 32767 s)`, false);
      if (ms % 1000 !== 0) refuse(key, source, '0 (the system default) or a whole number of seconds in ms (TCP keepalive has 1 s resolution)', value);
      return ms;
    }
    case 'statement_timeout':
    case 'lock_timeout':
    case 'idle_in_transaction_session_timeout':
      return checkServerDuration(key, value, source);
    case 'query_timeout': {
      const n = source.fromUrl && typeof value === 'string' && /^\d{1,16}$/.test(value) ? Number(value) : value;
      if (typeof n !== 'number' || !(n >= 0 && n <= MAX_TIMER_MS)) refuse(key, source, `a number of milliseconds in [0, ${MAX_TIMER_MS}] (0 for none)`, value);
      return n;
    }
    case 'stream':
      if (typeof value !== 'function') refuse(key, source, 'a function returning a new stream for each connection (a pool opens many)', value);
      return value;
    case 'types':
      if (typeof value !== 'object' || value === null || typeof (value as { getTypeParser?: unknown }).getTypeParser !== 'function') {
        refuse(key, source, 'an object with a getTypeParser() function (pg.types, or a TypeOverrides)', value);
      }
      return value;
    default:
      return value;
  }
}

/** Parse the URL with pg's own parser; report why it cannot be used without echoing it. */
function parseUrl(connectionString: unknown): Record<string, unknown> {
  if (typeof connectionString !== 'string' || !CONNECTION_STRING_FORM.test(connectionString)) {
    // Never echo the string: it may hold a password.
    throw new InvalidPoolOptionError(
      'connectionString',
      `Expected \`connectionString\` to be a postgres:// or postgresql:// URL (or socket:/dir?db=name), got ${typeof connectionString === 'string' ? 'another form' : typeName(connectionString)} (not shown: it may hold a password)`,
    );
  }
  let parsed: Record<string, unknown>;
  try {
    parsed = parseConnectionString(connectionString);
  } catch (error) {
    const fileError = error as NodeJS.ErrnoException;
    if (typeof fileError?.code === 'string' && typeof fileError.path === 'string') {
      // pg-connection-string reads sslcert, sslkey and sslrootcert at parse time.
      const query = new URLSearchParams(connectionString.slice(connectionString.indexOf('?') + 1));
      const param = ['sslrootcert', 'sslcert', 'sslkey'].find((name) => query.get(name) === fileError.path) ?? 'sslcert/sslkey/sslrootcert';
      const refusal = new InvalidPoolOptionError(
        'connectionString',
        `Expected the \`${param}\` file of \`connectionString\` to be readable, got ${fileError.code} for ${JSON.stringify(fileError.path)}`,
      );
      refusal.cause = error;
      throw refusal;
    }
    const reason = error instanceof Error && !error.message.includes(connectionString) && error.message !== 'Invalid URL' ? `: ${error.message}` : '';
    throw new InvalidPoolOptionError('connectionString', `Expected \`connectionString\` to be a valid postgres:// URL, but it could not be parsed${reason} (not shown: it may hold a password)`);
  }
  const fromUrl: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(parsed)) {
    // pg-connection-string gives '' for an absent part (user, password, port): absent here too.
    if (!URL_KEYS.has(key) || value === undefined || value === null || value === '') continue;
    fromUrl[key] = checkClientField(key, value, { fromUrl: true });
  }
  return fromUrl;
}

/** The startup packet pg sends (user, database, application_name, options, …) must fit in PostgreSQL's limit. */
function checkStartupPacket(merged: Record<string, unknown>): void {
  const params: [string, unknown][] = [
    ['user', merged.user],
    ['database', merged.database],
    ['application_name', merged.application_name ?? merged.fallback_application_name],
    ['replication', merged.replication],
    ['options', merged.options],
    ...SERVER_DURATIONS.map((key): [string, unknown] => [key, merged[key]]),
    ['client_encoding', 'UTF8'],
  ];
  let bytes = 4 + 1; // protocol version, final terminator
  let largest = { key: 'options', bytes: 0 };
  for (const [key, value] of params) {
    if (value === undefined || value === null || value === false || value === '') continue;
    const size = Buffer.byteLength(String(value));
    bytes += Buffer.byteLength(key) + 1 + size + 1;
    if (size > largest.bytes && key !== 'client_encoding') largest = { key, bytes: size };
  }
  if (bytes > MAX_STARTUP_PACKET_BYTES) {
    throw new InvalidPoolOptionError(
      largest.key,
      `Expected the connection's startup parameters (user, database, application_name, options) to fit PostgreSQL's ${MAX_STARTUP_PACKET_BYTES}-byte startup packet, ` +
        `got ${bytes} bytes (\`${largest.key}\` alone is ${largest.bytes}): the server would drop every connection`,
    );
  }
}

/**
 * Merge config: explicit fields > connection string > `PG*` environment (read by pg) > defaults.
 * Validates every field's type and range (throws `InvalidPoolOptionError`, never echoing a
 * password or a URL), so nothing reaches pg that it would crash on, silently shorten, or the
 * server would refuse on every connect.
 */
export function resolveClientConfig(config: PostgresClientConfig & { queryTimeoutMs?: number }, createTimeoutMs: number): pg.ClientConfig {
  const explicit: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(config)) {
    if (CLIENT_KEYS.has(key) && key !== 'connectionString' && value !== undefined) explicit[key] = checkClientField(key, value, { fromUrl: false });
  }
  const fromUrl = config.connectionString === undefined ? {} : parseUrl(config.connectionString);
  const merged: Record<string, unknown> = {
    fallback_application_name: 'lifeguard',
    keepAlive: true,
    ...fromUrl,
    ...explicit,
  };
  if (merged.sslnegotiation === 'direct' && merged.ssl === false) {
    throw new InvalidPoolOptionError('connectionString', 'Expected `ssl` to be enabled with sslnegotiation=direct (a direct TLS handshake), got ssl: false');
  }
  checkStartupPacket(merged);
  // Only a timeout pg's setTimeout can honour; a longer createTimeoutMs is bounded by the pool's own timer.
  if (createTimeoutMs <= MAX_TIMER_MS) merged.connectionTimeoutMillis = Math.max(1, Math.ceil(createTimeoutMs));
  if (config.queryTimeoutMs !== undefined) merged.query_timeout = config.queryTimeoutMs;
  return merged as pg.ClientConfig;
}

/** A validated configuration: what each pg.Client gets, the core pool's options, and the adapter's policy. */
export interface ResolvedPostgresConfig {
  readonly clientConfig: pg.ClientConfig;
  readonly poolOptions: Omit<PoolOptions<pg.Client>, 'adapter'>;
  readonly policy: { resetOnRelease: ResetOnRelease; dirtyRelease: DirtyRelease; sessionLimits?: SessionLimitCheck; pooler?: PoolerPolicy };
  /** The host walk (several hosts, or a target_session_attrs); undefined: one host, as pg connects. */
  readonly hosts?: ResolvedHosts;
}

/** Split and validate `createPostgresPool`'s config; throws `InvalidPoolOptionError` naming the option. */
export function resolvePostgresConfig(given: PostgresPoolConfig | string): ResolvedPostgresConfig {
  // A bare connection string, as `new pg.Client(url)` accepts.
  const config: PostgresPoolConfig = typeof given === 'string' ? { connectionString: given } : given;
  if (typeof config !== 'object' || config === null || Array.isArray(config)) {
    throw InvalidPoolOptionError.expected('config', 'an object or a connection string', config);
  }
  const poolOptions: Record<string, unknown> = {};
  for (const key of Object.keys(config)) {
    if (key === 'adapter') throw new InvalidPoolOptionError('adapter', 'createPostgresPool builds its own adapter: do not pass `adapter`');
    if (POOL_OPTION_NAMES.has(key)) poolOptions[key] = (config as Record<string, unknown>)[key];
    else if (key === 'connectionTimeoutMillis') {
      throw new InvalidPoolOptionError(key, 'Use the pool option `createTimeoutMs` instead of `connectionTimeoutMillis`: it bounds the whole create (connect, TLS, authentication)');
    } else if (!CLIENT_KEYS.has(key) && !ADAPTER_KEYS.has(key) && !MULTI_HOST_KEYS.has(key)) {
      throw new InvalidPoolOptionError(key, `Unknown option \`${key}\`: expected a pool option, a pg.ClientConfig field, a multi-host option (hosts, targetSessionAttrs, …), or resetOnRelease/dirtyRelease/queryTimeoutMs/pooler/preparedStatements`);
    }
  }
  const resetOnRelease = config.resetOnRelease ?? 'none';
  if (!['none', 'rollback', 'discard'].includes(resetOnRelease)) {
    throw InvalidPoolOptionError.expected('resetOnRelease', "'none', 'rollback' or 'discard'", resetOnRelease);
  }
  const dirtyRelease = config.dirtyRelease ?? 'destroy';
  if (!['destroy', 'rollback'].includes(dirtyRelease)) throw InvalidPoolOptionError.expected('dirtyRelease', "'destroy' or 'rollback'", dirtyRelease);
  // pg arms a setTimeout per query: a longer value would fire after 1 ms.
  if (config.queryTimeoutMs !== undefined && !(typeof config.queryTimeoutMs === 'number' && config.queryTimeoutMs > 0 && config.queryTimeoutMs <= MAX_TIMER_MS)) {
    throw InvalidPoolOptionError.expected('queryTimeoutMs', `a number of milliseconds > 0 and <= ${MAX_TIMER_MS}`, config.queryTimeoutMs);
  }
  const createTimeoutMs = typeof config.createTimeoutMs === 'number' ? config.createTimeoutMs : POOL_DEFAULTS.createTimeoutMs;
  // --- multi-host: pg's URL parser sees one host; the list and the target go to the host walk.
  const urlHosts = typeof config.connectionString === 'string' ? extractUrlHosts(config.connectionString) : undefined;
  const clientConfig = resolveClientConfig(urlHosts === undefined ? config : { ...config, connectionString: urlHosts.url }, createTimeoutMs);
  const hosts = resolveHosts(config, urlHosts, urlHosts !== undefined && clientConfig.host !== undefined, createTimeoutMs);
  // --- end multi-host
  const pooler = resolvePoolerPolicy(config as Readonly<Record<string, unknown>>, clientConfig as Readonly<Record<string, unknown>>);
  return {
    ...(hosts === undefined ? {} : { hosts }),
    clientConfig,
    poolOptions: poolOptions as Omit<PoolOptions<pg.Client>, 'adapter'>,
    policy: {
      resetOnRelease,
      dirtyRelease,
      sessionLimits: {
        idleTimeoutMs: typeof config.idleTimeoutMs === 'number' ? config.idleTimeoutMs : POOL_DEFAULTS.idleTimeoutMs,
        maxLifetimeMs: typeof config.maxLifetimeMs === 'number' ? config.maxLifetimeMs : POOL_DEFAULTS.maxLifetimeMs,
        keepaliveMs: typeof config.keepaliveMs === 'number' ? config.keepaliveMs : POOL_DEFAULTS.keepaliveMs,
        warn: typeof config.onError === 'function' ? config.onError : defaultOnError,
        pooler: pooler.pooler,
      },
      pooler,
    },
  };
}
