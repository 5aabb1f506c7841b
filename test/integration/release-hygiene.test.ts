// What the next borrower gets after a dirty release (FAULTS.md F6): a lease released in the
// middle of a transaction, in a failed transaction, or in the middle of a query; and
// resetOnRelease: 'discard' cleaning session state while the connection keeps working.
import type pg from 'pg';
import { beforeAll, describe, expect, it } from 'vitest';
import { pidOf, rejectionOf, settled, sleep, type TestPool, usePostgres, waitFor } from './harness.js';

const db = usePostgres();
let HYGIENE = '';

beforeAll(async () => {
  HYGIENE = db.table('hygiene');
  await db.admin(`CREATE TABLE ${HYGIENE} (id serial PRIMARY KEY, note text NOT NULL)`);
});

async function visibleToAdmin(note: string): Promise<boolean> {
  return (await db.admin<{ n: number }>(`SELECT count(*)::int AS n FROM ${HYGIENE} WHERE note = $1`, [note])).rows[0]!.n > 0;
}

/** The checks every next borrower must pass: no transaction, the uncommitted row invisible. */
async function expectCleanSession(client: pg.Client, uncommitted: string): Promise<void> {
  expect(client.getTransactionStatus()).toBe('I');
  const { rows } = await client.query<{ xid: string | null; n: number }>(
    `SELECT txid_current_if_assigned()::text AS xid, (SELECT count(*)::int FROM ${HYGIENE} WHERE note = $1) AS n`,
    [uncommitted],
  );
  expect(rows[0]).toEqual({ xid: null, n: 0 });
  expect(await visibleToAdmin(uncommitted)).toBe(false);
}

/** No session of the pool stays idle in transaction, and none but the pool's own remain. */
async function expectNoLingeringSession(pool: TestPool, oldPid: number): Promise<void> {
  await waitFor(
    'the dirty session to end on the server',
    async () => {
      const rows = await db.sessionRows(pool.app);
      return !rows.some((r) => r.pid === oldPid) && !rows.some((r) => r.state?.startsWith('idle in transaction'));
    },
    { timeoutMs: 1000 },
  );
}

describe('released in the middle of a transaction', () => {
  it('default policy: the dirty client is destroyed; the next borrower gets a clean session', async () => {
    const pool = db.pool({ max: 1 });
    const lease = await pool.acquire();
    const dirty = lease.resource;
    const dirtyPid = pidOf(dirty);
    await dirty.query('BEGIN');
    await dirty.query(`INSERT INTO ${HYGIENE} (note) VALUES ('uncommitted-destroy')`);
    expect(dirty.getTransactionStatus()).toBe('T');
    await lease.release();

    await using next = await pool.acquire({ timeoutMs: 5000 });
    expect(next.resource).not.toBe(dirty);
    await expectCleanSession(next.resource, 'uncommitted-destroy');
    expect(pool.stats()).toMatchObject({ created: 2, destroyed: 1 });
    expect(pool.stats().destroyedByReason.broken).toBe(1);
    await expectNoLingeringSession(pool, dirtyPid);
  });

  it('default policy: a client in a failed transaction is destroyed too', async () => {
    const pool = db.pool({ max: 1 });
    const lease = await pool.acquire();
    const dirty = lease.resource;
    await dirty.query('BEGIN');
    await dirty.query(`INSERT INTO ${HYGIENE} (note) VALUES ('uncommitted-failed')`);
    expect((await rejectionOf(dirty.query('SELECT 1/0'))).code).toBe('22012');
    await settled(dirty);
    expect(dirty.getTransactionStatus()).toBe('E');
    await lease.release();

    await using next = await pool.acquire({ timeoutMs: 5000 });
    expect(next.resource).not.toBe(dirty);
    await expectCleanSession(next.resource, 'uncommitted-failed');
  });

  for (const policy of [{ dirtyRelease: 'rollback' }, { resetOnRelease: 'rollback' }] as const) {
    it(`${JSON.stringify(policy)}: the same client is rolled back and reused, clean`, async () => {
      const pool = db.pool({ max: 1, ...policy });
      const lease = await pool.acquire();
      const dirty = lease.resource;
      await dirty.query('BEGIN');
      await dirty.query(`INSERT INTO ${HYGIENE} (note) VALUES ('uncommitted-rollback')`);
      await lease.release();

      await using next = await pool.acquire({ timeoutMs: 5000 });
      expect(next.resource).toBe(dirty);
      await expectCleanSession(next.resource, 'uncommitted-rollback');
      await next.release();

      // A failed transaction is rolled back as well.
      const again = await pool.acquire();
      await again.resource.query('BEGIN');
      expect((await rejectionOf(again.resource.query('SELECT 1/0'))).code).toBe('22012');
      await settled(again.resource);
      await again.release();
      await using third = await pool.acquire({ timeoutMs: 5000 });
      expect(third.resource).toBe(dirty);
      await expectCleanSession(third.resource, 'uncommitted-rollback');
      expect(pool.stats()).toMatchObject({ created: 1, destroyed: 0 });
    });
  }
});

describe('released in the middle of a query', () => {
  for (const policy of [{}, { dirtyRelease: 'rollback' }, { pooler: 'session' }] as const) {
    it(`${JSON.stringify(policy)}: the busy client is destroyed; the next borrower gets a clean session`, async () => {
      const pool = db.pool({ max: 1, ...policy });
      const lease = await pool.acquire();
      const dirty = lease.resource;
      await dirty.query('BEGIN');
      await dirty.query(`INSERT INTO ${HYGIENE} (note) VALUES ('uncommitted-midquery')`);
      const running = dirty.query('SELECT pg_sleep(30)');
      const outcome = running.then(
        () => 'resolved',
        (error: Error) => error.message,
      );
      await waitFor('the query to run on the server', async () => (await db.sessionRows(pool.app)).some((r) => r.pid === pidOf(dirty) && r.state === 'active'));
      await lease.release();

      // Behind a pooler the cancel goes out before the close (PgBouncer forgets the cancel key
      // once the client has gone), so the abandoned query ends cancelled; directly it is cut.
      expect(await outcome).toMatch('pooler' in policy ? /canceling statement due to user request/ : /Connection terminated/);
      await using next = await pool.acquire({ timeoutMs: 5000 });
      expect(next.resource).not.toBe(dirty);
      await expectCleanSession(next.resource, 'uncommitted-midquery');
      expect(pool.stats().destroyedByReason.broken).toBe(1);
      expect(pool.stats().created).toBe(2);
      // Whether its backend also stops at once is the next test.
    });
  }

  it('the destroyed session does not keep running its query on the server (no orphan backend beyond max)', async () => {
    const pool = db.pool({ max: 1 });
    const lease = await pool.acquire();
    const dirty = lease.resource;
    const dirtyPid = pidOf(dirty);
    const running = dirty.query('SELECT pg_sleep(30)').catch(() => undefined);
    await waitFor('the query to run on the server', async () => (await db.sessionRows(pool.app)).some((r) => r.pid === dirtyPid && r.state === 'active'));
    await lease.release();
    await running;
    await pool.query('SELECT 1');
    // I2/I6: the server count for the pool stays <= max once the release is done, i.e. the
    // server stopped the abandoned query instead of running it for 30 s more.
    await sleep(1000);
    const rows = await db.sessionRows(pool.app);
    expect(rows.map((r) => ({ pid: r.pid, state: r.state, query: r.query })).filter((r) => r.pid === dirtyPid)).toEqual([]);
    expect(rows.length).toBeLessThanOrEqual(1);
  });
});

describe("resetOnRelease: 'discard'", () => {
  it('cleans SET, SET ROLE, temp tables, advisory locks and LISTEN; keeps prepared statements; keeps working', async () => {
    await db.admin('DO $$ BEGIN CREATE ROLE lifeguard_reset_role; EXCEPTION WHEN duplicate_object THEN NULL; END $$');
    await db.admin('GRANT lifeguard_reset_role TO CURRENT_USER');
    db.cleanup('DROP ROLE IF EXISTS lifeguard_reset_role');
    db.cleanup('REVOKE lifeguard_reset_role FROM CURRENT_USER');
    const pool = db.pool({ max: 1, resetOnRelease: 'discard' });

    const lease = await pool.acquire();
    const client = lease.resource;
    const pid = pidOf(client);
    const defaults = (await client.query<{ search_path: string; user: string; statement_timeout: string }>(
      "SELECT current_setting('search_path') AS search_path, current_user AS user, current_setting('statement_timeout') AS statement_timeout",
    )).rows[0]!;
    await client.query('SET search_path = lifeguard_nowhere, public');
    await client.query("SET statement_timeout = '1234ms'");
    await client.query('CREATE TEMP TABLE lifeguard_tmp (x int)');
    await client.query('SELECT pg_advisory_lock(424242)');
    await client.query('LISTEN lifeguard_channel');
    await client.query({ name: 'lifeguard_prepared', text: 'SELECT $1::int + 1 AS n', values: [1] });
    await client.query('SET ROLE lifeguard_reset_role');
    expect((await client.query('SELECT current_user AS u')).rows[0]!.u).toBe('lifeguard_reset_role');
    await lease.release();

    await using next = await pool.acquire();
    expect(next.resource).toBe(client);
    const c = next.resource;
    const state = (await c.query(
      `SELECT current_setting('search_path') AS search_path, current_user AS user, current_setting('statement_timeout') AS statement_timeout,
              to_regclass('pg_temp.lifeguard_tmp') IS NULL AS temp_gone,
              (SELECT count(*)::int FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()) AS advisory_locks,
              (SELECT count(*)::int FROM pg_listening_channels()) AS channels,
              txid_current_if_assigned() AS xid`,
    )).rows[0];
    expect(state).toEqual({ ...defaults, temp_gone: true, advisory_locks: 0, channels: 0, xid: null });
    // The advisory lock really is free for others.
    expect((await db.admin('SELECT pg_try_advisory_lock(424242) AS got')).rows[0]!.got).toBe(true);
    await db.admin('SELECT pg_advisory_unlock(424242)');
    // Prepared statements survive (pg caches them by name on the client).
    expect((await c.query({ name: 'lifeguard_prepared', text: 'SELECT $1::int + 1 AS n', values: [41] })).rows).toEqual([{ n: 42 }]);
    expect((await c.query('SELECT count(*)::int AS n FROM pg_prepared_statements')).rows[0]!.n).toBe(1);
    // Same server session all along, and it keeps working.
    expect(pidOf(c)).toBe(pid);
    await next.release();
    expect((await pool.query('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
    expect(pool.stats()).toMatchObject({ created: 1, destroyed: 0 });
  });

  it("'discard' also rolls back an open transaction and reuses the client", async () => {
    const pool = db.pool({ max: 1, resetOnRelease: 'discard' });
    const lease = await pool.acquire();
    const client = lease.resource;
    await client.query('BEGIN');
    await client.query(`INSERT INTO ${HYGIENE} (note) VALUES ('uncommitted-discard')`);
    await client.query('CREATE TEMP TABLE lifeguard_tmp_tx (x int)');
    await lease.release();
    await using next = await pool.acquire();
    expect(next.resource).toBe(client);
    await expectCleanSession(next.resource, 'uncommitted-discard');
    expect((await next.resource.query("SELECT to_regclass('pg_temp.lifeguard_tmp_tx') IS NULL AS gone")).rows[0]!.gone).toBe(true);
  });
});
