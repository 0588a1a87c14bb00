// End to end: xdpvsd --keepalived-conf in the namespace lab, health checks driving real traffic. Seed 004's file
// (lab addresses) with TCP_CHECK and inhibit_on_failure; then a SIGHUP reload to a MISC_CHECK configuration whose
// failing real server keeps its established connection while new ones all go to the other.
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDirector, type Director } from '../../scripts/lab/director.js';
import { sleep, waitFor } from '../../scripts/lab/netns.js';
import type { LabHost } from '../../scripts/lab/topology.js';
import type { ServiceView } from '../../src/lb/model.js';
import { getMany, parseLn, requireBuilt, skipUnlessRoot, startLabEnv, streamingGet, tally, type LabEnv } from './helpers.js';

const skip = skipUnlessRoot('e2e health checks');
const SEED_LAB = resolve(__dirname, '../fixtures/keepalived/seed-004-lab.conf');

describe.skipIf(skip)('health checks and keepalived.conf in the lab', () => {
  let env: LabEnv | undefined;
  let director: Director | undefined;
  let rs1: LabHost;
  let rs2: LabHost;
  let dir: string;
  let conf: string;

  beforeAll(async () => {
    requireBuilt(['dist/src/daemon/main.js', 'dist/src/cli/main.js', 'dist/scripts/lab/http-server.js', 'build/bpf/xdp_pass.bpf.o']);
    dir = mkdtempSync(join(tmpdir(), 'xdpvs-health-'));
    conf = join(dir, 'keepalived.conf');
    copyFileSync(SEED_LAB, conf);
    env = await startLabEnv({ realServers: 2, daemon: false });
    [rs1, rs2] = env.lab.realServers as [LabHost, LabHost];
    director = await startDirector(env.lab, { extraArgs: ['--keepalived-conf', conf] });
  }, 90_000);

  afterAll(async () => {
    await director?.stop().catch(() => undefined);
    await env?.teardown();
    rmSync(dir, { recursive: true, force: true });
  }, 60_000);

  const VIP = () => `http://${env!.lab.vip4}/`;
  const svcArg = () => `${env!.lab.vip4}:80`;
  const json = async (): Promise<ServiceView[]> => JSON.parse(await director!.admOk(['-Ln', '--json'])) as ServiceView[];
  const server = async (host: LabHost) => (await json())[0].servers.find((s) => s.address === host.ip4)!;

  it('seed 004 (TCP_CHECK, wrr 3:1, inhibit_on_failure): a stopped web server leaves rotation, shows weight 0, and comes back', async () => {
    // As loaded from the file: wrr with weights 3 and 1.
    expect(tally(await getMany(env!.lab, VIP(), 40))).toEqual({ [rs1.name]: 30, [rs2.name]: 10 });
    const ln = parseLn(await director!.admOk(['-Ln']));
    expect(ln[0]).toMatchObject({ proto: 'TCP', address: svcArg(), fields: ['wrr'] });
    expect(ln[0].realServers.map((r) => [r.address, r.fields[0], r.fields[1]])).toEqual([
      [`${rs1.ip4}:80`, 'Route', '3'],
      [`${rs2.ip4}:80`, 'Route', '1'],
    ]);

    await env!.realServers.stop(rs1.name);
    const stoppedAt = Date.now();
    // delay_loop 6 + nb_get_retry 3 x delay_before_retry 3 (refused connects fail at once) = 15 s, plus slack.
    await waitFor('rs1 to be marked down', async () => (await server(rs1)).health?.state === 'down', 25_000, 250);
    const took = Date.now() - stoppedAt;
    expect(took).toBeLessThanOrEqual(6_000 + 3 * 3_000 + 3_000);
    expect(await server(rs1)).toMatchObject({ weight: 3, health: { state: 'down', listed: true, effectiveWeight: 0, checker: `TCP_CHECK ${rs1.ip4}:80` } });
    // Every new request goes to rs2; -Ln shows rs1 at weight 0 as IPVS does with keepalived's inhibit_on_failure.
    expect(await getMany(env!.lab, VIP(), 8)).toEqual(Array(8).fill(rs2.name));
    const down = parseLn(await director!.admOk(['-Ln']));
    expect(down[0].realServers.map((r) => [r.address, r.fields[1]])).toEqual([
      [`${rs1.ip4}:80`, '0'],
      [`${rs2.ip4}:80`, '1'],
    ]);

    await env!.realServers.start(rs1.name);
    await waitFor('rs1 to come back', async () => (await server(rs1)).health?.state === 'up', 6_000 + 3_000, 250);
    expect((await server(rs1)).health).toMatchObject({ listed: true, effectiveWeight: 3 });
    expect(new Set(await getMany(env!.lab, VIP(), 8))).toEqual(new Set([rs1.name, rs2.name]));
    expect(director!.stderr()).toMatch(/"msg":"real server 198\.18\.0\.11:80 of tcp:198\.18\.0\.100:80 is down/);
  }, 90_000);

  it('SIGHUP reloads to MISC_CHECK: the failing real server keeps its established connection, new ones go to the other', async () => {
    const flag = (h: LabHost) => join(dir, `${h.name}-up`);
    for (const h of [rs1, rs2]) writeFileSync(flag(h), '');
    const rs = (h: LabHost) => `    real_server ${h.ip4} 80 {
        weight 1
        MISC_CHECK {
            misc_path "/usr/bin/test -e ${flag(h)}"
            misc_timeout 2
        }
    }
`;
    writeFileSync(
      conf,
      `global_defs {\n    router_id LAB\n}\nvirtual_server ${env!.lab.vip4} 80 {\n    delay_loop 1\n    lb_algo rr\n    lb_kind DR\n    protocol TCP\n    retry 1\n    delay_before_retry 1\n    rise 2\n${rs(rs1)}${rs(rs2)}}\n`,
    );
    process.kill(director!.pid, 'SIGHUP');
    await waitFor('the reload', async () => (await json())[0].scheduler === 'rr', 10_000, 200);
    await waitFor('both checked up', async () => (await json())[0].servers.every((s) => s.health?.state === 'up'), 10_000, 200);
    expect(new Set(await getMany(env!.lab, VIP(), 4))).toEqual(new Set([rs1.name, rs2.name]));

    const holdMs = 8000;
    const hold = streamingGet(env!.lab, `http://${env!.lab.vip4}/hold?ms=${holdMs}`, 30);
    try {
      const heldBy = await hold.firstLine;
      const failing = heldBy === rs1.name ? rs1 : rs2;
      const other = failing === rs1 ? rs2 : rs1;
      rmSync(flag(failing));
      // delay_loop 1 + retry 1 x delay_before_retry 1, plus a probe's time.
      await waitFor('the failing server out', async () => (await server(failing)).health?.state === 'down', 5_000, 100);
      // Without inhibit_on_failure it is gone from -Ln, as keepalived removes it from IPVS; --json still has it.
      const ln = parseLn(await director!.admOk(['-Ln']));
      expect(ln[0].realServers.map((r) => r.address)).toEqual([`${other.ip4}:80`]);
      expect(await server(failing)).toMatchObject({ health: { state: 'down', listed: false, effectiveWeight: 0 } });
      expect(await getMany(env!.lab, VIP(), 6)).toEqual(Array(6).fill(other.name));
      const state = await Promise.race([hold.done.then(() => 'finished'), sleep(0).then(() => 'open')]);
      expect(state, 'the hold ended before the checks ran').toBe('open');
      // Back after rise 2: two successes, a delay_loop apart.
      writeFileSync(flag(failing), '');
      await waitFor('the failing server back', async () => (await server(failing)).health?.state === 'up', 5_000, 100);
      // The established connection ran to its end on the server that failed its check.
      const res = await hold.done;
      expect(res.code, res.stderr).toBe(0);
      expect(res.body).toBe(`${heldBy}\n${'.'.repeat(holdMs / 200)}\n`);
    } finally {
      hold.kill();
    }
  }, 90_000);
});
