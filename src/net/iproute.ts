// iproute2 as a library: `ip -j` run without a shell, in the caller's network namespace, JSON parsed.

import { execFile } from 'node:child_process';
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

export interface NeighInfo {
  dst: string;
  dev?: string;
  lladdr?: string;
  state?: string[];
}

export function macFromText(text: string): Buffer {
  return Buffer.from(text.split(':').map((h) => parseInt(h, 16)));
}
