// Lease misuse (M14–M18): double release, foreign release, use after release, release then
// destroy, and evicting on release.
// Part of the FAULTS.md §5 misuse checklist (M1–M32, one `describe` per case, split by concern
// across test/unit/misuse-*.test.ts; shared set-up in test/support/misuse.ts).
import { afterEach, describe, expect, it } from 'vitest';
import { AcquireTimeoutError, LeaseReleasedError, type Lease } from '../../src/index.js';
import { codedError, type FakeResource } from '../support/fake-adapter.js';
import { track } from '../support/harness.js';
import { acquireNow, build, closeMisusePools } from '../support/misuse.js';
import { flush } from '../support/virtual-clock.js';

afterEach(closeMisusePools);

// ---------------------------------------------------------------- M14–M18: leases

// Documented choice (README "Leases"): double release is an idempotent no-op, so `await using`
// after an explicit release() is safe.
describe('M14 double release (documented: a no-op)', () => {
  it('a second release resolves and never puts the resource in the idle list twice', async () => {
    const b = build({ max: 2 });
    const lease = await acquireNow(b);
    await lease.release();
    await expect(lease.release()).resolves.toBeUndefined();
    await expect(lease[Symbol.asyncDispose]()).resolves.toBeUndefined();
    expect(b.pool.stats()).toMatchObject({ size: 1, idle: 1, leased: 0 });

    const x = await acquireNow(b);
    const y = await acquireNow(b);
    expect(x.resource).not.toBe(y.resource); // two borrowers never share one resource
    await x.release();
    await y.release();
  });

  it("a stale lease's release does not release the resource from its new borrower", async () => {
    const b = build({ max: 1 });
    const first = await acquireNow(b);
    await first.release();
    const second = await acquireNow(b);
    const resource = second.resource;
    await first.release(); // stale
    expect(b.pool.stats()).toMatchObject({ leased: 1, idle: 0 });
    expect(second.resource).toBe(resource);
    const third = track(b.pool.acquire({ timeoutMs: 10 }), b.clock);
    await b.clock.advance(10);
    expect(third.error).toBeInstanceOf(AcquireTimeoutError); // the resource was not handed out again
    await second.release();
  });
});

// n/a: there is no pool.release(resource). A resource is only ever given back through the
// Lease object the pool created for it, so a foreign or never-acquired resource cannot be
// handed to a pool at all, and a lease only ever returns to the pool that issued it.
describe('M15 (n/a: no pool.release(resource), leases are objects bound to their pool) foreign release', () => {
  it('pools have no API taking a resource back; a lease from pool A only affects pool A', async () => {
    const a = build({ max: 1 });
    const poolB = build({ max: 1 }).pool;
    for (const name of ['release', 'destroy', 'put', 'return']) expect(name in poolB).toBe(false);

    const lease = await acquireNow(a);
    const before = poolB.stats();
    await lease.release();
    expect(a.pool.stats()).toMatchObject({ idle: 1, leased: 0 });
    expect(poolB.stats()).toEqual(before);
  });

  it('a lease cannot be forged: calling lease methods on a look-alike object throws, and no pool changes', async () => {
    const a = build({ max: 1 });
    const real = await acquireNow(a);
    const forged = Object.create(Object.getPrototypeOf(real) as object) as Lease<FakeResource>;
    const before = a.pool.stats();
    expect(() => forged.release()).toThrow(TypeError);
    expect(() => forged.destroy()).toThrow(TypeError);
    expect(() => forged.resource).toThrow(TypeError);
    expect(a.pool.stats()).toEqual(before);
    await real.release();
  });
});

// Adapted: `resource` (the only way to use the lease) throws LeaseReleasedError and destroy()
// rejects with it; release() and [Symbol.asyncDispose]() stay no-ops (M14's documented choice).
describe('M16 use after release', () => {
  it.each(['release', 'destroy'] as const)('after %s: lease.resource throws LeaseReleasedError (POOL_LEASE_RELEASED)', async (how) => {
    const b = build();
    const lease = await acquireNow(b);
    await lease[how]();
    expect(() => lease.resource).toThrow(LeaseReleasedError);
    expect(() => lease.resource).toThrow(expect.objectContaining({ code: 'POOL_LEASE_RELEASED' }));
  });

  it('after release: destroy() rejects with LeaseReleasedError; release() and asyncDispose resolve as no-ops', async () => {
    const b = build();
    const lease = await acquireNow(b);
    await lease.release();
    await expect(lease.destroy()).rejects.toBeInstanceOf(LeaseReleasedError);
    await expect(lease.release()).resolves.toBeUndefined();
    await expect(lease[Symbol.asyncDispose]()).resolves.toBeUndefined();
    expect(b.pool.stats()).toMatchObject({ idle: 1, destroyed: 0 });
  });
});

describe('M17 release() then destroy() (and the reverse) on one lease', () => {
  it('destroy() after release() rejects with LeaseReleasedError and leaves the resource (now serving someone else) alone', async () => {
    const b = build({ max: 1 });
    const first = await acquireNow(b);
    await first.release();
    const second = await acquireNow(b);
    const resource = second.resource;
    await expect(first.destroy()).rejects.toBeInstanceOf(LeaseReleasedError);
    expect(resource.destroyed).toBe(false);
    expect(b.pool.stats()).toMatchObject({ leased: 1, destroyed: 0 });
    await second.release();
  });

  // Documented alternative (Lease.release JSDoc): release() after destroy() is a no-op, so
  // `await using` after an explicit destroy() is safe; the resource is destroyed once.
  it('release() after destroy() is a documented no-op; the resource is destroyed exactly once', async () => {
    const b = build({ max: 1 });
    const lease = await acquireNow(b);
    await lease.destroy();
    await expect(lease.release()).resolves.toBeUndefined();
    await expect(lease.destroy()).resolves.toBeUndefined();
    await flush();
    expect(b.fake.destroyed).toBe(1);
    expect(b.pool.stats()).toMatchObject({ size: 0, destroyed: 1 });
  });
});

// Adapted: the API for "release(err)" / "release({ destroy: true })" is lease.destroy(reason).
describe('M18 evict on release (release(err) = lease.destroy(reason))', () => {
  it('destroys the resource and frees the slot; no replacement is created when nobody waits', async () => {
    const b = build({ max: 2 });
    const lease = await acquireNow(b);
    const resource = lease.resource;
    await lease.destroy(new Error('bad state'));
    await b.clock.advance(1000);
    expect(resource.destroyed).toBe(true);
    expect(b.fake.createAttempts).toBe(1);
    expect(b.pool.stats()).toMatchObject({ size: 0, creating: 0, destroyedByReason: { user: 1 } });
  });

  it("release(err) and release(true), node-postgres' convention, destroy instead of returning", async () => {
    const b = build({ max: 2 });
    const first = await acquireNow(b);
    const second = await acquireNow(b);
    const [r1, r2] = [first.resource, second.resource];
    await first.release(new Error('bad state'));
    await second.release(true);
    await b.clock.advance(0);
    expect(r1.destroyed && r2.destroyed).toBe(true);
    expect(b.pool.stats()).toMatchObject({ size: 0, destroyed: 2, destroyedByReason: { user: 2 } });
    // The lease is spent either way: a later plain release does nothing.
    await first.release();
    expect(b.pool.stats().destroyed).toBe(2);
  });

  it('a replacement is created when a caller waits for the slot', async () => {
    const b = build({ max: 1 });
    const lease = await acquireNow(b);
    const old = lease.resource;
    const waiter = track(b.pool.acquire(), b.clock);
    await b.clock.advance(0);
    expect(b.fake.createAttempts).toBe(1);
    await lease.destroy(new Error('bad state'));
    await b.clock.advance(0);
    expect(b.fake.createAttempts).toBe(2);
    expect(waiter.ok).toBe(true);
    expect(waiter.value!.resource).not.toBe(old);
    expect(old.destroyed).toBe(true);
    await waiter.value!.release();
  });

  it('a reason the adapter calls fatal is counted as broken, any other as user', async () => {
    const b = build({ max: 2 });
    await (await acquireNow(b)).destroy(codedError('connection lost', 'CONNECTION_LOST'));
    await (await acquireNow(b)).destroy(new Error('not fatal'));
    expect(b.pool.stats().destroyedByReason).toMatchObject({ broken: 1, user: 1 });
  });
});
