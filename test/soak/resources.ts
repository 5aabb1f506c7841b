// What the soak reads from the process: active handles by type, heap after a full gc, listeners
// on a pg client; and closing a sampler's client hard.
import type pg from 'pg';
import { count } from './format.js';

/** Active resources by type; TCPSocketWrap minus 3 per pooled connection (pg's socket and the proxy's two ends). */
export function handleCounts(poolSize: number): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const type of process.getActiveResourcesInfo()) count(counts, type);
  // Each pooled connection holds three sockets here: pg's, and the proxy's two ends.
  if (poolSize > 0) counts.TCPSocketWrap = (counts.TCPSocketWrap ?? 0) - 3 * poolSize;
  return counts;
}

export async function collectGarbage(): Promise<void> {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc === undefined) return;
  for (let i = 0; i < 3; i++) {
    gc();
    await new Promise((resolve) => setImmediate(resolve));
  }
}

export function hardClose(client: pg.Client): void {
  (client as unknown as { connection?: { stream?: { destroy(): void } } }).connection?.stream?.destroy();
  void client.end().catch(() => {});
}

export function listenerCount(client: pg.Client): number {
  const sum = (emitter: NodeJS.EventEmitter | undefined): number =>
    emitter === undefined ? 0 : emitter.eventNames().reduce((n, name) => n + emitter.listenerCount(name), 0);
  const connection = (client as unknown as { connection?: NodeJS.EventEmitter & { stream?: NodeJS.EventEmitter } }).connection;
  return sum(client) + sum(connection) + sum(connection?.stream);
}
