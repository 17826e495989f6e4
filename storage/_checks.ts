// Argument checks every store shares, so each one rejects the same calls with the same messages.

import { checkIndex, Cursor, type Index } from "../lib/primitives/cursor.ts";
import { type StoreOwner, StoreOwnerError } from "./errors.ts";
import type { HardState } from "./types.ts";

/**
 * Checks that `entries` may be appended after `last`: they start at
 * `last.index + 1`, are contiguous and never lower the term.
 *
 * @throws {RangeError} when the batch does not start at `last.index + 1`, is not contiguous or lowers the term
 * @throws {TypeError} when an index or term is not a number
 */
export function checkBatch(last: Cursor, entries: readonly Cursor[]): void {
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
}

/**
 * Checks a truncate point against the pruned prefix.
 *
 * @throws {RangeError} when `from` is at or below the prefix
 */
export function checkTruncate(from: Index, prefixIndex: Index): void {
  checkIndex(from, "Truncate index");
  if (from <= prefixIndex) {
    throw new RangeError(
      `Cannot truncate from index ${from}: entries up to ${prefixIndex} are pruned`,
    );
  }
}

/**
 * Checks a prune point; returns false when it is at or below the prefix (nothing to do).
 *
 * @throws {RangeError} when `upTo` is past the last entry
 */
export function checkPrune(upTo: Index, prefixIndex: Index, lastIndex: Index): boolean {
  checkIndex(upTo, "Prune index");
  if (upTo <= prefixIndex) return false;
  if (upTo > lastIndex) {
    throw new RangeError(`Cannot prune up to index ${upTo}: the last index is ${lastIndex}`);
  }
  return true;
}

/**
 * Checks a reset cursor and returns a plain copy of it.
 *
 * @throws {RangeError} when `cursor` is not a valid cursor or puts a non-zero term at index 0
 */
export function checkReset(cursor: Cursor): Cursor {
  const next = Cursor.of(cursor.term, cursor.index);
  if (next.index === 0 && next.term !== 0) {
    throw new RangeError(`Cannot reset to ${Cursor.format(next)}: index 0 must have term 0`);
  }
  return { term: next.term, index: next.index };
}

/**
 * Checks a hard state and returns a copy that shares nothing with it (and
 * omits an undefined `votedFor`: absent, not undefined).
 *
 * @throws {RangeError|TypeError} when the term is not a non-negative safe integer
 * @throws {TypeError} when `votedFor` is present and not a string
 */
export function checkHardState(state: HardState): HardState {
  checkIndex(state.term, "Hard state term");
  if (state.votedFor !== undefined && typeof state.votedFor !== "string") {
    throw new TypeError(`Hard state votedFor must be a string, got ${typeof state.votedFor}`);
  }
  return copyHardState(state);
}

/** A copy of `state` that omits an undefined `votedFor`. */
export function copyHardState(state: HardState): HardState {
  return state.votedFor === undefined
    ? { term: state.term }
    : { term: state.term, votedFor: state.votedFor };
}

/**
 * Checks a claim against the owner a store recorded; returns the owner to
 * record (the claimant when there was none).
 *
 * @throws {TypeError} when the claimant's group or member is not a non-empty string
 * @throws {StoreOwnerError} when the store belongs to another group or member
 */
export function checkClaim(
  path: string,
  recorded: StoreOwner | undefined,
  claimant: StoreOwner,
): StoreOwner {
  if (
    typeof claimant?.group !== "string" || claimant.group === "" ||
    typeof claimant.member !== "string" || claimant.member === ""
  ) {
    throw new TypeError("Cannot claim store: owner needs a group and a member (hex strings)");
  }
  if (recorded === undefined) return { group: claimant.group, member: claimant.member };
  if (recorded.group !== claimant.group || recorded.member !== claimant.member) {
    throw new StoreOwnerError(path, recorded, claimant);
  }
  return recorded;
}
