/**
 * What the promise pool and its callback-style `.pool` share: one lifeguard pool of mysql2
 * connections, the checkout that lends a connection with mysql2's pool-connection methods
 * (`release`, `destroy`, `end`) bound to its lease, and mysql2's pool events.
 */
import type { EventEmitter } from 'node:events';
import mysql, { type ConnectionOptions } from 'mysql2';
import type { Connection as PromiseConnection, PoolConnection as PromisePoolConnection } from 'mysql2/promise';
import { CreateResourceError, PoolClosedError, PoolQueueFullError, createPool, type AcquireOptions, type Lease } from '../../index.js';
import { mysqlAdapter } from '../mysql/adapter.js';
import { resolveMysqlConfig } from '../mysql/config.js';
import { baseOf, busy, recordListeners, type BaseConnection } from '../mysql/connection-state.js';
import { MysqlPoolImpl, type MysqlPool } from '../mysql/mysql-pool.js';
import { scopedOptions } from '../pg/request-scope.js';
import { resolveDropInConfig, type PoolOptions } from './config.js';

/** mysql2's ConnectionConfig: the connection options with mysql2's defaults filled in. */
export interface ConnectionConfig {
  readonly namedPlaceholders?: boolean | undefined;
  readonly stringifyObjects?: boolean | undefined;
  readonly timezone?: string | undefined;
}

/** The per-lease methods a lent connection carries, as mysql2's PoolConnection has them. */
interface LentMethods {
  release?: () => void;
  destroy?: () => void;
  end?: (callback?: unknown) => void;
}
const LENT_KEYS = ['release', 'destroy', 'end'] as const;
const NOOP = (): void => {};

/** Wait for the commands queued on `connection` to end: mysql2 runs them in order, so a ping answers after them. */
function settle(connection: PromiseConnection, signal: AbortSignal): Promise<void> {
  signal.throwIfAborted();
  return new Promise<void>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    baseOf(connection).ping((error) => {
      signal.removeEventListener('abort', onAbort);
      if (error) reject(error);
      else resolve();
    });
  });
}

/**
 * What a checkout rejects with, as mysql2 users expect: a failed connect is mysql2's own
 * error (`ER_ACCESS_DENIED_ERROR`, `ECONNREFUSED` keep their `code`), not lifeguard's wrapper;
 * pool conditions (timeout, closed, queue full) keep lifeguard's typed errors.
 */
export function asMysqlError(error: unknown): unknown {
  if (error instanceof CreateResourceError && error.cause instanceof Error) return error.cause;
  // mysql2's words in front of lifeguard's, so that code matching them still works.
  if (error instanceof PoolQueueFullError) prefix(error, error.maxWaiting === 0 ? 'No connections available. ' : 'Queue limit reached. ');
  return error;
}

function prefix(error: Error, words: string): void {
  if (error.message.startsWith(words)) return;
  const message = error.message;
  // Read first: V8 renders the stack lazily, from whatever the message is at that moment.
  const stack = error.stack;
  error.message = words + message;
  if (typeof stack === 'string') error.stack = stack.replace(message, error.message);
}

export class SharedPool {
  /** The lifeguard pool. */
  readonly pool: MysqlPool;
  /** The connections' options as mysql2's pool holds them (for `escape`, `format`, and the callback pool's queries). */
  readonly connectionConfig: ConnectionConfig;
  /** mysql2's pool settings as lifeguard applies them, for the callback pool's `config` (libraries read `connectionLimit`). */
  readonly poolConfig: { readonly connectionLimit: number; readonly waitForConnections: boolean; readonly queueLimit: number; readonly idleTimeout: number };
  /** The promise pool and the callback pool: mysql2 raises its pool events on both. */
  readonly #emitters: EventEmitter[] = [];
  readonly #max: number;
  #ended: Promise<void> | undefined;

  /** `face` is the object users hold (the promise pool): lifeguard's events and metrics name it. */
  constructor(given: PoolOptions | string | undefined, face: object) {
    const resolved = resolveMysqlConfig(resolveDropInConfig(given));
    this.connectionConfig = new (mysql as unknown as { ConnectionConfig: new (options: ConnectionOptions) => ConnectionConfig }).ConnectionConfig(resolved.connectionOptions);
    this.#max = resolved.poolOptions.max ?? 10;
    const maxWaiting = resolved.poolOptions.maxWaiting ?? Infinity;
    this.poolConfig = {
      connectionLimit: this.#max,
      waitForConnections: maxWaiting !== 0,
      queueLimit: maxWaiting === Infinity ? 0 : maxWaiting,
      idleTimeout: resolved.poolOptions.idleTimeoutMs ?? 0,
    };
    const inner = mysqlAdapter(resolved.connectionOptions, resolved.policy);
    const handlerErrors = new WeakSet<object>();
    const adapter = {
      ...inner,
      create: async (context: Parameters<typeof inner.create>[0]) => {
        const connection = await inner.create(context);
        try {
          // mysql2 emits 'connection' with the callback-style connection; handlers often run
          // `SET SESSION …` on it without waiting for it.
          try {
            this.emit('connection', baseOf(connection));
          } catch (error) {
            if (typeof error === 'object' && error !== null) handlerErrors.add(error);
            throw error;
          }
          // Listeners a 'connection' handler adds belong to the connection for its whole life.
          recordListeners(connection);
          // The statements it queued must end before the connection is lent: a caller that
          // releases it at once would otherwise release it mid-query, which destroys it.
          if (busy(connection)) await settle(connection, context.signal);
        } catch (error) {
          // A handler that throws fails this connect; the connection is not left open.
          await inner.destroy(connection, AbortSignal.timeout(5000)).catch(() => {});
          throw error;
        }
        return connection;
      },
      // A handler's throw is the application's verdict on the connection: not worth a retry.
      isRetryable: (error: unknown) => !(typeof error === 'object' && error !== null && handlerErrors.has(error)) && (inner.isRetryable?.(error) ?? true),
    };
    this.pool = new MysqlPoolImpl(() => createPool<PromiseConnection>({ ...resolved.poolOptions, adapter }, { face: face as MysqlPool }));
  }

  /** `true` once `end()` or `close()` was called. */
  get ended(): boolean {
    return this.#ended !== undefined || this.pool.closed;
  }

  addEmitter(emitter: EventEmitter): void {
    this.#emitters.push(emitter);
  }

  emit(event: string, ...args: unknown[]): void {
    for (const emitter of this.#emitters) emitter.emit(event, ...args);
  }

  /** A leased connection: the pool's mysql2 promise connection, with `release()`/`destroy()`/`end()` bound to this lease. */
  async checkout(options?: AcquireOptions): Promise<PromisePoolConnection> {
    if (this.ended) throw new PoolClosedError();
    const stats = this.pool.stats();
    // mysql2's 'enqueue': the caller has to wait for a connection to come back.
    if (this.poolConfig.waitForConnections && stats.idle === 0 && stats.size + stats.creating >= this.#max) this.emit('enqueue');
    let lease: Lease<PromiseConnection>;
    try {
      lease = await this.pool.acquire(scopedOptions(this, options));
    } catch (error) {
      throw asMysqlError(error);
    }
    return this.#lend(lease);
  }

  /** mysql2's end(): waiting callers fail, connections close (leased ones when they come back, within `timeoutMs`, 30 s by default). Idempotent. */
  end(options?: { timeoutMs?: number }): Promise<void> {
    this.#ended ??= this.pool.close(options);
    return this.#ended;
  }

  #lend(lease: Lease<PromiseConnection>): PromisePoolConnection {
    const connection = lease.resource;
    const base = baseOf(connection) as BaseConnection & LentMethods;
    let done = false;
    const finish = (error?: Error): void => {
      // A second release() of the same lease does nothing, as in mysql2.
      if (done) return;
      done = true;
      // The adapter closes connections with the prototype's end() and destroy(): take the lease's off first.
      for (const key of LENT_KEYS) delete base[key];
      delete (connection as LentMethods).destroy;
      // A later release() of this connection, while it is idle, does nothing either (mysql2 would not throw).
      base.release = NOOP;
      try {
        // As mysql2: a destroyed connection is not 'release'd.
        if (error === undefined) this.emit('release', base);
      } finally {
        // A connection released inside a transaction or mid-query is destroyed (or rolled back): the adapter's isBroken and reset decide.
        const give = (): void => void (error === undefined ? lease.release() : lease.destroy(error));
        // mysql2 calls a query's callback (and emits its 'end') while that command is still
        // the connection's current one: the usual `connection.release()` inside the callback
        // would find it mid-query. A microtask later that command has ended, and only a
        // statement really still running makes the release a mid-query one.
        if (busy(connection)) queueMicrotask(give);
        else give();
      }
    };
    base.release = () => finish();
    base.destroy = () => finish(new Error('connection.destroy() was called on a pooled connection'));
    // The promise connection's destroy() calls the callback connection's prototype method directly: it needs its own.
    (connection as LentMethods).destroy = base.destroy;
    // mysql2's PoolConnection.end() releases (deprecated there; drizzle's iterator still calls it).
    base.end = (callback?: unknown) => {
      finish();
      if (typeof callback === 'function') process.nextTick(callback as () => void);
    };
    this.emit('acquire', base);
    return connection as PromisePoolConnection;
  }
}
