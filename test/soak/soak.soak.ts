// The soak (FAULTS.md §6 L1 + L7): a fixed time at 10× oversubscription against a real
// PostgreSQL through the in-process fault proxy, with a different fault every
// SOAK_FAULT_EVERY, a status line every SOAK_INTERVAL, and a verdict at the end.
//
// Run:   npm run soak                                   (builds, then 10 minutes)
//        LIFEGUARD_TEST_PG=embedded SOAK_DURATION=60s SOAK_FAULT_EVERY=10s \
//          npx vitest run --config vitest.soak.config.ts (what CI runs)
// Not part of `npm test` (vitest.config.ts only includes *.test.ts).
//
// Settings (environment; durations as 1500ms, 60s, 10m, 1h, a bare number is seconds):
//   SOAK_DURATION     how long the load runs                      default 10m
//   SOAK_FAULT_EVERY  spacing of the fault ticks                  default 30s
//   SOAK_INTERVAL     spacing of the status lines                 default 5s
//   SOAK_WORKERS      concurrent workers (no think time)          default 100
//   SOAK_MAX          pool max                                    default 10
//   SOAK_FAULTS       comma list of fault names, run in that order and repeated
//                     (default: all of FAULTS below, in that order)
// The PostgreSQL provider is the harness's (LIFEGUARD_TEST_PG, DATABASE_URL...): faults the
// provider cannot do (restart, freeze with DATABASE_URL) are skipped and said so.
//
// What runs: one pool (createPostgresPool through usePostgres().pool) pointed at a
// ChaosProxy in front of the server: max 10, acquireTimeoutMs 5000, queryTimeoutMs 2000 (so a
// blackholed query ends), createTimeoutMs 3000, maxLifetimeMs 60 s (the pool retires each
// connection at a random point below it, so they do not all go together), idleTimeoutMs 30 s,
// destroyTimeoutMs 2000,
// retry.maxTimeoutMs 1000 (so I7's 2-second recovery is reachable: the default 5 s backoff
// cap alone would exceed it), onError collected. 100 workers loop with no think time over
//   40 % `SELECT 1` on an explicit lease (acquire, query, release; destroy on a fatal error):
//        these measure the acquire wait (p99 per line), acquire lateness (I1) and FIFO order;
//   30 % `pool.query('SELECT pg_sleep(0.002)')`;
//   30 % `pool.withTransaction` inserting a row with a unique id into a table.
// A worker that fails pauses 50–100 ms before its next operation (no spin).
//
// Fault ticks (one at each multiple of SOAK_FAULT_EVERY; a tick that overruns delays the
// next, they never overlap). The *window* of a fault runs from the moment its injection
// starts until its removal has completed:
//   terminate    pg_terminate_backend on every backend of the pool (instantaneous)
//   blackhole    proxy blackhole on existing links for 3 s (queryTimeoutMs ends the queries)
//   restart      server fast restart, db.restart() (window = the whole restart)
//   proxy-down   proxy down (ECONNREFUSED, every link closed) for 2 s, then up
//   saturate     600 ± 100 ms each way on every link for 6 s: queries still end within
//                queryTimeoutMs, but 10 connections cannot serve 100 workers within
//                acquireTimeoutMs, so acquires time out while the process is busy (I1)
//   freeze       every server process SIGSTOPped (db.pause) for 2 s, then SIGCONT
//   reset-peer   RST on every existing link (instantaneous)
//   latency      100 ± 50 ms each way on every link for 3 s
//   cancel       pg_cancel_backend on the pool's active backends every 100 ms for 2 s
//   limit-data   new links close after 3000 bytes each way, for 4 s; existing links get a
//                FIN at the start so the pool has to reconnect through the limit
//   slow-close   closes held back 2 s on every link for 3 s, and the pool's backends
//                terminated at the start so there are closes to hold
// The order puts terminate, blackhole, restart, proxy-down and saturate first, so a 60 s run
// at SOAK_FAULT_EVERY=10s exercises those five; at 6s nine fit (all but limit-data and
// slow-close). With the default 30 s spacing all eleven run in 6 minutes, and latency and
// cancel, two faults that replace no connection, come in a row after reset-peer (which
// replaces them all): the connections made then reach their (jittered) maxLifetimeMs in a
// mostly quiet stretch, so lifetime retirement under load is exercised away from any fault
// window (most other faults replace every connection, so lifetime rarely fires otherwise).
// The summary lists when retirements happened.
//
// After each fault: a recovery probe (I7): pool.withConnection(SELECT 1) every 50 ms from
// the removal until one succeeds; then 1 s of load (I6's settle time); then a *quiescent
// point*: the workers hold, every operation in flight finishes, and we look at the pool,
// the server, the committed rows, the heap (after gc) and the process handles; then the
// workers resume. One quiescent point before the first fault (the baseline, after warm-up)
// and one at the end.
//
// Verdicts (each its own `it`, so CI counts them; bounds and reasons inline below):
//   1 no leaked connections   server sessions <= max at every 100 ms sample; at every quiescent
//                             point, server sessions == proxy links == pool.size within 1 s;
//                             after close(), server sessions 0 within 1 s, pool size 0.
//   2 no unexpected errors    every failed operation is attributable to a fault: it started in
//                             the window, was in flight when the fault hit, or ended within
//                             GRACE_MS after the window; same for onError reports; every
//                             failure is an Error (I8).
//   3 I9 error budget         per fault: attributed failures <= operations in flight when it hit
//                             + operations started inside its window; and operations started
//                             >= 1 s after the removal (one pingIfIdleMs) never fail.
//   4 recovery (I7)           the probe succeeds within 2 s of each removal.
//   5 heap flat               heap used after gc at the end <= baseline + max(10 MB, 20 %).
//   6 handles flat            per resource type at every quiescent point <= baseline + 2
//                             (TCP sockets counted minus 3 per pooled connection); per-client
//                             listener counts <= baseline; after close, nothing above the
//                             count before the pool and proxy existed (+ 2).
//   7 no data lost            every id whose transaction resolved is in the table; every id
//                             whose transaction failed before its INSERT returned is not.
//   8 no stuck waiters        every operation settled exactly once; waiting == leased == 0 at
//                             the end; I1 (acquire settles <= deadline + 100 ms); I2 pool side;
//                             operations <= OP_BOUND_MS; FIFO inversions <= 1 %.
//
// Bounds, and why:
// - GRACE_MS = acquireTimeoutMs + queryTimeoutMs + 1 s (8 s): an operation that began as a
//   fault ended may still wait out one acquire and one query on a connection the fault broke.
//   A failure is attributed to the latest fault it matches; one that matches none is listed.
// - I9's budget, per fault, counts the operations started and not yet settled when its
//   injection began (queued waiters included, so about SOAK_WORKERS) plus those started while
//   its window was open; every failure attributed to the fault counts against it, including
//   those in the grace period. It is loose for long windows (everything started in them may
//   fail), so its second half is the sharp one: operations started >= 1 s (one pingIfIdleMs)
//   after a removal must not fail at all. "leased" at the hit is printed for information.
// - Heap (after gc, end vs the baseline point): + max(10 MB, 20 %). The gc'd heap here is
//   about 15 MB and moves by 1–2 MB between points; 10 MB catches a leak of 40 bytes per
//   operation in a 60 s run (about 250 000 operations), 4 bytes per operation in 10 minutes,
//   or a retained pg.Client per destroyed connection after a few hundred of them. The soak's
//   own bookkeeping is bounded: transaction states since the last quiescent point only, at
//   most 50 stored failure notes, counters otherwise.
// - Handles (process.getActiveResourcesInfo() by type, at quiescent points): baseline + 2 (the
//   status loop's timer or a sampler reconnect may be in flight). TCP sockets are counted
//   minus 3 per pooled connection (pg's socket and the proxy's two ends of its link).
// - onError: no kind is exempt; every report must fall in a fault window + GRACE_MS (seen:
//   POOL_DESTROY_TIMEOUT under slow-close, where client.end() waits for the held close).
// - Recovery 2 s (I7); I1 100 ms; FIFO inversions 1 % (L1); OP_BOUND_MS = an acquire + four
//   bounded queries (BEGIN, INSERT, COMMIT, ROLLBACK) + 1 s.
//
// The soak imports src/ through the harness, like the integration suites.
import { monitorEventLoopDelay } from 'node:perf_hooks';
import v8 from 'node:v8';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { isConnectionFatal } from '../../src/adapters/postgres/index.js';
import type { PoolStats } from '../../src/index.js';
import { errorKind } from '../faults/observer.js';
import { sleep, usePostgres, type Capabilities, type TestDatabase, type TestPool } from '../integration/harness.js';
import { ChaosProxy } from '../support/chaos-proxy.js';

// ------------------------------------------------------------------ settings

function durationFromEnv(name: string, fallbackMs: number): number {
  const raw = process.env[name]?.trim();
  if (raw === undefined || raw === '') return fallbackMs;
  const match = /^(\d+(?:\.\d+)?)\s*(ms|s|m|min|h)?$/i.exec(raw);
  if (match === null) throw new Error(`${name} must be a duration such as 1500ms, 60s, 10m or 1h (got ${JSON.stringify(raw)})`);
  const unit = { ms: 1, s: 1000, m: 60_000, min: 60_000, h: 3_600_000 }[(match[2] ?? 's').toLowerCase() as 'ms' | 's' | 'm' | 'min' | 'h'];
  const ms = Number(match[1]) * unit;
  if (!(ms > 0)) throw new Error(`${name} must be > 0 (got ${JSON.stringify(raw)})`);
  return ms;
}

function integerFromEnv(name: string, fallback: number): number {
  const raw = process.env[name]?.trim();
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 1) throw new Error(`${name} must be an integer >= 1 (got ${JSON.stringify(raw)})`);
  return value;
}

const DURATION_MS = durationFromEnv('SOAK_DURATION', 10 * 60_000);
const FAULT_EVERY_MS = durationFromEnv('SOAK_FAULT_EVERY', 30_000);
const INTERVAL_MS = durationFromEnv('SOAK_INTERVAL', 5_000);
const WORKERS = integerFromEnv('SOAK_WORKERS', 100);
const MAX = integerFromEnv('SOAK_MAX', 10);

const ACQUIRE_TIMEOUT_MS = 5000;
const QUERY_TIMEOUT_MS = 2000;
const CREATE_TIMEOUT_MS = 3000;
const MAX_LIFETIME_MS = 60_000;
const IDLE_TIMEOUT_MS = 30_000;
const DESTROY_TIMEOUT_MS = 2000;
const PING_IF_IDLE_MS = 1000;
const RETRY_MAX_TIMEOUT_MS = 1000;

/** A failure that ends this long after a fault's window still belongs to it: one full acquire, one query, 1 s of scheduling. */
const GRACE_MS = ACQUIRE_TIMEOUT_MS + QUERY_TIMEOUT_MS + 1000;
/** I9's "one validation cycle": operations started this long after a removal must not fail. */
const AFTER_RECOVERY_MS = PING_IF_IDLE_MS;
/** I7. */
const RECOVERY_BOUND_MS = 2000;
/** How long the probe keeps trying before it reports "no recovery". */
const RECOVERY_GIVE_UP_MS = 15_000;
/** I6: load runs this long after a removal before the quiescent point looks at the server. */
const SETTLE_MS = 1000;
/** I1. */
const LATE_MARGIN_MS = 100;
/** Longest an operation may take: an acquire, then BEGIN, INSERT, COMMIT and ROLLBACK each bounded by queryTimeoutMs, + 1 s. */
const OP_BOUND_MS = ACQUIRE_TIMEOUT_MS + 4 * QUERY_TIMEOUT_MS + 1000;
/** Heap: growth from the baseline quiescent point to the end, after gc. */
const HEAP_BOUND_MB = 10;
const HEAP_BOUND_RATIO = 0.2;
/** Handles: per type, at every quiescent point, above the baseline. */
const HANDLE_SLACK = 2;
/** L1: share of lease acquires served out of arrival order. */
const FIFO_INVERSION_BOUND = 0.01;
/** A quiescent point waits this long for in-flight operations before declaring them stuck. */
const DRAIN_BOUND_MS = OP_BOUND_MS + 2000;

// ------------------------------------------------------------------ faults

interface FaultContext {
  readonly db: TestDatabase;
  readonly proxy: ChaosProxy;
  readonly app: string;
}

interface FaultDef {
  readonly name: string;
  readonly needs?: keyof Capabilities;
  /** How long the fault stays in place between apply() and its removal. */
  readonly holdMs: number;
  /** Put the fault in place; resolves with its removal. */
  apply(ctx: FaultContext): Promise<() => Promise<void>>;
}

const nothing = async (): Promise<void> => {};

async function terminatePool(ctx: FaultContext): Promise<number> {
  const { rows } = await ctx.db.admin<{ ok: boolean }>(
    "SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity WHERE application_name = $1 AND backend_type = 'client backend'",
    [ctx.app],
  );
  return rows.filter((r) => r.ok).length;
}

const FAULTS: readonly FaultDef[] = [
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

function selectedFaults(): readonly FaultDef[] {
  const raw = process.env.SOAK_FAULTS?.trim();
  if (raw === undefined || raw === '') return FAULTS;
  return raw.split(',').map((name) => {
    const def = FAULTS.find((f) => f.name === name.trim());
    if (def === undefined) throw new Error(`SOAK_FAULTS: unknown fault ${JSON.stringify(name)} (known: ${FAULTS.map((f) => f.name).join(', ')})`);
    return def;
  });
}

// ------------------------------------------------------------------ records

type OpKind = 'select' | 'sleep' | 'txn';
type How = 'during' | 'inFlight' | 'grace';

interface FaultMark {
  readonly name: string;
  /** performance.now() when the injection began. */
  readonly start: number;
  /** The same, in ms since the soak started. */
  readonly at: number;
  /** Operations started and not yet settled when the injection began. */
  readonly inFlightAtHit: number;
  /** Of those, how many held a connection (pool.stats().leased): for information, the budget uses inFlightAtHit. */
  readonly leasedAtHit: number;
  /** Operations started while the window was open. */
  startedDuring: number;
  end?: number;
  recoveryMs?: number;
  recoveryError?: string;
  /** Attributed failures by how. */
  readonly failures: Record<How, number>;
  readonly kinds: Record<string, number>;
  /** Failures of operations started >= AFTER_RECOVERY_MS after the removal. */
  afterRecovery: number;
  onError: number;
}

interface FailureNote {
  readonly kind: OpKind | 'onError';
  /** Seconds since the soak started, e.g. "423.006s". */
  readonly startedAt: string;
  readonly endedAt: string;
  readonly error: string;
  readonly fault?: string;
}

interface QuiescentPoint {
  readonly label: string;
  readonly t: number;
  readonly drainMs: number;
  readonly stuck: number;
  readonly server: number;
  readonly size: number;
  readonly links: number;
  /** ms until server == links == size, or undefined when that never held within 1 s. */
  readonly equalAfterMs: number | undefined;
  readonly heapMB: number;
  readonly rssMB: number;
  readonly arrayBuffersMB: number;
  /** Used size per V8 heap space (MB), for telling a leak (old space growing) from code or fragmentation. */
  readonly spaces: Record<string, number>;
  /** Active resources by type, TCPSocketWrap minus 3 per pooled connection. */
  readonly handles: Record<string, number>;
  /** Largest listener count on one pooled client (client + connection + socket). */
  readonly listeners: number | undefined;
  readonly data: { committed: number; ambiguous: number; ambiguousPresent: number; aborted: number; lost: number[]; phantom: number[]; error?: string };
}

interface SoakResult {
  readonly settings: Record<string, unknown>;
  readonly elapsedMs: number;
  readonly issued: number;
  readonly settled: number;
  readonly ok: number;
  readonly failed: number;
  readonly errorsByKind: Record<string, number>;
  readonly faults: FaultMark[];
  readonly skipped: string[];
  readonly unattributed: FailureNote[];
  readonly unattributedCount: number;
  readonly afterRecovery: FailureNote[];
  readonly nonErrors: number;
  readonly onErrors: { t: number; kind: string; message: string }[];
  readonly onErrorUnattributed: number;
  readonly points: QuiescentPoint[];
  readonly serverMax: number;
  readonly serverSamples: number;
  readonly serverOverMax: string[];
  readonly poolOverMax: string[];
  readonly endStats: PoolStats;
  readonly inFlightAtEnd: number;
  readonly maxLateMs: number;
  readonly maxOpMs: number;
  readonly leaseAcquires: number;
  readonly fifoInversions: number;
  readonly afterClose: { sessions: number; withinMs: number | undefined; size: number; creating: number; handles: Record<string, number>; handlesBefore: Record<string, number> };
  readonly dataTotals: { committed: number; ambiguous: number; ambiguousPresent: number; aborted: number; lost: number[]; phantom: number[]; unchecked: number };
}

const now = (): number => performance.now();
const seconds = (ms: number): string => `${(ms / 1000).toFixed(1)}s`;
const mb = (bytes: number): number => Math.round((bytes / 1048576) * 10) / 10;
const firstLine = (error: unknown): string => (error instanceof Error ? error.message : String(error)).split('\n', 1)[0]!.slice(0, 160);
const log = (line: string): void => console.log(`[soak] ${line}`);

/** errorKind (code, else name), with the start of the message for code-less errors such as pg's "Query read timeout". */
function kindOf(error: unknown): string {
  const kind = errorKind(error);
  const code = (error as { code?: unknown } | null | undefined)?.code;
  if (typeof code === 'string' && code !== '') return kind;
  return `${kind}(${firstLine(error).slice(0, 40)})`;
}

function count<K extends string>(map: Record<K, number>, key: K, by = 1): void {
  map[key] = (map[key] ?? 0) + by;
}

function formatKinds(map: Record<string, number>): string {
  const entries = Object.entries(map).sort((a, b) => b[1] - a[1]);
  return entries.length === 0 ? '-' : entries.map(([k, n]) => `${k}:${n}`).join(' ');
}

function percentile(values: number[], p: number): number {
  if (values.length === 0) return 0;
  const sorted = values.slice().sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

function handleCounts(poolSize: number): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const type of process.getActiveResourcesInfo()) count(counts, type);
  // Each pooled connection holds three sockets here: pg's, and the proxy's two ends.
  if (poolSize > 0) counts.TCPSocketWrap = (counts.TCPSocketWrap ?? 0) - 3 * poolSize;
  return counts;
}

async function collectGarbage(): Promise<void> {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc === undefined) return;
  for (let i = 0; i < 3; i++) {
    gc();
    await new Promise((resolve) => setImmediate(resolve));
  }
}

function hardClose(client: pg.Client): void {
  (client as unknown as { connection?: { stream?: { destroy(): void } } }).connection?.stream?.destroy();
  void client.end().catch(() => {});
}

function listenerCount(client: pg.Client): number {
  const sum = (emitter: NodeJS.EventEmitter | undefined): number =>
    emitter === undefined ? 0 : emitter.eventNames().reduce((n, name) => n + emitter.listenerCount(name), 0);
  const connection = (client as unknown as { connection?: NodeJS.EventEmitter & { stream?: NodeJS.EventEmitter } }).connection;
  return sum(client) + sum(connection) + sum(connection?.stream);
}

const SESSIONS_SQL = "SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1 AND backend_type = 'client backend'";

const TX_PENDING = 0;
const TX_COMMITTED = 1;
const TX_AMBIGUOUS = 2;
const TX_ABORTED = 3;

// ------------------------------------------------------------------ the soak

const db = usePostgres();
let result: SoakResult | undefined;
let cleanupAfterAll: (() => Promise<void>) | undefined;

afterAll(async () => {
  await cleanupAfterAll?.();
});

async function runSoak(): Promise<SoakResult> {
  const faultPlan = selectedFaults();
  const gcAvailable = typeof (globalThis as { gc?: unknown }).gc === 'function';
  const settings = {
    provider: db.provider,
    duration: seconds(DURATION_MS),
    faultEvery: seconds(FAULT_EVERY_MS),
    interval: seconds(INTERVAL_MS),
    workers: WORKERS,
    max: MAX,
    oversubscription: `${(WORKERS / MAX).toFixed(1)}x`,
    pool: {
      acquireTimeoutMs: ACQUIRE_TIMEOUT_MS,
      queryTimeoutMs: QUERY_TIMEOUT_MS,
      createTimeoutMs: CREATE_TIMEOUT_MS,
      maxLifetimeMs: MAX_LIFETIME_MS,
      idleTimeoutMs: IDLE_TIMEOUT_MS,
      destroyTimeoutMs: DESTROY_TIMEOUT_MS,
      pingIfIdleMs: PING_IF_IDLE_MS,
      retry: { maxTimeoutMs: RETRY_MAX_TIMEOUT_MS },
    },
    mix: '40% SELECT 1 (lease) / 30% pool.query pg_sleep(2ms) / 30% withTransaction INSERT',
    faults: faultPlan.map((f) => f.name).join(','),
    gc: gcAvailable ? 'exposed' : 'NOT exposed (heap compared without gc)',
    bounds: {
      graceMs: GRACE_MS,
      recoveryMs: RECOVERY_BOUND_MS,
      afterRecoveryMs: AFTER_RECOVERY_MS,
      heap: `+max(${HEAP_BOUND_MB} MB, ${HEAP_BOUND_RATIO * 100}%)`,
      handles: `+${HANDLE_SLACK} per type`,
      lateMs: LATE_MARGIN_MS,
      opMs: OP_BOUND_MS,
      fifo: `${FIFO_INVERSION_BOUND * 100}%`,
    },
  };
  log(`settings ${JSON.stringify(settings)}`);

  const handlesBefore = handleCounts(0);
  const proxy = await ChaosProxy.start({ upstreamHost: db.host, upstreamPort: db.port });
  const app = db.appName('soak');
  const table = db.table('soak_rows');
  await db.admin(`CREATE TABLE ${table} (id bigint PRIMARY KEY, at timestamptz NOT NULL DEFAULT now())`);
  const insertSql = `INSERT INTO ${table} (id) VALUES ($1)`;
  const ctx: FaultContext = { db, proxy, app };

  // ---------------------------------------------------------------- state
  const started = now();
  const elapsed = (): number => now() - started;
  const faults: FaultMark[] = [];
  let active: FaultMark | undefined;
  let pendingRemoval: (() => Promise<void>) | undefined;
  const skipped: string[] = [];

  let issued = 0;
  let settled = 0;
  let ok = 0;
  let failed = 0;
  let inFlight = 0;
  let nonErrors = 0;
  let maxLateMs = -Infinity;
  let maxOpMs = 0;
  let leaseSeq = 0;
  let leaseServedMax = 0;
  let leaseAcquires = 0;
  let fifoInversions = 0;
  const errorsByKind: Record<string, number> = {};
  const unattributed: FailureNote[] = [];
  let unattributedCount = 0;
  const afterRecovery: FailureNote[] = [];
  const onErrors: { t: number; kind: string; message: string }[] = [];
  let onErrorUnattributed = 0;
  const points: QuiescentPoint[] = [];

  // Interval counters, reset by the status line.
  let iOk = 0;
  let iFailed = 0;
  let iErrors: Record<string, number> = {};
  let iWaits: number[] = [];
  let iAccepted = 0;

  // Transactions: state per id since the last quiescent point (verified and cleared there).
  let nextTxId = 1;
  let segmentFrom = 1;
  let txState = new Map<number, number>();
  const dataTotals = { committed: 0, ambiguous: 0, ambiguousPresent: 0, aborted: 0, lost: [] as number[], phantom: [] as number[], unchecked: 0 };

  // ---------------------------------------------------------------- attribution
  function attribute(startedAt: number, endedAt: number): { fault: FaultMark; how: How } | undefined {
    for (let i = faults.length - 1; i >= 0; i--) {
      const f = faults[i]!;
      if (f.start > endedAt) continue;
      if (startedAt < f.start) return { fault: f, how: 'inFlight' };
      if (f.end === undefined || startedAt <= f.end) return { fault: f, how: 'during' };
      if (endedAt <= f.end + GRACE_MS) return { fault: f, how: 'grace' };
    }
    return undefined;
  }

  function recordFailure(kind: OpKind, startedAt: number, error: unknown): void {
    const endedAt = now();
    failed++;
    iFailed++;
    const errKind = kindOf(error);
    count(errorsByKind, errKind);
    count(iErrors, errKind);
    if (!(error instanceof Error)) nonErrors++;
    const note = (fault?: string): FailureNote => ({
      kind,
      startedAt: `${((startedAt - started) / 1000).toFixed(3)}s`,
      endedAt: `${((endedAt - started) / 1000).toFixed(3)}s`,
      error: `${errKind}: ${firstLine(error)}`,
      ...(fault === undefined ? {} : { fault }),
    });
    const hit = attribute(startedAt, endedAt);
    if (hit === undefined) {
      unattributedCount++;
      if (unattributed.length < 50) unattributed.push(note());
      return;
    }
    count(hit.fault.failures, hit.how);
    count(hit.fault.kinds, errKind);
    if (hit.how === 'grace' && startedAt >= hit.fault.end! + AFTER_RECOVERY_MS) {
      hit.fault.afterRecovery++;
      if (afterRecovery.length < 50) afterRecovery.push(note(hit.fault.name));
    }
  }

  function onError(error: unknown): void {
    const at = now();
    const entry = { t: at - started, kind: kindOf(error), message: firstLine(error) };
    if (onErrors.length < 200) onErrors.push(entry);
    const hit = attribute(at, at);
    if (hit === undefined) onErrorUnattributed++;
    else hit.fault.onError++;
  }

  // ---------------------------------------------------------------- the pool
  const pool: TestPool = db.pool({
    host: proxy.host,
    port: proxy.port,
    application_name: app,
    max: MAX,
    acquireTimeoutMs: ACQUIRE_TIMEOUT_MS,
    queryTimeoutMs: QUERY_TIMEOUT_MS,
    createTimeoutMs: CREATE_TIMEOUT_MS,
    maxLifetimeMs: MAX_LIFETIME_MS,
    idleTimeoutMs: IDLE_TIMEOUT_MS,
    destroyTimeoutMs: DESTROY_TIMEOUT_MS,
    pingIfIdleMs: PING_IF_IDLE_MS,
    retry: { maxTimeoutMs: RETRY_MAX_TIMEOUT_MS },
    onError,
  });

  // ---------------------------------------------------------------- operations
  async function leaseSelect(): Promise<void> {
    const t0 = now();
    const seq = ++leaseSeq;
    let lease;
    try {
      lease = await pool.acquire();
    } catch (error) {
      maxLateMs = Math.max(maxLateMs, now() - (t0 + ACQUIRE_TIMEOUT_MS));
      throw error;
    }
    const t1 = now();
    maxLateMs = Math.max(maxLateMs, t1 - (t0 + ACQUIRE_TIMEOUT_MS));
    iWaits.push(t1 - t0);
    leaseAcquires++;
    if (seq < leaseServedMax) fifoInversions++;
    else leaseServedMax = seq;
    try {
      await lease.resource.query('SELECT 1');
    } catch (error) {
      if (isConnectionFatal(error)) await lease.destroy(error);
      else await lease.release();
      throw error;
    }
    await lease.release();
  }

  async function runOp(kind: OpKind): Promise<boolean> {
    const startedAt = now();
    issued++;
    inFlight++;
    if (active !== undefined) active.startedDuring++;
    const txId = kind === 'txn' ? nextTxId++ : 0;
    let inserted = false;
    if (kind === 'txn') txState.set(txId, TX_PENDING);
    try {
      if (kind === 'select') await leaseSelect();
      else if (kind === 'sleep') await pool.query('SELECT pg_sleep(0.002)');
      else {
        await pool.withTransaction(async (client) => {
          await client.query(insertSql, [txId]);
          inserted = true;
        });
        txState.set(txId, TX_COMMITTED);
      }
      ok++;
      iOk++;
      return true;
    } catch (error) {
      // After the INSERT returned, COMMIT may have been sent: the outcome is unknown.
      // Before it, COMMIT was never sent: the row must not exist.
      if (kind === 'txn') txState.set(txId, inserted ? TX_AMBIGUOUS : TX_ABORTED);
      recordFailure(kind, startedAt, error);
      return false;
    } finally {
      inFlight--;
      settled++;
      maxOpMs = Math.max(maxOpMs, now() - startedAt);
    }
  }

  // ---------------------------------------------------------------- workers
  let stopping = false;
  let gate: { promise: Promise<void>; open(): void } | undefined;
  const holdWorkers = (): void => {
    let open!: () => void;
    const promise = new Promise<void>((resolve) => (open = resolve));
    gate = { promise, open };
  };
  const releaseWorkers = (): void => {
    const g = gate;
    gate = undefined;
    g?.open();
  };
  const workers = Array.from({ length: WORKERS }, async () => {
    while (!stopping) {
      if (gate !== undefined) {
        await gate.promise;
        continue;
      }
      const roll = Math.random();
      const kind: OpKind = roll < 0.4 ? 'select' : roll < 0.7 ? 'sleep' : 'txn';
      if (!(await runOp(kind))) await sleep(50 + Math.random() * 50);
    }
  });

  // ---------------------------------------------------------------- server sampler (I2, server side)
  let serverLatest = -1;
  let serverMax = 0;
  let serverSamples = 0;
  const serverOverMax: string[] = [];
  const poolOverMax: string[] = [];
  let sampling = true;
  const retirements: string[] = [];
  let retiredBefore = 0;
  const sampler = (async () => {
    let client: pg.Client | undefined;
    while (sampling) {
      const s = pool.stats();
      if (s.destroyedByReason.lifetime > retiredBefore) {
        if (retirements.length < 100) retirements.push(`${seconds(elapsed())}${s.destroyedByReason.lifetime - retiredBefore > 1 ? `×${s.destroyedByReason.lifetime - retiredBefore}` : ''}`);
        retiredBefore = s.destroyedByReason.lifetime;
      }
      if (s.size + s.creating > MAX && poolOverMax.length < 20) {
        poolOverMax.push(`${seconds(elapsed())}: size ${s.size} + creating ${s.creating} > ${MAX}`);
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
        serverLatest = n;
        serverSamples++;
        serverMax = Math.max(serverMax, n);
        if (n > MAX && serverOverMax.length < 20) {
          serverOverMax.push(
            `${seconds(elapsed())}: ${n} sessions > max ${MAX} (pool size ${after.size}, creating ${after.creating}, destroying ${after.destroying}; ` +
              `fault ${active?.name ?? `none (last: ${faults.at(-1)?.name ?? '-'})`})`,
          );
        }
      } catch {
        serverLatest = -1;
        if (client !== undefined) hardClose(client);
        client = undefined;
      }
      await sleep(100);
    }
    if (client !== undefined) await client.end().catch(() => {});
  })();

  // ---------------------------------------------------------------- status lines
  const loopDelay = monitorEventLoopDelay({ resolution: 10 });
  loopDelay.enable();
  let printing = true;
  let acceptedBefore = 0;
  let createdBefore = 0;
  let destroyedBefore: Record<string, number> = {};
  let lastLine = now();
  const printLine = (): void => {
    const t = now();
    const span = (t - lastLine) / 1000;
    lastLine = t;
    const s = pool.stats();
    const accepted = proxy.stats().accepted;
    iAccepted = accepted - acceptedBefore;
    acceptedBefore = accepted;
    const fault = active?.name ?? (gate !== undefined ? '(quiescent)' : '-');
    const destroyedDelta: Record<string, number> = {};
    for (const [reason, n] of Object.entries(s.destroyedByReason)) if (n > (destroyedBefore[reason] ?? 0)) destroyedDelta[reason] = n - (destroyedBefore[reason] ?? 0);
    const churn = `created +${s.created - createdBefore} destroyed ${formatKinds(destroyedDelta)}`;
    createdBefore = s.created;
    destroyedBefore = { ...s.destroyedByReason };
    log(
      `${seconds(elapsed()).padStart(7)} ops/s ${Math.round((iOk + iFailed) / span)
        .toString()
        .padStart(5)} ok ${iOk} fail ${iFailed} wait.p99 ${percentile(iWaits, 99).toFixed(1)}ms lag.p99 ${(loopDelay.percentile(99) / 1e6).toFixed(0)}ms | ` +
        `pool size ${s.size} idle ${s.idle} leased ${s.leased} creating ${s.creating} waiting ${s.waiting} | srv ${serverLatest < 0 ? '?' : serverLatest} ` +
        `conn/s ${(iAccepted / span).toFixed(1)} ${churn} | heap ${mb(process.memoryUsage().heapUsed)}MB handles ${process.getActiveResourcesInfo().length} | ` +
        `fault ${fault} | errors ${formatKinds(iErrors)}`,
    );
    iOk = 0;
    iFailed = 0;
    iErrors = {};
    iWaits = [];
    loopDelay.reset();
  };
  const printer = (async () => {
    while (printing) {
      await sleep(Math.min(100, Math.max(0, lastLine + INTERVAL_MS - now())));
      if (printing && now() >= lastLine + INTERVAL_MS) printLine();
    }
  })();

  // ---------------------------------------------------------------- quiescent points
  async function verifyData(): Promise<QuiescentPoint['data']> {
    const data: QuiescentPoint['data'] = { committed: 0, ambiguous: 0, ambiguousPresent: 0, aborted: 0, lost: [], phantom: [] };
    const from = segmentFrom;
    const to = nextTxId;
    let present: Set<number>;
    try {
      const { rows } = await db.admin<{ id: string }>(`SELECT id FROM ${table} WHERE id >= $1 AND id < $2`, [from, to]);
      present = new Set(rows.map((r) => Number(r.id)));
    } catch (error) {
      // Checked at the next point instead (the map keeps the states).
      return { ...data, error: firstLine(error) };
    }
    for (const [id, state] of txState) {
      if (state === TX_COMMITTED) {
        data.committed++;
        if (!present.has(id)) data.lost.push(id);
      } else if (state === TX_AMBIGUOUS) {
        data.ambiguous++;
        if (present.has(id)) data.ambiguousPresent++;
      } else if (state === TX_ABORTED) {
        data.aborted++;
        if (present.has(id)) data.phantom.push(id);
      } else {
        dataTotals.unchecked++;
      }
    }
    dataTotals.committed += data.committed;
    dataTotals.ambiguous += data.ambiguous;
    dataTotals.ambiguousPresent += data.ambiguousPresent;
    dataTotals.aborted += data.aborted;
    dataTotals.lost.push(...data.lost.slice(0, 20 - dataTotals.lost.length));
    dataTotals.phantom.push(...data.phantom.slice(0, 20 - dataTotals.phantom.length));
    txState = new Map();
    segmentFrom = to;
    return data;
  }

  async function clientListeners(): Promise<number | undefined> {
    const idle = pool.stats().idle;
    if (idle === 0) return undefined;
    const leases = await Promise.allSettled(Array.from({ length: idle }, () => pool.acquire({ timeoutMs: 1000 })));
    let most = 0;
    for (const l of leases) if (l.status === 'fulfilled') most = Math.max(most, listenerCount(l.value.resource));
    await Promise.all(leases.map((l) => (l.status === 'fulfilled' ? l.value.release() : undefined)));
    return most;
  }

  async function quiescentPoint(label: string): Promise<QuiescentPoint> {
    holdWorkers();
    const t0 = now();
    while (inFlight > 0 && now() - t0 < DRAIN_BOUND_MS) await sleep(5);
    const drainMs = now() - t0;
    const stuck = inFlight;
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
    const listeners = await clientListeners();
    const data = await verifyData();
    await collectGarbage();
    const memory = process.memoryUsage();
    const point: QuiescentPoint = {
      label,
      t: elapsed(),
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
    points.push(point);
    log(
      `${seconds(point.t).padStart(7)} QUIESCENT ${label}: drained in ${Math.round(drainMs)} ms${stuck > 0 ? ` (${stuck} STUCK)` : ''}; ` +
        `server ${server} / links ${links} / pool ${stats.size}${equalAfterMs === undefined ? ' (NOT EQUAL within 1 s)' : ` (equal after ${Math.round(equalAfterMs)} ms)`}; ` +
        `heap ${point.heapMB}MB ${JSON.stringify(point.spaces)} rss ${point.rssMB}MB arrayBuffers ${point.arrayBuffersMB}MB; handles ${JSON.stringify(point.handles)}; listeners/client ${listeners ?? '-'}; ` +
        `rows: ${data.committed} committed${data.lost.length > 0 ? ` ${data.lost.length} LOST` : ''}, ${data.aborted} aborted${data.phantom.length > 0 ? ` ${data.phantom.length} PHANTOM` : ''}, ` +
        `${data.ambiguous} ambiguous (${data.ambiguousPresent} present)${data.error === undefined ? '' : `; data check deferred: ${data.error}`}`,
    );
    releaseWorkers();
    return point;
  }

  async function recoveryProbe(mark: FaultMark): Promise<void> {
    const from = now();
    let last: unknown;
    while (now() - from < RECOVERY_GIVE_UP_MS) {
      try {
        await pool.withConnection((client) => client.query('SELECT 1'), { timeoutMs: Math.max(1, RECOVERY_GIVE_UP_MS - (now() - from)) });
        mark.recoveryMs = now() - from;
        return;
      } catch (error) {
        last = error;
        await sleep(50);
      }
    }
    mark.recoveryError = `${kindOf(last)}: ${firstLine(last)}`;
  }

  async function tick(def: FaultDef): Promise<void> {
    const mark: FaultMark = {
      name: def.name,
      start: now(),
      at: elapsed(),
      inFlightAtHit: inFlight,
      leasedAtHit: pool.stats().leased,
      startedDuring: 0,
      failures: { during: 0, inFlight: 0, grace: 0 },
      kinds: {},
      afterRecovery: 0,
      onError: 0,
    };
    faults.push(mark);
    active = mark;
    log(`${seconds(elapsed()).padStart(7)} FAULT ${def.name}: in flight ${mark.inFlightAtHit} (${mark.leasedAtHit} holding a connection)`);
    try {
      const remove = await def.apply(ctx);
      pendingRemoval = remove;
      await sleep(def.holdMs);
      pendingRemoval = undefined;
      await remove();
    } finally {
      mark.end = now();
      active = undefined;
    }
    await recoveryProbe(mark);
    log(
      `${seconds(elapsed()).padStart(7)} FAULT ${def.name} removed after ${Math.round(mark.end - mark.start)} ms; started during ${mark.startedDuring}; ` +
        `recovery ${mark.recoveryMs === undefined ? `NONE (${mark.recoveryError})` : `${Math.round(mark.recoveryMs)} ms`}`,
    );
    await sleep(SETTLE_MS);
    await quiescentPoint(`after ${def.name}`);
  }

  // ---------------------------------------------------------------- the schedule
  let closed = false;
  let shut = false;
  const shutdown = async (): Promise<void> => {
    if (shut) return;
    shut = true;
    stopping = true;
    releaseWorkers();
    if (pendingRemoval !== undefined) await pendingRemoval().catch(() => {});
    pendingRemoval = undefined;
    await Promise.all(workers);
    if (printing) printLine();
    sampling = false;
    printing = false;
    await Promise.all([sampler, printer]);
    loopDelay.disable();
  };
  cleanupAfterAll = async () => {
    if (!closed) {
      await shutdown();
      await pool.close({ timeoutMs: 2000 }).catch(() => {});
      await proxy.close();
    }
  };

  try {
    const warmupMs = Math.min(10_000, FAULT_EVERY_MS / 2, DURATION_MS / 4);
    await sleep(warmupMs);
    await quiescentPoint('baseline');

    const supported = faultPlan.filter((f) => f.needs === undefined || db.capabilities[f.needs]);
    for (const f of faultPlan) if (!supported.includes(f)) skipped.push(`${f.name} (provider '${db.provider}' cannot ${f.needs})`);
    for (const s of skipped) log(`skipping fault ${s}`);
    // Longest a tick may take before the end: hold, recovery, settle, drain and checks.
    const tickBudgetMs = (f: FaultDef): number => f.holdMs + (f.name === 'restart' ? 4000 : 0) + RECOVERY_BOUND_MS + SETTLE_MS + 500;
    for (let k = 1, index = 0; supported.length > 0; k++, index++) {
      const def = supported[index % supported.length]!;
      const at = Math.max(k * FAULT_EVERY_MS, elapsed());
      if (at + tickBudgetMs(def) > DURATION_MS) break;
      await sleep(at - elapsed());
      await tick(def);
    }
    await sleep(Math.max(0, DURATION_MS - elapsed()));
    await quiescentPoint('end');
  } finally {
    await shutdown();
  }

  const endStats = pool.stats();
  const inFlightAtEnd = inFlight;
  const elapsedMs = elapsed();

  // ---------------------------------------------------------------- close (I5)
  await pool.close({ timeoutMs: 5000 });
  const closedAt = now();
  let sessions = await db.sessions(app);
  while (sessions > 0 && now() - closedAt < 1000) {
    await sleep(20);
    sessions = await db.sessions(app);
  }
  const withinMs = sessions === 0 ? now() - closedAt : undefined;
  const afterStats = pool.stats();
  await proxy.close();
  closed = true;
  await sleep(50);
  const afterClose = { sessions, withinMs, size: afterStats.size, creating: afterStats.creating, handles: handleCounts(0), handlesBefore };

  // ---------------------------------------------------------------- summary
  log(`--- ${issued} operations in ${seconds(elapsedMs)} (${Math.round(issued / (elapsedMs / 1000))}/s): ${ok} ok, ${failed} failed ${formatKinds(errorsByKind)}`);
  log(`pool at the end: ${JSON.stringify({ size: endStats.size, idle: endStats.idle, leased: endStats.leased, waiting: endStats.waiting, created: endStats.created, createFailed: endStats.createFailed, destroyed: endStats.destroyedByReason, timedOut: endStats.timedOut, rejected: endStats.rejected, waitTime: endStats.waitTime })}`);
  log('fault          at(s)  held(ms) inFlight(leased) started budget | failed: during inFlight grace | after-recovery onError | recovery(ms) | kinds');
  for (const f of faults) {
    const attributed = f.failures.during + f.failures.inFlight + f.failures.grace;
    log(
      `${f.name.padEnd(14)} ${(f.at / 1000).toFixed(1).padStart(5)} ${Math.round((f.end ?? f.start) - f.start)
        .toString()
        .padStart(9)} ${`${f.inFlightAtHit}(${f.leasedAtHit})`.padStart(16)} ${f.startedDuring.toString().padStart(7)} ${(f.inFlightAtHit + f.startedDuring)
        .toString()
        .padStart(6)} | ${attributed.toString().padStart(6)}: ${f.failures.during.toString().padStart(6)} ${f.failures.inFlight
        .toString()
        .padStart(8)} ${f.failures.grace.toString().padStart(5)} | ${f.afterRecovery.toString().padStart(14)} ${f.onError
        .toString()
        .padStart(7)} | ${(f.recoveryMs === undefined ? 'NONE' : Math.round(f.recoveryMs).toString()).padStart(12)} | ${formatKinds(f.kinds)}`,
    );
  }
  if (skipped.length > 0) log(`skipped: ${skipped.join('; ')}`);
  const notRun = faultPlan.filter((f) => !faults.some((m) => m.name === f.name) && !skipped.some((s) => s.startsWith(`${f.name} `)));
  if (notRun.length > 0) log(`not reached in this run: ${notRun.map((f) => f.name).join(', ')}`);
  log(`lifetime retirements: ${retirements.length === 0 ? 'none' : retirements.join(' ')}`);
  log(`onError: ${onErrors.length} reports ${formatKinds(onErrors.reduce<Record<string, number>>((m, e) => (count(m, e.kind), m), {}))}; ${onErrorUnattributed} outside fault windows`);
  log(`server sessions: max ${serverMax} over ${serverSamples} samples; after close ${sessions}${withinMs === undefined ? '' : ` within ${Math.round(withinMs)} ms`}`);
  log(`ops: max ${Math.round(maxOpMs)} ms; lease acquires ${leaseAcquires}, FIFO inversions ${fifoInversions}; latest acquire ${Math.round(maxLateMs)} ms vs its deadline`);
  log(`rows: ${dataTotals.committed} committed (${dataTotals.lost.length} lost), ${dataTotals.aborted} aborted (${dataTotals.phantom.length} present), ${dataTotals.ambiguous} ambiguous (${dataTotals.ambiguousPresent} present)`);

  return {
    settings,
    elapsedMs,
    issued,
    settled,
    ok,
    failed,
    errorsByKind,
    faults,
    skipped,
    unattributed,
    unattributedCount,
    afterRecovery,
    nonErrors,
    onErrors,
    onErrorUnattributed,
    points,
    serverMax,
    serverSamples,
    serverOverMax,
    poolOverMax,
    endStats,
    inFlightAtEnd,
    maxLateMs,
    maxOpMs,
    leaseAcquires,
    fifoInversions,
    afterClose,
    dataTotals,
  };
}

// ------------------------------------------------------------------ verdicts

function soak(): SoakResult {
  if (result === undefined) throw new Error('the soak did not complete: no verdict');
  return result;
}

describe('soak', () => {
  it('runs the soak', async () => {
    result = await runSoak();
  });

  it('1. no leaked connections: server sessions <= max throughout, == pool size at quiescent points, 0 after close', () => {
    const r = soak();
    log(`verdict 1: server max ${r.serverMax} (bound ${MAX}); quiescent points ${r.points.map((p) => `${p.label}: ${p.server}/${p.links}/${p.size}`).join(', ')}; after close ${r.afterClose.sessions} sessions, size ${r.afterClose.size}`);
    expect.soft(r.serverSamples, 'the server sampler ran').toBeGreaterThan(0);
    expect.soft(r.serverOverMax, `server sessions never above max ${MAX} (100 ms samples)`).toEqual([]);
    const unequal = r.points.filter((p) => p.equalAfterMs === undefined).map((p) => `${p.label}: server ${p.server}, proxy links ${p.links}, pool size ${p.size}`);
    expect.soft(unequal, 'at every quiescent point server sessions == proxy links == pool.size within 1 s').toEqual([]);
    expect.soft(r.afterClose.withinMs, `server sessions 0 within 1 s of close() (saw ${r.afterClose.sessions})`).toBeDefined();
    expect.soft(r.afterClose.size + r.afterClose.creating, 'pool size 0 after close()').toBe(0);
  });

  it('2. no unexpected errors: every failure is attributable to a fault', () => {
    const r = soak();
    const attributed = r.faults.reduce((n, f) => n + f.failures.during + f.failures.inFlight + f.failures.grace, 0);
    log(`verdict 2: ${r.failed} failures, ${attributed} attributed, ${r.unattributedCount} not; onError ${r.onErrors.length}, ${r.onErrorUnattributed} outside fault windows (+${GRACE_MS} ms grace)`);
    for (const u of r.unattributed) log(`  unattributed: ${JSON.stringify(u)}`);
    expect.soft(r.unattributed, `failed operations that no fault explains (${r.unattributedCount} in all)`).toEqual([]);
    expect.soft(r.onErrorUnattributed, `onError reports outside fault windows + grace: ${JSON.stringify(r.onErrors.slice(0, 10))}`).toBe(0);
    expect.soft(r.nonErrors, 'I8: every failure is an Error').toBe(0);
  });

  it('3. I9 error budget per fault: failures <= in flight at the hit + started in the window; none after recovery', () => {
    const r = soak();
    const over = r.faults
      .map((f) => ({ name: f.name, at: seconds(f.at), failures: f.failures.during + f.failures.inFlight + f.failures.grace, budget: f.inFlightAtHit + f.startedDuring }))
      .filter((f) => f.failures > f.budget);
    log(`verdict 3: ${r.faults.map((f) => `${f.name} ${f.failures.during + f.failures.inFlight + f.failures.grace}/${f.inFlightAtHit + f.startedDuring}`).join(', ')}`);
    for (const a of r.afterRecovery) log(`  after recovery: ${JSON.stringify(a)}`);
    expect.soft(over, 'faults whose attributed failures exceed their budget').toEqual([]);
    expect.soft(r.afterRecovery, `operations started >= ${AFTER_RECOVERY_MS} ms after a fault was removed that still failed`).toEqual([]);
  });

  it(`4. recovery (I7): the first pool operation succeeds within ${RECOVERY_BOUND_MS} ms of each removal`, () => {
    const r = soak();
    log(`verdict 4: ${r.faults.map((f) => `${f.name} ${f.recoveryMs === undefined ? 'NONE' : `${Math.round(f.recoveryMs)} ms`}`).join(', ')}`);
    expect.soft(r.faults.length, 'at least one fault ran').toBeGreaterThan(0);
    const slow = r.faults.filter((f) => f.recoveryMs === undefined || f.recoveryMs > RECOVERY_BOUND_MS).map((f) => `${f.name}: ${f.recoveryMs === undefined ? f.recoveryError : `${Math.round(f.recoveryMs)} ms`}`);
    expect.soft(slow, `recoveries slower than ${RECOVERY_BOUND_MS} ms`).toEqual([]);
  });

  it(`5. heap flat: end <= baseline + max(${HEAP_BOUND_MB} MB, ${HEAP_BOUND_RATIO * 100} %) after gc`, () => {
    const r = soak();
    const base = r.points[0]!;
    const end = r.points.at(-1)!;
    const bound = base.heapMB + Math.max(HEAP_BOUND_MB, base.heapMB * HEAP_BOUND_RATIO);
    log(`verdict 5: heap ${r.points.map((p) => p.heapMB).join(' → ')} MB (bound ${bound.toFixed(1)}); spaces ${JSON.stringify(base.spaces)} → ${JSON.stringify(end.spaces)}; rss ${base.rssMB} → ${end.rssMB} MB; arrayBuffers ${base.arrayBuffersMB} → ${end.arrayBuffersMB} MB; gc ${String(r.settings.gc)}`);
    expect(r.points.length, 'a baseline and an end point').toBeGreaterThanOrEqual(2);
    expect(end.heapMB, `heap used at the end vs the baseline ${base.heapMB} MB`).toBeLessThanOrEqual(bound);
  });

  it(`6. handles flat: per type <= baseline + ${HANDLE_SLACK} at quiescent points; listeners per client flat; nothing left after close`, () => {
    const r = soak();
    const base = r.points[0]!;
    const grown: string[] = [];
    for (const p of r.points) {
      for (const [type, n] of Object.entries(p.handles)) {
        if (n > (base.handles[type] ?? 0) + HANDLE_SLACK) grown.push(`${p.label}: ${type} ${n} (baseline ${base.handles[type] ?? 0})`);
      }
    }
    const listenerBase = r.points.find((p) => p.listeners !== undefined)?.listeners;
    const listenerGrowth = r.points.filter((p) => listenerBase !== undefined && p.listeners !== undefined && p.listeners > listenerBase).map((p) => `${p.label}: ${p.listeners} > ${listenerBase}`);
    const left: string[] = [];
    for (const [type, n] of Object.entries(r.afterClose.handles)) {
      if (n > (r.afterClose.handlesBefore[type] ?? 0) + HANDLE_SLACK) left.push(`${type} ${n} (before the pool: ${r.afterClose.handlesBefore[type] ?? 0})`);
    }
    log(`verdict 6: baseline ${JSON.stringify(base.handles)}; end ${JSON.stringify(r.points.at(-1)!.handles)}; listeners/client ${r.points.map((p) => p.listeners ?? '-').join(' ')}; after close ${JSON.stringify(r.afterClose.handles)} (before ${JSON.stringify(r.afterClose.handlesBefore)})`);
    expect.soft(grown, 'handle types above the baseline at a quiescent point').toEqual([]);
    expect.soft(listenerGrowth, 'listeners on a pooled client above the baseline').toEqual([]);
    expect.soft(left, 'handles left after close() beyond those before the pool and proxy existed').toEqual([]);
  });

  it('7. no data lost: committed ids present, ids that never reached COMMIT absent', () => {
    const r = soak();
    const d = r.dataTotals;
    log(`verdict 7: ${d.committed} committed (${d.lost.length} lost), ${d.aborted} failed before COMMIT (${d.phantom.length} present), ${d.ambiguous} ambiguous (${d.ambiguousPresent} present), ${d.unchecked} unchecked`);
    expect.soft(d.committed, 'transactions committed').toBeGreaterThan(0);
    expect.soft(d.lost, 'committed ids missing from the table').toEqual([]);
    expect.soft(d.phantom, 'ids whose transaction failed before COMMIT but are in the table').toEqual([]);
    expect.soft(d.unchecked, 'transactions still pending at a quiescent point').toBe(0);
    const deferred = r.points.filter((p) => p.data.error !== undefined).length;
    expect.soft(deferred === 0 || r.points.at(-1)!.data.error === undefined, 'the last data check ran').toBe(true);
  });

  it('8. no stuck waiters: every operation settled once, nothing waiting at the end, I1/I2, FIFO', () => {
    const r = soak();
    const stuck = r.points.filter((p) => p.stuck > 0).map((p) => `${p.label}: ${p.stuck} still in flight after ${DRAIN_BOUND_MS} ms`);
    const inversions = r.leaseAcquires === 0 ? 0 : r.fifoInversions / r.leaseAcquires;
    log(
      `verdict 8: issued ${r.issued}, settled ${r.settled} (${r.ok} ok + ${r.failed} failed); waiting ${r.endStats.waiting}, leased ${r.endStats.leased}; ` +
        `latest acquire ${Math.round(r.maxLateMs)} ms past its deadline (bound ${LATE_MARGIN_MS}); longest op ${Math.round(r.maxOpMs)} ms (bound ${OP_BOUND_MS}); ` +
        `FIFO inversions ${r.fifoInversions}/${r.leaseAcquires} = ${(inversions * 100).toFixed(3)} % (bound ${FIFO_INVERSION_BOUND * 100} %)`,
    );
    expect.soft(r.settled, 'every operation settled').toBe(r.issued);
    expect.soft(r.ok + r.failed, 'each settled once (ok + failed == issued)').toBe(r.issued);
    expect.soft(r.inFlightAtEnd, 'nothing in flight at the end').toBe(0);
    expect.soft(stuck, 'operations that did not finish at a quiescent point').toEqual([]);
    expect.soft(r.endStats.waiting, 'no waiter left at the end').toBe(0);
    expect.soft(r.endStats.leased, 'no lease left at the end').toBe(0);
    expect.soft(r.maxLateMs, `I1: no acquire settles more than ${LATE_MARGIN_MS} ms after its deadline`).toBeLessThanOrEqual(LATE_MARGIN_MS);
    expect.soft(r.poolOverMax, 'I2: size + creating <= max at every sample').toEqual([]);
    expect.soft(r.maxOpMs, `every operation ends within ${OP_BOUND_MS} ms`).toBeLessThanOrEqual(OP_BOUND_MS);
    expect.soft(inversions, 'L1: lease acquires served out of arrival order').toBeLessThanOrEqual(FIFO_INVERSION_BOUND);
  });
});
