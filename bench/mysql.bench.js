// `SELECT 1` round trips through lifeguard (createMysqlPool().query) vs mysql2's own promise pool, against one MariaDB/MySQL.
// Usage: npm run bench:mysql
//        npm run build && node [--expose-gc] bench/mysql.bench.js [--quick] [--only=lifeguard,mysql2] [--concurrency=1,16,256] [--reps=2]
// The server is a private mariadbd (temp data dir, free port, deleted at the end; bench/mysql-server.js) unless MYSQL_URL is set.
import crypto from 'node:crypto';
import os from 'node:os';
import mysql from 'mysql2/promise';
import { cellConfig, cellLine, fmtRatio, importDist, lifeguardRunner, machineLines, parseArgs, pkgVersion, runLevels, stopOnSignal, table, times } from './closed-loop.js';
import { startMysqlServer } from './mysql-server.js';

const MAX = 10;
const SQL = 'SELECT 1';
const CONCURRENCY = [1, 16, 256];
const BASELINE = 'mysql2';

// ---------------------------------------------------------------------------------------------
// Pools under test: { name, label, setup(url) -> { query(): Promise, open(): Promise, close(): Promise } }.
// open() holds all MAX connections at once and gives them back: every connection exists before timing.

const POOLS = [
  {
    name: 'lifeguard',
    label: 'lifeguard (createMysqlPool)',
    async setup(url) {
      const { createMysqlPool } = await importDist('adapters/mysql/index.js');
      return lifeguardRunner(createMysqlPool({ uri: url, max: MAX }), SQL, MAX);
    },
  },
  {
    name: 'mysql2',
    label: 'mysql2 createPool',
    setup(url) {
      const pool = mysql.createPool({ uri: url, connectionLimit: MAX });
      return {
        query: () => pool.query(SQL),
        async open() {
          const connections = await times(MAX, () => pool.getConnection());
          for (const connection of connections) connection.release();
        },
        close: () => pool.end(),
      };
    },
  },
];

/**
 * One MySQL user per pool, so PROCESSLIST counts each pool's connections (the header's check);
 * on a server where the URL's account may not create users, every pool shares that account.
 */
async function accounts(admin, serverUrl, names) {
  const base = new URL(serverUrl);
  const database = decodeURIComponent(base.pathname.slice(1));
  const out = new Map();
  for (const name of names) {
    const user = `lgbench_${name.replace(/[^a-z0-9]/gi, '')}_${crypto.randomBytes(2).toString('hex')}`;
    const password = crypto.randomBytes(12).toString('hex');
    try {
      await admin.query('CREATE USER ?@? IDENTIFIED BY ?', [user, '%', password]);
      await admin.query(`GRANT ALL ON \`${database.replace(/`/g, '``')}\`.* TO ?@?`, [user, '%']);
    } catch {
      out.set(name, { url: serverUrl, user: undefined });
      continue;
    }
    const u = new URL(serverUrl);
    u.username = user;
    u.password = password;
    out.set(name, { url: u.href, user });
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Main

let signals;

async function main() {
  const { quick, only, concurrency: levels, reps } = parseArgs(process.argv.slice(2), POOLS.map((p) => p.name), CONCURRENCY);
  const defs = POOLS.filter((p) => !only || only.includes(p.name));
  const cfg = cellConfig(quick);

  const server = await startMysqlServer();
  signals = stopOnSignal(server);

  const open = [];
  let admin;
  try {
    admin = await mysql.createConnection({ uri: server.url });
    admin.on('error', () => {});
    const [[{ version }]] = await admin.query('SELECT VERSION() AS version');
    const byPool = await accounts(admin, server.url, defs.map((d) => d.name));

    for (const def of defs) open.push({ def, pool: await def.setup(byPool.get(def.name).url) });
    await Promise.all(open.map(({ pool }) => pool.open()));
    const [rows] = await admin.query('SELECT USER AS user, COUNT(*) AS n FROM information_schema.PROCESSLIST GROUP BY USER');
    const perUser = Object.fromEntries(rows.map((r) => [r.user, Number(r.n)]));
    const connections = Object.fromEntries(defs.map((d) => [d.name, byPool.get(d.name).user === undefined ? undefined : (perUser[byPool.get(d.name).user] ?? 0)]));

    console.log(`# MySQL benchmark: ${SQL} round trips${quick ? ' (--quick)' : ''}\n`);
    for (const line of machineLines()) console.log(line);
    console.log(`- ${version}, ${server.where}`);
    console.log(`- mysql2 ${pkgVersion('mysql2')}; both pools use mysql2 connections and its text protocol (\`query\`)`);
    console.log(`- max ${MAX} per pool (mysql2: connectionLimit), other options default; connections after warm-up: ` +
      defs.map((d) => `${d.name} ${connections[d.name] ?? '?'}`).join(', '));
    console.log(cellLine(cfg, reps));
    const short = defs.filter((d) => connections[d.name] !== undefined && connections[d.name] !== MAX);
    if (short.length) console.log(`- WARNING: expected ${MAX} connections for ${short.map((d) => d.name).join(', ')}`);

    const results = await runLevels(open, levels, reps, cfg, BASELINE, 'mysql2');

    if (defs.some((d) => d.name === 'lifeguard') && defs.some((d) => d.name === BASELINE)) {
      console.log('\n## lifeguard ÷ mysql2 (best runs)\n');
      const rowsOut = levels.map((c) => {
        const cells = results.get(c);
        const best = (name) => cells.find((x) => x.def.name === name).runs.reduce((a, b) => (b.rate > a.rate ? b : a));
        const l = best('lifeguard');
        const b = best(BASELINE);
        return [c, fmtRatio(l.rate / b.rate), fmtRatio(l.p50 / b.p50), fmtRatio(l.p99 / b.p99), fmtRatio(l.cpuUs / b.cpuUs)];
      });
      console.log(table(['callers', 'q/s', 'p50', 'p99', 'CPU µs/query'], rowsOut));
    }
    console.log(`\nload average at end ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  } finally {
    await Promise.allSettled(open.map(({ pool }) => pool.close()));
    admin?.destroy();
    await server.stop();
  }
}

main().then(
  // Everything is closed, so the process exits by itself.
  () => {},
  (err) => {
    if (signals?.interrupted()) return; // the signal handler stops the server and exits
    console.error(err);
    process.exitCode = 1;
  },
);
