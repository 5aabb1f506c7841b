// The MySQL test harness itself, on whichever provider LIFEGUARD_TEST_MYSQL chose
// (test/mysql/providers.ts): the server answers through mysql2, per-user session counts are
// exact, KILL works, and the provider's restart / pause / kill do what the adapter's tests
// will rely on (data kept across a restart, a frozen server hangs instead of refusing, a
// crash recovers committed rows).
import { describe, expect, it } from 'vitest';
import { PROVIDER_CAPABILITIES, rejectionOf, sleep, useMariaDb, waitFor } from './harness.js';

const db = useMariaDb();

describe('the server', () => {
  it('is a MariaDB, reachable through mysql2 with the connection options', async () => {
    expect(db.version).toMatch(/^\d+\.\d+\.\d+.*MariaDB/);
    const conn = await db.adminConnection();
    const [rows] = await conn.query<import('mysql2').RowDataPacket[]>('SELECT DATABASE() AS db, 1 + 1 AS two, @@max_connections AS max');
    expect(rows[0]).toMatchObject({ db: db.database, two: 2 });
    expect(Number(rows[0]!.max)).toBeGreaterThanOrEqual(100);
    expect(db.url).toBe(`mysql://${db.adminAccount.user}:${encodeURIComponent(db.adminAccount.password)}@${db.host}:${db.port}/${db.database}`);
  });

  it('requires the password (real authentication)', async () => {
    const mysql = (await import('mysql2/promise')).default;
    const error = await rejectionOf(mysql.createConnection({ ...db.connection(), password: 'wrong', connectTimeout: 5000 }));
    expect(error.code).toBe('ER_ACCESS_DENIED_ERROR');
  });

  it('db.user(): an account with ALL on the test database, counted exactly by db.sessions()', async () => {
    const account = await db.user('counted');
    expect(await db.sessions(account.user)).toBe(0);
    const a = await db.adminConnection(account);
    const b = await db.adminConnection(account);
    expect(await db.sessions(account.user)).toBe(2);
    const table = db.table('owned');
    await a.query(`CREATE TABLE ${table} (id INT PRIMARY KEY)`);
    await b.query(`INSERT INTO ${table} VALUES (1), (2)`);
    const [rows] = await a.query<import('mysql2').RowDataPacket[]>(`SELECT COUNT(*) AS n FROM ${table}`);
    expect(Number(rows[0]!.n)).toBe(2);
    // Nothing outside its database.
    const denied = await rejectionOf(a.query('CREATE DATABASE lg_not_allowed'));
    expect(denied.code).toBe('ER_DBACCESS_DENIED_ERROR');
    await a.end();
    await waitFor('the closed session to leave PROCESSLIST', async () => (await db.sessions(account.user)) === 1);
  });

  it('killConnection() ends a session; killQuery() only its statement', async () => {
    const account = await db.user('killed');
    const conn = await db.adminConnection(account);
    const [ids] = await conn.query<import('mysql2').RowDataPacket[]>('SELECT CONNECTION_ID() AS id');
    const id = Number(ids[0]!.id);
    expect(await db.sessionIds(account.user)).toEqual([id]);

    // Its rejection is awaited below; observe it now so it is never unhandled meanwhile.
    const slow = rejectionOf(conn.query('SELECT SLEEP(30)'));
    await waitFor('the SLEEP to run', async () => {
      const rows = await db.admin<{ command: string }[]>('SELECT COMMAND AS command FROM information_schema.PROCESSLIST WHERE ID = ?', [id]);
      return rows[0]?.command === 'Query';
    });
    await db.killQuery(id);
    // MariaDB fails the interrupted statement (MySQL's SLEEP() would return 1); the session survives.
    expect((await slow).code).toBe('ER_QUERY_INTERRUPTED');
    await conn.query('SELECT 1');
    expect(await db.sessionIds(account.user)).toEqual([id]);

    await db.killConnection(id);
    const error = await rejectionOf(conn.query('SELECT 1'));
    expect(error.message).toMatch(/closed|killed|connection|lost|ended/i);
    await waitFor('the killed session to leave PROCESSLIST', async () => (await db.sessions(account.user)) === 0);
  });

  it('setGlobal() changes a server variable', async () => {
    const read = async (): Promise<number> => Number((await db.admin<[{ v: number }]>('SELECT @@GLOBAL.max_connect_errors AS v'))[0].v);
    const before = await read();
    await db.setGlobal('max_connect_errors', before + 1);
    expect(await read()).toBe(before + 1);
    await db.setGlobal('max_connect_errors', before);
  });
});

describe.runIf(PROVIDER_CAPABILITIES.restart)('restart', () => {
  it('keeps the data, the port and the accounts; old connections are gone', async () => {
    const account = await db.user('restart');
    const table = db.table('kept');
    await db.admin(`CREATE TABLE ${db.database}.${table} (v VARCHAR(20)) ENGINE=InnoDB`);
    await db.admin(`INSERT INTO ${db.database}.${table} VALUES ('before')`);
    const old = await db.adminConnection(account);
    const port = db.port;
    await db.restart();
    expect(db.port).toBe(port);
    expect(await db.admin(`SELECT v FROM ${db.database}.${table}`)).toEqual([{ v: 'before' }]);
    await expect(old.query('SELECT 1')).rejects.toThrow();
    const fresh = await db.adminConnection(account);
    await fresh.query('SELECT 1');
    expect(await db.sessions(account.user)).toBe(1);
  });
});

describe.runIf(PROVIDER_CAPABILITIES.pause)('pause', () => {
  it('a frozen server accepts nothing and answers nothing until unpaused', async () => {
    const conn = await db.adminConnection();
    await db.pause();
    let settled = false;
    const pending = conn.query('SELECT 42 AS n').then((r) => {
      settled = true;
      return r;
    });
    try {
      await sleep(500);
      expect(settled).toBe(false);
    } finally {
      await db.unpause();
    }
    const [rows] = (await pending) as unknown as [[{ n: number }]];
    expect(rows[0]!.n).toBe(42);
  });
});

describe.runIf(PROVIDER_CAPABILITIES.kill && PROVIDER_CAPABILITIES.stopStart)('kill and stop/start', () => {
  it('a crash (SIGKILL) keeps committed rows; connections are refused until start()', async () => {
    const table = db.table('crash');
    await db.admin(`CREATE TABLE ${db.database}.${table} (id INT PRIMARY KEY) ENGINE=InnoDB`);
    await db.admin(`INSERT INTO ${db.database}.${table} VALUES (1), (2), (3)`);
    await db.kill();
    const mysql = (await import('mysql2/promise')).default;
    const refused = await rejectionOf(mysql.createConnection({ ...db.connection(), connectTimeout: 3000 }));
    expect(refused.code).toBe('ECONNREFUSED');
    await db.start();
    expect(await db.admin(`SELECT COUNT(*) AS n FROM ${db.database}.${table}`)).toEqual([{ n: 3 }]);
  });

  it('stop() is a clean shutdown; start() brings it back on the same port', async () => {
    const port = db.port;
    await db.stop();
    const mysql = (await import('mysql2/promise')).default;
    const refused = await rejectionOf(mysql.createConnection({ ...db.connection(), connectTimeout: 3000 }));
    expect(refused.code).toBe('ECONNREFUSED');
    await db.start();
    expect(db.port).toBe(port);
    expect(await db.admin('SELECT 1 AS one')).toEqual([{ one: 1 }]);
  });
});
