// The data plane's service gate (`svc_gate`, bpf/maps.h; struct vs_svc_gate): a one-bit-per-hash filter of the
// `services` keys, so that a packet for no service passes without a hash lookup, and the time a packet's service last
// could have changed, before which an established flow's service is looked up again (bpf/conn.h, conn_known).

import { endianness } from 'node:os';
import type { BpfMap, MapBackend } from './backend.js';
import { SvcGateValue } from './structs.js';

/** XDPVS_SVC_FILTER_SHIFT, XDPVS_SVC_HASH_MUL (bpf/xdpvs_shared.h); the filter has 2^(32 - shift) bits. */
const SVC_FILTER_SHIFT = 17;
const SVC_HASH_MUL = 0x9e3779b1;
/** sizeof(struct vs_svc_gate): the time, then the filter (checked against the object's BTF). */
export const SVC_GATE_SIZE = SvcGateValue.size;

const LE = endianness() === 'LE';
const word = (b: Buffer, off: number): number => (LE ? b.readUInt32LE(off) : b.readUInt32BE(off));

/**
 * The filter bit of an encoded vs_service_key (20 bytes), as svc_filter_hash() in bpf/service.h computes it from a
 * packet: the key's five 32-bit words as they lie in memory (the data plane loads them in host order).
 */
export function svcFilterBit(encodedKey: Buffer): number {
  let h = Math.imul(word(encodedKey, 0), SVC_HASH_MUL);
  for (let off = 4; off < 20; off += 4) h = Math.imul(h ^ word(encodedKey, off), SVC_HASH_MUL);
  return h >>> SVC_FILTER_SHIFT;
}

/** The CLOCK_MONOTONIC nanoseconds bpf_ktime_get_ns() reads (libuv's hrtime uses that clock on Linux). */
const monotonicNs = (): bigint => process.hrtime.bigint();

/**
 * What packets may be for a service, and when the service a packet maps to last changed. Every write of `services`
 * and `svc_prefix` is reported here (LbMaps, SchedMaps); one instance per data plane (svcGateOf), since both write it.
 */
export class SvcGate {
  readonly #map: BpfMap;
  /** Service id by key (hex of the encoded key; prefix keys prefixed with 'p'): a new or renumbered key moves the time. */
  readonly #ids = new Map<string, number>();
  /** Exact keys per filter bit: a bit is cleared with the last key that sets it. */
  readonly #bitKeys = new Map<number, number>();

  constructor(map: BpfMap, services: readonly [Buffer, number][], prefixServices: readonly [Buffer, number][]) {
    if (map.valueSize !== SVC_GATE_SIZE) throw new Error(`map svc_gate: value of ${map.valueSize} bytes, expected ${SVC_GATE_SIZE}`);
    this.#map = map;
    // A previous daemon's services (adopted maps): the filter is rebuilt from them, and the time moved, which only
    // sends each established flow's next packet through the full lookup once.
    for (const [key, id] of services) this.#add(key.toString('hex'), id, svcFilterBit(key));
    for (const [key, id] of prefixServices) this.#ids.set(`p${key.toString('hex')}`, id);
    this.#write();
  }

  /** `services` now maps this encoded key to service id. */
  servicePut(key: Buffer, id: number): void {
    if (this.#ids.get(key.toString('hex')) === id) return;
    this.#add(key.toString('hex'), id, svcFilterBit(key));
    this.#write();
  }

  /** `services` no longer holds this encoded key. */
  serviceDeleted(key: Buffer): void {
    const k = key.toString('hex');
    if (!this.#ids.delete(k)) return;
    const bit = svcFilterBit(key);
    const n = (this.#bitKeys.get(bit) ?? 1) - 1;
    if (n > 0) this.#bitKeys.set(bit, n);
    else this.#bitKeys.delete(bit);
    this.#write();
  }

  /** `svc_prefix` now maps this encoded key to service id (prefix services bypass the filter: only the time moves). */
  prefixPut(key: Buffer, id: number): void {
    const k = `p${key.toString('hex')}`;
    if (this.#ids.get(k) === id) return;
    this.#ids.set(k, id);
    this.#write();
  }

  prefixDeleted(key: Buffer): void {
    if (this.#ids.delete(`p${key.toString('hex')}`)) this.#write();
  }

  /** Whether the filter lets packets of this encoded service key through (tests). */
  passes(key: Buffer): boolean {
    return this.#bitKeys.has(svcFilterBit(key));
  }

  #add(k: string, id: number, bit: number): void {
    if (!this.#ids.has(k)) this.#bitKeys.set(bit, (this.#bitKeys.get(bit) ?? 0) + 1);
    this.#ids.set(k, id);
  }

  /** The whole value, with the time read after the change it follows (the data plane compares entries against it). */
  #write(): void {
    const v = Buffer.alloc(SVC_GATE_SIZE);
    for (const bit of this.#bitKeys.keys()) {
      const off = 8 + (bit >>> 6) * 8;
      // Bit (bit & 63) of a u64 in host order: byte (bit & 63) >> 3 of it on little-endian hosts.
      const byte = LE ? off + ((bit & 63) >>> 3) : off + 7 - ((bit & 63) >>> 3);
      v[byte] |= 1 << (bit & 7);
    }
    if (LE) v.writeBigUInt64LE(monotonicNs(), 0);
    else v.writeBigUInt64BE(monotonicNs(), 0);
    this.#map.update(Buffer.alloc(4), v);
  }
}

const gates = new WeakMap<MapBackend, SvcGate>();

/** The gate of this data plane, made on first use from what `services` and `svc_prefix` hold now. */
export function svcGateOf(backend: MapBackend): SvcGate {
  let g = gates.get(backend);
  if (!g) {
    const entries = (name: string): [Buffer, number][] => {
      const m = backend.map(name);
      const out: [Buffer, number][] = [];
      for (const k of m.keys()) {
        const v = m.lookup(k);
        if (v) out.push([k, word(v, 0)]); // vs_service.id
      }
      return out;
    };
    g = new SvcGate(backend.map('svc_gate'), entries('services'), entries('svc_prefix'));
    gates.set(backend, g);
  }
  return g;
}
