// The soak's settings: what the environment asks for (SOAK_DURATION, SOAK_FAULT_EVERY,
// SOAK_INTERVAL, SOAK_WORKERS, SOAK_MAX: see the header of soak.soak.ts), the pool's options,
// and the bounds the verdicts hold the run to (each with its reason, as the header gives it).
import { seconds } from './format.js';

// ------------------------------------------------------------------ settings

function durationFromEnv(name: string, fallbackMs: number): number {
  const raw = process.env[name]?.trim();
  if (raw === undefined || raw === '') return fallbackMs;
  const match = /^(\d+(?:\.\d+)?)\s*(ms|s|m|min|h)?$/i.exec(raw);
  if (match === null) throw new Error(`${name} must be a duration such as 1500ms, 60s, 10m or 1h (got ${JSON.stringify(raw)})`);
  const unit = { ms: 1, s: 1000, m: 60_000, min: 60_000, h: 3_600_000 }[(match[2] ?? 's').toLowerCase() as 'ms' | 's' | 'm' | 'min' | 'h'];
  const ms = Number(match[1]) * unit;
  if (!(ms > 0)) throw new Error(`${name} must be > 0 (got ${JSON.stringify(raw)})`);
  return ms;
}

function integerFromEnv(name: string, fallback: number): number {
  const raw = process.env[name]?.trim();
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 1) throw new Error(`${name} must be an integer >= 1 (got ${JSON.stringify(raw)})`);
  return value;
}

export const DURATION_MS = durationFromEnv('SOAK_DURATION', 10 * 60_000);
export const FAULT_EVERY_MS = durationFromEnv('SOAK_FAULT_EVERY', 30_000);
export const INTERVAL_MS = durationFromEnv('SOAK_INTERVAL', 5_000);
export const WORKERS = integerFromEnv('SOAK_WORKERS', 100);
export const MAX = integerFromEnv('SOAK_MAX', 10);

export const ACQUIRE_TIMEOUT_MS = 5000;
export const QUERY_TIMEOUT_MS = 2000;
export const CREATE_TIMEOUT_MS = 3000;
export const MAX_LIFETIME_MS = 60_000;
export const IDLE_TIMEOUT_MS = 30_000;
export const DESTROY_TIMEOUT_MS = 2000;
export const PING_IF_IDLE_MS = 1000;
export const RETRY_MAX_TIMEOUT_MS = 1000;

/** The pool's options besides where it connects, max and onError (the settings line prints them as `pool`). */
export const POOL_OPTIONS = {
  acquireTimeoutMs: ACQUIRE_TIMEOUT_MS,
  queryTimeoutMs: QUERY_TIMEOUT_MS,
  createTimeoutMs: CREATE_TIMEOUT_MS,
  maxLifetimeMs: MAX_LIFETIME_MS,
  idleTimeoutMs: IDLE_TIMEOUT_MS,
  destroyTimeoutMs: DESTROY_TIMEOUT_MS,
  pingIfIdleMs: PING_IF_IDLE_MS,
  retry: { maxTimeoutMs: RETRY_MAX_TIMEOUT_MS },
} as const;

/** A failure that ends this long after a fault's window still belongs to it: one full acquire, one query, 1 s of scheduling. */
export const GRACE_MS = ACQUIRE_TIMEOUT_MS + QUERY_TIMEOUT_MS + 1000;
/** I9's "one validation cycle": operations started this long after a removal must not fail. */
export const AFTER_RECOVERY_MS = PING_IF_IDLE_MS;
/** I7. */
export const RECOVERY_BOUND_MS = 2000;
/** How long the probe keeps trying before it reports "no recovery". */
export const RECOVERY_GIVE_UP_MS = 15_000;
/** I6: load runs this long after a removal before the quiescent point looks at the server. */
export const SETTLE_MS = 1000;
/** I1. */
export const LATE_MARGIN_MS = 100;
/** Longest an operation may take: an acquire, then BEGIN, INSERT, COMMIT and ROLLBACK each bounded by queryTimeoutMs, + 1 s. */
export const OP_BOUND_MS = ACQUIRE_TIMEOUT_MS + 4 * QUERY_TIMEOUT_MS + 1000;
/** Heap: growth from the baseline quiescent point to the end, after gc. */
export const HEAP_BOUND_MB = 10;
export const HEAP_BOUND_RATIO = 0.2;
/** Handles: per type, at every quiescent point, above the baseline. */
export const HANDLE_SLACK = 2;
/** L1: share of lease acquires served out of arrival order. */
export const FIFO_INVERSION_BOUND = 0.01;
/** A quiescent point waits this long for in-flight operations before declaring them stuck. */
export const DRAIN_BOUND_MS = OP_BOUND_MS + 2000;

/** What the run is set to, as the first `[soak] settings` line prints it (and the verdicts read gc from). */
export function describeSettings(provider: string, faultPlan: readonly { readonly name: string }[]): Record<string, unknown> {
  const gcAvailable = typeof (globalThis as { gc?: unknown }).gc === 'function';
  return {
    provider,
    duration: seconds(DURATION_MS),
    faultEvery: seconds(FAULT_EVERY_MS),
    interval: seconds(INTERVAL_MS),
    workers: WORKERS,
    max: MAX,
    oversubscription: `${(WORKERS / MAX).toFixed(1)}x`,
    pool: POOL_OPTIONS,
    mix: '40% SELECT 1 (lease) / 30% pool.query pg_sleep(2ms) / 30% withTransaction INSERT',
    faults: faultPlan.map((f) => f.name).join(','),
    gc: gcAvailable ? 'exposed' : 'NOT exposed (heap compared without gc)',
    bounds: {
      graceMs: GRACE_MS,
      recoveryMs: RECOVERY_BOUND_MS,
      afterRecoveryMs: AFTER_RECOVERY_MS,
      heap: `+max(${HEAP_BOUND_MB} MB, ${HEAP_BOUND_RATIO * 100}%)`,
      handles: `+${HANDLE_SLACK} per type`,
      lateMs: LATE_MARGIN_MS,
      opMs: OP_BOUND_MS,
      fifo: `${FIFO_INVERSION_BOUND * 100}%`,
    },
  };
}
