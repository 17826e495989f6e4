/**
 * mosaik for Deno and Bun: trusted processes that share a {@link GroupKey}
 * find each other, elect a leader and replicate a log of commands into a
 * {@link StateMachine} — Raft, with failover, without running etcd.
 *
 * This module re-exports the stable public API only. Runtime-specific pieces
 * live behind subpaths: `@mosaik/mosaik/storage/deno_kv`,
 * `@mosaik/mosaik/storage/bun_sqlite`, `@mosaik/mosaik/storage/default`,
 * `@mosaik/mosaik/transport/memory` and `@mosaik/mosaik/transport/types`.
 *
 * The flow: build a {@link Network} (a node), join a group with
 * `network.groups().withKey(key)….join()`, wait with `group.when()`, then
 * `execute` commands and `query` the state machine. The defaults are the
 * seed's: QUIC on every interface and a 3 s bootstrap delay; the example below
 * uses the in-memory transport and short timings so that it runs in a test.
 *
 * @example Two nodes replicate a key-value map
 * ```ts
 * import { ConsensusConfig, Consistency, GroupKey, KeyValue, Network } from "@mosaik/mosaik";
 * import { MemoryNetwork } from "@mosaik/mosaik/transport/memory";
 *
 * const key = GroupKey.generate(); // share key.toHex() with every member
 * const consensus = ConsensusConfig.builder()
 *   .withHeartbeatInterval(20).withHeartbeatJitter(5)
 *   .withElectionTimeout(100).withElectionTimeoutJitter(20)
 *   .withBootstrapDelay(300) // how long a new member looks for a cluster before founding one
 *   .build(); // every member must use the same parameters
 *
 * await using net = new MemoryNetwork(); // omit withTransport(...) for QUIC
 * await using a = await Network.builder("my-app").withTransport(net.transport()).build();
 * await using b = await Network.builder("my-app")
 *   .withTransport(net.transport())
 *   .withBootstrap(a.local().addr()) // a.local().addr().toString() goes on a command line
 *   .build();
 *
 * await using ga = a.groups().withKey(key).withStateMachine(new KeyValue())
 *   .withConsensusConfig(consensus).join();
 * await ga.when().isLeader(); // the first member elects itself
 * await using gb = b.groups().withKey(key).withStateMachine(new KeyValue())
 *   .withConsensusConfig(consensus).join();
 * await gb.when().online(); // b follows a and has caught up
 *
 * await gb.execute({ op: "set", key: "colour", value: "blue" }); // forwarded to the leader
 * const { result } = await ga.query("colour", Consistency.Strong);
 * if (result !== "blue") throw new Error(`expected blue, got ${result}`);
 * ```
 *
 * @example Errors a caller handles
 * ```ts
 * import {
 *   CommandLostError,
 *   EncodingError,
 *   type Group,
 *   GroupTerminatedError,
 *   type KeyValue,
 *   type KvCommand,
 *   NoCommandsError,
 *   OfflineError,
 * } from "@mosaik/mosaik";
 *
 * async function apply(group: Group<KeyValue>, commands: KvCommand[]): Promise<string> {
 *   try {
 *     const range = await group.executeMany(commands);
 *     return `committed at ${range.start}..=${range.end}`;
 *   } catch (err) {
 *     // Not in the log: safe to send again, e.g. after `await group.when().online()`.
 *     if (err instanceof OfflineError) return `no leader; ${err.commands.length} unsent`;
 *     if (err instanceof CommandLostError) return `lost at ${err.index}; safe to retry`;
 *     // Mistakes of the caller, or a closed group: retrying does not help.
 *     if (err instanceof NoCommandsError) return "nothing to do";
 *     if (err instanceof EncodingError) return `not plain data at ${err.path}`;
 *     if (err instanceof GroupTerminatedError) return "the group was closed";
 *     throw err;
 *   }
 * }
 *
 * const closed = {
 *   executeMany: () => Promise.reject(new GroupTerminatedError("execute commands")),
 * } as unknown as Group<KeyValue>;
 * const outcome = await apply(closed, [{ op: "delete", key: "colour" }]);
 * if (outcome !== "the group was closed") throw new Error(outcome);
 * ```
 *
 * Storage errors (`StoreLockedError`, `StoreOwnerError`, `StoreCorruptError`,
 * `StoreVersionError`, all {@link StorageError}s) come from opening a durable
 * store or joining with one.
 *
 * @module
 */

export {
  Cursor,
  type CursorHelpers,
  Digest,
  type DigestInput,
  GroupId,
  type Index,
  IndexRange,
  type IndexRangeHelpers,
  NetworkId,
  PeerId,
  type Term,
  UniqueId,
} from "./lib/primitives/mod.ts";

export { GroupKey } from "./lib/groups/key.ts";
export {
  Discovery,
  type DiscoveryConfig,
  type GroupsConfig,
  LocalNode,
  Network,
  NetworkBuilder,
} from "./lib/network/network.ts";
export { PeerAddr, type TransportAddress } from "./lib/network/peer_addr.ts";
export type { EntryVersion, PeerEntry, SignedPeerEntry } from "./lib/network/entry.ts";
export type {
  CloseInfo,
  Connection,
  DialOptions,
  DialTarget,
  Listener,
  SocketAddress,
  Stream,
  TlsIdentity,
  Transport,
  TransportContext,
  TransportFactory,
} from "./transport/types.ts";
export type { DiscoveryEvent, DiscoveryEvents } from "./lib/network/catalog.ts";
export { Groups } from "./lib/groups/groups.ts";
export type {
  ExactStorage,
  GroupBuilder,
  KeyedGroupBuilder,
  MachineGroupBuilder,
  StoredGroupBuilder,
} from "./lib/groups/builder.ts";
export {
  CONSENSUS_DEFAULTS,
  ConsensusConfig,
  ConsensusConfigBuilder,
  type ConsensusParameters,
  DEFAULT_DEAD_MEMBER_TIMEOUT,
} from "./lib/groups/config.ts";
export { deriveGroupId, type Signed } from "./lib/groups/group_id.ts";

export type {
  AnyStateMachine,
  ApplyContext,
  CommandOf,
  QueryOf,
  ResultOf,
  StateMachine,
  StateSync,
} from "./lib/machine/state_machine.ts";
export {
  LeadershipPreference,
  type LeadershipPreferenceHelpers,
} from "./lib/machine/leadership.ts";
export { NoOp } from "./lib/machine/noop.ts";
export { KeyValue, type KvCommand } from "./lib/machine/kv.ts";
export { type LogReplayOptions, LogReplaySync } from "./lib/machine/log_replay.ts";

export {
  type HardState,
  type LogEntry,
  type Storage,
  SystemEntry,
  type SystemEntryBody,
} from "./storage/types.ts";
export { InMemoryLogStore } from "./storage/memory.ts";
export {
  StorageError,
  StoreCorruptError,
  StoreLockedError,
  type StoreOwner,
  StoreOwnerError,
  StoreVersionError,
} from "./storage/errors.ts";
export { decodeEntry, encodeEntry } from "./lib/wire/entry.ts";
export { EncodingError, type WireError, type WireErrorCode } from "./lib/wire/errors.ts";
export {
  CommandLostError,
  GroupTerminatedError,
  NoCommandsError,
  OfflineError,
  type Unsent,
} from "./lib/groups/errors.ts";
export {
  type Bond,
  type BondMetrics,
  type Bonds,
  Consistency,
  type ConsistencyValues,
  type Group,
  type GroupConfig,
  type GroupMetrics,
  type GroupRole,
  type GroupStatus,
  type QueryResult,
  type SignalOptions,
  type StateReverted,
} from "./lib/groups/types.ts";
export type { CommittedWatcher, LogWatcher, When } from "./lib/groups/when.ts";
export { type HistogramSnapshot, LATENCY_BUCKETS_MS } from "./lib/metrics/histogram.ts";
export type { MetricsConfig } from "./lib/metrics/config.ts";
export {
  consoleLogger,
  type ConsoleLoggerOptions,
  type Logger,
  type LogLevel,
  type LogRecord,
  type LogThreshold,
  type LogValue,
} from "./lib/log/logger.ts";
