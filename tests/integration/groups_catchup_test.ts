// A member joining late catches up on 400 committed entries through LogReplaySync, for several batch sizes.

import { test } from "../harness.ts";
import { assertEquals } from "../assert.ts";
import { GroupKey } from "../../lib/groups/key.ts";
import { Consistency } from "../../lib/groups/types.ts";
import { LogReplaySync } from "../../lib/machine/log_replay.ts";
import type { StateSync } from "../../lib/machine/state_machine.ts";
import { Counter } from "../counter.ts";
import { eventually, FAST, Nodes, within } from "../group_net.ts";

/** A counter that catches up in batches of `batchSize`. */
class BatchedCounter extends Counter {
  constructor(readonly batchSize: number) {
    super();
  }
  stateSync(): StateSync {
    return new LogReplaySync({ batchSize: this.batchSize, fetchTimeout: 2_000 });
  }
}

const ENTRIES = 400;

for (const fabric of ["memory", "quic"] as const) {
  test(
    `catch-up (${fabric}): a late member replays ${ENTRIES} entries with batch sizes 7, 20, 100, 1000`,
    async () => {
      for (const batchSize of [7, 20, 100, 1000]) {
        await using nodes = new Nodes(fabric, `catchup-${batchSize}`);
        const key = GroupKey.generate();
        const join = async () => {
          const n = await nodes.add();
          const m = new BatchedCounter(batchSize);
          const g = n.groups().withKey(key).withStateMachine(m).withConsensusConfig(FAST).join();
          return { n, m, g };
        };
        const a = await join();
        await within(a.g.when().leaderElected(), "leader");
        const b = await join();
        const c = await join();
        await within(b.g.when().leaderIs(a.n.local().id()), "b follows");
        await within(c.g.when().leaderIs(a.n.local().id()), "c follows");
        for (let k = 0; k < ENTRIES / 100; k++) {
          await a.g.executeMany(Array.from({ length: 100 }, () => ({ add: 1 })));
        }
        const late = await join();
        await within(
          late.g.when().leaderIs(a.n.local().id()),
          `late member follows (batch ${batchSize})`,
        );
        await eventually(
          () => late.m.value === ENTRIES,
          `late member catches up (batch ${batchSize})`,
        );
        assertEquals(late.m.applied, ENTRIES);
        // It is a full member: a strong read through it sees a new write.
        await a.g.execute({ add: 1 });
        assertEquals((await late.g.query(null, Consistency.Strong)).result, ENTRIES + 1);
      }
    },
    { timeout: 120_000 },
  );
}
