// The Groups registry and the Group<M> handle: idempotent joins per GroupId, reference-counted handles over a driver.

import type { NodeId } from "../raft/types.ts";
import type { Cursor, Index, IndexRange } from "../primitives/cursor.ts";
import type { GroupId, PeerId } from "../primitives/ids.ts";
import type { AnyStateMachine, CommandOf, QueryOf, ResultOf } from "../machine/state_machine.ts";
import { GroupBuilder, type GroupDefinition, type KeyedGroupBuilder } from "./builder.ts";
import { GroupDriver, type GroupLink, type GroupMessage } from "./driver.ts";
import { GroupTerminatedError, NoCommandsError } from "./errors.ts";
import type { GroupKey } from "./key.ts";
import type {
  BondMetrics,
  Bonds,
  Consistency,
  Group,
  GroupConfig,
  GroupMetrics,
  GroupStatus,
  QueryResult,
  SignalOptions,
} from "./types.ts";
import { LatencyHistogram } from "../metrics/histogram.ts";
import { type Log, QUIET } from "../log/logger.ts";
import { Watch } from "./watch.ts";
import { groupStatusEquals, When } from "./when.ts";

/** What the registry tells the host about a joined group's traffic. */
export interface GroupSink {
  onMessage(from: NodeId, message: GroupMessage): void;
  onPeerUp(peer: NodeId): void;
  onPeerDown(peer: NodeId): void;
}

/** A group's connection to its peers, made by the host (the network's bond layer). */
export interface AttachedLink extends GroupLink {
  /** The current bonds of the group. */
  bonds(): Bonds;
  /** Traffic and round-trip time of each current bond. */
  bondMetrics(): BondMetrics[];
  /** Departs from every bond (flushing the departure) and stops routing this group's traffic. */
  detach(): Promise<void>;
}

/** What the registry needs from the network. */
export interface GroupHost {
  /** This node's PeerId. */
  readonly self: PeerId;
  /** Where the groups' log records go (default: nowhere). */
  readonly log?: Log;
  /** Starts routing traffic of the group to `sink` (bonding with its members). */
  attach(definition: GroupDefinition<AnyStateMachine>, sink: GroupSink): AttachedLink;
}

/** Messages that arrive before the driver has loaded its storage are kept, up to this many. */
const EARLY_MESSAGES = 1024;

class GroupInstance<M extends AnyStateMachine> {
  readonly status: Watch<GroupStatus>;
  readonly link: AttachedLink;
  readonly driver: Promise<GroupDriver<M>>;
  #driver: GroupDriver<M> | undefined;
  #early: (() => void)[] = [];
  handles = 0;
  #stopped = false;

  constructor(
    readonly definition: GroupDefinition<M>,
    host: GroupHost,
    readonly onStopped: () => void,
  ) {
    this.status = new Watch<GroupStatus>({
      leader: undefined,
      self: host.self,
      role: "follower",
      online: false,
      committed: 0,
      logPosition: { term: 0, index: 0 },
      term: 0,
    }, { equals: groupStatusEquals });
    const route = (f: (d: GroupDriver<M>) => void) => {
      if (this.#driver !== undefined) f(this.#driver);
      else if (this.#early.length < EARLY_MESSAGES) this.#early.push(() => f(this.#driver!));
    };
    this.link = host.attach(definition as GroupDefinition<AnyStateMachine>, {
      onMessage: (from, m) => route((d) => d.onMessage(from, m)),
      onPeerUp: (peer) => route((d) => d.onPeerUp(peer)),
      onPeerDown: (peer) => route((d) => d.onPeerDown(peer)),
    });
    this.driver = GroupDriver.start({
      definition,
      self: host.self,
      link: this.link,
      status: this.status,
      log: (host.log ?? QUIET).forGroup(definition.groupId.short()),
    })
      .then((d) => {
        this.#driver = d;
        if (this.#stopped) {
          void d.close();
        } else {
          for (const f of this.#early) f();
        }
        this.#early = [];
        return d;
      });
    this.driver.catch((err) => {
      // storage could not be loaded: the group is unusable
      this.status.close(new GroupTerminatedError("join", { cause: err }));
      this.#stop();
    });
  }

  /** The group's metrics; before the driver has loaded its storage, from the status alone. */
  metrics(): GroupMetrics {
    const bonds = this.link.bondMetrics();
    if (this.#driver !== undefined) return { ...this.#driver.metrics(), bonds };
    const s = this.status.get();
    return {
      groupId: this.definition.groupId,
      self: s.self,
      role: s.role,
      term: s.term,
      leader: s.leader,
      committed: s.committed,
      applied: 0,
      lastLogIndex: s.logPosition.index,
      voters: [],
      learners: [],
      bonds,
      electionsStarted: 0,
      electionsWon: 0,
      leaderChanges: 0,
      proposals: 0,
      proposalsFailed: 0,
      forwarded: 0,
      forwardsServed: 0,
      mergesLost: 0,
      commitLatency: LatencyHistogram.empty(),
    };
  }

  /** Releases one handle; the last one leaves the group (gracefully when asked). */
  async release(graceful: boolean): Promise<void> {
    this.handles--;
    if (this.handles > 0 || this.#stopped) return;
    this.#stop();
    try {
      const d = await this.driver;
      if (graceful) await d.leave();
      else await d.close();
    } catch {
      // failed to start: nothing to leave
    } finally {
      await this.link.detach();
    }
  }

  #stop(): void {
    if (this.#stopped) return;
    this.#stopped = true;
    this.onStopped();
  }
}

/**
 * The groups of one network node (`network.groups()`): builds group handles
 * with the typestate builder and keeps one running group per GroupId.
 * Joining a GroupId that is already joined returns another handle to the same
 * group (the later machine and storage are not used); the group stops when
 * its last handle is closed.
 */
export class Groups {
  readonly #host: GroupHost;
  readonly #active = new Map<string, GroupInstance<AnyStateMachine>>();
  #closed = false;

  /**
   * The registry of one node's groups. Made by the network; users get it
   * from `network.groups()`.
   *
   * @param host the network's bond layer
   * @internal
   */
  constructor(host: GroupHost) {
    this.#host = host;
  }

  /**
   * Starts building a join with the group's shared key. Every member of a
   * group must use the same key (and the same consensus parameters, state
   * machine signature and state-sync strategy: together they make the
   * GroupId).
   *
   * @param key the group's shared secret
   * @returns the builder stage that can `join()` a leader-election-only
   *   group or take a state machine (see {@link GroupBuilder})
   * @throws {TypeError} when `key` is not a GroupKey
   *
   * @example Leader election among two nodes (NoOp machine)
   * ```ts
   * import { ConsensusConfig, GroupKey, Network, NoOp } from "@mosaik/mosaik";
   * import { MemoryNetwork } from "@mosaik/mosaik/transport/memory";
   *
   * const key = GroupKey.generate(); // every member needs the same key
   * const consensus = ConsensusConfig.builder()
   *   .withHeartbeatInterval(20).withHeartbeatJitter(5)
   *   .withElectionTimeout(100).withElectionTimeoutJitter(20)
   *   .withBootstrapDelay(300) // how long a new member looks for a cluster before founding one
   *   .build();
   *
   * await using net = new MemoryNetwork();
   * await using a = await Network.builder("my-app").withTransport(net.transport()).build();
   * await using b = await Network.builder("my-app")
   *   .withTransport(net.transport())
   *   .withBootstrap(a.local().addr())
   *   .build();
   * // `a.groups().withKey(key).join()` is the same with the default timings.
   * await using ga = a.groups().withKey(key)
   *   .withStateMachine(new NoOp())
   *   .withConsensusConfig(consensus)
   *   .join();
   * const leader = await ga.when().leaderElected();
   * await using gb = b.groups().withKey(key)
   *   .withStateMachine(new NoOp())
   *   .withConsensusConfig(consensus)
   *   .join();
   * await gb.when().leaderIs(leader); // b follows the leader a elected
   * if (!ga.id().equals(gb.id())) throw new Error("same key and config: same group");
   * ```
   */
  withKey(key: GroupKey): KeyedGroupBuilder {
    return new GroupBuilder((def) => this.#join(def)).withKey(key);
  }

  /**
   * The groups running on this node.
   *
   * @returns their GroupIds, one per group however many handles it has
   */
  active(): GroupId[] {
    return [...this.#active.values()].map((g) => g.definition.groupId);
  }

  /**
   * The metrics of every group running on this node (what
   * `Network.builder().withMetrics(…)` serves), as `group.metrics()` gives
   * them for one.
   *
   * @returns one snapshot per running group
   */
  metrics(): GroupMetrics[] {
    return [...this.#active.values()].map((g) => g.metrics());
  }

  /**
   * Leaves every group gracefully; later joins throw
   * `GroupTerminatedError`. Called by `network.close()`. Idempotent.
   *
   * @returns a promise that resolves once every group has left
   */
  async close(): Promise<void> {
    this.#closed = true;
    const all = [...this.#active.values()];
    await Promise.all(all.map(async (g) => {
      g.handles = 1;
      await g.release(true);
    }));
  }

  #join<M extends AnyStateMachine>(definition: GroupDefinition<M>): Group<M> {
    if (this.#closed) throw new GroupTerminatedError("join group");
    const key = definition.groupId.toHex();
    let instance = this.#active.get(key) as GroupInstance<M> | undefined;
    if (instance === undefined) {
      const created: GroupInstance<M> = new GroupInstance(definition, this.#host, () => {
        if (this.#active.get(key) === (created as unknown)) this.#active.delete(key);
      });
      instance = created;
      this.#active.set(key, instance as unknown as GroupInstance<AnyStateMachine>);
    }
    instance.handles++;
    return new GroupHandle(instance);
  }
}

/** One handle to a running group (see {@link Group}). */
class GroupHandle<M extends AnyStateMachine> implements Group<M> {
  readonly #g: GroupInstance<M>;
  #closed = false;

  constructor(instance: GroupInstance<M>) {
    this.#g = instance;
  }

  id(): GroupId {
    return this.#g.definition.groupId;
  }
  leader(): PeerId | undefined {
    return this.#g.status.get().leader;
  }
  isLeader(): boolean {
    return this.#g.status.get().role === "leader";
  }
  committed(): Index {
    return this.#g.status.get().committed;
  }
  logPosition(): Cursor {
    return this.#g.status.get().logPosition;
  }
  bonds(): Bonds {
    return this.#g.link.bonds();
  }
  metrics(): GroupMetrics {
    return this.#g.metrics();
  }
  config(): GroupConfig {
    const d = this.#g.definition;
    return { groupId: d.groupId, key: d.key.toString(), consensus: d.consensus };
  }
  when(): When {
    return new When(this.#g.status);
  }

  async execute(command: CommandOf<M>, options?: SignalOptions): Promise<Index> {
    return (await this.#submit([command], true, "execute command", options)).start;
  }
  executeMany(commands: readonly CommandOf<M>[], options?: SignalOptions): Promise<IndexRange> {
    return this.#submit(commands, true, "execute commands", options);
  }
  async feed(command: CommandOf<M>, options?: SignalOptions): Promise<Index> {
    return (await this.#submit([command], false, "feed command", options)).start;
  }
  feedMany(commands: readonly CommandOf<M>[], options?: SignalOptions): Promise<IndexRange> {
    return this.#submit(commands, false, "feed commands", options);
  }
  async query(
    query: QueryOf<M>,
    consistency: Consistency,
    options?: SignalOptions,
  ): Promise<QueryResult<ResultOf<M>>> {
    const d = await this.#driver("query");
    return d.query(query, consistency, options?.signal);
  }

  async leave(_options?: SignalOptions): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#g.release(true);
  }
  close(): Promise<void> {
    return this.leave();
  }
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  async #submit(
    commands: readonly CommandOf<M>[],
    waitCommit: boolean,
    what: string,
    options: SignalOptions | undefined,
  ): Promise<IndexRange> {
    if (commands.length === 0) throw new NoCommandsError(what);
    const d = await this.#driver(what);
    return d.submit(commands, waitCommit, options?.signal);
  }

  async #driver(what: string): Promise<GroupDriver<M>> {
    if (this.#closed) throw new GroupTerminatedError(what);
    try {
      return await this.#g.driver;
    } catch (err) {
      throw new GroupTerminatedError(what, { cause: err });
    }
  }
}
