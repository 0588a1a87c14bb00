// Names and ids of services and real servers, both ways: events carry this director's ids, datagrams carry
// addresses, and a peer's ids for the same real server differ.

import { AF_INET, AF_INET6, addressToData, type IpAddress } from '../lb/address.js';
import type { Method, Protocol } from '../lb/model.js';
import { vipPrefix } from '../lb/vip.js';

/** What Balancer.syncDirectory() gives: the services and their real servers' destination slots. */
export interface DirectoryService {
  id: number;
  protocol: Protocol;
  address: IpAddress;
  port: number;
  servers: readonly { destId: number; gen: number; address: IpAddress; port: number; method: Method }[];
}

/** A service as a datagram names it. */
export interface ServiceName {
  proto: number;
  family: number;
  addr: Buffer;
  prefix: number;
  port: number;
}

/** A real server as a datagram names it. */
export interface ServerName {
  family: number;
  addr: Buffer;
  port: number;
}

export interface DirectoryServer {
  svcId: number;
  destId: number;
  gen: number;
  method: Method;
  name: ServerName;
}

function familyNumber(a: IpAddress): number {
  return a.family === 'inet' ? AF_INET : AF_INET6;
}

function serviceKey(n: ServiceName): string {
  return `${n.proto}/${n.family}/${n.addr.toString('hex')}/${n.prefix}/${n.port}`;
}

function serverKey(svcKey: string, n: ServerName): string {
  return `${svcKey} ${n.family}/${n.addr.toString('hex')}/${n.port}`;
}

export class Directory {
  readonly #byDest = new Map<number, DirectoryServer & { service: ServiceName }>();
  readonly #byName = new Map<string, DirectoryServer>();
  readonly #services = new Map<number, ServiceName>();

  constructor(services: readonly DirectoryService[]) {
    for (const s of services) {
      const svc: ServiceName = {
        proto: s.protocol === 'tcp' ? 6 : 17,
        family: familyNumber(s.address),
        addr: addressToData(s.address),
        prefix: vipPrefix(s.address),
        port: s.port,
      };
      this.#services.set(s.id, svc);
      const sk = serviceKey(svc);
      for (const rs of s.servers) {
        const name: ServerName = { family: familyNumber(rs.address), addr: addressToData(rs.address), port: rs.port };
        const server: DirectoryServer = { svcId: s.id, destId: rs.destId, gen: rs.gen, method: rs.method, name };
        this.#byDest.set(rs.destId, { ...server, service: svc });
        this.#byName.set(serverKey(sk, name), server);
      }
    }
  }

  /** The service and real server of this director's (svcId, destId, gen), if that slot still holds them. */
  byId(svcId: number, destId: number, gen: number): { service: ServiceName; server: ServerName; method: Method } | undefined {
    const d = this.#byDest.get(destId);
    if (!d || d.svcId !== svcId || d.gen !== gen) return undefined;
    return { service: d.service, server: d.name, method: d.method };
  }

  /** This director's slot for a real server of a service named by a peer, if it has both. */
  byName(service: ServiceName, server: ServerName): DirectoryServer | undefined {
    return this.#byName.get(serverKey(serviceKey(service), server));
  }
}
