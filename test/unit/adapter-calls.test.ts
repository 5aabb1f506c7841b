// Adapter calls guarded by the pool: isBroken, errors nobody awaits go to onError, a destroy bounded by destroyTimeoutMs.
import { describe, expect, it } from 'vitest';
import { DestroyTimeoutError } from '../../src/index.js';
import { acquireNow, clock, errors, fake, track, usePerTestPools } from '../support/harness.js';

const makePool = usePerTestPools({ keepaliveMs: Infinity });

describe('isBroken', () => {
  it('is checked on borrow: a broken idle resource is destroyed and a new one handed out', async () => {
    const pool = makePool({ pingIfIdleMs: Infinity });
    const first = await acquireNow(pool);
    const resource = first.resource;
    await first.release();

    resource.broken = true;
    const lease = await acquireNow(pool);
    expect(lease.resource).not.toBe(resource);
    expect(resource.destroyed).toBe(true);
    expect(fake.pings).toBe(0); // caught by the O(1) check, no round trip needed
    expect(pool.stats().destroyedByReason.broken).toBe(1);
    expect(pool.stats().created).toBe(2);
    await lease.release();
  });

  it('is checked on return: a broken resource is destroyed on release, never pooled', async () => {
    const pool = makePool({ pingIfIdleMs: Infinity });
    const lease = await acquireNow(pool);
    const resource = lease.resource;
    resource.broken = true;
    await lease.release();
    await clock.advance(0);

    expect(resource.destroyed).toBe(true);
    const stats = pool.stats();
    expect(stats.destroyedByReason.broken).toBe(1);
    expect(stats.idle).toBe(0);
    expect(stats.size).toBe(0);

    const next = await acquireNow(pool);
    expect(next.resource).not.toBe(resource);
    await next.release();
  });

  it('is checked on return to a waiter: the waiter gets a new resource, not the broken one', async () => {
    const pool = makePool({ pingIfIdleMs: Infinity, max: 1 });
    const lease = await acquireNow(pool);
    const resource = lease.resource;
    const waiting = track(pool.acquire());
    await clock.advance(0);
    expect(waiting.done).toBe(false);

    resource.broken = true;
    await lease.release();
    await clock.advance(0);
    expect(waiting.ok).toBe(true);
    expect(waiting.value!.resource).not.toBe(resource);
    expect(resource.destroyed).toBe(true);
    expect(pool.stats().destroyedByReason.broken).toBe(1);
    await waiting.value!.release();
  });
});

describe('background errors go to onError', () => {
  it('a failing destroy is reported, and the slot is still freed', async () => {
    fake.defaults.destroy = { kind: 'fail' };
    const pool = makePool({ max: 1 });
    const lease = await acquireNow(pool);
    const resource = lease.resource;
    await lease.destroy();

    expect(errors).toHaveLength(1);
    expect((errors[0] as Error).message).toBe('destroy failed');
    expect(pool.stats().size).toBe(0);
    expect(pool.stats().destroyedByReason.user).toBe(1);
    const next = await acquireNow(pool);
    expect(next.resource).not.toBe(resource);
    await next.release();
  });

  it('a failing create with nobody waiting (filling min) is reported, and min is still reached', async () => {
    fake.failCreates(1);
    const pool = makePool({ min: 1, retry: { randomize: false, minTimeoutMs: 100 } });
    await clock.advance(0);
    expect(fake.createAttempts).toBe(1);
    expect(errors).toEqual([fake.createError]);

    await clock.advance(100);
    expect(fake.createAttempts).toBe(2);
    expect(pool.stats().size).toBe(1);
    expect(pool.stats().idle).toBe(1);
    expect(errors).toHaveLength(1);
  });

  it('a throwing onError does not break the pool', async () => {
    fake.defaults.destroy = { kind: 'fail' };
    let calls = 0;
    const pool = makePool({
      max: 1,
      onError: () => {
        calls++;
        throw new Error('onError exploded');
      },
    });
    const first = await acquireNow(pool);
    await first.destroy(); // destroy fails -> onError throws
    expect(calls).toBe(1);

    // Still fully working: create, release, reuse.
    const second = await acquireNow(pool);
    const resource = second.resource;
    await second.release();
    const third = await acquireNow(pool);
    expect(third.resource).toBe(resource);
    await third.release();
    expect(pool.stats().size).toBe(1);
    expect(pool.stats().acquired).toBe(3);
  });
});

describe('destroy bounded by destroyTimeoutMs', () => {
  it('frees the slot at once (a waiter gets a new resource immediately) and reports DestroyTimeoutError', async () => {
    fake.defaults.destroy = { kind: 'never' };
    const pool = makePool({ max: 1, destroyTimeoutMs: 100 });
    const lease = await acquireNow(pool);
    const old = lease.resource;
    const waiting = track(pool.acquire());
    await clock.advance(0);
    expect(waiting.done).toBe(false);

    const destroying = track(lease.destroy());
    await clock.advance(0);
    expect(waiting.ok).toBe(true);
    expect(waiting.at).toBe(0); // did not wait for the hanging destroy
    expect(waiting.value!.resource).not.toBe(old);
    expect(pool.stats().destroying).toBe(1);
    expect(pool.stats().size).toBe(1);
    expect(errors).toHaveLength(0);

    await clock.advance(99);
    expect(errors).toHaveLength(0);
    await clock.advance(1);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toBeInstanceOf(DestroyTimeoutError);
    expect((errors[0] as DestroyTimeoutError).code).toBe('POOL_DESTROY_TIMEOUT');
    expect(pool.stats().destroying).toBe(0);
    expect(destroying.done).toBe(true);
    await waiting.value!.release();
  });
});
