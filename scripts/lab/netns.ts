// Small helpers for the namespace lab: run commands (in a namespace or not), namespaces, veths, sysctl, cleanup on exit.
import { execFile, execFileSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Default bound on any one lab command; commands that may take longer pass their own. */
export const DEFAULT_TIMEOUT_MS = 15_000;

export interface RunOptions {
  /** Kill the command after this long (SIGKILL) and fail. */
  timeoutMs?: number;
  /** Resolve with the result instead of throwing when the command exits non-zero. */
  allowFailure?: boolean;
  /** Extra environment variables. */
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Written to the command's standard input, which is then closed (default: the pipe is left alone). */
  input?: string;
}

export interface RunResult {
  /** Exit code; null when the command was killed by a signal (or the timeout). */
  code: number | null;
  stdout: string;
  stderr: string;
}

/** A lab command that failed: the command line and what it printed are in the message. */
export class LabCommandError extends Error {
  constructor(
    readonly argv: readonly string[],
    readonly result: RunResult,
    readonly reason: string,
  ) {
    const err = result.stderr.trim();
    super(`lab: \`${argv.join(' ')}\` ${reason}${err ? `: ${err}` : ''}`);
    this.name = 'LabCommandError';
  }
}

/** Runs a command without a shell and collects its output. */
export function run(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const timeout = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const argv = [cmd, ...args];
  return new Promise((resolve, reject) => {
    const child = execFile(
      cmd,
      args,
      {
        timeout,
        killSignal: 'SIGKILL',
        maxBuffer: 16 * 1024 * 1024,
        encoding: 'utf8',
        env: opts.env ? { ...process.env, ...opts.env } : process.env,
        cwd: opts.cwd,
      },
      (error, stdout, stderr) => {
        const result: RunResult = { code: 0, stdout, stderr };
        if (error) {
          const e = error as NodeJS.ErrnoException & { code?: unknown; killed?: boolean; signal?: string | null };
          if (typeof e.code === 'string') {
            // spawn failure (ENOENT, EACCES): the command never ran.
            reject(new LabCommandError(argv, { code: null, stdout, stderr }, `could not start (${e.code})`));
            return;
          }
          result.code = typeof e.code === 'number' ? e.code : null;
          if (e.killed && result.code === null) {
            reject(new LabCommandError(argv, result, `timed out after ${timeout} ms`));
            return;
          }
          if (!opts.allowFailure) {
            reject(new LabCommandError(argv, result, `exited with ${result.code ?? e.signal}`));
            return;
          }
        }
        resolve(result);
      },
    );
    if (opts.input !== undefined) {
      child.stdin?.on('error', () => undefined); // a command that exits without reading all of it
      child.stdin?.end(opts.input);
    }
  });
}

/** Runs a command inside a named network namespace (`ip netns exec NS cmd ...`). */
export function nsRun(ns: string, cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  return run('ip', ['netns', 'exec', ns, cmd, ...args], opts);
}

/** `ip -n NS ...` (or plain `ip ...` when ns is null). */
export function ip(ns: string | null, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  return run('ip', ns === null ? args : ['-n', ns, ...args], opts);
}

/** A fresh random lab id: 6 hex characters, so namespace names stay short and unique per run. */
export function newLabId(): string {
  return randomBytes(3).toString('hex');
}

export async function addNetns(name: string): Promise<void> {
  await ip(null, ['netns', 'add', name]);
  // Loopback is down in a new namespace; everything in the lab expects it up.
  await ip(name, ['link', 'set', 'dev', 'lo', 'up']);
}

/** Deletes a namespace; a namespace that is already gone is not an error. */
export async function delNetns(name: string): Promise<void> {
  if (!netnsExists(name)) return;
  const r = await ip(null, ['netns', 'del', name], { allowFailure: true });
  if (r.code !== 0 && netnsExists(name)) throw new LabCommandError(['ip', 'netns', 'del', name], r, 'failed');
}

export function netnsPath(name: string): string {
  return `/run/netns/${name}`;
}

export function netnsExists(name: string): boolean {
  return existsSync(netnsPath(name));
}

/** The namespace's inode number (what the daemon keys its bpffs pin directory with). */
export function netnsInode(name: string): number {
  return statSync(netnsPath(name)).ino;
}

/**
 * Creates a veth pair with each end directly in its namespace (nothing ever appears in the caller's namespace, so
 * parallel labs cannot collide on interface names).
 */
export async function addVethPair(a: { ns: string; name: string }, b: { ns: string; name: string }): Promise<void> {
  for (const n of [a.name, b.name]) {
    if (n.length > 15) throw new Error(`lab: interface name ${n} is longer than 15 characters`);
  }
  await ip(a.ns, ['link', 'add', a.name, 'type', 'veth', 'peer', 'name', b.name, 'netns', b.ns]);
}

/** Sets one sysctl inside a namespace (net.* keys are per namespace). */
export async function sysctl(ns: string, key: string, value: string | number): Promise<void> {
  await nsRun(ns, 'sysctl', ['-q', '-w', `${key}=${value}`]);
}

/** `ethtool -K DEV feature on|off ...` inside a namespace. */
export async function ethtoolFeatures(ns: string, dev: string, features: Record<string, 'on' | 'off'>): Promise<void> {
  const args = ['-K', dev];
  for (const [k, v] of Object.entries(features)) args.push(k, v);
  await nsRun(ns, 'ethtool', args);
}

/** The MAC address of an interface in a namespace. */
export async function macOf(ns: string, dev: string): Promise<string> {
  const r = await ip(ns, ['-j', 'link', 'show', 'dev', dev]);
  const links = JSON.parse(r.stdout) as Array<{ address?: string }>;
  const mac = links[0]?.address;
  if (!mac) throw new Error(`lab: no MAC address for ${dev} in ${ns}`);
  return mac;
}

/** Polls `check` every `intervalMs` until it returns true, or fails after `timeoutMs` with `what` in the message. */
export async function waitFor(
  what: string,
  check: () => boolean | Promise<boolean>,
  timeoutMs = 10_000,
  intervalMs = 50,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`lab: timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(intervalMs);
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** The repository root (where package.json says "xdpvs"), found from this file in scripts/ or in dist/scripts/. */
export function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg)) {
      try {
        if ((JSON.parse(readFileSync(pkg, 'utf8')) as { name?: string }).name === 'xdpvs') return dir;
      } catch {
        // not ours; keep walking up
      }
    }
    dir = dirname(dir);
  }
  throw new Error('lab: cannot find the xdpvs repository root from ' + fileURLToPath(import.meta.url));
}

/** Waits for a child to exit, up to `timeoutMs`; true if it exited. */
export function waitForExit(child: ChildProcess, timeoutMs: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const t = setTimeout(() => {
      child.off('exit', onExit);
      resolve(false);
    }, timeoutMs);
    const onExit = (): void => {
      clearTimeout(t);
      resolve(true);
    };
    child.once('exit', onExit);
  });
}

/** Sends SIGTERM to a child by PID, then SIGKILL if it has not exited after `graceMs`. */
export async function stopChild(child: ChildProcess, graceMs = 5_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
  try {
    process.kill(child.pid, 'SIGTERM');
  } catch {
    return; // already gone
  }
  if (await waitForExit(child, graceMs)) return;
  try {
    process.kill(child.pid, 'SIGKILL');
  } catch {
    return;
  }
  await waitForExit(child, 2_000);
}

// ---------------------------------------------------------------------------------------------------------------
// Emergency cleanup. Normal teardown is each object's async destroy()/stop(). If the process is interrupted
// (SIGINT/SIGTERM), loses its parent (a vitest worker whose runner died), or exits without tearing down, the
// registered cleanups run instead. They are synchronous on purpose: they must finish inside the signal handler, even
// when the event loop is about to be busy with something else (a vitest worker that lost its parent spins reporting
// the broken channel and never runs another timer). They stop our children by PID and delete our namespaces.

type SyncCleanup = () => void;
const emergency = new Map<number, SyncCleanup>();
let nextCleanupId = 1;
let exitHookInstalled = false;
let signalHooksInstalled = false;

/** Runs (and forgets) every registered emergency cleanup, most recent first. Returns how many ran. */
export function runEmergencyCleanups(): number {
  // Most recent first: processes were registered after the namespaces they run in.
  const fns = [...emergency.values()].reverse();
  emergency.clear();
  for (const fn of fns) {
    try {
      fn();
    } catch {
      // best effort: keep cleaning the rest
    }
  }
  return fns.length;
}

/** Registers a synchronous last-resort cleanup; returns a function that unregisters it. */
export function registerEmergencyCleanup(fn: SyncCleanup): () => void {
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.on('exit', runEmergencyCleanups);
  }
  const id = nextCleanupId++;
  emergency.set(id, fn);
  return () => {
    emergency.delete(id);
  };
}

/**
 * On SIGINT/SIGTERM: run the emergency cleanups, then exit with 128+signal. When the process has an IPC parent (a
 * vitest worker) and it goes away while a lab is up, clean up and exit as well. Installed once per process; `onSignal`
 * may print something first.
 */
export function installSignalCleanup(onSignal?: (signal: NodeJS.Signals) => void): void {
  if (signalHooksInstalled) return;
  signalHooksInstalled = true;
  const handler = (signal: NodeJS.Signals): void => {
    onSignal?.(signal);
    runEmergencyCleanups();
    exitNow(128 + (signal === 'SIGINT' ? 2 : 15));
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
  if (process.connected) {
    process.once('disconnect', () => {
      if (runEmergencyCleanups() > 0) exitNow(1);
    });
  }
}

/**
 * process.exit, or, where it is replaced by one that throws (vitest workers do that), the process's real exit: an
 * interrupted worker must end rather than spin reporting errors to a runner that is gone.
 */
function exitNow(code: number): never {
  try {
    process.exit(code);
  } catch {
    const really = (process as unknown as { reallyExit?: (code: number) => void }).reallyExit;
    if (typeof really === 'function') really.call(process, code);
    process.kill(process.pid, 'SIGKILL');
  }
  throw new Error('unreachable');
}

/** Synchronous helpers for emergency cleanups (no promises may run in an 'exit' handler). */
export function killPidSync(pid: number | undefined): void {
  if (pid === undefined) return;
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

/** True while `pid` runs (a zombie, exited but not yet reaped by us, counts as gone). */
export function pidRunning(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

/** SIGTERM, wait up to `graceMs` (blocking: this is for emergencies), then SIGKILL. */
export function terminatePidSync(pid: number | undefined, graceMs = 2_000): void {
  if (pid === undefined || !pidRunning(pid)) return;
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    return;
  }
  const pause = new Int32Array(new SharedArrayBuffer(4));
  const deadline = Date.now() + graceMs;
  while (pidRunning(pid) && Date.now() < deadline) Atomics.wait(pause, 0, 0, 25);
  if (pidRunning(pid)) killPidSync(pid);
}

export function delNetnsSync(name: string): void {
  if (!netnsExists(name)) return;
  try {
    execFileSync('ip', ['netns', 'del', name], { stdio: 'ignore', timeout: 5_000 });
  } catch {
    // best effort
  }
}

export function runSync(cmd: string, args: readonly string[]): void {
  try {
    execFileSync(cmd, args, { stdio: 'ignore', timeout: 5_000 });
  } catch {
    // best effort
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Owner records. A lab writes what it made (namespaces, directories such as bpffs pins) to REGISTRY_DIR/<id>.json with its owner's
// PID and start time. A process killed with SIGKILL runs no cleanup at all; the next lab that starts finds the record
// of a dead owner and removes what it lists: the processes inside those namespaces (only the lab's own, since the
// names are unique per run), the namespaces, the directories.

export const REGISTRY_DIR = '/run/xdpvs-lab';

interface LabRecord {
  pid: number;
  /** /proc/PID/stat start time, so a reused PID is not mistaken for the owner. */
  start: string;
  namespaces: string[];
  /** Directories to remove with the lab (the daemon's bpffs pins and runtime file). */
  dirs: string[];
}

function procStart(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields from 3 on, counted after the parenthesised command name (which may contain spaces).
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (fields[0] === 'Z' || fields[0] === 'X') return undefined; // dead, not yet reaped
    return fields[19]; // field 22: start time
  } catch {
    return undefined;
  }
}

function recordPath(id: string): string {
  return join(REGISTRY_DIR, `${id}.json`);
}

/** Records (or extends) what lab `id` owns. */
export function recordLab(id: string, add: { namespaces?: string[]; dirs?: string[] }): void {
  mkdirSync(REGISTRY_DIR, { recursive: true, mode: 0o700 });
  let rec: LabRecord = { pid: process.pid, start: procStart(process.pid) ?? '', namespaces: [], dirs: [] };
  try {
    rec = JSON.parse(readFileSync(recordPath(id), 'utf8')) as LabRecord;
  } catch {
    // first entry
  }
  rec.namespaces = [...new Set([...rec.namespaces, ...(add.namespaces ?? [])])];
  rec.dirs = [...new Set([...rec.dirs, ...(add.dirs ?? [])])];
  writeFileSync(recordPath(id), JSON.stringify(rec));
}

/**
 * Removes the directories lab `id` recorded. Call it while the lab's namespaces still exist: their inode numbers
 * (which name the directories) are reused once they are gone.
 */
export function removeLabDirs(id: string): void {
  try {
    const rec = JSON.parse(readFileSync(recordPath(id), 'utf8')) as LabRecord;
    for (const dir of rec.dirs) rmSync(dir, { recursive: true, force: true });
  } catch {
    // no record
  }
}

/** Drops lab `id`'s record once everything it lists is gone. */
export function forgetLab(id: string): void {
  rmSync(recordPath(id), { force: true });
}

/**
 * Claims the namespaces of lab `id` before any exists: reaps what dead owners left, refuses names in use, records
 * them (for the next lab's reaper, should this process be killed) and registers their removal on a signal.
 * Returns the lab's destroy(): the recorded directories (while the namespaces still own the inode numbers that name
 * them), then the namespaces in the given order, then the record. Idempotent; the first error is rethrown.
 */
export function claimLab(id: string, namespaces: readonly string[]): () => Promise<void> {
  reapStaleLabs();
  const taken = namespaces.filter((ns) => netnsExists(ns));
  if (taken.length > 0) throw new Error(`lab: namespaces already exist: ${taken.join(', ')} (lab id ${id} in use)`);
  recordLab(id, { namespaces: [...namespaces] });
  const unregister = registerEmergencyCleanup(() => {
    removeLabDirs(id);
    for (const ns of namespaces) delNetnsSync(ns);
    forgetLab(id);
  });
  let destroying: Promise<void> | undefined;
  return () => {
    destroying ??= (async () => {
      const errors: unknown[] = [];
      removeLabDirs(id);
      // Hosts first where callers list them first: deleting a host namespace deletes its end of the veth too.
      for (const ns of namespaces) await delNetns(ns).catch((e: unknown) => errors.push(e));
      unregister();
      if (errors.length > 0) throw errors[0];
      forgetLab(id);
    })();
    return destroying;
  };
}

/** Removes everything recorded by labs whose owner process is gone. Returns the ids it cleaned. */
export function reapStaleLabs(): string[] {
  let files: string[];
  try {
    files = readdirSync(REGISTRY_DIR).filter((f) => /^[0-9a-f]{6}\.json$/.test(f));
  } catch {
    return [];
  }
  const reaped: string[] = [];
  for (const f of files) {
    const id = f.slice(0, 6);
    let rec: LabRecord;
    try {
      rec = JSON.parse(readFileSync(join(REGISTRY_DIR, f), 'utf8')) as LabRecord;
    } catch {
      continue;
    }
    if (procStart(rec.pid) !== undefined && procStart(rec.pid) === rec.start) continue; // owner alive
    const alive = rec.namespaces.filter((ns) => netnsExists(ns));
    for (const ns of alive) {
      try {
        const pids = execFileSync('ip', ['netns', 'pids', ns], { encoding: 'utf8', timeout: 5_000 });
        for (const p of pids.split('\n').filter((x) => /^\d+$/.test(x))) killPidSync(Number(p));
      } catch {
        // best effort
      }
    }
    // The directories are named by namespace inodes: remove them only while those namespaces still hold the inodes.
    if (alive.length === rec.namespaces.length) removeLabDirs(id);
    for (const ns of alive) delNetnsSync(ns);
    forgetLab(id);
    reaped.push(id);
  }
  return reaped;
}
