// Tests for the GroupBuilder at runtime: the definition each join variant builds, ids, validation.

import { test } from "../harness.ts";
import { assert, assertEquals, assertNotEquals, assertThrows } from "../assert.ts";
import { GroupBuilder, type GroupDefinition, type JoinGroup } from "../../lib/groups/builder.ts";
import { ConsensusConfig } from "../../lib/groups/config.ts";
import { GroupTerminatedError } from "../../lib/groups/errors.ts";
import { deriveGroupId } from "../../lib/groups/group_id.ts";
import { GroupKey } from "../../lib/groups/key.ts";
import type {
  Bonds,
  Consistency,
  Group,
  GroupConfig,
  GroupMetrics,
  GroupStatus,
  QueryResult,
} from "../../lib/groups/types.ts";
import { Watch } from "../../lib/groups/watch.ts";
import { LatencyHistogram } from "../../lib/metrics/histogram.ts";
import { groupStatusEquals, When } from "../../lib/groups/when.ts";
import { LogReplaySync } from "../../lib/machine/log_replay.ts";
import { NoOp } from "../../lib/machine/noop.ts";
import type {
  AnyStateMachine,
  ApplyContext,
  CommandOf,
  QueryOf,
  ResultOf,
  StateMachine,
  StateSync,
} from "../../lib/machine/state_machine.ts";
import { Cursor, type Index, type IndexRange } from "../../lib/primitives/cursor.ts";
import type { GroupId, PeerId } from "../../lib/primitives/ids.ts";
import { PeerId as PeerIdClass } from "../../lib/primitives/ids.ts";
import { InMemoryLogStore } from "../../storage/memory.ts";

type Add = { add: number };

class Counter implements StateMachine<Add, null, number> {
  value = 0;
  signature(): string {
    return "counter/v1";
  }
  apply(command: Add, _ctx: ApplyContext): void {
    this.value += command.add;
  }
  query(_query: null): number {
    return this.value;
  }
}

class Snapshotting extends Counter {
  stateSync(): StateSync {
    return { signature: () => "snapshot/v1" };
  }
}

/**
 * A Group<M> that records its definition and does nothing else; proves the
 * interface can be implemented by a handle built from a definition.
 */
class StubGroup<M extends AnyStateMachine> implements Group<M> {
  readonly definition: GroupDefinition<M>;
  readonly #status: Watch<GroupStatus>;

  constructor(definition: GroupDefinition<M>) {
    this.definition = definition;
    this.#status = new Watch<GroupStatus>({
      leader: undefined,
      self: PeerIdClass.random(),
      role: "follower",
      online: false,
      committed: 0,
      logPosition: Cursor.ZERO,
      term: 0,
    }, { equals: groupStatusEquals });
  }

  id(): GroupId {
    return this.definition.groupId;
  }
  leader(): PeerId | undefined {
    return this.#status.get().leader;
  }
  isLeader(): boolean {
    return this.#status.get().role === "leader";
  }
  committed(): Index {
    return this.#status.get().committed;
  }
  logPosition(): Cursor {
    return this.#status.get().logPosition;
  }
  bonds(): Bonds {
    return { size: 0, has: () => false, [Symbol.iterator]: () => [][Symbol.iterator]() };
  }
  metrics(): GroupMetrics {
    const s = this.#status.get();
    return {
      groupId: this.definition.groupId,
      self: s.self,
      role: s.role,
      term: s.term,
      leader: s.leader,
      committed: s.committed,
      applied: 0,
      lastLogIndex: s.logPosition.index,
      voters: [],
      learners: [],
      bonds: [],
      electionsStarted: 0,
      electionsWon: 0,
      leaderChanges: 0,
      proposals: 0,
      proposalsFailed: 0,
      forwarded: 0,
      forwardsServed: 0,
      mergesLost: 0,
      commitLatency: LatencyHistogram.empty(),
    };
  }
  config(): GroupConfig {
    return {
      groupId: this.definition.groupId,
      key: this.definition.key.toString(),
      consensus: this.definition.consensus,
    };
  }
  when(): When {
    return new When(this.#status);
  }
  execute(_command: CommandOf<M>): Promise<Index> {
    return Promise.reject(new GroupTerminatedError("execute command"));
  }
  executeMany(_commands: readonly CommandOf<M>[]): Promise<IndexRange> {
    return Promise.reject(new GroupTerminatedError("execute commands"));
  }
  feed(_command: CommandOf<M>): Promise<Index> {
    return Promise.reject(new GroupTerminatedError("feed command"));
  }
  feedMany(_commands: readonly CommandOf<M>[]): Promise<IndexRange> {
    return Promise.reject(new GroupTerminatedError("feed commands"));
  }
  query(_query: QueryOf<M>, _consistency: Consistency): Promise<QueryResult<ResultOf<M>>> {
    return Promise.reject(new GroupTerminatedError("run query"));
  }
  leave(): Promise<void> {
    return this.close();
  }
  close(): Promise<void> {
    this.#status.close(new GroupTerminatedError());
    return Promise.resolve();
  }
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/** A builder whose join records every definition and returns a stub handle. */
function groups(): { groups: GroupBuilder; joined: GroupDefinition<AnyStateMachine>[] } {
  const joined: GroupDefinition<AnyStateMachine>[] = [];
  const join: JoinGroup = (definition) => {
    joined.push(definition);
    return new StubGroup(definition);
  };
  return { groups: new GroupBuilder(join), joined };
}

function definitionOf<M extends AnyStateMachine>(group: Group<M>): GroupDefinition<M> {
  assert(group instanceof StubGroup);
  return (group as StubGroup<M>).definition;
}

test("withKey(key).join() joins a NoOp group with InMemoryLogStore and the default config", () => {
  const { groups: g, joined } = groups();
  const key = GroupKey.generate();
  const group = g.withKey(key).join();
  assertEquals(joined.length, 1, "join() calls the registry exactly once, synchronously");
  const def = definitionOf(group);
  assert(def.machine instanceof NoOp);
  assert(def.storage instanceof InMemoryLogStore);
  assertEquals(def.consensus.parameters(), ConsensusConfig.default().parameters());
  assert(def.stateSync instanceof LogReplaySync);
  assert(def.key === key);
  assert(
    def.groupId.equals(
      deriveGroupId(key, ConsensusConfig.default(), new NoOp(), new LogReplaySync()),
    ),
  );
  assert(Object.isFrozen(def));
});

test("withStateMachine(m).join() uses that machine and a fresh InMemoryLogStore per join", () => {
  const { groups: g } = groups();
  const keyed = g.withKey(GroupKey.fromSecret("k"));
  const machine = new Counter();
  const a = definitionOf(keyed.withStateMachine(machine).join());
  const b = definitionOf(keyed.withStateMachine(machine).join());
  assert(a.machine === machine);
  assert(a.storage instanceof InMemoryLogStore);
  assert(a.storage !== b.storage, "stores are never shared between joins");
  assert(a.groupId.equals(b.groupId));
});

test("withConsensusConfig(c) is used, and is part of the GroupId", () => {
  const { groups: g } = groups();
  const keyed = g.withKey(GroupKey.fromSecret("k"));
  const c = ConsensusConfig.builder().withElectionTimeout(3000).build();
  const plain = definitionOf(keyed.withStateMachine(new Counter()).join());
  const custom = definitionOf(keyed.withStateMachine(new Counter()).withConsensusConfig(c).join());
  assert(custom.consensus === c);
  assert(!custom.groupId.equals(plain.groupId));
});

test("withLogStorage(s) is used, with or without a consensus config, and keeps the GroupId", () => {
  const { groups: g } = groups();
  const keyed = g.withKey(GroupKey.fromSecret("k"));
  const store = new InMemoryLogStore<Add>();
  const c = ConsensusConfig.builder().withQueryTimeout(500).build();
  const stored = definitionOf(keyed.withStateMachine(new Counter()).withLogStorage(store).join());
  const both = definitionOf(
    keyed.withStateMachine(new Counter()).withLogStorage(store).withConsensusConfig(c).join(),
  );
  const plain = definitionOf(keyed.withStateMachine(new Counter()).join());
  assert(stored.storage === store);
  assert(both.storage === store && both.consensus === c);
  assert(stored.groupId.equals(plain.groupId), "storage does not change the id");
  assert(!both.groupId.equals(plain.groupId));
});

test("a consensus config set before the storage is kept, and a later one replaces it", () => {
  const { groups: g } = groups();
  const c1 = ConsensusConfig.builder().withForwardTimeout(1000).build();
  const c2 = ConsensusConfig.builder().withForwardTimeout(3000).build();
  const m = g.withKey(GroupKey.fromSecret("k")).withStateMachine(new Counter());
  const kept = definitionOf(
    m.withConsensusConfig(c1).withLogStorage(new InMemoryLogStore()).join(),
  );
  assert(kept.consensus === c1);
  const replaced = definitionOf(m.withConsensusConfig(c1).withConsensusConfig(c2).join());
  assert(replaced.consensus === c2);
});

test("builders are immutable: a stage can be reused as a template", () => {
  const { groups: g } = groups();
  const base = g.withKey(GroupKey.fromSecret("k")).withStateMachine(new Counter());
  const c = ConsensusConfig.builder().withHeartbeatInterval(400).build();
  base.withConsensusConfig(c);
  const def = definitionOf(base.join());
  assertEquals(def.consensus.parameters(), ConsensusConfig.default().parameters());
});

test("same key, machine and config give the same id; a different key or machine does not", () => {
  const { groups: g } = groups();
  const hex = GroupKey.generate().toHex();
  const a = g.withKey(GroupKey.parse(hex)).withStateMachine(new Counter()).join().id();
  const b = g.withKey(GroupKey.parse(hex)).withStateMachine(new Counter()).join().id();
  const otherKey = g.withKey(GroupKey.generate()).withStateMachine(new Counter()).join().id();
  const noop = g.withKey(GroupKey.parse(hex)).join().id();
  assert(a.equals(b));
  assertNotEquals(a.toHex(), otherKey.toHex());
  assertNotEquals(a.toHex(), noop.toHex());
});

test("deprioritizeLeadership keeps the GroupId", () => {
  const { groups: g } = groups();
  const m = g.withKey(GroupKey.fromSecret("k")).withStateMachine(new Counter());
  const normal = m.withConsensusConfig(ConsensusConfig.default()).join();
  const reluctant = m.withConsensusConfig(ConsensusConfig.default().deprioritizeLeadership())
    .join();
  const by5 = m.withConsensusConfig(ConsensusConfig.default().deprioritizeLeadershipBy(5)).join();
  assert(normal.id().equals(reluctant.id()));
  assert(normal.id().equals(by5.id()));
  assertEquals(definitionOf(reluctant).consensus.leadershipMultiplier, 3);
});

test("the machine's stateSync() is used and is part of the GroupId", () => {
  const { groups: g } = groups();
  const keyed = g.withKey(GroupKey.fromSecret("k"));
  const snap = definitionOf(keyed.withStateMachine(new Snapshotting()).join());
  const replay = definitionOf(keyed.withStateMachine(new Counter()).join());
  assertEquals(snap.stateSync.signature(), "snapshot/v1");
  assert(!snap.groupId.equals(replay.groupId));
});

test("the handle's config shows the key redacted", () => {
  const { groups: g } = groups();
  const key = GroupKey.generate();
  const config = g.withKey(key).join().config();
  assert(!config.key.includes(key.toHex()));
  assert(config.key.includes("redacted"));
  assert(!JSON.stringify(config).includes(key.toHex()));
});

test("runtime validation rejects what a JavaScript caller could pass", () => {
  const { groups: g, joined } = groups();
  const keyed = g.withKey(GroupKey.generate());
  const machine = keyed.withStateMachine(new Counter());
  const bad = <T>(x: unknown) => x as T;

  assertThrows(() => new GroupBuilder(bad<JoinGroup>(undefined)), TypeError, "join");
  assertThrows(() => g.withKey(bad<GroupKey>("secret")), TypeError, "key must be a GroupKey");
  assertThrows(() => g.withKey(bad<GroupKey>(new Uint8Array(32))), TypeError, "GroupKey");

  assertThrows(() => keyed.withStateMachine(bad<Counter>(null)), TypeError, "state machine");
  assertThrows(
    () => keyed.withStateMachine(bad<Counter>({ signature: () => "x", apply() {} })),
    TypeError,
    "query()",
  );
  assertThrows(
    () => keyed.withStateMachine(bad<Counter>({ apply() {}, query() {} })),
    TypeError,
    "signature()",
  );
  assertThrows(
    () =>
      keyed.withStateMachine(
        bad<Counter>({ signature: () => "x", apply() {}, query() {}, stateSync: 1 }),
      ),
    TypeError,
    "stateSync",
  );

  assertThrows(
    () => machine.withLogStorage(bad<InMemoryLogStore<Add>>({ append() {}, get() {} })),
    TypeError,
    "available()",
  );
  assertThrows(
    () => machine.withLogStorage(bad<InMemoryLogStore<Add>>(42)),
    TypeError,
    "log storage",
  );

  assertThrows(
    () => machine.withConsensusConfig(bad<ConsensusConfig>(ConsensusConfig.default().parameters())),
    TypeError,
    "ConsensusConfig",
  );
  assertThrows(
    () =>
      machine.withLogStorage(new InMemoryLogStore()).withConsensusConfig(bad<ConsensusConfig>({})),
    TypeError,
    "ConsensusConfig",
  );

  assertThrows(
    () =>
      keyed.withStateMachine(
        bad<Counter>({ signature: () => "x", apply() {}, query() {}, stateSync: () => ({}) }),
      ).join(),
    TypeError,
    "stateSync()",
  );
  assertThrows(
    () =>
      keyed.withStateMachine(bad<Counter>({ signature: () => "", apply() {}, query() {} })).join(),
    RangeError,
    "signature",
  );
  assertEquals(joined.length, 0, "nothing invalid reaches the registry");
});

test("a stub handle built from a definition closes its When with GroupTerminatedError", async () => {
  const { groups: g } = groups();
  await using group = g.withKey(GroupKey.generate()).join();
  const waiting = group.when().leaderElected();
  await group.leave();
  let caught: unknown;
  try {
    await waiting;
  } catch (err) {
    caught = err;
  }
  assert(caught instanceof GroupTerminatedError);
});
