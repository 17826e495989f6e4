// Proves the storage conformance suite can fail: deliberately broken stores must fail named cases.

import type { Cursor, Index, IndexRange, Term } from "../../lib/primitives/cursor.ts";
import { InMemoryLogStore } from "../../storage/memory.ts";
import type { StoreOwner } from "../../storage/errors.ts";
import type { HardState, LogEntry, Storage } from "../../storage/types.ts";
import { assert, assertEquals } from "../assert.ts";
import {
  type ConformanceCase,
  storageConformanceCases,
  type StoreFactory,
} from "../conformance/storage.ts";
import { test } from "../harness.ts";

type Entry = LogEntry<unknown>;

/** Runs every case the factory supports; returns the names of the failing ones with their errors. */
async function failures(factory: StoreFactory): Promise<Map<string, unknown>> {
  const failed = new Map<string, unknown>();
  for (const c of storageConformanceCases()) {
    if (c.needsReopen && factory.reopen === undefined) continue;
    try {
      await c.run(factory);
    } catch (err) {
      failed.set(c.name, err);
    }
  }
  return failed;
}

function describe(failed: Map<string, unknown>): string {
  return [...failed].map(([name, err]) =>
    `  ${name}: ${err instanceof Error ? err.message : String(err)}`
  )
    .join("\n");
}

// ---------------------------------------------------------------------------
// Broken stores, one bug each

class ClaimAcceptsAnyone extends InMemoryLogStore {
  override claim(_owner: StoreOwner): void {}
}

class TruncateOffByOne extends InMemoryLogStore {
  override truncate(from: Index): void {
    super.truncate(from + 1);
  }
}

class TermAtZeroUndefined extends InMemoryLogStore {
  override termAt(index: Index): Term | undefined {
    return index === 0 ? undefined : super.termAt(index);
  }
}

class ForgetsHardState extends InMemoryLogStore {
  override saveHardState(_state: HardState): void {}
}

class DropsVotedFor extends InMemoryLogStore {
  override saveHardState(state: HardState): void {
    super.saveHardState({ term: state.term });
  }
}

class UndefinedVotedFor extends InMemoryLogStore {
  override loadHardState(): HardState | undefined {
    const state = super.loadHardState();
    return state === undefined ? undefined : { ...state, votedFor: state.votedFor as string };
  }
}

/** Renumbers a batch that leaves a gap instead of rejecting it. */
class AcceptsGap extends InMemoryLogStore {
  override append(entries: readonly Entry[]): void {
    const next = this.last().index + 1;
    super.append(entries.map((e, i) => ({ ...e, index: next + i })));
  }
}

/** Appends entry by entry, so a bad entry leaves the ones before it stored. */
class PartialAppend extends InMemoryLogStore {
  override append(entries: readonly Entry[]): void {
    for (const e of entries) super.append([e]);
  }
}

/** Swallows the error for a decreasing term, so the caller believes the append worked. */
class IgnoresDecreasingTerm extends InMemoryLogStore {
  override append(entries: readonly Entry[]): void {
    try {
      super.append(entries);
    } catch (err) {
      if (err instanceof RangeError && err.message.includes("below the previous term")) return;
      throw err;
    }
  }
}

/** Keeps the caller's batch arrays and reads from them, so a later change to one leaks in. */
class AliasesCallerArray extends InMemoryLogStore {
  #batches: { first: Index; entries: readonly Entry[] }[] = [];
  override append(entries: readonly Entry[]): void {
    super.append(entries);
    const first = entries[0];
    if (first !== undefined) this.#batches.push({ first: first.index, entries });
  }
  override get(index: Index): Entry | undefined {
    if (super.get(index) === undefined) return undefined;
    for (const b of [...this.#batches].reverse()) {
      if (index >= b.first && index < b.first + b.entries.length) {
        return b.entries[index - b.first];
      }
    }
    return undefined;
  }
  override getRange(start: Index, end: Index): Entry[] {
    return super.getRange(start, end).map((e) => this.get(e.index)).filter((e) => e !== undefined);
  }
}

/** Hands out one cached array per range, so a caller's change to it sticks. */
class CachesRanges extends InMemoryLogStore {
  #cache = new Map<string, Entry[]>();
  override getRange(start: Index, end: Index): Entry[] {
    const key = `${start}:${end}`;
    let hit = this.#cache.get(key);
    if (hit === undefined) {
      hit = super.getRange(start, end);
      this.#cache.set(key, hit);
    }
    return hit;
  }
}

class RangeExcludesEnd extends InMemoryLogStore {
  override getRange(start: Index, end: Index): Entry[] {
    return super.getRange(start, end - 1);
  }
}

/** Forgets the term of the last pruned entry. */
class PruneForgetsBoundary extends InMemoryLogStore {
  override termAt(index: Index): Term | undefined {
    if (index > 0 && index === this.available().start - 1 && this.get(index) === undefined) {
      return undefined;
    }
    return super.termAt(index);
  }
}

class PrunePastEndClamps extends InMemoryLogStore {
  override prunePrefix(upTo: Index): void {
    super.prunePrefix(Math.min(upTo, this.last().index));
  }
}

class TruncateIntoPrefixIgnored extends InMemoryLogStore {
  override truncate(from: Index): void {
    if (from <= this.available().start - 1) return;
    super.truncate(from);
  }
}

/** Caches last() and forgets to refresh it on truncate. */
class StaleLastAfterTruncate extends InMemoryLogStore {
  #last: Cursor = { term: 0, index: 0 };
  override append(entries: readonly Entry[]): void {
    super.append(entries);
    this.#last = super.last();
  }
  override prunePrefix(upTo: Index): void {
    super.prunePrefix(upTo);
    this.#last = super.last();
  }
  override resetTo(cursor: Cursor): void {
    super.resetTo(cursor);
    this.#last = super.last();
  }
  override last(): Cursor {
    return this.#last;
  }
}

class ResetDropsTerm extends InMemoryLogStore {
  override resetTo(cursor: Cursor): void {
    super.resetTo({ term: 0, index: cursor.index });
  }
}

class AvailableOffByOne extends InMemoryLogStore {
  override available(): IndexRange {
    const r = super.available();
    return { start: r.start, end: r.end + 1 };
  }
}

// ---------------------------------------------------------------------------
// A store that "persists" by journaling its operations; reopen replays the journal

type Op =
  | { kind: "append"; entries: readonly Entry[] }
  | { kind: "truncate"; from: Index }
  | { kind: "prune"; upTo: Index }
  | { kind: "reset"; cursor: Cursor }
  | { kind: "hardState"; state: HardState }
  | { kind: "claim"; owner: StoreOwner };

class JournaledStore extends InMemoryLogStore {
  readonly journal: Op[];
  #recording = false;

  /** Replays `journal`, leaving out ops of kind `skip` (the bug under test) and ignoring ops that fail because of it. */
  constructor(journal: Op[] = [], skip?: Op["kind"]) {
    super();
    this.journal = journal;
    for (const op of journal) {
      if (op.kind === skip) continue;
      try {
        this.#apply(op);
      } catch (err) {
        if (skip === undefined) throw err;
      }
    }
    this.#recording = true;
  }

  #apply(op: Op): void {
    if (op.kind === "append") this.append(op.entries);
    else if (op.kind === "truncate") this.truncate(op.from);
    else if (op.kind === "prune") this.prunePrefix(op.upTo);
    else if (op.kind === "reset") this.resetTo(op.cursor);
    else if (op.kind === "claim") this.claim(op.owner);
    else this.saveHardState(op.state);
  }

  #record(op: Op): void {
    if (this.#recording) this.journal.push(op);
  }

  override append(entries: readonly Entry[]): void {
    super.append(entries);
    this.#record({ kind: "append", entries: [...entries] });
  }
  override truncate(from: Index): void {
    super.truncate(from);
    this.#record({ kind: "truncate", from });
  }
  override prunePrefix(upTo: Index): void {
    super.prunePrefix(upTo);
    this.#record({ kind: "prune", upTo });
  }
  override resetTo(cursor: Cursor): void {
    super.resetTo(cursor);
    this.#record({ kind: "reset", cursor });
  }
  override saveHardState(state: HardState): void {
    super.saveHardState(state);
    this.#record({ kind: "hardState", state: { ...state } });
  }
  override claim(owner: StoreOwner): void {
    super.claim(owner);
    this.#record({ kind: "claim", owner: { ...owner } });
  }
}

function journaled(skip?: Op["kind"]): StoreFactory {
  return {
    create: () => new JournaledStore(),
    reopen: (store) => {
      assert(store instanceof JournaledStore, "reopen was given a store this factory did not make");
      return Promise.resolve(new JournaledStore(store.journal, skip));
    },
  };
}

/** Every method returns a promise, as a durable store's would. */
class AsyncStore implements Storage<unknown> {
  readonly #inner = new InMemoryLogStore();
  #closed = 0;
  append(entries: readonly Entry[]): Promise<void> {
    return Promise.resolve().then(() => this.#inner.append(entries));
  }
  available(): Promise<IndexRange> {
    return Promise.resolve(this.#inner.available());
  }
  get(index: Index): Promise<Entry | undefined> {
    return Promise.resolve(this.#inner.get(index));
  }
  getRange(start: Index, end: Index): Promise<Entry[]> {
    return Promise.resolve(this.#inner.getRange(start, end));
  }
  truncate(from: Index): Promise<void> {
    return Promise.resolve().then(() => this.#inner.truncate(from));
  }
  last(): Promise<Cursor> {
    return Promise.resolve(this.#inner.last());
  }
  termAt(index: Index): Promise<Term | undefined> {
    return Promise.resolve(this.#inner.termAt(index));
  }
  prunePrefix(upTo: Index): Promise<void> {
    return Promise.resolve().then(() => this.#inner.prunePrefix(upTo));
  }
  resetTo(cursor: Cursor): Promise<void> {
    return Promise.resolve().then(() => this.#inner.resetTo(cursor));
  }
  loadHardState(): Promise<HardState | undefined> {
    return Promise.resolve(this.#inner.loadHardState());
  }
  saveHardState(state: HardState): Promise<void> {
    return Promise.resolve().then(() => this.#inner.saveHardState(state));
  }
  claim(owner: StoreOwner): Promise<void> {
    return Promise.resolve().then(() => this.#inner.claim(owner));
  }
  close(): Promise<void> {
    this.#closed++;
    return Promise.resolve();
  }
  get closeCount(): number {
    return this.#closed;
  }
}

// ---------------------------------------------------------------------------
// The checks

interface BrokenStore {
  /** What is wrong with it. */
  name: string;
  factory: StoreFactory;
  /** Cases that must fail against it (others may fail too). */
  caughtBy: string[];
}

function broken(name: string, make: () => Storage<unknown>, caughtBy: string[]): BrokenStore {
  return { name, factory: { create: make }, caughtBy };
}

const BROKEN: BrokenStore[] = [
  broken("truncate is off by one", () => new TruncateOffByOne(), [
    "truncate removes from the middle to the end",
  ]),
  broken("termAt(0) is undefined", () => new TermAtZeroUndefined(), [
    "an empty store is at the sentinel",
  ]),
  broken("saveHardState does nothing", () => new ForgetsHardState(), [
    "hard state is undefined until saved and the latest save wins",
  ]),
  broken("saveHardState drops votedFor", () => new DropsVotedFor(), [
    "hard state is undefined until saved and the latest save wins",
  ]),
  broken("loadHardState has votedFor: undefined", () => new UndefinedVotedFor(), [
    "hard state is undefined until saved and the latest save wins",
  ]),
  broken("append accepts a gap", () => new AcceptsGap(), [
    "append rejects a batch that does not start right after the last entry",
  ]),
  broken("append stores part of a rejected batch", () => new PartialAppend(), [
    "append rejects a batch with a gap or repeat inside and stores none of it",
  ]),
  broken("append ignores a decreasing term", () => new IgnoresDecreasingTerm(), [
    "append rejects a term lower than the one before it",
  ]),
  broken("append keeps the caller's array", () => new AliasesCallerArray(), [
    "append copies the caller's array",
  ]),
  broken("getRange returns a shared array", () => new CachesRanges(), [
    "changing a returned range does not change the store",
  ]),
  broken("getRange excludes its end", () => new RangeExcludesEnd(), [
    "getRange is inclusive and skips unavailable indices",
  ]),
  broken("prunePrefix forgets the boundary term", () => new PruneForgetsBoundary(), [
    "prunePrefix drops entries and remembers the boundary term",
  ]),
  broken("prunePrefix past the end is clamped", () => new PrunePastEndClamps(), [
    "prunePrefix past the last entry throws",
  ]),
  broken("truncate into the pruned prefix is ignored", () => new TruncateIntoPrefixIgnored(), [
    "truncate at or below the pruned prefix throws",
  ]),
  broken("last() is stale after truncate", () => new StaleLastAfterTruncate(), [
    "truncate at the last index removes only the last entry",
  ]),
  broken("resetTo drops the cursor's term", () => new ResetDropsTerm(), [
    "resetTo empties the log at a cursor",
  ]),
  broken("available() is one too long", () => new AvailableOffByOne(), [
    "appended entries read back",
  ]),
  broken("claim accepts anyone", () => new ClaimAcceptsAnyone(), [
    "claim records the owner and refuses another group or member",
  ]),
  {
    name: "reopen forgets the hard state",
    factory: journaled("hardState"),
    caughtBy: ["entries and hard state survive a reopen"],
  },
  {
    name: "reopen brings back truncated entries",
    factory: journaled("truncate"),
    caughtBy: ["truncation survives a reopen and truncated entries do not reappear"],
  },
  {
    name: "reopen forgets prunePrefix",
    factory: journaled("prune"),
    caughtBy: ["prunePrefix survives a reopen"],
  },
  {
    name: "reopen forgets the owner",
    factory: journaled("claim"),
    caughtBy: ["the owner survives a reopen"],
  },
  {
    name: "reopen forgets resetTo",
    factory: journaled("reset"),
    caughtBy: ["resetTo survives a reopen"],
  },
];

test("storage conformance: case names are unique and name every expected catch", () => {
  const names = storageConformanceCases().map((c: ConformanceCase) => c.name);
  assertEquals(new Set(names).size, names.length, "case names should be unique");
  assert(names.some((n) => storageConformanceCases().find((c) => c.name === n)?.needsReopen));
  for (const b of BROKEN) {
    for (const name of b.caughtBy) assert(names.includes(name), `no case named "${name}"`);
  }
});

test("storage conformance: InMemoryLogStore passes every case", async () => {
  const failed = await failures({ create: () => new InMemoryLogStore() });
  assertEquals(failed.size, 0, `failing cases:\n${describe(failed)}`);
});

test("storage conformance: a promise-returning store passes every case and is closed", async () => {
  const made: AsyncStore[] = [];
  const disposed: Storage<unknown>[] = [];
  const failed = await failures({
    create: () => {
      const store = new AsyncStore();
      made.push(store);
      return Promise.resolve(store);
    },
    dispose: (store) => {
      disposed.push(store);
    },
  });
  assertEquals(failed.size, 0, `failing cases:\n${describe(failed)}`);
  assert(made.length > 0, "the factory should have been used");
  for (const [i, store] of made.entries()) {
    assert(store.closeCount >= 1, `store ${i} should have been closed`);
  }
  assert(
    disposed.length === made.length && disposed.every((store, i) => store === made[i]),
    "every store should be disposed once, in the order made",
  );
});

test("storage conformance: a store that survives reopen passes every case, reopen ones included", async () => {
  const factory = journaled();
  const failed = await failures(factory);
  assertEquals(failed.size, 0, `failing cases:\n${describe(failed)}`);
  const reopenCases = storageConformanceCases().filter((c) => c.needsReopen);
  assert(reopenCases.length >= 5, "the suite should have reopen cases");
});

test("storage conformance: a failing case still closes and disposes its store", async () => {
  const closed: Storage<unknown>[] = [];
  const disposed: Storage<unknown>[] = [];
  class Closing extends TruncateOffByOne {
    override close(): void {
      closed.push(this);
    }
  }
  const factory: StoreFactory = {
    create: () => new Closing(),
    dispose: (store) => {
      disposed.push(store);
    },
  };
  const failed = await failures(factory);
  assert(failed.size > 0, "the broken store should fail");
  assert(closed.length > 0, "stores should be closed");
  assertEquals(new Set(disposed).size, disposed.length, "no store should be disposed twice");
  for (const store of disposed) assert(closed.includes(store), "a disposed store should be closed");
});

for (const b of BROKEN) {
  test(`storage conformance catches: ${b.name}`, async () => {
    const failed = await failures(b.factory);
    assert(failed.size > 0, `no case failed against a store where ${b.name}`);
    for (const name of b.caughtBy) {
      assert(
        failed.has(name),
        `case "${name}" should fail against a store where ${b.name}; failing:\n${describe(failed)}`,
      );
    }
  });
}
