// Example: three nodes elect a leader; when the leader goes away, the other two elect a new one.
//
// Run it with either runtime:
//   deno run -A --unstable-net examples/leader_election.ts
//   bun examples/leader_election.ts
//
// All three nodes live in this one process for brevity, but they talk to each
// other over real QUIC on 127.0.0.1, exactly as separate machines would.

import { ConsensusConfig, GroupKey, Network, NoOp, type PeerId } from "../mod.ts";

// Every member of a group must hold the same key (and the same consensus
// settings). In a real deployment you would generate it once and distribute it.
const key = GroupKey.generate();

// Shorter timings than the defaults so the example finishes quickly. All
// members must use the same values: they are part of the group's id.
const config = ConsensusConfig.builder()
  .withHeartbeatInterval(100)
  .withHeartbeatJitter(20)
  .withElectionTimeout(500)
  .withElectionTimeoutJitter(200)
  .withBootstrapDelay(500)
  .build();

// Start three nodes. The first one is everyone's bootstrap peer: discovery
// then tells each node about the others.
const first = await Network.builder("leader-election-example")
  .withListenAddress("127.0.0.1:0")
  .build();
const networks = [first];
for (let i = 0; i < 2; i++) {
  networks.push(
    await Network.builder("leader-election-example")
      .withListenAddress("127.0.0.1:0")
      .withBootstrap(first.local().addr())
      .build(),
  );
}

// Join the group on every node with the `NoOp` state machine: the group
// elects a leader and replicates nothing, which is all we need here.
// (`withKey(key).join()` does the same with the default consensus settings.)
const groups = networks.map((n) =>
  n.groups().withKey(key).withStateMachine(new NoOp()).withConsensusConfig(config).join()
);

/** A short, readable name for a node. */
const nameOf = (peer: PeerId): string => {
  const i = networks.findIndex((n) => n.local().id().equals(peer));
  return `node ${i + 1} (${peer.short()})`;
};

// `when()` waits for conditions. Waits have no timeout of their own, so pass a signal.
const leader = await groups[0]!.when().leaderElected({ signal: AbortSignal.timeout(10_000) });
// Wait until the other two follow that leader as well.
await Promise.all(
  groups.map((g) => g.when().leaderIs(leader, { signal: AbortSignal.timeout(10_000) })),
);
console.log(`leader: ${nameOf(leader)}`);

// A newcomer joins as a learner (it copies the log but does not vote) until the
// leader has caught it up and promoted it. Commit one entry on every node so all
// three are caught up: only then can two of them outvote the missing third.
const index = await groups[1]!.execute(null, { signal: AbortSignal.timeout(10_000) });
await Promise.all(
  groups.map((g) => g.when().committed().reaches(index, { signal: AbortSignal.timeout(10_000) })),
);

// Take the leader away: closing its network leaves its groups and drops its connections.
const leaderIndex = networks.findIndex((n) => n.local().id().equals(leader));
console.log(`closing ${nameOf(leader)}...`);
await networks[leaderIndex]!.close();

// The two survivors still form a majority of three, so they elect a new leader.
const survivors = groups.filter((_, i) => i !== leaderIndex);
const next = await survivors[0]!.when().leaderChanged({ signal: AbortSignal.timeout(10_000) });
await Promise.all(
  survivors.map((g) => g.when().leaderIs(next, { signal: AbortSignal.timeout(10_000) })),
);
console.log(`new leader: ${nameOf(next)}`);

// Shut the rest down; the process then exits by itself.
await Promise.all(networks.filter((_, i) => i !== leaderIndex).map((n) => n.close()));
console.log("done");
