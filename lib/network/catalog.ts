// Catalog: the verified peer entries this node knows, with discovery events; pure (time comes in as arguments).

import type { GroupId, NetworkId, PeerId } from "../primitives/ids.ts";
import {
  compareVersions,
  type EntryVersion,
  type PeerEntry,
  type SignedPeerEntry,
  verifyEntry,
} from "./entry.ts";

/** What happened to a peer in the catalog. */
export interface DiscoveryEvent {
  /** `discovered`: first entry seen; `updated`: a newer entry; `departed`: removed or purged as stale. */
  readonly type: "discovered" | "updated" | "departed";
  /** The peer concerned. */
  readonly peerId: PeerId;
  /** The new entry (discovered, updated) or the last one known (departed). */
  readonly entry: PeerEntry;
}

/** Outcome of {@link Catalog.upsert}. */
export type UpsertResult = "discovered" | "updated" | "stale";

/** Default number of events a subscription buffers before it drops the oldest. */
export const DEFAULT_EVENT_BUFFER = 1024;

interface PeerRecord {
  readonly entry: PeerEntry;
  readonly signed: SignedPeerEntry;
  lastSeen: number;
}

interface Tombstone {
  readonly version: EntryVersion;
  readonly at: number;
}

const DONE: IteratorReturnResult<undefined> = Object.freeze({ value: undefined, done: true });

/**
 * One subscriber's stream of {@link DiscoveryEvent}s, from the moment it was
 * created (use {@link Catalog.snapshot} for the state before). It buffers at
 * most `capacity` events: when a slow consumer falls further behind, the
 * oldest events are dropped and counted in {@link DiscoveryEvents.dropped}, so
 * memory stays bounded; a consumer that sees `dropped` grow should re-read
 * the snapshot. Meant for one consumer; breaking out of `for await` (or
 * `close()`) unsubscribes.
 */
export class DiscoveryEvents implements AsyncIterableIterator<DiscoveryEvent, undefined> {
  readonly #capacity: number;
  readonly #onClose: () => void;
  #buffer: DiscoveryEvent[] = [];
  #waiter: ((r: IteratorResult<DiscoveryEvent, undefined>) => void) | undefined;
  #closed = false;
  #dropped = 0;

  /** @internal created by {@link Catalog.events} */
  constructor(capacity: number, onClose: () => void) {
    this.#capacity = capacity;
    this.#onClose = onClose;
  }

  /** How many events were dropped because the consumer fell more than the capacity behind. */
  get dropped(): number {
    return this.#dropped;
  }

  /** @internal called by the catalog */
  push(event: DiscoveryEvent): void {
    if (this.#closed) return;
    if (this.#waiter !== undefined) {
      const w = this.#waiter;
      this.#waiter = undefined;
      w({ value: event, done: false });
      return;
    }
    if (this.#buffer.length >= this.#capacity) {
      this.#buffer.shift();
      this.#dropped++;
    }
    this.#buffer.push(event);
  }

  /** The next event; waits for one, or finishes once closed and drained. */
  next(): Promise<IteratorResult<DiscoveryEvent, undefined>> {
    const event = this.#buffer.shift();
    if (event !== undefined) return Promise.resolve({ value: event, done: false });
    if (this.#closed) return Promise.resolve(DONE);
    if (this.#waiter !== undefined) {
      return Promise.reject(new Error("Cannot read discovery events: another next() is pending"));
    }
    return new Promise((resolve) => {
      this.#waiter = resolve;
    });
  }

  /** Unsubscribes and drops what is buffered. */
  return(): Promise<IteratorResult<DiscoveryEvent, undefined>> {
    this.close();
    this.#buffer = [];
    return Promise.resolve(DONE);
  }

  /** Unsubscribes; buffered events can still be read, then iteration ends. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#onClose();
    const w = this.#waiter;
    this.#waiter = undefined;
    w?.(DONE);
  }

  /** This subscription itself, so it can be read with `for await`. */
  [Symbol.asyncIterator](): this {
    return this;
  }
}

/**
 * The peer entries this node has verified, keyed by peer id, with when each
 * was last seen.
 *
 * Only entries that pass {@link verifyEntry} for the catalog's network get in,
 * and a peer's entry is only replaced by a newer version (see
 * {@link compareVersions}). A peer that is removed or purged leaves a
 * tombstone of its last version, so copies of that entry still gossiped by
 * other peers do not bring it back; tombstones are forgotten by
 * {@link Catalog.purgeStale} after the same `maxAgeMs`.
 *
 * `lastSeen` moves forward only on a newer entry or an explicit
 * {@link Catalog.touch} (direct contact with the peer): a re-gossiped copy of
 * the same version says nothing about whether the peer is still alive.
 *
 * Maps are keyed by the peer id's full hex ({@link PeerId.toHex}) because
 * `PeerId` objects are not value-equal map keys; {@link Catalog.get} takes a
 * `PeerId`.
 *
 * @example
 * ```ts
 * import { Catalog } from "./catalog.ts";
 * import { NetworkId } from "../primitives/ids.ts";
 *
 * using catalog = new Catalog(NetworkId.fromName("my-app"));
 * if (catalog.size !== 0) throw new Error("a new catalog is empty");
 * ```
 */
export class Catalog implements Disposable {
  readonly #networkId: NetworkId;
  readonly #eventBuffer: number;
  readonly #records = new Map<string, PeerRecord>();
  readonly #tombstones = new Map<string, Tombstone>();
  readonly #subscribers = new Set<DiscoveryEvents>();
  readonly #listeners = new Set<(event: DiscoveryEvent) => void>();

  /**
   * @param networkId entries of any other network are rejected
   * @param options `eventBuffer`: per-subscription buffer size (default {@link DEFAULT_EVENT_BUFFER})
   * @throws {RangeError} when `eventBuffer` is not a positive integer
   */
  constructor(networkId: NetworkId, options: { eventBuffer?: number } = {}) {
    const eventBuffer = options.eventBuffer ?? DEFAULT_EVENT_BUFFER;
    if (!Number.isSafeInteger(eventBuffer) || eventBuffer < 1) {
      throw new RangeError("Cannot create Catalog: eventBuffer must be a positive integer");
    }
    this.#networkId = networkId;
    this.#eventBuffer = eventBuffer;
  }

  /** Number of peers in the catalog. */
  get size(): number {
    return this.#records.size;
  }

  /**
   * Verifies `signed` and stores it unless the catalog already holds the same
   * or a newer version for that peer (or a tombstone at least as new).
   *
   * @param signed the entry as received
   * @param now the current time in milliseconds, recorded as last seen
   * @returns "discovered" (new peer), "updated" (newer version) or "stale" (ignored)
   * @throws {InvalidEntryError} (as a rejection) when the entry fails verification
   */
  async upsert(signed: SignedPeerEntry, now: number): Promise<UpsertResult> {
    const entry = await verifyEntry(signed, this.#networkId);
    // Decide only after the await, against the state as it is now.
    const key = entry.peerId.toHex();
    const current = this.#records.get(key);
    if (current !== undefined) {
      if (compareVersions(entry.version, current.entry.version) <= 0) return "stale";
      this.#records.set(key, { entry, signed, lastSeen: now });
      this.#emit({ type: "updated", peerId: entry.peerId, entry });
      return "updated";
    }
    const tomb = this.#tombstones.get(key);
    if (tomb !== undefined) {
      if (compareVersions(entry.version, tomb.version) <= 0) return "stale";
      this.#tombstones.delete(key);
    }
    this.#records.set(key, { entry, signed, lastSeen: now });
    this.#emit({ type: "discovered", peerId: entry.peerId, entry });
    return "discovered";
  }

  /**
   * Records direct contact with a peer (e.g. a message on an open connection).
   *
   * @returns false when the peer is not in the catalog
   */
  touch(peerId: PeerId, now: number): boolean {
    const record = this.#records.get(peerId.toHex());
    if (record === undefined) return false;
    if (now > record.lastSeen) record.lastSeen = now;
    return true;
  }

  /**
   * Removes a peer (e.g. it said it is leaving) and emits "departed".
   *
   * @param peerId the peer to remove
   * @param now when, for the tombstone's age (default: its last-seen time)
   * @returns its last entry, or undefined when it was not in the catalog
   */
  remove(peerId: PeerId, now?: number): PeerEntry | undefined {
    const key = peerId.toHex();
    const record = this.#records.get(key);
    if (record === undefined) return undefined;
    this.#depart(key, record, now ?? record.lastSeen);
    return record.entry;
  }

  /**
   * Removes every peer not seen for more than `maxAgeMs` (emitting "departed")
   * and forgets tombstones older than that.
   *
   * @returns the departed peers' last entries
   */
  purgeStale(now: number, maxAgeMs: number): PeerEntry[] {
    const departed: PeerEntry[] = [];
    for (const [key, record] of [...this.#records]) {
      if (now - record.lastSeen > maxAgeMs) {
        this.#depart(key, record, now);
        departed.push(record.entry);
      }
    }
    for (const [key, tomb] of [...this.#tombstones]) {
      if (now - tomb.at > maxAgeMs) this.#tombstones.delete(key);
    }
    return departed;
  }

  /** The peer's entry, if known. */
  get(peerId: PeerId): PeerEntry | undefined {
    return this.#records.get(peerId.toHex())?.entry;
  }

  /** The peer's entry as signed, for passing on (catalog sync, gossip). */
  getSigned(peerId: PeerId): SignedPeerEntry | undefined {
    return this.#records.get(peerId.toHex())?.signed;
  }

  /** When the peer was last seen, in milliseconds, if known. */
  lastSeen(peerId: PeerId): number | undefined {
    return this.#records.get(peerId.toHex())?.lastSeen;
  }

  /** Every signed entry, for a full catalog exchange. */
  signedEntries(): SignedPeerEntry[] {
    return [...this.#records.values()].map((r) => r.signed);
  }

  /** A copy of the catalog, keyed by the peer id's full hex. */
  snapshot(): ReadonlyMap<string, PeerEntry> {
    return new Map([...this.#records].map(([key, r]) => [key, r.entry] as const));
  }

  /** Entries of the peers that list `groupId` among their groups. */
  peersInGroup(groupId: GroupId): PeerEntry[] {
    return [...this.#records.values()]
      .filter((r) => r.entry.groups.some((g) => g.equals(groupId)))
      .map((r) => r.entry);
  }

  /**
   * A new subscription to discovery events from now on.
   *
   * @param options `capacity`: events buffered before the oldest are dropped (default: the catalog's)
   * @throws {RangeError} when `capacity` is not a positive integer
   */
  events(options: { capacity?: number } = {}): DiscoveryEvents {
    const capacity = options.capacity ?? this.#eventBuffer;
    if (!Number.isSafeInteger(capacity) || capacity < 1) {
      throw new RangeError(
        "Cannot subscribe to discovery events: capacity must be a positive integer",
      );
    }
    const sub: DiscoveryEvents = new DiscoveryEvents(capacity, () => this.#subscribers.delete(sub));
    this.#subscribers.add(sub);
    return sub;
  }

  /**
   * Calls `listener` synchronously for every event from now on (for
   * in-process consumers that must not fall behind, e.g. the groups host).
   * An exception it throws is re-thrown on a microtask.
   *
   * @returns a function that unregisters it
   */
  onChange(listener: (event: DiscoveryEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Ends every subscription (they drain what they buffered, then finish). */
  close(): void {
    this.#listeners.clear();
    for (const sub of [...this.#subscribers]) sub.close();
  }

  /** Same as {@link Catalog.close}. */
  [Symbol.dispose](): void {
    this.close();
  }

  #depart(key: string, record: PeerRecord, at: number): void {
    this.#records.delete(key);
    this.#tombstones.set(key, { version: record.entry.version, at });
    this.#emit({ type: "departed", peerId: record.entry.peerId, entry: record.entry });
  }

  #emit(event: DiscoveryEvent): void {
    for (const sub of this.#subscribers) sub.push(event);
    for (const listener of this.#listeners) {
      try {
        listener(event);
      } catch (bug) {
        queueMicrotask(() => {
          throw bug;
        });
      }
    }
  }
}
