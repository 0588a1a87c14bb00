// The real server's decap program (bpf/xdpvs_decap.bpf.c) on crafted packets (BPF_PROG_TEST_RUN, one run each):
// it strips the outer header only of IP-in-IP packets to this host for a configured VIP, and leaves everything
// else exactly as it came. Also: the director's tunnel output, decapsulated, is the client's packet again.

import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';

import { parseAddress } from '../../src/lb/address.js';
import { loadObject, removePins, testRun, type LoadedObject } from '../../src/loader/program.js';
import { DecapMaps } from '../../src/maps/decap-maps.js';
import { DECAP_REASONS, type DecapReason } from '../../src/maps/reasons.js';
import { Director, FWD, ensureBpfObject, isRoot, mustRun, XDP, type Verdict } from '../../src/testing/harness.js';
import {
  ETH_P_IP,
  ETH_P_IPV6,
  IPPROTO_TCP,
  IPPROTO_UDP,
  TCP_FLAGS,
  ethernet,
  hexdump,
  inetChecksum,
  ipBytes,
  ipv4,
  ipv6,
  tcp,
  udp,
} from '../../src/testing/packets.js';

if (!isRoot) {
  console.warn(
    process.env.CI
      ? 'test/datapath (decap): not root, and CI is set: failing instead of skipping'
      : 'test/datapath (decap): skipped: BPF_PROG_TEST_RUN needs root',
  );
}

const RS_MAC = '02:00:00:00:a0:01';
const GW_MAC = '02:00:00:00:9e:01';
const DIRECTOR_MAC = '02:00:00:00:d1:00';
const CLIENT_MAC = '02:00:00:00:c1:00';
const CLIENT4 = '198.18.0.10';
const CLIENT6 = 'fd00:2::10';
const VIP4 = '198.18.1.1';
const VIP6 = 'fd00:1::1';
const DIP4 = '198.18.0.2';
const DIP6 = 'fd00::2';
/** This real server's own addresses: the outer destinations it accepts. */
const RIP4 = '198.19.1.11';
const RIP6 = 'fd00:5::11';

const VERDICTS = Object.fromEntries(Object.entries(XDP).map(([k, v]) => [v, k])) as Record<number, Verdict>;

class RealServerProgram {
  readonly maps: DecapMaps;
  #loaded: LoadedObject;
  static #count = 0;

  constructor() {
    const pinDir = `/sys/fs/bpf/xdpvs_test_decap_${process.pid}_${RealServerProgram.#count++}`;
    removePins(pinDir);
    this.#loaded = loadObject({ objectPath: ensureBpfObject('xdpvs_decap'), pinDir, programName: 'xdpvs_decap' });
    this.maps = new DecapMaps(this.#loaded.backend);
  }

  close(): void {
    this.#loaded.close();
    removePins(this.#loaded.pinDir);
  }

  run(packet: Buffer): { verdict: Verdict; out: Buffer; reasons: Partial<Record<DecapReason, number>> } {
    const before = this.maps.reasonCounts();
    const r = testRun(this.#loaded.programFd, packet);
    const after = this.maps.reasonCounts();
    const reasons: Partial<Record<DecapReason, number>> = {};
    for (const n of DECAP_REASONS) if (after[n] !== before[n]) reasons[n] = after[n] - before[n];
    return { verdict: VERDICTS[r.retval] ?? (`retval ${r.retval}` as Verdict), out: Buffer.from(r.dataOut), reasons };
  }
}

// ---- packets -----------------------------------------------------------------------------------------------------

/** The client's packet to a VIP (the inner packet). */
function inner(src: string, dst: string, proto: 'tcp' | 'udp' = 'tcp', tos = 0): Buffer {
  const v6 = ipBytes(src).length === 16;
  const l4 = proto === 'tcp' ? tcp(src, dst, { sport: 40000, dport: 80, flags: TCP_FLAGS.SYN }) : udp(src, dst, { sport: 40001, dport: 53, payload: Buffer.from('q') });
  const p = v6
    ? ipv6({ src, dst, nextHeader: proto === 'tcp' ? IPPROTO_TCP : IPPROTO_UDP }, l4)
    : ipv4({ src, dst, proto: proto === 'tcp' ? IPPROTO_TCP : IPPROTO_UDP }, l4);
  setTos(p, tos);
  return p;
}

/** Sets an IPv4 TOS (fixing the header checksum) or an IPv6 traffic class. */
function setTos(p: Buffer, tos: number): void {
  if (p[0] >> 4 === 6) {
    p.writeUInt32BE(((p.readUInt32BE(0) & 0xf00fffff) | (tos << 20)) >>> 0, 0);
    return;
  }
  p[1] = tos;
  p.writeUInt16BE(0, 10);
  p.writeUInt16BE(inetChecksum(p.subarray(0, (p[0] & 0x0f) * 4)), 10);
}

interface OuterOpts {
  src?: string;
  dst?: string;
  tos?: number;
  /** IPv4 fragment bits (MF | offset). */
  frag?: number;
  /** Overrides the outer protocol / next header. */
  proto?: number;
  vlan?: number;
  /** Bytes after the inner packet inside the outer payload. */
  trailer?: Buffer;
}

/** `pkt` inside an outer header from the director to this real server, as a frame from the gateway. */
function tunnelled(pkt: Buffer, o: OuterOpts = {}): Buffer {
  const v6Outer = ipBytes(o.dst ?? RIP4).length === 16;
  const proto = o.proto ?? (pkt[0] >> 4 === 6 ? 41 : 4);
  const payload = Buffer.concat([pkt, o.trailer ?? Buffer.alloc(0)]);
  let outer: Buffer;
  if (v6Outer) {
    outer = ipv6({ src: o.src ?? DIP6, dst: o.dst!, nextHeader: proto }, payload);
  } else {
    outer = ipv4({ src: o.src ?? DIP4, dst: o.dst ?? RIP4, proto, fragOffset: (o.frag ?? 0) & 0x1fff, moreFragments: ((o.frag ?? 0) & 0x2000) !== 0 }, payload);
  }
  if (o.tos !== undefined) setTos(outer, o.tos);
  return ethernet({ dst: RS_MAC, src: GW_MAC, vlan: o.vlan, type: v6Outer ? ETH_P_IPV6 : ETH_P_IP }, outer);
}

/** What the kernel must receive after decapsulation: the inner packet behind the same MACs (and tag). */
function stripped(pkt: Buffer, vlan?: number): Buffer {
  return ethernet({ dst: RS_MAC, src: GW_MAC, vlan, type: pkt[0] >> 4 === 6 ? ETH_P_IPV6 : ETH_P_IP }, pkt);
}

interface Fixture {
  name: string;
  input: Buffer;
  verdict: Verdict;
  reason: DecapReason;
  /** The input, untouched, when left out. */
  output?: Buffer;
}

const in4 = inner(CLIENT4, VIP4);
const in6 = inner(CLIENT6, VIP6, 'udp');
const in4ToOther = inner(CLIENT4, '198.18.1.99');
const ect0 = inner(CLIENT4, VIP4, 'tcp', 0x02);
const ect0Ce = inner(CLIENT4, VIP4, 'tcp', 0x03);
const ect1v6 = inner(CLIENT6, VIP6, 'tcp', 0x01);
const ceV6 = inner(CLIENT6, VIP6, 'tcp', 0x03);

const FIXTURES: Fixture[] = [
  { name: 'IPv4 in IPv4 to this host for a VIP: stripped', input: tunnelled(in4), verdict: 'PASS', reason: 'decap', output: stripped(in4) },
  { name: 'IPv6 in IPv6: stripped', input: tunnelled(in6, { dst: RIP6 }), verdict: 'PASS', reason: 'decap', output: stripped(in6) },
  { name: 'IPv6 in IPv4 (protocol 41): stripped', input: tunnelled(in6), verdict: 'PASS', reason: 'decap', output: stripped(in6) },
  { name: 'IPv4 in IPv6 (next header 4): stripped', input: tunnelled(in4, { dst: RIP6 }), verdict: 'PASS', reason: 'decap', output: stripped(in4) },
  { name: 'with an 802.1Q tag: stripped, tag kept', input: tunnelled(in4, { vlan: 300 }), verdict: 'PASS', reason: 'decap', output: stripped(in4, 300) },
  { name: 'IPv6 in IPv6 with a tag', input: tunnelled(in6, { dst: RIP6, vlan: 9 }), verdict: 'PASS', reason: 'decap', output: stripped(in6, 9) },
  { name: 'outer ECT(0) or not-ECT: the inner ECN field stays', input: tunnelled(ect0, { tos: 0x02 }), verdict: 'PASS', reason: 'decap', output: stripped(ect0) },
  { name: 'outer CE on an ECT(0) IPv4 packet: CE inside, checksum fixed', input: tunnelled(ect0, { tos: 0x03 }), verdict: 'PASS', reason: 'decap', output: stripped(ect0Ce) },
  { name: 'outer CE on an ECT(1) IPv6 packet: CE inside', input: tunnelled(ect1v6, { dst: RIP6, tos: 0x03 }), verdict: 'PASS', reason: 'decap', output: stripped(ceV6) },
  { name: 'outer CE on a not-ECT packet: dropped (RFC 6040)', input: tunnelled(in4, { tos: 0x03 }), verdict: 'DROP', reason: 'drop_ecn' },

  { name: 'inner destination is not a configured VIP: untouched', input: tunnelled(in4ToOther), verdict: 'PASS', reason: 'pass_not_vip' },
  { name: 'outer destination is not an address of this host: untouched', input: tunnelled(in4, { dst: '198.19.1.12' }), verdict: 'PASS', reason: 'pass_not_local' },
  { name: 'IPv6 outer destination not ours: untouched', input: tunnelled(in6, { dst: 'fd00:5::12' }), verdict: 'PASS', reason: 'pass_not_local' },
  { name: 'a VIP as the outer destination is not a local address here: untouched', input: tunnelled(in4, { dst: VIP4 }), verdict: 'PASS', reason: 'pass_not_local' },
  { name: 'plain TCP to the VIP (direct routing): untouched', input: stripped(in4), verdict: 'PASS', reason: 'pass_not_tunnel' },
  { name: 'plain IPv6 UDP: untouched', input: stripped(in6), verdict: 'PASS', reason: 'pass_not_tunnel' },
  { name: 'GRE (protocol 47) to this host: untouched', input: tunnelled(in4, { proto: 47 }), verdict: 'PASS', reason: 'pass_not_tunnel' },
  {
    name: 'ARP: untouched',
    input: ethernet({ dst: 'ff:ff:ff:ff:ff:ff', src: GW_MAC, type: 0x0806 }, Buffer.alloc(28)),
    verdict: 'PASS',
    reason: 'pass_not_tunnel',
  },
  { name: 'outer first fragment (MF): untouched', input: tunnelled(in4, { frag: 0x2000 }), verdict: 'PASS', reason: 'pass_fragment' },
  { name: 'outer later fragment: untouched', input: tunnelled(in4, { frag: 5 }), verdict: 'PASS', reason: 'pass_fragment' },
  { name: 'inner packet shorter than the outer payload: untouched', input: tunnelled(in4, { trailer: Buffer.alloc(4) }), verdict: 'PASS', reason: 'pass_malformed' },
  { name: 'inner IPv6 shorter than the outer payload: untouched', input: tunnelled(in6, { dst: RIP6, trailer: Buffer.alloc(2) }), verdict: 'PASS', reason: 'pass_malformed' },
  { name: 'inner header cut short: untouched', input: tunnelled(in4.subarray(0, 12)), verdict: 'PASS', reason: 'pass_malformed' },
  { name: 'outer header cut short: untouched', input: tunnelled(in4).subarray(0, 14 + 16), verdict: 'PASS', reason: 'pass_malformed' },
];

let fixturesRun = 0;

describe.skipIf(!mustRun)('xdpvs_decap on crafted packets (BPF_PROG_TEST_RUN)', () => {
  let rs: RealServerProgram;

  beforeAll(() => {
    if (!isRoot) throw new Error('datapath tests need root (BPF_PROG_TEST_RUN); CI is set, so this fails instead of skipping');
  });
  beforeEach(() => {
    rs = new RealServerProgram();
    rs.maps.setVips([VIP4, VIP6].map((a) => parseAddress(a)));
    rs.maps.setLocal([RIP4, RIP6, '127.0.0.1', '::1'].map((a) => parseAddress(a)));
  });
  afterEach(() => {
    rs?.close();
  });

  describe('fixtures', () => {
    it.each(FIXTURES.map((f) => [f.name, f] as const))('%s', (_name, f) => {
      const got = rs.run(f.input);
      const expected = f.output ?? f.input;
      const problems: string[] = [];
      if (got.verdict !== f.verdict) problems.push(`verdict ${got.verdict}, expected ${f.verdict}`);
      if (!got.out.equals(expected)) problems.push('output packet differs');
      if (JSON.stringify(got.reasons) !== JSON.stringify({ [f.reason]: 1 })) problems.push(`reasons moved ${JSON.stringify(got.reasons)}, expected ${f.reason}`);
      if (problems.length) {
        throw new Error(`${f.name}: ${problems.join('; ')}\ninput:\n${hexdump(f.input)}\nexpected:\n${hexdump(expected)}\nactual:\n${hexdump(got.out)}`);
      }
      fixturesRun++;
    });
  });

  it('configured VIPs and local addresses are exactly what was set last', () => {
    rs.maps.setVips([parseAddress(VIP6)]);
    expect(rs.maps.listVips().map((a) => a.text)).toEqual([VIP6]);
    const got = rs.run(tunnelled(in4));
    expect(got.reasons).toEqual({ pass_not_vip: 1 });
    expect(got.out.equals(tunnelled(in4))).toBe(true);
    rs.maps.setLocal([parseAddress(RIP6)]);
    expect(rs.run(tunnelled(in6, { dst: RIP6 })).reasons).toEqual({ decap: 1 });
    expect(rs.run(tunnelled(in6)).reasons).toEqual({ pass_not_local: 1 });
  });

  it("decapsulating the director's tunnel output gives back the client's packet", () => {
    const d = Director.load(DIRECTOR_MAC);
    try {
      d.addService({ id: 0, vip: VIP4, port: 80, proto: 'tcp', servers: [{ id: 1, addr: RIP4, mac: RS_MAC, method: FWD.tun, tunSrc: DIP4, mtu: 1500 }] });
      d.addService({ id: 1, vip: VIP6, port: 53, proto: 'udp', servers: [{ id: 2, addr: RIP6, mac: RS_MAC, method: FWD.tun, tunSrc: DIP6, mtu: 1500 }] });
      for (const pkt of [in4, in6]) {
        const fromClient = ethernet({ dst: DIRECTOR_MAC, src: CLIENT_MAC, type: pkt[0] >> 4 === 6 ? ETH_P_IPV6 : ETH_P_IP }, pkt);
        const onWire = d.run(fromClient);
        expect(onWire.verdict).toBe('TX');
        const got = rs.run(onWire.out);
        expect(got.reasons).toEqual({ decap: 1 });
        const want = ethernet({ dst: RS_MAC, src: DIRECTOR_MAC, type: pkt[0] >> 4 === 6 ? ETH_P_IPV6 : ETH_P_IP }, pkt);
        expect(hexdump(got.out)).toBe(hexdump(want));
      }
    } finally {
      d.close();
    }
  });

  it('ran every fixture', () => {
    expect(fixturesRun).toBe(FIXTURES.length);
  });
});

afterAll(() => {
  if (mustRun && fixturesRun === 0) throw new Error('no decap datapath fixture ran');
});
