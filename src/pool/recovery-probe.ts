/**
 * While creates fail with retryable errors, probe the server every probeIntervalMs (the
 * adapter's cheap check, no login). The backoff keeps login attempts to about one per
 * step; the probe notices the server's return within an interval, so callers are served
 * again within ~probeIntervalMs + one create of it.
 */
import type { AdapterCalls } from './adapter-calls.js';
import type { Clock, ClockTimer } from './clock.js';

export interface ProbeHost {
  /** Creates are failing (the probe stops by itself once they succeed). */
  failing(): boolean;
  closing(): boolean;
  /** A probe failed and a later one succeeded: the server is back. */
  serverBack(): void;
}

export class RecoveryProbe {
  readonly #intervalMs: number;
  readonly #clock: Clock;
  readonly #calls: AdapterCalls<unknown>;
  readonly #host: ProbeHost;
  #timer: ClockTimer | undefined;
  /** Bumped when probing starts or stops: results of probes from an earlier round are ignored. */
  #round = 0;
  #inFlight = 0;
  /** A probe failed in this round: the next success means the server came back. */
  #sawFailure = false;

  constructor(intervalMs: number, clock: Clock, calls: AdapterCalls<unknown>, host: ProbeHost) {
    this.#intervalMs = calls.canProbe ? intervalMs : Infinity;
    this.#clock = clock;
    this.#calls = calls;
    this.#host = host;
  }

  /** A retryable create failure: watch for the server's return (no-op while already watching). */
  start(): void {
    if (this.#intervalMs === Infinity || this.#timer !== undefined || this.#host.closing()) return;
    this.#round++;
    this.#sawFailure = false;
    this.#timer = this.#clock.setTimeout(this.#probeOnce, this.#intervalMs);
  }

  stop(): void {
    this.#round++;
    if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  /**
   * One probe per interval, whether or not the earlier ones have answered: a connection a
   * proxy holds while its server starts (docker's port forwarding does) may answer only at
   * its timeout, and the next one, started after the server is up, answers at once.
   */
  readonly #probeOnce = (): void => {
    this.#timer = undefined;
    if (this.#host.closing() || !this.#host.failing()) return;
    const intervalMs = this.#intervalMs;
    this.#timer = this.#clock.setTimeout(this.#probeOnce, intervalMs);
    const boundMs = Math.max(intervalMs, 1000);
    if (this.#inFlight >= Math.ceil(boundMs / intervalMs)) return;
    this.#inFlight++;
    const round = this.#round;
    const probed = this.#calls.probe(boundMs).then(
      () => this.#onProbe(round, true),
      () => this.#onProbe(round, false),
    );
    this.#calls.track(probed);
  };

  #onProbe(round: number, reachable: boolean): void {
    this.#inFlight--;
    if (round !== this.#round || this.#host.closing()) return;
    if (!this.#host.failing()) return this.stop();
    if (!reachable) {
      this.#sawFailure = true;
      return;
    }
    // Reachable from the first probe: the failures are not about reachability (the server
    // refuses logins, say), so the backoff runs its course. The next failure probes again.
    const back = this.#sawFailure;
    this.stop();
    if (back) this.#host.serverBack();
  }
}
