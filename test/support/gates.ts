// Helpers for the fault, matrix and load tests: a seeded PRNG, an adapter whose hooks are
// "gates" (FAULTS.md F29), abort signals on virtual time, and a clock that can stall.
import type { Adapter, Clock, ClockTimer } from '../../src/index.js';
import type { VirtualClock } from './virtual-clock.js';

// ---------------------------------------------------------------- randomness

/** A small deterministic PRNG in [0, 1), so a failing seed replays exactly. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Mean, standard deviation and coefficient of variation of `values`. */
export function spread(values: readonly number[]): { mean: number; sd: number; cv: number } {
  const n = values.length;
  if (n === 0) return { mean: NaN, sd: NaN, cv: NaN };
  const mean = values.reduce((a, b) => a + b, 0) / n;
  const variance = values.reduce((a, b) => a + (b - mean) ** 2, 0) / n;
  const sd = Math.sqrt(variance);
  return { mean, sd, cv: sd / mean };
}

// ---------------------------------------------------------------- abort signals on virtual time

/**
 * Like `AbortSignal.timeout(ms)`, but on `clock` (AbortSignal.timeout runs on real time).
 * Returns the signal and a `cancel` that clears the timer once it is no longer needed.
 */
export function clockTimeoutSignal(clock: Clock, ms: number): { signal: AbortSignal; controller: AbortController; cancel: () => void } {
  const controller = new AbortController();
  const timer = clock.setTimeout(() => controller.abort(new DOMException('The operation was aborted due to timeout', 'TimeoutError')), ms);
  return { signal: controller.signal, controller, cancel: () => clock.clearTimeout(timer) };
}

// ---------------------------------------------------------------- gated adapter (F29)

/** What one adapter hook does: succeed, throw synchronously, reject, succeed after 1–5 ms, or never settle. */
export type Gate = 'ok' | 'throw' | 'reject' | 'slow' | 'never';
export const GATES: readonly Gate[] = ['ok', 'throw', 'reject', 'slow', 'never'];

export interface Gates {
  readonly create: Gate;
  readonly ping: Gate;
  readonly reset: Gate;
  readonly destroy: Gate;
}

export interface GateResource {
  readonly id: number;
  /** Times destroy() was called on it (the pool must call it exactly once). */
  destroyCalls: number;
  /** destroy() completed. */
  destroyed: boolean;
}

/**
 * An adapter whose create, ping, reset and destroy each behave as one fixed gate. It counts
 * every resource it produced (including those a create delivers after the pool gave up on
 * it) and every destroy call, so a test can check that the pool destroys each resource it
 * ever received exactly once.
 */
export class GateAdapter {
  /** Every resource create() delivered, in order. */
  readonly resources: GateResource[] = [];
  /** Resources delivered and not yet successfully destroyed. */
  readonly live = new Set<GateResource>();
  createCalls = 0;
  pingCalls = 0;
  resetCalls = 0;
  destroyCalls = 0;
  /** destroy() called on a resource a second time. */
  doubleDestroys = 0;
  /** destroy() called on something create() never delivered. */
  foreignDestroys = 0;
  #nextId = 0;

  constructor(
    readonly clock: Clock,
    readonly gates: Gates,
    readonly random: () => number,
  ) {}

  adapter(): Adapter<GateResource> {
    return {
      create: () => {
        this.createCalls++;
        return this.#gate(this.gates.create, 'create', () => {
          const resource: GateResource = { id: ++this.#nextId, destroyCalls: 0, destroyed: false };
          this.resources.push(resource);
          this.live.add(resource);
          return resource;
        });
      },
      ping: () => {
        this.pingCalls++;
        return this.#gate(this.gates.ping, 'ping', () => undefined);
      },
      reset: () => {
        this.resetCalls++;
        return this.#gate(this.gates.reset, 'reset', () => undefined);
      },
      destroy: (resource) => {
        this.destroyCalls++;
        if (!this.resources.includes(resource)) this.foreignDestroys++;
        else if (++resource.destroyCalls > 1) this.doubleDestroys++;
        return this.#gate(this.gates.destroy, 'destroy', () => {
          resource.destroyed = true;
          this.live.delete(resource);
        });
      },
    };
  }

  #gate<R>(gate: Gate, hook: string, succeed: () => R): Promise<R> {
    switch (gate) {
      case 'ok':
        return Promise.resolve().then(succeed);
      case 'throw':
        throw new Error(`${hook} gate: thrown synchronously`);
      case 'reject':
        return Promise.reject(new Error(`${hook} gate: rejected`));
      case 'slow': {
        const ms = 1 + this.random() * 4;
        return new Promise<void>((resolve) => this.clock.setTimeout(resolve, ms)).then(succeed);
      }
      case 'never':
        return new Promise<R>(() => {});
    }
  }
}

// ---------------------------------------------------------------- a clock that can stall

/**
 * Virtual time that can also jump, like an event loop blocked by a busy-wait (F27a): during
 * `stall(ms)` time reads as the end of the stall from the first instant, and the timers due
 * inside the stall all fire late, in due order, as Node runs them after a blocked turn.
 * Records every delay the pool asks for, so a negative or NaN one is seen.
 */
export class StallingClock implements Clock {
  /** While stalled: the instant the stall ends (time cannot read earlier). */
  #floor = -Infinity;
  readonly delays: number[] = [];

  constructor(readonly base: VirtualClock) {}

  now(): number {
    return Math.max(this.base.now(), this.#floor);
  }

  setTimeout(callback: () => void, ms: number): ClockTimer {
    this.delays.push(ms);
    // During a stall, "in ms" means ms after the stall's end: the base clock is still behind.
    const lag = Math.max(0, this.#floor - this.base.now());
    return this.base.setTimeout(callback, ms + lag);
  }

  clearTimeout(timer: ClockTimer): void {
    this.base.clearTimeout(timer);
  }

  advance(ms: number): Promise<void> {
    return this.base.advance(ms);
  }

  /** Block for `ms`: the clock jumps to now + ms at once, then every timer due by then fires (late). */
  async stall(ms: number): Promise<void> {
    this.#floor = this.base.now() + ms;
    try {
      await this.base.advance(ms);
    } finally {
      this.#floor = -Infinity;
    }
  }
}
