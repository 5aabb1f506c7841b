// The same scenarios for every ORM on MySQL (orm-<name>.test.ts): the ORM as its users write
// it, on lifeguard/mysql2's createPool, against a real MariaDB. Each file says how its ORM is
// plugged in (an OrmUnderTest); the assertions here are about what lifeguard adds underneath.
// The MySQL counterpart of test/integration/orm-scenarios.ts.
//
// Each file has a database of its own (useMariaDb) holding `account (id, name)`; each pool
// logs in as its own user, so db.sessions(user) counts exactly that pool's sessions.
import mysql2 from 'mysql2/promise';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createPool, type Pool, type PoolOptions } from '../../src/adapters/mysql2/index.js';
import { rejectionOf, waitFor } from '../support/wait.js';
import type { Account, TestMariaDb } from './harness.js';

/** A row shape the ORMs return for raw SQL. */
export type Row = Record<string, unknown>;

/** The ORM's transaction handle, as the scenarios use it. */
export interface OrmTransaction {
  /** Insert an account through the ORM's query builder. */
  insert(name: string): Promise<void>;
  /** Raw SQL through the ORM's own raw-SQL API, on the transaction's connection. */
  raw(sql: string): Promise<Row[]>;
}

/** One ORM instance on one pool. */
export interface OrmSession extends OrmTransaction {
  /** The pool the ORM runs on, as a promise pool (for TypeORM, the one it built, through `.promise()`). */
  readonly pool: mysql2.Pool;
  /** Account names through the ORM's query builder, by id. */
  names(): Promise<string[]>;
  /** The ORM's transaction API: commit when `fn` resolves, roll back when it throws. */
  transaction<R>(fn: (tx: OrmTransaction) => Promise<R>): Promise<R>;
  /** Shut down as the ORM's documentation says (and end the pool where the ORM does not). */
  close(): Promise<void>;
}

export interface OrmUnderTest {
  readonly name: string;
  /** The ORM on a pool for `config`: lifeguard's, or mysql2's own for comparison. */
  open(config: PoolOptions, flavour: Flavour): Promise<OrmSession>;
  /** Whether the ORM's own shutdown ends the pool it runs on. */
  readonly shutdownEndsPool: boolean;
}

export type Flavour = 'lifeguard' | 'mysql2';

/** A promise pool for `config`: lifeguard's createPool, or mysql2's. */
export function makePool(config: PoolOptions, flavour: Flavour): mysql2.Pool {
  return flavour === 'lifeguard' ? createPool(config) : mysql2.createPool(config as mysql2.PoolOptions);
}

/** Whether `code` is on `error` or anywhere down its `cause` chain (ORMs wrap driver errors). */
export function hasCode(error: unknown, code: string): boolean {
  for (let e = error, depth = 0; e !== undefined && e !== null && depth < 10; e = (e as { cause?: unknown }).cause, depth++) {
    if ((e as { code?: unknown }).code === code) return true;
  }
  return false;
}

/** `error` and its causes, one line each, for assertion messages. */
export function describeChain(error: unknown): string {
  const lines: string[] = [];
  for (let e = error, depth = 0; e !== undefined && e !== null && depth < 10; e = (e as { cause?: unknown }).cause, depth++) {
    const message = String((e as Error).message ?? e).replace(/\s+/g, ' ').trim().slice(0, 400);
    lines.push(`${(e as Error).name ?? typeof e} ${String((e as { code?: unknown }).code ?? '')}: ${message}`);
  }
  return lines.join('\n  caused by ');
}

/** The scenarios, as a describe block for `orm`. */
export function ormScenarios(db: TestMariaDb, orm: OrmUnderTest): void {
  const sessions = new Set<OrmSession>();
  const pools = new Set<mysql2.Pool>();
  const held = new Set<mysql2.PoolConnection>();

  beforeAll(async () => {
    await db.admin(`CREATE TABLE ${db.database}.account (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(100) NOT NULL) ENGINE=InnoDB`);
  });

  beforeEach(async () => {
    await db.admin(`TRUNCATE ${db.database}.account`);
  });

  afterEach(async () => {
    for (const connection of held) connection.release();
    held.clear();
    await Promise.allSettled([...sessions].map((session) => session.close()));
    sessions.clear();
    await Promise.allSettled([...pools].map((pool) => pool.end()));
    pools.clear();
  });

  /** The ORM on a new lifeguard pool (or mysql2's own), logged in as a user of its own; closed after the test. */
  async function open(label: string, extra: PoolOptions = {}, flavour: Flavour = 'lifeguard') {
    const account: Account = await db.user(`${orm.name}_${label}`.slice(0, 20));
    const session = await orm.open({ ...db.connection(account), connectionLimit: 3, ...extra }, flavour);
    sessions.add(session);
    pools.add(session.pool);
    return { session, pool: session.pool as Pool, user: account.user };
  }

  const serverNames = async (): Promise<string[]> =>
    (await db.admin<{ name: string }[]>(`SELECT name FROM ${db.database}.account ORDER BY id`)).map((r) => r.name);

  describe(`${orm.name} on lifeguard/mysql2`, () => {
    it('runs its queries on the pool', async () => {
      const { session, pool } = await open('query');
      await session.insert('ada');
      await session.insert('grace');
      expect(await session.names()).toEqual(['ada', 'grace']);
      expect((await session.raw('SELECT 1 + 1 AS two'))[0]).toEqual({ two: 2 });
      expect(pool.stats().acquired).toBeGreaterThanOrEqual(3);
    });

    it('commits a transaction', async () => {
      const { session } = await open('commit');
      const result = await session.transaction(async (tx) => {
        await tx.insert('a');
        await tx.insert('b');
        return 'done';
      });
      expect(result).toBe('done');
      expect(await serverNames()).toEqual(['a', 'b']);
    });

    it('rolls back a transaction whose callback throws, and the error reaches the caller', async () => {
      const { session, pool } = await open('rollback');
      const error = await rejectionOf(
        session.transaction(async (tx) => {
          await tx.insert('never');
          expect(await tx.raw('SELECT COUNT(*) AS n FROM account')).toEqual([{ n: 1 }]);
          throw new Error('changed my mind');
        }),
      );
      expect(error.message).toContain('changed my mind');
      expect(await serverNames()).toEqual([]);
      // The connection came back clean and is reused: nothing was destroyed.
      expect(pool.stats().destroyed).toBe(0);
      expect(await session.names()).toEqual([]);
    });

    it("destroys a connection the ORM gives back inside a raw BEGIN: the next query never sees the open transaction (mysql2's pool hands it on)", async () => {
      const { session: control } = await open('dirty2', { connectionLimit: 1 }, 'mysql2');
      await control.raw('BEGIN');
      await control.raw("INSERT INTO account (name) VALUES ('left-open')");
      // mysql2's pool: the next query runs inside the transaction the raw BEGIN left open.
      expect(await control.raw('SELECT @@in_transaction AS t')).toEqual([{ t: 1 }]);
      expect(await serverNames()).toEqual([]);
      await control.raw('ROLLBACK');

      const { session, pool } = await open('dirty', { connectionLimit: 1 });
      await session.raw('BEGIN');
      await session.raw("INSERT INTO account (name) VALUES ('committed')");
      expect(await session.raw('SELECT @@in_transaction AS t')).toEqual([{ t: 0 }]);
      expect(pool.stats().destroyedByReason.broken).toBe(1);
      expect(await serverNames()).toEqual(['committed']);
    });

    it('a connection killed inside a transaction: the caller gets an error, nothing crashes, the pool heals', async () => {
      const { session, pool, user } = await open('killed');
      const error = await rejectionOf(
        session.transaction(async (tx) => {
          await tx.insert('doomed');
          const [row] = await tx.raw('SELECT CONNECTION_ID() AS id');
          await db.killConnection(Number(row!.id));
          await tx.raw('SELECT 1');
        }),
      );
      expect(error, describeChain(error)).toBeInstanceOf(Error);
      // Some ORMs report the failed ROLLBACK rather than the statement's error: either is the dead connection.
      expect(describeChain(error)).toMatch(/closed|lost|killed|interrupted|PROTOCOL_CONNECTION_LOST|ECONNRESET|EPIPE|fatal/i);
      expect(await session.names()).toEqual([]);
      await session.insert('after');
      expect(await serverNames()).toEqual(['after']);
      expect(pool.health().status).toBe('ok');
      expect(pool.stats()).toMatchObject({ leased: 0 });
      expect(pool.stats().destroyed).toBeGreaterThanOrEqual(1);
      expect(await db.sessions(user)).toBeGreaterThanOrEqual(1);
      // The harness's afterAll checks that no uncaught exception or unhandled rejection happened.
    });

    it('the acquire deadline reaches the caller through the ORM as POOL_ACQUIRE_TIMEOUT', async () => {
      const { session, pool } = await open('deadline', { connectionLimit: 1, acquireTimeoutMs: 300 });
      await session.names(); // connected, so the wait below is for the pool, not for a connect
      held.add(await pool.getConnection());
      const started = performance.now();
      const error = await rejectionOf(session.names());
      const elapsed = performance.now() - started;
      expect(hasCode(error, 'POOL_ACQUIRE_TIMEOUT'), describeChain(error)).toBe(true);
      expect(elapsed).toBeGreaterThanOrEqual(250);
      expect(elapsed).toBeLessThan(2000);
      for (const connection of held) connection.release();
      held.clear();
      expect(await session.names()).toEqual([]);
    });

    it('queryTimeoutMs fails a slow query quickly and kills it on the server', async () => {
      const { session, user } = await open('qtimeout', { queryTimeoutMs: 200 });
      await session.names();
      const started = performance.now();
      const error = await rejectionOf(session.raw('SELECT SLEEP(5)'));
      expect(performance.now() - started).toBeLessThan(1500);
      expect(describeChain(error)).toMatch(/timed out/i);
      await waitFor('SLEEP to stop running on the server', async () => {
        const rows = await db.admin<unknown[]>("SELECT ID FROM information_schema.PROCESSLIST WHERE USER = ? AND INFO LIKE 'SELECT SLEEP%'", [user]);
        return rows.length === 0;
      }, { timeoutMs: 2000 });
      expect(await session.names()).toEqual([]);
    });

    it('pool.run({ timeoutMs, signal }) applies to the queries the ORM makes inside it', async () => {
      const { session, pool } = await open('run', { connectionLimit: 1 });
      await session.names();
      held.add(await pool.getConnection());
      const timedOut = await rejectionOf(pool.run({ timeoutMs: 150 }, () => session.names()));
      expect(hasCode(timedOut, 'POOL_ACQUIRE_TIMEOUT'), describeChain(timedOut)).toBe(true);
      const controller = new AbortController();
      const aborted = pool.run({ signal: controller.signal }, () => session.names());
      setTimeout(() => controller.abort(new Error('client went away')), 50);
      expect(describeChain(await rejectionOf(aborted))).toContain('client went away');
      for (const connection of held) connection.release();
      held.clear();
      expect(await pool.run({ timeoutMs: 1000 }, () => session.names())).toEqual([]);
    });

    it(`shuts down cleanly: no session left on the server${orm.shutdownEndsPool ? ' (the ORM ends the pool)' : ''}`, async () => {
      const { session, pool, user } = await open('shutdown');
      await Promise.all([session.names(), session.names(), session.insert('x')]);
      expect(await db.sessions(user)).toBeGreaterThanOrEqual(1);
      await session.close();
      sessions.delete(session);
      expect(pool.closed).toBe(true);
      await waitFor('every session of the pool to end', async () => (await db.sessions(user)) === 0);
    });
  });
}
