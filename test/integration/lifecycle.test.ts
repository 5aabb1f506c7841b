// The server goes away under a live pool (FAULTS.md F10, F11, F17): a fast restart under
// load, a stop then a start, and a frozen server (docker pause). The pool is never
// restarted: it must heal by itself.
//
// Each block runs only for providers that can do it to the server (harness
// PROVIDER_CAPABILITIES): restart and stop/start for testcontainers and embedded, pause for
// testcontainers only. Under other providers vitest reports them as skipped.
import { describe, expect, it } from 'vitest';
import { isConnectionFatal } from '../../src/adapters/postgres/index.js';
import { AcquireTimeoutError, CircuitOpenError, PoolError } from '../../src/index.js';
import { rejectionOf, sleep, usePostgres, waitFor } from './harness.js';
import { PROVIDER_CAPABILITIES } from './providers.js';

const db = usePostgres();

interface Op {
  readonly start: number;
  readonly end: number;
  readonly error?: unknown;
}

describe.runIf(PROVIDER_CAPABILITIES.restart)('fast restart under load (F10)', () => {
  it('in-flight work may fail; once the server is back every operation succeeds, with the same pool', async () => {
    const max = 5;
    const pool = db.pool({ max, acquireTimeoutMs: 10_000, retry: { minTimeoutMs: 50, maxTimeoutMs: 500 } });
    let peak = 0;
    const watch = setInterval(() => {
      const s = pool.stats();
      peak = Math.max(peak, s.size + s.creating);
    }, 2);
    const ops: Op[] = [];
    let stop = false;
    const worker = async (): Promise<void> => {
      while (!stop) {
        const start = performance.now();
        try {
          await pool.query('SELECT pg_sleep(0.02)');
          ops.push({ start, end: performance.now() });
        } catch (error) {
          ops.push({ start, end: performance.now(), error });
          await sleep(20);
        }
      }
    };
    // 8 workers on max 5 (1.6x oversubscribed), plus 2 long queries that the restart cuts.
    const workers = Array.from({ length: 8 }, worker);
    await sleep(200);
    const long = [0, 1].map(() => rejectionOf(pool.query('SELECT pg_sleep(10)')));
    await sleep(200);
    expect(ops.length).toBeGreaterThan(0);
    expect(ops.every((op) => op.error === undefined)).toBe(true);

    const restartAt = performance.now();
    await db.restart();
    const upAt = performance.now(); // the server accepts connections again
    await sleep(3000);
    stop = true;
    await Promise.all(workers);
    clearInterval(watch);

    // The long queries were cut by the shutdown with a connection-fatal error.
    for (const error of await Promise.all(long)) expect(isConnectionFatal(error)).toBe(true);
    const failures = ops.filter((op) => op.error !== undefined);
    const describeOp = (op: Op): string =>
      `${Math.round(op.start - restartAt)}..${Math.round(op.end - restartAt)} ms: ${(op.error as Error).name} ${(op.error as { code?: string }).code ?? ''} ${(op.error as Error).message}`;
    // Every failure is a typed pool error or a connection-fatal driver error, and it
    // started before the server was back (in flight, or waiting during the outage).
    for (const op of failures) {
      expect(op.error instanceof PoolError || isConnectionFatal(op.error), describeOp(op)).toBe(true);
    }
    // I7: every operation that starts 2 s after the server accepts connections succeeds.
    const late = ops.filter((op) => op.start >= upAt + 2000);
    expect(late.length).toBeGreaterThan(10);
    expect(late.filter((op) => op.error !== undefined).map(describeOp)).toEqual([]);
    // Failures caused by the restart itself are bounded by what was in flight (8 workers):
    // acquires waiting through the outage are served when it ends, or refused fast by the
    // circuit breaker while it is open.
    const driverFailures = failures.filter((op) => !(op.error instanceof CircuitOpenError));
    expect(driverFailures.length, driverFailures.map(describeOp).join('\n')).toBeLessThanOrEqual(8);
    // I1: nobody waited past the acquire deadline (plus the 20 ms query and some slack).
    expect(Math.max(...ops.map((op) => op.end - op.start))).toBeLessThan(10_000 + 500);
    // I2 throughout, and the pool matches the server afterwards.
    expect(peak).toBeLessThanOrEqual(max);
    await waitFor('server sessions == pool.size', async () => (await db.sessions(pool.app)) === pool.stats().size, { timeoutMs: 2000 });
    console.log(
      `[lifeguard] restart under load: ${ops.length} operations, ${failures.length} failed (${failures.length - driverFailures.length} refused by the open circuit), ` +
        `server down for ${Math.round(upAt - restartAt)} ms, created ${pool.stats().created}`,
    );
  });
});

describe.runIf(PROVIDER_CAPABILITIES.stopStart)('server stopped, then started again (F11)', () => {
  it('while it is down, acquires end by their deadline with the connection error as cause; after start the same pool works', async () => {
    const pool = db.pool({ max: 3, acquireTimeoutMs: 1000, retry: { minTimeoutMs: 50, maxTimeoutMs: 300 } });
    await Promise.all([0, 1, 2].map(() => pool.query('SELECT 1')));
    await db.stop();
    try {
      for (let i = 0; i < 3; i++) {
        const started = performance.now();
        const error = await rejectionOf(pool.query('SELECT 1'));
        const elapsed = performance.now() - started;
        expect(elapsed).toBeLessThan(1000 + 200); // I1
        expect(error instanceof AcquireTimeoutError || error instanceof CircuitOpenError, `${error.name}: ${error.message}`).toBe(true);
        expect(isConnectionFatal(error.cause), String(error.cause)).toBe(true); // ECONNREFUSED and the like
      }
      // The idle clients the stop killed were evicted, never handed out.
      expect(pool.stats().size).toBe(0);
    } finally {
      await db.start();
    }
    const startedAt = performance.now();
    await waitFor('the pool to work again', async () => (await pool.query<{ one: number }>('SELECT 1 AS one')).rows[0]!.one === 1, {
      timeoutMs: 5000,
      everyMs: 50,
    });
    expect(performance.now() - startedAt).toBeLessThan(2500); // I7
    const results = await Promise.all(Array.from({ length: 30 }, () => pool.query('SELECT 1')));
    expect(results).toHaveLength(30);
  });
});

describe.runIf(PROVIDER_CAPABILITIES.pause)('frozen server: docker pause (F17)', () => {
  it('acquires end at their deadline instead of hanging; after unpause the same pool works again', async () => {
    const pool = db.pool({ max: 2, pingIfIdleMs: 0, pingTimeoutMs: 300, createTimeoutMs: 500, acquireTimeoutMs: 1000, circuitBreaker: false });
    await Promise.all([pool.query('SELECT 1'), pool.query('SELECT 1')]);
    // Under load one query may be served by the other's connection while the second create
    // is still finishing; a create that completes just as the server freezes would be handed
    // out unpinged (fresh) and its query would wait for the thaw. Freeze a quiet pool.
    await waitFor('no create in flight', () => pool.stats().creating === 0 || undefined);
    await db.pause();
    try {
      const settled = await Promise.all(
        [0, 1, 2].map(async () => {
          const started = performance.now();
          const error = await rejectionOf(pool.query('SELECT 1'));
          return { error, elapsed: performance.now() - started };
        }),
      );
      for (const { error, elapsed } of settled) {
        expect(error, `${error.name}: ${error.message}`).toBeInstanceOf(AcquireTimeoutError);
        expect(elapsed).toBeGreaterThanOrEqual(990);
        expect(elapsed).toBeLessThan(1000 + 150); // I1: never later than the deadline + 100 ms (+ slack)
      }
    } finally {
      await db.unpause();
    }
    await waitFor('the pool to work again', async () => (await pool.query<{ one: number }>('SELECT 1 AS one')).rows[0]!.one === 1, {
      timeoutMs: 5000,
      everyMs: 50,
    });
    expect(pool.stats().size).toBeLessThanOrEqual(2);
  });

  it('a query running when the server freezes is bounded by queryTimeoutMs, and its connection destroyed', async () => {
    const pool = db.pool({ max: 1, queryTimeoutMs: 500 });
    await pool.query('SELECT 1');
    const lease = await pool.acquire();
    const client = lease.resource;
    await db.pause();
    try {
      const started = performance.now();
      const error = await rejectionOf(client.query('SELECT 1'));
      expect(error.message).toMatch(/Query read timeout/);
      expect(performance.now() - started).toBeLessThan(1500);
      await lease.release();
      expect(pool.stats().destroyedByReason.broken).toBe(1);
    } finally {
      await db.unpause();
    }
    const next = await pool.withConnection((c) => c);
    expect(next).not.toBe(client);
  });
});
