// close(): idempotent drain, then destroy (FAULTS.md M19, M20, M21; I5).
import { describe, expect, it } from 'vitest';
import {
  createPool,
  DestroyTimeoutError,
  InvalidPoolOptionError,
  LeakDetectedError,
  LeaseReleasedError,
  PoolClosedError,
  type Lease,
  type Pool,
} from '../../src/index.js';
import { describeChild, runNode } from '../support/child-process.js';
import { FakeAdapter, type FakeResource } from '../support/fake-adapter.js';
import { errorOf, setupClosingAfterEach, track } from '../support/harness.js';
import { VirtualClock } from '../support/virtual-clock.js';

const setup = setupClosingAfterEach();

describe('close() is idempotent (M20)', () => {
  it('returns the same promise on every call, and `closed` is true at once', async () => {
    const { pool } = setup();
    expect(pool.closed).toBe(false);
    const first = pool.close();
    expect(pool.closed).toBe(true);
    const second = pool.close();
    const third = pool.close({ timeoutMs: 5 });
    const disposed = pool[Symbol.asyncDispose]();
    expect(second).toBe(first);
    expect(third).toBe(first);
    expect(disposed).toBe(first);
    await first;
    expect(pool.close()).toBe(first);
    expect(pool.closed).toBe(true);
  });

  it('concurrent close() calls while leases are out all settle together', async () => {
    const { pool, clock } = setup();
    const lease = await pool.acquire();
    const a = track(pool.close({ timeoutMs: 1000 }));
    const b = track(pool.close());
    await clock.advance(10);
    expect(a.done).toBe(false);
    expect(b.done).toBe(false);
    await lease.release();
    await clock.advance(0);
    expect(a.done).toBe(true);
    expect(b.done).toBe(true);
  });
});

describe('acquires during and after close (M19, M21)', () => {
  it('queued acquires reject with PoolClosedError at close', async () => {
    const { pool, clock } = setup({ max: 1 });
    const held = await pool.acquire();
    const queued = [errorOf(pool.acquire()), errorOf(pool.acquire({ timeoutMs: 60_000 })), errorOf(pool.acquire({ priority: 5 }))];
    await clock.advance(0);
    expect(pool.stats().waiting).toBe(3);

    const closing = track(pool.close({ timeoutMs: 1000 }));
    for (const error of await Promise.all(queued)) {
      expect(error).toBeInstanceOf(PoolClosedError);
      expect((error as PoolClosedError).code).toBe('POOL_CLOSED');
    }
    expect(pool.stats()).toMatchObject({ waiting: 0, rejected: { closed: 3 } });
    expect(closing.done).toBe(false); // still waiting for the lease
    await held.release();
    await clock.advance(0);
    expect(closing.done).toBe(true);
  });

  it('a waiter whose create is in flight at close rejects with PoolClosedError at once', async () => {
    const { pool, fake, clock } = setup();
    fake.script.create.push({ kind: 'never' });
    const pending = track(pool.acquire());
    await clock.advance(0);
    expect(pool.stats().creating).toBe(1);
    const closing = track(pool.close({ timeoutMs: 100 }));
    await clock.advance(0);
    expect(pending.error).toBeInstanceOf(PoolClosedError);
    expect(closing.done).toBe(false); // the create has not settled yet
    await clock.advance(100);
    expect(closing.ok).toBe(true);
  });

  it('acquire after close returns a rejected promise (never a synchronous throw)', async () => {
    const { pool } = setup();
    await pool.close();
    for (const call of [() => pool.acquire(), () => pool.acquire({ timeoutMs: 10 }), () => pool.withConnection(() => 1)]) {
      let result: Promise<unknown> | undefined;
      expect(() => {
        result = call();
      }).not.toThrow();
      const error = await errorOf(result!);
      expect(error).toBeInstanceOf(PoolClosedError);
      expect((error as PoolClosedError).code).toBe('POOL_CLOSED');
    }
    expect(pool.stats().rejected.closed).toBe(3);
    await expect(pool.warmup()).rejects.toBeInstanceOf(PoolClosedError);
  });

  it('acquire while close is draining leases rejects with PoolClosedError', async () => {
    const { pool, clock } = setup();
    const held = await pool.acquire();
    const closing = pool.close({ timeoutMs: 1000 });
    await clock.advance(10);
    expect(await errorOf(pool.acquire())).toBeInstanceOf(PoolClosedError);
    await held.release();
    await closing;
  });

  it('a warmup in progress rejects with PoolClosedError', async () => {
    const { pool, fake } = setup({ min: 2 });
    fake.defaults.create = { kind: 'never' };
    const warming = errorOf(pool.warmup());
    await pool.close();
    expect(await warming).toBeInstanceOf(PoolClosedError);
  });
});

describe('close() drains leases, then destroys them (M21)', () => {
  it('waits for leases up to timeoutMs, then destroys them with reason `closed`', async () => {
    const { pool, clock, fake } = setup();
    const a = await pool.acquire();
    const b = await pool.acquire();
    const resources = [a.resource, b.resource];
    const closing = track(pool.close({ timeoutMs: 1000 }));

    await clock.advance(999);
    expect(closing.done).toBe(false);
    expect(pool.stats()).toMatchObject({ leased: 2, destroyed: 0 });
    expect(fake.destroyed).toBe(0);
    expect(a.resource).toBe(resources[0]); // still usable while close waits

    await clock.advance(1);
    expect(closing.done).toBe(true);
    expect(closing.error).toBeUndefined();
    expect(pool.stats()).toMatchObject({ size: 0, leased: 0, destroyed: 2, destroyedByReason: { closed: 2 } });
    expect(resources.every((r) => r.destroyed)).toBe(true);
    expect(fake.live.size).toBe(0);

    // The lease is dead: using it throws, a late release()/destroy()/dispose is a quiet no-op.
    expect(() => a.resource).toThrow(LeaseReleasedError);
    expect(() => b.resource).toThrow(LeaseReleasedError);
    await expect(a.release()).resolves.toBeUndefined();
    await expect(b[Symbol.asyncDispose]()).resolves.toBeUndefined();
    await expect(b.destroy()).resolves.toBeUndefined();
    expect(pool.stats()).toMatchObject({ destroyed: 2, destroyedByReason: { closed: 2, user: 0 } });
    expect(fake.destroyed).toBe(2);
  });

  it('a lease released before the timeout is destroyed on release (not returned) and close resolves then', async () => {
    const { pool, clock, fake } = setup();
    const a = await pool.acquire();
    const b = await pool.acquire();
    const closing = track(pool.close({ timeoutMs: 1000 }));

    await clock.advance(100);
    const ra = a.resource;
    await a.release();
    expect(ra.destroyed).toBe(true);
    expect(pool.stats()).toMatchObject({ idle: 0, leased: 1, destroyedByReason: { closed: 1 } });
    expect(closing.done).toBe(false);

    await clock.advance(100);
    await b.release();
    await clock.advance(0);
    expect(closing.done).toBe(true);
    expect(clock.now()).toBe(200); // long before the 1000 ms timeout
    expect(pool.stats()).toMatchObject({ size: 0, destroyedByReason: { closed: 2 } });
    expect(fake.live.size).toBe(0);
    expect(clock.pendingTimers).toBe(0);
  });

  it('a lease released during close skips reset: it is destroyed, not cleaned and pooled', async () => {
    const { pool, fake } = setup({}, { hooks: ['isBroken', 'ping', 'reset'] });
    const lease = await pool.acquire();
    const closing = pool.close();
    await lease.release();
    await closing;
    expect(fake.resets).toBe(0);
    expect(fake.live.size).toBe(0);
  });

  // A released resource whose reset is still running is no lease any more, but close() must
  // not resolve with it alive: it waits for the reset (bounded by resetTimeoutMs) or destroys it.
  it('a resource still resetting when close() gives up on leases is destroyed before close resolves', async () => {
    const { pool, clock, fake } = setup({ resetTimeoutMs: 1000 }, { hooks: ['isBroken', 'ping', 'reset'] });
    const lease = await pool.acquire();
    fake.script.reset.push({ kind: 'slow', ms: 50 });
    void lease.release();
    expect(pool.stats().resetting).toBe(1);
    const closing = track(pool.close({ timeoutMs: 10 }));
    expect(await clock.advanceUntil(() => closing.done, 2000)).toBe(true);
    expect(closing.error).toBeUndefined();
    // At the moment close() has resolved, nothing is alive.
    expect(fake.live.size).toBe(0);
    expect(pool.stats()).toMatchObject({ size: 0, resetting: 0, destroyedByReason: { closed: 1 } });
    await clock.advance(1000);
    expect(clock.pendingTimers).toBe(0);
  });

  it('close({ timeoutMs: 0 }) destroys leases without waiting', async () => {
    const { pool, clock, fake } = setup();
    const lease = await pool.acquire();
    const closing = track(pool.close({ timeoutMs: 0 }));
    await clock.advance(0);
    expect(closing.done).toBe(true);
    expect(() => lease.resource).toThrow(LeaseReleasedError);
    expect(fake.live.size).toBe(0);
  });

  it('the signal given to withConnection aborts with PoolClosedError when close gives up', async () => {
    const { pool, clock, fake } = setup();
    let seen: AbortSignal | undefined;
    const running = pool.withConnection(async (_resource, signal) => {
      seen = signal;
      await clock.sleep(5000);
      return signal.aborted;
    });
    await clock.advance(0);
    const closing = track(pool.close({ timeoutMs: 100 }));
    await clock.advance(99);
    expect(seen?.aborted).toBe(false);
    await clock.advance(1);
    expect(seen?.aborted).toBe(true);
    expect(seen?.reason).toBeInstanceOf(PoolClosedError);
    expect(closing.done).toBe(true);
    await clock.advance(5000);
    await expect(running).resolves.toBe(true); // its late release was a no-op
    expect(fake.live.size).toBe(0);
  });

  it('a hanging destroy is bounded by destroyTimeoutMs and reported through onError', async () => {
    const { pool, clock, fake, errors } = setup({ min: 1, destroyTimeoutMs: 50 });
    await pool.warmup();
    fake.script.destroy.push({ kind: 'never' });
    const closing = track(pool.close());
    await clock.advance(49);
    expect(closing.done).toBe(false);
    await clock.advance(1);
    expect(closing.done).toBe(true);
    expect(errors.some((e) => e instanceof DestroyTimeoutError)).toBe(true);
    expect(clock.pendingTimers).toBe(0);
  });
});

describe('close() destroys idle resources and aborts creates', () => {
  it('destroys every idle resource with reason `closed`', async () => {
    const { pool, fake } = setup({ min: 3, max: 5 });
    await pool.warmup();
    expect(pool.stats().idle).toBe(3);
    await pool.close();
    expect(pool.stats()).toMatchObject({ size: 0, idle: 0, destroyed: 3, destroyedByReason: { closed: 3 } });
    expect(fake.destroyed).toBe(3);
    expect(fake.live.size).toBe(0);
  });

  it('aborts in-flight creates; a create that never settles holds close() only until its timeoutMs, then is reported', async () => {
    const { pool, fake, clock, errors } = setup({ max: 3 });
    fake.defaults.create = { kind: 'never' };
    const pending = [errorOf(pool.acquire()), errorOf(pool.acquire())];
    await clock.advance(0);
    expect(pool.stats().creating).toBe(2);
    expect(fake.createSignals.map((s) => s.aborted)).toEqual([false, false]);

    const closing = track(pool.close({ timeoutMs: 1000 }));
    await clock.advance(0);
    expect(fake.createSignals.map((s) => s.aborted)).toEqual([true, true]);
    expect(fake.createSignals[0]?.reason).toBeInstanceOf(PoolClosedError);
    expect(pool.stats()).toMatchObject({ creating: 0, size: 0 });
    for (const error of await Promise.all(pending)) expect(error).toBeInstanceOf(PoolClosedError);
    await clock.advance(999);
    expect(closing.done).toBe(false);
    await clock.advance(1);
    expect(closing.ok).toBe(true);
    expect(errors.map((e) => (e as { code?: string }).code)).toContain('POOL_CLOSE_TIMEOUT');
    expect(clock.pendingTimers).toBe(0);
  });

  it('a create that ignores its signal and resolves after close is destroyed before close() resolves', async () => {
    const { pool, fake, clock } = setup();
    fake.script.create.push({ kind: 'slow', ms: 500 });
    const pending = errorOf(pool.acquire());
    await clock.advance(100);
    const closing = track(pool.close());
    expect(await pending).toBeInstanceOf(PoolClosedError);
    expect(fake.created).toBe(0);
    await clock.advance(399);
    expect(closing.done).toBe(false);

    await clock.advance(1); // the create finally resolves, and its resource is destroyed
    expect(closing.ok).toBe(true);
    expect(fake.created).toBe(1);
    expect(fake.destroyed).toBe(1);
    expect(fake.live.size).toBe(0);
    expect(pool.stats().size).toBe(0);
    expect(clock.pendingTimers).toBe(0);
  });

  it('with min and a destroy that throws, close() resolves only after the late resource was destroyed', async () => {
    const { pool, fake, clock, errors } = setup(
      { min: 2 },
      {
        prepare: (fake) => {
          fake.defaults.create = { kind: 'slow', ms: 200 };
          fake.defaults.destroy = { kind: 'throw', error: new Error('destroy blew up') };
        },
      },
    );
    await clock.advance(50);
    expect(pool.stats().creating).toBe(2);
    const closing = track(pool.close());
    await clock.advance(149);
    expect(closing.done).toBe(false);
    expect(fake.destroyed).toBe(0);
    await clock.advance(1);
    expect(closing.ok).toBe(true);
    expect(fake.created).toBe(2);
    expect(errors.filter((e) => (e as Error).message === 'destroy blew up')).toHaveLength(2);
  });

  it('a pending ping at close: close waits for it, then destroys the resource', async () => {
    const { pool, fake, clock } = setup({ pingIfIdleMs: 10 });
    const lease = await pool.acquire();
    await lease.release();
    await clock.advance(20);
    fake.script.ping.push({ kind: 'slow', ms: 30 });
    const waiting = errorOf(pool.acquire());
    await clock.advance(0);
    expect(pool.stats().checking).toBe(1);
    const closing = track(pool.close());
    expect(await waiting).toBeInstanceOf(PoolClosedError);
    await clock.advance(30);
    expect(closing.done).toBe(true);
    expect(fake.live.size).toBe(0);
    expect(pool.stats()).toMatchObject({ size: 0, checking: 0, destroyedByReason: { closed: 1 } });
  });
});

describe('close() clears every timer', () => {
  // Each scenario arms keepalive, idle-timeout and leak-detection housekeeping (a held lease
  // and an idle resource), plus create backoff or the breaker cooldown, then closes.
  it.each<['backoff' | 'breaker']>([['backoff'], ['breaker']])('with %s active: no timer survives close, nothing fires later', async (kind) => {
    const { pool, fake, clock, errors } = setup({
      min: 3,
      max: 3,
      keepaliveMs: 1000,
      idleTimeoutMs: 5000,
      leakDetectionMs: 2000,
      maxLifetimeMs: 60_000,
      createTimeoutMs: 1000,
      retry: { minTimeoutMs: 500, maxTimeoutMs: 500, randomize: false },
      circuitBreaker: kind === 'breaker' ? { failureThreshold: 1, cooldownMs: 10_000 } : { failureThreshold: 100, cooldownMs: 10_000 },
    });
    await pool.warmup();
    const held = await pool.acquire(); // leak detection armed
    const doomed = await pool.acquire();
    expect(pool.stats()).toMatchObject({ idle: 1, leased: 2 }); // keepalive + idle timeout armed
    fake.defaults.create = { kind: 'fail' };
    await doomed.destroy(); // below min: the top-up create fails
    await clock.advance(0);
    expect(fake.createAttempts).toBe(4);
    if (kind === 'breaker') {
      expect(pool.stats().circuit).toBe('open');
    } else {
      expect(pool.stats().circuit).toBe('closed');
      await clock.advance(499);
      expect(fake.createAttempts).toBe(4); // sleeping the 500 ms backoff
    }
    expect(clock.pendingTimers).toBeGreaterThanOrEqual(2);

    const closing = track(pool.close({ timeoutMs: 0 }));
    await clock.advance(0);
    expect(closing.done).toBe(true);
    expect(clock.pendingTimers).toBe(0);
    expect(() => held.resource).toThrow(LeaseReleasedError);
    expect(fake.live.size).toBe(0);

    const before = { attempts: fake.createAttempts, pings: fake.pings, errors: errors.length, stats: pool.stats() };
    await clock.advance(1_000_000);
    expect(fake.createAttempts).toBe(before.attempts);
    expect(fake.pings).toBe(before.pings);
    expect(errors.length).toBe(before.errors);
    expect(errors.some((e) => e instanceof LeakDetectedError)).toBe(false);
    expect(pool.stats()).toEqual(before.stats);
    expect(clock.pendingTimers).toBe(0);
  });

  it('a waiter deadline and a create timeout are cleared too', async () => {
    const { pool, fake, clock } = setup({ max: 2, acquireTimeoutMs: 60_000, createTimeoutMs: 30_000 });
    fake.defaults.create = { kind: 'never' };
    const waiting = errorOf(pool.acquire());
    await clock.advance(0);
    expect(clock.pendingTimers).toBe(2); // the deadline and the create timeout
    const closing = track(pool.close({ timeoutMs: 10 }));
    expect(await waiting).toBeInstanceOf(PoolClosedError);
    await clock.advance(10); // the create never settles: close() gives up on it at its timeout
    expect(closing.ok).toBe(true);
    expect(clock.pendingTimers).toBe(0);
  });
});

/** Run a small ESM program against the built package in a fresh `node`; returns its stdout, and fails unless it exits 0. */
function runChild(script: string, env: Record<string, string>): string {
  const result = runNode(script, { env, nodeArgs: ['--unhandled-rejections=strict'] });
  if (result.status !== 0) throw new Error(describeChild(result));
  return result.stdout;
}

const CHILD_SCRIPT = `
const { createPool } = await import(process.env.LIFEGUARD_DIST);
const mode = process.env.MODE;
let next = 0;
const errors = [];
const pool = createPool({
  adapter: {
    create: async () => ({ id: ++next }),
    destroy: async () => {},
    ping: async () => {},
  },
  min: 2,
  max: 3,
  keepaliveMs: 60_000,
  idleTimeoutMs: 120_000,
  maxLifetimeMs: 600_000,
  leakDetectionMs: 60_000,
  acquireTimeoutMs: 300_000,
  onError: (error) => errors.push(error),
});
await pool.warmup();
const a = await pool.acquire();
const b = await pool.acquire({ timeoutMs: 100_000 });
await a.release();
await pool.withConnection(async (resource) => resource.id);
const held = await pool.acquire(); // leak detection armed while held
if (mode === 'close') {
  await b.release();
  await held.release();
  await pool.close();
  console.log('CLOSED', pool.stats().size, pool.stats().destroyedByReason.closed);
} else if (mode === 'close-with-lease') {
  // A lease is still out: close() waits up to timeoutMs, then destroys it.
  await b.release();
  await pool.close({ timeoutMs: 50 });
  console.log('CLOSED', pool.stats().size, pool.stats().destroyedByReason.closed);
} else {
  // Never closed: idle housekeeping and leak detection are armed, leases are out, and a
  // queued acquire keeps the process alive only until it settles (here: its deadline).
  const also = await pool.acquire();
  const queued = pool.acquire({ timeoutMs: 300 });
  queued.then((lease) => lease.release(), (error) => console.log('QUEUED-SETTLED', error.name));
  console.log('NOT-CLOSED', pool.stats().leased, pool.stats().waiting);
  void also;
}
console.log('LIFEGUARD-CHILD-DONE', errors.length);
`;

describe('no handle keeps the process alive (I5)', () => {
  it('after close(), a process using the built package exits by itself', () => {
    const out = runChild(CHILD_SCRIPT, { MODE: 'close' });
    expect(out).toContain('CLOSED 0 2');
    expect(out).toContain('LIFEGUARD-CHILD-DONE 0');
  });

  it('without close(), the process still exits once nobody awaits the pool: its housekeeping timers are unref()ed', () => {
    const out = runChild(CHILD_SCRIPT, { MODE: 'none' });
    expect(out).toContain('NOT-CLOSED 3 1');
    expect(out).toContain('LIFEGUARD-CHILD-DONE 0');
    expect(out).toContain('QUEUED-SETTLED AcquireTimeoutError');
  });

  // An awaited close() must settle: its drain timer is the only thing left, so if it is
  // unref()ed the process exits mid-close (exit code 13, "unsettled top-level await") and
  // the held resource is never destroyed.
  it('an awaited close() with a lease still out completes after timeoutMs and the process exits 0', () => {
    const out = runChild(CHILD_SCRIPT, { MODE: 'close-with-lease' });
    expect(out).toContain('CLOSED 0 2');
    // One background report: close() gave up on the lease still held and destroyed it.
    expect(out).toContain('LIFEGUARD-CHILD-DONE 1');
  });
});

describe('`await using` closes the pool at scope end', () => {
  it('closes and destroys everything when the block exits', async () => {
    const clock = new VirtualClock();
    const fake = new FakeAdapter(clock);
    let escaped: Pool<FakeResource> | undefined;
    {
      await using pool = createPool<FakeResource>({ adapter: fake.adapter(), clock, min: 2 });
      escaped = pool;
      await pool.warmup();
      {
        await using lease = await pool.acquire();
        expect(lease.resource.destroyed).toBe(false);
        expect(pool.stats().leased).toBe(1);
      }
      expect(pool.stats()).toMatchObject({ leased: 0, idle: 2 });
      expect(pool.closed).toBe(false);
    }
    expect(escaped.closed).toBe(true);
    expect(escaped.stats()).toMatchObject({ size: 0, destroyedByReason: { closed: 2 } });
    expect(fake.live.size).toBe(0);
    expect(clock.pendingTimers).toBe(0);
  });

  it('closes even when the block throws', async () => {
    const clock = new VirtualClock();
    const fake = new FakeAdapter(clock);
    let escaped: Pool<FakeResource> | undefined;
    let lease: Lease<FakeResource> | undefined;
    const boom = new Error('boom');
    await expect(
      (async () => {
        await using pool = createPool<FakeResource>({ adapter: fake.adapter(), clock });
        escaped = pool;
        lease = await pool.acquire();
        await lease.release();
        throw boom;
      })(),
    ).rejects.toBe(boom);
    expect(escaped?.closed).toBe(true);
    expect(fake.live.size).toBe(0);
  });
});

describe('bad close() options', () => {
  it.each<[string, unknown, string, string]>([
    ['timeoutMs: -1', { timeoutMs: -1 }, 'timeoutMs', 'Expected `timeoutMs` to be a number of milliseconds >= 0 (or Infinity), got -1'],
    ['timeoutMs: NaN', { timeoutMs: NaN }, 'timeoutMs', 'Expected `timeoutMs` to be a number of milliseconds >= 0 (or Infinity), got NaN'],
    ['timeoutMs: "5"', { timeoutMs: '5' }, 'timeoutMs', 'Expected `timeoutMs` to be a number of milliseconds >= 0 (or Infinity), got "5"'],
    ['an unknown key', { timeout: 5 }, 'close options', 'Expected `close options` to be an object with only `timeoutMs`, got an object'],
    ['null', null, 'close options', 'Expected `close options` to be an object with only `timeoutMs`, got null'],
    ['a number', 5, 'close options', 'Expected `close options` to be an object with only `timeoutMs`, got 5'],
  ])('close(%s) rejects with InvalidPoolOptionError and leaves the pool open', async (_label, options, option, message) => {
    const { pool } = setup();
    let result: Promise<void> | undefined;
    expect(() => {
      result = pool.close(options as { timeoutMs: number });
    }).not.toThrow();
    const error = await errorOf(result!);
    expect(error).toBeInstanceOf(InvalidPoolOptionError);
    expect((error as InvalidPoolOptionError).code).toBe('POOL_INVALID_OPTION');
    expect((error as InvalidPoolOptionError).option).toBe(option);
    expect((error as Error).message).toBe(message);
    expect(pool.closed).toBe(false);
    const lease = await pool.acquire();
    await lease.release();
    // A valid close afterwards works, and is not the rejected promise.
    const good = pool.close();
    expect(good).not.toBe(result);
    await good;
    expect(pool.closed).toBe(true);
  });

  it('close({ timeoutMs: Infinity }) waits for leases however long', async () => {
    const { pool, clock } = setup();
    const lease = await pool.acquire();
    const closing = track(pool.close({ timeoutMs: Infinity }));
    await clock.advance(10_000_000);
    expect(closing.done).toBe(false);
    expect(clock.pendingTimers).toBe(0);
    await lease.release();
    await clock.advance(0);
    expect(closing.done).toBe(true);
  });
});
