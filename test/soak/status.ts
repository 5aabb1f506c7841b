// The soak's status line, every SOAK_INTERVAL: throughput, acquire wait p99, event-loop lag p99,
// the pool's gauges, server sessions, connection churn, heap and handles, the fault in place,
// and errors by kind since the last line.
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { sleep, type TestPool } from '../integration/harness.js';
import type { ChaosProxy } from '../support/chaos-proxy.js';
import { formatKinds, log, mb, now, percentile, seconds } from './format.js';
import type { Ledger } from './ledger.js';
import type { ServerSampler } from './sampler.js';
import { INTERVAL_MS } from './settings.js';
import type { Workload } from './workload.js';

export class StatusLines {
  /** The printing loop; settles once halt() has been called and the loop has ended. */
  readonly done: Promise<void>;
  readonly #loopDelay = monitorEventLoopDelay({ resolution: 10 });
  readonly #pool: TestPool;
  readonly #proxy: ChaosProxy;
  readonly #ledger: Ledger;
  readonly #sampler: ServerSampler;
  readonly #workload: Workload;
  #printing = true;
  #acceptedBefore = 0;
  #createdBefore = 0;
  #destroyedBefore: Record<string, number> = {};
  #lastLine: number;

  constructor(pool: TestPool, proxy: ChaosProxy, ledger: Ledger, sampler: ServerSampler, workload: Workload) {
    this.#pool = pool;
    this.#proxy = proxy;
    this.#ledger = ledger;
    this.#sampler = sampler;
    this.#workload = workload;
    this.#loopDelay.enable();
    this.#lastLine = now();
    this.done = this.#loop();
  }

  /** Still printing (halt() not called yet). */
  get printing(): boolean {
    return this.#printing;
  }

  /** Stop after the current wait (await `done`). */
  halt(): void {
    this.#printing = false;
  }

  /** No more lag readings. */
  disable(): void {
    this.#loopDelay.disable();
  }

  printLine(): void {
    const ledger = this.#ledger;
    const t = now();
    const span = (t - this.#lastLine) / 1000;
    this.#lastLine = t;
    const s = this.#pool.stats();
    const accepted = this.#proxy.stats().accepted;
    const iAccepted = accepted - this.#acceptedBefore;
    this.#acceptedBefore = accepted;
    const fault = ledger.active?.name ?? (this.#workload.held ? '(quiescent)' : '-');
    const destroyedDelta: Record<string, number> = {};
    for (const [reason, n] of Object.entries(s.destroyedByReason)) if (n > (this.#destroyedBefore[reason] ?? 0)) destroyedDelta[reason] = n - (this.#destroyedBefore[reason] ?? 0);
    const churn = `created +${s.created - this.#createdBefore} destroyed ${formatKinds(destroyedDelta)}`;
    this.#createdBefore = s.created;
    this.#destroyedBefore = { ...s.destroyedByReason };
    const { ok: iOk, failed: iFailed, errors: iErrors, waits: iWaits } = ledger.interval;
    const serverLatest = this.#sampler.serverLatest;
    log(
      `${seconds(ledger.elapsed()).padStart(7)} ops/s ${Math.round((iOk + iFailed) / span)
        .toString()
        .padStart(5)} ok ${iOk} fail ${iFailed} wait.p99 ${percentile(iWaits, 99).toFixed(1)}ms lag.p99 ${(this.#loopDelay.percentile(99) / 1e6).toFixed(0)}ms | ` +
        `pool size ${s.size} idle ${s.idle} leased ${s.leased} creating ${s.creating} waiting ${s.waiting} | srv ${serverLatest < 0 ? '?' : serverLatest} ` +
        `conn/s ${(iAccepted / span).toFixed(1)} ${churn} | heap ${mb(process.memoryUsage().heapUsed)}MB handles ${process.getActiveResourcesInfo().length} | ` +
        `fault ${fault} | errors ${formatKinds(iErrors)}`,
    );
    ledger.interval = { ok: 0, failed: 0, errors: {}, waits: [] };
    this.#loopDelay.reset();
  }

  async #loop(): Promise<void> {
    while (this.#printing) {
      await sleep(Math.min(100, Math.max(0, this.#lastLine + INTERVAL_MS - now())));
      if (this.#printing && now() >= this.#lastLine + INTERVAL_MS) this.printLine();
    }
  }
}
