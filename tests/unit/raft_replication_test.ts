// Raft core: replication, batching, conflicts, fast backtracking, the commit rule, entry fetching.

import { test } from "../harness.ts";
import { assert, assertEquals, assertThrows } from "../assert.ts";
import { type CoreFactory, TestNet } from "../raft_net.ts";
import { InvariantError, RaftCore } from "../../lib/raft/core.ts";
import { RaftLog } from "../../lib/raft/log.ts";
import { SeededRng } from "../../lib/primitives/rng.ts";
import { type LogEntry, SystemEntry } from "../../storage/types.ts";
import type { AppendRequest, RaftMessage } from "../../lib/raft/types.ts";

const IDS = ["n1", "n2", "n3"];

test("raft: proposals replicate and commit on every node in order", () => {
  const net = TestNet.withVoters(IDS);
  net.elect("n1");
  for (let i = 0; i < 50; i++) {
    const r = net.core("n1").propose([`c${i}`]);
    assert(r.ok);
    net.process("n1");
    if (i % 7 === 0) net.deliver();
  }
  net.run(5);
  const expected = Array.from({ length: 50 }, (_, i) => `c${i}`);
  for (const id of IDS) assertEquals(net.commands(id), expected, id);
});

test("raft: a follower refuses proposals; an empty batch is refused", () => {
  const net = TestNet.withVoters(IDS);
  net.elect("n1");
  assertEquals(net.core("n2").propose(["x"]), { ok: false, reason: "notLeader" });
  assertEquals(net.core("n1").propose([]), { ok: false, reason: "empty" });
});

test("raft: AppendEntries are batched, bounded by count and bytes, and pipelined", () => {
  const net = TestNet.withVoters(IDS, {
    maxEntriesPerMessage: 10,
    maxBytesPerMessage: 1000,
    maxInflight: 4,
  });
  net.elect("n1");
  net.run(2);
  net.core("n1").propose(Array.from({ length: 100 }, (_, i) => i));
  net.process("n1");
  const appends = net.queue.filter((m): m is AppendRequest => m.type === "append" && m.to === "n2");
  assertEquals(appends.length, 4, "pipelined up to maxInflight messages");
  for (const a of appends) assert(a.entries.length === 10, `batch of ${a.entries.length}`);
  net.deliver();
  net.run(3);
  assertEquals(net.commands("n2").length, 100);
  // bytes bound: 64-byte entries → at most 15 per message
  const bytes = TestNet.withVoters(IDS, { maxEntriesPerMessage: 1000, maxBytesPerMessage: 1000 });
  bytes.elect("n1");
  bytes.run(2);
  bytes.core("n1").propose(Array.from({ length: 100 }, (_, i) => i));
  bytes.process("n1");
  const big = bytes.queue.filter((m): m is AppendRequest => m.type === "append" && m.to === "n2");
  assert(big.length > 0 && big.every((a) => a.entries.length <= 15), "byte bound respected");
});

test("raft: a follower with a divergent suffix is truncated, with few round trips", () => {
  const net = TestNet.withVoters(IDS);
  net.elect("n1");
  net.run(3);
  // n1 leads term 2 but n3 does not hear of 60 entries n1 appends; n1 then loses leadership
  net.isolate("n1");
  for (let i = 0; i < 60; i++) net.core("n1").propose([`stale${i}`]);
  net.process("n1");
  net.deliver();
  net.until(() => net.leaders().some((l) => l !== "n1"), 300, "new leader");
  const leader = net.leaders().find((l) => l !== "n1")!;
  for (let i = 0; i < 5; i++) net.core(leader).propose([`new${i}`]);
  net.process(leader);
  net.deliver();
  net.run(2);
  // heal: n1 holds 60 uncommitted entries of an old term that must go
  net.heal();
  const before = net.delivered;
  net.until(() =>
    net.core("n1").committed === net.core(leader).committed && net.core("n1").leader === leader
  );
  net.run(2);
  for (const id of IDS) {
    assertEquals(net.commands(id), ["new0", "new1", "new2", "new3", "new4"], id);
  }
  assert(net.delivered - before < 80, `backtracking took ${net.delivered - before} deliveries`);
  // the old entries are gone from n1's durable log too
  assertEquals(net.node("n1").store.last(), net.node(leader).store.last());
});

/**
 * Raft's Figure 8, with one entry per message so single entries can be held
 * back. Returns the new leader's commit index at the moment its old-term
 * entry sits on a majority but no entry of its own term does.
 */
function figure8(factory?: CoreFactory): { early: number; late: number; applied: unknown[] } {
  const ids = ["n1", "n2", "n3", "n4", "n5"];
  const net = TestNet.withVoters(ids, { maxEntriesPerMessage: 1 }, factory);
  const only = (members: string[]) => {
    net.heal();
    for (const a of ids) {
      for (const b of ids) {
        if (!(members.includes(a) && members.includes(b))) net.blocked.add(`${a}->${b}`);
      }
    }
  };
  net.elect("n1");
  net.run(3);
  // term 2: n1 replicates index 3 ("old") to n2 only
  only(["n1", "n2"]);
  net.core("n1").propose(["old"]);
  net.process("n1");
  net.deliver();
  assertEquals(net.core("n2").log.termAt(3), 2);
  // a leader of a later term among n3..n5 appends an entry nobody else receives
  const group = ["n3", "n4", "n5"];
  only(group);
  const noLeaderAppends = (m: { type: string; from: string }) =>
    !(m.type === "append" && group.includes(m.from));
  let later: string | undefined;
  for (let r = 0; r < 300 && (later === undefined || net.core("n1").role === "leader"); r++) {
    net.tickAll(); // n1 too: cut off from the majority, check-quorum makes it step down
    net.deliver(100_000, noLeaderAppends);
    later = group.find((id) => net.core(id).role === "leader");
  }
  assert(later !== undefined, "a leader among n3..n5");
  const laterTerm = net.core(later).term;
  net.queue = [];
  const [x] = group.filter((id) => id !== later);
  // n1 comes back with n2 and x; one of n1/n2 (both hold "old") wins a newer term, and
  // its new-term entries are held back so only "old" spreads
  only(["n1", "n2", x!]);
  // (appends still flow, without their new-term entries, so the leader learns who holds "old")
  const holdNew = (m: RaftMessage): RaftMessage =>
    m.type === "append" ? { ...m, entries: m.entries.filter((e) => e.term <= laterTerm) } : m;
  const leaderOf = () =>
    ["n1", "n2"].find((id) => net.core(id).role === "leader" && net.core(id).term > laterTerm);
  for (let r = 0; r < 300 && leaderOf() === undefined; r++) {
    for (const id of ["n1", "n2", x!]) net.tick(id);
    net.deliver(100_000, holdNew);
  }
  const newLeader = leaderOf();
  assert(newLeader !== undefined, "n1 or n2 leads a newer term");
  const lead = net.core(newLeader);
  for (let r = 0; r < 5; r++) {
    for (const id of ["n1", "n2", x!]) net.tick(id);
    net.deliver(100_000, holdNew);
  }
  assert(
    ["n1", "n2", x!].every((id) => net.core(id).log.termAt(3) === 2),
    "old entry on a majority",
  );
  assertEquals(lead.role, "leader");
  const early = lead.committed;
  // once an entry of the current term reaches a majority, everything up to it commits
  for (let r = 0; r < 5; r++) {
    for (const id of ["n1", "n2", x!]) net.tick(id);
    net.deliver();
  }
  return { early, late: lead.committed, applied: net.commands(newLeader) };
}

test("raft: an old-term entry is not committed by counting replicas (Raft §5.4.2)", () => {
  const { early, late, applied } = figure8();
  assertEquals(early, 2, "an old-term entry was committed by counting replicas");
  assert(late >= 4, `committed ${late}`);
  assertEquals(applied, ["old"]);
});

test("raft: the Figure 8 scenario catches a core that commits old-term entries by counting", () => {
  class CountingCore extends RaftCore {
    protected override commitCandidate(quorumIndex: number): number {
      return quorumIndex;
    }
  }
  const { early } = figure8((c, i) => new CountingCore(c, i));
  assertEquals(early, 3, "the broken rule commits index 3 early, and the scenario sees it");
});

test("raft: lagging followers get entries fetched from storage when the cache is small", () => {
  const net = TestNet.withVoters(IDS, { cacheEntries: 4, maxEntriesPerMessage: 5 });
  net.elect("n1");
  net.run(2);
  net.isolate("n3");
  for (let i = 0; i < 40; i++) {
    net.core("n1").propose([i]);
    net.process("n1");
    net.deliver();
  }
  net.run(2);
  assert(net.core("n1").log.memoryEntries() < 40, "the leader's cache stays bounded");
  net.heal();
  net.run(30);
  assertEquals(net.commands("n3"), Array.from({ length: 40 }, (_, i) => i));
  assert(net.node("n1").readies.some((rd) => rd.fetch.length > 0), "entries were fetched");
});

test("raft: a leader's commit reaches followers without new proposals", () => {
  const net = TestNet.withVoters(IDS);
  net.elect("n1");
  net.core("n1").propose(["a"]);
  net.process("n1");
  net.deliver();
  for (const id of IDS) assertEquals(net.core(id).committed, 3, id);
});

test("raft log: run-length terms, conflicts, findConflictByTerm and eviction", () => {
  const log = new RaftLog({ term: 0, index: 0 }, 3, 8);
  const e = (index: number, term: number): LogEntry<unknown> => ({ index, term, command: index });
  log.append([e(1, 1), e(2, 1), e(3, 2), e(4, 2), e(5, 2), e(6, 4)]);
  assertEquals([0, 1, 2, 3, 4, 5, 6, 7].map((i) => log.termAt(i)), [
    0,
    1,
    1,
    2,
    2,
    2,
    4,
    undefined,
  ]);
  assertEquals(log.findConflictByTerm(6, 3), 5);
  assertEquals(log.findConflictByTerm(6, 1), 2);
  assertEquals(log.findConflictByTerm(6, 0), 0);
  assertEquals(log.findConflictByTerm(3, 9), 3);
  assert(
    log.isUpToDate(6, 4) && log.isUpToDate(1, 5) && !log.isUpToDate(7, 3) && !log.isUpToDate(5, 4),
  );
  // conflict at 4: truncate and append
  const r = log.maybeAppend(3, 2, [e(4, 2), { index: 5, term: 3, command: "x" }]);
  assertEquals(r, { lastNew: 5, written: 5 });
  assertEquals(log.lastIndex, 5);
  assertEquals(log.termAt(5), 3);
  assertEquals(log.entry(5)?.command, "x");
  assertEquals(log.maybeAppend(5, 2, []), undefined, "prev term mismatch");
  const u = log.takeUnstable();
  assertEquals(u.entries.map((x) => x.index), [1, 2, 3, 4, 5]);
  log.persistedTo(5);
  log.commitTo(4);
  assertThrows(() => log.truncate(3), InvariantError);
  log.applied = 4;
  log.evict();
  assertEquals(log.entry(1), undefined, "applied, persisted and beyond the cache limit");
  assert(log.entry(5) !== undefined);
  assertEquals(
    log.provide([e(1, 1), { index: 2, term: 9, command: 0 }]),
    1,
    "only matching entries are kept",
  );
  assert(log.entry(1) !== undefined);
});

test("raft: truncating a committed entry is an invariant violation, not silent data loss", () => {
  const core = new RaftCore({
    id: "a",
    electionTicks: 10,
    electionJitterTicks: 1,
    heartbeatTicks: 1,
    bootstrapTicks: 0,
    leadershipMultiplier: 1,
    canVote: true,
    autoBootstrap: true,
    rng: new SeededRng(1),
  });
  core.bootstrap();
  core.advance(core.ready());
  assertEquals(core.committed, 1);
  assertThrows(() => core.log.truncate(1), InvariantError);
  assert(SystemEntry.is(core.log.entry(1)?.command));
});

test("raft: replication resumes after every pipelined append to a follower was lost", () => {
  const net = TestNet.withVoters(IDS, { maxEntriesPerMessage: 2, maxInflight: 3 });
  net.elect("n1");
  net.run(2);
  const n1 = net.core("n1");
  // lose appends to n3 only (heartbeats still flow), while filling its window
  for (let i = 0; i < 30; i++) {
    n1.propose([i]);
    net.process("n1");
    net.deliver(100_000, (m) => !(m.type === "append" && m.to === "n3"));
  }
  assert(net.core("n3").log.lastIndex < 5);
  net.run(40);
  assertEquals(net.commands("n3").length, 30);
});

test("raft: connectivity hints make the leader probe a peer at once", () => {
  const net = TestNet.withVoters(IDS);
  net.elect("n1");
  net.run(2);
  const n1 = net.core("n1");
  n1.reportUnreachable("n2");
  n1.reportConnected("n2");
  net.process("n1");
  const probe = net.queue.find((m) => m.type === "append" && m.to === "n2");
  assert(probe !== undefined, "reconnect sends an append right away");
  net.deliver();
  n1.propose(["after"]);
  net.process("n1");
  net.deliver();
  assertEquals(net.commands("n2"), ["after"]);
});

test("raft: each missing range is read from storage once, even with slow reads and several lagging peers", () => {
  const ids = ["n1", "n2", "n3", "n4", "n5"];
  const net = TestNet.withVoters(ids, { cacheEntries: 4, maxEntriesPerMessage: 5 });
  net.deferFetches = true;
  net.elect("n1");
  net.run(2);
  for (const id of ["n4", "n5"]) net.isolate(id);
  for (let i = 0; i < 100; i++) {
    net.core("n1").propose([i]);
    net.process("n1");
    net.deliver();
  }
  net.run(3);
  net.heal();
  net.until(
    () => net.commands("n4").length === 100 && net.commands("n5").length === 100,
    500,
    "catch-up",
  );
  const requested = net.fetchLog.get("n1") ?? [];
  const distinct = new Set(requested.map((r) => r.start)).size;
  // two lagging peers share the same ranges; allow a retry per range, never a storm
  assert(requested.length <= 2 * distinct + 4, `${requested.length} reads for ${distinct} ranges`);
});

test("raft: a commit-only append to an up-to-date follower is sent once and not answered", () => {
  const net = TestNet.withVoters(IDS);
  net.elect("n1");
  net.run(2);
  net.core("n1").propose(["a"]);
  net.process("n1");
  const seen: RaftMessage[] = [];
  net.deliver(100_000, (m) => {
    seen.push(m);
    return true;
  });
  for (const id of IDS) assertEquals(net.commands(id), ["a"], id);
  const last = net.core("n1").log.lastIndex;
  const quiet: string[] = [];
  for (const id of ["n2", "n3"]) {
    const appends = seen.filter((m): m is AppendRequest => m.type === "append" && m.to === id);
    const commitOnly = appends.filter((a) => a.entries.length === 0);
    // One append carried the entry, and one the commit index that covers it: no more.
    assertEquals(appends.length, 2, `${id}: ${JSON.stringify(appends)}`);
    assertEquals(commitOnly.length, 1);
    assertEquals(commitOnly[0]!.leaderCommit, last);
    assertEquals(net.core(id).committed, last, `${id} learnt the commit`);
    const answers = seen.filter((m) => m.type === "appendResponse" && m.from === id);
    if (commitOnly[0]!.noReply === true) {
      // The leader knew it held everything: it answered the entry, not the commit.
      quiet.push(id);
      assertEquals(answers.length, 1, id);
    } else {
      assertEquals(answers.length, 2, id);
    }
  }
  // The follower whose answer made the commit was known to hold everything.
  assert(quiet.length >= 1, "a commit-only append went out without asking for an answer");
});

test("raft: a follower whose log does not match still answers a commit-only append", () => {
  const net = TestNet.withVoters(IDS);
  net.elect("n1");
  net.run(2);
  const n2 = net.core("n2");
  const beyond = n2.log.lastIndex + 5;
  n2.step({
    type: "append",
    from: "n1",
    to: "n2",
    term: n2.term,
    ...(n2.clusterId === undefined ? {} : { clusterId: n2.clusterId }),
    prevLogIndex: beyond,
    prevLogTerm: n2.term,
    entries: [],
    leaderCommit: n2.committed,
    noReply: true,
  });
  net.queue = [];
  net.process("n2");
  const answer = net.queue.find((m) => m.type === "appendResponse" && m.from === "n2");
  assert(answer !== undefined && answer.type === "appendResponse", "n2 answers");
  assert(!answer.success);
  assertEquals(answer.rejectIndex, beyond);
});

test("raft: a follower that handles several appends in one Ready answers the leader once", () => {
  const net = TestNet.withVoters(IDS, { maxEntriesPerMessage: 10, maxInflight: 8 });
  net.elect("n1");
  net.run(2);
  net.core("n1").propose(Array.from({ length: 40 }, (_, i) => i));
  net.process("n1");
  const appends = net.queue.filter((m): m is AppendRequest => m.type === "append" && m.to === "n2");
  assertEquals(appends.length, 4);
  net.queue = net.queue.filter((m) => !appends.includes(m as AppendRequest));
  // All four arrive before n2 drains its Ready (its store is busy with an earlier write).
  for (const a of appends) net.core("n2").step(a);
  net.process("n2");
  const answers = net.queue.filter((m) => m.type === "appendResponse" && m.from === "n2");
  assertEquals(answers.length, 1, "one cumulative answer");
  assert(answers[0]!.type === "appendResponse" && answers[0]!.success);
  assertEquals(answers[0]!.matchIndex, appends[3]!.entries.at(-1)!.index);
  // That one answer frees the whole pipeline: everything commits everywhere.
  net.deliver();
  net.run(3);
  const expected = Array.from({ length: 40 }, (_, i) => i);
  for (const id of IDS) assertEquals(net.commands(id).slice(-40), expected, id);
  // A rejection is never merged into a success, nor a success into a rejection.
  const lone = net.core("n3");
  lone.step({ ...appends[0]!, to: "n3", prevLogIndex: 10_000, prevLogTerm: appends[0]!.term });
  lone.step({ ...appends[0]!, to: "n3" });
  net.process("n3");
  const fromN3 = net.queue.filter((m) => m.type === "appendResponse" && m.from === "n3");
  assertEquals(fromN3.map((m) => m.type === "appendResponse" && m.success), [false, true]);
});
