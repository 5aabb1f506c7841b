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
import { postgresAdapter } from './adapter.js';
import { PostgresPoolImpl, type PostgresPool } from './postgres-pool.js';
import { multiHostAdapter } from './host-select.js';
import { registerHostView, withHosts, type HostView } from './host-metrics.js';
import { accepts } from './host-state.js';

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
  const walk = resolved.hosts;
  if (walk === undefined) {
    const adapter = postgresAdapter(resolved.clientConfig, resolved.policy);
    return new PostgresPoolImpl((face) => createPool<pg.Client>({ ...resolved.poolOptions, adapter }, { face }), { pooler: resolved.policy.pooler?.pooler });
  }
  const adapter = multiHostAdapter(
    // One host with a target: the host pg would connect to.
    walk.hosts.length > 0 ? walk : { ...walk, hosts: [singleHost(resolved.clientConfig)] },
    (address) => postgresAdapter({ ...resolved.clientConfig, ...address }, resolved.policy),
    { onError: resolved.policy.sessionLimits?.warn },
  );
  const view: HostView = { states: adapter.hostStates, accepts: (role) => accepts(walk.targetSessionAttrs, role), now: () => performance.now() };
  const pool = new PostgresPoolImpl((face) => createPool<pg.Client>({ ...resolved.poolOptions, adapter }, { face }), {
    pooler: resolved.policy.pooler?.pooler,
    health: (health) => withHosts(health, view, walk.targetSessionAttrs),
  });
  registerHostView(pool, view);
  return pool;
}

function singleHost(config: pg.ClientConfig): { host: string; port: number } {
  const port = Number(config.port ?? process.env.PGPORT ?? 5432);
  return { host: config.host ?? process.env.PGHOST ?? 'localhost', port: Number.isInteger(port) ? port : 5432 };
}
