// Acquire/release overhead of lifeguard vs generic-pool, tarn and pg-pool (no database involved).
// Usage: npm run build && node [--expose-gc] bench/pool.bench.js [--quick] [--only=lifeguard,tarn,...]
//        [--baseline=DIR]: also run the lifeguard built in DIR (another commit's dist/), as
//        "lifeguard (baseline)", to compare two versions in the same run, against the same peers.
//        [--rounds=N]: run every closed-loop scenario N times, the pools in reverse order every
//        other round, and report the mean: a pool's place in the order moves its rate by up to
//        ~10 % here (the same build measured as two pools differed that much), so compare two
//        builds with --rounds=2 or more.
import { EventEmitter } from 'node:events';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { performance } from 'node:perf_hooks';
import genericPool from 'generic-pool';
import PgPool from 'pg-pool';
import tarn from 'tarn';

const MAX = 10;
const ACQUIRE_TIMEOUT_MS = 30_000; // every pool that supports an acquire deadline gets the same one
const SAMPLE_MASK = 63; // latency is sampled on 1 of every 64 cycles / acquires
const PEERS = ['generic-pool', 'tarn', 'pg-pool'];

// ---------------------------------------------------------------------------------------------
// Pools under test: { name, setup(max) -> { acquire(): Promise<h>, release(h): Promise|void, close() } }
// release() returns undefined when the pool's release is synchronous, so the harness only awaits
// when the pool itself hands back a promise.

/** pg-pool needs a Client with connect(cb), end(cb), EventEmitter methods, _queryable and _ending. */
class FakePgClient extends EventEmitter {
  _queryable = true;
  _ending = false;
  connect(cb) { process.nextTick(cb); }
  end(cb) { this._ending = true; this._queryable = false; if (cb) process.nextTick(cb); }
}

/** Minimal FIFO semaphore pool: the floor for "await acquire, then release" in this runtime. */
function barePool(max) {
  const idle = Array.from({ length: max }, () => ({}));
  let waiters = [];
  let head = 0;
  return {
    acquire() {
      if (idle.length > 0) return Promise.resolve(idle.pop());
      return new Promise((resolve) => waiters.push(resolve));
    },
    release(r) {
      if (head === waiters.length) { idle.push(r); return; }
      const resolve = waiters[head];
      waiters[head++] = undefined;
      if (head === waiters.length) { waiters = []; head = 0; }
      resolve(r);
    },
    close() {},
  };
}

/** lifeguard as built in `dist` (a path or URL to its directory). */
function lifeguardPool(name, dist, label) {
  return {
    name,
    label,
    async setup(max) {
      const entry = new URL('index.js', dist.endsWith('/') ? dist : `${dist}/`);
      const { createPool } = await import(entry.href).catch((err) => {
        throw new Error(`cannot load ${entry.pathname}: run \`npm run build\` first (or skip it with --only=...)`, { cause: err });
      });
      const pool = createPool({
        adapter: { create: async () => ({}), destroy: async () => {} },
        max,
        acquireTimeoutMs: ACQUIRE_TIMEOUT_MS,
      });
      return { acquire: () => pool.acquire(), release: (lease) => lease.release(), close: () => pool.close() };
    },
  };
}

const POOLS = [
  lifeguardPool('lifeguard', new URL('../dist/', import.meta.url).href),
  {
    name: 'generic-pool',
    setup(max) {
      const pool = genericPool.createPool(
        { create: async () => ({}), destroy: async () => {} },
        { max, acquireTimeoutMillis: ACQUIRE_TIMEOUT_MS },
      );
      return {
        acquire: () => pool.acquire(),
        release: (r) => pool.release(r),
        close: async () => { await pool.drain(); await pool.clear(); },
      };
    },
  },
  {
    name: 'tarn',
    setup(max) {
      const pool = new tarn.Pool({
        create: async () => ({}), destroy: () => {}, min: 0, max, acquireTimeoutMillis: ACQUIRE_TIMEOUT_MS,
      });
      return { acquire: () => pool.acquire().promise, release: (r) => { pool.release(r); }, close: () => pool.destroy() };
    },
  },
  {
    name: 'pg-pool',
    setup(max) {
      const pool = new PgPool({ max, Client: FakePgClient, connectionTimeoutMillis: ACQUIRE_TIMEOUT_MS });
      return { acquire: () => pool.connect(), release: (client) => { client.release(); }, close: () => pool.end() };
    },
  },
  { name: 'bare', label: 'bare-semaphore (reference, not a peer)', setup: barePool },
];

// ---------------------------------------------------------------------------------------------
// Harness

const gc = () => globalThis.gc?.();

function percentiles(samples) {
  const sorted = Float64Array.from(samples).sort();
  const at = (q) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)] : NaN);
  return { p50: at(0.5) * 1e3, p99: at(0.99) * 1e3 }; // ms -> µs
}

/** Opens a pool, creates all `max` resources up front, runs fn, always closes the pool. */
async function withPool(def, fn) {
  const pool = await def.setup(MAX);
  try {
    const held = await Promise.all(Array.from({ length: MAX }, () => pool.acquire()));
    for (const h of held) await pool.release(h);
    return await fn(pool);
  } finally {
    await pool.close();
  }
}

/** Scenario 1: `concurrency` callers each looping acquire -> release until `cycles` are done. */
async function closedLoop(pool, concurrency, cycles) {
  const samples = [];
  let started = 0;
  async function caller() {
    while (started < cycles) {
      const sampled = (started++ & SAMPLE_MASK) === 0;
      const t0 = sampled ? performance.now() : 0;
      const h = await pool.acquire();
      const released = pool.release(h);
      if (released) await released;
      if (sampled) samples.push(performance.now() - t0);
    }
  }
  const t0 = performance.now();
  await Promise.all(Array.from({ length: concurrency }, caller));
  const seconds = (performance.now() - t0) / 1e3;
  return { rate: cycles / seconds, seconds, ...percentiles(samples) };
}

/** Scenario 2: `n` acquires issued synchronously; each is released as soon as it resolves.
 *  Kept to one `.then` per acquire (and no closure unless sampled): the harness's own garbage
 *  would otherwise dominate GC time at 100k in-flight acquires. */
function burst(pool, n) {
  return new Promise((resolve, reject) => {
    const samples = [];
    let done = 0;
    const finish = () => {
      if (++done < n) return;
      const ms = performance.now() - t0;
      resolve({ rate: n / (ms / 1e3), nsPerAcquire: (ms * 1e6) / n, ...percentiles(samples) });
    };
    const onAcquired = (h) => {
      const released = pool.release(h);
      if (released) released.then(finish, reject);
      else finish();
    };
    const t0 = performance.now();
    for (let i = 0; i < n; i++) {
      if ((i & SAMPLE_MASK) !== 0) {
        pool.acquire().then(onAcquired, reject);
        continue;
      }
      const t = performance.now();
      pool.acquire().then((h) => { samples.push(performance.now() - t); onAcquired(h); }, reject);
    }
  });
}

// ---------------------------------------------------------------------------------------------
// Reporting

const fmtInt = (x) => Math.round(x).toLocaleString('en-US');
const fmtUs = (x) => (x < 10 ? x.toFixed(2) : x < 100 ? x.toFixed(1) : fmtInt(x));

function table(header, rows) {
  const lines = [header, header.map(() => '---'), ...rows];
  return lines.map((cells) => `| ${cells.join(' | ')} |`).join('\n');
}

/** results: [{ def, rate, p50, p99 }]; ratio = rate / best peer rate (> 1 means faster). */
function rateTable(unit, results) {
  const best = Math.max(...results.filter((r) => PEERS.includes(r.def.name)).map((r) => r.rate));
  return table(
    ['pool', unit, 'p50 µs', 'p99 µs', 'ratio to best peer'],
    results.map((r) => [
      r.def.label ?? r.def.name, fmtInt(r.rate), fmtUs(r.p50), fmtUs(r.p99),
      Number.isFinite(best) ? `${(r.rate / best).toFixed(2)}×` : 'n/a',
    ]),
  );
}

// ---------------------------------------------------------------------------------------------
// Main

function parseArgs(argv) {
  const opts = { quick: false, only: null, rounds: 1 };
  for (const arg of argv) {
    if (arg === '--quick') opts.quick = true;
    else if (arg.startsWith('--rounds=')) {
      opts.rounds = Number(arg.slice('--rounds='.length));
      if (!Number.isInteger(opts.rounds) || opts.rounds < 1) throw new Error(`Expected --rounds to be an integer >= 1, got ${arg}`);
    } else if (arg.startsWith('--baseline=')) {
      const dir = path.resolve(arg.slice('--baseline='.length));
      POOLS.splice(1, 0, lifeguardPool('baseline', pathToFileURL(`${dir}/`).href, `lifeguard (baseline: ${dir})`));
    }
    else if (arg.startsWith('--only=')) opts.only = arg.slice('--only='.length).split(',').filter(Boolean);
    else throw new Error(`unknown argument ${arg} (expected --quick, --only=name,..., --baseline=DIR, --rounds=N)`);
  }
  const names = POOLS.map((p) => p.name);
  const unknown = (opts.only ?? []).filter((n) => !names.includes(n));
  if (unknown.length) throw new Error(`unknown pool(s) ${unknown.join(', ')}; known: ${names.join(', ')}`);
  return opts;
}

async function main() {
  const { quick, only, rounds } = parseArgs(process.argv.slice(2));
  const pools = POOLS.filter((p) => !only || only.includes(p.name));
  const cfg = quick
    ? { targetSeconds: 0.1, warmupCycles: 5_000, minCycles: 10_000, bursts: [5_000, 10_000, 20_000] }
    : { targetSeconds: 1, warmupCycles: 50_000, minCycles: 64_000, bursts: [25_000, 50_000, 100_000] };

  console.log(`# Pool benchmark${quick ? ' (--quick)' : ''}\n`);
  console.log(`- node ${process.version} (V8 ${process.versions.v8}), ${process.platform}/${process.arch}`);
  console.log(`- CPU: ${os.cpus()[0]?.model ?? 'unknown'} × ${os.availableParallelism()}`);
  console.log(`- max ${MAX}, acquire timeout ${ACQUIRE_TIMEOUT_MS} ms, latency sampled on 1/${SAMPLE_MASK + 1} ops, ` +
    `gc between runs: ${globalThis.gc ? 'yes' : 'no (run node with --expose-gc)'}`);

  // Prime the shared harness call sites with every pool so none of them is timed while they are
  // still monomorphic (that would favour whichever pool happens to run first).
  for (const def of pools) await withPool(def, (p) => closedLoop(p, 16, 2_000));

  for (const concurrency of [1, 16, 256]) {
    const runs = new Map(pools.map((def) => [def, []]));
    for (let round = 0; round < rounds; round++) {
      for (const def of round % 2 === 0 ? pools : [...pools].reverse()) {
        gc();
        runs.get(def).push(await withPool(def, async (pool) => {
          const warm = await closedLoop(pool, concurrency, cfg.warmupCycles);
          const cycles = Math.max(cfg.minCycles, Math.round(warm.rate * cfg.targetSeconds));
          gc();
          return closedLoop(pool, concurrency, cycles);
        }));
      }
    }
    const mean = (list, key) => list.reduce((sum, r) => sum + r[key], 0) / list.length;
    const results = pools.map((def) => ({ def, rate: mean(runs.get(def), 'rate'), p50: mean(runs.get(def), 'p50'), p99: mean(runs.get(def), 'p99') }));
    const suffix = rounds > 1 ? `, mean of ${rounds} rounds in alternating order` : '';
    console.log(`\n## Closed loop, ${concurrency} concurrent caller${concurrency > 1 ? 's' : ''} (acquire → release${suffix})\n`);
    console.log(rateTable('cycles/s', results));
  }

  const bursts = [];
  for (const def of pools) {
    gc();
    const sizes = await withPool(def, async (pool) => {
      await burst(pool, cfg.bursts[0]); // warm-up
      const out = [];
      for (const n of cfg.bursts) { gc(); out.push(await burst(pool, n)); }
      return out;
    });
    bursts.push({ def, sizes });
  }
  const largest = cfg.bursts.at(-1);
  console.log(`\n## Burst: ${fmtInt(largest)} acquires issued at once (acquire wait = issue → resolve)\n`);
  console.log(rateTable('acquires/s', bursts.map(({ def, sizes }) => ({ def, ...sizes.at(-1) }))));
  console.log(`\n### Burst scaling: ns per acquire (flat = linear total time)\n`);
  console.log(table(
    ['pool', ...cfg.bursts.map((n) => `${fmtInt(n)}`), `${fmtInt(largest)} ÷ ${fmtInt(cfg.bursts[0])}`],
    bursts.map(({ def, sizes }) => [
      def.label ?? def.name, ...sizes.map((s) => fmtInt(s.nsPerAcquire)),
      `${(sizes.at(-1).nsPerAcquire / sizes[0].nsPerAcquire).toFixed(2)}×`,
    ]),
  ));
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
