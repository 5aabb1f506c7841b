/**
 * Configuration of a PostgreSQL pool: which keys are pool options, `pg.ClientConfig` fields
 * or adapter policy; their validation; and the merge explicit > URL > `PG*` env > defaults.
 */
import { createRequire } from 'node:module';
import type pg from 'pg';
import { InvalidPoolOptionError } from '../../pool/errors.js';
import { DEFAULTS, defaultOnError, POOL_OPTION_KEYS, type PoolOptions } from '../../pool/options.js';
import type { SessionLimitCheck } from './index.js';

// The URL parser pg itself uses, loaded from pg's own dependencies: same semantics as pg, no extra dependency.
const requireFromPg = createRequire(createRequire(import.meta.url).resolve('pg'));
const parseConnectionString = (requireFromPg('pg-connection-string') as { parse(url: string): Record<string, unknown> }).parse;

/** `pg.ClientConfig` fields lifeguard passes through to each client. */
const CLIENT_KEYS: ReadonlySet<string> = new Set([
  'user', 'database', 'password', 'port', 'host', 'connectionString', 'keepAlive', 'keepAliveInitialDelayMillis', 'stream',
  'statement_timeout', 'lock_timeout', 'idle_in_transaction_session_timeout', 'query_timeout', 'ssl', 'types', 'options',
  'application_name', 'fallback_application_name', 'client_encoding', 'binary', 'parseInputDatesAsUTC', 'enableChannelBinding',
]);
const ADAPTER_KEYS: ReadonlySet<string> = new Set(['resetOnRelease', 'dirtyRelease', 'queryTimeoutMs']);

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
export interface PostgresPoolConfig extends PostgresClientConfig, Omit<PoolOptions<pg.Client>, 'adapter'> {
  /** On every release: 'rollback' rolls back an open transaction (instead of destroying the client), 'discard' also cleans the session. @default 'none' */
  readonly resetOnRelease?: ResetOnRelease;
  /** A client released inside a (possibly failed) transaction when resetOnRelease is 'none'. Busy or broken clients are always destroyed. @default 'destroy' */
  readonly dirtyRelease?: DirtyRelease;
  /** Client-side bound on each query; when it fires the connection is destroyed. @default none */
  readonly queryTimeoutMs?: number;
}

/** Merge config: explicit fields > connection string > `PG*` environment (read by pg) > defaults. */
export function resolveClientConfig(config: PostgresClientConfig & { queryTimeoutMs?: number }, createTimeoutMs: number): pg.ClientConfig {
  const explicit: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(config)) {
    if (CLIENT_KEYS.has(key) && key !== 'connectionString' && value !== undefined) explicit[key] = value;
  }
  let fromUrl: Record<string, unknown> = {};
  if (config.connectionString !== undefined) {
    if (typeof config.connectionString !== 'string' || !/^postgres(ql)?:\/\//.test(config.connectionString)) {
      // Never echo the string: it may hold a password.
      throw new InvalidPoolOptionError('connectionString', 'Expected `connectionString` to be a postgres:// or postgresql:// URL');
    }
    try {
      new URL(config.connectionString);
      fromUrl = Object.fromEntries(Object.entries(parseConnectionString(config.connectionString)).filter(([, value]) => value !== undefined && value !== null));
    } catch {
      throw new InvalidPoolOptionError('connectionString', 'Expected `connectionString` to be a valid postgres:// URL (it could not be parsed)');
    }
    if (typeof fromUrl.port === 'string') fromUrl.port = Number(fromUrl.port);
  }
  const merged: Record<string, unknown> = {
    fallback_application_name: 'lifeguard',
    keepAlive: true,
    ...fromUrl,
    ...explicit,
  };
  if (createTimeoutMs !== Infinity) merged.connectionTimeoutMillis = Math.max(1, Math.ceil(createTimeoutMs));
  if (config.queryTimeoutMs !== undefined) merged.query_timeout = config.queryTimeoutMs;
  return merged as pg.ClientConfig;
}

/** A validated configuration: what each pg.Client gets, the core pool's options, and the adapter's policy. */
export interface ResolvedPostgresConfig {
  readonly clientConfig: pg.ClientConfig;
  readonly poolOptions: Omit<PoolOptions<pg.Client>, 'adapter'>;
  readonly policy: { resetOnRelease: ResetOnRelease; dirtyRelease: DirtyRelease; sessionLimits?: SessionLimitCheck };
}

/** Split and validate `createPostgresPool`'s config; throws `InvalidPoolOptionError` naming the option. */
export function resolvePostgresConfig(config: PostgresPoolConfig): ResolvedPostgresConfig {
  if (typeof config !== 'object' || config === null) {
    throw InvalidPoolOptionError.expected('config', 'an object', config);
  }
  const poolOptions: Record<string, unknown> = {};
  for (const key of Object.keys(config)) {
    if (key === 'adapter') throw new InvalidPoolOptionError('adapter', 'createPostgresPool builds its own adapter: do not pass `adapter`');
    if (POOL_OPTION_KEYS.has(key)) poolOptions[key] = (config as Record<string, unknown>)[key];
    else if (key === 'connectionTimeoutMillis') {
      throw new InvalidPoolOptionError(key, 'Use the pool option `createTimeoutMs` instead of `connectionTimeoutMillis`: it bounds the whole create (connect, TLS, authentication)');
    } else if (!CLIENT_KEYS.has(key) && !ADAPTER_KEYS.has(key)) {
      throw new InvalidPoolOptionError(key, `Unknown option \`${key}\`: expected a pool option, a pg.ClientConfig field, or resetOnRelease/dirtyRelease/queryTimeoutMs`);
    }
  }
  const resetOnRelease = config.resetOnRelease ?? 'none';
  if (!['none', 'rollback', 'discard'].includes(resetOnRelease)) {
    throw InvalidPoolOptionError.expected('resetOnRelease', "'none', 'rollback' or 'discard'", resetOnRelease);
  }
  const dirtyRelease = config.dirtyRelease ?? 'destroy';
  if (!['destroy', 'rollback'].includes(dirtyRelease)) throw InvalidPoolOptionError.expected('dirtyRelease', "'destroy' or 'rollback'", dirtyRelease);
  if (config.queryTimeoutMs !== undefined && !(typeof config.queryTimeoutMs === 'number' && config.queryTimeoutMs > 0 && Number.isFinite(config.queryTimeoutMs))) {
    throw InvalidPoolOptionError.expected('queryTimeoutMs', 'a finite number of milliseconds > 0', config.queryTimeoutMs);
  }
  const createTimeoutMs = typeof config.createTimeoutMs === 'number' ? config.createTimeoutMs : DEFAULTS.createTimeoutMs;
  const clientConfig = resolveClientConfig(config, createTimeoutMs);
  return {
    clientConfig,
    poolOptions: poolOptions as Omit<PoolOptions<pg.Client>, 'adapter'>,
    policy: {
      resetOnRelease,
      dirtyRelease,
      sessionLimits: {
        idleTimeoutMs: typeof config.idleTimeoutMs === 'number' ? config.idleTimeoutMs : DEFAULTS.idleTimeoutMs,
        maxLifetimeMs: typeof config.maxLifetimeMs === 'number' ? config.maxLifetimeMs : DEFAULTS.maxLifetimeMs,
        keepaliveMs: typeof config.keepaliveMs === 'number' ? config.keepaliveMs : DEFAULTS.keepaliveMs,
        warn: typeof config.onError === 'function' ? config.onError : defaultOnError,
      },
    },
  };
}
