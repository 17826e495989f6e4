// The merge rule end to end: clusters of one group that started apart converge on the one with the longest committed log.

import { test } from "../harness.ts";
import { assert, assertEquals } from "../assert.ts";
import { GroupKey } from "../../lib/groups/key.ts";
import { Consistency, type Group } from "../../lib/groups/types.ts";
import { GroupTerminatedError } from "../../lib/groups/errors.ts";
import { Network } from "../../lib/network/network.ts";
import { MemoryNetwork } from "../../transport/memory.ts";
import type { StateMachine } from "../../lib/machine/state_machine.ts";
import { Counter, type CounterCommand } from "../counter.ts";
import { eventually, FAST, within } from "../group_net.ts";

/** A node that bootstraps nobody: it starts alone. */
function alone(memory: MemoryNetwork | undefined): Promise<Network> {
  let b = Network.builder("merge-test")
    .withListenAddress("127.0.0.1:0")
    .withDiscoveryConfig({ announceInterval: 100, staleAfter: 5_000, syncTimeout: 5_000 });
  if (memory !== undefined) b = b.withTransport(memory.transport());
  return b.build();
}

/** A counter without `reset()`: it cannot rejoin after losing a merge. */
class RigidCounter implements StateMachine<CounterCommand, null, number> {
  value = 0;
  signature(): string {
    return "counter/v1";
  }
  apply(c: CounterCommand): void {
    this.value += c.add;
  }
  query(): number {
    return this.value;
  }
}

for (const fabric of ["memory", "quic"] as const) {
  test(
    `merge (${fabric}): three clusters that started alone converge on the longest committed log`,
    async () => {
      const memory = fabric === "memory" ? new MemoryNetwork({ latencyMs: 1, seed: 3 }) : undefined;
      const nets: Network[] = [];
      try {
        const key = GroupKey.generate();
        const machines = [new Counter(), new Counter(), new Counter()];
        const groups: Group<Counter>[] = [];
        for (const m of machines) {
          const n = await alone(memory);
          nets.push(n);
          groups.push(n.groups().withKey(key).withStateMachine(m).withConsensusConfig(FAST).join());
        }
        // Each elects itself and commits its own history: 8×1, 4×10, 2×100.
        const writes: [number, number][] = [[8, 1], [4, 10], [2, 100]];
        for (const [i, g] of groups.entries()) {
          await within(g.when().leaderIs(nets[i]!.local().id()), `node ${i} leads alone`);
          const [count, add] = writes[i]!;
          for (let k = 0; k < count; k++) await g.execute({ add });
        }
        assertEquals(machines.map((m) => m.value), [8, 40, 200]);
        const reverted = [groups[1]!, groups[2]!].map((g) => g.when().committed().reverted());
        // Now they find each other.
        nets[1]!.discovery().dial(nets[0]!.local().addr());
        nets[2]!.discovery().dial(nets[0]!.local().addr());
        await within(Promise.all(reverted), "the shorter clusters discard their state");
        const a = nets[0]!.local().id();
        for (const [i, g] of groups.entries()) {
          await within(g.when().leaderIs(a), `node ${i} follows the winner`);
        }
        await eventually(
          () => machines.every((m) => m.value === 8),
          "everyone holds the winner's state",
        );
        assert(groups[0]!.isLeader(), "the winner kept its leader");
        // The merged group works: a write through a former loser reaches everyone.
        await within(groups[2]!.execute({ add: 1000 }), "write after the merge");
        await eventually(() => machines.every((m) => m.value === 1008), "the write replicates");
        const r = await groups[1]!.query(null, Consistency.Strong);
        assertEquals(r.result, 1008);
        await eventually(() => groups[0]!.bonds().size === 2, "winner bonds with both");
      } finally {
        for (const n of nets) await n.close();
        await memory?.close();
      }
    },
    { timeout: 60_000 },
  );
}

test(
  "merge (memory): a loser whose machine cannot reset leaves the group with MergeLostError",
  async () => {
    const memory = new MemoryNetwork({ latencyMs: 1, seed: 4 });
    const nets: Network[] = [];
    try {
      const key = GroupKey.generate();
      const winner = new Counter();
      const rigid = new RigidCounter();
      const a = await alone(memory);
      nets.push(a);
      const ga = a.groups().withKey(key).withStateMachine(winner).withConsensusConfig(FAST).join();
      const b = await alone(memory);
      nets.push(b);
      const gb = b.groups().withKey(key).withStateMachine(rigid).withConsensusConfig(FAST).join();
      await within(ga.when().leaderIs(a.local().id()), "a leads alone");
      await within(gb.when().leaderIs(b.local().id()), "b leads alone");
      for (let k = 0; k < 3; k++) await ga.execute({ add: 1 });
      b.discovery().dial(a.local().addr());
      // b's handle ends: its waits reject with GroupTerminatedError caused by MergeLostError.
      let ended: unknown;
      try {
        await within(gb.when().leaderIs(a.local().id()), "b ends");
      } catch (err) {
        ended = err;
      }
      assert(ended instanceof GroupTerminatedError, `expected GroupTerminatedError, got ${ended}`);
      assertEquals((ended.cause as Error).name, "MergeLostError");
      assertEquals(rigid.value, 0, "nothing was applied to the rigid machine");
      // The winner is unaffected.
      await ga.execute({ add: 1 });
      assertEquals(winner.value, 4);
    } finally {
      for (const n of nets) await n.close();
      await memory.close();
    }
  },
  { timeout: 30_000 },
);
