// xdpvsd --conn-table-size against the real loader (root): the table gets the size, and a pinned table of another
// size is refused with both sizes and the two ways on, instead of a bare EINVAL.

import { afterAll, describe, expect, it } from 'vitest';

import { loadConnTableSized } from '../../src/daemon/conn-table.js';
import { parseDaemonArgs } from '../../src/daemon/args.js';
import { isXdpvsError } from '../../src/errors.js';
import { removePins, type LoadedObject } from '../../src/loader/program.js';
import { ensureBpfObject, isRoot, mustRun } from '../../src/testing/harness.js';

const pinDir = `/sys/fs/bpf/xdpvs_test_conntable_${process.pid}`;
const open: LoadedObject[] = [];

describe.skipIf(!mustRun)('--conn-table-size', () => {
  afterAll(() => {
    for (const o of open) o.close();
    removePins(pinDir);
  });

  it('sizes conns and nat_reverse before load; a pinned table of another size is refused, saying what to do', () => {
    if (!isRoot) throw new Error('needs root');
    const objectPath = ensureBpfObject('xdpvs_lb');
    removePins(pinDir);
    const o = loadConnTableSized({ objectPath, pinDir, programName: 'xdpvs_lb' }, 4096, 'eth0');
    open.push(o);
    expect(o.backend.map('conns').maxEntries).toBe(4096);
    expect(o.backend.map('nat_reverse').maxEntries).toBe(4096);
    // The same size again adopts the pins.
    const again = loadConnTableSized({ objectPath, pinDir, programName: 'xdpvs_lb' }, 4096, 'eth0');
    open.push(again);
    expect(again.reusedMaps).toContain('conns');
    let err: unknown;
    try {
      open.push(loadConnTableSized({ objectPath, pinDir, programName: 'xdpvs_lb' }, 8192, 'eth0'));
    } catch (e) {
      err = e;
    }
    expect(isXdpvsError(err)).toBe(true);
    const e = err as { code: string; message: string; details: Record<string, unknown> };
    expect(e.code).toBe('XDPVS_ERR_BPF');
    expect(e.message).toContain('the pinned connection table has 4096 entries, but 8192 were asked for (--conn-table-size)');
    expect(e.message).toContain('--conn-table-size 4096');
    expect(e.message).toContain('xdpvsd --interface eth0 --detach');
    expect(e.details.hint).toBe('--conn-table-size 4096');
  });

  it('xdpvsd parses --conn-table-size', () => {
    expect(parseDaemonArgs(['--interface', 'eth0', '--conn-table-size', '65536']).connTableSize).toBe(65536);
    expect(parseDaemonArgs(['--interface', 'eth0']).connTableSize).toBeUndefined();
    expect(() => parseDaemonArgs(['--interface', 'eth0', '--conn-table-size', '10'])).toThrow(/--conn-table-size/);
    expect(() => parseDaemonArgs(['--interface', 'eth0', '--conn-table-size', 'lots'])).toThrow(/--conn-table-size/);
  });
});
