// Tunnelled real servers in the balancer: what it writes for -i (method, outer source, MTU, the gateway's MAC),
// real servers behind a router, --tunnel-source, method changes, and following next-hop changes.

import { describe, expect, it } from 'vitest';
import { ErrorCode, XdpvsError } from '../../src/errors.js';
import { parseAddress, type Family } from '../../src/lb/address.js';
import { Balancer, type BalancerOptions } from '../../src/lb/balancer.js';
import type { NeighbourResolver, NextHop, ResolveOptions } from '../../src/lb/neighbour.js';
import { DEST_F_MAC_VALID, FWD_METHODS } from '../../src/maps/structs.js';
import { fakeDirector } from '../helpers/fake-director.js';

const SVC = 'tcp:198.18.0.100:80';
const SVC6 = 'tcp:[fd00::100]:80';
const TUN = FWD_METHODS.indexOf('tunnel');
const DR = FWD_METHODS.indexOf('dr');

const mac = (last: number): Buffer => Buffer.from([2, 0, 0, 0, 0, last]);

/** Next hops as a table: a real server on the link (gateway unset) or behind a router, like `ip route get`. */
class Routes implements NeighbourResolver {
  released: string[] = [];
  constructor(public table: Record<string, Partial<NextHop>>) {}
  hop(address: string): NextHop | undefined {
    const h = this.table[address];
    return h && { ifindex: 3, ifname: 'eth0', srcMac: mac(0xd0), mtu: 1500, ...h };
  }
  async resolve(address: string, _family: Family, opts: ResolveOptions = {}): Promise<NextHop> {
    const h = this.hop(address);
    if (!h) throw new XdpvsError(ErrorCode.Invalid, `no route to real server ${address}`);
    if (h.gateway && !opts.allowGateway) throw new XdpvsError(ErrorCode.Invalid, `real server ${address} is reached through gateway ${h.gateway}`);
    return h;
  }
  async lookupAll(targets: { address: string }[]): Promise<Map<string, NextHop>> {
    return new Map(targets.flatMap((t) => (this.hop(t.address) ? [[t.address, this.hop(t.address)!] as const] : [])));
  }
  async release(address: string): Promise<void> {
    this.released.push(address);
  }
}

const ROUTES: Record<string, Partial<NextHop>> = {
  // On the director's link.
  '198.18.0.11': { mac: mac(0x11), srcAddress: '198.18.0.2' },
  'fd00::11': { mac: mac(0x21), srcAddress: 'fd00::2' },
  // Behind the router 198.18.0.1 / fd00::1: the next hop's MAC is the router's.
  '198.19.1.11': { mac: mac(0x01), gateway: '198.18.0.1', srcAddress: '198.18.0.2' },
  '198.19.1.12': { mac: mac(0x01), gateway: '198.18.0.1', srcAddress: '198.18.0.2', mtu: 1400 },
  'fd00:1::11': { mac: mac(0x01), gateway: 'fd00::1', srcAddress: 'fd00::2' },
  // A route without a source address (nothing of that family on the interface).
  '198.19.9.9': { mac: mac(0x01), gateway: '198.18.0.1' },
};

async function director(opts: BalancerOptions = {}, routes = ROUTES) {
  const { maps } = fakeDirector();
  const resolver = new Routes({ ...routes });
  const b = new Balancer(maps, resolver, opts);
  await b.addService({ protocol: 'tcp', address: '198.18.0.100', port: 80, scheduler: 'rr' });
  await b.addService({ protocol: 'tcp', address: 'fd00::100', port: 80, scheduler: 'rr' });
  const ring = (svc: string) => {
    const key = maps.serviceKeys().find((k) => (svc === SVC ? k.family === 2 : k.family === 10))!;
    return [...maps.readRing(maps.getService(key)!.ring_slot, maps.getService(key)!.ring_len)];
  };
  return { maps, resolver, b, ring };
}

const ip16 = (text: string): string => {
  const out = Buffer.alloc(16);
  Buffer.from(parseAddress(text).bytes).copy(out);
  return out.toString('hex');
};

describe('tunnelled real servers (-i)', () => {
  it('behind a router: the gateway is the next hop; outer source from the route, egress MTU written', async () => {
    const { maps, b, ring } = await director();
    const v = await b.addServer(SVC, { address: '198.19.1.11', method: 'tunnel' });
    expect(v).toMatchObject({ method: 'tunnel', neighbour: { resolved: true, mac: '02:00:00:00:00:01' } });
    const [id] = ring(SVC);
    const d = maps.getDest(id!);
    expect(d).toMatchObject({ method: TUN, family: 2, port: 80, mtu: 1500, flags: DEST_F_MAC_VALID, ifindex: 3 });
    expect(d.addr.toString('hex')).toBe(ip16('198.19.1.11'));
    expect(d.tun_src.toString('hex')).toBe(ip16('198.18.0.2'));
    expect(d.mac_dst.toString('hex')).toBe('020000000001');

    await b.addServer(SVC, { address: '198.19.1.12', method: 'tunnel' });
    expect(maps.getDest(ring(SVC)[1]!).mtu).toBe(1400); // the route's own MTU
  });

  it('IPv6 in IPv6 with its own source address', async () => {
    const { maps, b, ring } = await director();
    await b.addServer(SVC6, { address: 'fd00:1::11', method: 'tunnel' });
    const d = maps.getDest(ring(SVC6)[0]!);
    expect(d).toMatchObject({ method: TUN, family: 10 });
    expect(d.tun_src.toString('hex')).toBe(ip16('fd00::2'));
  });

  it('--tunnel-source replaces the kernel\'s choice, per family; a wrong family is refused', async () => {
    const { maps, b, ring } = await director({ tunnelSources: { inet: '198.18.0.3' } });
    await b.addServer(SVC, { address: '198.19.1.11', method: 'tunnel' });
    await b.addServer(SVC6, { address: 'fd00:1::11', method: 'tunnel' });
    expect(maps.getDest(ring(SVC)[0]!).tun_src.toString('hex')).toBe(ip16('198.18.0.3'));
    expect(maps.getDest(ring(SVC6)[0]!).tun_src.toString('hex')).toBe(ip16('fd00::2'));
    await expect(director({ tunnelSources: { inet: 'fd00::3' } })).rejects.toMatchObject({ code: ErrorCode.Invalid });
  });

  it('without any source address for the family, a tunnel is refused with what to do', async () => {
    const { b } = await director();
    await expect(b.addServer(SVC, { address: '198.19.9.9', method: 'tunnel' })).rejects.toThrow(/--tunnel-source/);
    const ok = await director({ tunnelSources: { inet: '198.18.0.2' } });
    await expect(ok.b.addServer(SVC, { address: '198.19.9.9', method: 'tunnel' })).resolves.toMatchObject({ method: 'tunnel' });
  });

  it('direct routing keeps refusing a real server behind a gateway; the same one is fine as a tunnel', async () => {
    const { b } = await director();
    await expect(b.addServer(SVC, { address: '198.19.1.11', method: 'dr' })).rejects.toMatchObject({ code: ErrorCode.Invalid });
    await b.addServer(SVC, { address: '198.19.1.11', method: 'tunnel' });
    // -e cannot turn it into direct routing.
    await expect(b.editServer(SVC, '198.19.1.11:80', { method: 'dr' })).rejects.toThrow(/gateway/);
  });

  it('the real server port must be the service port, as for direct routing', async () => {
    const { b } = await director();
    await expect(b.addServer(SVC, { address: '198.18.0.11', port: 8080, method: 'tunnel' })).rejects.toMatchObject({ code: ErrorCode.Invalid });
  });

  it('direct routing and tunnelling side by side in one service: both in the schedule table', async () => {
    const { maps, b, ring } = await director();
    await b.addServer(SVC, { address: '198.18.0.11', method: 'dr' });
    await b.addServer(SVC, { address: '198.19.1.11', method: 'tunnel' });
    expect(ring(SVC).map((id) => maps.getDest(id).method)).toEqual([DR, TUN]);
    expect(b.getService(SVC).servers.map((s) => s.method)).toEqual(['dr', 'tunnel']);
  });

  it('-e from -g to -i: a new destination record, the old one untouched for its connections; and back', async () => {
    const { maps, b, ring } = await director();
    await b.addServer(SVC, { address: '198.18.0.11', method: 'dr' });
    const [drId] = ring(SVC);
    const dr = maps.getDest(drId!);
    expect(dr).toMatchObject({ method: DR, mtu: 0 });
    expect(dr.tun_src.equals(Buffer.alloc(16))).toBe(true);

    await b.editServer(SVC, '198.18.0.11:80', { method: 'tunnel' });
    const [tunId] = ring(SVC);
    expect(tunId).not.toBe(drId);
    expect(maps.getDest(tunId!)).toMatchObject({ method: TUN, mtu: 1500, flags: DEST_F_MAC_VALID });
    expect(maps.getDest(tunId!).gen).not.toBe(dr.gen);
    expect(maps.getDest(drId!)).toEqual(dr);

    await b.editServer(SVC, '198.18.0.11:80', { method: 'dr' });
    const [backId] = ring(SVC);
    expect(maps.getDest(backId!)).toMatchObject({ method: DR, mtu: 0 });
  });

  it('follows a new gateway MAC or MTU of a tunnelled real server; a direct-routing one now behind a gateway keeps its hop', async () => {
    const { maps, b, ring, resolver } = await director();
    await b.addServer(SVC, { address: '198.19.1.11', method: 'tunnel' });
    await b.addServer(SVC, { address: '198.18.0.11', method: 'dr' });
    const [tunId, drId] = ring(SVC);
    resolver.table['198.19.1.11'] = { ...resolver.table['198.19.1.11'], mac: mac(0x02), mtu: 9000 };
    resolver.table['198.18.0.11'] = { mac: mac(0x01), gateway: '198.18.0.1', srcAddress: '198.18.0.2' };
    await b.refreshNeighbours();
    expect(maps.getDest(tunId!)).toMatchObject({ mtu: 9000 });
    expect(maps.getDest(tunId!).mac_dst.toString('hex')).toBe('020000000002');
    expect(maps.getDest(drId!).mac_dst.toString('hex')).toBe('020000000011');
  });

  it('restores tunnelled real servers behind a gateway from the state file', async () => {
    const first = await director();
    await first.b.addServer(SVC, { address: '198.19.1.11', method: 'tunnel' });
    const state = first.b.exportState();
    const { maps } = fakeDirector();
    const b = new Balancer(maps, new Routes(ROUTES));
    await b.restore(state);
    const v = b.getService(SVC).servers[0]!;
    expect(v).toMatchObject({ method: 'tunnel', neighbour: { resolved: true } });
    const key = maps.serviceKeys().find((k) => k.family === 2)!;
    const d = maps.getDest([...maps.readRing(maps.getService(key)!.ring_slot, maps.getService(key)!.ring_len)][0]!);
    expect(d.tun_src.toString('hex')).toBe(ip16('198.18.0.2'));
  });
});

describe('tunnels across address families (as IPVS allows)', () => {
  it('an IPv4 service may tunnel to an IPv6 real server and back; other methods may not', async () => {
    const { maps, b, ring } = await director();
    await b.addServer(SVC, { address: 'fd00:1::11', method: 'tunnel' });
    const d = maps.getDest(ring(SVC)[0]!);
    expect(d).toMatchObject({ method: TUN, family: 10 });
    expect(d.tun_src.toString('hex')).toBe(ip16('fd00::2'));
    await b.addServer(SVC6, { address: '198.19.1.11', method: 'tunnel' });
    expect(maps.getDest(ring(SVC6)[0]!)).toMatchObject({ method: TUN, family: 2 });

    await expect(b.addServer(SVC, { address: 'fd00::11', method: 'dr' })).rejects.toMatchObject({ code: ErrorCode.FamilyMismatch });
    await b.addServer(SVC, { address: 'fd00::11', method: 'tunnel' });
    await expect(b.editServer(SVC, '[fd00::11]:80', { method: 'dr' })).rejects.toMatchObject({ code: ErrorCode.FamilyMismatch });

    // And they come back from the state file.
    const { maps: maps2 } = fakeDirector();
    const b2 = new Balancer(maps2, new Routes(ROUTES));
    await b2.restore(b.exportState());
    expect(b2.getService(SVC).servers.map((s) => [s.address, s.method])).toEqual([
      ['fd00:1::11', 'tunnel'],
      ['fd00::11', 'tunnel'],
    ]);
  });
});
