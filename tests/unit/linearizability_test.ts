// Tests for the linearizability checker the simulator uses on client histories.

import { test } from "../harness.ts";
import { assert, assertEquals, assertThrows } from "../assert.ts";
import { SeededRng } from "../../lib/primitives/rng.ts";
import {
  checkLinearizability,
  type CheckOptions,
  type CheckResult,
  type KvInput,
  kvModel,
  type KvOutput,
  type Model,
  type Operation,
} from "../sim/linearizability.ts";

type KvOp = Operation<KvInput, KvOutput>;

/** A put; without `ret` it never returned. */
function put(clientId: number, key: string, value: string, call: number, ret?: number): KvOp {
  const input: KvInput = { op: "put", key, value };
  return ret === undefined
    ? { clientId, input, call }
    : { clientId, input, call, return: ret, output: null };
}

/** An append; without `ret` it never returned. */
function append(clientId: number, key: string, value: string, call: number, ret?: number): KvOp {
  const input: KvInput = { op: "append", key, value };
  return ret === undefined
    ? { clientId, input, call }
    : { clientId, input, call, return: ret, output: null };
}

/** A completed get that saw `output` (null: key absent). */
function get(
  clientId: number,
  key: string,
  output: string | null,
  call: number,
  ret: number,
): KvOp {
  return { clientId, input: { op: "get", key }, call, return: ret, output };
}

function check(history: KvOp[], opts: CheckOptions = {}): CheckResult {
  return checkLinearizability(kvModel, history, opts);
}

function expectOk(history: KvOp[], label: string): void {
  const result = check(history);
  assertEquals(result, { kind: "ok" }, `${label}: ${JSON.stringify(result)}`);
}

/** Asserts a violation and returns its explanation. */
function expectIllegal(history: KvOp[], label: string): string {
  const result = check(history);
  assert(result.kind === "illegal", `${label}: expected illegal, got ${JSON.stringify(result)}`);
  return result.explanation;
}

function assertIncludes(text: string, part: string): void {
  assert(text.includes(part), `expected ${JSON.stringify(part)} in:\n${text}`);
}

test("an empty history, or one with only pending reads, is linearizable", () => {
  expectOk([], "empty");
  expectOk([{ clientId: 1, input: { op: "get", key: "x" }, call: 3 }], "pending get");
});

test("sequential puts and gets that agree are linearizable; a stale read is not", () => {
  expectOk([
    get(1, "x", null, 0, 1),
    put(1, "x", "a", 2, 3),
    get(2, "x", "a", 4, 5),
    put(2, "x", "b", 6, 7),
    get(1, "x", "b", 8, 9),
  ], "sequential");
  expectIllegal([
    put(1, "x", "a", 0, 1),
    put(2, "x", "b", 2, 3),
    get(3, "x", "a", 4, 5),
  ], "stale read after a completed put");
  expectIllegal([put(1, "x", "a", 0, 1), get(2, "x", null, 2, 3)], "read misses a completed put");
});

test("a get concurrent with a put may see the old or the new value", () => {
  const before = put(1, "x", "old", 0, 1);
  const write = put(1, "x", "new", 2, 10);
  expectOk([before, write, get(2, "x", "old", 3, 5)], "sees old");
  expectOk([before, write, get(2, "x", "new", 3, 5)], "sees new");
  expectIllegal([before, write, get(2, "x", "old", 11, 12)], "sees old after the put returned");
});

test("a get that sees a value never written is a violation", () => {
  const explanation = expectIllegal([
    put(1, "x", "a", 0, 10),
    get(2, "x", "zzz", 2, 5),
  ], "phantom value");
  assertIncludes(explanation, 'get("x") -> "zzz"');
});

test("reads after two concurrent puts must agree on one order", () => {
  const puts = [put(1, "x", "A", 0, 10), put(2, "x", "B", 0, 10)];
  expectOk([...puts, get(3, "x", "A", 11, 12), get(3, "x", "A", 13, 14)], "A then A");
  expectOk([...puts, get(3, "x", "B", 11, 12), get(3, "x", "B", 13, 14)], "B then B");
  // A then B is fine while a put may still be in flight, not once both returned.
  expectOk([...puts, get(3, "x", "A", 5, 6), get(3, "x", "B", 11, 12)], "A mid-flight then B");
  expectIllegal(
    [...puts, get(3, "x", "A", 11, 12), get(3, "x", "B", 13, 14), get(4, "x", "A", 15, 16)],
    "A then B then A",
  );
  expectIllegal([...puts, get(3, "x", "A", 11, 12), get(3, "x", "B", 13, 14)], "A then B");
});

test("a pending put may take effect late or never", () => {
  expectOk(
    [put(1, "x", "p", 0), get(2, "x", null, 5, 6), get(2, "x", "p", 50, 51)],
    "observed late",
  );
  expectOk(
    [put(1, "x", "p", 0), get(2, "x", null, 5, 6), get(2, "x", null, 7, 8)],
    "never observed",
  );
  expectOk([put(1, "x", "a", 0, 1), put(2, "x", "p", 2), put(1, "x", "b", 3, 4)], "unobserved");
});

test("a pending put cannot be observed before its call, nor be undone once observed", () => {
  expectIllegal([get(2, "x", "p", 0, 1), put(1, "x", "p", 2)], "observed before its call");
  expectIllegal(
    [put(1, "x", "p", 0), get(2, "x", "p", 5, 6), get(2, "x", null, 7, 8)],
    "observed, then the key is absent again",
  );
  expectIllegal(
    [put(1, "x", "a", 0, 1), put(2, "x", "p", 2), get(3, "x", "p", 3, 4), get(3, "x", "a", 5, 6)],
    "observed, then the older value is back",
  );
  // Another write in between makes the same reads legal.
  expectOk(
    [put(1, "x", "a", 0, 1), put(2, "x", "p", 2), get(3, "x", "p", 3, 4), put(4, "x", "a", 4, 5)],
    "a later write restores the older value",
  );
});

test("append concatenates in linearization order", () => {
  expectOk([append(1, "x", "a", 0, 1), append(1, "x", "b", 2, 3), get(2, "x", "ab", 4, 5)], "ab");
  expectIllegal(
    [append(1, "x", "a", 0, 1), append(1, "x", "b", 2, 3), get(2, "x", "ba", 4, 5)],
    "ba after sequential appends",
  );
  const concurrent = [append(1, "x", "a", 0, 10), append(2, "x", "b", 0, 10)];
  expectOk([...concurrent, get(3, "x", "ba", 11, 12)], "concurrent appends in either order");
  expectOk([...concurrent, get(3, "x", "ab", 11, 12)], "concurrent appends in either order");
  expectIllegal([...concurrent, get(3, "x", "a", 11, 12)], "an append lost");
  expectOk(
    [put(1, "x", "p", 0, 1), append(1, "x", "q", 2, 3), get(2, "x", "pq", 4, 5)],
    "on a put",
  );
  expectOk([append(1, "x", "a", 0), get(2, "x", "a", 5, 6)], "pending append observed");
  expectOk([append(1, "x", "a", 0), get(2, "x", null, 5, 6)], "pending append not observed");
  expectIllegal([append(1, "x", "a", 0), get(2, "x", "aa", 5, 6)], "pending append applied twice");
});

test("keys are independent, and a violation names its key", () => {
  expectOk([
    put(1, "a", "1", 0, 1),
    put(2, "b", "2", 0, 1),
    get(1, "b", "2", 2, 3),
    get(2, "a", "1", 2, 3),
    get(3, "c", null, 2, 3),
  ], "three keys");
  const result = check([
    put(1, "a", "1", 0, 1),
    put(2, "b", "2", 0, 1),
    get(1, "a", "1", 2, 3),
    get(2, "b", "1", 2, 3), // "1" was written to a, never to b
  ]);
  assert(result.kind === "illegal", JSON.stringify(result));
  assertEquals(result.partition, 1);
  assertIncludes(result.explanation, 'key "b"');
  assert(!result.explanation.includes('key "a"'), result.explanation);
});

test("an operation returning at the instant another is called is concurrent with it", () => {
  const write = put(1, "x", "a", 0, 5);
  expectOk([write, get(2, "x", null, 5, 6)], "get called when the put returns");
  expectIllegal([write, get(2, "x", null, 6, 7)], "get called after the put returns");
  expectOk([get(2, "x", "a", 0, 5), put(1, "x", "a", 5, 6)], "put called when the get returns");
  expectIllegal(
    [get(2, "x", "a", 0, 5), put(1, "x", "a", 6, 7)],
    "put called after the get returns",
  );
});

test("the explanation shows the longest prefix and the operation that could not be placed", () => {
  const explanation = expectIllegal([
    put(1, "x", "a", 0, 1),
    put(2, "x", "b", 2, 3),
    get(3, "x", "a", 4, 5),
  ], "stale read");
  assertIncludes(explanation, 'partition 0 (key "x") is not linearizable');
  assertIncludes(explanation, "Longest linearizable prefix found (2 of 3 operations)");
  assertIncludes(explanation, '1. client 1: put("x", "a") (call 0, return 1)');
  assertIncludes(explanation, '2. client 2: put("x", "b") (call 2, return 3)');
  assertIncludes(explanation, 'State after it: "b"');
  assertIncludes(explanation, 'Could not place: client 3: get("x") -> "a" (call 4, return 5)');
  assertIncludes(explanation, "not legal in this state");
});

test("the checker works on any model, with or without partitions", () => {
  // A counter whose increment returns the new value.
  const counter: Model<number, "inc" | "read", number> = {
    init: () => 0,
    step: (s, input, out) =>
      input === "inc"
        ? [out === undefined || out === s + 1, s + 1]
        : [out === undefined || out === s, s],
    equal: (a, b) => a === b,
    hash: String,
  };
  const op = (
    clientId: number,
    input: "inc" | "read",
    call: number,
    ret?: number,
    output?: number,
  ): Operation<"inc" | "read", number> => {
    if (ret === undefined) return { clientId, input, call };
    return output === undefined
      ? { clientId, input, call, return: ret }
      : { clientId, input, call, return: ret, output };
  };
  const run = (h: Operation<"inc" | "read", number>[]) => checkLinearizability(counter, h).kind;
  assertEquals(run([op(1, "inc", 0, 10, 2), op(2, "inc", 0, 10, 1)]), "ok");
  assertEquals(run([op(1, "inc", 0, 10, 1), op(2, "inc", 0, 10, 1)]), "illegal");
  assertEquals(run([op(1, "inc", 0), op(2, "read", 5, 6, 1)]), "ok");
  assertEquals(run([op(1, "inc", 0), op(2, "read", 5, 6, 2)]), "illegal");
  // Without `readOnly` a pending read is kept, and must still be optional.
  assertEquals(run([op(1, "read", 0), op(2, "inc", 5, 6, 1)]), "ok");
  // A completed operation with an unknown outcome still takes effect.
  assertEquals(run([op(1, "inc", 0, 1), op(2, "read", 2, 3, 1)]), "ok");
  assertEquals(run([op(1, "inc", 0, 1), op(2, "read", 2, 3, 0)]), "illegal");
  const result = checkLinearizability(counter, [op(1, "inc", 0, 1, 5)]);
  assert(
    result.kind === "illegal" && result.explanation.startsWith("partition 0 is not"),
    JSON.stringify(result),
  );
});

test("malformed histories and options are rejected", () => {
  assertThrows(() => check([get(1, "x", null, 5, 4)]), RangeError, "before its call");
  assertThrows(() => check([get(1, "x", null, Number.NaN, 4)]), RangeError, "not finite");
  assertThrows(() => check([get(1, "x", null, 0, Infinity)]), RangeError, "not finite");
  assertThrows(() => check([], { maxSteps: 0 }), RangeError, "maxSteps");
});

/** Many concurrent puts and a read of a value none wrote: proving it illegal means trying every subset. */
function expensiveViolation(key: string, writers: number): KvOp[] {
  const history = Array.from({ length: writers }, (_, i) => put(i, key, `v${i}`, 0, 100));
  history.push(get(writers, key, "never-written", 101, 102));
  return history;
}

test("running out of search steps yields unknown, never ok", () => {
  const hard = expensiveViolation("x", 12);
  const limited = check(hard, { maxSteps: 1_000 });
  assertEquals(limited.kind, "unknown", JSON.stringify(limited));
  assert(limited.kind === "unknown" && limited.reason.includes('key "x"'), JSON.stringify(limited));
  assertEquals(check(hard).kind, "illegal");

  const fine = generateHistory(7, 50, 1, 5);
  assertEquals(check(fine).kind, "ok", "seed 7 with the default budget");
  assertEquals(check(fine, { maxSteps: 5 }).kind, "unknown", "seed 7 with 5 steps");
  // A cheap violation on another key is still found when one key runs out.
  const mixed = [...hard, put(1, "y", "a", 0, 1), get(2, "y", null, 2, 3)];
  const result = check(mixed, { maxSteps: 1_000 });
  assert(result.kind === "illegal" && result.partition === 1, JSON.stringify(result));
});

interface Planned {
  op: KvOp;
  /** When it took effect, or null if it never did. */
  at: number | null;
}

/**
 * A history of a truly linearizable store: every op takes effect at a random
 * instant inside [call, return], outputs follow from that order. About one op
 * in twelve never returns, and half of those never take effect.
 */
function generateHistory(seed: number, count: number, keys: number, clients: number): KvOp[] {
  const rng = new SeededRng(seed);
  const free = new Array<number>(clients).fill(0);
  const planned: Planned[] = [];
  for (let i = 0; i < count; i++) {
    const clientId = rng.int(clients);
    const call = (free[clientId] ?? 0) + rng.int(4);
    const ret = call + 1 + rng.int(12);
    // The next call may coincide with this return, exercising ties.
    free[clientId] = ret + rng.int(2);
    const key = `k${rng.int(keys)}`;
    const r = rng.next();
    const input: KvInput = r < 0.45
      ? { op: "get", key }
      : r < 0.8
      ? { op: "put", key, value: `v${i};` }
      : { op: "append", key, value: `a${i};` };
    if (rng.next() < 1 / 12) {
      const at = rng.next() < 0.5 ? null : call + rng.next() * 40;
      planned.push({ op: { clientId, input, call }, at });
    } else {
      planned.push({
        op: { clientId, input, call, return: ret },
        at: call + rng.next() * (ret - call),
      });
    }
  }
  const order = planned.filter((p) => p.at !== null);
  order.sort((a, b) => (a.at as number) - (b.at as number));
  const store = new Map<string, string>();
  for (const { op } of order) {
    const { input } = op;
    let output: KvOutput = null;
    if (input.op === "get") output = store.get(input.key) ?? null;
    else if (input.op === "put") store.set(input.key, input.value);
    else store.set(input.key, (store.get(input.key) ?? "") + input.value);
    if (op.return !== undefined) op.output = output;
  }
  return planned.map((p) => p.op);
}

test("generated linearizable histories pass, and a corrupted read is caught", () => {
  for (let seed = 1; seed <= 200; seed++) {
    const history = generateHistory(seed, 50, 3, 6);
    const result = check(history);
    assertEquals(result, { kind: "ok" }, `seed ${seed}: ${JSON.stringify(result)}`);

    const reads = history.filter((op) => op.input.op === "get" && op.return !== undefined);
    assert(reads.length > 0, `seed ${seed}: no completed reads to corrupt`);
    const victim = reads[new SeededRng(seed ^ 0x5eed).int(reads.length)] as KvOp;
    const corrupted = history.map((op) => op === victim ? { ...op, output: "never-written" } : op);
    const bad = check(corrupted);
    assert(
      bad.kind === "illegal",
      `seed ${seed}: corrupted read not caught: ${JSON.stringify(bad)}`,
    );
    assertIncludes(bad.explanation, `key ${JSON.stringify(victim.input.key)}`);
    assertIncludes(bad.explanation, '"never-written"');
  }
});

test("outstanding pending appends that never took effect do not swamp the search", () => {
  // One client keeps timing out (say, it talks to a deposed leader) while
  // another succeeds. Placing each timed-out append eagerly, as plain WGL
  // does, makes every later read a search over subsets of them.
  const history = (tookEffect: (i: number) => boolean): KvOp[] => {
    const ops: KvOp[] = [];
    let value = "";
    for (let i = 0; i < 40; i++) {
      ops.push(append(1, "x", `p${i};`, 10 * i));
      if (tookEffect(i)) value += `p${i};`;
      ops.push(append(2, "x", `c${i};`, 10 * i + 1, 10 * i + 2));
      value += `c${i};`;
      if (i % 5 === 4) ops.push(get(3, "x", value, 10 * i + 3, 10 * i + 4));
    }
    return ops;
  };
  const budget = { maxSteps: 1_000_000 };
  assertEquals(check(history(() => false), budget), { kind: "ok" }, "none took effect");
  assertEquals(check(history((i) => i < 3), budget), { kind: "ok" }, "the first three took effect");
  assertEquals(check(history((i) => i === 20), budget), { kind: "ok" }, "one in the middle");
});

test("generated single-key histories with six clients pass within a modest budget", () => {
  // The budget is deterministic, not a timing: it guards the search orders
  // (without the eager one, several of these seeds need more).
  for (let seed = 1; seed <= 20; seed++) {
    const result = check(generateHistory(seed, 200, 1, 6), { maxSteps: 300_000 });
    assertEquals(result, { kind: "ok" }, `seed ${seed}: ${JSON.stringify(result)}`);
  }
});

test("long histories are checked without deep recursion", () => {
  const history = generateHistory(2024, 2000, 10, 16);
  const result = check(history);
  assertEquals(result, { kind: "ok" }, `seed 2024: ${JSON.stringify(result)}`);

  // One key, thousands of sequential ops: the search stack gets as deep as the history.
  const sequential: KvOp[] = [];
  for (let i = 0; i < 3000; i++) sequential.push(append(1, "x", "a", 2 * i, 2 * i + 1));
  sequential.push(get(2, "x", "a".repeat(3000), 6000, 6001));
  expectOk(sequential, "3000 sequential appends");
  sequential[sequential.length - 1] = get(2, "x", "a".repeat(2999), 6000, 6001);
  expectIllegal(sequential, "3000 sequential appends, one lost");
});
