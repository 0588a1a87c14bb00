// The packet builder itself, against published bytes and its own checksums (no privileges needed).

import { describe, expect, it } from 'vitest';

import { ETH_P_IP, IPPROTO_TCP, IPPROTO_UDP, TCP_FLAGS, ethernet, flowPacket, inetChecksum, ipv4, ipv6, tcp, udp } from '../../src/testing/packets.js';

describe('packet builder', () => {
  it('builds the IPv4 header of the Wikipedia checksum example byte for byte (checksum 0xb861)', () => {
    const h = ipv4({ src: '192.168.0.1', dst: '192.168.0.199', proto: IPPROTO_UDP, id: 0, dontFragment: true, ttl: 64 }, Buffer.alloc(0x73 - 20));
    expect(h.subarray(0, 20).toString('hex')).toBe('450000730000400040 11b861c0a80001c0a800c7'.replace(/ /g, ''));
  });

  it('pads IPv4 options to whole words and sets IHL', () => {
    const h = ipv4({ src: '198.18.0.1', dst: '198.18.0.2', proto: IPPROTO_TCP, options: Buffer.from([0x94, 0x04, 0x00]) }, Buffer.alloc(0));
    expect(h[0]).toBe(0x46);
    expect(h.length).toBe(24);
    expect(inetChecksum(h)).toBe(0);
  });

  it('gives TCP and UDP checksums that verify over the pseudo-header, IPv4 and IPv6', () => {
    for (const [src, dst] of [
      ['198.18.0.10', '198.18.1.1'],
      ['fd00:2::10', 'fd00:1::1'],
    ]) {
      const v6 = src.includes(':');
      const seg = tcp(src, dst, { sport: 1234, dport: 80, flags: TCP_FLAGS.SYN, payload: Buffer.from('odd') });
      const dgram = udp(src, dst, { sport: 1234, dport: 53, payload: Buffer.from('abcd') });
      for (const [l4, proto] of [
        [seg, IPPROTO_TCP],
        [dgram, IPPROTO_UDP],
      ] as const) {
        const pkt = v6 ? ipv6({ src, dst, nextHeader: proto }, l4) : ipv4({ src, dst, proto }, l4);
        const l3len = v6 ? 40 : 20;
        const addrs = v6 ? pkt.subarray(8, 40) : pkt.subarray(12, 20);
        const pseudo = Buffer.alloc(v6 ? 8 : 4);
        if (v6) {
          pseudo.writeUInt32BE(l4.length, 0);
          pseudo[7] = proto;
        } else {
          pseudo[1] = proto;
          pseudo.writeUInt16BE(l4.length, 2);
        }
        expect(inetChecksum(addrs, pseudo, pkt.subarray(l3len))).toBe(0);
      }
    }
  });

  it('puts one 802.1Q tag between the MACs and the EtherType', () => {
    const f = ethernet({ dst: '02:00:00:00:00:01', src: '02:00:00:00:00:02', vlan: 100, type: ETH_P_IP }, Buffer.alloc(0));
    expect(f.toString('hex')).toBe('020000000001' + '020000000002' + '81000064' + '0800');
  });

  it('builds whole IPv4 and IPv6 frames of the expected length', () => {
    const o = { ethSrc: '02:00:00:00:00:02', ethDst: '02:00:00:00:00:01', proto: 'tcp', sport: 1, dport: 2 } as const;
    expect(flowPacket({ ...o, src: '198.18.0.1', dst: '198.18.0.2' }).length).toBe(14 + 20 + 20);
    expect(flowPacket({ ...o, src: 'fd00::1', dst: 'fd00::2', vlan: 3 }).length).toBe(18 + 40 + 20);
  });
});
