// The soak's books: every operation counted as issued, in flight, settled, ok or failed; every
// failure and onError report attributed to the fault that explains it (or listed when none
// does); and the counters of the current status line.
import { AFTER_RECOVERY_MS, GRACE_MS } from './settings.js';
import { count, firstLine, kindOf, now } from './format.js';
import type { FailureNote, FaultMark, How, OpKind } from './records.js';

/** Counters of one status line, reset when it is printed. */
export interface Interval {
  ok: number;
  failed: number;
  errors: Record<string, number>;
  waits: number[];
}

export class Ledger {
  /** performance.now() when the soak started. */
  readonly started = now();
  /** Every fault so far, in order. */
  readonly faults: FaultMark[] = [];
  /** The fault whose window is open, if any. */
  active: FaultMark | undefined;

  issued = 0;
  settled = 0;
  ok = 0;
  failed = 0;
  inFlight = 0;
  nonErrors = 0;
  readonly errorsByKind: Record<string, number> = {};
  readonly unattributed: FailureNote[] = [];
  unattributedCount = 0;
  readonly afterRecovery: FailureNote[] = [];
  readonly onErrors: { t: number; kind: string; message: string }[] = [];
  onErrorUnattributed = 0;

  /** Interval counters, reset by the status line. */
  interval: Interval = { ok: 0, failed: 0, errors: {}, waits: [] };

  /** ms since the soak started. */
  elapsed(): number {
    return now() - this.started;
  }

  /** The latest fault an operation that ran from `startedAt` to `endedAt` belongs to, and how. */
  attribute(startedAt: number, endedAt: number): { fault: FaultMark; how: How } | undefined {
    for (let i = this.faults.length - 1; i >= 0; i--) {
      const f = this.faults[i]!;
      if (f.start > endedAt) continue;
      if (startedAt < f.start) return { fault: f, how: 'inFlight' };
      if (f.end === undefined || startedAt <= f.end) return { fault: f, how: 'during' };
      if (endedAt <= f.end + GRACE_MS) return { fault: f, how: 'grace' };
    }
    return undefined;
  }

  recordFailure(kind: OpKind, startedAt: number, error: unknown): void {
    const endedAt = now();
    this.failed++;
    this.interval.failed++;
    const errKind = kindOf(error);
    count(this.errorsByKind, errKind);
    count(this.interval.errors, errKind);
    if (!(error instanceof Error)) this.nonErrors++;
    const note = (fault?: string): FailureNote => ({
      kind,
      startedAt: `${((startedAt - this.started) / 1000).toFixed(3)}s`,
      endedAt: `${((endedAt - this.started) / 1000).toFixed(3)}s`,
      error: `${errKind}: ${firstLine(error)}`,
      ...(fault === undefined ? {} : { fault }),
    });
    const hit = this.attribute(startedAt, endedAt);
    if (hit === undefined) {
      this.unattributedCount++;
      if (this.unattributed.length < 50) this.unattributed.push(note());
      return;
    }
    count(hit.fault.failures, hit.how);
    count(hit.fault.kinds, errKind);
    if (hit.how === 'grace' && startedAt >= hit.fault.end! + AFTER_RECOVERY_MS) {
      hit.fault.afterRecovery++;
      if (this.afterRecovery.length < 50) this.afterRecovery.push(note(hit.fault.name));
    }
  }

  /** The pool's onError: every report kept (up to 200) and attributed like a failure. */
  readonly onError = (error: unknown): void => {
    const at = now();
    const entry = { t: at - this.started, kind: kindOf(error), message: firstLine(error) };
    if (this.onErrors.length < 200) this.onErrors.push(entry);
    const hit = this.attribute(at, at);
    if (hit === undefined) this.onErrorUnattributed++;
    else hit.fault.onError++;
  };
}
