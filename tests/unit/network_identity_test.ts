// Tests for Identity: key generation, signing, verification and redaction of the secret.

import { inspect } from "node:util";
import * as ed from "@noble/ed25519";
import { test } from "../harness.ts";
import { assert, assertEquals, assertNotEquals, assertRejects } from "../assert.ts";
import { Identity } from "../../lib/network/identity.ts";
import { toHex, utf8 } from "../../lib/primitives/bytes.ts";
import { PeerId } from "../../lib/primitives/ids.ts";

const MSG = utf8("hello mosaik");

test("generate gives distinct identities whose peer id is the public key", async () => {
  const a = await Identity.generate();
  const b = await Identity.generate();
  assert(!a.peerId.equals(b.peerId));
  assertEquals(a.peerId.toBytes(), await ed.getPublicKeyAsync(a.toSecretKey()));
});

test("fromSecretKey is deterministic and copies its input", async () => {
  const secret = new Uint8Array(32).fill(7);
  const a = await Identity.fromSecretKey(secret);
  secret.fill(0);
  const b = await Identity.fromSecretKey(new Uint8Array(32).fill(7));
  assert(a.peerId.equals(b.peerId));
  assertEquals(a.toSecretKey(), new Uint8Array(32).fill(7));
});

test("fromSecretKey rejects wrong lengths and non-bytes", async () => {
  for (const n of [0, 31, 33, 64]) {
    await assertRejects(() => Identity.fromSecretKey(new Uint8Array(n)), RangeError, "32 bytes");
  }
  await assertRejects(
    () => Identity.fromSecretKey("x".repeat(32) as unknown as Uint8Array),
    TypeError,
  );
});

test("sign and verify round trip; tampering fails", async () => {
  const me = await Identity.generate();
  const other = await Identity.generate();
  const sig = await me.sign(MSG);
  assertEquals(sig.length, 64);
  assert(await Identity.verify(me.peerId, MSG, sig));
  assert(!(await Identity.verify(other.peerId, MSG, sig)), "wrong signer");
  assert(!(await Identity.verify(me.peerId, utf8("hello mosaiK"), sig)), "other message");
  for (const i of [0, 31, 32, 63]) {
    const bad = sig.slice();
    bad[i]! ^= 1;
    assert(!(await Identity.verify(me.peerId, MSG, bad)), `flipped byte ${i}`);
  }
});

test("verify returns false, never throws, on malformed input", async () => {
  const me = await Identity.generate();
  const sig = await me.sign(MSG);
  assert(!(await Identity.verify(me.peerId, MSG, sig.slice(0, 63))));
  assert(!(await Identity.verify(me.peerId, MSG, new Uint8Array(65))));
  assert(!(await Identity.verify(me.peerId, MSG, new Uint8Array(64))));
  assert(!(await Identity.verify(me.peerId, MSG, new Uint8Array(64).fill(0xff))));
  // A public key that is not a curve point.
  assert(!(await Identity.verify(new PeerId(new Uint8Array(32).fill(0xff)), MSG, sig)));
  assert(!(await Identity.verify(null as unknown as PeerId, MSG, sig)));
  assert(!(await Identity.verify(me.peerId, "x" as unknown as Uint8Array, sig)));
  assert(!(await Identity.verify(me.peerId, MSG, "sig" as unknown as Uint8Array)));
});

test("the secret is never printed", async () => {
  const me = await Identity.generate();
  const secretHex = toHex(me.toSecretKey());
  const out = [
    String(me),
    `${me}`,
    JSON.stringify(me),
    JSON.stringify({ nested: { me } }),
    inspect(me),
    inspect({ me }, { depth: 10 }),
    Object.keys(me).join(","),
  ];
  const deno = (globalThis as { Deno?: { inspect(v: unknown): string } }).Deno;
  if (deno !== undefined) out.push(deno.inspect(me), deno.inspect({ me }));
  for (const s of out) {
    assert(!s.includes(secretHex), `leaked in ${s}`);
    assert(!s.includes(secretHex.slice(0, 8)), `prefix leaked in ${s}`);
  }
  assert(String(me).includes(me.peerId.short()));
  assertNotEquals(String(me), secretHex);
});
