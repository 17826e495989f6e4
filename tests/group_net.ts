// Test helper: a few Network nodes on MemoryNetwork or real loopback QUIC, with fast consensus timings, for group tests.

import { Network, type NetworkBuilder } from "../lib/network/network.ts";
import { ConsensusConfig } from "../lib/groups/config.ts";
import { MemoryNetwork } from "../transport/memory.ts";
import type { PeerId } from "../lib/primitives/ids.ts";
import type { Index } from "../lib/primitives/cursor.ts";
import { type Storage, SystemEntry } from "../storage/types.ts";
import { InMemoryLogStore } from "../storage/memory.ts";
import { GroupKey } from "../lib/groups/key.ts";
import type { Group } from "../lib/groups/types.ts";
import type { AnyStateMachine, CommandOf } from "../lib/machine/state_machine.ts";

/** Which transport the nodes use. */
export type Fabric = "memory" | "quic";

/** Consensus timings short enough for tests (heartbeat 25 ms, election 150–225 ms). */
export const FAST: ConsensusConfig = ConsensusConfig.builder()
  .withHeartbeatInterval(25)
  .withHeartbeatJitter(5)
  .withMaxMissedHeartbeats(8)
  .withElectionTimeout(150)
  .withElectionTimeoutJitter(75)
  .withBootstrapDelay(150)
  .withForwardTimeout(2_000)
  .withQueryTimeout(2_000)
  .build();

/** Default deadline of {@link eventually}. */
export const DEADLINE_MS = 10_000;

/** Polls `cond` every 5 ms until it holds; throws naming `what` after `ms`. */
export async function eventually(
  cond: () => boolean | Promise<boolean>,
  what: string,
  ms = DEADLINE_MS,
): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`Timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** `promise`, or a rejection naming `what` after `ms`. */
export async function within<T>(promise: Promise<T>, what: string, ms = DEADLINE_MS): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`Timed out after ${ms} ms: ${what}`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Nodes of one network name on one fabric; the first node is everyone's bootstrap peer. */
export class Nodes implements AsyncDisposable {
  readonly fabric: Fabric;
  /** The in-process network (memory fabric only): partitions, isolation. */
  readonly memory: MemoryNetwork | undefined;
  readonly all: Network[] = [];
  readonly #name: string;
  readonly #closed = new Set<Network>();

  constructor(fabric: Fabric, name = "group-test", seed = 1) {
    this.fabric = fabric;
    this.#name = name;
    this.memory = fabric === "memory" ? new MemoryNetwork({ latencyMs: 1, seed }) : undefined;
  }

  /** A builder with this fabric's transport, a loopback listen address and fast discovery. */
  builder(): NetworkBuilder {
    let b = Network.builder(this.#name)
      .withListenAddress("127.0.0.1:0")
      .withDiscoveryConfig({ announceInterval: 100, staleAfter: 5_000, syncTimeout: 5_000 })
      .withGroupsConfig({ handshakeTimeout: 3_000 });
    if (this.memory !== undefined) b = b.withTransport(this.memory.transport());
    const first = this.all.find((n) => !this.#closed.has(n));
    if (first !== undefined) b = b.withBootstrap(first.local().addr());
    return b;
  }

  /** Builds and starts one more node (bootstrapping to the first live one). */
  async add(configure: (b: NetworkBuilder) => NetworkBuilder = (b) => b): Promise<Network> {
    const n = await configure(this.builder()).build();
    this.all.push(n);
    return n;
  }

  /** Builds `count` more nodes. */
  async addMany(count: number): Promise<Network[]> {
    const out: Network[] = [];
    for (let i = 0; i < count; i++) out.push(await this.add());
    return out;
  }

  /** Closes one node's network (its groups leave gracefully). */
  async close(n: Network): Promise<void> {
    this.#closed.add(n);
    await n.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.memory?.heal();
    await Promise.all(this.all.map((n) => n.close().catch(() => {})));
    await this.memory?.close();
  }
}

/** What {@link agreedLeader} reads of a group handle. */
export interface LeaderView {
  leader(): PeerId | undefined;
}

/**
 * Waits until every handle knows the same leader (and, when given, not
 * `excluded`) and returns it; throws naming `what` after `ms`.
 */
export async function agreedLeader(
  groups: readonly LeaderView[],
  what: string,
  options: { excluded?: PeerId; ms?: number } = {},
): Promise<PeerId> {
  let agreed: PeerId | undefined;
  await eventually(
    () => {
      const first = groups[0]?.leader();
      if (first === undefined || first.equals(options.excluded)) return false;
      if (!groups.every((g) => first.equals(g.leader()))) return false;
      agreed = first;
      return true;
    },
    what,
    options.ms,
  );
  return agreed!;
}

/** Sorted PeerId hexes of a group handle's bonds. */
export function bondPeers(group: { bonds(): Iterable<{ readonly peerId: PeerId }> }): string[] {
  return [...group.bonds()].map((b) => b.peerId.toHex()).sort();
}

/**
 * Calls `wait` with an abort signal that fires after `ms` (for `when()` waits
 * and group calls); a rejection caused by that deadline is rethrown naming `what`.
 */
export async function withDeadline<T>(
  what: string,
  wait: (options: { signal: AbortSignal }) => Promise<T>,
  ms = DEADLINE_MS,
): Promise<T> {
  const signal = AbortSignal.timeout(ms);
  try {
    return await wait({ signal });
  } catch (err) {
    if (signal.aborted && err === signal.reason) {
      throw new Error(`Timed out after ${ms} ms: ${what}`, { cause: err });
    }
    throw err;
  }
}

/**
 * The voters and learners (sorted PeerId hexes) of the latest configuration
 * entry (bootstrap or membership) at or below `committed` in a group's own
 * log store, or `undefined` when there is none yet.
 */
export async function committedMembership<C>(
  store: Storage<C>,
  committed: Index,
): Promise<{ voters: string[]; learners: string[] } | undefined> {
  let found: { voters: string[]; learners: string[] } | undefined;
  for (const e of await store.getRange(1, committed)) {
    if (!SystemEntry.is(e.command)) continue;
    const body = e.command.body;
    if (body.type === "bootstrap") found = { voters: [...body.voters], learners: [] };
    if (body.type === "membership") {
      found = { voters: [...body.voters], learners: [...body.learners] };
    }
  }
  return found && { voters: found.voters.sort(), learners: found.learners.sort() };
}

/** The voters of {@link committedMembership}, or `undefined` when there is no configuration yet. */
export async function committedVoters<C>(
  store: Storage<C>,
  committed: Index,
): Promise<string[] | undefined> {
  return (await committedMembership(store, committed))?.voters;
}

/**
 * Waits until every member knows a committed configuration whose voters are
 * exactly `voters` (PeerIds). Closing a voter earlier may leave the rest
 * without a quorum: a new member is a learner until the leader promotes it.
 */
export async function votersSettle<C>(
  members: readonly { group: { committed(): Index }; store: Storage<C> }[],
  voters: readonly PeerId[],
  what: string,
): Promise<void> {
  const want = voters.map((v) => v.toHex()).sort().join();
  await eventually(async () => {
    for (const m of members) {
      if ((await committedVoters(m.store, m.group.committed()))?.join() !== want) return false;
    }
    return true;
  }, what);
}

/** A node's membership of a test group: its network, handle, log store and machine. */
export interface Member<M extends AnyStateMachine> {
  readonly net: Network;
  readonly group: Group<M>;
  readonly store: InMemoryLogStore<CommandOf<M>>;
  readonly machine: M;
}

/** Joins `net` to the group of `key` with `machine`, an inspectable log store and {@link FAST}. */
export function joinMember<M extends AnyStateMachine>(
  net: Network,
  key: GroupKey,
  machine: M,
): Member<M> {
  const store = new InMemoryLogStore<CommandOf<M>>();
  const group = net.groups().withKey(key).withStateMachine(machine).withLogStorage(store)
    .withConsensusConfig(FAST).join();
  return { net, group, store, machine };
}

/**
 * `count` members led by the first: it forms the group alone, the others
 * join and follow it, and every one of them becomes a voter.
 *
 * @param machine makes each member's state machine
 * @param configure adjusts each node's network builder
 */
export async function votingCluster<M extends AnyStateMachine>(
  nodes: Nodes,
  count: number,
  machine: () => M,
  options: { key?: GroupKey; configure?: (b: NetworkBuilder) => NetworkBuilder } = {},
): Promise<Member<M>[]> {
  const key = options.key ?? GroupKey.generate();
  const add = () => nodes.add(options.configure);
  const first = joinMember(await add(), key, machine());
  await withDeadline("the first node leads", (o) => first.group.when().isLeader(o));
  const members = [first];
  for (let i = 1; i < count; i++) members.push(joinMember(await add(), key, machine()));
  const leader = first.net.local().id();
  for (const m of members) {
    await withDeadline("every node follows the first", (o) => m.group.when().leaderIs(leader, o));
  }
  await votersSettle(members, members.map((m) => m.net.local().id()), "all members vote");
  return members;
}
