// Tests for GroupKey: construction, serialisation, redaction, comparison.

import { blake3 } from "@noble/hashes/blake3.js";
import { inspect } from "node:util";
import { runtime, test } from "../harness.ts";
import { assert, assertEquals, assertNotEquals, assertThrows } from "../assert.ts";
import { GroupKey } from "../../lib/groups/key.ts";
import { toHex, utf8 } from "../../lib/primitives/bytes.ts";

/** Every way a key might end up printed, for the redaction checks. */
function renderings(key: GroupKey): string[] {
  const out = [
    String(key),
    `${key}`,
    key.toString(),
    JSON.stringify(key),
    JSON.stringify({ nested: { key } }),
    inspect(key),
    inspect({ key }, { depth: 10 }),
    Object.keys(key).join(","),
  ];
  const deno = (globalThis as { Deno?: { inspect(v: unknown): string } }).Deno;
  if (deno !== undefined) out.push(deno.inspect(key), deno.inspect({ key }));
  return out;
}

test("generate gives 32 fresh random bytes", () => {
  const a = GroupKey.generate();
  const b = GroupKey.generate();
  assertEquals(a.toBytes().length, 32);
  assertNotEquals(a.toHex(), b.toHex());
  assert(!a.equals(b));
});

test("fromSecret is blake3 of the UTF-8 secret", () => {
  const k = GroupKey.fromSecret("shared words");
  assertEquals(k.toBytes(), blake3(utf8("shared words")));
  assert(k.equals(GroupKey.fromSecret("shared words")));
  assert(!k.equals(GroupKey.fromSecret("shared words!")));
  assertThrows(() => GroupKey.fromSecret(""), RangeError, "empty");
  assertThrows(() => GroupKey.fromSecret(42 as unknown as string), TypeError);
});

test("fromBytes/toBytes copy and validate", () => {
  const bytes = new Uint8Array(32).fill(9);
  const k = GroupKey.fromBytes(bytes);
  bytes[0] = 0;
  assertEquals(k.toBytes()[0], 9, "fromBytes copies");
  k.toBytes()[1] = 0;
  assertEquals(k.toBytes()[1], 9, "toBytes returns a copy");
  assertThrows(
    () => GroupKey.fromBytes(new Uint8Array(16)),
    RangeError,
    "expected 32 bytes, got 16",
  );
  assertThrows(() => GroupKey.fromBytes("x" as unknown as Uint8Array), TypeError);
});

test("toHex/parse round-trip and parse rejects bad input", () => {
  const k = GroupKey.generate();
  assertEquals(k.toHex(), toHex(k.toBytes()));
  assert(GroupKey.parse(k.toHex()).equals(k));
  assert(GroupKey.parse(k.toHex().toUpperCase()).equals(k));
  assertThrows(() => GroupKey.parse(k.toHex().slice(2)), RangeError, "expected 64 hex characters");
  assertThrows(() => GroupKey.parse("g".repeat(64)), RangeError);
  assertThrows(() => GroupKey.parse(null as unknown as string), TypeError);
});

test("printing a key never shows the secret", () => {
  for (
    const key of [
      GroupKey.generate(),
      GroupKey.fromSecret("hunter2"),
      GroupKey.fromBytes(new Uint8Array(32)),
    ]
  ) {
    const hex = key.toHex();
    for (const s of renderings(key)) {
      assert(!s.includes(hex), `${runtime}: rendering leaks the secret: ${s}`);
      // no 8-character window of the secret's hex either
      for (let i = 0; i + 8 <= hex.length; i += 4) {
        assert(
          !s.includes(hex.slice(i, i + 8)),
          `${runtime}: rendering leaks part of the secret: ${s}`,
        );
      }
    }
    assert(String(key).includes("redacted"));
    assert(String(key).includes(key.fingerprint()));
  }
});

test("fingerprints tell keys apart and are stable", () => {
  const a = GroupKey.fromSecret("a");
  assertEquals(a.fingerprint(), GroupKey.fromSecret("a").fingerprint());
  assertNotEquals(a.fingerprint(), GroupKey.fromSecret("b").fingerprint());
  assertEquals(a.fingerprint().length, 8);
});

test("equals compares every byte", () => {
  const bytes = new Uint8Array(32).fill(1);
  const k = GroupKey.fromBytes(bytes);
  for (const i of [0, 15, 31]) {
    const other = bytes.slice();
    other[i] = 2;
    assert(!k.equals(GroupKey.fromBytes(other)), `difference at byte ${i} not seen`);
  }
  assert(k.equals(GroupKey.fromBytes(bytes.slice())));
  assert(!k.equals({} as GroupKey));
});

test("digest is blake3 of the secret", () => {
  const k = GroupKey.generate();
  assertEquals(k.digest().toBytes(), blake3(k.toBytes()));
});
