// pool.query(submittable) (issue 9, item 17): a pg-cursor (or any object with `submit`) runs
// on a client leased for it and keeps that lease until it ends, closes or fails; a dead
// connection is destroyed. And pool.query's callback style, as pg.Pool has it.
import { createRequire } from 'node:module';
import pg from 'pg';
import { beforeAll, describe, expect, it } from 'vitest';
import { rejectionOf, usePostgres, waitFor } from './harness.js';

// pg-cursor ships no types: the little of it used here.
interface CursorInstance<R> extends pg.Submittable {
  read(rows: number): Promise<R[]>;
  close(): Promise<void>;
}
const Cursor = createRequire(import.meta.url)('pg-cursor') as new <R = Record<string, unknown>>(text: string, values?: unknown[]) => CursorInstance<R>;

const db = usePostgres();
let NUMBERS = '';

beforeAll(async () => {
  NUMBERS = db.table('cursor_numbers');
  await db.admin(`CREATE TABLE ${NUMBERS} AS SELECT n FROM generate_series(1, 100) AS n`);
});

describe('pool.query(new Cursor(...))', () => {
  it('returns the cursor, which reads rows in batches on a leased client; the lease is held until close()', async () => {
    const pool = db.pool({ max: 1 });
    const cursor = pool.query(new Cursor<{ n: number }>(`SELECT n FROM ${NUMBERS} ORDER BY n`));
    expect(cursor).toBeInstanceOf(Cursor);
    expect((await cursor.read(10)).map((r) => r.n)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(pool.stats().leased).toBe(1);
    expect((await cursor.read(5)).map((r) => r.n)).toEqual([11, 12, 13, 14, 15]);
    // The client is the cursor's: another query waits for it (max 1) instead of corrupting it.
    const other = pool.query('SELECT 42 AS n');
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(pool.stats()).toMatchObject({ leased: 1, waiting: 1 });
    await cursor.close();
    expect((await other).rows[0]!.n).toBe(42);
    await waitFor('the lease to be released', () => pool.stats().leased === 0);
    expect(pool.stats()).toMatchObject({ created: 1, destroyed: 0 });
  });

  it('read to the end: the lease is released, the client reused', async () => {
    const pool = db.pool({ max: 1 });
    const cursor = pool.query(new Cursor<{ n: number }>(`SELECT n FROM ${NUMBERS} WHERE n <= 30 ORDER BY n`));
    const seen: number[] = [];
    for (;;) {
      const rows = await cursor.read(7);
      if (rows.length === 0) break;
      seen.push(...rows.map((r) => r.n));
    }
    expect(seen).toEqual(Array.from({ length: 30 }, (_, i) => i + 1));
    await waitFor('the lease to be released', () => pool.stats().leased === 0);
    expect((await pool.query('SELECT 1 AS one')).rows[0]!.one).toBe(1);
    expect(pool.stats()).toMatchObject({ created: 1, destroyed: 0 });
  });

  it('a statement error inside the cursor: the read rejects with the SQLSTATE, the lease is released, the client reused', async () => {
    const pool = db.pool({ max: 1 });
    const cursor = pool.query(new Cursor(`SELECT 10 / (n - 20) AS q FROM ${NUMBERS} ORDER BY n`));
    const error = await rejectionOf(cursor.read(100));
    expect(error.code).toBe('22012'); // division_by_zero
    await waitFor('the lease to be released', () => pool.stats().leased === 0);
    expect((await pool.query('SELECT 1 AS one')).rows[0]!.one).toBe(1);
    expect(pool.stats()).toMatchObject({ created: 1, destroyed: 0 });
  });

  it('the connection dies under an open cursor: the client is destroyed, the next query gets a new one', async () => {
    const pool = db.pool({ max: 1 });
    const cursor = pool.query(new Cursor(`SELECT n FROM ${NUMBERS} ORDER BY n`));
    await cursor.read(1);
    const { rows } = await db.admin<{ pid: number }>(
      "SELECT pid FROM pg_stat_activity WHERE application_name = $1 AND backend_type = 'client backend'",
      [pool.app],
    );
    await db.admin('SELECT pg_terminate_backend($1)', [rows[0]!.pid]);
    await expect(cursor.read(10)).rejects.toThrow();
    await waitFor('the dead client to be destroyed', () => pool.stats().destroyed === 1 && pool.stats().leased === 0);
    expect(pool.stats().destroyedByReason.broken).toBe(1);
    expect((await pool.query('SELECT 1 AS one')).rows[0]!.one).toBe(1);
  });

  it('a cursor whose acquire fails hears of it: its read rejects with the acquire error', async () => {
    const pool = db.pool({ max: 1 });
    await pool.close();
    const cursor = pool.query(new Cursor('SELECT 1'));
    expect((await rejectionOf(cursor.read(1))).code).toBe('POOL_CLOSED');
  });

  it('a pg.Query (a submittable too) runs and releases its lease when it ends', async () => {
    const pool = db.pool({ max: 1 });
    const query = pool.query(new pg.Query('SELECT 7 AS n'));
    const rows = await new Promise<unknown[]>((resolve, reject) => {
      const collected: unknown[] = [];
      query.on('row', (row: unknown) => collected.push(row));
      query.on('end', () => resolve(collected));
      query.on('error', reject);
    });
    expect(rows).toEqual([{ n: 7 }]);
    await waitFor('the lease to be released', () => pool.stats().leased === 0);
  });
});

describe('pool.query callback style', () => {
  it('query(text, params, callback) and query(text, callback) call back with the result; nothing is returned', async () => {
    const pool = db.pool({ max: 1 });
    const withParams = await new Promise<pg.QueryResult>((resolve, reject) => {
      const returned = pool.query('SELECT $1::int AS n', [5], (error, result) => (error ? reject(error) : resolve(result!)));
      expect(returned).toBeUndefined();
    });
    expect(withParams.rows).toEqual([{ n: 5 }]);
    const without = await new Promise<pg.QueryResult>((resolve, reject) => {
      pool.query('SELECT 6 AS n', (error, result) => (error ? reject(error) : resolve(result!)));
    });
    expect(without.rows).toEqual([{ n: 6 }]);
  });

  it('an SQL error reaches the callback as its first argument, SQLSTATE intact', async () => {
    const pool = db.pool({ max: 1 });
    const error = await new Promise<Error & { code?: string }>((resolve) => {
      pool.query('SELECT 1/0', [], (e) => resolve(e as Error & { code?: string }));
    });
    expect(error.code).toBe('22012');
    expect(pool.stats().leased).toBe(0);
  });

  it('a callback that is not a function is refused at once', () => {
    expect(() => (pool2().query as (...a: unknown[]) => unknown)('SELECT 1', [], 'not a function')).toThrow(TypeError);
  });

  it('pool.query(fn) is still refused', async () => {
    const error = await rejectionOf((pool2().query as (...a: unknown[]) => Promise<unknown>)(() => 'x'));
    expect(error).toBeInstanceOf(TypeError);
  });
});

function pool2(): ReturnType<typeof db.pool> {
  return db.pool({ max: 1 });
}

