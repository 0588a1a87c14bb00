// A whole configuration at once (PUT /v1/config, xdpvsadm -R): the steps that turn the current configuration into
// the desired one, and running them against anything with the balancer's operations.
//
// The steps are the balancer's own operations (add, edit, delete a service or real server), so a configuration is
// validated by exactly the code that validates single requests. The balancer runs them first on a rehearsal copy
// over in-memory maps and only then on the data plane (Balancer.replaceConfig), so a configuration with any
// problem changes nothing. Services and real servers that stay as they are get no step at all: their counters,
// schedule tables and connections carry on.

import { ErrorCode, XdpvsError, isXdpvsError } from '../errors.js';
import { LB_MAPS, LbMaps } from '../maps/lb-maps.js';
import { MemoryMapBackend } from '../maps/memory-backend.js';
import { formatEndpoint, parseAddress, type Family } from './address.js';
import {
  DEFAULT_METHOD,
  DEFAULT_SCHEDULER,
  DEFAULT_WEIGHT,
  type ConfigChanges,
  type ConfigServer,
  type ConfigService,
  type ConfigView,
  type RealServerPatch,
  type RealServerSpec,
  type ServicePatch,
  type ServiceSpec,
} from './model.js';
import { parseNetmask, parseVip } from './vip.js';

/** Where in the desired configuration a step comes from: services[service].servers[server]. */
export interface ConfigLocation {
  service: number;
  server?: number;
}

export type ConfigStep =
  | { kind: 'delete-service'; service: string }
  | { kind: 'add-service'; at: ConfigLocation; spec: ServiceSpec }
  | { kind: 'edit-service'; at: ConfigLocation; service: string; patch: ServicePatch }
  | { kind: 'delete-server'; service: string; server: string }
  | { kind: 'add-server'; at: ConfigLocation; service: string; spec: RealServerSpec }
  | { kind: 'edit-server'; at: ConfigLocation; service: string; server: string; patch: RealServerPatch };

/** The balancer's operations the steps use (Balancer implements them). */
export interface ConfigTarget {
  addService(spec: ServiceSpec): Promise<unknown>;
  editService(name: string, patch: ServicePatch): Promise<unknown>;
  deleteService(name: string): Promise<unknown>;
  addServer(svc: string, spec: RealServerSpec): Promise<unknown>;
  editServer(svc: string, rs: string, patch: RealServerPatch): Promise<unknown>;
  deleteServer(svc: string, rs: string): Promise<unknown>;
}

type CurrentService = ConfigView['services'][number];
type CurrentServer = CurrentService['servers'][number];

/**
 * `tcp:ADDR:PORT` in canonical spelling (a VIP prefix keeps its "/LEN"), or undefined when the address does not
 * parse (the add step then says why).
 */
function serviceKey(s: Pick<ConfigService, 'protocol' | 'address' | 'port'>): string | undefined {
  if (s.protocol !== 'tcp' && s.protocol !== 'udp') return undefined;
  try {
    return `${s.protocol}:${formatEndpoint(parseVip(s.address), s.port)}`;
  } catch {
    return undefined;
  }
}

function familyOf(address: string): Family | undefined {
  try {
    return parseVip(address).family;
  } catch {
    return undefined;
  }
}

/** The persistence netmask as a prefix length, for comparing spellings (255.255.255.0, 24, "24"). */
function netmaskPrefix(v: string | number | undefined, family: Family | undefined): number | string | undefined {
  if (family === undefined) return v;
  try {
    return parseNetmask(v, family);
  } catch {
    return v; // invalid: differs from anything current, and the edit step says why
  }
}

/** Whether the service's own definition (scheduler, flags, persistence) differs from what it has now. */
function serviceDiffers(have: CurrentService, want: ConfigService): boolean {
  const scheduler = want.scheduler ?? DEFAULT_SCHEDULER;
  const persistent = want.persistent ?? 0;
  if (have.scheduler !== scheduler || !sameFlags(have.flags, want.flags ?? [])) return true;
  if ((have.persistent ?? 0) !== persistent) return true;
  const family = familyOf(have.address);
  return persistent > 0 && netmaskPrefix(have.netmask, family) !== netmaskPrefix(want.netmask, family);
}

function serverDiffers(have: CurrentServer, want: ConfigServer): boolean {
  return (
    have.weight !== (want.weight ?? DEFAULT_WEIGHT) ||
    have.method !== (want.method ?? DEFAULT_METHOD) ||
    (have.upperThreshold ?? 0) !== (want.upperThreshold ?? 0) ||
    (have.lowerThreshold ?? 0) !== (want.lowerThreshold ?? 0)
  );
}

/**
 * What -A/-E set for a service (everything but its identity and its real servers), every field given, defaults
 * filled in: as ipvsadm -E, an edit replaces the whole definition (no -p turns persistence off).
 */
function serviceDefinition(s: ConfigService): ServicePatch {
  const { scheduler = DEFAULT_SCHEDULER, flags = [], persistent = 0, netmask } = s;
  return { scheduler, flags, persistent, ...(netmask !== undefined ? { netmask } : {}) };
}

/** What -a/-e set for a real server (everything but its address and port), every field given, defaults filled in. */
function serverDefinition(rs: ConfigServer): RealServerPatch {
  const { method = DEFAULT_METHOD, weight = DEFAULT_WEIGHT, upperThreshold = 0, lowerThreshold = 0 } = rs;
  return { method, weight, upperThreshold, lowerThreshold };
}

function serverKey(rs: Pick<ConfigServer, 'address' | 'port'>, servicePort: number): string | undefined {
  try {
    return formatEndpoint(parseAddress(rs.address), rs.port ?? servicePort);
  } catch {
    return undefined;
  }
}

function sameFlags(a: readonly string[], b: readonly string[]): boolean {
  const sa = new Set(a);
  const sb = new Set(b);
  return sa.size === sb.size && [...sa].every((f) => sb.has(f));
}

function duplicate(what: string, at: ConfigLocation): XdpvsError {
  const where = at.server === undefined ? `services[${at.service}]` : `services[${at.service}].servers[${at.server}]`;
  return new XdpvsError(ErrorCode.Invalid, `${where}: ${what} appears twice in the configuration`, { at });
}

/**
 * The steps from `current` to `desired`, in an order that frees capacity before using it: services that go, then
 * per desired service (in its order) its edit or creation, the real servers that go, change and come. Omitted
 * fields take the API's defaults (scheduler wlc, method dr, weight 1, the service's port) as a POST would.
 * Throws XDPVS_ERR_INVALID (details.at) for a service or real server named twice.
 */
export function planConfig(current: readonly CurrentService[], desired: readonly ConfigService[]): ConfigStep[] {
  const now = new Map<string, CurrentService>();
  for (const s of current) now.set(serviceKey(s)!, s);

  const wanted = new Set<string>();
  desired.forEach((s, i) => {
    const key = serviceKey(s);
    if (key === undefined) return;
    if (wanted.has(key)) throw duplicate(`service ${key}`, { service: i });
    wanted.add(key);
  });

  const steps: ConfigStep[] = [];
  for (const [key] of now) if (!wanted.has(key)) steps.push({ kind: 'delete-service', service: key });

  desired.forEach((s, i) => {
    const at = { service: i };
    const key = serviceKey(s);
    const servers = s.servers ?? [];
    const have = key === undefined ? undefined : now.get(key);
    if (!have) {
      steps.push({ kind: 'add-service', at, spec: { protocol: s.protocol, address: s.address, port: s.port, ...serviceDefinition(s) } });
    } else if (serviceDiffers(have, s)) {
      steps.push({ kind: 'edit-service', at, service: key!, patch: serviceDefinition(s) });
    }
    const svcName = key ?? `${s.protocol}:${s.address}:${s.port}`;

    const haveServers = new Map<string, CurrentServer>();
    for (const rs of have?.servers ?? []) haveServers.set(formatEndpoint(parseAddress(rs.address), rs.port), rs);
    const wantServers = new Set<string>();
    servers.forEach((rs, j) => {
      const k = serverKey(rs, s.port);
      if (k === undefined) return;
      if (wantServers.has(k)) throw duplicate(`real server ${k} of service ${svcName}`, { service: i, server: j });
      wantServers.add(k);
    });
    for (const [k] of haveServers) if (!wantServers.has(k)) steps.push({ kind: 'delete-server', service: svcName, server: k });
    servers.forEach((rs, j) => {
      const k = serverKey(rs, s.port);
      const cur = k === undefined ? undefined : haveServers.get(k);
      const at = { service: i, server: j };
      if (!cur) steps.push({ kind: 'add-server', at, service: svcName, spec: { address: rs.address, port: rs.port, ...serverDefinition(rs) } });
      else if (serverDiffers(cur, rs)) steps.push({ kind: 'edit-server', at, service: svcName, server: k!, patch: serverDefinition(rs) });
    });
  });
  return steps;
}

/** What the steps change, by kind. */
export function summarise(steps: readonly ConfigStep[]): ConfigChanges {
  const n = (kind: ConfigStep['kind']) => steps.filter((s) => s.kind === kind).length;
  return {
    servicesAdded: n('add-service'),
    servicesEdited: n('edit-service'),
    servicesRemoved: n('delete-service'),
    serversAdded: n('add-server'),
    serversEdited: n('edit-server'),
    serversRemoved: n('delete-server'),
  };
}

function describe(step: ConfigStep): string {
  switch (step.kind) {
    case 'add-service':
      return `service ${serviceKey(step.spec) ?? `${step.spec.protocol}:${step.spec.address}:${step.spec.port}`}`;
    case 'edit-service':
    case 'delete-service':
      return `service ${step.service}`;
    case 'add-server':
      return `real server ${step.spec.address} of service ${step.service}`;
    case 'edit-server':
    case 'delete-server':
      return `real server ${step.server} of service ${step.service}`;
  }
}

/**
 * Runs the steps in order. The first failure is rethrown with its code, the service or real server it concerns
 * at the front of the message, and details.at (the index in the desired configuration) when the step has one.
 */
export async function runSteps(target: ConfigTarget, steps: readonly ConfigStep[]): Promise<void> {
  for (const step of steps) {
    try {
      switch (step.kind) {
        case 'delete-service':
          await target.deleteService(step.service);
          break;
        case 'add-service':
          await target.addService(step.spec);
          break;
        case 'edit-service':
          await target.editService(step.service, step.patch);
          break;
        case 'delete-server':
          await target.deleteServer(step.service, step.server);
          break;
        case 'add-server':
          await target.addServer(step.service, step.spec);
          break;
        case 'edit-server':
          await target.editServer(step.service, step.server, step.patch);
          break;
      }
    } catch (e) {
      if (!isXdpvsError(e)) throw e;
      const at = 'at' in step ? { at: step.at } : {};
      throw new XdpvsError(e.code, `${describe(step)}: ${e.message}`, { ...e.details, ...at, step: step.kind });
    }
  }
}

/** In-memory maps shaped like `real` (same capacities), for rehearsing a configuration where no packet sees it. */
export function rehearsalMaps(real: LbMaps): LbMaps {
  const shapes = Object.values(LB_MAPS).map((m) => ({ ...m, maxEntries: real.backend.map(m.name).maxEntries }));
  return new LbMaps(new MemoryMapBackend(shapes, real.backend.possibleCpus));
}
