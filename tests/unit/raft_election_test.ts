// Raft core: elections, timeouts, pre-vote, check-quorum, vote rule, bootstrap, restart.

import { test } from "../harness.ts";
import { assert, assertEquals } from "../assert.ts";
import { TestNet } from "../raft_net.ts";
import type { VoteRequest } from "../../lib/raft/types.ts";

test("raft: a lone empty node bootstraps after the bootstrap delay and commits alone", () => {
  const net = new TestNet();
  const n = net.add("n1", {
    autoBootstrap: true,
    bootstrapTicks: 30,
    electionTicks: 10,
    electionJitterTicks: 5,
  });
  let ticks = 0;
  while (n.core.role !== "leader" && ticks < 100) {
    net.tick("n1");
    ticks++;
  }
  assertEquals(n.core.role, "leader");
  assert(ticks >= 40 && ticks < 45, `bootstrapped after ${ticks} ticks, expected [40, 45)`);
  assert(n.core.clusterId !== undefined && n.core.clusterId.length === 32);
  assertEquals(n.core.membership.voters, ["n1"]);
  assertEquals(n.core.committed, 1, "the bootstrap entry commits at once");
  const r = n.core.propose(["a", "b"]);
  assert(r.ok);
  assertEquals(r.value, { start: 2, end: 3 });
  net.process("n1");
  assertEquals(net.commands("n1"), ["a", "b"]);
  assert(n.readies.some((rd) => rd.events.some((e) => e.type === "bootstrapped")));
});

test("raft: a node without autoBootstrap waits to be added and never campaigns", () => {
  const net = new TestNet();
  const n = net.add("n1");
  net.tick("n1", 500);
  assertEquals(n.core.role, "follower");
  assertEquals(n.core.term, 0);
  assertEquals(n.core.clusterId, undefined);
});

test("raft: election timeouts are drawn from [timeout × multiplier, + jitter) plus the bootstrap delay once", () => {
  const seen = new Set<number>();
  for (let seed = 1; seed <= 40; seed++) {
    for (const multiplier of [1, 3]) {
      const net = TestNet.withVoters(["n1", "n2", "n3"], {
        seed,
        electionTicks: 10,
        electionJitterTicks: 7,
        bootstrapTicks: 20,
        leadershipMultiplier: multiplier,
      });
      const core = net.core("n1");
      let ticks = 0;
      while (core.role === "follower" && ticks < 200) {
        net.tick("n1");
        ticks++;
      }
      const lo = 20 * multiplier + 10 * multiplier;
      assert(
        ticks >= lo && ticks < lo + 7,
        `seed ${seed} ×${multiplier}: first campaign after ${ticks}`,
      );
      if (multiplier === 1) seen.add(ticks);
      // the retry after an unanswered pre-vote has no bootstrap delay
      net.queue = [];
      let again = 0;
      while (net.queue.length === 0 && again < 200) {
        net.tick("n1");
        again++;
      }
      assert(net.queue.some((m) => m.type === "vote" && m.preVote), "retried with a pre-vote");
      assert(again >= 10 * multiplier && again < 10 * multiplier + 7, `retry after ${again}`);
    }
  }
  assert(seen.size > 3, "timeouts are randomized");
});

test("raft: three nodes elect one leader; the no-op of its term commits everywhere", () => {
  const net = TestNet.withVoters(["n1", "n2", "n3"]);
  net.elect("n1");
  assertEquals(net.leaders(), ["n1"]);
  assertEquals(net.core("n1").term, 2);
  net.run(3);
  for (const id of ["n1", "n2", "n3"]) {
    assertEquals(net.core(id).leader, "n1");
    assertEquals(net.core(id).committed, 2);
    assertEquals(net.node(id).applied.length, 2);
  }
});

test("raft: pre-vote keeps an isolated follower from raising its term and disrupting the leader", () => {
  const net = TestNet.withVoters(["n1", "n2", "n3"]);
  net.elect("n1");
  net.run(3);
  const term = net.core("n1").term;
  net.isolate("n3");
  net.run(200); // n3 times out many times; its pre-votes go nowhere
  assertEquals(net.core("n3").term, term, "pre-vote must not increase the term");
  assert(net.core("n3").role === "precandidate" || net.core("n3").role === "follower");
  net.heal();
  net.run(50);
  assertEquals(net.core("n1").role, "leader", "the healthy leader stays");
  assertEquals(net.core("n1").term, term);
  assertEquals(net.core("n3").leader, "n1");
});

test("raft: a rejoining node with a higher term does not depose a leader in lease", () => {
  const net = TestNet.withVoters(["n1", "n2", "n3"]);
  net.elect("n1");
  net.run(3);
  const term = net.core("n1").term;
  // n3 sends a real vote request at a higher term (as if it had campaigned while cut off)
  const vote: VoteRequest = {
    type: "vote",
    from: "n3",
    to: "n2",
    term: term + 5,
    preVote: false,
    lastLogIndex: 100,
    lastLogTerm: term + 4,
    transfer: false,
    clusterId: "c0ffee",
  };
  net.core("n2").step(vote);
  net.process("n2");
  assertEquals(net.core("n2").term, term, "a follower in lease ignores it");
  assertEquals(net.core("n2").leader, "n1");
});

test("raft: check-quorum: a leader cut off from the majority steps down within an election timeout", () => {
  const net = TestNet.withVoters(["n1", "n2", "n3"]);
  net.elect("n1");
  net.run(3);
  net.isolate("n1");
  let ticks = 0;
  while (net.core("n1").role === "leader" && ticks < 100) {
    net.tick("n1");
    ticks++;
  }
  assertEquals(net.core("n1").role, "follower");
  assert(ticks <= 2 * 10, `stepped down after ${ticks} ticks`);
  // the majority elects a new leader
  net.until(() => net.leaders().some((l) => l !== "n1"), 200, "new leader");
});

test("raft: the vote rule refuses a candidate whose log is behind, and votes are persisted before replies", () => {
  const net = TestNet.withVoters(["n1", "n2", "n3"]);
  net.elect("n1");
  net.core("n1").propose(["x"]);
  net.process("n1");
  net.isolate("n3");
  net.deliver();
  net.run(2);
  // n3 missed entries: it cannot win against n1/n2's longer logs
  net.isolate("n1");
  net.blocked.delete("n3->n2");
  net.blocked.delete("n2->n3");
  const n2 = net.node("n2");
  const before = n2.readies.length;
  for (let i = 0; i < 100 && net.core("n3").role !== "candidate"; i++) {
    net.tick("n3");
    net.deliver();
  }
  // whatever n3 did, n2 never granted it a real vote
  for (const rd of n2.readies.slice(before)) {
    for (const m of rd.messages) {
      if (m.type === "voteResponse" && m.to === "n3" && !m.preVote) {
        assert(!m.granted, "n2 voted for a stale log");
      }
    }
  }
  // when n2 grants a vote, the same Ready carries the hard state with that vote
  net.heal();
  net.isolate("n1");
  for (let i = 0; i < 200 && net.leaders().filter((l) => l !== "n1").length === 0; i++) {
    net.tick("n2");
    net.tick("n3");
    net.deliver();
  }
  for (const id of ["n2", "n3"]) {
    for (const rd of net.node(id).readies) {
      for (const m of rd.messages) {
        if (m.type === "voteResponse" && m.granted && !m.preVote) {
          assertEquals(rd.hardState?.votedFor, m.to, "vote reply without persisted vote");
          assertEquals(rd.hardState?.term, m.term);
        }
      }
    }
  }
});

test("raft: at most one vote per term", () => {
  const net = TestNet.withVoters(["n1", "n2", "n3"]);
  const n2 = net.core("n2");
  const req = (from: string): VoteRequest => ({
    type: "vote",
    from,
    to: "n2",
    term: 5,
    preVote: false,
    lastLogIndex: 1,
    lastLogTerm: 1,
    transfer: false,
    clusterId: "c0ffee",
  });
  n2.step(req("n1"));
  n2.step(req("n3"));
  n2.step(req("n1")); // a duplicate of the first is granted again (same candidate)
  const rd = n2.ready();
  const granted = rd.messages.filter((m) => m.type === "voteResponse" && m.granted).map((m) =>
    m.to
  );
  assertEquals(granted, ["n1", "n1"]);
  assertEquals(rd.hardState, { term: 5, votedFor: "n1" });
});

test("raft: a restarted node keeps its term and vote and does not vote twice", () => {
  const net = TestNet.withVoters(["n1", "n2", "n3"]);
  const req = (from: string): VoteRequest => ({
    type: "vote",
    from,
    to: "n2",
    term: 7,
    preVote: false,
    lastLogIndex: 1,
    lastLogTerm: 1,
    transfer: false,
    clusterId: "c0ffee",
  });
  net.core("n2").step(req("n1"));
  net.process("n2");
  const restarted = net.restart("n2");
  assertEquals(restarted.term, 7);
  assertEquals(restarted.votedFor, "n1");
  restarted.step(req("n3"));
  const rd = restarted.ready();
  const reply = rd.messages.find((m) => m.type === "voteResponse");
  assert(
    reply !== undefined && reply.type === "voteResponse" && !reply.granted,
    "voted twice after restart",
  );
  assertEquals(restarted.membership.voters, ["n1", "n2", "n3"]);
  assertEquals(restarted.clusterId, "c0ffee");
});

test("raft: observers and learners never campaign", () => {
  const net = TestNet.withVoters(["n1", "n2"], { canVote: false });
  net.tick("n1", 300);
  net.tick("n2", 300);
  assertEquals(net.leaders(), []);
  assertEquals(net.core("n1").term, 1);
});

test("raft: reluctant nodes (× 3) let the one normal node time out first", () => {
  for (let seed = 1; seed <= 20; seed++) {
    const opts = { seed, electionTicks: 10, electionJitterTicks: 10 };
    const net = TestNet.withVoters(["n1", "n2", "n3"], opts);
    for (const id of ["n1", "n2"]) {
      net.node(id).options = { ...opts, leadershipMultiplier: 3 };
      net.restart(id);
    }
    net.until(() => net.leaders().length > 0, 300, "a leader");
    assertEquals(net.leaders(), ["n3"], `seed ${seed}`);
  }
});
