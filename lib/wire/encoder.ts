// The CBOR encoder behind codec.ts's encode: one walk that checks plain data and writes it, byte for byte as cbor-x did.
//
// We used to validate a value with `inspect` (codec.ts) and then hand it to
// cbor-x's Encoder: two walks, the first reading a property descriptor per
// key, the second reading every value again (Object.keys + Object.values per
// object, `.buffer` of every byte string). On a Raft leader that was about a
// quarter of its CPU. This encoder does both in one walk and writes exactly
// the bytes cbor-x wrote with our options (useRecords false, tagUint8Array
// false, variableMapSize true), so stored logs and peers see no change:
//
// - numbers: a uint32 as an unsigned integer, an integer in [-2^32, 0) as a
//   negative integer (shortest headers), every other number as a float64;
// - bigints: an 8-byte integer (0x1b/0x3b) when the magnitude fits 64 bits,
//   else a bignum (tag 2/3 around the big-endian magnitude bytes);
// - strings as UTF-8, `Uint8Array`s (and subclasses such as `Buffer`) as byte
//   strings, arrays, plain objects as maps in own-key order, `Map` as tag 259
//   around a map, `Set` as tag 258 around an array; null, undefined, booleans.
//
// A value holding a -0 anywhere is written with every number as a float64
// (cbor-x's alwaysUseFloat encoder, which codec.ts used for such values, since
// an integer cannot carry the sign of -0): meeting a -0 restarts the walk in
// that mode. Lengths, tags and bigints are unaffected.
//
// The walk accepts exactly what `inspect` accepts. Whenever it meets anything
// else — a function, a symbol, a lone surrogate, a too-long bigint, a
// non-plain prototype, a symbol key, an accessor or non-enumerable property,
// an own `__proto__`, a hole, nesting deeper than MAX_DEPTH (which is also
// where a cycle ends up) — it gives up and runs `inspect`, which throws the
// EncodingError naming the path and the reason. Paths are only ever built on
// failure.
//
// One difference from cbor-x: an array or a Map that has an own property named
// `constructor` was written by cbor-x as an indefinite-length array (its
// fallback for unknown iterables), which our decoder refuses; here it is an
// array or a Map like any other.

import { inspect } from "./codec.ts";
import { MAX_BIGINT_BYTES, MAX_DEPTH } from "./decoder.ts";
import { EncodingError } from "./errors.ts";

/** Bytes every write of a scalar or a header may take without checking for room. */
const SLACK = 32;
/** Size of a fresh output buffer. */
const INITIAL_SIZE = 8 * 1024;
/** An output buffer that grew beyond this is dropped after the encode that needed it. */
const KEEP_SIZE = 1024 * 1024;
/** Strings up to this many UTF-16 units are written by the loop here; longer ones by TextEncoder. */
const SHORT_STRING = 64;

// The state of the encode in progress, module-wide so it is not passed
// through every call. Code the walk runs that is not ours (a proxy's traps,
// an array element's getter) could encode again; encodeValue saves and
// restores this state around such a nested call.
let buf = new Uint8Array(new ArrayBuffer(INITIAL_SIZE));
let view = new DataView(buf.buffer);
/** The last offset at which SLACK bytes still fit. */
let safeEnd = buf.length - SLACK;
let pos = 0;
/** Every number as a float64: the value holds a -0. */
let floats = false;
let busy = false;

/** Thrown to give up the fast walk: `inspect` finds out why. */
const GIVE_UP = Symbol("give up");
/** Thrown on meeting a -0 when not yet writing every number as a float64. */
const RESTART = Symbol("restart with floats");

const TWO_POW_64 = 1n << 64n;
const MAX_BIGINT_HEX = MAX_BIGINT_BYTES * 2;
const utf8 = new TextEncoder();
const getOwnPropertyDescriptor = Object.getOwnPropertyDescriptor;
const getPrototypeOf = Object.getPrototypeOf;
const ownKeys = Reflect.ownKeys;

/**
 * Checks and encodes `value` in one walk, as described in the module comment.
 * When `lead` is given, the encoding is the array `[...lead, value]` (a log
 * entry's index, term and kind around its command), while `value` is still
 * checked as the root: error paths and the depth limit are relative to it.
 *
 * The result is a view into a buffer the next encode overwrites: copy it
 * before encoding anything else. @internal
 *
 * @param value plain data (see `assertEncodable`)
 * @param lead numbers to write before `value` in an enclosing array
 * @returns a view of the encoding in the shared output buffer
 * @throws {EncodingError} when `value` is not encodable (the path and reason `inspect` gives), or the encoding does not fit in memory
 */
export function encodeValue(value: unknown, lead?: readonly number[]): Uint8Array {
  if (busy) return encodeNested(value, lead);
  busy = true;
  try {
    return encodeFresh(value, lead);
  } finally {
    busy = false;
    if (buf.length > KEEP_SIZE) setBuffer(new Uint8Array(new ArrayBuffer(INITIAL_SIZE)));
  }
}

/** An encode started from inside another (see the state above): on a buffer of its own. */
function encodeNested(value: unknown, lead: readonly number[] | undefined): Uint8Array {
  const outer = { buf, pos, floats };
  setBuffer(new Uint8Array(new ArrayBuffer(INITIAL_SIZE)));
  try {
    return encodeFresh(value, lead);
  } finally {
    setBuffer(outer.buf);
    pos = outer.pos;
    floats = outer.floats;
  }
}

function encodeFresh(value: unknown, lead: readonly number[] | undefined): Uint8Array {
  floats = false;
  for (;;) {
    pos = 0;
    try {
      if (lead !== undefined) {
        head(0x80, lead.length + 1);
        for (let i = 0; i < lead.length; i++) write(lead[i], 0);
      }
      write(value, 0);
      return buf.subarray(0, pos);
    } catch (err) {
      if (err === RESTART && !floats) {
        floats = true;
        continue;
      }
      if (err !== GIVE_UP) throw err;
    }
    // Throws the precise error; returning means the value changed under us
    // (a proxy, or a getter of an array element).
    inspect(value);
    throw new EncodingError(
      "$",
      "the value read differently while being encoded (a proxy, an element getter, or a Map or Set whose own size disagrees with its entries)",
    );
  }
}

function setBuffer(next: Uint8Array<ArrayBuffer>): void {
  buf = next;
  view = new DataView(next.buffer, next.byteOffset, next.byteLength);
  safeEnd = next.length - SLACK;
}

/** Makes room for `n` more bytes (plus the slack). */
function grow(n: number): void {
  const needed = pos + n + SLACK;
  if (needed <= buf.length) return;
  let next: Uint8Array<ArrayBuffer>;
  try {
    next = new Uint8Array(new ArrayBuffer(Math.max(needed, buf.length * 2)));
  } catch {
    try {
      next = new Uint8Array(new ArrayBuffer(needed));
    } catch (err) {
      throw new EncodingError("$", `the encoding does not fit in memory (${needed} bytes)`, {
        cause: err,
      });
    }
  }
  next.set(buf.subarray(0, pos));
  setBuffer(next);
}

/** Writes a header: `major` (already shifted into the top three bits) and the shortest argument. */
function head(major: number, n: number): void {
  if (n < 24) {
    buf[pos++] = major | n;
  } else if (n < 0x100) {
    buf[pos++] = major | 24;
    buf[pos++] = n;
  } else if (n < 0x1_0000) {
    buf[pos++] = major | 25;
    buf[pos++] = n >> 8;
    buf[pos++] = n & 0xff;
  } else if (n < 0x1_0000_0000) {
    buf[pos++] = major | 26;
    view.setUint32(pos, n);
    pos += 4;
  } else {
    buf[pos++] = major | 27;
    view.setUint32(pos, Math.floor(n / 0x1_0000_0000));
    view.setUint32(pos + 4, n >>> 0);
    pos += 8;
  }
}

/** One item at nesting `depth` (the number of containers around it). */
function write(value: unknown, depth: number): void {
  if (pos > safeEnd) grow(SLACK);
  switch (typeof value) {
    case "string":
      writeString(value);
      return;
    case "number":
      writeNumber(value);
      return;
    case "object":
      if (value === null) buf[pos++] = 0xf6;
      else if (value instanceof Uint8Array) writeBytes(value);
      else writeContainer(value, depth);
      return;
    case "boolean":
      buf[pos++] = value ? 0xf5 : 0xf4;
      return;
    case "undefined":
      buf[pos++] = 0xf7;
      return;
    case "bigint":
      writeBigint(value);
      return;
    default: // function, symbol
      throw GIVE_UP;
  }
}

function writeNumber(value: number): void {
  if (!floats) {
    if (value >>> 0 === value) {
      if (value === 0 && 1 / value < 0) throw RESTART;
      head(0x00, value);
      return;
    }
    if (value < 0 && value >= -0x1_0000_0000 && Math.floor(value) === value) {
      head(0x20, -1 - value);
      return;
    }
  }
  buf[pos++] = 0xfb;
  view.setFloat64(pos, value);
  pos += 8;
}

function writeBigint(value: bigint): void {
  let magnitude: bigint;
  if (value >= 0n) {
    if (value < TWO_POW_64) {
      buf[pos++] = 0x1b;
      view.setBigUint64(pos, value);
      pos += 8;
      return;
    }
    buf[pos++] = 0xc2;
    magnitude = value;
  } else {
    magnitude = -1n - value;
    // -2^64 itself fits 0x3b too, but cbor-x writes it as a bignum.
    if (magnitude < TWO_POW_64 - 1n) {
      buf[pos++] = 0x3b;
      view.setBigUint64(pos, magnitude);
      pos += 8;
      return;
    }
    buf[pos++] = 0xc3;
  }
  // A bignum: the magnitude's big-endian bytes, without leading zeros.
  const hex = magnitude.toString(16);
  if (hex.length > MAX_BIGINT_HEX) throw GIVE_UP;
  const length = (hex.length + 1) >> 1;
  grow(length);
  head(0x40, length);
  let at = 0;
  if (hex.length & 1) {
    buf[pos++] = parseInt(hex[0]!, 16);
    at = 1;
  }
  for (; at < hex.length; at += 2) buf[pos++] = parseInt(hex.slice(at, at + 2), 16);
}

function writeBytes(value: Uint8Array): void {
  const length = value.byteLength;
  if (pos + length > safeEnd) grow(length);
  head(0x40, length);
  buf.set(value, pos);
  pos += length;
}

/**
 * Writes `value` as UTF-8 after a header sized for its UTF-16 length (a lower
 * bound of its UTF-8 length), moving the bytes up when the header turns out
 * longer. Lone surrogates give up.
 */
function writeString(value: string): void {
  const units = value.length;
  const maxBytes = units * 3;
  if (pos + maxBytes > safeEnd) grow(maxBytes);
  const headSize = units < 24 ? 1 : units < 0x100 ? 2 : units < 0x1_0000 ? 3 : 5;
  const start = pos + headSize;
  let length: number;
  if (units <= SHORT_STRING) {
    let at = start;
    for (let i = 0; i < units; i++) {
      let c = value.charCodeAt(i);
      if (c < 0x80) {
        buf[at++] = c;
      } else if (c < 0x800) {
        buf[at++] = 0xc0 | (c >> 6);
        buf[at++] = 0x80 | (c & 0x3f);
      } else if ((c & 0xf800) !== 0xd800) {
        buf[at++] = 0xe0 | (c >> 12);
        buf[at++] = 0x80 | ((c >> 6) & 0x3f);
        buf[at++] = 0x80 | (c & 0x3f);
      } else {
        // A surrogate: a high one followed by a low one, or the string is not well formed.
        const low = c < 0xdc00 ? value.charCodeAt(i + 1) : NaN;
        if (!((low & 0xfc00) === 0xdc00)) throw GIVE_UP;
        i++;
        c = 0x10000 + ((c & 0x3ff) << 10) + (low & 0x3ff);
        buf[at++] = 0xf0 | (c >> 18);
        buf[at++] = 0x80 | ((c >> 12) & 0x3f);
        buf[at++] = 0x80 | ((c >> 6) & 0x3f);
        buf[at++] = 0x80 | (c & 0x3f);
      }
    }
    length = at - start;
  } else {
    // TextEncoder would write a lone surrogate as U+FFFD, so check first; both run natively.
    if (!value.isWellFormed()) throw GIVE_UP;
    length = utf8.encodeInto(value, buf.subarray(start, start + maxBytes)).written;
  }
  const needed = length < 24 ? 1 : length < 0x100 ? 2 : length < 0x1_0000 ? 3 : 5;
  if (needed !== headSize) buf.copyWithin(pos + needed, start, start + length);
  head(0x60, length);
  pos += length;
}

function writeContainer(value: object, depth: number): void {
  // Also where a cycle ends up; `inspect` then tells which it is.
  if (depth >= MAX_DEPTH) throw GIVE_UP;
  const proto: unknown = getPrototypeOf(value);
  if (proto === Object.prototype || proto === null) writeObject(value, depth + 1);
  else if (proto === Array.prototype) writeArray(value as unknown[], depth + 1);
  else if (proto === Map.prototype) writeMap(value as Map<unknown, unknown>, depth + 1);
  else if (proto === Set.prototype) writeSet(value as Set<unknown>, depth + 1);
  else throw GIVE_UP;
}

function writeArray(value: unknown[], depth: number): void {
  const length = value.length;
  head(0x80, length);
  for (let i = 0; i < length; i++) {
    const element = value[i];
    if (element === undefined && !(i in value)) throw GIVE_UP; // a hole
    write(element, depth);
  }
}

/**
 * A plain object's own properties must all be enumerable data properties with
 * string keys, and reading one must not run a getter, so each key costs a
 * property descriptor. Measured per object of 3 and 8 keys (Deno 2.9, Bun
 * 1.4): `Reflect.ownKeys` and a descriptor per key, 175/350 ns on Deno and
 * 100/235 ns on Bun; `Object.getOwnPropertyDescriptors` 470/1120 and 150/370;
 * `Object.keys` with a key-count check and `__lookupGetter__` plus
 * `__lookupSetter__` per key 250/520 and 125/400. A `for...in` loop reading
 * the values is ten times faster than any of them but runs getters, and
 * nothing cheaper tells an accessor from a data property.
 */
function writeObject(value: object, depth: number): void {
  const keys = ownKeys(value);
  const length = keys.length;
  head(0xa0, length);
  for (let i = 0; i < length; i++) {
    const key = keys[i];
    if (typeof key !== "string" || key === "__proto__") throw GIVE_UP;
    const desc = getOwnPropertyDescriptor(value, key);
    // An accessor's descriptor has no `writable`; a proxy may report none at all.
    if (desc === undefined || desc.writable === undefined || !desc.enumerable) throw GIVE_UP;
    writeString(key);
    write(desc.value, depth);
  }
}

function writeMap(value: Map<unknown, unknown>, depth: number): void {
  const size = value.size;
  buf[pos++] = 0xd9; // tag 259
  buf[pos++] = 0x01;
  buf[pos++] = 0x03;
  head(0xa0, size);
  let count = 0;
  for (const [key, entry] of value) {
    write(key, depth);
    write(entry, depth);
    count++;
  }
  // Only a patched iterator or `size` could disagree; the header would then be wrong.
  if (count !== size) throw GIVE_UP;
}

function writeSet(value: Set<unknown>, depth: number): void {
  const size = value.size;
  buf[pos++] = 0xd9; // tag 258
  buf[pos++] = 0x01;
  buf[pos++] = 0x02;
  head(0x80, size);
  let count = 0;
  for (const element of value) {
    write(element, depth);
    count++;
  }
  if (count !== size) throw GIVE_UP;
}
