// `npm run demo`: the seed's VS/DR lab in network namespaces, configured with xdpvsadm exactly as with ipvsadm.
import { installSignalCleanup } from './lab/netns.js';
import { startDirector, type Director } from './lab/director.js';
import { startRealServers, type RealServers } from './lab/realservers.js';
import { createDrLab, LAB_PLAN, type DrLab } from './lab/topology.js';

const VIP = LAB_PLAN.vip4;
const SERVICE = `${VIP}:80`;
const REQUESTS = 4;

let lab: DrLab | undefined;
let realServers: RealServers | undefined;
let director: Director | undefined;
/** Set on SIGINT/SIGTERM: the signal handler does the teardown and sets the exit status (130/143). */
let interrupted = false;

async function teardown(): Promise<void> {
  const steps: Array<() => Promise<void>> = [
    async () => director?.stop(),
    async () => realServers?.stopAll(),
    async () => lab?.destroy(),
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

let failed = false;
try {
  await main();
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
