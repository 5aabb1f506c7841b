/**
 * lifeguard: a resilient connection pool. This entry is the database-agnostic core;
 * `lifeguard/postgres` adds PostgreSQL over node-postgres.
 *
 * @module lifeguard
 */
export { createPool } from './pool/pool.js';
export { PoolFacade } from './pool/facade.js';
export type { Pool, Lease, PoolStats, PoolHealth, HealthStatus, DestroyReason, CircuitState, PoolWrapping } from './pool/api.js';
export { POOL_DEFAULTS, POOL_OPTION_NAMES, defaultOnError } from './pool/options.js';
export type { PoolDefaultName } from './pool/options.js';
export type { QueuePolicy, CongestionOptions } from './pool/congestion.js';
export type { Adapter, CreateContext, PoolOptions, AcquireOptions, RetryOptions, CircuitBreakerOptions } from './pool/options.js';
export type { Clock, ClockTimer } from './pool/clock.js';
export type { Summary } from './pool/histogram.js';
export { CHANNELS } from './pool/events.js';
export type { AcquireStartEvent, AcquireEndEvent, ReleaseEvent, CreateEvent, DestroyEvent, TimeoutEvent, BreakerEvent, LeakEvent, CongestionEvent } from './pool/events.js';
export {
  PoolError,
  AcquireTimeoutError,
  PoolClosedError,
  PoolQueueFullError,
  CircuitOpenError,
  CreateResourceError,
  CreateTimeoutError,
  PingTimeoutError,
  DestroyTimeoutError,
  LeaseReleasedError,
  InvalidPoolOptionError,
  LeakDetectedError,
  PoolOverloadedError,
} from './pool/errors.js';
export type { AcquireTimeoutReason, AcquireTimeoutStats } from './pool/errors.js';
export { instrumentPool, DB_CLIENT_CONNECTION_METRICS, LIFEGUARD_POOL_METRICS } from './metrics/otel.js';
export type {
  InstrumentPoolOptions,
  InstrumentablePool,
  PoolInstrumentation,
  MeterLike,
  MetricOptionsLike,
  MetricAttributesLike,
  CounterLike,
  HistogramLike,
  ObservableLike,
  BatchObservableResultLike,
  BatchObservableCallbackLike,
} from './metrics/otel.js';
export { toPrometheusText, PROMETHEUS_CONTENT_TYPE } from './metrics/prometheus.js';
export type { PrometheusPool, NamedPool } from './metrics/prometheus.js';
