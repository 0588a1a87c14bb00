// Frames for other hosts (bpf/host.h): a promiscuous port or a flooding bridge hands XDP unicast frames for other
// MACs; the kernel would drop them, IPVS never sees them, and the director must not balance them (a second
// director on the segment would otherwise forward the other's traffic again). Needs root (BPF_PROG_TEST_RUN).

import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';

import { macFromText } from '../../src/net/iproute.js';
import { Director, expectRun, isRoot, mustRun } from '../../src/testing/harness.js';
import { TCP_FLAGS, flowPacket, type FlowPacketOpts } from '../../src/testing/packets.js';

const DIRECTOR_MAC = '02:00:00:00:d1:00';
const OTHER_DIRECTOR_MAC = '02:00:00:00:d2:00';
const CLIENT_MAC = '02:00:00:00:c1:00';
const RS_MAC = '02:00:00:00:a0:01';
const VIP = '198.18.1.1';
/** The frames arrive on lo: BPF_PROG_TEST_RUN wants an existing device, and lo is ifindex 1 in every namespace. */
const LO = 1;

const syn = { src: '198.18.0.10', dst: VIP, proto: 'tcp', sport: 47000, dport: 80, flags: TCP_FLAGS.SYN } as const;
const frame = (ethDst: string, o: Omit<FlowPacketOpts, 'ethSrc' | 'ethDst'> = syn): Buffer => flowPacket({ ethSrc: CLIENT_MAC, ethDst, ...o });

describe.skipIf(!mustRun)('frames for other hosts', () => {
  let d: Director;

  beforeAll(() => {
    if (!isRoot) throw new Error('datapath tests need root (BPF_PROG_TEST_RUN); CI is set, so this fails instead of skipping');
  });
  beforeEach(() => {
    d = Director.load(DIRECTOR_MAC);
    d.addService({ id: 0, vip: VIP, port: 80, proto: 'tcp', servers: [{ id: 1, addr: '198.18.2.1', mac: RS_MAC }] });
    d.maps.setInterfaceMacs([{ ifindex: LO, mac: macFromText(DIRECTOR_MAC) }]);
  });
  afterEach(() => {
    d?.close();
  });

  it('a SYN to the VIP sent to another director\'s MAC is left to the kernel, and no connection is made', () => {
    const other = frame(OTHER_DIRECTOR_MAC);
    expectRun('to the other director', other, d.run(other, { ingress: LO }), 'PASS', other, 'pass_other_host');
    // Had it been balanced, the flow's next packet would find a connection; it is a new flow for this director.
    const ack = frame(OTHER_DIRECTOR_MAC, { ...syn, flags: TCP_FLAGS.ACK });
    expect(d.run(ack, { ingress: LO }).reasons).toEqual({ pass_other_host: 1 });
    expect(d.maps.conns.keys()).toHaveLength(0);
  });

  it('frames to its own MAC, to a group address and to a VRRP virtual MAC are balanced', () => {
    for (const mac of [DIRECTOR_MAC, 'ff:ff:ff:ff:ff:ff', '00:00:5e:00:01:33']) {
      const r = d.run(frame(mac, { ...syn, sport: 47100 + mac.length }), { ingress: LO });
      expect({ mac, verdict: r.verdict, reasons: r.reasons }).toEqual({ mac, verdict: 'TX', reasons: { fwd_tx: 1 } });
    }
  });

  it('an interface the daemon did not list, or an empty list, is not filtered', () => {
    const other = frame(OTHER_DIRECTOR_MAC);
    d.maps.setInterfaceMacs([{ ifindex: 999_999, mac: macFromText(DIRECTOR_MAC) }]);
    expect(d.run(other, { ingress: LO }).reasons).toEqual({ fwd_tx: 1 });
    d.maps.setInterfaceMacs([]);
    expect(d.run(frame(OTHER_DIRECTOR_MAC, { ...syn, sport: 47001 }), { ingress: LO }).reasons).toEqual({ fwd_tx: 1 });
  });
});
