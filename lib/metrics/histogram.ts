// A fixed-bucket latency histogram: allocation-free observations, Prometheus-style cumulative snapshots.

/**
 * Upper bounds (milliseconds) of the commit latency buckets. Observations
 * above the last bound count only in `+Inf` (the total `count`).
 */
export const LATENCY_BUCKETS_MS: readonly number[] = Object.freeze([
  0.5,
  1,
  2.5,
  5,
  10,
  25,
  50,
  100,
  250,
  500,
  1_000,
  2_500,
  5_000,
  10_000,
]);

/**
 * A histogram as Prometheus exposes one: cumulative bucket counts, plus the
 * number and sum of all observations.
 */
export interface HistogramSnapshot {
  /** Upper bounds of the buckets in milliseconds, ascending ({@link LATENCY_BUCKETS_MS}). */
  readonly boundsMs: readonly number[];
  /**
   * `cumulative[i]` is how many observations were ≤ `boundsMs[i]`; never
   * decreasing. The implicit `+Inf` bucket is {@link count}.
   */
  readonly cumulative: readonly number[];
  /** Number of observations. */
  readonly count: number;
  /** Sum of all observations, in milliseconds. */
  readonly sumMs: number;
}

/**
 * Counts durations into {@link LATENCY_BUCKETS_MS}. `observe` allocates
 * nothing; `snapshot` copies.
 *
 * @internal
 */
export class LatencyHistogram {
  readonly #bounds: readonly number[];
  /** Per-bucket (not cumulative) counts; the last slot is above every bound. */
  readonly #counts: number[];
  #count = 0;
  #sum = 0;

  /** @param boundsMs ascending upper bounds in milliseconds */
  constructor(boundsMs: readonly number[] = LATENCY_BUCKETS_MS) {
    this.#bounds = boundsMs;
    this.#counts = new Array<number>(boundsMs.length + 1).fill(0);
  }

  /** Records one duration in milliseconds (negative or NaN is counted as 0). */
  observe(ms: number): void {
    const v = ms > 0 ? ms : 0;
    const bounds = this.#bounds;
    let i = 0;
    while (i < bounds.length && v > bounds[i]!) i++;
    this.#counts[i]!++;
    this.#count++;
    this.#sum += v;
  }

  /** The histogram now, with cumulative counts. */
  snapshot(): HistogramSnapshot {
    const cumulative: number[] = [];
    let running = 0;
    for (let i = 0; i < this.#bounds.length; i++) {
      running += this.#counts[i]!;
      cumulative.push(running);
    }
    return { boundsMs: this.#bounds, cumulative, count: this.#count, sumMs: this.#sum };
  }

  /** An empty snapshot of the default buckets. */
  static empty(): HistogramSnapshot {
    return new LatencyHistogram().snapshot();
  }
}
