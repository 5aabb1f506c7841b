/**
 * Configuration of a MySQL/MariaDB pool: which keys are pool options, mysql2 connection
 * options or adapter policy; their validation; and the merge explicit > `uri` > defaults.
 */
import type { ConnectionOptions } from 'mysql2';
import { InvalidPoolOptionError, POOL_DEFAULTS, POOL_OPTION_NAMES, defaultOnError, type PoolOptions } from '../../index.js';
import type { Connection as PromiseConnection } from 'mysql2/promise';

/** mysql2 connection options lifeguard passes to each connection (mysql2's `validOptions`, minus its pool's). */
const CONNECTION_KEYS: ReadonlySet<string> = new Set([
  'authPlugins', 'authSwitchHandler', 'bigNumberStrings', 'charset', 'charsetNumber', 'compress', 'connectAttributes', 'database', 'dateStrings',
  'debug', 'decimalNumbers', 'enableKeepAlive', 'flags', 'host', 'insecureAuth', 'infileStreamFactory', 'keepAliveInitialDelay', 'localAddress',
  'maxPreparedStatements', 'multipleStatements', 'namedPlaceholders', 'nestTables', 'password', 'password1', 'password2', 'password3',
  'passwordSha1', 'port', 'queryFormat', 'rowsAsArray', 'socketPath', 'ssl', 'stream', 'stringifyObjects', 'supportBigNumbers', 'timezone',
  'trace', 'typeCast', 'uri', 'user', 'disableEval', 'enableCleartextPlugin', 'jsonStrings', 'gracefulEnd', 'Promise',
]);
/** mysql2's own pool options: lifeguard's pool replaces them; each is refused with its equivalent. */
const MYSQL2_POOL_KEYS: ReadonlyMap<string, string> = new Map([
  ['connectionLimit', 'max'],
  ['maxIdle', 'min (idle connections are kept up to max and closed after idleTimeoutMs)'],
  ['idleTimeout', 'idleTimeoutMs'],
  ['queueLimit', 'maxWaiting'],
  ['waitForConnections', 'maxWaiting (0 fails at once when no connection is free) and acquireTimeoutMs'],
  ['connectTimeout', 'createTimeoutMs (it bounds the whole connect, TLS and login included)'],
  ['acquireTimeout', 'acquireTimeoutMs'],
  ['pool', 'nothing: lifeguard is the pool'],
  ['isServer', 'nothing: a pool connects to a server'],
]);
const ADAPTER_KEYS: ReadonlySet<string> = new Set(['resetOnRelease', 'dirtyRelease', 'queryTimeoutMs']);

/**
 * What to run on release. `rollback` rolls back an open transaction; `reset` also gives the
 * next caller a fresh session with COM_RESET_CONNECTION (session variables, temporary
 * tables, user locks and prepared statements go; on servers without it, MySQL < 5.7.3 and
 * MariaDB < 10.2.4, COM_CHANGE_USER does the same with a new login).
 */
export type ResetOnRelease = 'none' | 'rollback' | 'reset';
/** What to do with a connection released inside a transaction: destroy it, or roll back and reuse it. */
export type DirtyRelease = 'destroy' | 'rollback';

/** The mysql2 connection options lifeguard takes (`connectTimeout` is the pool's `createTimeoutMs`). */
export type MysqlConnectionOptions = Omit<ConnectionOptions, 'connectTimeout' | 'connectionLimit' | 'maxIdle' | 'idleTimeout' | 'queueLimit' | 'waitForConnections' | 'pool' | 'isServer'>;

/** Options of `createMysqlPool`: mysql2's connection options (and `uri`), the core pool options except `adapter`, and the release policy. */
export interface MysqlPoolConfig extends MysqlConnectionOptions, Omit<PoolOptions<PromiseConnection>, 'adapter'> {
  /** On every release: 'rollback' rolls back an open transaction, 'reset' also resets the session (COM_RESET_CONNECTION). @default 'none' */
  readonly resetOnRelease?: ResetOnRelease;
  /** A connection released inside a transaction when resetOnRelease is 'none'. Busy or broken connections are always destroyed. @default 'destroy' */
  readonly dirtyRelease?: DirtyRelease;
  /** Client-side bound on each query: when it passes, `KILL QUERY` stops the statement on the server and the connection is destroyed. @default none */
  readonly queryTimeoutMs?: number;
}

/** Node's `setTimeout` fires anything longer after 1 ms. */
const MAX_TIMER_MS = 2_147_483_647;
const URL_FORM = /^(mysql|mariadb|mysqlx?):\/\//i;

const typeName = (value: unknown): string =>
  value === null ? 'null' : Array.isArray(value) ? 'an array' : typeof value === 'object' ? 'an object' : `a ${typeof value}`;

function show(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.length > 60 ? `${value.slice(0, 57)}...` : value);
  if (typeof value === 'number' || typeof value === 'boolean' || value === undefined || value === null) return String(value);
  return typeName(value);
}

function refuse(key: string, fromUri: boolean, expectation: string, value: unknown, hidden = false): never {
  const where = fromUri ? `the \`${key}\` of \`uri\`` : `\`${key}\``;
  const got = hidden ? `${typeName(value)} (not shown: it may hold a password)` : show(value);
  throw new InvalidPoolOptionError(fromUri ? 'uri' : key, `Expected ${where} to be ${expectation}, got ${got}`);
}

/** Validate one connection option; returns the value mysql2 gets. */
function checkField(key: string, value: unknown, fromUri: boolean): unknown {
  switch (key) {
    case 'user':
    case 'database':
    case 'charset':
    case 'localAddress':
    case 'socketPath':
    case 'passwordSha1':
      if (typeof value !== 'string') refuse(key, fromUri, 'a string', value, key === 'passwordSha1');
      if (value.includes('\0')) refuse(key, fromUri, 'a string without NUL bytes', value, key === 'passwordSha1');
      return value;
    case 'password':
    case 'password1':
    case 'password2':
    case 'password3':
      // A YAML or JSON config may give a numeric password: mysql2 would crash on it at login.
      if (typeof value === 'number' && Number.isFinite(value)) return String(value);
      if (typeof value !== 'string') refuse(key, fromUri, 'a string', value, true);
      return value;
    case 'host':
      if (typeof value !== 'string' || value === '') refuse(key, fromUri, 'a host name or an IP address (a Unix socket goes in `socketPath`)', value);
      if (URL_FORM.test(value) || value.includes('@')) refuse(key, fromUri, 'a host name or an IP address: pass a URL as `uri`, and `user`/`password` as their own options', 'a URL', true);
      return value;
    case 'port': {
      const n = typeof value === 'number' ? value : typeof value === 'string' && /^\d{1,5}$/.test(value) ? Number(value) : NaN;
      if (!Number.isInteger(n) || n < 1 || n > 65_535) refuse(key, fromUri, 'an integer in [1, 65535]', value);
      return n;
    }
    case 'keepAliveInitialDelay':
    case 'maxPreparedStatements':
    case 'charsetNumber': {
      if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > MAX_TIMER_MS) refuse(key, fromUri, `an integer in [0, ${MAX_TIMER_MS}]`, value);
      if (key === 'maxPreparedStatements' && value < 1) refuse(key, fromUri, 'an integer >= 1', value);
      return value;
    }
    case 'ssl':
      if (typeof value === 'string' || (typeof value === 'object' && value !== null && !Array.isArray(value))) return value;
      return refuse(key, fromUri, 'an object of TLS options (or the name of a mysql2 SSL profile)', value);
    case 'timezone':
      if (typeof value !== 'string' || !/^(local|Z|[+-]\d\d:\d\d)$/.test(value)) refuse(key, fromUri, "'local', 'Z' or an offset like '+05:30'", value);
      return value;
    case 'flags':
      if (typeof value === 'string') return value.split(',').map((flag) => flag.trim());
      if (!Array.isArray(value) || !value.every((flag) => typeof flag === 'string')) refuse(key, fromUri, 'an array of flag names', value);
      return value;
    case 'enableKeepAlive':
    case 'multipleStatements':
    case 'namedPlaceholders':
    case 'supportBigNumbers':
    case 'bigNumberStrings':
    case 'decimalNumbers':
    case 'insecureAuth':
    case 'rowsAsArray':
    case 'compress':
    case 'trace':
    case 'stringifyObjects':
    case 'disableEval':
    case 'enableCleartextPlugin':
    case 'jsonStrings':
    case 'gracefulEnd':
      if (typeof value !== 'boolean') refuse(key, fromUri, 'a boolean', value);
      return value;
    case 'typeCast':
      if (typeof value !== 'boolean' && typeof value !== 'function') refuse(key, fromUri, 'a boolean or a function', value);
      return value;
    case 'stream':
      if (typeof value !== 'function') refuse(key, fromUri, 'a function returning a new stream for each connection (a pool opens many)', value);
      return value;
    case 'queryFormat':
    case 'authSwitchHandler':
    case 'infileStreamFactory':
      if (typeof value !== 'function') refuse(key, fromUri, 'a function', value);
      return value;
    default:
      return value;
  }
}

/** Parse `uri` as mysql2 does (mysql://user:password@host:port/database?option=value) and validate every field, never echoing it. */
function parseUri(uri: unknown): Record<string, unknown> {
  if (typeof uri !== 'string' || !URL_FORM.test(uri)) {
    throw new InvalidPoolOptionError('uri', `Expected \`uri\` to be a mysql:// URL, got ${typeof uri === 'string' ? 'another form' : typeName(uri)} (not shown: it may hold a password)`);
  }
  let url: URL;
  try {
    url = new URL(uri);
  } catch {
    throw new InvalidPoolOptionError('uri', 'Expected `uri` to be a valid mysql:// URL, but it could not be parsed (not shown: it may hold a password)');
  }
  const fields: Record<string, unknown> = {};
  const put = (key: string, raw: string): void => {
    let value: string;
    try {
      value = decodeURIComponent(raw);
    } catch {
      throw new InvalidPoolOptionError('uri', `Expected the \`${key}\` of \`uri\` to be percent-encoded correctly (not shown: it may hold a password)`);
    }
    if (value !== '') fields[key] = checkField(key, value, true);
  };
  put('host', url.hostname.replace(/^\[(.*)\]$/, '$1'));
  if (url.port !== '') fields.port = checkField('port', url.port, true);
  put('user', url.username);
  put('password', url.password);
  put('database', url.pathname.replace(/^\//, ''));
  for (const [key, raw] of url.searchParams) {
    if (key in fields || ['host', 'port', 'user', 'password', 'database', 'uri'].includes(key)) continue;
    if (MYSQL2_POOL_KEYS.has(key) || !CONNECTION_KEYS.has(key)) {
      throw new InvalidPoolOptionError('uri', `Unknown or unsupported \`uri\` parameter \`${key}\`${MYSQL2_POOL_KEYS.has(key) ? `: use the pool option ${MYSQL2_POOL_KEYS.get(key)}` : ''}`);
    }
    let value: unknown = raw;
    // As mysql2: a value that reads as JSON (true, 10, {"rejectUnauthorized":false}) is that value.
    try {
      value = JSON.parse(raw);
    } catch {
      // A plain string.
    }
    fields[key] = checkField(key, value, true);
  }
  return fields;
}

/** A validated configuration: what each connection gets, the core pool's options, and the adapter's policy. */
export interface ResolvedMysqlConfig {
  /** What each mysql2 connection gets: explicit fields over the `uri`'s, `connectTimeout` from `createTimeoutMs`. */
  readonly connectionOptions: ConnectionOptions;
  /** The core pool's options. */
  readonly poolOptions: Omit<PoolOptions<PromiseConnection>, 'adapter'>;
  /** The adapter's release policy and per-statement bound. */
  readonly policy: MysqlReleasePolicy;
}

/** `mysqlAdapter`'s policy: what happens on release, and the bound on each statement. */
export interface MysqlReleasePolicy {
  /** See {@link MysqlPoolConfig.resetOnRelease}. */
  readonly resetOnRelease: ResetOnRelease;
  /** See {@link MysqlPoolConfig.dirtyRelease}. */
  readonly dirtyRelease: DirtyRelease;
  /** See {@link MysqlPoolConfig.queryTimeoutMs}. */
  readonly queryTimeoutMs?: number;
  /** Where a statement that could not be stopped on the server is reported (the pool's `onError`). */
  readonly warn?: (error: Error) => void;
}

/** Split and validate `createMysqlPool`'s config; throws `InvalidPoolOptionError` naming the option, never echoing a password. */
export function resolveMysqlConfig(given: MysqlPoolConfig | string): ResolvedMysqlConfig {
  const config: MysqlPoolConfig = typeof given === 'string' ? { uri: given } : given;
  if (typeof config !== 'object' || config === null || Array.isArray(config)) {
    throw InvalidPoolOptionError.expected('config', 'an object or a mysql:// URL', config);
  }
  const poolOptions: Record<string, unknown> = {};
  const explicit: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(config)) {
    if (key === 'adapter') throw new InvalidPoolOptionError('adapter', 'createMysqlPool builds its own adapter: do not pass `adapter`');
    if (POOL_OPTION_NAMES.has(key)) poolOptions[key] = value;
    else if (MYSQL2_POOL_KEYS.has(key)) throw new InvalidPoolOptionError(key, `\`${key}\` is an option of mysql2's own pool: use ${MYSQL2_POOL_KEYS.get(key)}`);
    else if (CONNECTION_KEYS.has(key)) {
      if (key !== 'uri' && value !== undefined) explicit[key] = checkField(key, value, false);
    } else if (!ADAPTER_KEYS.has(key)) {
      throw new InvalidPoolOptionError(key, `Unknown option \`${key}\`: expected a pool option, a mysql2 connection option, or resetOnRelease/dirtyRelease/queryTimeoutMs`);
    }
  }
  const resetOnRelease = config.resetOnRelease ?? 'none';
  if (!['none', 'rollback', 'reset'].includes(resetOnRelease)) throw InvalidPoolOptionError.expected('resetOnRelease', "'none', 'rollback' or 'reset'", resetOnRelease);
  const dirtyRelease = config.dirtyRelease ?? 'destroy';
  if (!['destroy', 'rollback'].includes(dirtyRelease)) throw InvalidPoolOptionError.expected('dirtyRelease', "'destroy' or 'rollback'", dirtyRelease);
  const queryTimeoutMs = config.queryTimeoutMs;
  if (queryTimeoutMs !== undefined && !(typeof queryTimeoutMs === 'number' && queryTimeoutMs > 0 && queryTimeoutMs <= MAX_TIMER_MS)) {
    throw InvalidPoolOptionError.expected('queryTimeoutMs', `a number of milliseconds > 0 and <= ${MAX_TIMER_MS}`, queryTimeoutMs);
  }
  const fromUri = config.uri === undefined ? {} : parseUri(config.uri);
  const connectionOptions: Record<string, unknown> = { ...fromUri, ...explicit };
  if (connectionOptions.socketPath !== undefined && explicit.host !== undefined) {
    throw new InvalidPoolOptionError('socketPath', 'Expected either `socketPath` or `host`, not both: mysql2 connects to the socket and ignores `host`');
  }
  const createTimeoutMs = typeof config.createTimeoutMs === 'number' ? config.createTimeoutMs : POOL_DEFAULTS.createTimeoutMs;
  // mysql2's own connect bound, a backstop to the create signal; 0 would mean none.
  connectionOptions.connectTimeout = createTimeoutMs <= MAX_TIMER_MS ? Math.max(1, Math.ceil(createTimeoutMs)) : 0;
  if (connectionOptions.enableKeepAlive === undefined) connectionOptions.enableKeepAlive = true;
  return {
    connectionOptions: connectionOptions as ConnectionOptions,
    poolOptions: poolOptions as Omit<PoolOptions<PromiseConnection>, 'adapter'>,
    policy: {
      resetOnRelease,
      dirtyRelease,
      ...(queryTimeoutMs === undefined ? {} : { queryTimeoutMs }),
      warn: typeof config.onError === 'function' ? config.onError : defaultOnError,
    },
  };
}
