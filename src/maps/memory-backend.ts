// An in-memory MapBackend with the kernel's map semantics (array entries always exist, hash maps are bounded,
// LRU evicts the oldest): the fake at the kernel boundary that unprivileged tests run the real code against.

import { XdpvsError, ErrorCode } from '../errors.js';
import { UpdateFlag, perCpuStride, type BpfMap, type InnerMap, type MapBackend } from './backend.js';
import type { MapKind, MapSpec } from './lb-maps.js';

class MemoryMap implements InnerMap {
  readonly perCpu: boolean;
  private readonly entries = new Map<string, Buffer>();
  private readonly storedSize: number;

  constructor(
    readonly name: string,
    readonly kind: MapKind,
    readonly keySize: number,
    readonly valueSize: number,
    readonly maxEntries: number,
    cpus: number,
  ) {
    this.perCpu = kind === 'percpu_array';
    this.storedSize = this.perCpu ? perCpuStride(valueSize) * cpus : valueSize;
  }

  private isArray(): boolean {
    return this.kind === 'array' || this.kind === 'percpu_array' || this.kind === 'array_of_maps';
  }

  private check(key: Buffer): string {
    if (key.length !== this.keySize) throw this.fail('lookup', 'EINVAL', `key of ${key.length} bytes, map wants ${this.keySize}`);
    if (this.isArray() && key.readUInt32LE(0) >= this.maxEntries) throw this.fail('update', 'E2BIG', `index ${key.readUInt32LE(0)} beyond ${this.maxEntries}`);
    return key.toString('hex');
  }

  private fail(op: string, errno: string, why: string): XdpvsError {
    return new XdpvsError(ErrorCode.Map, `${op} on map ${this.name} failed: ${errno} (${why})`, { op, map: this.name, errno });
  }

  lookup(key: Buffer): Buffer | undefined {
    if (this.isArray() && key.readUInt32LE(0) >= this.maxEntries) return undefined;
    const k = this.check(key);
    const v = this.entries.get(k);
    if (v) {
      if (this.kind === 'lru_hash') {
        this.entries.delete(k);
        this.entries.set(k, v);
      }
      return Buffer.from(v);
    }
    return this.isArray() && this.kind !== 'array_of_maps' ? Buffer.alloc(this.storedSize) : undefined;
  }

  update(key: Buffer, value: Buffer, flag: UpdateFlag = UpdateFlag.Any): void {
    const k = this.check(key);
    if (value.length !== this.storedSize) throw this.fail('update', 'EINVAL', `value of ${value.length} bytes, map wants ${this.storedSize}`);
    const present = this.entries.has(k) || (this.isArray() && this.kind !== 'array_of_maps');
    if (flag === UpdateFlag.NoExist && present) throw this.fail('update', 'EEXIST', 'key exists');
    if (flag === UpdateFlag.Exist && !present) throw this.fail('update', 'ENOENT', 'no such key');
    if (!this.entries.has(k) && !this.isArray() && this.entries.size >= this.maxEntries) {
      if (this.kind !== 'lru_hash') throw this.fail('update', 'E2BIG', 'map is full');
      this.entries.delete(this.entries.keys().next().value as string);
    }
    this.entries.delete(k);
    this.entries.set(k, Buffer.from(value));
  }

  delete(key: Buffer): boolean {
    const k = this.check(key);
    if (this.isArray() && this.kind !== 'array_of_maps') throw this.fail('delete', 'EINVAL', 'array entries cannot be deleted');
    return this.entries.delete(k);
  }

  keys(): Buffer[] {
    if (this.isArray() && this.kind !== 'array_of_maps') {
      return Array.from({ length: this.maxEntries }, (_, i) => {
        const b = Buffer.alloc(4);
        b.writeUInt32LE(i);
        return b;
      });
    }
    return [...this.entries.keys()].map((k) => Buffer.from(k, 'hex'));
  }

  updateBatch(keys: Buffer, values: Buffer): void {
    const count = keys.length / this.keySize;
    const vb = this.storedSize;
    if (!Number.isInteger(count) || values.length !== count * vb) {
      throw this.fail('update_batch', 'EINVAL', `${keys.length} bytes of keys and ${values.length} bytes of values are not whole entries`);
    }
    for (let i = 0; i < count; i++) this.update(keys.subarray(i * this.keySize, (i + 1) * this.keySize), values.subarray(i * vb, (i + 1) * vb));
  }

  close(): void {}
}

export interface MemoryMapShape extends MapSpec {
  maxEntries: number;
}

export class MemoryMapBackend implements MapBackend {
  private readonly maps = new Map<string, MemoryMap>();
  private readonly inners = new Map<string, MemoryMap>();

  constructor(
    shapes: MemoryMapShape[],
    readonly possibleCpus = 2,
  ) {
    for (const s of shapes) this.maps.set(s.name, new MemoryMap(s.name, s.kind, s.keySize, s.valueSize, s.maxEntries, possibleCpus));
  }

  map(name: string): BpfMap {
    const m = this.maps.get(name);
    if (!m) throw new XdpvsError(ErrorCode.Map, `no map named ${name}`, { map: name });
    return m;
  }

  createInnerArray(outer: string, entries: number): InnerMap {
    this.map(outer);
    return new MemoryMap(`${outer}_inner`, 'array', 4, 4, entries, this.possibleCpus);
  }

  setInner(outer: string, index: number, inner: InnerMap): void {
    const key = Buffer.alloc(4);
    key.writeUInt32LE(index);
    this.map(outer).update(key, Buffer.alloc(4));
    this.inners.set(`${outer}/${index}`, inner as MemoryMap);
  }

  getInner(outer: string, index: number): InnerMap | undefined {
    const key = Buffer.alloc(4);
    key.writeUInt32LE(index);
    if (!this.map(outer).lookup(key)) {
      this.inners.delete(`${outer}/${index}`);
      return undefined;
    }
    return this.inners.get(`${outer}/${index}`);
  }

  async placeInners(outer: string, slots: readonly { index: number; inner: InnerMap | null }[]): Promise<void> {
    await this.gracePeriod();
    for (const { index, inner } of slots) {
      if (inner) this.setInner(outer, index, inner);
      else {
        const key = Buffer.alloc(4);
        key.writeUInt32LE(index);
        this.map(outer).delete(key);
        this.inners.delete(`${outer}/${index}`);
      }
    }
  }

  /**
   * No program runs on these maps: a grace period is an already settled promise (callers still see it async; not a
   * timer, which tests with fake timers would never fire).
   */
  gracePeriod(): Promise<void> {
    return Promise.resolve();
  }

  close(): void {}
}
