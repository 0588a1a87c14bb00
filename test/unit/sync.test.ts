// Connection sync without the kernel: the datagram's encoding and HMAC (real crypto), replay and clock checks, the
// key file's checks, the directory's mapping of ids to names and back, and how a peer's entry is written into
// (an in-memory) `conns` and `nat_reverse`.

import { randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';

import { parseDaemonArgs } from '../../src/daemon/args.js';
import { isXdpvsError } from '../../src/errors.js';
import { parseAddress } from '../../src/lb/address.js';
import { LB_MAPS } from '../../src/maps/lb-maps.js';
import { MemoryMapBackend } from '../../src/maps/memory-backend.js';
import { Persist, SvcAddrKey, SvcPersist } from '../../src/maps/sched-structs.js';
import { Conn, ConnState, FlowKey, NatRev } from '../../src/maps/structs.js';
import { applyEntry, type ConnTables } from '../../src/sync/apply.js';
import { Directory } from '../../src/sync/directory.js';
import { loadSyncKey } from '../../src/sync/key.js';
import { MAX_SENDERS, REPLAY_WINDOW, ReplayGuard } from '../../src/sync/replay.js';
import { ENTRY_SIZE, HEADER_SIZE, MAC_SIZE, MAX_DATAGRAM, MAX_ENTRIES, decodeDatagram, encodeDatagram, type SyncEntry } from '../../src/sync/wire.js';

function ip16(text: string): Buffer {
  const a = parseAddress(text);
  const out = Buffer.alloc(16);
  out.set(a.bytes);
  return out;
}

const KEY = randomBytes(32);

function entry(over: Partial<SyncEntry> = {}): SyncEntry {
  return {
    proto: 6,
    family: 2,
    client: ip16('198.18.0.10'),
    clientPort: 40000,
    vaddr: ip16('198.18.1.1'),
    vport: 80,
    svcAddr: ip16('198.18.1.1'),
    svcPrefix: 32,
    svcPort: 80,
    rsFamily: 2,
    rsAddr: ip16('198.18.2.1'),
    rsPort: 80,
    state: ConnState.Established,
    ageMs: 250,
    remainingMs: 899_750,
    ...over,
  };
}

const HEADER = { sender: 0x0123456789abcdefn, sequence: 7n, sentMs: 1_790_000_000_000 };

describe('sync datagrams', () => {
  it('round-trip header and entries, IPv4 and IPv6', () => {
    const entries = [
      entry(),
      entry({
        family: 10,
        client: ip16('fd00:2::10'),
        vaddr: ip16('fd00:1::1'),
        svcAddr: ip16('fd00:1::'),
        svcPrefix: 64,
        svcPort: 0,
        rsFamily: 10,
        rsAddr: ip16('fd00:3::1'),
        rsPort: 8080,
        proto: 17,
        state: ConnState.Udp,
        ageMs: 0,
        remainingMs: 300_000,
      }),
    ];
    const buf = encodeDatagram(KEY, HEADER, entries);
    expect(buf.length).toBe(HEADER_SIZE + 2 * ENTRY_SIZE + MAC_SIZE);
    expect(decodeDatagram(KEY, buf)).toEqual({ ok: true, header: HEADER, entries });
  });

  it('hold at most MAX_ENTRIES entries, and stay within MAX_DATAGRAM bytes', () => {
    expect(MAX_ENTRIES).toBe(15);
    const full = encodeDatagram(KEY, HEADER, Array.from({ length: MAX_ENTRIES }, (_, i) => entry({ clientPort: 1000 + i })));
    expect(full.length).toBeLessThanOrEqual(MAX_DATAGRAM);
    // No entry: a hello, authenticated like any other datagram.
    const hello = encodeDatagram(KEY, HEADER, []);
    expect(decodeDatagram(KEY, hello)).toMatchObject({ ok: true, entries: [] });
    expect(decodeDatagram(randomBytes(32), hello)).toEqual({ ok: false, reason: 'auth' });
    expect(() => encodeDatagram(KEY, HEADER, Array.from({ length: MAX_ENTRIES + 1 }, () => entry()))).toThrow(RangeError);
  });

  it('are refused with another key, or with any bit changed', () => {
    const buf = encodeDatagram(KEY, HEADER, [entry()]);
    expect(decodeDatagram(randomBytes(32), buf)).toEqual({ ok: false, reason: 'auth' });
    for (const at of [8, 16, 24, HEADER_SIZE, HEADER_SIZE + 38, HEADER_SIZE + 80, buf.length - 1]) {
      const bad = Buffer.from(buf);
      bad[at] ^= 0x01;
      expect(decodeDatagram(KEY, bad), `bit flipped at byte ${at}`).toEqual({ ok: false, reason: 'auth' });
    }
  });

  it('are "malformed" when truncated, padded, of another magic, version or entry count', () => {
    const buf = encodeDatagram(KEY, HEADER, [entry(), entry()]);
    expect(decodeDatagram(KEY, buf.subarray(0, buf.length - 1))).toEqual({ ok: false, reason: 'malformed' });
    expect(decodeDatagram(KEY, Buffer.concat([buf, Buffer.alloc(1)]))).toEqual({ ok: false, reason: 'malformed' });
    expect(decodeDatagram(KEY, Buffer.alloc(10))).toEqual({ ok: false, reason: 'malformed' });
    for (const [at, v] of [
      [0, 0x00],
      [4, 2],
      [5, 1],
      [5, 0],
    ] as const) {
      const bad = Buffer.from(buf);
      bad[at] = v;
      expect(decodeDatagram(KEY, bad), `byte ${at} = ${v}`).toEqual({ ok: false, reason: 'malformed' });
    }
  });
});

describe('replay guard', () => {
  const NOW = 1_790_000_000_000;

  it('takes each sequence number of a sender once, late ones within the window too', () => {
    const g = new ReplayGuard(1n);
    expect(g.check(5n, 100n, NOW, NOW)).toBe('fresh');
    expect(g.check(5n, 100n, NOW, NOW)).toBe('replay');
    expect(g.check(5n, 102n, NOW, NOW)).toBe('fresh');
    expect(g.check(5n, 101n, NOW, NOW)).toBe('fresh'); // reordered
    expect(g.check(5n, 101n, NOW, NOW)).toBe('replay');
    expect(g.check(5n, 102n - BigInt(REPLAY_WINDOW), NOW, NOW)).toBe('replay'); // too far behind to tell
    expect(g.check(5n, 102n - BigInt(REPLAY_WINDOW) + 1n, NOW, NOW)).toBe('fresh');
    expect(g.check(5n, 102n - BigInt(REPLAY_WINDOW) + 1n, NOW, NOW)).toBe('replay');
    expect(g.check(5n, 1000n, NOW, NOW)).toBe('fresh'); // a jump past the window clears it
    expect(g.check(5n, 999n, NOW, NOW)).toBe('fresh');
    expect(g.check(5n, 102n, NOW, NOW)).toBe('replay');
    expect(g.check(6n, 12n, NOW, NOW)).toBe('fresh'); // counted per sender
    expect(g.check(6n, 0n, NOW, NOW)).toBe('replay');
  });

  it('refuses a datagram whose clock is more than the allowed skew from ours, and our own', () => {
    const g = new ReplayGuard(1n, 30_000);
    expect(g.check(5n, 1n, NOW - 30_001, NOW)).toBe('stale');
    expect(g.check(5n, 1n, NOW + 30_001, NOW)).toBe('stale');
    expect(g.check(5n, 1n, NOW - 30_000, NOW)).toBe('fresh');
    expect(g.check(1n, 1n, NOW, NOW)).toBe('own');
  });

  it('remembers at most MAX_SENDERS senders, forgetting the one heard from longest ago', () => {
    const g = new ReplayGuard(0n);
    for (let s = 1; s <= MAX_SENDERS; s++) g.check(BigInt(s), 1n, NOW, NOW);
    g.check(1n, 2n, NOW, NOW); // sender 1 heard from again: sender 2 is now the oldest
    g.check(BigInt(MAX_SENDERS + 1), 1n, NOW, NOW);
    expect(g.check(1n, 2n, NOW, NOW)).toBe('replay');
    expect(g.check(2n, 1n, NOW, NOW)).toBe('fresh'); // forgotten: only the clock bound holds it now
  });
});

describe('sync key file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'xdpvs-sync-key-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('is read when 0600 or stricter, trimmed', () => {
    const p = join(dir, 'ok');
    writeFileSync(p, 'an-example-sync-key-0123456789\n', { mode: 0o600 });
    expect(loadSyncKey(p).toString()).toBe('an-example-sync-key-0123456789');
    chmodSync(p, 0o400);
    expect(loadSyncKey(p).length).toBe(30);
  });

  it('is refused when group or others may read it, when short, or missing; with XDPVS_ERR_INVALID', () => {
    const open = join(dir, 'open');
    writeFileSync(open, 'an-example-sync-key-0123456789\n');
    chmodSync(open, 0o644);
    const short = join(dir, 'short');
    writeFileSync(short, 'short\n', { mode: 0o600 });
    for (const [p, msg] of [
      [open, /mode 0644.*chmod 600/],
      [short, /holds 5 bytes; at least 16/],
      [join(dir, 'missing'), /sync key file .*missing/],
    ] as const) {
      let err: unknown;
      try {
        loadSyncKey(p);
      } catch (e) {
        err = e;
      }
      expect(isXdpvsError(err) && err.code).toBe('XDPVS_ERR_INVALID');
      expect((err as Error).message).toMatch(msg);
    }
  });
});

describe('xdpvsd --sync-* flags', () => {
  const base = ['--interface', 'eth0'];
  it('parse peers, listen address and key', () => {
    const a = parseDaemonArgs([...base, '--sync-peer', '198.18.0.2:8848', '--sync-peer', '[fd00::2]:8848', '--sync-listen', '198.18.0.1:8848', '--sync-key', '/etc/xdpvs/sync.key']);
    expect(a.sync).toEqual({
      peers: [
        { host: '198.18.0.2', port: 8848 },
        { host: 'fd00::2', port: 8848 },
      ],
      listen: { host: '198.18.0.1', port: 8848 },
      keyFile: '/etc/xdpvs/sync.key',
    });
    expect(parseDaemonArgs(base).sync).toBeUndefined();
  });
  it('refuse what cannot work, naming it', () => {
    const bad: [string[], RegExp][] = [
      [['--sync-peer', '198.18.0.2:8848'], /needs --sync-key/],
      [['--sync-key', '/k'], /--sync-key needs --sync-peer or --sync-listen/],
      [['--sync-peer', '198.18.0.2', '--sync-key', '/k'], /--sync-peer wants ADDR:PORT/],
      [['--sync-peer', 'fd00::2:8848', '--sync-key', '/k'], /--sync-peer wants ADDR:PORT/],
      [['--sync-peer', '198.18.0.2:0', '--sync-key', '/k'], /port 1\.\.65535/],
      [['--sync-peer', 'director-b:8848', '--sync-key', '/k'], /--sync-peer director-b:8848/],
      [['--sync-listen', '198.18.0.1:70000', '--sync-key', '/k'], /--sync-listen wants ADDR:PORT/],
      [['--sync-peer', '198.18.0.2:1', '--sync-peer', '198.18.0.2:1', '--sync-key', '/k'], /given twice/],
    ];
    for (const [args, msg] of bad) expect(() => parseDaemonArgs([...base, ...args]), args.join(' ')).toThrow(msg);
  });
});

describe('applying a peer entry', () => {
  const SVC = { id: 4, protocol: 'tcp' as const, address: parseAddress('198.18.1.1'), port: 80 };
  const dir = new Directory([
    {
      ...SVC,
      servers: [
        { destId: 11, gen: 3, address: parseAddress('198.18.2.1'), port: 80, method: 'dr' },
        { destId: 12, gen: 5, address: parseAddress('198.18.2.2'), port: 80, method: 'nat' },
      ],
    },
  ]);
  const NOW = 5_000_000_000_000;
  const key = FlowKey.encode({ src: ip16('198.18.0.10'), dst: ip16('198.18.1.1'), sport: 40000, dport: 80, proto: 6, family: 2 });

  function tables(): ConnTables {
    const b = new MemoryMapBackend([
      { ...LB_MAPS.conns, maxEntries: 1024 },
      { ...LB_MAPS.nat_reverse, maxEntries: 1024 },
      { ...LB_MAPS.svc_persist, maxEntries: 16 },
      { ...LB_MAPS.persist, maxEntries: 1024 },
    ]);
    return { conns: b.map('conns'), natReverse: b.map('nat_reverse'), svcPersist: b.map('svc_persist'), persist: b.map('persist') };
  }

  it('maps ids to names and back', () => {
    const names = dir.byId(4, 12, 5)!;
    expect(names.method).toBe('nat');
    expect(dir.byName(names.service, names.server)).toMatchObject({ svcId: 4, destId: 12, gen: 5 });
    expect(dir.byId(4, 12, 6)).toBeUndefined(); // the slot was given to another real server since
    expect(dir.byId(3, 12, 5)).toBeUndefined();
  });

  it('writes the flow under this director\'s id, generation and service, with the peer\'s age and time left', () => {
    const t = tables();
    expect(applyEntry(t, dir, entry(), NOW)).toBe('applied');
    expect(Conn.decode(t.conns.lookup(key)!)).toEqual({ dest_id: 11, dest_gen: 3, svc_id: 4, state: ConnState.Established, last_ns: NOW - 250e6, expires_ns: NOW + 899_750e6 });
    expect(t.natReverse.keys()).toHaveLength(0); // DR: no reverse entry
  });

  it('adds the reverse entry of a NAT real server', () => {
    const t = tables();
    expect(applyEntry(t, dir, entry({ rsAddr: ip16('198.18.2.2') }), NOW)).toBe('applied');
    const rk = FlowKey.encode({ src: ip16('198.18.2.2'), dst: ip16('198.18.0.10'), sport: 80, dport: 40000, proto: 6, family: 2 });
    expect(NatRev.decode(t.natReverse.lookup(rk)!)).toEqual({ vaddr: ip16('198.18.1.1'), vport: 80, dest_id: 12, dest_gen: 5 });
  });

  it('never replaces a live local entry that saw a packet at least as recently; replaces older or expired ones', () => {
    const t = tables();
    const local = (last: number, expires: number) => t.conns.update(key, Conn.encode({ dest_id: 12, dest_gen: 5, svc_id: 4, state: ConnState.SynRecv, last_ns: last, expires_ns: expires }));
    local(NOW - 100e6, NOW + 60e9); // 100 ms ago: newer than the peer's 250 ms
    expect(applyEntry(t, dir, entry(), NOW)).toBe('older');
    expect(Conn.decode(t.conns.lookup(key)!).dest_id).toBe(12);
    local(NOW - 250e6, NOW + 60e9); // as recent: kept
    expect(applyEntry(t, dir, entry(), NOW)).toBe('older');
    local(NOW - 400e6, NOW + 60e9); // older: replaced
    expect(applyEntry(t, dir, entry(), NOW)).toBe('applied');
    expect(Conn.decode(t.conns.lookup(key)!).dest_id).toBe(11);
    local(NOW - 100e6, NOW - 1); // newer but expired: replaced
    expect(applyEntry(t, dir, entry(), NOW)).toBe('applied');
    expect(applyEntry(t, dir, entry({ remainingMs: 0 }), NOW)).toBe('older'); // expired at the peer already
  });

  it('maps IPv6 and prefix services (the flow\'s VIP inside the service\'s prefix) the same way', () => {
    const v6 = new Directory([
      {
        id: 9,
        protocol: 'udp',
        address: { ...parseAddress('fd00:1::'), prefixLen: 64 } as ReturnType<typeof parseAddress>,
        port: 53,
        servers: [{ destId: 40, gen: 2, address: parseAddress('fd00:3::1'), port: 53, method: 'tunnel' }],
      },
    ]);
    const t = tables();
    const e = entry({
      proto: 17,
      family: 10,
      state: ConnState.Udp,
      client: ip16('fd00:2::10'),
      vaddr: ip16('fd00:1::7'),
      vport: 53,
      svcAddr: ip16('fd00:1::'),
      svcPrefix: 64,
      svcPort: 53,
      rsFamily: 10,
      rsAddr: ip16('fd00:3::1'),
      rsPort: 53,
    });
    expect(applyEntry(t, v6, e, NOW)).toBe('applied');
    const k = FlowKey.encode({ src: ip16('fd00:2::10'), dst: ip16('fd00:1::7'), sport: 40000, dport: 53, proto: 17, family: 10 });
    expect(Conn.decode(t.conns.lookup(k)!)).toMatchObject({ dest_id: 40, dest_gen: 2, svc_id: 9, state: ConnState.Udp });
    expect(applyEntry(t, v6, { ...e, svcPrefix: 128 }, NOW)).toBe('unknown'); // another service: the exact VIP
  });

  it('gives a persistent service\'s client the template of its real server, unless it has a live one here', () => {
    const t = tables();
    const svcKey = Buffer.alloc(4);
    svcKey.writeUInt32LE(4);
    t.svcPersist.update(svcKey, SvcPersist.encode({ timeout: 360, mask: ip16('255.255.255.0') }));
    const tkey = SvcAddrKey.encode({ addr: ip16('198.18.0.0'), svc_id: 4, family: 2 });
    expect(applyEntry(t, dir, entry(), NOW)).toBe('applied');
    expect(Persist.decode(t.persist.lookup(tkey)!)).toEqual({ dest_id: 11, dest_gen: 3, expires_ns: NOW + 360e9 });
    // Another client of the same /24, to the other real server: the live template stays.
    expect(applyEntry(t, dir, entry({ client: ip16('198.18.0.77'), rsAddr: ip16('198.18.2.2') }), NOW)).toBe('applied');
    expect(Persist.decode(t.persist.lookup(tkey)!).dest_id).toBe(11);
    // Expired: replaced.
    expect(applyEntry(t, dir, entry({ client: ip16('198.18.0.78'), rsAddr: ip16('198.18.2.2') }), NOW + 361e9)).toBe('applied');
    expect(Persist.decode(t.persist.lookup(tkey)!)).toMatchObject({ dest_id: 12, dest_gen: 5 });
  });

  it('ignores services and real servers this director does not have, and refuses impossible fields', () => {
    const t = tables();
    expect(applyEntry(t, dir, entry({ rsAddr: ip16('198.18.2.9') }), NOW)).toBe('unknown');
    expect(applyEntry(t, dir, entry({ svcPort: 443 }), NOW)).toBe('unknown');
    expect(applyEntry(t, dir, entry({ rsPort: 81 }), NOW)).toBe('unknown');
    expect(applyEntry(t, dir, entry({ proto: 17 }), NOW)).toBe('invalid'); // UDP in a TCP state
    expect(applyEntry(t, dir, entry({ state: 9 }), NOW)).toBe('invalid');
    expect(applyEntry(t, dir, entry({ family: 7 }), NOW)).toBe('invalid');
    const junk = ip16('198.18.0.10');
    junk[9] = 1;
    expect(applyEntry(t, dir, entry({ client: junk }), NOW)).toBe('invalid');
    expect(t.conns.keys()).toHaveLength(0);
  });
});
