// InMemoryLogStore: the default Storage<C>, keeping the log and hard state in process memory.

import { Cursor, type Index, type IndexRange, type Term } from "../lib/primitives/cursor.ts";
import {
  checkBatch,
  checkClaim,
  checkHardState,
  checkPrune,
  checkReset,
  checkTruncate,
  copyHardState,
} from "./_checks.ts";
import type { StoreOwner } from "./errors.ts";
import type { HardState, LogEntry, Storage } from "./types.ts";

/**
 * A {@link Storage} that keeps everything in memory and answers synchronously.
 *
 * Nothing survives the process, so a node using it rejoins its group with an
 * empty log and no vote; that is only safe for tests and for groups whose
 * members never restart with the same identity.
 *
 * Entries are kept as the objects given to {@link append} (commands are not
 * copied or encoded); the batch array itself is copied, so the caller may reuse it.
 *
 * @example
 * ```ts
 * import { InMemoryLogStore } from "@mosaik/mosaik";
 *
 * const store = new InMemoryLogStore<string>();
 * store.append([
 *   { index: 1, term: 1, command: "set x" },
 *   { index: 2, term: 1, command: "set y" },
 * ]);
 * if (store.last().index !== 2 || store.get(1)?.command !== "set x") throw new Error("appended");
 * store.truncate(2); // a new leader replaced entry 2
 * store.prunePrefix(1); // entry 1 is in a snapshot now
 * const { start, end } = store.available();
 * if (start !== 2 || end !== 1 || store.termAt(1) !== 1) throw new Error("empty, term 1 remembered");
 * try {
 *   store.append([{ index: 5, term: 1, command: "gap" }]);
 *   throw new Error("unreachable");
 * } catch (err) {
 *   if (!(err instanceof RangeError)) throw err; // appends must be contiguous
 * }
 * ```
 */
export class InMemoryLogStore<C = unknown> implements Storage<C> {
  /**
   * The cursor just before the first kept entry: the sentinel, the last
   * pruned entry, or the cursor given to `resetTo`.
   */
  #prefix: Cursor = Cursor.ZERO;
  /** `#entries[i]` sits at index `#prefix.index + 1 + i`. */
  #entries: LogEntry<C>[] = [];
  #hardState: HardState | undefined = undefined;
  #owner: StoreOwner | undefined = undefined;

  /**
   * Appends `entries` after the last entry. The whole batch is checked before
   * anything is stored, so a rejected batch changes nothing.
   *
   * @throws {RangeError} when the batch does not start at `last().index + 1`, is not contiguous or lowers the term
   * @param entries the entries, starting at `last().index + 1` (the array is copied, the entries are not)
   * @throws {TypeError} when an index or term is not a number
   */
  append(entries: readonly LogEntry<C>[]): void {
    if (entries.length === 0) return;
    checkBatch(this.last(), entries);
    // push(...entries) would overflow the call stack on very large batches.
    for (const entry of entries) this.#entries.push(entry);
  }

  /**
   * The indices `get` can return, inclusive.
   *
   * @returns a new range; empty when `end === start - 1`
   */
  available(): IndexRange {
    return { start: this.#prefix.index + 1, end: this.#prefix.index + this.#entries.length };
  }

  /**
   * The entry at `index`.
   *
   * @param index the log position
   * @returns the object that was appended, or `undefined` when it is pruned, truncated or never appended
   */
  get(index: Index): LogEntry<C> | undefined {
    const offset = this.#offset(index);
    return offset === undefined ? undefined : this.#entries[offset];
  }

  /**
   * The available entries from `start` to `end` inclusive.
   *
   * @param start the first position wanted
   * @param end the last position wanted
   * @returns a new array, in order; positions outside the available range are skipped
   */
  getRange(start: Index, end: Index): LogEntry<C>[] {
    const from = Math.max(Math.ceil(start), this.#prefix.index + 1) - this.#prefix.index - 1;
    const to = Math.min(Math.floor(end), this.#prefix.index + this.#entries.length) -
      this.#prefix.index;
    if (Number.isNaN(from) || Number.isNaN(to) || to <= from) return [];
    return this.#entries.slice(from, to);
  }

  /**
   * Removes the entries from `from` to the end; a `from` past the end does nothing.
   *
   * @param from the first position to remove
   * @throws {RangeError} when `from` is at or below the pruned prefix
   */
  truncate(from: Index): void {
    checkTruncate(from, this.#prefix.index);
    const keep = from - this.#prefix.index - 1;
    if (keep < this.#entries.length) this.#entries.length = keep;
  }

  /**
   * The cursor of the last entry.
   *
   * @returns a new cursor: the last entry's, else the pruned prefix's; `{ term: 0, index: 0 }` when fresh
   */
  last(): Cursor {
    const entry = this.#entries.at(-1);
    return entry === undefined
      ? { term: this.#prefix.term, index: this.#prefix.index }
      : { term: entry.term, index: entry.index };
  }

  /**
   * The term of the entry at `index`.
   *
   * @param index the log position
   * @returns 0 for the sentinel, the prefix term at the prefix, `undefined` when unknown
   */
  termAt(index: Index): Term | undefined {
    // The sentinel's term is 0 in every log, pruned or not.
    if (index === 0) return 0;
    if (index === this.#prefix.index) return this.#prefix.term;
    return this.get(index)?.term;
  }

  /**
   * Drops the entries up to and including `upTo`, remembering its cursor; at or
   * below the current prefix it does nothing.
   *
   * @param upTo the last position to drop
   * @throws {RangeError} when `upTo` is past the last entry
   */
  prunePrefix(upTo: Index): void {
    if (!checkPrune(upTo, this.#prefix.index, this.last().index)) return;
    const dropped = upTo - this.#prefix.index;
    const boundary = this.#entries[dropped - 1];
    if (boundary === undefined) throw new Error(`Cannot prune: entry ${upTo} is missing`);
    this.#prefix = { term: boundary.term, index: boundary.index };
    this.#entries.splice(0, dropped);
  }

  /**
   * Empties the log and makes `last()` equal to `cursor`.
   *
   * @param cursor the new prefix; `{ term: 0, index: 0 }` gives a fresh log
   * @throws {RangeError} when `cursor` is not a valid cursor or puts a non-zero term at index 0
   */
  resetTo(cursor: Cursor): void {
    this.#prefix = checkReset(cursor);
    this.#entries = [];
  }

  /**
   * The saved hard state.
   *
   * @returns a copy of it, or `undefined` if none was saved
   */
  loadHardState(): HardState | undefined {
    return this.#hardState === undefined ? undefined : copyHardState(this.#hardState);
  }

  /**
   * Replaces the hard state with a copy of `state`.
   *
   * @param state the term and, if any, the vote of this term
   * @throws {RangeError|TypeError} when the term is not a non-negative safe integer
   * @throws {TypeError} when `votedFor` is present and not a string
   */
  saveHardState(state: HardState): void {
    this.#hardState = checkHardState(state);
  }

  /**
   * Ties the store to one member of one group (the group calls it on join).
   *
   * @param owner the group and member claiming the store
   * @throws {StoreOwnerError} when the store was already claimed by another group or member
   */
  claim(owner: StoreOwner): void {
    this.#owner = checkClaim("(in memory)", this.#owner, owner);
  }

  /** Does nothing: the memory is released with the object. Idempotent. */
  close(): void {}

  #offset(index: Index): number | undefined {
    if (!Number.isInteger(index)) return undefined;
    const offset = index - this.#prefix.index - 1;
    return offset >= 0 && offset < this.#entries.length ? offset : undefined;
  }
}
