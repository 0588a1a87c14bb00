// The director failover lab: seed 004's two directors (keepalived MASTER/BACKUP) beside the client and the DR real
// servers on one bridged L2 segment. The VIP is on no director until keepalived puts it on the one that is MASTER.
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
  type RunOptions,
  type RunResult,
} from './netns.js';
import { setUpRealServer } from './realserver-setup.js';
import { LAB_PLAN, MAX_REAL_SERVERS, type LabHost } from './topology.js';

/**
 * The DR lab's address plan (topology.ts: client .10, rsN .1N, VIP .100) with a second director:
 *
 *   dir1   198.18.0.2/24  02:18:00:00:00:02  keepalived MASTER, priority 100
 *   dir2   198.18.0.3/24  02:18:00:00:00:03  keepalived BACKUP, priority 50
 *
 * IPv4 only: seed 004's vrrp_instance and virtual_server are IPv4.
 */
export const FAILOVER_PLAN = {
  vip4: LAB_PLAN.vip4,
  prefixLen4: LAB_PLAN.prefixLen4,
  directors: [
    { ip4: '198.18.0.2', mac: '02:18:00:00:00:02' },
    { ip4: '198.18.0.3', mac: '02:18:00:00:00:03' },
  ],
} as const;

export type FailoverHostName = 'client' | 'dir1' | 'dir2' | `rs${number}`;

/** A host of the segment; LabHost-shaped so that startDirector and startRealServers take it as it is. */
export interface FailoverHost extends Omit<LabHost, 'name'> {
  name: FailoverHostName;
}

export interface FailoverLab {
  id: string;
  vip4: string;
  client: FailoverHost;
  directors: [FailoverHost, FailoverHost];
  /** Typed as the DR lab's hosts, for startRealServers. */
  realServers: LabHost[];
  switchNs: string;
  host(name: FailoverHostName): FailoverHost;
  exec(host: FailoverHostName, cmd: string, args: readonly string[], opts?: RunOptions): Promise<RunResult>;
  /** Deletes every namespace of the lab. Idempotent. */
  destroy(): Promise<void>;
}

export interface FailoverLabOptions {
  realServers?: number;
  /** 6 hex characters; namespaces are `xv<id>-client`, `-dir1`, `-dir2`, `-rsN`, `-sw`. */
  id?: string;
}

const BRIDGE = 'br0';

/** Builds the lab; on any failure removes what it made before rethrowing. */
export async function createFailoverLab(opts: FailoverLabOptions = {}): Promise<FailoverLab> {
  const rsCount = opts.realServers ?? 2;
  if (!Number.isInteger(rsCount) || rsCount < 1 || rsCount > MAX_REAL_SERVERS) {
    throw new Error(`lab: realServers must be 1..${MAX_REAL_SERVERS}, got ${rsCount}`);
  }
  const id = opts.id ?? newLabId();
  if (!/^[0-9a-f]{6}$/.test(id)) throw new Error(`lab: id must be 6 hex characters, got ${id}`);
  const passObject = join(repoRoot(), 'build/bpf/xdp_pass.bpf.o');
  if (!existsSync(passObject)) {
    throw new Error(`lab: ${passObject} does not exist; build it with \`bash scripts/build.sh\``);
  }

  const prefix = `xv${id}`;
  const switchNs = `${prefix}-sw`;
  const mk = (name: FailoverHostName, addr: { ip4: string; mac: string }): FailoverHost => ({
    name,
    ns: `${prefix}-${name}`,
    dev: 'eth0',
    ip4: addr.ip4,
    ip6: '',
    mac: addr.mac,
    switchPort: `v-${name}`,
  });
  const client = mk('client', LAB_PLAN.client);
  const directors: [FailoverHost, FailoverHost] = [mk('dir1', FAILOVER_PLAN.directors[0]), mk('dir2', FAILOVER_PLAN.directors[1])];
  const rsHosts: FailoverHost[] = [];
  const realServers: LabHost[] = [];
  for (let n = 1; n <= rsCount; n++) {
    const h = mk(`rs${n}`, LAB_PLAN.realServer(n));
    rsHosts.push(h);
    realServers.push({ ...h, name: `rs${n}` });
  }
  const hosts: FailoverHost[] = [client, ...directors, ...rsHosts];
  const allNs = [...hosts.map((h) => h.ns), switchNs];

  // What an earlier run killed with SIGKILL left behind goes first; this lab is recorded before it exists.
  const destroy = claimLab(id, allNs);

  try {
    await addNetns(switchNs);
    await sysctl(switchNs, 'net.ipv6.conf.all.disable_ipv6', 1);
    await sysctl(switchNs, 'net.ipv6.conf.default.disable_ipv6', 1);
    // No multicast snooping: VRRP adverts to 224.0.0.18 reach every port, as on a plain switch.
    await ip(switchNs, ['link', 'add', BRIDGE, 'type', 'bridge', 'stp_state', '0', 'mcast_snooping', '0']);
    await ip(switchNs, ['link', 'set', 'dev', BRIDGE, 'up']);
    for (const h of hosts) await setUpHost(h, switchNs);
    for (const rs of realServers) await setUpRealServer(rs.ns, 'dr', { dev: rs.dev, vips: [LAB_PLAN.vip4] });
    // Both directors forward with XDP_TX, which a veth delivers only when its peer has an XDP program too.
    for (const d of directors) {
      await ip(switchNs, ['link', 'set', 'dev', d.switchPort, 'xdpdrv', 'obj', passObject, 'sec', 'xdp']);
    }
  } catch (e) {
    await destroy().catch(() => undefined);
    throw e;
  }

  const byName = new Map<string, FailoverHost>(hosts.map((h) => [h.name, h]));
  const host = (name: FailoverHostName): FailoverHost => {
    const h = byName.get(name);
    if (!h) throw new Error(`lab: no host ${name} in failover lab ${id}`);
    return h;
  };
  return {
    id,
    vip4: FAILOVER_PLAN.vip4,
    client,
    directors,
    realServers,
    switchNs,
    host,
    exec: (name, cmd, args, runOpts) => nsRun(host(name).ns, cmd, args, runOpts),
    destroy,
  };
}

async function setUpHost(h: FailoverHost, switchNs: string): Promise<void> {
  await addNetns(h.ns);
  // The segment is IPv4 only: no IPv6 link-local traffic to wait for or to confuse captures.
  await sysctl(h.ns, 'net.ipv6.conf.all.disable_ipv6', 1);
  await sysctl(h.ns, 'net.ipv6.conf.default.disable_ipv6', 1);
  await addVethPair({ ns: switchNs, name: h.switchPort }, { ns: h.ns, name: h.dev });
  await ip(switchNs, ['link', 'set', 'dev', h.switchPort, 'master', BRIDGE]);
  await ip(switchNs, ['link', 'set', 'dev', h.switchPort, 'up']);
  await ip(h.ns, ['link', 'set', 'dev', h.dev, 'address', h.mac]);
  await ip(h.ns, ['addr', 'add', `${h.ip4}/${FAILOVER_PLAN.prefixLen4}`, 'dev', h.dev]);
  await ip(h.ns, ['link', 'set', 'dev', h.dev, 'up']);
  // veth hands packets over with partial checksums; after an XDP rewrite they would arrive with bad TCP checksums.
  await ethtoolFeatures(h.ns, h.dev, { tx: 'off' });
}
