import { describe, expect, it } from 'vitest';
import { AcquireTimeoutError, createPool, type Lease } from '../../src/index.js';

// The system clock caches its reading within a turn; these tests use the real clock to
// check that an acquire's deadline is never measured from a stale reading. They assert a
// lower bound only (a deadline must not fire early), which no machine load can break.

function busyWait(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end) {
    // Synchronous work in the same turn, after the pool cached its clock reading.
  }
}

describe('system clock deadlines', () => {
  it('a deadline starts when acquire() is called, even after long synchronous work in the same turn', async () => {
    const pool = createPool({ adapter: { create: async () => ({}), destroy: async () => {} }, max: 1 });
    const held: Lease<object> = await pool.acquire();
    try {
      // Touch the pool so its clock reading is cached, then burn time in the same turn.
      pool.stats();
      const leased = pool.acquire({ timeoutMs: 5 }).catch((error: unknown) => error);
      busyWait(60);
      const started = performance.now();
      const outcome = await pool.acquire({ timeoutMs: 40 }).then(
        () => 'acquired',
        (error: unknown) => error,
      );
      const elapsed = performance.now() - started;
      expect(outcome).toBeInstanceOf(AcquireTimeoutError);
      expect(elapsed).toBeGreaterThanOrEqual(39);
      expect(await leased).toBeInstanceOf(AcquireTimeoutError);
    } finally {
      await held.release();
      await pool.close();
    }
  });

  it('waiters queued in one long turn each get their full timeout', async () => {
    const pool = createPool({ adapter: { create: async () => ({}), destroy: async () => {} }, max: 1 });
    const held = await pool.acquire();
    try {
      const first = performance.now();
      const a = pool.acquire({ timeoutMs: 30 }).catch(() => performance.now() - first);
      busyWait(40);
      const second = performance.now();
      const b = pool.acquire({ timeoutMs: 30 }).catch(() => performance.now() - second);
      expect(await a).toBeGreaterThanOrEqual(29);
      expect(await b).toBeGreaterThanOrEqual(29);
    } finally {
      await held.release();
      await pool.close();
    }
  });
});

describe('deadlines on the system clock under load (FAULTS.md I1)', () => {
  // A queued acquire's deadline once came from the cached reading and was corrected later
  // against a ring of recent readings; while the process stayed busy that correction kept
  // moving, and a 200 ms deadline fired after 1.7 s. Deadlines now start from a real reading.
  it('a queued acquire times out at its deadline while another pool churns the clock', async () => {
    const adapter = () => ({ create: async () => ({}), destroy: async () => {} });
    const a = createPool({ adapter: adapter(), max: 1, acquireTimeoutMs: 200 });
    const held = await a.acquire();
    const b = createPool({ adapter: adapter(), max: 4 });
    let running = true;
    const churn = (async () => {
      while (running) {
        for (let i = 0; i < 50; i++) await (await b.acquire()).release();
        await new Promise((resolve) => setImmediate(resolve));
      }
    })();
    const started = performance.now();
    const error = await a.acquire().catch((e: unknown) => e);
    const took = performance.now() - started;
    running = false;
    await churn;
    await held.release();
    await Promise.all([a.close(), b.close()]);
    expect(error).toBeInstanceOf(AcquireTimeoutError);
    expect(took).toBeGreaterThanOrEqual(199);
    expect(took).toBeLessThan(400);
  });
});
