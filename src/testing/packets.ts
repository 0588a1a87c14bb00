// Packet builder for the datapath fixtures and the benchmark: Ethernet (optionally one 802.1Q tag), ARP, IPv4
// (with options), IPv6, TCP and UDP, every checksum correct, plus a hex dump for mismatch messages.

import { parseAddress } from '../lb/address.js';

export const ETH_P_IP = 0x0800;
export const ETH_P_ARP = 0x0806;
export const ETH_P_8021Q = 0x8100;
export const ETH_P_IPV6 = 0x86dd;

export const IPPROTO_ICMP = 1;
export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;
export const IPPROTO_ICMPV6 = 58;

/** TCP flag bits (byte 13 of the header). */
export const TCP_FLAGS = { FIN: 0x01, SYN: 0x02, RST: 0x04, PSH: 0x08, ACK: 0x10 } as const;

/** "02:00:00:00:00:01" -> 6 bytes. */
export function macBytes(text: string): Buffer {
  const parts = text.split(':');
  if (parts.length !== 6 || parts.some((p) => !/^[0-9a-fA-F]{2}$/.test(p))) throw new Error(`bad MAC ${text}`);
  return Buffer.from(parts.map((p) => parseInt(p, 16)));
}

/** An address's bytes in network order: 4 for IPv4, 16 for IPv6. */
export function ipBytes(text: string): Buffer {
  return Buffer.from(parseAddress(text).bytes);
}

/** The Internet checksum (RFC 1071) of the concatenation of `parts`. */
export function inetChecksum(...parts: Buffer[]): number {
  const all = Buffer.concat(parts);
  let sum = 0;
  for (let i = 0; i + 1 < all.length; i += 2) sum += all.readUInt16BE(i);
  if (all.length % 2) sum += all[all.length - 1] << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

export interface EthernetOpts {
  dst: string;
  src: string;
  /** 802.1Q VLAN id: adds one tag. */
  vlan?: number;
  type: number;
}

export function ethernet(o: EthernetOpts, payload: Buffer): Buffer {
  const tag = o.vlan === undefined ? Buffer.alloc(0) : Buffer.from([ETH_P_8021Q >> 8, ETH_P_8021Q & 0xff, (o.vlan >> 8) & 0x0f, o.vlan & 0xff]);
  const type = Buffer.from([o.type >> 8, o.type & 0xff]);
  return Buffer.concat([macBytes(o.dst), macBytes(o.src), tag, type, payload]);
}

export interface Ipv4Opts {
  src: string;
  dst: string;
  proto: number;
  ttl?: number;
  id?: number;
  dontFragment?: boolean;
  moreFragments?: boolean;
  /** In 8-byte units. */
  fragOffset?: number;
  /** Raw options, padded here to a multiple of 4 bytes (IHL > 5). */
  options?: Buffer;
  /** Overrides the total length field (for inconsistent-header fixtures). */
  totalLength?: number;
}

export function ipv4(o: Ipv4Opts, payload: Buffer): Buffer {
  const opts = o.options ?? Buffer.alloc(0);
  const padded = Buffer.concat([opts, Buffer.alloc((4 - (opts.length % 4)) % 4)]);
  const hlen = 20 + padded.length;
  const h = Buffer.alloc(hlen);
  h[0] = 0x40 | (hlen / 4);
  h[1] = 0;
  h.writeUInt16BE(o.totalLength ?? hlen + payload.length, 2);
  h.writeUInt16BE(o.id ?? 1, 4);
  h.writeUInt16BE((o.dontFragment ? 0x4000 : 0) | (o.moreFragments ? 0x2000 : 0) | (o.fragOffset ?? 0), 6);
  h[8] = o.ttl ?? 64;
  h[9] = o.proto;
  ipBytes(o.src).copy(h, 12);
  ipBytes(o.dst).copy(h, 16);
  padded.copy(h, 20);
  h.writeUInt16BE(inetChecksum(h), 10);
  return Buffer.concat([h, payload]);
}

export interface Ipv6Opts {
  src: string;
  dst: string;
  nextHeader: number;
  hopLimit?: number;
}

export function ipv6(o: Ipv6Opts, payload: Buffer): Buffer {
  const h = Buffer.alloc(40);
  h.writeUInt32BE(0x60000000, 0);
  h.writeUInt16BE(payload.length, 4);
  h[6] = o.nextHeader;
  h[7] = o.hopLimit ?? 64;
  ipBytes(o.src).copy(h, 8);
  ipBytes(o.dst).copy(h, 24);
  return Buffer.concat([h, payload]);
}

/** The TCP/UDP pseudo-header of RFC 793 / RFC 8200 section 8.1. */
function pseudoHeader(src: string, dst: string, proto: number, length: number): Buffer {
  const s = ipBytes(src);
  const d = ipBytes(dst);
  if (s.length === 4) {
    const p = Buffer.alloc(12);
    s.copy(p, 0);
    d.copy(p, 4);
    p[9] = proto;
    p.writeUInt16BE(length, 10);
    return p;
  }
  const p = Buffer.alloc(40);
  s.copy(p, 0);
  d.copy(p, 16);
  p.writeUInt32BE(length, 32);
  p[39] = proto;
  return p;
}

export interface TcpOpts {
  sport: number;
  dport: number;
  flags: number;
  seq?: number;
  ack?: number;
  window?: number;
  /** Raw options, padded here to a multiple of 4 bytes. */
  options?: Buffer;
  payload?: Buffer;
}

/** A TCP segment between src and dst (their addresses enter the checksum). */
export function tcp(src: string, dst: string, o: TcpOpts): Buffer {
  const opts = o.options ?? Buffer.alloc(0);
  const padded = Buffer.concat([opts, Buffer.alloc((4 - (opts.length % 4)) % 4)]);
  const payload = o.payload ?? Buffer.alloc(0);
  const h = Buffer.alloc(20 + padded.length);
  h.writeUInt16BE(o.sport, 0);
  h.writeUInt16BE(o.dport, 2);
  h.writeUInt32BE(o.seq ?? 1000, 4);
  h.writeUInt32BE(o.ack ?? 0, 8);
  h[12] = (h.length / 4) << 4;
  h[13] = o.flags;
  h.writeUInt16BE(o.window ?? 65535, 14);
  padded.copy(h, 20);
  const seg = Buffer.concat([h, payload]);
  seg.writeUInt16BE(inetChecksum(pseudoHeader(src, dst, IPPROTO_TCP, seg.length), seg), 16);
  return seg;
}

export interface UdpOpts {
  sport: number;
  dport: number;
  payload?: Buffer;
}

/** A UDP datagram between src and dst (their addresses enter the checksum). */
export function udp(src: string, dst: string, o: UdpOpts): Buffer {
  const payload = o.payload ?? Buffer.alloc(0);
  const d = Buffer.alloc(8 + payload.length);
  d.writeUInt16BE(o.sport, 0);
  d.writeUInt16BE(o.dport, 2);
  d.writeUInt16BE(d.length, 4);
  payload.copy(d, 8);
  const sum = inetChecksum(pseudoHeader(src, dst, IPPROTO_UDP, d.length), d);
  d.writeUInt16BE(sum === 0 ? 0xffff : sum, 6);
  return d;
}

export interface ArpOpts {
  srcMac: string;
  senderIp: string;
  targetIp: string;
  vlan?: number;
}

/** A broadcast ARP who-has request. */
export function arpRequest(o: ArpOpts): Buffer {
  const a = Buffer.alloc(28);
  a.writeUInt16BE(1, 0); // Ethernet
  a.writeUInt16BE(ETH_P_IP, 2);
  a[4] = 6;
  a[5] = 4;
  a.writeUInt16BE(1, 6); // request
  macBytes(o.srcMac).copy(a, 8);
  ipBytes(o.senderIp).copy(a, 14);
  ipBytes(o.targetIp).copy(a, 24);
  return ethernet({ dst: 'ff:ff:ff:ff:ff:ff', src: o.srcMac, vlan: o.vlan, type: ETH_P_ARP }, a);
}

export interface FlowPacketOpts {
  ethSrc: string;
  ethDst: string;
  vlan?: number;
  src: string;
  dst: string;
  proto: 'tcp' | 'udp';
  sport: number;
  dport: number;
  /** TCP flags; SYN when left out. */
  flags?: number;
  ipOptions?: Buffer;
  payload?: Buffer;
}

/** One whole frame of a TCP or UDP flow, IPv4 or IPv6 by the addresses. */
export function flowPacket(o: FlowPacketOpts): Buffer {
  const v6 = ipBytes(o.src).length === 16;
  const l4 =
    o.proto === 'tcp'
      ? tcp(o.src, o.dst, { sport: o.sport, dport: o.dport, flags: o.flags ?? TCP_FLAGS.SYN, payload: o.payload })
      : udp(o.src, o.dst, { sport: o.sport, dport: o.dport, payload: o.payload });
  const proto = o.proto === 'tcp' ? IPPROTO_TCP : IPPROTO_UDP;
  const l3 = v6
    ? ipv6({ src: o.src, dst: o.dst, nextHeader: proto }, l4)
    : ipv4({ src: o.src, dst: o.dst, proto, options: o.ipOptions }, l4);
  return ethernet({ dst: o.ethDst, src: o.ethSrc, vlan: o.vlan, type: v6 ? ETH_P_IPV6 : ETH_P_IP }, l3);
}

/** 16 bytes a line, with offsets: for failure messages. */
export function hexdump(buf: Buffer): string {
  const lines: string[] = [];
  for (let i = 0; i < buf.length; i += 16) {
    const row = buf.subarray(i, i + 16);
    const hex = [...row].map((b) => b.toString(16).padStart(2, '0')).join(' ');
    lines.push(`${i.toString(16).padStart(4, '0')}  ${hex}`);
  }
  return lines.join('\n');
}
