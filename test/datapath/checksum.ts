// Checksums recomputed from scratch for the NAT fixtures: the frame is parsed on its own (Ethernet, one optional
// 802.1Q tag, IPv4 with options or IPv6, TCP or UDP) and every checksum summed anew over its bytes, independently of
// the packet builder (src/testing/packets.ts) and of the program's incremental updates.

/** RFC 1071: the ones' complement of the ones' complement sum of the 16-bit words of `parts`, concatenated. */
export function fullChecksum(...parts: Buffer[]): number {
  const all = Buffer.concat(parts);
  let sum = 0;
  for (let i = 0; i < all.length; i += 2) {
    const hi = all[i]!;
    const lo = i + 1 < all.length ? all[i + 1]! : 0; // an odd last byte is padded with a zero byte
    sum += (hi << 8) | lo;
    if (sum > 0xffff) sum = (sum & 0xffff) + 1; // end-around carry, word by word
  }
  return ~sum & 0xffff;
}

export interface ChecksumReport {
  /** IPv4 header checksum: as stored and as recomputed (absent for IPv6). */
  ipHeader?: { stored: number; computed: number };
  /** TCP/UDP checksum over the pseudo-header and the segment: stored and recomputed ("none": IPv4 UDP with 0). */
  l4: { proto: 'tcp' | 'udp'; stored: number; computed: number | 'none' };
}

/** Parses a frame and recomputes its checksums. Throws on a frame it cannot parse. */
export function recomputeChecksums(frame: Buffer): ChecksumReport {
  let off = 12;
  let type = frame.readUInt16BE(off);
  off += 2;
  if (type === 0x8100 || type === 0x88a8) {
    type = frame.readUInt16BE(off + 2);
    off += 4;
  }
  let proto: number;
  let l4: Buffer;
  let pseudo: Buffer;
  const report: Partial<ChecksumReport> = {};
  if (type === 0x0800) {
    const ihl = (frame[off]! & 0x0f) * 4;
    const total = frame.readUInt16BE(off + 2);
    const hdr = Buffer.from(frame.subarray(off, off + ihl));
    const stored = hdr.readUInt16BE(10);
    hdr.writeUInt16BE(0, 10);
    report.ipHeader = { stored, computed: fullChecksum(hdr) };
    proto = frame[off + 9]!;
    l4 = Buffer.from(frame.subarray(off + ihl, off + total));
    pseudo = Buffer.alloc(12);
    frame.copy(pseudo, 0, off + 12, off + 20); // source and destination
    pseudo[9] = proto;
    pseudo.writeUInt16BE(l4.length, 10);
  } else if (type === 0x86dd) {
    const plen = frame.readUInt16BE(off + 4);
    proto = frame[off + 6]!;
    l4 = Buffer.from(frame.subarray(off + 40, off + 40 + plen));
    pseudo = Buffer.alloc(40);
    frame.copy(pseudo, 0, off + 8, off + 40); // source and destination
    pseudo.writeUInt32BE(l4.length, 32);
    pseudo[39] = proto;
  } else {
    throw new Error(`recomputeChecksums: EtherType 0x${type.toString(16)} is neither IPv4 nor IPv6`);
  }
  if (proto === 6) {
    const stored = l4.readUInt16BE(16);
    l4.writeUInt16BE(0, 16);
    report.l4 = { proto: 'tcp', stored, computed: fullChecksum(pseudo, l4) };
  } else if (proto === 17) {
    const stored = l4.readUInt16BE(6);
    if (stored === 0 && type === 0x0800) {
      report.l4 = { proto: 'udp', stored, computed: 'none' };
    } else {
      l4.writeUInt16BE(0, 6);
      const c = fullChecksum(pseudo, l4);
      // RFC 768: a computed 0 is transmitted as all ones.
      report.l4 = { proto: 'udp', stored, computed: c === 0 ? 0xffff : c };
    }
  } else {
    throw new Error(`recomputeChecksums: IP protocol ${proto} is neither TCP nor UDP`);
  }
  return report as ChecksumReport;
}

/** Throws unless every checksum of the frame is what a from-scratch computation gives. */
export function expectChecksumsValid(label: string, frame: Buffer): ChecksumReport {
  const r = recomputeChecksums(frame);
  const bad: string[] = [];
  const hex = (n: number) => `0x${n.toString(16).padStart(4, '0')}`;
  if (r.ipHeader && r.ipHeader.stored !== r.ipHeader.computed) bad.push(`IPv4 header checksum ${hex(r.ipHeader.stored)}, recomputed ${hex(r.ipHeader.computed)}`);
  if (r.l4.computed !== 'none' && r.l4.stored !== r.l4.computed) bad.push(`${r.l4.proto} checksum ${hex(r.l4.stored)}, recomputed ${hex(r.l4.computed)}`);
  if (bad.length) throw new Error(`${label}: ${bad.join('; ')}`);
  return r;
}
