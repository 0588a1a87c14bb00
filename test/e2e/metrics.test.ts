// End to end: the real xdpvsd's /metrics after known traffic through the DR lab, against xdpvsadm's own numbers;
// /openapi.json and /docs served by the real daemon.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Director } from '../../scripts/lab/director.js';
import type { DrLab, LabHost } from '../../scripts/lab/topology.js';
import { parseExposition, type Exposition } from '../helpers/prometheus.js';
import { getMany, parseLn, requireBuilt, skipUnlessRoot, startLabEnv, type LabEnv } from './helpers.js';

const skip = skipUnlessRoot('e2e metrics');

describe.skipIf(skip)('/metrics, /openapi.json and /docs of the real daemon (DR lab)', () => {
  let env: LabEnv | undefined;
  let lab: DrLab;
  let director: Director;
  let rs1: LabHost;
  let rs2: LabHost;

  beforeAll(async () => {
    requireBuilt(['dist/src/daemon/main.js', 'dist/src/cli/main.js', 'dist/scripts/lab/http-server.js', 'build/bpf/xdp_pass.bpf.o']);
    env = await startLabEnv({ realServers: 2 });
    lab = env.lab;
    director = env.director!;
    [rs1, rs2] = lab.realServers as [LabHost, LabHost];
  }, 90_000);

  afterAll(async () => {
    await env?.teardown();
  }, 60_000);

  /** GET on the daemon's API from inside the director's namespace (it listens on loopback there). */
  async function get(path: string): Promise<{ status: number; type: string; body: string }> {
    const r = await lab.exec('director', 'curl', ['-sS', '-o', '-', '-w', '\n%{http_code} %{content_type}', `${director.server}${path}`]);
    const cut = r.stdout.lastIndexOf('\n');
    const [status, ...type] = r.stdout.slice(cut + 1).split(' ');
    return { status: Number(status), type: type.join(' '), body: r.stdout.slice(0, cut) };
  }

  async function scrape(): Promise<Exposition> {
    const r = await get('/metrics');
    expect(r.status).toBe(200);
    expect(r.type).toBe('text/plain; version=0.0.4; charset=utf-8');
    return parseExposition(r.body);
  }

  it('counts four rr connections exactly, per service and real server, as xdpvsadm --stats does', async () => {
    const svc = `${lab.vip4}:80`;
    await director.admOk(['-A', '-t', svc, '-s', 'rr']);
    for (const rs of [rs1, rs2]) await director.admOk(['-a', '-t', svc, '-r', `${rs.ip4}:80`, '-g']);
    const before = await scrape();
    const fwd = (m: Exposition) =>
      (m.value('xdpvs_datapath_packets_total', { reason: 'fwd_tx' }) ?? 0) + (m.value('xdpvs_datapath_packets_total', { reason: 'fwd_redirect' }) ?? 0);

    await getMany(lab, `http://${lab.vip4}/`, 4);
    const m = await scrape();
    const ln = parseLn(await director.admOk(['-Ln']))[0]!;
    const stats = parseLn(await director.admOk(['-Ln', '--stats']))[0]!;

    const service = `tcp:${svc}`;
    expect(m.value('xdpvs_service_connections_total', { service })).toBe(4);
    const inpkts = m.value('xdpvs_service_incoming_packets_total', { service })!;
    expect(inpkts).toBeGreaterThanOrEqual(4 * 3); // at least SYN, ACK and the request on each connection
    expect(inpkts).toBe(Number(stats.fields[1]));
    expect(m.value('xdpvs_service_incoming_bytes_total', { service })).toBe(Number(stats.fields[3]));
    expect(m.value('xdpvs_service_outgoing_packets_total', { service })).toBe(0); // DR: replies bypass the director
    // Every packet of the service was sent on by XDP, and counted once as such.
    expect(fwd(m) - fwd(before)).toBe(inpkts);

    let rsPkts = 0;
    for (const [i, rs] of [rs1, rs2].entries()) {
      const labels = { service, real_server: `${rs.ip4}:80`, method: 'dr' };
      expect(m.value('xdpvs_real_server_connections_total', labels)).toBe(2);
      expect(m.value('xdpvs_real_server_incoming_packets_total', labels)).toBe(Number(stats.realServers[i]!.fields[1]));
      expect(m.value('xdpvs_real_server_weight', labels)).toBe(1);
      expect(m.value('xdpvs_real_server_neighbour_resolved', labels)).toBe(1);
      // ActiveConn and InActConn, as -Ln shows them (read from the same connection table).
      expect(m.value('xdpvs_real_server_connections_active', labels)).toBe(Number(ln.realServers[i]!.fields[2]));
      expect(m.value('xdpvs_real_server_connections_inactive', labels)).toBe(Number(ln.realServers[i]!.fields[3]));
      rsPkts += m.value('xdpvs_real_server_incoming_packets_total', labels)!;
    }
    expect(rsPkts).toBe(inpkts);
    const conns = ['active', 'inactive'].map((k) => m.value(`xdpvs_service_connections_${k}`, { service })!);
    expect(conns[0] + conns[1]).toBe(4);

    const iface = m.samples.find((s) => s.name === 'xdpvs_interface_info');
    expect(iface?.labels).toMatchObject({ interface: 'eth0', xdp_mode: 'native' });
    expect(iface?.value).toBe(1);
    expect(m.samples.find((s) => s.name === 'xdpvs_build_info')?.value).toBe(1);
    expect(m.value('xdpvs_connection_table_size')).toBeGreaterThan(0);
    // The daemon adds its own process metrics.
    expect(m.value('xdpvsd_process_resident_memory_bytes')).toBeGreaterThan(0);
  });

  it('serves its OpenAPI document and the page made from it', async () => {
    const doc = await get('/openapi.json');
    expect(doc.status).toBe(200);
    const json = JSON.parse(doc.body) as { openapi: string; paths: Record<string, unknown> };
    expect(json.openapi).toMatch(/^3\./);
    expect(Object.keys(json.paths)).toContain('/v1/services/{svc}/servers/{rs}');
    const page = await get('/docs');
    expect(page.status).toBe(200);
    expect(page.type).toMatch(/^text\/html/);
    expect(page.body).toContain('/v1/services/{svc}/servers/{rs}');
  });
});
