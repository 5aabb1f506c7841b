/**
 * `lifeguard/mysql`: MySQL and MariaDB over mysql2 (`mysql2`, a peer dependency).
 * {@link createMysqlPool} makes a {@link MysqlPool} of mysql2 promise connections; the error
 * classifiers say how a MySQL or socket error affects the pool.
 *
 * @module lifeguard/mysql
 */
import type { Connection as PromiseConnection } from 'mysql2/promise';
import { createPool } from '../../index.js';
import { mysqlAdapter } from './adapter.js';
import { resolveMysqlConfig, type MysqlPoolConfig } from './config.js';
import { MysqlPoolImpl, type MysqlPool } from './mysql-pool.js';

export { isConnectionFatal, isRetryableConnectError, isTransactionRetryable } from './classify.js';
export { resolveMysqlConfig } from './config.js';
export type { DirtyRelease, MysqlConnectionOptions, MysqlPoolConfig, MysqlReleasePolicy, ResetOnRelease, ResolvedMysqlConfig } from './config.js';
export { mysqlAdapter, QueryTimeoutError } from './adapter.js';
export { TransactionRolledBackError, type MysqlIsolationLevel, type MysqlTransactionOptions } from './transaction.js';
export type { MysqlPool, MysqlQuery } from './mysql-pool.js';

/**
 * A pool of mysql2 promise connections to MySQL or MariaDB. Config: mysql2's connection
 * options and `uri` (explicit fields win), the core pool options, and `resetOnRelease` /
 * `dirtyRelease` / `queryTimeoutMs`. A bare `mysql://` URL is `{ uri: url }`.
 */
export function createMysqlPool(config: MysqlPoolConfig | string): MysqlPool {
  const resolved = resolveMysqlConfig(config);
  const adapter = mysqlAdapter(resolved.connectionOptions, resolved.policy);
  return new MysqlPoolImpl((face) => createPool<PromiseConnection>({ ...resolved.poolOptions, adapter }, { face }));
}
