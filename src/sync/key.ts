// The shared sync key (--sync-key FILE): the same file on every director, readable by root alone.

import { readFileSync, statSync } from 'node:fs';
import { ErrorCode, XdpvsError } from '../errors.js';

/** Shortest key accepted, in bytes (after surrounding whitespace is trimmed). */
export const MIN_KEY_BYTES = 16;

/**
 * The key's bytes. XDPVS_ERR_INVALID when the file is missing, can be read or written by group or others (whoever
 * reads it can forge connections on every director: it must be 0600 or stricter), or holds fewer than 16 bytes.
 */
export function loadSyncKey(path: string): Buffer {
  let st;
  try {
    st = statSync(path);
  } catch (e) {
    throw new XdpvsError(ErrorCode.Invalid, `sync key file ${path}: ${(e as Error).message}`, { field: 'syncKey', path });
  }
  if (!st.isFile()) throw new XdpvsError(ErrorCode.Invalid, `sync key file ${path} is not a regular file`, { field: 'syncKey', path });
  const mode = st.mode & 0o777;
  if (mode & 0o077) {
    throw new XdpvsError(
      ErrorCode.Invalid,
      `sync key file ${path} has mode ${mode.toString(8).padStart(4, '0')}: it must be readable by its owner alone (chmod 600 ${path})`,
      { field: 'syncKey', path, mode },
    );
  }
  const key = Buffer.from(readFileSync(path, 'utf8').trim(), 'utf8');
  if (key.length < MIN_KEY_BYTES) {
    throw new XdpvsError(ErrorCode.Invalid, `sync key file ${path} holds ${key.length} bytes; at least ${MIN_KEY_BYTES} are needed (e.g. openssl rand -hex 32)`, { field: 'syncKey', path });
  }
  return key;
}
