// The typestate GroupBuilder: key → state machine → log storage → consensus config → join().

import { ConsensusConfig } from "./config.ts";
import { deriveGroupId } from "./group_id.ts";
import { GroupKey } from "./key.ts";
import type { Group } from "./types.ts";
import { LogReplaySync } from "../machine/log_replay.ts";
import { NoOp } from "../machine/noop.ts";
import type { AnyStateMachine, CommandOf, StateSync } from "../machine/state_machine.ts";
import type { GroupId } from "../primitives/ids.ts";
import { InMemoryLogStore } from "../../storage/memory.ts";
import type { LogEntry, Storage } from "../../storage/types.ts";

/**
 * Everything needed to run a group, as produced by `join()` and handed to the
 * groups registry. The registry either starts a driver for it or, when a
 * group with the same {@link GroupDefinition.groupId} already runs on this
 * node, returns a handle to that one and leaves `machine` and `storage` unused.
 */
export interface GroupDefinition<M extends AnyStateMachine> {
  /** The shared secret. */
  readonly key: GroupKey;
  /** The state machine the log is applied to. */
  readonly machine: M;
  /** Where the log and hard state live; a fresh `InMemoryLogStore` unless given. */
  readonly storage: Storage<CommandOf<M>>;
  /** The consensus parameters; `ConsensusConfig.default()` unless given. */
  readonly consensus: ConsensusConfig;
  /** The state-sync strategy: `machine.stateSync()`, else a `LogReplaySync`. */
  readonly stateSync: StateSync;
  /** `deriveGroupId(key, consensus, machine, stateSync)`. */
  readonly groupId: GroupId;
}

/**
 * What the groups registry does with a definition: start (or find) the group
 * and return a handle at once. Must not block on the network.
 */
export type JoinGroup = <M extends AnyStateMachine>(definition: GroupDefinition<M>) => Group<M>;

/**
 * A `Storage<C>` whose command type is checked both ways: the store must
 * accept every command of the machine (`append`) and return only such
 * commands (`get`). `Storage<C>` alone would accept a store of a narrower
 * command type, because TypeScript compares method parameters bivariantly;
 * restating `append` as a function property makes its parameter
 * contravariant, so together with the covariant `get` the check is exact.
 */
export type ExactStorage<C> = Storage<C> & {
  readonly append: (entries: readonly LogEntry<C>[]) => void | Promise<void>;
};

/** @internal What the stages carry; frozen, so every stage can be reused as a template. */
export interface BuilderState {
  readonly join: JoinGroup;
  readonly key: GroupKey;
  readonly consensus: ConsensusConfig | undefined;
}

/**
 * The first stage: nothing chosen yet, so there is no `join()`. The groups
 * registry (`network.groups()`) exposes this stage's {@link withKey}.
 *
 * Stages, each a separate class so that an illegal chain does not compile:
 *
 * ```text
 * GroupBuilder ──withKey──▶ KeyedGroupBuilder ──join()──▶ Group<NoOp>
 *                             └─withStateMachine(m)─▶ MachineGroupBuilder<M> ──join()──▶ Group<M>
 *                                 ├─withConsensusConfig(c)─▶ MachineGroupBuilder<M>
 *                                 └─withLogStorage(s)─▶ StoredGroupBuilder<M> ──join()──▶ Group<M>
 *                                     └─withConsensusConfig(c)─▶ StoredGroupBuilder<M>
 * ```
 *
 * Builders are immutable: each method returns a new stage and leaves the
 * receiver as it was.
 *
 * @example Joining with your own state machine
 * ```ts
 * import {
 *   type ApplyContext,
 *   ConsensusConfig,
 *   Consistency,
 *   GroupKey,
 *   InMemoryLogStore,
 *   Network,
 *   type StateMachine,
 * } from "@mosaik/mosaik";
 * import { MemoryNetwork } from "@mosaik/mosaik/transport/memory";
 *
 * class Counter implements StateMachine<{ add: number }, null, number> {
 *   value = 0;
 *   signature(): string {
 *     return "counter/v1"; // part of the GroupId: bump it when the semantics change
 *   }
 *   apply(command: { add: number }, _ctx: ApplyContext): void {
 *     this.value += command.add;
 *   }
 *   query(_query: null): number {
 *     return this.value;
 *   }
 * }
 *
 * // Short timings so that a lone node elects itself at once; the defaults suit real networks.
 * const consensus = ConsensusConfig.builder()
 *   .withHeartbeatInterval(20).withHeartbeatJitter(5)
 *   .withElectionTimeout(100).withElectionTimeoutJitter(20)
 *   .withBootstrapDelay(0)
 *   .build();
 *
 * await using net = new MemoryNetwork();
 * await using network = await Network.builder("my-app").withTransport(net.transport()).build();
 * await using group = network.groups()
 *   .withKey(GroupKey.fromSecret("shared words"))
 *   .withStateMachine(new Counter())
 *   .withLogStorage(new InMemoryLogStore<{ add: number }>())
 *   .withConsensusConfig(consensus)
 *   .join(); // returns at once
 * await group.when().online({ signal: AbortSignal.timeout(5_000) });
 * await group.executeMany([{ add: 2 }, { add: 3 }]);
 * const { result } = await group.query(null, Consistency.Strong);
 * if (result !== 5) throw new Error(`expected 5, got ${result}`);
 * ```
 */
export class GroupBuilder {
  readonly #join: JoinGroup;

  /**
   * A first stage that hands finished definitions to `join`. Users get one
   * through `network.groups()` and never call this.
   *
   * @param join how the registry starts or finds the group
   * @throws {TypeError} when `join` is not a function
   * @internal
   */
  constructor(join: JoinGroup) {
    if (typeof join !== "function") {
      throw new TypeError("Cannot create GroupBuilder: join must be a function");
    }
    this.#join = join;
  }

  /**
   * Chooses the group by its shared secret.
   *
   * @param key the group key every member holds
   * @returns the stage that can `join()` a NoOp group or take a state machine
   * @throws {TypeError} when `key` is not a GroupKey
   */
  withKey(key: GroupKey): KeyedGroupBuilder {
    if (!(key instanceof GroupKey)) {
      throw new TypeError(`Cannot build group: key must be a GroupKey, got ${kindOf(key)}`);
    }
    return new KeyedGroupBuilder({ join: this.#join, key, consensus: undefined });
  }
}

/** The key is chosen: join a NoOp group, or choose the state machine. */
export class KeyedGroupBuilder {
  readonly #draft: BuilderState;

  /** @internal Made by {@link GroupBuilder.withKey}. */
  constructor(draft: BuilderState) {
    this.#draft = Object.freeze({ ...draft });
  }

  /**
   * Chooses the state machine; it fixes the command type the storage must hold.
   *
   * @param machine the state machine; its `signature()` is part of the GroupId
   * @returns the stage that can join, take a log storage or a consensus config
   * @throws {TypeError} when `machine` lacks `signature`, `apply` or `query`
   */
  withStateMachine<M extends AnyStateMachine>(machine: M): MachineGroupBuilder<M> {
    checkMachine(machine);
    return new MachineGroupBuilder(this.#draft, machine);
  }

  /**
   * Joins with the `NoOp` machine, an `InMemoryLogStore` and the default
   * `ConsensusConfig`: for leader election without application logic.
   *
   * @returns the group handle, at once; await `group.when()` for readiness
   */
  join(): Group<NoOp> {
    return this.withStateMachine(new NoOp()).join();
  }
}

/** Key and state machine are chosen; storage and consensus config may follow. */
export class MachineGroupBuilder<M extends AnyStateMachine> {
  readonly #draft: BuilderState;
  readonly #machine: M;

  /** @internal Made by {@link KeyedGroupBuilder.withStateMachine}. */
  constructor(draft: BuilderState, machine: M) {
    this.#draft = Object.freeze({ ...draft });
    this.#machine = machine;
  }

  /**
   * Chooses where the log lives. Its command type must be exactly the
   * machine's (`Storage<CommandOf<M>>`). Does not change the GroupId.
   *
   * @param storage the log store, e.g. `new InMemoryLogStore()` or `await DenoKvLogStore.open(path)`
   * @returns the stage that can join or take a consensus config
   * @throws {TypeError} when `storage` lacks a method of `Storage`
   */
  withLogStorage(storage: ExactStorage<CommandOf<M>>): StoredGroupBuilder<M> {
    checkStorage(storage);
    return new StoredGroupBuilder<M>(this.#draft, this.#machine, storage);
  }

  /**
   * Chooses the consensus parameters (part of the GroupId, except the local
   * leadership multiplier). A later call replaces an earlier one.
   *
   * @param consensus the config, e.g. `ConsensusConfig.builder()….build()`
   * @returns this stage with the config set
   * @throws {TypeError} when `consensus` is not a ConsensusConfig
   */
  withConsensusConfig(consensus: ConsensusConfig): MachineGroupBuilder<M> {
    checkConsensus(consensus);
    return new MachineGroupBuilder({ ...this.#draft, consensus }, this.#machine);
  }

  /**
   * Joins with a fresh `InMemoryLogStore`.
   *
   * @returns the group handle, at once; await `group.when()` for readiness
   * @throws {TypeError} when `machine.stateSync()` returns no strategy, or a signature is not a string
   * @throws {RangeError} when a signature is empty
   */
  join(): Group<M> {
    return joinWith(this.#draft, this.#machine, new InMemoryLogStore<CommandOf<M>>());
  }
}

/** Key, state machine and storage are chosen; a consensus config may follow. */
export class StoredGroupBuilder<M extends AnyStateMachine> {
  readonly #draft: BuilderState;
  readonly #machine: M;
  readonly #storage: Storage<CommandOf<M>>;

  /** @internal Made by {@link MachineGroupBuilder.withLogStorage}. */
  constructor(draft: BuilderState, machine: M, storage: Storage<CommandOf<M>>) {
    this.#draft = Object.freeze({ ...draft });
    this.#machine = machine;
    this.#storage = storage;
  }

  /**
   * Chooses the consensus parameters; a later call replaces an earlier one.
   *
   * @param consensus the config
   * @returns this stage with the config set
   * @throws {TypeError} when `consensus` is not a ConsensusConfig
   */
  withConsensusConfig(consensus: ConsensusConfig): StoredGroupBuilder<M> {
    checkConsensus(consensus);
    return new StoredGroupBuilder({ ...this.#draft, consensus }, this.#machine, this.#storage);
  }

  /**
   * Joins with the chosen storage.
   *
   * @returns the group handle, at once; await `group.when()` for readiness
   * @throws {TypeError} when `machine.stateSync()` returns no strategy, or a signature is not a string
   * @throws {RangeError} when a signature is empty
   */
  join(): Group<M> {
    return joinWith(this.#draft, this.#machine, this.#storage);
  }
}

function joinWith<M extends AnyStateMachine>(
  draft: BuilderState,
  machine: M,
  storage: Storage<CommandOf<M>>,
): Group<M> {
  const consensus = draft.consensus ?? ConsensusConfig.default();
  const stateSync = machine.stateSync?.() ?? new LogReplaySync();
  if (typeof (stateSync as Partial<StateSync> | null)?.signature !== "function") {
    throw new TypeError("Cannot join group: stateSync() must return an object with signature()");
  }
  const groupId = deriveGroupId(draft.key, consensus, machine, stateSync);
  const definition: GroupDefinition<M> = Object.freeze({
    key: draft.key,
    machine,
    storage,
    consensus,
    stateSync,
    groupId,
  });
  return draft.join(definition);
}

const MACHINE_METHODS = ["signature", "apply", "query"] as const;
const MACHINE_OPTIONAL = ["applyBatch", "stateSync", "leadershipPreference"] as const;
const STORAGE_METHODS = [
  "append",
  "available",
  "get",
  "getRange",
  "truncate",
  "last",
  "termAt",
  "prunePrefix",
  "resetTo",
  "loadHardState",
  "saveHardState",
] as const;

function kindOf(x: unknown): string {
  if (x === null) return "null";
  if (typeof x !== "object") return typeof x;
  return x.constructor?.name ?? "object";
}

function checkMachine(machine: unknown): void {
  if (typeof machine !== "object" || machine === null) {
    throw new TypeError(
      `Cannot build group: state machine must be an object, got ${kindOf(machine)}`,
    );
  }
  const m = machine as Record<string, unknown>;
  for (const name of MACHINE_METHODS) {
    if (typeof m[name] !== "function") {
      throw new TypeError(`Cannot build group: state machine has no ${name}() method`);
    }
  }
  for (const name of MACHINE_OPTIONAL) {
    if (m[name] !== undefined && typeof m[name] !== "function") {
      throw new TypeError(`Cannot build group: state machine ${name} must be a method`);
    }
  }
}

function checkStorage(storage: unknown): void {
  if (typeof storage !== "object" || storage === null) {
    throw new TypeError(
      `Cannot build group: log storage must be an object, got ${kindOf(storage)}`,
    );
  }
  const s = storage as Record<string, unknown>;
  const missing = STORAGE_METHODS.filter((name) => typeof s[name] !== "function");
  if (missing.length > 0) {
    throw new TypeError(
      `Cannot build group: log storage lacks Storage method${missing.length > 1 ? "s" : ""} ${
        missing.map((n) => `${n}()`).join(", ")
      }`,
    );
  }
}

function checkConsensus(consensus: unknown): void {
  if (!(consensus instanceof ConsensusConfig)) {
    throw new TypeError(
      `Cannot build group: consensus config must be a ConsensusConfig, got ${kindOf(consensus)}`,
    );
  }
}
