/**
 * Which adapter a resolved PostgreSQL config asks for: one host as pg connects, or the
 * multi-host walk over one single-host adapter per host (with the per-host health view).
 * Shared by `createPostgresPool` and the `lifeguard/pg` drop-in.
 */
import type pg from 'pg';
import type { Adapter, PoolHealth } from '../../index.js';
import { postgresAdapter } from './adapter.js';
import type { resolvePostgresConfig } from './config.js';
import { registerHostView, withHosts, type HostView } from './host-metrics.js';
import { multiHostAdapter } from './host-select.js';
import { accepts } from './host-state.js';

/**
 * The adapter a resolved config asks for: one host as pg connects, or the multi-host walk
 * over one single-host adapter per host. With several hosts, `health` adds `hosts` to the
 * pool's verdict and `register` makes the pool known to the per-host exporters.
 */
export function assemblePostgresAdapter(
  resolved: ReturnType<typeof resolvePostgresConfig>,
  Client?: typeof pg.Client,
): { adapter: Adapter<pg.Client>; health?: (health: PoolHealth) => PoolHealth; register: (pool: object) => void } {
  const policy = Client === undefined ? resolved.policy : { ...resolved.policy, Client };
  const walk = resolved.hosts;
  if (walk === undefined) return { adapter: postgresAdapter(resolved.clientConfig, policy), register: () => {} };
  const adapter = multiHostAdapter(
    // One host with a target: the host pg would connect to.
    walk.hosts.length > 0 ? walk : { ...walk, hosts: [singleHost(resolved.clientConfig)] },
    (address) => postgresAdapter({ ...resolved.clientConfig, ...address }, policy),
    { onError: resolved.policy.sessionLimits?.warn },
  );
  const view: HostView = { states: adapter.hostStates, accepts: (role) => accepts(walk.targetSessionAttrs, role), now: () => performance.now() };
  return {
    adapter,
    health: (health) => withHosts(health, view, walk.targetSessionAttrs),
    register: (pool) => registerHostView(pool, view),
  };
}

function singleHost(config: pg.ClientConfig): { host: string; port: number } {
  const port = Number(config.port ?? process.env.PGPORT ?? 5432);
  return { host: config.host ?? process.env.PGHOST ?? 'localhost', port: Number.isInteger(port) ? port : 5432 };
}
