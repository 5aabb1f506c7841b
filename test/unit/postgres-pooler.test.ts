// The `pooler` and `preparedStatements` options at construction (no database): what a pooler
// breaks is refused with a message that says why and what to do instead, naming the option and
// never echoing a password or a URL; and the helpers the adapter uses behind a pooler.
import { afterEach, describe, expect, it } from 'vitest';
import { InvalidPoolOptionError } from '../../src/index.js';
import { createPostgresPool, type PostgresPool, type PostgresPoolConfig } from '../../src/adapters/postgres/index.js';
import { refuseListen, resolvePoolerPolicy, sendStatementsUnnamed } from '../../src/adapters/postgres/pooler.js';
import type pg from 'pg';

const SECRET = 'S3cret-pw-4b7e';
const URL_WITH_SECRET = `postgres://app:${SECRET}@127.0.0.1:6432/app`;
const pools: PostgresPool[] = [];
afterEach(async () => {
  await Promise.all(pools.splice(0).map((pool) => pool.close()));
});

function make(config: Record<string, unknown>): PostgresPool {
  const pool = createPostgresPool(config as unknown as PostgresPoolConfig);
  pools.push(pool);
  return pool;
}

function refusal(config: Record<string, unknown>): InvalidPoolOptionError {
  let thrown: unknown;
  try {
    make(config);
  } catch (error) {
    thrown = error;
  }
  expect(thrown, `expected ${JSON.stringify(config)} to be refused`).toBeInstanceOf(InvalidPoolOptionError);
  const error = thrown as InvalidPoolOptionError;
  expect(`${error.message}\n${error.stack}`).not.toContain(SECRET);
  return error;
}

describe('pooler: validation at construction', () => {
  it('accepts the three modes and both statement policies; defaults leave a pool as it was', () => {
    for (const pooler of ['none', 'session', 'transaction']) make({ connectionString: URL_WITH_SECRET, pooler });
    make({ connectionString: URL_WITH_SECRET, pooler: 'transaction', preparedStatements: 'server' });
    expect(resolvePoolerPolicy({}, {})).toEqual({ pooler: 'none', preparedStatements: 'server' });
    expect(resolvePoolerPolicy({ pooler: 'session' }, {})).toEqual({ pooler: 'session', preparedStatements: 'server' });
    expect(resolvePoolerPolicy({ pooler: 'transaction' }, {})).toEqual({ pooler: 'transaction', preparedStatements: 'unnamed' });
  });

  it('refuses unknown values, naming the option', () => {
    expect(refusal({ connectionString: URL_WITH_SECRET, pooler: 'pgbouncer' }).option).toBe('pooler');
    expect(refusal({ connectionString: URL_WITH_SECRET, pooler: true }).option).toBe('pooler');
    expect(refusal({ connectionString: URL_WITH_SECRET, preparedStatements: 'named' }).option).toBe('preparedStatements');
  });

  for (const pooler of ['session', 'transaction'] as const) {
    for (const [key, value] of [['statement_timeout', 1000], ['lock_timeout', 500], ['idle_in_transaction_session_timeout', 2000], ['options', '-c search_path=x']] as const) {
      it(`pooler '${pooler}' refuses the startup parameter ${key}, pointing to ALTER ROLE … SET or SET LOCAL`, () => {
        const error = refusal({ connectionString: URL_WITH_SECRET, pooler, [key]: value });
        expect(error.option).toBe(key);
        expect(error.message).toMatch(/PgBouncer refuses this startup parameter/);
        expect(error.message).toMatch(/ALTER ROLE/);
        expect(error.message).toMatch(/SET LOCAL/);
      });
    }

    it(`pooler '${pooler}' refuses a startup parameter given in the URL, naming connectionString without echoing it`, () => {
      const error = refusal({ connectionString: `${URL_WITH_SECRET}?statement_timeout=1000`, pooler });
      expect(error.option).toBe('connectionString');
      expect(error.message).toMatch(/the `statement_timeout` parameter of `connectionString`/);
    });

    it(`pooler '${pooler}' accepts a startup parameter that is off (false or 0: pg does not send it)`, () => {
      make({ connectionString: URL_WITH_SECRET, pooler, statement_timeout: false, lock_timeout: 0 });
    });
  }

  it("pooler 'none' keeps startup parameters as they were", () => {
    make({ connectionString: URL_WITH_SECRET, statement_timeout: 1000, options: '-c search_path=x' });
  });

  it("pooler 'transaction' refuses resetOnRelease 'discard', saying why; session mode allows it", () => {
    const error = refusal({ connectionString: URL_WITH_SECRET, pooler: 'transaction', resetOnRelease: 'discard' });
    expect(error.option).toBe('resetOnRelease');
    expect(error.message).toMatch(/session state does not survive a transaction/);
    expect(error.message).toMatch(/Use 'rollback'/);
    make({ connectionString: URL_WITH_SECRET, pooler: 'session', resetOnRelease: 'discard' });
    make({ connectionString: URL_WITH_SECRET, pooler: 'transaction', resetOnRelease: 'rollback' });
  });

  it("a role target other than 'any' is refused behind a pooler (checked by the policy, whatever option carries it)", () => {
    let thrown: unknown;
    try {
      resolvePoolerPolicy({ pooler: 'session', targetSessionAttrs: 'read-write' }, {});
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(InvalidPoolOptionError);
    expect((thrown as InvalidPoolOptionError).option).toBe('targetSessionAttrs');
    expect(resolvePoolerPolicy({ pooler: 'session', targetSessionAttrs: 'any' }, {}).pooler).toBe('session');
  });
});

describe('pooler: LISTEN through pool.query in transaction mode', () => {
  it('is refused with a TypeError pointing to a dedicated pg.Client, before any connection is made', async () => {
    const pool = make({ connectionString: URL_WITH_SECRET, pooler: 'transaction', createTimeoutMs: 100 });
    for (const text of ['LISTEN jobs', '  listen "jobs"', { text: 'LISTEN jobs' }]) {
      const error = await pool.query(text as string).then(() => undefined, (e: unknown) => e);
      expect(error).toBeInstanceOf(TypeError);
      expect((error as Error).message).toMatch(/dedicated pg\.Client/);
    }
    expect(pool.stats().created + pool.stats().createFailed).toBe(0);
  });

  it('only LISTEN, and only in transaction mode', () => {
    expect(refuseListen('SELECT 1')).toBeUndefined();
    expect(refuseListen('NOTIFY jobs')).toBeUndefined();
    expect(refuseListen('UNLISTEN *')).toBeUndefined();
    expect(refuseListen('LISTENER')).toBeUndefined();
    expect(refuseListen('LISTEN a')).toBeInstanceOf(TypeError);
  });
});

describe('pooler: statements sent unnamed', () => {
  it('drops the name of a { name, text } config and leaves everything else as given', () => {
    const seen: unknown[] = [];
    const client = { query: (...args: unknown[]) => seen.push(args) } as unknown as pg.Client;
    sendStatementsUnnamed(client);
    const submittable = { name: 'cursor', submit: () => {} };
    client.query({ name: 'by-id', text: 'SELECT $1::int', values: [1], rowMode: 'array' } as pg.QueryConfig);
    client.query('SELECT 1', [2] as never);
    client.query(submittable as unknown as pg.Submittable);
    expect(seen).toEqual([[{ text: 'SELECT $1::int', values: [1], rowMode: 'array' }], ['SELECT 1', [2]], [submittable]]);
  });
});
