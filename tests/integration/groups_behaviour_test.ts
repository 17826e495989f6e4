// Group behaviour on both fabrics: group ids, bonds of overlapping groups, leadership hand-over, feeding, reads and concurrent writes.

import { test } from "../harness.ts";
import { assert, assertEquals, assertNotEquals } from "../assert.ts";
import { GroupKey } from "../../lib/groups/key.ts";
import { Consistency, type Group } from "../../lib/groups/types.ts";
import { LeadershipPreference } from "../../lib/machine/leadership.ts";
import type { Network } from "../../lib/network/network.ts";
import { Counter, type CounterCommand } from "../counter.ts";
import { InMemoryLogStore } from "../../storage/memory.ts";
import {
  agreedLeader,
  bondPeers,
  eventually,
  FAST,
  Nodes,
  votersSettle,
  withDeadline,
  within,
} from "../group_net.ts";

/** Same signature as {@link Counter}, but this node would rather not lead. */
class ReluctantCounter extends Counter {
  leadershipPreference(): LeadershipPreference {
    return LeadershipPreference.Reluctant(5);
  }
}

/** A counter under another signature. */
class CounterV2 extends Counter {
  override signature(): string {
    return "counter/v2";
  }
}

function joinCounter(
  net: Network,
  key: GroupKey,
  machine: Counter = new Counter(),
): Group<Counter> {
  return net.groups().withKey(key).withStateMachine(machine).withConsensusConfig(FAST).join();
}

/** Joins with a log store the test can read (to see the committed configuration). */
function joinStored(net: Network, key: GroupKey, machine: Counter = new Counter()) {
  const store = new InMemoryLogStore<CounterCommand>();
  const group = net.groups().withKey(key).withStateMachine(machine).withLogStorage(store)
    .withConsensusConfig(FAST).join();
  return { group, store, machine };
}

const hex = (n: Network) => n.local().id().toHex();

// The GroupId is derived from key, consensus parameters, machine and state-sync signatures
// only (lib/groups/group_id.ts); the transport takes no part, so the memory fabric suffices.
test(
  "group id (memory): equal inputs give equal ids on two nodes; key, machine or config change it; leadership preference does not",
  async () => {
    await using nodes = new Nodes("memory");
    const [a, b] = await nodes.addMany(2);
    const key = GroupKey.generate();
    const ga = joinCounter(a!, key);
    const gb = joinCounter(b!, key);
    assert(ga.id().equals(gb.id()), "same key, machine and config: same id on both nodes");
    assertEquals(ga.id().toHex(), gb.id().toHex());
    assertEquals(ga.config().groupId.toHex(), ga.id().toHex());

    const otherKey = b!.groups().withKey(GroupKey.generate()).withStateMachine(new Counter())
      .withConsensusConfig(FAST).join();
    assertNotEquals(otherKey.id().toHex(), ga.id().toHex(), "another key");

    const otherMachine = b!.groups().withKey(key).withStateMachine(new CounterV2())
      .withConsensusConfig(FAST).join();
    assertNotEquals(otherMachine.id().toHex(), ga.id().toHex(), "another machine signature");

    const slower = FAST.toBuilder().withElectionTimeout(FAST.electionTimeout + 1).build();
    const otherConfig = b!.groups().withKey(key).withStateMachine(new Counter())
      .withConsensusConfig(slower).join();
    assertNotEquals(otherConfig.id().toHex(), ga.id().toHex(), "another consensus config");
    const defaults = b!.groups().withKey(key).withStateMachine(new Counter()).join();
    assertNotEquals(defaults.id().toHex(), ga.id().toHex(), "default config instead of FAST");

    const reluctantMachine = joinCounter(b!, key, new ReluctantCounter());
    assertEquals(reluctantMachine.id().toHex(), ga.id().toHex(), "reluctant machine, same id");
    const reluctantConfig = b!.groups().withKey(key).withStateMachine(new Counter())
      .withConsensusConfig(FAST.deprioritizeLeadership()).join();
    assertEquals(reluctantConfig.id().toHex(), ga.id().toHex(), "deprioritized config, same id");

    const ids = new Set(
      [ga, otherKey, otherMachine, otherConfig, defaults].map((g) => g.id().toHex()),
    );
    assertEquals(ids.size, 5, "every variation is its own group");
  },
  { timeout: 10_000 },
);

for (const fabric of ["memory", "quic"] as const) {
  test(
    `bonds (${fabric}): four nodes in three overlapping groups bond exactly with co-members`,
    async () => {
      await using nodes = new Nodes(fabric);
      const net = await nodes.addMany(4);
      const members = [[0, 1], [0, 2, 3], [1, 2]];
      const joined: { group: Group<Counter>; node: number; members: number[] }[] = [];
      for (const m of members) {
        const key = GroupKey.generate();
        for (const node of m) {
          joined.push({ group: joinCounter(net[node]!, key), node, members: m });
        }
      }
      const expected = (j: (typeof joined)[number]) =>
        j.members.filter((n) => n !== j.node).map((n) => hex(net[n]!)).sort();
      await eventually(
        () => joined.every((j) => bondPeers(j.group).join() === expected(j).join()),
        "every handle bonded with exactly its co-members",
      );
      for (const j of joined) {
        assertEquals(bondPeers(j.group), expected(j), `node ${j.node} in group of ${j.members}`);
        assertEquals(j.group.bonds().size, j.members.length - 1);
        for (let n = 0; n < net.length; n++) {
          const inGroup = n !== j.node && j.members.includes(n);
          assertEquals(j.group.bonds().has(net[n]!.local().id()), inGroup);
        }
      }
      // Each group elects within itself and replicates only to its members.
      for (const m of members) {
        const gs = joined.filter((j) => j.members === m).map((j) => j.group);
        const leader = await agreedLeader(gs, `leader of group ${m}`);
        assert(m.some((n) => net[n]!.local().id().equals(leader)), "leader is a member");
      }
    },
    { timeout: 20_000 },
  );

  test(
    `leadership (${fabric}): a lone node leads, late joiners follow, its loss elects one agreed successor that newcomers follow`,
    async () => {
      await using nodes = new Nodes(fabric);
      const key = GroupKey.generate();
      const n0 = await nodes.add();
      const s0 = joinStored(n0, key);
      const g0 = s0.group;
      const first = await within(g0.when().leaderElected(), "lone node elects itself");
      assert(first.equals(n0.local().id()), "the lone node leads");
      await within(g0.when().isLeader(), "lone node has the leader role");

      const [n1, n2] = await nodes.addMany(2);
      const s1 = joinStored(n1!, key);
      const s2 = joinStored(n2!, key);
      const [g1, g2] = [s1.group, s2.group];
      const id0 = n0.local().id();
      await withDeadline("n1 follows n0", (o) => g1.when().leaderIs(id0, o));
      await withDeadline("n2 follows n0", (o) => g2.when().leaderIs(id0, o));
      await withDeadline("n1 is a follower", (o) => g1.when().isFollower(o));
      await withDeadline("n2 is a follower", (o) => g2.when().isFollower(o));
      assert(g0.isLeader() && !g1.isLeader() && !g2.isLeader());
      const before = await withDeadline("execute via n1", (o) => g1.execute({ add: 7 }, o));
      await withDeadline("n2 commits", (o) => g2.when().committed().reaches(before, o));
      // Newcomers join as learners; with voters {n0, n1} only, losing n0 leaves no quorum
      // (a known liveness gap, reported separately), so wait until all three vote.
      await votersSettle([s0, s1, s2], [n0, n1!, n2!].map((n) => n.local().id()), "three voters");

      const changed1 = withDeadline("n1 sees a new leader", (o) => g1.when().leaderChanged(o));
      const changed2 = withDeadline("n2 sees a new leader", (o) => g2.when().leaderChanged(o));
      await nodes.close(n0);
      const [l1, l2] = await Promise.all([changed1, changed2]);
      assert(!l1.equals(id0), "successor is not the closed node");
      const successor = await agreedLeader([g1, g2], "survivors agree on one leader", {
        excluded: id0,
      });
      assert(successor.equals(l1) || successor.equals(l2));
      assertEquals([g1, g2].filter((g) => g.isLeader()).length, 1, "exactly one survivor leads");

      const n3 = await nodes.add();
      const m3 = new Counter();
      const g3 = joinCounter(n3, key, m3);
      await withDeadline("newcomer follows the successor", (o) => g3.when().leaderIs(successor, o));
      const after = await withDeadline("execute via newcomer", (o) => g3.execute({ add: 1 }, o));
      assert(after > before);
      await eventually(() => m3.value === 8, "the newcomer applies the whole log");
    },
    { timeout: 20_000 },
  );

  test(
    `feed, execute and query (${fabric}): through a follower; strong reads are linearizable`,
    async () => {
      await using nodes = new Nodes(fabric);
      const key = GroupKey.generate();
      const a = await nodes.add();
      const ma = new Counter();
      const ga = joinCounter(a, key, ma);
      await within(ga.when().isLeader(), "a leads");
      const b = await nodes.add();
      const mb = new Counter();
      const gb = joinCounter(b, key, mb);
      await within(gb.when().leaderIs(a.local().id()), "b follows a");
      await within(gb.when().online(), "b online");

      const i1 = await within(gb.feed({ add: 1 }), "feed 1");
      const i2 = await within(gb.feed({ add: 2 }), "feed 2");
      assert(i1 > 0 && i2 > i1, `feed indices increase: ${i1}, ${i2}`);
      const range = await within(gb.feedMany([{ add: 3 }, { add: 4 }, { add: 5 }]), "feedMany");
      assertEquals(range.end - range.start + 1, 3, "feedMany range is contiguous");
      assert(range.start > i2, `feedMany after feed: ${range.start} > ${i2}`);
      const i3 = await within(gb.execute({ add: 10 }), "execute via follower");
      assert(i3 > range.end, `execute after feedMany: ${i3} > ${range.end}`);
      const many = await within(gb.executeMany([{ add: 20 }, { add: 30 }]), "executeMany");
      assertEquals(many.end - many.start + 1, 2);
      assert(many.start > i3);
      await ga.when().committed().reaches(many, { signal: AbortSignal.timeout(10_000) });
      await gb.when().committed().reaches(many, { signal: AbortSignal.timeout(10_000) });

      const total = 1 + 2 + 3 + 4 + 5 + 10 + 20 + 30;
      await eventually(() => ma.value === total && mb.value === total, "both nodes applied all");
      assertEquals(ma.applied, 8);
      assertEquals(mb.applied, 8);
      for (const g of [ga, gb]) {
        assertEquals((await g.query(null, Consistency.Weak)).result, total);
        const strong = await within(g.query(null, Consistency.Strong), "strong query");
        assertEquals(strong.result, total);
        assert(strong.atPosition.index >= many.end, "strong read reflects the last commit");
      }

      // A write acknowledged by the leader is seen at once by a strong read through the follower.
      let expected = total;
      for (let k = 1; k <= 5; k++) {
        const at = await within(ga.execute({ add: 100 * k }), `leader write ${k}`);
        expected += 100 * k;
        const r = await within(gb.query(null, Consistency.Strong), `follower strong read ${k}`);
        assertEquals(r.result, expected, `strong read ${k} through the follower is linearizable`);
        assert(r.atPosition.index >= at, `read position ${r.atPosition.index} >= write ${at}`);
      }
    },
    { timeout: 20_000 },
  );

  test(
    `concurrent executes (${fabric}): ten from two nodes commit at distinct indices`,
    async () => {
      await using nodes = new Nodes(fabric);
      const key = GroupKey.generate();
      const a = await nodes.add();
      const ma = new Counter();
      const ga = joinCounter(a, key, ma);
      await within(ga.when().isLeader(), "a leads");
      const b = await nodes.add();
      const mb = new Counter();
      const gb = joinCounter(b, key, mb);
      await within(gb.when().leaderIs(a.local().id()), "b follows a");

      const adds = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
      const indices = await within(
        Promise.all(adds.map((add, k) => (k % 2 === 0 ? ga : gb).execute({ add }))),
        "ten concurrent executes",
      );
      assertEquals(new Set(indices).size, adds.length, `distinct indices: ${indices}`);
      const sum = adds.reduce((x, y) => x + y, 0);
      await eventually(() => ma.value === sum && mb.value === sum, "both applied the sum");
      assertEquals(ma.applied, adds.length);
      assertEquals(mb.applied, adds.length);
      const highest = Math.max(...indices);
      assert(ga.committed() >= highest && gb.committed() >= highest);
      assertEquals((await within(gb.query(null, Consistency.Strong), "strong read")).result, sum);
    },
    { timeout: 20_000 },
  );
}
