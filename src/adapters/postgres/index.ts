/**
 * `lifeguard/postgres`: PostgreSQL over node-postgres (`pg`, a peer dependency).
 * {@link createPostgresPool} makes a {@link PostgresPool}; the error classifiers say how a
 * PostgreSQL or socket error affects the pool.
 *
 * @module lifeguard/postgres
 */
import type pg from 'pg';
import { createPool } from '../../index.js';
import { resolvePostgresConfig, type PostgresPoolConfig } from './config.js';
import { assemblePostgresAdapter } from './assemble.js';
import { PostgresPoolImpl, type PostgresPool } from './postgres-pool.js';

export { isConnectionFatal, isRetryableConnectError, isTransactionRetryable } from './classify.js';
export { resolveClientConfig } from './config.js';
export type { DirtyRelease, PostgresClientConfig, PostgresPoolConfig, ResetOnRelease } from './config.js';
export type { Pooler, PoolerPolicy, PreparedStatements } from './pooler.js';
export { TransactionRolledBackError, type IsolationLevel, type TransactionOptions } from './transaction.js';
export type { PostgresPool, QueryCallback } from './postgres-pool.js';
export { parsePgDuration, type SessionLimitCheck } from './server-checks.js';
export { postgresAdapter } from './adapter.js';
export { NoSuitableHostError, type HostAttempt, type HostRole } from './host-state.js';
export { HOST_CHANNEL } from './host-select.js';
export { instrumentHosts, toHostPrometheusText, type HostHealth, type HostInstrumentation, type PostgresPoolHealth } from './host-metrics.js';
export type { TargetSessionAttrs, LoadBalanceHosts, OnReadOnly, MultiHostConfig, HostEntry } from './hosts.js';

/**
 * A pool of `pg.Client`s. Config: `pg.ClientConfig` fields and `connectionString`
 * (explicit > URL > `PG*` env > defaults), the core pool options, and
 * `resetOnRelease` / `dirtyRelease` / `queryTimeoutMs`. A bare connection string, as
 * `new pg.Client(url)` takes, is `{ connectionString: url }`.
 */
export function createPostgresPool(config: PostgresPoolConfig | string = {}): PostgresPool {
  const resolved = resolvePostgresConfig(config);
  const { adapter, health, register } = assemblePostgresAdapter(resolved);
  const pool = new PostgresPoolImpl((face) => createPool<pg.Client>({ ...resolved.poolOptions, adapter }, { face }), {
    pooler: resolved.policy.pooler?.pooler,
    ...(health === undefined ? {} : { health }),
  });
  register(pool);
  return pool;
}
