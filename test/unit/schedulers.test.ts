// The scheduler registry: ids held against bpf/xdpvs_shared.h, kinds, flags, parsing errors, schedule tables.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  buildSchedule,
  findScheduler,
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
      sh: 'unsupported',
      dh: 'unsupported',
      lc: 'unsupported',
      wlc: 'unsupported',
      sed: 'unsupported',
      nq: 'unsupported',
      lblc: 'unsupported',
      lblcr: 'unsupported',
      fo: 'unsupported',
      ovf: 'unsupported',
    });
    for (const s of SCHEDULERS) expect(s.description.length, s.name).toBeGreaterThan(10);
  });

  it('lists the flags each scheduler takes', () => {
    expect(findScheduler('mh')?.flags).toEqual(['mh-port']);
    expect(findScheduler('sh')?.flags).toEqual(['sh-port']);
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

  it('rejects known but unimplemented schedulers with XDPVS_ERR_UNSUPPORTED', () => {
    for (const name of ['sh', 'dh', 'lc', 'wlc', 'sed', 'nq', 'lblc', 'lblcr', 'fo', 'ovf']) {
      const e = errorOf(() => parseScheduler(name));
      expect(e?.code, name).toBe('XDPVS_ERR_UNSUPPORTED');
      expect(e?.message).toContain(`"${name}"`);
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

  it('gives an empty table when no destination has a weight', () => {
    for (const name of ['rr', 'wrr', 'mh']) {
      expect(buildSchedule(name, []).length, name).toBe(0);
      expect(buildSchedule(name, dests(0)).length, name).toBe(0);
    }
  });

  it('returns Uint32Array tables', () => {
    for (const name of ['rr', 'wrr', 'mh']) expect(buildSchedule(name, dests(1, 1))).toBeInstanceOf(Uint32Array);
  });

  it('passes on the errors of parseScheduler and rejects bad weights', () => {
    expect(errorOf(() => buildSchedule('lc', dests(1)))?.code).toBe('XDPVS_ERR_UNSUPPORTED');
    expect(errorOf(() => buildSchedule('nope', dests(1)))?.code).toBe('XDPVS_ERR_INVALID');
    for (const name of ['rr', 'wrr', 'mh']) {
      expect(errorOf(() => buildSchedule(name, dests(1, -1)))?.code, name).toBe('XDPVS_ERR_INVALID');
      expect(errorOf(() => buildSchedule(name, dests(1.5)))?.code, name).toBe('XDPVS_ERR_INVALID');
    }
  });
});
