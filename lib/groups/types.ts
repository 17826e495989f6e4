// Shared types of the Group API: the Group<M> handle, its status, consistency levels, bonds, config.

import type { ConsensusConfig } from "./config.ts";
import type { When } from "./when.ts";
import type { Cursor, Index, IndexRange, Term } from "../primitives/cursor.ts";
import type { UniqueId } from "../primitives/digest.ts";
import type { GroupId, PeerId } from "../primitives/ids.ts";
import type { AnyStateMachine, CommandOf, QueryOf, ResultOf } from "../machine/state_machine.ts";
import type { HistogramSnapshot } from "../metrics/histogram.ts";

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
 *   check-quorum lease) and names the read index; the node that was asked
 *   (leader or follower, which gets the read index from the leader) waits
 *   until it has applied up to that index, then answers from its own state
 *   machine. Gives up after the consensus `queryTimeout` with an
 *   `OfflineError`.
 */
export type Consistency = "weak" | "strong";

/** The type of the value `Consistency`: its two levels. */
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

/** Traffic and round-trip time of one bond, since it was established. */
export interface BondMetrics {
  /** The member at the other end. */
  readonly peerId: PeerId;
  /**
   * Bytes received on the bond's stream (frames with their 4-byte length
   * prefixes, the handshake included).
   */
  readonly bytesIn: number;
  /** Bytes queued for the peer on the bond's stream, counted like {@link bytesIn}. */
  readonly bytesOut: number;
  /** Frames received after the handshake: group messages and heartbeats. */
  readonly messagesIn: number;
  /** Frames sent after the handshake: group messages and heartbeats. */
  readonly messagesOut: number;
  /**
   * Round-trip time in milliseconds, smoothed (7/8 old + 1/8 new sample, as
   * TCP does) over the bond's heartbeat pings and their pongs; `undefined`
   * until the first pong (and always with a peer of a version that does not
   * answer pings).
   */
  readonly rttMs: number | undefined;
}

/**
 * A snapshot of one group on this node (`group.metrics()`): where it stands
 * in the log, who is in it, and counters since this node joined it. The
 * counters start at 0 on every join; plain numbers, read without locking.
 */
export interface GroupMetrics {
  /** The group. */
  readonly groupId: GroupId;
  /** This node. */
  readonly self: PeerId;
  /** This node's role now (`learner`: a member that does not vote). */
  readonly role: GroupRole;
  /** This node's current term (not the term of its last entry). */
  readonly term: Term;
  /** The leader this node knows of, if any (itself when it leads). */
  readonly leader: PeerId | undefined;
  /** The highest index this node knows to be committed. */
  readonly committed: Index;
  /** The index of the last entry applied to this node's state machine. */
  readonly applied: Index;
  /** The index of the last entry in this node's log (possibly not committed). */
  readonly lastLogIndex: Index;
  /**
   * Voters of the configuration in force here: the latest one in this node's
   * log, committed or not (Raft uses a configuration once it is appended).
   * Empty before this node belongs to a cluster.
   */
  readonly voters: readonly PeerId[];
  /** Learners (members that replicate without voting) of the same configuration. */
  readonly learners: readonly PeerId[];
  /** One entry per bond up now. */
  readonly bonds: readonly BondMetrics[];
  /**
   * Elections this node started: times it became a candidate (after a
   * successful pre-vote, or at once on a leadership transfer), plus founding
   * a cluster of its own at bootstrap (a one-voter election).
   */
  readonly electionsStarted: number;
  /** Elections this node won: times it became leader (bootstrap included). */
  readonly electionsWon: number;
  /**
   * Times this node learned of a leader different from the last one it knew
   * (the first leader counts; a gap without a leader followed by the same
   * leader does not).
   */
  readonly leaderChanges: number;
  /**
   * Commands this node's handles submitted (`execute`, `executeMany`, `feed`,
   * `feedMany`) that a leader accepted, i.e. gave an index.
   */
  readonly proposals: number;
  /**
   * Commands this node's handles submitted that failed after validation:
   * `OfflineError`, `CommandLostError`, an aborted wait, a closed group. A
   * command that a leader accepted and that then failed (lost to a leader
   * change, or its wait for commit aborted) counts here and in
   * {@link GroupMetrics.proposals}, so `proposals - proposalsFailed` is not
   * the number that succeeded.
   */
  readonly proposalsFailed: number;
  /**
   * Commands this node forwarded to a leader (its own handles' commands,
   * when it was not the leader), counted per attempt: a retry after a leader
   * change counts again.
   */
  readonly forwarded: number;
  /** Commands this node proposed as leader on behalf of other members (their forwards). */
  readonly forwardsServed: number;
  /** Times this node discarded its state because its cluster lost a merge. */
  readonly mergesLost: number;
  /**
   * Latency of this node's own `execute` / `executeMany` calls that
   * succeeded, one observation per call: from the call to its commands being
   * committed and applied on this node.
   */
  readonly commitLatency: HistogramSnapshot;
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
 *
 * @example Commands, queries and waits
 * ```ts
 * import { ConsensusConfig, Consistency, GroupKey, KeyValue, Network } from "@mosaik/mosaik";
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
 * await group.when().online(); // a lone member elects itself
 * const index = await group.execute({ op: "set", key: "colour", value: "blue" });
 * const range = await group.feedMany([
 *   { op: "set", key: "size", value: "L" },
 *   { op: "delete", key: "colour" },
 * ]); // resolves once the leader has given them indices
 * await group.when().committed().reaches(range); // now they are committed (and applied here)
 * const { result, atPosition } = await group.query("size", Consistency.Strong);
 * if (result !== "L" || atPosition.index < range.end || range.start <= index) {
 *   throw new Error("unexpected state");
 * }
 * const weak = await group.query("colour", Consistency.Weak); // this node's state, no round trip
 * if (weak.result !== null) throw new Error("colour was deleted");
 * ```
 */
export interface Group<M extends AnyStateMachine> extends AsyncDisposable {
  /**
   * The group's id, derived from key, consensus parameters, machine and
   * state-sync signatures.
   *
   * @returns the same id on every member
   */
  id(): GroupId;
  /**
   * The leader this node currently knows of, if any.
   *
   * @returns its PeerId (this node's own when it leads), or `undefined`
   */
  leader(): PeerId | undefined;
  /**
   * True when this node is the leader.
   *
   * @returns whether this node's role is `leader` now
   */
  isLeader(): boolean;
  /**
   * The highest index this node knows to be committed.
   *
   * @returns the committed index; 0 before the first commit
   */
  committed(): Index;
  /**
   * The cursor of the last entry in this node's log (which may be uncommitted).
   *
   * @returns `{ term, index }` of the last entry; `{ term: 0, index: 0 }` when empty
   */
  logPosition(): Cursor;
  /**
   * A snapshot of the current bonds: this node's authenticated connections
   * to other members.
   *
   * @returns the bonds now; later changes do not show in it
   */
  bonds(): Bonds;
  /**
   * A snapshot of this node's view of the group and its counters since it
   * joined: role, term, leader, log indices, configuration, bonds with their
   * traffic and round-trip times, elections, proposals, forwards and the
   * commit latency histogram (see {@link GroupMetrics} for each field).
   * Cheap: nothing is measured on demand. `Network.builder().withMetrics(…)`
   * serves the same numbers to Prometheus.
   *
   * @returns the metrics now; later changes do not show in it
   *
   * @example
   * ```ts
   * import { ConsensusConfig, GroupKey, KeyValue, Network } from "@mosaik/mosaik";
   * import { MemoryNetwork } from "@mosaik/mosaik/transport/memory";
   *
   * await using net = new MemoryNetwork();
   * await using network = await Network.builder("my-app").withTransport(net.transport()).build();
   * await using group = network.groups().withKey(GroupKey.generate())
   *   .withStateMachine(new KeyValue())
   *   .withConsensusConfig(ConsensusConfig.builder().withBootstrapDelay(0).build())
   *   .join();
   * await group.when().isLeader(); // a lone member founds the group
   * await group.execute({ op: "set", key: "colour", value: "blue" });
   * const m = group.metrics();
   * if (m.role !== "leader" || m.proposals !== 1 || m.commitLatency.count !== 1) {
   *   throw new Error("one command, proposed and committed here");
   * }
   * ```
   */
  metrics(): GroupMetrics;
  /**
   * What the group was joined with, safe to print (the key is redacted).
   *
   * @returns the GroupId, the redacted key and the consensus config
   */
  config(): GroupConfig;
  /**
   * Waits on changes of leader, role, online state, committed index and log.
   *
   * @returns a new {@link When} over this group's status
   */
  when(): When;

  /**
   * Sends a command to the leader and waits until it is committed at the
   * index it was given and applied on this node.
   *
   * @param command the command for the state machine; must be CBOR-encodable
   * @param options `signal` stops waiting (the command may still be committed)
   * @returns the index of the committed command
   * @throws {OfflineError} no leader accepted it within the consensus
   *   `forwardTimeout` (carries the command)
   * @throws {CommandLostError} a leader change removed the entry before commit
   * @throws {EncodingError} the command is not CBOR-encodable
   * @throws {GroupTerminatedError} the group was closed
   */
  execute(command: CommandOf<M>, options?: SignalOptions): Promise<Index>;
  /**
   * Like {@link execute} for several commands, applied in order at consecutive indices.
   *
   * @param commands the commands, at least one
   * @param options `signal` stops waiting
   * @returns the inclusive range of their indices
   * @throws {NoCommandsError} when `commands` is empty
   * @throws {OfflineError | CommandLostError | EncodingError | GroupTerminatedError} as {@link execute}
   */
  executeMany(commands: readonly CommandOf<M>[], options?: SignalOptions): Promise<IndexRange>;
  /**
   * Sends a command to the leader and resolves once the leader has assigned
   * it an index (before commit). Await `when().committed().reaches(index)`
   * to know it is committed.
   *
   * @param command the command for the state machine; must be CBOR-encodable
   * @param options `signal` stops waiting
   * @returns the index the command was given
   * @throws {OfflineError} no leader accepted it within the consensus `forwardTimeout`
   * @throws {EncodingError} the command is not CBOR-encodable
   * @throws {GroupTerminatedError} the group was closed
   */
  feed(command: CommandOf<M>, options?: SignalOptions): Promise<Index>;
  /**
   * Like {@link feed} for several commands, given consecutive indices.
   *
   * @param commands the commands, at least one
   * @param options `signal` stops waiting
   * @returns the inclusive range of the indices they were given
   * @throws {NoCommandsError} when `commands` is empty
   * @throws {OfflineError | EncodingError | GroupTerminatedError} as {@link feed}
   */
  feedMany(commands: readonly CommandOf<M>[], options?: SignalOptions): Promise<IndexRange>;
  /**
   * Asks this node's state machine a read-only question (see
   * {@link Consistency} for what each level guarantees).
   *
   * @param query the query for the state machine's `query`
   * @param consistency `Consistency.Weak` (local, at once) or `Consistency.Strong` (linearizable)
   * @param options `signal` stops waiting
   * @returns the answer and the log position it reflects
   * @throws {OfflineError} a strong query found no leader to confirm the read within the
   *   consensus `queryTimeout` (carries the query)
   * @throws {GroupTerminatedError} the group was closed
   */
  query(
    query: QueryOf<M>,
    consistency: Consistency,
    options?: SignalOptions,
  ): Promise<QueryResult<ResultOf<M>>>;

  /**
   * Leaves gracefully: the departure is sent and flushed to every bond; same
   * as {@link close}. A leader first hands the group over (it removes itself
   * from the voters, else transfers leadership), which can take up to about
   * three election timeouts. Any other member first asks the leader to remove
   * it and keeps replicating until that removal is committed (at most two
   * election timeouts), so the group never depends on a member that left —
   * for example one the leader was just promoting to voter.
   * Only the last handle of a group makes it leave; others just close.
   *
   * @param options accepted for symmetry with the other calls; the current
   *   implementation does not read `signal` and always waits for the departure
   * @returns a promise that resolves once this handle is closed (and, for the
   *   last handle, the group has left)
   */
  leave(options?: SignalOptions): Promise<void>;
  /**
   * Closes this handle, like {@link leave}; idempotent. Later calls on this
   * handle reject with `GroupTerminatedError`; when it was the last handle,
   * the group leaves and its pending calls reject with it too.
   *
   * @returns a promise that resolves once the handle is closed
   */
  close(): Promise<void>;
}
