// ConsensusConfig: the timing parameters every member of a group must share, and its builder.

import { Digest } from "../primitives/digest.ts";

/**
 * The eight parameters the seed names. All are part of the {@link GroupId}:
 * nodes with different values form different groups. Durations are
 * milliseconds.
 */
export interface ConsensusParameters {
  /** Interval between bond heartbeat pings (ms). */
  readonly heartbeatInterval: number;
  /** Max random jitter subtracted from the heartbeat interval (ms). */
  readonly heartbeatJitter: number;
  /** Missed heartbeats before a bond is considered dead. */
  readonly maxMissedHeartbeats: number;
  /** Base timeout before a follower starts an election (ms). */
  readonly electionTimeout: number;
  /** Max random jitter added to the election timeout (ms). */
  readonly electionTimeoutJitter: number;
  /** Wait before the first election, to allow peer discovery (ms). */
  readonly bootstrapDelay: number;
  /** Timeout for forwarding commands to the leader (ms). */
  readonly forwardTimeout: number;
  /** Timeout for strong-consistency query responses (ms). */
  readonly queryTimeout: number;
}

/** The seed's defaults. */
export const CONSENSUS_DEFAULTS: Readonly<ConsensusParameters> = Object.freeze({
  heartbeatInterval: 500,
  heartbeatJitter: 150,
  maxMissedHeartbeats: 10,
  electionTimeout: 2000,
  electionTimeoutJitter: 500,
  bootstrapDelay: 3000,
  forwardTimeout: 2000,
  queryTimeout: 2000,
});

/**
 * Default for {@link ConsensusConfig.deadMemberTimeout}: a member unreachable
 * this long is removed by the leader's autopilot. Not part of the GroupId: only
 * the leader's value is ever used, and members disagreeing on it cannot break
 * safety.
 */
export const DEFAULT_DEAD_MEMBER_TIMEOUT = 30_000;

/** Multiplier applied by {@link ConsensusConfig.deprioritizeLeadership}. */
export const DEFAULT_LEADERSHIP_MULTIPLIER = 3;

/**
 * The largest duration accepted (ms): timers in every runtime overflow above
 * 2^31 - 1 and fire at once, which would turn a long timeout into none.
 */
export const MAX_DURATION_MS = 2 ** 31 - 1;

const PARAMETER_ORDER: readonly (keyof ConsensusParameters)[] = [
  "heartbeatInterval",
  "heartbeatJitter",
  "maxMissedHeartbeats",
  "electionTimeout",
  "electionTimeoutJitter",
  "bootstrapDelay",
  "forwardTimeout",
  "queryTimeout",
];

const DIGEST_DOMAIN = "mosaik/consensus-config/v1";

/** All settable values, mutable while a builder holds them. */
type Draft = { -readonly [K in keyof ConsensusParameters]: number } & {
  deadMemberTimeout: number;
  leadershipMultiplier: number;
};

/**
 * Consensus parameters of a group.
 *
 * Build one with {@link ConsensusConfig.builder} or take
 * {@link ConsensusConfig.default}. The eight shared parameters go into
 * {@link ConsensusConfig.digest} and so into the GroupId. The leadership
 * multiplier ({@link ConsensusConfig.deprioritizeLeadership}) is local to this
 * node: it scales this node's election timeout and bootstrap delay, making it
 * less likely to become leader, and does not change the GroupId.
 *
 * @example
 * ```ts
 * import { ConsensusConfig } from "@mosaik/mosaik";
 *
 * const c = ConsensusConfig.builder()
 *   .withHeartbeatInterval(250)
 *   .withElectionTimeout(3000)
 *   .build(); // the other parameters keep their defaults
 * const reluctant = c.deprioritizeLeadership(); // × 3 on this node only
 * if (reluctant.effectiveElectionTimeout() !== 9000) throw new Error("3000 × 3");
 * if (reluctant.digest().toHex() !== c.digest().toHex()) throw new Error("same GroupId");
 * try {
 *   ConsensusConfig.builder().withElectionTimeout(100).build(); // not above the heartbeat
 *   throw new Error("unreachable");
 * } catch (err) {
 *   if (!(err instanceof RangeError)) throw err; // "Invalid ConsensusConfig: electionTimeout …"
 * }
 * ```
 */
export class ConsensusConfig implements ConsensusParameters {
  /** Interval between bond heartbeat pings (ms, default 500). */
  readonly heartbeatInterval: number;
  /** Max random jitter subtracted from the heartbeat interval (ms, default 150). */
  readonly heartbeatJitter: number;
  /** Missed heartbeats before a bond is considered dead (default 10). */
  readonly maxMissedHeartbeats: number;
  /** Base timeout before a follower starts an election (ms, default 2000). */
  readonly electionTimeout: number;
  /** Max random jitter added to the election timeout (ms, default 500). */
  readonly electionTimeoutJitter: number;
  /** Wait before the first election, to allow peer discovery (ms, default 3000). */
  readonly bootstrapDelay: number;
  /** Timeout for forwarding commands to the leader (ms, default 2000). */
  readonly forwardTimeout: number;
  /** Timeout for strong-consistency query responses (ms, default 2000). */
  readonly queryTimeout: number;
  /** How long a member may be unreachable before the leader removes it (ms, default 30 000); local to the leader. */
  readonly deadMemberTimeout: number;
  /** Factor (≥ 1, default 1) on this node's election timeout and bootstrap delay; local to this node. */
  readonly leadershipMultiplier: number;

  private constructor(d: Draft) {
    this.heartbeatInterval = d.heartbeatInterval;
    this.heartbeatJitter = d.heartbeatJitter;
    this.maxMissedHeartbeats = d.maxMissedHeartbeats;
    this.electionTimeout = d.electionTimeout;
    this.electionTimeoutJitter = d.electionTimeoutJitter;
    this.bootstrapDelay = d.bootstrapDelay;
    this.forwardTimeout = d.forwardTimeout;
    this.queryTimeout = d.queryTimeout;
    this.deadMemberTimeout = d.deadMemberTimeout;
    this.leadershipMultiplier = d.leadershipMultiplier;
    Object.freeze(this);
  }

  /**
   * A builder starting from the defaults.
   *
   * @returns a new builder; `build()` validates
   */
  static builder(): ConsensusConfigBuilder {
    return new ConsensusConfigBuilder();
  }

  /**
   * The seed's defaults (heartbeat 500 ms, jitter 150 ms, 10 missed
   * heartbeats, election timeout 2000 ms, jitter 500 ms, bootstrap delay
   * 3000 ms, forward and query timeouts 2000 ms), a dead-member timeout of
   * 30 000 ms and no leadership multiplier.
   *
   * @returns the default config
   */
  static default(): ConsensusConfig {
    return new ConsensusConfigBuilder().build();
  }

  /** @internal Validates and freezes a draft; used by the builder. */
  static fromDraft(d: Draft): ConsensusConfig {
    validate(d);
    return new ConsensusConfig(d);
  }

  /**
   * A copy with leadership deprioritized by the default factor (× 3).
   * Replaces any earlier multiplier.
   *
   * @returns a new config with the same GroupId
   * @throws {RangeError} when the scaled election timeout or bootstrap delay overflows
   */
  deprioritizeLeadership(): ConsensusConfig {
    return this.deprioritizeLeadershipBy(DEFAULT_LEADERSHIP_MULTIPLIER);
  }

  /**
   * A copy whose election timeout and bootstrap delay are multiplied by
   * `factor` on this node. Replaces any earlier multiplier; `1` restores normal.
   *
   * @param factor an integer ≥ 1
   * @returns a new config with the same GroupId
   * @throws {TypeError} when `factor` is not a number
   * @throws {RangeError} when `factor` is not an integer ≥ 1, or the scaled timeouts overflow
   */
  deprioritizeLeadershipBy(factor: number): ConsensusConfig {
    return ConsensusConfig.fromDraft({ ...this.draft(), leadershipMultiplier: factor });
  }

  /**
   * This node's election timeout: `electionTimeout × leadershipMultiplier`.
   *
   * @returns milliseconds, before jitter
   */
  effectiveElectionTimeout(): number {
    return this.electionTimeout * this.leadershipMultiplier;
  }

  /**
   * This node's bootstrap delay: `bootstrapDelay × leadershipMultiplier`.
   *
   * @returns milliseconds
   */
  effectiveBootstrapDelay(): number {
    return this.bootstrapDelay * this.leadershipMultiplier;
  }

  /**
   * How long a bond may stay silent before it is dead:
   * `heartbeatInterval × maxMissedHeartbeats`.
   *
   * @returns milliseconds
   */
  bondTimeout(): number {
    return this.heartbeatInterval * this.maxMissedHeartbeats;
  }

  /**
   * A 32-byte digest of the eight shared parameters in a fixed order, each as
   * a big-endian u64 after a domain tag. Excludes the leadership multiplier
   * and the dead-member timeout, which are local.
   *
   * @returns 32 bytes; part of the GroupId
   */
  digest(): Digest {
    const buf = new Uint8Array(PARAMETER_ORDER.length * 8);
    const view = new DataView(buf.buffer);
    PARAMETER_ORDER.forEach((name, i) => view.setBigUint64(i * 8, BigInt(this[name])));
    return Digest.hash(DIGEST_DOMAIN, buf);
  }

  /**
   * The eight shared parameters as a plain object.
   *
   * @returns a new object
   */
  parameters(): ConsensusParameters {
    const out: Record<string, number> = {};
    for (const name of PARAMETER_ORDER) out[name] = this[name];
    return out as unknown as ConsensusParameters;
  }

  /**
   * A builder holding this config's values, multiplier and dead-member timeout included.
   *
   * @returns a new builder; changing it does not change this config
   */
  toBuilder(): ConsensusConfigBuilder {
    return new ConsensusConfigBuilder(this.draft());
  }

  /** Every value of this config, as a mutable draft for the builder. */
  private draft(): Draft {
    return {
      ...this.parameters(),
      deadMemberTimeout: this.deadMemberTimeout,
      leadershipMultiplier: this.leadershipMultiplier,
    };
  }
}

/**
 * Fluent builder for {@link ConsensusConfig}: each `with…` sets one value and
 * returns the builder; `build()` validates them together. Get one from
 * {@link ConsensusConfig.builder} or {@link ConsensusConfig.toBuilder}.
 *
 * @example
 * ```ts
 * import { ConsensusConfig } from "@mosaik/mosaik";
 *
 * // Shorter timings than the defaults, e.g. for a LAN; every member must use the same.
 * const lan = ConsensusConfig.builder()
 *   .withHeartbeatInterval(200)
 *   .withHeartbeatJitter(50)
 *   .withElectionTimeout(1000)
 *   .withElectionTimeoutJitter(300)
 *   .build();
 * const tweaked = lan.toBuilder().withQueryTimeout(5000).build();
 * if (tweaked.heartbeatInterval !== 200 || tweaked.queryTimeout !== 5000) throw new Error("kept");
 * ```
 */
export class ConsensusConfigBuilder {
  #d: Draft;

  /**
   * A builder holding the defaults, or the values of `start`. Prefer
   * {@link ConsensusConfig.builder} and {@link ConsensusConfig.toBuilder}.
   *
   * @param start the values to start from (copied)
   */
  constructor(start?: Draft) {
    this.#d = start !== undefined ? { ...start } : {
      ...CONSENSUS_DEFAULTS,
      deadMemberTimeout: DEFAULT_DEAD_MEMBER_TIMEOUT,
      leadershipMultiplier: 1,
    };
  }

  /**
   * Interval between bond heartbeat pings (ms, default 500).
   *
   * @param ms the value; checked by {@link build}
   * @returns this builder
   */
  withHeartbeatInterval(ms: number): this {
    this.#d.heartbeatInterval = ms;
    return this;
  }

  /**
   * Max random jitter subtracted from the heartbeat interval (ms, default 150).
   *
   * @param ms the value; checked by {@link build}
   * @returns this builder
   */
  withHeartbeatJitter(ms: number): this {
    this.#d.heartbeatJitter = ms;
    return this;
  }

  /**
   * Missed heartbeats before a bond is considered dead (default 10).
   *
   * @param n the value; checked by {@link build}
   * @returns this builder
   */
  withMaxMissedHeartbeats(n: number): this {
    this.#d.maxMissedHeartbeats = n;
    return this;
  }

  /**
   * Base timeout before a follower starts an election (ms, default 2000).
   *
   * @param ms the value; checked by {@link build}
   * @returns this builder
   */
  withElectionTimeout(ms: number): this {
    this.#d.electionTimeout = ms;
    return this;
  }

  /**
   * Max random jitter added to the election timeout (ms, default 500).
   *
   * @param ms the value; checked by {@link build}
   * @returns this builder
   */
  withElectionTimeoutJitter(ms: number): this {
    this.#d.electionTimeoutJitter = ms;
    return this;
  }

  /**
   * Wait before the first election, to allow peer discovery (ms, default 3000).
   *
   * @param ms the value; checked by {@link build}
   * @returns this builder
   */
  withBootstrapDelay(ms: number): this {
    this.#d.bootstrapDelay = ms;
    return this;
  }

  /**
   * Timeout for forwarding commands to the leader (ms, default 2000).
   *
   * @param ms the value; checked by {@link build}
   * @returns this builder
   */
  withForwardTimeout(ms: number): this {
    this.#d.forwardTimeout = ms;
    return this;
  }

  /**
   * Timeout for strong-consistency query responses (ms, default 2000).
   *
   * @param ms the value; checked by {@link build}
   * @returns this builder
   */
  withQueryTimeout(ms: number): this {
    this.#d.queryTimeout = ms;
    return this;
  }

  /**
   * How long a member may be unreachable before the leader's autopilot removes
   * it (ms, default 30 000; must exceed the election timeout). Local to the
   * leader, not part of the GroupId.
   *
   * @param ms the value; checked by {@link build}
   * @returns this builder
   */
  withDeadMemberTimeout(ms: number): this {
    this.#d.deadMemberTimeout = ms;
    return this;
  }

  /**
   * Deprioritize leadership on this node by the default factor (× 3).
   * Not part of the GroupId.
   *
   * @returns this builder
   */
  deprioritizeLeadership(): this {
    return this.deprioritizeLeadershipBy(DEFAULT_LEADERSHIP_MULTIPLIER);
  }

  /**
   * Deprioritize leadership on this node by `factor`: its election timeout
   * and bootstrap delay are multiplied by it. Not part of the GroupId.
   *
   * @param factor an integer ≥ 1 (checked by {@link build}); 1 is normal
   * @returns this builder
   */
  deprioritizeLeadershipBy(factor: number): this {
    this.#d.leadershipMultiplier = factor;
    return this;
  }

  /**
   * Validates and returns the config.
   *
   * Rejects: non-integers; zero or negative intervals, timeouts and
   * `maxMissedHeartbeats`; durations above 2^31 - 1 ms;
   * `heartbeatJitter >= heartbeatInterval`; `electionTimeout <= heartbeatInterval`;
   * `deadMemberTimeout <= electionTimeout`; a multiplier below 1 or one that
   * scales a timeout past 2^31 - 1 ms.
   *
   * @returns the config; the builder can be reused
   * @throws {TypeError} when a value is not a number
   * @throws {RangeError} when a value is out of range; the message names the parameter
   */
  build(): ConsensusConfig {
    return ConsensusConfig.fromDraft({ ...this.#d });
  }
}

function fail(name: string, why: string, value: unknown): never {
  throw new RangeError(`Invalid ConsensusConfig: ${name} ${why}, got ${String(value)}`);
}

function integer(name: string, value: unknown, min: number, max: number, unit: string): number {
  if (typeof value !== "number") {
    throw new TypeError(
      `Invalid ConsensusConfig: ${name} must be a number, got ${
        value === null ? "null" : typeof value
      }`,
    );
  }
  if (!Number.isInteger(value)) fail(name, `must be an integer${unit}`, value);
  if (value < min) fail(name, `must be at least ${min}${unit}`, value);
  if (value > max) fail(name, `must be at most ${max}${unit}`, value);
  return value;
}

function validate(d: Draft): void {
  const ms = " ms";
  integer("heartbeatInterval", d.heartbeatInterval, 1, MAX_DURATION_MS, ms);
  integer("heartbeatJitter", d.heartbeatJitter, 0, MAX_DURATION_MS, ms);
  integer("maxMissedHeartbeats", d.maxMissedHeartbeats, 1, MAX_DURATION_MS, "");
  integer("electionTimeout", d.electionTimeout, 1, MAX_DURATION_MS, ms);
  integer("electionTimeoutJitter", d.electionTimeoutJitter, 0, MAX_DURATION_MS, ms);
  integer("bootstrapDelay", d.bootstrapDelay, 0, MAX_DURATION_MS, ms);
  integer("forwardTimeout", d.forwardTimeout, 1, MAX_DURATION_MS, ms);
  integer("queryTimeout", d.queryTimeout, 1, MAX_DURATION_MS, ms);
  integer("deadMemberTimeout", d.deadMemberTimeout, 1, MAX_DURATION_MS, ms);
  integer("leadershipMultiplier", d.leadershipMultiplier, 1, MAX_DURATION_MS, "");

  if (d.heartbeatJitter >= d.heartbeatInterval) {
    fail(
      "heartbeatJitter",
      `must be less than heartbeatInterval (${d.heartbeatInterval} ms)`,
      d.heartbeatJitter,
    );
  }
  if (d.heartbeatInterval * d.maxMissedHeartbeats > MAX_DURATION_MS) {
    fail(
      "maxMissedHeartbeats",
      `times heartbeatInterval must be at most ${MAX_DURATION_MS} ms`,
      d.maxMissedHeartbeats,
    );
  }
  if (d.electionTimeout <= d.heartbeatInterval) {
    fail(
      "electionTimeout",
      `must be greater than heartbeatInterval (${d.heartbeatInterval} ms)`,
      d.electionTimeout,
    );
  }
  if (d.deadMemberTimeout <= d.electionTimeout) {
    fail(
      "deadMemberTimeout",
      `must be greater than electionTimeout (${d.electionTimeout} ms)`,
      d.deadMemberTimeout,
    );
  }
  const m = d.leadershipMultiplier;
  if (d.electionTimeout * m + d.electionTimeoutJitter > MAX_DURATION_MS) {
    fail(
      "leadershipMultiplier",
      `scales electionTimeout (plus its jitter) past ${MAX_DURATION_MS} ms`,
      m,
    );
  }
  if (d.bootstrapDelay * m > MAX_DURATION_MS) {
    fail("leadershipMultiplier", `scales bootstrapDelay past ${MAX_DURATION_MS} ms`, m);
  }
}
