// keepalived.conf parsing and mapping: seed 004's file, includes and groups, and errors with FILE:LINE.
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ErrorCode, XdpvsError } from '../../src/errors.js';
import { formatNotices, loadKeepalivedConfig, mapKeepalived } from '../../src/keepalived/config.js';
import { parseKeepalivedText } from '../../src/keepalived/parser.js';

const FIXTURES = resolve(__dirname, '../fixtures/keepalived');

function fromText(text: string) {
  return mapKeepalived(parseKeepalivedText(text, 'test.conf'));
}

function errorOf(fn: () => unknown): XdpvsError {
  try {
    fn();
  } catch (e) {
    if (e instanceof XdpvsError) return e;
    throw e;
  }
  throw new Error('expected an error');
}

describe('seed 004 keepalived.conf', () => {
  it('loads unchanged, persistence_timeout 60 becoming ipvsadm -p 60', () => {
    const cfg = loadKeepalivedConfig(join(FIXTURES, 'seed-004.conf'));
    expect(cfg.services).toHaveLength(1);
    expect(cfg.services[0].persistent).toBe(60);
    expect(cfg.services[0].netmask).toBeUndefined();
  });

  it('persistence_granularity becomes the persistence netmask (-M)', () => {
    const text = readFileSync(join(FIXTURES, 'seed-004.conf'), 'utf8').replace(/^(.*persistence_timeout.*)$/m, '$1\n    persistence_granularity 255.255.255.0');
    expect(fromText(text).services[0]).toMatchObject({ persistent: 60, netmask: '255.255.255.0' });
  });

  it('without persistence_timeout gives exactly the seed desired state', () => {
    const text = readFileSync(join(FIXTURES, 'seed-004.conf'), 'utf8').replace(/^.*persistence_timeout.*$/m, '');
    const cfg = fromText(text);
    expect(cfg.routerId).toBe('LVS_DEVEL');
    expect(cfg.services).toHaveLength(1);
    const [svc] = cfg.services;
    expect({ id: svc.id, protocol: svc.protocol, address: svc.address, port: svc.port, scheduler: svc.scheduler, flags: svc.flags }).toEqual({
      id: 'tcp:192.168.1.229:80',
      protocol: 'tcp',
      address: '192.168.1.229',
      port: 80,
      scheduler: 'wrr',
      flags: [],
    });
    expect(svc.servers.map(({ loc: _loc, ...rs }) => rs)).toEqual([
      { address: '192.168.1.220', port: 80, method: 'dr', weight: 3 },
      { address: '192.168.1.231', port: 80, method: 'dr', weight: 1 },
    ]);
    expect(svc.health.quorum).toBe(1);
    expect(svc.health.hysteresis).toBe(0);
    expect(svc.health.sorryServer).toBeUndefined();
    const timing = { intervalMs: 6000, connectTimeoutMs: 10_000, retries: 3, delayBeforeRetryMs: 3000, rise: 1, warmupMs: 6000, alpha: false };
    expect(svc.health.servers.get('192.168.1.220:80')).toEqual({
      weight: 3,
      inhibitOnFailure: true,
      notifyUp: undefined,
      notifyDown: undefined,
      checks: [{ name: 'TCP_CHECK 192.168.1.220:80', probe: { kind: 'tcp', host: '192.168.1.220', port: 80, bindto: undefined, bindPort: undefined }, timing }],
    });
    expect(svc.health.servers.get('192.168.1.231:80')?.checks[0].timing).toEqual(timing);
    expect(svc.health.servers.get('192.168.1.231:80')?.inhibitOnFailure).toBe(true);

    const notices = formatNotices(cfg);
    // The VRRP part is named and left to keepalived; unused global_defs are listed; '//' remarks are reported.
    expect(notices).toContain('test.conf:10: vrrp_instance VI_1: left to keepalived itself (run keepalived for VRRP; xdpvsd only reads the LVS part)');
    expect(notices).toContain('test.conf:2: global_defs: not used by xdpvsd: notification_email, notification_email_from, smtp_server, smtp_connect_timeout');
    expect(notices.some((n) => n.startsWith('test.conf:25: ignored "//隔6秒查询"'))).toBe(true);
  });

  it('the lab copy of seed 004 loads from its file', () => {
    const cfg = loadKeepalivedConfig(join(FIXTURES, 'seed-004-lab.conf'));
    expect(cfg.services.map((s) => s.id)).toEqual(['tcp:198.18.0.100:80']);
    expect(cfg.services[0].servers.map((s) => `${s.address}:${s.port}/${s.weight}`)).toEqual(['198.18.0.11:80/3', '198.18.0.12:80/1']);
  });
});

describe('includes, groups and checkers', () => {
  const cfg = loadKeepalivedConfig(join(FIXTURES, 'main-with-include.conf'));

  it('follows include globs relative to the including file, in order', () => {
    expect(cfg.files.map((f) => f.slice(FIXTURES.length + 1))).toEqual(['main-with-include.conf', 'conf.d/10-web.conf', 'conf.d/20-dns.conf']);
    expect(cfg.routerId).toBe('XDPVS_TEST');
    expect(cfg.services.map((s) => s.id)).toEqual(['tcp:198.18.0.100:80', 'udp:198.18.0.100:53', 'udp:198.18.0.101:53']);
  });

  it('maps HTTP_GET, MISC_CHECK, quorum, hysteresis and the sorry server', () => {
    const web = cfg.services[0];
    expect(web.health).toMatchObject({ quorum: 2, hysteresis: 1, sorryServer: { address: '198.18.0.13', port: 80, method: 'dr', inhibit: true } });
    const rs1 = web.health.servers.get('198.18.0.11:80')!;
    expect(rs1.notifyDown).toEqual(['/usr/local/bin/page-me', 'rs1 down', 'now']);
    expect(rs1.checks[0]).toEqual({
      name: 'HTTP_GET 198.18.0.11:8080/healthz',
      probe: {
        kind: 'http',
        host: '198.18.0.11',
        port: 8080,
        bindto: undefined,
        bindPort: undefined,
        virtualhost: undefined,
        sni: false,
        urls: [{ path: '/healthz', digest: '9b3a0c85a887a256d6939da88aabd8cd', statusCodes: [[200, 299], [302, 302]] }],
      },
      timing: { intervalMs: 2000, connectTimeoutMs: 1500, retries: 2, delayBeforeRetryMs: 500, rise: 1, warmupMs: 2000, alpha: false },
    });
    const rs2 = web.health.servers.get('198.18.0.12:80')!;
    expect(rs2.checks[0].probe).toEqual({ kind: 'misc', argv: ['/usr/local/bin/check-rs', '--host', '198.18.0.12'], dynamic: true });
    // MISC_CHECK: retry 0 and delay_before_retry 1 s by default, misc_timeout as its timeout.
    expect(rs2.checks[0].timing).toMatchObject({ connectTimeoutMs: 3000, retries: 0, delayBeforeRetryMs: 1000 });
  });

  it('expands a virtual_server_group address range into one service per address', () => {
    const [, dns100, dns101] = cfg.services;
    for (const s of [dns100, dns101]) {
      expect(s).toMatchObject({ protocol: 'udp', scheduler: 'mh', flags: ['mh-port'] });
      const check = s.health.servers.get('198.18.0.11:53')!.checks[0];
      expect(check.timing.alpha).toBe(true);
      expect(check.probe).toMatchObject({ kind: 'udp', payload: Buffer.from([0, 1, 2]), requireReply: true, replyPattern: { bytes: Buffer.from([0, 0]), mask: Buffer.from([0xff, 0]) } });
    }
  });
});

describe('errors name the file and line', () => {
  const cases: Array<[string, string, string, ErrorCode]> = [
    ['virtual_server 198.18.0.100 80 {\n  lb_algo rr\n  bogus_keyword 1\n}', 'test.conf:3: unknown keyword "bogus_keyword" in virtual_server', 'unknown in vs', ErrorCode.Invalid],
    ['virtual_server 198.18.0.100 80 {\n  real_server 198.18.0.11 80 {\n    wieght 3\n  }\n}', 'test.conf:3: unknown keyword "wieght" in real_server', 'typo in rs', ErrorCode.Invalid],
    ['virtual_server 198.18.0.100 80 {\n  real_server 198.18.0.11 80 {\n    TCP_CHECK {\n      connect_timout 3\n    }\n  }\n}', 'test.conf:4: unknown keyword "connect_timout" in TCP_CHECK', 'typo in checker', ErrorCode.Invalid],
    ['virtual_server fwmark 1 {\n}', 'test.conf:1: virtual_server fwmark is not supported (xdpvs matches address, protocol and port)', 'fwmark', ErrorCode.Unsupported],
    ['virtual_server 198.18.0.100 80 {\n  real_server 198.18.0.11 80 {\n    DNS_CHECK {\n    }\n  }\n}', 'test.conf:3: DNS_CHECK is not supported (TCP_CHECK, HTTP_GET, SSL_GET, UDP_CHECK and MISC_CHECK are)', 'dns check', ErrorCode.Unsupported],
    ['virtual_server 198.18.0.100 80 {\n  delay_loop six\n}', 'test.conf:2: delay_loop: "six" is not a time in seconds', 'bad timer', ErrorCode.Invalid],
    ['virtual_server 198.18.0.100 80 {\n', 'test.conf:1: block of "virtual_server" is never closed', 'unclosed', ErrorCode.Invalid],
    ['virtual_server 198.18.0.300 80 {\n}', 'test.conf:1: invalid IPv4 address "198.18.0.300"', 'bad address', ErrorCode.Invalid],
    ['virtual_server 198.18.0.100 80 {\n  real_server 198.18.0.11 80 {\n    notify_up /bin/true nobody\n  }\n}', 'test.conf:3: notify_up: running scripts as another user ("nobody") is not supported; xdpvsd runs them as itself', 'script user', ErrorCode.Unsupported],
    ['frobnicate {\n}', 'test.conf:1: unknown keyword "frobnicate"', 'unknown top', ErrorCode.Invalid],
    ['virtual_server 198.18.0.100 80 {\n}\nvirtual_server 198.18.0.100 80 {\n}', 'test.conf:3: virtual server tcp:198.18.0.100:80 is already defined at test.conf:1', 'duplicate', ErrorCode.Invalid],
    ['@main router_id x', 'test.conf:1: conditional configuration lines (@ID ...) are not supported', 'conditional', ErrorCode.Invalid],
  ];
  it.each(cases)('%#: %s', (text, message, _what, code) => {
    const e = errorOf(() => fromText(text));
    expect(e.message).toBe(message);
    expect(e.code).toBe(code);
  });

  it('an error inside an included file names that file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'xdpvs-ka-'));
    writeFileSync(join(dir, 'main.conf'), 'include sub/*.conf\n');
    const sub = join(dir, 'sub');
    require('node:fs').mkdirSync(sub);
    writeFileSync(join(sub, 'a.conf'), '\n\nvirtual_server 198.18.0.100 80 {\n  lb_kind XYZ\n}\n');
    const e = errorOf(() => loadKeepalivedConfig(join(dir, 'main.conf')));
    expect(e.message).toBe(`${join(sub, 'a.conf')}:4: lb_kind: unknown forwarding method "XYZ" (expected DR, NAT or TUN)`);
  });
});
