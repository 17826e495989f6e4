// Shared types of the Group API: the Group<M> handle, its status, consistency levels, bonds, config.

import type { ConsensusConfig } from "./config.ts";
import type { When } from "./when.ts";
import type { Cursor, Index, IndexRange, Term } from "../primitives/cursor.ts";
import type { UniqueId } from "../primitives/digest.ts";
import type { GroupId, PeerId } from "../primitives/ids.ts";
import type { AnyStateMachine, CommandOf, QueryOf, ResultOf } from "../machine/state_machine.ts";

/** The last argument of every Group method that can wait. */
export interface SignalOptions {
  /** Aborts the wait; the call rejects with `signal.reason`. */
  signal?: AbortSignal;
}

/**
 * How fresh a query's answer must be.
 *
 * - `Weak`: answered from this node's state machine as it is; may lag the
 *   leader. Never leaves the node.
 * - `Strong`: linearizable. The leader confirms it still leads (ReadIndex or a
 *   check-quorum lease), waits until it has applied up to the read index, then
 *   answers; a follower forwards the query to the leader.
 */
export type Consistency = "weak" | "strong";

/** The values of {@link Consistency}. */
export interface ConsistencyValues {
  /** Local read; see {@link Consistency}. */
  readonly Weak: "weak";
  /** Linearizable read; see {@link Consistency}. */
  readonly Strong: "strong";
}

/** The consistency levels: `Consistency.Weak`, `Consistency.Strong`. */
export const Consistency: ConsistencyValues = Object.freeze({ Weak: "weak", Strong: "strong" });

/** The answer to a query and where in the log it was read. */
export interface QueryResult<R> {
  /** What the state machine's `query` returned. */
  readonly result: R;
  /** The position of the last entry applied to the state that answered. */
  readonly atPosition: Cursor;
}

/**
 * The role of this node in its group. `learner` is a member that replicates
 * the log but does not vote (a new member catching up, or an `Observer`).
 */
export type GroupRole = "follower" | "precandidate" | "candidate" | "leader" | "learner";

/**
 * Set when this node discarded its state because its cluster lost a merge
 * (DESIGN.md §3.4): the only way the committed index of a node goes down.
 */
export interface StateReverted {
  /** How many times this node has discarded its state; increases by one each time. */
  readonly count: number;
  /** The committed index just before the latest reset. */
  readonly committedBefore: Index;
  /** The log position just before the latest reset. */
  readonly logPositionBefore: Cursor;
}

/**
 * Everything `When` observes about a group on this node, as one value the
 * driver replaces whenever any part changes.
 */
export interface GroupStatus {
  /** The leader this node currently knows of, if any (may be itself). */
  readonly leader: PeerId | undefined;
  /** This node's PeerId. */
  readonly self: PeerId;
  /** This node's role. */
  readonly role: GroupRole;
  /**
   * True when commands and strong queries can make progress from this node:
   * it is the leader, or a leader is known and this node is in sync with it
   * (not catching up, not in an election).
   */
  readonly online: boolean;
  /** The highest index this node knows to be committed. */
  readonly committed: Index;
  /** The cursor of the last entry in this node's log (may be uncommitted). */
  readonly logPosition: Cursor;
  /** This node's current term. */
  readonly term: Term;
  /** Present once this node has discarded its state in a cluster merge. */
  readonly stateReverted?: StateReverted;
}

/** One authenticated connection to another member of the group. */
export interface Bond {
  /** The member at the other end. */
  readonly peerId: PeerId;
  /** This bond's id; a bond is only ever removed by its own id. */
  readonly id: UniqueId;
}

/** A snapshot of this node's bonds, one per connected member. */
export interface Bonds extends Iterable<Bond> {
  /** The number of bonds. */
  readonly size: number;
  /** True when a bond to `peer` is up. */
  has(peer: PeerId): boolean;
}

/** What a group was joined with, safe to print. */
export interface GroupConfig {
  /** The id derived from key, consensus config, machine and state sync. */
  readonly groupId: GroupId;
  /** The key in redacted form (`GroupKey(<redacted> fp=…)`); the secret is never exposed here. */
  readonly key: string;
  /** The consensus parameters in force on this node. */
  readonly consensus: ConsensusConfig;
}

/**
 * A handle to a joined group, typed by its state machine `M`.
 *
 * Obtained synchronously from `network.groups().withKey(key)….join()`; wait
 * for readiness with {@link Group.when}. Joining a GroupId already joined on
 * this node returns another handle to the same group; the group stops when
 * its last handle is closed.
 */
export interface Group<M extends AnyStateMachine> extends AsyncDisposable {
  /** The group's id. */
  id(): GroupId;
  /** The leader this node currently knows of, if any. */
  leader(): PeerId | undefined;
  /** True when this node is the leader. */
  isLeader(): boolean;
  /** The highest index this node knows to be committed. */
  committed(): Index;
  /** The cursor of the last entry in this node's log. */
  logPosition(): Cursor;
  /** A snapshot of the current bonds. */
  bonds(): Bonds;
  /** What the group was joined with. */
  config(): GroupConfig;
  /** Waits on changes of leader, role, online state, committed index and log. */
  when(): When;

  /**
   * Sends a command to the leader and waits until it is committed at the
   * index it was given.
   *
   * @returns the index of the committed command
   * @throws {OfflineError} no leader reachable, or forwarding timed out (carries the command)
   * @throws {CommandLostError} a leader change removed the entry before commit
   * @throws {EncodingError} the command is not CBOR-encodable
   * @throws {GroupTerminatedError} the group was closed
   */
  execute(command: CommandOf<M>, options?: SignalOptions): Promise<Index>;
  /**
   * Like {@link execute} for several commands, applied in order at consecutive indices.
   *
   * @returns the inclusive range of their indices
   * @throws {NoCommandsError} when `commands` is empty
   */
  executeMany(commands: readonly CommandOf<M>[], options?: SignalOptions): Promise<IndexRange>;
  /**
   * Sends a command to the leader and resolves once the leader has assigned
   * it an index (before commit).
   *
   * @returns the index the command was given
   */
  feed(command: CommandOf<M>, options?: SignalOptions): Promise<Index>;
  /**
   * Like {@link feed} for several commands.
   *
   * @returns the inclusive range of the indices they were given
   * @throws {NoCommandsError} when `commands` is empty
   */
  feedMany(commands: readonly CommandOf<M>[], options?: SignalOptions): Promise<IndexRange>;
  /**
   * Asks the state machine a read-only question.
   *
   * @returns the answer and the log position it reflects
   * @throws {OfflineError} a strong query found no reachable leader (carries the query)
   */
  query(
    query: QueryOf<M>,
    consistency: Consistency,
    options?: SignalOptions,
  ): Promise<QueryResult<ResultOf<M>>>;

  /**
   * Leaves gracefully: the departure is sent and flushed to every bond; same
   * as {@link close}. Aborting stops waiting for the flush; the handle is
   * closed either way.
   */
  leave(options?: SignalOptions): Promise<void>;
  /** Closes this handle; idempotent. Pending calls reject with `GroupTerminatedError`. */
  close(): Promise<void>;
}
