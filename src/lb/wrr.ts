// IPVS's round robin and weighted round robin as one full cycle of destination indices (a "ring").
//
// The data plane steps an atomic counter through the ring, so a service's picks follow the same order as the
// kernel's ip_vs_wrr.c from a fresh start: mark->cl at the list head (index -1), di = gcd of the weights,
// mw = max weight - (di - 1), cw = mw; each pick continues after cl to the first destination with
// weight >= cw; at the end of the list cw -= di, and when cw <= 0 it starts over at mw. One cycle is therefore,
// for cw = mw, mw - di, ..., down to > 0, every destination (in list order) whose weight is >= cw; its length is
// sum(w) / gcd(w).
//
// The one deviation from IPVS: a ring holds at most MAX_RING entries. When sum(w) / gcd(w) is larger, the
// weights are first scaled down proportionally (every positive weight stays >= 1) until the cycle fits; the
// ratios between destinations then hold only approximately (to about 1 part in MAX_RING / count).

import { ErrorCode, XdpvsError } from '../errors.js';

/** The longest ring a ring scheduler builds. */
export const MAX_RING = 1 << 20;

function gcd(a: number, b: number): number {
  while (b !== 0) [a, b] = [b, a % b];
  return a;
}

function checkWeights(weights: readonly number[]): void {
  weights.forEach((w, i) => {
    if (!Number.isSafeInteger(w) || w < 0) {
      throw new XdpvsError(ErrorCode.Invalid, `invalid weight ${w} at index ${i} (expected an integer >= 0)`);
    }
  });
}

/** gcd of the positive weights, 0 when there are none. */
export function weightGcd(weights: readonly number[]): number {
  return weights.reduce((g, w) => (w > 0 ? gcd(w, g) : g), 0);
}

/** Length of one IPVS wrr cycle: sum(w) / gcd(w) (0 when every weight is 0). */
export function wrrCycleLength(weights: readonly number[]): number {
  const g = weightGcd(weights);
  return g === 0 ? 0 : weights.reduce((s, w) => s + w / g, 0);
}

/**
 * The weights the ring is built from: the input when its cycle fits in `maxRing`; otherwise every weight
 * multiplied by the largest scale s for which the scaled weights, max(1, floor(w * s)) for positive w and 0 for
 * zero, sum to at most `maxRing`. More than `maxRing` positive weights cannot fit: XDPVS_ERR_CAPACITY.
 */
export function fitWeights(weights: readonly number[], maxRing = MAX_RING): number[] {
  checkWeights(weights);
  if (wrrCycleLength(weights) <= maxRing) return [...weights];
  const positive = weights.filter((w) => w > 0).length;
  if (positive > maxRing) {
    throw new XdpvsError(
      ErrorCode.Capacity,
      `${positive} destinations with a weight do not fit in a ring of at most ${maxRing} entries`,
    );
  }
  const g = weightGcd(weights);
  const norm = weights.map((w) => w / g);
  const total = norm.reduce((s, w) => s + w, 0);
  const scaled = (s: number) => norm.map((w) => (w > 0 ? Math.max(1, Math.floor(w * s)) : 0));
  const sum = (ws: number[]) => ws.reduce((a, w) => a + w, 0);
  // The sum is non-decreasing in s; at s = 0 it is `positive` (fits), and above (maxRing + positive) / total it
  // is certainly larger than maxRing (each floor loses less than 1). Bisect between the two.
  let lo = 0;
  let hi = (maxRing + positive) / total;
  for (let i = 0; i < 60; i++) {
    const mid = (lo + hi) / 2;
    if (sum(scaled(mid)) <= maxRing) lo = mid;
    else hi = mid;
  }
  return scaled(lo);
}

/**
 * One full cycle of IPVS wrr over `weights` (indices into it), from the scheduler's initial state.
 * [3, 1] -> [0, 0, 0, 1]; [4, 3, 2] -> [0, 0, 1, 0, 1, 2, 0, 1, 2]; weight 0 never appears; all zero -> [].
 * Cycles longer than `maxRing` are built from scaled weights (see the top of this file).
 */
export function wrrSequence(weights: readonly number[], maxRing = MAX_RING): number[] {
  const w = fitWeights(weights, maxRing);
  const di = weightGcd(w);
  if (di === 0) return [];
  const mw = w.reduce((m, x) => (x > m ? x : m), 0) - (di - 1);
  // Passes where no new destination qualifies repeat the previous pass's list, so the list is rebuilt only
  // when cw drops to another distinct weight: O(cycle + n * distinct weights), not O(passes * n).
  const thresholds = [...new Set(w.filter((x) => x > 0))].sort((a, b) => b - a);
  let t = 0;
  let eligible: number[] = [];
  const out: number[] = [];
  for (let cw = mw; cw > 0; cw -= di) {
    let changed = false;
    while (t < thresholds.length && thresholds[t] >= cw) {
      t++;
      changed = true;
    }
    if (changed) {
      eligible = [];
      for (let i = 0; i < w.length; i++) if (w[i] >= cw) eligible.push(i);
    }
    for (const i of eligible) out.push(i);
  }
  return out;
}

/** One cycle of rr over n destinations: [0, 1, ..., n - 1]. */
export function rrSequence(n: number): number[] {
  if (!Number.isSafeInteger(n) || n < 0) throw new XdpvsError(ErrorCode.Invalid, `invalid destination count ${n}`);
  if (n > MAX_RING) {
    throw new XdpvsError(ErrorCode.Capacity, `${n} destinations do not fit in a ring of at most ${MAX_RING} entries`);
  }
  return Array.from({ length: n }, (_, i) => i);
}
