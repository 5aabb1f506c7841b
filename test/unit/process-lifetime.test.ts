// The pool keeps the process alive exactly while a caller awaits it (README, "Process
// lifetime"): a queued acquire (with the create or ping on its behalf), a reset that
// release() returns, warmup(), close(); an idle pool never does. Checked the way users
// meet it: a plain script in a fresh `node`, its exit code and output. The resources here
// hold no handles (timers of their own are unref'd), so nothing but the pool decides.
import { describe, expect, it } from 'vitest';
import { describeChild, runNode } from '../support/child-process.js';

/** An adapter whose work takes `ms` on an unref'd timer: it keeps nothing alive by itself. */
const UNREF_ADAPTER = `
const later = (ms, value) => new Promise((resolve) => setTimeout(() => resolve(value), ms).unref());
const refused = () => new Promise((_, reject) => setTimeout(() => reject(Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' })), 5).unref());
let next = 0;
`;

describe('a caller awaiting the pool keeps the process alive', () => {
  it("a saturated pool's waiter gets AcquireTimeoutError: the script fails loudly instead of exiting 0 mid-await", () => {
    const result = runNode(`
      const { createPool } = await import(process.env.LIFEGUARD_DIST);
      ${UNREF_ADAPTER}
      const pool = createPool({ adapter: { create: async () => ({ id: ++next }), destroy: async () => {} }, max: 1 });
      const held = await pool.acquire();
      await pool.acquire({ timeoutMs: 300 });
      console.log('UNREACHABLE');
    `);
    expect(result.status, describeChild(result)).toBe(1);
    expect(result.stderr).toContain('AcquireTimeoutError');
    expect(result.stderr).toContain('Timed out after 300 ms');
    expect(result.stdout).not.toContain('UNREACHABLE');
  });

  it('an acquire whose creates fail and back off ends with the pool error within its deadline', () => {
    const result = runNode(`
      const { createPool } = await import(process.env.LIFEGUARD_DIST);
      ${UNREF_ADAPTER}
      const pool = createPool({ adapter: { create: refused, destroy: async () => {} }, acquireTimeoutMs: 600 });
      const started = performance.now();
      try {
        await pool.acquire();
      } catch (error) {
        console.log('REJECTED', error.name, error.cause?.code, Math.round(performance.now() - started));
        process.exitCode = 2;
      }
    `);
    expect(result.status, describeChild(result)).toBe(2);
    const [, name, cause, ms] = /REJECTED (\S+) (\S+) (\d+)/.exec(result.stdout) ?? [];
    expect(name).toBe('AcquireTimeoutError');
    expect(cause).toBe('ECONNREFUSED');
    expect(Number(ms)).toBeGreaterThanOrEqual(599);
  });

  it('an awaited warmup() completes although the create only waits on unref timers', () => {
    const result = runNode(`
      const { createPool } = await import(process.env.LIFEGUARD_DIST);
      ${UNREF_ADAPTER}
      const pool = createPool({ adapter: { create: () => later(100, { id: ++next }), destroy: async () => {} }, min: 2 });
      await pool.warmup();
      console.log('WARM', pool.stats().idle);
    `);
    expect(result.status, describeChild(result)).toBe(0);
    expect(result.stdout).toContain('WARM 2');
  });

  it('an awaited release() completes its reset', () => {
    const result = runNode(`
      const { createPool } = await import(process.env.LIFEGUARD_DIST);
      ${UNREF_ADAPTER}
      let resets = 0;
      const pool = createPool({
        adapter: { create: async () => ({ id: ++next }), destroy: async () => {}, reset: () => later(100).then(() => { resets++; }) },
      });
      const lease = await pool.acquire();
      await lease.release();
      console.log('RESET', resets, pool.stats().idle);
    `);
    expect(result.status, describeChild(result)).toBe(0);
    expect(result.stdout).toContain('RESET 1 1');
  });

  it('an idle pool, never closed, lets the script end at once', () => {
    const result = runNode(`
      const { createPool } = await import(process.env.LIFEGUARD_DIST);
      ${UNREF_ADAPTER}
      const pool = createPool({ adapter: { create: async () => ({ id: ++next }), destroy: async () => {}, ping: async () => {} }, min: 3, keepaliveMs: 1000 });
      await pool.warmup();
      await pool.withConnection(() => 1);
      console.log('DONE', pool.stats().idle);
    `);
    expect(result.status, describeChild(result)).toBe(0);
    expect(result.stdout).toContain('DONE 3');
    // Well before the first keepalive: nothing of the pool held the process.
    expect(result.ms).toBeLessThan(5000);
  });
});
