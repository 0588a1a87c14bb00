// A director without a kernel: the real Balancer and API over in-memory maps and a table of neighbours.

import { createApp } from '../../src/api/app.js';
import { ErrorCode, XdpvsError } from '../../src/errors.js';
import type { Family } from '../../src/lb/address.js';
import { Balancer, type BalancerOptions } from '../../src/lb/balancer.js';
import type { NeighbourResolver, NextHop } from '../../src/lb/neighbour.js';
import { LB_MAPS, LbMaps } from '../../src/maps/lb-maps.js';
import { MemoryMapBackend } from '../../src/maps/memory-backend.js';
import { REASONS } from '../../src/maps/reasons.js';

export const TOKEN = 'test-token-0123456789abcdef';

/** Neighbours as a table: address -> MAC (null: on the link but not resolved). Anything else is not connected. */
export class TableResolver implements NeighbourResolver {
  released: string[] = [];
  constructor(public table: Map<string, string | null>) {}

  private hop(address: string): NextHop | undefined {
    if (!this.table.has(address)) return undefined;
    const mac = this.table.get(address);
    return { ifindex: 7, ifname: 'eth0', srcMac: Buffer.from('02:00:00:00:00:01'.split(':').map((h) => parseInt(h, 16))), mac: mac ? Buffer.from(mac.split(':').map((h) => parseInt(h, 16))) : undefined };
  }
  async resolve(address: string, _family: Family): Promise<NextHop> {
    const h = this.hop(address);
    if (!h) throw new XdpvsError(ErrorCode.Invalid, `real server ${address} is reached through gateway 198.18.0.1 on eth0; direct routing needs it on a directly connected network`);
    return h;
  }
  async lookupAll(targets: { address: string }[]): Promise<Map<string, NextHop>> {
    const out = new Map<string, NextHop>();
    for (const t of targets) {
      const h = this.hop(t.address);
      if (h) out.set(t.address, h);
    }
    return out;
  }
  async release(address: string): Promise<void> {
    this.released.push(address);
  }
}

export function fakeDirector(opts: { neighbours?: Record<string, string | null>; balancer?: BalancerOptions; maxServices?: number; maxDests?: number } = {}) {
  const maxServices = opts.maxServices ?? 16;
  const sizes: Record<string, number> = {
    services: maxServices,
    dests: opts.maxDests ?? 64,
    conns: 1024,
    nat_reverse: 1024,
    rings: maxServices * 2,
    sched_state: maxServices,
    svc_stats: maxServices,
    dest_stats: opts.maxDests ?? 64,
    reasons: REASONS.length,
    config: 1,
    // Scheduler maps (src/maps/sched-maps.ts).
    dest_conns: opts.maxDests ?? 64,
    dest_sched: opts.maxDests ?? 64,
    svc_persist: maxServices,
    persist: 1024,
    lblc: 1024,
    lblc_scratch: 1,
    svc_prefix: maxServices,
    svc_wild: 1,
    nat_ctl: 1,
    svc_gate: 1,
    if_macs: 1,
  };
  const backend = new MemoryMapBackend(Object.values(LB_MAPS).map((m) => ({ ...m, maxEntries: sizes[m.name] })));
  const maps = new LbMaps(backend);
  const resolver = new TableResolver(new Map(Object.entries(opts.neighbours ?? {})));
  const balancer = new Balancer(maps, resolver, opts.balancer);
  const app = createApp({ balancer, token: TOKEN, info: () => ({ version: 'test', interfaces: [{ name: 'eth0', ifindex: 7, xdpMode: 'native' }] }) });

  async function call(method: string, path: string, body?: unknown, token: string | null = TOKEN) {
    const headers: Record<string, string> = {};
    if (body !== undefined) headers['content-type'] = 'application/json';
    if (token) headers.authorization = `Bearer ${token}`;
    const res = await app.request(path, { method, headers, body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body) });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : undefined };
  }
  return { backend, maps, resolver, balancer, app, call };
}

export const svcPath = (id: string) => `/v1/services/${encodeURIComponent(id)}`;
export const rsPath = (svc: string, rs: string) => `${svcPath(svc)}/servers/${encodeURIComponent(rs)}`;
