// instrumentPool(): the pool's metrics through a real OpenTelemetry SDK, under the semantic
// conventions' names, units and attributes, with values checked after a scripted scenario.
import diagnostics from 'node:diagnostics_channel';
import { metrics as otelMetrics, type Meter } from '@opentelemetry/api';
import {
  AggregationTemporality,
  DataPointType,
  MeterProvider,
  MetricReader,
  type HistogramMetricData,
  type MetricData,
  type SumMetricData,
} from '@opentelemetry/sdk-metrics';
import {
  ATTR_DB_CLIENT_CONNECTION_POOL_NAME,
  ATTR_DB_CLIENT_CONNECTION_STATE,
  METRIC_DB_CLIENT_CONNECTION_COUNT,
  METRIC_DB_CLIENT_CONNECTION_CREATE_TIME,
  METRIC_DB_CLIENT_CONNECTION_IDLE_MAX,
  METRIC_DB_CLIENT_CONNECTION_IDLE_MIN,
  METRIC_DB_CLIENT_CONNECTION_MAX,
  METRIC_DB_CLIENT_CONNECTION_PENDING_REQUESTS,
  METRIC_DB_CLIENT_CONNECTION_TIMEOUTS,
  METRIC_DB_CLIENT_CONNECTION_USE_TIME,
  METRIC_DB_CLIENT_CONNECTION_WAIT_TIME,
} from '@opentelemetry/semantic-conventions/incubating';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  AcquireTimeoutError,
  CHANNELS,
  DB_CLIENT_CONNECTION_METRICS,
  InvalidPoolOptionError,
  instrumentPool,
  type MeterLike,
  type PoolInstrumentation,
} from '../../src/index.js';
import { createPostgresPool } from '../../src/adapters/postgres/index.js';
import { acquireNow, clock, fake, track, usePerTestPools } from '../support/harness.js';

const makePool = usePerTestPools({ keepaliveMs: Infinity, pingIfIdleMs: Infinity });

/** A reader a test collects from on demand (cumulative temporality, the SDK default). */
class TestReader extends MetricReader {
  protected override onShutdown(): Promise<void> {
    return Promise.resolve();
  }
  protected override onForceFlush(): Promise<void> {
    return Promise.resolve();
  }
}

let reader: TestReader;
let provider: MeterProvider;
let meter: Meter;
const handles: PoolInstrumentation[] = [];

beforeEach(() => {
  reader = new TestReader();
  provider = new MeterProvider({ readers: [reader] });
  meter = provider.getMeter('lifeguard-test');
});

afterEach(async () => {
  for (const handle of handles.splice(0)) handle.stop();
  await provider.shutdown();
});

function instrument(pool: Parameters<typeof instrumentPool>[0], poolName: string, m: MeterLike = meter): PoolInstrumentation {
  const handle = instrumentPool(pool, { meter: m, poolName });
  handles.push(handle);
  return handle;
}

/** Every metric of one collection, by name. */
async function collect(): Promise<Map<string, MetricData>> {
  const { resourceMetrics, errors } = await reader.collect();
  expect(errors).toEqual([]);
  const byName = new Map<string, MetricData>();
  for (const scope of resourceMetrics.scopeMetrics) for (const metric of scope.metrics) byName.set(metric.descriptor.name, metric);
  return byName;
}

const POOL = ATTR_DB_CLIENT_CONNECTION_POOL_NAME;
const STATE = ATTR_DB_CLIENT_CONNECTION_STATE;

/** The value of a sum metric's point whose attributes are exactly `attributes`. */
function sumValue(collected: Map<string, MetricData>, name: string, attributes: Record<string, string>): number | undefined {
  const metric = collected.get(name) as SumMetricData | undefined;
  const point = metric?.dataPoints.find((p) => JSON.stringify(sorted(p.attributes)) === JSON.stringify(sorted(attributes)));
  return point?.value;
}

function histogramPoint(collected: Map<string, MetricData>, name: string, poolName: string) {
  const metric = collected.get(name) as HistogramMetricData | undefined;
  return metric?.dataPoints.find((p) => p.attributes[POOL] === poolName)?.value;
}

/** `meter`, recording the batch callbacks added and removed through it. */
function spyMeter(inner: Meter): { meter: MeterLike; added: unknown[][]; removed: unknown[][] } {
  const added: unknown[][] = [];
  const removed: unknown[][] = [];
  const wrapped: MeterLike = {
    createCounter: (name, options) => inner.createCounter(name, options),
    createHistogram: (name, options) => inner.createHistogram(name, options),
    createObservableUpDownCounter: (name, options) => inner.createObservableUpDownCounter(name, options),
    addBatchObservableCallback: (callback, observables) => {
      added.push([callback, ...observables]);
      inner.addBatchObservableCallback(callback, observables as Parameters<Meter['addBatchObservableCallback']>[1]);
    },
    removeBatchObservableCallback: (callback, observables) => {
      removed.push([callback, ...observables]);
      inner.removeBatchObservableCallback(callback, observables as Parameters<Meter['removeBatchObservableCallback']>[1]);
    },
  };
  return { meter: wrapped, added, removed };
}

function sorted(attributes: Record<string, unknown>): [string, unknown][] {
  return Object.entries(attributes).sort(([a], [b]) => a.localeCompare(b));
}

describe('instrumentPool: OpenTelemetry semantic conventions for connection pools', () => {
  it('uses the semantic conventions names (checked against @opentelemetry/semantic-conventions)', () => {
    expect(DB_CLIENT_CONNECTION_METRICS).toEqual({
      count: METRIC_DB_CLIENT_CONNECTION_COUNT,
      max: METRIC_DB_CLIENT_CONNECTION_MAX,
      idleMax: METRIC_DB_CLIENT_CONNECTION_IDLE_MAX,
      idleMin: METRIC_DB_CLIENT_CONNECTION_IDLE_MIN,
      pendingRequests: METRIC_DB_CLIENT_CONNECTION_PENDING_REQUESTS,
      timeouts: METRIC_DB_CLIENT_CONNECTION_TIMEOUTS,
      createTime: METRIC_DB_CLIENT_CONNECTION_CREATE_TIME,
      waitTime: METRIC_DB_CLIENT_CONNECTION_WAIT_TIME,
      useTime: METRIC_DB_CLIENT_CONNECTION_USE_TIME,
    });
  });

  it('every instrument has the semconv kind and unit; every point carries the pool name', async () => {
    const pool = makePool({ max: 2 });
    instrument(pool, 'main');
    const lease = await acquireNow(pool);
    await lease.release();
    const collected = await collect();
    const expected: [string, DataPointType, string, boolean?][] = [
      [METRIC_DB_CLIENT_CONNECTION_COUNT, DataPointType.SUM, '{connection}', false],
      [METRIC_DB_CLIENT_CONNECTION_MAX, DataPointType.SUM, '{connection}', false],
      [METRIC_DB_CLIENT_CONNECTION_IDLE_MAX, DataPointType.SUM, '{connection}', false],
      [METRIC_DB_CLIENT_CONNECTION_IDLE_MIN, DataPointType.SUM, '{connection}', false],
      [METRIC_DB_CLIENT_CONNECTION_PENDING_REQUESTS, DataPointType.SUM, '{request}', false],
      [METRIC_DB_CLIENT_CONNECTION_CREATE_TIME, DataPointType.HISTOGRAM, 's'],
      [METRIC_DB_CLIENT_CONNECTION_WAIT_TIME, DataPointType.HISTOGRAM, 's'],
      [METRIC_DB_CLIENT_CONNECTION_USE_TIME, DataPointType.HISTOGRAM, 's'],
    ];
    for (const [name, type, unit, monotonic] of expected) {
      const metric = collected.get(name);
      expect(metric, name).toBeDefined();
      expect(metric!.dataPointType, name).toBe(type);
      expect(metric!.descriptor.unit, name).toBe(unit);
      expect(metric!.descriptor.description, name).not.toBe('');
      expect(metric!.aggregationTemporality).toBe(AggregationTemporality.CUMULATIVE);
      if (monotonic !== undefined) expect((metric as SumMetricData).isMonotonic, name).toBe(monotonic);
      expect(metric!.dataPoints.length, name).toBeGreaterThan(0);
      for (const point of metric!.dataPoints) expect(point.attributes[POOL], name).toBe('main');
    }
    // Only db.client.connection.count has the state attribute.
    const count = collected.get(METRIC_DB_CLIENT_CONNECTION_COUNT)!;
    expect(count.dataPoints.map((p) => p.attributes[STATE]).sort()).toEqual(['idle', 'used']);
    for (const name of [METRIC_DB_CLIENT_CONNECTION_MAX, METRIC_DB_CLIENT_CONNECTION_PENDING_REQUESTS, METRIC_DB_CLIENT_CONNECTION_WAIT_TIME]) {
      for (const point of collected.get(name)!.dataPoints) expect(Object.keys(point.attributes)).toEqual([POOL]);
    }
    // The timeout counter exists once something timed out (a counter with no add has no point).
    expect(collected.get(METRIC_DB_CLIENT_CONNECTION_TIMEOUTS)?.dataPoints ?? []).toEqual([]);
  });

  it('a scripted scenario: counts by state, pending, limits, timeouts, and the three durations in seconds', async () => {
    fake.defaults.create = { kind: 'slow', ms: 20 };
    const pool = makePool({ max: 3, min: 1 });
    instrument(pool, 'main');
    const attrs = { [POOL]: 'main' };
    const idle = { [POOL]: 'main', [STATE]: 'idle' };
    const used = { [POOL]: 'main', [STATE]: 'used' };

    await clock.advance(20); // t=20: the `min` connection is ready (create 20 ms)
    let m = await collect();
    expect(sumValue(m, METRIC_DB_CLIENT_CONNECTION_COUNT, idle)).toBe(1);
    expect(sumValue(m, METRIC_DB_CLIENT_CONNECTION_COUNT, used)).toBe(0);
    expect(sumValue(m, METRIC_DB_CLIENT_CONNECTION_MAX, attrs)).toBe(3);
    expect(sumValue(m, METRIC_DB_CLIENT_CONNECTION_IDLE_MAX, attrs)).toBe(3);
    expect(sumValue(m, METRIC_DB_CLIENT_CONNECTION_IDLE_MIN, attrs)).toBe(1);
    expect(sumValue(m, METRIC_DB_CLIENT_CONNECTION_PENDING_REQUESTS, attrs)).toBe(0);

    const a = await acquireNow(pool); // t=20, idle: waits 0
    const b = track(pool.acquire()); // t=20 -> 40: waits for a create
    await clock.advance(20);
    const c = track(pool.acquire()); // t=40 -> 60
    await clock.advance(20);
    expect(b.ok && c.ok).toBe(true);
    const d = track(pool.acquire({ timeoutMs: 50 })); // t=60, times out at 110
    const e = track(pool.acquire()); // t=60, served at 120 by a's release
    await clock.advance(0);
    m = await collect();
    expect(sumValue(m, METRIC_DB_CLIENT_CONNECTION_COUNT, idle)).toBe(0);
    expect(sumValue(m, METRIC_DB_CLIENT_CONNECTION_COUNT, used)).toBe(3);
    expect(sumValue(m, METRIC_DB_CLIENT_CONNECTION_PENDING_REQUESTS, attrs)).toBe(2);
    expect(sumValue(m, METRIC_DB_CLIENT_CONNECTION_TIMEOUTS, attrs)).toBeUndefined();

    await clock.advance(50); // t=110
    expect(d.error).toBeInstanceOf(AcquireTimeoutError);
    await clock.advance(10); // t=120
    await a.release(); // held 100 ms; e waited 60 ms
    await clock.advance(0);
    expect(e.ok).toBe(true);
    m = await collect();
    expect(sumValue(m, METRIC_DB_CLIENT_CONNECTION_TIMEOUTS, attrs)).toBe(1);
    expect(sumValue(m, METRIC_DB_CLIENT_CONNECTION_PENDING_REQUESTS, attrs)).toBe(0);
    expect(sumValue(m, METRIC_DB_CLIENT_CONNECTION_COUNT, used)).toBe(3);

    await b.value!.release(); // held 80 ms
    await c.value!.release(); // held 60 ms
    await e.value!.release(); // held 0 ms
    m = await collect();
    expect(sumValue(m, METRIC_DB_CLIENT_CONNECTION_COUNT, idle)).toBe(3);
    expect(sumValue(m, METRIC_DB_CLIENT_CONNECTION_COUNT, used)).toBe(0);
    expect(sumValue(m, METRIC_DB_CLIENT_CONNECTION_TIMEOUTS, attrs)).toBe(1);

    const create = histogramPoint(m, METRIC_DB_CLIENT_CONNECTION_CREATE_TIME, 'main')!;
    expect(create.count).toBe(3);
    expect(create.sum).toBeCloseTo(0.06, 9);
    expect(create.min).toBeCloseTo(0.02, 9);
    expect(create.max).toBeCloseTo(0.02, 9);

    // Successful acquires only: a 0, b 20 ms, c 20 ms, e 60 ms (d timed out).
    const wait = histogramPoint(m, METRIC_DB_CLIENT_CONNECTION_WAIT_TIME, 'main')!;
    expect(wait.count).toBe(4);
    expect(wait.sum).toBeCloseTo(0.1, 9);
    expect(wait.min).toBe(0);
    expect(wait.max).toBeCloseTo(0.06, 9);

    // a 100 ms, b 80 ms, c 60 ms, e 0.
    const use = histogramPoint(m, METRIC_DB_CLIENT_CONNECTION_USE_TIME, 'main')!;
    expect(use.count).toBe(4);
    expect(use.sum).toBeCloseTo(0.24, 9);
    expect(use.max).toBeCloseTo(0.1, 9);
    // Buckets are in seconds (advised), not the SDK's millisecond-sized defaults.
    expect(use.buckets.boundaries[0]).toBeLessThan(0.01);
    expect(use.buckets.boundaries.at(-1)).toBeLessThanOrEqual(60);
    expect(use.buckets.counts.reduce((x, y) => x + y, 0)).toBe(4);
  });

  it('failed creates are not in create_time; a destroyed lease is in use_time; failed acquires are not in wait_time', async () => {
    const pool = makePool({ max: 1, retry: { retries: 0 }, circuitBreaker: false });
    instrument(pool, 'main');
    fake.failCreates(1, Object.assign(new Error('bad password'), { code: 'FATAL' }));
    await pool.acquire().catch(() => {});
    const lease = await acquireNow(pool);
    await clock.advance(5);
    await lease.destroy();
    const m = await collect();
    expect(histogramPoint(m, METRIC_DB_CLIENT_CONNECTION_CREATE_TIME, 'main')!.count).toBe(1);
    expect(histogramPoint(m, METRIC_DB_CLIENT_CONNECTION_WAIT_TIME, 'main')!.count).toBe(1);
    const use = histogramPoint(m, METRIC_DB_CLIENT_CONNECTION_USE_TIME, 'main')!;
    expect(use.count).toBe(1);
    expect(use.sum).toBeCloseTo(0.005, 9);
  });

  it('two pools on one meter are told apart by db.client.connection.pool.name', async () => {
    const first = makePool({ max: 2 });
    const second = makePool({ max: 5, min: 2 });
    instrument(first, 'orders');
    instrument(second, 'users');
    await clock.advance(0);
    const lease = await acquireNow(first);
    const m = await collect();
    expect(sumValue(m, METRIC_DB_CLIENT_CONNECTION_MAX, { [POOL]: 'orders' })).toBe(2);
    expect(sumValue(m, METRIC_DB_CLIENT_CONNECTION_MAX, { [POOL]: 'users' })).toBe(5);
    expect(sumValue(m, METRIC_DB_CLIENT_CONNECTION_IDLE_MIN, { [POOL]: 'users' })).toBe(2);
    expect(sumValue(m, METRIC_DB_CLIENT_CONNECTION_COUNT, { [POOL]: 'orders', [STATE]: 'used' })).toBe(1);
    expect(sumValue(m, METRIC_DB_CLIENT_CONNECTION_COUNT, { [POOL]: 'users', [STATE]: 'used' })).toBe(0);
    expect(sumValue(m, METRIC_DB_CLIENT_CONNECTION_COUNT, { [POOL]: 'users', [STATE]: 'idle' })).toBe(2);
    // Each pool's events land on its own series only.
    expect(histogramPoint(m, METRIC_DB_CLIENT_CONNECTION_WAIT_TIME, 'orders')!.count).toBe(1);
    expect(histogramPoint(m, METRIC_DB_CLIENT_CONNECTION_WAIT_TIME, 'users')).toBeUndefined();
    expect(histogramPoint(m, METRIC_DB_CLIENT_CONNECTION_CREATE_TIME, 'orders')!.count).toBe(1);
    expect(histogramPoint(m, METRIC_DB_CLIENT_CONNECTION_CREATE_TIME, 'users')!.count).toBe(2);
    await lease.release();
  });

  it('stop() unsubscribes from the events and removes the observable callback', async () => {
    const pool = makePool({ max: 2 });
    const stats = vi.spyOn(pool, 'stats');
    const spied = spyMeter(meter);
    const handle = instrument(pool, 'main', spied.meter);
    expect(diagnostics.hasSubscribers(CHANNELS.acquireEnd)).toBe(true);
    const first = await acquireNow(pool);
    await first.release();
    let m = await collect();
    expect(stats).toHaveBeenCalledTimes(1);
    expect(histogramPoint(m, METRIC_DB_CLIENT_CONNECTION_WAIT_TIME, 'main')!.count).toBe(1);
    expect(sumValue(m, METRIC_DB_CLIENT_CONNECTION_COUNT, { [POOL]: 'main', [STATE]: 'idle' })).toBe(1);

    handle.stop();
    handle.stop(); // idempotent
    expect(handle.stopped).toBe(true);
    expect(spied.removed).toHaveLength(1);
    expect(spied.removed[0]).toEqual(spied.added[0]);
    for (const name of Object.values(CHANNELS)) expect(diagnostics.hasSubscribers(name), name).toBe(false);
    const second = await acquireNow(pool);
    m = await collect();
    // The pool is no longer read: the SDK repeats the last cumulative values it had (1 idle, 0 used).
    expect(stats).toHaveBeenCalledTimes(1);
    expect(sumValue(m, METRIC_DB_CLIENT_CONNECTION_COUNT, { [POOL]: 'main', [STATE]: 'used' })).toBe(0);
    await second.release();
    m = await collect();
    expect(histogramPoint(m, METRIC_DB_CLIENT_CONNECTION_WAIT_TIME, 'main')!.count).toBe(1);
    expect(histogramPoint(m, METRIC_DB_CLIENT_CONNECTION_USE_TIME, 'main')!.count).toBe(1);
  });

  it('stops by itself at the first collection after the pool closed, having reported it empty', async () => {
    const pool = makePool({ max: 2, min: 1 });
    const handle = instrument(pool, 'main');
    await clock.advance(0);
    await pool.close();
    expect(handle.stopped).toBe(false);
    const m = await collect();
    expect(sumValue(m, METRIC_DB_CLIENT_CONNECTION_COUNT, { [POOL]: 'main', [STATE]: 'idle' })).toBe(0);
    expect(sumValue(m, METRIC_DB_CLIENT_CONNECTION_COUNT, { [POOL]: 'main', [STATE]: 'used' })).toBe(0);
    expect(handle.stopped).toBe(true);
    for (const name of Object.values(CHANNELS)) expect(diagnostics.hasSubscribers(name), name).toBe(false);
  });

  it('a closed pool still in use is not let go of until it is empty', async () => {
    const pool = makePool({ max: 2 });
    const handle = instrument(pool, 'main');
    const lease = await acquireNow(pool);
    const closing = track(pool.close());
    await collect();
    expect(handle.stopped).toBe(false);
    await lease.release();
    await clock.advance(0);
    expect(closing.ok).toBe(true);
    const m = await collect();
    expect(handle.stopped).toBe(true);
    expect(histogramPoint(m, METRIC_DB_CLIENT_CONNECTION_USE_TIME, 'main')!.count).toBe(1);
  });

  it('a PostgresPool is measured through the object users hold (its events name it)', async () => {
    // No server: a refused connection on a closed port still times out acquires.
    const pool = createPostgresPool({ host: '127.0.0.1', port: 1, max: 1, acquireTimeoutMs: 100, circuitBreaker: false, onError: () => {} });
    instrument(pool, 'pg');
    await pool.query('SELECT 1').catch(() => {});
    const m = await collect();
    const timedOut = pool.stats().timedOut;
    await pool.close();
    expect(timedOut).toBeGreaterThan(0);
    expect(sumValue(m, METRIC_DB_CLIENT_CONNECTION_TIMEOUTS, { [POOL]: 'pg' })).toBe(timedOut);
    expect(sumValue(m, METRIC_DB_CLIENT_CONNECTION_MAX, { [POOL]: 'pg' })).toBe(1);
  });

  it('works with the global meter API (a no-op meter when no SDK is registered)', () => {
    const pool = makePool();
    const handle = instrument(pool, 'main', otelMetrics.getMeter('noop'));
    handle.stop();
    expect(handle.stopped).toBe(true);
  });

  it('refuses to instrument a pool twice (it would double every metric), and allows it again after stop()', async () => {
    const pool = makePool();
    const first = instrument(pool, 'twice');
    expect(() => instrumentPool(pool, { meter, poolName: 'twice' })).toThrow(/already instrumented.*stop\(\)/);
    const lease = await pool.acquire();
    await lease.release();
    const collected = await collect();
    expect(histogramPoint(collected, METRIC_DB_CLIENT_CONNECTION_USE_TIME, 'twice')?.count).toBe(1);
    first.stop();
    instrument(pool, 'twice');
  });

  it('rejects a missing meter, an empty pool name, and something that is not a pool', () => {
    const pool = makePool();
    expect(() => instrumentPool(pool, { meter: undefined as unknown as MeterLike, poolName: 'x' })).toThrow(InvalidPoolOptionError);
    expect(() => instrumentPool(pool, { meter, poolName: '' })).toThrow(/poolName/);
    expect(() => instrumentPool({} as never, { meter, poolName: 'x' })).toThrow(InvalidPoolOptionError);
    for (const name of Object.values(CHANNELS)) expect(diagnostics.hasSubscribers(name), name).toBe(false);
  });
});
