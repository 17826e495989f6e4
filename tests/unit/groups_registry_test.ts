// Groups registry and Group handles over an in-process host: join variants, idempotent joins, lifecycle, errors.

import { test } from "../harness.ts";
import { Counter, type CounterCommand } from "../counter.ts";
import { assert, assertEquals, assertRejects } from "../assert.ts";
import {
  type AttachedLink,
  type GroupHost,
  Groups,
  type GroupSink,
} from "../../lib/groups/groups.ts";
import type { GroupMessage } from "../../lib/groups/driver.ts";
import { ConsensusConfig } from "../../lib/groups/config.ts";
import { GroupTerminatedError, NoCommandsError } from "../../lib/groups/errors.ts";
import { GroupKey } from "../../lib/groups/key.ts";
import { Consistency, type Group } from "../../lib/groups/types.ts";
import { type GroupId, PeerId } from "../../lib/primitives/ids.ts";
import { SeededRng } from "../../lib/primitives/rng.ts";
import { InMemoryLogStore } from "../../storage/memory.ts";

type Cmd = CounterCommand;

const CONFIG = ConsensusConfig.builder()
  .withHeartbeatInterval(20)
  .withHeartbeatJitter(5)
  .withElectionTimeout(100)
  .withElectionTimeoutJitter(50)
  .withBootstrapDelay(60)
  .withForwardTimeout(600)
  .withQueryTimeout(600)
  .build();

/** Nodes whose Groups registries talk through an in-process fabric, per group id. */
class Fabric {
  readonly sinks = new Map<string, Map<string, GroupSink>>(); // group → node → sink

  host(seed: number): GroupHost {
    const self = new PeerId(new SeededRng(seed).bytes(32));
    const me = self.toHex();
    return {
      self,
      attach: (definition: { groupId: GroupId }, sink: GroupSink): AttachedLink => {
        const g = definition.groupId.toHex();
        const members = this.sinks.get(g) ?? new Map<string, GroupSink>();
        this.sinks.set(g, members);
        const others = () => [...members.keys()].filter((p) => p !== me);
        for (const [peer, s] of members) {
          queueMicrotask(() => {
            s.onPeerUp(me);
            sink.onPeerUp(peer);
          });
        }
        members.set(me, sink);
        return {
          send: (peer: string, m: GroupMessage) => {
            const target = members.get(peer);
            if (target === undefined || !members.has(me)) return false;
            queueMicrotask(() => members.get(peer)?.onMessage(me, m));
            return true;
          },
          bonded: others,
          bonds: () => {
            const ids = others().map((h) => PeerId.parse(h));
            return {
              size: ids.length,
              has: (p: PeerId) => ids.some((i) => i.equals(p)),
              [Symbol.iterator]: () => ids.map((peerId) => ({ peerId, id: peerId })).values(),
            };
          },
          bondMetrics: () => [],
          detach: () => {
            members.delete(me);
            for (const s of members.values()) s.onPeerDown(me);
            return Promise.resolve();
          },
        };
      },
    };
  }
}

async function eventually(cond: () => boolean, ms = 5000, what = "condition"): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`${what} not reached within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

test("registry: every join variant gives a working group; ids agree across nodes", async () => {
  const fabric = new Fabric();
  const a = new Groups(fabric.host(1));
  const b = new Groups(fabric.host(2));
  const key = GroupKey.generate();
  const groups: Group<Counter>[] = [];
  try {
    const ga = a.withKey(key).withStateMachine(new Counter()).withConsensusConfig(CONFIG).join();
    const gb = b.withKey(key).withStateMachine(new Counter()).withLogStorage(
      new InMemoryLogStore<Cmd>(),
    )
      .withConsensusConfig(CONFIG).join();
    groups.push(ga, gb);
    assert(ga.id().equals(gb.id()), "same key, machine and config → same id");
    assertEquals(ga.config().key, key.toString());
    assert(!ga.config().key.includes(key.toHex()), "config() never shows the secret");
    await ga.when().leaderElected();
    await eventually(
      () => ga.bonds().size === 1 && gb.leader() !== undefined,
      5000,
      "bonded and led",
    );
    const index = await gb.execute({ add: 5 });
    assert(index > 0);
    assertEquals((await ga.query(null, Consistency.Strong)).result, 5);
    assertEquals((await gb.query(null, Consistency.Strong)).result, 5);
    const range = await ga.executeMany([{ add: 1 }, { add: 1 }]);
    assertEquals(range.end - range.start, 1);
    await ga.when().committed().reaches(range);
  } finally {
    for (const g of groups) await g.close();
    await a.close();
    await b.close();
  }
}, { timeout: 20_000 });

test("registry: a NoOp group elects a leader", async () => {
  const fabric = new Fabric();
  const a = new Groups(fabric.host(3));
  try {
    const g = a.withKey(GroupKey.generate()).join();
    const leader = await g.when().leaderElected();
    assert(leader.equals(fabric.host(3).self));
    assert(g.isLeader());
    await g.close();
  } finally {
    await a.close();
  }
}, { timeout: 20_000 });

test(
  "registry: joining an id twice returns a handle to the same group; the last close stops it",
  async () => {
    const fabric = new Fabric();
    const a = new Groups(fabric.host(4));
    try {
      const key = GroupKey.generate();
      const first = new Counter();
      const second = new Counter();
      const g1 = a.withKey(key).withStateMachine(first).withConsensusConfig(CONFIG).join();
      const g2 = a.withKey(key).withStateMachine(second).withConsensusConfig(CONFIG).join();
      assert(g1.id().equals(g2.id()));
      assertEquals(a.active().length, 1, "no second worker");
      await g1.when().isLeader();
      await g2.execute({ add: 2 });
      assertEquals(first.value, 2);
      assertEquals(second.applied, 0, "the later machine is not used");
      await g1.close();
      assertEquals(a.active().length, 1, "still running for g2");
      await g2.execute({ add: 1 });
      await assertRejects(() => g1.execute({ add: 1 }), GroupTerminatedError);
      await g2.close();
      assertEquals(a.active().length, 0, "stopped with its last handle");
      await assertRejects(() => g2.query(null, Consistency.Weak), GroupTerminatedError);
    } finally {
      await a.close();
    }
  },
  { timeout: 20_000 },
);

test("registry: a different config is a different group; deprioritizing leadership is not", () => {
  const fabric = new Fabric();
  const a = new Groups(fabric.host(5));
  const key = GroupKey.generate();
  const base = a.withKey(key).withStateMachine(new Counter()).withConsensusConfig(CONFIG).join();
  const other = a.withKey(key).withStateMachine(new Counter()).withConsensusConfig(
    CONFIG.toBuilder().withQueryTimeout(700).build(),
  ).join();
  const reluctant = a.withKey(key).withStateMachine(new Counter()).withConsensusConfig(
    CONFIG.deprioritizeLeadership(),
  ).join();
  assert(!base.id().equals(other.id()));
  assert(base.id().equals(reluctant.id()), "deprioritizeLeadership keeps the id");
  return a.close();
});

test("registry: empty batches are refused and closed registries refuse joins", async () => {
  const fabric = new Fabric();
  const a = new Groups(fabric.host(6));
  const g = a.withKey(GroupKey.generate()).withStateMachine(new Counter()).withConsensusConfig(
    CONFIG,
  ).join();
  await assertRejects(() => g.executeMany([]), NoCommandsError);
  await assertRejects(() => g.feedMany([]), NoCommandsError);
  await a.close();
  await assertRejects(() => g.execute({ add: 1 }), GroupTerminatedError);
  let threw = false;
  try {
    a.withKey(GroupKey.generate()).join();
  } catch (err) {
    threw = err instanceof GroupTerminatedError;
  }
  assert(threw, "join after close throws GroupTerminatedError");
});
