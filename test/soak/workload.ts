// The soak's load: WORKERS workers looping with no think time over the operation mix (40 %
// SELECT 1 on an explicit lease, 30 % pool.query pg_sleep(2 ms), 30 % withTransaction INSERT),
// pausing 50-100 ms after a failure; a gate that holds them for a quiescent point; the lease
// figures (acquire lateness, FIFO order, longest operation); and each transaction's outcome,
// checked against the table at every quiescent point (no data lost).
import { isConnectionFatal } from '../../src/adapters/postgres/index.js';
import { sleep, type TestDatabase, type TestPool } from '../integration/harness.js';
import { firstLine, now } from './format.js';
import type { Ledger } from './ledger.js';
import type { OpKind, QuiescentPoint } from './records.js';
import { ACQUIRE_TIMEOUT_MS } from './settings.js';

const TX_PENDING = 0;
const TX_COMMITTED = 1;
const TX_AMBIGUOUS = 2;
const TX_ABORTED = 3;

export interface DataTotals {
  committed: number;
  ambiguous: number;
  ambiguousPresent: number;
  aborted: number;
  lost: number[];
  phantom: number[];
  unchecked: number;
}

export class Workload {
  readonly #db: TestDatabase;
  readonly #pool: TestPool;
  readonly #ledger: Ledger;
  readonly #table: string;
  readonly #insertSql: string;

  maxLateMs = -Infinity;
  maxOpMs = 0;
  leaseAcquires = 0;
  fifoInversions = 0;
  #leaseSeq = 0;
  #leaseServedMax = 0;

  // Transactions: state per id since the last quiescent point (verified and cleared there).
  #nextTxId = 1;
  #segmentFrom = 1;
  #txState = new Map<number, number>();
  readonly dataTotals: DataTotals = { committed: 0, ambiguous: 0, ambiguousPresent: 0, aborted: 0, lost: [] as number[], phantom: [] as number[], unchecked: 0 };

  #stopping = false;
  #gate: { promise: Promise<void>; open(): void } | undefined;
  /** The workers' loops, once started. */
  workers: Promise<void>[] = [];

  constructor(db: TestDatabase, pool: TestPool, ledger: Ledger, table: string) {
    this.#db = db;
    this.#pool = pool;
    this.#ledger = ledger;
    this.#table = table;
    this.#insertSql = `INSERT INTO ${table} (id) VALUES ($1)`;
  }

  // ---------------------------------------------------------------- operations
  async #leaseSelect(): Promise<void> {
    const t0 = now();
    const seq = ++this.#leaseSeq;
    let lease;
    try {
      lease = await this.#pool.acquire();
    } catch (error) {
      this.maxLateMs = Math.max(this.maxLateMs, now() - (t0 + ACQUIRE_TIMEOUT_MS));
      throw error;
    }
    const t1 = now();
    this.maxLateMs = Math.max(this.maxLateMs, t1 - (t0 + ACQUIRE_TIMEOUT_MS));
    this.#ledger.interval.waits.push(t1 - t0);
    this.leaseAcquires++;
    if (seq < this.#leaseServedMax) this.fifoInversions++;
    else this.#leaseServedMax = seq;
    try {
      await lease.resource.query('SELECT 1');
    } catch (error) {
      if (isConnectionFatal(error)) await lease.destroy(error);
      else await lease.release();
      throw error;
    }
    await lease.release();
  }

  async #runOp(kind: OpKind): Promise<boolean> {
    const ledger = this.#ledger;
    const startedAt = now();
    ledger.issued++;
    ledger.inFlight++;
    if (ledger.active !== undefined) ledger.active.startedDuring++;
    const txId = kind === 'txn' ? this.#nextTxId++ : 0;
    let inserted = false;
    if (kind === 'txn') this.#txState.set(txId, TX_PENDING);
    try {
      if (kind === 'select') await this.#leaseSelect();
      else if (kind === 'sleep') await this.#pool.query('SELECT pg_sleep(0.002)');
      else {
        await this.#pool.withTransaction(async (client) => {
          await client.query(this.#insertSql, [txId]);
          inserted = true;
        });
        this.#txState.set(txId, TX_COMMITTED);
      }
      ledger.ok++;
      ledger.interval.ok++;
      return true;
    } catch (error) {
      // After the INSERT returned, COMMIT may have been sent: the outcome is unknown.
      // Before it, COMMIT was never sent: the row must not exist.
      if (kind === 'txn') this.#txState.set(txId, inserted ? TX_AMBIGUOUS : TX_ABORTED);
      ledger.recordFailure(kind, startedAt, error);
      return false;
    } finally {
      ledger.inFlight--;
      ledger.settled++;
      this.maxOpMs = Math.max(this.maxOpMs, now() - startedAt);
    }
  }

  // ---------------------------------------------------------------- workers
  /** `count` workers looping over the mix until stop(). */
  start(count: number): void {
    this.workers = Array.from({ length: count }, async () => {
      while (!this.#stopping) {
        if (this.#gate !== undefined) {
          await this.#gate.promise;
          continue;
        }
        const roll = Math.random();
        const kind: OpKind = roll < 0.4 ? 'select' : roll < 0.7 ? 'sleep' : 'txn';
        if (!(await this.#runOp(kind))) await sleep(50 + Math.random() * 50);
      }
    });
  }

  /** The workers wait at the gate before their next operation. */
  hold(): void {
    let open!: () => void;
    const promise = new Promise<void>((resolve) => (open = resolve));
    this.#gate = { promise, open };
  }

  /** Open the gate. */
  release(): void {
    const g = this.#gate;
    this.#gate = undefined;
    g?.open();
  }

  /** The workers are held (a quiescent point). */
  get held(): boolean {
    return this.#gate !== undefined;
  }

  /** Workers end after their current operation (the gate is opened, so none stays held). */
  stop(): void {
    this.#stopping = true;
    this.release();
  }

  // ---------------------------------------------------------------- data
  /** The transactions since the last check against the table: committed ids present, ids that never reached COMMIT absent. */
  async verifyData(): Promise<QuiescentPoint['data']> {
    const dataTotals = this.dataTotals;
    const data: QuiescentPoint['data'] = { committed: 0, ambiguous: 0, ambiguousPresent: 0, aborted: 0, lost: [], phantom: [] };
    const from = this.#segmentFrom;
    const to = this.#nextTxId;
    let present: Set<number>;
    try {
      const { rows } = await this.#db.admin<{ id: string }>(`SELECT id FROM ${this.#table} WHERE id >= $1 AND id < $2`, [from, to]);
      present = new Set(rows.map((r) => Number(r.id)));
    } catch (error) {
      // Checked at the next point instead (the map keeps the states).
      return { ...data, error: firstLine(error) };
    }
    for (const [id, state] of this.#txState) {
      if (state === TX_COMMITTED) {
        data.committed++;
        if (!present.has(id)) data.lost.push(id);
      } else if (state === TX_AMBIGUOUS) {
        data.ambiguous++;
        if (present.has(id)) data.ambiguousPresent++;
      } else if (state === TX_ABORTED) {
        data.aborted++;
        if (present.has(id)) data.phantom.push(id);
      } else {
        dataTotals.unchecked++;
      }
    }
    dataTotals.committed += data.committed;
    dataTotals.ambiguous += data.ambiguous;
    dataTotals.ambiguousPresent += data.ambiguousPresent;
    dataTotals.aborted += data.aborted;
    dataTotals.lost.push(...data.lost.slice(0, 20 - dataTotals.lost.length));
    dataTotals.phantom.push(...data.phantom.slice(0, 20 - dataTotals.phantom.length));
    this.#txState = new Map();
    this.#segmentFrom = to;
    return data;
  }
}
