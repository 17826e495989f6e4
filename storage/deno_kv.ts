// DenoKvLogStore: a durable Storage<C> on Deno KV (`Deno.openKv`, needs --unstable-kv), one store per file.

import {
  type Cursor,
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

// ---------------------------------------------------------------------------
// Layout and limits

/** The on-disk format this file reads and writes (`["meta"].format`). */
const FORMAT = 1;

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

/** First byte of an entry record that holds the encoded entry itself. */
const TAG_INLINE = 1;
/** First byte of an entry record whose encoded entry is split into chunks. */
const TAG_CHUNKED = 2;
/** Tag byte and the term as a float64. */
const INLINE_HEADER = 9;
/** Tag, term, chunk count (uint32) and total size (float64). */
const CHUNKED_HEADER = 21;

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
 * 1 000 mutations and 800 KiB, so an entry whose encoding is larger is split
 * into chunks and a large batch into several commits. The `["bounds"]` record
 * alone decides which entries exist: an append writes entry records past it
 * (invisible) and moves it, in each commit, over the entries that are complete
 * by then. A crash mid-append leaves a prefix of the batch, never a hole or
 * half an entry; truncate, prune and reset rewrite `["bounds"]` in one commit
 * and then delete what it no longer covers. `open` removes what a crash left
 * outside the bounds.
 *
 * **Single opener.** `open` takes an exclusive lock (`flock`) on `${path}.lock`
 * (beside the real file when `path` is a symlink), which the OS releases when
 * the process dies, and refuses a second opener in this process as well. The
 * lock file stays on disk after `close`.
 *
 * Layout (format 1): `["meta"]` `{ format, group?, member? }`, `["hs"]` the hard
 * state, `["bounds"]` `{ prefixIndex, prefixTerm, lastIndex, lastTerm }`,
 * `["e", index]` an entry record (bytes: a tag, the term, then the encoded
 * entry or the chunk count and size), `["c", index, k]` chunk `k` of a large
 * entry. Entries are encoded with `encodeEntry` and come back from `get` as new
 * objects equal to the appended ones.
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
  }

  /**
   * Opens the store at `path`, creating it when the file does not exist, after
   * locking `${path}.lock`. Checks that the file is a mosaik log store of this
   * format whose records agree (every index in the bounds has an entry record,
   * terms never decrease), then deletes what an interrupted write left outside
   * the bounds. On an error nothing is changed and the lock is released.
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
   * A batch that fits one commit (up to about 990 entries and 760 KiB) is one
   * commit; a larger one is split, each commit making complete entries visible.
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
      await this.#write(batch.map(encodeRecord));
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
      const record = await this.#kv.get<unknown>(entryKey(index));
      if (record.value === null) throw this.#corrupt(`entry ${index} is missing`);
      return await this.#decode(index, record.value);
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
      let expected = from;
      const records = this.#kv.list<unknown>(
        { start: entryKey(from), end: entryKey(to + 1) },
        { batchSize: Math.min(to - from + 1, LIST_BATCH) },
      );
      for await (const record of records) {
        const index = record.key[1];
        if (index !== expected) throw this.#corrupt(`entry ${expected} is missing`);
        out.push(await this.#decode(expected, record.value));
        expected++;
      }
      if (expected <= to) throw this.#corrupt(`entry ${expected} is missing`);
      return out;
    });
  }

  /**
   * Removes the entries from `from` to the end; a `from` past the end does
   * nothing. One commit moves the bounds, then the removed records are deleted.
   *
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
      await this.#commitBounds({ ...old, lastIndex: from - 1, lastTerm });
      this.#terms.dropFrom(from);
      await this.#deleteEntries(from, old.lastIndex);
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
   * below the current prefix it does nothing. One commit moves the bounds, then
   * the dropped records are deleted.
   *
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
      await this.#commitBounds({ ...old, prefixIndex: upTo, prefixTerm });
      this.#terms.dropTo(upTo, old.lastIndex);
      await this.#deleteEntries(old.prefixIndex + 1, upTo);
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
      const old = this.#bounds;
      await this.#commitBounds({
        prefixIndex: next.index,
        prefixTerm: next.term,
        lastIndex: next.index,
        lastTerm: next.term,
      });
      this.#terms.clear();
      await this.#deleteEntries(old.prefixIndex + 1, old.lastIndex);
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

  async #commitBounds(bounds: Bounds): Promise<void> {
    await this.#commit(this.#kv.atomic().set(BOUNDS_KEY, bounds));
    this.#bounds = bounds;
  }

  /**
   * Writes encoded entries in as few commits as the limits allow. Each commit
   * also moves `["bounds"]` over the entries complete by then, and memory
   * follows each commit, so a failure leaves store and memory at a prefix.
   */
  async #write(records: EncodedRecord[]): Promise<void> {
    let op = this.#kv.atomic();
    let mutations = 0;
    let bytes = BOUNDS_COST;
    let complete = -1;
    let visible = -1;
    const flush = async (): Promise<void> => {
      if (complete > visible) {
        const end = records[complete]!;
        op.set(BOUNDS_KEY, { ...this.#bounds, lastIndex: end.index, lastTerm: end.term });
      }
      if (mutations > 0 || complete > visible) await this.#commit(op);
      if (complete > visible) {
        const end = records[complete]!;
        this.#bounds = { ...this.#bounds, lastIndex: end.index, lastTerm: end.term };
        for (let i = visible + 1; i <= complete; i++) {
          const r = records[i]!;
          this.#terms.push(r.index, r.term);
          if (r.chunks.length > 0) this.#chunked.set(r.index, r.chunks.length);
        }
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
        put(chunkKey(record.index, k), chunk, cost);
      }
      // The entry record goes last, so it never reaches KV without its chunks.
      const cost = record.header.byteLength + KEY_COST;
      if (!fits(cost)) await flush();
      put(entryKey(record.index), record.header, cost);
      complete = i;
    }
    await flush();
  }

  /** Deletes the records of entries `from..=to` (already outside the bounds). */
  async #deleteEntries(from: Index, to: Index): Promise<void> {
    let op = this.#kv.atomic();
    let mutations = 0;
    // The records are invisible already, so the deletions need not be atomic together
    // (an entry of over 64 MB has more chunks than one commit takes).
    const remove = async (key: Deno.KvKey): Promise<void> => {
      if (mutations >= COMMIT_MUTATIONS) {
        await this.#commit(op);
        op = this.#kv.atomic();
        mutations = 0;
      }
      op.delete(key);
      mutations++;
    };
    for (let index = from; index <= to; index++) {
      await remove(entryKey(index));
      const chunks = this.#chunked.get(index);
      if (chunks === undefined) continue;
      for (let k = 0; k < chunks; k++) await remove(chunkKey(index, k));
      this.#chunked.delete(index);
    }
    if (mutations > 0) await this.#commit(op);
  }

  /** The entry in the record at `index`, reading its chunks when it has any. */
  async #decode(index: Index, value: unknown): Promise<LogEntry<C>> {
    const header = parseRecord(value);
    if (header === undefined) throw this.#corrupt(`entry ${index} has a malformed record`);
    const bytes = header.inline ?? await this.#readChunks(index, header.chunks, header.size);
    let entry: LogEntry<C>;
    try {
      // Read fresh from KV: the entry may keep the bytes as its encoding.
      entry = decodeOwnedEntry<C>(bytes);
    } catch (err) {
      throw this.#corrupt(`entry ${index} does not decode`, err);
    }
    if (entry.index !== index || entry.term !== header.term) {
      throw this.#corrupt(
        `entry ${index} holds entry ${entry.index} of term ${entry.term}, its record says term ${header.term}`,
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

/** One entry ready to write: its record and the chunks it refers to. */
interface EncodedRecord {
  readonly index: Index;
  readonly term: Term;
  readonly header: Uint8Array;
  readonly chunks: readonly Uint8Array[];
}

/** What an entry record says. */
interface ParsedRecord {
  readonly term: Term;
  /** The encoded entry, when the record holds it. */
  readonly inline: Uint8Array | undefined;
  readonly chunks: number;
  readonly size: number;
}

function entryKey(index: Index): Deno.KvKey {
  return [ENTRY, index];
}

function chunkKey(index: Index, k: number): Deno.KvKey {
  return [CHUNK, index, k];
}

function encodeRecord<C>(entry: LogEntry<C>): EncodedRecord {
  const bytes = entryBytes(entry);
  const { index, term } = entry;
  if (INLINE_HEADER + bytes.byteLength <= VALUE_MAX) {
    const header = new Uint8Array(INLINE_HEADER + bytes.byteLength);
    header[0] = TAG_INLINE;
    new DataView(header.buffer).setFloat64(1, term);
    header.set(bytes, INLINE_HEADER);
    return { index, term, header, chunks: [] };
  }
  const chunks: Uint8Array[] = [];
  for (let at = 0; at < bytes.byteLength; at += VALUE_MAX) {
    chunks.push(bytes.subarray(at, at + VALUE_MAX));
  }
  const header = new Uint8Array(CHUNKED_HEADER);
  const view = new DataView(header.buffer);
  header[0] = TAG_CHUNKED;
  view.setFloat64(1, term);
  view.setUint32(9, chunks.length);
  view.setFloat64(13, bytes.byteLength);
  return { index, term, header, chunks };
}

/** The parsed entry record, or `undefined` when `value` is not one. */
function parseRecord(value: unknown): ParsedRecord | undefined {
  if (!(value instanceof Uint8Array) || value.byteLength < INLINE_HEADER) return undefined;
  const view = new DataView(value.buffer, value.byteOffset, value.byteLength);
  const term = view.getFloat64(1);
  if (!isIndex(term)) return undefined;
  if (value[0] === TAG_INLINE) {
    return { term, inline: value.subarray(INLINE_HEADER), chunks: 0, size: 0 };
  }
  if (value[0] !== TAG_CHUNKED || value.byteLength !== CHUNKED_HEADER) return undefined;
  const chunks = view.getUint32(9);
  const size = view.getFloat64(13);
  if (chunks < 1 || !isIndex(size)) return undefined;
  return { term, inline: undefined, chunks, size };
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
    let lo = 0;
    let hi = this.#starts.length - 1;
    let found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      if (this.#starts[mid]! <= index) {
        found = mid;
        lo = mid + 1;
      } else {
        hi = mid - 1;
      }
    }
    return found;
  }
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
    };
  }
  const meta = metaRecord.value;
  if (typeof meta !== "object" || meta === null) throw corrupt("the meta record is malformed");
  const { format, group, member } = meta as Record<string, unknown>;
  if (format !== FORMAT) throw new StoreVersionError(path, format, FORMAT);
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
  const { terms, chunked } = await scanEntries(kv, path, bounds);
  return { bounds, hardState, owner, terms, chunked };
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
 * Reads every entry record in the bounds: each index must have a well-formed
 * record, terms must not decrease, and the last term must match the bounds.
 * Chunks are checked when an entry is read.
 */
async function scanEntries(
  kv: Deno.Kv,
  path: string,
  bounds: Bounds,
): Promise<{ terms: TermRuns; chunked: Map<Index, number> }> {
  const corrupt = (detail: string) => new StoreCorruptError(path, detail);
  const terms = new TermRuns();
  const chunked = new Map<Index, number>();
  const { prefixIndex, lastIndex } = bounds;
  let expected = prefixIndex + 1;
  let term = bounds.prefixTerm;
  if (lastIndex > prefixIndex) {
    const records = kv.list<unknown>(
      { start: entryKey(expected), end: entryKey(lastIndex + 1) },
      { batchSize: Math.min(lastIndex - prefixIndex, LIST_BATCH) },
    );
    for await (const record of records) {
      if (record.key[1] !== expected) throw corrupt(`entry ${expected} is missing`);
      const parsed = parseRecord(record.value);
      if (parsed === undefined) throw corrupt(`entry ${expected} has a malformed record`);
      if (parsed.term < term) {
        throw corrupt(`the term decreases at entry ${expected} (${parsed.term} after ${term})`);
      }
      term = parsed.term;
      terms.push(expected, term);
      if (parsed.inline === undefined) chunked.set(expected, parsed.chunks);
      expected++;
    }
  }
  if (expected <= lastIndex) throw corrupt(`entry ${expected} is missing`);
  if (term !== bounds.lastTerm) {
    throw corrupt(
      `the last entry ${lastIndex} has term ${term}, the bounds say ${bounds.lastTerm}`,
    );
  }
  return { terms, chunked };
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
