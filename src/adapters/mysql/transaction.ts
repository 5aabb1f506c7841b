/**
 * `withTransaction` for MySQL/MariaDB: START TRANSACTION, the caller's function, COMMIT;
 * ROLLBACK on throw; re-runs on deadlock (1213) and lock wait timeout (1205). A transaction
 * the server rolled back (a deadlock the callback caught) is never reported as committed.
 */
import type { Connection as PromiseConnection } from 'mysql2/promise';
import { InvalidPoolOptionError, PoolError, type AcquireOptions, type Pool } from '../../index.js';
import { isConnectionFatal, isTransactionRetryable } from './classify.js';
import { dead, state } from './connection-state.js';

/** A transaction isolation level, set with `SET TRANSACTION ISOLATION LEVEL …` for the transaction. */
export type MysqlIsolationLevel = 'read uncommitted' | 'read committed' | 'repeatable read' | 'serializable';

/** Options of `MysqlPool.withTransaction`: the acquire options plus the transaction's own. */
export interface MysqlTransactionOptions extends AcquireOptions {
  /** Isolation level of the transaction. @default the server's (InnoDB: repeatable read) */
  readonly isolation?: MysqlIsolationLevel;
  /** Re-run the whole transaction on a deadlock (1213) or lock wait timeout (1205): `true` = 3 retries. @default false */
  readonly retry?: boolean | {
    /** Re-runs after the first attempt (an integer >= 0). */
    readonly retries: number;
  };
  /** `START TRANSACTION READ ONLY`. @default false */
  readonly readOnly?: boolean;
}

/**
 * The server rolled the transaction back although the callback returned normally: a
 * deadlock (1213) ended it, the callback caught the error and went on. Nothing the
 * transaction wrote before the deadlock was kept, and the statements after it ran outside
 * any transaction (autocommit).
 */
export class TransactionRolledBackError extends PoolError {
  constructor(rolledBackBy: { errno: number; message: string }) {
    super(
      `Transaction rolled back instead of committed: the server ended it with error ${rolledBackBy.errno} (${rolledBackBy.message}) and the callback went on; ` +
        'none of its writes before that were kept, and statements after it ran outside the transaction',
      'POOL_TX_ROLLED_BACK',
    );
  }
}

const ISOLATION_SQL: ReadonlyMap<string, string> = new Map([
  ['read uncommitted', 'READ UNCOMMITTED'],
  ['read committed', 'READ COMMITTED'],
  ['repeatable read', 'REPEATABLE READ'],
  ['serializable', 'SERIALIZABLE'],
]);
const TRANSACTION_KEYS: ReadonlySet<string> = new Set(['isolation', 'retry', 'readOnly', 'signal', 'timeoutMs', 'priority']);

interface TransactionPlan {
  readonly isolation: string | undefined;
  readonly start: string;
  readonly retries: number;
  readonly acquireOptions: AcquireOptions;
}

function planTransaction(options: MysqlTransactionOptions): TransactionPlan {
  if (typeof options !== 'object' || options === null) throw InvalidPoolOptionError.expected('options', 'an object', options);
  for (const key of Object.keys(options)) {
    if (!TRANSACTION_KEYS.has(key)) throw new InvalidPoolOptionError(key, `Unknown option \`${key}\`; known options: ${[...TRANSACTION_KEYS].join(', ')}`);
  }
  const { isolation, retry = false, readOnly = false, ...acquireOptions } = options;
  const level = isolation === undefined ? undefined : ISOLATION_SQL.get(isolation);
  if (isolation !== undefined && level === undefined) throw InvalidPoolOptionError.expected('isolation', [...ISOLATION_SQL.keys()].map((l) => `'${l}'`).join(', '), isolation);
  if (typeof readOnly !== 'boolean') throw InvalidPoolOptionError.expected('readOnly', 'a boolean', readOnly);
  let retries: number;
  if (typeof retry === 'boolean') retries = retry ? 3 : 0;
  else if (typeof retry === 'object' && retry !== null && !Array.isArray(retry)) {
    for (const key of Object.keys(retry)) if (key !== 'retries') throw new InvalidPoolOptionError(`retry.${key}`, `Unknown option \`retry.${key}\`; known options: retries`);
    retries = retry.retries;
    if (!Number.isInteger(retries) || retries < 0) throw InvalidPoolOptionError.expected('retry.retries', 'an integer >= 0', retries);
  } else {
    throw InvalidPoolOptionError.expected('retry', 'true, false or { retries }', retry);
  }
  return {
    isolation: level === undefined ? undefined : `SET TRANSACTION ISOLATION LEVEL ${level}`,
    start: readOnly ? 'START TRANSACTION READ ONLY' : 'START TRANSACTION',
    retries,
    acquireOptions,
  };
}

/** Run `fn` in a transaction on a connection of `pool`, re-running it on 1213/1205 as `options.retry` allows. */
export async function runTransaction<R>(pool: Pool<PromiseConnection>, fn: (connection: PromiseConnection) => Promise<R> | R, options: MysqlTransactionOptions): Promise<R> {
  if (typeof fn !== 'function') throw new TypeError('withTransaction expects a function');
  const plan = planTransaction(options);
  for (let attempt = 0; ; attempt++) {
    try {
      return await transactionOnce(pool, fn, plan);
    } catch (error) {
      if (attempt >= plan.retries || !isTransactionRetryable(error)) throw error;
      // Jittered, growing pause so the conflicting transactions do not collide again in lockstep.
      await new Promise((resolve) => setTimeout(resolve, Math.random() * 10 * 2 ** attempt));
    }
  }
}

async function transactionOnce<R>(pool: Pool<PromiseConnection>, fn: (connection: PromiseConnection) => Promise<R> | R, plan: TransactionPlan): Promise<R> {
  const lease = await pool.acquire(plan.acquireOptions);
  const connection = lease.resource;
  const connectionState = state(connection);
  let result: R;
  try {
    if (plan.isolation !== undefined) await connection.query(plan.isolation);
    await connection.query(plan.start);
    connectionState.rolledBackBy = undefined;
    result = await fn(connection);
    const rolledBackBy = connectionState.rolledBackBy;
    if (rolledBackBy !== undefined) throw new TransactionRolledBackError(rolledBackBy);
    await connection.query('COMMIT');
  } catch (error) {
    connectionState.rolledBackBy = undefined;
    if (dead(connection) || isConnectionFatal(error)) {
      await lease.destroy(error);
      throw error;
    }
    try {
      await connection.query('ROLLBACK');
    } catch {
      await lease.destroy(error);
      throw error;
    }
    await lease.release();
    throw error;
  }
  await lease.release();
  return result;
}
