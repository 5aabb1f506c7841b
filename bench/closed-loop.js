// The closed-loop harness the database benchmarks share (postgres.bench.js, mysql.bench.js):
// `concurrency` callers running query() back to back for a fixed time, every query timed,
// CPU per query, and the Markdown tables with ratios to a baseline pool.
import fs from 'node:fs';
import os from 'node:os';
import { performance } from 'node:perf_hooks';

export const times = (n, fn) => Promise.all(Array.from({ length: n }, fn));

export const gc = () => globalThis.gc?.();

/** Latency samples in ms; one buffer reused by every cell so the harness allocates almost nothing while timing. */
class Samples {
  buf = new Float64Array(1 << 20);
  n = 0;
  push(x) {
    if (this.n === this.buf.length) {
      const bigger = new Float64Array(this.buf.length * 2);
      bigger.set(this.buf);
      this.buf = bigger;
    }
    this.buf[this.n++] = x;
  }
  percentiles() {
    const sorted = this.buf.subarray(0, this.n).sort();
    const at = (q) => (this.n ? sorted[Math.min(this.n - 1, Math.ceil(q * this.n) - 1)] : NaN);
    return { p50: at(0.5) * 1e3, p99: at(0.99) * 1e3 }; // ms -> µs
  }
}
const samples = new Samples();

/**
 * `concurrency` closed-loop callers, each running query() back to back for `seconds`; every
 * query is timed. No new query starts after the deadline; the run ends when the last one returns.
 */
export async function closedLoop(pool, concurrency, seconds) {
  samples.n = 0;
  const query = pool.query;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const end = t0 + seconds * 1e3;
  async function caller() {
    let t = performance.now();
    while (t < end) {
      await query();
      const t1 = performance.now();
      samples.push(t1 - t);
      t = t1;
    }
  }
  await Promise.all(Array.from({ length: concurrency }, caller));
  const elapsed = (performance.now() - t0) / 1e3;
  const cpu = process.cpuUsage(cpu0);
  const queries = samples.n;
  return { queries, rate: queries / elapsed, cpuUs: (cpu.user + cpu.system) / queries, ...samples.percentiles() };
}

// ---------------------------------------------------------------------------------------------
// Reporting

export const fmtInt = (x) => (Number.isFinite(x) ? Math.round(x).toLocaleString('en-US') : 'n/a');
export const fmtUs = (x) => (!Number.isFinite(x) ? 'n/a' : x < 10 ? x.toFixed(2) : x < 100 ? x.toFixed(1) : fmtInt(x));
export const fmtRatio = (x) => (Number.isFinite(x) ? `${x.toFixed(2)}×` : 'n/a');

export function table(header, rows) {
  const lines = [header, header.map(() => '---'), ...rows];
  return lines.map((cells) => `| ${cells.join(' | ')} |`).join('\n');
}

/** cells: [{ def, runs: [result, ...] }]; each row shows the run with the highest queries/s, with ratios to the pool named `baseline` (shown as `baseLabel`). */
export function cellTable(cells, baseline, baseLabel) {
  const best = (cell) => cell.runs.reduce((a, b) => (b.rate > a.rate ? b : a));
  const base = cells.find((c) => c.def.name === baseline);
  const baseBest = base && best(base);
  return table(
    ['pool', 'queries/s', 'p50 µs', 'p99 µs', 'CPU µs/query', `q/s ÷ ${baseLabel}`, `p99 ÷ ${baseLabel}`, 'run spread'],
    cells.map((cell) => {
      const r = best(cell);
      const worst = Math.min(...cell.runs.map((x) => x.rate));
      return [
        cell.def.label ?? cell.def.name, fmtInt(r.rate), fmtUs(r.p50), fmtUs(r.p99), fmtUs(r.cpuUs),
        fmtRatio(baseBest ? r.rate / baseBest.rate : NaN), fmtRatio(baseBest ? r.p99 / baseBest.p99 : NaN),
        `${(((r.rate - worst) / r.rate) * 100).toFixed(1)} %`,
      ];
    }),
  );
}


/** The installed version of a dependency, for the header. */
export function pkgVersion(name) {
  try {
    return JSON.parse(fs.readFileSync(new URL(`../node_modules/${name}/package.json`, import.meta.url), 'utf8')).version;
  } catch {
    return '?';
  }
}

/** The command line of a closed-loop benchmark: --quick, --only=name,..., --concurrency=n,..., --reps=n; `names` are the pools it knows. */
export function parseArgs(argv, names, concurrency) {
  const opts = { quick: false, only: null, concurrency, reps: 2 };
  for (const arg of argv) {
    if (arg === '--quick') opts.quick = true;
    else if (arg.startsWith('--only=')) opts.only = arg.slice('--only='.length).split(',').filter(Boolean);
    else if (arg.startsWith('--concurrency=')) {
      opts.concurrency = arg.slice('--concurrency='.length).split(',').filter(Boolean).map(Number);
      if (opts.concurrency.some((c) => !Number.isInteger(c) || c < 1)) throw new Error(`bad ${arg}: expected positive integers`);
    } else if (arg.startsWith('--reps=')) {
      opts.reps = Number(arg.slice('--reps='.length));
      if (!Number.isInteger(opts.reps) || opts.reps < 1) throw new Error(`bad ${arg}: expected a positive integer`);
    } else throw new Error(`unknown argument ${arg} (expected --quick, --only=name,..., --concurrency=n,..., --reps=n)`);
  }
  const unknown = (opts.only ?? []).filter((n) => !names.includes(n));
  if (unknown.length) throw new Error(`unknown pool(s) ${unknown.join(', ')}; known: ${names.join(', ')}`);
  return opts;
}

/** Cell timings: 2 s cells (0.5 s with --quick) after a warm-up. */
export const cellConfig = (quick) => (quick ? { seconds: 0.5, warmSeconds: 0.1, primeSeconds: 0.2 } : { seconds: 2, warmSeconds: 0.25, primeSeconds: 0.5 });

/**
 * Every concurrency level for every opened pool ([{ def, pool }]), interleaved and repeated
 * `reps` times, printing one table per level with ratios to `baseline`. Returns
 * concurrency -> [{ def, runs }].
 */
export async function runLevels(open, levels, reps, cfg, baseline, baseLabel) {
  // Prime the shared harness call sites with every pool (see pool.bench.js), untimed.
  for (const { pool } of open) await closedLoop(pool, 16, cfg.primeSeconds);

  const results = new Map(); // concurrency -> [{ def, runs }]
  for (const concurrency of levels) {
    const cells = open.map(({ def }) => ({ def, runs: [] }));
    for (let rep = 0; rep < reps; rep++) {
      // Interleaved, alternating direction: drift on a shared machine hits every pool alike.
      const order = rep % 2 === 0 ? open.map((_, i) => i) : open.map((_, i) => open.length - 1 - i);
      for (const i of order) {
        const { pool } = open[i];
        await pool.open(); // e.g. pg.Pool drops clients idle for 10 s while the other pools run
        await closedLoop(pool, concurrency, cfg.warmSeconds);
        gc();
        cells[i].runs.push(await closedLoop(pool, concurrency, cfg.seconds));
      }
    }
    results.set(concurrency, cells);
    console.log(`\n## ${concurrency} concurrent caller${concurrency > 1 ? 's' : ''}\n`);
    console.log(cellTable(cells, baseline, baseLabel));
  }
  return results;
}

/** On SIGINT/SIGTERM: stop the server, then exit 130. `interrupted()` tells main()'s error handler not to report. */
export function stopOnSignal(server) {
  let interrupted = false;
  const onSignal = (signal) => {
    interrupted = true;
    console.error(`\n${signal}: stopping the server...`);
    server.stop().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  return { interrupted: () => interrupted };
}

/** The header lines about the runtime and the machine. */
export function machineLines() {
  return [
    `- node ${process.version} (V8 ${process.versions.v8}), ${process.platform}/${process.arch}`,
    `- CPU: ${os.cpus()[0]?.model ?? 'unknown'} × ${os.availableParallelism()} (client and server share it), ` +
      `load average at start ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}`,
  ];
}

/** The header line about the cells. */
export const cellLine = (cfg, reps) =>
  `- ${cfg.seconds} s per cell after a ${cfg.warmSeconds} s warm-up, best of ${reps} interleaved run${reps > 1 ? 's' : ''}, ` +
  `gc between cells: ${globalThis.gc ? 'yes' : 'no (run node with --expose-gc)'}`;

/** A module of the built package (`dist/<path>`), with a hint when it is not built. */
export function importDist(path) {
  return import(new URL(`../dist/${path}`, import.meta.url).href).catch((err) => {
    throw new Error(`cannot load ../dist/${path}: run \`npm run build\` first (or skip it with --only=...)`, { cause: err });
  });
}

/** A lifeguard pool as a pool under test: `pool.query(sql)`; open() holds `max` leases at once, then releases them. */
export function lifeguardRunner(pool, sql, max) {
  return {
    query: () => pool.query(sql),
    async open() {
      const leases = await times(max, () => pool.acquire());
      await Promise.all(leases.map((lease) => lease.release()));
    },
    close: () => pool.close(),
  };
}
