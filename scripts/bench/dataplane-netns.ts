// Runs the data-plane section in a network namespace of its own, whose FIB routes the lab client (so NAT's reply
// path, which asks bpf_fib_lookup, forwards), in a child process entered with `nsenter --net` (bpffs stays visible).

import { spawn } from 'node:child_process';
import { join } from 'node:path';

import { PACKAGE_ROOT } from '../../src/paths.js';
import { readdirSync, rmSync } from 'node:fs';

import { addNetns, delNetns, delNetnsSync, ip, netnsPath, newLabId, registerEmergencyCleanup, sysctl, terminatePidSync } from '../lab/netns.js';
import type { DataplaneOptions } from './dataplane.js';
import type { Section } from './report.js';

/**
 * The namespace (lab addresses; nothing is ever sent: the program only reads this FIB):
 *   pub0  198.18.0.1/24  fd00:2::1/64      the client side; the client 198.18.0.10 / fd00:2::10 is a permanent neighbour
 *   priv0 198.18.32.1/19 fd00:3::ffff/64   the real servers' side (the cases' real servers are 198.18.32.0/19, fd00:3::/64)
 */
const PUB = { dev: 'pub0', ip4: '198.18.0.1/24', ip6: 'fd00:2::1/64', mac: '02:00:00:00:d1:01' };
const PRIV = { dev: 'priv0', ip4: '198.18.32.1/19', ip6: 'fd00:3::ffff/64', mac: '02:00:00:00:d1:02' };
const CLIENT = { ip4: '198.18.0.10', ip6: 'fd00:2::10', mac: '02:00:00:00:c1:00' };

async function buildNetns(name: string): Promise<void> {
  await addNetns(name);
  for (const scope of ['all', 'default']) await sysctl(name, `net.ipv6.conf.${scope}.accept_dad`, 0);
  for (const side of [PUB, PRIV]) {
    await ip(name, ['link', 'add', side.dev, 'type', 'veth', 'peer', 'name', `${side.dev}p`]);
    await ip(name, ['link', 'set', 'dev', side.dev, 'address', side.mac]);
    await ip(name, ['link', 'set', 'dev', side.dev, 'up']);
    await ip(name, ['link', 'set', 'dev', `${side.dev}p`, 'up']);
    await ip(name, ['addr', 'add', side.ip4, 'dev', side.dev]);
    await ip(name, ['-6', 'addr', 'add', side.ip6, 'dev', side.dev, 'nodad']);
  }
  await ip(name, ['neigh', 'replace', CLIENT.ip4, 'lladdr', CLIENT.mac, 'dev', PUB.dev, 'nud', 'permanent']);
  await ip(name, ['-6', 'neigh', 'replace', CLIENT.ip6, 'lladdr', CLIENT.mac, 'dev', PUB.dev, 'nud', 'permanent']);
  // bpf_fib_lookup() answers only where the kernel would forward, as on a NAT director.
  await sysctl(name, 'net.ipv4.conf.all.forwarding', 1);
  await sysctl(name, 'net.ipv6.conf.all.forwarding', 1);
}

/** Removes the bpffs pin directories a bench process `pid` made (/sys/fs/bpf/xdpvs_bench_*_<pid>[_*]). */
export function removeBenchPins(pid: number): void {
  const mine = new RegExp(`^xdpvs_bench_[a-z]+_${pid}(_|$)`);
  try {
    for (const d of readdirSync('/sys/fs/bpf')) if (mine.test(d)) rmSync(`/sys/fs/bpf/${d}`, { recursive: true, force: true });
  } catch {
    // best effort
  }
}

export async function runDataplaneInNetns(opts: DataplaneOptions, log: (m: string) => void): Promise<Section> {
  const name = `xvb${newLabId()}-dp`;
  let childPid: number | undefined;
  const unregister = registerEmergencyCleanup(() => {
    // SIGTERM lets the child remove its own pins; whatever a child killed outright left is removed here.
    terminatePidSync(childPid, 3_000);
    if (childPid !== undefined) removeBenchPins(childPid);
    delNetnsSync(name);
  });
  try {
    await buildNetns(name);
    const script = join(PACKAGE_ROOT, 'dist/scripts/bench/dataplane-child.js');
    const child = spawn('nsenter', [`--net=${netnsPath(name)}`, '--', process.execPath, script, JSON.stringify({ ...opts, privDev: PRIV.dev })], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    childPid = child.pid;
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      err = (err + d).slice(-8000);
      // Progress lines go straight through; the last lines of a failure come with the error below.
      for (const line of d.split('\n')) if (line.startsWith('bench: ')) log(line.slice(7));
    });
    const code = await new Promise<number | null>((resolve, reject) => {
      const timer = setTimeout(() => child.kill('SIGTERM'), 300_000);
      child.once('error', (e) => {
        clearTimeout(timer);
        reject(e);
      });
      child.once('exit', (c, sig) => {
        clearTimeout(timer);
        resolve(c ?? (sig ? -1 : null));
      });
    });
    if (code !== 0) {
      const why = err.split('\n').filter((l) => l && !l.startsWith('bench: ')).join('\n');
      throw new Error(why || `the data-plane child exited with ${code}`);
    }
    return JSON.parse(out.trim().split('\n').at(-1) ?? '') as Section;
  } finally {
    await delNetns(name).catch(() => undefined);
    unregister();
  }
}
