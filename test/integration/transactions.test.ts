// withTransaction against a real server: COMMIT, ROLLBACK on throw, isolation levels, and
// real serialization failures (40001) and deadlocks (40P01), retried or surfaced.
import type pg from 'pg';
import { beforeAll, describe, expect, it } from 'vitest';
import { rejectionOf, usePostgres } from './harness.js';

const db = usePostgres();
let ROWS = '';

beforeAll(async () => {
  ROWS = db.table('txn_rows');
  await db.admin(`CREATE TABLE ${ROWS} (id serial PRIMARY KEY, note text NOT NULL)`);
});

async function notes(): Promise<string[]> {
  return (await db.admin<{ note: string }>(`SELECT note FROM ${ROWS} ORDER BY id`)).rows.map((r) => r.note);
}

/** Resolves once `parties` callers have arrived: both transactions have read before either writes. */
function rendezvous(parties: number): { arrive(): Promise<void> } {
  let arrived = 0;
  let open!: () => void;
  const opened = new Promise<void>((resolve) => {
    open = resolve;
  });
  return {
    arrive() {
      if (++arrived >= parties) open();
      return opened;
    },
  };
}

describe('commit and rollback', () => {
  it('commits: the result of fn is returned and the rows are visible to other sessions', async () => {
    const pool = db.pool({ max: 2 });
    const result = await pool.withTransaction(async (client) => {
      await client.query(`INSERT INTO ${ROWS} (note) VALUES ('commit-1'), ('commit-2')`);
      expect(client.getTransactionStatus()).toBe('T');
      return 'done';
    });
    expect(result).toBe('done');
    expect(await notes()).toEqual(expect.arrayContaining(['commit-1', 'commit-2']));
  });

  it('rolls back when fn throws: the original error is rethrown, nothing is visible, the client is reused clean', async () => {
    const pool = db.pool({ max: 1 });
    let inside: pg.Client | undefined;
    const boom = new Error('fn failed after writing');
    const error = await rejectionOf(
      pool.withTransaction(async (client) => {
        inside = client;
        await client.query(`INSERT INTO ${ROWS} (note) VALUES ('rolled-back')`);
        throw boom;
      }),
    );
    expect(error).toBe(boom);
    expect(await notes()).not.toContain('rolled-back');
    await pool.withConnection(async (client) => {
      expect(client).toBe(inside);
      expect(client.getTransactionStatus()).toBe('I');
      expect((await client.query('SELECT txid_current_if_assigned() AS x')).rows[0]!.x).toBeNull();
      expect((await client.query(`SELECT count(*)::int AS n FROM ${ROWS} WHERE note = 'rolled-back'`)).rows[0]!.n).toBe(0);
    });
    expect(pool.stats()).toMatchObject({ created: 1, destroyed: 0 });
  });

  it('rolls back when a statement fails (SQL error); the driver error keeps its SQLSTATE', async () => {
    const pool = db.pool({ max: 1 });
    const error = await rejectionOf(
      pool.withTransaction(async (client) => {
        await client.query(`INSERT INTO ${ROWS} (note) VALUES ('before-failure')`);
        await client.query(`INSERT INTO ${ROWS} (id, note) VALUES (NULL, NULL)`);
      }),
    );
    expect(error.code).toBe('23502'); // not_null_violation
    expect(await notes()).not.toContain('before-failure');
    expect(pool.stats()).toMatchObject({ created: 1, destroyed: 0, leased: 0 });
  });

  it('uses the isolation level and read-only mode asked for', async () => {
    const pool = db.pool({ max: 1 });
    for (const isolation of ['read committed', 'repeatable read', 'serializable'] as const) {
      const level = await pool.withTransaction(async (client) => (await client.query('SHOW transaction_isolation')).rows[0].transaction_isolation, { isolation });
      expect(level).toBe(isolation);
    }
    const error = await rejectionOf(
      pool.withTransaction((client) => client.query(`INSERT INTO ${ROWS} (note) VALUES ('read-only')`), { readOnly: true }),
    );
    expect(error.code).toBe('25006'); // read_only_sql_transaction
    expect(await notes()).not.toContain('read-only');
  });
});

describe('serialization failures and deadlocks', () => {
  /**
   * Write skew under SERIALIZABLE: each transaction reads the rows the other one inserts
   * into, both read before either writes (a rendezvous), so SSI must abort one with 40001.
   */
  async function writeSkew(retry: boolean | { retries: number }): Promise<{ settled: PromiseSettledResult<number>[]; attempts: number[]; table: string }> {
    const table = db.table('skew');
    await db.admin(`CREATE TABLE ${table} (k int NOT NULL, v int NOT NULL)`);
    await db.admin(`INSERT INTO ${table} VALUES (1, 10), (2, 20)`);
    const pool = db.pool({ max: 2 });
    const barrier = rendezvous(2);
    const attempts = [0, 0];
    const run = (me: 0 | 1): Promise<number> =>
      pool.withTransaction(
        async (client) => {
          const attempt = ++attempts[me]!;
          const readKey = me === 0 ? 1 : 2;
          const writeKey = me === 0 ? 2 : 1;
          const { rows } = await client.query<{ s: number }>(`SELECT sum(v)::int AS s FROM ${table} WHERE k = $1`, [readKey]);
          if (attempt === 1) await barrier.arrive();
          await client.query(`INSERT INTO ${table} VALUES ($1, $2)`, [writeKey, rows[0]!.s]);
          return attempt;
        },
        { isolation: 'serializable', retry },
      );
    const settled = await Promise.allSettled([run(0), run(1)]);
    expect(pool.stats().leased).toBe(0);
    return { settled, attempts, table };
  }

  it('a real write-skew conflict fails one transaction with 40001 when retry is off', async () => {
    const { settled, table } = await writeSkew(false);
    const rejected = settled.filter((s): s is PromiseRejectedResult => s.status === 'rejected');
    expect(settled.filter((s) => s.status === 'fulfilled')).toHaveLength(1);
    expect(rejected).toHaveLength(1);
    expect((rejected[0]!.reason as { code?: string }).code).toBe('40001');
    // Only the winner's insert is there.
    expect((await db.admin(`SELECT count(*)::int AS n FROM ${table}`)).rows[0]!.n).toBe(3);
  });

  it('retry: true re-runs the whole transaction after 40001, and both succeed', async () => {
    const { settled, attempts, table } = await writeSkew(true);
    expect(settled.map((s) => s.status)).toEqual(['fulfilled', 'fulfilled']);
    // One of them ran twice: the conflict really happened and was retried.
    expect(attempts.reduce((a, b) => a + b)).toBe(3);
    expect(settled.map((s) => (s as PromiseFulfilledResult<number>).value).sort()).toEqual([1, 2]);
    expect((await db.admin(`SELECT count(*)::int AS n FROM ${table}`)).rows[0]!.n).toBe(4);
  });

  it('retry: { retries: 0 } does not retry', async () => {
    const { settled } = await writeSkew({ retries: 0 });
    expect(settled.filter((s) => s.status === 'rejected').map((s) => ((s as PromiseRejectedResult).reason as { code?: string }).code)).toEqual(['40001']);
  });

  it('a real deadlock (40P01) is retried to success with retry: true', async () => {
    const table = db.table('deadlock');
    await db.admin(`CREATE TABLE ${table} (k int PRIMARY KEY, v int NOT NULL)`);
    await db.admin(`INSERT INTO ${table} VALUES (1, 0), (2, 0)`);
    const pool = db.pool({ max: 2 });
    const barrier = rendezvous(2);
    const attempts = [0, 0];
    const errors: string[] = [];
    const run = (me: 0 | 1): Promise<void> =>
      pool.withTransaction(
        async (client) => {
          const attempt = ++attempts[me]!;
          const [first, second] = me === 0 ? [1, 2] : [2, 1];
          await client.query(`UPDATE ${table} SET v = v + 1 WHERE k = $1`, [first]);
          if (attempt === 1) await barrier.arrive();
          try {
            await client.query(`UPDATE ${table} SET v = v + 1 WHERE k = $1`, [second]);
          } catch (error) {
            errors.push((error as { code?: string }).code ?? '?');
            throw error;
          }
        },
        { retry: true },
      );
    await Promise.all([run(0), run(1)]);
    expect(errors).toEqual(['40P01']);
    expect(attempts.reduce((a, b) => a + b)).toBe(3);
    expect((await db.admin(`SELECT sum(v)::int AS s FROM ${table}`)).rows[0]!.s).toBe(4);
  });
});
