// IPVS's rate estimator (net/netfilter/ipvs/ip_vs_est.c) over the data plane's counters: every 2 s, per service
// and real server, an exponentially weighted average of connections, packets and bytes per second.
//
// The kernel keeps each average in fixed point, "scaled by 2^10" for connections and packets and "by 2^5" for
// bytes, and takes the difference of the counters over the 2 s period already halved by shifting one bit less:
//
//     rate = (now - last) << 9          (bytes: << 4)
//     avg += (rate - avg) >> 2          avgrate = avgrate*(1-W) + rate*W, W = 2^-2
//     shown = (avg + 0x1FF) >> 10       (bytes: (avg + 0xF) >> 5)
//
// The arithmetic here is the same, in 64-bit signed integers (BigInt), so `xdpvsadm -L --rate` prints what
// `ipvsadm -L --rate` would for the same counters. Sample it every ESTIMATOR_INTERVAL_MS.

import type { Counters, Rates } from './model.js';

/** IPVS samples every 2 seconds (its estimation timer, now kthread ticks, run each estimator once per 2 s). */
export const ESTIMATOR_INTERVAL_MS = 2000;

const FIELDS = ['conns', 'inpkts', 'outpkts', 'inbytes', 'outbytes'] as const;
type Field = (typeof FIELDS)[number];

/** Left shift of a 2-second difference: << 9 is "scaled by 2^10, but divided 2 seconds", << 4 the same for 2^5. */
const SHIFT: Record<Field, bigint> = { conns: 9n, inpkts: 9n, outpkts: 9n, inbytes: 4n, outbytes: 4n };

interface Estimate {
  last: Record<Field, bigint>;
  avg: Record<Field, bigint>;
}

function counters(c: Counters): Record<Field, bigint> {
  const out = {} as Record<Field, bigint>;
  for (const f of FIELDS) out[f] = BigInt(Math.max(0, Math.trunc(c[f] ?? 0)));
  return out;
}

function zeros(): Record<Field, bigint> {
  return { conns: 0n, inpkts: 0n, outpkts: 0n, inbytes: 0n, outbytes: 0n };
}

export const ZERO_RATES: Readonly<Rates> = Object.freeze({ cps: 0, inpps: 0, outpps: 0, inbps: 0, outbps: 0 });

/** ip_vs_read_estimator(): the averages, rounded, in connections, packets and bytes per second. */
function decode(avg: Record<Field, bigint>): Rates {
  const pps = (v: bigint) => Number((v + 0x1ffn) >> 10n);
  const bps = (v: bigint) => Number((v + 0xfn) >> 5n);
  return { cps: pps(avg.conns), inpps: pps(avg.inpkts), outpps: pps(avg.outpkts), inbps: bps(avg.inbytes), outbps: bps(avg.outbytes) };
}

/**
 * Rate estimators by key (one per service and real server). `sample()` runs one estimation tick over every
 * counter set given and forgets the keys not given (removed services and real servers).
 */
export class RateEstimator {
  private readonly estimates = new Map<string, Estimate>();

  /**
   * One tick (every ESTIMATOR_INTERVAL_MS). A key seen for the first time starts from its current counters with
   * zero rates, as ip_vs_zero_estimator() leaves an estimator: counters read when the daemon (re)starts are
   * history, not traffic of the last 2 s. Counters that went backwards (zeroed, or a reused slot) start over
   * the same way.
   */
  sample(current: Iterable<readonly [key: string, counters: Counters]>): void {
    const seen = new Set<string>();
    for (const [key, c] of current) {
      seen.add(key);
      const now = counters(c);
      const e = this.estimates.get(key);
      if (!e || FIELDS.some((f) => now[f] < e.last[f])) {
        this.estimates.set(key, { last: now, avg: zeros() });
        continue;
      }
      for (const f of FIELDS) {
        const rate = (now[f] - e.last[f]) << SHIFT[f];
        e.last[f] = now[f];
        e.avg[f] += (rate - e.avg[f]) >> 2n;
      }
    }
    for (const key of [...this.estimates.keys()]) if (!seen.has(key)) this.estimates.delete(key);
  }

  /** The rates of `key` (zero before its second sample). */
  read(key: string): Rates {
    const e = this.estimates.get(key);
    return e ? decode(e.avg) : { ...ZERO_RATES };
  }

  /** ip_vs_zero_estimator() after the counters of `key` were zeroed: rates 0, next difference from 0. */
  zero(key: string): void {
    if (this.estimates.has(key)) this.estimates.set(key, { last: zeros(), avg: zeros() });
  }
}
