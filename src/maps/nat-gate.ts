// The data plane's NAT switch (`nat_ctl`, bpf/maps.h): on while some `dests` slot holds a NAT destination. While it
// is off, packets that are for no service skip the NAT reply lookup (a hash lookup each: most of their cost).

import type { BpfMap } from './backend.js';
import { FWD_METHODS } from './structs.js';

export const FWD_NAT = FWD_METHODS.indexOf('nat');

const KEY = Buffer.alloc(4);

/**
 * Mirrors which `dests` slots hold a NAT record. Every write of `dests` goes through LbMaps, which reports it here,
 * so a slot of a removed real server (kept while its connections drain) still counts until it is rewritten.
 */
export class NatGate {
  readonly #map: BpfMap;
  readonly #slots = new Set<number>();
  #on: boolean;

  /** readDest(id) gives the (family, method) a slot holds: used once, to adopt the maps of a previous daemon. */
  constructor(map: BpfMap, maxDests: number, readDest: (id: number) => { family: number; method: number }) {
    this.#map = map;
    this.#on = (map.lookup(KEY)?.readUInt32LE(0) ?? 0) !== 0;
    // Only when a previous daemon left it on: its NAT slots are unknown here, and a slot scan is 1 read per slot.
    if (this.#on) {
      for (let id = 0; id < maxDests; id++) {
        const d = readDest(id);
        if (d.family !== 0 && d.method === FWD_NAT) this.#slots.add(id);
      }
      this.#apply();
    }
  }

  /** Whether packets for no service are checked for NAT replies. */
  get on(): boolean {
    return this.#on;
  }

  /** Slot `id` of `dests` now holds a destination of that family (0: none) and method. */
  written(id: number, family: number, method: number): void {
    if (family !== 0 && method === FWD_NAT) this.#slots.add(id);
    else this.#slots.delete(id);
    this.#apply();
  }

  #apply(): void {
    const on = this.#slots.size > 0;
    if (on === this.#on) return;
    const v = Buffer.alloc(4);
    v.writeUInt32LE(on ? 1 : 0);
    this.#map.update(KEY, v);
    this.#on = on;
  }
}
