/**
 * How one pool's parts are made and wired together (bb8's `inner`): each part gets its
 * options and the narrow hooks it needs, from the other parts or from the dispatcher.
 * Nothing here runs after construction except the small hooks it builds.
 */
import { setMaxListeners } from 'node:events';
import type { DestroyReason, Pool } from './api.js';
import { AdapterCalls } from './adapter-calls.js';
import { AcquireQueue, type PoolWaiter } from './acquire-queue.js';
import { CircuitBreaker } from './circuit-breaker.js';
import { CreateLoop } from './create-loop.js';
import { CHECKING, CREATING, IDLE, LEASED, RESETTING, EntryTable, type Entry } from './entry.js';
import { AcquireTimeoutError, PoolClosedError, type AcquireTimeoutReason } from './errors.js';
import { channels } from './events.js';
import { PoolLifecycle } from './lifecycle.js';
import { Maintenance } from './maintenance.js';
import { PoolMetrics, type PoolView } from './metrics.js';
import type { ResolvedOptions } from './options.js';
import { ProcessHold } from './process-hold.js';
import { RecoveryProbe } from './recovery-probe.js';
import { RoundTrips } from './round-trips.js';

/** What the dispatcher (pool.ts) offers the parts. */
export interface Dispatcher<T> {
  /** Match waiters with resources and start creates: after anything that changes supply or demand. */
  pump(): void;
  /** Free the entry's slot now and close its resource in the background. */
  destroy(entry: Entry<T>, reason: DestroyReason): Promise<void>;
  /** A healthy resource is available again: the next waiter gets it, or it goes idle. */
  giveBack(entry: Entry<T>, now: number): void;
  /** A new resource is ready: hand it to a waiter or make it idle. */
  deliver(entry: Entry<T>, now: number): void;
  /** An entry is gone for good. */
  forget(entry: Entry<T>): void;
}

export interface Parts<T, L> {
  readonly table: EntryTable<T>;
  readonly waiters: AcquireQueue<L>;
  readonly calls: AdapterCalls<T>;
  readonly metrics: PoolMetrics;
  readonly breaker: CircuitBreaker;
  readonly probe: RecoveryProbe;
  readonly creates: CreateLoop<T>;
  readonly maintenance: Maintenance<T>;
  readonly life: PoolLifecycle<T>;
  readonly trips: RoundTrips<T>;
  /** Aborted when close() gives up waiting for leases: the signal withConnection passes to its callback. */
  readonly abandoned: AbortController;
  /** What stats() and health() read. */
  view(): PoolView;
}

export function assemble<T, L>(options: ResolvedOptions<T>, face: Pool<T>, dispatcher: Dispatcher<T>): Parts<T, L> {
  const clock = options.clock;
  const metrics = new PoolMetrics();
  const calls = new AdapterCalls(options);
  const ref = calls.ref;
  const hold = new ProcessHold();
  /**
   * The pool keeps the process alive exactly while a caller awaits it: a queued acquire
   * (and so the create or ping on its behalf), a reset that release() returns, a
   * warmup(), close(). An idle pool never does (README, "Process lifetime").
   */
  const syncHold = (): void => hold.set(waiters.size > 0 || table.counts[RESETTING]! > 0 || life.awaitingWarmup || life.closeRunning);
  const table: EntryTable<T> = new EntryTable<T>({ onResetting: syncHold, ref: ref === undefined ? undefined : (entry, active) => ref(entry.resource, active) });
  const closeController = new AbortController();
  const abandoned = new AbortController();
  // One listener per create in flight or withConnection call is expected, not a leak.
  setMaxListeners(0, closeController.signal, abandoned.signal);
  const closing = (): boolean => life.closing;
  const draining = (): boolean => life.draining;
  const pump = dispatcher.pump;
  const destroy = (entry: Entry<T>, reason: DestroyReason): void => void dispatcher.destroy(entry, reason);
  const trips = new RoundTrips(clock, table, calls, { closing, pump, giveBack: dispatcher.giveBack, destroy: dispatcher.destroy });
  /** Resources already on their way to the queue (Hikari's elision): creating, pinged for a borrower, or resetting. */
  const onTheWay = (): number => table.counts[CREATING]! + trips.borrowPings() + table.counts[RESETTING]!;

  const waiters: AcquireQueue<L> = new AcquireQueue<L>(clock, face, {
    timedOut: (waiter: PoolWaiter<L>) => {
      metrics.timedOut++;
      const c = table.counts;
      const failing = creates.consecutiveFailures > 0;
      const reason: AcquireTimeoutReason = failing ? 'create-failing' : c[CREATING]! > 0 ? 'slow-create' : c[CHECKING]! > 0 ? 'slow-ping' : 'saturated';
      const stats = { max: options.max, size: table.size(), idle: c[IDLE]!, leased: c[LEASED]!, creating: c[CREATING]!, waiting: waiters.size + 1 };
      const error = new AcquireTimeoutError(waiter.timeoutMs, reason, stats, failing ? creates.lastError : undefined);
      if (channels.timeout.hasSubscribers) channels.timeout.publish({ pool: face, error });
      waiters.fail(waiter, error);
    },
    aborted: () => void metrics.aborted++,
    occupancyChanged: syncHold,
  });
  const breaker = new CircuitBreaker(options.circuitBreaker, clock, face, pump, {
    acquireTimeoutMs: options.acquireTimeoutMs,
    live: () => table.size(),
    creating: () => table.counts[CREATING]!,
    leaseP99: () => metrics.leaseP99(),
  });
  const probe = new RecoveryProbe(options.probeIntervalMs, clock, calls as AdapterCalls<unknown>, {
    closing,
    failing: () => creates.consecutiveFailures > 0,
    serverBack: () => {
      creates.serverBack();
      breaker.endCooldown(clock.now());
      pump();
    },
  });
  const maintenance = new Maintenance(options, table, calls, face, { closing, destroy, pump, keepalive: (entry) => trips.ping(entry, options.pingTimeoutMs, true) });
  const creates: CreateLoop<T> = new CreateLoop({ options, table, calls, breaker, probe, metrics, face, closeSignal: closeController.signal }, {
    closing,
    draining,
    destroy,
    pump,
    generation: () => life.generation,
    waiting: () => waiters.size,
    latestDeadline: () => waiters.latestDeadline(),
    onTheWay,
    deliver: dispatcher.deliver,
    failHead: (error) => {
      const waiter = waiters.shift();
      if (waiter === undefined) return;
      metrics.rejectedCreate++;
      waiters.fail(waiter, error);
    },
    failWarmups: (error) => life.settleWarmups(error),
    forget: dispatcher.forget,
  });
  const life: PoolLifecycle<T> = new PoolLifecycle(
    table,
    options.min,
    { destroy, pump, holdChanged: syncHold, closed: () => hold.dispose() },
    {
      clock,
      destroyTimeoutMs: options.destroyTimeoutMs,
      table,
      calls,
      failWaiters: () =>
        waiters.failAll(() => {
          metrics.rejectedClosed++;
          return new PoolClosedError('Pool closed while this acquire was waiting');
        }),
      abortCreates: () => closeController.abort(new PoolClosedError()),
      abandonLeases: (reason) => abandoned.abort(reason),
      stopTimers: () => {
        waiters.dispose();
        maintenance.dispose();
        creates.dispose();
        breaker.dispose();
        probe.stop();
      },
      destroy: (entry) => destroy(entry, 'closed'),
    },
  );
  const view = (): PoolView => ({
    max: options.max,
    min: options.min,
    counts: table.counts,
    waiting: waiters.size,
    circuit: breaker.state,
    closing: life.closing,
    draining: life.draining,
    consecutiveFailures: creates.consecutiveFailures,
    lastCreateError: creates.lastError,
  });
  return { table, waiters, calls, metrics, breaker, probe, creates, maintenance, life, trips, abandoned, view };
}
