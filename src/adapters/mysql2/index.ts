/**
 * `lifeguard/mysql2`: a drop-in for mysql2's pool. `import mysql from 'lifeguard/mysql2'`
 * where code had `import mysql from 'mysql2/promise'` (or `import { createPool }`): the
 * same promise pool API, config with mysql2's meanings, `.pool` the callback-style pool
 * (for Kysely's `MysqlDialect`), backed by lifeguard's pool and its release policy.
 *
 * @module lifeguard/mysql2
 */
import mysql from 'mysql2';
import mysqlPromise from 'mysql2/promise';
import type { Pool as CallbackPool } from 'mysql2';
import type { Connection as PromiseConnection, Pool as Mysql2PromisePool } from 'mysql2/promise';
import type { AcquireOptions, Lease, PoolHealth, PoolStats } from '../../index.js';
import type { MysqlTransactionOptions } from '../mysql/transaction.js';
import type { RequestScope } from '../pg/request-scope.js';
import type { PoolOptions } from './config.js';
import { PromisePool } from './promise-pool.js';

export type { PoolOptions } from './config.js';
export type { RequestScope } from '../pg/request-scope.js';
export { QueryTimeoutError, TransactionRolledBackError } from '../mysql/index.js';
export type { DirtyRelease, MysqlIsolationLevel, MysqlTransactionOptions, ResetOnRelease } from '../mysql/index.js';

/**
 * mysql2's callback-style pool (`getConnection(cb)`, `query(sql, values, cb)`, `execute`,
 * `end(cb)`, `promise()`) backed by lifeguard, with its gauges for the exporters.
 */
export interface LifeguardCallbackPool extends CallbackPool {
  /** Gauges, counters and timings (see lifeguard's `PoolStats`). */
  stats(): PoolStats;
  /** A verdict for a readiness probe. */
  health(): PoolHealth;
  /** `true` once `end()` was called. */
  readonly closed: boolean;
}

/**
 * mysql2's promise pool (`getConnection`, `query`, `execute`, `end`, `escape`, `format`,
 * events `connection`/`acquire`/`release`/`enqueue`, `.pool`) backed by lifeguard, with
 * lifeguard's API beside mysql2's.
 */
export interface Pool extends Omit<Mysql2PromisePool, 'pool'> {
  /** The callback-style pool, as mysql2's promise pool has it: `getConnection(cb)`, `query(sql, values, cb)`, `end(cb)`. */
  readonly pool: LifeguardCallbackPool;
  /** Run `fn` with these acquire options applying to every checkout inside it (an ORM's too): `signal`, `timeoutMs` (the budget from now), `priority`. */
  run<R>(options: RequestScope, fn: () => R): R;
  /** Borrow a connection as a lifeguard lease (`await using`, `release()`, `destroy(err)`). */
  acquire(options?: AcquireOptions): Promise<Lease<PromiseConnection>>;
  /** Acquire, run `fn`, release (or destroy, when `fn` broke the connection). */
  withConnection<R>(fn: (connection: PromiseConnection, signal: AbortSignal) => Promise<R> | R, options?: AcquireOptions): Promise<R>;
  /** START TRANSACTION, run `fn`, COMMIT; ROLLBACK when it throws; `TransactionRolledBackError` when the server rolled it back. */
  withTransaction<R>(fn: (connection: PromiseConnection) => Promise<R> | R, options?: MysqlTransactionOptions): Promise<R>;
  /** Gauges, counters and timings (see lifeguard's `PoolStats`). */
  stats(): PoolStats;
  /** A verdict for a readiness probe. */
  health(): PoolHealth;
  /** Open `min` connections now. */
  warmup(): Promise<void>;
  /** Retire every connection; checkouts wait until `resume()`. */
  drain(): Promise<void>;
  /** Leave the drained state. */
  resume(): void;
  /** Retire every connection that exists now (after a failover, a credentials rotation). */
  invalidate(): void;
  /** `true` between `drain()` and `resume()`. */
  readonly draining: boolean;
  /** `true` from the moment `end()` or `close()` is called. */
  readonly closed: boolean;
  /** `end()` with a bound on the wait for leased connections, which are destroyed after it. @default timeoutMs 30000 */
  close(options?: { timeoutMs?: number }): Promise<void>;
}

/**
 * A pool for `config` (mysql2's `PoolOptions` or a `mysql://` URL; see {@link PoolOptions}).
 * Nothing connects until the first checkout (or `warmup()`).
 */
export function createPool(config: PoolOptions | string): Pool {
  return new PromisePool(config) as unknown as Pool;
}

/**
 * The callback-style pool for `config` (what `createPool` from `mysql2` returns): for code
 * and libraries that call `getConnection(cb)`, such as TypeORM's mysql driver. Its
 * `promise()` is the promise pool, with lifeguard's API.
 */
export function createCallbackPool(config: PoolOptions | string): LifeguardCallbackPool {
  return createPool(config).pool;
}

/** `mysql2` (the callback API) with lifeguard's `createCallbackPool` as its `createPool`. */
export type Mysql2CallbackWithLifeguardPool = Omit<typeof mysql, 'createPool'> & {
  /** lifeguard's drop-in `createPool`, callback style. */
  readonly createPool: typeof createCallbackPool;
};

/**
 * `mysql2` itself with its `createPool` replaced: for TypeORM's `driver` option, or where
 * code had `import mysql from 'mysql2'`.
 */
export const mysql2Callback: Mysql2CallbackWithLifeguardPool = { ...mysql, createPool: createCallbackPool };

/** `mysql2/promise` with lifeguard's `createPool` in place of its own. */
export type Mysql2WithLifeguardPool = Omit<typeof mysqlPromise, 'createPool'> & {
  /** lifeguard's drop-in `createPool`. */
  readonly createPool: typeof createPool;
};

/** mysql2/promise itself with its `createPool` replaced: `import mysql from 'lifeguard/mysql2'` where code had `import mysql from 'mysql2/promise'`. */
const mysql2WithLifeguardPool: Mysql2WithLifeguardPool = { ...mysqlPromise, createPool };
export default mysql2WithLifeguardPool;
