// The unit tests' shared set-up: pools on a VirtualClock and a FakeAdapter with their
// background errors collected, watching promises settle without awaiting them, and closing
// pools while driving virtual time. Two ways to get a pool:
//
// - `setup()`: one pool with its own clock and adapter, closed by `await using` (or after
//   each test, with `setupClosingAfterEach()`);
// - `usePerTestPools()`: a fresh `clock`, `fake` and `errors` for every test of the file,
//   shared by every pool the returned `makePool` builds, all closed after the test.
import { afterEach, beforeEach, expect } from 'vitest';
import { createPool, type AcquireOptions, type Clock, type Lease, type Pool, type PoolOptions } from '../../src/index.js';
import { FakeAdapter, type FakeOptions, type FakeResource } from './fake-adapter.js';
import { VirtualClock } from './virtual-clock.js';

// ---------------------------------------------------------------- watching promises

/** How a promise settled, readable synchronously at any time. */
export class Tracked<T> {
  state: 'pending' | 'fulfilled' | 'rejected' = 'pending';
  value: T | undefined = undefined;
  error: unknown = undefined;
  /** The virtual time it settled at: NaN while pending, or when there was no clock to read. */
  at = NaN;

  /** Settled, either way. */
  get done(): boolean {
    return this.state !== 'pending';
  }

  /** Fulfilled. */
  get ok(): boolean {
    return this.state === 'fulfilled';
  }
}

/**
 * Observe a promise's outcome without awaiting it (and without leaving a rejection
 * unhandled). `at` is read from `timeSource`: by default the per-test clock of
 * `usePerTestPools`, when the file uses it.
 */
export function track<T>(promise: Promise<T>, timeSource: Pick<Clock, 'now'> | undefined = clock): Tracked<T> {
  const tracked = new Tracked<T>();
  const now = (): number => timeSource?.now() ?? NaN;
  promise.then(
    (value) => {
      tracked.state = 'fulfilled';
      tracked.value = value;
      tracked.at = now();
    },
    (error: unknown) => {
      tracked.state = 'rejected';
      tracked.error = error;
      tracked.at = now();
    },
  );
  return tracked;
}

/** What `promise` rejects with; fails the test when it fulfils instead. */
export function errorOf(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => {
      throw new Error('expected a rejection');
    },
    (error: unknown) => error,
  );
}

// ---------------------------------------------------------------- closing pools

/** A pool of any resource type, as far as closing it goes. */
export interface Closable {
  close(options?: { timeoutMs?: number }): Promise<void>;
}

/**
 * Close `pools`, driving `clock` in 1 s steps until every close() has settled. Fails the
 * test when one has not settled after 10 virtual minutes, and rethrows a rejected close().
 */
export async function closeOnClock(clock: VirtualClock, pools: readonly Closable[], options?: { timeoutMs?: number }): Promise<void> {
  const closing = pools.map((pool) => track(options === undefined ? pool.close() : pool.close(options), clock));
  const closed = await clock.advanceUntil(() => closing.every((c) => c.done), 600_000, 1_000);
  expect(closed, 'every close() should settle within 10 virtual minutes').toBe(true);
  for (const c of closing) if (!c.ok) throw c.error;
}

// ---------------------------------------------------------------- one pool: setup()

/** Pool options a test sets; the harness supplies adapter and clock, and collects onError unless a test overrides it. */
export type Options = Omit<PoolOptions<FakeResource>, 'adapter' | 'clock'>;

/** Which hooks the fake adapter has, and what to script on it before the pool is built (a `min` fill starts at once). */
export interface FakeSetup extends FakeOptions {
  readonly prepare?: (fake: FakeAdapter) => void;
}

export interface Harness extends AsyncDisposable {
  readonly clock: VirtualClock;
  readonly fake: FakeAdapter;
  readonly pool: Pool<FakeResource>;
  /** Everything the pool reported through onError. */
  readonly errors: unknown[];
}

/** A pool on its own virtual clock and fake adapter; `await using` closes it, driving virtual time until close() settles. */
export function setup(options: Options = {}, fakeSetup: FakeSetup = {}): Harness {
  const clock = new VirtualClock();
  const fake = new FakeAdapter(clock, fakeSetup);
  fakeSetup.prepare?.(fake);
  const errors: unknown[] = [];
  const pool = createPool<FakeResource>({ adapter: fake.adapter(), clock, onError: (error) => errors.push(error), ...options });
  return { clock, fake, pool, errors, [Symbol.asyncDispose]: () => closeOnClock(clock, [pool]) };
}

/**
 * `setup`, for a file whose tests do not `await using` their harness: every pool it makes
 * is closed after its test (with `timeoutMs: 0`, so leases still out do not hold it up).
 * Call once, at the top of the file.
 */
export function setupClosingAfterEach(): typeof setup {
  const opened: Harness[] = [];
  afterEach(async () => {
    for (const h of opened.splice(0)) await closeOnClock(h.clock, [h.pool], { timeoutMs: 0 });
  });
  return (options, fakeSetup) => {
    const h = setup(options, fakeSetup);
    opened.push(h);
    return h;
  };
}

/** `prepare`: every create takes `ms` of virtual time. */
export const slowCreates = (ms: number) => (fake: FakeAdapter) => {
  fake.defaults.create = { kind: 'slow', ms };
};

/** `prepare`: the first create succeeds at once, every later one takes `ms` of virtual time. */
export const slowCreatesAfterFirst = (ms: number) => (fake: FakeAdapter) => {
  fake.script.create.push({ kind: 'ok' });
  fake.defaults.create = { kind: 'slow', ms };
};

// ---------------------------------------------------------------- per-test pools: usePerTestPools()

/** The current test's virtual clock (set by `usePerTestPools`). */
export let clock: VirtualClock;
/** The current test's fake adapter, shared by the pools `makePool` builds. */
export let fake: FakeAdapter;
/** What the current test's pools reported through onError. */
export let errors: unknown[];
let poolClock: Clock;
let pools: Closable[] = [];

export interface PerTestSetup {
  /** Script the fake before each test. */
  readonly prepare?: (fake: FakeAdapter) => void;
  /** The clock the pools get, wrapping the per-test virtual clock (default: that clock itself). */
  readonly clock?: (clock: VirtualClock) => Clock;
}

/**
 * Before each test of the file, a fresh `clock`, `fake` and `errors`; after it, every pool
 * built by the returned `makePool` (or handed to `closeAfterTest`) is closed with
 * `timeoutMs: 0`, failing the test if one does not close. `makePool(options)` builds a
 * pool on them with `defaults`, then `options`, on top (either may replace adapter, clock
 * or onError). Call once, at the top of the file.
 */
export function usePerTestPools(
  defaults: Partial<PoolOptions<FakeResource>> = {},
  perTest: PerTestSetup = {},
): (options?: Partial<PoolOptions<FakeResource>>) => Pool<FakeResource> {
  beforeEach(() => {
    clock = new VirtualClock();
    fake = new FakeAdapter(clock);
    perTest.prepare?.(fake);
    errors = [];
    pools = [];
    poolClock = perTest.clock?.(clock) ?? clock;
  });
  afterEach(() => closeOnClock(clock, pools.splice(0), { timeoutMs: 0 }));
  return (options = {}) =>
    closeAfterTest(
      createPool<FakeResource>({
        adapter: fake.adapter(),
        clock: poolClock,
        onError: (error) => errors.push(error),
        ...defaults,
        ...options,
      }),
    );
}

/** Close a pool the test built itself after the test, like those from `makePool`. */
export function closeAfterTest<P extends Closable>(pool: P): P {
  pools.push(pool);
  return pool;
}

/** Acquire and let every ready promise chain run on the per-test clock (no virtual time passes); fails unless that settles it. */
export async function acquireNow(pool: Pool<FakeResource>, options?: AcquireOptions): Promise<Lease<FakeResource>> {
  const outcome = track(options === undefined ? pool.acquire() : pool.acquire(options));
  await clock.advance(0);
  expect(outcome.done, 'acquire should have settled without time passing').toBe(true);
  if (!outcome.ok) throw outcome.error;
  return outcome.value!;
}
