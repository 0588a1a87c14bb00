// End to end, seed 001's session: one service holding real servers with different forwarding methods ("Masq", "Route"
// and "Tunnel" side by side), and -e changing a real server's method while its connections are still open.
//
// The lab is the NAT lab (scripts/lab/nat-topology.ts) with every real server also holding the VIP on lo: each can then
// serve by NAT (replies through the director, rewritten back to the VIP by XDP) and by direct routing (replies sent
// from the VIP itself; here they reach the client through the director's kernel, which is their default gateway);
// rs3 also decapsulates tunnelled packets with the project's XDP program (xdpvsd --role realserver).
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { Director } from '../../scripts/lab/director.js';
import { sleep } from '../../scripts/lab/netns.js';
import type { NatLab } from '../../scripts/lab/nat-topology.js';
import type { LabHost } from '../../scripts/lab/topology.js';
import { setUpRealServer } from '../../scripts/lab/realserver-setup.js';
import { curl, getMany, parseLn, skipUnlessRoot, streamingGet, type LnService } from './helpers.js';
import { startDecap, type DecapRoles } from '../../scripts/lab/tun-topology.js';
import { startNatEnv, type NatEnv } from './nat-env.js';

const skip = skipUnlessRoot('e2e mixed methods');

const num = (f: string[], i: number): number => Number(f[i]);

describe.skipIf(skip)('one service mixing forwarding methods; -e changing a method under traffic (seed 001)', () => {
  let env: NatEnv | undefined;
  let lab: NatLab;
  let director: Director;
  let rs1: LabHost;
  let rs2: LabHost;
  let rs3: LabHost;
  let decap: DecapRoles | undefined;
  let svc4: string;

  beforeAll(async () => {
    env = await startNatEnv({ realServers: 3, vipOnRealServers: true });
    lab = env.lab;
    director = env.director;
    [rs1, rs2, rs3] = lab.realServers as [LabHost, LabHost, LabHost];
    svc4 = `${lab.vip4}:80`;
    // rs3 also takes tunnelled packets: this kernel has no ipip module, so the project's XDP decapsulation strips them.
    await setUpRealServer(rs3.ns, 'tun', { dev: rs3.dev, vips: [lab.vip4, lab.vip6], decap: 'none' });
    decap = await startDecap(lab, [rs3]);
  }, 120_000);

  afterAll(async () => {
    await decap?.stop();
    await env?.teardown();
  }, 60_000);

  beforeEach(async ({ onTestFailed }) => {
    onTestFailed(() => {
      console.error(`xdpvsd stderr (last 4 KiB):\n${director.stderr().slice(-4096)}`);
    });
    await director.admOk(['-C']);
  });

  async function stats(): Promise<{ text: string; svc: LnService; byAddr: Map<string, string[]> }> {
    const text = await director.admOk(['-Ln', '--stats']);
    const [svc] = parseLn(text);
    return { text, svc: svc!, byAddr: new Map(svc!.realServers.map((r) => [r.address, r.fields])) };
  }

  for (const family of ['IPv4', 'IPv6'] as const) {
    it(`Route and Masq in one rr service (${family}): strict alternation, both keep the client address, only Masq counts replies`, async () => {
      const v6 = family === 'IPv6';
      const vip = v6 ? lab.vip6 : lab.vip4;
      const svc = v6 ? `[${vip}]:80` : `${vip}:80`;
      const ep = (rs: LabHost) => (v6 ? `[${rs.ip6}]:80` : `${rs.ip4}:80`);
      const url = v6 ? `http://[${vip}]` : `http://${vip}`;
      await director.admOk(['-A', '-t', svc, '-s', 'rr']);
      await director.admOk(['-a', '-t', svc, '-r', ep(rs1), '-m', '-w', '2']);
      await director.admOk(['-a', '-t', svc, '-r', ep(rs2), '-g', '-w', '2']);

      const ln = await director.admOk(['-Ln']);
      expect(parseLn(ln)[0]!.realServers.map((r) => [r.address, r.fields[0], r.fields[1]]), ln).toEqual([
        [ep(rs1), 'Masq', '2'],
        [ep(rs2), 'Route', '2'],
      ]);

      const bodies = await getMany(lab, `${url}/`, 8);
      expect(new Set(bodies), bodies.join(' ')).toEqual(new Set([rs1.name, rs2.name]));
      for (let i = 1; i < bodies.length; i++) expect(bodies[i], bodies.join(' ')).not.toBe(bodies[i - 1]);
      // Both methods leave the client's address alone.
      for (let i = 0; i < 2; i++) {
        const r = await curl(lab, `${url}/ip`);
        expect(r.code, r.stderr).toBe(0);
        expect(r.body.split(' ')[0]).toBe(v6 ? lab.client.ip6 : lab.client.ip4);
      }
      const s = await stats();
      const nat = s.byAddr.get(ep(rs1))!;
      const dr = s.byAddr.get(ep(rs2))!;
      expect([num(nat, 0), num(dr, 0)], s.text).toEqual([5, 5]);
      // Conns InPkts OutPkts InBytes OutBytes: replies cross the director (and are counted) only for Masq.
      expect(num(nat, 2), s.text).toBeGreaterThan(0);
      expect(num(nat, 4), s.text).toBeGreaterThan(0);
      expect([num(dr, 2), num(dr, 4)], s.text).toEqual([0, 0]);
      expect(num(s.svc.fields, 2), s.text).toBe(num(nat, 2));
    });
  }

  for (const family of ['IPv4', 'IPv6'] as const) {
    it(`Masq, Route and Tunnel in one rr service, as in seed 001's session (${family})`, async () => {
      const v6 = family === 'IPv6';
      const vip = v6 ? lab.vip6 : lab.vip4;
      const svc = v6 ? `[${vip}]:80` : `${vip}:80`;
      const ep = (rs: LabHost) => (v6 ? `[${rs.ip6}]:80` : `${rs.ip4}:80`);
      await director.admOk(['-A', '-t', svc, '-s', 'rr']);
      await director.admOk(['-a', '-t', svc, '-r', ep(rs1), '-m', '-w', '2']);
      await director.admOk(['-a', '-t', svc, '-r', ep(rs2), '-g', '-w', '2']);
      await director.admOk(['-a', '-t', svc, '-r', ep(rs3), '-i', '-w', '2']);
      const ln = await director.admOk(['-Ln']);
      expect(parseLn(ln)[0]!.realServers.map((r) => [r.address, r.fields[0]]), ln).toEqual([
        [ep(rs1), 'Masq'],
        [ep(rs2), 'Route'],
        [ep(rs3), 'Tunnel'],
      ]);

      const bodies = await getMany(lab, `http://${v6 ? `[${vip}]` : vip}/`, 9);
      expect(bodies).toEqual([rs1.name, rs2.name, rs3.name, rs1.name, rs2.name, rs3.name, rs1.name, rs2.name, rs3.name]);
      const s = await stats();
      for (const rs of [rs1, rs2, rs3]) expect(num(s.byAddr.get(ep(rs))!, 0), s.text).toBe(3);
      expect(num(s.byAddr.get(ep(rs1))!, 2), s.text).toBeGreaterThan(0);
      expect(num(s.byAddr.get(ep(rs2))!, 2), s.text).toBe(0);
      expect(num(s.byAddr.get(ep(rs3))!, 2), s.text).toBe(0);
    });
  }

  it('-e from Masq to Route under traffic: the open connection finishes through NAT, new ones go by direct routing', async () => {
    await director.admOk(['-A', '-t', svc4, '-s', 'rr']);
    await director.admOk(['-a', '-t', svc4, '-r', `${rs1.ip4}:80`, '-m']);
    const holdMs = 4000;
    const hold = streamingGet(lab, `http://${lab.vip4}/hold?ms=${holdMs}`, 20);
    try {
      expect(await hold.firstLine).toBe(rs1.name);
      const before = await stats();

      // ipvsadm -e replaces weight and method together.
      await director.admOk(['-e', '-t', svc4, '-r', `${rs1.ip4}:80`, '-g', '-w', '1']);
      const ln = await director.admOk(['-Ln']);
      expect(parseLn(ln)[0]!.realServers.map((r) => r.fields[0]), ln).toEqual(['Route']);
      expect(await getMany(lab, `http://${lab.vip4}/`, 3)).toEqual([rs1.name, rs1.name, rs1.name]);

      const state = await Promise.race([hold.done.then(() => 'finished'), sleep(0).then(() => 'open')]);
      expect(state, 'the /hold connection ended before the checks ran; make holdMs longer').toBe('open');
      const res = await hold.done;
      expect(res.code, res.stderr).toBe(0);
      expect(res.body).toBe(`${rs1.name}\n${'.'.repeat(holdMs / 200)}\n`);

      // The real server's new record counts only the new, directly routed connections (no replies); the service
      // kept counting the held connection's replies, rewritten by XDP through its old record.
      const after = await stats();
      const rs = after.byAddr.get(`${rs1.ip4}:80`)!;
      expect([num(rs, 0), num(rs, 2)], after.text).toEqual([3, 0]);
      expect(num(after.svc.fields, 2), `${before.text}\n${after.text}`).toBeGreaterThan(num(before.svc.fields, 2));
    } finally {
      hold.kill();
    }
  });

  it('-e from Route to Masq under traffic: the open connection finishes by direct routing, new ones through NAT', async () => {
    await director.admOk(['-A', '-t', svc4, '-s', 'rr']);
    await director.admOk(['-a', '-t', svc4, '-r', `${rs2.ip4}:80`, '-g']);
    const holdMs = 4000;
    const hold = streamingGet(lab, `http://${lab.vip4}/hold?ms=${holdMs}`, 20);
    try {
      expect(await hold.firstLine).toBe(rs2.name);
      await director.admOk(['-e', '-t', svc4, '-r', `${rs2.ip4}:80`, '-m']);
      expect(parseLn(await director.admOk(['-Ln']))[0]!.realServers.map((r) => r.fields[0])).toEqual(['Masq']);
      expect(await getMany(lab, `http://${lab.vip4}/`, 3)).toEqual([rs2.name, rs2.name, rs2.name]);
      const res = await hold.done;
      expect(res.code, res.stderr).toBe(0);
      expect(res.body).toBe(`${rs2.name}\n${'.'.repeat(holdMs / 200)}\n`);
      const s = await stats();
      const rs = s.byAddr.get(`${rs2.ip4}:80`)!;
      expect(num(rs, 0), s.text).toBe(3);
      expect(num(rs, 2), s.text).toBeGreaterThan(0);
    } finally {
      hold.kill();
    }
  });
});
