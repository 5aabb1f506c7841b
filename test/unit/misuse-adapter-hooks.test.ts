// Misbehaving adapter hooks (M8–M13): adapter.create throwing, resolving nothing or never
// settling; ping hanging or failing; adapter.destroy throwing, rejecting or hanging. The pool
// frees the slot, reports, and is never wedged.
// Part of the FAULTS.md §5 misuse checklist (M1–M32, one `describe` per case, split by concern
// across test/unit/misuse-*.test.ts; shared set-up in test/support/misuse.ts).
import { afterEach, describe, expect, it } from 'vitest';
import { createPool, CreateResourceError, CreateTimeoutError, DestroyTimeoutError, PingTimeoutError } from '../../src/index.js';
import { closeOnClock, errorOf, track } from '../support/harness.js';
import { acquireNow, build, closeMisusePools, idleResources } from '../support/misuse.js';
import { VirtualClock } from '../support/virtual-clock.js';

afterEach(closeMisusePools);

// ---------------------------------------------------------------- M8–M13: misbehaving adapter hooks

describe('M8 adapter.create throws synchronously', () => {
  it('is a rejected create: with no retries the acquire rejects with it as cause, the slot is freed, the pool is not wedged', async () => {
    const b = build({ max: 1, retry: { retries: 0, randomize: false, minTimeoutMs: 10 } });
    const boom = new Error('factory threw synchronously');
    b.fake.script.create.push({ kind: 'throw', error: boom });
    const acquiring = track(b.pool.acquire(), b.clock);
    await b.clock.advance(0);
    expect(acquiring.error).toBeInstanceOf(CreateResourceError);
    expect((acquiring.error as CreateResourceError).cause).toBe(boom);
    expect(b.pool.stats()).toMatchObject({ size: 0, creating: 0, waiting: 0 });

    const next = track(b.pool.acquire(), b.clock);
    await b.clock.advance(10); // after the failure's backoff
    expect(next.ok).toBe(true);
    await next.value!.release();
  });

  it('with retries, it is retried like any failed attempt and the acquire succeeds', async () => {
    const b = build({ max: 1, retry: { randomize: false, minTimeoutMs: 10 } });
    b.fake.script.create.push({ kind: 'throw' });
    const acquiring = track(b.pool.acquire(), b.clock);
    await b.clock.advance(10);
    expect(acquiring.ok).toBe(true);
    expect(b.fake.createAttempts).toBe(2);
    await acquiring.value!.release();
  });
});

describe('M9 adapter.create resolves undefined / null / non-object', () => {
  it.each([undefined, null])('resolving %s fails the acquire with a TypeError cause ("resolved no resource"); slot freed, destroy not called', async (value) => {
    let destroys = 0;
    const clock = new VirtualClock();
    const pool = createPool<object>({
      adapter: { create: async () => value as unknown as object, destroy: async () => void destroys++ },
      clock,
      retry: { retries: 0 },
      onError: () => {},
    });
    try {
      const error = await errorOf(pool.acquire());
      expect(error).toBeInstanceOf(CreateResourceError);
      expect((error as CreateResourceError).cause).toBeInstanceOf(TypeError);
      expect(((error as CreateResourceError).cause as TypeError).message).toMatch(/resolved no resource/);
      expect(pool.stats()).toMatchObject({ size: 0, creating: 0, waiting: 0 });
      expect(destroys).toBe(0);
    } finally {
      await closeOnClock(clock, [pool]);
    }
  });

  // n/a for "non-object": Adapter<T> is generic, and a primitive can be a real resource
  // (a file descriptor, a handle id); 0 must not be mistaken for "no resource".
  it('(n/a: T is generic) a primitive resource such as 0 is a valid resource', async () => {
    const clock = new VirtualClock();
    const pool = createPool<number>({ adapter: { create: async () => 0, destroy: async () => {} }, clock });
    try {
      const lease = track(pool.acquire(), clock);
      await clock.advance(0);
      expect(lease.value!.resource).toBe(0);
      await lease.value!.release();
      expect(pool.stats()).toMatchObject({ size: 1, idle: 1 });
    } finally {
      await closeOnClock(clock, [pool]);
    }
  });
});

describe('M10 adapter.create never settles (or settles too late)', () => {
  it('CreateTimeoutError after createTimeoutMs (as the cause); the create signal aborts; the late value is destroyed, not leaked', async () => {
    const b = build({ max: 1, createTimeoutMs: 100, retry: { retries: 0, randomize: false, minTimeoutMs: 10 } });
    b.fake.script.create.push({ kind: 'slow', ms: 150 });
    const acquiring = track(b.pool.acquire(), b.clock);
    await b.clock.advance(99);
    expect(acquiring.done).toBe(false);
    await b.clock.advance(1);
    expect(acquiring.error).toBeInstanceOf(CreateResourceError);
    expect((acquiring.error as CreateResourceError).cause).toBeInstanceOf(CreateTimeoutError);
    expect(acquiring.at).toBe(100);
    expect(b.fake.createSignals[0]!.aborted).toBe(true);
    expect(b.fake.createSignals[0]!.reason).toBeInstanceOf(CreateTimeoutError);
    expect(b.pool.stats()).toMatchObject({ size: 0, creating: 0 });

    await b.clock.advance(50); // t = 150: the resource arrives, nobody wants it
    expect(b.fake.created).toBe(1);
    expect(b.fake.destroyed).toBe(1);
    expect(b.fake.live.size).toBe(0);
    expect(b.pool.stats().size).toBe(0);

    const next = await acquireNow(b); // not wedged
    await next.release();
  });
});

describe('M11 ping (validate) hangs', () => {
  it('PingTimeoutError aborts it at pingTimeoutMs, the resource is destroyed, and the same acquire goes on with the next idle one', async () => {
    const pingSignals: AbortSignal[] = [];
    const b = build({ pingIfIdleMs: 100, pingTimeoutMs: 300, acquireTimeoutMs: 5000 }, (adapter) => {
      const ping = adapter.ping!;
      adapter.ping = (resource, signal) => {
        pingSignals.push(signal);
        return ping(resource, signal);
      };
    });
    const [healthy, hanging] = await idleResources(b, 2, 200); // `hanging` was released last: tried first
    b.fake.script.ping.push({ kind: 'never' }, { kind: 'ok' });

    const acquiring = track(b.pool.acquire(), b.clock);
    const start = b.clock.now();
    await b.clock.advance(299);
    expect(acquiring.done).toBe(false);
    await b.clock.advance(1);
    expect(pingSignals[0]!.aborted).toBe(true);
    expect(pingSignals[0]!.reason).toBeInstanceOf(PingTimeoutError);
    expect(hanging!.destroyed).toBe(true);
    expect(acquiring.ok).toBe(true);
    expect(acquiring.at).toBe(start + 300);
    expect(acquiring.value!.resource).toBe(healthy);
    expect(b.fake.createAttempts).toBe(2); // no new create: the next idle resource served
    expect(b.pool.stats().destroyedByReason.pingFailed).toBe(1);
    await acquiring.value!.release();
  });
});

describe('M12 ping throws synchronously / rejects (non-boolean result: n/a, ping returns Promise<void>)', () => {
  it.each(['throw', 'fail'] as const)('a ping that does %s counts as failed: destroyed (pingFailed), the acquire gets a fresh resource', async (kind) => {
    const b = build({ pingIfIdleMs: 100 });
    const [stale] = await idleResources(b, 1, 200);
    b.fake.script.ping.push({ kind, error: new Error('ping exploded') });
    const lease = await acquireNow(b);
    expect(lease.resource).not.toBe(stale);
    expect(stale!.destroyed).toBe(true);
    expect(b.pool.stats()).toMatchObject({ size: 1, destroyedByReason: { pingFailed: 1 } });
    await lease.release();
  });

  // FAULTS' "validate returns non-boolean" does not apply: a ping is a round trip whose
  // rejection is the failure; whatever it resolves with means "healthy".
  it('(n/a) a ping resolving any value (even false) means healthy', async () => {
    const b = build({ pingIfIdleMs: 100 }, (adapter) => {
      adapter.ping = async () => false as unknown as void;
    });
    const [resource] = await idleResources(b, 1, 200);
    const lease = await acquireNow(b);
    expect(lease.resource).toBe(resource);
    expect(b.pool.stats().destroyed).toBe(0);
    await lease.release();
  });
});

describe('M13 adapter.destroy throws / rejects / hangs', () => {
  it.each([
    ['throws synchronously', { kind: 'throw', error: new Error('destroy threw') }, 'destroy threw'],
    ['rejects', { kind: 'fail', error: new Error('destroy rejected') }, 'destroy rejected'],
  ] as const)('destroy that %s: the error goes to onError, the slot is freed at once', async (_label, behaviour, message) => {
    const b = build({ max: 1 });
    b.fake.script.destroy.push(behaviour);
    const lease = await acquireNow(b);
    const waiter = track(b.pool.acquire(), b.clock);
    await expect(lease.destroy()).resolves.toBeUndefined();
    await b.clock.advance(0);
    expect(b.errors.map((e) => (e as Error).message)).toEqual([message]);
    expect(waiter.ok).toBe(true);
    expect(b.pool.stats()).toMatchObject({ size: 1, leased: 1, destroying: 0 });
    await waiter.value!.release();
  });

  it('destroy that hangs: bounded by destroyTimeoutMs, DestroyTimeoutError to onError, the slot freed at once', async () => {
    const b = build({ max: 1, destroyTimeoutMs: 100 });
    b.fake.script.destroy.push({ kind: 'never' });
    const lease = await acquireNow(b);
    const waiter = track(b.pool.acquire(), b.clock);
    void lease.destroy();
    await b.clock.advance(0);
    expect(waiter.ok).toBe(true); // did not wait for the hanging destroy
    expect(b.pool.stats().destroying).toBe(1);
    await b.clock.advance(100);
    expect(b.errors).toHaveLength(1);
    expect(b.errors[0]).toBeInstanceOf(DestroyTimeoutError);
    expect(b.pool.stats().destroying).toBe(0);
    await waiter.value!.release();
  });
});
