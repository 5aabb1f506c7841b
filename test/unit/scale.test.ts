// Work per operation must not grow with the pool's size: a large pool fills, serves and
// retires in time proportional to what it does.
import { describe, expect, it } from 'vitest';
import { setup } from '../support/harness.js';

describe('filling a large pool', () => {
  it('max 2,000 with lifetimes spread fills in about the time it takes without lifetimes (the spread was cubic: 14 s)', async () => {
    const timed = async (maxLifetimeMs: number): Promise<number> => {
      await using h = setup({ max: 2000, min: 2000, maxConnecting: 2000, maxLifetimeMs, keepaliveMs: Infinity });
      const started = performance.now();
      await h.clock.advance(0);
      await h.pool.warmup();
      const ms = performance.now() - started;
      expect(h.pool.stats()).toMatchObject({ size: 2000, idle: 2000 });
      if (maxLifetimeMs !== Infinity) {
        // Still spread: no two resources retire at the same instant.
        await h.clock.advance(0.6 * maxLifetimeMs - 1);
        expect(h.pool.stats().destroyedByReason.lifetime).toBe(0);
        await h.clock.advance(0.4 * maxLifetimeMs + 1);
        expect(h.pool.stats().destroyedByReason.lifetime).toBeGreaterThanOrEqual(2000);
      }
      return ms;
    };
    const without = await timed(Infinity);
    const withLifetime = await timed(1_800_000);
    // Generous: the quadratic-per-create spread took ~75x as long.
    expect(withLifetime).toBeLessThan(Math.max(2000, 10 * without));
  });
});
