// Every IPVS scheduler's choice in the real XDP program (BPF_PROG_TEST_RUN), on crafted packets and crafted connection
// counts written straight into dest_conns/dest_sched: lc, wlc, sed, nq, fo, ovf, lblc, lblcr, the sh/dh tables with
// weight-0 servers, sh/mh fallback, -x/-y thresholds, the per-destination counters, and prefix / port-0 services.
// Expected choices follow net/netfilter/ipvs/ip_vs_<name>.c (see docs/schedulers.md). Needs root.

import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';

import { findScheduler } from '../../src/lb/schedulers.js';
import { SchedMaps } from '../../src/maps/sched-maps.js';
import { readConnections } from '../../src/lb/sched-sync.js';
import { DS_F_AVAILABLE } from '../../src/maps/sched-structs.js';
import { AF_INET, AF_INET6, IPPROTO_TCP, SVC_F_FALLBACK, SVC_F_THRESHOLDS } from '../../src/maps/structs.js';
import { Director, expectRun, ip16, isRoot, mustRun, type RealServer } from '../../src/testing/harness.js';
import { TCP_FLAGS, flowPacket, type FlowPacketOpts } from '../../src/testing/packets.js';

const DIRECTOR_MAC = '02:00:00:00:d2:00';
const CLIENT_MAC = '02:00:00:00:c2:00';
const VIP = '198.18.1.1';
const SYN = TCP_FLAGS.SYN;
const ACK = TCP_FLAGS.ACK;

function schedId(name: string): number {
  const s = findScheduler(name);
  if (!s) throw new Error(`no scheduler ${name}`);
  return s.id;
}

/** Real server n: destination id 100 + n, address 198.18.2.n, MAC 02:00:00:00:0a:nn. */
function rs(n: number): RealServer {
  return { id: 100 + n, addr: `198.18.2.${n}`, mac: `02:00:00:00:0a:${n.toString(16).padStart(2, '0')}` };
}

type Pkt = Omit<FlowPacketOpts, 'ethSrc' | 'ethDst'>;

function fromClient(o: Pkt): Buffer {
  return flowPacket({ ethSrc: CLIENT_MAC, ethDst: DIRECTOR_MAC, ...o });
}

function macOut(out: Buffer): string {
  return [...out.subarray(0, 6)].map((b) => b.toString(16).padStart(2, '0')).join(':');
}

interface Server {
  n: number;
  weight?: number;
  active?: number;
  inactive?: number;
  /** -x / -y */
  upper?: number;
  lower?: number;
  /** Overload flag already set (at epoch 1). */
  overloaded?: boolean;
  /** Left out of the schedule table (the daemon's candidates), but a real server of the service. */
  notInTable?: boolean;
}

let ran = 0;

describe.skipIf(!mustRun)('schedulers in the data plane (BPF_PROG_TEST_RUN)', () => {
  let d: Director;
  let sm: SchedMaps;
  let sport = 20000;

  beforeAll(() => {
    if (!isRoot) throw new Error('datapath tests need root (BPF_PROG_TEST_RUN); CI is set, so this fails instead of skipping');
  });
  beforeEach(() => {
    d = Director.load(DIRECTOR_MAC, 'xdpvs_test_sched');
    sm = new SchedMaps(d.maps.backend);
  });
  afterEach(() => {
    d?.close();
  });

  /** A service at VIP:80 with these servers (in table order), counts and thresholds written as given. */
  function service(sched: string, servers: Server[], opts: { flags?: number; table?: number[]; id?: number; vip?: string; port?: number } = {}): void {
    const id = opts.id ?? 0;
    const table = opts.table ?? servers.filter((s) => !s.notInTable).map((s) => rs(s.n).id);
    d.addService({
      id,
      vip: opts.vip ?? VIP,
      port: opts.port ?? 80,
      proto: 'tcp',
      sched: schedId(sched),
      flags: opts.flags ?? 0,
      servers: servers.map((s) => rs(s.n)),
      ring: table,
    });
    // After the harness's defaults (weight 1, available): the weights, counts and thresholds of the case.
    for (const s of servers) {
      sm.putDestSched(rs(s.n).id, {
        weight: s.weight ?? 1,
        u_threshold: s.upper ?? 0,
        l_threshold: s.lower ?? 0,
        epoch: 1,
        active_adj: 0,
        inactive_adj: 0,
        flags: DS_F_AVAILABLE,
      });
      sm.putDestConns(rs(s.n).id, { active: s.active ?? 0, inactive: s.inactive ?? 0, overload: s.overloaded ? 1 : 0 });
    }
  }

  /** A SYN from a new client port; the real server number it went to, or the verdict when not forwarded. */
  function syn(o: Partial<Pkt> = {}): number | string {
    const got = d.run(fromClient({ src: '198.18.0.10', dst: VIP, proto: 'tcp', sport: sport++, dport: 80, flags: SYN, ...o }));
    ran++;
    if (got.verdict !== 'TX') return `${got.verdict} ${Object.keys(got.reasons).join(',')}`;
    return parseInt(macOut(got.out).split(':')[5], 16);
  }

  function counts(n: number): { active: number; inactive: number; overload: number } {
    const c = sm.getDestConns(rs(n).id);
    return { active: c.active, inactive: c.inactive, overload: c.overload };
  }

  describe('lc: least (active << 8) + inactive', () => {
    it('picks the least overhead, first of equals, never weight 0', () => {
      service('lc', [
        { n: 1, active: 1, inactive: 0 }, // 256
        { n: 2, active: 0, inactive: 300 }, // 300
        { n: 3, active: 0, inactive: 0, weight: 0 }, // 0, but quiescent
        { n: 4, active: 1, inactive: 0 }, // 256, after 1
      ]);
      expect(syn()).toBe(1);
    });
    it('ignores weights otherwise', () => {
      service('lc', [
        { n: 1, active: 2, weight: 100 },
        { n: 2, active: 1, weight: 1 },
      ]);
      expect(syn()).toBe(2);
    });
    it('nobody with weight: no destination (dropped)', () => {
      service('lc', [{ n: 1, weight: 0 }]);
      expect(syn()).toBe('DROP drop_no_dest');
    });
  });

  describe('wlc: least overhead / weight, by cross-multiplication', () => {
    it('weights scale the overhead', () => {
      service('wlc', [
        { n: 1, active: 1, weight: 1 }, // 256
        { n: 2, active: 2, weight: 3 }, // 170.7
      ]);
      expect(syn()).toBe(2);
    });
    it('equal ratios keep the first (512/2 against 256/1)', () => {
      service('wlc', [
        { n: 1, active: 2, weight: 2 },
        { n: 2, active: 1, weight: 1 },
      ]);
      expect(syn()).toBe(1);
    });
    it('inactive connections weigh 1/256 of an active one', () => {
      service('wlc', [
        { n: 1, active: 1, inactive: 0 }, // 256
        { n: 2, active: 0, inactive: 255 }, // 255
      ]);
      expect(syn()).toBe(2);
    });
  });

  describe('sed: least (active + 1) / weight', () => {
    it('counts the incoming connection', () => {
      service('sed', [
        { n: 1, active: 0, weight: 1 }, // 1
        { n: 2, active: 1, weight: 3 }, // 0.67
      ]);
      expect(syn()).toBe(2);
    });
    it('ignores inactive connections', () => {
      service('sed', [
        { n: 1, active: 1, inactive: 0 },
        { n: 2, active: 1, inactive: 1000 },
      ]);
      expect(syn()).toBe(1);
    });
  });

  describe('nq: an idle server first, else sed', () => {
    it('takes the idle one even when sed would not', () => {
      service('nq', [
        { n: 1, active: 2, weight: 10 }, // sed 0.3
        { n: 2, active: 0, weight: 1 }, // sed 1, but idle
      ]);
      expect(syn()).toBe(2);
    });
    it('without an idle one, sed', () => {
      service('nq', [
        { n: 1, active: 1, weight: 1 }, // 2
        { n: 2, active: 2, weight: 4 }, // 0.75
      ]);
      expect(syn()).toBe(2);
    });
    it('an idle server at weight 0 does not count', () => {
      service('nq', [
        { n: 1, active: 3, weight: 1 },
        { n: 2, active: 0, weight: 0 },
      ]);
      expect(syn()).toBe(1);
    });
  });

  describe('fo: the highest weight available', () => {
    it('first of the heaviest', () => {
      service('fo', [{ n: 1, weight: 2 }, { n: 2, weight: 5, active: 50 }, { n: 3, weight: 5 }]);
      expect(syn()).toBe(2);
    });
    it('skips an overloaded one', () => {
      service('fo', [
        { n: 1, weight: 2 },
        { n: 2, weight: 5, upper: 10, active: 10, overloaded: true },
        { n: 3, weight: 4 },
      ]);
      expect(syn()).toBe(3);
    });
  });

  describe('ovf: the heaviest whose active connections do not exceed its weight', () => {
    it('overflows to the next when the heaviest is full', () => {
      service('ovf', [
        { n: 1, weight: 5, active: 6 },
        { n: 2, weight: 3, active: 1 },
        { n: 3, weight: 4, active: 4 },
      ]);
      expect(syn()).toBe(3);
    });
    it('active == weight is still room', () => {
      service('ovf', [
        { n: 1, weight: 5, active: 5 },
        { n: 2, weight: 3 },
      ]);
      expect(syn()).toBe(1);
    });
    it('everyone full: no destination', () => {
      service('ovf', [{ n: 1, weight: 1, active: 2 }]);
      expect(syn()).toBe('DROP drop_no_dest');
    });
  });

  describe('the counts the data plane keeps', () => {
    it('SYN is inactive, ESTABLISHED active, FIN inactive again, a SYN on the closing entry replaces it', () => {
      service('rr', [{ n: 1 }]);
      const flow = { src: '198.18.0.10', dst: VIP, proto: 'tcp' as const, sport: 30000, dport: 80 };
      const step = (flags: number) => expect(d.run(fromClient({ ...flow, flags })).verdict).toBe('TX');
      step(SYN);
      expect(counts(1)).toMatchObject({ active: 0, inactive: 1 });
      step(ACK);
      expect(counts(1)).toMatchObject({ active: 1, inactive: 0 });
      step(ACK | TCP_FLAGS.PSH);
      expect(counts(1)).toMatchObject({ active: 1, inactive: 0 });
      step(TCP_FLAGS.FIN | ACK);
      expect(counts(1)).toMatchObject({ active: 0, inactive: 1 });
      step(SYN);
      expect(counts(1)).toMatchObject({ active: 0, inactive: 1 });
      step(ACK);
      expect(counts(1)).toMatchObject({ active: 1, inactive: 0 });
      step(TCP_FLAGS.RST);
      expect(counts(1)).toMatchObject({ active: 0, inactive: 1 });
      ran++;
    });

    it('lc follows the connections as they open and establish', () => {
      service('lc', [{ n: 1 }, { n: 2 }]);
      const open = (port: number) => {
        const flow = { src: '198.18.0.10', dst: VIP, proto: 'tcp' as const, sport: port, dport: 80 };
        const got = d.run(fromClient({ ...flow, flags: SYN }));
        d.run(fromClient({ ...flow, flags: ACK }));
        return parseInt(macOut(got.out).split(':')[5], 16);
      };
      // Each established connection weighs 256: the choice alternates.
      expect([open(31000), open(31001), open(31002), open(31003)]).toEqual([1, 2, 1, 2]);
      expect(counts(1)).toMatchObject({ active: 2, inactive: 0 });
      expect(counts(2)).toMatchObject({ active: 2, inactive: 0 });
      // The daemon reads the table with BPF_MAP_LOOKUP_BATCH: the same entries as a key walk.
      const batch = readConnections(d.maps.conns).map((c) => `${c.key.sport} ${c.value.dest_id} ${c.value.state}`).sort();
      const walk = d.maps.connections().map((c) => `${c.key.sport} ${c.value.dest_id} ${c.value.state}`).sort();
      expect(batch).toHaveLength(4);
      expect(batch).toEqual(walk);
      ran++;
    });

    it("the daemon's corrections count: active_adj removes connections that expired silently", () => {
      service('lc', [{ n: 1, active: 5 }, { n: 2, active: 3 }]);
      expect(syn()).toBe(2);
      const s = sm.getDestSched(rs(1).id);
      sm.putDestSched(rs(1).id, { ...s, active_adj: -4 });
      expect(syn()).toBe(1);
    });
  });

  describe('thresholds (-x upper, -y lower), as IP_VS_DEST_F_OVERLOAD', () => {
    it('reaching the upper threshold overloads; it stays until below 3/4 of it (no lower)', () => {
      service('lc', [{ n: 1, upper: 2 }, { n: 2 }]);
      expect(syn()).toBe(1); // 1: 1 conn
      expect(syn()).toBe(2); // 1 has one connection, 2 none
      expect(counts(1).overload).toBe(0);
      expect(syn()).toBe(1); // a tie: the first; 1 reaches 2 connections, its upper threshold
      expect(counts(1).overload).toBe(1);
      expect(syn()).toBe(2);
      expect(syn()).toBe(2); // 1 is skipped: 2 has more connections than 1 now
      // Two of 1's connections end silently (the daemon's correction): 0 < 2 * 3/4, the flag goes.
      sm.putDestSched(rs(1).id, { ...sm.getDestSched(rs(1).id), inactive_adj: -2 });
      expect(syn()).toBe(1);
    });
    it('with a lower threshold, overloaded until the total falls below it', () => {
      service('wlc', [{ n: 1, upper: 4, lower: 2, inactive: 3, overloaded: true }, { n: 2, inactive: 50 }]);
      expect(syn()).toBe(2);
      sm.putDestSched(rs(1).id, { ...sm.getDestSched(rs(1).id), inactive_adj: -1 }); // total 2: not below 2
      expect(syn()).toBe(2);
      sm.putDestSched(rs(1).id, { ...sm.getDestSched(rs(1).id), inactive_adj: -2 }); // total 1
      expect(syn()).toBe(1);
      expect(counts(1).overload).toBe(0);
    });
    it('a new epoch (thresholds raised or removed with -e) clears the flag', () => {
      service('wlc', [{ n: 1, upper: 4, inactive: 4, overloaded: true }, { n: 2, inactive: 50 }]);
      expect(syn()).toBe(2);
      sm.putDestSched(rs(1).id, { ...sm.getDestSched(rs(1).id), u_threshold: 8, epoch: 2 });
      expect(syn()).toBe(1);
    });
    it('rr and wrr skip an overloaded server when the service has thresholds', () => {
      service('rr', [{ n: 1, upper: 1, overloaded: true, inactive: 1 }, { n: 2 }], { flags: SVC_F_THRESHOLDS });
      expect([syn(), syn(), syn()]).toEqual([2, 2, 2]);
    });
  });

  describe('sh and dh tables, sh/mh fallback', () => {
    it('sh without fallback: a client hashed to a weight-0 server gets nothing; with sh-fallback the next entry', () => {
      service('sh', [{ n: 1, weight: 0 }, { n: 2 }]);
      // Find a client that hashes to entry 0 (server 1) and one to entry 1.
      const to: Record<string, string> = {};
      for (let i = 1; i < 64 && Object.keys(to).length < 2; i++) {
        const src = `198.18.5.${i}`;
        const r = syn({ src });
        to[String(r)] ??= src;
      }
      expect(Object.keys(to).sort()).toEqual(['2', 'DROP drop_no_dest']);
      service('sh', [{ n: 1, weight: 0 }, { n: 2 }], { flags: SVC_F_FALLBACK });
      expect(syn({ src: to['DROP drop_no_dest'] })).toBe(2);
      expect(syn({ src: to['2'] })).toBe(2);
    });

    it('dh refuses an overloaded server, even with the fallback flag', () => {
      service('dh', [{ n: 1, upper: 1, inactive: 1, overloaded: true }], { flags: SVC_F_FALLBACK });
      expect(syn()).toBe('DROP drop_no_dest');
    });

    it('mh-fallback walks on from an overloaded server', () => {
      service('mh', [{ n: 1, upper: 1, inactive: 1, overloaded: true }, { n: 2 }], {
        flags: SVC_F_THRESHOLDS | SVC_F_FALLBACK,
        table: [101, 101, 101, 101, 102, 101, 101],
      });
      for (let i = 0; i < 8; i++) expect(syn({ src: `198.18.6.${i + 1}` })).toBe(2);
      service('mh', [{ n: 1, upper: 1, inactive: 1, overloaded: true }, { n: 2 }], {
        flags: SVC_F_THRESHOLDS,
        table: [101, 101, 101, 101, 101, 101, 101],
      });
      expect(syn()).toBe('DROP drop_no_dest');
    });
  });

  describe('lblc: one real server per destination address', () => {
    const dst = (i: number) => `198.18.8.${i}`;
    function prefixService(sched: string, servers: Server[]): void {
      service(sched, servers, { vip: '198.18.8.0', port: 80 });
      // A /24 service: its record in svc_prefix, announced in svc_wild.
      const svc = d.maps.getService({ addr: ip16('198.18.8.0'), port: 80, proto: IPPROTO_TCP, family: AF_INET })!;
      d.maps.deleteService({ addr: ip16('198.18.8.0'), port: 80, proto: IPPROTO_TCP, family: AF_INET });
      sm.putPrefixService({ prefixlen: 32 + 24, family: AF_INET, proto: IPPROTO_TCP, port: 80, addr: ip16('198.18.8.0') }, svc);
      sm.setWild({ port0: 0, prefixes: 1 });
    }

    it('keeps a destination on its server while it is not overloaded, then moves it to the least loaded', () => {
      prefixService('lblc', [{ n: 1, weight: 2 }, { n: 2, weight: 2 }]);
      expect(syn({ dst: dst(7) })).toBe(1);
      // Locality beats load: 1 is busier now, but not beyond its weight.
      sm.putDestConns(rs(1).id, { active: 2, inactive: 0, overload: 0 });
      expect(syn({ dst: dst(7) })).toBe(1);
      // Another destination goes to the least loaded.
      expect(syn({ dst: dst(8) })).toBe(2);
      // 1 above its weight while 2 is under half of its: dst 7 moves to 2, and stays there.
      sm.putDestConns(rs(1).id, { active: 3, inactive: 0, overload: 0 });
      expect(syn({ dst: dst(7) })).toBe(2);
      sm.putDestConns(rs(1).id, { active: 0, inactive: 0, overload: 0 });
      expect(syn({ dst: dst(7) })).toBe(2);
    });

    it('a server above its weight keeps its destinations while nobody is under half', () => {
      prefixService('lblc', [{ n: 1, weight: 2 }, { n: 2, weight: 2 }]);
      expect(syn({ dst: dst(9) })).toBe(1);
      sm.putDestConns(rs(1).id, { active: 5, inactive: 0, overload: 0 });
      sm.putDestConns(rs(2).id, { active: 1, inactive: 0, overload: 0 }); // 1 * 2 < 2 is false
      expect(syn({ dst: dst(9) })).toBe(1);
    });

    it('a removed (unavailable) server loses its destinations', () => {
      prefixService('lblc', [{ n: 1 }, { n: 2 }]);
      expect(syn({ dst: dst(10) })).toBe(1);
      sm.putDestSched(rs(1).id, { ...sm.getDestSched(rs(1).id), flags: 0 });
      expect(syn({ dst: dst(10) })).toBe(2);
    });

    it('lblcr: an overloaded set grows by the least-loaded server, and the set shares the load', () => {
      prefixService('lblcr', [{ n: 1, weight: 1 }, { n: 2, weight: 4 }, { n: 3, weight: 4, active: 3 }]);
      // wlc over all: 0/1 and 0/4 tie, the first stays.
      expect(syn({ dst: dst(11) })).toBe(1);
      // 1 above its weight while 2 is under half of its: the set {1} gets the least loaded, 2.
      sm.putDestConns(rs(1).id, { active: 2, inactive: 0, overload: 0 });
      expect(syn({ dst: dst(11) })).toBe(2);
      // The least loaded member of {2, 1} takes it: 2 (1/4 against 512/1).
      expect(syn({ dst: dst(11) })).toBe(2);
      // Now 2 is the busier member (1280/4 against 256/1): 1 takes it, and 3, idle but never in the set, does not.
      sm.putDestConns(rs(1).id, { active: 1, inactive: 0, overload: 0 });
      sm.putDestConns(rs(2).id, { active: 5, inactive: 0, overload: 0 });
      sm.putDestConns(rs(3).id, { active: 0, inactive: 0, overload: 0 });
      expect(syn({ dst: dst(11) })).toBe(1);
      const entry = sm.lblcEntries().find((e) => e.key.addr.equals(ip16(dst(11))))!;
      expect(entry.value.dest_id.slice(0, entry.value.size)).toEqual([rs(2).id, rs(1).id]);
    });
  });

  describe('service lookup after an exact miss', () => {
    it('the longest VIP prefix wins; outside every prefix nothing matches', () => {
      service('rr', [{ n: 1 }], { id: 1, vip: '198.18.0.0', port: 80 });
      service('rr', [{ n: 2 }], { id: 2, vip: '198.18.9.0', port: 80 });
      for (const [id, vip, len] of [[1, '198.18.0.0', 16], [2, '198.18.9.0', 24]] as const) {
        const svc = d.maps.getService({ addr: ip16(vip), port: 80, proto: IPPROTO_TCP, family: AF_INET })!;
        d.maps.deleteService({ addr: ip16(vip), port: 80, proto: IPPROTO_TCP, family: AF_INET });
        sm.putPrefixService({ prefixlen: 32 + len, family: AF_INET, proto: IPPROTO_TCP, port: 80, addr: ip16(vip) }, { ...svc, id });
      }
      sm.setWild({ port0: 0, prefixes: 2 });
      expect(syn({ dst: '198.18.9.200' })).toBe(2);
      expect(syn({ dst: '198.18.10.1' })).toBe(1);
      expect(syn({ dst: '198.19.9.1' })).toBe('PASS pass_no_service');
      expect(syn({ dst: '198.18.9.200', dport: 81 })).toBe('PASS pass_no_service');
      // svc_wild says no prefix service: not even looked up.
      sm.setWild({ port0: 0, prefixes: 0 });
      expect(syn({ dst: '198.18.9.200' })).toBe('PASS pass_no_service');
    });

    it('IPv6 prefixes never match IPv4 packets and the reverse', () => {
      service('rr', [{ n: 1 }], { id: 1, vip: '198.18.0.0' });
      const svc = d.maps.getService({ addr: ip16('198.18.0.0'), port: 80, proto: IPPROTO_TCP, family: AF_INET })!;
      sm.putPrefixService({ prefixlen: 32 + 0, family: AF_INET6, proto: IPPROTO_TCP, port: 80, addr: ip16('::') }, svc);
      d.maps.deleteService({ addr: ip16('198.18.0.0'), port: 80, proto: IPPROTO_TCP, family: AF_INET });
      sm.setWild({ port0: 0, prefixes: 1 });
      expect(syn({ dst: '198.18.0.1' })).toBe('PASS pass_no_service');
      expect(AF_INET6).toBe(10);
    });

    it('a port-0 service takes every port of its VIP; an exact port service wins over it', () => {
      service('rr', [{ n: 1 }], { id: 1, port: 0 });
      service('rr', [{ n: 2 }], { id: 2, port: 443 });
      sm.setWild({ port0: 1, prefixes: 0 });
      expect(syn({ dport: 8080 })).toBe(1);
      expect(syn({ dport: 443 })).toBe(2);
      sm.setWild({ port0: 0, prefixes: 0 });
      expect(syn({ dport: 8080 })).toBe('PASS pass_no_service');
    });
  });

  it('ran the scheduler fixtures', () => {
    expect(ran).toBeGreaterThan(40);
    expect(expectRun).toBeTypeOf('function');
  });
});

afterAll(() => {
  if (mustRun && ran === 0) throw new Error('no scheduler fixture ran');
});
