// Program lifecycle: open and load an object with its maps pinned (and adopted from pins after a restart),
// pin the program, attach/replace/detach it on an interface, run it on a packet, and manage bpffs.

import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

import { ErrorCode, XdpvsError } from '../errors.js';
import { KernelMap, KernelMapBackend, checkMapShape, type InnerTemplate } from './kernel-backend.js';
import {
  XDP_ATTACHED_DRV,
  XDP_ATTACHED_HW,
  XDP_ATTACHED_MULTI,
  XDP_ATTACHED_SKB,
  XDP_FLAGS_DRV_MODE,
  XDP_FLAGS_HW_MODE,
  XDP_FLAGS_REPLACE,
  XDP_FLAGS_SKB_MODE,
  XDP_FLAGS_UPDATE_IF_NOEXIST,
  cError,
  closeFd,
  errno,
  errnoName,
  ifIndexToName,
  ifNameToIndex,
  logTail,
  mapDef,
  mapFd,
  mapInfo,
  mapInnerMap,
  mapSetMaxEntries,
  mapSetPinPath,
  objGet,
  objectClose,
  objectFindMap,
  objectFindProgram,
  objectLoad,
  objectMaps,
  objectOpenFile,
  objectPrograms,
  progGetFdById,
  progInfo,
  progTestRun,
  programFd,
  programPin,
  withLibbpfLog,
  xdpAttach,
  xdpDetach,
  xdpQuery,
  type MapDef,
  type ObjectPtr,
  type XdpQuery,
} from './libbpf.js';

export const BPFFS = '/sys/fs/bpf';
const BPF_FS_MAGIC = 0xcafe4a11;

// ---------------------------------------------------------------------------------------------------------
// bpffs

function isBpffs(p: string): boolean {
  try {
    return fs.statfsSync(p).type === BPF_FS_MAGIC;
  } catch {
    return false;
  }
}

/**
 * The pin directory of one interface in this network namespace: /sys/fs/bpf/xdpvs/<netns inode>/<ifname>.
 * Two namespaces may both have an "eth0"; the inode of /proc/self/ns/net tells them apart.
 */
export function pinDirFor(ifname: string): string {
  if (!/^[A-Za-z0-9_.:@-]{1,15}$/.test(ifname) || ifname === '.' || ifname === '..') {
    throw new XdpvsError(ErrorCode.Invalid, `not an interface name: "${ifname}"`, { field: 'ifname', ifname });
  }
  const netns = fs.statSync('/proc/self/ns/net').ino;
  return path.join(BPFFS, 'xdpvs', String(netns), ifname);
}

export interface BpffsStatus {
  /** True when this call mounted bpffs on /sys/fs/bpf. */
  mounted: boolean;
  /** What was done, for the daemon's log ("mounted bpffs on /sys/fs/bpf"), when anything was. */
  message?: string;
}

/**
 * Makes sure /sys/fs/bpf is a bpf filesystem (mounting it when it is not: `mount -t bpf bpf /sys/fs/bpf`) and
 * creates `dir` (a directory inside it) when given. Throws XDPVS_ERR_SYSTEM when mount fails.
 */
export function ensureBpffs(dir?: string): BpffsStatus {
  const status: BpffsStatus = { mounted: false };
  if (!isBpffs(BPFFS)) {
    try {
      fs.mkdirSync(BPFFS, { recursive: true });
      execFileSync('mount', ['-t', 'bpf', 'bpf', BPFFS], { stdio: ['ignore', 'pipe', 'pipe'] });
    } catch (e) {
      const stderr = (e as { stderr?: Buffer }).stderr?.toString().trim();
      throw new XdpvsError(
        ErrorCode.System,
        `${BPFFS} is not a bpf filesystem and mounting one failed: ${stderr || String(e)}`,
        { op: 'mount', path: BPFFS },
      );
    }
    if (!isBpffs(BPFFS)) {
      throw new XdpvsError(ErrorCode.System, `mounted bpffs on ${BPFFS} but it still is not a bpf filesystem`, {
        op: 'mount',
        path: BPFFS,
      });
    }
    status.mounted = true;
    status.message = `mounted bpffs on ${BPFFS} (it was not mounted)`;
  }
  if (dir !== undefined) {
    assertOnBpffs(dir, 'ensureBpffs');
    fs.mkdirSync(dir, { recursive: true });
  }
  return status;
}

function assertOnBpffs(dir: string, op: string): void {
  const abs = path.resolve(dir);
  if (abs !== BPFFS && !abs.startsWith(`${BPFFS}/`)) {
    throw new XdpvsError(ErrorCode.Invalid, `${op}: ${dir} is not under ${BPFFS}`, { op, path: dir });
  }
}

/**
 * Removes a pin directory and everything pinned in it (the kernel frees what no one else holds).
 * Refuses paths off bpffs (XDPVS_ERR_INVALID).
 */
export function removePins(pinDir: string): void {
  assertOnBpffs(pinDir, 'removePins');
  if (!fs.existsSync(pinDir)) return;
  if (!isBpffs(pinDir)) {
    throw new XdpvsError(ErrorCode.Invalid, `removePins: ${pinDir} is not on a bpf filesystem`, {
      op: 'removePins',
      path: pinDir,
    });
  }
  fs.rmSync(pinDir, { recursive: true, force: true });
}

// ---------------------------------------------------------------------------------------------------------
// Loading

export interface LoadOptions {
  /** The compiled object (build/bpf/*.bpf.o). */
  objectPath: string;
  /** Where maps and the program are pinned (see pinDirFor); created when missing. */
  pinDir: string;
  /** The program (its C function name) to load and pin. */
  programName: string;
  /** max_entries overrides by map name, applied before load (a pinned map must match them to be reused). */
  maxEntries?: Record<string, number>;
  /** Key and value sizes the caller's codecs expect, by map name: checked once loaded (checkMapShape). */
  expectShapes?: Record<string, { keySize: number; valueSize: number }>;
}

export interface LoadedObject {
  readonly backend: KernelMapBackend;
  /** The loaded program, for attachXdp and testRun. Valid until close(). */
  readonly programFd: number;
  /** The kernel's id of the program (what queryXdp reports once attached). */
  readonly programId: number;
  readonly programName: string;
  readonly pinDir: string;
  /** Path of the program's pin. */
  readonly programPin: string;
  /** Maps adopted from existing pins (their contents survived); the others were created empty and pinned. */
  readonly reusedMaps: readonly string[];
  /** Closes the object and every fd (pins and attachments stay, so traffic keeps flowing). */
  close(): void;
}

function bpfErr(message: string, details: Record<string, unknown>): XdpvsError {
  return new XdpvsError(ErrorCode.Bpf, message, details);
}

type Shape = Pick<MapDef, 'type' | 'keySize' | 'valueSize' | 'maxEntries' | 'mapFlags'>;

function shapeOf(d: Shape): Shape {
  return { type: d.type, keySize: d.keySize, valueSize: d.valueSize, maxEntries: d.maxEntries, mapFlags: d.mapFlags };
}

function describeShape(d: Shape): string {
  const flags = `0x${d.mapFlags.toString(16)}`;
  return `type ${d.type}, key ${d.keySize} B, value ${d.valueSize} B, max_entries ${d.maxEntries}, flags ${flags}`;
}

/**
 * A pinned map that libbpf would refuse to reuse (its own test: type, sizes, max_entries, flags) makes the load
 * fail with a bare EINVAL; this names the map and both shapes first.
 */
function checkPinCompatible(def: MapDef, pinPath: string, pinDir: string): void {
  const fd = objGet(pinPath);
  if (fd < 0) {
    throw cError(ErrorCode.Bpf, 'bpf_obj_get', fd, `cannot open the pin of map "${def.name}" at ${pinPath}`, {
      map: def.name,
      path: pinPath,
      hint: `remove the pin directory (rm -rf ${pinDir}) to start with empty maps`,
    });
  }
  try {
    const info = mapInfo(fd);
    if (typeof info === 'number') {
      const what = `${pinPath} is not a map`;
      throw cError(ErrorCode.Bpf, 'bpf_obj_get_info_by_fd', info, what, { map: def.name, path: pinPath });
    }
    if (
      info.type !== def.type ||
      info.keySize !== def.keySize ||
      info.valueSize !== def.valueSize ||
      info.maxEntries !== def.maxEntries ||
      info.mapFlags !== def.mapFlags
    ) {
      throw bpfErr(
        `pinned map "${def.name}" at ${pinPath} is incompatible with the object: pinned ${describeShape(info)}; ` +
          `object ${describeShape(def)}. Remove the pin directory (rm -rf ${pinDir}) to recreate the maps ` +
          `(this drops their contents, e.g. the connection table)`,
        {
          op: 'reuse_pinned_map',
          map: def.name,
          path: pinPath,
          pinned: shapeOf(info),
          object: shapeOf(def),
          hint: `rm -rf ${pinDir}`,
        },
      );
    }
  } finally {
    closeFd(fd);
  }
}

/** The verifier's complaint: the last line of its log before the statistics, if the log is there. */
function verifierVerdict(log: string[]): string | undefined {
  const text = log.join('\n');
  const start = text.lastIndexOf('-- BEGIN PROG LOAD LOG --');
  const end = text.lastIndexOf('-- END PROG LOAD LOG --');
  if (start < 0 || end < start) return undefined;
  const lines = text
    .slice(start, end)
    .split('\n')
    .slice(1)
    .map((l) => l.trim())
    .filter((l) => l && !/^(processed \d+ insns|verification time|stack depth)/.test(l));
  return lines.at(-1);
}

/** Pins prog at `final`, replacing an existing pin atomically (pin beside it, then rename over it). */
function pinProgram(prog: Parameters<typeof programPin>[0], final: string, name: string): void {
  // bpffs refuses names with a dot in them.
  const tmp = `${final}_new${process.pid}`;
  fs.rmSync(tmp, { force: true });
  const ret = programPin(prog, tmp);
  if (ret < 0) {
    throw cError(ErrorCode.Bpf, 'bpf_program__pin', ret, `cannot pin program "${name}" at ${tmp}`, {
      program: name,
      path: tmp,
    });
  }
  try {
    fs.renameSync(tmp, final);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw bpfErr(`cannot move the pin of program "${name}" to ${final}: ${String(e)}`, {
      op: 'rename',
      program: name,
      path: final,
    });
  }
}

/**
 * Opens the object, pins every non-internal map at pinDir/<map> (reusing compatible pins: a restarted daemon
 * keeps its maps, the connection table among them), loads it, and pins the program at pinDir/prog_<name>.
 * Throws XDPVS_ERR_BPF (with libbpf's log in details.libbpfLog) or XDPVS_ERR_MAP (expectShapes).
 */
export function loadObject(opts: LoadOptions): LoadedObject {
  const { objectPath, pinDir, programName } = opts;
  if (!fs.existsSync(objectPath)) {
    throw bpfErr(`BPF object ${objectPath} does not exist (build it: bash scripts/build.sh)`, {
      op: 'bpf_object__open_file',
      errno: errno.ENOENT,
      errnoName: 'ENOENT',
      path: objectPath,
    });
  }
  ensureBpffs(pinDir);

  const opened = withLibbpfLog(() => objectOpenFile(objectPath));
  if (typeof opened.result === 'number') {
    throw cError(ErrorCode.Bpf, 'bpf_object__open_file', opened.result, `cannot open BPF object ${objectPath}`, {
      path: objectPath,
      libbpfLog: logTail(opened.log),
    });
  }
  const obj: ObjectPtr = opened.result;
  let keepObject = false;
  try {
    for (const [name, entries] of Object.entries(opts.maxEntries ?? {})) {
      const m = objectFindMap(obj, name);
      if (m === null) {
        throw bpfErr(`cannot size map "${name}": the object has no such map`, { op: 'bpf_map__set_max_entries', map: name });
      }
      const ret = mapSetMaxEntries(m, entries);
      if (ret < 0) {
        const what = `cannot size map "${name}" to ${entries}`;
        throw cError(ErrorCode.Bpf, 'bpf_map__set_max_entries', ret, what, { map: name, entries });
      }
    }

    const maps = objectMaps(obj);
    const defs = maps.map((m) => ({ ptr: m, def: mapDef(m) }));
    const reused: string[] = [];
    for (const { ptr, def } of defs) {
      // .rodata/.bss/.data/.kconfig belong to one load of the program: never pinned, never shared.
      if (def.internal || def.name.includes('.')) continue;
      const pinPath = path.join(pinDir, def.name);
      if (fs.existsSync(pinPath)) {
        checkPinCompatible(def, pinPath, pinDir);
        reused.push(def.name);
      }
      const ret = mapSetPinPath(ptr, pinPath);
      if (ret < 0) {
        const what = `cannot set the pin path of map "${def.name}"`;
        throw cError(ErrorCode.Bpf, 'bpf_map__set_pin_path', ret, what, { map: def.name, path: pinPath });
      }
    }

    const prog = objectFindProgram(obj, programName);
    if (prog === null) {
      const have = objectPrograms(obj).map((p) => p.name);
      throw bpfErr(`BPF object ${objectPath} has no program named "${programName}" (it has: ${have.join(', ') || 'none'})`, {
        op: 'bpf_object__find_program_by_name',
        program: programName,
        programs: have,
        path: objectPath,
      });
    }

    const loaded = withLibbpfLog(() => objectLoad(obj));
    if (loaded.result < 0) {
      const e = -loaded.result;
      const why = verifierVerdict(loaded.log);
      const pinTrouble = loaded.log.some((l) => l.includes('pinned map'));
      throw cError(
        ErrorCode.Bpf,
        'bpf_object__load',
        loaded.result,
        `cannot load BPF object ${objectPath}${why ? ` (verifier: ${why})` : ''}`,
        {
          path: objectPath,
          pinDir,
          libbpfLog: logTail(loaded.log),
          ...(e === errno.EPERM ? { hint: 'loading BPF programs needs root (CAP_BPF, CAP_NET_ADMIN)' } : {}),
          ...(pinTrouble ? { hint: `a pinned map could not be reused: remove the pin directory (rm -rf ${pinDir})` } : {}),
        },
      );
    }

    const progFd = programFd(prog);
    if (progFd < 0) {
      const what = `program "${programName}" has no fd after load`;
      throw cError(ErrorCode.Bpf, 'bpf_program__fd', progFd, what, { program: programName });
    }
    const pi = progInfo(progFd);
    if (typeof pi === 'number') {
      const what = `cannot read program "${programName}"`;
      throw cError(ErrorCode.Bpf, 'bpf_obj_get_info_by_fd', pi, what, { program: programName });
    }
    const progPin = path.join(pinDir, `prog_${programName}`);
    pinProgram(prog, progPin, programName);

    const kmaps: KernelMap[] = [];
    const templates: Record<string, InnerTemplate> = {};
    for (const { ptr, def } of defs) {
      if (def.internal || def.name.includes('.')) continue;
      kmaps.push(new KernelMap(def.name, mapFd(ptr), false));
      const inner = mapInnerMap(ptr);
      if (inner !== null) {
        templates[def.name] = shapeOf(mapDef(inner));
      }
    }
    let closed = false;
    // From here the backend owns the object: its close() is the one place that frees it.
    keepObject = true;
    const backend = new KernelMapBackend(kmaps, {
      innerTemplates: templates,
      onClose: () => {
        if (closed) return;
        closed = true;
        objectClose(obj);
      },
    });
    for (const [name, shape] of Object.entries(opts.expectShapes ?? {})) {
      try {
        checkMapShape(backend.map(name), shape.keySize, shape.valueSize);
      } catch (e) {
        backend.close();
        throw e;
      }
    }
    return {
      backend,
      programFd: progFd,
      programId: pi.id,
      programName,
      pinDir,
      programPin: progPin,
      reusedMaps: reused,
      close: () => backend.close(),
    };
  } finally {
    if (!keepObject) objectClose(obj);
  }
}

/** The programs of an object file (opened, not loaded): C function name and ELF section. Throws XDPVS_ERR_BPF. */
export function listPrograms(objectPath: string): Array<{ name: string; section: string }> {
  const opened = withLibbpfLog(() => objectOpenFile(objectPath));
  if (typeof opened.result === 'number') {
    throw cError(ErrorCode.Bpf, 'bpf_object__open_file', opened.result, `cannot open BPF object ${objectPath}`, {
      path: objectPath,
      libbpfLog: logTail(opened.log),
    });
  }
  try {
    return objectPrograms(opened.result).map(({ name, section }) => ({ name, section }));
  } finally {
    objectClose(opened.result);
  }
}

// ---------------------------------------------------------------------------------------------------------
// XDP attachment

/** The index of interface `name` in this process' network namespace. Throws XDPVS_ERR_INVALID when there is none. */
export function ifindexOf(name: string): number {
  const i = ifNameToIndex(name);
  if (i === 0) {
    throw new XdpvsError(ErrorCode.Invalid, `no network interface named "${name}"`, { field: 'ifname', ifname: name });
  }
  return i;
}

export type XdpMode = 'native' | 'generic';
export type XdpAttachedMode = XdpMode | 'offload';

export interface AttachResult {
  mode: XdpMode;
  /** Set when 'auto' fell back to generic mode (and why). */
  warning?: string;
  /** The program this attachment replaced, if any. */
  replacedProgId?: number;
}

const MODE_FLAGS: Record<XdpMode, number> = { native: XDP_FLAGS_DRV_MODE, generic: XDP_FLAGS_SKB_MODE };

function withReplaced(r: AttachResult, replacedProgId: number | undefined): AttachResult {
  return replacedProgId === undefined ? r : { ...r, replacedProgId };
}

function ifDesc(ifindex: number): string {
  const name = ifIndexToName(ifindex);
  return name === undefined ? `interface #${ifindex}` : `interface ${name} (#${ifindex})`;
}

/** The name (C function) of the XDP program attached to ifindex, if any; undefined also when it cannot be read. */
export function attachedXdpProgramName(ifindex: number): string | undefined {
  const cur = queryXdp(ifindex);
  if (!cur) return undefined;
  const fd = progGetFdById(cur.progId);
  if (fd < 0) return undefined;
  try {
    const info = progInfo(fd);
    return typeof info === 'number' ? undefined : info.name;
  } finally {
    closeFd(fd);
  }
}

/** What is attached to ifindex: { progId, mode }, or undefined. Throws XDPVS_ERR_BPF (ENODEV for no interface). */
export function queryXdp(ifindex: number): { progId: number; mode: XdpAttachedMode } | undefined {
  const q = queryRaw(ifindex);
  switch (q.attachMode) {
    case XDP_ATTACHED_DRV:
      return { progId: q.progId || q.drvProgId, mode: 'native' };
    case XDP_ATTACHED_SKB:
      return { progId: q.progId || q.skbProgId, mode: 'generic' };
    case XDP_ATTACHED_HW:
      return { progId: q.progId || q.hwProgId, mode: 'offload' };
    case XDP_ATTACHED_MULTI:
      // Offloaded plus driver program: the driver one is ours to manage.
      if (q.drvProgId) return { progId: q.drvProgId, mode: 'native' };
      if (q.skbProgId) return { progId: q.skbProgId, mode: 'generic' };
      return { progId: q.hwProgId, mode: 'offload' };
    default:
      return undefined;
  }
}

function queryRaw(ifindex: number): XdpQuery {
  const q = xdpQuery(ifindex);
  if (typeof q === 'number') {
    throw cError(ErrorCode.Bpf, 'bpf_xdp_query', q, `cannot query XDP on ${ifDesc(ifindex)}`, { ifindex });
  }
  // libbpf answers "nothing attached" for an interface that does not exist (it filters a netlink dump).
  if (q.attachMode === 0 && ifIndexToName(ifindex) === undefined) {
    throw cError(ErrorCode.Bpf, 'bpf_xdp_query', -errno.ENODEV, `cannot query XDP on ${ifDesc(ifindex)}`, { ifindex });
  }
  return q;
}

function attachOnce(
  ifindex: number,
  progFd: number,
  mode: XdpMode,
  replace: boolean,
): { ret: number; replacedProgId?: number } {
  let flags = MODE_FLAGS[mode];
  if (!replace) {
    // Refuse to clobber whatever is attached (ours from a previous run, or someone else's).
    const ret = xdpAttach(ifindex, progFd, flags | XDP_FLAGS_UPDATE_IF_NOEXIST);
    return { ret };
  }
  const cur = queryXdp(ifindex);
  if (!cur) return { ret: xdpAttach(ifindex, progFd, flags | XDP_FLAGS_UPDATE_IF_NOEXIST) };
  if (cur.mode !== mode) {
    throw bpfErr(
      `cannot replace the ${cur.mode} XDP program (id ${cur.progId}) on ${ifDesc(ifindex)} by a ${mode} one atomically; ` +
        `detach it first (xdpvs never leaves an interface without its program on its own)`,
      { op: 'bpf_xdp_attach', ifindex, attachedMode: cur.mode, attachedProgId: cur.progId, mode },
    );
  }
  const oldFd = progGetFdById(cur.progId);
  if (oldFd < 0) {
    const what = `cannot open the attached XDP program (id ${cur.progId}) on ${ifDesc(ifindex)}`;
    throw cError(ErrorCode.Bpf, 'bpf_prog_get_fd_by_id', oldFd, what, { ifindex, progId: cur.progId });
  }
  try {
    // XDP_FLAGS_REPLACE: the kernel swaps the program only if old_prog_fd is still the attached one.
    flags |= XDP_FLAGS_REPLACE;
    return { ret: xdpAttach(ifindex, progFd, flags, oldFd), replacedProgId: cur.progId };
  } finally {
    closeFd(oldFd);
  }
}

/**
 * Attaches progFd to ifindex. 'auto' tries native (driver) mode, then generic (skb) mode with a warning.
 * replace: swaps an attached program atomically (XDP_FLAGS_REPLACE against the one queried); without it an
 * attached program is an error (EBUSY/EEXIST). Throws XDPVS_ERR_BPF.
 */
export function attachXdp(
  ifindex: number,
  progFd: number,
  mode: XdpMode | 'auto',
  opts: { replace?: boolean } = {},
): AttachResult {
  const replace = opts.replace ?? false;
  let want: XdpMode | 'auto' = mode;
  if (mode === 'auto' && replace) {
    // Replacing keeps the attached program's mode: an atomic swap cannot change modes.
    const cur = queryXdp(ifindex);
    if (cur && cur.mode !== 'offload') want = cur.mode;
  }
  const fail = (m: XdpMode, ret: number, extra: Record<string, unknown> = {}) =>
    cError(ErrorCode.Bpf, 'bpf_xdp_attach', ret, `cannot attach XDP program in ${m} mode to ${ifDesc(ifindex)}`, {
      ifindex,
      mode: m,
      replace,
      ...(-ret === errno.EEXIST || -ret === errno.EBUSY
        ? {
            hint: replace
              ? 'the attached program changed meanwhile; query and retry'
              : 'a program is already attached; use replace',
          }
        : {}),
      ...extra,
    });

  if (want !== 'auto') {
    const r = attachOnce(ifindex, progFd, want, replace);
    if (r.ret < 0) throw fail(want, r.ret);
    return withReplaced({ mode: want }, r.replacedProgId);
  }
  const native = attachOnce(ifindex, progFd, 'native', replace);
  if (native.ret >= 0) return withReplaced({ mode: 'native' }, native.replacedProgId);
  const ne = -native.ret;
  if (ne === errno.EEXIST || ne === errno.EBUSY) throw fail('native', native.ret);
  const generic = attachOnce(ifindex, progFd, 'generic', replace);
  if (generic.ret < 0) throw fail('generic', generic.ret, { nativeErrno: ne, nativeErrnoName: errnoName(ne) });
  const warning =
    `native XDP is not available on ${ifDesc(ifindex)} (${errnoName(ne)}): attached in generic (skb) mode, ` +
    `which works everywhere but is much slower`;
  return withReplaced({ mode: 'generic', warning }, generic.replacedProgId);
}

/** Detaches whatever XDP program is attached to ifindex (in any mode). Returns the detached program's id, if any. */
export function detachXdp(ifindex: number): number | undefined {
  const q = queryRaw(ifindex);
  const todo: Array<[number, number]> = [];
  if (q.drvProgId) todo.push([XDP_FLAGS_DRV_MODE, q.drvProgId]);
  if (q.skbProgId) todo.push([XDP_FLAGS_SKB_MODE, q.skbProgId]);
  if (q.hwProgId) todo.push([XDP_FLAGS_HW_MODE, q.hwProgId]);
  for (const [flags, id] of todo) {
    const ret = xdpDetach(ifindex, flags);
    if (ret < 0) {
      const what = `cannot detach XDP program ${id} from ${ifDesc(ifindex)}`;
      throw cError(ErrorCode.Bpf, 'bpf_xdp_detach', ret, what, { ifindex, progId: id, flags });
    }
  }
  return todo[0]?.[1] ?? (q.progId || undefined);
}

// ---------------------------------------------------------------------------------------------------------
// BPF_PROG_TEST_RUN

/** Room after the packet in dataOut, for programs that grow it (encapsulation). */
export const TEST_RUN_HEADROOM = 256;

export interface TestRunResult {
  /** The program's verdict (XDP_ABORTED 0, DROP 1, PASS 2, TX 3, REDIRECT 4). */
  retval: number;
  /** The packet as the program left it. */
  dataOut: Buffer;
  /** Average run time, ns. */
  durationNs: number;
}

/** Runs the program once (or `repeat` times) on packet with BPF_PROG_TEST_RUN. ctxIn: a struct xdp_md (24 bytes). */
export function testRun(progFd: number, packet: Buffer, opts: { repeat?: number; ctxIn?: Buffer } = {}): TestRunResult {
  const dataOut = Buffer.alloc(packet.length + TEST_RUN_HEADROOM);
  const r = progTestRun(progFd, {
    dataIn: packet,
    dataOut,
    repeat: opts.repeat ?? 1,
    ...(opts.ctxIn ? { ctxIn: opts.ctxIn } : {}),
  });
  if (r.ret < 0) {
    throw cError(ErrorCode.Bpf, 'bpf_prog_test_run_opts', r.ret, `test run of a ${packet.length}-byte packet failed`, {
      packetLength: packet.length,
      repeat: opts.repeat ?? 1,
    });
  }
  return { retval: r.retval, dataOut: dataOut.subarray(0, Math.min(r.dataSizeOut, dataOut.length)), durationNs: r.duration };
}
