/**
 * Request-scoped acquire options: `pool.run({ signal, timeoutMs, priority }, fn)` makes every
 * connection taken inside `fn` (by an ORM, several calls deep) use them, through
 * AsyncLocalStorage. `timeoutMs` is a deadline fixed when `run` is called: the whole
 * request's budget, not a fresh one per query.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { InvalidPoolOptionError, type AcquireOptions } from '../../index.js';

/** What `run` takes: the acquire options of one request. */
export interface RequestScope {
  /** Aborting it fails the request's waiting acquires (and pg's queries do not start). */
  readonly signal?: AbortSignal;
  /** The request's budget for waiting for connections, from the moment `run` is called. */
  readonly timeoutMs?: number;
  /** Higher is served first when the pool is busy. @default 0 */
  readonly priority?: number;
}

interface Scope {
  readonly signal: AbortSignal | undefined;
  readonly deadline: number;
  readonly priority: number | undefined;
}

const scopes = new AsyncLocalStorage<ReadonlyMap<object, Scope>>();
const SCOPE_KEYS = new Set(['signal', 'timeoutMs', 'priority']);

function check(options: unknown): RequestScope {
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    throw InvalidPoolOptionError.expected('run options', 'an object with signal, timeoutMs or priority', options);
  }
  const unknown = Object.keys(options).find((key) => !SCOPE_KEYS.has(key));
  if (unknown !== undefined) throw new InvalidPoolOptionError(unknown, `Unknown run option \`${unknown}\`: expected signal, timeoutMs or priority`);
  const { signal, timeoutMs, priority } = options as RequestScope;
  if (signal !== undefined && !(signal instanceof AbortSignal)) throw InvalidPoolOptionError.expected('signal', 'an AbortSignal', signal);
  if (timeoutMs !== undefined && !(typeof timeoutMs === 'number' && timeoutMs > 0)) {
    throw InvalidPoolOptionError.expected('timeoutMs', 'a number of milliseconds > 0 (or Infinity)', timeoutMs);
  }
  if (priority !== undefined && !(typeof priority === 'number' && Number.isFinite(priority))) {
    throw InvalidPoolOptionError.expected('priority', 'a finite number', priority);
  }
  return options as RequestScope;
}

/** Run `fn` with `options` applying to `pool`'s acquires (scopes for other pools are kept). */
export function runScoped<R>(pool: object, options: RequestScope, fn: () => R): R {
  const { signal, timeoutMs, priority } = check(options);
  if (typeof fn !== 'function') throw new TypeError('pool.run(options, fn) expects fn to be a function');
  const next = new Map(scopes.getStore());
  next.set(pool, { signal, priority, deadline: timeoutMs === undefined ? Infinity : performance.now() + timeoutMs });
  return scopes.run(next, fn);
}

/**
 * The acquire options for `pool` here: the scope's, under any given explicitly. `undefined`
 * outside any scope (the pool's defaults apply).
 */
export function scopedOptions(pool: object, given?: AcquireOptions): AcquireOptions | undefined {
  const scope = scopes.getStore()?.get(pool);
  if (scope === undefined) return given;
  const options: { signal?: AbortSignal; timeoutMs?: number; priority?: number } = {};
  if (scope.signal !== undefined) options.signal = scope.signal;
  if (scope.priority !== undefined) options.priority = scope.priority;
  if (scope.deadline !== Infinity) {
    // Past the deadline the acquire still gets its typed timeout error, at once, unless a connection is idle.
    options.timeoutMs = Math.max(scope.deadline - performance.now(), Number.MIN_VALUE);
  }
  return given === undefined ? options : { ...options, ...given };
}
