// xdpvsadm -S, -R and -Z in-process against the real balancer and API over in-memory maps: ipvsadm-save's exact
// text, real ipvsadm-save -n samples restored, and a restore that fails changing nothing.

import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ErrorCode, type XdpvsError } from '../../src/errors.js';
import { run } from '../../src/cli/main.js';
import { parseRules, playRules, splitRules } from '../../src/cli/restore.js';
import { formatSave, formatServiceRules } from '../../src/cli/save.js';
import { Stats } from '../../src/maps/structs.js';
import { TOKEN, fakeDirector, svcPath } from '../helpers/fake-director.js';

const FIXTURES = join(import.meta.dirname, '../fixtures/ipvsadm-save');
const fixture = (name: string) => readFileSync(join(FIXTURES, name), 'utf8');

const NEIGH = {
  '198.18.0.11': '02:00:00:00:00:11',
  '198.18.0.12': '02:00:00:00:00:12',
  '198.18.0.13': '02:00:00:00:00:13',
  'fd00::11': '02:00:00:00:00:21',
  'fd00::12': '02:00:00:00:00:22',
};

const dir = mkdtempSync(join(tmpdir(), 'xdpvsadm-save-'));
const tokenFile = join(dir, 'api-token');
writeFileSync(tokenFile, `${TOKEN}\n`);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

type Director = ReturnType<typeof fakeDirector>;

/** xdpvsadm with its API calls answered in-process by the director's app. */
async function adm(d: Director, args: string, stdin = '') {
  let stdout = '';
  let stderr = '';
  const status = await run(args.split(/\s+/).filter(Boolean), {
    stdout: (t) => void (stdout += t),
    stderr: (t) => void (stderr += t),
    env: { XDPVS_SERVER: 'http://xdpvsd.test', XDPVS_TOKEN_FILE: tokenFile },
    runtimeFile: join(dir, 'no-runtime-file.json'),
    fetch: ((input: string, init?: RequestInit) => d.app.request(input, init)) as unknown as typeof fetch,
    readStdin: async () => stdin,
  });
  return { status, stdout, stderr };
}

async function ok(d: Director, args: string, stdin = ''): Promise<string> {
  const r = await adm(d, args, stdin);
  expect(r, args).toMatchObject({ status: 0, stderr: '' });
  return r.stdout;
}

/** Per-CPU counters written straight into the stats maps, as traffic would. */
function setStats(d: Director, map: 'svc_stats' | 'dest_stats', id: number, perCpu: Partial<Record<keyof typeof zero, number>>[]) {
  const stride = Math.ceil(Stats.size / 8) * 8;
  const buf = Buffer.alloc(stride * d.backend.possibleCpus);
  perCpu.forEach((c, cpu) => Stats.encode({ ...zero, ...c }).copy(buf, cpu * stride));
  const key = Buffer.alloc(4);
  key.writeUInt32LE(id);
  d.backend.map(map).update(key, buf);
}
const zero = { conns: 0, inpkts: 0, outpkts: 0, inbytes: 0, outbytes: 0 };

describe('xdpvsadm -S: ipvsadm-save -n, byte for byte', () => {
  it('prints -A and -a lines in ipvsadm\'s order (family, protocol, address, port), with -b flags', async () => {
    const d = fakeDirector({ neighbours: NEIGH });
    // Added out of order: -S sorts as ipvsadm does.
    await ok(d, '-A -u [fd00::100]:53 -s wrr');
    await ok(d, '-a -u [fd00::100]:53 -r [fd00::11]:53 -w 2');
    await ok(d, '-A -t 198.18.0.101:8080 -s mh -b mh-port');
    await ok(d, '-a -t 198.18.0.101:8080 -r 198.18.0.12:8080 -w 50');
    await ok(d, '-a -t 198.18.0.101:8080 -r 198.18.0.11:8080 -w 100');
    await ok(d, '-A -t 198.18.0.100:443 -s wrr');
    await ok(d, '-A -t 198.18.0.100:80 -s rr');
    await ok(d, '-a -t 198.18.0.100:80 -r 198.18.0.12 -g');
    await ok(d, '-a -t 198.18.0.100:80 -r 198.18.0.11 -g -w 0');
    const expected = [
      '-A -t 198.18.0.100:80 -s rr',
      '-a -t 198.18.0.100:80 -r 198.18.0.11:80 -g -w 0',
      '-a -t 198.18.0.100:80 -r 198.18.0.12:80 -g -w 1',
      '-A -t 198.18.0.100:443 -s wrr',
      '-A -t 198.18.0.101:8080 -s mh -b mh-port',
      '-a -t 198.18.0.101:8080 -r 198.18.0.11:8080 -g -w 100',
      '-a -t 198.18.0.101:8080 -r 198.18.0.12:8080 -g -w 50',
      '-A -u [fd00::100]:53 -s wrr',
      '-a -u [fd00::100]:53 -r [fd00::11]:53 -g -w 2',
      '',
    ].join('\n');
    expect(await ok(d, '-S -n')).toBe(expected);
    // Without -n the same: xdpvsadm never resolves names. Long option, and no token needed to read.
    expect(await ok(d, '--save')).toBe(expected);
  });

  it('prints nothing for an empty table', async () => {
    expect(await ok(fakeDirector(), '-Sn')).toBe('');
  });

  it('-i real servers carry "--tun-type ipip" and -m ones their own port, as ipvsadm 1.31 prints them', () => {
    const text = formatServiceRules({
      protocol: 'tcp',
      address: '198.18.0.100',
      port: 80,
      scheduler: 'sh',
      flags: ['sh-port'],
      servers: [
        { address: '198.18.0.13', port: 8080, method: 'nat', weight: 3 },
        { address: '198.18.0.12', port: 80, method: 'tunnel', weight: 2 },
        { address: '198.18.0.11', port: 80, method: 'dr', weight: 1 },
      ],
    });
    expect(text).toBe(
      '-A -t 198.18.0.100:80 -s sh -b sh-port\n' +
        '-a -t 198.18.0.100:80 -r 198.18.0.11:80 -g -w 1\n' +
        '-a -t 198.18.0.100:80 -r 198.18.0.12:80 -i -w 2 --tun-type ipip\n' +
        '-a -t 198.18.0.100:80 -r 198.18.0.13:8080 -m -w 3\n',
    );
    // Generic flag names for a scheduler without flags of its own, in bit order.
    expect(formatSave([{ protocol: 'udp', address: 'fd00::100', port: 53, scheduler: 'rr', flags: ['flag-3', 'flag-1'], servers: [] }])).toBe(
      '-A -u [fd00::100]:53 -s rr -b flag-1,flag-3\n',
    );
  });

  it('refuses options ipvsadm refuses with -S', async () => {
    const r = await adm(fakeDirector(), '-S --stats');
    expect(r).toMatchObject({ status: 2, stderr: "Illegal 'stats' option with the 'save' command\n" });
  });
});

describe('xdpvsadm -R: ipvsadm-save -n output restores unchanged', () => {
  it('restores a real ipvsadm-save -n sample, and -S prints it back byte for byte', async () => {
    const d = fakeDirector({ neighbours: NEIGH });
    const rules = fixture('dr.rules');
    expect(await ok(d, '-R', rules)).toBe('');
    expect(await ok(d, '-S -n')).toBe(rules);
    // The data plane got it: one service record per -A line, the schedule tables of rr as the file orders them.
    expect(d.maps.serviceKeys()).toHaveLength(6);
    const ln = await ok(d, '-Ln');
    expect(ln).toContain('TCP  198.18.0.101:8080 mh (mh-port)\n');
    expect(ln).toContain('  -> 198.18.0.13:443              Route   0      0          0         \n');
  });

  it('takes --restore, comments, blank lines, the word "ipvsadm" and CRLF line ends', async () => {
    const d = fakeDirector({ neighbours: NEIGH });
    const input = '# saved by ipvsadm-save\r\n\r\nipvsadm -A -t 198.18.0.100:80 -s rr   # web\r\n\t-a -t 198.18.0.100:80 -r 198.18.0.11:80 -g -w 1\r\n';
    await ok(d, '--restore', input);
    expect(await ok(d, '-Sn')).toBe('-A -t 198.18.0.100:80 -s rr\n-a -t 198.18.0.100:80 -r 198.18.0.11:80 -g -w 1\n');
  });

  it('plays the rules on the current table as IPVS would: restoring twice says "Service already exists" (line 1)', async () => {
    const d = fakeDirector({ neighbours: NEIGH });
    const rules = fixture('dr.rules');
    await ok(d, '-R', rules);
    const r = await adm(d, '-R', rules);
    expect(r.status).toBe(255);
    expect(r.stderr).toBe(
      'xdpvsadm: line 1 "-A -t 198.18.0.100:80 -s rr": Service already exists\n' +
        'xdpvsadm: nothing was restored; the configuration is as it was\n',
    );
    expect(await ok(d, '-Sn')).toBe(rules);
  });

  it('-C in the rules empties the table first; what comes back unchanged keeps its counters and schedule', async () => {
    const d = fakeDirector({ neighbours: NEIGH });
    await ok(d, '-R', fixture('dr.rules'));
    await ok(d, '-A -t 198.18.0.102:25 -s rr'); // not in the rules: -C removes it
    const web = d.balancer.getService('tcp:198.18.0.100:80');
    const before = d.maps.getService({ addr: Buffer.from([198, 18, 0, 100, ...Array(12).fill(0)]), port: 80, proto: 6, family: 2 })!;
    setStats(d, 'svc_stats', before.id, [{ conns: 5, inpkts: 40, inbytes: 4000 }, { conns: 2 }]);
    expect(web.servers.map((s) => s.id)).toEqual(['198.18.0.11:80', '198.18.0.12:80']);

    await ok(d, '-R', `-C\n${fixture('dr.rules')}`);
    expect(await ok(d, '-Sn')).toBe(fixture('dr.rules'));
    const after = d.maps.getService({ addr: Buffer.from([198, 18, 0, 100, ...Array(12).fill(0)]), port: 80, proto: 6, family: 2 })!;
    expect(after).toEqual(before); // same record: same id, same schedule table slot
    expect(d.balancer.getService('tcp:198.18.0.100:80').stats).toMatchObject({ conns: 7, inpkts: 40, inbytes: 4000 });
  });

  it('ipvsadm\'s default scheduler (wlc) and persistence (-p, -M, a port-0 service) restore, and -S prints them back', async () => {
    for (const name of ['wlc.rules', 'persistent.rules']) {
      const d = fakeDirector({ neighbours: NEIGH });
      expect(await ok(d, '-R', fixture(name)), name).toBe('');
      expect(await ok(d, '-S -n'), name).toBe(fixture(name));
    }
  });

  it('-S prints -p and -M as ipvsadm does: -M only for a netmask narrower than the address', () => {
    const base = { protocol: 'tcp' as const, address: '198.18.0.100', port: 80, scheduler: 'rr', flags: [], servers: [] };
    expect(formatServiceRules({ ...base, persistent: 300, netmask: '255.255.255.255' })).toBe('-A -t 198.18.0.100:80 -s rr -p 300\n');
    expect(formatServiceRules({ ...base, persistent: 300, netmask: '255.255.0.0' })).toBe('-A -t 198.18.0.100:80 -s rr -p 300 -M 255.255.0.0\n');
    expect(formatServiceRules({ ...base, address: 'fd00::100', persistent: 60, netmask: '128' })).toBe('-A -t [fd00::100]:80 -s rr -p 60\n');
    expect(formatServiceRules({ ...base, address: 'fd00::100', scheduler: 'mh', flags: ['mh-port'], persistent: 60, netmask: '48' })).toBe(
      '-A -t [fd00::100]:80 -s mh -b mh-port -p 60 -M 48\n',
    );
  });

  it('what the daemon refuses fails naming the line, and nothing is applied', async () => {
    const d = fakeDirector({ neighbours: NEIGH });
    await ok(d, '-A -t 198.18.0.102:25 -s rr');
    const before = await ok(d, '-Sn');
    const rules = `${fixture('wlc.rules')}-A -t 198.18.0.100:8080 -s wlc -p 99999999\n`;
    const r = await adm(d, '-R', rules);
    expect(r.status).toBe(2);
    expect(r.stderr.split('\n')[0]).toBe(`xdpvsadm: line 7 "-A -t 198.18.0.100:8080 -s wlc -p 99999999": invalid timeout value \`99999999' specified`);
    const r2 = await adm(d, '-R', `${fixture('wlc.rules')}-A -t 198.18.0.100:8080 -s rr -b flag-2\n`);
    expect(r2.status).toBe(255);
    expect(r2.stderr).toBe(
      'xdpvsadm: line 7 "-A -t 198.18.0.100:8080 -s rr -b flag-2": xdpvsd: service tcp:198.18.0.100:8080: ' +
        'scheduler rr does not take flag "flag-2"\n' +
        'xdpvsadm: nothing was restored; the configuration is as it was\n',
    );
    expect(await ok(d, '-Sn')).toBe(before); // the services of lines 1-6 did not come either
    expect(d.maps.serviceKeys()).toHaveLength(1);
  });

  it('options xdpvs does not do yet (-o, -f) fail naming the line before anything is sent', async () => {
    const d = fakeDirector({ neighbours: NEIGH });
    let r = await adm(d, '-R', fixture('ops.rules'));
    expect(r).toEqual({
      status: 1,
      stdout: '',
      stderr:
        'xdpvsadm: line 3 "-A -u 198.18.0.100:5060 -s rr -o": -o is not supported yet\n' +
        'xdpvsadm: nothing was restored; the configuration is as it was\n',
    });
    r = await adm(d, '-R', fixture('fwmark.rules'));
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('xdpvsadm: line 1 "-A -f 1 -s rr": -f is not supported yet\n');
    expect(d.maps.serviceKeys()).toHaveLength(0);
  });

  it('bad lines fail with ipvsadm\'s message and exit status, naming the line', async () => {
    const d = fakeDirector({ neighbours: NEIGH });
    const cases: [string, number, string][] = [
      ['-A -t 198.18.0.100:80 -s rr\n-A -t 198.18.0.300:80 -s rr\n', 2, 'line 2 "-A -t 198.18.0.300:80 -s rr": illegal virtual server address[:port] specified'],
      ['-A -t 198.18.0.100:80 -s rr\n-a -t 198.18.0.100:80 -r 198.18.0.11:80 -w 70000\n', 2, 'line 2 "-a -t 198.18.0.100:80 -r 198.18.0.11:80 -w 70000": illegal weight specified'],
      ['-a -t 198.18.0.100:80 -r 198.18.0.11:80 -g -w 1\n', 255, 'line 1 "-a -t 198.18.0.100:80 -r 198.18.0.11:80 -g -w 1": Service not defined'],
      ['-A -t 198.18.0.100:80 -s rr\n-e -t 198.18.0.100:80 -r 198.18.0.11:80 -w 2\n', 255, 'line 2 "-e -t 198.18.0.100:80 -r 198.18.0.11:80 -w 2": No such destination'],
      ['-D -t 198.18.0.100:80\n', 255, 'line 1 "-D -t 198.18.0.100:80": No such service'],
      ['-A -t 198.18.0.100:80 -s rr\n-Ln\n', 2, 'line 2 "-Ln": a restore holds only -A, -E, -D, -C, -a, -e and -d rules'],
      ['-R\n', 2, 'line 1 "-R": a restore holds only -A, -E, -D, -C, -a, -e and -d rules'],
      ['-A -t 198.18.0.100:80 -s rr --server http://elsewhere\n', 2, 'line 1 "-A -t 198.18.0.100:80 -s rr --server http://elsewhere": --server and --token-file belong on the command line, not in the rules'],
      ['-a -t 198.18.0.100:80 -r 198.18.0.11:80 -g --tun-type ipip\n', 2, 'line 1 "-a -t 198.18.0.100:80 -r 198.18.0.11:80 -g --tun-type ipip": Tunnel options conflict with forward method'],
    ];
    for (const [input, status, message] of cases) {
      const r = await adm(d, '-R', input);
      expect([r.status, r.stderr.split('\n')[0]], input).toEqual([status, `xdpvsadm: ${message}`]);
    }
    expect(d.maps.serviceKeys()).toHaveLength(0);
  });

  it('a real server the daemon cannot reach is refused naming its -a line; neighbours it resolved meanwhile are released', async () => {
    const d = fakeDirector({ neighbours: NEIGH });
    const r = await adm(
      d,
      '-R',
      '-A -t 198.18.0.100:80 -s rr\n-a -t 198.18.0.100:80 -r 198.18.0.11:80 -g\n-a -t 198.18.0.100:80 -r 198.18.0.99:80 -g\n',
    );
    expect(r.status).toBe(255);
    expect(r.stderr.split('\n')[0]).toMatch(/^xdpvsadm: line 3 "-a -t 198.18.0.100:80 -r 198.18.0.99:80 -g": xdpvsd: real server 198.18.0.99 of service tcp:198.18.0.100:80: real server 198.18.0.99 is reached through gateway/);
    expect(d.resolver.released).toEqual(['198.18.0.11']);
    expect(d.maps.serviceKeys()).toHaveLength(0);
  });

  it('-i real servers (--tun-type ipip) and -m ones with their own port restore, and -S prints them back', async () => {
    const d = fakeDirector({ neighbours: NEIGH, balancer: { tunnelSources: { inet: '198.18.0.2', inet6: 'fd00::2' } } });
    expect(await ok(d, '-R', fixture('methods.rules'))).toBe('');
    expect(await ok(d, '-S -n')).toBe(fixture('methods.rules'));
    expect(await ok(d, '-Ln')).toContain('  -> 198.18.0.13:8080             Masq    3      0          0         \n');
  });

  it('-i with --tun-type ipip and -m parse into the methods and ports ipvsadm-save wrote', () => {
    const rules = parseRules(fixture('methods.rules'));
    expect(rules.map((r) => [r.line, r.command.kind, 'method' in r.command ? r.command.method : undefined])).toEqual([
      [1, 'add-service', undefined],
      [2, 'add-server', 'dr'],
      [3, 'add-server', 'tunnel'],
      [4, 'add-server', 'nat'],
      [5, 'add-service', undefined],
      [6, 'add-server', 'tunnel'],
    ]);
    const plan = playRules([], rules);
    expect(plan.services[0].servers).toEqual([
      { address: '198.18.0.11', port: 80, method: 'dr', weight: 1 },
      { address: '198.18.0.12', port: 80, method: 'tunnel', weight: 2 },
      { address: '198.18.0.13', port: 8080, method: 'nat', weight: 3 },
    ]);
    expect(formatSave(plan.services.map((s) => ({ ...s, scheduler: s.scheduler!, flags: s.flags!, servers: s.servers!.map((x) => ({ ...x, port: x.port!, method: x.method!, weight: x.weight! })) })))).toBe(
      fixture('methods.rules'),
    );
  });
});

describe('restore rules, without a daemon', () => {
  it('splitRules: config_stream_read()\'s words, comments cut, blank lines and "ipvsadm" skipped', () => {
    expect(splitRules('ipvsadm -C\n\n  # all\n-A  -t\t198.18.0.100:80 -s rr # web\n')).toEqual([
      { line: 1, words: ['-C'] },
      { line: 4, words: ['-A', '-t', '198.18.0.100:80', '-s', 'rr'] },
    ]);
  });

  it('playRules: -E and -e change in place, -d and -D remove, -C empties, and each entry remembers its line', () => {
    const current = [
      { protocol: 'tcp' as const, address: '198.18.0.100', port: 80, scheduler: 'rr', flags: [], servers: [{ address: '198.18.0.11', port: 80, method: 'dr' as const, weight: 1 }] },
    ];
    const rules = parseRules(
      [
        '-E -t 198.18.0.100:80 -s wrr',
        '-e -t 198.18.0.100:80 -r 198.18.0.11 -w 5',
        '-a -t 198.18.0.100:80 -r 198.18.0.12',
        '-A -u 198.18.0.100:53 -s rr',
        '-D -u 198.18.0.100:53',
        '-d -t 198.18.0.100:80 -r 198.18.0.12',
      ].join('\n'),
    );
    const plan = playRules(current, rules);
    expect(plan.services).toEqual([
      { protocol: 'tcp', address: '198.18.0.100', port: 80, scheduler: 'wrr', flags: [], servers: [{ address: '198.18.0.11', port: 80, method: 'dr', weight: 5 }] },
    ]);
    expect(plan.serviceLines.map((r) => r?.line)).toEqual([1]);
    expect(plan.serverLines.map((l) => l.map((r) => r?.line))).toEqual([[2]]);
    expect(playRules(current, parseRules('-C')).services).toEqual([]);
  });

  it('playRules refuses what IPVS refuses, with ipvsadm\'s phrase', () => {
    const fail = (text: string): XdpvsError => {
      try {
        playRules([], parseRules(text));
      } catch (e) {
        return e as XdpvsError;
      }
      throw new Error('played');
    };
    expect(fail('-A -t 198.18.0.100:80 -s rr\n-A -t 198.18.0.100:80 -s wrr')).toMatchObject({
      code: ErrorCode.Exists,
      message: 'line 2 "-A -t 198.18.0.100:80 -s wrr": Service already exists',
      details: { line: 2, exitCode: 255 },
    });
    expect(fail('-A -t 198.18.0.100:80 -s rr\n-a -t 198.18.0.100:80 -r 198.18.0.11\n-a -t 198.18.0.100:80 -r 198.18.0.11:80').message).toBe(
      'line 3 "-a -t 198.18.0.100:80 -r 198.18.0.11:80": Destination already exists',
    );
    expect(fail('-E -t 198.18.0.100:80 -s rr').message).toBe('line 1 "-E -t 198.18.0.100:80 -s rr": No such service');
  });
});

describe('xdpvsadm -Z', () => {
  it('zeroes every counter, or one service\'s with its real servers, and leaves the configuration alone', async () => {
    const d = fakeDirector({ neighbours: NEIGH });
    await ok(d, '-R', fixture('dr.rules'));
    for (let id = 0; id < 6; id++) setStats(d, 'svc_stats', id, [{ conns: 1, inpkts: 2, inbytes: 300 }]);
    for (let id = 0; id < 12; id++) setStats(d, 'dest_stats', id, [{ conns: 1, inpkts: 2, inbytes: 300 }]);
    const web = 'tcp:198.18.0.100:80';
    const https = 'tcp:198.18.0.100:443';

    await ok(d, '-Z -t 198.18.0.100:80');
    expect(d.balancer.getService(web).stats).toEqual(zero);
    expect(d.balancer.getService(web).servers.map((s) => s.stats)).toEqual([zero, zero]);
    expect(d.balancer.getService(https).stats.conns).toBe(1);
    expect(d.balancer.getService(https).servers[0].stats.conns).toBe(1);

    await ok(d, '--zero');
    for (const s of d.balancer.listServices()) {
      expect(s.stats, s.id).toEqual(zero);
      for (const rs of s.servers) expect(rs.stats, `${s.id} ${rs.id}`).toEqual(zero);
    }
    expect(await ok(d, '-Sn')).toBe(fixture('dr.rules'));
  });

  it('-Z of a service that does not exist says "No such service"; -Z takes no other option', async () => {
    const d = fakeDirector({ neighbours: NEIGH });
    expect(await adm(d, '-Z -t 198.18.0.100:80')).toMatchObject({ status: 255, stderr: expect.stringMatching(/^No such service\n/) });
    expect(await adm(d, '-Z -n')).toMatchObject({ status: 2, stderr: "Illegal 'numeric' option with the 'zero' command\n" });
  });

  it('needs the token, like every change', async () => {
    const d = fakeDirector();
    const r = await d.call('POST', '/v1/stats/zero', undefined, null);
    expect(r.status).toBe(401);
    expect((await d.call('POST', `${svcPath('tcp:198.18.0.100:80')}/stats/zero`)).status).toBe(404);
  });
});
