#!/usr/bin/env node
// xdpvsd: loads and attaches the director's XDP program, adopts pinned state, serves the API.

import { mkdirSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { serve } from '@hono/node-server';
import { createApp } from '../api/app.js';
import { runtimeFilePath, type RuntimeInfo } from '../cli/discover.js';
import { isXdpvsError } from '../errors.js';
import { HealthMonitor } from '../health/monitor.js';
import { createNotifier } from '../health/notify.js';
import { KeepalivedLoader } from '../keepalived/apply.js';
import { Balancer } from '../lb/balancer.js';
import { ESTIMATOR_INTERVAL_MS } from '../lb/rates.js';
import { attachXdp, detachXdp, ensureBpffs, loadObject, pinDirFor, removePins, type LoadedObject } from '../loader/program.js';
import { LbMaps, directorMapShapes } from '../maps/lb-maps.js';
import { createLogger, type Logger } from '../log.js';
import { getLink, macFromText } from '../net/iproute.js';
import { natForwardingWarner } from '../net/forwarding.js';
import { IprouteNeighbourResolver } from '../net/neighbours.js';
import { LB_OBJECT, LB_PROGRAM, VERSION } from '../paths.js';
import { parseDaemonArgs, USAGE, type DaemonArgs } from './args.js';
import { loadConnTableSized } from './conn-table.js';
import { readState, writeState } from './state-file.js';
import { wantsRealServerRole } from '../realserver/args.js';
import { realServerMain } from '../realserver/main.js';
import { loadOrCreateToken } from './token.js';
import { ConnSync, disableSyncEvents } from '../sync/conn-sync.js';
import { loadSyncKey } from '../sync/key.js';

/** IPVS's default timeouts (ipvsadm -L --timeout: 900 120 300), plus its SYN_RECV and CLOSE ones. */
const IPVS_TIMEOUTS = { tcp_timeout: 900, tcpfin_timeout: 120, udp_timeout: 300, syn_timeout: 60, close_timeout: 10 };
const NEIGHBOUR_REFRESH_MS = 2000;

async function detach(args: DaemonArgs, log: Logger): Promise<void> {
  for (const name of args.interfaces) {
    const link = await getLink(name);
    const id = detachXdp(link.ifindex);
    log('info', id ? `detached XDP program ${id} from ${name}` : `nothing attached to ${name}`);
  }
  const pinDir = pinDirFor(args.interfaces[0]);
  removePins(pinDir);
  rmSync(runtimeFilePath(), { force: true });
  // The per-namespace directories go too once nothing else of this namespace is in them.
  for (const dir of [dirname(pinDir), dirname(runtimeFilePath())]) {
    try {
      rmdirSync(dir);
    } catch {
      /* not empty (another interface's pins) or already gone */
    }
  }
  log('info', 'removed pins and runtime file');
}

/** How often the connection counters are corrected and the templates of live clients extended. */
const CONN_UPKEEP_MS = 1000;

async function run(args: DaemonArgs, log: Logger): Promise<void> {
  // Read before anything is created: a key file anyone may read stops the start and leaves nothing behind.
  const syncKey = args.sync ? loadSyncKey(args.sync.keyFile) : undefined;
  const links = await Promise.all(args.interfaces.map((n) => getLink(n)));
  const pinDir = pinDirFor(args.interfaces[0]);
  const fs = ensureBpffs(pinDir);
  if (fs.message) log('info', fs.message);

  const token = loadOrCreateToken(args.tokenFile);
  const expectShapes = directorMapShapes();
  const obj: LoadedObject = loadConnTableSized({ objectPath: LB_OBJECT, pinDir, programName: LB_PROGRAM, expectShapes }, args.connTableSize, args.interfaces[0]);
  // Frames for other MACs (promiscuous ports, bridge flooding) are not ours to balance (bpf/host.h). An interface
  // without a MAC (a tunnel device) has no other hosts' frames: left out, it is not filtered.
  new LbMaps(obj.backend).setInterfaceMacs(
    links.filter((l) => l.address && l.link_type !== 'none').map((l) => ({ ifindex: l.ifindex, mac: macFromText(l.address!) })),
  );
  const attached = links.map((link) => {
    const r = attachXdp(link.ifindex, obj.programFd, args.xdpMode, { replace: true });
    if (r.warning) log('warn', r.warning, { interface: link.ifname });
    log('info', `attached ${LB_PROGRAM} to ${link.ifname} in ${r.mode} mode`, { progId: obj.programId, replaced: r.replacedProgId ?? null });
    return { name: link.ifname, ifindex: link.ifindex, xdpMode: r.mode };
  });

  const maps = new LbMaps(obj.backend);
  if (maps.getConfig().tcp_timeout === 0) maps.setConfig(IPVS_TIMEOUTS);

  const natCheck = natForwardingWarner(args.interfaces, (msg) => log('warn', msg));
  const balancer = new Balancer(maps, new IprouteNeighbourResolver(), {
    onChange: (state) => {
      if (args.stateFile) writeState(args.stateFile, state);
      natCheck(state);
    },
    log: (level, msg, fields) => log(level, msg, fields),
    tunnelSources: args.tunnelSources,
  });
  const saved = args.stateFile ? readState(args.stateFile) : undefined;
  if (saved) {
    await balancer.restore(saved);
    log('info', `restored ${saved.services.length} service(s) from ${args.stateFile}`);
  }

  // Health checks and keepalived.conf: loaded before the API opens, so a bad file stops the start (FILE:LINE).
  const health = new HealthMonitor({ target: balancer, log, notifier: createNotifier({ log, webhookUrl: args.notifyWebhook }) });
  const keepalived = args.keepalivedConf ? new KeepalivedLoader(args.keepalivedConf, balancer, health, log) : undefined;
  const reload = keepalived
    ? async () => {
        const r = await keepalived.load();
        health.setRouterId(keepalived.routerId);
        return r;
      }
    : undefined;
  if (reload) await reload();

  // Connection sync with the other directors (docs/sync.md).
  const sync =
    args.sync && syncKey
      ? await ConnSync.start({ backend: obj.backend, directory: () => balancer.syncDirectory(), key: syncKey, listen: args.sync.listen, peers: args.sync.peers, log })
      : undefined;
  if (sync) log('info', 'connection sync on', { listen: sync.status().listen, peers: sync.status().peers });
  else disableSyncEvents(obj.backend);

  const app = createApp({ balancer, token, info: () => ({ version: VERSION, interfaces: attached }), log, processMetrics: true, reload, sync: sync && (() => sync.status()) });
  const server = serve({ fetch: app.fetch, hostname: args.listenHost, port: args.listenPort });
  await new Promise<void>((resolve, reject) => {
    server.once('listening', () => resolve());
    server.once('error', reject);
  });

  const runtimeFile = runtimeFilePath();
  const host = args.listenHost.includes(':') ? `[${args.listenHost}]` : args.listenHost;
  const info: RuntimeInfo = { url: `http://${host}:${args.listenPort}`, tokenFile: args.tokenFile, pid: process.pid };
  mkdirSync(dirname(runtimeFile), { recursive: true, mode: 0o755 });
  writeFileSync(runtimeFile, JSON.stringify(info) + '\n');

  let refreshing = false;
  const timer = setInterval(() => {
    if (refreshing) return;
    refreshing = true;
    balancer
      .refreshNeighbours()
      .catch((e) => log('warn', `neighbour refresh failed: ${(e as Error).message}`))
      .finally(() => (refreshing = false));
  }, NEIGHBOUR_REFRESH_MS);
  // Connection upkeep (src/lb/sched-sync.ts): counts corrected for entries that left silently, templates of live
  // clients extended.
  const upkeepTimer = setInterval(() => {
    try {
      balancer.maintainConnections();
    } catch (e) {
      log('warn', `connection upkeep failed: ${(e as Error).message}`);
    }
  }, CONN_UPKEEP_MS);
  // IPVS's rate estimator (ipvsadm -L --rate): one sample of every counter each 2 s.
  const rateTimer = setInterval(() => {
    try {
      balancer.estimateRates();
    } catch (e) {
      log('warn', `rate estimation failed: ${(e as Error).message}`);
    }
  }, ESTIMATOR_INTERVAL_MS);

  // Leaving keeps the program attached and the maps pinned: traffic flows on, and the next start adopts them.
  const stop = (signal: string) => {
    log('info', `${signal}: stopping the API; the data plane keeps forwarding (xdpvsd --detach removes it)`);
    clearInterval(timer);
    clearInterval(rateTimer);
    clearInterval(upkeepTimer);
    sync?.stop();
    rmSync(runtimeFile, { force: true });
    server.close();
    obj.close();
    // keepalived's omega runs down notifiers at shutdown: give them a moment, not forever.
    void Promise.race([health.stop(), new Promise((r) => setTimeout(r, 3000))]).finally(() => process.exit(0));
  };
  process.on('SIGHUP', () => {
    if (!reload) {
      log('warn', 'SIGHUP: nothing to reload (no --keepalived-conf)');
      return;
    }
    log('info', `SIGHUP: reloading ${args.keepalivedConf}`);
    reload().catch((e) => log('error', `reload failed, nothing changed: ${(e as Error).message}`, isXdpvsError(e) ? { code: e.code, ...e.details } : {}));
  });
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));

  log('info', `xdpvsd ready on ${info.url}`, { interfaces: attached.map((a) => a.name), pinDir });
  process.stdout.write(`xdpvsd ready on ${info.url}\n`);
}

async function main(): Promise<void> {
  // The real server's decapsulation is a role of the same binary; its code lives in src/realserver.
  if (wantsRealServerRole(process.argv.slice(2))) return realServerMain(process.argv.slice(2));
  let args: DaemonArgs;
  try {
    args = parseDaemonArgs(process.argv.slice(2));
  } catch (e) {
    process.stderr.write(`xdpvsd: ${(e as Error).message}\n`);
    process.exit(2);
  }
  if (args.help) {
    process.stdout.write(USAGE + '\n');
    return;
  }
  const log = createLogger(args.logLevel);
  try {
    if (args.detach) await detach(args, log);
    else await run(args, log);
  } catch (e) {
    const code = isXdpvsError(e) ? e.code : 'XDPVS_ERR_INTERNAL';
    log('error', (e as Error).message, { code, ...(isXdpvsError(e) ? e.details : {}) });
    process.stderr.write(`xdpvsd: ${(e as Error).message}\n`);
    process.exit(1);
  }
}

void main();
