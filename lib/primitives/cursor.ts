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
 */
export interface Cursor {
  readonly term: Term;
  readonly index: Index;
}

/** The helpers on {@link Cursor}. */
export interface CursorHelpers {
  readonly ZERO: Cursor;
  of(term: Term, index: Index): Cursor;
  compare(a: Cursor, b: Cursor): number;
  equals(a: Cursor, b: Cursor): boolean;
  max(a: Cursor, b: Cursor): Cursor;
  format(c: Cursor): string;
}

/** Helpers for {@link Cursor}. */
export const Cursor: CursorHelpers = {
  /** The empty-log sentinel `{ term: 0, index: 0 }`. */
  ZERO: Object.freeze({ term: 0, index: 0 }) as Cursor,

  /**
   * A validated cursor.
   *
   * @throws {RangeError|TypeError} when term or index is not a non-negative safe integer
   */
  of(term: Term, index: Index): Cursor {
    return { term: checkIndex(term, "Cursor term"), index: checkIndex(index, "Cursor index") };
  },

  /** Negative, zero or positive: by term, then index. */
  compare(a: Cursor, b: Cursor): number {
    if (a.term !== b.term) return a.term < b.term ? -1 : 1;
    if (a.index !== b.index) return a.index < b.index ? -1 : 1;
    return 0;
  },

  /** True when both name the same position. */
  equals(a: Cursor, b: Cursor): boolean {
    return a.term === b.term && a.index === b.index;
  },

  /** The greater of two cursors in {@link Cursor.compare} order. */
  max(a: Cursor, b: Cursor): Cursor {
    return Cursor.compare(a, b) >= 0 ? a : b;
  },

  /** `term:index`, e.g. `3:120`. */
  format(c: Cursor): string {
    return `${c.term}:${c.index}`;
  },
};

/** An inclusive range of indices, `start..=end`. Empty when `end < start`. */
export interface IndexRange {
  readonly start: Index;
  readonly end: Index;
}

/** The helpers on {@link IndexRange}. */
export interface IndexRangeHelpers {
  of(start: Index, end: Index): IndexRange;
  size(r: IndexRange): number;
  isEmpty(r: IndexRange): boolean;
  contains(r: IndexRange, index: Index): boolean;
  indices(r: IndexRange): IterableIterator<Index>;
  format(r: IndexRange): string;
}

/** Helpers for {@link IndexRange}. */
export const IndexRange: IndexRangeHelpers = {
  /**
   * A validated inclusive range; `end` may be `start - 1` to denote an empty range.
   *
   * @throws {RangeError} when `end < start - 1` or either bound is not an index
   */
  of(start: Index, end: Index): IndexRange {
    checkIndex(start, "IndexRange start");
    checkIndex(end, "IndexRange end");
    if (end < start - 1) {
      throw new RangeError(`IndexRange end (${end}) must be at least start - 1 (${start - 1})`);
    }
    return { start, end };
  },

  /** Number of indices in the range. */
  size(r: IndexRange): number {
    return Math.max(0, r.end - r.start + 1);
  },

  /** True when the range holds no index. */
  isEmpty(r: IndexRange): boolean {
    return r.end < r.start;
  },

  /** True when `index` is in the range. */
  contains(r: IndexRange, index: Index): boolean {
    return index >= r.start && index <= r.end;
  },

  /** The indices of the range, in order. */
  *indices(r: IndexRange): IterableIterator<Index> {
    for (let i = r.start; i <= r.end; i++) yield i;
  },

  /** `start..=end`. */
  format(r: IndexRange): string {
    return `${r.start}..=${r.end}`;
  },
};
