// Section 4: end to end in the namespace lab. HTTP requests/s (wrk in the client namespace) sent directly to one
// real server, through xdpvsd in DR mode, and through nftables DNAT on the same director; the director's CPU time
// per request for xdpvs and nftables, read from the director interface's own NAPI thread.

import { readdirSync, readFileSync } from 'node:fs';

import { startDirector, type Director } from '../lab/director.js';
import { ip, nsRun, sleep, type RunResult } from '../lab/netns.js';
import { startRealServers, type RealServers } from '../lab/realservers.js';
import { createDrLab, type DrLab } from '../lab/topology.js';
import { SectionError, atLeast, atMost, row, type Row, type Section } from './report.js';
import { median, nowNs, sig } from './stats.js';

export interface E2eOptions {
  /** Seconds per wrk run. */
  seconds: number;
  /** Rounds of (direct, xdpvs, nftables); each round runs every mode. */
  rounds: number;
  threads: number;
  connections: number;
  modes: Mode[];
}

export type Mode = 'keepalive' | 'close';

export const E2E_DEFAULTS: E2eOptions = { seconds: 5, rounds: 4, threads: 1, connections: 16, modes: ['keepalive', 'close'] };

type Scenario = 'direct' | 'xdpvs' | 'nft';

const PORT = 80;
const NFT_TABLE = 'xdpvs_bench';

const MODE_TEXT: Record<Mode, string> = {
  keepalive: 'keep-alive',
  close: 'new connection per request',
};

const METHODS: Record<string, string> = {
  wrk:
    'wrk (Debian) inside the client namespace, -t{T} -c{C} -d{D}s, against http://VIP/ (xdpvs, nftables) or ' +
    'http://RIP1/ (direct); keep-alive, or "Connection: close" (every request a new TCP connection: a new flow for ' +
    'the director). The real servers are the lab\'s Node HTTP servers (one process each, 2 real servers); the ' +
    'director alternates them (xdpvs rr, nftables numgen inc mod 2). Rounds interleave the three set-ups; the row ' +
    'is the median of the rounds (each round in the JSON). The client, the real servers and wrk share 2 CPUs with ' +
    'the director and with other work on the machine, so req/s are those of this lab, not a director\'s capacity; ' +
    'the director path runs part of the work in two kernel threads (see [cpu]) that "direct" does not have, which ' +
    'on a saturated machine earns it a larger share of the CPUs: compare xdpvs with nftables, not with direct.',
  cpu:
    'CPU time of the director eth0\'s receive thread over all rounds divided by the requests wrk completed in them. ' +
    'The lab turns on threaded NAPI on the director\'s eth0 and on its switch port, GRO on eth0 (it keeps the NAPI ' +
    'instance when no XDP program is attached) and TSO off on the switch port (a veth hands what it sends to its ' +
    'peer\'s NAPI only without TSO): so every packet the director handles is received, processed (the XDP program ' +
    'and its XDP_TX, or netfilter conntrack + DNAT + routing + transmit) and handed to the switch in that one kernel ' +
    'thread, and the work further down the path runs in other threads. Its sum_exec_runtime (/proc/PID/schedstat, ' +
    'ns) is read around each run. xdpvsd\'s own CPU (its timers: neighbour refresh, connection upkeep) is in the ' +
    'JSON per run (daemonMs). ' +
    'Baseline: nftables.',
};

interface RunStats {
  requests: number;
  seconds: number;
  rps: number;
  latencyP50Ms: number | null;
  latencyP99Ms: number | null;
  errors: { connect: number; read: number; write: number; timeout: number; non2xx: number };
  /** Director eth0 NAPI thread, ns. */
  directorNs: number;
  /** Switch port of the director, ns (context). */
  switchNs: number;
  /** xdpvsd's own user+system CPU over the run, ms (xdpvs only). */
  daemonMs?: number;
  /** Machine-wide busy share over the run (all CPUs), for context. */
  machineBusy: number;
  /** xdpvs: packets the XDP program forwarded during the run (its fwd_tx + fwd_redirect counters). */
  xdpForwardedPackets?: number;
  /** nftables: connections the DNAT rule translated (a nat chain sees the first packet of each connection). */
  nftDnatConnections?: number;
}

// ---- small system readers --------------------------------------------------------------------------------

function threadNs(pid: number): number {
  const f = readFileSync(`/proc/${pid}/schedstat`, 'utf8').trim().split(/\s+/);
  return Number(f[0]);
}

function commOf(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return undefined;
  }
}

/** PIDs of kernel threads named napi/<dev>-<id>. */
function napiThreads(dev: string): Set<number> {
  const out = new Set<number>();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    const c = commOf(Number(d));
    if (c && c.startsWith(`napi/${dev}-`)) out.add(Number(d));
  }
  return out;
}

function procCpuMs(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // utime, stime, cutime, cstime: fields 14-17, i.e. 11-14 after the command name.
    return ((Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) * 1000) / 100;
  } catch {
    return NaN;
  }
}

function machineTicks(): { busy: number; total: number } {
  const cpu = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const total = cpu.reduce((a, b) => a + b, 0);
  const idle = cpu[3] + (cpu[4] ?? 0);
  return { busy: total - idle, total };
}

// ---- wrk ----------------------------------------------------------------------------------------------------

function toMs(v: string, unit: string): number {
  const x = Number(v);
  return unit === 'us' ? x / 1000 : unit === 'ms' ? x : unit === 's' ? x * 1000 : unit === 'm' ? x * 60_000 : NaN;
}

export function parseWrk(out: string): Omit<RunStats, 'directorNs' | 'switchNs' | 'machineBusy'> {
  const m = /(\d+) requests in ([\d.]+)(us|ms|s|m),/.exec(out);
  const rps = /Requests\/sec:\s+([\d.]+)/.exec(out);
  if (!m || !rps) throw new Error(`cannot read wrk's output:\n${out}`);
  const requests = Number(m[1]);
  const seconds = toMs(m[2], m[3]) / 1000;
  const lat = (p: string): number | null => {
    const r = new RegExp(`^\\s+${p}%\\s+([\\d.]+)(us|ms|s|m)\\s*$`, 'm').exec(out);
    return r ? toMs(r[1], r[2]) : null;
  };
  const se = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(out);
  return {
    requests,
    seconds,
    rps: Number(rps[1]),
    latencyP50Ms: lat('50'),
    latencyP99Ms: lat('99'),
    errors: {
      connect: se ? Number(se[1]) : 0,
      read: se ? Number(se[2]) : 0,
      write: se ? Number(se[3]) : 0,
      timeout: se ? Number(se[4]) : 0,
      non2xx: non2xx ? Number(non2xx[1]) : 0,
    },
  };
}

// ---- the lab ------------------------------------------------------------------------------------------------

interface Lab {
  lab: DrLab;
  servers: RealServers;
  directorThread: number;
  switchThread: number;
}

async function sh(ns: string, script: string): Promise<RunResult> {
  return nsRun(ns, 'sh', ['-c', script]);
}

async function threadedNapi(ns: string, dev: string): Promise<number> {
  const before = napiThreads(dev);
  await sh(ns, `echo 1 > /sys/class/net/${dev}/threaded`);
  let found: number[] = [];
  for (let i = 0; i < 50 && found.length === 0; i++) {
    found = [...napiThreads(dev)].filter((p) => !before.has(p));
    if (found.length === 0) await sleep(20);
  }
  if (found.length !== 1) throw new Error(`threaded NAPI on ${dev} in ${ns}: expected one new napi/${dev}-* thread, found ${found.length}`);
  return found[0];
}

async function buildLab(log: (m: string) => void): Promise<Lab> {
  log('end to end: building the DR lab (client, director, 2 real servers)');
  const lab = await createDrLab({ realServers: 2 });
  log(`end to end: lab ${lab.id} (namespaces xv${lab.id}-*)`);
  try {
    const servers = await startRealServers(lab, { port: PORT });
    // wrk opening a connection per request leaves the client (it closes first) with a TIME_WAIT socket per
    // request: ~37,000 a run, more than the default 28,232 ephemeral ports, so later rounds ran out of ports and
    // stalled on SYN retransmissions — the same for every set-up, direct included. A load generator's usual
    // settings: the whole port range, and TIME_WAIT ports reused for new connections (timestamps keep it safe).
    await nsRun(lab.client.ns, 'sysctl', ['-q', '-w', 'net.ipv4.ip_local_port_range=1024 65535', 'net.ipv4.tcp_tw_reuse=1']);
    // GRO keeps the director's veth NAPI (and its thread) whether or not an XDP program is attached, and a veth
    // hands the skbs it transmits to its peer's NAPI only when it does no TSO itself (veth_skb_is_eligible_for_gro):
    // with both, what the switch sends the director is received in the director's NAPI thread, XDP or not.
    await nsRun(lab.director.ns, 'ethtool', ['-K', lab.director.dev, 'gro', 'on']);
    await nsRun(lab.switchNs, 'ethtool', ['-K', lab.director.switchPort, 'tso', 'off']);
    const directorThread = await threadedNapi(lab.director.ns, lab.director.dev);
    const switchThread = await threadedNapi(lab.switchNs, lab.director.switchPort);
    return { lab, servers, directorThread, switchThread };
  } catch (e) {
    await lab.destroy().catch(() => undefined);
    throw e;
  }
}

async function curlOnce(lab: DrLab, url: string): Promise<string> {
  const r = await lab.exec('client', 'curl', ['-s', '--max-time', '2', url], { timeoutMs: 5_000, allowFailure: true });
  return r.code === 0 ? r.stdout.trim() : '';
}

/** Waits until requests to url have reached every real server (the set-up forwards to both). */
async function waitBothServers(lab: DrLab, url: string, what: string): Promise<void> {
  const seen = new Set<string>();
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    const name = await curlOnce(lab, url);
    if (name) seen.add(name);
    if (lab.realServers.every((rs) => seen.has(rs.name))) return;
    await sleep(100);
  }
  throw new Error(`${what}: requests to ${url} did not reach every real server within 20 s (answers: ${[...seen].join(', ') || 'none'})`);
}

async function wrk(l: Lab, url: string, mode: Mode, o: E2eOptions, daemonPid?: number): Promise<RunStats> {
  const args = [`-t${o.threads}`, `-c${o.connections}`, `-d${o.seconds}s`, '--timeout', '2s', '--latency'];
  if (mode === 'close') args.push('-H', 'Connection: close');
  args.push(url);
  const d0 = threadNs(l.directorThread);
  const s0 = threadNs(l.switchThread);
  const m0 = machineTicks();
  const p0 = daemonPid ? procCpuMs(daemonPid) : 0;
  const r = await l.lab.exec('client', 'wrk', args, { timeoutMs: (o.seconds + 30) * 1000 });
  const d1 = threadNs(l.directorThread);
  const s1 = threadNs(l.switchThread);
  const m1 = machineTicks();
  const p1 = daemonPid ? procCpuMs(daemonPid) : 0;
  const w = parseWrk(r.stdout);
  if (w.requests === 0) throw new Error(`wrk ${args.join(' ')}: no request completed:\n${r.stdout}${r.stderr}`);
  return {
    ...w,
    directorNs: d1 - d0,
    switchNs: s1 - s0,
    ...(daemonPid ? { daemonMs: p1 - p0 } : {}),
    machineBusy: (m1.busy - m0.busy) / (m1.total - m0.total),
  };
}

// ---- set-ups ------------------------------------------------------------------------------------------------

async function withXdpvs<T>(l: Lab, fn: (d: Director) => Promise<T>): Promise<T> {
  const { lab } = l;
  const d = await startDirector(lab);
  try {
    const vs = `${lab.vip4}:${PORT}`;
    await d.admOk(['-A', '-t', vs, '-s', 'rr']);
    for (const rs of lab.realServers) await d.admOk(['-a', '-t', vs, '-r', `${rs.ip4}:${PORT}`, '-g']);
    await waitBothServers(lab, `http://${lab.vip4}/`, 'xdpvs');
    return await fn(d);
  } finally {
    await d.stop();
  }
}

async function xdpvsForwarded(lab: DrLab, d: Director): Promise<number> {
  const r = await nsRun(lab.director.ns, 'curl', ['-s', '--max-time', '5', `${d.server}/v1/stats`], { timeoutMs: 10_000 });
  const stats = JSON.parse(r.stdout) as { reasons?: Record<string, number> };
  if (!stats.reasons) throw new Error(`xdpvs: GET /v1/stats has no reason counters: ${r.stdout.slice(0, 200)}`);
  return (stats.reasons.fwd_tx ?? 0) + (stats.reasons.fwd_redirect ?? 0);
}

interface NftSaved {
  ipForward: string;
  redirects: Record<string, string>;
}

async function nftUp(l: Lab): Promise<NftSaved> {
  const { lab } = l;
  const ns = lab.director.ns;
  const dev = lab.director.dev;
  const get = async (k: string): Promise<string> => (await nsRun(ns, 'sysctl', ['-n', k])).stdout.trim();
  const saved: NftSaved = {
    ipForward: await get('net.ipv4.ip_forward'),
    redirects: { all: await get('net.ipv4.conf.all.send_redirects'), [dev]: await get(`net.ipv4.conf.${dev}.send_redirects`) },
  };
  await nsRun(ns, 'sysctl', ['-q', '-w', 'net.ipv4.ip_forward=1']);
  // In and out of the same interface: no ICMP redirects telling the real servers to bypass the director.
  await nsRun(ns, 'sysctl', ['-q', '-w', 'net.ipv4.conf.all.send_redirects=0', `net.ipv4.conf.${dev}.send_redirects=0`]);
  const rips = lab.realServers.map((rs, i) => `${i} : ${rs.ip4}`).join(', ');
  const rules =
    `table ip ${NFT_TABLE} {\n` +
    '  chain prerouting {\n' +
    '    type nat hook prerouting priority dstnat; policy accept;\n' +
    `    ip daddr ${lab.vip4} tcp dport ${PORT} counter dnat to numgen inc mod ${lab.realServers.length} map { ${rips} }\n` +
    '  }\n' +
    '}\n';
  await sh(ns, `nft -f - <<'EOF'\n${rules}EOF`);
  // NAT needs the replies back through the director. The client is on the real servers' own subnet, so a default
  // route would not do: a host route for the client via the director does.
  for (const rs of lab.realServers) {
    await ip(rs.ns, ['route', 'replace', `${lab.client.ip4}/32`, 'via', lab.director.ip4, 'dev', rs.dev]);
  }
  return saved;
}

async function nftDown(l: Lab, saved: NftSaved | undefined): Promise<void> {
  const { lab } = l;
  const ns = lab.director.ns;
  const errors: unknown[] = [];
  const step = async (fn: () => Promise<unknown>): Promise<void> => {
    try {
      await fn();
    } catch (e) {
      errors.push(e);
    }
  };
  for (const rs of lab.realServers) {
    await step(() => ip(rs.ns, ['route', 'del', `${lab.client.ip4}/32`], { allowFailure: true }));
  }
  await step(() => nsRun(ns, 'nft', ['delete', 'table', 'ip', NFT_TABLE], { allowFailure: true }));
  if (saved) {
    await step(() => nsRun(ns, 'sysctl', ['-q', '-w', `net.ipv4.ip_forward=${saved.ipForward}`]));
    for (const [k, v] of Object.entries(saved.redirects)) {
      await step(() => nsRun(ns, 'sysctl', ['-q', '-w', `net.ipv4.conf.${k}.send_redirects=${v}`]));
    }
  }
  if (errors.length) throw errors[0];
}

async function nftCounter(lab: DrLab): Promise<number> {
  const r = await nsRun(lab.director.ns, 'nft', ['list', 'table', 'ip', NFT_TABLE]);
  const m = /counter packets (\d+)/.exec(r.stdout);
  return m ? Number(m[1]) : 0;
}

// ---- the section --------------------------------------------------------------------------------------------

type Key = `${Scenario}-${Mode}`;

export async function runE2e(o: E2eOptions, log: (m: string) => void): Promise<Section> {
  const t0 = nowNs();
  const runs = new Map<Key, RunStats[]>();
  const add = (k: Key, r: RunStats): void => {
    runs.set(k, [...(runs.get(k) ?? []), r]);
  };
  // On Ctrl-C the lab's own emergency cleanup deletes its namespaces, and with them the real servers' routes,
  // the director's sysctls and the nftables table: nothing of a set-up outlives the lab.
  const l = await buildLab(log);
  const { lab } = l;
  let failure: unknown;
  try {
    for (let round = 1; round <= o.rounds; round++) {
      for (const mode of o.modes) {
        log(`end to end: round ${round}/${o.rounds}: direct to ${lab.realServers[0].name}, ${MODE_TEXT[mode]}, ${o.seconds} s`);
        add(`direct-${mode}`, await wrk(l, `http://${lab.realServers[0].ip4}/`, mode, o));
      }
      let saved: NftSaved | undefined;
      try {
        saved = await nftUp(l);
        await waitBothServers(lab, `http://${lab.vip4}/`, 'nftables DNAT');
        for (const mode of o.modes) {
          log(`end to end: round ${round}/${o.rounds}: through nftables DNAT (numgen rr), ${MODE_TEXT[mode]}, ${o.seconds} s`);
          const before = await nftCounter(lab);
          const r = await wrk(l, `http://${lab.vip4}/`, mode, o);
          r.nftDnatConnections = (await nftCounter(lab)) - before;
          if (r.nftDnatConnections < 1) throw new Error('nftables: the DNAT rule translated no connection: traffic bypassed it');
          add(`nft-${mode}`, r);
        }
      } finally {
        await nftDown(l, saved);
      }
      await withXdpvs(l, async (d) => {
        for (const mode of o.modes) {
          log(`end to end: round ${round}/${o.rounds}: through xdpvs (DR, rr), ${MODE_TEXT[mode]}, ${o.seconds} s`);
          const before = await xdpvsForwarded(lab, d);
          const r = await wrk(l, `http://${lab.vip4}/`, mode, o, d.pid);
          r.xdpForwardedPackets = (await xdpvsForwarded(lab, d)) - before;
          if (r.xdpForwardedPackets < r.requests) {
            throw new Error(`xdpvs: the XDP program forwarded ${r.xdpForwardedPackets} packets for ${r.requests} requests: traffic bypassed it`);
          }
          add(`xdpvs-${mode}`, r);
        }
      });
    }
  } catch (e) {
    failure = e;
  } finally {
    await l.servers.stopAll().catch(() => undefined);
    await lab.destroy();
  }

  // ---- rows (of what was measured, also when a later run failed)
  const rows: Row[] = [];
  const rpsOf = (k: Key): number => median(runs.get(k)!.map((r) => r.rps));
  const cpuOf = (k: Key): number => {
    const rs = runs.get(k)!;
    return rs.reduce((a, r) => a + r.directorNs, 0) / rs.reduce((a, r) => a + r.requests, 0) / 1000;
  };
  const detail = (k: Key): Record<string, unknown> => ({
    rounds: runs.get(k)!.map((r) => ({
      ...r,
      rps: sig(r.rps),
      directorUsPerRequest: sig(r.directorNs / r.requests / 1000),
      switchUsPerRequest: sig(r.switchNs / r.requests / 1000),
      machineBusy: sig(r.machineBusy, 3),
    })),
  });
  for (const mode of o.modes) {
    if (!runs.has(`direct-${mode}`) || !runs.has(`nft-${mode}`) || !runs.has(`xdpvs-${mode}`)) continue;
    const m = MODE_TEXT[mode];
    const direct = rpsOf(`direct-${mode}`);
    const xdp = rpsOf(`xdpvs-${mode}`);
    const nft = rpsOf(`nft-${mode}`);
    const directBase = { label: 'direct', value: direct, unit: 'req/s' };
    rows.push(row({ id: `rps-direct-${mode}`, label: `req/s direct to one RS, ${m}`, value: direct, unit: 'req/s', method: 'wrk', details: detail(`direct-${mode}`) }));
    rows.push(row({
      id: `rps-xdpvs-${mode}`,
      label: `req/s through xdpvs DR, ${m}`,
      value: xdp,
      unit: 'req/s',
      baseline: directBase,
      targets: [atLeast(xdp, nft, `≥ nftables (${Math.round(nft)})`)],
      method: 'wrk',
      details: detail(`xdpvs-${mode}`),
    }));
    rows.push(row({ id: `rps-nft-${mode}`, label: `req/s through nftables DNAT, ${m}`, value: nft, unit: 'req/s', baseline: directBase, method: 'wrk', details: detail(`nft-${mode}`) }));
    const cx = cpuOf(`xdpvs-${mode}`);
    const cn = cpuOf(`nft-${mode}`);
    rows.push(row({
      id: `cpu-xdpvs-${mode}`,
      label: `director CPU per request, xdpvs, ${m}`,
      value: cx,
      unit: 'µs',
      baseline: { label: 'nftables', value: cn, unit: 'µs' },
      targets: [atMost(cx, cn * 0.999999, '< nftables')],
      method: 'cpu',
    }));
    rows.push(row({
      id: `cpu-nft-${mode}`,
      label: `director CPU per request, nftables, ${m}`,
      value: cn,
      unit: 'µs',
      method: 'cpu',
      details: { directMode: sig(cpuOf(`direct-${mode}`)) },
    }));
  }
  if (failure !== undefined) {
    const partial = [...runs].map(([k, rs]) =>
      row({ id: `partial-${k}`, label: `${k} (before the failure)`, value: rs.reduce((a, r) => a + r.rps, 0) / rs.length, unit: 'req/s', method: 'wrk', details: { rounds: rs } }),
    );
    throw new SectionError(failure instanceof Error ? failure.message : String(failure), rows.length ? rows : partial);
  }
  return {
    id: 'end-to-end',
    title: '4. End to end in the namespace lab (wrk -> director -> 2 real servers)',
    rows,
    methods: { ...METHODS, wrk: METHODS.wrk.replace('{T}', String(o.threads)).replace('{C}', String(o.connections)).replace('{D}', String(o.seconds)) },
    durationS: (nowNs() - t0) / 1e9,
    context: { ...o, vip: lab.vip4, realServers: lab.realServers.map((r) => r.ip4), nftRule: 'dnat to numgen inc mod 2 map { 0 : RIP1, 1 : RIP2 }' },
  };
}
