// The API's response bodies as zod schemas (for the OpenAPI document), locked at compile time to src/lb/model.ts.
//
// The views' TypeScript types stay plain interfaces in src/lb/model.ts: the domain owns its vocabulary and the
// forwarding-method work edits it. These schemas describe the same shapes for the document, and the `Same<>` checks
// at the bottom make any drift between the two a type error (tsc), the way the codecs are held against BTF.
// test/unit/openapi.test.ts also parses real responses of the API with these schemas.

import { extendZodWithOpenApi } from '@asteasolutions/zod-to-openapi';
import { z } from 'zod';
import { ErrorCode } from '../errors.js';
import type { Family } from '../lb/address.js';
import type { ConfigChanges, ConfigView, ConnectionView, Counters, HealthView, InfoView, Method, NeighbourView, Protocol, Rates, RealServerView, ServiceView, TimeoutsView } from '../lb/model.js';
import { MAX_WEIGHT } from '../lb/model.js';
import type { LoadResult } from '../keepalived/apply.js';
import type { SyncStatus } from '../sync/conn-sync.js';

// .openapi('Name') below names each schema as a component, so that the document refers to it wherever it is nested.
extendZodWithOpenApi(z);

export const ProtocolSchema = z.enum(['tcp', 'udp']).describe('transport protocol');
export const FamilySchema = z.enum(['inet', 'inet6']).describe('address family of the VIP');
export const MethodSchema = z
  .enum(['dr', 'tunnel', 'nat'])
  .describe('forwarding method: "dr" (ipvsadm -g, Route), "tunnel" (-i, Tunnel), "nat" (-m, Masq)');

export const CountersSchema = z
  .object({
    conns: z.number().int().min(0).describe('connections scheduled (new flows)'),
    inpkts: z.number().int().min(0).describe('packets from clients'),
    outpkts: z.number().int().min(0).describe('packets to clients (through the director: NAT only)'),
    inbytes: z.number().int().min(0).describe('bytes from clients, counted from the IP header as IPVS does'),
    outbytes: z.number().int().min(0).describe('bytes to clients'),
  })
  .strict()
  .describe('counters read from the data plane (summed over CPUs)')
  .openapi('Counters');

export const RatesSchema = z
  .object({
    cps: z.number().int().min(0).describe('connections per second'),
    inpps: z.number().int().min(0).describe('packets per second from clients'),
    outpps: z.number().int().min(0).describe('packets per second to clients'),
    inbps: z.number().int().min(0).describe('bytes per second from clients'),
    outbps: z.number().int().min(0).describe('bytes per second to clients'),
  })
  .strict()
  .describe('IPVS\'s rate estimates (ipvsadm -L --rate): averages over ~8 s, refreshed every 2 s')
  .openapi('Rates');

export const NeighbourViewSchema = z
  .object({
    resolved: z.boolean().describe('the MAC is known: the real server takes new connections'),
    mac: z.string().nullable().describe('the real server\'s (or next hop\'s) MAC, lower case, colon separated'),
    interface: z.string().nullable().describe('the director\'s egress interface towards it'),
  })
  .strict()
  .openapi('Neighbour');

export const HealthViewSchema = z
  .object({
    state: z.enum(['up', 'down', 'unchecked']).describe('"unchecked": no checker has concluded yet, or none is configured'),
    since: z.string().nullable().describe('when the state last changed (ISO 8601)'),
    lastError: z.string().nullable().describe('why the last check failed'),
    checker: z.string().nullable().describe('the checker that decided the state, e.g. "TCP_CHECK 198.18.0.11:80"'),
    listed: z.boolean().describe('whether ipvsadm -Ln lists it (a failed real server without inhibit_on_failure is not)'),
    effectiveWeight: z.number().int().min(0).describe('the weight scheduled with now: 0 while out of rotation'),
    role: z.literal('sorry').optional().describe('the service\'s sorry_server, present while no real server is up'),
  })
  .strict()
  .openapi('Health');

export const RealServerViewSchema = z
  .object({
    id: z.string().describe('ADDR:PORT, e.g. "198.18.0.11:80" or "[fd00::11]:80"'),
    address: z.string(),
    port: z.number().int().min(0).max(65535).describe('0 for a real server of a port-0 service'),
    method: MethodSchema,
    weight: z.number().int().min(0).max(MAX_WEIGHT).describe('0 = quiescent: no new connections'),
    activeConns: z.number().int().min(0).describe('connections in ESTABLISHED'),
    inactiveConns: z.number().int().min(0).describe('connections in any other state'),
    neighbour: NeighbourViewSchema,
    stats: CountersSchema,
    rates: RatesSchema,
    health: HealthViewSchema.optional(),
    upperThreshold: z.number().int().min(0).optional().describe('ipvsadm -x: overloaded from this many connections (0: no limit)'),
    lowerThreshold: z.number().int().min(0).optional().describe('ipvsadm -y: overloaded until below this many (0: 3/4 of the upper)'),
    persistConns: z.number().int().min(0).optional().describe('live persistence templates pointing at it (PersistConn)'),
  })
  .strict()
  .openapi('RealServer');

export const ServiceViewSchema = z
  .object({
    id: z.string().describe('PROTO:ADDR:PORT, e.g. "tcp:198.18.0.100:80" or "udp:[fd00::100]:53"'),
    protocol: ProtocolSchema,
    address: z.string().describe('the VIP, or a VIP prefix ADDR/LEN (an xdpvs extension)'),
    port: z.number().int().min(0).max(65535).describe('0: every port (persistent services only)'),
    family: FamilySchema,
    scheduler: z.string().describe('rr, wrr, mh, ... (ipvsadm -s)'),
    flags: z.array(z.string()).describe('scheduler flags, e.g. "mh-port"'),
    stats: CountersSchema,
    rates: RatesSchema,
    servers: z.array(RealServerViewSchema),
    persistent: z.number().int().min(1).optional().describe('ipvsadm -p: persistence timeout in seconds (present when persistent)'),
    netmask: z.string().optional().describe('ipvsadm -M: persistence netmask, dotted (IPv4) or a prefix length (IPv6)'),
  })
  .strict()
  .openapi('Service');

const EndpointSchema = z.object({ address: z.string(), port: z.number().int().min(0).max(65535) }).strict();

export const ConnectionViewSchema = z
  .object({
    protocol: ProtocolSchema,
    state: z.string().describe('IPVS\'s state: SYN_RECV, ESTABLISHED, FIN_WAIT, CLOSE, UDP; NONE for a persistence template'),
    expires: z.number().int().min(0).describe('seconds until it expires'),
    template: z.boolean().describe('a persistence template (client port 0) rather than a connection'),
    service: z.string().nullable().describe('the service it belongs to'),
    client: EndpointSchema,
    virtual: EndpointSchema,
    destination: EndpointSchema,
  })
  .strict()
  .openapi('Connection');

export const ConnectionListSchema = z.object({ connections: z.array(ConnectionViewSchema) }).strict().openapi('ConnectionList');

export const TimeoutsViewSchema = z
  .object({
    tcp: z.number().int().min(0).describe('ESTABLISHED timeout, seconds'),
    tcpfin: z.number().int().min(0).describe('FIN_WAIT timeout, seconds'),
    udp: z.number().int().min(0).describe('UDP timeout, seconds'),
  })
  .strict()
  .openapi('Timeouts');

export const InfoViewSchema = z
  .object({
    version: z.string(),
    connTableSize: z.number().int().min(0).describe('size of the connection table (ipvsadm prints "size=N")'),
    interfaces: z.array(z.object({ name: z.string(), ifindex: z.number().int(), xdpMode: z.string() }).strict()),
  })
  .strict()
  .openapi('Info');

export const ServiceListSchema = z.object({ services: z.array(ServiceViewSchema) }).strict().openapi('ServiceList');
export const ServerListSchema = z.object({ servers: z.array(RealServerViewSchema) }).strict().openapi('RealServerList');
export const DeletedSchema = z
  .object({ deleted: z.number().int().min(0).describe('how many services were removed') })
  .strict()
  .openapi('Deleted');
export const StatsViewSchema = z
  .object({
    services: z.array(ServiceViewSchema),
    reasons: z.record(z.number().int().min(0)).describe('packets per data-plane verdict reason (pass_*, drop_*, fwd_*)'),
  })
  .strict()
  .openapi('Stats');

export const ZeroedSchema = z
  .object({ zeroed: z.number().int().min(0).describe('how many services had their counters zeroed') })
  .strict()
  .openapi('Zeroed');

export const ConfigViewSchema = z
  .object({
    revision: z.number().int().min(0).describe('changes since the daemon started; PUT /v1/config can name it'),
    services: z.array(
      z
        .object({
          protocol: ProtocolSchema,
          address: z.string().describe('the VIP (or an xdpvs VIP prefix ADDR/LEN)'),
          port: z.number().int().min(0).max(65535).describe('0: every port (persistent services)'),
          scheduler: z.string(),
          flags: z.array(z.string()),
          persistent: z.number().int().min(1).optional().describe('persistence timeout in seconds, when persistent (ipvsadm -p)'),
          netmask: z.string().optional().describe('persistence netmask as ipvsadm prints it: dotted (IPv4) or a length (IPv6)'),
          servers: z
            .array(
              z
                .object({
                  address: z.string(),
                  port: z.number().int().min(0).max(65535),
                  method: MethodSchema,
                  weight: z.number().int().min(0).max(MAX_WEIGHT),
                  upperThreshold: z.number().int().min(1).optional().describe('ipvsadm -x, when set'),
                  lowerThreshold: z.number().int().min(1).optional().describe('ipvsadm -y, when set'),
                })
                .strict(),
            )
            .describe('in scheduling order'),
        })
        .strict(),
    ),
  })
  .strict()
  .describe('the configuration without counters, as PUT /v1/config takes it')
  .openapi('Config');

export const ConfigChangesSchema = z
  .object({
    servicesAdded: z.number().int().min(0),
    servicesEdited: z.number().int().min(0),
    servicesRemoved: z.number().int().min(0),
    serversAdded: z.number().int().min(0),
    serversEdited: z.number().int().min(0),
    serversRemoved: z.number().int().min(0),
  })
  .strict()
  .openapi('ConfigChanges');

export const ConfigResultSchema = ConfigViewSchema.extend({ changes: ConfigChangesSchema })
  .strict()
  .describe('the configuration as applied, and what changed')
  .openapi('ConfigResult');

const count = (what: string) => z.number().int().min(0).describe(what);

export const SyncStatusSchema = z
  .object({
    sender: z.string().describe("this daemon's sender id (hex, new at each start), as peers count its datagrams"),
    listen: z.string().nullable().describe('where peers\' datagrams are received (--sync-listen), null: send only'),
    peers: z.array(z.string()).describe('where this director\'s connections are sent (--sync-peer)'),
    queued: count('events waiting to be sent'),
    counters: z
      .object({
        events: count("events read from the data plane's ring"),
        peerStarts: count('peers heard starting (a new sender id): each time every live connection is sent to the peers'),
        ringDrops: count('events the data plane lost to a full ring'),
        queueDrops: count('events dropped because the send queue was full'),
        refreshed: count('live connections announced again by the periodic refresh'),
        unmapped: count('events of a real server removed meanwhile: not sent'),
        sentEntries: count('connection entries sent'),
        sentDatagrams: count('datagrams sent (each to every peer)'),
        sendErrors: count('datagrams the kernel refused to send'),
        receivedDatagrams: count('datagrams received'),
        receivedEntries: count('entries in authenticated, fresh datagrams'),
        applied: count('entries written into the connection table'),
        unknown: count('entries of a service or real server this director does not have'),
        older: count('entries older than the one this director holds'),
        invalid: count('entries with impossible fields'),
        rejectedAuth: count('datagrams whose HMAC did not match (another key, or forged)'),
        rejectedMalformed: count('datagrams that are not sync datagrams of this version'),
        rejectedReplay: count('authenticated datagrams seen before, or our own reflected'),
        rejectedStale: count("authenticated datagrams whose sender's clock is more than 30 s from ours"),
      })
      .strict(),
  })
  .strict()
  .openapi('SyncStatus');

export const ReloadResultSchema = z
  .object({
    file: z.string().describe('the keepalived.conf read'),
    files: z.array(z.string()).describe('it and every file it includes'),
    routerId: z.string().nullable().describe('global_defs router_id'),
    services: z.array(z.string()).describe('the services the file names, PROTO:ADDR:PORT'),
    changes: ConfigChangesSchema,
    notices: z.array(z.string()).describe('what was read but is not applied (unsupported keywords and the like)'),
  })
  .strict()
  .openapi('ReloadResult');

const ERROR_CODES = Object.values(ErrorCode) as [ErrorCode, ...ErrorCode[]];
export const ErrorBodySchema = z
  .object({
    error: z
      .object({
        code: z.enum(ERROR_CODES).describe('stable code; clients test the code, not the message'),
        message: z.string(),
      })
      .passthrough()
      .describe('more fields may say what is wrong, e.g. "field"'),
  })
  .strict()
  .openapi('ErrorBody');

// ---- the compile-time lock: each schema infers exactly the domain's type ---------------------------------------

type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
function locked<T extends true>(): T | undefined {
  return undefined;
}
locked<Same<z.infer<typeof ProtocolSchema>, Protocol>>();
locked<Same<z.infer<typeof FamilySchema>, Family>>();
locked<Same<z.infer<typeof MethodSchema>, Method>>();
locked<Same<z.infer<typeof CountersSchema>, Counters>>();
locked<Same<z.infer<typeof RatesSchema>, Rates>>();
locked<Same<z.infer<typeof NeighbourViewSchema>, NeighbourView>>();
locked<Same<z.infer<typeof HealthViewSchema>, HealthView>>();
locked<Same<z.infer<typeof RealServerViewSchema>, RealServerView>>();
locked<Same<z.infer<typeof ServiceViewSchema>, ServiceView>>();
locked<Same<z.infer<typeof ConnectionViewSchema>, ConnectionView>>();
locked<Same<z.infer<typeof TimeoutsViewSchema>, TimeoutsView>>();
locked<Same<z.infer<typeof InfoViewSchema>, InfoView>>();
locked<Same<z.infer<typeof ConfigViewSchema>, ConfigView>>();
locked<Same<z.infer<typeof ConfigChangesSchema>, ConfigChanges>>();
locked<Same<z.infer<typeof ReloadResultSchema>, LoadResult>>();
locked<Same<z.infer<typeof SyncStatusSchema>, SyncStatus>>();
