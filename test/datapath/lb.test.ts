// The director's XDP program on crafted packets (BPF_PROG_TEST_RUN): verdict, exact output bytes and the reason
// counter of each fixture, then the schedulers and the connection table. Needs root; in CI, missing root fails.

import { execFileSync } from 'node:child_process';

import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';

import { hostWords, jhash2 } from '../../src/lb/jhash.js';
import { wrrSequence } from '../../src/lb/wrr.js';
import { Conn, ConnState, FlowKey, SVC_F_HASH_PORT, type ConnV } from '../../src/maps/structs.js';
import { Director, FWD, SCHED, expectRun, isRoot, mustRun, type RealServer, type ServiceSetup, type Verdict } from '../../src/testing/harness.js';
import type { Reason } from '../../src/maps/reasons.js';
import {
  ETH_P_IP,
  ETH_P_IPV6,
  IPPROTO_ICMP,
  IPPROTO_ICMPV6,
  IPPROTO_TCP,
  TCP_FLAGS,
  arpRequest,
  ethernet,
  flowPacket,
  ipBytes,
  ipv4,
  ipv6,
  tcp,
  udp,
  type FlowPacketOpts,
} from '../../src/testing/packets.js';

if (!isRoot) {
  console.warn(
    process.env.CI
      ? 'test/datapath: not root, and CI is set: failing instead of skipping'
      : 'test/datapath: skipped: BPF_PROG_TEST_RUN needs root (run as root to test the XDP program)',
  );
}

const DIRECTOR_MAC = '02:00:00:00:d1:00';
const CLIENT_MAC = '02:00:00:00:c1:00';
const CLIENT4 = '198.18.0.10';
const CLIENT6 = 'fd00:2::10';
const VIP4 = '198.18.1.1';
const VIP6 = 'fd00:1::1';

const MAC_A = '02:00:00:00:a0:01';
const MAC_B = '02:00:00:00:b0:02';

/** A packet from the client to the director. */
function fromClient(o: Omit<FlowPacketOpts, 'ethSrc' | 'ethDst'>): Buffer {
  return flowPacket({ ethSrc: CLIENT_MAC, ethDst: DIRECTOR_MAC, ...o });
}

/** The same packet as DR leaves it for the real server with MAC `mac`: built anew, not copied from the input. */
function toServer(mac: string, o: Omit<FlowPacketOpts, 'ethSrc' | 'ethDst'>): Buffer {
  return flowPacket({ ethSrc: DIRECTOR_MAC, ethDst: mac, ...o });
}

function server(id: number, addr: string, mac: string, extra: Partial<RealServer> = {}): RealServer {
  return { id, addr, mac, ...extra };
}

/** The services every fixture runs against (one real server each, so the expected MAC is known). */
const WORLD: ServiceSetup[] = [
  { id: 0, vip: VIP4, port: 80, proto: 'tcp', servers: [server(1, '198.18.2.1', MAC_A)] },
  { id: 1, vip: VIP4, port: 53, proto: 'udp', servers: [server(2, '198.18.2.1', MAC_A)] },
  { id: 2, vip: VIP6, port: 80, proto: 'tcp', servers: [server(3, 'fd00:3::1', MAC_A)] },
  { id: 3, vip: VIP6, port: 53, proto: 'udp', servers: [server(4, 'fd00:3::1', MAC_A)] },
  // Egress on another interface than the receiving one: XDP_REDIRECT.
  { id: 4, vip: VIP4, port: 8080, proto: 'tcp', servers: [server(5, '198.18.2.5', MAC_B, { ifindex: 7 })] },
  // Next hop not resolved.
  { id: 5, vip: VIP4, port: 8081, proto: 'tcp', servers: [server(6, '198.18.2.6', MAC_B, { macValid: false })] },
  // Every real server removed or at weight 0: empty schedule table.
  { id: 6, vip: VIP4, port: 8082, proto: 'tcp', servers: [], ring: [] },
  // A method value the program does not know (user space and data plane out of step): dropped, never half-done.
  { id: 7, vip: VIP4, port: 8083, proto: 'tcp', servers: [server(8, '198.18.2.8', MAC_B, { method: 3 })] },
  // Schedule table pointing at a slot that holds no destination.
  { id: 8, vip: VIP4, port: 8084, proto: 'tcp', servers: [], ring: [40] },
];

interface Fixture {
  name: string;
  input: Buffer;
  verdict: Verdict;
  reason: Reason;
  /** Expected output; the input itself (untouched) when left out. */
  output?: Buffer;
}

const SYN = TCP_FLAGS.SYN;
const ACK = TCP_FLAGS.ACK;

function dr(name: string, o: Omit<FlowPacketOpts, 'ethSrc' | 'ethDst'>, mac = MAC_A): Fixture {
  return { name, input: fromClient(o), verdict: 'TX', reason: 'fwd_tx', output: toServer(mac, o) };
}

function untouched(name: string, input: Buffer, reason: Reason, verdict: Verdict = 'PASS'): Fixture {
  return { name, input, verdict, reason };
}

const tcp4 = { src: CLIENT4, dst: VIP4, proto: 'tcp', sport: 40000, dport: 80 } as const;
const udp4 = { src: CLIENT4, dst: VIP4, proto: 'udp', sport: 40001, dport: 53, payload: Buffer.from('query') } as const;
const tcp6 = { src: CLIENT6, dst: VIP6, proto: 'tcp', sport: 40002, dport: 80 } as const;
const udp6 = { src: CLIENT6, dst: VIP6, proto: 'udp', sport: 40003, dport: 53, payload: Buffer.from('query6') } as const;

const synFrame = fromClient({ ...tcp4, sport: 41000 });

const FIXTURES: Fixture[] = [
  dr('IPv4 TCP SYN to the VIP', tcp4),
  dr('IPv4 UDP datagram to the VIP', udp4),
  dr('IPv6 TCP SYN to the VIP', tcp6),
  dr('IPv6 UDP datagram to the VIP', udp6),
  dr('IPv4 TCP SYN with an 802.1Q tag (tag kept)', { ...tcp4, sport: 40010, vlan: 100 }),
  dr('IPv4 UDP with an 802.1Q tag', { ...udp4, sport: 40011, vlan: 4094 }),
  dr('IPv6 TCP SYN with an 802.1Q tag', { ...tcp6, sport: 40012, vlan: 7 }),
  dr('IPv6 UDP with an 802.1Q tag', { ...udp6, sport: 40013, vlan: 1 }),
  // Router Alert (4 bytes): IHL 6.
  dr('IPv4 TCP SYN with IP options (IHL 6)', { ...tcp4, sport: 40020, ipOptions: Buffer.from([0x94, 0x04, 0x00, 0x00]) }),
  // Record Route with room for 9 addresses (39 bytes, padded to 40): IHL 15, the maximum.
  dr('IPv4 UDP with IP options (IHL 15)', {
    ...udp4,
    sport: 40021,
    ipOptions: Buffer.concat([Buffer.from([0x07, 39, 4]), Buffer.alloc(36)]),
  }),
  dr('IPv4 TCP SYN with a payload and the VLAN tag and options together', {
    ...tcp4,
    sport: 40022,
    vlan: 42,
    ipOptions: Buffer.from([0x01, 0x01, 0x01, 0x00]),
    payload: Buffer.from('hello'),
  }),
  {
    name: 'real server on another interface: XDP_REDIRECT',
    input: fromClient({ ...tcp4, dport: 8080 }),
    verdict: 'REDIRECT',
    reason: 'fwd_redirect',
    output: toServer(MAC_B, { ...tcp4, dport: 8080 }),
  },

  untouched('IPv4 TCP to an address that is no VIP', fromClient({ ...tcp4, dst: '198.18.1.99' }), 'pass_no_service'),
  untouched('IPv4 TCP to the VIP on another port', fromClient({ ...tcp4, dport: 443 }), 'pass_no_service'),
  untouched('IPv4 UDP to the VIP on the TCP service port', fromClient({ ...udp4, dport: 80 }), 'pass_no_service'),
  untouched('IPv6 TCP to an address that is no VIP', fromClient({ ...tcp6, dst: 'fd00:1::2' }), 'pass_no_service'),
  untouched('IPv6 UDP to the IPv4-mapped form of the VIP', fromClient({ ...udp6, dst: '::ffff:198.18.1.1' }), 'pass_no_service'),
  untouched('ARP who-has for the VIP', arpRequest({ srcMac: CLIENT_MAC, senderIp: CLIENT4, targetIp: VIP4 }), 'pass_not_ip'),
  untouched('ARP with an 802.1Q tag', arpRequest({ srcMac: CLIENT_MAC, senderIp: CLIENT4, targetIp: VIP4, vlan: 5 }), 'pass_not_ip'),
  untouched(
    'ICMP echo to the VIP',
    ethernet(
      { dst: DIRECTOR_MAC, src: CLIENT_MAC, type: ETH_P_IP },
      ipv4({ src: CLIENT4, dst: VIP4, proto: IPPROTO_ICMP }, Buffer.from([8, 0, 0xf7, 0xff, 0, 0, 0, 0])),
    ),
    'pass_not_l4',
  ),
  untouched(
    'ICMPv6 echo to the VIP',
    ethernet({ dst: DIRECTOR_MAC, src: CLIENT_MAC, type: ETH_P_IPV6 }, ipv6({ src: CLIENT6, dst: VIP6, nextHeader: IPPROTO_ICMPV6 }, Buffer.alloc(8))),
    'pass_not_l4',
  ),
  untouched(
    'IPv6 with a hop-by-hop options header',
    ethernet(
      { dst: DIRECTOR_MAC, src: CLIENT_MAC, type: ETH_P_IPV6 },
      ipv6(
        { src: CLIENT6, dst: VIP6, nextHeader: 0 },
        Buffer.concat([Buffer.from([IPPROTO_TCP, 0, 1, 4, 0, 0, 0, 0]), tcp(CLIENT6, VIP6, { sport: 40030, dport: 80, flags: SYN })]),
      ),
    ),
    'pass_ipv6_ext',
  ),
  untouched(
    'IPv4 first fragment (MF set)',
    ethernet(
      { dst: DIRECTOR_MAC, src: CLIENT_MAC, type: ETH_P_IP },
      ipv4({ src: CLIENT4, dst: VIP4, proto: 17, moreFragments: true }, udp(CLIENT4, VIP4, { sport: 40031, dport: 53, payload: Buffer.alloc(16) })),
    ),
    'pass_fragment',
  ),
  untouched(
    'IPv4 later fragment (offset set)',
    ethernet({ dst: DIRECTOR_MAC, src: CLIENT_MAC, type: ETH_P_IP }, ipv4({ src: CLIENT4, dst: VIP4, proto: 17, fragOffset: 3 }, Buffer.alloc(24))),
    'pass_fragment',
  ),
  untouched('Ethernet header only, IPv4 type', synFrame.subarray(0, 14), 'pass_malformed'),
  untouched('802.1Q tag cut short', Buffer.concat([synFrame.subarray(0, 12), Buffer.from([0x81, 0x00])]), 'pass_malformed'),
  untouched('IPv4 header cut short', synFrame.subarray(0, 14 + 12), 'pass_malformed'),
  untouched('IPv4 frame shorter than its total length', synFrame.subarray(0, synFrame.length - 4), 'pass_malformed'),
  untouched(
    'IPv4 total length shorter than the TCP header',
    ethernet(
      { dst: DIRECTOR_MAC, src: CLIENT_MAC, type: ETH_P_IP },
      ipv4({ src: CLIENT4, dst: VIP4, proto: IPPROTO_TCP, totalLength: 30 }, tcp(CLIENT4, VIP4, { sport: 40032, dport: 80, flags: SYN })),
    ),
    'pass_malformed',
  ),
  untouched(
    'IPv4 IHL claims options that are not there',
    (() => {
      const f = Buffer.from(synFrame.subarray(0, 14 + 20 + 4));
      f[14] = 0x4f;
      return f;
    })(),
    'pass_malformed',
  ),
  untouched(
    'IPv4 header with version 6',
    (() => {
      const f = Buffer.from(synFrame);
      f[14] = 0x65;
      return f;
    })(),
    'pass_malformed',
  ),
  untouched(
    'TCP data offset below 5',
    (() => {
      const f = Buffer.from(synFrame);
      f[14 + 20 + 12] = 0x40;
      return f;
    })(),
    'pass_malformed',
  ),
  untouched('TCP header cut short', synFrame.subarray(0, 14 + 20 + 12), 'pass_malformed'),
  untouched('IPv6 header cut short', fromClient(tcp6).subarray(0, 14 + 30), 'pass_malformed'),
  untouched('IPv6 frame shorter than its payload length', fromClient({ ...udp6 }).subarray(0, 14 + 40 + 8 + 2), 'pass_malformed'),
  untouched('UDP header cut short', fromClient(udp4).subarray(0, 14 + 20 + 6), 'pass_malformed'),

  untouched('TCP ACK without a connection under rr', fromClient({ ...tcp4, sport: 40040, flags: ACK }), 'pass_tcp_not_syn'),
  untouched('TCP SYN+ACK without a connection under rr', fromClient({ ...tcp4, sport: 40041, flags: SYN | ACK }), 'pass_tcp_not_syn'),
  untouched('TCP FIN without a connection under rr', fromClient({ ...tcp4, sport: 40042, flags: TCP_FLAGS.FIN | ACK }), 'pass_tcp_not_syn'),

  untouched('real server without a resolved MAC', fromClient({ ...tcp4, dport: 8081 }), 'drop_dest_no_mac', 'DROP'),
  untouched('service without real servers', fromClient({ ...tcp4, dport: 8082 }), 'drop_no_dest', 'DROP'),
  untouched('a forwarding method the program does not know', fromClient({ ...tcp4, dport: 8083 }), 'drop_bad_dest', 'DROP'),
  untouched('schedule table pointing at an empty destination slot', fromClient({ ...tcp4, dport: 8084 }), 'drop_bad_dest', 'DROP'),
];

/** The conns entry of the client flow with source port `sport`. */
function connOf(d: Director, sport: number): ConnV | undefined {
  return d.maps.connections().find((c) => c.key.sport === sport)?.value;
}

/** The output's destination MAC: the real server a packet went to. */
function macOut(out: Buffer): string {
  return [...out.subarray(0, 6)].map((b) => b.toString(16).padStart(2, '0')).join(':');
}

let fixturesRun = 0;

describe.skipIf(!mustRun)('xdpvs_lb on crafted packets (BPF_PROG_TEST_RUN)', () => {
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
      const got = d.run(f.input);
      expectRun(f.name, f.input, got, f.verdict, f.output ?? f.input, f.reason);
      fixturesRun++;
    });
  });

  it('is loaded with its BTF (the kernel accepted the object\'s type information)', () => {
    const info = JSON.parse(execFileSync('bpftool', ['-j', 'prog', 'show', 'id', String(d.programId)]).toString()) as { btf_id?: number };
    expect(info.btf_id).toBeGreaterThan(0);
  });

  it('counts the connection, packets and bytes of a forwarded flow per service and per real server', () => {
    d.addService(WORLD[0]);
    const syn = fromClient({ ...tcp4, sport: 42000 });
    const ack = fromClient({ ...tcp4, sport: 42000, flags: ACK, payload: Buffer.from('GET / HTTP/1.0\r\n\r\n') });
    expect(d.run(syn).verdict).toBe('TX');
    expect(d.run(ack).verdict).toBe('TX');
    // IPVS counts IP lengths (skb->len at layer 3), not Ethernet frames: 14 bytes less per untagged frame.
    const bytes = syn.length - 14 + (ack.length - 14);
    expect(d.maps.serviceStats(0)).toMatchObject({ conns: 1, inpkts: 2, inbytes: bytes, outpkts: 0, outbytes: 0 });
    expect(d.maps.destStatsOf(1)).toMatchObject({ conns: 1, inpkts: 2, inbytes: bytes });
  });

  it('rr alternates exactly between the real servers', () => {
    const svc: ServiceSetup = { id: 0, vip: VIP4, port: 80, proto: 'tcp', servers: [server(1, '198.18.2.1', MAC_A), server(2, '198.18.2.2', MAC_B)] };
    d.addService(svc);
    const seen: string[] = [];
    for (let i = 0; i < 6; i++) {
      const o = { ...tcp4, sport: 43000 + i };
      const got = d.run(fromClient(o));
      expect(got.verdict).toBe('TX');
      seen.push(macOut(got.out));
    }
    expect(seen).toEqual([MAC_A, MAC_B, MAC_A, MAC_B, MAC_A, MAC_B]);
    expect(d.maps.destStatsOf(1).conns).toBe(3);
    expect(d.maps.destStatsOf(2).conns).toBe(3);
  });

  it('wrr with weights 3 and 1 gives the IPVS order A A A B', () => {
    const servers = [server(1, '198.18.2.1', MAC_A), server(2, '198.18.2.2', MAC_B)];
    const ring = wrrSequence([3, 1]).map((i) => servers[i].id);
    d.addService({ id: 0, vip: VIP4, port: 80, proto: 'tcp', sched: SCHED.wrr, servers, ring });
    const seen: string[] = [];
    for (let i = 0; i < 8; i++) {
      const got = d.run(fromClient({ ...tcp4, sport: 44000 + i }));
      seen.push(macOut(got.out));
    }
    expect(seen).toEqual([MAC_A, MAC_A, MAC_A, MAC_B, MAC_A, MAC_A, MAC_A, MAC_B]);
  });

  it('keeps a flow on its real server after the schedule table changed', () => {
    const a = server(1, '198.18.2.1', MAC_A);
    const b = server(2, '198.18.2.2', MAC_B);
    const svc: ServiceSetup = { id: 0, vip: VIP4, port: 80, proto: 'tcp', servers: [a, b] };
    d.addService(svc);
    const flow = { ...tcp4, sport: 45000 };
    expect(macOut(d.run(fromClient(flow)).out)).toBe(MAC_A);

    // A leaves the schedule table (removed, drained to weight 0): new flows go to B only...
    d.setRing(svc, [b.id]);
    const ack = { ...flow, flags: ACK, payload: Buffer.from('data') };
    const got = d.run(fromClient(ack));
    expectRun('established flow after A left the table', fromClient(ack), got, 'TX', toServer(MAC_A, ack), 'fwd_tx');
    expect(macOut(d.run(fromClient({ ...tcp4, sport: 45001 })).out)).toBe(MAC_B);

    // ...and when A's slot is given to another destination (new generation), A's old flow is not captured.
    d.putServer(0, { ...a, mac: '02:00:00:00:a0:99', gen: 2 });
    const stale = d.run(fromClient(ack));
    expectRun('flow whose destination slot was reused', fromClient(ack), stale, 'PASS', fromClient(ack), 'pass_tcp_not_syn');
  });

  it('a flow whose connection entry expired is a new connection', () => {
    d.addService(WORLD[0]);
    const flow = { ...tcp4, sport: 45500 };
    expect(d.run(fromClient(flow)).verdict).toBe('TX');
    // Age the entry past its expiry as time would (the daemon never writes conns but to flush them).
    const entry = d.maps.connections().find((c) => c.key.sport === 45500)!;
    d.maps.conns.update(FlowKey.encode(entry.key), Conn.encode({ ...entry.value, expires_ns: entry.value.last_ns }));
    const ack = { ...flow, flags: ACK };
    expectRun('ACK on an expired entry under rr', fromClient(ack), d.run(fromClient(ack)), 'PASS', fromClient(ack), 'pass_tcp_not_syn');
  });

  it('follows the TCP states of IPVS input-only with the configured timeouts', () => {
    d.addService(WORLD[0]);
    d.addService(WORLD[1]);
    d.maps.setConfig({ tcp_timeout: 1000, tcpfin_timeout: 50, udp_timeout: 70, syn_timeout: 30, close_timeout: 5 });
    const flow = { ...tcp4, sport: 46000 };
    const step = (flags: number): ConnV => {
      expect(d.run(fromClient({ ...flow, flags })).verdict).toBe('TX');
      return connOf(d, 46000)!;
    };
    const ttl = (c: ConnV) => (c.expires_ns - c.last_ns) / 1e9;

    let c = step(SYN);
    expect([c.state, ttl(c), c.dest_id, c.svc_id, c.dest_gen]).toEqual([ConnState.SynRecv, 30, 1, 0, 1]);
    c = step(ACK);
    expect([c.state, ttl(c)]).toEqual([ConnState.Established, 1000]);
    c = step(ACK | TCP_FLAGS.PSH);
    expect(c.state).toBe(ConnState.Established);
    c = step(TCP_FLAGS.FIN | ACK);
    expect([c.state, ttl(c)]).toEqual([ConnState.FinWait, 50]);
    c = step(ACK);
    expect(c.state).toBe(ConnState.FinWait);
    // A new SYN on a closing entry is a new connection (scheduled again, counted again).
    c = step(SYN);
    expect(c.state).toBe(ConnState.SynRecv);
    expect(d.maps.serviceStats(0).conns).toBe(2);
    c = step(TCP_FLAGS.RST);
    expect([c.state, ttl(c)]).toEqual([ConnState.Close, 5]);

    expect(d.run(fromClient({ ...udp4, sport: 46001 })).verdict).toBe('TX');
    const u = connOf(d, 46001)!;
    expect([u.state, ttl(u)]).toEqual([ConnState.Udp, 70]);
  });

  it('uses the IPVS default timeouts when the config is zero', () => {
    d.addService(WORLD[0]);
    d.run(fromClient({ ...tcp4, sport: 46500 }));
    const c = connOf(d, 46500)!;
    expect((c.expires_ns - c.last_ns) / 1e9).toBe(60);
  });

  describe('hash schedulers', () => {
    // Seven real servers, one per table entry, so the output MAC tells which index the hash chose.
    const servers = Array.from({ length: 7 }, (_, i) => server(10 + i, `198.18.3.${i + 1}`, `02:00:00:00:e0:${(i + 1).toString(16).padStart(2, '0')}`));
    const ring = servers.map((s) => s.id);

    function expectIndex(sched: number, flags: number, o: Omit<FlowPacketOpts, 'ethSrc' | 'ethDst'>, words: number[]): void {
      const vip = o.dst;
      d.addService({ id: 0, vip, port: o.dport, proto: o.proto, sched, flags, servers, ring });
      const idx = jhash2(words, words.length, 0) % ring.length;
      const got = d.run(fromClient(o));
      expectRun(`sched ${sched} flags ${flags}`, fromClient(o), got, 'TX', toServer(servers[idx].mac, o), 'fwd_tx');
    }

    const port = (p: number) => [p];

    it('sh (and mh) hash the IPv4 source address word as src/lb/jhash.ts does', () => {
      for (const [i, src] of ['198.18.0.10', '198.18.0.11', '198.18.200.7', '198.19.255.254'].entries()) {
        const o = { ...tcp4, src, sport: 47000 + i };
        expectIndex(SCHED.sh, 0, o, [...hostWords(ipBytes(src))]);
      }
    });

    it('mh hashes IPv6 source words, plus the source port with HASH_PORT', () => {
      for (const [i, src] of ['fd00:2::10', 'fd00:2::11', 'fd00:abcd:1234::beef'].entries()) {
        const o = { ...tcp6, src, sport: 47100 + i };
        expectIndex(SCHED.mh, 0, o, [...hostWords(ipBytes(src))]);
        const p = { ...o, sport: 47200 + i };
        expectIndex(SCHED.mh, SVC_F_HASH_PORT, p, [...hostWords(ipBytes(src)), ...port(p.sport)]);
      }
    });

    it('sh with HASH_PORT spreads one IPv4 client by source port', () => {
      for (let i = 0; i < 6; i++) {
        const o = { ...udp4, sport: 47300 + i * 17 };
        expectIndex(SCHED.sh, SVC_F_HASH_PORT, o, [...hostWords(ipBytes(CLIENT4)), o.sport]);
      }
    });

    it('dh hashes the destination address', () => {
      const o = { ...tcp4, sport: 47400 };
      expectIndex(SCHED.dh, 0, o, [...hostWords(ipBytes(VIP4))]);
      const o6 = { ...tcp6, sport: 47401 };
      expectIndex(SCHED.dh, SVC_F_HASH_PORT, o6, [...hostWords(ipBytes(VIP6))]);
    });

    it('mh schedules a mid-flow ACK without a connection (another director took over) as ESTABLISHED', () => {
      const o = { ...tcp4, sport: 47500, flags: ACK, payload: Buffer.from('x') };
      expectIndex(SCHED.mh, 0, o, [...hostWords(ipBytes(CLIENT4))]);
      expect(connOf(d, 47500)?.state).toBe(ConnState.Established);
    });
  });

  it('ran every fixture', () => {
    expect(fixturesRun).toBe(FIXTURES.length);
    expect(fixturesRun).toBeGreaterThan(0);
  });
});

afterAll(() => {
  // The guard above fails the suite when the fixtures were skipped while they had to run.
  if (mustRun && fixturesRun === 0) throw new Error('no datapath fixture ran');
});

