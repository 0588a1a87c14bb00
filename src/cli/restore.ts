// `xdpvsadm -R` (ipvsadm-restore): ipvsadm rules read from stdin, checked line by line, played against the
// current configuration as IPVS would play them, and handed to the daemon as one whole configuration that it
// applies all or nothing (PUT /v1/config). No I/O here.
//
// ipvsadm -R runs each line as it reads it (config_stream_read(): words split on blanks, the word "ipvsadm"
// skipped), so a bad line in the middle leaves the table half restored. Here every line is parsed first (any
// error names its line and nothing is sent), then the lines are played in order on a copy of the current
// configuration with IPVS's outcomes ("Service already exists", "-C" empties the table, ...), and only the
// resulting configuration goes to the daemon, which validates all of it before it changes anything. Services and
// real servers that end up as they were are left alone: their counters and connections carry on.

import { ErrorCode, XdpvsError, isXdpvsError } from '../errors.js';
import type { ConfigService, ConfigView, Method } from '../lb/model.js';
import { EXIT_UNSUPPORTED, EXIT_USAGE, parseArgs, type Command, type ParseOptions } from './args.js';
import { serverId, serviceId } from './client.js';

/** ipvsadm -1: a rule IPVS refuses ("Service already exists"), as main.ts's EXIT_REFUSED. */
const EXIT_REFUSED = 255;

/** The commands a restore may hold: what ipvsadm-save writes (-A, -a), and the other table changes. */
const RESTORABLE = new Set<Command['kind']>([
  'add-service',
  'edit-service',
  'delete-service',
  'clear',
  'add-server',
  'edit-server',
  'delete-server',
]);

type RestorableCommand = Extract<
  Command,
  { kind: 'add-service' | 'edit-service' | 'delete-service' | 'clear' | 'add-server' | 'edit-server' | 'delete-server' }
>;

export interface RestoreRule {
  /** 1-based line number in the input. */
  line: number;
  /** The line's words, as the error messages quote them. */
  text: string;
  command: RestorableCommand;
}

/** An error about one line: `line N "RULE": message`, with details.line and the exit status to leave with. */
export function lineError(line: number, text: string, message: string, code: ErrorCode, exitCode: number): XdpvsError {
  return new XdpvsError(code, `line ${line} "${text}": ${message}`, { line, exitCode });
}

/**
 * config_stream_read(): each line's words, split on blanks; the word "ipvsadm" (and "xdpvsadm") is skipped so that
 * a file of commands restores too; a word starting with "#" ends the line (ipvsadm's documented comment syntax).
 * Blank lines are skipped.
 */
export function splitRules(input: string): { line: number; words: string[] }[] {
  const out: { line: number; words: string[] }[] = [];
  input.split('\n').forEach((raw, i) => {
    const words: string[] = [];
    for (const w of raw.split(/[ \t\r]+/)) {
      if (w === '') continue;
      if (w.startsWith('#')) break;
      if (w === 'ipvsadm' || w === 'xdpvsadm') continue;
      words.push(w);
    }
    if (words.length > 0) out.push({ line: i + 1, words });
  });
  return out;
}

/**
 * Every line parsed with xdpvsadm's own argument parser (ipvsadm's syntax, defaults and messages). The first bad
 * line throws: XDPVS_ERR_INVALID (exit 2) for what ipvsadm refuses, XDPVS_ERR_UNSUPPORTED (exit 1) for an ipvsadm
 * option xdpvs does not do yet (-p, -M, -f, ...), each naming the line.
 */
export function parseRules(input: string, opts: ParseOptions = {}): RestoreRule[] {
  return splitRules(input).map(({ line, words }) => {
    const text = words.join(' ');
    let parsed;
    try {
      parsed = parseArgs(words, opts);
    } catch (e) {
      if (!isXdpvsError(e)) throw e;
      const exitCode = Number(e.details.exitCode ?? (e.code === ErrorCode.Unsupported ? EXIT_UNSUPPORTED : EXIT_USAGE));
      throw lineError(line, text, e.message, e.code, exitCode);
    }
    const { command, connection } = parsed;
    if (!RESTORABLE.has(command.kind)) {
      throw lineError(line, text, 'a restore holds only -A, -E, -D, -C, -a, -e and -d rules', ErrorCode.Invalid, EXIT_USAGE);
    }
    if (connection.server !== undefined || connection.tokenFile !== undefined) {
      throw lineError(line, text, '--server and --token-file belong on the command line, not in the rules', ErrorCode.Invalid, EXIT_USAGE);
    }
    return { line, text, command: command as RestorableCommand };
  });
}

interface SimServer {
  address: string;
  port: number;
  method: Method;
  weight: number;
  /** -x / -y, 0 for none. */
  upperThreshold: number;
  lowerThreshold: number;
  line?: number;
}

interface SimService {
  protocol: ConfigService['protocol'];
  address: string;
  port: number;
  scheduler: string;
  flags: string[];
  /** -p (0: not persistent) and -M as given or as the daemon printed it. */
  persistent: number;
  netmask?: string;
  servers: Map<string, SimServer>;
  line?: number;
}

/** A key for a service: serviceId() but tolerant of what the daemon may hold that ipvsadm cannot name. */
function svcKey(s: { protocol: string; address: string; port: number }): string {
  try {
    return serviceId(s);
  } catch {
    return `${s.protocol}:${s.address}:${s.port}`;
  }
}

/** The configuration the rules lead to, and which line last set each service and real server in it. */
export interface RestorePlan {
  services: ConfigService[];
  /** services[i] was last added or edited by this line (undefined: left as it was). */
  serviceLines: (RestoreRule | undefined)[];
  /** services[i].servers[j] likewise. */
  serverLines: (RestoreRule | undefined)[][];
}

/**
 * Plays the rules on `current` in order, as IPVS would run them, and returns the configuration they lead to.
 * A rule IPVS would refuse throws XDPVS_ERR_EXISTS or XDPVS_ERR_NOT_FOUND with ipvsadm's phrase and the line.
 */
export function playRules(current: ConfigView['services'], rules: readonly RestoreRule[]): RestorePlan {
  const table = new Map<string, SimService>();
  for (const s of current) {
    const servers = new Map<string, SimServer>();
    for (const rs of s.servers) {
      servers.set(serverId(rs), { ...rs, upperThreshold: rs.upperThreshold ?? 0, lowerThreshold: rs.lowerThreshold ?? 0 });
    }
    table.set(svcKey(s), {
      protocol: s.protocol,
      address: s.address,
      port: s.port,
      scheduler: s.scheduler,
      flags: [...s.flags],
      persistent: s.persistent ?? 0,
      netmask: s.netmask,
      servers,
    });
  }

  const lines = new Map<number, RestoreRule>();
  const refuse = (rule: RestoreRule, phrase: string, code: ErrorCode) => lineError(rule.line, rule.text, phrase, code, EXIT_REFUSED);
  for (const rule of rules) {
    lines.set(rule.line, rule);
    const c = rule.command;
    if (c.kind === 'clear') {
      table.clear();
      continue;
    }
    const key = svcKey(c.service);
    const svc = table.get(key);
    switch (c.kind) {
      case 'add-service':
        if (svc) throw refuse(rule, 'Service already exists', ErrorCode.Exists);
        table.set(key, {
          protocol: c.service.protocol,
          address: c.service.address,
          port: c.service.port,
          scheduler: c.scheduler,
          flags: [...c.flags],
          persistent: c.persistent ?? 0,
          netmask: c.netmask,
          servers: new Map(),
          line: rule.line,
        });
        break;
      case 'edit-service':
        // ipvsadm -E replaces the whole definition: without -p the service is no longer persistent.
        if (!svc) throw refuse(rule, 'No such service', ErrorCode.NotFound);
        Object.assign(svc, { scheduler: c.scheduler, flags: [...c.flags], persistent: c.persistent ?? 0, netmask: c.netmask, line: rule.line });
        break;
      case 'delete-service':
        if (!svc) throw refuse(rule, 'No such service', ErrorCode.NotFound);
        table.delete(key);
        break;
      case 'add-server':
      case 'edit-server':
      case 'delete-server': {
        if (!svc) throw refuse(rule, 'Service not defined', ErrorCode.NotFound);
        const rsKey = serverId(c.server);
        const rs = svc.servers.get(rsKey);
        if (c.kind === 'add-server') {
          if (rs) throw refuse(rule, 'Destination already exists', ErrorCode.Exists);
          svc.servers.set(rsKey, {
            address: c.server.address,
            port: c.server.port,
            method: c.method,
            weight: c.weight,
            upperThreshold: c.upperThreshold ?? 0,
            lowerThreshold: c.lowerThreshold ?? 0,
            line: rule.line,
          });
        } else if (!rs) {
          throw refuse(rule, 'No such destination', ErrorCode.NotFound);
        } else if (c.kind === 'edit-server') {
          // ipvsadm -e replaces the whole destination, thresholds included.
          Object.assign(rs, { method: c.method, weight: c.weight, upperThreshold: c.upperThreshold ?? 0, lowerThreshold: c.lowerThreshold ?? 0, line: rule.line });
        } else {
          svc.servers.delete(rsKey);
        }
        break;
      }
    }
  }

  const plan: RestorePlan = { services: [], serviceLines: [], serverLines: [] };
  for (const s of table.values()) {
    const servers = [...s.servers.values()];
    plan.services.push({
      protocol: s.protocol,
      address: s.address,
      port: s.port,
      scheduler: s.scheduler,
      flags: s.flags,
      ...(s.persistent > 0 ? { persistent: s.persistent, ...(s.netmask !== undefined ? { netmask: s.netmask } : {}) } : {}),
      servers: servers.map((rs) => ({
        address: rs.address,
        port: rs.port,
        method: rs.method,
        weight: rs.weight,
        ...(rs.upperThreshold > 0 ? { upperThreshold: rs.upperThreshold } : {}),
        ...(rs.lowerThreshold > 0 ? { lowerThreshold: rs.lowerThreshold } : {}),
      })),
    });
    plan.serviceLines.push(s.line === undefined ? undefined : lines.get(s.line));
    plan.serverLines.push(servers.map((rs) => (rs.line === undefined ? undefined : lines.get(rs.line))));
  }
  return plan;
}

/**
 * The daemon refused the configuration: when its error names an entry (details.at) that a line set, the same
 * error about that line; otherwise undefined.
 */
export function lineOfDaemonError(plan: RestorePlan, e: XdpvsError): RestoreRule | undefined {
  const at = e.details.at as { service?: unknown; server?: unknown } | undefined;
  if (!at || typeof at.service !== 'number') return undefined;
  if (typeof at.server === 'number') return plan.serverLines[at.service]?.[at.server] ?? plan.serviceLines[at.service];
  return plan.serviceLines[at.service];
}
