// A peer's connection entry written into this director's tables: `conns` (and `nat_reverse` for NAT, the client's
// template for a persistent service), under this director's destination id for the same real server, unless the
// entry here is at least as recent.

import type { BpfMap } from '../maps/backend.js';
import { Persist, SvcAddrKey, SvcPersist } from '../maps/sched-structs.js';
import { AF_INET, AF_INET6, Conn, ConnState, FlowKey, IPPROTO_TCP, IPPROTO_UDP, NatRev } from '../maps/structs.js';
import type { Directory } from './directory.js';
import type { SyncEntry } from './wire.js';

export type ApplyOutcome =
  /** Written. */
  | 'applied'
  /** This director has no such service, or no such real server in it (or not yet): ignored. */
  | 'unknown'
  /** The entry here saw a packet at least as recently, or the peer's entry has expired: kept as it is. */
  | 'older'
  /** Fields no data plane writes (protocol, family, state, an IPv4 address with bytes past the fourth): refused. */
  | 'invalid';

export interface ConnTables {
  conns: BpfMap;
  natReverse: BpfMap;
  /** Persistence (-p): each service's timeout and netmask, and the client templates (bpf/persist.h). */
  svcPersist: BpfMap;
  persist: BpfMap;
}

const MS = 1e6;
const LAST_STATE = ConnState.Udp;

function validAddr(addr: Buffer, family: number): boolean {
  return addr.length === 16 && (family === AF_INET6 || (family === AF_INET && addr.subarray(4).every((b) => b === 0)));
}

function valid(e: SyncEntry): boolean {
  if (e.proto !== IPPROTO_TCP && e.proto !== IPPROTO_UDP) return false;
  if (e.family !== AF_INET && e.family !== AF_INET6) return false;
  if (e.state > LAST_STATE || (e.proto === IPPROTO_UDP) !== (e.state === ConnState.Udp)) return false;
  return validAddr(e.client, e.family) && validAddr(e.vaddr, e.family) && validAddr(e.svcAddr, e.family) && validAddr(e.rsAddr, e.rsFamily);
}

/** The `conns` key of e's flow. */
export function entryFlowKey(e: SyncEntry): Buffer {
  return FlowKey.encode({ src: e.client, dst: e.vaddr, sport: e.clientPort, dport: e.vport, proto: e.proto, family: e.family });
}

/** The last_ns applyEntry writes for e at nowNs: as far back from now as the peer's last packet was from its now. */
export function entryLastNs(e: SyncEntry, nowNs: number): number {
  return Math.max(0, nowNs - e.ageMs * MS);
}

/**
 * Writes e into the tables at nowNs (the data plane's clock, CLOCK_MONOTONIC), as this director's data plane would
 * have written it: the same flow key, its own destination id and generation, the peer's state, a last packet and an
 * expiry as far from now as they were from the peer's now. The per-destination connection counters are not touched
 * here: the daemon's upkeep recounts them from `conns` every second (src/lb/sched-sync.ts).
 */
export function applyEntry(tables: ConnTables, dir: Directory, e: SyncEntry, nowNs: number): ApplyOutcome {
  if (!valid(e)) return 'invalid';
  const local = dir.byName(
    { proto: e.proto, family: e.family, addr: e.svcAddr, prefix: e.svcPrefix, port: e.svcPort },
    { family: e.rsFamily, addr: e.rsAddr, port: e.rsPort },
  );
  if (!local) return 'unknown';
  if (e.remainingMs === 0) return 'older';
  const key = entryFlowKey(e);
  const lastNs = entryLastNs(e, nowNs);
  const cur = tables.conns.lookup(key);
  if (cur) {
    const c = Conn.decode(cur);
    if (c.expires_ns > nowNs && c.last_ns >= lastNs) return 'older';
  }
  tables.conns.update(
    key,
    Conn.encode({ dest_id: local.destId, dest_gen: local.gen, svc_id: local.svcId, state: e.state, last_ns: lastNs, expires_ns: nowNs + e.remainingMs * MS }),
  );
  // NAT: the real server's replies find the connection through the reverse entry (bpf/nat.h nat_track).
  if (local.method === 'nat' && e.rsFamily === e.family) {
    tables.natReverse.update(
      FlowKey.encode({ src: e.rsAddr, dst: e.client, sport: e.rsPort, dport: e.clientPort, proto: e.proto, family: e.family }),
      NatRev.encode({ vaddr: e.vaddr, vport: e.vport, dest_id: local.destId, dest_gen: local.gen }),
    );
  }
  keepPersistence(tables, e, local.svcId, local.destId, local.gen, nowNs);
  return 'applied';
}

/**
 * A persistent service's client gets the template of its synced connection's real server when it has no live one
 * here, so that its next connection after a failover goes where its others are (IPVS syncs templates likewise). A
 * live template is left alone: the upkeep extends it while the client's connections live.
 */
function keepPersistence(tables: ConnTables, e: SyncEntry, svcId: number, destId: number, gen: number, nowNs: number): void {
  const id = Buffer.alloc(4);
  id.writeUInt32LE(svcId);
  const raw = tables.svcPersist.lookup(id);
  const sp = raw && SvcPersist.decode(raw);
  if (!sp || sp.timeout === 0) return;
  const addr = Buffer.alloc(16);
  for (let i = 0; i < 16; i++) addr[i] = e.client[i] & sp.mask[i];
  const key = SvcAddrKey.encode({ addr, svc_id: svcId, family: e.family });
  const cur = tables.persist.lookup(key);
  if (cur && Persist.decode(cur).expires_ns > nowNs) return;
  tables.persist.update(key, Persist.encode({ dest_id: destId, dest_gen: gen, expires_ns: nowNs + sp.timeout * 1e9 }));
}
