// iproute2 as a library: `ip -j` run without a shell, in the caller's network namespace, JSON parsed.

import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import { ErrorCode, XdpvsError } from '../errors.js';

const run = promisify(execFile);

/** Runs `ip ARGS` and returns stdout; a failure becomes XDPVS_ERR_SYSTEM with ip's own message. */
export async function ip(args: string[]): Promise<string> {
  try {
    const { stdout } = await run('ip', args, { timeout: 5000, maxBuffer: 64 * 1024 * 1024 });
    return stdout;
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    throw new XdpvsError(ErrorCode.System, `ip ${args.join(' ')}: ${(err.stderr || err.message).trim()}`, { command: ['ip', ...args] });
  }
}

export async function ipJson<T>(args: string[]): Promise<T> {
  const out = await ip(['-j', ...args]);
  return (out.trim() === '' ? [] : JSON.parse(out)) as T;
}

/**
 * Runs many `ip` commands in one process (`ip -j -force -batch -`): a failing command prints nothing to stdout and the
 * others go on, so each JSON line is matched to its command by content, not by position.
 */
async function ipBatchJson<T>(globalArgs: string[], commands: string[]): Promise<T[]> {
  if (commands.length === 0) return [];
  return new Promise((resolve, reject) => {
    const child = spawn('ip', ['-j', ...globalArgs, '-force', '-batch', '-'], { stdio: ['pipe', 'pipe', 'ignore'] });
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => child.kill(), 5000);
    child.stdout.on('data', (c: Buffer) => chunks.push(c));
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(new XdpvsError(ErrorCode.System, `ip -batch: ${e.message}`));
    });
    child.on('close', () => {
      clearTimeout(timer);
      const lines = Buffer.concat(chunks).toString('utf8').split('\n').filter((l) => l.trim() !== '');
      try {
        resolve(lines.flatMap((l) => JSON.parse(l) as T[]));
      } catch (e) {
        reject(new XdpvsError(ErrorCode.System, `ip -batch: unreadable output: ${(e as Error).message}`));
      }
    });
    child.stdin.end(commands.map((c) => `${c}\n`).join(''));
  });
}

export interface LinkInfo {
  ifindex: number;
  ifname: string;
  address?: string;
  operstate?: string;
  link_type?: string;
  mtu?: number;
}

export async function getLink(name: string): Promise<LinkInfo> {
  const links = await ipJson<LinkInfo[]>(['link', 'show', 'dev', name]);
  if (links.length === 0) throw new XdpvsError(ErrorCode.System, `no interface named ${name}`);
  return links[0];
}

export async function listLinks(): Promise<LinkInfo[]> {
  return ipJson<LinkInfo[]>(['link', 'show']);
}

export interface RouteInfo {
  dst: string;
  dev: string;
  gateway?: string;
  type?: string;
  prefsrc?: string;
  /** Route metrics (`ip route add ... mtu 1400` shows as [{ mtu: 1400 }]). */
  metrics?: Array<{ mtu?: number }>;
}

/**
 * `ip route get` for each address of one family, in one process: address -> route (absent when there is none). The
 * daemon re-reads every real server's route every few seconds; one process per real server would not scale.
 */
export async function routesGet(addresses: string[], family: 'inet' | 'inet6'): Promise<Map<string, RouteInfo>> {
  const canon = (a: string) => (family === 'inet6' ? canonicalIpv6(a) : a);
  const wanted = new Map(addresses.map((a) => [canon(a), a]));
  const routes = await ipBatchJson<RouteInfo>([family === 'inet' ? '-4' : '-6'], [...wanted.values()].map((a) => `route get ${a}`));
  const out = new Map<string, RouteInfo>();
  for (const r of routes) {
    const asked = wanted.get(canon(r.dst));
    if (asked !== undefined && !out.has(asked)) out.set(asked, r);
  }
  return out;
}

/** One spelling per IPv6 address (ip prints its own compression; callers may spell it otherwise). */
function canonicalIpv6(text: string): string {
  try {
    return new URL(`http://[${text}]/`).hostname;
  } catch {
    return text;
  }
}

export interface NeighInfo {
  dst: string;
  dev?: string;
  lladdr?: string;
  state?: string[];
}

export function macFromText(text: string): Buffer {
  return Buffer.from(text.split(':').map((h) => parseInt(h, 16)));
}
