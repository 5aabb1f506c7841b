/**
 * The circuit breaker: `closed` (creates allowed), `open` after `failureThreshold` failed
 * creates in a row (no create for `cooldownMs`; acquires beyond what the live resources
 * can serve fail fast), `half-open` (the cooldown is over and one probe create runs; its
 * result closes or reopens the breaker). The create loop reports to it; the dispatcher
 * asks it how many waiters it may keep (coverage).
 */
import type { CircuitState } from './api.js';
import type { Clock, ClockTimer } from './clock.js';
import { CircuitOpenError } from './errors.js';
import { channels } from './events.js';
import type { CircuitBreakerOptions } from './options.js';

const CLOSED = 0;
const OPEN = 1;
const HALF_OPEN = 2;
const NAMES: readonly CircuitState[] = ['closed', 'open', 'half-open'];

/** What the coverage is computed from. */
export interface CoverageInputs {
  readonly acquireTimeoutMs: number;
  /** Live resources. */
  live(): number;
  /** Creates in flight. */
  creating(): number;
  /** The p99 lease time, undefined before any lease came back. */
  leaseP99(): number | undefined;
  /** The last create error, the cause of a CircuitOpenError. */
  lastError(): unknown;
  /** Count one acquire refused by the breaker. */
  refused(): void;
}

export class CircuitBreaker {
  #state = CLOSED;
  #openedAt = 0;
  #timer: ClockTimer | undefined;
  readonly #options: Required<CircuitBreakerOptions> | false;
  readonly #clock: Clock;
  readonly #face: object;
  /** After the cooldown: let the dispatcher start the probe create if someone wants a resource. */
  readonly #onCooldownOver: () => void;
  readonly #inputs: CoverageInputs;

  constructor(options: Required<CircuitBreakerOptions> | false, clock: Clock, face: object, onCooldownOver: () => void, inputs: CoverageInputs) {
    this.#inputs = inputs;
    this.#options = options;
    this.#clock = clock;
    this.#face = face;
    this.#onCooldownOver = onCooldownOver;
  }

  /** The common case, checked on hot paths: creates allowed, nothing to trim. */
  get isClosed(): boolean {
    return this.#state === CLOSED;
  }

  get isHalfOpen(): boolean {
    return this.#state === HALF_OPEN;
  }

  get state(): CircuitState {
    return NAMES[this.#state]!;
  }

  /** A create attempt failed; `consecutiveFailures` counts the streak it belongs to. */
  onCreateFailed(consecutiveFailures: number, cause: unknown, now: number): void {
    const options = this.#options;
    if (options === false) return;
    if (this.#state === HALF_OPEN || (this.#state === CLOSED && consecutiveFailures >= options.failureThreshold)) this.#open(cause, now);
  }

  onCreated(): void {
    if (this.#state === CLOSED) return;
    if (channels.breakerClose.hasSubscribers) channels.breakerClose.publish({ pool: this.#face });
    this.#state = CLOSED;
    this.dispose();
  }

  /** May a create start now? An open breaker whose cooldown is over turns half-open: the caller must start the probe create. */
  allowsCreate(now: number): boolean {
    if (this.#state === CLOSED) return true;
    if (!this.#cooldownOver(now)) return false;
    this.#state = HALF_OPEN;
    return true;
  }

  /** The server is known to be back: an open breaker's cooldown ends now. */
  endCooldown(now: number): void {
    if (this.#state !== OPEN || this.#options === false) return;
    this.#openedAt = now - this.#options.cooldownMs;
    this.dispose();
  }

  /**
   * While the breaker is not closed, how many waiters can expect a resource without a new
   * create: each creating one, the probe, and each live resource once per lease it can
   * still serve within the acquire timeout (judged by the p99 lease time seen so far; one
   * each before any lease came back). A pool that lost some of its connections keeps
   * serving its waiters with the rest instead of failing them fast.
   */
  coverage(now: number): number {
    const inputs = this.#inputs;
    const live = inputs.live();
    let turns = 1;
    if (live > 0) {
      const leaseP99 = inputs.leaseP99();
      if (leaseP99 !== undefined) turns = Math.max(1, Math.floor(inputs.acquireTimeoutMs / Math.max(leaseP99, 0.001)));
    }
    return live * turns + inputs.creating() + (this.#cooldownOver(now) ? 1 : 0);
  }

  /**
   * While the breaker is not closed, waiters beyond what leases and creates can serve
   * would only wait out their deadline: fail the last-served ones now.
   */
  shedUncovered(waiters: { readonly size: number; last(): unknown; remove(waiter: never): boolean; fail(waiter: never, error: unknown): void }): void {
    const now = this.#clock.now();
    const coverage = this.coverage(now);
    while (waiters.size > coverage) {
      const waiter = waiters.last() as never;
      waiters.remove(waiter);
      this.#inputs.refused();
      waiters.fail(waiter, this.error(this.#inputs.lastError(), now));
    }
  }

  /** The error for an acquire refused while the breaker is not closed. */
  error(cause: unknown, now: number): CircuitOpenError {
    const cooldownMs = this.#options === false ? 0 : this.#options.cooldownMs;
    return new CircuitOpenError(cause, this.#openedAt + cooldownMs - now);
  }

  dispose(): void {
    if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #open(cause: unknown, now: number): void {
    if (this.#state === CLOSED && channels.breakerOpen.hasSubscribers) channels.breakerOpen.publish({ pool: this.#face, cause });
    this.#state = OPEN;
    this.#openedAt = now;
    this.dispose();
    this.#timer = this.#clock.setTimeout(() => {
      this.#timer = undefined;
      this.#onCooldownOver();
    }, (this.#options as Required<CircuitBreakerOptions>).cooldownMs);
  }

  #cooldownOver(now: number): boolean {
    return this.#state === OPEN && now >= this.#openedAt + (this.#options as Required<CircuitBreakerOptions>).cooldownMs;
  }
}
