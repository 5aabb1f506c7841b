/**
 * The promise pool `createPool` returns (mysql2's `Pool` from `mysql2/promise`):
 * `getConnection()`, `query`, `execute`, `end()`, `escape`/`escapeId`/`format`, mysql2's
 * events, `.pool` (the callback-style pool), and lifeguard's API beside them.
 */
import { EventEmitter } from 'node:events';
import type { FieldPacket, PoolConnection as PromisePoolConnection, QueryResult } from 'mysql2/promise';
import type { AcquireOptions, Lease, PoolHealth, PoolStats } from '../../index.js';
import type { Connection as PromiseConnection } from 'mysql2/promise';
import type { MysqlTransactionOptions } from '../mysql/transaction.js';
import { runScoped, scopedOptions, type RequestScope } from '../pg/request-scope.js';
import { CallbackPool } from './callback-pool.js';
import type { PoolOptions } from './config.js';
import { SharedPool } from './shared-pool.js';

/** mysql2's promise pool refuses a callback with this message. */
const NO_CALLBACK = 'Callback function is not available with promise clients.';

export class PromisePool extends EventEmitter {
  readonly #shared: SharedPool;
  /** The callback-style pool, as mysql2's promise pool has it (Kysely's `MysqlDialect({ pool: pool.pool })`). */
  readonly pool: CallbackPool;

  constructor(config: PoolOptions | string | undefined) {
    super();
    this.#shared = new SharedPool(config, this);
    this.#shared.addEmitter(this);
    this.pool = new CallbackPool(this.#shared, this);
  }

  // ------------------------------------------------------------------ mysql2's API

  /** A pooled connection with mysql2's promise API; give it back with `release()` (or `destroy()`). */
  getConnection(): Promise<PromisePoolConnection> {
    return this.#shared.checkout();
  }

  releaseConnection(connection: PromisePoolConnection): void {
    connection.release();
  }

  /** Check out, run one text-protocol query, release. Resolves with mysql2's `[rows, fields]`. */
  query<T extends QueryResult = QueryResult>(sql: unknown, values?: unknown): Promise<[T, FieldPacket[]]> {
    if (typeof values === 'function') throw new Error(NO_CALLBACK);
    return this.#once((connection) => (values === undefined ? connection.query<T>(sql as string) : connection.query<T>(sql as string, values as never)));
  }

  /** Check out, run one prepared statement (cached per connection), release. Resolves with mysql2's `[rows, fields]`. */
  execute<T extends QueryResult = QueryResult>(sql: unknown, values?: unknown): Promise<[T, FieldPacket[]]> {
    if (typeof values === 'function') throw new Error(NO_CALLBACK);
    return this.#once((connection) => (values ? connection.execute<T>(sql as string, values as never) : connection.execute<T>(sql as string)));
  }

  /** Close the pool: waiting callers fail, idle connections close now, leased ones when they come back (destroyed after 30 s). */
  end(): Promise<void> {
    return this.#shared.end();
  }

  escape(value: unknown): string {
    return this.pool.escape(value);
  }

  escapeId(value: string | string[]): string {
    return this.pool.escapeId(value);
  }

  format(sql: string, values?: unknown): string {
    return this.pool.format(sql, values);
  }

  // ------------------------------------------------------------------ lifeguard's API

  /** Run `fn` with these acquire options (`signal`, `timeoutMs` counted from now, `priority`) applying to every checkout inside it, an ORM's included. */
  run<R>(options: RequestScope, fn: () => R): R {
    return runScoped(this.#shared, options, fn);
  }

  /** Borrow a connection as a lifeguard lease (`await using`, `release()`, `destroy(err)`). */
  acquire(options?: AcquireOptions): Promise<Lease<PromiseConnection>> {
    return this.#shared.pool.acquire(scopedOptions(this.#shared, options));
  }

  withConnection<R>(fn: (connection: PromiseConnection, signal: AbortSignal) => Promise<R> | R, options?: AcquireOptions): Promise<R> {
    return this.#shared.pool.withConnection(fn, scopedOptions(this.#shared, options));
  }

  /** START TRANSACTION, run `fn`, COMMIT; ROLLBACK when it throws; `TransactionRolledBackError` when the server rolled it back. */
  withTransaction<R>(fn: (connection: PromiseConnection) => Promise<R> | R, options?: MysqlTransactionOptions): Promise<R> {
    return this.#shared.pool.withTransaction(fn, { ...scopedOptions(this.#shared), ...options });
  }

  stats(): PoolStats {
    return this.#shared.pool.stats();
  }

  health(): PoolHealth {
    return this.#shared.pool.health();
  }

  warmup(): Promise<void> {
    return this.#shared.pool.warmup();
  }

  drain(): Promise<void> {
    return this.#shared.pool.drain();
  }

  resume(): void {
    this.#shared.pool.resume();
  }

  invalidate(): void {
    this.#shared.pool.invalidate();
  }

  get draining(): boolean {
    return this.#shared.pool.draining;
  }

  get closed(): boolean {
    return this.#shared.ended;
  }

  /** `end()` with a bound on the wait for leased connections, which are destroyed after it. @default timeoutMs 30000 */
  close(options?: { timeoutMs?: number }): Promise<void> {
    return this.#shared.end(options);
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.end();
  }

  /** One checkout for `fn`, always given back (a dead or dirty connection is destroyed by the release policy). */
  async #once<R>(fn: (connection: PromisePoolConnection) => Promise<R>): Promise<R> {
    const connection = await this.#shared.checkout();
    try {
      return await fn(connection);
    } finally {
      connection.release();
    }
  }
}
