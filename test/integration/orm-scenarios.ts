// The same scenarios for every ORM (orm-<name>.test.ts): the ORM as its users write it, on
// lifeguard/pg's Pool, against a real PostgreSQL. Each file says how its ORM is plugged in
// (an OrmUnderTest); the assertions here are about what lifeguard adds underneath.
//
// Each file gets a schema of its own holding `account (id serial, name text)`, and reaches
// it through search_path (Prisma, which qualifies its tables, through its `schema` option),
// so a shared DATABASE_URL server can hold several runs at once.
import pg from 'pg';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { Pool, PoolConfig } from '../../src/adapters/pg/index.js';
import { rejectionOf, sleep, waitFor, type TestDatabase } from './harness.js';

/** A row shape the ORMs return for raw SQL, normalised by each file. */
export type Row = Record<string, unknown>;

/** The ORM's transaction handle, as the scenarios use it. */
export interface OrmTransaction {
  /** Insert an account through the ORM's query builder (or model API). */
  insert(name: string): Promise<void>;
  /** Raw SQL through the ORM's own raw-SQL API, on the transaction's connection. */
  raw(sql: string): Promise<Row[]>;
}

/** One ORM instance on one pool. */
export interface OrmSession extends OrmTransaction {
  /** The pool the ORM runs on (for TypeORM, the one it built from `driver`). */
  readonly pool: pg.Pool;
  /** Account names through the ORM's query builder (or model API), by id. */
  names(): Promise<string[]>;
  /** The ORM's transaction API: commit when `fn` resolves, roll back when it throws. */
  transaction<R>(fn: (tx: OrmTransaction) => Promise<R>): Promise<R>;
  /** Shut down as the ORM's documentation says (and end the pool where the ORM does not). */
  close(): Promise<void>;
}

export interface OrmOpenOptions {
  /** The pool's configuration: connection fields, application_name, search_path, and the scenario's limits. */
  readonly config: PoolConfig;
  /** The schema that holds `account`. */
  readonly schema: string;
  /** 'lifeguard': the ORM on lifeguard/pg's Pool; 'pg': on plain pg.Pool, for comparison. */
  readonly flavour: 'lifeguard' | 'pg';
}

export interface OrmUnderTest {
  readonly name: string;
  open(options: OrmOpenOptions): Promise<OrmSession>;
  /** Whether the ORM's own shutdown (db.destroy(), dataSource.destroy(), …) ends the pool it runs on. */
  readonly shutdownEndsPool: boolean;
  /**
   * A known defect of the ORM, with the reason: when the connection dies inside one of its
   * transactions, it never gives that connection back to the pool.
   */
  readonly keepsConnectionAfterFailedRollback?: string;
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
    // Whole messages on one line: some ORMs start theirs with a blank line and put the driver's words further down.
    const message = String((e as Error).message ?? e).replace(/\s+/g, ' ').trim().slice(0, 400);
    lines.push(`${(e as Error).name ?? typeof e} ${String((e as { code?: unknown }).code ?? '')}: ${message}`);
  }
  return lines.join('\n  caused by ');
}

/** The scenarios, as a describe block for `orm`. */
export function ormScenarios(db: TestDatabase, orm: OrmUnderTest): void {
  let schema: string;
  const sessions = new Set<OrmSession>();
  const held = new Set<pg.PoolClient>();

  beforeAll(async () => {
    // A unique name, dropped with its tables after the file on a shared server.
    schema = db.table(`orm_${orm.name}`);
    db.cleanup(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    await db.admin(`CREATE SCHEMA ${schema}`);
    await db.admin(`CREATE TABLE ${schema}.account (id serial PRIMARY KEY, name text NOT NULL)`);
  });

  beforeEach(async () => {
    await db.admin(`TRUNCATE ${schema}.account RESTART IDENTITY`);
  });

  afterEach(async () => {
    for (const client of held) client.release();
    held.clear();
    await Promise.allSettled([...sessions].map((session) => session.close()));
    sessions.clear();
  });

  /** The ORM on a new pool with its own application_name; closed after the test. */
  async function open(label: string, extra: PoolConfig = {}, flavour: 'lifeguard' | 'pg' = 'lifeguard'): Promise<{ orm: OrmSession; app: string }> {
    const app = db.appName(`${orm.name}-${label}`);
    const config: PoolConfig = { ...db.connection(), application_name: app, options: `-c search_path=${schema}`, max: 3, ...extra };
    const session = await orm.open({ config, schema, flavour });
    sessions.add(session);
    return { orm: session, app };
  }

  /** Take the pool's only connection, so that the ORM's next checkout has to wait. */
  async function holdOnly(pool: pg.Pool): Promise<void> {
    held.add(await pool.connect());
  }

  const serverNames = async (): Promise<string[]> =>
    (await db.admin<{ name: string }>(`SELECT name FROM ${schema}.account ORDER BY id`)).rows.map((r) => r.name);

  describe(`${orm.name} on lifeguard/pg`, () => {
    it('runs its queries on the pool', async () => {
      const { orm: session } = await open('query');
      await session.insert('ada');
      await session.insert('grace');
      expect(await session.names()).toEqual(['ada', 'grace']);
      expect((await session.raw('SELECT 1 + 1 AS two'))[0]).toEqual({ two: 2 });
      expect(session.pool).toBeInstanceOf(pg.Pool);
      expect((session.pool as Pool).stats().acquired).toBeGreaterThanOrEqual(3);
    });

    it('commits a transaction', async () => {
      const { orm: session } = await open('commit');
      const result = await session.transaction(async (tx) => {
        await tx.insert('a');
        await tx.insert('b');
        return 'done';
      });
      expect(result).toBe('done');
      expect(await serverNames()).toEqual(['a', 'b']);
    });

    it('rolls back a transaction whose callback throws, and the error reaches the caller', async () => {
      const { orm: session } = await open('rollback');
      const boom = new Error('changed my mind');
      const error = await rejectionOf(
        session.transaction(async (tx) => {
          await tx.insert('never');
          expect(await tx.raw(`SELECT count(*)::int AS n FROM account`)).toEqual([{ n: 1 }]);
          throw boom;
        }),
      );
      expect(error.message).toContain('changed my mind');
      expect(await serverNames()).toEqual([]);
      // The connection came back clean and is reused: nothing was destroyed.
      expect((session.pool as Pool).stats().destroyed).toBe(0);
      expect(await session.names()).toEqual([]);
    });

    it("destroys a connection the ORM gives back inside a raw BEGIN: the next query never sees the open transaction (plain pg.Pool hands it on)", async () => {
      const { orm: control, app: controlApp } = await open('dirty-pg', { max: 1 }, 'pg');
      const { orm: session, app } = await open('dirty', { max: 1 });
      const fresh = "SELECT now() = statement_timestamp() AS fresh, pg_current_xact_id_if_assigned() IS NULL AS no_xid";

      // Plain pg.Pool: the next queries run inside the transaction the raw BEGIN left open,
      // and what they write stays uncommitted for as long as the connection lives.
      // Raw SQL throughout: an ORM's own insert may wrap itself in BEGIN … COMMIT (MikroORM's
      // flush does), which would commit the transaction left open.
      await control.raw('BEGIN');
      await control.raw("INSERT INTO account (name) VALUES ('left-open')");
      await sleep(5); // so that statement_timestamp() moves past the transaction's start
      expect(await control.raw(fresh)).toEqual([{ fresh: false, no_xid: false }]);
      expect((await db.sessionRows(controlApp)).map((r) => r.state)).toEqual(['idle in transaction']);
      expect(await serverNames()).toEqual([]);

      // lifeguard: the connection released inside BEGIN is destroyed; the next queries run on
      // a new one, each in its own transaction, as the code that made them expects.
      await session.raw('BEGIN');
      await session.raw("INSERT INTO account (name) VALUES ('committed')");
      await sleep(5);
      expect(await session.raw(fresh)).toEqual([{ fresh: true, no_xid: true }]);
      expect((session.pool as Pool).stats().destroyedByReason.broken).toBe(1);
      expect(await serverNames()).toEqual(['committed']);
      await waitFor('no session of this pool left in a transaction', async () => (await db.sessionRows(app)).every((r) => r.state === 'idle'));
    });

    it('a connection terminated inside a transaction: the caller gets an error, nothing crashes, the pool heals', async () => {
      const reported: unknown[] = [];
      const { orm: session, app } = await open('terminated', { leakDetectionMs: 500, onError: (e) => reported.push(e) });
      const pool = session.pool as Pool;
      const error = await rejectionOf(
        session.transaction(async (tx) => {
          await tx.insert('doomed');
          const [row] = await tx.raw('SELECT pg_backend_pid() AS pid');
          await db.admin('SELECT pg_terminate_backend($1)', [row!.pid]);
          await tx.raw('SELECT 1');
        }),
      );
      expect(error, describeChain(error)).toBeInstanceOf(Error);
      // Some ORMs report the failed ROLLBACK rather than the statement's error: either is the dead connection.
      expect(describeChain(error)).toMatch(/terminat|connection|closed|57P01|ECONNRESET|EPIPE|queryable/i);
      // The next query works on a new connection; the transaction's insert never committed.
      expect(await session.names()).toEqual([]);
      await session.insert('after');
      expect(await serverNames()).toEqual(['after']);
      expect(pool.health().status).toBe('ok');
      expect(await db.sessions(app)).toBeGreaterThanOrEqual(1);

      if (orm.keepsConnectionAfterFailedRollback === undefined) {
        // Given back (as broken, or with release(err)) and destroyed: never handed out again.
        expect(pool.stats().destroyed).toBeGreaterThanOrEqual(1);
        expect(pool.stats().leased).toBe(0);
      } else {
        // The ORM never gives the dead connection back: its slot stays taken. lifeguard reports
        // the lease (LeakDetectedError, with the acquire's stack) and close() is bounded and
        // destroys it, where pg.Pool's end() would wait for it forever.
        expect(pool.stats().leased).toBe(1);
        await waitFor('the held connection to be reported', () => reported.some((e) => hasCode(e, 'POOL_LEAK_DETECTED')));
        await pool.close({ timeoutMs: 200 });
        expect(pool.stats().size).toBe(0);
        await waitFor('no session of the pool left on the server', async () => (await db.sessions(app)) === 0, { timeoutMs: 3000 });
      }
      // The harness's afterAll checks that no uncaught exception or unhandled rejection happened.
    });

    it('an acquire deadline (connectionTimeoutMillis) reaches the caller as POOL_ACQUIRE_TIMEOUT', async () => {
      const { orm: session } = await open('deadline', { max: 1, connectionTimeoutMillis: 300 });
      await session.names(); // connected, so the wait below is for the pool, not for a connect
      await holdOnly(session.pool);
      const started = performance.now();
      const error = await rejectionOf(session.names());
      const elapsed = performance.now() - started;
      expect(hasCode(error, 'POOL_ACQUIRE_TIMEOUT'), describeChain(error)).toBe(true);
      expect(elapsed).toBeGreaterThanOrEqual(250);
      expect(elapsed).toBeLessThan(2000);
      for (const client of held) client.release();
      held.clear();
      expect(await session.names()).toEqual([]);
    });

    it('queryTimeoutMs fails a slow query quickly and cancels it on the server', async () => {
      const { orm: session, app } = await open('query-timeout', { queryTimeoutMs: 200 });
      await session.names();
      const started = performance.now();
      const error = await rejectionOf(session.raw('SELECT pg_sleep(5)'));
      expect(performance.now() - started).toBeLessThan(1500);
      expect(describeChain(error)).toMatch(/timeout/i);
      // The connection that ran it was destroyed and its query cancelled: nothing sleeps on the server.
      await waitFor(
        'pg_sleep to stop running on the server',
        async () => (await db.sessionRows(app)).every((r) => !(r.state === 'active' && r.query.includes('pg_sleep'))),
        { timeoutMs: 1000 },
      );
      expect(await session.names()).toEqual([]);
    });

    it('pool.run({ timeoutMs, signal }) applies to the queries the ORM makes inside it', async () => {
      const { orm: session } = await open('run', { max: 1 });
      const pool = session.pool as Pool;
      await session.names();
      await holdOnly(pool);

      const started = performance.now();
      const timedOut = await rejectionOf(pool.run({ timeoutMs: 150 }, () => session.names()));
      expect(hasCode(timedOut, 'POOL_ACQUIRE_TIMEOUT'), describeChain(timedOut)).toBe(true);
      expect(performance.now() - started).toBeLessThan(1500);

      const controller = new AbortController();
      const aborted = pool.run({ signal: controller.signal }, () => session.names());
      setTimeout(() => controller.abort(new Error('client went away')), 50);
      expect(describeChain(await rejectionOf(aborted))).toContain('client went away');

      for (const client of held) client.release();
      held.clear();
      expect(await pool.run({ timeoutMs: 1000 }, () => session.names())).toEqual([]);
    });

    it(`shuts down cleanly: no session left on the server${orm.shutdownEndsPool ? ' (the ORM ends the pool)' : ''}`, async () => {
      const { orm: session, app } = await open('shutdown');
      await Promise.all([session.names(), session.names(), session.insert('x')]);
      expect(await db.sessions(app)).toBeGreaterThanOrEqual(1);
      await session.close();
      sessions.delete(session);
      expect(session.pool.ended).toBe(true);
      expect((session.pool as Pool).closed).toBe(true);
      // A backend leaves pg_stat_activity a moment after its client's socket closed (1 was seen once, on Node 24 in CI).
      await waitFor('no session of the pool left on the server', async () => (await db.sessions(app)) === 0, { timeoutMs: 3000 });
    });
  });
}
