// The OpenAPI document: valid OpenAPI 3, the same routes as the Hono app, request schemas that are the validators
// themselves (same JSON Schema, same verdicts, used by the same routes), responses that match what the API returns.

import SwaggerParser from '@apidevtools/swagger-parser';
import { OpenApiGeneratorV3 } from '@asteasolutions/zod-to-openapi';
import { Ajv, type ValidateFunction } from 'ajv';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { ErrorCode } from '../../src/errors.js';
import { buildOpenApiDocument, openApiPath, REQUEST_SCHEMAS, ROUTES, type OpenApiDocument } from '../../src/api/openapi.js';
import * as requests from '../../src/api/schemas.js';
import { fakeDirector, rsPath, svcPath, TOKEN } from '../helpers/fake-director.js';

type Json = Record<string, any>;

const NEIGH = { '198.18.0.11': '02:00:00:00:00:11', '198.18.0.12': null, 'fd00::11': '02:00:00:00:00:21' };
const SVC = 'tcp:198.18.0.100:80';

async function served(): Promise<{ doc: OpenApiDocument; d: ReturnType<typeof fakeDirector> }> {
  const d = fakeDirector({ neighbours: NEIGH });
  const res = await d.app.request('/openapi.json');
  expect(res.status).toBe(200);
  return { doc: (await res.json()) as OpenApiDocument, d };
}

/** The app's routes as "METHOD /openapi/{path}", leaving out middleware (app.use registers method ALL). */
function appRoutes(app: ReturnType<typeof fakeDirector>['app']): string[] {
  return [...new Set(app.routes.filter((r) => r.method !== 'ALL').map((r) => `${r.method} ${openApiPath(r.path)}`))].sort();
}

function docRoutes(doc: OpenApiDocument): string[] {
  const out: string[] = [];
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const m of ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'] as const) {
      if ((item as Json)[m]) out.push(`${m.toUpperCase()} ${path}`);
    }
  }
  return out.sort();
}

/** Ajv in strict mode; OpenAPI's "example" is not a validation keyword ("nullable" Ajv knows). */
function ajvFor(doc: OpenApiDocument): { ajv: Ajv; doc: OpenApiDocument } {
  const ajv = new Ajv({ allErrors: true, strict: true });
  ajv.addVocabulary(['example']);
  return { ajv, doc };
}

/** A validator for a schema of the document, its $refs to components resolved within it (as JSON Schema definitions). */
function validatorFor({ ajv, doc }: { ajv: Ajv; doc: OpenApiDocument }, schema: Json): ValidateFunction {
  const local = (x: unknown) => JSON.parse(JSON.stringify(x).replaceAll('"$ref":"#/components/schemas/', '"$ref":"#/definitions/'));
  return ajv.compile({ ...local(schema), definitions: local(doc.components?.schemas ?? {}) });
}

afterEach(() => vi.restoreAllMocks());

describe('/openapi.json', () => {
  it('is a valid OpenAPI 3 document (swagger-parser validates it against the OpenAPI 3.0 schema)', async () => {
    const { doc } = await served();
    expect(doc.openapi).toMatch(/^3\.0\.\d+$/);
    await expect(SwaggerParser.validate(structuredClone(doc) as never)).resolves.toBeTruthy();
  });

  it('describes exactly the routes the Hono app registers', async () => {
    const { doc, d } = await served();
    expect(docRoutes(doc)).toEqual(appRoutes(d.app));
  });

  it('gives every route its success response, its error statuses from src/api/errors.ts, and bearer auth on writes', async () => {
    const { doc } = await served();
    for (const r of ROUTES) {
      const op = (doc.paths[openApiPath(r.path)] as Json)[r.method];
      expect(Object.keys(op.responses), `${r.method} ${r.path}`).toContain(String(r.ok.status));
      expect(Object.keys(op.responses)).toContain('500');
      const write = r.method !== 'get';
      expect(op.security, `${r.method} ${r.path}`).toEqual(write ? [{ bearerToken: [] }] : []);
      if (write) expect(op.responses['401'].description).toContain(ErrorCode.Unauthorized);
      for (const [status, resp] of Object.entries(op.responses as Record<string, Json>)) {
        if (Number(status) >= 400) expect(resp.content['application/json'].schema).toEqual({ $ref: '#/components/schemas/ErrorBody' });
      }
      const params = (op.parameters ?? []).map((p: Json) => p.name);
      expect(params, r.path).toEqual([...r.path.matchAll(/:(\w+)/g)].map((m) => m[1]));
    }
    expect(doc.components?.securitySchemes?.bearerToken).toMatchObject({ type: 'http', scheme: 'bearer' });
  });

  it('documents every request schema of src/api/schemas.ts as the very same JSON Schema', async () => {
    const { doc } = await served();
    const exported = Object.entries(requests).filter(([, v]) => typeof (v as { safeParse?: unknown }).safeParse === 'function');
    expect(Object.keys(REQUEST_SCHEMAS).sort()).toEqual(exported.map(([k]) => k).sort());
    for (const [name, schema] of exported) {
      expect(REQUEST_SCHEMAS[name]).toBe(schema);
      // Generated again, on its own, from the validator object: the document holds exactly that.
      const alone = new OpenApiGeneratorV3([(schema as any).openapi(name)]).generateComponents().components!.schemas![name];
      expect(doc.components!.schemas![name], name).toEqual(alone);
    }
  });

  it('has each route validate its body with the schema the document names for it', async () => {
    const { doc, d } = await served();
    await d.call('POST', '/v1/services', { protocol: 'tcp', address: '198.18.0.100', port: 80, scheduler: 'rr' });
    await d.call('POST', `${svcPath(SVC)}/servers`, { address: '198.18.0.11' });
    const spies = Object.fromEntries(Object.entries(REQUEST_SCHEMAS).map(([name, s]) => [name, vi.spyOn(s, 'safeParse')]));
    const concrete = (p: string) => p.replace(':svc', encodeURIComponent(SVC)).replace(':rs', encodeURIComponent('198.18.0.11:80'));
    for (const r of ROUTES.filter((x) => x.method !== 'get')) {
      for (const s of Object.values(spies)) s.mockClear();
      // An unknown field: every request schema is strict, so the validator rejects it before anything changes.
      await d.call(r.method.toUpperCase(), concrete(r.path), { zzUnknownField: 1 }, TOKEN);
      const used = Object.entries(spies).filter(([, s]) => s.mock.calls.length > 0).map(([n]) => n);
      const body = (doc.paths[openApiPath(r.path)] as Json)[r.method].requestBody;
      const named = body ? [body.content['application/json'].schema.$ref.split('/').pop()] : [];
      expect(used, `${r.method} ${r.path}`).toEqual(named);
    }
  });

  it('accepts and rejects the same bodies as the validators (Ajv on the document, zod on the request)', async () => {
    const { doc } = await served();
    const ajv = ajvFor(doc);
    const bodies: unknown[] = [
      {},
      { protocol: 'tcp', address: '198.18.0.100', port: 80 },
      { protocol: 'udp', address: 'fd00::100', port: 53, scheduler: 'mh', flags: ['mh-port'] },
      { protocol: 'sctp', address: '198.18.0.100', port: 80 },
      { protocol: 'tcp', address: '', port: 80 },
      { protocol: 'tcp', address: '198.18.0.100', port: 0 },
      { protocol: 'tcp', address: '198.18.0.100', port: 65536 },
      { protocol: 'tcp', address: '198.18.0.100', port: 80.5 },
      { protocol: 'tcp', address: '198.18.0.100', port: '80' },
      { protocol: 'tcp', address: '198.18.0.100', port: 80, bogus: true },
      { scheduler: 'wrr' },
      { scheduler: '' },
      { flags: 'mh-port' },
      { flags: ['sh-port', 'mh-port'] },
      { address: '198.18.0.11' },
      { address: '198.18.0.11', port: 8080, method: 'nat', weight: 0 },
      { address: '198.18.0.11', method: 'masq' },
      { address: '198.18.0.11', weight: 65535 },
      { address: '198.18.0.11', weight: 65536 },
      { address: '198.18.0.11', weight: -1 },
      { weight: 3 },
      { weight: 3, method: 'tunnel' },
      { method: 'dr', extra: 1 },
      [],
      null,
      'tcp',
    ];
    for (const [name, schema] of Object.entries(REQUEST_SCHEMAS)) {
      const check = validatorFor(ajv, doc.components!.schemas![name] as Json);
      for (const b of bodies) expect({ name, body: b, valid: check(b) }).toEqual({ name, body: b, valid: schema.safeParse(b).success });
    }
  });

  it('describes what the API really returns (responses validated against the document)', async () => {
    const { doc, d } = await served();
    const ajv = ajvFor(doc);
    const check = async (method: string, path: string, body?: unknown, token: string | null = TOKEN) => {
      const r = await d.call(method, path, body, token);
      const docPath = Object.keys(doc.paths).find((p) => new RegExp(`^${p.replace(/\{\w+\}/g, '[^/]+')}$`).test(path.split('?')[0]))!;
      const op = (doc.paths[docPath] as Json)[method.toLowerCase()];
      const resp = op.responses[String(r.status)];
      expect(resp, `${method} ${path} answered ${r.status}, which the document does not list`).toBeDefined();
      const schema = resp.content?.['application/json']?.schema;
      if (schema) {
        const v = validatorFor(ajv, schema);
        expect(v(r.body), `${method} ${path} ${r.status}: ${JSON.stringify(v.errors)}`).toBe(true);
      } else expect(r.body).toBeUndefined();
      return r;
    };
    await check('GET', '/v1/info');
    await check('POST', '/v1/services', { protocol: 'tcp', address: '198.18.0.100', port: 80, scheduler: 'rr' });
    await check('POST', '/v1/services', { protocol: 'tcp', address: '198.18.0.100', port: 80, scheduler: 'rr' });
    await check('POST', '/v1/services', { protocol: 'tcp', address: '198.18.0.101', port: 80 });
    await check('POST', '/v1/services', { protocol: 'tcp', address: '198.18.0.101', port: 80, scheduler: 'rr' }, null);
    await check('POST', `${svcPath(SVC)}/servers`, { address: '198.18.0.11', weight: 2 });
    await check('POST', `${svcPath(SVC)}/servers`, { address: '198.18.0.12' });
    await check('POST', `${svcPath(SVC)}/servers`, { address: 'fd00::11' });
    await check('POST', `${svcPath(SVC)}/servers`, { address: '198.18.0.99' });
    await check('GET', '/v1/services');
    await check('GET', svcPath(SVC));
    await check('GET', svcPath('tcp:198.18.0.1:1'));
    await check('PATCH', svcPath(SVC), { scheduler: 'wrr' });
    await check('GET', `${svcPath(SVC)}/servers`);
    await check('GET', rsPath(SVC, '198.18.0.11:80'));
    await check('PATCH', rsPath(SVC, '198.18.0.11:80'), { weight: 5 });
    await check('PATCH', rsPath(SVC, '198.18.0.11:80'), { weight: 70000 });
    await check('GET', '/v1/stats');
    await check('DELETE', rsPath(SVC, '198.18.0.11:80'));
    await check('DELETE', svcPath(SVC));
    await check('DELETE', '/v1/services');
  });

  it('is generated once per app and carries the daemon\'s version', async () => {
    const { doc } = await served();
    expect(doc.info.version).toBe('test');
    expect(buildOpenApiDocument({ version: 'test' })).toEqual(doc);
  });
});

describe('/docs', () => {
  it('is one self-contained HTML page generated from the document: every route, parameter and schema', async () => {
    const { doc, d } = await served();
    const res = await d.app.request('/docs');
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/html/);
    const html = await res.text();
    expect(html).toMatch(/^<!doctype html>/);
    // Nothing to fetch: no scripts, no external stylesheets, images or fonts (the director may have no internet).
    expect(html).not.toMatch(/<script|<link|<img|@import|url\(/i);
    expect(html).not.toMatch(/(src|href)="https?:/i);
    for (const route of docRoutes(doc)) {
      const [method, path] = route.split(' ');
      expect(html, route).toContain(`>${method}</span> <code>${path.replace(/&/g, '&amp;')}</code>`);
    }
    for (const name of Object.keys(doc.components!.schemas!)) expect(html, name).toContain(`id="schema-${name}"`);
    expect(html).toContain('<code>svc</code>');
    expect(html).toContain('tcp:198.18.0.100:80');
    expect(html).toContain(ErrorCode.NotFound);
    // Every in-page link has its target.
    const ids = new Set([...html.matchAll(/ id="([^"]+)"/g)].map((m) => m[1]));
    for (const m of html.matchAll(/href="#([^"]+)"/g)) expect(ids, m[1]).toContain(m[1]);
  });

  it('is open, like every read', async () => {
    const { d } = await served();
    expect((await d.app.request('/docs')).status).toBe(200);
    expect((await d.app.request('/openapi.json')).status).toBe(200);
  });
});
