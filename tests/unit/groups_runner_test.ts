// CoreRunner: async storage ordering, command waiters (applied / lost), ReadIndex reads, restart, fatal storage errors.

import { test } from "../harness.ts";
import { Counter, type CounterCommand } from "../counter.ts";
import { assert, assertEquals, assertRejects } from "../assert.ts";
import { CoreRunner, ReadDroppedError } from "../../lib/groups/runner.ts";
import { CommandLostError, GroupTerminatedError } from "../../lib/groups/errors.ts";
import type { NodeId, RaftMessage } from "../../lib/raft/types.ts";
import { SeededRng } from "../../lib/primitives/rng.ts";
import { InMemoryLogStore } from "../../storage/memory.ts";
import { type HardState, type LogEntry, type Storage, SystemEntry } from "../../storage/types.ts";

type Cmd = CounterCommand;

/** Every call answers asynchronously (after a macrotask-free microtask hop), like a real store. */
class AsyncStore implements Storage<Cmd> {
  readonly inner = new InMemoryLogStore<Cmd>();
  failAppends = false;
  /** While set, appends wait for it (a slow disk). */
  gate: Promise<void> | undefined;
  #later<T>(f: () => T): Promise<T> {
    return Promise.resolve().then(() => Promise.resolve()).then(f);
  }
  append(entries: readonly LogEntry<Cmd>[]) {
    if (this.failAppends) return Promise.reject(new Error("disk full"));
    if (this.gate !== undefined) return this.gate.then(() => this.inner.append(entries));
    return this.#later(() => this.inner.append(entries));
  }
  available() {
    return this.#later(() => this.inner.available());
  }
  get(i: number) {
    return this.#later(() => this.inner.get(i));
  }
  getRange(a: number, b: number) {
    return this.#later(() => this.inner.getRange(a, b));
  }
  truncate(i: number) {
    return this.#later(() => this.inner.truncate(i));
  }
  last() {
    return this.#later(() => this.inner.last());
  }
  termAt(i: number) {
    return this.#later(() => this.inner.termAt(i));
  }
  prunePrefix(i: number) {
    return this.#later(() => this.inner.prunePrefix(i));
  }
  resetTo(c: { term: number; index: number }) {
    return this.#later(() => this.inner.resetTo(c));
  }
  loadHardState() {
    return this.#later(() => this.inner.loadHardState());
  }
  saveHardState(h: HardState) {
    return this.#later(() => this.inner.saveHardState(h));
  }
}

interface Node {
  runner: CoreRunner<Counter>;
  machine: Counter;
  store: AsyncStore;
  fatal: unknown[];
}

/** Runners n1..n3 joined by a message queue that the test drains explicitly. */
class Hub {
  readonly nodes = new Map<NodeId, Node>();
  queue: RaftMessage[] = [];
  readonly blocked = new Set<NodeId>();
  /** Violations of "persist before send" seen at send time. */
  readonly violations: string[] = [];

  async add(id: NodeId, store = new AsyncStore(), voters?: NodeId[]): Promise<Node> {
    if (voters !== undefined) {
      await store.inner.append([{
        index: 1,
        term: 1,
        command: new SystemEntry({ type: "bootstrap", clusterId: "c1", voters }) as unknown as Cmd,
      }]);
      store.inner.saveHardState({ term: 1 });
    }
    const machine = new Counter();
    const fatal: unknown[] = [];
    const runner = await CoreRunner.open({
      raft: {
        id,
        electionTicks: 10,
        electionJitterTicks: 10,
        heartbeatTicks: 2,
        bootstrapTicks: 0,
        leadershipMultiplier: 1,
        canVote: true,
        autoBootstrap: false,
        rng: new SeededRng(id.charCodeAt(1)),
      },
      machine,
      storage: store,
      send: (to, m) => {
        // a granted vote may only leave after the vote is durable
        if (m.type === "voteResponse" && m.granted && !m.preVote) {
          const hs = store.inner.loadHardState();
          if (hs?.votedFor !== to || hs.term !== m.term) {
            this.violations.push(`${id} voted before persisting`);
          }
        }
        this.queue.push(m);
      },
      onFatal: (err) => fatal.push(err),
    });
    const node = { runner, machine, store, fatal };
    this.nodes.set(id, node);
    return node;
  }

  /** Lets every pending storage promise and Ready loop finish. */
  async settle(): Promise<void> {
    for (let i = 0; i < 50; i++) await new Promise<void>((r) => queueMicrotask(r));
  }

  async deliver(): Promise<void> {
    for (let round = 0; round < 200 && this.queue.length > 0; round++) {
      const batch = this.queue;
      this.queue = [];
      for (const m of batch) {
        if (this.blocked.has(m.from) || this.blocked.has(m.to)) continue;
        this.nodes.get(m.to)?.runner.step(m);
      }
      await this.settle();
    }
  }

  async run(rounds: number): Promise<void> {
    for (let r = 0; r < rounds; r++) {
      for (const n of this.nodes.values()) n.runner.tick();
      await this.settle();
      await this.deliver();
    }
  }

  async until(cond: () => boolean, rounds = 300): Promise<void> {
    for (let r = 0; r < rounds && !cond(); r++) await this.run(1);
    assert(cond(), "condition not reached");
  }

  leader(): [NodeId, Node] | undefined {
    for (const [id, n] of this.nodes) if (n.runner.core.role === "leader") return [id, n];
    return undefined;
  }

  close(): void {
    for (const n of this.nodes.values()) n.runner.close();
  }
}

async function cluster(): Promise<Hub> {
  const hub = new Hub();
  const ids = ["n1", "n2", "n3"];
  for (const id of ids) await hub.add(id, new AsyncStore(), ids);
  await hub.until(() => hub.leader() !== undefined);
  await hub.run(3);
  return hub;
}

test("runner: commands commit, apply on every node, and waiters resolve after apply", async () => {
  const hub = await cluster();
  try {
    const [, leader] = hub.leader()!;
    const p = await leader.runner.propose([{ add: 2 }, { add: 3 }]);
    assert(p.ok);
    const applied = leader.runner.waitApplied(p.range, p.term);
    await hub.run(3);
    await applied;
    assertEquals(leader.machine.value, 5, "resolved only once the machine holds the effect");
    for (const n of hub.nodes.values()) assertEquals(n.machine.value, 5);
    assertEquals(hub.violations, []);
    const follower = [...hub.nodes.values()].find((n) => n !== leader)!;
    assertEquals(await follower.runner.propose([{ add: 1 }]), { ok: false, reason: "notLeader" });
  } finally {
    hub.close();
  }
});

test("runner: a command lost to a leader change rejects with CommandLostError", async () => {
  const hub = await cluster();
  try {
    const [oldId, old] = hub.leader()!;
    hub.blocked.add(oldId); // its proposal never leaves
    const p = await old.runner.propose([{ add: 100 }]);
    assert(p.ok);
    const lost = old.runner.waitApplied(p.range, p.term);
    lost.catch(() => {});
    await hub.until(() =>
      [...hub.nodes].some(([id, n]) => id !== oldId && n.runner.core.role === "leader")
    );
    const [, next] = [...hub.nodes].find(([id, n]) =>
      id !== oldId && n.runner.core.role === "leader"
    )!;
    const q = await next.runner.propose([{ add: 1 }, { add: 1 }]);
    assert(q.ok);
    await hub.run(3);
    hub.blocked.clear();
    await hub.until(() => old.machine.value === 2);
    const err = await assertRejects(() => lost, CommandLostError);
    assert(err.message.length > 0);
    for (const n of hub.nodes.values()) {
      assertEquals(n.machine.value, 2, "the lost command never applied");
    }
  } finally {
    hub.close();
  }
});

test("runner: a strong read at a follower sees every write acknowledged before it", async () => {
  const hub = await cluster();
  try {
    const [, leader] = hub.leader()!;
    const follower = [...hub.nodes.values()].find((n) => n !== leader)!;
    const p = await leader.runner.propose([{ add: 7 }]);
    assert(p.ok);
    const done = leader.runner.waitApplied(p.range, p.term);
    await hub.run(2);
    await done;
    const read = follower.runner.readIndex();
    await hub.run(2);
    const index = await read;
    assert(index >= p.range.end);
    assert(follower.runner.applied.index >= index);
    assertEquals(follower.machine.query(), 7);
  } finally {
    hub.close();
  }
});

test("runner: a read with no leader is dropped, not left hanging", async () => {
  const hub = new Hub();
  try {
    const n = await hub.add("n1", new AsyncStore(), ["n1", "n2", "n3"]);
    const read = n.runner.readIndex();
    await hub.settle();
    await assertRejects(() => read, ReadDroppedError);
  } finally {
    hub.close();
  }
});

test("runner: a restarted node keeps term and vote and rebuilds its machine from the log", async () => {
  const hub = await cluster();
  try {
    const [, leader] = hub.leader()!;
    const p = await leader.runner.propose([{ add: 4 }, { add: 5 }]);
    assert(p.ok);
    await hub.run(3);
    const [id, node] = [...hub.nodes].find(([, n]) => n !== leader)!;
    const term = node.runner.core.term;
    const vote = node.runner.core.votedFor;
    node.runner.close();
    const again = await hub.add(id, node.store);
    assertEquals(again.runner.core.term, term);
    assertEquals(again.runner.core.votedFor, vote);
    assertEquals(again.machine.value, 0, "volatile state is gone");
    await hub.run(3);
    assertEquals(again.machine.value, 9, "replayed as the commit index advanced");
  } finally {
    hub.close();
  }
});

test("runner: a storage failure stops the runner and rejects its waiters", async () => {
  const hub = await cluster();
  try {
    const [, leader] = hub.leader()!;
    leader.store.failAppends = true;
    const p = await leader.runner.propose([{ add: 1 }]);
    assert(p.ok);
    const waiting = leader.runner.waitApplied(p.range, p.term);
    waiting.catch(() => {});
    await hub.settle();
    assertEquals(leader.fatal.length, 1);
    await assertRejects(() => waiting, Error, "disk full");
    await assertRejects(() => leader.runner.propose([{ add: 1 }]), GroupTerminatedError);
  } finally {
    hub.close();
  }
});

test("runner: a restarted node never votes twice in one term", async () => {
  const hub = new Hub();
  const store = new AsyncStore();
  const vote = (from: NodeId): RaftMessage => ({
    type: "vote",
    from,
    to: "n2",
    term: 5,
    clusterId: "c1",
    preVote: false,
    lastLogIndex: 1,
    lastLogTerm: 1,
    transfer: false,
  });
  const answerTo = (to: NodeId) =>
    hub.queue.find((m) => m.type === "voteResponse" && m.to === to && !m.preVote);
  try {
    const before = await hub.add("n2", store, ["n1", "n2", "n3"]);
    before.runner.step(vote("n1"));
    await hub.settle();
    const first = answerTo("n1");
    assert(first?.type === "voteResponse" && first.granted, "n2 votes for n1 in term 5");
    before.runner.close();
    hub.queue = [];

    // Restarted from the same store: the vote for n1 in term 5 is remembered.
    const after = await hub.add("n2", store);
    assertEquals(after.runner.core.term, 5);
    assertEquals(after.runner.core.votedFor, "n1");
    after.runner.step(vote("n3"));
    await hub.settle();
    const second = answerTo("n3");
    assert(second?.type === "voteResponse" && !second.granted, "no second vote in term 5");
    after.runner.step(vote("n1"));
    await hub.settle();
    const repeat = answerTo("n1");
    assert(repeat?.type === "voteResponse" && repeat.granted, "the same vote may be repeated");
    assertEquals(hub.violations, []);
  } finally {
    hub.close();
  }
});

/** A store holding a one-voter ("n1") cluster whose log is the bootstrap entry, then `adds`. */
async function loneStore(adds: readonly number[]): Promise<AsyncStore> {
  const store = new AsyncStore();
  await store.inner.append([{
    index: 1,
    term: 1,
    command: new SystemEntry({
      type: "bootstrap",
      clusterId: "c1",
      voters: ["n1"],
    }) as unknown as Cmd,
  }]);
  await store.inner.append(adds.map((add, k) => ({ index: k + 2, term: 1, command: { add } })));
  store.inner.saveHardState({ term: 1, votedFor: "n1" });
  return store;
}

/** Opens "n1" alone on `store` (it elects itself and replays its log); `cacheEntries` bounds its entry cache. */
function openLone(store: AsyncStore, machine: Counter, cacheEntries?: number) {
  return CoreRunner.open({
    raft: {
      id: "n1",
      electionTicks: 3,
      electionJitterTicks: 1,
      heartbeatTicks: 1,
      bootstrapTicks: 0,
      leadershipMultiplier: 1,
      canVote: true,
      autoBootstrap: false,
      ...(cacheEntries === undefined ? {} : { cacheEntries }),
      rng: new SeededRng(1),
    },
    machine,
    storage: store,
    send: () => {},
  });
}

/** Ticks `runner` (bounded: 200 ticks of about 1 ms) until `done()`. */
async function tickUntil(runner: CoreRunner<Counter>, done: () => boolean): Promise<void> {
  for (let t = 0; t < 200 && !done(); t++) {
    runner.tick();
    await new Promise((r) => setTimeout(r, 1));
  }
}

test("runner: a restart replays a log longer than the entry cache, read in windows", async () => {
  const n = 5_000;
  const store = await loneStore(Array.from({ length: n }, (_, k) => k + 2));
  let reads = 0;
  const [get, getRange] = [store.get.bind(store), store.getRange.bind(store)];
  store.get = (i: number) => {
    reads++;
    return get(i);
  };
  store.getRange = (a: number, b: number) => {
    reads++;
    return getRange(a, b);
  };
  const machine = new Counter();
  const runner = await openLone(store, machine, 100);
  try {
    const expected = (n + 1) * (n + 2) / 2 - 1;
    await tickUntil(runner, () => machine.value === expected);
    assertEquals(machine.value, expected, "every command replayed once, in order");
    assertEquals(runner.core.role, "leader");
    assert(reads < 20, `read in windows, not entry by entry (${reads} storage reads)`);
  } finally {
    runner.close();
    await runner.settled();
  }
});

test("runner: each command is applied with its own position, and one that throws is skipped alone", async () => {
  /** Records what it applies; throws on a negative add. */
  class Picky extends Counter {
    readonly seen: [number, number][] = [];
    override apply(command: Cmd, ctx: Parameters<Counter["apply"]>[1]): void {
      if (command.add < 0) throw new RangeError("negative");
      super.apply(command, ctx);
      this.seen.push([command.add, ctx.logPosition().index]);
    }
  }
  // One replayed batch: 2..6, with the throwing command in the middle.
  const store = await loneStore([1, 2, -1, 4, 8]);
  const machine = new Picky();
  const runner = await openLone(store, machine);
  try {
    await tickUntil(runner, () => machine.value === 15);
    assertEquals(machine.value, 15, "the commands after the throwing one were applied");
    assertEquals(machine.seen, [[1, 2], [2, 3], [4, 5], [8, 6]], "each at its own index");
    assertEquals(runner.applyErrors.map((e) => e.index), [4]);
  } finally {
    runner.close();
  }
});

test("runner: a leader's appends leave before its own write, and it counts itself only once durable", async () => {
  const hub = new Hub();
  for (const id of ["n1", "n2"]) await hub.add(id, new AsyncStore(), ["n1", "n2"]);
  try {
    await hub.until(() => hub.leader() !== undefined);
    await hub.run(3);
    const [leaderId, leader] = hub.leader()!;
    const follower = [...hub.nodes].find(([id]) => id !== leaderId)![1];
    let release!: () => void;
    leader.store.gate = new Promise<void>((r) => (release = r));
    const p = await leader.runner.propose([{ add: 7 }]);
    assert(p.ok);
    const index = p.range.end;
    await hub.settle();
    await hub.deliver();
    // The follower holds the entry while the leader's own write is still pending…
    assertEquals((await follower.store.inner.get(index))?.command, { add: 7 });
    assertEquals(leader.store.inner.available().end < index, true, "the leader's write is pending");
    // …and with two voters the entry is not committed until the leader's copy is durable too.
    assert(leader.runner.core.committed < index, "not committed without the leader's durable copy");
    assertEquals(leader.machine.value, 0);
    release();
    leader.store.gate = undefined;
    await hub.until(() => leader.machine.value === 7 && follower.machine.value === 7);
    assert(leader.runner.core.committed >= index);
  } finally {
    hub.close();
  }
});
