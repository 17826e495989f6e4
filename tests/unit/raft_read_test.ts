// Raft core: ReadIndex reads at the leader and through followers.

import { test } from "../harness.ts";
import { assert, assertEquals } from "../assert.ts";
import { TestNet } from "../raft_net.ts";

test("raft: a leader answers a read after a heartbeat round confirms it", () => {
  const net = TestNet.withVoters(["n1", "n2", "n3"]);
  net.elect("n1");
  net.run(2);
  const n1 = net.node("n1");
  n1.core.propose(["a"]);
  net.process("n1");
  net.deliver();
  const committed = n1.core.committed;
  n1.core.readIndex("r1");
  net.process("n1");
  assertEquals(n1.readStates, [], "not before the heartbeat round");
  const hb = net.queue.filter((m) => m.type === "heartbeat");
  assertEquals(hb.length, 2, "a heartbeat round goes out at once");
  net.deliver();
  assertEquals(n1.readStates, [{ requestId: "r1", index: committed }]);
});

test("raft: a leader cut off from the majority never confirms a read, and drops it on stepping down", () => {
  const net = TestNet.withVoters(["n1", "n2", "n3"]);
  net.elect("n1");
  net.run(2);
  net.isolate("n1");
  const n1 = net.node("n1");
  n1.core.readIndex("stale");
  for (let i = 0; i < 40; i++) {
    net.tick("n1");
    net.deliver();
  }
  assertEquals(n1.readStates, [], "a deposed leader served a read");
  assertEquals(n1.dropped, ["stale"]);
  assert(n1.core.role !== "leader");
});

test("raft: one heartbeat ack is not enough in a five-node cluster", () => {
  const net = TestNet.withVoters(["n1", "n2", "n3", "n4", "n5"]);
  net.elect("n1");
  net.run(2);
  for (const id of ["n3", "n4", "n5"]) net.blocked.add(`${id}->n1`);
  const n1 = net.node("n1");
  n1.core.readIndex("r");
  net.process("n1");
  net.deliver();
  assertEquals(n1.readStates, [], "confirmed by two of five");
  net.blocked.delete("n3->n1");
  n1.core.tick();
  net.process("n1");
  net.tick("n1", 2); // next heartbeat round
  net.deliver();
  assertEquals(n1.readStates.map((r) => r.requestId), ["r"]);
});

test("raft: a follower's read is forwarded to the leader and answered with its read index", () => {
  const net = TestNet.withVoters(["n1", "n2", "n3"]);
  net.elect("n1");
  net.run(2);
  net.core("n1").propose(["a", "b"]);
  net.process("n1");
  net.deliver();
  const n2 = net.node("n2");
  n2.core.readIndex("f1");
  net.process("n2");
  net.deliver();
  assertEquals(n2.readStates, [{ requestId: "f1", index: net.core("n1").committed }]);
  assert(n2.core.applied >= n2.readStates[0]!.index, "the follower can serve it locally");
});

test("raft: reads without a known leader are dropped at once", () => {
  const net = TestNet.withVoters(["n1", "n2", "n3"]);
  const n2 = net.node("n2");
  n2.core.readIndex("x");
  net.process("n2");
  assertEquals(n2.dropped, ["x"]);
});

test("raft: a new leader serves reads only after committing an entry of its term", () => {
  const net = TestNet.withVoters(["n1", "n2", "n3"]);
  const n1 = net.node("n1");
  for (let i = 0; i < 100 && n1.core.role === "follower"; i++) net.tick("n1");
  net.deliver(100_000, (m) => m.type !== "append");
  assertEquals(n1.core.role, "leader");
  n1.core.readIndex("early");
  net.process("n1");
  net.deliver(100_000, (m) => m.type !== "append");
  assertEquals(n1.readStates, [], "read served before the no-op committed");
  net.run(3);
  assertEquals(n1.readStates.map((r) => r.requestId), ["early"]);
  assert(n1.readStates[0]!.index >= 2, "read index covers the no-op");
});

test("raft: a single-voter leader answers reads immediately", () => {
  const net = new TestNet();
  const n = net.add("solo");
  n.core.bootstrap();
  net.process("solo");
  n.core.readIndex("q");
  net.process("solo");
  assertEquals(n.readStates, [{ requestId: "q", index: 1 }]);
});

test("raft: a follower's forwarded read is dropped when its leader changes", () => {
  const net = TestNet.withVoters(["n1", "n2", "n3"]);
  net.elect("n1");
  net.run(2);
  net.blocked.add("n2->n1");
  const n2 = net.node("n2");
  n2.core.readIndex("lost");
  net.process("n2");
  net.deliver();
  net.isolate("n1");
  net.blocked.delete("n2->n1");
  net.until(() => n2.dropped.includes("lost"), 300, "read dropped");
  assertEquals(n2.readStates, []);
});
