// Shared pieces of the end-to-end tests: the root gate, the lab with daemon, bounded HTTP from the client, -Ln parsing.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { startDirector, type Director } from '../../scripts/lab/director.js';
import { ip, installSignalCleanup, repoRoot } from '../../scripts/lab/netns.js';
import { startRealServers, type RealServers } from '../../scripts/lab/realservers.js';
import { createDrLab, type DrLab, type DrLabOptions, type LabHostName } from '../../scripts/lab/topology.js';

export const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;

/**
 * True when the suite must be skipped (not root), after saying why. In CI (CI set) a missing root is a failure, not a
 * skip: the tier would otherwise silently vanish.
 */
export function skipUnlessRoot(suite: string): boolean {
  if (isRoot) return false;
  const reason = `${suite}: needs root (network namespaces, veth, XDP); running as uid ${process.getuid?.() ?? '?'}`;
  const ci = process.env.CI;
  if (ci && ci !== 'false' && ci !== '0') throw new Error(`${reason}, and CI is set: refusing to skip`);
  console.warn(`skipping ${reason}`);
  return true;
}

/** Fails early, with the fix, when the build the lab runs is missing. */
export function requireBuilt(paths: string[]): void {
  const root = repoRoot();
  const missing = paths.filter((p) => !existsSync(join(root, p)));
  if (missing.length > 0) {
    throw new Error(`missing ${missing.join(', ')}: run \`bash scripts/build.sh\` (npm test does it) before the e2e tests`);
  }
}

export interface LabEnv {
  lab: DrLab;
  realServers: RealServers;
  director?: Director;
  /** Stops the daemon, the real servers and removes the lab; idempotent, never throws. */
  teardown(): Promise<void>;
}

/**
 * Builds the lab and starts the real servers, and the daemon unless `daemon: false`. Cleans up on failure; on
 * SIGINT/SIGTERM or when the vitest runner dies, the lab's emergency cleanups remove everything.
 */
export async function startLabEnv(opts: DrLabOptions & { daemon?: boolean } = {}): Promise<LabEnv> {
  installSignalCleanup();
  const env: Partial<LabEnv> = {};
  let done: Promise<void> | undefined;
  const teardown = (): Promise<void> => {
    done ??= (async () => {
      for (const step of [() => env.director?.stop(), () => env.realServers?.stopAll(), () => env.lab?.destroy()]) {
        try {
          await step();
        } catch (e) {
          console.error('e2e teardown:', e);
        }
      }
    })();
    return done;
  };
  try {
    env.lab = await createDrLab(opts);
    env.realServers = await startRealServers(env.lab);
    if (opts.daemon !== false) env.director = await startDirector(env.lab);
  } catch (e) {
    await teardown();
    throw e;
  }
  return { lab: env.lab, realServers: env.realServers, director: env.director, teardown };
}

/** What the helpers below use of a lab: the DR lab (topology.ts) and the NAT lab (nat-topology.ts) both have it. */
export type LabLike = Pick<DrLab, 'exec' | 'client' | 'host'>;

export interface HttpResult {
  /** curl's exit code (0 when the transfer completed). */
  code: number | null;
  body: string;
  stderr: string;
}

/** One GET from the client with curl (new connection, at most `maxTimeS` seconds). */
export async function curl(lab: LabLike, url: string, maxTimeS = 5, from: LabHostName = 'client'): Promise<HttpResult> {
  const r = await lab.exec(from, 'curl', ['-s', '-S', '-g', '--max-time', String(maxTimeS), url], {
    timeoutMs: (maxTimeS + 5) * 1000,
    allowFailure: true,
  });
  return { code: r.code, body: r.stdout, stderr: r.stderr };
}

/** `n` sequential GETs, each on its own connection; the bodies, trimmed. Throws on the first failed request. */
export async function getMany(lab: LabLike, url: string, n: number): Promise<string[]> {
  const bodies: string[] = [];
  for (let i = 0; i < n; i++) {
    const r = await curl(lab, url);
    if (r.code !== 0) throw new Error(`request ${i + 1}/${n} to ${url} failed (curl exit ${r.code}): ${r.stderr.trim()}`);
    bodies.push(r.body.trim());
  }
  return bodies;
}

export interface StreamingGet {
  /** Resolves with the first line of the body (the real server's name) once it has arrived. */
  firstLine: Promise<string>;
  /** Resolves when the transfer ends. */
  done: Promise<HttpResult>;
  /** Kills the curl (by PID) if it still runs. */
  kill(): void;
}

/** A GET whose body is read as it streams (curl -N), bounded by `maxTimeS`. */
export function streamingGet(lab: LabLike, url: string, maxTimeS: number): StreamingGet {
  const child = spawn('ip', ['netns', 'exec', lab.client.ns, 'curl', '-s', '-S', '-N', '-g', '--max-time', String(maxTimeS), url], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let body = '';
  let stderr = '';
  let resolveFirst!: (line: string) => void;
  let rejectFirst!: (e: Error) => void;
  const firstLine = new Promise<string>((res, rej) => {
    resolveFirst = res;
    rejectFirst = rej;
  });
  child.stdout.setEncoding('utf8').on('data', (d: string) => {
    body += d;
    const nl = body.indexOf('\n');
    if (nl >= 0) resolveFirst(body.slice(0, nl));
  });
  child.stderr.setEncoding('utf8').on('data', (d: string) => {
    stderr += d;
  });
  const done = new Promise<HttpResult>((resolve) => {
    child.once('exit', (code) => {
      rejectFirst(new Error(`curl ${url} ended (exit ${code}) before the first line: ${stderr.trim()}`));
      resolve({ code, body, stderr });
    });
  });
  // Avoid an unhandled rejection when nobody waits for the first line.
  firstLine.catch(() => undefined);
  return {
    firstLine,
    done,
    kill: () => {
      if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) {
        try {
          process.kill(child.pid, 'SIGKILL');
        } catch {
          // gone
        }
      }
    },
  };
}

/**
 * A TCP connect from a lab host, by node inside the namespace: 'connected', or the error code (ECONNREFUSED means a
 * RST came back, EHOSTUNREACH that nobody answered ARP/ND), or 'timeout'.
 */
export async function tcpProbe(lab: LabLike, from: LabHostName, addr: string, port: number, timeoutMs = 3000): Promise<string> {
  const script = `
    const s = require('node:net').connect({ host: process.argv[1], port: Number(process.argv[2]) });
    const t = setTimeout(() => { console.log('timeout'); process.exit(0); }, Number(process.argv[3]));
    s.on('connect', () => { console.log('connected'); s.destroy(); clearTimeout(t); });
    s.on('error', (e) => { console.log(e.code); clearTimeout(t); });`;
  const r = await lab.exec(from, process.execPath, ['-e', script, addr, String(port), String(timeoutMs)], {
    timeoutMs: timeoutMs + 5000,
  });
  return r.stdout.trim();
}

/** The client's neighbour entry for an address: MAC (if any) and state. */
export async function neighbour(lab: LabLike, host: LabHostName, addr: string): Promise<{ mac?: string; state: string[] }> {
  const r = await ip(lab.host(host).ns, ['-j', 'neigh', 'show', 'to', addr, 'dev', 'eth0']);
  const entries = JSON.parse(r.stdout || '[]') as Array<{ dst: string; lladdr?: string; state?: string[] }>;
  const e = entries.find((x) => x.dst === addr);
  return { mac: e?.lladdr, state: e?.state ?? [] };
}

/** Counts of each distinct value. */
export function tally(values: string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const v of values) out[v] = (out[v] ?? 0) + 1;
  return out;
}

// ---- ipvsadm -Ln output ----------------------------------------------------------------------------------------

export interface LnRealServer {
  address: string;
  /** -Ln: Forward, Weight, ActiveConn, InActConn; --stats: Conns, InPkts, OutPkts, InBytes, OutBytes. */
  fields: string[];
}
export interface LnService {
  proto: string;
  address: string;
  /** -Ln: scheduler and flags; --stats: the counters. */
  fields: string[];
  realServers: LnRealServer[];
}

/** Parses `ipvsadm -Ln` / `-Ln --stats` output into services and their real servers (header lines skipped). */
export function parseLn(text: string): LnService[] {
  const services: LnService[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '') continue;
    const parts = line.split(/\s+/);
    if (/^(TCP|UDP|SCTP|FWM)$/.test(parts[0]!)) {
      // A header line reads "Prot LocalAddress:Port ..."; a service line starts with the protocol itself.
      services.push({ proto: parts[0]!, address: parts[1]!, fields: parts.slice(2), realServers: [] });
    } else if (parts[0] === '->' && parts[1] !== 'RemoteAddress:Port' && services.length > 0) {
      services[services.length - 1]!.realServers.push({ address: parts[1]!, fields: parts.slice(2) });
    }
  }
  return services;
}
