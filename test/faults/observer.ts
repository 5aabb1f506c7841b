// The invariants of FAULTS.md §2.4, measured rather than assumed, for the fault suite.
//
// An Observer wraps one pool under test. Operations go through `run()` (acquire, work,
// release), so each acquire's settle time is compared with its own deadline (I1) and
// counted exactly once (I3). A sampler reads pool.stats() every 10 ms and the server's
// session count for the pool's application_name every 50 ms (I2). `fault()` marks the
// moment a fault hits and how many operations were in flight (I9); `recovery()` measures
// how long the first successful operation takes once the fault is gone (I7); `closeAndCheck()`
// closes the pool and waits for the server to show no sessions (I5). I4 (no unhandled
// rejection or uncaught exception) is checked for every file by usePostgres().
import type pg from 'pg';
import { expect } from 'vitest';
import { isConnectionFatal } from '../../src/adapters/postgres/index.js';
import type { PoolStats } from '../../src/index.js';
import { SystemClock, type ClockTimer } from '../../src/pool/clock.js';
import type { TestDatabase, TestPool } from '../integration/harness.js';
import { sleep } from '../integration/harness.js';

/** I1's margin: an acquire may settle this much after its deadline. */
export const LATE_MARGIN_MS = 100;

export interface OpRecord {
  readonly startedAt: number;
  /** When the acquire settled (resolved or rejected). */
  acquiredAt?: number;
  /** The acquire's deadline, performance.now() based. */
  readonly deadline: number;
  endedAt?: number;
  error?: unknown;
}

export interface FaultMark {
  readonly name: string;
  readonly at: number;
  /** Operations started and not yet ended when the fault hit. */
  readonly inFlight: number;
  endedAt?: number;
  end(): void;
}

export interface LoadOptions {
  /** Concurrent workers. @default 8 */
  readonly workers?: number;
  /** The work of one operation. @default SELECT 1 */
  readonly work?: (client: pg.Client) => Promise<unknown>;
  /** Pause after a failed operation, so a dead server does not turn the loop into a spin. @default 20 */
  readonly pauseAfterErrorMs?: number;
  /** Pause between operations of one worker. @default 0 */
  readonly thinkMs?: number;
}

/** One reading of the pool's gauges, taken by the sampler every 10 ms (see `Observer.timeline`). */
export interface PoolSample {
  /** performance.now() of the reading. */
  readonly at: number;
  readonly size: number;
  readonly creating: number;
  readonly idle: number;
  readonly leased: number;
  readonly waiting: number;
  readonly created: number;
  readonly createFailed: number;
}

export interface Report {
  readonly ops: number;
  readonly ok: number;
  readonly failed: number;
  readonly errorsByKind: Readonly<Record<string, number>>;
  readonly maxLateMs: number;
  readonly maxSize: number;
  readonly maxServerSessions: number;
  readonly samples: number;
  readonly serverSamples: number;
}

/** Failed records counted by `errorKind`; records without an error are skipped. */
export function errorsByKind(records: readonly { readonly error?: unknown }[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const r of records) {
    if (r.error === undefined) continue;
    const kind = errorKind(r.error);
    out[kind] = (out[kind] ?? 0) + 1;
  }
  return out;
}

/** `code` when the error has one (SQLSTATE, errno, POOL_*), else its name. */
export function errorKind(error: unknown): string {
  if (typeof error === 'object' && error !== null) {
    const code = (error as { code?: unknown }).code;
    if (typeof code === 'string' && code !== '') return code;
    const name = (error as { name?: unknown }).name;
    if (typeof name === 'string') return name;
  }
  return typeof error;
}

export class Observer {
  readonly db: TestDatabase;
  readonly pool: TestPool;
  readonly max: number;
  readonly acquireTimeoutMs: number;
  readonly records: OpRecord[] = [];
  readonly faults: FaultMark[] = [];
  /** Every pool sample, in order (the sampler's 10 ms readings), for time-windowed checks. */
  readonly timeline: PoolSample[] = [];
  #issued = 0;
  #settled = 0;
  #doubleSettled = 0;
  #inFlight = 0;
  #maxSize = 0;
  #maxServer = 0;
  #samples = 0;
  #serverSamples = 0;
  #sizeViolations: string[] = [];
  #sampling = false;
  #samplers: Promise<void>[] = [];
  #loads: { stop(): Promise<void> }[] = [];

  /** Counts the sessions the pool holds, for I2's sampler. */
  readonly #sessions: () => Promise<number>;

  /**
   * `sessions` counts the sessions the pool holds where they are: by default the server's for
   * the pool's application_name; behind PgBouncer, its client connections (PgBouncer owns the
   * server connections, and opens more of them than the pool has clients while cancels land).
   */
  /** Sessions I2 tolerates above max (see the constructor). */
  readonly #sessionSlack: number;

  /**
   * `sessionSlack`: sessions allowed above `max` in I2's count, for pools whose destroyed
   * clients stay connected a moment after their slot is freed (behind a pooler, a busy client
   * is cancelled and its query allowed to end before it closes, in the background).
   */
  constructor(db: TestDatabase, pool: TestPool, options: { max: number; acquireTimeoutMs: number; sessions?: () => Promise<number>; sessionSlack?: number }) {
    this.#sessionSlack = options.sessionSlack ?? 0;
    this.db = db;
    this.pool = pool;
    this.max = options.max;
    this.acquireTimeoutMs = options.acquireTimeoutMs;
    this.#sessions = options.sessions ?? (() => db.sessions(pool.app));
  }

  /** Start sampling pool gauges (every 10 ms) and server sessions (every 50 ms). */
  start(): this {
    this.#sampling = true;
    this.#samplers.push(this.#samplePool(), this.#sampleServer());
    return this;
  }

  /** One operation: acquire (deadline tracked), `work`, release, or destroy when the error killed the connection. */
  async run<R>(work: (client: pg.Client) => Promise<R>, options: { timeoutMs?: number } = {}): Promise<R> {
    const startedAt = performance.now();
    const record: OpRecord = { startedAt, deadline: startedAt + (options.timeoutMs ?? this.acquireTimeoutMs) };
    this.records.push(record);
    this.#issued++;
    this.#inFlight++;
    let settledOnce = false;
    const settle = (): void => {
      if (settledOnce) this.#doubleSettled++;
      settledOnce = true;
      this.#settled++;
      record.acquiredAt = performance.now();
    };
    try {
      const lease = await this.pool.acquire(options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs }).then(
        (value) => {
          settle();
          return value;
        },
        (error: unknown) => {
          settle();
          throw error;
        },
      );
      try {
        const result = await work(lease.resource);
        await lease.release();
        return result;
      } catch (error) {
        if (isConnectionFatal(error)) await lease.destroy(error);
        else await lease.release();
        throw error;
      }
    } catch (error) {
      record.error = error;
      throw error;
    } finally {
      record.endedAt = performance.now();
      this.#inFlight--;
    }
  }

  /** Background workers looping `run(work)` until `stop()`. */
  load(options: LoadOptions = {}): { stop(): Promise<void> } {
    const { workers = 8, work = (client: pg.Client) => client.query('SELECT 1'), pauseAfterErrorMs = 20, thinkMs = 0 } = options;
    let running = true;
    const loops = Array.from({ length: workers }, async () => {
      while (running) {
        try {
          await this.run(work);
          if (thinkMs > 0) await sleep(thinkMs);
        } catch {
          await sleep(pauseAfterErrorMs);
        }
      }
    });
    const handle = {
      async stop() {
        running = false;
        await Promise.all(loops);
      },
    };
    this.#loads.push(handle);
    return handle;
  }

  /** Mark that a fault hits now; call `end()` on the mark when it is removed. */
  fault(name: string): FaultMark {
    const mark: FaultMark = {
      name,
      at: performance.now(),
      inFlight: this.#inFlight,
      end() {
        mark.endedAt = performance.now();
      },
    };
    this.faults.push(mark);
    return mark;
  }

  /** Operations that failed, optionally only those that started in [from, to). */
  failures(from = 0, to = Infinity): OpRecord[] {
    return this.records.filter((r) => r.error !== undefined && r.startedAt >= from && r.startedAt < to);
  }

  /** I7: time until one operation (acquire + SELECT 1) succeeds, trying every 50 ms for up to `withinMs`. */
  async recovery(withinMs = 10_000): Promise<number> {
    const started = performance.now();
    let last: unknown;
    while (performance.now() - started < withinMs) {
      try {
        await this.pool.withConnection((client) => client.query('SELECT 1'), { timeoutMs: Math.max(1, withinMs - (performance.now() - started)) });
        return performance.now() - started;
      } catch (error) {
        last = error;
        await sleep(50);
      }
    }
    throw new Error(`no successful operation within ${withinMs} ms after the fault ended (last error: ${String(last)})`, { cause: last });
  }

  /** Pool samples taken in [from, to). */
  samplesBetween(from: number, to = Infinity): PoolSample[] {
    return this.timeline.filter((s) => s.at >= from && s.at < to);
  }

  /** Stop the loads and the samplers, and summarise. */
  async finish(): Promise<Report> {
    await Promise.all(this.#loads.splice(0).map((load) => load.stop()));
    this.#sampling = false;
    await Promise.all(this.#samplers.splice(0));
    return this.report();
  }

  report(): Report {
    let failed = 0;
    let maxLateMs = 0;
    for (const r of this.records) {
      if (r.error !== undefined) failed++;
      if (r.acquiredAt !== undefined) maxLateMs = Math.max(maxLateMs, r.acquiredAt - r.deadline);
    }
    return {
      ops: this.records.length,
      ok: this.records.length - failed,
      failed,
      errorsByKind: errorsByKind(this.records),
      maxLateMs: Math.round(maxLateMs),
      maxSize: this.#maxSize,
      maxServerSessions: this.#maxServer,
      samples: this.#samples,
      serverSamples: this.#serverSamples,
    };
  }

  /**
   * The invariants every scenario checks: I1 (no acquire settles later than its deadline +
   * 100 ms), I2 (size + creating <= max at every sample, server sessions <= max), I3
   * (every acquire settled exactly once). Call after `finish()`.
   */
  assertInvariants(): void {
    const report = this.report();
    expect(this.#inFlight, 'operations still running after finish()').toBe(0);
    expect(report.maxLateMs, `I1: an acquire settled ${report.maxLateMs} ms after its deadline`).toBeLessThanOrEqual(LATE_MARGIN_MS);
    expect(this.#sizeViolations, 'I2: size + creating <= max at every sample').toEqual([]);
    expect(this.#samples, 'the pool sampler ran').toBeGreaterThan(0);
    expect(report.maxServerSessions, `I2: server sessions for the pool never exceed max${this.#sessionSlack > 0 ? ` + ${this.#sessionSlack} closing` : ''}`).toBeLessThanOrEqual(this.max + this.#sessionSlack);
    expect(this.#settled, 'I3: every acquire settled').toBe(this.#issued);
    expect(this.#doubleSettled, 'I3: no acquire settled twice').toBe(0);
    for (const r of this.records) {
      if (r.error !== undefined) {
        // I8: errors are typed and keep their cause: never a bare string or a code-less Error without a cause.
        expect(r.error, 'I8: every failure is an Error').toBeInstanceOf(Error);
      }
    }
  }

  /**
   * I9: failures that started before `quietFrom` are at most the operations in flight when
   * the faults hit plus `extra`; operations that started at or after `quietFrom` (the
   * server back and one validation cycle done) never fail.
   */
  assertErrorBudget(quietFrom: number, extra = 0): void {
    const budget = this.faults.reduce((sum, f) => sum + f.inFlight, 0) + extra;
    const before = this.failures(0, quietFrom);
    const after = this.failures(quietFrom);
    expect(before.length, `I9: ${before.length} failures (${summarise(before)}) against a budget of ${budget} (in flight when the faults hit)`).toBeLessThanOrEqual(budget);
    expect(after.length, `I9: operations started after recovery failed: ${summarise(after)}`).toBe(0);
  }

  /** I6: 1 s after a fault ended, the server holds no session the pool does not know about. */
  async assertNoOrphans(): Promise<void> {
    await sleep(1000);
    // Read the pool before and after the server, so a create finishing in between is no orphan.
    const before = this.pool.stats();
    const server = await this.db.sessions(this.pool.app);
    const after = this.pool.stats();
    expect(server, 'I6: server sessions <= pool size + creating').toBeLessThanOrEqual(Math.max(before.size + before.creating, after.size + after.creating));
  }

  /** I5: close the pool; its server sessions reach 0 within 1 s. */
  async closeAndCheck(): Promise<void> {
    await this.finish();
    await this.pool.close({ timeoutMs: 5000 });
    const deadline = performance.now() + 1000;
    let sessions = await this.db.sessions(this.pool.app);
    while (sessions > 0 && performance.now() < deadline) {
      await sleep(20);
      sessions = await this.db.sessions(this.pool.app);
    }
    expect(sessions, 'I5: no server sessions 1 s after close()').toBe(0);
    const stats: PoolStats = this.pool.stats();
    expect(stats.size + stats.creating, 'I5: nothing left in the pool after close()').toBe(0);
  }

  async #samplePool(): Promise<void> {
    while (this.#sampling) {
      const s = this.pool.stats();
      this.timeline.push({
        at: performance.now(),
        size: s.size,
        creating: s.creating,
        idle: s.idle,
        leased: s.leased,
        waiting: s.waiting,
        created: s.created,
        createFailed: s.createFailed,
      });
      this.#samples++;
      this.#maxSize = Math.max(this.#maxSize, s.size);
      if (s.size + s.creating > this.max && this.#sizeViolations.length < 10) {
        this.#sizeViolations.push(`size ${s.size} + creating ${s.creating} > max ${this.max}`);
      }
      await sleep(10);
    }
  }

  async #sampleServer(): Promise<void> {
    while (this.#sampling) {
      try {
        const n = await this.#sessions();
        this.#serverSamples++;
        this.#maxServer = Math.max(this.#maxServer, n);
      } catch {
        // The server is down or restarting: nothing to count.
      }
      await sleep(50);
    }
  }
}

function summarise(records: readonly OpRecord[]): string {
  return JSON.stringify(errorsByKind(records));
}

/**
 * The system clock (same caching and deadline semantics: it is a SystemClock), counting
 * the timers the pool holds: pass it as the pool's `clock` to check that `close()` leaves
 * no pool timer behind (I5). Unref'ed timers are invisible to process.getActiveResourcesInfo().
 */
export class CountingClock extends SystemClock {
  /** Timers set and neither fired nor cleared yet. */
  readonly live = new Set<ClockTimer>();
  /** The delay each live timer was set with (same keys as `live`): which timers are left, not just how many. */
  readonly liveDelays = new Map<ClockTimer, number>();

  override setTimeout(callback: () => void, ms: number): ClockTimer {
    const timer: ClockTimer = super.setTimeout(
      () => {
        this.live.delete(timer);
        this.liveDelays.delete(timer);
        callback();
      },
      ms,
    );
    this.live.add(timer);
    this.liveDelays.set(timer, ms);
    return timer;
  }

  override clearTimeout(timer: ClockTimer): void {
    this.live.delete(timer);
    this.liveDelays.delete(timer);
    super.clearTimeout(timer);
  }
}
