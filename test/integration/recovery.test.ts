// Back within 250 ms of the server, without a storm (issue 9, item 18), on a real server:
// a caller loop runs through an outage; a separate client logs in every 10 ms to find the
// moment the server accepts connections again; the pool's first success must follow within
// 250 ms, while its own login attempts during the outage stay at about one per backoff step.
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { sleep, type TestPool, usePostgres } from './harness.js';
import { PROVIDER_CAPABILITIES } from './providers.js';

const db = usePostgres();

/** Logs in every 10 ms from `from` on; resolves with the time of the first login that succeeded. */
async function firstAcceptAfter(from: number, limitMs: number): Promise<number> {
  const until = from + limitMs;
  while (performance.now() < until) {
    const at = performance.now();
    const client = new pg.Client({ ...db.connection(), application_name: 'lifeguard-recovery-watch', connectionTimeoutMillis: 500 });
    client.on('error', () => {});
    try {
      await client.connect();
      await client.end();
      return at;
    } catch {
      await sleep(10);
    }
  }
  throw new Error(`the server did not accept a login within ${limitMs} ms`);
}

/** Callers query every 20 ms until stopped; records the time of every success. */
function callers(pool: TestPool): { successes: number[]; stop(): Promise<void> } {
  const successes: number[] = [];
  let running = true;
  const loop = (async () => {
    const inFlight = new Set<Promise<void>>();
    while (running) {
      const call = pool.query('SELECT 1').then(
        () => void successes.push(performance.now()),
        () => {},
      );
      inFlight.add(call);
      void call.finally(() => inFlight.delete(call));
      await sleep(20);
    }
    await Promise.all(inFlight);
  })();
  return {
    successes,
    async stop() {
      running = false;
      await loop;
    },
  };
}

/** Create attempts so far (each reaches the server only while it listens). */
const attempts = (pool: TestPool): number => pool.stats().created + pool.stats().createFailed;

describe.runIf(PROVIDER_CAPABILITIES.stopStart)('recovery after an outage (FAULTS.md F13, issue 9 item 18)', () => {
  for (const outageMs of [2_000, 9_000]) {
    it(`after ${outageMs / 1000} s down: first success within 250 ms of the server accepting logins again; about one login attempt per backoff step`, async () => {
      const pool = db.pool({ max: 4, acquireTimeoutMs: 1000, createTimeoutMs: 2000 });
      await pool.query('SELECT 1');
      const load = callers(pool);
      try {
        await sleep(200);
        await db.stop('fast');
        const before = attempts(pool);
        const downAt = performance.now();
        await sleep(outageMs);
        const starting = db.start();
        const accepting = await firstAcceptAfter(performance.now(), 60_000);
        await starting;
        const whileDown = attempts(pool) - before;
        await sleep(1000);
        const first = load.successes.find((at) => at >= downAt);
        expect(first, `the pool served again after the outage: ${JSON.stringify(pool.stats())} ${String(pool.health().reason)}`).toBeDefined();
        console.log(`[recovery] ${outageMs} ms outage: first success ${Math.round(first! - accepting)} ms after the server accepted logins; ${whileDown} create attempts while down`);
        expect(first! - accepting, `first success ${Math.round(first! - accepting)} ms after the server accepted logins`).toBeLessThanOrEqual(250);
        // 100 ms doubling to 5 s, jittered: ~6 attempts in 9 s; the breaker's 1 s probes once open.
        expect(whileDown).toBeLessThanOrEqual(outageMs <= 2_000 ? 9 : 14);
      } finally {
        await load.stop();
      }
    });
  }

  it('a pool created while the server is down serves within 250 ms of its start', async () => {
    await db.stop('fast');
    const pool = db.pool({ max: 4, acquireTimeoutMs: 1000, createTimeoutMs: 2000 });
    const load = callers(pool);
    try {
      await sleep(3000);
      const starting = db.start();
      const accepting = await firstAcceptAfter(performance.now(), 60_000);
      await starting;
      await sleep(1000);
      expect(load.successes.length, `${JSON.stringify(pool.stats())} ${String(pool.health().reason)}`).toBeGreaterThan(0);
      console.log(`[recovery] start while down: first success ${Math.round(load.successes[0]! - accepting)} ms after the server accepted logins`);
      expect(load.successes[0]! - accepting, `first success ${Math.round(load.successes[0]! - accepting)} ms after the server accepted logins`).toBeLessThanOrEqual(250);
    } finally {
      await load.stop();
    }
  });
});
