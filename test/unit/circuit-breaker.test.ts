// Circuit breaker: open after consecutive create failures, fail fast, probe after cooldown, coverage by leases.
import { describe, expect, it } from 'vitest';
import { AcquireTimeoutError, CircuitOpenError, type Lease, type Pool } from '../../src/index.js';
import { codedError, type FakeResource } from '../support/fake-adapter.js';
import { acquireNow, clock, fake, track, usePerTestPools, type Tracked } from '../support/harness.js';

const THRESHOLD = 3;
const COOLDOWN = 1000;

/**
 * Deterministic backoff (attempts at 0, 100, 300, ...), so with threshold 3 a single
 * waiter opens the breaker at t = 300.
 */
const makePool = usePerTestPools(
  {
    keepaliveMs: Infinity,
    pingIfIdleMs: Infinity,
    max: 3,
    retry: { randomize: false, minTimeoutMs: 100, factor: 2 },
    circuitBreaker: { failureThreshold: THRESHOLD, cooldownMs: COOLDOWN },
  },
  {
    prepare: (fake) => {
      fake.createError = codedError('connect ECONNREFUSED 10.0.0.5:5432', 'ECONNREFUSED');
    },
  },
);

function expectCircuitOpen(outcome: Tracked<unknown>, at: number): void {
  expect(outcome.done).toBe(true);
  expect(outcome.at).toBe(at);
  const error = outcome.error as CircuitOpenError;
  expect(error).toBeInstanceOf(CircuitOpenError);
  expect(error.code).toBe('POOL_CIRCUIT_OPEN');
  expect(error.cause).toBe(fake.createError);
}

/** Fail creates until the breaker opens at t = 300 (from t = 0), with one waiter that is not covered. */
async function openBreaker(pool: Pool<FakeResource>): Promise<Tracked<Lease<FakeResource>>> {
  fake.defaults.create = { kind: 'fail' };
  const start = clock.now();
  const waiter = track(pool.acquire({ timeoutMs: 10_000 }));
  await clock.advance(300);
  expect(fake.createAttempts).toBeGreaterThanOrEqual(THRESHOLD);
  expect(pool.stats().circuit).toBe('open');
  expect(clock.now()).toBe(start + 300);
  return waiter;
}

describe('opening', () => {
  it('opens after failureThreshold consecutive create failures; the waiter fails at once instead of at its deadline', async () => {
    const pool = makePool();
    fake.defaults.create = { kind: 'fail' };
    const waiter = track(pool.acquire({ timeoutMs: 10_000 }));

    await clock.advance(299); // two failures so far
    expect(pool.stats().circuit).toBe('closed');
    expect(waiter.done).toBe(false);

    await clock.advance(1); // third failure at t = 300
    expect(fake.createAttempts).toBe(THRESHOLD);
    const stats = pool.stats();
    expect(stats.circuit).toBe('open');
    expect(stats.consecutiveCreateFailures).toBe(THRESHOLD);
    expectCircuitOpen(waiter, 300);
  });

  it('while open, an acquire that needs a new resource fails at once with CircuitOpenError, and no create is tried', async () => {
    const pool = makePool();
    await openBreaker(pool);
    const attempts = fake.createAttempts;

    await clock.advance(200);
    const acquiring = track(pool.acquire({ timeoutMs: 10_000 }));
    await clock.advance(0);
    expectCircuitOpen(acquiring, 500);
    expect(fake.createAttempts).toBe(attempts);
    expect(pool.stats().rejected.circuitOpen).toBe(2);
    expect(pool.stats().waiting).toBe(0);
  });

  it('hands out idle healthy resources while open', async () => {
    const pool = makePool();
    const held = await acquireNow(pool); // created while healthy
    const resource = held.resource;
    const waiter = await openBreaker(pool); // covered by the lease, so it keeps waiting
    expect(waiter.done).toBe(false);
    await held.release(); // goes to the waiter
    expect(waiter.ok).toBe(true);
    await waiter.value!.release(); // now idle

    await clock.advance(100);
    const lease = await acquireNow(pool);
    expect(lease.resource).toBe(resource);
    expect(pool.stats().circuit).toBe('open');
    await lease.release();
  });

  it('hands out an idle resource that needs a borrow-time ping while open (after the ping passes)', async () => {
    const pool = makePool({ pingIfIdleMs: 100 });
    const held = await acquireNow(pool);
    const resource = held.resource;
    const waiter = await openBreaker(pool);
    await held.release();
    expect(waiter.ok).toBe(true);
    await waiter.value!.release(); // idle since t = 300

    await clock.advance(200); // idle 200 ms > pingIfIdleMs; breaker still cooling down
    expect(pool.stats().circuit).toBe('open');
    const acquiring = track(pool.acquire());
    await clock.advance(0);
    expect(acquiring.error).toBeUndefined();
    expect(acquiring.ok).toBe(true);
    expect(acquiring.value!.resource).toBe(resource);
    expect(fake.pings).toBe(1);
    await acquiring.value!.release();
  });
});

describe('probe after cooldown', () => {
  it('lets exactly one probe create through after cooldownMs; its success closes the breaker', async () => {
    const pool = makePool();
    await openBreaker(pool); // opened at t = 300
    const attempts = fake.createAttempts;

    await clock.advance(COOLDOWN - 1);
    const early = track(pool.acquire());
    await clock.advance(0);
    expectCircuitOpen(early, 300 + COOLDOWN - 1);
    expect(fake.createAttempts).toBe(attempts);

    await clock.advance(1); // cooldown over at t = 1300
    fake.defaults.create = { kind: 'ok' };
    fake.script.create.push({ kind: 'slow', ms: 50 });
    const probing = [track(pool.acquire()), track(pool.acquire()), track(pool.acquire())];
    await clock.advance(0);
    expect(fake.createAttempts).toBe(attempts + 1); // one probe, however many acquires
    expect(pool.stats().circuit).toBe('half-open');
    expect(probing[0]!.done).toBe(false);
    // The others cannot be served by the single probe: they fail fast.
    expectCircuitOpen(probing[1]!, 1300);
    expectCircuitOpen(probing[2]!, 1300);

    await clock.advance(50);
    expect(probing[0]!.ok).toBe(true);
    expect(pool.stats().circuit).toBe('closed');
    expect(pool.stats().consecutiveCreateFailures).toBe(0);

    // Back to normal: new resources are created on demand.
    const more = [track(pool.acquire()), track(pool.acquire())];
    await clock.advance(0);
    for (const m of more) expect(m.ok).toBe(true);
    expect(pool.stats().leased).toBe(3);
    for (const lease of [probing[0]!, ...more]) await lease.value!.release();
  });

  it('does not probe when nobody needs a resource', async () => {
    const pool = makePool();
    await openBreaker(pool);
    const attempts = fake.createAttempts;
    await clock.advance(10 * COOLDOWN);
    expect(fake.createAttempts).toBe(attempts);
    expect(pool.stats().circuit).toBe('open');
  });

  it('a failed probe re-opens the breaker for another cooldown', async () => {
    const pool = makePool();
    await openBreaker(pool); // opened at t = 300
    const attempts = fake.createAttempts;
    await clock.advance(COOLDOWN); // t = 1300

    const probe = track(pool.acquire({ timeoutMs: 10_000 }));
    await clock.advance(0);
    expect(fake.createAttempts).toBe(attempts + 1); // a single attempt, no retries
    expect(pool.stats().circuit).toBe('open');
    expectCircuitOpen(probe, 1300);

    // A new cooldown, counted from the failed probe.
    await clock.advance(COOLDOWN - 1);
    const early = track(pool.acquire());
    await clock.advance(0);
    expectCircuitOpen(early, 1300 + COOLDOWN - 1);
    expect(fake.createAttempts).toBe(attempts + 1);

    await clock.advance(1);
    fake.defaults.create = { kind: 'ok' };
    const late = track(pool.acquire());
    await clock.advance(0);
    expect(late.ok).toBe(true);
    expect(fake.createAttempts).toBe(attempts + 2);
    expect(pool.stats().circuit).toBe('closed');
    await late.value!.release();
  });
});

describe('circuitBreaker: false', () => {
  it('never opens: acquires wait until their deadline and time out with the last create error as cause', async () => {
    const pool = makePool({ circuitBreaker: false });
    fake.defaults.create = { kind: 'fail' };
    const waiter = track(pool.acquire({ timeoutMs: 2000 }));

    await clock.advance(1999);
    expect(waiter.done).toBe(false);
    expect(fake.createAttempts).toBeGreaterThan(THRESHOLD); // a breaker would have opened by now
    expect(pool.stats().circuit).toBe('closed');

    await clock.advance(1);
    expect(waiter.at).toBe(2000);
    const error = waiter.error as AcquireTimeoutError;
    expect(error).toBeInstanceOf(AcquireTimeoutError);
    expect(error.cause).toBe(fake.createError);
    expect(pool.stats().rejected.circuitOpen).toBe(0);

    // And a new acquire still gets to try creating.
    const attempts = fake.createAttempts;
    fake.defaults.create = { kind: 'ok' };
    const next = track(pool.acquire({ timeoutMs: 10_000 }));
    await clock.advance(5000);
    expect(next.ok).toBe(true);
    expect(fake.createAttempts).toBeGreaterThan(attempts);
    await next.value!.release();
  });
});

describe('waiters covered by leased resources', () => {
  // The rule (pool.ts #coverage/#trimUncovered): while the breaker is not closed, as many
  // waiters may queue as there are resources that can come back without a create (leased,
  // being checked or reset, being created, plus one probe once the cooldown is over).
  // Beyond that, acquires fail fast, and when coverage shrinks the newest waiters fail.
  it('before any lease came back, one waiter per leased resource queues and the next fails fast; a release serves the oldest', async () => {
    const pool = makePool();
    const l1 = await acquireNow(pool);
    const l2 = await acquireNow(pool);
    const resource2 = l2.resource;
    const a = await openBreaker(pool); // 1 waiter, 2 leases: covered
    expect(a.done).toBe(false);

    const b = track(pool.acquire({ timeoutMs: 10_000 }));
    await clock.advance(0);
    expect(b.done).toBe(false); // 2 waiters, 2 leases: covered
    expect(pool.stats().waiting).toBe(2);

    const c = track(pool.acquire({ timeoutMs: 10_000 }));
    await clock.advance(0);
    expectCircuitOpen(c, 300); // 3 waiters would exceed 2 leases

    // Once a lease has come back (destroyed here, after 300 ms), lease times are known: the one
    // live resource can serve both waiters, in turn, well within their 10 s, so both keep waiting.
    await l1.destroy(new Error('gone'));
    await clock.advance(0);
    expect(a.done || b.done).toBe(false);
    expect(pool.stats().waiting).toBe(2);

    // A released lease serves the oldest waiter, then the next.
    await l2.release();
    expect(a.ok).toBe(true);
    expect(a.value!.resource).toBe(resource2);
    expect(pool.stats().circuit).toBe('open');
    await a.value!.release();
    expect(b.ok).toBe(true);
    await b.value!.release();
  });

  it('once lease times are known, a live resource covers as many waiters as it can serve before the acquire timeout', async () => {
    const pool = makePool({ acquireTimeoutMs: 1000 });
    // One lease of 100 ms: the p99 lease time (±6 % bucket error) lets one resource serve ~10 waiters in 1000 ms.
    const warm = await acquireNow(pool);
    await clock.advance(100);
    await warm.release();
    const held = await acquireNow(pool);
    fake.defaults.create = { kind: 'fail' };
    const first = track(pool.acquire());
    await clock.advance(300);
    expect(pool.stats().circuit).toBe('open');
    const more = Array.from({ length: 8 }, () => track(pool.acquire()));
    await clock.advance(0);
    expect(first.done || more.some((w) => w.done), 'nine waiters fit in ten turns of the one live resource').toBe(false);
    const extra = Array.from({ length: 4 }, () => track(pool.acquire()));
    await clock.advance(0);
    expect(extra.filter((w) => w.done && w.error instanceof CircuitOpenError).length, 'beyond the turns it has, waiters fail fast').toBeGreaterThanOrEqual(2);
    // The covered waiters are served in turn as the resource comes back.
    await held.release();
    expect(first.ok).toBe(true);
    await first.value!.release();
    expect(more[0]!.ok).toBe(true);
    await more[0]!.value!.release();
  });

  it('a covered waiter whose lease never comes back times out at its own deadline', async () => {
    const pool = makePool();
    const held = await acquireNow(pool);
    fake.defaults.create = { kind: 'fail' };
    const waiter = track(pool.acquire({ timeoutMs: 5000 }));
    await clock.advance(300);
    expect(pool.stats().circuit).toBe('open');
    expect(waiter.done).toBe(false);

    await clock.advance(4699);
    expect(waiter.done).toBe(false);
    await clock.advance(1);
    expect(waiter.at).toBe(5000);
    expect(waiter.error).toBeInstanceOf(AcquireTimeoutError);
    expect((waiter.error as AcquireTimeoutError).cause).toBe(fake.createError);
    await held.release();
  });
});
