// The only module that knows C signatures: libbpf 1.1 (libbpf.so.1) and a little libc, bound through koffi.
//
// Conventions of libbpf 1.x: int functions return -errno on failure; pointer functions return NULL and set
// errno. koffi 3 hands pointers over as bigint (NULL as null). Struct layouts below are checked against
// /usr/include/bpf/*.h and linux/bpf.h (x86-64) by test/unit/loader-libbpf.test.ts.

import { constants as osConstants } from 'node:os';
import koffi from 'koffi';

import { ErrorCode, XdpvsError } from '../errors.js';

const lib = koffi.load('libbpf.so.1');
const libc = koffi.load('libc.so.6');

// ---------------------------------------------------------------------------------------------------------
// Constants (linux/bpf.h, linux/if_link.h)

export const BPF_ANY = 0;
export const BPF_NOEXIST = 1;
export const BPF_EXIST = 2;

/** BPF_F_INNER_MAP: an inner map whose max_entries may differ from the template's. */
export const BPF_F_INNER_MAP = 1 << 12;

/** enum bpf_map_type (the ones xdpvs meets). */
export const MapType = {
  Hash: 1,
  Array: 2,
  ProgArray: 3,
  PerfEventArray: 4,
  PercpuHash: 5,
  PercpuArray: 6,
  LruHash: 9,
  LruPercpuHash: 10,
  LpmTrie: 11,
  ArrayOfMaps: 12,
  HashOfMaps: 13,
  Devmap: 14,
  Cpumap: 16,
  Xskmap: 17,
  PercpuCgroupStorage: 21,
  DevmapHash: 25,
  Ringbuf: 27,
} as const;

/** Map types whose user-space values hold one (8-byte aligned) value per possible CPU. */
export function isPerCpuType(type: number): boolean {
  return (
    type === MapType.PercpuHash ||
    type === MapType.PercpuArray ||
    type === MapType.LruPercpuHash ||
    type === MapType.PercpuCgroupStorage
  );
}

export function isMapInMapType(type: number): boolean {
  return type === MapType.ArrayOfMaps || type === MapType.HashOfMaps;
}

/** Array-like maps: every index below max_entries exists. */
export function isArrayType(type: number): boolean {
  return type === MapType.Array || type === MapType.PercpuArray || type === MapType.ArrayOfMaps;
}

export const XDP_FLAGS_UPDATE_IF_NOEXIST = 1 << 0;
export const XDP_FLAGS_SKB_MODE = 1 << 1;
export const XDP_FLAGS_DRV_MODE = 1 << 2;
export const XDP_FLAGS_HW_MODE = 1 << 3;
export const XDP_FLAGS_REPLACE = 1 << 4;

/** enum { XDP_ATTACHED_* } of linux/if_link.h, as bpf_xdp_query reports attach_mode. */
export const XDP_ATTACHED_NONE = 0;
export const XDP_ATTACHED_DRV = 1;
export const XDP_ATTACHED_SKB = 2;
export const XDP_ATTACHED_HW = 3;
export const XDP_ATTACHED_MULTI = 4;

// ---------------------------------------------------------------------------------------------------------
// errno names and typed errors

/** The kernel's internal ENOTSUPP (524), which the bpf() syscall leaks to user space; libc has no name for it. */
export const ENOTSUPP = 524;

const errnoNames = new Map<number, string>();
for (const [name, num] of Object.entries(osConstants.errno)) {
  // Keep the first (canonical) name for aliases like EWOULDBLOCK/EAGAIN, ENOTSUP/EOPNOTSUPP.
  if (!errnoNames.has(num)) errnoNames.set(num, name);
}
errnoNames.set(ENOTSUPP, 'ENOTSUPP');

export const errno = {
  EPERM: osConstants.errno.EPERM,
  ENOENT: osConstants.errno.ENOENT,
  EBADF: osConstants.errno.EBADF,
  E2BIG: osConstants.errno.E2BIG,
  EBUSY: osConstants.errno.EBUSY,
  EEXIST: osConstants.errno.EEXIST,
  EINVAL: osConstants.errno.EINVAL,
  ENOSPC: osConstants.errno.ENOSPC,
  ENODEV: osConstants.errno.ENODEV,
  EOPNOTSUPP: osConstants.errno.EOPNOTSUPP,
  ENOTSUPP,
} as const;

const strerrorC = libc.func('strerror', 'str', ['int']);

/** 'EEXIST' for 17; 'errno 1234' when unknown. */
export function errnoName(e: number): string {
  return errnoNames.get(e) ?? `errno ${e}`;
}

function errnoText(e: number): string {
  if (e === ENOTSUPP) return 'Operation not supported by this map or kernel';
  const s = strerrorC(e) as string | null;
  return s ?? 'unknown error';
}

/**
 * The typed error for a failed C call: the operation and errno (number and name) in the message and details.
 * `e` is a positive errno or a negative libbpf return value.
 */
export function cError(
  code: ErrorCode,
  op: string,
  e: number,
  what: string,
  extra: Record<string, unknown> = {},
): XdpvsError {
  const num = Math.abs(e);
  const name = errnoName(num);
  return new XdpvsError(code, `${what}: ${op} failed with ${name} (errno ${num}: ${errnoText(num)})`, {
    op,
    errno: num,
    errnoName: name,
    ...extra,
  });
}

/** errno of the last C call (for pointer-returning libbpf functions). */
export function lastErrno(): number {
  return koffi.errno();
}

// ---------------------------------------------------------------------------------------------------------
// libbpf's log: routed to a listener instead of stderr, and kept for error reports.

export type LibbpfLevel = 'warn' | 'info' | 'debug';
export type LibbpfListener = (level: LibbpfLevel, message: string) => void;

const LEVELS: LibbpfLevel[] = ['warn', 'info', 'debug']; // enum libbpf_print_level: WARN=0, INFO=1, DEBUG=2

const defaultListener: LibbpfListener = (level, message) => {
  if (level === 'warn') process.stderr.write(message.endsWith('\n') ? message : `${message}\n`);
};
let listener: LibbpfListener | null = defaultListener;
let capture: string[] | null = null;

// int (*libbpf_print_fn_t)(enum libbpf_print_level, const char *fmt, va_list ap). va_list reaches the callback
// as a pointer (x86-64: __va_list_tag[1] decays; arm64: a >16-byte struct passed by reference), which we
// hand to vsnprintf once: a va_list can be consumed only once, so the buffer is large enough for a verifier log.
const vsnprintf = libc.func('vsnprintf', 'int', ['void *', 'size_t', 'void *', 'void *']);
const printProto = koffi.proto('int', ['int', 'void *', 'void *']);
const PRINT_BUF_SIZE = 1 << 20;
let printBuf: Buffer | null = null;

function onLibbpfPrint(level: number, fmt: unknown, ap: unknown): number {
  const lvl = LEVELS[level] ?? 'debug';
  // Debug lines are many (one per ELF section): format them only when someone listens.
  if (lvl === 'debug' && (listener === null || listener === defaultListener)) return 0;
  printBuf ??= Buffer.alloc(PRINT_BUF_SIZE);
  const n = vsnprintf(printBuf, printBuf.length, fmt, ap) as number;
  if (n < 0) return 0;
  let msg = printBuf.toString('utf8', 0, Math.min(n, printBuf.length - 1));
  if (n >= printBuf.length) msg += '\n[libbpf message truncated]\n';
  if (capture && lvl !== 'debug') capture.push(msg.trimEnd());
  try {
    listener?.(lvl, msg);
  } catch {
    // A listener must not throw through C frames.
  }
  return 0;
}

const setPrint = lib.func('libbpf_set_print', 'void *', ['void *']);
// Registered once for the process' lifetime: libbpf keeps the pointer.
const printCallback = koffi.register(onLibbpfPrint, koffi.pointer(printProto));
setPrint(printCallback);

/**
 * Sends libbpf's messages (warn/info/debug) to `fn`; null silences them. The default prints warnings to stderr.
 * Returns the previous listener, to restore it.
 */
export function setLibbpfLogger(fn: LibbpfListener | null): LibbpfListener | null {
  const prev = listener;
  listener = fn;
  return prev;
}

/** Runs fn and returns its result with libbpf's warn/info lines printed meanwhile (for error reports). */
export function withLibbpfLog<T>(fn: () => T): { result: T; log: string[] } {
  const outer = capture;
  const mine: string[] = [];
  capture = mine;
  try {
    return { result: fn(), log: mine };
  } finally {
    capture = outer;
    outer?.push(...mine);
  }
}

/** The tail of a libbpf log, small enough for an error's details (a verifier log can be megabytes). */
export function logTail(log: string[], maxChars = 8192): string {
  const text = log.join('\n');
  return text.length <= maxChars ? text : `[...]\n${text.slice(text.length - maxChars)}`;
}

// ---------------------------------------------------------------------------------------------------------
// Structs

/** struct bpf_map_create_opts (bpf/bpf.h): 48 bytes. */
export const BpfMapCreateOpts = koffi.struct({
  sz: 'size_t',
  btf_fd: 'uint32_t',
  btf_key_type_id: 'uint32_t',
  btf_value_type_id: 'uint32_t',
  btf_vmlinux_value_type_id: 'uint32_t',
  inner_map_fd: 'uint32_t',
  map_flags: 'uint32_t',
  map_extra: 'uint64_t',
  numa_node: 'uint32_t',
  map_ifindex: 'uint32_t',
});

/** struct bpf_map_batch_opts (bpf/bpf.h): 24 bytes. */
export const BpfMapBatchOpts = koffi.struct({
  sz: 'size_t',
  elem_flags: 'uint64_t',
  flags: 'uint64_t',
});

/** struct bpf_test_run_opts (bpf/bpf.h): 80 bytes; data_size_out and ctx_size_out are in/out. */
export const BpfTestRunOpts = koffi.struct({
  sz: 'size_t',
  data_in: 'void *',
  data_out: 'void *',
  data_size_in: 'uint32_t',
  data_size_out: 'uint32_t',
  ctx_in: 'void *',
  ctx_out: 'void *',
  ctx_size_in: 'uint32_t',
  ctx_size_out: 'uint32_t',
  retval: 'uint32_t',
  repeat: 'int',
  duration: 'uint32_t',
  flags: 'uint32_t',
  cpu: 'uint32_t',
  batch_size: 'uint32_t',
});

/** struct bpf_xdp_attach_opts (libbpf.h): 16 bytes (the trailing `size_t :0` pads to 8). */
export const BpfXdpAttachOpts = koffi.struct({
  sz: 'size_t',
  old_prog_fd: 'int',
});

/** struct bpf_xdp_query_opts (libbpf.h): 32 bytes (the trailing `size_t :0` pads to 8). */
export const BpfXdpQueryOpts = koffi.struct({
  sz: 'size_t',
  prog_id: 'uint32_t',
  drv_prog_id: 'uint32_t',
  hw_prog_id: 'uint32_t',
  skb_prog_id: 'uint32_t',
  attach_mode: 'uint8_t',
});

/** struct bpf_map_info (linux/bpf.h), whole: 88 bytes. */
export const BpfMapInfo = koffi.struct({
  type: 'uint32_t',
  id: 'uint32_t',
  key_size: 'uint32_t',
  value_size: 'uint32_t',
  max_entries: 'uint32_t',
  map_flags: 'uint32_t',
  name: koffi.array('char', 16),
  ifindex: 'uint32_t',
  btf_vmlinux_value_type_id: 'uint32_t',
  netns_dev: 'uint64_t',
  netns_ino: 'uint64_t',
  btf_id: 'uint32_t',
  btf_key_type_id: 'uint32_t',
  btf_value_type_id: 'uint32_t',
  pad0: 'uint32_t',
  map_extra: 'uint64_t',
});

/**
 * The head of struct bpf_prog_info (linux/bpf.h) up to `name` (80 bytes of 232): the kernel fills only as much
 * as info_len says. The pointer fields stay 0, so the kernel copies no instructions or map ids.
 */
export const BpfProgInfoHead = koffi.struct({
  type: 'uint32_t',
  id: 'uint32_t',
  tag: koffi.array('uint8_t', 8, 'Array'),
  jited_prog_len: 'uint32_t',
  xlated_prog_len: 'uint32_t',
  jited_prog_insns: 'uint64_t',
  xlated_prog_insns: 'uint64_t',
  load_time: 'uint64_t',
  created_by_uid: 'uint32_t',
  nr_map_ids: 'uint32_t',
  map_ids: 'uint64_t',
  name: koffi.array('char', 16),
});

// ---------------------------------------------------------------------------------------------------------
// Handles: libbpf pointers, opaque to everything but this directory.

declare const objectBrand: unique symbol;
declare const mapBrand: unique symbol;
declare const progBrand: unique symbol;
/** struct bpf_object * */
export type ObjectPtr = bigint & { readonly [objectBrand]: true };
/** struct bpf_map * (owned by its object) */
export type MapPtr = bigint & { readonly [mapBrand]: true };
/** struct bpf_program * (owned by its object) */
export type ProgPtr = bigint & { readonly [progBrand]: true };

// ---------------------------------------------------------------------------------------------------------
// Declarations

const c = {
  bpf_object__open_file: lib.func('bpf_object__open_file', 'void *', ['str', 'void *']),
  bpf_object__load: lib.func('bpf_object__load', 'int', ['void *']),
  bpf_object__close: lib.func('bpf_object__close', 'void', ['void *']),
  bpf_object__find_program_by_name: lib.func('bpf_object__find_program_by_name', 'void *', ['void *', 'str']),
  bpf_object__find_map_by_name: lib.func('bpf_object__find_map_by_name', 'void *', ['void *', 'str']),
  bpf_object__next_map: lib.func('bpf_object__next_map', 'void *', ['void *', 'void *']),
  bpf_object__next_program: lib.func('bpf_object__next_program', 'void *', ['void *', 'void *']),
  bpf_program__name: lib.func('bpf_program__name', 'str', ['void *']),
  bpf_program__section_name: lib.func('bpf_program__section_name', 'str', ['void *']),
  bpf_program__fd: lib.func('bpf_program__fd', 'int', ['void *']),
  bpf_program__pin: lib.func('bpf_program__pin', 'int', ['void *', 'str']),
  bpf_program__unpin: lib.func('bpf_program__unpin', 'int', ['void *', 'str']),
  bpf_map__name: lib.func('bpf_map__name', 'str', ['void *']),
  bpf_map__fd: lib.func('bpf_map__fd', 'int', ['void *']),
  bpf_map__set_pin_path: lib.func('bpf_map__set_pin_path', 'int', ['void *', 'str']),
  bpf_map__is_internal: lib.func('bpf_map__is_internal', 'bool', ['void *']),
  bpf_map__type: lib.func('bpf_map__type', 'int', ['void *']),
  bpf_map__key_size: lib.func('bpf_map__key_size', 'uint32_t', ['void *']),
  bpf_map__value_size: lib.func('bpf_map__value_size', 'uint32_t', ['void *']),
  bpf_map__max_entries: lib.func('bpf_map__max_entries', 'uint32_t', ['void *']),
  bpf_map__map_flags: lib.func('bpf_map__map_flags', 'uint32_t', ['void *']),
  bpf_map__map_extra: lib.func('bpf_map__map_extra', 'uint64_t', ['void *']),
  bpf_map__set_max_entries: lib.func('bpf_map__set_max_entries', 'int', ['void *', 'uint32_t']),
  bpf_map__inner_map: lib.func('bpf_map__inner_map', 'void *', ['void *']),

  bpf_map_update_elem: lib.func('bpf_map_update_elem', 'int', ['int', 'void *', 'void *', 'uint64_t']),
  bpf_map_lookup_elem: lib.func('bpf_map_lookup_elem', 'int', ['int', 'void *', 'void *']),
  bpf_map_delete_elem: lib.func('bpf_map_delete_elem', 'int', ['int', 'void *']),
  bpf_map_get_next_key: lib.func('bpf_map_get_next_key', 'int', ['int', 'void *', 'void *']),
  bpf_map_lookup_batch: lib.func('bpf_map_lookup_batch', 'int', [
    'int',
    'void *',
    'void *',
    'void *',
    'void *',
    koffi.inout(koffi.pointer('uint32_t')),
    koffi.pointer(BpfMapBatchOpts),
  ]),
  bpf_map_update_batch: lib.func('bpf_map_update_batch', 'int', [
    'int',
    'void *',
    'void *',
    koffi.inout(koffi.pointer('uint32_t')),
    koffi.pointer(BpfMapBatchOpts),
  ]),
  bpf_map_create: lib.func('bpf_map_create', 'int', [
    'int',
    'str',
    'uint32_t',
    'uint32_t',
    'uint32_t',
    koffi.pointer(BpfMapCreateOpts),
  ]),
  bpf_obj_get: lib.func('bpf_obj_get', 'int', ['str']),
  bpf_obj_pin: lib.func('bpf_obj_pin', 'int', ['int', 'str']),
  bpf_map_get_fd_by_id: lib.func('bpf_map_get_fd_by_id', 'int', ['uint32_t']),
  bpf_prog_get_fd_by_id: lib.func('bpf_prog_get_fd_by_id', 'int', ['uint32_t']),
  bpf_obj_get_info_by_fd_map: lib.func('bpf_obj_get_info_by_fd', 'int', [
    'int',
    koffi.inout(koffi.pointer(BpfMapInfo)),
    koffi.inout(koffi.pointer('uint32_t')),
  ]),
  bpf_obj_get_info_by_fd_prog: lib.func('bpf_obj_get_info_by_fd', 'int', [
    'int',
    koffi.inout(koffi.pointer(BpfProgInfoHead)),
    koffi.inout(koffi.pointer('uint32_t')),
  ]),
  bpf_xdp_attach: lib.func('bpf_xdp_attach', 'int', ['int', 'int', 'uint32_t', koffi.pointer(BpfXdpAttachOpts)]),
  bpf_xdp_detach: lib.func('bpf_xdp_detach', 'int', ['int', 'uint32_t', koffi.pointer(BpfXdpAttachOpts)]),
  bpf_xdp_query: lib.func('bpf_xdp_query', 'int', ['int', 'int', koffi.inout(koffi.pointer(BpfXdpQueryOpts))]),
  bpf_prog_test_run_opts: lib.func('bpf_prog_test_run_opts', 'int', [
    'int',
    koffi.inout(koffi.pointer(BpfTestRunOpts)),
  ]),
  libbpf_num_possible_cpus: lib.func('libbpf_num_possible_cpus', 'int', []),

  close: libc.func('close', 'int', ['int']),
  if_nametoindex: libc.func('if_nametoindex', 'uint', ['str']),
  if_indextoname: libc.func('if_indextoname', 'void *', ['uint', 'void *']),
  setns: libc.func('setns', 'int', ['int', 'int']),
};

// ---------------------------------------------------------------------------------------------------------
// Typed wrappers. Ints come back as libbpf returns them (>= 0, or -errno): callers add the context.

/** bpf_object__open_file(path, NULL): the object, or -errno. */
export function objectOpenFile(path: string): ObjectPtr | number {
  const p = c.bpf_object__open_file(path, null) as bigint | null;
  if (p === null) return -(koffi.errno() || errno.EINVAL);
  return p as ObjectPtr;
}

export function objectLoad(obj: ObjectPtr): number {
  return c.bpf_object__load(obj) as number;
}

export function objectClose(obj: ObjectPtr): void {
  c.bpf_object__close(obj);
}

export function objectFindProgram(obj: ObjectPtr, name: string): ProgPtr | null {
  return c.bpf_object__find_program_by_name(obj, name) as ProgPtr | null;
}

export function objectFindMap(obj: ObjectPtr, name: string): MapPtr | null {
  return c.bpf_object__find_map_by_name(obj, name) as MapPtr | null;
}

/** Every map of the object, internal ones (.rodata, .bss, .data, .kconfig) included. */
export function objectMaps(obj: ObjectPtr): MapPtr[] {
  const out: MapPtr[] = [];
  for (let m = c.bpf_object__next_map(obj, null) as MapPtr | null; m !== null; m = c.bpf_object__next_map(obj, m)) {
    out.push(m);
  }
  return out;
}

/** Every program of the object: its C function name and ELF section ("xdp", ...). */
export function objectPrograms(obj: ObjectPtr): Array<{ ptr: ProgPtr; name: string; section: string }> {
  const out: Array<{ ptr: ProgPtr; name: string; section: string }> = [];
  for (
    let p = c.bpf_object__next_program(obj, null) as ProgPtr | null;
    p !== null;
    p = c.bpf_object__next_program(obj, p) as ProgPtr | null
  ) {
    out.push({ ptr: p, name: c.bpf_program__name(p) as string, section: c.bpf_program__section_name(p) as string });
  }
  return out;
}

export function programFd(prog: ProgPtr): number {
  return c.bpf_program__fd(prog) as number;
}

export function programPin(prog: ProgPtr, path: string): number {
  return c.bpf_program__pin(prog, path) as number;
}

export function programUnpin(prog: ProgPtr, path: string): number {
  return c.bpf_program__unpin(prog, path) as number;
}

/** The static shape of one map of an object, as libbpf will create it. */
export interface MapDef {
  name: string;
  type: number;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  mapFlags: number;
  mapExtra: bigint;
  internal: boolean;
}

export function mapDef(map: MapPtr): MapDef {
  const extra = c.bpf_map__map_extra(map) as number | bigint;
  return {
    name: c.bpf_map__name(map) as string,
    type: c.bpf_map__type(map) as number,
    keySize: c.bpf_map__key_size(map) as number,
    valueSize: c.bpf_map__value_size(map) as number,
    maxEntries: c.bpf_map__max_entries(map) as number,
    mapFlags: c.bpf_map__map_flags(map) as number,
    mapExtra: BigInt(extra),
    internal: c.bpf_map__is_internal(map) as boolean,
  };
}

export function mapFd(map: MapPtr): number {
  return c.bpf_map__fd(map) as number;
}

export function mapSetPinPath(map: MapPtr, path: string): number {
  return c.bpf_map__set_pin_path(map, path) as number;
}

export function mapSetMaxEntries(map: MapPtr, entries: number): number {
  return c.bpf_map__set_max_entries(map, entries) as number;
}

/** The inner-map template of a map-in-map (before and after load), or null. */
export function mapInnerMap(map: MapPtr): MapPtr | null {
  return c.bpf_map__inner_map(map) as MapPtr | null;
}

export function mapUpdateElem(fd: number, key: Buffer, value: Buffer, flags: number): number {
  return c.bpf_map_update_elem(fd, key, value, flags) as number;
}

export function mapLookupElem(fd: number, key: Buffer, value: Buffer): number {
  return c.bpf_map_lookup_elem(fd, key, value) as number;
}

export function mapDeleteElem(fd: number, key: Buffer): number {
  return c.bpf_map_delete_elem(fd, key) as number;
}

/** key null asks for the first key. */
export function mapGetNextKey(fd: number, key: Buffer | null, next: Buffer): number {
  return c.bpf_map_get_next_key(fd, key, next) as number;
}

/**
 * bpf_map_lookup_batch: up to `count` entries into keys/values from where `inBatch` left off (null: the start);
 * `outBatch` receives where to go on from. `count` out is how many were written; ret -ENOENT means the walk is over
 * (entries may still have come with it).
 */
export function mapLookupBatch(
  fd: number,
  inBatch: Buffer | null,
  outBatch: Buffer,
  keys: Buffer,
  values: Buffer,
  count: number,
): { ret: number; count: number } {
  const inout = [count];
  const ret = c.bpf_map_lookup_batch(fd, inBatch, outBatch, keys, values, inout, {
    sz: koffi.sizeof(BpfMapBatchOpts),
    elem_flags: 0,
    flags: 0,
  }) as number;
  return { ret, count: inout[0] ?? 0 };
}

/**
 * bpf_map_update_batch: `count` elements in. `done` is what the kernel wrote back, but only when it got as far as
 * processing elements: after an early refusal (ENOTSUPP, bad flags) it still holds `count`.
 */
export function mapUpdateBatch(
  fd: number,
  keys: Buffer,
  values: Buffer,
  count: number,
  elemFlags: number,
): { ret: number; done: number } {
  const inout = [count];
  const ret = c.bpf_map_update_batch(fd, keys, values, inout, {
    sz: koffi.sizeof(BpfMapBatchOpts),
    elem_flags: elemFlags,
    flags: 0,
  }) as number;
  return { ret, done: inout[0] ?? 0 };
}

/** bpf_map_create: an fd, or -errno. */
export function mapCreate(
  type: number,
  name: string,
  keySize: number,
  valueSize: number,
  maxEntries: number,
  opts: { mapFlags?: number; innerMapFd?: number } = {},
): number {
  return c.bpf_map_create(type, name, keySize, valueSize, maxEntries, {
    sz: koffi.sizeof(BpfMapCreateOpts),
    btf_fd: 0,
    btf_key_type_id: 0,
    btf_value_type_id: 0,
    btf_vmlinux_value_type_id: 0,
    inner_map_fd: opts.innerMapFd ?? 0,
    map_flags: opts.mapFlags ?? 0,
    map_extra: 0,
    numa_node: 0,
    map_ifindex: 0,
  }) as number;
}

/** bpf_obj_get: an fd for a pinned object, or -errno. */
export function objGet(path: string): number {
  return c.bpf_obj_get(path) as number;
}

export function objPin(fd: number, path: string): number {
  return c.bpf_obj_pin(fd, path) as number;
}

export function mapGetFdById(id: number): number {
  return c.bpf_map_get_fd_by_id(id) as number;
}

export function progGetFdById(id: number): number {
  return c.bpf_prog_get_fd_by_id(id) as number;
}

/** What the kernel says about a map. */
export interface MapInfo {
  type: number;
  id: number;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  mapFlags: number;
  /** The kernel's name: at most 15 characters. */
  name: string;
}

/** bpf_obj_get_info_by_fd on a map fd: the info, or -errno. */
export function mapInfo(fd: number): MapInfo | number {
  const info: Record<string, unknown> = {};
  const len = [koffi.sizeof(BpfMapInfo)];
  const ret = c.bpf_obj_get_info_by_fd_map(fd, info, len) as number;
  if (ret < 0) return ret;
  return {
    type: info.type as number,
    id: info.id as number,
    keySize: info.key_size as number,
    valueSize: info.value_size as number,
    maxEntries: info.max_entries as number,
    mapFlags: info.map_flags as number,
    name: info.name as string,
  };
}

export interface ProgInfo {
  type: number;
  id: number;
  /** The kernel's name: at most 15 characters. */
  name: string;
  /** Hex of the 8-byte program tag (hash of the instructions). */
  tag: string;
}

/** bpf_obj_get_info_by_fd on a program fd: the info, or -errno. */
export function progInfo(fd: number): ProgInfo | number {
  const info: Record<string, unknown> = {};
  const len = [koffi.sizeof(BpfProgInfoHead)];
  const ret = c.bpf_obj_get_info_by_fd_prog(fd, info, len) as number;
  if (ret < 0) return ret;
  return {
    type: info.type as number,
    id: info.id as number,
    name: info.name as string,
    tag: Buffer.from(info.tag as number[]).toString('hex'),
  };
}

/** bpf_xdp_attach; oldProgFd > 0 adds the atomic-replacement expectation (XDP_FLAGS_REPLACE). */
export function xdpAttach(ifindex: number, progFd: number, flags: number, oldProgFd = 0): number {
  return c.bpf_xdp_attach(ifindex, progFd, flags, {
    sz: koffi.sizeof(BpfXdpAttachOpts),
    old_prog_fd: oldProgFd,
  }) as number;
}

export function xdpDetach(ifindex: number, flags: number, oldProgFd = 0): number {
  return c.bpf_xdp_detach(ifindex, flags, { sz: koffi.sizeof(BpfXdpAttachOpts), old_prog_fd: oldProgFd }) as number;
}

export interface XdpQuery {
  /** Set when exactly one program is attached. */
  progId: number;
  drvProgId: number;
  hwProgId: number;
  skbProgId: number;
  /** XDP_ATTACHED_* */
  attachMode: number;
}

/** bpf_xdp_query: what is attached to ifindex, or -errno. */
export function xdpQuery(ifindex: number): XdpQuery | number {
  const opts: Record<string, unknown> = {
    sz: koffi.sizeof(BpfXdpQueryOpts),
    prog_id: 0,
    drv_prog_id: 0,
    hw_prog_id: 0,
    skb_prog_id: 0,
    attach_mode: 0,
  };
  const ret = c.bpf_xdp_query(ifindex, 0, opts) as number;
  if (ret < 0) return ret;
  return {
    progId: opts.prog_id as number,
    drvProgId: opts.drv_prog_id as number,
    hwProgId: opts.hw_prog_id as number,
    skbProgId: opts.skb_prog_id as number,
    attachMode: opts.attach_mode as number,
  };
}

export interface TestRunIn {
  dataIn: Buffer;
  /** Receives the packet as the program left it. */
  dataOut: Buffer;
  ctxIn?: Buffer;
  repeat: number;
}

export interface TestRunOut {
  ret: number;
  retval: number;
  dataSizeOut: number;
  /** Average per run, ns. */
  duration: number;
}

/** bpf_prog_test_run_opts with the struct passed in/out (data_size_out is in: capacity, out: length). */
export function progTestRun(progFd: number, t: TestRunIn): TestRunOut {
  const opts: Record<string, unknown> = {
    sz: koffi.sizeof(BpfTestRunOpts),
    data_in: t.dataIn,
    data_out: t.dataOut,
    data_size_in: t.dataIn.length,
    data_size_out: t.dataOut.length,
    ctx_in: t.ctxIn ?? null,
    ctx_out: null,
    ctx_size_in: t.ctxIn?.length ?? 0,
    ctx_size_out: 0,
    retval: 0,
    repeat: t.repeat,
    duration: 0,
    flags: 0,
    cpu: 0,
    batch_size: 0,
  };
  const ret = c.bpf_prog_test_run_opts(progFd, opts) as number;
  return {
    ret,
    retval: opts.retval as number,
    dataSizeOut: opts.data_size_out as number,
    duration: opts.duration as number,
  };
}

/** The kernel's possible CPUs (/sys/devices/system/cpu/possible), or -errno. */
export function numPossibleCpus(): number {
  return c.libbpf_num_possible_cpus() as number;
}

/** close(2); errors (EBADF) are ignored: the fd is gone either way. */
export function closeFd(fd: number): void {
  if (fd >= 0) c.close(fd);
}

/** if_nametoindex(3) in the calling process' network namespace; 0 when there is no such interface. */
export function ifNameToIndex(name: string): number {
  return c.if_nametoindex(name) as number;
}

/** if_indextoname(3): the interface's name, or undefined when this namespace has no interface ifindex. */
export function ifIndexToName(ifindex: number): string | undefined {
  const buf = Buffer.alloc(16); // IF_NAMESIZE
  const p = c.if_indextoname(ifindex, buf) as bigint | null;
  if (p === null) return undefined;
  const end = buf.indexOf(0);
  return buf.toString('utf8', 0, end < 0 ? buf.length : end);
}

// ---------------------------------------------------------------------------------------------------------
// Calls that wait for an RCU grace period, run on koffi's worker threads so the event loop goes on meanwhile
// (schedule-table publishing, src/lb/ring-tables.ts). Each takes its own copies of keys and values.

/** __NR_membarrier on x86_64 and MEMBARRIER_CMD_GLOBAL (linux/membarrier.h): returns after synchronize_rcu(). */
const NR_MEMBARRIER = 324;
const MEMBARRIER_CMD_GLOBAL = 1;
// syscall(2) is variadic; declared with fixed integer arguments, which the x86_64 ABI passes the same way.
const syscall4 = libc.func('long syscall(long nr, long a, long b, long c)');

function callAsync(fn: { async: (...args: any[]) => any }, ...args: unknown[]): Promise<number> {
  return new Promise((resolve, reject) => {
    fn.async(...args, (err: unknown, ret: number | bigint) => (err ? reject(err) : resolve(Number(ret))));
  });
}

/**
 * membarrier(MEMBARRIER_CMD_GLOBAL) on a worker thread: resolves (0, or -errno) once every CPU has passed an RCU
 * quiescent state, i.e. every XDP program run that started before the call has ended.
 */
export async function rcuGracePeriodAsync(): Promise<number> {
  const r = await callAsync(syscall4, NR_MEMBARRIER, MEMBARRIER_CMD_GLOBAL, 0, 0);
  // The worker thread's errno is not visible here; the command only fails where membarrier(2) is missing.
  return r < 0 ? -osConstants.errno.ENOSYS : 0;
}

/** membarrier(MEMBARRIER_CMD_GLOBAL) on the calling thread: 0, or -ENOSYS where it cannot wait. */
export function rcuGracePeriodNow(): number {
  return Number(syscall4(NR_MEMBARRIER, MEMBARRIER_CMD_GLOBAL, 0, 0)) < 0 ? -osConstants.errno.ENOSYS : 0;
}

const asyncC = {
  bpf_map_update_elem: lib.func('bpf_map_update_elem', 'int', ['int', 'void *', 'void *', 'uint64_t']),
  bpf_map_delete_elem: lib.func('bpf_map_delete_elem', 'int', ['int', 'void *']),
  // count and opts as plain memory: koffi's in/out conversions do not apply to calls on another thread.
  bpf_map_update_batch: lib.func('bpf_map_update_batch', 'int', ['int', 'void *', 'void *', 'void *', 'void *']),
};

/** bpf_map_update_elem on a worker thread (a map-in-map update waits for a grace period in the kernel). */
export function mapUpdateElemAsync(fd: number, key: Buffer, value: Buffer, flags: number): Promise<number> {
  return callAsync(asyncC.bpf_map_update_elem, fd, Buffer.from(key), Buffer.from(value), flags);
}

/**
 * bpf_map_update_batch on a worker thread (a map-in-map waits for one grace period for the whole batch): `count`
 * elements packed in keys and values; resolves with ret (0 or -errno) and how many the kernel got through.
 */
export async function mapUpdateBatchAsync(fd: number, keys: Buffer, values: Buffer, count: number, elemFlags: number): Promise<{ ret: number; done: number }> {
  const inout = Buffer.alloc(4);
  inout.writeUInt32LE(count);
  const opts = Buffer.alloc(koffi.sizeof(BpfMapBatchOpts));
  opts.writeBigUInt64LE(BigInt(opts.length), 0);
  opts.writeBigUInt64LE(BigInt(elemFlags), 8);
  const ret = await callAsync(asyncC.bpf_map_update_batch, fd, Buffer.from(keys), Buffer.from(values), inout, opts);
  return { ret, done: inout.readUInt32LE(0) };
}

/** bpf_map_delete_elem on a worker thread. */
export function mapDeleteElemAsync(fd: number, key: Buffer): Promise<number> {
  return callAsync(asyncC.bpf_map_delete_elem, fd, Buffer.from(key));
}

/** CLONE_NEWNET (linux/sched.h). */
const CLONE_NEWNET = 0x40000000;

/**
 * setns(2) into the network namespace open at fd, for the calling thread only (Node's main thread, where every
 * libbpf call of this module runs): 0, or -errno. BPF_PROG_TEST_RUN and bpf_fib_lookup() then see that namespace's
 * interfaces, routes and neighbours (test/datapath uses it for the NAT reply path).
 */
export function setNetns(fd: number): number {
  const r = c.setns(fd, CLONE_NEWNET) as number;
  return r < 0 ? -(koffi.errno() || errno.EINVAL) : 0;
}

// ---------------------------------------------------------------------------------------------------------
// Ring buffers (BPF_MAP_TYPE_RINGBUF): the director's connection-sync events, read by src/loader/ring-buffer.ts.

declare const ringBrand: unique symbol;
/** A libbpf struct ring_buffer *. */
export type RingPtr = bigint & { readonly [ringBrand]: true };

// int (*ring_buffer_sample_fn)(void *ctx, void *data, size_t size). One callback for the process: libbpf calls it
// synchronously inside ring_buffer__consume, on this thread, so the record goes to whoever is consuming right now.
const ringSampleProto = koffi.proto('int xdpvs_ring_sample(void *ctx, void *data, size_t size)');
let ringSink: ((record: Buffer) => void) | null = null;
let ringSinkError: unknown = null;

function onRingSample(_ctx: unknown, data: unknown, size: number | bigint): number {
  try {
    // Copied out: the record's memory belongs to the ring again once this returns.
    ringSink?.(Buffer.from(new Uint8Array(koffi.view(data, Number(size)))));
    return 0;
  } catch (e) {
    // Nothing may throw through C frames: stop consuming, rethrown by ringBufferConsume.
    ringSinkError = e;
    return -1;
  }
}

const ringSampleCallback = koffi.register(onRingSample, koffi.pointer(ringSampleProto));

const ringC = {
  ring_buffer__new: lib.func('ring_buffer__new', 'void *', ['int', koffi.pointer(ringSampleProto), 'void *', 'void *']),
  ring_buffer__consume: lib.func('ring_buffer__consume', 'int', ['void *']),
  ring_buffer__free: lib.func('ring_buffer__free', 'void', ['void *']),
};

/** ring_buffer__new(mapFd, <our callback>, NULL, NULL): the ring, or -errno. */
export function ringBufferNew(mapFd: number): RingPtr | number {
  const p = ringC.ring_buffer__new(mapFd, ringSampleCallback, null, null) as bigint | null;
  return p === null ? -(koffi.errno() || errno.EINVAL) : (p as RingPtr);
}

/**
 * ring_buffer__consume: hands every record waiting in the ring to `sink`, in order, without blocking. Returns the
 * number of records, or -errno. A sink that throws stops the consumption and its error is thrown here.
 */
export function ringBufferConsume(rb: RingPtr, sink: (record: Buffer) => void): number {
  ringSink = sink;
  ringSinkError = null;
  try {
    const n = ringC.ring_buffer__consume(rb) as number;
    if (ringSinkError !== null) throw ringSinkError;
    return n;
  } finally {
    ringSink = null;
    ringSinkError = null;
  }
}

/** ring_buffer__free. */
export function ringBufferFree(rb: RingPtr): void {
  ringC.ring_buffer__free(rb);
}
