/**
 * `lifeguard/postgres`: PostgreSQL over node-postgres (`pg`, a peer dependency).
 * {@link createPostgresPool} makes a {@link PostgresPool}; the error classifiers say how a
 * PostgreSQL or socket error affects the pool.
 *
 * @module lifeguard/postgres
 */
import pg from 'pg';
import { createPool, type Lease, type Pool, type PoolHealth, type PoolStats } from '../../index.js';
import { PoolError } from '../../pool/errors.js';
import type { AcquireOptions, Adapter } from '../../pool/options.js';
import { resolvePostgresConfig, type DirtyRelease, type PostgresPoolConfig, type ResetOnRelease } from './config.js';
import { isRetryableConnectError } from './classify.js';
import { cancelRunning, probeServer, resolvedTarget } from './cancel.js';
import {
  busy, hardClose, internals, isClientFatal, recordListeners, refSocket, restoreListeners, state, track, transactionStatus,
} from './client-state.js';
import { runTransaction, type TransactionOptions } from './transaction.js';

export { isConnectionFatal, isRetryableConnectError, isTransactionRetryable } from './classify.js';
export { resolveClientConfig } from './config.js';
export type { DirtyRelease, PostgresClientConfig, PostgresPoolConfig, ResetOnRelease } from './config.js';
export { TransactionRolledBackError, type IsolationLevel, type TransactionOptions } from './transaction.js';

/** What `pool.query` calls back with, in the callback style of `pg.Pool#query`. */
export type QueryCallback<R extends pg.QueryResultRow = pg.QueryResultRow> = (error: Error | null, result?: pg.QueryResult<R>) => void;

/** A {@link Pool} of `pg.Client`s, made by {@link createPostgresPool}, with `query` and `withTransaction` helpers. */
export interface PostgresPool extends Pool<pg.Client> {
  /**
   * A submittable (`pg-cursor`, `pg-query-stream`, any object with a `submit` function),
   * returned as given: it runs on a client leased for it, which is released when the
   * submittable ends (read to the end or closed) or fails, and destroyed when the connection
   * failed. A submittable that is never finished or closed holds its client.
   */
  query<S extends pg.Submittable>(submittable: S): S;
  /** Acquire, run one query, release. */
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(text: string | pg.QueryConfig, params?: unknown[]): Promise<pg.QueryResult<R>>;
  /** Callback style, as `pg.Pool#query`: `callback(error, result)`; returns nothing. */
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(text: string | pg.QueryConfig, callback: QueryCallback<R>): void;
  /** Callback style with parameters, as `pg.Pool#query`: `callback(error, result)`; returns nothing. */
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(text: string | pg.QueryConfig, params: unknown[] | undefined, callback: QueryCallback<R>): void;
  /** BEGIN, run `fn`, COMMIT; ROLLBACK when it throws. Rejects with `TransactionRolledBackError` when the server rolled it back. */
  withTransaction<R>(fn: (client: pg.Client) => Promise<R> | R, options?: TransactionOptions): Promise<R>;
}

const DISCARD_SQL = 'CLOSE ALL; SET SESSION AUTHORIZATION DEFAULT; RESET ALL; UNLISTEN *; SELECT pg_advisory_unlock_all(); DISCARD TEMP; DISCARD SEQUENCES;';

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
  // Where the probe connects: resolved once, as pg resolves it, on first use.
  let target: ReturnType<typeof resolvedTarget> | undefined;
  const probeTimeoutMs = Math.min(clientConfig.connectionTimeoutMillis ?? 5000, 5000);
  const adapter: Adapter<pg.Client> = {
    async create({ signal, evict }) {
      const client = new pg.Client(clientConfig);
      const clientState = track(client);
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
      const connection = internals(client).connection;
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
      // The listeners the client has now are the pool's; a caller's are removed when its lease ends.
      recordListeners(client);
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
      // The core checks isBroken on every borrow and return, only ever on a client nobody
      // holds: the one point every lease boundary passes, a release handed straight to the
      // next waiter included (no ref() call comes between). O(1) unless a caller touched
      // the client's listeners.
      restoreListeners(client);
      if (state(client).broken) return true;
      if (busy(client)) return true;
      const status = transactionStatus(client);
      return !rollbackDirty && (status === 'T' || status === 'E');
    },

    async ping(client, signal) {
      await bounded(client, signal, () => client.query('SELECT 1'));
    },

    isRetryable: isRetryableConnectError,
    isFatal: isClientFatal,

    ref(client, active) {
      // Both ends of a lease (the core calls ref(true) as it hands a client out, ref(false)
      // as it goes idle): listeners a caller added are gone before anyone else can hear them.
      restoreListeners(client);
      refSocket(client, active);
    },

    probe(signal) {
      target ??= resolvedTarget(clientConfig);
      if (target.address === undefined) return Promise.reject(new Error('probe: no host to connect to'));
      return probeServer(target.address, target.identity, signal, probeTimeoutMs);
    },
  };
  if (rollbackDirty) {
    adapter.reset = async (client, signal) => {
      // A client handed from a reset straight to the next caller gets no ref() call in between.
      restoreListeners(client);
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
 * `resetOnRelease` / `dirtyRelease` / `queryTimeoutMs`. A bare connection string, as
 * `new pg.Client(url)` takes, is `{ connectionString: url }`.
 */
export function createPostgresPool(config: PostgresPoolConfig | string = {}): PostgresPool {
  const resolved = resolvePostgresConfig(config);
  const adapter = postgresAdapter(resolved.clientConfig, resolved.policy);
  return new PostgresPoolImpl((face) => createPool<pg.Client>({ ...resolved.poolOptions, adapter }, { face }));
}

class PostgresPoolImpl implements PostgresPool {
  readonly #pool: Pool<pg.Client>;

  /** `create` makes the core pool; events about it name this object, the one users hold. */
  constructor(create: (face: Pool<pg.Client>) => Pool<pg.Client>) {
    this.#pool = create(this);
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

  query<S extends pg.Submittable>(submittable: S): S;
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(text: string | pg.QueryConfig, params?: unknown[]): Promise<pg.QueryResult<R>>;
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(text: string | pg.QueryConfig, callback: QueryCallback<R>): void;
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(text: string | pg.QueryConfig, params: unknown[] | undefined, callback: QueryCallback<R>): void;
  query(text: unknown, params?: unknown, callback?: unknown): unknown {
    if (typeof params === 'function' && callback === undefined) {
      callback = params;
      params = undefined;
    }
    if (callback !== undefined && typeof callback !== 'function') throw new TypeError('pool.query expects the callback to be a function');
    if (typeof text === 'object' && text !== null && typeof (text as { submit?: unknown }).submit === 'function') {
      return this.#submit(text as SubmittableQuery, callback as SubmittableQuery['callback']);
    }
    const result = this.#query(text, params);
    if (callback === undefined) return result;
    // As pg.Pool: the callback runs outside the promise chain, so a throw in it is not swallowed.
    const cb = callback as QueryCallback;
    result.then(
      (value) => process.nextTick(cb, null, value),
      (error: Error) => process.nextTick(cb, error),
    );
    return undefined;
  }

  #query(text: unknown, params: unknown): Promise<pg.QueryResult> {
    if (typeof text === 'function') {
      return Promise.reject(new TypeError('pool.query(fn) is not supported: pass SQL text (or a QueryConfig); use withConnection(fn) to run a function'));
    }
    if (typeof text !== 'string' && (typeof text !== 'object' || text === null || typeof (text as { text?: unknown }).text !== 'string')) {
      return Promise.reject(new TypeError('pool.query expects SQL text, a { text, values } QueryConfig or a submittable (pg-cursor, pg-query-stream)'));
    }
    if (params !== undefined && !Array.isArray(params)) return Promise.reject(new TypeError('pool.query expects params to be an array'));
    return this.#pool.withConnection((client) => client.query(text as string, params as unknown[] | undefined));
  }

  /**
   * Run a submittable on a client leased for it, and give the client back once the
   * submittable is done: pg calls its `handleReadyForQuery` when it ends (a cursor read to
   * the end or closed) and its `handleError` when it fails.
   */
  #submit<S extends SubmittableQuery>(submittable: S, callback: S['callback']): S {
    if (typeof submittable.handleReadyForQuery !== 'function' || typeof submittable.handleError !== 'function') {
      throw new TypeError('pool.query(submittable) expects handleReadyForQuery and handleError methods, which pg calls when it ends or fails');
    }
    if (callback !== undefined && submittable.callback == null) submittable.callback = callback;
    this.#pool.acquire().then(
      (lease) => {
        const client = lease.resource;
        let done = false;
        const giveBack = (error: unknown): void => {
          if (error !== undefined && isClientFatal(error, client)) void lease.destroy(error);
          else void lease.release();
        };
        const finish = (error?: unknown): void => {
          if (done) return;
          done = true;
          submittable.handleReadyForQuery = handleReadyForQuery;
          submittable.handleError = handleError;
          const c = internals(client);
          // After an ErrorResponse the server still sends ReadyForQuery: release after it.
          if (error === undefined || c.readyForQuery !== false || state(client).broken) {
            giveBack(error);
            return;
          }
          const connection = c.connection;
          const settled = (): void => {
            connection.off('readyForQuery', settled);
            connection.off('end', settled);
            giveBack(error);
          };
          connection.on('readyForQuery', settled);
          connection.on('end', settled);
        };
        const handleReadyForQuery = submittable.handleReadyForQuery;
        const handleError = submittable.handleError;
        submittable.handleReadyForQuery = function (this: S, ...args: unknown[]): unknown {
          try {
            return handleReadyForQuery.apply(this, args);
          } finally {
            finish();
          }
        };
        submittable.handleError = function (this: S, error: unknown, ...rest: unknown[]): unknown {
          try {
            return handleError.call(this, error, ...rest);
          } finally {
            finish(error);
          }
        };
        try {
          client.query(submittable as unknown as pg.Submittable);
        } catch (error) {
          // pg refused it outright: the lease goes back, and the submittable hears of it.
          finish(error);
          process.nextTick(() => submittable.handleError(error));
        }
      },
      (error: unknown) => {
        // As pg does for a query it cannot run (a closed client): the submittable hears of it.
        process.nextTick(() => submittable.handleError(error));
      },
    );
    return submittable;
  }

  withTransaction<R>(fn: (client: pg.Client) => Promise<R> | R, options: TransactionOptions = {}): Promise<R> {
    return runTransaction(this.#pool, fn, options);
  }
}

/** What pg calls on a submittable (node_modules/pg/lib/client.js): `submit`, then these as it ends or fails. */
interface SubmittableQuery {
  submit(connection: unknown): unknown;
  handleReadyForQuery(...args: unknown[]): unknown;
  handleError(error: unknown, ...rest: unknown[]): unknown;
  callback?: ((error: Error | null, result?: unknown) => void) | null;
}
