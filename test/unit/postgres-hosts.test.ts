// MH1: multi-host configuration read as libpq reads it (hosts, multi-host URLs, ?host=&port=,
// PGHOST/PGPORT lists, target_session_attrs, load_balance_hosts, connect_timeout), with
// precedence explicit > URL > env > defaults, and bad input refused naming the option without
// echoing a password. The host walk's pure rules (acceptance, suspicion, backoff) too.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { InvalidPoolOptionError } from '../../src/index.js';
import { resolvePostgresConfig, type PostgresPoolConfig } from '../../src/adapters/postgres/config.js';
import { accepts, hostBackoffMs, isSuspect, newHostState, roleFromParams, NoSuitableHostError } from '../../src/adapters/postgres/host-state.js';
import { TARGET_SESSION_ATTRS } from '../../src/adapters/postgres/hosts.js';

const SECRET = 'S3cret-pw-77aa';
const loose = (config: Record<string, unknown> | string): PostgresPoolConfig | string => config as unknown as PostgresPoolConfig;

afterEach(() => {
  vi.unstubAllEnvs();
});

function hostsOf(config: Record<string, unknown> | string): Array<[string, number]> | undefined {
  return resolvePostgresConfig(loose(config)).hosts?.hosts.map((h) => [h.host, h.port]);
}

function refusal(config: Record<string, unknown> | string): InvalidPoolOptionError {
  let thrown: unknown;
  try {
    resolvePostgresConfig(loose(config));
  } catch (error) {
    thrown = error;
  }
  expect(thrown, `expected ${JSON.stringify(config)} to be refused`).toBeInstanceOf(InvalidPoolOptionError);
  const error = thrown as InvalidPoolOptionError;
  expect(`${error.message}\n${error.stack}`).not.toContain(SECRET);
  return error;
}

describe('multi-host URLs (libpq forms)', () => {
  it('authority lists: host, host:port, [v6]:port, default port 5432', () => {
    expect(hostsOf(`postgres://u:${SECRET}@h1:5433,h2,[::1]:5434/db`)).toEqual([['h1', 5433], ['h2', 5432], ['::1', 5434]]);
  });

  it('the rest of the URL still reaches pg: user, password, database, first host', () => {
    const { clientConfig } = resolvePostgresConfig(`postgres://u:${SECRET}@h1:5433,h2/db?application_name=app`);
    expect(clientConfig).toMatchObject({ user: 'u', password: SECRET, database: 'db', host: 'h1', port: 5433, application_name: 'app' });
  });

  it('?host= and ?port= lists: one port for all, or one per host', () => {
    expect(hostsOf('postgres:///db?host=a,b,c&port=6000')).toEqual([['a', 6000], ['b', 6000], ['c', 6000]]);
    expect(hostsOf('postgres:///db?host=a,b&port=6000,6001')).toEqual([['a', 6000], ['b', 6001]]);
    expect(hostsOf('postgres://x/db?host=a,b')).toEqual([['a', 5432], ['b', 5432]]);
    expect(hostsOf('postgres:///db?host=a,b&port=,6001')).toEqual([['a', 5432], ['b', 6001]]);
  });

  it('?port= list over authority hosts', () => {
    expect(hostsOf('postgres://a,b/db?port=7000,7001')).toEqual([['a', 7000], ['b', 7001]]);
  });

  it('target_session_attrs, load_balance_hosts and connect_timeout (seconds; libpq reads 1 as 2, 0 as none)', () => {
    const resolved = resolvePostgresConfig('postgres://a,b/db?target_session_attrs=read-write&load_balance_hosts=random&connect_timeout=3').hosts!;
    expect(resolved).toMatchObject({ targetSessionAttrs: 'read-write', loadBalanceHosts: 'random', hostConnectTimeoutMs: 3000, onReadOnly: 'invalidate-host' });
    expect(resolvePostgresConfig('postgres://a,b/db?connect_timeout=1').hosts!.hostConnectTimeoutMs).toBe(2000);
    expect(resolvePostgresConfig({ connectionString: 'postgres://a,b/db?connect_timeout=0', createTimeoutMs: 9000 }).hosts!.hostConnectTimeoutMs).toBe(4500);
  });

  it('a one-host URL with a target gets the walk over that one host; without one it connects as today', () => {
    expect(resolvePostgresConfig('postgres://h/db?target_session_attrs=standby').hosts).toMatchObject({ hosts: [], targetSessionAttrs: 'standby' });
    expect(resolvePostgresConfig('postgres://h/db').hosts).toBeUndefined();
  });

  it('a Unix socket directory in a host list', () => {
    expect(hostsOf('postgres:///db?host=/run/pg,h2&port=5432')).toEqual([['/run/pg', 5432], ['h2', 5432]]);
  });
});

describe('explicit options and the environment', () => {
  it('hosts: strings and objects; explicit beats the URL', () => {
    expect(hostsOf({ hosts: ['a:1', { host: 'b', port: 2 }, 'c', '[::1]:3'] })).toEqual([['a', 1], ['b', 2], ['c', 5432], ['::1', 3]]);
    expect(hostsOf({ hosts: ['x'], connectionString: 'postgres://a,b/db' })).toEqual([['x', 5432]]);
    expect(resolvePostgresConfig({ targetSessionAttrs: 'primary', connectionString: 'postgres://a,b/db?target_session_attrs=standby' }).hosts!.targetSessionAttrs).toBe('primary');
  });

  it('explicit host beats a URL host list (explicit > URL)', () => {
    expect(hostsOf({ host: 'x', connectionString: 'postgres://a,b/db' })).toBeUndefined();
  });

  it('PGHOST/PGPORT lists, PGTARGETSESSIONATTRS and PGLOADBALANCEHOSTS; the URL beats them', () => {
    vi.stubEnv('PGHOST', 'e1,e2');
    vi.stubEnv('PGPORT', '6001,6002');
    vi.stubEnv('PGTARGETSESSIONATTRS', 'prefer-standby');
    vi.stubEnv('PGLOADBALANCEHOSTS', 'random');
    expect(resolvePostgresConfig({}).hosts).toMatchObject({
      hosts: [{ host: 'e1', port: 6001 }, { host: 'e2', port: 6002 }], targetSessionAttrs: 'prefer-standby', loadBalanceHosts: 'random',
    });
    expect(hostsOf('postgres://u1,u2/db')).toEqual([['u1', 5432], ['u2', 5432]]);
    expect(resolvePostgresConfig('postgres://u1,u2/db?target_session_attrs=any').hosts!.targetSessionAttrs).toBe('any');
  });

  it('defaults: hostRecheckMs 10 s, onReadOnly destroy unless the target writes, per-host bound = createTimeoutMs / hosts', () => {
    const resolved = resolvePostgresConfig({ hosts: ['a', 'b', 'c', 'd'], createTimeoutMs: 8000 }).hosts!;
    expect(resolved).toMatchObject({ hostRecheckMs: 10_000, onReadOnly: 'destroy', hostConnectTimeoutMs: 2000, targetSessionAttrs: 'any', loadBalanceHosts: 'disable' });
  });
});

describe('bad input: InvalidPoolOptionError naming the option, never the password', () => {
  it.each([
    [`postgres://u:${SECRET}@a,b/db?host=a,b&port=1,2,3`, 'connectionString'],
    [`postgres://u:${SECRET}@a:99999,b/db`, 'connectionString'],
    [`postgres://u:${SECRET}@[::1:5,b/db`, 'connectionString'],
    [`postgres://u:${SECRET}@a,b/db?target_session_attrs=writable`, 'targetSessionAttrs'],
    [`postgres://u:${SECRET}@a,b/db?load_balance_hosts=yes`, 'loadBalanceHosts'],
    [`postgres://u:${SECRET}@a,b/db?connect_timeout=2s`, 'connectionString'],
  ])('%#: a bad URL is refused as %s', (url, option) => {
    expect(refusal(url).option).toBe(option);
  });

  it.each([
    [{ hosts: [] }, 'hosts'],
    [{ hosts: 'a,b' }, 'hosts'],
    [{ hosts: ['a,b'] }, 'hosts'],
    [{ hosts: [`u:${SECRET}@a`] }, 'hosts'],
    [{ hosts: [{ host: 'a', port: 0 }] }, 'hosts'],
    [{ hosts: ['a'], host: 'b' }, 'hosts'],
    [{ targetSessionAttrs: 'master' }, 'targetSessionAttrs'],
    [{ loadBalanceHosts: true }, 'loadBalanceHosts'],
    [{ onReadOnly: 'ignore' }, 'onReadOnly'],
    [{ hostConnectTimeoutMs: -1 }, 'hostConnectTimeoutMs'],
    [{ hostRecheckMs: 'soon' }, 'hostRecheckMs'],
  ])('%#: %j is refused naming %s', (config, option) => {
    expect(refusal(config).option).toBe(option);
  });

  it('PGHOST and PGPORT lists of different lengths', () => {
    vi.stubEnv('PGHOST', 'a,b,c');
    vi.stubEnv('PGPORT', '1,2');
    expect(refusal({}).option).toBe('PGHOST');
  });
});

describe('the walk rules (libpq semantics)', () => {
  it('accepts: each target against each role', () => {
    const table = Object.fromEntries(TARGET_SESSION_ATTRS.map((t) => [t, (['primary', 'standby', 'read-only'] as const).filter((r) => accepts(t, r)).join(',')]));
    expect(table).toEqual({
      any: 'primary,standby,read-only', 'read-write': 'primary', 'read-only': 'standby,read-only',
      primary: 'primary,read-only', standby: 'standby', 'prefer-standby': 'standby',
    });
  });

  it('role from ParameterStatus needs both settings (PG >= 14)', () => {
    expect(roleFromParams(new Map([['in_hot_standby', 'on'], ['default_transaction_read_only', 'off']]))).toBe('standby');
    expect(roleFromParams(new Map([['in_hot_standby', 'off'], ['default_transaction_read_only', 'on']]))).toBe('read-only');
    expect(roleFromParams(new Map([['in_hot_standby', 'off'], ['default_transaction_read_only', 'off']]))).toBe('primary');
    expect(roleFromParams(new Map([['default_transaction_read_only', 'off']]))).toBeUndefined();
  });

  it('suspect: in backoff, or a failure or a refused role seen within hostRecheckMs', () => {
    const host = newHostState({ host: 'a', port: 1 });
    expect(isSuspect(host, 'read-write', 0, 10_000)).toBe(false);
    host.role = 'standby';
    host.roleAt = 0;
    expect(isSuspect(host, 'read-write', 9_999, 10_000)).toBe(true);
    expect(isSuspect(host, 'read-write', 10_000, 10_000)).toBe(false);
    expect(isSuspect(host, 'standby', 5, 10_000)).toBe(false);
    host.downUntil = 20_000;
    expect(isSuspect(host, 'standby', 19_999, 10_000)).toBe(true);
    host.downUntil = 0;
    host.failures = 1;
    host.failedAt = 30_000;
    expect(isSuspect(host, 'standby', 39_999, 10_000)).toBe(true);
    expect(isSuspect(host, 'standby', 40_000, 10_000)).toBe(false);
  });

  it('backoff: 250 ms doubling to 5 s, times [1, 2)', () => {
    expect([1, 2, 3, 5, 6, 10].map((n) => hostBackoffMs(n, () => 0))).toEqual([250, 500, 1000, 4000, 5000, 5000]);
    expect(hostBackoffMs(1, () => 0.999)).toBeLessThan(500);
  });

  it('NoSuitableHostError: code, one attempt per host, the message names each host', () => {
    const error = new NoSuitableHostError('read-write', [{ host: 'a:1', error: Object.assign(new Error('x'), { code: 'ECONNREFUSED' }) }, { host: 'b:2', role: 'standby' }], true);
    expect(error.code).toBe('POOL_NO_SUITABLE_HOST');
    expect(error.attempts).toHaveLength(2);
    expect(error.message).toBe('No host accepted a read-write session: a:1 refused, b:2 standby');
  });
});

describe('lifeguard/pg (the pg.Pool drop-in) takes several hosts', () => {
  it('a multi-host URL, hosts or a target_session_attrs: the same walk as createPostgresPool, health() lists each host', async () => {
    const { Pool } = await import('../../src/adapters/pg/index.js');
    for (const [config, hosts] of [
      [{ connectionString: `postgres://u:${SECRET}@a:5432,b:5433/db` }, ['a:5432', 'b:5433']],
      [{ hosts: ['a', 'b:6432'], targetSessionAttrs: 'read-write' }, ['a:5432', 'b:6432']],
      [{ connectionString: 'postgres://a/db?target_session_attrs=read-write' }, ['a:5432']],
    ] as const) {
      const pool = new Pool(config as never);
      try {
        const health = pool.health() as { hosts?: { host: string }[] };
        expect(health.hosts?.map((h) => h.host)).toEqual(hosts);
      } finally {
        await pool.end();
      }
    }
  });

  it('still refuses a bad host list with a clear error', async () => {
    const { Pool } = await import('../../src/adapters/pg/index.js');
    expect(() => new Pool({ hosts: ['a', 'b'], host: 'c' } as never)).toThrow(InvalidPoolOptionError);
  });
});
