// lifeguard behind a real PgBouncer (Debian's, 1.18 on Debian 12) in front of the file's
// PostgreSQL: SCALE.md 4.11, PB1–PB9. Each test starts its own PgBouncer (test/support/pgbouncer.ts)
// with the settings it needs. Where pgbouncer is not installed these tests fail, unless
// LIFEGUARD_SKIP_PGBOUNCER=1 says to skip them.
//
// The fault suite's invariants hold where they apply (I1 acquires settle by their deadline +
// 100 ms, I2 size + creating <= max, I3 each acquire settles once). The pool's sessions (I2's
// count, and "no session left after close") are counted at PgBouncer, as its client
// connections for the database: PgBouncer owns the server connections, keeps them open by
// design, and opens more of them than the pool has clients while cancels land. PB7 and PB8 keep
// the server-side count: PgBouncer's admin console would take one of PB7's 6 client slots, and
// PB8's wedged PgBouncer keeps the logins it never finished among its clients.
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterEach, describe, expect, it } from 'vitest';
import { createPostgresPool, type PostgresPoolConfig } from '../../src/adapters/postgres/index.js';
import { sleep, type TestPool, usePostgres } from '../integration/harness.js';
import { SKIP_PGBOUNCER, startPgBouncer, type PgBouncer, type PgBouncerOptions } from '../support/pgbouncer.js';
import { Observer } from './observer.js';
import { codes, messages, note, outcome } from './util.js';

const db = usePostgres();
const bouncers: PgBouncer[] = [];

afterEach(async () => {
  await Promise.all(bouncers.splice(0).map((b) => b.teardown()));
});

async function bouncer(options: PgBouncerOptions): Promise<PgBouncer> {
  const b = await startPgBouncer(db.connection(), options);
  bouncers.push(b);
  return b;
}

/** A pool on `b`, tracked by the harness (closed after the file), with the harness's onError capture. */
function poolOn(b: PgBouncer, options: PostgresPoolConfig): TestPool {
  const app = db.appName('pb');
  const backgroundErrors: unknown[] = [];
  const pool = createPostgresPool({ ...b.connection(), max: 5, acquireTimeoutMs: 2000, onError: (e) => backgroundErrors.push(e), ...options, application_name: app });
  return db.track(Object.assign(pool, { app, backgroundErrors }));
}

/** Close the pool; PgBouncer holds no client connection of it 1 s later. */
async function closeAndCheck(pool: TestPool, b: PgBouncer): Promise<void> {
  await pool.close({ timeoutMs: 5000 });
  const deadline = performance.now() + 1000;
  let clients = await b.clients();
  while (clients > 0 && performance.now() < deadline) {
    await sleep(20);
    clients = await b.clients();
  }
  expect(clients, 'no client connection of the pool left at PgBouncer 1 s after close()').toBe(0);
  expect(pool.stats().size + pool.stats().creating).toBe(0);
}

/** Server sessions running a query that carries `tag`. */
async function runningWith(tag: string): Promise<number> {
  const { rows } = await db.admin<{ n: number }>(
    "SELECT count(*)::int AS n FROM pg_stat_activity WHERE state = 'active' AND query LIKE $1 AND pid <> pg_backend_pid()",
    [`%${tag}%`],
  );
  return rows[0]!.n;
}

describe.skipIf(SKIP_PGBOUNCER)('lifeguard behind PgBouncer (SCALE.md 4.11)', () => {
  for (const mode of ['transaction', 'session'] as const) {
    it(`PB1 ${mode}: 20 × queryTimeoutMs 200 on pg_sleep(1): 0 queries still running 150 ms after each timeout; PgBouncer never crashes`, async () => {
      const b = await bouncer({ poolMode: mode });
      const pid = b.pid;
      const pool = poolOn(b, { pooler: mode, queryTimeoutMs: 200 });
      // Each timed-out client is cancelled and closed in the background after its slot is freed:
      // at PgBouncer, up to one wave of them (max) is still connected while the next wave runs.
      const obs = new Observer(db, pool, { max: 5, acquireTimeoutMs: 5000, sessions: () => b.clients(), sessionSlack: 5 }).start();
      const run = randomBytes(4).toString('hex');
      const checks: Promise<number>[] = [];
      const results = await Promise.all(
        Array.from({ length: 20 }, (_, i) => {
          const tag = `pb1_${run}_${i}`;
          return outcome(obs.run((client) => client.query(`SELECT pg_sleep(1) /* ${tag} */`), { timeoutMs: 5000 })).then((r) => {
            checks.push(sleep(150).then(() => runningWith(tag)));
            return r;
          });
        }),
      );
      const stillRunning = (await Promise.all(checks)).reduce((a, n) => a + n, 0);
      for (const r of results) expect(messages(r.error)).toMatch(/Query read timeout/);
      await obs.finish();
      note(`PB1 ${mode}`, { timeouts: results.length, stillRunning150ms: stillRunning, pgbouncerCrashes: b.crashes, destroyed: pool.stats().destroyedByReason.broken });
      expect(stillRunning, 'queries still running on the server 150 ms after their timeout').toBe(0);
      expect(b.crashes, 'PgBouncer exited').toBe(0);
      expect(b.pid, 'PgBouncer pid unchanged').toBe(pid);
      expect(await b.log(), "no PgBouncer assertion failure in its log").not.toMatch(/FATAL @/);
      obs.assertInvariants();
      await closeAndCheck(pool, b);
    });
  }

  it('PB2 startup parameters: refused at construction with pooler set; with pooler none the acquire fails at once, not retried', async () => {
    const b = await bouncer({ poolMode: 'transaction' });
    expect(() => poolOn(b, { pooler: 'transaction', statement_timeout: 1000 })).toThrow(/PgBouncer refuses this startup parameter/);
    const pool = poolOn(b, { statement_timeout: 1000, acquireTimeoutMs: 5000 });
    const started = performance.now();
    const r = await outcome(pool.acquire());
    const ms = performance.now() - started;
    note('PB2', { failedAfterMs: Math.round(ms), codes: codes(r.error), createFailed: pool.stats().createFailed });
    expect(r.error).toBeInstanceOf(Error);
    expect(messages(r.error)).toMatch(/unsupported startup parameter/);
    expect(codes(r.error)).toContain('08P01');
    expect(ms, 'failed at once, not after retries').toBeLessThan(1000);
    expect(pool.stats().createFailed, 'one attempt, no retry').toBe(1);
    await closeAndCheck(pool, b);
  });

  it("PB3 named prepared statements, transaction mode, 6 workers × 40 on 4 clients over 2 server connections: 0 errors with preparedStatements 'unnamed'", async () => {
    const b = await bouncer({ poolMode: 'transaction', settings: { default_pool_size: 2 } });
    const pool = poolOn(b, { pooler: 'transaction', max: 4 });
    expect(pool.stats().max).toBe(4);
    const obs = new Observer(db, pool, { max: 4, acquireTimeoutMs: 5000, sessions: () => b.clients() }).start();
    let ok = 0;
    const errors: unknown[] = [];
    await Promise.all(
      Array.from({ length: 6 }, async (_, w) => {
        for (let i = 0; i < 40; i++) {
          try {
            const { rows } = await obs.run((client) => client.query({ name: 'pb3_by_id', text: 'SELECT $1::int + 1 AS n', values: [w * 100 + i] }), { timeoutMs: 5000 });
            expect(rows[0].n).toBe(w * 100 + i + 1);
            ok++;
          } catch (error) {
            errors.push(error);
          }
        }
      }),
    );
    await obs.finish();
    note('PB3', { ok, errors: errors.length, codes: errors.slice(0, 3).map(codes) });
    expect(errors.map((e) => messages(e))).toEqual([]);
    expect(ok).toBe(240);
    obs.assertInvariants();
    await closeAndCheck(pool, b);
  });

  it("PB4 detection: pooler 'none' against PgBouncer gives exactly one POOL_CONFIG_WARNING naming `pooler`; none direct or with pooler set", async () => {
    const b = await bouncer({ poolMode: 'transaction' });
    const behind = poolOn(b, { min: 3 });
    const declared = poolOn(b, { pooler: 'transaction', min: 3 });
    const direct = db.pool({ min: 3 });
    for (const pool of [behind, declared, direct]) {
      await pool.warmup();
      await Promise.all(Array.from({ length: 10 }, () => pool.query('SELECT 1')));
    }
    const warnings = (pool: TestPool): Error[] => pool.backgroundErrors.filter((e) => (e as { code?: string }).code === 'POOL_CONFIG_WARNING' && /pooler/.test((e as Error).message)) as Error[];
    note('PB4', { behind: warnings(behind).length, declared: warnings(declared).length, direct: warnings(direct).length });
    expect(warnings(behind)).toHaveLength(1);
    expect(warnings(behind)[0]!.message).toMatch(/`pooler`/);
    expect(warnings(behind)[0]!.message).toMatch(/pg_backend_pid/);
    expect(warnings(declared)).toHaveLength(0);
    expect(warnings(direct)).toHaveLength(0);
    // Both on one PgBouncer, which counts clients per database: close one, then check with the other.
    await declared.close({ timeoutMs: 5000 });
    await closeAndCheck(behind, b);
  });

  it('PB5 idle_session_timeout 2 s: no warning in transaction mode; a warning in session mode and direct', async () => {
    await db.admin("ALTER ROLE CURRENT_USER SET idle_session_timeout = '2s'");
    try {
      const tx = await bouncer({ poolMode: 'transaction' });
      const session = await bouncer({ poolMode: 'session' });
      const pools = { transaction: poolOn(tx, { pooler: 'transaction' }), session: poolOn(session, { pooler: 'session' }), direct: db.pool({}) };
      const counts: Record<string, number> = {};
      for (const [name, pool] of Object.entries(pools)) {
        await pool.query('SELECT 1');
        counts[name] = pool.backgroundErrors.filter((e) => (e as { code?: string }).code === 'POOL_CONFIG_WARNING' && /idle_session_timeout/.test((e as Error).message)).length;
      }
      note('PB5', counts);
      expect(counts).toEqual({ transaction: 0, session: 1, direct: 1 });
      await closeAndCheck(pools.transaction, tx);
      await closeAndCheck(pools.session, session);
    } finally {
      await db.admin('ALTER ROLE CURRENT_USER RESET idle_session_timeout');
    }
  });

  it('PB6 server fast restart behind PgBouncer (server_login_retry 15): few creates, health down during the outage, back within server_login_retry + 1 s', async () => {
    const LOGIN_RETRY_S = 15;
    const b = await bouncer({ poolMode: 'transaction', settings: { server_login_retry: LOGIN_RETRY_S } });
    const pool = poolOn(b, { pooler: 'transaction', createTimeoutMs: 1000, retry: { minTimeoutMs: 100, maxTimeoutMs: 1000 } });
    const obs = new Observer(db, pool, { max: 5, acquireTimeoutMs: 2000, sessions: () => b.clients() }).start();
    obs.load({ workers: 8, work: (client) => client.query('SELECT 1'), pauseAfterErrorMs: 20 });
    await sleep(500);
    const before = pool.stats();
    const fault = obs.fault('server fast restart behind PgBouncer');
    await db.restart();
    const upAt = performance.now();
    fault.end();
    const statuses = new Set<string>();
    let firstOkAt: number | undefined;
    const okBefore = obs.records.filter((r) => r.error === undefined && r.endedAt !== undefined).length;
    while (performance.now() - upAt < (LOGIN_RETRY_S + 3) * 1000) {
      statuses.add(pool.health().status);
      const done = obs.records.filter((r) => r.error === undefined && r.endedAt !== undefined && r.startedAt > upAt);
      if (done.length > 0) {
        firstOkAt = Math.min(...done.map((r) => r.endedAt!));
        break;
      }
      await sleep(50);
    }
    await sleep(500);
    const report = await obs.finish();
    const after = pool.stats();
    const creates = after.created + after.createFailed - (before.created + before.createFailed);
    const firstOkMs = firstOkAt === undefined ? undefined : Math.round(firstOkAt - upAt);
    note('PB6', { firstOkAfterRestartMs: firstOkMs, creates, created: after.created - before.created, createFailed: after.createFailed - before.createFailed, statuses: [...statuses], okBefore, failed: report.failed, errors: report.errorsByKind });
    expect(firstOkMs, 'serving again within server_login_retry + 1 s of the restart').toBeLessThanOrEqual((LOGIN_RETRY_S + 1) * 1000);
    expect(statuses.has('down'), 'health down during the outage (creates fail validation)').toBe(true);
    // Baseline without validation: 1463 clients made and destroyed; with it, one create at a time on backoff.
    expect(after.created - before.created, 'clients made: those that serve again, not one per failed query').toBeLessThanOrEqual(pool.stats().max + 5);
    expect(creates, 'create attempts over the outage: one per backoff step').toBeLessThanOrEqual(40);
    obs.assertInvariants();
    await closeAndCheck(pool, b);
  }, 60_000);

  it('PB7 max_client_conn 6, max 10: 0 caller errors, failed creates within the backoff bound, health degraded', async () => {
    const b = await bouncer({ poolMode: 'transaction', settings: { max_client_conn: 6 } });
    const pool = poolOn(b, { pooler: 'transaction', max: 10, retry: { minTimeoutMs: 100, maxTimeoutMs: 1000 } });
    const obs = new Observer(db, pool, { max: 10, acquireTimeoutMs: 2000 }).start();
    const started = performance.now();
    obs.load({ workers: 12, work: (client) => client.query('SELECT pg_sleep(0.01)') });
    const statuses = new Set<string>();
    while (performance.now() - started < 3000) {
      statuses.add(pool.health().status);
      await sleep(50);
    }
    const report = await obs.finish();
    const seconds = (performance.now() - started) / 1000;
    const s = pool.stats();
    note('PB7', { ops: report.ops, failed: report.failed, size: s.size, createFailed: s.createFailed, seconds: Number(seconds.toFixed(1)), statuses: [...statuses] });
    expect(report.failed, 'caller errors').toBe(0);
    expect(report.ok).toBeGreaterThan(100);
    expect(s.size).toBeLessThanOrEqual(6);
    // One create at a time while creates fail, each at least retry.minTimeoutMs after the last.
    expect(s.createFailed, 'failed creates').toBeLessThanOrEqual(Math.ceil(seconds * 10));
    expect(statuses.has('degraded')).toBe(true);
    expect(statuses.has('down')).toBe(false);
    obs.assertInvariants();
    // PgBouncer's own admin console counts against max_client_conn: close first.
    await pool.close({ timeoutMs: 5000 });
    await closeAndCheck(pool, b);
  });

  // PgBouncer 1.18 (Debian 12) wedges a database when a login arrives while it is KILLed: after
  // RESUME every new login hangs (psql too) until the database is KILLed and RESUMEd again with
  // no login in between, or PgBouncer restarts. The pool cannot avoid logging in during the KILL
  // (its clients were dropped and callers wait), so when the wedge happened the test checks what
  // is the pool's part: each create ended at createTimeoutMs, health said down, and once the
  // operator clears the wedge (a PgBouncer restart here) it serves again within createTimeoutMs + 1 s.
  it('PB8 KILL then RESUME 3 s later: every create ends by createTimeoutMs; serving again within createTimeoutMs + 1 s once PgBouncer accepts logins', async () => {
    const CREATE_TIMEOUT_MS = 2000;
    const b = await bouncer({ poolMode: 'transaction' });
    const pool = poolOn(b, { pooler: 'transaction', createTimeoutMs: CREATE_TIMEOUT_MS, retry: { minTimeoutMs: 100, maxTimeoutMs: 1000 } });
    const obs = new Observer(db, pool, { max: 5, acquireTimeoutMs: 2000 }).start();
    obs.load({ workers: 8, work: (client) => client.query('SELECT 1') });
    await sleep(500);
    const fault = obs.fault('PgBouncer KILL');
    await b.admin(`KILL ${db.database}`);
    await sleep(3000);
    await b.admin(`RESUME ${db.database}`);
    const resumedAt = performance.now();
    fault.end();
    const statuses = new Set<string>();
    const servedAfter = async (from: number, withinMs: number): Promise<number | undefined> => {
      while (performance.now() - from < withinMs) {
        statuses.add(pool.health().status);
        const done = obs.records.filter((r) => r.error === undefined && r.endedAt !== undefined && r.startedAt > from);
        if (done.length > 0) return Math.round(Math.min(...done.map((r) => r.endedAt!)) - from);
        await sleep(20);
      }
      return undefined;
    };
    const afterResumeMs = await servedAfter(resumedAt, CREATE_TIMEOUT_MS + 1000);
    let wedged = false;
    let afterRestartMs: number | undefined;
    if (afterResumeMs === undefined) {
      // Is it PgBouncer? A login from outside the pool, bounded by 1 s.
      const probe = new pg.Client({ ...b.connection(), connectionTimeoutMillis: 1000 });
      probe.on('error', () => {});
      wedged = await probe.connect().then(() => false, () => true);
      await probe.end().catch(() => {});
      expect(wedged, 'the pool did not serve after RESUME although PgBouncer accepts logins').toBe(true);
      expect(statuses.has('down'), 'health down while no login succeeds').toBe(true);
      await b.stop('SIGINT');
      await b.start();
      afterRestartMs = await servedAfter(performance.now(), CREATE_TIMEOUT_MS + 3000);
    }
    await sleep(300);
    const report = await obs.finish();
    const s = pool.stats();
    note('PB8', { servedAfterResumeMs: afterResumeMs, pgbouncerWedged: wedged, servedAfterRestartMs: afterRestartMs, createFailed: s.createFailed, failed: report.failed, errors: report.errorsByKind, maxLateMs: report.maxLateMs });
    if (!wedged) expect(afterResumeMs).toBeLessThanOrEqual(CREATE_TIMEOUT_MS + 1000);
    else expect(afterRestartMs, 'serving again once PgBouncer accepts logins').toBeLessThanOrEqual(CREATE_TIMEOUT_MS + 1000);
    // Every create ended by createTimeoutMs: the failures are create timeouts (or PgBouncer's own
    // errors), and I1 holds for every acquire.
    for (const r of obs.failures()) expect(codes(r.error).some((c) => ['POOL_ACQUIRE_TIMEOUT', '08P01', '57P01'].includes(c)), messages(r.error)).toBe(true);
    obs.assertInvariants();
    await closeAndCheck(pool, b);
  }, 30_000);

  it("PB9 transaction mode guards: resetOnRelease 'discard' and LISTEN through pool.query refused, saying why; session mode lets LISTEN through", async () => {
    const tx = await bouncer({ poolMode: 'transaction' });
    expect(() => poolOn(tx, { pooler: 'transaction', resetOnRelease: 'discard' })).toThrow(/session state does not survive a transaction/);
    const pool = poolOn(tx, { pooler: 'transaction' });
    const listen = await outcome(pool.query('LISTEN pb9'));
    expect(listen.error).toBeInstanceOf(TypeError);
    expect((listen.error as Error).message).toMatch(/no notification would arrive/);
    expect((await pool.query('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
    const session = await bouncer({ poolMode: 'session' });
    const sessionPool = poolOn(session, { pooler: 'session' });
    await sessionPool.query('LISTEN pb9');
    await closeAndCheck(pool, tx);
    await closeAndCheck(sessionPool, session);
  });
});
