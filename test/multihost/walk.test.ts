// The host walk against real servers (SCALE.md 4.11): MH3 the differential against libpq
// (psql with target_session_attrs) for all six targets and every host order over a primary,
// a hot standby and a primary fenced read-only; MH2 bad hosts skipped within their bound and
// remembered; MH4 prefer-standby while the standby is away and back; MH8 all hosts down, then
// one back; MH9 an authentication failure stops the walk; MH7 (last: it changes the topology)
// a standby promoted under the pool's connections.
import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AcquireTimeoutError } from '../../src/index.js';
import { createPostgresPool, NoSuitableHostError, type PostgresPool, type PostgresPoolConfig, type PostgresPoolHealth } from '../../src/adapters/postgres/index.js';
import { TARGET_SESSION_ATTRS } from '../../src/adapters/postgres/hosts.js';
import { freePort } from '../integration/providers.js';
import { Cluster, CountingProxy, libpqChoice, SKIP, type Node } from './cluster.js';

let cluster: Cluster;
let primary: Node;
let standby: Node;
let fenced: Node;
const pools: PostgresPool[] = [];
const proxies: CountingProxy[] = [];

const hasPsql = ((): boolean => {
  try {
    execFileSync('psql', ['--version']);
    return true;
  } catch {
    return false;
  }
})();

function pool(config: PostgresPoolConfig): PostgresPool {
  const made = createPostgresPool({ user: 'postgres', database: 'postgres', min: 0, max: 2, onError: () => {}, ...config });
  pools.push(made);
  return made;
}

async function proxy(target: number): Promise<CountingProxy> {
  const made = await new CountingProxy(target).listen();
  proxies.push(made);
  return made;
}

const at = (port: number): string => `127.0.0.1:${port}`;

function permutations<T>(items: T[]): T[][] {
  if (items.length <= 1) return [items];
  return items.flatMap((item, i) => permutations([...items.slice(0, i), ...items.slice(i + 1)]).map((rest) => [item, ...rest]));
}

describe.skipIf(SKIP)('multi-host walk on a real primary, standby and fenced primary', () => {
  beforeAll(async () => {
    cluster = await Cluster.start(2);
    [primary, standby, fenced] = cluster.nodes as [Node, Node, Node];
    // pg3 leaves the cluster as a primary of its own, then is fenced read-only.
    await cluster.promote(fenced);
    await cluster.fence(fenced, true);
    const { rows } = await fenced.query<{ r: string }>('SELECT current_setting(\'default_transaction_read_only\') AS r');
    expect(rows[0]!.r).toBe('on');
  }, 120_000);

  afterAll(async () => {
    await Promise.all(pools.map((p) => p.close({ timeoutMs: 2000 }).catch(() => {})));
    await Promise.all(proxies.map((p) => p.close()));
    await cluster?.teardown();
  }, 60_000);

  it('MH3: lifeguard picks the server libpq picks, for 6 targets × 6 host orders', async () => {
    if (!hasPsql) throw new Error('psql (postgresql-client) is needed for the differential test against libpq');
    const names = new Map([[primary.port, 'primary'], [standby.port, 'standby'], [fenced.port, 'fenced']]);
    const table: string[] = [];
    const mismatches: string[] = [];
    for (const target of TARGET_SESSION_ATTRS) {
      for (const order of permutations([primary, standby, fenced])) {
        const ports = order.map((n) => n.port);
        const libpq = await libpqChoice(`host=${ports.map(() => '127.0.0.1').join(',')} port=${ports.join(',')} user=postgres dbname=postgres target_session_attrs=${target}`);
        const p = pool({ hosts: ports.map(at), targetSessionAttrs: target, retry: { retries: 0 } });
        let ours: string;
        try {
          ours = String((await p.query<{ p: number }>('SELECT inet_server_port() AS p')).rows[0]!.p);
        } catch {
          ours = 'error';
        }
        await p.close();
        const label = (port: string): string => names.get(Number(port)) ?? port;
        table.push(`${target.padEnd(14)} ${order.map((n) => names.get(n.port)).join(',').padEnd(24)} libpq=${label(libpq).padEnd(8)} lifeguard=${label(ours)}`);
        if (ours !== libpq) mismatches.push(table.at(-1)!);
      }
    }
    console.log(`[multihost] MH3 differential (36 cases):\n${table.join('\n')}`);
    expect(mismatches).toEqual([]);
  }, 120_000);

  it('lifeguard/pg (the pg.Pool drop-in) walks a multi-host URL as libpq does, for every target', async () => {
    if (!hasPsql) throw new Error('psql (postgresql-client) is needed for the differential test against libpq');
    const { Pool } = await import('../../src/adapters/pg/index.js');
    const ports = [standby.port, fenced.port, primary.port];
    const hosts = ports.map(at).join(',');
    const mismatches: string[] = [];
    for (const target of TARGET_SESSION_ATTRS) {
      const libpq = await libpqChoice(`host=${ports.map(() => '127.0.0.1').join(',')} port=${ports.join(',')} user=postgres dbname=postgres target_session_attrs=${target}`);
      const dropIn = new Pool({ connectionString: `postgres://postgres@${hosts}/postgres?target_session_attrs=${target}`, max: 1, retry: { retries: 0 } } as never);
      let ours: string;
      try {
        ours = String((await dropIn.query<{ p: number }>('SELECT inet_server_port() AS p')).rows[0]!.p);
        expect((dropIn.health() as PostgresPoolHealth).hosts?.map((h) => h.host)).toEqual(ports.map(at));
      } catch {
        ours = 'error';
      }
      await dropIn.end();
      if (ours !== libpq) mismatches.push(`${target}: libpq=${libpq} lifeguard/pg=${ours}`);
    }
    expect(mismatches).toEqual([]);
  }, 60_000);

  it('MH2: a refused host and a blackholed one cost one bound each, then are skipped within hostRecheckMs', async () => {
    const refused = await proxy(await freePort());
    const blackhole = await proxy(primary.port);
    blackhole.blackhole = true;
    const boundMs = 500;
    const p = pool({ hosts: [at(refused.port), at(blackhole.port), at(primary.port)], hostConnectTimeoutMs: boundMs, createTimeoutMs: 5000 });
    const started = performance.now();
    const first = await p.acquire();
    const firstMs = performance.now() - started;
    expect(firstMs).toBeLessThan(2 * boundMs + 100 + 200); // 200 ms: the primary's own connect on a shared machine
    expect([refused.connections, blackhole.connections]).toEqual([1, 1]);
    const second = await p.acquire();
    expect([refused.connections, blackhole.connections]).toEqual([1, 1]);
    expect(p.stats().size).toBe(2);
    console.log(`[multihost] MH2 first create ${Math.round(firstMs)} ms (bound ${boundMs} ms per host); second create: 0 connects to the bad hosts`);
    await first.release();
    await second.release();
  });

  it('MH9: an authentication failure on the first host fails the create at once, without trying the second', async () => {
    const second = await proxy(standby.port);
    const p = pool({ hosts: [at(primary.port), at(second.port)], user: 'no_such_role', acquireTimeoutMs: 5000 });
    const started = performance.now();
    const error = await p.acquire().then(() => undefined, (e: unknown) => e);
    const ms = performance.now() - started;
    expect((error as { code?: string }).code ?? ((error as Error).cause as { code?: string })?.code).not.toBe('POOL_ACQUIRE_TIMEOUT');
    expect(JSON.stringify({ message: (error as Error).message, cause: String((error as Error).cause) })).toMatch(/no_such_role|28000/);
    expect(ms).toBeLessThan(1000);
    expect(second.connections).toBe(0);
    console.log(`[multihost] MH9 failed in ${Math.round(ms)} ms, second host connects: ${second.connections}`);
  });

  it('MH8: all hosts down: NoSuitableHostError with one attempt per host; back within 2 s of a host returning', async () => {
    const dead = await freePort();
    const a = await proxy(dead);
    const b = await proxy(dead);
    const probeIntervalMs = 250;
    const p = pool({ hosts: [at(a.port), at(b.port)], targetSessionAttrs: 'read-write', acquireTimeoutMs: 1500, hostConnectTimeoutMs: 500, probeIntervalMs });
    const started = performance.now();
    const error = await p.acquire().then(() => undefined, (e: unknown) => e);
    expect(error).toBeInstanceOf(AcquireTimeoutError);
    const cause = (error as AcquireTimeoutError).cause;
    expect(cause).toBeInstanceOf(NoSuitableHostError);
    expect((cause as NoSuitableHostError).attempts.map((x) => x.host)).toEqual([at(a.port), at(b.port)]);
    // Creates try each host once; the core's recovery probe (every probeIntervalMs while creates
    // back off) checks every host too: connects per host <= failed creates + probes.
    const elapsed = performance.now() - started;
    expect(a.connections).toBe(b.connections);
    expect(a.connections).toBeLessThanOrEqual(p.stats().createFailed + Math.ceil(elapsed / probeIntervalMs) + 1);
    const downSince = performance.now();
    while (performance.now() - downSince < 3000) await new Promise((r) => setTimeout(r, 100));
    const creates = p.stats().createFailed;
    const downHosts = (p.health() as PostgresPoolHealth).hosts!;
    expect(downHosts.map((h) => h.state)).toEqual(['down', 'down']);
    b.target = primary.port;
    const back = performance.now();
    const lease = await p.acquire({ timeoutMs: 5000 });
    const recoveryMs = performance.now() - back;
    await lease.release();
    console.log(`[multihost] MH8 ${creates} failed creates in ~4.5 s, connects per host ${a.connections}/${b.connections} (creates + probes every ${probeIntervalMs} ms); health ${JSON.stringify(downHosts.map((h) => [h.host, h.state]))}; recovery ${Math.round(recoveryMs)} ms after a host returned`);
    expect(recoveryMs).toBeLessThan(2000);
  }, 30_000);

  it('MH4: prefer-standby is served by the primary while the standby is away, and moves back to it', async () => {
    const toStandby = await proxy(await freePort());
    const recheckMs = 1000;
    const p = pool({ hosts: [at(primary.port), at(toStandby.port)], targetSessionAttrs: 'prefer-standby', hostRecheckMs: recheckMs, hostConnectTimeoutMs: 500 });
    const port = async (): Promise<number> => {
      const lease = await p.acquire();
      const { rows } = await lease.resource.query<{ p: number }>('SELECT inet_server_port() AS p');
      await lease.destroy(); // the next acquire makes a new connection
      return rows[0]!.p;
    };
    expect(await port()).toBe(primary.port);
    toStandby.target = standby.port;
    const back = performance.now();
    let served = primary.port;
    while (served !== standby.port && performance.now() - back < 10_000) {
      served = await port();
      if (served !== standby.port) await new Promise((r) => setTimeout(r, 50));
    }
    const ms = performance.now() - back;
    console.log(`[multihost] MH4 new connections on the standby ${Math.round(ms)} ms after it came back (hostRecheckMs ${recheckMs})`);
    expect(served).toBe(standby.port);
    expect(ms).toBeLessThanOrEqual(recheckMs + 1000);
  }, 30_000);

  it("a 25006 from the caller's own READ ONLY transaction retires nothing (the session says it can write)", async () => {
    const p = pool({ hosts: [at(primary.port), at(standby.port)], targetSessionAttrs: 'read-write', max: 2 });
    const error = await p.withConnection(async (client) => {
      await client.query('BEGIN READ ONLY');
      try {
        return await client.query('CREATE TABLE never_made (i int)').then(() => undefined, (e: unknown) => e);
      } finally {
        await client.query('ROLLBACK');
      }
    });
    expect((error as { code?: string }).code).toBe('25006');
    await p.query('SELECT 1');
    const s = p.stats();
    expect(s.created).toBe(1);
    expect(s.destroyedByReason.invalidated + s.destroyedByReason.broken).toBe(0);
    expect((p.health() as PostgresPoolHealth).hosts![0]).toMatchObject({ role: 'primary', state: 'up', connections: 1 });
  });

  it('MH7: a standby promoted under open connections: `any` keeps them (role from ParameterStatus), `standby` retires them', async () => {
    const anyPool = pool({ hosts: [at(standby.port), at(primary.port)], max: 2 });
    const standbyPool = pool({ hosts: [at(standby.port)], targetSessionAttrs: 'standby', max: 2 });
    for (const p of [anyPool, standbyPool]) {
      const leases = [await p.acquire(), await p.acquire()];
      for (const lease of leases) await lease.release();
    }
    const createdBefore = [anyPool.stats().created, standbyPool.stats().created];
    await cluster.promote(standby);
    // The next query on each idle connection brings in_hot_standby=off.
    for (const p of [anyPool, standbyPool]) {
      const leases = [await p.acquire(), await p.acquire().catch(() => undefined)];
      for (const lease of leases) {
        await lease?.resource.query('SELECT 1').catch(() => {});
        await lease?.release();
      }
    }
    await new Promise((r) => setTimeout(r, 100));
    const anyHosts = (anyPool.health() as PostgresPoolHealth).hosts!;
    const standbyHosts = (standbyPool.health() as PostgresPoolHealth).hosts!;
    const s = standbyPool.stats();
    console.log(`[multihost] MH7 any: created ${createdBefore[0]} -> ${anyPool.stats().created}, role ${anyHosts[0]!.role}; standby: destroyed ${JSON.stringify(s.destroyedByReason)}, size ${s.size}`);
    expect(anyPool.stats().created).toBe(createdBefore[0]);
    expect(anyHosts[0]!.role).toBe('primary');
    expect(standbyHosts[0]).toMatchObject({ role: 'primary', connections: 0 });
    expect(s.size).toBe(0);
    expect(s.destroyedByReason.invalidated).toBe(2);
    const error = await standbyPool.acquire({ timeoutMs: 1000 }).then(() => undefined, (e: unknown) => e);
    expect((error as Error).cause).toBeInstanceOf(NoSuitableHostError);
  }, 30_000);
});
