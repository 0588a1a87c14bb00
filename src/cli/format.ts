// API JSON -> ipvsadm 1.31's listing text (-L -n, --stats), byte for byte with its printf formats; no I/O.

import { compareAddresses, familyToAf, formatEndpoint, parseAddress } from '../lb/address.js';
import { parseVip } from '../lb/vip.js';
import type { Counters, Rates, RealServerView, ServiceView } from '../lb/model.js';
import { IPPROTO_TCP, IPPROTO_UDP } from '../maps/structs.js';
import { ownsSchedFlags, schedFlagBits, schedFlagNames } from './args.js';

/** The IPVS version ipvsadm prints in its first line; xdpvs speaks the same table semantics. */
export const IPVS_VERSION = '1.2.1';

export interface ListFormat {
  /** --stats: counters instead of scheduler/forward/weight/connections. */
  stats?: boolean;
  /** --rate: estimated rates instead of scheduler/forward/weight/connections (--stats wins, as in ipvsadm). */
  rate?: boolean;
  /** --exact: print_largenum() without K/M/G/T. */
  exact?: boolean;
  /** ipvsadm sorts unless --nosort. */
  sort?: boolean;
  /** --thresholds: Uthreshold, Lthreshold, ActiveConn, InActConn per real server. */
  thresholds?: boolean;
  /** --persistent-conn: Weight, PersistConn, ActiveConn, InActConn per real server. */
  persistentConn?: boolean;
}

/** printf("%-Ns"): pad on the right, never truncate. */
function left(text: string, width: number): string {
  return text.length >= width ? text : text + ' '.repeat(width - text.length);
}

/** printf("%Ns"): pad on the left, never truncate. */
function right(text: string, width: number): string {
  return text.length >= width ? text : ' '.repeat(width - text.length) + text;
}

function uint(n: number): number {
  return Number.isFinite(n) && n > 0 ? Math.floor(n) : 0;
}

/**
 * ipvsadm's print_largenum(): 9 columns, K/M/G/T (powers of 1000) once the number stops fitting; with --exact
 * (FMT_EXACT) the whole number, right-aligned in 9 columns or in its length + 1 when longer than 8 digits.
 */
export function printLargenum(value: number, exact = false): string {
  const i = uint(value);
  if (exact) {
    const digits = String(i);
    return right(digits, digits.length <= 8 ? 9 : digits.length + 1);
  }
  if (i < 100_000_000) return right(String(i), 9);
  if (i < 1_000_000_000) return `${right(String(Math.floor(i / 1_000)), 8)}K`;
  if (i < 100_000_000_000) return `${right(String(Math.floor(i / 1_000_000)), 8)}M`;
  if (i < 100_000_000_000_000) return `${right(String(Math.floor(i / 1_000_000_000)), 8)}G`;
  return `${right(String(Math.floor(i / 1_000_000_000_000)), 8)}T`;
}

/** ipvsadm's fwd_name(). */
export function fwdName(method: string): string {
  switch (method) {
    case 'nat':
      return 'Masq';
    case 'tunnel':
      return 'Tunnel';
    case 'dr':
      return 'Route';
    case 'local':
      return 'Local';
    default:
      return method;
  }
}

function protocolName(protocol: string): string {
  switch (protocol) {
    case 'tcp':
      return 'TCP';
    case 'udp':
      return 'UDP';
    case 'sctp':
      return 'SCTP';
    default:
      return '?';
  }
}

/**
 * ipvsadm's print_sched_flags(): the names depend on the scheduler that reads the bits, and a scheduler with flags
 * of its own (sh, mh) prints only those it names.
 */
export function schedFlagsText(scheduler: string, flags: readonly string[]): string {
  const names = schedFlagNames(scheduler, schedFlagBits(flags));
  const own = ownsSchedFlags(scheduler);
  return names.filter((n) => !own || n.startsWith(`${scheduler}-`)).join(',');
}

/** "TCP  198.18.0.100:80": "%-4s %s", cut at 33 characters for IPv4 as ipvsadm does. */
function serviceName(svc: ServiceView): string {
  // parseVip: a prefix service (an xdpvs extension) prints as ADDR/LEN:PORT.
  const address = parseVip(svc.address);
  const name = `${left(protocolName(svc.protocol), 4)} ${formatEndpoint(address, svc.port)}`;
  return address.family === 'inet6' ? name : name.slice(0, 33);
}

/** "198.18.0.11:80", cut at 28 characters for IPv4 as ipvsadm does. */
function serverName(rs: RealServerView): string {
  const address = parseAddress(rs.address);
  const name = formatEndpoint(address, rs.port);
  return address.family === 'inet6' ? name : name.slice(0, 28);
}

/** The protocol's number, as ipvsadm orders by it (IPPROTO_SCTP is 132; xdpvs has no SCTP). */
function protocolRank(protocol: string): number {
  return protocol === 'tcp' ? IPPROTO_TCP : protocol === 'udp' ? IPPROTO_UDP : protocol === 'sctp' ? 132 : 256;
}

function cmp(a: number, b: number): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * ipvsadm's ipvs_cmp_services(): address family, protocol, address, port. (ipvsadm subtracts 32-bit words into an
 * int, which misorders addresses more than 2^31 apart; this compares them as the unsigned numbers they are.)
 */
export function compareServices(
  a: Pick<ServiceView, 'protocol' | 'address' | 'port'>,
  b: Pick<ServiceView, 'protocol' | 'address' | 'port'>,
): number {
  const aAddr = parseVip(a.address);
  const bAddr = parseVip(b.address);
  return (
    cmp(familyToAf(aAddr.family), familyToAf(bAddr.family)) ||
    cmp(protocolRank(a.protocol), protocolRank(b.protocol)) ||
    compareAddresses(aAddr, bAddr) ||
    cmp(a.port, b.port)
  );
}

/** ipvsadm's ipvs_cmp_dests(): address (family first), then port. */
export function compareServers(a: Pick<RealServerView, 'address' | 'port'>, b: Pick<RealServerView, 'address' | 'port'>): number {
  return compareAddresses(parseAddress(a.address), parseAddress(b.address)) || cmp(a.port, b.port);
}

export function sortServices(services: readonly ServiceView[]): ServiceView[] {
  return [...services].sort(compareServices);
}

/** ipvsadm's print_title(). */
export function formatTitle(format: ListFormat = {}): string {
  if (format.stats || format.rate) {
    const names = format.stats
      ? ['Conns', 'InPkts', 'OutPkts', 'InBytes', 'OutBytes']
      : ['CPS', 'InPPS', 'OutPPS', 'InBPS', 'OutBPS'];
    const cols = names.map((c) => right(c, 8)).join(' ');
    return `${left('Prot LocalAddress:Port', 33)} ${cols}\n  -> RemoteAddress:Port\n`;
  }
  if (format.thresholds || format.persistentConn) {
    const cols = format.thresholds
      ? [left('Uthreshold', 10), left('Lthreshold', 10), left('ActiveConn', 10), left('InActConn', 10)]
      : [left('Weight', 9), left('PersistConn', 11), left('ActiveConn', 10), left('InActConn', 10)];
    return `${left('Prot LocalAddress:Port', 33)} ${cols.join(' ')}\n  -> RemoteAddress:Port\n`;
  }
  return (
    'Prot LocalAddress:Port Scheduler Flags\n' +
    '  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n'
  );
}

/** The five print_largenum() columns of --stats (counters) or --rate (rates). */
function numberColumns(item: { stats?: Counters; rates?: Rates }, format: ListFormat): string {
  let values: number[];
  if (format.stats) {
    const s = item.stats ?? { conns: 0, inpkts: 0, outpkts: 0, inbytes: 0, outbytes: 0 };
    values = [s.conns, s.inpkts, s.outpkts, s.inbytes, s.outbytes];
  } else {
    const r = item.rates ?? { cps: 0, inpps: 0, outpps: 0, inbps: 0, outbps: 0 };
    values = [r.cps, r.inpps, r.outpps, r.inbps, r.outbps];
  }
  return values.map((v) => printLargenum(v, format.exact)).join('');
}

/** ipvsadm's print_service_entry(): the service line, then its real servers. */
export function formatServiceEntry(svc: ServiceView, format: ListFormat = {}): string {
  const name = serviceName(svc);
  let out: string;
  if (format.stats || format.rate) {
    out = `${left(name, 33)}${numberColumns(svc, format)}\n`;
  } else {
    out = `${name} ${svc.scheduler}`;
    // ipvsadm prints " (flags)" when any of the three scheduler flag bits is set.
    if (schedFlagBits(svc.flags ?? []) !== 0) out += ` (${schedFlagsText(svc.scheduler, svc.flags ?? [])})`;
    // " persistent N", and " mask M" unless the netmask is the whole address.
    if (svc.persistent) {
      out += ` persistent ${svc.persistent}`;
      if (svc.netmask !== undefined && svc.netmask !== (svc.family === 'inet6' ? '128' : '255.255.255.255')) out += ` mask ${svc.netmask}`;
    }
    out += '\n';
  }
  // Health (src/health): keepalived removes a failed real server from IPVS unless inhibit_on_failure, which keeps it
  // at weight 0; -Ln shows what IPVS would. --json shows every real server with its health.
  const listed = (svc.servers ?? []).filter((rs) => rs.health?.listed !== false);
  const servers = format.sort === false ? listed : listed.sort(compareServers);
  for (const rs of servers) {
    const dname = serverName(rs);
    if (format.stats || format.rate) {
      out += `  -> ${left(dname, 28)}${numberColumns(rs, format)}\n`;
    } else if (format.thresholds) {
      const cols = [rs.upperThreshold ?? 0, rs.lowerThreshold ?? 0, uint(rs.activeConns), uint(rs.inactiveConns)];
      out += `  -> ${left(dname, 28)} ${cols.map((c) => left(String(c), 10)).join(' ')}\n`;
    } else if (format.persistentConn) {
      const weight = rs.health?.effectiveWeight ?? rs.weight;
      out +=
        `  -> ${left(dname, 28)} ${left(String(weight), 9)} ${left(String(rs.persistConns ?? 0), 11)} ` +
        `${left(String(uint(rs.activeConns)), 10)} ${left(String(uint(rs.inactiveConns)), 10)}\n`;
    } else {
      out +=
        `  -> ${left(dname, 28)} ${left(fwdName(rs.method), 7)} ${left(String(rs.health?.effectiveWeight ?? rs.weight), 6)} ` +
        `${left(String(uint(rs.activeConns)), 10)} ${left(String(uint(rs.inactiveConns)), 10)}\n`;
    }
  }
  return out;
}

/** `ipvsadm -Ln` / `-Ln --stats`: the version line, the title, every service. */
export function formatList(connTableSize: number, services: readonly ServiceView[], format: ListFormat = {}): string {
  const ordered = format.sort === false ? [...services] : sortServices(services);
  let out = `IP Virtual Server version ${IPVS_VERSION} (size=${connTableSize})\n`;
  out += formatTitle(format);
  for (const svc of ordered) out += formatServiceEntry(svc, format);
  return out;
}

/** `ipvsadm -Ln -t VIP:PORT`: ipvsadm's list_service() prints the title and the one service, no version line. */
export function formatOneService(svc: ServiceView, format: ListFormat = {}): string {
  return formatTitle(format) + formatServiceEntry(svc, format);
}

/** --json: the API's service objects as they came, in listing order. */
export function formatJson(services: readonly ServiceView[], format: ListFormat = {}): string {
  const ordered = format.sort === false ? [...services] : sortServices(services);
  const withServers = ordered.map((s) =>
    format.sort === false ? s : { ...s, servers: [...(s.servers ?? [])].sort(compareServers) },
  );
  return `${JSON.stringify(withServers, null, 2)}\n`;
}
