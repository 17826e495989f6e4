// BunSqliteLogStore: a durable Storage<C> on bun:sqlite (Bun only), one SQLite file per group member.

import {
  Cursor,
  type Index,
  type IndexRange,
  isIndex,
  type Term,
} from "../lib/primitives/cursor.ts";
import { decodeOwnedEntry, entryBytes } from "../lib/wire/entry.ts";
import {
  checkBatch,
  checkClaim,
  checkHardState,
  checkPrune,
  checkReset,
  checkTruncate,
  copyHardState,
} from "./_checks.ts";
import {
  StoreCorruptError,
  StoreLockedError,
  type StoreOwner,
  StoreVersionError,
} from "./errors.ts";
import type { HardState, LogEntry, Storage } from "./types.ts";

/** The on-disk format this module reads and writes (`meta.format`). */
const FORMAT_VERSION = 1;

// ---------------------------------------------------------------------------
// The part of the bun:sqlite API this store uses. Declared here rather than
// imported so the module type-checks (and loads) on Deno too.

type SqliteValue = string | number | bigint | boolean | null | Uint8Array;

interface SqliteStatement {
  run(...params: SqliteValue[]): unknown;
  values(...params: SqliteValue[]): unknown[][];
  finalize(): void;
}

interface SqliteDatabase {
  prepare(sql: string): SqliteStatement;
  exec(sql: string): unknown;
  transaction<A extends unknown[]>(fn: (...args: A) => void): (...args: A) => void;
  close(throwOnError?: boolean): void;
}

interface SqliteModule {
  Database: new (
    path: string,
    options?: { create?: boolean; readwrite?: boolean },
  ) => SqliteDatabase;
}

let sqliteModule: SqliteModule | undefined;

/** Rows written by one multi-row INSERT when appending a batch. */
const INSERT_ROWS = 64;

/** bun:sqlite, loaded synchronously; throws a clear error anywhere but Bun. */
function loadSqlite(): SqliteModule {
  if (sqliteModule !== undefined) return sqliteModule;
  const notBun =
    "Cannot open BunSqliteLogStore: bun:sqlite is only available on Bun (on Deno use DenoKvLogStore from storage/deno_kv.ts)";
  // A static import of "bun:sqlite" would break loading (and `deno check`) on Deno.
  const require = (import.meta as { require?: (id: string) => unknown }).require;
  if (typeof require !== "function") throw new Error(notBun);
  let mod: unknown;
  try {
    mod = require("bun:sqlite");
  } catch (cause) {
    throw new Error(notBun, { cause });
  }
  if (typeof (mod as Partial<SqliteModule> | undefined)?.Database !== "function") {
    throw new Error(notBun);
  }
  sqliteModule = mod as SqliteModule;
  return sqliteModule;
}

/** The SQLite result code name of `err` (`"SQLITE_BUSY"`, …), if it has one. */
function sqliteCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === "string" ? code : undefined;
}

function isBusy(err: unknown): boolean {
  const code = sqliteCode(err);
  if (code !== undefined && code.startsWith("SQLITE_BUSY")) return true;
  return err instanceof Error && err.message.includes("database is locked");
}

function isNotStore(err: unknown): boolean {
  const code = sqliteCode(err);
  return code !== undefined &&
    (code.startsWith("SQLITE_NOTADB") || code.startsWith("SQLITE_CORRUPT"));
}

/** Runs `sql` once and returns its rows as arrays. */
function rows(db: SqliteDatabase, sql: string, ...params: SqliteValue[]): unknown[][] {
  const stmt = db.prepare(sql);
  try {
    return stmt.values(...params);
  } finally {
    stmt.finalize();
  }
}

/** What `open` reads from an existing store (or sets up in a new one). */
interface Loaded {
  prefix: Cursor;
  last: Cursor;
  hardState: HardState | undefined;
  owner: StoreOwner | undefined;
}

/**
 * A durable {@link Storage} in one SQLite file, through `bun:sqlite`. Bun only:
 * on Deno use `DenoKvLogStore` from `storage/deno_kv.ts`.
 *
 * Durability: the database runs in WAL mode with `synchronous=FULL` (and
 * `fullfsync` where the platform has it), so every `append`, `truncate`,
 * `prunePrefix`, `resetTo`, `saveHardState` and `claim` is one transaction
 * whose commit is synced to disk before the method returns. A write survives
 * a crash of the process and a power loss; a crash during one leaves either
 * the old state or the new one, never a mix.
 *
 * The file is held with `locking_mode=EXCLUSIVE` while the store is open, so
 * a second opener — in this process or another — gets a
 * {@link StoreLockedError} instead of two writers interleaving one log.
 *
 * Entries are stored as {@link encodeEntry} bytes, so user commands must be
 * CBOR-encodable; `get` and `getRange` return freshly decoded objects.
 * `last()`, `available()`, `loadHardState()` and `termAt` at the ends are
 * answered from memory (the store is the only writer); every method is
 * synchronous.
 *
 * Schema (format version 1): `meta(key TEXT PRIMARY KEY, value)` holds
 * `format`, `group` and `member` (the owner), `prefix_index` and
 * `prefix_term` (the cursor before the first kept entry), `hard_term` and
 * `hard_voted_for`; `log(idx INTEGER PRIMARY KEY, term INTEGER NOT NULL,
 * entry BLOB NOT NULL)` holds one row per entry.
 *
 * @example Bun only (`deno test --doc` skips it)
 * ```ts ignore
 * import { BunSqliteLogStore } from "@mosaik/mosaik/storage/bun_sqlite";
 *
 * using store = BunSqliteLogStore.open<string>("/var/lib/mosaik/node-1.db");
 * store.append([{ index: 1, term: 1, command: "set x" }]); // durable on return
 * if (store.last().index !== 1) throw new Error("appended");
 * ```
 */
export class BunSqliteLogStore<C = unknown> implements Storage<C> {
  /** The path the store was opened at. */
  readonly path: string;

  #db: SqliteDatabase;
  #closed = false;
  /** The cursor just before the first kept entry: the sentinel, the last pruned entry, or a reset point. */
  #prefix: Cursor;
  #last: Cursor;
  #hardState: HardState | undefined;
  #owner: StoreOwner | undefined;

  #insert: SqliteStatement;
  /** Inserts {@link INSERT_ROWS} rows at once. */
  #insertMany: SqliteStatement;
  #selectEntry: SqliteStatement;
  #selectRange: SqliteStatement;
  #selectTerm: SqliteStatement;
  #deleteFrom: SqliteStatement;
  #deleteUpTo: SqliteStatement;
  #deleteAll: SqliteStatement;
  #putMeta: SqliteStatement;
  #deleteMeta: SqliteStatement;

  #appendTxn: (positions: readonly Cursor[], encoded: readonly Uint8Array[]) => void;
  #truncateTxn: (from: Index) => void;
  #pruneTxn: (boundary: Cursor) => void;
  #resetTxn: (cursor: Cursor) => void;
  #hardStateTxn: (state: HardState) => void;
  #claimTxn: (owner: StoreOwner) => void;

  private constructor(path: string, db: SqliteDatabase, loaded: Loaded) {
    this.path = path;
    this.#db = db;
    this.#prefix = loaded.prefix;
    this.#last = loaded.last;
    this.#hardState = loaded.hardState;
    this.#owner = loaded.owner;

    this.#insert = db.prepare("INSERT INTO log (idx, term, entry) VALUES (?, ?, ?)");
    this.#insertMany = db.prepare(
      `INSERT INTO log (idx, term, entry) VALUES ${
        Array(INSERT_ROWS).fill("(?, ?, ?)").join(", ")
      }`,
    );
    this.#selectEntry = db.prepare("SELECT term, entry FROM log WHERE idx = ?");
    this.#selectRange = db.prepare(
      "SELECT idx, term, entry FROM log WHERE idx >= ? AND idx <= ? ORDER BY idx",
    );
    this.#selectTerm = db.prepare("SELECT term FROM log WHERE idx = ?");
    this.#deleteFrom = db.prepare("DELETE FROM log WHERE idx >= ?");
    this.#deleteUpTo = db.prepare("DELETE FROM log WHERE idx <= ?");
    this.#deleteAll = db.prepare("DELETE FROM log");
    this.#putMeta = db.prepare("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)");
    this.#deleteMeta = db.prepare("DELETE FROM meta WHERE key = ?");

    this.#appendTxn = db.transaction((positions: readonly Cursor[], encoded) => {
      // Full groups of rows go in one multi-row INSERT each: a statement run has a fixed cost
      // that dominated appending small entries in batches.
      let i = 0;
      if (positions.length >= INSERT_ROWS) {
        const params = new Array<SqliteValue>(INSERT_ROWS * 3);
        for (; i + INSERT_ROWS <= positions.length; i += INSERT_ROWS) {
          for (let k = 0; k < INSERT_ROWS; k++) {
            const e = positions[i + k]!;
            params[3 * k] = e.index;
            params[3 * k + 1] = e.term;
            params[3 * k + 2] = encoded[i + k]!;
          }
          this.#insertMany.run(...params);
        }
      }
      for (; i < positions.length; i++) {
        const e = positions[i]!;
        this.#insert.run(e.index, e.term, encoded[i]!);
      }
    });
    this.#truncateTxn = db.transaction((from: Index) => {
      this.#deleteFrom.run(from);
    });
    this.#pruneTxn = db.transaction((boundary: Cursor) => {
      this.#deleteUpTo.run(boundary.index);
      this.#putPrefix(boundary);
    });
    this.#resetTxn = db.transaction((cursor: Cursor) => {
      this.#deleteAll.run();
      this.#putPrefix(cursor);
    });
    this.#hardStateTxn = db.transaction((state: HardState) => {
      this.#putMeta.run("hard_term", state.term);
      if (state.votedFor === undefined) this.#deleteMeta.run("hard_voted_for");
      else this.#putMeta.run("hard_voted_for", state.votedFor);
    });
    this.#claimTxn = db.transaction((owner: StoreOwner) => {
      this.#putMeta.run("group", owner.group);
      this.#putMeta.run("member", owner.member);
    });
  }

  /**
   * Opens the store at `path`, creating it when the file does not exist, and
   * holds it exclusively until {@link close}. Checks the file before using it;
   * on any error nothing is written and the file is released again.
   *
   * @param path the SQLite file of the store (its directory must exist)
   * @returns the open store
   * @throws {Error} when not running on Bun (bun:sqlite is missing), or the file cannot be opened
   * @throws {StoreLockedError} when another opener, in this process or another, holds the store
   * @throws {StoreCorruptError} when the file is not SQLite, fails SQLite's integrity check, is
   *   another application's database, or its log has a hole, a decreasing term or a bad prefix
   * @throws {StoreVersionError} when the store was written in another format version
   *
   * @example Bun only (`deno test --doc` skips it)
   * ```ts ignore
   * import { BunSqliteLogStore } from "@mosaik/mosaik/storage/bun_sqlite";
   * import { StoreLockedError } from "@mosaik/mosaik/storage/errors";
   *
   * try {
   *   using store = BunSqliteLogStore.open("/var/lib/mosaik/node-1.db");
   *   // a new store is empty: store.last() is { term: 0, index: 0 }
   * } catch (err) {
   *   if (!(err instanceof StoreLockedError)) throw err;
   *   // another process runs this member: stop it first
   * }
   * ```
   */
  static open<C = unknown>(path: string): BunSqliteLogStore<C> {
    if (typeof path !== "string" || path === "") {
      throw new TypeError("Cannot open BunSqliteLogStore: path must be a non-empty string");
    }
    const { Database } = loadSqlite();
    let db: SqliteDatabase;
    try {
      db = new Database(path, { create: true, readwrite: true });
    } catch (cause) {
      throw new Error(`Cannot open store ${path}: ${errorMessage(cause)}`, { cause });
    }
    try {
      const loaded = prepare(path, db);
      return new BunSqliteLogStore<C>(path, db, loaded);
    } catch (err) {
      try {
        db.close(true);
      } catch {
        // The error that stopped the open says more than a failed close.
      }
      if (err instanceof StoreCorruptError || err instanceof StoreVersionError) throw err;
      if (isBusy(err)) throw new StoreLockedError(path, { cause: err });
      if (isNotStore(err)) {
        throw new StoreCorruptError(path, `not a valid SQLite database: ${errorMessage(err)}`, {
          cause: err,
        });
      }
      throw err;
    }
  }

  /**
   * Appends `entries` after the last entry in one transaction, synced to disk
   * on return. The whole batch is checked and encoded before anything is
   * written, so a rejected batch changes nothing.
   *
   * @param entries the entries to append, starting at `last().index + 1` (may be empty)
   * @throws {RangeError} when the batch does not start at `last().index + 1`, is not contiguous or lowers the term
   * @throws {TypeError} when an index or term is not a number
   * @throws {EncodingError} when a command is not CBOR-encodable
   * @throws {Error} when the store is closed
   */
  append(entries: readonly LogEntry<C>[]): void {
    this.#checkOpen("append");
    if (entries.length === 0) return;
    checkBatch(this.#last, entries);
    const encoded = new Array<Uint8Array>(entries.length);
    for (let i = 0; i < entries.length; i++) encoded[i] = entryBytes(entries[i]!);
    this.#appendChecked(entries, encoded);
  }

  /**
   * {@link append} of entries already encoded with `encodeEntry` (what
   * {@link BunSqliteWorkerStore}'s thread receives). The bytes are stored as
   * they are: the caller vouches that they encode entries of these positions.
   * @internal
   */
  appendEncoded(records: readonly EncodedEntry[]): void {
    this.#checkOpen("append");
    if (records.length === 0) return;
    checkBatch(this.#last, records);
    this.#appendChecked(records, records.map((r) => r.bytes));
  }

  /** Writes a checked, non-empty batch in one transaction and moves `last` to its end. */
  #appendChecked(positions: readonly Cursor[], encoded: readonly Uint8Array[]): void {
    this.#appendTxn(positions, encoded);
    const tail = positions[positions.length - 1]!;
    this.#last = { term: tail.term, index: tail.index };
  }

  /**
   * The indices `get` can return, inclusive; empty when `end === start - 1`.
   *
   * @returns the available range
   * @throws {Error} when the store is closed
   */
  available(): IndexRange {
    this.#checkOpen("read the available range");
    return { start: this.#prefix.index + 1, end: this.#last.index };
  }

  /**
   * The entry at `index`, decoded from disk.
   *
   * @param index the log position
   * @returns the entry, or `undefined` when it is pruned, truncated or never appended
   * @throws {StoreCorruptError} when the stored entry is missing or does not decode
   * @throws {Error} when the store is closed
   */
  get(index: Index): LogEntry<C> | undefined {
    this.#checkOpen("get");
    if (!this.#holds(index)) return undefined;
    const row = this.#selectEntry.values(index)[0];
    if (row === undefined) throw new StoreCorruptError(this.path, `entry ${index} is missing`);
    return decodeStoredEntry<C>(this.path, index, row[0], row[1]);
  }

  /**
   * The available entries from `start` to `end` inclusive, decoded from disk
   * in one query, in a new array.
   *
   * @param start the first position wanted
   * @param end the last position wanted
   * @returns the entries in order; positions outside the available range are skipped
   * @throws {StoreCorruptError} when a stored entry is missing or does not decode
   * @throws {Error} when the store is closed
   */
  getRange(start: Index, end: Index): LogEntry<C>[] {
    this.#checkOpen("get a range");
    return this.getRangeEncoded(start, end).map((r) =>
      decodeStoredEntry<C>(this.path, r.index, r.term, r.bytes)
    );
  }

  /**
   * {@link getRange} without decoding: the stored rows, checked for holes.
   * Decode each with {@link decodeStoredEntry}. @internal
   */
  getRangeEncoded(start: Index, end: Index): EncodedEntry[] {
    this.#checkOpen("get a range");
    const from = Math.max(Math.ceil(start), this.#prefix.index + 1);
    const to = Math.min(Math.floor(end), this.#last.index);
    if (Number.isNaN(from) || Number.isNaN(to) || to < from) return [];
    const found = this.#selectRange.values(from, to);
    const out = new Array<EncodedEntry>(found.length);
    for (let i = 0; i < found.length; i++) {
      const row = found[i]!;
      if (row[0] !== from + i) {
        throw new StoreCorruptError(this.path, `entry ${from + i} is missing`);
      }
      out[i] = { index: from + i, term: row[1] as Term, bytes: row[2] as Uint8Array };
    }
    if (out.length !== to - from + 1) {
      throw new StoreCorruptError(this.path, `entry ${from + out.length} is missing`);
    }
    return out;
  }

  /**
   * Removes the entries from `from` to the end in one transaction; a `from`
   * past the end does nothing.
   *
   * @param from the first position to remove
   * @throws {RangeError} when `from` is at or below the pruned prefix
   * @throws {Error} when the store is closed
   */
  truncate(from: Index): void {
    this.#checkOpen("truncate");
    checkTruncate(from, this.#prefix.index);
    if (from > this.#last.index) return;
    const before = from - 1;
    const last = before === this.#prefix.index
      ? { term: this.#prefix.term, index: this.#prefix.index }
      : { term: this.#storedTerm(before), index: before };
    this.#truncateTxn(from);
    this.#last = last;
  }

  /**
   * The cursor of the last entry, or of the pruned prefix when no entry is kept.
   *
   * @returns a new cursor; `{ term: 0, index: 0 }` for an empty store
   * @throws {Error} when the store is closed
   */
  last(): Cursor {
    this.#checkOpen("read the last entry");
    return { term: this.#last.term, index: this.#last.index };
  }

  /**
   * The term at `index`: 0 for the sentinel, the prefix term at the prefix, `undefined` when unknown.
   *
   * @param index the log position
   * @returns the term, or `undefined` below the prefix or past the end
   * @throws {StoreCorruptError} when an entry inside the available range is missing
   * @throws {Error} when the store is closed
   */
  termAt(index: Index): Term | undefined {
    this.#checkOpen("read a term");
    // The sentinel's term is 0 in every log, pruned or not.
    if (index === 0) return 0;
    if (index === this.#prefix.index) return this.#prefix.term;
    if (index === this.#last.index) return this.#last.term;
    return this.#holds(index) ? this.#storedTerm(index) : undefined;
  }

  /**
   * Drops the entries up to and including `upTo` and records its cursor as
   * the prefix, in one transaction; at or below the current prefix it does nothing.
   *
   * @param upTo the last position to drop
   * @throws {RangeError} when `upTo` is past the last entry
   * @throws {Error} when the store is closed
   */
  prunePrefix(upTo: Index): void {
    this.#checkOpen("prune");
    if (!checkPrune(upTo, this.#prefix.index, this.#last.index)) return;
    const boundary = { term: this.#storedTerm(upTo), index: upTo };
    this.#pruneTxn(boundary);
    this.#prefix = boundary;
  }

  /**
   * Empties the log and makes `last()` equal to `cursor`, in one transaction.
   *
   * @param cursor the new prefix; `{ term: 0, index: 0 }` gives a fresh log
   * @throws {RangeError} when `cursor` is not a valid cursor or puts a non-zero term at index 0
   * @throws {Error} when the store is closed
   */
  resetTo(cursor: Cursor): void {
    this.#checkOpen("reset");
    const next = checkReset(cursor);
    this.#resetTxn(next);
    this.#prefix = next;
    this.#last = { term: next.term, index: next.index };
  }

  /**
   * The saved hard state.
   *
   * @returns a copy of it, or `undefined` if none was ever saved
   * @throws {Error} when the store is closed
   */
  loadHardState(): HardState | undefined {
    this.#checkOpen("load the hard state");
    return this.#hardState === undefined ? undefined : copyHardState(this.#hardState);
  }

  /**
   * Replaces the hard state in one transaction, synced to disk on return.
   *
   * @param state the term and, if any, the vote of this term
   * @throws {RangeError|TypeError} when the term is not a non-negative safe integer
   * @throws {TypeError} when `votedFor` is present and not a string
   * @throws {Error} when the store is closed
   */
  saveHardState(state: HardState): void {
    this.#checkOpen("save the hard state");
    const next = checkHardState(state);
    this.#hardStateTxn(next);
    this.#hardState = next;
  }

  /**
   * Ties the store to one member of one group (the group calls it on join);
   * the first claim is recorded on disk, later ones must name the same owner.
   *
   * @param owner the group and member claiming the store
   * @throws {StoreOwnerError} when the store belongs to another group or member; nothing changes then
   * @throws {TypeError} when the owner's group or member is not a non-empty string
   * @throws {Error} when the store is closed
   */
  claim(owner: StoreOwner): void {
    this.#checkOpen("claim");
    const recorded = checkClaim(this.path, this.#owner, owner);
    if (this.#owner === undefined) {
      this.#claimTxn(recorded);
      this.#owner = recorded;
    }
  }

  /**
   * Closes the database and releases the file for the next opener. Idempotent;
   * every other method throws afterwards.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    // `close(true)` finalizes the statements too; without it SQLite would keep
    // the file (and its lock) until they are garbage collected.
    this.#db.close(true);
  }

  /** Closes the store, for `using store = BunSqliteLogStore.open(path)`. */
  [Symbol.dispose](): void {
    this.close();
  }

  #checkOpen(what: string): void {
    if (this.#closed) throw new Error(`Cannot ${what}: store is closed`);
  }

  /** True when `index` is inside the available range. */
  #holds(index: Index): boolean {
    return Number.isInteger(index) && index > this.#prefix.index && index <= this.#last.index;
  }

  #storedTerm(index: Index): Term {
    const row = this.#selectTerm.values(index)[0];
    if (row === undefined) throw new StoreCorruptError(this.path, `entry ${index} is missing`);
    return row[0] as Term;
  }

  #putPrefix(cursor: Cursor): void {
    this.#putMeta.run("prefix_index", cursor.index);
    this.#putMeta.run("prefix_term", cursor.term);
  }
}

/** An entry as stored: its position and its `encodeEntry` bytes. @internal */
export interface EncodedEntry {
  /** The entry's position in the log. */
  readonly index: Index;
  /** The term the entry was written in. */
  readonly term: Term;
  /** The entry as `encodeEntry` encodes it. */
  readonly bytes: Uint8Array;
}

/**
 * Decodes a stored entry and checks that it is the entry its row says.
 * `bytes` must be fresh (a row's blob): the entry keeps them as its encoding.
 * @internal
 *
 * @throws {StoreCorruptError} when the bytes do not decode or hold another entry
 */
export function decodeStoredEntry<C>(
  path: string,
  index: Index,
  term: unknown,
  bytes: unknown,
): LogEntry<C> {
  let entry: LogEntry<C>;
  try {
    entry = decodeOwnedEntry<C>(bytes as Uint8Array);
  } catch (cause) {
    throw new StoreCorruptError(path, `entry ${index} does not decode: ${errorMessage(cause)}`, {
      cause,
    });
  }
  if (entry.index !== index || entry.term !== term) {
    throw new StoreCorruptError(
      path,
      `entry ${index} holds the bytes of entry ${Cursor.format(entry)}`,
    );
  }
  return entry;
}

/**
 * Checks the file, sets it up for durable exclusive use (creating the schema
 * in an empty one) and reads what the store keeps in memory. Writes nothing
 * before every check has passed.
 */
function prepare(path: string, db: SqliteDatabase): Loaded {
  // EXCLUSIVE before the first read, so the lock taken by that read is held to
  // close, and before journal_mode, so the WAL index lives in process memory.
  // A second opener fails at once (busy_timeout 0) rather than waiting.
  db.exec("PRAGMA busy_timeout = 0");
  db.exec("PRAGMA locking_mode = EXCLUSIVE");
  // The first read: SQLITE_NOTADB for a file that is not SQLite, SQLITE_BUSY when held.
  const tables = new Set(
    rows(db, "SELECT name FROM sqlite_master WHERE type = 'table'").map((r) => String(r[0])),
  );
  const fresh = tables.size === 0;
  if (!fresh) checkFormat(path, db, tables);
  // Before any write: quick_check does not change the file.
  const check = rows(db, "PRAGMA quick_check").map((r) => String(r[0]));
  if (check.length !== 1 || check[0] !== "ok") {
    throw new StoreCorruptError(path, `SQLite integrity check failed: ${check.join("; ")}`);
  }
  const mode = rows(db, "PRAGMA journal_mode = WAL")[0]?.[0];
  if (mode !== "wal") throw new Error(`Cannot open store ${path}: WAL mode is not available`);
  db.exec("PRAGMA synchronous = FULL");
  // Makes fsync reach the disk on macOS; ignored elsewhere.
  db.exec("PRAGMA fullfsync = ON");
  db.exec("PRAGMA checkpoint_fullfsync = ON");
  if (fresh) {
    db.transaction(() => {
      db.exec("CREATE TABLE meta (key TEXT PRIMARY KEY, value)");
      db.exec(
        "CREATE TABLE log (idx INTEGER PRIMARY KEY, term INTEGER NOT NULL, entry BLOB NOT NULL)",
      );
      db.exec(`INSERT INTO meta (key, value) VALUES ('format', ${FORMAT_VERSION})`);
    })();
    return { prefix: Cursor.ZERO, last: Cursor.ZERO, hardState: undefined, owner: undefined };
  }
  return load(path, db);
}

/** Checks that a non-empty database is a mosaik log store of our format version. */
function checkFormat(path: string, db: SqliteDatabase, tables: Set<string>): void {
  if (!tables.has("meta")) throw new StoreCorruptError(path, "not a mosaik log store");
  let found: unknown[][];
  try {
    found = rows(db, "SELECT value FROM meta WHERE key = 'format'");
  } catch (cause) {
    // Another application's table called meta, without our columns.
    if (isBusy(cause) || isNotStore(cause)) throw cause;
    throw new StoreCorruptError(path, "not a mosaik log store", { cause });
  }
  const version = found[0]?.[0];
  if (version === undefined) throw new StoreCorruptError(path, "not a mosaik log store");
  if (version !== FORMAT_VERSION) throw new StoreVersionError(path, version, FORMAT_VERSION);
  if (!tables.has("log")) throw new StoreCorruptError(path, "the log table is missing");
}

/** Reads the meta records and checks the log rows against them. */
function load(path: string, db: SqliteDatabase): Loaded {
  const meta = new Map<string, unknown>();
  for (const [key, value] of rows(db, "SELECT key, value FROM meta")) meta.set(String(key), value);
  const corrupt = (detail: string) => new StoreCorruptError(path, detail);

  const prefixIndex = meta.get("prefix_index") ?? 0;
  const prefixTerm = meta.get("prefix_term") ?? 0;
  if (!isIndex(prefixIndex) || !isIndex(prefixTerm) || (prefixIndex === 0 && prefixTerm !== 0)) {
    throw corrupt(`bad prefix ${String(prefixTerm)}:${String(prefixIndex)}`);
  }
  const prefix: Cursor = { term: prefixTerm, index: prefixIndex };

  let hardState: HardState | undefined;
  const hardTerm = meta.get("hard_term");
  const votedFor = meta.get("hard_voted_for");
  if (hardTerm !== undefined) {
    if (!isIndex(hardTerm)) throw corrupt(`bad hard state term ${String(hardTerm)}`);
    if (votedFor !== undefined && typeof votedFor !== "string") {
      throw corrupt("bad hard state vote");
    }
    hardState = votedFor === undefined ? { term: hardTerm } : { term: hardTerm, votedFor };
  } else if (votedFor !== undefined) {
    throw corrupt("a vote without a hard state term");
  }

  let owner: StoreOwner | undefined;
  const group = meta.get("group");
  const member = meta.get("member");
  if (group !== undefined || member !== undefined) {
    if (typeof group !== "string" || group === "" || typeof member !== "string" || member === "") {
      throw corrupt("bad owner record");
    }
    owner = { group, member };
  }

  const bad = rows(
    db,
    "SELECT idx FROM log WHERE typeof(term) != 'integer' OR term < 0 OR typeof(entry) != 'blob' LIMIT 1",
  )[0];
  if (bad !== undefined) throw corrupt(`entry ${String(bad[0])} has a bad term or entry`);

  const [count, min, max] = rows(db, "SELECT count(*), min(idx), max(idx) FROM log")[0] ?? [];
  if (count === 0) return { prefix, last: prefix, hardState, owner };
  if (typeof count !== "number" || typeof min !== "number" || typeof max !== "number") {
    throw corrupt("the log table cannot be read");
  }
  if (min !== prefix.index + 1) {
    throw corrupt(`the log starts at index ${min}, expected ${prefix.index + 1} after the prefix`);
  }
  if (max - min + 1 !== count) {
    const hole = rows(
      db,
      "SELECT a.idx + 1 FROM log a LEFT JOIN log b ON b.idx = a.idx + 1 WHERE b.idx IS NULL AND a.idx < ? ORDER BY a.idx LIMIT 1",
      max,
    )[0]?.[0];
    throw corrupt(`entry ${String(hole)} is missing from the log ${min}..${max}`);
  }
  const firstTerm = rows(db, "SELECT term FROM log WHERE idx = ?", min)[0]?.[0] as number;
  if (firstTerm < prefix.term) {
    throw corrupt(`entry ${min} has term ${firstTerm}, below the prefix term ${prefix.term}`);
  }
  const drop = rows(
    db,
    "SELECT b.idx, a.term, b.term FROM log a JOIN log b ON b.idx = a.idx + 1 WHERE b.term < a.term ORDER BY b.idx LIMIT 1",
  )[0];
  if (drop !== undefined) {
    throw corrupt(
      `entry ${String(drop[0])} has term ${String(drop[2])}, below the previous term ${
        String(drop[1])
      }`,
    );
  }
  const lastTerm = rows(db, "SELECT term FROM log WHERE idx = ?", max)[0]?.[0] as number;
  return { prefix, last: { term: lastTerm, index: max }, hardState, owner };
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
