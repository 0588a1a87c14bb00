// Runs xdpvsd on the lab's director and xdpvsadm against it, both through `nsenter --net` so bpffs pins stay visible.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  ip,
  waitForExit,
  netnsExists,
  netnsInode,
  netnsPath,
  recordLab,
  registerEmergencyCleanup,
  repoRoot,
  run,
  runSync,
  stopChild,
  terminatePidSync,
  type RunOptions,
  type RunResult,
} from './netns.js';
import { RUNTIME_DIR } from '../../src/cli/discover.js';
import type { DrLab } from './topology.js';

/** Where the daemon pins its maps and programs: one directory per network namespace inode (then per interface). */
export const BPFFS_ROOT = '/sys/fs/bpf/xdpvs';

export interface DirectorOptions {
  /** The daemon's API address inside the director's namespace. */
  listen?: string;
  /** Bound on waiting for the daemon's "xdpvsd ready" line. */
  readyTimeoutMs?: number;
  /** More daemon arguments. */
  extraArgs?: string[];
  /**
   * The director's interfaces, each given as --interface (the first names the pin directory). Default: the lab
   * director's own (eth0); the NAT lab passes its public and private sides.
   */
  interfaces?: string[];
  daemonEntry?: string;
  cliEntry?: string;
  /**
   * Use this directory (its token and state file) instead of a new one: the same daemon started again, as after a
   * crash or an upgrade (see Director.kill).
   */
  workDir?: string;
}

export interface Director {
  pid: number;
  /** The daemon's API, e.g. http://127.0.0.1:9777 (inside the director's namespace). */
  server: string;
  tokenFile: string;
  stateFile: string;
  /** The private directory holding the token and the state file. */
  workDir: string;
  /** The director namespace's inode: the daemon's pin directory is BPFFS_ROOT/<inode>. */
  netnsInode: number;
  /** Runs `xdpvsadm ARGS` on the director; resolves with the exit code and output, never throws on failure. */
  adm(args: readonly string[], opts?: RunOptions): Promise<RunResult>;
  /** Like adm(), but throws (with stderr) when xdpvsadm exits non-zero; resolves with stdout. */
  admOk(args: readonly string[], opts?: RunOptions): Promise<string>;
  /** The daemon's own output so far (the last 64 KiB of each stream). */
  stdout(): string;
  stderr(): string;
  /** True while the daemon process runs. */
  running(): boolean;
  /**
   * Sends `signal` (default SIGKILL) to the daemon by PID and waits until it has exited, leaving what a crash or
   * `systemctl stop` leaves: XDP attached, pins, state file and token. Start it again with
   * `startDirector(lab, { workDir: this.workDir })`; stop() still removes everything afterwards.
   */
  kill(signal?: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGTERM by PID, then detach XDP and remove the pins and the work directory. Idempotent. */
  stop(): Promise<void>;
}

/**
 * Starts `xdpvsd --interface eth0 --listen ... --token-file ... --state ...` in the director's namespace and waits for
 * its "xdpvsd ready" line.
 */
export async function startDirector(lab: Pick<DrLab, 'id' | 'director'>, opts: DirectorOptions = {}): Promise<Director> {
  const root = repoRoot();
  const daemonEntry = opts.daemonEntry ?? join(root, 'dist/src/daemon/main.js');
  const cliEntry = opts.cliEntry ?? join(root, 'dist/src/cli/main.js');
  for (const f of [daemonEntry, cliEntry]) {
    if (!existsSync(f)) throw new Error(`lab: ${f} does not exist; build with \`bash scripts/build.sh\``);
  }
  const listen = opts.listen ?? '127.0.0.1:9777';
  const server = `http://${listen}`;
  const ns = lab.director.ns;
  const devs = opts.interfaces ?? [lab.director.dev];
  const inode = netnsInode(ns);
  const pinDir = join(BPFFS_ROOT, String(inode));
  // The daemon's runtime file (how the CLI finds it) lives here; SIGTERM removes it, a killed daemon leaves it.
  const runtimeDir = join(RUNTIME_DIR, String(inode));
  // Recorded with the lab, so that a run killed outright still gets these removed by the next one.
  recordLab(lab.id, { dirs: [pinDir, runtimeDir] });
  const workDir = opts.workDir ?? mkdtempSync(join(tmpdir(), `xdpvs-lab-${lab.id}-`));
  const tokenFile = join(workDir, 'token');
  const stateFile = join(workDir, 'state.json');
  const nsenter = (args: readonly string[]): string[] => [`--net=${netnsPath(ns)}`, '--', process.execPath, ...args];

  // `nsenter` execs the command in place: the PID we get is the daemon's own.
  const child: ChildProcess = spawn(
    'nsenter',
    nsenter([
      daemonEntry,
      ...devs.flatMap((d) => ['--interface', d]),
      '--listen',
      listen,
      '--token-file',
      tokenFile,
      '--state',
      stateFile,
      ...(opts.extraArgs ?? []),
    ]),
    { stdio: ['ignore', 'pipe', 'pipe'], cwd: root },
  );
  const pid = child.pid;
  let out = '';
  let err = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => {
    out = (out + d).slice(-65536);
  });
  child.stderr!.setEncoding('utf8').on('data', (d: string) => {
    err = (err + d).slice(-65536);
  });

  const detachSync = (): void => {
    if (netnsExists(ns)) {
      for (const dev of devs) {
        runSync('ip', ['-n', ns, 'link', 'set', 'dev', dev, 'xdpdrv', 'off']);
        runSync('ip', ['-n', ns, 'link', 'set', 'dev', dev, 'xdpgeneric', 'off']);
      }
    }
    rmSync(pinDir, { recursive: true, force: true });
    rmSync(runtimeDir, { recursive: true, force: true });
    rmSync(workDir, { recursive: true, force: true });
  };
  let unregister = registerEmergencyCleanup(() => {
    // SIGTERM first: the daemon removes its runtime file and closes the API; XDP and pins go right after.
    terminatePidSync(pid, 3_000);
    detachSync();
  });

  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      await stopChild(child, 10_000);
      await detach(daemonEntry, ns, devs, pinDir, nsenter, root);
      rmSync(runtimeDir, { recursive: true, force: true });
      rmSync(workDir, { recursive: true, force: true });
      unregister();
    })();
    return stopping;
  };

  try {
    if (pid === undefined) throw new Error('lab: could not start xdpvsd (no PID)');
    await waitReady(child, () => out, () => err, opts.readyTimeoutMs ?? 20_000);
  } catch (e) {
    await stop().catch(() => undefined);
    throw e;
  }

  const adm = (args: readonly string[], runOpts: RunOptions = {}): Promise<RunResult> =>
    run('nsenter', nsenter([cliEntry, '--server', server, '--token-file', tokenFile, ...args]), {
      timeoutMs: 15_000,
      cwd: root,
      ...runOpts,
      allowFailure: true,
    });
  return {
    pid: pid!,
    server,
    tokenFile,
    stateFile,
    workDir,
    netnsInode: inode,
    adm,
    admOk: async (args, runOpts) => {
      const r = await adm(args, runOpts);
      if (r.code !== 0) {
        throw new Error(`xdpvsadm ${args.join(' ')} exited with ${r.code}: ${(r.stderr || r.stdout).trim()}`);
      }
      return r.stdout;
    },
    stdout: () => out,
    stderr: () => err,
    running: () => child.exitCode === null && child.signalCode === null,
    kill: async (signal = 'SIGKILL') => {
      if (child.exitCode === null && child.signalCode === null) {
        try {
          process.kill(pid!, signal);
        } catch {
          // already gone
        }
        if (!(await waitForExit(child, 10_000))) throw new Error(`lab: xdpvsd (pid ${pid}) did not exit on ${signal}`);
      }
      // The PID is free for reuse now: the last-resort cleanup must not signal it any more.
      unregister();
      unregister = registerEmergencyCleanup(detachSync);
      return { code: child.exitCode, signal: child.signalCode };
    },
    stop,
  };
}

function waitReady(child: ChildProcess, out: () => string, err: () => string, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const check = (): void => {
      if (out().includes('xdpvsd ready')) finish();
    };
    const timer = setTimeout(
      () => finish(new Error(`lab: xdpvsd did not print "xdpvsd ready" within ${timeoutMs} ms${describe(out(), err())}`)),
      timeoutMs,
    );
    const onExit = (code: number | null, signal: string | null): void => {
      // Let the last output arrive before reporting it.
      setTimeout(() => finish(new Error(`lab: xdpvsd exited (${code ?? signal}) before it was ready${describe(out(), err())}`)), 50);
    };
    const onError = (e: Error): void => finish(new Error(`lab: could not start xdpvsd: ${e.message}`));
    let finished = false;
    function finish(e?: Error): void {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      child.stdout!.off('data', check);
      child.off('exit', onExit);
      child.off('error', onError);
      if (e) reject(e);
      else resolve();
    }
    child.stdout!.on('data', check);
    child.once('exit', onExit);
    child.once('error', onError);
    check();
  });
}

function describe(out: string, err: string): string {
  return `\n--- xdpvsd stderr ---\n${err.trim() || '(empty)'}\n--- xdpvsd stdout ---\n${out.trim() || '(empty)'}`;
}

/** Whether the built daemon knows `--detach` (looked up in its compiled sources, never by running it). */
function daemonHasDetach(daemonEntry: string): boolean {
  const dir = join(daemonEntry, '..');
  try {
    return readdirSync(dir)
      .filter((f) => f.endsWith('.js'))
      .some((f) => {
        const text = readFileSync(join(dir, f), 'utf8');
        return text.includes("'detach'") || text.includes('--detach');
      });
  } catch {
    return false;
  }
}

/**
 * After the daemon has stopped: `xdpvsd --interface eth0 [--interface eth1] --detach` when it exists, and in any case
 * XDP off on the director's interfaces and its pin directory removed (both idempotent).
 */
async function detach(
  daemonEntry: string,
  ns: string,
  devs: string[],
  pinDir: string,
  nsenter: (args: readonly string[]) => string[],
  cwd: string,
): Promise<void> {
  if (!netnsExists(ns)) {
    rmSync(pinDir, { recursive: true, force: true });
    return;
  }
  if (daemonHasDetach(daemonEntry)) {
    await run('nsenter', nsenter([daemonEntry, ...devs.flatMap((d) => ['--interface', d]), '--detach']), {
      timeoutMs: 15_000,
      allowFailure: true,
      cwd,
    }).catch(() => undefined);
  }
  // Native or generic, whichever the daemon used. A program attached through a pinned bpf_link refuses this, and
  // goes away when its pin is removed below.
  for (const dev of devs) {
    await ip(ns, ['link', 'set', 'dev', dev, 'xdpdrv', 'off'], { allowFailure: true });
    await ip(ns, ['link', 'set', 'dev', dev, 'xdpgeneric', 'off'], { allowFailure: true });
  }
  rmSync(pinDir, { recursive: true, force: true });
}
