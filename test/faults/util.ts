// Helpers the fault-suite files share (the driver-free ones live in test/support/fault-metrics.ts
// and test/support/fault-observer.ts, re-exported here): process handles and gc.
import v8 from 'node:v8';
import vm from 'node:vm';

export { codes, messages, note, outcome, percentile, settleMs, timeUntil } from '../support/fault-metrics.js';
export { fill } from '../support/fault-observer.js';

/** Active handles that keep the process alive, by type (sockets, servers, ref'ed timers). */
export function activeResources(): Record<string, number> {
  const out: Record<string, number> = {};
  for (const kind of process.getActiveResourcesInfo()) out[kind] = (out[kind] ?? 0) + 1;
  return out;
}

/** A forced full GC, for heap figures (--expose-gc at run time). */
export function gc(): void {
  v8.setFlagsFromString('--expose-gc');
  (vm.runInNewContext('gc') as () => void)();
}
