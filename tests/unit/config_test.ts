// Tests for ConsensusConfig: defaults, digest, leadership multiplier, validation.

import { blake3 } from "@noble/hashes/blake3.js";
import { test } from "../harness.ts";
import { assert, assertEquals, assertNotEquals, assertThrows } from "../assert.ts";
import {
  CONSENSUS_DEFAULTS,
  ConsensusConfig,
  type ConsensusConfigBuilder,
  DEFAULT_DEAD_MEMBER_TIMEOUT,
  MAX_DURATION_MS,
} from "../../lib/groups/config.ts";
import { concatBytes, utf8 } from "../../lib/primitives/bytes.ts";

const SEED_TABLE = {
  heartbeatInterval: 500,
  heartbeatJitter: 150,
  maxMissedHeartbeats: 10,
  electionTimeout: 2000,
  electionTimeoutJitter: 500,
  bootstrapDelay: 3000,
  forwardTimeout: 2000,
  queryTimeout: 2000,
};

type Setter = (b: ConsensusConfigBuilder, v: number) => ConsensusConfigBuilder;
const SETTERS: Record<keyof typeof SEED_TABLE, Setter> = {
  heartbeatInterval: (b, v) => b.withHeartbeatInterval(v),
  heartbeatJitter: (b, v) => b.withHeartbeatJitter(v),
  maxMissedHeartbeats: (b, v) => b.withMaxMissedHeartbeats(v),
  electionTimeout: (b, v) => b.withElectionTimeout(v),
  electionTimeoutJitter: (b, v) => b.withElectionTimeoutJitter(v),
  bootstrapDelay: (b, v) => b.withBootstrapDelay(v),
  forwardTimeout: (b, v) => b.withForwardTimeout(v),
  queryTimeout: (b, v) => b.withQueryTimeout(v),
};
const NAMES = Object.keys(SEED_TABLE) as (keyof typeof SEED_TABLE)[];

test("defaults are the seed's table", () => {
  const c = ConsensusConfig.default();
  assertEquals(c.parameters(), SEED_TABLE);
  assertEquals({ ...CONSENSUS_DEFAULTS }, SEED_TABLE);
  assertEquals(ConsensusConfig.builder().build().parameters(), SEED_TABLE);
  assertEquals(c.leadershipMultiplier, 1);
  assertEquals(c.deadMemberTimeout, DEFAULT_DEAD_MEMBER_TIMEOUT);
  assertEquals(c.effectiveElectionTimeout(), 2000);
  assertEquals(c.effectiveBootstrapDelay(), 3000);
  assertEquals(c.bondTimeout(), 5000);
});

test("builder sets every parameter", () => {
  let b = ConsensusConfig.builder();
  const values: Record<string, number> = {};
  NAMES.forEach((name, i) => {
    // values that satisfy the cross-parameter rules
    const v = name === "heartbeatInterval" ? 400 : name === "heartbeatJitter" ? 10 + i : 3000 + i;
    values[name] = name === "maxMissedHeartbeats" ? 7 : v;
    b = SETTERS[name](b, values[name]!);
  });
  assertEquals(b.build().parameters(), values as unknown as typeof SEED_TABLE);
});

test("digest is blake3 over a domain tag and the eight parameters as big-endian u64", () => {
  const c = ConsensusConfig.builder().withElectionTimeout(2222).build();
  const buf = new Uint8Array(64);
  const view = new DataView(buf.buffer);
  NAMES.forEach((name, i) => view.setBigUint64(i * 8, BigInt(c[name])));
  const expected = blake3(concatBytes(utf8("mosaik/consensus-config/v1"), buf));
  assertEquals(c.digest().toBytes(), expected);
  assertEquals(
    c.digest().toHex(),
    ConsensusConfig.builder().withElectionTimeout(2222).build().digest().toHex(),
  );
});

test("every one of the eight parameters changes the digest", () => {
  const base = ConsensusConfig.default().digest().toHex();
  const seen = new Set<string>([base]);
  for (const name of NAMES) {
    const changed = name === "heartbeatJitter" ? 149 : SEED_TABLE[name] + 1;
    const d = SETTERS[name](ConsensusConfig.builder(), changed).build().digest().toHex();
    assertNotEquals(d, base, `${name} does not change the digest`);
    seen.add(d);
  }
  assertEquals(seen.size, NAMES.length + 1, "two parameters produced the same digest");
});

test("local settings do not change the digest", () => {
  const base = ConsensusConfig.default().digest().toHex();
  assertEquals(ConsensusConfig.default().deprioritizeLeadership().digest().toHex(), base);
  assertEquals(ConsensusConfig.default().deprioritizeLeadershipBy(7).digest().toHex(), base);
  assertEquals(
    ConsensusConfig.builder().withDeadMemberTimeout(99_000).build().digest().toHex(),
    base,
  );
});

test("deprioritizeLeadership scales election timeout and bootstrap delay on this node", () => {
  const c = ConsensusConfig.default();
  const r = c.deprioritizeLeadership();
  assertEquals(r.leadershipMultiplier, 3);
  assertEquals(r.effectiveElectionTimeout(), 6000);
  assertEquals(r.effectiveBootstrapDelay(), 9000);
  assertEquals(r.electionTimeout, 2000, "the shared parameter itself is unchanged");
  assertEquals(c.leadershipMultiplier, 1, "the original is not modified");
  const five = c.deprioritizeLeadershipBy(5);
  assertEquals(five.effectiveElectionTimeout(), 10_000);
  assertEquals(five.effectiveBootstrapDelay(), 15_000);
  assertEquals(five.deprioritizeLeadershipBy(1).effectiveElectionTimeout(), 2000);
  assertEquals(ConsensusConfig.builder().deprioritizeLeadership().build().leadershipMultiplier, 3);
  assertEquals(
    ConsensusConfig.builder().deprioritizeLeadershipBy(4).build().effectiveBootstrapDelay(),
    12_000,
  );
  for (const bad of [0, -1, 1.5, NaN, Infinity]) {
    assertThrows(() => c.deprioritizeLeadershipBy(bad), RangeError, "leadershipMultiplier");
  }
  assertThrows(
    () => c.deprioritizeLeadershipBy("3" as unknown as number),
    TypeError,
    "leadershipMultiplier",
  );
  assertThrows(
    () => ConsensusConfig.builder().deprioritizeLeadershipBy(0).build(),
    RangeError,
    "leadershipMultiplier",
  );
  assertThrows(() => c.deprioritizeLeadershipBy(2 ** 30), RangeError, "leadershipMultiplier");
});

test("build rejects each invalid value with an error naming the parameter", () => {
  const cases: [
    string,
    (b: ConsensusConfigBuilder) => ConsensusConfigBuilder,
    typeof RangeError,
  ][] = [];
  for (const name of NAMES) {
    cases.push([name, (b) => SETTERS[name](b, 1.5), RangeError]);
    cases.push([name, (b) => SETTERS[name](b, -1), RangeError]);
    cases.push([name, (b) => SETTERS[name](b, NaN), RangeError]);
    cases.push([name, (b) => SETTERS[name](b, Infinity), RangeError]);
    cases.push([name, (b) => SETTERS[name](b, "500" as unknown as number), TypeError]);
    cases.push([name, (b) => SETTERS[name](b, undefined as unknown as number), TypeError]);
    cases.push([name, (b) => SETTERS[name](b, MAX_DURATION_MS + 1), RangeError]);
  }
  for (
    const name of [
      "heartbeatInterval",
      "electionTimeout",
      "forwardTimeout",
      "queryTimeout",
    ] as const
  ) {
    cases.push([name, (b) => SETTERS[name](b, 0), RangeError]);
  }
  cases.push(["maxMissedHeartbeats", (b) => b.withMaxMissedHeartbeats(0), RangeError]);
  cases.push(["heartbeatJitter", (b) => b.withHeartbeatJitter(500), RangeError]);
  cases.push(["heartbeatJitter", (b) => b.withHeartbeatJitter(600), RangeError]);
  cases.push(["electionTimeout", (b) => b.withElectionTimeout(500), RangeError]);
  cases.push(["electionTimeout", (b) => b.withElectionTimeout(400), RangeError]);
  cases.push(["deadMemberTimeout", (b) => b.withDeadMemberTimeout(2000), RangeError]);
  cases.push(["deadMemberTimeout", (b) => b.withDeadMemberTimeout(0), RangeError]);
  cases.push(["leadershipMultiplier", (b) => b.deprioritizeLeadershipBy(0.5), RangeError]);
  cases.push(["maxMissedHeartbeats", (b) => b.withMaxMissedHeartbeats(2 ** 30), RangeError]);
  for (const [name, set, cls] of cases) {
    let err: Error;
    try {
      err = assertThrows(() => set(ConsensusConfig.builder()).build(), cls, name);
    } catch (e) {
      throw new Error(`case ${name} via ${set.toString()}: ${(e as Error).message}`);
    }
    assert(!err.message.endsWith("."), `message ends with a period: ${err.message}`);
  }
});

test("build accepts the edges: zero jitters and zero bootstrap delay", () => {
  const c = ConsensusConfig.builder()
    .withHeartbeatJitter(0)
    .withElectionTimeoutJitter(0)
    .withBootstrapDelay(0)
    .withHeartbeatInterval(1)
    .withElectionTimeout(2)
    .withMaxMissedHeartbeats(1)
    .build();
  assertEquals(c.bootstrapDelay, 0);
  assertEquals(c.electionTimeout, 2);
});

test("configs are immutable and toBuilder round-trips", () => {
  const c = ConsensusConfig.builder().withQueryTimeout(1234).build().deprioritizeLeadershipBy(2);
  assert(Object.isFrozen(c));
  assertThrows(() => {
    (c as { queryTimeout: number }).queryTimeout = 1;
  }, TypeError);
  const again = c.toBuilder().build();
  assertEquals(again.parameters(), c.parameters());
  assertEquals(again.leadershipMultiplier, 2);
  const b = c.toBuilder().withQueryTimeout(99);
  assertEquals(c.queryTimeout, 1234, "toBuilder does not share state with the config");
  assertEquals(b.build().queryTimeout, 99);
});
