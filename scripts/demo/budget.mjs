// The error budget: which failures a fault may cause, and the verdict on them.
//
// A failed operation is *attributed* to a fault when its life [start, end] overlaps the
// fault's window [injection start, removal done + GRACE]: it was in flight when the fault
// hit, it started while the fault was on, or it started within GRACE after the removal
// (while the pool reconnects). With several candidates, the latest fault wins.
//
// The verdict on failures passes when
//   1. every failure is attributed to some fault (none in calm periods), and
//   2. for each fault, attributed failures <= its budget = the operations in flight when it
//      hit (queued acquires included) + the operations started while its window was open.
// Failures that ended after an interruption (Ctrl-C) are left out and counted apart.

/** @typedef {import('./record.mjs').Failure} Failure */
/** @typedef {import('./record.mjs').FaultRecord} FaultRecord */

/**
 * @typedef {object} FaultVerdict
 * @property {FaultRecord} fault
 * @property {number} budget
 * @property {number} failures    attributed to this fault
 * @property {Map<string, number>} byKind
 * @property {boolean} withinBudget
 */

/**
 * @typedef {object} FailureVerdict
 * @property {FaultVerdict[]} faults
 * @property {Failure[]} unattributed
 * @property {number} afterCutoff  failures that ended after the interruption (not judged)
 * @property {boolean} ok
 */

/**
 * @param {{ faults: FaultRecord[], failures: Failure[], graceMs: number, cutoff?: number, overflow?: number }} input
 * @returns {FailureVerdict}
 */
export function judgeFailures({ faults, failures, graceMs, cutoff, overflow = 0 }) {
  /** @type {FaultVerdict[]} */
  const perFault = faults.map((fault) => ({ fault, budget: fault.inFlightAtHit + fault.startedDuring, failures: 0, byKind: new Map(), withinBudget: true }));
  /** @type {Failure[]} */
  const unattributed = [];
  let afterCutoff = 0;
  for (const failure of failures) {
    if (cutoff !== undefined && failure.end >= cutoff) {
      afterCutoff++;
      continue;
    }
    let match;
    for (const entry of perFault) {
      const { start, end } = entry.fault;
      const closes = (end ?? Infinity) + graceMs;
      if (failure.end >= start && failure.start <= closes && (match === undefined || start >= match.fault.start)) match = entry;
    }
    if (match === undefined) {
      unattributed.push(failure);
      continue;
    }
    match.failures++;
    match.byKind.set(failure.kind, (match.byKind.get(failure.kind) ?? 0) + 1);
  }
  for (const entry of perFault) entry.withinBudget = entry.failures <= entry.budget;
  return {
    faults: perFault,
    unattributed,
    afterCutoff,
    ok: unattributed.length === 0 && overflow === 0 && perFault.every((entry) => entry.withinBudget),
  };
}
