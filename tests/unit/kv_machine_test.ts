// KeyValue, the CLI's state machine: set, delete, query, malformed commands skipped, reset.

import { KeyValue, type KvCommand } from "../../lib/machine/kv.ts";
import { assertEquals } from "../assert.ts";
import { test } from "../harness.ts";

const ctx = {
  committed: () => ({ term: 1, index: 1 }),
  logPosition: () => ({ term: 1, index: 1 }),
  currentTerm: () => 1,
};

test("KeyValue: set, overwrite and delete are visible to query", () => {
  const kv = new KeyValue();
  kv.apply({ op: "set", key: "a", value: "1" }, ctx);
  kv.apply({ op: "set", key: "b", value: "2" }, ctx);
  kv.apply({ op: "set", key: "a", value: "3" }, ctx);
  kv.apply({ op: "delete", key: "b" }, ctx);
  assertEquals(kv.query("a"), "3");
  assertEquals(kv.query("b"), null);
  assertEquals(kv.entries(), [["a", "3"]]);
  assertEquals(kv.applied, 4);
});

test("KeyValue: malformed commands are skipped without throwing", () => {
  const kv = new KeyValue();
  const bad = [null, 5, {}, { op: "set", key: 1, value: "x" }, { op: "set", key: "k" }, {
    op: "drop",
    key: "k",
  }] as unknown as KvCommand[];
  for (const c of bad) kv.apply(c, ctx);
  assertEquals(kv.size, 0);
  assertEquals(kv.applied, bad.length);
});

test("KeyValue: reset empties the map; entries are sorted by key", () => {
  const kv = new KeyValue();
  for (const k of ["c", "a", "b"]) kv.apply({ op: "set", key: k, value: k.toUpperCase() }, ctx);
  assertEquals(kv.entries(), [["a", "A"], ["b", "B"], ["c", "C"]]);
  kv.reset();
  assertEquals([kv.size, kv.applied, kv.query("a")], [0, 0, null]);
});
