// The scheduler registry: every IPVS scheduler by name, its data-plane id (enum xdpvs_sched in
// bpf/xdpvs_shared.h: update both), what it means, the flags it takes, and how its schedule table is built.
//
// A schedule table holds indices into the list of destinations given to buildSchedule. Ring schedulers (rr,
// wrr) are stepped through by an atomic counter in the data plane; hash schedulers (mh, sh, dh) are indexed by a
// flow hash; the count-reading schedulers (lc, wlc, sed, nq, fo, ovf) and the locality ones (lblc, lblcr) walk
// their table, which lists the candidates once each in IPVS's list order (bpf/sched_lc.h). docs/schedulers.md
// says how each one is realised and where it differs from IPVS.

import { ErrorCode, XdpvsError } from '../errors.js';
import { buildMaglevTable, MAGLEV_DEFAULT_SIZE } from './maglev.js';
import { MAX_RING, rrSequence, wrrSequence } from './wrr.js';

export type SchedulerName =
  | 'rr'
  | 'wrr'
  | 'mh'
  | 'sh'
  | 'dh'
  | 'lc'
  | 'wlc'
  | 'sed'
  | 'nq'
  | 'lblc'
  | 'lblcr'
  | 'fo'
  | 'ovf';

/** 'unsupported': a known name whose data-plane side is not written (none today). */
export type SchedulerKind = 'ring' | 'hash' | 'count' | 'locality' | 'unsupported';

export interface SchedulerInfo {
  readonly name: SchedulerName;
  /** enum xdpvs_sched */
  readonly id: number;
  readonly kind: SchedulerKind;
  /** What IPVS does with it, in one line. */
  readonly description: string;
  /** Scheduler flags (ipvsadm -b) this version accepts for it. */
  readonly flags: readonly string[];
}

export interface ScheduleDest {
  /** Stable identity of the destination, e.g. "198.18.0.10:80" (Maglev derives its permutation from it). */
  readonly key: string;
  readonly weight: number;
}

const info = (
  name: SchedulerName,
  id: number,
  kind: SchedulerKind,
  description: string,
  flags: readonly string[] = [],
): SchedulerInfo => Object.freeze({ name, id, kind, description, flags: Object.freeze([...flags]) });

/** Every IPVS scheduler, in data-plane id order. */
export const SCHEDULERS: readonly SchedulerInfo[] = Object.freeze([
  info('rr', 0, 'ring', 'Round Robin: new connections go to each real server in turn'),
  info('wrr', 1, 'ring', 'Weighted Round Robin: each real server in turn, as many times per cycle as its weight'),
  info('mh', 2, 'hash', 'Maglev Hashing: weighted consistent hash of the source address (and port)', ['mh-port', 'mh-fallback']),
  info('sh', 3, 'hash', 'Source Hashing: a real server by hash of the source address (and port)', ['sh-port', 'sh-fallback']),
  info('dh', 4, 'hash', 'Destination Hashing: a real server by hash of the destination address'),
  info('lc', 5, 'count', 'Least-Connection: the least active * 256 + inactive connections'),
  info('wlc', 6, 'count', 'Weighted Least-Connection: the least (active * 256 + inactive) / weight'),
  info('sed', 7, 'count', 'Shortest Expected Delay: the smallest (active connections + 1) / weight'),
  info('nq', 8, 'count', 'Never Queue: an idle real server if there is one, else shortest expected delay'),
  info('lblc', 9, 'locality', 'Locality-Based Least-Connection: one server per destination address'),
  info('lblcr', 10, 'locality', 'Locality-Based Least-Connection with Replication: a server set per destination'),
  info('fo', 11, 'count', 'Weighted Failover: the available real server with the highest weight'),
  info('ovf', 12, 'count', 'Weighted Overflow: the heaviest server until its connections exceed its weight'),
]);

/** IPVS's sh and dh table size (IP_VS_SH_TAB_BITS, IP_VS_DH_TAB_BITS = 8). */
export const HASH_TABLE_SIZE = 256;
/** XDPVS_LC_MAX_DESTS: most candidates of a count-reading or locality scheduler (one bpf_loop walks them). */
export const LC_MAX_DESTS = 1024;

/** All scheduler names, in data-plane id order. */
export const SCHEDULER_NAMES: readonly SchedulerName[] = Object.freeze(SCHEDULERS.map((s) => s.name));

const byName = new Map<string, SchedulerInfo>(SCHEDULERS.map((s) => [s.name, s]));

/** The scheduler of that name, or undefined (no error, whatever its kind). */
export function findScheduler(name: string): SchedulerInfo | undefined {
  return byName.get(name);
}

/** The scheduler of a data-plane id (what the `services` map stores); XDPVS_ERR_INVALID for an unknown id. */
export function schedulerById(id: number): SchedulerInfo {
  const s = SCHEDULERS[id];
  if (!Number.isInteger(id) || s === undefined) throw new XdpvsError(ErrorCode.Invalid, `unknown scheduler id ${id}`);
  return s;
}

/**
 * The scheduler a user named, ready to use: XDPVS_ERR_INVALID for a name IPVS does not know (listing the known
 * ones), XDPVS_ERR_UNSUPPORTED for one this version does not implement yet.
 */
export function parseScheduler(name: string): SchedulerInfo {
  const s = typeof name === 'string' ? byName.get(name) : undefined;
  if (s === undefined) {
    throw new XdpvsError(
      ErrorCode.Invalid,
      `unknown scheduler ${JSON.stringify(name)} (known: ${SCHEDULER_NAMES.join(', ')})`,
      { field: 'scheduler' },
    );
  }
  if (s.kind === 'unsupported') {
    const supported = SCHEDULERS.filter((x) => x.kind !== 'unsupported').map((x) => x.name);
    throw new XdpvsError(
      ErrorCode.Unsupported,
      `scheduler "${s.name}" is not supported yet (supported: ${supported.join(', ')})`,
      { field: 'scheduler' },
    );
  }
  return s;
}

/**
 * IPVS's sh table (ip_vs_sh_reassign): HASH_TABLE_SIZE entries filled with the destinations in turn, each taking
 * as many consecutive entries as its weight (a weight of 0 takes one: the data plane refuses it at lookup).
 */
export function shTable(weights: readonly number[]): Uint32Array {
  const out = new Uint32Array(weights.length ? HASH_TABLE_SIZE : 0);
  let p = 0;
  let count = 0;
  for (let i = 0; i < out.length; i++) {
    out[i] = p;
    if (++count >= weights[p]) {
      p = (p + 1) % weights.length;
      count = 0;
    }
  }
  return out;
}

/** IPVS's dh table (ip_vs_dh_reassign): HASH_TABLE_SIZE entries, the destinations in turn, weights ignored. */
export function dhTable(n: number): Uint32Array {
  return Uint32Array.from({ length: n ? HASH_TABLE_SIZE : 0 }, (_, i) => i % n);
}

/** Indices of `dests` in IPVS's list order: it adds each destination at the head of its list. */
function ipvsListOrder(n: number): number[] {
  return Array.from({ length: n }, (_, i) => n - 1 - i);
}

/**
 * The schedule table of `dests` (in the order they were added) as indices into `dests`:
 * rr: each destination with weight > 0 once, in input order; wrr: one IPVS wrr cycle (see wrr.ts);
 * mh: the weighted Maglev table of `maglevSize` slots (see maglev.ts); sh: IPVS's 256-entry weighted table and
 * dh its unweighted one, over every destination in IPVS's list order (weight 0 included: refused at lookup, or
 * skipped by sh-fallback); count and locality schedulers: each destination with weight > 0 once, in IPVS's list
 * order (newest first: the order their walk breaks ties in). No destination with weight > 0 gives an empty table.
 * Errors as parseScheduler, XDPVS_ERR_INVALID for a bad weight or key, XDPVS_ERR_CAPACITY beyond LC_MAX_DESTS
 * candidates for a count or locality scheduler.
 */
export function buildSchedule(
  name: string,
  dests: readonly ScheduleDest[],
  opts: { maglevSize?: number } = {},
): Uint32Array {
  const s = parseScheduler(name);
  dests.forEach((d, i) => {
    if (!Number.isSafeInteger(d.weight) || d.weight < 0) {
      const msg = `invalid weight ${d.weight} for destination ${i} (expected an integer >= 0)`;
      throw new XdpvsError(ErrorCode.Invalid, msg, { field: 'weight' });
    }
  });
  if (!dests.some((d) => d.weight > 0)) return new Uint32Array(0);
  switch (s.name) {
    case 'rr': {
      const live: number[] = [];
      dests.forEach((d, i) => {
        if (d.weight > 0) live.push(i);
      });
      return Uint32Array.from(rrSequence(live.length), (k) => live[k]);
    }
    case 'wrr':
      return Uint32Array.from(wrrSequence(dests.map((d) => d.weight), MAX_RING));
    case 'mh':
      return buildMaglevTable(dests, opts.maglevSize ?? MAGLEV_DEFAULT_SIZE);
    case 'sh': {
      const order = ipvsListOrder(dests.length);
      return Uint32Array.from(shTable(order.map((i) => dests[i].weight)), (k) => order[k]);
    }
    case 'dh': {
      const order = ipvsListOrder(dests.length);
      return Uint32Array.from(dhTable(order.length), (k) => order[k]);
    }
    default: {
      if (s.kind !== 'count' && s.kind !== 'locality') {
        // parseScheduler let through a kind this switch does not build: a registry entry without a builder.
        throw new XdpvsError(ErrorCode.Internal, `no schedule builder for scheduler "${s.name}"`);
      }
      const live = ipvsListOrder(dests.length).filter((i) => dests[i].weight > 0);
      if (live.length > LC_MAX_DESTS) {
        throw new XdpvsError(
          ErrorCode.Capacity,
          `scheduler ${s.name} takes at most ${LC_MAX_DESTS} real servers with weight > 0 per service (it walks them all for each new connection); this service would have ${live.length}`,
        );
      }
      return Uint32Array.from(live);
    }
  }
}
