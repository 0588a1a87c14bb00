// The command line of xdpvsd's real-server role (`xdpvsd --role realserver ...`).

import { parseArgs } from 'node:util';
import { ErrorCode, XdpvsError } from '../errors.js';
import { parseAddress, type IpAddress } from '../lb/address.js';
import type { Level } from '../log.js';

export const REALSERVER_USAGE = `usage: xdpvsd --role realserver --interface IFACE [--interface IFACE2] --vip ADDR [--vip ADDR ...] [options]

Attaches the decapsulation program to the interfaces: IPIP and IPv6-in-IP packets sent to this host by a
tunnelling director (xdpvsadm -a ... -i) lose their outer header when the inner destination is one of the VIPs,
and reach the kernel as if the client had sent them here directly. Everything else passes untouched. Put each VIP
on lo (ip addr add VIP/32 dev lo) with arp_ignore=1 / arp_announce=2, as for direct routing.

It stays running and follows this host's addresses (the outer destinations it accepts); stopping it (SIGTERM)
leaves the program attached with the last addresses, and the next start adopts it.

  --interface IFACE      attach to IFACE (repeatable; the first names the pin directory)
  --vip ADDR             a VIP of this real server, IPv4 or IPv6 (repeatable, at least one)
  --xdp-mode MODE        auto (native, else generic with a warning), native or generic (default auto)
  --log-level LEVEL      debug, info, warn or error (default info)
  --status               print the VIPs, accepted addresses and packet counters as JSON, and exit
  --detach               detach the program from the interfaces, remove its pins and exit
  -h, --help             this text`;

export interface RealServerArgs {
  interfaces: string[];
  vips: IpAddress[];
  xdpMode: 'auto' | 'native' | 'generic';
  logLevel: Level;
  status: boolean;
  detach: boolean;
  help: boolean;
}

function usageError(msg: string): XdpvsError {
  return new XdpvsError(ErrorCode.Invalid, `${msg}\n${REALSERVER_USAGE}`);
}

/** True when argv asks for the real-server role (`--role realserver` or `--role=realserver`). */
export function wantsRealServerRole(argv: readonly string[]): boolean {
  return argv.some((a, i) => a === '--role=realserver' || (a === '--role' && argv[i + 1] === 'realserver'));
}

export function parseRealServerArgs(argv: string[]): RealServerArgs {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        role: { type: 'string' },
        interface: { type: 'string', multiple: true },
        vip: { type: 'string', multiple: true },
        'xdp-mode': { type: 'string', default: 'auto' },
        'log-level': { type: 'string', default: 'info' },
        status: { type: 'boolean', default: false },
        detach: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (e) {
    throw usageError((e as Error).message.replace(/\. To specify a positional.*$/s, ''));
  }
  if (values.role !== 'realserver') throw usageError(`--role must be realserver here, not "${values.role}"`);
  const help = values.help ?? false;
  const interfaces = values.interface ?? [];
  const status = values.status ?? false;
  const detach = values.detach ?? false;
  if (!help && interfaces.length === 0) throw usageError('--interface is required');
  if (status && detach) throw usageError('--status and --detach do not go together');
  const vips: IpAddress[] = [];
  for (const text of values.vip ?? []) {
    try {
      vips.push(parseAddress(text));
    } catch (e) {
      throw usageError(`--vip ${text}: ${(e as Error).message}`);
    }
  }
  if (!help && !status && !detach && vips.length === 0) throw usageError('--vip is required (the VIPs whose tunnelled packets are decapsulated)');
  const mode = values['xdp-mode']!;
  if (mode !== 'auto' && mode !== 'native' && mode !== 'generic') throw usageError(`--xdp-mode must be auto, native or generic, not "${mode}"`);
  const level = values['log-level']!;
  if (!['debug', 'info', 'warn', 'error'].includes(level)) throw usageError('--log-level must be debug, info, warn or error');
  return { interfaces, vips, xdpMode: mode, logLevel: level as Level, status, detach, help };
}
