// Events on node:diagnostics_channel. Publishing costs one `hasSubscribers` read when
// nobody listens, so the pool can announce everything without slowing the hot path.
import diagnostics from 'node:diagnostics_channel';
import type { AcquireTimeoutError, LeakDetectedError } from './errors.js';
import type { DestroyReason, Pool } from './pool.js';

/** An acquire began (`acquire()` or `withConnection()` was called). */
export interface AcquireStartEvent {
  /** The pool the event is about: the object `createPool` or `createPostgresPool` returned. */
  readonly pool: Pool<unknown>;
}

/** An acquire settled: `error` is absent when it got a lease. `waitMs` is the time it took. */
export interface AcquireEndEvent {
  /** The pool the event is about: the object `createPool` or `createPostgresPool` returned. */
  readonly pool: Pool<unknown>;
  /** Milliseconds from the call to its outcome. */
  readonly waitMs: number;
  /** Why it failed (an `AcquireTimeoutError`, `PoolClosedError`, `signal.reason`, …); absent on success. */
  readonly error?: unknown;
}

/** A lease ended: returned, or destroyed (`destroyed: true`). `leaseMs` is how long it was held. */
export interface ReleaseEvent {
  /** The pool the event is about: the object `createPool` or `createPostgresPool` returned. */
  readonly pool: Pool<unknown>;
  /** Milliseconds from acquire to release. */
  readonly leaseMs: number;
  /** `true` when the resource was destroyed instead of returned. */
  readonly destroyed: boolean;
}

/** One create attempt ended: `error` is absent when it made a resource. */
export interface CreateEvent {
  /** The pool the event is about: the object `createPool` or `createPostgresPool` returned. */
  readonly pool: Pool<unknown>;
  /** 1 for the first attempt of a create, 2 for its first retry, … */
  readonly attempt: number;
  /** Milliseconds the attempt took. */
  readonly durationMs: number;
  /** The create error; absent when a resource was made. */
  readonly error?: unknown;
}

/** A resource is being destroyed, and why. */
export interface DestroyEvent {
  /** The pool the event is about: the object `createPool` or `createPostgresPool` returned. */
  readonly pool: Pool<unknown>;
  /** Why: `broken`, `pingFailed`, `resetFailed`, `idle`, `lifetime`, `closed`, `user`, `drained`, `invalidated` or `maxUses`. */
  readonly reason: DestroyReason;
}

/** An acquire hit its deadline (also reported by `acquire:end`). */
export interface TimeoutEvent {
  /** The pool the event is about: the object `createPool` or `createPostgresPool` returned. */
  readonly pool: Pool<unknown>;
  /** The error the acquire rejected with. */
  readonly error: AcquireTimeoutError;
}

/** The circuit breaker opened (`cause`: the last create error) or closed. */
export interface BreakerEvent {
  /** The pool the event is about: the object `createPool` or `createPostgresPool` returned. */
  readonly pool: Pool<unknown>;
  /** On `breaker:open`, the last create error; absent on `breaker:close`. */
  readonly cause?: unknown;
}

/** The pool entered or left congestion (adaptive queueing; see `queuePolicy`). */
export interface CongestionEvent {
  /** The pool the event is about: the object `createPool` or `createPostgresPool` returned. */
  readonly pool: Pool<unknown>;
  /** `true` on entering congestion (newest first, shedding), `false` on leaving it (FIFO again). */
  readonly congested: boolean;
  /** Acquires waiting at that moment. */
  readonly waiting: number;
}

/** A lease outlived `leakDetectionMs` (also given to `onError`). */
export interface LeakEvent {
  /** The pool the event is about: the object `createPool` or `createPostgresPool` returned. */
  readonly pool: Pool<unknown>;
  /** The error given to `onError`; its stack is where the lease was acquired. */
  readonly error: LeakDetectedError;
}

/**
 * The channel names, for `diagnostics_channel.subscribe(name, listener)`:
 * `lifeguard:acquire:start`, `lifeguard:acquire:end`, `lifeguard:release`, `lifeguard:create`,
 * `lifeguard:destroy`, `lifeguard:timeout`, `lifeguard:breaker:open`,
 * `lifeguard:breaker:close`, `lifeguard:leak`, `lifeguard:congestion`. Every payload carries
 * the `pool` it is about.
 */
export const CHANNELS = {
  /** Payload {@link AcquireStartEvent}. */
  acquireStart: 'lifeguard:acquire:start',
  /** Payload {@link AcquireEndEvent}. */
  acquireEnd: 'lifeguard:acquire:end',
  /** Payload {@link ReleaseEvent}. */
  release: 'lifeguard:release',
  /** Payload {@link CreateEvent}. */
  create: 'lifeguard:create',
  /** Payload {@link DestroyEvent}. */
  destroy: 'lifeguard:destroy',
  /** Payload {@link TimeoutEvent}. */
  timeout: 'lifeguard:timeout',
  /** Payload {@link BreakerEvent} (with `cause`). */
  breakerOpen: 'lifeguard:breaker:open',
  /** Payload {@link BreakerEvent} (without `cause`). */
  breakerClose: 'lifeguard:breaker:close',
  /** Payload {@link LeakEvent}. */
  leak: 'lifeguard:leak',
  /** Payload {@link CongestionEvent}. */
  congestion: 'lifeguard:congestion',
} as const;

/** @internal */
export const channels = {
  acquireStart: diagnostics.channel(CHANNELS.acquireStart),
  acquireEnd: diagnostics.channel(CHANNELS.acquireEnd),
  release: diagnostics.channel(CHANNELS.release),
  create: diagnostics.channel(CHANNELS.create),
  destroy: diagnostics.channel(CHANNELS.destroy),
  timeout: diagnostics.channel(CHANNELS.timeout),
  breakerOpen: diagnostics.channel(CHANNELS.breakerOpen),
  breakerClose: diagnostics.channel(CHANNELS.breakerClose),
  leak: diagnostics.channel(CHANNELS.leak),
  congestion: diagnostics.channel(CHANNELS.congestion),
};
