/** count, p50, p99, max and mean of a duration distribution, in milliseconds. */
export interface Summary {
  /** Measurements recorded. */
  readonly count: number;
  /** Median, ms (within 6.25 %). */
  readonly p50: number;
  /** 99th percentile, ms (within 6.25 %). */
  readonly p99: number;
  /** Largest measurement, ms (exact). */
  readonly max: number;
  /** Mean, ms (exact); 0 when nothing was recorded. */
  readonly mean: number;
}

// Log-linear buckets over whole microseconds: exact below 32 µs, then 16 buckets per
// power of two (≤ 6.25 % relative error), up to 2^31 µs (~36 min). 464 counters,
// whatever the traffic: memory is bounded, recording is a few integer operations.
const SUB_BITS = 4;
const SUB = 1 << SUB_BITS;
const MAX_US = 2 ** 31 - 1;
const BUCKETS = (31 - SUB_BITS) * SUB + 2 * SUB;

function bucketOf(us: number): number {
  if (us < 2 * SUB) return us;
  const shift = 31 - Math.clz32(us) - SUB_BITS;
  return shift * SUB + (us >>> shift);
}

function bucketMidpointUs(index: number): number {
  if (index < 2 * SUB) return index;
  const shift = (index >>> SUB_BITS) - 1;
  const lower = ((index & (SUB - 1)) | SUB) << shift;
  return lower + (1 << shift) / 2;
}

export class Histogram {
  readonly #counts = new Float64Array(BUCKETS);
  #count = 0;
  #sumMs = 0;
  #maxMs = 0;

  record(ms: number): void {
    if (!(ms > 0)) {
      this.recordZero();
      return;
    }
    // `+ 0.5 | 0` rounds to whole microseconds without a call; the range check keeps it inside int32.
    const us = ms < MAX_US / 1000 ? (ms * 1000 + 0.5) | 0 : MAX_US;
    this.#counts[us < 2 * SUB ? us : bucketOf(us)]!++;
    this.#count++;
    this.#sumMs += ms;
    if (ms > this.#maxMs) this.#maxMs = ms;
  }

  /** `record(0)` for the hot path: an acquire served from the idle list waited no time at all. */
  recordZero(): void {
    this.#counts[0]!++;
    this.#count++;
  }

  /** The mean, cheaply (0 before any sample). */
  mean(): number {
    return this.#count === 0 ? 0 : this.#sumMs / this.#count;
  }

  summary(): Summary {
    const count = this.#count;
    if (count === 0) return { count: 0, p50: 0, p99: 0, max: 0, mean: 0 };
    return {
      count,
      p50: Math.min(this.#quantileMs(0.5), this.#maxMs),
      p99: Math.min(this.#quantileMs(0.99), this.#maxMs),
      max: this.#maxMs,
      mean: this.#sumMs / count,
    };
  }

  #quantileMs(q: number): number {
    const rank = Math.ceil(q * this.#count);
    let seen = 0;
    for (let i = 0; i < BUCKETS; i++) {
      seen += this.#counts[i]!;
      if (seen >= rank) return bucketMidpointUs(i) / 1000;
    }
    return this.#maxMs;
  }
}
