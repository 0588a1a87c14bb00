// The kernel boundary: BPF maps as user space sees them. The libbpf implementation lives in
// src/loader/kernel-backend.ts, the in-memory one (for unprivileged tests) in src/maps/memory-backend.ts.

/** BPF_ANY / BPF_NOEXIST / BPF_EXIST, as in linux/bpf.h. */
export const enum UpdateFlag {
  Any = 0,
  NoExist = 1,
  Exist = 2,
}

/** One BPF map: raw keys and values, sizes fixed at creation. */
export interface BpfMap {
  readonly name: string;
  readonly keySize: number;
  /** For per-CPU maps: the size of one CPU's value (not rounded). */
  readonly valueSize: number;
  readonly maxEntries: number;
  readonly perCpu: boolean;

  /** Value of key, or undefined when absent. For per-CPU maps: every possible CPU's value, concatenated, each padded to 8 bytes. */
  lookup(key: Buffer): Buffer | undefined;
  /** Throws MapError (code XDPVS_ERR_MAP) on failure. For per-CPU maps value holds every CPU's value as lookup returns it. */
  update(key: Buffer, value: Buffer, flag?: UpdateFlag): void;
  /** True when the key existed. */
  delete(key: Buffer): boolean;
  /** Every key present (a snapshot taken with get_next_key; hash maps may change under it). */
  keys(): Buffer[];
  /**
   * Writes many entries in one call where the kernel supports it (array and hash maps): `keys` holds the keys packed
   * back to back (keySize bytes each), `values` the values in the same order.
   */
  updateBatch(keys: Buffer, values: Buffer): void;
}

/** A map created at run time to be placed in a map-in-map slot (the schedule tables). */
export interface InnerMap extends BpfMap {
  /** Drops user space's reference; the kernel frees it once no outer map holds it. */
  close(): void;
}

/** The maps of one loaded (or adopted) data plane. */
export interface MapBackend {
  /** Possible CPUs, for per-CPU values (the kernel's count, not os.cpus()). */
  readonly possibleCpus: number;
  /** A map of the object by its C name; throws when there is no such map. */
  map(name: string): BpfMap;
  /** Creates an array map u32 -> u32 of `entries` entries shaped like `outer`'s inner-map template. */
  createInnerArray(outer: string, entries: number): InnerMap;
  /** Places inner into slot index of the map-in-map `outer` (replacing what was there). */
  setInner(outer: string, index: number, inner: InnerMap): void;
  /** The inner map currently in slot index of `outer`, if any (adopting pinned state after a restart). */
  getInner(outer: string, index: number): InnerMap | undefined;
  /**
   * Places each inner map into its slot of `outer`, or empties the slot (inner null), without blocking: the kernel
   * waits for an RCU grace period after every map-in-map change (once for a batch), so this runs off the event loop
   * and resolves after that wait. Slots must be distinct.
   */
  placeInners(outer: string, slots: readonly { index: number; inner: InnerMap | null }[]): Promise<void>;
  /** Resolves once an RCU grace period has passed: every program run that had started before the call has ended. */
  gracePeriod(): Promise<void>;
  /**
   * The same, on the calling thread: returns once the grace period has ended, blocking meanwhile. Only worth it
   * where grace periods are short (RCU expedited); GracePeriods measures that. Absent where there is none to wait.
   */
  gracePeriodNow?(): void;
  /** Releases every file descriptor this backend holds (pins and attachments stay). */
  close(): void;
}

/** Per-CPU value stride: the kernel rounds each CPU's value up to 8 bytes. */
export function perCpuStride(valueSize: number): number {
  return Math.ceil(valueSize / 8) * 8;
}
