// Where node-postgres' own pg-pool suite (test/pg-pool-suite, run by pg-pool-suite.test.ts)
// found lifeguard/pg differing from pg.Pool: each fix pinned here on its own, on a real
// PostgreSQL, in terms of what code written for pg.Pool sees.
import { once } from 'node:events';
import { createServer, type Server, type Socket } from 'node:net';
import pg from 'pg';
import { afterEach, describe, expect, it } from 'vitest';
import { PoolClosedError } from '../../src/index.js';
import { Pool, type PoolConfig } from '../../src/adapters/pg/index.js';
import { rejectionOf, sleep, usePostgres, waitFor } from './harness.js';

const db = usePostgres();

const pools = new Set<Pool>();
const servers = new Set<Server>();
afterEach(async () => {
  await Promise.all([...pools].map((pool) => (pool.closed ? pool.close({ timeoutMs: 2000 }) : pool.end()).catch(() => {})));
  pools.clear();
  for (const server of servers) server.close();
  servers.clear();
});

/** `promise`, or a clear failure after `ms`. */
function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

function makePool(config: PoolConfig = {}): Pool & { app: string } {
  const app = db.appName('compat');
  const pool = new Pool({ ...db.connection(), application_name: app, ...config });
  pools.add(pool);
  return Object.assign(pool, { app });
}

/** The pg internals these tests reach into, as pg-pool's own tests do. */
type Internals = { connection: { stream: Socket } };

describe('end(), as pg-pool ends', () => {
  it('serves the checkouts asked for before it, refuses new ones at once, then closes', async () => {
    const pool = makePool({ max: 2 });
    // Two connect, three wait for them, and one more checkout is held across end().
    const queries = [1, 2, 3, 4, 5].map((n) => pool.query('SELECT $1::int AS n', [n]));
    const held = pool.connect();
    const ended = pool.end();
    expect([pool.ending, pool.closed, pool.ended]).toEqual([true, true, false]);
    expect((await rejectionOf(pool.connect())).message).toBe('Cannot use a pool after calling end on the pool');
    expect((await rejectionOf(pool.query('SELECT 1'))).message).toBe('Cannot use a pool after calling end on the pool');
    expect(await rejectionOf(pool.acquire())).toBeInstanceOf(PoolClosedError);

    expect((await Promise.all(queries)).map((result) => result.rows[0].n)).toEqual([1, 2, 3, 4, 5]);
    const client = await held;
    expect((await client.query('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
    await sleep(50);
    expect(pool.ended).toBe(false); // still waiting for the checked-out client
    client.release();
    await ended;
    expect(pool.ended).toBe(true);
    await waitFor('no session of the pool left on the server', async () => (await db.sessions(pool.app)) === 0, { timeoutMs: 3000 });
  });

  it('a checkout it waits for is still bounded by its own deadline', async () => {
    const pool = makePool({ max: 1, connectionTimeoutMillis: 200 });
    const held = await pool.connect();
    const queued = pool.connect();
    const ended = pool.end();
    const error = await rejectionOf(queued);
    expect(error.code).toBe('POOL_ACQUIRE_TIMEOUT');
    held.release();
    await ended;
    expect(pool.ended).toBe(true);
  });
});

describe("an idle client's error, as pg-pool handles it", () => {
  it("counts the client out during the 'error' event, names it as err.client, and closes its connection politely", async () => {
    const pool = makePool({ max: 2 });
    const client = (await pool.connect()) as pg.PoolClient & Internals;
    client.release();
    const streamEnded = once(client.connection.stream, 'end');
    // Not events.once: it would reject on the pool's 'error' event.
    const removed = new Promise((resolve) => pool.once('remove', resolve));
    const seen: unknown[] = [];
    pool.once('error', (error: Error & { client?: unknown }, from: unknown) => {
      seen.push(pool.totalCount, pool.idleCount, error.client === client, from === client);
    });
    client.emit('error', new Error('on purpose'));
    expect(seen).toEqual([0, 0, true, true]);
    expect([pool.totalCount, pool.idleCount]).toEqual([0, 0]);
    // Its socket was sound: the pool says goodbye (Terminate), and the server's FIN ends the stream.
    await within(streamEnded, 2000, "the stream's end");
    expect(await removed).toBe(client);
    // Counted out once, not again when the pool destroyed it.
    expect([pool.totalCount, pool.idleCount]).toEqual([0, 0]);
    expect(pool.stats().destroyedByReason.broken).toBe(1);
    expect((await pool.query('SELECT 1 AS ok')).rows).toEqual([{ ok: 1 }]);
    expect([pool.totalCount, pool.idleCount]).toEqual([1, 1]);
  });
});

describe("an 'error' on an idle client that pg did not raise", () => {
  it("evicts the client, and its sound connection gets a polite goodbye: the server's FIN ends the stream", async () => {
    const pool = db.pool({ max: 1 });
    const lease = await pool.acquire();
    const client = lease.resource as pg.Client & Internals;
    await lease.release();
    const streamEnded = once(client.connection.stream, 'end');
    client.emit('error', new Error('on purpose'));
    await within(streamEnded, 2000, "the stream's end");
    await waitFor('the eviction', () => pool.stats().destroyedByReason.broken === 1);
    expect((await pool.query('SELECT 1 AS ok')).rows).toEqual([{ ok: 1 }]);
  });
});

describe('a client its borrower ended', () => {
  it('is destroyed as it is released, never handed to the next borrower in the moment before its end event', async () => {
    const pool = makePool({ max: 1 });
    const client = await pool.connect();
    void client.end();
    client.release();
    expect([pool.totalCount, pool.idleCount]).toEqual([0, 0]);
    const fresh = await pool.connect();
    expect(fresh).not.toBe(client);
    expect((await fresh.query('SELECT 1 AS ok')).rows).toEqual([{ ok: 1 }]);
    fresh.release();
  });

  it('the same in createPostgresPool (the adapter judges it)', async () => {
    const pool = db.pool({ max: 1 });
    const lease = await pool.acquire();
    const ended = lease.resource;
    void ended.end();
    void lease.release();
    const fresh = await pool.acquire();
    expect(fresh.resource).not.toBe(ended);
    expect((await fresh.resource.query('SELECT 1 AS ok')).rows).toEqual([{ ok: 1 }]);
    await fresh.release();
    expect(pool.stats().destroyedByReason.broken).toBe(1);
  });
});

describe("pg's pipeline option", () => {
  it('reaches the clients; a client released mid-pipeline is destroyed', async () => {
    const pool = makePool({ max: 1, pipeline: true });
    const client = await pool.connect();
    expect(client.pipeline).toBe(true);
    const results = await Promise.all([1, 2, 3].map((n) => client.query('SELECT $1::int AS n', [n])));
    expect(results.map((result) => result.rows[0].n)).toEqual([1, 2, 3]);
    const inFlight = [client.query('SELECT pg_sleep(0.05)'), client.query('SELECT 1')];
    client.release();
    await Promise.allSettled(inFlight);
    expect(pool.stats().destroyedByReason.broken).toBe(1);
    expect((await pool.query('SELECT 2 AS two')).rows).toEqual([{ two: 2 }]);
    // createPostgresPool takes it too.
    const direct = db.pool({ max: 1, pipeline: true });
    await direct.withConnection((c) => expect(c.pipeline).toBe(true));
  });
});

describe("log: pg-pool's lines", () => {
  it('names each removal as pg-pool does (expended, idle, expired), in the turn that decides it', async () => {
    const messages: unknown[] = [];
    const log = (message: unknown): void => void messages.push(message);
    const expended = makePool({ max: 1, maxUses: 1, log });
    const client = await expended.connect();
    client.release();
    expect(messages).toContain('remove expended client');

    const idle = makePool({ idleTimeoutMillis: 20, log });
    await idle.query('SELECT 1');
    await waitFor('the idle removal', () => messages.includes('remove idle client'), { timeoutMs: 2000 });

    const expiring = makePool({ maxLifetimeSeconds: 1, log });
    await expiring.query('SELECT 1');
    await waitFor('the lifetime removal', () => messages.includes('remove expired client'), { timeoutMs: 3000 });
  });

  it('a log that throws is ignored: checkouts and removals go on', async () => {
    const pool = makePool({ max: 1, maxUses: 1, log: () => {
      throw new Error('log broke');
    } });
    for (let i = 0; i < 3; i++) expect((await pool.query('SELECT 1 AS ok')).rows).toEqual([{ ok: 1 }]);
    expect(pool.stats().destroyedByReason.maxUses).toBe(3);
  });
});

describe('errors nobody awaits', () => {
  /** A server that accepts connections and never answers: connects hang until their timeout. */
  async function silentServer(): Promise<number> {
    const server = createServer(() => {});
    servers.add(server);
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    return (server.address() as { port: number }).port;
  }

  it("go to pg-pool's log, or to lifeguard's onError when given, never to a process warning", async () => {
    const port = await silentServer();
    const warnings: Error[] = [];
    const onWarning = (warning: Error): void => void warnings.push(warning);
    process.on('warning', onWarning);
    try {
      // The caller gives up at 50 ms; the connect made for it fails at 300 ms, with nobody waiting.
      const target = { host: '127.0.0.1', port, user: 'nobody', password: 'x', database: 'none', acquireTimeoutMs: 50, createTimeoutMs: 300 };
      const logged: unknown[][] = [];
      const viaLog = makePool({ ...target, log: (...messages: unknown[]) => void logged.push(messages) });
      expect((await rejectionOf(viaLog.connect())).code).toBe('POOL_ACQUIRE_TIMEOUT');
      await waitFor('the background error in the log', () => logged.find(([message]) => message === 'background error'), { timeoutMs: 2000 });
      expect(logged.find(([message]) => message === 'background error')![1]).toMatchObject({ code: 'POOL_CREATE_TIMEOUT' });

      const reported: unknown[] = [];
      const viaOnError = makePool({ ...target, onError: (error) => void reported.push(error) });
      expect((await rejectionOf(viaOnError.connect())).code).toBe('POOL_ACQUIRE_TIMEOUT');
      await waitFor('the background error in onError', () => reported.length > 0, { timeoutMs: 2000 });
      expect(reported[0]).toMatchObject({ code: 'POOL_CREATE_TIMEOUT' });
      await sleep(20);
      expect(warnings).toEqual([]);
    } finally {
      process.off('warning', onWarning);
    }
  });
});

describe("the 'connect' event", () => {
  it('is emitted only for a client that connected (a pg.Client subclass whose first connect fails, then is retried)', async () => {
    let failures = 1;
    // pg's typings declare connect's overloads, which an override cannot restate: patched on the prototype.
    class FlakyClient extends pg.Client {}
    const connect = pg.Client.prototype.connect as (this: pg.Client, callback: (error?: Error) => void) => void;
    (FlakyClient.prototype as unknown as { connect: typeof connect }).connect = function (callback) {
      if (failures === 0) return connect.call(this, callback);
      failures--;
      process.nextTick(callback, Object.assign(new Error('connect ECONNREFUSED (simulated)'), { code: 'ECONNREFUSED' }));
    };
    const pool = makePool({ Client: FlakyClient });
    const connected: unknown[] = [];
    pool.on('connect', (client) => connected.push(client));
    const client = await pool.connect();
    expect(client).toBeInstanceOf(FlakyClient);
    expect(connected).toEqual([client]);
    expect(pool.stats().createFailed).toBe(1);
    client.release();
  });
});
