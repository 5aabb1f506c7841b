/**
 * The pool's public contract: what callers hold (`Pool`, `Lease`) and what it reports
 * (`PoolStats`, `PoolHealth`). The behaviour behind it lives in the files named for it;
 * docs/ARCHITECTURE.md is the map.
 */
import type { AcquireOptions } from './options.js';
import type { Summary } from './histogram.js';

/** A borrowed resource. Release it (or let `await using` do it) exactly when you are done. */
export interface Lease<T> extends AsyncDisposable {
  /** The resource. Throws `LeaseReleasedError` once the lease was released or destroyed. */
  readonly resource: T;
  /**
   * Reset the resource and return it to the pool (or destroy it when broken or expired).
   * Calling it again, or after `destroy()`, does nothing: `await using` after an explicit
   * release is safe. `release(error)` or `release(true)` (node-postgres' convention) is
   * `destroy(error)`.
   */
  release(error?: unknown): Promise<void>;
  /**
   * Evict the resource instead of returning it. A second call does nothing; calling it
   * after `release()` rejects with `LeaseReleasedError`, because the resource may already
   * be serving another caller.
   */
  destroy(reason?: unknown): Promise<void>;
  /** Same as `release()`. */
  [Symbol.asyncDispose](): Promise<void>;
}

/**
 * A pool of resources of type `T`, made by {@link createPool} (or `createPostgresPool` from
 * `lifeguard/postgres`). Disposable: `await using pool = createPool(...)` closes it at scope end.
 */
export interface Pool<T> extends AsyncDisposable {
  /**
   * Borrow a resource within the acquire deadline (`options.timeoutMs`, else
   * `acquireTimeoutMs`). Rejects with `AcquireTimeoutError`, `PoolClosedError`,
   * `PoolQueueFullError`, `CircuitOpenError`, `CreateResourceError`, `InvalidPoolOptionError`
   * (bad options), or `signal.reason` when `options.signal` aborts.
   */
  acquire(options?: AcquireOptions): Promise<Lease<T>>;
  /**
   * Run `fn` with a borrowed resource and always give it back: released when `fn`
   * settles, destroyed instead when `fn` threw an error the adapter calls fatal. The
   * signal aborts when the caller's signal does or when `close()` gives up waiting.
   */
  withConnection<R>(fn: (resource: T, signal: AbortSignal) => Promise<R> | R, options?: AcquireOptions): Promise<R>;
  /** A cheap snapshot of gauges, counters and timing summaries. */
  stats(): PoolStats;
  /**
   * The pool's health for a readiness probe: `ok`; `degraded` (creates failing while
   * connections still serve, more callers waiting than `max`, or draining); `down`
   * (the breaker is open, or creates fail and nothing is left to serve); `closed`.
   */
  health(): PoolHealth;
  /** Create `min` resources now; rejects with the create error if one cannot be created. */
  warmup(): Promise<void>;
  /**
   * Stop handing out resources and destroy them all: queued and later acquires reject
   * with `PoolClosedError`, leases are waited for up to `timeoutMs` (default 30 s) and
   * then destroyed. Idempotent: every call returns the same promise.
   */
  close(options?: { timeoutMs?: number }): Promise<void>;
  /**
   * Let the server go (PgBouncer's PAUSE): destroy idle resources now, destroy leased ones
   * when they come back, create nothing. Acquires keep waiting, each within its own
   * deadline, until `resume()`. Resolves once the pool holds no resource, or at `resume()`
   * or `close()`. Every call while draining returns the same promise.
   */
  drain(): Promise<void>;
  /** Leave the drained state: creates are allowed again and waiting acquires are served. */
  resume(): void;
  /**
   * Retire every resource that exists now (after a failover, a credential rotation, a
   * schema change): idle ones are destroyed at once, leased ones when they come back, and
   * creates already running are discarded when they finish. Later creates are unaffected.
   */
  invalidate(): void;
  /** `true` between `drain()` and `resume()`. */
  readonly draining: boolean;
  /** `true` from the moment `close()` is called. */
  readonly closed: boolean;
  /** Same as `close()`. */
  [Symbol.asyncDispose](): Promise<void>;
}

/** Why a resource was destroyed. */
export type DestroyReason = 'broken' | 'pingFailed' | 'resetFailed' | 'idle' | 'lifetime' | 'closed' | 'user' | 'drained' | 'invalidated' | 'maxUses';

/**
 * The circuit breaker: `closed` (creates allowed), `open` (acquires that need a new resource
 * fail fast with `CircuitOpenError`), `half-open` (one probe create is running).
 */
export type CircuitState = 'closed' | 'open' | 'half-open';

/**
 * `ok`; `degraded`: still serving, but creates fail, more callers wait than `max`, or the
 * pool is draining; `down`: the breaker is open, or creates fail and no connection is left;
 * `closed`: `close()` was called. A readiness probe answers 200 for `ok` and `degraded`.
 */
export type HealthStatus = 'ok' | 'degraded' | 'down' | 'closed';

/** What {@link Pool.health} returns: a verdict for a readiness probe, with the numbers behind it. */
export interface PoolHealth {
  /** The verdict. */
  readonly status: HealthStatus;
  /** Why it is not `ok`, in a sentence; absent when it is. */
  readonly reason?: string;
  /** The last create error, while creates are failing. */
  readonly lastError?: unknown;
  /** Live resources (as {@link PoolStats.size}). */
  readonly size: number;
  /** The `max` option. */
  readonly max: number;
  /** Acquires queued for a resource. */
  readonly waiting: number;
  /** The circuit breaker's state. */
  readonly circuit: CircuitState;
}

/**
 * What {@link Pool.stats} returns: gauges derived from each resource's state, counters
 * since the pool was created, and timing summaries.
 */
export interface PoolStats {
  /** The `max` option. */
  readonly max: number;
  /** The `min` option. */
  readonly min: number;
  /** Live resources: idle + leased + checking + resetting. `size + creating <= max` always. */
  readonly size: number;
  /** Resources ready to hand out. */
  readonly idle: number;
  /** Resources held by callers. */
  readonly leased: number;
  /** Creates in flight (each holds a slot toward `max`). */
  readonly creating: number;
  /** Idle resources being health-checked (borrow-time or keepalive ping). */
  readonly checking: number;
  /** Returned resources being reset. */
  readonly resetting: number;
  /** Resources whose destroy is still running; their slots are already free. */
  readonly destroying: number;
  /** Acquires queued for a resource. */
  readonly waiting: number;
  /** Acquires that got a resource. */
  readonly acquired: number;
  /** Acquires that hit their deadline. */
  readonly timedOut: number;
  /** Acquires whose signal aborted, before or while they waited. */
  readonly aborted: number;
  /** Acquires refused: closed pool, full queue, open circuit, or a create that cannot succeed. */
  readonly rejected: {
    /** `PoolClosedError`. */
    readonly closed: number;
    /** `PoolQueueFullError`. */
    readonly queueFull: number;
    /** `CircuitOpenError`. */
    readonly circuitOpen: number;
    /** `CreateResourceError`: a non-retryable create failure, or retries exhausted. */
    readonly createFailed: number;
    /** `PoolOverloadedError`: shed while the pool was congested (adaptive queueing). */
    readonly shed: number;
  };
  /** Resources created. */
  readonly created: number;
  /** Failed create attempts (each retry counts). */
  readonly createFailed: number;
  /** Resources destroyed, whatever the reason. */
  readonly destroyed: number;
  /** Resources destroyed, by reason. */
  readonly destroyedByReason: Readonly<Record<DestroyReason, number>>;
  /** The circuit breaker's state. */
  readonly circuit: CircuitState;
  /** Adaptive queueing is on and the pool is congested: serving the newest waiter first and shedding. */
  readonly congested: boolean;
  /** Between drain() and resume(). */
  readonly draining: boolean;
  /** Create attempts failed in a row since the last success (attempts that were in flight together and failed together count once). */
  readonly consecutiveCreateFailures: number;
  /** Time from acquire to lease, in ms (0 when a resource was idle). */
  readonly waitTime: Summary;
  /** Time from acquire to release, in ms. */
  readonly leaseTime: Summary;
  /** Time of a successful create, retries included, in ms. */
  readonly createTime: Summary;
}

/**
 * For adapters that wrap the pool in a class of their own (as `lifeguard/postgres` does):
 * published events then name the wrapper, the object users hold, as their `pool`.
 */
export interface PoolWrapping<T> {
  /** The wrapper: the object users hold, named as `pool` in every event. */
  readonly face: Pool<T>;
}
