// xdpvsadm end to end in-process: run() against an in-memory stand-in for xdpvsd's HTTP API on 127.0.0.1.

import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { run, packageVersion } from '../../src/cli/main.js';

// ---- a stand-in daemon: the routes of docs/api.md over a Map, errors in the API's shape ----------------------

interface Rs {
  id: string;
  address: string;
  port: number;
  method: string;
  weight: number;
  activeConns: number;
  inactiveConns: number;
  stats: Record<string, number>;
}
interface Svc {
  id: string;
  protocol: string;
  address: string;
  port: number;
  family: string;
  scheduler: string;
  flags: string[];
  stats: Record<string, number>;
  servers: Rs[];
}

const TOKEN = 'let-me-in';
const services = new Map<string, Svc>();
const requests: string[] = [];
const zero = () => ({ conns: 0, inpkts: 0, outpkts: 0, inbytes: 0, outbytes: 0 });
const hostPort = (a: string, p: number) => (a.includes(':') ? `[${a}]:${p}` : `${a}:${p}`);

class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

function handle(method: string, path: string, body: Record<string, unknown>): [number, unknown] {
  const parts = path.split('/').slice(1).map(decodeURIComponent); // v1, services, svc, servers, rs
  if (parts[0] !== 'v1') throw new HttpError(404, 'XDPVS_ERR_NOT_FOUND', 'no such route');
  if (parts[1] === 'info') return [200, { version: '0.1.0', connTableSize: 4096, interfaces: [] }];
  const svcOf = (id: string) => {
    const s = services.get(id);
    if (!s) throw new HttpError(404, 'XDPVS_ERR_NOT_FOUND', `no service ${id}`);
    return s;
  };
  const checkScheduler = (name: unknown) => {
    if (!['rr', 'wrr', 'mh'].includes(String(name))) {
      throw new HttpError(501, 'XDPVS_ERR_UNSUPPORTED', `scheduler ${String(name)} is not supported yet`);
    }
  };
  if (parts.length === 2) {
    if (method === 'GET') return [200, { services: [...services.values()] }];
    if (method === 'DELETE') {
      const n = services.size;
      services.clear();
      return [200, { deleted: n }];
    }
    const { protocol, address, port, scheduler = 'wlc', flags = [] } = body as { protocol: string; address: string; port: number; scheduler?: string; flags?: string[] };
    const id = `${protocol}:${hostPort(address, port)}`;
    if (services.has(id)) throw new HttpError(409, 'XDPVS_ERR_EXISTS', `service ${id} already exists`);
    checkScheduler(scheduler);
    const s: Svc = { id, protocol, address, port, family: address.includes(':') ? 'inet6' : 'inet', scheduler, flags, stats: zero(), servers: [] };
    services.set(id, s);
    return [201, s];
  }
  const svc = svcOf(parts[2]);
  if (parts.length === 3) {
    if (method === 'GET') return [200, svc];
    if (method === 'DELETE') {
      services.delete(svc.id);
      return [204, undefined];
    }
    if (body.scheduler !== undefined) checkScheduler(body.scheduler);
    Object.assign(svc, body);
    return [200, svc];
  }
  if (parts.length === 4) {
    const { address, port = svc.port, method: m = 'dr', weight = 1 } = body as { address: string; port?: number; method?: string; weight?: number };
    const id = hostPort(address, port);
    if (svc.servers.some((r) => r.id === id)) throw new HttpError(409, 'XDPVS_ERR_EXISTS', `real server ${id} already exists in ${svc.id}`);
    const r: Rs = { id, address, port, method: m, weight, activeConns: 0, inactiveConns: 0, stats: zero() };
    svc.servers.push(r);
    return [201, r];
  }
  const r = svc.servers.find((x) => x.id === parts[4]);
  if (!r) throw new HttpError(404, 'XDPVS_ERR_NOT_FOUND', `no real server ${parts[4]} in ${svc.id}`);
  if (method === 'DELETE') {
    svc.servers = svc.servers.filter((x) => x !== r);
    return [204, undefined];
  }
  Object.assign(r, body);
  return [200, r];
}

let server: Server;
let url: string;
const dir = mkdtempSync(join(tmpdir(), 'xdpvsadm-main-'));
const tokenFile = join(dir, 'api-token');
const wrongTokenFile = join(dir, 'wrong-token');
writeFileSync(tokenFile, `${TOKEN}\n`);
writeFileSync(wrongTokenFile, 'guess\n');

beforeAll(async () => {
  server = createServer(async (req, res) => {
    let text = '';
    for await (const chunk of req) text += chunk;
    requests.push(`${req.method} ${req.url}${text ? ` ${text}` : ''}`);
    let status: number;
    let out: unknown;
    try {
      if (req.method !== 'GET' && req.headers.authorization !== `Bearer ${TOKEN}`) {
        throw new HttpError(401, 'XDPVS_ERR_UNAUTHORIZED', 'a write needs the bearer token');
      }
      [status, out] = handle(req.method ?? 'GET', req.url ?? '/', text ? JSON.parse(text) : {});
    } catch (e) {
      const h = e as HttpError;
      [status, out] = [h.status ?? 500, { error: { code: h.code ?? 'XDPVS_ERR_INTERNAL', message: h.message } }];
    }
    res.statusCode = status;
    if (out === undefined) res.end();
    else {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify(out));
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
  rmSync(dir, { recursive: true, force: true });
});

beforeEach(() => {
  services.clear();
  requests.length = 0;
});

// ---- running xdpvsadm ---------------------------------------------------------------------------------------

interface Result {
  status: number;
  stdout: string;
  stderr: string;
}

async function xdpvsadm(line: string | string[], env: Record<string, string> = {}): Promise<Result> {
  let stdout = '';
  let stderr = '';
  const argv = Array.isArray(line) ? line : line.split(/\s+/).filter(Boolean);
  const status = await run(argv, {
    stdout: (t) => void (stdout += t),
    stderr: (t) => void (stderr += t),
    env: { XDPVS_SERVER: url, XDPVS_TOKEN_FILE: tokenFile, ...env },
    runtimeFile: join(dir, 'no-runtime-file.json'),
    resolvePort: (name) => (name === 'http' ? 80 : undefined),
  });
  return { status, stdout, stderr };
}

async function ok(line: string): Promise<string> {
  const r = await xdpvsadm(line);
  expect(r, line).toMatchObject({ status: 0, stderr: '' });
  return r.stdout;
}

const text = (lines: string[]) => `${lines.join('\n')}\n`;

describe('the seed session (001_8c5d099f08c89d11)', () => {
  it('-A, -a with -w/-m/-i, -E, -e, each followed by -Ln, prints what ipvsadm printed', async () => {
    const head = [
      'IP Virtual Server version 1.2.1 (size=4096)',
      'Prot LocalAddress:Port Scheduler Flags',
      '  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn',
    ];
    expect(await ok('-A -t 192.168.4.5:80 -s rr')).toBe('');
    expect(await ok('-Ln')).toBe(text([...head, 'TCP  192.168.4.5:80 rr']));
    await ok('-a -t 192.168.4.5:80 -r 192.168.2.100:80');
    expect(await ok('-Ln')).toBe(
      text([...head, 'TCP  192.168.4.5:80 rr', '  -> 192.168.2.100:80             Route   1      0          0         ']),
    );
    await ok('-a -t 192.168.4.5:80 -r 192.168.2.201:80 -w 2');
    await ok('-a -t 192.168.4.5:80 -r 192.168.2.202:80 -w 2 -m');
    await ok('-a -t 192.168.4.5:80 -r 192.168.2.203:80 -w 2 -i');
    await ok('-E -t 192.168.4.5:80 -s wrr');
    await ok('-e -t 192.168.4.5:80 -r 192.168.2.100:80 -w 2 -m');
    expect(await ok('-Ln')).toBe(
      text([
        ...head,
        'TCP  192.168.4.5:80 wrr',
        '  -> 192.168.2.100:80             Masq    2      0          0         ',
        '  -> 192.168.2.201:80             Route   2      0          0         ',
        '  -> 192.168.2.202:80             Masq    2      0          0         ',
        '  -> 192.168.2.203:80             Tunnel  2      0          0         ',
      ]),
    );
    // What went over the wire for the ipvsadm defaults (method dr, weight 1, full -e replacement).
    expect(requests.filter((r) => !r.startsWith('GET'))).toEqual([
      'POST /v1/services {"protocol":"tcp","address":"192.168.4.5","port":80,"scheduler":"rr","flags":[]}',
      'POST /v1/services/tcp%3A192.168.4.5%3A80/servers {"address":"192.168.2.100","port":80,"method":"dr","weight":1}',
      'POST /v1/services/tcp%3A192.168.4.5%3A80/servers {"address":"192.168.2.201","port":80,"method":"dr","weight":2}',
      'POST /v1/services/tcp%3A192.168.4.5%3A80/servers {"address":"192.168.2.202","port":80,"method":"nat","weight":2}',
      'POST /v1/services/tcp%3A192.168.4.5%3A80/servers {"address":"192.168.2.203","port":80,"method":"tunnel","weight":2}',
      // -E without -p: not persistent; -e without -x/-y: no thresholds (ipvsadm replaces the whole definition).
      'PATCH /v1/services/tcp%3A192.168.4.5%3A80 {"scheduler":"wrr","flags":[],"persistent":0}',
      'PATCH /v1/services/tcp%3A192.168.4.5%3A80/servers/192.168.2.100%3A80 {"weight":2,"method":"nat","upperThreshold":0,"lowerThreshold":0}',
    ]);
  });

  it('-d, -D, -C (seed 000)', async () => {
    await ok('-A -t 2.2.2.1:80 -s rr');
    await ok('-a -t 2.2.2.1:80 -r 192.168.1.100 -m');
    await ok('-a -t 2.2.2.1:80 -r 192.168.1.200 -m');
    await ok('-d -t 2.2.2.1:80 -r 192.168.1.100:80');
    expect((await ok('-Ln')).split('\n').slice(3)).toEqual(['TCP  2.2.2.1:80 rr', '  -> 192.168.1.200:80             Masq    1      0          0         ', '']);
    await ok('-D -t 2.2.2.1:80');
    await ok('-A -t 2.2.2.1:80 -s rr');
    await ok('-C');
    expect((await ok('-Ln')).split('\n')).toHaveLength(4);
  });
});

describe('listing', () => {
  beforeEach(async () => {
    await ok('-A -t 198.18.0.100:80 -s rr');
    await ok('-A -u [fd00::100]:53 -s mh -b mh-port');
    await ok('-a -t 198.18.0.100:80 -r 198.18.0.11');
  });

  it('-L without -n prints numbers too (no DNS)', async () => {
    expect(await ok('-L')).toBe(await ok('-Ln'));
    expect(await ok('')).toBe(await ok('-Ln'));
  });

  it('one service, IPv6 and flags', async () => {
    expect(await ok('-Ln -u [fd00::100]:53')).toBe(
      text(['Prot LocalAddress:Port Scheduler Flags', '  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn', 'UDP  [fd00::100]:53 mh (mh-port)']),
    );
    expect(await ok('-L -t 198.18.0.100:http')).toContain('TCP  198.18.0.100:80 rr\n');
  });

  it('--stats', async () => {
    expect(await ok('-Ln --stats')).toBe(
      text([
        'IP Virtual Server version 1.2.1 (size=4096)',
        'Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes',
        '  -> RemoteAddress:Port',
        'TCP  198.18.0.100:80                     0        0        0        0        0',
        '  -> 198.18.0.11:80                      0        0        0        0        0',
        'UDP  [fd00::100]:53                      0        0        0        0        0',
      ]),
    );
  });

  it('--json prints the API objects', async () => {
    const all = JSON.parse(await ok('-L --json')) as { id: string; servers: unknown[] }[];
    expect(all.map((s) => s.id)).toEqual(['tcp:198.18.0.100:80', 'udp:[fd00::100]:53']);
    expect(all[0].servers).toHaveLength(1);
    const one = JSON.parse(await ok('-L --json -t 198.18.0.100:80')) as { id: string }[];
    expect(one.map((s) => s.id)).toEqual(['tcp:198.18.0.100:80']);
  });

  it('listing needs no token', async () => {
    const r = await xdpvsadm('-Ln', { XDPVS_TOKEN_FILE: join(dir, 'absent') });
    expect(r.status).toBe(0);
  });
});

describe("the daemon's refusals, in ipvsadm's words", () => {
  const refused = async (line: string, stderr: string, status = 255) => {
    const r = await xdpvsadm(line);
    expect({ status: r.status, stderr: r.stderr, stdout: r.stdout }, line).toEqual({ status, stderr, stdout: '' });
  };

  it('services', async () => {
    await ok('-A -t 198.18.0.100:80 -s rr');
    await refused('-A -t 198.18.0.100:80 -s rr', 'Service already exists\nxdpvsd: service tcp:198.18.0.100:80 already exists\n');
    await refused('-E -t 198.18.0.200:80 -s rr', 'No such service\nxdpvsd: no service tcp:198.18.0.200:80\n');
    await refused('-D -t 198.18.0.200:80', 'No such service\nxdpvsd: no service tcp:198.18.0.200:80\n');
    await refused('-Ln -t 198.18.0.200:80', 'No such service\nxdpvsd: no service tcp:198.18.0.200:80\n', 1);
  });

  it('-A without -s asks for wlc; the daemon says it is not supported yet', async () => {
    await refused('-A -t 198.18.0.100:80', 'xdpvsd: scheduler wlc is not supported yet\n');
  });

  it('real servers', async () => {
    await ok('-A -t 198.18.0.100:80 -s rr');
    await ok('-a -t 198.18.0.100:80 -r 198.18.0.11');
    await refused('-a -t 198.18.0.100:80 -r 198.18.0.11', 'Destination already exists\nxdpvsd: real server 198.18.0.11:80 already exists in tcp:198.18.0.100:80\n');
    await refused('-a -t 198.18.0.200:80 -r 198.18.0.11', 'Service not defined\nxdpvsd: no service tcp:198.18.0.200:80\n');
    await refused('-d -t 198.18.0.100:80 -r 198.18.0.12', 'No such destination\nxdpvsd: no real server 198.18.0.12:80 in tcp:198.18.0.100:80\n');
    await refused('-e -t 198.18.0.100:80 -r 198.18.0.12 -w 3', 'No such destination\nxdpvsd: no real server 198.18.0.12:80 in tcp:198.18.0.100:80\n');
    await refused('-d -t 198.18.0.200:80 -r 198.18.0.12', 'Service not defined\nxdpvsd: no service tcp:198.18.0.200:80\n');
  });

  it('a write without the right token', async () => {
    const r = await xdpvsadm('-C', { XDPVS_TOKEN_FILE: wrongTokenFile });
    expect(r).toEqual({ status: 255, stdout: '', stderr: 'Permission denied (you must be root)\nxdpvsd: a write needs the bearer token\n' });
    const absent = join(dir, 'absent-token');
    const r2 = await xdpvsadm('-C', { XDPVS_TOKEN_FILE: absent });
    expect(r2.status).toBe(255);
    expect(r2.stderr).toBe(
      `Permission denied (you must be root)\nxdpvsd: a write needs the bearer token\nxdpvsadm: no API token: cannot read ${absent}: ENOENT\n`,
    );
  });
});

describe('exit statuses and messages without the daemon', () => {
  it('unreachable daemon: exit 2', async () => {
    // A port that was free a moment ago: nothing listens there.
    const probe = createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', () => resolve()));
    const dead = `http://127.0.0.1:${(probe.address() as AddressInfo).port}`;
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    const r = await xdpvsadm('-Ln', { XDPVS_SERVER: dead });
    expect(r.status).toBe(2);
    expect(r.stderr).toBe(`xdpvsadm: cannot reach xdpvsd at ${dead}: connect ECONNREFUSED ${dead.slice('http://'.length)}\n`);
  });

  it('--server on the command line wins over the environment', async () => {
    const r = await xdpvsadm(['-Ln', '--server', url], { XDPVS_SERVER: 'http://127.0.0.1:9' });
    expect(r.status).toBe(0);
  });

  it('not supported yet: exit 1', async () => {
    const r = await xdpvsadm('-A -f 1 -s rr');
    expect(r).toEqual({ status: 1, stdout: '', stderr: 'xdpvsadm: -f is not supported yet\n' });
    expect(requests).toEqual([]);
  });

  it('bad arguments: exit 2; option syntax: exit 255 with a hint', async () => {
    expect(await xdpvsadm('-a -t 198.18.0.100:80 -r 198.18.0.11 -w 70000')).toEqual({ status: 2, stdout: '', stderr: 'illegal weight specified\n' });
    expect(await xdpvsadm('--bogus')).toEqual({
      status: 255,
      stdout: '',
      stderr: "--bogus: unknown option\nTry `xdpvsadm -h' or 'xdpvsadm --help' for more information.\n",
    });
    expect(await xdpvsadm('-Ln --server ftp://x')).toEqual({ status: 2, stdout: '', stderr: 'xdpvsadm: --server: not an http(s) URL: ftp://x\n' });
  });

  it('-h and -v', async () => {
    const help = await xdpvsadm('-h');
    expect(help.status).toBe(0);
    expect(help.stdout).toContain('Usage:\n  xdpvsadm -A|E virtual-service');
    expect(help.stdout).toContain('never resolves names');
    expect(help.stdout).toContain('--persistent   -p [timeout]');
    expect(help.stdout).toContain('-f/--fwmark-service');
    const version = await xdpvsadm('-v');
    expect(version).toEqual({ status: 0, stderr: '', stdout: `xdpvsadm ${packageVersion()} (ipvsadm-compatible; xdpvs data plane)\n` });
    expect(packageVersion()).toMatch(/^\d+\.\d+\.\d+/);
  });
});
