// Weighted Maglev lookup table (Eisenbud et al., "Maglev: A Fast and Reliable Software Network Load Balancer",
// NSDI 2016), built in the control plane and written whole to the data plane.
//
// Each backend has a permutation of the table's slots, offset + j * skip (mod M), with offset and skip taken
// from two hashes of its key (jhash over the key's UTF-8 bytes with two seeds), as in the paper. Backends take
// turns claiming the next free slot of their own permutation until the table is full. Weights follow Katran's
// weighted variant: every round each backend adds its weight to a credit and takes a turn whenever the credit
// reaches the largest weight (then pays the largest weight back), so a backend of weight w takes w / max turns
// per round and ends with a share of the slots within a slot or so of w / sum(w). Weight 0 takes no turn.
//
// Determinism: the table depends only on the set of (key, weight) pairs and the size, never on the order of the
// input. Within a round, turns go in the order of the keys (compared by UTF-16 code units, not by locale), so
// two directors with the same configuration build the same table whatever order their backends were added in.
// The result holds indices into the input array, so callers keep their own numbering.
//
// Cost: O(M + N) to plan the turns (see turnSequence; the N x M permutation matrix is never built) plus the
// probing of the fill, about M ln M steps in all.

import { ErrorCode, XdpvsError } from '../errors.js';
import { jhash } from './jhash.js';

/** The table size used unless a service asks for another: a prime, as Maglev needs. */
export const MAGLEV_DEFAULT_SIZE = 65537;
/** Largest table size accepted: bounds memory and time, and keeps the turn arithmetic below 2^53. */
export const MAGLEV_MAX_SIZE = 1 << 20;
/** Seeds of the two key hashes. Changing either changes every table: directors of one cluster must agree. */
export const MAGLEV_OFFSET_SEED = 0x4d41474c; // "MAGL"
export const MAGLEV_SKIP_SEED = 0x45563031; // "EV01"

/** Largest weight accepted: IPVS keeps weights in a signed 32-bit int. */
const MAX_WEIGHT = 0x7fffffff;

export interface MaglevBackend {
  /** Stable identity of the backend, e.g. "198.18.0.10:80": the same on every director. */
  readonly key: string;
  /** 0 takes no slot. */
  readonly weight: number;
}

function invalid(message: string): XdpvsError {
  return new XdpvsError(ErrorCode.Invalid, message);
}

/** Whether n is a prime (trial division; fine for table sizes). */
export function isPrime(n: number): boolean {
  if (!Number.isSafeInteger(n) || n < 2) return false;
  if (n % 2 === 0) return n === 2;
  for (let d = 3; d * d <= n; d += 2) if (n % d === 0) return false;
  return true;
}

/** Throws XDPVS_ERR_INVALID unless `size` can be a Maglev table size: a prime in 2..MAGLEV_MAX_SIZE. */
export function checkMaglevSize(size: number): void {
  if (!Number.isSafeInteger(size) || size < 2 || size > MAGLEV_MAX_SIZE) {
    throw invalid(`invalid Maglev table size ${size} (expected a prime in 2..${MAGLEV_MAX_SIZE})`);
  }
  if (!isPrime(size)) throw invalid(`invalid Maglev table size ${size}: not a prime`);
}

const utf8 = new TextEncoder();
let keyBuf = new Uint8Array(256);

/** The slot where a key's permutation starts and its step, for a table of `size` slots. */
export function maglevPermutation(key: string, size: number): { offset: number; skip: number } {
  // encodeInto a reused buffer: a fresh Uint8Array per key costs more than both hashes together.
  if (keyBuf.length < key.length * 3) keyBuf = new Uint8Array(key.length * 3);
  const bytes = keyBuf.subarray(0, utf8.encodeInto(key, keyBuf).written);
  return {
    offset: jhash(bytes, MAGLEV_OFFSET_SEED) % size,
    skip: (jhash(bytes, MAGLEV_SKIP_SEED) % (size - 1)) + 1,
  };
}

/** ceil(a / b) for non-negative integers below 2^53, exact (float division alone can be off by one). */
function ceilDiv(a: number, b: number): number {
  let q = Math.ceil(a / b);
  while (q * b < a) q++;
  while (q > 0 && (q - 1) * b >= a) q--;
  return q;
}

/**
 * The order in which backends (indexed in key order) take their turns: at least `size` entries. In Katran's
 * scheme each round every backend adds its weight to a credit and takes a turn when the credit reaches maxW,
 * so backend j's k-th turn (k = 1, 2, ...) falls in round ceil(k * maxW / w_j) - 1, and turns of one round go
 * in key order. Two ways to list them, with the same result:
 *  - Katran's loop itself, round by round over every backend: cheap when the weights are close (each round
 *    gives nearly n turns);
 *  - when a few heavy backends would make most rounds idle for the rest (say one weight 1000 among weight 1),
 *    a counting sort of all turns by round, in O(size + n).
 */
function turnSequence(weight: Float64Array, maxW: number, sumW: number, size: number): Uint32Array {
  const n = weight.length;
  // By the end of round R - 1 backend j has had floor(R * w_j / maxW) > R * w_j / maxW - 1 turns, so R rounds
  // with R = ceil((size + n) * maxW / sumW) hold at least `size` turns (and fewer than size + 2n or so).
  const rounds = ceilDiv((size + n) * maxW, sumW);

  if (n * rounds <= 2 * (size + n)) {
    const seq = new Uint32Array(size);
    const credit = new Float64Array(n);
    let t = 0;
    for (let r = 0; r < rounds; r++) {
      for (let j = 0; j < n; j++) {
        const c = credit[j] + weight[j];
        if (c >= maxW) {
          credit[j] = c - maxW;
          seq[t++] = j;
          if (t === size) return seq;
        } else {
          credit[j] = c;
        }
      }
    }
    throw new XdpvsError(ErrorCode.Internal, 'Maglev: fewer turns than slots'); // unreachable, see `rounds`
  }

  const turns = new Uint32Array(n);
  let total = 0;
  for (let j = 0; j < n; j++) {
    // floor(rounds * w_j / maxW), exactly.
    let k = Math.floor((rounds * weight[j]) / maxW);
    while (k * maxW > rounds * weight[j]) k--;
    while ((k + 1) * maxW <= rounds * weight[j]) k++;
    turns[j] = k;
    total += k;
  }
  // Two passes over every backend's turns: count them per round, then place them (recomputing a turn's round
  // is cheaper than storing it). k * maxW is carried as q * w_j + rem (0 <= rem < w_j) and stepped by additions:
  // exact integer arithmetic, no division per turn.
  const start = new Uint32Array(rounds + 1);
  const seq = new Uint32Array(total);
  for (let pass = 0; pass < 2; pass++) {
    for (let j = 0; j < n; j++) {
      const w = weight[j];
      const stepQ = Math.floor(maxW / w);
      const stepR = maxW - stepQ * w;
      let q = 0;
      let rem = 0;
      for (let k = turns[j]; k > 0; k--) {
        q += stepQ;
        rem += stepR;
        if (rem >= w) {
          rem -= w;
          q++;
        }
        const r = rem > 0 ? q : q - 1; // ceil(k * maxW / w) - 1 for this turn's k
        if (pass === 0) start[r + 1]++;
        else seq[start[r]++] = j;
      }
    }
    if (pass === 0) for (let r = 1; r <= rounds; r++) start[r] += start[r - 1];
  }
  return seq;
}

/**
 * The Maglev table: `size` slots, each the index (into `backends`) of the backend it sends flows to.
 * `size` must be a prime. No backend with a positive weight (including no backend at all) gives an empty table.
 * Keys must be unique and non-empty, weights integers in 0..2^31-1 (else XDPVS_ERR_INVALID).
 */
export function buildMaglevTable(
  backends: readonly MaglevBackend[],
  size: number = MAGLEV_DEFAULT_SIZE,
): Uint32Array {
  checkMaglevSize(size);
  const seen = new Set<string>();
  backends.forEach((b, i) => {
    if (typeof b.key !== 'string' || b.key === '') throw invalid(`backend ${i} has an empty key`);
    if (seen.has(b.key)) throw invalid(`duplicate backend key "${b.key}"`);
    seen.add(b.key);
    if (!Number.isInteger(b.weight) || b.weight < 0 || b.weight > MAX_WEIGHT) {
      throw invalid(`invalid weight ${b.weight} for backend "${b.key}" (expected an integer in 0..${MAX_WEIGHT})`);
    }
  });

  // Turn order within a round: by key. `order[j]` is an input index; everything below is indexed by j.
  const order = backends
    .map((_, i) => i)
    .filter((i) => backends[i].weight > 0)
    .sort((x, y) => (backends[x].key < backends[y].key ? -1 : 1));
  const n = order.length;
  if (n === 0) return new Uint32Array(0);

  const weight = new Float64Array(n);
  const pos = new Uint32Array(n);
  const skip = new Uint32Array(n);
  let maxW = 0;
  let sumW = 0;
  for (let j = 0; j < n; j++) {
    const b = backends[order[j]];
    weight[j] = b.weight;
    maxW = Math.max(maxW, b.weight);
    sumW += b.weight;
    const p = maglevPermutation(b.key, size);
    pos[j] = p.offset;
    skip[j] = p.skip;
  }

  const seq = turnSequence(weight, maxW, sumW, size);

  // Fill: each turn claims the next free slot of the backend's permutation. Probing reads a byte map (64 KiB
  // for the default size, cache friendly) rather than the table.
  const table = new Uint32Array(size);
  const taken = new Uint8Array(size);
  for (let t = 0; t < size; t++) {
    const j = seq[t];
    let p = pos[j];
    const s = skip[j];
    while (taken[p] !== 0) {
      p += s;
      p -= size & ((size - 1 - p) >> 31); // if (p >= size) p -= size, without a branch (p < 2^21)
    }
    taken[p] = 1;
    table[p] = order[j];
    p += s;
    pos[j] = p >= size ? p - size : p;
  }
  return table;
}

/**
 * Fraction of slots (0..1) whose backend differs between two tables of the same size. Tables built from
 * different backend lists number their backends differently: pass each table's backend keys (`aKeys[i]` is the
 * key of index i in `a`) to compare by key instead of by index. An empty table against a non-empty one is 1.
 */
export function maglevDisruption(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  aKeys?: readonly string[],
  bKeys?: readonly string[],
): number {
  if (a.length === 0 && b.length === 0) return 0;
  if (a.length === 0 || b.length === 0) return 1;
  if (a.length !== b.length) throw invalid(`cannot compare Maglev tables of ${a.length} and ${b.length} slots`);
  if ((aKeys === undefined) !== (bKeys === undefined)) throw invalid('pass the keys of both tables or of neither');
  let differ = 0;
  for (let i = 0; i < a.length; i++) {
    const same = aKeys && bKeys ? aKeys[a[i]] === bKeys[b[i]] : a[i] === b[i];
    if (!same) differ++;
  }
  return differ / a.length;
}
