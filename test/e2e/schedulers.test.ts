// End to end: the LVS schedulers in the namespace lab, through the real xdpvsd and xdpvsadm, with real HTTP over
// TCP. Long-lived connections (GET /hold) are held open so that the count-reading schedulers (lc, wlc, sed, nq)
// have counts to follow; -Ln must show them as ActiveConn/InActConn, -Lnc must list them, and -E/-e under traffic
// must break none of them. Every expected choice follows IPVS's rules (docs/schedulers.md): ties go to the real
// server added last, which IPVS keeps at the head of its list.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ip, sleep } from '../../scripts/lab/netns.js';
import type { Director } from '../../scripts/lab/director.js';
import type { DrLab, LabHost } from '../../scripts/lab/topology.js';
import { getMany, parseLn, requireBuilt, skipUnlessRoot, startLabEnv, streamingGet, type LabEnv, type StreamingGet } from './helpers.js';

const skip = skipUnlessRoot('e2e schedulers');

/** How long a held connection stays open: long enough for every check made while it is held. */
const HOLD_MS = 20_000;

describe.skipIf(skip)('LVS schedulers through xdpvsd and xdpvsadm', () => {
  let env: LabEnv | undefined;
  let lab: DrLab;
  let director: Director;
  let rs1: LabHost;
  let rs2: LabHost;
  let svc: string;
  let holds: { h: StreamingGet; ms: number }[] = [];

  beforeAll(async () => {
    requireBuilt(['dist/src/daemon/main.js', 'dist/src/cli/main.js', 'dist/scripts/lab/http-server.js', 'build/bpf/xdp_pass.bpf.o']);
    env = await startLabEnv({ realServers: 2 });
    lab = env.lab;
    director = env.director!;
    [rs1, rs2] = lab.realServers as [LabHost, LabHost];
    svc = `${lab.vip4}:80`;
  }, 90_000);

  afterAll(async () => {
    for (const { h } of holds) h.kill();
    await env?.teardown();
  }, 60_000);

  beforeEach(async ({ onTestFailed }) => {
    onTestFailed(() => {
      console.error(`xdpvsd stderr (last 4 KiB):\n${director.stderr().slice(-4096)}`);
    });
    for (const { h } of holds) h.kill();
    holds = [];
    await director.admOk(['-C']);
    await director.admOk(['--set', '900', '120', '300']);
  });

  async function service(scheduler: string, servers: Array<[LabHost, number]>, extra: string[] = []): Promise<void> {
    await director.admOk(['-A', '-t', svc, '-s', scheduler, ...extra]);
    for (const [rs, weight] of servers) await director.admOk(['-a', '-t', svc, '-r', `${rs.ip4}:80`, '-g', '-w', String(weight)]);
  }

  /** Opens a long-lived connection and resolves with the real server's name once it answers (the flow is ESTABLISHED then). */
  async function hold(ms = HOLD_MS): Promise<string> {
    const h = streamingGet(lab, `http://${lab.vip4}/hold?ms=${ms}`, ms / 1000 + 30);
    holds.push({ h, ms });
    return h.firstLine;
  }

  /** ActiveConn and InActConn per real server address from -Ln. */
  async function conns(): Promise<Record<string, [number, number]>> {
    const [s] = parseLn(await director.admOk(['-Ln']));
    return Object.fromEntries((s?.realServers ?? []).map((r) => [r.address.split(':')[0], [Number(r.fields[2]), Number(r.fields[3])]]));
  }

  async function holdsEndIntact(): Promise<void> {
    for (const { h, ms } of holds) {
      const r = await h.done;
      expect(r.code, r.stderr).toBe(0);
      const [name, dots] = r.body.split('\n');
      expect(dots, `held connection to ${name} cut short`).toBe('.'.repeat(Math.floor(ms / 200)));
    }
  }

  it('lc: each new held connection goes to the server with the fewest (ties: the one added last)', async () => {
    await service('lc', [[rs1, 1], [rs2, 5]]);
    const seen = [];
    for (let i = 0; i < 4; i++) seen.push(await hold());
    expect(seen).toEqual([rs2.name, rs1.name, rs2.name, rs1.name]);
    expect(await conns()).toEqual({ [rs1.ip4]: [2, 0], [rs2.ip4]: [2, 0] });
  });

  it('wlc: least (active * 256 + inactive) / weight', async () => {
    await service('wlc', [[rs1, 1], [rs2, 2]]);
    const seen = [];
    for (let i = 0; i < 5; i++) seen.push(await hold());
    // 0/1 ~ 0/2 -> rs2; 256/2 vs 0/1 -> rs1; 256/1 vs 256/2 -> rs2; 256 vs 512/2 tie -> rs2; 256 vs 768/2 -> rs1.
    expect(seen).toEqual([rs2.name, rs1.name, rs2.name, rs2.name, rs1.name]);
    expect(await conns()).toEqual({ [rs1.ip4]: [2, 0], [rs2.ip4]: [3, 0] });
    // A short request now: rs1 512/1 against rs2 768/2 -> rs2.
    expect(await getMany(lab, `http://${lab.vip4}/`, 1)).toEqual([rs2.name]);
  });

  it('sed: least (active + 1) / weight', async () => {
    await service('sed', [[rs1, 1], [rs2, 3]]);
    const seen = [];
    for (let i = 0; i < 4; i++) seen.push(await hold());
    // 1/1 vs 1/3 -> rs2; 2/3 -> rs2; 3/3 vs 1/1 tie -> rs2; 4/3 vs 1/1 -> rs1.
    expect(seen).toEqual([rs2.name, rs2.name, rs2.name, rs1.name]);
  });

  it('nq: an idle server first, whatever its weight, then sed', async () => {
    await service('nq', [[rs1, 1], [rs2, 3]]);
    const seen = [];
    for (let i = 0; i < 3; i++) seen.push(await hold());
    expect(seen).toEqual([rs2.name, rs1.name, rs2.name]);
  });

  it('fo sends everything to the heaviest; -x makes a server overloaded and lc goes around it', async () => {
    await service('fo', [[rs1, 1], [rs2, 5]]);
    expect(await getMany(lab, `http://${lab.vip4}/`, 4)).toEqual(Array(4).fill(rs2.name));
    await director.admOk(['-C']);
    await director.admOk(['-A', '-t', svc, '-s', 'lc']);
    await director.admOk(['-a', '-t', svc, '-r', `${rs1.ip4}:80`, '-g', '-w', '1']);
    await director.admOk(['-a', '-t', svc, '-r', `${rs2.ip4}:80`, '-g', '-w', '1', '-x', '1']);
    expect(await hold()).toBe(rs2.name); // the tie goes to rs2, which reaches its upper threshold
    for (let i = 0; i < 3; i++) expect(await hold()).toBe(rs1.name);
    const th = parseLn(await director.admOk(['-Ln', '--thresholds']))[0]!;
    expect(th.realServers.map((r) => [r.address, ...r.fields])).toEqual([
      [`${rs1.ip4}:80`, '0', '0', '3', '0'],
      [`${rs2.ip4}:80`, '1', '0', '1', '0'],
    ]);
  });

  it('-Ln counts go up as connections open, move to InActConn when they close, and leave when they expire', async () => {
    await director.admOk(['--set', '900', '3', '300']); // FIN_WAIT lasts 3 s
    await service('rr', [[rs1, 1], [rs2, 1]]);
    expect(await director.admOk(['-L', '--timeout'])).toBe('Timeout (tcp tcpfin udp): 900 3 300\n');
    const a = await hold(3000);
    const b = await hold(3000);
    expect(new Set([a, b])).toEqual(new Set([rs1.name, rs2.name]));
    expect(await conns()).toEqual({ [rs1.ip4]: [1, 0], [rs2.ip4]: [1, 0] });
    // -Lnc lists both, ESTABLISHED, from the client to the VIP (earlier tests' closed connections linger in FIN_WAIT
    // and CLOSE until they expire, as in IPVS).
    const lnc = await director.admOk(['-Lnc']);
    expect(lnc.split('\n').slice(0, 2)).toEqual(['IPVS connection entries', 'pro expire state       source             virtual            destination']);
    const rows = lnc.trim().split('\n').slice(2).map((l) => l.split(/\s+/)).filter((r) => r[2] === 'ESTABLISHED');
    expect(rows.map((r) => [r[0], r[2], r[3]!.split(':')[0], r[4], r[5]!.split(':')[0]]).sort()).toEqual(
      [
        ['TCP', 'ESTABLISHED', lab.client.ip4, svc, rs1.ip4],
        ['TCP', 'ESTABLISHED', lab.client.ip4, svc, rs2.ip4],
      ].sort(),
    );
    const json = JSON.parse(await director.admOk(['-Lnc', '--json'])) as Array<{ state: string; client: { address: string } }>;
    expect(json.filter((c) => c.state === 'ESTABLISHED').map((c) => c.client.address)).toEqual([lab.client.ip4, lab.client.ip4]);
    // They end: FIN_WAIT is inactive.
    await holdsEndIntact();
    await sleep(300);
    expect(await conns()).toEqual({ [rs1.ip4]: [0, 1], [rs2.ip4]: [0, 1] });
    // FIN_WAIT expires after 3 s: nothing left, and the data plane's own counters are corrected (lc sees 0 again).
    const deadline = Date.now() + 10_000;
    let now = await conns();
    while (Date.now() < deadline && (now[rs1.ip4]![1] || now[rs2.ip4]![1])) {
      await sleep(500);
      now = await conns();
    }
    expect(now).toEqual({ [rs1.ip4]: [0, 0], [rs2.ip4]: [0, 0] });
    holds = [];
  });

  it('sh and mh keep a client on one real server', async () => {
    for (const scheduler of ['sh', 'mh']) {
      await director.admOk(['-C']);
      await service(scheduler, [[rs1, 1], [rs2, 1]]);
      const bodies = await getMany(lab, `http://${lab.vip4}/`, 8);
      expect(new Set(bodies).size, `${scheduler}: ${bodies.join(' ')}`).toBe(1);
    }
  });

  it('a service for a VIP prefix: dh and lblc keep each destination address on one real server', async () => {
    // The clients' side routes the prefix to the director; the real servers take every address of it as local
    // (docs/schedulers.md, "Services whose VIP is a prefix").
    const prefix = '198.18.8.0/24';
    await ip(lab.client.ns, ['route', 'replace', prefix, 'via', lab.director.ip4]);
    for (const rs of lab.realServers) await ip(rs.ns, ['route', 'replace', 'local', prefix, 'dev', 'lo']);
    for (const scheduler of ['dh', 'lblc']) {
      await director.admOk(['-C']);
      await director.admOk(['-A', '-t', `${prefix}:80`, '-s', scheduler]);
      for (const rs of [rs1, rs2]) await director.admOk(['-a', '-t', `${prefix}:80`, '-r', `${rs.ip4}:80`, '-g']);
      expect(parseLn(await director.admOk(['-Ln']))[0]).toMatchObject({ address: `${prefix}:80`, fields: [scheduler] });
      const byAddress: Record<string, string[]> = {};
      for (let round = 0; round < 2; round++) {
        for (let i = 1; i <= 12; i++) {
          (byAddress[`198.18.8.${i}`] ??= []).push(...(await getMany(lab, `http://198.18.8.${i}/`, 1)));
        }
      }
      for (const [addr, names] of Object.entries(byAddress)) expect(new Set(names).size, `${scheduler} ${addr}: ${names.join(' ')}`).toBe(1);
      // And the addresses are spread over both servers (dh: by hash; lblc: each new address to the least loaded).
      expect(new Set(Object.values(byAddress).map((n) => n[0])), scheduler).toEqual(new Set([rs1.name, rs2.name]));
    }
    // -Lnc shows the destination address each connection was made to.
    const virtuals = (await director.admOk(['-Lnc'])).split('\n').filter((l) => l.includes('198.18.8.'));
    expect(virtuals.length).toBeGreaterThan(0);
  });

  it('-E (scheduler) and -e (weights, weight 0) under traffic break no established connection', async () => {
    await service('rr', [[rs1, 1], [rs2, 1]]);
    const first = [];
    for (let i = 0; i < 4; i++) first.push(await hold(40_000));
    expect(new Set(first)).toEqual(new Set([rs1.name, rs2.name]));
    for (const sched of ['wlc', 'lc', 'sh', 'mh', 'sed', 'wrr']) {
      await director.admOk(['-E', '-t', svc, '-s', sched]);
      expect(await getMany(lab, `http://${lab.vip4}/`, 1)).toHaveLength(1);
    }
    await director.admOk(['-e', '-t', svc, '-r', `${rs1.ip4}:80`, '-g', '-w', '0']);
    await director.admOk(['-e', '-t', svc, '-r', `${rs2.ip4}:80`, '-g', '-w', '3']);
    // Quiescent rs1 takes nothing new, under wrr and after switching to lc.
    expect(await getMany(lab, `http://${lab.vip4}/`, 3)).toEqual(Array(3).fill(rs2.name));
    await director.admOk(['-E', '-t', svc, '-s', 'lc']);
    expect(await getMany(lab, `http://${lab.vip4}/`, 2)).toEqual(Array(2).fill(rs2.name));
    // rs1's held connections are still counted there, and they all run to their end.
    const c = await conns();
    expect(c[rs1.ip4]![0]).toBe(first.filter((n) => n === rs1.name).length);
    await holdsEndIntact();
    holds = [];
  }, 90_000);
});
