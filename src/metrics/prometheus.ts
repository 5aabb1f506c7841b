// Pool metrics in the Prometheus text exposition format (version 0.0.4), rendered from
// `pool.stats()`: no dependency, no registry, nothing running in the background.
import { InvalidPoolOptionError } from '../pool/errors.js';
import type { Summary } from '../pool/histogram.js';
import type { CircuitState, PoolStats } from '../pool/api.js';

/** What {@link toPrometheusText} reads from a pool: a `Pool` or a `PostgresPool` fits. */
export interface PrometheusPool {
  /** Read once per render. */
  stats(): PoolStats;
}

/** A pool and the value of its `pool_name` label. */
export interface NamedPool {
  /** The pool to render. */
  readonly pool: PrometheusPool;
  /** The `pool_name` label: unique among the pools rendered together. */
  readonly name: string;
}

/** The `Content-Type` of {@link toPrometheusText}'s output, for an HTTP `/metrics` handler. */
export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

/** One sample of a family: a suffix to its name (`_sum`, `_count`, or none), its labels besides `pool_name` (`,a="b"` or empty), its value. */
type Sample = readonly [suffix: string, labels: string, value: number];
interface Family {
  readonly name: string;
  readonly type: 'gauge' | 'counter' | 'summary';
  readonly help: string;
  /** The samples of one pool. */
  readonly samples: (s: PoolStats) => readonly Sample[];
}

const CIRCUIT_STATES: readonly CircuitState[] = ['closed', 'open', 'half-open'];

const one = (value: number): readonly Sample[] => [['', '', value]];
const label = (name: string, value: string): string => `,${name}="${escapeLabelValue(value)}"`;

/** Milliseconds to seconds, rounded to the nanosecond (no `0.009844932999999997`). */
const seconds = (ms: number): number => Math.round(ms * 1e6) / 1e9;

/** A summary's samples: quantiles 0.5 and 0.99, `_sum` and `_count`, converted from ms to seconds. */
function summary(t: Summary): readonly Sample[] {
  return [
    ['', label('quantile', '0.5'), seconds(t.p50)],
    ['', label('quantile', '0.99'), seconds(t.p99)],
    ['_sum', '', seconds(t.mean * t.count)],
    ['_count', '', t.count],
  ];
}

const FAMILIES: readonly Family[] = [
  // The OpenTelemetry semantic conventions for connection pools, in Prometheus naming.
  {
    name: 'db_client_connection_count',
    type: 'gauge',
    help: 'The number of connections that are currently in state described by the state label (idle: ready to hand out; used: leased, being health-checked or being reset).',
    samples: (s) => [
      ['', label('state', 'idle'), s.idle],
      ['', label('state', 'used'), s.size - s.idle],
    ],
  },
  { name: 'db_client_connection_max', type: 'gauge', help: 'The maximum number of open connections allowed.', samples: (s) => one(s.max) },
  { name: 'db_client_connection_idle_max', type: 'gauge', help: 'The maximum number of idle open connections allowed.', samples: (s) => one(s.max) },
  { name: 'db_client_connection_idle_min', type: 'gauge', help: 'The minimum number of idle open connections allowed.', samples: (s) => one(s.min) },
  { name: 'db_client_connection_pending_requests', type: 'gauge', help: 'The number of current pending requests for an open connection.', samples: (s) => one(s.waiting) },
  {
    name: 'db_client_connection_timeouts_total',
    type: 'counter',
    help: 'The number of connection timeouts that have occurred trying to obtain a connection from the pool.',
    samples: (s) => one(s.timedOut),
  },
  {
    name: 'db_client_connection_create_time_seconds',
    type: 'summary',
    help: 'The time it took to create a new connection, retries included, in seconds.',
    samples: (s) => summary(s.createTime),
  },
  {
    name: 'db_client_connection_wait_time_seconds',
    type: 'summary',
    help: 'The time it took to obtain an open connection from the pool, in seconds.',
    samples: (s) => summary(s.waitTime),
  },
  {
    name: 'db_client_connection_use_time_seconds',
    type: 'summary',
    help: 'The time between borrowing a connection and returning it to the pool, in seconds.',
    samples: (s) => summary(s.leaseTime),
  },
  // lifeguard's own.
  {
    name: 'lifeguard_pool_resources',
    type: 'gauge',
    help: 'Resources by state: idle, leased, checking (being pinged), resetting, creating, destroying.',
    samples: (s) => [
      ['', label('state', 'idle'), s.idle],
      ['', label('state', 'leased'), s.leased],
      ['', label('state', 'checking'), s.checking],
      ['', label('state', 'resetting'), s.resetting],
      ['', label('state', 'creating'), s.creating],
      ['', label('state', 'destroying'), s.destroying],
    ],
  },
  { name: 'lifeguard_pool_acquired_total', type: 'counter', help: 'Acquires that got a resource.', samples: (s) => one(s.acquired) },
  { name: 'lifeguard_pool_aborted_total', type: 'counter', help: 'Acquires whose signal aborted, before or while they waited.', samples: (s) => one(s.aborted) },
  {
    name: 'lifeguard_pool_rejected_total',
    type: 'counter',
    help: 'Acquires refused, by reason: closed pool, full queue, open circuit, a create that cannot succeed, or shed while congested.',
    samples: (s) => [
      ['', label('reason', 'closed'), s.rejected.closed],
      ['', label('reason', 'queueFull'), s.rejected.queueFull],
      ['', label('reason', 'circuitOpen'), s.rejected.circuitOpen],
      ['', label('reason', 'createFailed'), s.rejected.createFailed],
      ['', label('reason', 'shed'), s.rejected.shed],
    ],
  },
  { name: 'lifeguard_pool_created_total', type: 'counter', help: 'Resources created.', samples: (s) => one(s.created) },
  { name: 'lifeguard_pool_create_failed_total', type: 'counter', help: 'Failed create attempts (each retry counts).', samples: (s) => one(s.createFailed) },
  {
    name: 'lifeguard_pool_destroyed_total',
    type: 'counter',
    help: 'Resources destroyed, by reason.',
    samples: (s) => Object.entries(s.destroyedByReason).map(([reason, n]): Sample => ['', label('reason', reason), n]),
  },
  {
    name: 'lifeguard_pool_circuit_state',
    type: 'gauge',
    help: 'The circuit breaker state: 1 for the current state (closed, open or half-open), 0 for the others.',
    samples: (s) => CIRCUIT_STATES.map((state): Sample => ['', label('state', state), s.circuit === state ? 1 : 0]),
  },
  { name: 'lifeguard_pool_congested', type: 'gauge', help: '1 while the pool is congested (serving the newest waiter first and shedding), else 0.', samples: (s) => one(s.congested ? 1 : 0) },
  { name: 'lifeguard_pool_draining', type: 'gauge', help: '1 between drain() and resume(), else 0.', samples: (s) => one(s.draining ? 1 : 0) },
  {
    name: 'lifeguard_pool_consecutive_create_failures',
    type: 'gauge',
    help: 'Create attempts failed in a row since the last success.',
    samples: (s) => one(s.consecutiveCreateFailures),
  },
];

/**
 * Render pools' metrics in the Prometheus text exposition format 0.0.4 (serve it with
 * `Content-Type: {@link PROMETHEUS_CONTENT_TYPE}`). Every sample has a `pool_name` label.
 *
 * Pass one pool (labelled `pool_name="default"`) or an array of `{ pool, name }`; names
 * must be unique. Values are read from `pool.stats()` at the call. Durations are in
 * seconds.
 *
 * Families (the first nine are the OpenTelemetry semantic conventions for database
 * client connection pools, in Prometheus naming):
 *
 * | family | type | labels | value |
 * |---|---|---|---|
 * | `db_client_connection_count` | gauge | `state`: `idle`, `used` | open connections; `used` = leased, being pinged or reset |
 * | `db_client_connection_max` | gauge | | `max` |
 * | `db_client_connection_idle_max` | gauge | | `max` |
 * | `db_client_connection_idle_min` | gauge | | `min` |
 * | `db_client_connection_pending_requests` | gauge | | acquires waiting |
 * | `db_client_connection_timeouts_total` | counter | | acquires that hit their deadline |
 * | `db_client_connection_create_time_seconds` | summary | `quantile`: 0.5, 0.99 | successful creates, retries included (`_sum`, `_count`) |
 * | `db_client_connection_wait_time_seconds` | summary | `quantile`: 0.5, 0.99 | successful acquires, from call to lease |
 * | `db_client_connection_use_time_seconds` | summary | `quantile`: 0.5, 0.99 | leases, from acquire to release |
 * | `lifeguard_pool_resources` | gauge | `state`: `idle`, `leased`, `checking`, `resetting`, `creating`, `destroying` | resources by state |
 * | `lifeguard_pool_acquired_total` | counter | | acquires that got a resource |
 * | `lifeguard_pool_aborted_total` | counter | | acquires whose signal aborted |
 * | `lifeguard_pool_rejected_total` | counter | `reason`: `closed`, `queueFull`, `circuitOpen`, `createFailed`, `shed` | acquires refused |
 * | `lifeguard_pool_created_total` | counter | | resources created |
 * | `lifeguard_pool_create_failed_total` | counter | | failed create attempts |
 * | `lifeguard_pool_destroyed_total` | counter | `reason`: a `DestroyReason` | resources destroyed |
 * | `lifeguard_pool_circuit_state` | gauge | `state`: `closed`, `open`, `half-open` | 1 for the current state, 0 for the others |
 * | `lifeguard_pool_congested` | gauge | | 1 while congested (adaptive queueing), else 0 |
 * | `lifeguard_pool_draining` | gauge | | 1 while draining |
 * | `lifeguard_pool_consecutive_create_failures` | gauge | | failed creates in a row |
 *
 * Quantiles come from the pool's log-linear histograms (within 6.25 %); a summary with no
 * observation reports 0 for its quantiles.
 *
 * @example
 * ```ts
 * http.createServer((req, res) => {
 *   res.setHeader('Content-Type', PROMETHEUS_CONTENT_TYPE);
 *   res.end(toPrometheusText([{ pool: orders, name: 'orders' }, { pool: users, name: 'users' }]));
 * });
 * ```
 *
 * @throws InvalidPoolOptionError when an entry is not a pool or `{ pool, name }`, a name is empty, or two names are equal.
 */
export function toPrometheusText(pools: PrometheusPool | readonly NamedPool[]): string {
  const entries: readonly NamedPool[] = Array.isArray(pools) ? pools : [{ pool: pools as PrometheusPool, name: 'default' }];
  const seen = new Set<string>();
  const snapshots: [prefix: string, stats: PoolStats][] = [];
  for (const entry of entries) {
    if (entry === null || typeof entry !== 'object' || typeof entry.pool?.stats !== 'function') {
      throw InvalidPoolOptionError.expected('pools', 'a pool or an array of { pool, name }', entry);
    }
    if (typeof entry.name !== 'string' || entry.name === '') throw InvalidPoolOptionError.expected('name', 'a non-empty string', entry.name);
    if (seen.has(entry.name)) throw InvalidPoolOptionError.expected('name', 'unique among the pools', entry.name);
    seen.add(entry.name);
    snapshots.push([`pool_name="${escapeLabelValue(entry.name)}"`, entry.pool.stats()]);
  }

  let out = '';
  for (const family of FAMILIES) {
    out += `# HELP ${family.name} ${escapeHelp(family.help)}\n# TYPE ${family.name} ${family.type}\n`;
    for (const [poolLabel, stats] of snapshots) {
      for (const [suffix, labels, value] of family.samples(stats)) out += `${family.name}${suffix}{${poolLabel}${labels}} ${formatValue(value)}\n`;
    }
  }
  return out;
}

/** A label value as the text format wants it: backslash, double quote and line feed escaped. */
function escapeLabelValue(value: string): string {
  return value.replace(/[\\"\n]/g, (c) => (c === '\n' ? '\\n' : `\\${c}`));
}

/** A HELP text as the text format wants it: backslash and line feed escaped. */
function escapeHelp(text: string): string {
  return text.replace(/[\\\n]/g, (c) => (c === '\n' ? '\\n' : '\\\\'));
}

/** A sample value: Go's float syntax, with `+Inf`, `-Inf` and `NaN` spelled as Prometheus spells them. */
function formatValue(value: number): string {
  if (Number.isNaN(value)) return 'NaN';
  if (value === Infinity) return '+Inf';
  if (value === -Infinity) return '-Inf';
  return String(value);
}
