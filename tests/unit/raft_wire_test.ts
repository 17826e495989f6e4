// Raft messages on the wire: appends round-trip with their entries as bytes, and malformed fields are refused.

import { test } from "../harness.ts";
import { assert, assertEquals } from "../assert.ts";
import { raftFromWire, raftToWire } from "../../lib/groups/raft_wire.ts";
import { decodeBondFrame } from "../../lib/groups/bond/bond.ts";
import { decode, encode } from "../../lib/wire/codec.ts";
import { entryBytes } from "../../lib/wire/entry.ts";
import type { AppendRequest } from "../../lib/raft/types.ts";

const append: AppendRequest = {
  type: "append",
  from: "a",
  to: "b",
  term: 3,
  prevLogIndex: 4,
  prevLogTerm: 2,
  entries: [
    { index: 5, term: 3, command: { op: "set", key: "k", value: "v" } },
    { index: 6, term: 3, command: "x" },
  ],
  leaderCommit: 4,
};

/** What the peer receives: the message through the codec, as a bond carries it. */
function overTheWire(m: AppendRequest): unknown {
  return decode(encode(raftToWire(m)));
}

test("raft wire: an append round-trips; its entries keep the bytes they arrived in", () => {
  const back = raftFromWire(overTheWire(append), "a", "b");
  assertEquals(back, append);
  assert(back?.type === "append");
  for (const e of back.entries) {
    assertEquals(entryBytes(e), entryBytes(append.entries[e.index - 5]!));
  }
  const quiet = raftFromWire(overTheWire({ ...append, entries: [], noReply: true }), "a", "b");
  assertEquals(quiet, { ...append, entries: [], noReply: true });
});

test("raft wire: noReply other than true, or a message not between the bond's peers, is refused", () => {
  for (const noReply of [false, 1, "true", null]) {
    const raw = { ...(overTheWire(append) as Record<string, unknown>), noReply };
    assertEquals(raftFromWire(raw, "a", "b"), undefined, String(noReply));
  }
  assertEquals(raftFromWire(overTheWire(append), "c", "b"), undefined);
  assertEquals(raftFromWire(overTheWire(append), "a", "c"), undefined);
});

test("raft wire: a bond decodes Raft frames with entry views, copied out once; other frames with copies", () => {
  const payload = encode({ t: "raft", m: raftToWire(append) });
  const raw = decodeBondFrame(payload) as { m: { entries: Uint8Array[] } };
  // The entries are views of the frame...
  assert(raw.m.entries.every((e) => e.buffer === payload.buffer), "views of the frame");
  const back = raftFromWire(raw.m, "a", "b");
  assert(back?.type === "append");
  // ...and raftFromWire copies each out: overwriting the frame changes nothing it returned.
  const before = back.entries.map((e) => entryBytes(e).slice());
  payload.fill(0);
  assertEquals(back.entries.map((e) => entryBytes(e)), before);
  assertEquals(back.entries, append.entries);
  // A frame that is not a Raft message (it may carry user data) gets byte strings of its own.
  const user = encode({ t: "forward", commands: [{ blob: new Uint8Array([1, 2, 3]) }] });
  const forwarded = decodeBondFrame(user) as { commands: { blob: Uint8Array }[] };
  const blob = forwarded.commands[0]!.blob;
  assert(blob.buffer !== user.buffer && blob.byteOffset === 0, "a copy with its own buffer");
  user.fill(0);
  assertEquals([...blob], [1, 2, 3]);
  // Not fooled by a "raft" that is not the first key.
  const other = decodeBondFrame(encode({ m: { b: new Uint8Array([9]) }, t: "raft" })) as {
    m: { b: Uint8Array };
  };
  assertEquals(other.m.b.byteOffset, 0);
});
