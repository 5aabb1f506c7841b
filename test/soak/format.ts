// How the soak reads time and writes its lines: the clock, seconds and MB as printed, the first
// line of an error and its kind, counts by kind, percentiles.
import { errorKind } from '../faults/observer.js';

export const now = (): number => performance.now();
export const seconds = (ms: number): string => `${(ms / 1000).toFixed(1)}s`;
export const mb = (bytes: number): number => Math.round((bytes / 1048576) * 10) / 10;
export const firstLine = (error: unknown): string => (error instanceof Error ? error.message : String(error)).split('\n', 1)[0]!.slice(0, 160);
export const log = (line: string): void => console.log(`[soak] ${line}`);

/** errorKind (code, else name), with the start of the message for code-less errors such as pg's "Query read timeout". */
export function kindOf(error: unknown): string {
  const kind = errorKind(error);
  const code = (error as { code?: unknown } | null | undefined)?.code;
  if (typeof code === 'string' && code !== '') return kind;
  return `${kind}(${firstLine(error).slice(0, 40)})`;
}

export function count<K extends string>(map: Record<K, number>, key: K, by = 1): void {
  map[key] = (map[key] ?? 0) + by;
}

export function formatKinds(map: Record<string, number>): string {
  const entries = Object.entries(map).sort((a, b) => b[1] - a[1]);
  return entries.length === 0 ? '-' : entries.map(([k, n]) => `${k}:${n}`).join(' ');
}

export function percentile(values: number[], p: number): number {
  if (values.length === 0) return 0;
  const sorted = values.slice().sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}
