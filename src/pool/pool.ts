import { setMaxListeners } from 'node:events';
import pRetry, { AbortError } from 'p-retry';
import { SystemClock, type Clock, type ClockTimer } from './clock.js';
import {
  AcquireTimeoutError,
  CircuitOpenError,
  CreateResourceError,
  CreateTimeoutError,
  DestroyTimeoutError,
  InvalidPoolOptionError,
  LeakDetectedError,
  LeaseReleasedError,
  PingTimeoutError,
  PoolClosedError,
  PoolError,
  PoolQueueFullError,
  type AcquireTimeoutReason,
} from './errors.js';
import { channels } from './events.js';
import { Histogram, type Summary } from './histogram.js';
import { checkAcquireOptions, resolveOptions, type AcquireOptions, type Adapter, type PoolOptions, type ResolvedOptions } from './options.js';
import { ProcessHold } from './process-hold.js';
import { WaiterQueue, type Waiter } from './waiters.js';

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
export type DestroyReason = 'broken' | 'pingFailed' | 'resetFailed' | 'idle' | 'lifetime' | 'closed' | 'user' | 'drained' | 'invalidated';

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

// One explicit state per pooled resource, changed only in #setState.
const CREATING = 0;
const IDLE = 1;
const LEASED = 2;
const CHECKING = 3;
const RESETTING = 4;
const DESTROYING = 5;
const DESTROYED = 6;
type State = 0 | 1 | 2 | 3 | 4 | 5 | 6;
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

const CIRCUIT_CLOSED = 0;
const CIRCUIT_OPEN = 1;
const CIRCUIT_HALF_OPEN = 2;
const CIRCUIT_NAMES: readonly CircuitState[] = ['closed', 'open', 'half-open'];

const RESOLVED: Promise<void> = Promise.resolve();
const kRelease = Symbol('release');
/** How much earlier than maxLifetimeMs a resource may retire (F26: batches must not retire in one wave). */
const LIFETIME_SPREAD = 0.4;
const kDestroy = Symbol('destroy');
const kSetFace = Symbol('lifeguard.setFace');

class Entry<T> {
  state: State = CREATING;
  resource: T = undefined as T;
  createdAt = 0;
  expiresAt = Infinity;
  /** Last time the resource was known to work: returned, created or pinged. */
  lastUsedAt = 0;
  lease: PoolLease<T> | undefined = undefined;
  /** The pool's generation when the create started; `invalidate()` retires older ones. */
  generation = 0;
}

/** Rarely used parts of a waiter, kept apart so the common waiter stays small (100k queued waiters are a test case). */
interface WaiterExtras {
  readonly signal: AbortSignal | undefined;
  readonly stack: string | undefined;
  onAbort: (() => void) | undefined;
}

class PoolWaiter<T> implements Waiter {
  prev: Waiter | undefined = undefined;
  next: Waiter | undefined = undefined;
  lane: Waiter['lane'] = undefined;
  readonly resolve: (lease: Lease<T>) => void;
  readonly reject: (error: unknown) => void;

  /** Call right after `new Promise(captureResolvers)`, which left its resolvers in the module slots. */
  constructor(
    readonly enqueuedAt: number,
    /** The timeout the caller asked for, reported as is (deadline - enqueuedAt has float noise). */
    readonly timeoutMs: number,
    readonly deadline: number,
    readonly extras: WaiterExtras | undefined,
  ) {
    this.resolve = capturedResolve as (lease: Lease<T>) => void;
    this.reject = capturedReject;
  }
}

// A shared executor instead of a closure per waiter (new Promise() calls it synchronously):
// with 100k queued callers, every byte per waiter shows up as garbage-collector time.
let capturedResolve: (value: never) => void;
let capturedReject: (error: unknown) => void;
function captureResolvers(resolve: (value: never) => void, reject: (error: unknown) => void): void {
  capturedResolve = resolve;
  capturedReject = reject;
}

/** Distance from `at` to the nearest value of the ascending `sorted` (non-empty), by binary search. */
function nearest(sorted: Float64Array, at: number): number {
  let low = 0;
  let high = sorted.length - 1;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if (sorted[middle]! < at) low = middle + 1;
    else high = middle;
  }
  const right = Math.abs(sorted[low]! - at);
  return low > 0 ? Math.min(right, Math.abs(at - sorted[low - 1]!)) : right;
}

class PoolLease<T> implements Lease<T> {
  #entry: Entry<T> | undefined;
  #released = false;
  readonly #pool: PoolImpl<T>;
  /** @internal */ readonly acquiredAt: number;
  /** @internal */ stack: string | undefined = undefined;
  /** @internal */ leakReported = false;

  constructor(pool: PoolImpl<T>, entry: Entry<T>, acquiredAt: number) {
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

/** Carries a failed create attempt through p-retry, which only understands `Error`s. */
class AttemptFailure extends Error {
  constructor(
    readonly error: unknown,
    readonly fatal: boolean,
  ) {
    super('create attempt failed');
  }
}

/**
 * Make a pool. Options are validated here, once: a bad value or an unknown key throws
 * `InvalidPoolOptionError`. With `min > 0`, creating `min` resources starts at once in the
 * background (`warmup()` waits for them).
 */
export function createPool<T>(options: PoolOptions<T>, wrapping?: PoolWrapping<T>): Pool<T> {
  const pool = new PoolImpl(resolveOptions(options));
  if (wrapping !== undefined) pool[kSetFace](wrapping.face);
  return pool;
}

/**
 * For adapters that wrap the pool in a class of their own (as `lifeguard/postgres` does):
 * published events then name the wrapper, the object users hold, as their `pool`.
 */
export interface PoolWrapping<T> {
  readonly face: Pool<T>;
}

class PoolImpl<T> implements Pool<T> {
  readonly #o: ResolvedOptions<T>;
  readonly #adapter: Adapter<T>;
  readonly #clock: Clock;
  /** The caching system clock, whose precise() a queued deadline starts from; undefined for other clocks. */
  readonly #systemClock: SystemClock | undefined;
  readonly #canPing: boolean;
  readonly #leakDetection: boolean;
  /** Ping on borrow when idle longer than this; -1 for `pingIfIdleMs: 0`, which pings every borrow. */
  readonly #pingAfterMs: number;
  /** Keepalive pings in flight: unlike borrow-time pings, they are not on their way to a waiter. */
  #keepalivePings = 0;

  readonly #idle: Entry<T>[] = [];
  readonly #entries = new Set<Entry<T>>();
  readonly #counts = [0, 0, 0, 0, 0, 0, 0];
  readonly #waiters = new WaiterQueue<PoolWaiter<T>>();
  readonly #pending = new Set<Promise<unknown>>();
  readonly #closeController = new AbortController();
  /** Aborted when close() gives up waiting for leases: the signal withConnection passes to its callback. */
  readonly #abandoned = new AbortController();

  #closing = false;
  #draining = false;
  #drainPromise: Promise<void> | undefined;
  #onEmpty: (() => void) | undefined;
  /** Bumped by invalidate(): resources of an older generation are retired. */
  #generation = 0;
  #closePromise: Promise<void> | undefined;
  #onDrained: (() => void) | undefined;
  #pumping = false;
  #pumpAgain = false;

  #deadlineTimer: ClockTimer | undefined;
  #deadlineAt = Infinity;
  #maintenanceTimer: ClockTimer | undefined;
  #maintenanceAt = Infinity;
  #backoffTimer: ClockTimer | undefined;
  #breakerTimer: ClockTimer | undefined;
  #probeTimer: ClockTimer | undefined;
  /** Bumped when probing starts or stops: results of probes from an earlier round are ignored. */
  #probeRound = 0;
  #probesInFlight = 0;
  /** A probe failed in this round: the next success means the server came back. */
  #probeSawFailure = false;
  /** Wake a create retry sleeping its backoff (the server came back). */
  readonly #retryWakers = new Set<() => void>();
  /** consecutiveFailures when the server last came back: the backoff grows again from there, from its start. */
  #backoffBase = 0;

  #lastCreateError: unknown = undefined;
  #consecutiveFailures = 0;
  /** Failed attempts so far; an attempt that started before the latest failure adds nothing to the streak. */
  #failureSeq = 0;
  #createBlockedUntil = 0;
  /** Like #createBlockedUntil, but after any failure, non-retryable ones too: creates for `min` alone wait for it. */
  #topUpBlockedUntil = 0;
  #circuit = CIRCUIT_CLOSED;
  #circuitOpenedAt = 0;
  #warmups: { resolve: () => void; reject: (error: unknown) => void }[] = [];

  #acquired = 0;
  #timedOut = 0;
  #aborted = 0;
  #rejectedClosed = 0;
  #rejectedQueueFull = 0;
  #rejectedCircuit = 0;
  #rejectedCreate = 0;
  #created = 0;
  #createFailed = 0;
  #destroyed = 0;
  readonly #destroyedBy: Record<DestroyReason, number> = { broken: 0, pingFailed: 0, resetFailed: 0, idle: 0, lifetime: 0, closed: 0, user: 0, drained: 0, invalidated: 0 };
  readonly #waitTime = new Histogram();
  readonly #leaseTime = new Histogram();
  readonly #createTime = new Histogram();
  /** The pool object users hold, for event payloads (a wrapper may stand in for this one). */
  #face: Pool<T> = this;
  /** Keeps the process alive while a caller awaits the pool (see #syncHold). */
  readonly #hold = new ProcessHold();
  /** True from close() until it resolved: its caller awaits it. */
  #closeRunning = false;

  constructor(options: ResolvedOptions<T>) {
    this.#o = options;
    this.#adapter = options.adapter;
    this.#clock = options.clock;
    this.#systemClock = options.clock instanceof SystemClock ? options.clock : undefined;
    this.#canPing = typeof options.adapter.ping === 'function';
    this.#leakDetection = options.leakDetectionMs !== Infinity;
    this.#pingAfterMs = options.pingIfIdleMs === 0 ? -1 : options.pingIfIdleMs;
    // One listener per create in flight or withConnection call is expected, not a leak.
    setMaxListeners(0, this.#closeController.signal, this.#abandoned.signal);
    if (options.min > 0) this.#pump();
  }

  get closed(): boolean {
    return this.#closing;
  }

  /** @internal */
  [kSetFace](face: Pool<T>): void {
    this.#face = face;
  }

  // ---------------------------------------------------------------- acquire

  acquire(options?: AcquireOptions): Promise<Lease<T>> {
    if (channels.acquireStart.hasSubscribers) channels.acquireStart.publish({ pool: this.#face });
    // Fast path: no options, nobody queued, a healthy idle resource. No timer, no clock read beyond the cached one.
    if (options === undefined && this.#waiters.size === 0 && !this.#closing) {
      const lease = this.#takeIdle(undefined);
      if (lease !== undefined) return Promise.resolve(lease);
    }
    return this.#acquireSlow(options);
  }

  #acquireSlow(options: AcquireOptions | undefined): Promise<Lease<T>> {
    let timeoutMs = this.#o.acquireTimeoutMs;
    let priority = 0;
    let signal: AbortSignal | undefined;
    if (options !== undefined) {
      const invalid = checkAcquireOptions(options);
      if (invalid !== undefined) return this.#refuse(invalid);
      signal = options.signal;
      timeoutMs = options.timeoutMs ?? timeoutMs;
      priority = options.priority ?? 0;
      if (signal?.aborted) {
        this.#aborted++;
        return this.#refuse(signal.reason);
      }
    }
    if (this.#closing) {
      this.#rejectedClosed++;
      return this.#refuse(new PoolClosedError());
    }
    const stack = this.#leakDetection ? new Error('acquired here').stack : undefined;
    if (this.#waiters.size === 0) {
      const lease = this.#takeIdle(stack);
      if (lease !== undefined) return Promise.resolve(lease);
    }
    // maxWaiting bounds callers queued for a resource, not those a create (running or possible) will serve.
    if (this.#o.maxWaiting !== Infinity && this.#waiters.size - (this.#o.max - this.#size()) >= this.#o.maxWaiting) {
      this.#rejectedQueueFull++;
      return this.#refuse(new PoolQueueFullError(this.#o.maxWaiting));
    }
    // A precise reading (~50 ns, only for callers that may queue): a deadline counted from a
    // cached reading could be corrected only later, and under load that correction kept
    // moving, so a busy process never timed its waiters out (FAULTS.md I1).
    const now = this.#systemClock?.precise() ?? this.#clock.now();
    if (this.#circuit !== CIRCUIT_CLOSED && this.#waiters.size >= this.#coverage(now)) {
      this.#rejectedCircuit++;
      return this.#refuse(this.#circuitError(now));
    }

    const extras: WaiterExtras | undefined = signal === undefined && stack === undefined ? undefined : { signal, stack, onAbort: undefined };
    const promise = new Promise<Lease<T>>(captureResolvers);
    const waiter = new PoolWaiter<T>(now, timeoutMs, now + timeoutMs, extras);
    this.#waiters.push(waiter, priority);
    this.#hold.set(true);
    if (waiter.deadline < this.#deadlineAt) this.#armDeadline(waiter.deadline, now);
    if (signal !== undefined) {
      const onAbort = (): void => this.#abortWaiter(waiter);
      extras!.onAbort = onAbort;
      signal.addEventListener('abort', onAbort, { once: true });
    }
    // Saturated (the common case under load): nothing idle and no room to create, so nothing for #pump to do.
    if (this.#idle.length !== 0 || this.#size() + this.#counts[CREATING]! < this.#o.max || this.#circuit !== CIRCUIT_CLOSED) this.#pump();
    return promise;
  }

  /** Pop idle resources until one passes the borrow checks; leaves one that needs a ping for #pump. */
  #takeIdle(stack: string | undefined): PoolLease<T> | undefined {
    let entry: Entry<T> | undefined;
    while ((entry = this.#idle.pop()) !== undefined) {
      const now = this.#clock.now();
      if (this.#isBroken(entry)) {
        this.#destroy(entry, 'broken');
      } else if (now >= entry.expiresAt) {
        this.#destroy(entry, this.#expiredReason(entry));
      } else if (this.#canPing && now - entry.lastUsedAt > this.#pingAfterMs) {
        this.#idle.push(entry);
        return undefined;
      } else {
        this.#setState(entry, LEASED);
        this.#acquired++;
        this.#waitTime.recordZero();
        if (channels.acquireEnd.hasSubscribers) channels.acquireEnd.publish({ pool: this.#face, waitMs: 0 });
        return this.#lease(entry, now, stack);
      }
    }
    return undefined;
  }

  #lease(entry: Entry<T>, now: number, stack: string | undefined): PoolLease<T> {
    const lease = new PoolLease(this, entry, now);
    entry.lease = lease;
    if (this.#leakDetection) {
      lease.stack = stack ?? new Error('acquired here').stack;
      this.#scheduleMaintenance(now + this.#o.leakDetectionMs, now);
    }
    return lease;
  }

  /** Hand `entry` to `waiter`, which was already removed from the queue. */
  #serve(waiter: PoolWaiter<T>, entry: Entry<T>, now: number): void {
    if (entry.state !== LEASED) this.#setState(entry, LEASED);
    const extras = waiter.extras;
    if (extras?.onAbort !== undefined) extras.signal!.removeEventListener('abort', extras.onAbort);
    this.#acquired++;
    this.#waitTime.record(now - waiter.enqueuedAt);
    if (channels.acquireEnd.hasSubscribers) channels.acquireEnd.publish({ pool: this.#face, waitMs: now - waiter.enqueuedAt });
    waiter.resolve(this.#lease(entry, now, extras?.stack));
    if (this.#waiters.size === 0) this.#syncHold();
  }

  #fail(waiter: PoolWaiter<T>, error: unknown): void {
    const extras = waiter.extras;
    if (extras?.onAbort !== undefined) extras.signal!.removeEventListener('abort', extras.onAbort);
    if (channels.acquireEnd.hasSubscribers) channels.acquireEnd.publish({ pool: this.#face, waitMs: this.#clock.now() - waiter.enqueuedAt, error });
    waiter.reject(error);
    if (this.#waiters.size === 0) this.#syncHold();
  }

  /**
   * The pool keeps the process alive exactly while a caller awaits it: a queued acquire
   * (and so the create or ping on its behalf), a reset that release() returns, a
   * warmup(), close(). An idle pool never does (README, "Process lifetime").
   */
  #syncHold(): void {
    this.#hold.set(this.#waiters.size > 0 || this.#counts[RESETTING]! > 0 || this.#warmups.length > 0 || this.#closeRunning);
  }

  /** An acquire refused before it was queued. */
  #refuse(error: unknown): Promise<never> {
    if (channels.acquireEnd.hasSubscribers) channels.acquireEnd.publish({ pool: this.#face, waitMs: 0, error });
    return Promise.reject(error);
  }

  #abortWaiter(waiter: PoolWaiter<T>): void {
    if (!this.#waiters.remove(waiter)) return;
    this.#aborted++;
    this.#fail(waiter, waiter.extras!.signal!.reason);
  }

  async withConnection<R>(fn: (resource: T, signal: AbortSignal) => Promise<R> | R, options?: AcquireOptions): Promise<R> {
    if (typeof fn !== 'function') throw InvalidPoolOptionError.expected('fn', 'a function', fn);
    const lease = await this.acquire(options);
    // One pool-wide signal, not an AbortController per call (~2.4 µs each): every lease still
    // out is abandoned at the same moment, when close() stops waiting.
    const abandoned = this.#abandoned.signal;
    const own = options?.signal;
    // Not AbortSignal.any(): on Node 20 it leaves an entry per call on the pool-wide signal
    // that is never pruned (+74 MB per million calls). Two listeners, removed when fn settles.
    const controller = own === undefined ? undefined : new AbortController();
    const forward = controller === undefined ? undefined : (event: Event): void => controller.abort((event.target as AbortSignal).reason);
    if (forward !== undefined) {
      if (own!.aborted) controller!.abort(own!.reason);
      own!.addEventListener('abort', forward, { once: true });
      abandoned.addEventListener('abort', forward, { once: true });
    }
    const resource = lease.resource;
    let result: R;
    try {
      result = await fn(resource, controller?.signal ?? abandoned);
    } catch (error) {
      if (this.#isFatal(error, resource)) await lease.destroy(error);
      else await lease.release();
      throw error;
    } finally {
      if (forward !== undefined) {
        own!.removeEventListener('abort', forward);
        abandoned.removeEventListener('abort', forward);
      }
    }
    await lease.release();
    return result;
  }

  // ---------------------------------------------------------------- release

  /** @internal */
  [kRelease](lease: PoolLease<T>, entry: Entry<T>): Promise<void> {
    const now = this.#clock.now();
    this.#leaseTime.record(now - lease.acquiredAt);
    if (channels.release.hasSubscribers) channels.release.publish({ pool: this.#face, leaseMs: now - lease.acquiredAt, destroyed: false });
    entry.lease = undefined;
    if (this.#closing) {
      this.#destroy(entry, 'closed');
    } else if (this.#draining) {
      this.#destroy(entry, 'drained');
    } else if (this.#isBroken(entry)) {
      this.#destroy(entry, 'broken');
    } else if (now >= entry.expiresAt) {
      this.#destroy(entry, this.#expiredReason(entry));
    } else if (this.#adapter.reset !== undefined) {
      // Tracked so that close() waits for it (it is bounded by resetTimeoutMs).
      const task = this.#reset(entry);
      this.#track(task);
      return task;
    } else {
      entry.lastUsedAt = now;
      this.#giveBack(entry, now);
    }
    return RESOLVED;
  }

  /** @internal */
  [kDestroy](lease: PoolLease<T>, entry: Entry<T>, reason: unknown): Promise<void> {
    const leaseMs = this.#clock.now() - lease.acquiredAt;
    this.#leaseTime.record(leaseMs);
    if (channels.release.hasSubscribers) channels.release.publish({ pool: this.#face, leaseMs, destroyed: true });
    entry.lease = undefined;
    // A reason that says the resource is dead is a breakage; anything else is the user's choice.
    return this.#destroy(entry, reason !== undefined && this.#isFatal(reason, entry.resource) ? 'broken' : 'user');
  }

  async #reset(entry: Entry<T>): Promise<void> {
    this.#setState(entry, RESETTING);
    try {
      await this.#bounded((signal) => this.#adapter.reset!(entry.resource, signal), this.#o.resetTimeoutMs, () => new PoolError(`reset took longer than resetTimeoutMs (${this.#o.resetTimeoutMs} ms)`, 'POOL_RESET_TIMEOUT'));
    } catch (error) {
      this.#report(error);
      await this.#destroy(entry, 'resetFailed');
      return;
    }
    const now = this.#clock.now();
    if (this.#closing) await this.#destroy(entry, 'closed');
    else if (this.#isBroken(entry)) await this.#destroy(entry, 'broken');
    else {
      entry.lastUsedAt = now;
      this.#giveBack(entry, now);
    }
  }

  /** A healthy resource becomes available: the next waiter gets it, or it goes idle. */
  #giveBack(entry: Entry<T>, now: number): void {
    if (this.#draining || now >= entry.expiresAt) {
      this.#destroy(entry, this.#draining ? 'drained' : this.#expiredReason(entry));
      return;
    }
    this.#expireOverdue(now);
    if (this.#waiters.size !== 0) {
      this.#serve(this.#waiters.shift()!, entry, now);
      return;
    }
    this.#setState(entry, IDLE);
    this.#idle.push(entry);
    this.#scheduleMaintenance(this.#nextDueForIdle(entry, now), now);
  }

  // ---------------------------------------------------------------- the dispatcher

  /**
   * The one place that matches waiters with resources and decides to create: called
   * after anything that changes supply or demand. Re-entrant calls are folded into the
   * running one.
   */
  #pump(): void {
    if (this.#pumping) {
      this.#pumpAgain = true;
      return;
    }
    this.#pumping = true;
    try {
      do {
        this.#pumpAgain = false;
        this.#serveFromIdle();
        if (this.#circuit !== CIRCUIT_CLOSED) this.#trimUncovered();
        this.#startCreates();
      } while (this.#pumpAgain);
    } finally {
      this.#pumping = false;
    }
  }

  #serveFromIdle(): void {
    while (this.#waiters.size > this.#borrowPings() && this.#idle.length > 0) {
      const entry = this.#idle.pop()!;
      const now = this.#clock.now();
      if (this.#isBroken(entry)) this.#destroy(entry, 'broken');
      else if (now >= entry.expiresAt) this.#destroy(entry, this.#expiredReason(entry));
      else if (this.#canPing && now - entry.lastUsedAt > this.#pingAfterMs) {
        const head = this.#waiters.peek()!;
        this.#ping(entry, Math.min(this.#o.pingTimeoutMs, Math.max(0, head.deadline - now)), false);
      } else this.#serve(this.#waiters.shift()!, entry, now);
    }
  }

  #startCreates(): void {
    const o = this.#o;
    while (!this.#closing && !this.#draining) {
      const creating = this.#counts[CREATING]!;
      const size = this.#size();
      if (size + creating >= o.max || creating >= o.maxConnecting) return;
      // Storm control: while creates fail, one attempt at a time probes the server (and
      // backs off); the others would only add load and failures. A success reopens the width.
      if (this.#consecutiveFailures > 0 && creating > 0) return;
      // No create for waiters that resources already on their way will serve.
      if (this.#waiters.size <= this.#onTheWay() && size + creating >= o.min) return;
      const now = this.#clock.now();
      // A caller waiting for a non-retryable error gets its one attempt at once; `min` alone backs off.
      const blockedUntil = this.#waiters.size > this.#onTheWay() ? this.#createBlockedUntil : Math.max(this.#createBlockedUntil, this.#topUpBlockedUntil);
      if (now < blockedUntil) {
        this.#armBackoff(now, blockedUntil);
        return;
      }
      // Last: it turns an open breaker half-open, which must mean that a probe create starts now.
      if (!this.#circuitAllowsCreate(now)) return;
      this.#startCreate();
    }
  }

  /** Borrow-time pings in flight: each ends by handing its resource to the head waiter. */
  #borrowPings(): number {
    return this.#counts[CHECKING]! - this.#keepalivePings;
  }

  /** Resources already on their way to the queue (Hikari's elision): creating, pinged for a borrower, or resetting. */
  #onTheWay(): number {
    return this.#counts[CREATING]! + this.#borrowPings() + this.#counts[RESETTING]!;
  }

  #size(): number {
    const c = this.#counts;
    return c[IDLE]! + c[LEASED]! + c[CHECKING]! + c[RESETTING]!;
  }

  #setState(entry: Entry<T>, to: State): void {
    const from = entry.state;
    if ((ALLOWED[from]! & (1 << to)) === 0) {
      throw new Error(`lifeguard internal error: illegal resource transition ${STATE_NAMES[from]} -> ${STATE_NAMES[to]}`);
    }
    this.#counts[from]!--;
    this.#counts[to]!++;
    entry.state = to;
    if (from === RESETTING || to === RESETTING) this.#syncHold();
    // Idle resources must not keep the process alive; a caller's must (their I/O is awaited).
    if (this.#adapter.ref !== undefined && (to === IDLE || (to === LEASED && from !== RESETTING))) this.#ref(entry, to === LEASED);
  }

  #ref(entry: Entry<T>, active: boolean): void {
    try {
      this.#adapter.ref!(entry.resource, active);
    } catch (error) {
      this.#report(error);
    }
  }

  // ---------------------------------------------------------------- creates

  #startCreate(): void {
    const entry = new Entry<T>();
    entry.generation = this.#generation;
    this.#counts[CREATING]!++;
    this.#entries.add(entry);
    const probe = this.#circuit === CIRCUIT_HALF_OPEN;
    this.#track(this.#runCreate(entry, probe));
  }

  async #runCreate(entry: Entry<T>, probe: boolean): Promise<void> {
    const started = this.#clock.now();
    let attempts = 0;
    let gaveUp = false;
    try {
      const resource = await pRetry(
        (attempt) => {
          attempts = attempt;
          return this.#attemptCreate(attempt, entry);
        },
        {
          // A probe is a single attempt: its result alone decides the breaker.
          retries: probe ? 0 : this.#o.retry.retries,
          // p-retry sleeps on the global timers; the backoff sleep happens in shouldRetry on the pool's clock.
          minTimeout: 0,
          maxTimeout: 0,
          shouldRetry: async ({ retriesConsumed }) => {
            const retry = await this.#backoffBeforeRetry(retriesConsumed);
            gaveUp = !retry;
            return retry;
          },
          signal: this.#closeController.signal,
        },
      );
      this.#onCreated(entry, resource, started);
    } catch (error) {
      this.#setState(entry, DESTROYED);
      this.#entries.delete(entry);
      this.#checkEmpty();
      if (this.#closing || !(error instanceof AttemptFailure)) return;
      if (error.fatal) {
        this.#failHead(new CreateResourceError('Creating a resource failed with a non-retryable error', error.error, attempts));
      } else if (!gaveUp && !probe) {
        this.#failHead(new CreateResourceError(`Creating a resource failed after ${attempts} attempts`, error.error, attempts));
      }
    } finally {
      this.#pump();
    }
  }

  /** One create attempt, bounded by createTimeoutMs; a value that arrives too late is destroyed, never leaked. */
  async #attemptCreate(attempt: number, entry: Entry<T>): Promise<T> {
    const failuresBefore = this.#failureSeq;
    const startedAt = this.#clock.now();
    let made: T | undefined;
    // Deferred: the adapter calls it from inside a driver's event handler.
    const evict = (): void => queueMicrotask(() => this.#evictInBackground(entry, made));
    const controller = new AbortController();
    const closeSignal = this.#closeController.signal;
    const onClose = (): void => controller.abort(closeSignal.reason);
    closeSignal.addEventListener('abort', onClose, { once: true });
    const timeoutMs = this.#o.createTimeoutMs;
    let timer: ClockTimer | undefined;
    try {
      const resource = await new Promise<T>((resolve, reject) => {
        if (timeoutMs !== Infinity) {
          timer = this.#clock.setTimeout(() => {
            const error = new CreateTimeoutError(timeoutMs);
            controller.abort(error);
            reject(error);
          }, timeoutMs);
        }
        controller.signal.addEventListener('abort', () => reject(controller.signal.reason), { once: true });
        let created: Promise<T>;
        try {
          created = this.#adapter.create({ signal: controller.signal, attempt, evict });
        } catch (error) {
          reject(error);
          return;
        }
        // Tracked until it settles, and a late value until it is destroyed: close() waits for
        // both, so that once it resolves no resource of the pool exists.
        this.#track(
          Promise.resolve(created).then(
            (value) => (controller.signal.aborted ? this.#abandon(value) : resolve(value)),
            reject,
          ),
        );
      });
      if (resource === undefined || resource === null) {
        throw new AttemptFailure(new TypeError(`adapter.create() resolved no resource (got ${String(resource)})`), true);
      }
      made = resource;
      if (channels.create.hasSubscribers) channels.create.publish({ pool: this.#face, attempt, durationMs: this.#clock.now() - startedAt });
      return resource;
    } catch (caught) {
      const failure = caught instanceof AttemptFailure ? caught : new AttemptFailure(caught, this.#isRetryable(caught) === false);
      if (channels.create.hasSubscribers) channels.create.publish({ pool: this.#face, attempt, durationMs: this.#clock.now() - startedAt, error: failure.error });
      if (!this.#closing) this.#onCreateFailed(failure, failuresBefore === this.#failureSeq);
      throw failure.fatal ? new AbortError(failure) : failure;
    } finally {
      if (timer !== undefined) this.#clock.clearTimeout(timer);
      closeSignal.removeEventListener('abort', onClose);
    }
  }

  /**
   * `news`: no other attempt failed while this one ran. Attempts that were in flight
   * together when the server went away fail together; they are one piece of news, not
   * `maxConnecting` of them, so a brief outage does not trip the breaker at once.
   */
  #onCreateFailed(failure: AttemptFailure, news: boolean): void {
    const now = this.#clock.now();
    this.#createFailed++;
    this.#failureSeq++;
    this.#lastCreateError = failure.error;
    if (news || this.#consecutiveFailures === 0) this.#consecutiveFailures++;
    const backoffUntil = now + this.#backoffDelay(this.#failureStreak());
    if (!failure.fatal) this.#createBlockedUntil = Math.max(this.#createBlockedUntil, backoffUntil);
    this.#topUpBlockedUntil = Math.max(this.#topUpBlockedUntil, backoffUntil);
    if (this.#waiters.size === 0) this.#report(failure.error);
    const breaker = this.#o.circuitBreaker;
    if (breaker !== false && (this.#circuit === CIRCUIT_HALF_OPEN || (this.#circuit === CIRCUIT_CLOSED && this.#consecutiveFailures >= breaker.failureThreshold))) {
      this.#openCircuit(now);
    }
    // A retryable failure may mean the server is unreachable: watch for its return.
    if (!failure.fatal) this.#startProbing();
    this.#settleWarmups(failure.error);
  }

  #onCreated(entry: Entry<T>, resource: T, started: number): void {
    const now = this.#clock.now();
    this.#consecutiveFailures = 0;
    this.#backoffBase = 0;
    this.#createBlockedUntil = 0;
    this.#topUpBlockedUntil = 0;
    if (this.#circuit !== CIRCUIT_CLOSED) this.#closeCircuit();
    entry.resource = resource;
    entry.createdAt = now;
    entry.lastUsedAt = now;
    entry.expiresAt = this.#expiryFor(now);
    this.#created++;
    this.#createTime.record(now - started);
    if (this.#closing) {
      void this.#destroy(entry, 'closed');
      return;
    }
    if (entry.generation !== this.#generation) entry.expiresAt = -Infinity;
    this.#giveBack(entry, now);
    if (this.#warmups.length > 0 && this.#size() >= this.#o.min) this.#settleWarmups();
  }

  /**
   * A new resource's expiry: up to LIFETIME_SPREAD of maxLifetimeMs early, at the point of
   * that window farthest from the expiries of the resources alive now, so that resources
   * created together (a burst, `min` at start) retire one by one instead of in one wave.
   */
  #expiryFor(now: number): number {
    const lifetime = this.#o.maxLifetimeMs;
    if (lifetime === Infinity) return Infinity;
    const latest = now + lifetime;
    const earliest = latest - LIFETIME_SPREAD * lifetime;
    let count = 0;
    const others = new Float64Array(this.#entries.size);
    for (const entry of this.#entries) {
      const state = entry.state;
      if ((state === IDLE || state === LEASED || state === CHECKING || state === RESETTING) && Number.isFinite(entry.expiresAt)) others[count++] = entry.expiresAt;
    }
    if (count === 0) return earliest + (latest - earliest) * Math.random();
    // Sorted, the farthest point from every expiry is an end of the window or the middle of
    // the widest gap between neighbours: O(n log n) per create (a scan of every pair made
    // filling max 2,000 take 14 s).
    const sorted = others.subarray(0, count).sort();
    let best = latest;
    let bestDistance = nearest(sorted, latest);
    const startDistance = nearest(sorted, earliest);
    if (startDistance > bestDistance) {
      best = earliest;
      bestDistance = startDistance;
    }
    for (let i = 1; i < count; i++) {
      const mid = (sorted[i - 1]! + sorted[i]!) / 2;
      const distance = (sorted[i]! - sorted[i - 1]!) / 2;
      if (mid > earliest && mid < latest && distance > bestDistance) {
        best = mid;
        bestDistance = distance;
      }
    }
    return best;
  }

  /** Sleep the backoff on the pool's clock; false when nobody needs the retry any more. */
  async #backoffBeforeRetry(retriesConsumed: number): Promise<boolean> {
    // One retrying create is enough while failing (storm control, see #startCreates).
    if (this.#closing || this.#circuit !== CIRCUIT_CLOSED || this.#counts[CREATING]! > 1) return false;
    // The pool-wide streak, not this loop's own count: a loop started mid-outage must not back
    // off from scratch; but once the server came back, the backoff starts over.
    const delay = this.#backoffDelay(this.#backoffBase > 0 ? this.#failureStreak() : Math.max(retriesConsumed, this.#failureStreak()));
    if (!this.#createStillWanted(this.#clock.now() + delay)) return false;
    await this.#sleepBackoff(delay);
    return !this.#closing && this.#circuit === CIRCUIT_CLOSED && this.#createStillWanted(this.#clock.now());
  }

  /** Failed creates in a row since the last success, or since the server came back (0 for the first). */
  #failureStreak(): number {
    return Math.max(0, this.#consecutiveFailures - 1 - this.#backoffBase);
  }

  /** Sleep `ms` on the pool's clock; cut short by close() or by the server coming back. */
  #sleepBackoff(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const closeSignal = this.#closeController.signal;
      const wake = (): void => {
        this.#clock.clearTimeout(timer);
        closeSignal.removeEventListener('abort', wake);
        this.#retryWakers.delete(wake);
        resolve();
      };
      const timer = this.#clock.setTimeout(wake, ms);
      if (closeSignal.aborted) return wake();
      closeSignal.addEventListener('abort', wake, { once: true });
      this.#retryWakers.add(wake);
    });
  }

  /**
   * p-retry's formula, min * factor^n, times [1, 2) when randomized, capped at max; except
   * that at the cap the jitter is kept: [max/2, max) (never below minTimeoutMs) instead of
   * exactly max, so that retries do not fall into lockstep once the backoff has grown.
   */
  #backoffDelay(retriesConsumed: number): number {
    const { minTimeoutMs, maxTimeoutMs, factor, randomize } = this.#o.retry;
    const delay = minTimeoutMs * factor ** retriesConsumed;
    if (!randomize) return Math.min(delay, maxTimeoutMs);
    const low = Math.min(delay, Math.max(minTimeoutMs, maxTimeoutMs / 2));
    return Math.min(low * (1 + Math.random()), maxTimeoutMs);
  }

  /** Is a create in flight still needed at time `at`: for `min`, or for a waiter whose deadline is later? */
  #createStillWanted(at: number): boolean {
    if (this.#draining) return false;
    const creating = this.#counts[CREATING]!;
    if (this.#size() + creating <= this.#o.min) return true;
    // Others on the way: every resource on its way to the queue except this create itself.
    return this.#waiters.size > this.#onTheWay() - 1 && this.#waiters.latestDeadline() > at;
  }

  /** An adapter reported that an idle resource died: destroy it now (a leased one is checked on release). */
  #evictInBackground(entry: Entry<T>, resource: T | undefined): void {
    if (resource === undefined || entry.resource !== resource || entry.state !== IDLE || this.#closing) return;
    this.#destroy(entry, 'broken');
  }

  /** Destroy a resource that arrived after its attempt was given up (timeout or close). */
  #abandon(resource: T): Promise<void> | undefined {
    if (resource === undefined || resource === null) return undefined;
    return this.#bounded((signal) => this.#adapter.destroy(resource, signal), this.#o.destroyTimeoutMs, () => new DestroyTimeoutError(this.#o.destroyTimeoutMs)).catch((error) =>
      this.#report(error),
    );
  }

  /** A create that cannot succeed fails the acquire it was started for: the oldest waiter. */
  #failHead(error: CreateResourceError): void {
    const waiter = this.#waiters.shift();
    if (waiter === undefined) return;
    this.#rejectedCreate++;
    this.#fail(waiter, error);
  }

  // ---------------------------------------------------------------- circuit breaker

  #openCircuit(now: number): void {
    if (this.#circuit === CIRCUIT_CLOSED && channels.breakerOpen.hasSubscribers) channels.breakerOpen.publish({ pool: this.#face, cause: this.#lastCreateError });
    this.#circuit = CIRCUIT_OPEN;
    this.#circuitOpenedAt = now;
    const cooldownMs = (this.#o.circuitBreaker as Required<{ cooldownMs: number }>).cooldownMs;
    if (this.#breakerTimer !== undefined) this.#clock.clearTimeout(this.#breakerTimer);
    // After the cooldown, let #pump probe if someone (a waiter or `min`) wants a resource.
    this.#breakerTimer = this.#clock.setTimeout(() => {
      this.#breakerTimer = undefined;
      this.#pump();
    }, cooldownMs);
  }

  #closeCircuit(): void {
    if (channels.breakerClose.hasSubscribers) channels.breakerClose.publish({ pool: this.#face });
    this.#circuit = CIRCUIT_CLOSED;
    if (this.#breakerTimer !== undefined) this.#clock.clearTimeout(this.#breakerTimer);
    this.#breakerTimer = undefined;
  }

  #cooldownOver(now: number): boolean {
    return this.#circuit === CIRCUIT_OPEN && now >= this.#circuitOpenedAt + (this.#o.circuitBreaker as Required<{ cooldownMs: number }>).cooldownMs;
  }

  #circuitAllowsCreate(now: number): boolean {
    if (this.#circuit === CIRCUIT_CLOSED) return true;
    if (!this.#cooldownOver(now)) return false;
    this.#circuit = CIRCUIT_HALF_OPEN;
    return true;
  }

  /**
   * While the circuit is not closed, how many waiters can expect a resource without a new
   * create: each creating one, the probe, and each live resource once per lease it can
   * still serve within the acquire timeout (judged by the p99 lease time seen so far; one
   * each before any lease came back). A pool that lost some of its connections keeps
   * serving its waiters with the rest instead of failing them fast.
   */
  #coverage(now: number): number {
    const c = this.#counts;
    const live = c[IDLE]! + c[LEASED]! + c[CHECKING]! + c[RESETTING]!;
    let turns = 1;
    if (live > 0) {
      const leaseTime = this.#leaseTime.summary();
      if (leaseTime.count > 0) turns = Math.max(1, Math.floor(this.#o.acquireTimeoutMs / Math.max(leaseTime.p99, 0.001)));
    }
    return live * turns + c[CREATING]! + (this.#cooldownOver(now) ? 1 : 0);
  }

  #circuitError(now: number): CircuitOpenError {
    const cooldownMs = this.#o.circuitBreaker === false ? 0 : this.#o.circuitBreaker.cooldownMs;
    return new CircuitOpenError(this.#lastCreateError, this.#circuitOpenedAt + cooldownMs - now);
  }

  /** Waiters beyond what leases and in-flight creates can serve would only wait out their deadline: fail them now. */
  #trimUncovered(): void {
    const now = this.#clock.now();
    const coverage = this.#coverage(now);
    while (this.#waiters.size > coverage) {
      const waiter = this.#waiters.last()!;
      this.#waiters.remove(waiter);
      this.#rejectedCircuit++;
      this.#fail(waiter, this.#circuitError(now));
    }
  }

  // ---------------------------------------------------------------- recovery probe

  /**
   * While creates fail with retryable errors, probe the server every probeIntervalMs (the
   * adapter's cheap check, no login). The backoff keeps login attempts to about one per
   * step; the probe notices the server's return within an interval, so callers are served
   * again within ~probeIntervalMs + one create of it.
   */
  #startProbing(): void {
    if (this.#adapter.probe === undefined || this.#o.probeIntervalMs === Infinity || this.#probeTimer !== undefined || this.#closing) return;
    this.#probeRound++;
    this.#probeSawFailure = false;
    this.#probeTimer = this.#clock.setTimeout(this.#probeOnce, this.#o.probeIntervalMs);
  }

  #stopProbing(): void {
    this.#probeRound++;
    if (this.#probeTimer !== undefined) this.#clock.clearTimeout(this.#probeTimer);
    this.#probeTimer = undefined;
  }

  /**
   * One probe per interval, whether or not the earlier ones have answered: a connection a
   * proxy holds while its server starts (docker's port forwarding does) may answer only at
   * its timeout, and the next one, started after the server is up, answers at once.
   */
  readonly #probeOnce = (): void => {
    this.#probeTimer = undefined;
    if (this.#closing || this.#consecutiveFailures === 0) return;
    this.#probeTimer = this.#clock.setTimeout(this.#probeOnce, this.#o.probeIntervalMs);
    const boundMs = Math.max(this.#o.probeIntervalMs, 1000);
    if (this.#probesInFlight >= Math.ceil(boundMs / this.#o.probeIntervalMs)) return;
    this.#probesInFlight++;
    const round = this.#probeRound;
    const probed = this.#bounded((signal) => this.#adapter.probe!(signal), boundMs, () => new PoolError(`probe took longer than ${boundMs} ms`, 'POOL_PROBE_TIMEOUT')).then(
      () => this.#onProbe(round, true),
      () => this.#onProbe(round, false),
    );
    this.#track(probed);
  };

  #onProbe(round: number, reachable: boolean): void {
    this.#probesInFlight--;
    if (round !== this.#probeRound || this.#closing) return;
    if (this.#consecutiveFailures === 0) return this.#stopProbing();
    if (!reachable) {
      this.#probeSawFailure = true;
      return;
    }
    // Reachable from the first probe: the failures are not about reachability (the server
    // refuses logins, say), so the backoff runs its course. The next failure probes again.
    const back = this.#probeSawFailure;
    this.#stopProbing();
    if (back) this.#serverBack();
  }

  /** The probe saw the server return: end the backoff and an open breaker's cooldown, and create now. */
  #serverBack(): void {
    this.#backoffBase = this.#consecutiveFailures;
    this.#createBlockedUntil = 0;
    this.#topUpBlockedUntil = 0;
    if (this.#backoffTimer !== undefined) this.#clock.clearTimeout(this.#backoffTimer);
    this.#backoffTimer = undefined;
    if (this.#circuit === CIRCUIT_OPEN && this.#o.circuitBreaker !== false) {
      this.#circuitOpenedAt = this.#clock.now() - this.#o.circuitBreaker.cooldownMs;
      if (this.#breakerTimer !== undefined) this.#clock.clearTimeout(this.#breakerTimer);
      this.#breakerTimer = undefined;
    }
    for (const wake of [...this.#retryWakers]) wake();
    this.#pump();
  }

  // ---------------------------------------------------------------- health

  /** Ping an idle resource (already out of the idle list, so nobody else can take it). */
  #ping(entry: Entry<T>, boundMs: number, keepalive: boolean): void {
    this.#setState(entry, CHECKING);
    if (keepalive) this.#keepalivePings++;
    const pinged = this.#bounded((signal) => this.#adapter.ping!(entry.resource, signal), boundMs, () => new PingTimeoutError(boundMs));
    const task = (keepalive ? pinged.finally(() => this.#keepalivePings--) : pinged).then(
      () => {
        const now = this.#clock.now();
        entry.lastUsedAt = now;
        if (this.#closing) return this.#destroy(entry, 'closed');
        if (this.#isBroken(entry)) return this.#destroy(entry, 'broken');
        this.#giveBack(entry, now);
        this.#pump();
        return undefined;
      },
      (error: unknown) => {
        if (keepalive) this.#report(error);
        return this.#destroy(entry, this.#closing ? 'closed' : 'pingFailed');
      },
    );
    this.#track(task);
  }

  #isBroken(entry: Entry<T>): boolean {
    const isBroken = this.#adapter.isBroken;
    if (isBroken === undefined) return false;
    try {
      return isBroken.call(this.#adapter, entry.resource) === true;
    } catch (error) {
      this.#report(error);
      return true;
    }
  }

  #isRetryable(error: unknown): boolean {
    const isRetryable = this.#adapter.isRetryable;
    if (isRetryable === undefined) return true;
    try {
      return isRetryable.call(this.#adapter, error) !== false;
    } catch (hookError) {
      this.#report(hookError);
      return true;
    }
  }

  #isFatal(error: unknown, resource: T): boolean {
    const isFatal = this.#adapter.isFatal;
    if (isFatal === undefined) return false;
    try {
      return isFatal.call(this.#adapter, error, resource) === true;
    } catch (hookError) {
      this.#report(hookError);
      return false;
    }
  }

  // ---------------------------------------------------------------- destroy

  /** Free the slot now and close the resource in the background, bounded by destroyTimeoutMs. */
  #destroy(entry: Entry<T>, reason: DestroyReason): Promise<void> {
    if (entry.state === IDLE) {
      const index = this.#idle.lastIndexOf(entry);
      if (index !== -1) this.#idle.splice(index, 1);
    }
    this.#setState(entry, DESTROYING);
    this.#destroyed++;
    this.#destroyedBy[reason]++;
    if (channels.destroy.hasSubscribers) channels.destroy.publish({ pool: this.#face, reason });
    const lease = entry.lease;
    entry.lease = undefined;
    lease?.revoke();
    const task = this.#bounded((signal) => this.#adapter.destroy(entry.resource, signal), this.#o.destroyTimeoutMs, () => new DestroyTimeoutError(this.#o.destroyTimeoutMs))
      .catch((error: unknown) => this.#report(error))
      .finally(() => {
        this.#setState(entry, DESTROYED);
        this.#entries.delete(entry);
        this.#checkEmpty();
      });
    this.#track(task);
    if (this.#closing) this.#checkDrained();
    else this.#pump();
    return task;
  }

  /**
   * Run an adapter hook with a signal that aborts after `ms`; a hook that throws
   * synchronously or never settles still ends here.
   */
  #bounded(hook: (signal: AbortSignal) => Promise<void>, ms: number, timeoutError: () => Error): Promise<void> {
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

  #track(task: Promise<unknown>): void {
    this.#pending.add(task);
    const forget = (): void => {
      this.#pending.delete(task);
    };
    task.then(forget, forget);
  }

  #report(error: unknown): void {
    try {
      this.#o.onError(error);
    } catch {
      // A throwing onError must not break the pool; there is nowhere left to report it.
    }
  }

  // ---------------------------------------------------------------- timers

  #armDeadline(at: number, now: number): void {
    if (this.#deadlineTimer !== undefined) this.#clock.clearTimeout(this.#deadlineTimer);
    this.#deadlineAt = at;
    this.#deadlineTimer = at === Infinity ? undefined : this.#clock.setTimeout(this.#onDeadline, Math.max(0, at - now));
  }

  /**
   * Time out the waiters already past their deadline before a resource is handed to one:
   * when timers run late (a blocked event loop), a release that runs before the deadline
   * timer must not serve an acquire that has already expired.
   */
  #expireOverdue(now: number): void {
    if (now < this.#deadlineAt) return;
    if (this.#deadlineTimer !== undefined) this.#clock.clearTimeout(this.#deadlineTimer);
    this.#onDeadline();
  }

  readonly #onDeadline = (): void => {
    this.#deadlineTimer = undefined;
    this.#deadlineAt = Infinity;
    const now = this.#systemClock?.precise() ?? this.#clock.now();
    const next = this.#waiters.expire(now, (waiter) => this.#timeOut(waiter));
    if (next !== Infinity && next < this.#deadlineAt) this.#armDeadline(next, now);
  };


  #timeOut(waiter: PoolWaiter<T>): void {
    this.#timedOut++;
    const c = this.#counts;
    const failing = this.#consecutiveFailures > 0;
    const reason: AcquireTimeoutReason = failing ? 'create-failing' : c[CREATING]! > 0 ? 'slow-create' : c[CHECKING]! > 0 ? 'slow-ping' : 'saturated';
    const stats = { max: this.#o.max, size: this.#size(), idle: c[IDLE]!, leased: c[LEASED]!, creating: c[CREATING]!, waiting: this.#waiters.size + 1 };
    const error = new AcquireTimeoutError(waiter.timeoutMs, reason, stats, failing ? this.#lastCreateError : undefined);
    if (channels.timeout.hasSubscribers) channels.timeout.publish({ pool: this.#face, error });
    this.#fail(waiter, error);
  }

  #armBackoff(now: number, until: number): void {
    if (this.#backoffTimer !== undefined) return;
    this.#backoffTimer = this.#clock.setTimeout(() => {
      this.#backoffTimer = undefined;
      this.#pump();
    }, Math.max(0, until - now));
  }

  #nextDueForIdle(entry: Entry<T>, now: number): number {
    const o = this.#o;
    let due = entry.expiresAt;
    // An idle deadline already past means the resource was kept for `min`: no reason to wake up for it.
    const idleDue = entry.lastUsedAt + o.idleTimeoutMs;
    if (idleDue > now) due = Math.min(due, idleDue);
    if (o.keepaliveMs !== Infinity && this.#canPing) due = Math.min(due, entry.lastUsedAt + o.keepaliveMs);
    return due;
  }

  #scheduleMaintenance(at: number, now: number): void {
    if (at >= this.#maintenanceAt || at === Infinity || this.#closing) return;
    if (this.#maintenanceTimer !== undefined) this.#clock.clearTimeout(this.#maintenanceTimer);
    this.#maintenanceAt = at;
    this.#maintenanceTimer = this.#clock.setTimeout(this.#maintain, Math.max(0, at - now));
  }

  /** Background housekeeping: retire idle and expired resources, keepalive pings, leak reports, top up `min`. */
  readonly #maintain = (): void => {
    this.#maintenanceTimer = undefined;
    this.#maintenanceAt = Infinity;
    if (this.#closing) return;
    const o = this.#o;
    const now = this.#clock.now();
    let next = Infinity;
    for (const entry of [...this.#idle]) {
      if (this.#isBroken(entry)) this.#destroy(entry, 'broken');
      else if (now >= entry.expiresAt) this.#destroy(entry, this.#expiredReason(entry));
      else if (now >= entry.lastUsedAt + o.idleTimeoutMs && this.#size() > o.min) this.#destroy(entry, 'idle');
      else if (this.#canPing && now >= entry.lastUsedAt + o.keepaliveMs) {
        this.#idle.splice(this.#idle.indexOf(entry), 1);
        this.#ping(entry, o.pingTimeoutMs, true);
      } else next = Math.min(next, this.#nextDueForIdle(entry, now));
    }
    if (this.#leakDetection) {
      for (const entry of this.#entries) {
        const lease = entry.lease;
        if (lease === undefined || lease.leakReported) continue;
        // Compared as scheduled (acquiredAt + limit), not as a difference: in floating point they can disagree.
        if (now >= lease.acquiredAt + o.leakDetectionMs) {
          lease.leakReported = true;
          const error = new LeakDetectedError(now - lease.acquiredAt, lease.stack);
          if (channels.leak.hasSubscribers) channels.leak.publish({ pool: this.#face, error });
          this.#report(error);
        } else next = Math.min(next, lease.acquiredAt + o.leakDetectionMs);
      }
    }
    this.#pump();
    this.#scheduleMaintenance(next, now);
  };

  // ---------------------------------------------------------------- drain, invalidate

  get draining(): boolean {
    return this.#draining;
  }

  drain(): Promise<void> {
    if (this.#closing) return this.#closePromise!;
    if (this.#drainPromise !== undefined) return this.#drainPromise;
    this.#draining = true;
    this.#settleWarmups(new PoolError('Pool drained before warmup finished', 'POOL_DRAINED'));
    this.#drainPromise = new Promise<void>((resolve) => {
      this.#onEmpty = resolve;
    });
    for (const entry of [...this.#idle]) this.#destroy(entry, 'drained');
    this.#checkEmpty();
    return this.#drainPromise;
  }

  resume(): void {
    if (!this.#draining) return;
    this.#draining = false;
    this.#drainPromise = undefined;
    this.#settleEmpty();
    if (!this.#closing) this.#pump();
  }

  invalidate(): void {
    if (this.#closing) return;
    this.#generation++;
    for (const entry of this.#entries) {
      // Creating entries are judged by their generation when they finish (#onCreated).
      if (entry.state !== CREATING && entry.state !== DESTROYING && entry.state !== DESTROYED) entry.expiresAt = -Infinity;
    }
    for (const entry of [...this.#idle]) this.#destroy(entry, 'invalidated');
  }

  /** Past its lifetime, or retired by invalidate(). */
  #expiredReason(entry: Entry<T>): DestroyReason {
    return entry.expiresAt === -Infinity ? 'invalidated' : 'lifetime';
  }

  #checkEmpty(): void {
    if (this.#onEmpty !== undefined && this.#entries.size === 0) this.#settleEmpty();
  }

  #settleEmpty(): void {
    const resolve = this.#onEmpty;
    this.#onEmpty = undefined;
    resolve?.();
  }

  // ---------------------------------------------------------------- warmup, stats, close

  /** Resolve every pending warmup(), or reject them with `error`. */
  #settleWarmups(error?: unknown): void {
    const warmups = this.#warmups.splice(0);
    for (const warmup of warmups) {
      if (error === undefined) warmup.resolve();
      else warmup.reject(error);
    }
    this.#syncHold();
  }

  warmup(): Promise<void> {
    if (this.#closing) return Promise.reject(new PoolClosedError());
    if (this.#size() >= this.#o.min) return RESOLVED;
    const done = new Promise<void>((resolve, reject) => this.#warmups.push({ resolve, reject }));
    this.#syncHold();
    this.#pump();
    return done;
  }

  health(): PoolHealth {
    const c = this.#counts;
    const size = this.#size();
    const base = { size, max: this.#o.max, waiting: this.#waiters.size, circuit: CIRCUIT_NAMES[this.#circuit]! };
    const cause = (): string => {
      const error = this.#lastCreateError;
      return error instanceof Error ? error.message : String(error);
    };
    if (this.#closing) return { status: 'closed', reason: 'the pool is closed', ...base };
    if (this.#circuit !== CIRCUIT_CLOSED) {
      return { status: 'down', reason: `circuit breaker open after ${this.#consecutiveFailures} failed creates: ${cause()}`, lastError: this.#lastCreateError, ...base };
    }
    if (this.#consecutiveFailures > 0) {
      const live = size - c[RESETTING]!;
      return live === 0
        ? { status: 'down', reason: `no connection and creates failing (${this.#consecutiveFailures} in a row): ${cause()}`, lastError: this.#lastCreateError, ...base }
        : { status: 'degraded', reason: `creates failing (${this.#consecutiveFailures} in a row): ${cause()}`, lastError: this.#lastCreateError, ...base };
    }
    if (this.#draining) return { status: 'degraded', reason: 'draining: no new connections until resume()', ...base };
    if (this.#waiters.size > this.#o.max) {
      return { status: 'degraded', reason: `saturated: ${this.#waiters.size} callers waiting for ${this.#o.max} connections`, ...base };
    }
    return { status: 'ok', ...base };
  }

  stats(): PoolStats {
    const c = this.#counts;
    return {
      max: this.#o.max,
      min: this.#o.min,
      size: this.#size(),
      idle: c[IDLE]!,
      leased: c[LEASED]!,
      creating: c[CREATING]!,
      checking: c[CHECKING]!,
      resetting: c[RESETTING]!,
      destroying: c[DESTROYING]!,
      waiting: this.#waiters.size,
      acquired: this.#acquired,
      timedOut: this.#timedOut,
      aborted: this.#aborted,
      rejected: { closed: this.#rejectedClosed, queueFull: this.#rejectedQueueFull, circuitOpen: this.#rejectedCircuit, createFailed: this.#rejectedCreate },
      created: this.#created,
      createFailed: this.#createFailed,
      destroyed: this.#destroyed,
      destroyedByReason: { ...this.#destroyedBy },
      circuit: CIRCUIT_NAMES[this.#circuit]!,
      draining: this.#draining,
      consecutiveCreateFailures: this.#consecutiveFailures,
      waitTime: this.#waitTime.summary(),
      leaseTime: this.#leaseTime.summary(),
      createTime: this.#createTime.summary(),
    };
  }

  close(options?: { timeoutMs?: number }): Promise<void> {
    if (this.#closePromise !== undefined) return this.#closePromise;
    let timeoutMs = 30_000;
    if (options !== undefined) {
      const given = (options as { timeoutMs?: unknown } | null)?.timeoutMs;
      if (typeof options !== 'object' || options === null || Object.keys(options).some((key) => key !== 'timeoutMs')) {
        return Promise.reject(InvalidPoolOptionError.expected('close options', 'an object with only `timeoutMs`', options));
      }
      if (given !== undefined) {
        if (typeof given !== 'number' || Number.isNaN(given) || given < 0) {
          return Promise.reject(InvalidPoolOptionError.expected('timeoutMs', 'a number of milliseconds >= 0 (or Infinity)', given));
        }
        timeoutMs = given;
      }
    }
    this.#closing = true;
    this.#closeRunning = true;
    this.#syncHold();
    this.#closePromise = this.#close(timeoutMs).finally(() => {
      this.#closeRunning = false;
      this.#hold.dispose();
    });
    return this.#closePromise;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  async #close(timeoutMs: number): Promise<void> {
    const startedAt = this.#clock.now();
    for (const waiter of [...this.#waiters]) {
      this.#waiters.remove(waiter);
      this.#rejectedClosed++;
      this.#fail(waiter, new PoolClosedError('Pool closed while this acquire was waiting'));
    }
    this.#settleWarmups(new PoolClosedError());
    this.#closeController.abort(new PoolClosedError());
    this.#clearTimers();
    for (const entry of [...this.#idle]) this.#destroy(entry, 'closed');

    // Destroys started from here on get destroyTimeoutMs of their own past the close deadline.
    let deadline = startedAt + timeoutMs;
    if (this.#outstanding() > 0) {
      await this.#waitUntil(deadline, (wake) => {
        this.#onDrained = wake;
      });
      this.#onDrained = undefined;
      // Leases still out after the timeout: destroy their resources; a late release() is a no-op.
      if (this.#outstanding() > 0) {
        this.#abandoned.abort(new PoolClosedError('Pool closed while this lease was held; its resource was destroyed'));
        deadline = Math.max(deadline, this.#clock.now() + this.#o.destroyTimeoutMs);
      }
      const held = this.#counts[LEASED]!;
      if (held > 0) {
        this.#report(
          new PoolClosedError(`close() stopped waiting after ${timeoutMs} ms: ${held} ${held === 1 ? 'lease was' : 'leases were'} still held; their resources were destroyed`),
        );
      }
      for (const entry of [...this.#entries]) if (entry.state === LEASED) this.#destroy(entry, 'closed');
    }
    // Creates still settling (a driver that ignores the abort) and destroys: once close()
    // resolves no resource of the pool is left, unless an adapter outlived the deadline.
    while (this.#pending.size > 0) {
      const settled = await this.#waitUntil(deadline, (wake) => void Promise.allSettled([...this.#pending]).then(wake));
      if (!settled) {
        this.#report(new PoolError(`close() stopped waiting after ${timeoutMs} ms: ${this.#pending.size} adapter calls (creates or destroys) had not settled`, 'POOL_CLOSE_TIMEOUT'));
        break;
      }
    }
    this.#clearTimers();
    this.#settleEmpty();
  }

  /** Wait until `arm`'s wake is called (true) or the clock reaches `deadline` (false). */
  #waitUntil(deadline: number, arm: (wake: () => void) => void): Promise<boolean> {
    return new Promise<boolean>((resolve) => {
      let timer: ClockTimer | undefined;
      const wake = (): void => {
        if (timer !== undefined) this.#clock.clearTimeout(timer);
        resolve(true);
      };
      if (deadline !== Infinity) timer = this.#clock.setTimeout(() => resolve(false), Math.max(0, deadline - this.#clock.now()));
      arm(wake);
    });
  }

  /** Resources that close() must wait for before destroying: leased, resetting or being pinged. */
  #outstanding(): number {
    const c = this.#counts;
    return c[LEASED]! + c[RESETTING]! + c[CHECKING]!;
  }

  #checkDrained(): void {
    if (this.#onDrained !== undefined && this.#outstanding() === 0) this.#onDrained();
  }

  #clearTimers(): void {
    for (const timer of [this.#deadlineTimer, this.#maintenanceTimer, this.#backoffTimer, this.#breakerTimer, this.#probeTimer]) {
      if (timer !== undefined) this.#clock.clearTimeout(timer);
    }
    this.#deadlineTimer = this.#maintenanceTimer = this.#backoffTimer = this.#breakerTimer = this.#probeTimer = undefined;
    this.#deadlineAt = this.#maintenanceAt = Infinity;
  }
}
