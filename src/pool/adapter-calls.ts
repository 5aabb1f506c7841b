/**
 * Every call from the pool into the adapter goes through here: each bounded by its
 * phase's timeout (a hook that never settles still ends), a hook that throws reported to
 * `onError` instead of breaking the pool, and every call in flight tracked, so that
 * close() can wait until none is left.
 */
import type { Clock } from './clock.js';
import { DestroyTimeoutError, PingTimeoutError, PoolError } from './errors.js';
import type { Adapter, ResolvedOptions } from './options.js';

export class AdapterCalls<T> {
  readonly #adapter: Adapter<T>;
  readonly #o: ResolvedOptions<T>;
  readonly #clock: Clock;
  /** Adapter calls (and the work chained on them) still running: close() waits for them. */
  readonly pending = new Set<Promise<unknown>>();
  readonly canPing: boolean;
  readonly canReset: boolean;
  readonly canProbe: boolean;

  constructor(options: ResolvedOptions<T>) {
    this.#o = options;
    this.#adapter = options.adapter;
    this.#clock = options.clock;
    this.canPing = typeof options.adapter.ping === 'function';
    this.canReset = options.adapter.reset !== undefined;
    this.canProbe = options.adapter.probe !== undefined;
    this.hasRef = options.adapter.ref !== undefined;
  }

  /** Whether the resource's handles may keep the process alive (the adapter's `ref` hook). */
  ref(resource: T, active: boolean): void {
    try {
      this.#adapter.ref!(resource, active);
    } catch (error) {
      this.report(error);
    }
  }

  create(ctx: Parameters<Adapter<T>['create']>[0]): Promise<T> {
    return this.#adapter.create(ctx);
  }

  /** Close a resource in the background, bounded by destroyTimeoutMs; failures go to onError. */
  destroy(resource: T): Promise<void> {
    const ms = this.#o.destroyTimeoutMs;
    return this.bounded((signal) => this.#adapter.destroy(resource, signal), ms, () => new DestroyTimeoutError(ms)).catch((error: unknown) => this.report(error));
  }

  ping(resource: T, ms: number): Promise<void> {
    return this.bounded((signal) => this.#adapter.ping!(resource, signal), ms, () => new PingTimeoutError(ms));
  }

  reset(resource: T): Promise<void> {
    const ms = this.#o.resetTimeoutMs;
    return this.bounded((signal) => this.#adapter.reset!(resource, signal), ms, () => new PoolError(`reset took longer than resetTimeoutMs (${ms} ms)`, 'POOL_RESET_TIMEOUT'));
  }

  probe(ms: number): Promise<void> {
    return this.bounded((signal) => this.#adapter.probe!(signal), ms, () => new PoolError(`probe took longer than ${ms} ms`, 'POOL_PROBE_TIMEOUT'));
  }

  /** A hook that throws counts the resource as broken: better a new one than a bad one. */
  isBroken(resource: T): boolean {
    const isBroken = this.#adapter.isBroken;
    if (isBroken === undefined) return false;
    try {
      return isBroken.call(this.#adapter, resource) === true;
    } catch (error) {
      this.report(error);
      return true;
    }
  }

  isRetryable(error: unknown): boolean {
    const isRetryable = this.#adapter.isRetryable;
    if (isRetryable === undefined) return true;
    try {
      return isRetryable.call(this.#adapter, error) !== false;
    } catch (hookError) {
      this.report(hookError);
      return true;
    }
  }

  isFatal(error: unknown, resource: T): boolean {
    const isFatal = this.#adapter.isFatal;
    if (isFatal === undefined) return false;
    try {
      return isFatal.call(this.#adapter, error, resource) === true;
    } catch (hookError) {
      this.report(hookError);
      return false;
    }
  }

  /** The adapter has a `ref` hook: the state machine calls ref() only then. */
  readonly hasRef: boolean;

  /**
   * Run an adapter hook with a signal that aborts after `ms`; a hook that throws
   * synchronously or never settles still ends here.
   */
  bounded(hook: (signal: AbortSignal) => Promise<void>, ms: number, timeoutError: () => Error): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const controller = new AbortController();
      const timer =
        ms === Infinity
          ? undefined
          : this.#clock.setTimeout(() => {
              const error = timeoutError();
              controller.abort(error);
              reject(error);
            }, ms);
      const settle = (error?: unknown): void => {
        if (timer !== undefined) this.#clock.clearTimeout(timer);
        if (error === undefined) resolve();
        else reject(error);
      };
      try {
        Promise.resolve(hook(controller.signal)).then(() => settle(), (error: unknown) => settle(error ?? new Error('adapter hook rejected without a reason')));
      } catch (error) {
        settle(error);
      }
    });
  }

  /** Keep `task` in `pending` until it settles. */
  track(task: Promise<unknown>): void {
    this.pending.add(task);
    const forget = (): void => {
      this.pending.delete(task);
    };
    task.then(forget, forget);
  }

  report(error: unknown): void {
    try {
      this.#o.onError(error);
    } catch {
      // A throwing onError must not break the pool; there is nowhere left to report it.
    }
  }
}
