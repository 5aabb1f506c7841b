/**
 * Per-host visibility of a multi-host pool: `health().hosts` and Prometheus families. The
 * core's exporters stay database-neutral: `lifeguard/postgres` renders its own families
 * ({@link toHostPrometheusText}), which a `/metrics` handler appends to `toPrometheusText`'s.
 * Label values come from the configured host list, so cardinality is bounded by it.
 */
import type { BatchObservableResultLike, MeterLike, PoolHealth } from '../../index.js';
import type { HostRole, HostState } from './host-state.js';

/** One configured host, as `health().hosts` reports it. */
export interface HostHealth {
  /** 'host:port' ('[v6]:port'), as configured. */
  readonly host: string;
  /** up: the last connect worked and its role is wanted; wrong-role: reachable, role not wanted; down: in connect backoff; unknown: never tried. */
  readonly state: 'up' | 'down' | 'wrong-role' | 'unknown';
  /** The role last seen (it may be stale while the host is down: see lastCheckedAgoMs). */
  readonly role: HostRole;
  /** Live pool connections to this host. */
  readonly connections: number;
  /** Remaining connect backoff, while down. */
  readonly downForMs?: number;
  /** The last connect error, while down. */
  readonly lastError?: unknown;
  /** Since the host's role was last observed. */
  readonly lastCheckedAgoMs?: number;
}

/** `PoolHealth` of a multi-host pool. */
export interface PostgresPoolHealth extends PoolHealth {
  /** Per configured host, in configuration order; only for pools with more than one host or a target. */
  readonly hosts?: readonly HostHealth[];
}

/** What a pool exposes to the renderer and health (set by createPostgresPool). */
export interface HostView {
  readonly states: readonly HostState[];
  readonly accepts: (role: HostRole) => boolean;
  readonly now: () => number;
}

const views = new WeakMap<object, HostView>();

export function registerHostView(pool: object, view: HostView): void {
  views.set(pool, view);
}

export function hostHealth(view: HostView): HostHealth[] {
  const now = view.now();
  return view.states.map((h) => {
    const down = h.downUntil > now || (h.failures > 0 && h.connections === 0);
    const state = down ? 'down' : h.role === 'unknown' && h.counters.connects === 0 ? 'unknown' : view.accepts(h.role) || h.role === 'unknown' ? 'up' : 'wrong-role';
    return {
      host: h.key,
      state,
      role: h.role,
      connections: h.connections,
      ...(down ? { downForMs: Math.max(0, Math.round(h.downUntil - now)), lastError: h.lastError } : {}),
      ...(Number.isFinite(h.roleAt) ? { lastCheckedAgoMs: Math.round(now - h.roleAt) } : {}),
    };
  });
}

/** The `down` verdict's reason, naming each host: "no host accepted a read-write session: h1:5432 down, h2:5433 standby". */
export function withHosts(health: PoolHealth, view: HostView | undefined, target: string): PostgresPoolHealth {
  if (view === undefined) return health;
  const hosts = hostHealth(view);
  if (health.status !== 'down') return { ...health, hosts };
  const parts = hosts.map((h) => `${h.host} ${h.state === 'wrong-role' ? h.role : h.state}`);
  return { ...health, hosts, reason: `${health.reason ?? 'down'}; no host accepted a ${target} session: ${parts.join(', ')}` };
}

const ROLES: readonly HostRole[] = ['unknown', 'primary', 'standby', 'read-only'];
const REASONS = [['refused', 'refused'], ['timeout', 'timeout'], ['auth', 'auth'], ['wrong-role', 'wrong_role'], ['other', 'other']] as const;

const escape = (value: string): string => value.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');

/**
 * The per-host families of multi-host pools in Prometheus text (version 0.0.4), to append to
 * `toPrometheusText`'s output. Pools without a host walk contribute nothing.
 */
export function toHostPrometheusText(pools: ReadonlyArray<{ readonly pool: object; readonly name: string }>): string {
  const rows = pools.flatMap(({ pool, name }) => {
    const view = views.get(pool);
    return view === undefined ? [] : [{ name, view, health: hostHealth(view) }];
  });
  if (rows.length === 0) return '';
  const out: string[] = [];
  const family = (name: string, type: string, help: string, lines: string[]): void => {
    out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`, ...lines);
  };
  const each = (fn: (pool: string, h: HostState, health: { state: string }) => string[]): string[] =>
    rows.flatMap((r) => r.view.states.flatMap((h, i) => fn(`pool_name="${escape(r.name)}",host="${escape(h.key)}"`, h, r.health[i]!)));
  family('lifeguard_pg_host_connections', 'gauge', 'Live pool connections per configured host, by its current role.', each((l, h) => [`lifeguard_pg_host_connections{${l},role="${h.role}"} ${h.connections}`]));
  family('lifeguard_pg_host_up', 'gauge', '1 when the host is reachable with a wanted role, 0 when down, of the wrong role or never tried.', each((l, _h, s) => [`lifeguard_pg_host_up{${l}} ${s.state === 'up' ? 1 : 0}`]));
  family('lifeguard_pg_host_role', 'gauge', "1 for the host's current role.", each((l, h) => ROLES.map((r) => `lifeguard_pg_host_role{${l},role="${r}"} ${h.role === r ? 1 : 0}`)));
  family('lifeguard_pg_host_connect_failed_total', 'counter', 'Connects to the host that failed or reached a session of the wrong role, by reason.', each((l, h) => REASONS.map(([k, r]) => `lifeguard_pg_host_connect_failed_total{${l},reason="${r}"} ${h.counters.connectFailures[k]}`)));
  family('lifeguard_pg_host_role_changes_total', 'counter', 'Role changes observed on the host (promotion, demotion, fencing).', each((l, h) => [`lifeguard_pg_host_role_changes_total{${l}} ${h.counters.roleChanges}`]));
  return `${out.join('\n')}\n`;
}

/** What {@link instrumentHosts} returns. */
export interface HostInstrumentation {
  /** Unregister the callback: the host instruments stop reporting. */
  stop(): void;
}

/**
 * OpenTelemetry instruments for a multi-host pool's hosts, beside `instrumentPool`'s (whose
 * sums stay per pool): `lifeguard.pg.host.connections` (asynchronous UpDownCounter) and
 * `lifeguard.pg.host.connect_failures` (Counter, `error.type` = reason), each with
 * `server.address`, `server.port` and `db.postgresql.role`. Failures are counted from the
 * hosts' own counters at each collection, so nothing runs between collections.
 * Returns `stop()`; a pool without a host walk gets a no-op.
 */
export function instrumentHosts(pool: object, options: { readonly meter: MeterLike; readonly poolName: string }): HostInstrumentation {
  const view = views.get(pool);
  if (view === undefined) return { stop() {} };
  const { meter, poolName } = options;
  const connections = meter.createObservableUpDownCounter('lifeguard.pg.host.connections', { description: 'Live pool connections per configured host', unit: '{connection}' });
  const failures = meter.createCounter('lifeguard.pg.host.connect_failures', { description: 'Failed connects, or sessions of an unwanted role, per configured host', unit: '{connect}' });
  const reported = new Map<HostState, Record<string, number>>();
  const callback = (result: BatchObservableResultLike): void => {
    for (const h of view.states) {
      const attributes = { 'db.client.connection.pool.name': poolName, 'server.address': h.address.host, 'server.port': String(h.address.port), 'db.postgresql.role': h.role };
      result.observe(connections, h.connections, attributes);
      const seen = reported.get(h) ?? {};
      for (const [key, reason] of REASONS) {
        const delta = h.counters.connectFailures[key] - (seen[key] ?? 0);
        if (delta > 0) failures.add(delta, { ...attributes, 'error.type': reason });
        seen[key] = h.counters.connectFailures[key];
      }
      reported.set(h, seen);
    }
  };
  meter.addBatchObservableCallback(callback, [connections]);
  return { stop: () => meter.removeBatchObservableCallback(callback, [connections]) };
}
