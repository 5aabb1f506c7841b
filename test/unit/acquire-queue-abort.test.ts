// AbortSignal on acquire: already aborted, aborted while queued, while its create runs,
// after the lease was handed out, and a timeout-style signal on virtual time.
import { describe, expect, it } from 'vitest';
import { setup, slowCreates, track } from '../support/harness.js';
import { flush, type VirtualClock } from '../support/virtual-clock.js';

/** Like `AbortSignal.timeout(ms)`, but on the virtual clock. */
function virtualTimeoutSignal(clock: VirtualClock, ms: number): AbortSignal {
  const controller = new AbortController();
  clock.setTimeout(() => controller.abort(new DOMException('The operation was aborted due to timeout', 'TimeoutError')), ms);
  return controller.signal;
}

describe('acquire with an AbortSignal', () => {
  it('rejects at once with the exact reason of an already-aborted signal, using no resource and starting no create', async () => {
    await using h = setup({ max: 1 });
    const { pool, fake } = h;
    const reason = new Error('client went away');
    const signal = AbortSignal.abort(reason);

    // Empty pool: nothing is created for it.
    await expect(pool.acquire({ signal })).rejects.toBe(reason);
    await flush();
    expect(fake.createAttempts).toBe(0);
    expect(pool.stats()).toMatchObject({ size: 0, creating: 0, waiting: 0, acquired: 0 });

    // An idle resource is there: it is not handed out either.
    const lease = await pool.acquire();
    await lease.release();
    await expect(pool.acquire({ signal })).rejects.toBe(reason);
    expect(pool.stats()).toMatchObject({ idle: 1, leased: 0, waiting: 0, acquired: 1 });

    // The default reason (a DOMException) comes through as is, too.
    const plain = AbortSignal.abort();
    await expect(pool.acquire({ signal: plain })).rejects.toBe(plain.reason);
  });

  it('removes a waiter when its signal aborts; the others are still served in order', async () => {
    await using h = setup({ max: 1 });
    const { pool } = h;
    const holder = await pool.acquire();
    const controller = new AbortController();
    const reason = new Error('request cancelled');

    const order: string[] = [];
    const first = pool.acquire().then((lease) => {
      order.push('first');
      return lease.release();
    });
    const aborted = track(pool.acquire({ signal: controller.signal }));
    const last = pool.acquire().then((lease) => {
      order.push('last');
      return lease.release();
    });
    await flush();
    expect(pool.stats().waiting).toBe(3);

    controller.abort(reason);
    await flush();
    expect(aborted.state).toBe('rejected');
    expect(aborted.error).toBe(reason);
    expect(pool.stats()).toMatchObject({ waiting: 2, aborted: 1, timedOut: 0 });

    await holder.release();
    await Promise.all([first, last]);
    expect(order).toEqual(['first', 'last']);
    expect(pool.stats()).toMatchObject({ acquired: 3, idle: 1, leased: 0 });
  });

  describe('abort while the create started for it is running', () => {
    it('rejects at once; the create completes and the resource goes idle', async () => {
      await using h = setup({ max: 5 }, { prepare: slowCreates(100) });
      const { pool, clock, fake } = h;
      const controller = new AbortController();
      const reason = new Error('user navigated away');

      const acquire = track(pool.acquire({ signal: controller.signal }));
      await clock.advance(30);
      expect(pool.stats().creating).toBe(1);
      controller.abort(reason);
      await flush();
      expect(acquire.state).toBe('rejected');
      expect(acquire.error).toBe(reason);
      // The caller's abort does not abort the create.
      expect(fake.createSignals[0]!.aborted).toBe(false);
      expect(pool.stats().creating).toBe(1);

      await clock.advance(70);
      expect(pool.stats()).toMatchObject({ size: 1, idle: 1, creating: 0, leased: 0 });
      expect(fake.live.size).toBe(1);
      const lease = await pool.acquire();
      expect(fake.live.has(lease.resource)).toBe(true);
      expect(fake.createAttempts).toBe(1);
      await lease.release();
    });

    it('hands the created resource to the next waiter', async () => {
      await using h = setup({ max: 5, maxConnecting: 1 }, { prepare: slowCreates(100) });
      const { pool, clock, fake } = h;
      const controller = new AbortController();

      const aborted = track(pool.acquire({ signal: controller.signal }));
      const next = track(pool.acquire());
      await clock.advance(30);
      controller.abort(new Error('gone'));
      await clock.advance(69);
      expect(aborted.state).toBe('rejected');
      expect(next.state).toBe('pending');

      await clock.advance(1);
      expect(next.state).toBe('fulfilled');
      expect(fake.createAttempts).toBe(1);
      expect([...fake.live]).toEqual([next.value!.resource]);
      expect(pool.stats()).toMatchObject({ size: 1, leased: 1, idle: 0 });
      await next.value!.release();
    });
  });

  it('an abort after the lease was handed out changes nothing', async () => {
    await using h = setup({ max: 1 });
    const { pool, fake } = h;
    const controller = new AbortController();

    const lease = await pool.acquire({ signal: controller.signal });
    const resource = lease.resource;
    controller.abort(new Error('too late'));
    await flush();

    expect(lease.resource).toBe(resource);
    expect(pool.stats()).toMatchObject({ leased: 1, aborted: 0 });
    await lease.release();
    expect(pool.stats()).toMatchObject({ leased: 0, idle: 1, destroyed: 0 });
    expect(fake.destroyed).toBe(0);

    const again = await pool.acquire();
    expect(again.resource).toBe(resource);
    await again.release();
  });

  it('a timeout-style signal aborts the wait at its own time, before the pool deadline, with its reason', async () => {
    await using h = setup({ max: 1, acquireTimeoutMs: 30_000 });
    const { pool, clock } = h;
    const holder = await pool.acquire();

    const signal = virtualTimeoutSignal(clock, 300);
    const acquire = track(pool.acquire({ signal }));
    await clock.advance(299);
    expect(acquire.state).toBe('pending');
    await clock.advance(1);
    expect(acquire.state).toBe('rejected');
    expect(acquire.error).toBe(signal.reason);
    expect(acquire.error).toMatchObject({ name: 'TimeoutError' });
    expect(pool.stats()).toMatchObject({ waiting: 0, aborted: 1, timedOut: 0 });

    // The slot was not lost: the holder's release goes back to the pool.
    await holder.release();
    expect(pool.stats()).toMatchObject({ idle: 1, leased: 0 });
  });
});
