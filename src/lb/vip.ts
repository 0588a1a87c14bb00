// Virtual service addresses: a VIP, or a VIP prefix (an xdpvs extension: `198.18.1.0/24`, `[fd00:1::/64]`), one
// service for every destination address in it, for dh, lblc and lblcr (cache clusters). Also the persistence
// netmask (-M) and the port rules of services (port 0: every port, only for persistent services, as IPVS).

import { ErrorCode, XdpvsError } from '../errors.js';
import { familyBytes, maskAddress, netmaskToPrefix, parseAddress, prefixToNetmask, type Family, type IpAddress } from './address.js';

/** A service address: an IpAddress whose `text` carries "/LEN" when it is a prefix. */
export interface VipAddress extends IpAddress {
  /** Prefix length; the family's full length (32, 128) for an ordinary VIP. */
  readonly prefixLen: number;
}

function invalid(message: string, details: Record<string, unknown> = {}): XdpvsError {
  return new XdpvsError(ErrorCode.Invalid, message, { field: 'address', ...details });
}

/** Full prefix length of a family. */
export function fullPrefix(family: Family): number {
  return familyBytes(family) * 8;
}

/** The prefix length of a service address (full for an IpAddress that is not a VipAddress). */
export function vipPrefix(addr: IpAddress): number {
  const p = (addr as Partial<VipAddress>).prefixLen;
  return p === undefined ? fullPrefix(addr.family) : p;
}

/** Whether the service address is a prefix (shorter than the family's full length). */
export function isPrefixVip(addr: IpAddress): boolean {
  return vipPrefix(addr) < fullPrefix(addr.family);
}

/**
 * `ADDR` or `ADDR/LEN`: the VIP of a service. A prefix must be its network address (no host bits set: the data
 * plane matches on the network), LEN 1..31 (IPv4) or 1..127 (IPv6); `/32` and `/128` are the address itself.
 * Throws XDPVS_ERR_INVALID.
 */
export function parseVip(text: string): VipAddress {
  if (typeof text !== 'string') throw invalid(`invalid address ${String(text)}: expected text`);
  const slash = text.indexOf('/');
  if (slash < 0) {
    const a = parseAddress(text);
    return { ...a, prefixLen: fullPrefix(a.family) };
  }
  const a = parseAddress(text.slice(0, slash));
  const lenText = text.slice(slash + 1);
  const full = fullPrefix(a.family);
  const len = /^\d{1,3}$/.test(lenText) ? Number(lenText) : NaN;
  if (!Number.isInteger(len) || len < 1 || len > full) {
    throw invalid(`invalid prefix length "${lenText}" in "${text}" (expected 1..${full})`);
  }
  if (len === full) return { ...a, prefixLen: full };
  const net = maskAddress(a, len);
  if (net.text !== a.text) throw invalid(`"${text}" has host bits set: the prefix is ${net.text}/${len}`);
  return { ...a, text: `${a.text}/${len}`, prefixLen: len };
}

/**
 * `VIP:PORT`, `VIP/LEN:PORT`, `[V6]:PORT`, `[V6/LEN]:PORT`: a service's address and port (0..65535; whether 0 is
 * allowed is the caller's rule). Throws XDPVS_ERR_INVALID.
 */
export function parseVipEndpoint(text: string): { address: VipAddress; port: number } {
  if (typeof text !== 'string' || text === '') throw invalid('empty service address');
  let addrText: string;
  let portText: string;
  if (text.startsWith('[')) {
    const close = text.indexOf(']');
    if (close < 0 || text[close + 1] !== ':') throw invalid(`invalid service address "${text}" (expected [ADDR]:PORT)`);
    addrText = text.slice(1, close);
    portText = text.slice(close + 2);
  } else {
    const colon = text.lastIndexOf(':');
    if (colon < 0 || text.indexOf(':') !== colon) throw invalid(`invalid service address "${text}" (expected ADDR:PORT, [ADDR]:PORT for IPv6)`);
    addrText = text.slice(0, colon);
    portText = text.slice(colon + 1);
  }
  const address = parseVip(addrText);
  if (text.startsWith('[') && address.family !== 'inet6') throw invalid(`invalid service address "${text}": brackets are for IPv6`);
  const port = /^\d{1,5}$/.test(portText) ? Number(portText) : NaN;
  if (!Number.isInteger(port) || port > 65535) throw invalid(`invalid port "${portText}" (expected 0..65535)`, { field: 'port' });
  return { address, port };
}

/** XDPVS_ERR_INVALID unless the service port is 1..65535, or 0 for a persistent service (every port, as IPVS). */
export function checkServicePort(port: unknown, persistent: number): number {
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw new XdpvsError(ErrorCode.Invalid, `invalid port ${JSON.stringify(port)} (expected 1..65535)`, { field: 'port' });
  }
  if (port === 0 && persistent === 0) {
    throw new XdpvsError(ErrorCode.Invalid, 'port 0 (every port) is only for persistent services (ipvsadm: "Zero port specified for non-persistent service")', { field: 'port' });
  }
  return port;
}

// ---- persistence ---------------------------------------------------------------------------------------------

/** ipvsadm's -p without a value (IPVS_SVC_PERSISTENT_TIMEOUT). */
export const DEFAULT_PERSISTENCE_TIMEOUT = 300;
/** ipvsadm's MAX_TIMEOUT: 31 days. */
export const MAX_PERSISTENCE_TIMEOUT = 86400 * 31;

/** XDPVS_ERR_INVALID unless 0 (not persistent) or 1..MAX_PERSISTENCE_TIMEOUT seconds. */
export function checkPersistent(v: unknown): number {
  if (v === undefined || v === null || v === false) return 0;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > MAX_PERSISTENCE_TIMEOUT) {
    throw new XdpvsError(ErrorCode.Invalid, `invalid persistence timeout ${JSON.stringify(v)} (expected 1..${MAX_PERSISTENCE_TIMEOUT} seconds, or 0 for none)`, { field: 'persistent' });
  }
  return v;
}

/**
 * The persistence netmask as a prefix length: IPv4 takes a dotted netmask (255.255.255.0) or a length, IPv6 a
 * length (ipvsadm -M 64). Undefined means the whole address (32, 128). XDPVS_ERR_INVALID otherwise.
 */
export function parseNetmask(v: unknown, family: Family): number {
  const full = fullPrefix(family);
  if (v === undefined || v === null) return full;
  const bad = (): XdpvsError =>
    new XdpvsError(
      ErrorCode.Invalid,
      `invalid netmask ${JSON.stringify(v)} (expected ${family === 'inet' ? 'a dotted netmask like 255.255.255.0 or a length 1..32' : 'a prefix length 1..128'})`,
      { field: 'netmask' },
    );
  if (typeof v === 'number' || (typeof v === 'string' && /^\/?\d{1,3}$/.test(v))) {
    const n = typeof v === 'number' ? v : Number(v.replace('/', ''));
    if (!Number.isInteger(n) || n < 1 || n > full) throw bad();
    return n;
  }
  if (typeof v === 'string' && family === 'inet') {
    try {
      const m = parseAddress(v, 'inet');
      const n = netmaskToPrefix(m);
      if (n < 1) throw bad();
      return n;
    } catch {
      throw bad();
    }
  }
  throw bad();
}

/** How ipvsadm prints a netmask: dotted for IPv4, the length for IPv6. */
export function netmaskText(prefix: number, family: Family): string {
  return family === 'inet' ? prefixToNetmask(prefix, 'inet').text : String(prefix);
}

/** The 16-byte mask the data plane ANDs client addresses with (svc_persist.mask). */
export function netmaskData(prefix: number, family: Family): Buffer {
  const out = Buffer.alloc(16);
  Buffer.from(prefixToNetmask(prefix, family).bytes).copy(out);
  return out;
}
