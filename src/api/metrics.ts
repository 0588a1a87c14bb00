// GET /metrics: Prometheus text format (prom-client), every value read from the data plane's maps at scrape time.
//
// One scrape takes one snapshot (the connection table is walked once, as for -Ln) and fills every series from it;
// series of services and real servers that are gone disappear with them. Scrapes run one at a time, so two
// concurrent scrapes never interleave their snapshots. Counters come straight from the data plane's per-CPU counters
// (summed); zeroing them (ipvsadm -Z) shows as a counter reset, which Prometheus's rate() handles.

import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';
import type { ServiceView } from '../lb/model.js';
import type { SyncStatus } from '../sync/conn-sync.js';

/** What the collector reads; the Balancer provides it. */
export interface MetricsSource {
  listServices(): ServiceView[];
  reasons(): Record<string, number>;
  readonly connTableSize: number;
}

export interface MetricsOptions {
  source: MetricsSource;
  info: () => { version: string; interfaces: { name: string; ifindex: number; xdpMode: string }[] };
  /** Add prom-client's default metrics of the daemon process itself (CPU, memory, event loop, GC). */
  processMetrics?: boolean;
  /** Connection sync's counters (src/sync), when xdpvsd runs it: xdpvs_sync_total{counter}, xdpvs_sync_queued. */
  sync?: () => SyncStatus;
}

const SVC = ['service'] as const;
const RS = ['service', 'real_server', 'method'] as const;

/** The five data-plane counters, named as node_exporter names IPVS's (incoming/outgoing packets and bytes). */
const COUNTERS = [
  ['conns', 'connections_total', 'Connections scheduled (new flows).'],
  ['inpkts', 'incoming_packets_total', 'Packets from clients.'],
  ['outpkts', 'outgoing_packets_total', 'Packets to clients through the director (NAT only; 0 for DR and TUN).'],
  ['inbytes', 'incoming_bytes_total', 'Bytes from clients, counted from the IP header as IPVS does.'],
  ['outbytes', 'outgoing_bytes_total', 'Bytes to clients through the director (NAT only).'],
] as const;

type StatKey = (typeof COUNTERS)[number][0];

const HEALTH_STATES = ['up', 'down', 'unchecked'] as const satisfies readonly NonNullable<ServiceView['servers'][number]['health']>['state'][];

export class Metrics {
  readonly registry = new Registry();
  private queue: Promise<unknown> = Promise.resolve();
  /** Every xdpvs_ metric, reset before each scrape fills them (the process metrics keep their own state). */
  private readonly own: { reset(): void }[] = [];

  private readonly buildInfo: Gauge<'version' | 'node_version'>;
  private readonly interfaceInfo: Gauge<'interface' | 'ifindex' | 'xdp_mode'>;
  private readonly connTableSize: Gauge;
  private readonly serviceInfo: Gauge<'service' | 'protocol' | 'address' | 'port' | 'family' | 'scheduler' | 'flags'>;
  private readonly serviceCounters: [StatKey, Counter<(typeof SVC)[number]>][];
  private readonly serviceActive: Gauge<(typeof SVC)[number]>;
  private readonly serviceInactive: Gauge<(typeof SVC)[number]>;
  private readonly serviceRealServers: Gauge<(typeof SVC)[number]>;
  private readonly rsCounters: [StatKey, Counter<(typeof RS)[number]>][];
  private readonly rsActive: Gauge<(typeof RS)[number]>;
  private readonly rsInactive: Gauge<(typeof RS)[number]>;
  private readonly rsWeight: Gauge<(typeof RS)[number]>;
  private readonly rsNeighbour: Gauge<(typeof RS)[number]>;
  private readonly rsHealth: Gauge<(typeof RS)[number] | 'state'>;
  private readonly rsEffectiveWeight: Gauge<(typeof RS)[number]>;
  private readonly reasons: Counter<'reason'>;
  private readonly sync?: { counters: Counter<'counter'>; queued: Gauge };

  constructor(private readonly opts: MetricsOptions) {
    const registers = [this.registry];
    const gauge = <L extends string>(name: string, help: string, labelNames: readonly L[] = []) => {
      const g = new Gauge<L>({ name, help, labelNames, registers });
      this.own.push(g);
      return g;
    };
    const counter = <L extends string>(name: string, help: string, labelNames: readonly L[]) => {
      const c = new Counter<L>({ name, help, labelNames, registers });
      this.own.push(c);
      return c;
    };

    this.buildInfo = gauge('xdpvs_build_info', 'Always 1; the labels say which xdpvsd runs.', ['version', 'node_version']);
    this.interfaceInfo = gauge('xdpvs_interface_info', 'Always 1 for each interface the director program is attached to.', ['interface', 'ifindex', 'xdp_mode']);
    this.connTableSize = gauge('xdpvs_connection_table_size', 'Capacity of the connection table (entries).');
    this.serviceInfo = gauge('xdpvs_service_info', 'Always 1 for each virtual service; the labels carry its settings.', [
      'service',
      'protocol',
      'address',
      'port',
      'family',
      'scheduler',
      'flags',
    ]);
    this.serviceCounters = COUNTERS.map(([k, suffix, help]) => [k, counter(`xdpvs_service_${suffix}`, `Virtual service: ${help}`, SVC)]);
    this.serviceActive = gauge('xdpvs_service_connections_active', 'Connections of the service in ESTABLISHED (sum over its real servers).', SVC);
    this.serviceInactive = gauge('xdpvs_service_connections_inactive', 'Connections of the service in any other state (sum over its real servers).', SVC);
    this.serviceRealServers = gauge('xdpvs_service_real_servers', 'Real servers configured for the service.', SVC);
    this.rsCounters = COUNTERS.map(([k, suffix, help]) => [k, counter(`xdpvs_real_server_${suffix}`, `Real server: ${help}`, RS)]);
    this.rsActive = gauge('xdpvs_real_server_connections_active', 'Connections to the real server in ESTABLISHED (ipvsadm ActiveConn).', RS);
    this.rsInactive = gauge('xdpvs_real_server_connections_inactive', 'Connections to the real server in any other state (ipvsadm InActConn).', RS);
    this.rsWeight = gauge('xdpvs_real_server_weight', 'Configured weight (0: quiescent, no new connections).', RS);
    this.rsNeighbour = gauge(
      'xdpvs_real_server_neighbour_resolved',
      '1 when the director knows the MAC to forward to (the real server takes new connections), 0 when it does not yet.',
      RS,
    );
    this.rsHealth = gauge(
      'xdpvs_real_server_health',
      'Health check state: 1 for the current state (up, down, unchecked), 0 for the others; only for real servers the health monitor knows.',
      [...RS, 'state'],
    );
    this.rsEffectiveWeight = gauge(
      'xdpvs_real_server_effective_weight',
      'The weight the data plane schedules with now: 0 while health checks hold the real server out of rotation.',
      RS,
    );
    this.reasons = counter(
      'xdpvs_datapath_packets_total',
      'Packets the XDP program handled, by the reason of its verdict (pass_*: to the kernel, drop_*: dropped, the rest sent on).',
      ['reason'],
    );

    if (opts.sync) {
      this.sync = {
        counters: counter('xdpvs_sync_total', 'Connection sync between directors, by counter (GET /v1/sync and docs/sync.md name each).', ['counter']),
        queued: gauge('xdpvs_sync_queued', 'Connection sync events waiting to be sent to the peers.'),
      };
    }
    if (opts.processMetrics) collectDefaultMetrics({ register: this.registry, prefix: 'xdpvsd_' });
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** The exposition text, from a fresh snapshot of the maps. */
  scrape(): Promise<string> {
    const run = this.queue.then(() => this.collect());
    this.queue = run.catch(() => undefined);
    return run;
  }

  private collect(): Promise<string> {
    const { source } = this.opts;
    const info = this.opts.info();
    const services = source.listServices();
    const reasons = source.reasons();

    for (const m of this.own) m.reset();
    this.buildInfo.set({ version: info.version, node_version: process.version }, 1);
    for (const i of info.interfaces) this.interfaceInfo.set({ interface: i.name, ifindex: String(i.ifindex), xdp_mode: i.xdpMode }, 1);
    this.connTableSize.set(source.connTableSize);

    for (const s of services) {
      const svc = { service: s.id };
      this.serviceInfo.set(
        { ...svc, protocol: s.protocol, address: s.address, port: String(s.port), family: s.family, scheduler: s.scheduler, flags: s.flags.join(',') },
        1,
      );
      for (const [k, c] of this.serviceCounters) c.inc(svc, s.stats[k]);
      let active = 0;
      let inactive = 0;
      for (const rs of s.servers) {
        const l = { service: s.id, real_server: rs.id, method: rs.method };
        for (const [k, c] of this.rsCounters) c.inc(l, rs.stats[k]);
        this.rsActive.set(l, rs.activeConns);
        this.rsInactive.set(l, rs.inactiveConns);
        this.rsWeight.set(l, rs.weight);
        this.rsNeighbour.set(l, rs.neighbour.resolved ? 1 : 0);
        if (rs.health) {
          for (const state of HEALTH_STATES) this.rsHealth.set({ ...l, state }, rs.health.state === state ? 1 : 0);
          this.rsEffectiveWeight.set(l, rs.health.effectiveWeight);
        }
        active += rs.activeConns;
        inactive += rs.inactiveConns;
      }
      this.serviceActive.set(svc, active);
      this.serviceInactive.set(svc, inactive);
      this.serviceRealServers.set(svc, s.servers.length);
    }

    for (const [reason, n] of Object.entries(reasons)) this.reasons.inc({ reason }, n);
    if (this.sync && this.opts.sync) {
      const st = this.opts.sync();
      for (const [name, n] of Object.entries(st.counters)) this.sync.counters.inc({ counter: name }, n);
      this.sync.queued.set(st.queued);
    }
    return this.registry.metrics();
  }
}
