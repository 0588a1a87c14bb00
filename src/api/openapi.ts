// The OpenAPI 3.0 document of the API, generated from the zod schemas that validate requests (src/api/schemas.ts)
// and describe responses (src/api/views.ts); error statuses come from src/api/errors.ts. Served at /openapi.json.

import { extendZodWithOpenApi, OpenAPIRegistry, OpenApiGeneratorV3, type ResponseConfig, type RouteConfig } from '@asteasolutions/zod-to-openapi';
import { z, type ZodTypeAny } from 'zod';
import { ErrorCode, XdpvsError } from '../errors.js';
import { statusOf } from './errors.js';
import * as requests from './schemas.js';
import * as views from './views.js';

// Adds .openapi() to zod's prototype: registering a schema as a named component needs it. The validators themselves
// are not changed: register() keeps a copy carrying the component's name.
extendZodWithOpenApi(z);

export type HttpMethod = 'get' | 'post' | 'put' | 'patch' | 'delete';

/** One route of src/api/app.ts, in the document. test/unit/openapi.test.ts holds this list against app.routes. */
export interface RouteDoc {
  method: HttpMethod;
  /** Hono's spelling (`/v1/services/:svc`); the document spells it `/v1/services/{svc}`. */
  path: string;
  tag: 'daemon' | 'services' | 'real servers' | 'configuration' | 'observability';
  summary: string;
  description?: string;
  /** The request body's validator: the very zod object app.ts passes to body(). */
  body?: ZodTypeAny;
  ok: { status: number; description: string; schema?: ZodTypeAny; contentType?: string };
  /** Error codes this route can answer with (XDPVS_ERR_INTERNAL is added to every route). */
  errors: ErrorCode[];
}

/** Path parameters by name, for every `:name` a route uses. */
const PATH_PARAMS: Record<string, { description: string; example: string }> = {
  svc: {
    description: 'the service, PROTO:ADDR:PORT percent-encoded as one segment (any spelling of the address is accepted)',
    example: 'tcp:198.18.0.100:80',
  },
  rs: {
    description: 'a real server of the service, ADDR:PORT (or ADDR: the service\'s port), percent-encoded',
    example: '198.18.0.11:80',
  },
};

/** Request body schemas by the name they get under components/schemas: every export of schemas.ts. */
export const REQUEST_SCHEMAS: Record<string, ZodTypeAny> = Object.fromEntries(
  Object.entries(requests as Record<string, unknown>).filter((e): e is [string, ZodTypeAny] => e[1] instanceof z.ZodType),
);

/** Response schemas by component name (the names views.ts gives them). */
export const RESPONSE_SCHEMAS: Record<string, ZodTypeAny> = {
  Counters: views.CountersSchema,
  Neighbour: views.NeighbourViewSchema,
  RealServer: views.RealServerViewSchema,
  Service: views.ServiceViewSchema,
  Info: views.InfoViewSchema,
  ServiceList: views.ServiceListSchema,
  RealServerList: views.ServerListSchema,
  Deleted: views.DeletedSchema,
  Stats: views.StatsViewSchema,
  Rates: views.RatesSchema,
  Zeroed: views.ZeroedSchema,
  Config: views.ConfigViewSchema,
  ConfigChanges: views.ConfigChangesSchema,
  ConfigResult: views.ConfigResultSchema,
  ReloadResult: views.ReloadResultSchema,
  Connection: views.ConnectionViewSchema,
  ConnectionList: views.ConnectionListSchema,
  Timeouts: views.TimeoutsViewSchema,
  SyncStatus: views.SyncStatusSchema,
  ErrorBody: views.ErrorBodySchema,
};

const { Invalid, NotFound, Exists, FamilyMismatch, Capacity, Unsupported, Map: MapError, System, Conflict } = ErrorCode;
const WRITE_ERRORS = [Invalid, Unsupported, Capacity, MapError];

export const ROUTES: RouteDoc[] = [
  {
    method: 'get',
    path: '/v1/info',
    tag: 'daemon',
    summary: 'What the daemon runs and where its data plane is attached',
    ok: { status: 200, description: 'version, connection table size, interfaces and XDP modes', schema: views.InfoViewSchema },
    errors: [],
  },
  {
    method: 'get',
    path: '/v1/sync',
    tag: 'daemon',
    summary: 'Connection sync between directors: peers and counters (docs/sync.md)',
    ok: { status: 200, description: 'where connections are sent and received, what was sent, applied, rejected, dropped', schema: views.SyncStatusSchema },
    errors: [NotFound],
  },
  {
    method: 'get',
    path: '/v1/services',
    tag: 'services',
    summary: 'List virtual services with their real servers and counters (ipvsadm -Ln)',
    ok: { status: 200, description: 'every service', schema: views.ServiceListSchema },
    errors: [],
  },
  {
    method: 'post',
    path: '/v1/services',
    tag: 'services',
    summary: 'Add a virtual service (ipvsadm -A)',
    description: 'The scheduler defaults to "wlc" like ipvsadm.',
    body: requests.ServiceCreate,
    ok: { status: 201, description: 'the new service', schema: views.ServiceViewSchema },
    errors: [...WRITE_ERRORS, Exists],
  },
  {
    method: 'delete',
    path: '/v1/services',
    tag: 'services',
    summary: 'Remove every virtual service (ipvsadm -C)',
    ok: { status: 200, description: 'how many services were removed', schema: views.DeletedSchema },
    errors: [MapError],
  },
  {
    method: 'get',
    path: '/v1/services/:svc',
    tag: 'services',
    summary: 'Read one virtual service',
    ok: { status: 200, description: 'the service', schema: views.ServiceViewSchema },
    errors: [Invalid, NotFound],
  },
  {
    method: 'patch',
    path: '/v1/services/:svc',
    tag: 'services',
    summary: 'Change a virtual service\'s scheduler or flags (ipvsadm -E)',
    body: requests.ServiceUpdate,
    ok: { status: 200, description: 'the service as changed', schema: views.ServiceViewSchema },
    errors: [...WRITE_ERRORS, NotFound],
  },
  {
    method: 'delete',
    path: '/v1/services/:svc',
    tag: 'services',
    summary: 'Remove a virtual service (ipvsadm -D)',
    ok: { status: 204, description: 'removed' },
    errors: [Invalid, NotFound, MapError],
  },
  {
    method: 'get',
    path: '/v1/services/:svc/servers',
    tag: 'real servers',
    summary: 'List a service\'s real servers',
    ok: { status: 200, description: 'the real servers, in scheduling order', schema: views.ServerListSchema },
    errors: [Invalid, NotFound],
  },
  {
    method: 'post',
    path: '/v1/services/:svc/servers',
    tag: 'real servers',
    summary: 'Add a real server to a service (ipvsadm -a)',
    description: 'The port defaults to the service\'s, the method to "dr", the weight to 1.',
    body: requests.ServerCreate,
    ok: { status: 201, description: 'the new real server', schema: views.RealServerViewSchema },
    errors: [...WRITE_ERRORS, NotFound, Exists, FamilyMismatch, System],
  },
  {
    method: 'get',
    path: '/v1/services/:svc/servers/:rs',
    tag: 'real servers',
    summary: 'Read one real server',
    ok: { status: 200, description: 'the real server', schema: views.RealServerViewSchema },
    errors: [Invalid, NotFound],
  },
  {
    method: 'patch',
    path: '/v1/services/:svc/servers/:rs',
    tag: 'real servers',
    summary: 'Change a real server\'s weight or method (ipvsadm -e)',
    body: requests.ServerUpdate,
    ok: { status: 200, description: 'the real server as changed', schema: views.RealServerViewSchema },
    errors: [...WRITE_ERRORS, NotFound, System],
  },
  {
    method: 'delete',
    path: '/v1/services/:svc/servers/:rs',
    tag: 'real servers',
    summary: 'Remove a real server (ipvsadm -d)',
    description: 'Its established connections keep flowing to it until they end.',
    ok: { status: 204, description: 'removed' },
    errors: [Invalid, NotFound, MapError],
  },
  {
    method: 'get',
    path: '/v1/stats',
    tag: 'observability',
    summary: 'Counters of every service and real server, and the data plane\'s verdict reasons',
    ok: { status: 200, description: 'services and reason counters', schema: views.StatsViewSchema },
    errors: [],
  },
  {
    method: 'get',
    path: '/v1/connections',
    tag: 'observability',
    summary: 'The connection table and persistence templates (ipvsadm -Lnc)',
    description: 'Live entries only; a persistence template has client port 0 and state NONE, as IPVS shows it.',
    ok: { status: 200, description: 'connections and templates', schema: views.ConnectionListSchema },
    errors: [],
  },
  {
    method: 'get',
    path: '/v1/timeouts',
    tag: 'configuration',
    summary: 'Connection timeouts in seconds (ipvsadm -L --timeout)',
    ok: { status: 200, description: 'tcp, tcpfin and udp timeouts', schema: views.TimeoutsViewSchema },
    errors: [],
  },
  {
    method: 'put',
    path: '/v1/timeouts',
    tag: 'configuration',
    summary: 'Set connection timeouts (ipvsadm --set tcp tcpfin udp)',
    description: 'A value of 0 (or left out) keeps that timeout. They apply from each connection\'s next state change or refresh.',
    body: requests.TimeoutsUpdate,
    ok: { status: 200, description: 'the timeouts now', schema: views.TimeoutsViewSchema },
    errors: [Invalid, MapError],
  },
  {
    method: 'post',
    path: '/v1/reload',
    tag: 'configuration',
    summary: 'Re-read --keepalived-conf and apply only the differences (as SIGHUP does)',
    description:
      'All or nothing, like PUT /v1/config: services the file no longer names are removed, others added or changed, ' +
      'unchanged ones keep their counters and connections. XDPVS_ERR_INVALID when the daemon runs without ' +
      '--keepalived-conf or the file does not parse.',
    ok: { status: 200, description: 'what was read and what changed', schema: views.ReloadResultSchema },
    errors: [...WRITE_ERRORS, NotFound, Exists, FamilyMismatch, System],
  },
  {
    method: 'post',
    path: '/v1/stats/zero',
    tag: 'observability',
    summary: 'Zero the counters and rates of every service and real server (ipvsadm -Z)',
    description: 'The data plane\'s verdict reason counters are not zeroed.',
    ok: { status: 200, description: 'how many services were zeroed', schema: views.ZeroedSchema },
    errors: [MapError],
  },
  {
    method: 'post',
    path: '/v1/services/:svc/stats/zero',
    tag: 'observability',
    summary: 'Zero the counters and rates of one service and its real servers (ipvsadm -Z -t|-u VIP:PORT)',
    ok: { status: 200, description: 'one service zeroed', schema: views.ZeroedSchema },
    errors: [Invalid, NotFound, MapError],
  },
  {
    method: 'get',
    path: '/v1/config',
    tag: 'configuration',
    summary: 'The whole configuration without counters (what xdpvsadm -S prints)',
    ok: { status: 200, description: 'services and real servers in scheduling order, and the revision', schema: views.ConfigViewSchema },
    errors: [],
  },
  {
    method: 'put',
    path: '/v1/config',
    tag: 'configuration',
    summary: 'Replace the whole configuration, all or nothing (xdpvsadm -R)',
    description:
      'Every service and real server is validated as a POST would validate it (omitted fields take the same ' +
      'defaults) on a rehearsal copy first: an error (its details.at names services[i].servers[j]) changes nothing. ' +
      'Services and real servers that stay as they are keep their counters, schedule and connections. With ' +
      '"revision", the request is refused with XDPVS_ERR_CONFLICT when the configuration changed since.',
    body: requests.ConfigReplace,
    ok: { status: 200, description: 'the configuration as applied, and what changed', schema: views.ConfigResultSchema },
    errors: [...WRITE_ERRORS, NotFound, Exists, FamilyMismatch, System, Conflict],
  },
  {
    method: 'get',
    path: '/metrics',
    tag: 'observability',
    summary: 'Prometheus metrics, read from the data plane\'s maps at scrape time',
    ok: { status: 200, description: 'Prometheus text exposition format 0.0.4', contentType: 'text/plain', schema: z.string() },
    errors: [],
  },
  {
    method: 'get',
    path: '/openapi.json',
    tag: 'observability',
    summary: 'This document',
    ok: { status: 200, description: 'the OpenAPI 3.0 document', schema: z.object({}).passthrough() },
    errors: [],
  },
  {
    method: 'get',
    path: '/docs',
    tag: 'observability',
    summary: 'This document as a readable page',
    ok: { status: 200, description: 'an HTML page generated from the document', contentType: 'text/html', schema: z.string() },
    errors: [],
  },
];

/** What each error code means, for the responses' descriptions (the codes themselves are in src/errors.ts). */
const CODE_MEANING: Record<ErrorCode, string> = {
  XDPVS_ERR_INVALID: 'malformed or out-of-range input, unknown field',
  XDPVS_ERR_FAMILY_MISMATCH: 'a real server of another address family than its service',
  XDPVS_ERR_UNAUTHORIZED: 'a write without the right bearer token',
  XDPVS_ERR_NOT_FOUND: 'no such service or real server',
  XDPVS_ERR_EXISTS: 'already present',
  XDPVS_ERR_CONFLICT: 'the configuration changed since the revision the request names',
  XDPVS_ERR_UNSUPPORTED: 'a known IPVS feature this version does not do yet',
  XDPVS_ERR_CAPACITY: 'the data plane\'s tables are full',
  XDPVS_ERR_BPF: 'libbpf refused',
  XDPVS_ERR_MAP: 'the kernel refused a map operation',
  XDPVS_ERR_SYSTEM: 'a system command (ip) failed',
  XDPVS_ERR_UNREACHABLE: 'the daemon could not be reached',
  XDPVS_ERR_INTERNAL: 'a bug',
};

/** `/v1/services/:svc` → `/v1/services/{svc}`. */
export function openApiPath(honoPath: string): string {
  return honoPath.replace(/:([A-Za-z0-9_]+)/g, '{$1}');
}

export function isWrite(method: HttpMethod): boolean {
  return method !== 'get';
}

function errorResponses(route: RouteDoc): Record<string, ResponseConfig> {
  const codes = new Set<ErrorCode>([...route.errors, ErrorCode.Internal]);
  if (isWrite(route.method)) codes.add(ErrorCode.Unauthorized);
  const byStatus = new Map<number, ErrorCode[]>();
  for (const code of codes) {
    const status = statusOf(new XdpvsError(code, ''));
    byStatus.set(status, [...(byStatus.get(status) ?? []), code]);
  }
  const out: Record<string, ResponseConfig> = {};
  for (const [status, list] of [...byStatus].sort((a, b) => a[0] - b[0])) {
    out[String(status)] = {
      description: list.map((c) => `${c}: ${CODE_MEANING[c]}`).join('; '),
      content: { 'application/json': { schema: views.ErrorBodySchema } },
    };
  }
  return out;
}

function routeConfig(route: RouteDoc, named: Map<ZodTypeAny, ZodTypeAny>): RouteConfig {
  const names = [...route.path.matchAll(/:([A-Za-z0-9_]+)/g)].map((m) => m[1]);
  const params: Record<string, ZodTypeAny> = {};
  for (const n of names) {
    const p = PATH_PARAMS[n];
    if (!p) throw new Error(`openapi: route ${route.path} has a path parameter "${n}" with no description in PATH_PARAMS`);
    params[n] = z.string().openapi({ description: p.description, example: p.example });
  }
  const ok: ResponseConfig = { description: route.ok.description };
  if (route.ok.schema) ok.content = { [route.ok.contentType ?? 'application/json']: { schema: route.ok.schema } };
  return {
    method: route.method,
    path: openApiPath(route.path),
    tags: [route.tag],
    summary: route.summary,
    description: route.description,
    operationId: operationId(route),
    security: isWrite(route.method) ? [{ bearerToken: [] }] : [],
    request: {
      params: names.length ? z.object(params) : undefined,
      body: route.body ? { required: true, content: { 'application/json': { schema: named.get(route.body) ?? route.body } } } : undefined,
    },
    responses: { [String(route.ok.status)]: ok, ...errorResponses(route) },
  };
}

/** `post /v1/services/:svc/servers` → `postV1ServicesSvcServers`. */
function operationId(route: RouteDoc): string {
  const words = route.path.split(/[^A-Za-z0-9]+/).filter(Boolean);
  return route.method + words.map((w) => w[0].toUpperCase() + w.slice(1)).join('');
}

export type OpenApiDocument = ReturnType<OpenApiGeneratorV3['generateDocument']>;

export function buildOpenApiDocument(opts: { version: string; routes?: RouteDoc[] }): OpenApiDocument {
  const registry = new OpenAPIRegistry();
  registry.registerComponent('securitySchemes', 'bearerToken', {
    type: 'http',
    scheme: 'bearer',
    description: 'the content of the daemon\'s token file (default /etc/xdpvs/api-token, mode 0600); writes only',
  });
  // The response schemas carry their component names already (views.ts). A request validator gets a named copy
  // here, and a route whose body is that validator refers to the copy: same schema, shown as a $ref.
  for (const [name, schema] of Object.entries(RESPONSE_SCHEMAS)) registry.register(name, schema);
  const named = new Map<ZodTypeAny, ZodTypeAny>();
  for (const [name, schema] of Object.entries(REQUEST_SCHEMAS)) named.set(schema, registry.register(name, schema));
  for (const route of opts.routes ?? ROUTES) registry.registerPath(routeConfig(route, named));

  return new OpenApiGeneratorV3(registry.definitions).generateDocument({
    openapi: '3.0.3',
    info: {
      title: 'xdpvsd',
      version: opts.version,
      description:
        'The HTTP API of xdpvsd, the daemon of xdpvs (Linux Virtual Server on XDP). JSON in and out. Reads are open; ' +
        'every write needs "Authorization: Bearer <token>". Every change is written to the data plane\'s maps before ' +
        'the response returns, and a rejected request changes nothing.',
      license: { name: 'GPL-2.0-only' },
    },
    servers: [{ url: 'http://127.0.0.1:9777', description: 'the default --listen address' }],
    tags: [
      { name: 'daemon', description: 'the daemon itself' },
      { name: 'services', description: 'virtual services (ipvsadm -A, -E, -D, -C, -L)' },
      { name: 'real servers', description: 'real servers of a service (ipvsadm -a, -e, -d)' },
      { name: 'configuration', description: 'the configuration as a whole' },
      { name: 'observability', description: 'counters, metrics and this document' },
    ],
  });
}
