// FAULTS.md §3 B on MariaDB: the server going away under a live lifeguard/mysql pool (40
// workers on max 10), measured with the generic PoolObserver (I1-I3, I5, I6, I7, I8, I9, I10)
// and useMariaDb()'s process hooks (I4).
//
//   restart  clean shutdown (SIGTERM) + start on the same port, under load       (F10)
//   crash    SIGKILL, 1 s down, start: InnoDB crash recovery                      (F11)
//   frozen   SIGSTOP for 3 s, then SIGCONT: acquires end at their deadline
//   down     the pool made while the server is down; the server started later   (F13b)
//
// Each test prints one `[mysql-faults]` line with its measured figures (failures by kind and
// cause, recovery ms, connect attempts) and asserts: every failure typed (a PoolError, or the
// driver's connection-fatal error for work the fault cut), no acquire later than its deadline
// + 100 ms, sessions of the pool's user <= max and 0 after close, recovery within 2 s, and no
// failure for operations that start 2 s after the server is back.
import type { Connection } from 'mysql2/promise';
import { describe, expect, it } from 'vitest';
import { isConnectionFatal, isRetryableConnectError } from '../../src/adapters/mysql/index.js';
import { PROVIDER_CAPABILITIES, sleep, useMariaDb } from '../mysql/harness.js';
import { AttemptMeter, checkNoConnectStorm, opsIn, outcome, round } from '../support/fault-metrics.js';
import { closingChecks } from '../support/fault-observer.js';
import { backgroundWork, BASE, failuresBetween, I7_MS, results, useMysqlFaults, WORKERS, type Observed } from './mysql-observer.js';

const db = useMariaDb();
const faults = useMysqlFaults(db);

/** The outage of `how`: taken down (waiting until mariadbd has exited), `downMs` more, started again (resolves when it accepts connections). */
async function outage(observed: Observed, how: 'restart' | 'crash', downMs: number): Promise<{ at: number; downAt: number; upAt: number; inFlight: number }> {
  const fault = observed.obs.fault(how);
  let down = false;
  try {
    down = true;
    if (how === 'restart') await db.stop();
    else await db.kill();
    const downAt = performance.now();
    if (downMs > 0) await sleep(downMs);
    await db.start();
    down = false;
    fault.end();
    return { at: fault.at, downAt, upAt: performance.now(), inFlight: fault.inFlight };
  } finally {
    if (down) await db.start();
  }
}

/** Restart or crash under load, then the checks every outage shares. */
async function outageUnderLoad(label: string, how: 'restart' | 'crash', downMs: number): Promise<void> {
  const observed = await faults.observed(label, BASE);
  const { pool, obs } = observed;
  // Which connection objects served work before the fault: none may serve any after the server is back.
  const before = new WeakSet<Connection>();
  let phase: 'before' | 'fault' | 'after' = 'before';
  let reused = 0;
  const work = backgroundWork();
  obs.load({
    workers: WORKERS,
    work: (c) => {
      if (phase === 'before') before.add(c);
      else if (phase === 'after' && before.has(c)) reused++;
      return work(c);
    },
  });
  await sleep(500);
  const meter = new AttemptMeter(pool).start();
  phase = 'fault';
  const { at, downAt, upAt, inFlight } = await outage(observed, how, downMs);
  phase = 'after';
  const recoveryMs = await obs.recovery(5000);
  const quietFrom = upAt + I7_MS;
  await sleep(Math.max(0, quietFrom + 600 - performance.now()));
  const report = await obs.finish();
  meter.stop();
  const stats = pool.stats();

  const during = failuresBetween(obs, 0, quietFrom);
  const after = failuresBetween(obs, quietFrom);
  // I10 over the whole outage: mariadbd stops listening early in its shutdown, which can take seconds.
  const storm = checkNoConnectStorm(label, meter, pool, at, upAt, BASE.retry.minTimeoutMs);
  const cut = obs.failures(0, quietFrom).filter((r) => isConnectionFatal(r.error));
  const refused = obs.failures(0, quietFrom).filter((r) => !isConnectionFatal(r.error));
  results(label, {
    stopMs: round(downAt - at),
    downMs: round(upAt - downAt),
    inFlightAtFault: inFlight,
    ops: report.ops,
    failed: report.failed,
    cutByTheOutage: cut.length,
    refusedAcquires: refused.length,
    failuresUntilUp2s: during.byKind,
    failuresAfterUp2s: after.count,
    opsAfterUp2s: opsIn(obs, quietFrom).length,
    recoveryMs: round(recoveryMs),
    circuitOpenRejections: stats.rejected.circuitOpen,
    created: stats.created,
    createFailed: stats.createFailed,
    destroyedByReason: stats.destroyedByReason,
    maxLateMs: report.maxLateMs,
    maxSessions: report.maxServerSessions,
    reusedFromBefore: reused,
    ...storm,
  });

  expect(during.untyped, `${label} I8: every failure is a PoolError or a connection-fatal driver error`).toEqual([]);
  // Each pooled connection the outage cut costs at most the one operation on it (measured: the
  // 10 leased at the fault). Every other failure is an acquire refused while the server was
  // down: a timeout, or the open circuit breaker failing it at once, caused by the refused
  // connect. How many depends on the outage and on how fast the workers come back (20 ms after
  // a failure): a 0.2 s restart gives none, a 6 s shutdown (measured once) ~2,500 fast
  // POOL_CIRCUIT_OPEN, while the connect attempts stay within I10.
  expect(cut.length, `${label} I9: connection-fatal failures <= connections cut (max ${BASE.max})`).toBeLessThanOrEqual(BASE.max);
  for (const r of refused) {
    const e = r.error as { code?: string; cause?: unknown };
    expect(['POOL_ACQUIRE_TIMEOUT', 'POOL_CIRCUIT_OPEN', 'POOL_OVERLOADED'], `${label}: a failure not cut by the outage is a refused acquire: ${String(r.error)}`).toContain(e.code);
    if (e.cause !== undefined) expect(isRetryableConnectError(e.cause), `${label}: caused by a retryable connect error: ${String(e.cause)}`).toBe(true);
  }
  expect(stats.destroyedByReason.broken, `${label}: the connections the outage cut were destroyed as broken`).toBeGreaterThanOrEqual(1);
  expect(reused, `${label}: a connection object from before the outage served work after it`).toBe(0);
  expect(opsIn(obs, quietFrom).length, `${label}: operations ran after recovery`).toBeGreaterThan(50);
  expect(recoveryMs, `${label} I7: first acquire + SELECT 1 after the server is back`).toBeLessThanOrEqual(I7_MS);
  // I9's second half: operations starting 2 s after the server is back never fail. (Failures
  // before that are bounded by the acquire deadlines, not by in-flight work: 40 workers
  // retrying through a 1-2 s outage each fail about once per deadline; counted above.)
  await closingChecks(obs, { budgetFrom: quietFrom, extraFailures: Infinity });
}

describe.runIf(PROVIDER_CAPABILITIES.stopStart)('MariaDB server lifecycle under load (40 workers, max 10)', () => {
  it('restart (clean shutdown + start, same port): at most the cut leases fail with the driver\'s error, other failures are typed refusals while down, no connection from before is reused, recovery within 2 s', async () => {
    await outageUnderLoad('restart', 'restart', 0);
  });

  it.runIf(PROVIDER_CAPABILITIES.kill)('crash (SIGKILL, 1 s down) + start with crash recovery: the same, and no connection from before the crash is reused', async () => {
    await outageUnderLoad('crash', 'crash', 1000);
  });

  it.runIf(PROVIDER_CAPABILITIES.pause)('frozen server (SIGSTOP 3 s, SIGCONT): acquires end at their deadline with a typed error, work resumes after the thaw', async () => {
    const settings = { ...BASE, acquireTimeoutMs: 1000, pingTimeoutMs: 500 };
    const { pool, obs } = await faults.observed('frozen', settings);
    obs.load({ workers: WORKERS, work: backgroundWork() });
    await sleep(500);
    const fault = obs.fault('SIGSTOP');
    await db.pause();
    let frozen = true;
    let thawAt: number;
    try {
      await sleep(3000);
    } finally {
      await db.unpause();
      thawAt = performance.now();
      frozen = false;
      fault.end();
    }
    expect(frozen).toBe(false);
    const recoveryMs = await obs.recovery(5000);
    const quietFrom = thawAt + I7_MS;
    await sleep(Math.max(0, quietFrom + 600 - performance.now()));
    const report = await obs.finish();
    const stats = pool.stats();

    // Acquires made while frozen: settled (rejected at their deadline, or served by a
    // connection freed before the freeze), none later than deadline + 100 ms (I1, asserted below).
    const startedFrozen = obs.records.filter((r) => r.startedAt >= fault.at && r.startedAt < thawAt - settings.acquireTimeoutMs);
    const timedOut = startedFrozen.filter((r) => (r.error as { code?: string } | undefined)?.code === 'POOL_ACQUIRE_TIMEOUT');
    const settleMs = timedOut.map((r) => r.acquiredAt! - r.startedAt);
    const during = failuresBetween(obs, fault.at, quietFrom);
    results('frozen', {
      frozenMs: round(thawAt - fault.at),
      inFlightAtFault: fault.inFlight,
      ops: report.ops,
      acquiresStartedWhileFrozen: startedFrozen.length,
      acquireTimeouts: timedOut.length,
      timeoutSettleMs: settleMs.length === 0 ? null : { min: round(Math.min(...settleMs)), max: round(Math.max(...settleMs)) },
      failuresUntilThaw2s: during.byKind,
      failuresAfterThaw2s: failuresBetween(obs, quietFrom).count,
      recoveryMs: round(recoveryMs),
      createFailed: stats.createFailed,
      destroyedByReason: stats.destroyedByReason,
      maxLateMs: report.maxLateMs,
      maxSessions: report.maxServerSessions,
    });
    expect(timedOut.length, 'acquires waiting on the frozen server end with POOL_ACQUIRE_TIMEOUT').toBeGreaterThan(0);
    for (const ms of settleMs) expect(ms, 'a timed-out acquire ends at its deadline, not before').toBeGreaterThanOrEqual(settings.acquireTimeoutMs - 5);
    expect(during.untyped, 'I8: every failure is a PoolError or a connection-fatal driver error').toEqual([]);
    expect(recoveryMs, 'I7 after the thaw').toBeLessThanOrEqual(I7_MS);
    await closingChecks(obs, { budgetFrom: quietFrom, extraFailures: Infinity });
  });

  it('pool made while the server is down: the first acquire fails within its deadline (ECONNREFUSED), the first after the start succeeds', async () => {
    const account = await faults.account('down');
    await db.stop();
    let up = false;
    try {
      const settings = { ...BASE, acquireTimeoutMs: 1000 };
      const { pool, obs } = await faults.observed('down', settings, { account });
      const started = performance.now();
      const first = await outcome(obs.run((c) => c.query('SELECT 1')));
      const firstMs = first.at - started;
      const error = first.error as (Error & { code?: string; cause?: unknown }) | undefined;
      expect(error, 'the first acquire fails while the server is down').toBeInstanceOf(Error);
      expect(['POOL_ACQUIRE_TIMEOUT', 'POOL_CIRCUIT_OPEN'], `typed: ${String(error)}`).toContain(error!.code);
      expect((error!.cause as { code?: string } | undefined)?.code, 'its cause is the refused connect').toBe('ECONNREFUSED');
      expect(isRetryableConnectError(error!.cause), 'ECONNREFUSED is retried').toBe(true);
      expect(firstMs, 'within its deadline + 100 ms').toBeLessThanOrEqual(settings.acquireTimeoutMs + 100);

      // Load while down, then the server starts.
      obs.load({ workers: WORKERS, work: backgroundWork() });
      await sleep(1500);
      const fault = obs.fault('server down');
      const startAt = performance.now();
      await db.start();
      up = true;
      const upAt = performance.now();
      fault.end();
      const recoveryMs = await obs.recovery(5000);
      const quietFrom = upAt + I7_MS;
      await sleep(Math.max(0, quietFrom + 600 - performance.now()));
      const report = await obs.finish();
      const stats = pool.stats();
      const during = failuresBetween(obs, 0, quietFrom);
      results('start while down', {
        firstAcquire: { code: error!.code, cause: (error!.cause as { code?: string }).code, ms: round(firstMs) },
        startMs: round(upAt - startAt),
        ops: report.ops,
        failuresUntilUp2s: during.byKind,
        failuresAfterUp2s: failuresBetween(obs, quietFrom).count,
        recoveryMs: round(recoveryMs),
        created: stats.created,
        createFailed: stats.createFailed,
        maxLateMs: report.maxLateMs,
        maxSessions: report.maxServerSessions,
      });
      expect(during.untyped, 'I8').toEqual([]);
      expect(recoveryMs, 'I7 after the start').toBeLessThanOrEqual(I7_MS);
      expect(opsIn(obs, quietFrom).length).toBeGreaterThan(50);
      await closingChecks(obs, { budgetFrom: quietFrom, extraFailures: Infinity });
    } finally {
      if (!up) await db.start();
    }
  });
});
