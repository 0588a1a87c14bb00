// The seed-000 VS/NAT lab in network namespaces: a two-armed director between a public and a private segment.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import {
  addNetns,
  addVethPair,
  claimLab,
  ethtoolFeatures,
  ip,
  newLabId,
  nsRun,
  repoRoot,
  sysctl,
  waitFor,
  type RunOptions,
  type RunResult,
} from './netns.js';
import { setUpRealServer } from './realserver-setup.js';
import type { LabHost, LabHostName } from './topology.js';

/**
 * The address plan: the seed's 2.2.2.0/8 public and 192.168.1.0/24 private networks, moved into the lab ranges.
 *
 *   public segment (the client's), switch namespace xv<id>-sw0
 *     client    198.18.0.10/24  fd00::10/64  02:18:00:00:00:0a  eth0, default route via the director (as in the seed)
 *     director  198.18.0.2/24   fd00::2/64   02:18:00:00:00:02  eth0, plus VIP 198.18.0.100/32 and fd00::100/128
 *   private segment (the real servers'), switch namespace xv<id>-sw1
 *     director  198.19.0.1/24   fd01::1/64   02:19:00:00:00:01  eth1: the DIP, the real servers' default gateway
 *     rsN       198.19.0.1N/24  fd01::1N/64  02:19:00:00:00:1N  eth0, default route via 198.19.0.1 / fd01::1
 *
 * The director forwards (ip_forward, IPv6 forwarding), and on eth1 accepts packets whose source is one of its own
 * addresses (accept_local=1, rp_filter=0): a NAT reply whose client-side neighbour XDP cannot resolve is handed to the
 * kernel already rewritten to the VIP (bpf/nat_reply.h), and DR/TUN replies of real servers on this segment are
 * routed through it with the VIP as their source.
 */
export const NAT_PLAN = {
  prefixLen4: 24,
  prefixLen6: 64,
  vip4: '198.18.0.100',
  vip6: 'fd00::100',
  client: { ip4: '198.18.0.10', ip6: 'fd00::10', mac: '02:18:00:00:00:0a' },
  director: { ip4: '198.18.0.2', ip6: 'fd00::2', mac: '02:18:00:00:00:02' },
  directorPrivate: { ip4: '198.19.0.1', ip6: 'fd01::1', mac: '02:19:00:00:00:01' },
  realServer(n: number): { ip4: string; ip6: string; mac: string } {
    if (!Number.isInteger(n) || n < 1 || n > MAX_NAT_REAL_SERVERS) {
      throw new Error(`lab: real server number ${n} is outside 1..${MAX_NAT_REAL_SERVERS}`);
    }
    const last = 10 + n;
    return { ip4: `198.19.0.${last}`, ip6: `fd01::${last}`, mac: `02:19:00:00:00:${last.toString(16).padStart(2, '0')}` };
  },
} as const;

export const MAX_NAT_REAL_SERVERS = 80;

/** The director: eth0 (public, with the VIP) as a LabHost, and its private side. */
export interface NatDirectorHost extends LabHost {
  private: { dev: 'eth1'; ip4: string; ip6: string; mac: string; switchPort: string };
}

export interface NatLabOptions {
  /** Number of real servers (default 2, like the seed). */
  realServers?: number;
  /**
   * Also give every real server the VIP on lo with arp_ignore/arp_announce (realserver-setup.sh dr), so that it can
   * serve direct routing and tunnelling too (mixed methods, -e from -m to -g). Default false: plain NAT real servers.
   */
  vipOnRealServers?: boolean;
  /** XDP object for the director's switch ports (default build/bpf/xdp_pass.bpf.o). */
  peerXdpObject?: string;
  /** Lab id (6 hex characters, random by default). */
  id?: string;
}

export interface NatLab {
  id: string;
  plan: typeof NAT_PLAN;
  vip4: string;
  vip6: string;
  client: LabHost;
  director: NatDirectorHost;
  realServers: LabHost[];
  hosts: LabHost[];
  publicSwitchNs: string;
  privateSwitchNs: string;
  host(name: LabHostName): LabHost;
  exec(host: LabHostName, cmd: string, args: readonly string[], opts?: RunOptions): Promise<RunResult>;
  /** Deletes every namespace of the lab. Idempotent. */
  destroy(): Promise<void>;
}

const BRIDGE = 'br0';

/** Builds the lab; on any failure removes what it created before rethrowing. */
export async function createNatLab(opts: NatLabOptions = {}): Promise<NatLab> {
  const rsCount = opts.realServers ?? 2;
  if (!Number.isInteger(rsCount) || rsCount < 1 || rsCount > MAX_NAT_REAL_SERVERS) {
    throw new Error(`lab: realServers must be 1..${MAX_NAT_REAL_SERVERS}, got ${rsCount}`);
  }
  const id = opts.id ?? newLabId();
  if (!/^[0-9a-f]{6}$/.test(id)) throw new Error(`lab: id must be 6 hex characters, got ${id}`);
  const peerXdpObject = opts.peerXdpObject ?? join(repoRoot(), 'build/bpf/xdp_pass.bpf.o');
  if (!existsSync(peerXdpObject)) {
    throw new Error(
      `lab: ${peerXdpObject} does not exist; build it with \`bash scripts/build.sh\` ` +
        "(the director's switch ports need an XDP program for XDP_TX and redirects on veth to deliver)",
    );
  }

  const prefix = `xv${id}`;
  const publicSwitchNs = `${prefix}-sw0`;
  const privateSwitchNs = `${prefix}-sw1`;
  const mk = (name: LabHostName, nsSuffix: string, addr: { ip4: string; ip6: string; mac: string }): LabHost => ({
    name,
    ns: `${prefix}-${nsSuffix}`,
    dev: 'eth0',
    ...addr,
    switchPort: `v-${nsSuffix}`,
  });
  const client = mk('client', 'client', NAT_PLAN.client);
  const director: NatDirectorHost = {
    ...mk('director', 'dir', NAT_PLAN.director),
    private: { dev: 'eth1', ...NAT_PLAN.directorPrivate, switchPort: 'v-dir1' },
  };
  const realServers: LabHost[] = [];
  for (let n = 1; n <= rsCount; n++) realServers.push(mk(`rs${n}`, `rs${n}`, NAT_PLAN.realServer(n)));
  const hosts = [client, director, ...realServers];
  const allNs = [...hosts.map((h) => h.ns), publicSwitchNs, privateSwitchNs];

  // What an earlier run killed with SIGKILL left behind goes first; this lab is recorded before it exists.
  const destroy = claimLab(id, allNs);

  try {
    for (const sw of [publicSwitchNs, privateSwitchNs]) await addSwitch(sw);

    await addHostNs(client.ns);
    await plug(client.ns, 'eth0', client, publicSwitchNs, client.switchPort);
    await ip(client.ns, ['route', 'add', 'default', 'via', director.ip4]);
    await ip(client.ns, ['-6', 'route', 'add', 'default', 'via', director.ip6]);

    await addHostNs(director.ns);
    await plug(director.ns, 'eth0', director, publicSwitchNs, director.switchPort);
    await plug(director.ns, 'eth1', director.private, privateSwitchNs, director.private.switchPort);
    // The seed's `ifconfig eth0 VIP`: the director owns the VIP on its public side and answers ARP/ND for it.
    await ip(director.ns, ['addr', 'add', `${NAT_PLAN.vip4}/32`, 'dev', 'eth0']);
    await ip(director.ns, ['-6', 'addr', 'add', `${NAT_PLAN.vip6}/128`, 'dev', 'eth0', 'nodad']);
    // The seed's `echo 1 > /proc/sys/net/ipv4/ip_forward`, for IPv6 too; bpf_fib_lookup() needs it as the kernel does.
    await sysctl(director.ns, 'net.ipv4.ip_forward', 1);
    await sysctl(director.ns, 'net.ipv6.conf.all.forwarding', 1);
    for (const dev of ['all', 'default', 'eth0', 'eth1']) await sysctl(director.ns, `net.ipv4.conf.${dev}.rp_filter`, 0);
    await sysctl(director.ns, 'net.ipv4.conf.eth1.accept_local', 1);

    for (const rs of realServers) {
      await addHostNs(rs.ns);
      await plug(rs.ns, 'eth0', rs, privateSwitchNs, rs.switchPort);
      await setUpRealServer(rs.ns, 'nat', { dev: 'eth0', gateway: director.private.ip4, gateway6: director.private.ip6 });
      if (opts.vipOnRealServers) await setUpRealServer(rs.ns, 'dr', { dev: 'eth0', vips: [NAT_PLAN.vip4, NAT_PLAN.vip6] });
    }

    // XDP_TX and redirects into the director's veths are delivered only if their peers run an XDP program too.
    await ip(publicSwitchNs, ['link', 'set', 'dev', director.switchPort, 'xdpdrv', 'obj', peerXdpObject, 'sec', 'xdp']);
    await ip(privateSwitchNs, ['link', 'set', 'dev', director.private.switchPort, 'xdpdrv', 'obj', peerXdpObject, 'sec', 'xdp']);

    for (const h of hosts) await waitNoTentative(h.ns);
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
    plan: NAT_PLAN,
    vip4: NAT_PLAN.vip4,
    vip6: NAT_PLAN.vip6,
    client,
    director,
    realServers,
    hosts,
    publicSwitchNs,
    privateSwitchNs,
    host,
    exec: (name, cmd, args, runOpts) => nsRun(host(name).ns, cmd, args, runOpts),
    destroy,
  };
}

/** A layer-2 switch: a bridge without STP or multicast snooping, and no IPv6 of its own. */
async function addSwitch(ns: string): Promise<void> {
  await addNetns(ns);
  await sysctl(ns, 'net.ipv6.conf.all.disable_ipv6', 1);
  await sysctl(ns, 'net.ipv6.conf.default.disable_ipv6', 1);
  await ip(ns, ['link', 'add', BRIDGE, 'type', 'bridge', 'stp_state', '0', 'mcast_snooping', '0']);
  await ip(ns, ['link', 'set', 'dev', BRIDGE, 'up']);
}

async function addHostNs(ns: string): Promise<void> {
  await addNetns(ns);
  // Before any interface exists, so that they inherit it: no duplicate address detection, no router adverts.
  for (const scope of ['all', 'default']) {
    await sysctl(ns, `net.ipv6.conf.${scope}.accept_dad`, 0);
    await sysctl(ns, `net.ipv6.conf.${scope}.dad_transmits`, 0);
    await sysctl(ns, `net.ipv6.conf.${scope}.accept_ra`, 0);
  }
}

/** A veth from host `ns` (as `dev`, with the addresses and MAC of `a`) to a port of the switch in `switchNs`. */
async function plug(
  ns: string,
  dev: string,
  a: { ip4: string; ip6: string; mac: string },
  switchNs: string,
  port: string,
): Promise<void> {
  await addVethPair({ ns: switchNs, name: port }, { ns, name: dev });
  await ip(switchNs, ['link', 'set', 'dev', port, 'master', BRIDGE]);
  await ip(switchNs, ['link', 'set', 'dev', port, 'up']);
  await ip(ns, ['link', 'set', 'dev', dev, 'address', a.mac]);
  await ip(ns, ['addr', 'add', `${a.ip4}/${NAT_PLAN.prefixLen4}`, 'dev', dev]);
  await ip(ns, ['-6', 'addr', 'add', `${a.ip6}/${NAT_PLAN.prefixLen6}`, 'dev', dev, 'nodad']);
  await ip(ns, ['link', 'set', 'dev', dev, 'up']);
  // veth hands packets over with partial checksums; after an XDP rewrite they would arrive with bad checksums. The
  // director's own packets are never rewritten, but it is a lab host like the others.
  await ethtoolFeatures(ns, dev, { tx: 'off' });
}

async function waitNoTentative(ns: string): Promise<void> {
  await waitFor(
    `IPv6 addresses in ${ns} to leave the tentative state`,
    async () => (await ip(ns, ['-6', 'addr', 'show', 'tentative'])).stdout.trim() === '',
    10_000,
    50,
  );
}
