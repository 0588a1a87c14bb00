// The NAT lab with everything running (HTTP on 80 and 8080, UDP on 53 in every real server, xdpvsd on both of the
// director's interfaces), a UDP request from the client, and the daemon's reason counters: shared by nat and mixed.
import { join } from 'node:path';
import { startDirector, type Director } from '../../scripts/lab/director.js';
import { createNatLab, type NatLab, type NatLabOptions } from '../../scripts/lab/nat-topology.js';
import { installSignalCleanup, repoRoot } from '../../scripts/lab/netns.js';
import { startRealServers, type RealServers } from '../../scripts/lab/realservers.js';
import type { LabHostName } from '../../scripts/lab/topology.js';
import type { Reason } from '../../src/maps/reasons.js';
import { requireBuilt } from './helpers.js';

export interface NatEnv {
  lab: NatLab;
  director: Director;
  /** HTTP servers on port 80 and on 8080 (the target of port-mapping tests), UDP servers on 53. */
  http: RealServers;
  http8080: RealServers;
  udp: RealServers;
  /** The daemon's reason counters (GET /v1/stats). */
  reasons(): Promise<Record<Reason, number>>;
  /** Stops everything and removes the lab; idempotent, never throws. */
  teardown(): Promise<void>;
}

export async function startNatEnv(opts: NatLabOptions = {}): Promise<NatEnv> {
  requireBuilt([
    'dist/src/daemon/main.js',
    'dist/src/cli/main.js',
    'dist/scripts/lab/http-server.js',
    'dist/scripts/lab/udp-server.js',
    'build/bpf/xdp_pass.bpf.o',
  ]);
  installSignalCleanup();
  const env: Partial<NatEnv> = {};
  let done: Promise<void> | undefined;
  const teardown = (): Promise<void> => {
    done ??= (async () => {
      for (const step of [
        () => env.director?.stop(),
        () => env.http?.stopAll(),
        () => env.http8080?.stopAll(),
        () => env.udp?.stopAll(),
        () => env.lab?.destroy(),
      ]) {
        try {
          await step();
        } catch (e) {
          console.error('e2e teardown:', e);
        }
      }
    })();
    return done;
  };
  try {
    env.lab = await createNatLab(opts);
    env.http = await startRealServers(env.lab);
    env.http8080 = await startRealServers(env.lab, { port: 8080 });
    env.udp = await startRealServers(env.lab, { script: join(repoRoot(), 'dist/scripts/lab/udp-server.js'), port: 53 });
    env.director = await startDirector(env.lab, { interfaces: [env.lab.director.dev, env.lab.director.private.dev] });
  } catch (e) {
    await teardown();
    throw e;
  }
  const { lab, director } = env as Required<Pick<NatEnv, 'lab' | 'director'>>;
  const reasons = async (): Promise<Record<Reason, number>> => {
    const r = await lab.exec('director', 'curl', ['-sS', '--max-time', '5', `${director.server}/v1/stats`]);
    return (JSON.parse(r.stdout) as { reasons: Record<Reason, number> }).reasons;
  };
  return { ...(env as Required<Omit<NatEnv, 'reasons' | 'teardown'>>), reasons, teardown };
}

export interface UdpAnswer {
  /** Where the answer came from (the VIP and service port, through NAT). */
  from: string;
  port: number;
  body: string;
}

/**
 * One UDP request from a lab host on a fresh socket (a new source port: a new connection for the director) and its
 * answer, by node inside the namespace. Throws when no answer arrives within timeoutMs.
 */
export async function udpRequest(
  lab: Pick<NatLab, 'exec'>,
  from: LabHostName,
  addr: string,
  port: number,
  payload: string,
  timeoutMs = 3000,
): Promise<UdpAnswer> {
  const script = `
    const [host, port, payload, ms] = process.argv.slice(1);
    const s = require('node:dgram').createSocket(host.includes(':') ? 'udp6' : 'udp4');
    const t = setTimeout(() => { console.log(JSON.stringify({ timeout: true })); process.exit(0); }, Number(ms));
    s.on('message', (m, r) => {
      console.log(JSON.stringify({ from: r.address, port: r.port, body: m.toString('latin1') }));
      clearTimeout(t);
      s.close();
    });
    s.send(Buffer.from(payload, 'latin1'), Number(port), host);`;
  const r = await lab.exec(from, process.execPath, ['-e', script, addr, String(port), payload, String(timeoutMs)], {
    timeoutMs: timeoutMs + 5000,
  });
  const out = JSON.parse(r.stdout.trim()) as UdpAnswer & { timeout?: boolean };
  if (out.timeout) throw new Error(`no UDP answer from ${addr}:${port} to "${payload}" within ${timeoutMs} ms`);
  return out;
}
