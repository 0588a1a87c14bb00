// IPVS round robin / weighted round robin cycles, against hand-derived sequences and a step-by-step copy of the
// kernel's ip_vs_wrr_schedule().
import { describe, expect, it } from 'vitest';
import { fitWeights, MAX_RING, rrSequence, weightGcd, wrrCycleLength, wrrSequence } from '../../src/lb/wrr.js';
import { isXdpvsError } from '../../src/errors.js';

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    return isXdpvsError(e) ? e.code : `not an XdpvsError: ${String(e)}`;
  }
  return undefined;
}

/**
 * The kernel's net/netfilter/ipvs/ip_vs_wrr.c, call by call: ip_vs_wrr_init_svc (cl = list head, di = gcd or 1,
 * mw = max - (di - 1), cw = mw) and ip_vs_wrr_schedule with its last_pass/restarted/stop bookkeeping. No
 * destination is overloaded. HEAD (-1) is the list head; list_for_each_entry_continue walks from cl + 1 to the
 * end and leaves the cursor at the head.
 */
function kernelWrr(weights: number[]): () => number | null {
  const HEAD = -1;
  const positive = weights.filter((w) => w > 0);
  let g = 0;
  for (const w of positive) {
    let a = w;
    let b = g;
    while (b) [a, b] = [b, a % b];
    g = a;
  }
  const di = g || 1;
  const mw = Math.max(0, ...weights) - (di - 1);
  const mark = { cl: HEAD, cw: mw, mw, di };
  return () => {
    let dest = mark.cl;
    let stop: number | null = null;
    let lastPass = false;
    let restarted = false;
    if (mark.mw === 0) return null;
    const last = dest;
    for (;;) {
      for (dest = dest + 1; dest < weights.length; dest++) {
        if (weights[dest] >= mark.cw) {
          mark.cl = dest;
          return dest;
        }
        if (dest === stop) return null;
      }
      dest = HEAD;
      mark.cw -= mark.di;
      if (mark.cw <= 0) {
        mark.cw = mark.mw;
        if (lastPass || last === HEAD) return null;
        restarted = true;
      }
      lastPass = mark.cw <= mark.di;
      if (lastPass && restarted && last !== HEAD) stop = last;
    }
  };
}

function counts(seq: number[], n: number): number[] {
  const c = new Array<number>(n).fill(0);
  for (const i of seq) c[i]++;
  return c;
}

describe('wrrSequence', () => {
  it('3,1 -> 0,0,0,1', () => {
    expect(wrrSequence([3, 1])).toEqual([0, 0, 0, 1]);
  });

  it('4,3,2 -> the IPVS sequence', () => {
    // By hand from ip_vs_wrr.c: di = 1, mw = 4, cw = 4, cl = head.
    //   cw 4: dest 0 (4 >= 4); 1 (3) and 2 (2) fail; end of list, cw = 3
    //   cw 3: 0, 1;            2 fails; cw = 2
    //   cw 2: 0, 1, 2;         cw = 1
    //   cw 1: 0, 1, 2;         cw = 0 <= 0 -> cw = mw = 4: the cycle starts over
    expect(wrrSequence([4, 3, 2])).toEqual([0, 0, 1, 0, 1, 2, 0, 1, 2]);
  });

  it('puts a heavier later destination first, as IPVS does', () => {
    // 1,3: cw 3 -> 1; cw 2 -> 1; cw 1 -> 0, 1
    expect(wrrSequence([1, 3])).toEqual([1, 1, 0, 1]);
  });

  it('normalises by the gcd', () => {
    expect(wrrSequence([6, 2])).toEqual([0, 0, 0, 1]);
    expect(wrrSequence([8, 6, 4])).toEqual(wrrSequence([4, 3, 2]));
    expect(wrrSequence([300, 100])).toEqual([0, 0, 0, 1]);
    expect(wrrSequence([5, 5, 5])).toEqual([0, 1, 2]);
    expect(weightGcd([8, 0, 6, 4])).toBe(2);
    expect(wrrCycleLength([8, 0, 6, 4])).toBe(9);
  });

  it('never picks weight 0; all zero (or nothing) gives an empty cycle', () => {
    expect(wrrSequence([2, 0, 1])).toEqual([0, 0, 2]);
    expect(wrrSequence([0, 0])).toEqual([]);
    expect(wrrSequence([])).toEqual([]);
    expect(wrrCycleLength([0, 0])).toBe(0);
  });

  it('is one cycle of the kernel scheduler, which then repeats it', () => {
    let seed = 7;
    const rand = (n: number) => {
      seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
      return (seed >>> 8) % n;
    };
    const cases: number[][] = [[3, 1], [4, 3, 2], [1, 3], [2, 0, 1], [0, 5, 0, 5], [6, 4, 2], [1], [7, 7, 7, 1]];
    for (let i = 0; i < 300; i++) {
      const n = 1 + rand(8);
      const scale = 1 + rand(4);
      cases.push(Array.from({ length: n }, () => (rand(5) === 0 ? 0 : (1 + rand(12)) * scale)));
    }
    for (const weights of cases) {
      const seq = wrrSequence(weights);
      const next = kernelWrr(weights);
      const fromKernel = Array.from({ length: 2 * seq.length }, next);
      if (seq.length === 0) {
        expect(next(), String(weights)).toBeNull();
        continue;
      }
      expect(fromKernel.slice(0, seq.length), String(weights)).toEqual(seq);
      expect(fromKernel.slice(seq.length), String(weights)).toEqual(seq);
      const g = weightGcd(weights);
      expect(counts(seq, weights.length), String(weights)).toEqual(weights.map((w) => w / g));
    }
  });

  it('rejects weights that are not integers >= 0', () => {
    for (const bad of [[-1], [1.5], [NaN], [Infinity]]) {
      expect(codeOf(() => wrrSequence(bad)), String(bad)).toBe('XDPVS_ERR_INVALID');
    }
  });
});

describe('ring length guard', () => {
  it('keeps cycles that fit unchanged', () => {
    expect(fitWeights([3, 1], 4)).toEqual([3, 1]);
    expect(wrrSequence([3, 1], 4)).toEqual([0, 0, 0, 1]);
    expect(MAX_RING).toBe(1 << 20);
  });

  it('scales weights down proportionally, every positive weight staying >= 1', () => {
    const w = fitWeights([1000, 500, 1, 0], 100);
    expect(w[3]).toBe(0);
    expect(w[2]).toBe(1);
    expect(w[0] + w[1] + w[2]).toBeLessThanOrEqual(100);
    expect(w[0]).toBeGreaterThanOrEqual(60); // the largest scale that fits, not just any
    expect(w[0] / w[1]).toBeCloseTo(2, 1);
    const seq = wrrSequence([1000, 500, 1, 0], 100);
    expect(seq.length).toBeLessThanOrEqual(100);
    expect(counts(seq, 4)).toEqual(w);
  });

  it('fits realistic large weights into MAX_RING with their ratios', () => {
    // 20 real servers with ipvsadm's largest weights: sum / gcd is about 1.3 million.
    const weights = Array.from({ length: 20 }, (_, i) => 65535 - i);
    expect(wrrCycleLength(weights)).toBeGreaterThan(MAX_RING);
    const seq = wrrSequence(weights);
    expect(seq.length).toBeLessThanOrEqual(MAX_RING);
    expect(seq.length).toBeGreaterThan(MAX_RING * 0.99);
    const c = counts(seq, 20);
    const total = weights.reduce((a, b) => a + b, 0);
    c.forEach((n, i) => expect(Math.abs(n / seq.length - weights[i] / total)).toBeLessThan(1e-5));
  });

  it('keeps a weight-1 destination in a ring dominated by a huge one', () => {
    const seq = wrrSequence([2 ** 40, 1]);
    expect(seq.length).toBeLessThanOrEqual(MAX_RING);
    expect(counts(seq, 2)[1]).toBe(1);
  });

  it('refuses more positive weights than ring entries with XDPVS_ERR_CAPACITY', () => {
    expect(codeOf(() => wrrSequence([1, 2, 3, 4, 5], 4))).toBe('XDPVS_ERR_CAPACITY');
  });
});

describe('rrSequence', () => {
  it('is every destination once, in order', () => {
    expect(rrSequence(3)).toEqual([0, 1, 2]);
    expect(rrSequence(0)).toEqual([]);
    expect(rrSequence(4)).toEqual(wrrSequence([1, 1, 1, 1]));
    expect(codeOf(() => rrSequence(-1))).toBe('XDPVS_ERR_INVALID');
    expect(codeOf(() => rrSequence(MAX_RING + 1))).toBe('XDPVS_ERR_CAPACITY');
  });
});
