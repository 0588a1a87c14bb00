// GET/PUT /v1/config in-process: the whole configuration read back and replaced all or nothing, with errors that
// name the entry at fault, a revision check, and one state-file write per replacement.

import { describe, expect, it } from 'vitest';
import type { PersistedState } from '../../src/lb/balancer.js';
import { fakeDirector, svcPath } from '../helpers/fake-director.js';

const NEIGH = { '198.18.0.11': '02:00:00:00:00:11', '198.18.0.12': '02:00:00:00:00:12', 'fd00::11': '02:00:00:00:00:21' };

/** Every map's content, to prove a rejected request changed nothing. */
function snapshot(d: ReturnType<typeof fakeDirector>) {
  const out: Record<string, string[]> = {};
  for (const name of ['services', 'dests', 'rings', 'sched_state']) {
    const m = d.backend.map(name);
    out[name] = m.keys().map((k) => `${k.toString('hex')}=${m.lookup(k)?.toString('hex')}`);
  }
  return out;
}

const WEB = {
  protocol: 'tcp',
  address: '198.18.0.100',
  port: 80,
  scheduler: 'rr',
  servers: [{ address: '198.18.0.11' }, { address: '198.18.0.12', weight: 2 }],
};

describe('GET /v1/config', () => {
  it('is the configuration without counters, in scheduling order, with defaults filled in', async () => {
    const d = fakeDirector({ neighbours: NEIGH });
    expect((await d.call('GET', '/v1/config', undefined, null)).body).toEqual({ revision: 0, services: [] });
    const r = await d.call('PUT', '/v1/config', { services: [WEB] });
    expect(r.status).toBe(200);
    expect(r.body).toEqual({
      revision: 3,
      changes: { servicesAdded: 1, servicesEdited: 0, servicesRemoved: 0, serversAdded: 2, serversEdited: 0, serversRemoved: 0 },
      services: [
        {
          protocol: 'tcp',
          address: '198.18.0.100',
          port: 80,
          scheduler: 'rr',
          flags: [],
          servers: [
            { address: '198.18.0.11', port: 80, method: 'dr', weight: 1 },
            { address: '198.18.0.12', port: 80, method: 'dr', weight: 2 },
          ],
        },
      ],
    });
    expect((await d.call('GET', '/v1/config')).body).toEqual({ revision: 3, services: r.body.services });
  });
});

describe('PUT /v1/config', () => {
  it('changes only what differs: edits, removals and additions; the same configuration again changes nothing', async () => {
    const d = fakeDirector({ neighbours: NEIGH });
    await d.call('PUT', '/v1/config', { services: [WEB, { protocol: 'udp', address: 'fd00::100', port: 53, scheduler: 'mh', servers: [{ address: 'fd00::11' }] }] });
    const webRecord = d.maps.getService(d.maps.serviceKeys().find((k) => k.port === 80)!);

    const next = {
      services: [
        { ...WEB, scheduler: 'rr', servers: [{ address: '198.18.0.11', weight: 5 }] },
        { protocol: 'tcp', address: '198.18.0.100', port: 443, scheduler: 'wrr', flags: [], servers: [{ address: '198.18.0.12' }] },
      ],
    };
    const r = await d.call('PUT', '/v1/config', next);
    expect(r.body.changes).toEqual({ servicesAdded: 1, servicesEdited: 0, servicesRemoved: 1, serversAdded: 1, serversEdited: 1, serversRemoved: 1 });
    expect(r.body.services.map((s: { port: number }) => s.port)).toEqual([80, 443]);
    expect(d.maps.serviceKeys().map((k) => k.port).sort()).toEqual([443, 80]);
    // The web service kept its id (its connections and counters follow it).
    expect(d.maps.getService(d.maps.serviceKeys().find((k) => k.port === 80)!)!.id).toBe(webRecord!.id);

    const again = await d.call('PUT', '/v1/config', next);
    expect(again.body.changes).toEqual({ servicesAdded: 0, servicesEdited: 0, servicesRemoved: 0, serversAdded: 0, serversEdited: 0, serversRemoved: 0 });
    expect(again.body.revision).toBe(r.body.revision);
    expect((await d.call('PUT', '/v1/config', { services: [] })).body.changes.servicesRemoved).toBe(2);
    expect(d.maps.serviceKeys()).toEqual([]);
  });

  it('refuses a configuration with any problem, naming services[i].servers[j], and changes nothing', async () => {
    const d = fakeDirector({ neighbours: NEIGH });
    await d.call('PUT', '/v1/config', { services: [WEB] });
    const before = snapshot(d);
    const config = (await d.call('GET', '/v1/config')).body;
    const cases: [unknown, number, string, unknown][] = [
      [{ services: [WEB, { ...WEB, port: 443, flags: ['mh-port'] }] }, 400, 'XDPVS_ERR_INVALID', { service: 1 }],
      [{ services: [WEB, { ...WEB, port: 443, scheduler: 'wlc', persistent: 100000000 }] }, 400, 'XDPVS_ERR_INVALID', { service: 1 }],
      [{ services: [WEB, { ...WEB, port: 443, scheduler: 'nosuch' }] }, 400, 'XDPVS_ERR_INVALID', { service: 1 }],
      [{ services: [{ ...WEB, servers: [{ address: '198.18.0.11' }, { address: 'fd00::11' }] }] }, 400, 'XDPVS_ERR_FAMILY_MISMATCH', { service: 0, server: 1 }],
      [{ services: [{ ...WEB, servers: [{ address: '198.18.0.11', port: 8080 }] }] }, 400, 'XDPVS_ERR_INVALID', { service: 0, server: 0 }],
      [{ services: [{ ...WEB, servers: [{ address: '198.18.0.99' }] }] }, 400, 'XDPVS_ERR_INVALID', { service: 0, server: 0 }],
      [{ services: [WEB, WEB] }, 400, 'XDPVS_ERR_INVALID', { service: 1 }],
      [{ services: [{ ...WEB, servers: [{ address: '198.18.0.11' }, { address: '198.18.0.11', port: 80 }] }] }, 400, 'XDPVS_ERR_INVALID', { service: 0, server: 1 }],
      [{ services: [{ ...WEB, address: '198.18.0.300' }] }, 400, 'XDPVS_ERR_INVALID', { service: 0 }],
      [{ services: [{ ...WEB, bogus: 1 }] }, 400, 'XDPVS_ERR_INVALID', undefined],
      [{ services: [WEB], revision: config.revision + 1 }, 409, 'XDPVS_ERR_CONFLICT', undefined],
    ];
    for (const [body, status, code, at] of cases) {
      const r = await d.call('PUT', '/v1/config', body);
      expect({ body, status: r.status, code: r.body.error.code, at: r.body.error.at }).toEqual({ body, status, code, at });
      expect(snapshot(d)).toEqual(before);
    }
    expect((await d.call('GET', '/v1/config')).body).toEqual(config);
    expect((await d.call('PUT', '/v1/config', { services: [WEB] }, null)).status).toBe(401);
  });

  it('with the revision read, applies; the state file is written once per replacement', async () => {
    const saved: PersistedState[] = [];
    const d = fakeDirector({ neighbours: NEIGH, balancer: { onChange: (s) => saved.push(s) } });
    const { revision } = (await d.call('GET', '/v1/config')).body;
    const r = await d.call('PUT', '/v1/config', { services: [WEB, { ...WEB, port: 443 }], revision });
    expect(r.status).toBe(200);
    expect(saved).toHaveLength(1);
    expect(saved[0].services.map((s) => s.port)).toEqual([80, 443]);
    // Single requests still persist each change.
    await d.call('DELETE', svcPath('tcp:198.18.0.100:443'));
    expect(saved).toHaveLength(2);
  });
});
