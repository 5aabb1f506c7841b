// Metrics, events, health and the exporters take a MySQL pool unchanged: they read the core's
// stats and events, whichever adapter made the pool.
import diagnostics from 'node:diagnostics_channel';
import { MeterProvider, MetricReader } from '@opentelemetry/sdk-metrics';
import { afterEach, expect, it } from 'vitest';
import { createMysqlPool, type MysqlPool } from '../../src/adapters/mysql/index.js';
import { CHANNELS, instrumentPool, toPrometheusText, type AcquireEndEvent, type CreateEvent } from '../../src/index.js';
import { useMariaDb } from './harness.js';

const db = useMariaDb();
const pools: MysqlPool[] = [];
afterEach(async () => {
  await Promise.all(pools.splice(0).map((pool) => pool.close()));
});

class TestReader extends MetricReader {
  protected override onShutdown(): Promise<void> {
    return Promise.resolve();
  }
  protected override onForceFlush(): Promise<void> {
    return Promise.resolve();
  }
}

it('diagnostics_channel events name the MysqlPool; Prometheus text, OpenTelemetry instruments and health() read it', async () => {
  const account = await db.user('observed');
  const pool = createMysqlPool({ ...db.connection(account), max: 2 });
  pools.push(pool);
  const created: CreateEvent[] = [];
  const acquired: AcquireEndEvent[] = [];
  const onCreate = (event: unknown): void => void created.push(event as CreateEvent);
  const onAcquire = (event: unknown): void => void acquired.push(event as AcquireEndEvent);
  diagnostics.subscribe(CHANNELS.create, onCreate);
  diagnostics.subscribe(CHANNELS.acquireEnd, onAcquire);
  const reader = new TestReader();
  const provider = new MeterProvider({ readers: [reader] });
  const instrumentation = instrumentPool(pool, { meter: provider.getMeter('lifeguard-mysql-test'), poolName: 'orders' });
  try {
    await Promise.all([pool.query('SELECT 1'), pool.execute('SELECT 2'), pool.withTransaction((c) => c.query('SELECT 3'))]);
    expect(created.filter((e) => e.pool === pool).length).toBeGreaterThanOrEqual(1);
    expect(acquired.filter((e) => e.pool === pool).length).toBe(3);

    const text = toPrometheusText([{ pool, name: 'orders' }]);
    expect(text).toMatch(/^lifeguard_pool_acquired_total\{pool_name="orders"\} 3$/m);
    expect(text).toMatch(/^db_client_connection_count\{pool_name="orders",state="idle"\} \d$/m);

    const { resourceMetrics } = await reader.collect();
    const names = resourceMetrics.scopeMetrics.flatMap((scope) => scope.metrics.map((metric) => metric.descriptor.name));
    expect(names).toEqual(expect.arrayContaining(['db.client.connection.count', 'db.client.connection.wait_time', 'db.client.connection.use_time']));

    expect(pool.health()).toMatchObject({ status: 'ok' });
  } finally {
    instrumentation.stop();
    await provider.shutdown();
    diagnostics.unsubscribe(CHANNELS.create, onCreate);
    diagnostics.unsubscribe(CHANNELS.acquireEnd, onAcquire);
  }
});
