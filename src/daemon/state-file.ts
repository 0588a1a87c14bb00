// The daemon's durable desired state: JSON written atomically (write, fsync, rename), read back at start.

import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { ErrorCode, XdpvsError } from '../errors.js';
import type { PersistedState } from '../lb/balancer.js';

export function readState(path: string): PersistedState | undefined {
  if (!existsSync(path)) return undefined;
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as PersistedState;
  } catch (e) {
    throw new XdpvsError(ErrorCode.Invalid, `state file ${path} is not valid JSON: ${(e as Error).message}`);
  }
}

export function writeState(path: string, state: PersistedState): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.tmp-${process.pid}`;
  const fd = openSync(tmp, 'w', 0o600);
  try {
    writeSync(fd, JSON.stringify(state, null, 2) + '\n');
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
  const dfd = openSync(dirname(path), 'r');
  try {
    fsyncSync(dfd);
  } finally {
    closeSync(dfd);
  }
}
