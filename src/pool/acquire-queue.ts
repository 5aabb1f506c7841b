/**
 * The demand side of the hand-off: acquires waiting for a resource. It is the waiter queue
 * (FIFO within a priority, see waiters.ts) plus what a waiting caller is owed besides its
 * resource: its AbortSignal honoured, its deadline kept by one timer for the whole queue,
 * the process kept alive while it waits, and a failure settled once with an `acquireEnd`
 * event. The dispatcher (pool.ts) makes waiters and serves them: that path stays in one
 * function there (as a call into this class it measured ~5 % slower under contention).
 */
import type { Clock, ClockTimer } from './clock.js';
import { SystemClock } from './clock.js';
import { channels } from './events.js';
import type { Congestion } from './congestion.js';
import { HOLD_WAITERS, type ProcessHold } from './process-hold.js';
import { WaiterQueue, type Waiter } from './waiters.js';

/** Rarely used parts of a waiter, kept apart so the common waiter stays small (100k queued waiters are a test case). */
export interface WaiterExtras {
  readonly signal: AbortSignal | undefined;
  readonly stack: string | undefined;
  onAbort: (() => void) | undefined;
}

/** A queued acquire: the queue's node and the promise's settlers in one object. */
export class PoolWaiter<L> implements Waiter {
  prev: Waiter | undefined = undefined;
  next: Waiter | undefined = undefined;
  lane: Waiter['lane'] = undefined;
  readonly resolve: (lease: L) => void;
  readonly reject: (error: unknown) => void;

  /** Call right after `new Promise(captureResolvers)`, which left its resolvers in the module slots. */
  constructor(
    readonly enqueuedAt: number,
    /** The timeout the caller asked for, reported as is (deadline - enqueuedAt has float noise). */
    readonly timeoutMs: number,
    readonly deadline: number,
    readonly extras: WaiterExtras | undefined,
  ) {
    this.resolve = capturedResolve as (lease: L) => void;
    this.reject = capturedReject;
  }
}

// A shared executor instead of a closure per waiter (new Promise() calls it synchronously):
// with 100k queued callers, every byte per waiter shows up as garbage-collector time.
let capturedResolve: (value: never) => void;
let capturedReject: (error: unknown) => void;
export function captureResolvers(resolve: (value: never) => void, reject: (error: unknown) => void): void {
  capturedResolve = resolve;
  capturedReject = reject;
}

export interface AcquireQueueHooks<L> {
  /** A waiter reached its deadline (already out of the queue): settle it with `fail`. */
  timedOut(waiter: PoolWaiter<L>): void;
  /** A waiter's signal aborted (already out of the queue and failed). */
  aborted(): void;
  /** A waiter was shed while the pool is congested (already out of the queue): settle it with `fail`. */
  shed(waiter: PoolWaiter<L>, waitedMs: number): void;
  /** The pool's pace: milliseconds between two waiters served while every resource is busy. */
  msPerServe(): number;
}

export class AcquireQueue<L> extends WaiterQueue<PoolWaiter<L>> {
  readonly #clock: Clock;
  /** The caching system clock, whose precise() a deadline is checked against; undefined for other clocks. */
  readonly #systemClock: SystemClock | undefined;
  readonly #face: object;
  readonly #hooks: AcquireQueueHooks<L>;
  /** Marked while anyone waits: a waiting caller keeps the process alive. */
  readonly #hold: ProcessHold;
  /** Adaptive queueing; undefined for `queuePolicy: 'fifo'`. */
  readonly #congestion: Congestion | undefined;
  #deadlineTimer: ClockTimer | undefined;
  #deadlineAt = Infinity;

  constructor(clock: Clock, face: object, hold: ProcessHold, congestion: Congestion | undefined, hooks: AcquireQueueHooks<L>) {
    super();
    this.#hold = hold;
    this.#congestion = congestion;
    this.#clock = clock;
    this.#systemClock = clock instanceof SystemClock ? clock : undefined;
    this.#face = face;
    this.#hooks = hooks;
  }

  /**
   * A precise reading (~50 ns, only for callers that may queue): a deadline counted from a
   * cached reading could be corrected only later, and under load that correction kept
   * moving, so a busy process never timed its waiters out (FAULTS.md I1).
   */
  preciseNow(): number {
    return this.#systemClock?.precise() ?? this.#clock.now();
  }

  /** The dispatcher just pushed `waiter` (made at `now`): hold the process, keep its deadline, honour its signal. */
  admitted(waiter: PoolWaiter<L>, now: number): void {
    this.#hold.mark(HOLD_WAITERS, true);
    if (waiter.deadline < this.#deadlineAt) this.#armDeadline(waiter.deadline, now);
    const signal = waiter.extras?.signal;
    if (signal !== undefined) this.#watchAbort(waiter, signal);
  }


  /** Settle a waiter (already out of the queue) with an error. */
  fail(waiter: PoolWaiter<L>, error: unknown): void {
    const extras = waiter.extras;
    if (extras?.onAbort !== undefined) extras.signal!.removeEventListener('abort', extras.onAbort);
    if (channels.acquireEnd.hasSubscribers) channels.acquireEnd.publish({ pool: this.#face, waitMs: this.#clock.now() - waiter.enqueuedAt, error });
    waiter.reject(error);
    if (this.size === 0) this.emptied();
  }

  /** Nobody waits any more: the process may go, and congestion is over. */
  emptied(): void {
    this.#hold.mark(HOLD_WAITERS, false);
    this.#congestion?.drained();
  }

  /**
   * While the pool is congested, fail the waiters that have waited `shedAfterMs` and can
   * no longer be served before their deadline: served newest-first, every waiter behind
   * them goes first, at the pool's pace. (A burst that the pool will work through in time,
   * `Promise.all` of 200 queries, say, is served, not shed.) Oldest of each priority first.
   */
  shed(now: number): void {
    const congestion = this.#congestion!;
    const cutoff = now - congestion.shedAfterMs;
    const msPerServe = this.#hooks.msPerServe();
    for (const front of this.fronts()) {
      let waiter: PoolWaiter<L> | undefined = front;
      while (waiter !== undefined && waiter.enqueuedAt <= cutoff) {
        const next = waiter.next as PoolWaiter<L> | undefined;
        // The others would be served first (an approximation: they may be in other priorities).
        if (waiter.deadline - now > (this.size - 1) * msPerServe) {
          waiter = next;
          continue;
        }
        this.remove(waiter);
        this.#hooks.shed(waiter, now - waiter.enqueuedAt);
        waiter = next;
      }
    }
    if (!this.#overloaded(now, msPerServe)) congestion.drained(this.size);
  }

  /** A waiter was served after waiting `waitedMs` from a pool at max: congestion starts when the queue stands and FIFO would make callers late. */
  served(waitedMs: number, now: number): void {
    const congestion = this.#congestion!;
    if (congestion.standing(waitedMs, now) && this.#overloaded(now, this.#hooks.msPerServe())) congestion.enter(this.size);
  }

  /**
   * Would FIFO leave callers late: does serving the whole queue at the pool's pace take
   * more than half the time the waiter with the nearest deadline has left? (A standing
   * queue that FIFO drains in time, 100 workers looping on 10 connections, say, is not
   * overload.)
   */
  #overloaded(now: number, msPerServe: number): boolean {
    return this.size * msPerServe >= (this.nextDeadline() - now) / 2;
  }

  /** Fail every waiter with the error `make` gives for it (close()). */
  failAll(make: () => unknown): void {
    for (const waiter of [...this]) {
      this.remove(waiter);
      this.fail(waiter, make());
    }
  }

  /**
   * Time out the waiters already past their deadline before a resource is handed to one:
   * when timers run late (a blocked event loop), a release that runs before the deadline
   * timer must not serve an acquire that has already expired.
   */
  expireOverdue(now: number): void {
    if (now < this.#deadlineAt) return;
    if (this.#deadlineTimer !== undefined) this.#clock.clearTimeout(this.#deadlineTimer);
    this.#onDeadline();
  }

  #watchAbort(waiter: PoolWaiter<L>, signal: AbortSignal): void {
    const onAbort = (): void => {
      if (!this.remove(waiter)) return;
      this.#hooks.aborted();
      this.fail(waiter, signal.reason);
    };
    waiter.extras!.onAbort = onAbort;
    signal.addEventListener('abort', onAbort, { once: true });
  }

  dispose(): void {
    if (this.#deadlineTimer !== undefined) this.#clock.clearTimeout(this.#deadlineTimer);
    this.#deadlineTimer = undefined;
    this.#deadlineAt = Infinity;
  }

  #armDeadline(at: number, now: number): void {
    if (this.#deadlineTimer !== undefined) this.#clock.clearTimeout(this.#deadlineTimer);
    this.#deadlineAt = at;
    this.#deadlineTimer = at === Infinity ? undefined : this.#clock.setTimeout(this.#onDeadline, Math.max(0, at - now));
  }

  readonly #onDeadline = (): void => {
    this.#deadlineTimer = undefined;
    this.#deadlineAt = Infinity;
    const now = this.preciseNow();
    const next = this.expire(now, this.#hooks.timedOut);
    if (next !== Infinity && next < this.#deadlineAt) this.#armDeadline(next, now);
  };
}
