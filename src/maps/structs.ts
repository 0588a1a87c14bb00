// The codecs of every struct in bpf/xdpvs_shared.h (update both). test/unit/codecs-btf.test.ts holds them
// against the compiled object's BTF, and the kernel backend checks map key/value sizes when it opens a map.

import { be16, ip16, mac, pad, struct, u16, u32, u64, u8 } from './codec.js';
import { SCHED_STRUCTS } from './sched-structs.js';

export const ServiceKey = struct('vs_service_key', {
  addr: ip16,
  port: be16,
  proto: u8,
  family: u8,
});

export const Service = struct('vs_service', {
  id: u32,
  sched: u8,
  pad0: pad(1),
  flags: u16,
  ring_slot: u32,
  ring_len: u32,
});

export const Dest = struct('vs_dest', {
  addr: ip16,
  port: be16,
  family: u8,
  method: u8,
  gen: u32,
  ifindex: u32,
  svc_id: u32,
  flags: u16,
  mac_dst: mac,
  mac_src: mac,
  mtu: u16,
  tun_src: ip16,
});

export const FlowKey = struct('vs_flow_key', {
  src: ip16,
  dst: ip16,
  sport: be16,
  dport: be16,
  proto: u8,
  family: u8,
  pad0: pad(2),
});

export const Conn = struct('vs_conn', {
  dest_id: u32,
  dest_gen: u32,
  svc_id: u32,
  state: u8,
  pad0: pad(3),
  last_ns: u64,
  expires_ns: u64,
});

export const NatRev = struct('vs_nat_rev', {
  vaddr: ip16,
  vport: be16,
  pad0: pad(2),
  dest_id: u32,
  dest_gen: u32,
});

export const Stats = struct('vs_stats', {
  conns: u64,
  inpkts: u64,
  outpkts: u64,
  inbytes: u64,
  outbytes: u64,
});

export const SchedState = struct('vs_sched_state', {
  next: u64,
});

export const Config = struct('vs_config', {
  tcp_timeout: u32,
  tcpfin_timeout: u32,
  udp_timeout: u32,
  syn_timeout: u32,
  close_timeout: u32,
  pad0: pad(4),
});

/** Value of `svc_gate` (src/maps/svc-gate.ts builds it: the filter bits are set one by one). */
export const SvcGateValue = struct('vs_svc_gate', {
  changed_ns: u64,
  bits: pad(4096),
});

/** A record of the `sync_events` ring buffer (src/sync). */
export const SyncEvent = struct('vs_sync_event', {
  src: ip16,
  dst: ip16,
  sport: be16,
  dport: be16,
  proto: u8,
  family: u8,
  state: u8,
  pad0: pad(1),
  dest_id: u32,
  dest_gen: u32,
  svc_id: u32,
  pad1: pad(4),
  last_ns: u64,
  expires_ns: u64,
});

/** XDPVS_MAX_IFACES: interfaces `if_macs` holds. */
export const MAX_IFACES = 8;
/** One interface of `if_macs` (bpf/host.h). */
export const IfMac = struct('vs_if_mac', {
  ifindex: u32,
  mac,
  pad: pad(2),
});
/** Value of `if_macs`: n entries of IfMac follow n (written whole by LbMaps.setInterfaceMacs). */
export const IfMacs = struct('vs_if_macs', {
  n: u32,
  e: pad(MAX_IFACES * IfMac.size),
});

/** Value of `sync_ctl`. */
export const SyncCtl = struct('vs_sync_ctl', {
  enabled: u32,
  pad0: pad(4),
});

export type ServiceKeyV = ReturnType<typeof ServiceKey.decode>;
export type ServiceV = ReturnType<typeof Service.decode>;
export type DestV = ReturnType<typeof Dest.decode>;
export type FlowKeyV = ReturnType<typeof FlowKey.decode>;
export type ConnV = ReturnType<typeof Conn.decode>;
export type NatRevV = ReturnType<typeof NatRev.decode>;
export type StatsV = ReturnType<typeof Stats.decode>;
export type ConfigV = ReturnType<typeof Config.decode>;

/** Every shared struct, for the BTF check. */
export const ALL_STRUCTS = [ServiceKey, Service, Dest, FlowKey, Conn, NatRev, Stats, SchedState, Config, SvcGateValue, SyncEvent, SyncCtl, IfMac, IfMacs, ...SCHED_STRUCTS] as const;

/** enum xdpvs_conn_state, by value. */
export const CONN_STATES = ['NONE', 'SYN_RECV', 'ESTABLISHED', 'FIN_WAIT', 'CLOSE', 'UDP'] as const;
export const ConnState = { None: 0, SynRecv: 1, Established: 2, FinWait: 3, Close: 4, Udp: 5 } as const;

/** enum xdpvs_fwd. */
export const FWD_METHODS = ['dr', 'tunnel', 'nat'] as const;
export type FwdMethod = (typeof FWD_METHODS)[number];

/** Destination flags (XDPVS_DEST_F_*). */
export const DEST_F_MAC_VALID = 1 << 0;
/** Service flags (XDPVS_SVC_F_*). */
export const SVC_F_HASH_PORT = 1 << 0;
/** XDPVS_SVC_F_FALLBACK: sh-fallback / mh-fallback. */
export const SVC_F_FALLBACK = 1 << 1;
/** XDPVS_SVC_F_PERSIST: -p (svc_persist holds timeout and netmask). */
export const SVC_F_PERSIST = 1 << 2;
/** XDPVS_SVC_F_THRESHOLDS: some real server has -x. */
export const SVC_F_THRESHOLDS = 1 << 3;

export { AF_INET, AF_INET6 } from '../lb/address.js';
export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;

// ---- The real server's decap program (bpf/xdpvs_decap.bpf.c) ----

/** Key of `decap_vips` and `decap_local`: an address (IPv4 in the first 4 bytes) and its family. */
export const DecapKey = struct('vs_decap_key', {
  addr: ip16,
  family: u8,
  pad0: pad(3),
});
export type DecapKeyV = ReturnType<typeof DecapKey.decode>;

/** The decap object's shared structs, for the BTF check (held against build/bpf/xdpvs_decap.bpf.o). */
export const DECAP_STRUCTS = [DecapKey] as const;
