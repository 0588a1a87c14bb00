// NAT (-m, "Masq") in the director's XDP program on crafted packets (BPF_PROG_TEST_RUN, repeat 1): exact output bytes
// of the forward and reply rewrites for IPv4/IPv6, TCP/UDP, with port mapping, every checksum recomputed from scratch
// (test/datapath/checksum.ts); the reply's next hop from a namespace's FIB; the reverse table and its connection.

import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';

import { testRun } from '../../src/loader/program.js';
import { REASONS, type Reason } from '../../src/maps/reasons.js';
import { Conn, ConnState, DEST_F_MAC_VALID, Dest, FlowKey, type ConnV } from '../../src/maps/structs.js';
import { Director, FWD, XDP, expectRun, familyOf, ip16, isRoot, mustRun, xdpMdCtx, type RunResult, type ServiceSetup, type Verdict } from '../../src/testing/harness.js';
import { ETH_P_IP, ETH_P_IPV6, IPPROTO_TCP, IPPROTO_UDP, TCP_FLAGS, ethernet, ipv4, ipv6, macBytes, tcp, udp } from '../../src/testing/packets.js';
import { expectChecksumsValid, recomputeChecksums } from './checksum.js';
import { FIB, enterFibNetns, type FibNetns } from './fib-netns.js';

if (!isRoot) {
  console.warn(
    process.env.CI
      ? 'test/datapath/nat: not root, and CI is set: failing instead of skipping'
      : 'test/datapath/nat: skipped: BPF_PROG_TEST_RUN and network namespaces need root',
  );
}

const { SYN, ACK, FIN, RST, PSH } = TCP_FLAGS;

const VIP4 = '198.18.0.100';
const VIP6 = 'fd00:2::100';
const RIP4 = '198.19.0.11';
const RIP6 = 'fd01::11';
const RS_MAC = '02:00:00:00:a0:11';
const CLIENT = FIB.client;

/** One packet of a flow; the frame is built from scratch around it (checksums included). */
interface Pkt {
  src: string;
  dst: string;
  proto: 'tcp' | 'udp';
  sport: number;
  dport: number;
  flags?: number;
  seq?: number;
  ack?: number;
  payload?: Buffer;
  ttl?: number;
  vlan?: number;
  ipOptions?: Buffer;
}

function frame(ethSrc: string, ethDst: string, p: Pkt): Buffer {
  const v6 = p.src.includes(':');
  const l4 =
    p.proto === 'tcp'
      ? tcp(p.src, p.dst, { sport: p.sport, dport: p.dport, flags: p.flags ?? SYN, seq: p.seq, ack: p.ack, payload: p.payload })
      : udp(p.src, p.dst, { sport: p.sport, dport: p.dport, payload: p.payload });
  const proto = p.proto === 'tcp' ? IPPROTO_TCP : IPPROTO_UDP;
  const l3 = v6
    ? ipv6({ src: p.src, dst: p.dst, nextHeader: proto, hopLimit: p.ttl }, l4)
    : ipv4({ src: p.src, dst: p.dst, proto, ttl: p.ttl, options: p.ipOptions }, l4);
  return ethernet({ dst: ethDst, src: ethSrc, vlan: p.vlan, type: v6 ? ETH_P_IPV6 : ETH_P_IP }, l3);
}

/** A client packet arriving on the public side. */
const fromClient = (p: Pkt) => frame(CLIENT.mac, FIB.pub.mac, p);
/** That packet as NAT sends it to the real server on the private side. */
const toServer = (p: Pkt) => frame(FIB.priv.mac, RS_MAC, p);
/** A real server's reply arriving on the private side. */
const fromServer = (p: Pkt) => frame(RS_MAC, FIB.priv.mac, p);
/** That reply as the director sends it to the client's next hop (`mac`) on the public side. */
const toClient = (p: Pkt, mac: string = CLIENT.mac) => frame(FIB.pub.mac, mac, p);

/** The flow seen from the other end: addresses and ports swapped. */
function reverse(p: Pkt, extra: Partial<Pkt> = {}): Pkt {
  return { ...p, src: p.dst, dst: p.src, sport: p.dport, dport: p.sport, payload: undefined, ...extra };
}

interface Nat {
  id: number;
  svc: ServiceSetup;
  rip: string;
  rport: number;
  method?: number;
  /** Egress interface of the forward path (default: the private side). */
  ifindex?: number;
  gen?: number;
}

let fixtures = 0;

describe.skipIf(!mustRun)('NAT in xdpvs_lb (BPF_PROG_TEST_RUN)', () => {
  let fib: FibNetns;
  let d: Director;

  // The services, with their destinations. svc 4 sends to a real server behind the public side (one-armed: XDP_TX).
  let NATS: Nat[];
  const svc = (id: number, vip: string, port: number, proto: 'tcp' | 'udp'): ServiceSetup => ({ id, vip, port, proto, servers: [] });

  beforeAll(async () => {
    if (!isRoot) throw new Error('datapath tests need root; CI is set, so this fails instead of skipping');
    fib = await enterFibNetns();
    NATS = [
      { id: 1, svc: svc(0, VIP4, 80, 'tcp'), rip: RIP4, rport: 8080 },
      { id: 2, svc: svc(1, VIP4, 53, 'udp'), rip: RIP4, rport: 5353 },
      { id: 3, svc: svc(2, VIP6, 80, 'tcp'), rip: RIP6, rport: 8080 },
      { id: 4, svc: svc(3, VIP6, 53, 'udp'), rip: RIP6, rport: 53 },
      { id: 5, svc: svc(4, VIP4, 81, 'tcp'), rip: RIP4, rport: 81, ifindex: fib.ifindex.pub },
      { id: 6, svc: svc(5, VIP4, 82, 'tcp'), rip: RIP4, rport: 82, method: FWD.dr },
    ];
  }, 60_000);
  afterAll(async () => {
    await fib?.leave();
  });

  beforeEach(() => {
    d = Director.load(FIB.pub.mac, 'xdpvs_test_nat');
    for (const n of NATS) {
      putDest(n);
      d.setRing(n.svc, [n.id]);
    }
  });
  afterEach(() => d?.close());

  function putDest(n: Nat): void {
    const ifindex = n.ifindex ?? fib.ifindex.priv;
    d.maps.putDest(n.id, {
      ...Dest.zero(),
      addr: ip16(n.rip),
      port: n.rport,
      family: familyOf(n.rip),
      method: n.method ?? FWD.nat,
      gen: n.gen ?? 1,
      ifindex,
      svc_id: n.svc.id,
      flags: DEST_F_MAC_VALID,
      mac_dst: macBytes(RS_MAC),
      mac_src: macBytes(ifindex === fib.ifindex.pub ? FIB.pub.mac : FIB.priv.mac),
    });
  }

  /** Runs one packet once (repeat 1: a second run would see the rewritten packet) as arriving on `ingress`. */
  function run(packet: Buffer, ingress: number): RunResult {
    const before = d.reasonCounts();
    const r = testRun(d.programFd, packet, { ctxIn: xdpMdCtx(packet.length, ingress) });
    const after = d.reasonCounts();
    const reasons: Partial<Record<Reason, number>> = {};
    for (const name of REASONS) if (after[name] !== before[name]) reasons[name] = after[name] - before[name];
    const verdict = (Object.entries(XDP).find(([, v]) => v === r.retval)?.[0] ?? `retval ${r.retval}`) as Verdict;
    return { verdict, out: Buffer.from(r.dataOut), reasons };
  }

  /** Runs, checks verdict, exact bytes and reason, then recomputes the output's checksums from scratch. */
  function step(label: string, input: Buffer, ingress: number, verdict: Verdict, expected: Buffer, reason: Reason): Buffer {
    const got = run(input, ingress);
    expectRun(label, input, got, verdict, expected, reason);
    expectChecksumsValid(label, got.out);
    fixtures++;
    return got.out;
  }

  const forwarded = (label: string, req: Pkt, rport: number, rip: string) =>
    step(label, fromClient(req), fib.ifindex.pub, 'REDIRECT', toServer({ ...req, dst: rip, dport: rport }), 'fwd_redirect');

  function connOf(sport: number): ConnV | undefined {
    return d.maps.connections().find((c) => c.key.sport === sport)?.value;
  }

  describe('forward path: destination rewritten to RIP:RPORT, out of the private side', () => {
    it('IPv4 TCP SYN, VIP:80 mapped to RIP:8080', () => {
      forwarded('v4 tcp', { src: CLIENT.ip4, dst: VIP4, proto: 'tcp', sport: 40000, dport: 80 }, 8080, RIP4);
    });
    it('IPv4 UDP with a payload, VIP:53 mapped to RIP:5353', () => {
      forwarded('v4 udp', { src: CLIENT.ip4, dst: VIP4, proto: 'udp', sport: 40001, dport: 53, payload: Buffer.from('a query') }, 5353, RIP4);
    });
    it('IPv6 TCP with data, VIP:80 mapped to RIP:8080', () => {
      forwarded('v6 tcp', { src: CLIENT.ip6, dst: VIP6, proto: 'tcp', sport: 40002, dport: 80, payload: Buffer.from('GET / HTTP/1.0\r\n\r\n') }, 8080, RIP6);
    });
    it('IPv6 UDP, same port', () => {
      forwarded('v6 udp', { src: CLIENT.ip6, dst: VIP6, proto: 'udp', sport: 40003, dport: 53, payload: Buffer.from('query6!') }, 53, RIP6);
    });
    it('IPv4 TCP with IP options (IHL 15) and an 802.1Q tag, which stays', () => {
      const req: Pkt = {
        src: CLIENT.ip4,
        dst: VIP4,
        proto: 'tcp',
        sport: 40004,
        dport: 80,
        vlan: 42,
        ipOptions: Buffer.concat([Buffer.from([0x07, 39, 4]), Buffer.alloc(36)]),
        payload: Buffer.from('odd length payload!'),
      };
      forwarded('v4 tcp options vlan', req, 8080, RIP4);
    });
    it('the real server behind the receiving interface: XDP_TX', () => {
      const req: Pkt = { src: CLIENT.ip4, dst: VIP4, proto: 'tcp', sport: 40005, dport: 81 };
      const out = frame(FIB.pub.mac, RS_MAC, { ...req, dst: RIP4 });
      step('one-armed', fromClient(req), fib.ifindex.pub, 'TX', out, 'fwd_tx');
    });
    it('IPv4 UDP without a checksum keeps none', () => {
      const req: Pkt = { src: CLIENT.ip4, dst: VIP4, proto: 'udp', sport: 40006, dport: 53, payload: Buffer.from('no sum') };
      const input = fromClient(req);
      input.writeUInt16BE(0, 14 + 20 + 6);
      const expected = toServer({ ...req, dst: RIP4, dport: 5353 });
      expected.writeUInt16BE(0, 14 + 20 + 6);
      const out = step('v4 udp zero checksum', input, fib.ifindex.pub, 'REDIRECT', expected, 'fwd_redirect');
      expect(recomputeChecksums(out).l4.computed).toBe('none');
    });
    it('IPv4 UDP whose updated checksum comes out 0 is sent as 0xffff', () => {
      // Two payload bytes chosen so that the rewritten datagram sums to 0xffff: the checksum computed with them at
      // zero is exactly the word that completes the sum.
      const base: Pkt = { src: CLIENT.ip4, dst: VIP4, proto: 'udp', sport: 40007, dport: 53 };
      const rest = Buffer.from('fill');
      const probe = toServer({ ...base, dst: RIP4, dport: 5353, payload: Buffer.concat([Buffer.alloc(2), rest]) });
      const word = recomputeChecksums(probe).l4.computed as number;
      const payload = Buffer.concat([Buffer.from([word >> 8, word & 0xff]), rest]);
      const out = forwarded('v4 udp sum 0', { ...base, payload }, 5353, RIP4);
      expect(out.readUInt16BE(14 + 20 + 6)).toBe(0xffff);
    });
    it('IPv6 UDP with the (invalid) zero checksum leaves it zero', () => {
      const req: Pkt = { src: CLIENT.ip6, dst: VIP6, proto: 'udp', sport: 40008, dport: 53, payload: Buffer.from('zero') };
      const input = fromClient(req);
      input.writeUInt16BE(0, 14 + 40 + 6);
      const expected = toServer({ ...req, dst: RIP6 });
      expected.writeUInt16BE(0, 14 + 40 + 6);
      const got = run(input, fib.ifindex.pub);
      expectRun('v6 udp zero checksum', input, got, 'REDIRECT', expected, 'fwd_redirect');
      fixtures++;
    });
    it('writes the reverse entry with the connection (NAT only, never for DR)', () => {
      forwarded('v4 tcp', { src: CLIENT.ip4, dst: VIP4, proto: 'tcp', sport: 40010, dport: 80 }, 8080, RIP4);
      const dr = fromClient({ src: CLIENT.ip4, dst: VIP4, proto: 'tcp', sport: 40011, dport: 82 });
      expect(run(dr, fib.ifindex.pub).verdict).toBe('REDIRECT');
      const entries = d.maps.natReverseEntries();
      expect(entries).toHaveLength(1);
      const [e] = entries;
      expect(e!.key).toMatchObject({ sport: 8080, dport: 40010, proto: IPPROTO_TCP, family: familyOf(RIP4) });
      expect(e!.key.src.equals(ip16(RIP4)) && e!.key.dst.equals(ip16(CLIENT.ip4))).toBe(true);
      expect(e!.value).toMatchObject({ vport: 80, dest_id: 1, dest_gen: 1 });
      expect(e!.value.vaddr.equals(ip16(VIP4))).toBe(true);
    });
  });

  describe('reply path: source rewritten back to VIP:VPORT, routed to the client by the FIB', () => {
    function roundTrip(label: string, req: Pkt, rip: string, rport: number, replyExtra: Partial<Pkt> = {}): void {
      forwarded(`${label} request`, req, rport, rip);
      const reply = reverse({ ...req, dst: rip, dport: rport }, { ttl: 64, ...replyExtra });
      const back = reverse(req, { ttl: 63, ...replyExtra, payload: replyExtra.payload });
      step(`${label} reply`, fromServer(reply), fib.ifindex.priv, 'REDIRECT', toClient(back), 'nat_reply_redirect');
    }

    it('IPv4 TCP SYN+ACK from RIP:8080 leaves as VIP:80, TTL one less', () => {
      roundTrip('v4 tcp', { src: CLIENT.ip4, dst: VIP4, proto: 'tcp', sport: 41000, dport: 80 }, RIP4, 8080, { flags: SYN | ACK, seq: 7777, ack: 1001 });
    });
    it('IPv4 UDP answer from RIP:5353 leaves as VIP:53', () => {
      roundTrip('v4 udp', { src: CLIENT.ip4, dst: VIP4, proto: 'udp', sport: 41001, dport: 53, payload: Buffer.from('q') }, RIP4, 5353, {
        payload: Buffer.from('an answer of some length'),
      });
    });
    it('IPv6 TCP data from RIP:8080 leaves as VIP:80, hop limit one less', () => {
      roundTrip('v6 tcp', { src: CLIENT.ip6, dst: VIP6, proto: 'tcp', sport: 41002, dport: 80 }, RIP6, 8080, {
        flags: ACK | PSH,
        payload: Buffer.from('HTTP/1.0 200 OK\r\n\r\nrs1\n'),
      });
    });
    it('IPv6 UDP answer', () => {
      roundTrip('v6 udp', { src: CLIENT.ip6, dst: VIP6, proto: 'udp', sport: 41003, dport: 53, payload: Buffer.from('q6') }, RIP6, 53, {
        payload: Buffer.from('answer6'),
      });
    });
    it('IPv4 UDP answer without a checksum keeps none', () => {
      const req: Pkt = { src: CLIENT.ip4, dst: VIP4, proto: 'udp', sport: 41004, dport: 53, payload: Buffer.from('q') };
      forwarded('request', req, 5353, RIP4);
      const input = fromServer(reverse({ ...req, dst: RIP4, dport: 5353 }, { ttl: 64, payload: Buffer.from('a') }));
      input.writeUInt16BE(0, 14 + 20 + 6);
      const expected = toClient(reverse(req, { ttl: 63, payload: Buffer.from('a') }));
      expected.writeUInt16BE(0, 14 + 20 + 6);
      step('v4 udp zero checksum reply', input, fib.ifindex.priv, 'REDIRECT', expected, 'nat_reply_redirect');
    });
    it('a client behind a gateway: the gateway is the next hop', () => {
      for (const [i, [cip, vip, rip]] of ([
        [FIB.routed.ip4, VIP4, RIP4],
        [FIB.routed.ip6, VIP6, RIP6],
      ] as const).entries()) {
        const req: Pkt = { src: cip, dst: vip, proto: 'tcp', sport: 41010 + i, dport: 80 };
        forwarded('request', req, 8080, rip);
        const reply = fromServer(reverse({ ...req, dst: rip, dport: 8080 }, { ttl: 64, flags: SYN | ACK }));
        step(`routed ${cip}`, reply, fib.ifindex.priv, 'REDIRECT', toClient(reverse(req, { ttl: 63, flags: SYN | ACK }), FIB.gateway.mac), 'nat_reply_redirect');
      }
    });
    it('the client on the interface the reply came in on: XDP_TX', () => {
      const req: Pkt = { src: CLIENT.ip4, dst: VIP4, proto: 'tcp', sport: 41020, dport: 81 };
      step('one-armed request', fromClient(req), fib.ifindex.pub, 'TX', frame(FIB.pub.mac, RS_MAC, { ...req, dst: RIP4 }), 'fwd_tx');
      const reply = frame(RS_MAC, FIB.pub.mac, reverse({ ...req, dst: RIP4 }, { ttl: 64, flags: SYN | ACK }));
      step('one-armed reply', reply, fib.ifindex.pub, 'TX', toClient(reverse(req, { ttl: 63, flags: SYN | ACK })), 'nat_reply_tx');
    });
    it('next hop not resolved: rewritten (TTL kept, the kernel forwards it) and passed to the kernel', () => {
      for (const [i, [cip, vip, rip]] of ([
        [FIB.unresolved.ip4, VIP4, RIP4],
        [FIB.unresolved.ip6, VIP6, RIP6],
      ] as const).entries()) {
        const req: Pkt = { src: cip, dst: vip, proto: 'tcp', sport: 41030 + i, dport: 80 };
        forwarded('request', req, 8080, rip);
        const reply = fromServer(reverse({ ...req, dst: rip, dport: 8080 }, { ttl: 64, flags: SYN | ACK }));
        // MACs untouched: the kernel's forwarding writes them once it has resolved the neighbour.
        const expected = frame(RS_MAC, FIB.priv.mac, reverse(req, { ttl: 64, flags: SYN | ACK }));
        step(`unresolved ${cip}`, reply, fib.ifindex.priv, 'PASS', expected, 'pass_nat_no_neigh');
      }
      // The kernel carries it to the client: it left through the director all the same.
      expect(d.maps.serviceStats(0)).toMatchObject({ outpkts: 1 });
      expect(d.maps.serviceStats(2)).toMatchObject({ outpkts: 1 });
    });
    it('no route to the client, or TTL 1: passed untouched for the kernel to answer', () => {
      const req: Pkt = { src: FIB.noRoute.ip4, dst: VIP4, proto: 'tcp', sport: 41040, dport: 80 };
      forwarded('request', req, 8080, RIP4);
      const reply = fromServer(reverse({ ...req, dst: RIP4, dport: 8080 }, { ttl: 64, flags: SYN | ACK }));
      step('no route', reply, fib.ifindex.priv, 'PASS', reply, 'pass_nat_kernel');

      const req6: Pkt = { src: FIB.noRoute.ip6, dst: VIP6, proto: 'tcp', sport: 41041, dport: 80 };
      forwarded('request', req6, 8080, RIP6);
      const reply6 = fromServer(reverse({ ...req6, dst: RIP6, dport: 8080 }, { ttl: 64, flags: SYN | ACK }));
      step('no route v6', reply6, fib.ifindex.priv, 'PASS', reply6, 'pass_nat_kernel');

      const req1: Pkt = { src: CLIENT.ip4, dst: VIP4, proto: 'tcp', sport: 41042, dport: 80 };
      forwarded('request', req1, 8080, RIP4);
      const ttl1 = fromServer(reverse({ ...req1, dst: RIP4, dport: 8080 }, { ttl: 1, flags: SYN | ACK }));
      step('TTL 1', ttl1, fib.ifindex.priv, 'PASS', ttl1, 'pass_nat_kernel');
      expect(d.maps.serviceStats(0).outpkts).toBe(0);
    });
    it('a reply nobody asked for is passed untouched, as any packet that is not for a service', () => {
      const stray = fromServer({ src: RIP4, dst: CLIENT.ip4, proto: 'tcp', sport: 8080, dport: 41050, flags: SYN | ACK, ttl: 64 });
      step('no reverse entry', stray, fib.ifindex.priv, 'PASS', stray, 'pass_no_service');
      // Right flow, wrong port: no match either.
      const req: Pkt = { src: CLIENT.ip4, dst: VIP4, proto: 'tcp', sport: 41051, dport: 80 };
      forwarded('request', req, 8080, RIP4);
      const other = fromServer(reverse({ ...req, dst: RIP4, dport: 8081 }, { ttl: 64, flags: SYN | ACK }));
      step('other source port', other, fib.ifindex.priv, 'PASS', other, 'pass_no_service');
    });
    it('a reply whose connection expired, or was rescheduled elsewhere, is passed untouched', () => {
      const req: Pkt = { src: CLIENT.ip4, dst: VIP4, proto: 'tcp', sport: 41060, dport: 80 };
      forwarded('request', req, 8080, RIP4);
      const entry = d.maps.connections().find((c) => c.key.sport === 41060)!;
      d.maps.conns.update(FlowKey.encode(entry.key), Conn.encode({ ...entry.value, expires_ns: entry.value.last_ns }));
      const reply = fromServer(reverse({ ...req, dst: RIP4, dport: 8080 }, { ttl: 64, flags: ACK }));
      step('expired', reply, fib.ifindex.priv, 'PASS', reply, 'pass_nat_no_conn');

      d.maps.conns.update(FlowKey.encode(entry.key), Conn.encode({ ...entry.value, dest_id: 5 }));
      step('rescheduled', reply, fib.ifindex.priv, 'PASS', reply, 'pass_nat_no_conn');

      // The destination slot given to another real server (new generation): its old replies are not captured.
      d.maps.conns.update(FlowKey.encode(entry.key), Conn.encode(entry.value));
      putDest({ ...NATS[0]!, gen: 2 });
      step('slot reused', reply, fib.ifindex.priv, 'PASS', reply, 'pass_nat_no_conn');
    });
  });

  it('counts replies as outbound packets and bytes (IP length) of the service and real server; DR stays at 0', () => {
    const req: Pkt = { src: CLIENT.ip4, dst: VIP4, proto: 'tcp', sport: 42000, dport: 80 };
    const syn = fromClient(req);
    run(syn, fib.ifindex.pub);
    const replies = [
      fromServer(reverse({ ...req, dst: RIP4, dport: 8080 }, { ttl: 64, flags: SYN | ACK })),
      fromServer(reverse({ ...req, dst: RIP4, dport: 8080 }, { ttl: 64, flags: ACK | PSH, payload: Buffer.alloc(1000, 0x61) })),
    ];
    for (const r of replies) expect(run(r, fib.ifindex.priv).verdict).toBe('REDIRECT');
    const outBytes = replies.reduce((n, f) => n + f.length - 14, 0);
    expect(d.maps.serviceStats(0)).toMatchObject({ conns: 1, inpkts: 1, inbytes: syn.length - 14, outpkts: 2, outbytes: outBytes });
    expect(d.maps.destStatsOf(1)).toMatchObject({ conns: 1, inpkts: 1, outpkts: 2, outbytes: outBytes });

    run(fromClient({ ...req, dport: 82, sport: 42001 }), fib.ifindex.pub);
    expect(d.maps.serviceStats(5)).toMatchObject({ conns: 1, inpkts: 1, outpkts: 0, outbytes: 0 });
    expect(d.maps.destStatsOf(6)).toMatchObject({ outpkts: 0, outbytes: 0 });
  });

  it('tracks the TCP state from both directions (IPVS NAT), with the configured timeouts', () => {
    d.maps.setConfig({ tcp_timeout: 1000, tcpfin_timeout: 50, udp_timeout: 70, syn_timeout: 30, close_timeout: 5 });
    const req: Pkt = { src: CLIENT.ip4, dst: VIP4, proto: 'tcp', sport: 43000, dport: 80 };
    const client = (flags: number) => run(fromClient({ ...req, flags }), fib.ifindex.pub).verdict;
    const server = (flags: number) => run(fromServer(reverse({ ...req, dst: RIP4, dport: 8080 }, { ttl: 64, flags })), fib.ifindex.priv).verdict;
    const state = () => {
      const c = connOf(43000)!;
      return [c.state, (c.expires_ns - c.last_ns) / 1e9];
    };

    expect(client(SYN)).toBe('REDIRECT');
    expect(state()).toEqual([ConnState.SynRecv, 30]);
    expect(server(SYN | ACK)).toBe('REDIRECT');
    expect(state()).toEqual([ConnState.SynRecv, 30]);
    expect(client(ACK)).toBe('REDIRECT');
    expect(state()).toEqual([ConnState.Established, 1000]);
    expect(server(ACK | PSH)).toBe('REDIRECT');
    expect(state()).toEqual([ConnState.Established, 1000]);
    expect(server(FIN | ACK)).toBe('REDIRECT');
    expect(state()).toEqual([ConnState.FinWait, 50]);
    expect(client(FIN | ACK)).toBe('REDIRECT');
    expect(server(ACK)).toBe('REDIRECT');
    expect(state()).toEqual([ConnState.FinWait, 50]);
    expect(server(RST)).toBe('REDIRECT');
    expect(state()).toEqual([ConnState.Close, 5]);

    // The server's first ACK establishes as well (IPVS's output table: SYN_RECV + ACK).
    const req2: Pkt = { ...req, sport: 43001 };
    run(fromClient(req2), fib.ifindex.pub);
    run(fromServer(reverse({ ...req2, dst: RIP4, dport: 8080 }, { ttl: 64, flags: ACK })), fib.ifindex.priv);
    expect(connOf(43001)!.state).toBe(ConnState.Established);

    // UDP: replies refresh the entry with the UDP timeout.
    const u: Pkt = { src: CLIENT.ip4, dst: VIP4, proto: 'udp', sport: 43002, dport: 53 };
    run(fromClient(u), fib.ifindex.pub);
    expect(run(fromServer(reverse({ ...u, dst: RIP4, dport: 5353 }, { ttl: 64 })), fib.ifindex.priv).verdict).toBe('REDIRECT');
    const c = connOf(43002)!;
    expect([c.state, (c.expires_ns - c.last_ns) / 1e9]).toEqual([ConnState.Udp, 70]);
  });

  it('a method change (-e): the old NAT connection keeps its rewrites both ways, new ones take the new path', () => {
    const old: Pkt = { src: CLIENT.ip4, dst: VIP4, proto: 'tcp', sport: 44000, dport: 80 };
    forwarded('old connection', old, 8080, RIP4);
    // The balancer gives the real server a new destination record (id 7, DR, service port) and keeps id 1 in place.
    const dr: Nat = { id: 7, svc: NATS[0]!.svc, rip: RIP4, rport: 80, method: FWD.dr, gen: 2 };
    putDest(dr);
    d.setRing(dr.svc, [dr.id]);

    const data: Pkt = { ...old, flags: ACK | PSH, payload: Buffer.from('more') };
    step('old connection, client data', fromClient(data), fib.ifindex.pub, 'REDIRECT', toServer({ ...data, dst: RIP4, dport: 8080 }), 'fwd_redirect');
    const reply = reverse({ ...old, dst: RIP4, dport: 8080 }, { ttl: 64, flags: ACK | PSH, payload: Buffer.from('answer') });
    step('old connection, reply', fromServer(reply), fib.ifindex.priv, 'REDIRECT', toClient(reverse(old, { ttl: 63, flags: ACK | PSH, payload: Buffer.from('answer') })), 'nat_reply_redirect');

    // A new connection goes by direct routing: MACs only, and no reverse entry.
    const fresh: Pkt = { ...old, sport: 44001 };
    step('new connection', fromClient(fresh), fib.ifindex.pub, 'REDIRECT', toServer(fresh), 'fwd_redirect');
    expect(d.maps.natReverseEntries().map((e) => e.key.dport)).toEqual([44000]);
  });

  it('a reply refreshing a connection whose VIP:port now names another service leaves the client\'s side checked', () => {
    const req: Pkt = { src: CLIENT.ip4, dst: VIP4, proto: 'tcp', sport: 45000, dport: 80 };
    forwarded('request', req, 8080, RIP4);
    const ack: Pkt = { ...req, flags: ACK };
    step('established', fromClient(ack), fib.ifindex.pub, 'REDIRECT', toServer({ ...ack, dst: RIP4, dport: 8080 }), 'fwd_redirect');
    // VIP:80 removed and added again as service 6 (real server 8, DR); real server 1 keeps its slot while it drains.
    d.maps.deleteService({ addr: ip16(VIP4), port: 80, proto: IPPROTO_TCP, family: familyOf(VIP4) });
    const again: Nat = { id: 8, svc: svc(6, VIP4, 80, 'tcp'), rip: RIP4, rport: 80, method: FWD.dr };
    putDest(again);
    d.setRing(again.svc, [again.id]);
    // The real server closes the old connection: its FIN is rewritten back and the entry written (FIN_WAIT)...
    expect(run(fromServer(reverse({ ...ack, dst: RIP4, dport: 8080 }, { ttl: 64, flags: FIN | ACK })), fib.ifindex.priv).verdict).toBe('REDIRECT');
    expect(connOf(45000)!.state).toBe(ConnState.FinWait);
    // ...without looking the service up, so the client's next packet still does, and finds another service: as any
    // ACK without a connection under rr, it is the kernel's.
    step('client after the change', fromClient(ack), fib.ifindex.pub, 'PASS', fromClient(ack), 'pass_tcp_not_syn');
  });

  it('ran the exact-bytes fixtures', () => {
    expect(fixtures).toBeGreaterThan(30);
  });
});

afterAll(() => {
  if (mustRun && fixtures === 0) throw new Error('no NAT datapath fixture ran');
});
