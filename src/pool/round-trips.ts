/**
 * The two round trips a resource makes to its server between leases: the ping (before a
 * borrow when it sat idle longer than pingIfIdleMs, or as a keepalive) and the reset when
 * it comes back. Each moves the entry into CHECKING or RESETTING for its duration and ends
 * by handing the resource back to the dispatcher, or destroying it.
 */
import type { AdapterCalls } from './adapter-calls.js';
import type { Clock } from './clock.js';
import { kDestroyEntry, kGiveBack, kPump, type Dispatcher, type PoolState } from './dispatcher.js';
import { CHECKING, RESETTING, type Entry, type EntryTable } from './entry.js';

export class RoundTrips<T> {
  readonly #clock: Clock;
  readonly #table: EntryTable<T>;
  readonly #calls: AdapterCalls<T>;
  readonly #state: PoolState;
  readonly #dispatcher: Dispatcher<T>;
  /** Keepalive pings in flight: unlike borrow-time pings, they are not on their way to a waiter. */
  #keepalives = 0;

  constructor(clock: Clock, table: EntryTable<T>, calls: AdapterCalls<T>, state: PoolState, dispatcher: Dispatcher<T>) {
    this.#clock = clock;
    this.#table = table;
    this.#calls = calls;
    this.#state = state;
    this.#dispatcher = dispatcher;
  }

  /** Borrow-time pings in flight: each ends by handing its resource to the head waiter. */
  borrowPings(): number {
    return this.#table.counts[CHECKING]! - this.#keepalives;
  }

  /** Ping an idle resource (already out of the idle stack, so nobody else can take it), bounded by `boundMs`. */
  ping(entry: Entry<T>, boundMs: number, keepalive: boolean): void {
    const dispatcher = this.#dispatcher;
    this.#table.transition(entry, CHECKING);
    if (keepalive) this.#keepalives++;
    const pinged = this.#calls.ping(entry.resource, boundMs);
    const task = (keepalive ? pinged.finally(() => this.#keepalives--) : pinged).then(
      () => {
        const now = this.#clock.now();
        entry.lastUsedAt = now;
        if (this.#state.closing) return dispatcher[kDestroyEntry](entry, 'closed');
        if (this.#calls.isBroken(entry.resource)) return dispatcher[kDestroyEntry](entry, 'broken');
        dispatcher[kGiveBack](entry, now);
        dispatcher[kPump]();
        return undefined;
      },
      (error: unknown) => {
        if (keepalive) this.#calls.report(error);
        return dispatcher[kDestroyEntry](entry, this.#state.closing ? 'closed' : 'pingFailed');
      },
    );
    this.#calls.track(task);
  }

  /** Reset a returned resource, bounded by resetTimeoutMs; tracked so that close() waits for it. */
  reset(entry: Entry<T>): Promise<void> {
    const task = this.#reset(entry);
    this.#calls.track(task);
    return task;
  }

  async #reset(entry: Entry<T>): Promise<void> {
    const dispatcher = this.#dispatcher;
    this.#table.transition(entry, RESETTING);
    try {
      await this.#calls.reset(entry.resource);
    } catch (error) {
      this.#calls.report(error);
      await dispatcher[kDestroyEntry](entry, 'resetFailed');
      return;
    }
    const now = this.#clock.now();
    if (this.#state.closing) await dispatcher[kDestroyEntry](entry, 'closed');
    else if (this.#calls.isBroken(entry.resource)) await dispatcher[kDestroyEntry](entry, 'broken');
    else {
      entry.lastUsedAt = now;
      dispatcher[kGiveBack](entry, now);
    }
  }
}
