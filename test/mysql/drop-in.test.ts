// lifeguard/mysql2's createPool as code written for mysql2's pool uses it, on a real MariaDB:
// mysql2's surface with mysql2's meanings, and lifeguard's protections underneath, checked
// against mysql2's own createPool where the two differ on purpose.
import mysql2 from 'mysql2';
import mysql2Promise, { type RowDataPacket } from 'mysql2/promise';
import { afterEach, describe, expect, it } from 'vitest';
import lifeguardMysql, { createPool, type Pool, type PoolOptions } from '../../src/adapters/mysql2/index.js';
import { AcquireTimeoutError, InvalidPoolOptionError, PoolClosedError, PoolQueueFullError, toPrometheusText } from '../../src/index.js';
import { type Account, useMariaDb } from './harness.js';

const db = useMariaDb();

const pools = new Set<{ end(): Promise<void> }>();
afterEach(async () => {
  await Promise.all([...pools].map((pool) => pool.end().catch(() => {})));
  pools.clear();
});

async function makePool(label: string, config: PoolOptions = {}): Promise<{ pool: Pool; account: Account }> {
  const account = await db.user(label);
  const pool = createPool({ ...db.connection(account), ...config });
  pools.add(pool);
  return { pool, account };
}

/** Until `check` passes or 5 s go by. */
async function eventually(check: () => Promise<void>): Promise<void> {
  const until = Date.now() + 5000;
  for (;;) {
    try {
      return await check();
    } catch (error) {
      if (Date.now() > until) throw error;
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  }
}

describe('lifeguard/mysql2: mysql2 promise pool API', () => {
  it('query and execute resolve with [rows, fields]; the default export is mysql2/promise with this createPool', async () => {
    const { pool } = await makePool('api');
    const [rows, fields] = await pool.query<RowDataPacket[]>('SELECT ? + 1 AS n', [41]);
    expect(rows).toEqual([{ n: 42 }]);
    expect(fields[0]?.name).toBe('n');
    const [executed] = await pool.execute<RowDataPacket[]>('SELECT CONCAT(?, ?) AS s', ['a', 'b']);
    expect(executed).toEqual([{ s: 'ab' }]);
    expect(lifeguardMysql.createPool).toBe(createPool);
    expect(lifeguardMysql.format).toBe(mysql2Promise.format);
    // As mysql2's promise pool: a callback is refused at once.
    expect(() => pool.query('SELECT 1', (() => {}) as never)).toThrow('Callback function is not available with promise clients.');
  });

  it('escape, escapeId and format give what mysql2 pool gives', async () => {
    const { pool } = await makePool('escape');
    const theirs = mysql2Promise.createPool(db.connection());
    try {
      const value = { a: "it's", d: new Date(Date.UTC(2024, 0, 2)) };
      expect(pool.escape("it's")).toBe(theirs.escape("it's"));
      expect(pool.escape(value)).toBe(theirs.escape(value));
      expect(pool.escapeId('a.b')).toBe(theirs.escapeId('a.b'));
      expect(pool.format('SELECT ?, ??', [1, 'c'])).toBe(theirs.format('SELECT ?, ??', [1, 'c']));
    } finally {
      await theirs.end();
    }
  });

  it('getConnection: mysql2 promise connection; transactions, ping, release twice is a no-op, destroy ends the session', async () => {
    const { pool, account } = await makePool('conn', { connectionLimit: 2 });
    const table = db.table('conn');
    await pool.query(`CREATE TABLE ${table} (id INT PRIMARY KEY) ENGINE=InnoDB`);
    const connection = await pool.getConnection();
    await connection.ping();
    await connection.beginTransaction();
    await connection.execute(`INSERT INTO ${table} VALUES (?)`, [1]);
    await connection.commit();
    await connection.beginTransaction();
    await connection.query(`INSERT INTO ${table} VALUES (2)`);
    await connection.rollback();
    expect(await db.admin(`SELECT id FROM ${db.database}.${table}`)).toEqual([{ id: 1 }]);
    connection.release();
    connection.release();
    expect(pool.stats()).toMatchObject({ leased: 0, idle: 1 });

    const again = await pool.getConnection();
    const id = again.threadId;
    again.destroy();
    await eventually(async () => expect(await db.sessionIds(account.user)).not.toContain(id));
    expect(pool.stats().leased).toBe(0);

    // Destroyed mid-statement: the statement is killed on the server, not left running.
    const busy = await pool.getConnection();
    const sleeping = busy.query('SELECT SLEEP(30)').catch((e: unknown) => e);
    await eventually(async () => expect(await db.admin(`SELECT ID FROM information_schema.PROCESSLIST WHERE ID = ${busy.threadId} AND INFO LIKE 'SELECT SLEEP%'`)).toHaveLength(1));
    busy.destroy();
    expect(await sleeping).toBeInstanceOf(Error);
    await eventually(async () => expect(await db.admin(`SELECT ID FROM information_schema.PROCESSLIST WHERE INFO LIKE 'SELECT SLEEP(30)%' AND USER = '${account.user}'`)).toEqual([]));
  });

  it("emits mysql2's events: connection (new), acquire, release, enqueue", async () => {
    const { pool } = await makePool('events', { connectionLimit: 1 });
    const seen: string[] = [];
    for (const event of ['connection', 'acquire', 'release', 'enqueue']) pool.on(event as 'acquire', () => seen.push(event));
    // Handlers of 'connection' set session state on each new connection, before its first query.
    pool.on('connection', (connection) => {
      (connection as unknown as mysql2.Connection).query("SET SESSION sql_mode = 'ANSI_QUOTES'");
    });
    const first = await pool.getConnection();
    const waiting = pool.getConnection();
    first.release();
    const second = await waiting;
    const [rows] = await second.query<RowDataPacket[]>('SELECT @@SESSION.sql_mode AS mode');
    second.release();
    expect(rows[0]?.mode).toBe('ANSI_QUOTES');
    expect(seen, seen.join()).toEqual(['connection', 'acquire', 'enqueue', 'release', 'acquire', 'release']);
    // As mysql2: a destroyed connection is not 'release'd.
    (await pool.getConnection()).destroy();
    expect(seen.slice(6)).toEqual(['acquire']);
  });

  it("a 'connection' handler that throws fails that checkout with its error and leaves no session open", async () => {
    const { pool, account } = await makePool('hookfail', { acquireTimeoutMs: 2000 });
    const refusal = new Error('not on this server');
    pool.on('connection', () => {
      throw refusal;
    });
    await expect(pool.getConnection()).rejects.toBe(refusal);
    await eventually(async () => expect(await db.sessions(account.user)).toBe(0));
  });

  it('.pool is the callback pool: getConnection(cb), query(sql, values, cb), a streamed pool.query, execute, end(cb)', async () => {
    const { pool } = await makePool('callback');
    const callbackPool = pool.pool;
    expect(callbackPool.promise()).toBe(pool);
    const viaConnection = await new Promise<unknown>((resolve, reject) => {
      callbackPool.getConnection((error, connection) => {
        if (error) return reject(error);
        connection.query('SELECT ? AS v', [7], (queryError, rows) => {
          connection.release();
          if (queryError) reject(queryError);
          else resolve(rows);
        });
      });
    });
    expect(viaConnection).toEqual([{ v: 7 }]);
    // Released inside the query's callback (mysql2's usual pattern): the query had ended, the connection is kept.
    expect(pool.stats()).toMatchObject({ destroyed: 0, idle: 1 });
    const viaPool = await new Promise<unknown>((resolve, reject) => {
      callbackPool.query('SELECT ? AS v', [8], (error, rows) => (error ? reject(error) : resolve(rows)));
    });
    expect(viaPool).toEqual([{ v: 8 }]);
    const viaExecute = await new Promise<unknown>((resolve, reject) => {
      callbackPool.execute('SELECT ? AS v', [9], (error, rows) => (error ? reject(error) : resolve(rows)));
    });
    expect(viaExecute).toEqual([{ v: 9 }]);
    const streamed: unknown[] = [];
    for await (const row of callbackPool.query('SELECT 1 AS v UNION ALL SELECT 2').stream()) streamed.push(row);
    expect(streamed).toEqual([{ v: 1 }, { v: 2 }]);
    expect(pool.stats()).toMatchObject({ leased: 0, destroyed: 0 });
    await new Promise<void>((resolve) => callbackPool.end(() => resolve()));
    expect(pool.closed).toBe(true);
  });

  it("a failed connect is mysql2's own error (its code), the password nowhere in it", async () => {
    const account = await db.user('badpw');
    const pool = createPool({ ...db.connection(account), password: 'wrong-secret-pw', retry: { retries: 0 }, acquireTimeoutMs: 3000 });
    pools.add(pool);
    const error = await pool.getConnection().catch((e: unknown) => e as Error & { code?: string });
    expect(error).toBeInstanceOf(Error);
    expect((error as { code?: string }).code).toBe('ER_ACCESS_DENIED_ERROR');
    expect(String((error as Error).message)).not.toContain('wrong-secret-pw');
  });

  it("a server error is mysql2's own error object, and leaves its connection in the pool", async () => {
    const { pool } = await makePool('sqlerror', { connectionLimit: 1 });
    await pool.query('SELECT 1');
    const error = (await pool.query('SELEC 1').catch((e: unknown) => e)) as Error & { code?: string; errno?: number; sqlState?: string; sql?: string };
    expect(error).toMatchObject({ code: 'ER_PARSE_ERROR', errno: 1064, sqlState: '42000', sql: 'SELEC 1' });
    const viaExecute = (await pool.execute('SELECT * FROM no_such_table_here').catch((e: unknown) => e)) as { code?: string };
    expect(viaExecute.code).toBe('ER_NO_SUCH_TABLE');
    expect(pool.stats()).toMatchObject({ created: 1, destroyed: 0, idle: 1 });
  });

  it('stats and health feed toPrometheusText', async () => {
    const { pool } = await makePool('metrics');
    await pool.query('SELECT 1');
    expect(pool.health().status).toBe('ok');
    expect(toPrometheusText([{ pool, name: 'mysql' }])).toContain('pool_name="mysql"');
  });
});

describe('lifeguard/mysql2: config with mysql2 meanings', () => {
  it('connectionLimit is max; the one more caller waits and the acquire deadline reaches it as AcquireTimeoutError', async () => {
    const { pool } = await makePool('limit', { connectionLimit: 2, acquireTimeoutMs: 300 });
    const held = await Promise.all([pool.getConnection(), pool.getConnection()]);
    expect(pool.stats().max).toBe(2);
    const started = performance.now();
    await expect(pool.query('SELECT 1')).rejects.toBeInstanceOf(AcquireTimeoutError);
    expect(performance.now() - started).toBeLessThan(2000);
    const viaCallback = await new Promise((resolve) => pool.pool.getConnection((error) => resolve(error)));
    expect(viaCallback).toBeInstanceOf(AcquireTimeoutError);
    for (const connection of held) connection.release();
    await expect(pool.query('SELECT 1')).resolves.toBeDefined();
  });

  it('200 concurrent callers on connectionLimit 3, mixing the promise and callback APIs: all served, never more than 3 sessions, none left leased', async () => {
    const { pool, account } = await makePool('burst', { connectionLimit: 3 });
    let peak = 0;
    const sample = setInterval(() => void db.sessions(account.user).then((n) => (peak = Math.max(peak, n))), 10);
    try {
      const work = Array.from({ length: 200 }, (_, i) => {
        if (i % 4 === 0) return pool.query<RowDataPacket[]>('SELECT ? AS i', [i]).then(([rows]) => rows[0]?.i);
        if (i % 4 === 1) return pool.execute<RowDataPacket[]>('SELECT ? AS i', [i]).then(([rows]) => rows[0]?.i);
        if (i % 4 === 2) {
          return pool.getConnection().then(async (connection) => {
            try {
              const [rows] = await connection.query<RowDataPacket[]>('SELECT ? AS i', [i]);
              return rows[0]?.i;
            } finally {
              connection.release();
            }
          });
        }
        return new Promise((resolve, reject) => pool.pool.query('SELECT ? AS i', [i], (error, rows) => (error ? reject(error) : resolve((rows as RowDataPacket[])[0]?.i))));
      });
      expect(await Promise.all(work)).toEqual(Array.from({ length: 200 }, (_, i) => i));
    } finally {
      clearInterval(sample);
    }
    expect(peak).toBeLessThanOrEqual(3);
    expect(pool.stats()).toMatchObject({ leased: 0, destroyed: 0, created: 3 });
  });

  it('waitForConnections: false fails at once when none is free (PoolQueueFullError); queueLimit bounds the waiters, 0 = unlimited', async () => {
    const { pool } = await makePool('nowait', { connectionLimit: 1, waitForConnections: false });
    const held = await pool.getConnection();
    const refused = (await pool.getConnection().catch((e: unknown) => e)) as Error;
    expect(refused).toBeInstanceOf(PoolQueueFullError);
    // mysql2's words first, for code that matches them.
    expect(refused.message).toMatch(/^No connections available\. /);
    expect(pool.pool.config).toMatchObject({ connectionLimit: 1, waitForConnections: false, queueLimit: 0 });
    held.release();

    const { pool: queued } = await makePool('queue', { connectionLimit: 1, queueLimit: 1 });
    const holder = await queued.getConnection();
    const waiter = queued.getConnection();
    await expect(queued.getConnection()).rejects.toThrow(/^Queue limit reached\. /);
    expect(queued.pool.config).toMatchObject({ connectionLimit: 1, waitForConnections: true, queueLimit: 1 });
    holder.release();
    (await waiter).release();

    const { pool: unlimited } = await makePool('unlimited', { connectionLimit: 1, queueLimit: 0 });
    const one = await unlimited.getConnection();
    const many = Array.from({ length: 20 }, () => unlimited.query('SELECT 1'));
    one.release();
    await expect(Promise.all(many)).resolves.toHaveLength(20);
  });

  it('maps idleTimeout and connectTimeout; mysql2 defaults: 10 connections, 60 s idle', async () => {
    const { pool, account } = await makePool('idle', { idleTimeout: 200, connectTimeout: 4000 });
    await pool.query('SELECT 1');
    expect(await db.sessions(account.user)).toBe(1);
    await eventually(async () => expect(await db.sessions(account.user)).toBe(0));
    expect(pool.stats().destroyedByReason.idle).toBe(1);
    const { pool: defaults } = await makePool('defaults');
    expect(defaults.stats().max).toBe(10);
  });

  it("reads mysql2's pool options from a URL's query string, as mysql2 does (explicit options win)", async () => {
    const account = await db.user('urlopts');
    const url = new URL(db.urlFor(account));
    url.search = '?connectionLimit=2&waitForConnections=false&dateStrings=true';
    const pool = createPool(url.toString());
    pools.add(pool);
    expect(pool.pool.config).toMatchObject({ connectionLimit: 2, waitForConnections: false });
    const [rows] = await pool.query<RowDataPacket[]>("SELECT DATE('2024-01-02') AS d");
    expect(rows[0]?.d).toBe('2024-01-02');
    const explicit = createPool({ uri: url.toString(), connectionLimit: 4 });
    pools.add(explicit);
    expect(explicit.pool.config.connectionLimit).toBe(4);
    expect(() => createPool(`${db.urlFor(account)}?connectionLimit=lots`)).toThrow(InvalidPoolOptionError);
  });

  it('refuses conflicting and meaningless options, naming them, never echoing a password', () => {
    const cases: [PoolOptions, string][] = [
      [{ connectionLimit: 3, max: 4 }, 'connectionLimit'],
      [{ idleTimeout: 1000, idleTimeoutMs: 1000 }, 'idleTimeout'],
      [{ queueLimit: 5, maxWaiting: 5 }, 'queueLimit'],
      [{ waitForConnections: false, queueLimit: 5 }, 'queueLimit'],
      [{ connectTimeout: 1000, createTimeoutMs: 1000 }, 'connectTimeout'],
      [{ connectionLimit: 0 }, 'connectionLimit'],
      [{ connectionLimit: -1 }, 'connectionLimit'],
      [{ maxIdle: 1, min: 2 }, 'maxIdle'],
      [{ waitForConnections: 'no' as never }, 'waitForConnections'],
      [{ uri: 'postgres://u:hunter2-secret@h/d' }, 'uri'],
      [{ password: { secret: 'hunter2-secret' } as never }, 'password'],
    ];
    for (const [config, option] of cases) {
      let thrown: unknown;
      try {
        createPool(config);
      } catch (error) {
        thrown = error;
      }
      expect(thrown, JSON.stringify(config)).toBeInstanceOf(InvalidPoolOptionError);
      expect((thrown as InvalidPoolOptionError).option).toBe(option);
      expect((thrown as Error).message).not.toContain('hunter2-secret');
    }
  });

  it('resetOnRelease: true (mysql2) resets the session on release', async () => {
    const { pool } = await makePool('reset', { connectionLimit: 1, resetOnRelease: true });
    const connection = await pool.getConnection();
    await connection.query('SET @marker = 5');
    connection.release();
    const [rows] = await pool.query<RowDataPacket[]>('SELECT @marker AS m');
    expect(rows).toEqual([{ m: null }]);
  });
});

describe('lifeguard/mysql2: what mysql2 pool does not protect', () => {
  it('a raw BEGIN left open is destroyed on release, where mysql2 pool hands the open transaction to the next caller', async () => {
    const table = db.table('dirty');
    await db.admin(`CREATE TABLE ${db.database}.${table} (id INT PRIMARY KEY) ENGINE=InnoDB`);
    const theirAccount = await db.user('theirs');
    const theirs = mysql2Promise.createPool({ ...db.connection(theirAccount), connectionLimit: 1 });
    const { pool: ours } = await makePool('dirtyours', { connectionLimit: 1 });
    try {
      for (const pool of [theirs, ours]) {
        const first = await pool.getConnection();
        await first.query('BEGIN');
        await first.query(`INSERT INTO ${table} VALUES (${pool === ours ? 1 : 2})`);
        const firstThread = first.threadId;
        first.release();
        const next = await pool.getConnection();
        const [rows] = await next.query<RowDataPacket[]>('SELECT @@in_transaction AS t');
        if (pool === theirs) {
          // mysql2: the same session, still inside the first caller's transaction.
          expect(next.threadId).toBe(firstThread);
          expect(rows).toEqual([{ t: 1 }]);
          await next.query('ROLLBACK');
        } else {
          expect(next.threadId).not.toBe(firstThread);
          expect(rows).toEqual([{ t: 0 }]);
        }
        next.release();
      }
      // Neither half-done insert is committed; lifeguard's was rolled back by the server when its session ended.
      await eventually(async () => expect(await db.admin(`SELECT id FROM ${db.database}.${table}`)).toEqual([]));
      expect(ours.stats().destroyedByReason.broken).toBe(1);
    } finally {
      await theirs.end();
    }
  });

  it('dirtyRelease: rollback rolls the open transaction back and keeps the session', async () => {
    const { pool } = await makePool('dirtyroll', { connectionLimit: 1, dirtyRelease: 'rollback' });
    const first = await pool.getConnection();
    await first.query('START TRANSACTION');
    const thread = first.threadId;
    first.release();
    const next = await pool.getConnection();
    const [rows] = await next.query<RowDataPacket[]>('SELECT @@in_transaction AS t');
    expect([next.threadId, rows]).toEqual([thread, [{ t: 0 }]]);
    next.release();
  });
});

describe('lifeguard/mysql2: end()', () => {
  it('await using gives a connection back, and close({ timeoutMs }) destroys one still held after it', async () => {
    const { pool, account } = await makePool('dispose', { connectionLimit: 2 });
    {
      await using connection = await pool.getConnection();
      await connection.query('SELECT 1');
      expect(pool.stats().leased).toBe(1);
    }
    expect(pool.stats()).toMatchObject({ leased: 0, idle: 1, destroyed: 0 });
    const forgotten = await pool.getConnection();
    await forgotten.query('SELECT 1');
    const started = performance.now();
    await pool.close({ timeoutMs: 200 });
    expect(performance.now() - started).toBeLessThan(2000);
    expect(pool.closed).toBe(true);
    await eventually(async () => expect(await db.sessions(account.user)).toBe(0));
  });

  it('closes every session; later checkouts fail with PoolClosedError; end() twice is fine', async () => {
    const { pool, account } = await makePool('end', { connectionLimit: 3 });
    await Promise.all([pool.query('SELECT SLEEP(0.05)'), pool.query('SELECT SLEEP(0.05)')]);
    expect(await db.sessions(account.user)).toBe(2);
    const held = await pool.getConnection();
    const others = await Promise.all([pool.getConnection(), pool.getConnection()]);
    const waiting = pool.getConnection().catch((e: unknown) => e);
    const ended = pool.end();
    // Callers waiting for a connection fail at once, as in mysql2.
    expect(await waiting).toBeInstanceOf(PoolClosedError);
    for (const other of others) other.release();
    await expect(pool.getConnection()).rejects.toBeInstanceOf(PoolClosedError);
    await expect(pool.query('SELECT 1')).rejects.toBeInstanceOf(PoolClosedError);
    // A leased connection finishes its work, then goes when released.
    await expect(held.query('SELECT 1')).resolves.toBeDefined();
    held.release();
    await ended;
    await pool.end();
    await eventually(async () => expect(await db.sessions(account.user)).toBe(0));
  });
});
