// Raft messages on the wire: appends round-trip with their entries as bytes, and malformed fields are refused.

import { test } from "../harness.ts";
import { assert, assertEquals } from "../assert.ts";
import { raftFromWire, raftToWire } from "../../lib/groups/raft_wire.ts";
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
