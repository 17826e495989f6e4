// Seeded fuzzing of the wire layer: garbage only ever fails as a WireError, valid data always round-trips.
//
// Every test draws from one SeededRng, so a failure replays exactly from the
// seed printed in its message.

import { Decoder as CborXDecoder } from "cbor-x/index-no-eval";
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
  FrameDecoder,
  FrameTooLargeError,
  TruncatedFrameError,
  WireError,
} from "../../lib/wire/mod.ts";

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
