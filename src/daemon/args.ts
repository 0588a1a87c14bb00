// xdpvsd's command line.

import { parseArgs } from 'node:util';
import { DEFAULT_LISTEN, DEFAULT_TOKEN_FILE } from '../cli/discover.js';
import { ErrorCode, XdpvsError } from '../errors.js';
import type { Level } from '../log.js';

export const USAGE = `usage: xdpvsd --interface IFACE [--interface IFACE2] [options]

  --interface IFACE      attach the director program to IFACE (repeatable; the first names the pin directory)
  --listen ADDR:PORT     API address (default ${DEFAULT_LISTEN}; reads are open, writes need the token)
  --token-file FILE      bearer token for writes (default ${DEFAULT_TOKEN_FILE}, created 0600 if missing)
  --state FILE           durable desired state, restored at start (default: none)
  --xdp-mode MODE        auto (native, else generic with a warning), native or generic (default auto)
  --log-level LEVEL      debug, info, warn or error (default info)
  --detach               detach the program from the interfaces, remove the pins and exit
  -h, --help             this text`;

export interface DaemonArgs {
  interfaces: string[];
  listenHost: string;
  listenPort: number;
  tokenFile: string;
  stateFile?: string;
  xdpMode: 'auto' | 'native' | 'generic';
  logLevel: Level;
  detach: boolean;
  help: boolean;
}

function usageError(msg: string): XdpvsError {
  return new XdpvsError(ErrorCode.Invalid, `${msg}\n${USAGE}`);
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
        'xdp-mode': { type: 'string', default: 'auto' },
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
  const m = /^(.*):(\d+)$/.exec(values.listen!);
  if (!m) throw usageError(`--listen wants ADDR:PORT, not "${values.listen}"`);
  const listenPort = Number(m[2]);
  if (listenPort < 1 || listenPort > 65535) throw usageError(`--listen port out of range: ${m[2]}`);
  const mode = values['xdp-mode']!;
  if (mode !== 'auto' && mode !== 'native' && mode !== 'generic') throw usageError(`--xdp-mode must be auto, native or generic, not "${mode}"`);
  const level = values['log-level']!;
  if (!['debug', 'info', 'warn', 'error'].includes(level)) throw usageError(`--log-level must be debug, info, warn or error`);
  return {
    interfaces,
    listenHost: m[1].replace(/^\[(.*)\]$/, '$1'),
    listenPort,
    tokenFile: values['token-file']!,
    stateFile: values.state,
    xdpMode: mode,
    logLevel: level as Level,
    detach: values.detach ?? false,
    help,
  };
}
