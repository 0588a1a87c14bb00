// Child process of the control-plane section: the RSS a daemon-like process grows by when it holds S services x R
// real servers. Run as `node --expose-gc rss-child.js S R`; prints one JSON line (RssResult) and exits.

import { createApp } from '../../src/api/app.js';
import { Balancer } from '../../src/lb/balancer.js';
import type { NeighbourResolver, NextHop } from '../../src/lb/neighbour.js';
import { loadObject, removePins } from '../../src/loader/program.js';
import { LB_MAPS, LbMaps } from '../../src/maps/lb-maps.js';
import { ensureBpfObject } from '../../src/testing/harness.js';
import type { RssResult } from './control-plane.js';

const TOKEN = 'bench-token';

const resolver: NeighbourResolver = {
  async resolve(address: string): Promise<NextHop> {
    return hop(address);
  },
  async lookupAll(targets) {
    return new Map(targets.map((t) => [t.address, hop(t.address)]));
  },
  async release() {},
};

function hop(address: string): NextHop {
  const parts = address.split('.').map(Number);
  return { ifindex: 1, ifname: 'lo', srcMac: Buffer.from([2, 0, 0, 0, 0xd1, 0]), mac: Buffer.from([2, 0, ...parts]) };
}

/** GET /v1/services (what `xdpvsadm -Ln` asks), returning only the count so the listing itself is garbage by the next GC. */
async function listCount(app: ReturnType<typeof createApp>): Promise<number> {
  const res = await app.request('/v1/services');
  if (!res.ok) throw new Error(`GET /v1/services: HTTP ${res.status}`);
  return ((await res.json()) as { services: unknown[] }).services.length;
}

function gc(): void {
  const g = (globalThis as { gc?: () => void }).gc;
  if (!g) throw new Error('rss-child: run with --expose-gc');
  for (let i = 0; i < 3; i++) g();
}

async function main(): Promise<void> {
  const services = Number(process.argv[2]);
  const perService = Number(process.argv[3]);
  if (!Number.isInteger(services) || !Number.isInteger(perService) || services < 1 || perService < 1) {
    throw new Error('usage: rss-child.js SERVICES SERVERS_PER_SERVICE');
  }
  const pinDir = `/sys/fs/bpf/xdpvs_bench_rss_${process.pid}`;
  const cleanup = (): void => removePins(pinDir);
  process.once('SIGTERM', () => {
    cleanup();
    process.exit(143);
  });
  process.once('SIGINT', () => {
    cleanup();
    process.exit(130);
  });
  removePins(pinDir);
  const expectShapes = Object.fromEntries(Object.values(LB_MAPS).map((m) => [m.name, { keySize: m.keySize, valueSize: m.valueSize }]));
  const obj = loadObject({ objectPath: ensureBpfObject('xdpvs_lb'), pinDir, programName: 'xdpvs_lb', expectShapes });
  try {
    const maps = new LbMaps(obj.backend);
    const balancer = new Balancer(maps, resolver);
    const app = createApp({ balancer, token: TOKEN, info: () => ({ version: 'bench', interfaces: [] }) });
    // Warm the app's code paths before the baseline, so the delta is state, not first-use code.
    await (await app.request('/v1/services')).text();
    gc();
    const before = process.memoryUsage();

    let n = 0;
    const state = {
      version: 1 as const,
      nextGen: 1 + services * perService,
      quarantine: [],
      services: Array.from({ length: services }, (_, s) => ({
        protocol: 'tcp' as const,
        // 198.18.128.0/17 for VIPs, 198.19.0.0/16 for real servers: lab ranges.
        address: `198.18.${128 + (s >> 8)}.${s & 255}`,
        port: 80,
        scheduler: 'rr',
        flags: [],
        id: s,
        servers: Array.from({ length: perService }, () => {
          const i = n++;
          return { address: `198.19.${(i >> 8) & 255}.${i & 255}`, port: 80, method: 'dr' as const, weight: 1, destId: i, gen: i + 1 };
        }),
      })),
    };
    let t = Date.now();
    await balancer.restore(state);
    const restoreMs = Date.now() - t;
    t = Date.now();
    const listed = await listCount(app);
    const listMs = Date.now() - t;
    if (listed !== services) throw new Error(`the API listed ${listed} services, expected ${services}`);
    gc();
    const after = process.memoryUsage();
    const out: RssResult = {
      rssBefore: before.rss,
      rssAfter: after.rss,
      heapUsedBefore: before.heapUsed,
      heapUsedAfter: after.heapUsed,
      restoreMs,
      listMs,
    };
    process.stdout.write(`${JSON.stringify(out)}\n`);
  } finally {
    obj.close();
    cleanup();
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`rss-child: ${e instanceof Error ? e.stack ?? e.message : String(e)}\n`);
  removePins(`/sys/fs/bpf/xdpvs_bench_rss_${process.pid}`);
  process.exit(1);
});
