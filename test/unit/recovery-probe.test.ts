// Back within one probe interval of the server, without a storm (issue 9, item 18): while
// creates fail, the adapter's cheap probe (a TCP connect, refused at once by a down server)
// runs every probeIntervalMs; its first success after failures ends the backoff and an open
// breaker's cooldown. Logins (create attempts) stay at about one per backoff step.
import { describe, expect, it } from 'vitest';
import { createPool, type Adapter, type Pool } from '../../src/index.js';
import { codedError } from '../support/fake-adapter.js';
import { closeOnClock } from '../support/harness.js';
import { VirtualClock } from '../support/virtual-clock.js';

/** A server that is up or down; a create is a 20 ms login when up, refused at once when down. */
class Server {
  up = true;
  /** Create attempts (logins), and those made while down. */
  attempts = 0;
  attemptsWhileDown = 0;
  probes = 0;
  /** Probes made while this holds get no answer (a proxy holding a connection while its server starts). */
  hangProbes = false;
  constructor(readonly clock: VirtualClock) {}

  adapter(options: { probe: boolean; refuse?: () => unknown }): Adapter<object> {
    const adapter: Adapter<object> = {
      create: () => {
        this.attempts++;
        if (!this.up) this.attemptsWhileDown++;
        if (!this.up) return this.clock.sleep(1).then(() => Promise.reject(codedError('connect ECONNREFUSED 127.0.0.1:5432', 'ECONNREFUSED')));
        const refusal = options.refuse?.();
        if (refusal !== undefined) return this.clock.sleep(20).then(() => Promise.reject(refusal));
        return this.clock.sleep(20).then(() => ({}));
      },
      destroy: async () => {},
    };
    if (options.probe) {
      adapter.probe = () => {
        this.probes++;
        if (this.hangProbes) return new Promise<void>(() => {});
        return this.up ? Promise.resolve() : Promise.reject(codedError('connect ECONNREFUSED 127.0.0.1:5432', 'ECONNREFUSED'));
      };
    }
    return adapter;
  }
}

/**
 * Callers acquire every 50 ms (each with a 1 s deadline) through an outage of `outageMs`;
 * returns how long after the server came back the first acquire succeeded.
 */
async function outage(pool: Pool<object>, server: Server, clock: VirtualClock, outageMs: number, limitMs = 2000): Promise<number> {
  let lastSuccess = -Infinity;
  const call = (): void => {
    pool.acquire({ timeoutMs: 1000 }).then(
      (lease) => {
        lastSuccess = clock.now();
        void lease.release();
      },
      () => {},
    );
  };
  for (let t = 0; t < 500; t += 50) {
    call();
    await clock.advance(50);
  }
  // Kill the pooled connection with the server: the next borrow needs a create.
  server.up = false;
  pool.invalidate();
  for (let t = 0; t < outageMs; t += 50) {
    call();
    await clock.advance(50);
  }
  server.up = true;
  const backAt = clock.now();
  for (let t = 0; t < limitMs && lastSuccess < backAt; t += 10) {
    if (t % 50 === 0) call();
    await clock.advance(10);
  }
  expect(lastSuccess, `no acquire succeeded within ${limitMs} ms of the server's return; ${JSON.stringify(pool.stats())}`).toBeGreaterThanOrEqual(backAt);
  return lastSuccess - backAt;
}

describe('recovery after an outage', () => {
  for (const outageMs of [2_000, 8_000, 60_000]) {
    it(`after ${outageMs / 1000} s down: first success within 250 ms of the server's return, logins about one per backoff step`, async () => {
      const clock = new VirtualClock();
      const server = new Server(clock);
      const pool = createPool({ adapter: server.adapter({ probe: true }), clock, max: 4, onError: () => {} });
      try {
        const attemptsBefore = server.attempts;
        const recovery = await outage(pool, server, clock, outageMs);
        expect(recovery).toBeLessThanOrEqual(250);
        // Backoff 100 ms doubling to 5 s (jittered), and the breaker's 1 s probes once it opens.
        const steps = outageMs <= 8_000 ? 12 : 8 + outageMs / 1000;
        expect(server.attemptsWhileDown).toBeLessThanOrEqual(steps);
        // Up: the first connection, then at most `max` after the return.
        expect(server.attempts - attemptsBefore).toBeLessThanOrEqual(server.attemptsWhileDown + 1 + 4);
      } finally {
        await closeOnClock(clock, [pool], { timeoutMs: 0 });
      }
    });
  }

  it('a probe left hanging (a proxy holding the connection while its server starts) does not hold up the next', async () => {
    const clock = new VirtualClock();
    const server = new Server(clock);
    const pool = createPool({ adapter: server.adapter({ probe: true }), clock, max: 4, onError: () => {} });
    try {
      // Probes hang for the last 300 ms of the outage; the server is back right after.
      const hang = (async () => {
        await clock.sleep(500 + 8_000 - 300);
        server.hangProbes = true;
        await clock.sleep(300);
        server.hangProbes = false;
      })();
      const recovery = await outage(pool, server, clock, 8_000);
      await hang;
      expect(recovery).toBeLessThanOrEqual(250);
    } finally {
      await closeOnClock(clock, [pool], { timeoutMs: 0 });
    }
  });

  it('without a probe hook, the backoff decides alone (the same logins, a slower return)', async () => {
    const clock = new VirtualClock();
    const server = new Server(clock);
    // Without jitter: a jittered retry may land just after the return by chance (CI saw 136 ms).
    const pool = createPool({ adapter: server.adapter({ probe: false }), clock, max: 4, onError: () => {}, retry: { randomize: false } });
    try {
      const recovery = await outage(pool, server, clock, 8_000, 6_000);
      expect(recovery).toBeGreaterThan(250);
      expect(server.attemptsWhileDown).toBeLessThanOrEqual(12);
    } finally {
      await closeOnClock(clock, [pool], { timeoutMs: 0 });
    }
  });

  it('without a probe, a 60 s outage that opened the breaker still recovers (half-open while backing off left it stuck for good)', async () => {
    const clock = new VirtualClock();
    const server = new Server(clock);
    const pool = createPool({ adapter: server.adapter({ probe: false }), clock, max: 4, onError: () => {} });
    try {
      const recovery = await outage(pool, server, clock, 60_000, 7_000);
      // At worst one capped backoff step (5 s) and the breaker's cooldown (1 s).
      expect(recovery).toBeLessThanOrEqual(6_000);
    } finally {
      await closeOnClock(clock, [pool], { timeoutMs: 0 });
    }
  });

  it('a probe that succeeds from the start (the server refuses logins, it is not down) does not cut the backoff short', async () => {
    const clock = new VirtualClock();
    const server = new Server(clock);
    let refusing = false;
    const adapter = server.adapter({ probe: true, refuse: () => (refusing ? codedError('sorry, too many clients already', '53300') : undefined) });
    const pool = createPool({ adapter, clock, max: 4, onError: () => {}, circuitBreaker: false });
    try {
      refusing = true;
      const attemptsBefore = server.attempts;
      for (let t = 0; t < 10_000; t += 50) {
        pool.acquire({ timeoutMs: 1000 }).then((lease) => lease.release(), () => {});
        await clock.advance(50);
      }
      // 100 ms doubling to 5 s over 10 s: about 8 logins, as without a probe; not one per probe interval.
      expect(server.attempts - attemptsBefore).toBeLessThanOrEqual(10);
      expect(server.probes).toBeLessThanOrEqual(server.attempts - attemptsBefore);
    } finally {
      await closeOnClock(clock, [pool], { timeoutMs: 0 });
    }
  });

  it('probeIntervalMs is validated like every duration', () => {
    expect(() => createPool({ adapter: { create: async () => ({}), destroy: async () => {} }, probeIntervalMs: 0 })).toThrow(
      'Expected `probeIntervalMs` to be a number of milliseconds > 0 (or Infinity for never), got 0',
    );
  });
});
