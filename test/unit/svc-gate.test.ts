// The service gate as the daemon keeps it (src/maps/svc-gate.ts), on the in-memory maps: filter bits follow the
// `services` keys, the change time moves exactly when a key's service could change, a new daemon adopts the maps.
// That the data plane computes the same bits is test/datapath/fast-path.test.ts's.

import { describe, expect, it } from 'vitest';

import { LB_MAPS, LbMaps } from '../../src/maps/lb-maps.js';
import { MemoryMapBackend } from '../../src/maps/memory-backend.js';
import { SchedMaps } from '../../src/maps/sched-maps.js';
import { ServiceKey, SvcGateValue, type ServiceKeyV } from '../../src/maps/structs.js';
import { svcFilterBit } from '../../src/maps/svc-gate.js';
import { parseAddress } from '../../src/lb/address.js';

/** An address as the maps hold it (16 bytes, IPv4 in the first 4). */
function ip16(text: string): Buffer {
  const out = Buffer.alloc(16);
  Buffer.from(parseAddress(text).bytes).copy(out);
  return out;
}

function backend(): MemoryMapBackend {
  return new MemoryMapBackend(Object.values(LB_MAPS).map((m) => ({ ...m, maxEntries: m.kind === 'array' && m.name !== 'dests' ? 4 : 64 })));
}

const key = (vip: string, port: number, family = 2): ServiceKeyV => ({ addr: ip16(vip), port, proto: 6, family });
const svc = (id: number) => ({ id, sched: 0, flags: 0, ring_slot: 0, ring_len: 0 });

function gate(b: MemoryMapBackend): { changed: bigint; bit: (k: ServiceKeyV) => boolean } {
  const raw = b.map('svc_gate').lookup(Buffer.alloc(4))!;
  expect(raw.length).toBe(SvcGateValue.size);
  return {
    changed: raw.readBigUInt64LE(0),
    bit: (k) => {
      const i = svcFilterBit(ServiceKey.encode(k));
      return (raw[8 + (i >>> 3)] & (1 << (i & 7))) !== 0;
    },
  };
}

describe('service gate (svc_gate)', () => {
  it('sets a key\'s filter bit with its service and clears it with the last key that shares it', () => {
    const b = backend();
    const maps = new LbMaps(b);
    const a = key('198.18.1.1', 80);
    expect(gate(b).bit(a)).toBe(false);
    maps.putService(a, svc(1));
    expect(gate(b).bit(a)).toBe(true);
    // Another key on the same bit (found by search: 2^15 bits, so some port of the VIP shares it).
    let twin: ServiceKeyV | undefined;
    for (let port = 1; port < 65536 && !twin; port++) {
      const k = key('198.18.1.1', port);
      if (port !== 80 && svcFilterBit(ServiceKey.encode(k)) === svcFilterBit(ServiceKey.encode(a))) twin = k;
    }
    expect(twin).toBeDefined();
    maps.putService(twin!, svc(2));
    maps.deleteService(a);
    expect(gate(b).bit(a)).toBe(true); // the twin still needs it
    maps.deleteService(twin!);
    expect(gate(b).bit(a)).toBe(false);
  });

  it('moves the change time when a key gets a service or another one, or loses it; not when its record is rewritten', () => {
    const b = backend();
    const maps = new LbMaps(b);
    const sched = new SchedMaps(b);
    const a = key('fd00:1::1', 443, 10);
    const t0 = gate(b).changed;
    expect(t0).toBeGreaterThan(0n);
    maps.putService(a, svc(3));
    const t1 = gate(b).changed;
    expect(t1).toBeGreaterThan(t0);
    maps.putService(a, { ...svc(3), ring_slot: 7, ring_len: 2 }); // a new schedule table: same service
    expect(gate(b).changed).toBe(t1);
    maps.putService(a, svc(4)); // the key now names another service
    const t2 = gate(b).changed;
    expect(t2).toBeGreaterThan(t1);
    maps.deleteService(a);
    const t3 = gate(b).changed;
    expect(t3).toBeGreaterThan(t2);
    maps.deleteService(a); // gone already
    expect(gate(b).changed).toBe(t3);
    // Prefix services are not in the filter (the data plane lets everything through while one exists), but a new one
    // can take a flow over: the time moves.
    const pk = { prefixlen: 32 + 24, family: 2, proto: 6, port: 80, addr: ip16('198.18.7.0') };
    sched.putPrefixService(pk, svc(5));
    const t4 = gate(b).changed;
    expect(t4).toBeGreaterThan(t3);
    expect(gate(b).bit({ addr: ip16('198.18.7.0'), port: 80, proto: 6, family: 2 })).toBe(false);
    sched.deletePrefixService(pk);
    expect(gate(b).changed).toBeGreaterThan(t4);
  });

  it('a new daemon on the same maps rebuilds the filter from `services`', () => {
    const b = backend();
    const a = key('198.18.1.9', 8080);
    new LbMaps(b).putService(a, svc(6));
    // What the kernel keeps across a restart is the maps: the gate of the next daemon starts from them.
    const fresh = new MemoryMapBackend(Object.values(LB_MAPS).map((m) => ({ ...m, maxEntries: b.map(m.name).maxEntries })));
    for (const name of ['services', 'svc_gate']) for (const k of b.map(name).keys()) fresh.map(name).update(k, b.map(name).lookup(k)!);
    fresh.map('svc_gate').update(Buffer.alloc(4), Buffer.alloc(SvcGateValue.size)); // as if it had been lost
    new LbMaps(fresh);
    expect(gate(fresh).bit(a)).toBe(true);
    expect(gate(fresh).changed).toBeGreaterThan(0n);
  });
});
