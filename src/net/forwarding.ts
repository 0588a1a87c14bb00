// What a NAT director needs of its own kernel, read from /proc/sys/net (which shows the reader's network namespace):
// forwarding, since bpf_fib_lookup() routes NAT replies only where the kernel itself would forward them; and
// accept_local on the side facing the real servers, since a reply whose next hop XDP cannot resolve yet is handed to
// the kernel already carrying the VIP, one of the director's own addresses, as its source (bpf/nat_reply.h).

import { readFileSync } from 'node:fs';
import type { PersistedState } from '../lb/balancer.js';

function sysctl(path: string): string | undefined {
  try {
    return readFileSync(`/proc/sys/net/${path}`, 'utf8').trim();
  } catch {
    return undefined;
  }
}

/** The settings NAT misses on these interfaces, as sentences for the log (none: everything is in place). */
export function natForwardingProblems(interfaces: readonly string[], families: { inet: boolean; inet6: boolean }): string[] {
  const out: string[] = [];
  if (families.inet) {
    const off = interfaces.filter((dev) => sysctl(`ipv4/conf/${dev}/forwarding`) === '0');
    if (off.length > 0) {
      out.push(`IPv4 forwarding is off on ${off.join(', ')} (sysctl net.ipv4.ip_forward=1): replies of NAT real servers arriving there are not forwarded`);
    }
    const acceptLocal = sysctl('ipv4/conf/all/accept_local') === '1' || interfaces.some((dev) => sysctl(`ipv4/conf/${dev}/accept_local`) === '1');
    if (!acceptLocal) {
      out.push(
        `net.ipv4.conf.<interface>.accept_local is 0 on ${interfaces.join(', ')}: set it to 1 on the interface facing the NAT real servers, ` +
          'or the kernel drops the replies XDP hands it while a client-side neighbour is being resolved',
      );
    }
  }
  if (families.inet6 && sysctl('ipv6/conf/all/forwarding') === '0') {
    out.push('IPv6 forwarding is off (sysctl net.ipv6.conf.all.forwarding=1): replies of NAT real servers are not forwarded');
  }
  return out;
}

/**
 * A check to run after each configuration change: while NAT real servers are configured, warns (once per distinct
 * problem) about what natForwardingProblems() finds.
 */
export function natForwardingWarner(interfaces: readonly string[], warn: (msg: string) => void): (state: PersistedState) => void {
  const said = new Set<string>();
  return (state) => {
    const nat = state.services.filter((s) => s.servers.some((r) => r.method === 'nat'));
    if (nat.length === 0) return;
    const families = { inet: nat.some((s) => !s.address.includes(':')), inet6: nat.some((s) => s.address.includes(':')) };
    for (const p of natForwardingProblems(interfaces, families)) {
      if (said.has(p)) continue;
      said.add(p);
      warn(p);
    }
  };
}
