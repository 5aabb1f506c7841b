// The invariants of FAULTS.md §2.4 for the PostgreSQL fault suite: the generic PoolObserver
// (test/support/fault-observer.ts) bound to a harness pool. Its I2/I5/I6 session counts are
// the server's for the pool's application_name (or what `sessions` counts, e.g. PgBouncer's
// client connections, for I2's sampler), and a connection-fatal error (isConnectionFatal of
// lifeguard/postgres) destroys the lease instead of releasing it. I4 is checked for every
// file by usePostgres().
import type pg from 'pg';
import { isConnectionFatal } from '../../src/adapters/postgres/index.js';
import { SystemClock, type ClockTimer } from '../../src/pool/clock.js';
import { PoolObserver, type LoadOptions as GenericLoadOptions } from '../support/fault-observer.js';
import type { TestDatabase, TestPool } from '../integration/harness.js';

export { errorKind, errorsByKind, LATE_MARGIN_MS, type FaultMark, type OpRecord, type PoolSample, type Report } from '../support/fault-observer.js';

export type LoadOptions = GenericLoadOptions<pg.Client>;

export class Observer extends PoolObserver<pg.Client> {
  readonly db: TestDatabase;
  declare readonly pool: TestPool;

  /**
   * `sessions` counts the sessions the pool holds for I2's sampler (default: the server's for
   * the pool's application_name; behind PgBouncer, its client connections). `sessionSlack`:
   * sessions allowed above `max` in that count (see PoolObserverOptions).
   */
  constructor(db: TestDatabase, pool: TestPool, options: { max: number; acquireTimeoutMs: number; sessions?: () => Promise<number>; sessionSlack?: number }) {
    super(pool, {
      max: options.max,
      acquireTimeoutMs: options.acquireTimeoutMs,
      serverSessions: () => db.sessions(pool.app),
      ...(options.sessions === undefined ? {} : { sampledSessions: options.sessions }),
      ...(options.sessionSlack === undefined ? {} : { sessionSlack: options.sessionSlack }),
      isFatal: isConnectionFatal,
    });
    this.db = db;
  }
}

/**
 * The system clock (same caching and deadline semantics: it is a SystemClock), counting
 * the timers the pool holds: pass it as the pool's `clock` to check that `close()` leaves
 * no pool timer behind (I5). Unref'ed timers are invisible to process.getActiveResourcesInfo().
 */
export class CountingClock extends SystemClock {
  /** Timers set and neither fired nor cleared yet. */
  readonly live = new Set<ClockTimer>();
  /** The delay each live timer was set with (same keys as `live`): which timers are left, not just how many. */
  readonly liveDelays = new Map<ClockTimer, number>();

  override setTimeout(callback: () => void, ms: number): ClockTimer {
    const timer: ClockTimer = super.setTimeout(
      () => {
        this.live.delete(timer);
        this.liveDelays.delete(timer);
        callback();
      },
      ms,
    );
    this.live.add(timer);
    this.liveDelays.set(timer, ms);
    return timer;
  }

  override clearTimeout(timer: ClockTimer): void {
    this.live.delete(timer);
    this.liveDelays.delete(timer);
    super.clearTimeout(timer);
  }
}
