// Deadlines: acquireTimeoutMs and per-call timeoutMs (one deadline over wait + create +
// ping), the AcquireTimeoutError they produce, and createTimeoutMs on each create attempt.
import { describe, expect, it } from 'vitest';
import { AcquireTimeoutError, CreateTimeoutError, type Lease } from '../../src/index.js';
import { codedError, type FakeResource } from '../support/fake-adapter.js';
import { setup, slowCreates, slowCreatesAfterFirst, track, type Tracked } from '../support/harness.js';
import { flush } from '../support/virtual-clock.js';

/** The AcquireTimeoutError an acquire was rejected with (fails the test for anything else). */
function timeoutOf(acquire: Tracked<unknown>): AcquireTimeoutError {
  expect(acquire.state).toBe('rejected');
  expect(acquire.error).toBeInstanceOf(AcquireTimeoutError);
  return acquire.error as AcquireTimeoutError;
}

describe('acquire deadline', () => {
  it('rejects with AcquireTimeoutError exactly at the deadline when the pool is saturated', async () => {
    await using h = setup({ max: 1, acquireTimeoutMs: 1_000 });
    const { pool, clock } = h;
    const holder = await pool.acquire();

    const acquire = track(pool.acquire());
    await clock.advance(999);
    expect(acquire.state).toBe('pending');
    expect(pool.stats().waiting).toBe(1);

    await clock.advance(1);
    const error = timeoutOf(acquire);
    expect(error.code).toBe('POOL_ACQUIRE_TIMEOUT');
    expect(error.timeoutMs).toBe(1_000);
    expect(error.message).toMatch(/saturated/);
    expect(error.message).toContain('1000 ms');
    expect(error.stats).toEqual({ max: 1, size: 1, idle: 0, leased: 1, creating: 0, waiting: 1 });
    expect(error.cause).toBeUndefined();
    expect(pool.stats()).toMatchObject({ waiting: 0, timedOut: 1, leased: 1 });
    await holder.release();
  });

  it('says resources could not be created, with the last create error as cause, when creates were failing', async () => {
    await using h = setup(
      { max: 2, acquireTimeoutMs: 1_000, circuitBreaker: false, retry: { minTimeoutMs: 100, factor: 2, randomize: false } },
      {
        prepare: (fake) => {
          for (let i = 0; i < 50; i++) fake.failCreates(1, codedError(`connect ECONNREFUSED (attempt ${i + 1})`, 'ECONNREFUSED'));
        },
      },
    );
    const { pool, clock, fake } = h;
    const failures = [...fake.script.create].map((behaviour) => (behaviour as { error: unknown }).error);

    const acquire = track(pool.acquire());
    await clock.advance(999);
    expect(acquire.state).toBe('pending');
    await clock.advance(1);

    const error = timeoutOf(acquire);
    expect(fake.createAttempts).toBeGreaterThan(1);
    expect(error.cause).toBe(failures[fake.createAttempts - 1]);
    expect(error.message).toMatch(/could not be created/);
    expect(error.message).toContain(`attempt ${fake.createAttempts}`);
    expect(error.stats).toMatchObject({ max: 2, size: 0, idle: 0, leased: 0, waiting: 1 });
  });

  it('per-call timeoutMs overrides acquireTimeoutMs, shorter or longer, each waiter expiring at its own deadline', async () => {
    await using h = setup({ max: 1, acquireTimeoutMs: 1_000 });
    const { pool, clock } = h;
    const holder = await pool.acquire();

    const short = track(pool.acquire({ timeoutMs: 200 }));
    const long = track(pool.acquire({ timeoutMs: 5_000 }));
    const byDefault = track(pool.acquire());

    await clock.advance(199);
    expect([short.state, long.state, byDefault.state]).toEqual(['pending', 'pending', 'pending']);
    await clock.advance(1);
    expect(timeoutOf(short).timeoutMs).toBe(200);
    expect([long.state, byDefault.state]).toEqual(['pending', 'pending']);

    await clock.advance(799);
    expect(byDefault.state).toBe('pending');
    await clock.advance(1);
    expect(timeoutOf(byDefault).timeoutMs).toBe(1_000);
    expect(long.state).toBe('pending');

    await clock.advance(3_999);
    expect(long.state).toBe('pending');
    await clock.advance(1);
    expect(timeoutOf(long).timeoutMs).toBe(5_000);
    expect(pool.stats()).toMatchObject({ waiting: 0, timedOut: 3 });
    await holder.release();
  });

  it('expires out-of-order deadlines in one queue each at its own time, keeping the others in FIFO order', async () => {
    await using h = setup({ max: 1, acquireTimeoutMs: 60_000 });
    const { pool, clock } = h;
    const holder = await pool.acquire();

    const timeouts = [500, 100, 300, 200, 400];
    const acquires = timeouts.map((timeoutMs) => track(pool.acquire({ timeoutMs })));
    const survivor = track(pool.acquire({ timeoutMs: Infinity }));
    const rejectedAt = (): number[] => acquires.flatMap((a, i) => (a.state === 'rejected' ? [timeouts[i]!] : []));

    for (const deadline of [100, 200, 300, 400, 500]) {
      await clock.advance(deadline - 1 - clock.now());
      expect(rejectedAt(), `at ${clock.now()} ms`).toEqual(timeouts.filter((t) => t < deadline));
      await clock.advance(1);
      expect(rejectedAt(), `at ${clock.now()} ms`).toEqual(timeouts.filter((t) => t <= deadline));
    }
    for (const acquire of acquires) expect(acquire.error).toBeInstanceOf(AcquireTimeoutError);

    expect(survivor.state).toBe('pending');
    await holder.release();
    await flush();
    expect(survivor.state).toBe('fulfilled');
    await survivor.value!.release();
  });

  describe('one deadline covers wait, create and ping', () => {
    it('a create slower than the deadline times the acquire out at the deadline; the resource then goes idle', async () => {
      await using h = setup({ max: 1, acquireTimeoutMs: 100 }, { prepare: slowCreates(250) });
      const { pool, clock, fake } = h;

      const acquire = track(pool.acquire());
      await clock.advance(99);
      expect(acquire.state).toBe('pending');
      await clock.advance(1);
      const error = timeoutOf(acquire);
      expect(error.reason).toBe('slow-create');
      expect(error.stats).toMatchObject({ size: 0, creating: 1, waiting: 1 });

      await clock.advance(150);
      expect(pool.stats()).toMatchObject({ size: 1, idle: 1, creating: 0 });
      expect(fake.live.size).toBe(1);
      const lease = await pool.acquire();
      expect(fake.live.has(lease.resource)).toBe(true);
      expect(fake.createAttempts).toBe(1);
      await lease.release();
    });

    it('time spent waiting counts: a create started late in the wait is cut off at the original deadline', async () => {
      await using h = setup({ max: 1, acquireTimeoutMs: 100 }, { prepare: slowCreatesAfterFirst(50) });
      const { pool, clock } = h;
      const holder = await pool.acquire();

      const acquire = track(pool.acquire());
      await clock.advance(60);
      await holder.destroy(); // frees the slot: a 50 ms create starts at 60 ms, ending at 110 ms
      expect(pool.stats().creating).toBe(1);

      await clock.advance(39);
      expect(acquire.state).toBe('pending');
      await clock.advance(1);
      expect(timeoutOf(acquire).reason).toBe('slow-create');

      await clock.advance(10);
      expect(pool.stats()).toMatchObject({ size: 1, idle: 1 });
    });

    it('a borrow-time ping is bounded by the deadline', async () => {
      await using h = setup({ max: 1, acquireTimeoutMs: 100, pingIfIdleMs: 0 }, { prepare: slowCreatesAfterFirst(50) });
      const { pool, clock, fake } = h;
      const first = await pool.acquire();
      await first.release();
      await clock.advance(10);

      // The idle resource needs a ping on borrow, and that ping hangs (pingTimeoutMs is 5 s by default).
      fake.script.ping.push({ kind: 'never' });
      const acquire = track(pool.acquire());
      await flush();
      expect(pool.stats().checking).toBe(1);
      await clock.advance(99);
      expect(acquire.state).toBe('pending');
      expect(pool.stats().checking).toBe(1);

      await clock.advance(1);
      expect(timeoutOf(acquire).timeoutMs).toBe(100);
      expect(pool.stats()).toMatchObject({ checking: 0, timedOut: 1, destroyedByReason: { pingFailed: 1 } });

      // The replacement created for the expired waiter is kept, not leaked.
      await clock.advance(50);
      expect(pool.stats()).toMatchObject({ size: 1, idle: 1 });
      expect(fake.live.size).toBe(1);
    });
  });

  it('Infinity acquireTimeoutMs waits as long as it takes', async () => {
    await using h = setup({ max: 1, acquireTimeoutMs: Infinity, maxLifetimeMs: Infinity });
    const { pool, clock } = h;
    const holder = await pool.acquire();
    const resource = holder.resource;

    const acquire = track(pool.acquire());
    await clock.advance(7 * 24 * 3_600_000);
    expect(acquire.state).toBe('pending');
    expect(pool.stats()).toMatchObject({ waiting: 1, timedOut: 0 });

    await holder.release();
    await flush();
    expect(acquire.state).toBe('fulfilled');
    expect(acquire.value!.resource).toBe(resource);
    await acquire.value!.release();
  });
});

describe('createTimeoutMs', () => {
  it('bounds a create that never settles, then retries within the acquire deadline', async () => {
    await using h = setup(
      { max: 1, acquireTimeoutMs: 1_000, createTimeoutMs: 100, retry: { minTimeoutMs: 10, maxTimeoutMs: 10, randomize: false } },
      { prepare: (fake) => fake.script.create.push({ kind: 'never' }) },
    );
    const { pool, clock, fake } = h;

    const acquire = track(pool.acquire());
    await clock.advance(99);
    expect(fake.createAttempts).toBe(1);
    expect(fake.createSignals[0]!.aborted).toBe(false);
    await clock.advance(1);
    expect(pool.stats().createFailed).toBe(1);
    const signal = fake.createSignals[0]!;
    expect(signal.aborted).toBe(true);
    expect(signal.reason).toBeInstanceOf(CreateTimeoutError);
    expect(signal.reason).toMatchObject({ code: 'POOL_CREATE_TIMEOUT' });

    expect(await clock.advanceUntil(() => acquire.state !== 'pending', 50)).toBe(true);
    expect(acquire.state).toBe('fulfilled');
    expect(fake.createAttempts).toBe(2);
    expect(clock.now()).toBeLessThan(1_000);
    await acquire.value!.release();
  });

  it('destroys the resource a timed-out attempt delivers late, never leaking it', async () => {
    await using h = setup(
      { max: 1, acquireTimeoutMs: 1_000, createTimeoutMs: 100, retry: { minTimeoutMs: 10, maxTimeoutMs: 10, randomize: false } },
      { prepare: (fake) => fake.script.create.push({ kind: 'slow', ms: 300 }) },
    );
    const { pool, clock, fake } = h;

    const acquire = track(pool.acquire());
    await clock.advance(100);
    expect(acquire.state).toBe('pending');
    expect(await clock.advanceUntil(() => acquire.state !== 'pending', 50)).toBe(true);
    const lease = acquire.value as Lease<FakeResource>;
    expect(fake.createAttempts).toBe(2);

    // At 300 ms the first attempt finally delivers: the pool must destroy it.
    await clock.advance(300 - clock.now());
    expect(fake.created).toBe(2);
    expect(fake.destroyed).toBe(1);
    expect([...fake.live]).toEqual([lease.resource]);
    expect(pool.stats()).toMatchObject({ size: 1, leased: 1, idle: 0 });
    await lease.release();
  });
});

describe('AcquireTimeoutError reports the deadline the caller asked for', () => {
  it('timeoutMs and the message carry 250, not the float noise of (now + 250) - now', async () => {
    await using h = setup({ max: 1 });
    const { pool, clock } = h;
    const holder = await pool.acquire();
    await clock.advance(4000.1); // (4000.1 + 250) - 4000.1 is 250.00000000000045
    const acquire = track(pool.acquire({ timeoutMs: 250 }));
    const fromDefault = track(pool.acquire({ timeoutMs: 3999.9 + 0.1 }));
    await clock.advance(4000);
    const error = timeoutOf(acquire);
    expect(error.timeoutMs).toBe(250);
    expect(error.message).toMatch(/^Timed out after 250 ms /);
    expect(timeoutOf(fromDefault).timeoutMs).toBe(3999.9 + 0.1);
    await holder.release();
  });
});

describe('many creates in flight', () => {
  it('maxConnecting 32 warms up without a "possible EventTarget memory leak" warning', async () => {
    const warnings: Error[] = [];
    const onWarning = (warning: Error): void => {
      warnings.push(warning);
    };
    process.on('warning', onWarning);
    try {
      await using h = setup({ max: 64, min: 64, maxConnecting: 32 }, { prepare: slowCreates(10) });
      const { pool, clock } = h;
      await clock.advance(0);
      expect(pool.stats().creating).toBe(32);
      const acquiring = Promise.all(Array.from({ length: 16 }, () => pool.acquire({ signal: new AbortController().signal })));
      await clock.advance(20);
      await pool.warmup();
      const leases = await acquiring;
      await Promise.all(leases.map((lease) => lease.release()));
      await new Promise((resolve) => setImmediate(resolve));
    } finally {
      process.off('warning', onWarning);
    }
    expect(warnings.map((w) => w.message)).toEqual([]);
  });
});
