// A private MariaDB server for a test: Debian's `mariadbd` (scripts/ci/mariadb-install.sh),
// its data directory initialised by `mariadb-install-db` in a temporary directory, run in the
// foreground on a free 127.0.0.1 port with its own socket path inside that directory (so
// nothing collides with another instance or a system server). Real authentication (no
// --skip-grant-tables): every root account gets a random password, used over TCP. When the
// tests run as root the server runs as the `mysql` user (created by the package), through
// `setpriv`, which also asks the kernel to SIGKILL it if the process that started it dies,
// so a crashed test run leaves no server behind.
//
//   const server = await startMariaDb({ maxConnections: 50 });
//   await server.admin('SELECT 1');
//   await server.restart();   // clean shutdown, then start again: same port, same data
//   await server.teardown();  // stop (SIGKILL if a clean shutdown takes too long) + rm -rf
//
// Every step is bounded in time; a failure names the step and ends with the server log tail.
// The data directory is a copy of a template that mariadb-install-db made once per machine
// (<tmpdir>/lifeguard-mariadb-template-<key>, ~35 MB, kept as a cache; a start takes ~0.3 s
// instead of ~1.3 s); LIFEGUARD_MARIADB_TEMPLATE=0 runs mariadb-install-db for every start.
// Binaries: MARIADB_BIN_DIR (a directory holding mariadbd and mariadb-install-db) overrides
// the search of PATH, /usr/sbin and /usr/bin (set it to an empty directory to simulate a
// machine without MariaDB).
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { accessSync, constants, existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { chmod, chown, mkdir, mkdtemp, rename, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { promisify } from 'node:util';
import mysql from 'mysql2/promise';
import { firstLine, freePort, withTimeout } from './wait.js';

export { freePort };

const execFileAsync = promisify(execFile);

// ------------------------------------------------------------------ binaries

export interface MariaDbBinaries {
  readonly mariadbd: string;
  readonly installDb: string;
  /** util-linux's setpriv, when present (needed to run as the mysql user when we are root). */
  readonly setpriv: string | undefined;
}

/** Where mariadbd and mariadb-install-db are, or undefined if either is missing. */
export function mariadbBinaries(): MariaDbBinaries | undefined {
  const override = process.env.MARIADB_BIN_DIR;
  const dirs = override !== undefined ? [override] : [...(process.env.PATH ?? '').split(delimiter).filter(Boolean), '/usr/sbin', '/usr/bin', '/usr/local/sbin', '/usr/local/bin'];
  const find = (...names: string[]): string | undefined => {
    for (const name of names)
      for (const dir of dirs) {
        const path = join(dir, name);
        try {
          accessSync(path, constants.X_OK);
          return path;
        } catch {
          // not here
        }
      }
    return undefined;
  };
  const mariadbd = find('mariadbd', 'mysqld');
  const installDb = find('mariadb-install-db', 'mysql_install_db');
  if (mariadbd === undefined || installDb === undefined) return undefined;
  const setpriv = ['/usr/bin/setpriv', '/bin/setpriv'].find((path) => {
    try {
      accessSync(path, constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
  return { mariadbd, installDb, setpriv };
}

export const MARIADB_INSTALL_HINT =
  'install the MariaDB server (as root: scripts/ci/mariadb-install.sh, or apt-get install mariadb-server mariadb-client), ' +
  'or set LIFEGUARD_TEST_MYSQL=skip to skip the MySQL/MariaDB tests explicitly';

// ------------------------------------------------------------------ the handle

export interface MariaDbOptions {
  /** max_connections (default 200). */
  readonly maxConnections?: number;
  /** The database created at start (default `lifeguard`). */
  readonly database?: string;
  /** Extra server options, e.g. `{ wait_timeout: 30 }` (passed as --wait-timeout=30). */
  readonly settings?: Readonly<Record<string, string | number>>;
  /** Bound on each start, ms (default 30 000). */
  readonly startTimeoutMs?: number;
}

export interface MariaDbFields {
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly password: string;
  readonly database: string;
}

export interface SessionMarker {
  readonly user?: string;
  readonly db?: string;
  readonly info?: string;
}

export interface MariaDb extends MariaDbFields {
  /** `SELECT VERSION()`, e.g. `10.11.19-MariaDB-0+deb12u1`. */
  readonly version: string;
  /** `mysql://root:password@127.0.0.1:port/database`. */
  readonly url: string;
  /** The temporary directory holding the data directory, socket and tmpdir (removed by teardown). */
  readonly dir: string;
  /** The server's process id while it runs (undefined when stopped). */
  readonly pid: number | undefined;
  /** A query on the shared admin connection, which reconnects after a restart or a kill. */
  admin<T = unknown>(sql: string, params?: unknown[]): Promise<T>;
  /** Clean shutdown (SIGTERM, mariadbd's normal shutdown), then start again on the same port with the same data. */
  restart(): Promise<void>;
  /** Clean shutdown; waits until the server has exited (SIGKILL after the timeout). */
  stop(): Promise<void>;
  start(): Promise<void>;
  /** SIGKILL: a crash; the next start() runs InnoDB crash recovery. */
  kill(): Promise<void>;
  /** SIGSTOP / SIGCONT: the server is frozen (connections hang, nothing is refused). */
  pause(): Promise<void>;
  unpause(): Promise<void>;
  /**
   * Sessions in information_schema.PROCESSLIST (the admin connection itself not counted):
   * of a user, or those matching a marker: `{ db }` (their current database) or `{ info }`
   * (a substring of the statement they run, e.g. a comment the test put in it).
   */
  connectionsOf(who: string | SessionMarker): Promise<number>;
  /** KILL CONNECTION id. */
  killConnection(id: number): Promise<void>;
  /** KILL QUERY id. */
  killQuery(id: number): Promise<void>;
  /** SET GLOBAL name = value. */
  setGlobal(name: string, value: string | number | boolean): Promise<void>;
  /** CREATE USER name@'%' IDENTIFIED BY password, then each grant, e.g. `ALL ON db.*`. */
  createUser(name: string, password: string, grants?: readonly string[]): Promise<void>;
  /** The last lines the server wrote to its log. */
  logTail(lines?: number): string;
  /** Stop the server and delete its directory; idempotent. */
  teardown(): Promise<void>;
}

const HOST = '127.0.0.1';
const STOP_TIMEOUT_MS = 20_000;

/** Test-friendly server settings: small buffers, no durability flushes, nothing a test observes. */
export function serverSettings(options: MariaDbOptions = {}): Record<string, string | number> {
  return {
    'max-connections': options.maxConnections ?? 200,
    'innodb-buffer-pool-size': '32M',
    'innodb-log-file-size': '16M',
    'innodb-log-buffer-size': '4M',
    'innodb-flush-log-at-trx-commit': 2, // written at each commit, fsynced each second: a mariadbd crash loses nothing
    'innodb-doublewrite': 0,
    'key-buffer-size': '1M',
    'performance-schema': 'OFF',
    'skip-name-resolve': 'ON',
    'character-set-server': 'utf8mb4',
    'collation-server': 'utf8mb4_general_ci',
    ...Object.fromEntries(Object.entries(options.settings ?? {}).map(([k, v]) => [k.replace(/_/g, '-'), v])),
  };
}

/** Start a private MariaDB; see the header. Throws (with the log tail) if it does not come up. */
export async function startMariaDb(options: MariaDbOptions = {}): Promise<MariaDb> {
  const bins = mariadbBinaries();
  if (bins === undefined) {
    throw new Error(`mariadbd / mariadb-install-db not found (${process.env.MARIADB_BIN_DIR !== undefined ? `MARIADB_BIN_DIR=${process.env.MARIADB_BIN_DIR}` : 'PATH, /usr/sbin, /usr/bin'}): ${MARIADB_INSTALL_HINT}`);
  }
  const startTimeoutMs = options.startTimeoutMs ?? 30_000;
  const database = options.database ?? 'lifeguard';
  const password = randomBytes(12).toString('hex');
  const runAs = process.getuid?.() === 0 ? await serverUser() : undefined;
  if (runAs !== undefined && bins.setpriv === undefined) throw new Error('MariaDB: running as root needs setpriv (util-linux) to start mariadbd as the mysql user');
  const dir = await mkdtemp(join(tmpdir(), 'lifeguard-mariadb-'));
  const dataDir = join(dir, 'data');
  const socket = join(dir, 'mysqld.sock');
  const settings = Object.entries(serverSettings(options)).map(([k, v]) => `--${k}=${v}`);
  const logs: string[] = [];
  const log = (chunk: Buffer | string): void => {
    logs.push(...String(chunk).split('\n').filter(Boolean));
    if (logs.length > 400) logs.splice(0, logs.length - 400);
  };
  const logTail = (lines = 25): string => logs.slice(-lines).join('\n');
  const failure = (what: string, cause?: unknown): Error =>
    new Error(`MariaDB (${dir}): ${what}${cause === undefined ? '' : `: ${firstLine(cause)}`}\n--- server log (last lines) ---\n${logTail()}`, { cause });

  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  let port = 0;
  let paused = false;
  let torn = false;

  const fields = (): MariaDbFields => ({ host: HOST, port, user: 'root', password, database });
  const isRunning = (): boolean => child !== undefined && child.exitCode === null && child.signalCode === null;

  const launch = async (p: number): Promise<void> => {
    const args = ['--no-defaults', `--datadir=${dataDir}`, `--socket=${socket}`, `--pid-file=${join(dir, 'mariadbd.pid')}`, `--tmpdir=${join(dir, 'tmp')}`, `--bind-address=${HOST}`, `--port=${p}`, ...settings];
    // setpriv (util-linux): the non-root user when we are root, and SIGKILL for the server if
    // the process that started it dies (a crashed test worker leaves no server behind).
    const setpriv = [...(runAs !== undefined ? ['--reuid', runAs.uid, '--regid', runAs.gid, '--init-groups'] : []), '--pdeathsig', 'KILL', '--', bins.mariadbd];
    const command = bins.setpriv ?? bins.mariadbd;
    const argv = bins.setpriv !== undefined ? [...setpriv, ...args] : args;
    log(`--- starting mariadbd on ${HOST}:${p}`);
    const proc = spawn(command, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
    child = proc;
    proc.stdout.on('data', log);
    proc.stderr.on('data', log);
    exited = new Promise((resolve) => {
      proc.once('exit', (code, signal) => {
        log(`--- mariadbd exited (${signal ?? `code ${code}`})`);
        resolve();
      });
      proc.once('error', (error) => {
        log(`--- could not run ${command}: ${error.message}`);
        resolve();
      });
    });
    const ready = await Promise.race([
      new Promise<'ready'>((resolve) => {
        const onData = (): void => {
          // The log lines so far (a line may arrive in two chunks).
          if (/ready for connections/.test(logTail(3))) {
            proc.stderr.off('data', onData);
            resolve('ready');
          }
        };
        proc.stderr.on('data', onData);
      }),
      exited.then(() => 'exited' as const),
      sleepMs(startTimeoutMs).then(() => 'timeout' as const),
    ]);
    if (ready === 'exited') throw failure(`mariadbd exited during startup on port ${p}`);
    if (ready === 'timeout') {
      await hardStop();
      throw failure(`mariadbd was not ready for connections within ${startTimeoutMs} ms`);
    }
  };

  /** SIGKILL (after SIGCONT if frozen) and wait for the exit. */
  const hardStop = async (): Promise<void> => {
    if (!isRunning()) return;
    child!.kill('SIGCONT');
    paused = false;
    child!.kill('SIGKILL');
    await Promise.race([exited, sleepMs(5000)]);
  };

  const cleanStop = async (): Promise<void> => {
    dropAdmin();
    if (!isRunning()) return;
    if (paused) {
      child!.kill('SIGCONT');
      paused = false;
    }
    child!.kill('SIGTERM');
    const done = await Promise.race([exited.then(() => true), sleepMs(STOP_TIMEOUT_MS).then(() => false)]);
    if (!done) {
      log(`--- no clean shutdown within ${STOP_TIMEOUT_MS} ms: SIGKILL`);
      await hardStop();
    }
  };

  const adminSession = reconnectingAdmin(() => withTimeout(mysql.createConnection({ ...fields(), connectTimeout: 10_000 }), 15_000, 'the admin connection'));
  const admin = adminSession.query;
  const dropAdmin = adminSession.drop;

  const start = async (): Promise<void> => {
    if (torn) throw new Error('MariaDB: start() after teardown()');
    if (isRunning()) return;
    await launch(port);
  };

  const teardown = async (): Promise<void> => {
    if (torn) return;
    torn = true;
    try {
      await cleanStop();
    } finally {
      await rm(dir, { recursive: true, force: true, maxRetries: 3 });
    }
  };

  try {
    if (runAs !== undefined) {
      await chmod(dir, 0o755);
    }
    await mkdir(join(dir, 'tmp'));
    if (runAs !== undefined) await chown(join(dir, 'tmp'), Number(runAs.uid), Number(runAs.gid));
    if (runAs !== undefined) await chown(dir, Number(runAs.uid), Number(runAs.gid));
    // mariadb-install-db (system tables only: no test db, no anonymous users; root@localhost
    // and root@127.0.0.1 etc. with an empty password, set below over the socket), or a copy
    // of a data directory it made before (see dataDirTemplate).
    const installArgs = ['--auth-root-authentication-method=normal', '--skip-test-db', '--skip-name-resolve', ...settings.filter((s) => s.startsWith('--innodb'))];
    const install = async (target: string, scratch: string): Promise<void> => {
      // Its own tmpdir: bootstraps running at once in a shared /tmp collide on temporary table names.
      const result = await runBounded(bins.installDb, ['--no-defaults', `--datadir=${target}`, `--tmpdir=${scratch}`, ...(runAs !== undefined ? [`--user=${runAs.name}`] : []), ...installArgs], startTimeoutMs);
      if (result.failed !== undefined) {
        log(result.output);
        throw failure(`mariadb-install-db ${result.failed}`);
      }
    };
    const template = process.env.LIFEGUARD_MARIADB_TEMPLATE === '0' ? undefined : await dataDirTemplate(bins, installArgs, runAs, install).catch((error: unknown) => {
      log(`--- no data directory template (${firstLine(error)}); running mariadb-install-db`);
      return undefined;
    });
    const copied = template !== undefined && (await runBounded('cp', ['-a', '--', template, dataDir], startTimeoutMs)).failed === undefined;
    if (!copied) {
      await rm(dataDir, { recursive: true, force: true });
      await install(dataDir, join(dir, 'tmp'));
    }

    // A free port; one taken between the check and the bind is retried with another.
    for (let attempt = 1; ; attempt++) {
      port = await freePort();
      try {
        await launch(port);
        break;
      } catch (error) {
        if (attempt < 3 && /Bind on TCP\/IP port|Address already in use/i.test(logTail(40))) continue;
        throw error;
      }
    }

    // Passwords for every root account, over the socket (the only way in before this).
    const socketConn = await withTimeout(mysql.createConnection({ socketPath: socket, user: 'root', connectTimeout: 10_000 }), 15_000, 'the first connection over the socket').catch((error: unknown) => {
      throw failure('could not connect over the socket to set the root password', error);
    });
    try {
      // root@localhost (the socket), root@127.0.0.1 and root@::1 keep ALL with the password;
      // root@<hostname> cannot match anything with skip-name-resolve and is dropped.
      const [roots] = await socketConn.query<mysql.RowDataPacket[]>("SELECT Host AS host FROM mysql.user WHERE User = 'root'");
      for (const { host } of roots) {
        if (!['localhost', HOST, '::1'].includes(String(host))) await socketConn.query('DROP USER ?@?', ['root', String(host)]);
      }
      await socketConn.query('CREATE USER IF NOT EXISTS ?@? IDENTIFIED BY ?', ['root', HOST, password]);
      await socketConn.query('GRANT ALL ON *.* TO ?@? WITH GRANT OPTION', ['root', HOST]);
      for (const host of ['::1', HOST, 'localhost']) await socketConn.query('ALTER USER IF EXISTS ?@? IDENTIFIED BY ?', ['root', host, password]);
      await socketConn.query(`CREATE DATABASE IF NOT EXISTS ${quoteIdent(database)}`);
    } finally {
      await socketConn.end().catch(() => socketConn.destroy());
    }
  } catch (error) {
    await hardStop().catch(() => {});
    await rm(dir, { recursive: true, force: true, maxRetries: 3 }).catch(() => {});
    throw error;
  }

  let version: string;
  try {
    const rows = await admin<{ v: string }[]>('SELECT VERSION() AS v');
    version = rows[0]!.v;
  } catch (error) {
    const wrapped = failure('the admin connection over TCP failed', error);
    await teardown().catch(() => {});
    throw wrapped;
  }

  const handle: MariaDb = {
    host: HOST,
    get port() {
      return port;
    },
    user: 'root',
    password,
    database,
    version,
    dir,
    get url() {
      return `mysql://root:${encodeURIComponent(password)}@${HOST}:${port}/${encodeURIComponent(database)}`;
    },
    get pid() {
      return isRunning() ? child!.pid : undefined;
    },
    admin,
    async restart() {
      await cleanStop();
      await start();
    },
    stop: cleanStop,
    start,
    async kill() {
      dropAdmin();
      await hardStop();
    },
    async pause() {
      if (!isRunning()) throw new Error('MariaDB: pause() while the server is not running');
      const pid = child!.pid!;
      child!.kill('SIGSTOP');
      paused = true;
      // SIGSTOP returns before every thread has stopped (a thread busy in a system call stops
      // when it leaves it) and a request sent meanwhile may still be answered; wait, like
      // `docker pause` waits for its freezer, until all of them show state T.
      const deadline = Date.now() + 5000;
      while (!allThreadsStopped(pid)) {
        if (Date.now() > deadline) throw failure(`mariadbd (pid ${pid}) did not stop within 5 s of SIGSTOP`);
        await sleepMs(2);
      }
    },
    async unpause() {
      if (isRunning()) child!.kill('SIGCONT');
      paused = false;
    },
    async connectionsOf(who: string | SessionMarker) {
      const marker = typeof who === 'string' ? { user: who } : who;
      const where = ['ID <> CONNECTION_ID()'];
      const params: unknown[] = [];
      const match = (condition: string, value: string | undefined): void => {
        if (value === undefined) return;
        where.push(condition);
        params.push(value);
      };
      match('USER = ?', marker.user);
      match('DB = ?', marker.db);
      match('INSTR(INFO, ?) > 0', marker.info);
      if (params.length === 0) throw new Error('connectionsOf(): give a user or a marker ({ user, db, info })');
      const rows = await admin<{ n: number }[]>(`SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE ${where.join(' AND ')}`, params);
      return Number(rows[0]!.n);
    },
    async killConnection(id: number) {
      await admin(`KILL CONNECTION ${Number(id)}`);
    },
    async killQuery(id: number) {
      await admin(`KILL QUERY ${Number(id)}`);
    },
    async setGlobal(name: string, value: string | number | boolean) {
      if (!/^[a-z_][a-z0-9_]*$/i.test(name)) throw new Error(`setGlobal: not a variable name: ${name}`);
      await admin(`SET GLOBAL ${name} = ?`, [value]);
    },
    async createUser(name: string, userPassword: string, grants: readonly string[] = []) {
      await admin('CREATE USER ?@? IDENTIFIED BY ?', [name, '%', userPassword]);
      for (const grant of grants) await admin(`GRANT ${grant} TO ?@?`, [name, '%']);
    },
    logTail,
    teardown,
  };
  return handle;
}

// ------------------------------------------------------------------ helpers

/**
 * A data directory freshly made by mariadb-install-db, shared by every start on this machine
 * (copying it takes ~70 ms, mariadb-install-db ~1 s): `<tmpdir>/lifeguard-mariadb-template-<key>`,
 * the key covering the binaries (path, size, mtime), the install options and the owner. Made once,
 * in a scratch directory renamed into place, so a concurrent start never sees half of one; a
 * start that loses the race uses the winner's. About 35 MB; LIFEGUARD_MARIADB_TEMPLATE=0 turns it off.
 */
async function dataDirTemplate(
  bins: MariaDbBinaries,
  installArgs: readonly string[],
  runAs: ServerUser | undefined,
  install: (target: string, scratch: string) => Promise<void>,
): Promise<string> {
  const identity = [bins.mariadbd, bins.installDb].map((path) => {
    const st = statSync(path);
    return `${path}:${st.size}:${st.mtimeMs}`;
  });
  const key = createHash('sha256')
    .update(JSON.stringify([identity, installArgs, runAs?.uid ?? process.getuid?.()]))
    .digest('hex')
    .slice(0, 16);
  const template = join(tmpdir(), `lifeguard-mariadb-template-${key}`);
  if (existsSync(join(template, 'mysql'))) return template;
  const scratch = await mkdtemp(join(tmpdir(), 'lifeguard-mariadb-template-build-'));
  try {
    if (runAs !== undefined) {
      await chmod(scratch, 0o755);
      await chown(scratch, Number(runAs.uid), Number(runAs.gid));
    }
    await mkdir(join(scratch, 'tmp'));
    if (runAs !== undefined) await chown(join(scratch, 'tmp'), Number(runAs.uid), Number(runAs.gid));
    await install(join(scratch, 'data'), join(scratch, 'tmp'));
    try {
      await rename(join(scratch, 'data'), template);
    } catch (error) {
      // Another start made it first (rename onto a non-empty directory fails): use theirs.
      if (!existsSync(join(template, 'mysql'))) throw error;
    }
    return template;
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}

/**
 * Run `command` in its own process group, killing the whole group (mariadb-install-db's
 * bootstrap server too) if it takes longer than `timeoutMs`. `failed` says how it failed.
 */
function runBounded(command: string, args: readonly string[], timeoutMs: number): Promise<{ output: string; failed?: string }> {
  return new Promise((resolve) => {
    const proc = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    let output = '';
    const collect = (chunk: Buffer): void => {
      output = (output + String(chunk)).slice(-64_000);
    };
    proc.stdout.on('data', collect);
    proc.stderr.on('data', collect);
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      try {
        process.kill(-proc.pid!, 'SIGKILL');
      } catch {
        // already gone
      }
    }, timeoutMs);
    proc.once('error', (error) => {
      clearTimeout(timer);
      resolve({ output, failed: `could not run: ${error.message}` });
    });
    proc.once('close', (code, signal) => {
      clearTimeout(timer);
      if (timedOut) resolve({ output, failed: `took longer than ${timeoutMs} ms (killed)` });
      else if (code !== 0) resolve({ output, failed: `failed (${signal ?? `exit code ${code}`})` });
      else resolve({ output });
    });
  });
}

/** Whether every thread of `pid` is stopped (state T or t in /proc/PID/task/TID/stat). */
function allThreadsStopped(pid: number): boolean {
  let tasks: string[];
  try {
    tasks = readdirSync(`/proc/${pid}/task`);
  } catch {
    return true; // gone
  }
  return tasks.every((tid) => {
    try {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      return /^[Tt]/.test(stat.slice(stat.lastIndexOf(')') + 2));
    } catch {
      return true; // the thread ended
    }
  });
}

/** A timer that does not keep the process alive (the bounds raced against a server's exit). */
function sleepMs(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}

/** A query function on one shared connection (made by `open`), replaced once when it has died (restart, kill, timeout). */
export function reconnectingAdmin(open: () => Promise<mysql.Connection>): {
  query<T = unknown>(sql: string, params?: unknown[]): Promise<T>;
  /** Close the shared connection now (the next query opens a new one). */
  drop(): void;
} {
  let conn: mysql.Connection | undefined;
  let dead = false;
  const drop = (): void => {
    const old = conn;
    conn = undefined;
    dead = false;
    old?.destroy();
  };
  const query = async <T = unknown>(sql: string, params?: unknown[]): Promise<T> => {
    for (let attempt = 1; ; attempt++) {
      try {
        if (conn === undefined || dead) {
          drop();
          const fresh = await open();
          // A restart or a KILL ends it; never let that crash the process.
          fresh.on('error', () => {
            if (conn === fresh) dead = true;
          });
          conn = fresh;
        }
        const [rows] = await withTimeout(conn.query(sql, params), 30_000, `admin query ${JSON.stringify(sql.slice(0, 60))}`);
        return rows as T;
      } catch (error) {
        // A dead connection is replaced once; SQL errors are the caller's.
        const fatal = dead || (error as { fatal?: boolean }).fatal === true || /took longer than|closed state|ECONNRESET|ECONNREFUSED/.test(String(error));
        if (!fatal || attempt >= 2) throw error;
        drop();
      }
    }
  };
  return { query, drop };
}

interface ServerUser {
  readonly name: string;
  readonly uid: string;
  readonly gid: string;
}

/** The non-root user the server runs as when we are root: `mysql` (from the package), created if missing. */
async function serverUser(): Promise<ServerUser> {
  const name = 'mysql';
  const ids = async (): Promise<ServerUser | undefined> => {
    try {
      const uid = (await execFileAsync('id', ['-u', name], { timeout: 5000 })).stdout.trim();
      const gid = (await execFileAsync('id', ['-g', name], { timeout: 5000 })).stdout.trim();
      return { name, uid, gid };
    } catch {
      return undefined;
    }
  };
  const existing = await ids();
  if (existing !== undefined) return existing;
  // Two files starting at once may race here; "already exists" is fine.
  await execFileAsync('groupadd', ['--system', name], { timeout: 10_000 }).catch(() => {});
  await execFileAsync('useradd', ['--system', '-g', name, '-d', '/nonexistent', '-s', '/usr/sbin/nologin', name], { timeout: 10_000 }).catch(() => {});
  const created = await ids();
  if (created === undefined) throw new Error('MariaDB runs as root here and no `mysql` user exists or could be created (groupadd/useradd failed)');
  return created;
}

/** `name` quoted as a MySQL identifier. */
export function quoteIdent(name: string): string {
  return `\`${name.replace(/`/g, '``')}\``;
}
