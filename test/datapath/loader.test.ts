// The libbpf loader against the kernel: load and pin the project's objects, map operations, restart adoption,
// BPF_PROG_TEST_RUN, and XDP attach/replace/detach on a veth pair inside a network namespace of its own.

import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

import koffi from 'koffi';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';

import { isXdpvsError, type XdpvsError } from '../../src/errors.js';
import { UpdateFlag, perCpuStride } from '../../src/maps/backend.js';
import { LB_MAPS, LbMaps, directorMapShapes } from '../../src/maps/lb-maps.js';
import { Dest } from '../../src/maps/structs.js';
import { KernelMap, KernelMapBackend, checkMapShape } from '../../src/loader/kernel-backend.js';
import {
  attachXdp,
  detachXdp,
  ensureBpffs,
  ifindexOf,
  listPrograms,
  loadObject,
  pinDirFor,
  queryXdp,
  removePins,
  testRun,
  type LoadedObject,
} from '../../src/loader/program.js';
import { MapType, mapCreate, setLibbpfLogger } from '../../src/loader/libbpf.js';

const isRoot = process.getuid?.() === 0;
const BPF_DIR = path.resolve('build/bpf');
const LB_OBJ = path.join(BPF_DIR, 'xdpvs_lb.bpf.o');
const PASS_OBJ = path.join(BPF_DIR, 'xdp_pass.bpf.o');
const XDP_PASS = 2;

if (!isRoot) {
  console.warn('test/datapath/loader.test.ts: skipped, loading BPF programs needs root');
}
test.runIf(!isRoot && !!process.env.CI)('runs as root in CI', () => {
  expect.fail('CI must run the datapath tests as root: they load BPF programs and attach XDP');
});

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n);
  return b;
}

function xdpProgram(objectPath: string, prefer?: string): string {
  const progs = listPrograms(objectPath).filter((p) => p.section.startsWith('xdp'));
  const pick = progs.find((p) => p.name === prefer) ?? progs[0];
  if (!pick) throw new Error(`${objectPath} has no XDP program`);
  return pick.name;
}

/** Catches the XdpvsError fn throws (the test fails when it throws nothing or something else). */
function caught(fn: () => unknown): XdpvsError {
  try {
    fn();
  } catch (e) {
    if (isXdpvsError(e)) return e;
    throw e;
  }
  throw new Error('expected an XdpvsError');
}

/** An Ethernet frame of `len` bytes with a recognisable pattern (ARP ethertype: every program passes it). */
function frame(len: number): Buffer {
  const b = Buffer.alloc(len);
  for (let i = 0; i < len; i++) b[i] = (i * 7 + 3) & 0xff;
  b.writeUInt16BE(0x0806, 12);
  return b;
}

describe.skipIf(!isRoot)('libbpf loader (root)', () => {
  // Pins of this run live in a directory of their own, removed at the end.
  const pinRoot = `/sys/fs/bpf/xdpvs-test-loader-${process.pid}-${Date.now().toString(36)}`;
  const open: LoadedObject[] = [];
  let lbProg = '';
  let passProg = '';
  let prevLogger: ReturnType<typeof setLibbpfLogger> = null;

  function load(sub: string, extra: Partial<Parameters<typeof loadObject>[0]> = {}): LoadedObject {
    const o = loadObject({ objectPath: LB_OBJ, pinDir: path.join(pinRoot, sub), programName: lbProg, ...extra });
    open.push(o);
    return o;
  }

  beforeAll(() => {
    for (const obj of [LB_OBJ, PASS_OBJ]) {
      if (!fs.existsSync(obj)) throw new Error(`${obj} is missing: build it with bash scripts/build.sh`);
    }
    // libbpf's warnings (the incompatible pin, the verifier) land in errors' details; keep the output quiet.
    prevLogger = setLibbpfLogger(null);
    const st = ensureBpffs(pinRoot);
    if (st.message) console.info(st.message);
    lbProg = xdpProgram(LB_OBJ);
    passProg = xdpProgram(PASS_OBJ, 'xdp_pass');
  });

  afterAll(() => {
    for (const o of open) o.close();
    removePins(pinRoot);
    setLibbpfLogger(prevLogger);
  });

  test('pinDirFor is unique per network namespace and interface', () => {
    const ino = fs.statSync('/proc/self/ns/net').ino;
    expect(pinDirFor('eth0')).toBe(`/sys/fs/bpf/xdpvs/${ino}/eth0`);
    expect(caught(() => pinDirFor('../x')).code).toBe('XDPVS_ERR_INVALID');
  });

  test('removePins refuses directories outside bpffs', () => {
    expect(caught(() => removePins('/tmp')).code).toBe('XDPVS_ERR_INVALID');
  });

  test('loads the director object, pins its maps and program, and the kernel shapes match the codecs', () => {
    const o = load('shapes', { expectShapes: directorMapShapes() });
    expect(o.programId).toBeGreaterThan(0);
    expect(o.reusedMaps).toEqual([]);
    expect(fs.existsSync(o.programPin)).toBe(true);
    for (const spec of Object.values(LB_MAPS)) {
      const m = o.backend.map(spec.name);
      expect({ name: m.name, keySize: m.keySize, valueSize: m.valueSize }).toEqual({
        name: spec.name,
        keySize: spec.keySize,
        valueSize: spec.valueSize,
      });
      expect(m.perCpu).toBe(spec.kind === 'percpu_array');
      expect(m.maxEntries).toBeGreaterThan(0);
      expect(fs.existsSync(path.join(o.pinDir, spec.name))).toBe(true);
    }
    // Internal maps (.rodata, .bss) are never pinned.
    expect(fs.readdirSync(o.pinDir).filter((n) => n.includes('.'))).toEqual([]);
    expect(o.backend.possibleCpus).toBeGreaterThan(0);

    const err = caught(() => checkMapShape(o.backend.map('dests'), 4, Dest.size - 1));
    expect(err.code).toBe('XDPVS_ERR_MAP');
    expect(err.message).toContain('"dests"');
    expect(err.message).toContain(`value size ${Dest.size}`);
    expect(err.message).toContain(`value size ${Dest.size - 1}`);
    expect(caught(() => o.backend.map('nope')).code).toBe('XDPVS_ERR_MAP');
  });

  test('a shape the codecs do not expect fails the load with XDPVS_ERR_MAP', () => {
    const err = caught(() => load('badshape', { expectShapes: { services: { keySize: 20, valueSize: 99 } } }));
    expect(err.code).toBe('XDPVS_ERR_MAP');
    expect(err.details).toMatchObject({ map: 'services', valueSize: 99, kernelValueSize: 16 });
  });

  test('a missing program is an XDPVS_ERR_BPF naming the programs there are', () => {
    const err = caught(() => loadObject({ objectPath: LB_OBJ, pinDir: path.join(pinRoot, 'noprog'), programName: 'nope' }));
    expect(err.code).toBe('XDPVS_ERR_BPF');
    expect(err.message).toContain(lbProg);
  });

  test('update, lookup, delete, keys and batch on services (hash) and dests (array)', () => {
    const o = load('ops');
    const services = o.backend.map('services');
    const k1 = Buffer.alloc(20, 1);
    const k2 = Buffer.alloc(20, 2);
    const v1 = Buffer.alloc(16, 0xa1);
    expect(services.lookup(k1)).toBeUndefined();
    services.update(k1, v1);
    expect(services.lookup(k1)).toEqual(v1);
    const dup = caught(() => services.update(k1, v1, UpdateFlag.NoExist));
    expect(dup.code).toBe('XDPVS_ERR_MAP');
    expect(dup.details).toMatchObject({ op: 'bpf_map_update_elem', errno: 17, errnoName: 'EEXIST', map: 'services' });
    expect(dup.message).toContain('EEXIST');
    expect(caught(() => services.update(k2, v1, UpdateFlag.Exist)).details.errnoName).toBe('ENOENT');
    expect(caught(() => services.update(Buffer.alloc(19), v1)).code).toBe('XDPVS_ERR_MAP');
    expect(caught(() => services.update(k1, Buffer.alloc(15))).code).toBe('XDPVS_ERR_MAP');

    const keys = Array.from({ length: 100 }, (_, i) => {
      const k = Buffer.alloc(20);
      k.writeUInt32BE(0xc6120000 + i, 0);
      return k;
    });
    const values = keys.map((_, i) => Buffer.alloc(16, i));
    services.updateBatch(Buffer.concat(keys), Buffer.concat(values));
    // Packed keys and values must make whole entries, the same number of each.
    expect(caught(() => services.updateBatch(Buffer.concat(keys), Buffer.concat(values.slice(1)))).code).toBe('XDPVS_ERR_MAP');
    expect(services.lookup(keys[42]!)).toEqual(Buffer.alloc(16, 42));
    const all = services.keys().map((k) => k.toString('hex'));
    expect(all).toHaveLength(101);
    expect(new Set(all)).toEqual(new Set([k1, ...keys].map((k) => k.toString('hex'))));
    expect(services.delete(k1)).toBe(true);
    expect(services.delete(k1)).toBe(false);
    expect(services.keys()).toHaveLength(100);

    const dests = o.backend.map('dests');
    const d = Buffer.alloc(Dest.size, 0x5a);
    dests.update(u32(7), d);
    expect(dests.lookup(u32(7))).toEqual(d);
    expect(dests.lookup(u32(8))).toEqual(Buffer.alloc(Dest.size));
    expect(dests.lookup(u32(dests.maxEntries))).toBeUndefined();
    dests.updateBatch(Buffer.concat([u32(1), u32(2), u32(3)]), Buffer.concat([Buffer.alloc(Dest.size, 1), Buffer.alloc(Dest.size, 2), Buffer.alloc(Dest.size, 3)]));
    expect(dests.lookup(u32(3))).toEqual(Buffer.alloc(Dest.size, 3));
    expect(dests.keys()).toHaveLength(dests.maxEntries);
    // Array elements cannot be deleted: the kernel says EINVAL.
    expect(caught(() => dests.delete(u32(7))).details).toMatchObject({ errnoName: 'EINVAL', op: 'bpf_map_delete_elem' });
    const big = caught(() => dests.update(u32(dests.maxEntries), d));
    expect(big.details.errnoName).toBe('E2BIG');
  });

  test('updateBatch falls back to single updates where the kernel has no batch operation (ENOTSUPP)', () => {
    // A devmap (ifindex values) has no map_update_batch; lo is ifindex 1 in every namespace.
    const fd = mapCreate(MapType.Devmap, 'xdpvs_t_devmap', 4, 4, 4);
    expect(fd).toBeGreaterThan(0);
    const m = new KernelMap('devmap', fd, true);
    try {
      m.updateBatch(Buffer.concat([u32(0), u32(2)]), Buffer.concat([u32(1), u32(1)]));
      expect(m.lookup(u32(2))!.readUInt32LE(0)).toBe(1);
      // The loop names the element the kernel refuses.
      const err = caught(() => m.updateBatch(Buffer.concat([u32(1), u32(9)]), Buffer.concat([u32(1), u32(1)])));
      expect(err.details).toMatchObject({ op: 'bpf_map_update_elem', map: 'devmap', key: '09000000' });
    } finally {
      m.close();
    }
  });

  test('per-CPU values: every possible CPU, 8-byte stride; the program counts a passed packet in reasons', () => {
    const o = load('percpu');
    const reasons = o.backend.map('reasons');
    const cpus = o.backend.possibleCpus;
    expect(reasons.perCpu).toBe(true);
    expect(reasons.valueSize).toBe(8);
    const raw = reasons.lookup(u32(1))!;
    expect(raw.length).toBe(cpus * perCpuStride(8));

    const v = Buffer.alloc(cpus * 8);
    for (let c = 0; c < cpus; c++) v.writeBigUInt64LE(BigInt(1000 + c), c * 8);
    reasons.update(u32(1), v);
    expect(reasons.lookup(u32(1))).toEqual(v);
    expect(caught(() => reasons.update(u32(1), Buffer.alloc(8))).code).toBe('XDPVS_ERR_MAP');

    const stats = o.backend.map('svc_stats');
    expect(stats.lookup(u32(0))!.length).toBe(cpus * perCpuStride(40));

    const total = () => {
      let sum = 0n;
      for (let r = 0; r < reasons.maxEntries; r++) {
        const b = reasons.lookup(u32(r))!;
        for (let c = 0; c < cpus; c++) sum += b.readBigUInt64LE(c * 8);
      }
      return sum;
    };
    const before = total();
    testRun(o.programFd, frame(64));
    expect(total() - before).toBe(1n);
  });

  test('schedule tables: createInnerArray, setInner, getInner on rings', () => {
    const o = load('rings');
    const be = o.backend;
    const inner = be.createInnerArray('rings', 5);
    expect({ keySize: inner.keySize, valueSize: inner.valueSize, maxEntries: inner.maxEntries }).toEqual({
      keySize: 4,
      valueSize: 4,
      maxEntries: 5,
    });
    inner.updateBatch(Buffer.concat([0, 1, 2, 3, 4].map(u32)), Buffer.concat([10, 11, 12, 13, 14].map(u32)));
    be.setInner('rings', 3, inner);
    inner.close(); // the outer map keeps it alive
    expect(caught(() => inner.lookup(u32(0))).code).toBe('XDPVS_ERR_MAP');

    const back = be.getInner('rings', 3)!;
    expect(back.maxEntries).toBe(5);
    expect([0, 1, 2, 3, 4].map((i) => back.lookup(u32(i))!.readUInt32LE(0))).toEqual([10, 11, 12, 13, 14]);
    back.close();
    expect(be.getInner('rings', 4)).toBeUndefined();

    // A table of another length replaces it (BPF_F_INNER_MAP), and deleting the slot empties it.
    const big = be.createInnerArray('rings', 65537);
    be.setInner('rings', 3, big);
    big.close();
    const again = be.getInner('rings', 3)!;
    expect(again.maxEntries).toBe(65537);
    again.close();
    expect(be.map('rings').delete(u32(3))).toBe(true);
    expect(be.getInner('rings', 3)).toBeUndefined();
    expect(caught(() => be.createInnerArray('dests', 4)).code).toBe('XDPVS_ERR_MAP');

    // The same through the real src/maps layer.
    const lb = new LbMaps(be);
    lb.writeRing(9, Uint32Array.from([5, 6, 7]));
    expect(Array.from(lb.readRing(9))).toEqual([5, 6, 7]);
  });

  test('a restarted loader adopts the pinned maps with their contents and replaces the program pin', () => {
    const first = load('restart');
    const key = Buffer.alloc(20, 9);
    const val = Buffer.alloc(16, 0x77);
    first.backend.map('services').update(key, val);
    const conn = Buffer.alloc(40, 3);
    first.backend.map('conns').update(conn, Buffer.alloc(32, 4));
    const ring = first.backend.createInnerArray('rings', 3);
    ring.update(u32(2), u32(99));
    first.backend.setInner('rings', 0, ring);
    ring.close();
    const firstId = first.programId;
    first.close();
    first.close(); // idempotent
    expect(caught(() => first.backend.map('services')).code).toBe('XDPVS_ERR_MAP');

    const second = load('restart');
    expect([...second.reusedMaps].sort()).toEqual(Object.keys(directorMapShapes()).sort());
    expect(second.programId).not.toBe(firstId);
    expect(second.backend.map('services').lookup(key)).toEqual(val);
    expect(second.backend.map('conns').lookup(conn)).toEqual(Buffer.alloc(32, 4));
    const adopted = second.backend.getInner('rings', 0)!;
    expect(adopted.lookup(u32(2))!.readUInt32LE(0)).toBe(99);
    adopted.close();
    expect(fs.readdirSync(second.pinDir).filter((n) => n.startsWith('prog_'))).toEqual([`prog_${lbProg}`]);

    // Tools read a running data plane from the pins alone.
    const pinned = KernelMapBackend.openPinned(second.pinDir);
    try {
      expect(pinned.map('services').lookup(key)).toEqual(val);
      expect(pinned.map('services').id).toBe(second.backend.map('services').id);
    } finally {
      pinned.close();
    }
  });

  test('a pinned map that no longer fits the object is an XDPVS_ERR_BPF naming it and the fix', () => {
    load('resize');
    const err = caught(() => load('resize', { maxEntries: { services: 1234 } }));
    expect(err.code).toBe('XDPVS_ERR_BPF');
    expect(err.details).toMatchObject({ op: 'reuse_pinned_map', map: 'services' });
    expect(err.message).toContain('"services"');
    expect(err.message).toContain('max_entries 1234');
    expect(err.message).toContain(`rm -rf ${path.join(pinRoot, 'resize')}`);
  });

  test('maxEntries sizes tables before load', () => {
    const o = load('sized', { maxEntries: { conns: 4096, services: 64 } });
    expect(o.backend.map('conns').maxEntries).toBe(4096);
    expect(o.backend.map('services').maxEntries).toBe(64);
    expect(caught(() => load('sized2', { maxEntries: { nope: 1 } })).code).toBe('XDPVS_ERR_BPF');
  });

  test('testRun of xdp_pass returns XDP_PASS and the same bytes', () => {
    const o = loadObject({ objectPath: PASS_OBJ, pinDir: path.join(pinRoot, 'pass'), programName: passProg });
    open.push(o);
    const pkt = frame(98);
    const r = testRun(o.programFd, pkt);
    expect(r.retval).toBe(XDP_PASS);
    expect(r.dataOut.toString('hex')).toBe(pkt.toString('hex'));
    const many = testRun(o.programFd, pkt, { repeat: 100 });
    expect(many.retval).toBe(XDP_PASS);
    expect(many.durationNs).toBeGreaterThanOrEqual(0);
    const tooShort = caught(() => testRun(o.programFd, Buffer.alloc(4)));
    expect(tooShort.code).toBe('XDPVS_ERR_BPF');
    expect(tooShort.details.op).toBe('bpf_prog_test_run_opts');
  });

  describe('XDP attachment on a veth pair in a namespace of its own', () => {
    const ns = `xdpvs-ldr-${process.pid}`;
    const CLONE_NEWNET = 0x40000000;
    const libc = koffi.load('libc.so.6');
    const setns = libc.func('int setns(int fd, int nstype)');

    /** Runs fn with this thread in the namespace (libbpf's netlink socket and if_nametoindex follow it). */
    function inNs<T>(fn: () => T): T {
      const home = fs.openSync('/proc/thread-self/ns/net', 'r');
      const there = fs.openSync(`/run/netns/${ns}`, 'r');
      try {
        if (setns(there, CLONE_NEWNET) !== 0) throw new Error(`setns(${ns}) failed: errno ${koffi.errno()}`);
        try {
          return fn();
        } finally {
          if (setns(home, CLONE_NEWNET) !== 0) throw new Error(`setns back failed: errno ${koffi.errno()}`);
        }
      } finally {
        fs.closeSync(there);
        fs.closeSync(home);
      }
    }

    let lb: LoadedObject;
    let pass: LoadedObject;

    beforeAll(() => {
      execFileSync('ip', ['netns', 'add', ns]);
      execFileSync('ip', ['-n', ns, 'link', 'add', 'xva', 'type', 'veth', 'peer', 'name', 'xvb']);
      execFileSync('ip', ['-n', ns, 'link', 'set', 'xva', 'up']);
      execFileSync('ip', ['-n', ns, 'link', 'set', 'xvb', 'up']);
      execFileSync('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
      lb = load('attach');
      pass = loadObject({ objectPath: PASS_OBJ, pinDir: path.join(pinRoot, 'attach-pass'), programName: passProg });
      open.push(pass);
    });

    afterAll(() => {
      try {
        execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
      } catch {
        // Already gone (beforeAll failed before creating it).
      }
    });

    test('the namespace has its own pin directory', () => {
      const here = pinDirFor('xva');
      expect(inNs(() => pinDirFor('xva'))).not.toBe(here);
    });

    test('attach native, refuse a second attach, replace atomically, detach', () => {
      inNs(() => {
        const xva = ifindexOf('xva');
        expect(queryXdp(xva)).toBeUndefined();
        expect(attachXdp(xva, pass.programFd, 'native')).toEqual({ mode: 'native' });
        expect(queryXdp(xva)).toEqual({ progId: pass.programId, mode: 'native' });

        const again = caught(() => attachXdp(xva, lb.programFd, 'native'));
        expect(again.code).toBe('XDPVS_ERR_BPF');
        expect(['EBUSY', 'EEXIST']).toContain(again.details.errnoName);
        expect(queryXdp(xva)?.progId).toBe(pass.programId);

        const swapped = attachXdp(xva, lb.programFd, 'auto', { replace: true });
        expect(swapped).toEqual({ mode: 'native', replacedProgId: pass.programId });
        expect(queryXdp(xva)).toEqual({ progId: lb.programId, mode: 'native' });

        // An atomic swap cannot change modes.
        const cross = caught(() => attachXdp(xva, pass.programFd, 'generic', { replace: true }));
        expect(cross.code).toBe('XDPVS_ERR_BPF');
        expect(queryXdp(xva)?.progId).toBe(lb.programId);

        expect(detachXdp(xva)).toBe(lb.programId);
        expect(queryXdp(xva)).toBeUndefined();
        expect(detachXdp(xva)).toBeUndefined();
      });
    });

    test('generic mode, replace in generic mode, and auto falling back to generic where native is missing', () => {
      inNs(() => {
        const xvb = ifindexOf('xvb');
        expect(attachXdp(xvb, pass.programFd, 'generic')).toEqual({ mode: 'generic' });
        expect(queryXdp(xvb)).toEqual({ progId: pass.programId, mode: 'generic' });
        expect(attachXdp(xvb, lb.programFd, 'generic', { replace: true })).toEqual({
          mode: 'generic',
          replacedProgId: pass.programId,
        });
        expect(queryXdp(xvb)).toEqual({ progId: lb.programId, mode: 'generic' });
        detachXdp(xvb);
        expect(queryXdp(xvb)).toBeUndefined();

        // Loopback has no driver XDP.
        const lo = ifindexOf('lo');
        const r = attachXdp(lo, pass.programFd, 'auto');
        expect(r.mode).toBe('generic');
        expect(r.warning).toMatch(/native XDP is not available/);
        expect(queryXdp(lo)).toEqual({ progId: pass.programId, mode: 'generic' });
        detachXdp(lo);
        expect(queryXdp(lo)).toBeUndefined();
      });
    });

    test('errors name the operation: no such interface', () => {
      inNs(() => {
        expect(caught(() => ifindexOf('xdpvs-none')).code).toBe('XDPVS_ERR_INVALID');
        const err = caught(() => queryXdp(999999));
        expect(err.code).toBe('XDPVS_ERR_BPF');
        expect(err.details.op).toBe('bpf_xdp_query');
      });
    });
  });
});
