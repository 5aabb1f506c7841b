// Where node-postgres' own pg-pool suite (test/pg-pool-suite, run by pg-pool-suite.test.ts)
// found lifeguard/pg differing from pg.Pool: each fix pinned here on its own, on a real
// PostgreSQL, in terms of what code written for pg.Pool sees.
import { once } from 'node:events';
import type { Socket } from 'node:net';
import type pg from 'pg';
import { afterEach, describe, expect, it } from 'vitest';
import { Pool, type PoolConfig } from '../../src/adapters/pg/index.js';
import { usePostgres, waitFor } from './harness.js';

const db = usePostgres();

const pools = new Set<Pool>();
afterEach(async () => {
  await Promise.all([...pools].map((pool) => (pool.closed ? pool.close({ timeoutMs: 2000 }) : pool.end()).catch(() => {})));
  pools.clear();
});

/** The pg internals these tests reach into, as pg-pool's own tests do. */
type Internals = { connection: { stream: Socket } };

/** `promise`, or a clear failure after `ms`. */
function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

function makePool(config: PoolConfig = {}): Pool & { app: string } {
  const app = db.appName('compat');
  const pool = new Pool({ ...db.connection(), application_name: app, ...config });
  pools.add(pool);
  return Object.assign(pool, { app });
}

describe("an 'error' on an idle client that pg did not raise", () => {
  it("evicts the client, and its sound connection gets a polite goodbye: the server's FIN ends the stream", async () => {
    const pool = db.pool({ max: 1 });
    const lease = await pool.acquire();
    const client = lease.resource as pg.Client & Internals;
    await lease.release();
    const streamEnded = once(client.connection.stream, 'end');
    client.emit('error', new Error('on purpose'));
    await within(streamEnded, 2000, "the stream's end");
    await waitFor('the eviction', () => pool.stats().destroyedByReason.broken === 1);
    expect((await pool.query('SELECT 1 AS ok')).rows).toEqual([{ ok: 1 }]);
  });
});

describe('a client its borrower ended', () => {
  it('is destroyed as it is released, never handed to the next borrower in the moment before its end event', async () => {
    const pool = makePool({ max: 1 });
    const client = await pool.connect();
    void client.end();
    client.release();
    expect([pool.totalCount, pool.idleCount]).toEqual([0, 0]);
    const fresh = await pool.connect();
    expect(fresh).not.toBe(client);
    expect((await fresh.query('SELECT 1 AS ok')).rows).toEqual([{ ok: 1 }]);
    fresh.release();
  });

  it('the same in createPostgresPool (the adapter judges it)', async () => {
    const pool = db.pool({ max: 1 });
    const lease = await pool.acquire();
    const ended = lease.resource;
    void ended.end();
    void lease.release();
    const fresh = await pool.acquire();
    expect(fresh.resource).not.toBe(ended);
    expect((await fresh.resource.query('SELECT 1 AS ok')).rows).toEqual([{ ok: 1 }]);
    await fresh.release();
    expect(pool.stats().destroyedByReason.broken).toBe(1);
  });
});

describe("pg's pipeline option", () => {
  it('reaches the clients; a client released mid-pipeline is destroyed', async () => {
    const pool = makePool({ max: 1, pipeline: true });
    const client = await pool.connect();
    expect(client.pipeline).toBe(true);
    const results = await Promise.all([1, 2, 3].map((n) => client.query('SELECT $1::int AS n', [n])));
    expect(results.map((result) => result.rows[0].n)).toEqual([1, 2, 3]);
    const inFlight = [client.query('SELECT pg_sleep(0.05)'), client.query('SELECT 1')];
    client.release();
    await Promise.allSettled(inFlight);
    expect(pool.stats().destroyedByReason.broken).toBe(1);
    expect((await pool.query('SELECT 2 AS two')).rows).toEqual([{ two: 2 }]);
    // createPostgresPool takes it too.
    const direct = db.pool({ max: 1, pipeline: true });
    await direct.withConnection((c) => expect(c.pipeline).toBe(true));
  });
});

