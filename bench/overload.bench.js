// Goodput under overload: lifeguard (adaptive and fifo queue policies) vs pg-pool, tarn and
// generic-pool in one run. Fake resources, `max` 10; each request acquires with a 100 ms
// deadline, holds its resource 10 ms and releases it: capacity 1,000 requests/s. Arrivals are
// open-loop (they do not wait for earlier requests), at a multiple of capacity. A request is
// good when it finished within 100 ms of its arrival, late when it finished after that, failed
// when its acquire was refused (timeout, shed).
// With --postgres, the same shape on a real PostgreSQL (embedded, or DATABASE_URL): each
// request is `SELECT pg_sleep(0.01)` through the pool's query(), lifeguard against pg.Pool.
// With --mysql, on a real MariaDB/MySQL (a private mariadbd, or MYSQL_URL): each request is
// `SELECT SLEEP(0.01)` through query(), lifeguard against mysql2's own pool.
// Usage: npm run build && node bench/overload.bench.js [--postgres | --mysql] [--quick] [--loads=0.8,1.1,2,4] [--seconds=3]
import genericPool from 'generic-pool';
import PgPool from 'pg-pool';
import tarn from 'tarn';
import { EventEmitter } from 'node:events';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import mysql from 'mysql2/promise';
import pg from 'pg';
import { startMysqlServer } from './mysql-server.js';
import { startServer } from './pg-server.js';

const MAX = 10;
const HOLD_MS = 10;
const DEADLINE_MS = 100;
const CAPACITY = (MAX * 1000) / HOLD_MS;

class FakePgClient extends EventEmitter {
  _queryable = true;
  _ending = false;
  connect(cb) { process.nextTick(cb); }
  end(cb) { this._ending = true; this._queryable = false; if (cb) process.nextTick(cb); }
}

/** A pool of fake resources as a request runner: acquire, hold HOLD_MS, release. */
function holding({ acquire, release, close }) {
  return {
    async request() {
      const lease = await acquire();
      await sleep(HOLD_MS);
      await release(lease);
    },
    async warm() {
      const held = await Promise.all(Array.from({ length: MAX }, () => acquire()));
      for (const h of held) await release(h);
    },
    close,
  };
}

async function lifeguard(queuePolicy) {
  const { createPool } = await import('../dist/index.js');
  const pool = createPool({
    adapter: { create: async () => ({}), destroy: async () => {} },
    max: MAX,
    acquireTimeoutMs: DEADLINE_MS,
    queuePolicy,
    onError: () => {},
  });
  return holding({ acquire: () => pool.acquire(), release: (lease) => lease.release(), close: () => pool.close() });
}

/** What one request runs on a real server: HOLD_MS of server time. */
const SLEEP_SQL = { postgres: `SELECT pg_sleep(${HOLD_MS / 1000})`, mysql: `SELECT SLEEP(${HOLD_MS / 1000})` };

/** A database pool as a request runner: one query() of HOLD_MS on the server. */
function querying(pool, close, sql) {
  return {
    request: () => pool.query(sql),
    async warm() {
      await Promise.all(Array.from({ length: MAX }, () => pool.query('SELECT 1')));
    },
    close,
  };
}

const PG_POOLS = [
  ...['adaptive', 'fifo'].map((queuePolicy) => ({
    name: `lifeguard (${queuePolicy}${queuePolicy === 'adaptive' ? ', the default' : ''})`,
    async setup(url) {
      const { createPostgresPool } = await import('../dist/adapters/postgres/index.js');
      const pool = createPostgresPool({ connectionString: url, max: MAX, acquireTimeoutMs: DEADLINE_MS, queuePolicy, onError: () => {} });
      return querying(pool, () => pool.close(), SLEEP_SQL.postgres);
    },
  })),
  {
    name: 'pg.Pool',
    setup(url) {
      const pool = new pg.Pool({ connectionString: url, max: MAX, connectionTimeoutMillis: DEADLINE_MS });
      pool.on('error', () => {});
      return querying(pool, () => pool.end(), SLEEP_SQL.postgres);
    },
  },
];

const MYSQL_POOLS = [
  ...['adaptive', 'fifo'].map((queuePolicy) => ({
    name: `lifeguard (${queuePolicy}${queuePolicy === 'adaptive' ? ', the default' : ''})`,
    async setup(url) {
      const { createMysqlPool } = await import('../dist/adapters/mysql/index.js');
      const pool = createMysqlPool({ uri: url, max: MAX, acquireTimeoutMs: DEADLINE_MS, queuePolicy, onError: () => {} });
      return querying(pool, () => pool.close(), SLEEP_SQL.mysql);
    },
  })),
  {
    // mysql2's pool has no acquire deadline (connectTimeout bounds only new connections): its
    // callers wait in a FIFO queue (queueLimit 0: unbounded) for as long as it takes.
    name: 'mysql2 createPool',
    setup(url) {
      const pool = mysql.createPool({ uri: url, connectionLimit: MAX });
      return querying(pool, () => pool.end(), SLEEP_SQL.mysql);
    },
  },
];

const POOLS = [
  { name: 'lifeguard (adaptive, the default)', setup: () => lifeguard('adaptive') },
  { name: 'lifeguard (fifo)', setup: () => lifeguard('fifo') },
  {
    name: 'pg-pool',
    setup() {
      const pool = new PgPool({ max: MAX, Client: FakePgClient, connectionTimeoutMillis: DEADLINE_MS });
      return holding({ acquire: () => pool.connect(), release: (client) => client.release(), close: () => pool.end() });
    },
  },
  {
    name: 'tarn',
    setup() {
      const pool = new tarn.Pool({ create: async () => ({}), destroy: () => {}, min: 0, max: MAX, acquireTimeoutMillis: DEADLINE_MS });
      return holding({ acquire: () => pool.acquire().promise, release: (r) => pool.release(r), close: () => pool.destroy() });
    },
  },
  {
    name: 'generic-pool',
    setup() {
      const pool = genericPool.createPool({ create: async () => ({}), destroy: async () => {} }, { max: MAX, acquireTimeoutMillis: DEADLINE_MS });
      return holding({ acquire: () => pool.acquire(), release: (r) => pool.release(r), close: async () => { await pool.drain(); await pool.clear(); } });
    },
  },
];

/** Offer `load` × capacity for `seconds`; returns good/late/failed counts and good latencies. */
async function run(def, load, seconds, url) {
  const pool = await def.setup(url);
  // Fill the pool first: the measurement is about queueing, not about creating.
  await pool.warm();
  const rate = load * CAPACITY;
  const out = { offered: 0, good: 0, late: 0, failed: 0, failedFastMs: [], goodMs: [] };
  const settled = [];
  const start = performance.now();
  const one = async (arrivedAt) => {
    try {
      await pool.request();
      const took = performance.now() - arrivedAt;
      if (took <= DEADLINE_MS) {
        out.good++;
        out.goodMs.push(took);
      } else out.late++;
    } catch {
      out.failed++;
      out.failedFastMs.push(performance.now() - arrivedAt);
    }
  };
  // Open loop: every millisecond, issue the arrivals due by now.
  while (performance.now() - start < seconds * 1000) {
    const due = Math.floor(((performance.now() - start) / 1000) * rate);
    while (out.offered < due) {
      out.offered++;
      settled.push(one(performance.now()));
    }
    await sleep(1);
  }
  await Promise.all(settled);
  await pool.close();
  return out;
}

const pct = (n, d) => `${((100 * n) / d).toFixed(1)} %`;
const quantile = (xs, q) => {
  if (xs.length === 0) return NaN;
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)];
};

async function main() {
  const args = process.argv.slice(2);
  const quick = args.includes('--quick');
  const postgres = args.includes('--postgres');
  const mysqlServer = args.includes('--mysql');
  if (postgres && mysqlServer) throw new Error('--postgres and --mysql: one database at a time');
  const loadsArg = args.find((a) => a.startsWith('--loads='));
  const secondsArg = args.find((a) => a.startsWith('--seconds='));
  const loads = loadsArg ? loadsArg.slice(8).split(',').map(Number) : [0.8, 1.1, 2, 4];
  const seconds = secondsArg ? Number(secondsArg.slice(10)) : quick ? 1 : 3;
  for (const arg of args) {
    if (arg !== '--quick' && arg !== '--postgres' && arg !== '--mysql' && arg !== loadsArg && arg !== secondsArg) {
      throw new Error(`unknown argument ${arg} (expected --postgres or --mysql, --quick, --loads=a,b,..., --seconds=N)`);
    }
  }
  const server = postgres ? { ...(await startServer()), kind: 'PostgreSQL', sql: SLEEP_SQL.postgres } : mysqlServer ? { ...(await startMysqlServer()), kind: 'MySQL', sql: SLEEP_SQL.mysql } : undefined;
  try {
    await report(postgres ? PG_POOLS : mysqlServer ? MYSQL_POOLS : POOLS, loads, seconds, server);
  } finally {
    await server?.stop();
  }
}

async function report(pools, loads, seconds, server) {
  console.log(`# Goodput under overload${server ? ` (${server.kind})` : ''}\n`);
  console.log(`- node ${process.version}; max ${MAX}, ${server ? `each request \`${server.sql}\` on ${server.where}` : `hold ${HOLD_MS} ms`}, ` +
    `acquire deadline ${DEADLINE_MS} ms: capacity ${CAPACITY}/s nominal; ${seconds} s per run, open-loop arrivals`);
  console.log(`- good: finished within ${DEADLINE_MS} ms of arrival; goodput = good per second, as a share of capacity\n`);
  console.log('| load | pool | goodput (of capacity) | good | late | failed | failed: p50 ms to fail | good p50 / p99 ms |');
  console.log('| --- | --- | --- | --- | --- | --- | --- | --- |');
  for (const load of loads) {
    for (const def of pools) {
      globalThis.gc?.();
      const r = await run(def, load, seconds, server?.url);
      const goodput = r.good / seconds / CAPACITY;
      console.log(
        `| ${load}× | ${def.name} | ${(100 * goodput).toFixed(1)} % | ${pct(r.good, r.offered)} | ${pct(r.late, r.offered)} | ${pct(r.failed, r.offered)} | ` +
          `${r.failed ? quantile(r.failedFastMs, 0.5).toFixed(0) : '–'} | ${quantile(r.goodMs, 0.5).toFixed(1)} / ${quantile(r.goodMs, 0.99).toFixed(1)} |`,
      );
    }
  }
}

main().catch((error) => {
  console.error(error);
  process.exitCode = 1;
});
