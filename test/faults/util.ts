// Helpers the fault-suite files share: polling, error codes along a cause chain, filling a
// pool, reporting figures.
import type pg from 'pg';
import { sleep } from '../integration/harness.js';
import type { Observer, OpRecord } from './observer.js';

/** Every `code` along the error's cause chain (SQLSTATE, errno, POOL_*). */
export function codes(error: unknown): string[] {
  const found: string[] = [];
  for (let e = error, depth = 0; e !== null && e !== undefined && depth < 8; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string') found.push(code);
    if (typeof e !== 'object') break;
  }
  return found;
}

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

/** One line of measured figures per scenario, for the report. */
export function note(label: string, figures: Record<string, unknown>): void {
  console.log(`[faults] ${label} ${JSON.stringify(figures)}`);
}

/** How long an operation's acquire took to settle. */
export function settleMs(record: OpRecord): number {
  return (record.acquiredAt ?? record.endedAt ?? record.startedAt) - record.startedAt;
}

/** Milliseconds from `from` until `check` holds, polling every `everyMs`; throws after `timeoutMs`. */
export async function timeUntil(what: string, check: () => boolean | Promise<boolean>, { from = performance.now(), timeoutMs = 5000, everyMs = 10 } = {}): Promise<number> {
  for (;;) {
    if (await check()) return performance.now() - from;
    if (performance.now() - from > timeoutMs) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await sleep(everyMs);
  }
}
