// Real keepalived in a lab namespace for VRRP only (`--vrrp`), and the per-director keepalived.conf rendered from one
// template (seed 004's file): xdpvsd reads the same file's virtual_server part (--keepalived-conf).
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ip, killPidSync, registerEmergencyCleanup, waitFor, waitForExit } from './netns.js';

export type VrrpRole = 'MASTER' | 'BACKUP';

export interface DirectorConfOptions {
  /** Seed address → lab address, each of which must occur in the template. */
  addresses: Record<string, string>;
  /** `state` of the vrrp_instance. */
  state: VrrpRole;
  /** `priority` of the vrrp_instance (the seed: 100 on the master, less on the backup). */
  priority: number;
  /** `lb_algo` of the virtual_server (the seed's is wrr); unchanged when undefined. */
  lbAlgo?: string;
}

/**
 * One director's keepalived.conf from the template: the addresses swapped, and what the seed's own remarks say to
 * change on the backup (`state`, `priority`). Every replaced word must be in the template exactly where expected, so a
 * template that drifts fails here rather than producing a file that silently does something else.
 */
export function renderDirectorConf(template: string, opts: DirectorConfOptions): string {
  if (!Number.isInteger(opts.priority) || opts.priority < 1 || opts.priority > 254) {
    throw new Error(`keepalived lab: priority must be 1..254 (255 is the address owner's), got ${opts.priority}`);
  }
  // The seed reached us through a web page, indented with no-break spaces (U+00A0). keepalived 2.2.7 reads those as
  // part of a keyword ("Unknown keyword '  '") and then refuses the vrrp_instance; a file keepalived ran in
  // production had plain spaces there. xdpvsd's parser takes either.
  let text = template.replace(/\u00a0/g, ' ');
  for (const [from, to] of Object.entries(opts.addresses)) {
    // Whole addresses only: 192.168.1.22 must not match inside 192.168.1.229.
    const re = new RegExp(`(?<![\\d.])${from.replace(/\./g, '\\.')}(?![\\d.])`, 'g');
    if (!re.test(text)) throw new Error(`keepalived lab: address ${from} is not in the template`);
    text = text.replace(re, to);
  }
  text = replaceKeyword(text, 'state', opts.state);
  text = replaceKeyword(text, 'priority', String(opts.priority));
  if (opts.lbAlgo !== undefined) text = replaceKeyword(text, 'lb_algo', opts.lbAlgo);
  return text;
}

/** Replaces the value of the one line `KEYWORD VALUE ...`, keeping the rest of the line (the seed's remarks). */
function replaceKeyword(text: string, keyword: string, value: string): string {
  const re = new RegExp(`^(\\s*${keyword}\\s+)\\S+`, 'gm');
  const n = text.match(re)?.length ?? 0;
  if (n !== 1) throw new Error(`keepalived lab: the template has ${n} "${keyword}" lines, expected exactly 1`);
  return text.replace(re, `$1${value}`);
}

export interface Keepalived {
  /** The parent process (ours); its VRRP child runs in the same process group. */
  pid: number;
  ns: string;
  conf: string;
  /** Everything it logged so far (the last 64 KiB; `-l` logs to the console, here our pipe). */
  log(): string;
  running(): boolean;
  /** Waits until the log shows `(INSTANCE) Entering STATE STATE`, after the `since` offset into log(). */
  waitState(state: VrrpRole | 'FAULT', timeoutMs: number, since?: number): Promise<void>;
  /**
   * SIGKILL to the whole process group (parent and VRRP child at once), as a crash or a power cut: no priority-0
   * advert, the VIP stays on the interface. Waits for the parent to be gone.
   */
  kill(): Promise<void>;
  /** SIGTERM (a clean stop: keepalived gives up mastership and removes the VIP), then SIGKILL. Idempotent. */
  stop(): Promise<void>;
}

export interface KeepalivedOptions {
  /** Bound on waiting for the VRRP child's pid file line in the log. */
  readyTimeoutMs?: number;
}

/**
 * `ip netns exec NS keepalived -f CONF --vrrp -n -l -D -G -p -r -c` with pid files in a private directory, so that
 * nothing of the host's keepalived (its /etc/keepalived/keepalived.conf, /run/keepalived.pid, syslog, systemd) is
 * used or touched. Started in its own process group: kill() reaches the VRRP child too, and only ours.
 */
export async function startKeepalived(ns: string, conf: string, opts: KeepalivedOptions = {}): Promise<Keepalived> {
  if (!existsSync(conf)) throw new Error(`keepalived lab: ${conf} does not exist`);
  if (!keepalivedInstalled()) {
    throw new Error('keepalived lab: keepalived is not installed; `bash scripts/bootstrap.sh` installs it (Debian package keepalived)');
  }
  const dir = mkdtempSync(join(tmpdir(), 'xdpvs-keepalived-'));
  const args = [
    'netns', 'exec', ns, 'keepalived',
    '--use-file', conf,
    '--vrrp', // VRRP only: the virtual_server part is xdpvsd's (--keepalived-conf)
    '--dont-fork',
    '--log-console',
    '--log-detail',
    '--no-syslog',
    '--dont-respawn', // a killed VRRP child stays dead, as on a crashed machine
    '--pid', join(dir, 'keepalived.pid'),
    '--vrrp_pid', join(dir, 'vrrp.pid'),
    '--checkers_pid', join(dir, 'checkers.pid'),
  ];
  // `ip netns exec` execs keepalived in place: the PID is keepalived's, and detached makes it a group leader.
  const child: ChildProcess = spawn('ip', args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  const pid = child.pid;
  let log = '';
  const onData = (d: string): void => {
    log = (log + d).slice(-65536);
  };
  child.stdout!.setEncoding('utf8').on('data', onData);
  child.stderr!.setEncoding('utf8').on('data', onData);
  const killGroup = (): void => {
    if (pid !== undefined) killPidSync(-pid);
  };
  const unregister = registerEmergencyCleanup(() => {
    killGroup();
    rmSync(dir, { recursive: true, force: true });
  });
  const running = (): boolean => child.exitCode === null && child.signalCode === null;

  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      if (running() && pid !== undefined) {
        try {
          process.kill(-pid, 'SIGTERM');
        } catch {
          // gone
        }
        if (!(await waitForExit(child, 5_000))) killGroup();
        await waitForExit(child, 2_000);
      }
      // The VRRP child of a parent that died first.
      killGroup();
      rmSync(dir, { recursive: true, force: true });
      unregister();
    })();
    return stopping;
  };

  const waitState = (state: VrrpRole | 'FAULT', timeoutMs: number, since = 0): Promise<void> =>
    waitFor(
      `keepalived in ${ns} to enter ${state} state${running() ? '' : ' (it has exited)'}; its log:\n${log}`,
      () => new RegExp(`Entering ${state} STATE`).test(log.slice(since)),
      timeoutMs,
      50,
    );

  try {
    if (pid === undefined) throw new Error(`keepalived lab: could not start keepalived in ${ns}`);
    // keepalived -n has no "ready" line; the VRRP child announcing itself is the earliest sign it took the file.
    await waitFor(
      `keepalived in ${ns} to start its VRRP child`,
      () => {
        if (!running()) throw new Error(`keepalived lab: keepalived in ${ns} exited (${child.exitCode ?? child.signalCode}):\n${log}`);
        return /Starting VRRP child process/.test(log);
      },
      opts.readyTimeoutMs ?? 10_000,
      50,
    );
  } catch (e) {
    await stop();
    throw e;
  }

  return {
    pid: pid!,
    ns,
    conf,
    log: () => log,
    running,
    waitState,
    kill: async () => {
      killGroup();
      await waitForExit(child, 5_000);
    },
    stop,
  };
}

/** keepalived on the PATH `ip netns exec` searches (root's includes /usr/sbin, where Debian puts it). */
function keepalivedInstalled(): boolean {
  const dirs = [...(process.env.PATH ?? '').split(':'), '/usr/sbin', '/sbin'].filter((d) => d !== '');
  return dirs.some((d) => existsSync(join(d, 'keepalived')));
}

/** Whether `addr` is configured on `dev` in `ns` (what keepalived adds as MASTER and removes otherwise). */
export async function hasAddress(ns: string, dev: string, addr: string): Promise<boolean> {
  const r = await ip(ns, ['-j', 'addr', 'show', 'dev', dev], { allowFailure: true });
  if (r.code !== 0) return false;
  const links = JSON.parse(r.stdout) as Array<{ addr_info?: Array<{ local?: string }> }>;
  return links.some((l) => (l.addr_info ?? []).some((a) => a.local === addr));
}
