// A TCP byte sink for the lab's real servers: reads each connection to its end (the client's FIN) and answers
// "<name> <bytes received>\n". A large upload through a tunnel shows that path MTU discovery works (the director
// answers segments too big for the tunnel with ICMP, and the client sends smaller ones).
//
//   node dist/scripts/lab/tcp-sink.js --name rs1 [--port 9000] [--listen 0.0.0.0,::] [--exit-on-stdin-close]
//
// Takes the same arguments as http-server.ts, so that scripts/lab/realservers.ts starts either. Prints "listening"
// once every socket is bound; exits on SIGTERM/SIGINT and, with --exit-on-stdin-close, when its stdin closes.
import { createServer, type Server, type Socket } from 'node:net';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    name: { type: 'string' },
    port: { type: 'string', default: '9000' },
    listen: { type: 'string', default: '0.0.0.0,::' },
    'exit-on-stdin-close': { type: 'boolean', default: false },
  },
  strict: true,
});

function fail(msg: string): never {
  process.stderr.write(`tcp-sink: ${msg}\n`);
  process.exit(2);
}

const name = values.name ?? fail('--name is required');
const port = Number(values.port);
if (!Number.isInteger(port) || port < 1 || port > 65535) fail(`bad --port ${values.port}`);
const addresses = values.listen.split(',').map((a) => a.trim()).filter((a) => a !== '');
if (addresses.length === 0) fail('--listen needs at least one address');

const servers: Server[] = [];
const conns = new Set<Socket>();

function shutdown(code: number): void {
  for (const c of conns) c.destroy();
  for (const s of servers) s.close();
  process.exit(code);
}

async function main(): Promise<void> {
  for (const host of addresses) {
    const server = createServer({ allowHalfOpen: true }, (conn) => {
      conns.add(conn);
      let bytes = 0;
      conn.on('data', (d: Buffer) => {
        bytes += d.length;
      });
      conn.on('end', () => conn.end(`${name} ${bytes}\n`));
      conn.on('error', () => conn.destroy());
      conn.on('close', () => conns.delete(conn));
    });
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
  if (values['exit-on-stdin-close']) {
    process.stdin.on('end', () => shutdown(0));
    process.stdin.on('error', () => shutdown(0));
    process.stdin.resume();
  }
  process.stdout.write(`listening ${name} tcp-sink ${port}\n`);
}

main().catch((e: unknown) => fail(e instanceof Error ? e.message : String(e)));
