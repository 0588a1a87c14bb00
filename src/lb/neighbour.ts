// What the balancer needs to know about the network to forward to a real server: the egress interface and the
// next hop's MAC. The implementation over iproute2 is src/net/iproute-neighbours.ts; tests use a table.

import type { Family } from './address.js';

export interface NextHop {
  ifindex: number;
  ifname: string;
  /** The egress interface's MAC (source of forwarded frames). */
  srcMac: Buffer;
  /** The next hop's MAC, when resolved: the real server's own, or the gateway's when there is one. */
  mac?: Buffer;
  /** The router the real server is reached through (only ever set when resolve() was allowed a gateway). */
  gateway?: string;
  /** The egress MTU towards the real server (the route's, else the interface's), in IP bytes. */
  mtu?: number;
  /** The address the kernel would send from towards the real server (`ip route get` prefsrc). */
  srcAddress?: string;
}

export interface ResolveOptions {
  /**
   * Accept a real server reached through a gateway (tunnelling): the next hop is then the gateway. Without it such a
   * real server is refused, as direct routing needs it on a directly connected network.
   */
  allowGateway?: boolean;
}

export interface NeighbourResolver {
  /**
   * Where packets to `address` leave and, if known, the next hop's MAC; starts resolution when it is missing
   * (the kernel then keeps it fresh). Throws XdpvsError (XDPVS_ERR_INVALID) when the address is not on a
   * directly connected network, as direct routing requires, unless opts.allowGateway.
   */
  resolve(address: string, family: Family, opts?: ResolveOptions): Promise<NextHop>;
  /**
   * Current next hops of many addresses at once (one look at the kernel's tables), for following changes. A real
   * server behind a gateway comes back with `gateway` set; the caller decides whether its method may use it.
   */
  lookupAll(targets: { address: string; family: Family }[]): Promise<Map<string, NextHop>>;
  /** Stops keeping `address` resolved (the last real server with it is gone). */
  release(address: string, family: Family): Promise<void>;
}
