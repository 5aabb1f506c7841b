// pool.stats(): every field DESIGN.md lists, with the right value after scripted sequences.
import { describe, expect, it } from 'vitest';
import {
  AcquireTimeoutError,
  CircuitOpenError,
  CreateResourceError,
  PoolClosedError,
  PoolQueueFullError,
  type PoolStats,
  type Summary,
} from '../../src/index.js';
import { codedError } from '../support/fake-adapter.js';
import { errorOf, setupClosingAfterEach } from '../support/harness.js';

const setup = setupClosingAfterEach();

/** The histogram keeps ~6.25 % relative precision (16 log-linear buckets per power of two). */
function expectNear(actual: number, expected: number, relative = 0.0625): void {
  expect(Math.abs(actual - expected)).toBeLessThanOrEqual(expected * relative + 1e-9);
}

/** Gauges are derived from resource states. */
function expectConsistent(s: PoolStats): void {
  expect(s.idle + s.leased + s.checking + s.resetting).toBe(s.size);
  expect(s.size + s.creating).toBeLessThanOrEqual(s.max);
  for (const gauge of [s.size, s.idle, s.leased, s.creating, s.checking, s.resetting, s.destroying, s.waiting]) {
    expect(Number.isInteger(gauge) && gauge >= 0).toBe(true);
  }
  const byReason = Object.values(s.destroyedByReason).reduce((a, b) => a + b, 0);
  expect(byReason).toBe(s.destroyed);
}

const ZERO_SUMMARY: Summary = { count: 0, p50: 0, p99: 0, max: 0, mean: 0 };

describe('shape', () => {
  it('a fresh pool reports every documented field, zeroed', () => {
    const { pool } = setup({ max: 4, min: 0 });
    const s = pool.stats();
    expect(s).toEqual({
      max: 4,
      min: 0,
      size: 0,
      idle: 0,
      leased: 0,
      creating: 0,
      checking: 0,
      resetting: 0,
      destroying: 0,
      waiting: 0,
      acquired: 0,
      timedOut: 0,
      aborted: 0,
      rejected: { closed: 0, queueFull: 0, circuitOpen: 0, createFailed: 0, shed: 0 },
      created: 0,
      createFailed: 0,
      destroyed: 0,
      destroyedByReason: { broken: 0, pingFailed: 0, resetFailed: 0, idle: 0, lifetime: 0, closed: 0, user: 0, drained: 0, invalidated: 0, maxUses: 0 },
      circuit: 'closed',
      congested: false,
      draining: false,
      consecutiveCreateFailures: 0,
      waitTime: ZERO_SUMMARY,
      leaseTime: ZERO_SUMMARY,
      createTime: ZERO_SUMMARY,
    });
  });

  it('summaries carry count, p50, p99 and max (in ms)', async () => {
    const { pool } = setup();
    const lease = await pool.acquire();
    await lease.release();
    for (const summary of [pool.stats().waitTime, pool.stats().leaseTime, pool.stats().createTime]) {
      expect(Object.keys(summary)).toEqual(expect.arrayContaining(['count', 'p50', 'p99', 'max']));
      expect(summary.count).toBe(1);
    }
  });
});

describe('gauges and basic counters', () => {
  it('track a scripted sequence step by step', async () => {
    const { pool, fake, clock } = setup({ max: 3, min: 1, pingIfIdleMs: Infinity, keepaliveMs: Infinity, idleTimeoutMs: Infinity, maxLifetimeMs: Infinity });
    fake.defaults.create = { kind: 'slow', ms: 40 };

    // min: 1 starts one create at construction.
    expect(pool.stats()).toMatchObject({ max: 3, min: 1, size: 0, creating: 1 });
    await clock.advance(40);
    expect(pool.stats()).toMatchObject({ size: 1, idle: 1, creating: 0, created: 1 });
    expectConsistent(pool.stats());

    const a = await pool.acquire(); // immediate, from idle
    expect(pool.stats()).toMatchObject({ size: 1, idle: 0, leased: 1, acquired: 1, waiting: 0 });

    const pb = pool.acquire();
    const pc = pool.acquire();
    await clock.advance(0);
    expect(pool.stats()).toMatchObject({ size: 1, creating: 2, waiting: 2, acquired: 1 });
    expectConsistent(pool.stats());
    const pd = pool.acquire(); // pool full (1 + 2 creating = max): waits for a release
    await clock.advance(0);
    expect(pool.stats()).toMatchObject({ creating: 2, waiting: 3 });

    await clock.advance(40);
    const [b, c] = await Promise.all([pb, pc]);
    expect(pool.stats()).toMatchObject({ size: 3, leased: 3, creating: 0, waiting: 1, acquired: 3, created: 3 });
    expectConsistent(pool.stats());

    await clock.advance(10);
    await a.release(); // goes straight to the waiter
    const d = await pd;
    expect(pool.stats()).toMatchObject({ size: 3, leased: 3, idle: 0, waiting: 0, acquired: 4 });

    await b.release();
    await c.destroy();
    await clock.advance(0);
    expect(pool.stats()).toMatchObject({ size: 2, idle: 1, leased: 1, destroyed: 1, destroyedByReason: { user: 1 } });
    await d.release();
    expect(pool.stats()).toMatchObject({ size: 2, idle: 2, leased: 0 });
    expectConsistent(pool.stats());

    // waitTime: a (0, from idle), b and c (40, a create), d (50, queued behind a lease).
    const wait = pool.stats().waitTime;
    expect(wait.count).toBe(4);
    expect(wait.max).toBe(50);
    expectNear(wait.p50, 40);
    expectNear(wait.p99, 50);
    // createTime: three creates of 40 ms each.
    expect(pool.stats().createTime).toMatchObject({ count: 3, max: 40 });
    expectNear(pool.stats().createTime.p50, 40);
  });

  it('leaseTime: leases held for known virtual durations', async () => {
    const { pool, clock } = setup({ max: 1, pingIfIdleMs: Infinity });
    for (const ms of [100, 200, 300, 400, 500, 600, 700, 800, 900, 1000]) {
      const lease = await pool.acquire();
      await clock.advance(ms);
      await lease.release();
    }
    const s = pool.stats();
    expect(s.leaseTime.count).toBe(10);
    expect(s.leaseTime.max).toBe(1000);
    expectNear(s.leaseTime.p50, 500);
    expectNear(s.leaseTime.p99, 1000);
    expectNear(s.leaseTime.mean, 550, 0.001);
    // Every acquire after the first was served from idle at once: wait time 0.
    expect(s.waitTime).toMatchObject({ count: 10, p50: 0, p99: 0, max: 0 });
    expect(s.acquired).toBe(10);
    expect(s.created).toBe(1);
  });

  it('waitTime counts immediate acquires as 0 and queued ones by their wait', async () => {
    const { pool, clock } = setup({ max: 1, pingIfIdleMs: Infinity });
    const first = await pool.acquire();
    const queued = pool.acquire();
    await clock.advance(250);
    await first.release();
    const second = await queued;
    await second.release();
    for (let i = 0; i < 8; i++) await (await pool.acquire()).release();
    const wait = pool.stats().waitTime;
    expect(wait.count).toBe(10);
    expect(wait.max).toBe(250);
    expect(wait.p50).toBe(0);
    expectNear(wait.p99, 250);
  });

  it('leaseTime counts destroyed leases too', async () => {
    const { pool, clock } = setup({ pingIfIdleMs: Infinity });
    const lease = await pool.acquire();
    await clock.advance(300);
    await lease.destroy();
    expect(pool.stats().leaseTime).toMatchObject({ count: 1, max: 300 });
  });
});

describe('destroyedByReason', () => {
  it('counts each reason: user, broken, resetFailed, pingFailed, idle, lifetime, closed', async () => {
    const { pool, fake, clock, errors } = setup(
      { max: 2, min: 0, pingIfIdleMs: 50, idleTimeoutMs: 1000, maxLifetimeMs: 10_000, keepaliveMs: Infinity },
      { hooks: ['isBroken', 'ping', 'reset', 'isFatal'] },
    );
    const reasons = (): PoolStats['destroyedByReason'] => pool.stats().destroyedByReason;

    // user: lease.destroy() without a reason, or with a reason the adapter does not call fatal.
    await (await pool.acquire()).destroy();
    await (await pool.acquire()).destroy(new Error('I changed my mind'));
    expect(reasons()).toMatchObject({ user: 2, broken: 0 });

    // broken: lease.destroy(fatalError), or released while isBroken() says so.
    await (await pool.acquire()).destroy(codedError('socket hang up', 'CONNECTION_LOST'));
    expect(reasons().broken).toBe(1);
    const b = await pool.acquire();
    b.resource.broken = true;
    await b.release();
    expect(reasons().broken).toBe(2);

    // resetFailed: the reset on release rejects.
    const c = await pool.acquire();
    fake.script.reset.push({ kind: 'fail' });
    await c.release();
    expect(reasons().resetFailed).toBe(1);
    expect(errors).toHaveLength(1);

    // pingFailed: idle longer than pingIfIdleMs, the borrow-time ping fails; the acquire still succeeds.
    const d = await pool.acquire();
    await d.release();
    expect(pool.stats().idle).toBe(1);
    await clock.advance(60);
    fake.script.ping.push({ kind: 'fail' });
    const e = await pool.acquire();
    expect(reasons().pingFailed).toBe(1);
    expect(fake.pings).toBe(1);

    // lifetime: held past maxLifetimeMs, retired on release.
    await clock.advance(10_000);
    await e.release();
    expect(reasons().lifetime).toBe(1);

    // idle: idle longer than idleTimeoutMs while above min.
    const f = await pool.acquire();
    await f.release();
    await clock.advance(999);
    expect(reasons().idle).toBe(0);
    await clock.advance(1);
    expect(reasons().idle).toBe(1);

    // closed: whatever is left at close.
    const g = await pool.acquire();
    await g.release();
    await pool.close();
    expect(reasons().closed).toBe(1);

    const s = pool.stats();
    expect(s.destroyedByReason).toEqual({ broken: 2, pingFailed: 1, resetFailed: 1, idle: 1, lifetime: 1, closed: 1, user: 2, drained: 0, invalidated: 0, maxUses: 0 });
    expect(s.destroyed).toBe(9);
    expect(s.created).toBe(9);
    expect(fake.destroyed).toBe(9);
    expect(s.size).toBe(0);
    expectConsistent(s);
  });

  it('lifetime also retires idle resources in the background', async () => {
    const { pool, clock } = setup({ min: 1, maxLifetimeMs: 1000, idleTimeoutMs: Infinity, keepaliveMs: Infinity });
    await pool.warmup();
    await clock.advance(1000);
    expect(pool.stats()).toMatchObject({ destroyedByReason: { lifetime: 1 }, created: 2, size: 1 }); // replaced to keep min
  });

  it('`destroying` counts destroys in flight; their slots are already free', async () => {
    const { pool, fake, clock } = setup({ max: 1 });
    const lease = await pool.acquire();
    fake.script.destroy.push({ kind: 'slow', ms: 100 });
    const destroying = lease.destroy();
    expect(pool.stats()).toMatchObject({ size: 0, destroying: 1, destroyed: 1 });
    const next = await pool.acquire(); // the slot is free although the destroy is still running
    expect(pool.stats()).toMatchObject({ size: 1, destroying: 1 });
    await clock.advance(100);
    await destroying;
    expect(pool.stats()).toMatchObject({ size: 1, destroying: 0 });
    await next.release();
  });

  it('`checking` and `resetting` count resources being pinged and reset', async () => {
    const { pool, fake, clock } = setup({ max: 2, pingIfIdleMs: 10 }, { hooks: ['isBroken', 'ping', 'reset'] });
    const a = await pool.acquire();
    fake.script.reset.push({ kind: 'slow', ms: 30 });
    const releasing = a.release();
    expect(pool.stats()).toMatchObject({ size: 1, resetting: 1, leased: 0, idle: 0 });
    expectConsistent(pool.stats());
    await clock.advance(30);
    await releasing;
    expect(pool.stats()).toMatchObject({ size: 1, resetting: 0, idle: 1 });

    await clock.advance(20);
    fake.script.ping.push({ kind: 'slow', ms: 5 });
    const pending = pool.acquire();
    await clock.advance(0);
    expect(pool.stats()).toMatchObject({ size: 1, checking: 1, idle: 0, waiting: 1 });
    expectConsistent(pool.stats());
    await clock.advance(5);
    const lease = await pending;
    expect(pool.stats()).toMatchObject({ size: 1, checking: 0, leased: 1, waiting: 0 });
    await lease.release();
  });
});

describe('rejections, timeouts, aborts, create failures, circuit', () => {
  it('timedOut, aborted, rejected.queueFull and rejected.closed', async () => {
    const { pool, clock } = setup({ max: 1, maxWaiting: 2 });
    const held = await pool.acquire();

    const timingOut = errorOf(pool.acquire({ timeoutMs: 50 }));
    const controller = new AbortController();
    const aborting = errorOf(pool.acquire({ signal: controller.signal }));
    await clock.advance(0);
    expect(pool.stats().waiting).toBe(2);
    expect(await errorOf(pool.acquire())).toBeInstanceOf(PoolQueueFullError);
    expect(pool.stats().rejected.queueFull).toBe(1);

    controller.abort(new Error('user gave up'));
    expect(await aborting).toMatchObject({ message: 'user gave up' });
    expect(pool.stats()).toMatchObject({ aborted: 1, waiting: 1 });

    await clock.advance(50);
    expect(await timingOut).toBeInstanceOf(AcquireTimeoutError);
    expect(pool.stats()).toMatchObject({ timedOut: 1, waiting: 0 });

    const queued = errorOf(pool.acquire());
    const closing = pool.close({ timeoutMs: 1000 });
    expect(await queued).toBeInstanceOf(PoolClosedError);
    expect(await errorOf(pool.acquire())).toBeInstanceOf(PoolClosedError);
    await held.release();
    await closing;

    expect(pool.stats()).toMatchObject({
      acquired: 1,
      timedOut: 1,
      aborted: 1,
      rejected: { closed: 2, queueFull: 1, circuitOpen: 0, createFailed: 0 },
    });
  });

  it('createFailed (attempts) and rejected.createFailed (acquires failed by a non-retryable create)', async () => {
    const { pool, fake, clock } = setup({ retry: { retries: 5, minTimeoutMs: 10, maxTimeoutMs: 10, randomize: false }, circuitBreaker: false });
    fake.failCreates(2); // transient: retried
    const lease = await (async () => {
      const pending = pool.acquire();
      await clock.advance(20);
      return pending;
    })();
    expect(pool.stats()).toMatchObject({ created: 1, createFailed: 2, consecutiveCreateFailures: 0, acquired: 1 });
    expect(pool.stats().createTime).toMatchObject({ count: 1, max: 20 }); // retries included
    await lease.release();
    const idle = await pool.acquire(); // keep the idle one busy so the next acquire must create

    fake.failCreates(1, codedError('password authentication failed', 'FATAL'));
    const error = await errorOf(pool.acquire());
    expect(error).toBeInstanceOf(CreateResourceError);
    expect(pool.stats()).toMatchObject({ createFailed: 3, consecutiveCreateFailures: 1, rejected: { createFailed: 1 } });
    await idle.release();
  });

  it('circuit: closed → open (rejected.circuitOpen) → half-open probe → closed', async () => {
    const { pool, fake, clock } = setup({
      retry: { retries: Infinity, minTimeoutMs: 10, maxTimeoutMs: 10, randomize: false },
      circuitBreaker: { failureThreshold: 2, cooldownMs: 1000 },
    });
    fake.failCreates(2);
    const first = errorOf(pool.acquire({ timeoutMs: 500 }));
    await clock.advance(0);
    expect(pool.stats()).toMatchObject({ circuit: 'closed', createFailed: 1, consecutiveCreateFailures: 1 });
    await clock.advance(10);
    expect(pool.stats()).toMatchObject({ circuit: 'open', createFailed: 2, consecutiveCreateFailures: 2 });
    expect(await first).toBeInstanceOf(CircuitOpenError);
    expect(pool.stats().rejected.circuitOpen).toBe(1);

    expect(await errorOf(pool.acquire())).toBeInstanceOf(CircuitOpenError);
    expect(pool.stats().rejected.circuitOpen).toBe(2);

    await clock.advance(1000); // cooldown over: the next acquire is let through as a probe
    fake.script.create.push({ kind: 'slow', ms: 5 });
    const probe = pool.acquire();
    await clock.advance(0);
    expect(pool.stats()).toMatchObject({ circuit: 'half-open', creating: 1 });
    await clock.advance(5);
    const lease = await probe;
    expect(pool.stats()).toMatchObject({ circuit: 'closed', consecutiveCreateFailures: 0, created: 1, createFailed: 2 });
    await lease.release();
  });
});

describe('gauges are derived from states at every step', () => {
  it('idle + leased + checking + resetting === size and size + creating <= max throughout', async () => {
    const { pool, fake, clock } = setup(
      { max: 3, min: 1, pingIfIdleMs: 5, keepaliveMs: 40, idleTimeoutMs: 100, maxLifetimeMs: 400, retry: { minTimeoutMs: 5, maxTimeoutMs: 5 } },
      { hooks: ['isBroken', 'ping', 'reset', 'isFatal'] },
    );
    // Steps that start a release/destroy do not await it: a reset takes virtual time.
    const check = async (step: () => unknown): Promise<void> => {
      const result = step();
      if (result instanceof Promise) await result;
      expectConsistent(pool.stats());
      await clock.advance(0);
      expectConsistent(pool.stats());
    };
    fake.defaults.create = { kind: 'slow', ms: 7 };
    fake.defaults.reset = { kind: 'slow', ms: 3 };
    fake.defaults.ping = { kind: 'slow', ms: 2 };
    const leases: Awaited<ReturnType<typeof pool.acquire>>[] = [];
    const grab = (): void => {
      void pool.acquire({ timeoutMs: 200 }).then(
        (lease) => leases.push(lease),
        () => {},
      );
    };
    for (let round = 0; round < 6; round++) {
      await check(grab);
      await check(grab);
      await check(grab);
      await check(grab);
      for (let t = 0; t < 12; t++) await check(() => clock.advance(1));
      await check(() => void leases.shift()?.release());
      await check(() => void leases.shift()?.destroy());
      if (round % 2 === 0) fake.failCreates(1);
      if (leases[0] !== undefined) leases[0].resource.broken = true;
      for (let t = 0; t < 30; t++) await check(() => clock.advance(3));
      while (leases.length > 0) await check(() => void leases.shift()!.release());
      for (let t = 0; t < 30; t++) await check(() => clock.advance(5));
    }
    expect(pool.stats().acquired).toBeGreaterThan(10);
    expect(fake.pings).toBeGreaterThan(0);
    expect(fake.resets).toBeGreaterThan(0);
  });
});

describe('stats() is a snapshot', () => {
  it('mutating a snapshot does not change the pool', async () => {
    const { pool } = setup();
    const lease = await pool.acquire();
    const snapshot = pool.stats() as unknown as Record<string, unknown> & {
      destroyedByReason: Record<string, number>;
      rejected: Record<string, number>;
      waitTime: Record<string, number>;
    };
    snapshot.size = 42;
    snapshot.leased = 42;
    snapshot.destroyedByReason.user = 42;
    snapshot.rejected.closed = 42;
    snapshot.waitTime.count = 42;
    const fresh = pool.stats();
    expect(fresh).toMatchObject({ size: 1, leased: 1, destroyedByReason: { user: 0 }, rejected: { closed: 0 }, waitTime: { count: 1 } });
    await lease.release();
  });

  it('a held snapshot keeps its values; later calls reflect the new state', async () => {
    const { pool } = setup();
    const before = pool.stats();
    const lease = await pool.acquire();
    const during = pool.stats();
    await lease.destroy();
    const after = pool.stats();
    expect(before).toMatchObject({ size: 0, leased: 0, acquired: 0, destroyed: 0 });
    expect(during).toMatchObject({ size: 1, leased: 1, acquired: 1, destroyed: 0, destroyedByReason: { user: 0 } });
    expect(after).toMatchObject({ size: 0, leased: 0, acquired: 1, destroyed: 1, destroyedByReason: { user: 1 } });
    expect(after.destroyedByReason).not.toBe(during.destroyedByReason);
    expect(after.rejected).not.toBe(during.rejected);
    expect(after.leaseTime).not.toBe(during.leaseTime);
    expect(during.leaseTime.count).toBe(0);
    expect(after.leaseTime.count).toBe(1);
  });
});
