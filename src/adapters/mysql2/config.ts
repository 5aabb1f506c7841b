/**
 * The drop-in's configuration: mysql2's `PoolOptions` with mysql2's meanings, mapped onto
 * `createMysqlPool`'s config, plus lifeguard's own options. What mysql2's pool would take
 * but lifeguard cannot honour is refused naming the option; a mysql2 option given with the
 * lifeguard option it maps to is refused as ambiguous.
 */
import { InvalidPoolOptionError } from '../../index.js';
import type { MysqlPoolConfig, ResetOnRelease } from '../mysql/config.js';

/**
 * `createPool(config)`: mysql2's pool options (`connectionLimit`, `queueLimit`,
 * `waitForConnections`, `idleTimeout`, `maxIdle`, `connectTimeout`, `resetOnRelease`, every
 * connection option and `uri`) with mysql2's meanings, and any of lifeguard's options
 * (`acquireTimeoutMs`, `queuePolicy`, `circuitBreaker`, `dirtyRelease`, `queryTimeoutMs`, …;
 * see `createMysqlPool`).
 */
export interface PoolOptions extends Omit<MysqlPoolConfig, 'resetOnRelease'> {
  /** Most connections at once (lifeguard's `max`). mysql2's 0 ("no limit") is refused. @default 10 */
  readonly connectionLimit?: number;
  /** Most callers waiting (lifeguard's `maxWaiting`); 0 means no limit, as in mysql2. @default 0 */
  readonly queueLimit?: number;
  /** `false`: a checkout fails at once (`PoolQueueFullError`) when every connection is in use and none can be opened. @default true */
  readonly waitForConnections?: boolean;
  /** Close connections idle this long, in ms (lifeguard's `idleTimeoutMs`). @default 60000 */
  readonly idleTimeout?: number;
  /** mysql2's cap on idle connections; lifeguard closes idle ones after `idleTimeout` instead (see the docs). Must be >= `min`. */
  readonly maxIdle?: number;
  /** Bound on opening one connection, in ms (lifeguard's `createTimeoutMs`). @default 10000 */
  readonly connectTimeout?: number;
  /** mysql2's `true` resets the session on release (COM_RESET_CONNECTION); lifeguard's 'none' | 'rollback' | 'reset' are taken too. @default false */
  readonly resetOnRelease?: boolean | ResetOnRelease;
}

/** mysql2's default `connectionLimit` and `idleTimeout`. */
const MYSQL2_CONNECTION_LIMIT = 10;
const MYSQL2_IDLE_TIMEOUT_MS = 60_000;

/** Each mysql2 pool option and the lifeguard option it sets: giving both is ambiguous. */
const REPLACED_BY: Readonly<Record<string, readonly string[]>> = {
  connectionLimit: ['max'],
  queueLimit: ['maxWaiting'],
  waitForConnections: ['maxWaiting'],
  idleTimeout: ['idleTimeoutMs'],
  connectTimeout: ['createTimeoutMs'],
};

function expected(option: string, expectation: string, value: unknown): never {
  throw InvalidPoolOptionError.expected(option, expectation, value);
}

/** mysql2 reads its numeric pool options with `Number()`: accept numbers and numeric strings (a URL's or an env's). */
function count(option: string, value: unknown, min: number): number | undefined {
  if (value === undefined || value === null) return undefined;
  const n = typeof value === 'string' && /^\d+$/.test(value.trim()) ? Number(value) : value;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < min) expected(option, `an integer >= ${min}`, value);
  return n;
}

/** mysql2's pool options, which a URL's query string may carry too (`mysql://…/db?connectionLimit=5`). */
const URL_POOL_KEYS = ['connectionLimit', 'queueLimit', 'waitForConnections', 'idleTimeout', 'maxIdle', 'connectTimeout', 'acquireTimeout'];

/**
 * Take mysql2's pool options out of `uri`'s query string (mysql2 reads them there; the
 * connection options do not take them): explicit options win. A URL that does not parse is
 * left as it is, for the connection options' validation to report without echoing it.
 */
function liftUrlPoolOptions(source: Record<string, unknown>): Record<string, unknown> {
  if (typeof source.uri !== 'string') return source;
  let url: URL;
  try {
    url = new URL(source.uri);
  } catch {
    return source;
  }
  const lifted: Record<string, unknown> = {};
  for (const key of URL_POOL_KEYS) {
    const raw = url.searchParams.get(key);
    if (raw === null) continue;
    url.searchParams.delete(key);
    // As mysql2 reads a URL's values: JSON when it parses (true, 10), else the text.
    let value: unknown = raw;
    try {
      value = JSON.parse(raw);
    } catch {
      // A plain string: the checks below name the option.
    }
    if (source[key] === undefined) lifted[key] = value;
  }
  return Object.keys(lifted).length === 0 && url.toString() === source.uri ? source : { ...source, ...lifted, uri: url.toString() };
}

/** Split mysql2's `createPool(config)` into `createMysqlPool`'s config; throws `InvalidPoolOptionError` naming the option. */
export function resolveDropInConfig(given: PoolOptions | string | undefined): MysqlPoolConfig {
  if (typeof given === 'string') given = { uri: given };
  if (given === undefined || given === null || typeof given !== 'object' || Array.isArray(given)) {
    expected('config', 'a mysql2 PoolOptions object or a mysql:// URL', given);
  }
  const source = liftUrlPoolOptions(given as Record<string, unknown>);
  for (const [mysql2Key, replacements] of Object.entries(REPLACED_BY)) {
    const clash = replacements.find((key) => source[key] !== undefined);
    if (source[mysql2Key] !== undefined && clash !== undefined) {
      throw new InvalidPoolOptionError(mysql2Key, `Pass either \`${mysql2Key}\` (mysql2's) or \`${clash}\` (lifeguard's), not both: they set the same limit`);
    }
  }
  const config: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(source)) {
    if (value !== undefined && !(key in REPLACED_BY) && key !== 'maxIdle' && key !== 'resetOnRelease' && key !== 'acquireTimeout') config[key] = value;
  }

  const limit = count('connectionLimit', source.connectionLimit, 0);
  if (limit === 0) {
    throw new InvalidPoolOptionError('connectionLimit', "Expected `connectionLimit` to be an integer >= 1, got 0: mysql2's 0 means no limit, which lifeguard does not offer (a pool's bound is what protects the server)");
  }
  if (source.max === undefined) config.max = limit ?? MYSQL2_CONNECTION_LIMIT;

  // mysql2's 0 is "no limit"; lifeguard's maxWaiting 0 would refuse every wait.
  const queueLimit = count('queueLimit', source.queueLimit, 0);
  const wait = source.waitForConnections;
  if (wait !== undefined && typeof wait !== 'boolean') expected('waitForConnections', 'a boolean', wait);
  if (wait === false && queueLimit !== undefined && queueLimit > 0) {
    throw new InvalidPoolOptionError('queueLimit', `\`queueLimit: ${queueLimit}\` has no meaning with \`waitForConnections: false\`, where no caller ever waits: pass one or the other`);
  }
  // maxWaiting counts callers waiting for a connection to come back; one a new connection will serve is not refused (mysql2 opens it too).
  if (wait === false) config.maxWaiting = 0;
  else if (queueLimit !== undefined) config.maxWaiting = queueLimit === 0 ? Infinity : queueLimit;

  const idle = count('idleTimeout', source.idleTimeout, 1);
  if (source.idleTimeoutMs === undefined) config.idleTimeoutMs = idle ?? MYSQL2_IDLE_TIMEOUT_MS;

  const maxIdle = count('maxIdle', source.maxIdle, 0);
  const min = typeof source.min === 'number' ? source.min : 0;
  if (maxIdle !== undefined && maxIdle < min) {
    throw new InvalidPoolOptionError('maxIdle', `\`maxIdle: ${maxIdle}\` is below \`min: ${min}\`: the pool keeps \`min\` connections open, idle or not`);
  }

  const connect = count('connectTimeout', source.connectTimeout, 1);
  if (connect !== undefined) config.createTimeoutMs = connect;

  // mysql2 ignores `acquireTimeout` (mysqljs's option) with a warning; lifeguard honours what it asks for.
  if (source.acquireTimeout !== undefined) {
    if (source.acquireTimeoutMs !== undefined) {
      throw new InvalidPoolOptionError('acquireTimeout', 'Pass either `acquireTimeout` (mysqljs\'s) or `acquireTimeoutMs` (lifeguard\'s), not both: they set the same deadline');
    }
    config.acquireTimeoutMs = count('acquireTimeout', source.acquireTimeout, 1);
  }

  const reset = source.resetOnRelease;
  if (reset === true) config.resetOnRelease = 'reset';
  else if (reset === false) config.resetOnRelease = 'none';
  else if (reset !== undefined) config.resetOnRelease = reset;
  return config as MysqlPoolConfig;
}
