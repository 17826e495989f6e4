// Raft core: membership changes, learners, leadership transfer, clusters and the merge inputs.

import { test } from "../harness.ts";
import { assert, assertEquals } from "../assert.ts";
import { TestNet } from "../raft_net.ts";

/** A one-node cluster n1 plus empty nodes that the tests add. */
function grow(extra: string[]): TestNet {
  const net = new TestNet();
  const n1 = net.add("n1");
  n1.core.bootstrap();
  net.process("n1");
  for (const id of extra) net.add(id);
  return net;
}

/** Adds `id` as learner and promotes it, driving the network until each step commits. */
function addVoter(net: TestNet, leader: string, id: string): void {
  const core = net.core(leader);
  const added = core.addLearner(id);
  assert(added.ok, `addLearner ${id}: ${JSON.stringify(added)}`);
  net.process(leader);
  net.until(() => core.committed >= added.value, 100, `learner ${id} committed`);
  let promoted = core.promote(id);
  for (let i = 0; i < 100 && !promoted.ok; i++) {
    net.run(1);
    promoted = core.promote(id);
  }
  assert(promoted.ok, `promote ${id}: ${JSON.stringify(promoted)}`);
  net.process(leader);
  const at = promoted.value;
  net.until(() => core.committed >= at, 100, `voter ${id} committed`);
}

test("raft: a bootstrapped leader adds learners, promotes them, and they replicate", () => {
  const net = grow(["n2", "n3"]);
  const leader = net.core("n1");
  const clusterId = leader.clusterId!;
  addVoter(net, "n1", "n2");
  addVoter(net, "n1", "n3");
  assertEquals(leader.membership.voters, ["n1", "n2", "n3"]);
  assertEquals(leader.membership.learners, []);
  leader.propose(["x"]);
  net.process("n1");
  net.run(3);
  for (const id of ["n2", "n3"]) {
    assertEquals(net.core(id).clusterId, clusterId, "joined the leader's cluster");
    assertEquals(net.commands(id), ["x"]);
    assertEquals(net.core(id).membership.voters, ["n1", "n2", "n3"]);
  }
  assert(net.node("n2").readies.some((rd) => rd.events.some((e) => e.type === "joinedCluster")));
});

test("raft: learners do not count towards the commit quorum", () => {
  const net = grow(["n2", "n3"]);
  addVoter(net, "n1", "n2");
  const leader = net.core("n1");
  const added = leader.addLearner("n3");
  assert(added.ok);
  net.process("n1");
  net.until(() => leader.committed >= added.value);
  // voters n1, n2; learner n3. With n2 cut off nothing commits even though n3 acknowledges.
  net.isolate("n2");
  const before = leader.committed;
  leader.propose(["y"]);
  net.process("n1");
  net.run(3);
  assertEquals(leader.committed, before, "a learner's acknowledgement was counted");
  assertEquals(net.core("n3").log.lastIndex, leader.log.lastIndex, "the learner still replicates");
  net.heal();
  net.run(3);
  assert(leader.committed > before);
});

test("raft: one membership change at a time, and only after committing an entry of the term", () => {
  const net = grow(["n2", "n3", "n4"]);
  addVoter(net, "n1", "n2");
  const leader = net.core("n1");
  const a = leader.addLearner("n3");
  assert(a.ok);
  assertEquals(leader.addLearner("n4"), { ok: false, reason: "configChangePending" });
  net.process("n1");
  net.until(() => leader.committed >= a.value);
  assertEquals(leader.addLearner("n3"), { ok: false, reason: "alreadyMember" });
  assertEquals(leader.promote("n9"), { ok: false, reason: "unknownMember" });
  assertEquals(net.core("n2").addLearner("n4"), { ok: false, reason: "notLeader" });
});

test("raft: a new leader changes membership only after committing an entry of its term", () => {
  const net = TestNet.withVoters(["n1", "n2", "n3"]);
  net.add("n4");
  const n1 = net.core("n1");
  for (let i = 0; i < 100 && n1.role === "follower"; i++) net.tick("n1");
  net.deliver(100_000, (m) => m.type !== "append"); // votes only: the no-op stays uncommitted
  assertEquals(n1.role, "leader");
  assert(!n1.committedInTerm());
  assertEquals(n1.addLearner("n4"), { ok: false, reason: "configChangePending" });
  net.run(2);
  assert(n1.committedInTerm());
  assert(n1.addLearner("n4").ok);
});

test("raft: promotion waits until the learner holds every committed entry", () => {
  const net = grow(["n2"]);
  const leader = net.core("n1");
  for (let i = 0; i < 20; i++) leader.propose([i]);
  net.process("n1");
  const a = leader.addLearner("n2");
  assert(a.ok);
  net.process("n1");
  // n1 alone commits the learner entry at once; n2 has nothing yet
  assertEquals(leader.promote("n2"), { ok: false, reason: "notCaughtUp" });
  net.run(5);
  assert(leader.promote("n2").ok);
});

test("raft: removing a follower shrinks the quorum; the removed node learns it", () => {
  const net = grow(["n2", "n3"]);
  addVoter(net, "n1", "n2");
  addVoter(net, "n1", "n3");
  const leader = net.core("n1");
  const r = leader.remove("n3");
  assert(r.ok);
  net.process("n1");
  net.run(3);
  assertEquals(leader.membership.voters, ["n1", "n2"]);
  assert(leader.committed >= r.value);
  assert(
    net.node("n3").readies.some((rd) => rd.events.some((e) => e.type === "removed")),
    "n3 told",
  );
  // n3 no longer campaigns
  net.isolate("n3");
  net.tick("n3", 300);
  assertEquals(net.core("n3").role, "follower");
});

test("raft: a leader that removes itself leads until the change commits, then steps down", () => {
  const net = grow(["n2", "n3"]);
  addVoter(net, "n1", "n2");
  addVoter(net, "n1", "n3");
  const leader = net.core("n1");
  const r = leader.remove("n1");
  assert(r.ok);
  net.process("n1");
  assertEquals(leader.role, "leader", "still leading while the change is uncommitted");
  net.deliver();
  assertEquals(leader.role, "follower");
  assert(net.node("n1").readies.some((rd) => rd.events.some((e) => e.type === "removed")));
  net.until(() => net.leaders().length === 1 && net.leaders()[0] !== "n1", 300, "new leader");
  const next = net.core(net.leaders()[0]!);
  assertEquals(next.membership.voters, ["n2", "n3"]);
  assert(next.committed >= r.value, "the removal stays committed");
});

test("raft: configuration entries take effect when appended and are undone by truncation", () => {
  const net = TestNet.withVoters(["n1", "n2", "n3"]);
  net.elect("n1");
  net.run(3);
  net.add("n4");
  net.isolate("n2");
  net.isolate("n3");
  const r = net.core("n1").addLearner("n4");
  assert(r.ok);
  net.process("n1");
  assertEquals(net.core("n1").membership.learners, ["n4"], "effective on append");
  net.deliver();
  assertEquals(net.core("n4").membership.learners, ["n4"], "n4 has the uncommitted change");
  // n2/n3 elect a new leader whose log lacks the change; it overwrites n1's and n4's suffix
  net.heal();
  net.isolate("n1");
  net.isolate("n4");
  net.until(() => net.leaders().some((l) => l !== "n1"), 300, "n2 or n3 leads");
  const leader = net.leaders().find((l) => l !== "n1")!;
  net.core(leader).propose(["z"]);
  net.process(leader);
  net.deliver();
  net.heal();
  net.isolate("n4");
  net.until(() =>
    net.core("n1").committed === net.core(leader).committed && net.core("n1").role === "follower"
  );
  net.run(3);
  assertEquals(net.core("n1").membership.learners, [], "the truncated change no longer applies");
  assertEquals(net.commands("n1"), ["z"]);
});

test("raft: leadership transfer hands over to a caught-up voter and refuses proposals meanwhile", () => {
  const net = TestNet.withVoters(["n1", "n2", "n3"]);
  net.elect("n1");
  net.run(3);
  const n1 = net.core("n1");
  const t = n1.transferLeadership("n3");
  assert(t.ok);
  assertEquals(n1.propose(["x"]), { ok: false, reason: "transferring" });
  net.process("n1");
  net.deliver();
  assertEquals(net.leaders(), ["n3"]);
  assert(net.core("n3").term > 2);
  assertEquals(n1.transferLeadership("n9"), { ok: false, reason: "notLeader" });
  assertEquals(net.core("n3").transferLeadership("n9"), { ok: false, reason: "unknownMember" });
});

test("raft: a transfer to an unreachable voter is aborted after an election timeout", () => {
  const net = TestNet.withVoters(["n1", "n2", "n3"]);
  net.elect("n1");
  net.run(3);
  net.isolate("n3");
  const n1 = net.core("n1");
  n1.propose(["y"]);
  net.process("n1");
  net.deliver();
  assert(n1.transferLeadership("n3").ok);
  net.run(15);
  assertEquals(n1.role, "leader");
  assertEquals(n1.transferTarget, undefined);
  assert(n1.propose(["after"]).ok);
  assert(net.node("n1").readies.some((rd) => rd.events.some((e) => e.type === "transferAborted")));
});

test("raft: nodes of different clusters ignore each other; a reset node joins the other cluster", () => {
  const net = new TestNet();
  for (const id of ["a", "b"]) {
    net.add(id).core.bootstrap();
    net.process(id);
  }
  const a = net.core("a");
  const b = net.core("b");
  assert(a.clusterId !== b.clusterId);
  a.propose(["a1"]);
  net.process("a");
  // a tries to add b: b ignores the foreign cluster and reports it
  assert(a.addLearner("b").ok);
  net.process("a");
  net.run(5);
  assertEquals(b.role, "leader", "b keeps its own cluster");
  assert(net.node("b").readies.some((rd) => rd.events.some((e) => e.type === "foreignCluster")));
  // the merge rule picks a: b discards its state and is added as a new member
  b.resetToEmpty();
  net.process("b");
  assertEquals(b.clusterId, undefined);
  assertEquals(b.log.lastIndex, 0);
  assert(net.node("b").store.last().index === 0, "Ready.resetLog emptied b's storage");
  net.run(10);
  assertEquals(b.clusterId, a.clusterId);
  assertEquals(net.commands("b"), ["a1"]);
  assert(b.term >= 1, "term is kept, never reset");
});
