// What the server-lifecycle fault files share (server-shutdown, server-outage, server-stalled,
// server-failover: FAULTS.md §3 B, F10–F15 and the frozen server): the pool settings that make
// I7's bound 2 s, background work, who got which client (ClientTracker), connect attempts over
// time (AttemptMeter, I10), typed failures, and a server outage under an observed pool.
import type pg from 'pg';
import { expect } from 'vitest';
import { isConnectionFatal } from '../../src/adapters/postgres/index.js';
import { sleep, type TestDatabase, type TestPool } from '../integration/harness.js';
import type { ShutdownMode } from '../integration/providers.js';
import { errorsByKind, type FaultMark, type Observer, type OpRecord, type Report } from './observer.js';

/** The fault suite's pool: I7's bound retry.maxTimeoutMs + createTimeoutMs + 500 ms is 2 s. */
export const BASE = { max: 5, acquireTimeoutMs: 2000, createTimeoutMs: 500, retry: { minTimeoutMs: 100, maxTimeoutMs: 1000 } } as const;
/** I7: the first acquire + SELECT 1 after the fault is removed succeeds within this. */
export const I7_MS = 2000;

/** Background work: SELECT 1 and pg_sleep(0.05), alternately. */
export function backgroundWork(): (client: pg.Client) => Promise<unknown> {
  let n = 0;
  return (client) => (n++ % 2 === 0 ? client.query('SELECT 1') : client.query('SELECT pg_sleep(0.05)'));
}

/** Connect attempts so far (I10): every create attempt ends as created or createFailed. */
export function attempts(pool: TestPool): number {
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
export function failuresIn(observer: Observer, from: number, to: number): Record<string, number> {
  return errorsByKind(observer.failures(from, to));
}

export function opsIn(observer: Observer, from: number, to = Infinity): OpRecord[] {
  return observer.records.filter((r) => r.startedAt >= from && r.startedAt < to);
}

/** To whole milliseconds, for the figures printed. */
export const round = (n: number): number => Math.round(n);

/**
 * What happened to each client the pool handed out: the pool must never hand out again a
 * client whose socket closed ('end') or that failed with a connection-fatal error.
 */
export class ClientTracker {
  readonly #info = new WeakMap<pg.Client, { id: number; firstSeen: number; closedAt?: number; fatalAt?: number }>();
  #next = 0;
  readonly violations: string[] = [];
  closed = 0;
  fatal = 0;

  seen(client: pg.Client): { id: number; firstSeen: number } {
    const now = performance.now();
    let info = this.#info.get(client);
    if (info === undefined) {
      const fresh: { id: number; firstSeen: number; closedAt?: number; fatalAt?: number } = { id: ++this.#next, firstSeen: now };
      info = fresh;
      this.#info.set(client, fresh);
      // On the connection, not the client: listeners a caller adds to a leased client are
      // removed when its lease ends.
      (client as unknown as { connection: NodeJS.EventEmitter }).connection.once('end', () => {
        if (fresh.closedAt === undefined) this.closed++;
        fresh.closedAt ??= performance.now();
      });
    } else if (info.closedAt !== undefined || info.fatalAt !== undefined) {
      const what = info.closedAt !== undefined ? `its socket closed ${round(now - info.closedAt)} ms earlier` : `it failed fatally ${round(now - info.fatalAt!)} ms earlier`;
      if (this.violations.length < 10) this.violations.push(`client #${info.id} handed out again although ${what}`);
    }
    return info;
  }

  /** `work` with bookkeeping: which client ran it, and whether it died under it. */
  wrap<R>(work: (client: pg.Client) => Promise<R>): (client: pg.Client) => Promise<R> {
    return async (client) => {
      this.seen(client);
      try {
        return await work(client);
      } catch (error) {
        const info = this.#info.get(client)!;
        if (isConnectionFatal(error) && info.fatalAt === undefined) {
          info.fatalAt = performance.now();
          this.fatal++;
        }
        throw error;
      }
    };
  }

  get clients(): number {
    return this.#next;
  }
}

/** Connect attempts sampled every 50 ms, for I10's rates. */
export class AttemptMeter {
  readonly samples: { at: number; attempts: number }[] = [];
  #timer: NodeJS.Timeout | undefined;

  constructor(readonly pool: TestPool) {}

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
export function checkNoConnectStorm(label: string, meter: AttemptMeter, pool: TestPool, from: number, to: number, minTimeoutMs: number): Record<string, number> {
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

/** The background load of most scenarios: 8 workers on backgroundWork(), each client's fate tracked. */
export function trackedBackgroundLoad(observer: Observer): ClientTracker {
  const tracker = new ClientTracker();
  observer.load({ workers: 8, work: tracker.wrap(backgroundWork()) });
  return tracker;
}

/** When an outage began and ended (performance.now()). */
export interface Outage {
  readonly fault: FaultMark;
  /** The server had exited. */
  readonly downAt: number;
  /** db.start() was called. */
  readonly startAt: number;
  /** The server accepted connections again (the fault's end). */
  readonly upAt: number;
}

/**
 * A fault named `name` under `observer`: the server shut down in `mode` (waiting until it has
 * exited), kept down `downMs` more, then started; started again if anything here fails.
 */
export async function serverOutage(db: TestDatabase, observer: Observer, { name, mode, downMs }: { name: string; mode: ShutdownMode; downMs: number }): Promise<Outage> {
  let serverDown = false;
  const fault = observer.fault(name);
  try {
    serverDown = true;
    await db.shutdown(mode).exited;
    const downAt = performance.now();
    if (downMs > 0) await sleep(downMs);
    const startAt = performance.now();
    await db.start(); // after an immediate stop: crash recovery; resolves once the server accepts connections
    serverDown = false;
    const upAt = performance.now();
    fault.end();
    return { fault, downAt, startAt, upAt };
  } finally {
    if (serverDown) await db.start();
  }
}

/** Once the fault is removed: I7's time to the first good operation (trying for up to 5 s), 500 ms more load, then the observer's report. */
export async function recoverAndFinish(observer: Observer): Promise<{ recoveryMs: number; result: Report }> {
  const recoveryMs = await observer.recovery(5000);
  await sleep(500);
  return { recoveryMs, result: await observer.finish() };
}
