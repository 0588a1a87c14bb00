// Reloading keepalived.conf applies only the differences: unchanged services keep their ids and counters, unchanged
// real servers their destination ids; errors change nothing and name FILE:LINE; other services are left alone.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ErrorCode, XdpvsError } from '../../src/errors.js';
import { HealthMonitor } from '../../src/health/monitor.js';
import { KeepalivedLoader } from '../../src/keepalived/apply.js';
import { fakeDirector } from '../helpers/fake-director.js';

const NEIGHBOURS = Object.fromEntries([11, 12, 13, 14].map((n) => [`198.18.0.${n}`, `02:00:00:00:00:${n}`]));

function conf(body: string): string {
  return `global_defs {\n  router_id T\n}\n${body}`;
}

const WEB = (servers: string, extra = '') => `virtual_server 198.18.0.100 80 {
  delay_loop 60
  lb_algo rr
  lb_kind DR
  protocol TCP
${extra}${servers}}
`;
const RS = (n: number, weight = 1) => `  real_server 198.18.0.${n} 80 {\n    weight ${weight}\n  }\n`;
const DNS = `virtual_server 198.18.0.100 53 {
  lb_algo rr
  lb_kind DR
  protocol UDP
  real_server 198.18.0.11 53 {
  }
}
`;

async function setup(text: string) {
  const d = fakeDirector({ neighbours: NEIGHBOURS });
  const dir = mkdtempSync(join(tmpdir(), 'xdpvs-reload-'));
  const file = join(dir, 'keepalived.conf');
  writeFileSync(file, text);
  const monitor = new HealthMonitor({ target: d.balancer, log: () => undefined, probe: async () => ({ ok: true }) });
  const loader = new KeepalivedLoader(file, d.balancer, monitor, () => undefined);
  const first = await loader.load();
  return { d, file, loader, monitor, first };
}

/** Service id -> its data-plane id, and real server -> destination id and generation. */
function ids(d: ReturnType<typeof fakeDirector>) {
  const out: Record<string, unknown> = {};
  for (const s of d.balancer.exportState().services) {
    out[`${s.protocol}:${s.address}:${s.port}`] = s.id;
    for (const r of s.servers) out[`${s.protocol}:${s.address}:${s.port} ${r.address}:${r.port}`] = `${r.destId}/${r.gen}`;
  }
  return out;
}

describe('keepalived.conf reload', () => {
  it('loads, then reloads applying only the differences: untouched services and servers keep ids and counters', async () => {
    const { d, file, loader, monitor, first } = await setup(conf(WEB(RS(11) + RS(12)) + DNS));
    expect(first.changes).toMatchObject({ servicesAdded: 2, serversAdded: 3 });
    expect(first.routerId).toBe('T');
    const before = ids(d);
    // Traffic counted on the DNS service and on rs1 of the web service.
    const dnsId = d.balancer.exportState().services.find((s) => s.port === 53)!.id;
    const web = d.balancer.exportState().services.find((s) => s.port === 80)!;
    const rs1 = web.servers.find((r) => r.address === '198.18.0.11')!;
    d.maps.backend.map('svc_stats').update(Buffer.from(Uint32Array.of(dnsId).buffer), Buffer.alloc(d.maps.backend.map('svc_stats').valueSize * d.maps.backend.possibleCpus, 7));
    const statsBefore = d.balancer.getService('udp:198.18.0.100:53').stats;
    expect(statsBefore.conns).toBeGreaterThan(0);
    const rs1Stats = d.balancer.getServer('tcp:198.18.0.100:80', '198.18.0.11:80').stats;

    // rs2 re-weighted, rs3 added, the DNS service unchanged.
    writeFileSync(file, conf(WEB(RS(11) + RS(12, 5) + RS(13)) + DNS));
    const second = await loader.load();
    expect(second.changes).toEqual({ servicesAdded: 0, servicesEdited: 0, servicesRemoved: 0, serversAdded: 1, serversEdited: 1, serversRemoved: 0 });
    const after = ids(d);
    for (const k of Object.keys(before)) expect(after[k], k).toBe(before[k]);
    expect(d.balancer.getService('udp:198.18.0.100:53').stats).toEqual(statsBefore);
    expect(d.balancer.getServer('tcp:198.18.0.100:80', '198.18.0.11:80').stats).toEqual(rs1Stats);
    expect(rs1.destId).toBe(d.balancer.exportState().services.find((s) => s.port === 80)!.servers[0].destId);
    expect(d.balancer.getServer('tcp:198.18.0.100:80', '198.18.0.12:80').weight).toBe(5);

    // The same file again: nothing at all.
    const third = await loader.load();
    expect(third.changes).toEqual({ servicesAdded: 0, servicesEdited: 0, servicesRemoved: 0, serversAdded: 0, serversEdited: 0, serversRemoved: 0 });
    expect(ids(d)).toEqual(after);
    await monitor.stop();
  });

  it('removes what the file no longer names, and leaves services it never named alone', async () => {
    const { d, file, loader, monitor } = await setup(conf(WEB(RS(11)) + DNS));
    await d.balancer.addService({ protocol: 'tcp', address: '198.18.0.100', port: 443, scheduler: 'rr' });
    writeFileSync(file, conf(WEB(RS(11))));
    const r = await loader.load();
    expect(r.changes).toMatchObject({ servicesRemoved: 1 });
    expect(d.balancer.listServices().map((s) => s.id).sort()).toEqual(['tcp:198.18.0.100:443', 'tcp:198.18.0.100:80']);
    await monitor.stop();
  });

  it('a bad file changes nothing and names FILE:LINE', async () => {
    const { d, file, loader, monitor } = await setup(conf(WEB(RS(11))));
    const before = ids(d);
    writeFileSync(file, conf(WEB(RS(11) + '  real_server 198.18.0.12 80 {\n    weight 1\n    colour blue\n  }\n')));
    await expect(loader.load()).rejects.toMatchObject({ code: ErrorCode.Invalid, message: `${file}:14: unknown keyword "colour" in real_server` });
    expect(ids(d)).toEqual(before);
    await monitor.stop();
  });

  it('what the balancer refuses (a scheduler it does not know) is reported at the virtual_server line, nothing changed', async () => {
    const { d, file, loader, monitor } = await setup(conf(WEB(RS(11))));
    const before = ids(d);
    writeFileSync(file, conf(WEB(RS(11)).replace('lb_algo rr', 'lb_algo nosuch') + DNS));
    const e = (await loader.load().catch((x: unknown) => x)) as XdpvsError;
    expect(e).toBeInstanceOf(XdpvsError);
    expect(e.code).toBe(ErrorCode.Invalid);
    expect(e.message.startsWith(`${file}:4: `)).toBe(true);
    expect(ids(d)).toEqual(before);
    await monitor.stop();
  });

  it('POST /v1/reload says there is nothing to reload without --keepalived-conf', async () => {
    const d = fakeDirector({ neighbours: NEIGHBOURS });
    const r = await d.call('POST', '/v1/reload');
    expect(r.status).toBe(400);
    expect(r.body.error).toMatchObject({ code: ErrorCode.Invalid, message: expect.stringContaining('--keepalived-conf') });
  });
});
