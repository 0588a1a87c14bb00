// Typed access to the director's maps (names as in bpf/maps.h). The only place that knows which codec each map uses.

import { ErrorCode, XdpvsError } from '../errors.js';
import { UpdateFlag, perCpuStride, type BpfMap, type InnerMap, type MapBackend } from './backend.js';
import { NatGate } from './nat-gate.js';
import { svcGateOf, SVC_GATE_SIZE, type SvcGate } from './svc-gate.js';
import { REASONS, type Reason } from './reasons.js';
import { SCHED_MAPS } from './sched-maps.js';
import {
  Config,
  Conn,
  Dest,
  FlowKey,
  NatRev,
  SchedState,
  Service,
  ServiceKey,
  Stats,
  SyncCtl,
  IfMac,
  IfMacs,
  MAX_IFACES,
  type ConfigV,
  type ConnV,
  type DestV,
  type FlowKeyV,
  type NatRevV,
  type ServiceKeyV,
  type ServiceV,
  type StatsV,
} from './structs.js';

export type MapKind = 'hash' | 'array' | 'lru_hash' | 'percpu_array' | 'array_of_maps' | 'lpm_trie' | 'ringbuf';

export interface MapSpec {
  name: string;
  kind: MapKind;
  keySize: number;
  valueSize: number;
}

/** The director program's maps: name, kind, key and value sizes (capacities come from the object). */
export const LB_MAPS = {
  services: { name: 'services', kind: 'hash', keySize: ServiceKey.size, valueSize: Service.size },
  dests: { name: 'dests', kind: 'array', keySize: 4, valueSize: Dest.size },
  conns: { name: 'conns', kind: 'lru_hash', keySize: FlowKey.size, valueSize: Conn.size },
  nat_reverse: { name: 'nat_reverse', kind: 'lru_hash', keySize: FlowKey.size, valueSize: NatRev.size },
  rings: { name: 'rings', kind: 'array_of_maps', keySize: 4, valueSize: 4 },
  sched_state: { name: 'sched_state', kind: 'array', keySize: 4, valueSize: SchedState.size },
  svc_stats: { name: 'svc_stats', kind: 'percpu_array', keySize: 4, valueSize: Stats.size },
  dest_stats: { name: 'dest_stats', kind: 'percpu_array', keySize: 4, valueSize: Stats.size },
  reasons: { name: 'reasons', kind: 'percpu_array', keySize: 4, valueSize: 8 },
  config: { name: 'config', kind: 'array', keySize: 4, valueSize: Config.size },
  nat_ctl: { name: 'nat_ctl', kind: 'array', keySize: 4, valueSize: 4 },
  svc_gate: { name: 'svc_gate', kind: 'array', keySize: 4, valueSize: SVC_GATE_SIZE },
  if_macs: { name: 'if_macs', kind: 'array', keySize: 4, valueSize: IfMacs.size },
  ...SCHED_MAPS,
} as const satisfies Record<string, MapSpec>;

/**
 * The connection-sync maps of the same object (src/sync, docs/sync.md). Apart from LB_MAPS because only the kernel
 * has a ring buffer: the in-memory maps that rehearse configurations have no use for them.
 */
export const SYNC_MAPS = {
  sync_events: { name: 'sync_events', kind: 'ringbuf', keySize: 0, valueSize: 0 },
  sync_ctl: { name: 'sync_ctl', kind: 'array', keySize: 4, valueSize: SyncCtl.size },
  sync_drops: { name: 'sync_drops', kind: 'percpu_array', keySize: 4, valueSize: 8 },
} as const satisfies Record<string, MapSpec>;

/** Key and value sizes of every map of the director object, by name: what the loader checks against the kernel's. */
export function directorMapShapes(): Record<string, { keySize: number; valueSize: number }> {
  return Object.fromEntries([...Object.values(LB_MAPS), ...Object.values(SYNC_MAPS)].map((m) => [m.name, { keySize: m.keySize, valueSize: m.valueSize }]));
}

function u32Key(i: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(i);
  return b;
}

function sumPerCpu(raw: Buffer | undefined, cpus: number): StatsV {
  const total = Stats.zero();
  if (!raw) return total;
  const stride = perCpuStride(Stats.size);
  for (let c = 0; c < cpus; c++) {
    const one = Stats.decode(raw, c * stride);
    total.conns += one.conns;
    total.inpkts += one.inpkts;
    total.outpkts += one.outpkts;
    total.inbytes += one.inbytes;
    total.outbytes += one.outbytes;
  }
  return total;
}

let scratchKeys = new Uint32Array(0);
let scratchValues = new Uint32Array(0);

/**
 * Writes table into inner with one batch update: only the indexes where it differs from `held` (what inner holds
 * now, null when unknown). Returns how many slots were written.
 */
export function writeTableSlots(inner: BpfMap, table: Uint32Array, held: Uint32Array | null): number {
  // Scratch reused from call to call: two fresh 256 KiB arrays per change made the collector run every other one.
  if (scratchKeys.length < table.length) {
    scratchKeys = new Uint32Array(table.length);
    scratchValues = new Uint32Array(table.length);
  }
  const keys = scratchKeys;
  const values = scratchValues;
  let n = 0;
  for (let i = 0; i < table.length; i++) {
    if (held && i < held.length && held[i] === table[i]) continue;
    keys[n] = i;
    values[n] = table[i];
    n++;
  }
  // Host byte order, as the kernel takes u32 keys and values.
  if (n > 0) inner.updateBatch(Buffer.from(keys.buffer, 0, n * 4), Buffer.from(values.buffer, 0, n * 4));
  return n;
}

export interface ConnEntry {
  key: FlowKeyV;
  value: ConnV;
}

export interface NatReverseEntry {
  key: FlowKeyV;
  value: NatRevV;
}

export class LbMaps {
  readonly services: BpfMap;
  readonly dests: BpfMap;
  readonly conns: BpfMap;
  readonly natReverse: BpfMap;
  readonly schedState: BpfMap;
  readonly svcStats: BpfMap;
  readonly destStats: BpfMap;
  readonly reasons: BpfMap;
  readonly config: BpfMap;
  readonly #nat: NatGate;
  readonly #gate: SvcGate;

  constructor(readonly backend: MapBackend) {
    this.services = backend.map(LB_MAPS.services.name);
    this.dests = backend.map(LB_MAPS.dests.name);
    this.conns = backend.map(LB_MAPS.conns.name);
    this.natReverse = backend.map(LB_MAPS.nat_reverse.name);
    this.schedState = backend.map(LB_MAPS.sched_state.name);
    this.svcStats = backend.map(LB_MAPS.svc_stats.name);
    this.destStats = backend.map(LB_MAPS.dest_stats.name);
    this.reasons = backend.map(LB_MAPS.reasons.name);
    this.config = backend.map(LB_MAPS.config.name);
    backend.map(LB_MAPS.rings.name);
    this.#nat = new NatGate(backend.map(LB_MAPS.nat_ctl.name), this.maxDests, (id) => this.getDest(id));
    this.#gate = svcGateOf(backend);
  }

  /** Whether the data plane checks packets for no service for NAT replies (some destination is NAT). */
  get natInUse(): boolean {
    return this.#nat.on;
  }

  /**
   * The interfaces the program runs on and their MACs: unicast frames for other MACs are passed untouched
   * (bpf/host.h). An empty list turns the filter off.
   */
  setInterfaceMacs(ifaces: readonly { ifindex: number; mac: Buffer }[]): void {
    if (ifaces.length > MAX_IFACES) {
      throw new XdpvsError(ErrorCode.Invalid, `at most ${MAX_IFACES} interfaces (got ${ifaces.length})`);
    }
    const v = Buffer.alloc(IfMacs.size);
    v.writeUInt32LE(ifaces.length, 0);
    ifaces.forEach((f, i) => IfMac.encodeInto(v, 4 + i * IfMac.size, { ifindex: f.ifindex, mac: f.mac }));
    this.backend.map(LB_MAPS.if_macs.name).update(u32Key(0), v);
  }

  get maxServices(): number {
    return this.schedState.maxEntries;
  }
  get maxDests(): number {
    return this.dests.maxEntries;
  }
  get connTableSize(): number {
    return this.conns.maxEntries;
  }

  putService(key: ServiceKeyV, svc: ServiceV): void {
    const k = ServiceKey.encode(key);
    this.services.update(k, Service.encode(svc));
    this.#gate.servicePut(k, svc.id);
  }
  getService(key: ServiceKeyV): ServiceV | undefined {
    const raw = this.services.lookup(ServiceKey.encode(key));
    return raw && Service.decode(raw);
  }
  deleteService(key: ServiceKeyV): void {
    const k = ServiceKey.encode(key);
    this.services.delete(k);
    this.#gate.serviceDeleted(k);
  }
  serviceKeys(): ServiceKeyV[] {
    return this.services.keys().map((k) => ServiceKey.decode(k));
  }

  putDest(id: number, dest: DestV): void {
    this.dests.update(u32Key(id), Dest.encode(dest));
    this.#nat.written(id, dest.family, dest.method);
  }
  getDest(id: number): DestV {
    return Dest.decode(this.dests.lookup(u32Key(id)) ?? Buffer.alloc(Dest.size));
  }
  clearDest(id: number): void {
    this.dests.update(u32Key(id), Buffer.alloc(Dest.size));
    this.#nat.written(id, 0, 0);
  }

  /**
   * Writes a complete schedule table (dest ids) into a new inner map in ring slot `slot`, blocking for the kernel's
   * grace period (test set-ups; the balancer publishes through src/lb/ring-tables.ts).
   */
  writeRing(slot: number, destIds: Uint32Array): void {
    if (destIds.length === 0) return;
    const inner: InnerMap = this.backend.createInnerArray(LB_MAPS.rings.name, destIds.length);
    try {
      writeTableSlots(inner, destIds, null);
      this.backend.setInner(LB_MAPS.rings.name, slot, inner);
    } finally {
      inner.close();
    }
  }
  /** Empties ring slot `slot` (the service that used it is gone or has no destination). */
  clearRing(slot: number): void {
    this.backend.map(LB_MAPS.rings.name).delete(u32Key(slot));
  }
  /**
   * The schedule table in slot `slot` (empty when none): its first `len` entries (a service's ring_len; the map
   * may be larger than the table it holds), all of them without.
   */
  readRing(slot: number, len?: number): Uint32Array {
    const inner = this.backend.getInner(LB_MAPS.rings.name, slot);
    if (!inner) return new Uint32Array(0);
    try {
      const out = new Uint32Array(Math.min(len ?? inner.maxEntries, inner.maxEntries));
      for (let i = 0; i < out.length; i++) out[i] = inner.lookup(u32Key(i))!.readUInt32LE(0);
      return out;
    } finally {
      inner.close();
    }
  }

  resetSchedState(id: number): void {
    this.schedState.update(u32Key(id), SchedState.encode({ next: 0 }));
  }

  serviceStats(id: number): StatsV {
    return sumPerCpu(this.svcStats.lookup(u32Key(id)), this.backend.possibleCpus);
  }
  destStatsOf(id: number): StatsV {
    return sumPerCpu(this.destStats.lookup(u32Key(id)), this.backend.possibleCpus);
  }
  zeroServiceStats(id: number): void {
    this.svcStats.update(u32Key(id), Buffer.alloc(perCpuStride(Stats.size) * this.backend.possibleCpus));
  }
  zeroDestStats(id: number): void {
    this.destStats.update(u32Key(id), Buffer.alloc(perCpuStride(Stats.size) * this.backend.possibleCpus));
  }

  reasonCounts(): Record<Reason, number> {
    const out = {} as Record<Reason, number>;
    REASONS.forEach((name, i) => {
      const raw = this.reasons.lookup(u32Key(i));
      let sum = 0;
      for (let c = 0; raw && c < this.backend.possibleCpus; c++) sum += Number(raw.readBigUInt64LE(c * 8));
      out[name] = sum;
    });
    return out;
  }

  setConfig(cfg: ConfigV): void {
    this.config.update(u32Key(0), Config.encode(cfg));
  }
  getConfig(): ConfigV {
    return Config.decode(this.config.lookup(u32Key(0)) ?? Buffer.alloc(Config.size));
  }

  /** Every connection entry (a snapshot; the data plane keeps writing). */
  connections(): ConnEntry[] {
    const out: ConnEntry[] = [];
    for (const k of this.conns.keys()) {
      const v = this.conns.lookup(k);
      if (v) out.push({ key: FlowKey.decode(k), value: Conn.decode(v) });
    }
    return out;
  }

  /** Every NAT reverse entry: a reply's flow as it arrives -> the VIP:port it becomes (a snapshot). */
  natReverseEntries(): NatReverseEntry[] {
    const out: NatReverseEntry[] = [];
    for (const k of this.natReverse.keys()) {
      const v = this.natReverse.lookup(k);
      if (v) out.push({ key: FlowKey.decode(k), value: NatRev.decode(v) });
    }
    return out;
  }
}

export { UpdateFlag };
