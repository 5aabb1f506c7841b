// Durations above 2^31-1 ms (~24.8 days): Node fires such a timer after 1 ms, with a
// TimeoutOverflowWarning. Every duration the pool accepts is honoured exactly (a chain of
// timers); these tests use the real clock and assert only that nothing fires early.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createPool, type Pool } from '../../src/index.js';
import { SystemClock } from '../../src/pool/clock.js';

const DAYS_30 = 30 * 24 * 3600 * 1000;
const wait = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

let warnings: Error[] = [];
const onWarning = (warning: Error): void => {
  warnings.push(warning);
};
beforeEach(() => {
  warnings = [];
  process.on('warning', onWarning);
});
afterEach(() => {
  process.off('warning', onWarning);
  expect(warnings.map((w) => w.name)).not.toContain('TimeoutOverflowWarning');
});

const pools: Pool<object>[] = [];
afterEach(async () => {
  for (const pool of pools.splice(0)) await pool.close({ timeoutMs: 0 });
});
function makePool(options: Omit<Parameters<typeof createPool<object>>[0], 'adapter'>, adapter: Partial<Parameters<typeof createPool<object>>[0]['adapter']> = {}): Pool<object> {
  const pool = createPool<object>({ adapter: { create: async () => ({}), destroy: async () => {}, ...adapter }, ...options });
  pools.push(pool);
  return pool;
}

describe('the system clock chains timers longer than one Node timer', () => {
  it('fires a timer of several chain links no earlier than asked, once', async () => {
    const clock = new SystemClock(20);
    const started = performance.now();
    const firedAt: number[] = [];
    clock.setTimeout(() => firedAt.push(performance.now() - started), 70);
    // Up to 2 s for the first firing (a busy machine delays timers), then 100 ms for a second that must not come.
    for (let waited = 0; firedAt.length === 0 && waited < 2000; waited += 10) await wait(10);
    await wait(100);
    expect(firedAt).toHaveLength(1);
    // Node fires a timer up to ~1 ms before performance.now() says it is due (libuv keeps loop time in whole ms), once per link.
    expect(firedAt[0]).toBeGreaterThanOrEqual(67);
  });

  it('clearTimeout stops a chained timer between links', async () => {
    const clock = new SystemClock(20);
    let fired = false;
    const timer = clock.setTimeout(() => (fired = true), 60);
    await wait(30);
    clock.clearTimeout(timer);
    await wait(80);
    expect(fired).toBe(false);
  });
});

describe('30-day durations are honoured, not fired after 1 ms', () => {
  it('close({ timeoutMs: 30 days }) waits for the lease instead of destroying it', async () => {
    const pool = makePool({});
    const lease = await pool.acquire();
    const resource = lease.resource;
    let closed = false;
    const closing = pool.close({ timeoutMs: DAYS_30 }).then(() => (closed = true));
    await wait(100);
    expect(closed).toBe(false);
    expect(lease.resource).toBe(resource);
    expect(pool.stats()).toMatchObject({ leased: 1, destroyed: 0 });
    await lease.release();
    await closing;
    expect(pool.stats().destroyedByReason.closed).toBe(1);
  });

  it('createTimeoutMs of 30 days lets a 30 ms create finish', async () => {
    const pool = makePool({ createTimeoutMs: DAYS_30 }, { create: () => wait(30).then(() => ({})) });
    const lease = await pool.acquire({ timeoutMs: 5000 });
    await lease.release();
    expect(pool.stats()).toMatchObject({ created: 1, createFailed: 0 });
  });

  it('resetTimeoutMs of 30 days keeps a released resource whose reset takes 30 ms', async () => {
    const pool = makePool({ resetTimeoutMs: DAYS_30 }, { reset: () => wait(30) });
    for (let i = 0; i < 2; i++) {
      const lease = await pool.acquire();
      await lease.release();
    }
    expect(pool.stats()).toMatchObject({ created: 1, destroyed: 0, idle: 1 });
  });

  it('acquireTimeoutMs of 30 days waits quietly (no timer re-armed every millisecond) until served', async () => {
    const pool = makePool({ max: 1, acquireTimeoutMs: DAYS_30 });
    const held = await pool.acquire();
    let served = false;
    const waiting = pool.acquire().then((lease) => {
      served = true;
      return lease.release();
    });
    await wait(100);
    expect(served).toBe(false);
    expect(pool.stats()).toMatchObject({ waiting: 1, timedOut: 0 });
    await held.release();
    await waiting;
    expect(served).toBe(true);
  });

  it('maxLifetimeMs, idleTimeoutMs and keepaliveMs of 30 days retire nothing early', async () => {
    const pool = makePool({ maxLifetimeMs: DAYS_30 * 2, idleTimeoutMs: DAYS_30, keepaliveMs: DAYS_30, min: 1, max: 2 }, { ping: async () => {} });
    const a = await pool.acquire();
    const b = await pool.acquire();
    await a.release();
    await b.release();
    await wait(100);
    expect(pool.stats()).toMatchObject({ idle: 2, destroyed: 0 });
  });
});
