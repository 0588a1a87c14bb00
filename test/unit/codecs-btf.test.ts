// The TypeScript codecs against the compiled object's BTF, and the reason names against the C enum.

import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { REASONS } from '../../src/maps/reasons.js';
import { ALL_STRUCTS, CONN_STATES, FWD_METHODS } from '../../src/maps/structs.js';
import { struct, u32, u8, pad } from '../../src/maps/codec.js';
import { DECAP_OBJECT, LB_OBJECT } from '../../src/paths.js';
import { DECAP_REASONS } from '../../src/maps/reasons.js';
import { DECAP_STRUCTS } from '../../src/maps/structs.js';

interface BtfType {
  id: number;
  kind: string;
  name?: string;
  size?: number;
  members?: { name: string; type_id: number; bits_offset: number }[];
}

function btfStructs(object = LB_OBJECT): Map<string, BtfType> {
  if (!existsSync(object)) throw new Error(`${object} is missing: run "bash scripts/build.sh"`);
  const json = JSON.parse(execFileSync('bpftool', ['-j', 'btf', 'dump', 'file', object], { encoding: 'utf8' })) as { types: BtfType[] };
  return new Map(json.types.filter((t) => t.kind === 'STRUCT' && t.name).map((t) => [t.name!, t]));
}

function cEnum(name: string): Map<string, number> {
  const header = readFileSync(new URL('../../bpf/xdpvs_shared.h', import.meta.url), 'utf8');
  const body = new RegExp(`enum ${name} \\{([^}]*)\\}`).exec(header)?.[1];
  if (!body) throw new Error(`enum ${name} not found in xdpvs_shared.h`);
  const out = new Map<string, number>();
  for (const m of body.matchAll(/(\w+)\s*=\s*(\d+)/g)) out.set(m[1], Number(m[2]));
  return out;
}

describe('codecs match the compiled object', () => {
  const btf = btfStructs();
  for (const codec of ALL_STRUCTS) {
    it(`struct ${codec.name}: size and every field offset`, () => {
      const t = btf.get(codec.name);
      expect(t, `struct ${codec.name} in BTF`).toBeDefined();
      expect(codec.size).toBe(t!.size);
      const btfFields = t!.members!.map((m) => ({ name: m.name, offset: m.bits_offset / 8 }));
      const ours = codec.fields.map((f) => ({ name: f.name, offset: f.offset }));
      expect(ours).toEqual(btfFields);
    });
  }
});

describe('enums match bpf/xdpvs_shared.h', () => {
  it('reason counters, in order', () => {
    const c = cEnum('xdpvs_reason');
    const names = [...c.entries()].filter(([k]) => k !== 'XDPVS_R_MAX').sort((a, b) => a[1] - b[1]).map(([k]) => k.replace(/^XDPVS_R_/, '').toLowerCase());
    expect(names).toEqual([...REASONS]);
    expect(c.get('XDPVS_R_MAX')).toBe(REASONS.length);
  });
  it('connection states and forwarding methods', () => {
    const states = [...cEnum('xdpvs_conn_state').entries()].sort((a, b) => a[1] - b[1]).map(([k]) => k.replace(/^XDPVS_CS_/, ''));
    expect(states).toEqual([...CONN_STATES]);
    expect(cEnum('xdpvs_fwd')).toEqual(new Map([['XDPVS_FWD_DR', 0], ['XDPVS_FWD_TUN', 1], ['XDPVS_FWD_NAT', 2]]));
    expect(FWD_METHODS).toEqual(['dr', 'tunnel', 'nat']);
  });
});

describe('struct() refuses implicit padding', () => {
  it('a misaligned field', () => {
    expect(() => struct('bad', { a: u8, b: u32 })).toThrow(/not 4-aligned/);
  });
  it('tail padding', () => {
    expect(() => struct('bad', { a: u32, b: u8 })).toThrow(/tail padding/);
  });
  it('explicit padding is fine and round-trips', () => {
    const s = struct('ok', { a: u8, p: pad(3), b: u32 });
    expect(s.size).toBe(8);
    expect(s.decode(s.encode({ a: 7, b: 0xdeadbeef }))).toEqual({ a: 7, b: 0xdeadbeef });
  });
});

describe('the decap program: codecs and reasons match', () => {
  const btf = btfStructs(DECAP_OBJECT);
  for (const codec of DECAP_STRUCTS) {
    it(`struct ${codec.name}: size and every field offset`, () => {
      const t = btf.get(codec.name);
      expect(t, `struct ${codec.name} in the BTF of ${DECAP_OBJECT}`).toBeDefined();
      expect(codec.size).toBe(t!.size);
      expect(codec.fields.map((f) => ({ name: f.name, offset: f.offset }))).toEqual(t!.members!.map((m) => ({ name: m.name, offset: m.bits_offset / 8 })));
    });
  }
  it('decap reason counters, in order', () => {
    const c = cEnum('xdpvs_decap_reason');
    const names = [...c.entries()].filter(([k]) => k !== 'XDPVS_DECAP_R_MAX').sort((a, b) => a[1] - b[1]).map(([k]) => k.replace(/^XDPVS_DECAP_R_/, '').toLowerCase());
    expect(names).toEqual([...DECAP_REASONS]);
    expect(c.get('XDPVS_DECAP_R_MAX')).toBe(DECAP_REASONS.length);
  });
});
