/**
 * The pool's life apart from serving: warmup(), drain()/resume() (PgBouncer's PAUSE),
 * invalidate() (retire every resource that exists now), and close(), whose sequence is in
 * close.ts. It owns the flags the dispatcher consults (`closing`, `draining`, `generation`)
 * and the promises callers await here.
 */
import { checkCloseOptions, closePool, type ClosingPool } from './close.js';
import { kDestroyEntry, kPump, type Dispatcher, type PoolState } from './dispatcher.js';
import { CREATING, DESTROYED, DESTROYING, type EntryTable } from './entry.js';
import { PoolClosedError, PoolError } from './errors.js';
import { HOLD_CLOSE, HOLD_WARMUPS, type ProcessHold } from './process-hold.js';

const RESOLVED: Promise<void> = Promise.resolve();

/** What close() works with besides the lifecycle itself (see close.ts). */
export type ClosingParts<T> = Omit<ClosingPool<T>, 'onOutstandingChange' | 'settleEmpty'>;

export class PoolLifecycle<T> implements PoolState {
  /** From the moment close() is called. */
  closing = false;
  /** Between drain() and resume(). */
  draining = false;
  /** Bumped by invalidate(): resources of an older generation are retired. */
  generation = 0;
  #closePromise: Promise<void> | undefined;
  #drainPromise: Promise<void> | undefined;
  #onEmpty: (() => void) | undefined;
  #warmups: { resolve: () => void; reject: (error: unknown) => void }[] = [];
  /** Set while close() waits for leases: called when a resource close() waits for is destroyed. */
  #onOutstanding: (() => void) | undefined;
  readonly #table: EntryTable<T>;
  readonly #min: number;
  readonly #hold: ProcessHold;
  readonly #dispatcher: Dispatcher<T>;
  #closingParts: ClosingParts<T> | undefined;

  constructor(table: EntryTable<T>, min: number, hold: ProcessHold, dispatcher: Dispatcher<T>) {
    this.#table = table;
    this.#min = min;
    this.#hold = hold;
    this.#dispatcher = dispatcher;
  }

  /** The parts close() stops and waits for; given once they all exist. */
  closeWith(parts: ClosingParts<T>): void {
    this.#closingParts = parts;
  }

  warmup(): Promise<void> {
    if (this.closing) return Promise.reject(new PoolClosedError());
    if (this.#table.size() >= this.#min) return RESOLVED;
    const done = new Promise<void>((resolve, reject) => this.#warmups.push({ resolve, reject }));
    this.#hold.mark(HOLD_WARMUPS, true);
    this.#dispatcher[kPump]();
    return done;
  }

  /** A create succeeded: warmups are done once `min` resources exist. */
  created(): void {
    if (this.#warmups.length > 0 && this.#table.size() >= this.#min) this.settleWarmups();
  }

  /** Resolve every pending warmup(), or reject them with `error`. */
  settleWarmups(error?: unknown): void {
    const warmups = this.#warmups.splice(0);
    for (const warmup of warmups) {
      if (error === undefined) warmup.resolve();
      else warmup.reject(error);
    }
    this.#hold.mark(HOLD_WARMUPS, false);
  }

  drain(): Promise<void> {
    if (this.closing) return this.#closePromise!;
    if (this.#drainPromise !== undefined) return this.#drainPromise;
    this.draining = true;
    this.settleWarmups(new PoolError('Pool drained before warmup finished', 'POOL_DRAINED'));
    this.#drainPromise = new Promise<void>((resolve) => {
      this.#onEmpty = resolve;
    });
    for (const entry of [...this.#table.idle]) void this.#dispatcher[kDestroyEntry](entry, 'drained');
    if (this.#table.all.size === 0) this.#settleEmpty();
    return this.#drainPromise;
  }

  resume(): void {
    if (!this.draining) return;
    this.draining = false;
    this.#drainPromise = undefined;
    this.#settleEmpty();
    if (!this.closing) this.#dispatcher[kPump]();
  }

  invalidate(): void {
    if (this.closing) return;
    this.generation++;
    for (const entry of this.#table.all) {
      // Creating entries are judged by their generation when they finish (the dispatcher's kDeliver).
      if (entry.state !== CREATING && entry.state !== DESTROYING && entry.state !== DESTROYED) entry.expiresAt = -Infinity;
    }
    for (const entry of [...this.#table.idle]) void this.#dispatcher[kDestroyEntry](entry, 'invalidated');
  }

  /** An entry is gone for good: a drain waiting for an empty pool may be over. */
  entryGone(): void {
    if (this.#onEmpty !== undefined && this.#table.all.size === 0) this.#settleEmpty();
  }

  /** A resource was destroyed while closing: close() may be waiting for the last lease. */
  destroyedWhileClosing(): void {
    this.#onOutstanding?.();
  }

  close(options: { timeoutMs?: number } | undefined): Promise<void> {
    if (this.#closePromise !== undefined) return this.#closePromise;
    const timeoutMs = checkCloseOptions(options);
    if (typeof timeoutMs !== 'number') return Promise.reject(timeoutMs);
    this.closing = true;
    // close()'s caller awaits it: the process stays until it resolves.
    this.#hold.mark(HOLD_CLOSE, true);
    const parts = this.#closingParts!;
    const pool: ClosingPool<T> = {
      ...parts,
      failWaiters: () => {
        parts.failWaiters();
        this.settleWarmups(new PoolClosedError());
      },
      onOutstandingChange: (listener) => {
        this.#onOutstanding = listener;
      },
      settleEmpty: () => this.#settleEmpty(),
    };
    this.#closePromise = closePool(pool, timeoutMs).finally(() => this.#hold.dispose());
    return this.#closePromise;
  }

  #settleEmpty(): void {
    const resolve = this.#onEmpty;
    this.#onEmpty = undefined;
    resolve?.();
  }
}
