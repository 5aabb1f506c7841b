/**
 * The callback-style pool (mysql2's `Pool` from `mysql2`, what `promisePool.pool` is there):
 * `getConnection(cb)`, `query(sql, values, cb)` returning mysql2's Query command (so
 * `.stream()` works), `execute`, `end(cb)`, `escape`/`escapeId`/`format`, and mysql2's
 * events. This is what Kysely's `MysqlDialect` drives.
 */
import { EventEmitter } from 'node:events';
import mysql from 'mysql2';
import type { PoolConnection as PromisePoolConnection } from 'mysql2/promise';
import { baseOf, type BaseConnection } from '../mysql/connection-state.js';
import type { PoolHealth, PoolStats } from '../../index.js';
import type { ConnectionConfig, SharedPool } from './shared-pool.js';

type Callback = (error: unknown, ...results: unknown[]) => void;

/** The parts of mysql2's Query command the pool drives (mysql2 does not type them). */
interface QueryCommand extends EventEmitter {
  onResult?: Callback | null;
  namedPlaceholders?: boolean | undefined;
}
interface CommandFactory {
  createQuery(sql: unknown, values: unknown, callback: unknown, config: object): QueryCommand;
}

const POOL_METHODS = (mysql as unknown as { Pool: { prototype: unknown } }).Pool.prototype as {
  escape(this: CallbackPool, value: unknown): string;
  escapeId(this: CallbackPool, value: string | string[]): string;
  format(this: CallbackPool, sql: string, values: unknown): string;
};

/** Call a mysql2-style callback outside any promise chain, so that its throw is not swallowed (as mysql2 does). */
function later(callback: Callback, ...args: unknown[]): void {
  process.nextTick(callback, ...args);
}

/** The callback connection behind a leased promise connection (mysql2's PoolConnection). */
function callbackSide(connection: PromisePoolConnection): BaseConnection & { release(): void } {
  return baseOf(connection) as BaseConnection & { release(): void };
}

export class CallbackPool extends EventEmitter {
  readonly #shared: SharedPool;
  readonly #promise: object;

  constructor(shared: SharedPool, promisePool: object) {
    super();
    this.#shared = shared;
    this.#promise = promisePool;
    shared.addEmitter(this);
  }

  /** mysql2's pool config, as its pool exposes it: the pool settings and `connectionConfig` (a mysql2 ConnectionConfig, defaults applied). */
  get config(): SharedPool['poolConfig'] & { connectionConfig: ConnectionConfig } {
    return { ...this.#shared.poolConfig, connectionConfig: this.#shared.connectionConfig };
  }

  /** The promise pool this callback pool belongs to (mysql2 makes a new wrapper each call; one is enough). */
  promise(): unknown {
    return this.#promise;
  }

  getConnection(callback: Callback): void {
    if (typeof callback !== 'function') throw new TypeError('pool.getConnection expects a callback: (error, connection) => void');
    this.#shared.checkout().then(
      (connection) => later(callback, null, callbackSide(connection)),
      (error: unknown) => later(callback, error),
    );
  }

  /** mysql2 `releaseConnection(connection)`: the same as `connection.release()`. */
  releaseConnection(connection: { release?: () => void }): void {
    connection.release?.();
  }

  /**
   * One query on a pooled connection, released when the query ends. Returns mysql2's Query
   * command at once (the connection is taken later), so `pool.query(sql).stream()` works.
   */
  query(sql: unknown, values?: unknown, callback?: unknown): QueryCommand {
    const config = this.#shared.connectionConfig;
    // As mysql2's pool: the command exists before the connection does, so that it can be returned (and streamed) at once.
    const command = (mysql.Connection as unknown as CommandFactory).createQuery(sql, values, callback, config);
    if (command.namedPlaceholders === undefined) command.namedPlaceholders = config.namedPlaceholders;
    this.#shared.checkout().then(
      (connection) => {
        const base = callbackSide(connection);
        try {
          (base.query as unknown as (command: QueryCommand) => EventEmitter)(command).once('end', () => base.release());
        } catch (error) {
          base.release();
          this.#fail(command, error);
        }
      },
      (error: unknown) => later(() => this.#fail(command, error)),
    );
    return command;
  }

  /** One prepared statement on a pooled connection, released when it ends. */
  execute(sql: unknown, values?: unknown, callback?: unknown): void {
    if (typeof values === 'function') {
      callback = values;
      values = [];
    }
    if (typeof callback !== 'function') throw new TypeError('pool.execute expects a callback: (error, rows, fields) => void');
    const cb = callback as Callback;
    this.#shared.checkout().then(
      (connection) => {
        const base = callbackSide(connection) as unknown as { execute(...args: unknown[]): EventEmitter; release(): void };
        try {
          base.execute(sql, values, cb).once('end', () => base.release());
        } catch (error) {
          base.release();
          later(cb, error);
        }
      },
      (error: unknown) => later(cb, error),
    );
  }

  /** Close the pool: waiting callers fail, idle connections close, leased ones when they come back. */
  end(callback?: (error?: unknown) => void): void {
    this.#shared.end().then(() => {
      if (typeof callback === 'function') later(callback as Callback, null);
    });
  }

  // lifeguard's gauges here too, so that `instrumentPool` and `toPrometheusText` take the pool
  // a library built itself (TypeORM's `dataSource.driver.pool`); the rest is on `promise()`.
  stats(): PoolStats {
    return this.#shared.pool.stats();
  }

  health(): PoolHealth {
    return this.#shared.pool.health();
  }

  /** `true` once `end()` was called. */
  get closed(): boolean {
    return this.#shared.ended;
  }

  // mysql2's own pool methods, on this pool's `config`: the same escaping (sql-escaper, the connection's stringifyObjects and timezone).
  escape(value: unknown): string {
    return POOL_METHODS.escape.call(this, value);
  }

  escapeId(value: string | string[]): string {
    return POOL_METHODS.escapeId.call(this, value);
  }

  format(sql: string, values?: unknown): string {
    return POOL_METHODS.format.call(this, sql, values);
  }

  #fail(command: QueryCommand, error: unknown): void {
    if (typeof command.onResult === 'function') command.onResult(error);
    else command.emit('error', error);
  }
}
