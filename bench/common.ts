// What the cluster benchmark's orchestrator (bench/run.ts) and its node processes (bench/node.ts) share: the consensus configs, the command shape, the store kinds.

import { ConsensusConfig } from "../mod.ts";

/** The two consensus configs the benchmark runs with. */
export type ConsensusName = "default" | "fast";

/** Where a node keeps its log: `InMemoryLogStore`, or the runtime's durable store (`openDefaultStore`). */
export type StoreKind = "memory" | "durable";

/** A runtime a node process runs on. */
export type Runtime = "deno" | "bun";

/**
 * The fast config: election timeout 300 ms, and every other timing the
 * default scaled by the same factor (300 / 2000 = 0.15): election jitter
 * 75 ms, heartbeat interval 75 ms, heartbeat jitter 22 ms, bootstrap delay
 * 450 ms. Missed heartbeats (10) and the forward and query timeouts (2 s)
 * keep their defaults.
 */
export const FAST_CONSENSUS_VALUES = Object.freeze({
  electionTimeout: 300,
  electionTimeoutJitter: 75,
  heartbeatInterval: 75,
  heartbeatJitter: 22,
  maxMissedHeartbeats: 10,
  bootstrapDelay: 450,
  forwardTimeout: 2_000,
  queryTimeout: 2_000,
});

/** The consensus config called `name`: `ConsensusConfig.default()`, or {@link FAST_CONSENSUS_VALUES}. */
export function consensusConfig(name: ConsensusName): ConsensusConfig {
  if (name === "default") return ConsensusConfig.default();
  const v = FAST_CONSENSUS_VALUES;
  return ConsensusConfig.builder()
    .withElectionTimeout(v.electionTimeout)
    .withElectionTimeoutJitter(v.electionTimeoutJitter)
    .withHeartbeatInterval(v.heartbeatInterval)
    .withHeartbeatJitter(v.heartbeatJitter)
    .withMaxMissedHeartbeats(v.maxMissedHeartbeats)
    .withBootstrapDelay(v.bootstrapDelay)
    .withForwardTimeout(v.forwardTimeout)
    .withQueryTimeout(v.queryTimeout)
    .build();
}

/** Network name of every benchmark node. */
export const NETWORK_NAME = "mosaik-bench";

/** Keys the write load cycles through. */
export const KEYS = 1000;

/** The value of every `set` command: 32 bytes. */
export const VALUE = "0123456789abcdef0123456789abcdef";

/** Environment variable that carries the group key (hex) to a node; keys stay off command lines. */
export const KEY_ENV = "MOSAIK_BENCH_KEY";

/** Percentiles and mean of `samples` (ms), sorted in place. */
export function summary(samples: number[]): Record<string, number | null> {
  if (samples.length === 0) return { n: 0, p50: null, p90: null, p99: null, max: null, mean: null };
  samples.sort((a, b) => a - b);
  const at = (q: number) => samples[Math.min(samples.length - 1, Math.floor(q * samples.length))]!;
  return {
    n: samples.length,
    p50: at(0.5),
    p90: at(0.9),
    p99: at(0.99),
    max: samples[samples.length - 1]!,
    mean: samples.reduce((a, b) => a + b, 0) / samples.length,
  };
}
