// The core's in-memory view of the log: terms of every index, a bounded entry cache, commit/apply marks.

import type { Cursor, Index, Term } from "../primitives/cursor.ts";
import type { LogEntry } from "../../storage/types.ts";

/** Thrown when the core detects that one of its invariants does not hold: a bug, never bad input. */
export class InvariantError extends Error {
  override name = "InvariantError";
}

interface Run {
  /** Term of every index from `start` up to the next run's start (or the last index). */
  readonly term: Term;
  readonly start: Index;
}

/**
 * The log as the core sees it. Storage may be asynchronous, so the core never
 * reads it: it keeps the term of every index as run-length pairs (cheap: terms
 * change rarely), the recent entries in a cache, and entries fetched from
 * storage on request in a small side map.
 *
 * Indices `(prefix.index, lastIndex]` exist; `prefix` is the pruned or reset
 * point whose term is still known.
 */
export class RaftLog {
  #prefix: Cursor;
  #runs: Run[] = [];
  #last: Index;
  /** Cached entries for `[#cacheStart, #last]`, contiguous. */
  #cache: LogEntry<unknown>[] = [];
  #cacheStart: Index;
  #fetched = new Map<Index, LogEntry<unknown>>();
  readonly #fetchedLimit: number;
  readonly #cacheLimit: number;

  /** First index not yet handed out for persistence. */
  #unstableFrom: Index;
  /** Lowest index truncated since the last hand-out, if it removed handed-out entries. */
  #pendingTruncate: Index | undefined;
  /** Last index known durable. */
  #persisted: Index;

  committed: Index;
  applied: Index;

  constructor(prefix: Cursor, cacheLimit: number, fetchedLimit: number) {
    this.#prefix = prefix;
    this.#last = prefix.index;
    this.#cacheStart = prefix.index + 1;
    this.#unstableFrom = prefix.index + 1;
    this.#persisted = prefix.index;
    this.committed = prefix.index;
    this.applied = prefix.index;
    this.#cacheLimit = cacheLimit;
    this.#fetchedLimit = fetchedLimit;
  }

  /** Loads entries that are already durable (at start-up). */
  restore(entries: Iterable<LogEntry<unknown>>): void {
    for (const e of entries) {
      if (e.index !== this.#last + 1) {
        throw new RangeError(
          `Cannot restore log: expected index ${this.#last + 1}, got ${e.index}`,
        );
      }
      this.#push(e);
    }
    this.#unstableFrom = this.#last + 1;
    this.#persisted = this.#last;
    this.evict();
  }

  get prefix(): Cursor {
    return this.#prefix;
  }

  get lastIndex(): Index {
    return this.#last;
  }

  get lastTerm(): Term {
    return this.termAt(this.#last) ?? 0;
  }

  get persisted(): Index {
    return this.#persisted;
  }

  lastCursor(): Cursor {
    return { term: this.lastTerm, index: this.#last };
  }

  /** The term at `i`: known for `[prefix.index, lastIndex]`, 0 at 0, else undefined. */
  termAt(i: Index): Term | undefined {
    if (i === 0) return 0;
    if (i === this.#prefix.index) return this.#prefix.term;
    if (i < this.#prefix.index || i > this.#last) return undefined;
    const runs = this.#runs;
    let lo = 0;
    let hi = runs.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (runs[mid]!.start <= i) lo = mid;
      else hi = mid - 1;
    }
    return runs[lo]!.term;
  }

  matchTerm(i: Index, term: Term): boolean {
    return this.termAt(i) === term;
  }

  /** Raft's up-to-date rule: would a log ending at (lastIndex, lastTerm) be at least as up to date as ours? */
  isUpToDate(lastIndex: Index, lastTerm: Term): boolean {
    const myTerm = this.lastTerm;
    return lastTerm > myTerm || (lastTerm === myTerm && lastIndex >= this.#last);
  }

  /**
   * The largest index ≤ `index` whose term is ≤ `term` (at least the prefix
   * index): where a leader and follower logs may still agree.
   */
  findConflictByTerm(index: Index, term: Term): Index {
    let i = Math.min(index, this.#last);
    if (i <= this.#prefix.index) return i;
    // walk runs backwards: whole runs at once
    for (let r = this.#runs.length - 1; r >= 0; r--) {
      const run = this.#runs[r]!;
      if (run.start > i) continue;
      if (run.term <= term) return i;
      i = run.start - 1;
      if (i <= this.#prefix.index) return i;
    }
    return i;
  }

  /**
   * The entries from `start` to `end` inclusive, in order, each the one
   * {@link RaftLog.entry} gives (`undefined` where it is not in memory): one
   * copy of the cache when it holds the whole range.
   */
  held(start: Index, end: Index): (LogEntry<unknown> | undefined)[] {
    if (start >= this.#cacheStart && end <= this.#last) {
      return this.#cache.slice(start - this.#cacheStart, end - this.#cacheStart + 1);
    }
    const out = new Array<LogEntry<unknown> | undefined>(end - start + 1);
    for (let i = start; i <= end; i++) out[i - start] = this.entry(i);
    return out;
  }

  /** The entry at `i` if the core holds it in memory. */
  entry(i: Index): LogEntry<unknown> | undefined {
    if (i >= this.#cacheStart && i <= this.#last) return this.#cache[i - this.#cacheStart];
    return this.#fetched.get(i);
  }

  /**
   * Up to `maxCount` entries from `from` on, stopping before `maxBytes` would be
   * exceeded (at least one entry is always taken). Returns `undefined` when the
   * entry at `from` is not in memory (the caller asks the driver to fetch it).
   */
  slice(
    from: Index,
    maxCount: number,
    maxBytes: number,
    sizeOf: (e: LogEntry<unknown>) => number,
  ): LogEntry<unknown>[] | undefined {
    const out: LogEntry<unknown>[] = [];
    let bytes = 0;
    for (let i = from; i <= this.#last && out.length < maxCount; i++) {
      const e = this.entry(i);
      if (e === undefined) return out.length === 0 ? undefined : out;
      const size = sizeOf(e);
      if (out.length > 0 && bytes + size > maxBytes) break;
      bytes += size;
      out.push(e);
    }
    return out;
  }

  /** Appends entries at `lastIndex + 1` (leader proposals, or a follower's new suffix). */
  append(entries: readonly LogEntry<unknown>[]): void {
    for (const e of entries) {
      if (e.index !== this.#last + 1) {
        throw new InvariantError(`append at ${e.index}, expected ${this.#last + 1}`);
      }
      const prevTerm = this.lastTerm;
      if (e.term < prevTerm) {
        throw new InvariantError(`term ${e.term} after ${prevTerm} at ${e.index}`);
      }
      this.#push(e);
    }
  }

  #push(e: LogEntry<unknown>): void {
    const lastRun = this.#runs[this.#runs.length - 1];
    if (lastRun === undefined || lastRun.term !== e.term) {
      this.#runs.push({ term: e.term, start: e.index });
    }
    if (this.#cacheStart === this.#last + 1 && this.#cache.length === 0) this.#cacheStart = e.index;
    this.#cache.push(e);
    this.#last = e.index;
    this.#fetched.delete(e.index);
  }

  /**
   * A follower's append: checks (prevIndex, prevTerm), drops entries it already
   * has, truncates at the first conflict and appends the rest. Returns the last
   * index known to match the leader and the first index written (if any), or
   * `undefined` if prev does not match.
   */
  maybeAppend(
    prevIndex: Index,
    prevTerm: Term,
    entries: readonly LogEntry<unknown>[],
  ): { lastNew: Index; written: Index | undefined } | undefined {
    if (!this.matchTerm(prevIndex, prevTerm)) return undefined;
    let k = 0;
    for (; k < entries.length; k++) {
      const e = entries[k]!;
      if (e.index <= this.#prefix.index) continue;
      const t = this.termAt(e.index);
      if (t === undefined) break; // past our end: append from here
      if (t !== e.term) {
        if (e.index <= this.committed) {
          throw new InvariantError(
            `conflict at committed index ${e.index} (committed ${this.committed})`,
          );
        }
        this.truncate(e.index);
        break;
      }
    }
    const written = k < entries.length ? entries[k]!.index : undefined;
    if (k < entries.length) this.append(entries.slice(k));
    return { lastNew: prevIndex + entries.length, written };
  }

  /** Removes `from..lastIndex`. Never below the commit index. */
  truncate(from: Index): void {
    if (from > this.#last) return;
    if (from <= this.committed) {
      throw new InvariantError(`truncate at ${from} below commit ${this.committed}`);
    }
    while (this.#runs.length > 0 && this.#runs[this.#runs.length - 1]!.start >= from) {
      this.#runs.pop();
    }
    if (from >= this.#cacheStart) this.#cache.length = from - this.#cacheStart;
    else {
      this.#cache = [];
      this.#cacheStart = from;
    }
    for (const i of this.#fetched.keys()) if (i >= from) this.#fetched.delete(i);
    this.#last = from - 1;
    if (from < this.#unstableFrom) {
      this.#pendingTruncate = Math.min(this.#pendingTruncate ?? from, from);
      this.#unstableFrom = from;
    }
    this.#persisted = Math.min(this.#persisted, from - 1);
  }

  /** Empties the log so that its last cursor is `cursor` (merge / snapshot). */
  resetTo(cursor: Cursor): void {
    this.#prefix = cursor;
    this.#runs = [];
    this.#cache = [];
    this.#fetched.clear();
    this.#last = cursor.index;
    this.#cacheStart = cursor.index + 1;
    this.#unstableFrom = cursor.index + 1;
    this.#pendingTruncate = undefined;
    this.#persisted = cursor.index;
    this.committed = cursor.index;
    this.applied = cursor.index;
  }

  commitTo(i: Index): boolean {
    const to = Math.min(i, this.#last);
    if (to <= this.committed) return false;
    this.committed = to;
    return true;
  }

  /** Takes what must be persisted: a truncation point and the new entries. */
  takeUnstable(): { truncateFrom: Index | undefined; entries: LogEntry<unknown>[] } {
    const truncateFrom = this.#pendingTruncate;
    const entries: LogEntry<unknown>[] = [];
    for (let i = this.#unstableFrom; i <= this.#last; i++) entries.push(this.entry(i)!);
    this.#pendingTruncate = undefined;
    this.#unstableFrom = this.#last + 1;
    return { truncateFrom, entries };
  }

  hasUnstable(): boolean {
    return this.#pendingTruncate !== undefined || this.#unstableFrom <= this.#last;
  }

  /** Marks entries up to `index` durable (after the driver persisted them). */
  persistedTo(index: Index): void {
    // A truncation after the hand-out may have removed some of them.
    this.#persisted = Math.max(
      this.#persisted,
      Math.min(index, this.#last, this.#unstableFrom - 1),
    );
  }

  /** Keeps fetched entries that still belong to the log; returns how many it did not hold yet. */
  provide(entries: readonly LogEntry<unknown>[]): number {
    let added = 0;
    for (const e of entries) {
      if (this.termAt(e.index) !== e.term || e.index <= this.#prefix.index) continue;
      if (e.index >= this.#cacheStart) continue;
      // re-inserting refreshes its place in the eviction order, but only new entries count
      const had = this.#fetched.delete(e.index);
      this.#fetched.set(e.index, e);
      if (!had) added++;
    }
    while (this.#fetched.size > this.#fetchedLimit) {
      const oldest = this.#fetched.keys().next().value as Index;
      this.#fetched.delete(oldest);
    }
    return added;
  }

  /** Drops cached entries no longer needed in memory: applied, persisted, and beyond the cache limit. */
  evict(): void {
    const keepFrom = Math.min(
      this.applied + 1,
      this.#persisted + 1,
      this.#last + 1 - this.#cacheLimit,
    );
    const drop = Math.min(keepFrom - this.#cacheStart, this.#cache.length);
    if (drop <= 0) return;
    this.#cache.splice(0, drop);
    this.#cacheStart += drop;
  }

  /** Number of entries held in memory (cache + fetched), for tests. */
  memoryEntries(): number {
    return this.#cache.length + this.#fetched.size;
  }

  /** Checks the log's own invariants. */
  check(): void {
    if (this.committed > this.#last) {
      throw new InvariantError(`committed ${this.committed} > last ${this.#last}`);
    }
    if (this.applied > this.committed) {
      throw new InvariantError(`applied ${this.applied} > committed ${this.committed}`);
    }
    if (this.committed < this.#prefix.index) {
      throw new InvariantError(`committed ${this.committed} < prefix ${this.#prefix.index}`);
    }
    let prev = this.#prefix.term;
    for (const r of this.#runs) {
      if (r.term < prev) throw new InvariantError(`terms decrease at ${r.start}`);
      prev = r.term;
    }
  }
}
