// The health monitor over the real balancer (in-memory maps): keepalived's retry/rise timing on a fake clock, who is
// scheduled, inhibit_on_failure, quorum/hysteresis, the sorry server, notifications, and thousands of checkers.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { HealthMonitor } from '../../src/health/monitor.js';
import type { HealthEvent, Notifier } from '../../src/health/notify.js';
import type { ProbeFn, ProbeResult } from '../../src/health/probes.js';
import { CheckerState } from '../../src/health/state.js';
import type { CheckSpec, CheckTiming, ServerHealthSpec, ServiceHealthSpec } from '../../src/health/types.js';
import { formatList } from '../../src/cli/format.js';
import { fakeDirector } from '../helpers/fake-director.js';

const SVC = 'tcp:198.18.0.100:80';
const RS1 = '198.18.0.11:80';
const RS2 = '198.18.0.12:80';
const SORRY = '198.18.0.13:80';

function timing(t: Partial<CheckTiming> = {}): CheckTiming {
  return { intervalMs: 6000, connectTimeoutMs: 1000, retries: 3, delayBeforeRetryMs: 3000, rise: 1, warmupMs: 0, alpha: false, ...t };
}

function tcp(host: string, t: Partial<CheckTiming> = {}): CheckSpec {
  return { name: `TCP_CHECK ${host}:80`, probe: { kind: 'tcp', host, port: 80 }, timing: timing(t) };
}

function server(host: string, o: Partial<ServerHealthSpec> & { t?: Partial<CheckTiming> } = {}): ServerHealthSpec {
  return { weight: 1, checks: [tcp(host, o.t)], inhibitOnFailure: false, ...o };
}

function service(servers: Record<string, ServerHealthSpec>, o: Partial<ServiceHealthSpec> = {}): Map<string, ServiceHealthSpec> {
  return new Map([[SVC, { quorum: 1, hysteresis: 0, omega: false, servers: new Map(Object.entries(servers)), ...o }]]);
}

/** Probes answered from a table: host -> up? (a function of time is enough for these tests). */
class FakeProbes {
  up = new Map<string, boolean>();
  calls: Array<{ host: string; at: number }> = [];
  fn: ProbeFn = async (spec) => {
    const host = spec.kind === 'misc' ? spec.argv[0] : spec.host;
    this.calls.push({ host, at: Date.now() });
    const ok = this.up.get(host) ?? true;
    return ok ? { ok: true } : { ok: false, error: `connect to ${host}:80: ECONNREFUSED` };
  };
  callsTo(host: string): number[] {
    return this.calls.filter((c) => c.host === host).map((c) => c.at);
  }
}

function recordingNotifier() {
  const events: HealthEvent[] = [];
  const commands: Array<{ argv: readonly string[]; event: string }> = [];
  const n: Notifier = {
    command: (argv, ev) => commands.push({ argv, event: ev.event }),
    webhook: (ev) => events.push(ev),
    idle: async () => undefined,
  };
  return { n, events, commands };
}

async function setup(neighbours: Record<string, string> = {}) {
  const d = fakeDirector({
    neighbours: { '198.18.0.11': '02:00:00:00:00:11', '198.18.0.12': '02:00:00:00:00:12', '198.18.0.13': '02:00:00:00:00:13', ...neighbours },
  });
  await d.balancer.addService({ protocol: 'tcp', address: '198.18.0.100', port: 80, scheduler: 'rr' });
  await d.balancer.addServer(SVC, { address: '198.18.0.11', weight: 1 });
  await d.balancer.addServer(SVC, { address: '198.18.0.12', weight: 1 });
  const probes = new FakeProbes();
  const rec = recordingNotifier();
  const logs: string[] = [];
  const monitor = new HealthMonitor({ target: d.balancer, log: (_l, msg) => logs.push(msg), probe: probes.fn, notifier: rec.n, random: () => 0 });
  /** Real servers the schedule table names now. */
  const scheduled = (): string[] => {
    const svc = d.maps.getService(d.maps.serviceKeys()[0])!;
    return [...new Set([...d.maps.readRing(svc.ring_slot).slice(0, svc.ring_len)].map((id) => `198.18.0.${d.maps.getDest(id).addr[3]}:80`))].sort();
  };
  const view = (rs: string) => d.balancer.getServer(SVC, rs);
  return { d, probes, monitor, rec, logs, scheduled, view };
}

/** Lets the timers and the promise chains behind them run up to `ms` of fake time. */
const advance = (ms: number) => vi.advanceTimersByTimeAsync(ms);

describe('checker state machine (keepalived semantics plus rise)', () => {
  it('goes down after retries + 1 CONSECUTIVE failures; a success in between resets the count', () => {
    const s = new CheckerState(timing({ retries: 2 }));
    expect(s.record(false)).toEqual({ changed: false, delayMs: 3000 });
    expect(s.record(true)).toEqual({ changed: true, delayMs: 6000 }); // unchecked -> up, count reset
    expect(s.record(false).changed).toBe(false);
    expect(s.record(false).changed).toBe(false);
    expect(s.record(false)).toEqual({ changed: true, delayMs: 6000 });
    expect(s.up).toBe(false);
    expect(s.verdict).toBe('down');
  });

  it('comes back after rise successes in a row', () => {
    const s = new CheckerState(timing({ retries: 0, rise: 3 }));
    s.record(false);
    expect(s.up).toBe(false);
    s.record(true);
    s.record(true);
    s.record(false); // breaks the run
    s.record(true);
    s.record(true);
    expect(s.up).toBe(false);
    expect(s.record(true).changed).toBe(true);
    expect(s.up).toBe(true);
  });

  it('alpha starts down until the first success', () => {
    const s = new CheckerState(timing({ alpha: true }));
    expect(s.up).toBe(false);
    expect(s.record(true).changed).toBe(true);
    expect(s.up).toBe(true);
  });
});

describe('health monitor over the balancer', () => {
  beforeEach(() => {
    vi.useFakeTimers({ now: new Date('2025-01-01T00:00:00Z') });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('takes a failed server out within delay_loop + retries x delay_before_retry, and back after rise', async () => {
    const { probes, monitor, rec, scheduled, view, d } = await setup();
    await monitor.configure(service({ [RS1]: server('198.18.0.11', { t: { rise: 2 }, notifyDown: ['/bin/notify', 'down'] }), [RS2]: server('198.18.0.12') }));
    const t0 = Date.now();
    await advance(0);
    expect(scheduled()).toEqual([RS1, RS2]);
    expect(view(RS1).health).toMatchObject({ state: 'up', listed: true, effectiveWeight: 1 });

    probes.up.set('198.18.0.11', false);
    // Next probe at +6 s fails, then 3 retries 3 s apart: down at +15 s, not before.
    await advance(14_999);
    expect(scheduled()).toEqual([RS1, RS2]);
    await advance(1);
    expect(scheduled()).toEqual([RS2]);
    expect(probes.callsTo('198.18.0.11').filter((t) => t > t0).map((t) => t - t0)).toEqual([6000, 9000, 12000, 15000]);
    expect(view(RS1).health).toMatchObject({ state: 'down', listed: false, effectiveWeight: 0, checker: 'TCP_CHECK 198.18.0.11:80', lastError: 'connect to 198.18.0.11:80: ECONNREFUSED' });
    expect(view(RS1).health!.since).toBe(new Date(t0 + 15_000).toISOString());
    // The configured weight stays what the user set; -Ln hides it as keepalived removes it from IPVS.
    expect(view(RS1).weight).toBe(1);
    const ln = formatList(d.balancer.connTableSize, d.balancer.listServices());
    expect(ln).not.toContain('198.18.0.11:80');
    expect(ln).toContain('198.18.0.12:80');
    expect(rec.events.map((e) => `${e.event} ${e.server}`)).toEqual([`server-down ${RS1}`]);
    expect(rec.commands).toEqual([{ argv: ['/bin/notify', 'down'], event: 'server-down' }]);

    probes.up.set('198.18.0.11', true);
    await advance(6000); // first success: rise 2 wants another
    expect(scheduled()).toEqual([RS2]);
    await advance(6000);
    expect(scheduled()).toEqual([RS1, RS2]);
    expect(view(RS1).health).toMatchObject({ state: 'up', listed: true, effectiveWeight: 1 });
    expect(rec.events.map((e) => e.event)).toEqual(['server-down', 'server-up']);
    await monitor.stop();
  });

  it('inhibit_on_failure keeps a failed server listed at weight 0 (-Ln shows 0) and restores its weight', async () => {
    const { probes, monitor, scheduled, view, d } = await setup();
    await d.balancer.editServer(SVC, RS1, { weight: 3 });
    await monitor.configure(service({ [RS1]: server('198.18.0.11', { weight: 3, inhibitOnFailure: true, t: { retries: 0 } }), [RS2]: server('198.18.0.12') }));
    probes.up.set('198.18.0.11', false);
    await advance(6000);
    expect(scheduled()).toEqual([RS2]);
    expect(view(RS1).health).toMatchObject({ state: 'down', listed: true, effectiveWeight: 0 });
    const ln = formatList(d.balancer.connTableSize, d.balancer.listServices());
    expect(ln).toMatch(/-> 198\.18\.0\.11:80\s+Route\s+0\s/);
    probes.up.set('198.18.0.11', true);
    await advance(6000);
    expect(scheduled()).toEqual([RS1, RS2]);
    expect(formatList(d.balancer.connTableSize, d.balancer.listServices())).toMatch(/-> 198\.18\.0\.11:80\s+Route\s+3\s/);
    await monitor.stop();
  });

  it('does not touch destination ids or counters: established connections keep their real server', async () => {
    const { probes, monitor, d } = await setup();
    const ids = () => d.balancer.exportState().services[0].servers.map((s) => s.destId);
    const before = ids();
    await monitor.configure(service({ [RS1]: server('198.18.0.11', { t: { retries: 0 } }), [RS2]: server('198.18.0.12') }));
    probes.up.set('198.18.0.11', false);
    await advance(6000);
    probes.up.set('198.18.0.11', true);
    await advance(6000);
    expect(ids()).toEqual(before);
    await monitor.stop();
  });

  it('a sorry server takes the traffic when no real server is up, and leaves when one comes back', async () => {
    const { probes, monitor, scheduled, view, rec, d } = await setup();
    await monitor.configure(
      service(
        { [RS1]: server('198.18.0.11', { t: { retries: 0 } }), [RS2]: server('198.18.0.12', { t: { retries: 0 } }) },
        { sorryServer: { address: '198.18.0.13', port: 80, method: 'dr', inhibit: false }, quorumDown: ['/bin/q', 'down'] },
      ),
    );
    await advance(1);
    expect(d.balancer.getService(SVC).servers.map((s) => s.id)).toEqual([RS1, RS2]); // not there while not needed
    probes.up.set('198.18.0.11', false);
    await advance(6000);
    expect(scheduled()).toEqual([RS2]);
    probes.up.set('198.18.0.12', false);
    await advance(6000);
    expect(scheduled()).toEqual([SORRY]);
    expect(view(SORRY).health).toMatchObject({ role: 'sorry', listed: true, effectiveWeight: 1 });
    expect(rec.events.map((e) => e.event)).toEqual(['server-down', 'server-down', 'quorum-lost']);
    expect(rec.commands.map((c) => c.argv.join(' '))).toContain('/bin/q down');

    probes.up.set('198.18.0.12', true);
    await advance(6000);
    expect(scheduled()).toEqual([RS2]);
    expect(d.balancer.getService(SVC).servers.map((s) => s.id)).toEqual([RS1, RS2]);
    expect(rec.events.map((e) => e.event).slice(-2)).toEqual(['server-up', 'quorum-gained']);
    await monitor.stop();
  });

  it('sorry_server_inhibit keeps the sorry server listed at weight 0 while it is not needed', async () => {
    const { probes, monitor, scheduled, view } = await setup();
    await monitor.configure(
      service(
        { [RS1]: server('198.18.0.11', { t: { retries: 0 } }), [RS2]: server('198.18.0.12', { weight: 1, t: { retries: 0 } }) },
        { sorryServer: { address: '198.18.0.13', port: 80, method: 'dr', inhibit: true } },
      ),
    );
    await advance(1);
    expect(view(SORRY).health).toMatchObject({ role: 'sorry', listed: true, effectiveWeight: 0 });
    expect(scheduled()).toEqual([RS1, RS2]);
    probes.up.set('198.18.0.11', false);
    probes.up.set('198.18.0.12', false);
    await advance(6000);
    expect(scheduled()).toEqual([SORRY]);
    expect(view(SORRY).health).toMatchObject({ effectiveWeight: 1 });
    probes.up.set('198.18.0.11', true);
    await advance(6000);
    expect(scheduled()).toEqual([RS1]);
    expect(view(SORRY).health).toMatchObject({ role: 'sorry', listed: true, effectiveWeight: 0 });
    await monitor.stop();
  });

  it('quorum with hysteresis: lost below quorum - hysteresis, gained at quorum + hysteresis', async () => {
    const { probes, monitor, rec } = await setup();
    await monitor.configure(
      service(
        { [RS1]: server('198.18.0.11', { weight: 2, t: { retries: 0 } }), [RS2]: server('198.18.0.12', { weight: 2, t: { retries: 0 } }) },
        { quorum: 3, hysteresis: 1 },
      ),
    );
    await advance(1);
    probes.up.set('198.18.0.11', false); // sum 2: not < 3 - 1
    await advance(6000);
    expect(rec.events.map((e) => e.event)).toEqual(['server-down']);
    probes.up.set('198.18.0.12', false); // sum 0: lost
    await advance(6000);
    expect(rec.events.map((e) => e.event)).toEqual(['server-down', 'server-down', 'quorum-lost']);
    probes.up.set('198.18.0.12', true); // sum 2 < 3 + 1: still lost
    await advance(6000);
    expect(rec.events.map((e) => e.event).slice(-1)).toEqual(['server-up']);
    probes.up.set('198.18.0.11', true); // sum 4 >= 4: gained
    await advance(6000);
    expect(rec.events.map((e) => e.event).slice(-2)).toEqual(['server-up', 'quorum-gained']);
    await monitor.stop();
  });

  it('MISC_CHECK misc_dynamic sets the weight from the exit status', async () => {
    const { monitor, scheduled, view, d } = await setup();
    let code = 7;
    const probe: ProbeFn = async (spec): Promise<ProbeResult> => (spec.kind === 'misc' && code >= 2 ? { ok: true, weight: code - 2 } : { ok: code === 0 });
    const m = new HealthMonitor({ target: d.balancer, log: () => undefined, probe, random: () => 0 });
    const misc: CheckSpec = { name: 'MISC_CHECK /bin/check', probe: { kind: 'misc', argv: ['/bin/check'], dynamic: true }, timing: timing({ retries: 0 }) };
    await m.configure(service({ [RS1]: { weight: 1, checks: [misc], inhibitOnFailure: false } }));
    await advance(1);
    expect(view(RS1).health).toMatchObject({ state: 'up', effectiveWeight: 5 });
    code = 2; // weight 0: up but quiescent
    await advance(6000);
    expect(view(RS1).health).toMatchObject({ state: 'up', effectiveWeight: 0 });
    expect(scheduled()).toEqual([RS2]);
    await m.stop();
    await monitor.stop();
  });
});

describe('health monitor at scale (real clock)', () => {
  it('checks thousands of real servers on time with at most maxInFlight probes at once', async () => {
    const d = fakeDirector({ maxServices: 32, maxDests: 4096, neighbours: {} });
    const SERVICES = 30;
    const PER = 100; // 3000 real servers
    const specs = new Map<string, ServiceHealthSpec>();
    const ids: Array<[string, string]> = [];
    for (let s = 0; s < SERVICES; s++) {
      const svc = `tcp:198.18.0.100:${1000 + s}`;
      await d.balancer.addService({ protocol: 'tcp', address: '198.18.0.100', port: 1000 + s, scheduler: 'rr' });
      const servers = new Map<string, ServerHealthSpec>();
      for (let i = 0; i < PER; i++) {
        const host = `198.19.${s}.${i + 1}`;
        d.resolver.table.set(host, '02:00:00:00:00:99');
        await d.balancer.addServer(svc, { address: host });
        const t = timing({ intervalMs: 200, warmupMs: 200 });
        servers.set(`${host}:${1000 + s}`, { weight: 1, checks: [{ name: host, probe: { kind: 'tcp', host, port: 1000 + s }, timing: t }], inhibitOnFailure: false });
        ids.push([svc, `${host}:${1000 + s}`]);
      }
      specs.set(svc, { quorum: 1, hysteresis: 0, omega: false, servers });
    }
    let inFlight = 0;
    let peak = 0;
    // Every probe takes 10 ms: 3000 every 200 ms need 150 in flight on average, under the bound of 200.
    const probe: ProbeFn = async () => {
      inFlight++;
      peak = Math.max(peak, inFlight);
      await new Promise((r) => setTimeout(r, 10));
      inFlight--;
      return { ok: true };
    };
    const m = new HealthMonitor({ target: d.balancer, log: () => undefined, probe, maxInFlight: 200 });
    await m.configure(specs);
    const t0 = Date.now();
    await new Promise((r) => setTimeout(r, 2_000));
    const elapsed = Date.now() - t0;
    expect(peak).toBeLessThanOrEqual(200);
    expect(m.concurrency.peak).toBeLessThanOrEqual(200);
    const runs = ids.map(([svc, rs]) => m.runsOf(svc, rs)[0]);
    // Not a timing test (speed lives in the benchmark): every checker ran, none starved behind the others, and
    // none ran more often than its interval allows, however loaded the machine is.
    const mean = runs.reduce((a, b) => a + b, 0) / runs.length;
    expect(Math.min(...runs), `runs per checker in ${elapsed} ms (mean ${mean})`).toBeGreaterThanOrEqual(1);
    expect(Math.max(...runs)).toBeLessThanOrEqual(Math.ceil(elapsed / 200) + 1);
    await m.stop();
  }, 120_000);
});
