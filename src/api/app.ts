// The Hono application: routes over the balancer, zod validation, bearer auth for writes, one error handler.

import { timingSafeEqual } from 'node:crypto';
import { Hono, type Context, type MiddlewareHandler } from 'hono';
import type { z } from 'zod';
import { ErrorCode, XdpvsError } from '../errors.js';
import type { Balancer } from '../lb/balancer.js';
import type { InfoView } from '../lb/model.js';
import { renderDocsPage } from './docs-page.js';
import { statusOf } from './errors.js';
import { Metrics } from './metrics.js';
import { buildOpenApiDocument, type OpenApiDocument } from './openapi.js';
import type { SyncStatus } from '../sync/conn-sync.js';
import { ConfigReplace, ServerCreate, ServerUpdate, ServiceCreate, ServiceUpdate, TimeoutsUpdate } from './schemas.js';

/** What the daemon tells the app for GET /v1/info; the app adds the balancer's connTableSize. */
export type AppInfo = Omit<InfoView, 'connTableSize'>;

export interface AppOptions {
  balancer: Balancer;
  /** The bearer token writes must carry; reads are open (the daemon listens on loopback by default). */
  token: string;
  info: () => AppInfo;
  log?: (level: 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>) => void;
  /** Add the daemon process's own metrics (CPU, memory, event loop) to /metrics. */
  processMetrics?: boolean;
  /** POST /v1/reload: re-reads --keepalived-conf and applies the differences (src/keepalived/apply.ts). */
  reload?: () => Promise<unknown>;
  /** GET /v1/sync: connection sync's counters (src/sync), when xdpvsd runs it. */
  sync?: () => SyncStatus;
}

function requireToken(token: string): MiddlewareHandler {
  const expected = Buffer.from(`Bearer ${token}`);
  return async (c, next) => {
    if (c.req.method === 'GET' || c.req.method === 'HEAD') return next();
    const got = Buffer.from(c.req.header('authorization') ?? '');
    if (got.length !== expected.length || !timingSafeEqual(got, expected)) {
      throw new XdpvsError(ErrorCode.Unauthorized, 'writes need "Authorization: Bearer <token>" with the token from the daemon\'s token file');
    }
    return next();
  };
}

async function body<S extends z.ZodTypeAny>(c: Context, schema: S): Promise<z.infer<S>> {
  let raw: unknown;
  try {
    raw = await c.req.json();
  } catch {
    throw new XdpvsError(ErrorCode.Invalid, 'request body must be JSON');
  }
  const parsed = schema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue.path.length ? issue.path.join('.') : 'body';
    throw new XdpvsError(ErrorCode.Invalid, `${where}: ${issue.message}`, { field: where });
  }
  return parsed.data;
}

export function createApp(opts: AppOptions): Hono {
  const { balancer } = opts;
  const app = new Hono();

  app.onError((err, c) => {
    if (err instanceof XdpvsError) return c.json(err.toJSON(), statusOf(err));
    opts.log?.('error', `unhandled error: ${err.stack ?? err.message}`);
    return c.json(new XdpvsError(ErrorCode.Internal, err.message).toJSON(), 500);
  });
  app.notFound((c) => c.json(new XdpvsError(ErrorCode.NotFound, `no route ${c.req.method} ${c.req.path}`).toJSON(), 404));

  app.use('/v1/*', requireToken(opts.token));

  app.get('/v1/info', (c) => c.json({ ...opts.info(), connTableSize: balancer.connTableSize } satisfies InfoView));

  app.get('/v1/sync', (c) => {
    if (!opts.sync) throw new XdpvsError(ErrorCode.NotFound, 'connection sync is off: xdpvsd runs it with --sync-peer or --sync-listen, and --sync-key');
    return c.json(opts.sync());
  });

  app.get('/v1/services', (c) => c.json({ services: balancer.listServices() }));
  app.post('/v1/services', async (c) => c.json(await balancer.addService(await body(c, ServiceCreate)), 201));
  app.delete('/v1/services', async (c) => c.json({ deleted: await balancer.clear() }));

  app.get('/v1/services/:svc', (c) => c.json(balancer.getService(c.req.param('svc'))));
  app.patch('/v1/services/:svc', async (c) => c.json(await balancer.editService(c.req.param('svc'), await body(c, ServiceUpdate))));
  app.delete('/v1/services/:svc', async (c) => {
    await balancer.deleteService(c.req.param('svc'));
    return c.body(null, 204);
  });

  app.get('/v1/services/:svc/servers', (c) => c.json({ servers: balancer.getService(c.req.param('svc')).servers }));
  app.post('/v1/services/:svc/servers', async (c) => c.json(await balancer.addServer(c.req.param('svc'), await body(c, ServerCreate)), 201));
  app.get('/v1/services/:svc/servers/:rs', (c) => c.json(balancer.getServer(c.req.param('svc'), c.req.param('rs'))));
  app.patch('/v1/services/:svc/servers/:rs', async (c) =>
    c.json(await balancer.editServer(c.req.param('svc'), c.req.param('rs'), await body(c, ServerUpdate))),
  );
  app.delete('/v1/services/:svc/servers/:rs', async (c) => {
    await balancer.deleteServer(c.req.param('svc'), c.req.param('rs'));
    return c.body(null, 204);
  });

  app.get('/v1/stats', (c) => c.json({ services: balancer.listServices(), reasons: balancer.reasons() }));
  // ipvsadm -Lnc, -L --timeout, --set.
  app.get('/v1/connections', (c) => c.json({ connections: balancer.listConnections() }));
  app.get('/v1/timeouts', (c) => c.json(balancer.getTimeouts()));
  app.put('/v1/timeouts', async (c) => c.json(await balancer.setTimeouts(await body(c, TimeoutsUpdate))));
  app.post('/v1/reload', async (c) => {
    if (!opts.reload) throw new XdpvsError(ErrorCode.Invalid, 'nothing to reload: xdpvsd was not started with --keepalived-conf FILE');
    return c.json(await opts.reload());
  });
  app.post('/v1/stats/zero', async (c) => c.json({ zeroed: await balancer.zeroCounters() }));
  app.post('/v1/services/:svc/stats/zero', async (c) => c.json({ zeroed: await balancer.zeroCounters(c.req.param('svc')) }));

  // The configuration as a whole (xdpvsadm -S / -R): read it, replace it all or nothing.
  app.get('/v1/config', (c) => c.json(balancer.getConfig()));
  app.put('/v1/config', async (c) => {
    const { services, revision } = await body(c, ConfigReplace);
    const result = await balancer.replaceConfig(services, revision);
    return c.json({ ...result, services: balancer.getConfig().services });
  });

  // Observability and the API's own contract: reads, open like every GET.
  const metrics = new Metrics({ source: balancer, info: opts.info, processMetrics: opts.processMetrics, sync: opts.sync });
  app.get('/metrics', async (c) => c.body(await metrics.scrape(), 200, { 'content-type': metrics.contentType }));
  let doc: OpenApiDocument | undefined;
  let page: string | undefined;
  const openapi = () => (doc ??= buildOpenApiDocument({ version: opts.info().version }));
  app.get('/openapi.json', (c) => c.json(openapi()));
  app.get('/docs', (c) => c.html((page ??= renderDocsPage(openapi()))));

  return app;
}
