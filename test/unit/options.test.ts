// Option validation (FAULTS.md §5, the misuse cases the core owns: M1–M4, M6, M7, M24, M28, M31).
// Every bad option throws InvalidPoolOptionError at construction (or, per call, rejects the
// acquire), naming the option, the expectation and the value. Nothing is clamped silently.
import { afterEach, describe, expect, it } from 'vitest';
import {
  AcquireTimeoutError,
  createPool,
  InvalidPoolOptionError,
  PoolError,
  PoolQueueFullError,
  type Adapter,
  type Pool,
  type PoolOptions,
} from '../../src/index.js';
import { FakeAdapter } from '../support/fake-adapter.js';
import { setupClosingAfterEach } from '../support/harness.js';
import { VirtualClock } from '../support/virtual-clock.js';

/** The smallest adapter the pool accepts: no optional hooks. */
const minimalAdapter = (): Adapter<object> => ({ create: async () => ({}), destroy: async () => {} });

/** Bypass the type checker: misuse is exactly what these tests feed in. */
const loose = (options: Record<string, unknown>): PoolOptions<object> => options as unknown as PoolOptions<object>;

const opened: Pool<unknown>[] = [];
afterEach(async () => {
  await Promise.all(opened.splice(0).map((pool) => pool.close({ timeoutMs: 0 })));
});

function open<T>(options: PoolOptions<T>): Pool<T> {
  const pool = createPool(options);
  opened.push(pool as Pool<unknown>);
  return pool;
}

/** A pool on a virtual clock and the fake adapter, closed after each test. */
const setup = setupClosingAfterEach();

/** Catch what `fn` throws synchronously, failing when it does not throw. */
function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  throw new Error('expected a synchronous throw, but nothing was thrown');
}

function expectInvalid(error: unknown, option: string, message: string | RegExp): void {
  expect(error).toBeInstanceOf(InvalidPoolOptionError);
  expect(error).toBeInstanceOf(PoolError);
  expect(error).toBeInstanceOf(Error);
  const e = error as InvalidPoolOptionError;
  expect(e.code).toBe('POOL_INVALID_OPTION');
  expect(e.name).toBe('InvalidPoolOptionError');
  expect(e.option).toBe(option);
  if (typeof message === 'string') expect(e.message).toBe(message);
  else expect(e.message).toMatch(message);
}

function expectConstructionError(options: unknown, option: string, message: string | RegExp): void {
  expectInvalid(
    thrown(() => createPool(options as PoolOptions<object>)),
    option,
    message,
  );
}

const DURATIONS = [
  'acquireTimeoutMs',
  'createTimeoutMs',
  'pingTimeoutMs',
  'resetTimeoutMs',
  'destroyTimeoutMs',
  'idleTimeoutMs',
  'maxLifetimeMs',
  'keepaliveMs',
  'leakDetectionMs',
] as const;

const BAD_DURATIONS: ReadonlyArray<[unknown, string]> = [
  [0, '0'],
  [-1, '-1'],
  [-0.5, '-0.5'],
  [-Infinity, '-Infinity'],
  [NaN, 'NaN'],
  ['100', '"100"'],
  [null, 'null'],
  [true, 'true'],
];

describe('options: not an object (construction)', () => {
  it.each<[string, unknown, string]>([
    ['undefined', undefined, 'undefined'],
    ['null', null, 'null'],
    ['a string', 'postgres://localhost', '"postgres://localhost"'],
    ['a number', 42, '42'],
    ['a function', () => ({}), 'a function'],
  ])('createPool(%s) throws naming `options`', (_label, value, shown) => {
    expectConstructionError(value, 'options', `Expected \`options\` to be an object with at least \`adapter\`, got ${shown}`);
  });
});

describe('M1 max', () => {
  it('is optional: the default is 10', () => {
    expect(open({ adapter: minimalAdapter() }).stats().max).toBe(10);
  });

  it.each<[unknown, string]>([
    [0, '0'],
    [-1, '-1'],
    [1.5, '1.5'],
    [NaN, 'NaN'],
    [Infinity, 'Infinity'],
    [-Infinity, '-Infinity'],
    ['10', '"10"'],
    [null, 'null'],
    [10n, '10'],
  ])('max: %s is rejected', (value, shown) => {
    expectConstructionError(loose({ adapter: minimalAdapter(), max: value }), 'max', `Expected \`max\` to be an integer >= 1, got ${shown}`);
  });

  it.each([1, 2, 7, 1000])('max: %s is kept as given', (max) => {
    expect(open({ adapter: minimalAdapter(), max }).stats().max).toBe(max);
  });
});

describe('M2 min', () => {
  it('is optional: the default is 0', () => {
    expect(open({ adapter: minimalAdapter() }).stats().min).toBe(0);
  });

  it.each<[unknown, string]>([
    [-1, '-1'],
    [1.5, '1.5'],
    [NaN, 'NaN'],
    [Infinity, 'Infinity'],
    ['1', '"1"'],
    [null, 'null'],
  ])('min: %s is rejected', (value, shown) => {
    expectConstructionError(loose({ adapter: minimalAdapter(), min: value }), 'min', `Expected \`min\` to be an integer >= 0, got ${shown}`);
  });

  it.each<[number | undefined, number, number]>([
    [2, 3, 2],
    [1, 2, 1],
    [undefined, 11, 10], // default max is 10
  ])('max: %s with min: %s (> max) is rejected', (max, min, effectiveMax) => {
    const options = max === undefined ? { adapter: minimalAdapter(), min } : { adapter: minimalAdapter(), max, min };
    expectConstructionError(options, 'min', `Expected \`min\` to be an integer in [0, max] (max is ${effectiveMax}), got ${min}`);
  });

  it.each<[number, number]>([
    [1, 0],
    [1, 1],
    [3, 3],
    [10, 4],
  ])('max: %s, min: %s is kept as given', (max, min) => {
    const stats = setup({ max, min }).pool.stats();
    expect(stats.max).toBe(max);
    expect(stats.min).toBe(min);
  });
});

describe('M3 durations', () => {
  const cases = DURATIONS.flatMap((option) => BAD_DURATIONS.map(([value, shown]) => [option, value, shown] as const));

  it.each(cases)('%s: %s is rejected', (option, value, shown) => {
    expectConstructionError(
      loose({ adapter: minimalAdapter(), [option]: value }),
      option,
      `Expected \`${option}\` to be a number of milliseconds > 0 (or Infinity for never), got ${shown}`,
    );
  });

  // Documented in DESIGN.md / the option docs: "Infinity waits forever" / "Infinity never" / "Infinity keeps them".
  it.each(['acquireTimeoutMs', 'idleTimeoutMs', 'maxLifetimeMs', 'keepaliveMs', 'leakDetectionMs', 'pingIfIdleMs'] as const)(
    '%s: Infinity is accepted',
    (option) => {
      expect(() => open(loose({ adapter: minimalAdapter(), [option]: Infinity }))).not.toThrow();
    },
  );

  it.each(DURATIONS)('%s: a few milliseconds (1, 0.5) are accepted: no hidden floor', (option) => {
    // pingTimeoutMs must stay below acquireTimeoutMs (M4), which is 30 s by default.
    expect(() => open(loose({ adapter: minimalAdapter(), [option]: 1 }))).not.toThrow();
    expect(() => open(loose({ adapter: minimalAdapter(), [option]: 0.5 }))).not.toThrow();
  });

  describe('pingIfIdleMs', () => {
    it('0 is allowed (ping on every borrow)', () => {
      expect(() => open({ adapter: minimalAdapter(), pingIfIdleMs: 0 })).not.toThrow();
    });

    it.each<[unknown, string]>([
      [-1, '-1'],
      [-0.001, '-0.001'],
      [NaN, 'NaN'],
      ['0', '"0"'],
      [null, 'null'],
    ])('pingIfIdleMs: %s is rejected', (value, shown) => {
      expectConstructionError(
        loose({ adapter: minimalAdapter(), pingIfIdleMs: value }),
        'pingIfIdleMs',
        `Expected \`pingIfIdleMs\` to be a number of milliseconds >= 0 (or Infinity for never), got ${shown}`,
      );
    });

    it('pingIfIdleMs: 0 really pings on every borrow (kept, not raised to a floor)', async () => {
      const { pool, clock, fake } = setup({ pingIfIdleMs: 0 });
      const first = await pool.acquire();
      await first.release();
      await clock.advance(1);
      const second = await pool.acquire();
      expect(fake.pings).toBe(1);
      await second.release();
    });
  });

  it('acquireTimeoutMs: 3 is honoured exactly (no hidden floor)', async () => {
    const { pool, clock } = setup({ max: 1, acquireTimeoutMs: 3 });
    const held = await pool.acquire();
    const waiting = pool.acquire().then(
      () => undefined,
      (error: unknown) => error,
    );
    await clock.advance(2);
    expect(pool.stats().waiting).toBe(1);
    await clock.advance(1);
    const error = await waiting;
    expect(error).toBeInstanceOf(AcquireTimeoutError);
    expect((error as AcquireTimeoutError).timeoutMs).toBe(3);
    await held.release();
  });

  it('createTimeoutMs: 2 is honoured exactly (the create signal aborts at 2 ms)', async () => {
    const { pool, clock, fake } = setup({ createTimeoutMs: 2, retry: { minTimeoutMs: 1000, randomize: false }, onError: () => {} });
    fake.script.create.push({ kind: 'never' });
    const pending = pool.acquire({ timeoutMs: 100 }).catch((error: unknown) => error);
    await clock.advance(1);
    expect(fake.createSignals[0]?.aborted).toBe(false);
    await clock.advance(1);
    expect(fake.createSignals[0]?.aborted).toBe(true);
    expect((fake.createSignals[0]?.reason as PoolError).code).toBe('POOL_CREATE_TIMEOUT');
    await clock.advance(100);
    expect(await pending).toBeInstanceOf(AcquireTimeoutError);
  });
});

describe('M4 pingTimeoutMs must be below acquireTimeoutMs', () => {
  it.each<[number, number]>([
    [100, 100],
    [100, 150],
    [1, 5],
  ])('acquireTimeoutMs: %s, pingTimeoutMs: %s is rejected', (acquireTimeoutMs, pingTimeoutMs) => {
    expectConstructionError(
      { adapter: minimalAdapter(), acquireTimeoutMs, pingTimeoutMs },
      'pingTimeoutMs',
      `Expected \`pingTimeoutMs\` to be less than acquireTimeoutMs (${acquireTimeoutMs}), got ${pingTimeoutMs}`,
    );
  });

  it('also against the default acquireTimeoutMs (30000)', () => {
    expectConstructionError(
      { adapter: minimalAdapter(), pingTimeoutMs: 30_000 },
      'pingTimeoutMs',
      'Expected `pingTimeoutMs` to be less than acquireTimeoutMs (30000), got 30000',
    );
  });

  it('pingTimeoutMs just below acquireTimeoutMs is accepted', () => {
    expect(() => open({ adapter: minimalAdapter(), acquireTimeoutMs: 100, pingTimeoutMs: 99 })).not.toThrow();
  });

  it('a short acquireTimeoutMs alone is accepted (the default ping bound is then the deadline)', () => {
    expect(() => open({ adapter: minimalAdapter(), acquireTimeoutMs: 100 })).not.toThrow();
  });
});

describe('M6 unknown keys', () => {
  it.each<[Record<string, unknown>, string, string | undefined]>([
    [{ acquireTimeoutMillis: 1000 }, 'acquireTimeoutMillis', 'acquireTimeoutMs'],
    [{ idleTimeoutMillis: 1000 }, 'idleTimeoutMillis', 'idleTimeoutMs'],
    [{ createTimeout: 1000 }, 'createTimeout', 'createTimeoutMs'],
    [{ maxLifetime: 1000 }, 'maxLifetime', 'maxLifetimeMs'],
    [{ keepalive: true }, 'keepalive', 'keepaliveMs'],
    [{ circuitbreaker: false }, 'circuitbreaker', 'circuitBreaker'],
    [{ zzz: 1 }, 'zzz', undefined],
  ])('%o is rejected', (extra, key, hint) => {
    const error = thrown(() => createPool(loose({ adapter: minimalAdapter(), ...extra })));
    expectInvalid(error, key, new RegExp(`^Unknown option \`${key}\``));
    const message = (error as Error).message;
    if (hint === undefined) expect(message).not.toMatch(/did you mean/);
    else expect(message).toContain(`(did you mean \`${hint}\`?)`);
    expect(message).toContain('known options: adapter, max, min');
  });

  it('the exact message for the classic typo', () => {
    const error = thrown(() => createPool(loose({ adapter: minimalAdapter(), acquireTimeoutMillis: 1000 })));
    expect((error as Error).message).toMatch(/^Unknown option `acquireTimeoutMillis` \(did you mean `acquireTimeoutMs`\?\); known options: /);
  });

  it.each<[string, Record<string, unknown>, string, string | undefined]>([
    ['retry', { minTimeout: 10 }, 'retry.minTimeout', 'retry.minTimeoutMs'],
    ['retry', { maxTimeoutMillis: 10 }, 'retry.maxTimeoutMillis', 'retry.maxTimeoutMs'],
    ['retry', { forever: true }, 'retry.forever', undefined],
    ['retry', { maxRetryTime: 10 }, 'retry.maxRetryTime', undefined],
    ['circuitBreaker', { failureThresh: 3 }, 'circuitBreaker.failureThresh', 'circuitBreaker.failureThreshold'],
    ['circuitBreaker', { cooldown: 100 }, 'circuitBreaker.cooldown', 'circuitBreaker.cooldownMs'],
    ['circuitBreaker', { enabled: true }, 'circuitBreaker.enabled', undefined],
  ])('inside `%s`: %o is rejected', (parent, inner, key, hint) => {
    const error = thrown(() => createPool(loose({ adapter: minimalAdapter(), [parent]: inner })));
    expectInvalid(error, key, new RegExp(`^Unknown option \`${key.replace('.', '\\.')}\``));
    const message = (error as Error).message;
    if (hint === undefined) expect(message).not.toMatch(/did you mean/);
    else expect(message).toContain(`(did you mean \`${hint}\`?)`);
  });

  it('inside per-call acquire options: rejected with a hint, as a rejected promise', async () => {
    const pool = open({ adapter: minimalAdapter() });
    const result = pool.acquire({ timeout: 5 } as unknown as { timeoutMs: number });
    expect(result).toBeInstanceOf(Promise);
    const error = await result.then(
      () => undefined,
      (e: unknown) => e,
    );
    expectInvalid(error, 'acquire options.timeout', /^Unknown option `acquire options\.timeout` \(did you mean `acquire options\.timeoutMs`\?\)/);
  });
});

describe('M7 adapter', () => {
  it.each<[string, unknown, string]>([
    ['missing', undefined, 'undefined'],
    ['null', null, 'null'],
    ['a string', 'pg', '"pg"'],
    ['a function', () => ({}), 'a function'],
  ])('adapter %s is rejected', (_label, adapter, shown) => {
    const options = adapter === undefined ? { max: 2 } : { adapter };
    expectConstructionError(options, 'adapter', `Expected \`adapter\` to be an object with create() and destroy() functions, got ${shown}`);
  });

  it.each<[string, unknown, string]>([
    ['create', undefined, 'undefined'],
    ['create', 'connect', '"connect"'],
    ['create', {}, 'an object'],
    ['destroy', undefined, 'undefined'],
    ['destroy', 42, '42'],
    ['destroy', null, 'null'],
  ])('adapter.%s = %s is rejected', (hook, value, shown) => {
    const adapter: Record<string, unknown> = { ...minimalAdapter() };
    if (value === undefined) delete adapter[hook];
    else adapter[hook] = value;
    expectConstructionError({ adapter }, `adapter.${hook}`, `Expected \`adapter.${hook}\` to be a function, got ${shown}`);
  });

  it.each<[string, unknown, string]>([
    ['isBroken', true, 'true'],
    ['ping', {}, 'an object'],
    ['reset', 'ROLLBACK', '"ROLLBACK"'],
    ['isRetryable', 1, '1'],
    ['isFatal', null, 'null'],
  ])('optional hook adapter.%s = %s is rejected', (hook, value, shown) => {
    expectConstructionError(
      { adapter: { ...minimalAdapter(), [hook]: value } },
      `adapter.${hook}`,
      `Expected \`adapter.${hook}\` to be a function, got ${shown}`,
    );
  });

  it('every optional hook given as a function is accepted', () => {
    const adapter: Adapter<object> = {
      ...minimalAdapter(),
      isBroken: () => false,
      ping: async () => {},
      reset: async () => {},
      isRetryable: () => true,
      isFatal: () => false,
    };
    expect(() => open({ adapter })).not.toThrow();
  });
});

describe('maxConnecting, maxWaiting', () => {
  it.each<[Record<string, unknown>, string]>([
    [{ maxConnecting: 0 }, 'Expected `maxConnecting` to be an integer >= 1, got 0'],
    [{ maxConnecting: -1 }, 'Expected `maxConnecting` to be an integer >= 1, got -1'],
    [{ maxConnecting: 1.5 }, 'Expected `maxConnecting` to be an integer >= 1, got 1.5'],
    [{ maxConnecting: Infinity }, 'Expected `maxConnecting` to be an integer >= 1, got Infinity'],
    [{ maxConnecting: '2' }, 'Expected `maxConnecting` to be an integer >= 1, got "2"'],
    [{ max: 4, maxConnecting: 5 }, 'Expected `maxConnecting` to be an integer in [1, max] (max is 4), got 5'],
    [{ maxConnecting: 11 }, 'Expected `maxConnecting` to be an integer in [1, max] (max is 10), got 11'],
  ])('%o is rejected', (extra, message) => {
    expectConstructionError(loose({ adapter: minimalAdapter(), ...extra }), 'maxConnecting', message);
  });

  it.each([
    [1, 1],
    [4, 4],
    [4, 1],
  ])('max: %s, maxConnecting: %s is accepted', (max, maxConnecting) => {
    expect(() => open({ adapter: minimalAdapter(), max, maxConnecting })).not.toThrow();
  });

  it('maxConnecting: 1 is kept: only one create at a time', async () => {
    const { pool, clock, fake } = setup({ max: 4, maxConnecting: 1 });
    fake.defaults.create = { kind: 'slow', ms: 10 };
    const leases = [pool.acquire(), pool.acquire(), pool.acquire()];
    await clock.advance(0);
    expect(pool.stats().creating).toBe(1);
    await clock.advance(30);
    for (const lease of await Promise.all(leases)) await lease.release();
    expect(fake.created).toBe(3);
  });

  it.each<[unknown, string]>([
    [-1, '-1'],
    [1.5, '1.5'],
    [NaN, 'NaN'],
    ['5', '"5"'],
    [-Infinity, '-Infinity'],
  ])('maxWaiting: %s is rejected', (value, shown) => {
    expectConstructionError(
      loose({ adapter: minimalAdapter(), maxWaiting: value }),
      'maxWaiting',
      `Expected \`maxWaiting\` to be an integer >= 0 or Infinity, got ${shown}`,
    );
  });

  it('maxWaiting: Infinity is accepted', () => {
    expect(() => open({ adapter: minimalAdapter(), maxWaiting: Infinity })).not.toThrow();
  });

  it('maxWaiting: 0 is kept: with the pool saturated, an acquire fails at once with PoolQueueFullError', async () => {
    const { pool } = setup({ max: 1, min: 1, maxWaiting: 0 });
    await pool.warmup();
    const held = await pool.acquire(); // served from idle: never queued
    const error = await pool.acquire().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(PoolQueueFullError);
    expect((error as PoolQueueFullError).maxWaiting).toBe(0);
    expect(pool.stats().rejected.queueFull).toBe(1);
    await held.release();
  });

  // maxWaiting bounds callers queued behind a saturated pool. An acquire the pool can serve
  // by creating a resource (size + creating < max) is not "queued behind" anyone; with
  // maxWaiting: 0 and min: 0 the pool would otherwise never hand out anything at all.
  it('maxWaiting: 0 still lets an acquire create a resource when the pool has room', async () => {
    const { pool, fake } = setup({ max: 1, maxWaiting: 0 });
    const held = await pool.acquire();
    expect(fake.created).toBe(1);
    await expect(pool.acquire()).rejects.toBeInstanceOf(PoolQueueFullError);
    await held.release();
  });
});

describe('M31 retry', () => {
  it.each<[unknown, string, string]>([
    [{ retries: -1 }, 'retry.retries', 'Expected `retry.retries` to be an integer >= 0 or Infinity, got -1'],
    [{ retries: 1.5 }, 'retry.retries', 'Expected `retry.retries` to be an integer >= 0 or Infinity, got 1.5'],
    [{ retries: NaN }, 'retry.retries', 'Expected `retry.retries` to be an integer >= 0 or Infinity, got NaN'],
    [{ retries: '3' }, 'retry.retries', 'Expected `retry.retries` to be an integer >= 0 or Infinity, got "3"'],
    [{ factor: 0 }, 'retry.factor', 'Expected `retry.factor` to be a finite number >= 1, got 0'],
    [{ factor: 0.5 }, 'retry.factor', 'Expected `retry.factor` to be a finite number >= 1, got 0.5'],
    [{ factor: -2 }, 'retry.factor', 'Expected `retry.factor` to be a finite number >= 1, got -2'],
    [{ factor: NaN }, 'retry.factor', 'Expected `retry.factor` to be a finite number >= 1, got NaN'],
    [{ factor: Infinity }, 'retry.factor', 'Expected `retry.factor` to be a finite number >= 1, got Infinity'],
    [{ factor: '2' }, 'retry.factor', 'Expected `retry.factor` to be a finite number >= 1, got "2"'],
    [{ minTimeoutMs: -1 }, 'retry.minTimeoutMs', 'Expected `retry.minTimeoutMs` to be a number of milliseconds >= 0, got -1'],
    [{ minTimeoutMs: NaN }, 'retry.minTimeoutMs', 'Expected `retry.minTimeoutMs` to be a number of milliseconds >= 0, got NaN'],
    [{ minTimeoutMs: Infinity }, 'retry.minTimeoutMs', 'Expected `retry.minTimeoutMs` to be a number of milliseconds >= 0, got Infinity'],
    [{ minTimeoutMs: '10' }, 'retry.minTimeoutMs', 'Expected `retry.minTimeoutMs` to be a number of milliseconds >= 0, got "10"'],
    [{ maxTimeoutMs: -1 }, 'retry.maxTimeoutMs', 'Expected `retry.maxTimeoutMs` to be a number of milliseconds >= 0 (or Infinity for never), got -1'],
    [{ minTimeoutMs: 100, maxTimeoutMs: 50 }, 'retry.maxTimeoutMs', 'Expected `retry.maxTimeoutMs` to be >= retry.minTimeoutMs (100), got 50'],
    [{ maxTimeoutMs: 50 }, 'retry.maxTimeoutMs', 'Expected `retry.maxTimeoutMs` to be >= retry.minTimeoutMs (100), got 50'], // default min 100
    [{ randomize: 'yes' }, 'retry.randomize', 'Expected `retry.randomize` to be a boolean, got "yes"'],
    [{ randomize: 1 }, 'retry.randomize', 'Expected `retry.randomize` to be a boolean, got 1'],
    ['fast', 'retry', 'Expected `retry` to be an object, got "fast"'],
    [null, 'retry', 'Expected `retry` to be an object, got null'],
    [3, 'retry', 'Expected `retry` to be an object, got 3'],
  ])('retry: %o is rejected at construction', (retry, option, message) => {
    expectConstructionError(loose({ adapter: minimalAdapter(), retry }), option, message);
  });

  it.each([
    { retries: 0 },
    { retries: Infinity },
    { factor: 1 },
    { minTimeoutMs: 0, maxTimeoutMs: 0 },
    { minTimeoutMs: 10, maxTimeoutMs: 10 },
    { maxTimeoutMs: Infinity },
    { randomize: false },
    {},
  ])('retry: %o is accepted', (retry) => {
    expect(() => open({ adapter: minimalAdapter(), retry })).not.toThrow();
  });
});

describe('M31 circuitBreaker', () => {
  it.each<[unknown, string, string]>([
    [{ failureThreshold: 0 }, 'circuitBreaker.failureThreshold', 'Expected `circuitBreaker.failureThreshold` to be an integer >= 1, got 0'],
    [{ failureThreshold: -3 }, 'circuitBreaker.failureThreshold', 'Expected `circuitBreaker.failureThreshold` to be an integer >= 1, got -3'],
    [{ failureThreshold: 2.5 }, 'circuitBreaker.failureThreshold', 'Expected `circuitBreaker.failureThreshold` to be an integer >= 1, got 2.5'],
    [{ failureThreshold: '5' }, 'circuitBreaker.failureThreshold', 'Expected `circuitBreaker.failureThreshold` to be an integer >= 1, got "5"'],
    [{ cooldownMs: 0 }, 'circuitBreaker.cooldownMs', 'Expected `circuitBreaker.cooldownMs` to be a number of milliseconds > 0, got 0'],
    [{ cooldownMs: -1 }, 'circuitBreaker.cooldownMs', 'Expected `circuitBreaker.cooldownMs` to be a number of milliseconds > 0, got -1'],
    [{ cooldownMs: NaN }, 'circuitBreaker.cooldownMs', 'Expected `circuitBreaker.cooldownMs` to be a number of milliseconds > 0, got NaN'],
    [{ cooldownMs: Infinity }, 'circuitBreaker.cooldownMs', 'Expected `circuitBreaker.cooldownMs` to be a number of milliseconds > 0, got Infinity'],
    ['off', 'circuitBreaker', 'Expected `circuitBreaker` to be an object or false, got "off"'],
    [true, 'circuitBreaker', 'Expected `circuitBreaker` to be an object or false, got true'],
    [null, 'circuitBreaker', 'Expected `circuitBreaker` to be an object or false, got null'],
    [0, 'circuitBreaker', 'Expected `circuitBreaker` to be an object or false, got 0'],
  ])('circuitBreaker: %o is rejected at construction', (circuitBreaker, option, message) => {
    expectConstructionError(loose({ adapter: minimalAdapter(), circuitBreaker }), option, message);
  });

  it.each([false, {}, { failureThreshold: 1 }, { cooldownMs: 1 }, { failureThreshold: 3, cooldownMs: 250 }] as const)(
    'circuitBreaker: %o is accepted',
    (circuitBreaker) => {
      expect(() => open({ adapter: minimalAdapter(), circuitBreaker })).not.toThrow();
    },
  );

  it('failureThreshold: 1 is kept: one failed create opens the breaker', async () => {
    const { pool, clock, fake } = setup({ circuitBreaker: { failureThreshold: 1, cooldownMs: 50 }, onError: () => {} });
    fake.failCreates(1);
    const result = pool.acquire({ timeoutMs: 1000 }).catch((error: unknown) => error);
    await clock.advance(0);
    expect(pool.stats().circuit).toBe('open');
    expect(await result).toMatchObject({ code: 'POOL_CIRCUIT_OPEN' });
  });
});

describe('clock and onError', () => {
  const noop = (): void => {};
  it.each<[string, unknown, string]>([
    ['an empty object', {}, 'an object'],
    ['a string', 'monotonic', '"monotonic"'],
    ['null', null, 'null'],
    ['missing clearTimeout', { now: () => 0, setTimeout: noop }, 'an object'],
    ['now not a function', { now: 0, setTimeout: noop, clearTimeout: noop }, 'an object'],
    ['Date', Date, 'a function'],
  ])('clock: %s is rejected', (_label, clock, shown) => {
    expectConstructionError(
      loose({ adapter: minimalAdapter(), clock }),
      'clock',
      `Expected \`clock\` to be an object with now(), setTimeout() and clearTimeout(), got ${shown}`,
    );
  });

  it('a VirtualClock is accepted', () => {
    expect(() => open({ adapter: minimalAdapter(), clock: new VirtualClock() })).not.toThrow();
  });

  it.each<[unknown, string]>([
    ['log', '"log"'],
    [null, 'null'],
    [{ handleError() {} }, 'an object'],
    [true, 'true'],
  ])('onError: %o is rejected', (onError, shown) => {
    expectConstructionError(loose({ adapter: minimalAdapter(), onError }), 'onError', `Expected \`onError\` to be a function, got ${shown}`);
  });

  it('onError given as a function is accepted', () => {
    expect(() => open({ adapter: minimalAdapter(), onError: () => {} })).not.toThrow();
  });
});

describe('M24 per-call acquire options reject (never throw synchronously)', () => {
  const notAnAbortSignal = { aborted: false, addEventListener() {}, removeEventListener() {} };

  it.each<[string, unknown, string, string]>([
    ['timeoutMs -1', { timeoutMs: -1 }, 'timeoutMs', 'Expected `timeoutMs` to be a number of milliseconds > 0 (or Infinity for never), got -1'],
    ['timeoutMs NaN', { timeoutMs: NaN }, 'timeoutMs', 'Expected `timeoutMs` to be a number of milliseconds > 0 (or Infinity for never), got NaN'],
    ['timeoutMs 0', { timeoutMs: 0 }, 'timeoutMs', 'Expected `timeoutMs` to be a number of milliseconds > 0 (or Infinity for never), got 0'],
    ['timeoutMs "5"', { timeoutMs: '5' }, 'timeoutMs', 'Expected `timeoutMs` to be a number of milliseconds > 0 (or Infinity for never), got "5"'],
    ['timeoutMs -Infinity', { timeoutMs: -Infinity }, 'timeoutMs', 'Expected `timeoutMs` to be a number of milliseconds > 0 (or Infinity for never), got -Infinity'],
    ['priority "high"', { priority: 'high' }, 'priority', 'Expected `priority` to be a finite number, got "high"'],
    ['priority NaN', { priority: NaN }, 'priority', 'Expected `priority` to be a finite number, got NaN'],
    ['priority Infinity', { priority: Infinity }, 'priority', 'Expected `priority` to be a finite number, got Infinity'],
    ['signal an object', { signal: notAnAbortSignal }, 'signal', 'Expected `signal` to be an AbortSignal, got an object'],
    ['signal a string', { signal: 'abort' }, 'signal', 'Expected `signal` to be an AbortSignal, got "abort"'],
    ['signal an AbortController', { signal: new AbortController() }, 'signal', 'Expected `signal` to be an AbortSignal, got an object'],
    ['options null', null, 'acquire options', 'Expected `acquire options` to be an object, got null'],
    ['options a number', 5000, 'acquire options', 'Expected `acquire options` to be an object, got 5000'],
  ])('acquire(%s) rejects with InvalidPoolOptionError', async (_label, options, option, message) => {
    const { pool, fake } = setup({ max: 2 });
    let result: Promise<unknown> | undefined;
    expect(() => {
      result = pool.acquire(options as { timeoutMs: number });
    }).not.toThrow();
    expect(result).toBeInstanceOf(Promise);
    const error = await result!.then(
      () => undefined,
      (e: unknown) => e,
    );
    expectInvalid(error, option, message);
    // Nothing was consumed: no waiter, no create, no lease.
    const stats = pool.stats();
    expect(stats).toMatchObject({ waiting: 0, creating: 0, leased: 0, acquired: 0 });
    expect(fake.createAttempts).toBe(0);
  });

  it('withConnection with bad acquire options rejects the same way and never calls fn', async () => {
    const { pool } = setup({ max: 2 });
    let called = false;
    const error = await pool
      .withConnection(
        () => {
          called = true;
        },
        { timeoutMs: -5 },
      )
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expectInvalid(error, 'timeoutMs', /got -5$/);
    expect(called).toBe(false);
  });

  it.each([
    [{ timeoutMs: Infinity }],
    [{ timeoutMs: 0.5 }],
    [{ priority: -3 }],
    [{ priority: 1.5 }],
    [{ signal: new AbortController().signal }],
    [{}],
  ])('acquire(%o) is accepted', async (options) => {
    const { pool } = setup({ max: 2 });
    const lease = await pool.acquire(options);
    expect(lease.resource).toBeDefined();
    await lease.release();
  });
});

describe('M28 withConnection with a non-function', () => {
  it.each<[unknown, string]>([
    ['select 1', '"select 1"'],
    [undefined, 'undefined'],
    [null, 'null'],
    [{ query: 'select 1' }, 'an object'],
  ])('withConnection(%o) rejects with a clear error and takes no lease', async (fn, shown) => {
    const { pool, fake } = setup();
    let result: Promise<unknown> | undefined;
    expect(() => {
      result = pool.withConnection(fn as () => void);
    }).not.toThrow();
    const error = await result!.then(
      () => undefined,
      (e: unknown) => e,
    );
    expectInvalid(error, 'fn', `Expected \`fn\` to be a function, got ${shown}`);
    expect(pool.stats()).toMatchObject({ acquired: 0, leased: 0, creating: 0, waiting: 0 });
    expect(fake.createAttempts).toBe(0);
  });
});

describe('construction errors are synchronous and leave nothing behind', () => {
  it('a rejected option throws before any resource is created or timer armed', () => {
    const clock = new VirtualClock();
    const fake = new FakeAdapter(clock);
    expect(() => createPool(loose({ adapter: fake.adapter(), clock, min: 2, max: 2, keepaliveMs: 10, idleTimeoutMs: 0 }))).toThrow(
      InvalidPoolOptionError,
    );
    expect(fake.createAttempts).toBe(0);
    expect(clock.pendingTimers).toBe(0);
  });
});
