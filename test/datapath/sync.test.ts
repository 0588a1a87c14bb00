// Connection sync between two loaded director programs (docs/sync.md): a flow created on A by real packets
// (BPF_PROG_TEST_RUN) reaches A's ring buffer, goes as an authenticated UDP datagram over loopback to B, lands in
// B's `conns` under B's own destination id, and B then forwards a non-SYN packet of that flow to the same real
// server. Real kernel maps, ring buffer, sockets and crypto. Needs root.

import { randomBytes } from 'node:crypto';
import dgram from 'node:dgram';

import { afterEach, describe, expect, it } from 'vitest';

import { parseAddress } from '../../src/lb/address.js';
import type { Method } from '../../src/lb/model.js';
import { Conn, ConnState, FlowKey, NatRev, SyncCtl } from '../../src/maps/structs.js';
import { Director, FWD, ip16, isRoot, mustRun, type RealServer } from '../../src/testing/harness.js';
import { TCP_FLAGS, flowPacket, type FlowPacketOpts } from '../../src/testing/packets.js';
import { testRun } from '../../src/loader/program.js';
import { ConnSync } from '../../src/sync/conn-sync.js';
import type { DirectoryService } from '../../src/sync/directory.js';
import { encodeDatagram } from '../../src/sync/wire.js';

if (!isRoot) console.warn('test/datapath/sync: skipped: BPF_PROG_TEST_RUN needs root');

const WLC = 6;
const MAC_A = '02:00:00:00:da:00';
const MAC_B = '02:00:00:00:db:00';
const CLIENT_MAC = '02:00:00:00:c5:00';
const CLIENT = '198.18.0.50';
const VIP = '198.18.1.1';
const RS1 = { addr: '198.18.2.1', mac: '02:00:00:00:0a:01' };
const RS2 = { addr: '198.18.2.2', mac: '02:00:00:00:0a:02' };
const KEY = randomBytes(32);

type Pkt = Omit<FlowPacketOpts, 'ethSrc' | 'ethDst'>;

function toDirector(mac: string, o: Pkt): Buffer {
  return flowPacket({ ethSrc: CLIENT_MAC, ethDst: mac, ...o });
}

function macOut(out: Buffer): string {
  return [...out.subarray(0, 6)].map((b) => b.toString(16).padStart(2, '0')).join(':');
}

/** One director: its program, its service (same VIP and real servers as the other's, other ids) and its sync. */
interface Side {
  d: Director;
  svcId: number;
  servers: RealServer[];
  method: Method;
  directory: DirectoryService[];
}

function side(mac: string, svcId: number, port: number, servers: RealServer[], method: Method = 'dr'): Side {
  const d = Director.load(mac, 'xdpvs_test_sync');
  d.addService({ id: svcId, vip: VIP, port, proto: 'tcp', sched: WLC, servers });
  const directory: DirectoryService[] = [
    {
      id: svcId,
      protocol: 'tcp',
      address: parseAddress(VIP),
      port,
      servers: servers.map((s) => ({ destId: s.id, gen: s.gen ?? 1, address: parseAddress(s.addr), port, method })),
    },
  ];
  return { d, svcId, servers, method, directory };
}

function flowKey(sport: number, dport: number): Buffer {
  return FlowKey.encode({ src: ip16(CLIENT), dst: ip16(VIP), sport, dport, proto: 6, family: 2 });
}

async function until(what: string, cond: () => boolean, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe.skipIf(!mustRun)('connection sync between two director programs', () => {
  const cleanup: (() => void)[] = [];
  afterEach(() => {
    while (cleanup.length) {
      try {
        cleanup.pop()!();
      } catch {
        /* the rest still runs */
      }
    }
  });

  /** A sends to B (B listens on an ephemeral loopback port); both run until the test ends. */
  async function pair(a: Side, b: Side): Promise<{ sa: ConnSync; sb: ConnSync }> {
    cleanup.push(() => a.d.close(), () => b.d.close());
    const sb = await ConnSync.start({ backend: b.d.maps.backend, directory: () => b.directory, key: KEY, listen: { host: '127.0.0.1', port: 0 }, peers: [] });
    cleanup.push(() => sb.stop());
    // A's own timer stays out of the way: the test drains A's ring itself (flush), when it has made its packets.
    const sa = await ConnSync.start({
      backend: a.d.maps.backend,
      directory: () => a.directory,
      key: KEY,
      peers: [{ host: '127.0.0.1', port: sb.listenPort! }],
      intervalMs: 1_000_000,
    });
    cleanup.push(() => sa.stop());
    return { sa, sb };
  }

  it('a wlc flow made on A is in B under B\'s destination id, and B forwards its non-SYN packets', async () => {
    // Same real servers, other ids, generations and service id on each director; B lists them the other way round,
    // so that B's own wlc choice (its first candidate) would be the other real server.
    const a = side(MAC_A, 0, 80, [
      { id: 3, ...RS1 },
      { id: 4, ...RS2 },
    ]);
    const b = side(MAC_B, 5, 80, [
      { id: 20, ...RS2, gen: 7 },
      { id: 21, ...RS1, gen: 9 },
    ]);
    const { sa, sb } = await pair(a, b);
    const flow = { src: CLIENT, dst: VIP, proto: 'tcp' as const, sport: 40001, dport: 80 };

    // Before any sync B has no entry: a mid-flow segment is passed to the kernel (IPVS: not a SYN, no connection).
    const before = b.d.run(toDirector(MAC_B, { ...flow, flags: TCP_FLAGS.ACK }));
    expect(before.verdict).toBe('PASS');
    expect(before.reasons).toEqual({ pass_tcp_not_syn: 1 });

    const syn = a.d.run(toDirector(MAC_A, { ...flow, flags: TCP_FLAGS.SYN }));
    expect(syn.verdict).toBe('TX');
    expect(macOut(syn.out)).toBe(RS1.mac);
    a.d.run(toDirector(MAC_A, { ...flow, flags: TCP_FLAGS.ACK })); // SYN_RECV -> ESTABLISHED: a second event

    expect(sa.flush()).toBe(1); // both events of the flow, coalesced into its latest state
    await until('B to apply the entry', () => sb.status().counters.applied >= 1);
    // Two datagrams: A's hello at start (to which B, a listener only, sends nothing back), then the flow.
    expect(sa.status().counters).toMatchObject({ events: 2, sentEntries: 1, sentDatagrams: 2, ringDrops: 0, queueDrops: 0 });
    expect(sb.status().counters).toMatchObject({ receivedDatagrams: 2, receivedEntries: 1, applied: 1, peerStarts: 1, rejectedAuth: 0, rejectedReplay: 0 });

    const raw = b.d.maps.conns.lookup(flowKey(40001, 80));
    expect(raw, "B's conns entry for the flow").toBeDefined();
    const c = Conn.decode(raw!);
    expect({ dest_id: c.dest_id, dest_gen: c.dest_gen, svc_id: c.svc_id, state: c.state }).toEqual({ dest_id: 21, dest_gen: 9, svc_id: 5, state: ConnState.Established });
    const remaining = (c.expires_ns - Number(process.hrtime.bigint())) / 1e9;
    expect(remaining).toBeGreaterThan(800); // ESTABLISHED's 900 s, less the moments the test took
    expect(remaining).toBeLessThanOrEqual(900);
    // B's refresh does not send A's connection back to A while B's data plane leaves it as written.
    expect(sb.refresh()).toBe(0);

    const after = b.d.run(toDirector(MAC_B, { ...flow, flags: TCP_FLAGS.ACK }));
    expect(after.verdict).toBe('TX');
    expect(after.reasons).toEqual({ fwd_tx: 1 });
    expect(macOut(after.out)).toBe(RS1.mac);

    // The periodic refresh announces the flow again (it saw packets since the sync started), then nothing new.
    expect(sa.refresh()).toBe(1);
    expect(sa.flush()).toBe(1);
    await until('B to receive the refreshed entry', () => sb.status().counters.receivedEntries >= 2);
    expect(Conn.decode(b.d.maps.conns.lookup(flowKey(40001, 80))!)).toMatchObject({ dest_id: 21, dest_gen: 9, state: ConnState.Established });
    expect(sa.refresh()).toBe(0);

    // Once B's data plane changes the entry (a FIN through B, as after a failover), B's refresh announces it.
    expect(b.d.run(toDirector(MAC_B, { ...flow, flags: TCP_FLAGS.FIN | TCP_FLAGS.ACK })).verdict).toBe('TX');
    expect(Conn.decode(b.d.maps.conns.lookup(flowKey(40001, 80))!).state).toBe(ConnState.FinWait);
    expect(sb.refresh()).toBe(1);
  });

  it('a director that starts later gets the live connections at once: its hello makes the peer send them all', async () => {
    const a = side(MAC_A, 0, 80, [{ id: 3, ...RS1 }]);
    const b = side(MAC_B, 5, 80, [{ id: 21, ...RS1, gen: 9 }]);
    cleanup.push(() => a.d.close(), () => b.d.close());
    // B's port, chosen now: A sends there while B is down, as a master does while its backup is being restarted.
    const probe = dgram.createSocket('udp4');
    await new Promise<void>((r) => probe.bind(0, '127.0.0.1', () => r()));
    const portB = probe.address().port;
    await new Promise<void>((r) => probe.close(() => r()));
    const sa = await ConnSync.start({
      backend: a.d.maps.backend,
      directory: () => a.directory,
      key: KEY,
      listen: { host: '127.0.0.1', port: 0 },
      peers: [{ host: '127.0.0.1', port: portB }],
      intervalMs: 1_000_000,
    });
    cleanup.push(() => sa.stop());
    const flow = { src: CLIENT, dst: VIP, proto: 'tcp' as const, sport: 40010, dport: 80 };
    a.d.run(toDirector(MAC_A, { ...flow, flags: TCP_FLAGS.SYN }));
    a.d.run(toDirector(MAC_A, { ...flow, flags: TCP_FLAGS.ACK }));
    expect(sa.flush()).toBe(1); // to nobody: B is not up

    const sb = await ConnSync.start({
      backend: b.d.maps.backend,
      directory: () => b.directory,
      key: KEY,
      listen: { host: '127.0.0.1', port: portB },
      peers: [{ host: '127.0.0.1', port: sa.listenPort! }],
      intervalMs: 1_000_000,
    });
    cleanup.push(() => sb.stop());
    await until("A to hear B's hello", () => sa.status().counters.peerStarts === 1);
    expect(sa.flush()).toBe(1);
    await until('B to apply the entry', () => sb.status().counters.applied === 1);
    expect(Conn.decode(b.d.maps.conns.lookup(flowKey(40010, 80))!)).toMatchObject({ dest_id: 21, dest_gen: 9, svc_id: 5, state: ConnState.Established });
    // B heard A for the first time too (A's dump): B has nothing of its own to send back.
    expect(sb.status().counters.peerStarts).toBe(1);
    expect(sb.flush()).toBe(0);
  });

  it('a NAT flow also gets its reverse entry on B, so the real server\'s replies are recognised', async () => {
    const a = side(MAC_A, 1, 8080, [{ id: 6, ...RS1, method: FWD.nat }], 'nat');
    const b = side(MAC_B, 2, 8080, [{ id: 30, ...RS1, method: FWD.nat, gen: 4 }], 'nat');
    const { sa, sb } = await pair(a, b);
    a.d.run(toDirector(MAC_A, { src: CLIENT, dst: VIP, proto: 'tcp', sport: 40002, dport: 8080, flags: TCP_FLAGS.SYN }));
    expect(sa.flush()).toBe(1);
    await until('B to apply the entry', () => sb.status().counters.applied >= 1);
    const rk = FlowKey.encode({ src: ip16(RS1.addr), dst: ip16(CLIENT), sport: 8080, dport: 40002, proto: 6, family: 2 });
    const rv = b.d.maps.natReverse.lookup(rk);
    expect(rv, "B's nat_reverse entry").toBeDefined();
    expect(NatRev.decode(rv!)).toEqual({ vaddr: ip16(VIP), vport: 8080, dest_id: 30, dest_gen: 4 });
    expect(Conn.decode(b.d.maps.conns.lookup(flowKey(40002, 8080))!)).toMatchObject({ dest_id: 30, dest_gen: 4, svc_id: 2, state: ConnState.SynRecv });
  });

  it('B keeps its own newer entry, and drops forged and replayed datagrams without writing anything', async () => {
    const a = side(MAC_A, 0, 80, [{ id: 3, ...RS1 }]);
    const b = side(MAC_B, 5, 80, [{ id: 21, ...RS1, gen: 9 }]);
    const { sa, sb } = await pair(a, b);

    // The same flow on both: B's packet comes last, so B's entry is the newer one.
    const flow = { src: CLIENT, dst: VIP, proto: 'tcp' as const, sport: 40003, dport: 80 };
    a.d.run(toDirector(MAC_A, { ...flow, flags: TCP_FLAGS.SYN }));
    await new Promise((r) => setTimeout(r, 30));
    b.d.run(toDirector(MAC_B, { ...flow, flags: TCP_FLAGS.SYN }));
    const mine = b.d.maps.conns.lookup(flowKey(40003, 80))!;
    expect(sa.flush()).toBe(1);
    await until('B to judge the entry', () => sb.status().counters.older >= 1);
    expect(b.d.maps.conns.lookup(flowKey(40003, 80))).toEqual(mine);

    // Forged (another key) and replayed (a datagram B already took) datagrams change nothing and are counted.
    const entry = {
      proto: 6,
      family: 2,
      client: ip16(CLIENT),
      clientPort: 40004,
      vaddr: ip16(VIP),
      vport: 80,
      svcAddr: ip16(VIP),
      svcPrefix: 32,
      svcPort: 80,
      rsFamily: 2,
      rsAddr: ip16(RS1.addr),
      rsPort: 80,
      state: ConnState.Established,
      ageMs: 0,
      remainingMs: 900_000,
    };
    const header = { sender: 42n, sequence: 1n, sentMs: Date.now() };
    const sock = dgram.createSocket('udp4');
    cleanup.push(() => sock.close());
    const send = (buf: Buffer) => new Promise<void>((res, rej) => sock.send(buf, sb.listenPort!, '127.0.0.1', (e) => (e ? rej(e) : res())));
    await send(encodeDatagram(randomBytes(32), header, [entry]));
    await until('the forgery to be rejected', () => sb.status().counters.rejectedAuth === 1);
    expect(b.d.maps.conns.lookup(flowKey(40004, 80))).toBeUndefined();

    const genuine = encodeDatagram(KEY, header, [entry]);
    await send(genuine);
    await until('the genuine datagram to be applied', () => sb.status().counters.applied === 1);
    b.d.maps.conns.delete(flowKey(40004, 80));
    await send(genuine);
    await until('the replay to be rejected', () => sb.status().counters.rejectedReplay === 1);
    expect(b.d.maps.conns.lookup(flowKey(40004, 80))).toBeUndefined();

    // A datagram recorded long ago (its sender's clock an hour behind) is refused even under a new sender id.
    await send(encodeDatagram(KEY, { sender: 43n, sequence: 1n, sentMs: Date.now() - 3_600_000 }, [entry]));
    await until('the stale datagram to be rejected', () => sb.status().counters.rejectedStale === 1);
    expect(b.d.maps.conns.lookup(flowKey(40004, 80))).toBeUndefined();
  });

  it('emits nothing while sync is off, and counts the events a full ring loses', async () => {
    const a = side(MAC_A, 0, 80, [{ id: 3, ...RS1 }]);
    cleanup.push(() => a.d.close());
    const ctl = a.d.maps.backend.map('sync_ctl');
    const drops = () => {
      const raw = a.d.maps.backend.map('sync_drops').lookup(Buffer.alloc(4))!;
      let n = 0;
      for (let off = 0; off < raw.length; off += 8) n += Number(raw.readBigUInt64LE(off));
      return n;
    };
    expect(SyncCtl.decode(ctl.lookup(Buffer.alloc(4))!).enabled).toBe(0);

    // On, with nobody draining: 1 MiB holds 13107 records (72 bytes and an 8-byte header each); more are lost and
    // counted.
    ctl.update(Buffer.alloc(4), SyncCtl.encode({ enabled: 1 }));
    const fit = Math.floor((1 << 20) / (72 + 8));
    const flows = fit + 500;
    for (let i = 0; i < flows; i++) {
      const r = testRun(a.d.programFd, toDirector(MAC_A, { src: `198.18.${100 + (i >> 8)}.${i & 255}`, dst: VIP, proto: 'tcp', sport: 1024, dport: 80, flags: TCP_FLAGS.SYN }));
      expect(r.retval).toBe(3); // XDP_TX
    }
    expect(drops()).toBe(flows - fit);

    // A sync that starts now reads what the ring holds, and reports the losses.
    const s = await ConnSync.start({ backend: a.d.maps.backend, directory: () => a.directory, key: KEY, peers: [{ host: '127.0.0.1', port: 9 }], intervalMs: 1_000_000 });
    cleanup.push(() => s.stop());
    s.flush();
    expect(s.status().counters).toMatchObject({ events: fit, ringDrops: flows - fit });
    s.stop();
    expect(SyncCtl.decode(ctl.lookup(Buffer.alloc(4))!).enabled).toBe(0);
    const runsBefore = drops();
    a.d.run(toDirector(MAC_A, { src: CLIENT, dst: VIP, proto: 'tcp', sport: 50000, dport: 80, flags: TCP_FLAGS.SYN }));
    expect(drops()).toBe(runsBefore);
  });
});
