// `npm run demo`: the seed's VS/DR lab in network namespaces, configured with xdpvsadm exactly as with ipvsadm.
// `npm run demo -- --method nat`: the seed's VS/NAT lab (a two-armed director) instead.
// `npm run demo -- --method tun`: VS/TUN, real servers one router away decapsulating with xdpvsd --role realserver.
import { parseArgs } from 'node:util';
import { installSignalCleanup } from './lab/netns.js';
import { startDirector, type Director } from './lab/director.js';
import { createNatLab, type NatLab } from './lab/nat-topology.js';
import { startRealServers, type RealServers } from './lab/realservers.js';
import { createDrLab, LAB_PLAN, type DrLab } from './lab/topology.js';
import { createTunLab, startDecap, type DecapRoles, type TunLab } from './lab/tun-topology.js';

const VIP = LAB_PLAN.vip4;
const SERVICE = `${VIP}:80`;
const REQUESTS = 4;

let lab: DrLab | undefined;
let natLab: NatLab | undefined;
let tunLab: TunLab | undefined;
let decap: DecapRoles | undefined;
let realServers: RealServers | undefined;
let director: Director | undefined;
/** Set on SIGINT/SIGTERM: the signal handler does the teardown and sets the exit status (130/143). */
let interrupted = false;

async function teardown(): Promise<void> {
  const steps: Array<() => Promise<void>> = [
    async () => director?.stop(),
    async () => realServers?.stopAll(),
    async () => lab?.destroy(),
    async () => natLab?.destroy(),
    async () => decap?.stop(),
    async () => tunLab?.destroy(),
  ];
  for (const step of steps) {
    try {
      await step();
    } catch (e) {
      process.stderr.write(`demo: teardown: ${e instanceof Error ? e.message : String(e)}\n`);
    }
  }
}

function say(line: string): void {
  process.stdout.write(`${line}\n`);
}

async function adm(args: string[]): Promise<void> {
  say(`[director]# xdpvsadm ${args.join(' ')}`);
  const r = await director!.adm(args);
  if (r.stdout) process.stdout.write(r.stdout.endsWith('\n') ? r.stdout : `${r.stdout}\n`);
  if (r.code !== 0) {
    throw new Error(`xdpvsadm ${args.join(' ')} exited with ${r.code}: ${r.stderr.trim()}`);
  }
}

async function main(): Promise<void> {
  // Ctrl-C or SIGTERM: stop the daemon, the real servers, remove the lab, then exit 130/143.
  installSignalCleanup((signal) => {
    interrupted = true;
    process.stderr.write(`\ndemo: ${signal}: cleaning up the lab\n`);
  });

  say('# xdpvs demo: the LVS VS/DR lab (client, director, two real servers on one segment) in network namespaces');
  lab = await createDrLab({ realServers: 2 });
  say(`# lab ${lab.id}: client ${lab.client.ip4}, director DIP ${lab.director.ip4}, VIP ${VIP}`);
  for (const rs of lab.realServers) say(`#   ${rs.name} RIP ${rs.ip4}, VIP on lo, arp_ignore=1 arp_announce=2, web page "${rs.name}"`);
  realServers = await startRealServers(lab);
  director = await startDirector(lab);
  say(`# xdpvsd is running on the director (eth0), API ${director.server}`);
  say('');

  await adm(['-A', '-t', SERVICE, '-s', 'rr']);
  for (const rs of lab.realServers) await adm(['-a', '-t', SERVICE, '-r', `${rs.ip4}:80`, '-g']);
  say('');

  for (let i = 0; i < REQUESTS; i++) {
    say(`[client]# curl http://${VIP}/`);
    const r = await lab.exec('client', 'curl', ['-s', '-S', '--max-time', '5', `http://${VIP}/`], {
      timeoutMs: 10_000,
      allowFailure: true,
    });
    if (r.code !== 0) throw new Error(`curl http://${VIP}/ from the client failed (exit ${r.code}): ${r.stderr.trim()}`);
    process.stdout.write(r.stdout.endsWith('\n') ? r.stdout : `${r.stdout}\n`);
  }
  say('');

  await adm(['-Ln']);
  say('');
  await adm(['-Ln', '--stats']);
}

/** The seed-000 VS/NAT lab: the same commands with -m, the director's two interfaces, replies back through it. */
async function mainNat(): Promise<void> {
  installSignalCleanup((signal) => {
    interrupted = true;
    process.stderr.write(`\ndemo: ${signal}: cleaning up the lab\n`);
  });

  say('# xdpvs demo: the LVS VS/NAT lab (client on the public side, a two-armed director, two real servers on a');
  say('# private network whose default gateway is the director) in network namespaces');
  natLab = await createNatLab({ realServers: 2 });
  const d = natLab.director;
  say(`# lab ${natLab.id}: client ${natLab.client.ip4}; director eth0 ${d.ip4} with VIP ${VIP}, eth1 ${d.private.ip4} (DIP)`);
  for (const rs of natLab.realServers) say(`#   ${rs.name} RIP ${rs.ip4}, default route via ${d.private.ip4}, web page "${rs.name}"`);
  realServers = await startRealServers(natLab);
  director = await startDirector(natLab, { interfaces: [d.dev, d.private.dev] });
  say(`# xdpvsd is running on the director (eth0 and eth1), API ${director.server}`);
  say('');

  await adm(['-A', '-t', SERVICE, '-s', 'rr']);
  for (const rs of natLab.realServers) await adm(['-a', '-t', SERVICE, '-r', `${rs.ip4}:80`, '-m']);
  say('');

  for (let i = 0; i < REQUESTS; i++) {
    say(`[client]# curl http://${VIP}/`);
    const r = await natLab.exec('client', 'curl', ['-s', '-S', '--max-time', '5', `http://${VIP}/`], {
      timeoutMs: 10_000,
      allowFailure: true,
    });
    if (r.code !== 0) throw new Error(`curl http://${VIP}/ from the client failed (exit ${r.code}): ${r.stderr.trim()}`);
    process.stdout.write(r.stdout.endsWith('\n') ? r.stdout : `${r.stdout}\n`);
  }
  say('');

  await adm(['-Ln']);
  say('');
  // Replies come back through the director: OutPkts/OutBytes count them (they stay 0 with -g).
  await adm(['-Ln', '--stats']);
}

/** VS/TUN: the same commands with -i; the real servers sit behind a router and strip the tunnel with our XDP program. */
async function mainTun(): Promise<void> {
  installSignalCleanup((signal) => {
    interrupted = true;
    process.stderr.write(`\ndemo: ${signal}: cleaning up the lab\n`);
  });

  say('# xdpvs demo: the LVS VS/TUN lab (client and director on one segment, two real servers one router away) in');
  say('# network namespaces; the real servers decapsulate with the project\'s XDP program (this kernel has no ipip)');
  tunLab = await createTunLab({ remoteRealServers: 2, localRealServers: 0 });
  say(`# lab ${tunLab.id}: client ${tunLab.client.ip4}, director DIP ${tunLab.director.ip4}, VIP ${VIP}, router ${tunLab.router.ip4}`);
  for (const rs of tunLab.realServers) say(`#   ${rs.name} RIP ${rs.ip4} (behind the router), VIP on lo, arp_ignore=1 arp_announce=2, web page "${rs.name}"`);
  realServers = await startRealServers(tunLab);
  decap = await startDecap(tunLab, tunLab.realServers);
  for (const rs of tunLab.realServers) say(`[${rs.name}]# xdpvsd --role realserver --interface eth0 --vip ${tunLab.vip4} --vip ${tunLab.vip6}`);
  director = await startDirector(tunLab);
  say(`# xdpvsd is running on the director (eth0), API ${director.server}`);
  say('');

  await adm(['-A', '-t', SERVICE, '-s', 'rr']);
  for (const rs of tunLab.realServers) await adm(['-a', '-t', SERVICE, '-r', `${rs.ip4}:80`, '-i']);
  say('');

  for (let i = 0; i < REQUESTS; i++) {
    say(`[client]# curl http://${VIP}/`);
    const r = await tunLab.exec('client', 'curl', ['-s', '-S', '--max-time', '5', `http://${VIP}/`], { timeoutMs: 10_000, allowFailure: true });
    if (r.code !== 0) throw new Error(`curl http://${VIP}/ from the client failed (exit ${r.code}): ${r.stderr.trim()}`);
    process.stdout.write(r.stdout.endsWith('\n') ? r.stdout : `${r.stdout}\n`);
  }
  say('');

  await adm(['-Ln']);
  say('');
  // Replies go from the real servers straight to the client: OutPkts/OutBytes stay 0, as with -g.
  await adm(['-Ln', '--stats']);
  say('');
  for (const rs of tunLab.realServers) {
    const st = await decap.status(rs.name);
    say(`[${rs.name}]# xdpvsd --role realserver --interface eth0 --status   # packets decapsulated: ${st.counters.decap}`);
  }
}

function demoMethod(): 'dr' | 'tun' | 'nat' {
  const { values } = parseArgs({ options: { method: { type: 'string', default: 'dr' } }, strict: true });
  const m = values.method === 'tunnel' ? 'tun' : values.method;
  if (m !== 'dr' && m !== 'tun' && m !== 'nat') throw new Error(`--method must be dr, tun or nat, not "${m}"`);
  return m;
}

let failed = false;
try {
  const method = demoMethod();
  await (method === 'nat' ? mainNat() : method === 'tun' ? mainTun() : main());
} catch (e) {
  failed = true;
  // After a signal, requests fail because the lab is going away: that is not worth a message.
  if (!interrupted) process.stderr.write(`demo failed: ${e instanceof Error ? e.message : String(e)}\n`);
}
if (!interrupted) {
  await teardown();
  say(failed ? '# demo failed; lab removed' : '# lab removed');
  process.exit(failed ? 1 : 0);
}
