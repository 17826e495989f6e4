// The consensus core: a pure, synchronous Raft state machine driven by tick/step/propose and drained as Ready.

import type { Index, IndexRange, Term } from "../primitives/cursor.ts";
import { toHex } from "../primitives/bytes.ts";
import { type HardState, type LogEntry, SystemEntry } from "../../storage/types.ts";
import { InvariantError, RaftLog } from "./log.ts";
import { Progress } from "./progress.ts";
import type {
  AppendRequest,
  AppendResponse,
  EntryLookup,
  HeartbeatRequest,
  HeartbeatResponse,
  Membership,
  NodeId,
  RaftConfig,
  RaftEvent,
  RaftInit,
  RaftMessage,
  ReadIndexRequest,
  ReadIndexResponse,
  ReadState,
  Ready,
  RejectReason,
  Role,
  VoteRequest,
  VoteResponse,
} from "./types.ts";

export { InvariantError };

/** Result of an input that may be refused. */
export type Accepted<T> = { ok: true; value: T } | { ok: false; reason: RejectReason };

const EMPTY_MEMBERSHIP: Membership = Object.freeze({ voters: [], learners: [] });

interface PendingRead {
  readonly requestId: string;
  /** Where to send the answer; undefined for local reads. */
  readonly from: NodeId | undefined;
  readonly index: Index;
  readonly seq: number;
}

interface RoleHandler {
  readonly role: Role;
  tick(): void;
  step(m: RaftMessage): void;
}

/**
 * A Raft node without I/O, clock or randomness of its own (DESIGN.md §4).
 *
 * Inputs: {@link RaftCore.tick}, {@link RaftCore.step}, {@link RaftCore.propose},
 * {@link RaftCore.readIndex}, {@link RaftCore.transferLeadership}, membership
 * changes, connectivity hints. Outputs are drained with {@link RaftCore.ready}
 * and acknowledged with {@link RaftCore.advance}; make no other call between
 * the two.
 */
export class RaftCore {
  readonly id: NodeId;
  readonly #cfg: Required<Omit<RaftConfig, "sizeOf">> & Pick<RaftConfig, "sizeOf">;
  readonly #sizeOf: (e: LogEntry<unknown>) => number;
  readonly log: RaftLog;

  #term: Term = 0;
  #votedFor: NodeId | undefined;
  #leader: NodeId | undefined;
  #handler: RoleHandler;
  #hardStateDirty = false;

  #electionElapsed = 0;
  #heartbeatElapsed = 0;
  #randomizedTimeout = 0;
  /** True until the first timeout or the first contact with a leader since start. */
  #firstElection = true;

  #clusterId: string | undefined;
  /** Membership entries in the log, ascending by index, after the prefix. */
  #configs: { index: Index; membership: Membership }[] = [];
  #membership: Membership = EMPTY_MEMBERSHIP;
  /** Whether this node was ever a member (to report removal once). */
  #wasMember = false;
  #removedReported = false;

  #progress = new Map<NodeId, Progress>();
  #votes = new Map<NodeId, boolean>();
  #transferTarget: NodeId | undefined;
  #transferElapsed = 0;

  #readSeq = 0;
  #pendingReads: PendingRead[] = [];
  /** Reads received before the leader committed an entry of its term. */
  #readsBeforeCommit: { requestId: string; from: NodeId | undefined }[] = [];
  /** Reads this follower forwarded to the leader. */
  #forwardedReads = new Set<string>();

  // outputs
  #messages: RaftMessage[] = [];
  #events: RaftEvent[] = [];
  #readStates: ReadState[] = [];
  #droppedReads: string[] = [];
  /** Fetch requests not yet handed out in a Ready. */
  #fetch = new Map<Index, IndexRange>();
  /** Fetch requests handed out and not yet provided: never asked for twice. */
  #fetchInFlight = new Map<Index, IndexRange>();
  #resetPending = false;

  // invariant bookkeeping (tests)
  #highestTermSeen = 0;
  #votesByTerm = new Map<Term, NodeId>();

  constructor(config: RaftConfig, init: RaftInit = {}) {
    this.id = config.id;
    this.#cfg = {
      maxEntriesPerMessage: 512,
      maxBytesPerMessage: 1024 * 1024,
      maxInflight: 64,
      cacheEntries: 4096,
      syncLag: 0,
      ...config,
    };
    if (!(this.#cfg.electionTicks >= 1) || !(this.#cfg.heartbeatTicks >= 1)) {
      throw new RangeError("RaftConfig electionTicks and heartbeatTicks must be at least 1");
    }
    if (this.#cfg.heartbeatTicks >= this.#cfg.electionTicks) {
      throw new RangeError("RaftConfig heartbeatTicks must be less than electionTicks");
    }
    this.#sizeOf = config.sizeOf ?? (() => 64);
    this.#handler = new Follower(this);
    this.log = new RaftLog(
      init.prefix ?? { term: 0, index: 0 },
      this.#cfg.cacheEntries,
      Math.max(this.#cfg.maxEntriesPerMessage * 4, 1024),
    );
    if (init.hardState !== undefined) {
      this.#term = init.hardState.term;
      this.#votedFor = init.hardState.votedFor;
      this.#highestTermSeen = this.#term;
      if (this.#votedFor !== undefined) this.#votesByTerm.set(this.#term, this.#votedFor);
    }
    if (init.entries !== undefined) {
      const entries = [...init.entries];
      this.log.restore(entries);
      for (const e of entries) this.#noteConfigEntry(e);
      this.#applyMembership(false);
    }
    this.#resetRandomizedTimeout();
  }

  // ---- read-only views -------------------------------------------------------------------

  get term(): Term {
    return this.#term;
  }
  get votedFor(): NodeId | undefined {
    return this.#votedFor;
  }
  get role(): Role {
    return this.#handler.role;
  }
  get leader(): NodeId | undefined {
    return this.#leader;
  }
  get committed(): Index {
    return this.log.committed;
  }
  get applied(): Index {
    return this.log.applied;
  }
  get clusterId(): string | undefined {
    return this.#clusterId;
  }
  get membership(): Membership {
    return this.#membership;
  }
  get transferTarget(): NodeId | undefined {
    return this.#transferTarget;
  }
  /** True when this node is a voter in its current configuration. */
  isVoter(id: NodeId = this.id): boolean {
    return this.#membership.voters.includes(id);
  }
  /**
   * True once this node, having been a member, is left out of a committed
   * configuration (the leader's removal of it took effect); false again if it
   * is added back or reset.
   */
  get removed(): boolean {
    return this.#removedReported;
  }
  /** True when this node is in its current configuration, or was and its removal is not committed yet. */
  inConfiguration(): boolean {
    return this.isMember() || (this.#wasMember && !this.#removedReported);
  }
  /** True when `id` is a voter or learner in the current configuration. */
  isMember(id: NodeId = this.id): boolean {
    return this.isVoter(id) || this.#membership.learners.includes(id);
  }
  /** A leader's replication progress of `peer` (match index), for autopilot decisions. */
  matchIndex(peer: NodeId): Index | undefined {
    return this.#progress.get(peer)?.match;
  }
  /** True once this leader has committed an entry of its own term. */
  committedInTerm(): boolean {
    return this.log.termAt(this.log.committed) === this.#term;
  }
  /** True when a membership change may be proposed now (nothing pending, own-term entry committed). */
  canChangeMembership(): boolean {
    const pending = this.#configs.length > 0 &&
      this.#configs[this.#configs.length - 1]!.index > this.log.committed;
    return this.role === "leader" && !pending && this.committedInTerm();
  }

  // ---- inputs ----------------------------------------------------------------------------

  /** Advances logical time by one tick. */
  tick(): void {
    this.#handler.tick();
  }

  /** Feeds a message from a peer. Malformed or foreign messages are ignored. */
  step(m: RaftMessage): void {
    if (m.to !== this.id || m.from === this.id) return;
    if (
      m.clusterId !== undefined && this.#clusterId !== undefined && m.clusterId !== this.#clusterId
    ) {
      this.#events.push({
        type: "foreignCluster",
        from: m.from,
        clusterId: m.clusterId,
        term: m.term,
      });
      return;
    }
    if (m.term > this.#term) {
      if (m.type === "vote") {
        const inLease = this.#leader !== undefined &&
          this.#electionElapsed < this.#cfg.electionTicks;
        if (!m.transfer && inLease) return; // a healthy leader: do not let a rejoining node disrupt it
      }
      if (m.type === "vote" && m.preVote) {
        // a pre-vote does not change our term
      } else if (m.type === "voteResponse" && m.preVote && m.granted) {
        // a granted pre-vote echoes the future term; the pre-candidate handles it
      } else {
        const leader = m.type === "append" || m.type === "heartbeat" ? m.from : undefined;
        this.becomeFollower(m.term, leader);
      }
    } else if (m.term < this.#term) {
      if (m.type === "append" || m.type === "heartbeat") {
        // tell a stale leader about the newer term so it steps down
        this.send({
          type: "appendResponse",
          to: m.from,
          success: false,
          matchIndex: 0,
          rejectIndex: 0,
          hintIndex: 0,
          hintTerm: 0,
        });
      } else if (m.type === "vote" && m.preVote) {
        this.send({ type: "voteResponse", to: m.from, preVote: true, granted: false });
      }
      return;
    }
    if (m.type === "vote") {
      this.#handleVoteRequest(m);
      return;
    }
    if (m.type === "readIndex") {
      this.#handleReadIndexRequest(m);
      return;
    }
    this.#handler.step(m);
  }

  /**
   * Appends commands to the log (leader only). Returns the assigned index range.
   * A follower answers `notLeader`; the driver forwards to {@link RaftCore.leader}.
   */
  propose(commands: readonly unknown[]): Accepted<IndexRange> {
    if (commands.length === 0) return { ok: false, reason: "empty" };
    if (this.role !== "leader") return { ok: false, reason: "notLeader" };
    if (this.#transferTarget !== undefined) return { ok: false, reason: "transferring" };
    const start = this.log.lastIndex + 1;
    const entries = commands.map((command, i) => ({ index: start + i, term: this.#term, command }));
    this.#appendAsLeader(entries);
    return { ok: true, value: { start, end: start + commands.length - 1 } };
  }

  /**
   * Asks for a linearizable read. A `ReadState` with this id appears in a
   * later Ready once leadership is confirmed; the read may be served when the
   * state machine has applied its index. Without a leader it is dropped.
   */
  readIndex(requestId: string): void {
    if (this.role === "leader") {
      this.#leaderRead(requestId, undefined);
    } else if (this.#leader !== undefined) {
      this.#forwardedReads.add(requestId);
      this.send({ type: "readIndex", to: this.#leader, requestId });
    } else {
      this.#droppedReads.push(requestId);
    }
  }

  /**
   * Hands leadership to `target` (a voter): once it has caught up it is told
   * to campaign at once. Proposals are refused meanwhile; aborted after an
   * election timeout.
   */
  transferLeadership(target: NodeId): Accepted<NodeId> {
    if (this.role !== "leader") return { ok: false, reason: "notLeader" };
    if (target === this.id || !this.isVoter(target)) return { ok: false, reason: "unknownMember" };
    this.#transferTarget = target;
    this.#transferElapsed = 0;
    const pr = this.#progress.get(target)!;
    if (pr.match === this.log.lastIndex) this.send({ type: "timeoutNow", to: target });
    else this.#sendAppend(target);
    return { ok: true, value: target };
  }

  /** Proposes adding `peer` as a learner (leader only, one change at a time). */
  addLearner(peer: NodeId): Accepted<Index> {
    const refused = this.#checkChange();
    if (refused !== undefined) return { ok: false, reason: refused };
    if (this.isMember(peer)) return { ok: false, reason: "alreadyMember" };
    const m = this.#membership;
    return this.#proposeMembership({ voters: m.voters, learners: [...m.learners, peer] });
  }

  /** Proposes making learner `peer` a voter; refused until it holds every committed entry. */
  promote(peer: NodeId): Accepted<Index> {
    const refused = this.#checkChange();
    if (refused !== undefined) return { ok: false, reason: refused };
    const m = this.#membership;
    if (!m.learners.includes(peer)) return { ok: false, reason: "unknownMember" };
    if ((this.#progress.get(peer)?.match ?? 0) < this.log.committed) {
      return { ok: false, reason: "notCaughtUp" };
    }
    return this.#proposeMembership({
      voters: [...m.voters, peer],
      learners: m.learners.filter((l) => l !== peer),
    });
  }

  /**
   * Proposes removing `peer` (voter or learner). A leader removing itself
   * keeps leading until the change commits, then steps down.
   */
  remove(peer: NodeId): Accepted<Index> {
    const refused = this.#checkChange();
    if (refused !== undefined) return { ok: false, reason: refused };
    const m = this.#membership;
    if (!this.isMember(peer)) return { ok: false, reason: "unknownMember" };
    const voters = m.voters.filter((v) => v !== peer);
    if (voters.length === 0) return { ok: false, reason: "unknownMember" };
    return this.#proposeMembership({ voters, learners: m.learners.filter((l) => l !== peer) });
  }

  /** Connectivity hint: `peer` could not be reached; the leader falls back to probing it. */
  reportUnreachable(peer: NodeId): void {
    const pr = this.#progress.get(peer);
    if (this.role === "leader" && pr !== undefined && pr.state === "replicate") pr.becomeProbe();
  }

  /** Connectivity hint: a connection to `peer` is (re)established; a leader probes it at once. */
  reportConnected(peer: NodeId): void {
    const pr = this.#progress.get(peer);
    if (this.role !== "leader" || pr === undefined) return;
    pr.probeSent = false;
    this.#sendAppend(peer);
  }

  /**
   * Forms a new one-node cluster with this node as its only voter (an empty
   * node only). Called by the core itself after the bootstrap delay when
   * `autoBootstrap` is set.
   */
  bootstrap(): boolean {
    if (this.log.lastIndex !== 0 || this.#clusterId !== undefined || !this.#cfg.canVote) {
      return false;
    }
    const clusterId = toHex(randomId(this.#cfg.rng));
    this.#term += 1;
    this.#votedFor = this.id;
    this.#hardStateDirty = true;
    this.#noteTerm();
    this.#becomeLeaderWith([{
      index: 1,
      term: this.#term,
      command: new SystemEntry({ type: "bootstrap", clusterId, voters: [this.id] }),
    }]);
    this.#events.push({ type: "bootstrapped", clusterId });
    return true;
  }

  /**
   * Discards the whole log and leaves the cluster (the losing side of a merge,
   * DESIGN.md §3.4). Term and vote are kept so no vote is ever cast twice.
   * The driver resets its state machine and storage (`Ready.resetLog`).
   */
  resetToEmpty(): void {
    this.#dropAllReads();
    this.log.resetTo({ term: 0, index: 0 });
    this.#configs = [];
    this.#membership = EMPTY_MEMBERSHIP;
    this.#clusterId = undefined;
    this.#wasMember = false;
    this.#removedReported = false;
    this.#resetPending = true;
    this.#firstElection = true;
    this.becomeFollower(this.#term, undefined);
  }

  /** Accepts entries the driver fetched from storage after a `Ready.fetch` request. */
  provideEntries(entries: readonly LogEntry<unknown>[]): void {
    if (entries.length === 0) return;
    const first = entries[0]!.index;
    const last = entries[entries.length - 1]!.index;
    for (const [start, r] of this.#fetchInFlight) {
      if (r.start <= last && r.end >= first) this.#fetchInFlight.delete(start);
    }
    if (this.log.provide(entries) === 0 || this.role !== "leader") return;
    // only peers waiting for these entries
    for (const [peer, pr] of this.#progress) {
      if (peer !== this.id && pr.next >= first && pr.next <= last) this.#sendAppends(peer);
    }
  }

  // ---- outputs ---------------------------------------------------------------------------

  /** True when {@link RaftCore.ready} has something to do. */
  hasReady(): boolean {
    return this.#hardStateDirty || this.log.hasUnstable() || this.#messages.length > 0 ||
      this.log.committed > this.log.applied || this.#readStates.length > 0 ||
      this.#droppedReads.length > 0 || this.#fetch.size > 0 || this.#events.length > 0 ||
      this.#resetPending;
  }

  /** Drains everything the driver must do; see {@link Ready} for the order. */
  ready(): Ready & { resetLog?: true; lastEntryIndex: Index } {
    const { truncateFrom, entries } = this.log.takeUnstable();
    const out: Mutable<Ready & { resetLog?: true; lastEntryIndex: Index }> = {
      entries,
      messages: this.#messages,
      readStates: this.#readStates,
      droppedReads: this.#droppedReads,
      fetch: this.#fetch.size === 0 ? [] : [...this.#fetch.values()],
      events: this.#events,
      lastEntryIndex: entries.length > 0 ? entries[entries.length - 1]!.index : 0,
    };
    if (this.#hardStateDirty) out.hardState = this.hardState();
    if (truncateFrom !== undefined) out.truncateFrom = truncateFrom;
    if (this.log.committed > this.log.applied) {
      const start = this.log.applied + 1;
      const end = this.log.committed;
      out.apply = {
        range: { start, end },
        entries: new HeldEntries(start, this.log.held(start, end)),
      };
    }
    if (this.#resetPending) out.resetLog = true;
    this.#hardStateDirty = false;
    this.#resetPending = false;
    this.#messages = [];
    this.#events = [];
    this.#readStates = [];
    this.#droppedReads = [];
    for (const [start, r] of this.#fetch) this.#fetchInFlight.set(start, r);
    this.#fetch.clear();
    return out;
  }

  /** Acknowledges a Ready: its writes are durable and its committed entries applied. */
  advance(rd: { lastEntryIndex: Index; apply?: { range: IndexRange } }): void {
    if (rd.lastEntryIndex > 0) this.log.persistedTo(rd.lastEntryIndex);
    if (rd.apply !== undefined) this.log.applied = Math.max(this.log.applied, rd.apply.range.end);
    if (this.role === "leader") {
      const self = this.#progress.get(this.id);
      if (self !== undefined) self.maybeUpdate(this.log.persisted);
      if (this.#maybeCommit()) this.#bcastAppend();
    }
    this.log.evict();
  }

  /** The hard state to persist. */
  hardState(): HardState {
    return this.#votedFor === undefined
      ? { term: this.#term }
      : { term: this.#term, votedFor: this.#votedFor };
  }

  // ---- invariants ------------------------------------------------------------------------

  /** Throws {@link InvariantError} if an internal invariant is broken (run in tests). */
  assertInvariants(): void {
    this.log.check();
    if (this.#term < this.#highestTermSeen) {
      throw new InvariantError(`term went back from ${this.#highestTermSeen} to ${this.#term}`);
    }
    if (this.role === "leader" && this.#leader !== this.id) {
      throw new InvariantError("leader does not know itself");
    }
  }

  // ---- role transitions (used by handlers) ------------------------------------------------

  /** @internal */
  becomeFollower(term: Term, leader: NodeId | undefined): void {
    const wasLeader = this.role === "leader";
    if (term > this.#term) {
      this.#term = term;
      this.#votedFor = undefined;
      this.#hardStateDirty = true;
      this.#noteTerm();
    }
    this.#abortTransfer();
    if (wasLeader) this.#dropAllReads();
    this.#progress.clear();
    this.#fetchInFlight.clear();
    this.#setHandler(new Follower(this));
    this.#setLeader(leader);
    this.#electionElapsed = 0;
    this.#resetRandomizedTimeout();
  }

  /** @internal Starts a pre-vote campaign (or a real one when `transfer`). */
  campaign(transfer: boolean): void {
    if (!this.#promotable()) return;
    this.#firstElection = false;
    if (transfer) {
      this.#becomeCandidate(true);
      return;
    }
    this.#setHandler(new Candidate(this, true));
    this.#setLeader(undefined);
    this.#electionElapsed = 0;
    this.#resetRandomizedTimeout();
    this.#votes.clear();
    this.#votes.set(this.id, true);
    if (this.#tally() === "won") {
      this.#becomeCandidate(false);
      return;
    }
    this.#requestVotes(true, this.#term + 1, false);
  }

  /** @internal */
  becomeCandidateAfterPreVote(): void {
    this.#becomeCandidate(false);
  }

  #becomeCandidate(transfer: boolean): void {
    this.#term += 1;
    this.#votedFor = this.id;
    this.#hardStateDirty = true;
    this.#noteTerm();
    this.#setHandler(new Candidate(this, false));
    this.#setLeader(undefined);
    this.#electionElapsed = 0;
    this.#resetRandomizedTimeout();
    this.#votes.clear();
    this.#votes.set(this.id, true);
    if (this.#tally() === "won") {
      this.#becomeLeader();
      return;
    }
    this.#requestVotes(false, this.#term, transfer);
  }

  #becomeLeader(): void {
    this.#becomeLeaderWith([{
      index: this.log.lastIndex + 1,
      term: this.#term,
      command: SystemEntry.noop(),
    }]);
  }

  #becomeLeaderWith(first: LogEntry<unknown>[]): void {
    this.#setHandler(new Leader(this));
    this.#setLeader(this.id);
    this.#electionElapsed = 0;
    this.#heartbeatElapsed = 0;
    this.#firstElection = false;
    this.#progress.clear();
    this.#resetProgress();
    for (const pr of this.#progress.values()) pr.recentActive = true;
    this.#appendAsLeader(first);
    // Reads that arrived as a follower were forwarded; they are the old leader's business.
  }

  /** @internal */
  recordVote(from: NodeId, granted: boolean): "won" | "lost" | "pending" {
    if (this.isVoter(from)) this.#votes.set(from, granted);
    return this.#tally();
  }

  /** @internal */
  becomeLeaderAfterVote(): void {
    this.#becomeLeader();
  }

  // ---- helpers for handlers ---------------------------------------------------------------

  /** @internal Queues a message; fills in sender, term and cluster id. */
  send(m: DistributiveOmit<RaftMessage, "from" | "term" | "clusterId"> & { term?: Term }): void {
    const full = {
      ...m,
      from: this.id,
      term: m.term ?? this.#term,
      ...(this.#clusterId !== undefined ? { clusterId: this.#clusterId } : {}),
    } as RaftMessage;
    if (full.type === "appendResponse" && full.success) {
      // Acks are cumulative (the leader frees everything up to matchIndex): a later
      // success to the same leader in the same term replaces one still queued, so
      // a follower that handled several appends in one Ready sends one answer.
      for (let i = this.#messages.length - 1; i >= 0; i--) {
        const queued = this.#messages[i]!;
        if (
          queued.type === "appendResponse" && queued.success && queued.to === full.to &&
          queued.term === full.term && queued.matchIndex <= full.matchIndex
        ) {
          this.#messages[i] = full;
          return;
        }
      }
    }
    this.#messages.push(full);
  }

  /** @internal Election clock of followers and candidates. */
  tickElection(): void {
    this.#electionElapsed++;
    if (this.#clusterId === undefined && this.log.lastIndex === 0) {
      // An empty node: bootstrap its own cluster after the bootstrap delay, unless a leader adds it first.
      if (this.#cfg.autoBootstrap && this.#electionElapsed >= this.#firstTimeout()) {
        this.bootstrap();
      }
      return;
    }
    if (this.#promotable() && this.#electionElapsed >= this.#firstTimeout()) {
      this.campaign(false);
    }
  }

  /** @internal Leader clock: heartbeats, check-quorum, transfer timeout. */
  tickLeader(): void {
    this.#heartbeatElapsed++;
    this.#electionElapsed++;
    if (this.#electionElapsed >= this.#cfg.electionTicks) {
      this.#electionElapsed = 0;
      if (!this.#quorumActive()) {
        this.becomeFollower(this.#term, undefined);
        return;
      }
      for (const [id, pr] of this.#progress) if (id !== this.id) pr.recentActive = false;
      // a fetch the driver never answered (storage error) may be asked for again
      this.#fetchInFlight.clear();
    }
    if (this.#transferTarget !== undefined && ++this.#transferElapsed >= this.#cfg.electionTicks) {
      this.#abortTransfer();
    }
    if (this.#heartbeatElapsed >= this.#cfg.heartbeatTicks) {
      this.#heartbeatElapsed = 0;
      this.#bcastHeartbeat();
    }
  }

  /** @internal */
  handleAppend(m: AppendRequest): void {
    this.#electionElapsed = 0;
    this.#firstElection = false;
    this.#setLeader(m.from);
    const reply = (r: Omit<AppendResponse, "from" | "term" | "clusterId" | "type" | "to">) =>
      this.send({ type: "appendResponse", to: m.from, ...r });
    if (m.prevLogIndex < this.log.committed) {
      if (m.noReply === true) return;
      reply({
        success: true,
        matchIndex: this.log.committed,
        rejectIndex: 0,
        hintIndex: 0,
        hintTerm: 0,
      });
      return;
    }
    const result = this.log.maybeAppend(m.prevLogIndex, m.prevLogTerm, m.entries);
    if (result === undefined) {
      let hint = Math.min(m.prevLogIndex, this.log.lastIndex);
      hint = this.log.findConflictByTerm(hint, m.prevLogTerm);
      reply({
        success: false,
        matchIndex: 0,
        rejectIndex: m.prevLogIndex,
        hintIndex: hint,
        hintTerm: this.log.termAt(hint) ?? 0,
      });
      return;
    }
    if (result.written !== undefined) this.#afterFollowerWrite(result.written);
    if (this.log.commitTo(Math.min(m.leaderCommit, result.lastNew))) this.#afterCommit();
    if (m.noReply === true) return;
    reply({ success: true, matchIndex: result.lastNew, rejectIndex: 0, hintIndex: 0, hintTerm: 0 });
  }

  /**
   * State sync (LogReplaySync): installs entries that a member of this
   * cluster reported as committed, as a follower or learner would take them
   * from the leader — matching entries are skipped, a conflict (only possible
   * above this node's commit index) truncates — and advances the commit
   * index over them, since they are committed cluster-wide. Nothing is
   * acknowledged to anyone; the next append from the leader simply matches.
   *
   * @param prevIndex the index before `entries[0]`
   * @param prevTerm the term at `prevIndex` in the sender's log
   * @param entries contiguous committed entries from `prevIndex + 1`
   * @returns the last index installed, or 0 when nothing was (not in a
   *   cluster, leader, or `(prevIndex, prevTerm)` does not match this log)
   */
  installCommitted(
    prevIndex: Index,
    prevTerm: Term,
    entries: readonly LogEntry<unknown>[],
  ): Index {
    if (this.role === "leader" || entries.length === 0) return 0;
    // A new member (no cluster yet) takes the committed log from its start.
    if (this.#clusterId === undefined && prevIndex !== 0) return 0;
    const result = this.log.maybeAppend(prevIndex, prevTerm, entries);
    if (result === undefined) return 0;
    if (result.written !== undefined) this.#afterFollowerWrite(result.written);
    if (this.log.commitTo(result.lastNew)) this.#afterCommit();
    return result.lastNew;
  }

  /** @internal */
  handleHeartbeat(m: HeartbeatRequest): void {
    this.#electionElapsed = 0;
    this.#firstElection = false;
    this.#setLeader(m.from);
    if (this.log.commitTo(m.commit)) this.#afterCommit();
    this.send({ type: "heartbeatResponse", to: m.from, seq: m.seq, lastIndex: this.log.lastIndex });
  }

  /** @internal */
  handleReadIndexResponse(m: ReadIndexResponse): void {
    if (!this.#forwardedReads.delete(m.requestId)) return;
    if (m.index < 0) this.#droppedReads.push(m.requestId);
    else this.#readStates.push({ requestId: m.requestId, index: m.index });
  }

  /** @internal */
  leaderStep(m: RaftMessage): void {
    const pr = this.#progress.get(m.from);
    switch (m.type) {
      case "appendResponse": {
        if (pr === undefined) return;
        pr.recentActive = true;
        if (m.success) {
          const wasProbe = pr.state === "probe";
          if (pr.maybeUpdate(m.matchIndex) || wasProbe) {
            if (wasProbe) pr.becomeReplicate();
            if (this.#maybeCommit()) this.#bcastAppend();
            else this.#sendAppends(m.from);
          } else if (pr.next <= this.log.lastIndex) {
            this.#sendAppends(m.from);
          }
          if (m.from === this.#transferTarget && pr.match === this.log.lastIndex) {
            this.send({ type: "timeoutNow", to: m.from });
          }
        } else {
          const probeAt = m.hintTerm > 0
            ? this.log.findConflictByTerm(m.hintIndex, m.hintTerm)
            : m.hintIndex;
          if (pr.maybeDecrTo(m.rejectIndex, probeAt + 1)) this.#sendAppend(m.from);
        }
        return;
      }
      case "heartbeatResponse": {
        if (pr === undefined) return;
        pr.recentActive = true;
        pr.probeSent = false;
        // appends in flight may have been lost: free one slot so replication can resume
        if (pr.state === "replicate" && pr.inflight.length >= this.#cfg.maxInflight) {
          pr.inflight.shift();
        }
        if (m.seq > pr.ackedSeq) pr.ackedSeq = m.seq;
        if (pr.state === "syncing") {
          if (m.lastIndex > pr.syncSeen) {
            pr.syncSeen = m.lastIndex;
            pr.syncStalls = 0;
          } else {
            pr.syncStalls++;
          }
          const stalled = pr.syncStalls >= 20;
          if (stalled || this.log.committed - m.lastIndex < this.#cfg.syncLag) {
            // Caught up (or state sync is not getting anywhere: replicate ourselves from now on).
            if (stalled) pr.noSync = true;
            pr.becomeProbe();
            pr.next = Math.max(pr.match, Math.min(m.lastIndex, this.log.lastIndex)) + 1;
          }
        }
        if (pr.match < this.log.lastIndex) this.#sendAppend(m.from);
        this.#confirmReads();
        return;
      }
      default:
        return;
    }
  }

  // ---- internals -------------------------------------------------------------------------

  #handleVoteRequest(m: VoteRequest): void {
    const canVote = this.#votedFor === m.from ||
      (this.#votedFor === undefined && this.#leader === undefined) ||
      (m.preVote && m.term > this.#term);
    const granted = this.#cfg.canVote && this.grantVote(m, canVote);
    // A granted pre-vote answers with the candidate's future term; everything else with ours.
    this.send({
      type: "voteResponse",
      to: m.from,
      preVote: m.preVote,
      granted,
      term: granted && m.preVote ? m.term : this.#term,
    });
    if (granted && !m.preVote) {
      this.#electionElapsed = 0;
      this.#votedFor = m.from;
      this.#hardStateDirty = true;
      const prior = this.#votesByTerm.get(this.#term);
      if (prior !== undefined && prior !== m.from) {
        throw new InvariantError(`second vote in term ${this.#term}: ${prior} then ${m.from}`);
      }
      this.#votesByTerm.set(this.#term, m.from);
    }
  }

  /**
   * The vote rule: may vote in this term (`canVote`) and the candidate's log is
   * at least as up to date as ours. A method so tests can break it on purpose.
   */
  protected grantVote(m: VoteRequest, canVote: boolean): boolean {
    return canVote && this.log.isUpToDate(m.lastLogIndex, m.lastLogTerm);
  }

  /**
   * The commit rule: the highest index a majority of voters hold, counted only
   * if it is of the current term (Raft §5.4.2). A method so tests can break it.
   */
  protected commitCandidate(quorumIndex: Index): Index | undefined {
    return this.log.termAt(quorumIndex) === this.#term ? quorumIndex : undefined;
  }

  #handleReadIndexRequest(m: ReadIndexRequest): void {
    if (this.role !== "leader") {
      this.send({ type: "readIndexResponse", to: m.from, requestId: m.requestId, index: -1 });
      return;
    }
    this.#leaderRead(m.requestId, m.from);
  }

  #leaderRead(requestId: string, from: NodeId | undefined): void {
    if (!this.committedInTerm()) {
      this.#readsBeforeCommit.push({ requestId, from });
      return;
    }
    const index = this.log.committed;
    if (this.#membership.voters.length === 1 && this.isVoter()) {
      this.#answerRead({ requestId, from, index, seq: 0 });
      return;
    }
    this.#readSeq += 1;
    this.#pendingReads.push({ requestId, from, index, seq: this.#readSeq });
    this.#bcastHeartbeat();
  }

  #answerRead(r: PendingRead): void {
    if (r.from === undefined) this.#readStates.push({ requestId: r.requestId, index: r.index });
    else {this.send({
        type: "readIndexResponse",
        to: r.from,
        requestId: r.requestId,
        index: r.index,
      });}
  }

  #confirmReads(): void {
    if (this.#pendingReads.length === 0) return;
    const acked = this.#membership.voters.map((v) =>
      v === this.id ? this.#readSeq : (this.#progress.get(v)?.ackedSeq ?? 0)
    );
    acked.sort((a, b) => b - a);
    const confirmed = acked[Math.floor(this.#membership.voters.length / 2)] ?? 0;
    while (this.#pendingReads.length > 0 && this.#pendingReads[0]!.seq <= confirmed) {
      this.#answerRead(this.#pendingReads.shift()!);
    }
  }

  #dropAllReads(): void {
    for (const r of [...this.#pendingReads, ...this.#readsBeforeCommit]) {
      if (r.from === undefined) this.#droppedReads.push(r.requestId);
      else this.send({ type: "readIndexResponse", to: r.from, requestId: r.requestId, index: -1 });
    }
    this.#pendingReads = [];
    this.#readsBeforeCommit = [];
    for (const id of this.#forwardedReads) this.#droppedReads.push(id);
    this.#forwardedReads.clear();
  }

  #checkChange(): RejectReason | undefined {
    if (this.role !== "leader") return "notLeader";
    if (this.#transferTarget !== undefined) return "transferring";
    if (!this.canChangeMembership()) return "configChangePending";
    return undefined;
  }

  #proposeMembership(next: Membership): Accepted<Index> {
    const index = this.log.lastIndex + 1;
    this.#appendAsLeader([{
      index,
      term: this.#term,
      command: new SystemEntry({
        type: "membership",
        voters: [...next.voters],
        learners: [...next.learners],
      }),
    }]);
    return { ok: true, value: index };
  }

  #appendAsLeader(entries: LogEntry<unknown>[]): void {
    this.log.append(entries);
    let changed = false;
    for (const e of entries) if (this.#noteConfigEntry(e)) changed = true;
    if (changed) this.#applyMembership(true);
    this.#bcastAppend();
  }

  /** Records a system entry's cluster id and membership; returns whether it was one. */
  #noteConfigEntry(e: LogEntry<unknown>): boolean {
    if (!(e.command instanceof SystemEntry)) return false;
    const body = e.command.body;
    if (body.type === "bootstrap") {
      if (e.index === 1) this.#clusterId = body.clusterId;
      this.#configs.push({
        index: e.index,
        membership: { voters: [...body.voters], learners: [] },
      });
      return true;
    }
    if (body.type === "membership") {
      this.#configs.push({
        index: e.index,
        membership: { voters: body.voters, learners: body.learners },
      });
      return true;
    }
    return false;
  }

  /** Makes the latest configuration in the log the current one (effective when appended). */
  #applyMembership(live: boolean): void {
    const last = this.#configs[this.#configs.length - 1];
    this.#membership = last?.membership ?? EMPTY_MEMBERSHIP;
    if (this.isMember()) {
      this.#wasMember = true;
      this.#removedReported = false;
    }
    if (live) {
      this.#events.push({
        type: "membershipChanged",
        membership: this.#membership,
        index: last?.index ?? 0,
      });
    }
    if (this.role === "leader") this.#resetProgress();
  }

  /** After a follower wrote entries from `from` on: drop truncated configs, pick up new ones. */
  #afterFollowerWrite(from: Index): void {
    let changed = false;
    while (this.#configs.length > 0 && this.#configs[this.#configs.length - 1]!.index >= from) {
      this.#configs.pop();
      changed = true;
    }
    const hadCluster = this.#clusterId;
    if (from <= 1) this.#clusterId = undefined;
    for (let i = from; i <= this.log.lastIndex; i++) {
      const e = this.log.entry(i);
      if (e !== undefined && this.#noteConfigEntry(e)) changed = true;
    }
    if (changed) this.#applyMembership(true);
    if (hadCluster === undefined && this.#clusterId !== undefined && this.#leader !== undefined) {
      this.#events.push({
        type: "joinedCluster",
        clusterId: this.#clusterId,
        leader: this.#leader,
      });
    }
  }

  #afterCommit(): void {
    this.#maybeReportRemoved();
  }

  #maybeReportRemoved(): void {
    if (!this.#wasMember || this.isMember() || this.#removedReported) return;
    // removed once the configuration that dropped us is committed
    const last = this.#configs[this.#configs.length - 1];
    if (last !== undefined && last.index <= this.log.committed) {
      this.#removedReported = true;
      this.#events.push({ type: "removed" });
    }
  }

  /** The configuration in force at the commit index (the last committed config entry). */
  #committedMembership(): Membership {
    for (let i = this.#configs.length - 1; i >= 0; i--) {
      if (this.#configs[i]!.index <= this.log.committed) return this.#configs[i]!.membership;
    }
    return EMPTY_MEMBERSHIP;
  }

  /**
   * Tracks progress of every member of the current configuration, and of
   * members it removed until the removal commits, so a removed node still
   * receives the entry that removes it.
   */
  #resetProgress(): void {
    const old = this.#committedMembership();
    const members = new Set([
      ...this.#membership.voters,
      ...this.#membership.learners,
      ...old.voters,
      ...old.learners,
      this.id,
    ]);
    for (const id of this.#progress.keys()) if (!members.has(id)) this.#progress.delete(id);
    for (const id of members) {
      if (!this.#progress.has(id)) {
        const pr = new Progress(this.log.lastIndex + 1);
        pr.recentActive = true;
        if (id === this.id) {
          pr.match = this.log.persisted;
          pr.becomeReplicate();
        }
        this.#progress.set(id, pr);
      }
    }
    if (this.#transferTarget !== undefined && !this.isVoter(this.#transferTarget)) {
      this.#abortTransfer();
    }
  }

  /** Sends one AppendEntries to `to` if its window allows; returns whether something was sent. */
  #sendAppend(to: NodeId): boolean {
    const pr = this.#progress.get(to);
    if (pr === undefined || to === this.id || pr.isPaused(this.#cfg.maxInflight)) return false;
    const prevIndex = pr.next - 1;
    const syncLag = this.#cfg.syncLag;
    if (
      syncLag > 0 && pr.state === "probe" && !pr.noSync &&
      this.log.committed - prevIndex >= syncLag
    ) {
      // Far behind: it fetches committed entries from peers; heartbeats watch its progress.
      pr.becomeSyncing(prevIndex);
      return false;
    }
    const prevTerm = this.log.termAt(prevIndex);
    if (prevTerm === undefined) {
      // Below our pruned prefix: the peer needs state sync, which the driver runs.
      return false;
    }
    let entries: LogEntry<unknown>[] = [];
    if (pr.next <= this.log.lastIndex) {
      const got = this.log.slice(
        pr.next,
        this.#cfg.maxEntriesPerMessage,
        this.#cfg.maxBytesPerMessage,
        this.#sizeOf,
      );
      if (got === undefined) {
        const pending = [...this.#fetch.values(), ...this.#fetchInFlight.values()]
          .some((r) => r.start <= pr.next && r.end >= pr.next);
        if (!pending) {
          const end = Math.min(pr.next + this.#cfg.maxEntriesPerMessage - 1, this.log.lastIndex);
          this.#fetch.set(pr.next, { start: pr.next, end });
        }
        return false;
      }
      entries = got;
    }
    // A commit-only append to a follower known to hold everything needs no answer: it
    // would tell the leader what it knows, and heartbeats keep telling that the follower is
    // alive. (Not when the leader only sent everything: an answer may have been lost.)
    // A follower whose log does not match answers anyway.
    const noReply = entries.length === 0 && pr.state === "replicate" && pr.match === prevIndex;
    if (noReply && pr.sentCommit >= this.log.committed) return false;
    this.send({
      type: "append",
      to,
      prevLogIndex: prevIndex,
      prevLogTerm: prevTerm,
      entries,
      leaderCommit: this.log.committed,
      ...(noReply ? { noReply } : {}),
    });
    pr.sent(prevIndex + entries.length, entries.length);
    if (pr.state === "replicate") pr.sentCommit = this.log.committed;
    return true;
  }

  #bcastAppend(): void {
    for (const id of this.#progress.keys()) if (id !== this.id) this.#sendAppends(id);
  }

  /** Sends to `to` until its window is full or it has everything (at least one message, for the commit index). */
  #sendAppends(to: NodeId): void {
    if (!this.#sendAppend(to)) return;
    const pr = this.#progress.get(to)!;
    while (pr.next <= this.log.lastIndex && !pr.isPaused(this.#cfg.maxInflight)) {
      if (!this.#sendAppend(to)) break;
    }
  }

  #bcastHeartbeat(): void {
    for (const [id, pr] of this.#progress) {
      if (id === this.id) continue;
      this.send({
        type: "heartbeat",
        to: id,
        commit: Math.min(pr.match, this.log.committed),
        seq: this.#readSeq,
      });
    }
  }

  #maybeCommit(): boolean {
    const voters = this.#membership.voters;
    if (voters.length === 0) return false;
    const matches = voters.map((v) => this.#progress.get(v)?.match ?? 0);
    matches.sort((a, b) => b - a);
    const quorumIndex = matches[Math.floor(voters.length / 2)]!;
    if (quorumIndex <= this.log.committed) return false;
    const to = this.commitCandidate(quorumIndex);
    if (to === undefined || !this.log.commitTo(to)) return false;
    this.#onLeaderCommit();
    return true;
  }

  #onLeaderCommit(): void {
    if (
      this.#progress.size > this.#membership.voters.length + this.#membership.learners.length + 1
    ) {
      // a removal committed: tell the removed nodes (commit index), then stop tracking them
      this.#bcastAppend();
      this.#resetProgress();
    }
    if (this.#readsBeforeCommit.length > 0 && this.committedInTerm()) {
      const waiting = this.#readsBeforeCommit;
      this.#readsBeforeCommit = [];
      for (const r of waiting) this.#leaderRead(r.requestId, r.from);
    }
    // A leader that removed itself steps down once the removal is committed.
    if (!this.isVoter()) {
      const last = this.#configs[this.#configs.length - 1];
      if (last !== undefined && last.index <= this.log.committed) {
        this.#bcastAppend();
        this.#maybeReportRemoved();
        this.becomeFollower(this.#term, undefined);
      }
    }
  }

  #quorumActive(): boolean {
    const voters = this.#membership.voters;
    let active = 0;
    for (const v of voters) {
      if (v === this.id || this.#progress.get(v)?.recentActive) active++;
    }
    return active > voters.length / 2;
  }

  #tally(): "won" | "lost" | "pending" {
    const voters = this.#membership.voters;
    let yes = 0;
    let no = 0;
    for (const v of voters) {
      const r = this.#votes.get(v);
      if (r === true) yes++;
      else if (r === false) no++;
    }
    const q = Math.floor(voters.length / 2) + 1;
    if (yes >= q) return "won";
    if (no > voters.length - q) return "lost";
    return "pending";
  }

  #requestVotes(preVote: boolean, term: Term, transfer: boolean): void {
    const last = this.log.lastCursor();
    for (const v of this.#membership.voters) {
      if (v === this.id) continue;
      this.send({
        type: "vote",
        to: v,
        term,
        preVote,
        lastLogIndex: last.index,
        lastLogTerm: last.term,
        transfer,
      });
    }
  }

  #promotable(): boolean {
    return this.#cfg.canVote && this.isVoter() && Number.isFinite(this.#cfg.leadershipMultiplier);
  }

  #firstTimeout(): number {
    const extra = this.#firstElection
      ? Math.round(this.#cfg.bootstrapTicks * this.#cfg.leadershipMultiplier)
      : 0;
    return this.#randomizedTimeout + extra;
  }

  #resetRandomizedTimeout(): void {
    const m = this.#cfg.leadershipMultiplier;
    const base = Math.round(this.#cfg.electionTicks * (Number.isFinite(m) ? m : 1));
    const jitter = this.#cfg.electionJitterTicks;
    this.#randomizedTimeout = base + (jitter > 0 ? this.#cfg.rng.int(jitter) : 0);
  }

  #abortTransfer(): void {
    if (this.#transferTarget === undefined) return;
    if (this.role === "leader") {
      this.#events.push({ type: "transferAborted", target: this.#transferTarget });
    }
    this.#transferTarget = undefined;
    this.#transferElapsed = 0;
  }

  #setHandler(h: RoleHandler): void {
    const changed = h.role !== this.#handler?.role;
    this.#handler = h;
    if (changed) this.#events.push({ type: "roleChanged", role: h.role, term: this.#term });
  }

  #setLeader(leader: NodeId | undefined): void {
    if (leader === this.#leader) return;
    // reads forwarded to the old leader will not be answered
    for (const id of this.#forwardedReads) this.#droppedReads.push(id);
    this.#forwardedReads.clear();
    this.#leader = leader;
    this.#events.push({ type: "leaderChanged", leader, term: this.#term });
  }

  #noteTerm(): void {
    if (this.#term < this.#highestTermSeen) {
      throw new InvariantError(`term went back from ${this.#highestTermSeen} to ${this.#term}`);
    }
    this.#highestTermSeen = this.#term;
  }
}

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

function randomId(rng: { int(n: number): number }): Uint8Array {
  const out = new Uint8Array(16);
  for (let i = 0; i < out.length; i++) out[i] = rng.int(256);
  return out;
}

// ---- role handlers ---------------------------------------------------------------------------

class Follower implements RoleHandler {
  readonly role = "follower" as const;
  constructor(private readonly core: RaftCore) {}

  tick(): void {
    this.core.tickElection();
  }

  step(m: RaftMessage): void {
    switch (m.type) {
      case "append":
        this.core.handleAppend(m);
        return;
      case "heartbeat":
        this.core.handleHeartbeat(m);
        return;
      case "timeoutNow":
        this.core.campaign(true);
        return;
      case "readIndexResponse":
        this.core.handleReadIndexResponse(m);
        return;
      default:
        return; // stale responses
    }
  }
}

class Candidate implements RoleHandler {
  readonly role: "precandidate" | "candidate";
  constructor(private readonly core: RaftCore, private readonly preVote: boolean) {
    this.role = preVote ? "precandidate" : "candidate";
  }

  tick(): void {
    this.core.tickElection();
  }

  step(m: RaftMessage): void {
    switch (m.type) {
      case "append":
        this.core.becomeFollower(m.term, m.from);
        this.core.handleAppend(m);
        return;
      case "heartbeat":
        this.core.becomeFollower(m.term, m.from);
        this.core.handleHeartbeat(m);
        return;
      case "voteResponse": {
        if (m.preVote !== this.preVote) return;
        const outcome = this.core.recordVote(m.from, m.granted);
        if (outcome === "won") {
          if (this.preVote) this.core.becomeCandidateAfterPreVote();
          else this.core.becomeLeaderAfterVote();
        } else if (outcome === "lost") {
          this.core.becomeFollower(this.core.term, undefined);
        }
        return;
      }
      default:
        return;
    }
  }
}

class Leader implements RoleHandler {
  readonly role = "leader" as const;
  constructor(private readonly core: RaftCore) {}

  tick(): void {
    this.core.tickLeader();
  }

  step(m: RaftMessage): void {
    this.core.leaderStep(m);
  }
}

/** For tests: a message type guard. */
export function isResponse(m: RaftMessage): m is VoteResponse | AppendResponse | HeartbeatResponse {
  return m.type === "voteResponse" || m.type === "appendResponse" || m.type === "heartbeatResponse";
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

/** The entries of a Ready's apply range that the core held, by index. */
class HeldEntries implements EntryLookup {
  readonly #start: Index;
  readonly #entries: readonly (LogEntry<unknown> | undefined)[];

  constructor(start: Index, entries: readonly (LogEntry<unknown> | undefined)[]) {
    this.#start = start;
    this.#entries = entries;
  }

  get(index: Index): LogEntry<unknown> | undefined {
    return this.#entries[index - this.#start];
  }
}
