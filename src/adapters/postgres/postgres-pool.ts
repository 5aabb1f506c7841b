/**
 * The pool `createPostgresPool` returns: the core pool's API, delegated, plus pg-style
 * `query` (promise, callback or submittable) and `withTransaction`.
 */
import type pg from 'pg';
import { PoolFacade, type Pool, type PoolHealth } from '../../index.js';
import { internals, isClientFatal, state } from './client-state.js';
import { runTransaction, type TransactionOptions } from './transaction.js';
import { refuseListen, type Pooler } from './pooler.js';

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

export class PostgresPoolImpl extends PoolFacade<pg.Client> implements PostgresPool {
  /** Multi-host pools add `hosts` to the verdict (host-metrics.ts). */
  readonly #health: (health: PoolHealth) => PoolHealth;

  /** Transaction pooling: LISTEN through query() is refused (see pooler.ts). */
  readonly #transactionPooling: boolean;

  /** `create` makes the core pool; events about it name this object, the one users hold. */
  constructor(
    create: (face: Pool<pg.Client>) => Pool<pg.Client>,
    options: { pooler?: Pooler | undefined; health?: (health: PoolHealth) => PoolHealth } = {},
  ) {
    super(create);
    this.#health = options.health ?? ((h) => h);
    this.#transactionPooling = options.pooler === 'transaction';
  }

  override health(): PoolHealth {
    return this.#health(super.health());
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
    const listen = this.#transactionPooling ? refuseListen(text) : undefined;
    if (listen !== undefined) return Promise.reject(listen);
    return this.core.withConnection((client) => client.query(text as string, params as unknown[] | undefined));
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
    this.core.acquire().then(
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
    return runTransaction(this.core, fn, options);
  }
}

/** What pg calls on a submittable (node_modules/pg/lib/client.js): `submit`, then these as it ends or fails. */
interface SubmittableQuery {
  submit(connection: unknown): unknown;
  handleReadyForQuery(...args: unknown[]): unknown;
  handleError(error: unknown, ...rest: unknown[]): unknown;
  callback?: ((error: Error | null, result?: unknown) => void) | null;
}
