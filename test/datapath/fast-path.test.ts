// The established flow's path without a service lookup (bpf/conn.h conn_known, bpf/service.h service_gate) gives
// the answers the full lookup gives: a flow whose service was removed, or whose VIP:port now names another service,
// is not followed; a change elsewhere leaves it where it is. And the filter the daemon writes lets every service's
// packets in (IPv4, IPv6, TCP, UDP), while packets for no service pass. Needs root (BPF_PROG_TEST_RUN).

import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';

import { IPPROTO_TCP } from '../../src/maps/structs.js';
import { Director, expectRun, ip16, isRoot, mustRun, type ServiceSetup } from '../../src/testing/harness.js';
import { TCP_FLAGS, flowPacket, type FlowPacketOpts } from '../../src/testing/packets.js';

const DIRECTOR_MAC = '02:00:00:00:d1:00';
const CLIENT_MAC = '02:00:00:00:c1:00';
const MAC_A = '02:00:00:00:a0:01';
const MAC_B = '02:00:00:00:b0:02';
const VIP4 = '198.18.1.1';
const SYN = TCP_FLAGS.SYN;
const ACK = TCP_FLAGS.ACK;

const fromClient = (o: Omit<FlowPacketOpts, 'ethSrc' | 'ethDst'>): Buffer => flowPacket({ ethSrc: CLIENT_MAC, ethDst: DIRECTOR_MAC, ...o });
const toServer = (mac: string, o: Omit<FlowPacketOpts, 'ethSrc' | 'ethDst'>): Buffer => flowPacket({ ethSrc: DIRECTOR_MAC, ethDst: mac, ...o });

const web = (id: number, mac: string, destId: number): ServiceSetup => ({
  id,
  vip: VIP4,
  port: 80,
  proto: 'tcp',
  servers: [{ id: destId, addr: `198.18.2.${destId}`, mac }],
});
const webKey = { addr: ip16(VIP4), port: 80, proto: IPPROTO_TCP, family: 2 };

describe.skipIf(!mustRun)('established flows without a service lookup', () => {
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

  /** Opens the flow on `sport` and sends it one ACK (its established packets take the short path from then on). */
  function established(sport: number): Omit<FlowPacketOpts, 'ethSrc' | 'ethDst'> {
    const flow = { src: '198.18.0.10', dst: VIP4, proto: 'tcp', sport, dport: 80 } as const;
    expect(d.run(fromClient({ ...flow, flags: SYN })).verdict).toBe('TX');
    const ack = { ...flow, flags: ACK, payload: Buffer.from('data') };
    expectRun('established', fromClient(ack), d.run(fromClient(ack)), 'TX', toServer(MAC_A, ack), 'fwd_tx');
    expectRun('established, again', fromClient(ack), d.run(fromClient(ack)), 'TX', toServer(MAC_A, ack), 'fwd_tx');
    return ack;
  }

  it('a flow whose service was removed passes as not for a service', () => {
    d.addService(web(0, MAC_A, 1));
    const ack = established(46000);
    d.maps.deleteService(webKey);
    expectRun('after the service left', fromClient(ack), d.run(fromClient(ack)), 'PASS', fromClient(ack), 'pass_no_service');
  });

  it('a flow whose VIP:port now names another service is not followed to the old one\'s real server', () => {
    d.addService(web(0, MAC_A, 1));
    const ack = established(46100);
    // Removed and added again under another id with another real server; the old destination slot still holds A
    // (a removed real server's slot stays while its connections drain).
    d.maps.deleteService(webKey);
    d.addService(web(1, MAC_B, 2));
    expectRun('old flow, new service', fromClient(ack), d.run(fromClient(ack)), 'PASS', fromClient(ack), 'pass_tcp_not_syn');
    const syn = { ...ack, flags: SYN, payload: undefined };
    expectRun('the flow opened again', fromClient(syn), d.run(fromClient(syn)), 'TX', toServer(MAC_B, syn), 'fwd_tx');
    expectRun('and established there', fromClient(ack), d.run(fromClient(ack)), 'TX', toServer(MAC_B, ack), 'fwd_tx');
  });

  it('a flow stays on its real server when other services come and go', () => {
    d.addService(web(0, MAC_A, 1));
    const ack = established(46200);
    const other: ServiceSetup = { id: 1, vip: '198.18.1.2', port: 80, proto: 'tcp', servers: [{ id: 2, addr: '198.18.2.2', mac: MAC_B }] };
    d.addService(other);
    expectRun('after a service was added', fromClient(ack), d.run(fromClient(ack)), 'TX', toServer(MAC_A, ack), 'fwd_tx');
    d.maps.deleteService({ addr: ip16('198.18.1.2'), port: 80, proto: IPPROTO_TCP, family: 2 });
    expectRun('after it was removed', fromClient(ack), d.run(fromClient(ack)), 'TX', toServer(MAC_A, ack), 'fwd_tx');
    expectRun('and on the short path again', fromClient(ack), d.run(fromClient(ack)), 'TX', toServer(MAC_A, ack), 'fwd_tx');
  });

  it('the filter lets the packets of IPv4 and IPv6, TCP and UDP services in; others pass', () => {
    const services: ServiceSetup[] = [
      { id: 0, vip: '198.18.1.7', port: 443, proto: 'tcp', servers: [{ id: 1, addr: '198.18.2.1', mac: MAC_A }] },
      { id: 1, vip: '198.18.1.7', port: 53, proto: 'udp', servers: [{ id: 2, addr: '198.18.2.2', mac: MAC_A }] },
      { id: 2, vip: 'fd00:1::7', port: 443, proto: 'tcp', servers: [{ id: 3, addr: 'fd00:3::1', mac: MAC_A }] },
      { id: 3, vip: 'fd00:1::7', port: 53, proto: 'udp', servers: [{ id: 4, addr: 'fd00:3::2', mac: MAC_A }] },
    ];
    for (const s of services) d.addService(s);
    for (const s of services) {
      const src = s.vip.includes(':') ? 'fd00:2::10' : '198.18.0.10';
      const o = { src, dst: s.vip, proto: s.proto, sport: 47000, dport: s.port, ...(s.proto === 'tcp' ? { flags: SYN } : { payload: Buffer.from('q') }) };
      expectRun(`${s.proto} ${s.vip}:${s.port}`, fromClient(o), d.run(fromClient(o)), 'TX', toServer(MAC_A, o), 'fwd_tx');
      // The same VIP on a port, and the same port on an address, that no service has.
      for (const miss of [{ ...o, dport: s.port + 1 }, { ...o, dst: s.vip.includes(':') ? 'fd00:1::8' : '198.18.1.8' }]) {
        expectRun(`${s.proto} ${miss.dst}:${miss.dport}`, fromClient(miss), d.run(fromClient(miss)), 'PASS', fromClient(miss), 'pass_no_service');
      }
    }
  });
});
