// BunSqliteWorkerStore: BunSqliteLogStore on a worker thread, so SQLite's work and its fsync never block the event loop (Bun only).

import type { Cursor, Index, IndexRange, Term } from "../lib/primitives/cursor.ts";
import { EncodingError } from "../lib/wire/errors.ts";
import { entryBytes } from "../lib/wire/entry.ts";
import { decodeStoredEntry, type EncodedEntry } from "./bun_sqlite.ts";
import { checkBatch } from "./_checks.ts";
import {
  pack,
  type PackedEntries,
  type ThreadReply,
  type ThreadRequest,
  unpack,
} from "./_bun_sqlite_protocol.ts";
import {
  StorageError,
  StoreCorruptError,
  StoreLockedError,
  type StoreOwner,
  StoreOwnerError,
  StoreVersionError,
} from "./errors.ts";
import type { HardState, LogEntry, Storage } from "./types.ts";

/** Error classes a store throws, by name, so they keep their class across the thread boundary. */
const ERRORS: Record<string, { prototype: Error }> = {
  Error,
  RangeError,
  TypeError,
  StorageError,
  StoreCorruptError,
  StoreLockedError,
  StoreOwnerError,
  StoreVersionError,
  EncodingError,
};

/** The part of Bun's `Worker` this uses. */
interface BunWorker {
  onmessage: ((event: { data: ThreadReply }) => void) | null;
  onerror: ((event: { message?: string; error?: unknown }) => void) | null;
  postMessage(request: ThreadRequest, transfer: ArrayBuffer[]): void;
  terminate(): void;
  ref(): void;
  unref(): void;
}

const NO_BYTES = new Uint8Array(0);

function isPosition(x: unknown): boolean {
  return typeof x === "number" && Number.isSafeInteger(x) && x >= 0;
}

interface Pending {
  resolve(value: unknown): void;
  reject(err: unknown): void;
}

/**
 * A durable {@link Storage} that is a {@link BunSqliteLogStore} run on a
 * worker thread: same file format, same durability (every write resolves
 * once its transaction is synced to disk), same errors — but SQLite's work
 * and its `fsync` happen off the event loop, so a node keeps reading the
 * network, answering peers and running timers while its log is written.
 * Every method returns a promise. Bun only; `openDefaultStore` uses it on
 * Bun.
 *
 * Why: `bun:sqlite` is synchronous, and a durable commit waits for the disk
 * (about 0.2 ms alone here, several ms when other processes sync too). On the
 * event loop that stalls QUIC for every member at every write: in the cluster
 * benchmark (3 nodes, 64 concurrent callers) the in-thread store made a
 * follower's answer take ~50 ms to reach the leader.
 *
 * Entries cross to the thread as their `encodeEntry` bytes (encoded once,
 * see `entryBytes`) and come back as bytes that are decoded here, so commands
 * need only be CBOR-encodable, as for every store.
 *
 * @example Bun only (`deno test --doc` skips it)
 * ```ts ignore
 * import { BunSqliteWorkerStore } from "@mosaik/mosaik/storage/bun_sqlite_worker";
 *
 * const store = await BunSqliteWorkerStore.open<string>("/var/lib/mosaik/node-1.db");
 * await store.append([{ index: 1, term: 1, command: "set x" }]); // durable once resolved
 * await store.close();
 * ```
 */
export class BunSqliteWorkerStore<C = unknown> implements Storage<C> {
  /** The path the store was opened at. */
  readonly path: string;
  readonly #worker: BunWorker;
  readonly #pending = new Map<number, Pending>();
  #seq = 0;
  #closing: Promise<void> | undefined;
  /** Set when the thread died: every later call rejects with it. */
  #failure: Error | undefined;

  private constructor(path: string, worker: BunWorker) {
    this.path = path;
    this.#worker = worker;
    worker.onmessage = (event) => this.#settle(event.data);
    worker.onerror = (event) => {
      this.#fail(
        new Error(`The store thread of ${path} failed: ${event.message ?? "unknown error"}`),
      );
    };
  }

  /**
   * Starts a thread and opens the store at `path` on it, with the checks of
   * `BunSqliteLogStore.open`.
   *
   * @param path the SQLite file of the store (its directory must exist)
   * @returns the open store
   * @throws {TypeError} when `path` is not a non-empty string
   * @throws {Error} when not running on Bun, or the file cannot be opened
   * @throws {StoreLockedError} when another opener, in this process or another, holds the store
   * @throws {StoreCorruptError} when the file is not a valid store
   * @throws {StoreVersionError} when the store was written in another format version
   */
  static async open<C = unknown>(path: string): Promise<BunSqliteWorkerStore<C>> {
    if (typeof path !== "string" || path === "") {
      throw new TypeError("Cannot open BunSqliteWorkerStore: path must be a non-empty string");
    }
    const WorkerClass = (globalThis as unknown as { Worker?: new (url: URL) => BunWorker }).Worker;
    if ((globalThis as { Bun?: unknown }).Bun === undefined || WorkerClass === undefined) {
      throw new Error(
        "Cannot open BunSqliteWorkerStore: it needs Bun (on Deno use DenoKvLogStore from storage/deno_kv.ts)",
      );
    }
    const worker = new WorkerClass(new URL("./_bun_sqlite_thread.ts", import.meta.url));
    const store = new BunSqliteWorkerStore<C>(path, worker);
    try {
      await store.#call("open", [path]);
    } catch (err) {
      store.#closing = Promise.resolve();
      worker.terminate();
      throw err;
    }
    return store;
  }

  /**
   * Appends `entries` after the last entry in one transaction; resolves once
   * it is synced to disk. A rejected batch changes nothing.
   *
   * @throws {RangeError} when the batch does not start at `last().index + 1`, is not contiguous or lowers the term
   * @throws {TypeError} when an index or term is not a number
   * @throws {EncodingError} when a command is not CBOR-encodable (after the positions are checked, as by `BunSqliteLogStore`; nothing is written)
   * @throws {Error} when the store is closed
   */
  async append(entries: readonly LogEntry<C>[]): Promise<void> {
    if (entries.length === 0) return this.#whenOpen("append");
    const records: EncodedEntry[] = [];
    let positioned = true;
    let unencodable: { error: unknown } | undefined;
    for (const e of entries) {
      // A bad index or term is not encoded: the thread's checks refuse the batch with the
      // store's own error before anything is written.
      const ok = isPosition(e.index) && isPosition(e.term);
      positioned &&= ok;
      let bytes: Uint8Array = NO_BYTES;
      if (ok && unencodable === undefined) {
        try {
          bytes = entryBytes(e);
        } catch (error) {
          unencodable = { error };
        }
      }
      records.push({ index: e.index, term: e.term, bytes });
    }
    if (unencodable !== undefined) {
      // BunSqliteLogStore checks the positions before it encodes: a batch that is wrong in
      // both ways fails with its RangeError here too. Nothing is written either way.
      checkBatch(await this.#call("last", []) as Cursor, records);
      throw unencodable.error;
    }
    if (!positioned) {
      await this.#call("appendEncoded", [records]);
      return;
    }
    const packed = pack(records);
    await this.#call("appendPacked", [packed], [packed.data.buffer as ArrayBuffer]);
  }

  /** The indices `get` can return, inclusive; empty when `end === start - 1`. */
  available(): Promise<IndexRange> {
    return this.#call("available", []) as Promise<IndexRange>;
  }

  /**
   * The entry at `index`, or `undefined` when it is pruned, truncated or never appended.
   *
   * @throws {StoreCorruptError} when the stored entry is missing or does not decode
   */
  async get(index: Index): Promise<LogEntry<C> | undefined> {
    if (typeof index !== "number" || !Number.isInteger(index)) {
      await this.#whenOpen("get");
      return undefined;
    }
    return (await this.getRange(index, index))[0];
  }

  /**
   * The available entries from `start` to `end` inclusive, in a new array.
   *
   * @throws {StoreCorruptError} when a stored entry is missing or does not decode
   */
  async getRange(start: Index, end: Index): Promise<LogEntry<C>[]> {
    const rows = unpack(await this.#call("getRangePacked", [start, end]) as PackedEntries);
    return rows.map((r) => decodeStoredEntry<C>(this.path, r.index, r.term, r.bytes));
  }

  /** Removes the entries from `from` to the end in one transaction. */
  async truncate(from: Index): Promise<void> {
    await this.#call("truncate", [from]);
  }

  /** The cursor of the last entry, or of the pruned prefix when no entry is kept. */
  last(): Promise<Cursor> {
    return this.#call("last", []) as Promise<Cursor>;
  }

  /** The term at `index`: 0 for the sentinel, the prefix term at the prefix, `undefined` when unknown. */
  termAt(index: Index): Promise<Term | undefined> {
    return this.#call("termAt", [index]) as Promise<Term | undefined>;
  }

  /** Drops the entries up to and including `upTo`, in one transaction. */
  async prunePrefix(upTo: Index): Promise<void> {
    await this.#call("prunePrefix", [upTo]);
  }

  /** Empties the log and makes `last()` equal to `cursor`, in one transaction. */
  async resetTo(cursor: Cursor): Promise<void> {
    await this.#call("resetTo", [cursor]);
  }

  /** The saved hard state, or `undefined` if none was ever saved. */
  loadHardState(): Promise<HardState | undefined> {
    return this.#call("loadHardState", []) as Promise<HardState | undefined>;
  }

  /** Replaces the hard state in one transaction; resolves once synced to disk. */
  async saveHardState(state: HardState): Promise<void> {
    await this.#call("saveHardState", [state]);
  }

  /**
   * Ties the store to one member of one group; see `BunSqliteLogStore.claim`.
   *
   * @throws {StoreOwnerError} when the store belongs to another group or member
   */
  async claim(owner: StoreOwner): Promise<void> {
    await this.#call("claim", [owner]);
  }

  /**
   * Closes the database (after the calls already made), releases the file
   * and stops the thread. Idempotent; every other method rejects afterwards.
   */
  close(): Promise<void> {
    this.#closing ??= this.#call("close", []).then(
      () => {},
      () => {},
    ).finally(() => this.#worker.terminate());
    return this.#closing;
  }

  /** Same as {@link close}, for `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /** Why `what` cannot be done now (the thread died, or the store is closed), if it cannot. */
  #refusal(what: string): Error | undefined {
    if (this.#failure !== undefined) return this.#failure;
    if (this.#closing !== undefined) return new Error(`Cannot ${what}: store is closed`);
    return undefined;
  }

  /** Resolves when the store is usable, like a call that does nothing. */
  #whenOpen(what: string): Promise<void> {
    const refusal = this.#refusal(what);
    return refusal === undefined ? Promise.resolve() : Promise.reject(refusal);
  }

  #call(op: string, args: readonly unknown[], transfer: ArrayBuffer[] = []): Promise<unknown> {
    const refusal = this.#refusal(op);
    if (refusal !== undefined) return Promise.reject(refusal);
    const id = ++this.#seq;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      // The thread keeps the process alive only while it owes an answer.
      if (this.#pending.size === 1) this.#worker.ref();
      this.#worker.postMessage({ id, op, args }, transfer);
    });
  }

  #settle(reply: ThreadReply): void {
    const pending = this.#pending.get(reply.id);
    if (pending === undefined) return;
    this.#pending.delete(reply.id);
    if (this.#pending.size === 0) this.#worker.unref();
    if (reply.ok) pending.resolve(reply.value);
    else pending.reject(rebuild(reply.error));
  }

  #fail(err: Error): void {
    this.#failure ??= err;
    for (const p of this.#pending.values()) p.reject(err);
    this.#pending.clear();
    this.#worker.unref();
  }
}

/** The thread's error as an instance of its class (so `instanceof` works), with its fields. */
function rebuild(data: { name: string; message: string; props: Record<string, unknown> }): Error {
  const err = new Error(data.message);
  const cls = ERRORS[data.name];
  if (cls !== undefined) Object.setPrototypeOf(err, cls.prototype);
  Object.assign(err, data.props);
  return err;
}
