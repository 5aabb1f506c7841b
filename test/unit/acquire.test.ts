// Acquire: creating and reusing resources, queue order and priority, queue bounds,
// `min` / warmup, `maxConnecting`, create elision, and `withConnection`.
import { describe, expect, it } from 'vitest';
import { AcquireTimeoutError, PoolQueueFullError, type AcquireOptions, type Lease } from '../../src/index.js';
import { codedError, type FakeResource } from '../support/fake-adapter.js';
import { setup, slowCreates, slowCreatesAfterFirst, track } from '../support/harness.js';
import { flush } from '../support/virtual-clock.js';

describe('acquire', () => {
  it('hands out a lease on a created resource and reuses idle resources without creating more', async () => {
    await using h = setup({ max: 2 });
    const { pool, fake } = h;

    const lease = await pool.acquire();
    const resource = lease.resource;
    expect(fake.live.has(resource)).toBe(true);
    expect(fake.created).toBe(1);
    expect(pool.stats()).toMatchObject({ size: 1, leased: 1, idle: 0 });

    await lease.release();
    expect(pool.stats()).toMatchObject({ size: 1, leased: 0, idle: 1 });
    for (let i = 0; i < 3; i++) {
      const again = await pool.acquire();
      expect(again.resource).toBe(resource);
      await again.release();
    }
    expect(fake.createAttempts).toBe(1);
    expect(pool.stats().acquired).toBe(4);
  });

  it('never holds more than max resources: extra acquires wait for a release', async () => {
    await using h = setup({ max: 3 });
    const { pool, fake } = h;

    const pending = Array.from({ length: 10 }, () => track(pool.acquire()));
    await flush();
    expect(pending.filter((p) => p.state === 'fulfilled')).toHaveLength(3);
    expect(pool.stats()).toMatchObject({ size: 3, leased: 3, creating: 0, waiting: 7 });

    for (const [i, acquire] of pending.entries()) {
      await flush();
      const stats = pool.stats();
      expect(stats.size + stats.creating).toBeLessThanOrEqual(3);
      expect(acquire.state, `acquire #${i}`).toBe('fulfilled');
      await acquire.value!.release();
    }
    expect(fake.createAttempts).toBe(3);
    expect(pool.stats()).toMatchObject({ size: 3, idle: 3, waiting: 0, acquired: 10 });
  });

  it('serves waiters in arrival order (FIFO)', async () => {
    await using h = setup({ max: 1 });
    const { pool } = h;
    const holder = await pool.acquire();

    const order: number[] = [];
    const done = Array.from({ length: 6 }, (_, i) =>
      pool.acquire().then((lease) => {
        order.push(i);
        return lease.release();
      }),
    );
    await flush();
    expect(pool.stats().waiting).toBe(6);
    expect(order).toEqual([]);

    await holder.release();
    await Promise.all(done);
    expect(order).toEqual([0, 1, 2, 3, 4, 5]);
  });

  it('serves higher priority first, FIFO within a priority, the default being 0', async () => {
    await using h = setup({ max: 1 });
    const { pool } = h;
    const holder = await pool.acquire();

    const requests: [string, AcquireOptions | undefined][] = [
      ['a', undefined],
      ['b', { priority: 5 }],
      ['c', { priority: 1 }],
      ['d', { priority: 5 }],
      ['e', { priority: 0 }],
      ['f', { priority: -1 }],
      ['g', { priority: 1 }],
      ['h', undefined],
    ];
    const order: string[] = [];
    const done = requests.map(([name, options]) =>
      pool.acquire(options).then((lease) => {
        order.push(name);
        return lease.release();
      }),
    );
    await flush();
    await holder.release();
    await Promise.all(done);
    expect(order).toEqual(['b', 'd', 'c', 'g', 'a', 'e', 'h', 'f']);
  });

  it('serves 25,000 concurrent acquires on max 3, in FIFO order', async () => {
    await using h = setup({ max: 3, acquireTimeoutMs: 600_000 });
    const { pool, fake } = h;
    const N = 25_000;

    const order: number[] = [];
    let largest = 0;
    const done: Promise<void>[] = [];
    for (let i = 0; i < N; i++) {
      done.push(
        pool.acquire().then((lease) => {
          order.push(i);
          if (i % 500 === 0) largest = Math.max(largest, pool.stats().size);
          return lease.release();
        }),
      );
    }
    await Promise.all(done);

    expect(order).toHaveLength(N);
    expect(order.findIndex((value, index) => value !== index)).toBe(-1);
    expect(largest).toBeLessThanOrEqual(3);
    expect(fake.createAttempts).toBe(3);
    expect(pool.stats()).toMatchObject({ acquired: N, waiting: 0, leased: 0, size: 3, timedOut: 0 });
  });

  describe('maxWaiting', () => {
    it('rejects an acquire beyond maxWaiting at once with PoolQueueFullError, leaving the queue as it was', async () => {
      await using h = setup({ max: 1, maxWaiting: 2 });
      const { pool } = h;
      const holder = await pool.acquire();

      const order: string[] = [];
      const queued = ['first', 'second'].map((name) =>
        pool.acquire().then((lease) => {
          order.push(name);
          return lease.release();
        }),
      );
      // No virtual time passes: the refusal is immediate.
      const refused = track(pool.acquire());
      await flush();
      expect(refused.state).toBe('rejected');
      expect(refused.error).toBeInstanceOf(PoolQueueFullError);
      expect(refused.error).toMatchObject({ code: 'POOL_QUEUE_FULL', maxWaiting: 2 });
      expect(pool.stats()).toMatchObject({ waiting: 2, rejected: { queueFull: 1 } });

      await holder.release();
      await Promise.all(queued);
      expect(order).toEqual(['first', 'second']);
    });

    it('maxWaiting 0: an acquire that finds every resource leased is refused at once, never queued', async () => {
      await using h = setup({ max: 1, min: 1, maxWaiting: 0 });
      const { pool } = h;
      await pool.warmup();

      const holder = await pool.acquire();
      const only = holder.resource;
      const refused = track(pool.acquire());
      await flush();
      expect(refused.error).toMatchObject({ code: 'POOL_QUEUE_FULL' });
      expect(pool.stats()).toMatchObject({ waiting: 0, leased: 1, rejected: { queueFull: 1 } });

      await holder.release();
      const next = await pool.acquire();
      expect(next.resource).toBe(only);
      await next.release();
    });

    // maxWaiting bounds acquires queued behind a busy pool. An acquire that can be served by a
    // new resource (the pool is below max) is not such a waiter; refusing it would leave a
    // `maxWaiting: 0` pool unable to ever create anything (generic-pool counts the same way).
    it('maxWaiting 0 does not stop a pool with room from creating a resource for an acquire', async () => {
      await using h = setup({ max: 2, maxWaiting: 0 });
      const { pool, fake } = h;

      const acquire = track(pool.acquire());
      await flush();
      expect(acquire.error).toBeUndefined();
      expect(acquire.state).toBe('fulfilled');
      expect(fake.live.has(acquire.value!.resource)).toBe(true);
      await acquire.value!.release();
    });
  });

  describe('min and warmup', () => {
    it('creates min resources at start in the background; warmup() resolves once they exist', async () => {
      await using h = setup({ max: 5, min: 2 }, { prepare: slowCreates(100) });
      const { pool, clock, fake } = h;

      // Nobody asked for a resource: the pool starts creating on its own.
      expect(pool.stats().creating).toBe(2);
      const warm = track(pool.warmup());
      await clock.advance(99);
      expect(warm.state).toBe('pending');
      await clock.advance(1);
      expect(warm.state).toBe('fulfilled');
      expect(pool.stats()).toMatchObject({ size: 2, idle: 2, creating: 0 });
      expect(fake.created).toBe(2);

      await expect(pool.warmup()).resolves.toBeUndefined();
      expect(fake.createAttempts).toBe(2);
    });

    it('warmup() rejects with the create error itself when a create fails', async () => {
      const refused = codedError('connect ECONNREFUSED 10.0.0.1:5432', 'ECONNREFUSED');
      await using h = setup({ max: 5, min: 1 }, { prepare: (fake) => fake.failCreates(1, refused) });
      const { pool, clock, errors } = h;

      const failed = track(pool.warmup());
      await flush();
      expect(failed.state).toBe('rejected');
      expect(failed.error).toBe(refused);
      expect(pool.stats()).toMatchObject({ size: 0, createFailed: 1 });
      // Nobody was waiting, so the failure was reported as a background error.
      expect(errors).toContain(refused);

      // The pool keeps trying (with backoff) and a later warmup() sees it succeed.
      const warm = track(pool.warmup());
      await clock.advance(1_000);
      expect(warm.state).toBe('fulfilled');
      expect(pool.stats()).toMatchObject({ size: 1, idle: 1 });
    });

    it('tops min back up after a resource is destroyed', async () => {
      await using h = setup({ max: 5, min: 2 });
      const { pool, fake } = h;
      await flush();
      expect(pool.stats()).toMatchObject({ size: 2, idle: 2 });
      expect(fake.created).toBe(2);

      const lease = await pool.acquire();
      await lease.destroy();
      await flush();
      expect(fake.created).toBe(3);
      expect(pool.stats()).toMatchObject({ size: 2, idle: 2, destroyedByReason: { user: 1 } });
    });
  });

  it('never runs more than maxConnecting creates at once', async () => {
    await using h = setup({ max: 10, maxConnecting: 2 }, { prepare: slowCreates(100) });
    const { pool, clock, fake } = h;

    const acquires = Array.from({ length: 8 }, () => track(pool.acquire()));
    let mostCreating = 0;
    let mostAtAdapter = 0;
    for (let t = 0; t < 500; t += 10) {
      await clock.advance(10);
      mostCreating = Math.max(mostCreating, pool.stats().creating);
      mostAtAdapter = Math.max(mostAtAdapter, fake.createAttempts - fake.created);
    }
    expect(mostCreating).toBe(2);
    expect(mostAtAdapter).toBe(2);
    expect(acquires.every((a) => a.state === 'fulfilled')).toBe(true);
    expect(fake.created).toBe(8);
    for (const a of acquires) await a.value!.release();
  });

  it('starts no create for a waiter that a released or in-flight resource will serve (elision)', async () => {
    await using h = setup({ max: 10 }, { prepare: slowCreatesAfterFirst(100) });
    const { pool, clock, fake } = h;
    const held = await pool.acquire();
    const heldResource = held.resource;

    const first = track(pool.acquire());
    await flush();
    expect(pool.stats()).toMatchObject({ creating: 1, waiting: 1 });

    // The release serves the waiter at once; the create already running carries on.
    await held.release();
    await flush();
    expect(first.state).toBe('fulfilled');
    expect(first.value!.resource).toBe(heldResource);

    // A new waiter can be served by that in-flight create: no extra create.
    const second = track(pool.acquire());
    await flush();
    expect(fake.createAttempts).toBe(2);
    expect(pool.stats()).toMatchObject({ creating: 1, waiting: 1 });

    await clock.advance(100);
    expect(second.state).toBe('fulfilled');
    expect(second.value!.resource).not.toBe(heldResource);
    expect(fake.createAttempts).toBe(2);
    await first.value!.release();
    await second.value!.release();
    expect(pool.stats()).toMatchObject({ size: 2, idle: 2 });
  });

  describe('a create whose waiter gave up is not wasted', () => {
    it('goes to the next waiter when its own waiter timed out', async () => {
      await using h = setup({ max: 10, maxConnecting: 1 }, { prepare: slowCreates(100) });
      const { pool, clock, fake } = h;

      const early = track(pool.acquire({ timeoutMs: 50 }));
      const late = track(pool.acquire());
      await clock.advance(50);
      expect(early.error).toBeInstanceOf(AcquireTimeoutError);
      expect(late.state).toBe('pending');

      await clock.advance(50);
      expect(late.state).toBe('fulfilled');
      expect(fake.createAttempts).toBe(1);
      expect(fake.live.has(late.value!.resource)).toBe(true);
      expect(fake.live.size).toBe(pool.stats().size);
      await late.value!.release();
    });

    it('goes idle when its waiter aborted and nobody else waits', async () => {
      await using h = setup({ max: 10 }, { prepare: slowCreates(100) });
      const { pool, clock, fake } = h;
      const controller = new AbortController();

      const acquire = track(pool.acquire({ signal: controller.signal }));
      await clock.advance(40);
      controller.abort(new Error('caller left'));
      await flush();
      expect(acquire.state).toBe('rejected');
      expect(pool.stats().creating).toBe(1);

      await clock.advance(60);
      expect(pool.stats()).toMatchObject({ size: 1, idle: 1, leased: 0, creating: 0 });
      expect(fake.live.size).toBe(1);
      const lease = await pool.acquire();
      expect(fake.live.has(lease.resource)).toBe(true);
      expect(fake.createAttempts).toBe(1);
      await lease.release();
    });
  });
});

describe('withConnection', () => {
  it("returns fn's value and releases the resource", async () => {
    await using h = setup({ max: 1 });
    const { pool } = h;

    let seen: FakeResource | undefined;
    const value = await pool.withConnection(async (resource) => {
      seen = resource;
      expect(pool.stats().leased).toBe(1);
      return 42;
    });
    expect(value).toBe(42);
    expect(pool.stats()).toMatchObject({ leased: 0, idle: 1, destroyed: 0 });

    // A non-promise return works too, and gets the same (released) resource.
    await expect(pool.withConnection((resource) => resource === seen)).resolves.toBe(true);
  });

  it.each([
    ['throws synchronously', (error: Error) => (): never => {
      throw error;
    }],
    ['rejects', (error: Error) => (): Promise<never> => Promise.reject(error)],
    ['throws after an await', (error: Error) => async (): Promise<never> => {
      await Promise.resolve();
      throw error;
    }],
  ])('rethrows the original error unchanged and releases when fn %s', async (_, makeFn) => {
    await using h = setup({ max: 1 });
    const { pool, fake } = h;
    const error = Object.assign(new Error('duplicate key'), { code: '23505' });

    await expect(pool.withConnection(makeFn(error))).rejects.toBe(error);
    expect(error.code).toBe('23505');
    expect(pool.stats()).toMatchObject({ leased: 0, idle: 1, destroyed: 0 });
    expect(fake.destroyed).toBe(0);
  });

  it('destroys the resource instead when fn throws an error the adapter calls fatal', async () => {
    await using h = setup({ max: 1 });
    const { pool, fake } = h;
    const lost = codedError('connection lost', 'CONNECTION_LOST');

    let used: FakeResource | undefined;
    await expect(
      pool.withConnection(async (resource) => {
        used = resource;
        throw lost;
      }),
    ).rejects.toBe(lost);
    await flush();
    expect(used!.destroyed).toBe(true);
    expect(fake.destroyed).toBe(1);
    expect(pool.stats()).toMatchObject({ size: 0, idle: 0, leased: 0, destroyed: 1 });

    const next: Lease<FakeResource> = await pool.acquire();
    expect(next.resource).not.toBe(used);
    await next.release();
  });

  it("passes a signal that follows the caller's signal", async () => {
    await using h = setup({ max: 1 });
    const { pool } = h;
    const controller = new AbortController();
    const reason = new Error('request cancelled');

    const result = await pool.withConnection(
      (_resource, signal) => {
        expect(signal).toBeInstanceOf(AbortSignal);
        expect(signal.aborted).toBe(false);
        controller.abort(reason);
        return { aborted: signal.aborted, reason: signal.reason as unknown };
      },
      { signal: controller.signal },
    );
    expect(result).toEqual({ aborted: true, reason });
    expect(pool.stats()).toMatchObject({ leased: 0, idle: 1 });
  });
});
