// The desired state (services and their real servers) and its reconciliation into the data plane's maps.
// Every operation validates everything first, then writes in an order packets can never observe half done:
// destination records before the schedule table that names them, the table before the service record that
// points at it (one atomic hash-map update), and only then forgets what packets no longer see.

import { ErrorCode, XdpvsError } from '../errors.js';
import type { LbMaps } from '../maps/lb-maps.js';
import {
  AF_INET,
  AF_INET6,
  ConnState,
  DEST_F_MAC_VALID,
  FWD_METHODS,
  IPPROTO_TCP,
  IPPROTO_UDP,
  SVC_F_HASH_PORT,
  type ServiceKeyV,
} from '../maps/structs.js';
import { addressFromData, addressToData, formatEndpoint, parseAddress, parseEndpoint, parsePort, type IpAddress } from './address.js';
import {
  DEFAULT_METHOD,
  DEFAULT_SCHEDULER,
  DEFAULT_WEIGHT,
  MAX_WEIGHT,
  type Counters,
  type Method,
  type Protocol,
  type RealServerPatch,
  type RealServerSpec,
  type RealServerView,
  type ServicePatch,
  type ServiceSpec,
  type ServiceView,
} from './model.js';
import type { NeighbourResolver, NextHop } from './neighbour.js';
import { buildSchedule, parseScheduler, type SchedulerInfo } from './schedulers.js';

/** Methods the data plane forwards today; the others are refused with XDPVS_ERR_UNSUPPORTED. */
const IMPLEMENTED_METHODS: readonly Method[] = ['dr'];

interface RealServer {
  address: IpAddress;
  port: number;
  method: Method;
  weight: number;
  destId: number;
  gen: number;
  hop: NextHop;
}

interface Service {
  protocol: Protocol;
  address: IpAddress;
  port: number;
  scheduler: SchedulerInfo;
  flags: string[];
  id: number;
  /** Which of the service's two ring slots packets use now (0 or 1). */
  activeSlot: 0 | 1;
  /** Insertion order is scheduling order for rr and wrr. */
  servers: Map<string, RealServer>;
}

/** What the daemon writes to its state file and reads back at start (ids included, so pinned conns stay valid). */
export interface PersistedState {
  version: 1;
  nextGen: number;
  /** Destination ids of removed real servers that connections may still use; reused last. */
  quarantine: number[];
  services: {
    protocol: Protocol;
    address: string;
    port: number;
    scheduler: string;
    flags: string[];
    id: number;
    servers: { address: string; port: number; method: Method; weight: number; destId: number; gen: number }[];
  }[];
}

export interface BalancerOptions {
  /** Called after every committed change, with the state to persist. */
  onChange?: (state: PersistedState) => void;
  /** Monotonic clock in ns, the data plane's bpf_ktime_get_ns(). */
  nowNs?: () => number;
  log?: (level: 'info' | 'warn', msg: string, fields?: Record<string, unknown>) => void;
}

function invalid(message: string, details: Record<string, unknown> = {}): XdpvsError {
  return new XdpvsError(ErrorCode.Invalid, message, details);
}

function serviceName(protocol: Protocol, address: IpAddress, port: number): string {
  return `${protocol}:${formatEndpoint(address, port)}`;
}

function macText(mac: Buffer | undefined): string | null {
  return mac ? [...mac].map((b) => b.toString(16).padStart(2, '0')).join(':') : null;
}

function checkWeight(w: unknown): number {
  if (typeof w !== 'number' || !Number.isInteger(w) || w < 0 || w > MAX_WEIGHT) {
    throw invalid(`invalid weight ${JSON.stringify(w)} (expected an integer 0..${MAX_WEIGHT})`, { field: 'weight' });
  }
  return w;
}

function checkMethod(m: unknown): Method {
  if (!FWD_METHODS.includes(m as Method)) {
    throw invalid(`invalid forwarding method ${JSON.stringify(m)} (expected ${FWD_METHODS.join(', ')})`, { field: 'method' });
  }
  if (!IMPLEMENTED_METHODS.includes(m as Method)) {
    throw new XdpvsError(ErrorCode.Unsupported, `forwarding method "${m}" is not implemented yet (direct routing "dr" is)`, { field: 'method' });
  }
  return m as Method;
}

function checkProtocol(p: unknown): Protocol {
  if (p !== 'tcp' && p !== 'udp') throw invalid(`invalid protocol ${JSON.stringify(p)} (expected tcp or udp)`, { field: 'protocol' });
  return p;
}

function checkFlags(sched: SchedulerInfo, flags: unknown): string[] {
  if (flags === undefined) return [];
  if (!Array.isArray(flags) || flags.some((f) => typeof f !== 'string')) throw invalid('flags must be a list of strings', { field: 'flags' });
  for (const f of flags) {
    if (!sched.flags.includes(f)) {
      throw invalid(`scheduler ${sched.name} does not take flag "${f}"${sched.flags.length ? ` (it takes ${sched.flags.join(', ')})` : ''}`, { field: 'flags' });
    }
  }
  return [...new Set(flags as string[])];
}

export class Balancer {
  private readonly services = new Map<string, Service>();
  private readonly freeServiceIds: number[];
  private readonly freeDestIds: number[];
  private quarantine: number[] = [];
  private nextGen = 1;
  private queue: Promise<unknown> = Promise.resolve();
  private readonly nowNs: () => number;

  constructor(
    private readonly maps: LbMaps,
    private readonly resolver: NeighbourResolver,
    private readonly opts: BalancerOptions = {},
  ) {
    this.freeServiceIds = Array.from({ length: maps.maxServices }, (_, i) => i);
    this.freeDestIds = Array.from({ length: maps.maxDests }, (_, i) => i);
    this.nowNs = opts.nowNs ?? (() => Number(process.hrtime.bigint()));
  }

  /** Runs mutations one at a time: they await the network (neighbour resolution) between validation and writes. */
  private serial<T>(fn: () => Promise<T> | T): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  private changed(): void {
    this.opts.onChange?.(this.exportState());
  }

  // ---- lookups -------------------------------------------------------------------------------------------

  private findService(name: string): Service {
    const svc = this.services.get(this.normaliseServiceName(name));
    if (!svc) throw new XdpvsError(ErrorCode.NotFound, `no such service ${name}`, { service: name });
    return svc;
  }

  /** Accepts `tcp:ADDR:PORT` with any spelling of the address and returns the canonical name. */
  normaliseServiceName(name: string): string {
    const m = /^(tcp|udp):(.+)$/i.exec(name);
    if (!m) throw invalid(`invalid service "${name}" (expected tcp:ADDR:PORT or udp:ADDR:PORT)`);
    const ep = parseEndpoint(m[2]);
    return serviceName(m[1].toLowerCase() as Protocol, ep.address, ep.port);
  }

  private findServer(svc: Service, name: string): RealServer {
    const ep = parseEndpoint(name, { portOptional: true });
    const rs = svc.servers.get(formatEndpoint(ep.address, ep.port ?? svc.port));
    if (!rs) throw new XdpvsError(ErrorCode.NotFound, `no such real server ${name} in service ${serviceName(svc.protocol, svc.address, svc.port)}`);
    return rs;
  }

  // ---- reads ---------------------------------------------------------------------------------------------

  listServices(): ServiceView[] {
    const counts = this.connCounts();
    return [...this.services.values()].map((s) => this.view(s, counts));
  }

  getService(name: string): ServiceView {
    return this.view(this.findService(name), this.connCounts());
  }

  getServer(svcName: string, rsName: string): RealServerView {
    const svc = this.findService(svcName);
    return this.serverView(this.findServer(svc, rsName), this.connCounts());
  }

  get connTableSize(): number {
    return this.maps.connTableSize;
  }

  reasons() {
    return this.maps.reasonCounts();
  }

  /** Active (ESTABLISHED) and inactive connections per destination id, from the live connection table. */
  private connCounts(): Map<number, { active: number; inactive: number }> {
    const now = this.nowNs();
    const out = new Map<number, { active: number; inactive: number }>();
    for (const { value } of this.maps.connections()) {
      if (value.expires_ns <= now) continue;
      let c = out.get(value.dest_id);
      if (!c) out.set(value.dest_id, (c = { active: 0, inactive: 0 }));
      if (value.state === ConnState.Established) c.active++;
      else c.inactive++;
    }
    return out;
  }

  private view(s: Service, counts: Map<number, { active: number; inactive: number }>): ServiceView {
    return {
      id: serviceName(s.protocol, s.address, s.port),
      protocol: s.protocol,
      address: s.address.text,
      port: s.port,
      family: s.address.family,
      scheduler: s.scheduler.name,
      flags: [...s.flags],
      stats: this.maps.serviceStats(s.id) as Counters,
      servers: [...s.servers.values()].map((rs) => this.serverView(rs, counts)),
    };
  }

  private serverView(rs: RealServer, counts: Map<number, { active: number; inactive: number }>): RealServerView {
    const c = counts.get(rs.destId) ?? { active: 0, inactive: 0 };
    return {
      id: formatEndpoint(rs.address, rs.port),
      address: rs.address.text,
      port: rs.port,
      method: rs.method,
      weight: rs.weight,
      activeConns: c.active,
      inactiveConns: c.inactive,
      neighbour: { resolved: rs.hop.mac !== undefined, mac: macText(rs.hop.mac), interface: rs.hop.ifname },
      stats: this.maps.destStatsOf(rs.destId) as Counters,
    };
  }

  // ---- services ------------------------------------------------------------------------------------------

  addService(spec: ServiceSpec): Promise<ServiceView> {
    return this.serial(() => {
      const protocol = checkProtocol(spec.protocol);
      const address = parseAddress(spec.address);
      const port = parsePort(spec.port);
      const scheduler = parseScheduler(spec.scheduler ?? DEFAULT_SCHEDULER);
      const flags = checkFlags(scheduler, spec.flags);
      const name = serviceName(protocol, address, port);
      if (this.services.has(name)) throw new XdpvsError(ErrorCode.Exists, `service ${name} already exists`, { service: name });
      const id = this.freeServiceIds.shift();
      if (id === undefined) throw new XdpvsError(ErrorCode.Capacity, `no room for another service (the data plane holds ${this.maps.maxServices})`);
      const svc: Service = { protocol, address, port, scheduler, flags, id, activeSlot: 0, servers: new Map() };
      try {
        this.maps.resetSchedState(id);
        this.maps.zeroServiceStats(id);
        this.publish(svc, []);
      } catch (e) {
        this.freeServiceIds.unshift(id);
        throw e;
      }
      this.services.set(name, svc);
      this.changed();
      return this.view(svc, new Map());
    });
  }

  editService(name: string, patch: ServicePatch): Promise<ServiceView> {
    return this.serial(() => {
      const svc = this.findService(name);
      const scheduler = patch.scheduler !== undefined ? parseScheduler(patch.scheduler) : svc.scheduler;
      const flags = patch.flags !== undefined ? checkFlags(scheduler, patch.flags) : checkFlags(scheduler, svc.flags);
      const next: Service = { ...svc, scheduler, flags };
      this.publish(next, [...svc.servers.values()]);
      svc.scheduler = scheduler;
      svc.flags = flags;
      svc.activeSlot = next.activeSlot;
      this.changed();
      return this.view(svc, this.connCounts());
    });
  }

  deleteService(name: string): Promise<void> {
    return this.serial(() => {
      const svc = this.findService(name);
      this.removeService(svc);
      this.changed();
    });
  }

  /** ipvsadm -C. */
  clear(): Promise<number> {
    return this.serial(() => {
      const n = this.services.size;
      for (const svc of [...this.services.values()]) this.removeService(svc);
      this.changed();
      return n;
    });
  }

  private removeService(svc: Service): void {
    this.maps.deleteService(this.serviceKey(svc));
    this.maps.clearRing(svc.id * 2);
    this.maps.clearRing(svc.id * 2 + 1);
    // Destination records stay (quarantined) so that packets already in flight find them; ids are reused last.
    for (const rs of svc.servers.values()) this.retireDest(rs);
    this.services.delete(serviceName(svc.protocol, svc.address, svc.port));
    this.freeServiceIds.push(svc.id);
    void this.releaseUnused([...svc.servers.values()]);
  }

  // ---- real servers --------------------------------------------------------------------------------------

  addServer(svcName: string, spec: RealServerSpec): Promise<RealServerView> {
    return this.serial(async () => {
      const svc = this.findService(svcName);
      const address = parseAddress(spec.address);
      if (address.family !== svc.address.family) {
        throw new XdpvsError(
          ErrorCode.FamilyMismatch,
          `real server ${address.text} is ${address.family === 'inet' ? 'IPv4' : 'IPv6'} but service ${serviceName(svc.protocol, svc.address, svc.port)} is ${svc.address.family === 'inet' ? 'IPv4' : 'IPv6'}`,
        );
      }
      const method = checkMethod(spec.method ?? DEFAULT_METHOD);
      const port = spec.port === undefined ? svc.port : parsePort(spec.port);
      if (method !== 'nat' && port !== svc.port) {
        throw invalid(`real server port ${port} differs from the service port ${svc.port}: only NAT (-m) can map ports`, { field: 'port' });
      }
      const weight = checkWeight(spec.weight ?? DEFAULT_WEIGHT);
      const key = formatEndpoint(address, port);
      if (svc.servers.has(key)) throw new XdpvsError(ErrorCode.Exists, `real server ${key} already exists in service ${serviceName(svc.protocol, svc.address, svc.port)}`);
      const hop = await this.resolver.resolve(address.text, address.family);
      const destId = this.allocDest();
      const rs: RealServer = { address, port, method, weight, destId, gen: this.nextGen++, hop };
      try {
        this.maps.zeroDestStats(destId);
        this.writeDest(svc, rs);
        this.publish(svc, [...svc.servers.values(), rs]);
      } catch (e) {
        this.maps.clearDest(destId);
        this.freeDestIds.unshift(destId);
        throw e;
      }
      svc.servers.set(key, rs);
      if (!hop.mac) this.opts.log?.('warn', `real server ${address.text}: next hop not resolved yet; it takes no connections until it is`, { interface: hop.ifname });
      this.changed();
      return this.serverView(rs, new Map());
    });
  }

  editServer(svcName: string, rsName: string, patch: RealServerPatch): Promise<RealServerView> {
    return this.serial(() => {
      const svc = this.findService(svcName);
      const rs = this.findServer(svc, rsName);
      const weight = patch.weight !== undefined ? checkWeight(patch.weight) : rs.weight;
      const method = patch.method !== undefined ? checkMethod(patch.method) : rs.method;
      if (method !== 'nat' && rs.port !== svc.port) throw invalid(`real server port ${rs.port} differs from the service port ${svc.port}: only NAT (-m) can map ports`);
      // A new method gets a new destination record: established connections finish on their old path.
      const newPath = method !== rs.method;
      const next: RealServer = newPath ? { ...rs, weight, method, destId: this.allocDest(), gen: this.nextGen++ } : { ...rs, weight, method };
      try {
        if (newPath) this.maps.zeroDestStats(next.destId);
        this.writeDest(svc, next);
        this.publish(svc, [...svc.servers.values()].map((x) => (x === rs ? next : x)));
      } catch (e) {
        if (newPath) this.freeDestIds.unshift(next.destId);
        throw e;
      }
      if (newPath) this.retireDest(rs);
      Object.assign(rs, next);
      this.changed();
      return this.serverView(rs, this.connCounts());
    });
  }

  deleteServer(svcName: string, rsName: string): Promise<void> {
    return this.serial(() => {
      const svc = this.findService(svcName);
      const rs = this.findServer(svc, rsName);
      this.publish(svc, [...svc.servers.values()].filter((x) => x !== rs));
      svc.servers.delete(formatEndpoint(rs.address, rs.port));
      this.retireDest(rs);
      void this.releaseUnused([rs]);
      this.changed();
    });
  }

  /** Re-reads next hops of every real server and rewrites those that changed (MAC learnt, moved, lost). */
  refreshNeighbours(): Promise<number> {
    return this.serial(async () => {
      const all = [...this.services.values()].flatMap((svc) => [...svc.servers.values()].map((rs) => ({ svc, rs })));
      if (all.length === 0) return 0;
      const hops = await this.resolver.lookupAll(all.map(({ rs }) => ({ address: rs.address.text, family: rs.address.family })));
      const touched = new Set<Service>();
      for (const { svc, rs } of all) {
        const hop = hops.get(rs.address.text);
        if (!hop || sameHop(hop, rs.hop)) continue;
        const wasUsable = rs.hop.mac !== undefined;
        rs.hop = hop;
        this.writeDest(svc, rs);
        if (wasUsable !== (hop.mac !== undefined)) touched.add(svc);
        this.opts.log?.('info', `real server ${rs.address.text}: next hop now ${macText(hop.mac) ?? 'unresolved'} via ${hop.ifname}`);
      }
      for (const svc of touched) this.publish(svc, [...svc.servers.values()]);
      return touched.size;
    });
  }

  // ---- writing the data plane ----------------------------------------------------------------------------

  private serviceKey(svc: Pick<Service, 'protocol' | 'address' | 'port'>): ServiceKeyV {
    return {
      addr: addressToData(svc.address),
      port: svc.port,
      proto: svc.protocol === 'tcp' ? IPPROTO_TCP : IPPROTO_UDP,
      family: svc.address.family === 'inet' ? AF_INET : AF_INET6,
    };
  }

  private writeDest(svc: Service, rs: RealServer): void {
    this.maps.putDest(rs.destId, {
      addr: addressToData(rs.address),
      port: rs.port,
      family: rs.address.family === 'inet' ? AF_INET : AF_INET6,
      method: FWD_METHODS.indexOf(rs.method),
      gen: rs.gen,
      ifindex: rs.hop.ifindex,
      svc_id: svc.id,
      flags: rs.hop.mac ? DEST_F_MAC_VALID : 0,
      mac_dst: rs.hop.mac ?? Buffer.alloc(6),
      mac_src: rs.hop.srcMac,
    });
  }

  /**
   * Builds the schedule table of `servers` into the slot packets do not use, then switches the service record
   * to it in one update, then drops the old table. Sets svc.activeSlot on success.
   */
  private publish(svc: Service, servers: RealServer[]): void {
    const eligible = servers.filter((rs) => rs.weight > 0 && rs.hop.mac !== undefined);
    const table = buildSchedule(
      svc.scheduler.name,
      eligible.map((rs) => ({ key: formatEndpoint(rs.address, rs.port), weight: rs.weight })),
    );
    const destIds = Uint32Array.from(table, (i) => eligible[i].destId);
    const nextSlot: 0 | 1 = svc.activeSlot === 0 ? 1 : 0;
    const ringSlot = svc.id * 2 + nextSlot;
    if (destIds.length > 0) this.maps.writeRing(ringSlot, destIds);
    this.maps.putService(this.serviceKey(svc), {
      id: svc.id,
      sched: svc.scheduler.id,
      flags: svc.flags.some((f) => f.endsWith('-port')) ? SVC_F_HASH_PORT : 0,
      ring_slot: ringSlot,
      ring_len: destIds.length,
    });
    this.maps.clearRing(svc.id * 2 + svc.activeSlot);
    if (destIds.length === 0) this.maps.clearRing(ringSlot);
    svc.activeSlot = nextSlot;
  }

  private allocDest(): number {
    const id = this.freeDestIds.shift() ?? this.quarantine.shift();
    if (id === undefined) throw new XdpvsError(ErrorCode.Capacity, `no room for another real server (the data plane holds ${this.maps.maxDests})`);
    return id;
  }

  private retireDest(rs: RealServer): void {
    this.quarantine.push(rs.destId);
  }

  /** Stops keeping next hops resolved once no real server uses their address. */
  private async releaseUnused(gone: RealServer[]): Promise<void> {
    const inUse = new Set([...this.services.values()].flatMap((s) => [...s.servers.values()].map((rs) => rs.address.text)));
    for (const rs of gone) {
      if (inUse.has(rs.address.text)) continue;
      try {
        await this.resolver.release(rs.address.text, rs.address.family);
      } catch (e) {
        this.opts.log?.('warn', `could not release neighbour ${rs.address.text}: ${(e as Error).message}`);
      }
    }
  }

  // ---- persistence ---------------------------------------------------------------------------------------

  exportState(): PersistedState {
    return {
      version: 1,
      nextGen: this.nextGen,
      quarantine: [...this.quarantine],
      services: [...this.services.values()].map((s) => ({
        protocol: s.protocol,
        address: s.address.text,
        port: s.port,
        scheduler: s.scheduler.name,
        flags: [...s.flags],
        id: s.id,
        servers: [...s.servers.values()].map((rs) => ({
          address: rs.address.text,
          port: rs.port,
          method: rs.method,
          weight: rs.weight,
          destId: rs.destId,
          gen: rs.gen,
        })),
      })),
    };
  }

  /**
   * Rebuilds a saved state on an empty balancer, keeping service and destination ids so the pinned connection
   * table stays valid across a daemon restart, and removes services the maps hold that the state does not.
   */
  restore(state: PersistedState): Promise<void> {
    return this.serial(async () => {
      if (this.services.size > 0) throw new XdpvsError(ErrorCode.Internal, 'restore needs an empty balancer');
      if (state.version !== 1) throw invalid(`unknown state file version ${state.version}`);
      const usedSvc = new Set(state.services.map((s) => s.id));
      const usedDest = new Set(state.services.flatMap((s) => s.servers.map((r) => r.destId)));
      const quarantine = state.quarantine.filter((id) => !usedDest.has(id));
      const reserved = new Set([...usedDest, ...quarantine]);
      this.freeServiceIds.splice(0, Infinity, ...Array.from({ length: this.maps.maxServices }, (_, i) => i).filter((i) => !usedSvc.has(i)));
      this.freeDestIds.splice(0, Infinity, ...Array.from({ length: this.maps.maxDests }, (_, i) => i).filter((i) => !reserved.has(i)));
      this.quarantine = quarantine;
      this.nextGen = Math.max(state.nextGen, 1);

      const wanted = new Set<string>();
      for (const s of state.services) {
        const protocol = checkProtocol(s.protocol);
        const address = parseAddress(s.address);
        const scheduler = parseScheduler(s.scheduler);
        const svc: Service = { protocol, address, port: parsePort(s.port), scheduler, flags: checkFlags(scheduler, s.flags), id: s.id, activeSlot: 0, servers: new Map() };
        const current = this.maps.getService(this.serviceKey(svc));
        if (current && current.id === svc.id) svc.activeSlot = (current.ring_slot - svc.id * 2 === 1 ? 1 : 0);
        else {
          this.maps.resetSchedState(svc.id);
          this.maps.zeroServiceStats(svc.id);
        }
        for (const r of s.servers) {
          const rsAddr = parseAddress(r.address, address.family);
          let hop: NextHop;
          try {
            hop = await this.resolver.resolve(rsAddr.text, rsAddr.family);
          } catch (e) {
            this.opts.log?.('warn', `restoring ${rsAddr.text}: ${(e as Error).message}`);
            hop = { ifindex: 0, ifname: '?', srcMac: Buffer.alloc(6) };
          }
          const rs: RealServer = { address: rsAddr, port: r.port, method: checkMethod(r.method), weight: checkWeight(r.weight), destId: r.destId, gen: r.gen, hop };
          this.writeDest(svc, rs);
          svc.servers.set(formatEndpoint(rsAddr, r.port), rs);
        }
        this.publish(svc, [...svc.servers.values()]);
        const name = serviceName(protocol, address, svc.port);
        this.services.set(name, svc);
        wanted.add(name);
      }
      for (const key of this.maps.serviceKeys()) {
        const addr = addressFromData(key.addr, key.family);
        const name = serviceName(key.proto === IPPROTO_TCP ? 'tcp' : 'udp', addr, key.port);
        if (!wanted.has(name)) this.maps.deleteService(key);
      }
      this.changed();
    });
  }
}

function sameHop(a: NextHop, b: NextHop): boolean {
  return a.ifindex === b.ifindex && a.srcMac.equals(b.srcMac) && (a.mac === undefined ? b.mac === undefined : b.mac !== undefined && a.mac.equals(b.mac));
}
