// Starts and stops the lab's HTTP server (http-server.ts) in each real server's namespace, tracked by PID.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { killPidSync, registerEmergencyCleanup, repoRoot, stopChild } from './netns.js';
import type { DrLab, LabHost, LabHostName } from './topology.js';

export interface RealServerProcess {
  host: LabHost;
  port: number;
  child: ChildProcess;
  pid: number;
  /** What the server wrote on stderr so far (for failure messages). */
  stderr(): string;
}

export interface RealServers {
  servers: RealServerProcess[];
  /** Stops one real server's HTTP server (SIGTERM by PID); the others keep running. */
  stop(name: LabHostName): Promise<void>;
  /** Starts a stopped real server's HTTP server again (same name and port). */
  start(name: LabHostName): Promise<void>;
  /** Stops all of them. Idempotent. */
  stopAll(): Promise<void>;
}

export interface RealServerOptions {
  port?: number;
  /** Bound on waiting for "listening" from each server. */
  readyTimeoutMs?: number;
  /** The compiled server; default dist/scripts/lab/http-server.js (udp-server.js takes the same arguments). */
  script?: string;
}

/** `ip netns exec RS node dist/scripts/lab/http-server.js --name rsN --port 80` in every real server of the lab. */
export async function startRealServers(lab: Pick<DrLab, 'realServers'>, opts: RealServerOptions = {}): Promise<RealServers> {
  const script = opts.script ?? join(repoRoot(), 'dist/scripts/lab/http-server.js');
  if (!existsSync(script)) {
    throw new Error(`lab: ${script} does not exist; build with \`bash scripts/build.sh\``);
  }
  const servers: RealServerProcess[] = [];
  const stopAll = async (): Promise<void> => {
    await Promise.all(servers.map((s) => stopChild(s.child)));
  };
  try {
    for (const host of lab.realServers) {
      servers.push(await startOne(host, script, opts.port ?? 80, opts.readyTimeoutMs ?? 10_000));
    }
  } catch (e) {
    await stopAll();
    throw e;
  }
  return {
    servers,
    stop: async (name) => {
      const s = servers.find((x) => x.host.name === name);
      if (!s) throw new Error(`lab: no real server ${name}`);
      await stopChild(s.child);
    },
    start: async (name) => {
      const i = servers.findIndex((x) => x.host.name === name);
      if (i < 0) throw new Error(`lab: no real server ${name}`);
      const s = servers[i];
      if (s.child.exitCode === null && s.child.signalCode === null) return;
      servers[i] = await startOne(s.host, script, s.port, opts.readyTimeoutMs ?? 10_000);
    },
    stopAll,
  };
}

async function startOne(host: LabHost, script: string, port: number, readyTimeoutMs: number): Promise<RealServerProcess> {
  // `ip netns exec` execs the command in place: the PID we get is the server's own.
  const child = spawn(
    'ip',
    ['netns', 'exec', host.ns, process.execPath, script, '--name', host.name, '--port', String(port), '--exit-on-stdin-close'],
    { stdio: ['pipe', 'pipe', 'pipe'] },
  );
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => {
    stderr = (stderr + d).slice(-8192);
  });
  const pid = child.pid;
  const unregister = registerEmergencyCleanup(() => killPidSync(pid));
  child.once('exit', unregister);

  await new Promise<void>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => {
      done(new Error(`lab: ${host.name}'s HTTP server did not print "listening" within ${readyTimeoutMs} ms; stderr: ${stderr.trim()}`));
    }, readyTimeoutMs);
    const onData = (d: string): void => {
      out += d;
      if (/^listening\b/m.test(out)) done();
    };
    const onExit = (code: number | null, signal: string | null): void => {
      done(new Error(`lab: ${host.name}'s HTTP server exited (${code ?? signal}) before listening; stderr: ${stderr.trim()}`));
    };
    const onError = (e: Error): void => done(e);
    function done(err?: Error): void {
      clearTimeout(timer);
      child.stdout!.off('data', onData);
      child.off('exit', onExit);
      child.off('error', onError);
      if (err) {
        child.kill('SIGKILL');
        reject(err);
      } else {
        // Keep draining stdout so the server never blocks on a full pipe.
        child.stdout!.resume();
        resolve();
      }
    }
    child.stdout!.setEncoding('utf8').on('data', onData);
    child.once('exit', onExit);
    child.once('error', onError);
  });
  if (pid === undefined) throw new Error(`lab: ${host.name}'s HTTP server has no PID`);
  return { host, port, child, pid, stderr: () => stderr };
}
