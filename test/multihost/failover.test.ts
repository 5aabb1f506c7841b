// Failover with a read-write multi-host pool on a real primary and streaming standby
// (SCALE.md 4.11): MH5 crash the primary under 8 writers, promote the standby a second later,
// rebuild the old primary as a standby on its old address; MH6 fence the new primary
// read-only under load, then promote the other node; MH10 health().hosts, the per-host
// Prometheus families and one lifeguard:pg:host event per transition, seen along the way.
// Invariants kept as in the fault suite: size <= max, every query settles, no session left
// after close().
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPostgresPool, HOST_CHANNEL, instrumentHosts, toHostPrometheusText, type PostgresPool, type PostgresPoolHealth } from '../../src/adapters/postgres/index.js';
import { Cluster, SKIP, type Node } from './cluster.js';

let cluster: Cluster;
let pg1: Node;
let pg2: Node;
const events: Array<{ host: string; from: string; to: string }> = [];
const onEvent = (message: unknown): void => {
  const { host, from, to } = message as { host: string; from: string; to: string };
  events.push({ host, from, to });
};

interface Outcome {
  at: number;
  port?: number;
  code?: string;
}

/** `writers` loops of INSERT … RETURNING inet_server_port() until `stop()`; every outcome timed. */
function writeLoad(pool: PostgresPool, writers: number): { outcomes: Outcome[]; inFlight: () => number; maxSize: () => number; stop: () => Promise<void> } {
  const outcomes: Outcome[] = [];
  let running = true;
  let inFlight = 0;
  let maxSize = 0;
  const loops = Array.from({ length: writers }, async (_, w) => {
    while (running) {
      inFlight++;
      try {
        const { rows } = await pool.query<{ p: number }>('INSERT INTO t(w) VALUES ($1) RETURNING inet_server_port() AS p', [w]);
        outcomes.push({ at: performance.now(), port: rows[0]!.p });
      } catch (error) {
        outcomes.push({ at: performance.now(), code: (error as { code?: string }).code ?? 'unknown' });
        await new Promise((r) => setTimeout(r, 20));
      } finally {
        inFlight--;
      }
      maxSize = Math.max(maxSize, pool.stats().size);
    }
  });
  return {
    outcomes,
    inFlight: () => inFlight,
    maxSize: () => maxSize,
    stop: async () => {
      running = false;
      await Promise.all(loops);
    },
  };
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A meter that records what the host instruments report, collected on demand. */
function recordingMeter() {
  const observed: Array<{ name: string; value: number; attributes: Record<string, string> }> = [];
  const added: Array<{ name: string; value: number; attributes: Record<string, string> }> = [];
  let callback: ((result: { observe(o: unknown, v: number, a?: Record<string, string>): void }) => void) | undefined;
  const meter = {
    createCounter: (name: string) => ({ add: (value: number, attributes: Record<string, string> = {}) => added.push({ name, value, attributes }) }),
    createHistogram: () => ({ record: () => {} }),
    createObservableUpDownCounter: (name: string) => ({ name }),
    addBatchObservableCallback: (cb: typeof callback) => {
      callback = cb;
    },
    removeBatchObservableCallback: () => {
      callback = undefined;
    },
  };
  const collect = (): void => callback?.({ observe: (o, value, attributes = {}) => observed.push({ name: (o as { name: string }).name, value, attributes }) });
  return { meter, observed, added, collect };
}

describe.skipIf(SKIP)('multi-host failover under load', () => {
  beforeAll(async () => {
    cluster = await Cluster.start(1);
    [pg1, pg2] = cluster.nodes as [Node, Node];
    await pg1.query('CREATE TABLE t (id bigserial PRIMARY KEY, w int, at timestamptz DEFAULT clock_timestamp())');
    await cluster.waitReplicas(pg1, 1);
    subscribe(HOST_CHANNEL, onEvent);
  }, 120_000);

  afterAll(async () => {
    unsubscribe(HOST_CHANNEL, onEvent);
    await cluster?.teardown();
  }, 60_000);

  it('MH5 + MH10: crash pg1, promote pg2 1 s later, rebuild pg1 as a standby: writes resume, never on a standby', async () => {
    const hosts = [`127.0.0.1:${pg1.port}`, `127.0.0.1:${pg2.port}`];
    const reported: string[] = [];
    const pool = createPostgresPool({
      hosts, targetSessionAttrs: 'read-write', user: 'postgres', database: 'postgres', max: 8,
      acquireTimeoutMs: 10_000, retry: { maxTimeoutMs: 500 }, circuitBreaker: false,
      onError: (error) => {
        if ((error as { code?: string }).code === 'POOL_HOST_ROLE_CHANGED') reported.push((error as Error).message);
      },
    });
    const otel = recordingMeter();
    const instruments = instrumentHosts(pool, { meter: otel.meter, poolName: 'writes' });
    const load = writeLoad(pool, 8);
    await sleep(1000);
    const before = (pool.health() as PostgresPoolHealth).hosts!;
    expect(before.map((h) => [h.host, h.state, h.role])).toEqual([[hosts[0], 'up', 'primary'], [hosts[1], 'unknown', 'unknown']]);
    const inFlightAtCrash = load.inFlight();
    const crashAt = performance.now();
    await cluster.crash(pg1);
    await sleep(1000);
    const duringOutage = (pool.health() as PostgresPoolHealth).hosts!;
    const promoteStart = performance.now();
    await cluster.promote(pg2);
    const promoted = performance.now();
    await sleep(1000);
    await cluster.rebuildAsStandby(pg1, pg2);
    const rebuilt = performance.now();
    await sleep(1500);
    await load.stop();
    const metrics = toHostPrometheusText([{ pool, name: 'writes' }]);
    const after = (pool.health() as PostgresPoolHealth).hosts!;
    otel.collect();
    instruments.stop();
    await pool.close();

    const o = load.outcomes;
    const errors = o.filter((x) => x.code !== undefined && x.at >= crashAt);
    const firstOnPg2 = o.find((x) => x.port === pg2.port);
    const after25006 = o.filter((x) => x.code === '25006' && x.at >= rebuilt).length;
    const writesOnPg2 = o.filter((x) => x.port === pg2.port).length;
    const { rows } = await pg2.query<{ n: string }>(`SELECT count(*) AS n FROM t WHERE at >= now() - interval '1 hour'`);
    const byCode = Object.entries(errors.reduce<Record<string, number>>((m, x) => ({ ...m, [x.code!]: (m[x.code!] ?? 0) + 1 }), {}));
    console.log(
      `[multihost] MH5 errors after the crash ${errors.length} (${byCode.map(([c, n]) => `${c}×${n}`).join(', ') || 'none'}), in flight at the crash ${inFlightAtCrash}; ` +
        `first write on pg2 at promote ${firstOnPg2 === undefined ? 'never' : `${Math.round(firstOnPg2.at - promoted) >= 0 ? '+' : ''}${Math.round(firstOnPg2.at - promoted)} ms`} ` +
        `(pg_ctl promote took ${Math.round(promoted - promoteStart)} ms); 25006 after the rebuild ${after25006}; writes on pg2 ${writesOnPg2}; max size ${load.maxSize()}`,
    );
    console.log(`[multihost] MH10 hosts during the outage ${JSON.stringify(duringOutage.map((h) => [h.host, h.state, h.role]))}, after ${JSON.stringify(after.map((h) => [h.host, h.state, h.role]))}; events ${JSON.stringify(events)}`);
    expect(errors.length).toBeLessThanOrEqual(inFlightAtCrash);
    expect(firstOnPg2).toBeDefined();
    expect(firstOnPg2!.at - promoted).toBeLessThanOrEqual(1000);
    expect(after25006).toBe(0);
    // Every write lifeguard saw commit on pg2 is there (pg2 kept pg1's rows too).
    expect(Number(rows[0]!.n)).toBeGreaterThanOrEqual(writesOnPg2);
    expect(load.maxSize()).toBeLessThanOrEqual(8);
    // MH10: hosts[], the families, one event per transition.
    expect(duringOutage[0]!.state).toBe('down');
    // pg1 is only asked again when a create needs it (it is after pg2 while suspect): down, or seen as a standby.
    expect(after[1]).toMatchObject({ host: hosts[1], state: 'up', role: 'primary' });
    expect(after[0]!.state === 'down' || after[0]!.role === 'standby').toBe(true);
    for (const family of ['lifeguard_pg_host_connections', 'lifeguard_pg_host_up', 'lifeguard_pg_host_role', 'lifeguard_pg_host_connect_failed_total', 'lifeguard_pg_host_role_changes_total']) {
      expect(metrics).toContain(`# TYPE ${family} `);
    }
    const labels = new Set([...metrics.matchAll(/host="([^"]+)"/g)].map((m) => m[1]));
    expect([...labels].sort()).toEqual([...hosts].sort());
    expect(metrics).toContain(`lifeguard_pg_host_up{pool_name="writes",host="${hosts[1]}"} 1`);
    // OpenTelemetry: one connections series per host, failures with bounded attributes.
    expect(otel.observed.filter((x) => x.name === 'lifeguard.pg.host.connections').map((x) => `${x.attributes['server.address']}:${x.attributes['server.port']}`)).toEqual(hosts);
    expect(otel.observed.find((x) => x.attributes['server.port'] === String(pg2.port))).toMatchObject({ value: after[1]!.connections, attributes: { 'db.postgresql.role': 'primary' } });
    const failed = otel.added.filter((x) => x.name === 'lifeguard.pg.host.connect_failures');
    expect(failed.some((x) => x.attributes['server.port'] === String(pg1.port) && x.attributes['error.type'] === 'refused')).toBe(true);
    expect(failed.some((x) => x.attributes['server.port'] === String(pg2.port) && x.attributes['error.type'] === 'wrong_role')).toBe(true);
    // One onError per host transition: pg2 standby -> primary (pg1 was not seen again as a standby).
    expect(reported).toContain(`PostgreSQL host ${hosts[1]} changed role from standby to primary`);
    expect(new Set(reported).size).toBe(reported.length);
    const pg1Events = events.filter((e) => e.host === hosts[0]).map((e) => `${e.from}>${e.to}`);
    expect(pg1Events.slice(0, 2)).toEqual(['unknown>primary', 'up>down']);
    expect(events.filter((e) => e.host === hosts[1]).map((e) => `${e.from}>${e.to}`)).toContain('standby>primary');
    for (let i = 1; i < events.length; i++) expect(events[i]).not.toEqual(events[i - 1]);
    // No session left on the surviving servers (fault-suite invariant).
    let left = -1;
    for (let i = 0; i < 20 && left !== 0; i++) {
      if (i > 0) await sleep(50);
      const { rows: r } = await pg2.query<{ n: string }>("SELECT count(*) AS n FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()");
      left = Number(r[0]!.n);
    }
    expect(left).toBe(0);
  }, 60_000);

  it('MH6: fencing the primary retires its connections only; writes go on once the other node is promoted', async () => {
    // Now pg2 is the primary and pg1 its standby.
    const hosts = [`127.0.0.1:${pg2.port}`, `127.0.0.1:${pg1.port}`];
    const pool = createPostgresPool({
      hosts, targetSessionAttrs: 'read-write', user: 'postgres', database: 'postgres', max: 4,
      acquireTimeoutMs: 10_000, retry: { maxTimeoutMs: 500 }, circuitBreaker: false, onError: () => {},
    });
    const load = writeLoad(pool, 4);
    await sleep(800);
    const leasedAtSwitch = pool.stats().leased;
    const fencedAt = performance.now();
    await cluster.fence(pg2, true);
    await sleep(700);
    const promoteStart = performance.now();
    await cluster.promote(pg1);
    const promoted = performance.now();
    await sleep(1500);
    await load.stop();
    const hostsAfter = (pool.health() as PostgresPoolHealth).hosts!;
    const stats = pool.stats();
    await pool.close();
    const o = load.outcomes;
    const ro = o.filter((x) => x.code === '25006').length;
    const otherErrors = o.filter((x) => x.code !== undefined && x.code !== '25006' && x.at >= fencedAt).length;
    const afterPromote = o.filter((x) => x.at > promoted + 1000);
    const firstOnPg1 = o.find((x) => x.port === pg1.port);
    console.log(
      `[multihost] MH6 25006 ${ro} (leased at the switch ${leasedAtSwitch}), other errors ${otherErrors}; first write on pg1 ${firstOnPg1 === undefined ? 'never' : `promote ${Math.round(firstOnPg1.at - promoted) >= 0 ? '+' : ''}${Math.round(firstOnPg1.at - promoted)} ms`} ` +
        `(promote took ${Math.round(promoted - promoteStart)} ms); destroyed ${JSON.stringify(stats.destroyedByReason)}; hosts ${JSON.stringify(hostsAfter.map((h) => [h.host, h.state, h.role, h.connections]))}`,
    );
    expect(ro).toBeLessThanOrEqual(4);
    expect(hostsAfter[0]!).toMatchObject({ role: 'read-only', connections: 0 });
    expect(afterPromote.every((x) => x.port === pg1.port)).toBe(true);
    expect(afterPromote.length).toBeGreaterThan(0);
  }, 60_000);
});
