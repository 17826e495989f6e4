// GroupId derivation: key → consensus digest → machine signature → state-sync signature.

import { GroupId } from "../primitives/ids.ts";
import type { ConsensusConfig } from "./config.ts";
import type { GroupKey } from "./key.ts";

/** Anything with a versioned `signature()`: a state machine or a state-sync strategy. */
export interface Signed {
  /** A versioned name, e.g. `"counter/v1"`; a non-empty string. */
  signature(): string;
}

function signatureOf(what: string, x: Signed): string {
  const s: unknown = x.signature();
  if (typeof s !== "string") {
    throw new TypeError(`Cannot derive GroupId: ${what} signature must be a string`);
  }
  if (s.length === 0) {
    throw new RangeError(`Cannot derive GroupId: ${what} signature must not be empty`);
  }
  return s;
}

/**
 * The id of the group formed by these four things (DESIGN.md §5):
 * `blake3(key) → derive(consensus.digest()) → derive(machine.signature()) →
 * derive(stateSync.signature())`, where `derive(a, b) = blake3(a ‖ b)`.
 *
 * Two nodes derive the same id exactly when they share the key, the eight
 * consensus parameters, the machine signature and the state-sync signature.
 * The per-node leadership multiplier does not take part.
 *
 * @param key the group's shared secret
 * @param consensus the consensus parameters (their {@link ConsensusConfig.digest})
 * @param machine the state machine (its `signature()`)
 * @param stateSync the state-sync strategy (its `signature()`), e.g. `new LogReplaySync()`
 * @returns the GroupId, the same on every node that passes equal inputs
 * @throws {TypeError} when a signature is not a string
 * @throws {RangeError} when a signature is empty
 *
 * @example
 * ```ts
 * import { ConsensusConfig, deriveGroupId, GroupKey, LogReplaySync, NoOp } from "@mosaik/mosaik";
 *
 * const key = GroupKey.fromSecret("shared words");
 * const id = deriveGroupId(key, ConsensusConfig.default(), new NoOp(), new LogReplaySync());
 * const reluctant = ConsensusConfig.default().deprioritizeLeadership();
 * if (!deriveGroupId(key, reluctant, new NoOp(), new LogReplaySync()).equals(id)) {
 *   throw new Error("the leadership multiplier is local: same group");
 * }
 * const slower = ConsensusConfig.builder().withElectionTimeout(4000).build();
 * if (deriveGroupId(key, slower, new NoOp(), new LogReplaySync()).equals(id)) {
 *   throw new Error("other timings: another group");
 * }
 * ```
 */
export function deriveGroupId(
  key: GroupKey,
  consensus: ConsensusConfig,
  machine: Signed,
  stateSync: Signed,
): GroupId {
  const machineSig = signatureOf("state machine", machine);
  const syncSig = signatureOf("state sync", stateSync);
  const id = key.digest().derive(consensus.digest()).derive(machineSig).derive(syncSig);
  return new GroupId(id.bytesView());
}
