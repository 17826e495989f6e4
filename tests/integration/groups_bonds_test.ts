// Bonds over a Network: entries list joined groups, bonds come back after a cut, the bond limit holds.

import { test } from "../harness.ts";
import { assert, assertEquals } from "../assert.ts";
import { GroupKey } from "../../lib/groups/key.ts";
import type { Network } from "../../lib/network/network.ts";
import type { GroupId } from "../../lib/primitives/ids.ts";
import { Counter } from "../counter.ts";
import { eventually, FAST, Nodes, within } from "../group_net.ts";

/** The groups `of` lists in its entry, as `seenBy` has it in its catalog (hex ids). */
function listed(seenBy: Network, of: Network): string[] {
  const entry = seenBy.discovery().catalog().get(of.local().id().toHex());
  return (entry?.groups ?? []).map((g: GroupId) => g.toHex()).sort();
}

for (const fabric of ["memory", "quic"] as const) {
  test(
    `bonds (${fabric}): a joined group is announced, a left one disappears; handles share one group`,
    async () => {
      await using nodes = new Nodes(fabric);
      const [a, b] = await nodes.addMany(2);
      const key = GroupKey.generate();
      const g1 = a!.groups().withKey(key).withStateMachine(new Counter()).withConsensusConfig(FAST)
        .join();
      const g2 = a!.groups().withKey(key).withStateMachine(new Counter()).withConsensusConfig(FAST)
        .join();
      const id = g1.id().toHex();
      assertEquals(g2.id().toHex(), id);
      await eventually(() => listed(b!, a!).includes(id), "b sees a's group in a's entry");
      await within(g1.when().leaderElected(), "leader");
      // One handle closing leaves the group running for the other.
      await g1.close();
      await g2.execute({ add: 1 });
      assert(listed(a!, a!).includes(id), "still announced while a handle is open");
      await g2.close();
      await eventually(
        () => !listed(b!, a!).includes(id),
        "the left group disappears from a's entry",
      );
    },
    { timeout: 30_000 },
  );
}

test("bonds (memory): a bond cut by a partition comes back after it heals", async () => {
  await using nodes = new Nodes("memory");
  const [a, b] = await nodes.addMany(2);
  const key = GroupKey.generate();
  const ga = a!.groups().withKey(key).withStateMachine(new Counter()).withConsensusConfig(FAST)
    .join();
  const gb = b!.groups().withKey(key).withStateMachine(new Counter()).withConsensusConfig(FAST)
    .join();
  await eventually(() => ga.bonds().size === 1 && gb.bonds().size === 1, "bonded");
  const before = [...ga.bonds()][0]!.id.toHex();
  nodes.memory!.isolate(b!.local().id());
  await eventually(
    () => ga.bonds().size === 0 && gb.bonds().size === 0,
    "the dead bond is dropped",
  );
  nodes.memory!.heal();
  await eventually(() => ga.bonds().size === 1 && gb.bonds().size === 1, "bonded again", 20_000);
  assert([...ga.bonds()][0]!.id.toHex() !== before, "a new bond, not the old one");
  await within(ga.when().leaderElected(), "leader");
  await within(gb.execute({ add: 2 }), "the group works again");
}, { timeout: 40_000 });

test("bonds (memory): a node with maxBonds 1 keeps one bond over two shared groups", async () => {
  await using nodes = new Nodes("memory");
  const a = await nodes.add();
  const b = await nodes.add((builder) => builder.withGroupsConfig({ maxBonds: 1 }));
  const keys = [GroupKey.generate(), GroupKey.generate()];
  const onA = keys.map((k) =>
    a.groups().withKey(k).withStateMachine(new Counter()).withConsensusConfig(FAST).join()
  );
  const onB = keys.map((k) =>
    b.groups().withKey(k).withStateMachine(new Counter()).withConsensusConfig(FAST).join()
  );
  const total = () => onB.reduce((n, g) => n + g.bonds().size, 0);
  await eventually(() => total() === 1, "one bond on b");
  // Whatever else is tried (a redials with backoff) is refused: b never holds two.
  const other = onB.findIndex((g) => g.bonds().size === 0);
  const deadline = Date.now() + 1_000;
  await eventually(
    () => Date.now() > deadline || total() > 1,
    "a second bond (must not happen)",
    5_000,
  );
  assertEquals(total(), 1);
  assertEquals(onA[other]!.bonds().size, 0);
}, { timeout: 30_000 });
