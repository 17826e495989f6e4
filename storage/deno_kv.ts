// DenoKvLogStore: a durable Storage<C> on Deno KV (`Deno.openKv`, needs --unstable-kv), one store per file.

import {
  type Cursor,
  type Index,
  type IndexRange,
  isIndex,
  type Term,
} from "../lib/primitives/cursor.ts";
import { copyBytes } from "../lib/wire/bytes.ts";
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

// ---------------------------------------------------------------------------
// Layout and limits

/** The on-disk format this file writes (`["meta"].format`). */
const FORMAT = 2;
/**
 * The format before packed records: every entry record holds one entry. This
 * file reads it as it is and marks the store as {@link FORMAT} when opening it.
 */
const FORMAT_SINGLE = 1;

/** Largest value written; Deno KV takes 65 536 bytes, the rest is margin. */
const VALUE_MAX = 65_000;
/** Mutations per atomic commit; Deno KV takes 1 000. */
const COMMIT_MUTATIONS = 990;
/** Bytes per atomic commit, keys included; Deno KV takes 819 200. */
const COMMIT_BYTES = 768 * 1024;
/** What one mutation's key (and bookkeeping) is budgeted at; real keys are under 32 bytes. */
const KEY_COST = 64;
/** Room kept in every commit for the `["bounds"]` record (about 80 bytes). */
const BOUNDS_COST = 512;
/** Records fetched per `kv.list` round trip. */
const LIST_BATCH = 500;
/** Largest encoded entry put in a packed record; larger ones get a record of their own. */
const PACK_ENTRY_MAX = 8 * 1024;

/** First byte of an entry record that holds the encoded entry itself. */
const TAG_INLINE = 1;
/** First byte of an entry record whose encoded entry is split into chunks. */
const TAG_CHUNKED = 2;
/** First byte of an entry record that holds several consecutive entries. */
const TAG_PACKED = 3;
/** Tag byte and the term as a float64. */
const INLINE_HEADER = 9;
/** Tag, term, chunk count (uint32) and total size (float64). */
const CHUNKED_HEADER = 21;
/** Tag and entry count (uint32). */
const PACKED_HEADER = 5;
/** In a packed record, before each encoded entry: its term (float64) and length (uint32). */
const PACKED_ENTRY_HEADER = 12;

const META_KEY: Deno.KvKey = ["meta"];
const BOUNDS_KEY: Deno.KvKey = ["bounds"];
const HARD_STATE_KEY: Deno.KvKey = ["hs"];
const ENTRY = "e";
const CHUNK = "c";

const ON_OTHER_RUNTIME =
  "Cannot open DenoKvLogStore: Deno KV is only available on Deno with --unstable-kv (on Bun use BunSqliteLogStore from storage/bun_sqlite.ts)";
const WITHOUT_FLAG =
  'Cannot open DenoKvLogStore: Deno.openKv is unavailable (run Deno with --unstable-kv, or add "kv" to "unstable" in deno.json)';

/**
 * The part of the log that exists: entries `prefixIndex + 1 ..= lastIndex`.
 * The only record that decides which entry records are visible.
 */
interface Bounds {
  readonly prefixIndex: Index;
  readonly prefixTerm: Term;
  readonly lastIndex: Index;
  readonly lastTerm: Term;
}

/** `["meta"]`: the format, and the owner once the store is claimed. */
interface Meta {
  readonly format: number;
  readonly group?: string;
  readonly member?: string;
}

/** The Deno APIs the store uses, looked up at `open` so importing this file never needs them. */
interface DenoApi {
  openKv(path: string): Promise<Deno.Kv>;
  open(path: string, options: Deno.OpenOptions): Promise<Deno.FsFile>;
  realPath(path: string): Promise<string>;
}

/**
 * Resolved paths of the stores open in this process. The lock file guards
 * against other processes; this guards against a second opener here, whatever
 * the platform's lock semantics within one process.
 */
const OPEN_PATHS = new Set<string>();

// ---------------------------------------------------------------------------
// The store

/**
 * A durable {@link Storage} on Deno KV: one KV file per store, holding one
 * member's log and hard state. Deno only, with `--unstable-kv` (or `"kv"` in
 * `deno.json`'s `"unstable"`); on Bun use `BunSqliteLogStore`.
 *
 * **Durability.** Every method that changes the store resolves after its
 * atomic commit returned. Deno's local KV backend is SQLite (`denokv_sqlite`)
 * opened in WAL mode; neither Deno nor denokv sets `synchronous`, and the
 * bundled SQLite keeps its compiled default, `FULL`, so each commit fsyncs
 * the WAL before it returns (traced on Deno 2.9.6: one `fsync` of the `-wal`
 * file per commit). A resolved write therefore survives a crash of the
 * process and, on storage that honours `fsync`, a power loss. On macOS,
 * SQLite's `fsync` is not `F_FULLFSYNC`, so a power loss may lose the last
 * commits there. None of this is a documented promise of Deno KV: it is what
 * the current implementation does.
 *
 * **Atomicity.** Deno KV limits a value to 64 KiB and an atomic commit to
 * 1 000 mutations and 800 KiB, so consecutive small entries share a record,
 * an entry whose encoding is over 64 KiB is split into chunks and a large
 * batch into several commits. The `["bounds"]` record alone decides which
 * entries exist: an append writes entry records past it (invisible) and moves
 * it, in each commit, over the records that are complete by then. A crash
 * mid-append leaves a prefix of the batch, never a hole or half an entry.
 * Truncate, prune and reset rewrite `["bounds"]` in one commit, which also
 * rewrites the one shared record that the new bounds cut through (truncate
 * keeps its head under its own key, prune writes its tail under the key of
 * the first entry kept), and then delete what the bounds no longer cover.
 * `open` removes what a crash left outside the bounds.
 *
 * **Single opener.** `open` takes an exclusive lock (`flock`) on `${path}.lock`
 * (beside the real file when `path` is a symlink), which the OS releases when
 * the process dies, and refuses a second opener in this process as well. The
 * lock file stays on disk after `close`.
 *
 * Layout (format 2): `["meta"]` `{ format, group?, member? }`, `["hs"]` the hard
 * state, `["bounds"]` `{ prefixIndex, prefixTerm, lastIndex, lastTerm }`, and
 * entry records keyed by the index of their first entry, `["e", first]`, whose
 * bytes start with a tag: a packed record (3) holds the entry count (uint32),
 * then for each entry its term (float64), its length (uint32) and the encoded
 * entry; an inline record (1) holds one entry's term and encoding; a chunked
 * record (2) one entry's term, chunk count and size, its chunks being
 * `["c", first, k]`. Small entries (encodings up to 8 KiB) are packed, up to
 * about 64 KiB a record. The records in the bounds tile them exactly: the
 * first starts at `prefixIndex + 1`, each starts where the one before ends,
 * the last ends at `lastIndex`. A store of format 1 (one entry per record) is
 * read as it is and marked format 2 when opened. Entries are encoded with
 * `encodeEntry` and come back from `get` as new objects equal to the appended
 * ones.
 *
 * `last`, `available`, `termAt` and `loadHardState` answer from memory; `get`
 * and `getRange` read KV (`getRange` in one range scan).
 *
 * @example
 * ```ts
 * import { DenoKvLogStore } from "@mosaik/mosaik/storage/deno_kv";
 *
 * const dir = await Deno.makeTempDir();
 * const path = `${dir}/node-1.kv`;
 * try {
 *   const store = await DenoKvLogStore.open<string>(path);
 *   await store.append([{ index: 1, term: 1, command: "set x" }]);
 *   await store.saveHardState({ term: 1 });
 *   await store.close();
 *
 *   await using reopened = await DenoKvLogStore.open<string>(path); // e.g. after a restart
 *   const entry = await reopened.get(1);
 *   if (entry?.command !== "set x" || reopened.loadHardState()?.term !== 1) {
 *     throw new Error("the log and hard state survive");
 *   }
 * } finally {
 *   await Deno.remove(dir, { recursive: true });
 * }
 * ```
 */
export class DenoKvLogStore<C = unknown> implements Storage<C>, AsyncDisposable {
  /** The path the store was opened with (the KV file; the lock is `${path}.lock`). */
  readonly path: string;

  readonly #resolved: string;
  readonly #kv: Deno.Kv;
  readonly #lock: Deno.FsFile;
  #bounds: Bounds;
  #hardState: HardState | undefined;
  #owner: StoreOwner | undefined;
  /** The terms of the entries in the bounds, as runs. */
  readonly #terms: TermRuns;
  /** Chunk counts of the chunked entries in the bounds, so deleting them needs no read. */
  readonly #chunked: Map<Index, number>;
  /** The keys (first indexes) of the entry records in the bounds. */
  readonly #records: RecordStarts;
  /**
   * True while records outside the bounds may remain because deleting them
   * failed; the next append removes them first, as `open` would.
   */
  #garbage = false;
  /** The last queued operation; every KV access runs after the one before it. */
  #tail: Promise<unknown> = Promise.resolve();
  #closed = false;
  #closing: Promise<void> | undefined;

  private constructor(
    path: string,
    resolved: string,
    kv: Deno.Kv,
    lock: Deno.FsFile,
    state: Loaded,
  ) {
    this.path = path;
    this.#resolved = resolved;
    this.#kv = kv;
    this.#lock = lock;
    this.#bounds = state.bounds;
    this.#hardState = state.hardState;
    this.#owner = state.owner;
    this.#terms = state.terms;
    this.#chunked = state.chunked;
    this.#records = state.records;
  }

  /**
   * Opens the store at `path`, creating it when the file does not exist, after
   * locking `${path}.lock`. Checks that the file is a mosaik log store of this
   * format whose records agree (the entry records tile the bounds exactly,
   * terms never decrease), then deletes what an interrupted write left outside
   * the bounds; a store of format 1 is then marked as this format. On an error
   * nothing is changed and the lock is released.
   *
   * @param path the KV file; its directory must exist
   * @returns the open store
   * @throws {Error} when Deno KV is unavailable (on Bun, or on Deno without `--unstable-kv`),
   *   or the directory does not exist
   * @throws {TypeError} when `path` is empty or `:memory:`
   * @throws {StoreLockedError} when another opener, in this or another process, holds the store
   * @throws {StoreCorruptError} when the file is not a database, not a mosaik log store, or its
   *   records contradict each other
   * @throws {StoreVersionError} when the store was written in another format version
   *
   * @example One opener at a time
   * ```ts
   * import { DenoKvLogStore } from "@mosaik/mosaik/storage/deno_kv";
   * import { StoreLockedError } from "@mosaik/mosaik/storage/errors";
   *
   * const dir = await Deno.makeTempDir();
   * try {
   *   await using store = await DenoKvLogStore.open(`${dir}/node-1.kv`);
   *   try {
   *     await DenoKvLogStore.open(`${dir}/node-1.kv`); // a second opener is refused
   *     throw new Error("unreachable");
   *   } catch (err) {
   *     if (!(err instanceof StoreLockedError)) throw err;
   *   }
   *   if (store.last().index !== 0) throw new Error("a new store is empty");
   * } finally {
   *   await Deno.remove(dir, { recursive: true });
   * }
   * ```
   */
  static async open<C = unknown>(path: string): Promise<DenoKvLogStore<C>> {
    const api = denoApi();
    if (typeof path !== "string" || path === "" || path === ":memory:") {
      throw new TypeError(
        "Cannot open DenoKvLogStore: path must name a file (for a store in memory use InMemoryLogStore)",
      );
    }
    const resolved = await resolvePath(api, path);
    if (OPEN_PATHS.has(resolved)) throw new StoreLockedError(path);
    OPEN_PATHS.add(resolved);
    let lock: Deno.FsFile | undefined;
    let kv: Deno.Kv | undefined;
    try {
      lock = await api.open(`${resolved}.lock`, { read: true, write: true, create: true });
      if (!(await lock.tryLock(true))) throw new StoreLockedError(path);
      try {
        kv = await api.openKv(path);
      } catch (err) {
        if (err instanceof Error && /not a database/i.test(err.message)) {
          throw new StoreCorruptError(path, "not a Deno KV database", { cause: err });
        }
        throw err;
      }
      const state = await load(kv, path);
      await removeGarbage(kv, state.bounds);
      if (state.format !== FORMAT) {
        // Marked with this format, so older code refuses the store instead of misreading it.
        const meta: Meta = { format: FORMAT, ...state.owner };
        await kv.atomic().set(META_KEY, meta).commit();
      }
      return new DenoKvLogStore<C>(path, resolved, kv, lock, state);
    } catch (err) {
      kv?.close();
      // Closing the file releases its lock.
      if (lock !== undefined) closeQuietly(lock);
      OPEN_PATHS.delete(resolved);
      throw err;
    }
  }

  /**
   * Appends `entries` after the last entry; resolves once they are durable.
   * Consecutive small entries share a record. A batch that fits one commit
   * (up to about 760 KiB and 990 records) is one commit; a larger one is
   * split, each commit making complete records visible.
   * The batch is checked and encoded before anything is written, so a rejected
   * batch changes nothing.
   *
   * @param entries the entries, starting at `last().index + 1` (the array is copied)
   * @throws {RangeError} when the batch does not start at `last().index + 1`, is not contiguous or lowers the term
   * @throws {TypeError} when an index or term is not a number
   * @throws {EncodingError} when a command is not CBOR-encodable
   * @throws {Error} when the store is closed
   */
  async append(entries: readonly LogEntry<C>[]): Promise<void> {
    this.#assertOpen("append");
    const batch = entries.slice();
    if (batch.length === 0) return;
    await this.#exclusive(async () => {
      checkBatch({ term: this.#bounds.lastTerm, index: this.#bounds.lastIndex }, batch);
      const records = encodeRecords(batch);
      if (this.#garbage) {
        // An earlier deletion failed: what it left could lie where these records go.
        await removeGarbage(this.#kv, this.#bounds);
        this.#garbage = false;
      }
      await this.#write(batch, records);
    });
  }

  /**
   * The indices `get` can return, inclusive; empty when `end === start - 1`.
   *
   * @throws {Error} when the store is closed
   */
  available(): IndexRange {
    this.#assertOpen("read the available range");
    return { start: this.#bounds.prefixIndex + 1, end: this.#bounds.lastIndex };
  }

  /**
   * The entry at `index`, read from KV, or `undefined` when it is pruned,
   * truncated or never appended.
   *
   * @throws {StoreCorruptError} when the entry's record or chunks are missing or do not decode
   * @throws {Error} when the store is closed
   */
  async get(index: Index): Promise<LogEntry<C> | undefined> {
    this.#assertOpen("get an entry");
    return await this.#exclusive(async () => {
      if (!this.#holds(index)) return undefined;
      const r = this.#records.find(index);
      const first = this.#records.at(r);
      const record = await this.#kv.get<unknown>(entryKey(first));
      if (record.value === null) throw this.#corrupt(`entry ${index} is missing`);
      const parsed = this.#parse(r, record.value);
      return await this.#decode(parsed, first, index);
    });
  }

  /**
   * The available entries from `start` to `end` inclusive, in a new array,
   * read with one range scan (plus one per chunked entry).
   *
   * @throws {StoreCorruptError} when an entry's record or chunks are missing or do not decode
   * @throws {Error} when the store is closed
   */
  async getRange(start: Index, end: Index): Promise<LogEntry<C>[]> {
    this.#assertOpen("get a range");
    return await this.#exclusive(async () => {
      const from = Math.max(Math.ceil(start), this.#bounds.prefixIndex + 1);
      const to = Math.min(Math.floor(end), this.#bounds.lastIndex);
      if (Number.isNaN(from) || Number.isNaN(to) || to < from) return [];
      const out: LogEntry<C>[] = [];
      let r = this.#records.find(from);
      const last = this.#records.find(to);
      const records = this.#kv.list<unknown>(
        { start: entryKey(this.#records.at(r)), end: entryKey(to + 1) },
        { batchSize: Math.min(last - r + 1, LIST_BATCH) },
      );
      for await (const record of records) {
        const first = this.#records.at(r);
        if (record.key[1] !== first) {
          throw this.#corrupt(`entry ${Math.max(first, from)} is missing`);
        }
        const parsed = this.#parse(r, record.value);
        const stop = Math.min(first + parsed.count - 1, to);
        for (let index = Math.max(first, from); index <= stop; index++) {
          out.push(await this.#decode(parsed, first, index));
        }
        r++;
        if (r > last) break;
      }
      if (r <= last) throw this.#corrupt(`entry ${Math.max(this.#records.at(r), from)} is missing`);
      return out;
    });
  }

  /**
   * Removes the entries from `from` to the end; a `from` past the end does
   * nothing. One commit moves the bounds (and rewrites a shared record that
   * `from` falls inside to hold only the entries before it), then the removed
   * records are deleted.
   *
   * @throws {StoreCorruptError} when the record `from` falls inside is missing or malformed
   * @throws {RangeError} when `from` is at or below the pruned prefix
   * @throws {Error} when the store is closed
   */
  async truncate(from: Index): Promise<void> {
    this.#assertOpen("truncate");
    await this.#exclusive(async () => {
      const old = this.#bounds;
      checkTruncate(from, old.prefixIndex);
      if (from > old.lastIndex) return;
      const lastTerm = this.#termAt(from - 1);
      if (lastTerm === undefined) {
        throw new Error(`Cannot truncate: the term of ${from - 1} is unknown`);
      }
      const r = this.#records.find(from);
      const first = this.#records.at(r);
      const op = this.#kv.atomic();
      if (first < from) {
        // A packed record that the new end cuts through keeps its head, in the same commit.
        const parsed = await this.#read(r);
        op.set(entryKey(first), packedPart(parsed, 0, from - first));
      }
      await this.#commitBounds({ ...old, lastIndex: from - 1, lastTerm }, op);
      this.#terms.dropFrom(from);
      await this.#deleteRecords(this.#records.dropFrom(first < from ? r + 1 : r));
    });
  }

  /**
   * The cursor of the last entry, or of the pruned prefix when no entry is kept.
   *
   * @throws {Error} when the store is closed
   */
  last(): Cursor {
    this.#assertOpen("read the last entry");
    return { term: this.#bounds.lastTerm, index: this.#bounds.lastIndex };
  }

  /**
   * The term at `index` (from memory): 0 for the sentinel, the prefix term at
   * the prefix, `undefined` when unknown.
   *
   * @throws {Error} when the store is closed
   */
  termAt(index: Index): Term | undefined {
    this.#assertOpen("read a term");
    return this.#termAt(index);
  }

  /**
   * Drops the entries up to and including `upTo`, remembering its cursor; at or
   * below the current prefix it does nothing. One commit moves the bounds (and
   * writes the kept tail of a shared record that `upTo` falls inside as a
   * record of its own), then the dropped records are deleted.
   *
   * @throws {StoreCorruptError} when the record `upTo` falls inside is missing or malformed
   * @throws {RangeError} when `upTo` is past the last entry
   * @throws {Error} when the store is closed
   */
  async prunePrefix(upTo: Index): Promise<void> {
    this.#assertOpen("prune");
    await this.#exclusive(async () => {
      const old = this.#bounds;
      if (!checkPrune(upTo, old.prefixIndex, old.lastIndex)) return;
      const prefixTerm = this.#termAt(upTo);
      if (prefixTerm === undefined) throw new Error(`Cannot prune: the term of ${upTo} is unknown`);
      const op = this.#kv.atomic();
      let kept = this.#records.find(upTo + 1);
      let tail = false;
      if (upTo < old.lastIndex && this.#records.at(kept) <= upTo) {
        // A packed record that the new start cuts through: its tail becomes a record of its
        // own, keyed by its first entry, in the same commit.
        const first = this.#records.at(kept);
        const parsed = await this.#read(kept);
        op.set(entryKey(upTo + 1), packedPart(parsed, upTo + 1 - first, parsed.count));
        kept++;
        tail = true;
      } else if (upTo >= old.lastIndex) {
        kept = this.#records.length;
      }
      await this.#commitBounds({ ...old, prefixIndex: upTo, prefixTerm }, op);
      this.#terms.dropTo(upTo, old.lastIndex);
      const removed = this.#records.dropBefore(kept);
      if (tail) this.#records.unshift(upTo + 1);
      await this.#deleteRecords(removed);
    });
  }

  /**
   * Empties the log and makes `last()` equal to `cursor`. One commit moves the
   * bounds, then every entry record is deleted.
   *
   * @throws {RangeError} when `cursor` is not a valid cursor or puts a non-zero term at index 0
   * @throws {Error} when the store is closed
   */
  async resetTo(cursor: Cursor): Promise<void> {
    this.#assertOpen("reset");
    await this.#exclusive(async () => {
      const next = checkReset(cursor);
      await this.#commitBounds({
        prefixIndex: next.index,
        prefixTerm: next.term,
        lastIndex: next.index,
        lastTerm: next.term,
      }, this.#kv.atomic());
      this.#terms.clear();
      await this.#deleteRecords(this.#records.dropFrom(0));
    });
  }

  /**
   * A copy of the saved hard state (from memory), or `undefined` if none was saved.
   *
   * @throws {Error} when the store is closed
   */
  loadHardState(): HardState | undefined {
    this.#assertOpen("load the hard state");
    return this.#hardState === undefined ? undefined : copyHardState(this.#hardState);
  }

  /**
   * Replaces the hard state with a copy of `state`; resolves once it is durable.
   *
   * @throws {RangeError|TypeError} when the term is not a non-negative safe integer
   * @throws {TypeError} when `votedFor` is present and not a string
   * @throws {Error} when the store is closed
   */
  async saveHardState(state: HardState): Promise<void> {
    this.#assertOpen("save the hard state");
    const next = checkHardState(state);
    await this.#exclusive(async () => {
      await this.#commit(this.#kv.atomic().set(HARD_STATE_KEY, next));
      this.#hardState = next;
    });
  }

  /**
   * Ties the store to one member of one group. The first claim is recorded
   * durably in `["meta"]`; later claims by the same owner change nothing.
   *
   * @throws {StoreOwnerError} when the store belongs to another group or member (nothing changes)
   * @throws {TypeError} when the owner's group or member is not a non-empty string
   * @throws {Error} when the store is closed
   */
  async claim(owner: StoreOwner): Promise<void> {
    this.#assertOpen("claim");
    await this.#exclusive(async () => {
      const next = checkClaim(this.path, this.#owner, owner);
      if (this.#owner !== undefined) return;
      const meta: Meta = { format: FORMAT, group: next.group, member: next.member };
      await this.#commit(this.#kv.atomic().set(META_KEY, meta));
      this.#owner = next;
    });
  }

  /**
   * Waits for the operations already started, then closes KV and releases
   * the lock. Idempotent; every other method throws afterwards.
   */
  close(): Promise<void> {
    this.#closing ??= this.#shutdown();
    return this.#closing;
  }

  /** Same as {@link close}, for `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  // -------------------------------------------------------------------------

  async #shutdown(): Promise<void> {
    this.#closed = true;
    await this.#tail;
    try {
      this.#kv.close();
    } finally {
      closeQuietly(this.#lock);
      OPEN_PATHS.delete(this.#resolved);
    }
  }

  #assertOpen(what: string): void {
    if (this.#closed) throw new Error(`Cannot ${what}: the store ${this.path} is closed`);
  }

  /** Runs `fn` after every operation queued before it. */
  #exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const result = this.#tail.then(fn);
    this.#tail = result.catch(() => {});
    return result;
  }

  #termAt(index: Index): Term | undefined {
    // The sentinel's term is 0 in every log, pruned or not.
    if (index === 0) return 0;
    if (index === this.#bounds.prefixIndex) return this.#bounds.prefixTerm;
    return this.#holds(index) ? this.#terms.at(index) : undefined;
  }

  /** True when `index` is an integer inside the bounds. */
  #holds(index: Index): boolean {
    return Number.isInteger(index) && index > this.#bounds.prefixIndex &&
      index <= this.#bounds.lastIndex;
  }

  #corrupt(detail: string, cause?: unknown): StoreCorruptError {
    return new StoreCorruptError(this.path, detail, cause === undefined ? undefined : { cause });
  }

  async #commit(op: Deno.AtomicOperation): Promise<void> {
    const result = await op.commit();
    // Only a failed check makes a commit not ok, and no operation here has checks.
    if (!result.ok) throw new Error(`Cannot write store ${this.path}: the commit was refused`);
  }

  /** Commits `op` with the bounds set to `bounds`, then takes them in memory. */
  async #commitBounds(bounds: Bounds, op: Deno.AtomicOperation): Promise<void> {
    await this.#commit(op.set(BOUNDS_KEY, bounds));
    this.#bounds = bounds;
  }

  /**
   * Writes the records of `batch` in as few commits as the limits allow. Each
   * commit also moves `["bounds"]` over the records complete by then, and
   * memory follows each commit, so a failure leaves store and memory at a prefix.
   */
  async #write(batch: readonly LogEntry<C>[], records: readonly EncodedRecord[]): Promise<void> {
    const base = batch[0]!.index;
    let op = this.#kv.atomic();
    let mutations = 0;
    let bytes = BOUNDS_COST;
    let complete = -1;
    let visible = -1;
    const flush = async (): Promise<void> => {
      let bounds = this.#bounds;
      if (complete > visible) {
        const end = records[complete]!;
        bounds = { ...bounds, lastIndex: end.first + end.count - 1, lastTerm: end.lastTerm };
        op.set(BOUNDS_KEY, bounds);
      }
      if (mutations > 0 || complete > visible) await this.#commit(op);
      if (complete > visible) {
        for (let i = visible + 1; i <= complete; i++) {
          const r = records[i]!;
          for (let k = r.first - base; k < r.first - base + r.count; k++) {
            const e = batch[k]!;
            this.#terms.push(e.index, e.term);
          }
          this.#records.push(r.first);
          if (r.chunks.length > 0) this.#chunked.set(r.first, r.chunks.length);
        }
        this.#bounds = bounds;
        visible = complete;
      }
      op = this.#kv.atomic();
      mutations = 0;
      bytes = BOUNDS_COST;
    };
    // Keep one mutation free for the bounds record.
    const fits = (cost: number) => mutations + 1 < COMMIT_MUTATIONS && bytes + cost <= COMMIT_BYTES;
    const put = (key: Deno.KvKey, value: Uint8Array, cost: number): void => {
      op.set(key, value);
      mutations++;
      bytes += cost;
    };
    for (const [i, record] of records.entries()) {
      for (const [k, chunk] of record.chunks.entries()) {
        const cost = chunk.byteLength + KEY_COST;
        if (!fits(cost)) await flush();
        put(chunkKey(record.first, k), chunk, cost);
      }
      // The entry record goes last, so it never reaches KV without its chunks.
      const cost = record.value.byteLength + KEY_COST;
      if (!fits(cost)) await flush();
      put(entryKey(record.first), record.value, cost);
      complete = i;
    }
    await flush();
  }

  /**
   * Deletes the records keyed `firsts` and their chunks, which the bounds no
   * longer cover. Should that fail, what it leaves is removed before the next
   * append: with records shared by entries, a record left behind would not
   * be overwritten by the entries appended over its key.
   */
  async #deleteRecords(firsts: readonly Index[]): Promise<void> {
    const keys: Deno.KvKey[] = [];
    for (const first of firsts) {
      keys.push(entryKey(first));
      const chunks = this.#chunked.get(first);
      if (chunks === undefined) continue;
      for (let k = 0; k < chunks; k++) keys.push(chunkKey(first, k));
      this.#chunked.delete(first);
    }
    if (this.#garbage) {
      // An earlier deletion failed: sweep everything outside the bounds, these records included.
      await removeGarbage(this.#kv, this.#bounds);
      this.#garbage = false;
      return;
    }
    if (keys.length === 0) return;
    this.#garbage = true;
    // The records are invisible already, so the deletions need not be atomic together
    // (an entry of over 64 MB has more chunks than one commit takes).
    for (let at = 0; at < keys.length; at += COMMIT_MUTATIONS) {
      const op = this.#kv.atomic();
      for (const key of keys.slice(at, at + COMMIT_MUTATIONS)) op.delete(key);
      await this.#commit(op);
    }
    this.#garbage = false;
  }

  /** Reads and parses the `r`th record in the bounds. */
  async #read(r: number): Promise<ParsedRecord> {
    const first = this.#records.at(r);
    const record = await this.#kv.get<unknown>(entryKey(first));
    if (record.value === null) throw this.#corrupt(`entry ${first} is missing`);
    return this.#parse(r, record.value);
  }

  /** Parses `value`, the `r`th record in the bounds, checking it holds the entries it should. */
  #parse(r: number, value: unknown): ParsedRecord {
    const first = this.#records.at(r);
    const parsed = parseRecord(value, true);
    if (parsed === undefined) throw this.#corrupt(`entry ${first} has a malformed record`);
    const next = r + 1 < this.#records.length
      ? this.#records.at(r + 1)
      : this.#bounds.lastIndex + 1;
    if (parsed.count !== next - first) {
      throw this.#corrupt(
        `the record of entry ${first} holds ${parsed.count} entries, not ${next - first}`,
      );
    }
    return parsed;
  }

  /** Entry `index` of the record keyed `first`, reading its chunks when it has any. */
  async #decode(record: ParsedRecord, first: Index, index: Index): Promise<LogEntry<C>> {
    const k = index - first;
    const term = recordTerm(record, k);
    // Copied out of the record (with the wire's allocator: the entry keeps the bytes as its
    // encoding, and they decode without a hidden copy).
    const bytes = record.chunks > 0
      ? await this.#readChunks(index, record.chunks, record.size)
      : copyBytes(recordBytes(record, k));
    let entry: LogEntry<C>;
    try {
      entry = decodeOwnedEntry<C>(bytes);
    } catch (err) {
      throw this.#corrupt(`entry ${index} does not decode`, err);
    }
    if (entry.index !== index || entry.term !== term) {
      throw this.#corrupt(
        `entry ${index} holds entry ${entry.index} of term ${entry.term}, its record says term ${term}`,
      );
    }
    return entry;
  }

  async #readChunks(index: Index, count: number, size: number): Promise<Uint8Array> {
    const out = new Uint8Array(size);
    let k = 0;
    let offset = 0;
    const chunks = this.#kv.list<unknown>(
      { start: chunkKey(index, 0), end: chunkKey(index, count) },
      { batchSize: Math.min(count, 100) },
    );
    for await (const chunk of chunks) {
      if (chunk.key[2] !== k) break;
      const value = chunk.value;
      if (!(value instanceof Uint8Array) || offset + value.byteLength > size) {
        throw this.#corrupt(`chunk ${k} of entry ${index} is malformed`);
      }
      out.set(value, offset);
      offset += value.byteLength;
      k++;
    }
    if (k < count) throw this.#corrupt(`chunk ${k} of entry ${index} is missing`);
    if (offset !== size) {
      throw this.#corrupt(`the chunks of entry ${index} hold ${offset} bytes, not ${size}`);
    }
    return out;
  }
}

// ---------------------------------------------------------------------------
// Records

/** An entry record ready to write, and the chunks it refers to. */
interface EncodedRecord {
  /** The index of its first entry, its key. */
  readonly first: Index;
  readonly count: number;
  readonly lastTerm: Term;
  readonly value: Uint8Array;
  readonly chunks: readonly Uint8Array[];
}

/** What an entry record says. */
interface ParsedRecord {
  readonly value: Uint8Array;
  readonly view: DataView;
  readonly tag: number;
  /** The entries it holds (1 unless packed). */
  readonly count: number;
  /**
   * Packed: where each entry's header starts, then the end of the value.
   * Inline: where the encoded entry starts, then the end. Chunked: empty.
   */
  readonly offsets: readonly number[];
  /** Chunked: the chunk count and the encoded size; 0 otherwise. */
  readonly chunks: number;
  readonly size: number;
}

function entryKey(index: Index): Deno.KvKey {
  return [ENTRY, index];
}

function chunkKey(index: Index, k: number): Deno.KvKey {
  return [CHUNK, index, k];
}

/**
 * The records of a batch: runs of small entries packed up to {@link VALUE_MAX},
 * each larger entry in a record of its own. Encodes every entry first, so a
 * batch that cannot be encoded writes nothing.
 */
function encodeRecords<C>(batch: readonly LogEntry<C>[]): EncodedRecord[] {
  const out: EncodedRecord[] = [];
  let pack: Uint8Array[] = [];
  let packFirst = 0;
  let packSize = PACKED_HEADER;
  const close = (): void => {
    if (pack.length === 0) return;
    const value = new Uint8Array(packSize);
    const view = new DataView(value.buffer);
    value[0] = TAG_PACKED;
    view.setUint32(1, pack.length);
    let at = PACKED_HEADER;
    for (const [k, bytes] of pack.entries()) {
      view.setFloat64(at, batch[packFirst + k]!.term);
      view.setUint32(at + 8, bytes.byteLength);
      value.set(bytes, at + PACKED_ENTRY_HEADER);
      at += PACKED_ENTRY_HEADER + bytes.byteLength;
    }
    const last = batch[packFirst + pack.length - 1]!;
    out.push({
      first: batch[packFirst]!.index,
      count: pack.length,
      lastTerm: last.term,
      value,
      chunks: [],
    });
    pack = [];
    packSize = PACKED_HEADER;
  };
  for (const [i, entry] of batch.entries()) {
    const bytes = entryBytes(entry);
    if (bytes.byteLength > PACK_ENTRY_MAX) {
      close();
      out.push(encodeSingle(entry, bytes));
      continue;
    }
    if (packSize + PACKED_ENTRY_HEADER + bytes.byteLength > VALUE_MAX) close();
    if (pack.length === 0) packFirst = i;
    pack.push(bytes);
    packSize += PACKED_ENTRY_HEADER + bytes.byteLength;
  }
  close();
  return out;
}

/** The record of one entry: inline when it fits a value, chunked otherwise. */
function encodeSingle<C>(entry: LogEntry<C>, bytes: Uint8Array): EncodedRecord {
  const { index, term } = entry;
  if (INLINE_HEADER + bytes.byteLength <= VALUE_MAX) {
    const value = new Uint8Array(INLINE_HEADER + bytes.byteLength);
    value[0] = TAG_INLINE;
    new DataView(value.buffer).setFloat64(1, term);
    value.set(bytes, INLINE_HEADER);
    return { first: index, count: 1, lastTerm: term, value, chunks: [] };
  }
  const chunks: Uint8Array[] = [];
  for (let at = 0; at < bytes.byteLength; at += VALUE_MAX) {
    chunks.push(bytes.subarray(at, at + VALUE_MAX));
  }
  const value = new Uint8Array(CHUNKED_HEADER);
  const view = new DataView(value.buffer);
  value[0] = TAG_CHUNKED;
  view.setFloat64(1, term);
  view.setUint32(9, chunks.length);
  view.setFloat64(13, bytes.byteLength);
  return { first: index, count: 1, lastTerm: term, value, chunks };
}

/**
 * The parsed entry record, or `undefined` when `value` is not one (packed
 * records only when `packed`): every count, length and term is checked, and
 * a packed record must end with its last entry.
 */
function parseRecord(value: unknown, packed: boolean): ParsedRecord | undefined {
  if (!(value instanceof Uint8Array) || value.byteLength < 1) return undefined;
  const view = new DataView(value.buffer, value.byteOffset, value.byteLength);
  const tag = value[0]!;
  const size = value.byteLength;
  if (tag === TAG_PACKED) {
    if (!packed || size < PACKED_HEADER) return undefined;
    const count = view.getUint32(1);
    if (count < 1) return undefined;
    const offsets: number[] = [];
    let at = PACKED_HEADER;
    for (let k = 0; k < count; k++) {
      if (at + PACKED_ENTRY_HEADER > size || !isIndex(view.getFloat64(at))) return undefined;
      offsets.push(at);
      at += PACKED_ENTRY_HEADER + view.getUint32(at + 8);
      if (at > size) return undefined;
    }
    if (at !== size) return undefined;
    offsets.push(size);
    return { value, view, tag, count, offsets, chunks: 0, size: 0 };
  }
  if (size < INLINE_HEADER || !isIndex(view.getFloat64(1))) return undefined;
  if (tag === TAG_INLINE) {
    return { value, view, tag, count: 1, offsets: [INLINE_HEADER, size], chunks: 0, size: 0 };
  }
  if (tag !== TAG_CHUNKED || size !== CHUNKED_HEADER) return undefined;
  const chunks = view.getUint32(9);
  const total = view.getFloat64(13);
  if (chunks < 1 || !isIndex(total)) return undefined;
  return { value, view, tag, count: 1, offsets: [], chunks, size: total };
}

/** The term of the record's `k`th entry. */
function recordTerm(record: ParsedRecord, k: number): Term {
  return record.view.getFloat64(record.tag === TAG_PACKED ? record.offsets[k]! : 1);
}

/** The encoding of the record's `k`th entry (a view into the record), unless it is chunked. */
function recordBytes(record: ParsedRecord, k: number): Uint8Array {
  const packed = record.tag === TAG_PACKED;
  const start = record.offsets[k]! + (packed ? PACKED_ENTRY_HEADER : 0);
  return record.value.subarray(start, record.offsets[k + 1]!);
}

/**
 * A packed record of entries `from` to `to - 1` (positions in `record`), or
 * for an inline record the record itself.
 */
function packedPart(record: ParsedRecord, from: number, to: number): Uint8Array {
  if (record.tag !== TAG_PACKED) return record.value;
  const start = record.offsets[from]!;
  const end = record.offsets[to]!;
  const value = new Uint8Array(PACKED_HEADER + end - start);
  value[0] = TAG_PACKED;
  new DataView(value.buffer).setUint32(1, to - from);
  value.set(record.value.subarray(start, end), PACKED_HEADER);
  return value;
}

/**
 * The keys (first indexes) of the entry records in the bounds, in order; the
 * record at position `r` holds the entries from its key to the next key - 1
 * (the last one to the last index).
 */
class RecordStarts {
  #firsts: Index[] = [];

  get length(): number {
    return this.#firsts.length;
  }

  /** The key of the `r`th record. */
  at(r: number): Index {
    return this.#firsts[r]!;
  }

  /** Adds a record after the last one. */
  push(first: Index): void {
    this.#firsts.push(first);
  }

  /** Adds a record before the first one. */
  unshift(first: Index): void {
    this.#firsts.unshift(first);
  }

  /** The position of the record holding `index`, which the caller knows is covered. */
  find(index: Index): number {
    return Math.max(0, lastAtOrBefore(this.#firsts, index));
  }

  /** Forgets the records from position `r` on; returns their keys. */
  dropFrom(r: number): Index[] {
    return this.#firsts.splice(r);
  }

  /** Forgets the records before position `r`; returns their keys. */
  dropBefore(r: number): Index[] {
    return this.#firsts.splice(0, r);
  }
}

/**
 * The terms of a run of log entries, kept as (first index, term) pairs: terms
 * change rarely, so this is small, and `termAt` needs no I/O.
 */
class TermRuns {
  #starts: Index[] = [];
  #terms: Term[] = [];

  /** Records the entry after the last one. */
  push(index: Index, term: Term): void {
    if (this.#terms.at(-1) !== term) {
      this.#starts.push(index);
      this.#terms.push(term);
    }
  }

  /** The term at `index`, which the caller knows is covered. */
  at(index: Index): Term | undefined {
    const r = this.#runOf(index);
    return r < 0 ? undefined : this.#terms[r];
  }

  /** Forgets `index` and everything after it. */
  dropFrom(index: Index): void {
    while ((this.#starts.at(-1) ?? -1) >= index) {
      this.#starts.pop();
      this.#terms.pop();
    }
  }

  /** Forgets everything up to and including `index`; `last` is the last covered index. */
  dropTo(index: Index, last: Index): void {
    if (index >= last) return this.clear();
    const r = this.#runOf(index + 1);
    if (r < 0) return;
    this.#starts.splice(0, r);
    this.#terms.splice(0, r);
    this.#starts[0] = index + 1;
  }

  clear(): void {
    this.#starts = [];
    this.#terms = [];
  }

  /** The position of the last run starting at or before `index`, or -1. */
  #runOf(index: Index): number {
    return lastAtOrBefore(this.#starts, index);
  }
}

/** The position of the last value at or below `index` in the ascending `sorted`, or -1. */
function lastAtOrBefore(sorted: readonly Index[], index: Index): number {
  let lo = 0;
  let hi = sorted.length - 1;
  let found = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    if (sorted[mid]! <= index) {
      found = mid;
      lo = mid + 1;
    } else {
      hi = mid - 1;
    }
  }
  return found;
}

// ---------------------------------------------------------------------------
// Opening

/** What `open` reads and checks before the store is usable. */
interface Loaded {
  readonly bounds: Bounds;
  readonly hardState: HardState | undefined;
  readonly owner: StoreOwner | undefined;
  readonly terms: TermRuns;
  readonly chunked: Map<Index, number>;
  readonly records: RecordStarts;
  /** The format the store was in; `open` marks it {@link FORMAT}. */
  readonly format: number;
}

function denoApi(): DenoApi {
  const deno = (globalThis as { Deno?: Partial<DenoApi> }).Deno;
  if (deno === undefined) throw new Error(ON_OTHER_RUNTIME);
  if (typeof deno.openKv !== "function") throw new Error(WITHOUT_FLAG);
  return deno as DenoApi;
}

/**
 * The real path of the file (symlinks resolved, or its directory's when the
 * file does not exist yet), so every name of one file finds one lock.
 */
async function resolvePath(api: DenoApi, path: string): Promise<string> {
  const cut = Math.max(path.lastIndexOf("/"), path.lastIndexOf("\\"));
  const dir = cut < 0 ? "." : cut === 0 ? path.slice(0, 1) : path.slice(0, cut);
  const base = path.slice(cut + 1);
  if (base === "" || base === "." || base === "..") {
    throw new TypeError(`Cannot open DenoKvLogStore ${path}: the path must name a file`);
  }
  try {
    return await api.realPath(path);
  } catch {
    // Not there yet: the store creates it.
  }
  try {
    return `${await api.realPath(dir)}/${base}`;
  } catch (err) {
    throw new Error(`Cannot open DenoKvLogStore ${path}: directory ${dir} is not accessible`, {
      cause: err,
    });
  }
}

/** Reads and checks the records; creates a fresh store in an empty file. */
async function load(kv: Deno.Kv, path: string): Promise<Loaded> {
  const corrupt = (detail: string) => new StoreCorruptError(path, detail);
  const [metaRecord, boundsRecord, hardRecord] = await kv.getMany<unknown[]>([
    META_KEY,
    BOUNDS_KEY,
    HARD_STATE_KEY,
  ]);
  if (metaRecord?.value == null) {
    for await (const _ of kv.list({ prefix: [] }, { limit: 1 })) {
      throw corrupt("not a mosaik log store: the file holds data but no meta record");
    }
    const bounds: Bounds = { prefixIndex: 0, prefixTerm: 0, lastIndex: 0, lastTerm: 0 };
    const meta: Meta = { format: FORMAT };
    const result = await kv.atomic().check({ key: META_KEY, versionstamp: null })
      .set(META_KEY, meta).set(BOUNDS_KEY, bounds).commit();
    if (!result.ok) throw new Error(`Cannot open DenoKvLogStore ${path}: it changed while opening`);
    return {
      bounds,
      hardState: undefined,
      owner: undefined,
      terms: new TermRuns(),
      chunked: new Map(),
      records: new RecordStarts(),
      format: FORMAT,
    };
  }
  const meta = metaRecord.value;
  if (typeof meta !== "object" || meta === null) throw corrupt("the meta record is malformed");
  const { format, group, member } = meta as Record<string, unknown>;
  if (format !== FORMAT && format !== FORMAT_SINGLE) {
    throw new StoreVersionError(path, format, FORMAT);
  }
  let owner: StoreOwner | undefined;
  if (group !== undefined || member !== undefined) {
    if (typeof group !== "string" || typeof member !== "string") {
      throw corrupt("the meta record has a malformed owner");
    }
    owner = { group, member };
  }
  const bounds = parseBounds(boundsRecord?.value);
  if (bounds === undefined) {
    throw corrupt(
      boundsRecord?.value == null
        ? "the bounds record is missing"
        : "the bounds record is malformed",
    );
  }
  const hardState = parseHardState(hardRecord?.value);
  if (hardState === null) throw corrupt("the hard state record is malformed");
  const scanned = await scanEntries(kv, path, bounds, format === FORMAT);
  return { bounds, hardState, owner, ...scanned, format };
}

function parseBounds(value: unknown): Bounds | undefined {
  if (typeof value !== "object" || value === null) return undefined;
  const { prefixIndex, prefixTerm, lastIndex, lastTerm } = value as Record<string, unknown>;
  if (!isIndex(prefixIndex) || !isIndex(prefixTerm) || !isIndex(lastIndex) || !isIndex(lastTerm)) {
    return undefined;
  }
  if (lastIndex < prefixIndex || lastTerm < prefixTerm) return undefined;
  if (prefixIndex === 0 && prefixTerm !== 0) return undefined;
  if (lastIndex === prefixIndex && lastTerm !== prefixTerm) return undefined;
  return { prefixIndex, prefixTerm, lastIndex, lastTerm };
}

/** The hard state; `undefined` when none was saved, `null` when the record is malformed. */
function parseHardState(value: unknown): HardState | undefined | null {
  if (value == null) return undefined;
  if (typeof value !== "object") return null;
  const { term, votedFor } = value as Record<string, unknown>;
  if (!isIndex(term)) return null;
  if (votedFor === undefined) return { term };
  return typeof votedFor === "string" ? { term, votedFor } : null;
}

/**
 * Reads every entry record in the bounds: they must tile the bounds (the
 * first keyed `prefixIndex + 1`, each keyed by the index after the one before,
 * the last ending at `lastIndex`), be well-formed (packed records only when
 * `packed`), terms must not decrease, and the last term must match the
 * bounds. Entries are decoded, and chunks checked, when they are read.
 */
async function scanEntries(
  kv: Deno.Kv,
  path: string,
  bounds: Bounds,
  packed: boolean,
): Promise<{ terms: TermRuns; chunked: Map<Index, number>; records: RecordStarts }> {
  const corrupt = (detail: string) => new StoreCorruptError(path, detail);
  const terms = new TermRuns();
  const chunked = new Map<Index, number>();
  const starts = new RecordStarts();
  const { prefixIndex, lastIndex } = bounds;
  let expected = prefixIndex + 1;
  let term = bounds.prefixTerm;
  if (lastIndex > prefixIndex) {
    const records = kv.list<unknown>(
      { start: entryKey(expected), end: entryKey(lastIndex + 1) },
      { batchSize: Math.min(lastIndex - prefixIndex, LIST_BATCH) },
    );
    for await (const record of records) {
      const key = record.key[1];
      if (typeof key === "number" && key < expected) {
        throw corrupt(`the record of entry ${key} overlaps the record before it`);
      }
      if (key !== expected) throw corrupt(`entry ${expected} is missing`);
      const parsed = parseRecord(record.value, packed);
      if (parsed === undefined) throw corrupt(`entry ${expected} has a malformed record`);
      if (expected + parsed.count - 1 > lastIndex) {
        throw corrupt(
          `the record of entry ${expected} holds ${parsed.count} entries, past the last entry ${lastIndex}`,
        );
      }
      starts.push(expected);
      if (parsed.chunks > 0) chunked.set(expected, parsed.chunks);
      for (let k = 0; k < parsed.count; k++, expected++) {
        const next = recordTerm(parsed, k);
        if (next < term) {
          throw corrupt(`the term decreases at entry ${expected} (${next} after ${term})`);
        }
        term = next;
        terms.push(expected, term);
      }
    }
  }
  if (expected <= lastIndex) throw corrupt(`entry ${expected} is missing`);
  if (term !== bounds.lastTerm) {
    throw corrupt(
      `the last entry ${lastIndex} has term ${term}, the bounds say ${bounds.lastTerm}`,
    );
  }
  return { terms, chunked, records: starts };
}

/** Deletes entry and chunk records outside the bounds: what an interrupted write left. */
async function removeGarbage(kv: Deno.Kv, bounds: Bounds): Promise<void> {
  const outside: Deno.KvListSelector[] = [
    { prefix: [ENTRY], end: entryKey(bounds.prefixIndex + 1) },
    { prefix: [ENTRY], start: entryKey(bounds.lastIndex + 1) },
    { prefix: [CHUNK], end: [CHUNK, bounds.prefixIndex + 1] },
    { prefix: [CHUNK], start: [CHUNK, bounds.lastIndex + 1] },
  ];
  let op = kv.atomic();
  let mutations = 0;
  for (const selector of outside) {
    for await (const record of kv.list(selector, { batchSize: LIST_BATCH })) {
      // Only index-keyed records are ours to remove; anything else is left as it is.
      if (typeof record.key[1] !== "number") continue;
      op.delete(record.key);
      if (++mutations >= COMMIT_MUTATIONS) {
        await op.commit();
        op = kv.atomic();
        mutations = 0;
      }
    }
  }
  if (mutations > 0) await op.commit();
}

function closeQuietly(file: Deno.FsFile): void {
  try {
    file.close();
  } catch {
    // Already closed: nothing to release.
  }
}
