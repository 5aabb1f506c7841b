// The acquire wait queue (src/pool/waiters.ts), tested directly although it is internal:
// ordering, removal, expiry and latestDeadline against a trivially correct model, and
// scale with distinct priorities and shuffled deadlines, which used to be quadratic
// (issue 9, item 14). Last, the same through the pool's public API.
import { performance } from 'node:perf_hooks';
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { WaiterQueue, type Waiter } from '../../src/pool/waiters.js';
import { createPool, type Lease } from '../../src/pool/pool.js';
import { FakeAdapter, type FakeResource } from '../support/fake-adapter.js';
import { flush, VirtualClock } from '../support/virtual-clock.js';

class TestWaiter implements Waiter {
  prev: Waiter | undefined = undefined;
  next: Waiter | undefined = undefined;
  lane: Waiter['lane'] = undefined;
  constructor(
    readonly id: number,
    readonly deadline: number,
  ) {}
}

const ids = (waiters: Iterable<TestWaiter>): number[] => [...waiters].map((w) => w.id);

/** Push one waiter per [priority, deadline]; ids are the indexes. */
function queueOf(specs: ReadonlyArray<readonly [priority: number, deadline: number]>): { q: WaiterQueue<TestWaiter>; w: TestWaiter[] } {
  const q = new WaiterQueue<TestWaiter>();
  const w = specs.map(([, deadline], id) => new TestWaiter(id, deadline));
  specs.forEach(([priority], id) => q.push(w[id]!, priority));
  return { q, w };
}

function drain(q: WaiterQueue<TestWaiter>): number[] {
  const out: number[] = [];
  for (let w = q.shift(); w !== undefined; w = q.shift()) out.push(w.id);
  return out;
}

function expireAt(q: WaiterQueue<TestWaiter>, now: number): { expired: number[]; next: number } {
  const expired: number[] = [];
  const next = q.expire(now, (w) => expired.push(w.id));
  return { expired, next };
}

/** A deterministic shuffle of 0..n-1. */
function shuffled(n: number, seed = 1): number[] {
  const a = Array.from({ length: n }, (_, i) => i);
  let s = seed;
  for (let i = n - 1; i > 0; i--) {
    s = (s * 1103515245 + 12345) % 2147483648;
    const j = Math.floor((s / 2147483648) * (i + 1));
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a;
}

describe('WaiterQueue', () => {
  it('is empty at first', () => {
    const q = new WaiterQueue<TestWaiter>();
    expect(q.size).toBe(0);
    expect(q.peek()).toBeUndefined();
    expect(q.shift()).toBeUndefined();
    expect(q.last()).toBeUndefined();
    expect(q.latestDeadline()).toBe(-Infinity);
    expect(expireAt(q, 1e9)).toEqual({ expired: [], next: Infinity });
    expect([...q]).toEqual([]);
  });

  it('serves higher priorities first and FIFO within a priority; iterates in that order', () => {
    const { q } = queueOf([
      [0, 10],
      [5, 10],
      [1, 10],
      [5, 10],
      [0, 10],
      [-1, 10],
      [1, 10],
      [-0, 10],
    ]);
    expect(q.size).toBe(8);
    expect(ids(q)).toEqual([1, 3, 2, 6, 0, 4, 7, 5]);
    expect(q.peek()!.id).toBe(1);
    expect(q.last()!.id).toBe(5);
    expect(drain(q)).toEqual([1, 3, 2, 6, 0, 4, 7, 5]);
    expect(q.size).toBe(0);
  });

  it('last() is the newest waiter of the lowest priority, also when the default lane is empty', () => {
    const { q, w } = queueOf([
      [3, 1],
      [0, 1],
      [-2, 1],
      [-2, 1],
      [7, 1],
    ]);
    expect(q.last()!.id).toBe(3);
    q.remove(w[3]!);
    expect(q.last()!.id).toBe(2);
    q.remove(w[2]!);
    expect(q.last()!.id).toBe(1);
    q.remove(w[1]!);
    // Only 3 and 7 are left, the (empty) default lane between them.
    expect(q.last()!.id).toBe(0);
    expect(q.peek()!.id).toBe(4);
    q.remove(w[0]!);
    expect(q.last()!.id).toBe(4);
    expect(q.peek()!.id).toBe(4);
  });

  it('peek() skips an empty default lane for the best of the lanes below it', () => {
    const { q, w } = queueOf([
      [0, 1],
      [-3, 1],
      [-1, 1],
      [-2, 1],
    ]);
    q.remove(w[0]!);
    expect(drain(q)).toEqual([2, 3, 1]);
  });

  it('removes from the middle, ends and between runs, and reports whether the waiter was queued', () => {
    // Deadlines out of order make several runs in one lane: [5 9] [3 4 8] [1] [2 7].
    const deadlines = [5, 9, 3, 4, 8, 1, 2, 7];
    const { q, w } = queueOf(deadlines.map((d) => [0, d] as const));
    expect(q.remove(w[3]!)).toBe(true); // middle of a run
    expect(q.remove(w[3]!)).toBe(false);
    expect(q.remove(w[1]!)).toBe(true); // tail of the first run
    expect(q.remove(w[5]!)).toBe(true); // a whole run
    expect(q.remove(w[6]!)).toBe(true); // head of a run
    expect(q.size).toBe(4);
    expect(ids(q)).toEqual([0, 2, 4, 7]);
    expect(q.latestDeadline()).toBe(8);
    expect(expireAt(q, 4)).toEqual({ expired: [2], next: 5 });
    expect(q.remove(w[2]!)).toBe(false);
    expect(drain(q)).toEqual([0, 4, 7]);
  });

  it('expire() removes every waiter due at `now` across priorities and returns the earliest remaining deadline', () => {
    const { q } = queueOf([
      [0, 30],
      [0, 10],
      [2, 20],
      [2, 5],
      [-1, 15],
      [0, 40],
      [7, 25],
      [2, 50],
    ]);
    expect(expireAt(q, 4)).toEqual({ expired: [], next: 5 });
    const first = expireAt(q, 20);
    expect(first.expired.sort((a, b) => a - b)).toEqual([1, 2, 3, 4]);
    expect(first.next).toBe(25);
    expect(q.size).toBe(4);
    expect(ids(q)).toEqual([6, 7, 0, 5]);
    expect(expireAt(q, 25)).toEqual({ expired: [6], next: 30 });
    const rest = expireAt(q, 1000);
    expect(rest.expired.sort((a, b) => a - b)).toEqual([0, 5, 7]);
    expect(rest.next).toBe(Infinity);
    expect(q.size).toBe(0);
    expect(q.peek()).toBeUndefined();
    expect(q.last()).toBeUndefined();
  });

  it('expire() copes with the callback queueing and removing waiters', () => {
    const { q, w } = queueOf([
      [0, 1],
      [0, 2],
      [1, 3],
      [0, 9],
    ]);
    const late = new TestWaiter(10, 1);
    const seen: number[] = [];
    const next = q.expire(2, (waiter) => {
      seen.push(waiter.id);
      if (waiter.id === 0) {
        q.remove(w[1]!);
        q.push(late, 5);
      }
    });
    expect(seen).toEqual([0, 10]);
    expect(next).toBe(3);
    expect(ids(q)).toEqual([2, 3]);
  });

  it('latestDeadline() is the maximum deadline of the queued waiters', () => {
    const { q, w } = queueOf([
      [0, 10],
      [3, 70],
      [0, 50],
      [0, 20],
      [-1, 30],
      [0, Infinity],
    ]);
    expect(q.latestDeadline()).toBe(Infinity);
    q.remove(w[5]!);
    expect(q.latestDeadline()).toBe(70);
    q.remove(w[1]!);
    expect(q.latestDeadline()).toBe(50);
    q.remove(w[2]!);
    expect(q.latestDeadline()).toBe(30);
    q.remove(w[4]!);
    expect(q.latestDeadline()).toBe(20);
    drain(q);
    expect(q.latestDeadline()).toBe(-Infinity);
  });

  it('lets a removed waiter be queued again, and iteration survive removing the waiter just yielded', () => {
    const { q, w } = queueOf([
      [0, 5],
      [0, 3],
      [1, 4],
    ]);
    q.remove(w[0]!);
    q.push(w[0]!, 0);
    expect(ids(q)).toEqual([2, 1, 0]);
    const seen: number[] = [];
    for (const waiter of q) {
      seen.push(waiter.id);
      q.remove(waiter);
    }
    expect(seen).toEqual([2, 1, 0]);
    expect(q.size).toBe(0);
  });

  // ---------------------------------------------------------------- against a model

  type Op =
    | { readonly t: 'push'; readonly priority: number; readonly deadline: number }
    | { readonly t: 'repush'; readonly pick: number; readonly priority: number }
    | { readonly t: 'shift' }
    | { readonly t: 'remove'; readonly pick: number }
    | { readonly t: 'expire'; readonly now: number };

  /** `priority` decides how many lanes, `maxDeadline` how often deadlines tie and how many runs. */
  const opArb = (priority: fc.Arbitrary<number>, maxDeadline: number): fc.Arbitrary<Op> =>
    fc.oneof(
      {
        weight: 6,
        arbitrary: fc.record({ t: fc.constant('push' as const), priority, deadline: fc.oneof(fc.integer({ min: 0, max: maxDeadline }), fc.constant(Infinity)) }),
      },
      { weight: 1, arbitrary: fc.record({ t: fc.constant('repush' as const), pick: fc.nat(), priority }) },
      { weight: 2, arbitrary: fc.record({ t: fc.constant('shift' as const) }) },
      { weight: 3, arbitrary: fc.record({ t: fc.constant('remove' as const), pick: fc.nat() }) },
      { weight: 1, arbitrary: fc.record({ t: fc.constant('expire' as const), now: fc.integer({ min: -1, max: maxDeadline + 2 }) }) },
    );

  it.each([
    ['a few lanes of several waiters each', opArb(fc.oneof(fc.constant(0), fc.integer({ min: -3, max: 3 }), fc.double({ min: -1e6, max: 1e6, noNaN: true })), 20), 150, 300],
    ['many lanes', opArb(fc.integer({ min: -40, max: 40 }), 20), 300, 100],
    ['one lane of many runs', opArb(fc.constant(0), 200), 300, 100],
  ] as const)('behaves like a sorted array (priority descending, then arrival) under random operations: %s', (_, arb, maxLength, numRuns) => {
    fc.assert(
      fc.property(fc.array(arb, { maxLength, size: 'max' }), (ops) => {
        const q = new WaiterQueue<TestWaiter>();
        let model: Array<{ w: TestWaiter; priority: number; seq: number }> = [];
        const all: TestWaiter[] = [];
        let seq = 0;
        const enqueue = (w: TestWaiter, priority: number): void => {
          q.push(w, priority);
          model.push({ w, priority, seq: seq++ });
          model.sort((a, b) => b.priority - a.priority || a.seq - b.seq);
        };
        for (const op of ops) {
          switch (op.t) {
            case 'push': {
              const w = new TestWaiter(all.length, op.deadline);
              all.push(w);
              enqueue(w, op.priority);
              break;
            }
            case 'repush': {
              const idle = all.filter((w) => !model.some((m) => m.w === w));
              if (idle.length > 0) enqueue(idle[op.pick % idle.length]!, op.priority);
              break;
            }
            case 'shift':
              expect(q.shift()).toBe(model.shift()?.w);
              break;
            case 'remove': {
              if (all.length === 0) break;
              const w = all[op.pick % all.length]!;
              const queued = model.some((m) => m.w === w);
              expect(q.remove(w)).toBe(queued);
              model = model.filter((m) => m.w !== w);
              break;
            }
            case 'expire': {
              const { expired, next } = expireAt(q, op.now);
              const due = model.filter((m) => m.w.deadline <= op.now).map((m) => m.w.id);
              model = model.filter((m) => m.w.deadline > op.now);
              expect(expired.sort((a, b) => a - b)).toEqual(due.sort((a, b) => a - b));
              expect(next).toBe(Math.min(Infinity, ...model.map((m) => m.w.deadline)));
              break;
            }
          }
          expect(q.size).toBe(model.length);
          expect(q.peek()).toBe(model[0]?.w);
          expect(q.last()).toBe(model.at(-1)?.w);
          expect(q.latestDeadline()).toBe(Math.max(-Infinity, ...model.map((m) => m.w.deadline)));
          expect([...q]).toEqual(model.map((m) => m.w));
        }
        // Whatever is left times out in deadline order, one expiry per next due time, as the pool drives it.
        let at = q.expire(-Infinity, () => {});
        while (at !== Infinity) {
          const before = q.size;
          at = q.expire(at, (w) => expect(model.some((m) => m.w === w)).toBe(true));
          if (at !== Infinity) expect(q.size).toBeLessThan(before);
        }
        expect(q.size).toBe(model.filter((m) => m.w.deadline === Infinity).length);
      }),
      { numRuns },
    );
  });

  // ---------------------------------------------------------------- scale

  /**
   * Push n waiters with shuffled distinct deadlines, time out the earlier half one due time
   * at a time (the pool's deadline timer fires at each next due time expire() returns), then
   * serve the rest; checks both orders. Was O(n²): seconds at these sizes.
   */
  function timeOutHalfThenServe(n: number, priorityOf: (deadline: number) => number): number {
    const q = new WaiterQueue<TestWaiter>();
    const start = performance.now();
    for (const d of shuffled(n)) q.push(new TestWaiter(d, d), priorityOf(d));
    expect(q.latestDeadline()).toBe(n - 1);
    const expired: number[] = [];
    let at = q.expire(-1, () => {});
    while (at < n / 2) at = q.expire(at, (w) => expired.push(w.id));
    const served = drain(q);
    const ms = performance.now() - start;
    expect(expired).toEqual(Array.from({ length: n / 2 }, (_, i) => i));
    expect(served).toHaveLength(n / 2);
    const byPriority = [...served].sort((a, b) => priorityOf(b) - priorityOf(a) || 0);
    expect(served.map(priorityOf)).toEqual(byPriority.map(priorityOf));
    return ms;
  }

  it('stays fast with 40,000 distinct priorities and shuffled deadlines (earliest deadline first)', () => {
    const ms = timeOutHalfThenServe(40_000, (d) => -d);
    expect(ms).toBeLessThan(2000);
  });

  it('stays fast with 60,000 shuffled deadlines in one priority, and in a few', () => {
    expect(timeOutHalfThenServe(60_000, () => 0)).toBeLessThan(2000);
    expect(timeOutHalfThenServe(60_000, (d) => d % 7)).toBeLessThan(2000);
  });
});

// ---------------------------------------------------------------- through the pool

describe('pool with a distinct priority per acquire (earliest deadline first)', () => {
  it('queues 20,000 acquires quickly, times out and serves them in deadline order', async () => {
    const clock = new VirtualClock();
    const fake = new FakeAdapter(clock);
    const errors: unknown[] = [];
    const pool = createPool<FakeResource>({ adapter: fake.adapter(), clock, max: 1, onError: (error) => errors.push(error) });
    const holder = await pool.acquire();

    const n = 20_000;
    const served: number[] = [];
    const timedOut: number[] = [];
    const settled: Array<Promise<void>> = [];
    const start = performance.now();
    for (const i of shuffled(n, 7)) {
      const timeoutMs = 60_000 + i;
      const deadline = clock.now() + timeoutMs;
      settled.push(
        pool.acquire({ timeoutMs, priority: -deadline }).then(
          (lease: Lease<FakeResource>) => {
            served.push(i);
            return lease.release();
          },
          () => {
            timedOut.push(i);
          },
        ),
      );
    }
    const enqueueMs = performance.now() - start;
    expect(pool.stats().waiting).toBe(n);
    // Measured on a 2-core Xeon: ~50 ms; the quadratic queue blocked the event loop ~2 s.
    expect(enqueueMs).toBeLessThan(1000);

    // The 500 earliest deadlines pass (one deadline timer per distinct deadline).
    await clock.advance(60_000 + 499);
    expect(timedOut.sort((a, b) => a - b)).toEqual(Array.from({ length: 500 }, (_, i) => i));
    expect(pool.stats().waiting).toBe(n - 500);

    const releaseStart = performance.now();
    await holder.release();
    await flush();
    await Promise.all(settled);
    // Likewise ~60 ms against ~1.9 s.
    expect(performance.now() - releaseStart).toBeLessThan(1000);
    expect(served).toEqual(Array.from({ length: n - 500 }, (_, i) => 500 + i));
    expect(pool.stats().waiting).toBe(0);

    await pool.close();
    expect(errors).toEqual([]);
  });
});
