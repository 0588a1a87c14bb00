// Health checks' vocabulary: what a checker probes, its timing (keepalived's delay_loop, connect_timeout, retry,
// delay_before_retry, warmup, alpha, plus rise), and what a real server or service asks of the health monitor.

/** Timing of one checker, in milliseconds; the defaults are keepalived 2.2's (see DEFAULT_TIMING and docs). */
export interface CheckTiming {
  /** keepalived delay_loop: time between checks while nothing fails (default 60 s). */
  intervalMs: number;
  /** keepalived connect_timeout: bound on one probe (default 5 s; MISC_CHECK uses misc_timeout). */
  connectTimeoutMs: number;
  /**
   * keepalived retry / nb_get_retry: extra probes after a failure before an up checker goes down. The checker goes
   * down after retries + 1 CONSECUTIVE failures; any success in between resets the count.
   */
  retries: number;
  /** keepalived delay_before_retry: time between those extra probes. */
  delayBeforeRetryMs: number;
  /** Successes in a row a down checker needs to come back up (xdpvs extension; 1 = keepalived). */
  rise: number;
  /** keepalived warmup: the first check starts after a random delay in [0, warmupMs] (default: delay_loop). */
  warmupMs: number;
  /** keepalived alpha: the checker starts down (out of rotation) until its first success. */
  alpha: boolean;
}

export interface HttpUrlSpec {
  path: string;
  /** Inclusive ranges; empty means keepalived's default 200-299. */
  statusCodes: Array<[number, number]>;
  /** keepalived digest: MD5 of the body, lower-case hex. */
  digest?: string;
  /** keepalived regex: the body must match (or, with regexNoMatch, must not). */
  regex?: string;
  regexNoMatch?: boolean;
  /** Host header for this URL (keepalived virtualhost); falls back to the checker's. */
  virtualhost?: string;
}

interface ProbeBase {
  /** Where the probe connects: the real server's address and port unless connect_ip / connect_port say otherwise. */
  host: string;
  port: number;
  /** keepalived bindto / bind_port: the probe's source address and port. */
  bindto?: string;
  bindPort?: number;
}

export interface TcpProbeSpec extends ProbeBase {
  kind: 'tcp';
}

export interface HttpProbeSpec extends ProbeBase {
  kind: 'http' | 'https';
  urls: HttpUrlSpec[];
  virtualhost?: string;
  /** SSL_GET enable_sni: send the virtualhost (or the address) as SNI. */
  sni?: boolean;
}

export interface UdpProbeSpec extends ProbeBase {
  kind: 'udp';
  /** Datagram to send (keepalived payload); a random 16 bytes when absent, as keepalived does. */
  payload?: Buffer;
  /** keepalived require_reply: a reply must arrive; with a pattern, its first bytes must match it. */
  requireReply: boolean;
  replyPattern?: { bytes: Buffer; mask: Buffer };
  minReplyLength: number;
  maxReplyLength: number;
}

export interface MiscProbeSpec {
  kind: 'misc';
  /** The program and its arguments, run directly (no shell). */
  argv: string[];
  /** keepalived misc_dynamic: exit status 2..255 means up with weight status - 2. */
  dynamic: boolean;
}

export type ProbeSpec = TcpProbeSpec | HttpProbeSpec | UdpProbeSpec | MiscProbeSpec;

export interface CheckSpec {
  /** How logs and the API name it, e.g. "TCP_CHECK 198.18.0.11:80" or "MISC_CHECK /usr/local/bin/check". */
  name: string;
  probe: ProbeSpec;
  timing: CheckTiming;
}

/** What a real server asks of the monitor. */
export interface ServerHealthSpec {
  /** The configured weight (what quorum counts while it is up, unless MISC_CHECK misc_dynamic says otherwise). */
  weight: number;
  /** All must be up for the real server to be up; none means always up (keepalived: a real server with no checker). */
  checks: CheckSpec[];
  /** keepalived inhibit_on_failure: when down, stay listed with weight 0 instead of being removed. */
  inhibitOnFailure: boolean;
  /** keepalived notify_up / notify_down: argv, run directly (no shell). */
  notifyUp?: string[];
  notifyDown?: string[];
}

export interface SorryServerSpec {
  address: string;
  port: number;
  method: 'dr' | 'tunnel' | 'nat';
  /** keepalived sorry_server_inhibit: while not needed it stays listed with weight 0 instead of being removed. */
  inhibit: boolean;
}

/** What a service asks of the monitor. */
export interface ServiceHealthSpec {
  /** keepalived quorum: minimum total weight of live real servers (default 1). */
  quorum: number;
  /** keepalived hysteresis: quorum is gained at quorum + hysteresis, lost below quorum - hysteresis (default 0). */
  hysteresis: number;
  quorumUp?: string[];
  quorumDown?: string[];
  sorryServer?: SorryServerSpec;
  /** keepalived omega: at shutdown, run the down notifiers of servers (and quorum) that were up. */
  omega: boolean;
  /** Real servers by id (ADDR:PORT, canonical). */
  servers: Map<string, ServerHealthSpec>;
}

/** keepalived 2.2's defaults. */
export const DEFAULT_DELAY_LOOP_MS = 60_000;
export const DEFAULT_CONNECT_TIMEOUT_MS = 5_000;
/** HTTP_GET / SSL_GET wait 3 s before a retry, every other checker 1 s. */
export function defaultDelayBeforeRetryMs(kind: ProbeSpec['kind']): number {
  return kind === 'http' || kind === 'https' ? 3_000 : 1_000;
}
/** MISC_CHECK retries 0 times by default, every other checker once. */
export function defaultRetries(kind: ProbeSpec['kind']): number {
  return kind === 'misc' ? 0 : 1;
}
