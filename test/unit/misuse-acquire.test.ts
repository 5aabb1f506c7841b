// acquire() and withConnection() misuse (M22–M26): an already-aborted signal, aborts at every
// stage, bad per-call timeoutMs, the nested-acquire deadlock, callbacks that throw.
// Part of the FAULTS.md §5 misuse checklist (M1–M32, one `describe` per case, split by concern
// across test/unit/misuse-*.test.ts; shared set-up in test/support/misuse.ts).
import { afterEach, describe, expect, it } from 'vitest';
import { AcquireTimeoutError } from '../../src/index.js';
import { codedError, type FakeResource } from '../support/fake-adapter.js';
import { errorOf, track } from '../support/harness.js';
import { acquireNow, build, closeMisusePools, expectInvalid, idleResources } from '../support/misuse.js';
import { flush } from '../support/virtual-clock.js';

afterEach(closeMisusePools);

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
