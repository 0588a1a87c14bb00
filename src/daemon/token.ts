// The API's bearer token: read from a root-only file, created with a random value on first start.

import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { ErrorCode, XdpvsError } from '../errors.js';

export function loadOrCreateToken(path: string): string {
  if (!existsSync(path)) {
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    writeFileSync(path, randomBytes(32).toString('hex') + '\n', { mode: 0o600, flag: 'wx' });
  }
  const mode = statSync(path).mode & 0o777;
  if (mode & 0o077) {
    // Anyone who can read the token can reconfigure the balancer: keep it root's alone.
    chmodSync(path, 0o600);
  }
  const token = readFileSync(path, 'utf8').trim();
  if (token.length < 16) throw new XdpvsError(ErrorCode.Invalid, `token file ${path} holds a token shorter than 16 characters`);
  return token;
}
