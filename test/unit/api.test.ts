// The HTTP API in-process (app.request) over the real balancer and in-memory maps.

import { describe, expect, it } from 'vitest';
import { Service, ServiceKey, Dest } from '../../src/maps/structs.js';
import { fakeDirector, rsPath, svcPath } from '../helpers/fake-director.js';

const NEIGH = { '198.18.0.11': '02:00:00:00:00:11', '198.18.0.12': '02:00:00:00:00:12', 'fd00::11': '02:00:00:00:00:21', '198.18.0.13': null };
const SVC = 'tcp:198.18.0.100:80';

async function withService(scheduler = 'rr') {
  const d = fakeDirector({ neighbours: NEIGH });
  const r = await d.call('POST', '/v1/services', { protocol: 'tcp', address: '198.18.0.100', port: 80, scheduler });
  expect(r.status).toBe(201);
  return d;
}

/** Every map's content, to prove a rejected request changed nothing. */
function snapshot(d: ReturnType<typeof fakeDirector>) {
  const out: Record<string, string[]> = {};
  for (const name of ['services', 'dests', 'rings', 'sched_state']) {
    const m = d.backend.map(name);
    out[name] = m.keys().map((k) => `${k.toString('hex')}=${m.lookup(k)?.toString('hex')}`);
  }
  return out;
}

describe('services', () => {
  it('creates, lists, reads and deletes a service, writing the service map', async () => {
    const d = await withService();
    const list = await d.call('GET', '/v1/services');
    expect(list.body.services).toHaveLength(1);
    expect(list.body.services[0]).toMatchObject({ id: SVC, protocol: 'tcp', address: '198.18.0.100', port: 80, family: 'inet', scheduler: 'rr', servers: [] });
    const keys = d.maps.serviceKeys();
    expect(keys).toHaveLength(1);
    expect(keys[0].port).toBe(80);
    expect((await d.call('GET', svcPath(SVC))).body.id).toBe(SVC);
    expect((await d.call('DELETE', svcPath(SVC))).status).toBe(204);
    expect(d.maps.serviceKeys()).toHaveLength(0);
    expect((await d.call('GET', svcPath(SVC))).status).toBe(404);
  });

  it('accepts IPv6 VIPs and any spelling of the address in the path', async () => {
    const d = fakeDirector({ neighbours: NEIGH });
    const r = await d.call('POST', '/v1/services', { protocol: 'udp', address: 'FD00:0::100', port: 53, scheduler: 'mh' });
    expect(r.status).toBe(201);
    expect(r.body.id).toBe('udp:[fd00::100]:53');
    expect((await d.call('GET', svcPath('udp:[fd00:0:0::100]:53'))).status).toBe(200);
  });

  it('rejects bad input with a code naming what is wrong, and changes nothing', async () => {
    const d = await withService();
    const before = snapshot(d);
    const cases: [unknown, number, string][] = [
      [{ protocol: 'tcp', address: '300.1.1.1', port: 80, scheduler: 'rr' }, 400, 'XDPVS_ERR_INVALID'],
      [{ protocol: 'tcp', address: '198.18.0.100', port: 0, scheduler: 'rr' }, 400, 'XDPVS_ERR_INVALID'],
      [{ protocol: 'tcp', address: '198.18.0.100', port: 70000, scheduler: 'rr' }, 400, 'XDPVS_ERR_INVALID'],
      [{ protocol: 'sctp', address: '198.18.0.100', port: 81, scheduler: 'rr' }, 400, 'XDPVS_ERR_INVALID'],
      [{ protocol: 'tcp', address: '198.18.0.100', port: 81, scheduler: 'nosuch' }, 400, 'XDPVS_ERR_INVALID'],
      [{ protocol: 'tcp', address: '198.18.0.100', port: 81, scheduler: 'rr', bogus: 1 }, 400, 'XDPVS_ERR_INVALID'],
      [{ protocol: 'tcp', address: '198.18.0.100', port: 81, scheduler: 'rr', flags: ['mh-port'] }, 400, 'XDPVS_ERR_INVALID'],
      [{ protocol: 'tcp', address: '198.18.0.100', port: 80, scheduler: 'rr' }, 409, 'XDPVS_ERR_EXISTS'],
      [{ protocol: 'tcp', address: '198.18.0.100', port: 81, persistent: 99999999 }, 400, 'XDPVS_ERR_INVALID'],
      [{ protocol: 'tcp', address: '198.18.0.100', port: 81, scheduler: 'rr', netmask: '255.0.255.0', persistent: 60 }, 400, 'XDPVS_ERR_INVALID'],
      ['{not json', 400, 'XDPVS_ERR_INVALID'],
    ];
    for (const [body, status, code] of cases) {
      const r = await d.call('POST', '/v1/services', body);
      expect({ body, status: r.status, code: r.body.error.code }).toEqual({ body, status, code });
      expect(r.body.error.message.length).toBeGreaterThan(5);
    }
    expect(snapshot(d)).toEqual(before);
  });

  it('writes need the bearer token; reads do not', async () => {
    const d = await withService();
    const r = await d.call('POST', '/v1/services', { protocol: 'tcp', address: '198.18.0.100', port: 81, scheduler: 'rr' }, null);
    expect(r.status).toBe(401);
    expect(r.body.error.code).toBe('XDPVS_ERR_UNAUTHORIZED');
    expect((await d.call('DELETE', svcPath(SVC), undefined, 'wrong-token')).status).toBe(401);
    expect((await d.call('GET', '/v1/services', undefined, null)).status).toBe(200);
    expect(d.maps.serviceKeys()).toHaveLength(1);
  });

  it('edits the scheduler (-E) and clears everything (-C)', async () => {
    const d = await withService();
    const r = await d.call('PATCH', svcPath(SVC), { scheduler: 'wrr' });
    expect(r.body.scheduler).toBe('wrr');
    const key = d.maps.serviceKeys()[0];
    expect(d.maps.getService(key)!.sched).toBe(1);
    expect((await d.call('PATCH', svcPath(SVC), { scheduler: 'bogus' })).status).toBe(400);
    expect((await d.call('DELETE', '/v1/services')).body).toEqual({ deleted: 1 });
    expect(d.maps.serviceKeys()).toHaveLength(0);
  });
});

describe('real servers', () => {
  it('adds servers with ipvsadm defaults and publishes a schedule table naming their destinations', async () => {
    const d = await withService();
    const a = await d.call('POST', `${svcPath(SVC)}/servers`, { address: '198.18.0.11' });
    expect(a.status).toBe(201);
    expect(a.body).toMatchObject({ id: '198.18.0.11:80', port: 80, method: 'dr', weight: 1, neighbour: { resolved: true, mac: '02:00:00:00:00:11', interface: 'eth0' } });
    await d.call('POST', `${svcPath(SVC)}/servers`, { address: '198.18.0.12', port: 80, weight: 1 });
    const svc = d.maps.getService(d.maps.serviceKeys()[0])!;
    expect(svc.ring_len).toBe(2);
    const ring = [...d.maps.readRing(svc.ring_slot, svc.ring_len)];
    const macs = ring.map((id) => d.maps.getDest(id).mac_dst.toString('hex'));
    expect(macs).toEqual(['020000000011', '020000000012']);
    expect(d.maps.getDest(ring[0]).mac_src.toString('hex')).toBe('020000000001');
  });

  it('wrr publishes the IPVS order for weights 3 and 1', async () => {
    const d = await withService('wrr');
    await d.call('POST', `${svcPath(SVC)}/servers`, { address: '198.18.0.11', weight: 3 });
    await d.call('POST', `${svcPath(SVC)}/servers`, { address: '198.18.0.12', weight: 1 });
    const svc = d.maps.getService(d.maps.serviceKeys()[0])!;
    const order = [...d.maps.readRing(svc.ring_slot, svc.ring_len)].map((id) => d.maps.getDest(id).addr[3]);
    expect(order).toEqual([11, 11, 11, 12]);
  });

  it('switches tables atomically: another table each change, the old one kept (unread) for the next diff write', async () => {
    const d = await withService();
    await d.call('POST', `${svcPath(SVC)}/servers`, { address: '198.18.0.11' });
    const s1 = d.maps.getService(d.maps.serviceKeys()[0])!;
    await d.call('POST', `${svcPath(SVC)}/servers`, { address: '198.18.0.12' });
    const s2 = d.maps.getService(d.maps.serviceKeys()[0])!;
    expect(s2.ring_slot).not.toBe(s1.ring_slot);
    expect(d.maps.readRing(s1.ring_slot, s1.ring_len)).toHaveLength(1);
    expect(d.maps.readRing(s2.ring_slot, s2.ring_len)).toHaveLength(2);
  });

  it('rejects bad real servers and changes nothing', async () => {
    const d = await withService();
    await d.call('POST', `${svcPath(SVC)}/servers`, { address: '198.18.0.11' });
    const before = snapshot(d);
    const cases: [string, unknown, number, string][] = [
      [svcPath(SVC), { address: '198.18.0.300' }, 400, 'XDPVS_ERR_INVALID'],
      [svcPath(SVC), { address: 'fd00::11' }, 400, 'XDPVS_ERR_FAMILY_MISMATCH'],
      [svcPath(SVC), { address: '198.18.0.12', weight: -1 }, 400, 'XDPVS_ERR_INVALID'],
      [svcPath(SVC), { address: '198.18.0.12', weight: 65536 }, 400, 'XDPVS_ERR_INVALID'],
      [svcPath(SVC), { address: '198.18.0.12', weight: 1.5 }, 400, 'XDPVS_ERR_INVALID'],
      [svcPath(SVC), { address: '198.18.0.12', method: 'bogus' }, 400, 'XDPVS_ERR_INVALID'],
      [svcPath(SVC), { address: '198.18.0.12', port: 8080 }, 400, 'XDPVS_ERR_INVALID'],
      [svcPath(SVC), { address: '198.18.0.11' }, 409, 'XDPVS_ERR_EXISTS'],
      [svcPath(SVC), { address: '198.18.9.9' }, 400, 'XDPVS_ERR_INVALID'],
      [svcPath('tcp:198.18.0.100:81'), { address: '198.18.0.12' }, 404, 'XDPVS_ERR_NOT_FOUND'],
      [svcPath('tcp:nonsense'), { address: '198.18.0.12' }, 400, 'XDPVS_ERR_INVALID'],
    ];
    for (const [path, body, status, code] of cases) {
      const r = await d.call('POST', `${path}/servers`, body);
      expect({ body, status: r.status, code: r.body.error?.code }).toEqual({ body, status, code });
    }
    expect((await d.call('PATCH', rsPath(SVC, '198.18.0.12:80'), { weight: 2 })).status).toBe(404);
    expect((await d.call('PATCH', rsPath(SVC, '198.18.0.11:80'), { weight: 70000 })).status).toBe(400);
    expect((await d.call('DELETE', rsPath(SVC, '198.18.0.12:80'))).status).toBe(404);
    expect(snapshot(d)).toEqual(before);
  });

  it('weight 0 (quiescent) leaves the table but keeps the destination record', async () => {
    const d = await withService();
    await d.call('POST', `${svcPath(SVC)}/servers`, { address: '198.18.0.11' });
    await d.call('POST', `${svcPath(SVC)}/servers`, { address: '198.18.0.12' });
    const r = await d.call('PATCH', rsPath(SVC, '198.18.0.12'), { weight: 0 });
    expect(r.body.weight).toBe(0);
    const svc = d.maps.getService(d.maps.serviceKeys()[0])!;
    const ring = [...d.maps.readRing(svc.ring_slot, svc.ring_len)];
    expect(ring.map((id) => d.maps.getDest(id).addr[3])).toEqual([11]);
  });

  it('a removed server leaves the table but its destination stays for established connections', async () => {
    const d = await withService();
    await d.call('POST', `${svcPath(SVC)}/servers`, { address: '198.18.0.11' });
    const b = await d.call('POST', `${svcPath(SVC)}/servers`, { address: '198.18.0.12' });
    expect(b.status).toBe(201);
    const svcBefore = d.maps.getService(d.maps.serviceKeys()[0])!;
    const removedId = [...d.maps.readRing(svcBefore.ring_slot, svcBefore.ring_len)][1];
    expect((await d.call('DELETE', rsPath(SVC, '198.18.0.12:80'))).status).toBe(204);
    const svc = d.maps.getService(d.maps.serviceKeys()[0])!;
    expect([...d.maps.readRing(svc.ring_slot, svc.ring_len)]).not.toContain(removedId);
    expect(d.maps.getDest(removedId).addr[3]).toBe(12);
    // Re-adding it gets a fresh destination (a new generation), never the quarantined one.
    await d.call('POST', `${svcPath(SVC)}/servers`, { address: '198.18.0.12' });
    const again = d.maps.getService(d.maps.serviceKeys()[0])!;
    expect([...d.maps.readRing(again.ring_slot, again.ring_len)]).not.toContain(removedId);
  });

  it('an unresolved neighbour is listed but takes no new connections', async () => {
    const d = await withService();
    const r = await d.call('POST', `${svcPath(SVC)}/servers`, { address: '198.18.0.13' });
    expect(r.status).toBe(201);
    expect(r.body.neighbour.resolved).toBe(false);
    expect(d.maps.getService(d.maps.serviceKeys()[0])!.ring_len).toBe(0);
    d.resolver.table.set('198.18.0.13', '02:00:00:00:00:13');
    await d.balancer.refreshNeighbours();
    const svc = d.maps.getService(d.maps.serviceKeys()[0])!;
    expect(svc.ring_len).toBe(1);
    expect(d.maps.getDest(d.maps.readRing(svc.ring_slot, svc.ring_len)[0]).mac_dst.toString('hex')).toBe('020000000013');
  });

  it('state round-trips through exportState/restore with the same ids', async () => {
    const d = await withService('wrr');
    await d.call('POST', `${svcPath(SVC)}/servers`, { address: '198.18.0.11', weight: 3 });
    await d.call('POST', `${svcPath(SVC)}/servers`, { address: '198.18.0.12', weight: 1 });
    const state = d.balancer.exportState();
    const { Balancer } = await import('../../src/lb/balancer.js');
    const again = new Balancer(d.maps, d.resolver);
    await again.restore(state);
    expect(again.exportState()).toEqual(state);
    expect(again.listServices()[0].servers.map((s) => s.weight)).toEqual([3, 1]);
  });
});

describe('codec sanity', () => {
  it('encodes a service key with the port in network order', () => {
    const k = ServiceKey.encode({ addr: Buffer.alloc(16), port: 80, proto: 6, family: 2 });
    expect(k.subarray(16).toString('hex')).toBe('00500602');
    expect(Service.size).toBe(16);
    expect(Dest.size).toBe(64);
  });
});
