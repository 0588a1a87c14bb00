// Connection synchronisation between directors (docs/sync.md): the data plane's events (ring `sync_events`) become
// authenticated UDP datagrams to the peers; the peers' datagrams become entries of this director's `conns`.

import { randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import { isIP } from 'node:net';
import { ErrorCode, XdpvsError } from '../errors.js';
import { checkMapShape } from '../loader/kernel-backend.js';
import { RingReader } from '../loader/ring-buffer.js';
import { UpdateFlag, perCpuStride, type BpfMap, type MapBackend } from '../maps/backend.js';
import { entriesOf } from '../maps/sched-maps.js';
import { Conn, FlowKey, SyncCtl, SyncEvent, type ConnV } from '../maps/structs.js';
import { applyEntry, entryFlowKey, entryLastNs, type ApplyOutcome, type ConnTables } from './apply.js';
import { Directory, type DirectoryService } from './directory.js';
import { ReplayGuard, type Verdict } from './replay.js';
import { MAX_ENTRIES, decodeDatagram, encodeDatagram, type SyncEntry } from './wire.js';

/** How often the ring is drained and the queue sent (ms). */
export const DEFAULT_INTERVAL_MS = 20;
/** Most events waiting to be sent; more are dropped (and counted) until the queue drains. */
export const DEFAULT_MAX_QUEUE = 65536;
/**
 * How often live connections that saw packets since the last time are announced again (ms): the data plane reports
 * only creations and state changes, and a peer's copy would otherwise expire under a flow that stays in one state
 * longer than its timeout (a UDP flow after 300 s, an established one after 900 s).
 */
export const DEFAULT_REFRESH_MS = 60_000;
/** Most datagrams sent to each peer per interval: 256 x 15 entries every 20 ms is 192000 connections/s. */
const MAX_DATAGRAMS_PER_TICK = 256;
/** A peer seen starting (a new sender id) is sent every live connection, at most this often (ms). */
const PEER_START_DUMP_MS = 1_000;
/** Sender ids remembered to tell a peer's start from its next datagram; past it the set starts again. */
const MAX_SENDERS = 1024;
/** Most peer entries remembered between two refreshes (the default connection table's size); past it, see #learnt. */
const MAX_LEARNT = 262144;

export interface SyncAddress {
  host: string;
  port: number;
}

export interface ConnSyncOptions {
  /** The director's maps (a kernel backend: the ring buffer is read through libbpf). */
  backend: MapBackend;
  /** The services and real servers now (Balancer.syncDirectory). */
  directory: () => readonly DirectoryService[];
  /** The shared key (src/sync/key.ts). */
  key: Buffer;
  /** Where to receive the peers' datagrams; none: send only. */
  listen?: SyncAddress;
  /** Where to send; none: receive only (the data plane then emits nothing). */
  peers: readonly SyncAddress[];
  intervalMs?: number;
  maxQueue?: number;
  refreshMs?: number;
  /** The data plane's clock (CLOCK_MONOTONIC, ns) and the wall clock (ms), replaceable for tests. */
  nowNs?: () => number;
  nowMs?: () => number;
  log?: (level: 'info' | 'warn', msg: string, fields?: Record<string, unknown>) => void;
}

export interface SyncCounters {
  /** Events read from the data plane's ring. */
  events: number;
  /** Peers seen starting (a datagram under a sender id not seen before): each time every live connection is sent. */
  peerStarts: number;
  /** Events the data plane could not queue: the ring was full (map `sync_drops`). */
  ringDrops: number;
  /** Events dropped here: the send queue was full. */
  queueDrops: number;
  /** Live connections queued again by the periodic refresh. */
  refreshed: number;
  /** Events whose destination no longer holds that real server (removed meanwhile): not sent. */
  unmapped: number;
  sentEntries: number;
  sentDatagrams: number;
  sendErrors: number;
  receivedDatagrams: number;
  receivedEntries: number;
  /** Entries written into `conns`. */
  applied: number;
  /** Entries for a service or real server this director does not have. */
  unknown: number;
  /** Entries older than what this director holds. */
  older: number;
  /** Entries with fields no data plane writes. */
  invalid: number;
  /** Datagrams whose MAC did not match (another key, or forged). */
  rejectedAuth: number;
  /** Datagrams that are not sync datagrams of this version. */
  rejectedMalformed: number;
  /** Authenticated datagrams seen before (or our own, reflected). */
  rejectedReplay: number;
  /** Authenticated datagrams whose sender's clock is too far from ours. */
  rejectedStale: number;
}

export interface SyncStatus {
  /** This daemon's sender id (hex), as peers count it. */
  sender: string;
  listen: string | null;
  peers: string[];
  /** Events waiting to be sent. */
  queued: number;
  counters: SyncCounters;
}

function endpointText(a: SyncAddress): string {
  return isIP(a.host) === 6 ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`;
}

function flowId(e: { src: Buffer; dst: Buffer; sport: number; dport: number; proto: number }): string {
  return `${e.src.toString('hex')}${e.dst.toString('hex')}${e.sport}/${e.dport}/${e.proto}`;
}

type Event = Omit<ReturnType<typeof SyncEvent.decode>, 'pad0' | 'pad1'>;

/** Switches the data plane's events off (a director started without peers, after one that had them). */
export function disableSyncEvents(backend: MapBackend): void {
  const ctl = backend.map('sync_ctl');
  checkMapShape(ctl, 4, SyncCtl.size);
  ctl.update(Buffer.alloc(4), SyncCtl.encode({ enabled: 0 }), UpdateFlag.Any);
}

export class ConnSync {
  readonly #opts: ConnSyncOptions;
  readonly #sender = randomBytes(8).readBigUInt64BE(0);
  readonly #guard: ReplayGuard;
  readonly #tables: ConnTables;
  readonly #ctl: BpfMap;
  readonly #drops: BpfMap;
  readonly #ring: RingReader | null;
  readonly #sockets = new Map<4 | 6, dgram.Socket>();
  #listenSocket: dgram.Socket | null = null;
  #queue: Event[] = [];
  #sequence = 0n;
  #timer: NodeJS.Timeout | null = null;
  #dir: { at: number; dir: Directory } | null = null;
  /** When the refresh last ran (data plane clock, ns): entries with a packet since then are announced again. */
  #refreshedAt = 0;
  /** Peers' sender ids heard so far (a new one is a peer that started), and when a dump last went out (ms). */
  readonly #senders = new Set<bigint>();
  #lastDumpMs = -Infinity;
  /**
   * Flows written from a peer's datagram since the last refresh (key bytes as latin1 -> the last_ns written). The
   * refresh skips those still as written, so a peer's own connections are not sent back to it; the data plane
   * writing a new last_ns (traffic here, after a failover) makes them ours to announce. Past MAX_LEARNT, the others
   * are sent back, which the peer counts as `older` (its entry is as recent) or takes as the same entry.
   */
  #learnt = new Map<string, number>();
  readonly #c: SyncCounters = {
    events: 0,
    peerStarts: 0,
    ringDrops: 0,
    queueDrops: 0,
    refreshed: 0,
    unmapped: 0,
    sentEntries: 0,
    sentDatagrams: 0,
    sendErrors: 0,
    receivedDatagrams: 0,
    receivedEntries: 0,
    applied: 0,
    unknown: 0,
    older: 0,
    invalid: 0,
    rejectedAuth: 0,
    rejectedMalformed: 0,
    rejectedReplay: 0,
    rejectedStale: 0,
  };

  private constructor(opts: ConnSyncOptions) {
    this.#opts = opts;
    this.#guard = new ReplayGuard(this.#sender);
    const { backend } = opts;
    this.#tables = {
      conns: backend.map('conns'),
      natReverse: backend.map('nat_reverse'),
      svcPersist: backend.map('svc_persist'),
      persist: backend.map('persist'),
    };
    this.#ctl = backend.map('sync_ctl');
    this.#drops = backend.map('sync_drops');
    checkMapShape(this.#ctl, 4, SyncCtl.size);
    checkMapShape(this.#drops, 4, 8);
    this.#ring = opts.peers.length > 0 ? new RingReader(backend.map('sync_events')) : null;
  }

  /**
   * Binds the listening socket, switches the data plane's events on when there are peers, and starts draining.
   * Throws XDPVS_ERR_INVALID when neither peers nor a listen address are given, or the address cannot be bound.
   */
  static async start(opts: ConnSyncOptions): Promise<ConnSync> {
    if (opts.peers.length === 0 && !opts.listen) {
      throw new XdpvsError(ErrorCode.Invalid, 'connection sync needs a peer to send to (--sync-peer) or an address to listen on (--sync-listen)');
    }
    const s = new ConnSync(opts);
    try {
      if (opts.listen) await s.#bind(opts.listen);
      s.#setEnabled(opts.peers.length > 0);
    } catch (e) {
      s.#closeSockets();
      s.#ring?.close();
      throw e;
    }
    s.#refreshedAt = s.#nowNs();
    // A hello: peers that hold connections (this director was down, or is new) send them now, not at their next
    // refresh up to a minute later — the VIP may be coming back to this director sooner than that.
    if (opts.peers.length > 0) s.#send([]);
    s.#timer = setInterval(() => s.#tick(), opts.intervalMs ?? DEFAULT_INTERVAL_MS);
    s.#timer.unref();
    return s;
  }

  #nowNs(): number {
    return this.#opts.nowNs ? this.#opts.nowNs() : Number(process.hrtime.bigint());
  }

  #nowMs(): number {
    return this.#opts.nowMs ? this.#opts.nowMs() : Date.now();
  }

  async #bind(at: SyncAddress): Promise<void> {
    const fam = isIP(at.host) === 6 ? 6 : 4;
    const sock = dgram.createSocket({ type: fam === 6 ? 'udp6' : 'udp4', reuseAddr: false });
    await new Promise<void>((resolve, reject) => {
      sock.once('error', (e) => {
        sock.close();
        reject(new XdpvsError(ErrorCode.Invalid, `cannot listen for sync datagrams on ${endpointText(at)}: ${e.message}`, { field: 'syncListen' }));
      });
      sock.bind(at.port, at.host, () => resolve());
    });
    sock.on('error', (e) => this.#opts.log?.('warn', `sync socket: ${e.message}`));
    sock.on('message', (buf) => this.#receive(buf));
    this.#listenSocket = sock;
    // Datagrams to peers of this family leave from the listening address, which peers may filter on.
    this.#sockets.set(fam, sock);
  }

  #socketFor(host: string): dgram.Socket {
    const fam = isIP(host) === 6 ? 6 : 4;
    let s = this.#sockets.get(fam);
    if (!s) {
      s = dgram.createSocket(fam === 6 ? 'udp6' : 'udp4');
      s.on('error', (e) => this.#opts.log?.('warn', `sync socket: ${e.message}`));
      s.unref();
      this.#sockets.set(fam, s);
    }
    return s;
  }

  #setEnabled(on: boolean): void {
    const k = Buffer.alloc(4);
    this.#ctl.update(k, SyncCtl.encode({ enabled: on ? 1 : 0 }), UpdateFlag.Any);
  }

  #directory(): Directory {
    // Rebuilt at most once per interval: a burst of datagrams does not walk every service for each.
    const now = this.#nowMs();
    if (!this.#dir || now - this.#dir.at >= (this.#opts.intervalMs ?? DEFAULT_INTERVAL_MS)) this.#dir = { at: now, dir: new Directory(this.#opts.directory()) };
    return this.#dir.dir;
  }

  #tick(): void {
    try {
      if (this.#ring && this.#nowNs() - this.#refreshedAt >= (this.#opts.refreshMs ?? DEFAULT_REFRESH_MS) * 1e6) this.refresh();
      this.flush();
    } catch (e) {
      this.#opts.log?.('warn', `connection sync: ${(e as Error).message}`);
    }
  }

  /** Drains the ring into the queue, and sends what the queue holds (at most MAX_DATAGRAMS_PER_TICK). Returns entries sent. */
  flush(): number {
    if (!this.#ring) return 0;
    const max = this.#opts.maxQueue ?? DEFAULT_MAX_QUEUE;
    this.#ring.drain((rec) => {
      this.#c.events++;
      // Drained even when the queue is full, so that the ring keeps room for what comes after.
      if (this.#queue.length >= max) this.#c.queueDrops++;
      else this.#queue.push(SyncEvent.decode(rec));
    });
    if (this.#queue.length === 0) return 0;
    const take = this.#queue.splice(0, MAX_ENTRIES * MAX_DATAGRAMS_PER_TICK);
    // A flow's newer event replaces its older ones of the same round (a SYN's SYN_RECV, then ESTABLISHED).
    const latest = new Map<string, Event>();
    for (const ev of take) {
      const id = flowId(ev);
      latest.delete(id);
      latest.set(id, ev);
    }
    const dir = new Directory(this.#opts.directory());
    const nowNs = this.#nowNs();
    const entries: SyncEntry[] = [];
    for (const ev of latest.values()) {
      const e = this.#entryOf(dir, ev, nowNs);
      if (e) entries.push(e);
    }
    for (let i = 0; i < entries.length; i += MAX_ENTRIES) this.#send(entries.slice(i, i + MAX_ENTRIES));
    return entries.length;
  }

  /**
   * A peer started (or this daemon hears it for the first time): it may hold none of the connections, so every
   * live one is queued, those learnt from peers included (the peer may be where they came from). Rate-limited:
   * a dump goes to every peer, so peers starting together share one.
   */
  #dumpForPeer(): void {
    if (!this.#ring) return;
    const nowMs = this.#nowMs();
    if (nowMs - this.#lastDumpMs < PEER_START_DUMP_MS) return;
    this.#lastDumpMs = nowMs;
    this.#c.refreshed += this.#queueLive(this.#nowNs(), () => true);
  }

  /**
   * Queues again every live connection that saw a packet since the last refresh (read from `conns`, as the upkeep
   * does each second), except those written from a peer's datagram and untouched since. Returns how many were
   * queued.
   */
  refresh(): number {
    const now = this.#nowNs();
    const since = this.#refreshedAt;
    this.#refreshedAt = now;
    const learnt = this.#learnt;
    this.#learnt = new Map();
    const n = this.#queueLive(now, (k, c) => c.last_ns > since && learnt.get(k.toString('latin1')) !== c.last_ns);
    this.#c.refreshed += n;
    return n;
  }

  /** Queues every connection of `conns` alive at `now` that `keep` accepts, as events; returns how many. */
  #queueLive(now: number, keep: (key: Buffer, c: ConnV) => boolean): number {
    const max = this.#opts.maxQueue ?? DEFAULT_MAX_QUEUE;
    let n = 0;
    for (const [k, v] of entriesOf(this.#tables.conns)) {
      const c = Conn.decode(v);
      if (c.expires_ns <= now || !keep(k, c)) continue;
      if (this.#queue.length >= max) {
        this.#c.queueDrops++;
        continue;
      }
      this.#queue.push({ ...FlowKey.decode(k), state: c.state, dest_id: c.dest_id, dest_gen: c.dest_gen, svc_id: c.svc_id, last_ns: c.last_ns, expires_ns: c.expires_ns });
      n++;
    }
    return n;
  }

  #entryOf(dir: Directory, ev: Event, nowNs: number): SyncEntry | undefined {
    const names = dir.byId(ev.svc_id, ev.dest_id, ev.dest_gen);
    if (!names) {
      this.#c.unmapped++;
      return undefined;
    }
    const remainingMs = Math.floor((ev.expires_ns - nowNs) / 1e6);
    if (remainingMs <= 0) return undefined;
    return {
      proto: ev.proto,
      family: ev.family,
      client: ev.src,
      clientPort: ev.sport,
      vaddr: ev.dst,
      vport: ev.dport,
      svcAddr: names.service.addr,
      svcPrefix: names.service.prefix,
      svcPort: names.service.port,
      rsFamily: names.server.family,
      rsAddr: names.server.addr,
      rsPort: names.server.port,
      state: ev.state,
      ageMs: Math.max(0, Math.floor((nowNs - ev.last_ns) / 1e6)),
      remainingMs,
    };
  }

  #send(entries: SyncEntry[]): void {
    this.#sequence++;
    const buf = encodeDatagram(this.#opts.key, { sender: this.#sender, sequence: this.#sequence, sentMs: this.#nowMs() }, entries);
    this.#c.sentDatagrams++;
    this.#c.sentEntries += entries.length;
    for (const peer of this.#opts.peers) {
      this.#socketFor(peer.host).send(buf, peer.port, peer.host, (err) => {
        if (err) this.#c.sendErrors++;
      });
    }
  }

  #receive(buf: Buffer): void {
    this.#c.receivedDatagrams++;
    const d = decodeDatagram(this.#opts.key, buf);
    if (!d.ok) {
      if (d.reason === 'auth') this.#c.rejectedAuth++;
      else this.#c.rejectedMalformed++;
      return;
    }
    const verdict: Verdict = this.#guard.check(d.header.sender, d.header.sequence, d.header.sentMs, this.#nowMs());
    if (verdict === 'stale') this.#c.rejectedStale++;
    if (verdict === 'replay' || verdict === 'own') this.#c.rejectedReplay++;
    if (verdict !== 'fresh') return;
    if (!this.#senders.has(d.header.sender)) {
      if (this.#senders.size >= MAX_SENDERS) this.#senders.clear();
      this.#senders.add(d.header.sender);
      this.#c.peerStarts++;
      this.#dumpForPeer();
    }
    this.#c.receivedEntries += d.entries.length;
    const dir = this.#directory();
    const nowNs = this.#nowNs();
    for (const e of d.entries) {
      let r: ApplyOutcome;
      try {
        r = applyEntry(this.#tables, dir, e, nowNs);
        if (r === 'applied' && this.#learnt.size < MAX_LEARNT) this.#learnt.set(entryFlowKey(e).toString('latin1'), entryLastNs(e, nowNs));
      } catch (err) {
        this.#opts.log?.('warn', `connection sync: cannot write a peer's entry: ${(err as Error).message}`);
        r = 'invalid';
      }
      this.#c[r]++;
    }
  }

  /** The port the listening socket was bound to (the kernel's choice when --sync-listen gave 0), or null. */
  get listenPort(): number | null {
    return this.#listenSocket ? this.#listenSocket.address().port : null;
  }

  /** The counters, with the data plane's ring drops summed over its CPUs. */
  status(): SyncStatus {
    const raw = this.#drops.lookup(Buffer.alloc(4));
    let ringDrops = 0;
    if (raw) for (let off = 0; off + 8 <= raw.length; off += perCpuStride(8)) ringDrops += Number(raw.readBigUInt64LE(off));
    return {
      sender: this.#sender.toString(16).padStart(16, '0'),
      listen: this.#opts.listen ? endpointText(this.#opts.listen) : null,
      peers: this.#opts.peers.map(endpointText),
      queued: this.#queue.length,
      counters: { ...this.#c, ringDrops },
    };
  }

  #closeSockets(): void {
    for (const s of new Set([...this.#sockets.values(), ...(this.#listenSocket ? [this.#listenSocket] : [])])) s.close();
    this.#sockets.clear();
    this.#listenSocket = null;
  }

  /** Stops draining and listening, and switches the data plane's events off (nobody would read them). */
  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
    try {
      this.#setEnabled(false);
    } catch (e) {
      this.#opts.log?.('warn', `connection sync: cannot switch the data plane's events off: ${(e as Error).message}`);
    }
    this.#ring?.close();
    this.#closeSockets();
  }
}

