// The sync datagram between directors: a header, up to MAX_ENTRIES connection entries, an HMAC-SHA256 over both.
// Entries name services and real servers by address, never by this director's ids (a peer's differ). docs/sync.md.

import { createHmac, timingSafeEqual } from 'node:crypto';

/** "XVSY": what a sync datagram starts with. */
export const MAGIC = 0x58565359;
export const VERSION = 1;
/** Bytes: magic u32, version u8, entries u8, reserved u16, sender u64, sequence u64, sent (ms since epoch) u64. */
export const HEADER_SIZE = 32;
export const MAC_SIZE = 32;
/** One entry; see the layout above encodeEntry. */
export const ENTRY_SIZE = 88;
/** Largest datagram: below a 1500-byte MTU with IPv6 and UDP headers, so never fragmented. */
export const MAX_DATAGRAM = 1400;
export const MAX_ENTRIES = Math.floor((MAX_DATAGRAM - HEADER_SIZE - MAC_SIZE) / ENTRY_SIZE);

/** One connection as a peer needs it. Addresses are 16 bytes (IPv4 in the first 4, the rest zero). */
export interface SyncEntry {
  /** 6 (TCP) or 17 (UDP). */
  proto: number;
  /** AF_INET (2) or AF_INET6 (10): of the flow, hence of the service. */
  family: number;
  /** The flow as it arrives: client address and port, and the address and port it was sent to. */
  client: Buffer;
  clientPort: number;
  vaddr: Buffer;
  vport: number;
  /** The service: its address (a prefix for prefix services), prefix length and port (0: every port). */
  svcAddr: Buffer;
  svcPrefix: number;
  svcPort: number;
  /** The real server. */
  rsFamily: number;
  rsAddr: Buffer;
  rsPort: number;
  /** enum xdpvs_conn_state. */
  state: number;
  /** Milliseconds since the connection's last packet, and until it expires, on the sender when it sent it. */
  ageMs: number;
  remainingMs: number;
}

export interface SyncHeader {
  /** Random per daemon start: a peer's sequence numbers are counted per sender. */
  sender: bigint;
  /** Counts the sender's datagrams from 1. */
  sequence: bigint;
  /** The sender's wall clock (ms since the epoch): bounds how old a replayed datagram can be. */
  sentMs: number;
}

export type DecodeResult = { ok: true; header: SyncHeader; entries: SyncEntry[] } | { ok: false; reason: 'malformed' | 'auth' };

const U32_MAX = 0xffffffff;

function ms32(n: number): number {
  return Math.min(Math.max(0, Math.round(n)), U32_MAX);
}

// Entry layout (88 bytes, big-endian numbers):
//   0 client[16]  16 vaddr[16]  32 clientPort u16  34 vport u16  36 proto u8  37 family u8  38 state u8
//  39 svcPrefix u8  40 svcAddr[16]  56 svcPort u16  58 rsFamily u8  59 reserved u8  60 rsAddr[16]  76 rsPort u16
//  78 reserved u16  80 ageMs u32  84 remainingMs u32
function encodeEntry(e: SyncEntry, out: Buffer, at: number): void {
  e.client.copy(out, at, 0, 16);
  e.vaddr.copy(out, at + 16, 0, 16);
  out.writeUInt16BE(e.clientPort, at + 32);
  out.writeUInt16BE(e.vport, at + 34);
  out.writeUInt8(e.proto, at + 36);
  out.writeUInt8(e.family, at + 37);
  out.writeUInt8(e.state, at + 38);
  out.writeUInt8(e.svcPrefix, at + 39);
  e.svcAddr.copy(out, at + 40, 0, 16);
  out.writeUInt16BE(e.svcPort, at + 56);
  out.writeUInt8(e.rsFamily, at + 58);
  e.rsAddr.copy(out, at + 60, 0, 16);
  out.writeUInt16BE(e.rsPort, at + 76);
  out.writeUInt32BE(ms32(e.ageMs), at + 80);
  out.writeUInt32BE(ms32(e.remainingMs), at + 84);
}

function decodeEntry(buf: Buffer, at: number): SyncEntry {
  return {
    client: Buffer.from(buf.subarray(at, at + 16)),
    vaddr: Buffer.from(buf.subarray(at + 16, at + 32)),
    clientPort: buf.readUInt16BE(at + 32),
    vport: buf.readUInt16BE(at + 34),
    proto: buf.readUInt8(at + 36),
    family: buf.readUInt8(at + 37),
    state: buf.readUInt8(at + 38),
    svcPrefix: buf.readUInt8(at + 39),
    svcAddr: Buffer.from(buf.subarray(at + 40, at + 56)),
    svcPort: buf.readUInt16BE(at + 56),
    rsFamily: buf.readUInt8(at + 58),
    rsAddr: Buffer.from(buf.subarray(at + 60, at + 76)),
    rsPort: buf.readUInt16BE(at + 76),
    ageMs: buf.readUInt32BE(at + 80),
    remainingMs: buf.readUInt32BE(at + 84),
  };
}

function mac(key: Buffer, body: Buffer): Buffer {
  return createHmac('sha256', key).update(body).digest();
}

/**
 * One datagram of 0..MAX_ENTRIES entries, authenticated with key. None: a hello, which a daemon sends when it
 * starts so that its peers send it their live connections at once.
 */
export function encodeDatagram(key: Buffer, header: SyncHeader, entries: readonly SyncEntry[]): Buffer {
  if (entries.length > MAX_ENTRIES) throw new RangeError(`a sync datagram holds 0..${MAX_ENTRIES} entries, not ${entries.length}`);
  const bodyLen = HEADER_SIZE + entries.length * ENTRY_SIZE;
  const out = Buffer.alloc(bodyLen + MAC_SIZE);
  out.writeUInt32BE(MAGIC, 0);
  out.writeUInt8(VERSION, 4);
  out.writeUInt8(entries.length, 5);
  out.writeBigUInt64BE(header.sender, 8);
  out.writeBigUInt64BE(header.sequence, 16);
  out.writeBigUInt64BE(BigInt(Math.max(0, Math.floor(header.sentMs))), 24);
  entries.forEach((e, i) => encodeEntry(e, out, HEADER_SIZE + i * ENTRY_SIZE));
  mac(key, out.subarray(0, bodyLen)).copy(out, bodyLen);
  return out;
}

/**
 * A received datagram: its header and entries when its length, magic, version and MAC are right. The MAC is
 * checked before anything of the body is believed. 'malformed': not a sync datagram of this version; 'auth': the
 * MAC does not match (another key, or altered).
 */
export function decodeDatagram(key: Buffer, buf: Buffer): DecodeResult {
  if (buf.length < HEADER_SIZE + MAC_SIZE || buf.length > MAX_DATAGRAM) return { ok: false, reason: 'malformed' };
  if (buf.readUInt32BE(0) !== MAGIC || buf.readUInt8(4) !== VERSION) return { ok: false, reason: 'malformed' };
  const count = buf.readUInt8(5);
  const bodyLen = HEADER_SIZE + count * ENTRY_SIZE;
  if (count > MAX_ENTRIES || buf.length !== bodyLen + MAC_SIZE) return { ok: false, reason: 'malformed' };
  if (!timingSafeEqual(mac(key, buf.subarray(0, bodyLen)), buf.subarray(bodyLen))) return { ok: false, reason: 'auth' };
  const header: SyncHeader = {
    sender: buf.readBigUInt64BE(8),
    sequence: buf.readBigUInt64BE(16),
    sentMs: Number(buf.readBigUInt64BE(24)),
  };
  const entries: SyncEntry[] = [];
  for (let i = 0; i < count; i++) entries.push(decodeEntry(buf, HEADER_SIZE + i * ENTRY_SIZE));
  return { ok: true, header, entries };
}
