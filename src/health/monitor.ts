// The health monitor: runs every checker on its own timer (bounded concurrency), folds checker verdicts into a real
// server's state, tells the balancer who may be scheduled (failed: out; inhibit_on_failure: listed at weight 0),
// keeps keepalived's quorum/hysteresis and sorry server, and logs and notifies every change.

import { formatEndpoint, parseAddress } from '../lb/address.js';
import type { ServerHealth } from '../lb/balancer.js';
import type { HealthView, RealServerPatch, RealServerSpec } from '../lb/model.js';
import type { Logger } from '../log.js';
import { Limiter } from './limiter.js';
import type { HealthEvent, Notifier } from './notify.js';
import { realProbe, type ProbeFn, type ProbeResult } from './probes.js';
import { CheckerState } from './state.js';
import type { CheckSpec, ServerHealthSpec, ServiceHealthSpec, SorryServerSpec } from './types.js';

export const DEFAULT_MAX_IN_FLIGHT = 256;

/** What the monitor changes: the balancer (src/lb/balancer.ts) implements it. */
export interface HealthTarget {
  setServerHealth(svc: string, rs: string, health: ServerHealth | undefined): Promise<void>;
  addServer(svc: string, spec: RealServerSpec): Promise<unknown>;
  editServer(svc: string, rs: string, patch: RealServerPatch): Promise<unknown>;
  deleteServer(svc: string, rs: string): Promise<unknown>;
}

export interface MonitorOptions {
  target: HealthTarget;
  log: Logger;
  notifier?: Notifier;
  /** Probes in flight at most (default 256); the others wait their turn. */
  maxInFlight?: number;
  probe?: ProbeFn;
  /** [0, 1) for warmup; Math.random by default. */
  random?: () => number;
  /** keepalived global_defs router_id, carried in logs and webhooks. */
  routerId?: string;
}

class Checker {
  state: CheckerState;
  timer: NodeJS.Timeout | undefined;
  stopped = false;
  /** misc_dynamic: the weight the last successful run asked for. */
  weight: number | undefined;
  runs = 0;

  constructor(readonly spec: CheckSpec, readonly key: string) {
    this.state = new CheckerState(spec.timing);
  }
}

interface ServerEntry {
  svc: string;
  id: string;
  spec: ServerHealthSpec;
  checkers: Checker[];
  /** In rotation as far as the checkers go: all up. */
  alive: boolean;
  state: HealthView['state'];
  since: string | null;
  /** The last pushed health, as JSON: pushes only what changed. */
  pushed?: string;
}

interface ServiceEntry {
  id: string;
  spec: ServiceHealthSpec;
  servers: Map<string, ServerEntry>;
  quorumUp: boolean;
  /** The sorry server is taking the traffic (quorum lost). */
  sorryActive: boolean;
  /** The sorry server (id) the monitor added to the balancer, if any. */
  sorryPresent?: { id: string; spec: SorryServerSpec };
  /** Its health has been told to the balancer since it was added. */
  sorryPushed?: boolean;
}

function checkKey(c: CheckSpec): string {
  return JSON.stringify(c, (_k, v: unknown) => (Buffer.isBuffer(v) ? v.toString('hex') : v));
}

function rsId(address: string, port: number): string {
  return formatEndpoint(parseAddress(address), port);
}

export class HealthMonitor {
  private readonly services = new Map<string, ServiceEntry>();
  private readonly limiter: Limiter;
  private readonly probe: ProbeFn;
  private readonly random: () => number;
  private stopped = false;
  /** Serialises quorum and sorry-server changes of all services (they await the balancer). */
  private chain: Promise<void> = Promise.resolve();

  constructor(private readonly opts: MonitorOptions) {
    this.limiter = new Limiter(opts.maxInFlight ?? DEFAULT_MAX_IN_FLIGHT);
    this.probe = opts.probe ?? realProbe;
    this.random = opts.random ?? Math.random;
  }

  /** keepalived global_defs router_id, for logs and webhooks (known once the file is read). */
  setRouterId(id: string | undefined): void {
    this.opts.routerId = id;
  }

  /** Probes in flight now, and the most there ever were. */
  get concurrency(): { inFlight: number; peak: number; queued: number } {
    return { inFlight: this.limiter.inFlight, peak: this.limiter.peak, queued: this.limiter.queued };
  }

  /** How many probes each checker of a real server has completed (tests). */
  runsOf(svc: string, rs: string): number[] {
    return this.services.get(svc)?.servers.get(rs)?.checkers.map((c) => c.runs) ?? [];
  }

  /** The sorry servers the monitor has added, per service, so that a reload keeps them. */
  sorryServers(): Map<string, { address: string; port: number; method: SorryServerSpec['method']; weight: number }> {
    const out = new Map<string, { address: string; port: number; method: SorryServerSpec['method']; weight: number }>();
    for (const s of this.services.values()) {
      if (s.sorryPresent) out.set(s.id, { address: s.sorryPresent.spec.address, port: s.sorryPresent.spec.port, method: s.sorryPresent.spec.method, weight: 1 });
    }
    return out;
  }

  /**
   * Makes the monitored set `services` (id -> spec). Checkers whose spec did not change keep running with their
   * state; new ones start (after their warmup); removed ones stop. The services and real servers must exist in
   * the balancer already.
   */
  async configure(services: Map<string, ServiceHealthSpec>): Promise<void> {
    for (const [id, old] of this.services) {
      if (services.has(id)) continue;
      for (const rs of old.servers.values()) this.stopServer(rs);
      this.services.delete(id);
    }
    for (const [id, spec] of services) {
      let svc = this.services.get(id);
      if (!svc) {
        svc = { id, spec, servers: new Map(), quorumUp: true, sorryActive: false };
        this.services.set(id, svc);
      }
      const oldSorry = svc.sorryPresent;
      svc.spec = spec;
      for (const [rid, rs] of svc.servers) {
        if (spec.servers.has(rid)) continue;
        this.stopServer(rs);
        svc.servers.delete(rid);
      }
      for (const [rid, rsSpec] of spec.servers) {
        const existing = svc.servers.get(rid);
        if (existing) this.updateServer(existing, rsSpec);
        else svc.servers.set(rid, this.startServer(id, rid, rsSpec));
      }
      // A sorry server that changed or went from the configuration leaves.
      if (oldSorry && (!spec.sorryServer || rsId(spec.sorryServer.address, spec.sorryServer.port) !== oldSorry.id || spec.sorryServer.method !== oldSorry.spec.method)) {
        await this.opts.target.deleteServer(id, oldSorry.id).catch((e) => this.opts.log('warn', `removing old sorry server ${oldSorry.id}: ${(e as Error).message}`, { service: id }));
        svc.sorryPresent = undefined;
        svc.sorryActive = false;
        svc.sorryPushed = false;
      }
    }
    await this.enqueue(async () => {
      for (const svc of this.services.values()) {
        for (const rs of svc.servers.values()) await this.push(svc, rs);
        await this.evaluateQuorum(svc, true);
      }
    });
  }

  /** Stops every checker. With keepalived's omega, first runs the down notifiers of what was up. */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const svc of this.services.values()) {
      for (const rs of svc.servers.values()) {
        if (svc.spec.omega && rs.alive && rs.checkers.length > 0) this.notifyServer(svc, rs, false, 'shutting down (omega)');
        this.stopServer(rs);
      }
      if (svc.spec.omega && svc.quorumUp) this.notifyQuorum(svc, false, this.weightSum(svc));
    }
    await this.chain;
    await this.opts.notifier?.idle();
  }

  // ---- checkers -------------------------------------------------------------------------------------------

  private startServer(svc: string, id: string, spec: ServerHealthSpec): ServerEntry {
    const checkers = spec.checks.map((c) => new Checker(c, checkKey(c)));
    const rs: ServerEntry = {
      svc,
      id,
      spec,
      checkers,
      alive: checkers.every((c) => c.state.up),
      state: 'unchecked',
      since: null,
    };
    for (const c of checkers) this.schedule(rs, c, Math.floor(this.random() * c.spec.timing.warmupMs));
    return rs;
  }

  /** Keeps checkers whose spec is unchanged (with their state), starts the new ones, stops the others. */
  private updateServer(rs: ServerEntry, spec: ServerHealthSpec): void {
    const old = new Map<string, Checker[]>();
    for (const c of rs.checkers) old.set(c.key, [...(old.get(c.key) ?? []), c]);
    const next: Checker[] = [];
    for (const cs of spec.checks) {
      const key = checkKey(cs);
      const kept = old.get(key)?.shift();
      if (kept) next.push(kept);
      else {
        const c = new Checker(cs, key);
        next.push(c);
        this.schedule(rs, c, Math.floor(this.random() * cs.timing.warmupMs));
      }
    }
    for (const cs of old.values()) for (const c of cs) this.stopChecker(c);
    rs.checkers = next;
    rs.spec = spec;
    rs.alive = next.every((c) => c.state.up);
    rs.state = this.stateOf(rs);
  }

  private stopServer(rs: ServerEntry): void {
    for (const c of rs.checkers) this.stopChecker(c);
  }

  private stopChecker(c: Checker): void {
    c.stopped = true;
    if (c.timer) clearTimeout(c.timer);
    c.timer = undefined;
  }

  private schedule(rs: ServerEntry, c: Checker, delayMs: number): void {
    if (c.stopped || this.stopped) return;
    c.timer = setTimeout(() => {
      c.timer = undefined;
      void this.runCheck(rs, c);
    }, delayMs);
  }

  private async runCheck(rs: ServerEntry, c: Checker): Promise<void> {
    if (c.stopped) return;
    let result: ProbeResult;
    try {
      result = await this.limiter.run(() => (c.stopped ? Promise.resolve({ ok: true }) : this.probe(c.spec.probe, c.spec.timing.connectTimeoutMs)));
    } catch (e) {
      result = { ok: false, error: (e as Error).message };
    }
    if (c.stopped) return;
    c.runs++;
    if (result.ok && result.weight !== undefined) c.weight = result.weight;
    const step = c.state.record(result.ok, result.error);
    if (!result.ok && !step.changed) {
      this.opts.log('debug', `${c.spec.name} failed (${c.state.failures}/${c.spec.timing.retries} retries): ${result.error}`, { service: rs.svc, server: rs.id });
    }
    this.schedule(rs, c, step.delayMs);
    const svc = this.services.get(rs.svc);
    if (!svc || svc.servers.get(rs.id) !== rs) return;
    await this.enqueue(() => this.afterCheck(svc, rs, c));
  }

  // ---- folding verdicts ------------------------------------------------------------------------------------

  private stateOf(rs: ServerEntry): HealthView['state'] {
    if (rs.checkers.length === 0) return 'unchecked';
    if (rs.alive) return rs.checkers.every((c) => c.state.verdict === 'up') ? 'up' : 'unchecked';
    return rs.checkers.some((c) => c.state.verdict === 'down') ? 'down' : 'unchecked';
  }

  private async afterCheck(svc: ServiceEntry, rs: ServerEntry, c: Checker): Promise<void> {
    const wasAlive = rs.alive;
    const wasState = rs.state;
    rs.alive = rs.checkers.every((x) => x.state.up);
    rs.state = this.stateOf(rs);
    if (rs.state !== wasState) rs.since = new Date().toISOString();
    if (rs.alive !== wasAlive) {
      const down = rs.checkers.find((x) => !x.state.up);
      const error = rs.alive ? null : (down?.state.lastError ?? c.state.lastError);
      this.opts.log(rs.alive ? 'info' : 'warn', `real server ${rs.id} of ${svc.id} is ${rs.alive ? 'up' : 'down'}${error ? `: ${error}` : ''}`, {
        service: svc.id,
        server: rs.id,
        state: rs.alive ? 'up' : 'down',
        checker: (down ?? c).spec.name,
        inhibitOnFailure: rs.spec.inhibitOnFailure,
        routerId: this.opts.routerId ?? null,
      });
      this.notifyServer(svc, rs, rs.alive, error);
    }
    await this.push(svc, rs);
    await this.evaluateQuorum(svc, false);
  }

  private dynamicWeight(rs: ServerEntry): number | undefined {
    let w: number | undefined;
    for (const c of rs.checkers) if (c.spec.probe.kind === 'misc' && c.spec.probe.dynamic && c.weight !== undefined) w = c.weight;
    return w;
  }

  private weightSum(svc: ServiceEntry): number {
    let sum = 0;
    for (const rs of svc.servers.values()) if (rs.alive) sum += this.dynamicWeight(rs) ?? rs.spec.weight;
    return sum;
  }

  /** Tells the balancer what it should schedule for one real server, if that changed. */
  private async push(svc: ServiceEntry, rs: ServerEntry): Promise<void> {
    const eligible = rs.alive && !svc.sorryActive;
    const down = rs.checkers.find((c) => c.state.verdict === 'down') ?? rs.checkers.find((c) => c.state.lastError);
    const health: ServerHealth = {
      view: {
        state: rs.state,
        since: rs.since,
        lastError: rs.checkers.map((c) => c.state.lastError).find((e) => e !== null) ?? null,
        checker: (down ?? rs.checkers[0])?.spec.name ?? null,
        listed: eligible || rs.spec.inhibitOnFailure,
      },
      eligible,
      weight: this.dynamicWeight(rs),
    };
    if (!health.view.lastError) health.view.lastError = null;
    const text = JSON.stringify(health);
    if (text === rs.pushed) return;
    try {
      await this.opts.target.setServerHealth(svc.id, rs.id, health);
      rs.pushed = text;
    } catch (e) {
      this.opts.log('warn', `could not apply health of ${rs.id} in ${svc.id}: ${(e as Error).message}`, { service: svc.id, server: rs.id });
    }
  }

  /** keepalived's update_quorum_state(): quorum +- hysteresis, quorum_up / quorum_down, the sorry server. */
  private async evaluateQuorum(svc: ServiceEntry, init: boolean): Promise<void> {
    const { quorum, hysteresis, sorryServer } = svc.spec;
    const sum = this.weightSum(svc);
    const threshold = quorum + (svc.quorumUp ? -1 : 1) * hysteresis;
    if (!svc.quorumUp && sum >= threshold) {
      svc.quorumUp = true;
      this.opts.log('info', `gained quorum ${quorum}+${hysteresis}=${threshold} <= ${sum} for ${svc.id}`, { service: svc.id, weightSum: sum });
      this.notifyQuorum(svc, true, sum);
      await this.setSorry(svc, false);
    } else if ((svc.quorumUp && (sum === 0 || sum < threshold)) || (init && !svc.quorumUp && sorryServer && !svc.sorryActive)) {
      if (svc.quorumUp) {
        svc.quorumUp = false;
        this.opts.log('warn', `lost quorum ${quorum}-${hysteresis}=${threshold} > ${sum} for ${svc.id}`, { service: svc.id, weightSum: sum });
        this.notifyQuorum(svc, false, sum);
      }
      await this.setSorry(svc, true);
    } else {
      await this.setSorry(svc, !svc.quorumUp);
    }
  }

  /**
   * Brings the sorry server in (quorum lost: it takes the traffic, the real servers leave the table) or out (it is
   * removed, or with sorry_server_inhibit kept listed at weight 0).
   */
  private async setSorry(svc: ServiceEntry, active: boolean): Promise<void> {
    const s = svc.spec.sorryServer;
    const wasActive = svc.sorryActive;
    svc.sorryActive = Boolean(s) && active;
    if (!s) return;
    const id = rsId(s.address, s.port);
    const wantPresent = svc.sorryActive || s.inhibit;
    let added = false;
    try {
      if (wantPresent && !svc.sorryPresent) {
        await this.opts.target.addServer(svc.id, { address: s.address, port: s.port, method: s.method, weight: 1 });
        svc.sorryPresent = { id, spec: s };
        added = true;
      } else if (!wantPresent && svc.sorryPresent) {
        await this.opts.target.deleteServer(svc.id, id);
        svc.sorryPresent = undefined;
        svc.sorryPushed = false;
      }
      if (svc.sorryPresent && (added || svc.sorryActive !== wasActive || !svc.sorryPushed)) {
        svc.sorryPushed = true;
        await this.opts.target.setServerHealth(svc.id, id, {
          view: { state: 'unchecked', since: null, lastError: null, checker: null, listed: true, role: 'sorry' },
          eligible: svc.sorryActive,
        });
      }
    } catch (e) {
      this.opts.log('error', `sorry server ${id} of ${svc.id}: ${(e as Error).message}`, { service: svc.id });
    }
    if (svc.sorryActive !== wasActive) {
      this.opts.log(svc.sorryActive ? 'warn' : 'info', svc.sorryActive ? `sorry server ${id} takes the traffic of ${svc.id}` : `sorry server ${id} of ${svc.id} no longer needed`, { service: svc.id, server: id });
      for (const rs of svc.servers.values()) await this.push(svc, rs);
    }
  }

  // ---- notifications ---------------------------------------------------------------------------------------

  private event(svc: ServiceEntry, kind: HealthEvent['event'], extra: Partial<HealthEvent>): HealthEvent {
    return { event: kind, time: new Date().toISOString(), routerId: this.opts.routerId ?? null, service: svc.id, ...extra };
  }

  private notifyServer(svc: ServiceEntry, rs: ServerEntry, up: boolean, error: string | null): void {
    const n = this.opts.notifier;
    if (!n) return;
    const down = rs.checkers.find((c) => !c.state.up);
    const ev = this.event(svc, up ? 'server-up' : 'server-down', { server: rs.id, checker: (down ?? rs.checkers[0])?.spec.name ?? null, error });
    const argv = up ? rs.spec.notifyUp : rs.spec.notifyDown;
    if (argv) n.command(argv, ev);
    n.webhook(ev);
  }

  private notifyQuorum(svc: ServiceEntry, up: boolean, sum: number): void {
    const n = this.opts.notifier;
    if (!n) return;
    const ev = this.event(svc, up ? 'quorum-gained' : 'quorum-lost', { weightSum: sum, quorum: svc.spec.quorum });
    const argv = up ? svc.spec.quorumUp : svc.spec.quorumDown;
    if (argv) n.command(argv, ev);
    n.webhook(ev);
  }

  private enqueue(fn: () => Promise<void>): Promise<void> {
    const run = this.chain.then(fn, fn);
    this.chain = run.catch((e) => this.opts.log('error', `health monitor: ${(e as Error).message}`));
    return run;
  }
}
