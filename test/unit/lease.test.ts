// Leases: release and reuse, double release / destroy, `await using`, the reset hook,
// isBroken on return and on borrow, and leak detection.
import { describe, expect, it } from 'vitest';
import { createPool, LeakDetectedError, LeaseReleasedError, PoolError, type Lease, type Pool } from '../../src/index.js';
import { FakeAdapter, type FakeResource } from '../support/fake-adapter.js';
import { setup, track } from '../support/harness.js';
import { flush, VirtualClock } from '../support/virtual-clock.js';

const WITH_RESET = { hooks: ['isBroken', 'ping', 'reset', 'isRetryable', 'isFatal'] } as const;

describe('release', () => {
  it('returns the resource for reuse; the lease then refuses access with LeaseReleasedError', async () => {
    await using h = setup({ max: 2 });
    const { pool, fake } = h;

    const lease = await pool.acquire();
    const resource = lease.resource;
    await lease.release();
    expect(pool.stats()).toMatchObject({ idle: 1, leased: 0 });
    expect(() => lease.resource).toThrow(LeaseReleasedError);
    expect(() => lease.resource).toThrow(expect.objectContaining({ code: 'POOL_LEASE_RELEASED' }));

    const next = await pool.acquire();
    expect(next.resource).toBe(resource);
    expect(fake.createAttempts).toBe(1);
    await next.release();
  });

  it('a second release is a no-op and never puts the resource in the idle list twice', async () => {
    await using h = setup({ max: 2 });
    const { pool, fake } = h;

    const lease = await pool.acquire();
    await lease.release();
    await expect(lease.release()).resolves.toBeUndefined();
    expect(pool.stats()).toMatchObject({ size: 1, idle: 1, leased: 0 });

    const a = await pool.acquire();
    const b = await pool.acquire();
    expect(a.resource).not.toBe(b.resource);
    expect(fake.created).toBe(2);
    expect(pool.stats()).toMatchObject({ size: 2, idle: 0, leased: 2 });
    await a.release();
    await b.release();
    expect(pool.stats()).toMatchObject({ size: 2, idle: 2 });
  });
});

describe('destroy', () => {
  it('evicts the resource, and a waiter gets a fresh one', async () => {
    await using h = setup({ max: 1 });
    const { pool, fake } = h;
    const lease = await pool.acquire();
    const old = lease.resource;
    const waiter = track(pool.acquire());
    await flush();

    await lease.destroy();
    await flush();
    expect(old.destroyed).toBe(true);
    expect(fake.destroyed).toBe(1);
    expect(pool.stats()).toMatchObject({ destroyed: 1, destroyedByReason: { user: 1 }, size: 1, leased: 1 });
    expect(waiter.state).toBe('fulfilled');
    expect(waiter.value!.resource).not.toBe(old);
    expect(fake.live.has(waiter.value!.resource)).toBe(true);
    expect(() => lease.resource).toThrow(LeaseReleasedError);
    await waiter.value!.release();
  });

  it('release after destroy is a no-op; destroy twice is a no-op', async () => {
    await using h = setup({ max: 2 });
    const { pool, fake } = h;
    const lease = await pool.acquire();

    await lease.destroy();
    await expect(lease.destroy()).resolves.toBeUndefined();
    await expect(lease.release()).resolves.toBeUndefined();
    await flush();
    expect(fake.destroyed).toBe(1);
    expect(pool.stats()).toMatchObject({ size: 0, idle: 0, destroyed: 1 });
  });

  it('destroy after release rejects with LeaseReleasedError and leaves the resource alone', async () => {
    await using h = setup({ max: 2 });
    const { pool, fake } = h;
    const lease = await pool.acquire();
    const resource = lease.resource;
    await lease.release();

    await expect(lease.destroy()).rejects.toBeInstanceOf(LeaseReleasedError);
    await expect(lease.destroy()).rejects.toMatchObject({ code: 'POOL_LEASE_RELEASED' });
    expect(fake.destroyed).toBe(0);
    expect(resource.destroyed).toBe(false);
    expect(pool.stats()).toMatchObject({ idle: 1, destroyed: 0 });
  });
});

describe('await using', () => {
  it('lease and pool are async-disposable', async () => {
    const clock = new VirtualClock();
    const fake = new FakeAdapter(clock);
    let outer: Pool<FakeResource> | undefined;
    {
      await using pool = createPool<FakeResource>({ adapter: fake.adapter(), clock });
      outer = pool;
      const lease = await pool.acquire();
      expect(typeof lease[Symbol.asyncDispose]).toBe('function');
      expect(typeof pool[Symbol.asyncDispose]).toBe('function');
      await lease.release();
      expect(pool.closed).toBe(false);
    }
    expect(outer.closed).toBe(true);
    expect(fake.live.size).toBe(0);
  });

  it('releases the lease at the end of the scope', async () => {
    await using h = setup({ max: 1 });
    const { pool } = h;
    let resource: FakeResource | undefined;
    {
      await using lease = await pool.acquire();
      resource = lease.resource;
      expect(pool.stats().leased).toBe(1);
    }
    expect(pool.stats()).toMatchObject({ leased: 0, idle: 1 });
    const next = await pool.acquire();
    expect(next.resource).toBe(resource);
    await next.release();
  });

  it('releases the lease when the scope throws, and the error propagates', async () => {
    await using h = setup({ max: 1 });
    const { pool } = h;
    const failure = new Error('query failed');

    const run = async (): Promise<never> => {
      await using lease = await pool.acquire();
      expect(lease.resource).toBeDefined();
      throw failure;
    };
    await expect(run()).rejects.toBe(failure);
    expect(pool.stats()).toMatchObject({ leased: 0, idle: 1, destroyed: 0 });
  });

  it('an explicit release inside the scope makes the disposal a no-op', async () => {
    await using h = setup({ max: 2 });
    const { pool } = h;
    {
      await using lease = await pool.acquire();
      await lease.release();
    }
    expect(pool.stats()).toMatchObject({ idle: 1, leased: 0 });
    const a = await pool.acquire();
    const b = await pool.acquire();
    expect(a.resource).not.toBe(b.resource);
    await a.release();
    await b.release();
  });
});

describe('reset hook', () => {
  it('release runs reset, and only then hands the resource on', async () => {
    await using h = setup({ max: 1 }, WITH_RESET);
    const { pool, clock, fake } = h;
    const lease = await pool.acquire();
    const resource = lease.resource;
    const waiter = track(pool.acquire());

    fake.script.reset.push({ kind: 'slow', ms: 50 });
    const released = track(lease.release());
    await flush();
    expect(fake.resets).toBe(1);
    expect(pool.stats().resetting).toBe(1);

    await clock.advance(49);
    expect(waiter.state).toBe('pending');
    expect(released.state).toBe('pending');
    await clock.advance(1);
    expect(released.state).toBe('fulfilled');
    expect(waiter.state).toBe('fulfilled');
    expect(waiter.value!.resource).toBe(resource);
    expect(fake.createAttempts).toBe(1);
    await waiter.value!.release();
    expect(fake.resets).toBe(2);
    expect(pool.stats()).toMatchObject({ idle: 1, resetting: 0 });
  });

  it('a rejected reset destroys the resource (resetFailed) and reports the error', async () => {
    await using h = setup({ max: 1 }, WITH_RESET);
    const { pool, fake, errors } = h;
    const lease = await pool.acquire();
    const resource = lease.resource;
    const resetError = new Error('DISCARD ALL failed');

    fake.script.reset.push({ kind: 'fail', error: resetError });
    await lease.release();
    await flush();
    expect(resource.destroyed).toBe(true);
    expect(pool.stats()).toMatchObject({ size: 0, idle: 0, destroyedByReason: { resetFailed: 1 } });
    expect(errors).toContain(resetError);

    const next = await pool.acquire();
    expect(next.resource).not.toBe(resource);
    await next.release();
  });

  it('a reset that never settles is cut off at resetTimeoutMs and the resource destroyed', async () => {
    await using h = setup({ max: 1, resetTimeoutMs: 200 }, WITH_RESET);
    const { pool, clock, fake, errors } = h;
    const lease = await pool.acquire();
    const resource = lease.resource;

    fake.script.reset.push({ kind: 'never' });
    const released = track(lease.release());
    await clock.advance(199);
    expect(pool.stats()).toMatchObject({ resetting: 1, destroyed: 0 });
    expect(resource.destroyed).toBe(false);

    await clock.advance(1);
    expect(released.state).toBe('fulfilled');
    expect(resource.destroyed).toBe(true);
    expect(pool.stats()).toMatchObject({ resetting: 0, size: 0, destroyedByReason: { resetFailed: 1 } });
    expect(errors).toHaveLength(1);
    expect(errors[0]).toBeInstanceOf(PoolError);
    expect(errors[0]).toMatchObject({ code: 'POOL_RESET_TIMEOUT' });
    expect(fake.live.size).toBe(0);
  });
});

describe('isBroken', () => {
  it('a resource broken when returned is destroyed (broken), not reused', async () => {
    await using h = setup({ max: 1 });
    const { pool, fake } = h;
    const lease = await pool.acquire();
    const resource = lease.resource;

    resource.broken = true;
    await lease.release();
    await flush();
    expect(resource.destroyed).toBe(true);
    expect(pool.stats()).toMatchObject({ size: 0, idle: 0, destroyedByReason: { broken: 1 } });

    const next = await pool.acquire();
    expect(next.resource).not.toBe(resource);
    expect(fake.created).toBe(2);
    await next.release();
  });

  it('an idle resource found broken on borrow is destroyed and skipped for a healthy one', async () => {
    await using h = setup({ max: 2 });
    const { pool, fake } = h;
    const a = await pool.acquire();
    const b = await pool.acquire();
    const healthy = a.resource;
    const doomed = b.resource;
    await a.release();
    await b.release();

    doomed.broken = true;
    const lease = await pool.acquire();
    expect(lease.resource).toBe(healthy);
    expect(doomed.destroyed).toBe(true);
    expect(fake.createAttempts).toBe(2);
    expect(pool.stats()).toMatchObject({ size: 1, leased: 1, idle: 0, destroyedByReason: { broken: 1 } });
    await lease.release();
  });

  it('an acquire that finds only broken idle resources gets a new one', async () => {
    await using h = setup({ max: 1 });
    const { pool, fake } = h;
    const first = await pool.acquire();
    const doomed = first.resource;
    await first.release();

    doomed.broken = true;
    const lease = await pool.acquire();
    expect(lease.resource).not.toBe(doomed);
    expect(fake.live.has(lease.resource)).toBe(true);
    expect(doomed.destroyed).toBe(true);
    expect(pool.stats()).toMatchObject({ size: 1, destroyedByReason: { broken: 1 } });
    await lease.release();
  });
});

/** The acquire site leak reports must point at. */
function acquireAtLeakSite(pool: Pool<FakeResource>): Promise<Lease<FakeResource>> {
  return pool.acquire();
}

const leaks = (errors: unknown[]): LeakDetectedError[] => errors.filter((e): e is LeakDetectedError => e instanceof LeakDetectedError);

describe('leak detection', () => {
  it('reports a lease held past leakDetectionMs once, through onError, with the acquire-site stack', async () => {
    await using h = setup({ leakDetectionMs: 2_000 });
    const { pool, clock, errors } = h;

    const lease = await acquireAtLeakSite(pool);
    await clock.advance(1_999);
    expect(leaks(errors)).toEqual([]);

    await clock.advance(1);
    const reported = leaks(errors);
    expect(reported).toHaveLength(1);
    const leak = reported[0]!;
    expect(leak.code).toBe('POOL_LEAK_DETECTED');
    expect(leak.heldMs).toBe(2_000);
    expect(leak.stack).toContain('acquireAtLeakSite');
    expect(leak.stack).toContain('lease.test.ts');

    // Keep the pool's housekeeping running (an idle resource due for keepalive pings) while the leak goes on.
    const other = await pool.acquire();
    await other.release();
    await clock.advance(5 * 60_000);
    expect(h.fake.pings).toBeGreaterThan(0);
    expect(leaks(errors)).toHaveLength(1);
    await lease.release();
  });

  it('also carries the acquire site when the lease came straight from the idle list', async () => {
    await using h = setup({ leakDetectionMs: 2_000 });
    const { pool, clock, errors } = h;
    const warm = await pool.acquire();
    await warm.release();

    const lease = await acquireAtLeakSite(pool);
    expect(lease.resource).toBeDefined();
    await clock.advance(2_000);
    const reported = leaks(errors);
    expect(reported).toHaveLength(1);
    expect(reported[0]!.stack).toContain('acquireAtLeakSite');
    await lease.release();
  });

  it('reports nothing for a lease released in time', async () => {
    await using h = setup({ leakDetectionMs: 2_000 });
    const { pool, clock, errors } = h;

    const lease = await acquireAtLeakSite(pool);
    await clock.advance(1_999);
    await lease.release();
    await clock.advance(60_000);
    expect(errors).toEqual([]);
  });
});
