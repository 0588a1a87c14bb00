// What the data plane's schedulers read besides the schedule table, kept by the balancer: per real server its
// weight, thresholds and availability (dest_sched), per service its persistence (svc_persist) and, for prefix
// services, its record in svc_prefix; and the upkeep the daemon does every second: correcting the per-destination
// connection counters for entries that left silently (expiry, LRU eviction) and extending the persistence templates
// of clients whose connections are alive. See docs/schedulers.md.

import { ErrorCode, XdpvsError } from '../errors.js';
import type { BpfMap, MapBackend } from '../maps/backend.js';
import { SchedMaps, entriesOf, type PersistEntry } from '../maps/sched-maps.js';
import { DS_F_AVAILABLE, type DestSchedV, type SvcAddrKeyV } from '../maps/sched-structs.js';
import {
  AF_INET,
  AF_INET6,
  CONN_STATES,
  Conn,
  ConnState,
  FlowKey,
  SVC_F_FALLBACK,
  SVC_F_HASH_PORT,
  SVC_F_PERSIST,
  SVC_F_THRESHOLDS,
  type ConnV,
  type FlowKeyV,
  type ServiceV,
} from '../maps/structs.js';
import { addressFromData, addressToData, type Family, type IpAddress } from './address.js';
import type { ConnectionView, Protocol } from './model.js';
import { fullPrefix, netmaskData, vipPrefix } from './vip.js';

const NS = 1e9;

/** A connection entry as read from `conns`. */
export interface ConnRecord {
  key: FlowKeyV;
  value: ConnV;
}

/** Active and inactive connections of one destination (ipvsadm's ActiveConn and InActConn), and its templates. */
export interface DestCounts {
  active: number;
  inactive: number;
  persist: number;
}

/** What the upkeep needs to know of a destination slot in use. */
export interface DestInfo {
  gen: number;
  svcId: number;
}

/** What the upkeep and the listing need to know of a service. */
export interface ServiceInfo {
  id: string;
  protocol: Protocol;
  address: IpAddress;
  port: number;
  /** Persistence timeout (s), 0 when not persistent. */
  persistent: number;
  /** Persistence netmask length. */
  netmask: number;
}

/** What the listing needs to know of a destination. */
export interface DestAddress {
  address: IpAddress;
  port: number;
}

/** Every entry of the connection table (a snapshot; the data plane keeps writing). */
export function readConnections(conns: BpfMap): ConnRecord[] {
  return entriesOf(conns).map(([k, v]) => ({ key: FlowKey.decode(k), value: Conn.decode(v) }));
}

/** XDPVS_ERR_INVALID unless a threshold is an integer 0..2^31-1 (ipvsadm parses them as int). */
export function checkThreshold(v: unknown, field: 'upperThreshold' | 'lowerThreshold'): number {
  if (v === undefined) return 0;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 0x7fffffff) {
    throw new XdpvsError(ErrorCode.Invalid, `invalid ${field === 'upperThreshold' ? 'upper' : 'lower'} threshold ${JSON.stringify(v)} (expected an integer 0..2147483647)`, { field });
  }
  return v;
}

/** The XDPVS_SVC_F_* bits of a service. */
export function serviceFlagBits(opts: { flags: readonly string[]; persistent: number; thresholds: boolean }): number {
  let bits = 0;
  if (opts.flags.some((f) => f.endsWith('-port'))) bits |= SVC_F_HASH_PORT;
  if (opts.flags.some((f) => f.endsWith('-fallback'))) bits |= SVC_F_FALLBACK;
  if (opts.persistent > 0) bits |= SVC_F_PERSIST;
  if (opts.thresholds) bits |= SVC_F_THRESHOLDS;
  return bits;
}

/** The per-destination numbers the upkeep keeps between rounds. */
interface DestMemo {
  /** Corrections last written (true count - data plane counter). */
  activeAdj: number;
  inactiveAdj: number;
  /** Rounds in a row the counters moved while the table was read (the correction was left as it was). */
  skipped: number;
  epoch: number;
}

export class SchedState {
  readonly maps: SchedMaps;
  private readonly memo = new Map<number, DestMemo>();
  /** dest_sched records as last written, by destination slot (writeDest skips unchanged ones). */
  private readonly written = new Map<number, DestSchedV>();

  constructor(backend: MapBackend) {
    this.maps = new SchedMaps(backend);
  }

  private memoOf(destId: number): DestMemo {
    let m = this.memo.get(destId);
    if (!m) {
      // A destination slot adopted from the pins (daemon restart): keep its corrections and epoch.
      const cur = this.maps.getDestSched(destId);
      m = { activeAdj: cur.active_adj, inactiveAdj: cur.inactive_adj, skipped: 0, epoch: Math.max(cur.epoch, 1) };
      this.memo.set(destId, m);
    }
    return m;
  }

  // ---- destinations ----------------------------------------------------------------------------------------

  /**
   * Writes dest_sched of a real server: weight (the one scheduled with), thresholds, available. Every change of a
   * service calls it for each of its real servers; only those whose record differs are written (a map update
   * each: at 1,000 real servers, milliseconds a change would otherwise pay).
   */
  writeDest(destId: number, d: { weight: number; upper: number; lower: number }, available = true): void {
    const m = this.memoOf(destId);
    const v: DestSchedV = {
      weight: d.weight,
      u_threshold: d.upper,
      l_threshold: d.lower,
      epoch: m.epoch,
      active_adj: m.activeAdj,
      inactive_adj: m.inactiveAdj,
      flags: available ? DS_F_AVAILABLE : 0,
    };
    const last = this.written.get(destId);
    if (last && sameDestSched(last, v)) return;
    this.putSched(destId, v);
  }

  /** The only writer of dest_sched (the data plane only reads it): what it last wrote is what the map holds. */
  private putSched(destId: number, v: DestSchedV): void {
    this.written.delete(destId);
    this.maps.putDestSched(destId, v);
    this.written.set(destId, v);
  }

  /**
   * Thresholds change (ipvsadm -e): IPVS clears the overload flag when there is no upper threshold any more or a
   * higher one (__ip_vs_update_dest). A new epoch makes the data plane's flag stale. Call before writeDest.
   */
  thresholdsChanged(destId: number, oldUpper: number, newUpper: number): void {
    if (newUpper === 0 || newUpper > oldUpper) this.memoOf(destId).epoch++;
  }

  /** The slot is given to a new destination: its counters, corrections and overload start from zero. */
  resetSlot(destId: number): void {
    this.memo.set(destId, { activeAdj: 0, inactiveAdj: 0, skipped: 0, epoch: 1 });
    this.maps.putDestConns(destId, { active: 0, inactive: 0, overload: 0 });
    this.putSched(destId, { weight: 0, u_threshold: 0, l_threshold: 0, epoch: 1, active_adj: 0, inactive_adj: 0, flags: 0 });
  }

  /** The real server was removed (-d, -D): templates and lblc entries pointing at it are void. */
  retire(destId: number): void {
    const cur = this.maps.getDestSched(destId);
    this.putSched(destId, { ...cur, weight: 0, flags: 0 });
  }

  // ---- services --------------------------------------------------------------------------------------------

  /** Writes svc_persist of a service (before the record whose flag makes the data plane read it). */
  writePersistence(svcId: number, persistent: number, netmask: number, family: Family): void {
    if (persistent > 0) this.maps.putSvcPersist(svcId, { timeout: persistent, mask: netmaskData(netmask, family) });
    else this.maps.clearSvcPersist(svcId);
  }

  /** The service is gone (or its id about to be reused): its templates and lblc entries go too. */
  forgetService(svcId: number): void {
    this.maps.clearSvcPersist(svcId);
    this.maps.flushPersist(svcId);
    this.maps.flushLblc(svcId);
  }

  /** svc_prefix's key of a prefix service. */
  static prefixKey(s: { protocol: Protocol; address: IpAddress; port: number }) {
    return {
      prefixlen: 32 + vipPrefix(s.address),
      family: s.address.family === 'inet' ? AF_INET : AF_INET6,
      proto: s.protocol === 'tcp' ? 6 : 17,
      port: s.port,
      addr: addressToData(s.address),
    };
  }

  putPrefixService(s: { protocol: Protocol; address: IpAddress; port: number }, v: ServiceV): void {
    this.maps.putPrefixService(SchedState.prefixKey(s), v);
  }
  getPrefixService(s: { protocol: Protocol; address: IpAddress; port: number }): ServiceV | undefined {
    return this.maps.getPrefixService(SchedState.prefixKey(s));
  }
  deletePrefixService(s: { protocol: Protocol; address: IpAddress; port: number }): void {
    this.maps.deletePrefixService(SchedState.prefixKey(s));
  }

  /** Which wildcard lookups the data plane must try after an exact miss (svc_wild). */
  setWild(services: readonly { address: IpAddress; port: number }[]): void {
    const port0 = services.filter((s) => s.port === 0).length;
    const prefixes = services.filter((s) => vipPrefix(s.address) < fullPrefix(s.address.family)).length;
    const cur = this.maps.getWild();
    if (cur.port0 !== port0 || cur.prefixes !== prefixes) this.maps.setWild({ port0, prefixes });
  }

  // ---- counting ----------------------------------------------------------------------------------------------

  /**
   * ActiveConn, InActConn and templates per destination id, from live (unexpired) entries whose destination slot
   * still holds the destination they were scheduled to.
   */
  static count(conns: readonly ConnRecord[], templates: readonly PersistEntry[], dests: ReadonlyMap<number, DestInfo>, nowNs: number): Map<number, DestCounts> {
    const out = new Map<number, DestCounts>();
    const get = (id: number): DestCounts => {
      let c = out.get(id);
      if (!c) out.set(id, (c = { active: 0, inactive: 0, persist: 0 }));
      return c;
    };
    for (const { value } of conns) {
      if (value.expires_ns <= nowNs || dests.get(value.dest_id)?.gen !== value.dest_gen) continue;
      if (value.state === ConnState.Established) get(value.dest_id).active++;
      else get(value.dest_id).inactive++;
    }
    for (const { value } of templates) {
      if (value.expires_ns <= nowNs || dests.get(value.dest_id)?.gen !== value.dest_gen) continue;
      get(value.dest_id).persist++;
    }
    return out;
  }

  /**
   * ActiveConn and InActConn of each destination (id -> generation) as the data plane's schedulers see them: its
   * counters plus the upkeep's corrections, i.e. exact as of the last upkeep round plus every connection start and
   * state change since (one that expired or was evicted since is still counted until the next round, at most a
   * second later). Two lookups per destination instead of a walk of the connection table. Templates are counted
   * from `templates` (the persistence table, which only persistent services fill).
   */
  liveCounts(gens: ReadonlyMap<number, number>, templates: readonly PersistEntry[], nowNs: number): Map<number, DestCounts> {
    const out = new Map<number, DestCounts>();
    for (const id of gens.keys()) {
      const dc = this.maps.getDestConns(id);
      const ds = this.maps.getDestSched(id);
      out.set(id, { active: effectiveCount(dc.active, ds.active_adj), inactive: effectiveCount(dc.inactive, ds.inactive_adj), persist: 0 });
    }
    for (const { value } of templates) {
      const c = out.get(value.dest_id);
      if (c && value.expires_ns > nowNs && gens.get(value.dest_id) === value.dest_gen) c.persist++;
    }
    return out;
  }

  /**
   * One round of upkeep (xdpvsd runs it every second):
   *  - the data plane's counters (dest_conns) see connections start and change state, but not leave by expiry or
   *    LRU eviction: each destination's correction becomes (true count from the table) - (its counter). When the
   *    counter moved while the table was being read, the correction is left as it was for that round (at most
   *    three rounds in a row), so a busy destination is not corrected with a count from another moment;
   *  - a persistence template lasts while its client has a live connection to its real server: its expiry moves
   *    to at least `persistent` seconds from now (the data plane extends it on new connections and on packets;
   *    this covers connections that are alive but quiet). Templates of other real servers are left alone.
   * Returns the counts it found.
   */
  maintain(
    conns: BpfMap,
    dests: ReadonlyMap<number, DestInfo>,
    services: ReadonlyMap<number, ServiceInfo>,
    nowNs: number,
  ): Map<number, DestCounts> {
    const before = new Map<number, { active: number; inactive: number }>();
    for (const id of dests.keys()) before.set(id, this.maps.getDestConns(id));
    const records = readConnections(conns);
    const counts = SchedState.count(records, [], dests, nowNs);
    for (const [id] of dests) {
      const after = this.maps.getDestConns(id);
      const b = before.get(id)!;
      const m = this.memoOf(id);
      const moved = after.active !== b.active || after.inactive !== b.inactive;
      if (moved && m.skipped < 3) {
        m.skipped++;
        continue;
      }
      m.skipped = 0;
      const c = counts.get(id) ?? { active: 0, inactive: 0, persist: 0 };
      const activeAdj = wrap32(c.active - after.active);
      const inactiveAdj = wrap32(c.inactive - after.inactive);
      if (activeAdj === m.activeAdj && inactiveAdj === m.inactiveAdj) continue;
      m.activeAdj = activeAdj;
      m.inactiveAdj = inactiveAdj;
      const cur = this.maps.getDestSched(id);
      this.putSched(id, { ...cur, epoch: m.epoch, active_adj: activeAdj, inactive_adj: inactiveAdj });
    }
    this.extendTemplates(records, dests, services, nowNs);
    return counts;
  }

  private extendTemplates(records: readonly ConnRecord[], dests: ReadonlyMap<number, DestInfo>, services: ReadonlyMap<number, ServiceInfo>, nowNs: number): void {
    const done = new Set<string>();
    for (const { key, value } of records) {
      if (value.expires_ns <= nowNs) continue;
      const svc = services.get(value.svc_id);
      if (!svc || svc.persistent <= 0 || dests.get(value.dest_id)?.gen !== value.dest_gen) continue;
      const tkey = templateKey(key, value.svc_id, svc.netmask);
      const id = `${tkey.svc_id} ${tkey.addr.toString('hex')}`;
      if (done.has(id)) continue;
      done.add(id);
      const t = this.maps.getPersist(tkey);
      if (!t || t.expires_ns <= nowNs || t.dest_id !== value.dest_id || t.dest_gen !== value.dest_gen) continue;
      const until = nowNs + svc.persistent * NS;
      // Within a second of the full timeout already (the data plane extended it): not worth a write.
      if (t.expires_ns >= until - NS) continue;
      this.maps.putPersist(tkey, { ...t, expires_ns: until }, true);
    }
  }

  // ---- listing -----------------------------------------------------------------------------------------------

  /**
   * ipvsadm -Lnc: every live connection and persistence template, as IPVS shows them. A template has client port
   * 0, protocol and ports of its service (0 for a port-0 service), state NONE.
   */
  listConnections(
    conns: BpfMap,
    services: ReadonlyMap<number, ServiceInfo>,
    dests: ReadonlyMap<number, DestInfo & DestAddress>,
    nowNs: number,
  ): ConnectionView[] {
    const out: ConnectionView[] = [];
    for (const { key, value } of readConnections(conns)) {
      if (value.expires_ns <= nowNs) continue;
      const svc = services.get(value.svc_id);
      const dest = dests.get(value.dest_id);
      const client = addressFromData(key.src, key.family);
      const vip = addressFromData(key.dst, key.family);
      const rs = dest && dest.gen === value.dest_gen ? dest : undefined;
      out.push({
        protocol: key.proto === 6 ? 'tcp' : 'udp',
        state: CONN_STATES[value.state] ?? 'NONE',
        expires: Math.ceil((value.expires_ns - nowNs) / NS),
        template: false,
        service: svc?.id ?? null,
        client: { address: client.text, port: key.sport },
        virtual: { address: vip.text, port: key.dport },
        destination: rs ? { address: rs.address.text, port: rs.port || key.dport } : { address: '?', port: 0 },
      });
    }
    for (const { key, value } of this.maps.persistEntries()) {
      if (value.expires_ns <= nowNs) continue;
      const svc = services.get(key.svc_id);
      const dest = dests.get(value.dest_id);
      if (!svc) continue;
      const family: Family = key.family === AF_INET ? 'inet' : 'inet6';
      out.push({
        protocol: svc.protocol,
        state: 'NONE',
        expires: Math.ceil((value.expires_ns - nowNs) / NS),
        template: true,
        service: svc.id,
        client: { address: addressFromData(key.addr, family).text, port: 0 },
        virtual: { address: svc.address.text, port: svc.port },
        destination: dest && dest.gen === value.dest_gen ? { address: dest.address.text, port: svc.port === 0 ? 0 : dest.port } : { address: '?', port: 0 },
      });
    }
    return out;
  }
}

/** A template's key for the client of a connection. */
function templateKey(flow: FlowKeyV, svcId: number, netmask: number): SvcAddrKeyV {
  const family: Family = flow.family === AF_INET ? 'inet' : 'inet6';
  const mask = netmaskData(netmask, family);
  const addr = Buffer.alloc(16);
  for (let i = 0; i < 16; i++) addr[i] = flow.src[i] & mask[i];
  return { addr, svc_id: svcId, family: flow.family };
}

function sameDestSched(a: DestSchedV, b: DestSchedV): boolean {
  return (
    a.weight === b.weight &&
    a.u_threshold === b.u_threshold &&
    a.l_threshold === b.l_threshold &&
    a.epoch === b.epoch &&
    a.active_adj === b.active_adj &&
    a.inactive_adj === b.inactive_adj &&
    a.flags === b.flags
  );
}

/** A counter plus its correction as the data plane reads them (bpf/sched_lc.h conns_effective): never below 0. */
function effectiveCount(counted: number, adj: number): number {
  return Math.max(0, ((counted + adj) | 0));
}

/** A difference of u32 counters as the data plane adds it back: signed 32 bits. */
function wrap32(n: number): number {
  return (n << 0) | 0;
}
