// Tunnelling (-i) in the director's XDP program on crafted packets (BPF_PROG_TEST_RUN, one run each: a second run
// would see the program's own output): the exact outer header of IPv4-in-IPv4, IPv6-in-IPv6 and the cross-family
// tunnels, with every expected byte and checksum computed here from scratch; the ICMP answers to packets too big
// for the tunnel; tunnel and direct routing side by side in one service, and a method change under a live flow.

import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';

import type { Reason } from '../../src/maps/reasons.js';
import { Director, FWD, expectRun, isRoot, mustRun, withMacs, type RealServer, type ServiceSetup, type Verdict } from '../../src/testing/harness.js';
import {
  ETH_P_IP,
  ETH_P_IPV6,
  IPPROTO_ICMPV6,
  IPPROTO_TCP,
  IPPROTO_UDP,
  TCP_FLAGS,
  ethernet,
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
      ? 'test/datapath (tunnel): not root, and CI is set: failing instead of skipping'
      : 'test/datapath (tunnel): skipped: BPF_PROG_TEST_RUN needs root',
  );
}

const DIRECTOR_MAC = '02:00:00:00:d1:00';
const CLIENT_MAC = '02:00:00:00:c1:00';
/** The router towards the real servers: a tunnelled real server may be several hops away. */
const GW_MAC = '02:00:00:00:9e:01';
const RS_MAC = '02:00:00:00:a0:01';

const CLIENT4 = '198.18.0.10';
const VIP4 = '198.18.1.1';
const DIP4 = '198.18.0.2';
const RIP4 = '198.19.1.11';
const CLIENT6 = 'fd00:2::10';
const VIP6 = 'fd00:1::1';
const DIP6 = 'fd00::2';
const RIP6 = 'fd00:5::11';
const MTU = 1500;

const SYN = TCP_FLAGS.SYN;
const ACK = TCP_FLAGS.ACK;

function tun(id: number, addr: string, extra: Partial<RealServer> = {}): RealServer {
  return { id, addr, mac: GW_MAC, method: FWD.tun, tunSrc: ipBytes(addr).length === 4 ? DIP4 : DIP6, mtu: MTU, ...extra };
}

const WORLD: ServiceSetup[] = [
  { id: 0, vip: VIP4, port: 80, proto: 'tcp', servers: [tun(1, RIP4)] },
  { id: 1, vip: VIP4, port: 53, proto: 'udp', servers: [tun(2, RIP4)] },
  { id: 2, vip: VIP6, port: 80, proto: 'tcp', servers: [tun(3, RIP6)] },
  { id: 3, vip: VIP6, port: 53, proto: 'udp', servers: [tun(4, RIP6)] },
  // Egress on another interface: XDP_REDIRECT.
  { id: 4, vip: VIP4, port: 8080, proto: 'tcp', servers: [tun(5, RIP4, { ifindex: 7 })] },
  // Next hop (the gateway) not resolved yet.
  { id: 5, vip: VIP4, port: 8081, proto: 'tcp', servers: [tun(6, RIP4, { macValid: false })] },
  // A small egress MTU: IPv6 answers never report less than 1280, IPv4 ones never less than 68.
  { id: 6, vip: VIP6, port: 8082, proto: 'udp', servers: [tun(7, RIP6, { mtu: 1100 })] },
  { id: 7, vip: VIP4, port: 8082, proto: 'udp', servers: [tun(8, RIP4, { mtu: 60 })] },
  // MTU unknown (0): not checked.
  { id: 8, vip: VIP4, port: 8083, proto: 'udp', servers: [tun(9, RIP4, { mtu: 0 })] },
  // Across families, as IPVS allows for tunnels: IPv4 in IPv6 and IPv6 in IPv4.
  { id: 9, vip: VIP4, port: 8443, proto: 'tcp', servers: [tun(10, RIP6)] },
  { id: 10, vip: VIP6, port: 8443, proto: 'tcp', servers: [tun(11, RIP4)] },
];

// ---- packets -----------------------------------------------------------------------------------------------------

interface FlowOpts {
  src: string;
  dst: string;
  proto: 'tcp' | 'udp';
  sport: number;
  dport: number;
  flags?: number;
  payload?: Buffer;
  /** IPv4: DF. */
  df?: boolean;
  /** IPv4 TOS / IPv6 traffic class. */
  tos?: number;
  /** TTL / hop limit. */
  ttl?: number;
  /** IPv4 identification. */
  id?: number;
  /** IPv6 flow label. */
  flow?: number;
  ipOptions?: Buffer;
}

/** The client's IP packet (header and payload), every checksum correct. */
function ipPacket(o: FlowOpts): Buffer {
  const v6 = ipBytes(o.src).length === 16;
  const l4 =
    o.proto === 'tcp'
      ? tcp(o.src, o.dst, { sport: o.sport, dport: o.dport, flags: o.flags ?? SYN, payload: o.payload })
      : udp(o.src, o.dst, { sport: o.sport, dport: o.dport, payload: o.payload });
  const proto = o.proto === 'tcp' ? IPPROTO_TCP : IPPROTO_UDP;
  if (v6) {
    const p = ipv6({ src: o.src, dst: o.dst, nextHeader: proto, hopLimit: o.ttl }, l4);
    p.writeUInt32BE(((6 << 28) | ((o.tos ?? 0) << 20) | (o.flow ?? 0)) >>> 0, 0);
    return p;
  }
  const p = ipv4({ src: o.src, dst: o.dst, proto, ttl: o.ttl, id: o.id, dontFragment: o.df, options: o.ipOptions }, l4);
  if (o.tos) {
    p[1] = o.tos;
    p.writeUInt16BE(0, 10);
    p.writeUInt16BE(inetChecksum(p.subarray(0, (p[0] & 0x0f) * 4)), 10);
  }
  return p;
}

function frame(l3: Buffer, dst: string, src: string, vlan?: number): Buffer {
  return ethernet({ dst, src, vlan, type: l3[0] >> 4 === 6 ? ETH_P_IPV6 : ETH_P_IP }, l3);
}

function fromClient(o: FlowOpts, vlan?: number): Buffer {
  return frame(ipPacket(o), DIRECTOR_MAC, CLIENT_MAC, vlan);
}

/** A payload that makes the client's IP packet exactly `ipLen` bytes long. */
function sized(o: FlowOpts, ipLen: number): FlowOpts {
  const header = ipPacket({ ...o, payload: Buffer.alloc(0) }).length;
  return { ...o, payload: Buffer.alloc(ipLen - header, 0x5a) };
}

/** RFC 6040 (normal mode): the outer ECN field copies the inner one, CE becoming ECT(0). */
function ecnEncap(tos: number): number {
  return (tos & 3) === 3 ? (tos & ~3) | 2 : tos;
}

/** What the director must send: the inner packet unchanged behind an outer header built here field by field. */
function tunnelled(inner: Buffer, outerSrc: string, outerDst: string, vlan?: number, nextHop = GW_MAC): Buffer {
  const inner6 = inner[0] >> 4 === 6;
  const innerTos = inner6 ? (inner.readUInt32BE(0) >>> 20) & 0xff : inner[1];
  const innerTtl = inner6 ? inner[7] : inner[8];
  const innerProto = inner6 ? 41 : 4;
  let outer: Buffer;
  if (ipBytes(outerDst).length === 4) {
    outer = Buffer.alloc(20);
    outer[0] = 0x45;
    outer[1] = ecnEncap(innerTos);
    outer.writeUInt16BE(20 + inner.length, 2);
    outer.writeUInt16BE(inner6 ? 0 : inner.readUInt16BE(4), 4);
    // DF copied from an IPv4 inner packet; an IPv6 one is never fragmented on the way.
    outer.writeUInt16BE(inner6 || inner.readUInt16BE(6) & 0x4000 ? 0x4000 : 0, 6);
    outer[8] = innerTtl;
    outer[9] = innerProto;
    ipBytes(outerSrc).copy(outer, 12);
    ipBytes(outerDst).copy(outer, 16);
    outer.writeUInt16BE(inetChecksum(outer), 10);
  } else {
    outer = Buffer.alloc(40);
    const flow = inner6 ? inner.readUInt32BE(0) & 0xfffff : 0;
    outer.writeUInt32BE(((6 << 28) | (ecnEncap(innerTos) << 20) | flow) >>> 0, 0);
    outer.writeUInt16BE(inner.length, 4);
    outer[6] = innerProto;
    outer[7] = innerTtl;
    ipBytes(outerSrc).copy(outer, 8);
    ipBytes(outerDst).copy(outer, 24);
  }
  return frame(Buffer.concat([outer, inner]), nextHop, DIRECTOR_MAC, vlan);
}

/** The L2 header of the answer to `input`: MACs swapped, tag kept. */
function answerL2(input: Buffer, l2: number): Buffer {
  return Buffer.concat([input.subarray(6, 12), input.subarray(0, 6), input.subarray(12, l2)]);
}

/** ICMP fragmentation needed (type 3 code 4) from the VIP to the client, quoting the header and 8 bytes. */
function fragNeeded(input: Buffer, mtu: number, l2 = 14): Buffer {
  const orig = input.subarray(l2);
  const quote = orig.subarray(0, (orig[0] & 0x0f) * 4 + 8);
  const msg = Buffer.concat([Buffer.from([3, 4, 0, 0, 0, 0, mtu >> 8, mtu & 0xff]), quote]);
  msg.writeUInt16BE(inetChecksum(msg), 2);
  const ip = Buffer.alloc(20);
  ip[0] = 0x45;
  ip[1] = 0xc0;
  ip.writeUInt16BE(20 + msg.length, 2);
  ip[8] = 64;
  ip[9] = 1;
  orig.copy(ip, 12, 16, 20); // from the VIP
  orig.copy(ip, 16, 12, 16); // to the client
  ip.writeUInt16BE(inetChecksum(ip), 10);
  return Buffer.concat([answerL2(input, l2), ip, msg]);
}

/** ICMPv6 packet too big (type 2) from the VIP to the client, quoting up to 1232 bytes (the answer fits 1280). */
function packetTooBig(input: Buffer, mtu: number, l2 = 14): Buffer {
  const orig = input.subarray(l2);
  const quote = orig.subarray(0, Math.min(orig.length, 1232));
  const head = Buffer.alloc(8);
  head[0] = 2;
  head.writeUInt32BE(mtu, 4);
  const msg = Buffer.concat([head, quote]);
  const vip = orig.subarray(24, 40);
  const client = orig.subarray(8, 24);
  const pseudo = Buffer.alloc(8);
  pseudo.writeUInt32BE(msg.length, 0);
  pseudo[7] = IPPROTO_ICMPV6;
  msg.writeUInt16BE(inetChecksum(vip, client, pseudo, msg), 2);
  const ip = Buffer.alloc(40);
  ip.writeUInt32BE(0x60000000, 0);
  ip.writeUInt16BE(msg.length, 4);
  ip[6] = IPPROTO_ICMPV6;
  ip[7] = 64;
  vip.copy(ip, 8);
  client.copy(ip, 24);
  return Buffer.concat([answerL2(input, l2), ip, msg]);
}

// ---- fixtures ----------------------------------------------------------------------------------------------------

interface Fixture {
  name: string;
  /** Packets run first (a SYN before the data of its connection). */
  setup?: Buffer[];
  input: Buffer;
  verdict: Verdict;
  reason: Reason;
  /** Expected output; the input itself when left out. */
  output?: Buffer;
}

const tcp4: FlowOpts = { src: CLIENT4, dst: VIP4, proto: 'tcp', sport: 40000, dport: 80 };
const udp4: FlowOpts = { src: CLIENT4, dst: VIP4, proto: 'udp', sport: 40001, dport: 53, payload: Buffer.from('query') };
const tcp6: FlowOpts = { src: CLIENT6, dst: VIP6, proto: 'tcp', sport: 40002, dport: 80 };
const udp6: FlowOpts = { src: CLIENT6, dst: VIP6, proto: 'udp', sport: 40003, dport: 53, payload: Buffer.from('query6') };

function encap(name: string, o: FlowOpts, outerSrc: string, outerDst: string, vlan?: number): Fixture {
  return { name, input: fromClient(o, vlan), verdict: 'TX', reason: 'fwd_tx', output: tunnelled(ipPacket(o), outerSrc, outerDst, vlan) };
}

const FIXTURES: Fixture[] = [
  encap('IPv4 TCP SYN: IPv4 in IPv4', tcp4, DIP4, RIP4),
  encap('IPv4 UDP: IPv4 in IPv4', udp4, DIP4, RIP4),
  encap('IPv6 TCP SYN: IPv6 in IPv6', tcp6, DIP6, RIP6),
  encap('IPv6 UDP: IPv6 in IPv6', udp6, DIP6, RIP6),
  encap('IPv4 with DF: DF copied to the outer header', { ...tcp4, sport: 40010, df: true, id: 0x1234 }, DIP4, RIP4),
  encap('IPv4 without DF: outer without DF, inner ID kept', { ...udp4, sport: 40011, id: 0xbeef }, DIP4, RIP4),
  encap('IPv4 TTL and DSCP copied', { ...tcp4, sport: 40012, ttl: 17, tos: 0xb8 }, DIP4, RIP4),
  encap('IPv4 ECN CE becomes ECT(0) outside', { ...tcp4, sport: 40013, tos: 0x03 }, DIP4, RIP4),
  encap('IPv4 ECN ECT(1) copied', { ...udp4, sport: 40014, tos: 0x01 }, DIP4, RIP4),
  encap('IPv6 hop limit, traffic class and flow label copied', { ...tcp6, sport: 40015, ttl: 9, tos: 0x2e, flow: 0xabcde }, DIP6, RIP6),
  encap('IPv6 ECN CE becomes ECT(0) outside', { ...udp6, sport: 40016, tos: 0x0b }, DIP6, RIP6),
  encap('IPv4 with options (IHL 6): inner untouched', { ...tcp4, sport: 40017, ipOptions: Buffer.from([0x94, 0x04, 0x00, 0x00]) }, DIP4, RIP4),
  encap('IPv4 with an 802.1Q tag: tag kept outside', { ...tcp4, sport: 40018 }, DIP4, RIP4, 100),
  encap('IPv6 with an 802.1Q tag', { ...udp6, sport: 40019 }, DIP6, RIP6, 4094),
  encap('IPv4 in IPv6 (next header 4)', { ...tcp4, sport: 40020, dport: 8443, df: true }, DIP6, RIP6),
  encap('IPv6 in IPv4 (protocol 41, DF set)', { ...tcp6, sport: 40021, dport: 8443 }, DIP4, RIP4),
  encap('IPv4 exactly at the MTU once encapsulated (1480 + 20)', sized({ ...udp4, sport: 40022, df: true }, MTU - 20), DIP4, RIP4),
  encap('IPv6 exactly at the MTU once encapsulated (1460 + 40)', sized({ ...udp6, sport: 40023 }, MTU - 40), DIP6, RIP6),
  encap('MTU 0 (unknown): not checked', sized({ ...udp4, sport: 40024, dport: 8083, df: true }, 1600), DIP4, RIP4),
  {
    name: 'real server behind another interface: XDP_REDIRECT',
    input: fromClient({ ...tcp4, dport: 8080 }),
    verdict: 'REDIRECT',
    reason: 'fwd_redirect',
    output: tunnelled(ipPacket({ ...tcp4, dport: 8080 }), DIP4, RIP4),
  },
  { name: 'gateway MAC not resolved yet', input: fromClient({ ...tcp4, dport: 8081 }), verdict: 'DROP', reason: 'drop_dest_no_mac' },

  ...(() => {
    const big4 = fromClient(sized({ ...udp4, sport: 40030, df: true }, MTU - 19));
    const big4Tcp = fromClient(sized({ ...tcp4, sport: 40031, df: true, flags: ACK | TCP_FLAGS.PSH }, MTU));
    const big4Opts = fromClient(sized({ ...udp4, sport: 40032, df: true, ipOptions: Buffer.from([0x94, 0x04, 0, 0]) }, MTU));
    const big4Vlan = fromClient(sized({ ...udp4, sport: 40033, df: true }, MTU), 42);
    const big6 = fromClient(sized({ ...udp6, sport: 40034 }, MTU - 39));
    const big6Vlan = fromClient(sized({ ...tcp6, sport: 40035 }, MTU), 7);
    const small6 = fromClient(sized({ ...udp6, sport: 40036, dport: 8082 }, 1300));
    const tiny4 = fromClient(sized({ ...udp4, sport: 40037, dport: 8082, df: true }, 100));
    return [
      { name: 'IPv4 DF one byte too big: ICMP frag-needed, MTU 1480', input: big4, verdict: 'TX', reason: 'tx_icmp_too_big', output: fragNeeded(big4, MTU - 20) },
      {
        name: 'IPv4 TCP data too big on an established flow: frag-needed quoting its ports and sequence number',
        setup: [fromClient({ ...tcp4, sport: 40031 })],
        input: big4Tcp,
        verdict: 'TX',
        reason: 'tx_icmp_too_big',
        output: fragNeeded(big4Tcp, MTU - 20),
      },
      { name: 'IPv4 with options too big: the quote holds the options', input: big4Opts, verdict: 'TX', reason: 'tx_icmp_too_big', output: fragNeeded(big4Opts, MTU - 20) },
      { name: 'IPv4 too big with an 802.1Q tag: answered on the same VLAN', input: big4Vlan, verdict: 'TX', reason: 'tx_icmp_too_big', output: fragNeeded(big4Vlan, MTU - 20, 18) },
      {
        name: 'IPv4 without DF too big: dropped (XDP cannot fragment)',
        input: fromClient(sized({ ...udp4, sport: 40038 }, MTU)),
        verdict: 'DROP',
        reason: 'drop_tun_too_big',
      },
      { name: 'IPv4 on a 60-byte MTU: reports 68, the IPv4 minimum', input: tiny4, verdict: 'TX', reason: 'tx_icmp_too_big', output: fragNeeded(tiny4, 68) },
      {
        name: 'IPv4 too big from a multicast source: no ICMP error about it (RFC 1122)',
        input: fromClient(sized({ ...udp4, src: '224.1.2.3', sport: 40039, df: true }, MTU)),
        verdict: 'DROP',
        reason: 'drop_tun_too_big',
      },
      { name: 'IPv6 one byte too big: packet too big, MTU 1460, 1232 bytes quoted', input: big6, verdict: 'TX', reason: 'tx_icmp_too_big', output: packetTooBig(big6, MTU - 40) },
      { name: 'IPv6 too big with an 802.1Q tag', input: big6Vlan, verdict: 'TX', reason: 'tx_icmp_too_big', output: packetTooBig(big6Vlan, MTU - 40, 18) },
      { name: 'IPv6 on a 1100-byte MTU: reports 1280, the IPv6 minimum', input: small6, verdict: 'TX', reason: 'tx_icmp_too_big', output: packetTooBig(small6, 1280) },
      {
        // Only on a link below IPv6's minimum MTU: an answer would quote less than 1232 bytes; none is sent.
        name: 'IPv6 shorter than the 1232-byte quote yet too big (MTU 1100): dropped',
        input: fromClient(sized({ ...udp6, sport: 40040, dport: 8082 }, 1101)),
        verdict: 'DROP',
        reason: 'drop_tun_too_big',
      },
    ] satisfies Fixture[];
  })(),
];

let fixturesRun = 0;

describe.skipIf(!mustRun)('xdpvs_lb tunnelling (BPF_PROG_TEST_RUN)', () => {
  let d: Director;

  beforeAll(() => {
    if (!isRoot) throw new Error('datapath tests need root (BPF_PROG_TEST_RUN); CI is set, so this fails instead of skipping');
  });
  beforeEach(() => {
    d = Director.load(DIRECTOR_MAC);
  });
  afterEach(() => {
    d?.close();
  });

  describe('fixtures', () => {
    it.each(FIXTURES.map((f) => [f.name, f] as const))('%s', (_name, f) => {
      for (const s of WORLD) d.addService(s);
      for (const p of f.setup ?? []) expect(d.run(p).verdict, 'setup packet').not.toBe('PASS');
      const got = d.run(f.input);
      expectRun(f.name, f.input, got, f.verdict, f.output ?? f.input, f.reason);
      fixturesRun++;
    });
  });

  it('writes a correct outer IPv4 checksum whatever the addresses (checked by summing the header to zero)', () => {
    for (const s of WORLD) d.addService(s);
    for (let i = 0; i < 32; i++) {
      const o = { ...udp4, sport: 41000 + i, id: (i * 7919) & 0xffff, ttl: 1 + i * 7, df: i % 2 === 0, tos: i * 8 };
      const got = d.run(fromClient(o));
      expect(got.verdict).toBe('TX');
      expect(inetChecksum(got.out.subarray(14, 34)), `flow ${i}`).toBe(0);
      expect(got.out.subarray(34).equals(ipPacket(o)), `inner packet of flow ${i} unchanged`).toBe(true);
    }
  });

  it('counts the client packet (inner IP length), never outbound; an ICMP answer is not a forwarded packet', () => {
    d.addService(WORLD[1]);
    const small = ipPacket({ ...udp4, sport: 42000 });
    const big = ipPacket(sized({ ...udp4, sport: 42000, df: true }, MTU));
    expect(d.run(frame(small, DIRECTOR_MAC, CLIENT_MAC)).verdict).toBe('TX');
    expect(d.run(frame(big, DIRECTOR_MAC, CLIENT_MAC)).verdict).toBe('TX');
    expect(d.maps.serviceStats(1)).toMatchObject({ conns: 1, inpkts: 1, inbytes: small.length, outpkts: 0, outbytes: 0 });
    expect(d.maps.destStatsOf(2)).toMatchObject({ conns: 1, inpkts: 1, inbytes: small.length, outpkts: 0, outbytes: 0 });
    expect(d.reasonCounts()).toMatchObject({ fwd_tx: 1, tx_icmp_too_big: 1 });
  });

  it('one service with a direct-routing and a tunnelled real server: rr alternates between the two paths', () => {
    const dr: RealServer = { id: 1, addr: '198.18.0.11', mac: RS_MAC, method: FWD.dr };
    d.addService({ id: 0, vip: VIP4, port: 80, proto: 'tcp', servers: [dr, tun(2, RIP4)] });
    for (let i = 0; i < 6; i++) {
      const o = { ...tcp4, sport: 43000 + i };
      const want = i % 2 === 0 ? withMacs(fromClient(o), RS_MAC, DIRECTOR_MAC) : tunnelled(ipPacket(o), DIP4, RIP4);
      expectRun(`connection ${i + 1}`, fromClient(o), d.run(fromClient(o)), 'TX', want, 'fwd_tx');
    }
    expect(d.maps.destStatsOf(1).conns).toBe(3);
    expect(d.maps.destStatsOf(2).conns).toBe(3);
  });

  it('a method change (a new destination for the same real server) leaves established flows on their old path', () => {
    // What the balancer does on `-e ... -i`: a new destination record with the new method, the schedule table
    // switched to it; the old record stays for the connections that name it.
    const asDr: RealServer = { id: 1, addr: '198.18.0.11', mac: RS_MAC, method: FWD.dr };
    const asTun: RealServer = { id: 2, addr: '198.18.0.11', mac: RS_MAC, method: FWD.tun, tunSrc: DIP4, mtu: MTU, gen: 2 };
    const svc: ServiceSetup = { id: 0, vip: VIP4, port: 80, proto: 'tcp', servers: [asDr] };
    d.addService(svc);
    const old = { ...tcp4, sport: 44000 };
    expect(d.run(fromClient(old)).verdict).toBe('TX');

    d.putServer(0, asTun);
    d.setRing(svc, [asTun.id]);
    const data = { ...old, flags: ACK, payload: Buffer.from('GET / HTTP/1.0\r\n\r\n') };
    expectRun('established flow after the change', fromClient(data), d.run(fromClient(data)), 'TX', withMacs(fromClient(data), RS_MAC, DIRECTOR_MAC), 'fwd_tx');
    const fresh = { ...tcp4, sport: 44001 };
    const want = tunnelled(ipPacket(fresh), DIP4, '198.18.0.11', undefined, RS_MAC);
    expectRun('new flow after the change', fromClient(fresh), d.run(fromClient(fresh)), 'TX', want, 'fwd_tx');
  });

  it('ran every fixture', () => {
    expect(fixturesRun).toBe(FIXTURES.length);
  });
});

afterAll(() => {
  if (mustRun && fixturesRun === 0) throw new Error('no tunnel datapath fixture ran');
});
