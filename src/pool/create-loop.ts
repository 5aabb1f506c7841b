/**
 * Making resources: how many creates to start (`max`, `maxConnecting`, and only for
 * callers that nothing already on its way will serve), each create's attempts (bounded by
 * createTimeoutMs, retried with backoff on the pool's clock), and storm control: while
 * creates fail, one attempt at a time probes the server and backs off, the breaker counts
 * the failures, the recovery probe watches for the server's return. A value that arrives
 * after its attempt was given up is destroyed, never leaked.
 */
import pRetry, { AbortError } from 'p-retry';
import type { AcquireQueue } from './acquire-queue.js';
import type { AdapterCalls } from './adapter-calls.js';
import type { CircuitBreaker } from './circuit-breaker.js';
import type { Clock, ClockTimer } from './clock.js';
import { kDeliver, kDestroyEntry, kPump, type Dispatcher } from './dispatcher.js';
import { CREATING, DESTROYED, DESTROYING, IDLE, RESETTING, type Entry, type EntryTable } from './entry.js';
import { CreateResourceError, CreateTimeoutError } from './errors.js';
import { channels } from './events.js';
import type { PoolLifecycle } from './lifecycle.js';
import type { PoolMetrics } from './metrics.js';
import type { ResolvedOptions } from './options.js';
import type { RecoveryProbe } from './recovery-probe.js';
import type { RoundTrips } from './round-trips.js';

/** The parts the create loop reads and reports to. */
export interface CreateLoopParts<T> {
  readonly options: ResolvedOptions<T>;
  readonly table: EntryTable<T>;
  readonly waiters: AcquireQueue<unknown>;
  readonly calls: AdapterCalls<T>;
  readonly trips: RoundTrips<T>;
  readonly breaker: CircuitBreaker;
  readonly probe: RecoveryProbe;
  readonly metrics: PoolMetrics;
  readonly life: PoolLifecycle<T>;
  readonly face: object;
  /** Aborted by close(): every attempt and backoff sleep ends. */
  readonly closeSignal: AbortSignal;
}

/** Carries a failed create attempt through p-retry, which only understands `Error`s. */
class AttemptFailure extends Error {
  constructor(
    readonly error: unknown,
    readonly fatal: boolean,
  ) {
    super('create attempt failed');
  }
}

export class CreateLoop<T> {
  readonly #o: ResolvedOptions<T>;
  readonly #clock: Clock;
  readonly #table: EntryTable<T>;
  readonly #calls: AdapterCalls<T>;
  readonly #breaker: CircuitBreaker;
  readonly #probe: RecoveryProbe;
  readonly #metrics: PoolMetrics;
  readonly #face: object;
  readonly #waiters: AcquireQueue<unknown>;
  readonly #trips: RoundTrips<T>;
  readonly #life: PoolLifecycle<T>;
  readonly #dispatcher: Dispatcher<T>;
  readonly #closeSignal: AbortSignal;

  lastError: unknown = undefined;
  /** Failed create attempts in a row since the last success (attempts that failed together count once). */
  consecutiveFailures = 0;
  /** Failed attempts so far; an attempt that started before the latest failure adds nothing to the streak. */
  #failureSeq = 0;
  #blockedUntil = 0;
  /** Like #blockedUntil, but after any failure, non-retryable ones too: creates for `min` alone wait for it. */
  #topUpBlockedUntil = 0;
  /** consecutiveFailures when the server last came back: the backoff grows again from there, from its start. */
  #backoffBase = 0;
  #backoffTimer: ClockTimer | undefined;
  /** Wake a create retry sleeping its backoff (the server came back). */
  readonly #retryWakers = new Set<() => void>();

  constructor(parts: CreateLoopParts<T>, dispatcher: Dispatcher<T>) {
    this.#o = parts.options;
    this.#clock = parts.options.clock;
    this.#table = parts.table;
    this.#calls = parts.calls;
    this.#breaker = parts.breaker;
    this.#probe = parts.probe;
    this.#metrics = parts.metrics;
    this.#face = parts.face;
    this.#closeSignal = parts.closeSignal;
    this.#waiters = parts.waiters;
    this.#trips = parts.trips;
    this.#life = parts.life;
    this.#dispatcher = dispatcher;
  }

  /** Resources already on their way to the queue (Hikari's elision): creating, pinged for a borrower, or resetting. */
  #onTheWay(): number {
    const counts = this.#table.counts;
    return counts[CREATING]! + this.#trips.borrowPings() + counts[RESETTING]!;
  }

  /** Start as many creates as are wanted and allowed now. */
  fill(): void {
    const o = this.#o;
    const life = this.#life;
    const counts = this.#table.counts;
    while (!life.closing && !life.draining) {
      const creating = counts[CREATING]!;
      const size = this.#table.size();
      if (size + creating >= o.max || creating >= o.maxConnecting) return;
      // Storm control: while creates fail, one attempt at a time probes the server (and
      // backs off); the others would only add load and failures. A success reopens the width.
      if (this.consecutiveFailures > 0 && creating > 0) return;
      // No create for waiters that resources already on their way will serve.
      const waiting = this.#waiters.size;
      if (waiting <= this.#onTheWay() && size + creating >= o.min) return;
      const now = this.#clock.now();
      // A caller waiting for a non-retryable error gets its one attempt at once; `min` alone backs off.
      const blockedUntil = waiting > this.#onTheWay() ? this.#blockedUntil : Math.max(this.#blockedUntil, this.#topUpBlockedUntil);
      if (now < blockedUntil) {
        this.#armBackoff(now, blockedUntil);
        return;
      }
      // Last: it turns an open breaker half-open, which must mean that a probe create starts now.
      if (!this.#breaker.allowsCreate(now)) return;
      const entry = this.#table.add(life.generation);
      this.#calls.track(this.#run(entry, this.#breaker.isHalfOpen));
    }
  }

  /** The probe saw the server return: end the backoff and create now. */
  serverBack(): void {
    this.#backoffBase = this.consecutiveFailures;
    this.#blockedUntil = 0;
    this.#topUpBlockedUntil = 0;
    if (this.#backoffTimer !== undefined) this.#clock.clearTimeout(this.#backoffTimer);
    this.#backoffTimer = undefined;
    for (const wake of [...this.#retryWakers]) wake();
  }

  dispose(): void {
    if (this.#backoffTimer !== undefined) this.#clock.clearTimeout(this.#backoffTimer);
    this.#backoffTimer = undefined;
  }

  async #run(entry: Entry<T>, probe: boolean): Promise<void> {
    const started = this.#clock.now();
    let attempts = 0;
    let gaveUp = false;
    try {
      const resource = await pRetry(
        (attempt) => {
          attempts = attempt;
          return this.#attempt(attempt, entry);
        },
        {
          // A probe is a single attempt: its result alone decides the breaker.
          retries: probe ? 0 : this.#o.retry.retries,
          // p-retry sleeps on the global timers; the backoff sleep happens in shouldRetry on the pool's clock.
          minTimeout: 0,
          maxTimeout: 0,
          shouldRetry: async ({ retriesConsumed }) => {
            const retry = await this.#backoffBeforeRetry(retriesConsumed);
            gaveUp = !retry;
            return retry;
          },
          signal: this.#closeSignal,
        },
      );
      this.#onCreated(entry, resource, started);
    } catch (error) {
      this.#table.remove(entry);
      this.#life.entryGone();
      if (this.#life.closing || !(error instanceof AttemptFailure)) return;
      if (error.fatal) {
        this.#failHead(new CreateResourceError('Creating a resource failed with a non-retryable error', error.error, attempts));
      } else if (!gaveUp && !probe) {
        this.#failHead(new CreateResourceError(`Creating a resource failed after ${attempts} attempts`, error.error, attempts));
      }
    } finally {
      this.#dispatcher[kPump]();
    }
  }

  /** A create that cannot succeed fails the acquire it was started for: the oldest waiter. */
  #failHead(error: CreateResourceError): void {
    const waiter = this.#waiters.shift();
    if (waiter === undefined) return;
    this.#metrics.rejectedCreate++;
    this.#waiters.fail(waiter, error);
  }

  /** One create attempt, bounded by createTimeoutMs; a value that arrives too late is destroyed, never leaked. */
  async #attempt(attempt: number, entry: Entry<T>): Promise<T> {
    const failuresBefore = this.#failureSeq;
    const startedAt = this.#clock.now();
    let made: T | undefined;
    // Deferred: the adapter calls it from inside a driver's event handler.
    const evict = (reason: 'broken' | 'invalidated' = 'broken'): void => {
      // Retired now, as invalidate() retires: a leased one is destroyed on return as 'invalidated'.
      if (reason === 'invalidated' && made !== undefined && entry.resource === made && entry.state !== CREATING && entry.state !== DESTROYING && entry.state !== DESTROYED) {
        entry.expiresAt = -Infinity;
      }
      queueMicrotask(() => this.#evictInBackground(entry, made, reason === 'invalidated' ? 'invalidated' : 'broken'));
    };
    const controller = new AbortController();
    const closeSignal = this.#closeSignal;
    const onClose = (): void => controller.abort(closeSignal.reason);
    closeSignal.addEventListener('abort', onClose, { once: true });
    const timeoutMs = this.#o.createTimeoutMs;
    let timer: ClockTimer | undefined;
    try {
      const resource = await new Promise<T>((resolve, reject) => {
        if (timeoutMs !== Infinity) {
          timer = this.#clock.setTimeout(() => {
            const error = new CreateTimeoutError(timeoutMs);
            controller.abort(error);
            reject(error);
          }, timeoutMs);
        }
        controller.signal.addEventListener('abort', () => reject(controller.signal.reason), { once: true });
        let created: Promise<T>;
        try {
          created = this.#calls.create({ signal: controller.signal, attempt, evict });
        } catch (error) {
          reject(error);
          return;
        }
        // Tracked until it settles, and a late value until it is destroyed: close() waits for
        // both, so that once it resolves no resource of the pool exists.
        this.#calls.track(
          Promise.resolve(created).then(
            (value) => (controller.signal.aborted ? this.#abandon(value) : resolve(value)),
            reject,
          ),
        );
      });
      if (resource === undefined || resource === null) {
        throw new AttemptFailure(new TypeError(`adapter.create() resolved no resource (got ${String(resource)})`), true);
      }
      made = resource;
      if (channels.create.hasSubscribers) channels.create.publish({ pool: this.#face, attempt, durationMs: this.#clock.now() - startedAt });
      return resource;
    } catch (caught) {
      const failure = caught instanceof AttemptFailure ? caught : new AttemptFailure(caught, this.#calls.isRetryable(caught) === false);
      if (channels.create.hasSubscribers) channels.create.publish({ pool: this.#face, attempt, durationMs: this.#clock.now() - startedAt, error: failure.error });
      if (!this.#life.closing) this.#onFailed(failure, failuresBefore === this.#failureSeq);
      throw failure.fatal ? new AbortError(failure) : failure;
    } finally {
      if (timer !== undefined) this.#clock.clearTimeout(timer);
      closeSignal.removeEventListener('abort', onClose);
    }
  }

  /**
   * `news`: no other attempt failed while this one ran. Attempts that were in flight
   * together when the server went away fail together; they are one piece of news, not
   * `maxConnecting` of them, so a brief outage does not trip the breaker at once.
   */
  #onFailed(failure: AttemptFailure, news: boolean): void {
    const now = this.#clock.now();
    this.#metrics.createFailed++;
    this.#failureSeq++;
    this.lastError = failure.error;
    if (news || this.consecutiveFailures === 0) this.consecutiveFailures++;
    const backoffUntil = now + this.#backoffDelay(this.#failureStreak());
    if (!failure.fatal) this.#blockedUntil = Math.max(this.#blockedUntil, backoffUntil);
    this.#topUpBlockedUntil = Math.max(this.#topUpBlockedUntil, backoffUntil);
    if (this.#waiters.size === 0) this.#calls.report(failure.error);
    this.#breaker.onCreateFailed(this.consecutiveFailures, failure.error, now);
    // A retryable failure may mean the server is unreachable: watch for its return.
    if (!failure.fatal) this.#probe.start();
    this.#life.settleWarmups(failure.error);
  }

  #onCreated(entry: Entry<T>, resource: T, started: number): void {
    const now = this.#clock.now();
    this.consecutiveFailures = 0;
    this.#backoffBase = 0;
    this.#blockedUntil = 0;
    this.#topUpBlockedUntil = 0;
    this.#breaker.onCreated();
    entry.resource = resource;
    entry.createdAt = now;
    entry.lastUsedAt = now;
    this.#metrics.created++;
    this.#metrics.createTime.record(now - started);
    this.#dispatcher[kDeliver](entry, now);
  }

  /** Sleep the backoff on the pool's clock; false when nobody needs the retry any more. */
  async #backoffBeforeRetry(retriesConsumed: number): Promise<boolean> {
    // One retrying create is enough while failing (storm control, see fill()).
    if (this.#life.closing || !this.#breaker.isClosed || this.#table.counts[CREATING]! > 1) return false;
    // The pool-wide streak, not this loop's own count: a loop started mid-outage must not back
    // off from scratch; but once the server came back, the backoff starts over.
    const delay = this.#backoffDelay(this.#backoffBase > 0 ? this.#failureStreak() : Math.max(retriesConsumed, this.#failureStreak()));
    if (!this.#stillWanted(this.#clock.now() + delay)) return false;
    await this.#sleepBackoff(delay);
    return !this.#life.closing && this.#breaker.isClosed && this.#stillWanted(this.#clock.now());
  }

  /** Failed creates in a row since the last success, or since the server came back (0 for the first). */
  #failureStreak(): number {
    return Math.max(0, this.consecutiveFailures - 1 - this.#backoffBase);
  }

  /** Sleep `ms` on the pool's clock; cut short by close() or by the server coming back. */
  #sleepBackoff(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const closeSignal = this.#closeSignal;
      const wake = (): void => {
        this.#clock.clearTimeout(timer);
        closeSignal.removeEventListener('abort', wake);
        this.#retryWakers.delete(wake);
        resolve();
      };
      const timer = this.#clock.setTimeout(wake, ms);
      if (closeSignal.aborted) return wake();
      closeSignal.addEventListener('abort', wake, { once: true });
      this.#retryWakers.add(wake);
    });
  }

  /**
   * p-retry's formula, min * factor^n, times [1, 2) when randomized, capped at max; except
   * that at the cap the jitter is kept: [max/2, max) (never below minTimeoutMs) instead of
   * exactly max, so that retries do not fall into lockstep once the backoff has grown.
   */
  #backoffDelay(retriesConsumed: number): number {
    const { minTimeoutMs, maxTimeoutMs, factor, randomize } = this.#o.retry;
    const delay = minTimeoutMs * factor ** retriesConsumed;
    if (!randomize) return Math.min(delay, maxTimeoutMs);
    const low = Math.min(delay, Math.max(minTimeoutMs, maxTimeoutMs / 2));
    return Math.min(low * (1 + Math.random()), maxTimeoutMs);
  }

  /** Is a create in flight still needed at time `at`: for `min`, or for a waiter whose deadline is later? */
  #stillWanted(at: number): boolean {
    if (this.#life.draining) return false;
    const creating = this.#table.counts[CREATING]!;
    if (this.#table.size() + creating <= this.#o.min) return true;
    // Others on the way: every resource on its way to the queue except this create itself.
    return this.#waiters.size > this.#onTheWay() - 1 && this.#waiters.latestDeadline() > at;
  }

  #armBackoff(now: number, until: number): void {
    if (this.#backoffTimer !== undefined) return;
    this.#backoffTimer = this.#clock.setTimeout(() => {
      this.#backoffTimer = undefined;
      this.#dispatcher[kPump]();
    }, Math.max(0, until - now));
  }

  /** An adapter reported that an idle resource died: destroy it now (a leased one is checked on release). */
  #evictInBackground(entry: Entry<T>, resource: T | undefined, reason: 'broken' | 'invalidated'): void {
    if (resource === undefined || entry.resource !== resource || entry.state !== IDLE || this.#life.closing) return;
    void this.#dispatcher[kDestroyEntry](entry, reason);
  }

  /** Destroy a resource that arrived after its attempt was given up (timeout or close). */
  #abandon(resource: T): Promise<void> | undefined {
    if (resource === undefined || resource === null) return undefined;
    return this.#calls.destroy(resource);
  }
}
