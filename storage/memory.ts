// InMemoryLogStore: the default Storage<C>, keeping the log and hard state in process memory.

import {
  checkIndex,
  Cursor,
  type Index,
  type IndexRange,
  type Term,
} from "../lib/primitives/cursor.ts";
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
 * import { InMemoryLogStore } from "./memory.ts";
 *
 * const store = new InMemoryLogStore<string>();
 * store.append([{ index: 1, term: 1, command: "set x" }]);
 * store.last(); // { term: 1, index: 1 }
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

  /**
   * Appends `entries` after the last entry. The whole batch is checked before
   * anything is stored, so a rejected batch changes nothing.
   *
   * @throws {RangeError} when the batch does not start at `last().index + 1`, is not contiguous or lowers the term
   * @throws {TypeError} when an index or term is not a number
   */
  append(entries: readonly LogEntry<C>[]): void {
    if (entries.length === 0) return;
    const last = this.last();
    let expected = last.index + 1;
    let term = last.term;
    for (const entry of entries) {
      const index = checkIndex(entry.index, "Entry index");
      const entryTerm = checkIndex(entry.term, "Entry term");
      if (index !== expected) {
        throw new RangeError(`Cannot append: expected index ${expected}, got ${index}`);
      }
      if (entryTerm < term) {
        throw new RangeError(
          `Cannot append: term ${entryTerm} at index ${index} is below the previous term ${term}`,
        );
      }
      expected++;
      term = entryTerm;
    }
    // push(...entries) would overflow the call stack on very large batches.
    for (const entry of entries) this.#entries.push(entry);
  }

  /** The indices `get` can return, inclusive; empty when `end === start - 1`. */
  available(): IndexRange {
    return { start: this.#prefix.index + 1, end: this.#prefix.index + this.#entries.length };
  }

  /** The entry at `index`, or `undefined` when it is pruned, truncated or never appended. */
  get(index: Index): LogEntry<C> | undefined {
    const offset = this.#offset(index);
    return offset === undefined ? undefined : this.#entries[offset];
  }

  /** The available entries from `start` to `end` inclusive, in a new array. */
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
   * @throws {RangeError} when `from` is at or below the pruned prefix
   */
  truncate(from: Index): void {
    checkIndex(from, "Truncate index");
    if (from <= this.#prefix.index) {
      throw new RangeError(
        `Cannot truncate from index ${from}: entries up to ${this.#prefix.index} are pruned`,
      );
    }
    const keep = from - this.#prefix.index - 1;
    if (keep < this.#entries.length) this.#entries.length = keep;
  }

  /** The cursor of the last entry, or of the pruned prefix when no entry is kept. */
  last(): Cursor {
    const entry = this.#entries.at(-1);
    return entry === undefined
      ? { term: this.#prefix.term, index: this.#prefix.index }
      : { term: entry.term, index: entry.index };
  }

  /** The term at `index`: 0 for the sentinel, the prefix term at the prefix, `undefined` when unknown. */
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
   * @throws {RangeError} when `upTo` is past the last entry
   */
  prunePrefix(upTo: Index): void {
    checkIndex(upTo, "Prune index");
    if (upTo <= this.#prefix.index) return;
    const last = this.last();
    if (upTo > last.index) {
      throw new RangeError(`Cannot prune up to index ${upTo}: the last index is ${last.index}`);
    }
    const dropped = upTo - this.#prefix.index;
    const boundary = this.#entries[dropped - 1];
    if (boundary === undefined) throw new Error(`Cannot prune: entry ${upTo} is missing`);
    this.#prefix = { term: boundary.term, index: boundary.index };
    this.#entries.splice(0, dropped);
  }

  /**
   * Empties the log and makes `last()` equal to `cursor`.
   *
   * @throws {RangeError} when `cursor` is not a valid cursor or puts a non-zero term at index 0
   */
  resetTo(cursor: Cursor): void {
    const next = Cursor.of(cursor.term, cursor.index);
    if (next.index === 0 && next.term !== 0) {
      throw new RangeError(`Cannot reset to ${Cursor.format(next)}: index 0 must have term 0`);
    }
    this.#prefix = next;
    this.#entries = [];
  }

  /** A copy of the saved hard state, or `undefined` if none was saved. */
  loadHardState(): HardState | undefined {
    return this.#hardState === undefined ? undefined : copyHardState(this.#hardState);
  }

  /**
   * Replaces the hard state with a copy of `state`.
   *
   * @throws {RangeError|TypeError} when the term is not a non-negative safe integer
   * @throws {TypeError} when `votedFor` is present and not a string
   */
  saveHardState(state: HardState): void {
    checkIndex(state.term, "Hard state term");
    if (state.votedFor !== undefined && typeof state.votedFor !== "string") {
      throw new TypeError(`Hard state votedFor must be a string, got ${typeof state.votedFor}`);
    }
    this.#hardState = copyHardState(state);
  }

  /** Does nothing: the memory is released with the object. Idempotent. */
  close(): void {}

  #offset(index: Index): number | undefined {
    if (!Number.isInteger(index)) return undefined;
    const offset = index - this.#prefix.index - 1;
    return offset >= 0 && offset < this.#entries.length ? offset : undefined;
  }
}

// Copies so neither the caller's object nor a returned one aliases the stored state,
// and omits an undefined votedFor (exactOptionalPropertyTypes: absent, not undefined).
function copyHardState(state: HardState): HardState {
  return state.votedFor === undefined
    ? { term: state.term }
    : { term: state.term, votedFor: state.votedFor };
}
