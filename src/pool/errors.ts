/**
 * Every error the pool raises extends {@link PoolError} and carries a stable string
 * `code`, so callers can branch on `err.code` without `instanceof` across realms or
 * duplicated installs. Driver errors are never wrapped on the way to the caller; they
 * only appear as `cause`.
 */
export class PoolError extends Error {
  /** Stable machine-readable code, e.g. `POOL_ACQUIRE_TIMEOUT`; see the README's error table. */
  readonly code: string;

  constructor(message: string, code: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** Gauges attached to an {@link AcquireTimeoutError}: what the pool looked like when the deadline passed. */
export interface AcquireTimeoutStats {
  /** The `max` option. */
  readonly max: number;
  /** Live resources. */
  readonly size: number;
  /** Resources ready to hand out. */
  readonly idle: number;
  /** Resources held by callers. */
  readonly leased: number;
  /** Creates in flight. */
  readonly creating: number;
  /** Acquires queued, this one included. */
  readonly waiting: number;
}

/**
 * Why an acquire timed out. `saturated`: every resource was leased and the pool was at
 * `max`. `create-failing`: the pool had room but resources could not be created; `cause`
 * is the last create error. `slow-create` / `slow-ping`: a create or health check was
 * still running when the deadline passed.
 */
export type AcquireTimeoutReason = 'saturated' | 'create-failing' | 'slow-create' | 'slow-ping';

/** The acquire's deadline passed before a healthy resource could be handed out. */
export class AcquireTimeoutError extends PoolError {
  /** The pool's gauges when the deadline passed. */
  readonly stats: AcquireTimeoutStats;
  /** Why no resource could be handed out in time. */
  readonly reason: AcquireTimeoutReason;
  /** The deadline that passed, in ms. */
  readonly timeoutMs: number;

  constructor(timeoutMs: number, reason: AcquireTimeoutReason, stats: AcquireTimeoutStats, cause?: unknown) {
    const gauges = `size ${stats.size}/${stats.max}, idle ${stats.idle}, leased ${stats.leased}, creating ${stats.creating}, waiting ${stats.waiting}`;
    const why =
      reason === 'create-failing'
        ? `resources could not be created (last create error: ${describe(cause)})`
        : reason === 'slow-create'
          ? 'a resource was still being created'
          : reason === 'slow-ping'
            ? 'an idle resource was still being health-checked'
            : 'pool saturated: every resource is leased and the pool is at max';
    super(`Timed out after ${timeoutMs} ms acquiring a resource: ${why} (${gauges})`, 'POOL_ACQUIRE_TIMEOUT', cause === undefined ? undefined : { cause });
    this.stats = stats;
    this.reason = reason;
    this.timeoutMs = timeoutMs;
  }
}

/**
 * The pool is congested (adaptive queueing: waiters have been waiting longer than
 * `congestion.targetMs` for a whole `congestion.intervalMs`) and this acquire had waited
 * `congestion.shedAfterMs` with no chance of being served before its deadline at the
 * pool's pace: it is failed now rather than left to wait out its deadline,
 * so a service can answer 503 at once. Distinct from {@link AcquireTimeoutError}: no
 * deadline passed; demand exceeds what the pool can serve in time.
 */
export class PoolOverloadedError extends PoolError {
  /** The pool's gauges when the acquire was shed. */
  readonly stats: AcquireTimeoutStats;
  /** How long the acquire had waited, in ms. */
  readonly waitedMs: number;

  constructor(waitedMs: number, stats: AcquireTimeoutStats) {
    const gauges = `size ${stats.size}/${stats.max}, idle ${stats.idle}, leased ${stats.leased}, creating ${stats.creating}, waiting ${stats.waiting}`;
    super(
      `Pool overloaded: acquire shed after waiting ${Math.round(waitedMs)} ms while the pool is congested (demand exceeds what it can serve in time; newest callers are served first) (${gauges})`,
      'POOL_OVERLOADED',
    );
    this.stats = stats;
    this.waitedMs = waitedMs;
  }
}

/** `acquire()` was called during or after `close()`. */
export class PoolClosedError extends PoolError {
  constructor(message = 'Pool is closed: it no longer hands out resources') {
    super(message, 'POOL_CLOSED');
  }
}

/** More than `maxWaiting` acquires were already queued. */
export class PoolQueueFullError extends PoolError {
  /** The `maxWaiting` option. */
  readonly maxWaiting: number;

  constructor(maxWaiting: number) {
    super(`Acquire queue is full: ${maxWaiting} callers are already waiting (maxWaiting)`, 'POOL_QUEUE_FULL');
    this.maxWaiting = maxWaiting;
  }
}

/** The circuit breaker is open: creates have been failing, so acquires that need a new resource fail fast. */
export class CircuitOpenError extends PoolError {
  constructor(cause: unknown, retryInMs: number) {
    super(
      `Circuit open: creating resources keeps failing (last error: ${describe(cause)}); next probe in ${Math.max(0, Math.ceil(retryInMs))} ms`,
      'POOL_CIRCUIT_OPEN',
      { cause },
    );
  }
}

/** A create failed in a way that retrying cannot fix (`isRetryable(err) === false`), or retries ran out. */
export class CreateResourceError extends PoolError {
  /** Create attempts made before giving up. */
  readonly attempts: number;

  constructor(message: string, cause: unknown, attempts: number) {
    super(`${message}: ${describe(cause)}`, 'POOL_CREATE_FAILED', { cause });
    this.attempts = attempts;
  }
}

/** One create attempt took longer than `createTimeoutMs`; seen as the `cause` of timeouts and as the create error. */
export class CreateTimeoutError extends PoolError {
  constructor(timeoutMs: number) {
    super(`Creating a resource took longer than createTimeoutMs (${timeoutMs} ms)`, 'POOL_CREATE_TIMEOUT');
  }
}

/** A health check (`ping`) took longer than its bound; the resource is destroyed. */
export class PingTimeoutError extends PoolError {
  constructor(timeoutMs: number) {
    super(`Health check (ping) took longer than ${timeoutMs} ms`, 'POOL_PING_TIMEOUT');
  }
}

/** `destroy` did not settle within `destroyTimeoutMs`; reported through `onError`, the slot is already free. */
export class DestroyTimeoutError extends PoolError {
  constructor(timeoutMs: number) {
    super(`Destroying a resource took longer than destroyTimeoutMs (${timeoutMs} ms); it was abandoned`, 'POOL_DESTROY_TIMEOUT');
  }
}

/** A lease was used after `release()` or `destroy()`, or destroyed after it was released. */
export class LeaseReleasedError extends PoolError {
  constructor(message = 'Lease was already released: its resource may be serving another caller') {
    super(message, 'POOL_LEASE_RELEASED');
  }
}

/** Bad pool or acquire options; the message names the option, the expectation and the value given. */
export class InvalidPoolOptionError extends PoolError {
  /** The option at fault, e.g. `max`, `retry.factor`, `connectionString`. */
  readonly option: string;

  constructor(option: string, message: string) {
    super(message, 'POOL_INVALID_OPTION');
    this.option = option;
  }

  /** The usual shape: "Expected `max` to be an integer >= 1, got 0". */
  static expected(option: string, expectation: string, value: unknown): InvalidPoolOptionError {
    return new InvalidPoolOptionError(option, `Expected \`${option}\` to be ${expectation}, got ${show(value)}`);
  }
}

/**
 * Given to `onError` when a lease is held longer than `leakDetectionMs`. Its `stack` is
 * the stack of the `acquire()` call that took the lease, so the leak points at its source.
 */
export class LeakDetectedError extends PoolError {
  /** How long the lease had been held when it was reported, in ms. */
  readonly heldMs: number;

  constructor(heldMs: number, acquireStack: string | undefined) {
    super(`Lease held for ${Math.round(heldMs)} ms (leakDetectionMs) and not released; acquired at:`, 'POOL_LEAK_DETECTED');
    this.heldMs = heldMs;
    const frames = acquireStack?.split('\n').slice(1).join('\n');
    this.stack = frames ? `${this.name}: ${this.message}\n${frames}` : `${this.name}: ${this.message}`;
  }
}

function describe(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    return typeof code === 'string' && !err.message.includes(code) ? `${err.message} (${code})` : err.message;
  }
  return err === undefined ? 'none recorded' : show(err);
}

/** Render a value for an error message: short, unambiguous, never throwing. */
export function show(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.length > 60 ? `${value.slice(0, 57)}...` : value);
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') return String(value);
  if (value === undefined || value === null) return String(value);
  if (typeof value === 'function') return 'a function';
  if (Array.isArray(value)) return 'an array';
  return `an object`;
}
