// The probes: one attempt of a TCP connect, an HTTP(S) GET, a UDP request/response or a program's exit status,
// bounded by a timeout. Each resolves (never rejects) with a verdict; the state machine decides what it means.

import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { isIP, connect as netConnect } from 'node:net';
import type { HttpProbeSpec, MiscProbeSpec, ProbeSpec, TcpProbeSpec, UdpProbeSpec } from './types.js';

export interface ProbeResult {
  ok: boolean;
  /** Why it failed, in a few words (shown in the API as lastError). */
  error?: string;
  /** MISC_CHECK misc_dynamic: the weight the exit status asked for. */
  weight?: number;
}

export type ProbeFn = (spec: ProbeSpec, timeoutMs: number) => Promise<ProbeResult>;

/** Body bytes kept for a regex match; the digest covers the whole body. */
const REGEX_BODY_LIMIT = 1 << 20;
/** Grace between SIGTERM and SIGKILL for a MISC_CHECK program past its timeout. */
const MISC_KILL_GRACE_MS = 1_000;

function hostPort(host: string, port: number): string {
  return isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`;
}

export function probeTcp(spec: TcpProbeSpec, timeoutMs: number): Promise<ProbeResult> {
  return new Promise((resolve) => {
    const sock = netConnect({ host: spec.host, port: spec.port, localAddress: spec.bindto, localPort: spec.bindPort });
    const done = (r: ProbeResult) => {
      clearTimeout(timer);
      sock.removeAllListeners();
      sock.on('error', () => undefined);
      sock.destroy();
      resolve(r);
    };
    const timer = setTimeout(() => done({ ok: false, error: `connect to ${hostPort(spec.host, spec.port)} timed out after ${timeoutMs} ms` }), timeoutMs);
    sock.once('connect', () => done({ ok: true }));
    sock.once('error', (e: NodeJS.ErrnoException) => done({ ok: false, error: `connect to ${hostPort(spec.host, spec.port)}: ${e.code ?? e.message}` }));
  });
}

function inRanges(status: number, ranges: Array<[number, number]>): boolean {
  const r = ranges.length ? ranges : [[200, 299] as [number, number]];
  return r.some(([lo, hi]) => status >= lo && status <= hi);
}

async function getOne(spec: HttpProbeSpec, url: HttpProbeSpec['urls'][number], deadline: number): Promise<ProbeResult> {
  const where = `${spec.kind === 'https' ? 'https' : 'http'}://${hostPort(spec.host, spec.port)}${url.path}`;
  const host = url.virtualhost ?? spec.virtualhost;
  return new Promise((resolve) => {
    const headers: Record<string, string> = { 'user-agent': 'xdpvsd health check', connection: 'close' };
    if (host) headers.host = host;
    const common = {
      host: spec.host,
      port: spec.port,
      path: url.path,
      method: 'GET',
      headers,
      agent: false as const,
      localAddress: spec.bindto,
      localPort: spec.bindPort,
    };
    const req =
      spec.kind === 'https'
        ? httpsRequest({ ...common, rejectUnauthorized: false, servername: spec.sni ? (host ?? (isIP(spec.host) ? undefined : spec.host)) : undefined })
        : httpRequest(common);
    let settled = false;
    const done = (r: ProbeResult) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      req.destroy();
      resolve(r);
    };
    const timer = setTimeout(() => done({ ok: false, error: `GET ${where} timed out` }), Math.max(0, deadline - Date.now()));
    req.on('error', (e: NodeJS.ErrnoException) => done({ ok: false, error: `GET ${where}: ${e.code ?? e.message}` }));
    req.on('response', (res: IncomingMessage) => {
      const status = res.statusCode ?? 0;
      if (!inRanges(status, url.statusCodes)) {
        res.resume();
        done({ ok: false, error: `GET ${where}: status ${status}` });
        return;
      }
      const md5 = url.digest ? createHash('md5') : undefined;
      const kept: Buffer[] = [];
      let keptLen = 0;
      res.on('data', (chunk: Buffer) => {
        md5?.update(chunk);
        if (url.regex !== undefined && keptLen < REGEX_BODY_LIMIT) {
          kept.push(chunk);
          keptLen += chunk.length;
        }
      });
      res.on('error', (e: NodeJS.ErrnoException) => done({ ok: false, error: `GET ${where}: ${e.code ?? e.message}` }));
      res.on('end', () => {
        if (md5 && url.digest) {
          const got = md5.digest('hex');
          if (got !== url.digest.toLowerCase()) {
            done({ ok: false, error: `GET ${where}: digest ${got}, expected ${url.digest.toLowerCase()}` });
            return;
          }
        }
        if (url.regex !== undefined) {
          const matched = new RegExp(url.regex).test(Buffer.concat(kept).toString('utf8'));
          if (matched === Boolean(url.regexNoMatch)) {
            done({ ok: false, error: `GET ${where}: body ${matched ? 'matches' : 'does not match'} /${url.regex}/` });
            return;
          }
        }
        done({ ok: true });
      });
    });
    req.end();
  });
}

/** Every URL must pass (keepalived HTTP_GET / SSL_GET); the timeout bounds the whole check. */
export async function probeHttp(spec: HttpProbeSpec, timeoutMs: number): Promise<ProbeResult> {
  const deadline = Date.now() + timeoutMs;
  const urls = spec.urls.length ? spec.urls : [{ path: '/', statusCodes: [] }];
  for (const url of urls) {
    const r = await getOne(spec, url, deadline);
    if (!r.ok) return r;
  }
  return { ok: true };
}

function matchesPattern(reply: Buffer, p: { bytes: Buffer; mask: Buffer }): boolean {
  const n = Math.min(reply.length, p.bytes.length);
  for (let i = 0; i < n; i++) if ((reply[i] & p.mask[i]) !== (p.bytes[i] & p.mask[i])) return false;
  return true;
}

/**
 * keepalived UDP_CHECK: send the payload on a connected socket. An ICMP error (port or host unreachable, seen as
 * ECONNREFUSED / EHOSTUNREACH) fails; without require_reply, silence until the timeout passes.
 */
export function probeUdp(spec: UdpProbeSpec, timeoutMs: number): Promise<ProbeResult> {
  return new Promise((resolve) => {
    const where = hostPort(spec.host, spec.port);
    const sock = createSocket(isIP(spec.host) === 6 ? 'udp6' : 'udp4');
    let settled = false;
    const done = (r: ProbeResult) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      try {
        sock.close();
      } catch {
        /* already closed */
      }
      resolve(r);
    };
    const timer = setTimeout(
      () => done(spec.requireReply ? { ok: false, error: `no UDP reply from ${where} within ${timeoutMs} ms` } : { ok: true }),
      timeoutMs,
    );
    sock.on('error', (e: NodeJS.ErrnoException) => done({ ok: false, error: `UDP ${where}: ${e.code ?? e.message}` }));
    sock.on('message', (msg: Buffer) => {
      if (spec.requireReply) {
        if (msg.length < spec.minReplyLength || msg.length > spec.maxReplyLength) {
          done({ ok: false, error: `UDP ${where}: reply of ${msg.length} bytes outside ${spec.minReplyLength}..${spec.maxReplyLength}` });
          return;
        }
        if (spec.replyPattern && !matchesPattern(msg, spec.replyPattern)) {
          done({ ok: false, error: `UDP ${where}: reply does not match require_reply` });
          return;
        }
      }
      done({ ok: true });
    });
    const send = () =>
      sock.connect(spec.port, spec.host, () => {
        sock.send(spec.payload ?? randomBytes(16), (e) => {
          if (e) done({ ok: false, error: `UDP ${where}: ${(e as NodeJS.ErrnoException).code ?? e.message}` });
        });
      });
    if (spec.bindto || spec.bindPort) sock.bind({ address: spec.bindto, port: spec.bindPort ?? 0 }, send);
    else send();
  });
}

/** keepalived MISC_CHECK: exit 0 up, 1 down; with misc_dynamic 2..255 up with weight status - 2 (else down). */
export function probeMisc(spec: MiscProbeSpec, timeoutMs: number): Promise<ProbeResult> {
  return new Promise((resolve) => {
    const [file, ...args] = spec.argv;
    let settled = false;
    let timedOut = false;
    const done = (r: ProbeResult) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      clearTimeout(killer);
      resolve(r);
    };
    const child = spawn(file, args, { stdio: 'ignore', shell: false });
    let killer: NodeJS.Timeout | undefined;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGTERM');
      killer = setTimeout(() => child.kill('SIGKILL'), MISC_KILL_GRACE_MS);
    }, timeoutMs);
    child.once('error', (e: NodeJS.ErrnoException) => done({ ok: false, error: `${file}: ${e.code ?? e.message}` }));
    child.once('exit', (code, signal) => {
      if (timedOut) return done({ ok: false, error: `${file} timed out after ${timeoutMs} ms` });
      if (code === null) return done({ ok: false, error: `${file} killed by ${signal}` });
      if (code === 0) return done({ ok: true });
      if (spec.dynamic && code >= 2) return done({ ok: true, weight: code - 2 });
      done({ ok: false, error: `${file} exited with ${code}` });
    });
  });
}

export const realProbe: ProbeFn = (spec, timeoutMs) => {
  switch (spec.kind) {
    case 'tcp':
      return probeTcp(spec, timeoutMs);
    case 'http':
    case 'https':
      return probeHttp(spec, timeoutMs);
    case 'udp':
      return probeUdp(spec, timeoutMs);
    case 'misc':
      return probeMisc(spec, timeoutMs);
  }
};
