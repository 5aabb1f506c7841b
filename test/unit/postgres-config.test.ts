// createPostgresPool's configuration, checked at construction (no database): every
// pg.ClientConfig field has its type and range checked, so nothing reaches pg that would crash
// the process at the first connect, be silently shortened, or be refused by the server on
// every connect; no message echoes a password or a URL holding one; the connection-string
// forms pg accepts are accepted. The server side of each is in test/integration/config-*.
import { Duplex } from 'node:stream';
import pg from 'pg';
import { afterEach, describe, expect, it } from 'vitest';
import { InvalidPoolOptionError } from '../../src/index.js';
import { createPostgresPool, isRetryableConnectError, resolveClientConfig, type PostgresPool, type PostgresPoolConfig } from '../../src/adapters/postgres/index.js';

const SECRET = 'S3cret-pw-9f1c';
const pools: PostgresPool[] = [];
afterEach(async () => {
  await Promise.all(pools.splice(0).map((pool) => pool.close()));
});

/** Misuse is what these tests feed in: bypass the type checker. */
const loose = (config: Record<string, unknown> | string): PostgresPoolConfig => config as unknown as PostgresPoolConfig;

function make(config: Record<string, unknown> | string): PostgresPool {
  const pool = createPostgresPool(loose(config));
  pools.push(pool);
  return pool;
}

/** The InvalidPoolOptionError `config` throws at construction. */
function refusal(config: Record<string, unknown> | string): InvalidPoolOptionError {
  let thrown: unknown;
  try {
    make(config);
  } catch (error) {
    thrown = error;
  }
  expect(thrown, `expected ${JSON.stringify(config)} to be refused`).toBeInstanceOf(InvalidPoolOptionError);
  return thrown as InvalidPoolOptionError;
}

/** Everything a user could see of an error: message, stack, cause. */
const visible = (error: Error): string => `${error.message}\n${error.stack}\n${String((error.cause as Error | undefined)?.message)}`;

describe('item 4: every pass-through field has its type checked at construction (a number from YAML/JSON never reaches pg)', () => {
  for (const key of ['user', 'database', 'application_name', 'fallback_application_name', 'options', 'client_encoding', 'host']) {
    it(`${key}: 123 is refused, naming ${key}`, () => {
      const error = refusal({ [key]: 123 });
      expect(error.option).toBe(key);
      expect(error.message).toMatch(new RegExp(`^Expected \`${key}\` to be a string.*, got 123$`));
    });
  }

  it('password: a number is refused without echoing it; a string or a function returning one is accepted', () => {
    const error = refusal({ password: 918273645 });
    expect(error.option).toBe('password');
    expect(error.message).toContain('a string or a function');
    expect(error.message).toContain('got a number');
    expect(error.message).not.toContain('918273645');
    expect(refusal({ password: { value: SECRET } }).message).not.toContain(SECRET);
    make({ password: SECRET });
    make({ password: () => SECRET });
    make({ password: async () => SECRET });
  });

  it.each([
    ['port', 'abc', /Expected `port` to be an integer in \[1, 65535\], got "abc"/],
    ['port', 70000, /Expected `port` to be an integer in \[1, 65535\], got 70000/],
    ['port', 0, /got 0/],
    ['port', 5432.5, /got 5432.5/],
    ['ssl', 'require', /Expected `ssl` to be a boolean or a tls.ConnectionOptions object, got "require"/],
    ['keepAlive', 'yes', /Expected `keepAlive` to be a boolean, got "yes"/],
    ['binary', 1, /Expected `binary` to be a boolean, got 1/],
    ['parseInputDatesAsUTC', 'true', /a boolean/],
    ['enableChannelBinding', 1, /a boolean/],
    ['types', {}, /Expected `types` to be an object with a getTypeParser\(\) function/],
    ['stream', Object.assign(new Duplex(), { toString: () => 'a Duplex instance' }), /Expected `stream` to be a function returning a new stream for each connection/],
    ['statement_timeout', '5s', /Expected `statement_timeout` to be false or an integer number of milliseconds/],
    ['lock_timeout', 1.5, /`lock_timeout`.*got 1.5/],
    ['idle_in_transaction_session_timeout', -1, /got -1/],
    ['query_timeout', '100', /Expected `query_timeout` to be a number of milliseconds/],
  ] as const)('%s: %s is refused with a message naming it', (key, value, message) => {
    const error = refusal({ [key]: value });
    expect(error.option).toBe(key);
    expect(error.message).toMatch(message);
  });

  it('the values pg documents are accepted', () => {
    make({
      host: '127.0.0.1', port: 5432, user: 'app', database: 'app', password: SECRET, ssl: { rejectUnauthorized: false }, keepAlive: false,
      keepAliveInitialDelayMillis: 10_000, types: pg.types, stream: () => new Duplex(), statement_timeout: false, lock_timeout: 1000,
      idle_in_transaction_session_timeout: 0, query_timeout: 1500, application_name: 'a', fallback_application_name: 'b',
      options: '-c search_path=app', client_encoding: 'UTF8', binary: false, parseInputDatesAsUTC: true, enableChannelBinding: false,
    });
    make({ host: '/var/run/postgresql', ssl: true });
    make({ host: '::1' });
  });

  it("a port as a decimal string (an environment variable) is accepted and given to pg as that number", () => {
    expect(resolveClientConfig({ port: '6543' as unknown as number }, 1000).port).toBe(6543);
  });
});

describe('item 5: durations pg or the server cannot honour are refused, nothing is shortened', () => {
  it.each([
    ['queryTimeoutMs', 2 ** 31, 'Expected `queryTimeoutMs` to be a number of milliseconds > 0 and <= 2147483647, got 2147483648'],
    ['query_timeout', 2 ** 31, 'Expected `query_timeout` to be a number of milliseconds in [0, 2147483647] (0 for none), got 2147483648'],
    ['statement_timeout', 2 ** 31, 'Expected `statement_timeout` to be false or an integer number of milliseconds in [0, 2147483647] (PostgreSQL refuses more), got 2147483648'],
    ['lock_timeout', 30 * 86_400_000, 'got 2592000000'],
    ['idle_in_transaction_session_timeout', 2 ** 31, 'got 2147483648'],
    ['keepAliveInitialDelayMillis', 2 ** 31, 'at most 32767000'],
    ['keepAliveInitialDelayMillis', 32_768_000, 'got 32768000'],
    ['keepAliveInitialDelayMillis', 1500, 'a whole number of seconds in ms'],
  ] as const)('%s: %d is refused', (key, value, message) => {
    const error = refusal({ [key]: value });
    expect(error.option).toBe(key);
    expect(error.message).toContain(message);
  });

  it('the largest values are accepted', () => {
    make({ queryTimeoutMs: 2 ** 31 - 1, statement_timeout: 2 ** 31 - 1, lock_timeout: 2 ** 31 - 1, keepAliveInitialDelayMillis: 32_767_000 });
  });

  it('pg gets connectionTimeoutMillis only when its setTimeout can honour it (a longer createTimeoutMs bounds the create alone)', () => {
    expect(resolveClientConfig({}, 10_000).connectionTimeoutMillis).toBe(10_000);
    expect(resolveClientConfig({}, 2 ** 31 - 1).connectionTimeoutMillis).toBe(2 ** 31 - 1);
    expect(resolveClientConfig({}, 30 * 86_400_000)).not.toHaveProperty('connectionTimeoutMillis');
    expect(resolveClientConfig({}, Infinity)).not.toHaveProperty('connectionTimeoutMillis');
  });

  it('durations from the URL are checked too: a unit pg would drop ("5s" becomes 5 ms) or a value the server refuses', () => {
    const tooLong = refusal(`postgres://app:${SECRET}@db/app?statement_timeout=2147483648`);
    expect(tooLong.option).toBe('connectionString');
    expect(tooLong.message).toContain('the `statement_timeout` parameter of `connectionString`');
    expect(refusal(`postgres://app:${SECRET}@db/app?lock_timeout=5s`).message).toContain('got "5s"');
    expect(resolveClientConfig({ connectionString: 'postgres://db/app?statement_timeout=1500&query_timeout=200' }, 1000)).toMatchObject({
      statement_timeout: 1500,
      query_timeout: 200,
    });
  });
});

describe('item 9: secrets are never echoed; a bare connection string is accepted as pg.Client accepts it', () => {
  it('createPostgresPool(url) is createPostgresPool({ connectionString: url })', () => {
    const pool = make(`postgres://app:${SECRET}@db.example/app`);
    expect(pool.closed).toBe(false);
    expect(resolveClientConfig({ connectionString: `postgres://app:${SECRET}@db.example:6432/app` }, 1000)).toMatchObject({
      user: 'app', password: SECRET, host: 'db.example', port: 6432, database: 'app',
    });
  });

  it('a bare string that is not a connection string is refused without echoing it', () => {
    const error = refusal(`host=db user=app password=${SECRET}`);
    expect(error.option).toBe('connectionString');
    expect(visible(error)).not.toContain(SECRET);
  });

  for (const host of [`postgres://app:${SECRET}@db/app`, `postgresql://app:${SECRET}@db/app`, `socket://app:${SECRET}@/tmp`, `app:${SECRET}@db`]) {
    it(`host ${JSON.stringify(host.replace(SECRET, '***'))} is refused at construction, not echoed, pointing to what to pass`, () => {
      const error = refusal({ host });
      expect(error.option).toBe('host');
      expect(visible(error)).not.toContain(SECRET);
      expect(error.message).toMatch(/connectionString|`user` and `password`/);
    });
  }

  it('no refusal on any path echoes the password or the connection string', () => {
    const url = `postgres://app:${SECRET}@db/app`;
    const bad: (Record<string, unknown> | string)[] = [
      { password: 42, connectionString: url },
      { password: `a\0${SECRET}` },
      { host: url, password: SECRET },
      { connectionString: `${url}?port=abc` },
      { connectionString: `postgres://app:${SECRET}@db:99999/app` },
      { connectionString: `mysql://root:${SECRET}@db/app` },
      { connectionString: `postgres://app:${SECRET}@db/app?sslrootcert=/no/such/file` },
      { connectionString: `postgres://app:${SECRET}@db/app?statement_timeout=abc` },
      { connectionString: `postgres://app:${SECRET}@db/app?host=${encodeURIComponent(url)}` },
      { connectionString: `postgres://app:a%00${SECRET}@db/app` },
      { connectionString: 42 },
      { connectionString: url, options: 'x'.repeat(20_000) },
    ];
    for (const config of bad) {
      const error = refusal(config);
      expect(visible(error)).not.toContain(SECRET);
      expect(error.message).not.toContain('postgres://app');
    }
  });
});

describe('item 10: configuration errors that can be checked at construction fail there', () => {
  for (const key of ['user', 'database', 'application_name', 'options', 'host', 'password', 'client_encoding']) {
    it(`a NUL byte in ${key} is refused (the server would answer 08P01, the pool would retry)`, () => {
      const error = refusal({ [key]: `ab\0c${SECRET}` });
      expect(error.option).toBe(key);
      expect(error.message).toContain('without NUL bytes');
      if (key === 'password' || key === 'host') expect(visible(error)).not.toContain(SECRET);
    });
  }

  it('a NUL byte in a URL part is refused too, naming connectionString', () => {
    const error = refusal('postgres://app@db/ap%00p');
    expect(error.option).toBe('connectionString');
    expect(error.message).toContain('the `database` parameter of `connectionString`');
  });

  it('a port out of range in the URL query is refused, naming connectionString', () => {
    expect(refusal('postgres://app@db/app?port=70000').message).toContain('the `port` parameter of `connectionString` to be an integer in [1, 65535], got "70000"');
  });

  it("startup parameters too long for PostgreSQL's 10000-byte startup packet (the server would drop every connection) are refused", () => {
    const error = refusal({ options: `-c application_name=${'x'.repeat(10_000)}` });
    expect(error.option).toBe('options');
    expect(error.message).toContain('10000-byte startup packet');
    make({ options: `-c application_name=${'x'.repeat(9_000)}` });
  });

  it('isRetryableConnectError: server answers to a startup packet that a retry cannot change are not retried', () => {
    const server = (code: string, message = 'x'): Error => Object.assign(new Error(message), { code });
    for (const code of ['22023', '42704', '42601', '42501', '0A000', '55P02', '28P01', '28000', '3D000']) {
      expect(isRetryableConnectError(server(code)), code).toBe(false);
    }
    expect(isRetryableConnectError(server('08P01', 'invalid startup packet layout: expected terminator as last byte'))).toBe(false);
    expect(isRetryableConnectError(server('08P01', 'unsupported startup parameter in options: statement_timeout'))).toBe(false);
    expect(isRetryableConnectError(new TypeError('Password must be a string'))).toBe(false);
    expect(isRetryableConnectError(new Error('SASL: SCRAM-SERVER-FIRST-MESSAGE: client password must be a string'))).toBe(false);
    // Transient: PgBouncer's own 08P01 answers, connection-class errors, overload, shutdown.
    for (const [code, message] of [
      ['08P01', 'no more connections allowed (max_client_conn)'],
      ['08P01', 'pgbouncer cannot connect to server'],
      ['08006', 'x'], ['08001', 'x'], ['08004', 'x'], ['57P03', 'x'], ['53300', 'x'], ['55000', 'x'], ['ECONNREFUSED', 'x'],
    ]) {
      expect(isRetryableConnectError(server(code!, message)), `${code} ${message}`).toBe(true);
    }
  });
});

describe('item 11: the connection-string forms pg accepts are accepted; a bad one is refused with its real cause', () => {
  it.each([
    ['libpq Unix-socket form', 'postgres://app:pw@/app?host=/var/run/postgresql', { host: '/var/run/postgresql', database: 'app', user: 'app' }],
    ['percent-encoded socket host', 'postgres://app:pw@%2Fvar%2Frun%2Fpostgresql:6000/app', { host: '/var/run/postgresql', port: 6000, database: 'app' }],
    ['socket: URL', 'socket:/var/run/postgresql?db=app&user=app', { host: '/var/run/postgresql', database: 'app', user: 'app' }],
    ['upper-case scheme', 'POSTGRES://app:pw@db.example/app', { host: 'db.example', database: 'app' }],
    ['mixed-case postgresql', 'PostgreSQL://app:pw@db.example/app', { host: 'db.example', database: 'app' }],
    ["pg's bare socket path form", '/var/run/postgresql app', { host: '/var/run/postgresql', database: 'app' }],
  ] as const)('%s: %s', (_label, connectionString, expected) => {
    make(connectionString);
    make({ connectionString });
    expect(resolveClientConfig({ connectionString }, 1000)).toMatchObject(expected);
  });

  it('a missing sslrootcert file is reported as such (ENOENT, with the file and the parameter), password not echoed', () => {
    const error = refusal({ connectionString: `postgres://app:${SECRET}@db/app?sslrootcert=/no/such/file.pem` });
    expect(error.option).toBe('connectionString');
    expect(error.message).toBe('Expected the `sslrootcert` file of `connectionString` to be readable, got ENOENT for "/no/such/file.pem"');
    expect((error.cause as NodeJS.ErrnoException).code).toBe('ENOENT');
    expect(visible(error)).not.toContain(SECRET);
  });

  it('URL parameters pg ignores stay ignored (they never reach pg.Client as options of their own)', () => {
    const config = resolveClientConfig({ connectionString: 'postgres://db/app?connect_timeout=10&keepAlive=false&stream=x&binary=true' }, 1000) as Record<string, unknown>;
    expect(config).not.toHaveProperty('connect_timeout');
    expect(config).not.toHaveProperty('stream');
    expect(config).not.toHaveProperty('binary');
    expect(config.keepAlive).toBe(true);
  });
});
