// The scheduler registry: ids held against bpf/xdpvs_shared.h, kinds, flags, parsing errors, schedule tables.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  LC_MAX_DESTS,
  buildSchedule,
  dhTable,
  findScheduler,
  shTable,
  parseScheduler,
  SCHEDULER_NAMES,
  schedulerById,
  SCHEDULERS,
} from '../../src/lb/schedulers.js';
import { buildMaglevTable } from '../../src/lb/maglev.js';
import { isXdpvsError } from '../../src/errors.js';

function errorOf(fn: () => unknown): { code: string; message: string } | undefined {
  try {
    fn();
  } catch (e) {
    if (isXdpvsError(e)) return { code: e.code, message: e.message };
    throw e;
  }
  return undefined;
}

const dests = (...weights: number[]) => weights.map((weight, i) => ({ key: `198.18.0.${10 + i}:80`, weight }));

describe('registry', () => {
  it('has the ids of enum xdpvs_sched in bpf/xdpvs_shared.h', () => {
    const header = readFileSync(new URL('../../bpf/xdpvs_shared.h', import.meta.url), 'utf8');
    const fromC = [...header.matchAll(/XDPVS_SCHED_([A-Z]+)\s*=\s*(\d+)/g)].map((m) => [
      m[1].toLowerCase(),
      Number(m[2]),
    ]);
    expect(fromC.length).toBe(13);
    expect(SCHEDULERS.map((s) => [s.name, s.id])).toEqual(fromC);
    SCHEDULERS.forEach((s, i) => expect(s.id).toBe(i));
  });

  it('names every IPVS scheduler with a kind and a description', () => {
    const ipvs = ['rr', 'wrr', 'mh', 'sh', 'dh', 'lc', 'wlc', 'sed', 'nq', 'lblc', 'lblcr', 'fo', 'ovf'];
    expect(SCHEDULER_NAMES).toEqual(ipvs);
    const kinds = Object.fromEntries(SCHEDULERS.map((s) => [s.name, s.kind]));
    expect(kinds).toEqual({
      rr: 'ring',
      wrr: 'ring',
      mh: 'hash',
      sh: 'hash',
      dh: 'hash',
      lc: 'count',
      wlc: 'count',
      sed: 'count',
      nq: 'count',
      lblc: 'locality',
      lblcr: 'locality',
      fo: 'count',
      ovf: 'count',
    });
    for (const s of SCHEDULERS) expect(s.description.length, s.name).toBeGreaterThan(10);
  });

  it('lists the flags each scheduler takes', () => {
    expect(findScheduler('mh')?.flags).toEqual(['mh-port', 'mh-fallback']);
    expect(findScheduler('sh')?.flags).toEqual(['sh-port', 'sh-fallback']);
    expect(findScheduler('dh')?.flags).toEqual([]);
    expect(findScheduler('rr')?.flags).toEqual([]);
    expect(findScheduler('wrr')?.flags).toEqual([]);
  });

  it('finds schedulers by data-plane id', () => {
    expect(schedulerById(2).name).toBe('mh');
    expect(schedulerById(12).name).toBe('ovf');
    expect(errorOf(() => schedulerById(13))?.code).toBe('XDPVS_ERR_INVALID');
    expect(errorOf(() => schedulerById(-1))?.code).toBe('XDPVS_ERR_INVALID');
  });
});

describe('parseScheduler', () => {
  it('accepts the implemented schedulers', () => {
    expect(parseScheduler('rr')).toMatchObject({ name: 'rr', id: 0, kind: 'ring' });
    expect(parseScheduler('wrr')).toMatchObject({ name: 'wrr', id: 1, kind: 'ring' });
    expect(parseScheduler('mh')).toMatchObject({ name: 'mh', id: 2, kind: 'hash' });
  });

  it('rejects unknown names with XDPVS_ERR_INVALID, listing the known ones', () => {
    for (const name of ['foo', 'RR', ' rr', '', 'maglev']) {
      const e = errorOf(() => parseScheduler(name));
      expect(e?.code, name).toBe('XDPVS_ERR_INVALID');
      expect(e?.message).toContain('rr, wrr, mh, sh, dh, lc, wlc, sed, nq, lblc, lblcr, fo, ovf');
    }
  });

  it('accepts every IPVS scheduler', () => {
    for (const name of ['sh', 'dh', 'lc', 'wlc', 'sed', 'nq', 'lblc', 'lblcr', 'fo', 'ovf']) {
      expect(parseScheduler(name).name).toBe(name);
    }
  });
});

describe('buildSchedule', () => {
  it('rr: each destination with a weight once, in input order', () => {
    expect(Array.from(buildSchedule('rr', dests(1, 0, 5, 2)))).toEqual([0, 2, 3]);
    expect(Array.from(buildSchedule('rr', dests(0, 0)))).toEqual([]);
  });

  it('wrr: one IPVS cycle', () => {
    expect(Array.from(buildSchedule('wrr', dests(3, 1)))).toEqual([0, 0, 0, 1]);
    expect(Array.from(buildSchedule('wrr', dests(4, 3, 2)))).toEqual([0, 0, 1, 0, 1, 2, 0, 1, 2]);
    expect(Array.from(buildSchedule('wrr', dests(0, 2, 0, 1)))).toEqual([1, 1, 3]);
  });

  it('mh: the Maglev table, of the default or a given prime size', () => {
    const d = dests(1, 2, 0, 3);
    const t = buildSchedule('mh', d);
    expect(t.length).toBe(65537);
    expect(t).toEqual(buildMaglevTable(d));
    expect(new Set(t).has(2)).toBe(false);
    expect(buildSchedule('mh', d, { maglevSize: 251 }).length).toBe(251);
    expect(errorOf(() => buildSchedule('mh', d, { maglevSize: 250 }))?.code).toBe('XDPVS_ERR_INVALID');
  });

  it('sh: IPVS\'s 256 entries, newest destination first, each as many entries in a row as its weight', () => {
    const t = Array.from(buildSchedule('sh', dests(1, 3, 0)));
    expect(t.length).toBe(256);
    // IPVS's list order is 2, 1, 0 (each new destination goes to the head); weight 0 still takes one entry.
    expect(t.slice(0, 10)).toEqual([2, 1, 1, 1, 0, 2, 1, 1, 1, 0]);
    expect(Array.from(shTable([2, 1])).slice(0, 6)).toEqual([0, 0, 1, 0, 0, 1]);
  });

  it('dh: IPVS\'s 256 entries, the destinations in turn, weights ignored', () => {
    const t = Array.from(buildSchedule('dh', dests(1, 5, 0)));
    expect(t.length).toBe(256);
    expect(t.slice(0, 7)).toEqual([2, 1, 0, 2, 1, 0, 2]);
    expect(Array.from(dhTable(2)).slice(0, 4)).toEqual([0, 1, 0, 1]);
  });

  it('count and locality schedulers: each destination with a weight once, newest first (their tie order)', () => {
    for (const name of ['lc', 'wlc', 'sed', 'nq', 'fo', 'ovf', 'lblc', 'lblcr']) {
      expect(Array.from(buildSchedule(name, dests(1, 0, 5, 2))), name).toEqual([3, 2, 0]);
    }
  });

  it('refuses more than LC_MAX_DESTS candidates for the walking schedulers (XDPVS_ERR_CAPACITY)', () => {
    const many = Array.from({ length: LC_MAX_DESTS + 1 }, (_, i) => ({ key: `k${i}`, weight: 1 }));
    expect(errorOf(() => buildSchedule('wlc', many))?.code).toBe('XDPVS_ERR_CAPACITY');
    expect(buildSchedule('wlc', many.slice(1)).length).toBe(LC_MAX_DESTS);
    expect(buildSchedule('rr', many).length).toBe(LC_MAX_DESTS + 1);
  });

  it('gives an empty table when no destination has a weight', () => {
    for (const name of ['rr', 'wrr', 'mh', 'sh', 'dh', 'lc', 'wlc', 'lblc']) {
      expect(buildSchedule(name, []).length, name).toBe(0);
      expect(buildSchedule(name, dests(0)).length, name).toBe(0);
    }
  });

  it('returns Uint32Array tables', () => {
    for (const name of ['rr', 'wrr', 'mh', 'sh', 'dh', 'wlc']) expect(buildSchedule(name, dests(1, 1))).toBeInstanceOf(Uint32Array);
  });

  it('passes on the errors of parseScheduler and rejects bad weights', () => {
    expect(errorOf(() => buildSchedule('nope', dests(1)))?.code).toBe('XDPVS_ERR_INVALID');
    for (const name of ['rr', 'wrr', 'mh', 'sh', 'lc']) {
      expect(errorOf(() => buildSchedule(name, dests(1, -1)))?.code, name).toBe('XDPVS_ERR_INVALID');
      expect(errorOf(() => buildSchedule(name, dests(1.5)))?.code, name).toBe('XDPVS_ERR_INVALID');
    }
  });
});
