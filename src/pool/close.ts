/**
 * The close sequence. By the time it runs the pool refuses new acquires; it then fails
 * the queued ones, stops creates and timers, destroys idle resources, waits up to
 * `timeoutMs` for leases (then destroys their resources and aborts withConnection's
 * signal), and waits, within the same bound, for every adapter call still running: a
 * create that ignored its abort and the destroy of what it delivered late included. Once
 * it resolves, no resource of the pool exists, unless an adapter outlived the deadline
 * (reported to onError as POOL_CLOSE_TIMEOUT).
 */
import type { AdapterCalls } from './adapter-calls.js';
import type { Clock, ClockTimer } from './clock.js';
import { LEASED, type Entry, type EntryTable } from './entry.js';
import { InvalidPoolOptionError, PoolClosedError, PoolError } from './errors.js';

/** The pool as close() sees it. */
export interface ClosingPool<T> {
  readonly clock: Clock;
  readonly destroyTimeoutMs: number;
  readonly table: EntryTable<T>;
  readonly calls: AdapterCalls<T>;
  /** Reject every queued acquire and pending warmup() with PoolClosedError. */
  failWaiters(): void;
  /** Abort every create attempt in flight (and backoff sleeps). */
  abortCreates(): void;
  /** Abort the signal withConnection callbacks hold: their resources are being destroyed. */
  abandonLeases(reason: unknown): void;
  stopTimers(): void;
  destroy(entry: Entry<T>): void;
  /** Register the listener called whenever a resource close() waits for is destroyed. */
  onOutstandingChange(listener: (() => void) | undefined): void;
  /** Resolve a drain() still waiting. */
  settleEmpty(): void;
}

/** Validate close() options; returns the timeout (default 30 s) or the error to reject with. */
export function checkCloseOptions(options: unknown): number | InvalidPoolOptionError {
  if (options === undefined) return 30_000;
  const given = (options as { timeoutMs?: unknown } | null)?.timeoutMs;
  if (typeof options !== 'object' || options === null || Object.keys(options).some((key) => key !== 'timeoutMs')) {
    return InvalidPoolOptionError.expected('close options', 'an object with only `timeoutMs`', options);
  }
  if (given === undefined) return 30_000;
  if (typeof given !== 'number' || Number.isNaN(given) || given < 0) {
    return InvalidPoolOptionError.expected('timeoutMs', 'a number of milliseconds >= 0 (or Infinity)', given);
  }
  return given;
}

export async function closePool<T>(pool: ClosingPool<T>, timeoutMs: number): Promise<void> {
  const { clock, table, calls } = pool;
  const startedAt = clock.now();
  pool.failWaiters();
  pool.abortCreates();
  pool.stopTimers();
  for (const entry of [...table.idle]) pool.destroy(entry);

  // Destroys started from here on get destroyTimeoutMs of their own past the close deadline.
  let deadline = startedAt + timeoutMs;
  if (table.outstanding() > 0) {
    await waitUntil(clock, deadline, (wake) => {
      pool.onOutstandingChange(() => {
        if (table.outstanding() === 0) wake();
      });
    });
    pool.onOutstandingChange(undefined);
    // Leases still out after the timeout: destroy their resources; a late release() is a no-op.
    if (table.outstanding() > 0) {
      pool.abandonLeases(new PoolClosedError('Pool closed while this lease was held; its resource was destroyed'));
      deadline = Math.max(deadline, clock.now() + pool.destroyTimeoutMs);
    }
    const held = table.counts[LEASED]!;
    if (held > 0) {
      calls.report(
        new PoolClosedError(`close() stopped waiting after ${timeoutMs} ms: ${held} ${held === 1 ? 'lease was' : 'leases were'} still held; their resources were destroyed`),
      );
    }
    for (const entry of [...table.all]) if (entry.state === LEASED) pool.destroy(entry);
  }
  // Creates still settling (a driver that ignores the abort) and destroys: once close()
  // resolves no resource of the pool is left, unless an adapter outlived the deadline.
  while (calls.pending.size > 0) {
    const settled = await waitUntil(clock, deadline, (wake) => void Promise.allSettled([...calls.pending]).then(wake));
    if (!settled) {
      calls.report(new PoolError(`close() stopped waiting after ${timeoutMs} ms: ${calls.pending.size} adapter calls (creates or destroys) had not settled`, 'POOL_CLOSE_TIMEOUT'));
      break;
    }
  }
  pool.stopTimers();
  pool.settleEmpty();
}

/** Wait until `arm`'s wake is called (true) or the clock reaches `deadline` (false). */
function waitUntil(clock: Clock, deadline: number, arm: (wake: () => void) => void): Promise<boolean> {
  return new Promise<boolean>((resolve) => {
    let timer: ClockTimer | undefined;
    const wake = (): void => {
      if (timer !== undefined) clock.clearTimeout(timer);
      resolve(true);
    };
    if (deadline !== Infinity) timer = clock.setTimeout(() => resolve(false), Math.max(0, deadline - clock.now()));
    arm(wake);
  });
}
