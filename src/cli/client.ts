// The CLI's HTTP client for xdpvsd's API (docs/api.md): fetch, bearer token, and every failure as an XdpvsError.

import { ErrorCode, XdpvsError } from '../errors.js';
import { formatEndpoint } from '../lb/address.js';
import type {
  ConfigChanges,
  ConfigService,
  ConfigView,
  ConnectionView,
  InfoView,
  RealServerPatch,
  RealServerSpec,
  RealServerView,
  ServicePatch,
  ServiceSpec,
  ServiceView,
  TimeoutsView,
} from '../lb/model.js';
import { parseVip } from '../lb/vip.js';

export interface ClientOptions {
  /** http://host:port, no trailing slash. */
  url: string;
  /** Bearer token for writes; reads work without one. */
  token?: string;
  /** Give up on an answer after this long (default 30 s). */
  timeoutMs?: number;
  fetch?: typeof fetch;
}

/** The API's name of a service: PROTO:ADDR:PORT, IPv6 in brackets ("udp:[fd00::100]:53"). */
export function serviceId(s: { protocol: string; address: string; port: number; family?: string }): string {
  // A prefix service (ADDR/LEN, an xdpvs extension): "tcp:198.18.1.0/24:80", "tcp:[fd00:1::/64]:80".
  if (s.address.includes('/')) return `${s.protocol}:${formatEndpoint(parseVip(s.address), s.port)}`;
  return `${s.protocol}:${serverId(s)}`;
}

/** The API's name of a real server within its service: ADDR:PORT (`family` may be given; the address has it). */
export function serverId(s: { address: string; port: number; family?: string }): string {
  return formatEndpoint(s.address, s.port);
}

const KNOWN_CODES = new Set<string>(Object.values(ErrorCode));

function codeForStatus(status: number): ErrorCode {
  switch (status) {
    case 400:
      return ErrorCode.Invalid;
    case 401:
    case 403:
      return ErrorCode.Unauthorized;
    case 404:
      return ErrorCode.NotFound;
    case 409:
      return ErrorCode.Exists;
    case 501:
      return ErrorCode.Unsupported;
    case 507:
      return ErrorCode.Capacity;
    default:
      return ErrorCode.Internal;
  }
}

/** Why fetch() failed, as the system said it ("connect ECONNREFUSED 127.0.0.1:9777"). */
function networkReason(e: unknown): string {
  let err = e as { message?: string; code?: string; cause?: unknown; errors?: unknown[] } | undefined;
  // fetch wraps the socket error: TypeError("fetch failed", { cause }); the cause may be an AggregateError.
  for (let depth = 0; depth < 4 && err; depth++) {
    if (err.cause) {
      err = err.cause as typeof err;
      continue;
    }
    if (Array.isArray(err.errors) && err.errors.length > 0 && !err.message) {
      err = err.errors[0] as typeof err;
      continue;
    }
    break;
  }
  return err?.message || err?.code || String(e);
}

export class XdpvsClient {
  readonly url: string;
  private readonly token: string | undefined;
  private readonly timeoutMs: number;
  private readonly fetchFn: typeof fetch;

  constructor(opts: ClientOptions) {
    this.url = opts.url.replace(/\/+$/, '');
    this.token = opts.token;
    this.timeoutMs = opts.timeoutMs ?? 30_000;
    this.fetchFn = opts.fetch ?? fetch;
  }

  info(): Promise<InfoView> {
    return this.request<InfoView>('GET', '/v1/info');
  }

  async listServices(): Promise<ServiceView[]> {
    return (await this.request<{ services: ServiceView[] }>('GET', '/v1/services')).services;
  }

  getService(svc: string): Promise<ServiceView> {
    return this.request<ServiceView>('GET', `/v1/services/${encodeURIComponent(svc)}`);
  }

  addService(body: ServiceSpec): Promise<ServiceView> {
    return this.request<ServiceView>('POST', '/v1/services', body);
  }

  editService(svc: string, body: ServicePatch): Promise<ServiceView> {
    return this.request<ServiceView>('PATCH', `/v1/services/${encodeURIComponent(svc)}`, body);
  }

  async deleteService(svc: string): Promise<void> {
    await this.request<unknown>('DELETE', `/v1/services/${encodeURIComponent(svc)}`);
  }

  /** ipvsadm -C: every service goes. */
  clear(): Promise<{ deleted: number }> {
    return this.request<{ deleted: number }>('DELETE', '/v1/services');
  }

  /** The connection table and persistence templates (ipvsadm -Lnc). */
  async connections(): Promise<ConnectionView[]> {
    return (await this.request<{ connections: ConnectionView[] }>('GET', '/v1/connections')).connections;
  }

  /** ipvsadm -L --timeout. */
  timeouts(): Promise<TimeoutsView> {
    return this.request<TimeoutsView>('GET', '/v1/timeouts');
  }

  /** ipvsadm --set tcp tcpfin udp (0 keeps one). */
  setTimeouts(body: TimeoutsView): Promise<TimeoutsView> {
    return this.request<TimeoutsView>('PUT', '/v1/timeouts', body);
  }

  /** The whole configuration without counters (ipvsadm -S). */
  getConfig(): Promise<ConfigView> {
    return this.request<ConfigView>('GET', '/v1/config');
  }

  /** Replaces the whole configuration, all or nothing (ipvsadm -R); with `revision`, only over that revision. */
  putConfig(body: { services: ConfigService[]; revision?: number }): Promise<ConfigView & { changes: ConfigChanges }> {
    return this.request<ConfigView & { changes: ConfigChanges }>('PUT', '/v1/config', body);
  }

  /** ipvsadm -Z: zeroes the counters of one service (with its real servers) or of all. */
  zero(svc?: string): Promise<{ zeroed: number }> {
    const path = svc === undefined ? '/v1/stats/zero' : `/v1/services/${encodeURIComponent(svc)}/stats/zero`;
    return this.request<{ zeroed: number }>('POST', path);
  }

  addServer(svc: string, body: RealServerSpec): Promise<RealServerView> {
    return this.request<RealServerView>('POST', `/v1/services/${encodeURIComponent(svc)}/servers`, body);
  }

  editServer(svc: string, rs: string, body: RealServerPatch): Promise<RealServerView> {
    return this.request<RealServerView>(
      'PATCH',
      `/v1/services/${encodeURIComponent(svc)}/servers/${encodeURIComponent(rs)}`,
      body,
    );
  }

  async deleteServer(svc: string, rs: string): Promise<void> {
    await this.request<unknown>(
      'DELETE',
      `/v1/services/${encodeURIComponent(svc)}/servers/${encodeURIComponent(rs)}`,
    );
  }

  /**
   * One request. Throws XdpvsError: XDPVS_ERR_UNREACHABLE when no HTTP answer came (details.url, details.reason),
   * otherwise the daemon's own code and message (details.status and the body's extra fields).
   */
  async request<T>(method: string, path: string, body?: unknown): Promise<T> {
    const headers: Record<string, string> = { accept: 'application/json' };
    if (body !== undefined) headers['content-type'] = 'application/json';
    if (this.token !== undefined) headers.authorization = `Bearer ${this.token}`;
    let res: Response;
    try {
      res = await this.fetchFn(`${this.url}${path}`, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(this.timeoutMs),
      });
    } catch (e) {
      const name = (e as { name?: string }).name;
      const reason =
        name === 'TimeoutError' || name === 'AbortError'
          ? `no answer within ${this.timeoutMs / 1000} s`
          : networkReason(e);
      throw new XdpvsError(ErrorCode.Unreachable, `cannot reach xdpvsd at ${this.url}: ${reason}`, {
        url: this.url,
        reason,
      });
    }
    const text = await res.text();
    if (!res.ok) throw errorFromResponse(res.status, text);
    if (text === '') return undefined as T;
    try {
      return JSON.parse(text) as T;
    } catch {
      throw new XdpvsError(ErrorCode.Internal, `xdpvsd answered ${method} ${path} with something that is not JSON`, {
        status: res.status,
      });
    }
  }
}

/** An error response -> XdpvsError with the daemon's code (or one from the status) and message. */
export function errorFromResponse(status: number, text: string): XdpvsError {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  const error = (parsed as { error?: Record<string, unknown> } | undefined)?.error;
  if (error && typeof error === 'object' && typeof error.message === 'string') {
    const { code, message, ...details } = error;
    const known = typeof code === 'string' && KNOWN_CODES.has(code) ? (code as ErrorCode) : codeForStatus(status);
    return new XdpvsError(known, message as string, { ...details, status });
  }
  const snippet = text.trim().slice(0, 200);
  return new XdpvsError(codeForStatus(status), snippet ? `HTTP ${status}: ${snippet}` : `HTTP ${status}`, { status });
}
