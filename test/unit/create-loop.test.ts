// Create retries: backoff and jitter, deadlines, who the retries are for, non-retryable errors, misuse (M8-M10).
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  AcquireTimeoutError,
  CreateResourceError,
  CreateTimeoutError,
  createPool,
  type Adapter,
  type Lease,
  type RetryOptions,
} from '../../src/index.js';
import { codedError, type FakeResource } from '../support/fake-adapter.js';
import { clock, closeAfterTest, errors, fake, track, usePerTestPools } from '../support/harness.js';

/** Retry tests keep the breaker out of the way unless they say otherwise. */
const makePool = usePerTestPools({ keepaliveMs: Infinity, circuitBreaker: false });

afterEach(() => {
  vi.restoreAllMocks();
});

/** The fake adapter, also recording the virtual time of every create attempt. */
function timedAdapter(): { adapter: Adapter<FakeResource>; attemptTimes: number[] } {
  const adapter = fake.adapter();
  const create = adapter.create;
  const attemptTimes: number[] = [];
  adapter.create = (ctx) => {
    attemptTimes.push(clock.now());
    return create(ctx);
  };
  return { adapter, attemptTimes };
}

const gaps = (times: number[]): number[] => times.slice(1).map((t, i) => t - times[i]!);

/** The deterministic delay before retry n (0-based), from the options: min * factor^n, capped. */
const baseDelay = (r: Required<Pick<RetryOptions, 'minTimeoutMs' | 'factor' | 'maxTimeoutMs'>>, n: number): number =>
  Math.min(r.minTimeoutMs * r.factor ** n, r.maxTimeoutMs);

describe('backoff between failed creates', () => {
  it('without jitter, attempts are spaced minTimeoutMs * factor^n apart, capped at maxTimeoutMs', async () => {
    const retry = { minTimeoutMs: 100, factor: 3, maxTimeoutMs: 2000 };
    const { adapter, attemptTimes } = timedAdapter();
    fake.defaults.create = { kind: 'fail' };
    const pool = makePool({ adapter, retry: { ...retry, randomize: false }, acquireTimeoutMs: 60_000 });
    const acquiring = track(pool.acquire());

    await clock.advance(7400);
    // gaps 100, 300, 900, 2000 (2700 capped), 2000, 2000
    expect(attemptTimes).toEqual([0, 100, 400, 1300, 3300, 5300, 7300]);
    expect(gaps(attemptTimes)).toEqual([0, 1, 2, 3, 4, 5].map((n) => baseDelay(retry, n)));
    expect(acquiring.done).toBe(false);
    expect(pool.stats().createFailed).toBe(7);
  });

  it('with jitter (randomize: true), each delay is in [d, 2d) and the delays are not in lockstep', async () => {
    const retry = { minTimeoutMs: 100, factor: 2, maxTimeoutMs: 1_000_000 };
    const { adapter, attemptTimes } = timedAdapter();
    fake.defaults.create = { kind: 'fail' };
    const pool = makePool({ adapter, retry: { ...retry, randomize: true }, acquireTimeoutMs: 60_000 });
    const acquiring = track(pool.acquire());

    await clock.advance(2 * 100 * (2 ** 7 - 1)); // enough for 8 attempts even at the longest jitter
    expect(attemptTimes.length).toBeGreaterThanOrEqual(8);
    const observed = gaps(attemptTimes).slice(0, 7);
    const ratios = observed.map((gap, n) => gap / baseDelay(retry, n));
    for (const ratio of ratios) {
      expect(ratio).toBeGreaterThanOrEqual(1);
      expect(ratio).toBeLessThan(2);
    }
    // Jittered: the random factor differs between retries.
    expect(new Set(ratios.map((r) => r.toFixed(6))).size).toBeGreaterThan(1);
    expect(acquiring.done).toBe(false);
  });

  it('the jitter multiplies the delay by the random factor (Math.random() = 0.5 gives 1.5 d)', async () => {
    vi.spyOn(Math, 'random').mockReturnValue(0.5);
    const retry = { minTimeoutMs: 100, factor: 2, maxTimeoutMs: 1_000_000 };
    const { adapter, attemptTimes } = timedAdapter();
    fake.defaults.create = { kind: 'fail' };
    const pool = makePool({ adapter, retry: { ...retry, randomize: true }, acquireTimeoutMs: 60_000 });
    track(pool.acquire());

    await clock.advance(1500 * 1.5 - 1);
    expect(gaps(attemptTimes)).toEqual([150, 300, 600]);
    await clock.advance(1);
    expect(gaps(attemptTimes)).toEqual([150, 300, 600, 1200]);
  });

  it('the backoff starts over after a successful create', async () => {
    const { adapter, attemptTimes } = timedAdapter();
    const pool = makePool({ adapter, retry: { randomize: false, minTimeoutMs: 100, factor: 2 } });
    fake.failCreates(3);
    const first = track(pool.acquire());
    await clock.advance(700); // attempts at 0, 100, 300, success at 700
    expect(first.ok).toBe(true);
    expect(pool.stats().consecutiveCreateFailures).toBe(0);

    fake.failCreates(1);
    const second = track(pool.acquire()); // needs a second resource
    await clock.advance(99);
    expect(second.done).toBe(false);
    await clock.advance(1);
    expect(second.ok).toBe(true);
    expect(attemptTimes).toEqual([0, 100, 300, 700, 700, 800]);
    await first.value!.release();
    await second.value!.release();
  });
});

describe('retries and the waiters they serve', () => {
  it("never retry past the waiter's deadline; the waiter times out with the last create error as cause", async () => {
    const { adapter, attemptTimes } = timedAdapter();
    const lastError = codedError('connect ECONNREFUSED (attempt 4)', 'ECONNREFUSED');
    fake.failCreates(3);
    fake.script.create.push({ kind: 'fail', error: lastError });
    fake.defaults.create = { kind: 'fail' };
    const pool = makePool({ adapter, retry: { randomize: false, minTimeoutMs: 100, factor: 2, maxTimeoutMs: 10_000 } });
    const acquiring = track(pool.acquire({ timeoutMs: 1000 }));

    // Attempts at 0, 100, 300, 700; the next would be at 1500, after the deadline: not started.
    await clock.advance(999);
    expect(attemptTimes).toEqual([0, 100, 300, 700]);
    expect(acquiring.done).toBe(false);

    await clock.advance(1);
    expect(acquiring.ok).toBe(false);
    expect(acquiring.at).toBe(1000);
    const error = acquiring.error as AcquireTimeoutError;
    expect(error).toBeInstanceOf(AcquireTimeoutError);
    expect(error.code).toBe('POOL_ACQUIRE_TIMEOUT');
    expect(error.cause).toBe(lastError);

    await clock.advance(30_000);
    expect(fake.createAttempts).toBe(4);
    expect(pool.stats().creating).toBe(0);
  });

  it('stop once the last waiter aborts: no more create attempts', async () => {
    fake.defaults.create = { kind: 'fail' };
    const pool = makePool({ retry: { randomize: false, minTimeoutMs: 100, factor: 2 }, acquireTimeoutMs: 60_000 });
    const controller = new AbortController();
    const acquiring = track(pool.acquire({ signal: controller.signal }));
    await clock.advance(1000); // attempts at 0, 100, 300, 700; the next is due at 1500
    expect(fake.createAttempts).toBe(4);

    const reason = new Error('caller gave up');
    controller.abort(reason);
    await clock.advance(0);
    expect(acquiring.error).toBe(reason);

    await clock.advance(120_000);
    expect(fake.createAttempts).toBe(4);
    expect(pool.stats().creating).toBe(0);
  });

  it('stop once the last waiter times out, even with time left in the backoff schedule', async () => {
    fake.defaults.create = { kind: 'fail' };
    const pool = makePool({ max: 4, retry: { randomize: false, minTimeoutMs: 100, factor: 1 } });
    const a = track(pool.acquire({ timeoutMs: 250 }));
    const b = track(pool.acquire({ timeoutMs: 450 }));
    await clock.advance(450);
    expect(a.error).toBeInstanceOf(AcquireTimeoutError);
    expect(b.error).toBeInstanceOf(AcquireTimeoutError);
    const attempts = fake.createAttempts;
    expect(attempts).toBeGreaterThan(2);

    await clock.advance(120_000);
    expect(fake.createAttempts).toBe(attempts);
    expect(pool.stats().creating).toBe(0);
  });

  it('keep retrying with nobody waiting while the pool is below min, until min is reached', async () => {
    fake.failCreates(5);
    const pool = makePool({ min: 1, retry: { randomize: false, minTimeoutMs: 100, factor: 2 } });
    await clock.advance(3100); // attempts at 0, 100, 300, 700, 1500, 3100
    expect(fake.createAttempts).toBe(6);
    expect(pool.stats().size).toBe(1);
    expect(errors).toHaveLength(5); // nobody waited: every failure went to onError

    await clock.advance(60_000);
    expect(fake.createAttempts).toBe(6);
  });
});

describe('failures that end the acquire', () => {
  it('a non-retryable error fails the waiting acquire at once with CreateResourceError, one attempt per acquire', async () => {
    const fatal = codedError('password authentication failed for user "app"', 'FATAL');
    fake.defaults.create = { kind: 'fail', error: fatal };
    const pool = makePool({ max: 1, retry: { randomize: false, minTimeoutMs: 100 } });
    const acquiring = [track(pool.acquire()), track(pool.acquire()), track(pool.acquire())];
    await clock.advance(0);

    for (const outcome of acquiring) {
      expect(outcome.done).toBe(true);
      expect(outcome.at).toBe(0);
      const error = outcome.error as CreateResourceError;
      expect(error).toBeInstanceOf(CreateResourceError);
      expect(error.code).toBe('POOL_CREATE_FAILED');
      expect(error.cause).toBe(fatal);
    }
    expect(fake.createAttempts).toBe(3);
    expect(pool.stats().rejected.createFailed).toBe(3);

    await clock.advance(10_000);
    expect(fake.createAttempts).toBe(3);
    expect(pool.stats().creating).toBe(0);
  });

  it('retries exhausted: CreateResourceError with the last create error as cause', async () => {
    const last = codedError('connect ETIMEDOUT', 'ETIMEDOUT');
    fake.failCreates(2);
    fake.script.create.push({ kind: 'fail', error: last });
    const pool = makePool({ retry: { retries: 2, randomize: false, minTimeoutMs: 100, factor: 2 } });
    const acquiring = track(pool.acquire({ timeoutMs: 60_000 }));

    await clock.advance(299);
    expect(acquiring.done).toBe(false);
    await clock.advance(1); // attempts at 0, 100, 300: 1 + 2 retries
    expect(acquiring.done).toBe(true);
    const error = acquiring.error as CreateResourceError;
    expect(error).toBeInstanceOf(CreateResourceError);
    expect(error.code).toBe('POOL_CREATE_FAILED');
    expect(error.cause).toBe(last);
    expect(error.attempts).toBe(3);
    expect(fake.createAttempts).toBe(3);

    await clock.advance(60_000);
    expect(fake.createAttempts).toBe(3);
  });
});

describe('misbehaving create (M8, M9, M10)', () => {
  it('M8: a create that throws synchronously is a failed attempt: retried, and the acquire succeeds', async () => {
    const thrown = new Error('factory threw synchronously');
    fake.script.create.push({ kind: 'throw', error: thrown });
    const pool = makePool({ max: 1, retry: { randomize: false, minTimeoutMs: 100 } });
    const acquiring = track(pool.acquire());
    await clock.advance(0);
    expect(acquiring.done).toBe(false);
    expect(pool.stats().createFailed).toBe(1);

    await clock.advance(100);
    expect(acquiring.ok).toBe(true);
    expect(fake.createAttempts).toBe(2);
    await acquiring.value!.release();
  });

  it('M8: with no retries left, a synchronous throw fails the acquire with its cause and frees the slot', async () => {
    const thrown = new Error('factory threw synchronously');
    fake.script.create.push({ kind: 'throw', error: thrown });
    const pool = makePool({ max: 1, retry: { retries: 0, randomize: false, minTimeoutMs: 100 } });
    const acquiring = track(pool.acquire());
    await clock.advance(0);
    expect(acquiring.error).toBeInstanceOf(CreateResourceError);
    expect((acquiring.error as CreateResourceError).cause).toBe(thrown);
    expect(pool.stats().creating).toBe(0);
    expect(pool.stats().size).toBe(0);

    // Not wedged: the only slot is usable again, once the failure's backoff has passed.
    const next = track(pool.acquire());
    await clock.advance(100);
    expect(next.ok).toBe(true);
    expect(next.at).toBe(100);
    expect(fake.createAttempts).toBe(2);
    await next.value!.release();
  });

  it('M9: a create resolving undefined or null fails clearly and frees the slot', async () => {
    interface Thing {
      readonly id: number;
    }
    const results: Array<Thing | undefined | null> = [undefined, null];
    const destroyed: unknown[] = [];
    let ids = 0;
    /** Resolves the scripted results first (undefined, null), then real things. */
    const emptyHandedAdapter: Adapter<Thing> = {
      create: async () => (results.length > 0 ? results.shift() : { id: ++ids }) as Thing,
      destroy: async (thing) => {
        destroyed.push(thing);
      },
    };
    const pool = createPool<Thing>({ adapter: emptyHandedAdapter, clock, max: 1, onError: (error) => errors.push(error) });
    closeAfterTest(pool);

    for (const got of ['undefined', 'null']) {
      const acquiring = track(pool.acquire());
      await clock.advance(0);
      const error = acquiring.error as CreateResourceError;
      expect(error).toBeInstanceOf(CreateResourceError);
      expect(error.cause).toBeInstanceOf(TypeError);
      expect((error.cause as TypeError).message).toMatch(/resolved no resource/);
      expect((error.cause as TypeError).message).toContain(got);
      expect(pool.stats().creating).toBe(0);
      expect(pool.stats().size).toBe(0);
    }
    expect(destroyed).toEqual([]); // nothing to destroy, and no destroy(undefined)

    const lease = track(pool.acquire());
    await clock.advance(0);
    expect(lease.ok).toBe(true);
    expect((lease.value as Lease<Thing>).resource).toEqual({ id: 1 });
    await lease.value!.release();
  });

  it('M10: createTimeoutMs bounds each attempt of a create that never settles; its signal is aborted; attempts are retried', async () => {
    const { adapter, attemptTimes } = timedAdapter();
    fake.defaults.create = { kind: 'never' };
    const pool = makePool({ adapter, createTimeoutMs: 100, retry: { randomize: false, minTimeoutMs: 50, factor: 2 } });
    const acquiring = track(pool.acquire({ timeoutMs: 1000 }));

    await clock.advance(99);
    expect(fake.createSignals).toHaveLength(1);
    expect(fake.createSignals[0]!.aborted).toBe(false);
    await clock.advance(1);
    expect(fake.createSignals[0]!.aborted).toBe(true);
    expect(fake.createSignals[0]!.reason).toBeInstanceOf(CreateTimeoutError);

    // Attempts at 0, 150, 350, 650 (each 100 ms, then 50, 100, 200 of backoff); the next would end after the deadline.
    await clock.advance(900);
    expect(attemptTimes).toEqual([0, 150, 350, 650]);
    for (const signal of fake.createSignals) expect(signal.aborted).toBe(true);
    expect(pool.stats().creating).toBe(0);
    const error = acquiring.error as AcquireTimeoutError;
    expect(error).toBeInstanceOf(AcquireTimeoutError);
    expect(acquiring.at).toBe(1000);
    expect(error.cause).toBeInstanceOf(CreateTimeoutError);
    expect((error.cause as CreateTimeoutError).code).toBe('POOL_CREATE_TIMEOUT');
  });

  it('M10: a resource that arrives after its attempt timed out is destroyed, never leaked', async () => {
    fake.script.create.push({ kind: 'slow', ms: 150 });
    const pool = makePool({ max: 2, createTimeoutMs: 100, retry: { randomize: false, minTimeoutMs: 10 } });
    const acquiring = track(pool.acquire());
    await clock.advance(110); // first attempt timed out at 100, second succeeded at 110
    expect(acquiring.ok).toBe(true);

    await clock.advance(40); // t = 150: the late resource arrives
    expect(fake.created).toBe(2);
    expect(fake.destroyed).toBe(1);
    expect(fake.live.size).toBe(1);
    expect([...fake.live][0]).toBe(acquiring.value!.resource);
    expect(pool.stats().size).toBe(1);
    await acquiring.value!.release();
  });
});

describe('no busy loop', () => {
  it('while creates always fail, attempts over 10 s are bounded by the backoff', async () => {
    const retry = { minTimeoutMs: 100, factor: 2, maxTimeoutMs: 1000 };
    const max = 5;
    const maxConnecting = 4;
    const windowMs = 10_000;
    fake.defaults.create = { kind: 'fail' };
    const pool = makePool({ max, maxConnecting, retry: { ...retry, randomize: true }, acquireTimeoutMs: 60_000 });
    const waiters = Array.from({ length: 10 }, () => track(pool.acquire()));

    await clock.advance(windowMs);
    // Each of at most maxConnecting concurrent creates waits at least baseDelay(n) before retry n.
    let perCreate = 1;
    for (let elapsed = baseDelay(retry, 0), n = 0; elapsed <= windowMs; elapsed += baseDelay(retry, ++n)) perCreate++;
    const bound = maxConnecting * perCreate;
    expect(perCreate).toBe(13); // attempts at 0, 100, 300, 700, 1500, 2500, ..., 9500
    expect(fake.createAttempts).toBeGreaterThanOrEqual(maxConnecting);
    expect(fake.createAttempts).toBeLessThanOrEqual(bound);
    // FAULTS I10: attempts/s <= max / retry.minTimeout.
    expect(fake.createAttempts / (windowMs / 1000)).toBeLessThanOrEqual(max / (retry.minTimeoutMs / 1000));
    expect(pool.stats().creating).toBeLessThanOrEqual(maxConnecting);
    for (const w of waiters) expect(w.done).toBe(false);
  });
});
