// End to end: director failover with the real keepalived (VRRP) and two xdpvsd on one segment, both run from seed
// 004's keepalived.conf (lab addresses; the backup's state and priority as the seed's remarks say). A long-lived TCP
// connection and a stream of new HTTP requests go through the master; the master dies (keepalived and xdpvsd killed
// with SIGKILL, or its link set down); the backup must take the VIP, the long-lived connection must go on with the
// same real server, and new requests must succeed again. mh needs nothing but identical tables; wlc needs the
// master's connections, which connection sync (--sync-peer/--sync-listen, docs/sync.md) gives the backup.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, describe, expect, it } from 'vitest';
import { startDirector, type Director } from '../../scripts/lab/director.js';
import { createFailoverLab, type FailoverHost, type FailoverLab } from '../../scripts/lab/failover-topology.js';
import { hasAddress, renderDirectorConf, startKeepalived, type Keepalived } from '../../scripts/lab/keepalived.js';
import { installSignalCleanup, ip, killPidSync, registerEmergencyCleanup, repoRoot, sleep, waitFor } from '../../scripts/lab/netns.js';
import { startRealServers, type RealServers } from '../../scripts/lab/realservers.js';
import type { LabHost } from '../../scripts/lab/topology.js';
import { parseLn, requireBuilt, skipUnlessRoot } from './helpers.js';

const skip = skipUnlessRoot('e2e director failover');
const SEED = resolve(__dirname, '../fixtures/keepalived/seed-004.conf');
/** Seed 004's addresses → the lab's (scripts/lab/failover-topology.ts). */
const SEED_VIP = '192.168.1.229';
const SEED_RS = ['192.168.1.220', '192.168.1.231'];
const SYNC_PORT = 8848;
/** Seed 004's advert_int. */
const ADVERT_MS = 1000;
/** VRRP's master-down interval for the backup's priority 50: 3 × advert_int + (256 − 50)/256 × advert_int. */
const MASTER_DOWN_MS = 3 * ADVERT_MS + Math.ceil(((256 - 50) / 256) * ADVERT_MS);

type Algo = 'mh' | 'wlc';
type How = 'kill' | 'link-down';

interface ClientEvent {
  /** When the test read it (Date.now()). */
  at: number;
  kind: 'ready' | 'tick' | 'tick-end' | 'req' | 'done';
  server?: string;
  conn?: number;
  count?: number;
  seq?: number;
  peerPort?: number;
  port?: number;
  ok?: boolean;
  error?: string | null;
}

interface Client {
  events: ClientEvent[];
  stderr(): string;
  stop(): void;
}

/** scripts/lab/failover-client.ts in the client's namespace, its JSON lines collected as they arrive. */
function startClient(lab: FailoverLab, durationMs: number): Client {
  const script = join(repoRoot(), 'dist/scripts/lab/failover-client.js');
  const child: ChildProcess = spawn(
    'ip',
    ['netns', 'exec', lab.client.ns, process.execPath, script, '--vip', lab.vip4, '--duration-ms', String(durationMs)],
    { stdio: ['pipe', 'pipe', 'pipe'] },
  );
  const pid = child.pid;
  const unregister = registerEmergencyCleanup(() => killPidSync(pid));
  child.once('exit', unregister);
  const events: ClientEvent[] = [];
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr = (stderr + d).slice(-8192)));
  createInterface({ input: child.stdout! }).on('line', (line) => {
    try {
      events.push({ ...(JSON.parse(line) as Omit<ClientEvent, 'at'>), at: Date.now() });
    } catch {
      stderr += `unparsable line: ${line}\n`;
    }
  });
  return {
    events,
    stderr: () => stderr,
    stop: () => {
      child.stdin!.end();
      if (pid !== undefined && child.exitCode === null && child.signalCode === null) killPidSync(pid);
    },
  };
}

interface Env {
  lab: FailoverLab;
  dir: string;
  realServers?: RealServers;
  daemons: Director[];
  keepaliveds: Keepalived[];
  client?: Client;
}

async function teardown(env: Env): Promise<void> {
  env.client?.stop();
  for (const k of env.keepaliveds) await k.stop().catch((e: unknown) => console.error('failover teardown:', e));
  for (const d of env.daemons) await d.stop().catch((e: unknown) => console.error('failover teardown:', e));
  await env.realServers?.stopAll().catch((e: unknown) => console.error('failover teardown:', e));
  await env.lab.destroy().catch((e: unknown) => console.error('failover teardown:', e));
  rmSync(env.dir, { recursive: true, force: true });
}

/** startDirector takes the DR lab's director; a failover director is the same shape under another name. */
function asDirector(d: FailoverHost): LabHost {
  return { ...d, name: 'director' };
}

/** xdpvsd's arguments on director i: its keepalived.conf, and connection sync with the other for wlc. */
function daemonArgs(env: Env, algo: Algo, i: number): string[] {
  const d = env.lab.directors[i];
  const peer = env.lab.directors[1 - i];
  const sync =
    algo === 'wlc'
      ? ['--sync-listen', `${d.ip4}:${SYNC_PORT}`, '--sync-peer', `${peer.ip4}:${SYNC_PORT}`, '--sync-key', join(env.dir, 'sync.key')]
      : [];
  return ['--keepalived-conf', join(env.dir, `${d.name}.conf`), ...sync];
}

/** The lab up: real servers, both directors' xdpvsd (with sync for wlc), keepalived on both; dir1 MASTER. */
async function bringUp(env: Env, algo: Algo): Promise<void> {
  const { lab, dir } = env;
  const template = readFileSync(SEED, 'utf8');
  const addresses = { [SEED_VIP]: lab.vip4, [SEED_RS[0]]: lab.realServers[0].ip4, [SEED_RS[1]]: lab.realServers[1].ip4 };
  const roles = [
    { state: 'MASTER', priority: 100 },
    { state: 'BACKUP', priority: 50 },
  ] as const;
  const keyFile = join(dir, 'sync.key');
  writeFileSync(keyFile, 'failover-lab-sync-key-0123456789abcdef\n', { mode: 0o600 });

  env.realServers = await startRealServers(lab, { script: join(repoRoot(), 'dist/scripts/lab/failover-server.js') });
  const confs: string[] = [];
  for (const [i, d] of lab.directors.entries()) {
    const conf = join(dir, `${d.name}.conf`);
    writeFileSync(conf, renderDirectorConf(template, { addresses, ...roles[i], lbAlgo: algo }));
    confs.push(conf);
    env.daemons.push(await startDirector({ id: lab.id, director: asDirector(d) }, { extraArgs: daemonArgs(env, algo, i) }));
  }
  // The master first, so that it is MASTER before the backup listens (the backup would otherwise wait out a
  // master-down interval and then preempt back: the same end state, later).
  for (const [i, d] of lab.directors.entries()) env.keepaliveds.push(await startKeepalived(d.ns, confs[i]));
  await env.keepaliveds[0].waitState('MASTER', 10_000);
  await env.keepaliveds[1].waitState('BACKUP', 10_000);
  await waitFor('the VIP on dir1', () => hasAddress(lab.directors[0].ns, 'eth0', lab.vip4), 5_000);
  expect(await hasAddress(lab.directors[1].ns, 'eth0', lab.vip4)).toBe(false);
}

/** A TCP connect from the client: 'connected', an error code, or 'timeout'. */
async function tcpProbe(lab: FailoverLab, addr: string, port: number, timeoutMs = 3_000): Promise<string> {
  const script = `
    const s = require('node:net').connect({ host: process.argv[1], port: Number(process.argv[2]) });
    const t = setTimeout(() => { console.log('timeout'); process.exit(0); }, Number(process.argv[3]));
    s.on('connect', () => { console.log('connected'); s.destroy(); clearTimeout(t); });
    s.on('error', (e) => { console.log(e.code); clearTimeout(t); });`;
  const r = await lab.exec('client', process.execPath, ['-e', script, addr, String(port), String(timeoutMs)], { timeoutMs: timeoutMs + 5_000 });
  return r.stdout;
}

async function clientNeighbourMac(lab: FailoverLab, addr: string): Promise<string | undefined> {
  const r = await ip(lab.client.ns, ['-j', 'neigh', 'show', 'to', addr, 'dev', 'eth0']);
  const entries = JSON.parse(r.stdout || '[]') as Array<{ dst: string; lladdr?: string }>;
  return entries.find((e) => e.dst === addr)?.lladdr;
}

function describeEvents(events: ClientEvent[], from: number): string {
  return events
    .filter((e) => e.kind !== 'tick')
    .map((e) => `${e.at - from} ${JSON.stringify({ ...e, at: undefined })}`)
    .slice(-60)
    .join('\n');
}

async function failover(algo: Algo, how: How): Promise<void> {
  const env: Env = { lab: await createFailoverLab({ realServers: 2 }), dir: mkdtempSync(join(tmpdir(), 'xdpvs-failover-')), daemons: [], keepaliveds: [] };
  envs.push(env);
  try {
    const { lab } = env;
    const [dir1, dir2] = lab.directors;
    await bringUp(env, algo);

    const client = (env.client = startClient(lab, 40_000));
    const startedAt = Date.now();
    await waitFor("the client's tick connection", () => client.events.some((e) => e.kind === 'ready'), 10_000).catch(async (e: unknown) => {
      const mac = await clientNeighbourMac(lab, lab.vip4);
      throw new Error(`${String(e)}; the client's neighbour entry for the VIP: ${mac}; events:\n${describeEvents(client.events, startedAt)}\nclient stderr: ${client.stderr()}\ndir1 -Lnc:\n${(await env.daemons[0].adm(['-Lnc'])).stdout}`);
    });
    // A couple of seconds of both kinds of traffic through the master.
    await sleep(2_000);
    const before = client.events.filter((e) => e.kind === 'tick');
    expect(before.length).toBeGreaterThan(5);
    const first = before[0];
    expect(client.events.filter((e) => e.kind === 'req' && e.ok).length).toBeGreaterThan(5);
    expect(client.events.filter((e) => e.kind === 'req' && !e.ok)).toEqual([]);
    expect(await clientNeighbourMac(lab, lab.vip4)).toBe(dir1.mac);
    if (algo === 'wlc') {
      // The backup learnt the tick connection from the master's sync before anything failed.
      const port = client.events.find((e) => e.kind === 'ready')!.port!;
      await waitFor(
        'the tick connection in the backup\'s connection table',
        async () => (await env.daemons[1].admOk(['-Lnc'])).includes(`${lab.client.ip4}:${port}`),
        5_000,
        100,
      );
    }

    const killedAt = Date.now();
    const since = env.keepaliveds[1].log().length;
    if (how === 'kill') {
      // A crash: nothing is given up cleanly; the VIP even stays on dir1's eth0, its XDP program stays attached.
      await Promise.all([env.keepaliveds[0].kill(), env.daemons[0].kill('SIGKILL')]);
    } else {
      await ip(dir1.ns, ['link', 'set', 'dev', 'eth0', 'down']);
    }
    await env.keepaliveds[1].waitState('MASTER', MASTER_DOWN_MS + 5_000, since);
    const takeoverAt = Date.now();
    await waitFor('the VIP on dir2', () => hasAddress(dir2.ns, 'eth0', lab.vip4), 5_000);
    // keepalived's gratuitous ARP moves the client to dir2.
    await waitFor('the client to send the VIP to dir2', async () => (await clientNeighbourMac(lab, lab.vip4)) === dir2.mac, 5_000, 100);
    // The tick connection retransmits with backoff after a link-down; give it time to come back, then watch it.
    await waitFor(
      'ticks through dir2',
      () => client.events.some((e) => (e.kind === 'tick' && e.at > takeoverAt + 500) || e.kind === 'tick-end'),
      10_000,
      50,
    ).catch((e: unknown) => {
      throw new Error(`${String(e)}; events since the kill:\n${describeEvents(client.events, killedAt)}`);
    });
    await sleep(4_000);
    const endAt = Date.now();
    client.stop();

    const tickTimes = client.events.filter((e) => e.kind === 'tick').map((e) => e.at);
    const longestSilence = Math.max(...tickTimes.slice(1).map((t, i) => t - tickTimes[i]));
    console.log(`failover ${algo}/${how}: dir2 MASTER ${takeoverAt - killedAt} ms after the kill; longest silence of the long-lived connection ${longestSilence} ms`);
    const context = `\n${algo}/${how}: killed at 0, takeover at ${takeoverAt - killedAt} ms; events:\n${describeEvents(client.events, killedAt)}\nclient stderr: ${client.stderr()}`;
    expect(takeoverAt - killedAt, context).toBeLessThan(MASTER_DOWN_MS + 3_000);
    expect(client.events.filter((e) => e.kind === 'tick-end'), context).toEqual([]);

    // The long-lived connection: every echo from the same server and the same server-side connection, the
    // server's count of lines on it going up one by one (nothing lost, nothing restarted) across the takeover.
    const ticks = client.events.filter((e) => e.kind === 'tick');
    const after = ticks.filter((e) => e.at > takeoverAt);
    expect(after.length, context).toBeGreaterThan(20);
    for (const t of ticks) {
      expect({ server: t.server, conn: t.conn, peerPort: t.peerPort }, context).toEqual({ server: first.server, conn: first.conn, peerPort: first.peerPort });
    }
    ticks.forEach((t, i) => expect(t.count, context).toBe(first.count! + i));

    // New requests: all fine before the kill; after the takeover (plus one request timeout for those in flight) all
    // fine again, on both real servers' side of things as the scheduler sees fit.
    const reqs = client.events.filter((e) => e.kind === 'req');
    expect(reqs.filter((e) => e.at < killedAt && !e.ok), context).toEqual([]);
    const settled = reqs.filter((e) => e.at > takeoverAt + 1_500 && e.at <= endAt);
    expect(settled.length, context).toBeGreaterThan(10);
    expect(settled.filter((e) => !e.ok), context).toEqual([]);
    // dir2 really carries the traffic now: its counters for the service went up.
    const stats = parseLn(await env.daemons[1].admOk(['-Ln', '--stats']));
    expect(stats.map((x) => x.address), context).toEqual([`${lab.vip4}:80`]);
    expect(Number(stats[0].fields[0]), context).toBeGreaterThan(0); // Conns
  } finally {
    await teardown(env);
  }
}

/**
 * The way back: dir1 dies, dir2 takes over, a new long-lived connection opens through dir2 (dir1 never sees it),
 * then dir1's xdpvsd and keepalived come back and keepalived preempts (priority 100 > 50). dir1's xdpvsd says
 * hello at start and dir2 sends it every live connection (docs/sync.md), so the connection opened on dir2 goes on
 * through dir1 after the VIP moves back. Without the hello dir1 would learn it only at dir2's next refresh (60 s).
 */
async function wayBack(): Promise<void> {
  const env: Env = { lab: await createFailoverLab({ realServers: 2 }), dir: mkdtempSync(join(tmpdir(), 'xdpvs-failover-')), daemons: [], keepaliveds: [] };
  envs.push(env);
  let client2: Client | undefined;
  try {
    const { lab } = env;
    const [dir1, dir2] = lab.directors;
    await bringUp(env, 'wlc');
    // Traffic through dir1 first, so the client holds a neighbour entry for the VIP that the takeover's ARP moves.
    const client1 = (env.client = startClient(lab, 40_000));
    await waitFor("the first client's tick connection", () => client1.events.some((e) => e.kind === 'ready'), 10_000);
    await sleep(1_000);

    const since = env.keepaliveds[1].log().length;
    const [oldKeepalived, oldDaemon] = [env.keepaliveds[0], env.daemons[0]];
    await Promise.all([oldKeepalived.kill(), oldDaemon.kill('SIGKILL')]);
    await env.keepaliveds[1].waitState('MASTER', MASTER_DOWN_MS + 5_000, since);
    await waitFor('the client to send the VIP to dir2', async () => (await clientNeighbourMac(lab, lab.vip4)) === dir2.mac, 5_000, 100);

    // A connection made while dir1 is down.
    client2 = startClient(lab, 40_000);
    const c2 = client2;
    await waitFor("the second client's tick connection", () => c2.events.some((e) => e.kind === 'ready'), 10_000);
    const port2 = c2.events.find((e) => e.kind === 'ready')!.port!;
    await sleep(1_000);

    // dir1's xdpvsd again (same pins and state file, as after a crash): its hello brings dir2's connections.
    const restarted = await startDirector({ id: lab.id, director: asDirector(dir1) }, { workDir: oldDaemon.workDir, extraArgs: daemonArgs(env, 'wlc', 0) });
    env.daemons[0] = restarted;
    await waitFor(
      "the second client's connection in dir1's table, from dir2, well before dir2's 60 s refresh",
      async () => (await restarted.admOk(['-Lnc'])).includes(`${lab.client.ip4}:${port2}`),
      5_000,
      100,
    );

    const inPkts = async () => Number(parseLn(await restarted.admOk(['-Ln', '--stats']))[0].fields[1]);
    const before = await inPkts();

    // dir1's keepalived: MASTER with the higher priority, it takes the VIP back at once.
    const newKeepalived = await startKeepalived(dir1.ns, join(env.dir, `${dir1.name}.conf`));
    env.keepaliveds.push(newKeepalived);
    await newKeepalived.waitState('MASTER', 10_000);
    await waitFor('the client to send the VIP to dir1 again', async () => (await clientNeighbourMac(lab, lab.vip4)) === dir1.mac, 5_000, 100);
    const backAt = Date.now();
    await sleep(4_000);
    c2.stop();

    const context = `\nway back: VIP on dir1 again at 0; second client's events:\n${describeEvents(c2.events, backAt)}\nclient stderr: ${c2.stderr()}`;
    expect(c2.events.filter((e) => e.kind === 'tick-end'), context).toEqual([]);
    const ticks = c2.events.filter((e) => e.kind === 'tick');
    const first = ticks[0];
    expect(ticks.filter((e) => e.at > backAt + 500).length, context).toBeGreaterThan(20);
    for (const t of ticks) {
      expect({ server: t.server, conn: t.conn, peerPort: t.peerPort }, context).toEqual({ server: first.server, conn: first.conn, peerPort: first.peerPort });
    }
    ticks.forEach((t, i) => expect(t.count, context).toBe(first.count! + i));
    // dir1 carries the traffic again: its service's InPkts moved once the VIP came back.
    expect(await inPkts(), context).toBeGreaterThan(before);
  } finally {
    client2?.stop();
    await teardown(env);
  }
}

const envs: Env[] = [];

describe.skipIf(skip)('director failover with keepalived VRRP', () => {
  if (!skip) {
    installSignalCleanup();
    requireBuilt([
      'dist/src/daemon/main.js',
      'dist/src/cli/main.js',
      'dist/scripts/lab/failover-server.js',
      'dist/scripts/lab/failover-client.js',
      'build/bpf/xdp_pass.bpf.o',
    ]);
  }

  afterAll(async () => {
    // Each scenario tears down in its own finally; this catches one interrupted between creating and registering.
    for (const env of envs) await teardown(env).catch(() => undefined);
  }, 60_000);

  it('the backup: no VIP, so no ARP answer for it; a packet for the VIP sent to it anyway is balanced as on the master', async () => {
    const env: Env = { lab: await createFailoverLab({ realServers: 2 }), dir: mkdtempSync(join(tmpdir(), 'xdpvs-failover-')), daemons: [], keepaliveds: [] };
    envs.push(env);
    try {
      const { lab } = env;
      const [dir1, dir2] = lab.directors;
      await bringUp(env, 'mh');
      // The kernel answers ARP only for its own addresses, and keepalived gives dir2 the VIP only as MASTER; XDP
      // passes ARP to the kernel. So the client learns dir1's MAC however it asks.
      await ip(lab.client.ns, ['neigh', 'flush', 'dev', 'eth0']);
      expect((await tcpProbe(lab, lab.vip4, 80)).trim()).toBe('connected');
      expect(await clientNeighbourMac(lab, lab.vip4)).toBe(dir1.mac);
      // A sender that ignores ARP (a static entry, a confused switch): dir2's XDP has the same service and forwards
      // the flow to a real server like dir1 would, without the VIP being local.
      await ip(lab.client.ns, ['neigh', 'replace', lab.vip4, 'lladdr', dir2.mac, 'dev', 'eth0', 'nud', 'permanent']);
      expect((await tcpProbe(lab, lab.vip4, 80)).trim()).toBe('connected');
      const stats = parseLn(await env.daemons[1].admOk(['-Ln', '--stats']));
      expect(Number(stats[0].fields[0])).toBeGreaterThan(0); // Conns on the backup
      // Anything else for the VIP reaches dir2's kernel, which does not own the address and does not forward: dropped.
      expect((await tcpProbe(lab, lab.vip4, 22, 1_000)).trim()).toBe('timeout');
      expect(await hasAddress(dir2.ns, 'eth0', lab.vip4)).toBe(false);
    } finally {
      await teardown(env);
    }
  }, 60_000);

  it('wlc, the way back: the old master restarts and preempts; a connection opened on the backup goes on', () => wayBack(), 90_000);

  for (const algo of ['mh', 'wlc'] as const) {
    it(`${algo}: the master's keepalived and xdpvsd killed (SIGKILL); the backup takes over, connections go on`, () => failover(algo, 'kill'), 60_000);
    it(`${algo}: the master's link down; the backup takes over, connections go on`, () => failover(algo, 'link-down'), 60_000);
  }
});

// The lab's conf rendering needs no root: it runs everywhere.
describe('the failover lab renders seed 004 per director', () => {
  const template = readFileSync(SEED, 'utf8');
  const addresses = { [SEED_VIP]: '198.18.0.100', [SEED_RS[0]]: '198.18.0.11', [SEED_RS[1]]: '198.18.0.12' };

  it('changes the addresses, state, priority and lb_algo, keeps the rest (remarks included) and plain spaces only', () => {
    const out = renderDirectorConf(template, { addresses, state: 'BACKUP', priority: 50, lbAlgo: 'wlc' });
    expect(out).not.toMatch(/192\.168\.1\.|\u00a0/);
    expect(out).toMatch(/^\s*state BACKUP\s+\/\/备份服务器设置为backup$/m);
    expect(out).toMatch(/^\s*priority 50\s+\/\/\/\/备份服务器设置小于100$/m);
    expect(out).toMatch(/^\s*lb_algo wlc\s+\/\/lvs算法$/m);
    expect(out).toMatch(/^virtual_server 198\.18\.0\.100 80 \{$/m);
    expect(out).toMatch(/^\s*persistence_timeout 60\b/m);
    const words = (t: string): string[] => t.replace(/\u00a0/g, ' ').split(/\s+/).filter((w) => !/^(192\.168|198\.18|MASTER|BACKUP|100|50|wrr|wlc)/.test(w));
    expect(words(out)).toEqual(words(template));
  });

  it('refuses what would silently produce another file', () => {
    expect(() => renderDirectorConf(template, { addresses: { '10.1.1.1': '198.18.0.1' }, state: 'MASTER', priority: 100 })).toThrow(
      /address 10\.1\.1\.1 is not in the template/,
    );
    expect(() => renderDirectorConf(template, { addresses, state: 'MASTER', priority: 255 })).toThrow(/priority must be 1\.\.254/);
    expect(() => renderDirectorConf(template.replace(/^\s*state .*$/m, ''), { addresses, state: 'MASTER', priority: 100 })).toThrow(
      /0 "state" lines, expected exactly 1/,
    );
  });
});
