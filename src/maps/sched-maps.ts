// Typed access to the scheduler maps of bpf/maps.h (dest_conns, dest_sched, svc_persist, persist, lblc, svc_prefix,
// svc_wild): connection counts and thresholds, persistence templates, lblc tables and prefix services.

import type { BpfMap, MapBackend } from './backend.js';
import { UpdateFlag } from './backend.js';
import type { MapSpec } from './lb-maps.js';
import { svcGateOf } from './svc-gate.js';
import {
  DestConns,
  DestSched,
  Lblc,
  Persist,
  SvcAddrKey,
  SvcPersist,
  SvcPrefixKey,
  SvcWild,
  type DestConnsV,
  type DestSchedV,
  type LblcV,
  type PersistV,
  type SvcAddrKeyV,
  type SvcPersistV,
  type SvcPrefixKeyV,
  type SvcWildV,
} from './sched-structs.js';
import { Service, type ServiceV } from './structs.js';

/** The scheduler maps (names as in bpf/maps.h), merged into LB_MAPS. */
export const SCHED_MAPS = {
  dest_conns: { name: 'dest_conns', kind: 'array', keySize: 4, valueSize: DestConns.size },
  dest_sched: { name: 'dest_sched', kind: 'array', keySize: 4, valueSize: DestSched.size },
  svc_persist: { name: 'svc_persist', kind: 'array', keySize: 4, valueSize: SvcPersist.size },
  persist: { name: 'persist', kind: 'lru_hash', keySize: SvcAddrKey.size, valueSize: Persist.size },
  lblc: { name: 'lblc', kind: 'lru_hash', keySize: SvcAddrKey.size, valueSize: Lblc.size },
  lblc_scratch: { name: 'lblc_scratch', kind: 'percpu_array', keySize: 4, valueSize: Lblc.size },
  svc_prefix: { name: 'svc_prefix', kind: 'lpm_trie', keySize: SvcPrefixKey.size, valueSize: Service.size },
  svc_wild: { name: 'svc_wild', kind: 'array', keySize: 4, valueSize: SvcWild.size },
} as const satisfies Record<string, MapSpec>;

function u32Key(i: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(i);
  return b;
}

export interface PersistEntry {
  key: SvcAddrKeyV;
  value: PersistV;
}

export interface LblcEntry {
  key: SvcAddrKeyV;
  value: LblcV;
}

/** Raw entries of a hash map, through the backend's batch read when it has one (src/loader/kernel-backend.ts). */
export function entriesOf(map: BpfMap): [Buffer, Buffer][] {
  const batch = (map as { entries?: () => [Buffer, Buffer][] }).entries;
  if (typeof batch === 'function') return batch.call(map);
  const out: [Buffer, Buffer][] = [];
  for (const k of map.keys()) {
    const v = map.lookup(k);
    if (v) out.push([k, v]);
  }
  return out;
}

export class SchedMaps {
  readonly destConns: BpfMap;
  readonly destSched: BpfMap;
  readonly svcPersist: BpfMap;
  readonly persist: BpfMap;
  readonly lblc: BpfMap;
  readonly svcPrefix: BpfMap;
  readonly svcWild: BpfMap;

  constructor(readonly backend: MapBackend) {
    this.destConns = backend.map(SCHED_MAPS.dest_conns.name);
    this.destSched = backend.map(SCHED_MAPS.dest_sched.name);
    this.svcPersist = backend.map(SCHED_MAPS.svc_persist.name);
    this.persist = backend.map(SCHED_MAPS.persist.name);
    this.lblc = backend.map(SCHED_MAPS.lblc.name);
    this.svcPrefix = backend.map(SCHED_MAPS.svc_prefix.name);
    this.svcWild = backend.map(SCHED_MAPS.svc_wild.name);
  }

  // ---- per destination -------------------------------------------------------------------------------------

  getDestConns(id: number): DestConnsV {
    return DestConns.decode(this.destConns.lookup(u32Key(id)) ?? Buffer.alloc(DestConns.size));
  }
  /** Sets the data plane's counters (tests; a slot given to a new destination starts from zero). */
  putDestConns(id: number, v: DestConnsV): void {
    this.destConns.update(u32Key(id), DestConns.encode(v));
  }
  getDestSched(id: number): DestSchedV {
    return DestSched.decode(this.destSched.lookup(u32Key(id)) ?? Buffer.alloc(DestSched.size));
  }
  putDestSched(id: number, v: DestSchedV): void {
    this.destSched.update(u32Key(id), DestSched.encode(v));
  }

  // ---- per service -----------------------------------------------------------------------------------------

  putSvcPersist(svcId: number, v: SvcPersistV): void {
    this.svcPersist.update(u32Key(svcId), SvcPersist.encode(v));
  }
  getSvcPersist(svcId: number): SvcPersistV {
    return SvcPersist.decode(this.svcPersist.lookup(u32Key(svcId)) ?? Buffer.alloc(SvcPersist.size));
  }
  clearSvcPersist(svcId: number): void {
    this.svcPersist.update(u32Key(svcId), Buffer.alloc(SvcPersist.size));
  }

  putPrefixService(key: SvcPrefixKeyV, svc: ServiceV): void {
    const k = SvcPrefixKey.encode(key);
    this.svcPrefix.update(k, Service.encode(svc));
    svcGateOf(this.backend).prefixPut(k, svc.id);
  }
  getPrefixService(key: SvcPrefixKeyV): ServiceV | undefined {
    const raw = this.svcPrefix.lookup(SvcPrefixKey.encode(key));
    return raw && Service.decode(raw);
  }
  deletePrefixService(key: SvcPrefixKeyV): void {
    const k = SvcPrefixKey.encode(key);
    this.svcPrefix.delete(k);
    svcGateOf(this.backend).prefixDeleted(k);
  }
  prefixServiceKeys(): SvcPrefixKeyV[] {
    return this.svcPrefix.keys().map((k) => SvcPrefixKey.decode(k));
  }

  setWild(v: SvcWildV): void {
    this.svcWild.update(u32Key(0), SvcWild.encode(v));
  }
  getWild(): SvcWildV {
    return SvcWild.decode(this.svcWild.lookup(u32Key(0)) ?? Buffer.alloc(SvcWild.size));
  }

  // ---- persistence templates and lblc tables ---------------------------------------------------------------

  persistEntries(): PersistEntry[] {
    return entriesOf(this.persist).map(([k, v]) => ({ key: SvcAddrKey.decode(k), value: Persist.decode(v) }));
  }
  getPersist(key: SvcAddrKeyV): PersistV | undefined {
    const raw = this.persist.lookup(SvcAddrKey.encode(key));
    return raw && Persist.decode(raw);
  }
  /** Writes a template; with `mustExist`, only over one that is there (BPF_EXIST): false when it was not. */
  putPersist(key: SvcAddrKeyV, value: PersistV, mustExist = false): boolean {
    try {
      this.persist.update(SvcAddrKey.encode(key), Persist.encode(value), mustExist ? UpdateFlag.Exist : UpdateFlag.Any);
      return true;
    } catch (e) {
      if (mustExist) return false;
      throw e;
    }
  }
  /** Deletes every template of service svcId (the service is gone or its id is given to another). */
  flushPersist(svcId: number): number {
    let n = 0;
    for (const [k] of entriesOf(this.persist)) {
      if (SvcAddrKey.decode(k).svc_id === svcId && this.persist.delete(k)) n++;
    }
    return n;
  }

  lblcEntries(): LblcEntry[] {
    return entriesOf(this.lblc).map(([k, v]) => ({ key: SvcAddrKey.decode(k), value: Lblc.decode(v) }));
  }
  flushLblc(svcId: number): number {
    let n = 0;
    for (const [k] of entriesOf(this.lblc)) {
      if (SvcAddrKey.decode(k).svc_id === svcId && this.lblc.delete(k)) n++;
    }
    return n;
  }
}
