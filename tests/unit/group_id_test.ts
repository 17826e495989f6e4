// Tests for GroupId derivation: key → consensus digest → machine signature → state-sync signature.

import { blake3 } from "@noble/hashes/blake3.js";
import { test } from "../harness.ts";
import { assert, assertEquals, assertThrows } from "../assert.ts";
import { ConsensusConfig } from "../../lib/groups/config.ts";
import { deriveGroupId } from "../../lib/groups/group_id.ts";
import { GroupKey } from "../../lib/groups/key.ts";
import { LogReplaySync } from "../../lib/machine/log_replay.ts";
import { NoOp } from "../../lib/machine/noop.ts";
import { concatBytes, utf8 } from "../../lib/primitives/bytes.ts";
import { GroupId } from "../../lib/primitives/ids.ts";

const named = (s: string) => ({ signature: () => s });

test("GroupId follows the documented chain of blake3 derivations", () => {
  const key = GroupKey.fromSecret("k");
  const config = ConsensusConfig.default();
  const id = deriveGroupId(key, config, named("counter/v1"), named("sync/v1"));
  let h = blake3(key.toBytes());
  h = blake3(concatBytes(h, config.digest().toBytes()));
  h = blake3(concatBytes(h, utf8("counter/v1")));
  h = blake3(concatBytes(h, utf8("sync/v1")));
  assertEquals(id.toBytes(), h);
  assert(id instanceof GroupId);
});

test("same key, machine and config on two nodes give the same id", () => {
  const hex = GroupKey.generate().toHex();
  const a = deriveGroupId(
    GroupKey.parse(hex),
    ConsensusConfig.default(),
    new NoOp(),
    new LogReplaySync(),
  );
  const b = deriveGroupId(
    GroupKey.parse(hex),
    ConsensusConfig.builder().build(),
    new NoOp(),
    new LogReplaySync({ batchSize: 10, fetchTimeout: 5 }),
  );
  assert(a.equals(b));
});

test("a different key, config, machine or state sync gives a different id", () => {
  const key = GroupKey.fromSecret("k");
  const config = ConsensusConfig.default();
  const base = deriveGroupId(key, config, named("m/v1"), named("s/v1"));
  const variants = [
    deriveGroupId(GroupKey.fromSecret("k2"), config, named("m/v1"), named("s/v1")),
    deriveGroupId(
      key,
      ConsensusConfig.builder().withQueryTimeout(2001).build(),
      named("m/v1"),
      named("s/v1"),
    ),
    deriveGroupId(key, config, named("m/v2"), named("s/v1")),
    deriveGroupId(key, config, named("m/v1"), named("s/v2")),
  ];
  const all = new Set([base, ...variants].map((g) => g.toHex()));
  assertEquals(all.size, 5);
});

test("deprioritizeLeadership keeps the id", () => {
  const key = GroupKey.generate();
  const a = deriveGroupId(key, ConsensusConfig.default(), new NoOp(), new LogReplaySync());
  const b = deriveGroupId(
    key,
    ConsensusConfig.default().deprioritizeLeadership(),
    new NoOp(),
    new LogReplaySync(),
  );
  const c = deriveGroupId(
    key,
    ConsensusConfig.default().deprioritizeLeadershipBy(9),
    new NoOp(),
    new LogReplaySync(),
  );
  assert(a.equals(b) && a.equals(c));
});

test("signatures must be non-empty strings", () => {
  const key = GroupKey.generate();
  const c = ConsensusConfig.default();
  assertThrows(
    () => deriveGroupId(key, c, named(""), named("s")),
    RangeError,
    "state machine signature",
  );
  assertThrows(
    () => deriveGroupId(key, c, named("m"), named("")),
    RangeError,
    "state sync signature",
  );
  assertThrows(
    () => deriveGroupId(key, c, { signature: () => 5 as unknown as string }, named("s")),
    TypeError,
    "state machine signature",
  );
});
