/**
 * One pooled resource's entry (HikariCP's PoolEntry) and the table of all of them. Each
 * entry has exactly one state; it changes only in {@link EntryTable.transition}, which
 * refuses a move the state machine below does not allow and keeps the per-state counts
 * every gauge is derived from. The idle stack lives here too: it is the set of IDLE
 * entries, in the order they came back (the last one is handed out first).
 */
import type { DestroyReason } from './api.js';
import type { Lease } from './api.js';
import { HOLD_RESETS, type ProcessHold } from './process-hold.js';

export const CREATING = 0;
export const IDLE = 1;
export const LEASED = 2;
export const CHECKING = 3;
export const RESETTING = 4;
export const DESTROYING = 5;
export const DESTROYED = 6;
export type State = 0 | 1 | 2 | 3 | 4 | 5 | 6;

const STATE_NAMES = ['creating', 'idle', 'leased', 'checking', 'resetting', 'destroying', 'destroyed'] as const;
const bit = (...states: State[]): number => states.reduce<number>((mask, s) => mask | (1 << s), 0);
const ALLOWED: readonly number[] = [
  /* creating   */ bit(IDLE, LEASED, DESTROYING, DESTROYED),
  /* idle       */ bit(LEASED, CHECKING, DESTROYING),
  /* leased     */ bit(IDLE, RESETTING, DESTROYING),
  /* checking   */ bit(IDLE, LEASED, DESTROYING),
  /* resetting  */ bit(IDLE, LEASED, DESTROYING),
  /* destroying */ bit(DESTROYED),
  /* destroyed  */ 0,
];

/** What the table needs to know about a lease: close() revokes the one whose resource it destroyed. */
export interface EntryLease<T> extends Lease<T> {
  readonly acquiredAt: number;
  stack: string | undefined;
  leakReported: boolean;
  revoke(): void;
}

export class Entry<T> {
  state: State = CREATING;
  resource: T = undefined as T;
  createdAt = 0;
  expiresAt = Infinity;
  /** Last time the resource was known to work: returned, created or pinged. */
  lastUsedAt = 0;
  lease: EntryLease<T> | undefined = undefined;
  /** The pool's generation when the create started; `invalidate()` retires older ones. */
  generation = 0;
  /** Leases handed out so far. */
  uses = 0;
  /** Reached `maxUses`: retires on return (its `expiresAt` is then -Infinity). */
  usedUp = false;
}

/** Past its lifetime, used `maxUses` times, or retired by invalidate() (both set the expiry to -Infinity). */
export function expiredReason(entry: Entry<unknown>): DestroyReason {
  return entry.usedUp ? 'maxUses' : entry.expiresAt === -Infinity ? 'invalidated' : 'lifetime';
}

/** The adapter's `ref` hook as the table calls it (AdapterCalls). */
export interface RefHook<T> {
  readonly hasRef: boolean;
  ref(resource: T, active: boolean): void;
}

export class EntryTable<T> {
  /** Every entry not yet DESTROYED. */
  readonly all = new Set<Entry<T>>();
  /** Entries by state, indexed by the state constants. */
  readonly counts = [0, 0, 0, 0, 0, 0, 0];
  /** The IDLE entries, most recently returned last. */
  readonly idle: Entry<T>[] = [];
  readonly #hold: ProcessHold;
  readonly #refs: RefHook<T>;

  constructor(hold: ProcessHold, refs: RefHook<T>) {
    this.#hold = hold;
    this.#refs = refs;
  }

  /** A new entry, CREATING: it holds a slot toward `max` from now on. */
  add(generation: number): Entry<T> {
    const entry = new Entry<T>();
    entry.generation = generation;
    this.counts[CREATING]!++;
    this.all.add(entry);
    return entry;
  }

  /** The one place a state changes. An illegal move is a bug in the pool, never the user's: it throws. */
  transition(entry: Entry<T>, to: State): void {
    const from = entry.state;
    if ((ALLOWED[from]! & (1 << to)) === 0) {
      throw new Error(`lifeguard internal error: illegal resource transition ${STATE_NAMES[from]} -> ${STATE_NAMES[to]}`);
    }
    this.counts[from]!--;
    this.counts[to]!++;
    entry.state = to;
    // A reset that release() returned is awaited by its caller.
    if (from === RESETTING || to === RESETTING) this.#hold.mark(HOLD_RESETS, this.counts[RESETTING]! > 0);
    // Idle resources must not keep the process alive, a caller's must; one handed from a
    // reset straight to the next caller stays active: no call.
    if (this.#refs.hasRef && (to === IDLE || (to === LEASED && from !== RESETTING))) this.#refs.ref(entry.resource, to === LEASED);
  }

  /** Mark an entry DESTROYED and forget it. */
  remove(entry: Entry<T>): void {
    this.transition(entry, DESTROYED);
    this.all.delete(entry);
  }

  /** Take an entry out of the idle stack (it is being destroyed or pinged). */
  unidle(entry: Entry<T>): void {
    const index = this.idle.lastIndexOf(entry);
    if (index !== -1) this.idle.splice(index, 1);
  }

  /** Live resources: idle + leased + checking + resetting. */
  size(): number {
    const c = this.counts;
    return c[IDLE]! + c[LEASED]! + c[CHECKING]! + c[RESETTING]!;
  }

  /** Resources that close() must wait for before destroying: leased, resetting or being pinged. */
  outstanding(): number {
    const c = this.counts;
    return c[LEASED]! + c[RESETTING]! + c[CHECKING]!;
  }
}
