// A tiny real HTTP server for the lab's real servers: `GET /` answers with its name, `GET /hold?ms=N` streams slowly.
//
//   node dist/scripts/lab/http-server.js --name rs1 [--port 80] [--listen 0.0.0.0,::] [--exit-on-stdin-close]
//
// Routes:
//   GET /          the server's name and a newline (the seed's per-server index.html)
//   GET /ip        the client address and port as this server sees them (DR keeps the client's address)
//   GET /hold?ms=N the name line, then one "." every 200 ms for N ms (at most 120 s), then a newline: a connection
//                  that stays open while a test changes the configuration
//   GET /port      the port this server listens on (NAT maps the VIP's port to it)
//   GET /bytes?n=N the name line, then "x" up to N bytes in all (at most 16 MiB): a download (NAT's OutBytes)
// Prints "listening" on stdout once every address is bound. Exits on SIGTERM/SIGINT and, with --exit-on-stdin-close,
// when its stdin closes (the lab process that started it is gone), so it never outlives the lab.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { parseArgs } from 'node:util';

const HOLD_MAX_MS = 120_000;
const HOLD_TICK_MS = 200;
const BYTES_MAX = 16 * 1024 * 1024;

const { values } = parseArgs({
  options: {
    name: { type: 'string' },
    port: { type: 'string', default: '80' },
    listen: { type: 'string', default: '0.0.0.0,::' },
    'exit-on-stdin-close': { type: 'boolean', default: false },
  },
  strict: true,
});
const name = values.name;
if (!name) fail('--name is required');
const port = Number(values.port);
if (!Number.isInteger(port) || port < 0 || port > 65535) fail(`bad --port ${values.port}`);
const addresses = values.listen
  .split(',')
  .map((a) => a.trim())
  .filter((a) => a !== '');
if (addresses.length === 0) fail('--listen needs at least one address');

function fail(msg: string): never {
  process.stderr.write(`http-server: ${msg}\n`);
  process.exit(2);
}

const timers = new Set<NodeJS.Timeout>();

function handle(req: IncomingMessage, res: ServerResponse): void {
  const url = new URL(req.url ?? '/', 'http://lab');
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.writeHead(405, { 'content-type': 'text/plain' }).end('method not allowed\n');
    return;
  }
  if (url.pathname === '/') {
    res.writeHead(200, { 'content-type': 'text/plain', 'x-real-server': name! }).end(`${name}\n`);
    return;
  }
  if (url.pathname === '/ip') {
    const addr = req.socket.remoteAddress ?? '';
    res.writeHead(200, { 'content-type': 'text/plain' }).end(`${addr} ${req.socket.remotePort ?? ''}\n`);
    return;
  }
  if (url.pathname === '/port') {
    res.writeHead(200, { 'content-type': 'text/plain' }).end(`${req.socket.localPort ?? ''}\n`);
    return;
  }
  if (url.pathname === '/bytes') {
    const n = Math.min(Number(url.searchParams.get('n') ?? '0'), BYTES_MAX);
    if (!Number.isInteger(n) || n < 0) {
      res.writeHead(400, { 'content-type': 'text/plain' }).end('n must be a non-negative integer\n');
      return;
    }
    const body = Buffer.alloc(n, 'x');
    Buffer.from(`${name}\n`).copy(body, 0, 0, Math.min(n, name!.length + 1));
    res.writeHead(200, { 'content-type': 'text/plain', 'x-real-server': name! }).end(body);
    return;
  }
  if (url.pathname === '/hold') {
    const ms = Number(url.searchParams.get('ms') ?? '0');
    if (!Number.isFinite(ms) || ms < 0) {
      res.writeHead(400, { 'content-type': 'text/plain' }).end('ms must be a non-negative number\n');
      return;
    }
    const total = Math.min(ms, HOLD_MAX_MS);
    const ticks = Math.floor(total / HOLD_TICK_MS);
    res.writeHead(200, { 'content-type': 'text/plain', 'x-real-server': name!, 'x-hold-ticks': String(ticks) });
    res.write(`${name}\n`);
    let sent = 0;
    const timer = setInterval(() => {
      if (sent >= ticks) {
        clearInterval(timer);
        timers.delete(timer);
        res.end('\n');
        return;
      }
      sent++;
      res.write('.');
    }, HOLD_TICK_MS);
    timers.add(timer);
    res.on('close', () => {
      clearInterval(timer);
      timers.delete(timer);
    });
    return;
  }
  res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
}

const servers: Server[] = [];

function shutdown(code: number): void {
  for (const t of timers) clearInterval(t);
  for (const s of servers) {
    s.close();
    s.closeAllConnections();
  }
  process.exit(code);
}

async function main(): Promise<void> {
  for (const host of addresses) {
    const server = createServer(handle);
    server.keepAliveTimeout = 1_000;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      // "::" alone would take the IPv4 port as well and collide with 0.0.0.0: keep each socket to its family.
      server.listen({ host, port, ipv6Only: host.includes(':') }, () => {
        server.off('error', reject);
        resolve();
      });
    });
    servers.push(server);
  }
  process.on('SIGTERM', () => shutdown(0));
  process.on('SIGINT', () => shutdown(0));
  // The lab starts it with stdin a pipe: its end means the lab process is gone.
  if (values['exit-on-stdin-close']) {
    process.stdin.on('end', () => shutdown(0));
    process.stdin.on('error', () => shutdown(0));
    process.stdin.resume();
  }
  process.stdout.write(`listening ${name} ${addresses.map((a) => (a.includes(':') ? `[${a}]` : a)).join(',')} ${port}\n`);
}

main().catch((e: unknown) => fail(e instanceof Error ? e.message : String(e)));
