// Small statistics and timing helpers for the benchmark: percentiles of samples, a monotonic clock in ns.

/** Monotonic clock, ns (as a float: differences below 2^53 ns, about 104 days, are exact). */
export function nowNs(): number {
  return Number(process.hrtime.bigint());
}

/** Nearest-rank percentile (p in 0..100) of samples; NaN for none. Does not modify `samples`. */
export function percentile(samples: readonly number[], p: number): number {
  if (samples.length === 0) return NaN;
  const sorted = [...samples].sort((a, b) => a - b);
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length)));
  return sorted[rank - 1];
}

export function median(samples: readonly number[]): number {
  if (samples.length === 0) return NaN;
  const sorted = [...samples].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

export interface Summary {
  n: number;
  min: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
  mean: number;
}

export function summarize(samples: readonly number[]): Summary {
  const sorted = [...samples].sort((a, b) => a - b);
  const n = sorted.length;
  const at = (p: number): number => (n === 0 ? NaN : sorted[Math.min(n, Math.max(1, Math.ceil((p / 100) * n))) - 1]);
  return {
    n,
    min: n ? sorted[0] : NaN,
    p50: median(sorted),
    p90: at(90),
    p99: at(99),
    max: n ? sorted[n - 1] : NaN,
    mean: n ? sorted.reduce((a, b) => a + b, 0) / n : NaN,
  };
}

/** Rounds for JSON: keeps 4 significant digits (benchmarks on a shared machine carry no more). */
export function sig(x: number, digits = 4): number {
  if (!Number.isFinite(x) || x === 0) return x;
  return Number(x.toPrecision(digits));
}

/** Rounds every number of a summary for JSON. */
export function sigSummary(s: Summary): Summary {
  return { n: s.n, min: sig(s.min), p50: sig(s.p50), p90: sig(s.p90), p99: sig(s.p99), max: sig(s.max), mean: sig(s.mean) };
}

/** A deterministic PRNG (mulberry32), so "mixed weights" and flow sets are the same in every run. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
