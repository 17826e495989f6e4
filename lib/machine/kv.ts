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
 * @example
 * ```ts
 * import { KeyValue } from "./kv.ts";
 *
 * const kv = new KeyValue();
 * const ctx = {
 *   committed: () => ({ term: 1, index: 1 }),
 *   logPosition: () => ({ term: 1, index: 1 }),
 *   currentTerm: () => 1,
 * };
 * kv.apply({ op: "set", key: "colour", value: "blue" }, ctx);
 * kv.query("colour"); // "blue"
 * ```
 */
export class KeyValue implements StateMachine<KvCommand, string, string | null> {
  readonly #map = new Map<string, string>();
  #applied = 0;

  /** `"mosaik/kv/v1"`; part of the GroupId. */
  signature(): string {
    return "mosaik/kv/v1";
  }

  /** Applies one command; malformed commands are skipped. */
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

  /** Number of keys set. */
  get size(): number {
    return this.#map.size;
  }

  /** Commands applied so far, malformed ones included. */
  get applied(): number {
    return this.#applied;
  }

  /** The keys and values, sorted by key (for comparing members). */
  entries(): [string, string][] {
    return [...this.#map].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  }

  /** Back to an empty map (a member that lost a cluster merge replays the winner's log). */
  reset(): void {
    this.#map.clear();
    this.#applied = 0;
  }
}
