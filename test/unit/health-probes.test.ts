// The probes against real loopback servers and real programs: TCP, HTTP (status ranges, MD5 digest, regex, Host),
// HTTPS, UDP request/response, MISC_CHECK exit codes (argv, never a shell), and the webhook notifier.
import { createHash } from 'node:crypto';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { chmodSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer as createNetServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { splitArgv } from '../../src/health/argv.js';
import { createNotifier, parseWebhookUrl, type HealthEvent } from '../../src/health/notify.js';
import { probeHttp, probeMisc, probeTcp, probeUdp } from '../../src/health/probes.js';

const BODY = 'rs1\n';
let http: Server;
let httpPort: number;
let udp: UdpSocket;
let udpPort: number;
let closedPort: number;
const hosts: string[] = [];

beforeAll(async () => {
  http = createHttpServer((req, res) => {
    hosts.push(req.headers.host ?? '');
    if (req.url === '/health') res.writeHead(200).end(BODY);
    else if (req.url === '/moved') res.writeHead(302, { location: '/' }).end();
    else res.writeHead(503).end('down\n');
  });
  await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
  httpPort = (http.address() as AddressInfo).port;
  udp = createSocket('udp4');
  udp.on('message', (msg, rinfo) => udp.send(Buffer.concat([Buffer.from([0xab]), msg]), rinfo.port, rinfo.address));
  await new Promise<void>((r) => udp.bind(0, '127.0.0.1', r));
  udpPort = udp.address().port;
  // A port nobody listens on: bind, note, close.
  const s = createNetServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  closedPort = (s.address() as AddressInfo).port;
  await new Promise((r) => s.close(r));
});

afterAll(() => {
  http.close();
  udp.close();
});

describe('TCP_CHECK', () => {
  it('connects, or says why not', async () => {
    expect(await probeTcp({ kind: 'tcp', host: '127.0.0.1', port: httpPort }, 1000)).toEqual({ ok: true });
    expect(await probeTcp({ kind: 'tcp', host: '127.0.0.1', port: closedPort }, 1000)).toEqual({ ok: false, error: `connect to 127.0.0.1:${closedPort}: ECONNREFUSED` });
  });
});

describe('HTTP_GET', () => {
  const spec = (urls: Parameters<typeof probeHttp>[0]['urls'], virtualhost?: string) => ({ kind: 'http' as const, host: '127.0.0.1', port: httpPort, urls, virtualhost });
  it('checks status ranges (200-299 by default), the MD5 digest of the body, a regex, and sends the Host header', async () => {
    const md5 = createHash('md5').update(BODY).digest('hex');
    expect(await probeHttp(spec([{ path: '/health', statusCodes: [], digest: md5, regex: '^rs\\d' }], 'www.example.test'), 1000)).toEqual({ ok: true });
    expect(hosts.at(-1)).toBe('www.example.test');
    expect(await probeHttp(spec([{ path: '/health', statusCodes: [], digest: '0'.repeat(32) }]), 1000)).toMatchObject({ ok: false, error: expect.stringContaining(`digest ${md5}`) });
    expect(await probeHttp(spec([{ path: '/', statusCodes: [] }]), 1000)).toMatchObject({ ok: false, error: expect.stringContaining('status 503') });
    expect(await probeHttp(spec([{ path: '/moved', statusCodes: [[200, 299], [302, 302]] }]), 1000)).toEqual({ ok: true });
    expect(await probeHttp(spec([{ path: '/health', statusCodes: [], regex: 'rs1', regexNoMatch: true }]), 1000)).toMatchObject({ ok: false });
    // Every URL must pass.
    expect(await probeHttp(spec([{ path: '/health', statusCodes: [] }, { path: '/', statusCodes: [] }]), 1000)).toMatchObject({ ok: false });
  });

  it('SSL_GET against a plain HTTP port fails with a TLS error, bounded by the timeout', async () => {
    const r = await probeHttp({ kind: 'https', host: '127.0.0.1', port: httpPort, urls: [{ path: '/health', statusCodes: [] }] }, 1000);
    expect(r.ok).toBe(false);
  });
});

describe('UDP_CHECK', () => {
  it('with require_reply: a matching reply passes, a mismatch fails; ICMP port unreachable fails', async () => {
    const base = { kind: 'udp' as const, host: '127.0.0.1', port: udpPort, payload: Buffer.from([1, 2]), requireReply: true, minReplyLength: 0, maxReplyLength: 255 };
    expect(await probeUdp({ ...base, replyPattern: { bytes: Buffer.from([0xab, 0x01]), mask: Buffer.from([0xff, 0xff]) } }, 1000)).toEqual({ ok: true });
    expect(await probeUdp({ ...base, replyPattern: { bytes: Buffer.from([0xac]), mask: Buffer.from([0xff]) } }, 1000)).toMatchObject({ ok: false });
    expect(await probeUdp({ ...base, replyPattern: { bytes: Buffer.from([0xa0]), mask: Buffer.from([0xf0]) } }, 1000)).toEqual({ ok: true });
    expect(await probeUdp({ ...base, port: closedPort }, 1000)).toMatchObject({ ok: false, error: expect.stringContaining('ECONNREFUSED') });
  });
});

describe('MISC_CHECK', () => {
  const dir = mkdtempSync(join(tmpdir(), 'xdpvs-misc-'));
  const script = join(dir, 'check.sh');
  writeFileSync(script, '#!/bin/sh\nexit 0\n');
  chmodSync(script, 0o755);
  const run = (code: number, dynamic: boolean, args: string[] = []) => {
    writeFileSync(script, `#!/bin/sh\nprintf '%s\\n' "$@" > ${join(dir, 'args')}\nexit ${code}\n`);
    return probeMisc({ kind: 'misc', argv: [script, ...args], dynamic }, 2000);
  };

  it('exit 0 up, 1 down; misc_dynamic 2..255 up with weight code - 2, else down', async () => {
    expect(await run(0, false)).toEqual({ ok: true });
    expect(await run(1, false)).toMatchObject({ ok: false, error: expect.stringContaining('exited with 1') });
    expect(await run(12, true)).toEqual({ ok: true, weight: 10 });
    expect(await run(12, false)).toMatchObject({ ok: false });
  });

  it('runs argv directly: shell syntax in arguments stays literal', async () => {
    const argv = splitArgv(`${script} 'two words' "\\$HOME" ;rm -rf /nonexistent`);
    expect(argv.slice(1)).toEqual(['two words', '$HOME', ';rm', '-rf', '/nonexistent']);
    writeFileSync(script, `#!/bin/sh\nprintf '%s\\n' "$@" > ${join(dir, 'args')}\nexit 0\n`);
    expect(await probeMisc({ kind: 'misc', argv, dynamic: false }, 2000)).toEqual({ ok: true });
    expect(readFileSync(join(dir, 'args'), 'utf8')).toBe('two words\n$HOME\n;rm\n-rf\n/nonexistent\n');
  });

  it('a program past its timeout is killed and counts as a failure; a missing one fails', async () => {
    writeFileSync(script, '#!/bin/sh\nexec sleep 10\n');
    expect(await probeMisc({ kind: 'misc', argv: [script], dynamic: false }, 200)).toMatchObject({ ok: false, error: expect.stringContaining('timed out') });
    expect(await probeMisc({ kind: 'misc', argv: [join(dir, 'nope')], dynamic: false }, 200)).toMatchObject({ ok: false, error: expect.stringContaining('ENOENT') });
  });
});

describe('webhook notifier', () => {
  it('POSTs each event as JSON to the given URL, in order, without following redirects', async () => {
    const got: Array<{ url: string; body: HealthEvent }> = [];
    const hook = createHttpServer((req, res) => {
      let b = '';
      req.on('data', (c) => (b += c));
      req.on('end', () => {
        got.push({ url: req.url ?? '', body: JSON.parse(b) as HealthEvent });
        res.writeHead(req.url === '/redirect' ? 307 : 204, { location: 'http://127.0.0.1:1/elsewhere' }).end();
      });
    });
    await new Promise<void>((r) => hook.listen(0, '127.0.0.1', r));
    const port = (hook.address() as AddressInfo).port;
    const logs: string[] = [];
    const n = createNotifier({ log: (_l, m) => logs.push(m), webhookUrl: parseWebhookUrl(`http://127.0.0.1:${port}/redirect`) });
    const ev = (event: HealthEvent['event'], server: string): HealthEvent => ({ event, time: 't', routerId: 'R', service: 'tcp:198.18.0.100:80', server });
    n.webhook(ev('server-down', '198.18.0.11:80'));
    n.webhook(ev('server-up', '198.18.0.11:80'));
    await n.idle();
    hook.close();
    expect(got.map((g) => `${g.url} ${g.body.event} ${g.body.server}`)).toEqual(['/redirect server-down 198.18.0.11:80', '/redirect server-up 198.18.0.11:80']);
    expect(logs.some((l) => l.includes('answered 307'))).toBe(true);
    expect(() => parseWebhookUrl('file:///etc/passwd')).toThrow(/http/);
  });
});
