// Reading a BPF ring buffer map (BPF_MAP_TYPE_RINGBUF) from Node: records handed over in order, without blocking.

import { ErrorCode, XdpvsError } from '../errors.js';
import type { BpfMap } from '../maps/backend.js';
import { KernelMap, kernelMapFd } from './kernel-backend.js';
import { MapType, cError, ringBufferConsume, ringBufferFree, ringBufferNew, type RingPtr } from './libbpf.js';

export class RingReader {
  #rb: RingPtr | null;
  readonly name: string;

  /** Opens the ring buffer `map` (a kernel map of this process' backend). Throws XDPVS_ERR_BPF. */
  constructor(map: BpfMap) {
    this.name = map.name;
    if (!(map instanceof KernelMap) || map.type !== MapType.Ringbuf) {
      throw new XdpvsError(ErrorCode.Bpf, `map "${map.name}" is not a kernel ring buffer`, { map: map.name });
    }
    const rb = ringBufferNew(kernelMapFd(map));
    if (typeof rb === 'number') throw cError(ErrorCode.Bpf, 'ring_buffer__new', rb, `cannot read ring buffer "${map.name}"`, { map: map.name });
    this.#rb = rb;
  }

  /** Hands every record waiting now to `sink` (each a copy); returns how many. Throws XDPVS_ERR_BPF. */
  drain(sink: (record: Buffer) => void): number {
    if (this.#rb === null) throw new XdpvsError(ErrorCode.Bpf, `ring buffer "${this.name}" was closed`, { op: 'use_after_close', map: this.name });
    const n = ringBufferConsume(this.#rb, sink);
    if (n < 0) throw cError(ErrorCode.Bpf, 'ring_buffer__consume', n, `cannot read ring buffer "${this.name}"`, { map: this.name });
    return n;
  }

  close(): void {
    if (this.#rb !== null) ringBufferFree(this.#rb);
    this.#rb = null;
  }
}
