// Child process of the data-plane section, started by dataplane-netns.ts inside the bench's own network namespace
// (nsenter --net, so bpffs stays visible): runs the measurement and prints the section as one JSON line.

import { ifindexOf } from '../../src/loader/program.js';
import { installSignalCleanup } from '../lab/netns.js';
import { runDataplane, type DataplaneOptions } from './dataplane.js';

async function main(): Promise<void> {
  installSignalCleanup();
  const opts = JSON.parse(process.argv[2] ?? '') as DataplaneOptions & { privDev: string };
  const section = await runDataplane(opts, (m) => process.stderr.write(`bench: ${m}\n`), { privIfindex: ifindexOf(opts.privDev) });
  process.stdout.write(`${JSON.stringify(section)}\n`);
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    process.stderr.write(`${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(1);
  },
);
