// Datapath harness: builds and loads the real director object, fills its maps through src/maps, and runs
// packets through it with BPF_PROG_TEST_RUN. Shared by test/datapath and the benchmark (scripts/bench).

import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

import { loadObject, removePins, testRun, type LoadedObject } from '../loader/program.js';
import { LbMaps } from '../maps/lb-maps.js';
import { REASONS, type Reason } from '../maps/reasons.js';
import { SchedMaps } from '../maps/sched-maps.js';
import { DS_F_AVAILABLE } from '../maps/sched-structs.js';
import { AF_INET, AF_INET6, IPPROTO_TCP, IPPROTO_UDP, DEST_F_MAC_VALID } from '../maps/structs.js';
import { PACKAGE_ROOT } from '../paths.js';
import { hexdump, ipBytes, macBytes } from './packets.js';

/** The repository root, from src/testing (vitest) or dist/src/testing (the compiled benchmark). */
export const REPO = PACKAGE_ROOT;

export const isRoot = process.getuid?.() === 0;
/** In CI a missing privilege is a failure, not a skip. */
export const mustRun = isRoot || !!process.env.CI;

/** XDP verdicts by name, as BPF_PROG_TEST_RUN reports them. */
export const XDP = { ABORTED: 0, DROP: 1, PASS: 2, TX: 3, REDIRECT: 4 } as const;
export type Verdict = keyof typeof XDP;
const VERDICT_NAMES = Object.fromEntries(Object.entries(XDP).map(([k, v]) => [v, k])) as Record<number, Verdict>;

/** enum xdpvs_sched / xdpvs_fwd values used by the fixtures. */
export const SCHED = { rr: 0, wrr: 1, mh: 2, sh: 3, dh: 4 } as const;
export const FWD = { dr: 0, tun: 1, nat: 2 } as const;

/**
 * Compiles bpf/NAME.bpf.c to build/bpf/NAME.bpf.o (the command of scripts/build.sh) when the object is missing
 * or older than any bpf/ source, so the tests always run what is in the tree.
 */
export function ensureBpfObject(name: string): string {
  const src = path.join(REPO, 'bpf', `${name}.bpf.c`);
  const obj = path.join(REPO, 'build', 'bpf', `${name}.bpf.o`);
  const objTime = fs.existsSync(obj) ? fs.statSync(obj).mtimeMs : 0;
  const newest = Math.max(
    ...fs
      .readdirSync(path.join(REPO, 'bpf'))
      .filter((f) => /\.[ch]$/.test(f))
      .map((f) => fs.statSync(path.join(REPO, 'bpf', f)).mtimeMs),
  );
  if (objTime < newest) {
    fs.mkdirSync(path.dirname(obj), { recursive: true });
    const archInc = `/usr/include/${execFileSync('uname', ['-m']).toString().trim()}-linux-gnu`;
    execFileSync('clang', ['-O2', '-g', '-Wall', '-Werror', '-target', 'bpf', '-mcpu=v3', `-I${archInc}`, `-I${path.join(REPO, 'bpf')}`, '-c', src, '-o', obj], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  }
  return obj;
}

/** A 16-byte `__be32 addr[4]` (IPv4 in the first word). */
export function ip16(text: string): Buffer {
  const out = Buffer.alloc(16);
  ipBytes(text).copy(out);
  return out;
}

export function familyOf(text: string): number {
  return ipBytes(text).length === 16 ? AF_INET6 : AF_INET;
}

export interface RealServer {
  /** Destination id (index into `dests`). */
  id: number;
  addr: string;
  /** The real server's MAC (next hop in DR). */
  mac: string;
  /** Egress interface; 1 (the loopback, BPF_PROG_TEST_RUN's ingress) means XDP_TX. */
  ifindex?: number;
  method?: number;
  /** False: the next hop is not resolved yet. */
  macValid?: boolean;
  gen?: number;
  /** Weight in dest_sched (default 1; the schedule table is what the tests give). */
  weight?: number;
  /** TUN: the outer source address (a director address of addr's family). */
  tunSrc?: string;
  /** TUN: the egress MTU; 0 (the default) leaves it unchecked. */
  mtu?: number;
}

export interface ServiceSetup {
  id: number;
  vip: string;
  port: number;
  proto: 'tcp' | 'udp';
  sched?: number;
  flags?: number;
  servers: RealServer[];
  /** The schedule table as destination ids; the servers in order when left out. */
  ring?: number[];
}

export interface RunResult {
  verdict: Verdict;
  out: Buffer;
  /** The reason counters that moved, and by how much. */
  reasons: Partial<Record<Reason, number>>;
}

/** One loaded director program with empty maps, pinned in a directory of its own. */
export class Director {
  readonly maps: LbMaps;
  readonly directorMac: string;
  #loaded: LoadedObject;
  #slots = new Map<number, number>();

  private constructor(loaded: LoadedObject, directorMac: string) {
    this.#loaded = loaded;
    this.maps = new LbMaps(loaded.backend);
    this.directorMac = directorMac;
  }

  static #count = 0;

  /** pinPrefix: the pin directory's name in /sys/fs/bpf, before the PID and a counter. */
  static load(directorMac: string, pinPrefix = 'xdpvs_test_dp'): Director {
    const obj = ensureBpfObject('xdpvs_lb');
    const pinDir = `/sys/fs/bpf/${pinPrefix}_${process.pid}_${Director.#count++}`;
    removePins(pinDir);
    const loaded = loadObject({ objectPath: obj, pinDir, programName: 'xdpvs_lb' });
    return new Director(loaded, directorMac);
  }

  /** The kernel's id of the loaded program. */
  get programId(): number {
    return this.#loaded.programId;
  }

  /** The loaded program's fd, for timing it with testRun directly. */
  get programFd(): number {
    return this.#loaded.programFd;
  }

  /** Where its maps and program are pinned (removed by close()). */
  get pinDir(): string {
    return this.#loaded.pinDir;
  }

  close(): void {
    this.#loaded.close();
    removePins(this.#loaded.pinDir);
  }

  putServer(svcId: number, s: RealServer): void {
    this.maps.putDest(s.id, {
      addr: ip16(s.addr),
      port: 0,
      family: familyOf(s.addr),
      method: s.method ?? FWD.dr,
      gen: s.gen ?? 1,
      ifindex: s.ifindex ?? 1,
      svc_id: svcId,
      flags: s.macValid === false ? 0 : DEST_F_MAC_VALID,
      mac_dst: macBytes(s.mac),
      mac_src: macBytes(this.directorMac),
      mtu: s.mtu ?? 0,
      tun_src: s.tunSrc ? ip16(s.tunSrc) : Buffer.alloc(16),
    });
    // Weight and availability, as the daemon writes them with every real server (src/maps/sched-maps.ts).
    new SchedMaps(this.maps.backend).putDestSched(s.id, {
      weight: s.weight ?? 1,
      u_threshold: 0,
      l_threshold: 0,
      epoch: 1,
      active_adj: 0,
      inactive_adj: 0,
      flags: DS_F_AVAILABLE,
    });
  }

  addService(s: ServiceSetup): void {
    for (const rs of s.servers) this.putServer(s.id, rs);
    this.setRing(s, s.ring ?? s.servers.map((rs) => rs.id));
  }

  /** Writes a new schedule table into the service's other ring slot and switches the service to it. */
  setRing(s: ServiceSetup, ring: number[]): void {
    const slot = this.#slots.get(s.id) === s.id * 2 ? s.id * 2 + 1 : s.id * 2;
    if (ring.length) this.maps.writeRing(slot, Uint32Array.from(ring));
    this.maps.putService(
      { addr: ip16(s.vip), port: s.port, proto: s.proto === 'tcp' ? IPPROTO_TCP : IPPROTO_UDP, family: familyOf(s.vip) },
      { id: s.id, sched: s.sched ?? SCHED.rr, flags: s.flags ?? 0, ring_slot: slot, ring_len: ring.length },
    );
    this.#slots.set(s.id, slot);
  }

  reasonCounts(): Record<Reason, number> {
    return this.maps.reasonCounts();
  }

  /** One BPF_PROG_TEST_RUN; `ingress`: the ifindex the frame arrives on (an existing device; none by default). */
  run(packet: Buffer, opts: { ingress?: number } = {}): RunResult {
    const before = this.reasonCounts();
    const r = testRun(this.#loaded.programFd, packet, opts.ingress ? { ctxIn: xdpMdCtx(packet.length, opts.ingress) } : {});
    const after = this.reasonCounts();
    const reasons: Partial<Record<Reason, number>> = {};
    for (const name of REASONS) if (after[name] !== before[name]) reasons[name] = after[name] - before[name];
    return { verdict: VERDICT_NAMES[r.retval] ?? (`retval ${r.retval}` as Verdict), out: Buffer.from(r.dataOut), reasons };
  }
}

/** A struct xdp_md for BPF_PROG_TEST_RUN's ctx_in: the packet's bounds and the ingress interface. */
export function xdpMdCtx(packetLength: number, ingressIfindex: number): Buffer {
  const ctx = Buffer.alloc(24); // data, data_end, data_meta, ingress_ifindex, rx_queue_index, egress_ifindex
  ctx.writeUInt32LE(packetLength, 4);
  ctx.writeUInt32LE(ingressIfindex, 12);
  return ctx;
}

/** Throws, with both packets in hex, unless the program gave `verdict`, left exactly `expected` and counted `reason` once. */
export function expectRun(label: string, input: Buffer, got: RunResult, verdict: Verdict, expected: Buffer, reason: Reason): void {
  const problems: string[] = [];
  if (got.verdict !== verdict) problems.push(`verdict ${got.verdict}, expected ${verdict}`);
  if (!got.out.equals(expected)) problems.push('output packet differs');
  const want = { [reason]: 1 };
  if (JSON.stringify(got.reasons) !== JSON.stringify(want)) {
    problems.push(`reason counters moved ${JSON.stringify(got.reasons)}, expected ${JSON.stringify(want)}`);
  }
  if (problems.length) {
    throw new Error(
      `${label}: ${problems.join('; ')}\n` +
        `input (${input.length} B):\n${hexdump(input)}\n` +
        `expected output (${expected.length} B):\n${hexdump(expected)}\n` +
        `actual output (${got.out.length} B):\n${hexdump(got.out)}`,
    );
  }
}

/** The frame with its Ethernet destination and source replaced (what DR leaves). */
export function withMacs(frame: Buffer, dst: string, src: string): Buffer {
  const out = Buffer.from(frame);
  macBytes(dst).copy(out, 0);
  macBytes(src).copy(out, 6);
  return out;
}
