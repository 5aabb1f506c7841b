// Over a Unix socket, too, a query the pool lets go of is cancelled on the server (issue 9,
// item 8): a destroyed busy client, a queryTimeoutMs expiry, close() with a busy lease. The
// CancelRequest goes to `${host}/.s.PGSQL.${port}`, like the connection itself. Without
// it, the backend runs pg_sleep(30) to its end (holding its locks), long after the pool
// destroyed the connection: a sleeping backend does not notice its client went away.
//
// The harness server listens on TCP only (unix_socket_directories is empty), so this file
// starts a second embedded server that listens on a Unix socket only (unix-socket-server.ts).
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPostgresPool, postgresAdapter, resolveClientConfig, type PostgresPool, type PostgresPoolConfig } from '../../src/adapters/postgres/index.js';
import { rejectionOf, sleep, usePostgres, waitFor } from './harness.js';
import { freePort, PROVIDER } from './providers.js';
import { startUnixSocketServer, type UnixSocketServer } from './unix-socket-server.js';

usePostgres();

let server: UnixSocketServer | undefined;
let password = '';
let root = '';
let socketDir = '';
let port = 0;
let admin: pg.Client | undefined;
const pools: PostgresPool[] = [];

beforeAll(async () => {
  // Any port: it only names the socket file, so it must not collide with another run's.
  server = await startUnixSocketServer(await freePort());
  ({ password, root, socketDir, port } = server);
  admin = new pg.Client({ host: socketDir, port, user: 'postgres', password, database: 'postgres', application_name: 'lifeguard-admin' });
  admin.on('error', () => {});
  await admin.connect();
}, 120_000);

afterAll(async () => {
  await Promise.allSettled(pools.map((pool) => pool.close({ timeoutMs: 1000 })));
  await admin?.end().catch(() => {});
  await server?.stop().catch(() => {});
}, 60_000);

let counter = 0;
function unixPool(options: PostgresPoolConfig = {}): PostgresPool & { app: string } {
  const app = `lg-unix-${process.pid}-${++counter}`;
  const pool = createPostgresPool({ host: socketDir, port, user: 'postgres', password, database: 'postgres', max: 1, application_name: app, onError: () => {}, ...options });
  pools.push(pool);
  return Object.assign(pool, { app });
}

async function sleepers(app: string): Promise<{ pid: number; state: string; query: string }[]> {
  const { rows } = await admin!.query<{ pid: number; state: string; query: string }>(
    "SELECT pid, state, query FROM pg_stat_activity WHERE application_name = $1 AND backend_type = 'client backend' AND query LIKE '%pg_sleep(30)%'",
    [app],
  );
  return rows;
}

/** The pool's pg_sleep(30) is running on the server (seen from the admin connection). */
async function sleeping(app: string): Promise<void> {
  await waitFor('pg_sleep(30) to run on the server', async () => (await sleepers(app)).some((r) => r.state === 'active'));
}

/** Gone from the server within a generous 3 s (a cancel lands in milliseconds; without one it runs 30 s). */
async function gone(app: string): Promise<void> {
  await waitFor('the pool\'s pg_sleep(30) to stop running on the server', async () => (await sleepers(app)).length === 0, { timeoutMs: 3000 });
}

describe.runIf(PROVIDER.name !== 'url')('CancelRequest over a Unix socket', () => {
  it('the pool really connects over the Unix socket', async () => {
    const pool = unixPool();
    const { rows } = await pool.query<{ addr: string | null }>('SELECT inet_client_addr()::text AS addr');
    expect(rows[0]!.addr).toBeNull(); // NULL: a Unix-socket session
  });

  it('queryTimeoutMs expiry: the query stops on the server at once', async () => {
    const pool = unixPool({ queryTimeoutMs: 300 });
    const error = await rejectionOf(pool.query('SELECT pg_sleep(30)'));
    expect(error.message).toMatch(/Query read timeout/);
    await gone(pool.app);
  });

  it('a busy client destroyed by its lease: the query stops on the server', async () => {
    const pool = unixPool();
    const lease = await pool.acquire();
    const running = lease.resource.query('SELECT pg_sleep(30)').catch((error: unknown) => error);
    await sleeping(pool.app);
    await lease.destroy();
    await running;
    await gone(pool.app);
  });

  it('close() with a busy lease: once close stops waiting, the query stops on the server', async () => {
    const pool = unixPool();
    const lease = await pool.acquire();
    const running = lease.resource.query('SELECT pg_sleep(30)').catch((error: unknown) => error);
    await sleeping(pool.app);
    await pool.close({ timeoutMs: 200 });
    await running;
    await gone(pool.app);
  });

  it('probe: resolves against the Unix socket, leaving no session; rejects for a socket that is not there', async () => {
    const adapter = postgresAdapter(resolveClientConfig({ host: socketDir, port }, 1000), { resetOnRelease: 'none', dirtyRelease: 'destroy' });
    const before = (await admin!.query<{ n: number }>("SELECT count(*)::int AS n FROM pg_stat_activity WHERE backend_type = 'client backend'")).rows[0]!.n;
    for (let i = 0; i < 5; i++) await adapter.probe!(new AbortController().signal);
    await sleep(50);
    const after = (await admin!.query<{ n: number }>("SELECT count(*)::int AS n FROM pg_stat_activity WHERE backend_type = 'client backend'")).rows[0]!.n;
    expect(after).toBe(before);
    const missing = postgresAdapter(resolveClientConfig({ host: join(root, 'nowhere'), port }, 1000), { resetOnRelease: 'none', dirtyRelease: 'destroy' });
    expect((await rejectionOf(missing.probe!(new AbortController().signal))).code).toBe('ENOENT');
  });
});
