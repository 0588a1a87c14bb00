// End to end: persistence (-p, -M) in the namespace lab through the real xdpvsd and xdpvsadm. A client's new
// connections stay on one real server while its template lives; the template lives on while the client has
// connections and ends `timeout` seconds after the last one; -Lnc shows it as IPVS does; clients under one netmask
// share it. Short timeouts (--set, -p 3) keep the test quick.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ip, sleep } from '../../scripts/lab/netns.js';
import type { Director } from '../../scripts/lab/director.js';
import type { DrLab, LabHost } from '../../scripts/lab/topology.js';
import { requireBuilt, skipUnlessRoot, startLabEnv, streamingGet, type LabEnv } from './helpers.js';

const skip = skipUnlessRoot('e2e persistence');

/** A second client address, in the lab's /24 (the real servers answer it directly, as DR does). */
const CLIENT2 = '198.18.0.20';
/** The persistence timeout (s) and the FIN_WAIT timeout (s) of these tests. */
const P = 3;
const FIN = 2;

describe.skipIf(skip)('persistence through xdpvsd and xdpvsadm', () => {
  let env: LabEnv | undefined;
  let lab: DrLab;
  let director: Director;
  let svc: string;

  beforeAll(async () => {
    requireBuilt(['dist/src/daemon/main.js', 'dist/src/cli/main.js', 'dist/scripts/lab/http-server.js', 'build/bpf/xdp_pass.bpf.o']);
    env = await startLabEnv({ realServers: 2 });
    lab = env.lab;
    director = env.director!;
    svc = `${lab.vip4}:80`;
    await ip(lab.client.ns, ['addr', 'add', `${CLIENT2}/24`, 'dev', 'eth0']);
  }, 90_000);

  afterAll(async () => {
    await env?.teardown();
  }, 60_000);

  beforeEach(async ({ onTestFailed }) => {
    onTestFailed(() => {
      console.error(`xdpvsd stderr (last 4 KiB):\n${director.stderr().slice(-4096)}`);
    });
    await director.admOk(['-C']);
    await director.admOk(['--set', '900', String(FIN), '300']);
  });

  async function service(extra: string[]): Promise<void> {
    await director.admOk(['-A', '-t', svc, '-s', 'rr', ...extra]);
    for (const rs of lab.realServers) await director.admOk(['-a', '-t', svc, '-r', `${rs.ip4}:80`, '-g']);
  }

  /** One GET from the client (from `src` when given): the real server's name. */
  async function get(src?: string): Promise<string> {
    const args = ['-s', '-S', '--max-time', '5', ...(src ? ['--interface', src] : []), `http://${lab.vip4}/`];
    const r = await lab.exec('client', 'curl', args, { timeoutMs: 10_000, allowFailure: true });
    if (r.code !== 0) throw new Error(`curl ${args.join(' ')}: exit ${r.code}: ${r.stderr.trim()}`);
    return r.stdout.trim();
  }

  /** -Lnc rows that are templates: [client, virtual, destination]. */
  async function templates(): Promise<string[][]> {
    const text = await director.admOk(['-Lnc']);
    return text
      .trim()
      .split('\n')
      .slice(2)
      .map((l) => l.split(/\s+/))
      .filter((r) => r[2] === 'NONE')
      .map((r) => [r[3]!, r[4]!, r[5]!]);
  }

  async function waitNoTemplates(limitMs: number): Promise<number> {
    const start = Date.now();
    while ((await templates()).length > 0) {
      if (Date.now() - start > limitMs) throw new Error(`templates still there after ${limitMs} ms: ${JSON.stringify(await templates())}`);
      await sleep(250);
    }
    return Date.now() - start;
  }

  it('holds a client on its real server for the timeout, then lets rr move it on', async () => {
    await service(['-p', String(P)]);
    const first = await get();
    for (let i = 0; i < 4; i++) expect(await get()).toBe(first);
    const rsFirst = lab.realServers.find((r) => r.name === first)!;
    // -Lnc: the template, as IPVS shows it: client port 0, state NONE, the real server.
    expect(await templates()).toEqual([[`${lab.client.ip4}:0`, svc, `${rsFirst.ip4}:80`]]);
    // Its expiry: within the persistence timeout after the client's last connection has gone (FIN_WAIT: FIN s).
    const waited = await waitNoTemplates((P + FIN + 4) * 1000);
    expect(waited).toBeGreaterThan(1000);
    // Gone: the next connection is scheduled again, and rr gives the other server.
    expect(await get()).not.toBe(first);
  });

  it('connections at intervals shorter than the timeout keep it alive past it; a held connection too', async () => {
    await service(['-p', String(P)]);
    const first = await get();
    // 3 * P seconds of requests one second apart: the template never lapses.
    for (let i = 0; i < 3 * P; i++) {
      await sleep(1000);
      expect(await get(), `request ${i + 2}`).toBe(first);
    }
    // A connection held open for longer than the timeout keeps it as well (the daemon extends it every second).
    const held = streamingGet(lab, `http://${lab.vip4}/hold?ms=${(P + 3) * 1000}`, P + 20);
    try {
      expect(await held.firstLine).toBe(first);
      await sleep((P + 1) * 1000);
      expect(await get()).toBe(first);
      const r = await held.done;
      expect(r.code, r.stderr).toBe(0);
    } finally {
      held.kill();
    }
  }, 60_000);

  it('another client gets its own template; with -M 255.255.255.0 both share one', async () => {
    await service(['-p', '60']);
    const a = await get();
    const b = await get(CLIENT2);
    expect(b).not.toBe(a); // rr moved on for the new client
    expect(await get()).toBe(a);
    expect(await get(CLIENT2)).toBe(b);
    expect((await templates()).map((t) => t[0]).sort()).toEqual([`${lab.client.ip4}:0`, `${CLIENT2}:0`]);

    // -E replaces the definition: a netmask makes one template for the /24 (old templates go with the old netmask).
    await director.admOk(['-E', '-t', svc, '-s', 'rr', '-p', '60', '-M', '255.255.255.0']);
    expect(parseFirstServiceLine(await director.admOk(['-Ln']))).toBe(`TCP  ${svc} rr persistent 60 mask 255.255.255.0`);
    const c = await get();
    expect(await get(CLIENT2)).toBe(c);
    expect(await get()).toBe(c);
    expect(await templates()).toEqual([['198.18.0.0:0', svc, `${lab.realServers.find((r: LabHost) => r.name === c)!.ip4}:80`]]);
  });
});

function parseFirstServiceLine(ln: string): string | undefined {
  return ln.split('\n').find((l) => /^(TCP|UDP)\s/.test(l));
}
