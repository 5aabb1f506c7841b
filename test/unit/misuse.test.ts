// The FAULTS.md §5 checklist: one `describe` per bad-input / misuse case M1–M32, adapted to
// lifeguard's API (DESIGN.md wins on names: FAULTS' `validate` is `adapter.ping`,
// `validateTimeoutMs` is `pingTimeoutMs`, `factory` is `adapter.create`; construction errors
// are `InvalidPoolOptionError` naming the option). Several cases have fuller scenarios in
// other files (options, leases, close, abort, retry, health); the tests here are the compact,
// direct checks, so this file reads as the whole checklist. A case that does not apply to
// this API says so in its title, and its test pins the design that replaces it.
import { Duplex } from 'node:stream';
import { EventEmitter } from 'node:events';
import { MessageChannel } from 'node:worker_threads';
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  AcquireTimeoutError,
  CreateResourceError,
  CreateTimeoutError,
  createPool,
  DestroyTimeoutError,
  InvalidPoolOptionError,
  LeakDetectedError,
  LeaseReleasedError,
  PingTimeoutError,
  PoolClosedError,
  PoolError,
  type Adapter,
  type Lease,
  type Pool,
  type PoolOptions,
} from '../../src/index.js';
import { createPostgresPool, type PostgresPool, type PostgresPoolConfig } from '../../src/adapters/postgres/index.js';
import { codedError, FakeAdapter, type FakeOptions, type FakeResource } from '../support/fake-adapter.js';
import { closeOnClock, errorOf, track } from '../support/harness.js';
import { flush, VirtualClock } from '../support/virtual-clock.js';

// ---------------------------------------------------------------- helpers

/** The smallest adapter the pool accepts: no optional hooks. */
const minimalAdapter = (): Adapter<object> => ({ create: async () => ({}), destroy: async () => {} });

/** Bypass the type checker: misuse is exactly what these tests feed in. */
const loose = <T = object>(options: Record<string, unknown>): PoolOptions<T> => options as unknown as PoolOptions<T>;

/** Catch what `fn` throws synchronously, failing when it does not throw. */
function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  throw new Error('expected a synchronous throw, but nothing was thrown');
}

/** An InvalidPoolOptionError naming `option` (and, when given, with exactly `message`). */
function expectInvalid(error: unknown, option: string, message?: string | RegExp): void {
  expect(error).toBeInstanceOf(InvalidPoolOptionError);
  expect(error).toBeInstanceOf(PoolError);
  const e = error as InvalidPoolOptionError;
  expect(e.code).toBe('POOL_INVALID_OPTION');
  expect(e.option).toBe(option);
  expect(e.message).toContain(option);
  if (typeof message === 'string') expect(e.message).toBe(message);
  else if (message !== undefined) expect(e.message).toMatch(message);
}

/** createPool(options) must throw synchronously an InvalidPoolOptionError naming `option`. */
function expectConstructionError(options: unknown, option: string, message?: string | RegExp): void {
  expectInvalid(
    thrown(() => createPool(options as PoolOptions<object>)),
    option,
    message,
  );
}

interface Built {
  readonly clock: VirtualClock;
  readonly fake: FakeAdapter;
  readonly adapter: Adapter<FakeResource>;
  readonly pool: Pool<FakeResource>;
  /** Everything reported through onError. */
  readonly errors: unknown[];
}

type Options = Omit<PoolOptions<FakeResource>, 'adapter' | 'clock'>;

// Pools on the system clock (construction-only checks) and pools on a virtual clock, closed after each test.
const systemPools: Array<{ close(options?: { timeoutMs?: number }): Promise<void> }> = [];
const virtualPools: Built[] = [];
afterEach(async () => {
  vi.restoreAllMocks();
  for (const b of virtualPools.splice(0)) await closeOnClock(b.clock, [b.pool], { timeoutMs: 0 });
  await Promise.all(systemPools.splice(0).map((pool) => pool.close({ timeoutMs: 0 })));
});

/** A pool on the system clock, for construction checks; closed after the test. */
function open<T>(options: PoolOptions<T>): Pool<T> {
  const pool = createPool(options);
  systemPools.push(pool);
  return pool;
}

/**
 * A pool on a fresh virtual clock and fake adapter, closed after the test. `tweak` may
 * replace adapter hooks before the pool is built (e.g. to record the signals ping gets).
 */
function build(options: Options = {}, tweak?: (adapter: Adapter<FakeResource>, fake: FakeAdapter) => void, hooks?: FakeOptions): Built {
  const clock = new VirtualClock();
  const fake = new FakeAdapter(clock, hooks);
  const adapter = fake.adapter();
  tweak?.(adapter, fake);
  const errors: unknown[] = [];
  const pool = createPool<FakeResource>({ adapter, clock, keepaliveMs: Infinity, onError: (error) => errors.push(error), ...options });
  const built = { clock, fake, adapter, pool, errors };
  virtualPools.push(built);
  return built;
}

/** Acquire and let ready promise chains run (no virtual time passes); fails unless that settles it. */
async function acquireNow(b: Built): Promise<Lease<FakeResource>> {
  const outcome = track(b.pool.acquire(), b.clock);
  await b.clock.advance(0);
  expect(outcome.done, 'acquire should have settled without time passing').toBe(true);
  if (!outcome.ok) throw outcome.error;
  return outcome.value!;
}

/** `n` resources created, released, and left idle for `idleMs`; in release order (the pool pops the last one first). */
async function idleResources(b: Built, n: number, idleMs: number): Promise<FakeResource[]> {
  const leases: Lease<FakeResource>[] = [];
  for (let i = 0; i < n; i++) leases.push(await acquireNow(b));
  const resources = leases.map((lease) => lease.resource);
  for (const lease of leases) await lease.release();
  await b.clock.advance(idleMs);
  return resources;
}

// ---------------------------------------------------------------- M1–M7: options

describe('M1 max missing / 0 / negative / 1.5 / NaN / Infinity / string', () => {
  it.each<[unknown, string]>([
    [0, '0'],
    [-1, '-1'],
    [1.5, '1.5'],
    [NaN, 'NaN'],
    [Infinity, 'Infinity'],
    ['10', '"10"'],
  ])('max: %s throws at construction, naming max, the expectation and the value', (max, shown) => {
    expectConstructionError(loose({ adapter: minimalAdapter(), max }), 'max', `Expected \`max\` to be an integer >= 1, got ${shown}`);
  });

  // Documented alternative: DESIGN.md gives every option a documented default (README: `max` 10).
  it('a missing max is the documented default (10), not an error', () => {
    expect(open({ adapter: minimalAdapter() }).stats().max).toBe(10);
  });
});

describe('M2 min negative / non-integer / min > max', () => {
  it.each<[unknown, string]>([
    [-1, '-1'],
    [1.5, '1.5'],
    [NaN, 'NaN'],
    ['1', '"1"'],
  ])('min: %s throws naming min', (min, shown) => {
    expectConstructionError(loose({ adapter: minimalAdapter(), min }), 'min', `Expected \`min\` to be an integer >= 0, got ${shown}`);
  });

  it('min > max throws naming min and the range [0, max]', () => {
    expectConstructionError({ adapter: minimalAdapter(), max: 2, min: 3 }, 'min', 'Expected `min` to be an integer in [0, max] (max is 2), got 3');
  });

  it('min == max is accepted', () => {
    expect(open({ adapter: minimalAdapter(), max: 2, min: 2 }).stats()).toMatchObject({ max: 2, min: 2 });
  });
});

describe('M3 timeouts <= 0, NaN or non-number (validateTimeoutMs = pingTimeoutMs)', () => {
  const options = ['acquireTimeoutMs', 'createTimeoutMs', 'pingTimeoutMs', 'resetTimeoutMs', 'destroyTimeoutMs'] as const;
  const bad: ReadonlyArray<[unknown, string]> = [
    [0, '0'],
    [-1, '-1'],
    [NaN, 'NaN'],
    ['1000', '"1000"'],
    [null, 'null'],
  ];
  it.each(options.flatMap((option) => bad.map(([value, shown]) => [option, value, shown] as const)))('%s: %s throws naming the option', (option, value, shown) => {
    expectConstructionError(
      loose({ adapter: minimalAdapter(), [option]: value }),
      option,
      `Expected \`${option}\` to be a number of milliseconds > 0 (or Infinity for never), got ${shown}`,
    );
  });

  it('there is no implicit "0 = wait forever": acquireTimeoutMs: 0 is rejected, Infinity must be explicit', () => {
    expectConstructionError({ adapter: minimalAdapter(), acquireTimeoutMs: 0 }, 'acquireTimeoutMs');
    expect(() => open({ adapter: minimalAdapter(), acquireTimeoutMs: Infinity, createTimeoutMs: Infinity, destroyTimeoutMs: Infinity })).not.toThrow();
  });
});

describe('M4 pingTimeoutMs >= acquireTimeoutMs (validateTimeoutMs vs the acquire deadline)', () => {
  it.each<[number, number]>([
    [100, 100],
    [100, 150],
  ])('acquireTimeoutMs: %s with pingTimeoutMs: %s throws naming pingTimeoutMs', (acquireTimeoutMs, pingTimeoutMs) => {
    expectConstructionError(
      { adapter: minimalAdapter(), acquireTimeoutMs, pingTimeoutMs },
      'pingTimeoutMs',
      `Expected \`pingTimeoutMs\` to be less than acquireTimeoutMs (${acquireTimeoutMs}), got ${pingTimeoutMs}`,
    );
  });

  // With pingTimeoutMs left at its default (5000) and a shorter deadline, the ping is bounded by
  // the caller's deadline instead (documented: "also bounded by the caller's deadline").
  it('a default pingTimeoutMs above a short acquireTimeoutMs is accepted: the ping is cut at the deadline', async () => {
    const b = build({ acquireTimeoutMs: 100, pingIfIdleMs: 0 });
    await idleResources(b, 1, 1);
    b.fake.script.ping.push({ kind: 'never' });
    b.fake.defaults.create = { kind: 'slow', ms: 50 }; // no replacement can arrive before the deadline
    const acquiring = track(b.pool.acquire(), b.clock);
    await b.clock.advance(99);
    expect(acquiring.done).toBe(false);
    expect(b.pool.stats().checking).toBe(1);
    await b.clock.advance(1);
    expect(acquiring.error).toBeInstanceOf(AcquireTimeoutError);
    expect(acquiring.at).toBe(101); // the deadline, not pingTimeoutMs (5000)
    expect(b.pool.stats()).toMatchObject({ checking: 0, destroyedByReason: { pingFailed: 1 } });
  });
});

// FAULTS asks for "warning + documented fallback". DESIGN.md forbids the fallback ("no hidden
// floors: a few milliseconds is honoured", "nothing is clamped silently"), and in this design
// each of these combinations has a well-defined meaning, so they are honoured literally.
// No warning is emitted for them (see the report).
describe('M5 odd combinations (idleTimeoutMs >= maxLifetimeMs, leakDetectionMs < 2000 or > maxLifetimeMs, tiny maxLifetimeMs) are honoured as given', () => {
  it('idleTimeoutMs >= maxLifetimeMs: accepted; the lifetime retires the resource first', async () => {
    const b = build({ idleTimeoutMs: 1000, maxLifetimeMs: 500, pingIfIdleMs: Infinity });
    const [resource] = await idleResources(b, 1, 0);
    await b.clock.advance(500); // jittered up to 10 % earlier, never later
    expect(resource!.destroyed).toBe(true);
    expect(b.pool.stats().destroyedByReason).toMatchObject({ lifetime: 1, idle: 0 });
  });

  it('a tiny maxLifetimeMs (5 ms) is honoured, not raised to a floor', async () => {
    const b = build({ maxLifetimeMs: 5, pingIfIdleMs: Infinity });
    const [resource] = await idleResources(b, 1, 0);
    await b.clock.advance(5);
    expect(resource!.destroyed).toBe(true);
    expect(b.pool.stats().destroyedByReason.lifetime).toBe(1);
  });

  it('leakDetectionMs below 2000 (5 ms) is honoured: the leak is reported at 5 ms', async () => {
    const b = build({ leakDetectionMs: 5 });
    const lease = await acquireNow(b);
    await b.clock.advance(4);
    expect(b.errors.filter((e) => e instanceof LeakDetectedError)).toHaveLength(0);
    await b.clock.advance(1);
    expect(b.errors.filter((e) => e instanceof LeakDetectedError)).toHaveLength(1);
    await lease.release();
  });

  it('leakDetectionMs > maxLifetimeMs still reports: a leased resource is never retired by its lifetime', async () => {
    const b = build({ leakDetectionMs: 2000, maxLifetimeMs: 1000 });
    const lease = await acquireNow(b);
    await b.clock.advance(2000);
    expect(b.errors.filter((e) => e instanceof LeakDetectedError)).toHaveLength(1);
    expect(lease.resource.destroyed).toBe(false);
    await lease.release(); // expired on return: destroyed now
    await flush();
    expect(b.pool.stats().destroyedByReason.lifetime).toBe(1);
  });
});

describe('M6 unknown option key (typo)', () => {
  it('acquireTimeoutMillis throws naming the key, with a hint', () => {
    expectConstructionError(
      loose({ adapter: minimalAdapter(), acquireTimeoutMillis: 1000 }),
      'acquireTimeoutMillis',
      /^Unknown option `acquireTimeoutMillis` \(did you mean `acquireTimeoutMs`\?\)/,
    );
  });

  it('nested keys too (retry.minTimeout)', () => {
    expectConstructionError(loose({ adapter: minimalAdapter(), retry: { minTimeout: 10 } }), 'retry.minTimeout', /did you mean `retry\.minTimeoutMs`/);
  });

  it('createPostgresPool rejects an unknown key the same way (no connection attempted)', () => {
    const error = thrown(() => createPostgresPool({ host: 'db.invalid', acquireTimeoutMillis: 1000 } as unknown as PostgresPoolConfig));
    expectInvalid(error, 'acquireTimeoutMillis', /^Unknown option `acquireTimeoutMillis`/);
  });

  it('per-call acquire and close options: a rejected promise naming the key', async () => {
    const b = build();
    expectInvalid(await errorOf(b.pool.acquire({ timeout: 5 } as unknown as { timeoutMs: number })), 'acquire options.timeout', /did you mean `acquire options\.timeoutMs`/);
    expectInvalid(await errorOf(b.pool.close({ timeout: 5 } as unknown as { timeoutMs: number })), 'close options');
    expect(b.pool.closed).toBe(false);
  });
});

describe('M7 adapter.create / adapter.destroy not a function (factory = adapter.create)', () => {
  it.each<[string, Record<string, unknown>, string, string]>([
    ['create missing', { destroy: async () => {} }, 'adapter.create', 'undefined'],
    ['create a string', { create: 'connect', destroy: async () => {} }, 'adapter.create', '"connect"'],
    ['destroy missing', { create: async () => ({}) }, 'adapter.destroy', 'undefined'],
    ['destroy a number', { create: async () => ({}), destroy: 42 }, 'adapter.destroy', '42'],
    ['optional ping not a function', { ...minimalAdapter(), ping: true }, 'adapter.ping', 'true'],
  ])('%s throws at construction naming %s', (_label, adapter, option, shown) => {
    expectConstructionError({ adapter }, option, `Expected \`${option}\` to be a function, got ${shown}`);
  });

  it('no adapter at all throws naming adapter', () => {
    expectConstructionError({ max: 2 }, 'adapter');
  });
});

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

// ---------------------------------------------------------------- M14–M18: leases

// Documented choice (README "Leases"): double release is an idempotent no-op, so `await using`
// after an explicit release() is safe.
describe('M14 double release (documented: a no-op)', () => {
  it('a second release resolves and never puts the resource in the idle list twice', async () => {
    const b = build({ max: 2 });
    const lease = await acquireNow(b);
    await lease.release();
    await expect(lease.release()).resolves.toBeUndefined();
    await expect(lease[Symbol.asyncDispose]()).resolves.toBeUndefined();
    expect(b.pool.stats()).toMatchObject({ size: 1, idle: 1, leased: 0 });

    const x = await acquireNow(b);
    const y = await acquireNow(b);
    expect(x.resource).not.toBe(y.resource); // two borrowers never share one resource
    await x.release();
    await y.release();
  });

  it("a stale lease's release does not release the resource from its new borrower", async () => {
    const b = build({ max: 1 });
    const first = await acquireNow(b);
    await first.release();
    const second = await acquireNow(b);
    const resource = second.resource;
    await first.release(); // stale
    expect(b.pool.stats()).toMatchObject({ leased: 1, idle: 0 });
    expect(second.resource).toBe(resource);
    const third = track(b.pool.acquire({ timeoutMs: 10 }), b.clock);
    await b.clock.advance(10);
    expect(third.error).toBeInstanceOf(AcquireTimeoutError); // the resource was not handed out again
    await second.release();
  });
});

// n/a: there is no pool.release(resource). A resource is only ever given back through the
// Lease object the pool created for it, so a foreign or never-acquired resource cannot be
// handed to a pool at all, and a lease only ever returns to the pool that issued it.
describe('M15 (n/a: no pool.release(resource), leases are objects bound to their pool) foreign release', () => {
  it('pools have no API taking a resource back; a lease from pool A only affects pool A', async () => {
    const a = build({ max: 1 });
    const poolB = build({ max: 1 }).pool;
    for (const name of ['release', 'destroy', 'put', 'return']) expect(name in poolB).toBe(false);

    const lease = await acquireNow(a);
    const before = poolB.stats();
    await lease.release();
    expect(a.pool.stats()).toMatchObject({ idle: 1, leased: 0 });
    expect(poolB.stats()).toEqual(before);
  });

  it('a lease cannot be forged: calling lease methods on a look-alike object throws, and no pool changes', async () => {
    const a = build({ max: 1 });
    const real = await acquireNow(a);
    const forged = Object.create(Object.getPrototypeOf(real) as object) as Lease<FakeResource>;
    const before = a.pool.stats();
    expect(() => forged.release()).toThrow(TypeError);
    expect(() => forged.destroy()).toThrow(TypeError);
    expect(() => forged.resource).toThrow(TypeError);
    expect(a.pool.stats()).toEqual(before);
    await real.release();
  });
});

// Adapted: `resource` (the only way to use the lease) throws LeaseReleasedError and destroy()
// rejects with it; release() and [Symbol.asyncDispose]() stay no-ops (M14's documented choice).
describe('M16 use after release', () => {
  it.each(['release', 'destroy'] as const)('after %s: lease.resource throws LeaseReleasedError (POOL_LEASE_RELEASED)', async (how) => {
    const b = build();
    const lease = await acquireNow(b);
    await lease[how]();
    expect(() => lease.resource).toThrow(LeaseReleasedError);
    expect(() => lease.resource).toThrow(expect.objectContaining({ code: 'POOL_LEASE_RELEASED' }));
  });

  it('after release: destroy() rejects with LeaseReleasedError; release() and asyncDispose resolve as no-ops', async () => {
    const b = build();
    const lease = await acquireNow(b);
    await lease.release();
    await expect(lease.destroy()).rejects.toBeInstanceOf(LeaseReleasedError);
    await expect(lease.release()).resolves.toBeUndefined();
    await expect(lease[Symbol.asyncDispose]()).resolves.toBeUndefined();
    expect(b.pool.stats()).toMatchObject({ idle: 1, destroyed: 0 });
  });
});

describe('M17 release() then destroy() (and the reverse) on one lease', () => {
  it('destroy() after release() rejects with LeaseReleasedError and leaves the resource (now serving someone else) alone', async () => {
    const b = build({ max: 1 });
    const first = await acquireNow(b);
    await first.release();
    const second = await acquireNow(b);
    const resource = second.resource;
    await expect(first.destroy()).rejects.toBeInstanceOf(LeaseReleasedError);
    expect(resource.destroyed).toBe(false);
    expect(b.pool.stats()).toMatchObject({ leased: 1, destroyed: 0 });
    await second.release();
  });

  // Documented alternative (Lease.release JSDoc): release() after destroy() is a no-op, so
  // `await using` after an explicit destroy() is safe; the resource is destroyed once.
  it('release() after destroy() is a documented no-op; the resource is destroyed exactly once', async () => {
    const b = build({ max: 1 });
    const lease = await acquireNow(b);
    await lease.destroy();
    await expect(lease.release()).resolves.toBeUndefined();
    await expect(lease.destroy()).resolves.toBeUndefined();
    await flush();
    expect(b.fake.destroyed).toBe(1);
    expect(b.pool.stats()).toMatchObject({ size: 0, destroyed: 1 });
  });
});

// Adapted: the API for "release(err)" / "release({ destroy: true })" is lease.destroy(reason).
describe('M18 evict on release (release(err) = lease.destroy(reason))', () => {
  it('destroys the resource and frees the slot; no replacement is created when nobody waits', async () => {
    const b = build({ max: 2 });
    const lease = await acquireNow(b);
    const resource = lease.resource;
    await lease.destroy(new Error('bad state'));
    await b.clock.advance(1000);
    expect(resource.destroyed).toBe(true);
    expect(b.fake.createAttempts).toBe(1);
    expect(b.pool.stats()).toMatchObject({ size: 0, creating: 0, destroyedByReason: { user: 1 } });
  });

  it("release(err) and release(true), node-postgres' convention, destroy instead of returning", async () => {
    const b = build({ max: 2 });
    const first = await acquireNow(b);
    const second = await acquireNow(b);
    const [r1, r2] = [first.resource, second.resource];
    await first.release(new Error('bad state'));
    await second.release(true);
    await b.clock.advance(0);
    expect(r1.destroyed && r2.destroyed).toBe(true);
    expect(b.pool.stats()).toMatchObject({ size: 0, destroyed: 2, destroyedByReason: { user: 2 } });
    // The lease is spent either way: a later plain release does nothing.
    await first.release();
    expect(b.pool.stats().destroyed).toBe(2);
  });

  it('a replacement is created when a caller waits for the slot', async () => {
    const b = build({ max: 1 });
    const lease = await acquireNow(b);
    const old = lease.resource;
    const waiter = track(b.pool.acquire(), b.clock);
    await b.clock.advance(0);
    expect(b.fake.createAttempts).toBe(1);
    await lease.destroy(new Error('bad state'));
    await b.clock.advance(0);
    expect(b.fake.createAttempts).toBe(2);
    expect(waiter.ok).toBe(true);
    expect(waiter.value!.resource).not.toBe(old);
    expect(old.destroyed).toBe(true);
    await waiter.value!.release();
  });

  it('a reason the adapter calls fatal is counted as broken, any other as user', async () => {
    const b = build({ max: 2 });
    await (await acquireNow(b)).destroy(codedError('connection lost', 'CONNECTION_LOST'));
    await (await acquireNow(b)).destroy(new Error('not fatal'));
    expect(b.pool.stats().destroyedByReason).toMatchObject({ broken: 1, user: 1 });
  });
});

// ---------------------------------------------------------------- M19–M21: close

describe('M19 acquire() after close()', () => {
  it('rejects with PoolClosedError (a rejected promise, never a synchronous throw); withConnection and warmup too', async () => {
    const b = build();
    await b.pool.close();
    for (const call of [() => b.pool.acquire(), () => b.pool.acquire({ timeoutMs: 10 }), () => b.pool.withConnection(() => 1), () => b.pool.warmup()]) {
      let result: Promise<unknown> | undefined;
      expect(() => {
        result = call();
      }).not.toThrow();
      const error = await errorOf(result!);
      expect(error).toBeInstanceOf(PoolClosedError);
      expect((error as PoolClosedError).code).toBe('POOL_CLOSED');
    }
    expect(b.fake.createAttempts).toBe(0);
  });
});

describe('M20 close() twice / concurrently', () => {
  it('is idempotent: every call (and asyncDispose) returns the same promise', async () => {
    const b = build();
    const lease = await acquireNow(b);
    const first = b.pool.close({ timeoutMs: 1000 });
    const second = b.pool.close();
    expect(second).toBe(first);
    expect(b.pool[Symbol.asyncDispose]()).toBe(first);
    const settled = track(first, b.clock);
    await lease.release();
    await b.clock.advance(0);
    expect(settled.ok).toBe(true);
    expect(b.pool.close()).toBe(first);
  });
});

describe('M21 close() with pending acquires and borrowed leases', () => {
  it('pending acquires reject with PoolClosedError; a lease released in time is destroyed on release; close resolves then', async () => {
    const b = build({ max: 2 });
    const a = await acquireNow(b);
    const c = await acquireNow(b);
    const pending = track(b.pool.acquire(), b.clock);
    await b.clock.advance(0);
    const closing = track(b.pool.close({ timeoutMs: 1000 }), b.clock);
    await b.clock.advance(0);
    expect(pending.error).toBeInstanceOf(PoolClosedError);

    const ra = a.resource;
    await a.release();
    expect(ra.destroyed).toBe(true);
    expect(b.pool.stats()).toMatchObject({ idle: 0, leased: 1, destroyedByReason: { closed: 1 } });
    expect(closing.done).toBe(false);
    await b.clock.advance(10);
    await c.release();
    await b.clock.advance(0);
    expect(closing.ok).toBe(true);
    expect(closing.at).toBe(10);
    expect(b.fake.live.size).toBe(0);
  });

  it('after timeoutMs, leases still out are destroyed; a late release()/destroy() does not throw', async () => {
    const b = build({ max: 1 });
    const lease = await acquireNow(b);
    const resource = lease.resource;
    const closing = track(b.pool.close({ timeoutMs: 1000 }), b.clock);
    await b.clock.advance(999);
    expect(closing.done).toBe(false);
    await b.clock.advance(1);
    expect(closing.ok).toBe(true);
    expect(resource.destroyed).toBe(true);
    expect(b.pool.stats()).toMatchObject({ size: 0, destroyedByReason: { closed: 1 } });
    await expect(lease.release()).resolves.toBeUndefined();
    await expect(lease.destroy()).resolves.toBeUndefined();
  });

  // FAULTS M21: "close() resolves ... after the timeout *with a report*". Destroying a resource
  // under a caller that still holds it must not be silent: one report through onError.
  it('after timeoutMs, destroying leases still held is reported through onError', async () => {
    const b = build({ max: 2 });
    const held = [await acquireNow(b), await acquireNow(b)];
    const closing = track(b.pool.close({ timeoutMs: 1000 }), b.clock);
    await b.clock.advance(1000);
    expect(closing.ok).toBe(true);
    const reports = b.errors.filter((e) => e instanceof PoolError && e.code === 'POOL_CLOSED');
    expect(reports).toHaveLength(1);
    expect((reports[0] as Error).message).toContain('1000 ms');
    expect((reports[0] as Error).message).toMatch(/\b2 leases?\b/);
    for (const lease of held) await expect(lease.release()).resolves.toBeUndefined(); // late: a quiet no-op
  });
});

// ---------------------------------------------------------------- M22–M26: acquire and withConnection

describe('M22 acquire({ signal }) with an already-aborted signal', () => {
  it('rejects (asynchronously) with signal.reason, consuming no slot and no idle resource', async () => {
    const b = build({ max: 1 });
    const reason = new Error('caller gone');
    let result: Promise<unknown> | undefined;
    expect(() => {
      result = b.pool.acquire({ signal: AbortSignal.abort(reason) });
    }).not.toThrow();
    expect(await errorOf(result!)).toBe(reason);
    await b.clock.advance(0);
    expect(b.fake.createAttempts).toBe(0);
    expect(b.pool.stats()).toMatchObject({ size: 0, creating: 0, waiting: 0, acquired: 0, aborted: 1 });

    await idleResources(b, 1, 0);
    expect(await errorOf(b.pool.acquire({ signal: AbortSignal.abort(reason) }))).toBe(reason);
    expect(b.pool.stats()).toMatchObject({ idle: 1, leased: 0 });
  });
});

describe('M23 abort while waiting / while creating / after resolve', () => {
  it('while waiting: the waiter leaves the queue at once and rejects with the reason', async () => {
    const b = build({ max: 1 });
    const held = await acquireNow(b);
    const controller = new AbortController();
    const waiting = track(b.pool.acquire({ signal: controller.signal }), b.clock);
    await b.clock.advance(5);
    expect(b.pool.stats().waiting).toBe(1);
    controller.abort(new Error('cancelled'));
    await flush();
    expect((waiting.error as Error).message).toBe('cancelled');
    expect(waiting.at).toBe(5);
    expect(b.pool.stats()).toMatchObject({ waiting: 0, aborted: 1 });
    await held.release();
    expect(b.pool.stats()).toMatchObject({ idle: 1, leased: 0 });
  });

  it('while its create runs: the acquire rejects at once, the create goes on into the pool', async () => {
    const b = build({ max: 1 });
    b.fake.script.create.push({ kind: 'slow', ms: 100 });
    const controller = new AbortController();
    const acquiring = track(b.pool.acquire({ signal: controller.signal }), b.clock);
    await b.clock.advance(30);
    controller.abort(new Error('cancelled'));
    await flush();
    expect(acquiring.state).toBe('rejected');
    expect(b.fake.createSignals[0]!.aborted).toBe(false);
    await b.clock.advance(70);
    expect(b.pool.stats()).toMatchObject({ size: 1, idle: 1, creating: 0 });
  });

  it('after resolve: a no-op, the lease stays valid', async () => {
    const b = build({ max: 1 });
    const controller = new AbortController();
    const acquiring = track(b.pool.acquire({ signal: controller.signal }), b.clock);
    await b.clock.advance(0);
    const lease = acquiring.value!;
    controller.abort(new Error('too late'));
    await flush();
    expect(lease.resource.destroyed).toBe(false);
    expect(b.pool.stats()).toMatchObject({ leased: 1, aborted: 0 });
    await lease.release();
    expect(b.pool.stats()).toMatchObject({ idle: 1 });
  });
});

describe('M24 per-call timeoutMs negative / NaN', () => {
  it.each<[unknown, string]>([
    [-1, '-1'],
    [NaN, 'NaN'],
    [0, '0'],
    ['5', '"5"'],
  ])('acquire({ timeoutMs: %s }) rejects with InvalidPoolOptionError naming timeoutMs; nothing consumed', async (timeoutMs, shown) => {
    const b = build({ max: 1 });
    let result: Promise<unknown> | undefined;
    expect(() => {
      result = b.pool.acquire({ timeoutMs } as { timeoutMs: number });
    }).not.toThrow();
    expectInvalid(await errorOf(result!), 'timeoutMs', `Expected \`timeoutMs\` to be a number of milliseconds > 0 (or Infinity for never), got ${shown}`);
    await b.clock.advance(0);
    expect(b.fake.createAttempts).toBe(0);
    expect(b.pool.stats()).toMatchObject({ waiting: 0, creating: 0, acquired: 0 });
  });
});

// The optional dev-mode AsyncLocalStorage detection is not implemented; the deadline is the guarantee.
describe('M25 nested acquire deadlock (hold 1 of max=1, acquire again)', () => {
  it('the inner acquire fails with AcquireTimeoutError (saturated) exactly at its deadline, never hangs', async () => {
    const b = build({ max: 1, acquireTimeoutMs: 1000 });
    const outer = await acquireNow(b);
    const inner = track(b.pool.acquire(), b.clock);
    await b.clock.advance(999);
    expect(inner.done).toBe(false);
    await b.clock.advance(1);
    const error = inner.error as AcquireTimeoutError;
    expect(error).toBeInstanceOf(AcquireTimeoutError);
    expect(inner.at).toBe(1000);
    expect(error.reason).toBe('saturated');
    expect(error.stats).toMatchObject({ max: 1, size: 1, leased: 1, waiting: 1 });
    await outer.release();
  });

  it('nested withConnection: the outer call rejects with the inner AcquireTimeoutError and its lease is released', async () => {
    const b = build({ max: 1, acquireTimeoutMs: 500 });
    const nested = track(
      b.pool.withConnection(() => b.pool.withConnection(() => 'unreachable')),
      b.clock,
    );
    await b.clock.advance(500);
    expect(nested.error).toBeInstanceOf(AcquireTimeoutError);
    expect(nested.at).toBe(500);
    expect(b.pool.stats()).toMatchObject({ leased: 0, idle: 1, waiting: 0 });
  });
});

describe('M26 withConnection(fn) where fn throws synchronously / rejects / returns a non-promise', () => {
  const error = Object.assign(new Error('duplicate key'), { code: '23505' });
  it.each([
    ['throws synchronously', (): never => {
      throw error;
    }],
    ['rejects', (): Promise<never> => Promise.reject(error)],
  ])('fn %s: the original error is rethrown unchanged and the lease released', async (_label, fn) => {
    const b = build({ max: 1 });
    expect(await errorOf(b.pool.withConnection(fn))).toBe(error);
    expect(error.code).toBe('23505');
    expect(b.pool.stats()).toMatchObject({ leased: 0, idle: 1, destroyed: 0 });
  });

  it('fn returns a non-promise: its value is returned and the lease released', async () => {
    const b = build({ max: 1 });
    await expect(b.pool.withConnection((resource) => resource.id)).resolves.toBe(1);
    expect(b.pool.stats()).toMatchObject({ leased: 0, idle: 1 });
  });

  it('fn throws a connection-fatal error: rethrown unchanged, the resource destroyed instead of released', async () => {
    const b = build({ max: 1 });
    const lost = codedError('connection lost', 'CONNECTION_LOST');
    let used: FakeResource | undefined;
    const result = b.pool.withConnection((resource) => {
      used = resource;
      throw lost;
    });
    expect(await errorOf(result)).toBe(lost);
    await flush();
    expect(used!.destroyed).toBe(true);
    expect(b.pool.stats()).toMatchObject({ size: 0, leased: 0, destroyedByReason: { broken: 1 } });
  });
});

// ---------------------------------------------------------------- M27–M28: PostgreSQL

/**
 * Just enough of a PostgreSQL server, behind pg's `stream` option, to check the adapter's
 * release policy without a database: trust auth, simple queries, transaction status.
 * BEGIN -> 'T', COMMIT/ROLLBACK -> 'I', any query containing FAIL -> an error ('E' inside a
 * transaction); anything else completes.
 */
class FakePgStream extends Duplex {
  static readonly all: FakePgStream[] = [];
  readonly queries: string[] = [];
  status: 'I' | 'T' | 'E' = 'I';
  #buffer = Buffer.alloc(0);
  #started = false;

  constructor() {
    super();
    FakePgStream.all.push(this);
  }

  connect(): this {
    setImmediate(() => this.emit('connect'));
    return this;
  }
  setNoDelay(): this {
    return this;
  }
  setKeepAlive(): this {
    return this;
  }
  ref(): this {
    return this;
  }
  unref(): this {
    return this;
  }

  override _read(): void {}

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.#buffer = Buffer.concat([this.#buffer, chunk]);
    for (;;) {
      if (!this.#started) {
        if (this.#buffer.length < 4 || this.#buffer.length < this.#buffer.readInt32BE(0)) break;
        this.#buffer = this.#buffer.subarray(this.#buffer.readInt32BE(0));
        this.#started = true;
        this.#send('R', int32(0));
        this.#ready();
        continue;
      }
      if (this.#buffer.length < 5 || this.#buffer.length < 1 + this.#buffer.readInt32BE(1)) break;
      const type = String.fromCharCode(this.#buffer[0]!);
      const body = this.#buffer.subarray(5, 1 + this.#buffer.readInt32BE(1));
      this.#buffer = this.#buffer.subarray(1 + this.#buffer.readInt32BE(1));
      if (type === 'X') {
        this.push(null);
      } else if (type === 'Q') {
        this.#query(body.subarray(0, body.length - 1).toString('utf8'));
      }
    }
    callback();
  }

  #query(sql: string): void {
    this.queries.push(sql);
    if (/FAIL/.test(sql) || this.status === 'E') {
      const aborted = this.status === 'E';
      if (this.status === 'T') this.status = 'E';
      const fields = aborted ? ['SERROR', 'C25P02', 'Mcurrent transaction is aborted'] : ['SERROR', 'C22012', 'Mdivision by zero'];
      if (/^ROLLBACK/i.test(sql)) {
        this.status = 'I';
        this.#send('C', cstring('ROLLBACK'));
      } else {
        this.#send('E', Buffer.concat([...fields.map(cstring), Buffer.from([0])]));
      }
    } else if (/^BEGIN/i.test(sql)) {
      this.status = 'T';
      this.#send('C', cstring('BEGIN'));
    } else if (/^(COMMIT|ROLLBACK)/i.test(sql)) {
      this.status = 'I';
      this.#send('C', cstring(sql.split(' ')[0]!.toUpperCase()));
    } else {
      this.#send('C', cstring('SELECT 0'));
    }
    this.#ready();
  }

  #ready(): void {
    this.#send('Z', Buffer.from(this.status));
  }

  #send(type: string, body: Buffer): void {
    this.push(Buffer.concat([Buffer.from(type), int32(body.length + 4), body]));
  }
}

function int32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeInt32BE(n);
  return b;
}

function cstring(s: string): Buffer {
  return Buffer.concat([Buffer.from(s, 'utf8'), Buffer.from([0])]);
}

/** A Postgres pool whose clients talk to FakePgStreams (no database), closed after the test. */
function fakePgPool(config: PostgresPoolConfig = {}): PostgresPool {
  const pool = createPostgresPool({
    host: 'fake.invalid',
    stream: () => new FakePgStream(),
    keepaliveMs: Infinity,
    pingIfIdleMs: Infinity,
    onError: () => {},
    ...config,
  });
  systemPools.push(pool);
  return pool;
}

/** Wait (real time, a few event-loop turns at a time) until `predicate` holds. */
async function until(predicate: () => boolean, turns = 200): Promise<void> {
  for (let i = 0; i < turns && !predicate(); i++) await flush(1);
  expect(predicate()).toBe(true);
}

describe('M27 release inside a transaction / a failed transaction: never pooled dirty', () => {
  it('core: a resource the adapter reports dirty (isBroken) on release is destroyed, not pooled', async () => {
    const b = build({ max: 1 });
    const lease = await acquireNow(b);
    const resource = lease.resource;
    resource.broken = true; // e.g. "still inside a transaction"
    await lease.release();
    await flush();
    expect(resource.destroyed).toBe(true);
    const next = await acquireNow(b);
    expect(next.resource).not.toBe(resource);
    await next.release();
  });

  it('core: with a reset hook, a failing reset destroys the resource (resetFailed) instead of pooling it', async () => {
    const b = build({ max: 1 }, undefined, { hooks: ['isBroken', 'ping', 'reset'] });
    const lease = await acquireNow(b);
    const resource = lease.resource;
    b.fake.script.reset.push({ kind: 'fail', error: new Error('ROLLBACK failed') });
    await lease.release();
    await flush();
    expect(resource.destroyed).toBe(true);
    expect(b.pool.stats()).toMatchObject({ size: 0, destroyedByReason: { resetFailed: 1 } });
  });

  it.each([
    ['an open transaction', ['BEGIN']],
    ['a failed transaction', ['BEGIN', 'SELECT FAIL']],
  ])('postgres (default dirtyRelease: destroy): a client released in %s is destroyed; the next borrower gets a new one', async (_label, statements) => {
    const pool = fakePgPool({ max: 1 });
    const lease = await pool.acquire();
    const client = lease.resource;
    for (const sql of statements) await client.query(sql).catch(() => undefined);
    expect(['T', 'E']).toContain(FakePgStream.all.at(-1)!.status);
    await lease.release();
    expect(pool.stats()).toMatchObject({ size: 0, destroyedByReason: { broken: 1 } });

    const next = await pool.acquire();
    expect(next.resource).not.toBe(client);
    expect(pool.stats().created).toBe(2);
    await next.release();
  });

  it("postgres (dirtyRelease: 'rollback'): the client is rolled back before it is reused", async () => {
    const pool = fakePgPool({ max: 1, dirtyRelease: 'rollback' });
    const lease = await pool.acquire();
    const client = lease.resource;
    const stream = FakePgStream.all.at(-1)!;
    const before = stream.queries.length; // what the adapter itself ran at connect
    await client.query('BEGIN');
    await lease.release();
    expect(stream.queries.slice(before)).toEqual(['BEGIN', 'ROLLBACK']);
    expect(stream.status).toBe('I');

    const next = await pool.acquire();
    expect(next.resource).toBe(client);
    expect(pool.stats()).toMatchObject({ created: 1, destroyed: 0 });
    await next.release();
  });
});

describe('M28 pool.query(fn) / wrong argument types (postgres adapter)', () => {
  // No database: connections are lazy, so a pool pointed at a host that does not exist is fine
  // as long as nothing connects. Every TypeError must come before any connection attempt.
  let pool: PostgresPool;
  const fresh = (): PostgresPool => {
    pool = createPostgresPool({ host: 'lifeguard-no-such-host.invalid', port: 1, createTimeoutMs: 50, retry: { retries: 0 }, circuitBreaker: false, onError: () => {} });
    systemPools.push(pool);
    return pool;
  };

  it.each<[string, () => Promise<unknown>, RegExp]>([
    ['query(fn)', () => pool.query((() => 'select 1') as unknown as string), /pool\.query\(fn\) is not supported/],
    ['query(42)', () => pool.query(42 as unknown as string), /SQL text/],
    ['query(null)', () => pool.query(null as unknown as string), /SQL text/],
    ['query({})', () => pool.query({} as unknown as string), /SQL text/],
    ["query('select $1', 'x')", () => pool.query('select $1', 'x' as unknown as unknown[]), /params to be an array/],
    ['withTransaction(sql)', () => pool.withTransaction('begin' as unknown as () => void), /expects a function/],
  ])('%s rejects with a TypeError before any connection is attempted', async (_label, call, message) => {
    fresh();
    let result: Promise<unknown> | undefined;
    expect(() => {
      result = call();
    }).not.toThrow();
    const error = await errorOf(result!);
    expect(error).toBeInstanceOf(TypeError);
    expect((error as TypeError).message).toMatch(message);
    await flush();
    expect(pool.stats()).toMatchObject({ created: 0, createFailed: 0, creating: 0, acquired: 0, waiting: 0 });
  });

  // DESIGN's error style, which withTransaction already follows for `isolation` and `retry.retries`:
  // a malformed option is named, with the expectation and the value, before anything connects.
  it.each<[string, Record<string, unknown>, string, string]>([
    ['isolation: snapshot', { isolation: 'snapshot' }, 'isolation', '"snapshot"'],
    ['retry: -1', { retry: { retries: -1 } }, 'retry.retries', '-1'],
    ["retry: 'yes'", { retry: 'yes' }, 'retry', '"yes"'],
    ['retry: null', { retry: null }, 'retry', 'null'],
  ])('withTransaction(fn, { %s }) rejects with InvalidPoolOptionError naming the option, before any connection', async (_label, options, option, shown) => {
    fresh();
    const error = await errorOf(pool.withTransaction(() => undefined, options as never));
    expectInvalid(error, option);
    expect((error as Error).message).toContain(`got ${shown}`);
    expect(pool.stats()).toMatchObject({ created: 0, createFailed: 0, creating: 0, acquired: 0 });
  });

  it('a bad connection string throws at construction without echoing it (it may hold a password)', () => {
    const error = thrown(() => createPostgresPool({ connectionString: 'mysql://user:hunter2@db/app' }));
    expectInvalid(error, 'connectionString');
    expect((error as Error).message).not.toContain('hunter2');
  });
});

// ---------------------------------------------------------------- M29–M32: errors, hooks, retry, threads

describe('M29 no user error listener attached', () => {
  it('the pool and its leases are not event emitters: there is no \'error\' event to go unhandled', async () => {
    const b = build();
    const lease = await acquireNow(b);
    for (const target of [b.pool, lease]) {
      expect(target).not.toBeInstanceOf(EventEmitter);
      expect('on' in target).toBe(false);
      expect('emit' in target).toBe(false);
    }
    await lease.release();
  });

  it('without onError, background errors go to process.emitWarning (type LifeguardWarning), never thrown', async () => {
    const warn = vi.spyOn(process, 'emitWarning').mockImplementation((() => {}) as typeof process.emitWarning);
    const clock = new VirtualClock();
    const fake = new FakeAdapter(clock);
    const pool = createPool<FakeResource>({ adapter: fake.adapter(), clock, max: 1, keepaliveMs: Infinity });
    try {
      const boom = new Error('destroy failed');
      fake.script.destroy.push({ kind: 'fail', error: boom });
      const lease = track(pool.acquire(), clock);
      await clock.advance(0);
      await lease.value!.destroy();
      await flush();
      expect(warn).toHaveBeenCalledTimes(1);
      expect(warn).toHaveBeenCalledWith(boom, { type: 'LifeguardWarning' });
    } finally {
      await closeOnClock(clock, [pool]);
    }
  });

  it("postgres: a connection error on an idle client (the driver emits 'error') does not crash; the client is replaced", async () => {
    const pool = fakePgPool({ max: 1 });
    const lease = await pool.acquire();
    const client = lease.resource;
    await lease.release();
    const stream = FakePgStream.all.at(-1)!;
    stream.destroy(codedError('read ECONNRESET', 'ECONNRESET'));
    await until(() => stream.closed);
    await flush();
    const next = await pool.acquire();
    expect(next.resource).not.toBe(client);
    expect(pool.stats().destroyedByReason.broken).toBe(1);
    await next.release();
  });
});

// There are no acquire/release event hooks; the user callbacks the pool calls are onError and the
// adapter's predicate hooks. A throw from any of them is caught; the pool carries on.
describe('M30 a user handler throws (onError, adapter hooks)', () => {
  it('a throwing onError is ignored: the pool state is unaffected and keeps working', async () => {
    let calls = 0;
    const b = build({
      max: 1,
      onError: () => {
        calls++;
        throw new Error('onError exploded');
      },
    });
    b.fake.script.destroy.push({ kind: 'fail' });
    const first = await acquireNow(b);
    await first.destroy();
    await flush();
    expect(calls).toBe(1);
    const second = await acquireNow(b);
    const resource = second.resource;
    await second.release();
    const third = await acquireNow(b);
    expect(third.resource).toBe(resource);
    await third.release();
    expect(b.pool.stats()).toMatchObject({ size: 1, idle: 1, acquired: 3, destroyed: 1 });
  });

  it('a throwing isBroken means broken (the resource is destroyed) and the throw is reported', async () => {
    const hookError = new Error('isBroken exploded');
    const b = build({ max: 1 }, (adapter) => {
      adapter.isBroken = () => {
        throw hookError;
      };
    });
    const lease = await acquireNow(b);
    const resource = lease.resource;
    await lease.release();
    await flush();
    expect(resource.destroyed).toBe(true);
    expect(b.errors).toContain(hookError);
    expect(b.pool.stats().destroyedByReason.broken).toBe(1);
  });

  it('a throwing isFatal means not fatal (released, not destroyed); withConnection still rethrows the original error', async () => {
    const b = build({ max: 1 }, (adapter) => {
      adapter.isFatal = () => {
        throw new Error('isFatal exploded');
      };
    });
    const original = new Error('query failed');
    expect(await errorOf(b.pool.withConnection(() => Promise.reject(original)))).toBe(original);
    expect(b.pool.stats()).toMatchObject({ idle: 1, destroyed: 0 });
    expect(b.errors.map((e) => (e as Error).message)).toEqual(['isFatal exploded']);
  });

  it('a throwing isRetryable means retryable: the create is retried', async () => {
    const b = build({ max: 1, retry: { randomize: false, minTimeoutMs: 10 } }, (adapter) => {
      adapter.isRetryable = () => {
        throw new Error('isRetryable exploded');
      };
    });
    b.fake.failCreates(1);
    const acquiring = track(b.pool.acquire(), b.clock);
    await b.clock.advance(10);
    expect(acquiring.ok).toBe(true);
    expect(b.fake.createAttempts).toBe(2);
    await acquiring.value!.release();
  });
});

describe('M31 invalid retry options (retries: -1, factor: 0, maxRetryTime)', () => {
  it.each<[Record<string, unknown>, string]>([
    [{ retries: -1 }, 'retry.retries'],
    [{ factor: 0 }, 'retry.factor'],
    [{ minTimeoutMs: -1 }, 'retry.minTimeoutMs'],
    [{ maxRetryTime: -1 }, 'retry.maxRetryTime'], // p-retry's name is not an option here: unknown key
  ])('retry: %o throws at construction (not on the first failed create)', (retry, option) => {
    const clock = new VirtualClock();
    const fake = new FakeAdapter(clock);
    expectConstructionError({ adapter: fake.adapter(), clock, min: 1, retry }, option);
    expect(fake.createAttempts).toBe(0);
    expect(clock.pendingTimers).toBe(0);
  });
});

// Node has no fork() that copies a live heap (child_process.fork starts a fresh process that
// builds its own pools), and worker threads share no objects: a pool crossing a thread
// boundary is structured-cloned. Nothing (no PoolForkedError) is needed, but the README
// should say so (see the report). What can be checked: a clone is inert and owns nothing.
describe('M32 (n/a in Node: no heap-copying fork) pool shared across fork() / worker threads', () => {
  it('a structured clone of a pool or a lease (what postMessage to a worker makes) is inert: no methods, no resource', async () => {
    const b = build({ max: 1 });
    const lease = await acquireNow(b);
    const poolClone = structuredClone(b.pool) as unknown as Record<string, unknown>;
    const leaseClone = structuredClone(lease) as unknown as Record<string, unknown>;
    expect(typeof poolClone.acquire).toBe('undefined');
    expect(typeof poolClone.close).toBe('undefined');
    expect('resource' in leaseClone).toBe(false);
    expect(typeof leaseClone.release).toBe('undefined');
    expect(b.pool.stats()).toMatchObject({ size: 1, leased: 1 });
    await lease.release();
  });

  it('postMessage of a pool to another thread delivers an inert copy; the original pool is untouched', async () => {
    const b = build({ max: 1 });
    const { port1, port2 } = new MessageChannel();
    try {
      const received = new Promise<unknown>((resolve) => port2.once('message', resolve));
      port1.postMessage(b.pool);
      const copy = (await received) as Record<string, unknown>;
      expect(typeof copy.acquire).toBe('undefined');
      const lease = await acquireNow(b);
      expect(b.fake.created).toBe(1);
      await lease.release();
    } finally {
      port1.close();
      port2.close();
    }
  });
});
