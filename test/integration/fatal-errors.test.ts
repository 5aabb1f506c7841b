// An error is fatal only if the connection is (issue 9, item 13): the adapter judges by the
// client's own state, not by an error code alone. The caller's own read-only transaction
// (25006) and an ECONNRESET from unrelated work inside the callback leave a healthy client
// in the pool; a session the server keeps read-only (a standby, a fenced primary) and a
// connection that really died are still destroyed (FAULTS.md §4, F15).
import { createServer, type Socket } from 'node:net';
import http from 'node:http';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isConnectionFatal } from '../../src/adapters/postgres/index.js';
import { pidOf, rejectionOf, usePostgres, waitFor } from './harness.js';

const db = usePostgres();
let ROWS = '';

beforeAll(async () => {
  ROWS = db.table('fatal_rows');
  await db.admin(`CREATE TABLE ${ROWS} (id serial PRIMARY KEY, note text NOT NULL)`);
});

/** An HTTP server that resets every connection: a request to it fails with a real ECONNRESET. */
const resetter = createServer((socket: Socket) => socket.resetAndDestroy());
let resetterPort = 0;
beforeAll(async () => {
  await new Promise<void>((resolve) => resetter.listen(0, '127.0.0.1', resolve));
  resetterPort = (resetter.address() as { port: number }).port;
});
afterAll(() => new Promise<void>((resolve) => resetter.close(() => resolve())));

function httpGet(port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path: '/', agent: false }, () => resolve()).on('error', reject);
  });
}

/** The same client, still in the pool and still the same server session. */
async function expectKept(pool: ReturnType<typeof db.pool>, client: pg.Client, pid: number): Promise<void> {
  await pool.withConnection(async (next) => {
    expect(next).toBe(client);
    expect(pidOf(next)).toBe(pid);
    expect((await next.query('SELECT 1 AS one')).rows[0].one).toBe(1);
  });
  expect(pool.stats()).toMatchObject({ created: 1, destroyed: 0 });
}

describe("the caller's own read-only transaction (25006) keeps the connection", () => {
  it('withTransaction({ readOnly: true }) writing: 25006 reaches the caller, the client is reused', async () => {
    const pool = db.pool({ max: 1 });
    let inside: pg.Client | undefined;
    const error = await rejectionOf(
      pool.withTransaction(async (client) => {
        inside = client;
        await client.query(`INSERT INTO ${ROWS} (note) VALUES ('read-only-tx')`);
      }, { readOnly: true }),
    );
    expect(error.code).toBe('25006');
    await expectKept(pool, inside!, pidOf(inside!));
  });

  for (const start of ['BEGIN READ ONLY', 'BEGIN; SET TRANSACTION READ ONLY'] as const) {
    it(`withConnection with ${start}: the thrown 25006 does not destroy the client`, async () => {
      const pool = db.pool({ max: 1, resetOnRelease: 'rollback' });
      let inside: pg.Client | undefined;
      const error = await rejectionOf(
        pool.withConnection(async (client) => {
          inside = client;
          await client.query(start);
          await client.query(`INSERT INTO ${ROWS} (note) VALUES ('read-only-begin')`);
        }),
      );
      expect(error.code).toBe('25006');
      await expectKept(pool, inside!, pidOf(inside!));
    });
  }

  it('lease.destroy(err) with such a 25006 counts as the user\'s choice, not a broken connection', async () => {
    const pool = db.pool({ max: 1 });
    const lease = await pool.acquire();
    await lease.resource.query('BEGIN READ ONLY');
    const error = await rejectionOf(lease.resource.query(`INSERT INTO ${ROWS} (note) VALUES ('x')`));
    await lease.destroy(error);
    expect(pool.stats().destroyedByReason).toMatchObject({ broken: 0, user: 1 });
  });
});

describe('a session the server keeps read-only is still destroyed on 25006 (failover protection)', () => {
  it('default_transaction_read_only on for the session (as on a standby or a fenced primary): the client is destroyed as broken', async () => {
    const pool = db.pool({ max: 1, options: '-c default_transaction_read_only=on' });
    let inside: pg.Client | undefined;
    const error = await rejectionOf(
      pool.withConnection(async (client) => {
        inside = client;
        await client.query(`INSERT INTO ${ROWS} (note) VALUES ('fenced')`);
      }),
    );
    expect(error.code).toBe('25006');
    expect(pool.stats()).toMatchObject({ destroyed: 1 });
    expect(pool.stats().destroyedByReason.broken).toBe(1);
    await waitFor('the read-only session to end', async () => !(await db.sessionRows(pool.app)).some((r) => r.pid === pidOf(inside!)));
    // The classifier on its own still calls 25006 fatal (FAULTS.md §4, F15).
    expect(isConnectionFatal(error)).toBe(true);
  });
});

describe('an error from unrelated work does not condemn a healthy client', () => {
  it('a real ECONNRESET from an HTTP request inside withConnection: the pg client is reused', async () => {
    const pool = db.pool({ max: 1 });
    let inside: pg.Client | undefined;
    const error = await rejectionOf(
      pool.withConnection(async (client) => {
        inside = client;
        await client.query('SELECT 1');
        await httpGet(resetterPort);
      }),
    );
    expect(error.code).toBe('ECONNRESET');
    expect(isConnectionFatal(error)).toBe(true); // by its code alone it looks fatal
    await expectKept(pool, inside!, pidOf(inside!));
  });

  it('the same inside withTransaction: rolled back, the client reused', async () => {
    const pool = db.pool({ max: 1 });
    let inside: pg.Client | undefined;
    const error = await rejectionOf(
      pool.withTransaction(async (client) => {
        inside = client;
        await client.query(`INSERT INTO ${ROWS} (note) VALUES ('before-http')`);
        await httpGet(resetterPort);
      }),
    );
    expect(error.code).toBe('ECONNRESET');
    expect((await db.admin(`SELECT count(*)::int AS n FROM ${ROWS} WHERE note = 'before-http'`)).rows[0]!.n).toBe(0);
    await expectKept(pool, inside!, pidOf(inside!));
  });

  it('a connection that really died is still destroyed: its backend terminated mid-callback', async () => {
    const pool = db.pool({ max: 1 });
    const error = await rejectionOf(
      pool.withConnection(async (client) => {
        await db.admin('SELECT pg_terminate_backend($1)', [pidOf(client)]);
        await client.query('SELECT pg_sleep(0.1)');
      }),
    );
    expect(['57P01', undefined]).toContain(error.code);
    expect(pool.stats().destroyedByReason.broken).toBe(1);
  });
});
