// drain() / resume() (FAULTS.md F12: let a server shut down) and invalidate() (F15: retire
// every resource that exists now, e.g. after a failover).
import { describe, expect, it } from 'vitest';
import { AcquireTimeoutError } from '../../src/index.js';
import type { Lease, Pool } from '../../src/index.js';
import type { FakeResource } from '../support/fake-adapter.js';
import { errorOf, setupClosingAfterEach, track } from '../support/harness.js';
import type { VirtualClock } from '../support/virtual-clock.js';

const setup = setupClosingAfterEach();

/** Acquire with no virtual time passing (an idle resource or an instant create). */
async function acquireOn(clock: VirtualClock, pool: Pool<FakeResource>): Promise<Lease<FakeResource>> {
  const outcome = track(pool.acquire(), clock);
  await clock.advance(0);
  if (!outcome.ok) throw new Error(`acquire did not succeed at once: ${String(outcome.error)}`);
  return outcome.value!;
}

describe('drain()', () => {
  it('destroys idle resources at once and leased ones on release, then resolves', async () => {
    const { pool, clock, fake } = setup({ max: 3, min: 2 });
    await pool.warmup();
    const lease = await acquireOn(clock, pool);
    expect(pool.stats()).toMatchObject({ size: 2, idle: 1, leased: 1 });

    const drained = track(pool.drain());
    expect(pool.draining).toBe(true);
    await clock.advance(0);
    expect(pool.stats()).toMatchObject({ size: 1, idle: 0, leased: 1, draining: true });
    expect(drained.done).toBe(false);

    await lease.release();
    await clock.advance(0);
    expect(drained.done).toBe(true);
    expect(pool.stats()).toMatchObject({ size: 0, creating: 0, destroyedByReason: { drained: 2 } });
    expect(fake.live.size).toBe(0);
  });

  it('creates nothing while draining, not even for `min`; every call returns the same promise', async () => {
    const { pool, clock, fake } = setup({ max: 2, min: 2 });
    await pool.warmup();
    const first = pool.drain();
    expect(pool.drain()).toBe(first);
    await clock.advance(60_000);
    await first;
    expect(fake.createAttempts).toBe(2);
    expect(pool.stats().size).toBe(0);
  });

  it('a create already running when drain() is called is destroyed when it finishes', async () => {
    const { pool, clock, fake } = setup({ max: 1 }, { prepare: (f) => (f.defaults.create = { kind: 'slow', ms: 50 }) });
    const waiting = errorOf(pool.acquire({ timeoutMs: 100 }));
    await clock.advance(10);
    expect(pool.stats().creating).toBe(1);
    const drained = track(pool.drain());
    await clock.advance(40);
    expect(drained.done).toBe(true);
    expect(fake.live.size).toBe(0);
    // The acquire is not served while draining: it ends at its own deadline.
    await clock.advance(100);
    expect(await waiting).toBeInstanceOf(AcquireTimeoutError);
  });

  it('acquires wait while draining and are served after resume(), within their deadline', async () => {
    const { pool, clock } = setup({ max: 1, min: 1 });
    await pool.warmup();
    await pool.drain();
    const waiting = track(pool.acquire({ timeoutMs: 1000 }));
    await clock.advance(500);
    expect(waiting.done).toBe(false);
    expect(pool.stats()).toMatchObject({ waiting: 1, creating: 0 });
    pool.resume();
    expect(pool.draining).toBe(false);
    await clock.advance(0);
    expect(waiting.done).toBe(true);
    expect(pool.stats()).toMatchObject({ leased: 1, draining: false });
  });

  it('resume() before the pool is empty settles the pending drain() and keeps what is left', async () => {
    const { pool, clock } = setup({ max: 2 });
    const lease = await acquireOn(clock, pool);
    const drained = track(pool.drain());
    pool.resume();
    await clock.advance(0);
    expect(drained.done).toBe(true);
    await lease.release();
    expect(pool.stats()).toMatchObject({ idle: 1, destroyed: 0 });
  });

  it('close() while draining settles the drain too', async () => {
    const { pool, clock } = setup({ max: 1 });
    await acquireOn(clock, pool);
    const drained = track(pool.drain());
    const closed = track(pool.close({ timeoutMs: 10 }));
    await clock.advance(10);
    expect(closed.done).toBe(true);
    expect(drained.done).toBe(true);
  });
});

describe('invalidate()', () => {
  it('destroys idle resources now and leased ones on release; new ones are kept', async () => {
    const { pool, clock, fake } = setup({ max: 3 });
    const [a, b] = [await acquireOn(clock, pool), await acquireOn(clock, pool)];
    const oldIds = [a.resource.id, b.resource.id];
    await b.release();
    pool.invalidate();
    await clock.advance(0);
    expect(pool.stats()).toMatchObject({ idle: 0, leased: 1, destroyedByReason: { invalidated: 1 } });

    await a.release();
    expect(pool.stats()).toMatchObject({ size: 0, destroyedByReason: { invalidated: 2 } });
    const fresh = await acquireOn(clock, pool);
    expect(oldIds).not.toContain(fresh.resource.id);
    await fresh.release();
    expect(pool.stats()).toMatchObject({ idle: 1, destroyedByReason: { invalidated: 2 } });
    expect(fake.live.size).toBe(1);
  });

  it('a create running during invalidate() is discarded, and the waiter gets a newer resource', async () => {
    const { pool, clock, fake } = setup({ max: 1 }, { prepare: (f) => (f.defaults.create = { kind: 'slow', ms: 20 }) });
    const lease = track(pool.acquire({ timeoutMs: 1000 }));
    await clock.advance(5);
    pool.invalidate();
    await clock.advance(20);
    expect(pool.stats().destroyedByReason.invalidated).toBe(1);
    await clock.advance(20);
    expect(lease.done).toBe(true);
    expect(fake.created).toBe(2);
    expect(pool.stats()).toMatchObject({ leased: 1, created: 2 });
  });
});
