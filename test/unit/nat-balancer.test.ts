// NAT real servers in the balancer: what it writes for -m (method, port mapping, next hop), method changes under
// traffic, and real servers behind a gateway (allowed for NAT as in IPVS, refused for direct routing).

import { describe, expect, it } from 'vitest';
import { ErrorCode, XdpvsError } from '../../src/errors.js';
import type { Family } from '../../src/lb/address.js';
import { Balancer } from '../../src/lb/balancer.js';
import type { NeighbourResolver, NextHop } from '../../src/lb/neighbour.js';
import { FWD_METHODS } from '../../src/maps/structs.js';
import { fakeDirector, rsPath, svcPath } from '../helpers/fake-director.js';

const NEIGH = { '198.19.0.11': '02:00:00:00:00:11', '198.19.0.12': '02:00:00:00:00:12', 'fd01::11': '02:00:00:00:00:21' };
const SVC = 'tcp:198.18.0.100:80';
const NAT = FWD_METHODS.indexOf('nat');
const DR = FWD_METHODS.indexOf('dr');

async function withService() {
  const d = fakeDirector({ neighbours: NEIGH });
  expect((await d.call('POST', '/v1/services', { protocol: 'tcp', address: '198.18.0.100', port: 80, scheduler: 'rr' })).status).toBe(201);
  return d;
}

function ringDests(d: ReturnType<typeof fakeDirector>) {
  const svc = d.maps.getService(d.maps.serviceKeys()[0]!)!;
  return [...d.maps.readRing(svc.ring_slot, svc.ring_len)];
}

describe('NAT real servers (-m)', () => {
  it('are accepted, with a mapped port written to the destination record', async () => {
    const d = await withService();
    const r = await d.call('POST', `${svcPath(SVC)}/servers`, { address: '198.19.0.11', port: 8080, method: 'nat' });
    expect(r.status, JSON.stringify(r.body)).toBe(201);
    expect(r.body).toMatchObject({ id: '198.19.0.11:8080', port: 8080, method: 'nat', neighbour: { resolved: true, mac: '02:00:00:00:00:11' } });
    const [id] = ringDests(d);
    expect(d.maps.getDest(id!)).toMatchObject({ port: 8080, method: NAT, family: 2 });
    expect(d.maps.getDest(id!).mac_dst.toString('hex')).toBe('020000000011');
  });

  it('without a port take the service port; port mapping stays refused for direct routing', async () => {
    const d = await withService();
    expect((await d.call('POST', `${svcPath(SVC)}/servers`, { address: '198.19.0.12', method: 'nat' })).body).toMatchObject({ port: 80 });
    const dr = await d.call('POST', `${svcPath(SVC)}/servers`, { address: '198.19.0.11', port: 8080, method: 'dr' });
    expect([dr.status, dr.body.error?.code ?? dr.body.code]).toEqual([400, 'XDPVS_ERR_INVALID']);
  });

  it('-e to another method gives a new destination record and leaves the old one as it was (its connections finish)', async () => {
    const d = await withService();
    await d.call('POST', `${svcPath(SVC)}/servers`, { address: '198.19.0.11', method: 'nat' });
    const [oldId] = ringDests(d);
    const before = d.maps.getDest(oldId!);
    const e = await d.call('PATCH', rsPath(SVC, '198.19.0.11:80'), { method: 'dr', weight: 2 });
    expect(e.status, JSON.stringify(e.body)).toBe(200);
    const [newId] = ringDests(d);
    expect(newId).not.toBe(oldId);
    expect(d.maps.getDest(newId!)).toMatchObject({ method: DR, port: 80 });
    expect(d.maps.getDest(newId!).gen).not.toBe(before.gen);
    expect(d.maps.getDest(oldId!)).toEqual(before);

    // A mapped port cannot turn into direct routing.
    await d.call('POST', `${svcPath(SVC)}/servers`, { address: '198.19.0.12', port: 8080, method: 'nat' });
    const bad = await d.call('PATCH', rsPath(SVC, '198.19.0.12:8080'), { method: 'dr' });
    expect(bad.status).toBe(400);
  });

  it('IPv6 NAT real servers with a mapped port', async () => {
    const d = fakeDirector({ neighbours: NEIGH });
    await d.call('POST', '/v1/services', { protocol: 'udp', address: 'fd00::100', port: 53, scheduler: 'rr' });
    const r = await d.call('POST', `${svcPath('udp:[fd00::100]:53')}/servers`, { address: 'fd01::11', port: 5353, method: 'nat' });
    expect(r.status, JSON.stringify(r.body)).toBe(201);
    expect(r.body).toMatchObject({ id: '[fd01::11]:5353', method: 'nat' });
  });
});

/** A resolver whose real servers all sit behind the gateway 198.19.0.254. */
class RoutedResolver implements NeighbourResolver {
  async resolve(_address: string, _family: Family, opts?: { allowGateway?: boolean }): Promise<NextHop> {
    const hop = { ifindex: 3, ifname: 'eth1', srcMac: Buffer.alloc(6, 1), mac: Buffer.from([2, 0, 0, 0, 0xfe, 0]), gateway: '198.19.0.254' };
    if (!opts?.allowGateway) throw new XdpvsError(ErrorCode.Invalid, 'reached through gateway 198.19.0.254');
    return hop;
  }
  async lookupAll(): Promise<Map<string, NextHop>> {
    return new Map();
  }
  async release(): Promise<void> {}
}

describe('NAT real servers behind a router', () => {
  it('are reached through the gateway (its MAC is the next hop); direct routing refuses them', async () => {
    const { maps } = fakeDirector();
    const b = new Balancer(maps, new RoutedResolver());
    await b.addService({ protocol: 'tcp', address: '198.18.0.100', port: 80, scheduler: 'rr' });
    const v = await b.addServer(SVC, { address: '198.20.0.11', port: 8080, method: 'nat' });
    expect(v).toMatchObject({ method: 'nat', neighbour: { resolved: true, mac: '02:00:00:00:fe:00' } });
    await expect(b.addServer(SVC, { address: '198.20.0.12', method: 'dr' })).rejects.toMatchObject({ code: ErrorCode.Invalid });
  });
});
