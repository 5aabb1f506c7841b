/**
 * The dispatcher, the centre of the pool: acquire (a fast path for an idle resource, else
 * the queue), `[kPump]` (the one place that matches waiters with resources and starts
 * creates), the hand-off of a resource to a waiter or to the idle stack, release and
 * destroy. Everything else is a part named for what it does, made and wired in parts.ts;
 * docs/ARCHITECTURE.md is the map.
 */
import { captureResolvers, PoolWaiter, type AcquireQueue, type WaiterExtras } from './acquire-queue.js';
import type { AdapterCalls } from './adapter-calls.js';
import type { DestroyReason, Lease, Pool, PoolHealth, PoolStats, PoolWrapping } from './api.js';
import type { CircuitBreaker } from './circuit-breaker.js';
import type { Clock } from './clock.js';
import type { CreateLoop } from './create-loop.js';
import { CREATING, DESTROYING, IDLE, LEASED, expiredReason, type Entry, type EntryTable } from './entry.js';
import { PoolClosedError, PoolQueueFullError } from './errors.js';
import { channels } from './events.js';
import { kDestroy, kRelease, PoolLease, type LeaseOwner } from './lease.js';
import type { PoolLifecycle } from './lifecycle.js';
import type { Maintenance } from './maintenance.js';
import { healthOf, type PoolMetrics, type PoolView } from './metrics.js';
import { checkAcquireOptions, resolveOptions, type AcquireOptions, type PoolOptions, type ResolvedOptions } from './options.js';
import { kDeliver, kDestroyEntry, kGiveBack, kPump, type Dispatcher } from './dispatcher.js';
import { assemble } from './parts.js';
import type { Congestion } from './congestion.js';
import type { RoundTrips } from './round-trips.js';
import { withConnection } from './with-connection.js';

export type { Lease, Pool, PoolHealth, PoolStats, DestroyReason, CircuitState, HealthStatus, PoolWrapping } from './api.js';

const RESOLVED: Promise<void> = Promise.resolve();

/**
 * Make a pool. Options are validated here, once: a bad value or an unknown key throws
 * `InvalidPoolOptionError`. With `min > 0`, creating `min` resources starts at once in the
 * background (`warmup()` waits for them). An adapter that wraps the pool in its own class
 * passes `{ face }`, so that events name the object its users hold.
 */
export function createPool<T>(options: PoolOptions<T>, wrapping?: PoolWrapping<T>): Pool<T> {
  return new PoolImpl(resolveOptions(options), wrapping?.face);
}

class PoolImpl<T> implements Pool<T>, LeaseOwner<T>, Dispatcher<T> {
  readonly #o: ResolvedOptions<T>;
  readonly #clock: Clock;
  /** Ping on borrow when idle longer than this; -1 for `pingIfIdleMs: 0`, which pings every borrow. */
  readonly #pingAfterMs: number;
  // Read on every borrow and return: kept here rather than behind the part that owns them.
  readonly #canPing: boolean;
  readonly #canReset: boolean;
  readonly #leakDetection: boolean;
  /** The pool object users hold, for event payloads (a wrapper may stand in for this one). */
  readonly #face: Pool<T>;
  // The parts (parts.ts), each held directly: the hot path reads no further than one field.
  readonly #table: EntryTable<T>;
  readonly #idle: Entry<T>[];
  readonly #counts: number[];
  readonly #waiters: AcquireQueue<PoolLease<T>>;
  readonly #calls: AdapterCalls<T>;
  readonly #metrics: PoolMetrics;
  readonly #breaker: CircuitBreaker;
  readonly #creates: CreateLoop<T>;
  readonly #maintenance: Maintenance<T>;
  readonly #life: PoolLifecycle<T>;
  readonly #abandoned: AbortSignal;
  readonly #view: () => PoolView;
  readonly #trips: RoundTrips<T>;
  readonly #congestion: Congestion | undefined;
  #pumping = false;
  #pumpAgain = false;

  constructor(options: ResolvedOptions<T>, face: Pool<T> | undefined) {
    this.#o = options;
    this.#clock = options.clock;
    this.#pingAfterMs = options.pingIfIdleMs === 0 ? -1 : options.pingIfIdleMs;
    this.#face = face ?? this;
    const parts = assemble<T, PoolLease<T>>(options, this.#face, this);
    ({ table: this.#table, waiters: this.#waiters, calls: this.#calls, metrics: this.#metrics, breaker: this.#breaker, creates: this.#creates } = parts);
    ({ maintenance: this.#maintenance, life: this.#life, trips: this.#trips, congestion: this.#congestion, view: this.#view } = parts);
    this.#abandoned = parts.abandoned.signal;
    this.#idle = this.#table.idle;
    this.#counts = this.#table.counts;
    this.#canPing = this.#calls.canPing;
    this.#canReset = this.#calls.canReset;
    this.#leakDetection = this.#maintenance.leakDetection;
    if (options.min > 0) this[kPump]();
  }

  get closed(): boolean {
    return this.#life.closing;
  }

  get draining(): boolean {
    return this.#life.draining;
  }

  // ---------------------------------------------------------------- acquire

  acquire(options?: AcquireOptions): Promise<Lease<T>> {
    if (channels.acquireStart.hasSubscribers) channels.acquireStart.publish({ pool: this.#face });
    // Fast path: no options, nobody queued, a healthy idle resource. No timer, no clock read beyond the cached one.
    if (options === undefined && this.#waiters.size === 0 && !this.#life.closing) {
      const lease = this.#takeIdle(undefined);
      if (lease !== undefined) return Promise.resolve(lease);
    }
    return this.#acquireSlow(options);
  }

  #acquireSlow(options: AcquireOptions | undefined): Promise<Lease<T>> {
    const m = this.#metrics;
    let timeoutMs = this.#o.acquireTimeoutMs;
    let priority = 0;
    let signal: AbortSignal | undefined;
    if (options !== undefined) {
      const invalid = checkAcquireOptions(options);
      if (invalid !== undefined) return this.#refuse(invalid);
      signal = options.signal;
      timeoutMs = options.timeoutMs ?? timeoutMs;
      priority = options.priority ?? 0;
      if (signal?.aborted) {
        m.aborted++;
        return this.#refuse(signal.reason);
      }
    }
    if (this.#life.closing) {
      m.rejectedClosed++;
      return this.#refuse(new PoolClosedError());
    }
    const stack = this.#leakDetection ? new Error('acquired here').stack : undefined;
    if (this.#waiters.size === 0) {
      const lease = this.#takeIdle(stack);
      if (lease !== undefined) return Promise.resolve(lease);
    }
    // maxWaiting bounds callers queued for a resource, not those a create (running or possible) will serve.
    if (this.#o.maxWaiting !== Infinity && this.#waiters.size - (this.#o.max - this.#table.size()) >= this.#o.maxWaiting) {
      m.rejectedQueueFull++;
      return this.#refuse(new PoolQueueFullError(this.#o.maxWaiting));
    }
    const now = this.#waiters.preciseNow();
    if (this.#congestion?.congested === true) this.#waiters.shed(now);
    if (!this.#breaker.isClosed && this.#waiters.size >= this.#breaker.coverage(now)) {
      m.rejectedCircuit++;
      return this.#refuse(this.#breaker.error(this.#creates.lastError, now));
    }
    const extras: WaiterExtras | undefined = signal === undefined && stack === undefined ? undefined : { signal, stack, onAbort: undefined };
    const promise = new Promise<PoolLease<T>>(captureResolvers);
    const waiter = new PoolWaiter<PoolLease<T>>(now, timeoutMs, now + timeoutMs, extras);
    this.#waiters.push(waiter, priority);
    this.#waiters.admitted(waiter, now);
    // Saturated (the common case under load): nothing idle and no room to create, so nothing for the pump to do.
    if (this.#idle.length !== 0 || this.#table.size() + this.#counts[CREATING]! < this.#o.max || !this.#breaker.isClosed) this[kPump]();
    return promise;
  }

  /** Pop idle resources until one passes the borrow checks; leaves one that needs a ping for the pump. */
  #takeIdle(stack: string | undefined): PoolLease<T> | undefined {
    let entry: Entry<T> | undefined;
    while ((entry = this.#idle.pop()) !== undefined) {
      const now = this.#clock.now();
      if (this.#calls.isBroken(entry.resource)) {
        this[kDestroyEntry](entry, 'broken');
      } else if (now >= entry.expiresAt) {
        this[kDestroyEntry](entry, expiredReason(entry));
      } else if (this.#canPing && now - entry.lastUsedAt > this.#pingAfterMs) {
        this.#idle.push(entry);
        return undefined;
      } else {
        this.#table.transition(entry, LEASED);
        this.#metrics.acquired++;
        this.#metrics.waitTime.recordZero();
        if (channels.acquireEnd.hasSubscribers) channels.acquireEnd.publish({ pool: this.#face, waitMs: 0 });
        return this.#lease(entry, now, stack);
      }
    }
    return undefined;
  }

  #lease(entry: Entry<T>, now: number, stack: string | undefined): PoolLease<T> {
    const lease = (entry.lease = new PoolLease(this, entry, now));
    if (++entry.uses >= this.#o.maxUses) [entry.usedUp, entry.expiresAt] = [true, -Infinity];
    if (this.#leakDetection) {
      lease.stack = stack ?? new Error('acquired here').stack;
      this.#maintenance.schedule(now + this.#o.leakDetectionMs, now);
    }
    return lease;
  }

  /** Hand `entry` to `waiter`, which was already removed from the queue. */
  #serve(waiter: PoolWaiter<PoolLease<T>>, entry: Entry<T>, now: number): void {
    if (entry.state !== LEASED) this.#table.transition(entry, LEASED);
    const waitMs = now - waiter.enqueuedAt;
    const extras = waiter.extras;
    if (extras?.onAbort !== undefined) extras.signal!.removeEventListener('abort', extras.onAbort);
    this.#metrics.acquired++;
    this.#metrics.waitTime.record(waitMs);
    if (channels.acquireEnd.hasSubscribers) channels.acquireEnd.publish({ pool: this.#face, waitMs });
    waiter.resolve(this.#lease(entry, now, extras?.stack));
    // Only a pool at max can be overloaded: a wait for creates (a cold start, an outage) is not congestion.
    if (this.#congestion !== undefined && this.#table.size() >= this.#o.max) this.#waiters.served(waitMs, now);
    // The last waiter served lets the process go (process-hold.ts) and ends congestion.
    if (this.#waiters.size === 0) this.#waiters.emptied();
  }

  /** An acquire refused before it was queued. */
  #refuse(error: unknown): Promise<never> {
    if (channels.acquireEnd.hasSubscribers) channels.acquireEnd.publish({ pool: this.#face, waitMs: 0, error });
    return Promise.reject(error);
  }

  withConnection<R>(fn: (resource: T, signal: AbortSignal) => Promise<R> | R, options?: AcquireOptions): Promise<R> {
    return withConnection(this, this.#calls, this.#abandoned, fn, options);
  }

  // ---------------------------------------------------------------- release

  /** @internal */
  [kRelease](lease: PoolLease<T>, entry: Entry<T>): Promise<void> {
    const now = this.#clock.now();
    this.#metrics.leaseTime.record(now - lease.acquiredAt);
    if (channels.release.hasSubscribers) channels.release.publish({ pool: this.#face, leaseMs: now - lease.acquiredAt, destroyed: false });
    entry.lease = undefined;
    if (this.#life.closing) {
      this[kDestroyEntry](entry, 'closed');
    } else if (this.#life.draining) {
      this[kDestroyEntry](entry, 'drained');
    } else if (this.#calls.isBroken(entry.resource)) {
      this[kDestroyEntry](entry, 'broken');
    } else if (now >= entry.expiresAt) {
      this[kDestroyEntry](entry, expiredReason(entry));
    } else if (this.#canReset) {
      return this.#trips.reset(entry);
    } else {
      entry.lastUsedAt = now;
      this[kGiveBack](entry, now);
    }
    return RESOLVED;
  }

  /** @internal */
  [kDestroy](lease: PoolLease<T>, entry: Entry<T>, reason: unknown): Promise<void> {
    const leaseMs = this.#clock.now() - lease.acquiredAt;
    this.#metrics.leaseTime.record(leaseMs);
    if (channels.release.hasSubscribers) channels.release.publish({ pool: this.#face, leaseMs, destroyed: true });
    entry.lease = undefined;
    // A reason that says the resource is dead is a breakage; anything else is the user's choice.
    return this[kDestroyEntry](entry, reason !== undefined && this.#calls.isFatal(reason, entry.resource) ? 'broken' : 'user');
  }

  /** A healthy resource becomes available: the next waiter gets it, or it goes idle. */
  [kGiveBack](entry: Entry<T>, now: number): void {
    if (this.#life.draining || now >= entry.expiresAt) {
      this[kDestroyEntry](entry, this.#life.draining ? 'drained' : expiredReason(entry));
      return;
    }
    this.#waiters.expireOverdue(now);
    if (this.#waiters.size !== 0) {
      const waiter = this.#nextWaiter(now);
      if (waiter !== undefined) return this.#serve(waiter, entry, now);
    }
    this.#table.transition(entry, IDLE);
    this.#idle.push(entry);
    this.#maintenance.scheduleIdle(entry, now);
  }

  /** A create succeeded: give the resource its lifetime and hand it out (or retire it, if the pool moved on). */
  [kDeliver](entry: Entry<T>, now: number): void {
    entry.expiresAt = this.#maintenance.expiryFor(now);
    if (this.#life.closing) {
      void this[kDestroyEntry](entry, 'closed');
      return;
    }
    if (entry.generation !== this.#life.generation) entry.expiresAt = -Infinity;
    this[kGiveBack](entry, now);
    this.#life.created();
  }

  // ---------------------------------------------------------------- the dispatcher

  /**
   * The one place that matches waiters with resources and decides to create: called
   * after anything that changes supply or demand. Re-entrant calls are folded into the
   * running one.
   */
  [kPump](): void {
    if (this.#pumping) {
      this.#pumpAgain = true;
      return;
    }
    this.#pumping = true;
    try {
      do {
        this.#pumpAgain = false;
        this.#serveFromIdle();
        if (!this.#breaker.isClosed) this.#breaker.shedUncovered(this.#waiters);
        this.#creates.fill();
      } while (this.#pumpAgain);
    } finally {
      this.#pumping = false;
    }
  }

  /** The oldest waiter of the highest priority; while congested (congestion.ts), the newest, after shedding. */
  #nextWaiter(now: number): PoolWaiter<PoolLease<T>> | undefined {
    const congestion = this.#congestion;
    if (congestion === undefined || !congestion.congested) return this.#waiters.shift();
    this.#waiters.shed(now);
    return congestion.congested ? this.#waiters.shiftNewest() : this.#waiters.shift();
  }

  #serveFromIdle(): void {
    while (this.#waiters.size > this.#trips.borrowPings() && this.#idle.length > 0) {
      const entry = this.#idle.pop()!;
      const now = this.#clock.now();
      if (this.#calls.isBroken(entry.resource)) this[kDestroyEntry](entry, 'broken');
      else if (now >= entry.expiresAt) this[kDestroyEntry](entry, expiredReason(entry));
      else if (this.#canPing && now - entry.lastUsedAt > this.#pingAfterMs) {
        const head = this.#congestion?.congested === true ? this.#waiters.peekNewest()! : this.#waiters.peek()!;
        this.#trips.ping(entry, Math.min(this.#o.pingTimeoutMs, Math.max(0, head.deadline - now)), false);
      } else {
        const waiter = this.#nextWaiter(now);
        if (waiter !== undefined) this.#serve(waiter, entry, now);
        else this.#idle.push(entry); // every waiter was shed: the loop ends
      }
    }
  }

  /** Free the slot now and close the resource in the background, bounded by destroyTimeoutMs. */
  [kDestroyEntry](entry: Entry<T>, reason: DestroyReason): Promise<void> {
    if (entry.state === IDLE) this.#table.unidle(entry);
    this.#table.transition(entry, DESTROYING);
    this.#metrics.countDestroy(reason);
    if (channels.destroy.hasSubscribers) channels.destroy.publish({ pool: this.#face, reason });
    const lease = entry.lease;
    entry.lease = undefined;
    lease?.revoke();
    const task = this.#calls.destroy(entry.resource).finally(() => {
      this.#table.remove(entry);
      this.#life.entryGone();
    });
    this.#calls.track(task);
    if (this.#life.closing) this.#life.destroyedWhileClosing();
    else this[kPump]();
    return task;
  }

  // ---------------------------------------------------------------- life, stats, health

  drain(): Promise<void> {
    return this.#life.drain();
  }

  resume(): void {
    this.#life.resume();
  }

  invalidate(): void {
    this.#life.invalidate();
  }

  warmup(): Promise<void> {
    return this.#life.warmup();
  }

  close(options?: { timeoutMs?: number }): Promise<void> {
    return this.#life.close(options);
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  stats(): PoolStats {
    return this.#metrics.stats(this.#view());
  }

  health(): PoolHealth {
    return healthOf(this.#view());
  }
}
