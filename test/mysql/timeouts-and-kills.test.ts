// Bounds and server-side kills on MariaDB: queryTimeoutMs stops the statement on the server
// (its row lock is released), KILL CONNECTION of a leased connection reaches its caller only,
// KILL QUERY keeps the connection, and logins that cannot work fail fast without a retry.
import type { RowDataPacket } from 'mysql2';
import { afterEach, describe, expect, it } from 'vitest';
import { createMysqlPool, QueryTimeoutError, type MysqlPool, type MysqlPoolConfig } from '../../src/adapters/mysql/index.js';
import { AcquireTimeoutError, CreateResourceError } from '../../src/index.js';
import { rejectionOf, useMariaDb, waitFor, type Account } from './harness.js';

const db = useMariaDb();
const pools: MysqlPool[] = [];
afterEach(async () => {
  await Promise.all(pools.splice(0).map((pool) => pool.close()));
});

async function poolFor(label: string, options: Partial<MysqlPoolConfig> = {}): Promise<{ pool: MysqlPool; account: Account }> {
  const account = await db.user(label);
  const pool = createMysqlPool({ ...db.connection(account), max: 2, ...options });
  pools.push(pool);
  return { pool, account };
}

const statementsOf = async (user: string, like: string): Promise<number> =>
  (await db.admin<RowDataPacket[]>('SELECT count(*) AS n FROM information_schema.PROCESSLIST WHERE USER = ? AND INFO LIKE ?', [user, like]))[0]?.n as number;

describe('queryTimeoutMs', () => {
  it('stops a statement waiting on a row lock on the server, so the lock queue clears; the connection is destroyed', async () => {
    const t = `${db.database}.${db.table('locked')}`;
    await db.admin(`CREATE TABLE ${t} (id int PRIMARY KEY, v int) ENGINE=InnoDB`);
    await db.admin(`INSERT INTO ${t} VALUES (1, 0)`);
    const { pool, account } = await poolFor('qtimeout', { queryTimeoutMs: 300 });
    const holder = await db.adminConnection();
    await holder.query("SET SESSION innodb_lock_wait_timeout = 30");
    await holder.query('START TRANSACTION');
    await holder.query(`SELECT * FROM ${t} WHERE id = 1 FOR UPDATE`);
    const started = performance.now();
    const error = await rejectionOf(pool.query(`UPDATE ${t} SET v = 1 WHERE id = 1`));
    const took = performance.now() - started;
    expect(error).toBeInstanceOf(QueryTimeoutError);
    expect(error).toMatchObject({ code: 'POOL_QUERY_TIMEOUT' });
    expect(took).toBeLessThan(2000);
    // KILL QUERY ended the server-side statement: nothing of the pool's user waits on the lock.
    await waitFor('the waiting UPDATE to be gone from the server', async () => (await statementsOf(account.user, 'UPDATE%')) === 0, { timeoutMs: 3000 });
    await holder.query('ROLLBACK');
    expect(pool.stats().destroyedByReason.broken).toBe(1);
    // The pool goes on with a new connection.
    const [rows] = await pool.query<RowDataPacket[]>(`SELECT v FROM ${t}`);
    expect(rows).toEqual([{ v: 0 }]);
  });

  it('leaves quick statements alone, over many times the bound: queries, and prepared statements answered from the cache', async () => {
    const { pool } = await poolFor('quick', { queryTimeoutMs: 200 });
    // A Prepare found in mysql2's statement cache ends inside addCommand: its timer must still be cleared.
    for (const until = performance.now() + 700; performance.now() < until; ) {
      await pool.execute('SELECT ? AS n', [1]);
      await pool.query('SELECT SLEEP(0.001)');
      await pool.withConnection((connection) => connection.prepare('SELECT ? AS m').then((statement) => statement.close()));
    }
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(pool.stats().destroyed).toBe(0);
  });
});

describe('kills from outside the pool', () => {
  it('KILL CONNECTION of a leased connection fails its query with a connection error; the pool heals', async () => {
    const { pool, account } = await poolFor('killed');
    // Observed from the start: the failure can arrive before the admin's KILL returns.
    const failed = rejectionOf(pool.withConnection((connection) => connection.query('SELECT SLEEP(10)')));
    await waitFor('the statement to run', async () => (await statementsOf(account.user, 'SELECT SLEEP%')) === 1);
    const [id] = await db.sessionIds(account.user);
    await db.killConnection(id!);
    const error = await failed;
    expect(error).toMatchObject({ fatal: true });
    const [rows] = await pool.query<RowDataPacket[]>('SELECT 1 AS ok');
    expect(rows).toEqual([{ ok: 1 }]);
    expect(pool.stats().destroyed).toBe(1);
  });

  it('KILL QUERY ends only the statement (1317 ER_QUERY_INTERRUPTED): the connection is kept', async () => {
    const { pool, account } = await poolFor('killquery', { max: 1 });
    // Observed from the start: the interruption can arrive before the admin's KILL returns.
    // MariaDB answers SLEEP's interruption with the row 1 (it was interrupted), or with 1317.
    const running = pool.query('SELECT SLEEP(10)').then(
      ([rows]) => (rows as RowDataPacket[])[0],
      (error: { errno?: number }) => error.errno,
    );
    await waitFor('the statement to run', async () => (await statementsOf(account.user, 'SELECT SLEEP%')) === 1);
    const [id] = await db.sessionIds(account.user);
    await db.killQuery(id!);
    const outcome = await running;
    expect([1317, { 'SLEEP(10)': 1 }]).toContainEqual(outcome);
    const [rows] = await pool.query<RowDataPacket[]>('SELECT CONNECTION_ID() AS id');
    expect(rows).toEqual([{ id }]);
    expect(pool.stats().destroyed).toBe(0);
  });
});

describe('logins that cannot work', () => {
  it('a wrong password fails the acquire at once with 1045, not retried until the deadline, and never echoed', async () => {
    const account = await db.user('badpw');
    const pool = createMysqlPool({ ...db.connection(account), password: 'not-the-Passw0rd', acquireTimeoutMs: 10_000 });
    pools.push(pool);
    const started = performance.now();
    const error = await rejectionOf(pool.query('SELECT 1'));
    expect(performance.now() - started).toBeLessThan(3000);
    // The core's CreateResourceError (POOL_CREATE_FAILED), mysql2's server error as its cause.
    expect(error).toBeInstanceOf(CreateResourceError);
    expect(error.cause).toMatchObject({ errno: 1045, code: 'ER_ACCESS_DENIED_ERROR' });
    expect(`${error.message} ${String(error.stack)}`).not.toContain('not-the-Passw0rd');
    expect(pool.stats().createFailed).toBe(1);
  });

  it('an unknown database fails at once: 1049 (1044 for a user without rights on it)', async () => {
    const account = await db.user('nodb');
    const started = performance.now();
    for (const login of [db.adminAccount, account]) {
      const pool = createMysqlPool({ ...db.connection(login), database: 'no_such_db_here', acquireTimeoutMs: 10_000 });
      pools.push(pool);
      const error = await rejectionOf(pool.query('SELECT 1'));
      expect(error).toBeInstanceOf(CreateResourceError);
      expect(error.cause).toMatchObject({ errno: login === account ? 1044 : 1049 });
    }
    expect(performance.now() - started).toBeLessThan(3000);
  });

  it('a full server (max_user_connections) is retried: the acquire waits for a slot instead of failing', async () => {
    const account = await db.user('limited');
    await db.admin(`ALTER USER ?@'%' WITH MAX_USER_CONNECTIONS 1`, [account.user]);
    const blocker = await db.adminConnection(account);
    const pool = createMysqlPool({ ...db.connection(account), max: 1, acquireTimeoutMs: 5000, retry: { minTimeoutMs: 50, maxTimeoutMs: 200 } });
    pools.push(pool);
    const query = pool.query<RowDataPacket[]>('SELECT 1 AS ok');
    setTimeout(() => void blocker.end(), 500);
    const [rows] = await query;
    expect(rows).toEqual([{ ok: 1 }]);
    expect(pool.stats().createFailed).toBeGreaterThanOrEqual(1);
  });

  it('nothing listening: AcquireTimeoutError at the deadline, its cause ECONNREFUSED', async () => {
    const pool = createMysqlPool({ host: '127.0.0.1', port: 1, user: 'x', acquireTimeoutMs: 400 });
    pools.push(pool);
    const error = await rejectionOf(pool.query('SELECT 1'));
    expect(error).toBeInstanceOf(AcquireTimeoutError);
    expect((error.cause as { code?: string }).code).toBe('ECONNREFUSED');
  });
});
