// Configuration seen from a real server (issue 9, items 4, 5, 9, 10): a startup parameter the
// server refuses fails the acquire at once with the server's SQLSTATE, not after the acquire
// deadline; durations up to 2^31-1 ms are honoured exactly (the server refuses more, so
// lifeguard does at construction); a bare connection string works as it does for pg.Client;
// a URL in `host` never reaches the server or the create error.
import { describe, expect, it } from 'vitest';
import { createPostgresPool, type PostgresPoolConfig } from '../../src/adapters/postgres/index.js';
import { AcquireTimeoutError, CreateResourceError, InvalidPoolOptionError } from '../../src/index.js';
import { rejectionOf, usePostgres } from './harness.js';

const db = usePostgres();
/** Long enough that a retried error would show: the fast failures below take well under a second. */
const ACQUIRE_TIMEOUT_MS = 10_000;

/** The acquire's rejection and how long it took. */
async function failedAcquire(config: PostgresPoolConfig): Promise<{ error: Error & { cause?: unknown }; elapsed: number; attempts: number }> {
  const pool = db.pool({ acquireTimeoutMs: ACQUIRE_TIMEOUT_MS, ...config });
  const started = performance.now();
  const error = await rejectionOf(pool.acquire());
  const elapsed = performance.now() - started;
  return { error, elapsed, attempts: (error as { attempts?: number }).attempts ?? -1 };
}

describe('item 10: a startup parameter the server refuses fails the acquire at once, with the server error as cause', () => {
  it.each([
    ['-c statement_timeout=abc', '22023'], // invalid_parameter_value
    ['-c no_such_setting=1', '42704'], // undefined_object
    ['-c', '42601'], // syntax_error: invalid command-line argument
    ['-c shared_buffers=1MB', '55P02'], // cant_change_runtime_param
  ])('options %j: CreateResourceError with cause %s in one attempt, far below the deadline', async (options, sqlstate) => {
    const { error, elapsed, attempts } = await failedAcquire({ options });
    expect(error).toBeInstanceOf(CreateResourceError);
    expect((error.cause as { code?: string }).code).toBe(sqlstate);
    expect(attempts).toBe(1);
    expect(elapsed).toBeLessThan(1500);
  });

  it('a role without the privilege to set a superuser-only parameter: 42501, at once', async () => {
    const role = `lg_cfg_${Math.random().toString(36).slice(2, 10)}`;
    const password = 'role-pw-1';
    await db.admin(`CREATE ROLE ${role} LOGIN PASSWORD '${password}'`);
    db.cleanup(`DROP ROLE IF EXISTS ${role}`);
    const { error, elapsed } = await failedAcquire({ user: role, password, options: '-c log_statement=all' });
    expect(error).toBeInstanceOf(CreateResourceError);
    expect((error.cause as { code?: string; message: string }).code).toBe('42501'); // insufficient_privilege
    expect((error.cause as Error).message).toContain('log_statement');
    expect(elapsed).toBeLessThan(1500);
  });

  it('concurrent acquires all fail at once with the server error, none waits for its deadline', async () => {
    const pool = db.pool({ acquireTimeoutMs: ACQUIRE_TIMEOUT_MS, options: '-c no_such_setting=1' });
    const started = performance.now();
    const settled = await Promise.allSettled(Array.from({ length: 8 }, () => pool.acquire()));
    expect(performance.now() - started).toBeLessThan(2000);
    for (const result of settled) {
      expect(result.status).toBe('rejected');
      expect((((result as PromiseRejectedResult).reason as Error).cause as { code?: string }).code).toBe('42704');
    }
    expect(pool.stats().timedOut).toBe(0);
    expect((await db.pool().query('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
  });

  it('a transient refusal is still retried until the deadline (control: nothing listens on the port)', async () => {
    const { error, elapsed } = await failedAcquire({ host: '127.0.0.1', port: 1, acquireTimeoutMs: 600, circuitBreaker: false, retry: { minTimeoutMs: 20, maxTimeoutMs: 50 } });
    expect(error).toBeInstanceOf(AcquireTimeoutError);
    expect(elapsed).toBeGreaterThanOrEqual(590);
  });

  it('a password function that returns a number fails the acquire at once (pg: "Password must be a string"), not retried', async () => {
    const { error, elapsed, attempts } = await failedAcquire({ password: (() => 12345) as unknown as () => string });
    expect(error).toBeInstanceOf(CreateResourceError);
    expect((error.cause as Error).message).toContain('Password must be a string');
    expect(attempts).toBe(1);
    expect(elapsed).toBeLessThan(1500);
  });
});

describe('item 5: durations reach pg and the server exactly, or are refused at construction', () => {
  it('a 30-day createTimeoutMs: every connect succeeds (pg is not handed a timeout its setTimeout fires after 1 ms)', async () => {
    const pool = db.pool({ createTimeoutMs: 30 * 86_400_000, acquireTimeoutMs: 5000, max: 2 });
    const rows = await Promise.all([pool.query('SELECT 1 AS one'), pool.query('SELECT 2 AS one')]);
    expect(rows.map((r) => r.rows[0]?.one)).toEqual([1, 2]);
    expect(pool.stats().createFailed).toBe(0);
  });

  it('statement_timeout, lock_timeout, idle_in_transaction_session_timeout of 2^31-1 ms are set exactly on the server', async () => {
    const max = 2 ** 31 - 1;
    const pool = db.pool({ statement_timeout: max, lock_timeout: max, idle_in_transaction_session_timeout: max });
    const { rows } = await pool.query(
      "SELECT current_setting('statement_timeout') AS s, current_setting('lock_timeout') AS l, current_setting('idle_in_transaction_session_timeout') AS i",
    );
    expect(rows[0]).toEqual({ s: `${max}ms`, l: `${max}ms`, i: `${max}ms` });
  });

  it('one more millisecond is refused at construction (the server would answer 22023 on every connect)', () => {
    for (const key of ['statement_timeout', 'lock_timeout', 'idle_in_transaction_session_timeout'] as const) {
      expect(() => db.pool({ [key]: 2 ** 31 })).toThrow(InvalidPoolOptionError);
    }
  });

  it('a statement_timeout from the URL is given to the server as that many milliseconds', async () => {
    const url = new URL(db.url);
    url.search = '?statement_timeout=1234';
    const pool = db.track(createPostgresPool({ connectionString: url.toString(), max: 1 }));
    expect((await pool.query("SELECT current_setting('statement_timeout') AS s")).rows[0]).toEqual({ s: '1234ms' });
  });
});

describe('item 9: a bare connection string works; a URL in host is refused before it can reach an error message', () => {
  it('createPostgresPool(url) connects with the URL as pg.Client(url) does', async () => {
    const url = new URL(db.url);
    const app = db.appName('bare');
    url.search = `?application_name=${app}`;
    const pool = db.track(createPostgresPool(url.toString() as PostgresPoolConfig));
    const { rows } = await pool.query<{ app: string; db: string; user: string }>(
      "SELECT current_setting('application_name') AS app, current_database() AS db, current_user AS user",
    );
    expect(rows[0]).toEqual({ app, db: db.database, user: db.user });
  });

  it('host: a URL with the password: InvalidPoolOptionError at construction, password not in it, pointing to connectionString', () => {
    let thrown: unknown;
    try {
      db.pool({ host: db.url });
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(InvalidPoolOptionError);
    expect((thrown as InvalidPoolOptionError).option).toBe('host');
    expect((thrown as Error).message).toContain('connectionString');
    expect(`${(thrown as Error).message}\n${(thrown as Error).stack}`).not.toContain(db.password);
  });
});
