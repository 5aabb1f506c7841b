import { performance } from 'node:perf_hooks';

/**
 * The pool's only source of time. Tests inject a virtual clock; production uses the
 * system clock (`performance.now()` and `setTimeout`). Times are monotonic milliseconds, never wall-clock, so NTP steps
 * and `Date` jumps change nothing.
 */
export interface Clock {
  /** Monotonic time in milliseconds. */
  now(): number;
  /**
   * Pool timers must not keep the process alive (`unref`): the pool holds the process
   * itself, and only while a caller awaits it.
   */
  setTimeout(callback: () => void, ms: number): ClockTimer;
  /** Cancel a timer made by `setTimeout`; a timer that already fired or was cleared is ignored. */
  clearTimeout(timer: ClockTimer): void;
}

/** Opaque handle returned by {@link Clock.setTimeout}. */
export type ClockTimer = unknown;

/** Node fires any timer above 2^31-1 ms after 1 ms (with a warning). */
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * Reading the monotonic clock costs ~50 ns, as much as a whole acquire+release, so the
 * system clock caches its reading. The cache is refreshed every 16 reads and expires at
 * the end of the event-loop turn (one `setImmediate` per turn, not per operation). That
 * is precise enough for bookkeeping (lease and idle times, expiry); what must never fire
 * early — an acquire's deadline — starts from `precise()`.
 */
export class SystemClock implements Clock {
  #cached = 0;
  #budget = 0;
  #fresh = false;
  readonly #maxTimerMs: number;
  readonly #expire = (): void => {
    this.#fresh = false;
  };

  /** @param maxTimerMs the longest single Node timer (tests lower it to exercise chaining). */
  constructor(maxTimerMs = MAX_TIMER_MS) {
    this.#maxTimerMs = maxTimerMs;
  }

  now(): number {
    if (this.#fresh && --this.#budget > 0) return this.#cached;
    return this.precise();
  }

  /** A fresh reading, bypassing the cache. */
  precise(): number {
    this.#cached = performance.now();
    this.#budget = 16;
    if (!this.#fresh) {
      this.#fresh = true;
      setImmediate(this.#expire).unref();
    }
    return this.#cached;
  }

  setTimeout(callback: () => void, ms: number): ClockTimer {
    if (ms <= this.#maxTimerMs) return setTimeout(callback, ms).unref();
    return new LongTimer(callback, performance.now() + ms, this.#maxTimerMs);
  }

  clearTimeout(timer: ClockTimer): void {
    if (timer instanceof LongTimer) timer.clear();
    else clearTimeout(timer as NodeJS.Timeout);
  }
}

/**
 * A timer longer than one Node timer can be: a chain of timers, each re-armed for what is
 * left, so a 30-day `close({ timeoutMs })` waits 30 days instead of 1 ms. `Infinity` never fires.
 */
class LongTimer {
  #timer: NodeJS.Timeout | undefined;
  readonly #arm = (): void => {
    const left = this.due - performance.now();
    this.#timer = left > this.maxTimerMs ? setTimeout(this.#arm, this.maxTimerMs) : setTimeout(this.callback, Math.max(0, left));
    this.#timer.unref();
  };

  constructor(
    readonly callback: () => void,
    readonly due: number,
    readonly maxTimerMs: number,
  ) {
    if (due !== Infinity) this.#arm();
  }

  clear(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}

export const systemClock = new SystemClock();
