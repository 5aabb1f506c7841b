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
// Binaries: MARIADB_BIN_DIR (a directory holding mariadbd and mariadb-install-db) overrides
// the search of PATH, /usr/sbin and /usr/bin (set it to an empty directory to simulate a
// machine without MariaDB).
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { accessSync, constants } from 'node:fs';
import { chmod, chown, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { promisify } from 'node:util';
import mysql from 'mysql2/promise';

const execFileAsync = promisify(execFile);

// ------------------------------------------------------------------ binaries

export interface MariaDbBinaries {
  readonly mariadbd: string;
  readonly installDb: string;
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
  return mariadbd !== undefined && installDb !== undefined ? { mariadbd, installDb } : undefined;
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

export interface MariaDb extends MariaDbFields {
  /** `SELECT VERSION()`, e.g. `10.11.19-MariaDB-0+deb12u1`. */
  readonly version: string;
  /** `mysql://root:password@127.0.0.1:port/database`. */
  readonly url: string;
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
  /** Sessions in information_schema.PROCESSLIST of `user` (the admin connection itself not counted). */
  connectionsOf(user: string): Promise<number>;
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
  let adminConn: mysql.Connection | undefined;
  let adminDead = false;

  const isRunning = (): boolean => child !== undefined && child.exitCode === null && child.signalCode === null;

  const launch = async (p: number): Promise<void> => {
    const args = ['--no-defaults', `--datadir=${dataDir}`, `--socket=${socket}`, `--pid-file=${join(dir, 'mariadbd.pid')}`, `--tmpdir=${join(dir, 'tmp')}`, `--bind-address=${HOST}`, `--port=${p}`, ...settings];
    const command = runAs !== undefined ? 'setpriv' : bins.mariadbd;
    const argv = runAs !== undefined ? ['--reuid', runAs.uid, '--regid', runAs.gid, '--init-groups', '--pdeathsig', 'KILL', '--', bins.mariadbd, ...args] : args;
    log(`--- starting mariadbd on ${HOST}:${p}`);
    const proc = spawn(command, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
    child = proc;
    proc.stdout.on('data', log);
    proc.stderr.on('data', log);
    exited = new Promise((resolve) => proc.once('exit', (code, signal) => {
      log(`--- mariadbd exited (${signal ?? `code ${code}`})`);
      resolve();
    }));
    proc.once('error', (error) => log(`--- could not run ${command}: ${error.message}`));
    const ready = await Promise.race([
      new Promise<'ready'>((resolve) => {
        const onData = (chunk: Buffer): void => {
          if (/ready for connections/.test(String(chunk))) {
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

  const fields = (): MariaDbFields => ({ host: HOST, port, user: 'root', password, database });

  const connect = async (): Promise<mysql.Connection> => {
    const conn = await withTimeout(mysql.createConnection({ ...fields(), connectTimeout: 10_000 }), 15_000, 'the admin connection');
    conn.on('error', () => {
      adminDead = true;
    });
    return conn;
  };

  function dropAdmin(): void {
    const conn = adminConn;
    adminConn = undefined;
    adminDead = false;
    conn?.destroy();
  }

  const admin = async <T = unknown>(sql: string, params?: unknown[]): Promise<T> => {
    for (let attempt = 1; ; attempt++) {
      try {
        if (adminConn === undefined || adminDead) {
          dropAdmin();
          adminConn = await connect();
        }
        const [rows] = await withTimeout(adminConn.query(sql, params), 30_000, `admin query ${JSON.stringify(sql.slice(0, 60))}`);
        return rows as T;
      } catch (error) {
        // A dead connection (restart, kill, timeout) is replaced once; SQL errors are the caller's.
        const fatal = adminDead || (error as { fatal?: boolean }).fatal === true || /took longer than|closed state|ECONNRESET|ECONNREFUSED/.test(String(error));
        if (!fatal || attempt >= 2) throw error;
        dropAdmin();
      }
    }
  };

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
    // mariadb-install-db: system tables only (no test db, no anonymous users); root@localhost
    // and root@127.0.0.1 etc. with an empty password, set below over the socket.
    try {
      await execFileAsync(
        bins.installDb,
        ['--no-defaults', `--datadir=${dataDir}`, ...(runAs !== undefined ? [`--user=${runAs.name}`] : []), '--auth-root-authentication-method=normal', '--skip-test-db', '--skip-name-resolve', ...settings.filter((s) => s.startsWith('--innodb'))],
        { timeout: startTimeoutMs, killSignal: 'SIGKILL', maxBuffer: 4 << 20 },
      );
    } catch (error) {
      const e = error as { stdout?: string; stderr?: string };
      log(`${e.stdout ?? ''}\n${e.stderr ?? ''}`);
      throw failure('mariadb-install-db failed', error);
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
      child!.kill('SIGSTOP');
      paused = true;
    },
    async unpause() {
      if (isRunning()) child!.kill('SIGCONT');
      paused = false;
    },
    async connectionsOf(user: string) {
      const rows = await admin<{ n: number }[]>('SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE USER = ? AND ID <> CONNECTION_ID()', [user]);
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

function sleepMs(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} took longer than ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/** A TCP port nothing listens on right now. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, HOST, () => {
      const address = server.address();
      const p = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => (p > 0 ? resolve(p) : reject(new Error('could not find a free port'))));
    });
  });
}

function firstLine(value: unknown): string {
  const text = value instanceof Error ? value.message : String(value);
  return text.split('\n', 1)[0]!.slice(0, 300);
}
