// State sync (LogReplaySync): the CatchUp driver against a fake host, and serveSync against a memory store.

import { test } from "../harness.ts";
import { assert, assertEquals } from "../assert.ts";
import {
  CatchUp,
  MAX_RESPONSE_BYTES,
  serveSync,
  type SyncHost,
  type SyncMessage,
} from "../../lib/groups/state_sync.ts";
import { encodeEntry } from "../../lib/wire/entry.ts";
import { InMemoryLogStore } from "../../storage/memory.ts";
import { type LogEntry, type Storage, SystemEntry } from "../../storage/types.ts";

type SyncReq = Extract<SyncMessage, { t: "syncReq" }>;
type SyncRes = Extract<SyncMessage, { t: "syncRes" }>;

const CLUSTER = "c1";

/** Term of entry `i` in the source log: changes every 4 entries, so window edges have distinct terms. */
const termOf = (i: number): number => (i === 0 ? 0 : 1 + Math.floor(i / 4));

/** A committed log of `n` entries (a bootstrap entry, then commands) that peers serve from. */
function sourceLog(n: number): InMemoryLogStore<unknown> {
  const store = new InMemoryLogStore<unknown>();
  const entries: LogEntry<unknown>[] = [{
    index: 1,
    term: termOf(1),
    command: new SystemEntry({ type: "bootstrap", clusterId: CLUSTER, voters: ["L"] }),
  }];
  for (let i = 2; i <= n; i++) entries.push({ index: i, term: termOf(i), command: `cmd${i}` });
  store.append(entries);
  return store;
}

interface Install {
  prevIndex: number;
  prevTerm: number;
  first: number;
  last: number;
}

/** A SyncHost whose state tests set by hand; records what is sent and installed. */
class FakeHost implements SyncHost {
  clusterId: string | undefined = CLUSTER;
  leader: string | undefined = "L";
  isLeader = false;
  lastIndex = 0;
  peerList: { id: string; clusterId: string | undefined; committed: number }[] = [];
  unbonded = new Set<string>();
  sent: { peer: string; msg: SyncReq }[] = [];
  installs: Install[] = [];
  /** What the host's log holds, by index. */
  log = new Map<number, LogEntry<unknown>>();
  /** When set, the next install attaches nothing. */
  refuseNext = false;

  state() {
    return {
      clusterId: this.clusterId,
      leader: this.leader,
      isLeader: this.isLeader,
      lastIndex: this.lastIndex,
    };
  }

  peers() {
    return this.peerList;
  }

  send(peer: string, message: SyncMessage): boolean {
    if (this.unbonded.has(peer)) return false;
    assertEquals(message.t, "syncReq");
    this.sent.push({ peer, msg: message as SyncReq });
    return true;
  }

  install(prevIndex: number, prevTerm: number, entries: LogEntry<unknown>[]): Promise<number> {
    this.installs.push({
      prevIndex,
      prevTerm,
      first: entries[0]!.index,
      last: entries[entries.length - 1]!.index,
    });
    if (this.refuseNext) {
      this.refuseNext = false;
      return Promise.resolve(0);
    }
    // like installCommitted: prev must match the log's end (or an entry in it)
    const termAtPrev = prevIndex === 0 ? 0 : this.log.get(prevIndex)?.term;
    if (prevIndex > this.lastIndex || termAtPrev !== prevTerm) return Promise.resolve(0);
    for (const e of entries) this.log.set(e.index, e);
    this.lastIndex = Math.max(this.lastIndex, prevIndex + entries.length);
    return Promise.resolve(prevIndex + entries.length);
  }

  /** Requests sent since `from` (an index into `sent`), as [peer, start, end]. */
  windows(from = 0): [string, number, number][] {
    return this.sent.slice(from).map((s) => [s.peer, s.msg.start, s.msg.end]);
  }

  request(peer: string): SyncReq {
    const r = [...this.sent].reverse().find((s) => s.peer === peer);
    if (r === undefined) throw new Error(`nothing sent to ${peer}`);
    return r.msg;
  }
}

/** Lets the install loop (promise chains) run to completion. */
async function settle(): Promise<void> {
  for (let i = 0; i < 20; i++) await Promise.resolve();
}

/** The answer a healthy peer holding `store` (all committed) gives to `req`. */
async function answer(req: SyncReq, store: InMemoryLogStore<unknown>): Promise<SyncRes> {
  const res = await serveSync(req, {
    clusterId: CLUSTER,
    committed: store.last().index,
    termAt: (i) => store.termAt(i),
  }, store);
  assertEquals(res.t, "syncRes", `serveSync refused ${JSON.stringify(req)}`);
  return res as SyncRes;
}

function setup(
  peers: [string, number][],
  options: { batchSize?: number; fetchTimeout?: number } = {},
): { host: FakeHost; sync: CatchUp } {
  const host = new FakeHost();
  host.peerList = peers.map(([id, committed]) => ({ id, clusterId: CLUSTER, committed }));
  const sync = new CatchUp(host, {
    batchSize: options.batchSize ?? 10,
    fetchTimeout: options.fetchTimeout ?? 100,
  });
  return { host, sync };
}

// ---- when it engages -------------------------------------------------------------------------

test("state sync: engages only a full batch behind the best peer of the same cluster", () => {
  const { host, sync } = setup([["a", 19], ["b", 15]]);
  host.lastIndex = 10;
  host.peerList.push({ id: "x", clusterId: "other", committed: 1000 });
  host.peerList.push({ id: "y", clusterId: undefined, committed: 1000 });
  sync.tick(0);
  assertEquals(host.sent.length, 0, "9 behind the best peer of the cluster: leader's business");
  host.peerList[0]!.committed = 20;
  sync.tick(1);
  assertEquals(host.windows(), [["a", 11, 20]], "10 behind: one window, from a peer that has it");
  assertEquals(sync.inFlight, 1);
  assertEquals(sync.stats.requests, 1);
});

test("state sync: peers of another cluster are never asked, however far ahead", () => {
  const { host, sync } = setup([["a", 30]]);
  host.peerList.push({ id: "x", clusterId: "other", committed: 1000 });
  host.peerList.push({ id: "y", clusterId: undefined, committed: 1000 });
  sync.tick(0);
  assertEquals(host.windows(), [["a", 1, 10]]);
  for (const s of host.sent) assertEquals(s.msg.clusterId, CLUSTER);
  sync.tick(1);
  assertEquals(host.sent.length, 1, "one request per peer; x and y are not candidates");
});

test("state sync: never runs on a leader, nor without a cluster", () => {
  const { host, sync } = setup([["a", 500], ["b", 500]]);
  host.isLeader = true;
  host.leader = "me";
  sync.tick(0);
  assertEquals(host.sent.length, 0, "leader");
  host.isLeader = false;
  host.clusterId = undefined;
  sync.tick(1);
  assertEquals(host.sent.length, 0, "no cluster");
  host.clusterId = CLUSTER;
  sync.tick(2);
  assertEquals(host.sent.length, 2, "a follower of the cluster does catch up");
  // becoming leader stops new requests
  host.isLeader = true;
  sync.onMessage("a", { t: "syncErr", id: host.request("a").id, reason: "no" });
  sync.tick(3);
  assertEquals(host.sent.length, 2);
});

// ---- windows ---------------------------------------------------------------------------------

test("state sync: one request per peer, windows of batchSize, contiguous, leader last", () => {
  const { host, sync } = setup([["L", 100], ["a", 100], ["b", 60], ["c", 100]]);
  sync.tick(0);
  const w = host.windows();
  assertEquals(w, [["a", 1, 10], ["c", 11, 20], ["b", 21, 30], ["L", 31, 40]]);
  // contiguous, non-overlapping, batchSize each
  for (let k = 0; k < w.length; k++) {
    assertEquals(w[k]![2] - w[k]![1] + 1, 10);
    if (k > 0) assertEquals(w[k]![1], w[k - 1]![2] + 1);
  }
  assertEquals(new Set(w.map(([p]) => p)).size, w.length, "one request per peer");
  sync.tick(1);
  sync.tick(50);
  assertEquals(host.sent.length, 4, "no second request to a busy peer");
  assertEquals(sync.inFlight, 4);
  assertEquals(new Set(host.sent.map((s) => s.msg.id)).size, 4, "distinct request ids");
});

test("state sync: the leader is asked only when no other peer is free", () => {
  const { host, sync } = setup([["L", 40], ["a", 40]]);
  sync.tick(0);
  assertEquals(host.windows(), [["a", 1, 10], ["L", 11, 20]]);
  const { host: h2, sync: s2 } = setup([["L", 40], ["a", 40], ["b", 40], ["c", 40]], {
    batchSize: 20,
  });
  s2.tick(0);
  assertEquals(h2.windows(), [["a", 1, 20], ["b", 21, 40]], "the leader is spared");
});

test("state sync: a window ends at the asked peer's committed index; peers short of it are skipped", () => {
  const { host, sync } = setup([["a", 100], ["b", 5], ["c", 15]]);
  sync.tick(0);
  assertEquals(host.windows(), [["a", 1, 10], ["c", 11, 15]]);
});

test("state sync: a peer without a bond is skipped; its window goes to the next peer", () => {
  const { host, sync } = setup([["a", 20], ["b", 20], ["c", 20]]);
  host.unbonded.add("a");
  sync.tick(0);
  assertEquals(host.windows(), [["b", 1, 10], ["c", 11, 20]]);
  assertEquals(sync.stats.requests, 2);
  // a peer whose bond goes down frees its window for someone else
  host.unbonded.delete("a");
  sync.onPeerDown("c");
  assertEquals(sync.inFlight, 1);
  sync.tick(1);
  assertEquals(host.windows(2), [["a", 11, 20]]);
});

test("state sync: requests stay within MAX_WINDOWS_AHEAD windows of the log's end", () => {
  const peers: [string, number][] = Array.from({ length: 40 }, (_, i) => [`p${i}`, 100_000]);
  const { host, sync } = setup(peers);
  sync.tick(0);
  assertEquals(host.sent.length, 32);
  assertEquals(host.windows().at(-1), ["p31", 311, 320]);
});

// ---- timeouts --------------------------------------------------------------------------------

test("state sync: an unanswered request is re-asked of another peer; the slow peer rests", async () => {
  const src = sourceLog(30);
  // a is furthest ahead, so it is everyone's first choice
  const { host, sync } = setup([["a", 40], ["b", 20]], { fetchTimeout: 100 });
  sync.tick(0);
  assertEquals(host.windows(), [["a", 1, 10], ["b", 11, 20]]);
  const slow = host.request("a");
  sync.onMessage("b", await answer(host.request("b"), src));
  await settle();
  assertEquals(host.installs, [], "nothing installs before window 1..10");
  sync.tick(99);
  assertEquals(host.sent.length, 2, "not timed out yet");
  assertEquals(sync.inFlight, 1);
  sync.tick(100);
  assertEquals(sync.stats.failures, 1);
  assertEquals(host.windows(2), [["b", 1, 10]], "re-asked of another peer, not of a");
  sync.tick(150);
  sync.tick(199);
  assertEquals(host.sent.length, 3, "a is not asked again while it rests");
  // a's late answer is not taken: the request is no longer a's
  sync.onMessage("a", await answer(slow, src));
  await settle();
  assertEquals(host.installs, []);
  sync.onMessage("b", await answer(host.request("b"), src));
  await settle();
  assertEquals(host.lastIndex, 20);
  assertEquals(host.installs.map((i) => [i.first, i.last]), [[1, 10], [11, 20]]);
  // a is back from its rest and is asked for the last window
  sync.tick(200);
  assertEquals(host.windows(3), [["a", 21, 30]]);
});

test("state sync: after its rest a timed-out peer may be asked again", () => {
  const { host, sync } = setup([["a", 10]], { fetchTimeout: 100 });
  sync.tick(0);
  sync.tick(100);
  assertEquals(sync.inFlight, 0);
  sync.tick(150);
  assertEquals(host.sent.length, 1, "resting");
  sync.tick(200);
  assertEquals(host.windows(), [["a", 1, 10], ["a", 1, 10]]);
  assert(host.sent[0]!.msg.id !== host.sent[1]!.msg.id, "a new request id");
});

// ---- installing ------------------------------------------------------------------------------

test("state sync: answers out of order are installed in index order with the right prev", async () => {
  const src = sourceLog(40);
  const { host, sync } = setup([["a", 40], ["b", 40], ["c", 40], ["d", 40]]);
  sync.tick(0);
  const [ra, rb, rc, rd] = ["a", "b", "c", "d"].map((p) => host.request(p));
  sync.onMessage("d", await answer(rd!, src));
  sync.onMessage("b", await answer(rb!, src));
  sync.onMessage("c", await answer(rc!, src));
  await settle();
  assertEquals(host.installs, [], "held back until the first window arrives");
  assertEquals(host.lastIndex, 0);
  sync.onMessage("a", await answer(ra!, src));
  await settle();
  assertEquals(host.installs, [
    { prevIndex: 0, prevTerm: 0, first: 1, last: 10 },
    { prevIndex: 10, prevTerm: termOf(10), first: 11, last: 20 },
    { prevIndex: 20, prevTerm: termOf(20), first: 21, last: 30 },
    { prevIndex: 30, prevTerm: termOf(30), first: 31, last: 40 },
  ]);
  assertEquals(host.lastIndex, 40);
  for (let i = 1; i <= 40; i++) {
    const e = host.log.get(i)!;
    assertEquals([e.index, e.term], [i, termOf(i)]);
    if (i > 1) assertEquals(e.command, `cmd${i}`);
  }
  assert(SystemEntry.is(host.log.get(1)!.command), "system entries survive the wire");
  assertEquals(sync.stats.entries, 40);
  assertEquals(sync.stats.servedBy, new Set(["a", "b", "c", "d"]));
  assertEquals(sync.inFlight, 0);
  sync.tick(1);
  assertEquals(host.sent.length, 4, "caught up: nothing more to ask");
});

test("state sync: a window that does not attach is dropped and asked again", async () => {
  const src = sourceLog(20);
  const { host, sync } = setup([["a", 20], ["b", 20]]);
  sync.tick(0);
  host.refuseNext = true;
  sync.onMessage("b", await answer(host.request("b"), src));
  sync.onMessage("a", await answer(host.request("a"), src));
  await settle();
  // 1..10 refused by the host: the loop stops; 11..20 stays buffered
  assertEquals(host.installs.map((i) => i.first), [1]);
  assertEquals(host.lastIndex, 0);
  host.unbonded.add("b");
  sync.tick(1);
  assertEquals(host.windows(2), [["a", 1, 10]], "the dropped window is asked again");
  const again = host.sent[2]!;
  sync.onMessage(again.peer, await answer(again.msg, src));
  await settle();
  assertEquals(host.lastIndex, 20);
  assertEquals(host.installs.map((i) => [i.prevIndex, i.first]), [[0, 1], [0, 1], [10, 11]]);
});

test("state sync: a short answer is installed and the rest is asked again", async () => {
  const src = sourceLog(20);
  const { host, sync } = setup([["a", 20]]);
  sync.tick(0);
  const full = await answer(host.request("a"), src);
  sync.onMessage("a", { ...full, entries: full.entries.slice(0, 4) });
  await settle();
  assertEquals(host.lastIndex, 4);
  sync.tick(1);
  assertEquals(host.windows(1), [["a", 5, 14]], "the rest, from the end of the log");
});

// ---- malformed answers -----------------------------------------------------------------------

const enc = (src: InMemoryLogStore<unknown>, idx: number[]): Uint8Array[] =>
  idx.map((i) => encodeEntry(src.get(i)!));
const range = (a: number, b: number): number[] =>
  Array.from({ length: b - a + 1 }, (_, k) => a + k);

const MALFORMED: [string, (req: SyncReq, src: InMemoryLogStore<unknown>) => SyncMessage][] = [
  ["a wrong start index", (req, src) => ({
    t: "syncRes",
    id: req.id,
    prevTerm: termOf(1),
    entries: enc(src, range(2, 10)),
  })],
  ["non-contiguous entries", (req, src) => ({
    t: "syncRes",
    id: req.id,
    prevTerm: 0,
    entries: enc(src, [1, 2, 3, 5, 6]),
  })],
  ["undecodable bytes", (req, src) => ({
    t: "syncRes",
    id: req.id,
    prevTerm: 0,
    entries: [...enc(src, [1, 2]), new Uint8Array([0xff, 0x13, 0x37])],
  })],
  ["bytes that decode to something else", (req, src) => ({
    t: "syncRes",
    id: req.id,
    prevTerm: 0,
    entries: [...enc(src, [1]), new Uint8Array([0x63, 0x61, 0x62, 0x63])], // CBOR "abc"
  })],
  ["entries past the asked end", (req, src) => ({
    t: "syncRes",
    id: req.id,
    prevTerm: 0,
    entries: enc(src, range(1, 11)),
  })],
  ["terms going down", (req) => ({
    t: "syncRes",
    id: req.id,
    prevTerm: 0,
    entries: [
      encodeEntry({ index: 1, term: 3, command: "x" }),
      encodeEntry({ index: 2, term: 2, command: "y" }),
    ],
  })],
  ["a refusal", (req) => ({ t: "syncErr", id: req.id, reason: "not available" })],
];

for (const [what, make] of MALFORMED) {
  test(`state sync: ${what} is not installed and the window is asked again`, async () => {
    const src = sourceLog(20);
    const { host, sync } = setup([["a", 10], ["b", 10]]);
    sync.tick(0);
    assertEquals(host.windows(), [["a", 1, 10]]);
    sync.onMessage("a", make(host.request("a"), src));
    await settle();
    assertEquals(host.installs, [], "nothing installed");
    assertEquals(sync.inFlight, 0);
    assertEquals(sync.stats.failures, 1);
    assertEquals(sync.stats.entries, 0);
    sync.tick(1);
    assertEquals(host.windows(1), [["b", 1, 10]], "re-asked, of another peer");
    sync.onMessage("b", await answer(host.request("b"), src));
    await settle();
    assertEquals(host.lastIndex, 10);
    assertEquals(host.installs, [{ prevIndex: 0, prevTerm: 0, first: 1, last: 10 }]);
  });
}

test("state sync: an answer from a peer that was not asked is ignored", async () => {
  const src = sourceLog(20);
  const { host, sync } = setup([["a", 10], ["b", 10]], { fetchTimeout: 100 });
  sync.tick(0);
  const req = host.request("a");
  sync.onMessage("b", await answer(req, src)); // b answers a's request
  sync.onMessage("b", { t: "syncErr", id: req.id, reason: "spoof" }); // nor can b cancel it
  sync.onMessage("a", await answer({ ...req, id: req.id + 100 }, src)); // unknown id
  await settle();
  assertEquals(host.installs, []);
  assertEquals(sync.inFlight, 1, "a's request is still a's");
  assertEquals(sync.stats.failures, 0);
  assertEquals(sync.stats.servedBy, new Set());
  // the window is asked again once a's request times out
  sync.tick(100);
  assertEquals(host.windows(1), [["b", 1, 10]]);
  sync.onMessage("b", await answer(host.request("b"), src));
  await settle();
  assertEquals(host.lastIndex, 10);
});

// ---- serveSync -------------------------------------------------------------------------------

function me(store: InMemoryLogStore<unknown>, committed: number) {
  return {
    clusterId: CLUSTER as string | undefined,
    committed,
    termAt: (i: number) => store.termAt(i),
  };
}

const req = (start: number, end: number, clusterId = CLUSTER, id = 7): SyncReq => ({
  t: "syncReq",
  id,
  clusterId,
  start,
  end,
});

test("serveSync: refuses another cluster, and a node with none", async () => {
  const store = sourceLog(20);
  const other = await serveSync(req(1, 10, "other"), me(store, 20), store);
  assertEquals(other.t, "syncErr");
  assertEquals(other.id, 7);
  const none = await serveSync(req(1, 10), { ...me(store, 20), clusterId: undefined }, store);
  assertEquals(none.t, "syncErr");
});

test("serveSync: refuses a range with nothing committed, serves only up to committed", async () => {
  const store = sourceLog(20);
  const uncommitted = await serveSync(req(13, 20), me(store, 12), store);
  assertEquals(uncommitted.t, "syncErr", "nothing of 13..20 is committed");
  const res = await serveSync(req(5, 20), me(store, 12), store);
  assert(res.t === "syncRes");
  assertEquals(res.id, 7);
  assertEquals(res.entries.length, 8, "5..12");
  assertEquals(res.entries, enc(store, range(5, 12)));
});

test("serveSync: prevTerm is the term before start (0 at the log's start)", async () => {
  const store = sourceLog(20);
  const first = await serveSync(req(1, 4), me(store, 20), store);
  assert(first.t === "syncRes");
  assertEquals(first.prevTerm, 0);
  assertEquals(first.entries, enc(store, range(1, 4)));
  const mid = await serveSync(req(8, 15), me(store, 20), store);
  assert(mid.t === "syncRes");
  assertEquals(mid.prevTerm, termOf(7));
  assertEquals(mid.prevTerm, 2);
  // the term at start - 1 is unknown (pruned): cannot answer
  const unknown = await serveSync(req(8, 15), { ...me(store, 20), termAt: () => undefined }, store);
  assertEquals(unknown.t, "syncErr");
});

test("serveSync: answers are capped at MAX_RESPONSE_BYTES, at least one entry", async () => {
  const store = new InMemoryLogStore<unknown>();
  const big = (i: number) => new Uint8Array(1024 * 1024).fill(i);
  store.append(range(1, 6).map((i) => ({ index: i, term: 1, command: big(i) })));
  const res = await serveSync(req(1, 6), me(store, 6), store);
  assert(res.t === "syncRes");
  assertEquals(res.entries.length, 3, "four 1 MiB entries exceed 4 MiB");
  const bytes = res.entries.reduce((n, b) => n + b.byteLength, 0);
  assert(bytes <= MAX_RESPONSE_BYTES, `${bytes} bytes`);
  assertEquals(res.entries, enc(store, [1, 2, 3]));
  // one entry bigger than the cap still goes alone, so the asker makes progress
  const huge = new InMemoryLogStore<unknown>();
  huge.append([
    { index: 1, term: 1, command: new Uint8Array(MAX_RESPONSE_BYTES + 10) },
    { index: 2, term: 1, command: "small" },
  ]);
  const one = await serveSync(req(1, 2), me(huge, 2), huge);
  assert(one.t === "syncRes");
  assertEquals(one.entries.length, 1);
});

test("serveSync: a storage error is a refusal", async () => {
  const store = sourceLog(10);
  const broken = {
    getRange: () => Promise.reject(new Error("disk on fire")),
  } as unknown as Storage<unknown>;
  const res = await serveSync(req(1, 5), me(store, 10), broken);
  assert(res.t === "syncErr");
  assert(res.reason.includes("disk on fire"), res.reason);
});

test("serveSync and CatchUp: a catch-up from several peers rebuilds the log exactly", async () => {
  const src = sourceLog(95);
  const { host, sync } = setup([["L", 95], ["a", 95], ["b", 95]], { batchSize: 8 });
  for (let now = 0; now < 100 && host.lastIndex < 95; now++) {
    sync.tick(now);
    // answer in reverse order of sending each round
    const pending = host.sent.splice(0).reverse();
    for (const s of pending) sync.onMessage(s.peer, await answer(s.msg, src));
    await settle();
  }
  assertEquals(host.lastIndex, 95);
  for (let i = 1; i <= 95; i++) assertEquals(host.log.get(i)!.term, src.termAt(i));
  let expectedPrev = 0;
  for (const i of host.installs) {
    assertEquals(i.prevIndex, expectedPrev, "in order, no holes");
    assertEquals(i.prevTerm, termOf(i.prevIndex));
    expectedPrev = i.last;
  }
});

test("catch-up: a re-asked window never overlaps windows still in flight", () => {
  const host = new FakeHost();
  host.peerList = ["a", "b", "c", "d"].map((id) => ({ id, clusterId: CLUSTER, committed: 30 }));
  const cu = new CatchUp(host, { batchSize: 10, fetchTimeout: 100 });
  cu.tick(0);
  assertEquals(host.sent.map((s) => [s.peer, s.msg.start, s.msg.end]), [
    ["a", 1, 10],
    ["b", 11, 20],
    ["c", 21, 30],
  ]);
  host.sent = [];
  cu.onPeerDown("a");
  cu.tick(1);
  // Only a's window is asked again; b's and c's are still in flight.
  assertEquals(host.sent.map((s) => [s.msg.start, s.msg.end]), [[1, 10]]);
});
