// Tests for InMemoryLogStore: the storage conformance suite plus what only the memory store promises.

import { InMemoryLogStore } from "../../storage/memory.ts";
import type { Storage } from "../../storage/types.ts";
import { assert, assertEquals, assertThrows } from "../assert.ts";
import { assertSynchronous, runStorageConformance } from "../conformance/storage.ts";
import { test } from "../harness.ts";

runStorageConformance("InMemoryLogStore", { create: () => new InMemoryLogStore<unknown>() });

test("InMemoryLogStore: a typed store is a Storage of its command type", () => {
  const store: Storage<string> = new InMemoryLogStore<string>();
  store.append([{ index: 1, term: 1, command: "set x" }]);
  const misuse = (s: Storage<string>) => {
    // @ts-expect-error a Storage<string> takes only string commands
    s.append([{ index: 2, term: 1, command: 42 }]);
  };
  void misuse;
  assertEquals(store.get(1), { index: 1, term: 1, command: "set x" });
});

test("InMemoryLogStore: every method answers synchronously", () => {
  assertSynchronous(new InMemoryLogStore<string>());
});

test("InMemoryLogStore: append keeps the entry objects it was given", () => {
  const store = new InMemoryLogStore<{ n: number }>();
  const e = { index: 1, term: 1, command: { n: 1 } };
  store.append([e]);
  assert(store.get(1) === e, "get(1) should return the appended object");
  assert(store.getRange(1, 1)[0] === e, "getRange(1, 1) should hold the appended object");
});

test("InMemoryLogStore: append names the expected index and the offending entry", () => {
  const store = new InMemoryLogStore<null>();
  store.append([{ index: 1, term: 3, command: null }]);
  assertThrows(
    () => store.append([{ index: 3, term: 3, command: null }]),
    RangeError,
    "Cannot append: expected index 2, got 3",
  );
  assertThrows(
    () => store.append([{ index: 2, term: 2, command: null }]),
    RangeError,
    "term 2 at index 2 is below the previous term 3",
  );
});

test("InMemoryLogStore: rejects indices and terms that are not non-negative safe integers", () => {
  const store = new InMemoryLogStore<null>();
  assertThrows(() => store.append([{ index: 1.5, term: 1, command: null }]), RangeError);
  assertThrows(() => store.append([{ index: 1, term: -1, command: null }]), RangeError);
  assertThrows(
    () => store.append([{ index: "1" as unknown as number, term: 1, command: null }]),
    TypeError,
  );
  assertThrows(() => store.truncate(Number.NaN), RangeError);
  assertThrows(() => store.prunePrefix(-1), RangeError);
  assertThrows(() => store.resetTo({ term: 1, index: 2 ** 53 }), RangeError);
  assertThrows(() => store.saveHardState({ term: 0.5 }), RangeError);
  assertEquals(store.last(), { term: 0, index: 0 });
  assertEquals(store.loadHardState(), undefined);
});

test("InMemoryLogStore: resetTo rejects a non-zero term at index 0", () => {
  const store = new InMemoryLogStore<null>();
  assertThrows(() => store.resetTo({ term: 2, index: 0 }), RangeError, "index 0 must have term 0");
  assertEquals(store.termAt(0), 0);
});

test("InMemoryLogStore: reads of odd indices find nothing rather than throwing", () => {
  const store = new InMemoryLogStore<null>();
  store.append([{ index: 1, term: 1, command: null }, { index: 2, term: 1, command: null }]);
  for (const i of [-1, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
    assertEquals(store.get(i), undefined, `get(${i})`);
    assertEquals(store.termAt(i), undefined, `termAt(${i})`);
  }
  assertEquals(store.getRange(Number.NaN, 2), []);
  assertEquals(store.getRange(0.5, 1.5).map((e) => e.index), [1]);
  assertEquals(
    store.getRange(Number.NEGATIVE_INFINITY, Number.POSITIVE_INFINITY).map((e) => e.index),
    [1, 2],
  );
});

test("InMemoryLogStore: termAt(0) stays 0 after the sentinel is pruned past", () => {
  const store = new InMemoryLogStore<null>();
  store.append([1, 2, 3].map((index) => ({ index, term: 2, command: null })));
  store.prunePrefix(3);
  assertEquals(store.termAt(0), 0);
  store.resetTo({ term: 5, index: 9 });
  assertEquals(store.termAt(0), 0);
});

test("InMemoryLogStore: pruning in many small steps keeps positions right", () => {
  const store = new InMemoryLogStore<number>();
  const n = 5000;
  store.append(Array.from({ length: n }, (_, i) => ({ index: i + 1, term: 1, command: i + 1 })));
  for (let upTo = 7; upTo < n; upTo += 7) {
    store.prunePrefix(upTo);
    assertEquals(
      store.get(upTo + 1)?.command,
      upTo + 1,
      `get(${upTo + 1}) after prunePrefix(${upTo})`,
    );
    assertEquals(store.get(upTo), undefined, `get(${upTo}) after prunePrefix(${upTo})`);
  }
  assertEquals(store.available(), { start: 4999, end: n });
});
