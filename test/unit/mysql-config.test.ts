// createMysqlPool's configuration, checked at construction (no database): mysql2's connection
// options and `uri` have their types and ranges checked, mysql2's own pool options are refused
// with lifeguard's equivalent, no message echoes a password or a URL holding one; and the error
// classifiers' verdicts on MySQL/MariaDB errors. The server side is in test/mysql/.
import { afterEach, describe, expect, it } from 'vitest';
import { InvalidPoolOptionError } from '../../src/index.js';
import {
  createMysqlPool, isConnectionFatal, isRetryableConnectError, isTransactionRetryable, resolveMysqlConfig, type MysqlPool, type MysqlPoolConfig,
} from '../../src/adapters/mysql/index.js';

const SECRET = 'S3cret-pw-7a2d';
const pools: MysqlPool[] = [];
afterEach(async () => {
  await Promise.all(pools.splice(0).map((pool) => pool.close()));
});

/** Misuse is what these tests feed in: bypass the type checker. */
const loose = (config: Record<string, unknown> | string): MysqlPoolConfig => config as unknown as MysqlPoolConfig;

function refusal(config: Record<string, unknown> | string): InvalidPoolOptionError {
  let thrown: unknown;
  try {
    pools.push(createMysqlPool(loose(config)));
  } catch (error) {
    thrown = error;
  }
  expect(thrown, `expected ${JSON.stringify(config)} to be refused`).toBeInstanceOf(InvalidPoolOptionError);
  return thrown as InvalidPoolOptionError;
}

const visible = (error: Error): string => `${error.message}\n${error.stack}\n${String((error.cause as Error | undefined)?.message)}`;

describe('createMysqlPool: connection options', () => {
  it.each([
    [{ port: 'abc' }, 'port', /Expected `port` to be an integer in \[1, 65535\], got "abc"/],
    [{ port: 70000 }, 'port', /got 70000/],
    [{ user: 42 }, 'user', /Expected `user` to be a string, got 42/],
    [{ host: '' }, 'host', /Expected `host` to be a host name or an IP address/],
    [{ ssl: 5 }, 'ssl', /Expected `ssl` to be an object of TLS options/],
    [{ timezone: 'Europe/Paris' }, 'timezone', /'local', 'Z' or an offset/],
    [{ multipleStatements: 'yes' }, 'multipleStatements', /a boolean, got "yes"/],
    [{ stream: {} }, 'stream', /a function returning a new stream for each connection/],
    [{ maxPreparedStatements: 0 }, 'maxPreparedStatements', /an integer >= 1/],
    [{ resetOnRelease: 'discard' }, 'resetOnRelease', /'none', 'rollback' or 'reset'/],
    [{ dirtyRelease: 'keep' }, 'dirtyRelease', /'destroy' or 'rollback'/],
    [{ queryTimeoutMs: 0 }, 'queryTimeoutMs', /> 0/],
    [{ bogus: 1 }, 'bogus', /Unknown option `bogus`/],
    [{ adapter: {} }, 'adapter', /builds its own adapter/],
  ])('refuses %j naming %s', (config, option, message) => {
    const error = refusal(config);
    expect(error.option).toBe(option);
    expect(error.message).toMatch(message);
  });

  it.each([
    ['connectionLimit', 'max'],
    ['queueLimit', 'maxWaiting'],
    ['idleTimeout', 'idleTimeoutMs'],
    ['connectTimeout', 'createTimeoutMs'],
    ['waitForConnections', 'maxWaiting'],
  ])("refuses mysql2's own pool option %s, naming lifeguard's %s", (key, equivalent) => {
    const error = refusal({ [key]: 5 });
    expect(error.option).toBe(key);
    expect(error.message).toContain(equivalent);
  });

  it('never echoes a password: a non-string password, a host holding a URL, a bad uri', () => {
    for (const config of [
      { password: { secret: SECRET } },
      { host: `mysql://root:${SECRET}@db` },
      { host: `root:${SECRET}@db` },
      { uri: `postgres://root:${SECRET}@db/app` },
      { uri: `mysql://root:${SECRET}@db:99999/app` },
      { uri: `mysql://root:${SECRET}@db/app?connectionLimit=5` },
      { uri: `mysql://root:${SECRET}@db/app?bogus=1` },
      { uri: `mysql://root:%E0%A4%A${SECRET}@db/app` },
    ]) {
      const error = refusal(config);
      expect(visible(error), JSON.stringify(Object.keys(config))).not.toContain(SECRET);
    }
  });

  it('takes a numeric password (a YAML or JSON config) as its string', () => {
    const { connectionOptions } = resolveMysqlConfig({ host: '127.0.0.1', password: 12345 as unknown as string });
    expect(connectionOptions.password).toBe('12345');
  });

  it('reads the uri as mysql2 does: explicit fields win, JSON-valued parameters, percent-decoding, IPv6 hosts', () => {
    const { connectionOptions } = resolveMysqlConfig({ uri: 'mysql://app:p%40ss@[::1]:3307/shop?multipleStatements=true&charset=utf8mb4', database: 'other' });
    expect(connectionOptions).toMatchObject({ host: '::1', port: 3307, user: 'app', password: 'p@ss', database: 'other', multipleStatements: true, charset: 'utf8mb4' });
    expect(resolveMysqlConfig('mariadb://u@db.internal/x').connectionOptions).toMatchObject({ host: 'db.internal', user: 'u', database: 'x' });
  });

  it('bounds the connect by createTimeoutMs and keeps TCP keepalive on by default', () => {
    expect(resolveMysqlConfig({ createTimeoutMs: 1500 }).connectionOptions).toMatchObject({ connectTimeout: 1500, enableKeepAlive: true });
    expect(resolveMysqlConfig({ enableKeepAlive: false }).connectionOptions.enableKeepAlive).toBe(false);
  });

  it('refuses socketPath together with host', () => {
    expect(refusal({ socketPath: '/run/mysqld/mysqld.sock', host: 'db' }).option).toBe('socketPath');
  });

  it('takes every pool option beside the connection options', () => {
    const { poolOptions, policy } = resolveMysqlConfig({ max: 3, acquireTimeoutMs: 500, resetOnRelease: 'reset', queryTimeoutMs: 1000 });
    expect(poolOptions).toEqual({ max: 3, acquireTimeoutMs: 500 });
    expect(policy).toMatchObject({ resetOnRelease: 'reset', dirtyRelease: 'destroy', queryTimeoutMs: 1000 });
    // The core validates its own options as it does for every adapter.
    expect(refusal({ max: 0 }).message).toMatch(/Expected `max` to be an integer >= 1, got 0/);
  });
});

describe('MySQL error classification', () => {
  const server = (errno: number, code: string): Error => Object.assign(new Error(code), { errno, code, sqlState: 'HY000' });
  const socket = (code: string): Error => Object.assign(new Error(code), { errno: -111, code, syscall: 'connect' });

  it('retries a connect refused, reset, a full server or one shutting down; not a refused login or an unknown database', () => {
    for (const error of [socket('ECONNREFUSED'), socket('ECONNRESET'), socket('ETIMEDOUT'), server(1040, 'ER_CON_COUNT_ERROR'), server(1053, 'ER_SERVER_SHUTDOWN'), server(1203, 'ER_TOO_MANY_USER_CONNECTIONS')]) {
      expect(isRetryableConnectError(error), String(error.message)).toBe(true);
    }
    for (const error of [server(1045, 'ER_ACCESS_DENIED_ERROR'), server(1049, 'ER_BAD_DB_ERROR'), server(1044, 'ER_DBACCESS_DENIED_ERROR'), server(1130, 'ER_HOST_NOT_PRIVILEGED'), socket('HANDSHAKE_NO_SSL_SUPPORT')]) {
      expect(isRetryableConnectError(error), String(error.message)).toBe(false);
    }
  });

  it('treats mysql2 fatal errors, a killed connection and the read-only errors of a failover as connection-fatal; not query errors', () => {
    for (const error of [Object.assign(new Error('lost'), { fatal: true }), server(1927, 'ER_CONNECTION_KILLED'), server(1290, 'ER_OPTION_PREVENTS_STATEMENT'), server(1792, 'ER_CANT_EXECUTE_IN_READ_ONLY_TRANSACTION'), server(1836, 'ER_READ_ONLY_MODE'), socket('PROTOCOL_CONNECTION_LOST')]) {
      expect(isConnectionFatal(error), String(error.message)).toBe(true);
    }
    for (const error of [server(1062, 'ER_DUP_ENTRY'), server(1064, 'ER_PARSE_ERROR'), server(1213, 'ER_LOCK_DEADLOCK'), server(1317, 'ER_QUERY_INTERRUPTED'), new Error('unrelated')]) {
      expect(isConnectionFatal(error), String(error.message)).toBe(false);
    }
  });

  it('re-runs a transaction after a deadlock or a lock wait timeout, also as the cause', () => {
    expect(isTransactionRetryable(server(1213, 'ER_LOCK_DEADLOCK'))).toBe(true);
    expect(isTransactionRetryable(server(1205, 'ER_LOCK_WAIT_TIMEOUT'))).toBe(true);
    expect(isTransactionRetryable(new Error('wrapped', { cause: server(1213, 'ER_LOCK_DEADLOCK') }))).toBe(true);
    expect(isTransactionRetryable(server(1062, 'ER_DUP_ENTRY'))).toBe(false);
  });
});
