// The daemon's periodic next-hop refresh (IprouteNeighbourResolver.lookupAll) against a real kernel: routes of every
// real server come from one batched `ip` run per family, and each answer must reach the real server it was asked for.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addNetns, addVethPair, delNetns, ip, newLabId, nsRun, repoRoot } from '../../scripts/lab/netns.js';
import { requireBuilt, skipUnlessRoot } from './helpers.js';

const skip = skipUnlessRoot('next-hop refresh');

describe.skipIf(skip)('next-hop refresh of many real servers', () => {
  const id = newLabId();
  const director = `xdpvs-nh-d-${id}`;
  const peer = `xdpvs-nh-p-${id}`;

  beforeAll(async () => {
    requireBuilt(['dist/src/net/neighbours.js']);
    await addNetns(director);
    await addNetns(peer);
    await addVethPair({ ns: director, name: 'seg0' }, { ns: peer, name: 'seg0' });
    for (const [ns, v4, v6] of [
      [director, '198.18.210.1/24', 'fd00:210::1/64'],
      [peer, '198.18.210.2/24', 'fd00:210::2/64'],
    ]) {
      await ip(ns, ['addr', 'add', v4, 'dev', 'seg0']);
      await ip(ns, ['-6', 'addr', 'add', v6, 'dev', 'seg0', 'nodad']);
      await ip(ns, ['link', 'set', 'seg0', 'up']);
    }
    // A network behind a gateway, as a tunnelled real server would be.
    await ip(director, ['route', 'add', '198.19.210.0/24', 'via', '198.18.210.2']);
  });

  afterAll(async () => {
    await delNetns(director).catch(() => undefined);
    await delNetns(peer).catch(() => undefined);
  });

  it('answers each real server with its own route, skips the unroutable and the local, whatever the spelling', async () => {
    const targets = [
      { address: '198.18.210.2', family: 'inet' },
      { address: '198.19.210.7', family: 'inet' }, // via the gateway
      { address: '198.18.211.9', family: 'inet' }, // no route in this namespace (no default route)
      { address: '198.18.210.1', family: 'inet' }, // the director's own address
      { address: 'fd00:210:0:0::2', family: 'inet6' }, // ip prints it as fd00:210::2
      { address: 'fd00:211::9', family: 'inet6' },
    ];
    const script = `
      const { IprouteNeighbourResolver } = await import(${JSON.stringify(`${repoRoot()}/dist/src/net/neighbours.js`)});
      const r = new IprouteNeighbourResolver();
      const out = await r.lookupAll(${JSON.stringify(targets)});
      console.log(JSON.stringify([...out].map(([a, h]) => [a, h.ifname, h.gateway ?? null])));`;
    const res = await nsRun(director, process.execPath, ['--input-type=module', '-e', script]);
    const hops = new Map((JSON.parse(res.stdout.trim()) as [string, string, string | null][]).map(([a, dev, gw]) => [a, { dev, gw }]));
    expect([...hops.keys()].sort()).toEqual(['198.18.210.2', '198.19.210.7', 'fd00:210:0:0::2'].sort());
    expect(hops.get('198.18.210.2')).toEqual({ dev: 'seg0', gw: null });
    expect(hops.get('198.19.210.7')).toEqual({ dev: 'seg0', gw: '198.18.210.2' });
    expect(hops.get('fd00:210:0:0::2')).toEqual({ dev: 'seg0', gw: null });
  });
});
