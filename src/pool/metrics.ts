/**
 * What the pool counts, by outcome and by reason, and how it reports itself: `stats()`
 * (gauges derived from the entry table, counters, timing summaries) and `health()` (a
 * verdict for a readiness probe). Counters are plain fields the dispatcher bumps: no call
 * on the hot path.
 */
import type { CircuitState, DestroyReason, PoolHealth, PoolStats } from './api.js';
import { CHECKING, CREATING, DESTROYING, IDLE, LEASED, RESETTING } from './entry.js';
import { Histogram } from './histogram.js';

/** The state stats() and health() read, besides the counters. */
export interface PoolView {
  readonly max: number;
  readonly min: number;
  /** Entries by state (EntryTable.counts). */
  readonly counts: readonly number[];
  readonly waiting: number;
  readonly circuit: CircuitState;
  /** Adaptive queueing is serving newest first and shedding. */
  readonly congested: boolean;
  readonly closing: boolean;
  readonly draining: boolean;
  readonly consecutiveFailures: number;
  readonly lastCreateError: unknown;
}

export class PoolMetrics {
  acquired = 0;
  timedOut = 0;
  aborted = 0;
  rejectedClosed = 0;
  rejectedQueueFull = 0;
  rejectedCircuit = 0;
  rejectedCreate = 0;
  rejectedShed = 0;
  created = 0;
  createFailed = 0;
  destroyed = 0;
  readonly destroyedBy: Record<DestroyReason, number> = { broken: 0, pingFailed: 0, resetFailed: 0, idle: 0, lifetime: 0, closed: 0, user: 0, drained: 0, invalidated: 0, maxUses: 0 };
  readonly waitTime = new Histogram();
  readonly leaseTime = new Histogram();
  readonly createTime = new Histogram();

  countDestroy(reason: DestroyReason): void {
    this.destroyed++;
    this.destroyedBy[reason]++;
  }

  /** The p99 lease time, or undefined before any lease came back (the breaker's coverage). */
  leaseP99(): number | undefined {
    const summary = this.leaseTime.summary();
    return summary.count > 0 ? summary.p99 : undefined;
  }

  stats(view: PoolView): PoolStats {
    const c = view.counts;
    return {
      max: view.max,
      min: view.min,
      size: c[IDLE]! + c[LEASED]! + c[CHECKING]! + c[RESETTING]!,
      idle: c[IDLE]!,
      leased: c[LEASED]!,
      creating: c[CREATING]!,
      checking: c[CHECKING]!,
      resetting: c[RESETTING]!,
      destroying: c[DESTROYING]!,
      waiting: view.waiting,
      acquired: this.acquired,
      timedOut: this.timedOut,
      aborted: this.aborted,
      rejected: { closed: this.rejectedClosed, queueFull: this.rejectedQueueFull, circuitOpen: this.rejectedCircuit, createFailed: this.rejectedCreate, shed: this.rejectedShed },
      created: this.created,
      createFailed: this.createFailed,
      destroyed: this.destroyed,
      destroyedByReason: { ...this.destroyedBy },
      circuit: view.circuit,
      congested: view.congested,
      draining: view.draining,
      consecutiveCreateFailures: view.consecutiveFailures,
      waitTime: this.waitTime.summary(),
      leaseTime: this.leaseTime.summary(),
      createTime: this.createTime.summary(),
    };
  }
}

/** The verdict for a readiness probe: `closed`, then `down`, then `degraded`, else `ok`. */
export function healthOf(view: PoolView): PoolHealth {
  const c = view.counts;
  const size = c[IDLE]! + c[LEASED]! + c[CHECKING]! + c[RESETTING]!;
  const base = { size, max: view.max, waiting: view.waiting, circuit: view.circuit };
  const failures = view.consecutiveFailures;
  const lastError = view.lastCreateError;
  const cause = (): string => (lastError instanceof Error ? lastError.message : String(lastError));
  if (view.closing) return { status: 'closed', reason: 'the pool is closed', ...base };
  if (view.circuit !== 'closed') {
    return { status: 'down', reason: `circuit breaker open after ${failures} failed creates: ${cause()}`, lastError, ...base };
  }
  if (failures > 0) {
    const live = size - c[RESETTING]!;
    return live === 0
      ? { status: 'down', reason: `no connection and creates failing (${failures} in a row): ${cause()}`, lastError, ...base }
      : { status: 'degraded', reason: `creates failing (${failures} in a row): ${cause()}`, lastError, ...base };
  }
  if (view.congested) {
    return { status: 'degraded', reason: `congested: callers waited longer than the target for a whole interval; serving the newest first and shedding (${view.waiting} waiting)`, ...base };
  }
  if (view.draining) return { status: 'degraded', reason: 'draining: no new connections until resume()', ...base };
  if (view.waiting > view.max) {
    return { status: 'degraded', reason: `saturated: ${view.waiting} callers waiting for ${view.max} connections`, ...base };
  }
  return { status: 'ok', ...base };
}
