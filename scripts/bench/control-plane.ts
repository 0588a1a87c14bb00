// Section 3: control plane to data plane. API requests through the real Hono app (app.request(), in process) over a
// Balancer on real kernel maps (loadObject, own pin directory), with a neighbour table instead of ARP; the pieces
// of a table push timed on the same maps; the daemon's memory with 1,000 services x 10 real servers (child process).

import { spawn } from 'node:child_process';
import { join } from 'node:path';

import { createApp } from '../../src/api/app.js';
import { Balancer, type PersistedState } from '../../src/lb/balancer.js';
import { buildMaglevTable } from '../../src/lb/maglev.js';
import type { Family } from '../../src/lb/address.js';
import type { NeighbourResolver, NextHop } from '../../src/lb/neighbour.js';
import { loadObject, removePins, type LoadedObject } from '../../src/loader/program.js';
import { LbMaps, directorMapShapes } from '../../src/maps/lb-maps.js';
import { RingTables } from '../../src/lb/ring-tables.js';
import { Conn, ConnState, FlowKey, IPPROTO_TCP, AF_INET, type ServiceKeyV } from '../../src/maps/structs.js';
import { PACKAGE_ROOT } from '../../src/paths.js';
import { ensureBpfObject, ip16 } from '../../src/testing/harness.js';
import { registerEmergencyCleanup, terminatePidSync } from '../lab/netns.js';
import { removeBenchPins } from './dataplane-netns.js';
import { SectionError, atLeast, atMost, row, type Row, type Section } from './report.js';
import { median, nowNs, sig, sigSummary, summarize, type Summary } from './stats.js';

export interface ControlPlaneOptions {
  /** add/change/remove cycles per service size (at most; see budgetS). */
  iterations: number;
  /** Seconds of add/change/remove cycles per service size, after the first 10 cycles: bounds the run on a busy machine. */
  budgetS: number;
  /** Seconds of back-to-back weight changes. */
  sustainSeconds: number;
  /** Connections put in the table for the "busy table" row. */
  busyConns: number;
  rssServices: number;
  rssServersPerService: number;
}

export const CONTROL_DEFAULTS: ControlPlaneOptions = {
  iterations: 40,
  budgetS: 20,
  sustainSeconds: 5,
  busyConns: 50_000,
  rssServices: 1000,
  rssServersPerService: 10,
};

export const TARGET_ONE_SERVER_PUSH_MS = 1;
export const TARGET_FULL_TABLE_PUSH_MS = 20;
export const TARGET_API_CHANGES_PER_S = 2000;
export const TARGET_API_P99_MS = 10;

const TOKEN = 'bench-token';
const IPVS_TIMEOUTS = { tcp_timeout: 900, tcpfin_timeout: 120, udp_timeout: 300, syn_timeout: 60, close_timeout: 10 };

const METHODS: Record<string, string> = {
  api:
    'app.request() on the real Hono app (auth, zod validation, JSON) in this process, over a Balancer on real kernel ' +
    'maps (the director object loaded with its own bpffs pin directory); next hops from a table, not ARP. Timed from ' +
    'the call to the response body read; the balancer answers only after its map writes, and after each request the ' +
    'service record is read back to check that it switched tables (maps updated). One request at a time. Services ' +
    'use mh, so every change builds and writes a 65,537-slot table. Baseline: GET /v1/info through the same app (the ' +
    'API\'s fixed cost).',
  push:
    'RingTables.publish, as Balancer.publish calls it, on the same kernel maps for a service of its own: the slots ' +
    'that differ from what the idle table of the service holds, packed into one bpf_map_update_batch, then the ' +
    'service record switched to that table (one hash update); between pushes the bench waits until the grace period ' +
    'after the switch has ended and the table packets left has caught up in the background (RingTables.settled; ' +
    'the wait is in the JSON as settleMs), as between an operator\'s changes (back-to-back changes are the API and ' +
    'sustained rows). Maglev build excluded (its own row).',
  part: 'one piece of a push, timed alone on the same maps (median of repeated calls).',
  sustain:
    'back-to-back PATCH weight requests (1 in flight, weights alternating) through app.request() for the stated time; ' +
    'changes/s = completed / elapsed; p99 over all of them. Baseline: GET /v1/info requests/s measured the same way.',
  rss:
    'a child node process (--expose-gc) loads the director object, builds the Balancer and the app, forces GC and ' +
    'reads process.memoryUsage().rss (baseline); then restores a state of S services x R real servers (rr) the way ' +
    'xdpvsd does at start, lists them once through the API (ipvsadm -Ln), forces GC and reads rss again. The row is ' +
    'the difference. Kernel map memory is not in RSS.',
};

/** Next hops from a table: every real server is "resolved" on the loopback, as the bench measures the control plane, not ARP. */
class TableResolver implements NeighbourResolver {
  resolves = 0;
  async resolve(address: string, _family: Family): Promise<NextHop> {
    this.resolves++;
    return this.hop(address);
  }
  async lookupAll(targets: { address: string; family: Family }[]): Promise<Map<string, NextHop>> {
    return new Map(targets.map((t) => [t.address, this.hop(t.address)]));
  }
  async release(): Promise<void> {}
  private hop(address: string): NextHop {
    let h = 0;
    for (const ch of address) h = (h * 31 + ch.charCodeAt(0)) >>> 0;
    const mac = Buffer.from([0x02, 0x00, (h >>> 24) & 255, (h >>> 16) & 255, (h >>> 8) & 255, h & 255]);
    return { ifindex: 1, ifname: 'lo', srcMac: Buffer.from([0x02, 0, 0, 0, 0xd1, 0]), mac };
  }
}

interface Env {
  obj: LoadedObject;
  maps: LbMaps;
  balancer: Balancer;
  app: ReturnType<typeof createApp>;
}

function rsAddress(svcIdx: number, i: number): string {
  // 198.19.0.0/16: services' real servers, 4,096 per service index.
  const n = svcIdx * 4096 + i;
  return `198.19.${(n >> 8) & 255}.${n & 255}`;
}

interface SvcPlan {
  name: string;
  vip: string;
  scheduler: string;
  n: number;
  idx: number;
}

const PLANS: SvcPlan[] = [
  { name: 'mh10', vip: '198.18.2.10', scheduler: 'mh', n: 10, idx: 0 },
  { name: 'mh100', vip: '198.18.2.11', scheduler: 'mh', n: 100, idx: 1 },
  { name: 'mh1000', vip: '198.18.2.12', scheduler: 'mh', n: 1000, idx: 2 },
  { name: 'wrr10', vip: '198.18.2.13', scheduler: 'wrr', n: 10, idx: 3 },
];

function svcId(p: SvcPlan): string {
  return `tcp:${p.vip}:80`;
}

export function stateOf(plans: { vip: string; scheduler: string; n: number; idx: number }[]): PersistedState {
  let destId = 0;
  let gen = 1;
  return {
    version: 1,
    nextGen: 1 + plans.reduce((a, p) => a + p.n, 0),
    quarantine: [],
    services: plans.map((p, id) => ({
      protocol: 'tcp' as const,
      address: p.vip,
      port: 80,
      scheduler: p.scheduler,
      flags: [],
      id,
      servers: Array.from({ length: p.n }, (_, i) => ({
        address: rsAddress(p.idx, i),
        port: 80,
        method: 'dr' as const,
        weight: 1,
        destId: destId++,
        gen: gen++,
      })),
    })),
  };
}

function setUp(pinDir: string, state: PersistedState): Promise<Env> {
  const expectShapes = directorMapShapes();
  removePins(pinDir);
  const obj = loadObject({ objectPath: ensureBpfObject('xdpvs_lb'), pinDir, programName: 'xdpvs_lb', expectShapes });
  const maps = new LbMaps(obj.backend);
  maps.setConfig(IPVS_TIMEOUTS);
  const balancer = new Balancer(maps, new TableResolver());
  const app = createApp({ balancer, token: TOKEN, info: () => ({ version: 'bench', interfaces: [] }) });
  return balancer.restore(state).then(() => ({ obj, maps, balancer, app }));
}

async function request(app: Env['app'], method: string, path: string, body?: unknown): Promise<number> {
  const t = nowNs();
  const res = await app.request(path, {
    method,
    headers: { authorization: `Bearer ${TOKEN}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  const dt = (nowNs() - t) / 1e6;
  if (!res.ok) throw new Error(`${method} ${path}: HTTP ${res.status}: ${text.slice(0, 300)}`);
  return dt;
}

function serviceKey(vip: string): ServiceKeyV {
  return { addr: ip16(vip), port: 80, proto: IPPROTO_TCP, family: AF_INET };
}

/** Runs fn, then checks the service record switched to its other table: the maps were written before the response. */
async function timedChange(env: Env, vip: string, fn: () => Promise<number>): Promise<number> {
  const before = env.maps.getService(serviceKey(vip));
  const ms = await fn();
  const after = env.maps.getService(serviceKey(vip));
  if (!before || !after || after.ring_slot === before.ring_slot) {
    throw new Error(`service ${vip}: the service record did not switch tables by the time the API answered`);
  }
  return ms;
}

function p50p99(s: Summary): string {
  return `${fmtMs(s.p50)} / ${fmtMs(s.p99)} ms`;
}

function fmtMs(x: number): string {
  return x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2);
}

async function apiFloor(app: Env['app'], n: number): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push(await request(app, 'GET', '/v1/info'));
  return out;
}

export async function runControlPlane(opts: ControlPlaneOptions, log: (msg: string) => void): Promise<Section> {
  const t0 = nowNs();
  const pinDir = `/sys/fs/bpf/xdpvs_bench_cp_${process.pid}`;
  const unregister = registerEmergencyCleanup(() => removePins(pinDir));
  let env: Env | undefined;
  const rows: Row[] = [];
  try {
    log('control plane: restoring services mh10, mh100, mh1000, wrr10');
    env = await setUp(pinDir, stateOf(PLANS));
    const { app, maps } = env;

    await apiFloor(app, 50);
    const floor = summarize(await apiFloor(app, 200));
    const floorBase = { label: 'GET /v1/info p50', value: floor.p50, unit: 'ms' };
    rows.push(row({ id: 'api-floor', label: 'API floor: GET /v1/info', value: floor.p50, unit: 'ms', display: p50p99(floor), method: 'api', details: { ms: sigSummary(floor) } }));

    // ---- add / change weight / remove, per service size.
    const perOp = new Map<string, Summary>();
    for (const plan of PLANS.filter((p) => p.scheduler === 'mh')) {
      const iters = plan.n === 100 ? Math.max(10, opts.iterations >> 1) : opts.iterations;
      const budget = (plan.n === 100 ? opts.budgetS / 2 : opts.budgetS) * 1e9;
      log(`control plane: up to ${iters} x (add, change weight, remove) on ${plan.n} real servers (mh), ${budget / 1e9} s at most`);
      const add: number[] = [];
      const weight: number[] = [];
      const del: number[] = [];
      const base = `/v1/services/${svcId(plan)}/servers`;
      // Ten cycles first, not counted: the JIT compiles the paths a change takes, as in a daemon that has run a while.
      for (let k = 0; k < 10; k++) {
        const addr = rsAddress(plan.idx, 3000 + k);
        await request(app, 'POST', base, { address: addr, port: 80, method: 'dr', weight: 1 });
        await request(app, 'PATCH', `${base}/${addr}:80`, { weight: 2 });
        await request(app, 'DELETE', `${base}/${addr}:80`);
      }
      const started = nowNs();
      for (let k = 0; k < iters && (k < 10 || nowNs() - started < budget); k++) {
        const addr = rsAddress(plan.idx, 2000 + k);
        add.push(await timedChange(env, plan.vip, () => request(app, 'POST', base, { address: addr, port: 80, method: 'dr', weight: 1 })));
        weight.push(await timedChange(env, plan.vip, () => request(app, 'PATCH', `${base}/${addr}:80`, { weight: 2 + (k % 5) })));
        del.push(await timedChange(env, plan.vip, () => request(app, 'DELETE', `${base}/${addr}:80`)));
      }
      for (const [op, samples, label] of [
        ['add', add, 'add real server'],
        ['weight', weight, 'change weight'],
        ['remove', del, 'remove real server'],
      ] as const) {
        const s = summarize(samples);
        perOp.set(`${op}-${plan.n}`, s);
        rows.push(row({
          id: `api-${op}-n${plan.n}`,
          label: `${label}, N=${plan.n} (mh), p50 / p99`,
          value: s.p50,
          unit: 'ms',
          display: p50p99(s),
          baseline: floorBase,
          targets: [atMost(s.p99, TARGET_API_P99_MS, `p99 ≤ ${TARGET_API_P99_MS} ms`)],
          method: 'api',
          details: { ms: sigSummary(s), scheduler: 'mh' },
        }));
      }
    }

    // ---- a push as Balancer.publish does it (RingTables), for a service of our own on the same maps.
    log('control plane: table pushes (diff writes into a table packets do not read, then the record switch)');
    const mh100 = PLANS.find((p) => p.n === 100)!;
    const backends = Array.from({ length: 100 }, (_, i) => ({ key: `${rsAddress(mh100.idx, i)}:80`, weight: 1 }));
    const before = Uint32Array.from(buildMaglevTable(backends));
    const changedBackends = backends.map((b, i) => (i === 37 ? { ...b, weight: 2 } : b));
    const after = Uint32Array.from(buildMaglevTable(changedBackends));
    let changed = 0;
    for (let i = 0; i < after.length; i++) if (after[i] !== before[i]) changed++;
    // Every slot different from the table before it: what a push costs when nothing of the old table stays.
    const shifted = (k: number) => before.map((d) => (d + k) % 100);

    const buildMs: number[] = [];
    for (let i = 0; i < 10; i++) {
      const t = nowNs();
      buildMaglevTable(changedBackends);
      buildMs.push((nowNs() - t) / 1e6);
    }
    const svcKey = serviceKey('198.18.2.250');
    const fakeId = maps.maxServices - 1;
    const rings = new RingTables(maps);
    const switchTo = (slot: number, len: number) => maps.putService(svcKey, { id: fakeId, sched: 2, flags: 0, ring_slot: slot, ring_len: len });
    // An operator's changes are not back to back: the grace period after each switch ends, and the table packets
    // left catches up, before the next (back-to-back changes are the API rows).
    const settleMs: number[] = [];
    const settle = async () => {
      const t = nowNs();
      await rings.settled(fakeId);
      settleMs.push((nowNs() - t) / 1e6);
    };
    const pushTimed = async (table: Uint32Array): Promise<{ ms: number; slots: number }> => {
      const t = nowNs();
      await rings.publish(fakeId, table, switchTo);
      return { ms: (nowNs() - t) / 1e6, slots: rings.lastSlotsWritten };
    };
    // Warm up: both tables of the service hold `before` (full writes, and the placements of the two inner maps).
    await pushTimed(before);
    await settle();
    await pushTimed(before);
    await settle();
    const oneMs: number[] = [];
    const oneSlots: number[] = [];
    for (let i = 0; i < 20; i++) {
      // Alternating after/before: each push is the one-server change (weight 1 <-> 2) against the table packets read.
      const r = await pushTimed(i % 2 === 0 ? after : before);
      if (i >= 1) {
        oneMs.push(r.ms);
        oneSlots.push(r.slots);
      }
      await settle();
    }
    const fullMs: number[] = [];
    const fullSlots: number[] = [];
    for (let i = 0; i < 10; i++) {
      const r = await pushTimed(shifted(i + 1));
      if (i >= 2) {
        fullMs.push(r.ms);
        fullSlots.push(r.slots);
      }
      await settle();
    }
    // The cost placing a new inner map into `rings` has (a grace period in the kernel): paid only when a service is
    // created, outgrows its table, or changes faster than grace periods end.
    const placeMs: number[] = [];
    const spareSlot = maps.maxServices * 2 - 1;
    for (let i = 0; i < 5; i++) {
      const inner = env.obj.backend.createInnerArray('rings', before.length);
      try {
        const t = nowNs();
        await env.obj.backend.placeInners('rings', [{ index: spareSlot, inner }]);
        placeMs.push((nowNs() - t) / 1e6);
        await env.obj.backend.placeInners('rings', [{ index: spareSlot, inner: null }]);
      } finally {
        inner.close();
      }
    }
    maps.deleteService(svcKey);
    await rings.forget(fakeId);
    rings.close();

    const one = summarize(oneMs);
    const oneServer = perOp.get('weight-100')!;
    const slotsOne = Math.max(...oneSlots);
    rows.push(row({
      id: 'push-one-server-n100',
      label: 'push one-server change, N=100 (maps only)',
      value: one.p50,
      unit: 'ms',
      display: p50p99(one),
      baseline: { label: 'Maglev build N=100', value: median(buildMs), unit: 'ms' },
      targets: [atMost(one.p50, TARGET_ONE_SERVER_PUSH_MS, `≤ ${TARGET_ONE_SERVER_PUSH_MS} ms`)],
      method: 'push',
      details: { ms: sigSummary(one), apiWeightChangeN100Ms: sigSummary(oneServer), settleMs: sigSummary(summarize(settleMs)) },
    }));
    rows.push(row({
      id: 'slots-written-one-server-n100',
      label: 'slots written for a one-server change, N=100',
      value: slotsOne,
      unit: 'slots',
      baseline: { label: 'slots that changed', value: changed, unit: 'slots' },
      targets: [{ text: 'only changed slots', met: oneSlots.every((n) => n === changed) }],
      method: 'push',
      details: { slotsPerPush: oneSlots },
    }));
    const full = summarize(fullMs);
    rows.push(row({
      id: 'push-full-table',
      label: 'push a full table (65,537 slots all changed)',
      value: full.p50,
      unit: 'ms',
      display: p50p99(full),
      baseline: { label: 'Maglev build N=100', value: median(buildMs), unit: 'ms' },
      targets: [atMost(full.p99, TARGET_FULL_TABLE_PUSH_MS, `p99 ≤ ${TARGET_FULL_TABLE_PUSH_MS} ms`)],
      method: 'push',
      details: { ms: sigSummary(full), slots: Math.max(...fullSlots) },
    }));
    rows.push(row({
      id: 'part-place-inner',
      label: '  part: place a new table in `rings` (outer update)',
      value: median(placeMs),
      unit: 'ms',
      method: 'part',
      note: 'an update of a map-in-map waits for an RCU grace period in the kernel; a steady service never pays it (its tables stay in place)',
      details: { ms: sigSummary(summarize(placeMs)) },
    }));

    // ---- sustained weight changes.
    for (const plan of [PLANS[0], PLANS[3]]) {
      log(`control plane: ${opts.sustainSeconds} s of back-to-back weight changes on ${plan.n} real servers (${plan.scheduler})`);
      const path = `/v1/services/${svcId(plan)}/servers/${rsAddress(plan.idx, 0)}:80`;
      const lat: number[] = [];
      const start = nowNs();
      const end = start + opts.sustainSeconds * 1e9;
      let k = 0;
      while (nowNs() < end) lat.push(await request(app, 'PATCH', path, { weight: 1 + (k++ % 2) }));
      const elapsed = (nowNs() - start) / 1e9;
      const rate = lat.length / elapsed;
      const s = summarize(lat);
      const gets: number[] = [];
      const gStart = nowNs();
      while (nowNs() < gStart + 1e9) gets.push(await request(app, 'GET', '/v1/info'));
      const getRate = gets.length / ((nowNs() - gStart) / 1e9);
      const isMh = plan.scheduler === 'mh';
      rows.push(row({
        id: `sustain-weight-${plan.name}`,
        label: `sustained weight changes, N=${plan.n} (${plan.scheduler})`,
        value: rate,
        unit: '/s',
        display: `${rate.toFixed(rate < 100 ? 1 : 0)}/s, p99 ${fmtMs(s.p99)} ms`,
        baseline: { label: 'GET /v1/info', value: getRate, unit: '/s' },
        targets: isMh
          ? [atLeast(rate, TARGET_API_CHANGES_PER_S, `≥ ${TARGET_API_CHANGES_PER_S}/s`), atMost(s.p99, TARGET_API_P99_MS, `p99 ≤ ${TARGET_API_P99_MS} ms`)]
          : [],
        method: 'sustain',
        details: { changes: lat.length, seconds: sig(elapsed), ms: sigSummary(s), scheduler: plan.scheduler },
        ...(isMh ? {} : { note: 'wrr tables hold 10 entries: what is left is the fixed cost of a change (API, validation, one batch write, one record update)' }),
      }));
    }

    // ---- a busy connection table: the responses of write requests must not pay for its size.
    if (opts.busyConns > 0) {
      log(`control plane: weight changes with ${opts.busyConns} connections in the table`);
      const plan = PLANS[0];
      const keys: Buffer[] = [];
      const values: Buffer[] = [];
      const nowKernel = Number(process.hrtime.bigint());
      for (let i = 0; i < opts.busyConns; i++) {
        const src = ip16(`198.19.${128 + ((i >> 8) & 127)}.${i & 255}`);
        keys.push(FlowKey.encode({ src, dst: ip16(plan.vip), sport: 1024 + (i >>> 15), dport: 80, proto: IPPROTO_TCP, family: AF_INET }));
        values.push(Conn.encode({ dest_id: i % plan.n, dest_gen: 1 + (i % plan.n), svc_id: 0, state: ConnState.Established, last_ns: nowKernel, expires_ns: nowKernel + 900e9 }));
      }
      maps.conns.updateBatch(Buffer.concat(keys), Buffer.concat(values));
      const path = `/v1/services/${svcId(plan)}/servers/${rsAddress(plan.idx, 0)}:80`;
      const busy: number[] = [];
      for (let k = 0; k < 5; k++) busy.push(await request(app, 'PATCH', path, { weight: 1 + (k % 2) }));
      const s = summarize(busy);
      const empty = perOp.get('weight-10')!;
      rows.push(row({
        id: 'api-weight-busy-conns',
        label: `change weight, N=10, ${opts.busyConns.toLocaleString('en-US')} conns in table`,
        value: s.p50,
        unit: 'ms',
        baseline: { label: 'empty table p50', value: empty.p50, unit: 'ms' },
        method: 'api',
        note: 'responses read each real server\'s connection counters (two lookups per server), not the connection table: the table\'s size should not show',
        details: { ms: sigSummary(s), conns: opts.busyConns },
      }));
    }
  } catch (e) {
    throw new SectionError(e instanceof Error ? e.message : String(e), rows);
  } finally {
    env?.obj.close();
    removePins(pinDir);
    unregister();
  }

  // ---- RSS in a child process.
  if (opts.rssServices > 0) {
    log(`control plane: RSS of a daemon-like process with ${opts.rssServices} services x ${opts.rssServersPerService} real servers (child process)`);
    let r: RssResult;
    try {
      r = await measureRss(opts.rssServices, opts.rssServersPerService);
    } catch (e) {
      throw new SectionError(e instanceof Error ? e.message : String(e), rows);
    }
    rows.push(row({
      id: 'restore-1000x10',
      label: `daemon start: restore ${opts.rssServices} services x ${opts.rssServersPerService} RS (rr)`,
      value: r.restoreMs / 1000,
      unit: 's',
      baseline: { label: 'per service', value: r.restoreMs / opts.rssServices, unit: 'ms' },
      ratio: null,
      method: 'rss',
      note: 'Balancer.restore publishes every service at once: new inner maps are placed in batches that share their RCU grace periods',
    }));
    const deltaMb = (r.rssAfter - r.rssBefore) / 2 ** 20;
    rows.push(row({
      id: 'rss-1000x10',
      label: `daemon RSS growth, ${opts.rssServices} services x ${opts.rssServersPerService} RS (rr)`,
      value: deltaMb,
      unit: 'MiB',
      baseline: { label: 'RSS before', value: r.rssBefore / 2 ** 20, unit: 'MiB' },
      ratio: r.rssAfter / r.rssBefore,
      method: 'rss',
      note: `ratio is RSS after / before (${(r.rssAfter / 2 ** 20).toFixed(0)} MiB after); restoring the state took ${(r.restoreMs / 1000).toFixed(1)} s, listing it once through the API ${r.listMs.toFixed(0)} ms`,
      details: { ...r, scheduler: 'rr' },
    }));
  }

  return {
    id: 'control-plane',
    title: '3. Control plane to data plane (API -> kernel maps)',
    rows,
    methods: METHODS,
    durationS: (nowNs() - t0) / 1e9,
    context: { iterations: opts.iterations, sustainSeconds: opts.sustainSeconds, resolver: 'table (no ARP)' },
  };
}

export interface RssResult {
  rssBefore: number;
  rssAfter: number;
  heapUsedBefore: number;
  heapUsedAfter: number;
  restoreMs: number;
  listMs: number;
}

function measureRss(services: number, servers: number): Promise<RssResult> {
  const script = join(PACKAGE_ROOT, 'dist/scripts/bench/rss-child.js');
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--expose-gc', script, String(services), String(servers)], { stdio: ['ignore', 'pipe', 'pipe'] });
    const unregister = registerEmergencyCleanup(() => {
      if (child.exitCode === null) terminatePidSync(child.pid, 3_000);
      if (child.pid !== undefined) removeBenchPins(child.pid);
    });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (err = (err + d).slice(-4000)));
    const timer = setTimeout(() => child.kill('SIGTERM'), 180_000);
    child.once('error', (e) => {
      clearTimeout(timer);
      unregister();
      reject(e);
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      unregister();
      const line = out.trim().split('\n').at(-1) ?? '';
      if (code !== 0) return reject(new Error(`RSS child exited with ${code ?? signal}: ${err.trim() || out.trim()}`));
      try {
        resolve(JSON.parse(line) as RssResult);
      } catch {
        reject(new Error(`RSS child printed no result: ${out.trim()} ${err.trim()}`));
      }
    });
  });
}
