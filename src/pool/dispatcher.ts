/**
 * What the parts may ask of the dispatcher (pool.ts), and the pool state they read. The
 * dispatcher's hooks are symbol-keyed methods of the pool object itself, like the lease's
 * kRelease: one function for every pool, so that calls from the parts stay monomorphic on
 * hot paths, and out of sight of users holding the pool.
 */
import type { DestroyReason } from './api.js';
import type { Entry } from './entry.js';

export const kPump = Symbol('pump');
export const kDestroyEntry = Symbol('destroyEntry');
export const kGiveBack = Symbol('giveBack');
export const kDeliver = Symbol('deliver');

export interface Dispatcher<T> {
  /** Match waiters with resources and start creates: after anything that changes supply or demand. */
  [kPump](): void;
  /** Free the entry's slot now and close its resource in the background. */
  [kDestroyEntry](entry: Entry<T>, reason: DestroyReason): Promise<void>;
  /** A healthy resource is available again: the next waiter gets it, or it goes idle. */
  [kGiveBack](entry: Entry<T>, now: number): void;
  /** A create succeeded: give the resource its lifetime and hand it out. */
  [kDeliver](entry: Entry<T>, now: number): void;
}

/** The pool's life as the parts read it (PoolLifecycle owns it). */
export interface PoolState {
  /** From the moment close() is called. */
  readonly closing: boolean;
  /** Between drain() and resume(). */
  readonly draining: boolean;
  /** Bumped by invalidate(): resources of an older generation are retired. */
  readonly generation: number;
}
