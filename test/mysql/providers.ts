// Which MariaDB/MySQL the MySQL suites (test/mysql) run against, and how each provider starts,
// stops, restarts, kills and freezes it. test/mysql/harness.ts (useMariaDb) starts one per test
// file through startProvider(). The MySQL counterpart of test/integration/providers.ts.
//
// Which server: env LIFEGUARD_TEST_MYSQL
//   private         Debian's mariadbd (scripts/ci/mariadb-install.sh): a private instance per
//                   file from test/support/mariadb.ts, on a free loopback port, data in a temp dir
//   testcontainers  a container of LIFEGUARD_MARIADB_IMAGE (default lifeguard-mariadb:10.11-bookworm,
//                   built by scripts/ci/build-mariadb-image.sh; the official mariadb images work too)
//   url             MYSQL_URL, an existing server (mysql://user:password@host:port/database);
//                   no restart/stop/pause/kill. Each file works in its own database and users,
//                   dropped after the file.
//   skip            explicit opt-out: every MySQL test file is skipped, saying so
//   unset           private when mariadbd is found; else testcontainers when a Docker engine
//                   answers and the image is there; else every MySQL test file FAILS, saying how
//                   to install mariadb-server or to set LIFEGUARD_TEST_MYSQL=skip.
// A forced provider that cannot start fails the file: there is never a silent fallback.
//
// Capabilities (CAPABILITIES / db.capabilities) say what the provider can do to the server:
//   restart    restart(): a clean shutdown then a start, same host and port, data kept
//   stopStart  stop() / start() separately
//   pause      pause() / unpause(): freeze the server (SIGSTOP/SIGCONT, or docker pause)
//   kill       kill(): SIGKILL the server (a crash); start() brings it back (crash recovery)
import { randomBytes } from 'node:crypto';
import mysql from 'mysql2/promise';
import { firstLine, freePort, sleep, withTimeout } from '../support/wait.js';
import { MARIADB_INSTALL_HINT, mariadbBinaries, type MariaDbFields, serverSettings, startMariaDb } from '../support/mariadb.js';

export type ProviderName = 'private' | 'testcontainers' | 'url' | 'skip';

export interface Capabilities {
  readonly restart: boolean;
  readonly stopStart: boolean;
  readonly pause: boolean;
  readonly kill: boolean;
}

export const CAPABILITIES: Readonly<Record<ProviderName, Capabilities>> = {
  private: { restart: true, stopStart: true, pause: true, kill: true },
  testcontainers: { restart: true, stopStart: true, pause: true, kill: true },
  url: { restart: false, stopStart: false, pause: false, kill: false },
  skip: { restart: false, stopStart: false, pause: false, kill: false },
};

export const DEFAULT_MARIADB_IMAGE = 'lifeguard-mariadb:10.11-bookworm';

export interface ProviderChoice {
  readonly name: ProviderName;
  /** Set explicitly through LIFEGUARD_TEST_MYSQL (then a failure to start is never papered over). */
  readonly forced: boolean;
  readonly reason: string;
  /** Set when no provider is usable: every MySQL file fails with this message. */
  readonly unavailable?: string;
}

export function mariadbImage(): string {
  return process.env.LIFEGUARD_MARIADB_IMAGE?.trim() || DEFAULT_MARIADB_IMAGE;
}

async function decideProvider(): Promise<ProviderChoice> {
  const forced = process.env.LIFEGUARD_TEST_MYSQL?.trim();
  if (forced !== undefined && forced !== '') {
    if (forced === 'private' || forced === 'testcontainers' || forced === 'url' || forced === 'skip') {
      return { name: forced, forced: true, reason: `LIFEGUARD_TEST_MYSQL=${forced}` };
    }
    // Not thrown here: a module that fails to import gives a worse message than a failing file.
    return {
      name: 'private',
      forced: true,
      reason: `LIFEGUARD_TEST_MYSQL=${forced}`,
      unavailable: `LIFEGUARD_TEST_MYSQL must be 'private', 'testcontainers', 'url' or 'skip' (got ${JSON.stringify(forced)})`,
    };
  }
  const bins = mariadbBinaries();
  if (bins !== undefined) return { name: 'private', forced: false, reason: `${bins.mariadbd} is installed` };
  const image = mariadbImage();
  const docker = await dockerHasImage(image);
  if (docker.ok) return { name: 'testcontainers', forced: false, reason: `mariadbd is not installed; ${docker.why}` };
  return {
    name: 'private',
    forced: false,
    reason: 'LIFEGUARD_TEST_MYSQL is unset',
    unavailable:
      `no MariaDB for the MySQL tests: mariadbd is not installed${process.env.MARIADB_BIN_DIR !== undefined ? ` (in MARIADB_BIN_DIR=${process.env.MARIADB_BIN_DIR})` : ''} ` +
      `and ${docker.why}. To run them, ${MARIADB_INSTALL_HINT}; or build the image (scripts/ci/build-mariadb-image.sh) ` +
      'and set LIFEGUARD_TEST_MYSQL=testcontainers; or point MYSQL_URL at a server and set LIFEGUARD_TEST_MYSQL=url',
  };
}

/** Auto-selection: does a Docker engine answer, with `image` present (never pulled here)? */
async function dockerHasImage(image: string): Promise<{ ok: boolean; why: string }> {
  try {
    const { getContainerRuntimeClient, ImageName } = await import('testcontainers');
    const client = await withTimeout(getContainerRuntimeClient(), 15_000, 'the Docker engine check');
    if (await withTimeout(client.image.exists(ImageName.fromString(image)), 15_000, 'the image check')) {
      return { ok: true, why: `a Docker engine answers and ${image} is present` };
    }
    return { ok: false, why: `a Docker engine answers but has no image ${image} (LIFEGUARD_MARIADB_IMAGE)` };
  } catch (error) {
    return { ok: false, why: `no Docker engine answers (${firstLine(error)})` };
  }
}

/** The provider this process uses, decided once when the first MySQL file is collected. */
export const PROVIDER: ProviderChoice = await decideProvider();
export const PROVIDER_CAPABILITIES: Capabilities = CAPABILITIES[PROVIDER.name];

// ------------------------------------------------------------------ servers

/** A started server, as the provider controls it. The fields are an account with every privilege. */
export interface Backend extends MariaDbFields {
  readonly provider: ProviderName;
  /** For the log line: the image, the binary, or MYSQL_URL. */
  readonly label: string;
  restart(): Promise<void>;
  stop(): Promise<void>;
  start(): Promise<void>;
  pause(): Promise<void>;
  unpause(): Promise<void>;
  kill(): Promise<void>;
  teardown(): Promise<void>;
}

function unsupported(provider: ProviderName, what: string): never {
  throw new Error(
    `${what} is not supported by the '${provider}' MySQL provider (capabilities: ${JSON.stringify(CAPABILITIES[provider])}); ` +
      'declare the test with describe.runIf(PROVIDER_CAPABILITIES.<capability>)',
  );
}

/** Wait until `fields` accepts a connection and answers `SELECT 1`. */
export async function waitUntilReady(fields: MariaDbFields, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    let conn: mysql.Connection | undefined;
    try {
      conn = await mysql.createConnection({ ...fields, connectTimeout: 2000 });
      await conn.query('SELECT 1');
      await conn.end();
      return;
    } catch (error) {
      last = error;
      conn?.destroy();
      await sleep(100);
    }
  }
  throw new Error(`MariaDB at ${fields.host}:${fields.port} did not accept connections within ${timeoutMs} ms (last error: ${firstLine(last)})`);
}

async function startPrivate(): Promise<Backend> {
  const server = await startMariaDb();
  return {
    provider: 'private',
    host: server.host,
    get port() {
      return server.port;
    },
    user: server.user,
    password: server.password,
    database: server.database,
    label: mariadbBinaries()?.mariadbd ?? 'mariadbd',
    restart: () => server.restart(),
    stop: () => server.stop(),
    start: () => server.start(),
    pause: () => server.pause(),
    unpause: () => server.unpause(),
    kill: () => server.kill(),
    teardown: () => server.teardown(),
  };
}

async function startUrl(): Promise<Backend> {
  const url = process.env.MYSQL_URL;
  if (!url) throw new Error('LIFEGUARD_TEST_MYSQL=url needs MYSQL_URL (mysql://user:password@host:port/database)');
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new Error('MYSQL_URL is not a valid URL');
  }
  const fields: MariaDbFields = {
    host: decodeURIComponent(parsed.hostname) || 'localhost',
    port: parsed.port ? Number(parsed.port) : 3306,
    user: decodeURIComponent(parsed.username) || 'root',
    password: decodeURIComponent(parsed.password),
    database: decodeURIComponent(parsed.pathname.replace(/^\//, '')),
  };
  await waitUntilReady(fields, 10_000);
  const no = (what: string) => async (): Promise<void> => unsupported('url', what);
  return {
    provider: 'url',
    ...fields,
    label: 'MYSQL_URL',
    restart: no('restart()'),
    stop: no('stop()'),
    start: no('start()'),
    pause: no('pause()'),
    unpause: no('unpause()'),
    kill: no('kill()'),
    teardown: async () => {},
  };
}

async function startTestcontainers(): Promise<Backend> {
  const image = mariadbImage();
  const { GenericContainer, Wait, getContainerRuntimeClient } = await import('testcontainers');
  const password = randomBytes(12).toString('hex');
  const database = 'lifeguard';
  const settings = Object.entries(serverSettings()).map(([k, v]) => `--${k}=${v}`);
  let lastError: unknown;
  // A fixed host port (docker keeps the binding across stop/start/restart, so a pool keeps
  // working); a port taken between choosing it and binding it is retried with another.
  for (let attempt = 1; attempt <= 3; attempt++) {
    const port = await freePort();
    let container: Awaited<ReturnType<InstanceType<typeof GenericContainer>['start']>>;
    try {
      container = await new GenericContainer(image)
        .withEnvironment({ MARIADB_ROOT_PASSWORD: password, MARIADB_DATABASE: database })
        .withExposedPorts({ container: 3306, host: port })
        .withCommand(['mariadbd', ...settings])
        // The real server's line (the temporary one during initialisation says "port: 0").
        .withWaitStrategy(Wait.forLogMessage(/port: 3306/))
        .withStartupTimeout(90_000)
        .start();
    } catch (error) {
      lastError = error;
      if (/port is already allocated|address already in use/i.test(String(error))) continue;
      throw new Error(
        `testcontainers could not start ${image}: ${firstLine(error)}` +
          (/no such image|not found|pull access denied/i.test(String(error)) ? ' (build it with scripts/ci/build-mariadb-image.sh, or set LIFEGUARD_MARIADB_IMAGE)' : '') +
          (process.env.TESTCONTAINERS_RYUK_DISABLED !== 'true' && /ryuk/i.test(String(error)) ? ' (without a registry, set TESTCONTAINERS_RYUK_DISABLED=true)' : ''),
        { cause: error },
      );
    }
    const client = await getContainerRuntimeClient();
    const docker = client.container.getById(container.getId());
    const fields: MariaDbFields = { host: container.getHost(), port, user: 'root', password, database };
    let paused = false;
    let removed = false;
    const teardown = async (): Promise<void> => {
      if (removed) return;
      removed = true;
      if (paused) await docker.unpause().catch(() => {});
      await withTimeout(docker.remove({ force: true, v: true }), 30_000, 'removing the container');
    };
    try {
      if (container.getMappedPort(3306) !== port) throw new Error(`container port mapping is ${container.getMappedPort(3306)}, expected the fixed host port ${port}`);
      await waitUntilReady(fields, 30_000);
    } catch (error) {
      await teardown().catch(() => {});
      throw error;
    }
    const waitExited = async (what: string): Promise<void> => {
      for (const deadline = Date.now() + 30_000; Date.now() < deadline; await sleep(50)) {
        if (!(await docker.inspect()).State.Running) return;
      }
      throw new Error(`the container did not exit within 30 s of ${what}`);
    };
    return {
      provider: 'testcontainers',
      ...fields,
      label: image,
      async restart() {
        // `docker restart -t 20`: SIGTERM (a clean shutdown) and up to 20 s for it.
        await withTimeout(docker.restart({ t: 20 }), 40_000, 'docker restart');
        await waitUntilReady(fields, 30_000);
      },
      async stop() {
        await withTimeout(docker.stop({ t: 20 }), 40_000, 'docker stop');
        await waitExited('docker stop');
      },
      async start() {
        await withTimeout(docker.start(), 30_000, 'docker start');
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
      async kill() {
        if (paused) {
          await docker.unpause();
          paused = false;
        }
        await docker.kill({ signal: 'SIGKILL' });
        await waitExited('SIGKILL');
      },
      teardown,
    };
  }
  throw new Error(`testcontainers could not bind a free host port in 3 attempts: ${firstLine(lastError)}`, { cause: lastError });
}

/** Start a server with `provider`; a failure says which provider, why it was chosen, and that a forced one has no fallback. */
export function startProvider(provider: ProviderChoice): Promise<Backend> {
  if (provider.unavailable !== undefined) return Promise.reject(new Error(`[lifeguard] ${provider.unavailable}`));
  if (provider.name === 'skip') return Promise.reject(new Error('[lifeguard] LIFEGUARD_TEST_MYSQL=skip: no server is started'));
  const start = provider.name === 'url' ? startUrl : provider.name === 'testcontainers' ? startTestcontainers : startPrivate;
  return start().catch((error: unknown) => {
    throw new Error(
      `[lifeguard] MySQL provider '${provider.name}' (${provider.reason}) could not start` +
        (provider.forced ? ' — it was forced, so there is no fallback' : '') +
        `: ${error instanceof Error ? error.message : String(error)}`,
      { cause: error },
    );
  });
}
