// Adaptive queueing (congestion.ts): FIFO while the queue drains; newest first and shedding
// while a standing queue keeps waits above the target for a whole interval; FIFO again once
// the queue empties. On the virtual clock: each request holds its resource for `holdMs`.
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { afterEach, describe, expect, it } from 'vitest';
import { CHANNELS, createPool, PoolOverloadedError, toPrometheusText, type CongestionEvent, type Pool, type PoolOptions } from '../../src/index.js';
import { closeOnClock } from '../support/harness.js';
import { VirtualClock } from '../support/virtual-clock.js';

const pools: { pool: Pool<object>; clock: VirtualClock }[] = [];
afterEach(async () => {
  for (const { pool, clock } of pools.splice(0)) await closeOnClock(clock, [pool], { timeoutMs: 0 });
});

function make(options: Partial<PoolOptions<object>> = {}): { pool: Pool<object>; clock: VirtualClock } {
  const clock = new VirtualClock();
  const pool = createPool<object>({ adapter: { create: async () => ({}), destroy: async () => {} }, clock, max: 2, acquireTimeoutMs: 1000, onError: () => {}, ...options });
  pools.push({ pool, clock });
  return { pool, clock };
}

interface Request {
  readonly id: number;
  readonly arrivedAt: number;
  servedAt?: number;
  error?: unknown;
}

/** One request: acquire, hold `holdMs`, release; records when it was served or why it failed. */
function request(pool: Pool<object>, clock: VirtualClock, id: number, holdMs: number, priority = 0): Request {
  const record: Request = { id, arrivedAt: clock.now() };
  pool.acquire({ priority }).then(
    async (lease) => {
      record.servedAt = clock.now();
      await clock.sleep(holdMs);
      await lease.release();
    },
    (error: unknown) => {
      record.error = error;
    },
  );
  return record;
}

/** Fill the pool to max first, so that every later request measures queueing, not creates. */
async function warm(pool: Pool<object>, clock: VirtualClock, max: number): Promise<void> {
  const leases = await Promise.all(Array.from({ length: max }, () => pool.acquire()));
  for (const lease of leases) await lease.release();
  await clock.advance(1);
}

describe('adaptive queueing', () => {
  it('under light load the queue stays FIFO and nobody is shed', async () => {
    const { pool, clock } = make();
    await warm(pool, clock, 2);
    const requests: Request[] = [];
    // 2 resources, 10 ms each: capacity 200/s; offered 100/s in pairs of 2 arrivals.
    for (let t = 0; t < 2000; t += 20) {
      requests.push(request(pool, clock, requests.length, 10), request(pool, clock, requests.length + 1, 10));
      await clock.advance(20);
    }
    await clock.advance(100);
    expect(requests.every((r) => r.servedAt !== undefined)).toBe(true);
    const order = [...requests].sort((a, b) => a.servedAt! - b.servedAt! || a.id - b.id).map((r) => r.id);
    expect(order).toEqual(requests.map((r) => r.id));
    expect(pool.stats()).toMatchObject({ congested: false, rejected: { shed: 0 } });
  });

  it('a standing queue turns it newest-first with shedding (stats, health, events), and it drains back to FIFO', async () => {
    // 200 ms deadlines: a waiter that waited 50 ms behind 30 others (5 ms each) cannot make it.
    const { pool, clock } = make({ acquireTimeoutMs: 200 });
    const events: CongestionEvent[] = [];
    const listener = (event: unknown): void => void events.push(event as CongestionEvent);
    subscribe(CHANNELS.congestion, listener);
    try {
      await warm(pool, clock, 2);
      const requests: Request[] = [];
      // Capacity 200/s; offered 400/s for 1 s.
      for (let t = 0; t < 1000; t += 5) {
        requests.push(request(pool, clock, requests.length, 10));
        requests.push(request(pool, clock, requests.length, 10));
        await clock.advance(5);
        if (t === 500) {
          expect(pool.stats().congested).toBe(true);
          expect(toPrometheusText(pool)).toMatch(/^lifeguard_pool_congested\{pool_name="default"\} 1$/m);
          expect(pool.health()).toMatchObject({ status: 'degraded' });
          expect(pool.health().reason).toMatch(/^congested/);
        }
      }
      expect(events[0]).toMatchObject({ pool, congested: true });
      // Served while congested: the newest, so at once (FIFO would serve each after a long wait).
      const waits = requests.filter((r) => r.arrivedAt > 500 && r.servedAt !== undefined).map((r) => r.servedAt! - r.arrivedAt).sort((a, b) => a - b);
      expect(waits[Math.floor(waits.length / 2)]).toBeLessThanOrEqual(10);
      // Good requests: served within 50 ms of arriving, about the capacity (100 in the last 0.5 s).
      const good = requests.filter((r) => r.arrivedAt > 500 && r.servedAt !== undefined && r.servedAt - r.arrivedAt <= 50).length;
      expect(good).toBeGreaterThanOrEqual(90);
      // Shed fast, with its own error.
      const shed = requests.filter((r) => r.error instanceof PoolOverloadedError);
      expect(shed.length).toBeGreaterThan(0);
      const error = shed[0]!.error as PoolOverloadedError;
      expect(error.code).toBe('POOL_OVERLOADED');
      expect(error.stats).toMatchObject({ max: 2, size: 2 });
      // Once congested, a request is shed as soon as it has waited shedAfterMs (50 ms; the
      // pool looks at each arrival and release, every few ms here) and cannot be served
      // before its deadline at the pool's pace (here ~100 ms, behind ~20 newer waiters): well
      // before the 200 ms deadline, and nobody waits the deadline out.
      const steady = shed.filter((r) => r.arrivedAt > 500).map((r) => (r.error as PoolOverloadedError).waitedMs);
      expect(steady.length).toBeGreaterThan(0);
      expect(Math.min(...steady)).toBeGreaterThanOrEqual(50);
      expect(Math.max(...steady)).toBeLessThan(150);
      expect(pool.stats().timedOut).toBe(0);
      expect(pool.stats().rejected.shed).toBe(shed.length);
      expect(toPrometheusText(pool)).toContain(`lifeguard_pool_rejected_total{pool_name="default",reason="shed"} ${shed.length}`);
      expect(requests.some((r) => r.error !== undefined && !(r.error instanceof PoolOverloadedError))).toBe(false);

      // Arrivals stop: the queue empties, FIFO is back, every request settled.
      await clock.advance(200);
      expect(pool.stats()).toMatchObject({ congested: false, waiting: 0 });
      expect(events.at(-1)).toMatchObject({ pool, congested: false });
      expect(requests.every((r) => r.servedAt !== undefined || r.error !== undefined)).toBe(true);
      expect(pool.health().status).toBe('ok');
    } finally {
      unsubscribe(CHANNELS.congestion, listener);
    }
  });

  it('while congested a higher priority is still served first', async () => {
    const { pool, clock } = make({ acquireTimeoutMs: 200 });
    await warm(pool, clock, 2);
    for (let t = 0; t < 400; t += 5) {
      request(pool, clock, t, 10);
      request(pool, clock, t + 1, 10);
      await clock.advance(5);
    }
    expect(pool.stats().congested).toBe(true);
    const urgent = request(pool, clock, -1, 10, 5);
    const newer = request(pool, clock, -2, 10);
    await clock.advance(20);
    expect(urgent.servedAt).toBeDefined();
    expect(newer.servedAt === undefined || newer.servedAt >= urgent.servedAt!).toBe(true);
  });

  it("queuePolicy: 'fifo' keeps arrival order under the same overload and never sheds", async () => {
    const { pool, clock } = make({ queuePolicy: 'fifo' });
    await warm(pool, clock, 2);
    const requests: Request[] = [];
    for (let t = 0; t < 600; t += 5) {
      requests.push(request(pool, clock, requests.length, 10));
      requests.push(request(pool, clock, requests.length, 10));
      await clock.advance(5);
    }
    expect(pool.stats()).toMatchObject({ congested: false, rejected: { shed: 0 } });
    const served = requests.filter((r) => r.servedAt !== undefined);
    for (let i = 1; i < served.length; i++) expect(served[i]!.servedAt!).toBeGreaterThanOrEqual(served[i - 1]!.servedAt!);
  });

  it('a wait for creates (a cold start) is not congestion: nobody is shed', async () => {
    const clock = new VirtualClock();
    const pool = createPool<object>({ adapter: { create: () => clock.sleep(100).then(() => ({})), destroy: async () => {} }, clock, max: 10, maxConnecting: 2, onError: () => {} });
    pools.push({ pool, clock });
    const requests = Array.from({ length: 8 }, (_, i) => request(pool, clock, i, 10));
    await clock.advance(600);
    expect(requests.every((r) => r.servedAt !== undefined)).toBe(true);
    expect(pool.stats()).toMatchObject({ congested: false, rejected: { shed: 0 } });
  });

  it('options are validated', () => {
    const adapter = { create: async () => ({}), destroy: async () => {} };
    expect(() => createPool({ adapter, queuePolicy: 'lifo' as never })).toThrow("Expected `queuePolicy` to be 'adaptive' or 'fifo', got \"lifo\"");
    expect(() => createPool({ adapter, congestion: { targetMs: 0 } })).toThrow('congestion.targetMs');
    expect(() => createPool({ adapter, congestion: { shedAfter: 5 } as never })).toThrow('congestion.shedAfter');
    expect(() => createPool({ adapter, congestion: 'x' as never })).toThrow('Expected `congestion` to be an object');
  });
});
