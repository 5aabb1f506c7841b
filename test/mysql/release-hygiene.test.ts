// What a connection carries back to the pool: a transaction left open, autocommit turned off,
// a query still running, session state, a caller's listeners. The release policy reads the
// transaction state from the server status flags of the last OK/EOF packet (no round trip);
// mysql2's own pool hands all of it to the next caller.
import mysql from 'mysql2/promise';
import type { RowDataPacket } from 'mysql2';
import { afterEach, describe, expect, it } from 'vitest';
import { createMysqlPool, type MysqlPool, type MysqlPoolConfig } from '../../src/adapters/mysql/index.js';
import { useMariaDb, waitFor, type Account } from './harness.js';

const db = useMariaDb();
const pools: MysqlPool[] = [];
afterEach(async () => {
  await Promise.all(pools.splice(0).map((pool) => pool.close()));
});

async function poolFor(label: string, options: Partial<MysqlPoolConfig> = {}): Promise<{ pool: MysqlPool; account: Account }> {
  const account = await db.user(label);
  const pool = createMysqlPool({ ...db.connection(account), max: 1, ...options });
  pools.push(pool);
  return { pool, account };
}

async function table(): Promise<string> {
  const name = db.table('hygiene');
  await db.admin(`CREATE TABLE ${db.database}.${name} (id int AUTO_INCREMENT PRIMARY KEY, v int) ENGINE=InnoDB`);
  return `${db.database}.${name}`;
}

/** mysql2's callback connection under the promise one (its events reach the promise one only while someone listens there). */
const baseOf = (connection: object): NodeJS.EventEmitter => (connection as { connection: NodeJS.EventEmitter }).connection;

const rowsOf = async (pool: MysqlPool, sql: string): Promise<RowDataPacket[]> => (await pool.query<RowDataPacket[]>(sql))[0];

describe('a connection released inside a transaction', () => {
  it('is destroyed by default: its uncommitted write is rolled back by the server, never seen by the next caller', async () => {
    const t = await table();
    const { pool } = await poolFor('dirty');
    const lease = await pool.acquire();
    await lease.resource.query('START TRANSACTION');
    await lease.resource.query(`INSERT INTO ${t} (v) VALUES (1)`);
    const dirtyId = lease.resource.threadId;
    await lease.release();
    const [next] = await rowsOf(pool, 'SELECT CONNECTION_ID() AS id, @@in_transaction AS tx');
    expect(next).toMatchObject({ tx: 0 });
    expect(next?.id).not.toBe(dirtyId);
    expect(await rowsOf(pool, `SELECT count(*) AS n FROM ${t}`)).toEqual([{ n: 0 }]);
    expect(pool.stats().destroyedByReason.broken).toBe(1);
  });

  it("with dirtyRelease 'rollback': rolled back and reused (same session, no transaction)", async () => {
    const t = await table();
    const { pool } = await poolFor('rollback', { dirtyRelease: 'rollback' });
    const lease = await pool.acquire();
    await lease.resource.query('BEGIN');
    await lease.resource.query(`INSERT INTO ${t} (v) VALUES (1)`);
    const id = lease.resource.threadId;
    await lease.release();
    expect(await rowsOf(pool, 'SELECT CONNECTION_ID() AS id, @@in_transaction AS tx')).toEqual([{ id, tx: 0 }]);
    expect(await rowsOf(pool, `SELECT count(*) AS n FROM ${t}`)).toEqual([{ n: 0 }]);
    expect(pool.stats().destroyed).toBe(0);
  });

  it('also after a SELECT (the status comes from its EOF packet) and with autocommit turned off', async () => {
    const t = await table();
    const { pool } = await poolFor('select', { dirtyRelease: 'rollback' });
    await pool.withConnection(async (connection) => {
      await connection.query('START TRANSACTION');
      await connection.query(`SELECT * FROM ${t} FOR UPDATE`);
    });
    expect(await rowsOf(pool, 'SELECT @@in_transaction AS tx, @@autocommit AS ac')).toEqual([{ tx: 0, ac: 1 }]);
    await pool.withConnection(async (connection) => {
      await connection.query('SET autocommit = 0');
      await connection.query(`INSERT INTO ${t} (v) VALUES (5)`);
    });
    // Rolled back, and autocommit restored for the next caller.
    expect(await rowsOf(pool, 'SELECT @@in_transaction AS tx, @@autocommit AS ac')).toEqual([{ tx: 0, ac: 1 }]);
    expect(await rowsOf(pool, `SELECT count(*) AS n FROM ${t}`)).toEqual([{ n: 0 }]);
  });

  it('a committed transaction leaves a clean connection that is reused', async () => {
    const t = await table();
    const { pool } = await poolFor('clean');
    await pool.withConnection(async (connection) => {
      await connection.query('START TRANSACTION');
      await connection.query(`INSERT INTO ${t} (v) VALUES (1)`);
      await connection.query('COMMIT');
    });
    expect(await rowsOf(pool, `SELECT count(*) AS n FROM ${t}`)).toEqual([{ n: 1 }]);
    expect(pool.stats().destroyed).toBe(0);
  });

  it("mysql2's own pool hands the open transaction to the next caller (what the policy prevents)", async () => {
    const t = await table();
    const account = await db.user('mysql2pool');
    const plain = mysql.createPool({ ...db.connection(account), connectionLimit: 1 });
    try {
      const connection = await plain.getConnection();
      await connection.query('BEGIN');
      await connection.query(`INSERT INTO ${t} (v) VALUES (1)`);
      connection.release();
      const [rows] = await plain.query<RowDataPacket[]>('SELECT @@in_transaction AS tx');
      expect(rows).toEqual([{ tx: 1 }]);
    } finally {
      await plain.end();
    }
  });
});

describe('a connection released mid-query', () => {
  it('is destroyed and its statement killed on the server', async () => {
    const { pool, account } = await poolFor('midquery');
    const lease = await pool.acquire();
    const running = lease.resource.query('SELECT SLEEP(20)').catch((error: unknown) => error);
    await waitFor('the statement to run', async () => (await db.admin<RowDataPacket[]>("SELECT id FROM information_schema.PROCESSLIST WHERE USER = ? AND INFO LIKE 'SELECT SLEEP%'", [account.user])).length === 1);
    await lease.release();
    expect(await running).toBeInstanceOf(Error);
    await waitFor('the statement to be gone from the server', async () => (await db.sessions(account.user)) === 0, { timeoutMs: 3000 });
    expect(pool.stats().destroyedByReason.broken).toBe(1);
  });
});

describe("resetOnRelease: 'reset' (COM_RESET_CONNECTION)", () => {
  it('gives the next caller a fresh session: variables, temporary tables, a USE and an open transaction gone; utf8mb4 kept; prepared statements work again', async () => {
    const t = await table();
    const { pool, account } = await poolFor('reset', { resetOnRelease: 'reset' });
    const elsewhere = `${db.database}_elsewhere`;
    await db.admin(`CREATE DATABASE IF NOT EXISTS ${elsewhere}`);
    await db.admin(`GRANT ALL ON ${elsewhere}.* TO ?@'%'`, [account.user]);
    const [id1] = await pool.withConnection(async (connection) => {
      await connection.query("SET @leftover = 'x', SESSION sql_mode = 'ANSI_QUOTES'");
      await connection.query(`USE ${elsewhere}`);
      await connection.query('CREATE TEMPORARY TABLE tmp_left (a int)');
      await connection.execute('SELECT ? AS p', [1]);
      await connection.query('BEGIN');
      await connection.query(`INSERT INTO ${t} (v) VALUES (1)`);
      return [connection.threadId];
    });
    const [row] = await pool.withConnection(async (connection) => {
      const [rows] = await connection.query<RowDataPacket[]>("SELECT CONNECTION_ID() AS id, @leftover AS v, @@in_transaction AS tx, @@sql_mode LIKE '%ANSI_QUOTES%' AS ansi, DATABASE() AS db");
      // mysql2 forgets its statement cache on reset: execute prepares again instead of failing.
      const [prepared] = await connection.execute<RowDataPacket[]>('SELECT ? AS p', [2]);
      expect(prepared).toEqual([{ p: 2 }]);
      await expect(connection.query('SELECT * FROM tmp_left')).rejects.toMatchObject({ errno: 1146 });
      const [emoji] = await connection.query<RowDataPacket[]>('SELECT ? AS s', ['snow ☃ and 🐬']);
      expect(emoji).toEqual([{ s: 'snow ☃ and 🐬' }]);
      return rows;
    });
    // The default database is the configured one again (a caller's USE does not outlive its lease).
    expect(row).toEqual({ id: id1, v: null, tx: 0, ansi: 0, db: db.database });
    await db.admin(`DROP DATABASE ${elsewhere}`);
    expect(await rowsOf(pool, `SELECT count(*) AS n FROM ${t}`)).toEqual([{ n: 0 }]);
    expect(pool.stats().destroyed).toBe(0);
  });
});

describe("a caller's listeners", () => {
  it('are removed at release, so they never fire for the next caller', async () => {
    const { pool } = await poolFor('listeners');
    let heard = 0;
    await pool.withConnection(async (connection) => {
      connection.on('error', () => heard++);
      baseOf(connection).on('end', () => heard++);
    });
    await pool.withConnection(async (connection) => {
      expect(connection.listenerCount('error')).toBe(0);
      expect(baseOf(connection).listenerCount('end')).toBe(0);
    });
    expect(heard).toBe(0);
  });

  it("and the pool's own are put back: a caller's removeAllListeners('error') does not let an idle connection's death crash the process", async () => {
    const { pool, account } = await poolFor('ownlisteners');
    await pool.withConnection(async (connection) => {
      baseOf(connection).removeAllListeners('error');
      baseOf(connection).removeAllListeners();
    });
    const [id] = await db.sessionIds(account.user);
    await db.killConnection(id!);
    // The pool hears the death (its listeners are back) and replaces the connection; the harness checks for uncaught errors.
    await waitFor('the killed idle connection to be destroyed', () => pool.stats().destroyed === 1);
    const [rows] = await pool.query<RowDataPacket[]>('SELECT 1 AS ok');
    expect(rows).toEqual([{ ok: 1 }]);
  });
});
