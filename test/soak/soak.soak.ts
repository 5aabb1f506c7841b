// The soak (FAULTS.md §6 L1 + L7): a fixed time at 10× oversubscription against a real
// PostgreSQL through the in-process fault proxy, with a different fault every
// SOAK_FAULT_EVERY, a status line every SOAK_INTERVAL, and a verdict at the end.
//
// Run:   npm run soak                                   (builds, then 10 minutes)
//        LIFEGUARD_TEST_PG=embedded SOAK_DURATION=60s SOAK_FAULT_EVERY=10s \
//          npx vitest run --config vitest.soak.config.ts (what CI runs)
// Not part of `npm test` (vitest.config.ts only includes *.test.ts).
//
// Settings (environment; durations as 1500ms, 60s, 10m, 1h, a bare number is seconds):
//   SOAK_DURATION     how long the load runs                      default 10m
//   SOAK_FAULT_EVERY  spacing of the fault ticks                  default 30s
//   SOAK_INTERVAL     spacing of the status lines                 default 5s
//   SOAK_WORKERS      concurrent workers (no think time)          default 100
//   SOAK_MAX          pool max                                    default 10
//   SOAK_FAULTS       comma list of fault names, run in that order and repeated
//                     (default: all of FAULTS below, in that order)
// The PostgreSQL provider is the harness's (LIFEGUARD_TEST_PG, DATABASE_URL...): faults the
// provider cannot do (restart, freeze with DATABASE_URL) are skipped and said so.
//
// What runs: one pool (createPostgresPool through usePostgres().pool) pointed at a
// ChaosProxy in front of the server: max 10, acquireTimeoutMs 5000, queryTimeoutMs 2000 (so a
// blackholed query ends), createTimeoutMs 3000, maxLifetimeMs 60 s (the pool retires each
// connection at a random point below it, so they do not all go together), idleTimeoutMs 30 s,
// destroyTimeoutMs 2000,
// retry.maxTimeoutMs 1000 (so I7's 2-second recovery is reachable: the default 5 s backoff
// cap alone would exceed it), onError collected. 100 workers loop with no think time over
//   40 % `SELECT 1` on an explicit lease (acquire, query, release; destroy on a fatal error):
//        these measure the acquire wait (p99 per line), acquire lateness (I1) and FIFO order;
//   30 % `pool.query('SELECT pg_sleep(0.002)')`;
//   30 % `pool.withTransaction` inserting a row with a unique id into a table.
// A worker that fails pauses 50–100 ms before its next operation (no spin).
//
// Fault ticks (one at each multiple of SOAK_FAULT_EVERY; a tick that overruns delays the
// next, they never overlap). The *window* of a fault runs from the moment its injection
// starts until its removal has completed:
//   terminate    pg_terminate_backend on every backend of the pool (instantaneous)
//   blackhole    proxy blackhole on existing links for 3 s (queryTimeoutMs ends the queries)
//   restart      server fast restart, db.restart() (window = the whole restart)
//   proxy-down   proxy down (ECONNREFUSED, every link closed) for 2 s, then up
//   saturate     600 ± 100 ms each way on every link for 6 s: queries still end within
//                queryTimeoutMs, but 10 connections cannot serve 100 workers within
//                acquireTimeoutMs, so acquires time out while the process is busy (I1)
//   freeze       every server process SIGSTOPped (db.pause) for 2 s, then SIGCONT
//   reset-peer   RST on every existing link (instantaneous)
//   latency      100 ± 50 ms each way on every link for 3 s
//   cancel       pg_cancel_backend on the pool's active backends every 100 ms for 2 s
//   limit-data   new links close after 3000 bytes each way, for 4 s; existing links get a
//                FIN at the start so the pool has to reconnect through the limit
//   slow-close   closes held back 2 s on every link for 3 s, and the pool's backends
//                terminated at the start so there are closes to hold
// The order puts terminate, blackhole, restart, proxy-down and saturate first, so a 60 s run
// at SOAK_FAULT_EVERY=10s exercises those five; at 6s nine fit (all but limit-data and
// slow-close). With the default 30 s spacing all eleven run in 6 minutes, and latency and
// cancel, two faults that replace no connection, come in a row after reset-peer (which
// replaces them all): the connections made then reach their (jittered) maxLifetimeMs in a
// mostly quiet stretch, so lifetime retirement under load is exercised away from any fault
// window (most other faults replace every connection, so lifetime rarely fires otherwise).
// The summary lists when retirements happened.
//
// After each fault: a recovery probe (I7): pool.withConnection(SELECT 1) every 50 ms from
// the removal until one succeeds; then 1 s of load (I6's settle time); then a *quiescent
// point*: the workers hold, every operation in flight finishes, and we look at the pool,
// the server, the committed rows, the heap (after gc) and the process handles; then the
// workers resume. One quiescent point before the first fault (the baseline, after warm-up)
// and one at the end.
//
// Verdicts (each its own `it`, so CI counts them; bounds and reasons inline below):
//   1 no leaked connections   server sessions <= max at every 100 ms sample; at every quiescent
//                             point, server sessions == proxy links == pool.size within 1 s;
//                             after close(), server sessions 0 within 1 s, pool size 0.
//   2 no unexpected errors    every failed operation is attributable to a fault: it started in
//                             the window, was in flight when the fault hit, or ended within
//                             GRACE_MS after the window; same for onError reports; every
//                             failure is an Error (I8).
//   3 I9 error budget         per fault: attributed failures <= operations in flight when it hit
//                             + operations started inside its window; and operations started
//                             >= 1 s after the removal (one pingIfIdleMs) never fail.
//   4 recovery (I7)           the probe succeeds within 2 s of each removal.
//   5 heap flat               heap used after gc at the end <= baseline + max(10 MB, 20 %).
//   6 handles flat            per resource type at every quiescent point <= baseline + 2
//                             (TCP sockets counted minus 3 per pooled connection); per-client
//                             listener counts <= baseline; after close, nothing above the
//                             count before the pool and proxy existed (+ 2).
//   7 no data lost            every id whose transaction resolved is in the table; every id
//                             whose transaction failed before its INSERT returned is not.
//   8 no stuck waiters        every operation settled exactly once; waiting == leased == 0 at
//                             the end; I1 (acquire settles <= deadline + 100 ms); I2 pool side;
//                             operations <= OP_BOUND_MS; FIFO inversions <= 1 %.
//
// Bounds, and why:
// - GRACE_MS = acquireTimeoutMs + queryTimeoutMs + 1 s (8 s): an operation that began as a
//   fault ended may still wait out one acquire and one query on a connection the fault broke.
//   A failure is attributed to the latest fault it matches; one that matches none is listed.
// - I9's budget, per fault, counts the operations started and not yet settled when its
//   injection began (queued waiters included, so about SOAK_WORKERS) plus those started while
//   its window was open; every failure attributed to the fault counts against it, including
//   those in the grace period. It is loose for long windows (everything started in them may
//   fail), so its second half is the sharp one: operations started >= 1 s (one pingIfIdleMs)
//   after a removal must not fail at all. "leased" at the hit is printed for information.
// - Heap (after gc, end vs the baseline point): + max(10 MB, 20 %). The gc'd heap here is
//   about 15 MB and moves by 1–2 MB between points; 10 MB catches a leak of 40 bytes per
//   operation in a 60 s run (about 250 000 operations), 4 bytes per operation in 10 minutes,
//   or a retained pg.Client per destroyed connection after a few hundred of them. The soak's
//   own bookkeeping is bounded: transaction states since the last quiescent point only, at
//   most 50 stored failure notes, counters otherwise.
// - Handles (process.getActiveResourcesInfo() by type, at quiescent points): baseline + 2 (the
//   status loop's timer or a sampler reconnect may be in flight). TCP sockets are counted
//   minus 3 per pooled connection (pg's socket and the proxy's two ends of its link).
// - onError: no kind is exempt; every report must fall in a fault window + GRACE_MS (seen:
//   POOL_DESTROY_TIMEOUT under slow-close, where client.end() waits for the held close).
// - Recovery 2 s (I7); I1 100 ms; FIFO inversions 1 % (L1); OP_BOUND_MS = an acquire + four
//   bounded queries (BEGIN, INSERT, COMMIT, ROLLBACK) + 1 s.
//
// The soak imports src/ through the harness, like the integration suites.
//
// This file holds the run's entry and its verdicts; the machinery is beside it in test/soak/:
// settings.ts (environment, pool options, bounds), faults.ts (the faults and SOAK_FAULTS),
// run.ts (the schedule: ticks, recovery probe, quiescent points, close), workload.ts (workers,
// the operation mix, transactions and the data check), ledger.ts (counts and attribution of
// failures to faults), sampler.ts (server sessions every 100 ms), status.ts (the status line),
// quiescent.ts (the quiescent points), summary.ts (the summary), records.ts (what is recorded),
// format.ts and resources.ts (small readings and formatting).
import { afterAll, describe, expect, it } from 'vitest';
import { usePostgres } from '../integration/harness.js';
import { log, seconds } from './format.js';
import type { SoakResult } from './records.js';
import { runSoak } from './run.js';
import {
  AFTER_RECOVERY_MS,
  DRAIN_BOUND_MS,
  FIFO_INVERSION_BOUND,
  GRACE_MS,
  HANDLE_SLACK,
  HEAP_BOUND_MB,
  HEAP_BOUND_RATIO,
  LATE_MARGIN_MS,
  MAX,
  OP_BOUND_MS,
  RECOVERY_BOUND_MS,
} from './settings.js';

// ------------------------------------------------------------------ the soak

const db = usePostgres();
let result: SoakResult | undefined;
let cleanupAfterAll: (() => Promise<void>) | undefined;

afterAll(async () => {
  await cleanupAfterAll?.();
});

// ------------------------------------------------------------------ verdicts

function soak(): SoakResult {
  if (result === undefined) throw new Error('the soak did not complete: no verdict');
  return result;
}

describe('soak', () => {
  it('runs the soak', async () => {
    result = await runSoak(db, (cleanup) => {
      cleanupAfterAll = cleanup;
    });
  });

  it('1. no leaked connections: server sessions <= max throughout, == pool size at quiescent points, 0 after close', () => {
    const r = soak();
    log(`verdict 1: server max ${r.serverMax} (bound ${MAX}); quiescent points ${r.points.map((p) => `${p.label}: ${p.server}/${p.links}/${p.size}`).join(', ')}; after close ${r.afterClose.sessions} sessions, size ${r.afterClose.size}`);
    expect.soft(r.serverSamples, 'the server sampler ran').toBeGreaterThan(0);
    expect.soft(r.serverOverMax, `server sessions never above max ${MAX} (100 ms samples)`).toEqual([]);
    const unequal = r.points.filter((p) => p.equalAfterMs === undefined).map((p) => `${p.label}: server ${p.server}, proxy links ${p.links}, pool size ${p.size}`);
    expect.soft(unequal, 'at every quiescent point server sessions == proxy links == pool.size within 1 s').toEqual([]);
    expect.soft(r.afterClose.withinMs, `server sessions 0 within 1 s of close() (saw ${r.afterClose.sessions})`).toBeDefined();
    expect.soft(r.afterClose.size + r.afterClose.creating, 'pool size 0 after close()').toBe(0);
  });

  it('2. no unexpected errors: every failure is attributable to a fault', () => {
    const r = soak();
    const attributed = r.faults.reduce((n, f) => n + f.failures.during + f.failures.inFlight + f.failures.grace, 0);
    log(`verdict 2: ${r.failed} failures, ${attributed} attributed, ${r.unattributedCount} not; onError ${r.onErrors.length}, ${r.onErrorUnattributed} outside fault windows (+${GRACE_MS} ms grace)`);
    for (const u of r.unattributed) log(`  unattributed: ${JSON.stringify(u)}`);
    expect.soft(r.unattributed, `failed operations that no fault explains (${r.unattributedCount} in all)`).toEqual([]);
    expect.soft(r.onErrorUnattributed, `onError reports outside fault windows + grace: ${JSON.stringify(r.onErrors.slice(0, 10))}`).toBe(0);
    expect.soft(r.nonErrors, 'I8: every failure is an Error').toBe(0);
  });

  it('3. I9 error budget per fault: failures <= in flight at the hit + started in the window; none after recovery', () => {
    const r = soak();
    const over = r.faults
      .map((f) => ({ name: f.name, at: seconds(f.at), failures: f.failures.during + f.failures.inFlight + f.failures.grace, budget: f.inFlightAtHit + f.startedDuring }))
      .filter((f) => f.failures > f.budget);
    log(`verdict 3: ${r.faults.map((f) => `${f.name} ${f.failures.during + f.failures.inFlight + f.failures.grace}/${f.inFlightAtHit + f.startedDuring}`).join(', ')}`);
    for (const a of r.afterRecovery) log(`  after recovery: ${JSON.stringify(a)}`);
    expect.soft(over, 'faults whose attributed failures exceed their budget').toEqual([]);
    expect.soft(r.afterRecovery, `operations started >= ${AFTER_RECOVERY_MS} ms after a fault was removed that still failed`).toEqual([]);
  });

  it(`4. recovery (I7): the first pool operation succeeds within ${RECOVERY_BOUND_MS} ms of each removal`, () => {
    const r = soak();
    log(`verdict 4: ${r.faults.map((f) => `${f.name} ${f.recoveryMs === undefined ? 'NONE' : `${Math.round(f.recoveryMs)} ms`}`).join(', ')}`);
    expect.soft(r.faults.length, 'at least one fault ran').toBeGreaterThan(0);
    const slow = r.faults.filter((f) => f.recoveryMs === undefined || f.recoveryMs > RECOVERY_BOUND_MS).map((f) => `${f.name}: ${f.recoveryMs === undefined ? f.recoveryError : `${Math.round(f.recoveryMs)} ms`}`);
    expect.soft(slow, `recoveries slower than ${RECOVERY_BOUND_MS} ms`).toEqual([]);
  });

  it(`5. heap flat: end <= baseline + max(${HEAP_BOUND_MB} MB, ${HEAP_BOUND_RATIO * 100} %) after gc`, () => {
    const r = soak();
    const base = r.points[0]!;
    const end = r.points.at(-1)!;
    const bound = base.heapMB + Math.max(HEAP_BOUND_MB, base.heapMB * HEAP_BOUND_RATIO);
    log(`verdict 5: heap ${r.points.map((p) => p.heapMB).join(' → ')} MB (bound ${bound.toFixed(1)}); spaces ${JSON.stringify(base.spaces)} → ${JSON.stringify(end.spaces)}; rss ${base.rssMB} → ${end.rssMB} MB; arrayBuffers ${base.arrayBuffersMB} → ${end.arrayBuffersMB} MB; gc ${String(r.settings.gc)}`);
    expect(r.points.length, 'a baseline and an end point').toBeGreaterThanOrEqual(2);
    expect(end.heapMB, `heap used at the end vs the baseline ${base.heapMB} MB`).toBeLessThanOrEqual(bound);
  });

  it(`6. handles flat: per type <= baseline + ${HANDLE_SLACK} at quiescent points; listeners per client flat; nothing left after close`, () => {
    const r = soak();
    const base = r.points[0]!;
    const grown: string[] = [];
    for (const p of r.points) {
      for (const [type, n] of Object.entries(p.handles)) {
        if (n > (base.handles[type] ?? 0) + HANDLE_SLACK) grown.push(`${p.label}: ${type} ${n} (baseline ${base.handles[type] ?? 0})`);
      }
    }
    const listenerBase = r.points.find((p) => p.listeners !== undefined)?.listeners;
    const listenerGrowth = r.points.filter((p) => listenerBase !== undefined && p.listeners !== undefined && p.listeners > listenerBase).map((p) => `${p.label}: ${p.listeners} > ${listenerBase}`);
    const left: string[] = [];
    for (const [type, n] of Object.entries(r.afterClose.handles)) {
      if (n > (r.afterClose.handlesBefore[type] ?? 0) + HANDLE_SLACK) left.push(`${type} ${n} (before the pool: ${r.afterClose.handlesBefore[type] ?? 0})`);
    }
    log(`verdict 6: baseline ${JSON.stringify(base.handles)}; end ${JSON.stringify(r.points.at(-1)!.handles)}; listeners/client ${r.points.map((p) => p.listeners ?? '-').join(' ')}; after close ${JSON.stringify(r.afterClose.handles)} (before ${JSON.stringify(r.afterClose.handlesBefore)})`);
    expect.soft(grown, 'handle types above the baseline at a quiescent point').toEqual([]);
    expect.soft(listenerGrowth, 'listeners on a pooled client above the baseline').toEqual([]);
    expect.soft(left, 'handles left after close() beyond those before the pool and proxy existed').toEqual([]);
  });

  it('7. no data lost: committed ids present, ids that never reached COMMIT absent', () => {
    const r = soak();
    const d = r.dataTotals;
    log(`verdict 7: ${d.committed} committed (${d.lost.length} lost), ${d.aborted} failed before COMMIT (${d.phantom.length} present), ${d.ambiguous} ambiguous (${d.ambiguousPresent} present), ${d.unchecked} unchecked`);
    expect.soft(d.committed, 'transactions committed').toBeGreaterThan(0);
    expect.soft(d.lost, 'committed ids missing from the table').toEqual([]);
    expect.soft(d.phantom, 'ids whose transaction failed before COMMIT but are in the table').toEqual([]);
    expect.soft(d.unchecked, 'transactions still pending at a quiescent point').toBe(0);
    const deferred = r.points.filter((p) => p.data.error !== undefined).length;
    expect.soft(deferred === 0 || r.points.at(-1)!.data.error === undefined, 'the last data check ran').toBe(true);
  });

  it('8. no stuck waiters: every operation settled once, nothing waiting at the end, I1/I2, FIFO', () => {
    const r = soak();
    const stuck = r.points.filter((p) => p.stuck > 0).map((p) => `${p.label}: ${p.stuck} still in flight after ${DRAIN_BOUND_MS} ms`);
    const inversions = r.leaseAcquires === 0 ? 0 : r.fifoInversions / r.leaseAcquires;
    log(
      `verdict 8: issued ${r.issued}, settled ${r.settled} (${r.ok} ok + ${r.failed} failed); waiting ${r.endStats.waiting}, leased ${r.endStats.leased}; ` +
        `latest acquire ${Math.round(r.maxLateMs)} ms past its deadline (bound ${LATE_MARGIN_MS}); longest op ${Math.round(r.maxOpMs)} ms (bound ${OP_BOUND_MS}); ` +
        `FIFO inversions ${r.fifoInversions}/${r.leaseAcquires} = ${(inversions * 100).toFixed(3)} % (bound ${FIFO_INVERSION_BOUND * 100} %)`,
    );
    expect.soft(r.settled, 'every operation settled').toBe(r.issued);
    expect.soft(r.ok + r.failed, 'each settled once (ok + failed == issued)').toBe(r.issued);
    expect.soft(r.inFlightAtEnd, 'nothing in flight at the end').toBe(0);
    expect.soft(stuck, 'operations that did not finish at a quiescent point').toEqual([]);
    expect.soft(r.endStats.waiting, 'no waiter left at the end').toBe(0);
    expect.soft(r.endStats.leased, 'no lease left at the end').toBe(0);
    expect.soft(r.maxLateMs, `I1: no acquire settles more than ${LATE_MARGIN_MS} ms after its deadline`).toBeLessThanOrEqual(LATE_MARGIN_MS);
    expect.soft(r.poolOverMax, 'I2: size + creating <= max at every sample').toEqual([]);
    expect.soft(r.maxOpMs, `every operation ends within ${OP_BOUND_MS} ms`).toBeLessThanOrEqual(OP_BOUND_MS);
    expect.soft(inversions, 'L1: lease acquires served out of arrival order').toBeLessThanOrEqual(FIFO_INVERSION_BOUND);
  });
});
