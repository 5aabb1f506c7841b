// What happened during the run: every operation's outcome (failures kept with their start
// and end, successes only counted), the fault windows, and recovery after each fault.

/**
 * @typedef {object} Failure
 * @property {number} start  ms since the run started
 * @property {number} end
 * @property {string} kind   errorKind() of the error
 */

/**
 * @typedef {object} FaultRecord
 * @property {string} name
 * @property {string} label
 * @property {number} index        1-based position in the plan
 * @property {number} start        the window opens when the injection starts
 * @property {number | undefined} end  and closes when the removal has completed
 * @property {number} inFlightAtHit  operations started and not yet settled when it opened
 * @property {number} startedDuring  operations started while it was open
 * @property {number | undefined} recoveryMs  from `end` to the first success of an operation started after `end`
 * @property {string | undefined} detail  what the injection did ("terminated 10 sessions")
 * @property {string | undefined} error   the injection or removal failed
 */

/** Short names for the error codes the faults produce, for the summary. */
export const KIND_NAMES = /** @type {Record<string, string>} */ ({
  '57P01': 'terminated by an administrator',
  '57P02': 'crash shutdown',
  '57P03': 'the server is starting up or shutting down',
  '57014': 'query canceled',
  '53300': 'too many connections',
  '08006': 'connection failure',
  '08P01': 'protocol violation',
  '40P01': 'deadlock',
  ECONNREFUSED: 'connection refused',
  ECONNRESET: 'connection reset',
  'not-queryable': 'the connection had died under the query',
  'query-timeout': 'queryTimeoutMs passed: the connection is destroyed',
  'connection-terminated': 'the server closed the connection',
  POOL_ACQUIRE_TIMEOUT: 'acquire deadline passed',
  POOL_CIRCUIT_OPEN: 'circuit breaker open',
  POOL_CREATE_FAILED: 'create failed for good',
  POOL_CREATE_TIMEOUT: 'connect timed out',
  POOL_PING_TIMEOUT: 'ping timed out',
  POOL_CLOSED: 'pool closed',
});

/** Short names for driver errors that carry no code, by their message. @type {[RegExp, string][]} */
const MESSAGE_KINDS = [
  [/not queryable/i, 'not-queryable'],
  [/Query read timeout/i, 'query-timeout'],
  [/Connection terminated unexpectedly/i, 'connection-terminated'],
  [/Connection terminated/i, 'connection-terminated'],
  [/timeout expired/i, 'connect-timeout'],
];

/**
 * A short, stable name for an error: its `code` (SQLSTATE, errno, POOL_*; with the reason
 * for an acquire timeout); else a name from its message ("not-queryable"), followed by the
 * first code along its cause chain ("not-queryable<-57P01": the connection had died of a
 * 57P01). No spaces, so `kind=count` lists stay readable.
 * @param {unknown} error
 * @returns {string}
 */
export function errorKind(error) {
  if (typeof error !== 'object' || error === null) return typeof error;
  const { code, reason, name, message } = /** @type {{ code?: unknown, reason?: unknown, name?: unknown, message?: unknown }} */ (error);
  if (typeof code === 'string' && code !== '') return typeof reason === 'string' && code === 'POOL_ACQUIRE_TIMEOUT' ? `${code}(${reason})` : code;
  const text = typeof message === 'string' ? message : '';
  let kind = MESSAGE_KINDS.find(([pattern]) => pattern.test(text))?.[1];
  if (kind === undefined) {
    kind =
      typeof name === 'string' && name !== '' && name !== 'Error'
        ? name
        : text.split(/\s+/).slice(0, 4).join('-').replace(/[^\w-]/g, '').toLowerCase() || 'Error';
  }
  for (let cause = /** @type {{ cause?: unknown }} */ (error).cause, depth = 0; cause !== null && typeof cause === 'object' && depth < 5; depth++) {
    const causeCode = /** @type {{ code?: unknown }} */ (cause).code;
    if (typeof causeCode === 'string' && causeCode !== '') return `${kind}<-${causeCode}`;
    cause = /** @type {{ cause?: unknown }} */ (cause).cause;
  }
  return kind;
}

/** At most this many failures are kept with their times; beyond it they are only counted. */
const MAX_KEPT_FAILURES = 100_000;

export class Recorder {
  t0 = performance.now();
  started = 0;
  ok = 0;
  failed = 0;
  inFlight = 0;
  /** Failures kept beyond MAX_KEPT_FAILURES (then not attributable: the verdict fails). */
  overflow = 0;
  /** @type {Map<string, number>} */
  byKind = new Map();
  /** @type {Failure[]} */
  failures = [];
  /** @type {FaultRecord[]} */
  faults = [];
  /** @type {FaultRecord | undefined} the fault whose window is open */
  current = undefined;
  /** @type {FaultRecord[]} removed, recovery not yet seen */
  #awaitingRecovery = [];
  /** @type {(fault: FaultRecord) => void} */
  onRecovered = () => {};

  /** ms since the run started */
  now() {
    return performance.now() - this.t0;
  }

  /** An operation starts; returns its start time. */
  begin() {
    this.started++;
    this.inFlight++;
    if (this.current !== undefined) this.current.startedDuring++;
    return this.now();
  }

  /** @param {number} start */
  succeed(start) {
    this.inFlight--;
    this.ok++;
    if (this.#awaitingRecovery.length === 0) return;
    const end = this.now();
    this.#awaitingRecovery = this.#awaitingRecovery.filter((fault) => {
      if (fault.end === undefined || start < fault.end) return true;
      fault.recoveryMs = end - fault.end;
      this.onRecovered(fault);
      return false;
    });
  }

  /**
   * @param {number} start
   * @param {unknown} error
   */
  fail(start, error) {
    this.inFlight--;
    this.failed++;
    const kind = errorKind(error);
    this.byKind.set(kind, (this.byKind.get(kind) ?? 0) + 1);
    if (this.failures.length < MAX_KEPT_FAILURES) this.failures.push({ start, end: this.now(), kind });
    else this.overflow++;
  }

  /**
   * The fault's window opens now.
   * @param {{ name: string, label: string, index: number }} fault
   * @returns {FaultRecord}
   */
  openFault({ name, label, index }) {
    /** @type {FaultRecord} */
    const record = {
      name,
      label,
      index,
      start: this.now(),
      end: undefined,
      inFlightAtHit: this.inFlight,
      startedDuring: 0,
      recoveryMs: undefined,
      detail: undefined,
      error: undefined,
    };
    this.faults.push(record);
    this.current = record;
    return record;
  }

  /**
   * The fault has been removed: its window closes, recovery is watched for.
   * @param {FaultRecord} record
   */
  closeFault(record) {
    record.end = this.now();
    if (this.current === record) this.current = undefined;
    this.#awaitingRecovery.push(record);
  }
}
