// The storage conformance suite: the behaviour every Storage<C> must show, run against each store.
//
// Every call is awaited, so the same cases check synchronous stores (InMemoryLogStore)
// and promise-returning durable ones. A case builds its expectations from its own
// small model of the log rather than from another store, so a store cannot pass by
// sharing a bug with the reference.

import { Cursor, type Index, type IndexRange } from "../../lib/primitives/cursor.ts";
import { SeededRng } from "../../lib/primitives/rng.ts";
import { StoreOwnerError } from "../../storage/errors.ts";
import { type HardState, type LogEntry, type Storage, SystemEntry } from "../../storage/types.ts";
import { assert, assertEquals } from "../assert.ts";
import { test } from "../harness.ts";

/** How the suite gets stores to test. */
export interface StoreFactory {
  /** A fresh, empty store, sharing no data with any other store it made. */
  create(): Storage<unknown> | Promise<Storage<unknown>>;
  /**
   * Closes `store` and opens the same backing data again (durable stores only).
   * When present, the suite also checks that entries, hard state, truncation,
   * pruning and `resetTo` survive a reopen.
   */
  reopen?(store: Storage<unknown>): Promise<Storage<unknown>>;
  /**
   * Cleanup after each case, given the case's last store (the one `reopen`
   * returned, if it was called). Runs after that store was closed, even when
   * the case failed.
   */
  dispose?(store: Storage<unknown>): void | Promise<void>;
}

/** One check of the suite, runnable without a test runner: `run` rejects when the store fails it. */
export interface ConformanceCase {
  /** What the case checks, unique within the suite. */
  readonly name: string;
  /** True when the case needs {@link StoreFactory.reopen}; such cases are only run when it exists. */
  readonly needsReopen: boolean;
  /** Creates its own store(s) from `factory`, checks them, and always closes and disposes them. */
  run(factory: StoreFactory): Promise<void>;
}

/** Test options for {@link runStorageConformance}. */
export interface ConformanceOptions {
  /** Per-case timeout in milliseconds (the harness default when omitted). */
  timeout?: number;
}

/**
 * Every case of the suite, in a stable order, including the ones that need
 * `reopen` (check {@link ConformanceCase.needsReopen} before running those).
 */
export function storageConformanceCases(): ConformanceCase[] {
  return CASES.map((c) => ({ ...c }));
}

/**
 * Registers one test per applicable case, named `${suiteName}: ${case.name}`.
 * Cases that need `reopen` are registered only when `factory.reopen` exists.
 */
export function runStorageConformance(
  suiteName: string,
  factory: StoreFactory,
  options: ConformanceOptions = {},
): void {
  for (const c of storageConformanceCases()) {
    if (c.needsReopen && factory.reopen === undefined) continue;
    const opts = options.timeout === undefined ? {} : { timeout: options.timeout };
    test(`${suiteName}: ${c.name}`, () => c.run(factory), opts);
  }
}

/**
 * Calls every method of `store` once (on a fresh store; it ends closed) and
 * throws unless each answered synchronously, for stores that promise it.
 */
export function assertSynchronous(store: Storage<string>): void {
  const results: unknown[] = [
    store.claim?.({ group: "01", member: "02" }),
    store.append([{ index: 1, term: 1, command: "a" }, { index: 2, term: 1, command: "b" }]),
    store.available(),
    store.get(1),
    store.getRange(1, 2),
    store.last(),
    store.termAt(1),
    store.truncate(2),
    store.prunePrefix(1),
    store.resetTo({ term: 1, index: 1 }),
    store.saveHardState({ term: 1 }),
    store.loadHardState(),
    store.close?.(),
  ];
  for (const [i, r] of results.entries()) {
    assert(!(r instanceof Promise), `result ${i} should not be a promise`);
  }
}

// ---------------------------------------------------------------------------
// Running a case against a store

/** The store a case is working on; `reopen` swaps it for the reopened one. */
interface Session {
  readonly store: Storage<unknown>;
  reopen(): Promise<void>;
}

type CaseBody = (s: Session) => Promise<void>;

function plain(name: string, body: CaseBody): ConformanceCase {
  return { name, needsReopen: false, run: (factory) => withStore(factory, body) };
}

function durable(name: string, body: CaseBody): ConformanceCase {
  return { name, needsReopen: true, run: (factory) => withStore(factory, body) };
}

async function withStore(factory: StoreFactory, body: CaseBody): Promise<void> {
  let store = await factory.create();
  const session: Session = {
    get store() {
      return store;
    },
    async reopen() {
      if (factory.reopen === undefined) {
        throw new Error("Cannot reopen: the store factory has no reopen");
      }
      store = await factory.reopen(store);
    },
  };
  // The first failure wins, so a close or dispose error never hides what the case found.
  let failed = false;
  let failure: unknown;
  const attempt = async (step: () => unknown): Promise<void> => {
    try {
      await step();
    } catch (err) {
      if (!failed) {
        failed = true;
        failure = err;
      }
    }
  };
  await attempt(() => body(session));
  await attempt(() => store.close?.());
  await attempt(() => factory.dispose?.(store));
  if (failed) throw failure;
}

// ---------------------------------------------------------------------------
// Checks

/** Deep strict equality whose failure says what was being compared. */
function eq<T>(actual: T, expected: T, what: string): void {
  try {
    assertEquals(actual, expected);
  } catch (err) {
    const detail = err instanceof Error ? err.message : String(err);
    throw new Error(`${what}: ${detail}`, { cause: err });
  }
}

async function expectRangeError(what: string, fn: () => unknown): Promise<void> {
  let threw = false;
  let error: unknown;
  try {
    await fn();
  } catch (err) {
    threw = true;
    error = err;
  }
  assert(threw, `${what} should throw a RangeError but succeeded`);
  assert(
    error instanceof RangeError,
    `${what} should throw a RangeError, got ${error instanceof Error ? error.name : String(error)}`,
  );
}

/** What a log should hold: the cursor before its first entry, and its entries. */
interface Model {
  prefix: Cursor;
  entries: LogEntry<unknown>[];
}

function emptyModel(): Model {
  return { prefix: Cursor.ZERO, entries: [] };
}

function lastOf(m: Model): Cursor {
  const e = m.entries.at(-1);
  return e === undefined ? m.prefix : { term: e.term, index: e.index };
}

function cursorOf(e: LogEntry<unknown>): Cursor {
  return { term: e.term, index: e.index };
}

// Checking every index with get() would take tens of thousands of awaited calls on
// a durable store; getRange covers all of them, get/termAt a spread that includes the ends.
function sampleOffsets(n: number): number[] {
  if (n <= 32) return [...Array(n).keys()];
  const picks = new Set<number>([0, 1, 2, n - 3, n - 2, n - 1]);
  const step = Math.ceil(n / 24);
  for (let i = 0; i < n; i += step) picks.add(i);
  return [...picks].sort((a, b) => a - b);
}

/** Checks every read method of `store` against `m`. */
async function expectLog(store: Storage<unknown>, m: Model, when: string): Promise<void> {
  const last = lastOf(m);
  const p = m.prefix.index;
  eq(await store.last(), last, `${when}: last()`);
  const range: IndexRange = { start: p + 1, end: last.index };
  eq(await store.available(), range, `${when}: available()`);
  eq(await store.termAt(p), m.prefix.term, `${when}: termAt(${p}) (the prefix)`);
  eq(await store.termAt(0), 0, `${when}: termAt(0)`);
  if (p >= 2) {
    eq(await store.termAt(p - 1), undefined, `${when}: termAt(${p - 1}) (below the prefix)`);
    eq(await store.termAt(1), undefined, `${when}: termAt(1) (below the prefix)`);
    eq(await store.get(p - 1), undefined, `${when}: get(${p - 1}) (below the prefix)`);
  }
  eq(await store.get(p), undefined, `${when}: get(${p}) (the prefix)`);
  eq(await store.get(last.index + 1), undefined, `${when}: get(${last.index + 1}) (past the end)`);
  eq(await store.termAt(last.index + 1), undefined, `${when}: termAt(${last.index + 1})`);
  eq(
    await store.getRange(range.start, range.end),
    m.entries,
    `${when}: getRange(${range.start}, ${range.end})`,
  );
  // A range reaching past both ends of the log is clipped to what is available.
  eq(
    await store.getRange(0, last.index + 10),
    m.entries,
    `${when}: getRange(0, ${last.index + 10})`,
  );
  for (const i of sampleOffsets(m.entries.length)) {
    const e = m.entries[i];
    if (e === undefined) continue;
    eq(await store.get(e.index), e, `${when}: get(${e.index})`);
    eq(await store.termAt(e.index), e.term, `${when}: termAt(${e.index})`);
  }
}

// ---------------------------------------------------------------------------
// Test data

/** A user command that names its position, so a stale entry at the same index is told apart. */
function command(index: Index, term: number): unknown {
  return { op: "set", key: `k${index}`, value: index * 7, term };
}

function entry(index: Index, term: number, cmd: unknown = command(index, term)): LogEntry<unknown> {
  return { index, term, command: cmd };
}

/** Entries `from..=to`, with `termOf(index)` as each term. */
/** `n` bytes that differ by position and `seed`, so a misplaced chunk shows. */
function pattern(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = (i * 31 + seed * 7 + (i >>> 8)) & 0xff;
  return out;
}

function entries(from: Index, to: Index, termOf: (i: Index) => number): LogEntry<unknown>[] {
  const out: LogEntry<unknown>[] = [];
  for (let i = from; i <= to; i++) out.push(entry(i, termOf(i)));
  return out;
}

/** Ten entries with terms 1,1,1,2,2,3,3,3,3,4: boundaries inside, so off-by-one terms show. */
const TERMS_OF_TEN = [1, 1, 1, 2, 2, 3, 3, 3, 3, 4];
function tenEntries(): LogEntry<unknown>[] {
  return entries(1, 10, (i) => TERMS_OF_TEN[i - 1] ?? 4);
}

async function withTen(s: Session): Promise<Model> {
  const m: Model = { prefix: Cursor.ZERO, entries: tenEntries() };
  await s.store.append(tenEntries());
  await expectLog(s.store, m, "after appending 1..10");
  return m;
}

/** The kinds of value a user command may be (API.md: CBOR-encodable data). */
function cborCommands(): unknown[] {
  return [
    null,
    true,
    false,
    0,
    1,
    -1,
    42.5,
    -0.125,
    Number.MAX_SAFE_INTEGER,
    Number.MIN_SAFE_INTEGER,
    "",
    "hello",
    "ünïcødé ✓ 🙂",
    [],
    [1, "two", null, [3, [4]]],
    {},
    { a: 1, b: { c: [1, 2, { d: "e" }] }, s: "x" },
    new Uint8Array(),
    new Uint8Array([0, 1, 2, 127, 128, 255]),
    // A view into a larger buffer: only its own bytes belong to the command.
    new Uint8Array([9, 9, 1, 2, 3, 9]).subarray(2, 5),
    new Uint8Array(4096).map((_, i) => i % 251),
    0n,
    1n,
    -1n,
    2n ** 64n - 1n,
    -(2n ** 63n),
    2n ** 100n,
    new Map<unknown, unknown>([["a", 1], [2, "b"], ["nested", new Map([["x", [1n]]])]]),
    new Map(),
    new Set<unknown>([1, "a", null]),
    { bytes: new Uint8Array([1, 2]), big: 5n, map: new Map([["k", { v: [true] }]]) },
    // Looks like a system entry's body, but is a user command and must stay one.
    { body: { type: "noop" } },
    { type: "membership", voters: ["aa"], learners: [] },
  ];
}

function systemEntries(): SystemEntry[] {
  return [
    SystemEntry.noop(),
    new SystemEntry({ type: "membership", voters: ["0a0b", "0c0d", "0e0f"], learners: [] }),
    new SystemEntry({ type: "membership", voters: ["0a0b"], learners: ["1a1b", "1c1d"] }),
    new SystemEntry({ type: "membership", voters: [], learners: [] }),
  ];
}

/** System entries interleaved with user commands, all in term 2 after a term-1 entry. */
function mixedEntries(): LogEntry<unknown>[] {
  const out: LogEntry<unknown>[] = [entry(1, 1, "first")];
  const sys = systemEntries();
  const user = cborCommands();
  let index = 2;
  for (let i = 0; i < Math.max(sys.length, user.length); i++) {
    const s = sys[i];
    if (s !== undefined) out.push(entry(index++, 2, s));
    if (i < user.length) out.push(entry(index++, 2, user[i]));
  }
  return out;
}

async function expectMixed(store: Storage<unknown>, appended: LogEntry<unknown>[], when: string) {
  for (const e of appended) {
    const got = await store.get(e.index);
    eq(got, e, `${when}: get(${e.index})`);
    eq(
      SystemEntry.is(got?.command),
      SystemEntry.is(e.command),
      `${when}: SystemEntry.is(get(${e.index}).command)`,
    );
  }
  const range = await store.getRange(1, appended.length);
  eq(range, appended, `${when}: getRange(1, ${appended.length})`);
  range.forEach((got, i) => {
    eq(
      SystemEntry.is(got.command),
      SystemEntry.is(appended[i]?.command),
      `${when}: SystemEntry.is(getRange()[${i}].command)`,
    );
  });
}

// ---------------------------------------------------------------------------
// Random operations against the model

/** Applies `steps` random operations (valid and invalid) to the store and the model, checking after each. */
async function randomOperations(
  s: Session,
  seed: number,
  steps: number,
  withReopen: boolean,
): Promise<void> {
  const rng = new SeededRng(seed);
  const m = emptyModel();
  let hard: HardState | undefined;
  for (let step = 0; step < steps; step++) {
    const last = lastOf(m);
    const p = m.prefix.index;
    const roll = rng.int(100);
    let what: string;
    if (roll < 30) {
      const n = 1 + rng.int(5);
      const term = Math.max(1, last.term + (rng.int(3) === 0 ? 1 + rng.int(2) : 0));
      const batch = entries(last.index + 1, last.index + n, () => term);
      what = `append ${last.index + 1}..=${last.index + n} in term ${term}`;
      await s.store.append(batch);
      m.entries.push(...batch);
    } else if (roll < 33) {
      what = "append []";
      await s.store.append([]);
    } else if (roll < 42) {
      const term = Math.max(1, last.term);
      const kind = rng.int(4);
      const batch = kind === 0
        ? [entry(last.index + 2, term)]
        : kind === 1
        ? [entry(last.index, term)]
        : kind === 2
        ? [entry(last.index + 1, term), entry(last.index + 3, term)]
        : [entry(last.index + 1, term + 1), entry(last.index + 2, term)];
      what = `rejected append of ${batch.map((e) => Cursor.format(e)).join(",")}`;
      await expectRangeError(what, () => s.store.append(batch));
    } else if (roll < 55) {
      const from = p + 1 + rng.int(last.index - p + 3);
      what = `truncate(${from})`;
      await s.store.truncate(from);
      m.entries = m.entries.filter((e) => e.index < from);
    } else if (roll < 59) {
      const from = rng.int(p + 1);
      what = `rejected truncate(${from})`;
      await expectRangeError(what, () => s.store.truncate(from));
    } else if (roll < 72) {
      const upTo = rng.int(last.index + 1);
      what = `prunePrefix(${upTo})`;
      await s.store.prunePrefix(upTo);
      const boundary = m.entries.find((e) => e.index === upTo);
      if (upTo > p && boundary !== undefined) {
        m.prefix = cursorOf(boundary);
        m.entries = m.entries.filter((e) => e.index > upTo);
      }
    } else if (roll < 75) {
      const upTo = last.index + 1 + rng.int(3);
      what = `rejected prunePrefix(${upTo})`;
      await expectRangeError(what, () => s.store.prunePrefix(upTo));
    } else if (roll < 80) {
      const index = rng.int(last.index + 8);
      const cursor = index === 0 ? Cursor.ZERO : { term: 1 + rng.int(last.term + 2), index };
      what = `resetTo(${Cursor.format(cursor)})`;
      await s.store.resetTo(cursor);
      m.prefix = cursor;
      m.entries = [];
    } else if (roll < 90) {
      const term = rng.int(50);
      hard = rng.int(2) === 0 ? { term } : { term, votedFor: `peer${rng.int(5)}` };
      what = `saveHardState(${JSON.stringify(hard)})`;
      await s.store.saveHardState(hard);
    } else if (withReopen) {
      what = "reopen";
      await s.reopen();
    } else {
      const a = rng.int(last.index + 4);
      const b = rng.int(last.index + 4);
      what = `getRange(${a}, ${b})`;
      eq(
        await s.store.getRange(a, b),
        m.entries.filter((e) => e.index >= a && e.index <= b),
        what,
      );
    }
    const when = `step ${step} (${what})`;
    await expectLog(s.store, m, when);
    eq(await s.store.loadHardState(), hard, `${when}: loadHardState()`);
  }
}

// ---------------------------------------------------------------------------
// The cases

const CASES: readonly ConformanceCase[] = [
  plain("an empty store is at the sentinel", async (s) => {
    await expectLog(s.store, emptyModel(), "new store");
    eq(await s.store.termAt(0), 0, "termAt(0)");
    eq(await s.store.termAt(1), undefined, "termAt(1)");
    eq(await s.store.get(0), undefined, "get(0)");
    eq(await s.store.get(1), undefined, "get(1)");
    eq(await s.store.getRange(0, 10), [], "getRange(0, 10)");
    eq(await s.store.getRange(1, 1), [], "getRange(1, 1)");
    eq(await s.store.loadHardState(), undefined, "loadHardState()");
  }),

  plain("appended entries read back", async (s) => {
    const m = await withTen(s);
    eq(await s.store.last(), { term: 4, index: 10 }, "last()");
    eq(await s.store.available(), { start: 1, end: 10 }, "available()");
    for (const e of m.entries) {
      eq(await s.store.get(e.index), e, `get(${e.index})`);
      eq(await s.store.termAt(e.index), e.term, `termAt(${e.index})`);
    }
    eq(await s.store.get(0), undefined, "get(0)");
    eq(await s.store.get(11), undefined, "get(11)");
    eq(await s.store.termAt(11), undefined, "termAt(11)");
  }),

  plain("the first append may start in any term", async (s) => {
    const batch = entries(1, 3, () => 7);
    await s.store.append(batch);
    await expectLog(s.store, { prefix: Cursor.ZERO, entries: batch }, "after appending in term 7");
  }),

  plain("an empty append changes nothing", async (s) => {
    await s.store.append([]);
    await expectLog(s.store, emptyModel(), "empty append to an empty store");
    const m = await withTen(s);
    await s.store.append([]);
    await expectLog(s.store, m, "empty append after 1..10");
  }),

  plain("appends accumulate across many small calls", async (s) => {
    const m = emptyModel();
    for (let i = 1; i <= 300; i++) {
      const e = entry(i, 1 + Math.floor(i / 50));
      await s.store.append([e]);
      m.entries.push(e);
      if (i % 100 === 0) await expectLog(s.store, m, `after ${i} single appends`);
    }
    for (let i = 0; i < 20; i++) {
      const start = lastOf(m).index + 1;
      const batch = entries(start, start + (i % 4), () => 8 + Math.floor(i / 5));
      await s.store.append(batch);
      m.entries.push(...batch);
    }
    await expectLog(s.store, m, "after single appends and small batches");
  }),

  plain("a large batch appends and reads back", async (s) => {
    const n = 10_000;
    const termOf = (i: Index) => 1 + Math.floor((i - 1) / 1000);
    const batch = entries(1, n, termOf);
    await s.store.append(batch);
    const m: Model = { prefix: Cursor.ZERO, entries: entries(1, n, termOf) };
    await expectLog(s.store, m, `after appending ${n} entries`);
    eq(await s.store.getRange(2500, 7499), m.entries.slice(2499, 7499), "getRange(2500, 7499)");
    for (const i of [999, 1000, 1001, 5000, 9999, 10_000]) {
      eq(await s.store.termAt(i), termOf(i), `termAt(${i})`);
    }
    await s.store.prunePrefix(5000);
    await s.store.truncate(9001);
    const rest: Model = { prefix: { term: 5, index: 5000 }, entries: m.entries.slice(5000, 9000) };
    await expectLog(s.store, rest, "after prunePrefix(5000) and truncate(9001)");
    const more = entries(9001, 9500, () => 20);
    await s.store.append(more);
    rest.entries.push(...more);
    await expectLog(s.store, rest, "after appending 9001..=9500 in term 20");
  }),

  plain("append rejects a batch that does not start right after the last entry", async (s) => {
    await expectRangeError("append at 2 to an empty store", () => s.store.append([entry(2, 1)]));
    await expectRangeError("append at 0 to an empty store", () => s.store.append([entry(0, 1)]));
    await expectLog(s.store, emptyModel(), "after rejected appends to an empty store");
    const m = await withTen(s);
    await expectRangeError("append at 12 after 10", () => s.store.append([entry(12, 4)]));
    await expectRangeError("append at 10 after 10", () => s.store.append([entry(10, 4)]));
    await expectRangeError("append at 1 after 10", () => s.store.append(entries(1, 11, () => 4)));
    await expectLog(s.store, m, "after rejected appends");
  }),

  plain("append rejects a batch with a gap or repeat inside and stores none of it", async (s) => {
    const m = await withTen(s);
    const gap = [entry(11, 4), entry(12, 4), entry(14, 4)];
    await expectRangeError("append of 11,12,14", () => s.store.append(gap));
    const repeat = [entry(11, 4), entry(11, 4)];
    await expectRangeError("append of 11,11", () => s.store.append(repeat));
    const backwards = [entry(11, 4), entry(12, 4), entry(11, 5)];
    await expectRangeError("append of 11,12,11", () => s.store.append(backwards));
    await expectLog(s.store, m, "after rejected batches");
    const ok = entries(11, 12, () => 4);
    await s.store.append(ok);
    m.entries.push(...ok);
    await expectLog(s.store, m, "after a valid append following the rejected ones");
  }),

  plain("append rejects a term lower than the one before it", async (s) => {
    const m = await withTen(s);
    await expectRangeError("append in term 3 after term 4", () => s.store.append([entry(11, 3)]));
    const inside = [entry(11, 5), entry(12, 6), entry(13, 5)];
    await expectRangeError("append of terms 5,6,5", () => s.store.append(inside));
    await expectLog(s.store, m, "after rejected appends");
    await s.store.prunePrefix(10);
    await expectRangeError(
      "append in term 3 after pruning up to a term-4 entry",
      () => s.store.append([entry(11, 3)]),
    );
    await s.store.resetTo({ term: 9, index: 50 });
    await expectRangeError(
      "append in term 8 after resetTo(9:50)",
      () => s.store.append([entry(51, 8)]),
    );
    await expectLog(s.store, { prefix: { term: 9, index: 50 }, entries: [] }, "after resetTo");
  }),

  plain("append copies the caller's array", async (s) => {
    const batch = tenEntries();
    await s.store.append(batch);
    batch.length = 3;
    batch.push(entry(4, 9, "changed"));
    batch[0] = entry(1, 9, "changed");
    await expectLog(
      s.store,
      { prefix: Cursor.ZERO, entries: tenEntries() },
      "after changing the appended array",
    );
  }),

  plain("getRange is inclusive and skips unavailable indices", async (s) => {
    const m = await withTen(s);
    const all = m.entries;
    const cases: [number, number, LogEntry<unknown>[]][] = [
      [3, 5, all.slice(2, 5)],
      [1, 10, all],
      [5, 5, all.slice(4, 5)],
      [6, 5, []],
      [10, 1, []],
      [8, 20, all.slice(7)],
      [0, 2, all.slice(0, 2)],
      [11, 20, []],
      [0, 0, []],
    ];
    for (const [a, b, want] of cases) {
      eq(await s.store.getRange(a, b), want, `getRange(${a}, ${b})`);
    }
    await s.store.prunePrefix(4);
    eq(await s.store.getRange(1, 6), all.slice(4, 6), "getRange(1, 6) after prunePrefix(4)");
    eq(await s.store.getRange(1, 4), [], "getRange(1, 4) after prunePrefix(4)");
    eq(await s.store.getRange(4, 4), [], "getRange(4, 4) after prunePrefix(4)");
  }),

  plain("changing a returned range does not change the store", async (s) => {
    const m = await withTen(s);
    const got = await s.store.getRange(1, 10);
    got.pop();
    got.reverse();
    got[0] = entry(1, 9, "changed");
    const again = await s.store.getRange(1, 10);
    eq(again, m.entries, "getRange(1, 10) after changing an earlier result");
    again.length = 0;
    await expectLog(s.store, m, "after emptying a returned range");
  }),

  plain("truncate removes from the middle to the end", async (s) => {
    const m = await withTen(s);
    await s.store.truncate(6);
    m.entries = m.entries.slice(0, 5);
    await expectLog(s.store, m, "after truncate(6)");
    eq(await s.store.last(), { term: 2, index: 5 }, "last() after truncate(6)");
    await expectRangeError("append at 7 after truncate(6)", () => s.store.append([entry(7, 5)]));
    const replacement = entries(6, 8, () => 5);
    await s.store.append(replacement);
    m.entries.push(...replacement);
    await expectLog(s.store, m, "after appending 6..=8 in term 5");
    eq(await s.store.termAt(6), 5, "termAt(6) after replacing the suffix");
  }),

  plain("truncate at the last index removes only the last entry", async (s) => {
    const m = await withTen(s);
    await s.store.truncate(10);
    m.entries = m.entries.slice(0, 9);
    await expectLog(s.store, m, "after truncate(10)");
    eq(await s.store.last(), { term: 3, index: 9 }, "last() after truncate(10)");
  }),

  plain("truncate from the first index empties the log", async (s) => {
    await withTen(s);
    await s.store.truncate(1);
    await expectLog(s.store, emptyModel(), "after truncate(1)");
    const fresh = entries(1, 2, () => 6);
    await s.store.append(fresh);
    await expectLog(s.store, { prefix: Cursor.ZERO, entries: fresh }, "after appending again");
  }),

  plain("truncate past the end changes nothing", async (s) => {
    await s.store.truncate(1);
    await expectLog(s.store, emptyModel(), "after truncate(1) on an empty store");
    const m = await withTen(s);
    await s.store.truncate(11);
    await s.store.truncate(1000);
    await expectLog(s.store, m, "after truncate(11) and truncate(1000)");
  }),

  plain("truncate at or below the pruned prefix throws", async (s) => {
    await expectRangeError("truncate(0) on an empty store", () => s.store.truncate(0));
    const m = await withTen(s);
    await expectRangeError("truncate(0)", () => s.store.truncate(0));
    await s.store.prunePrefix(5);
    m.prefix = { term: 2, index: 5 };
    m.entries = m.entries.slice(5);
    for (const from of [5, 3, 1, 0]) {
      await expectRangeError(
        `truncate(${from}) after prunePrefix(5)`,
        () => s.store.truncate(from),
      );
    }
    await expectLog(s.store, m, "after rejected truncates");
    await s.store.truncate(6);
    m.entries = [];
    await expectLog(s.store, m, "after truncate(6) right above the prefix");
    await s.store.resetTo({ term: 2, index: 20 });
    await expectRangeError("truncate(20) after resetTo(2:20)", () => s.store.truncate(20));
    await expectLog(s.store, { prefix: { term: 2, index: 20 }, entries: [] }, "after resetTo");
  }),

  plain("prunePrefix drops entries and remembers the boundary term", async (s) => {
    const m = await withTen(s);
    await s.store.prunePrefix(4);
    m.prefix = { term: 2, index: 4 };
    m.entries = m.entries.slice(4);
    await expectLog(s.store, m, "after prunePrefix(4)");
    eq(await s.store.termAt(4), 2, "termAt(4)");
    eq(await s.store.termAt(3), undefined, "termAt(3)");
    eq(await s.store.get(4), undefined, "get(4)");
    eq(await s.store.last(), { term: 4, index: 10 }, "last()");
    const more = entries(11, 12, () => 4);
    await s.store.append(more);
    m.entries.push(...more);
    await expectLog(s.store, m, "after appending past a pruned prefix");
    await s.store.prunePrefix(7);
    m.prefix = { term: 3, index: 7 };
    m.entries = m.entries.filter((e) => e.index > 7);
    await expectLog(s.store, m, "after prunePrefix(7)");
  }),

  plain("prunePrefix at or below the prefix changes nothing", async (s) => {
    const m = await withTen(s);
    await s.store.prunePrefix(0);
    await expectLog(s.store, m, "after prunePrefix(0)");
    await s.store.prunePrefix(6);
    m.prefix = { term: 3, index: 6 };
    m.entries = m.entries.slice(6);
    for (const upTo of [6, 5, 1, 0]) {
      await s.store.prunePrefix(upTo);
      await expectLog(s.store, m, `after prunePrefix(${upTo}) following prunePrefix(6)`);
    }
  }),

  plain("prunePrefix past the last entry throws", async (s) => {
    await expectRangeError("prunePrefix(1) on an empty store", () => s.store.prunePrefix(1));
    await expectLog(s.store, emptyModel(), "after rejected prunePrefix on an empty store");
    const m = await withTen(s);
    await expectRangeError("prunePrefix(11)", () => s.store.prunePrefix(11));
    await expectRangeError("prunePrefix(100)", () => s.store.prunePrefix(100));
    await expectLog(s.store, m, "after rejected prunePrefix");
  }),

  plain("prunePrefix of every entry keeps last()", async (s) => {
    await withTen(s);
    await s.store.prunePrefix(10);
    const m: Model = { prefix: { term: 4, index: 10 }, entries: [] };
    await expectLog(s.store, m, "after prunePrefix(10)");
    eq(await s.store.last(), { term: 4, index: 10 }, "last()");
    eq(await s.store.available(), { start: 11, end: 10 }, "available()");
    await expectRangeError("append at 10", () => s.store.append([entry(10, 4)]));
    await expectRangeError("append at 12", () => s.store.append([entry(12, 4)]));
    const more = entries(11, 13, () => 5);
    await s.store.append(more);
    m.entries.push(...more);
    await expectLog(s.store, m, "after appending 11..=13");
  }),

  plain("truncate after prunePrefix keeps the prefix", async (s) => {
    const m = await withTen(s);
    await s.store.prunePrefix(4);
    m.prefix = { term: 2, index: 4 };
    await s.store.truncate(7);
    m.entries = m.entries.filter((e) => e.index > 4 && e.index < 7);
    await expectLog(s.store, m, "after prunePrefix(4), truncate(7)");
    await s.store.truncate(5);
    m.entries = [];
    await expectLog(s.store, m, "after truncate(5), right above the prefix");
    eq(await s.store.last(), { term: 2, index: 4 }, "last()");
    const more = entries(5, 6, () => 6);
    await s.store.append(more);
    m.entries.push(...more);
    await expectLog(s.store, m, "after appending 5..=6");
  }),

  plain("resetTo empties the log at a cursor", async (s) => {
    await withTen(s);
    const cursor = { term: 7, index: 100 };
    await s.store.resetTo(cursor);
    const m: Model = { prefix: cursor, entries: [] };
    await expectLog(s.store, m, "after resetTo(7:100)");
    eq(await s.store.termAt(100), 7, "termAt(100)");
    eq(await s.store.termAt(99), undefined, "termAt(99)");
    eq(await s.store.termAt(5), undefined, "termAt(5)");
    eq(await s.store.get(5), undefined, "get(5)");
    eq(await s.store.available(), { start: 101, end: 100 }, "available()");
    await expectRangeError("append at 100", () => s.store.append([entry(100, 7)]));
    await expectRangeError("append at 102", () => s.store.append([entry(102, 7)]));
    await expectRangeError("append at 1", () => s.store.append([entry(1, 7)]));
    const more = [entry(101, 7), entry(102, 8)];
    await s.store.append(more);
    m.entries.push(...more);
    await expectLog(s.store, m, "after appending 101..=102");
  }),

  plain("resetTo may move the log backwards or start a fresh store", async (s) => {
    await s.store.resetTo({ term: 3, index: 40 });
    await expectLog(s.store, { prefix: { term: 3, index: 40 }, entries: [] }, "fresh resetTo");
    await s.store.append(entries(41, 50, () => 3));
    await s.store.prunePrefix(45);
    await s.store.resetTo({ term: 2, index: 3 });
    const m: Model = { prefix: { term: 2, index: 3 }, entries: [] };
    await expectLog(s.store, m, "after resetTo(2:3) behind the old log");
    const more = entries(4, 5, () => 2);
    await s.store.append(more);
    m.entries.push(...more);
    await expectLog(s.store, m, "after appending 4..=5");
  }),

  plain("resetTo the sentinel gives a fresh log", async (s) => {
    await withTen(s);
    await s.store.prunePrefix(3);
    await s.store.resetTo({ term: 0, index: 0 });
    await expectLog(s.store, emptyModel(), "after resetTo(0:0)");
    eq(await s.store.termAt(0), 0, "termAt(0)");
    const fresh = entries(1, 3, () => 1);
    await s.store.append(fresh);
    await expectLog(s.store, { prefix: Cursor.ZERO, entries: fresh }, "after appending 1..=3");
  }),

  plain("hard state is undefined until saved and the latest save wins", async (s) => {
    eq(await s.store.loadHardState(), undefined, "loadHardState() on a new store");
    const states: HardState[] = [
      { term: 1 },
      { term: 2, votedFor: "0a1b2c" },
      { term: 2, votedFor: "ffee" },
      { term: 3 },
      { term: 0 },
      { term: Number.MAX_SAFE_INTEGER, votedFor: "" },
    ];
    for (const state of states) {
      await s.store.saveHardState(state);
      const loaded = await s.store.loadHardState();
      eq(loaded, state, `loadHardState() after saving ${JSON.stringify(state)}`);
      if (state.votedFor === undefined) {
        assert(
          loaded !== undefined && !("votedFor" in loaded),
          `loadHardState() after saving ${JSON.stringify(state)} should omit votedFor`,
        );
      }
    }
  }),

  plain("hard state is stored by value", async (s) => {
    const state = { term: 5, votedFor: "abcd" };
    await s.store.saveHardState(state);
    state.term = 6;
    state.votedFor = "changed";
    eq(
      await s.store.loadHardState(),
      { term: 5, votedFor: "abcd" },
      "after changing the saved object",
    );
    const loaded = await s.store.loadHardState();
    // Reflect.set rather than assignment: a store may return a frozen object, which is fine.
    if (loaded !== undefined) Reflect.set(loaded, "term", 99);
    eq(await s.store.loadHardState(), { term: 5, votedFor: "abcd" }, "after changing a loaded one");
  }),

  plain("log operations and hard state do not affect each other", async (s) => {
    const hard: HardState = { term: 4, votedFor: "beef" };
    await s.store.saveHardState(hard);
    const m = await withTen(s);
    await s.store.truncate(9);
    await s.store.prunePrefix(2);
    eq(await s.store.loadHardState(), hard, "loadHardState() after log operations");
    await s.store.resetTo({ term: 4, index: 30 });
    eq(await s.store.loadHardState(), hard, "loadHardState() after resetTo");
    await s.store.append([entry(31, 4)]);
    await s.store.saveHardState({ term: 5 });
    m.prefix = { term: 4, index: 30 };
    m.entries = [entry(31, 4)];
    await expectLog(s.store, m, "after saveHardState");
  }),

  plain("system entries round-trip as SystemEntry", async (s) => {
    const batch = mixedEntries();
    await s.store.append(batch);
    await expectMixed(s.store, mixedEntries(), "after appending");
    for (const e of batch) {
      const got = await s.store.get(e.index);
      if (SystemEntry.is(e.command)) {
        assert(SystemEntry.is(got?.command), `get(${e.index}).command should be a SystemEntry`);
        eq(got.command.body, e.command.body, `get(${e.index}).command.body`);
      }
    }
  }),

  plain("user commands of every CBOR kind round-trip", async (s) => {
    const kinds = cborCommands();
    const batch = kinds.map((c, i) => entry(i + 1, 1, c));
    await s.store.append(batch);
    const expected = cborCommands().map((c, i) => entry(i + 1, 1, c));
    for (const e of expected) {
      eq(await s.store.get(e.index), e, `get(${e.index})`);
    }
    eq(await s.store.getRange(1, expected.length), expected, "getRange() of every kind");
    // One at a time too: a store may encode single appends differently from batches.
    await s.store.resetTo(Cursor.ZERO);
    for (const e of expected) await s.store.append([e]);
    eq(await s.store.getRange(1, expected.length), expected, "getRange() after single appends");
  }),

  plain("entries larger than 64 KiB and batches larger than 800 KiB round-trip", async (s) => {
    // Deno KV keeps values ≤ 64 KiB and commits ≤ 800 KiB: a store on it must split both.
    const sizes = [65_535, 65_536, 65_537, 200_000, 1_100_000, 10, 300_000];
    const batch = sizes.map((n, i) => entry(i + 1, 1, { i: i + 1, blob: pattern(n, i) }));
    await s.store.append(batch);
    const more = entries(8, 1507, () => 2); // over 1000 entries in one batch as well
    await s.store.append(more);
    const m: Model = {
      prefix: Cursor.ZERO,
      entries: [
        ...sizes.map((n, i) => entry(i + 1, 1, { i: i + 1, blob: pattern(n, i) })),
        ...entries(8, 1507, () => 2),
      ],
    };
    await expectLog(s.store, m, "after appending large entries and a long batch");
    eq(await s.store.getRange(1, 7), m.entries.slice(0, 7), "getRange(1, 7) of large entries");
    // Replacing a large entry with a small one (and back) leaves no stale bytes behind.
    await s.store.truncate(5);
    const small = [entry(5, 3, "small"), entry(6, 3, { big: pattern(70_000, 9) })];
    await s.store.append(small);
    eq(await s.store.getRange(4, 7), [m.entries[3]!, ...small], "after replacing entries 5 and 6");
  }),

  plain("claim records the owner and refuses another group or member", async (s) => {
    const claim = s.store.claim?.bind(s.store);
    assert(claim !== undefined, "the store should implement claim()");
    const owner = { group: "aa".repeat(32), member: "bb".repeat(32) };
    await claim(owner);
    await claim({ ...owner }); // the same owner again is fine
    await s.store.append(entries(1, 3, () => 1));
    for (
      const other of [{ ...owner, group: "cc".repeat(32) }, { ...owner, member: "dd".repeat(32) }]
    ) {
      let thrown: unknown;
      try {
        await claim(other);
      } catch (err) {
        thrown = err;
      }
      assert(
        thrown instanceof StoreOwnerError,
        `claim by ${JSON.stringify(other)} should throw StoreOwnerError, got ${String(thrown)}`,
      );
    }
    await expectLog(
      s.store,
      { prefix: Cursor.ZERO, entries: entries(1, 3, () => 1) },
      "after refused claims",
    );
  }),

  plain("close is idempotent", async (s) => {
    await s.store.append(entries(1, 2, () => 1));
    await s.store.close?.();
    await s.store.close?.();
  }),

  plain("random operations match a model of the log", async (s) => {
    await randomOperations(s, 0x5eed, 300, false);
  }),

  durable("an empty store stays empty across a reopen", async (s) => {
    await s.reopen();
    await expectLog(s.store, emptyModel(), "after reopening a new store");
    eq(await s.store.loadHardState(), undefined, "loadHardState()");
    await s.store.append(entries(1, 2, () => 1));
    await expectLog(
      s.store,
      { prefix: Cursor.ZERO, entries: entries(1, 2, () => 1) },
      "after appending to a reopened store",
    );
  }),

  durable("entries and hard state survive a reopen", async (s) => {
    const m = await withTen(s);
    await s.store.saveHardState({ term: 4, votedFor: "0a0b" });
    await s.reopen();
    await expectLog(s.store, m, "after reopen");
    eq(await s.store.loadHardState(), { term: 4, votedFor: "0a0b" }, "loadHardState()");
    const more = entries(11, 12, () => 5);
    await s.store.append(more);
    m.entries.push(...more);
    await s.store.saveHardState({ term: 5 });
    await s.reopen();
    await expectLog(s.store, m, "after a second reopen");
    const loaded = await s.store.loadHardState();
    eq(loaded, { term: 5 }, "loadHardState() after a second reopen");
    assert(loaded !== undefined && !("votedFor" in loaded), "votedFor should stay omitted");
  }),

  durable("system entries and user commands survive a reopen", async (s) => {
    await s.store.append(mixedEntries());
    await s.reopen();
    await expectMixed(s.store, mixedEntries(), "after reopen");
  }),

  durable("truncation survives a reopen and truncated entries do not reappear", async (s) => {
    const m = await withTen(s);
    await s.store.truncate(6);
    m.entries = m.entries.slice(0, 5);
    await s.reopen();
    await expectLog(s.store, m, "after truncate(6) and reopen");
    const replacement = entries(6, 7, () => 5);
    await s.store.append(replacement);
    m.entries.push(...replacement);
    await s.reopen();
    await expectLog(s.store, m, "after replacing the suffix and reopening");
    await s.store.truncate(1);
    await s.reopen();
    await expectLog(s.store, emptyModel(), "after truncate(1) and reopen");
  }),

  durable("prunePrefix survives a reopen", async (s) => {
    const m = await withTen(s);
    await s.store.prunePrefix(4);
    m.prefix = { term: 2, index: 4 };
    m.entries = m.entries.slice(4);
    await s.reopen();
    await expectLog(s.store, m, "after prunePrefix(4) and reopen");
    await s.store.prunePrefix(10);
    m.prefix = { term: 4, index: 10 };
    m.entries = [];
    await s.reopen();
    await expectLog(s.store, m, "after pruning everything and reopening");
    await expectRangeError("truncate(10) after reopen", () => s.store.truncate(10));
    const more = [entry(11, 4)];
    await s.store.append(more);
    m.entries.push(...more);
    await s.reopen();
    await expectLog(s.store, m, "after appending past the prefix and reopening");
  }),

  durable("resetTo survives a reopen", async (s) => {
    await withTen(s);
    await s.store.resetTo({ term: 7, index: 100 });
    await s.reopen();
    const m: Model = { prefix: { term: 7, index: 100 }, entries: [] };
    await expectLog(s.store, m, "after resetTo(7:100) and reopen");
    await expectRangeError("append in term 6 after reopen", () => s.store.append([entry(101, 6)]));
    const more = entries(101, 102, () => 7);
    await s.store.append(more);
    m.entries.push(...more);
    await s.reopen();
    await expectLog(s.store, m, "after appending and reopening");
    await s.store.resetTo(Cursor.ZERO);
    await s.reopen();
    await expectLog(s.store, emptyModel(), "after resetTo(0:0) and reopen");
  }),

  durable("the owner survives a reopen", async (s) => {
    const owner = { group: "01".repeat(32), member: "02".repeat(32) };
    await s.store.claim?.(owner);
    await s.store.append(entries(1, 2, () => 1));
    await s.reopen();
    let thrown: unknown;
    try {
      await s.store.claim?.({ group: "03".repeat(32), member: owner.member });
    } catch (err) {
      thrown = err;
    }
    assert(
      thrown instanceof StoreOwnerError,
      `a reopened store should refuse another group, got ${String(thrown)}`,
    );
    await s.store.claim?.(owner);
    await expectLog(
      s.store,
      { prefix: Cursor.ZERO, entries: entries(1, 2, () => 1) },
      "after reopen and claims",
    );
  }),

  durable("random operations with reopens match a model of the log", async (s) => {
    await randomOperations(s, 0xd0b1e, 200, true);
  }),
];
