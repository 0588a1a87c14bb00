// Typed access to the real server's decap maps (names as in bpf/decap.h): the VIPs it strips tunnels for, this
// host's addresses (outer destinations it accepts), and its reason counters.

import { addressFromData, addressToData, type IpAddress } from '../lb/address.js';
import type { BpfMap, MapBackend } from './backend.js';
import type { MapSpec } from './lb-maps.js';
import { DECAP_REASONS, type DecapReason } from './reasons.js';
import { AF_INET, AF_INET6, DecapKey } from './structs.js';

/** The decap program's maps: name, kind, key and value sizes. */
export const DECAP_MAPS = {
  decap_vips: { name: 'decap_vips', kind: 'hash', keySize: DecapKey.size, valueSize: 4 },
  decap_local: { name: 'decap_local', kind: 'hash', keySize: DecapKey.size, valueSize: 4 },
  decap_reasons: { name: 'decap_reasons', kind: 'percpu_array', keySize: 4, valueSize: 8 },
} as const satisfies Record<string, MapSpec>;

function keyOf(a: IpAddress): Buffer {
  return DecapKey.encode({ addr: addressToData(a), family: a.family === 'inet' ? AF_INET : AF_INET6 });
}

/** Makes `map` hold exactly `addresses` (adds the missing, deletes the others); returns how many changed. */
function sync(map: BpfMap, addresses: readonly IpAddress[]): number {
  const want = new Map(addresses.map((a) => [keyOf(a).toString('hex'), a]));
  const zero = Buffer.alloc(4);
  let changed = 0;
  for (const k of map.keys()) {
    if (want.delete(k.toString('hex'))) continue;
    map.delete(k);
    changed++;
  }
  for (const a of want.values()) {
    map.update(keyOf(a), zero);
    changed++;
  }
  return changed;
}

function list(map: BpfMap): IpAddress[] {
  return map.keys().map((k) => {
    const v = DecapKey.decode(k);
    return addressFromData(v.addr, v.family);
  });
}

export class DecapMaps {
  readonly vips: BpfMap;
  readonly local: BpfMap;
  readonly reasons: BpfMap;

  constructor(readonly backend: MapBackend) {
    this.vips = backend.map(DECAP_MAPS.decap_vips.name);
    this.local = backend.map(DECAP_MAPS.decap_local.name);
    this.reasons = backend.map(DECAP_MAPS.decap_reasons.name);
  }

  /** The VIPs whose tunnelled packets are stripped: exactly these from now on. Returns how many entries changed. */
  setVips(vips: readonly IpAddress[]): number {
    return sync(this.vips, vips);
  }
  /** This host's addresses, the outer destinations accepted: exactly these from now on. */
  setLocal(addresses: readonly IpAddress[]): number {
    return sync(this.local, addresses);
  }
  listVips(): IpAddress[] {
    return list(this.vips);
  }
  listLocal(): IpAddress[] {
    return list(this.local);
  }

  reasonCounts(): Record<DecapReason, number> {
    const out = {} as Record<DecapReason, number>;
    DECAP_REASONS.forEach((name, i) => {
      const key = Buffer.alloc(4);
      key.writeUInt32LE(i);
      const raw = this.reasons.lookup(key);
      let sum = 0;
      for (let c = 0; raw && c < this.backend.possibleCpus; c++) sum += Number(raw.readBigUInt64LE(c * 8));
      out[name] = sum;
    });
    return out;
  }
}
