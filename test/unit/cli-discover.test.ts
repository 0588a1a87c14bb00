// Finding xdpvsd and its token: flags, environment, the per-netns runtime file, defaults.

import { chmodSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  DEFAULT_LISTEN,
  DEFAULT_TOKEN_FILE,
  DEFAULT_URL,
  discover,
  netnsInode,
  normaliseUrl,
  readRuntimeFile,
  readToken,
  runtimeFilePath,
} from '../../src/cli/discover.js';

const dir = mkdtempSync(join(tmpdir(), 'xdpvsadm-discover-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function file(name: string, content: string): string {
  const p = join(dir, name);
  writeFileSync(p, content);
  return p;
}

const runtime = file('xdpvsd.json', JSON.stringify({ url: 'http://127.0.0.2:9800', tokenFile: '/run/token', pid: 42 }));
const missing = join(dir, 'absent.json');

describe('constants and paths', () => {
  it('defaults', () => {
    expect(DEFAULT_LISTEN).toBe('127.0.0.1:9777');
    expect(DEFAULT_URL).toBe('http://127.0.0.1:9777');
    expect(DEFAULT_TOKEN_FILE).toBe('/etc/xdpvs/api-token');
  });

  it('/run/xdpvs/<netns inode>/xdpvsd.json', () => {
    expect(runtimeFilePath(4026531840)).toBe('/run/xdpvs/4026531840/xdpvsd.json');
    expect(netnsInode()).toBe(statSync('/proc/self/ns/net').ino);
    expect(runtimeFilePath()).toBe(`/run/xdpvs/${statSync('/proc/self/ns/net').ino}/xdpvsd.json`);
  });
});

describe('discover', () => {
  it('nothing said, no runtime file: the defaults', () => {
    expect(discover({ env: {}, runtimeFile: missing })).toEqual({
      url: DEFAULT_URL,
      urlSource: 'default',
      tokenFile: DEFAULT_TOKEN_FILE,
      tokenSource: 'default',
      warnings: [],
    });
  });

  it('the runtime file gives both', () => {
    expect(discover({ env: {}, runtimeFile: runtime })).toMatchObject({
      url: 'http://127.0.0.2:9800',
      urlSource: 'runtime',
      tokenFile: '/run/token',
      tokenSource: 'runtime',
    });
  });

  it('environment beats the runtime file; flags beat the environment', () => {
    const env = { XDPVS_SERVER: 'http://10.0.0.1:1', XDPVS_TOKEN_FILE: '/env/token' };
    expect(discover({ env, runtimeFile: runtime })).toMatchObject({ url: 'http://10.0.0.1:1', urlSource: 'env', tokenFile: '/env/token', tokenSource: 'env' });
    expect(discover({ env, runtimeFile: runtime, server: '10.0.0.2:2', tokenFile: '/flag/token' })).toMatchObject({
      url: 'http://10.0.0.2:2',
      urlSource: 'flag',
      tokenFile: '/flag/token',
      tokenSource: 'flag',
    });
    // The token file still comes from the runtime file when only the URL was given.
    expect(discover({ env: {}, runtimeFile: runtime, server: 'http://10.0.0.3:3' })).toMatchObject({ urlSource: 'flag', tokenFile: '/run/token' });
  });

  it('a broken runtime file is a warning, not a failure', () => {
    const broken = file('broken.json', '{ not json');
    const d = discover({ env: {}, runtimeFile: broken });
    expect(d.url).toBe(DEFAULT_URL);
    expect(d.warnings).toEqual([`${broken} is not JSON; ignoring it`]);
    const noUrl = file('nourl.json', '{"pid": 1}');
    expect(readRuntimeFile(noUrl)).toBe(`${noUrl} has no usable "url"`);
    expect(readRuntimeFile(missing)).toBeUndefined();
    expect(readRuntimeFile(file('notoken.json', '{"url":"http://127.0.0.1:1"}'))).toEqual({ url: 'http://127.0.0.1:1', tokenFile: DEFAULT_TOKEN_FILE, pid: 0 });
  });

  it('an unusable --server is an error', () => {
    expect(() => discover({ env: {}, runtimeFile: missing, server: 'ftp://x' })).toThrow('--server: not an http(s) URL: ftp://x');
    expect(() => discover({ env: { XDPVS_SERVER: 'http://[' }, runtimeFile: missing })).toThrow(/XDPVS_SERVER/);
  });

  it('URLs: a scheme is added, a path dropped', () => {
    expect(normaliseUrl('127.0.0.1:9777')).toBe('http://127.0.0.1:9777');
    expect(normaliseUrl('http://[::1]:9777/v1/')).toBe('http://[::1]:9777');
    expect(normaliseUrl('https://lb:1')).toBe('https://lb:1');
  });
});

describe('readToken', () => {
  it('the trimmed content, or why there is none', () => {
    expect(readToken(file('token', 'abc123\n'))).toEqual({ token: 'abc123' });
    expect(readToken(file('empty', '\n'))).toEqual({ reason: `${join(dir, 'empty')} is empty` });
    expect(readToken(missing)).toEqual({ reason: `cannot read ${missing}: ENOENT` });
  });

  it.skipIf(process.getuid?.() === 0)('an unreadable token file (needs a non-root user)', () => {
    const p = file('secret', 'x');
    chmodSync(p, 0o000);
    expect(readToken(p)).toEqual({ reason: `cannot read ${p}: EACCES` });
  });
});
