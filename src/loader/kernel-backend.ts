// MapBackend over real kernel maps: the maps of a loaded object, or maps adopted from their bpffs pins.

import fs from 'node:fs';
import path from 'node:path';

import { ErrorCode, XdpvsError } from '../errors.js';
import { UpdateFlag, perCpuStride, type BpfMap, type InnerMap, type MapBackend } from '../maps/backend.js';
import {
  BPF_ANY,
  BPF_F_INNER_MAP,
  MapType,
  cError,
  closeFd,
  errno,
  isArrayType,
  isMapInMapType,
  isPerCpuType,
  mapCreate,
  mapDeleteElem,
  mapDeleteElemAsync,
  mapGetFdById,
  mapGetNextKey,
  mapInfo,
  mapLookupBatch,
  mapLookupElem,
  mapUpdateBatch,
  mapUpdateElem,
  mapUpdateBatchAsync,
  mapUpdateElemAsync,
  numPossibleCpus,
  objGet,
  rcuGracePeriodAsync,
  rcuGracePeriodNow,
} from './libbpf.js';

let cpuCount: number | undefined;

/** The kernel's possible-CPU count (what per-CPU map values are sized by), read once. */
export function possibleCpus(): number {
  if (cpuCount === undefined) {
    const n = numPossibleCpus();
    if (n <= 0) throw cError(ErrorCode.Bpf, 'libbpf_num_possible_cpus', n, 'cannot count possible CPUs');
    cpuCount = n;
  }
  return cpuCount;
}

/** Throws XDPVS_ERR_MAP unless the kernel's map has the key and value sizes the caller's codecs expect. */
export function checkMapShape(map: BpfMap, keySize: number, valueSize: number): void {
  if (map.keySize === keySize && map.valueSize === valueSize) return;
  throw new XdpvsError(
    ErrorCode.Map,
    `map "${map.name}" has key size ${map.keySize} and value size ${map.valueSize} in the kernel, ` +
      `but this program expects key size ${keySize} and value size ${valueSize} ` +
      `(object and program are from different versions, or a stale pin was adopted)`,
    { op: 'check_map_shape', map: map.name, kernelKeySize: map.keySize, kernelValueSize: map.valueSize, keySize, valueSize },
  );
}

const fdOf = new WeakMap<KernelMap, () => number>();

/** The fd behind a map of this directory (throws when it was closed). Not for use above src/loader. */
export function kernelMapFd(map: BpfMap): number {
  const get = map instanceof KernelMap ? fdOf.get(map) : undefined;
  if (!get) {
    throw new XdpvsError(ErrorCode.Internal, `map "${map.name}" is not a kernel map`, { map: map.name });
  }
  return get();
}

/** One kernel map behind an fd. Sizes, type and id come from the kernel itself (bpf_obj_get_info_by_fd). */
export class KernelMap implements InnerMap {
  readonly name: string;
  readonly keySize: number;
  readonly valueSize: number;
  readonly maxEntries: number;
  readonly perCpu: boolean;
  /** enum bpf_map_type */
  readonly type: number;
  /** The kernel's map id (what `bpftool map show id N` takes). */
  readonly id: number;
  /** map_flags the map was created with. */
  readonly mapFlags: number;
  readonly #cpus: number;
  /** Bytes of a value as user space reads and writes it (all CPUs for per-CPU maps). */
  readonly #valueBytes: number;
  #fd: number;
  readonly #ownsFd: boolean;

  /**
   * Wraps fd (ownsFd: close() closes it; otherwise its owner, a bpf_object, does). Throws XDPVS_ERR_MAP when the
   * fd is not a map.
   */
  constructor(name: string, fd: number, ownsFd: boolean) {
    const info = mapInfo(fd);
    if (typeof info === 'number') {
      if (ownsFd) closeFd(fd);
      throw cError(ErrorCode.Map, 'bpf_obj_get_info_by_fd', info, `cannot read map "${name}"`, { map: name });
    }
    this.name = name;
    this.type = info.type;
    this.id = info.id;
    this.keySize = info.keySize;
    this.valueSize = info.valueSize;
    this.maxEntries = info.maxEntries;
    this.mapFlags = info.mapFlags;
    this.perCpu = isPerCpuType(info.type);
    this.#cpus = this.perCpu ? possibleCpus() : 1;
    this.#valueBytes = this.perCpu ? this.#cpus * perCpuStride(info.valueSize) : info.valueSize;
    this.#fd = fd;
    this.#ownsFd = ownsFd;
    fdOf.set(this, () => this.#live());
  }

  /** Bytes of one value buffer as lookup returns it and update takes it. */
  get valueBytes(): number {
    return this.#valueBytes;
  }

  #live(): number {
    if (this.#fd < 0) {
      throw new XdpvsError(ErrorCode.Map, `map "${this.name}" was closed`, { op: 'use_after_close', map: this.name });
    }
    return this.#fd;
  }

  #fail(op: string, ret: number, what: string, extra: Record<string, unknown> = {}): XdpvsError {
    return cError(ErrorCode.Map, op, ret, `map "${this.name}": ${what}`, { map: this.name, ...extra });
  }

  // A short buffer would let the kernel read or write past it: lengths are checked before every call.
  #checkLen(op: string, what: 'key' | 'value', buf: Buffer, want: number): void {
    if (buf.length !== want) {
      throw new XdpvsError(
        ErrorCode.Map,
        `map "${this.name}": ${op}: ${what} is ${buf.length} bytes, the map's ${what}s are ${want}` +
          (what === 'value' && this.perCpu ? ` (${this.#cpus} CPUs x ${perCpuStride(this.valueSize)} bytes)` : ''),
        { op, map: this.name, [`${what}Size`]: buf.length, expected: want },
      );
    }
  }

  lookup(key: Buffer): Buffer | undefined {
    this.#checkLen('bpf_map_lookup_elem', 'key', key, this.keySize);
    const value = Buffer.alloc(this.#valueBytes);
    const ret = mapLookupElem(this.#live(), key, value);
    if (ret === -errno.ENOENT) return undefined;
    if (ret < 0) throw this.#fail('bpf_map_lookup_elem', ret, 'lookup failed', { key: key.toString('hex') });
    return value;
  }

  update(key: Buffer, value: Buffer, flag: UpdateFlag = UpdateFlag.Any): void {
    this.#checkLen('bpf_map_update_elem', 'key', key, this.keySize);
    this.#checkLen('bpf_map_update_elem', 'value', value, this.#valueBytes);
    const ret = mapUpdateElem(this.#live(), key, value, flag);
    if (ret < 0) throw this.#fail('bpf_map_update_elem', ret, 'update failed', { key: key.toString('hex'), flag });
  }

  delete(key: Buffer): boolean {
    this.#checkLen('bpf_map_delete_elem', 'key', key, this.keySize);
    const ret = mapDeleteElem(this.#live(), key);
    if (ret === -errno.ENOENT) return false;
    if (ret < 0) throw this.#fail('bpf_map_delete_elem', ret, 'delete failed', { key: key.toString('hex') });
    return true;
  }

  keys(): Buffer[] {
    const fd = this.#live();
    if (isArrayType(this.type)) {
      // get_next_key on an array walks every index below max_entries: the same answer without the syscalls.
      const out: Buffer[] = [];
      for (let i = 0; i < this.maxEntries; i++) {
        const k = Buffer.alloc(4);
        k.writeUInt32LE(i);
        out.push(k);
      }
      return out;
    }
    const out: Buffer[] = [];
    const seen = new Set<string>();
    // A hash walk restarts from the first key when the previous key was deleted meanwhile; duplicates are
    // skipped, and the bound keeps a map churning under us from holding us forever.
    const bound = 4 * this.maxEntries + 1024;
    let prev: Buffer | null = null;
    for (let steps = 0; steps < bound; steps++) {
      const next = Buffer.alloc(this.keySize);
      const ret = mapGetNextKey(fd, prev, next);
      if (ret === -errno.ENOENT) break;
      if (ret < 0) throw this.#fail('bpf_map_get_next_key', ret, 'key walk failed');
      const hex = next.toString('hex');
      if (!seen.has(hex)) {
        seen.add(hex);
        out.push(next);
      }
      prev = next;
    }
    return out;
  }

  /**
   * Every entry of a hash map (a snapshot; the data plane keeps writing), read with BPF_MAP_LOOKUP_BATCH: a few
   * syscalls for the whole connection table instead of two per entry. Falls back to keys() and lookup() where the
   * kernel has no batch read for the map (arrays, map-in-maps, per-CPU values are read that way anyway).
   */
  entries(): [Buffer, Buffer][] {
    const slow = (): [Buffer, Buffer][] => {
      const out: [Buffer, Buffer][] = [];
      for (const k of this.keys()) {
        const v = this.lookup(k);
        if (v) out.push([k, v]);
      }
      return out;
    };
    if (isArrayType(this.type) || isMapInMapType(this.type) || this.perCpu) return slow();
    const fd = this.#live();
    const chunk = 4096;
    const keys = Buffer.alloc(chunk * this.keySize);
    const values = Buffer.alloc(chunk * this.#valueBytes);
    // The resume token: a bucket index for hash maps; libbpf wants room for a key.
    const outBatch = Buffer.alloc(Math.max(this.keySize, 8));
    let inBatch: Buffer | null = null;
    const out: [Buffer, Buffer][] = [];
    for (;;) {
      const r = mapLookupBatch(fd, inBatch, outBatch, keys, values, chunk);
      if (r.ret < 0 && r.ret !== -errno.ENOENT) {
        const e = -r.ret;
        // No batch read (EINVAL, ENOTSUPP) or a bucket larger than the chunk (ENOSPC): one by one.
        if (e === errno.EINVAL || e === errno.ENOTSUPP || e === errno.EOPNOTSUPP || e === errno.ENOSPC) return slow();
        throw this.#fail('bpf_map_lookup_batch', r.ret, 'batch read failed');
      }
      for (let i = 0; i < r.count; i++) {
        out.push([
          Buffer.from(keys.subarray(i * this.keySize, (i + 1) * this.keySize)),
          Buffer.from(values.subarray(i * this.#valueBytes, (i + 1) * this.#valueBytes)),
        ]);
      }
      if (r.ret === -errno.ENOENT) return out;
      inBatch = Buffer.from(outBatch);
    }
  }

  updateBatch(keys: Buffer, values: Buffer): void {
    const count = keys.length / this.keySize;
    if (!Number.isInteger(count) || values.length !== count * this.#valueBytes) {
      throw new XdpvsError(
        ErrorCode.Map,
        `map "${this.name}": bpf_map_update_batch: ${keys.length} bytes of keys and ${values.length} bytes of values ` +
          `do not make whole entries of ${this.keySize}-byte keys and ${this.#valueBytes}-byte values`,
        { op: 'bpf_map_update_batch', map: this.name, keyBytes: keys.length, valueBytes: values.length },
      );
    }
    if (count === 0) return;
    if (!isMapInMapType(this.type)) {
      const r = mapUpdateBatch(this.#live(), keys, values, count, BPF_ANY);
      if (r.ret >= 0) return;
      const e = -r.ret;
      if (e !== errno.EINVAL && e !== errno.ENOTSUPP && e !== errno.EOPNOTSUPP) {
        throw this.#fail('bpf_map_update_batch', r.ret, `batch update of ${count} entries failed`, { count });
      }
      // ENOTSUPP: the map type has no batch operation; EINVAL: one element was refused, or the kernel refused
      // the batch before starting. The count libbpf hands back is only written by the kernel once it started,
      // so it cannot say where to resume: start over, one by one (BPF_ANY makes rewriting harmless). The loop
      // also names the element the kernel refuses.
    }
    const vb = this.#valueBytes;
    for (let i = 0; i < count; i++) {
      this.update(keys.subarray(i * this.keySize, (i + 1) * this.keySize), values.subarray(i * vb, (i + 1) * vb));
    }
  }

  close(): void {
    if (this.#fd < 0) return;
    if (this.#ownsFd) closeFd(this.#fd);
    this.#fd = -1;
  }
}

/** The shape of a map-in-map's inner template, kept from the object (adopted pins default to BPF_F_INNER_MAP). */
export interface InnerTemplate {
  type: number;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  mapFlags: number;
}

export interface KernelMapBackendOptions {
  /** Inner templates of the map-in-maps, by outer name. */
  innerTemplates?: Record<string, InnerTemplate>;
  /** Called once by close() after the maps are closed (the loader closes its bpf_object here). */
  onClose?: () => void;
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n >>> 0);
  return b;
}

export class KernelMapBackend implements MapBackend {
  readonly possibleCpus: number;
  readonly #maps = new Map<string, KernelMap>();
  readonly #templates: Record<string, InnerTemplate>;
  #onClose: (() => void) | undefined;
  #closed = false;

  constructor(maps: KernelMap[], opts: KernelMapBackendOptions = {}) {
    this.possibleCpus = possibleCpus();
    for (const m of maps) this.#maps.set(m.name, m);
    this.#templates = opts.innerTemplates ?? {};
    this.#onClose = opts.onClose;
  }

  /**
   * Adopts the maps pinned in pinDir (every pin whose name does not start with "prog_", or just `names`),
   * without a bpf_object: for tools that read a running data plane. Throws XDPVS_ERR_BPF for a missing pin.
   */
  static openPinned(pinDir: string, names?: string[]): KernelMapBackend {
    const list = names ?? fs.readdirSync(pinDir).filter((n) => !n.startsWith('prog_'));
    const maps: KernelMap[] = [];
    try {
      for (const name of list) {
        const p = path.join(pinDir, name);
        const fd = objGet(p);
        if (fd < 0) throw cError(ErrorCode.Bpf, 'bpf_obj_get', fd, `cannot open pinned map ${p}`, { map: name, path: p });
        maps.push(new KernelMap(name, fd, true));
      }
    } catch (e) {
      maps.forEach((m) => m.close());
      throw e;
    }
    return new KernelMapBackend(maps);
  }

  #open(): void {
    if (this.#closed) throw new XdpvsError(ErrorCode.Map, 'the map backend was closed', { op: 'use_after_close' });
  }

  /** Names of every map this backend holds. */
  names(): string[] {
    return [...this.#maps.keys()];
  }

  map(name: string): KernelMap {
    this.#open();
    const m = this.#maps.get(name);
    if (!m) {
      throw new XdpvsError(ErrorCode.Map, `no map named "${name}" (maps: ${this.names().join(', ') || 'none'})`, {
        op: 'find_map',
        map: name,
      });
    }
    return m;
  }

  #outer(outer: string): KernelMap {
    const m = this.map(outer);
    if (!isMapInMapType(m.type)) {
      throw new XdpvsError(ErrorCode.Map, `map "${outer}" is not a map-in-map (type ${m.type})`, {
        op: 'map_in_map',
        map: outer,
        type: m.type,
      });
    }
    return m;
  }

  createInnerArray(outer: string, entries: number): KernelMap {
    this.#outer(outer);
    const tpl = this.#templates[outer];
    const flags = tpl?.mapFlags ?? BPF_F_INNER_MAP;
    if (tpl) {
      if (tpl.type !== MapType.Array || tpl.keySize !== 4 || tpl.valueSize !== 4) {
        throw new XdpvsError(ErrorCode.Map, `the inner maps of "${outer}" are not u32 -> u32 arrays`, {
          op: 'bpf_map_create',
          map: outer,
          template: tpl,
        });
      }
      if (!(flags & BPF_F_INNER_MAP) && entries !== tpl.maxEntries) {
        throw new XdpvsError(
          ErrorCode.Map,
          `the inner maps of "${outer}" must have ${tpl.maxEntries} entries ` +
            `(its template lacks BPF_F_INNER_MAP), not ${entries}`,
          { op: 'bpf_map_create', map: outer, entries, templateEntries: tpl.maxEntries },
        );
      }
    }
    const name = `xdpvs_${outer}`.slice(0, 15);
    const fd = mapCreate(MapType.Array, name, 4, 4, entries, { mapFlags: flags });
    if (fd < 0) {
      const what = `cannot create an inner array of ${entries} entries for "${outer}"`;
      throw cError(ErrorCode.Map, 'bpf_map_create', fd, what, { map: outer, entries, mapFlags: flags });
    }
    return new KernelMap(`${outer}.inner`, fd, true);
  }

  setInner(outer: string, index: number, inner: InnerMap): void {
    const o = this.#outer(outer);
    const innerFd = kernelMapFd(inner);
    const ret = mapUpdateElem(kernelMapFd(o), u32(index), u32(innerFd), BPF_ANY);
    if (ret < 0) {
      throw cError(ErrorCode.Map, 'bpf_map_update_elem', ret, `map "${outer}": cannot place an inner map in slot ${index}`, {
        map: outer,
        index,
        inner: inner.name,
        innerEntries: inner.maxEntries,
      });
    }
  }

  getInner(outer: string, index: number): KernelMap | undefined {
    const o = this.#outer(outer);
    // From user space a map-in-map slot reads as the inner map's id.
    const v = o.lookup(u32(index));
    if (!v) return undefined;
    const id = v.readUInt32LE(0);
    const fd = mapGetFdById(id);
    if (fd === -errno.ENOENT) return undefined; // freed between the lookup and now
    if (fd < 0) {
      throw cError(ErrorCode.Map, 'bpf_map_get_fd_by_id', fd, `map "${outer}": cannot open the inner map of slot ${index}`, {
        map: outer,
        index,
        id,
      });
    }
    return new KernelMap(`${outer}[${index}]`, fd, true);
  }

  async placeInners(outer: string, slots: readonly { index: number; inner: InnerMap | null }[]): Promise<void> {
    const fd = kernelMapFd(this.#outer(outer));
    const sets = slots.filter((s) => s.inner !== null);
    const dels = slots.filter((s) => s.inner === null);
    const one = async ({ index, inner }: { index: number; inner: InnerMap | null }): Promise<void> => {
      const ret = inner ? await mapUpdateElemAsync(fd, u32(index), u32(kernelMapFd(inner)), BPF_ANY) : await mapDeleteElemAsync(fd, u32(index));
      // An empty slot is what a delete wants.
      if (ret >= 0 || (!inner && ret === -errno.ENOENT)) return;
      const what = inner ? `cannot place an inner map in slot ${index}` : `cannot empty slot ${index}`;
      throw cError(ErrorCode.Map, inner ? 'bpf_map_update_elem' : 'bpf_map_delete_elem', ret, `map "${outer}": ${what}`, {
        map: outer,
        index,
        ...(inner ? { inner: inner.name, innerEntries: inner.maxEntries } : {}),
      });
    };
    const placeAll = async (): Promise<void> => {
      if (sets.length <= 1) return Promise.all(sets.map(one)).then(() => undefined);
      const keys = Buffer.concat(sets.map((s) => u32(s.index)));
      const values = Buffer.concat(sets.map((s) => u32(kernelMapFd(s.inner!))));
      const r = await mapUpdateBatchAsync(fd, keys, values, sets.length, BPF_ANY);
      if (r.ret >= 0) return;
      // No batch update for this map type on this kernel, or one slot refused: one by one names the culprit.
      for (const s of sets) await one(s);
    };
    await Promise.all([placeAll(), ...dels.map(one)]);
  }

  async gracePeriod(): Promise<void> {
    const ret = await rcuGracePeriodAsync();
    if (ret < 0) throw cError(ErrorCode.Bpf, 'membarrier', ret, 'cannot wait for an RCU grace period (MEMBARRIER_CMD_GLOBAL)');
  }

  gracePeriodNow(): void {
    const ret = rcuGracePeriodNow();
    if (ret < 0) throw cError(ErrorCode.Bpf, 'membarrier', ret, 'cannot wait for an RCU grace period (MEMBARRIER_CMD_GLOBAL)');
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const m of this.#maps.values()) m.close();
    const done = this.#onClose;
    this.#onClose = undefined;
    done?.();
  }
}
