// OpenTelemetry metrics for a pool, named as the semantic conventions for database client
// connection pools name them. `@opentelemetry/api` is an optional peer dependency: nothing
// here imports it, not even as a type. The caller passes a `meter`, and the structural
// `MeterLike` below is all this module knows of it, so users without the package compile.
import diagnostics from 'node:diagnostics_channel';
import { InvalidPoolOptionError } from '../pool/errors.js';
import { CHANNELS, type AcquireEndEvent, type CreateEvent, type ReleaseEvent, type TimeoutEvent } from '../pool/events.js';
import type { PoolStats } from '../pool/api.js';

/** Attributes on a measurement, as OpenTelemetry takes them. */
export type MetricAttributesLike = Record<string, string>;

/**
 * Options for one instrument, the subset of OpenTelemetry's `MetricOptions` this module
 * sets. `valueType` is OpenTelemetry's `ValueType` (`0`: INT, `1`: DOUBLE); `advice`
 * carries histogram bucket boundaries (`@opentelemetry/api` >= 1.7; older APIs ignore it).
 */
export interface MetricOptionsLike {
  /** What the instrument measures. */
  description?: string;
  /** UCUM unit: `s`, `{connection}`, … */
  unit?: string;
  /** `0` for integer values, `1` for doubles. */
  valueType?: 0 | 1;
  /** Hints for the SDK's default aggregation. */
  advice?: {
    /** Histogram bucket boundaries, in the instrument's unit. */
    explicitBucketBoundaries?: number[];
  };
}

/** A synchronous counter (`Counter` in `@opentelemetry/api`). */
export interface CounterLike {
  /** Add `value` (>= 0) to the series named by `attributes`. */
  add(value: number, attributes?: MetricAttributesLike): void;
}

/** A histogram (`Histogram` in `@opentelemetry/api`). */
export interface HistogramLike {
  /** Record one measurement in the series named by `attributes`. */
  record(value: number, attributes?: MetricAttributesLike): void;
}

/** An asynchronous instrument (`Observable` in `@opentelemetry/api`); opaque here. */
export type ObservableLike = object;

/** What a batch observable callback is given (`BatchObservableResult` in `@opentelemetry/api`). */
export interface BatchObservableResultLike {
  /** Report `value` for `observable`'s series named by `attributes`. */
  observe(observable: ObservableLike, value: number, attributes?: MetricAttributesLike): void;
}

/** A batch observable callback (`BatchObservableCallback` in `@opentelemetry/api`). */
export type BatchObservableCallbackLike = (result: BatchObservableResultLike) => void;

/**
 * The part of an OpenTelemetry `Meter` that {@link instrumentPool} uses. A `Meter` from
 * `@opentelemetry/api` >= 1.3 (`metrics.getMeter(...)`, or `meterProvider.getMeter(...)`)
 * satisfies it; this type exists so that code without `@opentelemetry/api` installed still
 * compiles.
 */
export interface MeterLike {
  /** Create a monotonic counter. */
  createCounter(name: string, options?: MetricOptionsLike): CounterLike;
  /** Create a histogram. */
  createHistogram(name: string, options?: MetricOptionsLike): HistogramLike;
  /** Create an asynchronous up-down counter, observed through a batch callback. */
  createObservableUpDownCounter(name: string, options?: MetricOptionsLike): ObservableLike;
  /** Register `callback` to observe `observables` at each collection. */
  addBatchObservableCallback(callback: BatchObservableCallbackLike, observables: ObservableLike[]): void;
  /** Unregister a callback given to `addBatchObservableCallback`. */
  removeBatchObservableCallback(callback: BatchObservableCallbackLike, observables: ObservableLike[]): void;
}

/** What {@link instrumentPool} reads from a pool: a `Pool` or a `PostgresPool` fits. */
export interface InstrumentablePool {
  /** Read once per collection for the gauges. */
  stats(): PoolStats;
  /** Once `true` and the pool is empty, the instrumentation stops by itself. */
  readonly closed: boolean;
}

/** Options of {@link instrumentPool}. */
export interface InstrumentPoolOptions {
  /** Where the instruments are created: an OpenTelemetry `Meter` (see {@link MeterLike}). */
  readonly meter: MeterLike;
  /**
   * The value of `db.client.connection.pool.name` on every measurement: a name unique
   * within the application (the semantic conventions suggest `server.address:server.port`
   * when a pool has no name of its own). A non-empty string.
   */
  readonly poolName: string;
}

/** The handle {@link instrumentPool} returns. */
export interface PoolInstrumentation {
  /**
   * Stop measuring the pool: unsubscribe from its events and remove the observable
   * callback, so the meter no longer holds on to the pool. Idempotent. Called by itself at
   * the first collection that finds the pool closed and empty.
   */
  stop(): void;
  /** `true` once stopped, by `stop()` or because the pool was closed. */
  readonly stopped: boolean;
}

/** Metric names, from the OpenTelemetry semantic conventions for database client connection pools. */
export const DB_CLIENT_CONNECTION_METRICS = {
  /** Open connections by `db.client.connection.state` (`idle`, `used`); `{connection}`. */
  count: 'db.client.connection.count',
  /** `max`; `{connection}`. */
  max: 'db.client.connection.max',
  /** `max` (every connection may be idle); `{connection}`. */
  idleMax: 'db.client.connection.idle.max',
  /** `min`; `{connection}`. */
  idleMin: 'db.client.connection.idle.min',
  /** Acquires waiting; `{request}`. */
  pendingRequests: 'db.client.connection.pending_requests',
  /** Acquires that hit their deadline (counter); `{timeout}`. */
  timeouts: 'db.client.connection.timeouts',
  /** Successful create attempts (histogram); `s`. */
  createTime: 'db.client.connection.create_time',
  /** Successful acquires, from call to lease (histogram); `s`. */
  waitTime: 'db.client.connection.wait_time',
  /** Leases, from acquire to release (histogram); `s`. */
  useTime: 'db.client.connection.use_time',
} as const;

/** lifeguard's own metrics, beside the semantic conventions' (adaptive queueing; see `queuePolicy`). */
export const LIFEGUARD_POOL_METRICS = {
  /** Acquires shed with `PoolOverloadedError` while the pool was congested (counter); `{request}`. */
  shed: 'lifeguard.pool.shed',
  /** 1 while the pool is congested (serving newest first and shedding), else 0; `{pool}`. */
  congested: 'lifeguard.pool.congested',
} as const;

const ATTR_POOL_NAME = 'db.client.connection.pool.name';
const ATTR_STATE = 'db.client.connection.state';
const INT = 0;

/**
 * Bucket boundaries for the three duration histograms, in seconds: from half a
 * millisecond (an idle connection handed out) to a minute (a long wait or a long lease).
 * The SDK's default boundaries (0 to 10 000) are meant for milliseconds and would put
 * nearly every measurement in seconds into the first bucket.
 */
const DURATION_BUCKETS_S = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

/**
 * Report a pool's metrics through an OpenTelemetry meter, under the names of the semantic
 * conventions for database client connection pools (experimental in the conventions; the
 * names below are those of semconv 1.26 onwards). Every measurement carries
 * `db.client.connection.pool.name` = `poolName`.
 *
 * | instrument | kind | unit | value |
 * |---|---|---|---|
 * | `db.client.connection.count` | ObservableUpDownCounter | `{connection}` | open connections by `db.client.connection.state`: `idle` (ready to hand out) and `used` (leased, being health-checked or being reset); their sum is `stats().size`. Connections being created or destroyed are not open. |
 * | `db.client.connection.max` | ObservableUpDownCounter | `{connection}` | `max` |
 * | `db.client.connection.idle.max` | ObservableUpDownCounter | `{connection}` | `max`: every connection may be idle |
 * | `db.client.connection.idle.min` | ObservableUpDownCounter | `{connection}` | `min`: the pool keeps at least `min` connections |
 * | `db.client.connection.pending_requests` | ObservableUpDownCounter | `{request}` | acquires waiting (`stats().waiting`) |
 * | `db.client.connection.timeouts` | Counter | `{timeout}` | acquires that hit their deadline (`lifeguard:timeout`) |
 * | `db.client.connection.create_time` | Histogram | `s` | each successful create attempt (`lifeguard:create` without `error`) |
 * | `db.client.connection.wait_time` | Histogram | `s` | each successful acquire, from the call to the lease (`lifeguard:acquire:end` without `error`); 0 when a connection was idle |
 * | `db.client.connection.use_time` | Histogram | `s` | each lease, from acquire to release or destroy (`lifeguard:release`) |
 *
 * The gauges are read from `pool.stats()` once per collection (one batch callback); the
 * counter and histograms come from the pool's `node:diagnostics_channel` events, so they
 * count from this call on. Histograms advise bucket boundaries from 0.5 ms to 60 s.
 *
 * Call it once per pool, with a `poolName` unique in the application. Instrument the
 * object you hold: for a PostgreSQL pool, the `PostgresPool` itself.
 *
 * @example
 * ```ts
 * import { metrics } from '@opentelemetry/api';
 * const instrumentation = instrumentPool(pool, { meter: metrics.getMeter('my-service'), poolName: 'orders-db' });
 * // ... at shutdown, or when the pool goes away:
 * instrumentation.stop();
 * ```
 *
 * @throws InvalidPoolOptionError when `meter` is not a meter or `poolName` is not a non-empty string.
 */
export function instrumentPool(pool: InstrumentablePool, options: InstrumentPoolOptions): PoolInstrumentation {
  if (pool === null || typeof pool !== 'object' || typeof pool.stats !== 'function') {
    throw InvalidPoolOptionError.expected('pool', 'a lifeguard pool', pool);
  }
  // Twice would silently double every counter and histogram.
  if (instrumented.get(pool)?.stopped === false) {
    throw new InvalidPoolOptionError(
      'pool',
      'This pool is already instrumented: call stop() on the PoolInstrumentation that instrumentPool() returned before instrumenting it again',
    );
  }
  const { meter, poolName } = (options ?? {}) as Partial<InstrumentPoolOptions>;
  if (
    meter === null ||
    typeof meter !== 'object' ||
    typeof meter.createObservableUpDownCounter !== 'function' ||
    typeof meter.addBatchObservableCallback !== 'function' ||
    typeof meter.createHistogram !== 'function' ||
    typeof meter.createCounter !== 'function'
  ) {
    throw InvalidPoolOptionError.expected('meter', 'an OpenTelemetry Meter (@opentelemetry/api >= 1.3)', meter);
  }
  if (typeof poolName !== 'string' || poolName === '') {
    throw InvalidPoolOptionError.expected('poolName', 'a non-empty string', poolName);
  }

  const names = DB_CLIENT_CONNECTION_METRICS;
  const attributes: MetricAttributesLike = { [ATTR_POOL_NAME]: poolName };
  const idleAttributes: MetricAttributesLike = { [ATTR_POOL_NAME]: poolName, [ATTR_STATE]: 'idle' };
  const usedAttributes: MetricAttributesLike = { [ATTR_POOL_NAME]: poolName, [ATTR_STATE]: 'used' };

  const count = meter.createObservableUpDownCounter(names.count, {
    description: 'The number of connections that are currently in state described by the `state` attribute.',
    unit: '{connection}',
    valueType: INT,
  });
  const max = meter.createObservableUpDownCounter(names.max, { description: 'The maximum number of open connections allowed.', unit: '{connection}', valueType: INT });
  const idleMax = meter.createObservableUpDownCounter(names.idleMax, { description: 'The maximum number of idle open connections allowed.', unit: '{connection}', valueType: INT });
  const idleMin = meter.createObservableUpDownCounter(names.idleMin, { description: 'The minimum number of idle open connections allowed.', unit: '{connection}', valueType: INT });
  const pending = meter.createObservableUpDownCounter(names.pendingRequests, {
    description: 'The number of current pending requests for an open connection.',
    unit: '{request}',
    valueType: INT,
  });
  const timeouts = meter.createCounter(names.timeouts, {
    description: 'The number of connection timeouts that have occurred trying to obtain a connection from the pool.',
    unit: '{timeout}',
    valueType: INT,
  });
  const shed = meter.createCounter(LIFEGUARD_POOL_METRICS.shed, {
    description: 'Acquires shed with PoolOverloadedError while the pool was congested.',
    unit: '{request}',
    valueType: INT,
  });
  const congested = meter.createObservableUpDownCounter(LIFEGUARD_POOL_METRICS.congested, {
    description: 'Whether the pool is congested (1): serving the newest waiter first and shedding.',
    unit: '{pool}',
    valueType: INT,
  });
  const histogram = (name: string, description: string): HistogramLike =>
    meter.createHistogram(name, { description, unit: 's', advice: { explicitBucketBoundaries: DURATION_BUCKETS_S } });
  const createTime = histogram(names.createTime, 'The time it took to create a new connection.');
  const waitTime = histogram(names.waitTime, 'The time it took to obtain an open connection from the pool.');
  const useTime = histogram(names.useTime, 'The time between borrowing a connection and returning it to the pool.');

  const observables = [count, max, idleMax, idleMin, pending, congested];
  let stopped = false;
  const observe: BatchObservableCallbackLike = (result) => {
    if (stopped) return;
    const s = pool.stats();
    result.observe(count, s.idle, idleAttributes);
    result.observe(count, s.size - s.idle, usedAttributes);
    result.observe(max, s.max, attributes);
    result.observe(idleMax, s.max, attributes);
    result.observe(idleMin, s.min, attributes);
    result.observe(pending, s.waiting, attributes);
    result.observe(congested, s.congested ? 1 : 0, attributes);
    // The last report of a closed pool says it is empty; then let go of it.
    if (pool.closed && s.size === 0 && s.creating === 0 && s.destroying === 0) stop();
  };

  const subscriptions: [string, (message: unknown) => void][] = [
    [
      CHANNELS.create,
      (message) => {
        const event = message as CreateEvent;
        if (event.pool === pool && !('error' in event)) createTime.record(event.durationMs / 1000, attributes);
      },
    ],
    [
      CHANNELS.acquireEnd,
      (message) => {
        const event = message as AcquireEndEvent;
        if (event.pool !== pool) return;
        if (!('error' in event)) waitTime.record(event.waitMs / 1000, attributes);
        else if ((event.error as { code?: unknown } | null)?.code === 'POOL_OVERLOADED') shed.add(1, attributes);
      },
    ],
    [
      CHANNELS.release,
      (message) => {
        const event = message as ReleaseEvent;
        if (event.pool === pool) useTime.record(event.leaseMs / 1000, attributes);
      },
    ],
    [
      CHANNELS.timeout,
      (message) => {
        if ((message as TimeoutEvent).pool === pool) timeouts.add(1, attributes);
      },
    ],
  ];

  function stop(): void {
    if (stopped) return;
    stopped = true;
    for (const [name, listener] of subscriptions) diagnostics.unsubscribe(name, listener);
    // An older meter without removal keeps the callback, which does nothing once stopped.
    if (typeof meter!.removeBatchObservableCallback === 'function') meter!.removeBatchObservableCallback(observe, observables);
  }

  meter.addBatchObservableCallback(observe, observables);
  for (const [name, listener] of subscriptions) diagnostics.subscribe(name, listener);
  const instrumentation: PoolInstrumentation = {
    stop,
    get stopped() {
      return stopped;
    },
  };
  instrumented.set(pool, instrumentation);
  return instrumentation;
}

/** The live instrumentation of each pool, so that a second instrumentPool() is refused. */
const instrumented = new WeakMap<InstrumentablePool, PoolInstrumentation>();
