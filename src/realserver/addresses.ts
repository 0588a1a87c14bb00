// This host's addresses (every interface of the network namespace), as the decap program's accepted outer
// destinations: what the kernel's own tunnel devices accept, since an IP-in-IP packet to any local address is
// delivered to them.

import { parseAddress, type IpAddress } from '../lb/address.js';
import { ipJson } from '../net/iproute.js';

interface AddrInfo {
  ifname: string;
  addr_info?: Array<{ family?: string; local?: string }>;
}

export async function localAddresses(): Promise<IpAddress[]> {
  const links = await ipJson<AddrInfo[]>(['addr', 'show']);
  const out = new Map<string, IpAddress>();
  for (const l of links) {
    for (const a of l.addr_info ?? []) {
      if (!a.local || (a.family !== 'inet' && a.family !== 'inet6')) continue;
      const addr = parseAddress(a.local);
      out.set(addr.text, addr);
    }
  }
  return [...out.values()];
}
