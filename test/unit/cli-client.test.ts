// The CLI's HTTP client against a scripted stand-in daemon on 127.0.0.1: paths, bearer token, error codes.

import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { ErrorCode, XdpvsError } from '../../src/errors.js';
import { XdpvsClient, errorFromResponse, serverId, serviceId } from '../../src/cli/client.js';

interface Seen {
  method: string;
  url: string;
  authorization?: string;
  contentType?: string;
  body: string;
}

type Reply = { status: number; body?: unknown; raw?: string };

let server: Server | undefined;

afterEach(async () => {
  await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  server = undefined;
});

/** Start a stand-in daemon answering every request with reply(seen); resolves to its URL and the request log. */
async function standIn(reply: (seen: Seen) => Reply): Promise<{ url: string; seen: Seen[] }> {
  const seen: Seen[] = [];
  server = createServer(async (req: IncomingMessage, res) => {
    let body = '';
    for await (const chunk of req) body += chunk;
    const s: Seen = {
      method: req.method ?? '',
      url: req.url ?? '',
      authorization: req.headers.authorization,
      contentType: req.headers['content-type'],
      body,
    };
    seen.push(s);
    const r = reply(s);
    res.statusCode = r.status;
    if (r.raw !== undefined) res.end(r.raw);
    else if (r.body !== undefined) {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify(r.body));
    } else res.end();
  });
  await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', () => resolve()));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, seen };
}

async function rejection(p: Promise<unknown>): Promise<XdpvsError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(XdpvsError);
    return e as XdpvsError;
  }
  throw new Error('resolved');
}

describe('identifiers', () => {
  it('PROTO:ADDR:PORT and ADDR:PORT, IPv6 in brackets', () => {
    expect(serviceId({ protocol: 'tcp', address: '198.18.0.100', port: 80 })).toBe('tcp:198.18.0.100:80');
    expect(serviceId({ protocol: 'udp', address: 'fd00::100', port: 53, family: 'inet6' })).toBe('udp:[fd00::100]:53');
    expect(serverId({ address: 'fd00::11', port: 80 })).toBe('[fd00::11]:80');
    expect(serverId({ address: '198.18.0.11', port: 8080 })).toBe('198.18.0.11:8080');
  });
});

describe('requests', () => {
  it('every route with its method, percent-encoded path, JSON body and bearer token', async () => {
    const daemon = await standIn((s) => (s.method === 'DELETE' && s.url !== '/v1/services' ? { status: 204 } : { status: 200, body: { ok: true, deleted: 0, services: [] } }));
    const client = new XdpvsClient({ url: `${daemon.url}/`, token: 's3cret' });
    const svc = 'tcp:[fd00::100]:80';
    const rs = '[fd00::11]:80';
    await client.info();
    await client.listServices();
    await client.getService(svc);
    await client.addService({ protocol: 'tcp', address: 'fd00::100', port: 80, scheduler: 'rr', flags: [] });
    await client.editService(svc, { scheduler: 'wrr', flags: [] });
    await client.deleteService(svc);
    await client.clear();
    await client.addServer(svc, { address: 'fd00::11', port: 80, method: 'nat', weight: 2 });
    await client.editServer(svc, rs, { weight: 3, method: 'dr' });
    await client.deleteServer(svc, rs);
    const enc = encodeURIComponent(svc);
    expect(daemon.seen.map((s) => `${s.method} ${s.url} ${s.body}`)).toEqual([
      'GET /v1/info ',
      'GET /v1/services ',
      `GET /v1/services/${enc} `,
      'POST /v1/services {"protocol":"tcp","address":"fd00::100","port":80,"scheduler":"rr","flags":[]}',
      `PATCH /v1/services/${enc} {"scheduler":"wrr","flags":[]}`,
      `DELETE /v1/services/${enc} `,
      'DELETE /v1/services ',
      `POST /v1/services/${enc}/servers {"address":"fd00::11","port":80,"method":"nat","weight":2}`,
      `PATCH /v1/services/${enc}/servers/${encodeURIComponent(rs)} {"weight":3,"method":"dr"}`,
      `DELETE /v1/services/${enc}/servers/${encodeURIComponent(rs)} `,
    ]);
    expect(enc).toBe('tcp%3A%5Bfd00%3A%3A100%5D%3A80');
    expect(new Set(daemon.seen.map((s) => s.authorization))).toEqual(new Set(['Bearer s3cret']));
    expect(daemon.seen[3].contentType).toBe('application/json');
  });

  it('no Authorization header without a token', async () => {
    const daemon = await standIn(() => ({ status: 200, body: { services: [] } }));
    await new XdpvsClient({ url: daemon.url }).listServices();
    expect(daemon.seen[0].authorization).toBeUndefined();
  });
});

describe('errors', () => {
  it("the daemon's code, message and details", async () => {
    const daemon = await standIn(() => ({
      status: 409,
      body: { error: { code: 'XDPVS_ERR_EXISTS', message: 'service tcp:198.18.0.100:80 already exists', service: 'tcp:198.18.0.100:80' } },
    }));
    const e = await rejection(new XdpvsClient({ url: daemon.url }).addService({ protocol: 'tcp', address: '198.18.0.100', port: 80 }));
    expect(e.code).toBe(ErrorCode.Exists);
    expect(e.message).toBe('service tcp:198.18.0.100:80 already exists');
    expect(e.details).toEqual({ status: 409, service: 'tcp:198.18.0.100:80' });
  });

  it.each([
    [404, 'XDPVS_ERR_NOT_FOUND', ErrorCode.NotFound],
    [401, 'XDPVS_ERR_UNAUTHORIZED', ErrorCode.Unauthorized],
    [501, 'XDPVS_ERR_UNSUPPORTED', ErrorCode.Unsupported],
    [400, 'XDPVS_ERR_FAMILY_MISMATCH', ErrorCode.FamilyMismatch],
    [507, 'XDPVS_ERR_CAPACITY', ErrorCode.Capacity],
    [500, 'XDPVS_ERR_MAP', ErrorCode.Map],
  ])('status %i with %s', async (status, code, expected) => {
    const daemon = await standIn(() => ({ status, body: { error: { code, message: 'no' } } }));
    const e = await rejection(new XdpvsClient({ url: daemon.url }).getService('tcp:1.2.3.4:80'));
    expect(e.code).toBe(expected);
  });

  it('falls back to the status when the body is not an API error', () => {
    expect(errorFromResponse(404, 'Not Found').code).toBe(ErrorCode.NotFound);
    expect(errorFromResponse(404, 'Not Found').message).toBe('HTTP 404: Not Found');
    expect(errorFromResponse(409, '').code).toBe(ErrorCode.Exists);
    expect(errorFromResponse(401, '{}').code).toBe(ErrorCode.Unauthorized);
    expect(errorFromResponse(502, '<html>').code).toBe(ErrorCode.Internal);
    expect(errorFromResponse(400, '{"error":{"code":"XDPVS_ERR_NEW_THING","message":"m"}}').code).toBe(ErrorCode.Invalid);
  });

  it('a success that is not JSON is an internal error', async () => {
    const daemon = await standIn(() => ({ status: 200, raw: 'hello' }));
    expect((await rejection(new XdpvsClient({ url: daemon.url }).info())).code).toBe(ErrorCode.Internal);
  });

  it('unreachable: nothing listening', async () => {
    const daemon = await standIn(() => ({ status: 200 }));
    await new Promise<void>((resolve) => server!.close(() => resolve()));
    server = undefined;
    const e = await rejection(new XdpvsClient({ url: daemon.url }).listServices());
    expect(e.code).toBe(ErrorCode.Unreachable);
    expect(e.message).toMatch(new RegExp(`^cannot reach xdpvsd at ${daemon.url}: .*ECONNREFUSED`));
    expect(e.details.url).toBe(daemon.url);
  });

  it('unreachable: no answer in time', async () => {
    server = createServer(() => {
      // never answers
    });
    await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', () => resolve()));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const e = await rejection(new XdpvsClient({ url, timeoutMs: 200 }).info());
    expect(e.code).toBe(ErrorCode.Unreachable);
    expect(e.message).toBe(`cannot reach xdpvsd at ${url}: no answer within 0.2 s`);
    server.closeAllConnections();
  });
});
