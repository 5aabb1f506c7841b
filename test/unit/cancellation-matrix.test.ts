// F29 (FAULTS.md §3 D), the deadpool cancellation matrix: an adapter whose create, ping,
// reset and destroy are each a gate in {ok, throw, reject, slow 1–5 ms, never}, all 5^4 =
// 625 combinations. In each, 8 tasks loop acquire({ signal, timeoutMs }) on a max-2 pool
// with deadlines of 0–3 ms (aborts on the virtual clock) for 50 virtual ms, then everything
// is aborted, settled and closed. Invariants (§2 item 4) are sampled every virtual ms and
// checked at the end: I2 (size, idle, creating + size <= max), I1 (nothing outlives its
// deadline), I3 (every acquire settles once), I4 (no unhandled rejection), nothing stuck,
// and every resource the adapter ever delivered destroyed exactly once.
//
// Reproduce one combination: LIFEGUARD_MATRIX_SEED=<seed> npx vitest run test/unit/cancellation-matrix.test.ts -t "create=never ping=ok reset=slow destroy=throw"
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import {
  AcquireTimeoutError,
  CircuitOpenError,
  CreateResourceError,
  createPool,
  type Lease,
  type Pool,
} from '../../src/index.js';
import { clockTimeoutSignal, GATES, GateAdapter, mulberry32, type Gate, type GateResource, type Gates } from '../support/gates.js';
import { VirtualClock } from '../support/virtual-clock.js';

const BASE_SEED = process.env.LIFEGUARD_MATRIX_SEED === undefined ? 0x29_f29 : Number(process.env.LIFEGUARD_MATRIX_SEED);
const MAX = 2;
const TASKS = 8;
const RUN_MS = 50;

const OPTIONS = {
  max: MAX,
  acquireTimeoutMs: 20,
  createTimeoutMs: 10,
  pingIfIdleMs: 0, // every borrow from idle pings, so the ping gate is always exercised
  pingTimeoutMs: 5,
  resetTimeoutMs: 5,
  destroyTimeoutMs: 10,
  keepaliveMs: 7,
  idleTimeoutMs: 15,
  maxLifetimeMs: 30,
  retry: { minTimeoutMs: 1, maxTimeoutMs: 4, factor: 2 },
  circuitBreaker: { failureThreshold: 3, cooldownMs: 5 },
} as const;

class StopError extends Error {
  constructor() {
    super('test over: every task aborts');
  }
}

interface Pending {
  readonly issuedAt: number;
  /** When the acquire must have settled by: its timeoutMs or its abort, whichever comes first. */
  readonly due: number;
  readonly controller: AbortController;
}

/** Counts `unhandledRejection`s for the whole file; each combination checks the count did not move. */
let unhandled: unknown[] = [];
const onUnhandled = (reason: unknown): void => {
  unhandled.push(reason);
};
process.on('unhandledRejection', onUnhandled);
afterAll(() => {
  process.off('unhandledRejection', onUnhandled);
});
afterEach(() => {
  vi.restoreAllMocks();
});

class MatrixRun {
  readonly clock = new VirtualClock();
  readonly random: () => number;
  readonly fake: GateAdapter;
  readonly pool: Pool<GateResource>;
  readonly violations: string[] = [];
  readonly pending = new Set<Pending>();
  readonly held = new Set<GateResource>();
  readonly chores: Promise<void>[] = [];
  readonly rejections = new Map<string, number>();
  issued = 0;
  resolved = 0;
  rejected = 0;
  choresSettled = 0;
  tasksDone = 0;
  stopped = false;
  samples = 0;

  constructor(
    readonly gates: Gates,
    readonly seed: number,
  ) {
    this.random = mulberry32(seed);
    // The pool's own randomness (lifetime and backoff jitter) replays with the seed too.
    vi.spyOn(Math, 'random').mockImplementation(mulberry32(seed ^ 0x5bd1e995));
    this.fake = new GateAdapter(this.clock, gates, this.random);
    this.pool = createPool<GateResource>({ ...OPTIONS, adapter: this.fake.adapter(), clock: this.clock, onError: () => {} });
  }

  violate(message: string): void {
    if (this.violations.length < 20) this.violations.push(`t=${this.clock.now().toFixed(3)}: ${message}`);
  }

  /** One caller: acquire with a short abort deadline and a short timeout, use, release or destroy; again. */
  async task(): Promise<void> {
    const { clock, random } = this;
    while (!this.stopped) {
      const abortInMs = random() * 3;
      const timeoutMs = 1 + random() * 9;
      const { controller, cancel } = clockTimeoutSignal(clock, abortInMs);
      const now = clock.now();
      const pending: Pending = { issuedAt: now, due: now + Math.min(abortInMs, timeoutMs), controller };
      this.pending.add(pending);
      this.issued++;
      let lease: Lease<GateResource> | undefined;
      try {
        lease = await this.pool.acquire({ signal: controller.signal, timeoutMs });
        this.resolved++;
      } catch (error) {
        this.rejected++;
        this.#classify(error, controller.signal);
      } finally {
        this.pending.delete(pending);
        cancel();
      }
      if (lease === undefined) {
        // Whatever rejected at once (an open circuit) would otherwise loop without time passing.
        await clock.sleep(0.25 + random() * 0.75);
        continue;
      }
      const resource = lease.resource;
      if (resource.destroyCalls > 0) this.violate(`acquire got resource #${resource.id}, already given to destroy()`);
      if (this.held.has(resource)) this.violate(`resource #${resource.id} leased to two holders`);
      this.held.add(resource);
      await clock.sleep(random() * 2);
      if (resource.destroyCalls > 0) this.violate(`resource #${resource.id} was destroyed while leased`);
      this.held.delete(resource);
      const done = random() < 0.2 ? lease.destroy(new Error('caller evicts it')) : lease.release();
      this.chores.push(
        done.then(
          () => void this.choresSettled++,
          (error: unknown) => {
            this.choresSettled++;
            this.violate(`release()/destroy() rejected: ${String(error)}`);
          },
        ),
      );
      // Think time: the pool sometimes has no waiter, so resources go idle and the next borrow pings.
      await clock.sleep(random() < 0.5 ? random() * 2 : 2 + random() * 8);
    }
  }

  #classify(error: unknown, signal: AbortSignal): void {
    let kind: string;
    if (signal.aborted && error === signal.reason) kind = error instanceof StopError ? 'stopped' : 'aborted';
    else if (error instanceof AcquireTimeoutError) kind = 'timeout';
    else if (error instanceof CircuitOpenError) kind = 'circuitOpen';
    else if (error instanceof CreateResourceError) kind = 'createFailed';
    else {
      kind = 'unexpected';
      this.violate(`acquire rejected with an unexpected error: ${String(error)}`);
    }
    this.rejections.set(kind, (this.rejections.get(kind) ?? 0) + 1);
  }

  sample(): void {
    this.samples++;
    const s = this.pool.stats();
    if (s.size > MAX) this.violate(`size ${s.size} > max ${MAX}`);
    if (s.idle > MAX) this.violate(`idle ${s.idle} > max ${MAX}`);
    if (s.creating + s.size > MAX) this.violate(`creating ${s.creating} + size ${s.size} > max ${MAX}`);
    if (s.idle + s.leased + s.checking + s.resetting !== s.size) this.violate(`gauges do not add up: ${JSON.stringify(s)}`);
    const now = this.clock.now();
    for (const p of this.pending) {
      if (now > p.due + 1e-6) this.violate(`an acquire issued at ${p.issuedAt.toFixed(3)} is still pending after its deadline ${p.due.toFixed(3)}`);
    }
    if (s.waiting > this.pending.size) this.violate(`stats.waiting ${s.waiting} > unsettled acquires ${this.pending.size}`);
  }

  async run(): Promise<void> {
    const { clock } = this;
    const tasks = Array.from({ length: TASKS }, () =>
      this.task().then(
        () => void this.tasksDone++,
        (error: unknown) => {
          this.tasksDone++;
          this.violate(`task threw: ${String(error)}`);
        },
      ),
    );
    void tasks;
    this.sample();
    for (let t = 0; t < RUN_MS; t++) {
      await clock.advance(1);
      this.sample();
    }

    // Abort everything still waiting; holders finish their use and give their leases back.
    this.stopped = true;
    for (const p of this.pending) p.controller.abort(new StopError());
    const settled = await clock.advanceUntil(() => {
      this.sample();
      return this.tasksDone === TASKS && this.choresSettled === this.chores.length;
    }, 1000);
    if (!settled) this.violate(`not settled 1 s after abort: ${this.tasksDone}/${TASKS} tasks done, ${this.choresSettled}/${this.chores.length} release/destroy settled, ${this.pending.size} acquires pending`);
    const s = this.pool.stats();
    if (s.waiting !== 0) this.violate(`a waiter is stuck: stats.waiting ${s.waiting} after every acquire settled`);
    if (s.leased !== 0) this.violate(`stats.leased ${s.leased} after every lease was given back`);

    let closed = false;
    let closeError: unknown;
    this.pool.close({ timeoutMs: 100 }).then(
      () => void (closed = true),
      (error: unknown) => {
        closed = true;
        closeError = error;
      },
    );
    await clock.advanceUntil(() => closed, 10_000);
    if (!closed) this.violate('close() did not settle within 10 virtual seconds');
    if (closeError !== undefined) this.violate(`close() rejected: ${String(closeError)}`);
    // Creates still running when the pool closed (slow ones) deliver late and must be destroyed.
    await clock.advance(100);
    this.finalChecks();
  }

  finalChecks(): void {
    const s = this.pool.stats();
    const fake = this.fake;
    if (this.resolved + this.rejected !== this.issued) this.violate(`I3: ${this.issued} acquires issued, ${this.resolved} resolved + ${this.rejected} rejected`);
    if (s.size !== 0 || s.creating !== 0 || s.waiting !== 0 || s.leased !== 0) this.violate(`pool not empty after close: ${JSON.stringify(s)}`);
    if (s.created !== s.destroyed) this.violate(`stats: created ${s.created} - destroyed ${s.destroyed} != 0`);
    const neverDestroyed = fake.resources.filter((r) => r.destroyCalls === 0);
    if (neverDestroyed.length > 0) {
      this.violate(`adapter: ${fake.resources.length} resources delivered, ${neverDestroyed.length} never given to destroy() (#${neverDestroyed.map((r) => r.id).join(', #')})`);
    }
    if (fake.doubleDestroys !== 0) this.violate(`adapter: ${fake.doubleDestroys} resources destroyed twice`);
    if (fake.foreignDestroys !== 0) this.violate(`adapter: destroy() called on ${fake.foreignDestroys} values create() never delivered`);
    if ((this.gates.destroy === 'ok' || this.gates.destroy === 'slow') && fake.live.size !== 0) {
      this.violate(`adapter: ${fake.live.size} resources still alive after close with a working destroy`);
    }
    if (this.clock.pendingTimers !== 0) this.violate(`${this.clock.pendingTimers} timers still pending after close`);
  }
}

const combinations: [Gate, Gate, Gate, Gate][] = [];
for (const create of GATES) for (const ping of GATES) for (const reset of GATES) for (const destroy of GATES) combinations.push([create, ping, reset, destroy]);

/** What the whole matrix exercised, so a harness that never reaches a path is noticed. */
const coverage = { runs: 0, acquired: 0, aborted: 0, timedOut: 0, circuitOpen: 0, pings: 0, resets: 0, destroys: 0 };

describe('F29 cancellation matrix: create × ping × reset × destroy gates, max 2, 8 aborting tasks', () => {
  it.each(combinations)('create=%s ping=%s reset=%s destroy=%s', async (create, ping, reset, destroy) => {
    const index = combinations.findIndex((c) => c[0] === create && c[1] === ping && c[2] === reset && c[3] === destroy);
    const seed = (BASE_SEED + index * 0x9e3779b1) >>> 0;
    const unhandledBefore = unhandled.length;
    const run = new MatrixRun({ create, ping, reset, destroy }, seed);
    await run.run();
    for (const reason of unhandled.slice(unhandledBefore)) run.violate(`I4: unhandled rejection: ${String(reason)}`);

    coverage.runs++;
    coverage.acquired += run.resolved;
    coverage.aborted += run.rejections.get('aborted') ?? 0;
    coverage.timedOut += run.rejections.get('timeout') ?? 0;
    coverage.circuitOpen += run.rejections.get('circuitOpen') ?? 0;
    coverage.pings += run.fake.pingCalls;
    coverage.resets += run.fake.resetCalls;
    coverage.destroys += run.fake.destroyCalls;

    const where = `seed ${seed} (LIFEGUARD_MATRIX_SEED=${BASE_SEED}), gates create=${create} ping=${ping} reset=${reset} destroy=${destroy}`;
    expect(run.violations, `${where}\n  ${run.violations.join('\n  ')}`).toEqual([]);
    expect(run.samples, where).toBeGreaterThanOrEqual(RUN_MS);
    // Every combination really ran the load: many acquires, some aborted or timed out.
    expect(run.issued, where).toBeGreaterThan(TASKS * 5);
  });

  it('the harness itself flags a leaked resource, a double destroy and an acquire stuck past its deadline', async () => {
    const run = new MatrixRun({ create: 'ok', ping: 'ok', reset: 'ok', destroy: 'ok' }, BASE_SEED);
    await run.run();
    expect(run.violations).toEqual([]);
    run.fake.resources.push({ id: -1, destroyCalls: 0, destroyed: false });
    run.fake.doubleDestroys++;
    run.pending.add({ issuedAt: 0, due: 1, controller: new AbortController() });
    run.sample();
    run.finalChecks();
    expect(run.violations.join('\n')).toMatch(/never given to destroy\(\)/);
    expect(run.violations.join('\n')).toMatch(/destroyed twice/);
    expect(run.violations.join('\n')).toMatch(/still pending after its deadline/);
  });

  it('exercised every path across the matrix', () => {
    expect(coverage.runs).toBe(combinations.length);
    for (const [key, value] of Object.entries(coverage)) expect(value, `no combination exercised ${key}`).toBeGreaterThan(0);
  });
});
