// Codecs of the structs of bpf/xdpvs_shared.h's scheduler section (connection counts, thresholds, persistence,
// lblc/lblcr, prefix services): update both. Listed in ALL_STRUCTS (structs.ts), so codecs-btf.test.ts holds them
// against the compiled object's BTF.

import { be16, ip16, pad, struct, u32, u64, u8, type Field } from './codec.js';

/** A signed 32-bit field (__s32), host order. */
export const s32: Field<number> = {
  kind: 's32',
  size: 4,
  align: 4,
  encode(buf, off, v) {
    if (!Number.isInteger(v) || v < -0x80000000 || v > 0x7fffffff) throw new RangeError(`s32 out of range: ${v}`);
    buf.writeInt32LE(v, off);
  },
  decode: (buf, off) => buf.readInt32LE(off),
  zero: () => 0,
};

/** `__u32 name[n]` as a number array of exactly n entries. */
export function u32Array(n: number): Field<number[]> {
  return {
    kind: `u32[${n}]`,
    size: 4 * n,
    align: 4,
    encode(buf, off, v) {
      if (!Array.isArray(v) || v.length !== n) throw new RangeError(`u32[${n}] needs ${n} entries`);
      v.forEach((x, i) => u32.encode(buf, off + 4 * i, x));
    },
    decode: (buf, off) => Array.from({ length: n }, (_, i) => buf.readUInt32LE(off + 4 * i)),
    zero: () => new Array<number>(n).fill(0),
  };
}

/** XDPVS_LC_MAX_DESTS: most candidates the count-reading schedulers walk. */
export const LC_MAX_DESTS = 1024;
/** XDPVS_LBLCR_SET_MAX. */
export const LBLCR_SET_MAX = 8;
/** vs_dest_sched.flags: XDPVS_DS_F_AVAILABLE. */
export const DS_F_AVAILABLE = 1 << 0;

export const DestConns = struct('vs_dest_conns', {
  active: u32,
  inactive: u32,
  overload: u32,
  pad0: pad(4),
});

export const DestSched = struct('vs_dest_sched', {
  weight: u32,
  u_threshold: u32,
  l_threshold: u32,
  epoch: u32,
  active_adj: s32,
  inactive_adj: s32,
  flags: u32,
  pad0: pad(4),
});

export const SvcPersist = struct('vs_svc_persist', {
  timeout: u32,
  mask: ip16,
});

export const SvcAddrKey = struct('vs_svc_addr_key', {
  addr: ip16,
  svc_id: u32,
  family: u8,
  pad0: pad(3),
});

export const Persist = struct('vs_persist', {
  dest_id: u32,
  dest_gen: u32,
  expires_ns: u64,
});

export const Lblc = struct('vs_lblc', {
  lastuse_ns: u64,
  lastmod_ns: u64,
  size: u32,
  pad0: pad(4),
  dest_id: u32Array(LBLCR_SET_MAX),
  dest_gen: u32Array(LBLCR_SET_MAX),
});

export const SvcPrefixKey = struct('vs_svc_prefix_key', {
  prefixlen: u32,
  family: u8,
  proto: u8,
  port: be16,
  addr: ip16,
});

export const SvcWild = struct('vs_svc_wild', {
  port0: u32,
  prefixes: u32,
});

export type DestConnsV = ReturnType<typeof DestConns.decode>;
export type DestSchedV = ReturnType<typeof DestSched.decode>;
export type SvcPersistV = ReturnType<typeof SvcPersist.decode>;
export type SvcAddrKeyV = ReturnType<typeof SvcAddrKey.decode>;
export type PersistV = ReturnType<typeof Persist.decode>;
export type LblcV = ReturnType<typeof Lblc.decode>;
export type SvcPrefixKeyV = ReturnType<typeof SvcPrefixKey.decode>;
export type SvcWildV = ReturnType<typeof SvcWild.decode>;

export const SCHED_STRUCTS = [DestConns, DestSched, SvcPersist, SvcAddrKey, Persist, Lblc, SvcPrefixKey, SvcWild] as const;
