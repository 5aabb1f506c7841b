// Pool-internal lifecycle faults (FAULTS.md §3 D) on the fake adapter: F27 event-loop
// stall and wall-clock jumps, F28 leak detection and exhaustion by leaks, F30 factory
// failure storm and the herd on recovery, F26 maxLifetime / idle rotation under load.
// Time is virtual (VirtualClock), except F27b, which needs the real monotonic clock.
import { performance } from 'node:perf_hooks';
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  AcquireTimeoutError,
  createPool,
  LeakDetectedError,
  type Adapter,
  type Lease,
  type Pool,
} from '../../src/index.js';
import { codedError, FakeAdapter, type FakeResource } from '../support/fake-adapter.js';
import { mulberry32, spread, StallingClock } from '../support/gates.js';
import { closeOnClock, setup, track, type Tracked } from '../support/harness.js';
import { VirtualClock } from '../support/virtual-clock.js';

afterEach(() => {
  vi.restoreAllMocks();
});

/** Seeded Math.random for the pool's jitter (lifetime, backoff), so a run replays exactly. */
function seedPoolRandom(seed: number): void {
  vi.spyOn(Math, 'random').mockImplementation(mulberry32(seed));
}

// ---------------------------------------------------------------- F27

describe('F27 event-loop stall and clock jumps', () => {
  /** A saturated pool (3 leases held) with 20 acquires of 1000 ms queued at t = 0..190, and a bystander pool of idle resources. */
  async function stalledScene(releaseDuringStall: boolean) {
    const base = new VirtualClock();
    const clock = new StallingClock(base);
    const fake = new FakeAdapter(base);
    const errors: unknown[] = [];
    const pool = createPool<FakeResource>({ adapter: fake.adapter(), clock, max: 3, acquireTimeoutMs: 1000, onError: (e) => errors.push(e) });
    const bystanderFake = new FakeAdapter(base);
    const bystander = createPool<FakeResource>({
      adapter: bystanderFake.adapter(),
      clock,
      min: 3,
      max: 3,
      idleTimeoutMs: 3000,
      maxLifetimeMs: 60_000,
      keepaliveMs: 30_000,
      onError: (e) => errors.push(e),
    });
    const holders = [track(pool.acquire(), clock), track(pool.acquire(), clock), track(pool.acquire(), clock)];
    await clock.advance(0);
    expect(holders.every((h) => h.ok)).toBe(true);
    expect(bystander.stats().idle).toBe(3);

    const issuedAt: number[] = [];
    const waiters: Tracked<Lease<FakeResource>>[] = [];
    for (let i = 0; i < 20; i++) {
      issuedAt.push(clock.now());
      waiters.push(track(pool.acquire(), clock));
      await clock.advance(10);
    }
    const patient = track(pool.acquire({ timeoutMs: 5000 }), clock); // due at 5200, after the stall
    if (releaseDuringStall) {
      // The holders' own timers come due inside the stall, before the waiters' deadlines (1000..1190).
      for (const [i, h] of holders.entries()) clock.setTimeout(() => void h.value!.release(), 300 + 100 * i);
    }
    expect(clock.now()).toBe(200);
    expect(pool.stats().waiting).toBe(21);
    return { base, clock, fake, pool, bystander, bystanderFake, holders, waiters, issuedAt, patient, errors };
  }

  it('(a) a 2 s stall: every expired waiter rejects exactly once, at the end of the stall; no negative budget, no eviction', async () => {
    const s = await stalledScene(false);
    const { clock, pool, bystander, waiters, patient } = s;

    await clock.stall(2000); // the event loop was blocked from t = 200 to t = 2200
    expect(clock.now()).toBe(2200);

    for (const [i, w] of waiters.entries()) {
      expect(w.state, `waiter #${i}`).toBe('rejected');
      expect(w.error, `waiter #${i}`).toBeInstanceOf(AcquireTimeoutError);
      const error = w.error as AcquireTimeoutError;
      expect(error.timeoutMs).toBe(1000);
      expect(w.at, `waiter #${i} settles when the stall ends`).toBe(2200);
    }
    expect(patient.state).toBe('pending');
    expect(pool.stats()).toMatchObject({ timedOut: 20, waiting: 1, leased: 3, destroyed: 0 });
    // No timer was ever asked for a negative (or NaN) delay: no negative remaining budget.
    expect(s.clock.delays.filter((ms) => !(ms >= 0))).toEqual([]);
    // No mass eviction: the bystander's idle resources and the leased ones all survive.
    expect(bystander.stats()).toMatchObject({ idle: 3, destroyed: 0 });
    expect(s.bystanderFake.destroyed).toBe(0);
    expect(s.errors).toEqual([]);

    // Settled exactly once: nothing changes afterwards, and the counters do not move.
    await clock.advance(10_000);
    expect(pool.stats().timedOut).toBe(21);
    expect(patient.error).toBeInstanceOf(AcquireTimeoutError);
    expect(patient.at).toBe(5200);
    for (const h of s.holders) await h.value!.release();
    expect(pool.stats()).toMatchObject({ idle: 3, destroyed: 0, acquired: 3 });
    await closeOnClock(s.base, [pool, bystander]);
  });

  it('(a) a resource released during the stall is not handed to a waiter whose deadline passed during it', async () => {
    const s = await stalledScene(true);
    const { clock, pool, waiters, patient } = s;

    await clock.stall(2000);
    expect(clock.now()).toBe(2200);
    // The holders' timers ran (late) inside the stall, before the pool's deadline timer: the
    // waiters at the head were already 1 s past their deadlines and must still expire.
    const served = waiters.flatMap((w, i) => (w.ok ? [i] : []));
    expect(served, 'waiters served after their deadline').toEqual([]);
    for (const w of waiters) expect(w.error).toBeInstanceOf(AcquireTimeoutError);
    // The patient waiter (deadline 5200) is the one that gets a resource.
    expect(patient.ok).toBe(true);
    expect(pool.stats()).toMatchObject({ timedOut: 20, waiting: 0, destroyed: 0 });
    expect(s.clock.delays.filter((ms) => !(ms >= 0))).toEqual([]);
    await patient.value!.release();
    await closeOnClock(s.base, [pool, s.bystander]);
  });

  it('(b) the pool never reads Date.now: wall-clock jumps of ±1 h change nothing (real monotonic clock)', async () => {
    const realDateNow = Date.now.bind(Date);
    let offset = 0;
    let poolReads = 0;
    vi.spyOn(Date, 'now').mockImplementation(() => {
      if (new Error().stack?.includes('/src/pool/')) poolReads++;
      return realDateNow() + offset;
    });

    /** One run on the system clock; `jump(at)` moves the wall clock at a few points. Returns what it observed. */
    async function run(jump: (at: 'idle' | 'waiting' | 'end') => void) {
      const fake = new FakeAdapter(new VirtualClock()); // hooks settle at once: its clock is never used
      const errors: unknown[] = [];
      const pool = createPool<FakeResource>({
        adapter: fake.adapter(),
        max: 2,
        pingIfIdleMs: 500,
        idleTimeoutMs: 1000,
        maxLifetimeMs: 2000,
        keepaliveMs: 1000,
        leakDetectionMs: 1000,
        acquireTimeoutMs: 1000,
        onError: (e) => errors.push(e),
      });
      try {
        const a = await pool.acquire();
        const b = await pool.acquire();
        const resourceB = b.resource;
        await b.release();
        jump('idle');
        // Borrowing the idle resource: a 1 h wall-clock jump would make it look idle for 1 h (a ping) or expired.
        const again = await pool.acquire();
        expect(again.resource).toBe(resourceB);
        // Saturated: a 60 ms acquire times out after 60 ms of real time, whatever the wall clock does meanwhile.
        const started = performance.now();
        const timingOut = pool.acquire({ timeoutMs: 60 }).then(
          () => NaN,
          (error: unknown) => (error instanceof AcquireTimeoutError ? performance.now() - started : NaN),
        );
        setTimeout(() => jump('waiting'), 20);
        const waitedMs = await timingOut;
        await again.release();
        await a.release();
        jump('end');
        await new Promise((resolve) => setTimeout(resolve, 30));
        const stats = pool.stats();
        return { waitedMs, pings: fake.pings, destroyed: stats.destroyed, idle: stats.idle, created: fake.created, errors };
      } finally {
        await pool.close({ timeoutMs: 0 });
      }
    }

    const control = await run(() => {});
    const jumped = await run((at) => {
      offset = at === 'idle' ? 3_600_000 : at === 'waiting' ? -3_600_000 : 7_200_000;
    });
    offset = 0;

    for (const observed of [control, jumped]) {
      // I1: the timeout fires after its 60 ms, and well within 100 ms more.
      expect(observed.waitedMs).toBeGreaterThanOrEqual(59);
      expect(observed.waitedMs).toBeLessThan(60 + 100);
    }
    expect({ ...jumped, waitedMs: 0 }).toEqual({ ...control, waitedMs: 0 });
    expect(jumped).toMatchObject({ pings: 0, destroyed: 0, idle: 2, created: 2, errors: [] });
    expect(poolReads, 'calls to Date.now() from src/pool').toBe(0);
  });
});

// ---------------------------------------------------------------- F28

/** The acquire site leak reports must name. */
function leakyCaller(pool: Pool<FakeResource>): Promise<Lease<FakeResource>> {
  return pool.acquire();
}

const leaksIn = (errors: unknown[]): LeakDetectedError[] => errors.filter((e): e is LeakDetectedError => e instanceof LeakDetectedError);

describe('F28 leak detection and pool exhaustion by a leak', () => {
  it('one leaked lease of 5: exactly one report, through onError, with the acquire-site stack', async () => {
    await using h = setup({ max: 5, leakDetectionMs: 2000 });
    const { pool, clock, errors } = h;
    const leases: Lease<FakeResource>[] = [];
    for (let i = 0; i < 5; i++) leases.push(await leakyCaller(pool));
    await clock.advance(1000);
    for (const lease of leases.slice(1)) await lease.release(); // 4 released in time, 1 leaked

    await clock.advance(999);
    expect(leaksIn(errors)).toEqual([]);
    await clock.advance(1);
    const reported = leaksIn(errors);
    expect(reported).toHaveLength(1);
    expect(reported[0]!.code).toBe('POOL_LEAK_DETECTED');
    expect(reported[0]!.heldMs).toBe(2000);
    expect(reported[0]!.stack).toContain('leakyCaller');
    expect(reported[0]!.stack).toContain('faults-core.test.ts');

    // Exactly once, however long it stays leaked, while other leases come and go.
    for (let i = 0; i < 10; i++) {
      const other = await pool.acquire();
      await clock.advance(500);
      await other.release();
    }
    await clock.advance(60_000);
    expect(leaksIn(errors)).toHaveLength(1);
    expect(errors.filter((e) => !(e instanceof LeakDetectedError))).toEqual([]);
    await leases[0]!.release();
  });

  it('all 5 leaked: one report per lease; acquires time out with the stats in the message; released leases serve waiters in FIFO order', async () => {
    await using h = setup({ max: 5, leakDetectionMs: 2000, acquireTimeoutMs: 1000 });
    const { pool, clock, errors } = h;
    const leases: Lease<FakeResource>[] = [];
    for (let i = 0; i < 5; i++) {
      leases.push(await leakyCaller(pool));
      await clock.advance(100); // acquired at 0, 100, .., 400
    }
    await clock.advance(1600); // t = 2100: the first two are due (2000, 2100)
    expect(leaksIn(errors)).toHaveLength(2);
    await clock.advance(300); // t = 2400: all five
    const reported = leaksIn(errors);
    expect(reported).toHaveLength(5);
    for (const leak of reported) {
      expect(leak.stack).toContain('leakyCaller');
      expect(leak.stack).toContain('faults-core.test.ts');
    }

    // Exhausted by leaks: three acquires queued together time out, each error carrying the gauges.
    const starved = [track(pool.acquire(), clock), track(pool.acquire(), clock), track(pool.acquire(), clock)];
    await clock.advance(1000);
    for (const [i, s] of starved.entries()) {
      expect(s.error, `starved #${i}`).toBeInstanceOf(AcquireTimeoutError);
      const error = s.error as AcquireTimeoutError;
      expect(error.stats).toMatchObject({ max: 5, size: 5, leased: 5, idle: 0, creating: 0 });
      expect(error.message).toContain('size 5/5');
      expect(error.message).toContain('leased 5');
      expect(error.message).toContain('idle 0');
      expect(error.message).toContain(`waiting ${error.stats.waiting}`);
      expect(error.message).toMatch(/saturated/);
    }
    expect((starved[0]!.error as AcquireTimeoutError).stats.waiting).toBe(3);
    expect(leaksIn(errors)).toHaveLength(5);

    // Queue 8 waiters, then give the leaked leases back one by one: arrival order is served.
    const order: number[] = [];
    const waiters = Array.from({ length: 8 }, (_, i) =>
      track(
        pool.acquire({ timeoutMs: 60_000 }).then(async (lease) => {
          order.push(i);
          await clock.sleep(5);
          await lease.release();
        }),
        clock,
      ),
    );
    await clock.advance(10);
    expect(pool.stats().waiting).toBe(8);
    for (const lease of leases) {
      await lease.release();
      await clock.advance(1);
    }
    await clock.advance(100);
    expect(waiters.every((w) => w.ok)).toBe(true);
    expect(order).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect(leaksIn(errors)).toHaveLength(5);
    expect(pool.stats()).toMatchObject({ waiting: 0, leased: 0, idle: 5, destroyed: 0 });
  });
});

// ---------------------------------------------------------------- F30

describe('F30 factory failure storm and thundering herd on recovery', () => {
  const MAX = 10;
  const RETRY = { minTimeoutMs: 100, maxTimeoutMs: 1000, factor: 2 } as const;
  const OUTAGE_MS = 10_000;

  /**
   * The create fails (transient ECONNREFUSED after 20 ms of connecting) until `up` is set,
   * then succeeds after 150 ms. Records every attempt and failure.
   */
  function stormAdapter(clock: VirtualClock) {
    const fake = new FakeAdapter(clock);
    const base = fake.adapter();
    const state = { up: false, inFlight: 0 };
    const attempts: { at: number; attempt: number }[] = [];
    const failures: { at: number; error: Error }[] = [];
    const adapter: Adapter<FakeResource> = {
      ...base,
      create: (ctx) => {
        attempts.push({ at: clock.now(), attempt: ctx.attempt });
        state.inFlight++;
        const up = state.up;
        return new Promise<FakeResource>((resolve, reject) => {
          clock.setTimeout(
            () => {
              state.inFlight--;
              if (!up) {
                const error = codedError(`connect ECONNREFUSED 10.0.0.5:5432 (attempt #${attempts.length})`, 'ECONNREFUSED');
                failures.push({ at: clock.now(), error });
                reject(error);
              } else resolve(base.create(ctx));
            },
            up ? 150 : 20,
          );
        });
      },
    };
    return { fake, adapter, state, attempts, failures };
  }

  interface Outcome {
    readonly i: number;
    readonly issuedAt: number;
    readonly timeoutMs: number;
    tracked: Tracked<Lease<FakeResource>>;
  }

  it('waiters time out at their own deadlines with the last cause; no connect storm; no create once nobody waits; elision on recovery', async () => {
    seedPoolRandom(30);
    const random = mulberry32(3030);
    const clock = new VirtualClock();
    const { fake, adapter, state, attempts, failures } = stormAdapter(clock);
    // The breaker is off on purpose: with the default one (5 failures, 1 s cooldown) waiters fail
    // fast with CircuitOpenError, while F30 requires each to wait out its own deadline.
    const pool = createPool<FakeResource>({ adapter, clock, max: MAX, retry: RETRY, circuitBreaker: false, createTimeoutMs: 1000, onError: () => {} });

    const violations: string[] = [];
    let demand = 0; // callers waiting for or holding a resource (recovery phase)
    let peakDemandAfterRecovery = 0;
    const sample = (): void => {
      const s = pool.stats();
      if (s.creating > MAX - s.size) violations.push(`t=${clock.now()}: creating ${s.creating} > max - size ${MAX - s.size}`);
      if (state.inFlight > MAX - s.size) violations.push(`t=${clock.now()}: ${state.inFlight} connects in flight > max - size ${MAX - s.size}`);
      if (state.up) peakDemandAfterRecovery = Math.max(peakDemandAfterRecovery, demand);
    };
    const advance = async (ms: number): Promise<void> => {
      for (let i = 0; i < ms; i++) {
        await clock.advance(1);
        sample();
      }
    };

    // Phase 1, the outage: 50 waiters arrive at 20/s, each with its own deadline (0.5–3 s).
    const outcomes: Outcome[] = [];
    for (let i = 0; i < 50; i++) {
      const timeoutMs = Math.round(500 + random() * 2500);
      outcomes.push({ i, issuedAt: clock.now(), timeoutMs, tracked: track(pool.acquire({ timeoutMs }), clock) });
      await advance(50);
    }
    await advance(9000 - clock.now());
    const lastLeft = Math.max(...outcomes.map((o) => o.tracked.at));
    for (const o of outcomes) {
      const where = `waiter #${o.i} (issued ${o.issuedAt}, timeoutMs ${o.timeoutMs})`;
      expect(o.tracked.error, where).toBeInstanceOf(AcquireTimeoutError);
      expect(o.tracked.at, where).toBe(o.issuedAt + o.timeoutMs);
      const last = failures.filter((f) => f.at <= o.tracked.at).at(-1)!;
      expect((o.tracked.error as AcquireTimeoutError).cause, `${where}: cause is the last create error`).toBe(last.error);
    }

    // Phase 2, recovery at t = 10 s, with 6 callers already waiting since 9.5 s and 3 loops after.
    const served: Tracked<void>[] = [];
    const caller = async (work: number): Promise<void> => {
      demand++;
      try {
        const lease = await pool.acquire({ timeoutMs: 3000 });
        await clock.sleep(work);
        await lease.release();
      } finally {
        demand--;
      }
    };
    await advance(9500 - clock.now());
    const attemptsBeforeDemand = attempts.filter((a) => a.at > lastLeft).length;
    for (let i = 0; i < 6; i++) served.push(track(caller(2), clock));
    await advance(OUTAGE_MS - clock.now());
    state.up = true;
    const attemptsDuringOutage = attempts.filter((a) => a.at < OUTAGE_MS).map((a) => a.at);
    await advance(2000);
    for (let loop = 0; loop < 3; loop++) {
      served.push(
        track(
          (async () => {
            for (let n = 0; n < 50; n++) {
              await caller(2);
              await clock.sleep(random() * 4);
            }
          })(),
          clock,
        ),
      );
    }
    await advance(2000);
    expect(served.every((s) => s.ok)).toBe(true);
    const endOfDemand = clock.now();
    await advance(5000);

    // I10: concurrent creates <= max - size at every sample.
    expect(violations).toEqual([]);
    // I10: connect attempts/s <= max / retry.minTimeout (in every 1 s bucket of the outage).
    const perSecond = Array.from({ length: OUTAGE_MS / 1000 }, (_, s) => attemptsDuringOutage.filter((t) => t >= s * 1000 && t < (s + 1) * 1000).length);
    expect(Math.max(...perSecond)).toBeLessThanOrEqual(MAX / (RETRY.minTimeoutMs / 1000));
    // Jittered: the inter-attempt gaps while the 50 waiters were there vary (coefficient of variation > 0.2).
    const stormAttempts = attemptsDuringOutage.filter((t) => t <= lastLeft);
    const gaps = stormAttempts.slice(1).map((t, i) => t - stormAttempts[i]!);
    expect(gaps.length).toBeGreaterThan(5);
    expect(spread(gaps).cv).toBeGreaterThan(0.2);
    // No create starts after the last waiter left (until new demand came at 9.5 s): 0 ± 1.
    expect(attemptsBeforeDemand).toBeLessThanOrEqual(1);
    // Elision: after recovery, created <= min(max, peak concurrent demand) + 1, not one per historical waiter.
    expect(peakDemandAfterRecovery).toBeGreaterThanOrEqual(3);
    expect(fake.created).toBeLessThanOrEqual(Math.min(MAX, peakDemandAfterRecovery) + 1);
    // And nothing is created once demand stops (0 ± 1).
    expect(attempts.filter((a) => a.at > endOfDemand).length).toBeLessThanOrEqual(1);
    await closeOnClock(clock, [pool]);
  });

  it('the retry delays stay jittered once the backoff reaches maxTimeoutMs: no lockstep at the cap', async () => {
    seedPoolRandom(31);
    const clock = new VirtualClock();
    const { adapter, attempts } = stormAdapter(clock);
    const pool = createPool<FakeResource>({ adapter, clock, max: MAX, retry: RETRY, circuitBreaker: false, onError: () => {} });
    const waiting = track(pool.acquire({ timeoutMs: 30_000 }), clock);
    // One waiter with a long deadline keeps one create retrying through a long outage.
    await clock.advance(20_000);
    expect(waiting.done).toBe(false);
    const times = attempts.map((a) => a.at);
    // 100 * 2^4 >= 1000: from the 5th retry on every delay is at the cap.
    const capped = times.slice(6).map((t, i) => t - times[i + 5]!);
    expect(capped.length).toBeGreaterThanOrEqual(8);
    const { cv, mean } = spread(capped);
    // `randomize` exists "so clients do not retry in lockstep": the delays must keep varying.
    expect(new Set(capped.map((g) => g.toFixed(6))).size, `gaps at the cap: ${capped.map((g) => g.toFixed(1)).join(', ')}`).toBeGreaterThan(1);
    expect(cv, `gaps at the cap (mean ${mean.toFixed(1)} ms): ${capped.map((g) => g.toFixed(1)).join(', ')}`).toBeGreaterThan(0.05);
    for (const gap of capped) expect(gap).toBeLessThanOrEqual(RETRY.maxTimeoutMs + 20);
    await closeOnClock(clock, [pool], { timeoutMs: 0 });
  });
});

// ---------------------------------------------------------------- F26

describe('F26 maxLifetime / idle rotation under load', () => {
  it('60 s of bursty load: no errors, no over-age handout, no synchronized die-off, min kept', async () => {
    seedPoolRandom(26);
    const random = mulberry32(2626);
    const clock = new VirtualClock();
    const fake = new FakeAdapter(clock);
    fake.defaults.create = { kind: 'slow', ms: 20 };
    const base = fake.adapter();
    const createdAt = new Map<FakeResource, number>();
    const adapter: Adapter<FakeResource> = {
      ...base,
      create: async (ctx) => {
        const resource = await base.create(ctx);
        createdAt.set(resource, clock.now());
        return resource;
      },
    };
    const MAX_LIFETIME = 2000;
    const MIN = 2;
    const errors: unknown[] = [];
    const pool = createPool<FakeResource>({
      adapter,
      clock,
      min: MIN,
      max: 10,
      maxLifetimeMs: MAX_LIFETIME,
      idleTimeoutMs: 1000,
      acquireTimeoutMs: 5000,
      onError: (e) => errors.push(e),
    });

    // 8 workers; 1.5 s bursts of acquire → 5–30 ms of work → release, then 1.5 s idle gaps.
    const CYCLE = 3000;
    const BUSY = 1500;
    const RUN_MS = 60_000;
    let stop = false;
    let operations = 0;
    const operationErrors: unknown[] = [];
    const overAge: string[] = [];
    const worker = async (): Promise<void> => {
      while (!stop) {
        const phase = clock.now() % CYCLE;
        if (phase >= BUSY) {
          await clock.sleep(CYCLE - phase);
          continue;
        }
        try {
          const lease = await pool.acquire();
          const age = clock.now() - createdAt.get(lease.resource)!;
          if (age > MAX_LIFETIME) overAge.push(`resource #${lease.resource.id} handed out at age ${age} ms (t=${clock.now()})`);
          await clock.sleep(5 + random() * 25);
          await lease.release();
          operations++;
        } catch (error) {
          operationErrors.push(error);
        }
        await clock.sleep(random() * 10);
      }
    };
    const workers = Array.from({ length: 8 }, () => track(worker(), clock));

    // Sample every virtual ms: pool size, and each lifetime retirement with the size just before it.
    const sizes: number[] = [];
    const retirements: { at: number; sizeBefore: number }[] = [];
    let lifetimeSeen = 0;
    for (let t = 0; t < RUN_MS; t++) {
      const sizeBefore = pool.stats().size;
      await clock.advance(1);
      const s = pool.stats();
      for (; lifetimeSeen < s.destroyedByReason.lifetime; lifetimeSeen++) retirements.push({ at: clock.now(), sizeBefore });
      sizes[clock.now()] = s.size;
    }
    stop = true;
    await clock.advance(CYCLE);
    expect(workers.every((w) => w.ok)).toBe(true);

    expect(operations).toBeGreaterThan(5000);
    expect(operationErrors).toEqual([]);
    expect(errors).toEqual([]);
    expect(overAge).toEqual([]);
    expect(retirements.length).toBeGreaterThan(20);

    // No synchronized die-off: in any 100 ms window, at most 40 % of the pool (as it was when the
    // window opened) is retired for lifetime; one retirement is always allowed (1 of 2 is 50 %).
    const dieOffs: string[] = [];
    for (const r of retirements) {
      const inWindow = retirements.filter((x) => x.at >= r.at && x.at < r.at + 100).length;
      const allowed = Math.max(1, Math.floor(0.4 * r.sizeBefore));
      if (inWindow > allowed) dieOffs.push(`${inWindow} of ${r.sizeBefore} retired in [${r.at}, ${r.at + 100}) ms`);
    }
    expect(dieOffs, `synchronized die-offs (${dieOffs.length}): ${dieOffs.slice(0, 8).join('; ')}`).toEqual([]);

    // min is back within 500 ms of every retirement.
    const minLate: string[] = [];
    for (const r of retirements) {
      const window = sizes.slice(r.at, r.at + 500);
      if (!window.some((size) => size >= MIN)) minLate.push(`retirement at ${r.at}: size ${window.at(-1)} 500 ms later`);
    }
    expect(minLate).toEqual([]);
    await closeOnClock(clock, [pool]);
  });
});
