// Helpers the fault-suite files share: polling, error codes and messages along a cause chain,
// settled outcomes, filling a pool, reporting figures, percentiles, process handles and gc.
import v8 from 'node:v8';
import vm from 'node:vm';
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

/** Every message along the error's cause chain. */
export function messages(error: unknown): string {
  const found: string[] = [];
  for (let e = error, depth = 0; e !== null && e !== undefined && depth < 8; e = (e as { cause?: unknown }).cause, depth++) {
    found.push(e instanceof Error ? e.message : String(e));
    if (typeof e !== 'object') break;
  }
  return found.join(' <- ');
}

/** The settled outcome of a promise, with when it settled. */
export async function outcome<T>(promise: Promise<T>): Promise<{ value?: T; error?: unknown; at: number }> {
  try {
    const value = await promise;
    return { value, at: performance.now() };
  } catch (error) {
    return { error, at: performance.now() };
  }
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

/** The p-th percentile (nearest rank) of `values`; NaN when there are none. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
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
