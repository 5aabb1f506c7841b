// A real MariaDB for each MySQL test file (test/mysql), and the tools the tests share. The
// MySQL counterpart of test/integration/harness.ts.
//
// Which server (LIFEGUARD_TEST_MYSQL), what each provider can do to it (CAPABILITIES,
// PROVIDER_CAPABILITIES) and how it starts one: test/mysql/providers.ts.
//
// Usage, once per test file (the server starts in beforeAll and stops in afterAll):
//
//   const db = useMariaDb();
//   it('...', async () => {
//     const account = await db.user('pool');      // its own MySQL user, ALL on db.database
//     const pool = createMysqlPool({ ...db.connection(account), max: 5 });
//     await db.sessions(account.user);            // its sessions in PROCESSLIST
//   });
//
// MySQL has no application_name: a pool under test gets its own user (db.user(label)), so
// per-pool session counts are exact. db.database is a database created for the file; on a
// shared server (MYSQL_URL) it and the users are dropped after the file.
//
// With LIFEGUARD_TEST_MYSQL=skip every test of the file is skipped (and a line says so). When
// no provider is usable, beforeAll fails, so every test of the file fails with the reason.
//
// Every file also checks that the process saw no unhandled rejection and no uncaught
// exception while it ran (FAULTS.md I4): asserted in afterAll.
import { randomBytes } from 'node:crypto';
import { basename } from 'node:path';
import mysql from 'mysql2/promise';
import { afterAll, beforeAll, beforeEach, expect } from 'vitest';
import { quoteIdent, reconnectingAdmin } from '../support/mariadb.js';
import { firstLine, rejectionOf, sleep, waitFor, watchProcessErrors, withTimeout } from '../support/wait.js';
import { type Backend, CAPABILITIES, type Capabilities, PROVIDER, PROVIDER_CAPABILITIES, type ProviderName, startProvider } from './providers.js';

export { PROVIDER, PROVIDER_CAPABILITIES, rejectionOf, sleep, waitFor };

/** Options for a mysql2 connection (or a pool): host, port, user, password, database. */
export interface ConnectionOptions {
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly password: string;
  readonly database: string;
}

export interface Account {
  readonly user: string;
  readonly password: string;
}

export interface TestMariaDb {
  readonly provider: ProviderName;
  readonly capabilities: Capabilities;
  /** `SELECT VERSION()`. */
  readonly version: string;
  readonly host: string;
  readonly port: number;
  /** The admin account (every privilege; the connection options default to it). */
  readonly adminAccount: Account;
  /** A database created for this file. */
  readonly database: string;
  /** `mysql://user:password@host:port/database` (the admin account, or `account`). */
  urlFor(account?: Account): string;
  readonly url: string;
  /** mysql2 connection options for the admin account (or `account`) on db.database. */
  connection(account?: Account): ConnectionOptions;
  /** A query on the shared admin connection, which reconnects after a restart or a kill. Returns the rows. */
  admin<T = unknown>(sql: string, params?: unknown[]): Promise<T>;
  /** A new direct mysql2/promise connection (admin account unless `account`), closed after the file. */
  adminConnection(account?: Account): Promise<mysql.Connection>;
  /** A new MySQL user with ALL on db.database (unique name, random password), dropped after the file on a shared server. */
  user(label: string): Promise<Account>;
  /** A table name unique to this run, dropped after the file on a shared server. */
  table(prefix: string): string;
  /** Sessions of `user` in information_schema.PROCESSLIST (the admin connection itself not counted). */
  sessions(user: string): Promise<number>;
  /** The PROCESSLIST ids of `user`'s sessions, ascending. */
  sessionIds(user: string): Promise<number[]>;
  killConnection(id: number): Promise<void>;
  killQuery(id: number): Promise<void>;
  setGlobal(name: string, value: string | number | boolean): Promise<void>;
  restart(): Promise<void>;
  stop(): Promise<void>;
  start(): Promise<void>;
  pause(): Promise<void>;
  unpause(): Promise<void>;
  kill(): Promise<void>;
}

let counter = 0;
const RUN_TAG = `${process.pid.toString(36)}${randomBytes(2).toString('hex')}`;

/** Start a MariaDB for the calling test file (beforeAll) and tear it down after it (afterAll). */
export function useMariaDb(): TestMariaDb {
  const fileTag = testFileTag();
  let backend: Backend | undefined;
  let version = '';
  let database = '';
  const connections = new Set<mysql.Connection>();
  const users: string[] = [];
  const tables: string[] = [];
  let processErrors: ReturnType<typeof watchProcessErrors> | undefined;

  if (PROVIDER.name === 'skip') {
    console.log(`[lifeguard] MySQL tests in ${fileTag} skipped: LIFEGUARD_TEST_MYSQL=skip`);
    beforeEach((context) => context.skip('LIFEGUARD_TEST_MYSQL=skip'));
  }

  const server = (): Backend => {
    if (backend === undefined) throw new Error('useMariaDb(): the server is not started (use it inside tests or hooks; see the beforeAll error)');
    return backend;
  };
  const connection = (account?: Account): ConnectionOptions => {
    const b = server();
    return { host: b.host, port: b.port, user: account?.user ?? b.user, password: account?.password ?? b.password, database };
  };
  const open = async (options: ConnectionOptions): Promise<mysql.Connection> => {
    const conn = await withTimeout(mysql.createConnection({ ...options, connectTimeout: 10_000 }), 15_000, `connecting to ${options.host}:${options.port}`);
    // A restart or KILL ends admin connections too; never let that crash the process.
    conn.on('error', () => {});
    return conn;
  };
  // No default database: the file's database is created through this connection.
  const adminSession = reconnectingAdmin(() => {
    const { host, port, user, password } = server();
    return withTimeout(mysql.createConnection({ host, port, user, password, connectTimeout: 10_000 }), 15_000, `connecting to ${host}:${port}`);
  });
  const dropAdmin = adminSession.drop;

  const db: TestMariaDb = {
    get provider() {
      return server().provider;
    },
    get capabilities() {
      return CAPABILITIES[server().provider];
    },
    get version() {
      server();
      return version;
    },
    get host() {
      return server().host;
    },
    get port() {
      return server().port;
    },
    get adminAccount() {
      const { user, password } = server();
      return { user, password };
    },
    get database() {
      server();
      return database;
    },
    urlFor(account?: Account) {
      const c = connection(account);
      return `mysql://${encodeURIComponent(c.user)}:${encodeURIComponent(c.password)}@${c.host}:${c.port}/${encodeURIComponent(c.database)}`;
    },
    get url() {
      return db.urlFor();
    },
    connection,
    admin: adminSession.query,
    async adminConnection(account?: Account) {
      const conn = await open(connection(account));
      connections.add(conn);
      return conn;
    },
    async user(label: string) {
      // At most 32 characters (MySQL's limit; MariaDB allows 80).
      const name = `lg${RUN_TAG}_${++counter}_${label.replace(/[^a-z0-9]/gi, '')}`.slice(0, 32);
      const password = randomBytes(12).toString('hex');
      await db.admin('CREATE USER ?@? IDENTIFIED BY ?', [name, '%', password]);
      users.push(name);
      await db.admin(`GRANT ALL ON ${quoteIdent(database)}.* TO ?@?`, [name, '%']);
      return { user: name, password };
    },
    table(prefix: string) {
      const name = `${prefix}_${RUN_TAG}_${++counter}`.toLowerCase();
      tables.push(name);
      return name;
    },
    async sessions(user: string) {
      const rows = await db.admin<{ n: number }[]>('SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE USER = ? AND ID <> CONNECTION_ID()', [user]);
      return Number(rows[0]!.n);
    },
    async sessionIds(user: string) {
      const rows = await db.admin<{ id: number }[]>('SELECT ID AS id FROM information_schema.PROCESSLIST WHERE USER = ? AND ID <> CONNECTION_ID() ORDER BY ID', [user]);
      return rows.map((r) => Number(r.id));
    },
    async killConnection(id: number) {
      await db.admin(`KILL CONNECTION ${Number(id)}`);
    },
    async killQuery(id: number) {
      await db.admin(`KILL QUERY ${Number(id)}`);
    },
    async setGlobal(name: string, value: string | number | boolean) {
      if (!/^[a-z_][a-z0-9_]*$/i.test(name)) throw new Error(`setGlobal: not a variable name: ${name}`);
      await db.admin(`SET GLOBAL ${name} = ?`, [value]);
    },
    restart: async () => {
      dropAdmin();
      await server().restart();
    },
    stop: async () => {
      dropAdmin();
      await server().stop();
    },
    start: () => server().start(),
    pause: () => server().pause(),
    unpause: () => server().unpause(),
    kill: async () => {
      dropAdmin();
      await server().kill();
    },
  };

  beforeAll(async () => {
    if (PROVIDER.name === 'skip') return;
    processErrors = watchProcessErrors();
    const started = performance.now();
    backend = await startProvider(PROVIDER);
    try {
      // The file's own database (on a shared server, other runs' databases stay apart).
      database = `lg_${fileTag}_${RUN_TAG}`.toLowerCase().slice(0, 64);
      const [{ v }] = await db.admin<[{ v: string }]>('SELECT VERSION() AS v');
      version = v;
      await db.admin(`CREATE DATABASE IF NOT EXISTS ${quoteIdent(database)}`);
    } catch (error) {
      await backend.teardown().catch(() => {});
      backend = undefined;
      throw new Error(`[lifeguard] MariaDB via ${PROVIDER.name} started but the admin connection failed: ${firstLine(error)}`, { cause: error });
    }
    const how = backend.provider === 'testcontainers' ? `testcontainers (${backend.label})` : backend.provider === 'private' ? `private (${backend.label})` : 'MYSQL_URL';
    console.log(`[lifeguard] MariaDB ${version} via ${how} at ${backend.host}:${backend.port} for ${fileTag} (${PROVIDER.reason}; up in ${Math.round(performance.now() - started)} ms)`);
  }, 180_000);

  afterAll(async () => {
    if (PROVIDER.name === 'skip') return;
    let errors: string[] = [];
    try {
      for (const conn of connections) conn.destroy();
      // Only a shared server keeps anything after the file; a throwaway one is removed whole.
      if (backend?.provider === 'url') {
        const cleanups = [...tables.map((t) => `DROP TABLE IF EXISTS ${quoteIdent(database)}.${quoteIdent(t)}`), ...users.map((u) => `DROP USER IF EXISTS '${u}'@'%'`), `DROP DATABASE IF EXISTS ${quoteIdent(database)}`];
        for (const sql of cleanups) await db.admin(sql).catch((error: unknown) => console.warn(`[lifeguard] clean-up failed: ${sql}: ${firstLine(error)}`));
      }
      dropAdmin();
    } finally {
      try {
        await backend?.teardown();
      } finally {
        // stop() lets rejections from the last turns be reported before looking.
        errors = (await processErrors?.stop()) ?? [];
      }
    }
    expect(errors, 'no unhandled rejections or uncaught exceptions in this file (FAULTS.md I4)').toEqual([]);
  }, 90_000);

  return db;
}

// ------------------------------------------------------------------ small helpers

/** A short tag for the calling test file, from vitest's state (e.g. "harness" for harness.test.ts). */
function testFileTag(): string {
  const file = (expect.getState().testPath ?? '') as string;
  const name = basename(file).replace(/\.test\.ts$/, '');
  return name.replace(/[^a-z0-9]/gi, '').slice(0, 12) || 'file';
}
