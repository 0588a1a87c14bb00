// xdpvsadm's command line -> one typed command, with ipvsadm 1.31's syntax, defaults, checks and messages; no I/O.

import { ErrorCode, XdpvsError, isXdpvsError } from '../errors.js';
import { splitEndpoint, type EndpointText, type Family } from '../lb/address.js';
import {
  DEFAULT_METHOD,
  DEFAULT_SCHEDULER,
  DEFAULT_WEIGHT,
  MAX_WEIGHT,
  type Method,
  type Protocol,
  type ServiceSpec as ApiServiceSpec,
} from '../lb/model.js';
import { SCHEDULERS, findScheduler } from '../lb/schedulers.js';

// ipvsadm's defaults (-A and -E without -s ask for DEFAULT_SCHEDULER, which the daemon may refuse as not supported
// yet; -a and -e without -w or a method take DEFAULT_WEIGHT and DEFAULT_METHOD) live in src/lb/model.ts.

/** ipvsadm's exit statuses: fail(2, ...) for bad input, -1 (255) for option-syntax errors and refused changes. */
export const EXIT_USAGE = 2;
export const EXIT_OPTION_SYNTAX = 255;
/** xdpvsadm's own: an option ipvsadm knows that xdpvs does not do yet. */
export const EXIT_UNSUPPORTED = 1;

/** The service a command names: the API's protocol, address and port (0 when the command line gave no port, as
 * ipvsadm), and the address's family. */
export interface ServiceSpec extends Pick<ApiServiceSpec, 'protocol' | 'address' | 'port'> {
  family: Family;
}

/** The real server a command names. */
export type ServerSpec = Omit<ServiceSpec, 'protocol'>;

export type Command =
  | { kind: 'help' }
  | { kind: 'version' }
  | {
      kind: 'list';
      service?: ServiceSpec;
      stats: boolean;
      /** --rate: CPS, InPPS, OutPPS, InBPS, OutBPS instead of the scheduler columns (--stats wins over it). */
      rate: boolean;
      /** --exact: whole numbers in --stats and --rate, never K/M/G/T. */
      exact: boolean;
      json: boolean;
      numeric: boolean;
      sort: boolean;
      /** -c: the connection table (ipvsadm -Lnc); --timeout: the timeouts; --thresholds, --persistent-conn:
       * those columns for the real servers. Present only when given. */
      connections?: boolean;
      timeout?: boolean;
      thresholds?: boolean;
      persistentConn?: boolean;
    }
  | { kind: 'save'; numeric: boolean }
  | { kind: 'restore' }
  | { kind: 'zero'; service?: ServiceSpec }
  | { kind: 'add-service'; service: ServiceSpec; scheduler: string; flags: string[]; persistent?: number; netmask?: string }
  | { kind: 'edit-service'; service: ServiceSpec; scheduler: string; flags: string[]; persistent?: number; netmask?: string }
  | { kind: 'set'; tcp: number; tcpfin: number; udp: number }
  | { kind: 'delete-service'; service: ServiceSpec }
  | { kind: 'clear' }
  | { kind: 'add-server'; service: ServiceSpec; server: ServerSpec; method: Method; weight: number; upperThreshold?: number; lowerThreshold?: number }
  | { kind: 'edit-server'; service: ServiceSpec; server: ServerSpec; method: Method; weight: number; upperThreshold?: number; lowerThreshold?: number }
  | { kind: 'delete-server'; service: ServiceSpec; server: ServerSpec };

export type CommandKind = Command['kind'];

/** Where the daemon is, when the command line says so (see discover.ts for the rest of the search). */
export interface ConnectionOptions {
  server?: string;
  tokenFile?: string;
}

export interface Invocation {
  command: Command;
  connection: ConnectionOptions;
}

export interface ParseOptions {
  /** Port names ("http") as getservbyname() would give them; without it only numbers are accepted. */
  resolvePort?: (name: string, protocol: Protocol) => number | undefined;
}

// ---- errors -------------------------------------------------------------------------------------------------

/** Bad input ipvsadm refuses with fail(2, msg): the message is ipvsadm's, word for word. */
function usageError(message: string): XdpvsError {
  return new XdpvsError(ErrorCode.Invalid, message, { exitCode: EXIT_USAGE });
}

/** Option syntax popt refuses ("--foo: unknown option"); ipvsadm then says "Try ..." and returns -1 (255). */
function syntaxError(message: string): XdpvsError {
  return new XdpvsError(ErrorCode.Invalid, message, { exitCode: EXIT_OPTION_SYNTAX, tryHelp: true });
}

function unsupported(spelled: string): XdpvsError {
  return new XdpvsError(ErrorCode.Unsupported, `${spelled} is not supported yet`, {
    exitCode: EXIT_UNSUPPORTED,
    option: spelled,
  });
}

// ---- the option table ---------------------------------------------------------------------------------------

/** ipvsadm's names for options in its messages ("multiple 'weight' options specified"), in its check order. */
const OPTION_NAMES = [
  'numeric',
  'service-address',
  'scheduler',
  'real-server',
  'forwarding-method',
  'weight',
  'stats',
  'rate',
  'nosort',
  'exact',
  'sched-flags',
  'tun-type',
  'json', // ours
] as const;
type OptionName = (typeof OPTION_NAMES)[number];

/** ipvsadm's cmdnames, used in its messages. */
const COMMAND_NAMES = {
  'add-service': 'add-service',
  'edit-service': 'edit-service',
  'delete-service': 'delete-service',
  clear: 'flush',
  list: 'list',
  'add-server': 'add-server',
  'edit-server': 'edit-server',
  'delete-server': 'delete-server',
  restore: 'restore',
  save: 'save',
  zero: 'zero',
  set: 'set',
} as const;
type TableCommand = keyof typeof COMMAND_NAMES;

/**
 * ipvsadm's commands_v_options for the options xdpvs has, one column per OPTION_NAMES entry:
 * '+' compulsory, 'x' illegal, '.' optional (ipvsadm writes ' ').
 */
const LEGAL: Record<TableCommand, string> = {
  // n numeric, a service-address, s scheduler, r real-server, f forwarding-method, w weight, t stats, R rate,
  // o nosort, e exact, b sched-flags, T tun-type, j json
  //                n a s r f w t R o e b T j
  'add-service':    'x + . x x x x x x x . x x',
  'edit-service':   'x + . x x x x x x x . x x',
  'delete-service': 'x + x x x x x x x x x x x',
  clear:            'x x x x x x x x x x x x x',
  list:             '. . x x x x . . . . x x .',
  'add-server':     'x + x + . . x x x x x . x',
  'edit-server':    'x + x + . . x x x x x . x',
  'delete-server':  'x + x + x x x x x x x x x',
  restore:          'x x x x x x x x x x x x x',
  save:             '. x x x x x x x x x x x x',
  zero:             'x . x x x x x x x x x x x',
  set:              'x x x x x x x x x x x x x',
};

/**
 * The same rules for the options of connections, persistence and thresholds (ipvsadm's -c, -p, -M, -x, -y,
 * --timeout, --thresholds, --persistent-conn), in ipvsadm's order; a command missing here takes none of them.
 * '1': exclusive in -L, with each other and with the service address (ipvsadm's '1' columns).
 */
const LVS_OPTION_NAMES = ['connection', 'persistent', 'netmask', 'u-threshold', 'l-threshold', 'timeout', 'thresholds', 'persistent-conn'] as const;
type LvsOptionName = (typeof LVS_OPTION_NAMES)[number];
const LVS_LEGAL: Partial<Record<TableCommand, string>> = {
  // c connection, p persistent, M netmask, x u-threshold, y l-threshold, T timeout, h thresholds, P persistent-conn
  //                c p M x y T h P
  'add-service':    'x . . x x x x x',
  'edit-service':   'x . . x x x x x',
  list:             '1 x x x x 1 . .',
  'add-server':     'x x x . . x x x',
  'edit-server':    'x x x . . x x x',
};

/** ipvsadm's order of the exclusive ('1') options of -L: connection, service-address, timeout. */
const LIST_EXCLUSIVE = ['connection', 'service-address', 'timeout'] as const;

/** ipvsadm's MAX_TIMEOUT (31 days): -p and --set take at most this. */
const MAX_TIMEOUT = 86400 * 31;

function rule(command: TableCommand, option: OptionName): string {
  return LEGAL[command].split(' ')[OPTION_NAMES.indexOf(option)];
}

type Spec =
  | { type: 'command'; command: TableCommand | 'help' | 'version' }
  | {
      type: 'value';
      key: 'tcp' | 'udp' | 'scheduler' | 'real-server' | 'weight' | 'sched-flags' | 'tun-type' | 'server' | 'token-file' | 'netmask' | 'u-threshold' | 'l-threshold';
    }
  /** popt's optional argument (-p [timeout]): the rest of the word, or the next word unless it is an option. */
  | { type: 'optional'; key: 'persistent' }
  | { type: 'flag'; key: 'g' | 'i' | 'm' | 'numeric' | 'stats' | 'rate' | 'exact' | 'nosort' | 'sort' | 'json' | 'connection' | 'timeout' | 'thresholds' | 'persistent-conn' }
  | { type: 'unsupported' };

const LONG = new Map<string, Spec>([
  ['add-service', { type: 'command', command: 'add-service' }],
  ['edit-service', { type: 'command', command: 'edit-service' }],
  ['delete-service', { type: 'command', command: 'delete-service' }],
  ['clear', { type: 'command', command: 'clear' }],
  ['list', { type: 'command', command: 'list' }],
  ['add-server', { type: 'command', command: 'add-server' }],
  ['edit-server', { type: 'command', command: 'edit-server' }],
  ['delete-server', { type: 'command', command: 'delete-server' }],
  ['zero', { type: 'command', command: 'zero' }],
  ['save', { type: 'command', command: 'save' }],
  ['restore', { type: 'command', command: 'restore' }],
  ['help', { type: 'command', command: 'help' }],
  ['version', { type: 'command', command: 'version' }],
  ['tcp-service', { type: 'value', key: 'tcp' }],
  ['udp-service', { type: 'value', key: 'udp' }],
  ['scheduler', { type: 'value', key: 'scheduler' }],
  ['real-server', { type: 'value', key: 'real-server' }],
  ['weight', { type: 'value', key: 'weight' }],
  ['sched-flags', { type: 'value', key: 'sched-flags' }],
  ['tun-type', { type: 'value', key: 'tun-type' }],
  ['gatewaying', { type: 'flag', key: 'g' }],
  ['ipip', { type: 'flag', key: 'i' }],
  ['masquerading', { type: 'flag', key: 'm' }],
  ['numeric', { type: 'flag', key: 'numeric' }],
  ['stats', { type: 'flag', key: 'stats' }],
  ['rate', { type: 'flag', key: 'rate' }],
  ['exact', { type: 'flag', key: 'exact' }],
  ['nosort', { type: 'flag', key: 'nosort' }],
  ['sort', { type: 'flag', key: 'sort' }],
  ['set', { type: 'command', command: 'set' }],
  ['persistent', { type: 'optional', key: 'persistent' }],
  ['netmask', { type: 'value', key: 'netmask' }],
  ['u-threshold', { type: 'value', key: 'u-threshold' }],
  ['l-threshold', { type: 'value', key: 'l-threshold' }],
  ['connection', { type: 'flag', key: 'connection' }],
  ['timeout', { type: 'flag', key: 'timeout' }],
  ['thresholds', { type: 'flag', key: 'thresholds' }],
  ['persistent-conn', { type: 'flag', key: 'persistent-conn' }],
  // xdpvsadm's own options.
  ['json', { type: 'flag', key: 'json' }],
  ['server', { type: 'value', key: 'server' }],
  ['token-file', { type: 'value', key: 'token-file' }],
  // Known to ipvsadm, not done by xdpvs yet: refused, never ignored.
  ...[
    'start-daemon', 'stop-daemon', 'fwmark-service', 'sctp-service',
    'ipv6', 'ops', 'pe', 'mcast-interface', 'syncid',
    'daemon', 'mcast-group', 'mcast-port', 'mcast-ttl',
    'sync-maxlen', 'tun-info', 'tun-port', 'tun-nocsum', 'tun-csum', 'tun-remcsum',
  ].map((name): [string, Spec] => [name, { type: 'unsupported' }]),
]);

const SHORT = new Map<string, Spec>([
  ['A', LONG.get('add-service')!],
  ['E', LONG.get('edit-service')!],
  ['D', LONG.get('delete-service')!],
  ['C', LONG.get('clear')!],
  ['L', LONG.get('list')!],
  ['l', LONG.get('list')!],
  ['a', LONG.get('add-server')!],
  ['e', LONG.get('edit-server')!],
  ['d', LONG.get('delete-server')!],
  ['h', LONG.get('help')!],
  ['v', LONG.get('version')!],
  ['t', LONG.get('tcp-service')!],
  ['u', LONG.get('udp-service')!],
  ['s', LONG.get('scheduler')!],
  ['r', LONG.get('real-server')!],
  ['w', LONG.get('weight')!],
  ['b', LONG.get('sched-flags')!],
  ['g', LONG.get('gatewaying')!],
  ['i', LONG.get('ipip')!],
  ['m', LONG.get('masquerading')!],
  ['n', LONG.get('numeric')!],
  ['Z', LONG.get('zero')!],
  ['S', LONG.get('save')!],
  ['R', LONG.get('restore')!],
  ['p', LONG.get('persistent')!],
  ['M', LONG.get('netmask')!],
  ['x', LONG.get('u-threshold')!],
  ['y', LONG.get('l-threshold')!],
  ['c', LONG.get('connection')!],
  // -f -6 -o -X
  ...['f', '6', 'o', 'X'].map((c): [string, Spec] => [c, { type: 'unsupported' }]),
]);

// ---- value parsers ------------------------------------------------------------------------------------------

/** strtol(s, &end, 10) that must consume the whole string, then a range check (ipvsadm's string_to_number). */
function toNumber(text: string, min: number, max: number): number | undefined {
  if (!/^\s*[+-]?[0-9]+$/.test(text)) return undefined;
  const n = Number(text.trim());
  return Number.isSafeInteger(n) && n >= min && n <= max ? n : undefined;
}

interface HostPort {
  address: string;
  family: Family;
  port?: number;
}

/**
 * ipvsadm's parse_service(): "[v6]:port", a bare IPv6 address (no port: "fd00::1:80" is an address), or
 * "v4[:port]", in the syntax of src/lb/address.ts. Host names are refused (xdpvsadm does no DNS); the port is
 * ipvsadm's (0..65535, port names through resolvePort).
 */
export function parseHostPort(
  text: string,
  protocol: Protocol,
  resolvePort?: ParseOptions['resolvePort'],
): HostPort | undefined {
  let parts: EndpointText;
  try {
    parts = splitEndpoint(text, { portOptional: true });
  } catch (e) {
    if (isXdpvsError(e, ErrorCode.Invalid)) return undefined;
    throw e;
  }
  const { address, portText } = parts;
  if (portText === undefined) {
    // Brackets need ":port" after them in ipvsadm's syntax.
    return text.startsWith('[') ? undefined : { address: address.text, family: address.family };
  }
  let port = toNumber(portText, 0, 65535);
  if (port === undefined && portText !== '' && resolvePort) {
    const byName = resolvePort(portText, protocol);
    if (byName !== undefined && byName >= 0 && byName <= 65535) port = byName;
  }
  if (port === undefined) return undefined;
  return { address: address.text, family: address.family, port };
}

/** IP_VS_SVC_F_SCHED1..3 by ipvsadm's generic names, in bit order. */
const GENERIC_FLAGS: readonly (readonly [name: string, bit: number])[] = [
  ['flag-1', 1],
  ['flag-2', 2],
  ['flag-3', 4],
];

/** What a scheduler with flags of its own (see ownsSchedFlags) calls two of the bits, "<scheduler>-<suffix>"
 * (in the help's order). */
const OWN_FLAGS: readonly (readonly [suffix: string, bit: number])[] = [
  ['port', 2],
  ['fallback', 1],
];

/** Whether the scheduler has flags of its own in the registry (sh, mh): then it names the flag bits after itself. */
export function ownsSchedFlags(scheduler: string): boolean {
  return (findScheduler(scheduler)?.flags.length ?? 0) > 0;
}

/** Every flag name -b takes -> its bit, and the scheduler it needs: each scheduler's own names, then the generic. */
const FLAG_BITS = new Map<string, { bit: number; needs?: string }>([
  ...SCHEDULERS.filter((s) => ownsSchedFlags(s.name)).flatMap((s) =>
    OWN_FLAGS.map(([suffix, bit]): [string, { bit: number; needs: string }] => [`${s.name}-${suffix}`, { bit, needs: s.name }]),
  ),
  ...GENERIC_FLAGS.map(([name, bit]): [string, { bit: number }] => [name, { bit }]),
]);

/** The scheduler flag names -b takes, for the help text. */
export const SCHED_FLAG_NAMES: readonly string[] = [...FLAG_BITS.keys()];

/** The API's names for scheduler flag bits (IP_VS_SVC_F_SCHED1..3): named after the scheduler that reads them. */
export function schedFlagNames(scheduler: string, bits: number): string[] {
  const own = ownsSchedFlags(scheduler);
  return GENERIC_FLAGS.filter(([, bit]) => bits & bit).map(([generic, bit]) => {
    const suffix = own ? OWN_FLAGS.find(([, b]) => b === bit)?.[0] : undefined;
    return suffix ? `${scheduler}-${suffix}` : generic;
  });
}

/** Scheduler flag names -> IP_VS_SVC_F_SCHED1..3 bits; unknown names are ignored. */
export function schedFlagBits(flags: readonly string[]): number {
  let bits = 0;
  for (const f of flags) bits |= FLAG_BITS.get(f)?.bit ?? 0;
  return bits;
}

/** ipvsadm's parse_sched_flags(): comma-separated, each checked against the scheduler (wlc when -s is absent). */
function parseSchedFlags(scheduler: string, text: string): string[] {
  const tokens = text.split(',').filter((t) => t !== '');
  if (tokens.length === 0) throw usageError(`invalid scheduler flag \`${text}'`);
  let bits = 0;
  for (const token of tokens) {
    const known = FLAG_BITS.get(token);
    if (!known) throw usageError(`invalid scheduler flag \`${token}'`);
    if (known.needs && known.needs !== scheduler) throw usageError(`incompatible scheduler flag \`${token}'`);
    bits |= known.bit;
  }
  return schedFlagNames(scheduler, bits);
}

// ---- connections, persistence, prefix services --------------------------------------------------------------

/** ipvsadm's -p without a value: IPVS_SVC_PERSISTENT_TIMEOUT. */
const DEFAULT_PERSISTENT = 300;

/**
 * -M: for IPv4 a dotted netmask ("illegal virtual server netmask specified"), for IPv6 a prefix length 1..128
 * ("illegal ipv6 netmask specified"), as ipvsadm. Returns the text as the API takes it.
 */
function parseNetmaskOption(text: string, family: Family): string {
  if (family === 'inet6') {
    const n = toNumber(text, 1, 128);
    if (n === undefined) throw usageError('illegal ipv6 netmask specified');
    return String(n);
  }
  const parts = text.split('.');
  const bytes = parts.map((p) => (/^\d{1,3}$/.test(p) ? Number(p) : NaN));
  const bits = bytes.length === 4 && bytes.every((b) => b <= 255) ? bytes.map((b) => b.toString(2).padStart(8, '0')).join('') : '';
  if (!/^1*0*$/.test(bits) || bits === '') throw usageError('illegal virtual server netmask specified');
  return text;
}

/** `ADDR/LEN:PORT` or `[V6ADDR/LEN]:PORT`: a service whose VIP is a prefix (an xdpvs extension). */
function parsePrefixHostPort(text: string): HostPort | undefined {
  const m = /^\[([^\]]+)\/(\d{1,3})\]:(\d{1,5})$/.exec(text) ?? /^([^:/]+)\/(\d{1,2}):(\d{1,5})$/.exec(text);
  if (!m) return undefined;
  const parsed = parseHostPort(m[1], 'tcp');
  const port = Number(m[3]);
  const len = Number(m[2]);
  if (!parsed || port > 65535 || len < 1 || len > (parsed.family === 'inet' ? 32 : 128)) return undefined;
  return { address: `${parsed.address}/${len}`, family: parsed.family, port };
}

// ---- the parser ---------------------------------------------------------------------------------------------

interface State {
  command?: TableCommand | 'help' | 'version';
  seen: Set<OptionName | LvsOptionName>;
  protocol?: Protocol;
  service?: HostPort;
  realServerText?: string;
  scheduler?: string;
  schedFlagsText?: string;
  method?: Method;
  weight?: number;
  stats: boolean;
  rate: boolean;
  exact: boolean;
  /** --tun-type: ipip (IPVS's default for -i, the only one xdpvs does). */
  tunType?: 'ipip';
  json: boolean;
  numeric: boolean;
  sort: boolean;
  connection: ConnectionOptions;
  positional: string[];
  /** -p's value; null for -p without one (ipvsadm's default timeout). */
  persistentText?: string | null;
  netmaskText?: string;
  upperThreshold?: number;
  lowerThreshold?: number;
  listConnections?: boolean;
  listTimeout?: boolean;
  listThresholds?: boolean;
  listPersistentConn?: boolean;
}

function setOption(state: State, name: OptionName | LvsOptionName): void {
  if (state.seen.has(name)) throw usageError(`multiple '${name}' options specified`);
  state.seen.add(name);
}

/** Apply one option; true when parsing stops here (-h, -v). */
function apply(state: State, spec: Spec, spelled: string, value: string | undefined, opts: ParseOptions): boolean {
  switch (spec.type) {
    case 'unsupported':
      throw unsupported(spelled);
    case 'command':
      if (spec.command === 'help' || spec.command === 'version') {
        state.command = spec.command;
        return true;
      }
      if (state.command !== undefined) throw usageError('multiple commands specified');
      state.command = spec.command;
      return false;
    case 'flag':
      switch (spec.key) {
        case 'g':
        case 'i':
        case 'm':
          setOption(state, 'forwarding-method');
          state.method = spec.key === 'g' ? 'dr' : spec.key === 'i' ? 'tunnel' : 'nat';
          break;
        case 'numeric':
          setOption(state, 'numeric');
          state.numeric = true;
          break;
        case 'stats':
          setOption(state, 'stats');
          state.stats = true;
          break;
        case 'rate':
          setOption(state, 'rate');
          state.rate = true;
          break;
        case 'exact':
          setOption(state, 'exact');
          state.exact = true;
          break;
        case 'nosort':
          setOption(state, 'nosort');
          state.sort = false;
          break;
        case 'sort':
          break; // ipvsadm: "does nothing, for backwards compatibility"
        case 'json':
          setOption(state, 'json');
          state.json = true;
          break;
        case 'connection':
          setOption(state, 'connection');
          state.listConnections = true;
          break;
        case 'timeout':
          setOption(state, 'timeout');
          state.listTimeout = true;
          break;
        case 'thresholds':
          setOption(state, 'thresholds');
          state.listThresholds = true;
          break;
        case 'persistent-conn':
          setOption(state, 'persistent-conn');
          state.listPersistentConn = true;
          break;
      }
      return false;
    case 'optional':
      setOption(state, 'persistent');
      state.persistentText = value ?? null;
      return false;
    case 'value': {
      const v = value as string;
      switch (spec.key) {
        case 'tcp':
        case 'udp': {
          setOption(state, 'service-address');
          state.protocol = spec.key;
          const parsed = v.includes('/') ? parsePrefixHostPort(v) : parseHostPort(v, spec.key, opts.resolvePort);
          if (!parsed) throw usageError('illegal virtual server address[:port] specified');
          state.service = parsed;
          break;
        }
        case 'real-server':
          setOption(state, 'real-server');
          state.realServerText = v;
          break;
        case 'scheduler':
          setOption(state, 'scheduler');
          state.scheduler = v;
          break;
        case 'weight': {
          setOption(state, 'weight');
          const w = toNumber(v, 0, MAX_WEIGHT);
          if (w === undefined) throw usageError('illegal weight specified');
          state.weight = w;
          break;
        }
        case 'sched-flags':
          setOption(state, 'sched-flags');
          state.schedFlagsText = v;
          break;
        case 'tun-type':
          // ipvsadm 1.31 saves every tunnelling real server with "--tun-type ipip" (or gue, gre): -R must take it.
          setOption(state, 'tun-type');
          if (v === 'gue' || v === 'gre') throw unsupported(`--tun-type ${v}`);
          if (v !== 'ipip') throw usageError('illegal tunnel type specified');
          state.tunType = v;
          break;
        case 'netmask':
          setOption(state, 'netmask');
          state.netmaskText = v;
          break;
        case 'u-threshold':
        case 'l-threshold': {
          setOption(state, spec.key);
          const n = toNumber(v, 0, 0x7fffffff);
          if (n === undefined) throw usageError(`illegal ${spec.key === 'u-threshold' ? 'u' : 'l'}_threshold specified`);
          if (spec.key === 'u-threshold') state.upperThreshold = n;
          else state.lowerThreshold = n;
          break;
        }
        case 'server':
          if (state.connection.server !== undefined) throw usageError("multiple 'server' options specified");
          state.connection.server = v;
          break;
        case 'token-file':
          if (state.connection.tokenFile !== undefined) throw usageError("multiple 'token-file' options specified");
          state.connection.tokenFile = v;
          break;
      }
      return false;
    }
  }
}

function takesValue(spec: Spec): boolean {
  return spec.type === 'value';
}

/**
 * Parse xdpvsadm's arguments (without the program name). Throws XdpvsError: XDPVS_ERR_INVALID with ipvsadm's
 * message and details.exitCode (2, or 255 with details.tryHelp for option syntax), or XDPVS_ERR_UNSUPPORTED
 * (exit code 1) for an ipvsadm option xdpvs does not do yet.
 *
 * Unlike ipvsadm (whose popt loop wants the command first), the command may come anywhere.
 */
export function parseArgs(argv: readonly string[], opts: ParseOptions = {}): Invocation {
  const state: State = {
    seen: new Set(),
    stats: false,
    rate: false,
    exact: false,
    json: false,
    numeric: false,
    sort: true,
    connection: {},
    positional: [],
  };
  let i = 0;
  scan: while (i < argv.length) {
    const arg = argv[i++];
    if (arg === '--') {
      state.positional.push(...argv.slice(i));
      break;
    }
    if (arg.startsWith('--')) {
      const eq = arg.indexOf('=');
      const name = eq >= 0 ? arg.slice(2, eq) : arg.slice(2);
      const spelled = `--${name}`;
      const spec = LONG.get(name);
      if (!spec) throw syntaxError(`${spelled}: unknown option`);
      let value: string | undefined;
      if (takesValue(spec)) {
        value = eq >= 0 ? arg.slice(eq + 1) : argv[i++];
        if (value === undefined) throw syntaxError(`${spelled}: missing argument`);
      } else if (spec.type === 'optional') {
        if (eq >= 0) value = arg.slice(eq + 1);
        else if (i < argv.length && !argv[i].startsWith('-')) value = argv[i++];
      } else if (eq >= 0 && spec.type !== 'unsupported') {
        throw syntaxError(`${spelled}: option does not take an argument`);
      }
      if (apply(state, spec, spelled, value, opts)) break scan;
      continue;
    }
    if (arg.startsWith('-') && arg.length > 1) {
      // A cluster: "-Ln", "-at VIP:80" (t takes the next word), "-w2" (w takes the rest of the word).
      for (let k = 1; k < arg.length; k++) {
        const spelled = `-${arg[k]}`;
        const spec = SHORT.get(arg[k]);
        if (!spec) throw syntaxError(`${spelled}: unknown option`);
        if (takesValue(spec)) {
          let value: string | undefined = arg.slice(k + 1);
          if (value === '') value = argv[i++];
          if (value === undefined) throw syntaxError(`${spelled}: missing argument`);
          if (apply(state, spec, spelled, value, opts)) break scan;
          break;
        }
        if (spec.type === 'optional') {
          // "-p60", or "-p 60"; "-p" before another option or at the end takes the default.
          let value: string | undefined = arg.slice(k + 1);
          if (value === '') value = i < argv.length && !argv[i].startsWith('-') ? argv[i++] : undefined;
          apply(state, spec, spelled, value, opts);
          break;
        }
        if (apply(state, spec, spelled, undefined, opts)) break scan;
      }
      continue;
    }
    state.positional.push(arg);
  }

  if (state.command === 'help' || state.command === 'version') {
    return { command: { kind: state.command }, connection: state.connection };
  }
  if (state.command === undefined) {
    // A bare "ipvsadm" lists the table; anything else without a command is a usage error.
    if (state.seen.size === 0 && state.positional.length === 0) {
      return {
        command: { kind: 'list', stats: false, rate: false, exact: false, json: false, numeric: false, sort: true },
        connection: state.connection,
      };
    }
    throw syntaxError('no command specified');
  }
  const command = state.command;

  // -r: ipvsadm's parse_service() with the service's protocol; without a port it takes the service's port.
  let server: ServerSpec | undefined;
  if (state.realServerText !== undefined) {
    const parsed = parseHostPort(state.realServerText, state.protocol ?? 'tcp', opts.resolvePort);
    if (!parsed) throw usageError('illegal real server address[:port] specified');
    server = { address: parsed.address, family: parsed.family, port: parsed.port ?? state.service?.port ?? 0 };
  }

  // --set takes its three timeouts as the next arguments (ipvsadm reads them with poptGetArg).
  let timeouts: [number, number, number] | undefined;
  if (command === 'set') {
    const [tcp, tcpfin, udp] = state.positional.splice(0, 3);
    if (udp === undefined) throw usageError('--set option requires 3 timeout values');
    timeouts = [tcp, tcpfin, udp].map((t) => {
      const n = toNumber(t, 0, MAX_TIMEOUT);
      if (n === undefined) throw usageError(`invalid timeout value \`${t}' specified`);
      return n;
    }) as [number, number, number];
  }

  if (state.positional.length > 0) throw usageError(`unexpected argument ${state.positional[0]}`);

  let flags: string[] = [];
  if (state.schedFlagsText !== undefined) {
    flags = parseSchedFlags(state.scheduler || DEFAULT_SCHEDULER, state.schedFlagsText);
  }

  // ipvsadm's generic_opt_check(): options in its order, first problem wins.
  for (const name of OPTION_NAMES) {
    const r = rule(command, name);
    if (!state.seen.has(name) && r === '+') {
      throw usageError(`You need to supply the '${name}' option for the '${COMMAND_NAMES[command]}' command`);
    }
    if (state.seen.has(name) && r === 'x') {
      throw usageError(`Illegal '${name}' option with the '${COMMAND_NAMES[command]}' command`);
    }
  }
  const lvsRow = LVS_LEGAL[command]?.split(' ');
  LVS_OPTION_NAMES.forEach((name, col) => {
    if (state.seen.has(name) && (lvsRow?.[col] ?? 'x') === 'x') {
      throw usageError(`Illegal '${name}' option with the '${COMMAND_NAMES[command]}' command`);
    }
  });
  if (command === 'list') {
    const given = LIST_EXCLUSIVE.filter((name) => state.seen.has(name));
    if (given.length > 1) {
      throw usageError(`The option '${given[1]}' conflicts with the '${given[0]}' option in the 'list' command`);
    }
  }

  const service: ServiceSpec | undefined =
    state.service && state.protocol
      ? {
          protocol: state.protocol,
          address: state.service.address,
          family: state.service.family,
          port: state.service.port ?? 0,
        }
      : undefined;
  const connection = state.connection;

  switch (command) {
    case 'list':
      return {
        command: {
          kind: 'list',
          service,
          stats: state.stats,
          rate: state.rate,
          exact: state.exact,
          json: state.json,
          numeric: state.numeric,
          sort: state.sort,
          ...(state.listConnections ? { connections: true } : {}),
          ...(state.listTimeout ? { timeout: true } : {}),
          ...(state.listThresholds ? { thresholds: true } : {}),
          ...(state.listPersistentConn ? { persistentConn: true } : {}),
        },
        connection,
      };
    case 'set':
      return { command: { kind: 'set', tcp: timeouts![0], tcpfin: timeouts![1], udp: timeouts![2] }, connection };
    case 'save':
      return { command: { kind: 'save', numeric: state.numeric }, connection };
    case 'restore':
      return { command: { kind: 'restore' }, connection };
    case 'zero':
      return { command: { kind: 'zero', service }, connection };
    case 'clear':
      return { command: { kind: 'clear' }, connection };
    case 'delete-service':
      return { command: { kind: 'delete-service', service: service! }, connection };
    case 'add-service':
    case 'edit-service': {
      // -E without -s goes back to wlc, and without -p to no persistence, as ipvsadm (it replaces the definition).
      let persistence: { persistent: number; netmask?: string } | undefined;
      if (state.persistentText !== undefined) {
        const t = state.persistentText === null ? DEFAULT_PERSISTENT : toNumber(state.persistentText, 1, MAX_TIMEOUT);
        if (t === undefined) throw usageError(`invalid timeout value \`${state.persistentText}' specified`);
        persistence = { persistent: t };
      }
      if (state.netmaskText !== undefined) {
        const m = parseNetmaskOption(state.netmaskText, service!.family);
        if (persistence) persistence.netmask = m;
      }
      // Without persistence a service needs a port (a persistent port-0 service takes every port).
      if (service!.port === 0 && !persistence) throw usageError('Zero port specified for non-persistent service');
      return {
        command: { kind: command, service: service!, scheduler: state.scheduler || DEFAULT_SCHEDULER, flags, ...persistence },
        connection,
      };
    }
    case 'delete-server':
      return { command: { kind: 'delete-server', service: service!, server: server! }, connection };
    case 'add-server':
    case 'edit-server': {
      const method = state.method ?? DEFAULT_METHOD;
      const weight = state.weight ?? DEFAULT_WEIGHT;
      const svc = service!;
      let rs = server!;
      // ipvsadm: "The destination port must be equal to the service port if IP_VS_CONN_F_TUNNEL or
      // IP_VS_CONN_F_DROUTE is set": -g and -i keep the packet's port, so a different one is overridden.
      if (method === 'dr' || method === 'tunnel') rs = { ...rs, port: svc.port };
      if (rs.family !== svc.family && method !== 'tunnel') {
        throw usageError('Different address family is allowed only for tunneling servers');
      }
      if (state.tunType !== undefined && method !== 'tunnel') throw usageError('Tunnel options conflict with forward method');
      const thresholds = {
        ...(state.upperThreshold !== undefined ? { upperThreshold: state.upperThreshold } : {}),
        ...(state.lowerThreshold !== undefined ? { lowerThreshold: state.lowerThreshold } : {}),
      };
      return { command: { kind: command, service: svc, server: rs, method, weight, ...thresholds }, connection };
    }
  }
}
