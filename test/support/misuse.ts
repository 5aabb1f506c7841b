// The shared set-up of the FAULTS.md §5 checklist: one `describe` per bad-input / misuse case
// M1–M32, adapted to lifeguard's API, split by concern across test/unit/misuse-*.test.ts
// (options, adapter-hooks, leases, close, acquire, postgres, error-handlers, threads). Several
// cases have fuller scenarios in other files (options, leases, close, abort, retry, health); the
// misuse files hold the compact, direct checks, so together they read as the whole checklist. A
// case that does not apply to this API says so in its title, and its test pins the design that
// replaces it.
//
// Here: pools on a virtual clock and a fake adapter with their onError reports collected, pools
// on the system clock for construction checks, and the checks for InvalidPoolOptionError. Every
// misuse file calls `afterEach(closeMisusePools)`, so the pools its tests make are closed after each.
import { expect, vi } from 'vitest';
import { createPool, InvalidPoolOptionError, PoolError, type Adapter, type Lease, type Pool, type PoolOptions } from '../../src/index.js';
import { createPostgresPool, type PostgresPool, type PostgresPoolConfig } from '../../src/adapters/postgres/index.js';
import { FakeAdapter, type FakeOptions, type FakeResource } from './fake-adapter.js';
import { FakePgStream } from './fake-pg-stream.js';
import { closeOnClock, track } from './harness.js';
import { flush, VirtualClock } from './virtual-clock.js';

/** The smallest adapter the pool accepts: no optional hooks. */
export const minimalAdapter = (): Adapter<object> => ({ create: async () => ({}), destroy: async () => {} });

/** Bypass the type checker: misuse is exactly what these tests feed in. */
export const loose = <T = object>(options: Record<string, unknown>): PoolOptions<T> => options as unknown as PoolOptions<T>;

/** Catch what `fn` throws synchronously, failing when it does not throw. */
export function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  throw new Error('expected a synchronous throw, but nothing was thrown');
}

/** An InvalidPoolOptionError naming `option` (and, when given, with exactly `message`). */
export function expectInvalid(error: unknown, option: string, message?: string | RegExp): void {
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
export function expectConstructionError(options: unknown, option: string, message?: string | RegExp): void {
  expectInvalid(
    thrown(() => createPool(options as PoolOptions<object>)),
    option,
    message,
  );
}

export interface Built {
  readonly clock: VirtualClock;
  readonly fake: FakeAdapter;
  readonly adapter: Adapter<FakeResource>;
  readonly pool: Pool<FakeResource>;
  /** Everything reported through onError. */
  readonly errors: unknown[];
}

export type Options = Omit<PoolOptions<FakeResource>, 'adapter' | 'clock'>;

// Pools on the system clock (construction-only checks) and pools on a virtual clock, closed after each test.
const systemPools: Array<{ close(options?: { timeoutMs?: number }): Promise<void> }> = [];
const virtualPools: Built[] = [];

/** Every misuse file's afterEach: restore spies, close the pools its test made. */
export async function closeMisusePools(): Promise<void> {
  vi.restoreAllMocks();
  for (const b of virtualPools.splice(0)) await closeOnClock(b.clock, [b.pool], { timeoutMs: 0 });
  await Promise.all(systemPools.splice(0).map((pool) => pool.close({ timeoutMs: 0 })));
}

/** Close `pool` (a system-clock pool made directly) after the test. */
export function closeAfterTest<P extends { close(options?: { timeoutMs?: number }): Promise<void> }>(pool: P): P {
  systemPools.push(pool);
  return pool;
}

/** A pool on the system clock, for construction checks; closed after the test. */
export function open<T>(options: PoolOptions<T>): Pool<T> {
  return closeAfterTest(createPool(options));
}

/**
 * A pool on a fresh virtual clock and fake adapter, closed after the test. `tweak` may
 * replace adapter hooks before the pool is built (e.g. to record the signals ping gets).
 */
export function build(options: Options = {}, tweak?: (adapter: Adapter<FakeResource>, fake: FakeAdapter) => void, hooks?: FakeOptions): Built {
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
export async function acquireNow(b: Built): Promise<Lease<FakeResource>> {
  const outcome = track(b.pool.acquire(), b.clock);
  await b.clock.advance(0);
  expect(outcome.done, 'acquire should have settled without time passing').toBe(true);
  if (!outcome.ok) throw outcome.error;
  return outcome.value!;
}

/** `n` resources created, released, and left idle for `idleMs`; in release order (the pool pops the last one first). */
export async function idleResources(b: Built, n: number, idleMs: number): Promise<FakeResource[]> {
  const leases: Lease<FakeResource>[] = [];
  for (let i = 0; i < n; i++) leases.push(await acquireNow(b));
  const resources = leases.map((lease) => lease.resource);
  for (const lease of leases) await lease.release();
  await b.clock.advance(idleMs);
  return resources;
}

/** A Postgres pool whose clients talk to FakePgStreams (no database), closed after the test. */
export function fakePgPool(config: PostgresPoolConfig = {}): PostgresPool {
  const pool = createPostgresPool({
    host: 'fake.invalid',
    stream: () => new FakePgStream(),
    keepaliveMs: Infinity,
    pingIfIdleMs: Infinity,
    onError: () => {},
    ...config,
  });
  return closeAfterTest(pool);
}

/** Wait (real time, a few event-loop turns at a time) until `predicate` holds. */
export async function until(predicate: () => boolean, turns = 200): Promise<void> {
  for (let i = 0; i < turns && !predicate(); i++) await flush(1);
  expect(predicate()).toBe(true);
}
