// Runs scripts/lab/realserver-setup.sh (how a real server is configured per forwarding method) inside a namespace.
// The Vagrant lab runs the same script in its real-server VMs (scripts/vagrant/realserver.sh).
import { join } from 'node:path';
import { nsRun, repoRoot } from './netns.js';

export type RealServerMethod = 'dr' | 'tun' | 'nat';

export interface RealServerSetup {
  /** The real server's interface towards the director. */
  dev: string;
  /** VIPs to accept (dr, tun): IPv4 and/or IPv6. */
  vips?: string[];
  /** nat: the director's addresses on the real servers' network, the default routes. */
  gateway?: string;
  gateway6?: string;
  /** tun: "kernel" (tunl0/ip6tnl0) or "none" (the caller attaches its own decapsulator, e.g. the XDP decap). */
  decap?: 'kernel' | 'none';
}

export function realServerSetupScript(): string {
  return join(repoRoot(), 'scripts/lab/realserver-setup.sh');
}

/** `ip netns exec NS bash scripts/lab/realserver-setup.sh METHOD ...`. */
export async function setUpRealServer(ns: string, method: RealServerMethod, s: RealServerSetup): Promise<void> {
  const args = [realServerSetupScript(), method, '--dev', s.dev];
  for (const v of s.vips ?? []) args.push('--vip', v);
  if (s.gateway) args.push('--gateway', s.gateway);
  if (s.gateway6) args.push('--gateway6', s.gateway6);
  if (s.decap) args.push('--decap', s.decap);
  await nsRun(ns, 'bash', args);
}
