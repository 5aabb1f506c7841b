// lifeguard/pg's Pool as code written for pg.Pool uses it, on a real PostgreSQL: pg's
// surface with pg-pool's meanings, and lifeguard's protections underneath.
import { createRequire } from 'node:module';
import diagnostics from 'node:diagnostics_channel';
import pg from 'pg';
import { afterEach, describe, expect, it } from 'vitest';
import dropIn, { Pool, type PoolConfig } from '../../src/adapters/pg/index.js';
import { CHANNELS, toPrometheusText, type AcquireEndEvent } from '../../src/index.js';
import { usePostgres, waitFor } from './harness.js';

// pg-cursor ships no types: the little of it used here.
interface CursorInstance<R> extends pg.Submittable {
  read(rows: number): Promise<R[]>;
  close(): Promise<void>;
}
const Cursor = createRequire(import.meta.url)('pg-cursor') as new <R = Record<string, unknown>>(text: string, values?: unknown[]) => CursorInstance<R>;

const db = usePostgres();

const pools = new Set<Pool>();
afterEach(async () => {
  await Promise.all([...pools].map((pool) => (pool.closed ? undefined : pool.end().catch(() => {}))));
  pools.clear();
});

/** pg sets it on connect; @types/pg leaves it out. */
const pidOf = (client: pg.PoolClient): number => (client as unknown as { processID: number }).processID;

function makePool(config: PoolConfig = {}): Pool {
  const pool = new Pool({ ...db.connection(), application_name: db.appName('dropin'), ...config });
  pools.add(pool);
  return pool;
}

describe('lifeguard/pg Pool: what ORMs check', () => {
  it('is instanceof pg.Pool, named Pool, and the default export is pg with this Pool', () => {
    const pool = makePool();
    expect(pool).toBeInstanceOf(pg.Pool);
    expect(pool.constructor.name).toContain('Pool');
    expect(dropIn.Pool).toBe(Pool);
    expect(dropIn.Client).toBe(pg.Client);
    expect(dropIn.types).toBe(pg.types);
  });

  it('keeps pg-pool options with their defaults, and hides the password from a console.log', () => {
    const pool = makePool({ max: 3 });
    expect(pool.options.max).toBe(3);
    expect(pool.options.idleTimeoutMillis).toBe(10_000);
    expect(Object.keys(pool.options)).not.toContain('password');
    expect(pool.stats().max).toBe(3);
  });
});

describe('lifeguard/pg Pool: connect, release, query, end', () => {
  it('connect() hands out the real pg.Client, the same object on each checkout, with release()', async () => {
    const pool = makePool({ max: 1 });
    const first = await pool.connect();
    expect(first).toBeInstanceOf(pg.Client);
    expect(typeof pidOf(first)).toBe('number');
    first.release();
    expect(() => first.release()).toThrow('Release called on client which has already been released to the pool.');
    const second = await pool.connect();
    expect(second).toBe(first);
    second.release();
  });

  it('connect(callback) gives (undefined, client, release)', async () => {
    const pool = makePool();
    const [error, client, release] = await new Promise<[unknown, pg.PoolClient | undefined, (e?: unknown) => void]>((resolve) =>
      pool.connect((e, c, r) => resolve([e, c, r])),
    );
    expect(error).toBeUndefined();
    const { rows } = await client!.query('SELECT 1 AS one');
    expect(rows).toEqual([{ one: 1 }]);
    release();
  });

  it('release(err) and release(true) destroy the client', async () => {
    const pool = makePool({ max: 1 });
    const client = await pool.connect();
    const removed = new Promise((resolve) => pool.once('remove', resolve));
    client.release(true);
    expect(await removed).toBe(client);
    const next = await pool.connect();
    expect(next).not.toBe(client);
    const removedNext = new Promise((resolve) => pool.once('remove', resolve));
    next.release(new Error('done with it'));
    await removedNext;
    expect(pool.totalCount).toBe(0);
  });

  it('query: promise, callback, params, config object, rowMode array, and errors', async () => {
    const pool = makePool();
    expect((await pool.query('SELECT $1::int AS n', [7])).rows).toEqual([{ n: 7 }]);
    expect((await pool.query({ text: 'SELECT $1::text AS t', values: ['x'], rowMode: 'array' })).rows).toEqual([['x']]);
    const viaCallback = await new Promise<[unknown, unknown]>((resolve) => pool.query('SELECT 2 AS two', (e, r) => resolve([e, r.rows])));
    expect(viaCallback).toEqual([undefined, [{ two: 2 }]]);
    const withParams = await new Promise<unknown>((resolve) => pool.query('SELECT $1::int AS n', [3], (_e, r) => resolve(r.rows)));
    expect(withParams).toEqual([{ n: 3 }]);
    await expect(pool.query('SELECT * FROM no_such_table')).rejects.toMatchObject({ code: '42P01' });
    const err = await new Promise<Error>((resolve) => pool.query('SELEC 1', (e) => resolve(e)));
    expect(err).toMatchObject({ code: '42601' });
    // An SQL error leaves the connection fine: it is reused, not destroyed.
    expect(pool.stats().destroyed).toBe(0);
  });

  it('query(submittable) runs a pg-cursor on a leased client and gives it back when closed', async () => {
    const pool = makePool({ max: 1 });
    const cursor = pool.query(new Cursor<{ n: number }>('SELECT generate_series(1, 5) AS n'));
    const rows = await cursor.read(10);
    expect(rows.map((r) => r.n)).toEqual([1, 2, 3, 4, 5]);
    await cursor.close();
    expect((await pool.query('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
  });

  it('counts: totalCount, idleCount, waitingCount, expiredCount', async () => {
    const pool = makePool({ max: 2 });
    const a = await pool.connect();
    const b = await pool.connect();
    const waiting = pool.connect();
    await new Promise((resolve) => setImmediate(resolve));
    expect([pool.totalCount, pool.idleCount, pool.waitingCount, pool.expiredCount]).toEqual([2, 0, 1, 0]);
    a.release();
    const c = await waiting;
    c.release();
    b.release();
    expect([pool.totalCount, pool.idleCount, pool.waitingCount]).toEqual([2, 2, 0]);
  });

  it('end(): ending/ended, end(cb), a second end() and use after end() fail as in pg-pool', async () => {
    const pool = makePool();
    await pool.query('SELECT 1');
    expect([pool.ending, pool.ended]).toEqual([false, false]);
    const ended = new Promise<unknown>((resolve) => (pool.end as (cb: (e?: Error) => void) => void)((e) => resolve(e)));
    expect(pool.ending).toBe(true);
    expect(await ended).toBeUndefined();
    expect(pool.ended).toBe(true);
    await expect(pool.end()).rejects.toThrow('Called end on pool more than once');
    await expect(pool.connect()).rejects.toThrow('Cannot use a pool after calling end on the pool');
    await expect(pool.query('SELECT 1')).rejects.toThrow('Cannot use a pool after calling end on the pool');
    await waitFor('no session of the pool left on the server', async () => (await db.sessions(pool.options.application_name!)) === 0, { timeoutMs: 3000 });
  });
});

describe('lifeguard/pg Pool: events', () => {
  it('connect, acquire, release and remove, with the client', async () => {
    const pool = makePool({ max: 1 });
    const seen: string[] = [];
    for (const name of ['connect', 'acquire', 'remove'] as const) pool.on(name, (client: unknown) => seen.push(`${name}:${client instanceof pg.Client}`));
    pool.on('release', (error: unknown, client: unknown) => seen.push(`release:${String(error)}:${client instanceof pg.Client}`));
    await pool.query('SELECT 1');
    const client = await pool.connect();
    const removed = new Promise((resolve) => pool.once('remove', resolve));
    client.release(true);
    await removed;
    expect(seen).toEqual(['connect:true', 'acquire:true', 'release:undefined:true', 'acquire:true', 'release:true:true', 'remove:true']);
  });

  it('acquire once per connect() and per query()', async () => {
    const pool = makePool({ max: 10 });
    let acquired = 0;
    pool.on('acquire', () => acquired++);
    await Promise.all(
      Array.from({ length: 10 }, async () => {
        const client = await pool.connect();
        client.release();
        await pool.query('SELECT now()');
      }),
    );
    expect(acquired).toBe(20);
  });

  it("an idle client's error is the pool's 'error' (err, client), and without a listener nothing crashes", async () => {
    const pool = makePool({ max: 1 });
    const client = await pool.connect();
    client.release();
    const heard = new Promise<[Error, unknown]>((resolve) => pool.once('error', (e, c) => resolve([e, c])));
    await db.admin('SELECT pg_terminate_backend($1)', [pidOf(client)]);
    const [error, from] = await heard;
    expect(from).toBe(client);
    expect(error.message).toMatch(/terminat/i);
    expect((await pool.query('SELECT 1 AS ok')).rows).toEqual([{ ok: 1 }]);

    // No listener: the dead idle client is replaced, and the process is fine (the harness checks for uncaught errors).
    const quiet = makePool({ max: 1 });
    const c2 = await quiet.connect();
    c2.release();
    // Listening first: the client can be gone before the admin query's answer arrives.
    const removed = new Promise((resolve) => quiet.once('remove', resolve));
    await db.admin('SELECT pg_terminate_backend($1)', [pidOf(c2)]);
    await removed;
    expect((await quiet.query('SELECT 1 AS ok')).rows).toEqual([{ ok: 1 }]);
  });
});

describe('lifeguard/pg Pool: what lifeguard adds under pg.Pool', () => {
  it('a client released inside an open transaction is destroyed, never handed to the next borrower', async () => {
    const pool = makePool({ max: 1 });
    const client = await pool.connect();
    await client.query('BEGIN');
    client.release();
    const next = await pool.connect();
    expect(next).not.toBe(client);
    expect((await next.query('SELECT now() = statement_timestamp() AS fresh')).rows[0].fresh).toBe(true);
    next.release();
  });

  it('connectionTimeoutMillis bounds a checkout with a typed error that still says "timeout exceeded when trying to connect"', async () => {
    const pool = makePool({ max: 1, connectionTimeoutMillis: 200 });
    const held = await pool.connect();
    const error = await pool.connect().catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'POOL_ACQUIRE_TIMEOUT' });
    expect((error as Error).message).toMatch(/^timeout exceeded when trying to connect: Timed out after 200 ms/);
    expect((error as Error).stack!.split('\n')[0]).toMatch(/^AcquireTimeoutError: timeout exceeded when trying to connect: Timed out after/);
    held.release();
  });

  it('a failed connect rejects with pg\'s own error (SQLSTATE kept), not a wrapper', async () => {
    const pool = makePool({ password: 'wrong-password', user: 'no_such_user_lifeguard' });
    const error = await pool.connect().catch((e: unknown) => e);
    expect(error).toMatchObject({ code: expect.stringMatching(/^28/) });
    expect(String((error as Error).message)).not.toContain('wrong-password');
  });

  it('maxUses retires a client after that many checkouts', async () => {
    const pool = makePool({ max: 1, maxUses: 2 });
    const pids = [];
    for (let i = 0; i < 4; i++) pids.push((await pool.query('SELECT pg_backend_pid() AS pid')).rows[0].pid);
    expect(pids[0]).toBe(pids[1]);
    expect(pids[2]).toBe(pids[3]);
    expect(pids[1]).not.toBe(pids[2]);
    expect(pool.stats().destroyedByReason.maxUses).toBe(2);
  });

  it('onConnect runs on each new client before it is used; its error fails that connect at once', async () => {
    const pool = makePool({ onConnect: async (client) => void (await client.query("SET application_name = 'from-onconnect'")) });
    expect((await pool.query('SHOW application_name')).rows[0].application_name).toBe('from-onconnect');
    const failing = makePool({ onConnect: () => Promise.reject(new Error('connect hook error')), connectionTimeoutMillis: 5000 });
    const started = performance.now();
    await expect(failing.connect()).rejects.toThrow('connect hook error');
    expect(performance.now() - started).toBeLessThan(4000);
  });

  it('run({ signal, timeoutMs }) reaches checkouts made anywhere inside it', async () => {
    const pool = makePool({ max: 1 });
    const held = await pool.connect();
    const controller = new AbortController();
    const inside = pool.run({ signal: controller.signal }, () => pool.query('SELECT 1'));
    setTimeout(() => controller.abort(new Error('request aborted')), 50);
    await expect(inside).rejects.toThrow('request aborted');
    const timed = await pool.run({ timeoutMs: 100 }, () => pool.query('SELECT 1').catch((e: unknown) => e));
    expect(timed).toMatchObject({ code: 'POOL_ACQUIRE_TIMEOUT' });
    held.release();
    expect(() => pool.run({ timeoutMs: -1 }, () => 1)).toThrow('Expected `timeoutMs` to be a number of milliseconds > 0');
  });

  it('stats(), health(), withTransaction() work on it', async () => {
    const pool = makePool();
    const table = db.table('dropin_tx');
    await pool.query(`CREATE TABLE ${table} (n int)`);
    await pool.withTransaction(async (client) => void (await client.query(`INSERT INTO ${table} VALUES (1)`)));
    expect((await pool.query(`SELECT count(*)::int AS n FROM ${table}`)).rows[0].n).toBe(1);
    expect(pool.health().status).toBe('ok');
    expect(pool.stats().acquired).toBeGreaterThanOrEqual(3);
  });

  it('the exporters take it, and diagnostics_channel events name the Pool object users hold', async () => {
    const pool = makePool();
    const seen: unknown[] = [];
    const listener = (message: unknown): void => void seen.push((message as AcquireEndEvent).pool);
    diagnostics.subscribe(CHANNELS.acquireEnd, listener);
    try {
      await pool.query('SELECT 1');
    } finally {
      diagnostics.unsubscribe(CHANNELS.acquireEnd, listener);
    }
    expect(seen).toContain(pool);
    const text = toPrometheusText([{ pool, name: 'orm' }]);
    expect(text).toMatch(/lifeguard_pool_acquired_total\{pool_name="orm"\} 1/);
  });

  it('refuses what it cannot honour, naming the option', () => {
    expect(() => new Pool({ Client: class NotPg {} as never })).toThrow(/Expected `Client` to be pg.Client or a subclass/);
    expect(() => new Pool({ idleTimeoutMillis: 5, idleTimeoutMs: 5 })).toThrow(/either `idleTimeoutMillis`.*or `idleTimeoutMs`/);
    expect(() => new Pool({ max: 0 })).toThrow('Expected `max` to be an integer >= 1, got 0');
    expect(() => new Pool({ connectionTimeoutMillis: -1 })).toThrow('Expected `connectionTimeoutMillis` to be a number >= 0');
    expect(() => new Pool({ maxUses: 0 })).toThrow('Expected `maxUses` to be an integer >= 1 or Infinity, got 0');
    expect(() => new Pool({ nonsense: 1 } as never)).toThrow(/Unknown option `nonsense`/);
  });
});
