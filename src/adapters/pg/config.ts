/**
 * The drop-in's configuration: pg's `PoolConfig` with pg-pool's meanings, mapped onto
 * lifeguard's pool options, plus lifeguard's own options. What pg-pool would take but
 * lifeguard cannot honour is refused with a clear error.
 */
import pg from 'pg';
import { InvalidPoolOptionError, POOL_DEFAULTS } from '../../index.js';
import type { PostgresPoolConfig } from '../postgres/index.js';

/** A pg-pool log function: pg-pool calls it with a message and, sometimes, an error. */
export type PoolLog = (...messages: unknown[]) => void;

/**
 * `new Pool(config)`: pg's `PoolConfig` (client fields, `max`, `min`, `idleTimeoutMillis`,
 * `connectionTimeoutMillis`, `maxLifetimeSeconds`, `maxUses`, `allowExitOnIdle`, `onConnect`,
 * `verify`, `log`, `Client`, `Promise`) with pg-pool's meanings, and any of lifeguard's
 * options (`acquireTimeoutMs`, `queuePolicy`, `circuitBreaker`, `resetOnRelease`,
 * `queryTimeoutMs`, …; see `createPostgresPool`). A lifeguard option given alongside the
 * pg-pool option it replaces (`idleTimeoutMs` and `idleTimeoutMillis`) is refused.
 */
export interface PoolConfig extends Omit<pg.PoolConfig, 'Client' | 'onConnect' | 'verify'>, Omit<PostgresPoolConfig, keyof pg.PoolConfig> {
  /** A `pg.Client` subclass to create connections with. @default pg.Client */
  readonly Client?: typeof pg.Client | undefined;
  /** Runs on each new connection before it is handed out; a throw or rejection fails that connect. */
  readonly onConnect?: ((client: pg.PoolClient) => void | Promise<void>) | undefined;
  /** pg-pool's callback form of `onConnect`: call `done(error?)`. */
  readonly verify?: ((client: pg.PoolClient, done: (error?: Error) => void) => void) | undefined;
}

/** What the drop-in itself enforces on top of the core: the pg-pool options with no core equivalent. */
export interface DropInPolicy {
  readonly log: PoolLog;
  /** A `log` function was given (pg-pool's removal lines cost a subscription: only then). */
  readonly logging: boolean;
  readonly onConnect: ((client: pg.Client) => unknown) | undefined;
  readonly verify: ((client: pg.Client, done: (error?: Error) => void) => void) | undefined;
  readonly Promise: PromiseConstructorLike | undefined;
  readonly Client: typeof pg.Client;
}

/** pg-pool's own keys; everything else is a client field or a lifeguard option. */
const PG_POOL_KEYS = new Set([
  'max', 'min', 'poolSize', 'idleTimeoutMillis', 'connectionTimeoutMillis', 'maxLifetimeSeconds', 'maxUses', 'allowExitOnIdle',
  'onConnect', 'verify', 'log', 'Client', 'Promise',
]);

/** The lifeguard option each pg-pool option is mapped onto: giving both is ambiguous. */
const REPLACED_BY: Readonly<Record<string, readonly string[]>> = {
  idleTimeoutMillis: ['idleTimeoutMs'],
  connectionTimeoutMillis: ['acquireTimeoutMs', 'createTimeoutMs'],
  maxLifetimeSeconds: ['maxLifetimeMs'],
};

/** pg-pool's default `idleTimeoutMillis`. */
const PG_IDLE_TIMEOUT_MS = 10_000;

function expected(option: string, expectation: string, value: unknown): never {
  throw InvalidPoolOptionError.expected(option, expectation, value);
}

/** pg-pool reads these as "0 or absent means no limit": a number >= 0. */
function nonNegative(option: string, value: unknown): number | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'number' || Number.isNaN(value) || value < 0) expected(option, 'a number >= 0 (0: no limit)', value);
  return value;
}

function optionalFunction<F>(option: string, value: unknown): F | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'function') expected(option, 'a function', value);
  return value as F;
}

/** `Client` must be pg's: lifeguard reads its protocol state (transaction status, cancel keys). */
function checkClient(value: unknown): typeof pg.Client {
  if (value === undefined) return pg.Client;
  if (value === pg.Client || (typeof value === 'function' && value.prototype instanceof pg.Client)) return value as typeof pg.Client;
  throw new InvalidPoolOptionError(
    'Client',
    'Expected `Client` to be pg.Client or a subclass of it, got ' +
      (typeof value === 'function' ? `a class or function (${value.name || 'anonymous'}) that is not` : typeof value) +
      ": lifeguard reads pg.Client's protocol state to keep dirty and dead connections out of the pool (pg-native's Client is not supported)",
  );
}

/** Split `new Pool(config)` into the config `createPostgresPool` validates and the drop-in's own policy. */
export function resolveDropInConfig(given: PoolConfig | undefined): { config: PostgresPoolConfig; policy: DropInPolicy } {
  if (given === undefined || given === null) given = {};
  if (typeof given !== 'object' || Array.isArray(given)) {
    expected('config', 'a pg PoolConfig object (pass a URL as { connectionString })', given);
  }
  const source = given as Record<string, unknown>;
  const config: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(source)) {
    if (PG_POOL_KEYS.has(key) || value === undefined) continue;
    config[key] = value;
  }
  for (const [pgKey, replacements] of Object.entries(REPLACED_BY)) {
    const clash = replacements.find((key) => source[key] !== undefined);
    if (source[pgKey] !== undefined && source[pgKey] !== null && clash !== undefined) {
      throw new InvalidPoolOptionError(pgKey, `Pass either \`${pgKey}\` (pg-pool's) or \`${clash}\` (lifeguard's), not both: they set the same limit`);
    }
  }

  const max = source.max ?? source.poolSize;
  if (max !== undefined) config.max = max;
  if (source.min !== undefined) config.min = source.min;

  const idle = nonNegative('idleTimeoutMillis', source.idleTimeoutMillis);
  if (source.idleTimeoutMs === undefined) config.idleTimeoutMs = idle === undefined ? PG_IDLE_TIMEOUT_MS : idle === 0 ? Infinity : idle;

  // pg-pool's one timeout bounds the whole checkout, connecting included. Absent, lifeguard's
  // acquire deadline applies (pg-pool would wait forever); 0 asks for no limit, as in pg-pool.
  const connect = nonNegative('connectionTimeoutMillis', source.connectionTimeoutMillis);
  if (connect !== undefined) {
    config.acquireTimeoutMs = connect === 0 ? Infinity : connect;
    config.createTimeoutMs = connect === 0 ? POOL_DEFAULTS.createTimeoutMs : Math.min(connect, POOL_DEFAULTS.createTimeoutMs);
  }

  const lifetime = nonNegative('maxLifetimeSeconds', source.maxLifetimeSeconds);
  if (lifetime !== undefined) config.maxLifetimeMs = lifetime === 0 ? Infinity : lifetime * 1000;

  // The core's own option: pg-pool's name and meaning, validated there.
  if (source.maxUses !== undefined) config.maxUses = source.maxUses;
  // lifeguard never keeps a process alive for idle connections: both values are honoured.
  if (source.allowExitOnIdle !== undefined && typeof source.allowExitOnIdle !== 'boolean') expected('allowExitOnIdle', 'a boolean', source.allowExitOnIdle);
  const PromiseImpl = source.Promise;
  if (PromiseImpl !== undefined && typeof PromiseImpl !== 'function') expected('Promise', 'a Promise constructor', PromiseImpl);

  const logGiven = optionalFunction<PoolLog>('log', source.log);
  // A log that throws is ignored: logging must not fail a checkout, nor crash the process from a timer.
  const log: PoolLog =
    logGiven === undefined
      ? () => {}
      : (...messages) => {
          try {
            logGiven(...messages);
          } catch {
            // ignored, as above
          }
        };
  // pg.Pool never raises process warnings (lifeguard's default for errors nobody awaits, such
  // as a create that fails after its caller timed out): they go to pg-pool's `log` instead,
  // unless lifeguard's `onError` is given.
  if (source.onError === undefined) config.onError = (error: unknown) => log('background error', error);

  return {
    config: config as PostgresPoolConfig,
    policy: {
      log,
      logging: logGiven !== undefined,
      onConnect: optionalFunction('onConnect', source.onConnect),
      verify: optionalFunction('verify', source.verify),
      Promise: PromiseImpl === global.Promise ? undefined : (PromiseImpl as PromiseConstructorLike | undefined),
      Client: checkClient(source.Client),
    },
  };
}
