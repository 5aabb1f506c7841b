/**
 * `PoolFacade`: a {@link Pool} that hands every call to a core pool. Adapters' pools
 * (`PostgresPool`, `MysqlPool`) extend it and add their driver's query helpers; events and
 * metrics name the facade, the object users hold.
 */
import type { Lease, Pool, PoolHealth, PoolStats } from './api.js';
import type { AcquireOptions } from './options.js';

export class PoolFacade<T> implements Pool<T> {
  readonly #pool: Pool<T>;

  /** `create` makes the core pool (`createPool(options, { face })`); it is given this facade to name in events. */
  constructor(create: (face: Pool<T>) => Pool<T>) {
    this.#pool = create(this);
  }

  /** The core pool behind this facade. */
  protected get core(): Pool<T> {
    return this.#pool;
  }

  get closed(): boolean {
    return this.#pool.closed;
  }

  get draining(): boolean {
    return this.#pool.draining;
  }

  acquire(options?: AcquireOptions): Promise<Lease<T>> {
    return this.#pool.acquire(options);
  }

  withConnection<R>(fn: (resource: T, signal: AbortSignal) => Promise<R> | R, options?: AcquireOptions): Promise<R> {
    return this.#pool.withConnection(fn, options);
  }

  stats(): PoolStats {
    return this.#pool.stats();
  }

  health(): PoolHealth {
    return this.#pool.health();
  }

  warmup(): Promise<void> {
    return this.#pool.warmup();
  }

  close(options?: { timeoutMs?: number }): Promise<void> {
    return this.#pool.close(options);
  }

  drain(): Promise<void> {
    return this.#pool.drain();
  }

  resume(): void {
    this.#pool.resume();
  }

  invalidate(): void {
    this.#pool.invalidate();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.#pool.close();
  }
}
