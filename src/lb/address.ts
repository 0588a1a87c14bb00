// IPv4/IPv6 addresses and ADDR:PORT endpoints: parsing, canonical text, and the data plane's 16-byte form.
//
// Canonical text is what ipvsadm users read back: dotted quad for IPv4, RFC 5952 for IPv6 (lower case, no
// leading zeros, the longest run of two or more zero groups shortened to "::", the first such run on a tie).
// IPv4-mapped IPv6 addresses are printed in plain hexadecimal (::ffff:c612:1), not in mixed notation.
// The data plane's form (bpf/xdpvs_shared.h, `__be32 addr[4]`) is 16 bytes in network byte order; an IPv4
// address takes the first 4 bytes and the other 12 are zero.

import { isIPv4, isIPv6 } from 'node:net';
import { ErrorCode, XdpvsError } from '../errors.js';

export type Family = 'inet' | 'inet6';

/** The kernel's address family numbers, also used in the data plane's structs. */
export const AF_INET = 2;
export const AF_INET6 = 10;

export interface IpAddress {
  readonly family: Family;
  /** 4 (inet) or 16 (inet6) bytes, network byte order. */
  readonly bytes: Uint8Array;
  /** Canonical text (see the top of this file). */
  readonly text: string;
}

export interface Endpoint {
  readonly address: IpAddress;
  /** 1..65535 */
  readonly port: number;
}

/** An endpoint whose port the caller allowed to be left out (ipvsadm's `-r RIP` takes the service's port). */
export interface PartialEndpoint {
  readonly address: IpAddress;
  readonly port: number | undefined;
}

function invalid(message: string, details: Record<string, unknown> = {}): XdpvsError {
  return new XdpvsError(ErrorCode.Invalid, message, details);
}

/** AF_INET / AF_INET6 for a family name. */
export function familyToAf(family: Family): number {
  return family === 'inet' ? AF_INET : AF_INET6;
}

/** The family name for a kernel number; anything but 2 or 10 is XDPVS_ERR_INVALID. */
export function afToFamily(af: number): Family {
  if (af === AF_INET) return 'inet';
  if (af === AF_INET6) return 'inet6';
  throw invalid(`invalid address family ${af} (expected ${AF_INET} or ${AF_INET6})`);
}

/** Byte length of an address of this family. */
export function familyBytes(family: Family): 4 | 16 {
  return family === 'inet' ? 4 : 16;
}

function formatIPv4(b: Uint8Array): string {
  return `${b[0]}.${b[1]}.${b[2]}.${b[3]}`;
}

function formatIPv6(b: Uint8Array): string {
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((b[i] << 8) | b[i + 1]);
  // Longest run of zero groups, length >= 2 (RFC 5952 4.2.2), first one on a tie (4.2.3).
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (gs: number[]) => gs.map((g) => g.toString(16)).join(':');
  if (bestStart < 0) return hex(groups);
  return `${hex(groups.slice(0, bestStart))}::${hex(groups.slice(bestStart + bestLen))}`;
}

function ipv4Bytes(text: string): Uint8Array {
  return Uint8Array.from(text.split('.'), (p) => Number(p));
}

function ipv6Bytes(text: string): Uint8Array {
  // isIPv6 has accepted the text and the caller has excluded zone ids: at most one "::", groups of 1-4 hex
  // digits, optionally a dotted quad as the last 32 bits.
  let rest = text;
  const tail: number[] = [];
  const lastColon = rest.lastIndexOf(':');
  if (rest.indexOf('.', lastColon) >= 0) {
    const v4 = ipv4Bytes(rest.slice(lastColon + 1));
    tail.push((v4[0] << 8) | v4[1], (v4[2] << 8) | v4[3]);
    rest = rest.slice(0, lastColon + 1);
    // "::1.2.3.4" leaves "::"; "1::1.2.3.4" leaves "1::"; "1:2:3:4:5:6:1.2.3.4" leaves "1:2:3:4:5:6:".
    if (!rest.endsWith('::')) rest = rest.slice(0, -1);
  }
  const groupsOf = (s: string) => (s === '' ? [] : s.split(':').map((g) => parseInt(g, 16)));
  let groups: number[];
  const dc = rest.indexOf('::');
  if (dc >= 0) {
    const head = groupsOf(rest.slice(0, dc));
    const back = [...groupsOf(rest.slice(dc + 2)), ...tail];
    groups = [...head, ...new Array<number>(8 - head.length - back.length).fill(0), ...back];
  } else {
    groups = [...groupsOf(rest), ...tail];
  }
  if (groups.length !== 8) throw invalid(`invalid IPv6 address "${text}"`);
  const out = new Uint8Array(16);
  groups.forEach((g, i) => {
    out[2 * i] = g >> 8;
    out[2 * i + 1] = g & 0xff;
  });
  return out;
}

function make(family: Family, bytes: Uint8Array): IpAddress {
  return { family, bytes, text: family === 'inet' ? formatIPv4(bytes) : formatIPv6(bytes) };
}

/**
 * Parse an IPv4 or IPv6 address (no brackets, no port, no zone id). `family`, when given, is required.
 * Throws XDPVS_ERR_INVALID naming the text.
 */
export function parseAddress(text: string, family?: Family): IpAddress {
  if (typeof text !== 'string') throw invalid(`invalid IP address ${String(text)}: expected text`);
  if (text === '') throw invalid('empty address');
  let parsed: IpAddress;
  if (isIPv4(text)) {
    parsed = make('inet', ipv4Bytes(text));
  } else if (text.includes('%')) {
    throw invalid(`invalid IP address "${text}": zone ids are not supported`);
  } else if (isIPv6(text)) {
    parsed = make('inet6', ipv6Bytes(text));
  } else if (/^[\d.]+$/.test(text)) {
    throw invalid(`invalid IPv4 address "${text}"`);
  } else if (text.includes(':')) {
    throw invalid(`invalid IPv6 address "${text}"`);
  } else {
    throw invalid(`invalid IP address "${text}"`);
  }
  if (family !== undefined && parsed.family !== family) {
    throw invalid(`"${text}" is not an ${family === 'inet' ? 'IPv4' : 'IPv6'} address`);
  }
  return parsed;
}

/** The canonical text of an address given as text (throws like parseAddress). */
export function canonicalAddress(text: string): string {
  return parseAddress(text).text;
}

/** An address from its 4 or 16 network-order bytes. */
export function addressFromBytes(bytes: Uint8Array): IpAddress {
  if (bytes.length === 4) return make('inet', Uint8Array.from(bytes));
  if (bytes.length === 16) return make('inet6', Uint8Array.from(bytes));
  throw invalid(`an IP address has 4 or 16 bytes, not ${bytes.length}`);
}

/** The data plane's 16-byte form (`__be32 addr[4]`): IPv4 in the first 4 bytes, the rest zero. */
export function addressToData(addr: IpAddress): Buffer {
  const out = Buffer.alloc(16);
  out.set(addr.bytes, 0);
  return out;
}

/**
 * Read the data plane's 16-byte form back. `family` is a name or the kernel number stored beside the address.
 * An IPv4 address whose last 12 bytes are not zero is XDPVS_ERR_INVALID (the data plane would never match it).
 */
export function addressFromData(data: Uint8Array, family: Family | number): IpAddress {
  const fam = typeof family === 'number' ? afToFamily(family) : family;
  if (data.length !== 16) throw invalid(`a data plane address has 16 bytes, not ${data.length}`);
  if (fam === 'inet') {
    for (let i = 4; i < 16; i++) {
      if (data[i] !== 0) throw invalid('IPv4 address in data plane form has non-zero bytes after the first 4');
    }
    return make('inet', Uint8Array.from(data.subarray(0, 4)));
  }
  return make('inet6', Uint8Array.from(data));
}

/** Parse a port: decimal 1..65535 (0 is not a port a service or real server can have). */
export function parsePort(text: string | number): number {
  const n = typeof text === 'number' ? text : /^\d{1,5}$/.test(text) ? Number(text) : NaN;
  if (!Number.isInteger(n) || n < 1 || n > 65535) throw invalid(`invalid port "${text}" (expected 1..65535)`);
  return n;
}

/** An endpoint's address, and its port as the text wrote it (undefined when left out), not yet parsed. */
export interface EndpointText {
  readonly address: IpAddress;
  readonly portText: string | undefined;
}

/**
 * The syntax of `ADDR:PORT` and `[V6ADDR]:PORT` without the port's rules, for callers with their own (ipvsadm's
 * port names and port 0): the address parsed, the port's text as written. With `{ portOptional: true }` a bare
 * IPv6 address is accepted (and can then not carry a port: `2001:db8::1:80` is an address). Throws
 * XDPVS_ERR_INVALID like parseEndpoint, except for a missing or bad port.
 */
export function splitEndpoint(text: string, opts: { portOptional?: boolean } = {}): EndpointText {
  if (typeof text !== 'string' || text === '') throw invalid('empty endpoint');
  let addrText: string;
  let portText: string | undefined;
  const bracketed = text.startsWith('[');
  if (bracketed) {
    const close = text.indexOf(']');
    if (close < 0) throw invalid(`invalid endpoint "${text}": missing "]"`);
    addrText = text.slice(1, close);
    const after = text.slice(close + 1);
    if (after !== '') {
      if (!after.startsWith(':')) throw invalid(`invalid endpoint "${text}": expected ":PORT" after "]"`);
      portText = after.slice(1);
    }
  } else {
    const colons = text.split(':').length - 1;
    if (colons === 1) {
      [addrText, portText] = text.split(':') as [string, string];
    } else if (colons === 0 || opts.portOptional === true) {
      addrText = text;
    } else {
      throw invalid(`invalid endpoint "${text}": write an IPv6 endpoint as [ADDR]:PORT`);
    }
  }
  const address = parseAddress(addrText);
  if (bracketed && address.family !== 'inet6') {
    throw invalid(`invalid endpoint "${text}": brackets are for IPv6 addresses`);
  }
  return { address, portText };
}

/**
 * Parse `ADDR:PORT` or `[V6ADDR]:PORT`. With `{ portOptional: true }` the port may be left out: `ADDR`,
 * `[V6ADDR]`, or a bare IPv6 address (which can then not carry a port: `2001:db8::1:80` is an address).
 */
export function parseEndpoint(text: string): Endpoint;
export function parseEndpoint(text: string, opts: { portOptional: true }): PartialEndpoint;
export function parseEndpoint(text: string, opts?: { portOptional?: boolean }): PartialEndpoint;
export function parseEndpoint(text: string, opts: { portOptional?: boolean } = {}): PartialEndpoint {
  const { address, portText } = splitEndpoint(text, opts);
  if (portText === undefined) {
    if (opts.portOptional !== true) throw invalid(`invalid endpoint "${text}": missing port`);
    return { address, port: undefined };
  }
  return { address, port: parsePort(portText) };
}

/** `10.0.0.1:80`, `[2001:db8::1]:80`, or just the address when there is no port. */
export function formatEndpoint(address: IpAddress | string, port?: number): string {
  const a = typeof address === 'string' ? parseAddress(address) : address;
  if (port === undefined) return a.text;
  return a.family === 'inet6' ? `[${a.text}]:${port}` : `${a.text}:${port}`;
}

/** Whether two addresses are the same (family and bytes). */
export function sameAddress(a: IpAddress, b: IpAddress): boolean {
  return a.family === b.family && a.bytes.length === b.bytes.length && a.bytes.every((v, i) => v === b.bytes[i]);
}

/**
 * Order of addresses: IPv4 before IPv6 (AF_INET < AF_INET6), then by value as an unsigned number (the
 * network-order bytes compared in turn). Negative, zero or positive, for Array.prototype.sort.
 */
export function compareAddresses(a: IpAddress, b: IpAddress): number {
  if (a.family !== b.family) return familyToAf(a.family) - familyToAf(b.family);
  for (let i = 0; i < a.bytes.length; i++) {
    if (a.bytes[i] !== b.bytes[i]) return a.bytes[i] - b.bytes[i];
  }
  return 0;
}

// Prefix helpers, for ipvsadm's persistence netmask (-M): a dotted IPv4 mask or an IPv6 prefix length.

/** The netmask of a prefix length: prefixToNetmask(24) is 255.255.255.0. */
export function prefixToNetmask(prefix: number, family: Family = 'inet'): IpAddress {
  const bits = familyBytes(family) * 8;
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > bits) {
    throw invalid(`invalid prefix length ${prefix} (expected 0..${bits})`);
  }
  const bytes = new Uint8Array(bits / 8);
  for (let i = 0; i < bytes.length; i++) {
    const n = Math.max(0, Math.min(8, prefix - 8 * i));
    bytes[i] = (0xff00 >> n) & 0xff;
  }
  return make(family, bytes);
}

/** The prefix length of a contiguous netmask; 255.0.255.0 is XDPVS_ERR_INVALID. */
export function netmaskToPrefix(mask: IpAddress | string): number {
  const m = typeof mask === 'string' ? parseAddress(mask) : mask;
  let prefix = 0;
  let ended = false;
  for (const byte of m.bytes) {
    for (let bit = 7; bit >= 0; bit--) {
      const set = ((byte >> bit) & 1) === 1;
      if (set && ended) throw invalid(`invalid netmask "${m.text}": ones are not contiguous`);
      if (set) prefix++;
      else ended = true;
    }
  }
  return prefix;
}

/** The address with every bit after the first `prefix` cleared (198.18.3.4/16 -> 198.18.0.0). */
export function maskAddress(addr: IpAddress, prefix: number): IpAddress {
  const mask = prefixToNetmask(prefix, addr.family);
  return make(addr.family, addr.bytes.map((b, i) => b & mask.bytes[i]));
}
