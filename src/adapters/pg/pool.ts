/**
 * `Pool` from `lifeguard/pg`: a `pg.Pool` (it extends the application's own `pg.Pool`, so
 * `instanceof` checks such as Prisma's pass) whose connections come from a lifeguard pool.
 * pg.Pool's surface keeps pg-pool's meanings; lifeguard's API (stats, health, drain,
 * withTransaction, request scopes) is there too.
 */
import pg from 'pg';
import {
  AcquireTimeoutError, CreateResourceError, PoolClosedError, createPool,
  type AcquireOptions, type Lease, type PoolHealth, type PoolStats,
} from '../../index.js';
import { assemblePostgresAdapter } from '../postgres/assemble.js';
import { isClientFatal } from '../postgres/client-state.js';
import { resolvePostgresConfig } from '../postgres/config.js';
import { PostgresPoolImpl, type PostgresPool } from '../postgres/postgres-pool.js';
import type { TransactionOptions } from '../postgres/transaction.js';
import { resolveDropInConfig, type DropInPolicy, type PoolConfig } from './config.js';
import { logRemovals, withPoolEvents } from './pool-events.js';
import { runScoped, scopedOptions, type RequestScope } from './request-scope.js';

const NOOP = (): void => {};

/**
 * How long `end()` lets the checkouts already asked for be served before it closes the pool
 * (each is bounded by its own acquire deadline too, unless `connectionTimeoutMillis: 0`).
 */
const END_SERVE_BOUND_MS = 30_000;

/** pg-pool's callback for `connect(cb)`. */
export type ConnectCallback = (error: Error | undefined, client: pg.PoolClient | undefined, release: (release?: unknown) => void) => void;

/** pg-pool's message for any use after `end()`. */
const ENDED = 'Cannot use a pool after calling end on the pool';

/**
 * Hand a result to a pg-style callback outside the promise chain (as pg-pool does: a throw
 * in the callback is not swallowed), or return it as a promise when there is no callback.
 */
function reply<V>(result: Promise<V>, callback: ((...args: never[]) => void) | undefined, ok: (value: V) => unknown[], failed: unknown[] = []): Promise<V> | undefined {
  if (callback === undefined) return result;
  const cb = callback as (...args: unknown[]) => void;
  result.then(
    (value) => process.nextTick(cb, ...ok(value)),
    (error: unknown) => process.nextTick(cb, error, ...failed),
  );
  return undefined;
}

/** pg-pool's message for a timed-out checkout, kept in front of lifeguard's so that code matching it still works. */
const TIMEOUT_PREFIX = 'timeout exceeded when trying to connect: ';

/**
 * What `connect()` rejects with, as pg.Pool would: a failed connect is pg's own error (an
 * authentication failure keeps its SQLSTATE `28P01`), not lifeguard's wrapper; a timeout is
 * lifeguard's typed `AcquireTimeoutError`, with pg-pool's words in front of its reason.
 */
function asPgError(error: unknown): unknown {
  if (error instanceof CreateResourceError && error.cause instanceof Error) return error.cause;
  if (error instanceof AcquireTimeoutError && !error.message.startsWith(TIMEOUT_PREFIX)) {
    const message = error.message;
    // Read first: V8 renders the stack lazily, from whatever the message is at that moment.
    const stack = error.stack;
    error.message = TIMEOUT_PREFIX + message;
    if (typeof stack === 'string') error.stack = stack.replace(message, error.message);
  }
  return error;
}

class Pool extends pg.Pool {
  readonly #pg: PostgresPool;
  readonly #policy: DropInPolicy;
  /** Live clients (connected, not yet removed), for pg-pool's `_clients`. */
  readonly #clients = new Set<pg.Client>();
  /**
   * Idle clients that failed and that the core has not let go of yet (it does so a microtask
   * later): pg-pool counts them out at once, in the 'error' event itself.
   */
  readonly #failedIdle = new Set<pg.Client>();
  /** Checkouts through connect() and query() not settled yet: end() lets them be served, as pg-pool does. */
  #pending = 0;
  #onNonePending: (() => void) | undefined;

  constructor(config?: PoolConfig) {
    const { config: postgresConfig, policy } = resolveDropInConfig(config);
    const resolved = resolvePostgresConfig(postgresConfig);
    // Several hosts or a target_session_attrs (a multi-host URL, `hosts`, PGHOST lists): the same walk as createPostgresPool.
    const assembled = assemblePostgresAdapter(resolved, policy.Client);
    // pg-pool's constructor only records its options (defaults applied, the password hidden): `pool.options`.
    super(config === undefined || config === null ? undefined : ({ ...config } as pg.PoolConfig));
    this.#policy = policy;
    const adapter = withPoolEvents(assembled.adapter, policy, {
      connected: (client) => {
        this.#clients.add(client);
        this.emit('connect', client);
      },
      destroying: (client) => {
        this.#failedIdle.delete(client);
      },
      removed: (client) => {
        if (this.#clients.delete(client)) this.emit('remove', client);
      },
      idleError: (error, client) => {
        policy.log('idle client error', error);
        this.#failedIdle.add(client);
        // pg-pool's idle listener names the client on the error itself (`err.client`).
        if (typeof error === 'object' && error !== null && !('client' in error)) (error as { client?: pg.Client }).client = client;
        // pg-pool's 'error' crashes a process without a listener; here it only informs.
        if (this.listenerCount('error') > 0) this.emit('error', error, client);
      },
    });
    // Events the core publishes name this object: the one users hold.
    this.#pg = new PostgresPoolImpl(() => createPool<pg.Client>({ ...resolved.poolOptions, adapter }, { face: this as unknown as PostgresPool }), {
      pooler: resolved.policy.pooler?.pooler,
      ...(assembled.health === undefined ? {} : { health: assembled.health }),
    });
    assembled.register(this);
    Object.defineProperty(this, '_clients', { get: () => [...this.#clients], configurable: true, enumerable: false });
    if (policy.logging) logRemovals(this, policy.log);
  }

  // ------------------------------------------------------------------ pg.Pool's API

  override connect(): Promise<pg.PoolClient>;
  override connect(callback: ConnectCallback): void;
  override connect(callback?: ConnectCallback): Promise<pg.PoolClient> | void {
    if (callback !== undefined && typeof callback !== 'function') throw new TypeError('pool.connect expects a callback function or no argument');
    const checkout = reply(this.#checkout(), callback, (client) => [undefined, client, client.release], [undefined, NOOP]);
    return checkout === undefined ? undefined : this.#promise(checkout);
  }

  // The public overloads are pg.Pool's own (see index.ts); this is their one implementation.
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  override query(text: unknown, values?: unknown, callback?: unknown): any {
    if (typeof text === 'function') {
      const error = new TypeError('Passing a function as the first parameter to pool.query is not supported');
      setImmediate(text as (error: Error) => void, error);
      return undefined;
    }
    if (typeof values === 'function' && callback === undefined) {
      callback = values;
      values = undefined;
    }
    if (callback !== undefined && typeof callback !== 'function') throw new TypeError('pool.query expects the callback to be a function');
    if (typeof text === 'object' && text !== null && typeof (text as { submit?: unknown }).submit === 'function') {
      if (this.ending) throw new Error(ENDED);
      return (this.#pg.query as (...args: unknown[]) => unknown)(text, ...(callback === undefined ? [] : [callback]));
    }
    const result = reply(this.#query(text, values), callback as (() => void) | undefined, (value) => [undefined, value]);
    return result === undefined ? undefined : this.#promise(result);
  }

  override end(): Promise<void>;
  override end(callback: (error?: Error) => void): void;
  override end(callback?: (error?: Error) => void): Promise<void> | void {
    this.#policy.log('ending');
    const ended = reply(this.ending ? Promise.reject(new Error('Called end on pool more than once')) : this.#end(), callback, () => []);
    return ended === undefined ? undefined : this.#promise(ended);
  }

  // ------------------------------------------------------------------ lifeguard's API

  /**
   * Run `fn` with these acquire options applying to every connection this pool hands out
   * inside it, however deep (an ORM's queries included): `signal` (abort the request's
   * waits), `timeoutMs` (the request's budget for waiting, from now), `priority`.
   */
  run<R>(options: RequestScope, fn: () => R): R {
    return runScoped(this, options, fn);
  }

  // While end() lets earlier checkouts be served, the pool is closed to new ones (`closed` is true).
  acquire(options?: AcquireOptions): Promise<Lease<pg.Client>> {
    return this.ending ? Promise.reject(new PoolClosedError()) : this.#pg.acquire(scopedOptions(this, options));
  }

  withConnection<R>(fn: (client: pg.Client, signal: AbortSignal) => Promise<R> | R, options?: AcquireOptions): Promise<R> {
    return this.ending ? Promise.reject(new PoolClosedError()) : this.#pg.withConnection(fn, scopedOptions(this, options));
  }

  withTransaction<R>(fn: (client: pg.Client) => Promise<R> | R, options?: TransactionOptions): Promise<R> {
    return this.ending ? Promise.reject(new PoolClosedError()) : this.#pg.withTransaction(fn, { ...scopedOptions(this), ...options });
  }

  stats(): PoolStats {
    return this.#pg.stats();
  }

  health(): PoolHealth {
    return this.#pg.health();
  }

  warmup(): Promise<void> {
    return this.#pg.warmup();
  }

  drain(): Promise<void> {
    return this.#pg.drain();
  }

  resume(): void {
    this.#pg.resume();
  }

  invalidate(): void {
    this.#pg.invalidate();
  }

  get draining(): boolean {
    return this.#pg.draining;
  }

  get closed(): boolean {
    return this.ending || this.#pg.closed;
  }

  /** lifeguard's `close()`: what `end()` does, with a bound on the wait for leased clients. @default timeoutMs 30000 */
  close(options?: { timeoutMs?: number }): Promise<void> {
    const self = this as { ending: boolean; ended: boolean };
    self.ending = true;
    return this.#pg.close(options).then(() => {
      self.ended = true;
    });
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.ending ? this.#pg.close() : this.close();
  }

  // pg-pool's counts, as getters (pg's types declare them as fields, which a subclass cannot redefine as accessors).
  static {
    const counts: Record<string, (pool: Pool) => number> = {
      totalCount: (pool) => {
        const s = pool.stats();
        return s.size + s.creating - pool.#failedIdle.size;
      },
      idleCount: (pool) => pool.stats().idle - pool.#failedIdle.size,
      waitingCount: (pool) => pool.stats().waiting,
      // Retired clients are destroyed as soon as they come back, never kept: none is ever waiting to expire.
      expiredCount: () => 0,
    };
    for (const [name, read] of Object.entries(counts)) {
      Object.defineProperty(Pool.prototype, name, {
        get(this: Pool) {
          return read(this);
        },
        configurable: true,
        enumerable: false,
      });
    }
  }

  // ------------------------------------------------------------------ internals

  /**
   * pg-pool's end(): new checkouts are refused at once, but those already asked for are still
   * served (a `pool.query()` issued just before `end()` completes), then the pool closes.
   */
  #end(): Promise<void> {
    (this as { ending: boolean }).ending = true;
    if (this.#pending === 0) return this.close();
    return new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, END_SERVE_BOUND_MS);
      this.#onNonePending = () => {
        clearTimeout(timer);
        resolve();
      };
    }).then(() => this.close());
  }

  /** One checkout: a leased client with pg-pool's `release(err | true)`. */
  async #checkout(): Promise<pg.PoolClient> {
    if (this.ending) throw new Error(ENDED);
    let lease: Lease<pg.Client>;
    this.#pending++;
    try {
      lease = await this.#pg.acquire(scopedOptions(this));
    } catch (error) {
      throw asPgError(error);
    } finally {
      if (--this.#pending === 0) this.#onNonePending?.();
    }
    const client = lease.resource as pg.PoolClient;
    let released = false;
    client.release = (error?: Error | boolean) => {
      if (released) throw new Error('Release called on client which has already been released to the pool.');
      released = true;
      try {
        this.emit('release', error, client);
      } finally {
        // A truthy argument destroys the client (pg-pool's convention); lifeguard destroys a dirty or dead one anyway.
        void lease.release(error);
      }
    };
    this.emit('acquire', client);
    return client;
  }

  async #query(text: unknown, values: unknown): Promise<pg.QueryResult> {
    if (this.ending) throw new Error(ENDED);
    if (values !== undefined && values !== null && !Array.isArray(values)) throw new TypeError('pool.query expects values to be an array');
    const client = await this.#checkout();
    let failure: unknown;
    try {
      return await client.query(text as string, values as unknown[] | undefined);
    } catch (error) {
      failure = error;
      throw error;
    } finally {
      // Only an error that killed the connection destroys the client: an SQL error leaves it fine.
      client.release(failure !== undefined && isClientFatal(failure, client) ? (failure as Error) : undefined);
    }
  }

  /** A promise of the `Promise` option's kind, when one was given (pg-pool's bring-your-own-promise). */
  #promise<V>(promise: Promise<V>): Promise<V> {
    const PromiseImpl = this.#policy.Promise;
    return PromiseImpl === undefined ? promise : (new PromiseImpl<V>((resolve, reject) => promise.then(resolve, reject)) as Promise<V>);
  }
}

export { Pool as PoolImpl };
