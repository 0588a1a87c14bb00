// GET /metrics over the real balancer and in-memory maps: names, types, labels and values against known counters.

import { describe, expect, it } from 'vitest';
import { perCpuStride } from '../../src/maps/backend.js';
import { Metrics } from '../../src/api/metrics.js';
import type { RealServerView, ServiceView } from '../../src/lb/model.js';
import { REASONS } from '../../src/maps/reasons.js';
import { Conn, ConnState, Dest, FlowKey, Stats } from '../../src/maps/structs.js';
import { fakeDirector, rsPath, svcPath } from '../helpers/fake-director.js';
import { parseExposition as parse } from '../helpers/prometheus.js';

const SVC = 'tcp:198.18.0.100:80';
const NEIGH = { '198.18.0.11': '02:00:00:00:00:11', '198.18.0.12': '02:00:00:00:00:12', '198.18.0.13': null };
const NOW = 1_000_000;

function u32Key(i: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(i);
  return b;
}

/** A per-CPU value: one Stats per CPU, at the kernel's 8-byte stride. */
function perCpuStats(perCpu: Array<Partial<ReturnType<typeof Stats.zero>>>): Buffer {
  const stride = perCpuStride(Stats.size);
  const out = Buffer.alloc(stride * perCpu.length);
  perCpu.forEach((s, c) => Stats.encode({ ...Stats.zero(), ...s }).copy(out, c * stride));
  return out;
}

/** The director with one service, three real servers (rs3's MAC unresolved) and known counters in the maps. */
async function director() {
  const d = fakeDirector({ neighbours: NEIGH, balancer: { nowNs: () => NOW } });
  expect((await d.call('POST', '/v1/services', { protocol: 'tcp', address: '198.18.0.100', port: 80, scheduler: 'wrr' })).status).toBe(201);
  for (const [address, weight] of [['198.18.0.11', 3], ['198.18.0.12', 1], ['198.18.0.13', 2]] as const) {
    expect((await d.call('POST', `${svcPath(SVC)}/servers`, { address, weight })).status).toBe(201);
  }
  const svcId = d.maps.getService(d.maps.serviceKeys()[0])!.id;
  const destId = (ip: string): number => {
    const want = Buffer.from(ip.split('.').map(Number));
    for (let i = 0; i < d.maps.maxDests; i++) {
      const dest = d.maps.getDest(i);
      if (dest.port === 80 && dest.svc_id === svcId && Buffer.from(dest.addr).subarray(0, 4).equals(want)) return i;
    }
    throw new Error(`no dest for ${ip}`);
  };
  const rs1 = destId('198.18.0.11');
  const rs2 = destId('198.18.0.12');

  // Known traffic, split over the two CPUs of the in-memory backend: the metrics must show the sums.
  d.backend.map('svc_stats').update(u32Key(svcId), perCpuStats([
    { conns: 3, inpkts: 20, inbytes: 2_000 },
    { conns: 2, inpkts: 10, inbytes: 1_500, outpkts: 1, outbytes: 60 },
  ]));
  d.backend.map('dest_stats').update(u32Key(rs1), perCpuStats([{ conns: 2, inpkts: 12, inbytes: 1_200 }, { conns: 1, inpkts: 6, inbytes: 900 }]));
  d.backend.map('dest_stats').update(u32Key(rs2), perCpuStats([{ conns: 1, inpkts: 8, inbytes: 800 }, { conns: 1, inpkts: 4, inbytes: 600, outpkts: 1, outbytes: 60 }]));
  const reasons = d.backend.map('reasons');
  const perCpuU64 = (a: number, b: number) => {
    const v = Buffer.alloc(16);
    v.writeBigUInt64LE(BigInt(a), 0);
    v.writeBigUInt64LE(BigInt(b), 8);
    return v;
  };
  reasons.update(u32Key(REASONS.indexOf('pass_no_service')), perCpuU64(7, 4));
  reasons.update(u32Key(REASONS.indexOf('fwd_tx')), perCpuU64(20, 10));

  // Live connections: rs1 one ESTABLISHED and one SYN_RECV; rs2 one ESTABLISHED; one expired entry that must not count.
  const conns = d.backend.map('conns');
  const conn = (sport: number, dest: number, state: number, expires: number) =>
    conns.update(
      FlowKey.encode({ ...FlowKey.zero(), src: ip16('198.18.0.10'), dst: ip16('198.18.0.100'), sport, dport: 80, proto: 6, family: 2 }),
      // dest_gen as the data plane writes it: an entry of another generation belongs to the slot's previous owner.
      Conn.encode({ ...Conn.zero(), dest_id: dest, dest_gen: d.maps.getDest(dest).gen, svc_id: svcId, state, expires_ns: expires }),
    );
  conn(40001, rs1, ConnState.Established, NOW + 1e9);
  conn(40002, rs1, ConnState.SynRecv, NOW + 1e9);
  conn(40003, rs2, ConnState.Established, NOW + 1e9);
  conn(40004, rs2, ConnState.Established, NOW - 1);
  // The listing reads the data plane's per-destination counters, which the per-second upkeep corrects from a walk of
  // the table; these entries were written behind the data plane's back, so one round makes the counters true.
  d.balancer.maintainConnections();
  return d;
}

function ip16(ip: string): Buffer {
  const b = Buffer.alloc(16);
  Buffer.from(ip.split('.').map(Number)).copy(b);
  return b;
}

async function scrape(d: ReturnType<typeof fakeDirector>, token: string | null = null) {
  const headers: Record<string, string> = token ? { authorization: `Bearer ${token}` } : {};
  const res = await d.app.request('/metrics', { headers });
  return { status: res.status, contentType: res.headers.get('content-type'), text: await res.text() };
}

describe('/metrics', () => {
  it('is open (no token) and speaks the Prometheus text format 0.0.4', async () => {
    const r = await scrape(await director());
    expect(r.status).toBe(200);
    expect(r.contentType).toBe('text/plain; version=0.0.4; charset=utf-8');
    expect(() => parse(r.text)).not.toThrow();
  });

  it('names and types every metric the Prometheus way', async () => {
    const { samples, types, helps } = parse((await scrape(await director())).text);
    const names = [...types.keys()];
    expect(names.map((n) => `${n} ${types.get(n)}`)).toMatchInlineSnapshot(`
      [
        "xdpvs_build_info gauge",
        "xdpvs_interface_info gauge",
        "xdpvs_connection_table_size gauge",
        "xdpvs_service_info gauge",
        "xdpvs_service_connections_total counter",
        "xdpvs_service_incoming_packets_total counter",
        "xdpvs_service_outgoing_packets_total counter",
        "xdpvs_service_incoming_bytes_total counter",
        "xdpvs_service_outgoing_bytes_total counter",
        "xdpvs_service_connections_active gauge",
        "xdpvs_service_connections_inactive gauge",
        "xdpvs_service_real_servers gauge",
        "xdpvs_real_server_connections_total counter",
        "xdpvs_real_server_incoming_packets_total counter",
        "xdpvs_real_server_outgoing_packets_total counter",
        "xdpvs_real_server_incoming_bytes_total counter",
        "xdpvs_real_server_outgoing_bytes_total counter",
        "xdpvs_real_server_connections_active gauge",
        "xdpvs_real_server_connections_inactive gauge",
        "xdpvs_real_server_weight gauge",
        "xdpvs_real_server_neighbour_resolved gauge",
        "xdpvs_real_server_health gauge",
        "xdpvs_real_server_effective_weight gauge",
        "xdpvs_datapath_packets_total counter",
      ]
    `);
    for (const n of names) {
      expect(n).toMatch(/^xdpvs_[a-z0-9_]+$/);
      expect(n.endsWith('_total'), n).toBe(types.get(n) === 'counter');
      expect(helps.get(n)?.length, `HELP of ${n}`).toBeGreaterThan(10);
    }
    for (const s of samples) expect(names, s.name).toContain(s.name);
  });

  it('shows the sums of the per-CPU counters for the service and each real server', async () => {
    const m = parse((await scrape(await director())).text);
    const svc = { service: SVC };
    expect(m.value('xdpvs_service_connections_total', svc)).toBe(5);
    expect(m.value('xdpvs_service_incoming_packets_total', svc)).toBe(30);
    expect(m.value('xdpvs_service_outgoing_packets_total', svc)).toBe(1);
    expect(m.value('xdpvs_service_incoming_bytes_total', svc)).toBe(3_500);
    expect(m.value('xdpvs_service_outgoing_bytes_total', svc)).toBe(60);
    expect(m.value('xdpvs_service_real_servers', svc)).toBe(3);
    expect(m.value('xdpvs_service_info', { ...svc, protocol: 'tcp', address: '198.18.0.100', port: '80', family: 'inet', scheduler: 'wrr', flags: '' })).toBe(1);

    const rs = (ip: string) => ({ service: SVC, real_server: `${ip}:80`, method: 'dr' });
    expect(m.value('xdpvs_real_server_connections_total', rs('198.18.0.11'))).toBe(3);
    expect(m.value('xdpvs_real_server_incoming_packets_total', rs('198.18.0.11'))).toBe(18);
    expect(m.value('xdpvs_real_server_incoming_bytes_total', rs('198.18.0.11'))).toBe(2_100);
    expect(m.value('xdpvs_real_server_outgoing_packets_total', rs('198.18.0.11'))).toBe(0);
    expect(m.value('xdpvs_real_server_connections_total', rs('198.18.0.12'))).toBe(2);
    expect(m.value('xdpvs_real_server_outgoing_bytes_total', rs('198.18.0.12'))).toBe(60);
    // A real server with no traffic yet has its series, at zero.
    expect(m.value('xdpvs_real_server_connections_total', rs('198.18.0.13'))).toBe(0);
  });

  it('counts live connections as ipvsadm does (ActiveConn, InActConn), skipping expired entries', async () => {
    const m = parse((await scrape(await director())).text);
    const rs = (ip: string) => ({ service: SVC, real_server: `${ip}:80`, method: 'dr' });
    expect(m.value('xdpvs_real_server_connections_active', rs('198.18.0.11'))).toBe(1);
    expect(m.value('xdpvs_real_server_connections_inactive', rs('198.18.0.11'))).toBe(1);
    expect(m.value('xdpvs_real_server_connections_active', rs('198.18.0.12'))).toBe(1);
    expect(m.value('xdpvs_real_server_connections_inactive', rs('198.18.0.12'))).toBe(0);
    expect(m.value('xdpvs_service_connections_active', { service: SVC })).toBe(2);
    expect(m.value('xdpvs_service_connections_inactive', { service: SVC })).toBe(1);
  });

  it('shows weights and whether each real server\'s MAC is resolved', async () => {
    const m = parse((await scrape(await director())).text);
    const rs = (ip: string) => ({ service: SVC, real_server: `${ip}:80`, method: 'dr' });
    expect(m.value('xdpvs_real_server_weight', rs('198.18.0.11'))).toBe(3);
    expect(m.value('xdpvs_real_server_weight', rs('198.18.0.12'))).toBe(1);
    expect(m.value('xdpvs_real_server_neighbour_resolved', rs('198.18.0.11'))).toBe(1);
    expect(m.value('xdpvs_real_server_neighbour_resolved', rs('198.18.0.13'))).toBe(0);
  });

  it('has one series per data-plane reason', async () => {
    const m = parse((await scrape(await director())).text);
    const series = m.samples.filter((s) => s.name === 'xdpvs_datapath_packets_total');
    expect(series.map((s) => s.labels.reason).sort()).toEqual([...REASONS].sort());
    expect(m.value('xdpvs_datapath_packets_total', { reason: 'pass_no_service' })).toBe(11);
    expect(m.value('xdpvs_datapath_packets_total', { reason: 'fwd_tx' })).toBe(30);
    expect(m.value('xdpvs_datapath_packets_total', { reason: 'drop_no_dest' })).toBe(0);
  });

  it('says what runs: build info, interfaces, connection table size', async () => {
    const m = parse((await scrape(await director())).text);
    expect(m.value('xdpvs_build_info', { version: 'test', node_version: process.version })).toBe(1);
    expect(m.value('xdpvs_interface_info', { interface: 'eth0', ifindex: '7', xdp_mode: 'native' })).toBe(1);
    expect(m.value('xdpvs_connection_table_size', {})).toBe(1024);
  });

  it('reads the maps at each scrape: new values show, removed real servers and services vanish', async () => {
    const d = await director();
    const rs2 = { service: SVC, real_server: '198.18.0.12:80', method: 'dr' };
    expect(parse((await scrape(d)).text).value('xdpvs_real_server_weight', rs2)).toBe(1);
    expect((await d.call('PATCH', rsPath(SVC, '198.18.0.12:80'), { weight: 9 })).status).toBe(200);
    expect(parse((await scrape(d)).text).value('xdpvs_real_server_weight', rs2)).toBe(9);

    expect((await d.call('DELETE', rsPath(SVC, '198.18.0.12:80'))).status).toBe(204);
    let m = parse((await scrape(d)).text);
    expect(m.samples.filter((s) => s.labels.real_server === '198.18.0.12:80')).toEqual([]);
    expect(m.value('xdpvs_service_real_servers', { service: SVC })).toBe(2);

    expect((await d.call('DELETE', svcPath(SVC))).status).toBe(204);
    m = parse((await scrape(d)).text);
    expect(m.samples.filter((s) => s.labels.service !== undefined)).toEqual([]);
    expect(m.samples.some((s) => s.name === 'xdpvs_datapath_packets_total')).toBe(true);
  });

  it('serves concurrent scrapes each from one whole snapshot', async () => {
    const d = await director();
    const texts = await Promise.all(Array.from({ length: 5 }, () => scrape(d).then((r) => r.text)));
    for (const t of texts) expect(t).toBe(texts[0]);
  });

  it('adds the daemon process\'s own metrics only when asked', async () => {
    const { createApp } = await import('../../src/api/app.js');
    const d = await director();
    const app = createApp({ balancer: d.balancer, token: 'x', info: () => ({ version: 'test', interfaces: [] }), processMetrics: true });
    const text = await (await app.request('/metrics')).text();
    expect(text).toMatch(/^xdpvsd_process_resident_memory_bytes \d+/m);
    expect((await scrape(d)).text).not.toMatch(/xdpvsd_process/);
  });

  it('shows health check states as a state set, and the effective weight, for real servers the monitor knows', async () => {
    const zero = { conns: 0, inpkts: 0, outpkts: 0, inbytes: 0, outbytes: 0 };
    const rates = { cps: 0, inpps: 0, outpps: 0, inbps: 0, outbps: 0 };
    const server = (ip: string, health: RealServerView['health']): RealServerView => ({
      id: `${ip}:80`,
      address: ip,
      port: 80,
      method: 'dr',
      weight: 2,
      activeConns: 0,
      inactiveConns: 0,
      neighbour: { resolved: true, mac: '02:00:00:00:00:11', interface: 'eth0' },
      stats: zero,
      rates,
      ...(health ? { health } : {}),
    });
    const health = (state: 'up' | 'down' | 'unchecked', effectiveWeight: number) => ({
      state,
      since: null,
      lastError: null,
      checker: null,
      listed: true,
      effectiveWeight,
    });
    const svc: ServiceView = {
      id: SVC,
      protocol: 'tcp',
      address: '198.18.0.100',
      port: 80,
      family: 'inet',
      scheduler: 'wrr',
      flags: [],
      stats: zero,
      rates,
      servers: [server('198.18.0.11', health('up', 2)), server('198.18.0.12', health('down', 0)), server('198.18.0.13', undefined)],
    };
    const metrics = new Metrics({ source: { listServices: () => [svc], reasons: () => ({}), connTableSize: 8 }, info: () => ({ version: 't', interfaces: [] }) });
    const m = parse(await metrics.scrape());
    const rs = (ip: string, state?: string) => ({ service: SVC, real_server: `${ip}:80`, method: 'dr', ...(state ? { state } : {}) });
    expect(['up', 'down', 'unchecked'].map((st) => m.value('xdpvs_real_server_health', rs('198.18.0.11', st)))).toEqual([1, 0, 0]);
    expect(['up', 'down', 'unchecked'].map((st) => m.value('xdpvs_real_server_health', rs('198.18.0.12', st)))).toEqual([0, 1, 0]);
    expect(m.value('xdpvs_real_server_effective_weight', rs('198.18.0.11'))).toBe(2);
    expect(m.value('xdpvs_real_server_effective_weight', rs('198.18.0.12'))).toBe(0);
    expect(m.value('xdpvs_real_server_weight', rs('198.18.0.12'))).toBe(2);
    // Without a health monitor's word there is no health series at all (not a made-up "up").
    expect(m.samples.filter((x) => x.labels.real_server === '198.18.0.13:80' && x.name.includes('health'))).toEqual([]);
    expect(m.value('xdpvs_real_server_effective_weight', rs('198.18.0.13'))).toBeUndefined();
  });
});
