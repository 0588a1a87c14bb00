// The scheduler registry: every IPVS scheduler by name, its data-plane id (enum xdpvs_sched in
// bpf/xdpvs_shared.h: update both), what it means, the flags it takes, and how its schedule table is built.
//
// A schedule table holds indices into the list of destinations given to buildSchedule. Ring schedulers (rr,
// wrr) are stepped through by an atomic counter in the data plane; hash schedulers (mh) are indexed by a flow
// hash. Schedulers of kind 'unsupported' are known names whose data-plane side is not written yet.

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

export type SchedulerKind = 'ring' | 'hash' | 'unsupported';

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
  info('mh', 2, 'hash', 'Maglev Hashing: weighted consistent hash of the source address (and port)', ['mh-port']),
  info('sh', 3, 'unsupported', 'Source Hashing: a real server by hash of the source address (and port)', ['sh-port']),
  info('dh', 4, 'unsupported', 'Destination Hashing: a real server by hash of the destination address'),
  info('lc', 5, 'unsupported', 'Least-Connection: the real server with the fewest active connections'),
  info('wlc', 6, 'unsupported', 'Weighted Least-Connection: the fewest active connections relative to weight'),
  info('sed', 7, 'unsupported', 'Shortest Expected Delay: the smallest (active connections + 1) / weight'),
  info('nq', 8, 'unsupported', 'Never Queue: an idle real server if there is one, else shortest expected delay'),
  info('lblc', 9, 'unsupported', 'Locality-Based Least-Connection: one server per destination address'),
  info('lblcr', 10, 'unsupported', 'Locality-Based Least-Connection with Replication: a server set per destination'),
  info('fo', 11, 'unsupported', 'Weighted Failover: the available real server with the highest weight'),
  info('ovf', 12, 'unsupported', 'Weighted Overflow: the heaviest server until its connections exceed its weight'),
]);

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
 * The schedule table of `dests` for a ring or hash scheduler, as indices into `dests`:
 * rr: each destination with weight > 0 once, in input order; wrr: one IPVS wrr cycle (see wrr.ts);
 * mh: the weighted Maglev table of `maglevSize` slots (see maglev.ts). No destination with weight > 0 gives an
 * empty table. Errors as parseScheduler, and XDPVS_ERR_INVALID for a bad weight or key.
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
    default:
      // parseScheduler let through a kind this switch does not build: a registry entry without a builder.
      throw new XdpvsError(ErrorCode.Internal, `no schedule builder for scheduler "${s.name}"`);
  }
}
