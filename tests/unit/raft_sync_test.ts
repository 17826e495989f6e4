// Raft core and state sync: installCommitted on followers, and the leader's 'syncing' hand-off (syncLag).

import { test } from "../harness.ts";
import { assert, assertEquals } from "../assert.ts";
import { TestNet } from "../raft_net.ts";
import { type LogEntry, SystemEntry } from "../../storage/types.ts";
import type { RaftMessage } from "../../lib/raft/types.ts";

const IDS = ["n1", "n2", "n3"];

const cmd = (index: number, term: number, command: unknown = `c${index}`): LogEntry<unknown> => ({
  index,
  term,
  command,
});
const cmds = (from: number, to: number, term: number): LogEntry<unknown>[] =>
  Array.from({ length: to - from + 1 }, (_, k) => cmd(from + k, term));

// ---- installCommitted ------------------------------------------------------------------------

test("installCommitted: a follower installs after a matching prev and commits them", () => {
  const net = TestNet.withVoters(IDS);
  const n3 = net.core("n3");
  assertEquals(n3.installCommitted(1, 1, cmds(2, 6, 1)), 6);
  assertEquals(n3.log.lastIndex, 6);
  assertEquals(n3.committed, 6, "committed cluster-wide, so committed here");
  net.process("n3");
  assertEquals(net.node("n3").store.last(), { term: 1, index: 6 });
  assertEquals(net.commands("n3"), ["c2", "c3", "c4", "c5", "c6"]);
  assertEquals(net.queue, [], "nothing is acknowledged to anyone");
});

test("installCommitted: entries already held are skipped, only the new ones are written", () => {
  const net = TestNet.withVoters(IDS);
  const n3 = net.core("n3");
  n3.installCommitted(1, 1, cmds(2, 6, 1));
  net.process("n3");
  const readies = net.node("n3").readies.length;
  // all duplicates
  assertEquals(n3.installCommitted(3, 1, cmds(4, 6, 1)), 6);
  assertEquals(n3.installCommitted(1, 1, cmds(2, 3, 1)), 3, "an older window still matches");
  net.process("n3");
  const dupReadies = net.node("n3").readies.slice(readies);
  assert(dupReadies.every((rd) => rd.entries.length === 0), "nothing rewritten");
  assertEquals(n3.log.lastIndex, 6);
  assertEquals(n3.committed, 6, "an older window does not lower the commit index");
  // overlapping: 5..6 held, 7..8 new
  assertEquals(n3.installCommitted(4, 1, cmds(5, 8, 1)), 8);
  net.process("n3");
  const written = net.node("n3").readies.slice(readies).flatMap((rd) => rd.entries);
  assertEquals(written.map((e) => e.index), [7, 8]);
  assertEquals(net.commands("n3"), ["c2", "c3", "c4", "c5", "c6", "c7", "c8"]);
  assertEquals(net.node("n3").store.getRange(1, 8).map((e) => e.index), [1, 2, 3, 4, 5, 6, 7, 8]);
});

test("installCommitted: a conflicting uncommitted suffix is truncated", () => {
  const net = TestNet.withVoters(IDS);
  const n3 = net.core("n3");
  // a leader of term 2 left n3 three entries it never committed
  n3.step({
    type: "append",
    from: "n1",
    to: "n3",
    term: 2,
    clusterId: "c0ffee",
    prevLogIndex: 1,
    prevLogTerm: 1,
    entries: [cmd(2, 2, "x"), cmd(3, 2, "stale3"), cmd(4, 2, "stale4")],
    leaderCommit: 1,
  });
  net.process("n3");
  net.queue = [];
  assertEquals([n3.log.lastIndex, n3.committed], [4, 1]);
  // the cluster committed 2 (term 2), then 3..5 of term 3
  const got = n3.installCommitted(1, 1, [cmd(2, 2, "x"), ...cmds(3, 5, 3)]);
  assertEquals(got, 5);
  assertEquals([n3.log.lastIndex, n3.committed], [5, 5]);
  assertEquals([3, 4, 5].map((i) => n3.log.termAt(i)), [3, 3, 3]);
  net.process("n3");
  assert(
    net.node("n3").readies.some((rd) => rd.truncateFrom === 3),
    "storage is told to drop 3.. first",
  );
  const stored = net.node("n3").store.getRange(1, 10);
  assertEquals(stored.map((e) => [e.index, e.term]), [[1, 1], [2, 2], [3, 3], [4, 3], [5, 3]]);
  assertEquals(net.commands("n3"), ["x", "c3", "c4", "c5"]);
});

test("installCommitted: nothing is installed when prev does not match", () => {
  const net = TestNet.withVoters(IDS);
  const n3 = net.core("n3");
  assertEquals(n3.installCommitted(5, 1, cmds(6, 9, 1)), 0, "a hole before the entries");
  assertEquals(n3.installCommitted(1, 2, cmds(2, 4, 2)), 0, "another term at prev");
  assertEquals(n3.installCommitted(1, 1, []), 0, "no entries");
  assertEquals([n3.log.lastIndex, n3.committed], [1, 0]);
  net.process("n3");
  assert(net.node("n3").readies.every((rd) => rd.entries.length === 0), "nothing written");
});

test("installCommitted: a leader installs nothing", () => {
  const net = TestNet.withVoters(IDS);
  net.elect("n1");
  net.run(2);
  const n1 = net.core("n1");
  const [last, term, committed] = [n1.log.lastIndex, n1.term, n1.committed];
  assertEquals(n1.installCommitted(last, term, [cmd(last + 1, term), cmd(last + 2, term)]), 0);
  assertEquals([n1.log.lastIndex, n1.committed], [last, committed]);
});

test("installCommitted: a node without a cluster takes the log from index 1 and learns its cluster", () => {
  const net = TestNet.withVoters(IDS);
  const fresh = net.add("n4").core;
  assertEquals(fresh.clusterId, undefined);
  assertEquals(fresh.installCommitted(1, 1, cmds(2, 4, 1)), 0, "not from index 1");
  assertEquals(fresh.installCommitted(0, 0, []), 0);
  assertEquals(fresh.log.lastIndex, 0);
  const entries = net.node("n1").store.getRange(1, 1);
  assert(SystemEntry.is(entries[0]!.command));
  assertEquals(fresh.installCommitted(0, 0, [...entries, ...cmds(2, 4, 1)]), 4);
  assertEquals(fresh.clusterId, "c0ffee", "the bootstrap entry names the cluster");
  assertEquals(fresh.membership.voters, IDS);
  assertEquals(fresh.committed, 4);
  net.process("n4");
  assertEquals(net.commands("n4"), ["c2", "c3", "c4"]);
  // from now on it continues like any member
  assertEquals(fresh.installCommitted(4, 1, cmds(5, 6, 1)), 6);
});

test("installCommitted: a node without a cluster refuses entries after a matching prev above 0", () => {
  const net = TestNet.withVoters(IDS);
  // a log that holds an entry but no bootstrap entry: no cluster
  const odd = net.add("n4", {}, { hardState: { term: 1 }, entries: [cmd(1, 1, "x")] }).core;
  assertEquals([odd.clusterId, odd.log.lastIndex], [undefined, 1]);
  assertEquals(odd.installCommitted(1, 1, cmds(2, 3, 1)), 0);
  assertEquals(odd.log.lastIndex, 1);
});

// ---- the leader's hand-off (syncLag) ---------------------------------------------------------

/**
 * n1 leads n1..n3 with `syncLag`; n3 is cut off from the start while n1 commits
 * `proposals` entries with n2 (committed = 2 + proposals: bootstrap, noop, commands).
 * Returns with n3 reconnected but nothing delivered yet.
 */
function lagging(proposals: number, syncLag = 10): TestNet {
  const net = TestNet.withVoters(IDS, { syncLag });
  net.isolate("n3");
  net.elect("n1");
  net.run(2);
  for (let i = 0; i < proposals; i++) {
    assert(net.core("n1").propose([`p${i}`]).ok);
    net.process("n1");
    net.deliver();
  }
  assertEquals(net.core("n1").committed, 2 + proposals);
  assertEquals(net.core("n3").log.lastIndex, 1);
  net.heal();
  return net;
}

/** Ticks everyone and delivers, recording every delivered message. */
function runLogged(net: TestNet, rounds: number, log: RaftMessage[]): void {
  for (let r = 0; r < rounds; r++) {
    net.tickAll();
    net.deliver(100_000, (m) => {
      log.push(m);
      return true;
    });
  }
}

const appendsTo = (log: RaftMessage[], to: string) =>
  log.filter((m) => m.type === "append" && m.to === to && m.entries.length > 0);
const heartbeatsTo = (log: RaftMessage[], to: string) =>
  log.filter((m) => m.type === "heartbeat" && m.to === to);

/** n1's stored entries `from..to`, with the term before them. */
function fromLeader(net: TestNet, from: number, to: number) {
  const store = net.node("n1").store;
  return { prevTerm: store.termAt(from - 1)!, entries: store.getRange(from, to) };
}

test("syncLag: a follower less than syncLag behind is replicated to by the leader", () => {
  const net = lagging(8); // committed 10, n3 at 1: 9 behind
  const log: RaftMessage[] = [];
  runLogged(net, 10, log);
  assert(appendsTo(log, "n3").length > 0, "entries sent");
  assertEquals(net.core("n3").log.lastIndex, 10);
  assertEquals(net.commands("n3").length, 8);
});

test("syncLag: the leader sends a follower syncLag or more behind only heartbeats", () => {
  const net = lagging(9); // committed 11, n3 at 1: 10 behind
  const log: RaftMessage[] = [];
  runLogged(net, 10, log);
  // new entries are not sent to n3 either
  net.core("n1").propose(["more"]);
  net.process("n1");
  runLogged(net, 10, log);
  assertEquals(appendsTo(log, "n3"), [], "no entries for n3");
  assert(heartbeatsTo(log, "n3").length >= 5, "heartbeats keep flowing");
  assertEquals(net.core("n3").log.lastIndex, 1);
  assertEquals(net.core("n3").leader, "n1");
  assertEquals(net.core("n2").log.lastIndex, 12, "n2 is replicated as usual");
});

test("syncLag: replication resumes once heartbeat answers show the follower less than syncLag behind", () => {
  const net = lagging(30); // committed 32
  const n3 = net.core("n3");
  const log: RaftMessage[] = [];
  runLogged(net, 6, log);
  assertEquals(appendsTo(log, "n3"), []);
  // state sync installs 2..15: still 17 behind
  let w = fromLeader(net, 2, 15);
  assertEquals(n3.installCommitted(1, w.prevTerm, w.entries), 15);
  net.process("n3");
  runLogged(net, 6, log);
  assertEquals(appendsTo(log, "n3"), [], "still syncLag or more behind");
  assertEquals(n3.log.lastIndex, 15);
  // 16..22: exactly syncLag (10) behind
  w = fromLeader(net, 16, 22);
  assertEquals(n3.installCommitted(15, w.prevTerm, w.entries), 22);
  net.process("n3");
  runLogged(net, 6, log);
  assertEquals(appendsTo(log, "n3"), [], "syncLag behind is still too far");
  // 23..25: 7 behind
  w = fromLeader(net, 23, 25);
  assertEquals(n3.installCommitted(22, w.prevTerm, w.entries), 25);
  net.process("n3");
  runLogged(net, 6, log);
  const appends = appendsTo(log, "n3");
  assert(appends.length > 0, "the leader replicates again");
  const first = appends[0]!;
  assert(first.type === "append");
  assertEquals(first.prevLogIndex, 25, "from where the follower's log ends");
  assertEquals(first.entries[0]!.index, 26);
  assertEquals(n3.log.lastIndex, 32);
  assertEquals(n3.committed, 32);
  assertEquals(net.commands("n3"), Array.from({ length: 30 }, (_, i) => `p${i}`));
  // and keeps replicating new entries
  net.core("n1").propose(["after"]);
  net.process("n1");
  net.deliver();
  assertEquals(n3.log.lastIndex, 33);
});

/** Ticks and delivers until `count` heartbeat answers from n3 reached n1; returns the appends n1 sent n3. */
function untilAnswers(net: TestNet, count: { seen: number }, target: number): RaftMessage[] {
  const appends: RaftMessage[] = [];
  for (let r = 0; r < 1000 && count.seen < target; r++) {
    net.tickAll();
    net.deliver(100_000, (m) => {
      if (m.type === "heartbeatResponse" && m.from === "n3" && m.to === "n1") {
        if (count.seen >= target) return false; // held back: exactly `target` answers
        count.seen++;
      }
      if (m.type === "append" && m.to === "n3" && m.entries.length > 0) appends.push(m);
      return true;
    });
  }
  assertEquals(count.seen, target);
  return appends;
}

test("syncLag: after 20 heartbeat answers without progress the leader replicates itself", () => {
  const net = lagging(30);
  const count = { seen: 0 };
  // the first answer puts n3 in syncing; 19 more without progress change nothing
  assertEquals(untilAnswers(net, count, 20), []);
  assertEquals(net.core("n3").log.lastIndex, 1);
  // the 20th answer without progress (21st in all) ends the hand-off
  const appends = untilAnswers(net, count, 21);
  assert(appends.length > 0, "the leader sends entries again");
  net.run(20);
  assertEquals(net.core("n3").log.lastIndex, 32);
  assertEquals(net.commands("n3"), Array.from({ length: 30 }, (_, i) => `p${i}`));
});

test("syncLag: progress in heartbeat answers restarts the stall count", () => {
  const net = lagging(30);
  const count = { seen: 0 };
  assertEquals(untilAnswers(net, count, 11), [], "syncing, 10 answers without progress");
  // a little progress, still far behind
  const w = fromLeader(net, 2, 5);
  assertEquals(net.core("n3").installCommitted(1, w.prevTerm, w.entries), 5);
  net.process("n3");
  // the answer showing 5 resets the count: 20 more stalls are needed after it
  assertEquals(untilAnswers(net, count, 12 + 19), [], "not given up yet");
  const appends = untilAnswers(net, count, 12 + 20);
  assert(appends.length > 0, "given up after 20 answers without progress");
  const first = appends[0]!;
  assert(first.type === "append");
  assertEquals(first.prevLogIndex, 5);
});
