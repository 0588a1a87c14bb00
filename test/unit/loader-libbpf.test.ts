// The koffi declarations of src/loader/libbpf.ts against the C headers (sizes and offsets measured with gcc
// on x86-64 from /usr/include/bpf/{bpf,libbpf}.h and linux/bpf.h), and the loader's pure helpers. No root needed.

import koffi, { type TypeObject } from 'koffi';
import { describe, expect, test } from 'vitest';

import { isXdpvsError } from '../../src/errors.js';
import type { BpfMap } from '../../src/maps/backend.js';
import { checkMapShape, possibleCpus } from '../../src/loader/kernel-backend.js';
import {
  BpfMapBatchOpts,
  BpfMapCreateOpts,
  BpfMapInfo,
  BpfProgInfoHead,
  BpfTestRunOpts,
  BpfXdpAttachOpts,
  BpfXdpQueryOpts,
  MapType,
  cError,
  errnoName,
  isPerCpuType,
  logTail,
  objectOpenFile,
  setLibbpfLogger,
  withLibbpfLog,
} from '../../src/loader/libbpf.js';

function layout(t: TypeObject, fields: string[]): Record<string, number> {
  const out: Record<string, number> = { size: koffi.sizeof(t) };
  for (const f of fields) out[f] = koffi.offsetof(t, f);
  return out;
}

describe('struct layouts match the C headers', () => {
  test.skipIf(process.arch !== 'x64')('x86-64', () => {
    expect(layout(BpfTestRunOpts, ['data_out', 'ctx_in', 'retval', 'duration', 'batch_size'])).toEqual({
      size: 80,
      data_out: 16,
      ctx_in: 32,
      retval: 56,
      duration: 64,
      batch_size: 76,
    });
    expect(layout(BpfMapCreateOpts, ['inner_map_fd', 'map_flags', 'map_extra', 'map_ifindex'])).toEqual({
      size: 48,
      inner_map_fd: 24,
      map_flags: 28,
      map_extra: 32,
      map_ifindex: 44,
    });
    expect(layout(BpfMapBatchOpts, ['elem_flags', 'flags'])).toEqual({ size: 24, elem_flags: 8, flags: 16 });
    expect(layout(BpfXdpAttachOpts, ['old_prog_fd'])).toEqual({ size: 16, old_prog_fd: 8 });
    expect(layout(BpfXdpQueryOpts, ['prog_id', 'skb_prog_id', 'attach_mode'])).toEqual({
      size: 32,
      prog_id: 8,
      skb_prog_id: 20,
      attach_mode: 24,
    });
    expect(layout(BpfMapInfo, ['name', 'ifindex', 'netns_dev', 'btf_id', 'map_extra'])).toEqual({
      size: 88,
      name: 24,
      ifindex: 40,
      netns_dev: 48,
      btf_id: 64,
      map_extra: 80,
    });
    // Only the head of struct bpf_prog_info (232 bytes) is declared; the kernel fills as much as we ask.
    expect(layout(BpfProgInfoHead, ['tag', 'jited_prog_insns', 'load_time', 'map_ids', 'name'])).toEqual({
      size: 80,
      tag: 8,
      jited_prog_insns: 24,
      load_time: 40,
      map_ids: 56,
      name: 64,
    });
  });
});

describe('errors', () => {
  test('errno names, including the kernel-only ENOTSUPP', () => {
    expect(errnoName(17)).toBe('EEXIST');
    expect(errnoName(2)).toBe('ENOENT');
    expect(errnoName(524)).toBe('ENOTSUPP');
    expect(errnoName(99999)).toBe('errno 99999');
  });

  test('cError carries the operation and errno in the message and the details', () => {
    const e = cError('XDPVS_ERR_MAP', 'bpf_map_update_elem', -17, 'map "services": update failed', { map: 'services' });
    expect(e.code).toBe('XDPVS_ERR_MAP');
    expect(e.message).toBe('map "services": update failed: bpf_map_update_elem failed with EEXIST (errno 17: File exists)');
    expect(e.details).toEqual({ op: 'bpf_map_update_elem', errno: 17, errnoName: 'EEXIST', map: 'services' });
  });

  test('opening a missing object gives -ENOENT and libbpf says why in the captured log', () => {
    const prev = setLibbpfLogger(null);
    const { result, log } = withLibbpfLog(() => objectOpenFile('/nonexistent/xdpvs.bpf.o'));
    setLibbpfLogger(prev);
    expect(result).toBe(-2);
    expect(log.join('\n')).toContain('/nonexistent/xdpvs.bpf.o');
  });

  test('logTail keeps the end of a long log', () => {
    const tail = logTail(['a'.repeat(100), 'b'.repeat(100)], 50);
    expect(tail.startsWith('[...]\n')).toBe(true);
    expect(tail.endsWith('b'.repeat(50))).toBe(true);
  });
});

describe('maps', () => {
  const fake = (keySize: number, valueSize: number) => ({ name: 'dests', keySize, valueSize }) as BpfMap;

  test('checkMapShape accepts the expected sizes and names the map and both sizes otherwise', () => {
    expect(() => checkMapShape(fake(4, 48), 4, 48)).not.toThrow();
    try {
      checkMapShape(fake(4, 44), 4, 48);
      expect.fail('no error');
    } catch (e) {
      expect(isXdpvsError(e, 'XDPVS_ERR_MAP')).toBe(true);
      const err = e as Error & { details: Record<string, unknown> };
      expect(err.message).toContain('"dests"');
      expect(err.message).toContain('value size 44');
      expect(err.message).toContain('value size 48');
      expect(err.details).toMatchObject({ map: 'dests', kernelValueSize: 44, valueSize: 48 });
    }
  });

  test('per-CPU map types', () => {
    expect(isPerCpuType(MapType.PercpuArray)).toBe(true);
    expect(isPerCpuType(MapType.LruPercpuHash)).toBe(true);
    expect(isPerCpuType(MapType.LruHash)).toBe(false);
  });

  test('possible CPUs come from the kernel', async () => {
    const fs = await import('node:fs');
    // "0-1" or "0,2-3": count the ranges.
    const text = fs.readFileSync('/sys/devices/system/cpu/possible', 'utf8').trim();
    const n = text
      .split(',')
      .map((r) => r.split('-').map(Number))
      .reduce((acc, [a, b]) => acc + ((b ?? a!) - a! + 1), 0);
    expect(possibleCpus()).toBe(n);
  });
});
