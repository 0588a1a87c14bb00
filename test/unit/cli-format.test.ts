// ipvsadm 1.31's listing text from API objects: exact bytes (trailing blanks included) from its printf formats.

import { describe, expect, it } from 'vitest';
import type {
  Method,
  Protocol,
  RealServerView as ApiRealServer,
  ServiceView as ApiService,
} from '../../src/lb/model.js';
import {
  formatJson,
  formatList,
  formatOneService,
  formatTitle,
  printLargenum,
  sortServices,
} from '../../src/cli/format.js';

const zero = { conns: 0, inpkts: 0, outpkts: 0, inbytes: 0, outbytes: 0 };
const unresolved = { resolved: false, mac: null, interface: null };

function rs(address: string, port: number, method: Method, weight: number, more: Partial<ApiRealServer> = {}): ApiRealServer {
  const id = address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
  return { id, address, port, method, weight, activeConns: 0, inactiveConns: 0, neighbour: unresolved, stats: zero, ...more };
}

function svc(protocol: Protocol, address: string, port: number, scheduler: string, servers: ApiRealServer[], more: Partial<ApiService> = {}): ApiService {
  const family = address.includes(':') ? 'inet6' : 'inet';
  const id = `${protocol}:${family === 'inet6' ? `[${address}]` : address}:${port}`;
  return { id, protocol, address, port, family, scheduler, flags: [], stats: zero, servers, ...more };
}

const text = (lines: string[]) => `${lines.join('\n')}\n`;

describe('ipvsadm -Ln', () => {
  it('the seed session (001): -g, -m, -i real servers after -E wrr and -e -w 2 -m, sorted by address', () => {
    const services = [
      svc('tcp', '192.168.4.5', 80, 'wrr', [
        rs('192.168.2.203', 80, 'tunnel', 2),
        rs('192.168.2.201', 80, 'dr', 2),
        rs('192.168.2.100', 80, 'nat', 2),
        rs('192.168.2.202', 80, 'nat', 2),
      ]),
    ];
    expect(formatList(4096, services)).toBe(
      text([
        'IP Virtual Server version 1.2.1 (size=4096)',
        'Prot LocalAddress:Port Scheduler Flags',
        '  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn',
        'TCP  192.168.4.5:80 wrr',
        '  -> 192.168.2.100:80             Masq    2      0          0         ',
        '  -> 192.168.2.201:80             Route   2      0          0         ',
        '  -> 192.168.2.202:80             Masq    2      0          0         ',
        '  -> 192.168.2.203:80             Tunnel  2      0          0         ',
      ]),
    );
  });

  it('an empty table, and a service without real servers (seed 001, after -A)', () => {
    expect(formatList(4096, [])).toBe(
      text([
        'IP Virtual Server version 1.2.1 (size=4096)',
        'Prot LocalAddress:Port Scheduler Flags',
        '  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn',
      ]),
    );
    expect(formatList(4096, [svc('tcp', '192.168.4.5', 80, 'rr', [])]).split('\n')[3]).toBe('TCP  192.168.4.5:80 rr');
  });

  it('IPv4 and IPv6, TCP and UDP, Route/Tunnel/Masq, scheduler flags, connections, a long IPv6 name', () => {
    const services = [
      svc('tcp', 'fd00::100', 80, 'wrr', [
        rs('fd00:1234:5678:9abc:def0:1234:5678:9abc', 8080, 'nat', 0),
        rs('fd00::11', 80, 'nat', 5, { activeConns: 12345 }),
      ]),
      svc('udp', '198.18.0.100', 53, 'mh', [rs('198.18.0.21', 53, 'tunnel', 2, { inactiveConns: 7 })], { flags: ['mh-port'] }),
      svc('tcp', '198.18.0.100', 80, 'rr', [
        rs('198.18.0.12', 80, 'dr', 1, { activeConns: 3, inactiveConns: 1 }),
        rs('198.18.0.11', 80, 'dr', 1),
      ]),
    ];
    expect(formatList(1048576, services)).toBe(
      text([
        'IP Virtual Server version 1.2.1 (size=1048576)',
        'Prot LocalAddress:Port Scheduler Flags',
        '  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn',
        'TCP  198.18.0.100:80 rr',
        '  -> 198.18.0.11:80               Route   1      0          0         ',
        '  -> 198.18.0.12:80               Route   1      3          1         ',
        'UDP  198.18.0.100:53 mh (mh-port)',
        '  -> 198.18.0.21:53               Tunnel  2      0          7         ',
        'TCP  [fd00::100]:80 wrr',
        '  -> [fd00::11]:80                Masq    5      12345      0         ',
        '  -> [fd00:1234:5678:9abc:def0:1234:5678:9abc]:8080 Masq    0      0          0         ',
      ]),
    );
  });

  it('--nosort keeps the daemon order', () => {
    const services = [
      svc('tcp', '198.18.0.200', 80, 'rr', [rs('198.18.0.12', 80, 'dr', 1), rs('198.18.0.11', 80, 'dr', 1)]),
      svc('tcp', '198.18.0.100', 80, 'rr', []),
    ];
    const lines = formatList(4096, services, { sort: false }).split('\n');
    expect(lines[3]).toBe('TCP  198.18.0.200:80 rr');
    expect(lines[4].startsWith('  -> 198.18.0.12:80')).toBe(true);
    expect(lines[6]).toBe('TCP  198.18.0.100:80 rr');
  });

  it('scheduler flags as ipvsadm names them for each scheduler', () => {
    const line = (scheduler: string, flags: string[]) =>
      formatOneService(svc('tcp', '198.18.0.100', 80, scheduler, [], { flags })).split('\n')[2];
    expect(line('sh', ['sh-fallback', 'sh-port'])).toBe('TCP  198.18.0.100:80 sh (sh-fallback,sh-port)');
    expect(line('mh', ['mh-fallback'])).toBe('TCP  198.18.0.100:80 mh (mh-fallback)');
    expect(line('rr', ['flag-1', 'flag-3'])).toBe('TCP  198.18.0.100:80 rr (flag-1,flag-3)');
    expect(line('mh', [])).toBe('TCP  198.18.0.100:80 mh');
  });
});

describe('ipvsadm -Ln --stats', () => {
  it('columns and print_largenum suffixes', () => {
    const services = [
      svc('tcp', 'fd00::100', 80, 'rr', [rs('fd00::11', 80, 'nat', 1, { stats: { conns: 2, inpkts: 10, outpkts: 10, inbytes: 826, outbytes: 1098 } })], {
        stats: { conns: 2, inpkts: 20, outpkts: 20, inbytes: 1652, outbytes: 2196 },
      }),
      svc(
        'tcp',
        '198.18.0.100',
        80,
        'rr',
        [
          rs('198.18.0.12', 80, 'dr', 1),
          rs('198.18.0.11', 80, 'dr', 1, {
            stats: { conns: 100_000_000, inpkts: 999_999_999, outpkts: 1_000_000_000, inbytes: 100_000_000_000, outbytes: 99_999_999_999_999 },
          }),
        ],
        { stats: { conns: 4, inpkts: 123_456_789, outpkts: 99_999_999, inbytes: 1_234_567_890, outbytes: 123_456_789_012_345 } },
      ),
    ];
    expect(formatList(4096, services, { stats: true })).toBe(
      text([
        'IP Virtual Server version 1.2.1 (size=4096)',
        'Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes',
        '  -> RemoteAddress:Port',
        'TCP  198.18.0.100:80                     4  123456K 99999999    1234M     123T',
        '  -> 198.18.0.11:80                100000K  999999K    1000M     100G   99999G',
        '  -> 198.18.0.12:80                      0        0        0        0        0',
        'TCP  [fd00::100]:80                      2       20       20     1652     2196',
        '  -> [fd00::11]:80                       2       10       10      826     1098',
      ]),
    );
  });

  it('print_largenum at each threshold', () => {
    expect(printLargenum(0)).toBe('        0');
    expect(printLargenum(99_999_999)).toBe(' 99999999');
    expect(printLargenum(100_000_000)).toBe('  100000K');
    expect(printLargenum(999_999_999)).toBe('  999999K');
    expect(printLargenum(1_000_000_000)).toBe('    1000M');
    expect(printLargenum(99_999_999_999)).toBe('   99999M');
    expect(printLargenum(100_000_000_000)).toBe('     100G');
    expect(printLargenum(100_000_000_000_000)).toBe('     100T');
    expect(printLargenum(-5)).toBe('        0');
  });
});

describe('one service (ipvsadm -Ln -t VIP:PORT)', () => {
  it('the title and the service, no version line', () => {
    expect(formatOneService(svc('tcp', '2.2.2.1', 80, 'rr', [rs('2.2.2.200', 80, 'dr', 1), rs('2.2.2.100', 80, 'dr', 1)]))).toBe(
      text([
        'Prot LocalAddress:Port Scheduler Flags',
        '  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn',
        'TCP  2.2.2.1:80 rr',
        '  -> 2.2.2.100:80                 Route   1      0          0         ',
        '  -> 2.2.2.200:80                 Route   1      0          0         ',
      ]),
    );
    expect(formatTitle({ stats: true })).toBe(
      'Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes\n  -> RemoteAddress:Port\n',
    );
  });
});

describe('ordering (ipvsadm_cmp_services / ipvs_cmp_dests)', () => {
  it('family, then protocol, then address as a number, then port', () => {
    const order = sortServices([
      svc('udp', '10.0.0.1', 53, 'rr', []),
      svc('tcp', 'fd00::1', 80, 'rr', []),
      svc('tcp', '10.0.0.10', 80, 'rr', []),
      svc('tcp', '10.0.0.9', 443, 'rr', []),
      svc('tcp', '10.0.0.9', 80, 'rr', []),
      svc('tcp', '9.255.255.255', 80, 'rr', []),
    ]).map((s) => s.id);
    expect(order).toEqual([
      'tcp:9.255.255.255:80',
      'tcp:10.0.0.9:80',
      'tcp:10.0.0.9:443',
      'tcp:10.0.0.10:80',
      'udp:10.0.0.1:53',
      'tcp:[fd00::1]:80',
    ]);
  });
});

describe('--json', () => {
  it('the API objects, sorted like the text', () => {
    const a = svc('tcp', '198.18.0.200', 80, 'rr', [rs('198.18.0.12', 80, 'dr', 1), rs('198.18.0.11', 80, 'dr', 1)]);
    const b = svc('tcp', '198.18.0.100', 80, 'rr', []);
    const parsed = JSON.parse(formatJson([a, b])) as ApiService[];
    expect(parsed.map((s) => s.id)).toEqual(['tcp:198.18.0.100:80', 'tcp:198.18.0.200:80']);
    expect(parsed[1].servers.map((s) => s.id)).toEqual(['198.18.0.11:80', '198.18.0.12:80']);
    expect(parsed[1]).toEqual({ ...a, servers: [a.servers[1], a.servers[0]] });
  });
});
