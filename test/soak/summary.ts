// The soak's summary, printed once the pool is closed: operations and failures, the pool at the
// end, one row per fault (budget, failures by how they are attributed, recovery), skipped and
// unreached faults, lifetime retirements, onError reports, server sessions, FIFO and rows.
import { count, formatKinds, log, seconds } from './format.js';
import type { SoakResult } from './records.js';

export function printSummary(r: SoakResult, faultPlan: readonly { readonly name: string }[], retirements: readonly string[]): void {
  log(`--- ${r.issued} operations in ${seconds(r.elapsedMs)} (${Math.round(r.issued / (r.elapsedMs / 1000))}/s): ${r.ok} ok, ${r.failed} failed ${formatKinds(r.errorsByKind)}`);
  log(`pool at the end: ${JSON.stringify({ size: r.endStats.size, idle: r.endStats.idle, leased: r.endStats.leased, waiting: r.endStats.waiting, created: r.endStats.created, createFailed: r.endStats.createFailed, destroyed: r.endStats.destroyedByReason, timedOut: r.endStats.timedOut, rejected: r.endStats.rejected, waitTime: r.endStats.waitTime })}`);
  log('fault          at(s)  held(ms) inFlight(leased) started budget | failed: during inFlight grace | after-recovery onError | recovery(ms) | kinds');
  for (const f of r.faults) {
    const attributed = f.failures.during + f.failures.inFlight + f.failures.grace;
    log(
      `${f.name.padEnd(14)} ${(f.at / 1000).toFixed(1).padStart(5)} ${Math.round((f.end ?? f.start) - f.start)
        .toString()
        .padStart(9)} ${`${f.inFlightAtHit}(${f.leasedAtHit})`.padStart(16)} ${f.startedDuring.toString().padStart(7)} ${(f.inFlightAtHit + f.startedDuring)
        .toString()
        .padStart(6)} | ${attributed.toString().padStart(6)}: ${f.failures.during.toString().padStart(6)} ${f.failures.inFlight
        .toString()
        .padStart(8)} ${f.failures.grace.toString().padStart(5)} | ${f.afterRecovery.toString().padStart(14)} ${f.onError
        .toString()
        .padStart(7)} | ${(f.recoveryMs === undefined ? 'NONE' : Math.round(f.recoveryMs).toString()).padStart(12)} | ${formatKinds(f.kinds)}`,
    );
  }
  if (r.skipped.length > 0) log(`skipped: ${r.skipped.join('; ')}`);
  const notRun = faultPlan.filter((f) => !r.faults.some((m) => m.name === f.name) && !r.skipped.some((s) => s.startsWith(`${f.name} `)));
  if (notRun.length > 0) log(`not reached in this run: ${notRun.map((f) => f.name).join(', ')}`);
  log(`lifetime retirements: ${retirements.length === 0 ? 'none' : retirements.join(' ')}`);
  log(`onError: ${r.onErrors.length} reports ${formatKinds(r.onErrors.reduce<Record<string, number>>((m, e) => (count(m, e.kind), m), {}))}; ${r.onErrorUnattributed} outside fault windows`);
  log(`server sessions: max ${r.serverMax} over ${r.serverSamples} samples; after close ${r.afterClose.sessions}${r.afterClose.withinMs === undefined ? '' : ` within ${Math.round(r.afterClose.withinMs)} ms`}`);
  log(`ops: max ${Math.round(r.maxOpMs)} ms; lease acquires ${r.leaseAcquires}, FIFO inversions ${r.fifoInversions}; latest acquire ${Math.round(r.maxLateMs)} ms vs its deadline`);
  log(`rows: ${r.dataTotals.committed} committed (${r.dataTotals.lost.length} lost), ${r.dataTotals.aborted} aborted (${r.dataTotals.phantom.length} present), ${r.dataTotals.ambiguous} ambiguous (${r.dataTotals.ambiguousPresent} present)`);
}
