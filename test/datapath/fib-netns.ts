// A network namespace for the NAT reply path's bpf_fib_lookup(): fixed interfaces, routes and neighbours, entered by
// the test process's main thread (setns), so that BPF_PROG_TEST_RUN looks up this namespace's FIB, not the host's.

import { closeSync, openSync } from 'node:fs';

import { setNetns } from '../../src/loader/libbpf.js';
import { addNetns, delNetns, delNetnsSync, ip, netnsPath, newLabId, registerEmergencyCleanup, sysctl } from '../../scripts/lab/netns.js';

/**
 * The plan (addresses from the lab ranges; no packet ever leaves: the program only reads this FIB):
 *
 *   pub0  02:00:00:00:d1:01  198.18.0.1/24  fd00:2::1/64   the public side (clients)
 *   priv0 02:00:00:00:d1:02  198.19.0.1/24  fd01::1/64     the private side (real servers)
 *
 *   client      198.18.0.10 / fd00:2::10     neighbour 02:00:00:00:c1:00 (permanent)
 *   gateway     198.18.0.254 / fd00:2::fe    neighbour 02:00:00:00:fe:00, routes 198.18.128.0/24 and fd00:99::/64
 *   unresolved  198.18.0.20 / fd00:2::20     on the public subnet, no neighbour entry
 *   no route    198.19.200.1 / fd55::1       (no default route)
 */
export const FIB = {
  pub: { dev: 'pub0', mac: '02:00:00:00:d1:01', ip4: '198.18.0.1', ip6: 'fd00:2::1' },
  priv: { dev: 'priv0', mac: '02:00:00:00:d1:02', ip4: '198.19.0.1', ip6: 'fd01::1' },
  client: { ip4: '198.18.0.10', ip6: 'fd00:2::10', mac: '02:00:00:00:c1:00' },
  gateway: { ip4: '198.18.0.254', ip6: 'fd00:2::fe', mac: '02:00:00:00:fe:00' },
  routed: { ip4: '198.18.128.7', ip6: 'fd00:99::7' },
  unresolved: { ip4: '198.18.0.20', ip6: 'fd00:2::20' },
  noRoute: { ip4: '198.19.200.1', ip6: 'fd55::1' },
} as const;

export interface FibNetns {
  name: string;
  /** ifindex of pub0 and priv0 inside the namespace. */
  ifindex: { pub: number; priv: number };
  /** Returns the main thread to the namespace it came from and deletes this one. Idempotent. */
  leave(): Promise<void>;
}

async function ifindexOf(ns: string, dev: string): Promise<number> {
  const r = await ip(ns, ['-j', 'link', 'show', 'dev', dev]);
  return (JSON.parse(r.stdout) as Array<{ ifindex: number }>)[0]!.ifindex;
}

/** Builds the namespace and moves the calling (main) thread into it. */
export async function enterFibNetns(): Promise<FibNetns> {
  const name = `xvdp${newLabId()}`;
  const unregister = registerEmergencyCleanup(() => delNetnsSync(name));
  let home = -1;
  let entered = false;
  let left: Promise<void> | undefined;
  const leave = (): Promise<void> => {
    left ??= (async () => {
      if (entered) {
        const r = setNetns(home);
        if (r < 0) throw new Error(`setns back to the original network namespace failed (${r})`);
        entered = false;
      }
      if (home >= 0) closeSync(home);
      await delNetns(name);
      unregister();
    })();
    return left;
  };
  try {
    await addNetns(name);
    for (const scope of ['all', 'default']) await sysctl(name, `net.ipv6.conf.${scope}.accept_dad`, 0);
    for (const side of [FIB.pub, FIB.priv]) {
      await ip(name, ['link', 'add', side.dev, 'type', 'veth', 'peer', 'name', `${side.dev}p`]);
      await ip(name, ['link', 'set', 'dev', side.dev, 'address', side.mac]);
      await ip(name, ['link', 'set', 'dev', side.dev, 'up']);
      await ip(name, ['link', 'set', 'dev', `${side.dev}p`, 'up']);
    }
    await ip(name, ['addr', 'add', `${FIB.pub.ip4}/24`, 'dev', FIB.pub.dev]);
    await ip(name, ['-6', 'addr', 'add', `${FIB.pub.ip6}/64`, 'dev', FIB.pub.dev, 'nodad']);
    await ip(name, ['addr', 'add', `${FIB.priv.ip4}/24`, 'dev', FIB.priv.dev]);
    await ip(name, ['-6', 'addr', 'add', `${FIB.priv.ip6}/64`, 'dev', FIB.priv.dev, 'nodad']);
    for (const n of [FIB.client, FIB.gateway]) {
      await ip(name, ['neigh', 'replace', n.ip4, 'lladdr', n.mac, 'dev', FIB.pub.dev, 'nud', 'permanent']);
      await ip(name, ['-6', 'neigh', 'replace', n.ip6, 'lladdr', n.mac, 'dev', FIB.pub.dev, 'nud', 'permanent']);
    }
    await ip(name, ['route', 'add', '198.18.128.0/24', 'via', FIB.gateway.ip4, 'dev', FIB.pub.dev]);
    await ip(name, ['-6', 'route', 'add', 'fd00:99::/64', 'via', FIB.gateway.ip6, 'dev', FIB.pub.dev]);
    // bpf_fib_lookup() answers only where the kernel would forward (as ip_forward=1 on a NAT director).
    await sysctl(name, 'net.ipv4.conf.all.forwarding', 1);
    await sysctl(name, 'net.ipv6.conf.all.forwarding', 1);
    const ifindex = { pub: await ifindexOf(name, FIB.pub.dev), priv: await ifindexOf(name, FIB.priv.dev) };

    home = openSync('/proc/thread-self/ns/net', 'r');
    const target = openSync(netnsPath(name), 'r');
    try {
      const r = setNetns(target);
      if (r < 0) throw new Error(`setns into ${name} failed (${r})`);
      entered = true;
    } finally {
      closeSync(target);
    }
    return { name, ifindex, leave };
  } catch (e) {
    await leave().catch(() => undefined);
    throw e;
  }
}

