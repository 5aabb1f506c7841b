/**
 * `lifeguard/pg`: a drop-in for `pg.Pool`. `import { Pool } from 'lifeguard/pg'` (or
 * `import pg from 'lifeguard/pg'`, pg with its `Pool` replaced) gives a class that is
 * `instanceof pg.Pool` and takes pg's `PoolConfig` with pg-pool's meanings, so ORMs and code
 * written for pg.Pool run unchanged on lifeguard's pool.
 *
 * @module lifeguard/pg
 */
import pg from 'pg';
import type { AcquireOptions, Lease, PoolHealth, PoolStats } from '../../index.js';
import type { TransactionOptions } from '../postgres/index.js';
import { PoolImpl } from './pool.js';
import type { PoolConfig } from './config.js';
import type { RequestScope } from './request-scope.js';

export type { PoolConfig, PoolLog } from './config.js';
export type { RequestScope } from './request-scope.js';
export type { ConnectCallback } from './pool.js';

/**
 * A `pg.Pool` (pg's events, counts, `connect`, `query`, `end`) backed by lifeguard, with
 * lifeguard's API beside pg's.
 */
export interface Pool extends pg.Pool {
  /**
   * Run `fn` with these acquire options applying to every connection this pool hands out
   * inside it (an ORM's queries included): `signal`, `timeoutMs` (the budget for waiting,
   * counted from now), `priority`.
   */
  run<R>(options: RequestScope, fn: () => R): R;
  /** Borrow a client as a lifeguard lease (`await using`, `release()`, `destroy()`). */
  acquire(options?: AcquireOptions): Promise<Lease<pg.Client>>;
  /** Acquire, run `fn`, release (or destroy, when `fn` broke the connection). */
  withConnection<R>(fn: (client: pg.Client, signal: AbortSignal) => Promise<R> | R, options?: AcquireOptions): Promise<R>;
  /** BEGIN, run `fn`, COMMIT; ROLLBACK when it throws; `TransactionRolledBackError` when the server rolled it back. */
  withTransaction<R>(fn: (client: pg.Client) => Promise<R> | R, options?: TransactionOptions): Promise<R>;
  /** Gauges, counters and timings (see lifeguard's `PoolStats`). */
  stats(): PoolStats;
  /** A verdict for a readiness probe. */
  health(): PoolHealth;
  /** Create `min` clients now. */
  warmup(): Promise<void>;
  /** Retire every client; new checkouts wait until `resume()`. */
  drain(): Promise<void>;
  /** Leave the drained state. */
  resume(): void;
  /** Retire every client that exists now (after a failover, a credentials rotation). */
  invalidate(): void;
  /** `true` between `drain()` and `resume()`. */
  readonly draining: boolean;
  /** `true` from the moment `end()` or `close()` is called. */
  readonly closed: boolean;
  /** `end()` with a bound on the wait for leased clients, which are destroyed after it. @default timeoutMs 30000 */
  close(options?: { timeoutMs?: number }): Promise<void>;
  /** Same as `close()`. */
  [Symbol.asyncDispose](): Promise<void>;
}

/** The `Pool` class: what `new Pool(config)` and `class MyPool extends Pool` see. */
export interface PoolConstructor {
  /** A pool for `config` (see {@link PoolConfig}); nothing connects until the first checkout (or `warmup()`). */
  new (config?: PoolConfig): Pool;
  /** The instances' prototype (a `pg.Pool` prototype). */
  readonly prototype: Pool;
}

/** `new Pool(config)`: see {@link PoolConfig}. */
export const Pool: PoolConstructor = PoolImpl as never;

/** pg's module object with lifeguard's `Pool` in place of its own. */
export type PgWithLifeguardPool = Omit<typeof pg, 'Pool'> & {
  /** lifeguard's drop-in `Pool`. */
  readonly Pool: PoolConstructor;
};

/** pg itself with its `Pool` replaced: `import pg from 'lifeguard/pg'` where code had `import pg from 'pg'`. */
const pgWithLifeguardPool: PgWithLifeguardPool = { ...pg, Pool };
export default pgWithLifeguardPool;
