import { systemClock, type Clock } from './clock.js';
import { InvalidPoolOptionError } from './errors.js';
import { duration, integer, optionalFunction, rejectUnknownKeys } from './validate.js';
import { resolveCongestion, type CongestionOptions, type QueuePolicy } from './congestion.js';

/** What `Adapter.create` gets: the attempt's signal and number, and a way to report a later death. */
export interface CreateContext {
  /** Aborts when the attempt exceeds `createTimeoutMs` or the pool closes: stop connecting. */
  readonly signal: AbortSignal;
  /** 1 for the first attempt of a create, 2 for its first retry, … */
  readonly attempt: number;
  /**
   * The resource made by this call died in the background, or (`'invalidated'`) the adapter
   * retired it, as `invalidate()` does for all: an idle one is destroyed now and counted under
   * that reason. Safe to call any time, more than once.
   */
  readonly evict: (reason?: 'broken' | 'invalidated') => void;
}

/**
 * What the pool needs to know about one kind of resource. Only `create` and `destroy`
 * are required; every hook is called with the resource the pool handed out.
 */
export interface Adapter<T> {
  /**
   * Open one resource. `signal` aborts when the attempt exceeds `createTimeoutMs` or the
   * pool closes. Call `ctx.evict()` when the resource dies on its own later (the server
   * closed it, its socket errored): an idle one is destroyed and replaced at once instead
   * of waiting for its next borrow.
   */
  create(ctx: CreateContext): Promise<T>;
  /** Close one resource. Must tolerate resources that are already dead. `signal` aborts at `destroyTimeoutMs`: stop being polite and cut it. */
  destroy(resource: T, signal?: AbortSignal): Promise<void>;
  /** O(1), no I/O: is this resource known to be unusable? Checked on every borrow and return. */
  isBroken?(resource: T): boolean;
  /** A round trip proving the resource works; bounded by the caller's deadline and `pingTimeoutMs`. */
  ping?(resource: T, signal: AbortSignal): Promise<void>;
  /** Clean a returned resource before reuse; a rejection destroys it instead. */
  reset?(resource: T, signal: AbortSignal): Promise<void>;
  /** May a failed create be retried? `false` fails the waiting acquire at once. Default: always. */
  isRetryable?(error: unknown): boolean;
  /**
   * Does this error (thrown inside `withConnection`, or given to `lease.destroy(error)`) mean
   * `resource` is dead? Judge by the resource's own state where you can: an error from
   * unrelated work (an HTTP call inside the callback) must not condemn a healthy resource.
   * Default: never.
   */
  isFatal?(error: unknown, resource: T): boolean;
  /**
   * Whether the resource's handles (sockets) may keep the process alive: the pool calls it
   * with `false` when the resource goes idle and `true` when it leaves the idle list for a
   * caller, so an idle pool never keeps a process alive while a leased resource's I/O does.
   * A resource handed from one caller straight to the next (a release or reset with a
   * waiter queued) stays active and gets no call. Default: handles are left as they are.
   */
  ref?(resource: T, active: boolean): void;
  /**
   * A cheap reachability check of the server (a TCP connect, say: refused at once while it
   * is down, costing it nothing), run every `probeIntervalMs` while creates back off after
   * failures. When it succeeds after having failed, the server is back: the backoff (and an
   * open breaker's cooldown) ends and a create runs at once. A probe that succeeds from the
   * start means the failures are not about reachability; the backoff then runs its course.
   */
  probe?(signal: AbortSignal): Promise<void>;
}

/** Backoff for failed creates (p-retry semantics). */
export interface RetryOptions {
  /** Retries after the first attempt. Retrying also stops when nobody waits and the pool is at `min`. @default Infinity */
  readonly retries?: number;
  /** Delay before the first retry. @default 100 */
  readonly minTimeoutMs?: number;
  /** Cap on any one delay. @default 5000 */
  readonly maxTimeoutMs?: number;
  /** Growth of the delay per retry. @default 2 */
  readonly factor?: number;
  /** Multiply each delay by a random factor in [1, 2) so clients do not retry in lockstep. @default true */
  readonly randomize?: boolean;
}

/** Fail fast while creates keep failing; see the README's "Circuit breaker". */
export interface CircuitBreakerOptions {
  /**
   * Consecutive failed create attempts that open the breaker. With the default backoff
   * (100 ms doubling, jittered, capped at 5 s) the 8th failure comes 7–12 s into an outage,
   * so a server restart does not trip it but a real outage does. @default 8
   */
  readonly failureThreshold?: number;
  /** How long the breaker stays open before one probe create is let through. @default 1000 */
  readonly cooldownMs?: number;
}

/** Options of {@link createPool}. Durations are in milliseconds; each default is given beside its option. */
export interface PoolOptions<T> {
  /** The driver adapter. Required. */
  readonly adapter: Adapter<T>;
  /** Most resources alive at once, counting those being created. @default 10 */
  readonly max?: number;
  /** Resources created at start and kept in the background, idle or not. @default 0 */
  readonly min?: number;
  /** Most acquires allowed to wait; one more fails at once with `PoolQueueFullError`. @default Infinity */
  readonly maxWaiting?: number;
  /** Deadline of one acquire, covering the wait, a create and a ping. `Infinity` waits forever. @default 30000 */
  readonly acquireTimeoutMs?: number;
  /** Bound on one create attempt; `Infinity` for none. @default 10000 */
  readonly createTimeoutMs?: number;
  /** Ping a resource on borrow when it has been idle longer than this; `0` pings on every borrow, `Infinity` never. @default 1000 */
  readonly pingIfIdleMs?: number;
  /** Bound on one ping, also bounded by the caller's deadline; `Infinity` for none. @default 5000 */
  readonly pingTimeoutMs?: number;
  /** Bound on one `reset`; a reset that takes longer destroys the resource. `Infinity` for none. @default 5000 */
  readonly resetTimeoutMs?: number;
  /** Bound on one `destroy` (the slot is freed at once anyway); a timeout goes to `onError`. `Infinity` for none. @default 5000 */
  readonly destroyTimeoutMs?: number;
  /** Destroy resources idle longer than this while the pool is above `min`. `Infinity` keeps them. @default 600000 */
  readonly idleTimeoutMs?: number;
  /** Retire resources older than this (each up to 40 % earlier, spread so that resources created together retire one by one), never while leased. `Infinity` never. @default 1800000 */
  readonly maxLifetimeMs?: number;
  /** Retire a resource when it comes back from its `maxUses`-th lease (pg-pool's `maxUses`): spreads load after a failover, bounds per-connection memory. @default Infinity */
  readonly maxUses?: number;
  /** Ping idle resources this often in the background. `Infinity` never. @default 60000 */
  readonly keepaliveMs?: number;
  /** Report a lease held longer than this, once, as a `LeakDetectedError` to `onError`. `Infinity` never. @default Infinity */
  readonly leakDetectionMs?: number;
  /**
   * While creates fail, run the adapter's `probe` (a cheap reachability check) this often;
   * when it succeeds after having failed, the server is back and a create runs at once
   * instead of at the end of the backoff. `Infinity` never probes. Without a `probe` hook
   * it does nothing. @default 100
   */
  readonly probeIntervalMs?: number;
  /** Most creates in flight at once. @default min(max, 4) */
  readonly maxConnecting?: number;
  /** Backoff for failed creates. */
  readonly retry?: RetryOptions;
  /** `false` turns the breaker off. @default { failureThreshold: 8, cooldownMs: 1000 } */
  readonly circuitBreaker?: CircuitBreakerOptions | false;
  /**
   * Order of service for waiting acquires. `'adaptive'`: FIFO (within a priority) until the
   * pool is congested, then the newest waiter first, shedding those that waited
   * `congestion.shedAfterMs` with `PoolOverloadedError`; FIFO again once the queue empties.
   * `'fifo'`: strict arrival order always. @default 'adaptive'
   */
  readonly queuePolicy?: QueuePolicy;
  /** When the pool counts as congested, and when it sheds (with `queuePolicy: 'adaptive'`). @default { targetMs: 10, intervalMs: 100, shedAfterMs: 50 } */
  readonly congestion?: CongestionOptions;
  /** Receives background errors (failed destroys, keepalive pings, creates nobody waits for, leaks). A throwing handler is ignored. @default process.emitWarning */
  readonly onError?: (error: unknown) => void;
  /** Source of time and timers; tests inject a virtual one. @default the monotonic system clock */
  readonly clock?: Clock;
}

/** Per-call options of `acquire()` and `withConnection()`. */
export interface AcquireOptions {
  /** Abort the wait; the acquire rejects with `signal.reason`. */
  readonly signal?: AbortSignal;
  /** This acquire's deadline instead of `acquireTimeoutMs`. */
  readonly timeoutMs?: number;
  /** Higher is served first; FIFO within a priority. @default 0 */
  readonly priority?: number;
}

/** Options after validation, every default filled in. */
export interface ResolvedOptions<T> {
  readonly adapter: Adapter<T>;
  readonly max: number;
  readonly min: number;
  readonly maxWaiting: number;
  readonly acquireTimeoutMs: number;
  readonly createTimeoutMs: number;
  readonly pingIfIdleMs: number;
  readonly pingTimeoutMs: number;
  readonly resetTimeoutMs: number;
  readonly destroyTimeoutMs: number;
  readonly idleTimeoutMs: number;
  readonly maxLifetimeMs: number;
  readonly maxUses: number;
  readonly keepaliveMs: number;
  readonly leakDetectionMs: number;
  readonly probeIntervalMs: number;
  readonly maxConnecting: number;
  readonly retry: Required<RetryOptions>;
  readonly circuitBreaker: Required<CircuitBreakerOptions> | false;
  /** Undefined for `queuePolicy: 'fifo'`. */
  readonly congestion: Required<CongestionOptions> | undefined;
  readonly onError: (error: unknown) => void;
  readonly clock: Clock;
}

/** For adapters: the names of every pool option, to tell them apart from a driver's own config fields. */
export const POOL_OPTION_NAMES: ReadonlySet<string> = new Set<keyof PoolOptions<unknown>>([
  'adapter', 'max', 'min', 'maxWaiting', 'acquireTimeoutMs', 'createTimeoutMs', 'pingIfIdleMs', 'pingTimeoutMs',
  'resetTimeoutMs', 'destroyTimeoutMs', 'idleTimeoutMs', 'maxLifetimeMs', 'maxUses', 'keepaliveMs', 'leakDetectionMs', 'probeIntervalMs',
  'maxConnecting', 'retry', 'circuitBreaker', 'queuePolicy', 'congestion', 'onError', 'clock',
]);
const RETRY_KEYS = new Set(['retries', 'minTimeoutMs', 'maxTimeoutMs', 'factor', 'randomize']);
const BREAKER_KEYS = new Set(['failureThreshold', 'cooldownMs']);
const ACQUIRE_KEYS = new Set(['signal', 'timeoutMs', 'priority']);
const ADAPTER_HOOKS = ['isBroken', 'ping', 'reset', 'isRetryable', 'isFatal', 'ref', 'probe'] as const;

/** The pool options that have a fixed numeric default (see {@link POOL_DEFAULTS}). */
export type PoolDefaultName =
  | 'max' | 'min' | 'maxWaiting' | 'acquireTimeoutMs' | 'createTimeoutMs' | 'pingIfIdleMs' | 'pingTimeoutMs' | 'resetTimeoutMs'
  | 'destroyTimeoutMs' | 'idleTimeoutMs' | 'maxLifetimeMs' | 'keepaliveMs' | 'leakDetectionMs' | 'probeIntervalMs';

/**
 * For adapters: the defaults of the pool's numeric options, as `createPool` applies them
 * (`maxConnecting` defaults to `min(max, 4)`), to compare with what a server allows.
 */
export const POOL_DEFAULTS: Readonly<Required<Pick<PoolOptions<unknown>, PoolDefaultName>>> = Object.freeze({
  max: 10,
  min: 0,
  maxWaiting: Infinity,
  acquireTimeoutMs: 30_000,
  createTimeoutMs: 10_000,
  pingIfIdleMs: 1000,
  pingTimeoutMs: 5000,
  resetTimeoutMs: 5000,
  destroyTimeoutMs: 5000,
  idleTimeoutMs: 600_000,
  maxLifetimeMs: 1_800_000,
  keepaliveMs: 60_000,
  leakDetectionMs: Infinity,
  probeIntervalMs: 100,
});

/** What the pool does with errors nobody awaits when no `onError` is given: a `LifeguardWarning` process warning. */
export function defaultOnError(error: unknown): void {
  process.emitWarning(error instanceof Error ? error : new Error(String(error)), { type: 'LifeguardWarning' });
}

/** Validate pool options once, at construction. Throws `InvalidPoolOptionError`; never clamps. */
export function resolveOptions<T>(options: PoolOptions<T>): ResolvedOptions<T> {
  if (typeof options !== 'object' || options === null) {
    throw InvalidPoolOptionError.expected('options', 'an object with at least `adapter`', options);
  }
  rejectUnknownKeys('', options, POOL_OPTION_NAMES);
  const adapter = checkAdapter(options.adapter);

  const max = integer('max', options.max, POOL_DEFAULTS.max, 1);
  const min = integer('min', options.min, POOL_DEFAULTS.min, 0);
  if (min > max) throw InvalidPoolOptionError.expected('min', `an integer in [0, max] (max is ${max})`, min);
  const maxWaiting = integer('maxWaiting', options.maxWaiting, POOL_DEFAULTS.maxWaiting, 0, true);
  const maxConnecting = integer('maxConnecting', options.maxConnecting, Math.min(max, 4), 1);
  if (maxConnecting > max) {
    throw InvalidPoolOptionError.expected('maxConnecting', `an integer in [1, max] (max is ${max})`, maxConnecting);
  }

  const acquireTimeoutMs = duration('acquireTimeoutMs', options.acquireTimeoutMs, POOL_DEFAULTS.acquireTimeoutMs, false, true);
  const createTimeoutMs = duration('createTimeoutMs', options.createTimeoutMs, POOL_DEFAULTS.createTimeoutMs, false, true);
  const pingIfIdleMs = duration('pingIfIdleMs', options.pingIfIdleMs, POOL_DEFAULTS.pingIfIdleMs, true, true);
  const pingTimeoutMs = duration('pingTimeoutMs', options.pingTimeoutMs, POOL_DEFAULTS.pingTimeoutMs, false, true);
  if (options.pingTimeoutMs !== undefined && pingTimeoutMs >= acquireTimeoutMs && acquireTimeoutMs !== Infinity) {
    throw InvalidPoolOptionError.expected('pingTimeoutMs', `less than acquireTimeoutMs (${acquireTimeoutMs})`, pingTimeoutMs);
  }
  const resetTimeoutMs = duration('resetTimeoutMs', options.resetTimeoutMs, POOL_DEFAULTS.resetTimeoutMs, false, true);
  const destroyTimeoutMs = duration('destroyTimeoutMs', options.destroyTimeoutMs, POOL_DEFAULTS.destroyTimeoutMs, false, true);
  const idleTimeoutMs = duration('idleTimeoutMs', options.idleTimeoutMs, POOL_DEFAULTS.idleTimeoutMs, false, true);
  const maxLifetimeMs = duration('maxLifetimeMs', options.maxLifetimeMs, POOL_DEFAULTS.maxLifetimeMs, false, true);
  const maxUses = integer('maxUses', options.maxUses, Infinity, 1, true);
  const keepaliveMs = duration('keepaliveMs', options.keepaliveMs, POOL_DEFAULTS.keepaliveMs, false, true);
  const leakDetectionMs = duration('leakDetectionMs', options.leakDetectionMs, POOL_DEFAULTS.leakDetectionMs, false, true);
  const probeIntervalMs = duration('probeIntervalMs', options.probeIntervalMs, POOL_DEFAULTS.probeIntervalMs, false, true);

  return {
    adapter,
    max,
    min,
    maxWaiting,
    acquireTimeoutMs,
    createTimeoutMs,
    pingIfIdleMs,
    pingTimeoutMs,
    resetTimeoutMs,
    destroyTimeoutMs,
    idleTimeoutMs,
    maxLifetimeMs,
    maxUses,
    keepaliveMs,
    leakDetectionMs,
    probeIntervalMs,
    maxConnecting,
    retry: checkRetry(options.retry),
    circuitBreaker: checkBreaker(options.circuitBreaker),
    congestion: resolveCongestion(options.queuePolicy, options.congestion),
    onError: optionalFunction('onError', options.onError) ?? defaultOnError,
    clock: checkClock(options.clock),
  };
}

/** Validate per-call acquire options; returns an error instead of throwing so `acquire` can reject. */
export function checkAcquireOptions(options: unknown): InvalidPoolOptionError | undefined {
  try {
    if (typeof options !== 'object' || options === null) {
      throw InvalidPoolOptionError.expected('acquire options', 'an object', options);
    }
    rejectUnknownKeys('acquire options.', options, ACQUIRE_KEYS);
    const { signal, timeoutMs, priority } = options as AcquireOptions;
    if (signal !== undefined && !(signal instanceof AbortSignal)) {
      throw InvalidPoolOptionError.expected('signal', 'an AbortSignal', signal);
    }
    if (timeoutMs !== undefined) duration('timeoutMs', timeoutMs, 0, false, true);
    if (priority !== undefined && !(typeof priority === 'number' && Number.isFinite(priority))) {
      throw InvalidPoolOptionError.expected('priority', 'a finite number', priority);
    }
    return undefined;
  } catch (error) {
    return error as InvalidPoolOptionError;
  }
}

function checkAdapter<T>(adapter: Adapter<T>): Adapter<T> {
  if (typeof adapter !== 'object' || adapter === null) {
    throw InvalidPoolOptionError.expected('adapter', 'an object with create() and destroy() functions', adapter);
  }
  for (const hook of ['create', 'destroy'] as const) {
    if (typeof adapter[hook] !== 'function') {
      throw InvalidPoolOptionError.expected(`adapter.${hook}`, 'a function', adapter[hook]);
    }
  }
  for (const hook of ADAPTER_HOOKS) optionalFunction(`adapter.${hook}`, adapter[hook]);
  return adapter;
}

function checkRetry(retry: RetryOptions | undefined): Required<RetryOptions> {
  if (retry !== undefined && (typeof retry !== 'object' || retry === null)) {
    throw InvalidPoolOptionError.expected('retry', 'an object', retry);
  }
  const given = retry ?? {};
  rejectUnknownKeys('retry.', given, RETRY_KEYS);
  const minTimeoutMs = duration('retry.minTimeoutMs', given.minTimeoutMs, 100, true, false);
  const maxTimeoutMs = duration('retry.maxTimeoutMs', given.maxTimeoutMs, 5000, true, true);
  if (maxTimeoutMs < minTimeoutMs) {
    throw InvalidPoolOptionError.expected('retry.maxTimeoutMs', `>= retry.minTimeoutMs (${minTimeoutMs})`, maxTimeoutMs);
  }
  const factor = given.factor ?? 2;
  if (!(typeof factor === 'number' && Number.isFinite(factor) && factor >= 1)) {
    throw InvalidPoolOptionError.expected('retry.factor', 'a finite number >= 1', factor);
  }
  const randomize = given.randomize ?? true;
  if (typeof randomize !== 'boolean') throw InvalidPoolOptionError.expected('retry.randomize', 'a boolean', randomize);
  return { retries: integer('retry.retries', given.retries, Infinity, 0, true), minTimeoutMs, maxTimeoutMs, factor, randomize };
}

function checkBreaker(breaker: CircuitBreakerOptions | false | undefined): Required<CircuitBreakerOptions> | false {
  if (breaker === false) return false;
  if (breaker !== undefined && (typeof breaker !== 'object' || breaker === null)) {
    throw InvalidPoolOptionError.expected('circuitBreaker', 'an object or false', breaker);
  }
  const given = breaker ?? {};
  rejectUnknownKeys('circuitBreaker.', given, BREAKER_KEYS);
  return {
    failureThreshold: integer('circuitBreaker.failureThreshold', given.failureThreshold, 8, 1),
    cooldownMs: duration('circuitBreaker.cooldownMs', given.cooldownMs, 1000, false, false),
  };
}

function checkClock(clock: Clock | undefined): Clock {
  if (clock === undefined) return systemClock;
  if (
    typeof clock === 'object' && clock !== null &&
    typeof clock.now === 'function' && typeof clock.setTimeout === 'function' && typeof clock.clearTimeout === 'function'
  ) {
    return clock;
  }
  throw InvalidPoolOptionError.expected('clock', 'an object with now(), setTimeout() and clearTimeout()', clock);
}

