// xdpvsd's command line.

import { parseArgs } from 'node:util';
import { DEFAULT_LISTEN, DEFAULT_TOKEN_FILE } from '../cli/discover.js';
import { ErrorCode, XdpvsError } from '../errors.js';
import { parseWebhookUrl } from '../health/notify.js';
import type { Level } from '../log.js';
import { parseAddress, type Family } from '../lb/address.js';
import { MAX_IFACES } from '../maps/structs.js';

export const USAGE = `usage: xdpvsd --interface IFACE [--interface IFACE2] [options]

  --interface IFACE      attach the director program to IFACE (repeatable; the first names the pin directory)
  --listen ADDR:PORT     API address (default ${DEFAULT_LISTEN}; reads are open, writes need the token)
  --token-file FILE      bearer token for writes (default ${DEFAULT_TOKEN_FILE}, created 0600 if missing)
  --state FILE           durable desired state, restored at start (default: none)
  --keepalived-conf FILE read keepalived.conf's virtual_server blocks and run their health checks; SIGHUP
                         or POST /v1/reload re-reads it and applies only the differences (docs/keepalived.md)
  --notify-webhook URL   POST every health state change as JSON to URL (only there)
  --tunnel-source ADDR   outer source of tunnelled (-i) packets, one per family (repeatable; default: the
                         address the kernel picks towards each real server)
  --conn-table-size N    entries of the connection table (default 262144; LRU: when full, the least recently
                         used flow is forgotten, see docs/schedulers.md); a pinned table keeps its size
  --sync-peer ADDR:PORT  send this director's new connections and their state changes to another director
                         (repeatable; UDP, authenticated with --sync-key; docs/sync.md)
  --sync-listen ADDR:PORT receive the connections of other directors here (UDP)
  --sync-key FILE        the shared key of connection sync (mode 0600, at least 16 bytes; the same file on
                         every director); required with --sync-peer or --sync-listen
  --xdp-mode MODE        auto (native, else generic with a warning), native or generic (default auto)
  --log-level LEVEL      debug, info, warn or error (default info)
  --detach               detach the program from the interfaces, remove the pins and exit
  -h, --help             this text

       xdpvsd --role realserver --interface IFACE --vip ADDR [...]   decapsulation on a real server (--role realserver --help)`;

export interface DaemonArgs {
  interfaces: string[];
  listenHost: string;
  listenPort: number;
  tokenFile: string;
  stateFile?: string;
  keepalivedConf?: string;
  notifyWebhook?: string;
  /** --tunnel-source, by family. */
  tunnelSources: Partial<Record<Family, string>>;
  xdpMode: 'auto' | 'native' | 'generic';
  /** --conn-table-size: max_entries of `conns` (and `nat_reverse`); undefined: the object's. */
  connTableSize?: number;
  logLevel: Level;
  /** Connection sync between directors (src/sync): undefined without --sync-peer / --sync-listen. */
  sync?: { peers: { host: string; port: number }[]; listen?: { host: string; port: number }; keyFile: string };
  detach: boolean;
  help: boolean;
}

function usageError(msg: string): XdpvsError {
  return new XdpvsError(ErrorCode.Invalid, `${msg}\n${USAGE}`);
}

/** --conn-table-size: a whole number of entries, 1024 .. 2^27 (the kernel must allocate the LRU table up front). */
function connTableSize(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const n = /^\d{1,10}$/.test(text) ? Number(text) : NaN;
  if (!Number.isInteger(n) || n < 1024 || n > 1 << 27) throw usageError(`--conn-table-size must be a whole number 1024..${1 << 27}, not "${text}"`);
  return n;
}

/** ADDR:PORT (IPv6 as [ADDR]:PORT) of --sync-peer / --sync-listen: a literal address and a port 1..65535. */
function syncEndpoint(flag: string, text: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(text);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port < 1 || port > 65535) throw usageError(`${flag} wants ADDR:PORT (IPv6 as [ADDR]:PORT, port 1..65535), not "${text}"`);
  try {
    return { host: parseAddress(m[1] ?? m[2]).text, port };
  } catch (e) {
    throw usageError(`${flag} ${text}: ${(e as Error).message}`);
  }
}

function syncArgs(peers: string[], listen: string | undefined, keyFile: string | undefined): DaemonArgs['sync'] {
  if (peers.length === 0 && listen === undefined) {
    if (keyFile !== undefined) throw usageError('--sync-key needs --sync-peer or --sync-listen');
    return undefined;
  }
  if (keyFile === undefined) throw usageError('connection sync (--sync-peer, --sync-listen) needs --sync-key FILE');
  const out = { peers: peers.map((p) => syncEndpoint('--sync-peer', p)), listen: listen === undefined ? undefined : syncEndpoint('--sync-listen', listen), keyFile };
  const seen = new Set<string>();
  for (const p of out.peers) {
    const id = `${p.host} ${p.port}`;
    if (seen.has(id)) throw usageError(`--sync-peer ${p.host}:${p.port} given twice`);
    seen.add(id);
  }
  return out;
}

export function parseDaemonArgs(argv: string[]): DaemonArgs {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        interface: { type: 'string', multiple: true },
        listen: { type: 'string', default: DEFAULT_LISTEN },
        'token-file': { type: 'string', default: DEFAULT_TOKEN_FILE },
        state: { type: 'string' },
        'keepalived-conf': { type: 'string' },
        'notify-webhook': { type: 'string' },
        'tunnel-source': { type: 'string', multiple: true },
        role: { type: 'string', default: 'director' },
        'xdp-mode': { type: 'string', default: 'auto' },
        'conn-table-size': { type: 'string' },
        'sync-peer': { type: 'string', multiple: true },
        'sync-listen': { type: 'string' },
        'sync-key': { type: 'string' },
        'log-level': { type: 'string', default: 'info' },
        detach: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (e) {
    throw usageError((e as Error).message);
  }
  const help = values.help ?? false;
  const interfaces = values.interface ?? [];
  if (!help && interfaces.length === 0) throw usageError('--interface is required');
  if (interfaces.length > MAX_IFACES) throw usageError(`at most ${MAX_IFACES} --interface (got ${interfaces.length})`);
  const m = /^(.*):(\d+)$/.exec(values.listen!);
  if (!m) throw usageError(`--listen wants ADDR:PORT, not "${values.listen}"`);
  const listenPort = Number(m[2]);
  if (listenPort < 1 || listenPort > 65535) throw usageError(`--listen port out of range: ${m[2]}`);
  const mode = values['xdp-mode']!;
  if (mode !== 'auto' && mode !== 'native' && mode !== 'generic') throw usageError(`--xdp-mode must be auto, native or generic, not "${mode}"`);
  const level = values['log-level']!;
  if (!['debug', 'info', 'warn', 'error'].includes(level)) throw usageError(`--log-level must be debug, info, warn or error`);
  if (values.role !== 'director') throw usageError(`--role must be director or realserver, not "${values.role}"`);
  const tunnelSources: Partial<Record<Family, string>> = {};
  for (const text of values['tunnel-source'] ?? []) {
    let a;
    try {
      a = parseAddress(text);
    } catch (e) {
      throw usageError(`--tunnel-source ${text}: ${(e as Error).message}`);
    }
    if (tunnelSources[a.family]) throw usageError(`--tunnel-source given twice for ${a.family === 'inet' ? 'IPv4' : 'IPv6'} (${tunnelSources[a.family]}, ${a.text})`);
    tunnelSources[a.family] = a.text;
  }
  let webhook: string | undefined;
  if (values['notify-webhook'] !== undefined) {
    try {
      webhook = parseWebhookUrl(values['notify-webhook']);
    } catch (e) {
      throw usageError((e as Error).message);
    }
  }
  return {
    interfaces,
    listenHost: m[1].replace(/^\[(.*)\]$/, '$1'),
    listenPort,
    tokenFile: values['token-file']!,
    stateFile: values.state,
    keepalivedConf: values['keepalived-conf'],
    notifyWebhook: webhook,
    tunnelSources,
    xdpMode: mode,
    connTableSize: connTableSize(values['conn-table-size']),
    logLevel: level as Level,
    sync: syncArgs(values['sync-peer'] ?? [], values['sync-listen'], values['sync-key']),
    detach: values.detach ?? false,
    help,
  };
}
