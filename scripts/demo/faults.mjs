// The faults the demo injects, one after another. Each is real: it acts on the server or
// its sessions from outside the pool, never on the pool itself.

import { firstLine, sleep } from './server.mjs';

/**
 * @typedef {object} FaultContext
 * @property {import('./server.mjs').Server} server
 * @property {ReturnType<typeof import('./server.mjs').adminConnection>} admin
 * @property {string} app          the pool's application_name
 * @property {string | undefined} role  the pool's own role (embedded), for the squeeze
 * @property {import('./workload.mjs').Tables} tables
 * @property {number} max          pool max
 * @property {import('../../dist/adapters/postgres/index.js').PostgresPool} pool  the demo's pool (the spike sends its extra requests through it)
 * @property {(ms: number) => Promise<void>} hold  wait, cut short when the demo is interrupted
 * @property {import('./workload.mjs').Workload} workload
 * @property {() => void} removed  closes the fault's window before run() returns (run may go on observing the recovery)
 * @property {(line: string) => void} log  a line in the demo's log
 */

/**
 * @typedef {object} FaultDef
 * @property {string} name
 * @property {(holdMs: number, ctx: { max: number }) => string} label  what it does, for the log and the summary
 * @property {number} maxHoldMs  its hold is min(the run's hold, this)
 * @property {(ctx: FaultContext) => string | undefined} unavailable  why it cannot run here, if it cannot
 * @property {(ctx: FaultContext, holdMs: number) => Promise<string>} run  inject, hold, remove; returns a detail for the log
 * @property {(ctx: FaultContext) => Promise<string>} [prepare]  set-up before the window opens (under load); returns a detail for the log
 */

const SESSIONS = "application_name = $1 AND backend_type = 'client backend'";
/** The spike's requests: 10 ms on the server each, good when done within SPIKE_DEADLINE_MS of arriving. */
const SPIKE_SQL = 'SELECT pg_sleep(0.01)';
const SPIKE_DEADLINE_MS = 100;
/** Offered load during the spike, as a multiple of the pool's capacity for SPIKE_SQL (max × 100/s). */
const SPIKE_LOAD = 4;
/** The squeeze's role connection limit. */
const SQUEEZE_LIMIT = 3;
/** Failover: how long the primary stays dead before the standby is promoted (a failover manager deciding). */
const FAILOVER_DETECT_MS = 1000;
/** Failover: how long to watch for the first write on the new primary after the promotion. */
const FAILOVER_WATCH_MS = 15_000;

/**
 * pg_terminate_backend only signals: wait until the sessions have really gone (at most 2 s),
 * so the fault's window covers the moment they die.
 * @param {FaultContext['admin']} admin
 * @param {number[]} pids
 * @returns {Promise<number>} how long it took, in ms
 */
async function untilGone(admin, pids) {
  const started = performance.now();
  while (pids.length > 0 && performance.now() - started < 2000) {
    const { rows } = await admin.query('SELECT count(*)::int AS n FROM pg_stat_activity WHERE pid = ANY($1)', [pids]);
    if (rows[0]?.n === 0) break;
    await sleep(5);
  }
  return Math.round(performance.now() - started);
}

/** @param {number} ms */
const seconds = (ms) => `${(ms / 1000).toFixed(1)} s`;

/** @type {FaultDef[]} */
export const FAULTS = [
  {
    name: 'terminate',
    label: () => "pg_terminate_backend on every session of the pool (from an admin connection)",
    maxHoldMs: 0,
    unavailable: () => undefined,
    async run({ admin, app }) {
      // MATERIALIZED: the sessions are chosen first, so the planner cannot call pg_terminate_backend on other rows.
      const { rows } = await admin.query(`WITH s AS MATERIALIZED (SELECT pid FROM pg_stat_activity WHERE ${SESSIONS}) SELECT pid FROM s WHERE pg_terminate_backend(pid)`, [app]);
      const pids = rows.map((row) => row.pid);
      const goneMs = await untilGone(admin, pids);
      return `terminated ${pids.length} session(s), gone from the server after ${goneMs} ms`;
    },
  },
  {
    name: 'stall',
    label: (holdMs) => `statement stall: an admin transaction holds an ACCESS EXCLUSIVE lock on the accounts table for ${seconds(holdMs)}; every query blocks`,
    maxHoldMs: 1500,
    unavailable: () => undefined,
    async run({ admin, tables, hold }, holdMs) {
      const client = await admin.dedicated();
      // pg's per-query client-side bound (query_timeout; @types/pg does not declare it).
      const bounded = (/** @type {string} */ text) => client.query(/** @type {import('pg').QueryConfig} */ ({ text, query_timeout: 5000 }));
      try {
        await bounded('BEGIN');
        await bounded(`LOCK TABLE ${tables.account} IN ACCESS EXCLUSIVE MODE`);
        const lockedAt = performance.now();
        await hold(holdMs);
        await bounded('ROLLBACK');
        return `lock held ${Math.round(performance.now() - lockedAt)} ms`;
      } finally {
        await Promise.race([client.end().catch(() => {}), sleep(2000)]);
      }
    },
  },
  {
    name: 'restart',
    label: () => 'server restart: fast shutdown (every session terminated), then a start on the same port',
    maxHoldMs: 0,
    unavailable: ({ server }) => (server.controllable ? undefined : 'needs control of the server process (not with DATABASE_URL)'),
    async run({ server }) {
      const before = server.pid();
      const started = performance.now();
      await server.restart();
      return `down and back up in ${Math.round(performance.now() - started)} ms (postmaster pid ${before} -> ${server.pid()})`;
    },
  },
  {
    name: 'freeze',
    label: (holdMs) => `server frozen: SIGSTOP to the postmaster and every backend for ${seconds(holdMs)}, then SIGCONT (a stalled host or VM)`,
    maxHoldMs: 3000,
    unavailable: ({ server }) => (server.controllable ? undefined : 'needs control of the server process (not with DATABASE_URL)'),
    async run({ server, hold }, holdMs) {
      const frozen = server.freeze();
      const at = performance.now();
      try {
        await hold(holdMs);
      } finally {
        server.thaw();
      }
      return `${frozen} processes frozen for ${Math.round(performance.now() - at)} ms`;
    },
  },
  {
    name: 'spike',
    label: (holdMs, { max }) =>
      `traffic spike: ${SPIKE_LOAD}× the pool's capacity in extra requests (${SPIKE_LOAD * max * 100}/s of ${SPIKE_SQL}, ${SPIKE_DEADLINE_MS} ms deadline each, ` +
      `arriving whether or not earlier ones finished) for ${seconds(holdMs)}`,
    maxHoldMs: 3000,
    unavailable: () => undefined,
    async run({ pool, max, hold }, holdMs) {
      const capacity = max * 100;
      const rate = SPIKE_LOAD * capacity;
      const result = { offered: 0, good: 0, late: 0, shed: 0, timedOut: 0, other: 0 };
      /** @type {number[]} */
      const shedMs = [];
      /** @type {Promise<void>[]} */
      const settled = [];
      const one = async () => {
        const arrived = performance.now();
        try {
          await pool.withConnection((client) => client.query(SPIKE_SQL), { timeoutMs: SPIKE_DEADLINE_MS });
          if (performance.now() - arrived <= SPIKE_DEADLINE_MS) result.good++;
          else result.late++;
        } catch (error) {
          const code = /** @type {{ code?: unknown }} */ (error)?.code;
          if (code === 'POOL_OVERLOADED') {
            result.shed++;
            shedMs.push(performance.now() - arrived);
          } else if (code === 'POOL_ACQUIRE_TIMEOUT') result.timedOut++;
          else result.other++;
        }
      };
      const start = performance.now();
      const done = hold(holdMs).then(() => true);
      let stop = false;
      void done.then(() => (stop = true));
      // Open loop: every millisecond, the arrivals due by now.
      while (!stop) {
        const due = Math.floor(((performance.now() - start) / 1000) * rate);
        while (result.offered < due) {
          result.offered++;
          settled.push(one());
        }
        await sleep(1);
      }
      const spanS = (performance.now() - start) / 1000;
      await Promise.all(settled);
      shedMs.sort((a, b) => a - b);
      const p50 = shedMs.length === 0 ? '-' : `${Math.round(shedMs[Math.floor(shedMs.length / 2)])} ms`;
      const goodput = result.good / spanS;
      return (
        `${result.offered} requests in ${spanS.toFixed(1)} s (${Math.round(result.offered / spanS)}/s, capacity ${capacity}/s): ` +
        `goodput ${Math.round(goodput)}/s = ${Math.round((100 * goodput) / capacity)} % of capacity (${result.good} done within ${SPIKE_DEADLINE_MS} ms), ` +
        `${result.late} late, ${result.shed} shed fast (PoolOverloadedError, p50 ${p50}), ${result.timedOut} timed out, ${result.other} other errors`
      );
    },
  },
  {
    name: 'squeeze',
    label: (holdMs, { max }) =>
      `connection-limit squeeze: the pool's role limited to ${SQUEEZE_LIMIT} connections for ${seconds(holdMs)}; ` +
      `its sessions beyond ${SQUEEZE_LIMIT} (up to ${Math.max(0, max - SQUEEZE_LIMIT)}) terminated, and its creates refused with 53300`,
    maxHoldMs: 3000,
    unavailable: ({ role }) => (role !== undefined ? undefined : 'needs a role of its own for the pool (not with DATABASE_URL)'),
    async run({ admin, app, role, hold }, holdMs) {
      await admin.query(`ALTER ROLE ${role} CONNECTION LIMIT ${SQUEEZE_LIMIT}`);
      try {
        const { rows } = await admin.query(
          `WITH extra AS MATERIALIZED (SELECT pid FROM pg_stat_activity WHERE ${SESSIONS} ORDER BY backend_start DESC OFFSET ${SQUEEZE_LIMIT})
           SELECT pid FROM extra WHERE pg_terminate_backend(pid)`,
          [app],
        );
        await hold(holdMs);
        return `${rows.length} session(s) terminated, limit ${SQUEEZE_LIMIT} held for ${seconds(holdMs)}`;
      } finally {
        await admin.query(`ALTER ROLE ${role} CONNECTION LIMIT -1`).catch((error) => {
          throw new Error(`could not lift the connection limit: ${firstLine(error)}`);
        });
      }
    },
  },
  {
    name: 'failover',
    label: (holdMs) =>
      `failover: the primary crashes (SIGKILL to its postmaster and every backend), ${seconds(holdMs)} later the synchronous standby is promoted ` +
      `(pg_promote); the pool lists both hosts with targetSessionAttrs 'read-write'`,
    maxHoldMs: FAILOVER_DETECT_MS,
    unavailable: ({ server }) => (server.controllable ? undefined : 'needs control of the server process (not with DATABASE_URL)'),
    async prepare({ server, log }) {
      const at = performance.now();
      const { pid } = await server.startStandby(() => {});
      const ms = Math.round(performance.now() - at);
      log(`  standby started on 127.0.0.1:${server.standbyPort} (standby postmaster pid ${pid}) from a base backup taken under load, streaming synchronously, in ${ms} ms`);
      return `standby on port ${server.standbyPort}, up in ${ms} ms`;
    },
    async run({ server, workload, hold, removed }, holdMs) {
      const crashAt = performance.now();
      const killed = server.crash();
      await hold(holdMs);
      // Nothing can commit on the standby before pg_promote is called: the first acknowledged
      // transfer from here on is on the new primary.
      const firstCommit = workload.nextCommit();
      const promoteAt = performance.now();
      const promoteMs = await server.promote();
      removed();
      const at = await Promise.race([firstCommit, hold(FAILOVER_WATCH_MS).then(() => undefined)]);
      const timeline =
        `primary killed (${killed} processes); standby promoted ${Math.round(promoteAt - crashAt)} ms later, pg_promote took ${Math.round(promoteMs)} ms; `;
      if (at === undefined) return `${timeline}no transfer committed within ${seconds(FAILOVER_WATCH_MS)} of the promotion`;
      // pg_promote(wait) polls for the end of recovery, so a write can land before it returns.
      return (
        `${timeline}first transfer committed on the new primary ${Math.round(at - promoteAt)} ms after pg_promote was called: ` +
        `writes were out for ${Math.round(at - crashAt)} ms from the crash`
      );
    },
  },
];
