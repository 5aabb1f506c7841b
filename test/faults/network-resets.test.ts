// Fault suite, section C of FAULTS.md §3 (network faults through the in-process chaos proxy):
// links reset or closed under the pool — RST on idle and in-flight links (F16), a link closed
// mid-result by a byte limit (F21), closes held back on every link (F22).
//
// Each scenario routes a pool (unique application_name) through a ChaosProxy to the file's
// PostgreSQL (test/faults/network.ts), runs it under the Observer (background load of 8 workers
// on max 5 where the fault allows it), injects the fault, and checks the fault's own pass
// criteria plus the invariants: I1–I3 (assertInvariants), I9 (assertErrorBudget), I7
// (recovery() once the fault is removed), I6 (assertNoOrphans), I5 (closeAndCheck), most of them
// through closingChecks (test/faults/scenarios.ts); I4 is checked for the whole file by
// usePostgres(). The other network faults are in the other network-*.test.ts files.
//
// Criteria where the pool is known to disagree with FAULTS.md use expect.soft, so the rest
// of the scenario is still measured; they still fail the test.
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { isConnectionFatal } from '../../src/adapters/postgres/index.js';
import { DestroyTimeoutError } from '../../src/index.js';
import { sleep, usePostgres, waitFor } from '../integration/harness.js';
import { round, sha256, streamOf, useProxiedPools } from './network.js';
import { errorsByKind, Observer } from './observer.js';
import { ACQUIRE_TIMEOUT_MS, closingChecks, loadUntilFull, MAX, SLACK_MS, tenAcquires, tracked } from './scenarios.js';
import { fill, note, outcome, percentile, settleMs, timeUntil } from './util.js';

const db = usePostgres();
const { harness } = useProxiedPools(db);

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

    const used = await tenAcquires(obs);
    fault.end();

    expect(obs.failures(), 'the 10 acquires after the RST: 0 errors').toEqual([]);
    expect(used).toHaveLength(10);
    expect(used.filter((c) => originals.has(c)), 'no acquire returns a reset client').toEqual([]);
    expect(pool.stats().destroyedByReason.broken, 'the 5 reset clients were evicted as broken').toBe(5);
    expect(pool.backgroundErrors.map(String), 'the ECONNRESETs were absorbed, not reported').toEqual([]);
    note('F16a', { detectMs: round(detectMs), sizeRightAfterRst: sizeAfterRst, evicted: pool.stats().destroyedByReason, created: pool.stats().created });

    await obs.finish();
    await closingChecks(obs, { budgetFrom: fault.at, recoveryWithinMs: 2000 });
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
    // the checks after it are still measured.
    await closingChecks(obs, { softInvariants: true, budgetFrom: quietFrom, recoveryWithinMs: 2000 });
  });

  it('(c) RST with toxicity 0.3, re-applied every 200 ms for 5 s under load: every failure is an operation on a reset link, at most one per RST', async () => {
    const { proxy, pool, obs } = await harness();
    const t = tracked((c) => c.query('SELECT pg_sleep(0.05)'));
    await loadUntilFull(obs, { work: t.work });

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
    await closingChecks(obs, { softInvariants: true, budgetFrom: quietFrom, extraFailures: resets, recoveryWithinMs: 2000 });
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
    await loadUntilFull(obs, {
      work: (client) => {
        clients.add(client);
        return client.query('SELECT 1');
      },
    });
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
