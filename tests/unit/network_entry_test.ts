// Tests for signed peer entries: signing, verification, the wire form and rejection of bad entries.

import { test } from "../harness.ts";
import { assert, assertEquals, assertRejects, assertThrows } from "../assert.ts";
import {
  compareVersions,
  decodeSignedEntry,
  encodeSignedEntry,
  InvalidEntryError,
  type PeerEntry,
  type SignedPeerEntry,
  signEntry,
  verifyEntry,
} from "../../lib/network/entry.ts";
import { Identity } from "../../lib/network/identity.ts";
import { GroupId, NetworkId } from "../../lib/primitives/ids.ts";
import { encode } from "../../lib/wire/codec.ts";

const NET = NetworkId.fromName("test-net");
const G1 = GroupId.random();
const G2 = GroupId.random();

function entryOf(me: Identity, over: Partial<PeerEntry> = {}): PeerEntry {
  return {
    networkId: NET,
    peerId: me.peerId,
    addresses: [{ transport: "quic", host: "127.0.0.1", port: 4433 }],
    certificateHash: new Uint8Array(32).fill(9),
    tags: ["matcher", "eu"],
    groups: [G1, G2],
    version: { start: 1_700_000_000_000, update: 3 },
    ...over,
  };
}

async function reason(p: () => Promise<unknown>): Promise<string> {
  const err = await assertRejects(p, InvalidEntryError);
  return (err as InvalidEntryError).reason;
}

test("sign, encode, decode, verify round trip", async () => {
  const me = await Identity.generate();
  const entry = entryOf(me);
  const signed = await signEntry(entry, me);
  const back = await verifyEntry(decodeSignedEntry(encodeSignedEntry(signed)), NET);
  assert(back.networkId.equals(NET));
  assert(back.peerId.equals(me.peerId));
  assertEquals(back.addresses, entry.addresses);
  assertEquals(back.certificateHash, entry.certificateHash);
  assertEquals(back.tags, ["eu", "matcher"]);
  assertEquals(
    back.groups.map((g) => g.toHex()),
    [G1, G2].sort((a, b) => a.compare(b)).map((g) => g.toHex()),
  );
  assertEquals(back.version, entry.version);
});

test("the payload is canonical: tag and group order and duplicates do not matter", async () => {
  const me = await Identity.generate();
  const a = await signEntry(entryOf(me, { tags: ["b", "a", "b"], groups: [G2, G1, G2] }), me);
  const b = await signEntry(entryOf(me, { tags: ["a", "b"], groups: [G1, G2] }), me);
  assertEquals(a.payload, b.payload);
});

test("empty addresses, tags and groups are allowed", async () => {
  const me = await Identity.generate();
  const signed = await signEntry(entryOf(me, { addresses: [], tags: [], groups: [] }), me);
  const back = await verifyEntry(signed, NET);
  assertEquals([back.addresses.length, back.tags.length, back.groups.length], [0, 0, 0]);
});

test("an entry of another network is rejected with reason network", async () => {
  const me = await Identity.generate();
  const signed = await signEntry(entryOf(me), me);
  assertEquals(await reason(() => verifyEntry(signed, NetworkId.fromName("other"))), "network");
});

test("tampered, foreign and missing signatures are rejected with reason signature", async () => {
  const me = await Identity.generate();
  const other = await Identity.generate();
  const signed = await signEntry(entryOf(me), me);
  const flipped = signed.signature.slice();
  flipped[10]! ^= 1;
  const cases: SignedPeerEntry[] = [
    { payload: signed.payload, signature: flipped },
    { payload: signed.payload, signature: new Uint8Array(0) },
    { payload: signed.payload, signature: signed.signature.slice(0, 63) },
    { payload: signed.payload, signature: new Uint8Array(64) },
    // Signed by another key over the same payload.
    { payload: signed.payload, signature: await other.sign(signed.payload) },
    // The right key, but without the domain tag.
    { payload: signed.payload, signature: await me.sign(signed.payload) },
  ];
  for (const c of cases) assertEquals(await reason(() => verifyEntry(c, NET)), "signature");
});

test("the signature covers every field", async () => {
  const me = await Identity.generate();
  const base = await signEntry(entryOf(me), me);
  assert((await verifyEntry(base, NET)).peerId.equals(me.peerId));
  const changes: [string, Partial<PeerEntry>][] = [
    ["port", { addresses: [{ transport: "quic", host: "127.0.0.1", port: 4434 }] }],
    ["host", { addresses: [{ transport: "quic", host: "127.0.0.2", port: 4433 }] }],
    ["transport", { addresses: [{ transport: "h2", host: "127.0.0.1", port: 4433 }] }],
    ["no addresses", { addresses: [] }],
    ["certificate hash", { certificateHash: new Uint8Array(32).fill(8) }],
    ["fewer tags", { tags: ["matcher"] }],
    ["more tags", { tags: ["matcher", "eu", "us"] }],
    ["fewer groups", { groups: [G1] }],
    ["more groups", { groups: [G1, G2, GroupId.random()] }],
    ["update", { version: { start: 1_700_000_000_000, update: 4 } }],
    ["start", { version: { start: 1_700_000_000_001, update: 3 } }],
  ];
  for (const [name, change] of changes) {
    // What an attacker could forge: a changed payload carrying the original signature.
    const changed = await signEntry(entryOf(me, change), me);
    const tampered = { payload: changed.payload, signature: base.signature };
    assertEquals(
      await reason(() => verifyEntry(tampered, NET)),
      "signature",
      `${name} not covered`,
    );
  }
  // The peer id: the same payload claiming another peer (whose key did not sign it).
  const other = await Identity.generate();
  const claimed = replaceBytes(base.payload, me.peerId.toBytes(), other.peerId.toBytes());
  assertEquals(
    await reason(() => verifyEntry({ payload: claimed, signature: base.signature }, NET)),
    "signature",
  );
  // The network id: moving an entry to another network needs a new signature.
  const otherNet = NetworkId.fromName("other");
  const moved = replaceBytes(base.payload, NET.toBytes(), otherNet.toBytes());
  assertEquals(
    await reason(() => verifyEntry({ payload: moved, signature: base.signature }, otherNet)),
    "signature",
  );
});

/** `bytes` with the single occurrence of `from` replaced by `to` (same length). */
function replaceBytes(bytes: Uint8Array, from: Uint8Array, to: Uint8Array): Uint8Array {
  const hex = (b: Uint8Array) => [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
  const at = hex(bytes).indexOf(hex(from));
  assert(at >= 0 && at % 2 === 0, "bytes not found");
  const out = bytes.slice();
  out.set(to, at / 2);
  return out;
}

test("malformed payloads are rejected with reason malformed", async () => {
  const me = await Identity.generate();
  const good = await signEntry(entryOf(me), me);
  const plain = (over: Record<number, unknown>): Uint8Array => {
    const fields: unknown[] = [
      NET.toBytes(),
      me.peerId.toBytes(),
      [["quic", "127.0.0.1", 4433]],
      new Uint8Array(32),
      ["a"],
      [],
      1,
      2,
    ];
    for (const [i, v] of Object.entries(over)) fields[Number(i)] = v;
    return encode(fields);
  };
  const payloads: Uint8Array[] = [
    new Uint8Array(0),
    good.payload.subarray(0, good.payload.length - 1),
    new Uint8Array([0xff, 0x00, 0x13]),
    encode({ networkId: 1 }),
    encode([1, 2, 3]),
    plain({ 0: new Uint8Array(31) }),
    plain({ 1: "peer" }),
    plain({ 2: [["quic", "127.0.0.1"]] }),
    plain({ 2: [["quic", "127.0.0.1", 0]] }),
    plain({ 2: new Array(17).fill(["quic", "1.2.3.4", 1]) }),
    plain({ 3: new Uint8Array(33) }),
    plain({ 4: [""] }),
    plain({ 4: [7] }),
    plain({ 4: new Array(65).fill("t").map((t, i) => t + i) }),
    plain({ 5: [new Uint8Array(5)] }),
    plain({ 6: -1 }),
    plain({ 7: 1.5 }),
    plain({ 7: 2n ** 64n }),
    plain({ 6: "now" }),
  ];
  for (const [i, payload] of payloads.entries()) {
    const r = await reason(() => verifyEntry({ payload, signature: good.signature }, NET));
    assertEquals(r, "malformed", `payload ${i}`);
  }
  assertEquals(
    await reason(() => verifyEntry(null as unknown as SignedPeerEntry, NET)),
    "malformed",
  );
});

test("decodeSignedEntry rejects garbage and truncations with malformed, never a crash", () => {
  const wire = encodeSignedEntry({
    payload: new Uint8Array([1, 2, 3]),
    signature: new Uint8Array(64),
  });
  const inputs: Uint8Array[] = [
    new Uint8Array(0),
    new Uint8Array([0xff]),
    encode("hello"),
    encode([new Uint8Array(1)]),
    encode([new Uint8Array(1), "sig"]),
    encode([new Uint8Array(1), new Uint8Array(1), new Uint8Array(1)]),
  ];
  for (let n = 0; n < wire.length; n++) inputs.push(wire.subarray(0, n));
  let seed = 1;
  for (let k = 0; k < 200; k++) {
    const b = new Uint8Array(1 + (k % 40));
    for (let i = 0; i < b.length; i++) b[i] = (seed = (seed * 1103515245 + 12345) >>> 0) >>> 24;
    inputs.push(b);
  }
  for (const input of inputs) {
    try {
      decodeSignedEntry(input);
    } catch (err) {
      assert(err instanceof InvalidEntryError, `unexpected ${String(err)}`);
      assertEquals(err.reason, "malformed");
    }
  }
  for (const input of inputs.slice(0, 6 + wire.length)) {
    const err = assertThrows(() => decodeSignedEntry(input), InvalidEntryError);
    assertEquals((err as InvalidEntryError).reason, "malformed");
  }
});

test("signEntry refuses an invalid entry or someone else's", async () => {
  const me = await Identity.generate();
  const other = await Identity.generate();
  await assertRejects(() => signEntry(entryOf(other), me), RangeError, "identity");
  await assertRejects(
    () => signEntry(entryOf(me, { certificateHash: new Uint8Array(3) }), me),
    RangeError,
    "certificate hash",
  );
  await assertRejects(
    () => signEntry(entryOf(me, { version: { start: -1, update: 0 } }), me),
    RangeError,
    "version",
  );
  await assertRejects(() => signEntry(entryOf(me, { tags: [""] }), me), RangeError, "tag");
});

test("compareVersions is lexicographic on (start, update)", () => {
  assertEquals(compareVersions({ start: 1, update: 5 }, { start: 1, update: 5 }), 0);
  assertEquals(compareVersions({ start: 1, update: 5 }, { start: 1, update: 6 }), -1);
  assertEquals(compareVersions({ start: 2, update: 0 }, { start: 1, update: 99 }), 1);
  assertEquals(compareVersions({ start: 1, update: 99 }, { start: 2, update: 0 }), -1);
});
