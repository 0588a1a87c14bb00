// Linux's jhash (include/linux/jhash.h, Bob Jenkins' lookup3) in 32-bit unsigned arithmetic, bit for bit.
//
// bpf/jhash.h carries the same functions in C; the data plane hashes the client's source address words with
// jhash2 for mh and sh, and the datapath tests compare the two. Every step is truncated to 32 bits, as C's u32
// wraps: only add, subtract, xor and rotate occur, so no Math.imul is needed.

import { ErrorCode, XdpvsError } from '../errors.js';

/** The kernel's arbitrary initial value. */
export const JHASH_INITVAL = 0xdeadbeef;

/** Rotate a 32-bit word left by `shift` (0..31), as the kernel's rol32(). */
export function rol32(word: number, shift: number): number {
  return rotl(word, shift & 31) >>> 0;
}

// Inside the hash, words are carried as int32 (`| 0`): the same 32 bits as the kernel's u32 after every add,
// subtract, xor and rotate, but V8 keeps int32 in registers where uint32 above 2^31 becomes a double. Results
// leave as unsigned (`>>> 0`).
function rotl(w: number, s: number): number {
  return (w << s) | (w >>> (32 - s));
}

// __jhash_mix is a macro over the caller's a, b, c in C; it is written out in both loops below (locals keep V8
// on plain integers). __jhash_final only feeds c, the result, so it is a function returning c.

function final(a: number, b: number, c: number): number {
  c = (c ^ b) | 0; c = (c - rotl(b, 14)) | 0;
  a = (a ^ c) | 0; a = (a - rotl(c, 11)) | 0;
  b = (b ^ a) | 0; b = (b - rotl(a, 25)) | 0;
  c = (c ^ b) | 0; c = (c - rotl(b, 16)) | 0;
  a = (a ^ c) | 0; a = (a - rotl(c, 4)) | 0;
  b = (b ^ a) | 0; b = (b - rotl(a, 14)) | 0;
  c = (c ^ b) | 0; c = (c - rotl(b, 24)) | 0;
  return c >>> 0;
}

/**
 * jhash2(k, length, initval): hash `length` 32-bit words of `k` (each taken modulo 2^32), as the kernel does.
 * `length` defaults to all of `k`.
 */
export function jhash2(k: ArrayLike<number>, length: number = k.length, initval = 0): number {
  if (!Number.isInteger(length) || length < 0 || length > k.length) {
    throw new XdpvsError(ErrorCode.Invalid, `jhash2: length ${length} outside 0..${k.length}`);
  }
  let a, b, c;
  a = b = c = (JHASH_INITVAL + length * 4 + initval) | 0;
  let i = 0;
  let n = length;
  while (n > 3) {
    a = (a + k[i]) | 0;
    b = (b + k[i + 1]) | 0;
    c = (c + k[i + 2]) | 0;
    // __jhash_mix(a, b, c)
    a = (a - c) | 0; a = (a ^ rotl(c, 4)) | 0; c = (c + b) | 0;
    b = (b - a) | 0; b = (b ^ rotl(a, 6)) | 0; a = (a + c) | 0;
    c = (c - b) | 0; c = (c ^ rotl(b, 8)) | 0; b = (b + a) | 0;
    a = (a - c) | 0; a = (a ^ rotl(c, 16)) | 0; c = (c + b) | 0;
    b = (b - a) | 0; b = (b ^ rotl(a, 19)) | 0; a = (a + c) | 0;
    c = (c - b) | 0; c = (c ^ rotl(b, 4)) | 0; b = (b + a) | 0;
    n -= 3;
    i += 3;
  }
  switch (n) {
    case 3:
      c = (c + k[i + 2]) | 0;
    // falls through
    case 2:
      b = (b + k[i + 1]) | 0;
    // falls through
    case 1:
      a = (a + k[i]) | 0;
      return final(a, b, c);
    case 0:
      break;
  }
  return c >>> 0;
}

/**
 * jhash(key, length, initval) over bytes, with whole words read little-endian: what the kernel computes on
 * x86 and arm64 (it reads them in CPU order). Fixed to little-endian here so that the control plane's own uses
 * (Maglev offsets from backend keys) give the same answer on every director.
 */
export function jhash(key: Uint8Array, initval = 0): number {
  let n = key.length;
  let a, b, c;
  a = b = c = (JHASH_INITVAL + n + initval) | 0;
  let i = 0;
  while (n > 12) {
    a = (a + (key[i] | (key[i + 1] << 8) | (key[i + 2] << 16) | (key[i + 3] << 24))) | 0;
    b = (b + (key[i + 4] | (key[i + 5] << 8) | (key[i + 6] << 16) | (key[i + 7] << 24))) | 0;
    c = (c + (key[i + 8] | (key[i + 9] << 8) | (key[i + 10] << 16) | (key[i + 11] << 24))) | 0;
    // __jhash_mix(a, b, c)
    a = (a - c) | 0; a = (a ^ rotl(c, 4)) | 0; c = (c + b) | 0;
    b = (b - a) | 0; b = (b ^ rotl(a, 6)) | 0; a = (a + c) | 0;
    c = (c - b) | 0; c = (c ^ rotl(b, 8)) | 0; b = (b + a) | 0;
    a = (a - c) | 0; a = (a ^ rotl(c, 16)) | 0; c = (c + b) | 0;
    b = (b - a) | 0; b = (b ^ rotl(a, 19)) | 0; a = (a + c) | 0;
    c = (c - b) | 0; c = (c ^ rotl(b, 4)) | 0; b = (b + a) | 0;
    n -= 12;
    i += 12;
  }
  if (n === 0) return c >>> 0;
  switch (n) {
    case 12: c = (c + (key[i + 11] << 24)) | 0; // falls through
    case 11: c = (c + (key[i + 10] << 16)) | 0; // falls through
    case 10: c = (c + (key[i + 9] << 8)) | 0; // falls through
    case 9: c = (c + key[i + 8]) | 0; // falls through
    case 8: b = (b + (key[i + 7] << 24)) | 0; // falls through
    case 7: b = (b + (key[i + 6] << 16)) | 0; // falls through
    case 6: b = (b + (key[i + 5] << 8)) | 0; // falls through
    case 5: b = (b + key[i + 4]) | 0; // falls through
    case 4: a = (a + (key[i + 3] << 24)) | 0; // falls through
    case 3: a = (a + (key[i + 2] << 16)) | 0; // falls through
    case 2: a = (a + (key[i + 1] << 8)) | 0; // falls through
    case 1: a = (a + key[i]) | 0;
  }
  return final(a, b, c);
}

/**
 * The 32-bit words of `bytes` as this CPU reads them from memory: what the data plane's jhash2 sees when it
 * hashes a `__be32 addr[4]`. `bytes.length` must be a multiple of 4.
 */
export function hostWords(bytes: Uint8Array): Uint32Array {
  if (bytes.length % 4 !== 0) {
    throw new XdpvsError(ErrorCode.Invalid, `hostWords: ${bytes.length} bytes is not a whole number of 32-bit words`);
  }
  return new Uint32Array(Uint8Array.from(bytes).buffer);
}
