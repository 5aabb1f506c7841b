// The soak's quiescent points (L7): the workers hold, every operation in flight finishes, and
// then the pool, the proxy and the server must agree on the number of connections (within 1 s),
// the committed rows are checked, and the heap (after gc), the V8 heap spaces, the process
// handles and the listeners on a pooled client are read. One before the first fault (the
// baseline), one after each, one at the end.
import v8 from 'node:v8';
import { sleep, type TestDatabase, type TestPool } from '../integration/harness.js';
import type { ChaosProxy } from '../support/chaos-proxy.js';
import { log, mb, now, seconds } from './format.js';
import type { Ledger } from './ledger.js';
import type { QuiescentPoint } from './records.js';
import { collectGarbage, handleCounts, listenerCount } from './resources.js';
import { DRAIN_BOUND_MS } from './settings.js';
import type { Workload } from './workload.js';

export interface QuiescentContext {
  readonly db: TestDatabase;
  readonly app: string;
  readonly pool: TestPool;
  readonly proxy: ChaosProxy;
  readonly ledger: Ledger;
  readonly workload: Workload;
}

export class QuiescentPoints {
  /** Every point taken, in order: the baseline first, the end last. */
  readonly points: QuiescentPoint[] = [];
  readonly #ctx: QuiescentContext;

  constructor(ctx: QuiescentContext) {
    this.#ctx = ctx;
  }

  /** The most listeners on one idle pooled client (client + connection + socket), undefined when none is idle. */
  async #clientListeners(): Promise<number | undefined> {
    const { pool } = this.#ctx;
    const idle = pool.stats().idle;
    if (idle === 0) return undefined;
    const leases = await Promise.allSettled(Array.from({ length: idle }, () => pool.acquire({ timeoutMs: 1000 })));
    let most = 0;
    for (const l of leases) if (l.status === 'fulfilled') most = Math.max(most, listenerCount(l.value.resource));
    await Promise.all(leases.map((l) => (l.status === 'fulfilled' ? l.value.release() : undefined)));
    return most;
  }

  /** Hold the workers, wait for what is in flight, look, print a QUIESCENT line, let the workers go. */
  async take(label: string): Promise<QuiescentPoint> {
    const { db, app, pool, proxy, ledger, workload } = this.#ctx;
    workload.hold();
    const t0 = now();
    while (ledger.inFlight > 0 && now() - t0 < DRAIN_BOUND_MS) await sleep(5);
    const drainMs = now() - t0;
    const stuck = ledger.inFlight;
    // Server sessions == proxy links == pool size (L7), polled for up to 1 s (I6's settle).
    let server = -1;
    let stats = pool.stats();
    let links = proxy.stats().active;
    let equalAfterMs: number | undefined;
    const eqFrom = now();
    for (;;) {
      stats = pool.stats();
      links = proxy.stats().active;
      server = await db.sessions(app).catch(() => -1);
      // Destroys still closing their sockets (a lifetime retirement just before the hold) count as open handles: wait for them too.
      if (server === stats.size && links === stats.size && stats.creating === 0 && stats.destroying === 0) {
        equalAfterMs = now() - eqFrom;
        break;
      }
      if (now() - eqFrom > 1000) break;
      await sleep(20);
    }
    const listeners = await this.#clientListeners();
    const data = await workload.verifyData();
    await collectGarbage();
    const memory = process.memoryUsage();
    const point: QuiescentPoint = {
      label,
      t: ledger.elapsed(),
      drainMs,
      stuck,
      server,
      size: stats.size,
      links,
      equalAfterMs,
      heapMB: mb(memory.heapUsed),
      rssMB: mb(memory.rss),
      arrayBuffersMB: mb(memory.arrayBuffers),
      spaces: Object.fromEntries(
        v8.getHeapSpaceStatistics()
          .filter((space) => space.space_used_size > 512 * 1024)
          .map((space) => [space.space_name.replace(/_space$/, ''), mb(space.space_used_size)]),
      ),
      handles: handleCounts(pool.stats().size + pool.stats().destroying),
      listeners,
      data,
    };
    this.points.push(point);
    log(
      `${seconds(point.t).padStart(7)} QUIESCENT ${label}: drained in ${Math.round(drainMs)} ms${stuck > 0 ? ` (${stuck} STUCK)` : ''}; ` +
        `server ${server} / links ${links} / pool ${stats.size}${equalAfterMs === undefined ? ' (NOT EQUAL within 1 s)' : ` (equal after ${Math.round(equalAfterMs)} ms)`}; ` +
        `heap ${point.heapMB}MB ${JSON.stringify(point.spaces)} rss ${point.rssMB}MB arrayBuffers ${point.arrayBuffersMB}MB; handles ${JSON.stringify(point.handles)}; listeners/client ${listeners ?? '-'}; ` +
        `rows: ${data.committed} committed${data.lost.length > 0 ? ` ${data.lost.length} LOST` : ''}, ${data.aborted} aborted${data.phantom.length > 0 ? ` ${data.phantom.length} PHANTOM` : ''}, ` +
        `${data.ambiguous} ambiguous (${data.ambiguousPresent} present)${data.error === undefined ? '' : `; data check deferred: ${data.error}`}`,
    );
    workload.release();
    return point;
  }
}
