// toPrometheusText(): the text exposition format 0.0.4, read back with a real parser from npm
// (parse-prometheus-text-format), plus the format rules the parser does not enforce.
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { AcquireTimeoutError, InvalidPoolOptionError, PROMETHEUS_CONTENT_TYPE, toPrometheusText, type PoolStats } from '../../src/index.js';
import { acquireNow, clock, fake, track, usePerTestPools } from '../support/harness.js';

/** One family as parse-prometheus-text-format returns it (values stay strings). */
interface ParsedFamily {
  name: string;
  help: string;
  type: 'GAUGE' | 'COUNTER' | 'SUMMARY' | 'HISTOGRAM' | 'UNTYPED';
  metrics: { value?: string; labels?: Record<string, string>; quantiles?: Record<string, string>; sum?: string; count?: string }[];
}
// The package ships no types; load it through require with the shape it documents.
const parsePrometheusTextFormat = createRequire(import.meta.url)('parse-prometheus-text-format') as (text: string) => ParsedFamily[];

const makePool = usePerTestPools({ keepaliveMs: Infinity, pingIfIdleMs: Infinity });

function parse(text: string): Map<string, ParsedFamily> {
  return new Map(parsePrometheusTextFormat(text).map((family) => [family.name, family]));
}

/**
 * The parser flattens a labelled summary into one `quantiles` object and drops its labelled
 * `_sum` and `_count` lines, so summaries are read back with their TYPE made `untyped`: the
 * same parser then returns every line (quantile, _sum, _count) as a labelled sample.
 */
function parseSummariesAsSamples(text: string): Map<string, ParsedFamily> {
  const byName = new Map<string, ParsedFamily>();
  // Untyped, a summary's lines for one pool (name, _sum, _count) come back as three families,
  // and again for the next pool: gather the samples of each name.
  for (const family of parsePrometheusTextFormat(text.replace(/^(# TYPE \S+) summary$/gm, '$1 untyped'))) {
    const seen = byName.get(family.name);
    if (seen === undefined) byName.set(family.name, { ...family, metrics: [...family.metrics] });
    else seen.metrics.push(...family.metrics);
  }
  return byName;
}

/** The value of the sample of `family` whose labels are exactly `labels`. */
function value(families: Map<string, ParsedFamily>, family: string, labels: Record<string, string>): number | undefined {
  const sample = families.get(family)?.metrics.find((m) => JSON.stringify(sortedEntries(m.labels ?? {})) === JSON.stringify(sortedEntries(labels)));
  return sample?.value === undefined ? undefined : Number(sample.value);
}

function sortedEntries(labels: Record<string, string>): [string, string][] {
  return Object.entries(labels).sort(([a], [b]) => a.localeCompare(b));
}

const FAMILIES: [string, ParsedFamily['type']][] = [
  ['db_client_connection_count', 'GAUGE'],
  ['db_client_connection_max', 'GAUGE'],
  ['db_client_connection_idle_max', 'GAUGE'],
  ['db_client_connection_idle_min', 'GAUGE'],
  ['db_client_connection_pending_requests', 'GAUGE'],
  ['db_client_connection_timeouts_total', 'COUNTER'],
  ['db_client_connection_create_time_seconds', 'SUMMARY'],
  ['db_client_connection_wait_time_seconds', 'SUMMARY'],
  ['db_client_connection_use_time_seconds', 'SUMMARY'],
  ['lifeguard_pool_resources', 'GAUGE'],
  ['lifeguard_pool_acquired_total', 'COUNTER'],
  ['lifeguard_pool_aborted_total', 'COUNTER'],
  ['lifeguard_pool_rejected_total', 'COUNTER'],
  ['lifeguard_pool_created_total', 'COUNTER'],
  ['lifeguard_pool_create_failed_total', 'COUNTER'],
  ['lifeguard_pool_destroyed_total', 'COUNTER'],
  ['lifeguard_pool_circuit_state', 'GAUGE'],
  ['lifeguard_pool_congested', 'GAUGE'],
  ['lifeguard_pool_draining', 'GAUGE'],
  ['lifeguard_pool_consecutive_create_failures', 'GAUGE'],
];

/** Rules of the 0.0.4 format that the parser does not check. */
function expectWellFormed(text: string): void {
  expect(text.endsWith('\n')).toBe(true);
  const lines = text.slice(0, -1).split('\n');
  const typed = new Map<string, string>();
  const helped = new Set<string>();
  let current: { name: string; type: string } | undefined;
  const finished = new Set<string>();
  for (const line of lines) {
    const meta = /^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)$/.exec(line);
    if (meta) {
      const [, kind, name, rest] = meta as unknown as [string, string, string, string];
      if (kind === 'HELP') {
        expect(helped.has(name), `one HELP for ${name}`).toBe(false);
        helped.add(name);
        expect(rest).not.toMatch(/\n/);
      } else {
        expect(typed.has(name), `one TYPE for ${name}`).toBe(false);
        expect(['counter', 'gauge', 'summary', 'histogram', 'untyped']).toContain(rest);
        typed.set(name, rest);
        if (current !== undefined) finished.add(current.name);
        current = { name, type: rest };
      }
      continue;
    }
    const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)\{((?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*",?)*)\} (\S+)$/.exec(line);
    expect(sample, `a sample line: ${line}`).not.toBeNull();
    const [, name, , raw] = sample as unknown as [string, string, string, string];
    expect(current, `${name} after its TYPE`).toBeDefined();
    const allowed = current!.type === 'summary' ? [current!.name, `${current!.name}_sum`, `${current!.name}_count`] : [current!.name];
    expect(allowed, `${name} grouped under # TYPE ${current!.name}`).toContain(name);
    expect(finished.has(current!.name)).toBe(false);
    expect(raw).toMatch(/^(?:[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?|[+-]Inf|NaN)$/);
    if (current!.type === 'counter') expect(name.endsWith('_total')).toBe(true);
  }
  expect([...typed.keys()]).toEqual([...helped]);
}

describe('toPrometheusText', () => {
  it('renders every family, with HELP and TYPE, once, as the parser reads them', () => {
    const pool = makePool({ max: 4, min: 0 });
    const text = toPrometheusText(pool);
    expectWellFormed(text);
    const families = parse(text);
    expect([...families.keys()]).toEqual(FAMILIES.map(([name]) => name));
    for (const [name, type] of FAMILIES) {
      expect(families.get(name)!.type, name).toBe(type);
      expect(families.get(name)!.help, name).not.toBe('');
    }
    expect(PROMETHEUS_CONTENT_TYPE).toBe('text/plain; version=0.0.4; charset=utf-8');
  });

  it('a single pool is labelled pool_name="default"; an idle pool reports zeros', () => {
    const pool = makePool({ max: 4, min: 0 });
    const samples = parseSummariesAsSamples(toPrometheusText(pool));
    for (const family of samples.values()) for (const metric of family.metrics) expect(metric.labels?.pool_name, family.name).toBe('default');
    expect(value(samples, 'db_client_connection_max', { pool_name: 'default' })).toBe(4);
    expect(value(samples, 'db_client_connection_idle_max', { pool_name: 'default' })).toBe(4);
    expect(value(samples, 'db_client_connection_idle_min', { pool_name: 'default' })).toBe(0);
    expect(value(samples, 'db_client_connection_count', { pool_name: 'default', state: 'idle' })).toBe(0);
    expect(value(samples, 'db_client_connection_wait_time_seconds', { pool_name: 'default', quantile: '0.5' })).toBe(0);
    expect(value(samples, 'db_client_connection_wait_time_seconds_count', { pool_name: 'default' })).toBe(0);
    expect(value(samples, 'lifeguard_pool_circuit_state', { pool_name: 'default', state: 'closed' })).toBe(1);
    expect(value(samples, 'lifeguard_pool_circuit_state', { pool_name: 'default', state: 'open' })).toBe(0);
  });

  it('after a scripted scenario: gauges, counters, destroy reasons and summaries in seconds', async () => {
    fake.defaults.create = { kind: 'slow', ms: 10 };
    const pool = makePool({ max: 2 });
    const a = track(pool.acquire()); // t=0 -> 10
    const b = track(pool.acquire()); // t=0 -> 10
    await clock.advance(10);
    const c = track(pool.acquire({ timeoutMs: 30 })); // t=10, times out at 40
    const d = track(pool.acquire()); // t=10, waits
    await clock.advance(0);

    let samples = parseSummariesAsSamples(toPrometheusText([{ pool, name: 'orders' }]));
    const at = (family: string, labels: Record<string, string> = {}): number | undefined => value(samples, family, { pool_name: 'orders', ...labels });
    expect(at('db_client_connection_count', { state: 'used' })).toBe(2);
    expect(at('db_client_connection_count', { state: 'idle' })).toBe(0);
    expect(at('db_client_connection_pending_requests')).toBe(2);
    expect(at('lifeguard_pool_resources', { state: 'leased' })).toBe(2);

    await clock.advance(30); // t=40
    expect(c.error).toBeInstanceOf(AcquireTimeoutError);
    await a.value!.release(); // held 30 ms; d served after waiting 30 ms
    await clock.advance(0);
    expect(d.ok).toBe(true);
    await b.value!.destroy(); // held 30 ms, destroyed by the user
    await clock.advance(10); // t=50
    await d.value!.release(); // held 10 ms

    const text = toPrometheusText([{ pool, name: 'orders' }]);
    expectWellFormed(text);
    samples = parseSummariesAsSamples(text);
    const stats: PoolStats = pool.stats();
    expect(at('db_client_connection_count', { state: 'idle' })).toBe(1);
    expect(at('db_client_connection_count', { state: 'used' })).toBe(0);
    expect(at('db_client_connection_pending_requests')).toBe(0);
    expect(at('db_client_connection_timeouts_total')).toBe(1);
    expect(at('lifeguard_pool_acquired_total')).toBe(3);
    expect(at('lifeguard_pool_created_total')).toBe(2);
    expect(at('lifeguard_pool_create_failed_total')).toBe(0);
    expect(at('lifeguard_pool_destroyed_total', { reason: 'user' })).toBe(1);
    expect(at('lifeguard_pool_destroyed_total', { reason: 'broken' })).toBe(0);
    expect(samples.get('lifeguard_pool_destroyed_total')!.metrics.map((m) => m.labels!.reason).sort()).toEqual(Object.keys(stats.destroyedByReason).sort());
    expect(at('lifeguard_pool_resources', { state: 'idle' })).toBe(1);

    // Waits: a 10, b 10, d 30 ms (c timed out: not a successful acquire).
    expect(at('db_client_connection_wait_time_seconds_count')).toBe(3);
    expect(at('db_client_connection_wait_time_seconds_sum')).toBe(0.05);
    expect(at('db_client_connection_wait_time_seconds', { quantile: '0.5' })).toBe(Math.round(stats.waitTime.p50 * 1e6) / 1e9);
    expect(at('db_client_connection_wait_time_seconds', { quantile: '0.5' })).toBeCloseTo(0.01, 3);
    expect(at('db_client_connection_wait_time_seconds', { quantile: '0.99' })).toBeCloseTo(0.03, 3);
    // Leases: a 30, b 30, d 10 ms.
    expect(at('db_client_connection_use_time_seconds_count')).toBe(3);
    expect(at('db_client_connection_use_time_seconds_sum')).toBe(0.07);
    expect(at('db_client_connection_use_time_seconds', { quantile: '0.99' })).toBe(Math.round(stats.leaseTime.p99 * 1e6) / 1e9);
    // Creates: two of 10 ms.
    expect(at('db_client_connection_create_time_seconds_count')).toBe(2);
    expect(at('db_client_connection_create_time_seconds_sum')).toBe(0.02);

    // Read as summaries, the families keep their type and quantiles.
    const summary = parse(text).get('db_client_connection_use_time_seconds')!;
    expect(summary.type).toBe('SUMMARY');
    expect(Object.keys(summary.metrics[0]!.quantiles!).sort()).toEqual(['0.5', '0.99']);
  });

  it('failed creates, the circuit state and refusals', async () => {
    const pool = makePool({ max: 1, retry: { retries: 0 }, circuitBreaker: { failureThreshold: 1, cooldownMs: 1000 } });
    fake.failCreates(1);
    await pool.acquire().catch(() => {});
    await pool.acquire().catch(() => {}); // refused at once: the circuit is open
    const samples = parseSummariesAsSamples(toPrometheusText(pool));
    const at = (family: string, labels: Record<string, string> = {}): number | undefined => value(samples, family, { pool_name: 'default', ...labels });
    expect(at('lifeguard_pool_create_failed_total')).toBe(1);
    expect(at('lifeguard_pool_consecutive_create_failures')).toBe(1);
    expect(at('lifeguard_pool_circuit_state', { state: 'open' })).toBe(1);
    expect(at('lifeguard_pool_circuit_state', { state: 'closed' })).toBe(0);
    expect(at('lifeguard_pool_circuit_state', { state: 'half-open' })).toBe(0);
    const rejected = pool.stats().rejected;
    expect(at('lifeguard_pool_rejected_total', { reason: 'circuitOpen' })).toBe(rejected.circuitOpen);
    expect(at('lifeguard_pool_rejected_total', { reason: 'createFailed' })).toBe(rejected.createFailed);
    expect(rejected.circuitOpen + rejected.createFailed).toBeGreaterThan(0);
    expect(at('lifeguard_pool_rejected_total', { reason: 'shed' })).toBe(rejected.shed);
    expect(at('lifeguard_pool_congested')).toBe(0);
    expect(at('lifeguard_pool_draining')).toBe(0);
  });

  it('several pools: every family has one series per pool, told apart by pool_name', async () => {
    const orders = makePool({ max: 3 });
    const users = makePool({ max: 7, min: 2 });
    await clock.advance(0);
    const lease = await acquireNow(orders);
    const text = toPrometheusText([
      { pool: orders, name: 'orders' },
      { pool: users, name: 'users' },
    ]);
    expectWellFormed(text);
    const families = parse(text);
    expect(families.size).toBe(FAMILIES.length);
    const samples = parseSummariesAsSamples(text);
    expect(value(samples, 'db_client_connection_max', { pool_name: 'orders' })).toBe(3);
    expect(value(samples, 'db_client_connection_max', { pool_name: 'users' })).toBe(7);
    expect(value(samples, 'db_client_connection_idle_min', { pool_name: 'users' })).toBe(2);
    expect(value(samples, 'db_client_connection_count', { pool_name: 'orders', state: 'used' })).toBe(1);
    expect(value(samples, 'db_client_connection_count', { pool_name: 'users', state: 'idle' })).toBe(2);
    expect(value(samples, 'db_client_connection_wait_time_seconds_count', { pool_name: 'orders' })).toBe(1);
    expect(value(samples, 'db_client_connection_wait_time_seconds_count', { pool_name: 'users' })).toBe(0);
    expect(value(samples, 'lifeguard_pool_created_total', { pool_name: 'users' })).toBe(2);
    for (const family of families.values()) {
      if (family.type === 'SUMMARY') continue;
      const names = new Set(family.metrics.map((m) => m.labels!.pool_name));
      expect([...names].sort(), family.name).toEqual(['orders', 'users']);
    }
    await lease.release();
  });

  it('escapes backslash, double quote and line feed in label values', () => {
    const pool = makePool();
    const name = 'C:\\pools\\"main"\nsecond line';
    const text = toPrometheusText([{ pool, name }]);
    expect(text).toContain('pool_name="C:\\\\pools\\\\\\"main\\"\\nsecond line"');
    expectWellFormed(text);
    const samples = parseSummariesAsSamples(text);
    expect(value(samples, 'db_client_connection_max', { pool_name: name })).toBe(10);
    expect(value(samples, 'db_client_connection_use_time_seconds_count', { pool_name: name })).toBe(0);
  });

  it('rejects duplicate or empty names and entries that are not pools', () => {
    const pool = makePool();
    expect(() =>
      toPrometheusText([
        { pool, name: 'a' },
        { pool, name: 'a' },
      ]),
    ).toThrow(InvalidPoolOptionError);
    expect(() => toPrometheusText([{ pool, name: '' }])).toThrow(/name/);
    expect(() => toPrometheusText([pool as never])).toThrow(InvalidPoolOptionError);
    expect(() => toPrometheusText(null as never)).toThrow(InvalidPoolOptionError);
    expect(toPrometheusText([])).toContain('# TYPE db_client_connection_count gauge');
  });
});
