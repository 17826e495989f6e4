// Example: a counter replicated on three nodes; a command sent through a follower is applied everywhere.
//
// Run it with either runtime:
//   deno run -A --unstable-net examples/replicated_counter.ts
//   bun examples/replicated_counter.ts
//
// All three nodes live in this one process for brevity, but they talk to each
// other over real QUIC on 127.0.0.1, exactly as separate machines would.

import process from "node:process";
import {
  type ApplyContext,
  ConsensusConfig,
  Consistency,
  GroupKey,
  Network,
  type StateMachine,
} from "../mod.ts";

/** A command: add `add` to the counter. Commands must be CBOR-encodable plain data. */
type Add = { add: number };

/**
 * The replicated state: a number. `apply` runs on every node for every committed
 * command, in the same order, so it must be deterministic (no clocks, no randomness).
 * Queries take `null` and answer the current total.
 */
class Counter implements StateMachine<Add, null, number> {
  value = 0;
  // A versioned name; part of the group's id, so every member must run the same machine.
  signature(): string {
    return "example-counter/v1";
  }
  apply(command: Add, _ctx: ApplyContext): void {
    this.value += command.add;
  }
  query(): number {
    return this.value;
  }
}

// Every member of a group must hold the same key and use the same consensus
// settings (shorter than the defaults here, so the example is quick).
const key = GroupKey.generate();
const config = ConsensusConfig.builder()
  .withHeartbeatInterval(100)
  .withHeartbeatJitter(20)
  .withElectionTimeout(500)
  .withElectionTimeoutJitter(200)
  .withBootstrapDelay(500)
  .build();

// Three nodes; the first is everyone's bootstrap peer.
const first = await Network.builder("counter-example").withListenAddress("127.0.0.1:0").build();
const networks = [first];
for (let i = 0; i < 2; i++) {
  networks.push(
    await Network.builder("counter-example")
      .withListenAddress("127.0.0.1:0")
      .withBootstrap(first.local().addr())
      .build(),
  );
}

// Each node has its own Counter instance; the group keeps them in step.
const counters = networks.map(() => new Counter());
const groups = networks.map((n, i) =>
  n.groups().withKey(key).withStateMachine(counters[i]!).withConsensusConfig(config).join()
);

// Wait until a leader is elected and every node follows it.
const signal = () => AbortSignal.timeout(10_000);
const leader = await groups[0]!.when().leaderElected({ signal: signal() });
await Promise.all(groups.map((g) => g.when().leaderIs(leader, { signal: signal() })));
const follower = groups.find((g) => !g.isLeader())!;
console.log(
  `leader: ${leader.short()}; sending commands through node ${
    groups.indexOf(follower) + 1
  }, a follower`,
);

// `execute` forwards the command to the leader and resolves once it is
// committed (stored by a majority), with the index it got in the log.
let last = 0;
for (const add of [5, 10, 27]) {
  last = await follower.execute({ add }, { signal: signal() });
  console.log(`add ${add} committed at index ${last}`);
}

// A strong query is linearizable: it reflects every command committed before it.
const strong = await follower.query(null, Consistency.Strong, { signal: signal() });
console.log(`strong query through the follower: ${strong.result}`);

// Every node applies the same commands: once each has committed the last one,
// its own counter (read with a local, weak query) has the same value.
await Promise.all(groups.map((g) => g.when().committed().reaches(last, { signal: signal() })));
const weak = await Promise.all(groups.map((g) => g.query(null, Consistency.Weak)));
console.log(`weak queries on each node: ${weak.map((r) => r.result).join(", ")}`);

await Promise.all(networks.map((n) => n.close()));
if (strong.result !== 42 || weak.some((r) => r.result !== 42)) {
  console.error("unexpected totals");
  process.exit(1);
}
console.log("counter is 42 on every node");
