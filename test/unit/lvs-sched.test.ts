// Schedulers, persistence, thresholds, timeouts and the connection table from the control plane's side: xdpvsadm's
// -p/-M/-x/-y/-c/--set/--timeout/--thresholds/--persistent-conn and prefix services, the balancer's writes to the
// scheduler maps (dest_sched, svc_persist, svc_prefix, svc_wild), the per-second count corrections and template
// extensions, and -Lnc's text. In memory (no privileges).

import { describe, expect, it } from 'vitest';

import { parseArgs, type Command } from '../../src/cli/args.js';
import { expireText, formatConnections, formatTimeouts } from '../../src/cli/connections.js';
import { formatList, formatServiceEntry } from '../../src/cli/format.js';
import { isXdpvsError } from '../../src/errors.js';
import { SchedState, type ConnRecord } from '../../src/lb/sched-sync.js';
import { parseNetmask, parseVip, parseVipEndpoint } from '../../src/lb/vip.js';
import { SchedMaps } from '../../src/maps/sched-maps.js';
import { DS_F_AVAILABLE } from '../../src/maps/sched-structs.js';
import { Conn, ConnState, FlowKey, SVC_F_FALLBACK, SVC_F_HASH_PORT, SVC_F_PERSIST, SVC_F_THRESHOLDS } from '../../src/maps/structs.js';
import { fakeDirector, svcPath } from '../helpers/fake-director.js';

const NEIGH = { '198.18.0.11': '02:00:00:00:00:11', '198.18.0.12': '02:00:00:00:00:12', 'fd00::11': '02:00:00:00:00:11' };
const SVC = 'tcp:198.18.0.100:80';

function cmd(line: string | string[]): Command {
  return parseArgs(Array.isArray(line) ? line : line.split(' ')).command;
}

function failure(line: string): { code: string; message: string; exit: unknown } {
  try {
    parseArgs(line.split(' '));
  } catch (e) {
    if (isXdpvsError(e)) return { code: e.code, message: e.message, exit: e.details.exitCode };
    throw e;
  }
  throw new Error(`parsed: ${line}`);
}

const VIP = { protocol: 'tcp', address: '198.18.0.100', family: 'inet', port: 80 };

describe('xdpvsadm: persistence, thresholds, timeouts, connections', () => {
  it('-p [timeout]: the value, or ipvsadm\'s 300 when none follows', () => {
    expect(cmd('-A -t 198.18.0.100:80 -s rr -p 60')).toMatchObject({ kind: 'add-service', persistent: 60 });
    expect(cmd('-A -t 198.18.0.100:80 -p -s rr')).toMatchObject({ persistent: 300, scheduler: 'rr' });
    expect(cmd('-A -t 198.18.0.100:80 -s rr -p')).toMatchObject({ persistent: 300 });
    expect(cmd('-A -t 198.18.0.100:80 --persistent=20')).toMatchObject({ persistent: 20, scheduler: 'wlc' });
    expect(cmd('-A -t 198.18.0.100:80 -p20')).toMatchObject({ persistent: 20 });
    expect(cmd('-A -t 198.18.0.100:80 -s rr')).not.toHaveProperty('persistent');
    expect(failure('-A -t 198.18.0.100:80 -p 0')).toEqual({ code: 'XDPVS_ERR_INVALID', message: "invalid timeout value `0' specified", exit: 2 });
    expect(failure('-A -t 198.18.0.100:80 -p 2678401').message).toBe("invalid timeout value `2678401' specified");
  });

  it('-M: a dotted netmask for IPv4, a length for IPv6; a port-0 service needs -p', () => {
    expect(cmd('-A -t 198.18.0.100:80 -p 60 -M 255.255.255.0')).toMatchObject({ persistent: 60, netmask: '255.255.255.0' });
    expect(cmd(['-A', '-t', '[fd00::100]:80', '-p', '60', '-M', '64'])).toMatchObject({ netmask: '64' });
    expect(failure('-A -t 198.18.0.100:80 -p 60 -M 255.0.255.0').message).toBe('illegal virtual server netmask specified');
    expect(failure('-A -t [fd00::100]:80 -p 60 -M 129').message).toBe('illegal ipv6 netmask specified');
    expect(cmd('-A -t 198.18.0.100:0 -p 60 -s rr')).toMatchObject({ service: { ...VIP, port: 0 }, persistent: 60 });
    expect(failure('-A -t 198.18.0.100:0 -s rr').message).toBe('Zero port specified for non-persistent service');
    expect(failure('-a -t 198.18.0.100:80 -r 198.18.0.11 -p 60').message).toBe("Illegal 'persistent' option with the 'add-server' command");
  });

  it('-x / -y on -a and -e; illegal elsewhere', () => {
    expect(cmd('-a -t 198.18.0.100:80 -r 198.18.0.11 -x 100 -y 50')).toMatchObject({ kind: 'add-server', upperThreshold: 100, lowerThreshold: 50 });
    expect(cmd('-e -t 198.18.0.100:80 -r 198.18.0.11 -x 7')).toMatchObject({ kind: 'edit-server', upperThreshold: 7 });
    expect(cmd('-a -t 198.18.0.100:80 -r 198.18.0.11')).not.toHaveProperty('upperThreshold');
    expect(failure('-a -t 198.18.0.100:80 -r 198.18.0.11 -x -1').message).toBe('illegal u_threshold specified');
    expect(failure('-a -t 198.18.0.100:80 -r 198.18.0.11 -y many').message).toBe('illegal l_threshold specified');
    expect(failure('-A -t 198.18.0.100:80 -x 5').message).toBe("Illegal 'u-threshold' option with the 'add-service' command");
  });

  it('--set tcp tcpfin udp, and -L --timeout', () => {
    expect(cmd('--set 900 120 300')).toEqual({ kind: 'set', tcp: 900, tcpfin: 120, udp: 300 });
    expect(cmd('--set 5 0 0')).toEqual({ kind: 'set', tcp: 5, tcpfin: 0, udp: 0 });
    expect(failure('--set 1 2').message).toBe('--set option requires 3 timeout values');
    expect(failure('--set 1 2 x').message).toBe("invalid timeout value `x' specified");
    expect(failure('--set 1 2 3 -n').message).toBe("Illegal 'numeric' option with the 'set' command");
    expect(cmd('-L --timeout')).toMatchObject({ kind: 'list', timeout: true });
  });

  it('-c, --timeout and a service exclude one another in -L, in ipvsadm\'s words', () => {
    expect(cmd('-Lnc')).toMatchObject({ kind: 'list', connections: true, numeric: true });
    expect(failure('-Lnc -t 198.18.0.100:80').message).toBe("The option 'service-address' conflicts with the 'connection' option in the 'list' command");
    expect(failure('-L --timeout -t 198.18.0.100:80').message).toBe("The option 'timeout' conflicts with the 'service-address' option in the 'list' command");
    expect(failure('-L -c --timeout').message).toBe("The option 'timeout' conflicts with the 'connection' option in the 'list' command");
    expect(cmd('-Ln --thresholds')).toMatchObject({ thresholds: true });
    expect(cmd('-Ln --persistent-conn')).toMatchObject({ persistentConn: true });
    expect(failure('-A -t 198.18.0.100:80 -c').message).toBe("Illegal 'connection' option with the 'add-service' command");
  });

  it('-t ADDR/LEN:PORT names a prefix service (an xdpvs extension)', () => {
    expect(cmd('-A -t 198.18.8.0/24:80 -s dh')).toMatchObject({ service: { address: '198.18.8.0/24', family: 'inet', port: 80 } });
    expect(cmd(['-A', '-t', '[fd00:8::/64]:80', '-s', 'lblc'])).toMatchObject({ service: { address: 'fd00:8::/64', family: 'inet6' } });
    expect(failure('-A -t 198.18.8.0/33:80').message).toBe('illegal virtual server address[:port] specified');
  });
});

describe('listing text', () => {
  it('-Lnc: ipvsadm\'s header and columns; a template shows client port 0, state NONE', () => {
    const text = formatConnections([
      { protocol: 'tcp', state: 'ESTABLISHED', expires: 899, template: false, service: SVC, client: { address: '198.18.0.10', port: 40001 }, virtual: { address: '198.18.0.100', port: 80 }, destination: { address: '198.18.0.11', port: 80 } },
      { protocol: 'tcp', state: 'NONE', expires: 10800, template: true, service: SVC, client: { address: '198.18.0.0', port: 0 }, virtual: { address: '198.18.0.100', port: 80 }, destination: { address: '198.18.0.11', port: 80 } },
      { protocol: 'udp', state: 'UDP', expires: 5, template: false, service: 'udp:[fd00::100]:53', client: { address: 'fd00::10', port: 5353 }, virtual: { address: 'fd00::100', port: 53 }, destination: { address: 'fd00::11', port: 53 } },
    ]);
    expect(text).toBe(
      'IPVS connection entries\n' +
        'pro expire state       source             virtual            destination\n' +
        'TCP 180:00 NONE        198.18.0.0:0       198.18.0.100:80    198.18.0.11:80\n' +
        'TCP 14:59  ESTABLISHED 198.18.0.10:40001  198.18.0.100:80    198.18.0.11:80\n' +
        'UDP 00:05  UDP         [fd00::10]:5353    [fd00::100]:53     [fd00::11]:53\n',
    );
    expect(expireText(61)).toBe('01:01');
    expect(formatTimeouts({ tcp: 900, tcpfin: 120, udp: 300 })).toBe('Timeout (tcp tcpfin udp): 900 120 300\n');
  });

  it('-Ln: " persistent N", " mask M" unless the whole address; thresholds and PersistConn columns', async () => {
    const d = fakeDirector({ neighbours: NEIGH });
    await d.balancer.addService({ protocol: 'tcp', address: '198.18.0.100', port: 80, scheduler: 'wlc', persistent: 60, netmask: '255.255.255.0' });
    await d.balancer.addService({ protocol: 'tcp', address: '198.18.0.100', port: 81, scheduler: 'sh', flags: ['sh-fallback', 'sh-port'], persistent: 300 });
    await d.balancer.addServer(SVC, { address: '198.18.0.11', weight: 3, upperThreshold: 100, lowerThreshold: 50 });
    const [web, other] = d.balancer.listServices();
    expect(formatServiceEntry(web)).toBe('TCP  198.18.0.100:80 wlc persistent 60 mask 255.255.255.0\n  -> 198.18.0.11:80               Route   3      0          0         \n');
    expect(formatServiceEntry(other).split('\n')[0]).toBe('TCP  198.18.0.100:81 sh (sh-fallback,sh-port) persistent 300');
    expect(formatList(8, [web], { thresholds: true })).toBe(
      'IP Virtual Server version 1.2.1 (size=8)\n' +
        'Prot LocalAddress:Port            Uthreshold Lthreshold ActiveConn InActConn \n' +
        '  -> RemoteAddress:Port\n' +
        'TCP  198.18.0.100:80 wlc persistent 60 mask 255.255.255.0\n' +
        '  -> 198.18.0.11:80               100        50         0          0         \n',
    );
    expect(formatList(8, [web], { persistentConn: true }).split('\n').slice(1, 5)).toEqual([
      'Prot LocalAddress:Port            Weight    PersistConn ActiveConn InActConn ',
      '  -> RemoteAddress:Port',
      'TCP  198.18.0.100:80 wlc persistent 60 mask 255.255.255.0',
      '  -> 198.18.0.11:80               3         0           0          0         ',
    ]);
  });

  it('a prefix service lists as ADDR/LEN:PORT', async () => {
    const d = fakeDirector({ neighbours: NEIGH });
    await d.balancer.addService({ protocol: 'tcp', address: '198.18.8.0/24', port: 80, scheduler: 'dh' });
    expect(formatServiceEntry(d.balancer.listServices()[0])).toBe('TCP  198.18.8.0/24:80 dh\n');
  });
});

describe('vip, netmask', () => {
  it('parses prefixes and refuses host bits', () => {
    expect(parseVip('198.18.8.0/24')).toMatchObject({ text: '198.18.8.0/24', prefixLen: 24, family: 'inet' });
    expect(parseVip('198.18.8.1/32')).toMatchObject({ text: '198.18.8.1', prefixLen: 32 });
    expect(() => parseVip('198.18.8.1/24')).toThrow(/host bits/);
    expect(parseVipEndpoint('[fd00:8::/64]:0')).toMatchObject({ port: 0, address: { text: 'fd00:8::/64' } });
    expect(parseNetmask('255.255.0.0', 'inet')).toBe(16);
    expect(parseNetmask(64, 'inet6')).toBe(64);
    expect(parseNetmask(undefined, 'inet6')).toBe(128);
    expect(() => parseNetmask('255.255.0.0', 'inet6')).toThrow(/prefix length/);
  });
});

describe('the balancer writes what the data plane schedulers read', () => {
  async function setup() {
    const d = fakeDirector({ neighbours: NEIGH });
    const sm = new SchedMaps(d.backend);
    return { d, sm };
  }

  it('dest_sched: effective weight, thresholds, available; -d clears available; a new epoch when -e raises the upper', async () => {
    const { d, sm } = await setup();
    await d.balancer.addService({ protocol: 'tcp', address: '198.18.0.100', port: 80, scheduler: 'wlc' });
    const rs = await d.balancer.addServer(SVC, { address: '198.18.0.11', weight: 3, upperThreshold: 10, lowerThreshold: 4 });
    const id = d.maps.services.keys().length >= 0 ? destIdOf(d, '198.18.0.11') : -1;
    expect(sm.getDestSched(id)).toMatchObject({ weight: 3, u_threshold: 10, l_threshold: 4, epoch: 1, flags: DS_F_AVAILABLE });
    expect(rs).toMatchObject({ upperThreshold: 10, lowerThreshold: 4 });
    const record = d.maps.getService(d.maps.serviceKeys()[0])!;
    expect(record.flags & SVC_F_THRESHOLDS).toBe(SVC_F_THRESHOLDS);
    await d.balancer.editServer(SVC, '198.18.0.11:80', { upperThreshold: 8 });
    expect(sm.getDestSched(id).epoch).toBe(1); // lower: IPVS keeps the flag
    await d.balancer.editServer(SVC, '198.18.0.11:80', { upperThreshold: 20 });
    expect(sm.getDestSched(id)).toMatchObject({ u_threshold: 20, epoch: 2 });
    await d.balancer.editServer(SVC, '198.18.0.11:80', { weight: 0 });
    expect(sm.getDestSched(id)).toMatchObject({ weight: 0, flags: DS_F_AVAILABLE });
    await d.balancer.deleteServer(SVC, '198.18.0.11:80');
    expect(sm.getDestSched(id).flags).toBe(0);
  });

  it('service flags and svc_persist; -E without persistence clears it and flushes templates', async () => {
    const { d, sm } = await setup();
    await d.balancer.addService({ protocol: 'tcp', address: '198.18.0.100', port: 80, scheduler: 'mh', flags: ['mh-port', 'mh-fallback'], persistent: 30, netmask: 24 });
    const rec = () => d.maps.getService(d.maps.serviceKeys()[0])!;
    expect(rec().flags).toBe(SVC_F_HASH_PORT | SVC_F_FALLBACK | SVC_F_PERSIST);
    const p = sm.getSvcPersist(rec().id);
    expect(p.timeout).toBe(30);
    expect([...p.mask.subarray(0, 4)]).toEqual([255, 255, 255, 0]);
    sm.putPersist({ addr: Buffer.alloc(16), svc_id: rec().id, family: 2 }, { dest_id: 1, dest_gen: 1, expires_ns: 1e18 });
    await d.call('PATCH', svcPath(SVC), { scheduler: 'mh', flags: [], persistent: 0 });
    expect(rec().flags).toBe(0);
    expect(sm.getSvcPersist(rec().id).timeout).toBe(0);
    expect(sm.persistEntries()).toHaveLength(0);
    const view = (await d.call('GET', svcPath(SVC))).body;
    expect(view).not.toHaveProperty('persistent');
  });

  it('a port-0 service needs persistence; a prefix service lives in svc_prefix and svc_wild counts them', async () => {
    const { d, sm } = await setup();
    expect((await d.call('POST', '/v1/services', { protocol: 'tcp', address: '198.18.0.100', port: 0, scheduler: 'rr' })).status).toBe(400);
    expect((await d.call('POST', '/v1/services', { protocol: 'tcp', address: '198.18.0.100', port: 0, scheduler: 'rr', persistent: 60 })).status).toBe(201);
    expect((await d.call('POST', `${svcPath('tcp:198.18.0.100:0')}/servers`, { address: '198.18.0.11', port: 0 })).status).toBe(201);
    expect((await d.call('PATCH', svcPath('tcp:198.18.0.100:0'), { persistent: 0 })).status).toBe(400);
    const r = await d.call('POST', '/v1/services', { protocol: 'tcp', address: '198.18.8.0/24', port: 80, scheduler: 'lblc' });
    expect([r.status, r.body.id, r.body.address]).toEqual([201, 'tcp:198.18.8.0/24:80', '198.18.8.0/24']);
    expect(sm.prefixServiceKeys()).toEqual([expect.objectContaining({ prefixlen: 56, port: 80, family: 2, proto: 6 })]);
    expect(sm.getWild()).toEqual({ port0: 1, prefixes: 1 });
    expect((await d.call('POST', '/v1/services', { protocol: 'tcp', address: '198.18.8.1/24', port: 80 })).status).toBe(400);
    expect((await d.call('DELETE', svcPath('tcp:198.18.8.0/24:80'))).status).toBe(204);
    expect(sm.prefixServiceKeys()).toEqual([]);
    expect(sm.getWild()).toEqual({ port0: 1, prefixes: 0 });
  });

  it('--set and --timeout through the API; 0 keeps a value', async () => {
    const { d } = await setup();
    expect((await d.call('GET', '/v1/timeouts')).body).toEqual({ tcp: 900, tcpfin: 120, udp: 300 });
    expect((await d.call('PUT', '/v1/timeouts', { tcp: 5, tcpfin: 0, udp: 7 })).body).toEqual({ tcp: 5, tcpfin: 120, udp: 7 });
    expect(d.maps.getConfig()).toMatchObject({ tcp_timeout: 5, udp_timeout: 7 });
    expect((await d.call('PUT', '/v1/timeouts', { tcp: -1 })).status).toBe(400);
  });
});

describe('connection counts and the per-second upkeep', () => {
  const NOW = 1_000_000e9;

  async function withConns() {
    const d = fakeDirector({ neighbours: NEIGH, balancer: { nowNs: () => NOW } });
    await d.balancer.addService({ protocol: 'tcp', address: '198.18.0.100', port: 80, scheduler: 'wlc', persistent: 100 });
    await d.balancer.addServer(SVC, { address: '198.18.0.11' });
    await d.balancer.addServer(SVC, { address: '198.18.0.12' });
    const a = destIdOf(d, '198.18.0.11');
    const b = destIdOf(d, '198.18.0.12');
    const gen = (id: number) => d.maps.getDest(id).gen;
    const svcId = d.maps.getService(d.maps.serviceKeys()[0])!.id;
    let port = 40000;
    const conn = (dest: number, state: number, expires: number, destGen = gen(dest), src = '198.18.0.10') =>
      d.maps.conns.update(
        FlowKey.encode({ ...FlowKey.zero(), src: ip16(src), dst: ip16('198.18.0.100'), sport: port++, dport: 80, proto: 6, family: 2 }),
        Conn.encode({ ...Conn.zero(), dest_id: dest, dest_gen: destGen, svc_id: svcId, state, last_ns: NOW - 1e9, expires_ns: expires }),
      );
    return { d, a, b, gen, svcId, conn, sm: new SchedMaps(d.backend) };
  }

  it('-Ln counts live entries of the destination\'s own generation only', async () => {
    const { d, a, b, conn, gen } = await withConns();
    conn(a, ConnState.Established, NOW + 5e9);
    conn(a, ConnState.FinWait, NOW + 5e9);
    conn(a, ConnState.Established, NOW - 1); // expired
    conn(b, ConnState.Established, NOW + 5e9, gen(b) + 7); // the slot's previous owner
    conn(b, ConnState.Udp, NOW + 5e9);
    // Views read the data plane's counters as the per-second upkeep corrected them (no walk per request).
    d.balancer.maintainConnections();
    const [svc] = d.balancer.listServices();
    expect(svc.servers.map((s) => [s.address, s.activeConns, s.inactiveConns])).toEqual([
      ['198.18.0.11', 1, 1],
      ['198.18.0.12', 0, 1],
    ]);
  });

  it('the upkeep corrects the data plane\'s counters by what left silently', async () => {
    const { d, a, b, conn, sm } = await withConns();
    conn(a, ConnState.Established, NOW + 5e9);
    conn(a, ConnState.SynRecv, NOW + 5e9);
    // The data plane counted 4 established and 3 inactive for a (two expired, the LRU evicted others), 0 for b.
    sm.putDestConns(a, { active: 4, inactive: 3, overload: 0 });
    d.balancer.maintainConnections();
    expect(sm.getDestSched(a)).toMatchObject({ active_adj: -3, inactive_adj: -2 });
    expect(sm.getDestSched(b)).toMatchObject({ active_adj: 0, inactive_adj: 0 });
    // Counters wrap as u32 in the data plane: a decrement below zero reads 2^32 - 1.
    sm.putDestConns(b, { active: 0xffffffff, inactive: 0, overload: 0 });
    d.balancer.maintainConnections();
    expect(sm.getDestSched(b).active_adj).toBe(1);
  });

  it('the upkeep keeps the template of a client with a live connection at the full timeout, and no other', async () => {
    const { d, a, b, conn, gen, svcId, sm } = await withConns();
    conn(a, ConnState.Established, NOW + 5e9, gen(a), '198.18.0.10');
    const key = (ip: string) => ({ addr: ip16(ip), svc_id: svcId, family: 2 });
    sm.putPersist(key('198.18.0.10'), { dest_id: a, dest_gen: gen(a), expires_ns: NOW + 10e9 });
    sm.putPersist(key('198.18.0.20'), { dest_id: b, dest_gen: gen(b), expires_ns: NOW + 10e9 });
    d.balancer.maintainConnections();
    expect(sm.getPersist(key('198.18.0.10'))!.expires_ns).toBe(NOW + 100e9);
    expect(sm.getPersist(key('198.18.0.20'))!.expires_ns).toBe(NOW + 10e9);
    // -Lnc shows both templates and the connection.
    const list = d.balancer.listConnections();
    expect(list.filter((c) => c.template).map((c) => [c.client, c.destination, c.state, c.expires])).toEqual([
      [{ address: '198.18.0.10', port: 0 }, { address: '198.18.0.11', port: 80 }, 'NONE', 100],
      [{ address: '198.18.0.20', port: 0 }, { address: '198.18.0.12', port: 80 }, 'NONE', 10],
    ]);
    expect(list.filter((c) => !c.template)).toEqual([
      expect.objectContaining({ protocol: 'tcp', state: 'ESTABLISHED', expires: 5, service: SVC, destination: { address: '198.18.0.11', port: 80 } }),
    ]);
    expect(d.balancer.getService(SVC).servers.map((s) => s.persistConns)).toEqual([1, 1]);
  });

  it('SchedState.count ignores templates and entries of other generations', () => {
    const recs: ConnRecord[] = [
      { key: FlowKey.zero(), value: { ...Conn.zero(), dest_id: 3, dest_gen: 2, state: ConnState.Established, expires_ns: 10 } },
      { key: FlowKey.zero(), value: { ...Conn.zero(), dest_id: 3, dest_gen: 1, state: ConnState.Established, expires_ns: 10 } },
    ];
    expect(SchedState.count(recs, [], new Map([[3, { gen: 2, svcId: 0 }]]), 5).get(3)).toEqual({ active: 1, inactive: 0, persist: 0 });
  });
});

function ip16(ip: string): Buffer {
  const b = Buffer.alloc(16);
  Buffer.from(ip.split('.').map(Number)).copy(b);
  return b;
}

function destIdOf(d: ReturnType<typeof fakeDirector>, ip: string): number {
  const want = Buffer.from(ip.split('.').map(Number));
  for (let i = 0; i < d.maps.maxDests; i++) {
    const dest = d.maps.getDest(i);
    if (dest.family && Buffer.from(dest.addr).subarray(0, 4).equals(want)) return i;
  }
  throw new Error(`no dest for ${ip}`);
}
