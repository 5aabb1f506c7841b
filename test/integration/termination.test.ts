// pg_terminate_backend from an admin connection (FAULTS.md F1, F2): idle pooled clients and
// a leased client in the middle of a query. No crash, the pool heals, and a terminated
// client object is never handed out again (compared by identity: a new backend may reuse
// the PID).
import type pg from 'pg';
import { describe, expect, it } from 'vitest';
import { pidOf, rejectionOf, sleep, type TestPool, usePostgres, waitFor } from './harness.js';

const db = usePostgres();

/** Take `n` clients at once (so they are distinct), run a query on each, release them all. */
async function fill(pool: TestPool, n: number): Promise<Set<pg.Client>> {
  const leases = await Promise.all(Array.from({ length: n }, () => pool.acquire()));
  await Promise.all(leases.map((l) => l.resource.query('SELECT 1')));
  const clients = new Set(leases.map((l) => l.resource));
  for (const lease of leases) await lease.release();
  return clients;
}

async function terminateIdle(app: string): Promise<number> {
  const { rows } = await db.admin<{ ok: boolean }>(
    "SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity WHERE application_name = $1 AND state = 'idle'",
    [app],
  );
  return rows.filter((r) => r.ok).length;
}

/** 5 sequential then 5 concurrent acquire + SELECT 1; returns the clients used and the errors. */
async function tenAcquires(pool: TestPool): Promise<{ used: pg.Client[]; errors: unknown[] }> {
  const used: pg.Client[] = [];
  const errors: unknown[] = [];
  const once = async (): Promise<void> => {
    try {
      await pool.withConnection(async (client) => {
        used.push(client);
        await client.query('SELECT 1');
      });
    } catch (error) {
      errors.push(error);
    }
  };
  for (let i = 0; i < 5; i++) await once();
  await Promise.all(Array.from({ length: 5 }, once));
  return { used, errors };
}

describe('pg_terminate_backend on idle pooled clients (F1)', () => {
  it('after the pool heard the FATAL: 10 acquires succeed, none returns a terminated client object', async () => {
    const pool = db.pool({ max: 5 });
    const originals = await fill(pool, 5);
    expect(originals.size).toBe(5);
    expect(await db.sessions(pool.app)).toBe(5);
    const ended = Promise.all([...originals].map((client) => new Promise((resolve) => client.once('end', resolve))));

    expect(await terminateIdle(pool.app)).toBe(5);
    await ended; // every client got its FATAL 57P01 + EOF, with no crash

    const { used, errors } = await tenAcquires(pool);
    expect(errors).toEqual([]);
    expect(used).toHaveLength(10);
    expect(used.filter((client) => originals.has(client))).toEqual([]);
    const stats = pool.stats();
    expect(stats.destroyedByReason.broken + stats.destroyedByReason.pingFailed).toBe(5);
    // The server count matches the pool again.
    await waitFor('server sessions == pool.size', async () => (await db.sessions(pool.app)) === pool.stats().size, { timeoutMs: 1000 });
  });

  it('immediately after the terminate (pingIfIdleMs: 0): the borrow-time ping catches the dead clients', async () => {
    const pool = db.pool({ max: 5, pingIfIdleMs: 0 });
    const originals = await fill(pool, 5);
    expect(await terminateIdle(pool.app)).toBe(5);

    const { used, errors } = await tenAcquires(pool);
    expect(errors).toEqual([]);
    expect(used.filter((client) => originals.has(client))).toEqual([]);
    const stats = pool.stats();
    expect(stats.destroyedByReason.broken + stats.destroyedByReason.pingFailed).toBe(5);
    await waitFor('server sessions == pool.size', async () => (await db.sessions(pool.app)) === pool.stats().size, { timeoutMs: 1000 });
  });

  it('the pool refills under concurrent demand after all its idle sessions were killed', async () => {
    const pool = db.pool({ max: 5 });
    const originals = await fill(pool, 5);
    const ended = Promise.all([...originals].map((client) => new Promise((resolve) => client.once('end', resolve))));
    await terminateIdle(pool.app);
    await ended;
    const results = await Promise.all(Array.from({ length: 50 }, (_, i) => pool.query<{ n: number }>('SELECT $1::int AS n', [i])));
    expect(results.map((r) => r.rows[0]!.n)).toEqual(Array.from({ length: 50 }, (_, i) => i));
    expect(pool.stats().size).toBeLessThanOrEqual(5);
  });
});

describe('pg_terminate_backend on a leased client mid-query (F2)', () => {
  it('the query rejects with 57P01, queued queries reject, release destroys the client, other workers are unaffected', async () => {
    const pool = db.pool({ max: 5 });
    // Background load on the same pool.
    let stop = false;
    const workerErrors: unknown[] = [];
    let workerQueries = 0;
    const workers = Array.from({ length: 3 }, async () => {
      while (!stop) {
        try {
          await pool.query('SELECT pg_sleep(0.01)');
          workerQueries++;
        } catch (error) {
          workerErrors.push(error);
        }
      }
    });

    const lease = await pool.acquire();
    const victim = lease.resource;
    const pid = pidOf(victim);
    const running = rejectionOf(victim.query('SELECT pg_sleep(5)'));
    const queued = rejectionOf(victim.query('SELECT 2'));
    await waitFor('the query to run on the server', async () => (await db.sessionRows(pool.app)).some((r) => r.pid === pid && r.state === 'active'));

    const killedAt = performance.now();
    expect((await db.admin('SELECT pg_terminate_backend($1) AS ok', [pid])).rows[0]!.ok).toBe(true);
    const error = await running;
    const latency = performance.now() - killedAt;
    expect(error.code).toBe('57P01'); // admin_shutdown: terminating connection due to administrator command
    expect(latency).toBeLessThan(1000);
    expect((await queued).message).toMatch(/Connection terminated|terminating connection/);

    await sleep(100); // the background 'error'/'end' from the dead client must not crash anything
    await lease.release();
    expect(pool.stats().destroyedByReason.broken).toBe(1);

    const after = new Set<pg.Client>();
    for (let i = 0; i < 10; i++) await pool.withConnection((client) => void after.add(client));
    expect(after.has(victim)).toBe(false);

    stop = true;
    await Promise.all(workers);
    expect(workerErrors).toEqual([]);
    expect(workerQueries).toBeGreaterThan(0);
  });

  it('pool.query whose backend is terminated rejects with 57P01 and its client is destroyed', async () => {
    const pool = db.pool({ max: 1 });
    const app = pool.app;
    const pending = rejectionOf(pool.query('SELECT pg_sleep(5)'));
    const pid = (
      await waitFor('the query to run on the server', async () => (await db.sessionRows(app)).find((r) => r.state === 'active'))
    ).pid;
    await db.admin('SELECT pg_terminate_backend($1)', [pid]);
    expect((await pending).code).toBe('57P01');
    expect(pool.stats()).toMatchObject({ leased: 0, destroyed: 1 });
    const { rows } = await pool.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
    expect(rows[0]!.pid).not.toBe(pid);
  });

  it('withTransaction whose backend is terminated mid-transaction rejects with 57P01 and never pools the client', async () => {
    const pool = db.pool({ max: 1 });
    let victim: pg.Client | undefined;
    const pending = rejectionOf(
      pool.withTransaction(async (client) => {
        victim = client;
        await client.query('SELECT pg_sleep(5)');
      }),
    );
    await waitFor('the transaction to run', async () => (await db.sessionRows(pool.app)).some((r) => r.state === 'active'));
    await db.admin("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1 AND state = 'active'", [pool.app]);
    expect((await pending).code).toBe('57P01');
    const next = await pool.withConnection((client) => client);
    expect(next).not.toBe(victim);
    expect(pool.stats().destroyed).toBe(1);
  });
});
