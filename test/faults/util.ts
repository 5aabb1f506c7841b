// Helpers the fault-suite files share (the driver-free ones live in test/support/fault-metrics.ts
// and are re-exported here): filling a pool, process handles and gc.
import v8 from 'node:v8';
import vm from 'node:vm';
import type pg from 'pg';
import type { Observer } from './observer.js';

export { codes, messages, note, outcome, percentile, settleMs, timeUntil } from '../support/fault-metrics.js';

/** `n` distinct clients at once (a barrier holds each until all are acquired), through obs.run, then released. */
export async function fill(obs: Observer, n: number): Promise<Set<pg.Client>> {
  const clients = new Set<pg.Client>();
  let arrived = 0;
  let open!: () => void;
  const all = new Promise<void>((resolve) => (open = resolve));
  await Promise.all(
    Array.from({ length: n }, () =>
      obs.run(async (client) => {
        clients.add(client);
        await client.query('SELECT 1');
        if (++arrived === n) open();
        await all;
      }),
    ),
  );
  return clients;
}

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
