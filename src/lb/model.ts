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
  address: string;
  port: number;
  scheduler?: string;
  flags?: string[];
}

export interface ServicePatch {
  scheduler?: string;
  flags?: string[];
}

export interface RealServerSpec {
  address: string;
  port?: number;
  method?: Method;
  weight?: number;
}

export interface RealServerPatch {
  weight?: number;
  method?: Method;
}

export interface Counters {
  conns: number;
  inpkts: number;
  outpkts: number;
  inbytes: number;
  outbytes: number;
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
  servers: RealServerView[];
}

/** GET /v1/info: what the daemon runs and where its data plane is attached. */
export interface InfoView {
  version: string;
  /** Size of the connection table (ipvsadm prints it as "size=N"). */
  connTableSize: number;
  interfaces: { name: string; ifindex: number; xdpMode: string }[];
}
