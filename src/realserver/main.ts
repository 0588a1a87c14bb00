// Entry of `xdpvsd --role realserver`: parses its command line and runs, detaches or reports the decapsulation.

import { isXdpvsError } from '../errors.js';
import { createLogger } from '../log.js';
import { parseRealServerArgs, REALSERVER_USAGE, type RealServerArgs } from './args.js';
import { detachRealServer, realServerStatus, runRealServer } from './role.js';

export async function realServerMain(argv: string[]): Promise<void> {
  let args: RealServerArgs;
  try {
    args = parseRealServerArgs(argv);
  } catch (e) {
    process.stderr.write(`xdpvsd: ${(e as Error).message}\n`);
    process.exit(2);
  }
  if (args.help) {
    process.stdout.write(REALSERVER_USAGE + '\n');
    return;
  }
  const log = createLogger(args.logLevel);
  try {
    if (args.detach) await detachRealServer(args, log);
    else if (args.status) process.stdout.write(JSON.stringify(await realServerStatus(args), null, 2) + '\n');
    else await runRealServer(args, log);
  } catch (e) {
    const code = isXdpvsError(e) ? e.code : 'XDPVS_ERR_INTERNAL';
    log('error', (e as Error).message, { code, ...(isXdpvsError(e) ? e.details : {}) });
    process.stderr.write(`xdpvsd: ${(e as Error).message}\n`);
    process.exit(1);
  }
}
