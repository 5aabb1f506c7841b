// A pool shared across fork() / worker threads (M32, n/a in Node): a clone is inert.
// Part of the FAULTS.md §5 misuse checklist (M1–M32, one `describe` per case, split by concern
// across test/unit/misuse-*.test.ts; shared set-up in test/support/misuse.ts).
import { MessageChannel } from 'node:worker_threads';
import { afterEach, describe, expect, it } from 'vitest';
import { acquireNow, build, closeMisusePools } from '../support/misuse.js';

afterEach(closeMisusePools);

// Node has no fork() that copies a live heap (child_process.fork starts a fresh process that
// builds its own pools), and worker threads share no objects: a pool crossing a thread
// boundary is structured-cloned. Nothing (no PoolForkedError) is needed, but the README
// should say so (see the report). What can be checked: a clone is inert and owns nothing.
describe('M32 (n/a in Node: no heap-copying fork) pool shared across fork() / worker threads', () => {
  it('a structured clone of a pool or a lease (what postMessage to a worker makes) is inert: no methods, no resource', async () => {
    const b = build({ max: 1 });
    const lease = await acquireNow(b);
    const poolClone = structuredClone(b.pool) as unknown as Record<string, unknown>;
    const leaseClone = structuredClone(lease) as unknown as Record<string, unknown>;
    expect(typeof poolClone.acquire).toBe('undefined');
    expect(typeof poolClone.close).toBe('undefined');
    expect('resource' in leaseClone).toBe(false);
    expect(typeof leaseClone.release).toBe('undefined');
    expect(b.pool.stats()).toMatchObject({ size: 1, leased: 1 });
    await lease.release();
  });

  it('postMessage of a pool to another thread delivers an inert copy; the original pool is untouched', async () => {
    const b = build({ max: 1 });
    const { port1, port2 } = new MessageChannel();
    try {
      const received = new Promise<unknown>((resolve) => port2.once('message', resolve));
      port1.postMessage(b.pool);
      const copy = (await received) as Record<string, unknown>;
      expect(typeof copy.acquire).toBe('undefined');
      const lease = await acquireNow(b);
      expect(b.fake.created).toBe(1);
      await lease.release();
    } finally {
      port1.close();
      port2.close();
    }
  });
});
