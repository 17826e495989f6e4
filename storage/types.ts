// The Storage<C> contract every log store implements, with its correctness requirements.

import type { Cursor, Index, IndexRange, Term } from "../lib/primitives/cursor.ts";
import type { StoreOwner } from "./errors.ts";

/**
 * The library's own log entries: the no-op a new leader appends, and
 * membership changes. Stores never inspect them; they round-trip them with
 * the entry codec (`encodeEntry` / `decodeEntry` in `lib/wire/entry.ts`) or
 * keep the object as it is.
 */
export type SystemEntryBody =
  | {
    /** The entry a new leader appends so that entries of earlier terms get committed. */
    readonly type: "noop";
  }
  | {
    /** The first entry of a cluster: its random id and first voter. Always at index 1. */
    readonly type: "bootstrap";
    /** A random id of the cluster this entry founded. */
    readonly clusterId: string;
    /** Hex PeerIds of the founding voters. */
    readonly voters: readonly string[];
  }
  | {
    /** A membership change: the voters and learners from this entry on. */
    readonly type: "membership";
    /** Hex PeerIds of the voters after this change. */
    readonly voters: readonly string[];
    /** Hex PeerIds of the learners (non-voting members) after this change. */
    readonly learners: readonly string[];
  };

/**
 * A log entry written by the library itself rather than by a user command.
 * User commands are plain CBOR data and can never be an instance of this class,
 * which is how the two are told apart.
 */
export class SystemEntry {
  /** What the entry says. */
  readonly body: SystemEntryBody;

  /**
   * A system entry saying `body`. Made by the library; stores get them back
   * from `decodeEntry`.
   *
   * @param body what the entry says (kept as it is, not copied)
   */
  constructor(body: SystemEntryBody) {
    this.body = body;
  }

  /**
   * The no-op entry a leader appends when elected.
   *
   * @returns a new `{ type: "noop" }` entry
   */
  static noop(): SystemEntry {
    return new SystemEntry({ type: "noop" });
  }

  /**
   * True when `x` is a system entry (as opposed to a user command).
   *
   * @param x a log entry's `command`
   * @returns whether `x` is a `SystemEntry` instance
   */
  static is(x: unknown): x is SystemEntry {
    return x instanceof SystemEntry;
  }
}

/** One entry of the replicated log. */
export interface LogEntry<C> {
  /** Position in the log, from 1. */
  readonly index: Index;
  /** Term of the leader that created the entry. */
  readonly term: Term;
  /** A user command, or the library's own {@link SystemEntry}. */
  readonly command: C | SystemEntry;
}

/** What a node must remember across restarts besides its log. */
export interface HardState {
  /** The latest term this node has seen. */
  readonly term: Term;
  /** Hex PeerId this node voted for in `term`, if any. */
  readonly votedFor?: string;
}

/**
 * Where a group keeps its log and hard state (the seed's `Storage<C>`).
 *
 * Any method may return a promise. The group awaits each write (`append`,
 * `truncate`, `prunePrefix`, `resetTo`, `saveHardState`, `claim`) before the
 * next one, so writes never overlap; reads of committed entries (`get`,
 * `getRange`, `termAt`) may run while a write is in flight, for instance when
 * this node serves a peer that is catching up. When the group is closed
 * (`leave()` or `close()` resolved) it makes no more calls, and the store may
 * be closed.
 *
 * Correctness requirements — Raft's safety depends on every one of these:
 *
 * - **Durable before resolve.** When `append` or `saveHardState` returns (or
 *   its promise resolves), the write survives a crash of the process. The
 *   driver acknowledges an entry or a vote to a peer only after that.
 *   `truncate`, `prunePrefix` and `resetTo` must be durable before the next
 *   `append` resolves.
 * - **Atomic.** A crash during `append` leaves either all of the batch or a
 *   prefix of it, never a hole, a half entry, or an entry from a truncated
 *   suffix reappearing.
 * - **Index 0 is the sentinel.** An empty log has `last()` equal to
 *   `{ term: 0, index: 0 }`; `termAt(0) === 0` always, also after a prune or
 *   reset; the first entry is index 1.
 * - **Contiguous.** Entries are appended at `last().index + 1` in increasing
 *   index order; an append that would leave a gap, or whose first index is not
 *   `last().index + 1`, throws a `RangeError` and changes nothing. To replace
 *   a conflicting suffix the caller truncates first.
 * - **Terms never decrease** along the log, also across a pruned prefix or a
 *   reset point; an append that breaks this throws a `RangeError`.
 * - **Entries are immutable.** A store may keep and return the very objects it
 *   was given; callers never mutate an entry after appending it. Arrays a
 *   store returns (`getRange`) and hard state are the caller's to keep.
 * - **Round-trip.** `get` returns an entry equal (deep) to the one appended,
 *   including {@link SystemEntry} values.
 *
 * The library ships `InMemoryLogStore` (default), `DenoKvLogStore`
 * (`@mosaik/mosaik/storage/deno_kv`) and `BunSqliteLogStore`
 * (`@mosaik/mosaik/storage/bun_sqlite`); `openDefaultStore` in
 * `@mosaik/mosaik/storage/default` opens the runtime's durable one.
 *
 * @example Giving a group a store
 * ```ts
 * import {
 *   ConsensusConfig,
 *   GroupKey,
 *   InMemoryLogStore,
 *   type KvCommand,
 *   KeyValue,
 *   Network,
 *   SystemEntry,
 * } from "@mosaik/mosaik";
 * import { MemoryNetwork } from "@mosaik/mosaik/transport/memory";
 *
 * const consensus = ConsensusConfig.builder()
 *   .withHeartbeatInterval(20).withHeartbeatJitter(5)
 *   .withElectionTimeout(100).withElectionTimeoutJitter(20)
 *   .withBootstrapDelay(0)
 *   .build();
 * await using net = new MemoryNetwork();
 * await using network = await Network.builder("my-app").withTransport(net.transport()).build();
 * const store = new InMemoryLogStore<KvCommand>(); // or a durable store; same command type
 * await using group = network.groups()
 *   .withKey(GroupKey.generate())
 *   .withStateMachine(new KeyValue())
 *   .withLogStorage(store)
 *   .withConsensusConfig(consensus)
 *   .join();
 * await group.when().online();
 * const index = await group.execute({ op: "set", key: "colour", value: "blue" });
 * const entry = store.get(index);
 * if (entry === undefined || SystemEntry.is(entry.command)) throw new Error("our command");
 * ```
 */
export interface Storage<C> {
  /**
   * Appends `entries` (possibly empty) after the last entry; durable on return.
   *
   * @throws {RangeError} when the first index is not `last().index + 1`, the batch is not
   *   contiguous, or a term is lower than the one before it; nothing is stored then
   */
  append(entries: readonly LogEntry<C>[]): void | Promise<void>;

  /**
   * The indices that `get` can return, inclusive. After `prunePrefix(p)` or
   * `resetTo({ index: p })` the range starts at `p + 1`; for an empty log
   * `end === start - 1`.
   */
  available(): IndexRange | Promise<IndexRange>;

  /** The entry at `index`, or `undefined` when it is not available. */
  get(index: Index): LogEntry<C> | undefined | Promise<LogEntry<C> | undefined>;

  /**
   * The available entries from `start` to `end` inclusive, in order; indices
   * outside the available range are skipped, so the result may be shorter.
   */
  getRange(start: Index, end: Index): LogEntry<C>[] | Promise<LogEntry<C>[]>;

  /**
   * Removes the entries from `from` to the end. A `from` past the end does
   * nothing.
   *
   * @throws {RangeError} when `from` is at or below the pruned prefix (those entries are
   *   committed); on a fresh log the prefix is the sentinel, so `truncate(0)` throws
   */
  truncate(from: Index): void | Promise<void>;

  /** The cursor of the last entry; `{ term: 0, index: 0 }` when empty. */
  last(): Cursor | Promise<Cursor>;

  /**
   * The term of the entry at `index`: 0 for index 0, the remembered term for
   * the last pruned index, `undefined` below that or past the end.
   */
  termAt(index: Index): Term | undefined | Promise<Term | undefined>;

  /**
   * Drops the entries up to and including `upTo`, remembering the cursor of
   * `upTo` so `termAt(upTo)` still answers. A value at or below the current
   * pruned prefix does nothing.
   *
   * @throws {RangeError} when `upTo` is past the last entry
   */
  prunePrefix(upTo: Index): void | Promise<void>;

  /**
   * Empties the log and makes `last()` equal to `cursor` (for snapshots and
   * cluster merges). The cursor may be behind the current end; `{ term: 0,
   * index: 0 }` gives a fresh log.
   *
   * @throws {RangeError} for index 0 with a non-zero term
   */
  resetTo(cursor: Cursor): void | Promise<void>;

  /** The saved hard state, or `undefined` if none was ever saved. */
  loadHardState(): HardState | undefined | Promise<HardState | undefined>;

  /** Replaces the hard state; durable on return. */
  saveHardState(state: HardState): void | Promise<void>;

  /**
   * Ties the store to one member of one group. A group calls it once when it
   * joins, before any other call. A store that was never claimed records the
   * owner (durably, for a durable store); a store that holds another group's
   * log, or another member's, throws and changes nothing. Optional: a store
   * without it accepts any group, and guards nothing.
   *
   * @throws {StoreOwnerError} when the store belongs to another group or member
   */
  claim?(owner: StoreOwner): void | Promise<void>;

  /** Releases the store's resources. Idempotent. */
  close?(): void | Promise<void>;
}
