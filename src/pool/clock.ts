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
   * Pool timers must not keep the process alive (`unref`), except the one `close()`
   * awaits: its caller is waiting for it, so it passes `keepAlive: true`.
   */
  setTimeout(callback: () => void, ms: number, keepAlive?: boolean): ClockTimer;
  /** Cancel a timer made by `setTimeout`; a timer that already fired or was cleared is ignored. */
  clearTimeout(timer: ClockTimer): void;
}

/** Opaque handle returned by {@link Clock.setTimeout}. */
export type ClockTimer = unknown;

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
  readonly #expire = (): void => {
    this.#fresh = false;
  };

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

  setTimeout(callback: () => void, ms: number, keepAlive = false): ClockTimer {
    const timer = setTimeout(callback, ms);
    return keepAlive ? timer : timer.unref();
  }

  clearTimeout(timer: ClockTimer): void {
    clearTimeout(timer as NodeJS.Timeout);
  }
}

export const systemClock = new SystemClock();


/** Sleep on `clock`, rejecting with `signal.reason` when `signal` aborts first. */
export function sleep(clock: Clock, ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = (): void => {
      clock.clearTimeout(timer);
      reject(signal.reason);
    };
    const timer = clock.setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}
