// keepalived.conf's meaning for xdpvsd: global_defs (router_id), virtual_server (ADDR PORT, or a group of them),
// real_server and their checkers, mapped onto services, real servers and health checks. Whatever would change
// behaviour and is not done is an error with FILE:LINE; whatever is harmless and unused is a notice.

import { ErrorCode } from '../errors.js';
import { splitArgv } from '../health/argv.js';
import {
  DEFAULT_CONNECT_TIMEOUT_MS,
  DEFAULT_DELAY_LOOP_MS,
  defaultDelayBeforeRetryMs,
  defaultRetries,
  type CheckSpec,
  type CheckTiming,
  type HttpUrlSpec,
  type ProbeSpec,
  type ServerHealthSpec,
  type ServiceHealthSpec,
  type SorryServerSpec,
} from '../health/types.js';
import { formatEndpoint, parseAddress, type IpAddress } from '../lb/address.js';
import { MAX_WEIGHT, type Method, type Protocol } from '../lb/model.js';
import { confError, parseKeepalivedFile, type Loc, type ParseResult, type Statement } from './parser.js';


export interface KaRealServer {
  address: string;
  port: number;
  method: Method;
  weight: number;
  loc: Loc;
}

export interface KaService {
  /** PROTO:ADDR:PORT, canonical. */
  id: string;
  protocol: Protocol;
  address: string;
  port: number;
  scheduler?: string;
  flags: string[];
  /** persistence_timeout (seconds): ipvsadm -p. */
  persistent?: number;
  /** persistence_granularity: ipvsadm -M (a dotted IPv4 mask or an IPv6 prefix length). */
  netmask?: string | number;
  servers: KaRealServer[];
  health: ServiceHealthSpec;
  loc: Loc;
}

export interface KeepalivedConfig {
  routerId?: string;
  services: KaService[];
  notices: { loc: Loc; message: string }[];
  files: string[];
}

type Notices = KeepalivedConfig['notices'];

const unsupported = (loc: Loc, message: string) => confError(loc, message, ErrorCode.Unsupported);

/** Blocks that belong to keepalived's VRRP (and other) daemons: left to keepalived itself. */
const LEFT_TO_KEEPALIVED = new Set([
  'vrrp_instance',
  'vrrp_sync_group',
  'vrrp_script',
  'vrrp_track_process',
  'track_file',
  'garp_group',
  'static_ipaddress',
  'static_routes',
  'static_rules',
  'static_track_group',
  'linkbeat_interfaces',
  'interface_up_down_delays',
  'bfd_instance',
]);

/** global_defs keywords that change nothing xdpvsd does (mail, VRRP, SNMP, process and script settings). */
function harmlessGlobal(key: string): boolean {
  return (
    /^(notification_email|notification_email_from|smtp_|no_email_faults|email_)/.test(key) ||
    /^(vrrp_|garp_|gna_|lower_prio_no_advert|higher_prio_send_advert|max_auto_priority|min_auto_priority_delay)/.test(key) ||
    /^(enable_snmp|snmp_|enable_traps|enable_dbus|dbus_)/.test(key) ||
    /^(script_user|enable_script_security|process_names?|vrrp_process_name|checker_process_name|bfd_process_name|child_wait_time)$/.test(key) ||
    /^(default_interface|dynamic_interfaces|disable_local_igmp|nftables|nftables_|iptables|ipsets|use_pid_dir|linkbeat_use_polling|instance|net_namespace|namespace_with_ipsets|tmp_config_directory|config_save_dir|use_symlink_paths|set_supplementary_groups|notify_fifo|notify_fifo_script|vrrp_notify_fifo|vrrp_notify_fifo_script|lvs_notify_fifo|lvs_notify_fifo_script|random_seed|reload_check_config|reload_time_file|reload_repeat|reload_file|data_use_instance|startup_script|startup_script_timeout|shutdown_script|shutdown_script_timeout|checker_log_all_failures|checker_priority|checker_no_swap|checker_cpu_affinity|checker_rt_priority|checker_rlimit_rttime|vrrp_priority|bfd_priority|bfd_no_swap|bfd_rt_priority|bfd_rlimit_rttime|bfd_cpu_affinity|vrrp_no_swap|vrrp_cpu_affinity|vrrp_rt_priority|vrrp_rlimit_rttime|rs_init_notifies|no_checker_emails|umask|lvs_id|log_unknown_vrids|fifo_write_vrrp_states_on_reload|vrrp_startup_delay|vrrp_log_unknown_vrids|track_process|vrrp_track_process)$/.test(key)
  );
}

// ---- words ---------------------------------------------------------------------------------------------------

function arity(st: Statement, min: number, max = min): void {
  if (st.args.length < min) throw confError(st.loc, `${st.key} needs ${min === max ? min : `at least ${min}`} argument${min === 1 ? '' : 's'}`);
  if (st.args.length > max) throw confError(st.loc, `${st.key} takes ${max === 0 ? 'no arguments' : `at most ${max}`}, not "${st.args.map((a) => a.text).join(' ')}"`);
}

function noBlock(st: Statement): void {
  if (st.block) throw confError(st.loc, `${st.key} takes no { } block`);
}

function needBlock(st: Statement): Statement[] {
  if (!st.block) throw confError(st.loc, `${st.key} needs a { } block`);
  return st.block;
}

function int(st: Statement, i: number, min: number, max: number): number {
  const t = st.args[i]?.text ?? '';
  if (!/^\d+$/.test(t) || Number(t) < min || Number(t) > max) throw confError(st.loc, `${st.key}: "${t}" is not an integer in ${min}..${max}`);
  return Number(t);
}

/** keepalived <TIMER>: seconds, fractions allowed; returns ms. */
function timer(st: Statement, i = 0): number {
  arity(st, i + 1);
  const t = st.args[i].text;
  if (!/^\d+(\.\d+)?$/.test(t)) throw confError(st.loc, `${st.key}: "${t}" is not a time in seconds`);
  return Math.round(Number(t) * 1000);
}

/** keepalived <BOOL>, optional: no argument means true. */
function bool(st: Statement): boolean {
  arity(st, 0, 1);
  if (st.args.length === 0) return true;
  const t = st.args[0].text.toLowerCase();
  if (['on', 'true', 'yes'].includes(t)) return true;
  if (['off', 'false', 'no'].includes(t)) return false;
  throw confError(st.loc, `${st.key}: "${st.args[0].text}" is not one of on|off|true|false|yes|no`);
}

function address(st: Statement, i: number): IpAddress {
  const t = st.args[i]?.text;
  if (t === undefined) throw confError(st.loc, `${st.key} needs an IP address`);
  try {
    return parseAddress(t);
  } catch (e) {
    throw confError(st.loc, (e as Error).message);
  }
}

function port(st: Statement, i: number): number {
  return int(st, i, 1, 65535);
}

/** A script keyword: "quoted command with args" or an unquoted path; a user/group after it is not supported. */
function script(st: Statement): string[] {
  arity(st, 1, 3);
  if (st.args.length > 1) throw unsupported(st.loc, `${st.key}: running scripts as another user ("${st.args.slice(1).map((a) => a.text).join(' ')}") is not supported; xdpvsd runs them as itself`);
  let argv: string[];
  try {
    argv = splitArgv(st.args[0].text);
  } catch (e) {
    throw confError(st.loc, (e as Error).message);
  }
  if (argv.length === 0) throw confError(st.loc, `${st.key}: empty command`);
  return argv;
}

function method(st: Statement): Method {
  arity(st, 1, 5);
  const kind = st.args[0].text;
  if (kind === 'DR') return arityExact(st, 'dr');
  if (kind === 'NAT') return arityExact(st, 'nat');
  if (kind === 'TUN') {
    const rest = st.args.slice(1).map((a) => a.text);
    if (rest.length === 0 || (rest.length === 2 && rest[0] === 'type' && rest[1] === 'ipip')) return 'tunnel';
    throw unsupported(st.loc, `${st.key} TUN ${rest.join(' ')}: only IPIP tunnels are supported`);
  }
  throw confError(st.loc, `${st.key}: unknown forwarding method "${kind}" (expected DR, NAT or TUN)`);
}

function arityExact(st: Statement, m: Method): Method {
  arity(st, 1);
  return m;
}

// ---- timing inherited down the blocks ------------------------------------------------------------------------

/** Options a virtual server sets for its real servers, and a real server for its checkers (keepalived's rule). */
interface Inherited {
  delayLoopMs?: number;
  connectTimeoutMs?: number;
  retries?: number;
  delayBeforeRetryMs?: number;
  warmupMs?: number;
  alpha?: boolean;
  rise?: number;
  virtualhost?: string;
}

/** Handles the timing keywords shared by virtual_server, real_server and checkers; false if `st` is not one. */
function timingKeyword(st: Statement, into: Inherited): boolean {
  switch (st.key) {
    case 'delay_loop':
      noBlock(st);
      into.delayLoopMs = timer(st);
      return true;
    case 'connect_timeout':
      noBlock(st);
      into.connectTimeoutMs = timer(st);
      return true;
    case 'retry':
    case 'nb_get_retry':
      noBlock(st);
      arity(st, 1);
      into.retries = int(st, 0, 0, 1_000_000);
      return true;
    case 'delay_before_retry':
      noBlock(st);
      into.delayBeforeRetryMs = timer(st);
      return true;
    case 'warmup':
      noBlock(st);
      into.warmupMs = timer(st);
      return true;
    case 'alpha':
      noBlock(st);
      into.alpha = bool(st);
      return true;
    case 'rise':
      // xdpvs extension (keepalived has none: one success brings a server back, which is rise 1).
      noBlock(st);
      arity(st, 1);
      into.rise = int(st, 0, 1, 1_000);
      return true;
    case 'virtualhost':
      noBlock(st);
      arity(st, 1);
      into.virtualhost = st.args[0].text;
      return true;
    default:
      return false;
  }
}

function resolveTiming(t: Inherited, kind: ProbeSpec['kind'], miscTimeoutMs?: number): CheckTiming {
  const intervalMs = t.delayLoopMs ?? DEFAULT_DELAY_LOOP_MS;
  return {
    intervalMs,
    connectTimeoutMs: kind === 'misc' ? (miscTimeoutMs ?? intervalMs) : (t.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS),
    retries: t.retries ?? defaultRetries(kind),
    delayBeforeRetryMs: t.delayBeforeRetryMs ?? defaultDelayBeforeRetryMs(kind),
    rise: t.rise ?? 1,
    warmupMs: t.warmupMs ?? intervalMs,
    alpha: t.alpha ?? false,
  };
}

// ---- checkers -------------------------------------------------------------------------------------------------

const CHECKERS = new Set(['TCP_CHECK', 'HTTP_GET', 'SSL_GET', 'UDP_CHECK', 'MISC_CHECK']);
const UNSUPPORTED_CHECKERS = new Set(['SMTP_CHECK', 'DNS_CHECK', 'BFD_CHECK', 'PING_CHECK', 'FILE_CHECK']);

function statusCodes(st: Statement): Array<[number, number]> {
  arity(st, 1, 100);
  return st.args.map((a) => {
    const m = /^(\d{3})(?:-(\d{3}))?$/.exec(a.text);
    if (!m) throw confError(st.loc, `status_code: "${a.text}" is not a status code or a range like 200-299`);
    const lo = Number(m[1]);
    const hi = m[2] ? Number(m[2]) : lo;
    if (lo > hi) throw confError(st.loc, `status_code: range ${a.text} is backwards`);
    return [lo, hi] as [number, number];
  });
}

function hexBytes(st: Statement, text: string, allowX: boolean): { bytes: Buffer; mask: Buffer } {
  // keepalived's free format: whitespace separates groups; each group is pairs of hex digits, an odd one leading.
  const bytes: number[] = [];
  const mask: number[] = [];
  for (const group of text.trim().split(/\s+/).filter(Boolean)) {
    if (!(allowX ? /^[0-9a-fA-FxX]+$/ : /^[0-9a-fA-F]+$/).test(group)) throw confError(st.loc, `${st.key}: "${group}" is not hexadecimal`);
    const g = group.length % 2 ? `0${group}` : group;
    for (let i = 0; i < g.length; i += 2) {
      let b = 0;
      let m = 0;
      for (const [k, ch] of [g[i], g[i + 1]].entries()) {
        const shift = k === 0 ? 4 : 0;
        if (ch === 'x' || ch === 'X') continue;
        b |= parseInt(ch, 16) << shift;
        m |= 0xf << shift;
      }
      bytes.push(b);
      mask.push(m);
    }
  }
  return { bytes: Buffer.from(bytes), mask: Buffer.from(mask) };
}

function parseUrl(block: Statement[]): HttpUrlSpec {
  const url: HttpUrlSpec = { path: '/', statusCodes: [] };
  let sawPath = false;
  for (const st of block) {
    noBlock(st);
    switch (st.key) {
      case 'path':
        arity(st, 1);
        url.path = st.args[0].text;
        sawPath = true;
        break;
      case 'digest':
        arity(st, 1);
        if (!/^[0-9a-fA-F]{32}$/.test(st.args[0].text)) throw confError(st.loc, `digest: "${st.args[0].text}" is not an MD5 digest (32 hex digits, as genhash prints)`);
        url.digest = st.args[0].text.toLowerCase();
        break;
      case 'status_code':
        url.statusCodes.push(...statusCodes(st));
        break;
      case 'virtualhost':
        arity(st, 1);
        url.virtualhost = st.args[0].text;
        break;
      case 'regex':
        arity(st, 1);
        try {
          new RegExp(st.args[0].text);
        } catch (e) {
          throw confError(st.loc, `regex: ${(e as Error).message}`);
        }
        url.regex = st.args[0].text;
        break;
      case 'regex_no_match':
        arity(st, 0);
        url.regexNoMatch = true;
        break;
      case 'tls_compliant':
        break;
      case 'regex_options':
      case 'regex_stack':
      case 'regex_min_offset':
      case 'regex_max_offset':
        throw unsupported(st.loc, `${st.key} is not supported (regexes are JavaScript's, over the first MiB of the body)`);
      default:
        throw confError(st.loc, `unknown keyword "${st.key}" in url`);
    }
  }
  if (!sawPath) throw confError(block[0]?.loc ?? { file: '?', line: 0 }, 'url needs a path');
  return url;
}

function parseChecker(st: Statement, rsAddr: IpAddress, rsPort: number, inherited: Inherited, notices: Notices): CheckSpec {
  const block = needBlock(st);
  const t: Inherited = { ...inherited };
  let host = rsAddr.text;
  let cport = rsPort;
  let bindto: string | undefined;
  let bindPort: number | undefined;
  const urls: HttpUrlSpec[] = [];
  let sni = false;
  let miscArgv: string[] | undefined;
  let miscTimeoutMs: number | undefined;
  let miscDynamic = false;
  let payload: Buffer | undefined;
  let requireReply = false;
  let replyPattern: { bytes: Buffer; mask: Buffer } | undefined;
  let minReply = 0;
  let maxReply = 255;
  const kind: ProbeSpec['kind'] =
    st.key === 'TCP_CHECK' ? 'tcp' : st.key === 'HTTP_GET' ? 'http' : st.key === 'SSL_GET' ? 'https' : st.key === 'UDP_CHECK' ? 'udp' : 'misc';
  const connectOption = (o: Statement) => {
    if (kind === 'misc') throw confError(o.loc, `${o.key} does not apply to MISC_CHECK`);
  };
  for (const o of block) {
    if (o.key !== 'url') noBlock(o);
    if (timingKeyword(o, t)) continue;
    switch (o.key) {
      case 'connect_ip':
        connectOption(o);
        arity(o, 1);
        host = address(o, 0).text;
        break;
      case 'connect_port':
        connectOption(o);
        arity(o, 1);
        cport = port(o, 0);
        break;
      case 'bindto':
        connectOption(o);
        arity(o, 1);
        bindto = address(o, 0).text;
        break;
      case 'bind_port':
        connectOption(o);
        arity(o, 1);
        bindPort = port(o, 0);
        break;
      case 'log_all_failures':
        bool(o);
        notices.push({ loc: o.loc, message: 'log_all_failures: every failed probe is logged at debug level (--log-level debug)' });
        break;
      case 'bind_if':
      case 'fwmark':
        throw unsupported(o.loc, `${o.key} in a checker is not supported`);
      case 'url':
        if (kind !== 'http' && kind !== 'https') throw confError(o.loc, `url only applies to HTTP_GET and SSL_GET`);
        urls.push(parseUrl(needBlock(o)));
        break;
      case 'http_protocol':
        if (kind !== 'http' && kind !== 'https') throw confError(o.loc, 'http_protocol only applies to HTTP_GET and SSL_GET');
        arity(o, 1);
        if (!['1.0', '1.0C', '1.1'].includes(o.args[0].text)) throw confError(o.loc, `http_protocol: "${o.args[0].text}" is not 1.0, 1.0C or 1.1`);
        notices.push({ loc: o.loc, message: 'http_protocol: checks always send HTTP/1.1 with "Connection: close"' });
        break;
      case 'fast_recovery':
        bool(o);
        break;
      case 'enable_sni':
        if (kind !== 'https') throw confError(o.loc, 'enable_sni only applies to SSL_GET');
        arity(o, 0);
        sni = true;
        break;
      case 'tls_compliant':
        break;
      case 'misc_path':
        if (kind !== 'misc') throw confError(o.loc, 'misc_path only applies to MISC_CHECK');
        miscArgv = script(o);
        break;
      case 'misc_timeout':
        if (kind !== 'misc') throw confError(o.loc, 'misc_timeout only applies to MISC_CHECK');
        arity(o, 1);
        miscTimeoutMs = int(o, 0, 1, 86_400) * 1000;
        break;
      case 'misc_dynamic':
        if (kind !== 'misc') throw confError(o.loc, 'misc_dynamic only applies to MISC_CHECK');
        arity(o, 0);
        miscDynamic = true;
        break;
      case 'user':
        throw unsupported(o.loc, 'user: running MISC_CHECK as another user is not supported; xdpvsd runs it as itself');
      case 'payload':
        if (kind !== 'udp') throw confError(o.loc, 'payload only applies to UDP_CHECK');
        arity(o, 1, 64);
        payload = hexBytes(o, o.args.map((a) => a.text).join(' '), false).bytes;
        break;
      case 'require_reply':
        if (kind !== 'udp') throw confError(o.loc, 'require_reply only applies to UDP_CHECK');
        requireReply = true;
        if (o.args.length) replyPattern = hexBytes(o, o.args.map((a) => a.text).join(' '), true);
        break;
      case 'min_reply_length':
        if (kind !== 'udp') throw confError(o.loc, 'min_reply_length only applies to UDP_CHECK');
        arity(o, 1);
        minReply = int(o, 0, 0, 65535);
        break;
      case 'max_reply_length':
        if (kind !== 'udp') throw confError(o.loc, 'max_reply_length only applies to UDP_CHECK');
        arity(o, 1);
        maxReply = int(o, 0, 0, 65535);
        break;
      default:
        throw confError(o.loc, `unknown keyword "${o.key}" in ${st.key}`);
    }
  }
  const timing = resolveTiming(t, kind, miscTimeoutMs);
  const ep = formatEndpoint(parseAddress(host), cport);
  switch (kind) {
    case 'tcp':
      return { name: `TCP_CHECK ${ep}`, probe: { kind, host, port: cport, bindto, bindPort }, timing };
    case 'http':
    case 'https':
      if (urls.length === 0) throw confError(st.loc, `${st.key} needs at least one url { path ... }`);
      return {
        name: `${st.key} ${ep}${urls.map((u) => u.path).join(',')}`,
        probe: { kind, host, port: cport, bindto, bindPort, urls, virtualhost: t.virtualhost, sni },
        timing,
      };
    case 'udp':
      return {
        name: `UDP_CHECK ${ep}`,
        probe: { kind, host, port: cport, bindto, bindPort, payload, requireReply, replyPattern, minReplyLength: minReply, maxReplyLength: maxReply },
        timing,
      };
    case 'misc':
      if (!miscArgv) throw confError(st.loc, 'MISC_CHECK needs misc_path');
      return { name: `MISC_CHECK ${miscArgv.join(' ')}`, probe: { kind, argv: miscArgv, dynamic: miscDynamic }, timing };
  }
}

// ---- virtual and real servers -----------------------------------------------------------------------------------

interface VsEntry {
  address: IpAddress;
  port: number;
}

function parseGroup(st: Statement): VsEntry[] {
  arity(st, 1);
  const out: VsEntry[] = [];
  for (const e of needBlock(st)) {
    noBlock(e);
    if (e.key === 'fwmark') throw unsupported(e.loc, 'fwmark services are not supported (xdpvs matches address, protocol and port)');
    const m = /^(.+?)-(\d+)$/.exec(e.key);
    if (e.key.includes('/')) throw unsupported(e.loc, `address ranges with a prefix (${e.key}) are not supported; list the addresses`);
    if (e.args.length !== 1) throw confError(e.loc, `virtual_server_group entry "${e.key}" needs a port (services without a port need persistence)`);
    const p = int(e, 0, 1, 65535);
    if (m && !m[1].includes(':') && /^\d+\.\d+\.\d+\.\d+$/.test(m[1])) {
      const first = parseAddress(m[1]);
      const last = Number(m[2]);
      if (last < first.bytes[3] || last > 255) throw confError(e.loc, `range ${e.key} is backwards or out of range`);
      for (let x = first.bytes[3]; x <= last; x++) {
        out.push({ address: parseAddress(`${first.bytes[0]}.${first.bytes[1]}.${first.bytes[2]}.${x}`), port: p });
      }
    } else {
      try {
        out.push({ address: parseAddress(e.key), port: p });
      } catch (err) {
        throw confError(e.loc, (err as Error).message);
      }
    }
  }
  return out;
}

function parseRealServer(
  st: Statement,
  family: IpAddress['family'],
  vsPort: number,
  vsMethod: Method,
  inherited: Inherited,
  vsInhibit: boolean,
  notices: Notices,
): { rs: KaRealServer; health: ServerHealthSpec; id: string } {
  arity(st, 1, 2);
  const addr = address(st, 0);
  if (addr.family !== family) throw confError(st.loc, `real server ${addr.text} is not of the virtual server's address family`);
  const rsPort = st.args.length > 1 ? port(st, 1) : vsPort;
  const t: Inherited = { ...inherited };
  let weight = 1;
  let m = vsMethod;
  let inhibit = vsInhibit;
  let notifyUp: string[] | undefined;
  let notifyDown: string[] | undefined;
  const checkerStatements: Statement[] = [];
  for (const o of needBlock(st)) {
    if (CHECKERS.has(o.key)) {
      checkerStatements.push(o);
      continue;
    }
    if (UNSUPPORTED_CHECKERS.has(o.key)) throw unsupported(o.loc, `${o.key} is not supported (TCP_CHECK, HTTP_GET, SSL_GET, UDP_CHECK and MISC_CHECK are)`);
    noBlock(o);
    if (timingKeyword(o, t)) continue;
    switch (o.key) {
      case 'weight':
        arity(o, 1);
        weight = int(o, 0, 0, MAX_WEIGHT);
        break;
      case 'lvs_method':
      case 'lb_kind':
        m = method(o);
        break;
      case 'inhibit_on_failure':
        inhibit = bool(o);
        break;
      case 'notify_up':
        notifyUp = script(o);
        break;
      case 'notify_down':
        notifyDown = script(o);
        break;
      case 'smtp_alert':
      case 'snmp_name':
        notices.push({ loc: o.loc, message: `${o.key}: not used by xdpvsd (no mail, no SNMP)` });
        break;
      case 'uthreshold':
      case 'lthreshold':
        throw unsupported(o.loc, `${o.key} (connection thresholds) is not supported yet`);
      default:
        throw confError(o.loc, `unknown keyword "${o.key}" in real_server`);
    }
  }
  const checks = checkerStatements.map((c) => parseChecker(c, addr, rsPort, t, notices));
  const id = formatEndpoint(addr, rsPort);
  return {
    rs: { address: addr.text, port: rsPort, method: m, weight, loc: st.loc },
    health: { weight, checks, inhibitOnFailure: inhibit, notifyUp, notifyDown },
    id,
  };
}

function parseVirtualServer(st: Statement, groups: Map<string, { entries: VsEntry[]; loc: Loc }>, notices: Notices): KaService[] {
  let entries: VsEntry[];
  if (st.args[0]?.text === 'fwmark') throw unsupported(st.loc, 'virtual_server fwmark is not supported (xdpvs matches address, protocol and port)');
  if (st.args[0]?.text === 'group') {
    arity(st, 2);
    const g = groups.get(st.args[1].text);
    if (!g) throw confError(st.loc, `virtual_server_group "${st.args[1].text}" is not defined (define it before its use)`);
    entries = g.entries;
  } else {
    if (st.args.length === 1) throw unsupported(st.loc, 'a virtual_server without a port (all ports, persistent) is not supported');
    arity(st, 2);
    entries = [{ address: address(st, 0), port: port(st, 1) }];
  }
  const block = needBlock(st);
  const t: Inherited = {};
  let protocol: Protocol = 'tcp';
  let scheduler: string | undefined;
  const flags: string[] = [];
  let vsMethod: Method = 'nat'; // keepalived's default forwarding method
  let inhibit = false;
  let quorum = 1;
  let hysteresis = 0;
  let quorumUp: string[] | undefined;
  let quorumDown: string[] | undefined;
  let omega = false;
  let persistent: number | undefined;
  let netmask: string | number | undefined;
  let sorry: (Omit<SorryServerSpec, 'method'> & { method?: Method; loc: Loc }) | undefined;
  let sorryInhibitLoc: Loc | undefined;
  let sorryMethod: Method | undefined;
  const rsStatements: Statement[] = [];
  for (const o of block) {
    if (o.key === 'real_server') {
      rsStatements.push(o);
      continue;
    }
    noBlock(o);
    if (timingKeyword(o, t)) continue;
    switch (o.key) {
      case 'lb_algo':
      case 'lvs_sched':
        arity(o, 1);
        scheduler = o.args[0].text;
        break;
      case 'lb_kind':
      case 'lvs_method':
        vsMethod = method(o);
        break;
      case 'protocol':
        arity(o, 1);
        if (/^tcp$/i.test(o.args[0].text)) protocol = 'tcp';
        else if (/^udp$/i.test(o.args[0].text)) protocol = 'udp';
        else if (/^sctp$/i.test(o.args[0].text)) throw unsupported(o.loc, 'protocol SCTP is not supported (TCP and UDP are)');
        else throw confError(o.loc, `protocol: "${o.args[0].text}" is not TCP, UDP or SCTP`);
        break;
      case 'persistence_timeout':
        arity(o, 1);
        persistent = int(o, 0, 1, 31_536_000);
        break;
      case 'persistence_granularity':
        arity(o, 1);
        netmask = /^\d+$/.test(o.args[0].text) ? Number(o.args[0].text) : o.args[0].text;
        break;
      case 'persistence_engine':
        throw unsupported(o.loc, 'persistence_engine is not supported');
      case 'inhibit_on_failure':
        inhibit = bool(o);
        break;
      case 'quorum':
        arity(o, 1);
        quorum = int(o, 0, 1, 1_000_000_000);
        break;
      case 'hysteresis':
        arity(o, 1);
        hysteresis = int(o, 0, 0, 1_000_000_000);
        break;
      case 'quorum_up':
        quorumUp = script(o);
        break;
      case 'quorum_down':
        quorumDown = script(o);
        break;
      case 'omega':
        arity(o, 0);
        omega = true;
        break;
      case 'sorry_server': {
        arity(o, 1, 2);
        const a = address(o, 0);
        sorry = { address: a.text, port: o.args.length > 1 ? port(o, 1) : entries[0].port, inhibit: false, loc: o.loc };
        break;
      }
      case 'sorry_server_inhibit':
        arity(o, 0);
        sorryInhibitLoc = o.loc;
        break;
      case 'sorry_server_lvs_method':
        sorryMethod = method(o);
        break;
      case 'mh-port':
      case 'sh-port':
        arity(o, 0);
        flags.push(o.key);
        break;
      case 'flag-1':
      case 'flag-2':
      case 'flag-3':
      case 'mh-fallback':
      case 'sh-fallback':
      case 'ops':
      case 'hashed':
        throw unsupported(o.loc, `${o.key} is not supported`);
      case 'ha_suspend':
        throw unsupported(o.loc, 'ha_suspend is not supported (checks always run)');
      case 'ip_family':
        arity(o, 1);
        if (o.args[0].text !== 'inet' && o.args[0].text !== 'inet6') throw confError(o.loc, `ip_family: "${o.args[0].text}" is not inet or inet6`);
        if (entries.some((e) => e.address.family !== o.args[0].text)) throw confError(o.loc, `ip_family ${o.args[0].text} does not match the virtual server's address`);
        break;
      case 'smtp_alert':
      case 'snmp_name':
        notices.push({ loc: o.loc, message: `${o.key}: not used by xdpvsd (no mail, no SNMP)` });
        break;
      default:
        throw confError(o.loc, `unknown keyword "${o.key}" in virtual_server`);
    }
  }
  if (sorryInhibitLoc && !sorry) throw confError(sorryInhibitLoc, 'sorry_server_inhibit without a sorry_server before it');

  const services: KaService[] = [];
  for (const e of entries) {
    const servers: KaRealServer[] = [];
    const healthServers = new Map<string, ServerHealthSpec>();
    for (const r of rsStatements) {
      const { rs, health, id } = parseRealServer(r, e.address.family, e.port, vsMethod, t, inhibit, notices);
      if (healthServers.has(id)) throw confError(r.loc, `real_server ${id} appears twice in this virtual_server`);
      servers.push(rs);
      healthServers.set(id, health);
    }
    let sorryServer: SorryServerSpec | undefined;
    if (sorry) {
      const sa = parseAddress(sorry.address);
      if (sa.family !== e.address.family) throw confError(sorry.loc, 'sorry_server is not of the virtual server\'s address family');
      const sid = formatEndpoint(sa, sorry.port);
      if (healthServers.has(sid)) throw confError(sorry.loc, `sorry_server ${sid} is also a real_server of this virtual_server`);
      sorryServer = { address: sa.text, port: sorry.port, method: sorryMethod ?? vsMethod, inhibit: Boolean(sorryInhibitLoc) };
    }
    services.push({
      id: `${protocol}:${formatEndpoint(e.address, e.port)}`,
      protocol,
      address: e.address.text,
      port: e.port,
      scheduler,
      flags: [...flags],
      ...(persistent !== undefined ? { persistent } : {}),
      ...(netmask !== undefined ? { netmask } : {}),
      servers,
      health: { quorum, hysteresis, quorumUp, quorumDown, sorryServer, omega, servers: healthServers },
      loc: st.loc,
    });
  }
  return services;
}

// ---- the file ---------------------------------------------------------------------------------------------------

export function mapKeepalived(parsed: ParseResult): KeepalivedConfig {
  const notices: Notices = [...parsed.notices];
  const groups = new Map<string, { entries: VsEntry[]; loc: Loc }>();
  const services: KaService[] = [];
  const seen = new Map<string, Loc>();
  let routerId: string | undefined;
  for (const st of parsed.statements) {
    if (LEFT_TO_KEEPALIVED.has(st.key)) {
      notices.push({ loc: st.loc, message: `${st.key}${st.args.length ? ` ${st.args.map((a) => a.text).join(' ')}` : ''}: left to keepalived itself (run keepalived for VRRP; xdpvsd only reads the LVS part)` });
      continue;
    }
    switch (st.key) {
      case 'global_defs': {
        const unused: string[] = [];
        for (const g of needBlock(st)) {
          if (g.key === 'router_id') {
            arity(g, 1);
            routerId = g.args[0].text;
          } else if (g.key === 'lvs_sync_daemon') {
            notices.push({ loc: g.loc, message: 'lvs_sync_daemon: IPVS connection sync is not used by xdpvsd' });
          } else if (g.key === 'lvs_flush' || g.key === 'lvs_flush_onstop') {
            notices.push({ loc: g.loc, message: `${g.key}: xdpvsd manages only the services this file names; others are left alone` });
          } else if (g.key === 'lvs_timeouts') {
            throw unsupported(g.loc, 'lvs_timeouts is not supported yet (xdpvsd uses IPVS\'s default timeouts 900 120 300)');
          } else if (harmlessGlobal(g.key)) {
            unused.push(g.key);
          } else {
            throw confError(g.loc, `unknown keyword "${g.key}" in global_defs`);
          }
        }
        if (unused.length) notices.push({ loc: st.loc, message: `global_defs: not used by xdpvsd: ${[...new Set(unused)].join(', ')}` });
        break;
      }
      case 'virtual_server_group': {
        const entries = parseGroup(st);
        if (groups.has(st.args[0].text)) throw confError(st.loc, `virtual_server_group "${st.args[0].text}" is defined twice`);
        groups.set(st.args[0].text, { entries, loc: st.loc });
        break;
      }
      case 'virtual_server':
        for (const s of parseVirtualServer(st, groups, notices)) {
          const prev = seen.get(s.id);
          if (prev) throw confError(st.loc, `virtual server ${s.id} is already defined at ${prev.file}:${prev.line}`);
          seen.set(s.id, st.loc);
          services.push(s);
        }
        break;
      case 'SSL':
        throw unsupported(st.loc, 'the SSL block (client certificates for SSL_GET) is not supported; SSL_GET connects without one');
      default:
        throw confError(st.loc, `unknown keyword "${st.key}"`);
    }
  }
  return { routerId, services, notices, files: parsed.files };
}

export function loadKeepalivedConfig(file: string): KeepalivedConfig {
  return mapKeepalived(parseKeepalivedFile(file));
}

/** The notices as one line each, FILE:LINE first. */
export function formatNotices(cfg: Pick<KeepalivedConfig, 'notices'>): string[] {
  return cfg.notices.map((n) => `${n.loc.file}:${n.loc.line}: ${n.message}`);
}

