// What the soak records: the faults and what they cost, failures no fault explains, the
// quiescent points, and the whole run's result that the verdicts read.
import type { PoolStats } from '../../src/index.js';

export type OpKind = 'select' | 'sleep' | 'txn';
export type How = 'during' | 'inFlight' | 'grace';

export interface FaultMark {
  readonly name: string;
  /** performance.now() when the injection began. */
  readonly start: number;
  /** The same, in ms since the soak started. */
  readonly at: number;
  /** Operations started and not yet settled when the injection began. */
  readonly inFlightAtHit: number;
  /** Of those, how many held a connection (pool.stats().leased): for information, the budget uses inFlightAtHit. */
  readonly leasedAtHit: number;
  /** Operations started while the window was open. */
  startedDuring: number;
  end?: number;
  recoveryMs?: number;
  recoveryError?: string;
  /** Attributed failures by how. */
  readonly failures: Record<How, number>;
  readonly kinds: Record<string, number>;
  /** Failures of operations started >= AFTER_RECOVERY_MS after the removal. */
  afterRecovery: number;
  onError: number;
}

export interface FailureNote {
  readonly kind: OpKind | 'onError';
  /** Seconds since the soak started, e.g. "423.006s". */
  readonly startedAt: string;
  readonly endedAt: string;
  readonly error: string;
  readonly fault?: string;
}

export interface QuiescentPoint {
  readonly label: string;
  readonly t: number;
  readonly drainMs: number;
  readonly stuck: number;
  readonly server: number;
  readonly size: number;
  readonly links: number;
  /** ms until server == links == size, or undefined when that never held within 1 s. */
  readonly equalAfterMs: number | undefined;
  readonly heapMB: number;
  readonly rssMB: number;
  readonly arrayBuffersMB: number;
  /** Used size per V8 heap space (MB), for telling a leak (old space growing) from code or fragmentation. */
  readonly spaces: Record<string, number>;
  /** Active resources by type, TCPSocketWrap minus 3 per pooled connection. */
  readonly handles: Record<string, number>;
  /** Largest listener count on one pooled client (client + connection + socket). */
  readonly listeners: number | undefined;
  readonly data: { committed: number; ambiguous: number; ambiguousPresent: number; aborted: number; lost: number[]; phantom: number[]; error?: string };
}

export interface SoakResult {
  readonly settings: Record<string, unknown>;
  readonly elapsedMs: number;
  readonly issued: number;
  readonly settled: number;
  readonly ok: number;
  readonly failed: number;
  readonly errorsByKind: Record<string, number>;
  readonly faults: FaultMark[];
  readonly skipped: string[];
  readonly unattributed: FailureNote[];
  readonly unattributedCount: number;
  readonly afterRecovery: FailureNote[];
  readonly nonErrors: number;
  readonly onErrors: { t: number; kind: string; message: string }[];
  readonly onErrorUnattributed: number;
  readonly points: QuiescentPoint[];
  readonly serverMax: number;
  readonly serverSamples: number;
  readonly serverOverMax: string[];
  readonly poolOverMax: string[];
  readonly endStats: PoolStats;
  readonly inFlightAtEnd: number;
  readonly maxLateMs: number;
  readonly maxOpMs: number;
  readonly leaseAcquires: number;
  readonly fifoInversions: number;
  readonly afterClose: { sessions: number; withinMs: number | undefined; size: number; creating: number; handles: Record<string, number>; handlesBefore: Record<string, number> };
  readonly dataTotals: { committed: number; ambiguous: number; ambiguousPresent: number; aborted: number; lost: number[]; phantom: number[]; unchecked: number };
}
