// A tiny UDP request/response server for the lab's real servers: every datagram is answered with one datagram.
//
//   node dist/scripts/lab/udp-server.js --name rs1 [--port 53] [--listen 0.0.0.0,::] [--exit-on-stdin-close]
//
// The answer to a datagram is "<name> <client address> <client port> <the request>" in ASCII: the first word says
// which real server answered (rr alternation), the address and port what the server saw of the client (NAT and DR
// keep the client's address). A request "size N" (N at most 65000) is answered with exactly N bytes instead: the
// name, a newline, then "." filling up to N. Takes the same arguments as http-server.ts, so that
// scripts/lab/realservers.ts starts either. Prints "listening" once every socket is bound; exits on SIGTERM/SIGINT and,
// with --exit-on-stdin-close, when its stdin closes (the lab process that started it is gone).
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { parseArgs } from 'node:util';

const SIZE_MAX = 65_000;

const { values } = parseArgs({
  options: {
    name: { type: 'string' },
    port: { type: 'string', default: '53' },
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
  process.stderr.write(`udp-server: ${msg}\n`);
  process.exit(2);
}

/** The answer to one request. */
function answer(serverName: string, request: Buffer, from: RemoteInfo): Buffer {
  const text = request.toString('latin1');
  const m = /^size (\d+)\s*$/.exec(text);
  if (m) {
    const n = Math.min(Number(m[1]), SIZE_MAX);
    const head = Buffer.from(`${serverName}\n`, 'latin1');
    const out = Buffer.alloc(n, '.');
    head.copy(out, 0, 0, Math.min(head.length, n));
    return out;
  }
  return Buffer.from(`${serverName} ${from.address} ${from.port} ${text}`, 'latin1');
}

const sockets: Socket[] = [];

function shutdown(code: number): void {
  for (const s of sockets) s.close();
  process.exit(code);
}

async function main(): Promise<void> {
  for (const host of addresses) {
    const v6 = host.includes(':');
    // ipv6Only: "::" alone would take the IPv4 port as well and collide with 0.0.0.0.
    const sock = createSocket({ type: v6 ? 'udp6' : 'udp4', ipv6Only: v6 });
    sock.on('message', (msg, rinfo) => {
      sock.send(answer(name!, msg, rinfo), rinfo.port, rinfo.address);
    });
    await new Promise<void>((resolve, reject) => {
      sock.once('error', reject);
      sock.bind({ address: host, port }, () => {
        sock.off('error', reject);
        resolve();
      });
    });
    sock.on('error', (e) => process.stderr.write(`udp-server: ${e.message}\n`));
    sockets.push(sock);
  }
  process.on('SIGTERM', () => shutdown(0));
  process.on('SIGINT', () => shutdown(0));
  if (values['exit-on-stdin-close']) {
    process.stdin.on('end', () => shutdown(0));
    process.stdin.on('error', () => shutdown(0));
    process.stdin.resume();
  }
  process.stdout.write(`listening ${name} udp ${addresses.map((a) => (a.includes(':') ? `[${a}]` : a)).join(',')} ${port}\n`);
}

main().catch((e: unknown) => fail(e instanceof Error ? e.message : String(e)));
