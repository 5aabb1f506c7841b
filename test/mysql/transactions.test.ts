// withTransaction on MariaDB: commit and rollback checked on the server, isolation and
// READ ONLY applied, re-runs after deadlocks, and a deadlock the callback swallowed reported
// as a rollback, never as a commit.
import type { RowDataPacket } from 'mysql2';
import { afterEach, describe, expect, it } from 'vitest';
import { createMysqlPool, TransactionRolledBackError, type MysqlPool, type MysqlPoolConfig } from '../../src/adapters/mysql/index.js';
import { InvalidPoolOptionError } from '../../src/index.js';
import { rejectionOf, useMariaDb } from './harness.js';

const db = useMariaDb();
const pools: MysqlPool[] = [];
afterEach(async () => {
  await Promise.all(pools.splice(0).map((pool) => pool.close()));
});

async function poolFor(label: string, options: Partial<MysqlPoolConfig> = {}): Promise<MysqlPool> {
  const account = await db.user(label);
  const pool = createMysqlPool({ ...db.connection(account), max: 4, ...options });
  pools.push(pool);
  return pool;
}

async function accounts(): Promise<string> {
  const name = `${db.database}.${db.table('tx')}`;
  await db.admin(`CREATE TABLE ${name} (id int PRIMARY KEY, balance int NOT NULL) ENGINE=InnoDB`);
  await db.admin(`INSERT INTO ${name} VALUES (1, 100), (2, 100)`);
  return name;
}

const balances = async (t: string): Promise<number[]> => (await db.admin<RowDataPacket[]>(`SELECT balance FROM ${t} ORDER BY id`)).map((r) => r.balance as number);

describe('withTransaction', () => {
  it('commits what the callback did and returns its value; rolls back when it throws', async () => {
    const t = await accounts();
    const pool = await poolFor('commit');
    const value = await pool.withTransaction(async (connection) => {
      await connection.query(`UPDATE ${t} SET balance = balance - 10 WHERE id = 1`);
      await connection.query(`UPDATE ${t} SET balance = balance + 10 WHERE id = 2`);
      return 'moved';
    });
    expect(value).toBe('moved');
    expect(await balances(t)).toEqual([90, 110]);
    const boom = new Error('boom');
    await expect(
      pool.withTransaction(async (connection) => {
        await connection.query(`UPDATE ${t} SET balance = 0 WHERE id = 1`);
        throw boom;
      }),
    ).rejects.toBe(boom);
    expect(await balances(t)).toEqual([90, 110]);
    expect(pool.stats().destroyed).toBe(0);
  });

  it('applies the isolation level and READ ONLY to the transaction', async () => {
    const t = await accounts();
    const pool = await poolFor('isolation');
    const level = await pool.withTransaction(
      async (connection) => {
        await connection.query(`SELECT * FROM ${t} FOR UPDATE`);
        // INNODB_TRX needs the PROCESS privilege: the admin reads the pool connection's transaction.
        const rows = await db.admin<RowDataPacket[]>('SELECT trx_isolation_level AS level FROM information_schema.INNODB_TRX WHERE trx_mysql_thread_id = ?', [connection.threadId]);
        return rows[0]?.level;
      },
      { isolation: 'serializable' },
    );
    expect(level).toBe('SERIALIZABLE');
    const write = await rejectionOf(pool.withTransaction((connection) => connection.query(`UPDATE ${t} SET balance = 1`), { readOnly: true }));
    expect(write).toMatchObject({ errno: 1792 });
    expect(await balances(t)).toEqual([100, 100]);
  });

  it('refuses unknown options and levels with a clear error', async () => {
    const pool = await poolFor('options');
    await expect(pool.withTransaction(async () => {}, { isolation: 'snapshot' as never })).rejects.toThrow(InvalidPoolOptionError);
    await expect(pool.withTransaction(async () => {}, { retry: { retries: -1 } })).rejects.toThrow(/Expected `retry.retries` to be an integer >= 0/);
    await expect(pool.withTransaction(async () => {}, { isolaton: 'serializable' } as never)).rejects.toThrow(/Unknown option `isolaton`/);
  });

  it('re-runs both sides of a deadlock with retry: both transfers end up applied once', async () => {
    const t = await accounts();
    const pool = await poolFor('deadlock');
    let attempts = 0;
    let release!: () => void;
    const bothLocked = new Promise<void>((resolve) => (release = resolve));
    let locked = 0;
    const transfer = (first: number, second: number) =>
      pool.withTransaction(
        async (connection) => {
          attempts++;
          await connection.query(`UPDATE ${t} SET balance = balance - 1 WHERE id = ?`, [first]);
          // The first attempts meet in the middle: each holds one row and wants the other.
          if (++locked === 2) release();
          await Promise.race([bothLocked, new Promise((resolve) => setTimeout(resolve, 500))]);
          await connection.query(`UPDATE ${t} SET balance = balance + 1 WHERE id = ?`, [second]);
        },
        { retry: true },
      );
    await Promise.all([transfer(1, 2), transfer(2, 1)]);
    expect(attempts).toBeGreaterThanOrEqual(3);
    expect(await balances(t)).toEqual([100, 100]);
  });

  it('a deadlock the callback caught is reported as TransactionRolledBackError, not as a commit', async () => {
    const t = await accounts();
    const pool = await poolFor('swallowed');
    const holder = await db.adminConnection();
    const scratch = `${db.database}.${db.table('heavy')}`;
    await db.admin(`CREATE TABLE ${scratch} (id int AUTO_INCREMENT PRIMARY KEY, v int) ENGINE=InnoDB`);
    await holder.query('START TRANSACTION');
    // InnoDB rolls back the transaction that changed fewer rows: the holder changes many, so the pool's is the victim.
    await holder.query(`INSERT INTO ${scratch} (v) SELECT seq FROM seq_1_to_200`);
    await holder.query(`UPDATE ${t} SET balance = balance + 1 WHERE id = 2`);
    const victim = pool.withTransaction(async (connection) => {
      await connection.query(`UPDATE ${t} SET balance = balance - 50 WHERE id = 1`);
      try {
        // Blocks on row 2; the holder then wants row 1: InnoDB picks one of them as the victim.
        await connection.query(`UPDATE ${t} SET balance = balance + 50 WHERE id = 2`);
      } catch {
        // Swallowed, as careless code does.
      }
    });
    // Observed from the start: the victim can fail while the holder's statement is still running.
    const settledVictim = rejectionOf(victim).catch(() => undefined);
    await new Promise((resolve) => setTimeout(resolve, 200));
    const holderDone = holder.query(`UPDATE ${t} SET balance = balance WHERE id = 1`).then(
      () => 'ok',
      (error: { errno?: number }) => error.errno,
    );
    const outcome = await settledVictim;
    const holderOutcome = await holderDone;
    await holder.query('ROLLBACK');
    expect(holderOutcome).toBe('ok');
    expect(outcome).toBeInstanceOf(TransactionRolledBackError);
    expect(outcome).toMatchObject({ code: 'POOL_TX_ROLLED_BACK' });
    expect(outcome?.message).toMatch(/error 1213/);
    // Nothing of the pool's transaction was kept (the holder rolled back its own).
    expect(await balances(t)).toEqual([100, 100]);
    expect(pool.stats().destroyed).toBe(0);
  });
});
