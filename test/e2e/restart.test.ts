// End to end: restarting or upgrading xdpvsd while traffic flows loses nothing (kill -9 and SIGTERM, then a start
// with the same --state), and `xdpvsd --detach` removes the data plane, its pins and its runtime file.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { BPFFS_ROOT, startDirector, type Director } from '../../scripts/lab/director.js';
import { ip, netnsPath, repoRoot, run, sleep, waitFor } from '../../scripts/lab/netns.js';
import type { DrLab, LabHost } from '../../scripts/lab/topology.js';
import { RUNTIME_DIR } from '../../src/cli/discover.js';
import { getMany, parseLn, requireBuilt, skipUnlessRoot, startLabEnv, streamingGet, tcpProbe, type LabEnv } from './helpers.js';

const skip = skipUnlessRoot('e2e restart');

/** One request's outcome, as the load generator in the client's namespace saw it. */
interface Shot {
  i: number;
  /** ms after the first request was due */
  at: number;
  /** how long it took */
  ms?: number;
  status?: number;
  body?: string;
  error?: string;
}

/**
 * A steady stream from the client: `count` GETs, one every `everyMs`, each on a new connection with a `timeoutMs`
 * bound (connect included), run by one node process in the client's namespace. Resolves with every outcome.
 */
async function steadyStream(lab: DrLab, url: string, count: number, everyMs: number, timeoutMs: number): Promise<Shot[]> {
  const script = `
    const http = require('node:http');
    const [url, count, everyMs, timeoutMs] = [process.argv[1], ...process.argv.slice(2).map(Number)];
    const out = new Array(count);
    let left = count;
    const start = Date.now();
    const report = () => { process.stdout.write(JSON.stringify(out) + '\\n'); process.exit(0); };
    const guard = setTimeout(report, count * everyMs + timeoutMs + 3000);
    const done = (r) => { if (out[r.i]) return; out[r.i] = r; if (--left === 0) { clearTimeout(guard); report(); } };
    for (let i = 0; i < count; i++) {
      setTimeout(() => {
        const t0 = Date.now();
        const at = t0 - start;
        const req = http.get(url, { agent: false }, (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (d) => { body += d; });
          res.on('end', () => done({ i, at, ms: Date.now() - t0, status: res.statusCode, body: body.trim() }));
          res.on('error', (e) => done({ i, at, error: e.code || e.message }));
        });
        const bound = setTimeout(() => req.destroy(new Error('no answer within ' + timeoutMs + ' ms')), timeoutMs);
        req.on('close', () => clearTimeout(bound));
        req.on('error', (e) => done({ i, at, error: e.code || e.message }));
      }, i * everyMs);
    }`;
  const r = await lab.exec('client', process.execPath, ['-e', script, url, String(count), String(everyMs), String(timeoutMs)], {
    timeoutMs: count * everyMs + timeoutMs + 15_000,
  });
  const shots = JSON.parse(r.stdout) as (Shot | null)[];
  return shots.map((s, i) => s ?? { i, at: i * everyMs, error: 'no outcome (the load generator gave up waiting)' });
}

/** The configuration columns of -Ln (scheduler; real server, Forward, Weight), without the connection counts. */
function lnConfig(text: string): string[] {
  return parseLn(text).flatMap((s) => [`${s.proto} ${s.address} ${s.fields.join(' ')}`, ...s.realServers.map((r) => `-> ${r.address} ${r.fields.slice(0, 2).join(' ')}`)]);
}

async function xdpOf(lab: DrLab): Promise<unknown> {
  const [link] = JSON.parse((await ip(lab.director.ns, ['-j', 'link', 'show', 'dev', lab.director.dev])).stdout) as { xdp?: unknown }[];
  return link?.xdp;
}

describe.skipIf(skip)('restarts and upgrades of xdpvsd while traffic flows', () => {
  let env: LabEnv | undefined;
  let lab: DrLab;
  let rs1: LabHost;
  let rs2: LabHost;
  /** Every daemon started, newest last: the newest is the one running. */
  const directors: Director[] = [];
  const director = (): Director => directors[directors.length - 1]!;
  let svc: string;

  beforeAll(async () => {
    requireBuilt(['dist/src/daemon/main.js', 'dist/src/cli/main.js', 'dist/scripts/lab/http-server.js', 'build/bpf/xdp_pass.bpf.o']);
    env = await startLabEnv({ realServers: 2, daemon: false });
    lab = env.lab;
    [rs1, rs2] = lab.realServers as [LabHost, LabHost];
    svc = `${lab.vip4}:80`;
    directors.push(await startDirector(lab));
  }, 90_000);

  afterAll(async () => {
    // Newest first: an older daemon's stop() would detach the data plane the newest one runs.
    for (const d of [...directors].reverse()) await d.stop().catch((e: unknown) => console.error('e2e teardown:', e));
    await env?.teardown();
  }, 60_000);

  beforeEach(async ({ onTestFailed }) => {
    onTestFailed(() => {
      for (const d of directors) console.error(`xdpvsd ${d.pid} stderr (last 4 KiB):\n${d.stderr().slice(-4096)}`);
    });
  });

  /**
   * The proof: a held-open connection and a steady stream of new ones across `signal` to the daemon and a start
   * with the same --state (and token), the daemon down for `downMs` in between.
   */
  async function restartUnderLoad(signal: NodeJS.Signals, downMs: number): Promise<void> {
    const d0 = director();
    if ((await d0.admOk(['-S', '-n'])) === '') {
      // Configured as an operator restores a director: ipvsadm-save -n output into xdpvsadm -R.
      const rules = `-A -t ${svc} -s rr\n-a -t ${svc} -r ${rs1.ip4}:80 -g -w 1\n-a -t ${svc} -r ${rs2.ip4}:80 -g -w 1\n`;
      await d0.admOk(['-R'], { input: rules });
      expect(await d0.admOk(['-S', '-n'])).toBe(rules);
    }
    const savedBefore = await d0.admOk(['-S', '-n']);
    const lnBefore = lnConfig(await d0.admOk(['-Ln']));
    const connsBefore = Number(parseLn(await d0.admOk(['-Ln', '--stats']))[0]!.fields[0]);

    const holdMs = 12_000;
    const hold = streamingGet(lab, `http://${lab.vip4}/hold?ms=${holdMs}`, 20);
    try {
      const heldBy = await hold.firstLine;
      const count = 160; // one every 50 ms: 8 s
      const t0 = Date.now();
      const stream = steadyStream(lab, `http://${lab.vip4}/`, count, 50, 2000);

      await sleep(1500);
      expect(await Promise.race([hold.done.then(() => 'finished'), sleep(0).then(() => 'open')])).toBe('open');
      const gone = await d0.kill(signal);
      const down = Date.now() - t0;
      expect(gone.signal ?? gone.code, `xdpvsd exit after ${signal}`).toBe(signal === 'SIGKILL' ? 'SIGKILL' : 0);
      expect(await xdpOf(lab), 'the program stays attached while no daemon runs').toBeDefined();
      expect((await d0.adm(['-Ln'], { timeoutMs: 5000 })).code, 'no API while the daemon is down').not.toBe(0);
      await sleep(downMs);
      const d1 = await startDirector(lab, { workDir: d0.workDir });
      const up = Date.now() - t0;
      directors.push(d1);
      expect(d1.stderr() + d1.stdout()).toMatch(/restored 1 service\(s\)/);
      const holdState = await Promise.race([hold.done.then(() => 'finished'), sleep(0).then(() => 'open')]);
      expect(holdState, 'the held connection spans the kill and the restart').toBe('open');

      const shots = await stream;
      const failed = shots.filter((s) => s.error !== undefined || s.status !== 200);
      expect(failed, `failed requests: ${JSON.stringify(failed.slice(0, 5))}`).toEqual([]);
      // The stream really ran while no daemon did (the load generator's clock starts a little after t0).
      const whileDown = shots.filter((s) => s.at > down + 200 && s.at < up - 200);
      expect(whileDown.length, `requests while the daemon was down (${down}..${up} ms)`).toBeGreaterThanOrEqual(10);
      // No request needed a SYN retransmission (the first comes after 1 s): nothing was even dropped once.
      const slowest = Math.max(...shots.map((s) => s.ms ?? Infinity));
      console.info(`${signal}: daemon down ${down}..${up} ms into the stream; ${shots.length} requests, ${whileDown.length} of them while it was down; slowest ${slowest} ms`);
      expect(slowest, 'the slowest request (ms)').toBeLessThan(1000);
      // rr went on alternating through the kill and the restart: the schedule cursor lives in a pinned map.
      const bodies = shots.map((s) => s.body!);
      expect(new Set(bodies)).toEqual(new Set([rs1.name, rs2.name]));
      for (let i = 1; i < bodies.length; i++) expect(bodies[i], `request ${i} of ${bodies.join(' ')}`).not.toBe(bodies[i - 1]);

      // The held connection ran to its end on its real server: every tick arrived.
      const held = await hold.done;
      expect(held.code, held.stderr).toBe(0);
      expect(held.body).toBe(`${heldBy}\n${'.'.repeat(holdMs / 200)}\n`);

      // The same configuration, counters carried over, and rr continues where the stream left it.
      expect(await d1.admOk(['-S', '-n'])).toBe(savedBefore);
      expect(lnConfig(await d1.admOk(['-Ln']))).toEqual(lnBefore);
      const connsAfter = Number(parseLn(await d1.admOk(['-Ln', '--stats']))[0]!.fields[0]);
      expect(connsAfter).toBe(connsBefore + 1 + count);
      const next = await getMany(lab, `http://${lab.vip4}/`, 4);
      expect(next[0], 'the first request after the stream').not.toBe(bodies[bodies.length - 1]);
      for (let i = 1; i < next.length; i++) expect(next[i]).not.toBe(next[i - 1]);
      // The new daemon's rate estimator runs (its first sample is a zero point, the next ones give a rate): keep a
      // few connections a second coming until -Ln --rate shows them.
      await waitFor('-Ln --rate to show connections per second', async () => {
        await getMany(lab, `http://${lab.vip4}/`, 4);
        const [rated] = parseLn(await d1.admOk(['-Ln', '--rate']));
        return Number(rated!.fields[0]) > 0 && Number(rated!.fields[3]) > 0;
      }, 15_000, 100);
    } finally {
      hold.kill();
    }
  }

  it('kill -9 and a start with the same --state: zero failed requests, the held connection completes, rr alternates on', async () => {
    await restartUnderLoad('SIGKILL', 1000);
  }, 60_000);

  it('an upgrade (SIGTERM, then start): the same', async () => {
    await restartUnderLoad('SIGTERM', 500);
  }, 60_000);

  it('xdpvsd --detach removes everything: no XDP on the interface, no pins, no runtime file; forwarding stops', async () => {
    const d = director();
    expect(await xdpOf(lab)).toBeDefined();
    await d.kill('SIGTERM');
    const pinDir = join(BPFFS_ROOT, String(d.netnsInode));
    const runtimeDir = join(RUNTIME_DIR, String(d.netnsInode));
    expect(existsSync(pinDir), 'pins stay after SIGTERM').toBe(true);

    const root = repoRoot();
    const r = await run(
      'nsenter',
      [`--net=${netnsPath(lab.director.ns)}`, '--', process.execPath, join(root, 'dist/src/daemon/main.js'), '--interface', lab.director.dev, '--detach'],
      { allowFailure: true, cwd: root, timeoutMs: 15_000 },
    );
    expect(r.code, r.stderr).toBe(0);
    expect(await xdpOf(lab), 'ip -j link: no xdp on the director\'s interface').toBeUndefined();
    expect(existsSync(pinDir), `${pinDir} removed`).toBe(false);
    expect(existsSync(runtimeDir), `${runtimeDir} removed`).toBe(false);
    // Nothing forwards any more: the VIP is the director's own address again, and its kernel refuses port 80.
    expect(await tcpProbe(lab, 'client', lab.vip4, 80)).toBe('ECONNREFUSED');
  }, 60_000);
});
