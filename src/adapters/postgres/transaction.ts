/**
 * `withTransaction`: BEGIN, the caller's function, COMMIT; ROLLBACK on throw; re-runs on
 * serialization failures and deadlocks. A transaction the server rolled back is never
 * reported as committed.
 */
import type pg from 'pg';
import { InvalidPoolOptionError, PoolError, type AcquireOptions, type Pool } from '../../index.js';
import { isTransactionRetryable } from './classify.js';
import { isClientFatal, state, transactionStatus } from './client-state.js';

/** A transaction isolation level for `withTransaction`'s `BEGIN ISOLATION LEVEL …`. */
export type IsolationLevel = 'read committed' | 'repeatable read' | 'serializable';

/** Options of `PostgresPool.withTransaction`: the acquire options plus the transaction's own. */
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

/**
 * The server rolled the transaction back although the callback returned normally: a
 * statement inside it failed (its error is the `cause`) and the callback caught the error,
 * or did not await the query, so PostgreSQL answered COMMIT with ROLLBACK. Nothing the
 * transaction wrote was kept. pgx calls this `ErrTxCommitRollback`.
 */
export class TransactionRolledBackError extends PoolError {
  constructor(cause: unknown) {
    const code = (cause as { code?: unknown } | undefined)?.code;
    const why = cause instanceof Error ? `: ${cause.message}${typeof code === 'string' ? ` (${code})` : ''}` : '';
    super(
      `Transaction rolled back instead of committed: a statement in it failed${why}; none of its writes were kept`,
      'POOL_TX_ROLLED_BACK',
      cause === undefined ? undefined : { cause },
    );
  }
}

const ISOLATION_SQL: ReadonlyMap<string, string> = new Map([
  ['read committed', 'READ COMMITTED'],
  ['repeatable read', 'REPEATABLE READ'],
  ['serializable', 'SERIALIZABLE'],
]);
const TRANSACTION_KEYS: ReadonlySet<string> = new Set(['isolation', 'retry', 'readOnly', 'signal', 'timeoutMs', 'priority']);
const RETRY_KEYS: ReadonlySet<string> = new Set(['retries']);

function rejectUnknownKeys(prefix: string, object: object, known: ReadonlySet<string>): void {
  for (const key of Object.keys(object)) {
    if (!known.has(key)) {
      throw new InvalidPoolOptionError(`${prefix}${key}`, `Unknown option \`${prefix}${key}\`; known options: ${[...known].join(', ')}`);
    }
  }
}

interface TransactionPlan {
  readonly begin: string;
  readonly retries: number;
  readonly acquireOptions: AcquireOptions;
}

/** Validate `withTransaction`'s options (as pool options are: unknown keys rejected, nothing coerced). */
export function planTransaction(options: unknown): TransactionPlan {
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    throw InvalidPoolOptionError.expected('options', 'an object', options);
  }
  rejectUnknownKeys('', options, TRANSACTION_KEYS);
  const { isolation, retry = false, readOnly = false, ...acquireOptions } = options as TransactionOptions;
  // A Map, not `in` on an object literal: 'constructor' or '__proto__' must not pass.
  const level = isolation === undefined ? undefined : typeof isolation === 'string' ? ISOLATION_SQL.get(isolation) : undefined;
  if (isolation !== undefined && level === undefined) {
    throw InvalidPoolOptionError.expected('isolation', "'read committed', 'repeatable read' or 'serializable'", isolation);
  }
  if (typeof readOnly !== 'boolean') throw InvalidPoolOptionError.expected('readOnly', 'a boolean', readOnly);
  let retries: number;
  if (typeof retry === 'boolean') retries = retry ? 3 : 0;
  else if (typeof retry === 'object' && retry !== null && !Array.isArray(retry)) {
    rejectUnknownKeys('retry.', retry, RETRY_KEYS);
    retries = retry.retries;
    if (!Number.isInteger(retries) || retries < 0) throw InvalidPoolOptionError.expected('retry.retries', 'an integer >= 0', retries);
  } else {
    throw InvalidPoolOptionError.expected('retry', 'true, false or { retries }', retry);
  }
  const begin = `BEGIN${level === undefined ? '' : ` ISOLATION LEVEL ${level}`}${readOnly ? ' READ ONLY' : ''}`;
  return { begin, retries, acquireOptions };
}

/** Run `fn` in a transaction on a client of `pool`, re-running it on 40001/40P01 as `options.retry` allows. */
export async function runTransaction<R>(pool: Pool<pg.Client>, fn: (client: pg.Client) => Promise<R> | R, options: TransactionOptions): Promise<R> {
  if (typeof fn !== 'function') throw new TypeError('withTransaction expects a function');
  const { begin, retries, acquireOptions } = planTransaction(options);
  for (let attempt = 0; ; attempt++) {
    try {
      return await transactionOnce(pool, fn, begin, acquireOptions);
    } catch (error) {
      if (attempt >= retries || !isTransactionRetryable(error)) throw error;
      // Jittered, growing pause so the conflicting transactions do not collide again in lockstep.
      await new Promise((resolve) => setTimeout(resolve, Math.random() * 10 * 2 ** attempt));
    }
  }
}

async function transactionOnce<R>(pool: Pool<pg.Client>, fn: (client: pg.Client) => Promise<R> | R, begin: string, options: AcquireOptions): Promise<R> {
  const lease = await pool.acquire(options);
  const client = lease.resource;
  const clientState = state(client);
  let result: R;
  let rolledBack: TransactionRolledBackError | undefined;
  try {
    clientState.abortError = undefined;
    await client.query(begin);
    result = await fn(client);
    // A statement failed and the callback went on: the server has aborted the transaction.
    if (transactionStatus(client) === 'E') throw new TransactionRolledBackError(clientState.abortError);
    // Queries the callback did not await are still queued ahead of COMMIT and may fail too:
    // then the server answers COMMIT with the command tag ROLLBACK, and no error.
    const commit = await client.query('COMMIT');
    if (commit.command === 'ROLLBACK') rolledBack = new TransactionRolledBackError(clientState.abortError);
  } catch (error) {
    clientState.abortError = undefined;
    if (isClientFatal(error, client)) {
      await lease.destroy(error);
      throw error;
    }
    try {
      await client.query('ROLLBACK');
    } catch {
      await lease.destroy(error);
      throw error;
    }
    await lease.release();
    throw error;
  }
  clientState.abortError = undefined;
  await lease.release();
  if (rolledBack !== undefined) throw rolledBack;
  return result;
}
