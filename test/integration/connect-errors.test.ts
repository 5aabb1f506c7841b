// Creates that cannot succeed fail the acquire at once with the server's error as cause
// (FAULTS.md F8, F9): wrong password (28P01), unknown database (3D000). A refused
// connection (ECONNREFUSED) is transient: retried until the acquire deadline.
import { describe, expect, it } from 'vitest';
import { AcquireTimeoutError, CircuitOpenError, CreateResourceError } from '../../src/index.js';
import { rejectionOf, usePostgres } from './harness.js';
import { freePort } from './providers.js';

const db = usePostgres();
const ACQUIRE_TIMEOUT_MS = 10_000;

describe('non-retryable connect errors fail fast', () => {
  it('wrong password: CreateResourceError with cause 28P01, in one attempt, far below acquireTimeoutMs, password not echoed', async () => {
    const secret = 'not-the-password-7f3a91';
    const pool = db.pool({ password: secret, acquireTimeoutMs: ACQUIRE_TIMEOUT_MS });
    const started = performance.now();
    const error = await rejectionOf(pool.acquire());
    const elapsed = performance.now() - started;
    expect(error).toBeInstanceOf(CreateResourceError);
    expect((error.cause as { code?: string }).code).toBe('28P01'); // invalid_password
    expect((error as CreateResourceError).attempts).toBe(1);
    expect(elapsed).toBeLessThan(2000);
    expect(`${error.message}\n${error.stack}\n${String((error.cause as Error).message)}`).not.toContain(secret);
    expect(pool.stats()).toMatchObject({ createFailed: 1, size: 0, waiting: 0 });
    expect(pool.stats().rejected.createFailed).toBe(1);
  });

  it('unknown database: CreateResourceError with cause 3D000, fast', async () => {
    const pool = db.pool({ database: 'lifeguard_no_such_database', acquireTimeoutMs: ACQUIRE_TIMEOUT_MS });
    const started = performance.now();
    const error = await rejectionOf(pool.query('SELECT 1'));
    expect(performance.now() - started).toBeLessThan(2000);
    expect(error).toBeInstanceOf(CreateResourceError);
    expect((error.cause as { code?: string }).code).toBe('3D000'); // invalid_catalog_name
    expect(error.message).toContain('lifeguard_no_such_database');
  });

  it('20 concurrent acquires with a wrong password all fail fast (create error or open circuit), none waits for its deadline', async () => {
    const pool = db.pool({ password: 'wrong-password', acquireTimeoutMs: ACQUIRE_TIMEOUT_MS });
    const started = performance.now();
    const settled = await Promise.allSettled(Array.from({ length: 20 }, () => pool.acquire()));
    expect(performance.now() - started).toBeLessThan(3000);
    for (const result of settled) {
      expect(result.status).toBe('rejected');
      const reason = (result as PromiseRejectedResult).reason as Error;
      expect(reason instanceof CreateResourceError || reason instanceof CircuitOpenError).toBe(true);
      expect((reason.cause as { code?: string }).code).toBe('28P01');
    }
    expect(pool.stats().timedOut).toBe(0);
  });

  it('the pool is not poisoned: once the password is right (a password function), the next acquire succeeds', async () => {
    let password = 'rotated-away';
    const pool = db.pool({ password: async () => password, acquireTimeoutMs: ACQUIRE_TIMEOUT_MS });
    const error = await rejectionOf(pool.query('SELECT 1'));
    expect((error.cause as { code?: string }).code).toBe('28P01');
    password = db.password;
    const started = performance.now();
    expect((await pool.query('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
    expect(performance.now() - started).toBeLessThan(1000);
  });
});

describe('transient connect errors are retried until the deadline', () => {
  it('ECONNREFUSED: the acquire keeps retrying and times out at acquireTimeoutMs with the refusal as cause', async () => {
    const closedPort = await freePort(); // nothing listens there any more
    const pool = db.pool({ port: closedPort, acquireTimeoutMs: 800, circuitBreaker: false, retry: { minTimeoutMs: 50, maxTimeoutMs: 200 } });
    const started = performance.now();
    const error = await rejectionOf(pool.acquire());
    const elapsed = performance.now() - started;
    expect(error).toBeInstanceOf(AcquireTimeoutError);
    expect((error as AcquireTimeoutError).reason).toBe('create-failing');
    expect((error.cause as { code?: string }).code).toBe('ECONNREFUSED');
    expect(elapsed).toBeGreaterThanOrEqual(790);
    expect(elapsed).toBeLessThan(800 + 300); // I1
    expect(pool.stats().createFailed).toBeGreaterThan(1);
  });
});
