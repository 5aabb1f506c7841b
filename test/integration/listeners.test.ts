// Listeners a caller adds to a leased pg.Client are removed when the lease ends (issue 9,
// item 7): otherwise `notice` / `notification` handlers pile up (MaxListenersExceededWarning
// at 11) and one request's handler hears the next request's notices and NOTIFY payloads.
// The pool's own listeners stay (its 'error' listener keeps a dead idle client from
// crashing the process), even when a caller removed them.
import type pg from 'pg';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { ResetOnRelease } from '../../src/adapters/postgres/index.js';
import { pidOf, settled, sleep, usePostgres, waitFor } from './harness.js';

const db = usePostgres();

const warnings: Error[] = [];
const onWarning = (warning: Error): void => {
  warnings.push(warning);
};
beforeEach(() => {
  warnings.length = 0;
  process.on('warning', onWarning);
});
afterEach(() => {
  process.off('warning', onWarning);
});

function counts(client: pg.Client): Record<string, number> {
  return Object.fromEntries(['notice', 'notification', 'error', 'end', 'drain'].map((name) => [name, client.listenerCount(name)]));
}

for (const resetOnRelease of ['none', 'rollback', 'discard'] as const satisfies readonly ResetOnRelease[]) {
  describe(`resetOnRelease: '${resetOnRelease}'`, () => {
    it("request A's notice and notification handlers do not hear request B, and are gone after A's release", async () => {
      const pool = db.pool({ max: 1, resetOnRelease });
      const heardByA: string[] = [];
      let client!: pg.Client;
      const baseline = await pool.withConnection((c) => {
        client = c;
        return counts(c);
      });

      // Request A: listens, hears its own notice and notification.
      await pool.withConnection(async (c) => {
        c.on('notice', (msg) => heardByA.push(`notice:${msg.message}`));
        c.on('notification', (msg) => heardByA.push(`notification:${msg.payload}`));
        await c.query('LISTEN lg_listeners');
        await c.query(`DO $$ BEGIN RAISE NOTICE 'for A'; END $$`);
        await c.query(`NOTIFY lg_listeners, 'for A'`);
        await waitFor('A to hear its own notification', () => heardByA.includes('notification:for A'));
      });
      expect(heardByA).toEqual(['notice:for A', 'notification:for A']);
      expect(counts(client)).toEqual(baseline);

      // Request B on the same client: its notices and a NOTIFY on the channel the session
      // may still LISTEN on (with 'none'/'rollback') reach nobody from request A.
      const heardByB: string[] = [];
      await pool.withConnection(async (c) => {
        expect(c).toBe(client);
        c.on('notice', (msg) => heardByB.push(`notice:${msg.message}`));
        c.on('notification', (msg) => heardByB.push(`notification:${msg.payload}`));
        await c.query('LISTEN lg_listeners');
        await c.query(`DO $$ BEGIN RAISE NOTICE 'for B'; END $$`);
        await c.query(`NOTIFY lg_listeners, 'for B'`);
        await waitFor('B to hear its notification', () => heardByB.includes('notification:for B'));
      });
      expect(heardByB).toEqual(['notice:for B', 'notification:for B']);
      expect(heardByA).toEqual(['notice:for A', 'notification:for A']);
      expect(counts(client)).toEqual(baseline);
    });

    it('12 leases each adding handlers: no pile-up, no MaxListenersExceededWarning', async () => {
      const pool = db.pool({ max: 1, resetOnRelease });
      let client!: pg.Client;
      const baseline = await pool.withConnection((c) => {
        client = c;
        return counts(c);
      });
      for (let i = 0; i < 12; i++) {
        await pool.withConnection(async (c) => {
          c.on('notice', () => {});
          c.once('notification', () => {});
          c.on('drain', () => {});
          await c.query('SELECT 1');
        });
      }
      expect(counts(client)).toEqual(baseline);
      await sleep(10); // warnings are emitted on a later tick
      expect(warnings.filter((w) => w.name === 'MaxListenersExceededWarning')).toEqual([]);
      expect(pool.stats()).toMatchObject({ created: 1, destroyed: 0 });
    });
  });
}

describe("the pool's own listeners stay", () => {
  it("a caller that removes the client's 'error' listeners: they are put back, so a later server kill of the idle client is handled", async () => {
    const pool = db.pool({ max: 1 });
    let client!: pg.Client;
    const baseline = await pool.withConnection((c) => {
      client = c;
      return counts(c);
    });
    await pool.withConnection(async (c) => {
      c.removeAllListeners('error');
      c.removeAllListeners('end');
      c.on('error', () => {});
      await c.query('SELECT 1');
    });
    expect(counts(client)).toEqual(baseline);
    // The idle client's backend is terminated: the pool's listener hears it (no crash; the
    // harness asserts no uncaught exception) and evicts the client at once.
    const pid = pidOf(client);
    await db.admin('SELECT pg_terminate_backend($1)', [pid]);
    await waitFor('the idle client to be evicted', () => pool.stats().destroyed === 1);
    await settled(client).catch(() => {});
    expect((await pool.query('SELECT 1 AS one')).rows[0]!.one).toBe(1);
  });

  it('20 concurrent requests sharing two clients: each hears only its own notice', async () => {
    const pool = db.pool({ max: 2 });
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        pool.withConnection(async (c) => {
          const seen: string[] = [];
          c.on('notice', (msg) => seen.push(msg.message ?? ''));
          await c.query(`DO $$ BEGIN RAISE NOTICE 'n${i}'; END $$`);
          return seen;
        }),
      ),
    );
    // Each request heard exactly its own notice, although requests shared two clients.
    expect(results).toEqual(Array.from({ length: 20 }, (_, i) => [`n${i}`]));
  });
});
