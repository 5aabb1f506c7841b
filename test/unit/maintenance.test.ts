// Resource lifetime: idle retirement, max lifetime with jitter, expiry on borrow and release, `min` top-up.
import { describe, expect, it, vi } from 'vitest';
import type { Clock, ClockTimer, Lease, Pool } from '../../src/index.js';
import type { FakeAdapter, FakeResource } from '../support/fake-adapter.js';
import { acquireNow, clock, fake, track, usePerTestPools } from '../support/harness.js';
import type { VirtualClock } from '../support/virtual-clock.js';

/** The current test's pools' clock: the virtual clock behind a SpinGuardClock, which counts the timers they arm. */
let guard: SpinGuardClock;

/** Lifetime tests turn off pings so only the option under test retires resources. */
const makePool = usePerTestPools(
  { keepaliveMs: Infinity, pingIfIdleMs: Infinity, idleTimeoutMs: Infinity, maxLifetimeMs: Infinity },
  { clock: (base) => (guard = new SpinGuardClock(base)) },
);

async function acquireMany(pool: Pool<FakeResource>, n: number): Promise<Lease<FakeResource>[]> {
  const outcomes = Array.from({ length: n }, () => track(pool.acquire()));
  await clock.advance(0);
  return outcomes.map((o) => {
    expect(o.ok).toBe(true);
    return o.value!;
  });
}

/** Wraps the fake's destroy to record when each resource was destroyed. */
function recordDestroyTimes(adapter: ReturnType<FakeAdapter['adapter']>): Map<number, number> {
  const times = new Map<number, number>();
  const destroy = adapter.destroy;
  adapter.destroy = (resource) => {
    times.set(resource.id, clock.now());
    return destroy(resource);
  };
  return times;
}

/**
 * The virtual clock, plus a guard: a pool that keeps re-arming timers without time moving
 * (a hot timer loop, ~1000 wake-ups/s on a real clock) makes the test fail with a clear
 * message instead of hanging the virtual clock forever.
 */
class SpinGuardClock implements Clock {
  scheduled = 0;
  #instant = NaN;
  #atInstant = 0;
  constructor(private readonly base: VirtualClock) {}
  now(): number {
    return this.base.now();
  }
  setTimeout(callback: () => void, ms: number): ClockTimer {
    const now = this.base.now();
    if (now !== this.#instant) {
      this.#instant = now;
      this.#atInstant = 0;
    }
    this.scheduled++;
    if (++this.#atInstant > 1000) {
      this.#atInstant = 0;
      throw new Error(`timer spin: the pool armed more than 1000 timers at t=${now} without time moving (last delay ${ms} ms)`);
    }
    return this.base.setTimeout(callback, ms);
  }
  clearTimeout(timer: ClockTimer): void {
    this.base.clearTimeout(timer);
  }
}

/**
 * A clock whose timers fire `lagMs` late, like timers on a busy event loop: time itself
 * still comes from the virtual clock. Lets a test borrow an expired resource before the
 * background sweeper has run.
 */
class LaggingTimersClock implements Clock {
  constructor(
    private readonly base: VirtualClock,
    private readonly lagMs: number,
  ) {}
  now(): number {
    return this.base.now();
  }
  setTimeout(callback: () => void, ms: number): ClockTimer {
    return this.base.setTimeout(callback, ms + this.lagMs);
  }
  clearTimeout(timer: ClockTimer): void {
    this.base.clearTimeout(timer);
  }
}

/**
 * A clock whose timers run as Node's do against performance.now(): a delay below 1 ms counts
 * as 1 ms, and it counts from the event loop's cached time, `staleMs` behind the clock, so a
 * timer fires up to `staleMs` before it is due by the clock.
 */
class NodeLikeTimersClock implements Clock {
  constructor(
    private readonly base: VirtualClock,
    private readonly staleMs: number,
  ) {}
  now(): number {
    return this.base.now();
  }
  setTimeout(callback: () => void, ms: number): ClockTimer {
    return this.base.setTimeout(callback, Math.max(1, ms) - this.staleMs);
  }
  clearTimeout(timer: ClockTimer): void {
    this.base.clearTimeout(timer);
  }
}

describe('idleTimeoutMs', () => {
  // pg-pool's idle-timeout test: idleTimeoutMillis 1, and after a 2 ms wait (a timer set just
  // after the pool's) the client must be gone. Re-arming for the fraction of a millisecond
  // left would retire it a whole timer tick late, after the caller's own timer.
  it('a sweep retires what its timer was set for, even when the timer fires a moment early by the clock', async () => {
    const pool = makePool({ clock: new NodeLikeTimersClock(clock, 0.5), max: 1, idleTimeoutMs: 1 });
    const [lease] = await acquireMany(pool, 1);
    await lease!.release();
    await clock.advance(0.5); // the timer set for t = 1 fires at t = 0.5
    expect(pool.stats().destroyedByReason.idle).toBe(1);
    expect(pool.stats().size).toBe(0);
  });

  it('retires idle resources above min (reason idle), never below min', async () => {
    const pool = makePool({ max: 4, min: 1, idleTimeoutMs: 1000 });
    await pool.warmup();
    const leases = await acquireMany(pool, 3);
    for (const lease of leases) await lease.release();
    expect(pool.stats().size).toBe(3);

    await clock.advance(999);
    expect(pool.stats().size).toBe(3);
    expect(pool.stats().destroyedByReason.idle).toBe(0);

    await clock.advance(1);
    expect(pool.stats().size).toBe(1);
    expect(pool.stats().idle).toBe(1);
    expect(pool.stats().destroyedByReason.idle).toBe(2);
    expect(fake.destroyed).toBe(2);

    await clock.advance(60_000);
    expect(pool.stats().size).toBe(1);
    expect(pool.stats().destroyedByReason.idle).toBe(2);
    expect(pool.stats().created).toBe(3); // the survivor is kept, not churned
  });

  it('a resource kept for min, idle past idleTimeoutMs, does not make the background sweeper spin', async () => {
    const pool = makePool({ max: 2, min: 1, idleTimeoutMs: 1000 });
    await pool.warmup();
    const before = guard.scheduled;
    await clock.advance(60_000); // a minute of doing nothing
    expect(guard.scheduled - before).toBeLessThan(100);
    expect(pool.stats().size).toBe(1);
    expect(pool.stats().destroyed).toBe(0);
  });

  it('measures idleness from the last release: a recently used resource is kept', async () => {
    const pool = makePool({ max: 2, idleTimeoutMs: 1000 });
    const [a, b] = await acquireMany(pool, 2);
    const resourceB = b!.resource;
    await a!.release();
    await clock.advance(800);
    await b!.release(); // B idle since 800

    await clock.advance(200); // t = 1000: A retired, B kept
    expect(pool.stats().size).toBe(1);
    expect(pool.stats().destroyedByReason.idle).toBe(1);
    expect(resourceB.destroyed).toBe(false);

    await clock.advance(799);
    expect(resourceB.destroyed).toBe(false);
    await clock.advance(1); // t = 1800
    expect(resourceB.destroyed).toBe(true);
    expect(pool.stats().size).toBe(0);
    expect(pool.stats().destroyedByReason.idle).toBe(2);
  });

  it('is not postponed by a pending leak-detection check', async () => {
    const pool = makePool({ max: 2, idleTimeoutMs: 1000, leakDetectionMs: 10_000 });
    const held = await acquireNow(pool); // leak check scheduled at 10 000
    const lease = await acquireNow(pool);
    const resource = lease.resource;
    await clock.advance(100);
    await lease.release(); // idle since 100: due for retirement at 1100

    await clock.advance(1000);
    expect(resource.destroyed).toBe(true);
    expect(pool.stats().destroyedByReason.idle).toBe(1);
    await held.release();
  });
});

describe('maxLifetimeMs', () => {
  it('retires idle resources (reason lifetime), each up to 40 % early and spread out, all by maxLifetimeMs', async () => {
    const n = 20;
    const adapter = fake.adapter();
    const destroyedAt = recordDestroyTimes(adapter);
    const pool = makePool({ adapter, max: n, maxLifetimeMs: 10_000 });
    const leases = await acquireMany(pool, n); // all created at t = 0
    for (const lease of leases) await lease.release();

    await clock.advance(5999); // the spread is at most 40 %: nothing goes before 6000
    expect(pool.stats().destroyedByReason.lifetime).toBe(0);

    await clock.advance(4001); // t = 10 000
    expect(pool.stats().destroyedByReason.lifetime).toBe(n);
    expect(pool.stats().size).toBe(0);
    expect(destroyedAt.size).toBe(n);
    for (const t of destroyedAt.values()) {
      expect(t).toBeGreaterThanOrEqual(6000);
      expect(t).toBeLessThanOrEqual(10_000);
    }
    // Resources created together retire one by one: no two at the same moment.
    expect(new Set(destroyedAt.values()).size).toBe(n);
  });

  it('resources created together retire at their own jittered times, not in one batch', async () => {
    // Math.random only fixes the ORDER of the jittered expiries here (the first resource
    // created gets the latest one), so the outcome does not depend on luck. Nothing below
    // assumes the jitter formula.
    const n = 20;
    let call = 0;
    const random = vi.spyOn(Math, 'random').mockImplementation(() => (call++ % n) / n);
    try {
      const adapter = fake.adapter();
      const destroyedAt = recordDestroyTimes(adapter);
      const pool = makePool({ adapter, max: n, maxLifetimeMs: 10_000 });
      const leases = await acquireMany(pool, n);
      for (const lease of leases) await lease.release();

      await clock.advance(10_000);
      expect(pool.stats().destroyedByReason.lifetime).toBe(n);
      const times = [...destroyedAt.values()];
      expect(times).toHaveLength(n);
      // F26: no synchronized die-off.
      expect(new Set(times).size).toBeGreaterThan(n / 2);
      const largestBatch = Math.max(...times.map((t) => times.filter((u) => u === t).length));
      expect(largestBatch).toBeLessThanOrEqual(n / 4);
    } finally {
      random.mockRestore();
    }
  });

  it('never retires a leased resource: it is destroyed on release instead of being returned', async () => {
    const pool = makePool({ max: 2, maxLifetimeMs: 1000 });
    const lease = await acquireNow(pool);
    const resource = lease.resource;

    await clock.advance(5000);
    expect(resource.destroyed).toBe(false);
    expect(pool.stats().leased).toBe(1);
    expect(pool.stats().destroyed).toBe(0);
    expect(lease.resource).toBe(resource); // still usable

    await lease.release();
    await clock.advance(0);
    expect(resource.destroyed).toBe(true);
    const stats = pool.stats();
    expect(stats.destroyedByReason.lifetime).toBe(1);
    expect(stats.idle).toBe(0);
    expect(stats.size).toBe(0);

    const next = await acquireNow(pool);
    expect(next.resource).not.toBe(resource);
    await next.release();
  });

  it('an expired resource released to a waiter is destroyed and the waiter gets a new one', async () => {
    const pool = makePool({ max: 1, maxLifetimeMs: 1000 });
    const lease = await acquireNow(pool);
    const resource = lease.resource;
    await clock.advance(1500);
    const waiting = track(pool.acquire());
    await clock.advance(0);
    expect(waiting.done).toBe(false);

    await lease.release();
    await clock.advance(0);
    expect(waiting.ok).toBe(true);
    expect(waiting.value!.resource).not.toBe(resource);
    expect(resource.destroyed).toBe(true);
    expect(pool.stats().destroyedByReason.lifetime).toBe(1);
    await waiting.value!.release();
  });

  it('expiry is checked at borrow: an expired idle resource is never handed out, even before the sweeper runs', async () => {
    const laggy = new LaggingTimersClock(clock, 5000);
    const pool = makePool({ clock: laggy, max: 2, maxLifetimeMs: 1000 });
    const first = await acquireNow(pool);
    const old = first.resource;
    await first.release();

    await clock.advance(1100); // past its lifetime; the sweeper's timer is 5 s late
    expect(old.destroyed).toBe(false);
    expect(pool.stats().idle).toBe(1);

    const lease = await acquireNow(pool);
    expect(lease.resource).not.toBe(old);
    expect(old.destroyed).toBe(true);
    expect(pool.stats().destroyedByReason.lifetime).toBe(1);
    expect(pool.stats().created).toBe(2);
    await lease.release();
  });
});

describe('min is kept topped up', () => {
  it('after lifetime retirements, replacements are created in the background', async () => {
    const pool = makePool({ max: 4, min: 2, maxLifetimeMs: 1000 });
    await pool.warmup();
    expect(pool.stats().size).toBe(2);

    await clock.advance(1000); // both retired by now
    expect(pool.stats().destroyedByReason.lifetime).toBe(2);
    expect(pool.stats().size).toBe(2);
    expect(pool.stats().idle).toBe(2);
    expect(fake.created).toBe(4);
    expect(fake.live.size).toBe(2);

    await clock.advance(1000); // and again for the replacements
    expect(pool.stats().destroyedByReason.lifetime).toBe(4);
    expect(pool.stats().size).toBe(2);
    expect(fake.live.size).toBe(2);
  });

  it('after a leased resource is destroyed by the user, min is restored without any acquire', async () => {
    const pool = makePool({ max: 4, min: 2 });
    await pool.warmup();
    const lease = await acquireNow(pool);
    await lease.destroy();
    await clock.advance(0);
    expect(pool.stats().destroyedByReason.user).toBe(1);
    expect(pool.stats().size).toBe(2);
    expect(pool.stats().idle).toBe(2);
    expect(fake.created).toBe(3);
  });
});

describe('maxUses', () => {
  it('retires a resource as it comes back from its maxUses-th lease (reason maxUses), never while leased', async () => {
    const pool = makePool({ adapter: fake.adapter(), max: 1, maxUses: 3 });
    const ids: number[] = [];
    for (let i = 0; i < 7; i++) {
      const [lease] = await acquireMany(pool, 1);
      ids.push(lease!.resource.id);
      if (i === 2) expect(pool.stats()).toMatchObject({ leased: 1, destroyedByReason: { maxUses: 0 } });
      await lease!.release();
    }
    expect(ids).toEqual([ids[0], ids[0], ids[0], ids[3], ids[3], ids[3], ids[6]]);
    expect(new Set(ids).size).toBe(3);
    expect(pool.stats()).toMatchObject({ destroyedByReason: { maxUses: 2 }, created: 3, size: 1 });
  });

  it('counts a hand-off from a release straight to a waiting acquire as a use', async () => {
    const pool = makePool({ adapter: fake.adapter(), max: 1, maxUses: 2 });
    const [first] = await acquireMany(pool, 1);
    const firstId = first!.resource.id;
    const waiting = track(pool.acquire());
    await first!.release();
    await clock.advance(0);
    const second = waiting.value!;
    expect(second.resource.id).toBe(firstId);
    await second.release();
    expect(pool.stats()).toMatchObject({ size: 0, destroyedByReason: { maxUses: 1 } });
  });

  it('is validated: an integer >= 1 or Infinity', () => {
    expect(() => makePool({ adapter: fake.adapter(), maxUses: 0 })).toThrow('Expected `maxUses` to be an integer >= 1 or Infinity, got 0');
    expect(() => makePool({ adapter: fake.adapter(), maxUses: 1.5 })).toThrow('Expected `maxUses` to be an integer >= 1 or Infinity, got 1.5');
  });
});
