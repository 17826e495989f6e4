// KeyValue: a small replicated string map, the state machine of the CLI and the demo.

import type { ApplyContext, StateMachine } from "./state_machine.ts";

/** A command of {@link KeyValue}: set a key to a value, or delete it. */
export type KvCommand =
  | { readonly op: "set"; readonly key: string; readonly value: string }
  | { readonly op: "delete"; readonly key: string };

/**
 * A replicated map from string keys to string values.
 *
 * `query(key)` answers the value, or `null` when the key is not set. A
 * command that is not a well-formed {@link KvCommand} (it can only come from
 * a member running other code) is skipped, so applying never throws.
 *
 * @example In a group (`execute` a command, `query` a key)
 * ```ts
 * import { ConsensusConfig, Consistency, GroupKey, KeyValue, Network } from "@mosaik/mosaik";
 * import { MemoryNetwork } from "@mosaik/mosaik/transport/memory";
 *
 * const consensus = ConsensusConfig.builder()
 *   .withHeartbeatInterval(20).withHeartbeatJitter(5)
 *   .withElectionTimeout(100).withElectionTimeoutJitter(20)
 *   .withBootstrapDelay(0)
 *   .build();
 * await using net = new MemoryNetwork();
 * await using network = await Network.builder("my-app").withTransport(net.transport()).build();
 * const kv = new KeyValue();
 * await using group = network.groups()
 *   .withKey(GroupKey.generate())
 *   .withStateMachine(kv)
 *   .withConsensusConfig(consensus)
 *   .join();
 * await group.when().online();
 * await group.execute({ op: "set", key: "colour", value: "blue" });
 * const { result } = await group.query("colour", Consistency.Strong);
 * if (result !== "blue" || kv.query("colour") !== "blue") throw new Error("expected blue");
 * ```
 *
 * @example On its own (what every member does with each committed command)
 * ```ts
 * import { Cursor, KeyValue } from "@mosaik/mosaik";
 *
 * const kv = new KeyValue();
 * const at = Cursor.of(1, 1);
 * const ctx = { committed: () => at, logPosition: () => at, currentTerm: () => 1 };
 * kv.apply({ op: "set", key: "colour", value: "blue" }, ctx);
 * kv.apply({ op: "delete", key: "size" }, ctx); // deleting a missing key is fine
 * if (kv.query("colour") !== "blue" || kv.query("size") !== null) throw new Error("unexpected");
 * ```
 */
export class KeyValue implements StateMachine<KvCommand, string, string | null> {
  readonly #map = new Map<string, string>();
  #applied = 0;

  /**
   * The machine's versioned name; part of the GroupId.
   *
   * @returns `"mosaik/kv/v1"`
   */
  signature(): string {
    return "mosaik/kv/v1";
  }

  /**
   * Applies one command: `set` stores the value, `delete` removes the key
   * (a missing key is no error). Malformed commands are counted in
   * {@link applied} and otherwise skipped.
   *
   * @param command the committed command
   * @param _ctx where in the log it is (unused)
   */
  apply(command: KvCommand, _ctx: ApplyContext): void {
    this.#applied++;
    if (typeof command !== "object" || command === null || typeof command.key !== "string") return;
    if (command.op === "set" && typeof command.value === "string") {
      this.#map.set(command.key, command.value);
    } else if (command.op === "delete") {
      this.#map.delete(command.key);
    }
  }

  /**
   * The value of `key`, or `null` when it is not set.
   *
   * @param key the key to read
   * @returns its value, or `null`
   */
  query(key: string): string | null {
    return this.#map.get(key) ?? null;
  }

  /** The number of keys set. */
  get size(): number {
    return this.#map.size;
  }

  /** Commands applied so far, malformed ones included. */
  get applied(): number {
    return this.#applied;
  }

  /**
   * The keys and values, sorted by key (for comparing members).
   *
   * @returns a new array of `[key, value]` pairs
   */
  entries(): [string, string][] {
    return [...this.#map].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  }

  /** Back to an empty map (a member that lost a cluster merge replays the winner's log). */
  reset(): void {
    this.#map.clear();
    this.#applied = 0;
  }
}
