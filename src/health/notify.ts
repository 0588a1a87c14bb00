// Notifications of health state changes: keepalived's notify_up / notify_down / quorum_up / quorum_down commands
// (argv, run directly, never through a shell) and an HTTP webhook (POST JSON to the one URL given, no redirects).

import { spawn } from 'node:child_process';
import type { Logger } from '../log.js';

/** A command that does not exit by then is killed: notifications must not pile up. */
const COMMAND_TIMEOUT_MS = 30_000;
const WEBHOOK_TIMEOUT_MS = 5_000;
/** Webhook posts waiting beyond this are dropped (and logged): a dead receiver must not grow memory. */
const WEBHOOK_QUEUE_MAX = 1_000;

export interface HealthEvent {
  event: 'server-up' | 'server-down' | 'quorum-gained' | 'quorum-lost';
  time: string;
  routerId: string | null;
  service: string;
  server?: string;
  checker?: string | null;
  error?: string | null;
  /** Total weight of live real servers (quorum events). */
  weightSum?: number;
  quorum?: number;
}

export interface Notifier {
  command(argv: readonly string[], event: HealthEvent): void;
  webhook(event: HealthEvent): void;
  /** Resolves when every notification started so far has finished (tests, shutdown). */
  idle(): Promise<void>;
}

export function createNotifier(opts: { log: Logger; webhookUrl?: string; fetchFn?: typeof fetch }): Notifier {
  const { log } = opts;
  const pending = new Set<Promise<void>>();
  const track = (p: Promise<void>) => {
    pending.add(p);
    void p.finally(() => pending.delete(p));
  };
  let chain: Promise<void> = Promise.resolve();
  let queued = 0;
  const fetchFn = opts.fetchFn ?? fetch;

  return {
    command(argv, event) {
      if (argv.length === 0) return;
      track(
        new Promise<void>((resolve) => {
          const child = spawn(argv[0], argv.slice(1), {
            stdio: 'ignore',
            shell: false,
            env: { ...process.env, XDPVS_EVENT: event.event, XDPVS_SERVICE: event.service, XDPVS_SERVER: event.server ?? '' },
          });
          const timer = setTimeout(() => {
            log('warn', `notify command ${argv[0]} still running after ${COMMAND_TIMEOUT_MS} ms; killing it`);
            child.kill('SIGKILL');
          }, COMMAND_TIMEOUT_MS);
          child.once('error', (e: NodeJS.ErrnoException) => {
            clearTimeout(timer);
            log('warn', `notify command ${argv[0]} could not run: ${e.code ?? e.message}`, { event: event.event });
            resolve();
          });
          child.once('exit', (code, signal) => {
            clearTimeout(timer);
            if (code !== 0) log('warn', `notify command ${argv[0]} exited with ${code ?? signal}`, { event: event.event });
            resolve();
          });
        }),
      );
    },
    webhook(event) {
      const url = opts.webhookUrl;
      if (!url) return;
      if (queued >= WEBHOOK_QUEUE_MAX) {
        log('warn', `webhook queue full (${WEBHOOK_QUEUE_MAX}); dropping ${event.event}`, { service: event.service, server: event.server });
        return;
      }
      queued++;
      // One at a time, in order: a receiver sees the changes in the order they happened.
      chain = chain.then(async () => {
        queued--;
        try {
          const res = await fetchFn(url, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify(event),
            redirect: 'manual',
            signal: AbortSignal.timeout(WEBHOOK_TIMEOUT_MS),
          });
          await res.arrayBuffer().catch(() => undefined);
          if (res.status < 200 || res.status >= 300) log('warn', `webhook ${url} answered ${res.status} to ${event.event}`);
        } catch (e) {
          log('warn', `webhook ${url} failed for ${event.event}: ${(e as Error).message}`);
        }
      });
      track(chain);
    },
    async idle() {
      while (pending.size > 0) await Promise.all([...pending]);
    },
  };
}

/** Checks a --notify-webhook URL: http or https, nothing else. */
export function parseWebhookUrl(text: string): string {
  let u: URL;
  try {
    u = new URL(text);
  } catch {
    throw new Error(`--notify-webhook wants an http:// or https:// URL, not "${text}"`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error(`--notify-webhook wants an http:// or https:// URL, not "${text}"`);
  return u.toString();
}
