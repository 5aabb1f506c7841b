/**
 * Adaptive queueing under overload (CoDel and adaptive LIFO, after Facebook's "Fail at
 * Scale", ACM Queue 2015). With a FIFO queue, once arrivals exceed capacity every caller
 * waits nearly its whole deadline before it is served, so nearly every served request
 * finishes late: the database works at full speed and the service delivers almost
 * nothing. So the pool watches the queueing delay of the waiters it serves: once it has
 * stayed above `targetMs` for a whole `intervalMs` (CoDel's test: not a burst, a standing
 * queue), the pool is congested. While congested the dispatcher serves the newest waiter
 * of the highest priority first (served at once, it finishes in time), and the acquire
 * queue fails waiters that have waited `shedAfterMs` and cannot be served before their
 * deadline at the pool's pace at once with PoolOverloadedError, instead of letting them
 * wait out their deadline. When the queue empties, or shrinks so far that FIFO would serve
 * it well within the oldest deadline, FIFO returns.
 */
import { channels } from './events.js';
import { duration, rejectUnknownKeys } from './validate.js';
import { InvalidPoolOptionError } from './errors.js';

/** `adaptive`: FIFO until the pool is congested, then newest first and shedding; `fifo`: strict arrival order always. */
export type QueuePolicy = 'adaptive' | 'fifo';

/** When the pool counts as congested, and what it does then (with `queuePolicy: 'adaptive'`). */
export interface CongestionOptions {
  /** The queueing delay the pool aims to stay under. @default 10 */
  readonly targetMs?: number;
  /** How long the delay of every waiter served must stay above `targetMs` for the pool to count as congested. @default 100 */
  readonly intervalMs?: number;
  /**
   * While congested, an acquire that has waited this long fails at once with
   * `PoolOverloadedError` (newest callers are served first, so it would most likely wait
   * out its deadline). Raise it for pools whose leases last long. @default 50
   */
  readonly shedAfterMs?: number;
}

const CONGESTION_KEYS = new Set(['targetMs', 'intervalMs', 'shedAfterMs']);

/** Validated congestion settings, or undefined for `queuePolicy: 'fifo'`. */
export function resolveCongestion(policy: unknown, options: CongestionOptions | undefined): Required<CongestionOptions> | undefined {
  if (policy !== undefined && policy !== 'adaptive' && policy !== 'fifo') {
    throw InvalidPoolOptionError.expected('queuePolicy', "'adaptive' or 'fifo'", policy);
  }
  if (options !== undefined && (typeof options !== 'object' || options === null)) {
    throw InvalidPoolOptionError.expected('congestion', 'an object', options);
  }
  const given = options ?? {};
  rejectUnknownKeys('congestion.', given, CONGESTION_KEYS);
  const resolved = {
    targetMs: duration('congestion.targetMs', given.targetMs, 10, false, false),
    intervalMs: duration('congestion.intervalMs', given.intervalMs, 100, false, false),
    shedAfterMs: duration('congestion.shedAfterMs', given.shedAfterMs, 50, false, true),
  };
  return policy === 'fifo' ? undefined : resolved;
}

export class Congestion {
  /** Serving newest first and shedding. */
  congested = false;
  readonly shedAfterMs: number;
  readonly #targetMs: number;
  readonly #intervalMs: number;
  readonly #face: object;
  /** When the delay first went above target without coming back under (CoDel's first_above_time); -1 while under. */
  #aboveSince = -1;

  constructor(options: Required<CongestionOptions>, face: object) {
    this.#targetMs = options.targetMs;
    this.#intervalMs = options.intervalMs;
    this.shedAfterMs = options.shedAfterMs;
    this.#face = face;
  }

  /**
   * A waiter was served after waiting `waitedMs`: true when every wait has stayed above the
   * target for a whole interval (the queue decides whether that is overload: see enter()).
   */
  standing(waitedMs: number, now: number): boolean {
    if (this.congested) return false;
    if (waitedMs < this.#targetMs) {
      this.#aboveSince = -1;
      return false;
    }
    if (this.#aboveSince < 0) this.#aboveSince = now;
    return now - this.#aboveSince >= this.#intervalMs;
  }

  enter(waiting: number): void {
    this.congested = true;
    if (channels.congestion.hasSubscribers) channels.congestion.publish({ pool: this.#face, congested: true, waiting });
  }

  /**
   * The queue emptied, or shrank so far that FIFO serves every waiter in time again (a
   * hiccup's backlog at moderate load: newest-first would starve its oldest waiters).
   */
  drained(waiting = 0): void {
    this.#aboveSince = -1;
    if (!this.congested) return;
    this.congested = false;
    if (channels.congestion.hasSubscribers) channels.congestion.publish({ pool: this.#face, congested: false, waiting });
  }
}
