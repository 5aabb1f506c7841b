// pool.health(): ok / degraded / down / closed, with the reason, for readiness probes.
import { describe, expect, it } from 'vitest';
import { acquireNow, clock, fake, usePerTestPools } from '../support/harness.js';

const makePool = usePerTestPools({ keepaliveMs: Infinity, pingIfIdleMs: Infinity, retry: { randomize: false, minTimeoutMs: 100 } });

describe('pool.health()', () => {
  it('ok for a fresh pool and while it serves', async () => {
    const pool = makePool({ max: 2 });
    expect(pool.health()).toEqual({ status: 'ok', size: 0, max: 2, waiting: 0, circuit: 'closed' });
    const lease = await acquireNow(pool);
    expect(pool.health()).toMatchObject({ status: 'ok', size: 1 });
    await lease.release();
  });

  it('degraded when more callers wait than the pool has connections', async () => {
    const pool = makePool({ max: 1 });
    const held = await acquireNow(pool);
    const waiting = [pool.acquire(), pool.acquire()];
    await clock.advance(0);
    expect(pool.health()).toMatchObject({ status: 'degraded', waiting: 2 });
    expect(pool.health().reason).toMatch(/saturated: 2 callers waiting for 1 connections/);
    await held.release();
    for (const w of waiting) await (await w).release();
    expect(pool.health().status).toBe('ok');
  });

  it('degraded while creates fail but connections still serve; down when none is left; ok after a success', async () => {
    const pool = makePool({ max: 2, circuitBreaker: false });
    const held = await acquireNow(pool);
    fake.defaults.create = { kind: 'fail' };
    const waiter = pool.acquire({ timeoutMs: 1000 }).catch((error: unknown) => error);
    await clock.advance(0);
    const degraded = pool.health();
    expect(degraded).toMatchObject({ status: 'degraded', lastError: fake.createError });
    expect(degraded.reason).toContain('ECONNREFUSED');
    await held.destroy();
    expect(pool.health()).toMatchObject({ status: 'down', size: 0 });
    fake.defaults.create = { kind: 'ok' };
    await clock.advance(1000);
    await waiter;
    const lease = await acquireNow(pool);
    expect(pool.health()).toMatchObject({ status: 'ok', waiting: 0, circuit: 'closed' });
    expect(pool.health().reason).toBeUndefined();
    await lease.release();
  });

  it('down while the breaker is open, naming the cause', async () => {
    const pool = makePool({ max: 1, circuitBreaker: { failureThreshold: 2, cooldownMs: 1000 } });
    fake.defaults.create = { kind: 'fail' };
    const waiter = pool.acquire({ timeoutMs: 5000 }).catch((error: unknown) => error);
    await clock.advance(100);
    await waiter;
    const health = pool.health();
    expect(health).toMatchObject({ status: 'down', circuit: 'open' });
    expect(health.reason).toMatch(/circuit breaker open after 2 failed creates: .*ECONNREFUSED/);
  });

  it('degraded while draining, closed after close()', async () => {
    const pool = makePool({ max: 1 });
    void pool.drain();
    expect(pool.health()).toMatchObject({ status: 'degraded', reason: 'draining: no new connections until resume()' });
    pool.resume();
    expect(pool.health().status).toBe('ok');
    const closing = pool.close();
    expect(pool.health()).toMatchObject({ status: 'closed' });
    await clock.advance(0);
    await closing;
  });
});
