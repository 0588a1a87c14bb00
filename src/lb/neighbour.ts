// What the balancer needs to know about the network to forward to a real server: the egress interface and the
// next hop's MAC. The implementation over iproute2 is src/net/iproute-neighbours.ts; tests use a table.

import type { Family } from './address.js';

export interface NextHop {
  ifindex: number;
  ifname: string;
  /** The egress interface's MAC (source of forwarded frames). */
  srcMac: Buffer;
  /** The next hop's MAC, when resolved. */
  mac?: Buffer;
}

export interface NeighbourResolver {
  /**
   * Where packets to `address` leave and, if known, the next hop's MAC; starts resolution when it is missing
   * (the kernel then keeps it fresh). Throws XdpvsError (XDPVS_ERR_INVALID) when the address is not on a
   * directly connected network, as direct routing requires.
   */
  resolve(address: string, family: Family): Promise<NextHop>;
  /** Current next hops of many addresses at once (one look at the kernel's tables), for following changes. */
  lookupAll(targets: { address: string; family: Family }[]): Promise<Map<string, NextHop>>;
  /** Stops keeping `address` resolved (the last real server with it is gone). */
  release(address: string, family: Family): Promise<void>;
}
