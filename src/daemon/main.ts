#!/usr/bin/env node
// xdpvsd: loads and attaches the director's XDP program, adopts pinned state, serves the API.

import { mkdirSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { serve } from '@hono/node-server';
import { createApp } from '../api/app.js';
import { runtimeFilePath, type RuntimeInfo } from '../cli/discover.js';
import { isXdpvsError } from '../errors.js';
import { Balancer } from '../lb/balancer.js';
import { attachXdp, detachXdp, ensureBpffs, loadObject, pinDirFor, removePins, type LoadedObject } from '../loader/program.js';
import { LB_MAPS, LbMaps } from '../maps/lb-maps.js';
import { createLogger, type Logger } from '../log.js';
import { getLink } from '../net/iproute.js';
import { IprouteNeighbourResolver } from '../net/neighbours.js';
import { LB_OBJECT, LB_PROGRAM, VERSION } from '../paths.js';
import { parseDaemonArgs, USAGE, type DaemonArgs } from './args.js';
import { readState, writeState } from './state-file.js';
import { loadOrCreateToken } from './token.js';

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

async function run(args: DaemonArgs, log: Logger): Promise<void> {
  const links = await Promise.all(args.interfaces.map((n) => getLink(n)));
  const pinDir = pinDirFor(args.interfaces[0]);
  const fs = ensureBpffs(pinDir);
  if (fs.message) log('info', fs.message);

  const token = loadOrCreateToken(args.tokenFile);
  const expectShapes = Object.fromEntries(Object.values(LB_MAPS).map((m) => [m.name, { keySize: m.keySize, valueSize: m.valueSize }]));
  const obj: LoadedObject = loadObject({ objectPath: LB_OBJECT, pinDir, programName: LB_PROGRAM, expectShapes });
  const attached = links.map((link) => {
    const r = attachXdp(link.ifindex, obj.programFd, args.xdpMode, { replace: true });
    if (r.warning) log('warn', r.warning, { interface: link.ifname });
    log('info', `attached ${LB_PROGRAM} to ${link.ifname} in ${r.mode} mode`, { progId: obj.programId, replaced: r.replacedProgId ?? null });
    return { name: link.ifname, ifindex: link.ifindex, xdpMode: r.mode };
  });

  const maps = new LbMaps(obj.backend);
  if (maps.getConfig().tcp_timeout === 0) maps.setConfig(IPVS_TIMEOUTS);

  const balancer = new Balancer(maps, new IprouteNeighbourResolver(), {
    onChange: args.stateFile ? (state) => writeState(args.stateFile!, state) : undefined,
    log: (level, msg, fields) => log(level, msg, fields),
  });
  const saved = args.stateFile ? readState(args.stateFile) : undefined;
  if (saved) {
    await balancer.restore(saved);
    log('info', `restored ${saved.services.length} service(s) from ${args.stateFile}`);
  }

  const app = createApp({ balancer, token, info: () => ({ version: VERSION, interfaces: attached }), log });
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

  // Leaving keeps the program attached and the maps pinned: traffic flows on, and the next start adopts them.
  const stop = (signal: string) => {
    log('info', `${signal}: stopping the API; the data plane keeps forwarding (xdpvsd --detach removes it)`);
    clearInterval(timer);
    rmSync(runtimeFile, { force: true });
    server.close();
    obj.close();
    process.exit(0);
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));

  log('info', `xdpvsd ready on ${info.url}`, { interfaces: attached.map((a) => a.name), pinDir });
  process.stdout.write(`xdpvsd ready on ${info.url}\n`);
}

async function main(): Promise<void> {
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
