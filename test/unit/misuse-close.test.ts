// close() misuse (M19–M21): acquire after close, close twice or concurrently, close with
// pending acquires and borrowed leases.
// Part of the FAULTS.md §5 misuse checklist (M1–M32, one `describe` per case, split by concern
// across test/unit/misuse-*.test.ts; shared set-up in test/support/misuse.ts).
import { afterEach, describe, expect, it } from 'vitest';
import { PoolClosedError, PoolError } from '../../src/index.js';
import { errorOf, track } from '../support/harness.js';
import { acquireNow, build, closeMisusePools } from '../support/misuse.js';

afterEach(closeMisusePools);

// ---------------------------------------------------------------- M19–M21: close

describe('M19 acquire() after close()', () => {
  it('rejects with PoolClosedError (a rejected promise, never a synchronous throw); withConnection and warmup too', async () => {
    const b = build();
    await b.pool.close();
    for (const call of [() => b.pool.acquire(), () => b.pool.acquire({ timeoutMs: 10 }), () => b.pool.withConnection(() => 1), () => b.pool.warmup()]) {
      let result: Promise<unknown> | undefined;
      expect(() => {
        result = call();
      }).not.toThrow();
      const error = await errorOf(result!);
      expect(error).toBeInstanceOf(PoolClosedError);
      expect((error as PoolClosedError).code).toBe('POOL_CLOSED');
    }
    expect(b.fake.createAttempts).toBe(0);
  });
});

describe('M20 close() twice / concurrently', () => {
  it('is idempotent: every call (and asyncDispose) returns the same promise', async () => {
    const b = build();
    const lease = await acquireNow(b);
    const first = b.pool.close({ timeoutMs: 1000 });
    const second = b.pool.close();
    expect(second).toBe(first);
    expect(b.pool[Symbol.asyncDispose]()).toBe(first);
    const settled = track(first, b.clock);
    await lease.release();
    await b.clock.advance(0);
    expect(settled.ok).toBe(true);
    expect(b.pool.close()).toBe(first);
  });
});

describe('M21 close() with pending acquires and borrowed leases', () => {
  it('pending acquires reject with PoolClosedError; a lease released in time is destroyed on release; close resolves then', async () => {
    const b = build({ max: 2 });
    const a = await acquireNow(b);
    const c = await acquireNow(b);
    const pending = track(b.pool.acquire(), b.clock);
    await b.clock.advance(0);
    const closing = track(b.pool.close({ timeoutMs: 1000 }), b.clock);
    await b.clock.advance(0);
    expect(pending.error).toBeInstanceOf(PoolClosedError);

    const ra = a.resource;
    await a.release();
    expect(ra.destroyed).toBe(true);
    expect(b.pool.stats()).toMatchObject({ idle: 0, leased: 1, destroyedByReason: { closed: 1 } });
    expect(closing.done).toBe(false);
    await b.clock.advance(10);
    await c.release();
    await b.clock.advance(0);
    expect(closing.ok).toBe(true);
    expect(closing.at).toBe(10);
    expect(b.fake.live.size).toBe(0);
  });

  it('after timeoutMs, leases still out are destroyed; a late release()/destroy() does not throw', async () => {
    const b = build({ max: 1 });
    const lease = await acquireNow(b);
    const resource = lease.resource;
    const closing = track(b.pool.close({ timeoutMs: 1000 }), b.clock);
    await b.clock.advance(999);
    expect(closing.done).toBe(false);
    await b.clock.advance(1);
    expect(closing.ok).toBe(true);
    expect(resource.destroyed).toBe(true);
    expect(b.pool.stats()).toMatchObject({ size: 0, destroyedByReason: { closed: 1 } });
    await expect(lease.release()).resolves.toBeUndefined();
    await expect(lease.destroy()).resolves.toBeUndefined();
  });

  // FAULTS M21: "close() resolves ... after the timeout *with a report*". Destroying a resource
  // under a caller that still holds it must not be silent: one report through onError.
  it('after timeoutMs, destroying leases still held is reported through onError', async () => {
    const b = build({ max: 2 });
    const held = [await acquireNow(b), await acquireNow(b)];
    const closing = track(b.pool.close({ timeoutMs: 1000 }), b.clock);
    await b.clock.advance(1000);
    expect(closing.ok).toBe(true);
    const reports = b.errors.filter((e) => e instanceof PoolError && e.code === 'POOL_CLOSED');
    expect(reports).toHaveLength(1);
    expect((reports[0] as Error).message).toContain('1000 ms');
    expect((reports[0] as Error).message).toMatch(/\b2 leases?\b/);
    for (const lease of held) await expect(lease.release()).resolves.toBeUndefined(); // late: a quiet no-op
  });
});
