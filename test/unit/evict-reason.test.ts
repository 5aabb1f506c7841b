// CreateContext.evict(reason): an adapter that retires some of its resources itself (the
// PostgreSQL adapter retiring one host's connections) gets them counted as `invalidated`,
// like pool.invalidate(), not as `broken`, idle ones at once and leased ones on return; the
// default stays `broken` (the adapter's isBroken decides for a leased one).
import { describe, expect, it } from 'vitest';
import { createPool, type CreateContext } from '../../src/index.js';
import { flush, VirtualClock } from '../support/virtual-clock.js';

function poolWithEvicts() {
  const evicts: CreateContext['evict'][] = [];
  let next = 0;
  const destroyed: number[] = [];
  const pool = createPool<{ id: number }>({
    adapter: {
      async create(ctx) {
        evicts.push(ctx.evict);
        return { id: next++ };
      },
      async destroy(resource) {
        destroyed.push(resource.id);
      },
    },
    max: 3,
    min: 0,
    clock: new VirtualClock(),
  });
  return { pool, evicts, destroyed };
}

describe('evict(reason)', () => {
  it("evict('invalidated') destroys an idle resource counted as invalidated; evict() as broken", async () => {
    const { pool, evicts, destroyed } = poolWithEvicts();
    const leases = await Promise.all([pool.acquire(), pool.acquire()]);
    for (const lease of leases) await lease.release();
    evicts[0]!('invalidated');
    evicts[1]!();
    await flush();
    expect(destroyed.sort()).toEqual([0, 1]);
    expect(pool.stats().destroyedByReason).toMatchObject({ invalidated: 1, broken: 1 });
    await pool.close();
  });

  it("evict('invalidated') on a leased resource leaves the lease alone and destroys it on return, counted as invalidated", async () => {
    const { pool, evicts, destroyed } = poolWithEvicts();
    const lease = await pool.acquire();
    evicts[0]!('invalidated');
    await flush();
    expect(destroyed).toEqual([]);
    expect(pool.stats()).toMatchObject({ leased: 1, size: 1 });
    await lease.release();
    await flush();
    expect(destroyed).toEqual([0]);
    expect(pool.stats().destroyedByReason).toMatchObject({ invalidated: 1, broken: 0 });
    const next = await pool.acquire();
    expect(next.resource.id).toBe(1);
    await next.release();
    await pool.close();
  });

  it('evict() (broken) on a leased resource leaves it to the adapter: returned healthy, it is reused', async () => {
    const { pool, evicts, destroyed } = poolWithEvicts();
    const lease = await pool.acquire();
    evicts[0]!();
    await flush();
    await lease.release();
    expect(destroyed).toEqual([]);
    expect(pool.stats()).toMatchObject({ idle: 1, size: 1 });
    await pool.close();
  });
});
