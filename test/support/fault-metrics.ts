// Figures and small helpers the fault suites share (test/faults on PostgreSQL,
// test/mysql-faults on MariaDB), with nothing driver-specific: connect attempts over time
// (AttemptMeter, I10's connect-storm check), typed failures (I8), error codes and messages
// along a cause chain, settled outcomes, polling, percentiles, and the one-line results each
// scenario prints.
import { expect } from 'vitest';
import type { PoolStats } from '../../src/index.js';
import { errorsByKind, type OpRecord, type PoolObserver, type Queryable } from './fault-observer.js';

/** Anything with the pool's gauges. */
type WithStats = { stats(): PoolStats };

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Connect attempts so far (I10): every create attempt ends as created or createFailed. */
export function attempts(pool: WithStats): number {
  const s = pool.stats();
  return s.created + s.createFailed;
}

export function codeOf(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null | undefined)?.code;
  return typeof code === 'string' ? code : undefined;
}

/**
 * Failures that must be typed pool errors (AcquireTimeoutError or CircuitOpenError) caused by
 * one of `causes` (I8): counted by "code<-cause", with up to 5 offenders described. Returns
 * only the summary, so the records themselves are not kept alive.
 */
export function typedFailures(records: readonly OpRecord[], causes: readonly string[]): { count: number; causes: Record<string, number>; bad: string[] } {
  const out: Record<string, number> = {};
  const bad: string[] = [];
  for (const r of records) {
    const error = r.error as Error & { code?: string; cause?: unknown };
    const cause = codeOf(error.cause) ?? '-';
    const key = `${error.code ?? error.name}<-${cause}`;
    out[key] = (out[key] ?? 0) + 1;
    const typed = error.code === 'POOL_ACQUIRE_TIMEOUT' || error.code === 'POOL_CIRCUIT_OPEN';
    if ((!typed || !causes.includes(cause)) && bad.length < 5) bad.push(`${error.name} ${error.code ?? ''}: ${error.message}`);
  }
  return { count: records.length, causes: out, bad };
}

/** Failures by kind for ops that started in [from, to). */
export function failuresIn(observer: PoolObserver<Queryable>, from: number, to: number): Record<string, number> {
  return errorsByKind(observer.failures(from, to));
}

export function opsIn(observer: PoolObserver<Queryable>, from: number, to = Infinity): OpRecord[] {
  return observer.records.filter((r) => r.startedAt >= from && r.startedAt < to);
}

/** To whole milliseconds, for the figures printed. */
export const round = (n: number): number => Math.round(n);

/** Connect attempts sampled every 50 ms, for I10's rates. */
export class AttemptMeter {
  readonly samples: { at: number; attempts: number }[] = [];
  #timer: NodeJS.Timeout | undefined;

  constructor(readonly pool: WithStats) {}

  start(): this {
    const take = (): void => {
      this.samples.push({ at: performance.now(), attempts: attempts(this.pool) });
    };
    take();
    this.#timer = setInterval(take, 50);
    return this;
  }

  stop(): void {
    clearInterval(this.#timer);
    this.samples.push({ at: performance.now(), attempts: attempts(this.pool) });
  }

  #at(t: number): number {
    let value = this.samples[0]?.attempts ?? 0;
    for (const s of this.samples) {
      if (s.at > t) break;
      value = s.attempts;
    }
    return value;
  }

  /** Attempts in [from, to]. */
  between(from: number, to: number): number {
    return this.#at(to) - this.#at(from);
  }

  /** The most attempts in any `windowMs` window inside [from, to]. */
  maxInWindow(from: number, to: number, windowMs = 1000): number {
    let most = 0;
    for (const s of this.samples) {
      if (s.at < from || s.at + windowMs > to) continue;
      most = Math.max(most, this.between(s.at, s.at + windowMs));
    }
    // A window shorter than windowMs (a short outage) still counts, scaled down conservatively: not at all.
    if (to - from < windowMs) most = this.between(from, to);
    return most;
  }
}

/**
 * I10 while the server is unreachable: attempts/s <= max / retry.minTimeoutMs (overall and
 * in every 1 s window). Returns the figures for the report.
 */
export function checkNoConnectStorm(label: string, meter: AttemptMeter, pool: WithStats, from: number, to: number, minTimeoutMs: number): Record<string, number> {
  const max = pool.stats().max;
  const seconds = (to - from) / 1000;
  const total = meter.between(from, to);
  const bound = max / (minTimeoutMs / 1000);
  const perSecond = total / seconds;
  const busiest = meter.maxInWindow(from, to);
  expect.soft(perSecond, `${label} I10: ${total} connect attempts in ${seconds.toFixed(2)} s = ${perSecond.toFixed(1)}/s, bound max/minTimeout = ${bound}/s`).toBeLessThanOrEqual(bound);
  expect.soft(busiest, `${label} I10: busiest 1 s window had ${busiest} attempts, bound ${bound}`).toBeLessThanOrEqual(bound);
  return { attempts: total, perSecond: Number(perSecond.toFixed(1)), busiestSecond: busiest, boundPerSecond: bound };
}

/** Wait for `promise`, failing with `what` after `ms`. */
export async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Every `code` along the error's cause chain (SQLSTATE, errno, POOL_*). */
export function codes(error: unknown): string[] {
  const found: string[] = [];
  for (let e = error, depth = 0; e !== null && e !== undefined && depth < 8; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string') found.push(code);
    if (typeof e !== 'object') break;
  }
  return found;
}

/** Every message along the error's cause chain. */
export function messages(error: unknown): string {
  const found: string[] = [];
  for (let e = error, depth = 0; e !== null && e !== undefined && depth < 8; e = (e as { cause?: unknown }).cause, depth++) {
    found.push(e instanceof Error ? e.message : String(e));
    if (typeof e !== 'object') break;
  }
  return found.join(' <- ');
}

/** The settled outcome of a promise, with when it settled. */
export async function outcome<T>(promise: Promise<T>): Promise<{ value?: T; error?: unknown; at: number }> {
  try {
    const value = await promise;
    return { value, at: performance.now() };
  } catch (error) {
    return { error, at: performance.now() };
  }
}

/** One line of measured figures per scenario, for the report. */
export function note(label: string, figures: Record<string, unknown>): void {
  console.log(`[faults] ${label} ${JSON.stringify(figures)}`);
}

/** How long an operation's acquire took to settle. */
export function settleMs(record: OpRecord): number {
  return (record.acquiredAt ?? record.endedAt ?? record.startedAt) - record.startedAt;
}

/** Milliseconds from `from` until `check` holds, polling every `everyMs`; throws after `timeoutMs`. */
export async function timeUntil(what: string, check: () => boolean | Promise<boolean>, { from = performance.now(), timeoutMs = 5000, everyMs = 10 } = {}): Promise<number> {
  for (;;) {
    if (await check()) return performance.now() - from;
    if (performance.now() - from > timeoutMs) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await sleep(everyMs);
  }
}

/** The p-th percentile (nearest rank) of `values`; NaN when there are none. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

