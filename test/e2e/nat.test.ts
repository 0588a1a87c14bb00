// End to end, seed 000's VS/NAT lab: xdpvsd on both of a two-armed director's interfaces, configured with xdpvsadm,
// real HTTP over TCP and a UDP request/response server behind it, IPv4 and IPv6.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { Director } from '../../scripts/lab/director.js';
import { ip, sleep, waitFor } from '../../scripts/lab/netns.js';
import type { NatLab } from '../../scripts/lab/nat-topology.js';
import type { LabHost } from '../../scripts/lab/topology.js';
import { curl, getMany, parseLn, skipUnlessRoot, streamingGet } from './helpers.js';
import { startNatEnv, udpRequest, type NatEnv } from './nat-env.js';

const skip = skipUnlessRoot('e2e NAT');

/** Bodies must alternate strictly between the two names, whichever comes first. */
function expectStrictAlternation(bodies: string[], names: [string, string]): void {
  expect(new Set(bodies), `bodies: ${bodies.join(' ')}`).toEqual(new Set(names));
  for (let i = 1; i < bodies.length; i++) expect(bodies[i], `request ${i + 1} of ${bodies.join(' ')}`).not.toBe(bodies[i - 1]);
}

const num = (f: string[], i: number): number => Number(f[i]);

describe.skipIf(skip)('VS/NAT through xdpvsd and xdpvsadm (seed 000)', () => {
  let env: NatEnv | undefined;
  let lab: NatLab;
  let director: Director;
  let rs1: LabHost;
  let rs2: LabHost;
  let svc4: string;
  let svc6: string;

  beforeAll(async () => {
    env = await startNatEnv({ realServers: 2 });
    lab = env.lab;
    director = env.director;
    [rs1, rs2] = lab.realServers as [LabHost, LabHost];
    svc4 = `${lab.vip4}:80`;
    svc6 = `[${lab.vip6}]:80`;
  }, 120_000);

  afterAll(async () => {
    await env?.teardown();
  }, 60_000);

  beforeEach(async ({ onTestFailed }) => {
    onTestFailed(() => {
      console.error(`xdpvsd stderr (last 4 KiB):\n${director.stderr().slice(-4096)}`);
    });
    await director.admOk(['-C']);
  });

  /** The seed's `ipvsadm -A -t VIP:80 -s rr` and `ipvsadm -a -t VIP:80 -r RIP -m` for each real server. */
  async function natService(proto: '-t' | '-u', service: string, servers: string[], scheduler = 'rr'): Promise<void> {
    await director.admOk(['-A', proto, service, '-s', scheduler]);
    for (const rip of servers) await director.admOk(['-a', proto, service, '-r', rip, '-m']);
  }

  it('rr alternates strictly over 8 requests (IPv4); the real servers see the client; -Ln shows Masq', async () => {
    await natService('-t', svc4, [`${rs1.ip4}:80`, `${rs2.ip4}:80`]);
    expectStrictAlternation(await getMany(lab, `http://${lab.vip4}/`, 8), [rs1.name, rs2.name]);

    // NAT rewrites only the destination: the real server sees the client's own address.
    const seen = await curl(lab, `http://${lab.vip4}/ip`);
    expect(seen.code, seen.stderr).toBe(0);
    expect(seen.body.split(' ')[0]).toBe(lab.client.ip4);

    const ln = await director.admOk(['-Ln']);
    const [svc] = parseLn(ln);
    expect(svc, ln).toMatchObject({ proto: 'TCP', address: svc4, fields: ['rr'] });
    // The lab's director has what NAT needs: the daemon's check of forwarding and accept_local stays quiet.
    expect(director.stderr()).not.toMatch(/forwarding is off|accept_local is 0/);
    expect(svc!.realServers.map((r) => [r.address, r.fields[0], r.fields[1]]), ln).toEqual([
      [`${rs1.ip4}:80`, 'Masq', '1'],
      [`${rs2.ip4}:80`, 'Masq', '1'],
    ]);
  });

  it('rr alternates strictly through the IPv6 VIP as well', async () => {
    await natService('-t', svc6, [`[${rs1.ip6}]:80`, `[${rs2.ip6}]:80`]);
    expectStrictAlternation(await getMany(lab, `http://[${lab.vip6}]/`, 8), [rs1.name, rs2.name]);
    const seen = await curl(lab, `http://[${lab.vip6}]/ip`);
    expect(seen.body.split(' ')[0]).toBe(lab.client.ip6);
    const [svc] = parseLn(await director.admOk(['-Ln']));
    expect(svc!.realServers.map((r) => r.fields[0])).toEqual(['Masq', 'Masq']);
  });

  it('--stats: downloads make OutBytes far larger than InBytes, replies counted per real server (seed 000, section 9)', async () => {
    await natService('-t', svc4, [`${rs1.ip4}:80`, `${rs2.ip4}:80`]);
    const size = 20_000;
    for (let i = 0; i < 4; i++) {
      const r = await curl(lab, `http://${lab.vip4}/bytes?n=${size}`);
      expect(r.code, r.stderr).toBe(0);
      expect(r.body.length).toBe(size);
    }
    const text = await director.admOk(['-Ln', '--stats']);
    const [s] = parseLn(text);
    // Conns, InPkts, OutPkts, InBytes, OutBytes.
    expect(num(s!.fields, 0), text).toBe(4);
    expect(num(s!.fields, 2), text).toBeGreaterThan(4 * 5);
    expect(num(s!.fields, 4), text).toBeGreaterThan(4 * size);
    expect(num(s!.fields, 4), text).toBeGreaterThan(10 * num(s!.fields, 3));
    for (const r of s!.realServers) {
      expect(num(r.fields, 0), text).toBe(2);
      expect(num(r.fields, 4), text).toBeGreaterThan(2 * size);
    }
    // The sums of the real servers are the service's.
    for (const i of [1, 2, 3, 4]) expect(num(s!.realServers[0]!.fields, i) + num(s!.realServers[1]!.fields, i), text).toBe(num(s!.fields, i));
    // Every reply left through XDP: the kernel did not have to forward any (the client's MAC was known).
    const reasons = await env!.reasons();
    expect(reasons.nat_reply_redirect).toBeGreaterThan(0);
  });

  it('port mapping: -r RIP:8080 -m for VIP:80, both families', async () => {
    await natService('-t', svc4, [`${rs1.ip4}:8080`, `${rs2.ip4}:8080`]);
    await natService('-t', svc6, [`[${rs1.ip6}]:8080`, `[${rs2.ip6}]:8080`]);
    for (const url of [`http://${lab.vip4}`, `http://[${lab.vip6}]`]) {
      // The servers on 8080 answered, not those on 80.
      const ports = await getMany(lab, `${url}/port`, 4);
      expect(ports, url).toEqual(['8080', '8080', '8080', '8080']);
      expectStrictAlternation(await getMany(lab, `${url}/`, 4), [rs1.name, rs2.name]);
    }
    const services = parseLn(await director.admOk(['-Ln']));
    expect(services.flatMap((s) => s.realServers.map((r) => [r.address, r.fields[0]]))).toEqual([
      [`${rs1.ip4}:8080`, 'Masq'],
      [`${rs2.ip4}:8080`, 'Masq'],
      [`[${rs1.ip6}]:8080`, 'Masq'],
      [`[${rs2.ip6}]:8080`, 'Masq'],
    ]);
  });

  it('UDP request/response through NAT, IPv4 and IPv6, port-mapped too: answers come from VIP:port, rr alternates', async () => {
    for (const [vip, rips, svcPort] of [
      [lab.vip4, [rs1.ip4, rs2.ip4], 53],
      [lab.vip6, [rs1.ip6, rs2.ip6], 53],
      [lab.vip4, [rs1.ip4, rs2.ip4], 5300],
    ] as const) {
      const v6 = vip.includes(':');
      const service = v6 ? `[${vip}]:${svcPort}` : `${vip}:${svcPort}`;
      await natService('-u', service, rips.map((r) => (v6 ? `[${r}]:53` : `${r}:53`)));
      const names: string[] = [];
      for (let i = 0; i < 6; i++) {
        const a = await udpRequest(lab, 'client', vip, svcPort, `hello ${i}`);
        expect([a.from, a.port], JSON.stringify(a)).toEqual([vip, svcPort]);
        const [name, seenAddr, , ...rest] = a.body.split(' ');
        expect(seenAddr).toBe(v6 ? lab.client.ip6 : lab.client.ip4);
        expect(rest.join(' ')).toBe(`hello ${i}`);
        names.push(name!);
      }
      expectStrictAlternation(names, [rs1.name, rs2.name]);
      // A 1400-byte answer to a short question.
      const big = await udpRequest(lab, 'client', vip, svcPort, 'size 1400');
      expect(big.body.length).toBe(1400);
    }
    const text = await director.admOk(['-Ln', '--stats']);
    for (const s of parseLn(text)) {
      expect(s.proto).toBe('UDP');
      expect(num(s.fields, 0), text).toBe(7);
      expect(num(s.fields, 2), text).toBe(7);
      expect(num(s.fields, 4), text).toBeGreaterThan(num(s.fields, 3));
    }
  });

  it('a reply towards a client whose MAC the director does not know yet is forwarded by the kernel, already rewritten', async () => {
    await natService('-t', svc4, [`${rs1.ip4}:80`, `${rs2.ip4}:80`]);
    for (const fam of ['-4', '-6']) await ip(lab.director.ns, [fam, 'neigh', 'flush', 'dev', 'eth0']);
    const before = await env!.reasons();
    // The client still knows the VIP's MAC, so its SYN comes without an ARP/ND exchange that would teach the director.
    const bodies = await getMany(lab, `http://${lab.vip4}/`, 2);
    expectStrictAlternation(bodies, [rs1.name, rs2.name]);
    const after = await env!.reasons();
    expect(after.pass_nat_no_neigh - before.pass_nat_no_neigh).toBeGreaterThanOrEqual(1);
    // Once the kernel has resolved the client, replies take the XDP path again.
    expect(after.nat_reply_redirect - before.nat_reply_redirect).toBeGreaterThan(0);
  });

  it('the daemon warns when the director lacks what NAT needs (here accept_local on the private side)', async () => {
    await sysctlOnDirector('net.ipv4.conf.eth1.accept_local', 0);
    try {
      await natService('-t', svc4, [`${rs1.ip4}:80`]);
      await waitFor('the accept_local warning', () => /accept_local is 0/.test(director.stderr()), 5000);
    } finally {
      await sysctlOnDirector('net.ipv4.conf.eth1.accept_local', 1);
    }
  });

  async function sysctlOnDirector(key: string, value: number): Promise<void> {
    await lab.exec('director', 'sysctl', ['-q', '-w', `${key}=${value}`]);
  }

  it('-d: a removed real server gets no new connections, and its established NAT connection runs to the end', async () => {
    await natService('-t', svc4, [`${rs1.ip4}:80`, `${rs2.ip4}:80`]);
    const holdMs = 3000;
    const hold = streamingGet(lab, `http://${lab.vip4}/hold?ms=${holdMs}`, 20);
    try {
      const heldBy = await hold.firstLine;
      const removed = heldBy === rs1.name ? rs1 : rs2;
      const kept = removed === rs1 ? rs2 : rs1;
      await director.admOk(['-d', '-t', svc4, '-r', `${removed.ip4}:80`]);
      expect(await getMany(lab, `http://${lab.vip4}/`, 4)).toEqual(Array(4).fill(kept.name));
      const state = await Promise.race([hold.done.then(() => 'finished'), sleep(0).then(() => 'open')]);
      expect(state, 'the /hold connection ended before the checks ran').toBe('open');
      const res = await hold.done;
      expect(res.code, res.stderr).toBe(0);
      expect(res.body).toBe(`${heldBy}\n${'.'.repeat(holdMs / 200)}\n`);
    } finally {
      hold.kill();
    }
  });
});
