/**
 * The lease a caller holds: a handle on one entry, good until it is released, destroyed or
 * revoked by close(). It only forwards to its pool; the pool decides what a return means.
 */
import type { Lease } from './api.js';
import type { Entry, EntryLease } from './entry.js';
import { LeaseReleasedError } from './errors.js';

const RESOLVED: Promise<void> = Promise.resolve();
export const kRelease = Symbol('release');
export const kDestroy = Symbol('destroy');

/** The pool as a lease sees it; symbol-keyed so that users never see these on the pool. */
export interface LeaseOwner<T> {
  [kRelease](lease: PoolLease<T>, entry: Entry<T>): Promise<void>;
  [kDestroy](lease: PoolLease<T>, entry: Entry<T>, reason: unknown): Promise<void>;
}

export class PoolLease<T> implements Lease<T>, EntryLease<T> {
  #entry: Entry<T> | undefined;
  #released = false;
  readonly #pool: LeaseOwner<T>;
  /** @internal */ readonly acquiredAt: number;
  /** @internal */ stack: string | undefined = undefined;
  /** @internal */ leakReported = false;

  constructor(pool: LeaseOwner<T>, entry: Entry<T>, acquiredAt: number) {
    this.#pool = pool;
    this.#entry = entry;
    this.acquiredAt = acquiredAt;
  }

  get resource(): T {
    const entry = this.#entry;
    if (entry === undefined) throw new LeaseReleasedError();
    return entry.resource;
  }

  release(error?: unknown): Promise<void> {
    // pg-pool's habit: release(err) / release(true) means "this one is bad, destroy it".
    if (error !== undefined && error !== false && error !== null) return this.#released ? RESOLVED : this.destroy(error === true ? undefined : error);
    const entry = this.#entry;
    if (entry === undefined) return RESOLVED;
    this.#entry = undefined;
    this.#released = true;
    return this.#pool[kRelease](this, entry);
  }

  destroy(reason?: unknown): Promise<void> {
    const entry = this.#entry;
    if (entry === undefined) {
      return this.#released
        ? Promise.reject(new LeaseReleasedError('Cannot destroy a lease after release(): its resource may already serve another caller'))
        : RESOLVED;
    }
    this.#entry = undefined;
    return this.#pool[kDestroy](this, entry, reason);
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.release();
  }

  /** @internal close() destroyed the resource under this lease; later calls are no-ops. */
  revoke(): void {
    this.#entry = undefined;
  }
}
