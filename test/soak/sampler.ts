// The soak's sampler (I2, server side): every 100 ms, the pool's size + creating against max,
// its lifetime retirements, and the server's session count for the pool's application_name
// (on a connection of its own, reconnected when a fault breaks it) against max.
import pg from 'pg';
import { sleep, type TestDatabase, type TestPool } from '../integration/harness.js';
import { seconds } from './format.js';
import type { Ledger } from './ledger.js';
import { hardClose } from './resources.js';
import { MAX } from './settings.js';

const SESSIONS_SQL = "SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1 AND backend_type = 'client backend'";

export class ServerSampler {
  /** The latest server session count, -1 when the last read failed. */
  serverLatest = -1;
  serverMax = 0;
  serverSamples = 0;
  readonly serverOverMax: string[] = [];
  readonly poolOverMax: string[] = [];
  /** When lifetime retirements happened (×n when several in one sample). */
  readonly retirements: string[] = [];
  /** The sampling loop; settles once halt() has been called and the loop has ended. */
  readonly done: Promise<void>;
  #sampling = true;
  #retiredBefore = 0;

  constructor(db: TestDatabase, pool: TestPool, app: string, ledger: Ledger) {
    this.done = this.#loop(db, pool, app, ledger);
  }

  /** Stop after the current sample (await `done`). */
  halt(): void {
    this.#sampling = false;
  }

  async #loop(db: TestDatabase, pool: TestPool, app: string, ledger: Ledger): Promise<void> {
    const elapsed = (): number => ledger.elapsed();
    let client: pg.Client | undefined;
    while (this.#sampling) {
      const s = pool.stats();
      if (s.destroyedByReason.lifetime > this.#retiredBefore) {
        if (this.retirements.length < 100) this.retirements.push(`${seconds(elapsed())}${s.destroyedByReason.lifetime - this.#retiredBefore > 1 ? `×${s.destroyedByReason.lifetime - this.#retiredBefore}` : ''}`);
        this.#retiredBefore = s.destroyedByReason.lifetime;
      }
      if (s.size + s.creating > MAX && this.poolOverMax.length < 20) {
        this.poolOverMax.push(`${seconds(elapsed())}: size ${s.size} + creating ${s.creating} > ${MAX}`);
      }
      try {
        if (client === undefined) {
          const c = new pg.Client({ ...db.connection(), application_name: 'lifeguard-soak-sampler', connectionTimeoutMillis: 1000, query_timeout: 1000 });
          c.on('error', () => {});
          client = c;
          await c.connect();
        }
        const { rows } = await client.query<{ n: number }>(SESSIONS_SQL, [app]);
        const n = rows[0]!.n;
        const after = pool.stats();
        this.serverLatest = n;
        this.serverSamples++;
        this.serverMax = Math.max(this.serverMax, n);
        if (n > MAX && this.serverOverMax.length < 20) {
          this.serverOverMax.push(
            `${seconds(elapsed())}: ${n} sessions > max ${MAX} (pool size ${after.size}, creating ${after.creating}, destroying ${after.destroying}; ` +
              `fault ${ledger.active?.name ?? `none (last: ${ledger.faults.at(-1)?.name ?? '-'})`})`,
          );
        }
      } catch {
        this.serverLatest = -1;
        if (client !== undefined) hardClose(client);
        client = undefined;
      }
      await sleep(100);
    }
    if (client !== undefined) await client.end().catch(() => {});
  }
}
