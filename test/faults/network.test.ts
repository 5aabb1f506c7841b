// Fault suite, section C of FAULTS.md §3: network faults through the in-process chaos proxy
// (F16–F25). Each scenario routes a pool (unique application_name) through a ChaosProxy to
// the file's PostgreSQL, runs it under the Observer (background load of 8 workers on max 5
// where the fault allows it), injects the fault through the proxy (or a tiny fake server
// where the proxy cannot speak the protocol), and checks the fault's own pass criteria plus
// the invariants: I1–I3 (assertInvariants), I9 (assertErrorBudget), I7 (recovery() once the
// fault is removed), I6 (assertNoOrphans), I5 (closeAndCheck); I4 is checked for the whole
// file by usePostgres().
//
// Seams besides the proxy: a tiny fake server for the TLS handshake stall (F19b: it answers the
// SSLRequest with 'S', which the proxy cannot); pg's `stream` option (a function returning the
// socket; pg calls `stream.connect(port, host)`) with a custom `lookup` for DNS faults (F24); a
// second proxy on 127.0.0.2 with the same port for a DNS remap (F24c); `ss -tno` for the
// keepalive timers (F18); openssl certificates + ALTER SYSTEM ssl=on for TLS (F19b, F25).
//
// Criteria where the pool is known to disagree with FAULTS.md use expect.soft, so the rest
// of the scenario is still measured; they still fail the test.
import { execFile } from 'node:child_process';
import { createHash, X509Certificate } from 'node:crypto';
import { lookup as dnsLookup } from 'node:dns';
import { getEventListeners } from 'node:events';
import { chmod, chown, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import net, { type LookupFunction } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { promisify } from 'node:util';
import pg from 'pg';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { isConnectionFatal, isRetryableConnectError, type PostgresPoolConfig } from '../../src/adapters/postgres/index.js';
import { AcquireTimeoutError, CreateResourceError, CreateTimeoutError, DestroyTimeoutError } from '../../src/index.js';
import { ChaosProxy } from '../support/chaos-proxy.js';
import { sleep, type TestPool, usePostgres, waitFor } from '../integration/harness.js';
import { CountingClock, Observer, errorsByKind } from './observer.js';
import { codes, fill, note, settleMs, timeUntil } from './util.js';

const execFileAsync = promisify(execFile);
const db = usePostgres();

const MAX = 5;
const ACQUIRE_TIMEOUT_MS = 3000;
const CREATE_TIMEOUT_MS = 1000;
/** Scheduling slack for timing criteria on a loaded 2-core machine. */
const SLACK_MS = 150;

// ------------------------------------------------------------------ helpers

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch((error: unknown) => console.warn(`[faults] clean-up failed: ${String(error)}`));
});

async function startProxy(options: { host?: string; port?: number } = {}): Promise<ChaosProxy> {
  const proxy = await ChaosProxy.start({ upstreamHost: db.host, upstreamPort: db.port, ...options });
  cleanups.push(() => proxy.close());
  return proxy;
}

interface Harnessed {
  readonly proxy: ChaosProxy;
  readonly pool: TestPool;
  readonly obs: Observer;
}

/** pool (max 5, acquire 3 s, create 1 s unless given) → proxy → PostgreSQL, under an Observer already sampling. */
async function harness(options: PostgresPoolConfig = {}, proxy?: ChaosProxy): Promise<Harnessed> {
  const through = proxy ?? (await startProxy());
  const acquireTimeoutMs = options.acquireTimeoutMs ?? ACQUIRE_TIMEOUT_MS;
  const max = options.max ?? MAX;
  const pool = db.pool({ host: through.host, port: through.port, createTimeoutMs: CREATE_TIMEOUT_MS, max, ...options, acquireTimeoutMs });
  const obs = new Observer(db, pool, { max, acquireTimeoutMs }).start();
  return { proxy: through, pool, obs };
}

interface Use {
  readonly client: pg.Client;
  readonly at: number;
  endedAt?: number;
  error?: unknown;
  /** The client had lost its connection when the operation failed (it hit a broken link). */
  clientDead?: boolean;
}

/** Load work that records which client served each operation, when, and how it ended. */
function tracked(work: (client: pg.Client) => Promise<unknown> = (c) => c.query('SELECT 1')): { uses: Use[]; work: (client: pg.Client) => Promise<unknown> } {
  const uses: Use[] = [];
  return {
    uses,
    work: async (client) => {
      const use: Use = { client, at: performance.now() };
      uses.push(use);
      try {
        return await work(client);
      } catch (error) {
        use.error = error;
        use.clientDead = clientDead(client);
        throw error;
      } finally {
        use.endedAt = performance.now();
      }
    },
  };
}

/** pg's own flags: the client lost its connection (error or end), so it is no longer queryable. */
function clientDead(client: pg.Client): boolean {
  const c = client as unknown as { _queryable?: boolean; _ended?: boolean };
  return c._queryable === false || c._ended === true;
}

/** The client's socket (the TLS socket once upgraded). */
function streamOf(client: pg.Client): net.Socket {
  return (client as unknown as { connection: { stream: net.Socket } }).connection.stream;
}

/** Every message along the error's cause chain. */
function messages(error: unknown): string {
  const found: string[] = [];
  for (let e = error, depth = 0; e !== null && e !== undefined && depth < 8; e = (e as { cause?: unknown }).cause, depth++) {
    found.push(e instanceof Error ? e.message : String(e));
    if (typeof e !== 'object') break;
  }
  return found.join(' <- ');
}

function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

const round = (n: number): number => Math.round(n * 10) / 10;

/** The settled outcome of a promise, with when it settled. */
async function outcome<T>(promise: Promise<T>): Promise<{ value?: T; error?: unknown; at: number }> {
  try {
    const value = await promise;
    return { value, at: performance.now() };
  } catch (error) {
    return { error, at: performance.now() };
  }
}

/** Listener counts on `process`, by event. */
function processListeners(): Record<string, number> {
  return Object.fromEntries(process.eventNames().map((name) => [String(name), process.listenerCount(name)]));
}

/** Active handles that keep the process alive, by type (sockets, servers, ref'ed timers). */
function handleCounts(): Record<string, number> {
  const out: Record<string, number> = {};
  for (const kind of process.getActiveResourcesInfo()) out[kind] = (out[kind] ?? 0) + 1;
  return out;
}

// ------------------------------------------------------------------ TLS on the file's server

interface CertPair {
  readonly cert: string;
  readonly key: string;
  readonly pem: string;
}

interface Certs {
  readonly dir: string;
  /** The test CA (PEM), trusted by clients that validate. */
  readonly caPem: string;
  /** A self-signed leaf for 127.0.0.1 (no CA). */
  readonly selfSigned: CertPair;
  /** Two leaves for 127.0.0.1 issued by the test CA: before and after a rotation. */
  readonly a: CertPair;
  readonly b: CertPair;
}

let certs: Promise<Certs> | undefined;
afterAll(async () => {
  if (certs !== undefined) await rm((await certs).dir, { recursive: true, force: true });
});

/** Certificates made once per file with `openssl` (EC P-256: fast to generate). */
function testCerts(): Promise<Certs> {
  certs ??= makeCerts();
  return certs;
}

async function makeCerts(): Promise<Certs> {
  const dir = await mkdtemp(join(tmpdir(), 'lifeguard-tls-'));
  await chmod(dir, 0o755); // the server may run as another user (postgres, when we are root)
  const openssl = (...args: string[]): Promise<unknown> => execFileAsync('openssl', args, { cwd: dir });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  const san = 'subjectAltName=IP:127.0.0.1,DNS:localhost';
  await openssl('req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=lifeguard test CA', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign');
  await openssl('req', '-x509', ...ec, '-keyout', 'self.key', '-out', 'self.crt', '-days', '2', '-subj', '/CN=127.0.0.1', '-addext', san);
  await writeFile(join(dir, 'leaf.ext'), `${san}\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n`);
  for (const name of ['a', 'b']) {
    await openssl('req', '-new', ...ec, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', '/CN=127.0.0.1');
    await openssl('x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.crt`, '-days', '2', '-extfile', 'leaf.ext');
  }
  // PostgreSQL reads the key as the server's user and refuses one that others can read.
  let owner: { uid: number; gid: number } | undefined;
  if (process.getuid?.() === 0) {
    const id = async (flag: string): Promise<number> => Number((await execFileAsync('id', [flag, 'postgres'])).stdout.trim());
    owner = { uid: await id('-u'), gid: await id('-g') };
  }
  const pair = async (name: string): Promise<CertPair> => {
    const cert = join(dir, `${name}.crt`);
    const key = join(dir, `${name}.key`);
    await chmod(key, 0o600);
    await chmod(cert, 0o644);
    if (owner !== undefined) for (const file of [cert, key]) await chown(file, owner.uid, owner.gid);
    return { cert, key, pem: await readFile(cert, 'utf8') };
  };
  return { dir, caPem: await readFile(join(dir, 'ca.crt'), 'utf8'), selfSigned: await pair('self'), a: await pair('a'), b: await pair('b') };
}

function fingerprint(pem: string): string {
  return new X509Certificate(pem).fingerprint256;
}

/** The certificate a new TLS connection to the server sees now (its fingerprint), or the error. */
async function presentedCert(): Promise<string> {
  const client = new pg.Client({ ...db.connection(), application_name: 'lifeguard-tls-probe', ssl: { rejectUnauthorized: false }, connectionTimeoutMillis: 2000 });
  client.on('error', () => {});
  try {
    await client.connect();
    return (streamOf(client) as TLSSocket).getPeerCertificate().fingerprint256;
  } finally {
    await client.end().catch(() => {});
  }
}

/**
 * Server-side TLS: `ALTER SYSTEM SET ssl = on` with `pair` + reload, waiting until new
 * connections see that certificate; or 'off' (`ALTER SYSTEM RESET ALL` + reload), waiting
 * until new connections are refused TLS. Reset to 'off' after the test.
 */
async function serverTls(pair: CertPair | 'off'): Promise<void> {
  if (pair === 'off') {
    await db.admin('ALTER SYSTEM RESET ALL');
    await db.admin('SELECT pg_reload_conf()');
    await waitFor('the server to refuse TLS', () => presentedCert().then(() => false, (error: unknown) => /does not support SSL/.test(String(error))), { timeoutMs: 5000 });
    return;
  }
  await db.admin(`ALTER SYSTEM SET ssl_cert_file = '${pair.cert}'`);
  await db.admin(`ALTER SYSTEM SET ssl_key_file = '${pair.key}'`);
  await db.admin('ALTER SYSTEM SET ssl = on');
  await db.admin('SELECT pg_reload_conf()');
  const wanted = fingerprint(pair.pem);
  await waitFor(`the server to present ${pair.cert}`, () => presentedCert().then((seen) => seen === wanted, () => false), { timeoutMs: 5000 });
}

/** TLS on for this test, off again after it. */
async function tlsForThisTest(pair: CertPair): Promise<void> {
  cleanups.push(() => serverTls('off'));
  await serverTls(pair);
}

// ------------------------------------------------------------------ F16

describe('F16 RST (reset_peer) on idle and in-flight connections', () => {
  it('(a) RST on every link while the pool is idle: ECONNRESET absorbed, the 5 dead clients evicted, 10 acquires succeed', async () => {
    const { proxy, pool, obs } = await harness();
    const originals = await fill(obs, 5);
    expect(originals.size).toBe(5);
    expect(proxy.stats().active).toBe(5);
    const ended = [...originals].map((client) => new Promise<number>((resolve) => client.once('end', () => resolve(performance.now()))));

    const fault = obs.fault('RST on idle links');
    proxy.resetPeer(0, { scope: 'existing' }).remove(); // acts on the spot, on the links that exist now
    const endTimes = await Promise.all(ended); // every client heard the RST, and nothing crashed (I4)
    const detectMs = Math.max(...endTimes) - fault.at;
    expect(proxy.stats().resets, 'the proxy sent 5 RSTs').toBe(5);
    const sizeAfterRst = pool.stats().size;

    const used: pg.Client[] = [];
    const once = (): Promise<unknown> =>
      obs
        .run(async (client) => {
          used.push(client);
          await client.query('SELECT 1');
        })
        .catch(() => undefined);
    for (let i = 0; i < 5; i++) await once();
    await Promise.all(Array.from({ length: 5 }, once));
    fault.end();

    expect(obs.failures(), 'the 10 acquires after the RST: 0 errors').toEqual([]);
    expect(used).toHaveLength(10);
    expect(used.filter((c) => originals.has(c)), 'no acquire returns a reset client').toEqual([]);
    expect(pool.stats().destroyedByReason.broken, 'the 5 reset clients were evicted as broken').toBe(5);
    expect(pool.backgroundErrors.map(String), 'the ECONNRESETs were absorbed, not reported').toEqual([]);
    note('F16a', { detectMs: round(detectMs), sizeRightAfterRst: sizeAfterRst, evicted: pool.stats().destroyedByReason, created: pool.stats().created });

    await obs.finish();
    obs.assertInvariants();
    obs.assertErrorBudget(fault.at);
    expect(await obs.recovery(2000), 'I7').toBeLessThanOrEqual(2000);
    await obs.assertNoOrphans();
    await obs.closeAndCheck();
  });

  it('(b) RST while 5 leases run pg_sleep(1) under load: exactly the in-flight queries fail (connection lost), destroyed on release, the rest unaffected', async () => {
    const { proxy, pool, obs } = await harness();
    const t = tracked((c) => c.query('SELECT pg_sleep(1)'));
    obs.load({ work: t.work });
    await waitFor('5 queries running on the server', async () => (await db.sessionRows(pool.app)).filter((r) => r.state === 'active').length === MAX, { timeoutMs: 3000 });
    const running = t.uses.filter((u) => u.endedAt === undefined);
    expect(running).toHaveLength(MAX);

    const fault = obs.fault('RST on links running pg_sleep(1)');
    proxy.resetPeer(0, { scope: 'existing' }).remove();
    await timeUntil('the in-flight queries to reject', () => running.every((u) => u.endedAt !== undefined), { timeoutMs: 1000, everyMs: 2 });
    const rejectMs = Math.max(...running.map((u) => u.endedAt!)) - fault.at;
    fault.end();
    const quietFrom = performance.now();
    await sleep(1500); // a full round of pg_sleep(1) on the new connections
    const report = await obs.finish();

    expect(running.map((u) => u.error !== undefined), 'every in-flight query rejected').toEqual(running.map(() => true));
    for (const u of running) expect(isConnectionFatal(u.error), `a connection-lost error: ${String(u.error)}`).toBe(true);
    expect(rejectMs, 'the in-flight queries reject as soon as the RST arrives').toBeLessThanOrEqual(100 + SLACK_MS);
    const failed = obs.failures();
    expect(failed.length, `only the in-flight queries failed (${JSON.stringify(errorsByKind(failed))})`).toBe(MAX);
    expect(pool.stats().destroyedByReason.broken, 'the reset clients were destroyed, not returned').toBe(MAX);
    const resetClients = new Set(running.map((u) => u.client));
    expect(t.uses.filter((u) => resetClients.has(u.client) && u.at > fault.at), 'a reset client is never handed out again').toEqual([]);
    expect(t.uses.filter((u) => u.at >= quietFrom && u.error === undefined).length, 'work went on after the RST').toBeGreaterThanOrEqual(MAX);
    note('F16b', { rejectMs: round(rejectMs), kinds: errorsByKind(running), inFlightAtFault: fault.inFlight, ops: report.ops, failed: failed.length, maxServerSessions: report.maxServerSessions });

    // Known disagreement (reported): the reset links' backends keep running pg_sleep after the pool
    // replaced them, so the server briefly counts more than max sessions (I2, server side). Soft, so
    // the checks below are still measured.
    expect.soft(() => obs.assertInvariants(), 'I1-I3').not.toThrow();
    obs.assertErrorBudget(quietFrom);
    expect(await obs.recovery(2000), 'I7').toBeLessThanOrEqual(2000);
    await obs.assertNoOrphans();
    await obs.closeAndCheck();
  });

  it('(c) RST with toxicity 0.3, re-applied every 200 ms for 5 s under load: every failure is an operation on a reset link, at most one per RST', async () => {
    const { proxy, pool, obs } = await harness();
    const t = tracked((c) => c.query('SELECT pg_sleep(0.05)'));
    obs.load({ work: t.work });
    await waitFor('the pool to fill under load', () => pool.stats().size === MAX, { timeoutMs: 3000 });

    const from = performance.now();
    let rounds = 0;
    while (performance.now() - from < 5000) {
      obs.fault(`RST round ${rounds}`).end();
      proxy.resetPeer(0, { scope: 'existing', toxicity: 0.3 }).remove();
      rounds++;
      await sleep(200);
    }
    const quietFrom = performance.now();
    await sleep(300);
    const report = await obs.finish();
    const resets = proxy.stats().resets;

    const failed = obs.failures();
    const queryFailures = t.uses.filter((u) => u.error !== undefined);
    expect(failed.length - queryFailures.length, `no acquire failed (${JSON.stringify(errorsByKind(failed))})`).toBe(0);
    const notOnResetLink = queryFailures.filter((u) => !u.clientDead || !isConnectionFatal(u.error));
    expect(notOnResetLink.map((u) => String(u.error)), 'operations that did not hit a reset link: 100 % success').toEqual([]);
    expect(failed.length, `failures <= links reset (${resets})`).toBeLessThanOrEqual(resets);
    expect(resets, 'the toxic hit links').toBeGreaterThan(rounds * 0.3 * MAX * 0.4);
    const okRate = (report.ops - report.failed) / report.ops;
    note('F16c', { rounds, resets, ops: report.ops, failed: report.failed, okRate: round(okRate * 100), kinds: errorsByKind(failed), created: pool.stats().created, maxSize: report.maxSize, maxServerSessions: report.maxServerSessions });

    // Same known disagreement as (b), when a reset hits a running pg_sleep (soft, reported).
    expect.soft(() => obs.assertInvariants(), 'I1-I3').not.toThrow();
    obs.assertErrorBudget(quietFrom, resets);
    expect(await obs.recovery(2000), 'I7').toBeLessThanOrEqual(2000);
    await obs.assertNoOrphans();
    await obs.closeAndCheck();
  });
});

// ------------------------------------------------------------------ F17

describe('F17 blackhole on idle connections (half-open, detected on borrow)', () => {
  it('warm pool, blackhole on the existing links, 600 ms idle, burst of 10: all succeed on fresh clients within pingTimeoutMs + connect + 100 ms', async () => {
    const PING_TIMEOUT_MS = 500;
    const { proxy, pool, obs } = await harness({ pingIfIdleMs: 500, pingTimeoutMs: PING_TIMEOUT_MS });
    const originals = await fill(obs, 5);
    expect(originals.size).toBe(5);
    const connectMsBefore = pool.stats().createTime.max;

    const fault = obs.fault('blackhole on the existing links');
    const toxic = proxy.blackhole({ scope: 'existing' }); // new links stay healthy
    await sleep(600);
    const used: pg.Client[] = [];
    const burstFrom = performance.now();
    const burst = await Promise.allSettled(
      Array.from({ length: 10 }, () =>
        obs.run(async (client) => {
          used.push(client);
          await client.query('SELECT 1');
        }),
      ),
    );
    const burstMs = performance.now() - burstFrom;
    // The blackholed sockets are torn down (not politely ended: nothing would answer): the proxy sees them close.
    const tornDownMs = await timeUntil('the blackholed links to close', () => proxy.stats().active === pool.stats().size, { from: burstFrom, timeoutMs: 2000 });
    toxic.remove();
    fault.end();

    expect(burst.filter((r) => r.status === 'rejected').map((r) => String((r as PromiseRejectedResult).reason)), 'all 10 acquires succeed').toEqual([]);
    expect(used.filter((c) => originals.has(c)), 'no caller gets a blackholed client').toEqual([]);
    expect(pool.stats().destroyedByReason.pingFailed, 'dead links destroyed == 5 (failed borrow-time ping)').toBe(5);
    const connectMs = Math.max(connectMsBefore, pool.stats().createTime.max);
    const burstRecords = obs.records.filter((r) => r.startedAt >= burstFrom);
    const worst = Math.max(...burstRecords.map(settleMs));
    expect(worst, `each acquire <= pingTimeoutMs (${PING_TIMEOUT_MS}) + connect (${round(connectMs)}) + 100 ms`).toBeLessThanOrEqual(PING_TIMEOUT_MS + connectMs + 100 + SLACK_MS);
    expect(worst, 'the acquires did wait for the ping timeout (the dead links were really tried)').toBeGreaterThanOrEqual(PING_TIMEOUT_MS - 5);
    note('F17', { burstMs: Math.round(burstMs), worstAcquireMs: round(worst), connectMs: round(connectMs), tornDownMs: Math.round(tornDownMs), destroyed: pool.stats().destroyedByReason, created: pool.stats().created });

    await obs.finish();
    obs.assertInvariants();
    obs.assertErrorBudget(fault.at);
    expect(await obs.recovery(2000), 'I7').toBeLessThanOrEqual(2000);
    await obs.assertNoOrphans();
    await obs.closeAndCheck();
  });
});

// ------------------------------------------------------------------ F18

describe('F18 blackhole on an in-flight query (half-open while borrowed)', () => {
  const QUERY_TIMEOUT_MS = 1000;

  it('5 leases run pg_sleep(0.2), blackhole everything at 50 ms for 2 s: queryTimeoutMs rejects each and destroys the client; no refill without demand; I7 after', async () => {
    const { proxy, pool, obs } = await harness({ queryTimeoutMs: QUERY_TIMEOUT_MS });
    await fill(obs, 5);
    const queries: { client: pg.Client; startedAt: number }[] = [];
    const ops = Array.from({ length: 5 }, () =>
      outcome(
        obs.run(async (client) => {
          queries.push({ client, startedAt: performance.now() });
          return client.query('SELECT pg_sleep(0.2)');
        }),
      ),
    );
    await sleep(50);
    expect(queries).toHaveLength(5);
    const fault = obs.fault('blackhole both ways, all links');
    const toxic = proxy.blackhole(); // both directions, existing and new links
    const results = await Promise.all(ops);
    const destroyedAt = performance.now();

    for (const [i, r] of results.entries()) {
      expect(r.error, 'the query rejects').toBeInstanceOf(Error);
      expect((r.error as Error).message, 'with the client-side query timeout').toMatch(/Query read timeout/);
      expect(isConnectionFatal(r.error), 'classified connection-fatal (destroy)').toBe(true);
      const lateMs = r.at - queries[i]!.startedAt;
      expect(lateMs, `query ${i} rejected ${round(lateMs)} ms after it started: <= queryTimeoutMs + 100`).toBeLessThanOrEqual(QUERY_TIMEOUT_MS + 100 + SLACK_MS);
      expect(lateMs).toBeGreaterThanOrEqual(QUERY_TIMEOUT_MS - 5);
    }
    expect(pool.stats().destroyedByReason.broken, 'the 5 timed-out clients were destroyed, never returned').toBe(5);
    // Destroyed means the socket is gone: the pool's links close at the proxy (FIN crosses a blackhole).
    const socketsGoneMs = await timeUntil('the timed-out clients\' sockets to close', () => queries.every((q) => streamOf(q.client).destroyed) && proxy.stats().active === 0, { from: destroyedAt, timeoutMs: 1000 });

    // No demand while the network is black: the pool stays empty, no create is started for nobody.
    await sleep(1000);
    const idleSamples = obs.samplesBetween(destroyedAt + 50);
    expect(idleSamples.length).toBeGreaterThan(20);
    expect(Math.max(...idleSamples.map((s) => s.size + s.creating)), 'no refill without demand').toBe(0);
    toxic.remove();
    fault.end();
    const recoveryMs = await obs.recovery(2000);
    const quietFrom = performance.now();
    obs.load({});
    await sleep(300);
    const report = await obs.finish();
    note('F18', { rejectAfterMs: results.map((r, i) => round(r.at - queries[i]!.startedAt)), socketsGoneMs: round(socketsGoneMs), recoveryMs: round(recoveryMs), ops: report.ops, failed: report.failed });

    expect(recoveryMs, 'I7').toBeLessThanOrEqual(2000);
    obs.assertInvariants();
    obs.assertErrorBudget(quietFrom);
    await obs.assertNoOrphans();
    await obs.closeAndCheck();
  });

  it('static check: with keepAlive (the adapter default) every pool socket has a TCP keepalive timer (ss -tno)', async () => {
    const { proxy, pool, obs } = await harness();
    const clients = await fill(obs, 5);
    const localPorts = new Set([...clients].map((c) => streamOf(c).localPort));
    expect(localPorts.size).toBe(5);
    const { stdout } = await execFileAsync('ss', ['-tno', 'state', 'established', `( dport = :${proxy.port} )`]);
    const lines = stdout.split('\n').filter((line) => line.includes(`${proxy.host}:${proxy.port}`));
    const ours = lines.filter((line) => [...localPorts].some((port) => line.includes(`127.0.0.1:${port} `)));
    expect(ours, `one ss line per pool socket:\n${stdout}`).toHaveLength(5);
    for (const line of ours) expect(line, 'SO_KEEPALIVE is set: ss shows a keepalive timer').toMatch(/timer:\(keepalive,/);
    note('F18 keepalive', { sockets: ours.length, sample: ours[0]?.trim() });

    await obs.finish();
    obs.assertInvariants();
    await obs.assertNoOrphans();
    await obs.closeAndCheck();
  });
});

// ------------------------------------------------------------------ F19

/**
 * A fake server for the TLS handshake stall the proxy cannot produce (it does not speak the
 * protocol): in 'stall' mode it answers the 8-byte SSLRequest with 'S' and then reads and
 * drops everything (the client's TLS ClientHello gets no answer); in 'forward' mode (the fault
 * removed) it is a plain TCP relay to `target`.
 */
class TlsStallServer {
  mode: 'stall' | 'forward' = 'stall';
  readonly stalled: { acceptedAt: number; closedAt?: number; bytesAfterS: number }[] = [];
  readonly #sockets = new Set<net.Socket>();

  private constructor(
    readonly server: net.Server,
    readonly port: number,
    readonly target: { host: string; port: number },
  ) {}

  static async start(target: { host: string; port: number }): Promise<TlsStallServer> {
    let self: TlsStallServer | undefined;
    const server = net.createServer((socket) => self?.accept(socket));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    self = new TlsStallServer(server, (server.address() as net.AddressInfo).port, target);
    return self;
  }

  accept(socket: net.Socket): void {
    this.#sockets.add(socket);
    socket.on('error', () => {});
    socket.on('close', () => this.#sockets.delete(socket));
    if (this.mode === 'forward') {
      const upstream = net.connect(this.target);
      this.#sockets.add(upstream);
      upstream.on('error', () => socket.destroy());
      upstream.on('close', () => {
        this.#sockets.delete(upstream);
        socket.destroy();
      });
      socket.on('close', () => upstream.destroy());
      socket.pipe(upstream);
      upstream.pipe(socket);
      return;
    }
    // Recorded once it asks for TLS: the pool's recovery probe sends a StartupMessage instead.
    const record: { acceptedAt: number; closedAt?: number; bytesAfterS: number } = { acceptedAt: performance.now(), bytesAfterS: 0 };
    let header = Buffer.alloc(0);
    let answered = false;
    socket.on('data', (chunk: Buffer) => {
      if (answered) {
        record.bytesAfterS += chunk.length; // the ClientHello, dropped
        return;
      }
      header = Buffer.concat([header, chunk]);
      if (header.length >= 8 && header.readInt32BE(4) === 80877103) {
        answered = true;
        this.stalled.push(record);
        socket.write('S');
        record.bytesAfterS += header.length - 8;
      }
    });
    socket.on('close', () => (record.closedAt = performance.now()));
  }

  async close(): Promise<void> {
    for (const socket of this.#sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

describe('F19 blackhole during connect / TLS handshake stall', () => {
  const CREATE_MS = 500;

  /** Poll until `pool` counts its first failed create; ms from `from`. */
  function firstCreateFailure(pool: TestPool, from: number): Promise<number> {
    return timeUntil('the first create attempt to fail', () => pool.stats().createFailed > 0, { from, timeoutMs: 5000, everyMs: 1 });
  }

  it('(a) acceptSilently: each create attempt times out at createTimeoutMs (CreateTimeoutError), its socket is destroyed, creating returns to 0; I7 once removed', async () => {
    // No recovery probe: its bare connects would be links too, and this counts one link per
    // create attempt (a silent server accepts the probe, so it never shortens the backoff).
    const { proxy, pool, obs } = await harness({ createTimeoutMs: CREATE_MS, acquireTimeoutMs: 1500, probeIntervalMs: Infinity });
    const silent = proxy.acceptSilently();
    const fault = obs.fault('accept silently');
    const op = outcome(obs.run((c) => c.query('SELECT 1')));
    const firstFailMs = await firstCreateFailure(pool, fault.at);
    const result = await op;
    const rejectedAt = result.at;
    const creatingZeroMs = await timeUntil('creating to return to 0', () => pool.stats().creating === 0, { from: rejectedAt, timeoutMs: 3000, everyMs: 2 });
    const linksClosedMs = await timeUntil('every silent link to close', () => proxy.stats().active === 0, { from: rejectedAt, timeoutMs: 3000, everyMs: 2 });
    silent.remove();
    fault.end();

    expect(firstFailMs, 'the first attempt fails at createTimeoutMs, not later').toBeLessThanOrEqual(CREATE_MS + 100 + SLACK_MS);
    expect(firstFailMs).toBeGreaterThanOrEqual(CREATE_MS - 5);
    expect(result.error, 'the acquire fails at its own deadline').toBeInstanceOf(AcquireTimeoutError);
    expect((result.error as Error).cause, `cause: the create timeout (${messages(result.error)})`).toBeInstanceOf(CreateTimeoutError);
    expect(creatingZeroMs, 'creating returns to 0 (the attempt in flight ends at its own createTimeoutMs)').toBeLessThanOrEqual(CREATE_MS + 100 + SLACK_MS);
    expect(linksClosedMs, 'every timed-out socket was destroyed (the proxy saw each close)').toBeLessThanOrEqual(CREATE_MS + 100 + SLACK_MS);
    const attempts = proxy.stats().accepted;
    expect(pool.stats().createFailed, 'every accepted link was one failed attempt').toBe(attempts);
    note('F19a', { firstFailMs: round(firstFailMs), acquireMs: round(rejectedAt - fault.at), attempts, creatingZeroMs: round(creatingZeroMs), linksClosedMs: round(linksClosedMs), reason: (result.error as AcquireTimeoutError).reason });

    const recoveryMs = await obs.recovery(2000);
    expect(recoveryMs, 'I7').toBeLessThanOrEqual(2000);
    await obs.finish();
    obs.assertInvariants();
    obs.assertErrorBudget(fault.endedAt!, 1); // the one acquire issued into the fault
    await obs.assertNoOrphans();
    await obs.closeAndCheck();
  });

  it("(b) TLS handshake stall (SSLRequest answered 'S', then nothing): CreateTimeoutError at createTimeoutMs, socket destroyed; I7 once the server answers", async () => {
    const { a, caPem } = await testCerts();
    await tlsForThisTest(a); // for the recovery: the relay then reaches a TLS-enabled server
    const proxy = await startProxy();
    const stall = await TlsStallServer.start({ host: proxy.host, port: proxy.port });
    cleanups.push(() => stall.close());
    const acquireTimeoutMs = 1500;
    const pool = db.pool({ host: '127.0.0.1', port: stall.port, ssl: { ca: caPem, rejectUnauthorized: true }, createTimeoutMs: CREATE_MS, acquireTimeoutMs });
    const obs = new Observer(db, pool, { max: MAX, acquireTimeoutMs }).start();

    const fault = obs.fault('TLS handshake stall');
    const op = outcome(obs.run((c) => c.query('SELECT 1')));
    const firstFailMs = await firstCreateFailure(pool, fault.at);
    const result = await op;
    const creatingZeroMs = await timeUntil('creating to return to 0', () => pool.stats().creating === 0, { from: result.at, timeoutMs: 3000, everyMs: 2 });
    await timeUntil('every stalled socket to close', () => stall.stalled.every((s) => s.closedAt !== undefined), { timeoutMs: 3000 });
    stall.mode = 'forward';
    fault.end();

    expect(stall.stalled.length, 'attempts reached the stalled server').toBeGreaterThanOrEqual(1);
    for (const s of stall.stalled) {
      expect(s.bytesAfterS, 'the client started the TLS handshake after the S (a ClientHello was sent and dropped)').toBeGreaterThan(0);
      const openMs = s.closedAt! - s.acceptedAt;
      expect(openMs, `a stalled socket was closed ${round(openMs)} ms after accept: <= createTimeoutMs + 100`).toBeLessThanOrEqual(CREATE_MS + 100 + SLACK_MS);
    }
    expect(firstFailMs, 'the first attempt fails at createTimeoutMs').toBeLessThanOrEqual(CREATE_MS + 100 + SLACK_MS);
    expect(result.error).toBeInstanceOf(AcquireTimeoutError);
    expect((result.error as Error).cause, `cause: the create timeout (${messages(result.error)})`).toBeInstanceOf(CreateTimeoutError);
    expect(creatingZeroMs).toBeLessThanOrEqual(CREATE_MS + 100 + SLACK_MS);
    expect(pool.stats().createFailed).toBe(stall.stalled.length);
    note('F19b', { firstFailMs: round(firstFailMs), attempts: stall.stalled.length, socketOpenMs: stall.stalled.map((s) => round(s.closedAt! - s.acceptedAt)), creatingZeroMs: round(creatingZeroMs) });

    const recoveryMs = await obs.recovery(2000);
    expect(recoveryMs, 'I7: through the relay to the TLS server').toBeLessThanOrEqual(2000);
    const tls = await pool.withConnection(async (client) => (await client.query<{ ssl: boolean }>('SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()')).rows[0]?.ssl);
    expect(tls, 'the recovered connection is TLS').toBe(true);
    await obs.finish();
    obs.assertInvariants();
    obs.assertErrorBudget(fault.endedAt!, 1);
    await obs.assertNoOrphans();
    await obs.closeAndCheck();
  });

  it('(c) 100 sequential timed-out creates leave no socket, pool timer or listener behind', async () => {
    const clock = new CountingClock();
    const sockets: net.Socket[] = [];
    const { proxy, pool, obs } = await harness({
      createTimeoutMs: 20,
      retry: { minTimeoutMs: 0, maxTimeoutMs: 0 }, // back to back: 100 attempts in ~2 s
      circuitBreaker: false,
      probeIntervalMs: Infinity, // its bare connects are sockets too; this counts one per create attempt
      clock,
      // pg's `stream` factory, only to see every socket the attempts open.
      stream: () => {
        const socket = new net.Socket();
        sockets.push(socket);
        return socket;
      },
    });
    await sleep(50);
    const handlesBefore = handleCounts();
    const timersBefore = clock.live.size;
    const processListenersBefore = processListeners();

    const silent = proxy.acceptSilently();
    const fault = obs.fault('accept silently, 100 attempts');
    const controller = new AbortController();
    const stalled = outcome(pool.acquire({ signal: controller.signal, timeoutMs: 20_000 }));
    await timeUntil('100 failed create attempts', () => pool.stats().createFailed >= 100, { timeoutMs: 15_000, everyMs: 5 });
    const abortedAt = performance.now();
    controller.abort(new Error('enough'));
    const result = await stalled;
    const creatingZeroMs = await timeUntil('the last attempt to end', () => pool.stats().creating === 0, { from: abortedAt, timeoutMs: 2000, everyMs: 2 });
    await timeUntil('every attempt link to close at the proxy', () => proxy.stats().active === 0, { timeoutMs: 2000, everyMs: 2 });
    silent.remove();
    fault.end();
    await sleep(50);
    const handlesAfter = handleCounts();
    const attempts = pool.stats().createFailed;

    expect(result.error, 'the acquire ended by its signal').toBeInstanceOf(Error);
    expect((result.error as Error).message).toBe('enough');
    expect(attempts).toBeGreaterThanOrEqual(100);
    expect(creatingZeroMs, 'the attempt in flight at the abort ends within createTimeoutMs').toBeLessThanOrEqual(20 + 100 + SLACK_MS);
    expect(sockets.length, 'one socket per attempt').toBe(attempts);
    expect(sockets.filter((s) => !s.destroyed).length, 'every attempt socket is destroyed').toBe(0);
    expect(processListeners(), 'no listener added to process').toEqual(processListenersBefore);
    expect(getEventListeners(controller.signal, 'abort'), 'no listener left on the acquire signal').toHaveLength(0);
    // The aborted acquire's deadline timer may stay armed until its (20 s) deadline: bounded and not
    // per attempt. No timer with an attempt's delay (createTimeoutMs, backoff) may be left.
    const leftDelays = [...clock.liveDelays.values()];
    expect(leftDelays.filter((ms) => ms < 15_000), `pool timers left (delays in ms): ${JSON.stringify(leftDelays)}`).toEqual([]);
    expect(clock.live.size, `pool timers: ${timersBefore} before, ${clock.live.size} after`).toBeLessThanOrEqual(timersBefore + 1);
    expect(handlesAfter.TCPSocketWrap ?? 0, `TCP sockets: ${JSON.stringify(handlesBefore)} before, ${JSON.stringify(handlesAfter)} after`).toBeLessThanOrEqual(handlesBefore.TCPSocketWrap ?? 0);
    note('F19c', { attempts, attemptsPerS: Math.round(attempts / ((abortedAt - fault.at) / 1000)), creatingZeroMs: round(creatingZeroMs), timersBefore, timersAfter: clock.live.size, leftDelays: leftDelays.map(Math.round), handlesBefore, handlesAfter });

    await obs.finish();
    obs.assertInvariants();
    // No I7 here: with a 20 ms createTimeoutMs a real connect (SCRAM through the proxy) may not fit;
    // recovery from this fault is measured in (a).
    await obs.assertNoOrphans();
    await obs.closeAndCheck();
  });
});

// ------------------------------------------------------------------ F20

/** Round trips of SELECT 1 on a raw client through `proxy` (ms, sorted). */
async function roundTrips(proxy: ChaosProxy, n: number): Promise<number[]> {
  const client = new pg.Client({ ...db.connection(), host: proxy.host, port: proxy.port, application_name: 'lifeguard-rtt-probe' });
  client.on('error', () => {});
  await client.connect();
  try {
    const out: number[] = [];
    for (let i = 0; i < n; i++) {
      const from = performance.now();
      await client.query('SELECT 1');
      out.push(performance.now() - from);
    }
    return out.sort((a, b) => a - b);
  } finally {
    await client.end().catch(() => {});
  }
}

function sha256(value: unknown): string {
  return createHash('sha256').update(JSON.stringify(value)).digest('hex');
}

describe('F20 slow network: latency, jitter, bandwidth, slicing', () => {
  it('(a) latency 100 ± 50 ms both ways, pingTimeoutMs 500: 0 evictions, 0 errors; saturated throughput follows the RTT with bounded waits; idle borrows ping without false timeouts', async () => {
    const PING_TIMEOUT_MS = 500;
    const { proxy, pool, obs } = await harness({ pingIfIdleMs: 0, pingTimeoutMs: PING_TIMEOUT_MS, createTimeoutMs: 3000 });
    // Borrow-time pings are the adapter's `SELECT 1`; the work is `SELECT 2`, so pings can be told apart and timed.
    const pings: { at: number; ms: number }[] = [];
    const watched = new WeakSet<pg.Client>();
    const work = (client: pg.Client): Promise<unknown> => {
      if (!watched.has(client)) {
        watched.add(client);
        const query = client.query;
        client.query = function (this: pg.Client, ...args: unknown[]): unknown {
          const result: unknown = (query as (...a: unknown[]) => unknown).apply(this, args);
          if (args[0] === 'SELECT 1' && result instanceof Promise) {
            const from = performance.now();
            result.then(
              () => pings.push({ at: from, ms: performance.now() - from }),
              () => pings.push({ at: from, ms: Infinity }),
            );
          }
          return result;
        } as typeof client.query;
      }
      return client.query('SELECT 2');
    };
    const saturated = obs.load({ work });
    await waitFor('the pool to fill under load', () => pool.stats().size === MAX, { timeoutMs: 3000 });
    const controlRtt = await roundTrips(proxy, 5);

    const fault = obs.fault('latency 100 ± 50 ms');
    const toxic = proxy.latency(100, 50); // every link, both directions
    const probe = roundTrips(proxy, 8); // on its own link, alongside the pool
    await sleep(400); // past the operations that straddle the change
    const measureFrom = performance.now();
    await sleep(1600);
    const measureTo = performance.now();
    const rtt = await probe;
    // Phase 2: workers that pause 150 ms between operations leave connections idle, so borrows ping.
    await saturated.stop();
    const pingsFrom = performance.now();
    obs.load({ work, thinkMs: 150 });
    await sleep(1200);
    toxic.remove();
    fault.end();
    const report = await obs.finish();

    // Saturated (8 workers on 5): a released connection goes straight to the next waiter, so each
    // operation holds it for one round trip.
    const window = obs.records.filter((r) => r.startedAt >= measureFrom && r.endedAt !== undefined && r.endedAt <= measureTo);
    const opsPerS = window.length / ((measureTo - measureFrom) / 1000);
    const rttMean = rtt.reduce((a, b) => a + b, 0) / rtt.length;
    const rttMax = rtt[rtt.length - 1]!;
    const expectedOpsPerS = MAX / (rttMean / 1000);
    const waits = window.map(settleMs);
    const p99Wait = percentile(waits, 99);
    const queueDepth = 8 - MAX;
    const serviceMs = controlRtt[controlRtt.length - 1]!; // the server's share: SELECT's round trip without the toxic
    const waitBound = queueDepth * (rttMax + serviceMs);
    const phase2Pings = pings.filter((p) => p.at >= pingsFrom);
    const slowestPing = Math.max(...phase2Pings.map((p) => p.ms));

    expect(rtt[0], 'the latency is really there: RTT >= 2 × (100 − 50) ms').toBeGreaterThanOrEqual(100 - 5);
    expect(obs.failures(), '0 errors').toEqual([]);
    expect(pool.stats().destroyed, '0 evictions (no false ping timeouts)').toBe(0);
    expect(window.length, 'operations ran under latency').toBeGreaterThan(10);
    expect(opsPerS, `throughput follows the slowdown: ${round(opsPerS)}/s vs ${round(expectedOpsPerS)}/s expected from the RTT`).toBeGreaterThanOrEqual(0.6 * expectedOpsPerS);
    expect(opsPerS).toBeLessThanOrEqual(1.4 * expectedOpsPerS);
    expect(p99Wait, `p99 acquire wait <= queue depth (${queueDepth}) × (RTT + service) = ${round(waitBound)} ms`).toBeLessThanOrEqual(waitBound);
    expect(phase2Pings.length, 'idle borrows were pinged through the latency').toBeGreaterThanOrEqual(5);
    expect(slowestPing, 'every ping round trip stayed under pingTimeoutMs').toBeLessThan(PING_TIMEOUT_MS);
    note('F20a', {
      rttMs: { control: round(serviceMs), min: round(rtt[0]!), mean: round(rttMean), max: round(rttMax) },
      opsPerS: round(opsPerS),
      expectedOpsPerS: round(expectedOpsPerS),
      p50Wait: round(percentile(waits, 50)),
      p99Wait: round(p99Wait),
      waitBound: round(waitBound),
      pings: phase2Pings.length,
      slowestPingMs: round(slowestPing),
      ops: report.ops,
      destroyed: pool.stats().destroyed,
    });

    obs.assertInvariants();
    obs.assertErrorBudget(fault.at);
    expect(await obs.recovery(2000), 'I7').toBeLessThanOrEqual(2000);
    await obs.assertNoOrphans();
    await obs.closeAndCheck();
  });

  it('(b) bandwidth 16 KB/s downstream: a 200 KB result hits queryTimeoutMs (client destroyed, never a hang), a 4 KB one succeeds; the load is unaffected', async () => {
    const QUERY_TIMEOUT_MS = 1000;
    const { proxy, pool, obs } = await harness({ queryTimeoutMs: QUERY_TIMEOUT_MS });
    obs.load({});
    await waitFor('the pool to fill under load', () => pool.stats().size === MAX, { timeoutMs: 3000 });

    const fault = obs.fault('bandwidth 16 KB/s downstream');
    const toxic = proxy.bandwidth(16, { direction: 'downstream' });
    const brokenBefore = pool.stats().destroyedByReason.broken;
    let bigClient: pg.Client | undefined;
    const bigFrom = performance.now();
    const big = await outcome(
      pool.withConnection((client) => {
        bigClient = client;
        return client.query<{ r: string }>("SELECT repeat('x', 200000) AS r");
      }),
    );
    const bigMs = big.at - bigFrom;
    // withConnection settles after the destroy: by then the socket must be gone.
    const socketGoneAtSettle = streamOf(bigClient!).destroyed;
    const smallFrom = performance.now();
    const small = await outcome(pool.query<{ r: string }>("SELECT repeat('y', 4000) AS r"));
    const smallMs = small.at - smallFrom;
    toxic.remove();
    fault.end();
    await sleep(200);
    const report = await obs.finish();

    expect(big.error, 'the 200 KB result cannot arrive within queryTimeoutMs at 16 KB/s').toBeInstanceOf(Error);
    expect((big.error as Error).message, 'the client-side query timeout').toMatch(/Query read timeout/);
    expect(bigMs, `rejected after ${round(bigMs)} ms: <= queryTimeoutMs + 100 (never a hang)`).toBeLessThanOrEqual(QUERY_TIMEOUT_MS + 100 + SLACK_MS);
    expect(pool.stats().destroyedByReason.broken - brokenBefore, 'the timed-out client was destroyed').toBe(1);
    expect(socketGoneAtSettle, 'its socket was destroyed by the time the caller got the error').toBe(true);
    expect(small.error, `the 4 KB result fits: ${String(small.error)}`).toBeUndefined();
    expect(small.value?.rows[0]?.r, 'complete').toBe('y'.repeat(4000));
    expect(smallMs, 'and was really slowed (4 KB at 16 KB/s ~ 250 ms)').toBeGreaterThanOrEqual(200);
    expect(obs.failures(), 'the background load (SELECT 1) saw no error').toEqual([]);
    note('F20b', { bigMs: round(bigMs), bigError: String(big.error), smallMs: round(smallMs), ops: report.ops });

    obs.assertInvariants();
    obs.assertErrorBudget(fault.at);
    expect(await obs.recovery(2000), 'I7').toBeLessThanOrEqual(2000);
    await obs.assertNoOrphans();
    await obs.closeAndCheck();
  });

  it('(c) slicer (10 ± 5 B pieces, 100 µs apart) on every link from the first byte: byte-identical results under load, 0 errors', async () => {
    const sql = "SELECT i, md5(i::text) AS h, repeat(chr(65 + i % 26), i % 40) AS s, (i * 1.5)::numeric AS n, (i % 3 = 0) AS b FROM generate_series(1, 300) i ORDER BY i";
    const reference = sha256((await db.admin(sql)).rows);
    const proxy = await startProxy();
    const toxic = proxy.slicer(10, 5, 100); // before the pool connects: startup and auth are sliced too
    const { pool, obs } = await harness({}, proxy);
    const fault = obs.fault('slicer');
    const hashes: string[] = [];
    obs.load({ work: async (client) => hashes.push(sha256((await client.query(sql)).rows)) });
    await sleep(2000);
    toxic.remove();
    fault.end();
    const report = await obs.finish();
    const stats = proxy.stats();

    expect(obs.failures(), '0 errors').toEqual([]);
    expect(hashes.length, 'results arrived through the slicer').toBeGreaterThanOrEqual(10);
    expect(hashes.filter((h) => h !== reference), 'every result is byte-identical to the direct one').toEqual([]);
    expect(pool.stats().destroyed, '0 evictions').toBe(0);
    note('F20c', { results: hashes.length, ops: report.ops, bytesDown: stats.bytesDown, bytesUp: stats.bytesUp, created: pool.stats().created });

    obs.assertInvariants();
    obs.assertErrorBudget(fault.at);
    expect(await obs.recovery(2000), 'I7').toBeLessThanOrEqual(2000);
    await obs.assertNoOrphans();
    await obs.closeAndCheck();
  });
});

// ------------------------------------------------------------------ F21

describe('F21 connection closed mid-result (limit_data)', () => {
  it('limitData(64 KB) downstream, 1 MB results under load: 100 % reject, never a truncated success, clients destroyed; healthy once removed', async () => {
    const sql = "SELECT i, repeat('x', 1000) AS pad FROM generate_series(1, 1000) i";
    const { proxy, pool, obs } = await harness();
    await fill(obs, MAX);
    const reference = sha256((await db.admin(sql)).rows);

    const fault = obs.fault('limit_data 64 KB downstream');
    const toxic = proxy.limitData(64 * 1024, { direction: 'downstream' }); // existing and new links
    const linksBefore = proxy.stats().accepted;
    const outcomes: { rows?: number; error?: unknown }[] = [];
    obs.load({
      work: async (client) => {
        try {
          const { rows } = await client.query(sql);
          outcomes.push({ rows: rows.length });
        } catch (error) {
          outcomes.push({ error });
          throw error;
        }
      },
    });
    await sleep(1000);
    await obs.finish(); // stop the 1 MB load, with the toxic still on
    toxic.remove();
    fault.end();
    const linksHit = proxy.stats().accepted - linksBefore + MAX;

    const resolved = outcomes.filter((o) => o.error === undefined);
    expect(outcomes.length, 'many 1 MB queries were tried').toBeGreaterThan(10);
    expect(resolved.map((o) => o.rows), '0 resolve (a truncated result is never a success)').toEqual([]);
    for (const o of outcomes) expect(isConnectionFatal(o.error), `connection lost: ${String(o.error)}`).toBe(true);
    expect(pool.stats().destroyedByReason.broken, 'every cut client was destroyed').toBe(outcomes.length);
    const errorsBefore = obs.failures().length;
    expect(errorsBefore, 'no acquire failed: only the cut queries').toBe(outcomes.length);

    // The next acquire is healthy: the full 1 MB arrives, byte-identical.
    const recoveryMs = await obs.recovery(2000);
    const full = await pool.query(sql);
    expect(full.rows).toHaveLength(1000);
    expect(sha256(full.rows), 'the whole result, byte-identical').toBe(reference);
    const quietFrom = performance.now();
    const obs2 = new Observer(db, pool, { max: MAX, acquireTimeoutMs: ACQUIRE_TIMEOUT_MS }).start();
    obs2.load({});
    await sleep(300);
    await obs2.finish();
    expect(obs2.failures(), 'operations after the toxic is gone: 0 errors').toEqual([]);
    note('F21', { tried: outcomes.length, resolved: resolved.length, kinds: errorsByKind(outcomes), linksHit, recoveryMs: round(recoveryMs), opsAfter: obs2.records.length });

    expect(recoveryMs, 'I7').toBeLessThanOrEqual(2000);
    obs.assertInvariants();
    obs2.assertInvariants();
    // I9: each link the toxic cut could fail at most the one operation it carried.
    obs.assertErrorBudget(quietFrom, linksHit);
    await obs.assertNoOrphans();
    await obs.closeAndCheck();
  });
});

// ------------------------------------------------------------------ F22

describe('F22 slow close', () => {
  it('slowClose(5000) on every link, destroys by maxLifetime under load, then close(): acquires not slowed, close() <= destroyTimeoutMs + 200 ms, sockets hard-destroyed', async () => {
    const DESTROY_TIMEOUT_MS = 1000;
    const { proxy, pool, obs } = await harness({ maxLifetimeMs: 300, destroyTimeoutMs: DESTROY_TIMEOUT_MS });
    const clients = new Set<pg.Client>();
    obs.load({
      work: (client) => {
        clients.add(client);
        return client.query('SELECT 1');
      },
    });
    await waitFor('the pool to fill under load', () => pool.stats().size === MAX, { timeoutMs: 3000 });
    const controlFrom = performance.now();
    await sleep(1000);
    const controlTo = performance.now();
    const destroyedInControl = pool.stats().destroyed;

    const fault = obs.fault('slow close 5 s');
    proxy.slowClose(5000);
    await sleep(1500);
    const faultTo = performance.now();
    await obs.finish();
    const destroyedInFault = pool.stats().destroyed - destroyedInControl;

    const closeFrom = performance.now();
    const closed = await outcome(pool.close({ timeoutMs: 5000 }));
    const closeMs = closed.at - closeFrom;
    await sleep(200);
    const stillOpen = [...clients].filter((c) => !streamOf(c).destroyed).length;
    const openAfterMs = await timeUntil('every pool socket to close', () => [...clients].every((c) => streamOf(c).destroyed), { from: closeFrom, timeoutMs: DESTROY_TIMEOUT_MS + 1000, everyMs: 20 }).catch(() => Infinity);
    fault.end();

    const waitsOf = (from: number, to: number): number[] => obs.records.filter((r) => r.startedAt >= from && r.startedAt < to).map(settleMs);
    const control = waitsOf(controlFrom, controlTo);
    const faulty = waitsOf(fault.at, faultTo);
    const p99Control = percentile(control, 99);
    const p99Fault = percentile(faulty, 99);
    const destroyTimeouts = pool.backgroundErrors.filter((e) => e instanceof DestroyTimeoutError).length;
    const otherBackground = pool.backgroundErrors.filter((e) => !(e instanceof DestroyTimeoutError));

    expect(destroyedInFault, 'many destroys happened under the slow close (lifetime 300 ms)').toBeGreaterThanOrEqual(10);
    expect(destroyTimeouts, 'polite closes that hang are cut at destroyTimeoutMs and reported (typed)').toBeGreaterThan(0);
    expect(otherBackground.map(String), 'nothing else reported').toEqual([]);
    expect(obs.failures(), '0 failed operations').toEqual([]);
    expect(faulty.length).toBeGreaterThan(50);
    expect(p99Fault, `no acquire slowed by > 50 ms through destroys: p99 ${round(p99Fault)} ms vs ${round(p99Control)} ms without the toxic`).toBeLessThanOrEqual(p99Control + 50);
    expect(closed.error, 'close() resolves').toBeUndefined();
    expect(closeMs, `close() settled after ${round(closeMs)} ms: <= destroyTimeoutMs + 200`).toBeLessThanOrEqual(DESTROY_TIMEOUT_MS + 200 + SLACK_MS);
    note('F22', { destroyedInFault, destroyTimeouts, p99ControlMs: round(p99Control), p99FaultMs: round(p99Fault), maxFaultMs: round(Math.max(...faulty)), closeMs: round(closeMs), socketsOpen200msAfterClose: stillOpen, allSocketsClosedAfterMs: Number.isFinite(openAfterMs) ? Math.round(openAfterMs) : `not within ${DESTROY_TIMEOUT_MS + 1000} ms` });
    // FAULTS F22: the socket is hard-destroyed after destroyTimeoutMs (I5: no sockets remain after close()).
    expect.soft(stillOpen, `pool sockets still open 200 ms after close() settled (${Number.isFinite(openAfterMs) ? `all closed ${Math.round(openAfterMs)} ms after close()` : 'still open 2 s after close()'})`).toBe(0);

    obs.assertInvariants();
    obs.assertErrorBudget(fault.at);
    await obs.closeAndCheck();
  });
});

// ------------------------------------------------------------------ F23

/** Listener counts on a client, its connection and its socket, by event. */
function listenerProfile(client: pg.Client): string {
  const counts = (emitter: NodeJS.EventEmitter): Record<string, number> =>
    Object.fromEntries(emitter.eventNames().map((name) => [String(name), emitter.listenerCount(name)]).sort(([a], [b]) => String(a).localeCompare(String(b))));
  const connection = (client as unknown as { connection: NodeJS.EventEmitter }).connection;
  return JSON.stringify({ client: counts(client), connection: counts(connection), stream: counts(streamOf(client)) });
}

describe('F23 proxy down/up flapping (ECONNREFUSED + FIN storms)', () => {
  it('down 500 ms / up 500 ms for 6 s under load: never wedged, >= 90 % success in up windows, no listener or timer growth, ends like a fresh pool', async () => {
    const FLAPS = 6;
    const clock = new CountingClock();
    // Riding out 500 ms flaps needs retries at a fraction of the window, and no breaker: DESIGN's
    // defaults (backoff 100 ms doubling to 5 s; breaker after 5 failures, 1 s cooldown) by contract
    // miss most 500 ms up windows and fail queued callers fast while open (measured: see the report).
    const RETRY = { minTimeoutMs: 25, maxTimeoutMs: 50 };
    const { proxy, pool, obs } = await harness({ clock, retry: RETRY, circuitBreaker: false });
    const fresh = await fill(obs, MAX);
    const baselineProfile = listenerProfile([...fresh][0]!);
    for (const client of fresh) expect(listenerProfile(client), 'fresh clients share one listener profile').toBe(baselineProfile);
    await sleep(20);
    const baselineTimers = [...clock.liveDelays.values()];

    const t = tracked();
    obs.load({ work: t.work });
    await sleep(300);
    const probes: Promise<{ window: number; issued: number; ok: boolean; error: unknown }>[] = [];
    const windows: { up: boolean; from: number; to: number; createdBefore: number; createdAfter?: number; failuresAtEnd?: number; createFailed: number }[] = [];
    for (let i = 0; i < FLAPS; i++) {
      const downAt = performance.now();
      const mark = obs.fault(`down #${i}`);
      await proxy.down(); // refuse new connects, FIN/destroy every link
      const failedAtDown = pool.stats().createFailed;
      windows.push({ up: false, from: downAt, to: 0, createdBefore: pool.stats().created, createFailed: failedAtDown });
      await sleep(Math.max(0, downAt + 500 - performance.now()));
      await proxy.up();
      const upAt = performance.now();
      mark.end();
      const down = windows[windows.length - 1]!;
      down.to = upAt;
      down.createFailed = pool.stats().createFailed - failedAtDown;
      const up = { up: true, from: upAt, to: 0, createdBefore: pool.stats().created, createFailed: 0 } as (typeof windows)[number];
      windows.push(up);
      // Open-loop probes (the workers block while the pool cannot serve, so they cannot tell): every
      // 25 ms of the up window, one operation that must be served before the window ends.
      for (let at = upAt; at < upAt + 450; at += 25) {
        await sleep(Math.max(0, at - performance.now()));
        const issued = performance.now();
        probes.push(outcome(pool.withConnection((c) => c.query('SELECT 1'), { timeoutMs: Math.max(1, upAt + 500 - issued) })).then((o) => ({ window: i, issued, ok: o.error === undefined, error: o.error })));
      }
      await sleep(Math.max(0, upAt + 500 - performance.now()));
      up.to = performance.now();
      up.createdAfter = pool.stats().created;
      up.failuresAtEnd = pool.stats().consecutiveCreateFailures;
    }
    const quietFrom = performance.now();
    await sleep(300);
    const report = await obs.finish();
    await sleep(50);

    const ups = windows.filter((w) => w.up);
    const probed = await Promise.all(probes);
    const upRate = probed.filter((p) => p.ok).length / probed.length;
    const perUp = ups.map((_, i) => {
      const mine = probed.filter((p) => p.window === i);
      return round((100 * mine.filter((p) => p.ok).length) / mine.length);
    });
    // Closed loop: operations the workers started while the server was up.
    const upOps = obs.records.filter((r) => ups.some((w) => r.startedAt >= w.from && r.startedAt < w.to));
    const workerUpRate = upOps.filter((r) => r.error === undefined).length / Math.max(1, upOps.length);
    const workerOpsPerUp = ups.map((w) => obs.records.filter((r) => r.startedAt >= w.from && r.startedAt < w.to).length);
    const probeKinds = errorsByKind(probed.filter((p) => !p.ok));
    const downs = windows.filter((w) => !w.up);
    const attemptsPerSDown = downs.reduce((n, w) => n + w.createFailed, 0) / (downs.reduce((n, w) => n + (w.to - w.from), 0) / 1000);
    const failed = obs.failures();

    expect(probed.length).toBe(FLAPS * 18);
    expect(upRate, `success rate in up windows ${round(upRate * 100)} % (per window: ${perUp.join(', ')}; probe failures ${JSON.stringify(probeKinds)})`).toBeGreaterThanOrEqual(0.9);
    for (const w of ups) {
      if (w.createdAfter! > w.createdBefore) expect(w.failuresAtEnd, 'back-off reset by a successful create').toBe(0);
    }
    expect(attemptsPerSDown, `I10: connect attempts/s while down <= max / retry.minTimeout (${MAX / (RETRY.minTimeoutMs / 1000)}/s)`).toBeLessThanOrEqual(MAX / (RETRY.minTimeoutMs / 1000));
    const end = pool.stats();
    expect(end.waiting, 'final state: nobody waiting').toBe(0);
    expect(end.size, 'final state: size <= max').toBeLessThanOrEqual(MAX);
    expect(end.consecutiveCreateFailures, 'final state: no failure streak').toBe(0);
    // Every live client: the listener profile of a fresh one.
    const leases = await Promise.all(Array.from({ length: MAX }, () => pool.acquire()));
    for (const lease of leases) expect(listenerProfile(lease.resource), 'listener counts on every live client == baseline').toBe(baselineProfile);
    for (const lease of leases) await lease.release();
    const endTimers = [...clock.liveDelays.values()];
    expect(endTimers.length, `pool timers: ${JSON.stringify(baselineTimers)} at the start, ${JSON.stringify(endTimers)} at the end`).toBeLessThanOrEqual(baselineTimers.length);
    note('F23', {
      flaps: FLAPS,
      ops: report.ops,
      failed: failed.length,
      kinds: errorsByKind(failed),
      upRatePct: round(upRate * 100),
      perUpPct: perUp,
      probeKinds,
      workerUpRatePct: round(workerUpRate * 100),
      workerOpsPerUp,
      attemptsPerSDown: round(attemptsPerSDown),
      inFlightAtDowns: obs.faults.map((f) => f.inFlight),
      created: end.created,
      circuitOpenRejects: end.rejected.circuitOpen,
      maxServerSessions: report.maxServerSessions,
      timers: { start: baselineTimers.length, end: endTimers.length },
    });

    obs.assertInvariants();
    obs.assertErrorBudget(quietFrom);
    expect(await obs.recovery(2000), 'I7').toBeLessThanOrEqual(2000);
    await obs.assertNoOrphans();
    await obs.closeAndCheck();
  });
});

// ------------------------------------------------------------------ F24

/**
 * pg's `stream` option (a function: pg calls it for every new Client, then `stream.connect(port,
 * host)`): a plain socket whose connect resolves `host` through `lookup`, the seam for DNS faults.
 */
function resolvingStream(lookup: LookupFunction): () => net.Socket {
  return () => {
    const socket = new net.Socket();
    const connect = socket.connect.bind(socket) as (options: net.TcpSocketConnectOpts) => net.Socket;
    (socket as unknown as { connect: (port: number, host: string) => net.Socket }).connect = (port, host) => connect({ port, host, lookup });
    return socket;
  };
}

/** Answer a lookup with one IPv4 address, in whichever shape the caller asked for (`all` or not). */
function answer(options: { readonly all?: boolean | undefined }, callback: (...args: never[]) => void, address: string): void {
  const cb = callback as unknown as (error: Error | null, address: string | { address: string; family: number }[], family?: number) => void;
  if (options.all === true) cb(null, [{ address, family: 4 }]);
  else cb(null, address, 4);
}

function dnsError(code: string, hostname: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`getaddrinfo ${code} ${hostname}`), { code, errno: code === 'EAI_AGAIN' ? -3001 : -3008, syscall: 'getaddrinfo', hostname });
}

describe('F24 DNS failure', () => {
  it('(a) host db.invalid (NXDOMAIN from the system resolver): ENOTFOUND is non-transient, each acquire rejects <= 200 ms after exactly 1 attempt; I7 once the name resolves', async () => {
    // The plain configuration first: pg resolves the host itself.
    const plain = db.pool({ host: 'db.invalid', createTimeoutMs: CREATE_TIMEOUT_MS, acquireTimeoutMs: ACQUIRE_TIMEOUT_MS });
    const plainFrom = performance.now();
    const plainResult = await outcome(plain.acquire());
    const plainMs = plainResult.at - plainFrom;
    expect(plainResult.error, messages(plainResult.error)).toBeInstanceOf(CreateResourceError);
    expect(codes(plainResult.error), 'cause.code ENOTFOUND').toContain('ENOTFOUND');
    expect(isRetryableConnectError((plainResult.error as Error).cause), 'classified non-transient').toBe(false);
    expect((plainResult.error as CreateResourceError).attempts, 'exactly 1 attempt').toBe(1);
    expect(plainMs, 'fails fast: <= 200 ms, not acquireTimeoutMs').toBeLessThanOrEqual(200);
    await plain.close();

    // Through the lookup seam, so the name can start resolving (the fault removed).
    const proxy = await startProxy();
    let resolves = false;
    const lookups: string[] = [];
    const lookup: LookupFunction = (hostname, options, callback) => {
      lookups.push(hostname);
      if (resolves) answer(options, callback, proxy.host);
      else dnsLookup(hostname, options, callback);
    };
    const { pool, obs } = await harness({ host: 'db.invalid', port: proxy.port, stream: resolvingStream(lookup) }, proxy);
    const fault = obs.fault('NXDOMAIN');
    const results: { ms: number; error: unknown }[] = [];
    for (let i = 0; i < 3; i++) {
      const from = performance.now();
      const r = await outcome(obs.run((c) => c.query('SELECT 1')));
      results.push({ ms: r.at - from, error: r.error });
    }
    for (const r of results) {
      expect(r.error, messages(r.error)).toBeInstanceOf(CreateResourceError);
      expect(codes(r.error)).toContain('ENOTFOUND');
      expect((r.error as CreateResourceError).attempts).toBe(1);
      expect(r.ms, 'each acquire rejects <= 200 ms').toBeLessThanOrEqual(200);
    }
    expect(pool.stats().createFailed, 'one attempt per acquire').toBe(3);
    expect(lookups, 'one lookup per attempt').toHaveLength(3);
    expect(proxy.stats().accepted, 'nothing was dialled').toBe(0);
    resolves = true;
    fault.end();
    const recoveryMs = await obs.recovery(2000);
    note('F24a', { plainMs: round(plainMs), acquireMs: results.map((r) => round(r.ms)), cause: codes(plainResult.error), recoveryMs: round(recoveryMs) });

    expect(recoveryMs, 'I7').toBeLessThanOrEqual(2000);
    await obs.finish();
    obs.assertInvariants();
    obs.assertErrorBudget(fault.endedAt!, 3); // the 3 acquires issued into the fault
    await obs.assertNoOrphans();
    await obs.closeAndCheck();
  });

  const timers = new Set<NodeJS.Timeout>();
  afterEach(() => {
    for (const timer of timers) clearTimeout(timer);
    timers.clear();
  });

  it('(b) a resolver that hangs 5 s: the lookup counts against createTimeoutMs (CreateTimeoutError <= createTimeoutMs + 100 ms); I7 once it answers', async () => {
    const CREATE_MS = 500;
    const proxy = await startProxy();
    let hangs = true;
    const lookupStarts: number[] = [];
    const lookup: LookupFunction = (_hostname, options, callback) => {
      lookupStarts.push(performance.now());
      if (!hangs) return answer(options, callback, proxy.host);
      const timer = setTimeout(() => {
        timers.delete(timer);
        answer(options, callback, proxy.host);
      }, 5000);
      timers.add(timer);
    };
    const { pool, obs } = await harness({ host: 'db.test', port: proxy.port, stream: resolvingStream(lookup), createTimeoutMs: CREATE_MS, acquireTimeoutMs: 1000 }, proxy);
    const fault = obs.fault('resolver hangs');
    const op = outcome(obs.run((c) => c.query('SELECT 1')));
    const firstFailMs = await timeUntil('the first create attempt to fail', () => pool.stats().createFailed > 0, { from: fault.at, timeoutMs: 5000, everyMs: 1 });
    const result = await op;
    hangs = false;
    fault.end();

    expect(firstFailMs, 'the hanging lookup is cut at createTimeoutMs').toBeLessThanOrEqual(CREATE_MS + 100 + SLACK_MS);
    expect(firstFailMs).toBeGreaterThanOrEqual(CREATE_MS - 5);
    expect(result.error).toBeInstanceOf(AcquireTimeoutError);
    expect((result.error as Error).cause, messages(result.error)).toBeInstanceOf(CreateTimeoutError);
    expect(result.at - fault.at, 'the acquire keeps its own deadline').toBeLessThanOrEqual(1000 + 100);
    expect(proxy.stats().accepted, 'no connection was made while the resolver hung').toBe(0);
    const recoveryMs = await obs.recovery(2000);
    note('F24b hang', { firstFailMs: round(firstFailMs), acquireMs: round(result.at - fault.at), lookups: lookupStarts.length, recoveryMs: round(recoveryMs) });

    expect(recoveryMs, 'I7').toBeLessThanOrEqual(2000);
    await obs.finish();
    obs.assertInvariants();
    obs.assertErrorBudget(fault.endedAt!, 1);
    await obs.assertNoOrphans();
    await obs.closeAndCheck();
  });

  it('(b) a resolver failing with EAI_AGAIN: transient, retried with back-off until the acquire deadline (cause EAI_AGAIN); I7 once it answers', async () => {
    const proxy = await startProxy();
    let failing = true;
    const lookupTimes: number[] = [];
    const lookup: LookupFunction = (hostname, options, callback) => {
      lookupTimes.push(performance.now());
      if (failing) setImmediate(() => (callback as unknown as (error: Error) => void)(dnsError('EAI_AGAIN', hostname)));
      else answer(options, callback, proxy.host);
    };
    const { pool, obs } = await harness({ host: 'db.test', port: proxy.port, stream: resolvingStream(lookup), acquireTimeoutMs: 1000 }, proxy);
    const fault = obs.fault('EAI_AGAIN');
    const result = await outcome(obs.run((c) => c.query('SELECT 1')));
    const acquireMs = result.at - fault.at;
    await timeUntil('the retry loop to stop', () => pool.stats().creating === 0, { timeoutMs: 3000 });
    const attempts = lookupTimes.length;
    failing = false;
    fault.end();

    expect(result.error).toBeInstanceOf(AcquireTimeoutError);
    expect(codes(result.error), `cause EAI_AGAIN (${messages(result.error)})`).toContain('EAI_AGAIN');
    expect(isRetryableConnectError((result.error as Error).cause), 'EAI_AGAIN is transient').toBe(true);
    expect(acquireMs, 'retried until its own deadline, not failed fast').toBeGreaterThanOrEqual(1000 - 5);
    expect(attempts, 'retried').toBeGreaterThanOrEqual(2);
    expect(attempts / (acquireMs / 1000), 'I10: attempts/s <= max / retry.minTimeout').toBeLessThanOrEqual(MAX / 0.1);
    expect(pool.stats().createFailed, 'every lookup was one failed attempt').toBe(attempts);
    const recoveryMs = await obs.recovery(2000);
    note('F24b EAI_AGAIN', { acquireMs: round(acquireMs), attempts, gapsMs: lookupTimes.slice(1).map((t, i) => Math.round(t - lookupTimes[i]!)), recoveryMs: round(recoveryMs) });

    expect(recoveryMs, 'I7').toBeLessThanOrEqual(2000);
    await obs.finish();
    obs.assertInvariants();
    obs.assertErrorBudget(fault.endedAt!, 1);
    await obs.assertNoOrphans();
    await obs.closeAndCheck();
  });

  it('(c) re-resolve: the name moves from proxy A (127.0.0.1) to proxy B (127.0.0.2, same port); every create resolves again and lands on B from the first one', async () => {
    // Same port, another loopback address: DNS moves addresses, not ports.
    let a: ChaosProxy | undefined;
    let b: ChaosProxy | undefined;
    for (let attempt = 0; attempt < 3 && b === undefined; attempt++) {
      a = await startProxy();
      b = await startProxy({ host: '127.0.0.2', port: a.port }).catch(() => undefined);
    }
    expect(b, 'a second proxy on 127.0.0.2 with the same port').toBeDefined();
    const [proxyA, proxyB] = [a!, b!];
    let target = proxyA.host;
    const lookups: string[] = [];
    const lookup: LookupFunction = (_hostname, options, callback) => {
      lookups.push(target);
      answer(options, callback, target);
    };
    const { pool, obs } = await harness({ host: 'db.test', port: proxyA.port, stream: resolvingStream(lookup) }, proxyA);
    obs.load({});
    await waitFor('the pool to fill under load', () => pool.stats().size === MAX, { timeoutMs: 3000 });
    expect(proxyA.stats().active).toBe(MAX);

    const fault = obs.fault('DNS remap A -> B');
    const acceptedA = proxyA.stats().accepted;
    const createdAtRemap = pool.stats().created;
    target = proxyB.host;
    pool.invalidate(); // retire the connections made to the old address (a rotation would do the same, later)
    const movedMs = await timeUntil('every connection to move to B', () => proxyA.stats().active === 0 && proxyB.stats().active === pool.stats().size && pool.stats().size > 0, { from: fault.at, timeoutMs: 3000 });
    await proxyA.down(); // nothing may still need A
    await sleep(300);
    fault.end();
    const report = await obs.finish();
    const createdAfter = pool.stats().created - createdAtRemap;

    expect(proxyA.stats().accepted - acceptedA, 'no create reached the old address after the remap').toBe(0);
    expect(proxyB.stats().accepted, 'every create after the remap went to B').toBe(createdAfter);
    expect(createdAfter).toBeGreaterThanOrEqual(MAX);
    expect(lookups.length, 'every create resolved the name again (nothing cached)').toBe(pool.stats().created + pool.stats().createFailed);
    expect(obs.failures(), 'the move cost no operation').toEqual([]);
    note('F24c', { movedMs: round(movedMs), createdAfter, acceptedB: proxyB.stats().accepted, lookups: lookups.length, ops: report.ops });

    obs.assertInvariants();
    obs.assertErrorBudget(fault.at);
    expect(await obs.recovery(2000), 'I7').toBeLessThanOrEqual(2000);
    await obs.assertNoOrphans();
    await obs.closeAndCheck();
  });
});

// ------------------------------------------------------------------ F25

describe('F25 TLS problems', () => {
  /** `n` sequential operations through the observer; each one's settle time and error. */
  async function sequential(obs: Observer, n: number): Promise<{ ms: number; error: unknown }[]> {
    const out: { ms: number; error: unknown }[] = [];
    for (let i = 0; i < n; i++) {
      const from = performance.now();
      const r = await outcome(obs.run((c) => c.query('SELECT 1')));
      out.push({ ms: r.at - from, error: r.error });
    }
    return out;
  }

  async function usesTls(pool: TestPool): Promise<boolean | undefined> {
    return pool.withConnection(async (client) => (await client.query<{ ssl: boolean }>('SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()')).rows[0]?.ssl);
  }

  it('(a) rejectUnauthorized and a certificate the client cannot verify (self-signed): fail fast, exactly 1 attempt per acquire; I7 once the server presents a trusted one', async () => {
    const { selfSigned, a, caPem } = await testCerts();
    await tlsForThisTest(selfSigned);
    // Literally "without a CA": no `ca` at all.
    const noCa = db.pool({ ssl: { rejectUnauthorized: true }, createTimeoutMs: CREATE_TIMEOUT_MS, acquireTimeoutMs: ACQUIRE_TIMEOUT_MS });
    const noCaFrom = performance.now();
    const noCaResult = await outcome(noCa.acquire());
    const noCaMs = noCaResult.at - noCaFrom;
    expect(noCaResult.error, messages(noCaResult.error)).toBeInstanceOf(CreateResourceError);
    expect(codes(noCaResult.error), 'the TLS verification error is the cause').toContain('DEPTH_ZERO_SELF_SIGNED_CERT');
    expect((noCaResult.error as CreateResourceError).attempts).toBe(1);
    expect(noCaMs).toBeLessThanOrEqual(CREATE_TIMEOUT_MS);
    await noCa.close();

    // The client trusts the test CA; the server presents a self-signed certificate it did not issue.
    const { proxy, pool, obs } = await harness({ ssl: { ca: caPem, rejectUnauthorized: true } });
    const fault = obs.fault('untrusted server certificate');
    const results = await sequential(obs, 3);
    for (const r of results) {
      expect(r.error, messages(r.error)).toBeInstanceOf(CreateResourceError);
      expect(codes(r.error), 'cause: the TLS verification error').toContain('DEPTH_ZERO_SELF_SIGNED_CERT');
      expect(isRetryableConnectError((r.error as Error).cause), 'a configuration error: not retried').toBe(false);
      expect((r.error as CreateResourceError).attempts, 'exactly 1 attempt').toBe(1);
      expect(r.ms, 'rejects <= createTimeoutMs').toBeLessThanOrEqual(CREATE_TIMEOUT_MS);
    }
    expect(pool.stats().createFailed, 'one attempt per acquire').toBe(3);
    expect(proxy.stats().accepted, 'one connection per acquire').toBe(3);

    await serverTls(a); // the server now presents a certificate issued by the trusted CA
    fault.end();
    const recoveryMs = await obs.recovery(2000);
    expect(recoveryMs, 'I7').toBeLessThanOrEqual(2000);
    expect(await usesTls(pool), 'the recovered connection is TLS, verified').toBe(true);
    note('F25a', { noCaMs: round(noCaMs), acquireMs: results.map((r) => round(r.ms)), cause: codes(results[0]!.error), recoveryMs: round(recoveryMs) });

    await obs.finish();
    obs.assertInvariants();
    obs.assertErrorBudget(fault.endedAt!, 3);
    await obs.assertNoOrphans();
    await obs.closeAndCheck();
  });

  it('(b) the server rotates its certificate (new files + reload) while the pool is warm under load: existing TLS sessions go on, new ones verify the new certificate, 0 errors', async () => {
    const { a, b, caPem } = await testCerts();
    await tlsForThisTest(a);
    const { pool, obs } = await harness({ ssl: { ca: caPem, rejectUnauthorized: true } });
    const seen = new Map<pg.Client, string>();
    obs.load({
      work: (client) => {
        if (!seen.has(client)) seen.set(client, (streamOf(client) as TLSSocket).getPeerCertificate().fingerprint256);
        return client.query('SELECT 1');
      },
    });
    await waitFor('the pool to fill under load', () => pool.stats().size === MAX, { timeoutMs: 3000 });
    const [fpA, fpB] = [fingerprint(a.pem), fingerprint(b.pem)];
    const before = new Set(seen.keys());
    expect([...seen.values()].every((fp) => fp === fpA), 'every session started on certificate A').toBe(true);

    const fault = obs.fault('certificate rotation');
    const createdBefore = pool.stats().created;
    await serverTls(b); // returns once new connections see certificate B
    const rotatedAt = performance.now();
    await sleep(500);
    expect(pool.stats().created, 'existing TLS sessions keep working: nothing was replaced').toBe(createdBefore);
    const opsOnOldSessions = obs.records.filter((r) => r.startedAt >= rotatedAt && r.error === undefined).length;
    pool.invalidate(); // let new sessions come (a lifetime rotation would, later)
    const movedMs = await timeUntil('every pooled session to use certificate B', () => {
      const live = [...seen.entries()].filter(([client]) => !before.has(client) && !clientDead(client));
      return pool.stats().size === MAX && live.length >= MAX && live.every(([, fp]) => fp === fpB);
    }, { timeoutMs: 3000 });
    await sleep(200);
    fault.end();
    const report = await obs.finish();

    expect(obs.failures(), '0 errors across the rotation').toEqual([]);
    expect(opsOnOldSessions, 'the old sessions served after the reload').toBeGreaterThan(20);
    const after = [...seen.entries()].filter(([client]) => !before.has(client));
    expect(after.length).toBeGreaterThanOrEqual(MAX);
    expect(after.filter(([, fp]) => fp !== fpB).length, 'every session created after the rotation verified certificate B').toBe(0);
    note('F25b', { sessionsBefore: before.size, sessionsAfter: after.length, opsOnOldSessions, movedMs: round(movedMs), ops: report.ops });

    obs.assertInvariants();
    obs.assertErrorBudget(fault.at);
    expect(await obs.recovery(2000), 'I7').toBeLessThanOrEqual(2000);
    await obs.assertNoOrphans();
    await obs.closeAndCheck();
  });

  it('(c) the client requires TLS, the server has ssl=off: fail fast ("does not support SSL"), exactly 1 attempt per acquire; I7 once the server turns TLS on', async () => {
    const { a, caPem } = await testCerts();
    cleanups.push(() => serverTls('off'));
    await serverTls('off'); // the fault: new connections are refused TLS
    const { proxy, pool, obs } = await harness({ ssl: { ca: caPem, rejectUnauthorized: true } });
    const fault = obs.fault('server without TLS');
    const results = await sequential(obs, 3);
    for (const r of results) {
      expect(r.error, messages(r.error)).toBeInstanceOf(CreateResourceError);
      expect(messages(r.error)).toMatch(/The server does not support SSL connections/);
      expect(isRetryableConnectError((r.error as Error).cause), 'a configuration error: not retried').toBe(false);
      expect((r.error as CreateResourceError).attempts, 'exactly 1 attempt').toBe(1);
      expect(r.ms, 'rejects <= createTimeoutMs').toBeLessThanOrEqual(CREATE_TIMEOUT_MS);
    }
    expect(pool.stats().createFailed).toBe(3);
    expect(proxy.stats().accepted).toBe(3);

    await serverTls(a);
    fault.end();
    const recoveryMs = await obs.recovery(2000);
    expect(recoveryMs, 'I7').toBeLessThanOrEqual(2000);
    expect(await usesTls(pool), 'the recovered connection is TLS').toBe(true);
    note('F25c', { acquireMs: results.map((r) => round(r.ms)), error: messages(results[0]!.error), recoveryMs: round(recoveryMs) });

    await obs.finish();
    obs.assertInvariants();
    obs.assertErrorBudget(fault.endedAt!, 3);
    await obs.assertNoOrphans();
    await obs.closeAndCheck();
  });
});
