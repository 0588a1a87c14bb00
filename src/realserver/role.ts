// xdpvsd's real-server role: loads and attaches the decapsulation program (bpf/xdpvs_decap.bpf.c), writes its VIPs
// and this host's addresses, and keeps the addresses current while it runs.

import { rmdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { ErrorCode, XdpvsError } from '../errors.js';
import type { IpAddress } from '../lb/address.js';
import { KernelMapBackend } from '../loader/kernel-backend.js';
import { attachedXdpProgramName, attachXdp, BPFFS, detachXdp, ensureBpffs, loadObject, pinDirFor, removePins } from '../loader/program.js';
import { DECAP_MAPS, DecapMaps } from '../maps/decap-maps.js';
import type { Logger } from '../log.js';
import { getLink } from '../net/iproute.js';
import { DECAP_OBJECT, DECAP_PROGRAM } from '../paths.js';
import { localAddresses } from './addresses.js';
import type { RealServerArgs } from './args.js';

/** How often the accepted outer destinations follow this host's addresses. */
const ADDRESS_REFRESH_MS = 2000;

/**
 * The real-server role's pin directory: /sys/fs/bpf/xdpvs/realserver/<netns inode>/<ifname>, apart from the
 * director's (/sys/fs/bpf/xdpvs/<netns inode>/<ifname>), so that neither can adopt the other's maps.
 */
export function realServerPinDir(ifname: string): string {
  pinDirFor(ifname); // validates the name
  return join(BPFFS, 'xdpvs', 'realserver', String(statSync('/proc/self/ns/net').ino), ifname);
}

const EXPECT_SHAPES = Object.fromEntries(Object.values(DECAP_MAPS).map((m) => [m.name, { keySize: m.keySize, valueSize: m.valueSize }]));

function texts(list: readonly IpAddress[]): string[] {
  return list.map((a) => a.text).sort();
}

/** Attaches the decap program and serves until SIGTERM/SIGINT (which leave it attached). */
export async function runRealServer(args: RealServerArgs, log: Logger): Promise<void> {
  const links = await Promise.all(args.interfaces.map((n) => getLink(n)));
  for (const link of links) {
    const other = attachedXdpProgramName(link.ifindex);
    if (other !== undefined && other !== DECAP_PROGRAM) {
      throw new XdpvsError(
        ErrorCode.Invalid,
        `${link.ifname} runs the XDP program "${other}"; the real server's decapsulation would replace it (detach that first)`,
        { interface: link.ifname, program: other },
      );
    }
  }
  const pinDir = realServerPinDir(args.interfaces[0]);
  const fs = ensureBpffs(pinDir);
  if (fs.message) log('info', fs.message);
  const obj = loadObject({ objectPath: DECAP_OBJECT, pinDir, programName: DECAP_PROGRAM, expectShapes: EXPECT_SHAPES });
  const maps = new DecapMaps(obj.backend);

  // The maps are complete before the program is attached: it never sees a half-written configuration.
  maps.setVips(args.vips);
  let local = await localAddresses();
  maps.setLocal(local);
  const localText = new Set(local.map((a) => a.text));
  for (const vip of args.vips) {
    if (!localText.has(vip.text)) {
      log('warn', `VIP ${vip.text} is not an address of this host: the kernel drops what is decapsulated for it (ip addr add ${vip.text}/${vip.family === 'inet' ? 32 : 128} dev lo)`);
    }
  }
  for (const link of links) {
    const r = attachXdp(link.ifindex, obj.programFd, args.xdpMode, { replace: true });
    if (r.warning) log('warn', r.warning, { interface: link.ifname });
    log('info', `attached ${DECAP_PROGRAM} to ${link.ifname} in ${r.mode} mode`, { progId: obj.programId, replaced: r.replacedProgId ?? null });
  }

  let refreshing = false;
  const timer = setInterval(() => {
    if (refreshing) return;
    refreshing = true;
    localAddresses()
      .then((now) => {
        if (texts(now).join() === texts(local).join()) return;
        maps.setLocal(now);
        local = now;
        log('info', 'this host\'s addresses changed: accepted outer destinations updated', { addresses: texts(now) });
      })
      .catch((e) => log('warn', `reading this host's addresses failed: ${(e as Error).message}`))
      .finally(() => (refreshing = false));
  }, ADDRESS_REFRESH_MS);

  const stop = (signal: string): void => {
    log('info', `${signal}: stopping; the decapsulation stays attached (xdpvsd --role realserver --detach removes it)`);
    clearInterval(timer);
    obj.close();
    process.exit(0);
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));

  const vips = texts(args.vips).join(', ');
  log('info', `xdpvsd realserver ready: decapsulating for ${vips}`, { interfaces: links.map((l) => l.ifname), pinDir });
  process.stdout.write(`xdpvsd realserver ready on ${links.map((l) => l.ifname).join(', ')}: decapsulating for ${vips}\n`);
}

/** Detaches the decap program (only ours: another XDP program stays) and removes its pins. */
export async function detachRealServer(args: RealServerArgs, log: Logger): Promise<void> {
  for (const name of args.interfaces) {
    const link = await getLink(name);
    const attached = attachedXdpProgramName(link.ifindex);
    if (attached === DECAP_PROGRAM) {
      const id = detachXdp(link.ifindex);
      log('info', `detached ${DECAP_PROGRAM} (program ${id}) from ${name}`);
    } else {
      log('info', attached ? `${name} runs "${attached}", not ${DECAP_PROGRAM}: left alone` : `nothing attached to ${name}`);
    }
  }
  const pinDir = realServerPinDir(args.interfaces[0]);
  removePins(pinDir);
  // The per-namespace directories go too once nothing else is in them.
  for (const dir of [dirname(pinDir), dirname(dirname(pinDir))]) {
    try {
      rmdirSync(dir);
    } catch {
      /* not empty, or gone */
    }
  }
  log('info', 'removed the pins', { pinDir });
}

export interface RealServerStatus {
  interfaces: { name: string; program: string | null }[];
  vips: string[];
  /** Outer destinations accepted (this host's addresses when the role last looked). */
  local: string[];
  /** Packets by what the decap program did with them (enum xdpvs_decap_reason). */
  counters: Record<string, number>;
}

/** Reads the running decapsulation's configuration and counters from its pins. */
export async function realServerStatus(args: RealServerArgs): Promise<RealServerStatus> {
  const pinDir = realServerPinDir(args.interfaces[0]);
  let backend: KernelMapBackend;
  try {
    backend = KernelMapBackend.openPinned(pinDir, Object.values(DECAP_MAPS).map((m) => m.name));
  } catch (e) {
    throw new XdpvsError(ErrorCode.NotFound, `no real-server decapsulation pinned at ${pinDir} (start xdpvsd --role realserver first): ${(e as Error).message}`, { pinDir });
  }
  try {
    const maps = new DecapMaps(backend);
    const interfaces = await Promise.all(
      args.interfaces.map(async (name) => ({ name, program: attachedXdpProgramName((await getLink(name)).ifindex) ?? null })),
    );
    return { interfaces, vips: texts(maps.listVips()), local: texts(maps.listLocal()), counters: maps.reasonCounts() };
  } finally {
    backend.close();
  }
}
