// Next hops of real servers from the kernel: the route says which interface, the neighbour table the MAC.
// Missing entries are created "managed" (the kernel resolves them and keeps them fresh, Linux 5.16+), so the
// daemon never sends probes of its own and sees a real server's new MAC on its next look at the table.

import { ErrorCode, XdpvsError } from '../errors.js';
import type { Family } from '../lb/address.js';
import type { NeighbourResolver, NextHop } from '../lb/neighbour.js';
import { getLink, ip, ipJson, listLinks, macFromText, type NeighInfo, type RouteInfo } from './iproute.js';

/** Neighbour states whose lladdr can be trusted for forwarding. */
const USABLE = new Set(['REACHABLE', 'STALE', 'DELAY', 'PROBE', 'PERMANENT', 'NOARP']);

function usableMac(n: NeighInfo | undefined): Buffer | undefined {
  if (!n?.lladdr) return undefined;
  return (n.state ?? []).some((s) => USABLE.has(s)) ? macFromText(n.lladdr) : undefined;
}

export interface IprouteResolverOptions {
  /** How long resolve() waits for a fresh neighbour entry to resolve before returning it unresolved. */
  resolveWaitMs?: number;
}

export class IprouteNeighbourResolver implements NeighbourResolver {
  /** Neighbour entries this daemon created, by address: the only ones it removes. */
  private readonly managed = new Map<string, string>();

  constructor(private readonly opts: IprouteResolverOptions = {}) {}

  private async route(address: string, family: Family): Promise<RouteInfo> {
    let routes: RouteInfo[];
    try {
      routes = await ipJson<RouteInfo[]>([family === 'inet' ? '-4' : '-6', 'route', 'get', address]);
    } catch (e) {
      throw new XdpvsError(ErrorCode.Invalid, `no route to real server ${address}: ${(e as Error).message.replace(/^.*RTNETLINK answers: /, '')}`);
    }
    const r = routes[0];
    if (!r) throw new XdpvsError(ErrorCode.Invalid, `no route to real server ${address}`);
    if (r.type === 'local' || r.dev === 'lo') throw new XdpvsError(ErrorCode.Invalid, `real server ${address} is an address of this director`);
    if (r.gateway) {
      throw new XdpvsError(
        ErrorCode.Invalid,
        `real server ${address} is reached through gateway ${r.gateway} on ${r.dev}; direct routing needs it on a directly connected network`,
      );
    }
    return r;
  }

  private async neigh(address: string, dev: string, family: Family): Promise<NeighInfo | undefined> {
    const list = await ipJson<NeighInfo[]>([family === 'inet' ? '-4' : '-6', 'neigh', 'show', 'to', address, 'dev', dev]);
    return list.find((n) => n.dst === address) ?? list[0];
  }

  async resolve(address: string, family: Family): Promise<NextHop> {
    const r = await this.route(address, family);
    const link = await getLink(r.dev);
    if (!link.address) throw new XdpvsError(ErrorCode.Invalid, `interface ${r.dev} towards ${address} has no MAC address`);
    let n = await this.neigh(address, r.dev, family);
    if (!usableMac(n)) {
      await ip(['neigh', 'replace', address, 'dev', r.dev, 'managed', 'extern_learn']);
      this.managed.set(address, r.dev);
      const deadline = Date.now() + (this.opts.resolveWaitMs ?? 3000);
      while (!usableMac(n) && Date.now() < deadline) {
        await new Promise((res) => setTimeout(res, 50));
        n = await this.neigh(address, r.dev, family);
      }
    }
    return { ifindex: link.ifindex, ifname: link.ifname, srcMac: macFromText(link.address), mac: usableMac(n) };
  }

  async lookupAll(targets: { address: string; family: Family }[]): Promise<Map<string, NextHop>> {
    const [links, v4, v6] = await Promise.all([
      listLinks(),
      ipJson<NeighInfo[]>(['-4', 'neigh', 'show']),
      ipJson<NeighInfo[]>(['-6', 'neigh', 'show']),
    ]);
    const byName = new Map(links.map((l) => [l.ifname, l]));
    const neighs = [...v4, ...v6];
    const out = new Map<string, NextHop>();
    for (const t of targets) {
      let r: RouteInfo;
      try {
        r = await this.route(t.address, t.family);
      } catch {
        continue;
      }
      const link = byName.get(r.dev);
      if (!link?.address) continue;
      const n = neighs.find((x) => x.dst === t.address && x.dev === r.dev);
      const mac = usableMac(n);
      if (!mac && (!n || (n.state ?? []).includes('FAILED'))) {
        // Gone from the table (garbage-collected) or failed: ask the kernel to resolve it again.
        await ip(['neigh', 'replace', t.address, 'dev', r.dev, 'managed', 'extern_learn']).catch(() => undefined);
        this.managed.set(t.address, r.dev);
      }
      out.set(t.address, { ifindex: link.ifindex, ifname: link.ifname, srcMac: macFromText(link.address), mac });
    }
    return out;
  }

  async release(address: string): Promise<void> {
    const dev = this.managed.get(address);
    if (!dev) return;
    this.managed.delete(address);
    await ip(['neigh', 'del', address, 'dev', dev]);
  }
}
