// The soak's run (see the header of soak.soak.ts): one pool through a ChaosProxy in front of
// the server, the workers, the sampler and the status lines; a baseline quiescent point after
// the warm-up; then the fault ticks (fault, removal, recovery probe, 1 s of load, quiescent
// point), never overlapping; the end point; close(); the summary; and the result the verdicts
// read.
import type { TestDatabase, TestPool } from '../integration/harness.js';
import { sleep } from '../integration/harness.js';
import { ChaosProxy } from '../support/chaos-proxy.js';
import { type FaultContext, type FaultDef, selectedFaults } from './faults.js';
import { firstLine, kindOf, log, now, seconds } from './format.js';
import { Ledger } from './ledger.js';
import { QuiescentPoints } from './quiescent.js';
import type { FaultMark, SoakResult } from './records.js';
import { handleCounts } from './resources.js';
import { ServerSampler } from './sampler.js';
import { describeSettings, DURATION_MS, FAULT_EVERY_MS, MAX, POOL_OPTIONS, RECOVERY_BOUND_MS, RECOVERY_GIVE_UP_MS, SETTLE_MS, WORKERS } from './settings.js';
import { StatusLines } from './status.js';
import { printSummary } from './summary.js';
import { Workload } from './workload.js';

/**
 * Run the soak on `db`. `registerCleanup` receives, once everything is started, what stops
 * and closes it all: the caller's afterAll runs it when the run did not get to its own close.
 */
export async function runSoak(db: TestDatabase, registerCleanup: (cleanup: () => Promise<void>) => void): Promise<SoakResult> {
  const faultPlan = selectedFaults();
  const settings = describeSettings(db.provider, faultPlan);
  log(`settings ${JSON.stringify(settings)}`);

  const handlesBefore = handleCounts(0);
  const proxy = await ChaosProxy.start({ upstreamHost: db.host, upstreamPort: db.port });
  const app = db.appName('soak');
  const table = db.table('soak_rows');
  await db.admin(`CREATE TABLE ${table} (id bigint PRIMARY KEY, at timestamptz NOT NULL DEFAULT now())`);
  const ctx: FaultContext = { db, proxy, app };

  // ---------------------------------------------------------------- state
  const ledger = new Ledger();
  const elapsed = (): number => ledger.elapsed();
  let pendingRemoval: (() => Promise<void>) | undefined;
  const skipped: string[] = [];

  // ---------------------------------------------------------------- the pool
  const pool: TestPool = db.pool({
    host: proxy.host,
    port: proxy.port,
    application_name: app,
    max: MAX,
    ...POOL_OPTIONS,
    onError: ledger.onError,
  });

  // ---------------------------------------------------------------- workers, sampler, status lines
  const workload = new Workload(db, pool, ledger, table);
  workload.start(WORKERS);
  const sampler = new ServerSampler(db, pool, app, ledger);
  const status = new StatusLines(pool, proxy, ledger, sampler, workload);
  const quiescent = new QuiescentPoints({ db, app, pool, proxy, ledger, workload });

  // ---------------------------------------------------------------- faults
  async function recoveryProbe(mark: FaultMark): Promise<void> {
    const from = now();
    let last: unknown;
    while (now() - from < RECOVERY_GIVE_UP_MS) {
      try {
        await pool.withConnection((client) => client.query('SELECT 1'), { timeoutMs: Math.max(1, RECOVERY_GIVE_UP_MS - (now() - from)) });
        mark.recoveryMs = now() - from;
        return;
      } catch (error) {
        last = error;
        await sleep(50);
      }
    }
    mark.recoveryError = `${kindOf(last)}: ${firstLine(last)}`;
  }

  async function tick(def: FaultDef): Promise<void> {
    const mark: FaultMark = {
      name: def.name,
      start: now(),
      at: elapsed(),
      inFlightAtHit: ledger.inFlight,
      leasedAtHit: pool.stats().leased,
      startedDuring: 0,
      failures: { during: 0, inFlight: 0, grace: 0 },
      kinds: {},
      afterRecovery: 0,
      onError: 0,
    };
    ledger.faults.push(mark);
    ledger.active = mark;
    log(`${seconds(elapsed()).padStart(7)} FAULT ${def.name}: in flight ${mark.inFlightAtHit} (${mark.leasedAtHit} holding a connection)`);
    try {
      const remove = await def.apply(ctx);
      pendingRemoval = remove;
      await sleep(def.holdMs);
      pendingRemoval = undefined;
      await remove();
    } finally {
      mark.end = now();
      ledger.active = undefined;
    }
    await recoveryProbe(mark);
    log(
      `${seconds(elapsed()).padStart(7)} FAULT ${def.name} removed after ${Math.round(mark.end - mark.start)} ms; started during ${mark.startedDuring}; ` +
        `recovery ${mark.recoveryMs === undefined ? `NONE (${mark.recoveryError})` : `${Math.round(mark.recoveryMs)} ms`}`,
    );
    await sleep(SETTLE_MS);
    await quiescent.take(`after ${def.name}`);
  }

  // ---------------------------------------------------------------- the schedule
  let closed = false;
  let shut = false;
  const shutdown = async (): Promise<void> => {
    if (shut) return;
    shut = true;
    workload.stop();
    if (pendingRemoval !== undefined) await pendingRemoval().catch(() => {});
    pendingRemoval = undefined;
    await Promise.all(workload.workers);
    if (status.printing) status.printLine();
    sampler.halt();
    status.halt();
    await Promise.all([sampler.done, status.done]);
    status.disable();
  };
  registerCleanup(async () => {
    if (!closed) {
      await shutdown();
      await pool.close({ timeoutMs: 2000 }).catch(() => {});
      await proxy.close();
    }
  });

  try {
    const warmupMs = Math.min(10_000, FAULT_EVERY_MS / 2, DURATION_MS / 4);
    await sleep(warmupMs);
    await quiescent.take('baseline');

    const supported = faultPlan.filter((f) => f.needs === undefined || db.capabilities[f.needs]);
    for (const f of faultPlan) if (!supported.includes(f)) skipped.push(`${f.name} (provider '${db.provider}' cannot ${f.needs})`);
    for (const s of skipped) log(`skipping fault ${s}`);
    // Longest a tick may take before the end: hold, recovery, settle, drain and checks.
    const tickBudgetMs = (f: FaultDef): number => f.holdMs + (f.name === 'restart' ? 4000 : 0) + RECOVERY_BOUND_MS + SETTLE_MS + 500;
    for (let k = 1, index = 0; supported.length > 0; k++, index++) {
      const def = supported[index % supported.length]!;
      const at = Math.max(k * FAULT_EVERY_MS, elapsed());
      if (at + tickBudgetMs(def) > DURATION_MS) break;
      await sleep(at - elapsed());
      await tick(def);
    }
    await sleep(Math.max(0, DURATION_MS - elapsed()));
    await quiescent.take('end');
  } finally {
    await shutdown();
  }

  const endStats = pool.stats();
  const inFlightAtEnd = ledger.inFlight;
  const elapsedMs = elapsed();

  // ---------------------------------------------------------------- close (I5)
  await pool.close({ timeoutMs: 5000 });
  const closedAt = now();
  let sessions = await db.sessions(app);
  while (sessions > 0 && now() - closedAt < 1000) {
    await sleep(20);
    sessions = await db.sessions(app);
  }
  const withinMs = sessions === 0 ? now() - closedAt : undefined;
  const afterStats = pool.stats();
  await proxy.close();
  closed = true;
  await sleep(50);
  const afterClose = { sessions, withinMs, size: afterStats.size, creating: afterStats.creating, handles: handleCounts(0), handlesBefore };

  // ---------------------------------------------------------------- summary
  const result: SoakResult = {
    settings,
    elapsedMs,
    issued: ledger.issued,
    settled: ledger.settled,
    ok: ledger.ok,
    failed: ledger.failed,
    errorsByKind: ledger.errorsByKind,
    faults: ledger.faults,
    skipped,
    unattributed: ledger.unattributed,
    unattributedCount: ledger.unattributedCount,
    afterRecovery: ledger.afterRecovery,
    nonErrors: ledger.nonErrors,
    onErrors: ledger.onErrors,
    onErrorUnattributed: ledger.onErrorUnattributed,
    points: quiescent.points,
    serverMax: sampler.serverMax,
    serverSamples: sampler.serverSamples,
    serverOverMax: sampler.serverOverMax,
    poolOverMax: sampler.poolOverMax,
    endStats,
    inFlightAtEnd,
    maxLateMs: workload.maxLateMs,
    maxOpMs: workload.maxOpMs,
    leaseAcquires: workload.leaseAcquires,
    fifoInversions: workload.fifoInversions,
    afterClose,
    dataTotals: workload.dataTotals,
  };
  printSummary(result, faultPlan, sampler.retirements);
  return result;
}
