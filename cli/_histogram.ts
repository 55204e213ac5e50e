// Latency percentiles in constant memory.

/**
 * Latencies in buckets 1% wide, so a long run takes constant memory; a
 * percentile is off by at most 1%. The one latency histogram of the
 * command-line tool's `bench` and of the repository's benchmark (bench/).
 */
export class Histogram {
  static readonly #scale = 1 / Math.log1p(0.01);
  readonly #buckets = new Float64Array(2400);
  count = 0;
  min = Infinity;
  max = 0;
  sum = 0;

  record(ms: number): void {
    const micros = Math.max(1, ms * 1000);
    const index = Math.min(
      this.#buckets.length - 1,
      Math.floor(Math.log(micros) * Histogram.#scale),
    );
    this.#buckets[index]++;
    this.count++;
    this.sum += ms;
    if (ms < this.min) this.min = ms;
    if (ms > this.max) this.max = ms;
  }

  /** The latency below which `fraction` of the samples are, in ms. */
  percentile(fraction: number): number {
    if (this.count === 0) return NaN;
    const rank = Math.max(1, Math.ceil(fraction * this.count));
    let seen = 0;
    for (let i = 0; i < this.#buckets.length; i++) {
      seen += this.#buckets[i];
      if (seen >= rank) {
        const middle = Math.exp((i + 0.5) / Histogram.#scale) / 1000;
        return Math.min(this.max, Math.max(this.min, middle));
      }
    }
    return this.max;
  }
}
