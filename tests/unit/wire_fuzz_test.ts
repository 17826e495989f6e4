// Seeded fuzzing of the wire layer: garbage only ever fails as a WireError, valid data always round-trips.
//
// Every test draws from one SeededRng, so a failure replays exactly from the
// seed printed in its message.

import { Decoder as CborXDecoder, Encoder as CborXEncoder } from "cbor-x/index-no-eval";
import { test } from "../harness.ts";
import { assert, assertEquals } from "../assert.ts";
import { SeededRng, toHex } from "../../lib/primitives/mod.ts";
import { SystemEntry } from "../../storage/types.ts";
import {
  assertEncodable,
  decode,
  decodeEntry,
  DecodeError,
  encode,
  encodeEntry,
  encodeFrame,
  encodeMessage,
  EncodingError,
  FrameDecoder,
  FrameTooLargeError,
  TruncatedFrameError,
  WireError,
} from "../../lib/wire/mod.ts";
import { inspect, MAX_BIGINT_BYTES, MAX_DEPTH } from "../../lib/wire/codec.ts";

type ErrorClass = new (...args: never[]) => Error;

/** Runs `fn`; an error of an `allowed` class is an expected outcome, anything else fails the test. */
function expectOnly<T>(
  where: string,
  input: Uint8Array,
  allowed: readonly ErrorClass[],
  fn: () => T,
): { ok: true; value: T } | { ok: false; error: Error } {
  try {
    return { ok: true, value: fn() };
  } catch (err) {
    if (allowed.some((cls) => err instanceof cls)) {
      assert(err instanceof WireError, `${where}: ${String(err)} is not a WireError`);
      return { ok: false, error: err };
    }
    const detail = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
    assert(false, `${where}: input ${toHex(input.subarray(0, 256))} threw ${detail}`);
  }
}

const STRING_POOL = [
  "a",
  "z",
  "0",
  " ",
  "é",
  "ß",
  "中",
  "€",
  "🎉",
  "𝄞",
  "\u0000",
  "\n",
  "__proto_",
];

function randomString(rng: SeededRng): string {
  const n = rng.int(4) === 0 ? rng.int(60) : rng.int(6);
  let s = "";
  for (let i = 0; i < n; i++) s += STRING_POOL[rng.int(STRING_POOL.length)]!;
  return s;
}

function randomBigint(rng: SeededRng): bigint {
  const bytes = rng.bytes(1 + rng.int(rng.int(3) === 0 ? 40 : 9));
  let v = 0n;
  for (const b of bytes) v = (v << 8n) | BigInt(b);
  return rng.int(2) === 0 ? v : -v - 1n;
}

function randomScalar(rng: SeededRng): unknown {
  switch (rng.int(16)) {
    case 0:
      return null;
    case 1:
      return undefined;
    case 2:
      return rng.int(2) === 0;
    case 3:
      return rng.int(48) - 24;
    case 4:
      return [23, 24, 255, 256, 65535, 65536, 2 ** 32 - 1, 2 ** 32, -(2 ** 32) - 1][rng.int(9)];
    case 5:
      return rng.nextU32() * (rng.int(2) === 0 ? 1 : -1);
    case 6:
      return 2 ** rng.int(70) * (rng.int(2) === 0 ? 1 : -1);
    case 7:
      return (rng.next() - 0.5) * 10 ** (rng.int(40) - 20);
    case 8:
      return [-0, NaN, Infinity, -Infinity, Number.MIN_VALUE, Number.MAX_VALUE][rng.int(6)];
    case 9:
      return BigInt(rng.int(1000) - 500);
    case 10:
      return randomBigint(rng);
    case 11:
    case 12:
      return randomString(rng);
    case 13:
      return rng.bytes(rng.int(4) === 0 ? rng.int(300) : rng.int(8));
    default:
      return rng.int(2) === 0 ? "" : 0;
  }
}

function randomValue(rng: SeededRng, depth: number): unknown {
  if (depth === 0 || rng.int(3) === 0) return randomScalar(rng);
  const size = rng.int(5);
  switch (rng.int(4)) {
    case 0:
      return Array.from({ length: size }, () => randomValue(rng, depth - 1));
    case 1: {
      const obj: Record<string, unknown> = {};
      for (let i = 0; i < size; i++) obj[randomString(rng)] = randomValue(rng, depth - 1);
      return obj;
    }
    case 2: {
      const map = new Map<unknown, unknown>();
      for (let i = 0; i < size; i++) {
        const key = rng.int(4) === 0 ? randomValue(rng, 1) : randomScalar(rng);
        map.set(key, randomValue(rng, depth - 1));
      }
      return map;
    }
    default:
      return new Set(Array.from({ length: size }, () => randomValue(rng, depth - 1)));
  }
}

/** Cuts `bytes` into random chunks, some empty. */
function randomChunks(rng: SeededRng, bytes: Uint8Array): Uint8Array[] {
  const chunks: Uint8Array[] = [];
  for (let at = 0; at < bytes.length;) {
    const n = rng.int(3) === 0 ? rng.int(4) : rng.int(40);
    chunks.push(bytes.subarray(at, at + n));
    at += n;
  }
  return chunks;
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function mutate(rng: SeededRng, bytes: Uint8Array): Uint8Array {
  let out = Array.from(bytes);
  for (let n = 1 + rng.int(3); n > 0; n--) {
    const at = rng.int(out.length + 1);
    switch (rng.int(6)) {
      case 0: // flip a bit
        if (at < out.length) out[at] = out[at]! ^ (1 << rng.int(8));
        break;
      case 1: // replace a byte
        if (at < out.length) out[at] = rng.int(256);
        break;
      case 2: // insert a byte
        out.splice(at, 0, rng.int(256));
        break;
      case 3: // delete a few bytes
        out.splice(at, 1 + rng.int(3));
        break;
      case 4: // truncate
        out = out.slice(0, at);
        break;
      default: // duplicate a slice
        out.splice(at, 0, ...out.slice(rng.int(out.length + 1), rng.int(out.length + 1)));
    }
  }
  return new Uint8Array(out);
}

/** A decoded value must be plain data that encodes again to the same value. */
function assertStable(where: string, value: unknown): void {
  try {
    assertEncodable(value);
  } catch (err) {
    assert(false, `${where}: decoded value is not encodable: ${String(err)}`);
  }
  assertEquals(decode(encode(value)), value, `${where}: decoded value does not re-encode stably`);
}

test("fuzz: random values round-trip through encode/decode and randomly chunked frames", () => {
  const seed = 0x5eed_0001;
  const rng = new SeededRng(seed);
  for (let i = 0; i < 60; i++) {
    const where = `seed ${seed}, iteration ${i}`;
    const values = Array.from({ length: 8 }, () => randomValue(rng, 4));
    for (const value of values) assertEquals(decode(encode(value)), value, where);
    const stream = concat(values.map((v) => encodeFrame(encode(v))));
    const decoder = new FrameDecoder({ maxFrameSize: 64 * 1024 });
    const payloads: Uint8Array[] = [];
    for (const chunk of randomChunks(rng, stream)) payloads.push(...decoder.push(chunk));
    decoder.finish();
    assertEquals(payloads.map((p) => decode(p)), values, where);
  }
});

test("fuzz: random bytes into decode fail only with DecodeError", () => {
  const seed = 0x5eed_0002;
  const rng = new SeededRng(seed);
  // Leading bytes that open containers and tags reach deeper into the decoder.
  const openers = [0x82, 0x83, 0x9f, 0xa1, 0xa2, 0xbf, 0xc2, 0xc3, 0xd9, 0xd8, 0x5f, 0x7f, 0x1b];
  let decoded = 0;
  for (let i = 0; i < 3000; i++) {
    const where = `seed ${seed}, iteration ${i}`;
    const bytes = rng.bytes(rng.int(48));
    if (bytes.length > 0 && rng.int(2) === 0) bytes[0] = openers[rng.int(openers.length)]!;
    if (bytes.length > 3 && rng.int(3) === 0) bytes.set([0xd9, 0x01, 0x02 + rng.int(2)], 1);
    const result = expectOnly(where, bytes, [DecodeError], () => decode(bytes));
    if (result.ok) {
      decoded++;
      assertStable(where, result.value);
    }
  }
  assert(decoded > 0, `seed ${seed}: nothing decoded, the fuzz input is too narrow`);
});

test("fuzz: mutated and truncated valid encodings fail only with DecodeError", () => {
  const seed = 0x5eed_0003;
  const rng = new SeededRng(seed);
  let decoded = 0;
  let refused = 0;
  for (let i = 0; i < 2500; i++) {
    const where = `seed ${seed}, iteration ${i}`;
    const bytes = mutate(rng, encode(randomValue(rng, 3)));
    const result = expectOnly(where, bytes, [DecodeError], () => decode(bytes));
    if (result.ok) {
      decoded++;
      assertStable(where, result.value);
    } else refused++;
  }
  assert(decoded > 0 && refused > 0, `seed ${seed}: ${decoded} decoded, ${refused} refused`);
});

test("fuzz: FrameDecoder on random streams fails only with frame errors and bounds its memory", () => {
  const seed = 0x5eed_0004;
  const rng = new SeededRng(seed);
  const maxFrameSize = 64;
  let complete = 0;
  for (let i = 0; i < 1500; i++) {
    const where = `seed ${seed}, iteration ${i}`;
    // Valid frames with random damage in between, so decoding gets some way before failing.
    const parts: Uint8Array[] = [];
    for (let n = rng.int(5); n > 0; n--) {
      parts.push(encodeFrame(rng.bytes(rng.int(maxFrameSize + 1))));
      if (rng.int(4) === 0) parts.push(rng.bytes(rng.int(6)));
    }
    const stream = concat(parts);
    const decoder = new FrameDecoder({ maxFrameSize });
    const frames: Uint8Array[] = [];
    const result = expectOnly(where, stream, [FrameTooLargeError, TruncatedFrameError], () => {
      for (const chunk of randomChunks(rng, stream)) {
        frames.push(...decoder.push(chunk));
        assert(
          decoder.bufferedBytes <= maxFrameSize + 4 + chunk.length,
          `${where}: holds ${decoder.bufferedBytes} bytes`,
        );
      }
      decoder.finish();
    });
    if (result.ok) {
      complete++;
      // A stream that decodes cleanly is exactly its frames, back to back.
      assertEquals(concat(frames.map((f) => encodeFrame(f))), stream, where);
    } else {
      // Poisoned: the same error again, whatever comes next.
      expectOnly(where, stream, [], () => {
        let again: unknown;
        try {
          decoder.push(encodeFrame(new Uint8Array(1)));
        } catch (err) {
          again = err;
        }
        assert(again === result.error, `${where}: decoder not poisoned`);
      });
    }
  }
  assert(complete > 0, `seed ${seed}: no stream decoded cleanly`);
});

test("fuzz: mutated log entries fail only with DecodeError", () => {
  const seed = 0x5eed_0005;
  const rng = new SeededRng(seed);
  for (let i = 0; i < 1000; i++) {
    const where = `seed ${seed}, iteration ${i}`;
    const command = rng.int(4) === 0
      ? new SystemEntry({ type: "membership", voters: [randomString(rng)], learners: [] })
      : randomValue(rng, 2);
    const entry = { index: rng.nextU32(), term: rng.int(100), command };
    const bytes = encodeEntry(entry);
    assertEquals(decodeEntry(bytes), entry, where);
    const damaged = mutate(rng, bytes);
    expectOnly(where, damaged, [DecodeError], () => decodeEntry(damaged));
  }
});

test("fuzz: decode agrees with cbor-x's own decoder on everything it accepts", () => {
  // Our decoder replaced cbor-x's (decoder.ts); on the items both read, they must build the same value.
  const seed = 0x5eed_0006;
  const rng = new SeededRng(seed);
  const theirs = (bytes: Uint8Array): unknown =>
    new CborXDecoder({ useRecords: false, copyBuffers: true }).decode(new Uint8Array(bytes));
  let compared = 0;
  for (let i = 0; i < 3000; i++) {
    const where = `seed ${seed}, iteration ${i}`;
    const valid = encode(randomValue(rng, 4));
    const bytes = i % 3 === 0 ? valid : mutate(rng, valid);
    const ours = expectOnly(where, bytes, [DecodeError], () => decode(bytes));
    if (i % 3 === 0) assert(ours.ok, `${where}: a valid encoding was refused`);
    if (!ours.ok) continue;
    // Compared by their encodings: deep equality is ambiguous for Maps with object keys.
    assertEquals(
      toHex(encode(ours.value)),
      toHex(encode(theirs(bytes))),
      `${where}: ${toHex(bytes.subarray(0, 256))}`,
    );
    compared++;
  }
  assert(compared > 1000, `seed ${seed}: only ${compared} inputs compared`);
});

// ---------------------------------------------------------------------------
// The encoder against cbor-x, which wrote every encoding before it (encoder.ts)

const CBORX_OPTIONS = { useRecords: false, tagUint8Array: false, variableMapSize: true } as const;
const cborx = new CborXEncoder({ ...CBORX_OPTIONS });
const cborxFloats = new CborXEncoder({ ...CBORX_OPTIONS, alwaysUseFloat: true });

/** What codec.ts wrote with cbor-x: every number a float64 when the value holds a -0. */
function cborxBytes(value: unknown, negativeZero = inspect(value).negativeZero): Uint8Array {
  return (negativeZero ? cborxFloats : cborx).encode(value).slice();
}

/** Equal bytes; on a difference, says where (hex of whole encodings of a megabyte is slow). */
function assertSameBytes(ours: Uint8Array, theirs: Uint8Array, where: string): void {
  let at = 0;
  const n = Math.min(ours.length, theirs.length);
  while (at < n && ours[at] === theirs[at]) at++;
  if (at === n && ours.length === theirs.length) return;
  const from = Math.max(0, at - 16);
  assertEquals(
    `${ours.length} bytes, from ${from}: ${toHex(ours.subarray(from, at + 16))}`,
    `${theirs.length} bytes, from ${from}: ${toHex(theirs.subarray(from, at + 16))}`,
    where,
  );
}

function assertSameAsCborX(where: string, value: unknown): void {
  const ours = encode(value);
  assertSameBytes(ours, cborxBytes(value), where);
  // By re-encoding: deep equality is ambiguous for Maps with object keys (and Bun's fails on them).
  assertSameBytes(encode(decode(ours)), ours, `${where}: round trip`);
}

const NodeBuffer = (globalThis as { Buffer?: { from(a: Uint8Array): Uint8Array } }).Buffer;

/** `value` with -0 put somewhere inside (or instead of it). */
function withNegativeZero(rng: SeededRng, value: unknown): unknown {
  switch (rng.int(4)) {
    case 0:
      return -0;
    case 1:
      return [value, -0];
    case 2:
      return { z: -0, v: value };
    default:
      return new Map<unknown, unknown>([[-0, value], [1, [2 ** 40, 1.5, -7]]]);
  }
}

/** Strings around the header and loop thresholds, in every UTF-8 width. */
function edgeStrings(): string[] {
  const out: string[] = [];
  for (const unit of ["a", "é", "中", "🎉", "a中", "é🎉"]) {
    for (const n of [1, 7, 8, 11, 12, 21, 22, 23, 24, 25, 31, 32, 33, 63, 64, 65, 85, 86, 100]) {
      out.push(unit.repeat(n));
    }
    for (const n of [255, 256, 21_845, 21_846, 65_535, 65_536, 70_000]) {
      out.push(unit.repeat(Math.ceil(n / unit.length)).slice(0, n));
    }
  }
  return out.filter((s) => s.isWellFormed());
}

test("fuzz: encode writes exactly cbor-x's bytes for random values", () => {
  const seed = 0x5eed_0007;
  const rng = new SeededRng(seed);
  let withZero = 0;
  for (let i = 0; i < 4000; i++) {
    const where = `seed ${seed}, iteration ${i}`;
    let value = randomValue(rng, 4);
    if (rng.int(8) === 0) value = withNegativeZero(rng, value);
    if (inspect(value).negativeZero) withZero++;
    assertSameAsCborX(where, value);
  }
  assert(withZero > 300, `seed ${seed}: only ${withZero} values held a -0`);
});

test("fuzz: encode writes exactly cbor-x's bytes for edge sizes, numbers, bigints and strings", () => {
  const numbers = [
    0,
    1,
    23,
    24,
    255,
    256,
    65535,
    65536,
    2 ** 31 - 1,
    2 ** 31,
    2 ** 32 - 1,
    2 ** 32,
    -1,
    -24,
    -25,
    -256,
    -257,
    -65536,
    -65537,
    -(2 ** 31),
    -(2 ** 31) - 1,
    -(2 ** 32),
    -(2 ** 32) - 1,
    2 ** 53,
    -(2 ** 53),
    0.5,
    -1.5,
    NaN,
    Infinity,
    -Infinity,
    Number.MIN_VALUE,
    Number.MAX_VALUE,
  ];
  const two64 = 1n << 64n;
  const bigints = [0n, 1n, -1n, 255n, -256n, two64 - 1n, two64, two64 + 1n, -two64 + 1n, -two64];
  bigints.push(
    -two64 - 1n,
    2n ** 100n,
    -(2n ** 100n),
    2n ** 71n - 1n,
    2n ** 72n,
    -(2n ** 72n) - 1n,
  );
  bigints.push((1n << 8192n) - 1n, -(1n << 8192n), 0x0fn << 200n);
  const strings = edgeStrings();
  const sizes = [0, 1, 23, 24, 255, 256, 65535, 65536];
  const values: unknown[] = [...numbers, ...bigints, ...strings];
  for (const n of sizes) {
    values.push(Array.from({ length: n }, (_, i) => i));
    values.push(Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${i}`, i % 3 === 0])));
    values.push(new Map(Array.from({ length: n }, (_, i) => [i, `v${i}`])));
    values.push(new Set(Array.from({ length: n }, (_, i) => -i)));
    values.push(new Uint8Array(n).map((_, i) => i * 7));
  }
  if (NodeBuffer !== undefined) {
    for (const n of sizes) values.push({ b: NodeBuffer.from(new Uint8Array(n).fill(n & 0xff)) });
  }
  values.push(Object.assign(Object.create(null) as object, { a: 1, b: [2n] }));
  values.push({ constructor: "a string", nested: { constructor: 1 } });
  values.push(new Uint8Array([9, 1, 2, 9]).subarray(1, 3));
  // Everything again inside a container and with a -0 beside it (all numbers float64).
  for (const value of [...values]) {
    values.push([value], { v: value, z: -0 });
  }
  for (const [i, value] of values.entries()) {
    const where = `value ${i}`;
    const ours = encode(value);
    assertSameBytes(ours, cborxBytes(value), where);
    // Buffers decode as Uint8Array, NaN is not equal to itself: compare by re-encoding.
    assertSameBytes(encode(decode(ours)), ours, `${where}: round trip`);
  }
});

test("fuzz: entries and messages are cbor-x's bytes too", () => {
  const seed = 0x5eed_0008;
  const rng = new SeededRng(seed);
  for (let i = 0; i < 1000; i++) {
    const where = `seed ${seed}, iteration ${i}`;
    let command = randomValue(rng, 3);
    if (rng.int(8) === 0) command = withNegativeZero(rng, command);
    const index = [rng.nextU32(), 2 ** 32 + rng.int(1000), Number.MAX_SAFE_INTEGER][rng.int(3)]!;
    const term = rng.int(300);
    const zero = inspect(command).negativeZero;
    // The command alone decides: with a -0 in it, the index and term are float64 as well.
    assertSameBytes(
      encodeEntry({ index, term, command }),
      cborxBytes([index, term, 0, command], zero),
      where,
    );
    const body = { type: "membership", voters: [randomString(rng)], learners: [] };
    assertSameBytes(
      encodeEntry({ index, term, command: new SystemEntry(body as never) }),
      cborxBytes([index, term, 1, body]),
      where,
    );
    const message = { t: "raft", m: { term, index, entries: [command, rng.bytes(rng.int(80))] } };
    assertSameBytes(encodeMessage(message), encodeFrame(cborxBytes(message, zero)), where);
  }
});

/** Puts `bad` somewhere inside `value` (or returns it, when `value` is not a container). */
function plant(rng: SeededRng, value: unknown, bad: unknown): unknown {
  if (typeof value !== "object" || value === null || value instanceof Uint8Array) return bad;
  if (Array.isArray(value)) {
    if (value.length > 0 && rng.int(2) === 0) {
      const i = rng.int(value.length);
      value[i] = plant(rng, value[i], bad);
    } else value.push(bad);
  } else if (value instanceof Map) {
    const keys = [...value.keys()];
    if (keys.length > 0 && rng.int(2) === 0) {
      const key = keys[rng.int(keys.length)];
      value.set(key, plant(rng, value.get(key), bad));
    } else value.set(rng.int(3) === 0 ? bad : `bad${rng.int(10)}`, bad);
  } else if (value instanceof Set) {
    value.add(bad);
  } else {
    const record = value as Record<string, unknown>;
    const keys = Object.keys(record);
    if (keys.length > 0 && rng.int(2) === 0) {
      const key = keys[rng.int(keys.length)]!;
      record[key] = plant(rng, record[key], bad);
    } else record[`bad ${rng.int(10)}`] = bad;
  }
  return value;
}

/** A fresh value that is not encodable, of each kind `inspect` refuses. */
function badValues(): unknown[] {
  const hidden = {};
  Object.defineProperty(hidden, "h", { value: 1, enumerable: false });
  const getter = Object.defineProperty({ a: 1 }, "g", { get: () => 1, enumerable: true });
  const setterOnly = Object.defineProperty({}, "s", { set: () => {}, enumerable: true });
  // An accessor with neither getter nor setter: its descriptor has no `value` either.
  const emptyAccessor = Object.defineProperty({}, "e", {
    get: undefined,
    enumerable: true,
  } as unknown as PropertyDescriptor);
  const selfArray: unknown[] = [1];
  selfArray.push(selfArray);
  const selfObject: Record<string, unknown> = { a: 1 };
  selfObject.b = { c: selfObject };
  const selfMap = new Map<unknown, unknown>([["x", 1]]);
  selfMap.set("me", selfMap);
  const keyCycle = new Map<unknown, unknown>();
  keyCycle.set(keyCycle, 1);
  const selfSet = new Set<unknown>([1]);
  selfSet.add([selfSet]);
  let deep: unknown = [1];
  for (let i = 0; i < MAX_DEPTH; i++) deep = [deep];
  let deepZero: unknown = { z: -0 };
  for (let i = 0; i < MAX_DEPTH; i++) deepZero = new Set([deepZero]);
  class Point {
    x = 1;
  }
  return [
    () => 1,
    Symbol("s"),
    new Date(0),
    new Point(),
    /x/,
    new Float32Array(1),
    new ArrayBuffer(2),
    Object.create({ inherited: 1 }),
    { [Symbol("k")]: 1 },
    hidden,
    getter,
    setterOnly,
    emptyAccessor,
    JSON.parse('{"a": 1, "__proto__": 2}'),
    // deno-lint-ignore no-sparse-arrays
    [1, , 3],
    new Array(3),
    "ok\ud800",
    "\udc00x",
    "x".repeat(100) + "\ud83d",
    "\ude00" + "y".repeat(70_000),
    "a\ud83d\ud83d\ude00",
    1n << BigInt(MAX_BIGINT_BYTES * 8),
    -(1n << BigInt(MAX_BIGINT_BYTES * 8)) - 1n,
    selfArray,
    selfObject,
    selfMap,
    keyCycle,
    selfSet,
    deep,
    deepZero,
    [1, 2, [3, { four: [() => 4] }]],
  ];
}

function encodingErrorOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    assert(err instanceof EncodingError, `not an EncodingError: ${String(err)}`);
    return `${err.path} | ${err.reason} | ${err.message}`;
  }
  throw new Error("did not throw");
}

test("fuzz: encode refuses exactly what assertEncodable refuses, with the same error", () => {
  const seed = 0x5eed_0009;
  const rng = new SeededRng(seed);
  const kinds = badValues().length;
  for (let i = 0; i < 3000; i++) {
    const where = `seed ${seed}, iteration ${i}`;
    const bad = badValues()[i % kinds];
    // A -0 somewhere, sometimes: the encoder is then in its second, all-floats walk.
    let value = i < kinds ? bad : plant(rng, randomValue(rng, 3), bad);
    if (rng.int(4) === 0) value = rng.int(2) === 0 ? [-0, value] : new Map([[-0, value]]);
    const expected = encodingErrorOf(() => assertEncodable(value));
    assertEquals(encodingErrorOf(() => encode(value)), expected, where);
    assertEquals(encodingErrorOf(() => encodeMessage(value)), expected, where);
    assertEquals(
      encodingErrorOf(() => encodeEntry({ index: 1, term: 1, command: value })),
      expected,
    );
  }
});
