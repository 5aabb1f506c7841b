// Events on node:diagnostics_channel. Publishing costs one `hasSubscribers` read when
// nobody listens, so the pool can announce everything without slowing the hot path.
import diagnostics from 'node:diagnostics_channel';
import type { AcquireTimeoutError, LeakDetectedError } from './errors.js';
import type { DestroyReason, Pool } from './pool.js';

/** An acquire began (`acquire()` or `withConnection()` was called). */
export interface AcquireStartEvent {
  readonly pool: Pool<unknown>;
}

/** An acquire settled: `error` is absent when it got a lease. `waitMs` is the time it took. */
export interface AcquireEndEvent {
  readonly pool: Pool<unknown>;
  readonly waitMs: number;
  readonly error?: unknown;
}

/** A lease ended: returned, or destroyed (`destroyed: true`). `leaseMs` is how long it was held. */
export interface ReleaseEvent {
  readonly pool: Pool<unknown>;
  readonly leaseMs: number;
  readonly destroyed: boolean;
}

/** One create attempt ended: `error` is absent when it made a resource. */
export interface CreateEvent {
  readonly pool: Pool<unknown>;
  readonly attempt: number;
  readonly durationMs: number;
  readonly error?: unknown;
}

/** A resource is being destroyed, and why. */
export interface DestroyEvent {
  readonly pool: Pool<unknown>;
  readonly reason: DestroyReason;
}

/** An acquire hit its deadline (also reported by `acquire:end`). */
export interface TimeoutEvent {
  readonly pool: Pool<unknown>;
  readonly error: AcquireTimeoutError;
}

/** The circuit breaker opened (`cause`: the last create error) or closed. */
export interface BreakerEvent {
  readonly pool: Pool<unknown>;
  readonly cause?: unknown;
}

/** A lease outlived `leakDetectionMs` (also given to `onError`). */
export interface LeakEvent {
  readonly pool: Pool<unknown>;
  readonly error: LeakDetectedError;
}

/**
 * The channel names, for `diagnostics_channel.subscribe(name, listener)`:
 * `lifeguard:acquire:start`, `lifeguard:acquire:end`, `lifeguard:release`, `lifeguard:create`,
 * `lifeguard:destroy`, `lifeguard:timeout`, `lifeguard:breaker:open`,
 * `lifeguard:breaker:close`, `lifeguard:leak`. Every payload carries the `pool` it is about.
 */
export const CHANNELS = {
  acquireStart: 'lifeguard:acquire:start',
  acquireEnd: 'lifeguard:acquire:end',
  release: 'lifeguard:release',
  create: 'lifeguard:create',
  destroy: 'lifeguard:destroy',
  timeout: 'lifeguard:timeout',
  breakerOpen: 'lifeguard:breaker:open',
  breakerClose: 'lifeguard:breaker:close',
  leak: 'lifeguard:leak',
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
};
