// Misuse of the pool's options: bad max / min / timeouts, odd combinations, unknown keys, a
// malformed adapter (M1–M7) and invalid retry options (M31). Construction errors are
// `InvalidPoolOptionError` naming the option (DESIGN.md wins on names: FAULTS' `validate` is
// `adapter.ping`, `validateTimeoutMs` is `pingTimeoutMs`, `factory` is `adapter.create`).
// Part of the FAULTS.md §5 misuse checklist (M1–M32, one `describe` per case, split by concern
// across test/unit/misuse-*.test.ts; shared set-up in test/support/misuse.ts).
import { afterEach, describe, expect, it } from 'vitest';
import { AcquireTimeoutError, LeakDetectedError } from '../../src/index.js';
import { createPostgresPool, type PostgresPoolConfig } from '../../src/adapters/postgres/index.js';
import { FakeAdapter } from '../support/fake-adapter.js';
import { errorOf, track } from '../support/harness.js';
import { acquireNow, build, closeMisusePools, expectConstructionError, expectInvalid, idleResources, loose, minimalAdapter, open, thrown } from '../support/misuse.js';
import { flush, VirtualClock } from '../support/virtual-clock.js';

afterEach(closeMisusePools);

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

// ---------------------------------------------------------------- M31: retry options

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
