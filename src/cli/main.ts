#!/usr/bin/env node
// xdpvsadm's entry: arguments -> daemon request -> ipvsadm's output, messages and exit statuses.

import { readFileSync, realpathSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ErrorCode, isXdpvsError, type XdpvsError } from '../errors.js';
import type { Protocol } from '../lb/model.js';
import { EXIT_OPTION_SYNTAX, EXIT_USAGE, parseArgs, type Command, type Invocation } from './args.js';
import { XdpvsClient, serverId, serviceId } from './client.js';
import { discover, readToken } from './discover.js';
import { formatConnections, formatConnectionsJson, formatTimeouts } from './connections.js';
import { formatJson, formatList, formatOneService } from './format.js';
import { usageText, versionLine } from './help.js';
import { lineOfDaemonError, parseRules, playRules, type RestorePlan } from './restore.js';
import { formatSave } from './save.js';

/** Unreachable daemon (xdpvsadm's own; ipvsadm uses 2 when it cannot talk to the kernel either). */
export const EXIT_UNREACHABLE = 2;
/** ipvsadm: a refused change returns -1 from main. */
export const EXIT_REFUSED = 255;
/** ipvsadm: listing a service that does not exist, exit(1). */
export const EXIT_LIST_FAILED = 1;

export interface Io {
  stdout(text: string): void;
  stderr(text: string): void;
  env: Record<string, string | undefined>;
  fetch?: typeof fetch;
  /** Where to look for the daemon's runtime file (tests); default: this network namespace's. */
  runtimeFile?: string;
  /** Port names for "VIP:http" (default: /etc/services). */
  resolvePort?: (name: string, protocol: Protocol) => number | undefined;
  /** All of standard input (-R reads its rules there). */
  readStdin?: () => Promise<string>;
}

/** The package's version, from the package.json above this file (src/cli or dist/src/cli). */
export function packageVersion(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'xdpvs' && pkg.version) return pkg.version;
    } catch {
      // not here; go up
    }
    dir = dirname(dir);
  }
  return 'unknown';
}

let servicesTable: Map<string, number> | undefined;

/** getservbyname() from /etc/services (a local file: no network). */
export function servicesFilePort(name: string, protocol: Protocol, file = '/etc/services'): number | undefined {
  if (!servicesTable) {
    servicesTable = new Map();
    let text = '';
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      // no services file: port names do not resolve
    }
    for (const raw of text.split('\n')) {
      const line = raw.replace(/#.*/, '').trim();
      const m = /^(\S+)\s+(\d+)\/(\w+)(.*)$/.exec(line);
      if (!m) continue;
      const port = Number(m[2]);
      for (const n of [m[1], ...m[4].trim().split(/\s+/).filter(Boolean)]) {
        const key = `${n}/${m[3]}`;
        if (!servicesTable.has(key)) servicesTable.set(key, port);
      }
    }
  }
  return servicesTable.get(`${name}/${protocol}`);
}

/** ipvsadm's ipvs_strerror() phrase for what the daemon refused, per command, or undefined when it has none. */
export function ipvsadmPhrase(kind: Command['kind'], err: XdpvsError, serviceMissing?: boolean): string | undefined {
  if (err.code === ErrorCode.Unauthorized) return 'Permission denied (you must be root)';
  switch (kind) {
    case 'add-service':
      if (err.code === ErrorCode.Exists) return 'Service already exists';
      if (err.code === ErrorCode.Invalid && err.details.field === 'scheduler') {
        return 'Scheduler or persistence engine not found';
      }
      return undefined;
    case 'edit-service':
      if (err.code === ErrorCode.NotFound) return 'No such service';
      if (err.code === ErrorCode.Invalid && err.details.field === 'scheduler') {
        return 'Scheduler or persistence engine not found';
      }
      return undefined;
    case 'delete-service':
    case 'list':
    case 'zero':
      return err.code === ErrorCode.NotFound ? 'No such service' : undefined;
    case 'add-server':
      if (err.code === ErrorCode.NotFound) return 'Service not defined';
      if (err.code === ErrorCode.Exists) return 'Destination already exists';
      return undefined;
    case 'edit-server':
    case 'delete-server':
      if (err.code === ErrorCode.NotFound) return serviceMissing ? 'Service not defined' : 'No such destination';
      return undefined;
    default:
      return undefined;
  }
}

async function execute(command: Command, client: XdpvsClient, io: Io): Promise<void> {
  switch (command.kind) {
    case 'list': {
      const format = {
        stats: command.stats,
        rate: command.rate,
        exact: command.exact,
        sort: command.sort,
        thresholds: command.thresholds,
        persistentConn: command.persistentConn,
      };
      if (command.connections) {
        const list = await client.connections();
        io.stdout(command.json ? formatConnectionsJson(list) : formatConnections(list));
      } else if (command.timeout) {
        const t = await client.timeouts();
        io.stdout(command.json ? `${JSON.stringify(t, null, 2)}\n` : formatTimeouts(t));
      } else if (command.service) {
        const svc = await client.getService(serviceId(command.service));
        io.stdout(command.json ? formatJson([svc], format) : formatOneService(svc, format));
      } else if (command.json) {
        io.stdout(formatJson(await client.listServices(), format));
      } else {
        const [info, services] = await Promise.all([client.info(), client.listServices()]);
        io.stdout(formatList(info.connTableSize ?? 0, services, format));
      }
      return;
    }
    case 'add-service': {
      const { protocol, address, port } = command.service;
      const persistence = command.persistent ? { persistent: command.persistent, netmask: command.netmask } : {};
      await client.addService({ protocol, address, port, scheduler: command.scheduler, flags: command.flags, ...persistence });
      return;
    }
    case 'edit-service':
      // ipvsadm -E replaces the whole service definition: scheduler, flags and persistence (none without -p).
      await client.editService(serviceId(command.service), {
        scheduler: command.scheduler,
        flags: command.flags,
        persistent: command.persistent ?? 0,
        ...(command.netmask !== undefined ? { netmask: command.netmask } : {}),
      });
      return;
    case 'set':
      await client.setTimeouts({ tcp: command.tcp, tcpfin: command.tcpfin, udp: command.udp });
      return;
    case 'delete-service':
      await client.deleteService(serviceId(command.service));
      return;
    case 'clear':
      await client.clear();
      return;
    case 'add-server': {
      const { address, port } = command.server;
      await client.addServer(serviceId(command.service), {
        address,
        port,
        method: command.method,
        weight: command.weight,
        ...(command.upperThreshold !== undefined ? { upperThreshold: command.upperThreshold } : {}),
        ...(command.lowerThreshold !== undefined ? { lowerThreshold: command.lowerThreshold } : {}),
      });
      return;
    }
    case 'edit-server':
      // ipvsadm -e replaces the whole destination: weight, method and thresholds (0 without -x / -y).
      await client.editServer(serviceId(command.service), serverId(command.server), {
        weight: command.weight,
        method: command.method,
        upperThreshold: command.upperThreshold ?? 0,
        lowerThreshold: command.lowerThreshold ?? 0,
      });
      return;
    case 'delete-server':
      await client.deleteServer(serviceId(command.service), serverId(command.server));
      return;
    case 'save':
      io.stdout(formatSave((await client.getConfig()).services));
      return;
    case 'zero':
      await client.zero(command.service ? serviceId(command.service) : undefined);
      return;
    case 'restore':
    case 'help':
    case 'version':
      return;
  }
}

/**
 * -R: rules from stdin -> one configuration -> PUT /v1/config over the revision read. Whatever goes wrong before
 * the daemon accepts it leaves the configuration as it was; the message names the line at fault.
 */
async function restore(client: XdpvsClient, io: Io, tokenProblem: string | undefined): Promise<number> {
  let plan: RestorePlan | undefined;
  try {
    const input = io.readStdin ? await io.readStdin() : '';
    const rules = parseRules(input, { resolvePort: io.resolvePort ?? servicesFilePort });
    const current = await client.getConfig();
    plan = playRules(current.services, rules);
    await client.putConfig({ services: plan.services, revision: current.revision });
    return 0;
  } catch (e) {
    if (!isXdpvsError(e)) {
      io.stderr(`xdpvsadm: ${(e as Error)?.message ?? String(e)}\n`);
      return EXIT_REFUSED;
    }
    if (e.code === ErrorCode.Unreachable) {
      io.stderr(`xdpvsadm: ${e.message}\n`);
      return EXIT_UNREACHABLE;
    }
    let status = EXIT_REFUSED;
    if (typeof e.details.line === 'number') {
      // A line that does not parse, or that IPVS would refuse: found before anything was sent.
      io.stderr(`xdpvsadm: ${e.message}\n`);
      status = Number(e.details.exitCode ?? EXIT_REFUSED);
    } else {
      const rule = plan && lineOfDaemonError(plan, e);
      io.stderr(rule ? `xdpvsadm: line ${rule.line} "${rule.text}": xdpvsd: ${e.message}\n` : `xdpvsd: ${e.message}\n`);
      if (e.code === ErrorCode.Unauthorized && tokenProblem) io.stderr(`xdpvsadm: no API token: ${tokenProblem}\n`);
    }
    if (e.details.partial) io.stderr('xdpvsadm: the restore stopped part way; see what is in place with xdpvsadm -Ln\n');
    else if (e.code === ErrorCode.Conflict) io.stderr('xdpvsadm: nothing was restored; run it again\n');
    else io.stderr('xdpvsadm: nothing was restored; the configuration is as it was\n');
    return status;
  }
}

function reportArgsError(e: unknown, io: Io): number {
  if (isXdpvsError(e, ErrorCode.Unsupported)) {
    io.stderr(`xdpvsadm: ${e.message}\n`);
    return Number(e.details.exitCode ?? 1);
  }
  if (isXdpvsError(e)) {
    io.stderr(`${e.message}\n`);
    if (e.details.tryHelp) io.stderr("Try `xdpvsadm -h' or 'xdpvsadm --help' for more information.\n");
    return Number(e.details.exitCode ?? EXIT_USAGE);
  }
  io.stderr(`xdpvsadm: ${(e as Error).message}\n`);
  return EXIT_OPTION_SYNTAX;
}

async function reportFailure(
  e: unknown,
  command: Command,
  client: XdpvsClient,
  io: Io,
  tokenProblem: string | undefined,
): Promise<number> {
  if (!isXdpvsError(e)) {
    io.stderr(`xdpvsadm: ${(e as Error)?.message ?? String(e)}\n`);
    return EXIT_REFUSED;
  }
  if (e.code === ErrorCode.Unreachable) {
    io.stderr(`xdpvsadm: ${e.message}\n`);
    return EXIT_UNREACHABLE;
  }
  let serviceMissing: boolean | undefined;
  if ((command.kind === 'edit-server' || command.kind === 'delete-server') && e.code === ErrorCode.NotFound) {
    // The API says 404 for a missing service and a missing real server alike; ipvsadm tells them apart.
    try {
      await client.getService(serviceId(command.service));
      serviceMissing = false;
    } catch (probe) {
      serviceMissing = isXdpvsError(probe, ErrorCode.NotFound);
    }
  }
  const phrase = ipvsadmPhrase(command.kind, e, serviceMissing);
  if (phrase) io.stderr(`${phrase}\n`);
  io.stderr(`xdpvsd: ${e.message}\n`);
  if (e.code === ErrorCode.Unauthorized && tokenProblem) io.stderr(`xdpvsadm: no API token: ${tokenProblem}\n`);
  return command.kind === 'list' ? EXIT_LIST_FAILED : EXIT_REFUSED;
}

/** Run xdpvsadm with these arguments (no program name); resolves to the exit status. */
export async function run(argv: readonly string[], io: Io): Promise<number> {
  let invocation: Invocation;
  try {
    invocation = parseArgs(argv, { resolvePort: io.resolvePort ?? servicesFilePort });
  } catch (e) {
    return reportArgsError(e, io);
  }
  const { command, connection } = invocation;
  if (command.kind === 'help') {
    io.stdout(usageText(packageVersion()));
    return 0;
  }
  if (command.kind === 'version') {
    io.stdout(`${versionLine(packageVersion())}\n`);
    return 0;
  }

  let endpoint;
  try {
    endpoint = discover({ server: connection.server, tokenFile: connection.tokenFile, env: io.env, runtimeFile: io.runtimeFile });
  } catch (e) {
    io.stderr(`xdpvsadm: ${(e as Error).message}\n`);
    return EXIT_USAGE;
  }
  for (const w of endpoint.warnings) io.stderr(`xdpvsadm: warning: ${w}\n`);

  // Listing and saving need no token; every change does.
  let token: string | undefined;
  let tokenProblem: string | undefined;
  if (command.kind !== 'list' && command.kind !== 'save') {
    const t = readToken(endpoint.tokenFile);
    if (t.token !== undefined) token = t.token;
    else tokenProblem = t.reason;
  }

  const client = new XdpvsClient({ url: endpoint.url, token, fetch: io.fetch });
  if (command.kind === 'restore') return restore(client, io, tokenProblem);
  try {
    await execute(command, client, io);
    return 0;
  } catch (e) {
    return reportFailure(e, command, client, io, tokenProblem);
  }
}

function processIo(): Io {
  return {
    stdout: (text) => void process.stdout.write(text),
    stderr: (text) => void process.stderr.write(text),
    env: process.env,
    readStdin: async () => {
      let text = '';
      process.stdin.setEncoding('utf8');
      for await (const chunk of process.stdin) text += chunk as string;
      return text;
    },
  };
}

function isEntryPoint(): boolean {
  const script = process.argv[1];
  if (!script) return false;
  try {
    return realpathSync(script) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isEntryPoint()) {
  // `xdpvsadm -Ln | head -1` closes the pipe early: that is not an error.
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw e;
  });
  run(process.argv.slice(2), processIo()).then(
    (status) => {
      process.exitCode = status;
    },
    (e: unknown) => {
      process.stderr.write(`xdpvsadm: ${(e as Error)?.stack ?? String(e)}\n`);
      process.exitCode = EXIT_REFUSED;
    },
  );
}

