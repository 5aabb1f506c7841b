// Fault suite, section A of FAULTS.md §3 (server-side faults injected with SQL only, F1–F9):
// the server refusing new connections — its connection limit reached (F7), authentication
// failing while credentials rotate (F8), non-retryable configuration errors at startup (F9). The
// rest of section A: server-kills.test.ts (F1–F3), server-sessions.test.ts (F4–F6).
//
// Each scenario runs a pool (unique application_name) under the Observer, with background
// load where the fault allows it (8 workers, max 5), injects the fault from the admin
// connection, and checks the fault's own pass criteria plus the invariants (I1–I3
// assertInvariants, I9 assertErrorBudget, I6 assertNoOrphans, I5 closeAndCheck, through
// closingChecks; I4 is checked for the whole file by usePostgres()). Pools, roles and
// pg_terminate_backend: test/faults/sql-faults.ts.
//
// Criteria where the pool is known to disagree with FAULTS.md use expect.soft, so the rest
// of the scenario is still measured; they still fail the test.
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { beforeAll, describe, expect, it } from 'vitest';
import { isConnectionFatal, type PostgresPoolConfig } from '../../src/adapters/postgres/index.js';
import { AcquireTimeoutError, CircuitOpenError, CreateResourceError } from '../../src/index.js';
import { sleep, usePostgres } from '../integration/harness.js';
import { freePort } from '../integration/providers.js';
import { CountingClock, errorKind, errorsByKind } from './observer.js';
import { closingChecks, loadUntilFull, MAX, SLACK_MS, tracked } from './scenarios.js';
import { useSqlFaults } from './sql-faults.js';
import { codes, note, settleMs, timeUntil } from './util.js';

const db = usePostgres();
const { harness, createRole, terminate } = useSqlFaults(db);

/** Everything an error would show in a log: messages, stacks and own fields along its cause chain. */
function loggable(error: unknown): string {
  const parts: string[] = [];
  for (let e = error, depth = 0; e !== null && e !== undefined && depth < 8; e = (e as { cause?: unknown }).cause, depth++) {
    if (e instanceof Error) parts.push(e.message, e.stack ?? '');
    if (typeof e === 'object') {
      for (const [key, value] of Object.entries(e)) if (key !== 'cause') parts.push(`${key}=${typeof value === 'object' ? safeJson(value) : String(value)}`);
    } else parts.push(String(e));
  }
  return parts.join('\n');
}

function safeJson(value: unknown): string {
  try {
    return JSON.stringify(value) ?? '';
  } catch {
    return '[unserialisable]';
  }
}

// ------------------------------------------------------------------ F7

describe('F7 server connection limit reached (53300)', () => {
  /** Shared body: the pool starts under load while only 2 connections are possible; after 3 s more are. */
  async function scenario(label: string, role: { user: string; password: string }, lift: () => Promise<void>): Promise<void> {
    const retry = { minTimeoutMs: 100, maxTimeoutMs: 400 };
    const { pool, obs } = harness({ user: role.user, password: role.password, retry, acquireTimeoutMs: 2000 });
    const fault = obs.fault(label);
    obs.load();
    // Proof that the fault is real: a connection of the role is refused with 53300 meanwhile.
    await sleep(1000);
    const refusal = await (async () => {
      const client = new pg.Client({ ...db.connection(), user: role.user, password: role.password, application_name: `${pool.app}-x` });
      client.on('error', () => {});
      try {
        await client.connect();
        await client.end();
        return undefined;
      } catch (error) {
        return error;
      }
    })();
    await sleep(Math.max(0, fault.at + 3000 - performance.now())); // inject: the limit holds for 3 s
    const liftedAt = performance.now();
    const during = obs.samplesBetween(fault.at, liftedAt);
    await lift();
    fault.end();
    const grewMs = await timeUntil('pool.size to reach demand', () => pool.stats().size === MAX, { from: liftedAt, timeoutMs: 6000, everyMs: 5 }).catch(() => Infinity);
    await sleep(300);
    const report = await obs.finish();

    expect(codes(refusal), 'a connection of the role is refused with 53300 while the limit holds').toContain('53300');
    const maxSizeDuring = Math.max(...during.map((s) => s.size));
    expect(maxSizeDuring, 'failed creates are not counted in the size (<= 2 while limited)').toBeLessThanOrEqual(2);
    const windowS = (liftedAt - fault.at) / 1000;
    const attempts = during.at(-1)!.createFailed + during.at(-1)!.created - (during[0]!.createFailed + during[0]!.created);
    const attemptsPerS = attempts / windowS;
    expect(attemptsPerS, 'I10: connect attempts/s <= max / retry.minTimeout').toBeLessThanOrEqual(MAX / (retry.minTimeoutMs / 1000));
    const failed = obs.failures();
    const wrongKind = failed.filter((r) => !(r.error instanceof AcquireTimeoutError && codes(r.error).includes('53300')));
    expect
      .soft(wrongKind.length, `failures may only be AcquireTimeoutError{cause 53300}; got ${JSON.stringify(errorsByKind(wrongKind))}, e.g. ${String(wrongKind[0]?.error)}`)
      .toBe(0);
    expect.soft(failed.length, `0 failed operations: the offered load fits 2 connections (got ${JSON.stringify(errorsByKind(failed))})`).toBe(0);
    // The backoff step in progress at the lift (up to 2 × 400 ms with jitter) plus the connects: 1 s was
    // missed by 14 ms once on a loaded CI machine, so the bound is 1.5 s (the suite's recovery bound is 2 s).
    expect.soft(grewMs, 'pool.size reaches demand <= 1.5 s after the limit is lifted').toBeLessThanOrEqual(1500);
    if (Number.isFinite(grewMs)) expect(obs.failures(liftedAt + grewMs), 'once the pool has grown, 0 failures').toEqual([]);
    note(`F7 ${label}`, {
      ops: report.ops,
      failed: failed.length,
      kinds: errorsByKind(failed),
      maxSizeDuring,
      attempts,
      attemptsPerS: Math.round(attemptsPerS * 10) / 10,
      grewMs: Number.isFinite(grewMs) ? Math.round(grewMs) : 'never (6 s)',
      circuitOpenRejections: pool.stats().rejected.circuitOpen,
    });

    await closingChecks(obs);
  }

  it('(a) ALTER ROLE CONNECTION LIMIT 2 while max = 5, lifted after 3 s: served by 2, no storm, grows on demand', async () => {
    const role = await createRole('f7', 'CONNECTION LIMIT 2');
    await scenario('role limit 2', role, async () => {
      await db.admin(`ALTER ROLE ${role.user} CONNECTION LIMIT -1`);
    });
  });

  it('(b) the limit is taken by other clients (CONNECTION LIMIT 5, 3 held elsewhere), freed after 3 s', async () => {
    const role = await createRole('f7b', 'CONNECTION LIMIT 5');
    const holders = await Promise.all(
      Array.from({ length: 3 }, async () => {
        const client = new pg.Client({ ...db.connection(), user: role.user, password: role.password, application_name: db.appName('holder') });
        client.on('error', () => {});
        await client.connect();
        return client;
      }),
    );
    await scenario('held by others', role, async () => {
      await Promise.all(holders.map((client) => client.end()));
    });
  });
});

// ------------------------------------------------------------------ F8

describe('F8 authentication failure and credential rotation (28P01)', () => {
  it('ALTER ROLE PASSWORD while warm; sessions killed; provider switched after 2 s: fail fast with 28P01, recover, never leak the password', async () => {
    const role = await createRole('f8');
    let current = role.password;
    const createTimeoutMs = 1000;
    const { pool, obs } = harness({ user: role.user, password: async () => current, createTimeoutMs, acquireTimeoutMs: 5000 });
    const t = tracked();
    await loadUntilFull(obs, { work: t.work });
    const createdWarm = pool.stats().created;

    // 1. Rotate the password on the server: existing sessions keep working (no re-auth).
    const newPassword = randomBytes(12).toString('hex');
    await db.admin(`ALTER ROLE ${role.user} PASSWORD '${newPassword}'`);
    const rotatedAt = performance.now();
    await sleep(300);
    expect(obs.failures(rotatedAt), 'existing sessions keep working after the rotation').toEqual([]);
    expect(t.uses.filter((u) => u.at > rotatedAt).length).toBeGreaterThan(20);
    expect(pool.stats().created).toBe(createdWarm);

    // 2. Force new creates: terminate the pool's sessions. For 2 s every create fails with 28P01.
    const fault = obs.fault('sessions terminated, new password unknown to the pool');
    const killed = await terminate(pool.app, false);
    await sleep(2000);
    const attemptsInWindow = pool.stats().createFailed;

    // 3. The provider learns the new password.
    current = newPassword;
    const switchedAt = performance.now();
    fault.end();
    const recoveryMs = await obs.recovery(5000).catch(() => Infinity);
    const quietFrom = performance.now();
    await sleep(500);
    const report = await obs.finish();

    const windowFailures = obs.failures(fault.at, switchedAt);
    const authFailures = windowFailures.filter((r) => codes(r.error).includes('28P01'));
    const inFlightKills = windowFailures.filter((r) => !codes(r.error).includes('28P01'));
    expect(authFailures.length, 'acquires needing a new connection failed with 28P01 during the window').toBeGreaterThan(0);
    for (const r of authFailures) {
      expect(r.error instanceof CreateResourceError || r.error instanceof CircuitOpenError, `fails fast with the cause, not a timeout: ${String(r.error)}`).toBe(true);
    }
    const slowest = Math.max(...authFailures.map(settleMs));
    expect(slowest, 'auth failures reject within createTimeoutMs, not acquireTimeoutMs').toBeLessThanOrEqual(createTimeoutMs + SLACK_MS);
    expect(inFlightKills.length, `other failures only from the kill (${JSON.stringify(errorsByKind(inFlightKills))})`).toBeLessThanOrEqual(killed.length);
    for (const r of inFlightKills) expect(isConnectionFatal(r.error), String(r.error)).toBe(true);
    expect(attemptsInWindow / 2, 'I10: connect attempts/s during the window <= max / retry.minTimeout (100 ms)').toBeLessThanOrEqual(MAX / 0.1);
    expect(obs.failures(quietFrom), 'after the rotation, 100 % of acquires succeed').toEqual([]);
    expect(obs.records.filter((r) => r.startedAt >= quietFrom).length).toBeGreaterThan(20);
    expect.soft(recoveryMs, 'after the provider switch the first acquire succeeds within 1 s').toBeLessThanOrEqual(1000);

    const everything = [...obs.records.map((r) => r.error).filter((e) => e !== undefined), ...pool.backgroundErrors].map(loggable).join('\n');
    expect(everything.includes(role.password), 'the old password never appears in errors').toBe(false);
    expect(everything.includes(newPassword), 'the new password never appears in errors').toBe(false);
    const failedAfterSwitch = obs.failures(switchedAt, quietFrom);
    note('F8', {
      killed: killed.length,
      windowFailures: windowFailures.length,
      authFailures: authFailures.length,
      authKinds: errorsByKind(authFailures),
      slowestAuthFailureMs: Math.round(slowest),
      slowestFive: [...authFailures].sort((a, b) => settleMs(b) - settleMs(a)).slice(0, 5).map((r) => `${errorKind(r.error)} ${Math.round(settleMs(r))}ms @${Math.round(r.startedAt - fault.at)}`),
      createAttemptsInWindow: attemptsInWindow,
      recoveryMs: Number.isFinite(recoveryMs) ? Math.round(recoveryMs) : 'none in 5 s',
      failedBetweenSwitchAndRecovery: errorsByKind(failedAfterSwitch),
      ops: report.ops,
    });

    await closingChecks(obs);
  });
});

// ------------------------------------------------------------------ F9

describe('F9 non-retryable configuration errors at startup', () => {
  interface Case {
    readonly name: string;
    readonly options: () => Promise<PostgresPoolConfig>;
    /** What identifies the cause: one of these codes, or this message. */
    readonly cause: { codes?: readonly string[]; message?: RegExp };
    readonly retryable: boolean;
  }
  const CASES: readonly Case[] = [
    { name: 'unknown database (3D000)', options: async () => ({ database: 'lg_no_such_database' }), cause: { codes: ['3D000'] }, retryable: false },
    // Under password authentication PostgreSQL does not reveal that a role is missing: 28P01, not 28000.
    { name: 'unknown role (28000, or 28P01 under password auth)', options: async () => ({ user: 'lg_no_such_role' }), cause: { codes: ['28000', '28P01'] }, retryable: false },
    { name: 'ssl: true against a server without SSL', options: async () => ({ ssl: true }), cause: { message: /does not support SSL/ }, retryable: false },
    { name: 'wrong port on 127.0.0.1 (ECONNREFUSED, transient)', options: async () => ({ port: await freePort() }), cause: { codes: ['ECONNREFUSED'] }, retryable: true },
  ];
  const createTimeoutMs = 1000;

  function matchesCause(error: unknown, c: Case): boolean {
    const all = codes(error);
    if (c.cause.codes !== undefined && c.cause.codes.some((code) => all.includes(code))) return true;
    if (c.cause.message !== undefined) {
      for (let e = error, depth = 0; e instanceof Error && depth < 8; e = e.cause, depth++) if (c.cause.message.test(e.message)) return true;
    }
    return false;
  }

  const sockets = (): number => process.getActiveResourcesInfo().filter((r) => /TCP/.test(r)).length;

  beforeAll(async () => {
    expect((await db.admin<{ ssl: string }>('SHOW ssl')).rows[0]!.ssl, 'the test server runs without SSL').toBe('off');
  });

  for (const c of CASES) {
    it(`${c.name}: warmup() rejects fast with the cause; lazy acquires ${c.retryable ? 'retry until their deadline' : 'make exactly 1 attempt each'}; nothing left after close()`, async () => {
      await db.admin('SELECT 1'); // the admin connection exists before the socket baseline
      const socketsBefore = sockets();
      const options = await c.options();

      // Fail fast: min 1 and warmup().
      const clock = new CountingClock();
      const eager = db.pool({ ...options, min: 1, createTimeoutMs, acquireTimeoutMs: 2000, clock });
      const warmFrom = performance.now();
      const warmError = await eager.warmup().then(
        () => undefined,
        (e: unknown) => e,
      );
      const warmMs = performance.now() - warmFrom;
      expect(warmError, 'warmup() rejects').toBeInstanceOf(Error);
      expect(matchesCause(warmError, c), `warmup() rejects with the cause: ${String(warmError)}`).toBe(true);
      expect(warmMs, 'fail-fast rejection <= createTimeoutMs + 100 ms').toBeLessThanOrEqual(createTimeoutMs + 100);
      const eagerFailedAt = { at: performance.now(), attempts: eager.stats().createFailed };

      // Lazy start: the pool starts; each acquire fails with the cause.
      const { pool, obs } = harness({ ...options, createTimeoutMs, acquireTimeoutMs: 1000, retry: { minTimeoutMs: 100, maxTimeoutMs: 400 } });
      const fault = obs.fault(c.name);
      if (c.retryable) {
        const error = await obs.run((client) => client.query('SELECT 1')).then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(error, 'a transient connect error is retried until the acquire deadline').toBeInstanceOf(AcquireTimeoutError);
        expect((error as AcquireTimeoutError).reason).toBe('create-failing');
        expect(matchesCause(error, c), `with the cause: ${String(error)}`).toBe(true);
        expect(pool.stats().createFailed, 'retried: more than one attempt').toBeGreaterThan(1);
        expect(settleMs(obs.records[0]!)).toBeGreaterThanOrEqual(1000 - 5);
      } else {
        for (let i = 1; i <= 3; i++) {
          const error = await obs.run((client) => client.query('SELECT 1')).then(
            () => undefined,
            (e: unknown) => e,
          );
          expect(error, `acquire ${i} fails with CreateResourceError`).toBeInstanceOf(CreateResourceError);
          expect((error as CreateResourceError).attempts, 'exactly 1 connect attempt').toBe(1);
          expect(matchesCause(error, c), `with the cause: ${String(error)}`).toBe(true);
          expect(pool.stats().createFailed, 'exactly 1 connect attempt per acquire').toBe(i);
          expect(settleMs(obs.records.at(-1)!), 'rejected within createTimeoutMs').toBeLessThanOrEqual(createTimeoutMs);
        }
      }
      fault.end();

      // I10 on the fail-fast pool, which keeps trying to reach `min` in the background.
      await sleep(Math.max(0, eagerFailedAt.at + 1000 - performance.now()));
      const backgroundRate = (eager.stats().createFailed - eagerFailedAt.attempts) / ((performance.now() - eagerFailedAt.at) / 1000);
      expect(backgroundRate, 'I10: background connect attempts/s <= max / retry.minTimeout').toBeLessThanOrEqual(MAX / 0.1);
      note(`F9 ${c.name}`, {
        warmMs: Math.round(warmMs),
        warmError: String(warmError),
        lazyAttempts: pool.stats().createFailed,
        backgroundRatePerS: Math.round(backgroundRate * 10) / 10,
        eagerAttempts: eager.stats().createFailed,
        eagerCircuit: eager.stats().circuit,
      });

      await obs.finish();
      await closingChecks(obs);
      await eager.close();
      expect(eager.stats().size + eager.stats().creating).toBe(0);
      expect(clock.live.size, 'I5: no pool timer left after close()').toBe(0);
      await sleep(50);
      expect(sockets(), 'I5: no socket left after close()').toBeLessThanOrEqual(socketsBefore);
    });
  }

  it('lazy start under load (8 workers, unknown database): every failure is fast and carries 3D000; no connect storm', async () => {
    const { pool, obs } = harness({ database: 'lg_no_such_database', createTimeoutMs });
    const fault = obs.fault('unknown database under load');
    obs.load();
    await sleep(1000);
    fault.end();
    const report = await obs.finish();
    const failed = obs.failures();
    expect(report.ok, 'no operation can succeed').toBe(0);
    expect(failed.length).toBeGreaterThan(8);
    for (const r of failed) {
      expect(codes(r.error), `the cause is kept: ${String(r.error)}`).toContain('3D000');
      expect(r.error instanceof CreateResourceError || r.error instanceof CircuitOpenError, String(r.error)).toBe(true);
    }
    const slowest = Math.max(...failed.map(settleMs));
    expect(slowest, 'every acquire fails within createTimeoutMs, none waits for its deadline').toBeLessThanOrEqual(createTimeoutMs);
    const attempts = pool.stats().createFailed;
    expect(attempts, 'at most one connect attempt per acquire').toBeLessThanOrEqual(failed.length);
    expect(attempts / ((fault.endedAt! - fault.at) / 1000), 'I10: attempts/s <= max / retry.minTimeout').toBeLessThanOrEqual(MAX / 0.1);
    expect(pool.stats().timedOut).toBe(0);
    note('F9 lazy under load', { ops: report.ops, attempts, kinds: errorsByKind(failed), slowestMs: Math.round(slowest), circuit: pool.stats().circuit });

    await closingChecks(obs);
  });

  it('min: 1 with a non-retryable error and circuitBreaker: false: the background top-up backs off (I10 without the breaker)', async () => {
    const clock = new CountingClock();
    const { pool, obs } = harness({ database: 'lg_no_such_database', min: 1, createTimeoutMs, circuitBreaker: false, clock, acquireTimeoutMs: 10_000 });
    const from = performance.now();
    await sleep(1000);
    const attempts = pool.stats().createFailed;
    const perS = attempts / ((performance.now() - from) / 1000);
    note('F9 min-top-up without breaker', { attempts, perS: Math.round(perS) });
    expect.soft(perS, `I10: ${attempts} connect attempts in 1 s with nobody waiting; <= max / retry.minTimeout (50/s)`).toBeLessThanOrEqual(MAX / 0.1);
    await obs.finish();
    obs.assertInvariants();
    await obs.closeAndCheck();
    expect(clock.live.size, 'I5: no pool timer left after close()').toBe(0);
  });
});
