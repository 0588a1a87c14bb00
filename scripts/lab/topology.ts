// The seed-000 VS/DR lab in network namespaces: client, director and real servers on one bridged L2 segment.
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

/**
 * The address plan. One segment, like the seed's DR lab (2.2.2.0/8 there): VIP and RIPs in the same subnet.
 * The IPv6 plan mirrors the IPv4 last octet in the last group (rs1 is 198.18.0.11 and fd00::11).
 *
 *   host      IPv4            IPv6        MAC                 interface
 *   director  198.18.0.2/24   fd00::2/64  02:18:00:00:00:02   eth0, plus VIP 198.18.0.100/32, fd00::100/128
 *   client    198.18.0.10/24  fd00::10/64 02:18:00:00:00:0a   eth0
 *   rsN       198.18.0.1N/24  fd00::1N/64 02:18:00:00:00:(10+N) eth0, plus VIP on lo (arp_ignore=1, arp_announce=2)
 *   VIP       198.18.0.100    fd00::100
 *
 * Every lab runs in its own namespaces, so parallel labs reuse the same addresses without meeting.
 */
export const LAB_PLAN = {
  prefix4: '198.18.0.0/24',
  prefix6: 'fd00::/64',
  prefixLen4: 24,
  prefixLen6: 64,
  vip4: '198.18.0.100',
  vip6: 'fd00::100',
  director: { ip4: '198.18.0.2', ip6: 'fd00::2', mac: '02:18:00:00:00:02' },
  client: { ip4: '198.18.0.10', ip6: 'fd00::10', mac: '02:18:00:00:00:0a' },
  /** Real servers are numbered from 1; at most MAX_REAL_SERVERS keep their addresses below the VIP. */
  realServer(n: number): { ip4: string; ip6: string; mac: string } {
    if (!Number.isInteger(n) || n < 1 || n > MAX_REAL_SERVERS) {
      throw new Error(`lab: real server number ${n} is outside 1..${MAX_REAL_SERVERS}`);
    }
    const last = 10 + n;
    return {
      ip4: `198.18.0.${last}`,
      ip6: `fd00::${last}`,
      mac: `02:18:00:00:00:${last.toString(16).padStart(2, '0')}`,
    };
  },
} as const;

export const MAX_REAL_SERVERS = 80;

/** `client`, `director`, or `rs1`, `rs2`, ... */
export type LabHostName = 'client' | 'director' | `rs${number}`;

export interface LabHost {
  name: LabHostName;
  /** The host's network namespace. */
  ns: string;
  /** Its only link to the segment. */
  dev: 'eth0';
  ip4: string;
  ip6: string;
  mac: string;
  /** The veth peer of eth0, in the switch namespace, enslaved to the bridge. */
  switchPort: string;
}

export interface DrLabOptions {
  /** Number of real servers (default 2, like the seed). */
  realServers?: number;
  /**
   * XDP object attached (native, section "xdp") to the director's switch port: XDP_TX on a veth is delivered only
   * when the peer has an XDP program too. Default: build/bpf/xdp_pass.bpf.o (built by scripts/build.sh).
   */
  peerXdpObject?: string;
  /** Lab id (6 hex characters by default, random): namespace names are `xv<id>-client`, `-dir`, `-rsN`, `-sw`. */
  id?: string;
}

export interface DrLab {
  id: string;
  plan: typeof LAB_PLAN;
  vip4: string;
  vip6: string;
  client: LabHost;
  director: LabHost;
  realServers: LabHost[];
  /** All hosts: client, director, real servers. */
  hosts: LabHost[];
  switchNs: string;
  bridge: string;
  host(name: LabHostName): LabHost;
  /** Runs a command in a host's namespace (`ip netns exec`, no shell, bounded). */
  exec(host: LabHostName, cmd: string, args: readonly string[], opts?: RunOptions): Promise<RunResult>;
  /** Deletes every namespace of the lab (and with them the veths and anything attached). Idempotent. */
  destroy(): Promise<void>;
}

const BRIDGE = 'br0';

/** Builds the lab. On any failure it removes what it created before rethrowing. */
export async function createDrLab(opts: DrLabOptions = {}): Promise<DrLab> {
  const rsCount = opts.realServers ?? 2;
  if (!Number.isInteger(rsCount) || rsCount < 1 || rsCount > MAX_REAL_SERVERS) {
    throw new Error(`lab: realServers must be 1..${MAX_REAL_SERVERS}, got ${rsCount}`);
  }
  const id = opts.id ?? newLabId();
  if (!/^[0-9a-f]{6}$/.test(id)) throw new Error(`lab: id must be 6 hex characters, got ${id}`);
  const peerXdpObject = opts.peerXdpObject ?? join(repoRoot(), 'build/bpf/xdp_pass.bpf.o');
  if (!existsSync(peerXdpObject)) {
    throw new Error(
      `lab: ${peerXdpObject} does not exist; build it with \`bash scripts/build.sh\` ` +
        '(the director\'s switch port needs an XDP program for XDP_TX on veth to deliver)',
    );
  }

  const prefix = `xv${id}`;
  const switchNs = `${prefix}-sw`;
  const mk = (name: LabHostName, nsSuffix: string, addr: { ip4: string; ip6: string; mac: string }): LabHost => ({
    name,
    ns: `${prefix}-${nsSuffix}`,
    dev: 'eth0',
    ...addr,
    switchPort: `v-${nsSuffix}`,
  });
  const client = mk('client', 'client', LAB_PLAN.client);
  const director = mk('director', 'dir', LAB_PLAN.director);
  const realServers: LabHost[] = [];
  for (let n = 1; n <= rsCount; n++) realServers.push(mk(`rs${n}`, `rs${n}`, LAB_PLAN.realServer(n)));
  const hosts = [client, director, ...realServers];
  const allNs = [...hosts.map((h) => h.ns), switchNs];

  // What an earlier run killed with SIGKILL left behind goes first; this lab is recorded before it exists.
  const destroy = claimLab(id, allNs);

  try {
    await addNetns(switchNs);
    // The switch is layer 2 only: no IPv6 link-local chatter from the ports or the bridge.
    await sysctl(switchNs, 'net.ipv6.conf.all.disable_ipv6', 1);
    await sysctl(switchNs, 'net.ipv6.conf.default.disable_ipv6', 1);
    // No STP (ports forward at once), no multicast snooping (neighbour solicitations are flooded without a querier).
    await ip(switchNs, ['link', 'add', BRIDGE, 'type', 'bridge', 'stp_state', '0', 'mcast_snooping', '0']);
    await ip(switchNs, ['link', 'set', 'dev', BRIDGE, 'up']);

    for (const h of hosts) await setUpHost(h, switchNs);
    for (const rs of realServers) await setUpRealServerVip(rs);
    await setUpDirectorVip(director);

    // XDP_TX on the director's eth0 reaches the switch only if this peer runs an XDP program as well.
    await ip(switchNs, ['link', 'set', 'dev', director.switchPort, 'xdpdrv', 'obj', peerXdpObject, 'sec', 'xdp']);

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
    plan: LAB_PLAN,
    vip4: LAB_PLAN.vip4,
    vip6: LAB_PLAN.vip6,
    client,
    director,
    realServers,
    hosts,
    switchNs,
    bridge: BRIDGE,
    host,
    exec: (name, cmd, args, runOpts) => nsRun(host(name).ns, cmd, args, runOpts),
    destroy,
  };
}

async function setUpHost(h: LabHost, switchNs: string): Promise<void> {
  await addNetns(h.ns);
  // Before eth0 exists, so that it inherits them: no duplicate address detection (addresses usable at once).
  for (const scope of ['all', 'default']) {
    await sysctl(h.ns, `net.ipv6.conf.${scope}.accept_dad`, 0);
    await sysctl(h.ns, `net.ipv6.conf.${scope}.dad_transmits`, 0);
    await sysctl(h.ns, `net.ipv6.conf.${scope}.accept_ra`, 0);
  }
  await addVethPair({ ns: switchNs, name: h.switchPort }, { ns: h.ns, name: h.dev });
  await ip(switchNs, ['link', 'set', 'dev', h.switchPort, 'master', BRIDGE]);
  await ip(switchNs, ['link', 'set', 'dev', h.switchPort, 'up']);
  await ip(h.ns, ['link', 'set', 'dev', h.dev, 'address', h.mac]);
  await ip(h.ns, ['addr', 'add', `${h.ip4}/${LAB_PLAN.prefixLen4}`, 'dev', h.dev]);
  await ip(h.ns, ['-6', 'addr', 'add', `${h.ip6}/${LAB_PLAN.prefixLen6}`, 'dev', h.dev, 'nodad']);
  await ip(h.ns, ['link', 'set', 'dev', h.dev, 'up']);
  // veth hands packets over with partial checksums; after an XDP rewrite they would arrive with bad TCP checksums.
  await ethtoolFeatures(h.ns, h.dev, { tx: 'off' });
}

/** The seed's `ifconfig eth0:1 VIP/32`: the director owns the VIP on its interface and answers ARP/ND for it. */
async function setUpDirectorVip(d: LabHost): Promise<void> {
  await ip(d.ns, ['addr', 'add', `${LAB_PLAN.vip4}/32`, 'dev', d.dev]);
  await ip(d.ns, ['-6', 'addr', 'add', `${LAB_PLAN.vip6}/128`, 'dev', d.dev, 'nodad']);
}

/**
 * The seed's real server: `ifconfig lo:1 VIP/32`, arp_ignore=1 and arp_announce=2 on all, lo and eth0, so it
 * accepts packets for the VIP but never answers ARP for it and never uses it as the source of its own ARP requests.
 *
 * IPv6 has no arp_ignore, and needs none: Linux answers a neighbour solicitation only for an address configured on
 * the interface the solicitation arrived on (ndisc_recv_ns looks the target up strictly on that device), and picks
 * the source of its own solicitations from the outgoing interface. So the VIP on lo (/128) is never advertised on
 * eth0, and no static neighbour entry on the client is needed. Measured on kernel 6.18: a solicitation for fd00::100
 * sent to the solicited-node group is answered by the director alone, one sent unicast to rs1's MAC and to fd00::100
 * gets no answer at all, while one for rs1's own fd00::11 is answered by rs1. test/e2e/lab.test.ts keeps checking
 * that, with the director's VIPs removed, the client cannot resolve either VIP.
 */
async function setUpRealServerVip(rs: LabHost): Promise<void> {
  // scripts/lab/realserver-setup.sh is the one description of a real server per method (the Vagrant lab runs it too).
  await setUpRealServer(rs.ns, 'dr', { dev: rs.dev, vips: [LAB_PLAN.vip4, LAB_PLAN.vip6] });
}

async function waitNoTentative(ns: string): Promise<void> {
  await waitFor(
    `IPv6 addresses in ${ns} to leave the tentative state`,
    async () => (await ip(ns, ['-6', 'addr', 'show', 'tentative'])).stdout.trim() === '',
    10_000,
    50,
  );
}
