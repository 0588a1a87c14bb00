// The namespace lab itself (no daemon): reachability, and that only the director answers ARP/ND for the VIP.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ip } from '../../scripts/lab/netns.js';
import { curl, neighbour, requireBuilt, skipUnlessRoot, startLabEnv, tcpProbe, type LabEnv } from './helpers.js';

const skip = skipUnlessRoot('e2e lab');

describe.skipIf(skip)('the DR lab (seed 000 topology, no daemon)', () => {
  let env: LabEnv | undefined;

  beforeAll(async () => {
    requireBuilt(['dist/scripts/lab/http-server.js', 'build/bpf/xdp_pass.bpf.o']);
    env = await startLabEnv({ daemon: false });
  });

  afterAll(async () => {
    await env?.teardown();
  });

  it('every real server answers on its RIP, over IPv4 and IPv6', async () => {
    const { lab } = env!;
    for (const rs of lab.realServers) {
      for (const url of [`http://${rs.ip4}/`, `http://[${rs.ip6}]/`]) {
        const r = await curl(lab, url, 3);
        expect(r.code, `${url}: ${r.stderr}`).toBe(0);
        expect(r.body).toBe(`${rs.name}\n`);
      }
    }
  });

  it("the client reaches the director's DIP (the director's kernel refuses port 9)", async () => {
    const { lab } = env!;
    for (const addr of [lab.director.ip4, lab.director.ip6]) {
      // Refused: a RST came back from the director's kernel.
      expect(await tcpProbe(lab, 'client', addr, 9)).toBe('ECONNREFUSED');
      expect((await neighbour(lab, 'client', addr)).mac).toBe(lab.director.mac);
    }
  });

  it('ARP and neighbour discovery for the VIP are answered by the director only', async () => {
    const { lab } = env!;
    for (const vip of [lab.vip4, lab.vip6]) {
      expect(await tcpProbe(lab, 'client', vip, 9)).toBe('ECONNREFUSED');
      expect((await neighbour(lab, 'client', vip)).mac).toBe(lab.director.mac);
    }

    // Without the director's VIP nobody may answer: the real servers hold it on lo and must stay silent.
    await ip(lab.director.ns, ['addr', 'del', `${lab.vip4}/32`, 'dev', 'eth0']);
    await ip(lab.director.ns, ['-6', 'addr', 'del', `${lab.vip6}/128`, 'dev', 'eth0']);
    try {
      for (const vip of [lab.vip4, lab.vip6]) {
        await ip(lab.client.ns, ['neigh', 'flush', 'to', vip, 'dev', 'eth0']);
        // Address resolution fails after its 3 probes of 1 s: unreachable (or still waiting), never refused.
        expect(['EHOSTUNREACH', 'timeout']).toContain(await tcpProbe(lab, 'client', vip, 9, 5000));
        const n = await neighbour(lab, 'client', vip);
        expect(n.mac, `${vip} resolved to ${n.mac} (${n.state.join(',')})`).toBeUndefined();
      }
    } finally {
      await ip(lab.director.ns, ['addr', 'add', `${lab.vip4}/32`, 'dev', 'eth0'], { allowFailure: true });
      await ip(lab.director.ns, ['-6', 'addr', 'add', `${lab.vip6}/128`, 'dev', 'eth0', 'nodad'], { allowFailure: true });
      for (const vip of [lab.vip4, lab.vip6]) await ip(lab.client.ns, ['neigh', 'flush', 'to', vip, 'dev', 'eth0']);
    }
  });

  it("a real server accepts the VIP on eth0 and answers from the VIP (DR's return path), keeping the client's address", async () => {
    const { lab } = env!;
    // What the director's rewrite will do: the client's frame for the VIP lands at rs1's MAC.
    const rs1 = lab.realServers[0]!;
    for (const vip of [lab.vip4, lab.vip6]) {
      await ip(lab.client.ns, ['neigh', 'replace', vip, 'lladdr', rs1.mac, 'dev', 'eth0', 'nud', 'permanent']);
    }
    try {
      const v4 = await curl(lab, `http://${lab.vip4}/ip`, 3);
      expect(v4.code, v4.stderr).toBe(0);
      expect(v4.body.split(' ')[0]).toBe(lab.client.ip4);
      const v6 = await curl(lab, `http://[${lab.vip6}]/`, 3);
      expect(v6.code, v6.stderr).toBe(0);
      expect(v6.body).toBe(`${rs1.name}\n`);
    } finally {
      for (const vip of [lab.vip4, lab.vip6]) {
        await ip(lab.client.ns, ['neigh', 'del', vip, 'dev', 'eth0'], { allowFailure: true });
      }
    }
    // arp_announce=2: the real servers' own ARP requests carry their RIP, so the client never maps the VIP to them.
    const r = await ip(lab.client.ns, ['-j', 'neigh', 'show', 'dev', 'eth0']);
    const entries = JSON.parse(r.stdout || '[]') as Array<{ dst: string; lladdr?: string }>;
    const rsMacs = new Set(lab.realServers.map((rs) => rs.mac));
    const vipToRs = entries.filter((e) => rsMacs.has(e.lladdr ?? '') && (e.dst === lab.vip4 || e.dst === lab.vip6));
    expect(vipToRs).toEqual([]);
  });
});
