// Where xdpvsd listens and where its API token is: the one definition of the defaults and of the runtime file path,
// shared by the CLI (reader) and the daemon (writer).

import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

/** The daemon's default --listen address. */
export const DEFAULT_LISTEN = '127.0.0.1:9777';
/** The URL the CLI uses when nothing else says where the daemon is. */
export const DEFAULT_URL = `http://${DEFAULT_LISTEN}`;
/** The daemon's default --token-file (created mode 0600 by root on first start). */
export const DEFAULT_TOKEN_FILE = '/etc/xdpvs/api-token';
/** Runtime files live under here, one directory per network namespace (by the namespace's inode number). */
export const RUNTIME_DIR = '/run/xdpvs';
export const RUNTIME_FILE_NAME = 'xdpvsd.json';
/** Environment variables the CLI reads. */
export const ENV_SERVER = 'XDPVS_SERVER';
export const ENV_TOKEN_FILE = 'XDPVS_TOKEN_FILE';

/** What the daemon writes into its runtime file once it listens. */
export interface RuntimeInfo {
  url: string;
  tokenFile: string;
  pid: number;
}

/** The inode number of the calling process's network namespace: one daemon per namespace, found by it. */
export function netnsInode(): number {
  return statSync('/proc/self/ns/net').ino;
}

/** /run/xdpvs/<netns inode>/xdpvsd.json for the given namespace inode (default: this process's namespace). */
export function runtimeFilePath(inode: number = netnsInode()): string {
  return join(RUNTIME_DIR, String(inode), RUNTIME_FILE_NAME);
}

/** A URL from --server or XDPVS_SERVER: "host:port" gets "http://"; the path is dropped. Undefined if unusable. */
export function normaliseUrl(text: string): string | undefined {
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(text) ? text : `http://${text}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    return undefined;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return undefined;
  return `${url.protocol}//${url.host}`;
}

/** Read and check a runtime file; undefined when absent, an Error-message string when present but unusable. */
export function readRuntimeFile(path: string): RuntimeInfo | undefined | string {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    return `cannot read ${path}: ${(e as Error).message}`;
  }
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch {
    return `${path} is not JSON`;
  }
  const o = data as Partial<RuntimeInfo> | null;
  if (!o || typeof o !== 'object' || typeof o.url !== 'string' || normaliseUrl(o.url) === undefined) {
    return `${path} has no usable "url"`;
  }
  return {
    url: o.url,
    tokenFile: typeof o.tokenFile === 'string' && o.tokenFile !== '' ? o.tokenFile : DEFAULT_TOKEN_FILE,
    pid: typeof o.pid === 'number' ? o.pid : 0,
  };
}

export type Source = 'flag' | 'env' | 'runtime' | 'default';

export interface Endpoint {
  url: string;
  urlSource: Source;
  tokenFile: string;
  tokenSource: Source;
  /** Problems worth a warning (an unreadable runtime file), none of them fatal. */
  warnings: string[];
}

export interface DiscoverOptions {
  /** --server */
  server?: string;
  /** --token-file */
  tokenFile?: string;
  env?: Record<string, string | undefined>;
  /** The runtime file to look at (default: runtimeFilePath() of this namespace). */
  runtimeFile?: string;
}

/**
 * The daemon's URL: --server, else $XDPVS_SERVER, else the runtime file of this network namespace, else
 * DEFAULT_URL. The token file: --token-file, else $XDPVS_TOKEN_FILE, else the runtime file's, else
 * DEFAULT_TOKEN_FILE. Throws nothing for a missing runtime file; an invalid --server/$XDPVS_SERVER throws.
 */
export function discover(opts: DiscoverOptions = {}): Endpoint {
  const env = opts.env ?? process.env;
  const warnings: string[] = [];

  let runtime: RuntimeInfo | undefined;
  const serverGiven = (opts.server !== undefined && opts.server !== '') || !!env[ENV_SERVER];
  const tokenFileGiven = (opts.tokenFile !== undefined && opts.tokenFile !== '') || !!env[ENV_TOKEN_FILE];
  const needRuntime = !serverGiven || !tokenFileGiven;
  if (needRuntime) {
    let path = opts.runtimeFile;
    if (path === undefined) {
      try {
        path = runtimeFilePath();
      } catch (e) {
        warnings.push(`cannot find this network namespace (${(e as Error).message}); using defaults`);
      }
    }
    if (path !== undefined) {
      const r = readRuntimeFile(path);
      if (typeof r === 'string') warnings.push(`${r}; ignoring it`);
      else runtime = r;
    }
  }

  let url: string;
  let urlSource: Source;
  const fromUser = opts.server ?? env[ENV_SERVER];
  if (fromUser !== undefined && fromUser !== '') {
    const u = normaliseUrl(fromUser);
    const where = opts.server !== undefined ? '--server' : ENV_SERVER;
    if (u === undefined) throw new Error(`${where}: not an http(s) URL: ${fromUser}`);
    url = u;
    urlSource = opts.server !== undefined ? 'flag' : 'env';
  } else if (runtime) {
    url = normaliseUrl(runtime.url) as string;
    urlSource = 'runtime';
  } else {
    url = DEFAULT_URL;
    urlSource = 'default';
  }

  let tokenFile: string;
  let tokenSource: Source;
  if (opts.tokenFile !== undefined && opts.tokenFile !== '') {
    tokenFile = opts.tokenFile;
    tokenSource = 'flag';
  } else if (env[ENV_TOKEN_FILE]) {
    tokenFile = env[ENV_TOKEN_FILE] as string;
    tokenSource = 'env';
  } else if (runtime) {
    tokenFile = runtime.tokenFile;
    tokenSource = 'runtime';
  } else {
    tokenFile = DEFAULT_TOKEN_FILE;
    tokenSource = 'default';
  }

  return { url, urlSource, tokenFile, tokenSource, warnings };
}

/** The bearer token (file content, trimmed), or why there is none; reads need no token, writes do. */
export function readToken(path: string): { token: string } | { token?: undefined; reason: string } {
  try {
    const token = readFileSync(path, 'utf8').trim();
    if (token === '') return { reason: `${path} is empty` };
    return { token };
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    return { reason: `cannot read ${path}: ${err.code ?? err.message}` };
  }
}
