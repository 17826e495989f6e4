// Log positions: Index and Term numbers, Cursor { term, index } and inclusive IndexRange.

/** A position in the replicated log. 0 is the empty-log sentinel; the first entry is 1. */
export type Index = number;
/** A Raft term. 0 means "no term yet". */
export type Term = number;

/** True when `n` can be an index or a term: a non-negative safe integer. */
export function isIndex(n: unknown): n is number {
  return typeof n === "number" && Number.isSafeInteger(n) && n >= 0;
}

/**
 * Returns `n` if it is a valid index or term.
 *
 * @throws {TypeError} when `n` is not a number
 * @throws {RangeError} when it is negative, fractional or above 2^53 - 1
 */
export function checkIndex(n: unknown, what: string): number {
  if (typeof n !== "number") throw new TypeError(`${what} must be a number, got ${typeof n}`);
  if (!isIndex(n)) throw new RangeError(`${what} must be a non-negative safe integer, got ${n}`);
  return n;
}

/**
 * A log position: the entry at `index`, written in `term`.
 *
 * Cursors order by term first, then index — the Raft "more up-to-date" order —
 * so `Cursor.compare(a, b) > 0` means a log ending at `a` is more up to date.
 *
 * @example
 * ```ts
 * import { Cursor } from "@mosaik/mosaik";
 *
 * const a = Cursor.of(2, 10);
 * const b = Cursor.of(3, 4);
 * if (Cursor.compare(a, b) >= 0) throw new Error("term 3 is more up to date than term 2");
 * if (Cursor.format(Cursor.max(a, b)) !== "3:4") throw new Error("max picks the later term");
 * ```
 */
export interface Cursor {
  /** The term of the leader that wrote the entry; 0 only for the empty-log sentinel. */
  readonly term: Term;
  /** The entry's position in the log; 0 is the empty-log sentinel. */
  readonly index: Index;
}

/** The helpers on {@link Cursor}: the value `Cursor` is an object of this type. */
export interface CursorHelpers {
  /** The empty-log sentinel `{ term: 0, index: 0 }` (frozen). */
  readonly ZERO: Cursor;
  /**
   * A validated cursor.
   *
   * @param term the term, a non-negative safe integer
   * @param index the index, a non-negative safe integer
   * @returns a new cursor `{ term, index }`
   * @throws {TypeError} when `term` or `index` is not a number
   * @throws {RangeError} when either is negative, fractional or above 2^53 - 1
   */
  of(term: Term, index: Index): Cursor;
  /**
   * Compares by term, then by index.
   *
   * @param a one cursor
   * @param b another cursor
   * @returns a negative number when `a` comes first, 0 when equal, positive when `a` comes later
   */
  compare(a: Cursor, b: Cursor): number;
  /**
   * True when both name the same position.
   *
   * @param a one cursor
   * @param b another cursor
   * @returns whether term and index are equal
   */
  equals(a: Cursor, b: Cursor): boolean;
  /**
   * The greater of two cursors in {@link CursorHelpers.compare} order.
   *
   * @param a one cursor
   * @param b another cursor
   * @returns `a` when it is not behind `b`, else `b`
   */
  max(a: Cursor, b: Cursor): Cursor;
  /**
   * A short text form for logs.
   *
   * @param c the cursor
   * @returns `term:index`, e.g. `3:120`
   */
  format(c: Cursor): string;
}

/** Helpers for {@link Cursor} (see {@link CursorHelpers}). */
export const Cursor: CursorHelpers = {
  ZERO: Object.freeze({ term: 0, index: 0 }) as Cursor,

  of(term: Term, index: Index): Cursor {
    return { term: checkIndex(term, "Cursor term"), index: checkIndex(index, "Cursor index") };
  },

  compare(a: Cursor, b: Cursor): number {
    if (a.term !== b.term) return a.term < b.term ? -1 : 1;
    if (a.index !== b.index) return a.index < b.index ? -1 : 1;
    return 0;
  },

  equals(a: Cursor, b: Cursor): boolean {
    return a.term === b.term && a.index === b.index;
  },

  max(a: Cursor, b: Cursor): Cursor {
    return Cursor.compare(a, b) >= 0 ? a : b;
  },

  format(c: Cursor): string {
    return `${c.term}:${c.index}`;
  },
};

/**
 * An inclusive range of indices, `start..=end`. Empty when `end < start`.
 *
 * @example
 * ```ts
 * import { IndexRange } from "@mosaik/mosaik";
 *
 * const r = IndexRange.of(5, 7);
 * if (IndexRange.size(r) !== 3 || !IndexRange.contains(r, 7)) throw new Error("5..=7 holds 3 indices");
 * if ([...IndexRange.indices(r)].join() !== "5,6,7") throw new Error("indices in order");
 * if (!IndexRange.isEmpty(IndexRange.of(5, 4))) throw new Error("end = start - 1 is empty");
 * ```
 */
export interface IndexRange {
  /** The first index of the range. */
  readonly start: Index;
  /** The last index of the range, inclusive; `start - 1` for an empty range. */
  readonly end: Index;
}

/** The helpers on {@link IndexRange}: the value `IndexRange` is an object of this type. */
export interface IndexRangeHelpers {
  /**
   * A validated inclusive range; `end` may be `start - 1` to denote an empty range.
   *
   * @param start the first index
   * @param end the last index, inclusive
   * @returns a new range `{ start, end }`
   * @throws {TypeError} when a bound is not a number
   * @throws {RangeError} when a bound is not a non-negative safe integer, or `end < start - 1`
   */
  of(start: Index, end: Index): IndexRange;
  /**
   * The number of indices in the range.
   *
   * @param r the range
   * @returns `end - start + 1`, or 0 for an empty range
   */
  size(r: IndexRange): number;
  /**
   * True when the range holds no index.
   *
   * @param r the range
   * @returns whether `end < start`
   */
  isEmpty(r: IndexRange): boolean;
  /**
   * True when `index` is in the range.
   *
   * @param r the range
   * @param index the index to look for
   * @returns whether `start <= index <= end`
   */
  contains(r: IndexRange, index: Index): boolean;
  /**
   * The indices of the range, in increasing order.
   *
   * @param r the range
   * @returns an iterator over `start..=end`
   */
  indices(r: IndexRange): IterableIterator<Index>;
  /**
   * A short text form for logs.
   *
   * @param r the range
   * @returns `start..=end`, e.g. `5..=7`
   */
  format(r: IndexRange): string;
}

/** Helpers for {@link IndexRange} (see {@link IndexRangeHelpers}). */
export const IndexRange: IndexRangeHelpers = {
  of(start: Index, end: Index): IndexRange {
    checkIndex(start, "IndexRange start");
    checkIndex(end, "IndexRange end");
    if (end < start - 1) {
      throw new RangeError(`IndexRange end (${end}) must be at least start - 1 (${start - 1})`);
    }
    return { start, end };
  },

  size(r: IndexRange): number {
    return Math.max(0, r.end - r.start + 1);
  },

  isEmpty(r: IndexRange): boolean {
    return r.end < r.start;
  },

  contains(r: IndexRange, index: Index): boolean {
    return index >= r.start && index <= r.end;
  },

  *indices(r: IndexRange): IterableIterator<Index> {
    for (let i = r.start; i <= r.end; i++) yield i;
  },

  format(r: IndexRange): string {
    return `${r.start}..=${r.end}`;
  },
};
