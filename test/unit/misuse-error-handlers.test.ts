// Errors nobody listens for and user handlers that throw (M29–M30): no 'error' event to go
// unhandled, background errors without onError, a throwing onError or adapter predicate hook.
// Part of the FAULTS.md §5 misuse checklist (M1–M32, one `describe` per case, split by concern
// across test/unit/misuse-*.test.ts; shared set-up in test/support/misuse.ts).
import { EventEmitter } from 'node:events';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createPool } from '../../src/index.js';
import { codedError, FakeAdapter, type FakeResource } from '../support/fake-adapter.js';
import { FakePgStream } from '../support/fake-pg-stream.js';
import { closeOnClock, errorOf, track } from '../support/harness.js';
import { acquireNow, build, closeMisusePools, fakePgPool, until } from '../support/misuse.js';
import { flush, VirtualClock } from '../support/virtual-clock.js';

afterEach(closeMisusePools);

// ---------------------------------------------------------------- M29–M30: errors and hooks

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
