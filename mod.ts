/**
 * mosaik for Deno and Bun: trusted processes that share a {@link GroupKey}
 * find each other, elect a leader and replicate a log of commands into a
 * {@link StateMachine} — Raft, with failover, without running etcd.
 *
 * This module re-exports the stable public API only. Runtime-specific pieces
 * live behind subpaths (`storage/deno_kv.ts`, `storage/bun_sqlite.ts`,
 * `transport/*`).
 *
 * @example
 * ```ts
 * import { ConsensusConfig, deriveGroupId, GroupKey, LogReplaySync, NoOp } from "@mosaik/mosaik";
 *
 * const key = GroupKey.generate();                 // share it with every member
 * const config = ConsensusConfig.default();        // the seed's defaults
 * const id = deriveGroupId(key, config, new NoOp(), new LogReplaySync());
 * console.log(`group ${id}`);                      // short hex; the key is never printed
 * ```
 *
 * @module
 */

export {
  Cursor,
  Digest,
  GroupId,
  type Index,
  IndexRange,
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
export type { PeerEntry, SignedPeerEntry } from "./lib/network/entry.ts";
export type { DiscoveryEvent, DiscoveryEvents } from "./lib/network/catalog.ts";
export { Groups } from "./lib/groups/groups.ts";
export type {
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
export { deriveGroupId } from "./lib/groups/group_id.ts";

export type {
  AnyStateMachine,
  ApplyContext,
  CommandOf,
  QueryOf,
  ResultOf,
  StateMachine,
  StateSync,
} from "./lib/machine/state_machine.ts";
export { LeadershipPreference } from "./lib/machine/leadership.ts";
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
export { EncodingError } from "./lib/wire/errors.ts";
export {
  CommandLostError,
  GroupTerminatedError,
  NoCommandsError,
  OfflineError,
} from "./lib/groups/errors.ts";
export {
  type Bond,
  type Bonds,
  Consistency,
  type Group,
  type GroupConfig,
  type GroupRole,
  type GroupStatus,
  type QueryResult,
  type SignalOptions,
} from "./lib/groups/types.ts";
export type { When } from "./lib/groups/when.ts";
