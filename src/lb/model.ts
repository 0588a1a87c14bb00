// The desired state's vocabulary: what a user asks for (specs) and what they read back (views), in API terms.

import type { Family } from './address.js';

export type Protocol = 'tcp' | 'udp';
export type Method = 'dr' | 'tunnel' | 'nat';

/** ipvsadm's defaults, in one place: -A without -s, -a without -w or a method. */
export const DEFAULT_SCHEDULER = 'wlc';
export const DEFAULT_WEIGHT = 1;
export const DEFAULT_METHOD: Method = 'dr';
export const MAX_WEIGHT = 65535;

export interface ServiceSpec {
  protocol: Protocol;
  /** The VIP, or a VIP prefix ADDR/LEN (an xdpvs extension, see docs/schedulers.md). */
  address: string;
  /** 0: every port (persistent services only, as IPVS). */
  port: number;
  scheduler?: string;
  flags?: string[];
  /** ipvsadm -p: persistence timeout in seconds; 0 or absent: not persistent. */
  persistent?: number;
  /** ipvsadm -M: persistence netmask, dotted (IPv4) or a prefix length; absent: the whole address. */
  netmask?: string | number;
}

export interface ServicePatch {
  scheduler?: string;
  flags?: string[];
  /** ipvsadm -E replaces the definition: 0 turns persistence off. */
  persistent?: number;
  netmask?: string | number;
}

export interface RealServerSpec {
  address: string;
  port?: number;
  method?: Method;
  weight?: number;
  /** ipvsadm -x: overloaded (no new connections) from this many connections; 0: no limit. */
  upperThreshold?: number;
  /** ipvsadm -y: not overloaded again below this many; 0: below 3/4 of the upper. */
  lowerThreshold?: number;
}

export interface RealServerPatch {
  weight?: number;
  method?: Method;
  upperThreshold?: number;
  lowerThreshold?: number;
}

export interface Counters {
  conns: number;
  inpkts: number;
  outpkts: number;
  inbytes: number;
  outbytes: number;
}

/** IPVS's estimated rates (ipvsadm -L --rate): per second, averaged over the last ~8 s, refreshed every 2 s. */
export interface Rates {
  /** connections per second */
  cps: number;
  /** packets per second from clients */
  inpps: number;
  /** packets per second to clients */
  outpps: number;
  /** bytes per second from clients */
  inbps: number;
  /** bytes per second to clients */
  outbps: number;
}

export interface NeighbourView {
  resolved: boolean;
  mac: string | null;
  interface: string | null;
}

export interface RealServerView {
  id: string;
  address: string;
  port: number;
  method: Method;
  weight: number;
  activeConns: number;
  inactiveConns: number;
  neighbour: NeighbourView;
  stats: Counters;
  rates: Rates;
  /** What the health checks say (src/health); servers nobody checks are "unchecked" and listed with their weight. */
  health?: HealthView;
  /** -x / -y (0: none). */
  upperThreshold?: number;
  lowerThreshold?: number;
  /** Live persistence templates pointing at it (ipvsadm --persistent-conn's PersistConn). */
  persistConns?: number;
}

/** A real server's health, as the health monitor (src/health/monitor.ts) sees it. */
export interface HealthView {
  /** "unchecked": no checker has concluded yet (or it has none); in rotation unless keepalived's alpha says not. */
  state: 'up' | 'down' | 'unchecked';
  /** When the state last changed (ISO 8601), null if never. */
  since: string | null;
  /** The last failure's reason, null if none. */
  lastError: string | null;
  /** The checker that decided the state (or last failed), e.g. "TCP_CHECK 198.18.0.11:80"; null when unchecked. */
  checker: string | null;
  /** Whether ipvsadm -Ln lists it: keepalived removes a failed real server unless inhibit_on_failure. */
  listed: boolean;
  /** The weight the data plane schedules with now: 0 when out of rotation, else configured (or MISC_CHECK dynamic). */
  effectiveWeight: number;
  /** "sorry": the service's sorry_server, added while no real server is up. */
  role?: 'sorry';
}

export interface ServiceView {
  id: string;
  protocol: Protocol;
  address: string;
  port: number;
  family: Family;
  scheduler: string;
  flags: string[];
  stats: Counters;
  rates: Rates;
  servers: RealServerView[];
  /** Persistence timeout in seconds, present when the service is persistent (ipvsadm -p). */
  persistent?: number;
  /** Its netmask as ipvsadm prints it (dotted for IPv4, a length for IPv6), present when persistent. */
  netmask?: string;
}

/** A real server in a whole configuration (GET/PUT /v1/config): what ipvsadm -a sets. */
export type ConfigServer = RealServerSpec;

/** A service in a whole configuration: what ipvsadm -A sets, and its real servers in scheduling order. */
export interface ConfigService extends ServiceSpec {
  servers?: ConfigServer[];
}

/** GET /v1/config: the configuration, without counters, as PUT /v1/config takes it back. */
export interface ConfigView {
  /** Changes since the daemon started; PUT /v1/config with `revision` refuses to apply over a newer one. */
  revision: number;
  services: {
    protocol: Protocol;
    address: string;
    port: number;
    scheduler: string;
    flags: string[];
    /** Present when persistent (ipvsadm -p), with the netmask as ipvsadm prints it (dotted for IPv4, a length). */
    persistent?: number;
    netmask?: string;
    servers: {
      address: string;
      port: number;
      method: Method;
      weight: number;
      /** -x / -y, present when set. */
      upperThreshold?: number;
      lowerThreshold?: number;
    }[];
  }[];
}

/** What PUT /v1/config changed. */
export interface ConfigChanges {
  servicesAdded: number;
  servicesEdited: number;
  servicesRemoved: number;
  serversAdded: number;
  serversEdited: number;
  serversRemoved: number;
}

/** GET /v1/info: what the daemon runs and where its data plane is attached. */
export interface InfoView {
  version: string;
  /** Size of the connection table (ipvsadm prints it as "size=N"). */
  connTableSize: number;
  interfaces: { name: string; ifindex: number; xdpMode: string }[];
}

/** GET /v1/connections: one entry of the connection table or a persistence template (ipvsadm -Lnc). */
export interface ConnectionView {
  protocol: Protocol;
  /** IPVS's state name: SYN_RECV, ESTABLISHED, FIN_WAIT, CLOSE, UDP; NONE for a persistence template. */
  state: string;
  /** Seconds until it expires. */
  expires: number;
  /** A persistence template (client port 0) rather than a connection. */
  template: boolean;
  /** The service it belongs to (its id), null when the service is gone. */
  service: string | null;
  client: { address: string; port: number };
  virtual: { address: string; port: number };
  destination: { address: string; port: number };
}

/** GET/PUT /v1/timeouts: ipvsadm --set tcp tcpfin udp, in seconds (PUT: 0 leaves one as it is). */
export interface TimeoutsView {
  tcp: number;
  tcpfin: number;
  udp: number;
}
