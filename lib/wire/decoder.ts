// The CBOR decoder behind codec.ts's decode: one pass that checks and builds, for exactly what our encoder writes.
//
// Why not cbor-x's decoder: its tag handlers are global to the module (so we
// cannot switch them off without changing them for every other user of cbor-x
// in the process) and they do surprising things with peer-sent tags — 0/1
// build `Date`s, 27 calls the `RegExp`/`Error` constructors with peer strings,
// 28/29 build shared references and cycles, 105/0xdfff define record
// structures, 64–87 build typed arrays aliasing the input. We used to walk the
// item headers first and hand only clean input to cbor-x; that cost a second
// walk, a `Decoder` and a `DataView` per item, and cbor-x decodes a text string
// of 32 to 64 bytes one `String.fromCharCode` at a time. Decoding a follower's
// log entries was then most of its CPU. This decoder does the check and the
// build in one walk, builds short ASCII strings in JS and longer ones with
// TextDecoder (thresholds measured per engine), and keeps recently seen
// property names (the same few in every command of a kind) so that decoding an
// object's keys is mostly a hash and a compare. It accepts nothing else:
//
// - unsigned and negative integers: a number, except that an 8-byte integer is
//   a bigint (as cbor-x decodes it; our encoder writes numbers above 2^32 as
//   floats and bigints as 8-byte integers or bignums);
// - byte strings as fresh `Uint8Array`s, text strings as strict UTF-8 (a byte
//   order mark is kept);
// - arrays, maps as plain objects (keys: strings, or numbers, booleans,
//   bigints, null and undefined turned into their string; `"__proto__"` becomes
//   `"__proto_"`, so nothing touches a prototype);
// - tags 2/3 (bignums of at most MAX_BIGINT_BYTES), 258 (a Set, around an
//   array) and 259 (a Map, around a map);
// - false, true, null, undefined and floats of 16, 32 and 64 bits.
//
// Refused with a DecodeError: every other tag, indefinite lengths, other
// simple values, reserved bytes, nesting deeper than MAX_DEPTH, invalid UTF-8
// and lengths that run past the input (checked before anything is allocated).

import { DecodeError } from "./errors.ts";

/**
 * Deepest nesting of arrays, objects, `Map`s and `Set`s that `encode` accepts
 * and `decode` reads (tags add none). It bounds the decoder's recursion, so a
 * peer cannot overflow the stack.
 */
export const MAX_DEPTH = 256;

/**
 * Largest magnitude, in bytes, of a bigint outside the 64-bit range (8192
 * bits). Decoding a bignum costs time quadratic in its length, so a peer must
 * not be able to send a megabyte-long one.
 */
export const MAX_BIGINT_BYTES = 1024;

const EMPTY = new Uint8Array(0);

// The state of the one decode in progress. Decoding never calls code that
// could decode again (no getters, no user callbacks), so module state is safe
// and saves passing it through every call.
let src: Uint8Array = EMPTY;
let pos = 0;
let end = 0;
/** Byte strings as views of `src` instead of copies (internal callers only). */
let views = false;

/** The last header read: its major type, additional info and argument. */
let major = 0;
let info = 0;
let arg = 0;

const scratch = new DataView(new ArrayBuffer(8));
const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
/**
 * Longest ASCII string built in JS; longer ones, and any with other
 * characters, go through TextDecoder. Measured on 4–64-byte strings: Bun's
 * TextDecoder beats JS above 16 bytes, Deno's (a call into Rust) only above
 * about 48.
 */
const shortString = (globalThis as { Bun?: unknown }).Bun === undefined ? 48 : 16;

const TAG_CONTENT = new Map<number, { major: number; what: string }>([
  [2, { major: 2, what: "a byte string" }],
  [3, { major: 2, what: "a byte string" }],
  [258, { major: 4, what: "an array" }],
  [259, { major: 5, what: "a map" }],
]);

function malformed(detail: string): DecodeError {
  return new DecodeError(`Cannot decode value: ${detail}`);
}

function truncated(): DecodeError {
  return malformed("input ends inside a CBOR item");
}

/**
 * Decodes the CBOR item at `offset` in `bytes`.
 *
 * @param byteViews byte strings as views of `bytes` rather than copies (for a
 *   caller that copies out what it keeps)
 * @returns the value and the offset just past the item
 * @throws {DecodeError} for anything outside what the module comment lists
 */
export function decodeItem(
  bytes: Uint8Array,
  offset: number,
  byteViews = false,
): { value: unknown; end: number } {
  // Read through a plain Uint8Array, so that slice() copies (a Buffer's is a view).
  src = Object.getPrototypeOf(bytes) === Uint8Array.prototype
    ? bytes
    : new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  pos = offset;
  end = bytes.length;
  views = byteViews;
  try {
    const value = item(0);
    return { value, end: pos };
  } finally {
    // Do not keep the input (or its buffer) alive until the next decode.
    src = EMPTY;
  }
}

/** Reads one header into `major`, `info` and `arg`. */
function header(): void {
  if (pos >= end) throw truncated();
  const initial = src[pos++]!;
  major = initial >> 5;
  info = initial & 0x1f;
  if (info < 24) {
    arg = info;
  } else if (info === 24) {
    if (pos >= end) throw truncated();
    arg = src[pos++]!;
  } else if (info === 25) {
    if (end - pos < 2) throw truncated();
    arg = (src[pos]! << 8) | src[pos + 1]!;
    pos += 2;
  } else if (info === 26) {
    if (end - pos < 4) throw truncated();
    arg = uint32(pos);
    pos += 4;
  } else if (info === 27) {
    if (end - pos < 8) throw truncated();
    // Above 2^53 precision is lost, but then the argument is a float's bits
    // (read again below), an integer (read again as a bigint), or a length or
    // tag number far beyond anything accepted.
    arg = uint32(pos) * 0x1_0000_0000 + uint32(pos + 4);
    pos += 8;
  } else if (info === 31) {
    throw malformed(
      major >= 2 && major <= 5
        ? "indefinite-length items are not supported"
        : `unexpected break or indefinite marker 0x${initial.toString(16)}`,
    );
  } else {
    throw malformed(`reserved initial byte 0x${initial.toString(16)}`);
  }
}

function uint32(at: number): number {
  return src[at]! * 0x100_0000 + ((src[at + 1]! << 16) | (src[at + 2]! << 8) | src[at + 3]!);
}

/** One item at nesting `depth` (the number of arrays and maps around it). */
function item(depth: number): unknown {
  header();
  return body(depth);
}

/** The rest of the item whose header was just read. */
function body(depth: number): unknown {
  switch (major) {
    case 0:
      return info === 27 ? bigUint64() : arg;
    case 1:
      return info === 27 ? -1n - bigUint64() : -1 - arg;
    case 2:
      return byteString();
    case 3:
      return textString();
    case 4: {
      const length = containerLength(arg, depth);
      const array = new Array<unknown>(length);
      for (let i = 0; i < length; i++) array[i] = item(depth + 1);
      return array;
    }
    case 5: {
      const length = containerLength(arg * 2, depth) / 2;
      const object: Record<string, unknown> = {};
      for (let i = 0; i < length; i++) {
        header();
        const keyMajor: number = major; // (TypeScript narrowed `major` to 5 above)
        const key = keyMajor === 3 && arg <= KEY_MAX ? keyString() : propertyName(body(depth + 1));
        object[key] = item(depth + 1);
      }
      return object;
    }
    case 6:
      return tagged(depth);
    default:
      return simple();
  }
}

/** Checks a container's item count against the input and the depth limit. */
function containerLength(items: number, depth: number): number {
  // Every item takes at least one byte, so a count beyond the input is a lie.
  if (items > end - pos) throw truncated();
  if (depth >= MAX_DEPTH) throw malformed(`nesting deeper than ${MAX_DEPTH} levels`);
  return items;
}

/** The 8-byte argument just read, exactly (`arg` may have lost precision). */
function bigUint64(): bigint {
  return (BigInt(uint32(pos - 8)) << 32n) | BigInt(uint32(pos - 4));
}

function byteString(): Uint8Array {
  const length = arg;
  if (length > end - pos) throw truncated();
  const start = pos;
  pos += length;
  // A copy with a buffer of its own (`src` is a plain Uint8Array), unless views were asked for.
  return views ? src.subarray(start, pos) : src.slice(start, pos);
}

function textString(): string {
  const length = arg;
  if (length > end - pos) throw truncated();
  const start = pos;
  pos += length;
  if (length <= shortString) {
    const ascii = asciiString(start, length);
    if (ascii !== undefined) return ascii;
  }
  try {
    return utf8.decode(src.subarray(start, pos));
  } catch {
    throw malformed("a text string is not valid UTF-8");
  }
}

/** `length` bytes at `at` as a string if they are all ASCII. */
function asciiString(at: number, length: number): string | undefined {
  let out = "";
  for (let i = at; i < at + length; i++) {
    const c = src[i]!;
    if (c >= 0x80) return undefined;
    out += String.fromCharCode(c);
  }
  return out;
}

/** Longest property name kept in {@link KEYS}. */
const KEY_MAX = 24;
/** Slots of the property-name cache (a power of two). */
const KEY_SLOTS = 4096;
/** Recently decoded property names, by a hash of their bytes: objects of one kind repeat theirs. */
const KEYS: ({ bytes: Uint8Array; name: string } | undefined)[] = new Array(KEY_SLOTS);

/** A property name whose text-string header was just read, from the cache when it is there. */
function keyString(): string {
  const length = arg;
  if (length > end - pos) throw truncated();
  const s = src;
  const start = pos;
  let hash = length;
  for (let i = start; i < start + length; i++) hash = (Math.imul(hash, 31) + s[i]!) | 0;
  const slot = (hash ^ (hash >>> 13)) & (KEY_SLOTS - 1);
  const known = KEYS[slot];
  if (known !== undefined && known.bytes.length === length) {
    const bytes = known.bytes;
    let i = 0;
    while (i < length && bytes[i] === s[start + i]) i++;
    if (i === length) {
      pos += length;
      return known.name;
    }
  }
  const name = propertyName(textString());
  // A copy (`src` is always a plain Uint8Array): the input may be reused after the decode.
  KEYS[slot] = { bytes: s.slice(start, start + length), name };
  return name;
}

/** What a plain-map key becomes as a property name (as cbor-x makes it). */
function propertyName(key: unknown): string {
  switch (typeof key) {
    case "string":
      return key === "__proto__" ? "__proto_" : key;
    case "number":
    case "boolean":
    case "bigint":
    case "undefined":
      return String(key);
    default:
      if (key === null) return "null";
      throw malformed(
        `a map key that is ${key instanceof Uint8Array ? "a byte string" : "a container"} ` +
          "cannot be a property name (use a Map)",
      );
  }
}

function tagged(depth: number): unknown {
  const tag = arg;
  const content = TAG_CONTENT.get(tag);
  if (content === undefined) throw malformed(`unsupported CBOR tag ${tag}`);
  header();
  if (major !== content.major) throw malformed(`CBOR tag ${tag} must enclose ${content.what}`);
  switch (tag) {
    case 2:
    case 3: {
      if (arg > MAX_BIGINT_BYTES) {
        throw malformed(`bignum of ${arg} bytes exceeds the limit of ${MAX_BIGINT_BYTES}`);
      }
      const magnitude = bignum();
      return tag === 2 ? magnitude : -1n - magnitude;
    }
    case 258: {
      const length = containerLength(arg, depth);
      const set = new Set<unknown>();
      for (let i = 0; i < length; i++) set.add(item(depth + 1));
      return set;
    }
    default: {
      const length = containerLength(arg * 2, depth) / 2;
      const map = new Map<unknown, unknown>();
      for (let i = 0; i < length; i++) {
        const key = item(depth + 1);
        map.set(key, item(depth + 1));
      }
      return map;
    }
  }
}

/** The magnitude of a bignum whose byte-string header was just read. */
function bignum(): bigint {
  const length = arg;
  if (length > end - pos) throw truncated();
  let hex = "";
  for (let i = pos; i < pos + length; i++) hex += HEX[src[i]!];
  pos += length;
  return hex === "" ? 0n : BigInt("0x" + hex);
}

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));

/** Floats and simple values (major type 7). */
function simple(): unknown {
  switch (info) {
    case 20:
      return false;
    case 21:
      return true;
    case 22:
      return null;
    case 23:
      return undefined;
    case 25:
      return float16(arg);
    case 26:
      scratch.setUint32(0, arg);
      return scratch.getFloat32(0);
    case 27:
      for (let i = 0; i < 8; i++) scratch.setUint8(i, src[pos - 8 + i]!);
      return scratch.getFloat64(0);
    default:
      throw malformed(`unsupported simple value ${arg}`);
  }
}

function float16(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >> 10) & 0x1f;
  const fraction = bits & 0x3ff;
  if (exponent === 0x1f) return fraction === 0 ? sign * Infinity : NaN;
  if (exponent === 0) return sign * fraction * 2 ** -24;
  return sign * (1024 + fraction) * 2 ** (exponent - 25);
}
