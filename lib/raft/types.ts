// Plain-data types of the consensus core: configuration, messages, and the Ready output.

import type { Cursor, Index, IndexRange, Term } from "../primitives/cursor.ts";
import type { Rng } from "../primitives/rng.ts";
import type { HardState, LogEntry } from "../../storage/types.ts";

/** A node's id inside the core: the hex PeerId (cheap to compare and to use as a map key). */
export type NodeId = string;

/** The role a node plays. */
export type Role = "follower" | "precandidate" | "candidate" | "leader";

/** Voting configuration: who votes and who only replicates. */
export interface Membership {
  readonly voters: readonly NodeId[];
  readonly learners: readonly NodeId[];
}

/** Settings of one core. Timeouts are in ticks; the driver decides how long a tick is. */
export interface RaftConfig {
  /** This node's id. */
  readonly id: NodeId;
  /** Base election timeout (ticks, ≥ 1). Also the check-quorum window. */
  readonly electionTicks: number;
  /** Election timeouts are drawn from `[electionTicks × multiplier, … + electionJitterTicks)`. */
  readonly electionJitterTicks: number;
  /** Leader heartbeat period (ticks, ≥ 1, less than electionTicks). */
  readonly heartbeatTicks: number;
  /** Extra wait before the first election / bootstrap of a fresh node (ticks). */
  readonly bootstrapTicks: number;
  /**
   * This node's leadership multiplier (≥ 1; `Infinity` for observers, which
   * never campaign): scales its election timeout and bootstrap delay.
   */
  readonly leadershipMultiplier: number;
  /** Whether this node may vote and campaign; false for `Observer` nodes (learners forever). */
  readonly canVote: boolean;
  /** Whether a fresh node with an empty log forms its own one-node cluster after the bootstrap delay. */
  readonly autoBootstrap: boolean;
  /** Randomness for election timeouts and cluster ids. */
  readonly rng: Rng;
  /** Max entries in one AppendEntries (default 512). */
  readonly maxEntriesPerMessage?: number;
  /** Max payload bytes in one AppendEntries, by {@link RaftConfig.sizeOf} (default 1 MiB). */
  readonly maxBytesPerMessage?: number;
  /** Max AppendEntries in flight to one follower (default 64). */
  readonly maxInflight?: number;
  /** Entries kept in memory beyond those not yet applied or persisted (default 4096). */
  readonly cacheEntries?: number;
  /** Size estimate of an entry in bytes, for batching (default: 64). */
  readonly sizeOf?: (entry: LogEntry<unknown>) => number;
  /**
   * State-sync hand-off (LogReplaySync): a follower whose log ends this many
   * or more committed entries behind is not sent entries by the leader (only
   * heartbeats) while it fetches them from peers and installs them with
   * `installCommitted`; once it is less than this behind, or makes no
   * progress for 20 heartbeats, the leader replicates to it again.
   * 0 or absent: the leader always replicates itself.
   */
  readonly syncLag?: number;
}

/** What the core needs from durable storage to start (all of it comes from `Storage`). */
export interface RaftInit {
  /** Saved hard state, if any. */
  readonly hardState?: HardState;
  /** The cursor before the first stored entry (pruned prefix / reset point), `{0,0}` if none. */
  readonly prefix?: Cursor;
  /**
   * The stored entries after `prefix`, in order. The core keeps their terms
   * (run-length) and caches the most recent ones; it also reads cluster id and
   * membership from the system entries among them.
   */
  readonly entries?: Iterable<LogEntry<unknown>>;
}

// ---- messages ------------------------------------------------------------------------------

interface Envelope {
  readonly from: NodeId;
  readonly to: NodeId;
  readonly term: Term;
  /** Cluster id of the sender, if it has one; nodes ignore messages of another cluster. */
  readonly clusterId?: string;
}

/** Pre-vote or vote request. A pre-vote carries the term the candidate would use. */
export interface VoteRequest extends Envelope {
  readonly type: "vote";
  readonly preVote: boolean;
  readonly lastLogIndex: Index;
  readonly lastLogTerm: Term;
  /** Set when the campaign was started by TimeoutNow: voters skip the leader-lease check. */
  readonly transfer: boolean;
}

/** Answer to a {@link VoteRequest}. */
export interface VoteResponse extends Envelope {
  readonly type: "voteResponse";
  readonly preVote: boolean;
  readonly granted: boolean;
}

/** Log replication. */
export interface AppendRequest extends Envelope {
  readonly type: "append";
  readonly prevLogIndex: Index;
  readonly prevLogTerm: Term;
  readonly entries: readonly LogEntry<unknown>[];
  readonly leaderCommit: Index;
  /**
   * Set on an empty append that only carries a new commit index to a
   * follower known to hold the leader's whole log: the follower answers only
   * if its log does not match. (Older members ignore it and answer.)
   */
  readonly noReply?: boolean;
}

/** Answer to an {@link AppendRequest}. */
export interface AppendResponse extends Envelope {
  readonly type: "appendResponse";
  readonly success: boolean;
  /** On success: the last index now known to match the leader. */
  readonly matchIndex: Index;
  /** On rejection: the index the follower rejected (the request's prevLogIndex). */
  readonly rejectIndex: Index;
  /** On rejection: a hint, the largest index ≤ rejectIndex whose term is ≤ the request's prevLogTerm. */
  readonly hintIndex: Index;
  /** On rejection: the follower's term at hintIndex. */
  readonly hintTerm: Term;
}

/** Leader heartbeat; `seq` confirms leadership for reads. */
export interface HeartbeatRequest extends Envelope {
  readonly type: "heartbeat";
  /** The leader's commit index, capped at what the follower is known to hold. */
  readonly commit: Index;
  readonly seq: number;
}

/** Answer to a {@link HeartbeatRequest}. */
export interface HeartbeatResponse extends Envelope {
  readonly type: "heartbeatResponse";
  readonly seq: number;
  /** The follower's last log index, so the leader can tell it is behind. */
  readonly lastIndex: Index;
}

/** Tells a caught-up follower to campaign at once (leadership transfer). */
export interface TimeoutNow extends Envelope {
  readonly type: "timeoutNow";
}

/** A follower asks the leader for a read index on behalf of a local read. */
export interface ReadIndexRequest extends Envelope {
  readonly type: "readIndex";
  readonly requestId: string;
}

/** The leader's answer: the read may be served once `index` is applied. `index` -1 means refused. */
export interface ReadIndexResponse extends Envelope {
  readonly type: "readIndexResponse";
  readonly requestId: string;
  readonly index: Index | -1;
}

/** Every message the core sends or receives. */
export type RaftMessage =
  | VoteRequest
  | VoteResponse
  | AppendRequest
  | AppendResponse
  | HeartbeatRequest
  | HeartbeatResponse
  | TimeoutNow
  | ReadIndexRequest
  | ReadIndexResponse;

// ---- outputs -------------------------------------------------------------------------------

/** A read that may be served once the state machine has applied `index`. */
export interface ReadState {
  readonly requestId: string;
  readonly index: Index;
}

/** Things the driver may want to react to or report. */
export type RaftEvent =
  | { readonly type: "roleChanged"; readonly role: Role; readonly term: Term }
  | { readonly type: "leaderChanged"; readonly leader: NodeId | undefined; readonly term: Term }
  | { readonly type: "membershipChanged"; readonly membership: Membership; readonly index: Index }
  | { readonly type: "bootstrapped"; readonly clusterId: string }
  | { readonly type: "joinedCluster"; readonly clusterId: string; readonly leader: NodeId }
  | {
    /** A message from another cluster of the same group arrived (merge rule input). */
    readonly type: "foreignCluster";
    readonly from: NodeId;
    readonly clusterId: string;
    readonly term: Term;
  }
  | { readonly type: "removed" }
  | { readonly type: "transferAborted"; readonly target: NodeId };

/** Why a proposal or membership request was not accepted. */
export type RejectReason =
  | "notLeader"
  | "transferring"
  | "configChangePending"
  | "notCaughtUp"
  | "unknownMember"
  | "alreadyMember"
  | "empty"
  | "removed";

/** The entries of a range the core holds in memory, by index (`undefined`: read it from storage). */
export interface EntryLookup {
  get(index: Index): LogEntry<unknown> | undefined;
}

/**
 * Everything the core wants done, drained by `ready()`. The driver must, in
 * order: persist `hardState`, truncate from `truncateFrom`, append `entries`;
 * then send `messages`; then apply `apply`; then call `advance(ready)`.
 */
export interface Ready {
  /** Changed hard state to persist before sending. */
  readonly hardState?: HardState;
  /** Remove stored entries from this index on before appending `entries`. */
  readonly truncateFrom?: Index;
  /** New entries to append durably, contiguous. */
  readonly entries: readonly LogEntry<unknown>[];
  /** Messages to send after the writes above are durable. */
  readonly messages: readonly RaftMessage[];
  /** Committed entries to apply, in order: the range, and those of them the core holds in memory. */
  readonly apply?: {
    readonly range: IndexRange;
    readonly entries: EntryLookup;
  };
  /** Reads that became serveable. */
  readonly readStates: readonly ReadState[];
  /** Reads that cannot be served here (no leader known, or not leader any more). */
  readonly droppedReads: readonly string[];
  /** Entry ranges the core needs from storage (call `provideEntries`). */
  readonly fetch: readonly IndexRange[];
  /** Events since the last ready. */
  readonly events: readonly RaftEvent[];
}
