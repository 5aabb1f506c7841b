// OpenTelemetry metrics for a lifeguard pool, printed by the SDK's console exporter.
//
//   npm run build                                  # examples import the built package
//   DATABASE_URL=postgres://user:pass@host:5432/db node examples/otel-console.mjs
//
// Needs @opentelemetry/api and @opentelemetry/sdk-metrics (devDependencies of this repo; in
// your service, dependencies). In production you would use an OTLP or Prometheus exporter
// instead of ConsoleMetricExporter; the instrumentation is the same.
import { ConsoleMetricExporter, MeterProvider, PeriodicExportingMetricReader } from '@opentelemetry/sdk-metrics';
import { instrumentPool } from 'lifeguard';
import { createPostgresPool } from 'lifeguard/postgres';

const meterProvider = new MeterProvider({
  readers: [
    new PeriodicExportingMetricReader({
      exporter: new ConsoleMetricExporter(),
      // Export every 10 s while running; the forceFlush() below exports once more at the end.
      exportIntervalMillis: 10_000,
    }),
  ],
});
// With @opentelemetry/api you would usually call metrics.setGlobalMeterProvider(meterProvider)
// and pass metrics.getMeter('my-service'); any Meter works.
const meter = meterProvider.getMeter('lifeguard-example');

const pool = createPostgresPool({
  ...(process.env.DATABASE_URL ? { connectionString: process.env.DATABASE_URL } : {}),
  application_name: 'lifeguard-example-otel',
  max: 4,
  acquireTimeoutMs: 5_000,
});

// db.client.connection.* instruments, every measurement tagged db.client.connection.pool.name.
const instrumentation = instrumentPool(pool, { meter, poolName: 'example' });

try {
  // Some work: 40 queries, 10 at a time on a pool of 4, so some callers wait for a connection.
  for (let round = 0; round < 4; round++) {
    await Promise.all(
      Array.from({ length: 10 }, (_, i) => pool.withConnection((client) => client.query('select pg_sleep($1::float8 / 1000)', [5 + i]))),
    );
  }
  const { rows } = await pool.query('select count(*)::int as n from pg_stat_activity where application_name = $1', ['lifeguard-example-otel']);
  console.log(`sessions of this pool on the server: ${rows[0].n}`);
  console.log(`stats: ${JSON.stringify({ acquired: pool.stats().acquired, created: pool.stats().created, waitTimeP99Ms: pool.stats().waitTime.p99 })}`);

  // Export now, instead of waiting for the next interval.
  await meterProvider.forceFlush();
} finally {
  instrumentation.stop();
  await pool.close();
  await meterProvider.shutdown();
}
console.log('done');
