/**
 * `lifeguard/postgres`: PostgreSQL over node-postgres (`pg`, a peer dependency).
 * {@link createPostgresPool} makes a {@link PostgresPool}; the error classifiers say how a
 * PostgreSQL or socket error affects the pool.
 *
 * @module lifeguard/postgres
 */
import net from 'node:net';
import pg from 'pg';
import { createPool, type Lease, type Pool, type PoolHealth, type PoolStats } from '../../index.js';
import { InvalidPoolOptionError, PoolError } from '../../pool/errors.js';
import type { AcquireOptions, Adapter, PoolOptions } from '../../pool/options.js';
import { resolvePostgresConfig, type DirtyRelease, type PostgresPoolConfig, type ResetOnRelease } from './config.js';
import { kSetFace } from '../../pool/pool.js';
import { isConnectionFatal, isRetryableConnectError, isTransactionRetryable } from './classify.js';

export { isConnectionFatal, isRetryableConnectError, isTransactionRetryable } from './classify.js';
export { resolveClientConfig } from './config.js';
export type { DirtyRelease, PostgresClientConfig, PostgresPoolConfig, ResetOnRelease } from './config.js';

/** A transaction isolation level for `withTransaction`'s `BEGIN ISOLATION LEVEL …`. */
export type IsolationLevel = 'read committed' | 'repeatable read' | 'serializable';

/** Options of {@link PostgresPool.withTransaction}: the acquire options plus the transaction's own. */
export interface TransactionOptions extends AcquireOptions {
  /** Isolation level of the transaction. @default the server's default_transaction_isolation */
  readonly isolation?: IsolationLevel;
  /** Re-run the whole transaction on 40001/40P01: `true` = 3 retries. @default false */
  readonly retry?: boolean | {
    /** Re-runs after the first attempt (an integer >= 0). */
    readonly retries: number;
  };
  /** Start the transaction `READ ONLY`. @default false */
  readonly readOnly?: boolean;
}

/** A {@link Pool} of `pg.Client`s, made by {@link createPostgresPool}, with `query` and `withTransaction` helpers. */
export interface PostgresPool extends Pool<pg.Client> {
  /** Acquire, run one query, release. */
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(text: string | pg.QueryConfig, params?: unknown[]): Promise<pg.QueryResult<R>>;
  /** BEGIN, run `fn`, COMMIT; ROLLBACK when it throws. */
  withTransaction<R>(fn: (client: pg.Client) => Promise<R> | R, options?: TransactionOptions): Promise<R>;
}

interface ClientState {
  broken: boolean;
  /** The error the connection died of (a FATAL such as 25P03, a socket error): the cause of later "not queryable" errors. */
  lastError: unknown;
  /** A CancelRequest was already sent for the query running when the connection died. */
  cancelled: boolean;
}
const kState = Symbol('lifeguard.postgres');
type TrackedClient = pg.Client & { [kState]: ClientState; _queryQueue?: unknown[]; readyForQuery?: boolean };

const DISCARD_SQL = 'CLOSE ALL; SET SESSION AUTHORIZATION DEFAULT; RESET ALL; UNLISTEN *; SELECT pg_advisory_unlock_all(); DISCARD TEMP; DISCARD SEQUENCES;';
const ISOLATION_SQL: Record<IsolationLevel, string> = {
  'read committed': 'READ COMMITTED',
  'repeatable read': 'REPEATABLE READ',
  serializable: 'SERIALIZABLE',
};

function state(client: pg.Client): ClientState {
  return (client as TrackedClient)[kState];
}

/** 'I' idle, 'T' in a transaction, 'E' in a failed one; null before the first ReadyForQuery. */
function transactionStatus(client: pg.Client): string | null {
  const tracked = client as pg.Client & { getTransactionStatus?: () => string | null; _txStatus?: string | null };
  return tracked.getTransactionStatus?.() ?? tracked._txStatus ?? null;
}

/** Mid-query: a query is running or queued. */
function busy(client: pg.Client): boolean {
  const tracked = client as TrackedClient & { _activeQuery?: unknown; _sentQueryQueue?: unknown[] };
  // Not `readyForQuery === false` alone: after an ErrorResponse pg has no active query and is
  // only waiting for the ReadyForQuery that follows it (a separate packet).
  return tracked._activeQuery != null || (tracked._queryQueue?.length ?? 0) > 0 || (tracked._sentQueryQueue?.length ?? 0) > 0;
}

/** Ask the server to cancel what `client` is running (CancelRequest on a new socket); best effort, bounded. */
function cancelRunning(client: pg.Client, force = false): Promise<void> {
  const c = client as pg.Client & { _activeQuery?: unknown; processID?: number; secretKey?: number; host?: string; port?: number };
  if ((!force && c._activeQuery == null) || !c.processID || c.secretKey === undefined || !c.host || c.host.startsWith('/')) return Promise.resolve();
  return new Promise<void>((resolve) => {
    const message = Buffer.alloc(16);
    message.writeInt32BE(16, 0);
    message.writeInt32BE(80877102, 4);
    message.writeInt32BE(c.processID!, 8);
    message.writeInt32BE(c.secretKey! | 0, 12);
    const socket = net.connect(c.port ?? 5432, c.host!, () => socket.end(message));
    const timer = setTimeout(() => socket.destroy(), 1000).unref();
    socket.on('error', () => {});
    socket.on('close', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

/** Kill the socket now: used when the protocol state is unknown (timeouts, aborts). */
function hardClose(client: pg.Client): void {
  const stream = (client as unknown as { connection?: { stream?: { destroy(): void } } }).connection?.stream;
  stream?.destroy();
}

/** `SHOW` output of a time setting ('0', '1500', '1s', '5min', '100ms') in milliseconds. */
export function parsePgDuration(value: string): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*(us|ms|s|min|h|d)?\s*$/.exec(value);
  if (match === null) return NaN;
  const unit = { us: 0.001, ms: 1, s: 1000, min: 60_000, h: 3_600_000, d: 86_400_000 }[match[2] ?? 'ms']!;
  return Number(match[1]) * unit;
}

/**
 * The pool's timing options that {@link postgresAdapter} compares with the server's
 * `idle_session_timeout` on the first connection, and where the `POOL_CONFIG_WARNING` goes.
 */
export interface SessionLimitCheck {
  /** The pool's `idleTimeoutMs`. */
  readonly idleTimeoutMs: number;
  /** The pool's `maxLifetimeMs`. */
  readonly maxLifetimeMs: number;
  /** The pool's `keepaliveMs`. */
  readonly keepaliveMs: number;
  /** Receives the warning (a `PoolError` with code `POOL_CONFIG_WARNING`); usually the pool's `onError`. */
  readonly warn: (error: unknown) => void;
}

/**
 * Once per pool, on the first connection: a server `idle_session_timeout` (PG 14+) at or
 * below the pool's idle timeout or lifetime means the server kills pooled connections
 * before the pool retires them (HikariCP's maxLifetime advice). They are evicted quietly
 * when that happens, but the configuration deserves one warning.
 */
async function checkSessionLimits(client: pg.Client, check: SessionLimitCheck): Promise<void> {
  let value: string;
  try {
    const { rows } = await client.query<{ idle_session_timeout: string }>('SHOW idle_session_timeout');
    value = rows[0]?.idle_session_timeout ?? '0';
  } catch {
    return; // PostgreSQL < 14 has no such setting.
  }
  const serverMs = parsePgDuration(value);
  // Keepalive pings more often than the server's limit keep idle sessions alive.
  if (!(serverMs > 0) || check.keepaliveMs < serverMs) return;
  const limits = [check.idleTimeoutMs >= serverMs ? `idleTimeoutMs (${check.idleTimeoutMs} ms)` : undefined,
    check.maxLifetimeMs >= serverMs ? `maxLifetimeMs (${check.maxLifetimeMs} ms)` : undefined].filter((x) => x !== undefined);
  if (limits.length === 0) return;
  const warning = new PoolError(
    `The server's idle_session_timeout (${value}) is not above the pool's ${limits.join(' and ')}: the server will close idle pooled connections first. ` +
      'Set idleTimeoutMs and maxLifetimeMs, or keepaliveMs, several seconds shorter than idle_session_timeout, or raise it.',
    'POOL_CONFIG_WARNING',
  );
  try {
    check.warn(warning);
  } catch {
    // A throwing handler must not fail the create.
  }
}

/**
 * pg rejects queries on a dead connection with a bare "not queryable" error: from now on,
 * give such errors the error the connection died of as their cause. Installed when the
 * connection dies, so a live client's queries pay nothing for it.
 */
function causeLaterErrors(client: pg.Client, died: unknown): void {
  const query = client.query;
  client.query = function (this: pg.Client, ...args: unknown[]): unknown {
    const result: unknown = (query as (...a: unknown[]) => unknown).apply(this, args);
    if (!(result instanceof Promise)) return result;
    return result.catch((error: unknown) => {
      if (error instanceof Error && error.cause === undefined && error !== died) error.cause = died;
      throw error;
    });
  } as typeof client.query;
}

/**
 * The `pg` adapter behind {@link createPostgresPool}: one narrow object the generic core
 * drives. `clientConfig` is final (see {@link resolveClientConfig}); `policy` is the release
 * policy and the optional `idle_session_timeout` check.
 */
export function postgresAdapter(
  clientConfig: pg.ClientConfig,
  policy: { resetOnRelease: ResetOnRelease; dirtyRelease: DirtyRelease; sessionLimits?: SessionLimitCheck },
): Adapter<pg.Client> {
  let sessionLimits = policy.sessionLimits;
  // A reset on release (any mode but 'none') rolls an open transaction back, so dirty clients are reused.
  const rollbackDirty = policy.dirtyRelease === 'rollback' || policy.resetOnRelease !== 'none';
  const adapter: Adapter<pg.Client> = {
    async create({ signal, evict }) {
      const client = new pg.Client(clientConfig) as TrackedClient;
      const clientState: ClientState = { broken: false, lastError: undefined, cancelled: false };
      client[kState] = clientState;
      // For the client's whole life: a server that goes away while the client is idle or
      // leased emits 'error'; without a listener that would crash the process. The pool
      // hears of it at once, so a dead idle client is replaced now, not at its next borrow.
      client.on('error', (error: unknown) => {
        clientState.broken = true;
        if (clientState.lastError === undefined) {
          clientState.lastError = error;
          causeLaterErrors(client, error);
        }
        evict();
      });
      client.on('end', () => {
        clientState.broken = true;
        evict();
      });
      // A connection cut mid-query (a reset, a proxy dying) leaves its server process running
      // the query, holding a session the pool no longer counts. Cancel it; this runs before
      // pg's own handlers, which forget the active query.
      const connection = (client as unknown as { connection: NodeJS.EventEmitter }).connection;
      const onDeath = (): void => {
        if (!clientState.cancelled && busy(client)) {
          clientState.cancelled = true;
          void cancelRunning(client, true);
        }
      };
      connection.prependListener('error', onDeath);
      connection.prependListener('end', onDeath);
      const onAbort = (): void => {
        clientState.broken = true;
        hardClose(client);
      };
      signal.addEventListener('abort', onAbort, { once: true });
      try {
        await client.connect();
      } catch (error) {
        hardClose(client);
        throw error;
      } finally {
        signal.removeEventListener('abort', onAbort);
      }
      if (sessionLimits !== undefined) {
        const check = sessionLimits;
        sessionLimits = undefined;
        await checkSessionLimits(client, check);
      }
      if (signal.aborted) {
        hardClose(client);
        throw signal.reason;
      }
      return client;
    },

    async destroy(client, signal) {
      void cancelRunning(client);
      if (state(client).broken) {
        hardClose(client);
        return;
      }
      state(client).broken = true;
      // A polite end() waits for the server's FIN; past destroyTimeoutMs the socket is cut.
      const onAbort = (): void => hardClose(client);
      signal?.addEventListener('abort', onAbort, { once: true });
      try {
        await client.end();
      } catch {
        hardClose(client);
      } finally {
        signal?.removeEventListener('abort', onAbort);
      }
    },

    isBroken(client) {
      if (state(client).broken) return true;
      if (busy(client)) return true;
      const status = transactionStatus(client);
      return !rollbackDirty && (status === 'T' || status === 'E');
    },

    async ping(client, signal) {
      await bounded(client, signal, () => client.query('SELECT 1'));
    },

    isRetryable: isRetryableConnectError,
    isFatal: isConnectionFatal,
  };
  if (rollbackDirty) {
    adapter.reset = async (client, signal) => {
      const status = transactionStatus(client);
      if (status === 'T' || status === 'E') await bounded(client, signal, () => client.query('ROLLBACK'));
      if (policy.resetOnRelease === 'discard') await bounded(client, signal, () => client.query(DISCARD_SQL));
    };
  }
  return adapter;
}

/** Run a query bounded by `signal`; when it aborts the connection is killed, since the query is still in flight. */
async function bounded<R>(client: pg.Client, signal: AbortSignal, run: () => Promise<R>): Promise<R> {
  signal.throwIfAborted();
  const onAbort = (): void => {
    state(client).broken = true;
    hardClose(client);
  };
  signal.addEventListener('abort', onAbort, { once: true });
  try {
    return await run();
  } finally {
    signal.removeEventListener('abort', onAbort);
  }
}

/**
 * A pool of `pg.Client`s. Config: `pg.ClientConfig` fields and `connectionString`
 * (explicit > URL > `PG*` env > defaults), the core pool options, and
 * `resetOnRelease` / `dirtyRelease` / `queryTimeoutMs`.
 */
export function createPostgresPool(config: PostgresPoolConfig = {}): PostgresPool {
  const resolved = resolvePostgresConfig(config);
  const adapter = postgresAdapter(resolved.clientConfig, resolved.policy);
  const pool = createPool<pg.Client>({ ...resolved.poolOptions, adapter });
  return new PostgresPoolImpl(pool);
}

class PostgresPoolImpl implements PostgresPool {
  readonly #pool: Pool<pg.Client>;

  constructor(pool: Pool<pg.Client>) {
    this.#pool = pool;
    // Events about the core pool name this object, the one users hold.
    (pool as unknown as { [kSetFace](face: Pool<pg.Client>): void })[kSetFace](this);
  }

  get closed(): boolean {
    return this.#pool.closed;
  }

  acquire(options?: AcquireOptions): Promise<Lease<pg.Client>> {
    return this.#pool.acquire(options);
  }

  withConnection<R>(fn: (client: pg.Client, signal: AbortSignal) => Promise<R> | R, options?: AcquireOptions): Promise<R> {
    return this.#pool.withConnection(fn, options);
  }

  stats(): PoolStats {
    return this.#pool.stats();
  }

  health(): PoolHealth {
    return this.#pool.health();
  }

  warmup(): Promise<void> {
    return this.#pool.warmup();
  }

  close(options?: { timeoutMs?: number }): Promise<void> {
    return this.#pool.close(options);
  }

  drain(): Promise<void> {
    return this.#pool.drain();
  }

  resume(): void {
    this.#pool.resume();
  }

  invalidate(): void {
    this.#pool.invalidate();
  }

  get draining(): boolean {
    return this.#pool.draining;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.#pool.close();
  }

  query<R extends pg.QueryResultRow = pg.QueryResultRow>(text: string | pg.QueryConfig, params?: unknown[]): Promise<pg.QueryResult<R>> {
    if (typeof text === 'function') {
      return Promise.reject(new TypeError('pool.query(fn) is not supported: pass SQL text (or a QueryConfig); use withConnection(fn) to run a function'));
    }
    if (typeof text !== 'string' && (typeof text !== 'object' || text === null || typeof text.text !== 'string')) {
      return Promise.reject(new TypeError('pool.query expects SQL text or a { text, values } QueryConfig'));
    }
    if (params !== undefined && !Array.isArray(params)) return Promise.reject(new TypeError('pool.query expects params to be an array'));
    return this.#pool.withConnection((client) => client.query<R>(text as string, params));
  }

  async withTransaction<R>(fn: (client: pg.Client) => Promise<R> | R, options: TransactionOptions = {}): Promise<R> {
    if (typeof fn !== 'function') throw new TypeError('withTransaction expects a function');
    const { isolation, retry = false, readOnly = false, ...acquireOptions } = options;
    if (isolation !== undefined && !(isolation in ISOLATION_SQL)) {
      throw InvalidPoolOptionError.expected('isolation', "'read committed', 'repeatable read' or 'serializable'", isolation);
    }
    if (typeof retry !== 'boolean' && (typeof retry !== 'object' || retry === null)) {
      throw InvalidPoolOptionError.expected('retry', 'true, false or { retries }', retry);
    }
    const retries = retry === true ? 3 : retry === false ? 0 : retry.retries;
    if (!Number.isInteger(retries) || retries < 0) throw InvalidPoolOptionError.expected('retry.retries', 'an integer >= 0', retries);
    const begin = `BEGIN${isolation === undefined ? '' : ` ISOLATION LEVEL ${ISOLATION_SQL[isolation]}`}${readOnly ? ' READ ONLY' : ''}`;
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.#transactionOnce(fn, begin, acquireOptions);
      } catch (error) {
        if (attempt >= retries || !isTransactionRetryable(error)) throw error;
        // Jittered, growing pause so the conflicting transactions do not collide again in lockstep.
        await new Promise((resolve) => setTimeout(resolve, Math.random() * 10 * 2 ** attempt));
      }
    }
  }

  async #transactionOnce<R>(fn: (client: pg.Client) => Promise<R> | R, begin: string, options: AcquireOptions): Promise<R> {
    const lease = await this.#pool.acquire(options);
    const client = lease.resource;
    let result: R;
    try {
      await client.query(begin);
      result = await fn(client);
      await client.query('COMMIT');
    } catch (error) {
      try {
        if (!isConnectionFatal(error)) await client.query('ROLLBACK');
      } catch {
        await lease.destroy(error);
        throw error;
      }
      if (isConnectionFatal(error)) await lease.destroy(error);
      else await lease.release();
      throw error;
    }
    await lease.release();
    return result;
  }
}
