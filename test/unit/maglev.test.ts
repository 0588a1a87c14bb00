// Weighted Maglev: exact agreement with a plain transcription of the algorithm, weight shares, disruption when
// backends come and go, independence from input order, validation.
import { describe, expect, it } from 'vitest';
import {
  buildMaglevTable,
  checkMaglevSize,
  isPrime,
  MAGLEV_DEFAULT_SIZE,
  MAGLEV_MAX_SIZE,
  MAGLEV_OFFSET_SEED,
  MAGLEV_SKIP_SEED,
  maglevDisruption,
  maglevPermutation,
  type MaglevBackend,
} from '../../src/lb/maglev.js';
import { jhash } from '../../src/lb/jhash.js';
import { isXdpvsError } from '../../src/errors.js';

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    return isXdpvsError(e) ? e.code : `not an XdpvsError: ${String(e)}`;
  }
  return undefined;
}

const key = (i: number) => `198.18.${i >> 8}.${i & 255}:80`;
const equal = (n: number): MaglevBackend[] => Array.from({ length: n }, (_, i) => ({ key: key(i), weight: 1 }));
const keysOf = (bs: readonly MaglevBackend[]) => bs.map((b) => b.key);

function counts(table: Uint32Array, n: number): number[] {
  const c = new Array<number>(n).fill(0);
  for (const i of table) c[i]++;
  return c;
}

/**
 * The algorithm written out plainly, as a reader of the paper and of Katran's MaglevV2 would: permutation
 * (offset + j * skip) mod M from two seeded jhashes of the key, backends in key order, every round each one adds
 * its weight to a credit and claims its next free slot when the credit reaches the largest weight.
 */
function reference(backends: MaglevBackend[], M: number): number[] {
  const utf8 = new TextEncoder();
  const live = backends
    .map((b, i) => ({ ...b, i }))
    .filter((b) => b.weight > 0)
    .sort((x, y) => (x.key < y.key ? -1 : x.key > y.key ? 1 : 0));
  if (live.length === 0) return [];
  const offset = live.map((b) => jhash(utf8.encode(b.key), MAGLEV_OFFSET_SEED) % M);
  const skip = live.map((b) => (jhash(utf8.encode(b.key), MAGLEV_SKIP_SEED) % (M - 1)) + 1);
  const next = live.map(() => 0);
  const credit = live.map(() => 0);
  const maxW = Math.max(...live.map((b) => b.weight));
  const table = new Array<number>(M).fill(-1);
  let filled = 0;
  for (;;) {
    for (let j = 0; j < live.length; j++) {
      credit[j] += live[j].weight;
      if (credit[j] < maxW) continue;
      credit[j] -= maxW;
      let c: number;
      do {
        c = (offset[j] + next[j] * skip[j]) % M;
        next[j]++;
      } while (table[c] >= 0);
      table[c] = live[j].i;
      if (++filled === M) return table;
    }
  }
}

describe('buildMaglevTable', () => {
  it('is exactly the plain algorithm, for equal, graded, skewed and random weights', () => {
    let seed = 99;
    const rand = (n: number) => {
      seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
      return (seed >>> 8) % n;
    };
    const cases: [MaglevBackend[], number][] = [
      [equal(10), MAGLEV_DEFAULT_SIZE],
      [equal(3), 13],
      [equal(20), 7], // more backends than slots: some get none
      [equal(10).map((b, i) => ({ ...b, weight: i + 1 })), MAGLEV_DEFAULT_SIZE],
      // One heavy backend among light ones: most rounds are idle for the light ones (the counting-sort path).
      [equal(50).map((b, i) => ({ ...b, weight: i === 0 ? 1000 : 1 })), MAGLEV_DEFAULT_SIZE],
      [equal(5).map((b, i) => ({ ...b, weight: [65535, 1, 0, 7, 65535][i] })), 10007],
      [equal(200).map((b) => ({ ...b, weight: rand(4) === 0 ? 0 : 1 + rand(100) })), 10007],
      [equal(30).map((b) => ({ ...b, weight: 1 + rand(3) })), 1009],
      [[{ key: 'only', weight: 5 }], 2],
    ];
    for (const [backends, size] of cases) {
      expect(Array.from(buildMaglevTable(backends, size)), `${backends.length} backends, size ${size}`).toEqual(
        reference(backends, size),
      );
    }
  });

  it('is stable across versions for a fixed configuration (directors of one cluster must agree)', () => {
    // Produced by this implementation; a change here changes every director's table.
    const t = buildMaglevTable(
      [
        { key: '198.18.0.10:80', weight: 1 },
        { key: '198.18.0.11:80', weight: 2 },
        { key: '198.18.0.12:80', weight: 1 },
      ],
      13,
    );
    expect(Array.from(t)).toEqual(GOLDEN_13);
  });

  it('gives each backend its weight share within 1%', () => {
    const graded = equal(10).map((b, i) => ({ ...b, weight: i + 1 }));
    for (const backends of [equal(10), equal(7), graded, [{ key: 'a', weight: 3 }, { key: 'b', weight: 1 }]]) {
      const t = buildMaglevTable(backends);
      expect(t.length).toBe(MAGLEV_DEFAULT_SIZE);
      const total = backends.reduce((s, b) => s + b.weight, 0);
      counts(t, backends.length).forEach((n, i) => {
        const want = backends[i].weight / total;
        expect(Math.abs(n / t.length - want), `backend ${i}`).toBeLessThanOrEqual(0.01 * want);
      });
    }
  });

  it('gives every backend its weighted number of slots within 2, even with 1000 backends', () => {
    let seed = 5;
    const rand = (n: number) => {
      seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
      return (seed >>> 8) % n;
    };
    for (const backends of [equal(1000), equal(300).map((b) => ({ ...b, weight: 1 + rand(100) }))]) {
      const t = buildMaglevTable(backends);
      const total = backends.reduce((s, b) => s + b.weight, 0);
      counts(t, backends.length).forEach((n, i) => {
        expect(Math.abs(n - (t.length * backends[i].weight) / total), `backend ${i}`).toBeLessThanOrEqual(2);
      });
    }
  });

  it('gives weight-0 backends no slot and keeps input indices', () => {
    const backends = [
      { key: 'b', weight: 0 },
      { key: 'a', weight: 1 },
      { key: 'c', weight: 1 },
    ];
    const c = counts(buildMaglevTable(backends), 3);
    expect(c[0]).toBe(0);
    expect(c[1] + c[2]).toBe(MAGLEV_DEFAULT_SIZE);
    expect(Array.from(new Set(buildMaglevTable([{ key: 'x', weight: 3 }], 13)))).toEqual([0]);
  });

  it('gives an empty table for no backend, or none with a weight', () => {
    expect(buildMaglevTable([]).length).toBe(0);
    expect(buildMaglevTable([{ key: 'a', weight: 0 }]).length).toBe(0);
  });

  it('depends on the keys, not on the input order', () => {
    const backends = equal(50).map((b, i) => ({ ...b, weight: 1 + (i % 4) }));
    const reversed = [...backends].reverse();
    const rotated = [...backends.slice(17), ...backends.slice(0, 17)];
    const t = buildMaglevTable(backends);
    for (const other of [reversed, rotated]) {
      const u = buildMaglevTable(other);
      expect(maglevDisruption(t, u, keysOf(backends), keysOf(other))).toBe(0);
      expect(Array.from(u, (i) => other[i].key)).toEqual(Array.from(t, (i) => backends[i].key));
    }
    // ... and the keys matter: other keys, other table.
    const renamed = backends.map((b) => ({ ...b, key: `x${b.key}` }));
    const r = buildMaglevTable(renamed);
    expect(maglevDisruption(t, r)).toBeGreaterThan(0.5);
  });

  describe('disruption', () => {
    for (const n of [10, 100]) {
      it(`removing one of ${n} equal backends moves about 1/${n} of the slots, at most 1/${n} + 1%`, () => {
        const backends = equal(n);
        const before = buildMaglevTable(backends);
        for (const gone of [0, Math.floor(n / 2), n - 1]) {
          const after = backends.filter((_, i) => i !== gone);
          const d = maglevDisruption(before, buildMaglevTable(after), keysOf(backends), keysOf(after));
          expect(d).toBeGreaterThanOrEqual(1 / n - 0.001); // the removed backend's slots must move
          expect(d).toBeLessThanOrEqual(1 / n + 0.01);
        }
      });

      it(`adding one to ${n} equal backends moves about 1/${n + 1} of the slots, at most 1/${n + 1} + 1%`, () => {
        const backends = equal(n);
        const before = buildMaglevTable(backends);
        for (const extra of ['198.18.200.1:80', '0.new', 'zzz']) {
          const after = [...backends, { key: extra, weight: 1 }];
          const d = maglevDisruption(before, buildMaglevTable(after), keysOf(backends), keysOf(after));
          expect(d).toBeGreaterThanOrEqual(1 / (n + 1) - 0.001);
          expect(d).toBeLessThanOrEqual(1 / (n + 1) + 0.01);
        }
      });
    }

    it('removing a weighted backend moves about its share', () => {
      const backends = equal(10).map((b, i) => ({ ...b, weight: i + 1 }));
      const after = backends.filter((_, i) => i !== 4);
      const d = maglevDisruption(buildMaglevTable(backends), buildMaglevTable(after), keysOf(backends), keysOf(after));
      expect(d).toBeGreaterThanOrEqual(5 / 55 - 0.001);
      expect(d).toBeLessThanOrEqual(5 / 55 + 0.01);
    });

    it('setting a weight to 0 is the same as removing the backend', () => {
      const backends = equal(10);
      const drained = backends.map((b, i) => (i === 3 ? { ...b, weight: 0 } : b));
      const removed = backends.filter((_, i) => i !== 3);
      expect(
        maglevDisruption(buildMaglevTable(drained), buildMaglevTable(removed), keysOf(drained), keysOf(removed)),
      ).toBe(0);
    });
  });

  it('requires a prime table size', () => {
    for (const size of [65536, 1, 0, -7, 4.5, 9, 65535, NaN, MAGLEV_MAX_SIZE + 1]) {
      expect(codeOf(() => buildMaglevTable(equal(3), size)), String(size)).toBe('XDPVS_ERR_INVALID');
      expect(codeOf(() => buildMaglevTable([], size)), String(size)).toBe('XDPVS_ERR_INVALID');
    }
    expect(() => checkMaglevSize(65536)).toThrow(/not a prime/);
    for (const size of [2, 3, 13, 251, 10007, 65537]) expect(buildMaglevTable(equal(3), size).length).toBe(size);
    expect([2, 3, 5, 65537, 1000003].every(isPrime)).toBe(true);
    expect([0, 1, 4, 9, 65535, 65536, 1000001].some(isPrime)).toBe(false);
  });

  it('rejects bad weights, empty and duplicate keys', () => {
    for (const bad of [-1, 1.5, NaN, Infinity, 2 ** 31]) {
      expect(codeOf(() => buildMaglevTable([{ key: 'a', weight: bad }])), String(bad)).toBe('XDPVS_ERR_INVALID');
    }
    expect(codeOf(() => buildMaglevTable([{ key: '', weight: 1 }]))).toBe('XDPVS_ERR_INVALID');
    expect(() =>
      buildMaglevTable([
        { key: 'a', weight: 1 },
        { key: 'a', weight: 0 },
      ]),
    ).toThrow(/duplicate backend key "a"/);
  });

  it('draws offsets and skips in range', () => {
    for (const size of [2, 13, 65537]) {
      for (let i = 0; i < 100; i++) {
        const { offset, skip } = maglevPermutation(key(i), size);
        expect(offset).toBeGreaterThanOrEqual(0);
        expect(offset).toBeLessThan(size);
        expect(skip).toBeGreaterThanOrEqual(1);
        expect(skip).toBeLessThan(size);
      }
    }
    // Non-ASCII keys hash their UTF-8 bytes.
    const p = maglevPermutation('h\u00e9llo', 65537);
    expect(p.offset).toBe(jhash(new TextEncoder().encode('h\u00e9llo'), MAGLEV_OFFSET_SEED) % 65537);
  });
});

describe('maglevDisruption', () => {
  it('counts differing slots, by index or by key', () => {
    const a = Uint32Array.from([0, 1, 0, 1]);
    const b = Uint32Array.from([0, 1, 1, 1]);
    expect(maglevDisruption(a, a)).toBe(0);
    expect(maglevDisruption(a, b)).toBe(0.25);
    // Same backends numbered differently: no slot moved.
    expect(maglevDisruption(a, Uint32Array.from([1, 0, 1, 0]), ['x', 'y'], ['y', 'x'])).toBe(0);
    expect(maglevDisruption(new Uint32Array(0), new Uint32Array(0))).toBe(0);
    expect(maglevDisruption(new Uint32Array(0), a)).toBe(1);
    expect(codeOf(() => maglevDisruption(a, Uint32Array.from([0, 1])))).toBe('XDPVS_ERR_INVALID');
    expect(codeOf(() => maglevDisruption(a, b, ['x', 'y']))).toBe('XDPVS_ERR_INVALID');
  });
});

// buildMaglevTable of the three backends above into 13 slots (7 for the weight-2 backend, 3 each for the others).
const GOLDEN_13 = [1, 0, 2, 1, 1, 0, 1, 2, 1, 2, 1, 0, 1];
