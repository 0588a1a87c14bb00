// The command lines of xdpvsd's real-server role, and the director's --tunnel-source and --role.

import { describe, expect, it } from 'vitest';
import { parseDaemonArgs } from '../../src/daemon/args.js';
import { parseRealServerArgs, wantsRealServerRole } from '../../src/realserver/args.js';

describe('xdpvsd --role realserver', () => {
  it('is recognised in both spellings, and only for realserver', () => {
    expect(wantsRealServerRole(['--role', 'realserver', '--interface', 'eth0'])).toBe(true);
    expect(wantsRealServerRole(['--interface', 'eth0', '--role=realserver'])).toBe(true);
    expect(wantsRealServerRole(['--role', 'director', '--interface', 'eth0'])).toBe(false);
    expect(wantsRealServerRole(['--interface', 'realserver'])).toBe(false);
  });

  it('takes interfaces and VIPs of both families, canonical', () => {
    const a = parseRealServerArgs(['--role', 'realserver', '--interface', 'eth0', '--vip', '198.18.0.100', '--vip', 'FD00:0::100']);
    expect(a).toMatchObject({ interfaces: ['eth0'], xdpMode: 'auto', logLevel: 'info', status: false, detach: false });
    expect(a.vips.map((v) => v.text)).toEqual(['198.18.0.100', 'fd00::100']);
  });

  it('needs an interface, and a VIP unless it only reports or detaches', () => {
    expect(() => parseRealServerArgs(['--role', 'realserver', '--vip', '198.18.0.100'])).toThrow(/--interface is required/);
    expect(() => parseRealServerArgs(['--role', 'realserver', '--interface', 'eth0'])).toThrow(/--vip is required/);
    expect(parseRealServerArgs(['--role', 'realserver', '--interface', 'eth0', '--detach']).detach).toBe(true);
    expect(parseRealServerArgs(['--role', 'realserver', '--interface', 'eth0', '--status']).status).toBe(true);
    expect(() => parseRealServerArgs(['--role', 'realserver', '--interface', 'eth0', '--status', '--detach'])).toThrow(/do not go together/);
  });

  it('refuses a bad VIP, an unknown option and a bad mode with the usage', () => {
    expect(() => parseRealServerArgs(['--role', 'realserver', '--interface', 'eth0', '--vip', '198.18.0.300'])).toThrow(/--vip 198\.18\.0\.300/);
    expect(() => parseRealServerArgs(['--role', 'realserver', '--interface', 'eth0', '--vip', '198.18.0.1', '--listen', 'x'])).toThrow(/usage: xdpvsd --role realserver/);
    expect(() => parseRealServerArgs(['--role', 'realserver', '--interface', 'eth0', '--vip', '198.18.0.1', '--xdp-mode', 'fast'])).toThrow(/--xdp-mode/);
  });
});

describe('xdpvsd (director) --tunnel-source and --role', () => {
  it('takes one tunnel source per family', () => {
    expect(parseDaemonArgs(['--interface', 'eth0']).tunnelSources).toEqual({});
    expect(parseDaemonArgs(['--interface', 'eth0', '--tunnel-source', '198.18.0.2', '--tunnel-source', 'FD00::2']).tunnelSources).toEqual({
      inet: '198.18.0.2',
      inet6: 'fd00::2',
    });
    expect(() => parseDaemonArgs(['--interface', 'eth0', '--tunnel-source', '198.18.0.2', '--tunnel-source', '198.18.0.3'])).toThrow(/twice/);
    expect(() => parseDaemonArgs(['--interface', 'eth0', '--tunnel-source', 'nope'])).toThrow(/--tunnel-source nope/);
  });

  it('accepts --role director, and nothing but director or realserver', () => {
    expect(parseDaemonArgs(['--role', 'director', '--interface', 'eth0']).interfaces).toEqual(['eth0']);
    expect(() => parseDaemonArgs(['--role', 'proxy', '--interface', 'eth0'])).toThrow(/--role must be director or realserver/);
  });
});
