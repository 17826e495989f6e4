// CBOR codec for plain data (commands, queries, results, messages): validation, our one-pass encoder, our strict decoder.
//
// Both directions are ours: encoding (encoder.ts) checks and writes a value
// in one walk, falling back to `inspect` here for the precise error when the
// value is not plain data; decoding (decoder.ts) checks and builds in one walk
// and accepts only what the encoder writes. cbor-x is no longer used at run
// time; the tests compare both directions against it.

import { decodeItem, MAX_BIGINT_BYTES, MAX_DEPTH } from "./decoder.ts";
import { encodeValue } from "./encoder.ts";
import { DecodeError, EncodingError } from "./errors.ts";

export { MAX_BIGINT_BYTES, MAX_DEPTH };

const TWO_POW_64 = 1n << 64n;
const BIGINT_LIMIT_BITS = BigInt(MAX_BIGINT_BYTES * 8);

/** What validation learned about a value. @internal */
export interface Inspection {
  /** The value contains a -0 somewhere (the encoder then writes every number as a float64). */
  readonly negativeZero: boolean;
}

/**
 * Checks that `value` is CBOR-encodable plain data: `null`, `undefined`,
 * booleans, numbers, bigints (up to {@link MAX_BIGINT_BYTES} bytes of
 * magnitude), well-formed strings, `Uint8Array`s, and — nested at most
 * {@link MAX_DEPTH} deep, without cycles — dense arrays, plain objects
 * (prototype `Object.prototype` or `null`, own enumerable data properties,
 * string keys), `Map`s and `Set`s of those.
 *
 * Null-prototype objects decode as ordinary objects; a `Uint8Array` subclass
 * such as Node's `Buffer` decodes as a `Uint8Array`.
 *
 * @param value the value to check
 * @throws {EncodingError} naming the path (`$.a[2]`) of the first value that is not encodable
 */
export function assertEncodable(value: unknown): void {
  inspect(value);
}

/**
 * Validates `value` like {@link assertEncodable} and reports what it learned.
 * This is the definition of what is encodable: the encoder (encoder.ts) runs
 * it for the error whenever its own walk meets anything unusual. @internal
 *
 * @throws {EncodingError} naming the path of the first value that is not encodable
 */
export function inspect(value: unknown): Inspection {
  const state: InspectState = { negativeZero: false, ancestors: [] };
  try {
    check(value, state);
  } catch (err) {
    if (err instanceof Invalid) {
      const segments = err.segments.reverse();
      const path = "$" + segments.join("");
      const reason = err.cycleDepth === undefined
        ? err.reason
        : `${err.reason} to ${"$" + segments.slice(0, err.cycleDepth).join("")}`;
      throw new EncodingError(path, reason);
    }
    throw err;
  }
  return { negativeZero: state.negativeZero };
}

/**
 * Encodes `value` as one CBOR item.
 *
 * Maps are written with tag 259 and Sets with tag 258 so they decode as `Map`
 * and `Set`; plain objects decode as objects. Integers up to 2^32 in
 * magnitude are CBOR integers, larger numbers are float64 and stay numbers;
 * bigints are 64-bit CBOR integers or bignums (tags 2/3) and stay bigints.
 *
 * @param value plain data (see {@link assertEncodable})
 * @returns a fresh buffer holding the encoding
 * @throws {EncodingError} when `value` is not encodable, naming the path of the bad part
 */
export function encode(value: unknown): Uint8Array {
  const view = encodeValue(value);
  const out = new Uint8Array(view.byteLength);
  out.set(view);
  return out;
}

/**
 * Decodes `bytes`, which must hold exactly one CBOR item (a frame's payload,
 * a stored entry).
 *
 * Only what {@link encode} produces is accepted; every other tag (dates,
 * regular expressions, errors, typed arrays, shared references, cbor-x
 * records) is refused, and so are invalid UTF-8 and lengths that run past the
 * input (before anything is allocated). A map key `"__proto__"` becomes the
 * property `"__proto_"` (as cbor-x decodes it), so decoding never touches a
 * prototype; a plain-map key that is a number, boolean, bigint, null or
 * undefined becomes its string, and one that is a byte string or a container
 * is refused.
 * Byte strings are copied out, so the result never aliases `bytes`.
 *
 * @param bytes the encoding
 * @returns the decoded value
 * @throws {DecodeError} when `bytes` is empty, malformed, truncated, followed by trailing bytes, or uses anything `encode` does not produce
 * @throws {TypeError} when `bytes` is not a `Uint8Array`
 */
export function decode(bytes: Uint8Array): unknown {
  return decodeWhole(bytes, false);
}

/**
 * Decodes the first CBOR item in `bytes` and says where it ends, for inputs
 * that hold several items back to back. Accepts the same items as
 * {@link decode}.
 *
 * @param bytes starts with the encoding; anything after it is left alone
 * @returns the decoded value and the length of its encoding in bytes
 * @throws {DecodeError} when the first item is malformed, truncated or uses anything `encode` does not produce
 * @throws {TypeError} when `bytes` is not a `Uint8Array`
 */
export function decodePrefix(bytes: Uint8Array): { value: unknown; length: number } {
  requireBytes(bytes);
  const { value, end } = decodeItem(bytes, 0);
  return { value, length: end };
}

/**
 * Decodes like {@link decode}, except that byte strings are views of `bytes`,
 * not copies: for a caller that copies out every byte string it keeps, and
 * does not hand the value to user code. @internal
 *
 * @throws like {@link decode}
 */
export function decodeViews(bytes: Uint8Array): unknown {
  return decodeWhole(bytes, true);
}

function decodeWhole(bytes: Uint8Array, byteViews: boolean): unknown {
  requireBytes(bytes);
  const { value, end } = decodeItem(bytes, 0, byteViews);
  if (end !== bytes.length) {
    throw new DecodeError(
      `Cannot decode value: ${bytes.length - end} trailing bytes after the CBOR item`,
    );
  }
  return value;
}

function requireBytes(bytes: unknown): asserts bytes is Uint8Array {
  if (!(bytes instanceof Uint8Array)) {
    throw new TypeError("Cannot decode value: input is not a Uint8Array");
  }
}

// ---------------------------------------------------------------------------
// Validation

interface InspectState {
  negativeZero: boolean;
  /** Containers enclosing the value being checked, outermost first. */
  readonly ancestors: object[];
}

/** Thrown inside `check`; each level adds its path segment while unwinding. */
class Invalid {
  readonly reason: string;
  /** Path segments, innermost first. */
  readonly segments: string[] = [];
  /** For a cycle: how many segments lead to the container referred back to. */
  readonly cycleDepth: number | undefined;

  constructor(reason: string, cycleDepth?: number) {
    this.reason = reason;
    this.cycleDepth = cycleDepth;
  }

  /** Adds the segment of the key that holds the bad value (for errors about a key itself). */
  withSegment(segment: string): this {
    this.segments.push(segment);
    return this;
  }
}

const IDENTIFIER = /^[A-Za-z_$][A-Za-z0-9_$]*$/;

function keySegment(key: string): string {
  // `.__proto__` would read as the accessor, not the own property.
  return IDENTIFIER.test(key) && key !== "__proto__" ? `.${key}` : `[${JSON.stringify(key)}]`;
}

function mapKeyLabel(key: unknown): string | undefined {
  switch (typeof key) {
    case "string":
      return JSON.stringify(key);
    case "number":
      return Object.is(key, -0) ? "-0" : String(key);
    case "bigint":
      return `${key}n`;
    case "boolean":
    case "undefined":
      return String(key);
    default:
      return key === null ? "null" : undefined;
  }
}

/** Adds `segment` to an `Invalid` passing through; path strings are only built on failure. */
function via(err: unknown, segment: string): unknown {
  if (err instanceof Invalid) err.segments.push(segment);
  return err;
}

function check(value: unknown, state: InspectState): void {
  switch (typeof value) {
    case "undefined":
    case "boolean":
      return;
    case "number":
      if (value === 0 && 1 / value < 0) state.negativeZero = true;
      return;
    case "string":
      if (!value.isWellFormed()) {
        throw new Invalid("a string with a lone surrogate does not round-trip through UTF-8");
      }
      return;
    case "bigint":
      if (value >= TWO_POW_64 || value < -TWO_POW_64) {
        const magnitude = value >= 0n ? value : -1n - value;
        if (magnitude >> BIGINT_LIMIT_BITS !== 0n) {
          throw new Invalid(`a bigint longer than ${MAX_BIGINT_BYTES} bytes is not encodable`);
        }
      }
      return;
    case "function":
      throw new Invalid("a function is not CBOR-encodable");
    case "symbol":
      throw new Invalid("a symbol is not CBOR-encodable");
    case "object":
      if (value === null) return;
      if (value instanceof Uint8Array) return;
      checkContainer(value, state);
      return;
  }
}

function checkContainer(value: object, state: InspectState): void {
  const ancestors = state.ancestors;
  // Linear in the depth, which real data keeps small; the limit caps it anyway.
  const at = ancestors.indexOf(value);
  if (at >= 0) throw new Invalid("a cyclic reference", at);
  if (ancestors.length >= MAX_DEPTH) {
    throw new Invalid(`nesting deeper than ${MAX_DEPTH} levels is not encodable`);
  }
  const proto: unknown = Object.getPrototypeOf(value);
  ancestors.push(value);
  try {
    if (proto === Array.prototype) checkArray(value as unknown[], state);
    else if (proto === Object.prototype || proto === null) checkObject(value, state);
    else if (proto === Map.prototype) checkMap(value as Map<unknown, unknown>, state);
    else if (proto === Set.prototype) checkSet(value as Set<unknown>, state);
    else throw new Invalid(whyNotPlain(value, proto));
  } finally {
    ancestors.pop();
  }
}

function checkArray(value: unknown[], state: InspectState): void {
  for (let i = 0; i < value.length; i++) {
    if (!(i in value)) {
      // cbor-x would write `undefined`, which does not decode as a hole.
      throw new Invalid("a sparse array (hole) is not encodable").withSegment(`[${i}]`);
    }
    try {
      check(value[i], state);
    } catch (err) {
      throw via(err, `[${i}]`);
    }
  }
}

function checkObject(value: object, state: InspectState): void {
  for (const key of Reflect.ownKeys(value)) {
    if (typeof key === "symbol") {
      throw new Invalid(`a symbol-keyed property (${String(key)}) is not encodable`);
    }
    const desc = Object.getOwnPropertyDescriptor(value, key);
    if (desc === undefined) continue; // removed by a proxy between the two calls
    let problem: string | undefined;
    if (key === "__proto__") {
      problem = 'the key "__proto__" does not round-trip (cbor-x renames it)';
    } else if (!desc.enumerable) problem = "a non-enumerable property is not encodable";
    else if (!("value" in desc)) problem = "an accessor property (getter/setter) is not encodable";
    if (problem !== undefined) throw new Invalid(problem).withSegment(keySegment(key));
    try {
      check(desc.value, state);
    } catch (err) {
      throw via(err, keySegment(key));
    }
  }
}

function checkMap(value: Map<unknown, unknown>, state: InspectState): void {
  let i = 0;
  for (const [key, entry] of value) {
    try {
      check(key, state);
    } catch (err) {
      throw via(err, `.keys()[${i}]`);
    }
    try {
      check(entry, state);
    } catch (err) {
      const label = mapKeyLabel(key);
      throw via(err, label === undefined ? `.entries()[${i}][1]` : `.get(${label})`);
    }
    i++;
  }
}

function checkSet(value: Set<unknown>, state: InspectState): void {
  let i = 0;
  for (const element of value) {
    try {
      check(element, state);
    } catch (err) {
      throw via(err, `.values()[${i}]`);
    }
    i++;
  }
}

function whyNotPlain(value: object, proto: unknown): string {
  try {
    if (ArrayBuffer.isView(value) || value instanceof ArrayBuffer) {
      const name = Object.prototype.toString.call(value).slice(8, -1);
      return `an instance of ${name} is not CBOR-encodable (use a Uint8Array for bytes)`;
    }
    const ctor: unknown = proto !== null && typeof proto === "object"
      ? Object.getOwnPropertyDescriptor(proto, "constructor")?.value
      : undefined;
    if (typeof ctor === "function" && ctor.name !== "") {
      return `an instance of ${ctor.name} is not CBOR-encodable`;
    }
  } catch {
    // An exotic object (e.g. a revoked proxy): fall through to the generic description.
  }
  return "an object with a non-plain prototype is not CBOR-encodable";
}
