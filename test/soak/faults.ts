// The soak's faults, one per tick (see the header of soak.soak.ts for what each does and why
// they come in this order): how each is put in place and removed, and SOAK_FAULTS' selection.
import { sleep, type TestDatabase } from '../integration/harness.js';
import type { Capabilities } from '../integration/providers.js';
import type { ChaosProxy } from '../support/chaos-proxy.js';

export interface FaultContext {
  readonly db: TestDatabase;
  readonly proxy: ChaosProxy;
  readonly app: string;
}

export interface FaultDef {
  readonly name: string;
  readonly needs?: keyof Capabilities;
  /** How long the fault stays in place between apply() and its removal. */
  readonly holdMs: number;
  /** Put the fault in place; resolves with its removal. */
  apply(ctx: FaultContext): Promise<() => Promise<void>>;
}

const nothing = async (): Promise<void> => {};

export async function terminatePool(ctx: FaultContext): Promise<number> {
  const { rows } = await ctx.db.admin<{ ok: boolean }>(
    "SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity WHERE application_name = $1 AND backend_type = 'client backend'",
    [ctx.app],
  );
  return rows.filter((r) => r.ok).length;
}

export const FAULTS: readonly FaultDef[] = [
  {
    name: 'terminate',
    holdMs: 0,
    async apply(ctx) {
      await terminatePool(ctx);
      return nothing;
    },
  },
  {
    name: 'blackhole',
    holdMs: 3000,
    async apply({ proxy }) {
      const toxic = proxy.blackhole({ scope: 'existing' });
      return async () => toxic.remove();
    },
  },
  {
    name: 'restart',
    needs: 'restart',
    holdMs: 0,
    async apply({ db }) {
      await db.restart();
      return nothing;
    },
  },
  {
    name: 'proxy-down',
    holdMs: 2000,
    async apply({ proxy }) {
      await proxy.down();
      return () => proxy.up();
    },
  },
  {
    // Every query still ends within queryTimeoutMs, but 10 connections cannot serve 100
    // workers within acquireTimeoutMs: acquires time out while the process stays busy (I1).
    name: 'saturate',
    holdMs: 6000,
    async apply({ proxy }) {
      const toxic = proxy.latency(600, 100);
      return async () => toxic.remove();
    },
  },
  {
    name: 'freeze',
    needs: 'pause',
    holdMs: 2000,
    async apply({ db }) {
      await db.pause();
      return () => db.unpause();
    },
  },
  {
    name: 'reset-peer',
    holdMs: 0,
    async apply({ proxy }) {
      proxy.resetPeer(0, { scope: 'existing' }).remove();
      return nothing;
    },
  },
  {
    name: 'latency',
    holdMs: 3000,
    async apply({ proxy }) {
      const toxic = proxy.latency(100, 50);
      return async () => toxic.remove();
    },
  },
  {
    name: 'cancel',
    holdMs: 2000,
    async apply({ db, app }) {
      let on = true;
      const loop = (async () => {
        while (on) {
          await db
            .admin(
              "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE application_name = $1 AND backend_type = 'client backend' AND state = 'active'",
              [app],
            )
            .catch(() => {});
          await sleep(100);
        }
      })();
      return async () => {
        on = false;
        await loop;
      };
    },
  },
  {
    name: 'limit-data',
    holdMs: 4000,
    async apply({ proxy }) {
      const toxic = proxy.limitData(3000, { scope: 'new' });
      proxy.killAll();
      return async () => toxic.remove();
    },
  },
  {
    name: 'slow-close',
    holdMs: 3000,
    async apply(ctx) {
      const toxic = ctx.proxy.slowClose(2000);
      await terminatePool(ctx);
      return async () => toxic.remove();
    },
  },
];

export function selectedFaults(): readonly FaultDef[] {
  const raw = process.env.SOAK_FAULTS?.trim();
  if (raw === undefined || raw === '') return FAULTS;
  return raw.split(',').map((name) => {
    const def = FAULTS.find((f) => f.name === name.trim());
    if (def === undefined) throw new Error(`SOAK_FAULTS: unknown fault ${JSON.stringify(name)} (known: ${FAULTS.map((f) => f.name).join(', ')})`);
    return def;
  });
}
