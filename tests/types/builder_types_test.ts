// Type tests for the typestate GroupBuilder: illegal chains must not compile, legal ones infer Group<M>.
//
// The checks live in a function that is never called: their value is that
// `deno check` / `deno test` type-check this file, and every `@ts-expect-error`
// line fails the check if it ever compiles. The one registered test keeps
// `bun test` from reporting an empty file.

import { test } from "../harness.ts";
import { assertEquals } from "../assert.ts";
import {
  GroupBuilder,
  type JoinGroup,
  type KeyedGroupBuilder,
  type MachineGroupBuilder,
  type StoredGroupBuilder,
} from "../../lib/groups/builder.ts";
import { ConsensusConfig } from "../../lib/groups/config.ts";
import { GroupKey } from "../../lib/groups/key.ts";
import { Consistency, type Group, type QueryResult } from "../../lib/groups/types.ts";
import type { NoOp } from "../../lib/machine/noop.ts";
import type { ApplyContext, StateMachine } from "../../lib/machine/state_machine.ts";
import type { Index, IndexRange } from "../../lib/primitives/cursor.ts";
import { InMemoryLogStore } from "../../storage/memory.ts";
import type { HardState, LogEntry, Storage } from "../../storage/types.ts";

/** True exactly when A and B are the same type (not merely mutually assignable). */
type Equals<A, B> = (<T>() => T extends A ? 1 : 2) extends (<T>() => T extends B ? 1 : 2) ? true
  : false;

/** Compiles only when its type argument is `true`. */
function assertType<_T extends true>(): void {}

type Add = { add: number };

class Counter implements StateMachine<Add, "total", number> {
  signature(): string {
    return "counter/v1";
  }
  apply(_command: Add, _ctx: ApplyContext): void {}
  query(_query: "total"): number {
    return 0;
  }
}

class Names implements StateMachine<string | number, null, string[]> {
  signature(): string {
    return "names/v1";
  }
  apply(_command: string | number, _ctx: ApplyContext): void {}
  query(_query: null): string[] {
    return [];
  }
}

/** A user-written store, to show any Storage<C> implementation fits. */
class MyStore<C> implements Storage<C> {
  #inner = new InMemoryLogStore<C>();
  append(entries: readonly LogEntry<C>[]): Promise<void> {
    return Promise.resolve(this.#inner.append(entries));
  }
  available(): IndexRange {
    return this.#inner.available();
  }
  get(index: Index): LogEntry<C> | undefined {
    return this.#inner.get(index);
  }
  getRange(start: Index, end: Index): LogEntry<C>[] {
    return this.#inner.getRange(start, end);
  }
  truncate(from: Index): void {
    this.#inner.truncate(from);
  }
  last(): { term: number; index: number } {
    return this.#inner.last();
  }
  termAt(index: Index): number | undefined {
    return this.#inner.termAt(index);
  }
  prunePrefix(upTo: Index): void {
    this.#inner.prunePrefix(upTo);
  }
  resetTo(cursor: { term: number; index: number }): void {
    this.#inner.resetTo(cursor);
  }
  loadHardState(): HardState | undefined {
    return this.#inner.loadHardState();
  }
  saveHardState(state: HardState): void {
    this.#inner.saveHardState(state);
  }
}

/** Never called: type-checked only. */
function compileOnly(): void {
  const join: JoinGroup = () => {
    throw new Error("never called");
  };
  const groups = new GroupBuilder(join);
  const key = GroupKey.generate();
  const c = ConsensusConfig.default();
  const keyed = groups.withKey(key);
  const counter = keyed.withStateMachine(new Counter());
  const stored = counter.withLogStorage(new InMemoryLogStore<Add>());

  // --- the stages have the expected types
  assertType<Equals<typeof keyed, KeyedGroupBuilder>>();
  assertType<Equals<typeof counter, MachineGroupBuilder<Counter>>>();
  assertType<Equals<typeof stored, StoredGroupBuilder<Counter>>>();

  // --- the five legal chains compile and infer Group<M> with the right M
  const g1 = groups.withKey(key).join();
  assertType<Equals<typeof g1, Group<NoOp>>>();
  const g2 = groups.withKey(key).withStateMachine(new Counter()).join();
  assertType<Equals<typeof g2, Group<Counter>>>();
  const g3 = groups.withKey(key).withStateMachine(new Counter()).withConsensusConfig(c).join();
  assertType<Equals<typeof g3, Group<Counter>>>();
  const g4 = counter.withLogStorage(new InMemoryLogStore()).join(); // command type inferred
  assertType<Equals<typeof g4, Group<Counter>>>();
  const g5 = counter.withLogStorage(new MyStore<Add>()).withConsensusConfig(c).join();
  assertType<Equals<typeof g5, Group<Counter>>>();
  // A consensus config before the storage is allowed too (as in the Rust builder).
  const g6 = counter.withConsensusConfig(c).withLogStorage(new InMemoryLogStore()).join();
  assertType<Equals<typeof g6, Group<Counter>>>();
  const g7 = keyed.withStateMachine(new Names()).withLogStorage(new MyStore<string | number>())
    .join();
  assertType<Equals<typeof g7, Group<Names>>>();

  // --- join() is synchronous: a handle, not a promise
  assertType<Equals<ReturnType<typeof counter.join>, Group<Counter>>>();
  // @ts-expect-error a Group is not a thenable
  g1.then;

  // --- no join() before withKey
  // @ts-expect-error join needs a key
  groups.join();
  // @ts-expect-error a state machine needs a key first
  groups.withStateMachine(new Counter());
  // @ts-expect-error storage needs a key (and a machine) first
  groups.withLogStorage(new InMemoryLogStore());

  // --- withLogStorage only after withStateMachine
  // @ts-expect-error storage before the state machine
  keyed.withLogStorage(new InMemoryLogStore());
  // @ts-expect-error the seed offers no consensus config before the state machine
  keyed.withConsensusConfig(c);

  // --- withStateMachine and withLogStorage at most once
  // @ts-expect-error a second state machine
  counter.withStateMachine(new Counter());
  // @ts-expect-error a second state machine after a consensus config
  counter.withConsensusConfig(c).withStateMachine(new Counter());
  // @ts-expect-error a state machine after the storage
  stored.withStateMachine(new Counter());
  // @ts-expect-error a second storage
  stored.withLogStorage(new InMemoryLogStore<Add>());
  // @ts-expect-error a second storage after a consensus config
  stored.withConsensusConfig(c).withLogStorage(new InMemoryLogStore<Add>());

  // --- the storage's command type must equal the machine's
  // @ts-expect-error unrelated command type
  counter.withLogStorage(new InMemoryLogStore<string>());
  // @ts-expect-error a user store of an unrelated command type
  counter.withLogStorage(new MyStore<{ add: string }>());
  const names = keyed.withStateMachine(new Names());
  // @ts-expect-error narrower: the store could not hold the machine's numbers
  names.withLogStorage(new InMemoryLogStore<string>());
  // @ts-expect-error wider: the store could hand back commands the machine cannot apply
  names.withLogStorage(new InMemoryLogStore<string | number | boolean>());
  // @ts-expect-error unknown is wider than the machine's command type
  names.withLogStorage(new InMemoryLogStore<unknown>());

  // --- wrong argument kinds
  // @ts-expect-error a key must be a GroupKey, not its hex
  groups.withKey(key.toHex());
  // @ts-expect-error a consensus config must be a ConsensusConfig, not its parameters
  counter.withConsensusConfig(c.parameters());
  // @ts-expect-error not a state machine
  keyed.withStateMachine({ signature: () => "x" });

  // --- Group<M> is typed by the machine
  const commit: Promise<Index> = g2.execute({ add: 1 });
  const range: Promise<IndexRange> = g2.executeMany([{ add: 1 }, { add: 2 }]);
  const answer: Promise<QueryResult<number>> = g2.query("total", Consistency.Strong);
  const noop: Promise<Index> = g1.execute(null);
  // @ts-expect-error wrong command type
  g2.execute({ add: "1" });
  // @ts-expect-error wrong query type
  g2.query("count", Consistency.Weak);
  // @ts-expect-error NoOp commands are null
  g1.feed(1);
  // @ts-expect-error consistency is "weak" | "strong"
  g2.query("total", "eventual");
  void [commit, range, answer, noop];
}

test("builder type tests are checked by deno check (compile-only)", () => {
  // The body above runs nowhere; this only proves the module loaded.
  assertEquals(typeof compileOnly, "function");
});
