// Scenario building blocks the fault-suite files share (server-kills, network-*, server-*,
// load): a pool under a sampling Observer, background load that fills it, load work that
// records which client served each operation, and the checks that end a scenario.
import type pg from 'pg';
import type { PostgresPoolConfig } from '../../src/adapters/postgres/index.js';
import { type TestDatabase, type TestPool, waitFor } from '../integration/harness.js';
import { Observer, type LoadOptions } from './observer.js';

export { closingChecks, tenAcquires, type ClosingChecks } from '../support/fault-observer.js';

/** The fault suite's standard pool (server-kills, network-*): max 5, background load of 8 workers. */
export const MAX = 5;
export const ACQUIRE_TIMEOUT_MS = 3000;
/** Scheduling slack for timing criteria on a loaded 2-core machine. */
export const SLACK_MS = 150;

/** A harness pool made with `options`, under an Observer (same max and acquireTimeoutMs) that is already sampling. */
export function observedPool(db: TestDatabase, options: PostgresPoolConfig & { readonly max: number; readonly acquireTimeoutMs: number }): { pool: TestPool; obs: Observer } {
  const pool = db.pool(options);
  const obs = new Observer(db, pool, options).start();
  return { pool, obs };
}

/** Background load through the observer, then wait (up to 3 s) until the pool has grown to its max. */
export async function loadUntilFull(obs: Observer, options: LoadOptions = {}): Promise<{ stop(): Promise<void> }> {
  const load = obs.load(options);
  await waitFor('the pool to fill under load', () => obs.pool.stats().size === obs.max, { timeoutMs: 3000 });
  return load;
}

/** `n` acquire + SELECT 1 at once, through the observer: how each settled, and the clients used. */
export async function burstOfAcquires(obs: Observer, n: number): Promise<{ settled: PromiseSettledResult<void>[]; used: pg.Client[] }> {
  const used: pg.Client[] = [];
  const settled = await Promise.allSettled(
    Array.from({ length: n }, () =>
      obs.run(async (client) => {
        used.push(client);
        await client.query('SELECT 1');
      }),
    ),
  );
  return { settled, used };
}

/** One operation of tracked load work: which client served it, when, and how it ended. */
export interface Use {
  readonly client: pg.Client;
  readonly at: number;
  endedAt?: number;
  error?: unknown;
  /** The client had lost its connection when the operation failed (it hit a broken link). */
  clientDead?: boolean;
}

/** Load work that records which client served each operation, when, and how it ended. */
export function tracked(work: (client: pg.Client) => Promise<unknown> = (c) => c.query('SELECT 1')): { uses: Use[]; work: (client: pg.Client) => Promise<unknown> } {
  const uses: Use[] = [];
  return {
    uses,
    work: async (client) => {
      const use: Use = { client, at: performance.now() };
      uses.push(use);
      try {
        return await work(client);
      } catch (error) {
        use.error = error;
        use.clientDead = clientDead(client);
        throw error;
      } finally {
        use.endedAt = performance.now();
      }
    },
  };
}

/** pg's own flags: the client lost its connection (error or end), so it is no longer queryable. */
export function clientDead(client: pg.Client): boolean {
  const c = client as unknown as { _queryable?: boolean; _ended?: boolean };
  return c._queryable === false || c._ended === true;
}
