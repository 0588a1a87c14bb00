// The failover lab's real server: HTTP `GET /` answers its name (the new requests), and an HTTP Upgrade to "tick"
// turns the connection into a line echo that never times out (the long-lived connection that must survive a
// director failover). Each echo says what this server has seen of the connection, so the client can tell that the
// server side is still the same connection:
//
//   client: "<seq>\n"    server: "<name> <conn> <count> <peer port> <seq>\n"
//
// conn numbers the server's tick connections from 1; count is how many lines it has read on this one (reset only by a
// new connection). Same arguments as http-server.ts, so scripts/lab/realservers.ts starts it:
//
//   node dist/scripts/lab/failover-server.js --name rs1 [--port 80] [--listen 0.0.0.0] [--exit-on-stdin-close]
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    name: { type: 'string' },
    port: { type: 'string', default: '80' },
    listen: { type: 'string', default: '0.0.0.0' },
    'exit-on-stdin-close': { type: 'boolean', default: false },
  },
  strict: true,
});

function fail(msg: string): never {
  process.stderr.write(`failover-server: ${msg}\n`);
  process.exit(2);
}

const name = values.name ?? fail('--name is required');
const port = Number(values.port);
if (!Number.isInteger(port) || port < 1 || port > 65535) fail(`bad --port ${values.port}`);
const addresses = values.listen.split(',').map((a) => a.trim()).filter((a) => a !== '');
if (addresses.length === 0) fail('--listen needs at least one address');

const ticks = new Set<Duplex>();
let nextConn = 1;

function tick(req: IncomingMessage, socket: Duplex): void {
  if ((req.headers.upgrade ?? '').toLowerCase() !== 'tick') {
    socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\nupgrade to "tick" only\n');
    return;
  }
  const conn = nextConn++;
  const peerPort = req.socket.remotePort ?? 0;
  let count = 0;
  let pending = '';
  ticks.add(socket);
  socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: tick\r\nConnection: Upgrade\r\n\r\n');
  // Buffers, not setEncoding: node's HTTP server forbids changing the encoding of its sockets, upgraded or not.
  socket.on('data', (d: Buffer) => {
    pending += d.toString('latin1');
    for (let nl = pending.indexOf('\n'); nl >= 0; nl = pending.indexOf('\n')) {
      const seq = pending.slice(0, nl).trim();
      pending = pending.slice(nl + 1);
      count++;
      socket.write(`${name} ${conn} ${count} ${peerPort} ${seq}\n`);
    }
    if (pending.length > 1024) socket.destroy(); // not our client
  });
  socket.on('error', () => socket.destroy());
  socket.on('close', () => ticks.delete(socket));
}

const servers: Server[] = [];

function shutdown(code: number): void {
  for (const s of ticks) s.destroy();
  for (const s of servers) {
    s.close();
    s.closeAllConnections();
  }
  process.exit(code);
}

async function main(): Promise<void> {
  for (const host of addresses) {
    const server = createServer((req, res) => {
      if (req.url === '/' && (req.method === 'GET' || req.method === 'HEAD')) {
        res.writeHead(200, { 'content-type': 'text/plain', 'x-real-server': name }).end(`${name}\n`);
      } else {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
      }
    });
    server.on('upgrade', tick);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host, port, ipv6Only: host.includes(':') }, () => {
        server.off('error', reject);
        resolve();
      });
    });
    servers.push(server);
  }
  process.on('SIGTERM', () => shutdown(0));
  process.on('SIGINT', () => shutdown(0));
  if (values['exit-on-stdin-close']) {
    process.stdin.on('end', () => shutdown(0));
    process.stdin.on('error', () => shutdown(0));
    process.stdin.resume();
  }
  process.stdout.write(`listening ${name} failover-server ${port}\n`);
}

main().catch((e: unknown) => fail(e instanceof Error ? e.message : String(e)));
