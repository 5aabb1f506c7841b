/**
 * Background housekeeping on one timer, armed for the earliest thing due: idle resources
 * past idleTimeoutMs (down to `min`), resources past their lifetime, keepalive pings of
 * idle resources, leak reports for leases held past leakDetectionMs. Also the lifetime
 * itself: each new resource's expiry, spread so that resources created together do not
 * retire in one wave.
 */
import type { AdapterCalls } from './adapter-calls.js';
import type { Clock, ClockTimer } from './clock.js';
import { kDestroyEntry, kPump, type Dispatcher, type PoolState } from './dispatcher.js';
import { CHECKING, IDLE, LEASED, RESETTING, expiredReason, type Entry, type EntryTable } from './entry.js';
import { LeakDetectedError } from './errors.js';
import { channels } from './events.js';
import type { ResolvedOptions } from './options.js';
import type { RoundTrips } from './round-trips.js';

/** How much earlier than maxLifetimeMs a resource may retire (F26: batches must not retire in one wave). */
const LIFETIME_SPREAD = 0.4;

export class Maintenance<T> {
  readonly #o: ResolvedOptions<T>;
  readonly #clock: Clock;
  readonly #table: EntryTable<T>;
  readonly #calls: AdapterCalls<T>;
  readonly #state: PoolState;
  readonly #dispatcher: Dispatcher<T>;
  readonly #trips: RoundTrips<T>;
  readonly #face: object;
  readonly leakDetection: boolean;
  #timer: ClockTimer | undefined;
  #at = Infinity;

  constructor(
    parts: { options: ResolvedOptions<T>; table: EntryTable<T>; calls: AdapterCalls<T>; trips: RoundTrips<T>; face: object },
    state: PoolState,
    dispatcher: Dispatcher<T>,
  ) {
    const options = parts.options;
    this.#o = options;
    this.#clock = options.clock;
    this.#table = parts.table;
    this.#calls = parts.calls;
    this.#trips = parts.trips;
    this.#face = parts.face;
    this.#state = state;
    this.#dispatcher = dispatcher;
    this.leakDetection = options.leakDetectionMs !== Infinity;
  }

  /** Make sure the timer fires by `at`. */
  schedule(at: number, now: number): void {
    if (at >= this.#at || at === Infinity || this.#state.closing) return;
    if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer);
    this.#at = at;
    this.#timer = this.#clock.setTimeout(this.#run, Math.max(0, at - now));
  }

  /** An entry just went idle: wake up when it is due for anything. */
  scheduleIdle(entry: Entry<T>, now: number): void {
    this.schedule(this.#nextDueForIdle(entry, now), now);
  }

  dispose(): void {
    if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#at = Infinity;
  }

  /**
   * A new resource's expiry: up to LIFETIME_SPREAD of maxLifetimeMs early, at the point of
   * that window farthest from the expiries of the resources alive now, so that resources
   * created together (a burst, `min` at start) retire one by one instead of in one wave.
   */
  expiryFor(now: number): number {
    const lifetime = this.#o.maxLifetimeMs;
    if (lifetime === Infinity) return Infinity;
    const latest = now + lifetime;
    const earliest = latest - LIFETIME_SPREAD * lifetime;
    let count = 0;
    const others = new Float64Array(this.#table.all.size);
    for (const entry of this.#table.all) {
      const state = entry.state;
      if ((state === IDLE || state === LEASED || state === CHECKING || state === RESETTING) && Number.isFinite(entry.expiresAt)) others[count++] = entry.expiresAt;
    }
    if (count === 0) return earliest + (latest - earliest) * Math.random();
    // Sorted, the farthest point from every expiry is an end of the window or the middle of
    // the widest gap between neighbours: O(n log n) per create (a scan of every pair made
    // filling max 2,000 take 14 s).
    const sorted = others.subarray(0, count).sort();
    let best = latest;
    let bestDistance = nearest(sorted, latest);
    const startDistance = nearest(sorted, earliest);
    if (startDistance > bestDistance) {
      best = earliest;
      bestDistance = startDistance;
    }
    for (let i = 1; i < count; i++) {
      const mid = (sorted[i - 1]! + sorted[i]!) / 2;
      const distance = (sorted[i]! - sorted[i - 1]!) / 2;
      if (mid > earliest && mid < latest && distance > bestDistance) {
        best = mid;
        bestDistance = distance;
      }
    }
    return best;
  }

  #nextDueForIdle(entry: Entry<T>, now: number): number {
    const o = this.#o;
    let due = entry.expiresAt;
    // An idle deadline already past means the resource was kept for `min`: no reason to wake up for it.
    const idleDue = entry.lastUsedAt + o.idleTimeoutMs;
    if (idleDue > now) due = Math.min(due, idleDue);
    if (o.keepaliveMs !== Infinity && this.#calls.canPing) due = Math.min(due, entry.lastUsedAt + o.keepaliveMs);
    return due;
  }

  readonly #run = (): void => {
    const at = this.#at;
    this.#timer = undefined;
    this.#at = Infinity;
    if (this.#state.closing) return;
    const o = this.#o;
    const dispatcher = this.#dispatcher;
    const table = this.#table;
    // Node starts a timer from the event loop's cached time, which lags the clock: it can fire
    // a fraction of a millisecond before `at` by the clock. What was due at `at` is due now;
    // re-arming instead would retire it a whole timer tick late (after a caller's own timer
    // set for just after it: pg-pool's idle-timeout test).
    const now = Math.max(this.#clock.now(), at);
    let next = Infinity;
    for (const entry of [...table.idle]) {
      if (this.#calls.isBroken(entry.resource)) void dispatcher[kDestroyEntry](entry, 'broken');
      else if (now >= entry.expiresAt) void dispatcher[kDestroyEntry](entry, expiredReason(entry));
      else if (now >= entry.lastUsedAt + o.idleTimeoutMs && table.size() > o.min) void dispatcher[kDestroyEntry](entry, 'idle');
      else if (this.#calls.canPing && now >= entry.lastUsedAt + o.keepaliveMs) {
        table.idle.splice(table.idle.indexOf(entry), 1);
        this.#trips.ping(entry, o.pingTimeoutMs, true);
      } else next = Math.min(next, this.#nextDueForIdle(entry, now));
    }
    if (this.leakDetection) next = Math.min(next, this.#reportLeaks(now));
    dispatcher[kPump]();
    this.schedule(next, now);
  };

  /** Report each lease held past leakDetectionMs, once; returns when the next one is due. */
  #reportLeaks(now: number): number {
    const limit = this.#o.leakDetectionMs;
    let next = Infinity;
    for (const entry of this.#table.all) {
      const lease = entry.lease;
      if (lease === undefined || lease.leakReported) continue;
      // Compared as scheduled (acquiredAt + limit), not as a difference: in floating point they can disagree.
      if (now >= lease.acquiredAt + limit) {
        lease.leakReported = true;
        const error = new LeakDetectedError(now - lease.acquiredAt, lease.stack);
        if (channels.leak.hasSubscribers) channels.leak.publish({ pool: this.#face, error });
        this.#calls.report(error);
      } else next = Math.min(next, lease.acquiredAt + limit);
    }
    return next;
  }
}

/** Distance from `at` to the nearest value of the ascending `sorted` (non-empty), by binary search. */
function nearest(sorted: Float64Array, at: number): number {
  let low = 0;
  let high = sorted.length - 1;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if (sorted[middle]! < at) low = middle + 1;
    else high = middle;
  }
  const right = Math.abs(sorted[low]! - at);
  return low > 0 ? Math.min(right, Math.abs(at - sorted[low - 1]!)) : right;
}
