// Persistence templates in the real XDP program (BPF_PROG_TEST_RUN): a client's new connections follow its template
// across the scheduler, clients under one netmask share it, a template expires, a removed server voids it, and a
// live connection's packets extend it. Needs root.

import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';

import { prefixToNetmask, parseAddress } from '../../src/lb/address.js';
import { SchedMaps } from '../../src/maps/sched-maps.js';
import { DS_F_AVAILABLE } from '../../src/maps/sched-structs.js';
import { AF_INET, AF_INET6, SVC_F_PERSIST } from '../../src/maps/structs.js';
import { Director, ip16, isRoot, mustRun, type RealServer } from '../../src/testing/harness.js';
import { TCP_FLAGS, flowPacket, type FlowPacketOpts } from '../../src/testing/packets.js';

const DIRECTOR_MAC = '02:00:00:00:d3:00';
const CLIENT_MAC = '02:00:00:00:c3:00';
const VIP = '198.18.1.1';
const VIP6 = 'fd00:1::1';

function rs(n: number, v6 = false): RealServer {
  return { id: 200 + n, addr: v6 ? `fd00:2::${n}` : `198.18.2.${n}`, mac: `02:00:00:00:0b:${n.toString(16).padStart(2, '0')}` };
}

type Pkt = Omit<FlowPacketOpts, 'ethSrc' | 'ethDst'>;

let ran = 0;

describe.skipIf(!mustRun)('persistence templates (BPF_PROG_TEST_RUN)', () => {
  let d: Director;
  let sm: SchedMaps;
  let sport = 40000;

  beforeAll(() => {
    if (!isRoot) throw new Error('datapath tests need root (BPF_PROG_TEST_RUN); CI is set, so this fails instead of skipping');
  });
  beforeEach(() => {
    d = Director.load(DIRECTOR_MAC, 'xdpvs_test_persist');
    sm = new SchedMaps(d.maps.backend);
  });
  afterEach(() => {
    d?.close();
  });

  /** An rr service over three servers, persistent for `timeout` seconds with a netmask of `prefix` bits. */
  function service(timeout: number, prefix: number, v6 = false): void {
    const servers = [1, 2, 3].map((n) => rs(n, v6));
    for (const s of servers) {
      sm.putDestSched(s.id, { weight: 1, u_threshold: 0, l_threshold: 0, epoch: 1, active_adj: 0, inactive_adj: 0, flags: DS_F_AVAILABLE });
    }
    const mask = Buffer.alloc(16);
    Buffer.from(prefixToNetmask(prefix, v6 ? 'inet6' : 'inet').bytes).copy(mask);
    sm.putSvcPersist(0, { timeout, mask });
    d.addService({ id: 0, vip: v6 ? VIP6 : VIP, port: 80, proto: 'tcp', sched: 0, flags: SVC_F_PERSIST, servers });
  }

  /** A SYN from `src` on a new port: the server number it went to. */
  function connect(src: string, o: Partial<Pkt> = {}): number {
    const v6 = src.includes(':');
    const got = d.run(flowPacket({ ethSrc: CLIENT_MAC, ethDst: DIRECTOR_MAC, src, dst: v6 ? VIP6 : VIP, proto: 'tcp', sport: sport++, dport: 80, flags: TCP_FLAGS.SYN, ...o }));
    ran++;
    expect(got.verdict, JSON.stringify(got.reasons)).toBe('TX');
    return got.out[5];
  }

  function templates() {
    return sm.persistEntries();
  }

  it('a client keeps its real server across new connections while rr moves on for others', () => {
    service(300, 32);
    const first = connect('198.18.0.10');
    for (let i = 0; i < 5; i++) expect(connect('198.18.0.10')).toBe(first);
    // Another client gets the next server of the round robin, and keeps it too.
    const second = connect('198.18.0.11');
    expect(second).not.toBe(first);
    for (let i = 0; i < 3; i++) expect(connect('198.18.0.11')).toBe(second);
    expect(templates()).toHaveLength(2);
  });

  it('clients under one netmask share a template; outside it they do not', () => {
    service(300, 24);
    const a = connect('198.18.0.10');
    expect(connect('198.18.0.200')).toBe(a);
    expect(connect('198.18.7.10')).not.toBe(a);
    const t = templates().map((e) => parseAddress(`${e.key.addr[0]}.${e.key.addr[1]}.${e.key.addr[2]}.${e.key.addr[3]}`).text).sort();
    expect(t).toEqual(['198.18.0.0', '198.18.7.0']);
  });

  it('IPv6 clients under a /64 share one', () => {
    service(300, 64, true);
    const a = connect('fd00:5::10');
    expect(connect('fd00:5::ffff:1')).toBe(a);
    expect(connect('fd00:6::10')).not.toBe(a);
    expect(templates().every((e) => e.key.family === AF_INET6)).toBe(true);
  });

  it('the template lives `timeout` seconds from its last new connection; an expired one is replaced', () => {
    service(60, 32);
    const a = connect('198.18.0.10');
    const [t] = templates();
    const left = (t.value.expires_ns - Number(process.hrtime.bigint())) / 1e9;
    expect(left).toBeGreaterThan(55);
    expect(left).toBeLessThanOrEqual(60);
    // Expire it as time would: the next connection is scheduled again (rr: the next server) and the template moves.
    sm.putPersist(t.key, { ...t.value, expires_ns: t.value.expires_ns - 61e9 });
    const b = connect('198.18.0.10');
    expect(b).not.toBe(a);
    expect(templates()[0].value.dest_id).toBe(200 + b);
    expect(connect('198.18.0.10')).toBe(b);
  });

  it('a new connection through a template extends it', () => {
    service(60, 32);
    connect('198.18.0.10');
    const [t] = templates();
    sm.putPersist(t.key, { ...t.value, expires_ns: t.value.expires_ns - 30e9 });
    connect('198.18.0.10');
    const left = (templates()[0].value.expires_ns - Number(process.hrtime.bigint())) / 1e9;
    expect(left).toBeGreaterThan(55);
  });

  it("a live connection's packets extend the template (on the connection's once-a-second refresh)", () => {
    service(60, 32);
    const flow = { src: '198.18.0.10', dst: VIP, proto: 'tcp' as const, sport: 45000, dport: 80 };
    d.run(flowPacket({ ethSrc: CLIENT_MAC, ethDst: DIRECTOR_MAC, ...flow, flags: TCP_FLAGS.SYN }));
    const [t] = templates();
    sm.putPersist(t.key, { ...t.value, expires_ns: t.value.expires_ns - 30e9 });
    // The ACK changes the state (SYN_RECV -> ESTABLISHED): the entry is rewritten and the template touched.
    d.run(flowPacket({ ethSrc: CLIENT_MAC, ethDst: DIRECTOR_MAC, ...flow, flags: TCP_FLAGS.ACK }));
    const left = (templates()[0].value.expires_ns - Number(process.hrtime.bigint())) / 1e9;
    expect(left).toBeGreaterThan(55);
    ran++;
  });

  it('a removed real server voids its templates; one at weight 0 keeps them (IPVS default)', () => {
    service(300, 32);
    const a = connect('198.18.0.10');
    const id = 200 + a;
    sm.putDestSched(id, { ...sm.getDestSched(id), weight: 0 });
    expect(connect('198.18.0.10')).toBe(a);
    sm.putDestSched(id, { ...sm.getDestSched(id), flags: 0 });
    expect(connect('198.18.0.10')).not.toBe(a);
  });

  it('without the service flag, no template is made', () => {
    service(300, 32);
    const svc = d.maps.getService({ addr: ip16(VIP), port: 80, proto: 6, family: AF_INET })!;
    d.maps.putService({ addr: ip16(VIP), port: 80, proto: 6, family: AF_INET }, { ...svc, flags: 0 });
    const seen = [connect('198.18.0.10'), connect('198.18.0.10'), connect('198.18.0.10')];
    expect(new Set(seen).size).toBe(3);
    expect(templates()).toHaveLength(0);
  });
});

afterAll(() => {
  if (mustRun && ran === 0) throw new Error('no persistence fixture ran');
});
