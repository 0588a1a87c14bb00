// End to end, VS/TUN: the real xdpvsd encapsulates towards real servers one router away (and one beside it), which
// decapsulate with the project's XDP program (xdpvsd --role realserver); real HTTP over TCP and UDP request/response,
// IPv4 and IPv6; path MTU discovery through the tunnel; direct routing and tunnelling in one service; -e changing a
// real server's method while a connection is open.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startDirector, type Director } from '../../scripts/lab/director.js';
import { installSignalCleanup, ip, netnsPath, repoRoot, run, sleep } from '../../scripts/lab/netns.js';
import { startRealServers, type RealServers } from '../../scripts/lab/realservers.js';
import type { LabHost, LabHostName } from '../../scripts/lab/topology.js';
import { createTunLab, startDecap, type DecapRoles, type TunLab } from '../../scripts/lab/tun-topology.js';
import { parseLn, requireBuilt, skipUnlessRoot, type LnService } from './helpers.js';

const skip = skipUnlessRoot('e2e TUN');

const UDP_PORT = 5000;
const SINK_PORT = 9000;

describe.skipIf(skip)('VS/TUN through xdpvsd and xdpvsadm, real servers decapsulating with xdpvsd --role realserver', () => {
  let lab: TunLab | undefined;
  const servers: RealServers[] = [];
  let decap: DecapRoles | undefined;
  let director: Director;
  let rs1: LabHost; // behind the router
  let rs2: LabHost; // behind the router
  let rs3: LabHost; // on the director's segment

  beforeAll(async () => {
    requireBuilt([
      'dist/src/daemon/main.js',
      'dist/src/cli/main.js',
      'dist/scripts/lab/http-server.js',
      'dist/scripts/lab/udp-server.js',
      'dist/scripts/lab/tcp-sink.js',
      'build/bpf/xdp_pass.bpf.o',
      'build/bpf/xdpvs_decap.bpf.o',
    ]);
    installSignalCleanup();
    try {
      lab = await createTunLab({ remoteRealServers: 2, localRealServers: 1 });
      [rs1, rs2, rs3] = lab.realServers as [LabHost, LabHost, LabHost];
      servers.push(await startRealServers(lab));
      servers.push(await startRealServers(lab, { script: `${repoRoot()}/dist/scripts/lab/udp-server.js`, port: UDP_PORT }));
      servers.push(await startRealServers(lab, { script: `${repoRoot()}/dist/scripts/lab/tcp-sink.js`, port: SINK_PORT }));
      decap = await startDecap(lab, lab.realServers);
      director = await startDirector(lab);
    } catch (e) {
      await teardown();
      throw e;
    }
  }, 120_000);

  async function teardown(): Promise<void> {
    for (const step of [() => director?.stop(), () => decap?.stop(), ...servers.map((s) => () => s.stopAll()), () => lab?.destroy()]) {
      try {
        await step();
      } catch (e) {
        console.error('e2e TUN teardown:', e);
      }
    }
  }

  afterAll(teardown, 60_000);

  beforeEach(async ({ onTestFailed }) => {
    onTestFailed(() => {
      console.error(`xdpvsd stderr (last 4 KiB):\n${director.stderr().slice(-4096)}`);
    });
    await director.admOk(['-C']);
  });

  // ---- helpers -------------------------------------------------------------------------------------------------

  async function get(url: string, from: LabHostName = 'client'): Promise<string> {
    const r = await lab!.exec(from, 'curl', ['-s', '-S', '-g', '--max-time', '5', url], { timeoutMs: 10_000, allowFailure: true });
    if (r.code !== 0) throw new Error(`curl ${url} failed (exit ${r.code}): ${r.stderr.trim()}`);
    return r.stdout.trim();
  }

  async function getMany(url: string, n: number): Promise<string[]> {
    const out: string[] = [];
    for (let i = 0; i < n; i++) out.push(await get(url));
    return out;
  }

  /** One UDP request from the client (a new source port each time); the answer's words. */
  async function udpAsk(addr: string, text: string): Promise<string[]> {
    const script = `
      const s = require('node:dgram').createSocket(process.argv[1].includes(':') ? 'udp6' : 'udp4');
      const t = setTimeout(() => { console.log('timeout'); process.exit(0); }, 3000);
      s.on('message', (m) => { console.log(m.toString()); clearTimeout(t); s.close(); });
      s.send(process.argv[3], Number(process.argv[2]), process.argv[1]);`;
    const r = await lab!.exec('client', process.execPath, ['-e', script, addr, String(UDP_PORT), text], { timeoutMs: 10_000 });
    return r.stdout.trim().split(' ');
  }

  /** Sends `bytes` bytes over one TCP connection and returns the sink's answer ("<name> <bytes received>"). */
  async function upload(addr: string, bytes: number): Promise<string> {
    const script = `
      const c = require('node:net').connect({ host: process.argv[1], port: Number(process.argv[2]), allowHalfOpen: true });
      let out = '';
      const t = setTimeout(() => { console.log('timeout ' + out); process.exit(0); }, 15000);
      c.on('connect', () => c.end(Buffer.alloc(Number(process.argv[3]), 0x61)));
      c.on('data', (d) => (out += d));
      c.on('end', () => { console.log(out.trim()); clearTimeout(t); });
      c.on('error', (e) => { console.log('error ' + e.code); clearTimeout(t); });`;
    const r = await lab!.exec('client', process.execPath, ['-e', script, addr, String(SINK_PORT), String(bytes)], { timeoutMs: 25_000 });
    return r.stdout.trim();
  }

  async function reasons(): Promise<Record<string, number>> {
    const r = await run('nsenter', [`--net=${netnsPath(lab!.director.ns)}`, '--', 'curl', '-s', '--max-time', '5', `${director.server}/v1/stats`]);
    return (JSON.parse(r.stdout) as { reasons: Record<string, number> }).reasons;
  }

  async function service(proto: '-t' | '-u', vs: string, members: Array<[LabHost, string, '-i' | '-g']>): Promise<void> {
    await director.admOk(['-A', proto, vs, '-s', 'rr']);
    for (const [, rs, method] of members) await director.admOk(['-a', proto, vs, '-r', rs, method]);
  }

  function expectAlternation(bodies: string[], names: string[]): void {
    expect(new Set(bodies), bodies.join(' ')).toEqual(new Set(names));
    for (let i = 1; i < bodies.length; i++) expect(bodies[i], `answer ${i + 1} of ${bodies.join(' ')}`).not.toBe(bodies[i - 1]);
  }

  // ---- tests ---------------------------------------------------------------------------------------------------

  for (const family of ['IPv4', 'IPv6'] as const) {
    const v6 = family === 'IPv6';
    const vip = (): string => (v6 ? lab!.vip6 : lab!.vip4);
    const at = (h: LabHost, port: number): string => (v6 ? `[${h.ip6}]:${port}` : `${h.ip4}:${port}`);
    const vs = (port: number): string => (v6 ? `[${lab!.vip6}]:${port}` : `${lab!.vip4}:${port}`);
    const url = (path = '/'): string => (v6 ? `http://[${lab!.vip6}]${path}` : `http://${lab!.vip4}${path}`);

    it(`${family}: HTTP through the tunnel to two routed real servers: rr alternates, the client's address is kept`, async () => {
      await service('-t', vs(80), [
        [rs1, at(rs1, 80), '-i'],
        [rs2, at(rs2, 80), '-i'],
      ]);
      expectAlternation(await getMany(url(), 8), [rs1.name, rs2.name]);
      const seen = await get(url('/ip'));
      expect(seen.split(' ')[0]).toBe(v6 ? lab!.client.ip6 : lab!.client.ip4);
    });

    it(`${family}: -Ln shows Tunnel; --stats counts connections and inbound packets, never outbound`, async () => {
      await service('-t', vs(80), [
        [rs1, at(rs1, 80), '-i'],
        [rs2, at(rs2, 80), '-i'],
      ]);
      const before = { rs1: (await decap!.status(rs1.name)).counters.decap, rs2: (await decap!.status(rs2.name)).counters.decap };
      await getMany(url(), 4);

      const ln = await director.admOk(['-Ln']);
      const [svc] = parseLn(ln);
      expect(svc!.realServers.map((r) => [r.address, r.fields[0], r.fields[1]]), ln).toEqual([
        [at(rs1, 80), 'Tunnel', '1'],
        [at(rs2, 80), 'Tunnel', '1'],
      ]);

      const text = await director.admOk(['-Ln', '--stats', '--exact']);
      const [st] = parseLn(text) as [LnService];
      const n = (f: string[], i: number): number => Number(f[i]);
      // Conns, InPkts, OutPkts, InBytes, OutBytes: replies go from the real servers straight to the client.
      expect(n(st.fields, 0), text).toBe(4);
      expect(n(st.fields, 1), text).toBeGreaterThanOrEqual(4 * 4);
      expect(n(st.fields, 3), text).toBeGreaterThan(0);
      expect([n(st.fields, 2), n(st.fields, 4)], text).toEqual([0, 0]);
      for (const r of st.realServers) {
        expect(n(r.fields, 0), text).toBe(2);
        expect([n(r.fields, 2), n(r.fields, 4)], text).toEqual([0, 0]);
      }
      // Each real server stripped the tunnel of at least the packets of its two connections.
      expect((await decap!.status(rs1.name)).counters.decap - before.rs1).toBeGreaterThanOrEqual(2 * 4);
      expect((await decap!.status(rs2.name)).counters.decap - before.rs2).toBeGreaterThanOrEqual(2 * 4);
    });

    it(`${family}: UDP request/response through the tunnel alternates, and the real server sees the client`, async () => {
      await service('-u', vs(UDP_PORT), [
        [rs1, at(rs1, UDP_PORT), '-i'],
        [rs2, at(rs2, UDP_PORT), '-i'],
      ]);
      const answers: string[][] = [];
      for (let i = 0; i < 4; i++) answers.push(await udpAsk(vip(), `hello${i}`));
      expectAlternation(answers.map((a) => a[0]!), [rs1.name, rs2.name]);
      answers.forEach((a, i) => {
        expect(a[1], a.join(' ')).toBe(v6 ? lab!.client.ip6 : lab!.client.ip4);
        expect(a[3], a.join(' ')).toBe(`hello${i}`);
      });
    });

    it(`${family}: a large upload finds the tunnel's MTU (the director answers with ICMP "too big", the client adapts)`, async () => {
      // Forget any path MTU the client learnt before, so that its first full-size segments are too big again.
      await ip(lab!.client.ns, [v6 ? '-6' : '-4', 'route', 'flush', 'cache']);
      await service('-t', vs(SINK_PORT), [[rs1, at(rs1, SINK_PORT), '-i']]);
      const before = (await reasons()).tx_icmp_too_big ?? 0;
      const bytes = 256 * 1024;
      expect(await upload(vip(), bytes)).toBe(`${rs1.name} ${bytes}`);
      expect((await reasons()).tx_icmp_too_big, 'ICMP too-big answers sent by the director').toBeGreaterThan(before);
    });
  }

  it('across families: an IPv4 VIP tunnelled inside IPv6 and an IPv6 VIP inside IPv4', async () => {
    await service('-t', `${lab!.vip4}:80`, [
      [rs1, `[${rs1.ip6}]:80`, '-i'],
      [rs2, `[${rs2.ip6}]:80`, '-i'],
    ]);
    await service('-t', `[${lab!.vip6}]:80`, [
      [rs1, `${rs1.ip4}:80`, '-i'],
      [rs2, `${rs2.ip4}:80`, '-i'],
    ]);
    expectAlternation(await getMany(`http://${lab!.vip4}/`, 4), [rs1.name, rs2.name]);
    expectAlternation(await getMany(`http://[${lab!.vip6}]/`, 4), [rs1.name, rs2.name]);
    const ln = await director.admOk(['-Ln']);
    expect(parseLn(ln).map((s) => s.realServers.map((r) => [r.address, r.fields[0]])), ln).toEqual([
      [
        [`[${rs1.ip6}]:80`, 'Tunnel'],
        [`[${rs2.ip6}]:80`, 'Tunnel'],
      ],
      [
        [`${rs1.ip4}:80`, 'Tunnel'],
        [`${rs2.ip4}:80`, 'Tunnel'],
      ],
    ]);
  });

  it('one service with a direct-routing and a tunnelled real server: rr alternates between the two paths', async () => {
    await service('-t', `${lab!.vip4}:80`, [
      [rs3, `${rs3.ip4}:80`, '-g'],
      [rs1, `${rs1.ip4}:80`, '-i'],
    ]);
    const before3 = (await decap!.status(rs3.name)).counters.decap;
    expectAlternation(await getMany(`http://${lab!.vip4}/`, 6), [rs3.name, rs1.name]);
    const ln = await director.admOk(['-Ln']);
    expect(parseLn(ln)[0]!.realServers.map((r) => [r.address, r.fields[0]]), ln).toEqual([
      [`${rs3.ip4}:80`, 'Route'],
      [`${rs1.ip4}:80`, 'Tunnel'],
    ]);
    // rs3 was reached by direct routing: nothing was decapsulated there.
    expect((await decap!.status(rs3.name)).counters.decap).toBe(before3);
  });

  it('a direct routing real server routed through a gateway is refused; as a tunnel it is accepted', async () => {
    await director.admOk(['-A', '-t', `${lab!.vip4}:80`, '-s', 'rr']);
    const r = await director.adm(['-a', '-t', `${lab!.vip4}:80`, '-r', `${rs1.ip4}:80`, '-g']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/gateway/);
    await director.admOk(['-a', '-t', `${lab!.vip4}:80`, '-r', `${rs1.ip4}:80`, '-i']);
    // And -e cannot turn it into direct routing either.
    const e = await director.adm(['-e', '-t', `${lab!.vip4}:80`, '-r', `${rs1.ip4}:80`, '-g']);
    expect(e.code).not.toBe(0);
    expect(e.stderr).toMatch(/gateway/);
  });

  it('-e from -g to -i while a connection is open: it finishes on direct routing, new ones are tunnelled', async () => {
    const vs4 = `${lab!.vip4}:80`;
    await service('-t', vs4, [[rs3, `${rs3.ip4}:80`, '-g']]);
    const holdMs = 4000;
    const child = lab!.exec('client', 'curl', ['-s', '-S', '-N', '--max-time', '20', `http://${lab!.vip4}/hold?ms=${holdMs}`], { timeoutMs: 30_000, allowFailure: true });
    await sleep(500);

    await director.admOk(['-e', '-t', vs4, '-r', `${rs3.ip4}:80`, '-i']);
    const ln = await director.admOk(['-Ln']);
    expect(parseLn(ln)[0]!.realServers.map((r) => r.fields[0]), ln).toEqual(['Tunnel']);

    // While only the held connection talks (the client acknowledging each tick), nothing reaches rs3 by the tunnel.
    const d1 = (await decap!.status(rs3.name)).counters.decap;
    await sleep(1500);
    const d2 = (await decap!.status(rs3.name)).counters.decap;
    expect(d2, 'packets of the connection opened before -e were tunnelled').toBe(d1);

    // New connections take the tunnel.
    expect(await getMany(`http://${lab!.vip4}/`, 3)).toEqual([rs3.name, rs3.name, rs3.name]);
    expect((await decap!.status(rs3.name)).counters.decap).toBeGreaterThanOrEqual(d2 + 3 * 3);

    const held = await child;
    expect(held.code, held.stderr).toBe(0);
    expect(held.stdout).toBe(`${rs3.name}\n${'.'.repeat(holdMs / 200)}\n`);
  });
});
