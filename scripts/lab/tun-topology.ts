// The VS/TUN lab in network namespaces: real servers one router away from the director (what tunnelling is for), one
// more beside it, all decapsulating with the project's XDP program (this kernel has no ipip module).
import { spawn } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import {
  addNetns,
  addVethPair,
  claimLab,
  ethtoolFeatures,
  ip,
  netnsExists,
  netnsInode,
  netnsPath,
  newLabId,
  nsRun,
  recordLab,
  registerEmergencyCleanup,
  repoRoot,
  run,
  stopChild,
  sysctl,
  terminatePidSync,
  waitFor,
  type RunOptions,
  type RunResult,
} from './netns.js';
import { setUpRealServer } from './realserver-setup.js';
import type { LabHost, LabHostName } from './topology.js';

/**
 * The address plan.
 *
 *   segment A (the client's), switch namespace xv<id>-swa
 *     client    198.18.0.10/24  fd00::10/64  02:18:00:00:00:0a  eth0
 *     director  198.18.0.2/24   fd00::2/64   02:18:00:00:00:02  eth0, plus VIP 198.18.0.100/32 and fd00::100/128;
 *                                                                routes to segment B via the router
 *     router    198.18.0.1/24   fd00::1/64   02:18:00:00:00:01  eth0
 *     rsN       198.18.0.1N/24  fd00::1N/64                     eth0: the "local" real servers (tunnel or DR)
 *   segment B (behind the router), switch namespace xv<id>-swb
 *     router    198.19.1.1/24   fd00:1::1/64 02:19:01:00:00:01  eth1
 *     rsN       198.19.1.1N/24  fd00:1::1N/64                   eth0, default route via the router: "remote" real
 *                                                                servers, reachable only by tunnelling
 *
 * Remote real servers come first (rs1, rs2, ...), then the local ones. Every real server holds the VIP on lo
 * (arp_ignore=1, arp_announce=2, rp_filter=0: scripts/lab/realserver-setup.sh tun) and answers the client directly;
 * the router forwards those answers (source: the VIP) with reverse-path filtering off, as a router in front of
 * tunnelled real servers must.
 */
export const TUN_PLAN = {
  prefixLen4: 24,
  prefixLen6: 64,
  vip4: '198.18.0.100',
  vip6: 'fd00::100',
  client: { ip4: '198.18.0.10', ip6: 'fd00::10', mac: '02:18:00:00:00:0a' },
  director: { ip4: '198.18.0.2', ip6: 'fd00::2', mac: '02:18:00:00:00:02' },
  router: { ip4: '198.18.0.1', ip6: 'fd00::1', mac: '02:18:00:00:00:01' },
  routerB: { ip4: '198.19.1.1', ip6: 'fd00:1::1', mac: '02:19:01:00:00:01' },
  prefixB4: '198.19.1.0/24',
  prefixB6: 'fd00:1::/64',
  /** Real server N (from 1); remote ones on segment B, local ones on segment A. */
  realServer(n: number, remote: boolean): { ip4: string; ip6: string; mac: string } {
    if (!Number.isInteger(n) || n < 1 || n > MAX_TUN_REAL_SERVERS) throw new Error(`lab: real server number ${n} is outside 1..${MAX_TUN_REAL_SERVERS}`);
    const last = 10 + n;
    const hex = last.toString(16).padStart(2, '0');
    return remote
      ? { ip4: `198.19.1.${last}`, ip6: `fd00:1::${last}`, mac: `02:19:01:00:00:${hex}` }
      : { ip4: `198.18.0.${last}`, ip6: `fd00::${last}`, mac: `02:18:00:00:00:${hex}` };
  },
} as const;

export const MAX_TUN_REAL_SERVERS = 80;

export interface TunLabOptions {
  /** Real servers behind the router (default 2). */
  remoteRealServers?: number;
  /** Real servers on the director's own segment (default 1), for direct routing beside tunnelling. */
  localRealServers?: number;
  /** XDP object for the director's switch port (default build/bpf/xdp_pass.bpf.o): XDP_TX on veth needs one there. */
  peerXdpObject?: string;
  /** Lab id (6 hex characters, random by default). */
  id?: string;
}

export interface TunLab {
  id: string;
  plan: typeof TUN_PLAN;
  vip4: string;
  vip6: string;
  client: LabHost;
  director: LabHost;
  router: { ns: string; ip4: string; ip6: string };
  /** Every real server: the remote ones, then the local ones. */
  realServers: LabHost[];
  remoteRealServers: LabHost[];
  localRealServers: LabHost[];
  hosts: LabHost[];
  host(name: LabHostName): LabHost;
  exec(host: LabHostName, cmd: string, args: readonly string[], opts?: RunOptions): Promise<RunResult>;
  /** Deletes every namespace of the lab (and with them the veths and XDP programs). Idempotent. */
  destroy(): Promise<void>;
}

const BRIDGE = 'br0';

/** Builds the lab; on any failure removes what it created before rethrowing. */
export async function createTunLab(opts: TunLabOptions = {}): Promise<TunLab> {
  const remote = opts.remoteRealServers ?? 2;
  const local = opts.localRealServers ?? 1;
  if (!Number.isInteger(remote) || !Number.isInteger(local) || remote < 0 || local < 0 || remote + local < 1 || remote + local > MAX_TUN_REAL_SERVERS) {
    throw new Error(`lab: 1..${MAX_TUN_REAL_SERVERS} real servers in all, got ${remote} remote and ${local} local`);
  }
  const id = opts.id ?? newLabId();
  if (!/^[0-9a-f]{6}$/.test(id)) throw new Error(`lab: id must be 6 hex characters, got ${id}`);
  const peerXdpObject = opts.peerXdpObject ?? join(repoRoot(), 'build/bpf/xdp_pass.bpf.o');
  if (!existsSync(peerXdpObject)) {
    throw new Error(`lab: ${peerXdpObject} does not exist; build it with \`bash scripts/build.sh\` (XDP_TX on the director's veth needs an XDP program on its peer)`);
  }

  const prefix = `xv${id}`;
  const swA = `${prefix}-swa`;
  const swB = `${prefix}-swb`;
  const mk = (name: LabHostName, nsSuffix: string, addr: { ip4: string; ip6: string; mac: string }): LabHost => ({
    name,
    ns: `${prefix}-${nsSuffix}`,
    dev: 'eth0',
    ...addr,
    switchPort: `v-${nsSuffix}`,
  });
  const client = mk('client', 'client', TUN_PLAN.client);
  const director = mk('director', 'dir', TUN_PLAN.director);
  const routerNs = `${prefix}-rt`;
  const remoteRealServers: LabHost[] = [];
  const localRealServers: LabHost[] = [];
  for (let n = 1; n <= remote + local; n++) {
    const isRemote = n <= remote;
    (isRemote ? remoteRealServers : localRealServers).push(mk(`rs${n}`, `rs${n}`, TUN_PLAN.realServer(n, isRemote)));
  }
  const realServers = [...remoteRealServers, ...localRealServers];
  const hosts = [client, director, ...realServers];
  const allNs = [...hosts.map((h) => h.ns), routerNs, swA, swB];

  // What an earlier run killed with SIGKILL left behind goes first; this lab is recorded before it exists.
  const destroy = claimLab(id, allNs);

  try {
    for (const sw of [swA, swB]) {
      await addNetns(sw);
      await sysctl(sw, 'net.ipv6.conf.all.disable_ipv6', 1);
      await sysctl(sw, 'net.ipv6.conf.default.disable_ipv6', 1);
      await ip(sw, ['link', 'add', BRIDGE, 'type', 'bridge', 'stp_state', '0', 'mcast_snooping', '0']);
      await ip(sw, ['link', 'set', 'dev', BRIDGE, 'up']);
    }

    // The router: eth0 on segment A, eth1 on segment B, forwarding both families.
    await newHostNs(routerNs);
    await sysctl(routerNs, 'net.ipv4.ip_forward', 1);
    await sysctl(routerNs, 'net.ipv6.conf.all.forwarding', 1);
    for (const scope of ['all', 'default']) await sysctl(routerNs, `net.ipv4.conf.${scope}.rp_filter`, 0);
    await plug({ ns: routerNs, dev: 'eth0', switchPort: 'v-rt0', ...TUN_PLAN.router }, swA);
    await plug({ ns: routerNs, dev: 'eth1', switchPort: 'v-rt1', ...TUN_PLAN.routerB }, swB);

    for (const h of [client, director, ...localRealServers]) {
      await newHostNs(h.ns);
      await plug(h, swA);
    }
    for (const h of remoteRealServers) {
      await newHostNs(h.ns);
      await plug(h, swB);
      await ip(h.ns, ['route', 'add', 'default', 'via', TUN_PLAN.routerB.ip4]);
      await ip(h.ns, ['-6', 'route', 'add', 'default', 'via', TUN_PLAN.routerB.ip6]);
    }

    // The director owns the VIP on its interface (answers ARP/ND for it) and reaches segment B through the router.
    await ip(director.ns, ['addr', 'add', `${TUN_PLAN.vip4}/32`, 'dev', director.dev]);
    await ip(director.ns, ['-6', 'addr', 'add', `${TUN_PLAN.vip6}/128`, 'dev', director.dev, 'nodad']);
    await ip(director.ns, ['route', 'add', TUN_PLAN.prefixB4, 'via', TUN_PLAN.router.ip4]);
    await ip(director.ns, ['-6', 'route', 'add', TUN_PLAN.prefixB6, 'via', TUN_PLAN.router.ip6]);
    await ip(swA, ['link', 'set', 'dev', director.switchPort, 'xdpdrv', 'obj', peerXdpObject, 'sec', 'xdp']);

    // Real servers as for tunnelling with a decapsulator of our own (the XDP program, started by startDecap).
    for (const rs of realServers) {
      await setUpRealServer(rs.ns, 'tun', { dev: rs.dev, vips: [TUN_PLAN.vip4, TUN_PLAN.vip6], decap: 'none' });
    }

    for (const ns of [...hosts.map((h) => h.ns), routerNs]) {
      await waitFor(`IPv6 addresses in ${ns} to leave the tentative state`, async () => (await ip(ns, ['-6', 'addr', 'show', 'tentative'])).stdout.trim() === '', 10_000);
    }
  } catch (e) {
    await destroy().catch(() => undefined);
    throw e;
  }

  const byName = new Map(hosts.map((h) => [h.name, h]));
  const host = (name: LabHostName): LabHost => {
    const h = byName.get(name);
    if (!h) throw new Error(`lab: no host ${name} in lab ${id}`);
    return h;
  };
  return {
    id,
    plan: TUN_PLAN,
    vip4: TUN_PLAN.vip4,
    vip6: TUN_PLAN.vip6,
    client,
    director,
    router: { ns: routerNs, ip4: TUN_PLAN.router.ip4, ip6: TUN_PLAN.router.ip6 },
    realServers,
    remoteRealServers,
    localRealServers,
    hosts,
    host,
    exec: (name, cmd, args, runOpts) => nsRun(host(name).ns, cmd, args, runOpts),
    destroy,
  };
}

/** A namespace whose interfaces get no duplicate address detection and take no router advertisements. */
async function newHostNs(ns: string): Promise<void> {
  await addNetns(ns);
  for (const scope of ['all', 'default']) {
    await sysctl(ns, `net.ipv6.conf.${scope}.accept_dad`, 0);
    await sysctl(ns, `net.ipv6.conf.${scope}.dad_transmits`, 0);
    await sysctl(ns, `net.ipv6.conf.${scope}.accept_ra`, 0);
  }
}

/** A veth from the host's `dev` to a port of the switch's bridge, addressed and up, transmit checksum offload off. */
async function plug(h: { ns: string; dev: string; switchPort: string; ip4: string; ip6: string; mac: string }, switchNs: string): Promise<void> {
  await addVethPair({ ns: switchNs, name: h.switchPort }, { ns: h.ns, name: h.dev });
  await ip(switchNs, ['link', 'set', 'dev', h.switchPort, 'master', BRIDGE]);
  await ip(switchNs, ['link', 'set', 'dev', h.switchPort, 'up']);
  await ip(h.ns, ['link', 'set', 'dev', h.dev, 'address', h.mac]);
  await ip(h.ns, ['addr', 'add', `${h.ip4}/${TUN_PLAN.prefixLen4}`, 'dev', h.dev]);
  await ip(h.ns, ['-6', 'addr', 'add', `${h.ip6}/${TUN_PLAN.prefixLen6}`, 'dev', h.dev, 'nodad']);
  await ip(h.ns, ['link', 'set', 'dev', h.dev, 'up']);
  // veth hands packets over with partial checksums; after an XDP rewrite they would arrive with bad TCP checksums.
  await ethtoolFeatures(h.ns, h.dev, { tx: 'off' });
}

// ---- the real servers' decapsulation ---------------------------------------------------------------------------

export interface DecapRoles {
  /** `xdpvsd --role realserver --interface eth0 --status` on a real server: its VIPs, addresses and counters. */
  status(name: LabHostName): Promise<{ vips: string[]; local: string[]; counters: Record<string, number> }>;
  /** Stops every role (SIGTERM by PID), detaches the programs and removes their pins. Idempotent. */
  stop(): Promise<void>;
}

/**
 * Starts `xdpvsd --role realserver --interface eth0 --vip VIP4 --vip VIP6` on each real server, through
 * `nsenter --net` (so that the bpffs pins are the host's), and waits until each says it is ready.
 */
export async function startDecap(lab: Pick<TunLab, 'id' | 'vip4' | 'vip6'>, hosts: readonly LabHost[]): Promise<DecapRoles> {
  const daemon = join(repoRoot(), 'dist/src/daemon/main.js');
  if (!existsSync(daemon)) throw new Error(`lab: ${daemon} does not exist; build with \`bash scripts/build.sh\``);
  const nsenter = (h: LabHost, args: string[]): string[] => [`--net=${netnsPath(h.ns)}`, '--', process.execPath, daemon, '--role', 'realserver', '--interface', h.dev, ...args];
  const started: { host: LabHost; stop: () => Promise<void> }[] = [];
  const stopAll = async (): Promise<void> => {
    for (const s of started.splice(0)) await s.stop();
  };
  try {
    for (const h of hosts) {
      const pinDir = join('/sys/fs/bpf/xdpvs/realserver', String(netnsInode(h.ns)));
      recordLab(lab.id, { dirs: [pinDir] });
      const child = spawn('nsenter', nsenter(h, ['--vip', lab.vip4, '--vip', lab.vip6]), { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      child.stdout!.setEncoding('utf8').on('data', (d: string) => (out = (out + d).slice(-16384)));
      child.stderr!.setEncoding('utf8').on('data', (d: string) => (out = (out + d).slice(-16384)));
      const unregister = registerEmergencyCleanup(() => {
        terminatePidSync(child.pid);
        rmSync(pinDir, { recursive: true, force: true });
      });
      let stopping: Promise<void> | undefined;
      const stop = (): Promise<void> =>
        (stopping ??= (async () => {
          await stopChild(child);
          if (netnsExists(h.ns)) await run('nsenter', nsenter(h, ['--detach']), { timeoutMs: 15_000, allowFailure: true }).catch(() => undefined);
          rmSync(pinDir, { recursive: true, force: true });
          unregister();
        })());
      started.push({ host: h, stop });
      await waitFor(`the real-server role on ${h.name} to be ready`, () => {
        if (child.exitCode !== null || child.signalCode !== null) throw new Error(`lab: xdpvsd --role realserver on ${h.name} exited: ${out.trim()}`);
        return out.includes('xdpvsd realserver ready');
      }, 20_000);
    }
  } catch (e) {
    await stopAll();
    throw e;
  }
  return {
    status: async (name) => {
      const s = started.find((x) => x.host.name === name);
      if (!s) throw new Error(`lab: no decapsulation started on ${name}`);
      const r = await run('nsenter', nsenter(s.host, ['--status']), { timeoutMs: 15_000 });
      return JSON.parse(r.stdout) as { vips: string[]; local: string[]; counters: Record<string, number> };
    },
    stop: stopAll,
  };
}
