import type { Clock } from '../../src/index.js';

interface Timer {
  readonly at: number;
  readonly seq: number;
  readonly callback: () => void;
}

/** Let every promise chain that is ready run to completion (a few event-loop turns). */
export async function flush(turns = 4): Promise<void> {
  for (let i = 0; i < turns; i++) await new Promise<void>((resolve) => setImmediate(resolve));
}

/**
 * Time that moves only when a test says so. Timers fire in order of due time (then
 * creation order), and the promise chains each one starts are flushed before the next
 * fires, so a test sees the pool exactly as it would be at each instant.
 */
export class VirtualClock implements Clock {
  #now = 0;
  #seq = 0;
  readonly #timers = new Map<number, Timer>();

  now(): number {
    return this.#now;
  }

  setTimeout(callback: () => void, ms: number): number {
    const id = ++this.#seq;
    this.#timers.set(id, { at: this.#now + Math.max(0, ms), seq: id, callback });
    return id;
  }

  clearTimeout(timer: unknown): void {
    this.#timers.delete(timer as number);
  }

  /** Timers not yet fired or cleared. */
  get pendingTimers(): number {
    return this.#timers.size;
  }

  /** Move time forward by `ms`, firing due timers one by one. */
  async advance(ms: number): Promise<void> {
    const target = this.#now + ms;
    await flush();
    for (;;) {
      let next: [number, Timer] | undefined;
      for (const entry of this.#timers) {
        if (entry[1].at <= target && (next === undefined || entry[1].at < next[1].at || (entry[1].at === next[1].at && entry[1].seq < next[1].seq))) {
          next = entry;
        }
      }
      if (next === undefined) break;
      this.#timers.delete(next[0]);
      this.#now = Math.max(this.#now, next[1].at);
      next[1].callback();
      await flush();
    }
    this.#now = target;
    await flush();
  }

  /** Advance in steps until `predicate` holds or `limitMs` passes; returns whether it held. */
  async advanceUntil(predicate: () => boolean, limitMs: number, stepMs = 1): Promise<boolean> {
    const end = this.#now + limitMs;
    while (!predicate()) {
      if (this.#now >= end) return false;
      await this.advance(stepMs);
    }
    return true;
  }

  /** Resolve after `ms` of virtual time. */
  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => this.setTimeout(resolve, ms));
  }
}
