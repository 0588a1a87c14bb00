// End to end: connection sync between two real xdpvsd daemons (docs/sync.md). Directors A (the lab's) and B (a
// second one on the same segment) run the same wlc service, with their real servers added in opposite orders so that
// their destination ids differ, and sync to each other over UDP with a shared key. A long-lived HTTP connection made
// through A must be in B's table (ESTABLISHED, the same real server, counted in B's ActiveConn), and must survive
// the VIP moving to B: B owns the VIP then, so a mid-flow segment B did not know would get a RST from B's kernel.
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDirector, type Director } from '../../scripts/lab/director.js';
import {
  addNetns,
  addVethPair,
  delNetns,
  delNetnsSync,
  ethtoolFeatures,
  ip,
  nsRun,
  recordLab,
  registerEmergencyCleanup,
  repoRoot,
  sysctl,
  waitFor,
} from '../../scripts/lab/netns.js';
import type { DrLab, LabHost } from '../../scripts/lab/topology.js';
import type { Reason } from '../../src/maps/reasons.js';
import type { SyncStatus } from '../../src/sync/conn-sync.js';
import { getMany, parseLn, requireBuilt, skipUnlessRoot, startLabEnv, streamingGet, type LabEnv } from './helpers.js';

const skip = skipUnlessRoot('e2e connection sync');

const SYNC_PORT = 8848;
const HOLD_MS = 8_000;
/** Director B: next to A (198.18.0.2) on the lab's segment. */
const B_ADDR = { ip4: '198.18.0.3', ip6: 'fd00::3', mac: '02:18:00:00:00:03' };

interface ConnectionJson {
  protocol: string;
  state: string;
  client: { address: string; port: number };
  virtual: { address: string; port: number };
  destination: { address: string; port: number };
}

describe.skipIf(skip)('connection sync between two xdpvsd', () => {
  let env: LabEnv | undefined;
  let lab: DrLab;
  let hostB: LabHost;
  let a: Director | undefined;
  let b: Director | undefined;
  let keyDir: string | undefined;
  let unregisterB: (() => void) | undefined;

  async function api<T>(host: LabHost, d: Director, path: string): Promise<T> {
    const r = await nsRun(host.ns, 'curl', ['-sS', '--max-time', '5', `${d.server}${path}`]);
    return JSON.parse(r.stdout) as T;
  }

  beforeAll(async () => {
    requireBuilt(['dist/src/daemon/main.js', 'dist/src/cli/main.js', 'dist/scripts/lab/http-server.js', 'build/bpf/xdp_pass.bpf.o']);
    env = await startLabEnv({ realServers: 2, daemon: false });
    lab = env.lab;
    hostB = { name: 'director', ns: `xv${lab.id}-dir2`, dev: 'eth0', ...B_ADDR, switchPort: 'v-dir2' };
    recordLab(lab.id, { namespaces: [hostB.ns] });
    unregisterB = registerEmergencyCleanup(() => delNetnsSync(hostB.ns));
    // B's namespace as the lab builds each host (scripts/lab/topology.ts), without the VIP: A owns it first.
    await addNetns(hostB.ns);
    for (const scope of ['all', 'default']) {
      await sysctl(hostB.ns, `net.ipv6.conf.${scope}.accept_dad`, 0);
      await sysctl(hostB.ns, `net.ipv6.conf.${scope}.accept_ra`, 0);
    }
    await addVethPair({ ns: lab.switchNs, name: hostB.switchPort }, { ns: hostB.ns, name: hostB.dev });
    await ip(lab.switchNs, ['link', 'set', 'dev', hostB.switchPort, 'master', lab.bridge]);
    await ip(lab.switchNs, ['link', 'set', 'dev', hostB.switchPort, 'up']);
    await ip(hostB.ns, ['link', 'set', 'dev', hostB.dev, 'address', hostB.mac]);
    await ip(hostB.ns, ['addr', 'add', `${hostB.ip4}/24`, 'dev', hostB.dev]);
    await ip(hostB.ns, ['-6', 'addr', 'add', `${hostB.ip6}/64`, 'dev', hostB.dev, 'nodad']);
    await ip(hostB.ns, ['link', 'set', 'dev', hostB.dev, 'up']);
    await ip(hostB.ns, ['link', 'set', 'dev', 'lo', 'up']);
    await ethtoolFeatures(hostB.ns, hostB.dev, { tx: 'off' });
    await ip(lab.switchNs, ['link', 'set', 'dev', hostB.switchPort, 'xdpdrv', 'obj', join(repoRoot(), 'build/bpf/xdp_pass.bpf.o'), 'sec', 'xdp']);

    keyDir = mkdtempSync(join(tmpdir(), 'xdpvs-sync-e2e-'));
    const keyFile = join(keyDir, 'sync.key');
    writeFileSync(keyFile, randomBytes(32).toString('hex') + '\n', { mode: 0o600 });
    chmodSync(keyFile, 0o600);
    const syncArgs = (self: string, peer: string) => ['--sync-listen', `${self}:${SYNC_PORT}`, '--sync-peer', `${peer}:${SYNC_PORT}`, '--sync-key', keyFile];
    a = await startDirector(lab, { extraArgs: syncArgs(lab.director.ip4, hostB.ip4) });
    b = await startDirector({ id: lab.id, director: hostB }, { extraArgs: syncArgs(hostB.ip4, lab.director.ip4) });

    const [rs1, rs2] = lab.realServers as [LabHost, LabHost];
    const svc = `${lab.vip4}:80`;
    for (const [d, order] of [
      [a, [rs1, rs2]],
      [b, [rs2, rs1]],
    ] as const) {
      await d.admOk(['-A', '-t', svc, '-s', 'wlc']);
      for (const rs of order) await d.admOk(['-a', '-t', svc, '-r', `${rs.ip4}:80`, '-g']);
    }
  }, 120_000);

  afterAll(async () => {
    for (const d of [b, a]) await d?.stop().catch((e: unknown) => console.error('e2e sync teardown:', e));
    if (hostB) await delNetns(hostB.ns).catch(() => undefined);
    unregisterB?.();
    if (keyDir) rmSync(keyDir, { recursive: true, force: true });
    await env?.teardown();
  }, 60_000);

  it('a connection made through A is in B, and survives the VIP moving to B', async () => {
    const held = streamingGet(lab, `http://${lab.vip4}/hold?ms=${HOLD_MS}`, HOLD_MS / 1000 + 20);
    try {
      const name = await held.firstLine;
      const rs = lab.realServers.find((h) => h.name === name)!;
      expect(rs, `the held connection's real server ${name}`).toBeDefined();

      // On B: the same flow, ESTABLISHED, to the same real server (listed through B's own destination slot).
      let mine: ConnectionJson | undefined;
      await waitFor('B to hold the connection', async () => {
        const { connections } = await api<{ connections: ConnectionJson[] }>(hostB, b!, '/v1/connections');
        mine = connections.find((c) => c.client.address === lab.client.ip4 && c.virtual.address === lab.vip4 && c.virtual.port === 80);
        return mine?.state === 'ESTABLISHED';
      }, 5_000);
      expect(mine!.destination).toEqual({ address: rs.ip4, port: 80 });
      const sa = await api<SyncStatus>(lab.director, a!, '/v1/sync');
      const sb = await api<SyncStatus>(hostB, b!, '/v1/sync');
      expect(sa.counters.sentEntries).toBeGreaterThanOrEqual(1);
      expect(sb.counters.applied).toBeGreaterThanOrEqual(1);
      expect(sb.counters.rejectedAuth + sb.counters.rejectedReplay + sb.counters.rejectedStale).toBe(0);
      const metrics = (await nsRun(hostB.ns, 'curl', ['-sS', '--max-time', '5', `${b!.server}/metrics`])).stdout;
      expect(Number(/^xdpvs_sync_total\{counter="applied"\} (\d+)$/m.exec(metrics)?.[1])).toBeGreaterThanOrEqual(1);
      // B's counters follow its table once its upkeep ran (each second): ActiveConn 1 on that real server, for wlc.
      await waitFor('B to count the connection', async () => {
        const ln = parseLn(await b!.admOk(['-Ln']));
        return ln[0]?.realServers.find((r) => r.address === `${rs.ip4}:80`)?.fields[2] === '1';
      }, 5_000);

      // Failover, as keepalived does it: the VIP leaves A, B takes it and announces it (here: the client's ARP entry).
      const before = (await api<{ reasons: Record<Reason, number> }>(hostB, b!, '/v1/stats')).reasons;
      await ip(lab.director.ns, ['addr', 'del', `${lab.vip4}/32`, 'dev', lab.director.dev]);
      await ip(hostB.ns, ['addr', 'add', `${lab.vip4}/32`, 'dev', hostB.dev]);
      await ip(lab.client.ns, ['neigh', 'replace', lab.vip4, 'lladdr', hostB.mac, 'dev', lab.client.dev, 'nud', 'reachable']);

      const r = await held.done;
      expect(r.code, `the held connection after failover: ${r.stderr}`).toBe(0);
      expect(r.body).toMatch(new RegExp(`^${name}\\n\\.+\\n$`));
      const after = (await api<{ reasons: Record<Reason, number> }>(hostB, b!, '/v1/stats')).reasons;
      expect(after.fwd_tx - before.fwd_tx, 'segments of the held flow B forwarded').toBeGreaterThan(0);
      expect(after.pass_tcp_not_syn - before.pass_tcp_not_syn, 'segments B did not know').toBe(0);

      // And new connections go through B, scheduled by B.
      const bodies = await getMany(lab, `http://${lab.vip4}/`, 4);
      expect(bodies.every((x) => x === 'rs1' || x === 'rs2')).toBe(true);
    } finally {
      held.kill();
    }
  }, 60_000);
});
