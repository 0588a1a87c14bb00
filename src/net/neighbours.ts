// Next hops of real servers from the kernel: the route says which interface (and gateway, for tunnelling), the
// neighbour table the MAC.
// Missing entries are created "managed" (the kernel resolves them and keeps them fresh, Linux 5.16+), so the
// daemon never sends probes of its own and sees a real server's new MAC on its next look at the table.

import { ErrorCode, XdpvsError } from '../errors.js';
import type { Family } from '../lb/address.js';
import type { NeighbourResolver, NextHop, ResolveOptions } from '../lb/neighbour.js';
import { getLink, ip, ipJson, listLinks, macFromText, routesGet, type LinkInfo, type NeighInfo, type RouteInfo } from './iproute.js';

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

/** The MTU packets towards a real server may have: the route's own (`mtu` metric), else the interface's. */
function pathMtu(r: RouteInfo, link: LinkInfo): number | undefined {
  return r.metrics?.find((m) => typeof m.mtu === 'number')?.mtu ?? link.mtu;
}

/** The route towards a real server, if the director can forward to it at all. */
function checkRoute(address: string, r: RouteInfo | undefined, allowGateway: boolean): RouteInfo {
  if (!r) throw new XdpvsError(ErrorCode.Invalid, `no route to real server ${address}`);
  if (r.type === 'local' || r.dev === 'lo') throw new XdpvsError(ErrorCode.Invalid, `real server ${address} is an address of this director`);
  if (r.gateway && !allowGateway) {
    throw new XdpvsError(
      ErrorCode.Invalid,
      `real server ${address} is reached through gateway ${r.gateway} on ${r.dev}; direct routing needs it on a directly connected network`,
    );
  }
  return r;
}

export class IprouteNeighbourResolver implements NeighbourResolver {
  /**
   * Neighbour entries this daemon created (the only ones it removes), by neighbour address: the device, and the real
   * servers that use the entry (a gateway serves many).
   */
  private readonly managed = new Map<string, { dev: string; users: Set<string> }>();

  constructor(private readonly opts: IprouteResolverOptions = {}) {}

  private async route(address: string, family: Family, allowGateway: boolean): Promise<RouteInfo> {
    let routes: RouteInfo[];
    try {
      routes = await ipJson<RouteInfo[]>([family === 'inet' ? '-4' : '-6', 'route', 'get', address]);
    } catch (e) {
      throw new XdpvsError(ErrorCode.Invalid, `no route to real server ${address}: ${(e as Error).message.replace(/^.*RTNETLINK answers: /, '')}`);
    }
    return checkRoute(address, routes[0], allowGateway);
  }

  private async neigh(address: string, dev: string, family: Family): Promise<NeighInfo | undefined> {
    const list = await ipJson<NeighInfo[]>([family === 'inet' ? '-4' : '-6', 'neigh', 'show', 'to', address, 'dev', dev]);
    return list.find((n) => n.dst === address) ?? list[0];
  }

  /** Asks the kernel to resolve `neighbour` on dev and keep it fresh, on behalf of real server `user`. */
  private async manage(neighbour: string, dev: string, user: string): Promise<void> {
    await ip(['neigh', 'replace', neighbour, 'dev', dev, 'managed', 'extern_learn']);
    const m = this.managed.get(neighbour);
    if (m && m.dev === dev) m.users.add(user);
    else this.managed.set(neighbour, { dev, users: new Set([user]) });
  }

  async resolve(address: string, family: Family, opts: ResolveOptions = {}): Promise<NextHop> {
    const r = await this.route(address, family, opts.allowGateway ?? false);
    const link = await getLink(r.dev);
    if (!link.address) throw new XdpvsError(ErrorCode.Invalid, `interface ${r.dev} towards ${address} has no MAC address`);
    // Through a gateway the frame goes to the gateway's MAC; the real server's address only enters the IP header.
    const target = r.gateway ?? address;
    let n = await this.neigh(target, r.dev, family);
    if (!usableMac(n)) {
      await this.manage(target, r.dev, address);
      const deadline = Date.now() + (this.opts.resolveWaitMs ?? 3000);
      while (!usableMac(n) && Date.now() < deadline) {
        await new Promise((res) => setTimeout(res, 50));
        n = await this.neigh(target, r.dev, family);
      }
    } else {
      this.managed.get(target)?.users.add(address);
    }
    return hopOf(r, link, usableMac(n));
  }

  async lookupAll(targets: { address: string; family: Family }[]): Promise<Map<string, NextHop>> {
    const [links, v4, v6, routes4, routes6] = await Promise.all([
      listLinks(),
      ipJson<NeighInfo[]>(['-4', 'neigh', 'show']),
      ipJson<NeighInfo[]>(['-6', 'neigh', 'show']),
      routesGet(targets.filter((t) => t.family === 'inet').map((t) => t.address), 'inet'),
      routesGet(targets.filter((t) => t.family === 'inet6').map((t) => t.address), 'inet6'),
    ]);
    const byName = new Map(links.map((l) => [l.ifname, l]));
    const neighs = [...v4, ...v6];
    const out = new Map<string, NextHop>();
    for (const t of targets) {
      let r: RouteInfo;
      try {
        r = checkRoute(t.address, (t.family === 'inet' ? routes4 : routes6).get(t.address), true);
      } catch {
        continue;
      }
      const link = byName.get(r.dev);
      if (!link?.address) continue;
      const target = r.gateway ?? t.address;
      const n = neighs.find((x) => x.dst === target && x.dev === r.dev);
      const mac = usableMac(n);
      if (!mac && (!n || (n.state ?? []).includes('FAILED'))) {
        // Gone from the table (garbage-collected) or failed: ask the kernel to resolve it again.
        await this.manage(target, r.dev, t.address).catch(() => undefined);
      }
      out.set(t.address, hopOf(r, link, mac));
    }
    return out;
  }

  async release(address: string): Promise<void> {
    for (const [neighbour, m] of [...this.managed]) {
      if (!m.users.delete(address) || m.users.size > 0) continue;
      this.managed.delete(neighbour);
      await ip(['neigh', 'del', neighbour, 'dev', m.dev]);
    }
  }
}

function hopOf(r: RouteInfo, link: LinkInfo, mac: Buffer | undefined): NextHop {
  return {
    ifindex: link.ifindex,
    ifname: link.ifname,
    srcMac: macFromText(link.address!),
    mac,
    ...(r.gateway ? { gateway: r.gateway } : {}),
    ...(pathMtu(r, link) !== undefined ? { mtu: pathMtu(r, link) } : {}),
    ...(r.prefsrc ? { srcAddress: r.prefsrc } : {}),
  };
}
