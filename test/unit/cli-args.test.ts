// xdpvsadm's argument parser against ipvsadm 1.31's syntax, defaults, checks, messages and exit statuses.

import { describe, expect, it } from 'vitest';
import { ErrorCode, XdpvsError } from '../../src/errors.js';
import { parseArgs, parseHostPort, type Command } from '../../src/cli/args.js';

const cmd = (line: string, opts = {}): Command => parseArgs(split(line), opts).command;

function split(line: string): string[] {
  return line.trim() === '' ? [] : line.trim().split(/\s+/);
}

/** The XdpvsError parseArgs throws for this line. */
function fails(line: string | string[]): XdpvsError {
  try {
    parseArgs(Array.isArray(line) ? line : split(line));
  } catch (e) {
    expect(e).toBeInstanceOf(XdpvsError);
    return e as XdpvsError;
  }
  throw new Error(`parsed: ${String(line)}`);
}

const VIP = { protocol: 'tcp', address: '198.18.0.100', family: 'inet', port: 80 } as const;

describe('commands from the seed tutorials', () => {
  it('-A -t VIP:80 -s rr', () => {
    expect(cmd('-A -t 198.18.0.100:80 -s rr')).toEqual({ kind: 'add-service', service: VIP, scheduler: 'rr', flags: [] });
  });

  it('-A without -s asks for wlc, as ipvsadm', () => {
    expect(cmd('-A -t 198.18.0.100:80')).toMatchObject({ kind: 'add-service', scheduler: 'wlc' });
  });

  it('-E -t VIP:80 -s wrr', () => {
    expect(cmd('-E -t 198.18.0.100:80 -s wrr')).toEqual({ kind: 'edit-service', service: VIP, scheduler: 'wrr', flags: [] });
  });

  it('-E without -s goes back to wlc (ipvsadm fills DEF_SCHED for -E too)', () => {
    expect(cmd('-E -t 198.18.0.100:80')).toMatchObject({ kind: 'edit-service', scheduler: 'wlc', flags: [] });
  });

  it('-D -t VIP:80', () => {
    expect(cmd('-D -t 198.18.0.100:80')).toEqual({ kind: 'delete-service', service: VIP });
  });

  it('-C', () => {
    expect(cmd('-C')).toEqual({ kind: 'clear' });
    expect(cmd('--clear')).toEqual({ kind: 'clear' });
  });

  it('-a -r RIP -m: no port takes the service port, weight 1', () => {
    expect(cmd('-a -t 198.18.0.100:80 -r 198.18.0.11 -m')).toEqual({
      kind: 'add-server',
      service: VIP,
      server: { address: '198.18.0.11', family: 'inet', port: 80 },
      method: 'nat',
      weight: 1,
    });
  });

  it('-a without a method is -g (Route)', () => {
    expect(cmd('-a -t 198.18.0.100:80 -r 198.18.0.11:80')).toMatchObject({ method: 'dr', weight: 1 });
  });

  it('-a -r RIP:8080 -m keeps the real server port (NAT rewrites it)', () => {
    expect(cmd('-a -t 198.18.0.100:80 -r 198.18.0.11:8080 -m -w 2')).toMatchObject({
      server: { port: 8080 },
      method: 'nat',
      weight: 2,
    });
  });

  it('-g and -i force the real server port to the service port, as ipvsadm', () => {
    expect(cmd('-a -t 198.18.0.100:80 -r 198.18.0.11:8080 -g')).toMatchObject({ server: { port: 80 }, method: 'dr' });
    expect(cmd('-a -t 198.18.0.100:80 -r 198.18.0.11:8080 -i')).toMatchObject({ server: { port: 80 }, method: 'tunnel' });
    expect(cmd('-a -t 198.18.0.100:80 -r 198.18.0.11:8080')).toMatchObject({ server: { port: 80 }, method: 'dr' });
    expect(cmd('-e -t 198.18.0.100:80 -r 198.18.0.11:8080 -w 3')).toMatchObject({ server: { port: 80 }, weight: 3 });
  });

  it('-d keeps the given port (ipvsadm only forces it for -a and -e)', () => {
    expect(cmd('-d -t 198.18.0.100:80 -r 198.18.0.11:8080')).toEqual({
      kind: 'delete-server',
      service: VIP,
      server: { address: '198.18.0.11', family: 'inet', port: 8080 },
    });
    expect(cmd('-d -t 198.18.0.100:80 -r 198.18.0.11')).toMatchObject({ server: { port: 80 } });
  });

  it('-e -w 2 -m; -e without -w sets weight 1 and without a method sets -g (ipvsadm replaces the whole dest)', () => {
    expect(cmd('-e -t 198.18.0.100:80 -r 198.18.0.11:80 -w 2 -m')).toMatchObject({ kind: 'edit-server', weight: 2, method: 'nat' });
    expect(cmd('-e -t 198.18.0.100:80 -r 198.18.0.11:80 -m')).toMatchObject({ weight: 1, method: 'nat' });
    expect(cmd('-e -t 198.18.0.100:80 -r 198.18.0.11:80 -w 0')).toMatchObject({ weight: 0, method: 'dr' });
  });

  it('-u for UDP services', () => {
    expect(cmd('-A -u 198.18.0.100:53 -s rr')).toMatchObject({ service: { protocol: 'udp', port: 53 } });
  });
});

describe('listing', () => {
  const list = { kind: 'list', stats: false, rate: false, exact: false, json: false, numeric: false, sort: true };

  it('a bare xdpvsadm lists, as ipvsadm', () => {
    expect(cmd('')).toEqual(list);
  });

  it('-L, -l, --list, -Ln, -ln, -L -n', () => {
    expect(cmd('-L')).toEqual(list);
    expect(cmd('-l')).toEqual(list);
    expect(cmd('--list')).toEqual(list);
    expect(cmd('-Ln')).toEqual({ ...list, numeric: true });
    expect(cmd('-ln')).toEqual({ ...list, numeric: true });
    expect(cmd('-L -n')).toEqual({ ...list, numeric: true });
    expect(cmd('--list --numeric')).toEqual({ ...list, numeric: true });
  });

  it('--stats, --json, --nosort, --sort', () => {
    expect(cmd('-Ln --stats')).toEqual({ ...list, numeric: true, stats: true });
    expect(cmd('-L --json')).toEqual({ ...list, json: true });
    expect(cmd('-L --nosort')).toEqual({ ...list, sort: false });
    expect(cmd('-L --sort')).toEqual(list);
  });

  it('one service: -Ln -t VIP:80', () => {
    expect(cmd('-Ln -t 198.18.0.100:80')).toEqual({ ...list, numeric: true, service: VIP });
    expect(cmd('-Lnt 198.18.0.100:80')).toEqual({ ...list, numeric: true, service: VIP });
  });

  it('-Lnc parses L, n and c (the connection table)', () => {
    expect(cmd('-Lnc')).toEqual({ ...list, numeric: true, connections: true });
    expect(cmd('-L --connection --json')).toEqual({ ...list, json: true, connections: true });
  });
});

describe('option spellings', () => {
  it('long options with and without =', () => {
    const expected = cmd('-a -t 198.18.0.100:80 -r 198.18.0.11 -w 5 -m');
    expect(cmd('--add-server --tcp-service 198.18.0.100:80 --real-server 198.18.0.11 --weight 5 --masquerading')).toEqual(expected);
    expect(cmd('--add-server --tcp-service=198.18.0.100:80 --real-server=198.18.0.11 --weight=5 --masquerading')).toEqual(expected);
  });

  it('clustered short options: -at VIP, -w2 and -ar-style', () => {
    expect(cmd('-at 198.18.0.100:80 -r 198.18.0.11 -w2 -m')).toEqual(cmd('-a -t 198.18.0.100:80 -r 198.18.0.11 -w 2 -m'));
    expect(cmd('-At198.18.0.100:80 -srr')).toEqual(cmd('-A -t 198.18.0.100:80 -s rr'));
  });

  it('--gatewaying, --ipip, --udp-service, --scheduler, --sched-flags, --edit-service, --delete-*', () => {
    expect(cmd('--add-server --udp-service 198.18.0.100:53 --real-server 198.18.0.11 --ipip')).toMatchObject({ method: 'tunnel', service: { protocol: 'udp' } });
    expect(cmd('--add-server -t 198.18.0.100:80 -r 198.18.0.11 --gatewaying')).toMatchObject({ method: 'dr' });
    expect(cmd('--edit-service -t 198.18.0.100:80 --scheduler mh --sched-flags mh-port')).toMatchObject({ kind: 'edit-service', scheduler: 'mh', flags: ['mh-port'] });
    expect(cmd('--delete-service -t 198.18.0.100:80')).toMatchObject({ kind: 'delete-service' });
    expect(cmd('--delete-server -t 198.18.0.100:80 -r 198.18.0.11')).toMatchObject({ kind: 'delete-server' });
    expect(cmd('--edit-server -t 198.18.0.100:80 -r 198.18.0.11 -w 4')).toMatchObject({ kind: 'edit-server', weight: 4 });
  });

  it('the command may come after its options (ipvsadm wants it first; we do not insist)', () => {
    expect(cmd('-t 198.18.0.100:80 -s rr -A')).toEqual(cmd('-A -t 198.18.0.100:80 -s rr'));
  });

  it('-h, --help, -v, --version', () => {
    expect(cmd('-h')).toEqual({ kind: 'help' });
    expect(cmd('--help')).toEqual({ kind: 'help' });
    expect(cmd('-v')).toEqual({ kind: 'version' });
    expect(cmd('--version')).toEqual({ kind: 'version' });
  });

  it('--server and --token-file go with any command', () => {
    const inv = parseArgs(['-Ln', '--server', 'http://10.0.0.1:9777', '--token-file=/tmp/t']);
    expect(inv.connection).toEqual({ server: 'http://10.0.0.1:9777', tokenFile: '/tmp/t' });
    expect(parseArgs(['--server', 'x:1']).command.kind).toBe('list');
  });
});

describe('addresses', () => {
  it('IPv6 services and servers, bracketed with a port', () => {
    expect(cmd('-A -t [fd00::100]:80 -s rr')).toMatchObject({
      service: { protocol: 'tcp', address: 'fd00::100', family: 'inet6', port: 80 },
    });
    expect(cmd('-a -t [fd00::100]:80 -r [FD00:0:0::11]:8080 -m')).toMatchObject({
      server: { address: 'fd00::11', family: 'inet6', port: 8080 },
    });
    expect(cmd('-a -t [fd00::100]:80 -r fd00::11 -m')).toMatchObject({ server: { address: 'fd00::11', port: 80 } });
  });

  it('a bare IPv6 address has no port, as inet_pton reads it', () => {
    expect(parseHostPort('fd00::1:80', 'tcp')).toEqual({ address: 'fd00::1:80', family: 'inet6' });
  });

  it('refuses host names (no DNS), bad ports and bad brackets', () => {
    for (const bad of ['lb.example.com:80', '198.18.0.1:65536', '198.18.0.1:', '[fd00::1]', '[fd00::1]80', '80', '1.2.3:80', '010.0.0.1:80', '[1.2.3.4]:80']) {
      expect(parseHostPort(bad, 'tcp'), bad).toBeUndefined();
    }
  });

  it('port names through the resolver (getservbyname), with the protocol', () => {
    const resolvePort = (name: string, proto: string) => (name === 'http' && proto === 'tcp' ? 80 : undefined);
    expect(cmd('-A -t 198.18.0.100:http -s rr', { resolvePort })).toMatchObject({ service: { port: 80 } });
    expect(() => parseArgs(split('-A -u 198.18.0.100:http -s rr'), { resolvePort })).toThrow(/illegal virtual server/);
  });
});

describe('scheduler flags (-b)', () => {
  it('checked against the scheduler, named after it', () => {
    expect(cmd('-A -t 198.18.0.100:80 -s mh -b mh-port')).toMatchObject({ flags: ['mh-port'] });
    expect(cmd('-A -t 198.18.0.100:80 -s mh -b mh-port,mh-fallback')).toMatchObject({ flags: ['mh-fallback', 'mh-port'] });
    expect(cmd('-A -t 198.18.0.100:80 -s mh -b flag-2')).toMatchObject({ flags: ['mh-port'] });
    expect(cmd('-A -t 198.18.0.100:80 -s sh -b sh-port')).toMatchObject({ flags: ['sh-port'] });
    expect(cmd('-A -t 198.18.0.100:80 -s rr -b flag-1,flag-3')).toMatchObject({ flags: ['flag-1', 'flag-3'] });
  });

  it('ipvsadm messages for unknown and incompatible flags (wlc when -s is absent)', () => {
    const unknown = fails('-A -t 198.18.0.100:80 -s mh -b fast');
    expect([unknown.code, unknown.message, unknown.details.exitCode]).toEqual([ErrorCode.Invalid, "invalid scheduler flag `fast'", 2]);
    expect(fails('-A -t 198.18.0.100:80 -s rr -b mh-port').message).toBe("incompatible scheduler flag `mh-port'");
    expect(fails('-A -t 198.18.0.100:80 -b mh-port').message).toBe("incompatible scheduler flag `mh-port'");
  });
});

describe('errors, with ipvsadm messages and exit statuses', () => {
  const usage = (line: string, message: string) => {
    const e = fails(line);
    expect(e.code, line).toBe(ErrorCode.Invalid);
    expect(e.message, line).toBe(message);
    expect(e.details.exitCode, line).toBe(2);
  };

  it('bad values', () => {
    usage('-A -t 198.18.0.300:80', 'illegal virtual server address[:port] specified');
    usage('-A -t lb.example.com:80', 'illegal virtual server address[:port] specified');
    usage('-a -t 198.18.0.100:80 -r nowhere', 'illegal real server address[:port] specified');
    usage('-a -t 198.18.0.100:80 -r 198.18.0.11 -w 65536', 'illegal weight specified');
    usage('-a -t 198.18.0.100:80 -r 198.18.0.11 -w -1', 'illegal weight specified');
    usage('-a -t 198.18.0.100:80 -r 198.18.0.11 -w two', 'illegal weight specified');
  });

  it('missing and illegal options per command (generic_opt_check)', () => {
    usage('-A -s rr', "You need to supply the 'service-address' option for the 'add-service' command");
    usage('-D', "You need to supply the 'service-address' option for the 'delete-service' command");
    usage('-a -t 198.18.0.100:80', "You need to supply the 'real-server' option for the 'add-server' command");
    usage('-d -t 198.18.0.100:80', "You need to supply the 'real-server' option for the 'delete-server' command");
    usage('-e -t 198.18.0.100:80 -w 1', "You need to supply the 'real-server' option for the 'edit-server' command");
    usage('-A -t 198.18.0.100:80 -r 198.18.0.11', "Illegal 'real-server' option with the 'add-service' command");
    usage('-A -n -t 198.18.0.100:80', "Illegal 'numeric' option with the 'add-service' command");
    usage('-C -t 198.18.0.100:80', "Illegal 'service-address' option with the 'flush' command");
    usage('-L -s rr', "Illegal 'scheduler' option with the 'list' command");
    usage('-d -t 198.18.0.100:80 -r 198.18.0.11 -w 2', "Illegal 'weight' option with the 'delete-server' command");
    usage('-D -t 198.18.0.100:80 -m', "Illegal 'forwarding-method' option with the 'delete-service' command");
    usage('-a -t 198.18.0.100:80 -r 198.18.0.11 -s rr', "Illegal 'scheduler' option with the 'add-server' command");
    usage('-A -t 198.18.0.100:80 --json', "Illegal 'json' option with the 'add-service' command");
    usage('-A -t 198.18.0.100:80 --stats', "Illegal 'stats' option with the 'add-service' command");
  });

  it('repeats, extra words, zero ports, mixed families', () => {
    usage('-A -D -t 198.18.0.100:80', 'multiple commands specified');
    usage('-a -t 198.18.0.100:80 -r 198.18.0.11 -g -m', "multiple 'forwarding-method' options specified");
    usage('-A -t 198.18.0.100:80 -u 198.18.0.100:80', "multiple 'service-address' options specified");
    usage('-Ln -n', "multiple 'numeric' options specified");
    usage('-L extra', 'unexpected argument extra');
    usage('-A -t 198.18.0.100 -s rr', 'Zero port specified for non-persistent service');
    usage('-E -t 198.18.0.100:0', 'Zero port specified for non-persistent service');
    usage('-a -t 198.18.0.100:80 -r [fd00::11]:80 -m', 'Different address family is allowed only for tunneling servers');
    expect(cmd('-a -t 198.18.0.100:80 -r [fd00::11]:80 -i')).toMatchObject({ method: 'tunnel', server: { family: 'inet6', port: 80 } });
  });

  it('option syntax errors: popt messages, "Try ..." and 255', () => {
    const syntax = (argv: string[], message: string) => {
      const e = fails(argv);
      expect([e.code, e.message, e.details.exitCode, e.details.tryHelp]).toEqual([ErrorCode.Invalid, message, 255, true]);
    };
    syntax(['--frobnicate'], '--frobnicate: unknown option');
    syntax(['-Lq'], '-q: unknown option');
    syntax(['-A', '-t'], '-t: missing argument');
    syntax(['-A', '--tcp-service'], '--tcp-service: missing argument');
    syntax(['-L', '--numeric=yes'], '--numeric: option does not take an argument');
    syntax(['-n'], 'no command specified');
  });

  it('ipvsadm options xdpvs does not do yet: named, exit 1, never ignored', () => {
    const cases: [string[], string][] = [
      [['-A', '-f', '1'], '-f'],
      [['-A', '-f', '1', '-6'], '-f'],
      [['-A', '-u', '198.18.0.100:53', '-o'], '-o'],
      [['--start-daemon', 'master'], '--start-daemon'],
      [['-A', '--sctp-service', '198.18.0.100:80'], '--sctp-service'],
      [['-a', '-t', '198.18.0.100:80', '-r', '198.18.0.11', '-i', '--tun-type', 'gue'], '--tun-type gue'],
      [['-a', '-t', '198.18.0.100:80', '-r', '198.18.0.11', '-i', '--tun-type', 'ipip', '--tun-port', '6080'], '--tun-port'],
    ];
    for (const [argv, option] of cases) {
      const e = fails(argv);
      expect([e.code, e.message, e.details.exitCode], argv.join(' ')).toEqual([
        ErrorCode.Unsupported,
        `${option} is not supported yet`,
        1,
      ]);
    }
  });
});
