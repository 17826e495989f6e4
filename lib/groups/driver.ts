// The group driver: runs a CoreRunner with real timers over a GroupLink — forwarding, reads, status, bootstrap, autopilot.

import type { NodeId } from "../raft/types.ts";
import { type Cursor, type Index, IndexRange, type Term } from "../primitives/cursor.ts";
import { PeerId } from "../primitives/ids.ts";
import { SHORT_HEX_CHARS } from "../primitives/digest.ts";
import { type Rng, SeededRng } from "../primitives/rng.ts";
import { assertEncodable } from "../wire/codec.ts";
import { LeadershipPreference } from "../machine/leadership.ts";
import type { AnyStateMachine, CommandOf, QueryOf, ResultOf } from "../machine/state_machine.ts";
import type { GroupDefinition } from "./builder.ts";
import { GroupTerminatedError, NoCommandsError, OfflineError } from "./errors.ts";
import { CoreRunner, ReadDroppedError } from "./runner.ts";
import { raftFromWire, raftToWire, type WireRaftMessage } from "./raft_wire.ts";
import { CatchUp, serveSync, type SyncMessage } from "./state_sync.ts";
import { LogReplaySync } from "../machine/log_replay.ts";
import type {
  Consistency,
  GroupMetrics,
  GroupRole,
  GroupStatus,
  QueryResult,
  StateReverted,
} from "./types.ts";
import type { RaftEvent } from "../raft/types.ts";
import { LatencyHistogram } from "../metrics/histogram.ts";
import { type Log, QUIET } from "../log/logger.ts";
import { Watch } from "./watch.ts";
import { groupStatusEquals } from "./when.ts";

/** Messages group members exchange over their bond (besides Raft's own). */
export type GroupMessage =
  | { readonly t: "raft"; readonly m: WireRaftMessage }
  /** A follower asks the leader to propose commands. */
  | { readonly t: "fwd"; readonly id: number; readonly commands: readonly unknown[] }
  /** The leader assigned them `start..=end` in `term`. */
  | {
    readonly t: "fwdOk";
    readonly id: number;
    readonly start: Index;
    readonly end: Index;
    readonly term: Term;
  }
  /** The leader could not propose them (e.g. it is no longer leader). */
  | { readonly t: "fwdErr"; readonly id: number; readonly reason: string }
  /**
   * What a member says about itself, on bond-up and every heartbeat
   * interval: its cluster, committed index, whether it is an observer, and
   * whether it leads its cluster (with the voter count it knows), which is
   * what the merge rule compares.
   */
  | {
    readonly t: "info";
    readonly clusterId?: string;
    readonly committed: Index;
    readonly observer: boolean;
    readonly leader: boolean;
    readonly voters: number;
    /** The sender is leaving the group: the leader should remove it (its bond stays up until then). */
    readonly leaving?: boolean;
  }
  /** The sender's cluster lost a merge: its members discard their state and rejoin as new members. */
  | { readonly t: "dissolve"; readonly clusterId: string }
  /** State sync (LogReplaySync): requests and answers of committed entries. */
  | SyncMessage
  /** Graceful departure. */
  | { readonly t: "bye" };

/** How the driver reaches the other members (implemented by the bond layer, or a test hub). */
export interface GroupLink {
  /** Sends to a bonded peer (hex PeerId); false when there is no bond to it. */
  send(peer: NodeId, message: GroupMessage): boolean;
  /** Hex PeerIds of the currently bonded peers. */
  bonded(): Iterable<NodeId>;
  /**
   * Hex PeerIds of the peers discovery says are in the group, bonded or not
   * (default: the bonded ones). A fresh node does not bootstrap while one of
   * them is still unbonded, for a while (see the bootstrap rule).
   */
  known?(): Iterable<NodeId>;
}

/** Driver settings beyond the group definition. */
export interface DriverOptions<M extends AnyStateMachine> {
  readonly definition: GroupDefinition<M>;
  readonly self: PeerId;
  readonly link: GroupLink;
  /** Randomness for election timeouts and cluster ids (default: seeded from crypto). */
  readonly rng?: Rng;
  /** Where to publish status (default: a new Watch); lets a handle exist before the driver starts. */
  readonly status?: Watch<GroupStatus>;
  /** Where this group's log records go (default: nowhere). */
  readonly log?: Log;
}

/** The driver's counters since it started (see {@link GroupMetrics} for their meaning). */
interface Counters {
  electionsStarted: number;
  electionsWon: number;
  leaderChanges: number;
  proposals: number;
  proposalsFailed: number;
  forwarded: number;
  forwardsServed: number;
}

interface PeerInfo {
  clusterId: string | undefined;
  observer: boolean;
  lastSeen: number;
  committed: Index;
  leader: boolean;
  voters: number;
}

/** What the merge rule compares: committed index, then voter count, then cluster id. */
interface ClusterRank {
  readonly committed: Index;
  readonly voters: number;
  readonly clusterId: string;
}

/** True when cluster `a` absorbs cluster `b` (DESIGN.md §3.4). */
export function absorbs(a: ClusterRank, b: ClusterRank): boolean {
  if (a.committed !== b.committed) return a.committed > b.committed;
  if (a.voters !== b.voters) return a.voters > b.voters;
  return a.clusterId > b.clusterId;
}

/**
 * Thrown (as the group's termination cause) when this node lost a cluster
 * merge but its state machine has no `reset()`, so its state cannot be
 * discarded and rebuilt from the winning cluster's log.
 */
export class MergeLostError extends Error {
  constructor(winner: string) {
    super(
      `Cluster merge lost to cluster ${
        winner.slice(0, 8)
      }: the state machine has no reset(), so this node cannot rejoin`,
    );
    this.name = "MergeLostError";
  }
}

interface Forward {
  readonly resolve: (r: { range: IndexRange; term: Term }) => void;
  readonly reject: (err: Error) => void;
}

/** Finest tick (ms): timers of a few ms cost CPU on every member for nothing. */
const MIN_TICK_MS = 5;

/**
 * The driver's tick (ms): a fifth of the heartbeat interval, and fine enough
 * that the election timeout's random jitter spans at least 20 distinct values
 * (down to {@link MIN_TICK_MS}). With the jitter counted in coarse ticks —
 * the default 500 ms jitter in ticks of 100 ms has only 5 values — members
 * that started together often time out in the same tick and split the vote.
 */
export function driverTickMs(c: {
  readonly heartbeatInterval: number;
  readonly electionTimeoutJitter: number;
}): number {
  const jitterTick = c.electionTimeoutJitter > 0 ? c.electionTimeoutJitter / 20 : Infinity;
  const tick = Math.min(c.heartbeatInterval / 5, jitterTick);
  return Math.max(1, Math.floor(Math.max(Math.min(MIN_TICK_MS, c.heartbeatInterval / 5), tick)));
}

/**
 * Runs one group on this node. Time: one core tick is a fifth of the
 * heartbeat interval (at least 1 ms), so every timeout of the
 * ConsensusConfig is honoured to within a tick.
 */
export class GroupDriver<M extends AnyStateMachine> {
  readonly status: Watch<GroupStatus>;
  readonly #opts: DriverOptions<M>;
  readonly #runner: CoreRunner<M>;
  readonly #tickMs: number;
  readonly #timer: ReturnType<typeof setInterval>;
  readonly #startedAt = Date.now();
  readonly #selfHex: string;
  readonly #bootstrapAfter: number;
  readonly #observer: boolean;
  readonly #peers = new Map<NodeId, PeerInfo>();
  readonly #catchUp: CatchUp;
  /** Clusters this node discarded in a merge; their messages are dropped. */
  readonly #lost = new Set<string>();
  #reverted: StateReverted | undefined;
  readonly #departed = new Set<NodeId>();
  readonly #forwards = new Map<number, Forward>();
  readonly #peerIds = new Map<NodeId, PeerId>();
  #forwardSeq = 0;
  #ticks = 0;
  #closed = false;
  /** Set by {@link leave}: our `info` says we are leaving, so the leader removes us. */
  #leaving = false;
  /** Sync requests being answered from storage (reads that may overlap the runner's writes). */
  readonly #serving = new Set<Promise<void>>();
  readonly #log: Log;
  readonly #counters: Counters = {
    electionsStarted: 0,
    electionsWon: 0,
    leaderChanges: 0,
    proposals: 0,
    proposalsFailed: 0,
    forwarded: 0,
    forwardsServed: 0,
  };
  readonly #latency = new LatencyHistogram();
  /** The core role at the last event (elections are told apart by what came before). */
  #coreRole: string = "follower";
  /** The last leader this node knew of (hex), for leaderChanges. */
  #lastLeader: NodeId | undefined;
  /** The role last published, for the role-change log. */
  #publishedRole: GroupRole | undefined;
  /** Clusters this leader has absorbed (logged once each). */
  readonly #absorbed = new Set<string>();

  private constructor(
    opts: DriverOptions<M>,
    runner: CoreRunner<M>,
    tickMs: number,
    rng: Rng,
    sync: LogReplaySync,
  ) {
    this.#opts = opts;
    this.#log = opts.log ?? QUIET;
    this.#selfHex = opts.self.toHex();
    this.#runner = runner;
    this.#tickMs = tickMs;
    const c = opts.definition.consensus;
    this.#observer = this.#preference().kind === "observer";
    this.#bootstrapAfter = c.effectiveBootstrapDelay() * this.#machineMultiplier() +
      rng.int(Math.max(1, c.electionTimeoutJitter));
    this.status = opts.status ??
      new Watch<GroupStatus>(this.#computeStatus(), { equals: groupStatusEquals });
    const initial = this.#computeStatus();
    this.#publishedRole = initial.role;
    this.status.set(initial);
    this.#log.info("group.started", "Group started on this node", {
      role: initial.role,
      term: initial.term,
      committed: initial.committed,
      lastLogIndex: initial.logPosition.index,
    });
    this.#catchUp = new CatchUp({
      state: () => {
        const core = this.#runner.core;
        const leaderCluster = core.leader === undefined
          ? undefined
          : this.#peers.get(core.leader)?.clusterId;
        return {
          // A new member learns its cluster from its leader before it holds any entry.
          clusterId: core.clusterId ?? leaderCluster,
          leader: core.leader,
          isLeader: core.role === "leader",
          lastIndex: core.log.lastIndex,
        };
      },
      peers: () =>
        [...this.#opts.link.bonded()].flatMap((id) => {
          const p = this.#peers.get(id);
          return p === undefined ? [] : [{ id, clusterId: p.clusterId, committed: p.committed }];
        }),
      send: (peer, m) => this.#opts.link.send(peer, m),
      install: (prevIndex, prevTerm, entries) =>
        this.#runner.call((core) => core.installCommitted(prevIndex, prevTerm, entries)),
    }, sync);
    this.#timer = setInterval(() => this.#tick(), tickMs);
  }

  /** Loads storage and starts ticking. */
  static async start<M extends AnyStateMachine>(opts: DriverOptions<M>): Promise<GroupDriver<M>> {
    const c = opts.definition.consensus;
    const tickMs = driverTickMs(c);
    const ticks = (ms: number) => Math.max(1, Math.ceil(ms / tickMs));
    const rng = opts.rng ?? new SeededRng(crypto.getRandomValues(new Uint32Array(1))[0]!);
    const pref = opts.definition.machine.leadershipPreference?.() ?? LeadershipPreference.Normal;
    const sync = opts.definition.stateSync instanceof LogReplaySync
      ? opts.definition.stateSync
      : new LogReplaySync();
    // the runner's callbacks need the driver, which needs the runner
    const ref: { driver?: GroupDriver<M> } = {};
    const runner = await CoreRunner.open({
      raft: {
        id: opts.self.toHex(),
        electionTicks: ticks(c.electionTimeout),
        electionJitterTicks: Math.ceil(c.electionTimeoutJitter / tickMs),
        heartbeatTicks: Math.min(ticks(c.heartbeatInterval), ticks(c.electionTimeout) - 1) || 1,
        bootstrapTicks: Math.ceil(c.bootstrapDelay / tickMs),
        leadershipMultiplier: c.leadershipMultiplier * LeadershipPreference.multiplier(pref),
        canVote: LeadershipPreference.canVote(pref),
        // The driver decides when to bootstrap (it knows who else is around).
        autoBootstrap: false,
        // Members a batch or more behind catch up from peers (LogReplaySync), not from the leader.
        syncLag: sync.batchSize,
        rng,
      },
      machine: opts.definition.machine,
      storage: opts.definition.storage,
      owner: { group: opts.definition.groupId.toHex(), member: opts.self.toHex() },
      // `t` first: the bond recognizes Raft frames by that prefix (bond.ts, RAFT_FRAME).
      send: (to, m) => void opts.link.send(to, { t: "raft", m: raftToWire(m) }),
      onEvents: (events) => {
        if (ref.driver !== undefined) ref.driver.#onEvents(events);
      },
      onProgress: () => {
        if (ref.driver !== undefined) ref.driver.#publish();
      },
      onFatal: (err) => {
        if (ref.driver !== undefined) {
          void ref.driver.close(new GroupTerminatedError("run", { cause: err }));
        }
      },
    });
    ref.driver = new GroupDriver(opts, runner, tickMs, rng, sync);
    return ref.driver;
  }

  /** The runner, for the group handle and tests. */
  get runner(): CoreRunner<M> {
    return this.#runner;
  }

  // ---- link events ---------------------------------------------------------------------------

  /** A message from bonded peer `from` (hex). Malformed messages are the bond layer's to reject. */
  onMessage(from: NodeId, msg: GroupMessage): void {
    if (this.#closed) return;
    switch (msg.t) {
      case "raft": {
        const m = raftFromWire(msg.m, from, this.#selfHex);
        // A cluster this node left in a merge may still be talking to it: not again.
        if (m === undefined || (m.clusterId !== undefined && this.#lost.has(m.clusterId))) return;
        this.#runner.step(m);
        return;
      }
      case "info":
        this.#peers.set(from, {
          clusterId: msg.clusterId,
          observer: msg.observer,
          lastSeen: Date.now(),
          committed: msg.committed,
          leader: msg.leader,
          voters: msg.voters,
        });
        if (msg.leaving === true) this.#departed.add(from);
        else this.#departed.delete(from);
        this.#maybeMerge();
        return;
      case "syncReq": {
        const core = this.#runner.core;
        const serving: Promise<void> = serveSync(msg, {
          clusterId: core.clusterId,
          committed: Math.min(core.committed, core.log.persisted),
          termAt: (i) => core.log.termAt(i),
        }, this.#opts.definition.storage).then((answer) => {
          if (!this.#closed) this.#opts.link.send(from, answer);
        }, () => {}).finally(() => this.#serving.delete(serving));
        this.#serving.add(serving);
        return;
      }
      case "syncRes":
      case "syncErr":
        this.#catchUp.onMessage(from, msg);
        return;
      case "dissolve":
        if (
          msg.clusterId === this.#runner.core.clusterId && this.#runner.core.leader === from
        ) {
          this.#loseMerge(undefined);
        }
        return;
      case "bye":
        this.#departed.add(from);
        return;
      case "fwd":
        void this.#serveForward(from, msg.id, msg.commands);
        return;
      case "fwdOk":
        this.#forwards.get(msg.id)?.resolve({
          range: IndexRange.of(msg.start, msg.end),
          term: msg.term,
        });
        this.#forwards.delete(msg.id);
        return;
      case "fwdErr":
        this.#forwards.get(msg.id)?.reject(new Error(msg.reason));
        this.#forwards.delete(msg.id);
        return;
    }
  }

  /** A bond to `peer` came up: introduce ourselves and let the core probe it. */
  onPeerUp(peer: NodeId): void {
    if (this.#closed) return;
    this.#opts.link.send(peer, this.#info());
    void this.#runner.call((core) => core.reportConnected(peer));
  }

  /** The bond to `peer` went down. */
  onPeerDown(peer: NodeId): void {
    if (this.#closed) return;
    this.#catchUp.onPeerDown(peer);
    void this.#runner.call((core) => core.reportUnreachable(peer));
  }

  // ---- client operations ----------------------------------------------------------------------

  /** Proposes and waits for commit (execute) or for the assigned index (feed). */
  async submit(
    commands: readonly CommandOf<M>[],
    waitCommit: boolean,
    signal?: AbortSignal,
  ): Promise<IndexRange> {
    this.#ensureOpen("execute command");
    if (commands.length === 0) throw new NoCommandsError("execute");
    for (const c of commands) assertEncodable(c);
    signal?.throwIfAborted();
    const timeout = this.#opts.definition.consensus.forwardTimeout;
    const started = performance.now();
    let assigned: { range: IndexRange; term: Term };
    try {
      assigned = await this.#assign(commands, timeout, signal);
      this.#counters.proposals += commands.length;
      if (waitCommit) await this.#runner.waitApplied(assigned.range, assigned.term, signal);
    } catch (err) {
      this.#counters.proposalsFailed += commands.length;
      throw err;
    }
    if (waitCommit) this.#latency.observe(performance.now() - started);
    return assigned.range;
  }

  /** Answers a query, weak (local) or strong (linearizable via ReadIndex). */
  async query(
    q: QueryOf<M>,
    consistency: Consistency,
    signal?: AbortSignal,
  ): Promise<QueryResult<ResultOf<M>>> {
    this.#ensureOpen("query");
    signal?.throwIfAborted();
    if (consistency === "strong") {
      const deadline = Date.now() + this.#opts.definition.consensus.queryTimeout;
      for (;;) {
        const bounded = new AbortController();
        const timer = setTimeout(
          () => bounded.abort(new Error("query timed out")),
          Math.max(0, deadline - Date.now()),
        );
        const onAbort = () => bounded.abort(signal!.reason);
        signal?.addEventListener("abort", onAbort, { once: true });
        try {
          await this.#runner.readIndex(bounded.signal);
          break;
        } catch (err) {
          signal?.throwIfAborted();
          if (!(err instanceof ReadDroppedError) || Date.now() >= deadline) {
            throw new OfflineError({ kind: "query", query: q }, "no leader confirmed the read", {
              cause: err,
            });
          }
          await this.#waitForLeader(deadline, signal);
        } finally {
          clearTimeout(timer);
          signal?.removeEventListener("abort", onAbort);
        }
      }
    }
    const result = this.#opts.definition.machine.query(q) as ResultOf<M>;
    return { result, atPosition: this.#runner.applied };
  }

  async #assign(
    commands: readonly CommandOf<M>[],
    timeoutMs: number,
    signal: AbortSignal | undefined,
  ): Promise<{ range: IndexRange; term: Term }> {
    const deadline = Date.now() + timeoutMs;
    let lastError: unknown;
    while (Date.now() < deadline) {
      signal?.throwIfAborted();
      const core = this.#runner.core;
      if (core.role === "leader") {
        const r = await this.#runner.propose(commands);
        if (r.ok) return { range: r.range, term: r.term };
        lastError = new Error(`leader refused the command: ${r.reason}`);
      } else if (core.leader !== undefined) {
        try {
          return await this.#forward(core.leader, commands, deadline, signal);
        } catch (err) {
          signal?.throwIfAborted();
          lastError = err;
        }
      }
      await this.#waitForLeader(deadline, signal, core.leader);
    }
    throw new OfflineError(
      { kind: "commands", commands: [...commands] },
      "no leader accepted the command",
      {
        cause: lastError,
      },
    );
  }

  #forward(
    leader: NodeId,
    commands: readonly CommandOf<M>[],
    deadline: number,
    signal: AbortSignal | undefined,
  ): Promise<{ range: IndexRange; term: Term }> {
    const id = ++this.#forwardSeq;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => done(new Error("forward timed out")),
        Math.max(0, deadline - Date.now()),
      );
      const onAbort = () => done(signal!.reason);
      const done = (err: unknown, value?: { range: IndexRange; term: Term }) => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
        this.#forwards.delete(id);
        if (value !== undefined) resolve(value);
        else reject(err);
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      this.#forwards.set(id, { resolve: (v) => done(undefined, v), reject: (e) => done(e) });
      if (this.#opts.link.send(leader, { t: "fwd", id, commands })) {
        this.#counters.forwarded += commands.length;
      } else {
        done(new Error("no bond to the leader"));
      }
    });
  }

  async #serveForward(from: NodeId, id: number, commands: readonly unknown[]): Promise<void> {
    try {
      const r = await this.#runner.propose(commands as CommandOf<M>[]);
      if (r.ok) this.#counters.forwardsServed += commands.length;
      this.#opts.link.send(
        from,
        r.ok
          ? { t: "fwdOk", id, start: r.range.start, end: r.range.end, term: r.term }
          : { t: "fwdErr", id, reason: r.reason },
      );
    } catch (err) {
      this.#opts.link.send(from, { t: "fwdErr", id, reason: String(err) });
    }
  }

  /**
   * Waits until the core knows a leader other than `except`, or ten ticks or
   * the deadline pass. The callers' retry loops decide from the core, so this
   * asks the core too; the published status only wakes it up. The status lags
   * the core while a Ready is being persisted: a follower that has just
   * granted a vote in a new term has no leader in its core, but until the vote
   * is durable its status still names the old leader. A wait on the status
   * would return at once there, and `#assign` would loop on microtasks alone —
   * starving the event loop, so the vote's commit on an async store (Deno KV)
   * could not complete — until its forward deadline passed.
   */
  async #waitForLeader(
    deadline: number,
    signal: AbortSignal | undefined,
    except?: NodeId,
  ): Promise<void> {
    const remaining = deadline - Date.now();
    if (remaining <= 0) return;
    const known = () => {
      const leader = this.#runner.core.leader;
      return leader !== undefined && leader !== except;
    };
    try {
      await this.status.waitFor(
        known,
        {
          timeoutMs: Math.min(remaining, this.#tickMs * 10),
          ...(signal !== undefined ? { signal } : {}),
        },
      );
    } catch (err) {
      signal?.throwIfAborted();
      if (this.#closed) throw err;
    }
  }

  // ---- leaving -----------------------------------------------------------------------------

  /**
   * Leaves gracefully, within about two election timeouts. A leader first
   * removes itself from the voters (the others commit that and elect a
   * successor), or, when that cannot be done in time, hands leadership to its
   * most caught-up voter. Any other member says it is leaving (in its `info`,
   * each heartbeat) and keeps taking part until the leader's removal of it is
   * committed: a change promoting it may already be in the leader's log, and
   * that change needs its acknowledgement to commit — leaving before would
   * leave a configuration whose quorum includes a departed voter, and the
   * group stuck for good. Then every bonded peer is told we left.
   */
  async leave(): Promise<void> {
    if (this.#closed) return;
    this.#leaving = true;
    const c = this.#opts.definition.consensus;
    const deadline = Date.now() + c.electionTimeout * 2;
    this.#log.info("group.leaving", "Leaving the group", {
      role: this.status.get().role,
      term: this.#runner.core.term,
    });
    if (this.#runner.core.role !== "leader") await this.#awaitRemoval(deadline);
    if (this.#runner.core.role === "leader") await this.#leaveAsLeader();
    const removed = !this.#runner.core.inConfiguration();
    for (const peer of this.#opts.link.bonded()) this.#opts.link.send(peer, { t: "bye" });
    this.#log.info(
      "group.left",
      removed ? "Left the group" : "Left the group while still in its configuration",
      { removed },
    );
    await this.close();
  }

  /**
   * A non-leader's part of {@link leave}: says it is leaving each heartbeat and waits
   * until the configuration that removed this node is committed (or it never
   * was a member), it became leader, or `deadline` passed.
   */
  async #awaitRemoval(deadline: number): Promise<void> {
    const c = this.#opts.definition.consensus;
    for (;;) {
      const core = this.#runner.core;
      if (!core.inConfiguration() || core.role === "leader" || Date.now() >= deadline) return;
      for (const peer of this.#opts.link.bonded()) this.#opts.link.send(peer, this.#info());
      await this.status.waitFor(
        () => !this.#runner.core.inConfiguration() || this.#runner.core.role === "leader",
        { timeoutMs: Math.max(1, Math.min(c.heartbeatInterval, deadline - Date.now())) },
      ).catch(() => {});
    }
  }

  /** A leader's part of {@link leave}: remove itself, else hand leadership over. */
  async #leaveAsLeader(): Promise<void> {
    const c = this.#opts.definition.consensus;
    // First remove ourselves from the voters, committed by the others: a departed voter must
    // never be needed for a quorum (with two voters, handing over alone would stall the group).
    const deadline = Date.now() + c.electionTimeout * 2;
    let removing = false;
    while (!removing && Date.now() < deadline && this.#runner.core.role === "leader") {
      const core = this.#runner.core;
      let r: { ok: boolean } | undefined;
      if (core.membership.voters.every((v) => v === core.id)) {
        // The only voter: first promote the most caught-up learner that may vote.
        const heir = core.membership.learners
          .filter((l) => this.#peers.get(l)?.observer === false)
          .sort((a, b) => (core.matchIndex(b) ?? 0) - (core.matchIndex(a) ?? 0))[0];
        if (heir === undefined) break; // nobody to hand the group to
        r = await this.#runner.call((k) => k.promote(heir)).catch(() => undefined);
      } else {
        r = await this.#runner.call((k) => k.remove(k.id)).catch(() => undefined);
        removing = r?.ok === true;
      }
      if (!removing) {
        // Wait for the promotion or a refused change to move on (the core, not the status, is live).
        const before = core.committed;
        await this.status.waitFor((s) => s.committed > before || s.role !== "leader", {
          timeoutMs: this.#tickMs * 2,
        }).catch(() => {});
      }
    }
    if (removing) {
      await this.status.waitFor((s) => s.role !== "leader", {
        timeoutMs: Math.max(1, deadline - Date.now()),
      }).catch(() => {});
    }
    const core = this.#runner.core;
    if (core.role === "leader") {
      // Could not remove ourselves in time: hand leadership to the most caught-up voter.
      const target = core.membership.voters
        .filter((v) => v !== core.id)
        .sort((a, b) => (core.matchIndex(b) ?? 0) - (core.matchIndex(a) ?? 0))[0];
      if (target !== undefined) {
        this.#log.info(
          "leader.transfer",
          "Handing leadership over before leaving",
          { term: core.term },
          target,
        );
        await this.#runner.call((k) => k.transferLeadership(target)).catch(() => {});
        await this.status.waitFor((s) => s.role !== "leader", {
          timeoutMs: c.electionTimeout,
        }).catch(() => {});
      }
    }
  }

  /**
   * Stops the group on this node; pending calls reject. Resolves once no
   * storage call of this group is in flight, so the caller may close the
   * store. Idempotent.
   */
  async close(reason: Error = new GroupTerminatedError()): Promise<void> {
    if (this.#closed) return await this.#settled();
    this.#closed = true;
    if (reason instanceof GroupTerminatedError && reason.cause === undefined) {
      this.#log.info("group.closed", "Group stopped on this node");
    } else {
      this.#log.error("group.failed", `Group stopped: ${describe(reason)}`, {
        error: reason.name,
      });
    }
    clearInterval(this.#timer);
    this.#runner.close(reason);
    this.#catchUp.close();
    for (const f of this.#forwards.values()) f.reject(reason);
    this.#forwards.clear();
    this.status.close(reason);
    await this.#settled();
  }

  /** Waits for the runner's Ready in progress and the sync requests being served. */
  async #settled(): Promise<void> {
    await this.#runner.settled();
    await Promise.all([...this.#serving]);
  }

  // ---- internals ---------------------------------------------------------------------------

  #ensureOpen(what: string): void {
    if (this.#closed) throw new GroupTerminatedError(what);
  }

  #preference() {
    return this.#opts.definition.machine.leadershipPreference?.() ?? LeadershipPreference.Normal;
  }

  #machineMultiplier(): number {
    const m = LeadershipPreference.multiplier(this.#preference());
    return Number.isFinite(m) ? m : 1;
  }

  #info(): GroupMessage {
    const core = this.#runner.core;
    return {
      t: "info",
      ...(core.clusterId !== undefined ? { clusterId: core.clusterId } : {}),
      committed: core.committed,
      observer: this.#observer,
      leader: core.role === "leader",
      voters: core.membership.voters.length,
      ...(this.#leaving ? { leaving: true } : {}),
    };
  }

  /**
   * The merge rule (DESIGN.md §3.4), decided by leaders: a leader that hears
   * (fresh, from a bonded peer) of the leader of another cluster that absorbs
   * its own tells its members to dissolve, and resets itself. The members
   * reset when their leader's `dissolve` arrives.
   */
  #maybeMerge(): void {
    const core = this.#runner.core;
    if (this.#closed || core.role !== "leader" || core.clusterId === undefined) return;
    const mine: ClusterRank = {
      committed: core.committed,
      voters: core.membership.voters.length,
      clusterId: core.clusterId,
    };
    const fresh = this.#opts.definition.consensus.heartbeatInterval * 3;
    const now = Date.now();
    for (const peer of this.#opts.link.bonded()) {
      const p = this.#peers.get(peer);
      if (
        p === undefined || !p.leader || p.clusterId === undefined ||
        p.clusterId === core.clusterId || now - p.lastSeen > fresh
      ) continue;
      const theirs: ClusterRank = {
        committed: p.committed,
        voters: p.voters,
        clusterId: p.clusterId,
      };
      if (absorbs(theirs, mine)) {
        this.#log.warn(
          "merge.lost",
          "Met a cluster that absorbs this one: dissolving it",
          {
            cluster: core.clusterId,
            winner: p.clusterId,
            committed: mine.committed,
            winnerCommitted: theirs.committed,
          },
          peer,
        );
        for (const member of this.#opts.link.bonded()) {
          this.#opts.link.send(member, { t: "dissolve", clusterId: core.clusterId });
        }
        this.#loseMerge(p.clusterId);
        return;
      }
      if (!this.#absorbed.has(p.clusterId)) {
        this.#absorbed.add(p.clusterId);
        this.#log.info(
          "merge.won",
          "Met another cluster of this group; it will dissolve and join this one",
          {
            cluster: core.clusterId,
            other: p.clusterId,
            committed: mine.committed,
            otherCommitted: theirs.committed,
          },
          peer,
        );
      }
    }
  }

  /** Discards this node's cluster state (or terminates the group when the machine cannot reset). */
  #loseMerge(winner: string | undefined): void {
    const core = this.#runner.core;
    const lostCluster = core.clusterId;
    if (lostCluster === undefined || this.#closed) return;
    if (this.#opts.definition.machine.reset === undefined) {
      this.#log.error(
        "merge.lost",
        "Cluster lost a merge and the state machine has no reset(): leaving the group",
        { cluster: lostCluster, ...(winner === undefined ? {} : { winner }) },
      );
      void this.close(
        new GroupTerminatedError("stay in the group", {
          cause: new MergeLostError(winner ?? "(another)"),
        }),
      );
      return;
    }
    this.#lost.add(lostCluster);
    this.#reverted = {
      count: (this.#reverted?.count ?? 0) + 1,
      committedBefore: core.committed,
      logPositionBefore: core.log.lastCursor(),
    };
    this.#log.warn(
      "state.reverted",
      `Cluster lost a merge: discarding ${core.committed} committed entries to rejoin as a new member`,
      {
        cluster: lostCluster,
        ...(winner === undefined ? {} : { winner }),
        committedBefore: this.#reverted.committedBefore,
        lastLogIndexBefore: this.#reverted.logPositionBefore.index,
        count: this.#reverted.count,
      },
    );
    void this.#runner.call((c) => c.resetToEmpty());
    this.#publish();
  }

  #tick(): void {
    if (this.#closed) return;
    this.#ticks++;
    this.#runner.tick();
    const c = this.#opts.definition.consensus;
    if (this.#ticks % Math.max(1, Math.round(c.heartbeatInterval / this.#tickMs)) === 0) {
      for (const peer of this.#opts.link.bonded()) this.#opts.link.send(peer, this.#info());
    }
    void this.#runner.call((core) => {
      if (core.clusterId === undefined && core.log.lastIndex === 0) this.#maybeBootstrap();
      else if (core.role === "leader") this.#autopilot();
    }).catch(() => {});
    this.#catchUp.tick();
  }

  /** State-sync counters (requests, entries, failures, peers that served), for tests and metrics. */
  get syncStats(): CatchUp["stats"] {
    return this.#catchUp.stats;
  }

  /**
   * A fresh node forms its own cluster after the bootstrap delay, unless a
   * bonded peer already belongs to a cluster (it waits to be added) or a
   * bonded fresh peer has a lower PeerId (that one bootstraps; we join it).
   */
  #maybeBootstrap(): void {
    const waited = Date.now() - this.#startedAt;
    if (this.#observer || waited < this.#bootstrapAfter) return;
    const self = this.#opts.self.toHex();
    // A member discovery already knows of may just not be bonded yet: give its bond time to come up
    // (bounded, since a stale entry can name a peer that is gone).
    const bonded = new Set(this.#opts.link.bonded());
    const grace = this.#bootstrapAfter + 4 * this.#opts.definition.consensus.electionTimeout;
    if (waited < grace) {
      for (const peer of this.#opts.link.known?.() ?? []) {
        if (peer !== self && !bonded.has(peer)) return;
      }
    }
    for (const peer of this.#opts.link.bonded()) {
      const info = this.#peers.get(peer);
      if (info === undefined) return; // not introduced yet: wait for its info
      if (info.clusterId !== undefined) return;
      if (!info.observer && peer < self) return;
    }
    this.#runner.core.bootstrap();
  }

  /**
   * The leader's membership housekeeping, one change at a time (the core
   * refuses a second while one is pending): remove departed members, add
   * bonded peers of no other cluster as learners, promote caught-up learners
   * that are not observers, and remove members silent for deadMemberTimeout
   * while the rest still form a majority of the current voters.
   */
  #autopilot(): void {
    const core = this.#runner.core;
    if (!core.canChangeMembership()) return;
    const m = core.membership;
    for (const gone of this.#departed) {
      if (core.isMember(gone) && gone !== core.id) {
        core.remove(gone);
        this.#departed.delete(gone);
        return;
      }
    }
    const bonded = new Set(this.#opts.link.bonded());
    for (const peer of bonded) {
      const info = this.#peers.get(peer);
      if (info === undefined || this.#departed.has(peer)) continue;
      if (info.clusterId !== undefined && info.clusterId !== core.clusterId) continue; // merge rule: not yet
      if (!core.isMember(peer)) {
        core.addLearner(peer);
        return;
      }
    }
    for (const learner of m.learners) {
      const info = this.#peers.get(learner);
      if (info === undefined || info.observer || !bonded.has(learner)) continue;
      if (core.promote(learner).ok) return;
    }
    const dead = this.#opts.definition.consensus.deadMemberTimeout;
    const now = Date.now();
    for (const member of [...m.voters, ...m.learners]) {
      if (member === core.id || bonded.has(member)) continue;
      const seen = this.#peers.get(member)?.lastSeen ?? this.#startedAt;
      if (now - seen < dead) continue;
      const remaining = m.voters.filter((v) =>
        v !== member && (v === core.id || bonded.has(v))
      ).length;
      if (m.voters.includes(member) && remaining <= m.voters.length / 2) continue;
      core.remove(member);
      return;
    }
  }

  /**
   * Counts elections and leader changes and logs them, from the core's
   * events (already persisted). Roles come in order, so `candidate` after
   * anything is an election, and `leader` right after `candidate` (or a
   * bootstrap) a win.
   */
  #onEvents(events: readonly RaftEvent[]): void {
    const log = this.#log;
    for (const e of events) {
      switch (e.type) {
        case "roleChanged": {
          const before = this.#coreRole;
          this.#coreRole = e.role;
          if (e.role === "precandidate") {
            log.debug("election.prevote", `Pre-vote for term ${e.term + 1} started`, {
              term: e.term + 1,
            });
          } else if (e.role === "candidate") {
            this.#counters.electionsStarted++;
            log.info("election.started", `Election for term ${e.term} started`, { term: e.term });
          } else if (e.role === "leader") {
            this.#counters.electionsWon++;
            log.info("election.won", `Election for term ${e.term} won`, { term: e.term });
          } else if (before === "candidate" || before === "precandidate") {
            log.info(
              "election.lost",
              before === "candidate"
                ? `Election lost; follower in term ${e.term}`
                : `Pre-vote lost; follower in term ${e.term}`,
              { term: e.term, preVote: before === "precandidate" },
            );
          }
          break;
        }
        case "leaderChanged":
          if (e.leader !== undefined && e.leader !== this.#lastLeader) {
            this.#counters.leaderChanges++;
            this.#lastLeader = e.leader;
            log.info(
              "leader.changed",
              e.leader === this.#selfHex
                ? `This node leads in term ${e.term}`
                : `New leader in term ${e.term}`,
              { term: e.term, leader: shortHex(e.leader) },
              e.leader === this.#selfHex ? undefined : e.leader,
            );
          }
          break;
        case "membershipChanged":
          log.info(
            "membership.changed",
            `Configuration at index ${e.index}: ${e.membership.voters.length} voters, ${e.membership.learners.length} learners`,
            {
              index: e.index,
              voters: e.membership.voters.map(shortHex),
              learners: e.membership.learners.map(shortHex),
            },
          );
          break;
        case "bootstrapped":
          // Founding a cluster is a one-voter election this node wins at once.
          this.#counters.electionsStarted++;
          log.info("cluster.bootstrapped", "Founded a new cluster as its only voter", {
            cluster: e.clusterId,
          });
          break;
        case "joinedCluster":
          log.info("cluster.joined", "Joined the cluster of the leader", {
            cluster: e.clusterId,
          }, e.leader);
          break;
        case "removed":
          log.info("membership.removed", "This node was removed from the configuration");
          break;
        case "transferAborted":
          log.warn(
            "leader.transfer_aborted",
            "Leadership transfer did not finish in time",
            {},
            e.target,
          );
          break;
        case "foreignCluster":
          break;
      }
    }
  }

  /**
   * The metrics of this group on this node, without the bonds (the host
   * knows those).
   */
  metrics(): Omit<GroupMetrics, "bonds"> {
    const core = this.#runner.core;
    const status = this.status.get();
    const c = this.#counters;
    return {
      groupId: this.#opts.definition.groupId,
      self: this.#opts.self,
      role: status.role,
      term: core.term,
      leader: core.leader === undefined ? undefined : this.#peerId(core.leader),
      committed: core.committed,
      applied: this.#runner.applied.index,
      lastLogIndex: core.log.lastIndex,
      voters: core.membership.voters.map((v) => this.#peerId(v)),
      learners: core.membership.learners.map((l) => this.#peerId(l)),
      electionsStarted: c.electionsStarted,
      electionsWon: c.electionsWon,
      leaderChanges: c.leaderChanges,
      proposals: c.proposals,
      proposalsFailed: c.proposalsFailed,
      forwarded: c.forwarded,
      forwardsServed: c.forwardsServed,
      mergesLost: this.#reverted?.count ?? 0,
      commitLatency: this.#latency.snapshot(),
    };
  }

  #publish(): void {
    if (this.#closed) return;
    const status = this.#computeStatus();
    if (status.role !== this.#publishedRole) {
      if (this.#publishedRole !== undefined) {
        this.#log.info("group.role", `Role ${this.#publishedRole} -> ${status.role}`, {
          from: this.#publishedRole,
          to: status.role,
          term: status.term,
        });
      }
      this.#publishedRole = status.role;
    }
    this.status.set(status);
  }

  #peerId(hex: NodeId): PeerId {
    let id = this.#peerIds.get(hex);
    if (id === undefined) {
      id = PeerId.parse(hex);
      this.#peerIds.set(hex, id);
    }
    return id;
  }

  #computeStatus(): GroupStatus {
    const core = this.#runner?.core;
    const last: Cursor = core?.log.lastCursor() ?? { term: 0, index: 0 };
    let role: GroupRole = core?.role ?? "follower";
    if (role === "follower" && core !== undefined && core.isMember() && !core.isVoter()) {
      role = "learner";
    }
    const leader = core?.leader;
    return {
      leader: leader === undefined ? undefined : this.#peerId(leader),
      self: this.#opts.self,
      role,
      online: leader !== undefined && role !== "candidate" && role !== "precandidate",
      committed: core?.committed ?? 0,
      logPosition: last,
      term: core?.term ?? 0,
      ...(this.#reverted === undefined ? {} : { stateReverted: this.#reverted }),
    };
  }
}

/** The short form of a hex PeerId (as `PeerId.short()`). */
function shortHex(hex: string): string {
  return hex.slice(0, SHORT_HEX_CHARS);
}

/** An error's message and the chain of its causes, for a log line. */
function describe(err: Error): string {
  const parts: string[] = [];
  let e: unknown = err;
  for (let depth = 0; e instanceof Error && depth < 4; depth++) {
    parts.push(e.message);
    e = e.cause;
  }
  return parts.join(": ");
}
