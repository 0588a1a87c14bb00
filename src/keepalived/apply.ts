// Loading keepalived.conf into a running xdpvsd, at start and on every reload (SIGHUP, POST /v1/reload): the
// services it names become the balancer's through one all-or-nothing replaceConfig (unchanged services and real
// servers get no step at all: same ids, same counters, same connections), then the health monitor follows.

import { XdpvsError, isXdpvsError } from '../errors.js';
import type { HealthMonitor } from '../health/monitor.js';
import type { ServiceHealthSpec } from '../health/types.js';
import { formatEndpoint, parseAddress } from '../lb/address.js';
import type { Balancer } from '../lb/balancer.js';
import type { ConfigChanges, ConfigServer, ConfigService } from '../lb/model.js';
import type { Logger } from '../log.js';
import { formatNotices, loadKeepalivedConfig, type KeepalivedConfig } from './config.js';

export interface LoadResult {
  file: string;
  files: string[];
  routerId: string | null;
  services: string[];
  changes: ConfigChanges;
  notices: string[];
}

type Target = Pick<Balancer, 'getConfig' | 'replaceConfig'>;

function svcId(s: Pick<ConfigService, 'protocol' | 'address' | 'port'>): string {
  return `${s.protocol}:${formatEndpoint(parseAddress(s.address), s.port)}`;
}

export class KeepalivedLoader {
  /** Services the file named at the last successful load: a reload removes those it no longer names, no others. */
  private owned = new Set<string>();
  private running: Promise<LoadResult> | undefined;
  routerId: string | undefined;

  constructor(
    private readonly file: string,
    private readonly balancer: Target,
    private readonly monitor: HealthMonitor,
    private readonly log: Logger,
  ) {}

  /** Reads the file and applies it; concurrent calls share one run. Throws XdpvsError (FILE:LINE) and changes nothing. */
  load(): Promise<LoadResult> {
    this.running ??= this.doLoad().finally(() => (this.running = undefined));
    return this.running;
  }

  private async doLoad(): Promise<LoadResult> {
    const cfg = loadKeepalivedConfig(this.file);
    const notices = formatNotices(cfg);
    for (const n of notices) this.log('info', `keepalived.conf: ${n}`);
    const changes = await this.apply(cfg);
    this.routerId = cfg.routerId;
    const result: LoadResult = {
      file: this.file,
      files: cfg.files,
      routerId: cfg.routerId ?? null,
      services: cfg.services.map((s) => s.id),
      changes,
      notices,
    };
    this.log('info', `loaded ${this.file}: ${cfg.services.length} virtual server(s)`, { changes, routerId: cfg.routerId ?? null });
    return result;
  }

  /** The configuration as replaceConfig takes it: other services as they are, the file's, and live sorry servers. */
  async apply(cfg: KeepalivedConfig): Promise<ConfigChanges> {
    const current = this.balancer.getConfig().services;
    const named = new Set(cfg.services.map((s) => s.id));
    const sorry = this.monitor.sorryServers();
    const kept = current.filter((s) => !named.has(svcId(s)) && !this.owned.has(svcId(s)));
    const desired: ConfigService[] = kept.map((s) => ({ ...s, servers: s.servers.map((r) => ({ ...r })) }));
    const offset = desired.length;
    for (const s of cfg.services) {
      const servers: ConfigServer[] = s.servers.map((r) => ({ address: r.address, port: r.port, method: r.method, weight: r.weight }));
      // A sorry server in the table stays through the reload; the monitor then keeps or removes it.
      const live = sorry.get(s.id);
      const cur = current.find((c) => svcId(c) === s.id);
      if (live && cur) {
        const key = formatEndpoint(parseAddress(live.address), live.port);
        const inTable = cur.servers.find((r) => formatEndpoint(parseAddress(r.address), r.port) === key);
        if (inTable && !servers.some((r) => formatEndpoint(parseAddress(r.address), r.port ?? s.port) === key)) servers.push({ ...inTable });
      }
      desired.push({ protocol: s.protocol, address: s.address, port: s.port, scheduler: s.scheduler, flags: s.flags, persistent: s.persistent, netmask: s.netmask, servers });
    }

    let changes: ConfigChanges;
    try {
      ({ changes } = await this.balancer.replaceConfig(desired));
    } catch (e) {
      throw this.locate(e, cfg, offset);
    }
    const health = new Map<string, ServiceHealthSpec>();
    for (const s of cfg.services) health.set(s.id, s.health);
    await this.monitor.configure(health);
    this.owned = named;
    return changes;
  }

  /** A balancer error about desired[i] (details.at) becomes one about the file's line. */
  private locate(e: unknown, cfg: KeepalivedConfig, offset: number): unknown {
    if (!isXdpvsError(e)) return e;
    const at = e.details.at as { service?: number; server?: number } | undefined;
    if (!at || at.service === undefined || at.service < offset) return e;
    const svc = cfg.services[at.service - offset];
    if (!svc) return e;
    const loc = at.server !== undefined && svc.servers[at.server] ? svc.servers[at.server].loc : svc.loc;
    const { at: _at, ...rest } = e.details;
    return new XdpvsError(e.code, `${loc.file}:${loc.line}: ${e.message}`, { ...rest, file: loc.file, line: loc.line });
  }
}
