// Tiny binary codecs: each C struct shared with the data plane is described once here, yielding size, offsets,
// encode, decode and its TypeScript type. Implicit padding is refused, as in bpf/xdpvs_shared.h.

import { endianness } from 'node:os';

if (endianness() !== 'LE') {
  // Host-order fields (u16, u32, u64) are written little-endian; BPF maps use the host's order.
  throw new Error('xdpvs codecs assume a little-endian host');
}

export interface Field<T> {
  readonly kind: string;
  readonly size: number;
  readonly align: number;
  encode(buf: Buffer, off: number, v: T): void;
  decode(buf: Buffer, off: number): T;
  zero(): T;
}

/** Explicit padding: laid out, never part of the value. */
export interface Pad extends Field<undefined> {
  readonly kind: 'pad';
}

function intField(kind: string, size: number, write: (b: Buffer, v: number, o: number) => void, read: (b: Buffer, o: number) => number, max: number): Field<number> {
  return {
    kind,
    size,
    align: size,
    encode(buf, off, v) {
      if (!Number.isInteger(v) || v < 0 || v > max) throw new RangeError(`${kind} out of range: ${v}`);
      write(buf, v, off);
    },
    decode: (buf, off) => read(buf, off),
    zero: () => 0,
  };
}

export const u8 = intField('u8', 1, (b, v, o) => b.writeUInt8(v, o), (b, o) => b.readUInt8(o), 0xff);
export const u16 = intField('u16', 2, (b, v, o) => b.writeUInt16LE(v, o), (b, o) => b.readUInt16LE(o), 0xffff);
export const be16 = intField('be16', 2, (b, v, o) => b.writeUInt16BE(v, o), (b, o) => b.readUInt16BE(o), 0xffff);
export const u32 = intField('u32', 4, (b, v, o) => b.writeUInt32LE(v, o), (b, o) => b.readUInt32LE(o), 0xffffffff);

/** u64 as a JavaScript number: exact up to 2^53 (9 PB of bytes, 104 days of nanoseconds), approximate beyond. */
export const u64: Field<number> = {
  kind: 'u64',
  size: 8,
  align: 8,
  encode(buf, off, v) {
    if (!(v >= 0) || !Number.isFinite(v)) throw new RangeError(`u64 out of range: ${v}`);
    buf.writeBigUInt64LE(BigInt(Math.floor(v)), off);
  },
  decode: (buf, off) => Number(buf.readBigUInt64LE(off)),
  zero: () => 0,
};

function bytesField(kind: string, size: number, align: number): Field<Buffer> {
  return {
    kind,
    size,
    align,
    encode(buf, off, v) {
      if (!Buffer.isBuffer(v) || v.length !== size) throw new RangeError(`${kind} needs ${size} bytes`);
      v.copy(buf, off);
    },
    decode: (buf, off) => Buffer.from(buf.subarray(off, off + size)),
    zero: () => Buffer.alloc(size),
  };
}

/** An address as `__be32 addr[4]`: 16 bytes in network order, IPv4 in the first four. */
export const ip16 = bytesField('ip16', 16, 4);
/** A MAC address, `__u8 mac[6]`. */
export const mac = bytesField('mac', 6, 1);

export function pad(n: number): Pad {
  return { kind: 'pad', size: n, align: 1, encode() {}, decode: () => undefined, zero: () => undefined };
}

type Fields = Record<string, Field<any>>;
export type ValueOf<F extends Fields> = { [K in keyof F as F[K] extends Pad ? never : K]: F[K] extends Field<infer T> ? T : never };

export interface StructCodec<F extends Fields> {
  /** The C struct's name (for the BTF check). */
  readonly name: string;
  readonly size: number;
  readonly fields: readonly { name: string; offset: number; field: Field<unknown> }[];
  encode(v: ValueOf<F>): Buffer;
  encodeInto(buf: Buffer, off: number, v: ValueOf<F>): void;
  decode(buf: Buffer, off?: number): ValueOf<F>;
  zero(): ValueOf<F>;
}

/** Lays fields out in order and throws if the C compiler would have inserted padding anywhere. */
export function struct<F extends Fields>(name: string, spec: F): StructCodec<F> {
  const fields: { name: string; offset: number; field: Field<unknown> }[] = [];
  let offset = 0;
  let maxAlign = 1;
  for (const [fname, field] of Object.entries(spec)) {
    if (offset % field.align !== 0) {
      throw new Error(`struct ${name}: field ${fname} at offset ${offset} is not ${field.align}-aligned; add explicit padding`);
    }
    fields.push({ name: fname, offset, field });
    offset += field.size;
    maxAlign = Math.max(maxAlign, field.align);
  }
  if (offset % maxAlign !== 0) {
    throw new Error(`struct ${name}: size ${offset} leaves tail padding to ${maxAlign}; add explicit padding`);
  }
  const size = offset;
  const valueFields = fields.filter((f) => f.field.kind !== 'pad');

  const codec: StructCodec<F> = {
    name,
    size,
    fields,
    encodeInto(buf, off, v) {
      const rec = v as Record<string, unknown>;
      for (const f of valueFields) {
        try {
          f.field.encode(buf, off + f.offset, rec[f.name]);
        } catch (e) {
          throw new RangeError(`${name}.${f.name}: ${(e as Error).message}`);
        }
      }
    },
    encode(v) {
      const buf = Buffer.alloc(size);
      codec.encodeInto(buf, 0, v);
      return buf;
    },
    decode(buf, off = 0) {
      if (buf.length - off < size) throw new RangeError(`${name}: need ${size} bytes, have ${buf.length - off}`);
      const out: Record<string, unknown> = {};
      for (const f of valueFields) out[f.name] = f.field.decode(buf, off + f.offset);
      return out as ValueOf<F>;
    },
    zero() {
      const out: Record<string, unknown> = {};
      for (const f of valueFields) out[f.name] = f.field.zero();
      return out as ValueOf<F>;
    },
  };
  return codec;
}
