// The desired state (services and their real servers) and its reconciliation into the data plane's maps.
// Every operation validates everything first, then writes in an order packets can never observe half done:
// destination records before the schedule table that names them, the table before the service record that
// points at it (one atomic hash-map update), and only then forgets what packets no longer see.

import { ErrorCode, XdpvsError } from '../errors.js';
import type { LbMaps } from '../maps/lb-maps.js';
import {
  AF_INET,
  AF_INET6,
  DEST_F_MAC_VALID,
  FWD_METHODS,
  IPPROTO_TCP,
  IPPROTO_UDP,
  type ServiceKeyV,
} from '../maps/structs.js';
import { addressFromData, addressToData, formatEndpoint, parseAddress, parseEndpoint, parsePort, type Family, type IpAddress } from './address.js';
import {
  DEFAULT_METHOD,
  DEFAULT_SCHEDULER,
  DEFAULT_WEIGHT,
  MAX_WEIGHT,
  type Counters,
  type HealthView,
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
import { SchedState, checkThreshold, serviceFlagBits, type DestCounts, type DestInfo, type DestAddress, type ServiceInfo } from './sched-sync.js';
import { checkPersistent, checkServicePort, isPrefixVip, netmaskText, parseNetmask, parseVip, parseVipEndpoint } from './vip.js';
import type { ConnectionView, TimeoutsView } from './model.js';
import { planConfig, rehearsalMaps, runSteps, summarise, type ConfigTarget } from './config.js';
import type { ConfigChanges, ConfigService, ConfigView } from './model.js';
import { RateEstimator } from './rates.js';
import { RingTables } from './ring-tables.js';

/** ipvsadm's MAX_TIMEOUT for --set (31 days). */
const MAX_TIMEOUT = 86400 * 31;

/** Methods the data plane forwards today; the others are refused with XDPVS_ERR_UNSUPPORTED. */
const IMPLEMENTED_METHODS: readonly Method[] = ['dr', 'tunnel', 'nat'];

/**
 * Methods whose real servers may sit behind a router, the next hop then being the gateway: a tunnel's outer packet
 * and a NAT'd packet are routed by their destination address (IPVS allows both); direct routing needs the link.
 */
const ROUTED_METHODS: readonly Method[] = ['tunnel', 'nat'];

interface RealServer {
  address: IpAddress;
  port: number;
  method: Method;
  weight: number;
  destId: number;
  gen: number;
  hop: NextHop;
  /** Set by the health monitor (src/health): whether it may take new connections, and at what weight. */
  health?: ServerHealth;
  /** -x / -y: connection thresholds, 0 for none (src/lb/sched-sync.ts). */
  upper: number;
  lower: number;
}

/** The health monitor's word on a real server (Balancer.setServerHealth). */
export interface ServerHealth {
  view: Omit<HealthView, 'effectiveWeight'>;
  /** False: out of rotation (failed check, or quorum lost with a sorry server); established connections go on. */
  eligible: boolean;
  /** MISC_CHECK misc_dynamic's weight, replacing the configured one while set. */
  weight?: number;
}

/** The weight the schedule table uses: 0 while the health monitor holds the server out. */
function effectiveWeight(rs: RealServer): number {
  if (!rs.health) return rs.weight;
  return rs.health.eligible ? (rs.health.weight ?? rs.weight) : 0;
}

interface Service {
  protocol: Protocol;
  address: IpAddress;
  port: number;
  scheduler: SchedulerInfo;
  flags: string[];
  id: number;
  /** Insertion order is scheduling order for rr and wrr. */
  servers: Map<string, RealServer>;
  /** -p: persistence timeout in seconds, 0 when not persistent; -M as a prefix length. */
  persistent: number;
  netmask: number;
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
    persistent?: number;
    netmask?: number;
    servers: { address: string; port: number; method: Method; weight: number; destId: number; gen: number; upper?: number; lower?: number }[];
  }[];
  /** ipvsadm --set (the data plane's `config` holds them too; this brings them back after xdpvsd --detach). */
  timeouts?: TimeoutsView;
}

export interface BalancerOptions {
  /** Called after every committed change, with the state to persist. */
  onChange?: (state: PersistedState) => void;
  /** Monotonic clock in ns, the data plane's bpf_ktime_get_ns(). */
  nowNs?: () => number;
  log?: (level: 'info' | 'warn', msg: string, fields?: Record<string, unknown>) => void;
  /**
   * Outer source address of tunnelled packets, per family (xdpvsd --tunnel-source). Without one, the address the
   * kernel would send from towards the real server (the egress interface's, `ip route get` prefsrc).
   */
  tunnelSources?: Partial<Record<Family, string>>;
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
    throw new XdpvsError(ErrorCode.Unsupported, `forwarding method "${m}" is not implemented yet (${IMPLEMENTED_METHODS.join(', ')} are)`, { field: 'method' });
  }
  return m as Method;
}

/** A real server of the service's family, except a tunnel, whose outer header may be of the other (as in IPVS). */
function checkFamily(svc: Pick<Service, 'protocol' | 'address' | 'port'>, address: IpAddress, method: Method): void {
  if (address.family === svc.address.family || method === 'tunnel') return;
  const fam = (f: Family) => (f === 'inet' ? 'IPv4' : 'IPv6');
  throw new XdpvsError(
    ErrorCode.FamilyMismatch,
    `real server ${address.text} is ${fam(address.family)} but service ${serviceName(svc.protocol, svc.address, svc.port)} is ${fam(svc.address.family)} (only tunnelling, -i, may cross families)`,
  );
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
  /** Set for exactly one serial() call: replaceConfig's steps run the public operations inside its own turn. */
  private bypassQueue = false;
  /** Committed changes since start (GET /v1/config's revision). */
  private revision = 0;
  /** While replaceConfig applies its steps: persist once at the end, not after each step. */
  private batching = false;
  private readonly rates = new RateEstimator();
  private readonly nowNs: () => number;
  private readonly tunnelSources: Partial<Record<Family, IpAddress>> = {};
  /** dest_sched, persistence, prefix services, count corrections (src/lb/sched-sync.ts). */
  private readonly sched: SchedState;
  /** Every service's schedule tables in `rings` (src/lb/ring-tables.ts). */
  private readonly rings: RingTables;

  constructor(
    private readonly maps: LbMaps,
    private readonly resolver: NeighbourResolver,
    private readonly opts: BalancerOptions = {},
  ) {
    this.freeServiceIds = Array.from({ length: maps.maxServices }, (_, i) => i);
    this.freeDestIds = Array.from({ length: maps.maxDests }, (_, i) => i);
    this.nowNs = opts.nowNs ?? (() => Number(process.hrtime.bigint()));
    this.sched = new SchedState(maps.backend);
    this.rings = new RingTables(maps);
    for (const [family, text] of Object.entries(opts.tunnelSources ?? {}) as [Family, string | undefined][]) {
      if (text === undefined) continue;
      const a = parseAddress(text);
      if (a.family !== family) throw invalid(`tunnel source ${text} is not an ${family === 'inet' ? 'IPv4' : 'IPv6'} address`, { field: 'tunnelSources' });
      this.tunnelSources[family] = a;
    }
  }

  /** The outer source of tunnelled packets to rs: the configured one of its family, else the kernel's choice. */
  private tunnelSource(rs: Pick<RealServer, 'address' | 'hop'>): IpAddress | undefined {
    const configured = this.tunnelSources[rs.address.family];
    if (configured) return configured;
    return rs.hop.srcAddress ? parseAddress(rs.hop.srcAddress, rs.address.family) : undefined;
  }

  /**
   * Whether the data plane can send to rs by its method: a resolved next hop, directly connected for direct
   * routing (a tunnel may cross routers), and an outer source address for a tunnel.
   */
  private canForward(rs: Pick<RealServer, 'address' | 'hop' | 'method'>): boolean {
    if (rs.hop.mac === undefined) return false;
    if (rs.method === 'dr' && rs.hop.gateway !== undefined) return false;
    if (rs.method === 'tunnel' && this.tunnelSource(rs) === undefined) return false;
    return true;
  }

  /** Refuses a method the real server's next hop cannot serve (XDPVS_ERR_INVALID). */
  private checkPath(rs: Pick<RealServer, 'address' | 'hop' | 'method'>): void {
    if (!ROUTED_METHODS.includes(rs.method) && rs.hop.gateway !== undefined) {
      throw invalid(
        `real server ${rs.address.text} is reached through gateway ${rs.hop.gateway} on ${rs.hop.ifname}; ${rs.method === 'dr' ? 'direct routing' : 'this method'} needs it on a directly connected network (tunnelling, -i, and NAT, -m, do not)`,
        { field: 'method' },
      );
    }
    if (rs.method === 'tunnel' && this.tunnelSource(rs) === undefined) {
      throw invalid(
        `no ${rs.address.family === 'inet' ? 'IPv4' : 'IPv6'} source address for tunnelling to ${rs.address.text}: give ${rs.hop.ifname} an address of that family or start xdpvsd with --tunnel-source`,
        { field: 'method' },
      );
    }
  }

  /** Runs mutations one at a time: they await the network (neighbour resolution) between validation and writes. */
  private serial<T>(fn: () => Promise<T> | T): Promise<T> {
    if (this.bypassQueue) {
      this.bypassQueue = false;
      return Promise.resolve().then(fn);
    }
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  private changed(): void {
    this.revision++;
    if (this.batching) return;
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
    const ep = parseVipEndpoint(m[2]);
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
    const all = [...this.services.values()];
    const counts = this.liveCounts(all.flatMap((s) => [...s.servers.values()]), all.some((s) => s.persistent > 0));
    return all.map((s) => this.view(s, counts));
  }

  getService(name: string): ServiceView {
    const svc = this.findService(name);
    return this.view(svc, this.liveCounts(svc.servers.values(), svc.persistent > 0));
  }

  getServer(svcName: string, rsName: string): RealServerView {
    const svc = this.findService(svcName);
    const rs = this.findServer(svc, rsName);
    return this.serverView(rs, this.liveCounts([rs], svc.persistent > 0));
  }

  get connTableSize(): number {
    return this.maps.connTableSize;
  }

  reasons() {
    return this.maps.reasonCounts();
  }

  /**
   * Active (ESTABLISHED) and inactive connections of these real servers as the data plane's schedulers count them
   * (no walk of the connection table, whose size would make every request pay for it: src/lb/sched-sync.ts
   * liveCounts), and their persistence templates when `templates` (a walk of the template table).
   */
  private liveCounts(servers: Iterable<RealServer>, templates = false): Map<number, DestCounts> {
    const gens = new Map<number, number>();
    for (const rs of servers) gens.set(rs.destId, rs.gen);
    return this.sched.liveCounts(gens, templates ? this.sched.maps.persistEntries() : [], this.nowNs());
  }

  /** Every destination slot of a real server now, with what upkeep and listings need of it. */
  private destInfo(): Map<number, DestInfo & DestAddress> {
    const out = new Map<number, DestInfo & DestAddress>();
    for (const svc of this.services.values()) {
      for (const rs of svc.servers.values()) out.set(rs.destId, { gen: rs.gen, svcId: svc.id, address: rs.address, port: rs.port });
    }
    return out;
  }

  private serviceInfo(): Map<number, ServiceInfo> {
    const out = new Map<number, ServiceInfo>();
    for (const s of this.services.values()) {
      out.set(s.id, { id: serviceName(s.protocol, s.address, s.port), protocol: s.protocol, address: s.address, port: s.port, persistent: s.persistent, netmask: s.netmask });
    }
    return out;
  }

  /** ipvsadm -Lnc: live connections and persistence templates. */
  listConnections(): ConnectionView[] {
    return this.sched.listConnections(this.maps.conns, this.serviceInfo(), this.destInfo(), this.nowNs());
  }

  /**
   * Connection sync (src/sync): every service's data-plane id and its real servers' destination slots, as of now.
   * Peers name services and real servers by address (their ids differ); this maps both ways.
   */
  syncDirectory(): { id: number; protocol: Protocol; address: IpAddress; port: number; servers: { destId: number; gen: number; address: IpAddress; port: number; method: Method }[] }[] {
    return [...this.services.values()].map((s) => ({
      id: s.id,
      protocol: s.protocol,
      address: s.address,
      port: s.port,
      servers: [...s.servers.values()].map((rs) => ({ destId: rs.destId, gen: rs.gen, address: rs.address, port: rs.port, method: rs.method })),
    }));
  }

  /**
   * The per-second upkeep (xdpvsd calls it): corrects the data plane's connection counters for entries that expired
   * or were evicted, and extends the templates of clients whose connections live (src/lb/sched-sync.ts).
   */
  maintainConnections(): void {
    this.sched.maintain(this.maps.conns, this.destInfo(), this.serviceInfo(), this.nowNs());
  }

  /** ipvsadm -L --timeout: the tcp, tcpfin and udp timeouts in seconds (IPVS's defaults where unset). */
  getTimeouts(): TimeoutsView {
    const c = this.maps.getConfig();
    return { tcp: c.tcp_timeout || 900, tcpfin: c.tcpfin_timeout || 120, udp: c.udp_timeout || 300 };
  }

  /** ipvsadm --set tcp tcpfin udp: 0 leaves a timeout as it is (ipvsadm's rule). Applies to new state changes. */
  setTimeouts(t: Partial<TimeoutsView>): Promise<TimeoutsView> {
    return this.serial(() => {
      const check = (v: unknown, field: string): number => {
        if (v === undefined) return 0;
        if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > MAX_TIMEOUT) {
          throw invalid(`invalid ${field} timeout ${JSON.stringify(v)} (expected 0..${MAX_TIMEOUT} seconds; 0 keeps it)`, { field });
        }
        return v;
      };
      const tcp = check(t.tcp, 'tcp');
      const tcpfin = check(t.tcpfin, 'tcpfin');
      const udp = check(t.udp, 'udp');
      const cur = this.maps.getConfig();
      this.maps.setConfig({
        ...cur,
        tcp_timeout: tcp || cur.tcp_timeout,
        tcpfin_timeout: tcpfin || cur.tcpfin_timeout,
        udp_timeout: udp || cur.udp_timeout,
      });
      this.changed();
      return this.getTimeouts();
    });
  }

  private view(s: Service, counts: Map<number, DestCounts>): ServiceView {
    return {
      id: serviceName(s.protocol, s.address, s.port),
      protocol: s.protocol,
      address: s.address.text,
      port: s.port,
      family: s.address.family,
      scheduler: s.scheduler.name,
      flags: [...s.flags],
      stats: this.maps.serviceStats(s.id) as Counters,
      rates: this.rates.read(svcRateKey(s)),
      servers: [...s.servers.values()].map((rs) => this.serverView(rs, counts)),
      ...(s.persistent > 0 ? { persistent: s.persistent, netmask: netmaskText(s.netmask, s.address.family) } : {}),
    };
  }

  private serverView(rs: RealServer, counts: Map<number, DestCounts>): RealServerView {
    const c = counts.get(rs.destId) ?? { active: 0, inactive: 0, persist: 0 };
    return {
      id: formatEndpoint(rs.address, rs.port),
      address: rs.address.text,
      port: rs.port,
      method: rs.method,
      weight: rs.weight,
      activeConns: c.active,
      inactiveConns: c.inactive,
      upperThreshold: rs.upper,
      lowerThreshold: rs.lower,
      persistConns: c.persist,
      neighbour: { resolved: rs.hop.mac !== undefined, mac: macText(rs.hop.mac), interface: rs.hop.ifname },
      stats: this.maps.destStatsOf(rs.destId) as Counters,
      rates: this.rates.read(destRateKey(rs)),
      health: rs.health
        ? { ...rs.health.view, effectiveWeight: effectiveWeight(rs) }
        : { state: 'unchecked', since: null, lastError: null, checker: null, listed: true, effectiveWeight: rs.weight },
    };
  }

  // ---- services ------------------------------------------------------------------------------------------

  addService(spec: ServiceSpec): Promise<ServiceView> {
    return this.serial(async () => {
      const protocol = checkProtocol(spec.protocol);
      const address = parseVip(spec.address);
      const persistent = checkPersistent(spec.persistent);
      const netmask = parseNetmask(spec.netmask, address.family);
      const port = checkServicePort(spec.port, persistent);
      const scheduler = parseScheduler(spec.scheduler ?? DEFAULT_SCHEDULER);
      const flags = checkFlags(scheduler, spec.flags);
      const name = serviceName(protocol, address, port);
      if (this.services.has(name)) throw new XdpvsError(ErrorCode.Exists, `service ${name} already exists`, { service: name });
      const id = this.freeServiceIds.shift();
      if (id === undefined) throw new XdpvsError(ErrorCode.Capacity, `no room for another service (the data plane holds ${this.maps.maxServices})`);
      const svc: Service = { protocol, address, port, scheduler, flags, id, servers: new Map(), persistent, netmask };
      try {
        this.maps.resetSchedState(id);
        this.maps.zeroServiceStats(id);
        this.sched.forgetService(id);
        await this.publish(svc, []);
      } catch (e) {
        this.freeServiceIds.unshift(id);
        throw e;
      }
      this.services.set(name, svc);
      this.sched.setWild([...this.services.values()]);
      this.changed();
      return this.view(svc, new Map());
    });
  }

  editService(name: string, patch: ServicePatch): Promise<ServiceView> {
    return this.serial(async () => {
      const svc = this.findService(name);
      const scheduler = patch.scheduler !== undefined ? parseScheduler(patch.scheduler) : svc.scheduler;
      const flags = patch.flags !== undefined ? checkFlags(scheduler, patch.flags) : checkFlags(scheduler, svc.flags);
      const persistent = patch.persistent !== undefined ? checkPersistent(patch.persistent) : svc.persistent;
      const netmask = patch.netmask !== undefined || patch.persistent !== undefined ? parseNetmask(patch.netmask, svc.address.family) : svc.netmask;
      checkServicePort(svc.port, persistent);
      const next: Service = { ...svc, scheduler, flags, persistent, netmask };
      await this.publish(next, [...svc.servers.values()]);
      // Another netmask or no persistence: the templates made under the old one no longer apply.
      if (persistent !== svc.persistent || netmask !== svc.netmask) this.sched.maps.flushPersist(svc.id);
      if (scheduler !== svc.scheduler) this.sched.maps.flushLblc(svc.id);
      svc.scheduler = scheduler;
      svc.flags = flags;
      svc.persistent = persistent;
      svc.netmask = netmask;
      this.changed();
      return this.view(svc, this.liveCounts(svc.servers.values()));
    });
  }

  deleteService(name: string): Promise<void> {
    return this.serial(async () => {
      const svc = this.findService(name);
      await this.removeServices([svc]);
      this.changed();
    });
  }

  /** ipvsadm -C. */
  clear(): Promise<number> {
    return this.serial(async () => {
      const n = this.services.size;
      await this.removeServices([...this.services.values()]);
      this.changed();
      return n;
    });
  }

  private async removeServices(gone: Service[]): Promise<void> {
    for (const svc of gone) {
      if (isPrefixVip(svc.address)) this.sched.deletePrefixService(svc);
      else this.maps.deleteService(this.serviceKey(svc));
      this.sched.forgetService(svc.id);
      // Destination records stay (quarantined) so that packets already in flight find them; ids are reused last.
      for (const rs of svc.servers.values()) this.retireDest(rs);
      this.services.delete(serviceName(svc.protocol, svc.address, svc.port));
    }
    this.sched.setWild([...this.services.values()]);
    // The tables leave `rings` (one grace period for all of them) before the ids can name another service's.
    const emptied = await Promise.allSettled(gone.map((svc) => this.rings.forget(svc.id)));
    for (const r of emptied) {
      if (r.status === 'rejected') this.opts.log?.('warn', `could not empty a removed service's schedule tables: ${(r.reason as Error).message}`);
    }
    for (const svc of gone) this.freeServiceIds.push(svc.id);
    void this.releaseUnused(gone.flatMap((svc) => [...svc.servers.values()]));
  }

  // ---- real servers --------------------------------------------------------------------------------------

  addServer(svcName: string, spec: RealServerSpec): Promise<RealServerView> {
    return this.serial(async () => {
      const svc = this.findService(svcName);
      const address = parseAddress(spec.address);
      const method = checkMethod(spec.method ?? DEFAULT_METHOD);
      checkFamily(svc, address, method);
      // A port-0 service's real servers take the packet's port (IPVS): their port is 0 as well.
      const port = spec.port === undefined || (svc.port === 0 && spec.port === 0) ? svc.port : parsePort(spec.port);
      if (method !== 'nat' && port !== svc.port) {
        throw invalid(`real server port ${port} differs from the service port ${svc.port}: only NAT (-m) can map ports`, { field: 'port' });
      }
      const weight = checkWeight(spec.weight ?? DEFAULT_WEIGHT);
      const upper = checkThreshold(spec.upperThreshold, 'upperThreshold');
      const lower = checkThreshold(spec.lowerThreshold, 'lowerThreshold');
      const key = formatEndpoint(address, port);
      if (svc.servers.has(key)) throw new XdpvsError(ErrorCode.Exists, `real server ${key} already exists in service ${serviceName(svc.protocol, svc.address, svc.port)}`);
      const hop = await this.resolver.resolve(address.text, address.family, { allowGateway: ROUTED_METHODS.includes(method) });
      this.checkPath({ address, hop, method });
      const destId = this.allocDest();
      const rs: RealServer = { address, port, method, weight, destId, gen: this.nextGen++, hop, upper, lower };
      try {
        this.maps.zeroDestStats(destId);
        this.writeDest(svc, rs);
        await this.publish(svc, [...svc.servers.values(), rs]);
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
    return this.serial(async () => {
      const svc = this.findService(svcName);
      const rs = this.findServer(svc, rsName);
      const weight = patch.weight !== undefined ? checkWeight(patch.weight) : rs.weight;
      const method = patch.method !== undefined ? checkMethod(patch.method) : rs.method;
      const upper = patch.upperThreshold !== undefined ? checkThreshold(patch.upperThreshold, 'upperThreshold') : rs.upper;
      const lower = patch.lowerThreshold !== undefined ? checkThreshold(patch.lowerThreshold, 'lowerThreshold') : rs.lower;
      if (method !== 'nat' && rs.port !== svc.port) throw invalid(`real server port ${rs.port} differs from the service port ${svc.port}: only NAT (-m) can map ports`);
      checkFamily(svc, rs.address, method);
      this.checkPath({ address: rs.address, hop: rs.hop, method });
      // A new method gets a new destination record: established connections finish on their old path.
      const newPath = method !== rs.method;
      const next: RealServer = newPath ? { ...rs, weight, method, upper, lower, destId: this.allocDest(), gen: this.nextGen++ } : { ...rs, weight, method, upper, lower };
      if (!newPath) this.sched.thresholdsChanged(rs.destId, rs.upper, upper);
      try {
        if (newPath) this.maps.zeroDestStats(next.destId);
        this.writeDest(svc, next);
        await this.publish(svc, [...svc.servers.values()].map((x) => (x === rs ? next : x)));
      } catch (e) {
        if (newPath) this.freeDestIds.unshift(next.destId);
        throw e;
      }
      if (newPath) this.retireDest(rs);
      Object.assign(rs, next);
      this.changed();
      return this.serverView(rs, this.liveCounts([rs]));
    });
  }

  deleteServer(svcName: string, rsName: string): Promise<void> {
    return this.serial(async () => {
      const svc = this.findService(svcName);
      const rs = this.findServer(svc, rsName);
      await this.publish(svc, [...svc.servers.values()].filter((x) => x !== rs));
      svc.servers.delete(formatEndpoint(rs.address, rs.port));
      this.retireDest(rs);
      void this.releaseUnused([rs]);
      this.changed();
    });
  }

  /**
   * The health monitor's verdict on a real server: rebuilds the service's schedule table when that changes who is
   * scheduled or with what weight (connections already established keep their real server). Not persisted.
   */
  setServerHealth(svcName: string, rsName: string, health: ServerHealth | undefined): Promise<void> {
    return this.serial(async () => {
      const svc = this.findService(svcName);
      const rs = this.findServer(svc, rsName);
      const before = effectiveWeight(rs);
      rs.health = health;
      if (effectiveWeight(rs) !== before) await this.publish(svc, [...svc.servers.values()]);
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
        // Only tunnel and NAT may follow their real server behind a gateway; direct routing keeps its last next hop.
        if (!ROUTED_METHODS.includes(rs.method) && hop.gateway !== undefined) continue;
        const wasUsable = this.canForward(rs);
        rs.hop = hop;
        this.writeDest(svc, rs);
        if (wasUsable !== this.canForward(rs)) touched.add(svc);
        this.opts.log?.('info', `real server ${rs.address.text}: next hop now ${macText(hop.mac) ?? 'unresolved'} via ${hop.ifname}`);
      }
      await settleAll([...touched].map((svc) => this.publish(svc, [...svc.servers.values()])));
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
      flags: this.canForward(rs) ? DEST_F_MAC_VALID : 0,
      mac_dst: rs.hop.mac ?? Buffer.alloc(6),
      mac_src: rs.hop.srcMac,
      // The data plane checks a tunnelled packet against the MTU; other methods do not grow packets.
      mtu: rs.method === 'tunnel' ? Math.min(rs.hop.mtu ?? 0, 0xffff) : 0,
      tun_src: rs.method === 'tunnel' ? addressToData(this.tunnelSource(rs) ?? parseAddress(rs.address.family === 'inet' ? '0.0.0.0' : '::')) : Buffer.alloc(16),
    });
  }

  /**
   * Builds the schedule table of `servers`, writes what differs into a table of the service that packets do not
   * read, then switches the service record to it in one update (src/lb/ring-tables.ts). Resolves once packets
   * see the new table.
   */
  private async publish(svc: Service, servers: RealServer[]): Promise<void> {
    // Weight 0 too: the sh and dh tables hold them (refused at lookup, as IPVS); the other builders leave them out.
    const eligible = servers.filter((rs) => this.canForward(rs));
    // What the count-reading schedulers and thresholds read of each server, before the table that names it.
    for (const rs of servers) this.sched.writeDest(rs.destId, { weight: effectiveWeight(rs), upper: rs.upper, lower: rs.lower });
    this.sched.writePersistence(svc.id, svc.persistent, svc.netmask, svc.address.family);
    const table = buildSchedule(
      svc.scheduler.name,
      eligible.map((rs) => ({ key: formatEndpoint(rs.address, rs.port), weight: effectiveWeight(rs) })),
    );
    const destIds = new Uint32Array(table.length);
    for (let i = 0; i < table.length; i++) destIds[i] = eligible[table[i]].destId;
    const flags = serviceFlagBits({ flags: svc.flags, persistent: svc.persistent, thresholds: servers.some((rs) => rs.upper > 0) });
    await this.rings.publish(svc.id, destIds, (slot, len) => {
      const record = { id: svc.id, sched: svc.scheduler.id, flags, ring_slot: slot, ring_len: len };
      if (isPrefixVip(svc.address)) this.sched.putPrefixService(svc, record);
      else this.maps.putService(this.serviceKey(svc), record);
    });
  }

  private allocDest(): number {
    const id = this.freeDestIds.shift() ?? this.quarantine.shift();
    if (id === undefined) throw new XdpvsError(ErrorCode.Capacity, `no room for another real server (the data plane holds ${this.maps.maxDests})`);
    this.sched.resetSlot(id);
    return id;
  }

  private retireDest(rs: RealServer): void {
    this.quarantine.push(rs.destId);
    this.sched.retire(rs.destId);
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

  // ---- counters, rates, whole configurations -------------------------------------------------------------

  /** One tick of IPVS's rate estimator (src/lb/rates.ts): the daemon calls it every ESTIMATOR_INTERVAL_MS. */
  estimateRates(): void {
    const samples: [string, Counters][] = [];
    for (const s of this.services.values()) {
      samples.push([svcRateKey(s), this.maps.serviceStats(s.id)]);
      for (const rs of s.servers.values()) samples.push([destRateKey(rs), this.maps.destStatsOf(rs.destId)]);
    }
    this.rates.sample(samples);
  }

  /** ipvsadm -Z [-t|-u VIP:PORT]: zeroes the counters (and rates) of one service or all, with their real servers. */
  zeroCounters(name?: string): Promise<number> {
    return this.serial(() => {
      const targets = name === undefined ? [...this.services.values()] : [this.findService(name)];
      for (const s of targets) {
        this.maps.zeroServiceStats(s.id);
        this.rates.zero(svcRateKey(s));
        for (const rs of s.servers.values()) {
          this.maps.zeroDestStats(rs.destId);
          this.rates.zero(destRateKey(rs));
        }
      }
      return targets.length;
    });
  }

  /** GET /v1/config: every service and real server as PUT /v1/config takes them, in scheduling order. */
  getConfig(): ConfigView {
    return {
      revision: this.revision,
      services: [...this.services.values()].map((s) => ({
        protocol: s.protocol,
        address: s.address.text,
        port: s.port,
        scheduler: s.scheduler.name,
        flags: [...s.flags],
        ...(s.persistent > 0 ? { persistent: s.persistent, netmask: netmaskText(s.netmask, s.address.family) } : {}),
        servers: [...s.servers.values()].map((rs) => ({
          address: rs.address.text,
          port: rs.port,
          method: rs.method,
          weight: rs.weight,
          ...(rs.upper > 0 ? { upperThreshold: rs.upper } : {}),
          ...(rs.lower > 0 ? { lowerThreshold: rs.lower } : {}),
        })),
      })),
    };
  }

  /**
   * PUT /v1/config: makes the configuration `services`, all or nothing. The steps (src/lb/config.ts) run first on a
   * rehearsal copy of this balancer over in-memory maps, so any error (with details.at naming the entry) leaves
   * everything as it was; then here. With `revision`, refuses (XDPVS_ERR_CONFLICT) when the configuration changed
   * since the caller read that revision.
   */
  replaceConfig(services: ConfigService[], revision?: number): Promise<{ revision: number; changes: ConfigChanges }> {
    return this.serial(async () => {
      if (revision !== undefined && revision !== this.revision) {
        throw new XdpvsError(ErrorCode.Conflict, `the configuration changed since revision ${revision} (it is at ${this.revision} now); read it again`, { revision: this.revision });
      }
      const steps = planConfig(this.getConfig().services, services);
      if (steps.length === 0) return { revision: this.revision, changes: summarise(steps) };

      // Next hops: real servers that stay keep theirs; new ones are resolved (and released again on failure).
      const hops = new Map<string, NextHop>();
      for (const s of this.services.values()) for (const rs of s.servers.values()) hops.set(rs.address.text, rs.hop);
      const resolvedHere: { address: string; family: IpAddress['family'] }[] = [];
      const resolver: NeighbourResolver = {
        resolve: async (address, family, opts) => {
          const known = hops.get(address);
          if (known) return known;
          const hop = await this.resolver.resolve(address, family, opts);
          hops.set(address, hop);
          resolvedHere.push({ address, family });
          return hop;
        },
        lookupAll: async () => new Map(),
        release: async () => undefined,
      };
      // The same options (validation depends on some, e.g. tunnelSources), minus the side effects.
      const rehearsal = new Balancer(rehearsalMaps(this.maps), resolver, { ...this.opts, nowNs: this.nowNs, onChange: undefined, log: undefined });
      try {
        await rehearsal.restore(this.exportState());
        await runSteps(rehearsal, steps);
      } catch (e) {
        for (const t of resolvedHere) await this.resolver.release(t.address, t.family).catch(() => undefined);
        throw e;
      }

      this.batching = true;
      try {
        await runSteps(this.withinTurn(), steps);
      } catch (e) {
        // The rehearsal passed, so this is the kernel refusing a write: say that the steps before it are in place.
        if (e instanceof XdpvsError) throw new XdpvsError(e.code, `${e.message} (the steps before this one were applied)`, { ...e.details, partial: true });
        throw e;
      } finally {
        this.batching = false;
        this.opts.onChange?.(this.exportState());
      }
      return { revision: this.revision, changes: summarise(steps) };
    });
  }

  /**
   * The public operations for use inside a mutation that holds the queue (replaceConfig): each call goes straight
   * to its work instead of queueing behind the mutation that made it. Every operation calls serial() synchronously
   * first thing, so the flag is taken by that very call before any other code can run.
   */
  private withinTurn(): ConfigTarget {
    const direct = <T>(call: () => Promise<T>): Promise<T> => {
      this.bypassQueue = true;
      const result = call();
      const taken = !this.bypassQueue;
      this.bypassQueue = false;
      if (!taken) throw new XdpvsError(ErrorCode.Internal, 'a balancer operation did not go through serial()');
      return result;
    };
    return {
      addService: (spec) => direct(() => this.addService(spec)),
      editService: (name, patch) => direct(() => this.editService(name, patch)),
      deleteService: (name) => direct(() => this.deleteService(name)),
      addServer: (svc, spec) => direct(() => this.addServer(svc, spec)),
      editServer: (svc, rs, patch) => direct(() => this.editServer(svc, rs, patch)),
      deleteServer: (svc, rs) => direct(() => this.deleteServer(svc, rs)),
    };
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
        ...(s.persistent > 0 ? { persistent: s.persistent, netmask: s.netmask } : {}),
        servers: [...s.servers.values()].map((rs) => ({
          address: rs.address.text,
          port: rs.port,
          method: rs.method,
          weight: rs.weight,
          destId: rs.destId,
          gen: rs.gen,
          ...(rs.upper || rs.lower ? { upper: rs.upper, lower: rs.lower } : {}),
        })),
      })),
      timeouts: this.getTimeouts(),
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
      const publishes: Promise<void>[] = [];
      try {
      for (const s of state.services) {
        const protocol = checkProtocol(s.protocol);
        const address = parseVip(s.address);
        const scheduler = parseScheduler(s.scheduler);
        const persistent = checkPersistent(s.persistent);
        const netmask = parseNetmask(s.netmask, address.family);
        const svc: Service = { protocol, address, port: checkServicePort(s.port, persistent), scheduler, flags: checkFlags(scheduler, s.flags), id: s.id, servers: new Map(), persistent, netmask };
        const current = isPrefixVip(address) ? this.sched.getPrefixService(svc) : this.maps.getService(this.serviceKey(svc));
        const adopted = current !== undefined && current.id === svc.id;
        // The pinned tables of this id: the one the record points at goes on serving until the first switch.
        this.rings.adopt(svc.id, adopted && current.ring_len > 0 ? current.ring_slot : undefined);
        if (!adopted) {
          this.maps.resetSchedState(svc.id);
          this.maps.zeroServiceStats(svc.id);
        }
        for (const r of s.servers) {
          // Only a tunnel may cross families (an IPv4 VIP's packets inside IPv6, or the other way round).
          const rsAddr = parseAddress(r.address, r.method === 'tunnel' ? undefined : address.family);
          let hop: NextHop;
          try {
            hop = await this.resolver.resolve(rsAddr.text, rsAddr.family, { allowGateway: ROUTED_METHODS.includes(r.method) });
          } catch (e) {
            this.opts.log?.('warn', `restoring ${rsAddr.text}: ${(e as Error).message}`);
            hop = { ifindex: 0, ifname: '?', srcMac: Buffer.alloc(6) };
          }
          const rs: RealServer = { address: rsAddr, port: r.port, method: checkMethod(r.method), weight: checkWeight(r.weight), destId: r.destId, gen: r.gen, hop, upper: checkThreshold(r.upper, 'upperThreshold'), lower: checkThreshold(r.lower, 'lowerThreshold') };
          this.writeDest(svc, rs);
          svc.servers.set(formatEndpoint(rsAddr, r.port), rs);
        }
        // All services at once: the grace periods and placements they wait for are shared.
        publishes.push(this.publish(svc, [...svc.servers.values()]));
        const name = serviceName(protocol, address, svc.port);
        this.services.set(name, svc);
        wanted.add(name);
      }
      } finally {
        await settleAll(publishes);
      }
      for (const key of this.maps.serviceKeys()) {
        const addr = addressFromData(key.addr, key.family);
        const name = serviceName(key.proto === IPPROTO_TCP ? 'tcp' : 'udp', addr, key.port);
        if (!wanted.has(name)) this.maps.deleteService(key);
      }
      for (const key of this.sched.maps.prefixServiceKeys()) {
        const addr = addressFromData(key.addr, key.family);
        const vip = parseVip(`${addr.text}/${key.prefixlen - 32}`);
        if (!wanted.has(serviceName(key.proto === IPPROTO_TCP ? 'tcp' : 'udp', vip, key.port))) this.sched.maps.deletePrefixService(key);
      }
      this.sched.setWild([...this.services.values()]);
      // Tables of services the state does not have, and spare tables of the last run that no record points at.
      await this.rings.dropUnowned();
      if (state.timeouts) {
        const cur = this.maps.getConfig();
        this.maps.setConfig({ ...cur, tcp_timeout: state.timeouts.tcp, tcpfin_timeout: state.timeouts.tcpfin, udp_timeout: state.timeouts.udp });
      }
      this.changed();
    });
  }
}

/** Waits for every promise, then throws the first failure (none is left running unobserved). */
async function settleAll(all: Promise<unknown>[]): Promise<void> {
  const results = await Promise.allSettled(all);
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
}

/** Rate estimator keys: a reused service id or destination slot starts a new estimate. */
function svcRateKey(s: Service): string {
  return `svc ${s.id} ${serviceName(s.protocol, s.address, s.port)}`;
}
function destRateKey(rs: RealServer): string {
  return `dest ${rs.destId} ${rs.gen}`;
}

function sameHop(a: NextHop, b: NextHop): boolean {
  return (
    a.ifindex === b.ifindex &&
    a.srcMac.equals(b.srcMac) &&
    (a.mac === undefined ? b.mac === undefined : b.mac !== undefined && a.mac.equals(b.mac)) &&
    a.gateway === b.gateway &&
    a.mtu === b.mtu &&
    a.srcAddress === b.srcAddress
  );
}
