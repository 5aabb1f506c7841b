// Server-side statement_timeout / cancel (57014) keeps the connection (FAULTS.md F3); a
// client-side queryTimeoutMs destroys it (F18), since the query is still running.
import type pg from 'pg';
import { describe, expect, it } from 'vitest';
import { pidOf, rejectionOf, settled, sleep, usePostgres, waitFor } from './harness.js';

const db = usePostgres();

describe('server-side statement_timeout and cancel (57014): the connection is kept', () => {
  it('SET LOCAL statement_timeout inside withTransaction: 57014, then the same client object, nothing created', async () => {
    const pool = db.pool({ max: 1 });
    let inside: pg.Client | undefined;
    const started = performance.now();
    const error = await rejectionOf(
      pool.withTransaction(async (client) => {
        inside = client;
        await client.query("SET LOCAL statement_timeout = '200ms'");
        await client.query('SELECT pg_sleep(5)');
      }),
    );
    expect(error.code).toBe('57014'); // query_canceled
    expect(performance.now() - started).toBeLessThan(2000);
    const before = pool.stats();
    await using lease = await pool.acquire();
    expect(lease.resource).toBe(inside);
    expect((await lease.resource.query("SELECT current_setting('statement_timeout') AS t")).rows[0]!.t).toBe('0'); // LOCAL ended with the transaction
    const after = pool.stats();
    expect(after.created).toBe(before.created);
    expect(after).toMatchObject({ created: 1, destroyed: 0, size: 1 });
  });

  it('statement_timeout from the pool config: 57014 on a lease, released and reused', async () => {
    const pool = db.pool({ max: 1, statement_timeout: 150 });
    let first: pg.Client | undefined;
    {
      await using lease = await pool.acquire();
      first = lease.resource;
      const error = await rejectionOf(lease.resource.query('SELECT pg_sleep(5)'));
      expect(error.code).toBe('57014');
      // Wait for ReadyForQuery before releasing: the ErrorResponse/ReadyForQuery race is
      // tested on its own in pool-basics.test.ts ("a failed query does not cost the connection").
      await settled(lease.resource);
    }
    await using again = await pool.acquire();
    expect(again.resource).toBe(first);
    expect((await again.resource.query('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
    expect(pool.stats()).toMatchObject({ created: 1, destroyed: 0, size: 1 });
  });

  it('pg_cancel_backend from an admin: 57014, and the client goes back to the pool', async () => {
    const pool = db.pool({ max: 1 });
    const lease = await pool.acquire();
    const client = lease.resource;
    const pending = rejectionOf(client.query('SELECT pg_sleep(5)'));
    await waitFor('the query to run', async () => (await db.sessionRows(pool.app)).some((r) => r.state === 'active'));
    expect((await db.admin('SELECT pg_cancel_backend($1) AS ok', [pidOf(client)])).rows[0]!.ok).toBe(true);
    expect((await pending).code).toBe('57014');
    await settled(client);
    await lease.release();
    expect(await pool.withConnection((c) => c)).toBe(client);
    expect(pool.stats()).toMatchObject({ created: 1, destroyed: 0 });
  });
});

describe('client-side queryTimeoutMs: the connection is destroyed', () => {
  it('pool.query times out at queryTimeoutMs, the client is destroyed, the next query runs on a new one at once', async () => {
    const pool = db.pool({ max: 1, queryTimeoutMs: 200 });
    const firstPid = (await pool.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
    const started = performance.now();
    const error = await rejectionOf(pool.query('SELECT pg_sleep(3)'));
    const elapsed = performance.now() - started;
    expect(error.message).toMatch(/Query read timeout/);
    expect(elapsed).toBeGreaterThanOrEqual(190);
    expect(elapsed).toBeLessThan(1500);
    expect(pool.stats().destroyedByReason.broken).toBe(1);

    const t = performance.now();
    const { rows } = await pool.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
    expect(performance.now() - t).toBeLessThan(1000); // not stuck behind the timed-out query
    expect(rows[0]!.pid).not.toBe(firstPid);
    expect(pool.stats()).toMatchObject({ created: 2, size: 1 });
  });

  it('a raw query on a lease that hits queryTimeoutMs: release destroys the client, the next borrower gets another', async () => {
    const pool = db.pool({ max: 1, queryTimeoutMs: 200 });
    const lease = await pool.acquire();
    const stuck = lease.resource;
    expect((await rejectionOf(stuck.query('SELECT pg_sleep(3)'))).message).toMatch(/Query read timeout/);
    await lease.release();
    await using next = await pool.acquire({ timeoutMs: 2000 });
    expect(next.resource).not.toBe(stuck);
    expect((await next.resource.query('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
    expect(pool.stats().destroyedByReason.broken).toBe(1);
  });

  it('the timed-out query does not keep running on the server after its connection is destroyed', async () => {
    // A query stuck on a lock: the reason queryTimeoutMs exists. Without a cancel, its backend
    // keeps waiting (and holding its own locks) for as long as the lock is held.
    const blocker = await db.adminClient();
    await blocker.query('SELECT pg_advisory_lock(777001)');
    try {
      const pool = db.pool({ max: 1, queryTimeoutMs: 200 });
      const pid = (await pool.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
      expect((await rejectionOf(pool.query('SELECT pg_advisory_lock(777001)'))).message).toMatch(/Query read timeout/);
      await sleep(1000);
      const rows = await db.sessionRows(pool.app);
      expect(rows.filter((r) => r.pid === pid).map((r) => ({ state: r.state, query: r.query }))).toEqual([]);
    } finally {
      await blocker.query('SELECT pg_advisory_unlock_all()');
    }
  });
});
