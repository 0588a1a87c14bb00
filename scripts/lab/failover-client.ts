// The failover lab's client: one long-lived "tick" connection (failover-server.ts) that sends a line every
// --tick-ms and reads the server's echo, and beside it a stream of new HTTP requests, one at a time, each on its own
// connection. Prints one JSON line per event on stdout (t is ms since the start):
//
//   {"t":..,"kind":"ready","port":LOCAL_PORT}                      the tick connection is upgraded
//   {"t":..,"kind":"tick","seq":N,"server":"rs1","conn":1,"count":N,"peerPort":P}
//   {"t":..,"kind":"tick-end","error":"ECONNRESET"|null}          the tick connection ended (it never should)
//   {"t":..,"kind":"req","ok":true,"server":"rs2"} / {"t":..,"kind":"req","ok":false,"error":"..."}
//   {"t":..,"kind":"done"}
//
//   node dist/scripts/lab/failover-client.js --vip 198.18.0.100 [--port 80] [--tick-ms 100] [--request-ms 100]
//        [--request-timeout-ms 1000] [--duration-ms 60000]
// Runs until --duration-ms has passed or its stdin closes (the test that started it is gone).
import { request } from 'node:http';
import { connect, type Socket } from 'node:net';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    vip: { type: 'string' },
    port: { type: 'string', default: '80' },
    'tick-ms': { type: 'string', default: '100' },
    'request-ms': { type: 'string', default: '100' },
    'request-timeout-ms': { type: 'string', default: '1000' },
    'duration-ms': { type: 'string', default: '60000' },
  },
  strict: true,
});

function fail(msg: string): never {
  process.stderr.write(`failover-client: ${msg}\n`);
  process.exit(2);
}

function positive(flag: string, text: string, max: number): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1 || n > max) fail(`--${flag} must be an integer 1..${max}, not "${text}"`);
  return n;
}

const vip = values.vip ?? fail('--vip is required');
const port = positive('port', values.port, 65535);
const tickMs = positive('tick-ms', values['tick-ms'], 60_000);
const requestMs = positive('request-ms', values['request-ms'], 60_000);
const requestTimeoutMs = positive('request-timeout-ms', values['request-timeout-ms'], 60_000);
const durationMs = positive('duration-ms', values['duration-ms'], 600_000);
const start = Date.now();
let finished = false;

function emit(event: Record<string, unknown>): void {
  process.stdout.write(JSON.stringify({ t: Date.now() - start, ...event }) + '\n');
}

function startTicks(): Socket {
  const sock = connect({ host: vip, port });
  let upgraded = false;
  let buf = '';
  let seq = 0;
  let timer: NodeJS.Timeout | undefined;
  sock.setEncoding('utf8');
  sock.setNoDelay(true);
  sock.on('connect', () => {
    sock.write(`GET /tick HTTP/1.1\r\nHost: ${vip}\r\nConnection: Upgrade\r\nUpgrade: tick\r\n\r\n`);
  });
  sock.on('data', (d: string) => {
    buf += d;
    if (!upgraded) {
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      const status = buf.slice(0, buf.indexOf('\r\n'));
      if (!/^HTTP\/1\.1 101\b/.test(status)) {
        emit({ kind: 'tick-end', error: `upgrade refused: ${status}` });
        sock.destroy();
        return;
      }
      upgraded = true;
      buf = buf.slice(end + 4);
      emit({ kind: 'ready', port: sock.localPort });
      timer = setInterval(() => sock.write(`${++seq}\n`), tickMs);
    }
    for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
      const [server, conn, count, peerPort, s] = buf.slice(0, nl).split(' ');
      buf = buf.slice(nl + 1);
      emit({ kind: 'tick', seq: Number(s), server, conn: Number(conn), count: Number(count), peerPort: Number(peerPort) });
    }
  });
  let lastError: string | null = null;
  sock.on('error', (e: NodeJS.ErrnoException) => {
    lastError = e.code ?? e.message;
  });
  sock.on('close', () => {
    clearInterval(timer);
    if (!finished) emit({ kind: 'tick-end', error: lastError });
  });
  return sock;
}

function oneRequest(): Promise<void> {
  return new Promise((resolve) => {
    let settled = false;
    const done = (event: Record<string, unknown>): void => {
      if (settled) return;
      settled = true;
      emit({ kind: 'req', ...event });
      resolve();
    };
    // agent: false: a new connection (a new flow for the director to schedule) every time.
    const req = request({ host: vip, port, path: '/', agent: false, timeout: requestTimeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () =>
        done(res.statusCode === 200 ? { ok: true, server: body.trim() } : { ok: false, error: `HTTP ${res.statusCode}` }),
      );
      res.on('error', (e: NodeJS.ErrnoException) => done({ ok: false, error: e.code ?? e.message }));
    });
    req.on('timeout', () => {
      req.destroy();
      done({ ok: false, error: 'timeout' });
    });
    req.on('error', (e: NodeJS.ErrnoException) => done({ ok: false, error: e.code ?? e.message }));
    req.end();
  });
}

async function requests(): Promise<void> {
  while (!finished) {
    await oneRequest();
    await new Promise((r) => setTimeout(r, requestMs));
  }
}

const ticks = startTicks();
const stop = (): void => {
  if (finished) return;
  finished = true;
  emit({ kind: 'done' });
  ticks.destroy();
  process.exit(0);
};
setTimeout(stop, durationMs);
process.stdin.on('end', stop);
// Whoever reads our events is gone: so is our purpose.
process.stdout.on('error', () => process.exit(0));
process.stdin.on('error', stop);
process.stdin.resume();
void requests();
