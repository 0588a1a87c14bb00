// End to end, seed 000's VS/DR lab: the real xdpvsd on the director's veth, configured with xdpvsadm, real HTTP over TCP.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { sleep } from '../../scripts/lab/netns.js';
import type { Director } from '../../scripts/lab/director.js';
import type { DrLab, LabHost } from '../../scripts/lab/topology.js';
import {
  curl,
  getMany,
  parseLn,
  requireBuilt,
  skipUnlessRoot,
  startLabEnv,
  streamingGet,
  tally,
  type LabEnv,
} from './helpers.js';

const skip = skipUnlessRoot('e2e DR');

/** Bodies must alternate strictly between the two names, whichever comes first. */
function expectStrictAlternation(bodies: string[], names: [string, string]): void {
  expect(new Set(bodies), `bodies: ${bodies.join(' ')}`).toEqual(new Set(names));
  for (let i = 1; i < bodies.length; i++) {
    expect(bodies[i], `request ${i + 1} of ${bodies.join(' ')}`).not.toBe(bodies[i - 1]);
  }
}

describe.skipIf(skip)('VS/DR through xdpvsd and xdpvsadm (seed 000)', () => {
  let env: LabEnv | undefined;
  let lab: DrLab;
  let director: Director;
  let rs1: LabHost;
  let rs2: LabHost;
  let svc4: string;
  let svc6: string;

  beforeAll(async () => {
    requireBuilt([
      'dist/src/daemon/main.js',
      'dist/src/cli/main.js',
      'dist/scripts/lab/http-server.js',
      'build/bpf/xdp_pass.bpf.o',
    ]);
    env = await startLabEnv({ realServers: 2 });
    lab = env.lab;
    director = env.director!;
    [rs1, rs2] = lab.realServers as [LabHost, LabHost];
    svc4 = `${lab.vip4}:80`;
    svc6 = `[${lab.vip6}]:80`;
  }, 90_000);

  afterAll(async () => {
    await env?.teardown();
  }, 60_000);

  beforeEach(async ({ onTestFailed }) => {
    onTestFailed(() => {
      // What the daemon said is the first thing to read when the data plane does not do what the test expects.
      console.error(`xdpvsd stderr (last 4 KiB):\n${director.stderr().slice(-4096)}`);
    });
    await director.admOk(['-C']);
  });

  async function drService(service: string, scheduler: string, servers: Array<[string, number]>): Promise<void> {
    await director.admOk(['-A', '-t', service, '-s', scheduler]);
    for (const [rip, weight] of servers) {
      await director.admOk(['-a', '-t', service, '-r', rip, '-g', '-w', String(weight)]);
    }
  }

  it('rr alternates strictly between the two real servers over 8 requests (IPv4), keeping the client address', async () => {
    await drService(svc4, 'rr', [
      [`${rs1.ip4}:80`, 1],
      [`${rs2.ip4}:80`, 1],
    ]);
    const bodies = await getMany(lab, `http://${lab.vip4}/`, 8);
    expectStrictAlternation(bodies, [rs1.name, rs2.name]);

    // Direct routing does not touch the IP header: the real server sees the client itself.
    const seen = await curl(lab, `http://${lab.vip4}/ip`);
    expect(seen.code, seen.stderr).toBe(0);
    expect(seen.body.split(' ')[0]).toBe(lab.client.ip4);
  });

  it('rr alternates strictly through the IPv6 VIP as well', async () => {
    await drService(svc6, 'rr', [
      [`[${rs1.ip6}]:80`, 1],
      [`[${rs2.ip6}]:80`, 1],
    ]);
    const bodies = await getMany(lab, `http://[${lab.vip6}]/`, 8);
    expectStrictAlternation(bodies, [rs1.name, rs2.name]);
  });

  it('wrr with weights 3 and 1 gives exactly 30:10 over 40 connections', async () => {
    await drService(svc4, 'wrr', [
      [`${rs1.ip4}:80`, 3],
      [`${rs2.ip4}:80`, 1],
    ]);
    const bodies = await getMany(lab, `http://${lab.vip4}/`, 40);
    expect(tally(bodies)).toEqual({ [rs1.name]: 30, [rs2.name]: 10 });
  });

  it('-d: the removed real server gets no new connections, and its established connection runs to the end', async () => {
    await drService(svc4, 'rr', [
      [`${rs1.ip4}:80`, 1],
      [`${rs2.ip4}:80`, 1],
    ]);
    const holdMs = 4000;
    const hold = streamingGet(lab, `http://${lab.vip4}/hold?ms=${holdMs}`, 20);
    try {
      const heldBy = await hold.firstLine;
      const removed = lab.realServers.find((h) => h.name === heldBy);
      expect(removed, `the hold was answered by "${heldBy}"`).toBeDefined();
      const kept = removed === rs1 ? rs2 : rs1;

      await director.admOk(['-d', '-t', svc4, '-r', `${removed!.ip4}:80`]);
      const services = parseLn(await director.admOk(['-Ln']));
      expect(services.map((s) => s.address)).toEqual([svc4]);
      expect(services[0]!.realServers.map((r) => r.address)).toEqual([`${kept.ip4}:80`]);

      const bodies = await getMany(lab, `http://${lab.vip4}/`, 6);
      expect(bodies).toEqual(Array(6).fill(kept.name));

      // All of that happened while the held connection was still open...
      const state = await Promise.race([hold.done.then(() => 'finished'), sleep(0).then(() => 'open')]);
      expect(state, 'the /hold connection ended before the checks ran; make holdMs longer').toBe('open');
      // ...and it runs to its end on the removed real server: every tick arrives.
      const res = await hold.done;
      expect(res.code, res.stderr).toBe(0);
      expect(res.body).toBe(`${heldBy}\n${'.'.repeat(holdMs / 200)}\n`);
    } finally {
      hold.kill();
    }
  });

  it('-Ln and -Ln --stats show the service and real servers with Route and counters after traffic', async () => {
    await drService(svc4, 'rr', [
      [`${rs1.ip4}:80`, 1],
      [`${rs2.ip4}:80`, 1],
    ]);
    await getMany(lab, `http://${lab.vip4}/`, 4);

    const ln = await director.admOk(['-Ln']);
    expect(ln).toMatch(/^IP Virtual Server version \S+ \(size=\d+\)$/m);
    const [svc] = parseLn(ln);
    expect(svc, ln).toMatchObject({ proto: 'TCP', address: svc4 });
    expect(svc!.fields[0], ln).toBe('rr');
    expect(svc!.realServers.map((r) => [r.address, r.fields[0], r.fields[1]]), ln).toEqual([
      [`${rs1.ip4}:80`, 'Route', '1'],
      [`${rs2.ip4}:80`, 'Route', '1'],
    ]);

    const statsText = await director.admOk(['-Ln', '--stats']);
    expect(statsText).toMatch(/Conns\s+InPkts\s+OutPkts\s+InBytes\s+OutBytes/);
    const [stats] = parseLn(statsText);
    expect(stats?.address, statsText).toBe(svc4);
    const num = (f: string[], i: number): number => Number(f[i]);
    // Conns, InPkts, OutPkts, InBytes, OutBytes. DR: replies never cross the director, so nothing goes out.
    expect(num(stats!.fields, 0), statsText).toBe(4);
    expect(num(stats!.fields, 1), statsText).toBeGreaterThanOrEqual(4);
    expect(num(stats!.fields, 3), statsText).toBeGreaterThan(0);
    expect(num(stats!.fields, 2), statsText).toBe(0);
    expect(stats!.realServers.map((r) => r.address), statsText).toEqual([`${rs1.ip4}:80`, `${rs2.ip4}:80`]);
    for (const r of stats!.realServers) {
      expect(num(r.fields, 0), statsText).toBe(2);
      expect(num(r.fields, 1), statsText).toBeGreaterThanOrEqual(2);
    }
  });

  it('bad input through xdpvsadm exits non-zero with a clear message and changes nothing', async () => {
    await drService(svc4, 'rr', [
      [`${rs1.ip4}:80`, 1],
      [`${rs2.ip4}:80`, 1],
    ]);
    const before = await director.admOk(['-Ln']);

    const cases: Array<{ args: string[]; message: RegExp }> = [
      // -a to a service that does not exist
      { args: ['-a', '-t', `${lab.vip4}:8080`, '-r', `${rs1.ip4}:80`, '-g'], message: /service not defined/i },
      // malformed addresses
      { args: ['-a', '-t', svc4, '-r', '198.18.0.300:80', '-g'], message: /address/i },
      { args: ['-A', '-t', '198.18.0:80', '-s', 'rr'], message: /address/i },
      // a scheduler that does not exist, on a new service and on the existing one
      { args: ['-A', '-t', `${lab.vip4}:81`, '-s', 'nosuch'], message: /scheduler/i },
      { args: ['-E', '-t', svc4, '-s', 'nosuch'], message: /scheduler/i },
    ];
    for (const c of cases) {
      const r = await director.adm(c.args);
      const what = `xdpvsadm ${c.args.join(' ')} -> exit ${r.code}, stderr: ${r.stderr.trim()}`;
      expect(r.code, what).not.toBe(0);
      expect(r.code, what).not.toBeNull();
      expect(r.stderr.trim(), what).toMatch(c.message);
      expect(r.stderr, what).not.toMatch(/^\s+at /m); // a message, not a stack trace
    }

    expect(await director.admOk(['-Ln'])).toBe(before);
    // And the service still works as configured.
    expectStrictAlternation(await getMany(lab, `http://${lab.vip4}/`, 4), [rs1.name, rs2.name]);
  });
});
