// What the server-lifecycle fault files share (server-shutdown, server-outage, server-stalled,
// server-failover: FAULTS.md §3 B, F10–F15 and the frozen server): the pool settings that make
// I7's bound 2 s, background work, who got which client (ClientTracker), connect attempts over
// time (AttemptMeter, I10), typed failures, and a server outage under an observed pool.
import type pg from 'pg';
import { isConnectionFatal } from '../../src/adapters/postgres/index.js';
import { sleep, type TestDatabase } from '../integration/harness.js';
import type { ShutdownMode } from '../integration/providers.js';
import { round } from '../support/fault-metrics.js';
import { type FaultMark, type Observer, type Report } from './observer.js';

export { AttemptMeter, attempts, checkNoConnectStorm, codeOf, failuresIn, opsIn, round, typedFailures, within } from '../support/fault-metrics.js';

/** The fault suite's pool: I7's bound retry.maxTimeoutMs + createTimeoutMs + 500 ms is 2 s. */
export const BASE = { max: 5, acquireTimeoutMs: 2000, createTimeoutMs: 500, retry: { minTimeoutMs: 100, maxTimeoutMs: 1000 } } as const;
/** I7: the first acquire + SELECT 1 after the fault is removed succeeds within this. */
export const I7_MS = 2000;

/** Background work: SELECT 1 and pg_sleep(0.05), alternately. */
export function backgroundWork(): (client: pg.Client) => Promise<unknown> {
  let n = 0;
  return (client) => (n++ % 2 === 0 ? client.query('SELECT 1') : client.query('SELECT pg_sleep(0.05)'));
}

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
