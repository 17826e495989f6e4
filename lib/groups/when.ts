// When: awaitable conditions on a group's leader, role, online state, committed index and log.

import { checkIndex, Cursor, type Index, type IndexRange } from "../primitives/cursor.ts";
import type { PeerId } from "../primitives/ids.ts";
import type { GroupStatus, SignalOptions } from "./types.ts";
import type { ReadonlyWatch, WaitOptions } from "./watch.ts";

/**
 * True when two statuses are the same for every observer: same leader and
 * self (by id), role, online flag, committed index, log position, term and
 * reset count. The equality a `Watch<GroupStatus>` should use, so that
 * replacing the status with an equal one wakes nobody.
 *
 * @param a one status
 * @param b another status
 * @returns whether nothing observable differs
 */
export function groupStatusEquals(a: GroupStatus, b: GroupStatus): boolean {
  return sameLeader(a.leader, b.leader) &&
    a.self.equals(b.self) &&
    a.role === b.role &&
    a.online === b.online &&
    a.committed === b.committed &&
    Cursor.equals(a.logPosition, b.logPosition) &&
    a.term === b.term &&
    revertCount(a) === revertCount(b);
}

function sameLeader(a: PeerId | undefined, b: PeerId | undefined): boolean {
  return a === undefined ? b === undefined : a.equals(b);
}

function revertCount(s: GroupStatus): number {
  return s.stateReverted?.count ?? 0;
}

function waitOptions(options: SignalOptions): WaitOptions {
  return options.signal === undefined ? {} : { signal: options.signal };
}

/**
 * Awaitable conditions on this node's view of its group.
 *
 * Common to every method:
 * - **"At once"**: when its condition already holds, a method documented to
 *   resolve at once settles from the status current at the call, on the
 *   microtask queue: no further status change is needed and no timer runs.
 *   Methods about a *change*
 *   (`leaderChanged`, `advanced`, `changed`, `reverted`) compare against the
 *   status at the moment of the call and never resolve at once.
 * - Each status the driver publishes is checked, in order, even if several
 *   are published within one tick.
 * - `options.signal`: an already aborted signal rejects at once with
 *   `signal.reason`, even if the condition holds; aborting later rejects the
 *   pending wait with `signal.reason`.
 * - When the group is closed, pending and later waits reject with
 *   `GroupTerminatedError`.
 * - Waits have no timeout of their own; pass `AbortSignal.timeout(ms)`.
 *
 * @example
 * ```ts
 * import { ConsensusConfig, GroupKey, KeyValue, Network } from "@mosaik/mosaik";
 * import { MemoryNetwork } from "@mosaik/mosaik/transport/memory";
 *
 * const consensus = ConsensusConfig.builder()
 *   .withHeartbeatInterval(20).withHeartbeatJitter(5)
 *   .withElectionTimeout(100).withElectionTimeoutJitter(20)
 *   .withBootstrapDelay(0)
 *   .build();
 * await using net = new MemoryNetwork();
 * await using network = await Network.builder("my-app").withTransport(net.transport()).build();
 * await using group = network.groups()
 *   .withKey(GroupKey.generate())
 *   .withStateMachine(new KeyValue())
 *   .withConsensusConfig(consensus)
 *   .join();
 *
 * const when = group.when();
 * const leader = await when.leaderElected({ signal: AbortSignal.timeout(5_000) });
 * if (!leader.equals(network.local().id())) throw new Error("a lone member leads");
 * await when.isLeader(); // at once: the condition already holds
 * const next = when.committed().advanced(); // the committed index at this call is the baseline
 * const range = await group.feedMany([
 *   { op: "set", key: "a", value: "1" },
 *   { op: "set", key: "b", value: "2" },
 * ]);
 * await next;
 * const committed = await when.committed().reaches(range); // waits for range.end
 * if (committed < range.end) throw new Error("reaches(range) waits for its end");
 * ```
 */
export class When {
  readonly #status: ReadonlyWatch<GroupStatus>;

  /**
   * Built by the group; users get one from `group.when()`.
   *
   * @param status the group's status cell, kept current by its driver
   */
  constructor(status: ReadonlyWatch<GroupStatus>) {
    this.#status = status;
  }

  /**
   * Waits until a leader is known (this node or another).
   *
   * @param options abort signal
   * @returns the leader; at once if one is known now
   */
  leaderElected(options: SignalOptions = {}): Promise<PeerId> {
    return this.#status.waitFor((s) => s.leader !== undefined, waitOptions(options))
      .then(leaderOf);
  }

  /**
   * Waits for a leader that differs from the one known at the call (by
   * PeerId). Having no leader is not a leader: if the call sees leader A, the
   * sequence A → none → A does not resolve, A → none → B resolves with B. If
   * the call sees no leader, the first leader resolves it.
   *
   * @param options abort signal
   * @returns the new leader; never at once
   */
  leaderChanged(options: SignalOptions = {}): Promise<PeerId> {
    const before = this.#status.get().leader;
    return this.#status.waitFor(
      (s) => s.leader !== undefined && !s.leader.equals(before),
      waitOptions(options),
    ).then(leaderOf);
  }

  /**
   * Waits until `peerId` is the leader this node knows of.
   *
   * @param peerId the expected leader
   * @param options abort signal
   * @returns nothing; at once if `peerId` is the leader now
   */
  leaderIs(peerId: PeerId, options: SignalOptions = {}): Promise<void> {
    if (typeof (peerId as { equals?: unknown } | null)?.equals !== "function") {
      return Promise.reject(new TypeError("Cannot wait for leader: peerId must be a PeerId"));
    }
    return this.#status.waitFor((s) => peerId.equals(s.leader), waitOptions(options))
      .then(nothing);
  }

  /**
   * Waits until this node's role is `leader`.
   *
   * @param options abort signal
   * @returns nothing; at once if this node leads now
   */
  isLeader(options: SignalOptions = {}): Promise<void> {
    return this.#status.waitFor((s) => s.role === "leader", waitOptions(options)).then(nothing);
  }

  /**
   * Waits until this node follows a known leader: its role is `follower` or
   * `learner` and a leader other than itself is known. (A follower with no
   * leader, for instance during an election, does not count.)
   *
   * @param options abort signal
   * @returns nothing; at once if this node follows a leader now
   */
  isFollower(options: SignalOptions = {}): Promise<void> {
    return this.#status.waitFor(
      (s) =>
        (s.role === "follower" || s.role === "learner") && s.leader !== undefined &&
        !s.leader.equals(s.self),
      waitOptions(options),
    ).then(nothing);
  }

  /**
   * Waits until this node is online: it knows a leader (itself or another)
   * and is not campaigning. Online says nothing about how far behind the
   * leader this node's log is, and a leader it still believes in may just have
   * died: calls made while online can still fail with `OfflineError`.
   *
   * @param options abort signal
   * @returns nothing; at once if online now
   */
  online(options: SignalOptions = {}): Promise<void> {
    return this.#status.waitFor((s) => s.online, waitOptions(options)).then(nothing);
  }

  /**
   * Waits until this node is not online (no leader known, an election, or
   * catching up).
   *
   * @param options abort signal
   * @returns nothing; at once if offline now
   */
  offline(options: SignalOptions = {}): Promise<void> {
    return this.#status.waitFor((s) => !s.online, waitOptions(options)).then(nothing);
  }

  /**
   * Conditions on the committed index.
   *
   * @returns a watcher over this group's committed index
   */
  committed(): CommittedWatcher {
    return new CommittedWatcher(this.#status);
  }

  /**
   * Conditions on this node's log position (which may include uncommitted entries).
   *
   * @returns a watcher over this node's log position
   */
  log(): LogWatcher {
    return new LogWatcher(this.#status);
  }
}

/**
 * Conditions on the committed index this node knows of. Every method resolves
 * with the committed index of the status that satisfied it.
 */
export class CommittedWatcher {
  readonly #status: ReadonlyWatch<GroupStatus>;

  /**
   * Made by {@link When.committed}.
   *
   * @param status the group's status cell
   */
  constructor(status: ReadonlyWatch<GroupStatus>) {
    this.#status = status;
  }

  /**
   * Waits until the committed index is at least `target`, or at least the
   * range's `end` for an {@link IndexRange} (as returned by `executeMany`).
   *
   * @param target an index, or an inclusive range whose end is awaited
   * @param options abort signal
   * @returns the committed index; at once if already reached (so `reaches(0)` always is)
   * @throws {TypeError|RangeError} (as a rejection) when `target` is not an index or range
   */
  reaches(target: Index | IndexRange, options: SignalOptions = {}): Promise<Index> {
    let index: Index;
    try {
      index = typeof target === "object" && target !== null
        ? checkIndex(target.end, "Range end")
        : checkIndex(target, "Index");
    } catch (err) {
      return Promise.reject(err);
    }
    return this.#status.waitFor((s) => s.committed >= index, waitOptions(options)).then(
      committedOf,
    );
  }

  /**
   * Waits until the committed index is greater than it was at the call.
   * After a revert it must climb past the value at the call again.
   *
   * @param options abort signal
   * @returns the new committed index; never at once
   */
  advanced(options: SignalOptions = {}): Promise<Index> {
    const before = this.#status.get().committed;
    return this.#status.waitFor((s) => s.committed > before, waitOptions(options)).then(
      committedOf,
    );
  }

  /**
   * Waits until the committed index differs from its value at the call, in
   * either direction.
   *
   * @param options abort signal
   * @returns the new committed index; never at once
   */
  changed(options: SignalOptions = {}): Promise<Index> {
    const before = this.#status.get().committed;
    return this.#status.waitFor((s) => s.committed !== before, waitOptions(options)).then(
      committedOf,
    );
  }

  /**
   * Waits until the committed index goes down: this node discarded its state
   * because its cluster lost a merge (DESIGN.md §3.4); within one connected
   * cluster it never happens. Resolves on the first published status whose
   * committed index is below the previous status's, or whose
   * `stateReverted.count` grew since the call (so a reset is seen even if the
   * driver publishes the catch-up in the same status).
   *
   * @param options abort signal
   * @returns the committed index after the reset; never at once
   */
  reverted(options: SignalOptions = {}): Promise<Index> {
    let previous = this.#status.get();
    const count = revertCount(previous);
    return this.#status.waitFor((s) => {
      const down = s.committed < previous.committed || revertCount(s) > count;
      previous = s;
      return down;
    }, waitOptions(options)).then(committedOf);
  }
}

/**
 * Conditions on this node's log position: the cursor (term, index) of its last
 * entry, which may be uncommitted. Every method resolves with the log position
 * of the status that satisfied it.
 */
export class LogWatcher {
  readonly #status: ReadonlyWatch<GroupStatus>;

  /**
   * Made by {@link When.log}.
   *
   * @param status the group's status cell
   */
  constructor(status: ReadonlyWatch<GroupStatus>) {
    this.#status = status;
  }

  /**
   * Waits until the log position is later than at the call in cursor order
   * (term first, then index, see `Cursor.compare`): new entries, or entries
   * of a newer term that replaced a conflicting suffix.
   *
   * @param options abort signal
   * @returns the new log position; never at once
   */
  advanced(options: SignalOptions = {}): Promise<Cursor> {
    const before = this.#status.get().logPosition;
    return this.#status.waitFor(
      (s) => Cursor.compare(s.logPosition, before) > 0,
      waitOptions(options),
    ).then(positionOf);
  }

  /**
   * Waits until the log position differs from the one at the call (term or
   * index), in either direction.
   *
   * @param options abort signal
   * @returns the new log position; never at once
   */
  changed(options: SignalOptions = {}): Promise<Cursor> {
    const before = this.#status.get().logPosition;
    return this.#status.waitFor(
      (s) => !Cursor.equals(s.logPosition, before),
      waitOptions(options),
    ).then(positionOf);
  }

  /**
   * Waits until the log's last index is at least `index` (any term).
   *
   * @param index the index to reach
   * @param options abort signal
   * @returns the log position; at once if already reached
   * @throws {TypeError|RangeError} (as a rejection) when `index` is not an index
   */
  reaches(index: Index, options: SignalOptions = {}): Promise<Cursor> {
    try {
      checkIndex(index, "Index");
    } catch (err) {
      return Promise.reject(err);
    }
    return this.#status.waitFor((s) => s.logPosition.index >= index, waitOptions(options)).then(
      positionOf,
    );
  }
}

function leaderOf(s: GroupStatus): PeerId {
  // Only reached through predicates that require a leader.
  return s.leader as PeerId;
}

function committedOf(s: GroupStatus): Index {
  return s.committed;
}

function positionOf(s: GroupStatus): Cursor {
  return s.logPosition;
}

function nothing(): void {}
