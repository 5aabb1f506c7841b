// withTransaction never reports success for a transaction the server rolled back (issue 9,
// item 3): a statement fails inside the callback, the callback catches it (or never awaits
// it), and PostgreSQL answers COMMIT with the command tag ROLLBACK and no error.
import { beforeAll, describe, expect, it } from 'vitest';
import { isTransactionRetryable, TransactionRolledBackError } from '../../src/adapters/postgres/index.js';
import { PoolError } from '../../src/pool/errors.js';
import { rejectionOf, usePostgres } from './harness.js';

const db = usePostgres();
let ITEMS = '';

beforeAll(async () => {
  ITEMS = db.table('txc_items');
  await db.admin(`CREATE TABLE ${ITEMS} (id int PRIMARY KEY, note text NOT NULL)`);
  await db.admin(`INSERT INTO ${ITEMS} VALUES (1, 'existing')`);
});

async function notes(): Promise<string[]> {
  return (await db.admin<{ note: string }>(`SELECT note FROM ${ITEMS} ORDER BY id`)).rows.map((r) => r.note);
}

describe('a transaction the server rolled back is reported as rolled back', () => {
  it('"insert, ignore the duplicate" without a savepoint: rejects with TransactionRolledBackError (cause: the 23505), nothing kept, the client reused', async () => {
    const pool = db.pool({ max: 1 });
    let caught: unknown;
    const error = await rejectionOf(
      pool.withTransaction(async (client) => {
        await client.query(`INSERT INTO ${ITEMS} VALUES (10, 'caught-first')`);
        try {
          await client.query(`INSERT INTO ${ITEMS} VALUES (1, 'duplicate')`);
        } catch (duplicate) {
          caught = duplicate; // "ignore the duplicate"
        }
        return 'the callback thinks it worked';
      }),
    );
    expect(error).toBeInstanceOf(TransactionRolledBackError);
    expect(error).toBeInstanceOf(PoolError);
    expect(error.code).toBe('POOL_TX_ROLLED_BACK');
    expect(error.cause).toBe(caught);
    expect((error.cause as { code?: string }).code).toBe('23505');
    expect(error.message).toMatch(/rolled back/);
    expect(await notes()).not.toContain('caught-first');
    // The connection itself is healthy: rolled back and reused, not destroyed.
    expect(await pool.withConnection((client) => client.getTransactionStatus())).toBe('I');
    expect(pool.stats()).toMatchObject({ created: 1, destroyed: 0, leased: 0 });
  });

  it('a failing query the callback did not await: COMMIT is answered with ROLLBACK; rejects with its error as the cause', async () => {
    const pool = db.pool({ max: 1 });
    let notAwaited: Promise<unknown> | undefined;
    const error = await rejectionOf(
      pool.withTransaction(async (client) => {
        await client.query(`INSERT INTO ${ITEMS} VALUES (20, 'not-awaited-first')`);
        // Fire and forget (handled, so not an unhandled rejection); still in flight when fn returns.
        notAwaited = client.query(`INSERT INTO ${ITEMS} VALUES (1, 'duplicate')`).catch((duplicate: unknown) => duplicate);
        return 'returned before the insert failed';
      }),
    );
    expect(error).toBeInstanceOf(TransactionRolledBackError);
    expect((error.cause as { code?: string }).code).toBe('23505');
    expect(error.cause).toBe(await notAwaited);
    expect(await notes()).not.toContain('not-awaited-first');
    expect(pool.stats()).toMatchObject({ created: 1, destroyed: 0, leased: 0 });
  });

  it('with retry: true it still rejects (a duplicate is not retryable: the callback ran once)', async () => {
    const pool = db.pool({ max: 1 });
    let runs = 0;
    const error = await rejectionOf(
      pool.withTransaction(
        async (client) => {
          runs++;
          await client.query(`INSERT INTO ${ITEMS} VALUES (30, 'retry-first')`);
          await client.query(`INSERT INTO ${ITEMS} VALUES (1, 'duplicate')`).catch(() => {});
        },
        { retry: true },
      ),
    );
    expect(error).toBeInstanceOf(TransactionRolledBackError);
    expect((error.cause as { code?: string }).code).toBe('23505');
    expect(runs).toBe(1);
    expect(await notes()).not.toContain('retry-first');
  });

  it('with retry: a swallowed serialization failure (40001) re-runs the transaction, which then commits', async () => {
    const pool = db.pool({ max: 1 });
    let runs = 0;
    const result = await pool.withTransaction(
      async (client) => {
        runs++;
        await client.query(`INSERT INTO ${ITEMS} VALUES (40 + $1::int, 'after-40001')`, [runs]);
        // A real 40001 from the server on the first run, caught by the callback.
        if (runs === 1) await client.query(`DO $$ BEGIN RAISE EXCEPTION 'conflict' USING ERRCODE = '40001'; END $$`).catch(() => {});
        return runs;
      },
      { retry: true },
    );
    expect(result).toBe(2);
    expect((await db.admin<{ id: number }>(`SELECT id FROM ${ITEMS} WHERE note = 'after-40001'`)).rows.map((r) => r.id)).toEqual([42]);
    expect(isTransactionRetryable(new TransactionRolledBackError(Object.assign(new Error('x'), { code: '40001' })))).toBe(true);
    expect(isTransactionRetryable(new TransactionRolledBackError(Object.assign(new Error('x'), { code: '23505' })))).toBe(false);
  });

  it('an error recovered with ROLLBACK TO SAVEPOINT does not abort the transaction; the cause is the error that did, not the 25P02s after it', async () => {
    const pool = db.pool({ max: 1 });
    const recovered = await pool.withTransaction(async (client) => {
      await client.query(`INSERT INTO ${ITEMS} VALUES (70, 'kept-with-savepoint')`);
      await client.query('SAVEPOINT s');
      await client.query(`INSERT INTO ${ITEMS} VALUES (1, 'duplicate')`).catch(() => client.query('ROLLBACK TO SAVEPOINT s'));
      return 'committed';
    });
    expect(recovered).toBe('committed');
    expect(await notes()).toContain('kept-with-savepoint');

    const error = await rejectionOf(
      pool.withTransaction(async (client) => {
        await client.query('SAVEPOINT s');
        await client.query(`INSERT INTO ${ITEMS} VALUES (1, 'duplicate')`).catch(() => client.query('ROLLBACK TO SAVEPOINT s'));
        await client.query(`INSERT INTO ${ITEMS} VALUES (71, NULL)`).catch(() => {}); // 23502 aborts it
        await client.query('SELECT 1').catch(() => {}); // 25P02: already aborted
      }),
    );
    expect(error).toBeInstanceOf(TransactionRolledBackError);
    expect((error.cause as { code?: string }).code).toBe('23502');
  });

  it('errors caught by an earlier transaction on the same client are not blamed on the next one', async () => {
    const pool = db.pool({ max: 1 });
    await rejectionOf(pool.withTransaction((client) => client.query(`INSERT INTO ${ITEMS} VALUES (1, 'duplicate')`).catch(() => 'ignored')));
    expect(await pool.withTransaction(async (client) => (await client.query(`INSERT INTO ${ITEMS} VALUES (50, 'clean-next') RETURNING id`)).rows[0].id)).toBe(50);
    expect(await notes()).toContain('clean-next');
  });

  it('a transaction without errors still commits and returns the callback value', async () => {
    const pool = db.pool({ max: 1 });
    expect(await pool.withTransaction(async (client) => (await client.query(`INSERT INTO ${ITEMS} VALUES (60, 'committed') RETURNING id`)).rows[0].id)).toBe(60);
    expect(await notes()).toContain('committed');
  });
});
