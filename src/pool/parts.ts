/**
 * How one pool's parts are made and wired together (bb8's `inner`): each part gets its
 * options, the other parts it reads, and the dispatcher's hooks (dispatcher.ts). Nothing
 * here runs after construction except the few cold-path callbacks it builds.
 */
import { setMaxListeners } from 'node:events';
import type { Pool } from './api.js';
import { AdapterCalls } from './adapter-calls.js';
import { AcquireQueue, type PoolWaiter } from './acquire-queue.js';
import { CircuitBreaker } from './circuit-breaker.js';
import { CreateLoop } from './create-loop.js';
import { kDestroyEntry, kPump, type Dispatcher } from './dispatcher.js';
import { CHECKING, CREATING, IDLE, LEASED, EntryTable } from './entry.js';
import { AcquireTimeoutError, PoolClosedError, PoolOverloadedError, type AcquireTimeoutReason, type AcquireTimeoutStats } from './errors.js';
import { Congestion } from './congestion.js';
import { channels } from './events.js';
import { PoolLifecycle } from './lifecycle.js';
import { Maintenance } from './maintenance.js';
import { PoolMetrics, type PoolView } from './metrics.js';
import type { ResolvedOptions } from './options.js';
import { ProcessHold } from './process-hold.js';
import { RecoveryProbe } from './recovery-probe.js';
import { RoundTrips } from './round-trips.js';

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
  /** Adaptive queueing; undefined for `queuePolicy: 'fifo'`. */
  readonly congestion: Congestion | undefined;
  /** Keeps the process alive while a caller awaits the pool; each part marks its own reason. */
  readonly hold: ProcessHold;
  /** Aborted when close() gives up waiting for leases: the signal withConnection passes to its callback. */
  readonly abandoned: AbortController;
  /** What stats() and health() read. */
  view(): PoolView;
}

/**
 * Make one pool's parts. They hold each other (and the dispatcher) directly, not through
 * closures made per pool: calls on the hot paths then stay monomorphic however many pools
 * a process makes. Closures remain only on cold paths (timeouts, the breaker, the probe).
 */
export function assemble<T, L>(options: ResolvedOptions<T>, face: Pool<T>, dispatcher: Dispatcher<T>): Parts<T, L> {
  const clock = options.clock;
  const hold = new ProcessHold();
  const metrics = new PoolMetrics();
  const calls = new AdapterCalls(options);
  const table = new EntryTable<T>(hold, calls);
  const closeController = new AbortController();
  const abandoned = new AbortController();
  // One listener per create in flight or withConnection call is expected, not a leak.
  setMaxListeners(0, closeController.signal, abandoned.signal);
  const life = new PoolLifecycle(table, options.min, hold, dispatcher);
  const trips = new RoundTrips(clock, table, calls, life, dispatcher);
  const pump = (): void => dispatcher[kPump]();

  const congestion = options.congestion === undefined ? undefined : new Congestion(options.congestion, face);
  /** The gauges an acquire error carries; `waiting` counts the waiter it is about. */
  const gauges = (): AcquireTimeoutStats => {
    const c = table.counts;
    return { max: options.max, size: table.size(), idle: c[IDLE]!, leased: c[LEASED]!, creating: c[CREATING]!, waiting: waiters.size + 1 };
  };
  const waiters: AcquireQueue<L> = new AcquireQueue<L>(clock, face, hold, congestion, {
    timedOut: (waiter: PoolWaiter<L>) => {
      metrics.timedOut++;
      const c = table.counts;
      const failing = creates.consecutiveFailures > 0;
      const reason: AcquireTimeoutReason = failing ? 'create-failing' : c[CREATING]! > 0 ? 'slow-create' : c[CHECKING]! > 0 ? 'slow-ping' : 'saturated';
      const error = new AcquireTimeoutError(waiter.timeoutMs, reason, gauges(), failing ? creates.lastError : undefined);
      if (channels.timeout.hasSubscribers) channels.timeout.publish({ pool: face, error });
      waiters.fail(waiter, error);
    },
    aborted: () => void metrics.aborted++,
    shed: (waiter: PoolWaiter<L>, waitedMs: number) => {
      metrics.rejectedShed++;
      waiters.fail(waiter, new PoolOverloadedError(waitedMs, gauges()));
    },
    msPerServe: () => metrics.leaseTime.mean() / options.max,
  });
  const breaker = new CircuitBreaker(options.circuitBreaker, clock, face, pump, {
    acquireTimeoutMs: options.acquireTimeoutMs,
    live: () => table.size(),
    creating: () => table.counts[CREATING]!,
    leaseP99: () => metrics.leaseP99(),
    lastError: () => creates.lastError,
    refused: () => void metrics.rejectedCircuit++,
  });
  const probe: RecoveryProbe = new RecoveryProbe(options.probeIntervalMs, clock, calls as AdapterCalls<unknown>, {
    closing: () => life.closing,
    failing: () => creates.consecutiveFailures > 0,
    serverBack: () => {
      creates.serverBack();
      breaker.endCooldown(clock.now());
      pump();
    },
  });
  const maintenance = new Maintenance({ options, table, calls, trips, face }, life, dispatcher);
  const creates: CreateLoop<T> = new CreateLoop(
    { options, table, waiters: waiters as AcquireQueue<unknown>, calls, trips, breaker, probe, metrics, life, face, closeSignal: closeController.signal },
    dispatcher,
  );
  life.closeWith({
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
    destroy: (entry) => void dispatcher[kDestroyEntry](entry, 'closed'),
  });
  const view = (): PoolView => ({
    max: options.max,
    min: options.min,
    counts: table.counts,
    waiting: waiters.size,
    circuit: breaker.state,
    congested: congestion?.congested === true,
    closing: life.closing,
    draining: life.draining,
    consecutiveFailures: creates.consecutiveFailures,
    lastCreateError: creates.lastError,
  });
  return { table, waiters, calls, metrics, breaker, probe, creates, maintenance, life, trips, congestion, hold, abandoned, view };
}
