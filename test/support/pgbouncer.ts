// A private PgBouncer in front of a test's PostgreSQL: Debian's `pgbouncer` binary, run in the
// foreground from a temporary directory (its ini, userlist, log), on a free loopback port, as the
// `postgres` user when the tests run as root (PgBouncer refuses to run as root). The admin
// console (database `pgbouncer`) takes SHOW, PAUSE, KILL, RESUME, RELOAD.
//
// Where pgbouncer is not installed, startPgBouncer throws: the PgBouncer tests fail loudly
// unless LIFEGUARD_SKIP_PGBOUNCER=1 says to skip them (SKIP_PGBOUNCER).
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, chown, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';

/** The user explicitly opted out of the PgBouncer tests. */
export const SKIP_PGBOUNCER = process.env.LIFEGUARD_SKIP_PGBOUNCER === '1';

const CANDIDATES = ['/usr/sbin/pgbouncer', '/usr/bin/pgbouncer', '/usr/local/bin/pgbouncer'];

export function pgbouncerBinary(): string | undefined {
  return CANDIDATES.find((path) => existsSync(path));
}

export interface Upstream {
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly password: string;
  readonly database: string;
}

export interface PgBouncerOptions {
  readonly poolMode: 'session' | 'transaction';
  /** Extra [pgbouncer] settings (server_login_retry, max_client_conn, default_pool_size, …). */
  readonly settings?: Readonly<Record<string, string | number>>;
}

export interface PgBouncer {
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly password: string;
  readonly database: string;
  /** The running pgbouncer's pid (changes only if it exits: a crash, or stop()/start()). */
  readonly pid: number | undefined;
  /** Connection fields for a client of this PgBouncer. */
  connection(): Upstream;
  /** One admin-console command (SHOW CLIENTS, KILL db, RESUME db …) on a fresh connection; rows as objects. */
  admin(command: string): Promise<Record<string, unknown>[]>;
  /** Client connections to the pooled database (admin-console connections not counted). */
  clients(): Promise<number>;
  /** The log so far. */
  log(): Promise<string>;
  /** Times pgbouncer exited on its own (a crash) since start. */
  readonly crashes: number;
  stop(signal?: NodeJS.Signals): Promise<void>;
  start(): Promise<void>;
  teardown(): Promise<void>;
}

function freePort(): Promise<number> {
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

function postgresIds(): { uid: number; gid: number } {
  try {
    execFileSync('id', ['-u', 'postgres'], { stdio: 'ignore' });
  } catch {
    try {
      execFileSync('groupadd', ['postgres'], { stdio: 'ignore' });
    } catch {
      // exists already, or another file made it at the same moment
    }
    try {
      execFileSync('useradd', ['-g', 'postgres', 'postgres'], { stdio: 'ignore' });
    } catch {
      // same
    }
  }
  const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
  const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim());
  return { uid, gid };
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Start PgBouncer in front of `upstream`; it listens on 127.0.0.1 and a free port. */
export async function startPgBouncer(upstream: Upstream, options: PgBouncerOptions): Promise<PgBouncer> {
  const binary = pgbouncerBinary();
  if (binary === undefined) {
    throw new Error(
      `pgbouncer is not installed (looked in ${CANDIDATES.join(', ')}): install it (Debian: apt-get install -y pgbouncer; .ci/run does) ` +
        'or set LIFEGUARD_SKIP_PGBOUNCER=1 to skip the PgBouncer tests',
    );
  }
  const dir = await mkdtemp(join(tmpdir(), 'lifeguard-pgbouncer-'));
  const asRoot = process.getuid?.() === 0;
  const ids = asRoot ? postgresIds() : undefined;
  const port = await freePort();
  const settings: Record<string, string | number> = {
    listen_addr: '127.0.0.1',
    listen_port: port,
    unix_socket_dir: '',
    auth_type: 'scram-sha-256',
    auth_file: join(dir, 'userlist.txt'),
    admin_users: upstream.user,
    pool_mode: options.poolMode,
    pidfile: join(dir, 'pgbouncer.pid'),
    max_client_conn: 100,
    default_pool_size: 20,
    ignore_startup_parameters: 'extra_float_digits',
    log_connections: 0,
    log_disconnections: 0,
    ...options.settings,
  };
  const ini =
    `[databases]\n${upstream.database} = host=${upstream.host} port=${upstream.port} dbname=${upstream.database}\n\n[pgbouncer]\n` +
    Object.entries(settings)
      .map(([k, v]) => `${k} = ${v}`)
      .join('\n') +
    '\n';
  await writeFile(join(dir, 'pgbouncer.ini'), ini);
  await writeFile(join(dir, 'userlist.txt'), `"${upstream.user}" "${upstream.password}"\n`, { mode: 0o600 });
  if (ids !== undefined) {
    for (const file of ['', 'pgbouncer.ini', 'userlist.txt']) await chown(join(dir, file), ids.uid, ids.gid);
    await chmod(dir, 0o700);
  }
  let child: ChildProcess | undefined;
  let output = '';
  let crashes = 0;
  let stopping = false;
  const fields: Upstream = { host: '127.0.0.1', port, user: upstream.user, password: upstream.password, database: upstream.database };

  const adminClient = async (): Promise<pg.Client> => {
    const client = new pg.Client({ ...fields, database: 'pgbouncer', connectionTimeoutMillis: 5000 });
    client.on('error', () => {});
    await client.connect();
    return client;
  };
  const admin = async (command: string): Promise<Record<string, unknown>[]> => {
    const client = await adminClient();
    try {
      // The admin console speaks only the simple protocol.
      return (await client.query(command)).rows as Record<string, unknown>[];
    } finally {
      await client.end().catch(() => {});
    }
  };

  const start = async (): Promise<void> => {
    stopping = false;
    const proc = spawn(binary, [join(dir, 'pgbouncer.ini')], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'], ...(ids ?? {}) });
    child = proc;
    const keep = (chunk: Buffer): void => {
      output += chunk.toString('utf8');
      if (output.length > 200_000) output = output.slice(-100_000);
    };
    proc.stdout?.on('data', keep);
    proc.stderr?.on('data', keep);
    proc.on('exit', () => {
      if (!stopping) crashes++;
      if (child === proc) child = undefined;
    });
    // Ready once the admin console answers.
    const deadline = Date.now() + 10_000;
    for (;;) {
      if (child !== proc) throw new Error(`pgbouncer exited at start; its log:\n${output.slice(-2000)}`);
      try {
        await admin('SHOW VERSION');
        return;
      } catch (error) {
        if (Date.now() > deadline) throw new Error(`pgbouncer did not answer within 10 s: ${String(error)}; its log:\n${output.slice(-2000)}`);
        await sleep(50);
      }
    }
  };

  const stop = async (signal: NodeJS.Signals = 'SIGINT'): Promise<void> => {
    const proc = child;
    if (proc === undefined) return;
    stopping = true;
    const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
    proc.kill(signal);
    const timer = setTimeout(() => proc.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  };

  await start();
  return {
    ...fields,
    get pid() {
      return child?.pid;
    },
    get crashes() {
      return crashes;
    },
    connection: () => fields,
    admin,
    async clients() {
      const rows = await admin('SHOW CLIENTS');
      return rows.filter((r) => r.database === upstream.database).length;
    },
    async log() {
      return output + (await readFile(join(dir, 'pgbouncer.log'), 'utf8').catch(() => ''));
    },
    stop,
    start,
    async teardown() {
      await stop('SIGINT').catch(() => {});
      await rm(dir, { recursive: true, force: true });
    },
  };
}
