// Tests for When: each condition driven by hand through a Watch<GroupStatus>.

import { test } from "../harness.ts";
import { assert, assertEquals, assertRejects } from "../assert.ts";
import { GroupTerminatedError } from "../../lib/groups/errors.ts";
import type { GroupStatus } from "../../lib/groups/types.ts";
import { Watch } from "../../lib/groups/watch.ts";
import { groupStatusEquals, When } from "../../lib/groups/when.ts";
import { Cursor } from "../../lib/primitives/cursor.ts";
import { PeerId } from "../../lib/primitives/ids.ts";

const SELF = PeerId.random();
const A = PeerId.random();
const B = PeerId.random();

const START: GroupStatus = {
  leader: undefined,
  self: SELF,
  role: "follower",
  online: false,
  committed: 0,
  logPosition: Cursor.ZERO,
  term: 0,
};

/** A status cell, its When, and a way to publish a change. */
function setup(initial: Partial<GroupStatus> = {}) {
  const status = new Watch<GroupStatus>({ ...START, ...initial }, { equals: groupStatusEquals });
  const when = new When(status);
  const publish = (change: Partial<GroupStatus>) => status.set({ ...status.get(), ...change });
  return { status, when, publish };
}

async function flush(): Promise<void> {
  for (let i = 0; i < 20; i++) await Promise.resolve();
}

function track<T>(p: Promise<T>): { settled: () => boolean; promise: Promise<T> } {
  let done = false;
  p.then(() => (done = true), () => (done = true));
  return { settled: () => done, promise: p };
}

/** Asserts the wait is still pending after every queued microtask has run. */
async function assertPending(t: { settled: () => boolean }, what: string): Promise<void> {
  await flush();
  assert(!t.settled(), `${what} should still be pending`);
}

/** Asserts the wait settled with no status change (the "at once" contract). */
async function assertAtOnce<T>(p: Promise<T>): Promise<T> {
  const t = track(p);
  await flush();
  assert(t.settled(), "should resolve at once");
  return await t.promise;
}

test("groupStatusEquals compares ids by value and ignores object identity", () => {
  const a: GroupStatus = { ...START, leader: PeerId.parse(A.toHex()) };
  const b: GroupStatus = { ...START, leader: A, logPosition: Cursor.of(0, 0) };
  assert(groupStatusEquals(a, b));
  assert(!groupStatusEquals(a, { ...b, leader: B }));
  assert(!groupStatusEquals(a, { ...b, leader: undefined }));
  assert(!groupStatusEquals(a, { ...b, logPosition: Cursor.of(1, 0) }));
  assert(
    !groupStatusEquals(a, {
      ...b,
      stateReverted: { count: 1, committedBefore: 0, logPositionBefore: Cursor.ZERO },
    }),
  );
});

test("leaderElected resolves at once with a known leader", async () => {
  const { when } = setup({ leader: A });
  assert((await assertAtOnce(when.leaderElected())).equals(A));
});

test("leaderElected waits for the first leader", async () => {
  const { when, publish } = setup();
  const t = track(when.leaderElected());
  publish({ term: 1, role: "candidate" });
  await assertPending(t, "leaderElected without a leader");
  publish({ leader: B, role: "follower" });
  assert((await t.promise).equals(B));
});

test("leaderChanged waits for a leader other than the one at the call", async () => {
  const { when, publish } = setup({ leader: A });
  const t = track(when.leaderChanged());
  await assertPending(t, "leaderChanged with the same leader");
  publish({ leader: undefined });
  publish({ leader: A, term: 2 });
  await assertPending(t, "A → none → A");
  publish({ leader: B, term: 3 });
  assert((await t.promise).equals(B));
});

test("leaderChanged from no leader resolves on the first leader", async () => {
  const { when, publish } = setup();
  const p = when.leaderChanged();
  publish({ leader: A });
  assert((await p).equals(A));
});

test("leaderIs resolves at once or when that peer leads", async () => {
  const { when, publish } = setup({ leader: A });
  await assertAtOnce(when.leaderIs(PeerId.parse(A.toHex())));
  const t = track(when.leaderIs(B));
  await assertPending(t, "leaderIs(B) while A leads");
  publish({ leader: B });
  await t.promise;
  await assertRejects(() => when.leaderIs("nope" as unknown as PeerId), TypeError, "PeerId");
});

test("isLeader follows this node's role", async () => {
  const { when, publish } = setup();
  const t = track(when.isLeader());
  publish({ role: "candidate", term: 1 });
  await assertPending(t, "isLeader as a candidate");
  publish({ role: "leader", leader: SELF });
  await t.promise;
  await assertAtOnce(when.isLeader());
});

test("isFollower needs a follower or learner role and another node as leader", async () => {
  const { when, publish } = setup();
  const t = track(when.isFollower());
  await assertPending(t, "isFollower with no leader");
  publish({ role: "leader", leader: SELF });
  await assertPending(t, "isFollower as the leader");
  publish({ role: "learner", leader: A });
  await t.promise;
  await assertAtOnce(when.isFollower());
});

test("online and offline follow the online flag", async () => {
  const { when, publish } = setup();
  await assertAtOnce(when.offline());
  const on = track(when.online());
  publish({ leader: A });
  await assertPending(on, "online before the driver says so");
  publish({ online: true });
  await on.promise;
  await assertAtOnce(when.online());
  const off = when.offline();
  publish({ online: false, leader: undefined });
  await off;
});

test("committed().reaches takes an index or a range's end", async () => {
  const { when, publish } = setup({ committed: 5 });
  assertEquals(await assertAtOnce(when.committed().reaches(5)), 5);
  assertEquals(await assertAtOnce(when.committed().reaches(0)), 5);
  const range = track(when.committed().reaches({ start: 6, end: 8 }));
  publish({ committed: 7 });
  await assertPending(range, "reaches(6..=8) at 7");
  publish({ committed: 9 });
  assertEquals(await range.promise, 9);
  await assertRejects(() => when.committed().reaches(-1), RangeError);
  await assertRejects(() => when.committed().reaches(1.5), RangeError);
  await assertRejects(() => when.committed().reaches("3" as unknown as number), TypeError);
});

test("committed().advanced and changed compare with the value at the call", async () => {
  const { when, publish } = setup({ committed: 5 });
  const advanced = track(when.committed().advanced());
  const changed = track(when.committed().changed());
  publish({ term: 2 });
  await assertPending(advanced, "advanced with no commit");
  await assertPending(changed, "changed with no commit");
  publish({ committed: 4 });
  assertEquals(await changed.promise, 4);
  await assertPending(advanced, "advanced after going down");
  publish({ committed: 5 });
  await assertPending(advanced, "advanced back to the value at the call");
  publish({ committed: 6 });
  assertEquals(await advanced.promise, 6);
});

test("committed().reverted resolves when the committed index goes down", async () => {
  const { when, publish } = setup({ committed: 10 });
  const t = track(when.committed().reverted());
  publish({ committed: 12 });
  await assertPending(t, "reverted while advancing");
  publish({ committed: 11 }); // below the previous status, though above the value at the call
  assertEquals(await t.promise, 11);
});

test("committed().reverted sees a reset published together with the catch-up", async () => {
  const { when, publish } = setup({ committed: 10 });
  const t = track(when.committed().reverted());
  publish({
    committed: 15,
    stateReverted: { count: 1, committedBefore: 10, logPositionBefore: Cursor.of(2, 10) },
  });
  assertEquals(await t.promise, 15);
});

test("log().advanced uses cursor order, changed any difference, reaches the index", async () => {
  const { when, publish } = setup({ logPosition: Cursor.of(2, 10) });
  const advanced = track(when.log().advanced());
  const changed = track(when.log().changed());
  const reaches = track(when.log().reaches(11));
  publish({ logPosition: Cursor.of(2, 9) }); // a truncated suffix
  assertEquals(await changed.promise, Cursor.of(2, 9));
  await assertPending(advanced, "log advanced after a truncation");
  publish({ logPosition: Cursor.of(3, 10) }); // a newer term at a lower-or-equal index
  assertEquals(await advanced.promise, Cursor.of(3, 10));
  await assertPending(reaches, "log reaches 11 at index 10");
  publish({ logPosition: Cursor.of(3, 11) });
  assertEquals(await reaches.promise, Cursor.of(3, 11));
  assertEquals(await assertAtOnce(when.log().reaches(3)), Cursor.of(3, 11));
});

test("an aborted signal rejects every kind of wait with its reason", async () => {
  const { when } = setup({ leader: A, role: "leader", online: true, committed: 3 });
  const reason = new Error("gave up");
  const signal = AbortSignal.abort(reason);
  const waits: (() => Promise<unknown>)[] = [
    () => when.leaderElected({ signal }), // holds, but the signal is checked first
    () => when.leaderChanged({ signal }),
    () => when.leaderIs(A, { signal }),
    () => when.isLeader({ signal }),
    () => when.isFollower({ signal }),
    () => when.online({ signal }),
    () => when.offline({ signal }),
    () => when.committed().reaches(1, { signal }),
    () => when.committed().advanced({ signal }),
    () => when.committed().changed({ signal }),
    () => when.committed().reverted({ signal }),
    () => when.log().advanced({ signal }),
    () => when.log().changed({ signal }),
    () => when.log().reaches(1, { signal }),
  ];
  for (const wait of waits) assert((await assertRejects(wait)) === reason);
});

test("aborting a pending wait rejects it", async () => {
  const { when } = setup();
  const controller = new AbortController();
  const p = when.leaderElected({ signal: controller.signal });
  controller.abort(new Error("stop"));
  await assertRejects(() => p, Error, "stop");
});

test("an AbortSignal.timeout bounds a wait", async () => {
  const { when } = setup();
  const err = await assertRejects(() => when.isLeader({ signal: AbortSignal.timeout(1) }));
  assertEquals(err.name, "TimeoutError");
});

test("closing the group rejects pending and later waits with GroupTerminatedError", async () => {
  const { status, when } = setup({ leader: A });
  const pending = when.committed().reaches(100);
  status.close(new GroupTerminatedError("wait"));
  await assertRejects(() => pending, GroupTerminatedError, "group is closed");
  await assertRejects(() => when.leaderElected(), GroupTerminatedError);
});
