// PostgreSQL adapter misuse (M27–M28): releasing inside a transaction (never pooled dirty),
// and wrong argument types to pool.query / withTransaction, on a fake server stream.
// Part of the FAULTS.md §5 misuse checklist (M1–M32, one `describe` per case, split by concern
// across test/unit/misuse-*.test.ts; shared set-up in test/support/misuse.ts).
import { afterEach, describe, expect, it } from 'vitest';
import { createPostgresPool, type PostgresPool } from '../../src/adapters/postgres/index.js';
import { FakePgStream } from '../support/fake-pg-stream.js';
import { errorOf } from '../support/harness.js';
import { acquireNow, build, closeAfterTest, closeMisusePools, expectInvalid, fakePgPool, thrown } from '../support/misuse.js';
import { flush } from '../support/virtual-clock.js';

afterEach(closeMisusePools);

// ---------------------------------------------------------------- M27–M28: PostgreSQL

describe('M27 release inside a transaction / a failed transaction: never pooled dirty', () => {
  it('core: a resource the adapter reports dirty (isBroken) on release is destroyed, not pooled', async () => {
    const b = build({ max: 1 });
    const lease = await acquireNow(b);
    const resource = lease.resource;
    resource.broken = true; // e.g. "still inside a transaction"
    await lease.release();
    await flush();
    expect(resource.destroyed).toBe(true);
    const next = await acquireNow(b);
    expect(next.resource).not.toBe(resource);
    await next.release();
  });

  it('core: with a reset hook, a failing reset destroys the resource (resetFailed) instead of pooling it', async () => {
    const b = build({ max: 1 }, undefined, { hooks: ['isBroken', 'ping', 'reset'] });
    const lease = await acquireNow(b);
    const resource = lease.resource;
    b.fake.script.reset.push({ kind: 'fail', error: new Error('ROLLBACK failed') });
    await lease.release();
    await flush();
    expect(resource.destroyed).toBe(true);
    expect(b.pool.stats()).toMatchObject({ size: 0, destroyedByReason: { resetFailed: 1 } });
  });

  it.each([
    ['an open transaction', ['BEGIN']],
    ['a failed transaction', ['BEGIN', 'SELECT FAIL']],
  ])('postgres (default dirtyRelease: destroy): a client released in %s is destroyed; the next borrower gets a new one', async (_label, statements) => {
    const pool = fakePgPool({ max: 1 });
    const lease = await pool.acquire();
    const client = lease.resource;
    for (const sql of statements) await client.query(sql).catch(() => undefined);
    expect(['T', 'E']).toContain(FakePgStream.all.at(-1)!.status);
    await lease.release();
    expect(pool.stats()).toMatchObject({ size: 0, destroyedByReason: { broken: 1 } });

    const next = await pool.acquire();
    expect(next.resource).not.toBe(client);
    expect(pool.stats().created).toBe(2);
    await next.release();
  });

  it("postgres (dirtyRelease: 'rollback'): the client is rolled back before it is reused", async () => {
    const pool = fakePgPool({ max: 1, dirtyRelease: 'rollback' });
    const lease = await pool.acquire();
    const client = lease.resource;
    const stream = FakePgStream.all.at(-1)!;
    const before = stream.queries.length; // what the adapter itself ran at connect
    await client.query('BEGIN');
    await lease.release();
    expect(stream.queries.slice(before)).toEqual(['BEGIN', 'ROLLBACK']);
    expect(stream.status).toBe('I');

    const next = await pool.acquire();
    expect(next.resource).toBe(client);
    expect(pool.stats()).toMatchObject({ created: 1, destroyed: 0 });
    await next.release();
  });
});

describe('M28 pool.query(fn) / wrong argument types (postgres adapter)', () => {
  // No database: connections are lazy, so a pool pointed at a host that does not exist is fine
  // as long as nothing connects. Every TypeError must come before any connection attempt.
  let pool: PostgresPool;
  const fresh = (): PostgresPool => {
    pool = createPostgresPool({ host: 'lifeguard-no-such-host.invalid', port: 1, createTimeoutMs: 50, retry: { retries: 0 }, circuitBreaker: false, onError: () => {} });
    return closeAfterTest(pool);
  };

  it.each<[string, () => Promise<unknown>, RegExp]>([
    ['query(fn)', () => pool.query((() => 'select 1') as unknown as string), /pool\.query\(fn\) is not supported/],
    ['query(42)', () => pool.query(42 as unknown as string), /SQL text/],
    ['query(null)', () => pool.query(null as unknown as string), /SQL text/],
    ['query({})', () => pool.query({} as unknown as string), /SQL text/],
    ["query('select $1', 'x')", () => pool.query('select $1', 'x' as unknown as unknown[]), /params to be an array/],
    ['withTransaction(sql)', () => pool.withTransaction('begin' as unknown as () => void), /expects a function/],
  ])('%s rejects with a TypeError before any connection is attempted', async (_label, call, message) => {
    fresh();
    let result: Promise<unknown> | undefined;
    expect(() => {
      result = call();
    }).not.toThrow();
    const error = await errorOf(result!);
    expect(error).toBeInstanceOf(TypeError);
    expect((error as TypeError).message).toMatch(message);
    await flush();
    expect(pool.stats()).toMatchObject({ created: 0, createFailed: 0, creating: 0, acquired: 0, waiting: 0 });
  });

  // DESIGN's error style, which withTransaction already follows for `isolation` and `retry.retries`:
  // a malformed option is named, with the expectation and the value, before anything connects.
  it.each<[string, Record<string, unknown>, string, string]>([
    ['isolation: snapshot', { isolation: 'snapshot' }, 'isolation', '"snapshot"'],
    ['retry: -1', { retry: { retries: -1 } }, 'retry.retries', '-1'],
    ["retry: 'yes'", { retry: 'yes' }, 'retry', '"yes"'],
    ['retry: null', { retry: null }, 'retry', 'null'],
  ])('withTransaction(fn, { %s }) rejects with InvalidPoolOptionError naming the option, before any connection', async (_label, options, option, shown) => {
    fresh();
    const error = await errorOf(pool.withTransaction(() => undefined, options as never));
    expectInvalid(error, option);
    expect((error as Error).message).toContain(`got ${shown}`);
    expect(pool.stats()).toMatchObject({ created: 0, createFailed: 0, creating: 0, acquired: 0 });
  });

  it('a bad connection string throws at construction without echoing it (it may hold a password)', () => {
    const error = thrown(() => createPostgresPool({ connectionString: 'mysql://user:hunter2@db/app' }));
    expectInvalid(error, 'connectionString');
    expect((error as Error).message).not.toContain('hunter2');
  });
});
