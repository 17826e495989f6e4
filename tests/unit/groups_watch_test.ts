// Tests for Watch<T>: change detection, waits (at once, later, abort, timeout, close), change streams.

import { test } from "../harness.ts";
import { assert, assertEquals, assertRejects } from "../assert.ts";
import { Watch } from "../../lib/groups/watch.ts";
import { GroupTerminatedError } from "../../lib/groups/errors.ts";

/** Lets every queued microtask run; Watch settles nothing on timers, so this is enough. */
async function flush(): Promise<void> {
  for (let i = 0; i < 20; i++) await Promise.resolve();
}

/** Tracks whether a promise has settled, without letting a rejection go unhandled. */
function track<T>(p: Promise<T>): { settled: () => boolean; promise: Promise<T> } {
  let done = false;
  p.then(() => (done = true), () => (done = true));
  return { settled: () => done, promise: p };
}

/** An AbortSignal that counts its abort listeners, to prove none is left behind. */
function countingSignal(): { controller: AbortController; listeners: () => number } {
  const controller = new AbortController();
  const signal = controller.signal;
  let count = 0;
  const add = signal.addEventListener.bind(signal);
  const remove = signal.removeEventListener.bind(signal);
  signal.addEventListener = ((type: string, fn: EventListener, opts?: AddEventListenerOptions) => {
    if (type === "abort") count++;
    add(type, fn, opts);
  }) as typeof signal.addEventListener;
  signal.removeEventListener = ((type: string, fn: EventListener, opts?: EventListenerOptions) => {
    if (type === "abort") count--;
    remove(type, fn, opts);
  }) as typeof signal.removeEventListener;
  return { controller, listeners: () => count };
}

test("set reports a change only when the value differs by the equality function", () => {
  const w = new Watch({ n: 1 }, { equals: (a, b) => a.n === b.n });
  assertEquals(w.set({ n: 1 }), false);
  assertEquals(w.set({ n: 2 }), true);
  assertEquals(w.get(), { n: 2 });
  const plain = new Watch(NaN);
  assertEquals(plain.set(NaN), false, "Object.is treats NaN as equal to itself");
});

test("waitFor resolves at once when the predicate already holds", async () => {
  const w = new Watch(5);
  const t = track(w.waitFor((n) => n > 3));
  await flush();
  assert(t.settled(), "resolved without any set");
  assertEquals(await t.promise, 5);
});

test("waitFor resolves with the first value for which the predicate holds", async () => {
  const w = new Watch(0);
  const t = track(w.waitFor((n) => n >= 2));
  w.set(1);
  await flush();
  assert(!t.settled(), "1 does not satisfy n >= 2");
  w.set(3);
  w.set(2);
  assertEquals(await t.promise, 3);
});

test("a predicate sees every distinct value set, even within one tick, in order", async () => {
  const w = new Watch(0);
  const seen: number[] = [];
  const p = w.waitFor((n) => {
    seen.push(n);
    return n === 3;
  });
  w.set(1);
  w.set(1); // equal: no call
  w.set(2);
  w.set(3);
  w.set(4); // after resolution: no call
  assertEquals(await p, 3);
  assertEquals(seen, [0, 1, 2, 3]);
});

test("an already aborted signal rejects with its reason even if the predicate holds", async () => {
  const w = new Watch(1);
  const reason = new Error("stop");
  const err = await assertRejects(() =>
    w.waitFor(() => true, { signal: AbortSignal.abort(reason) })
  );
  assert(err === reason);
});

test("aborting a pending wait rejects it with the reason and removes the listener", async () => {
  const w = new Watch(0);
  const { controller, listeners } = countingSignal();
  const p = w.waitFor((n) => n > 0, { signal: controller.signal });
  assertEquals(listeners(), 1);
  const reason = new Error("cancelled");
  controller.abort(reason);
  const err = await assertRejects(() => p);
  assert(err === reason);
  assertEquals(listeners(), 0);
  w.set(1); // the waiter is gone: nothing to resolve, nothing throws
});

test("a resolved wait removes its abort listener and clears its timer", async () => {
  const w = new Watch(0);
  const { controller, listeners } = countingSignal();
  // A 60 s timer left behind would fail Deno's op sanitizer.
  const p = w.waitFor((n) => n === 1, { signal: controller.signal, timeoutMs: 60_000 });
  w.set(1);
  assertEquals(await p, 1);
  assertEquals(listeners(), 0);
});

test("waitFor rejects with a TimeoutError when the timeout elapses first", async () => {
  const w = new Watch(0);
  const err = await assertRejects(() => w.waitFor((n) => n > 0, { timeoutMs: 1 }), DOMException);
  assertEquals(err.name, "TimeoutError");
});

test("waitFor rejects bad options", async () => {
  const w = new Watch(0);
  await assertRejects(() => w.waitFor(() => true, { timeoutMs: -1 }), RangeError, "timeoutMs");
  await assertRejects(() => w.waitFor(() => true, { timeoutMs: 1.5 }), RangeError, "timeoutMs");
  await assertRejects(
    () => w.waitFor(() => true, { timeoutMs: "5" as unknown as number }),
    TypeError,
    "timeoutMs",
  );
  await assertRejects(
    () => w.waitFor(() => true, { signal: {} as AbortSignal }),
    TypeError,
    "AbortSignal",
  );
});

test("a throwing predicate rejects its own wait only", async () => {
  const w = new Watch(0);
  const boom = new Error("boom");
  const bad = w.waitFor((n) => {
    if (n === 1) throw boom;
    return false;
  });
  const good = w.waitFor((n) => n === 1);
  w.set(1);
  assert((await assertRejects(() => bad)) === boom);
  assertEquals(await good, 1);
  await assertRejects(
    () =>
      w.waitFor(() => {
        throw boom;
      }),
    Error,
    "boom",
  );
});

test("close rejects pending and later waits with the reason and ignores later sets", async () => {
  const w = new Watch(0);
  const pending = w.waitFor((n) => n > 10);
  const reason = new GroupTerminatedError();
  w.close(reason);
  w.close(new Error("second close is ignored"));
  assert((await assertRejects(() => pending)) === reason);
  assert((await assertRejects(() => w.waitFor(() => true))) === reason, "even if it holds");
  assertEquals(w.set(99), false);
  assertEquals(w.get(), 0, "the last value stays readable");
  assert(w.closed);
});

test("close without a reason rejects with a plain Error", async () => {
  const w = new Watch(0);
  const p = w.waitFor(() => false);
  w.close();
  await assertRejects(() => p, Error, "watch is closed");
});

test("changes yields later values, not the current one, and ends on close", async () => {
  const w = new Watch(0);
  const it = w.changes();
  const first = it.next();
  w.set(1);
  assertEquals(await first, { value: 1, done: false });
  w.set(2);
  w.close();
  assertEquals(await it.next(), { value: 2, done: false }, "an unread value survives close");
  assertEquals(await it.next(), { value: undefined, done: true });
});

test("changes collapses values the consumer did not read into the latest", async () => {
  const w = new Watch(0);
  const it = w.changes();
  w.set(1);
  w.set(2);
  w.set(3);
  assertEquals(await it.next(), { value: 3, done: false });
  const pending = track(it.next());
  await flush();
  assert(!pending.settled(), "nothing new to read");
  w.set(4);
  assertEquals(await pending.promise, { value: 4, done: false });
  await it.return?.();
});

test("for await over changes stops on break and detaches", async () => {
  const w = new Watch(0);
  const got: number[] = [];
  const loop = (async () => {
    for await (const v of w.changes()) {
      got.push(v);
      if (v === 2) break;
    }
  })();
  await flush();
  w.set(1);
  await flush();
  w.set(2);
  await loop;
  w.set(3);
  assertEquals(got, [1, 2]);
});

test("aborting changes rejects the pending next with the reason and ends the stream", async () => {
  const w = new Watch(0);
  const { controller, listeners } = countingSignal();
  const it = w.changes({ signal: controller.signal });
  const pending = it.next();
  const reason = new Error("enough");
  controller.abort(reason);
  assert((await assertRejects(() => pending)) === reason);
  assertEquals(listeners(), 0);
  await assertRejects(() => it.next());
});

test("changes on a closed watch is done at once", async () => {
  const w = new Watch(0);
  w.close();
  assertEquals(await w.changes().next(), { value: undefined, done: true });
});
