/**
 * The pool `createMysqlPool` returns: the core pool's API (through `PoolFacade`), plus
 * mysql2-style `query` and `execute` and `withTransaction`.
 */
import type { Connection as PromiseConnection, FieldPacket, QueryOptions, QueryResult } from 'mysql2/promise';
import { PoolFacade, type Pool } from '../../index.js';
import { runTransaction, type MysqlTransactionOptions } from './transaction.js';

/** A query as mysql2 takes it: SQL text, or `{ sql, values, timeout, rowsAsArray, … }`. */
export type MysqlQuery = string | QueryOptions;

/** A {@link Pool} of mysql2 promise connections, made by `createMysqlPool`. */
export interface MysqlPool extends Pool<PromiseConnection> {
  /** Acquire, run one text-protocol query (`?` placeholders escaped client-side), release. Resolves with mysql2's `[rows, fields]`. */
  query<T extends QueryResult = QueryResult>(sql: MysqlQuery, values?: unknown): Promise<[T, FieldPacket[]]>;
  /** Acquire, run one prepared statement (cached per connection by mysql2), release. Resolves with mysql2's `[rows, fields]`. */
  execute<T extends QueryResult = QueryResult>(sql: MysqlQuery, values?: unknown): Promise<[T, FieldPacket[]]>;
  /** START TRANSACTION, run `fn`, COMMIT; ROLLBACK when it throws. Rejects with `TransactionRolledBackError` when the server rolled it back. */
  withTransaction<R>(fn: (connection: PromiseConnection) => Promise<R> | R, options?: MysqlTransactionOptions): Promise<R>;
}

function checkQuery(method: string, sql: unknown, values: unknown): void {
  const isOptions = typeof sql === 'object' && sql !== null && typeof (sql as { sql?: unknown }).sql === 'string';
  if (typeof sql !== 'string' && !isOptions) throw new TypeError(`pool.${method} expects SQL text or a { sql, values } object, got ${sql === null ? 'null' : typeof sql}`);
  if (typeof values === 'function') throw new TypeError(`pool.${method} returns a promise: it takes no callback`);
}

export class MysqlPoolImpl extends PoolFacade<PromiseConnection> implements MysqlPool {
  query<T extends QueryResult = QueryResult>(sql: MysqlQuery, values?: unknown): Promise<[T, FieldPacket[]]> {
    try {
      checkQuery('query', sql, values);
    } catch (error) {
      return Promise.reject(error);
    }
    return this.core.withConnection((connection) => connection.query<T>(sql as QueryOptions, values as never));
  }

  execute<T extends QueryResult = QueryResult>(sql: MysqlQuery, values?: unknown): Promise<[T, FieldPacket[]]> {
    try {
      checkQuery('execute', sql, values);
    } catch (error) {
      return Promise.reject(error);
    }
    return this.core.withConnection((connection) => connection.execute<T>(sql as QueryOptions, values as never));
  }

  withTransaction<R>(fn: (connection: PromiseConnection) => Promise<R> | R, options: MysqlTransactionOptions = {}): Promise<R> {
    return runTransaction(this.core, fn, options);
  }
}
