// LeadershipPreference: how eagerly this node's state machine wants to lead.

/**
 * How eagerly a node seeks leadership, chosen by its state machine
 * (`StateMachine.leadershipPreference`). Local to the node; not part of the
 * GroupId.
 *
 * - `Normal`: campaigns with the configured election timeout.
 * - `Reluctant(factor)`: multiplies this node's election timeout and bootstrap
 *   delay by `factor` (default 3), on top of any
 *   `ConsensusConfig.deprioritizeLeadershipBy` multiplier.
 * - `Observer`: replicates the log and serves weak reads but never votes and
 *   never campaigns (a learner forever).
 */
export type LeadershipPreference =
  | { readonly kind: "normal" }
  | { readonly kind: "reluctant"; readonly factor: number }
  | { readonly kind: "observer" };

/** Default factor of {@link LeadershipPreference.Reluctant}. */
export const DEFAULT_RELUCTANT_FACTOR = 3;

const NORMAL: LeadershipPreference = Object.freeze({ kind: "normal" });
const OBSERVER: LeadershipPreference = Object.freeze({ kind: "observer" });

/** The constructors and helpers on {@link LeadershipPreference}. */
export interface LeadershipPreferenceHelpers {
  readonly Normal: LeadershipPreference;
  readonly Observer: LeadershipPreference;
  Reluctant(factor?: number): LeadershipPreference;
  multiplier(pref: LeadershipPreference): number;
  canVote(pref: LeadershipPreference): boolean;
}

/** Constructors and helpers for {@link LeadershipPreference}. */
export const LeadershipPreference: LeadershipPreferenceHelpers = {
  /** Campaigns normally. */
  Normal: NORMAL,

  /** Never votes or campaigns; replicates as a learner. */
  Observer: OBSERVER,

  /**
   * Campaigns `factor` times more slowly (default 3).
   *
   * @throws {TypeError} when `factor` is not a number
   * @throws {RangeError} when `factor` is not an integer ≥ 1
   */
  Reluctant(factor: number = DEFAULT_RELUCTANT_FACTOR): LeadershipPreference {
    if (typeof factor !== "number") {
      throw new TypeError("Invalid LeadershipPreference: Reluctant factor must be a number");
    }
    if (!Number.isInteger(factor) || factor < 1) {
      throw new RangeError(
        `Invalid LeadershipPreference: Reluctant factor must be an integer of at least 1, got ${factor}`,
      );
    }
    return Object.freeze({ kind: "reluctant", factor });
  },

  /** The timeout multiplier this preference adds: 1, the factor, or `Infinity` for observers. */
  multiplier(pref: LeadershipPreference): number {
    switch (pref.kind) {
      case "normal":
        return 1;
      case "reluctant":
        return pref.factor;
      case "observer":
        return Infinity;
    }
  },

  /** True when the node may vote and campaign. */
  canVote(pref: LeadershipPreference): boolean {
    return pref.kind !== "observer";
  },
};
