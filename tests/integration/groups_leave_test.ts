// A leader that leaves right after others joined (they may still be learners, or one other voter) hands the group on: the rest elect and write.
import { test } from "../harness.ts";
import { GroupKey } from "../../lib/groups/key.ts";
import { Counter } from "../counter.ts";
import { agreedLeader, FAST, Nodes, withDeadline } from "../group_net.ts";
import type { Network } from "../../lib/network/network.ts";

for (const fabric of ["memory", "quic"] as const) {
  test(
    `leave (${fabric}): the leader leaves right after a third node follows; the others carry on`,
    async () => {
      await using nodes = new Nodes(fabric);
      const key = GroupKey.generate();
      const j = (n: Network) =>
        n.groups().withKey(key).withStateMachine(new Counter()).withConsensusConfig(FAST).join();
      const n0 = await nodes.add();
      const g0 = j(n0);
      await withDeadline("n0 leads", (o) => g0.when().isLeader(o));
      const [n1, n2] = await nodes.addMany(2);
      const g1 = j(n1!), g2 = j(n2!);
      await withDeadline("n1 follows", (o) => g1.when().leaderIs(n0.local().id(), o));
      await withDeadline("n2 follows", (o) => g2.when().leaderIs(n0.local().id(), o));
      const i = await withDeadline("write", (o) => g1.execute({ add: 1 }, o));
      await withDeadline("n2 commits", (o) => g2.when().committed().reaches(i, o));
      await nodes.close(n0);
      await agreedLeader([g1, g2], "survivors agree on a new leader", {
        excluded: n0.local().id(),
        ms: 5_000,
      });
      await withDeadline("write after", (o) => g2.execute({ add: 1 }, o), 5_000);
    },
    { timeout: 20_000 },
  );
}
