// Smoke: two nodes over the memory fabric and over QUIC elect a leader and replicate a counter.

import { test } from "../harness.ts";
import { assert, assertEquals } from "../assert.ts";
import { GroupKey } from "../../lib/groups/key.ts";
import { Consistency } from "../../lib/groups/types.ts";
import { Counter } from "../counter.ts";
import { eventually, FAST, Nodes, within } from "../group_net.ts";

for (const fabric of ["memory", "quic"] as const) {
  test(
    `groups smoke (${fabric}): a lone node leads, a second follows, commands replicate`,
    async () => {
      await using nodes = new Nodes(fabric);
      const key = GroupKey.generate();
      const [a] = await nodes.addMany(1);
      const ma = new Counter();
      const ga = a!.groups().withKey(key).withStateMachine(ma).withConsensusConfig(FAST).join();
      await within(ga.when().leaderElected(), "first leader");
      assert(ga.isLeader());
      const b = await nodes.add();
      const mb = new Counter();
      const gb = b.groups().withKey(key).withStateMachine(mb).withConsensusConfig(FAST).join();
      await within(gb.when().leaderIs(a!.local().id()), "b follows a");
      const i = await within(gb.execute({ add: 5 }), "execute via follower");
      assert(i > 0);
      await eventually(() => ma.value === 5 && mb.value === 5, "both applied");
      const r = await gb.query(null, Consistency.Strong);
      assertEquals(r.result, 5);
      assertEquals(ga.bonds().size, 1);
      assert(gb.bonds().has(a!.local().id()));
    },
    { timeout: 30_000 },
  );
}
