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
 *
 * @example
 * ```ts
 * import {
 *   type ApplyContext,
 *   LeadershipPreference,
 *   type StateMachine,
 * } from "@mosaik/mosaik";
 *
 * // A replica that follows the log for reads and never leads.
 * class Mirror implements StateMachine<string, null, string | undefined> {
 *   last: string | undefined;
 *   signature(): string {
 *     return "mirror/v1";
 *   }
 *   apply(command: string, _ctx: ApplyContext): void {
 *     this.last = command;
 *   }
 *   query(_q: null): string | undefined {
 *     return this.last;
 *   }
 *   leadershipPreference(): LeadershipPreference {
 *     return LeadershipPreference.Observer;
 *   }
 * }
 *
 * const pref = new Mirror().leadershipPreference();
 * if (LeadershipPreference.canVote(pref)) throw new Error("observers never vote");
 * if (LeadershipPreference.multiplier(LeadershipPreference.Reluctant(4)) !== 4) throw new Error("× 4");
 * ```
 */
export type LeadershipPreference =
  | { readonly kind: "normal" }
  | { readonly kind: "reluctant"; readonly factor: number }
  | { readonly kind: "observer" };

/** Default factor of {@link LeadershipPreference.Reluctant}. */
export const DEFAULT_RELUCTANT_FACTOR = 3;

const NORMAL: LeadershipPreference = Object.freeze({ kind: "normal" });
const OBSERVER: LeadershipPreference = Object.freeze({ kind: "observer" });

/**
 * The constructors and helpers on {@link LeadershipPreference}: the value
 * `LeadershipPreference` is an object of this type.
 */
export interface LeadershipPreferenceHelpers {
  /** Campaigns normally (`{ kind: "normal" }`, frozen). */
  readonly Normal: LeadershipPreference;
  /** Never votes or campaigns; replicates as a learner (`{ kind: "observer" }`, frozen). */
  readonly Observer: LeadershipPreference;
  /**
   * Campaigns `factor` times more slowly.
   *
   * @param factor an integer ≥ 1 (default 3)
   * @returns `{ kind: "reluctant", factor }`, frozen
   * @throws {TypeError} when `factor` is not a number
   * @throws {RangeError} when `factor` is not an integer ≥ 1
   */
  Reluctant(factor?: number): LeadershipPreference;
  /**
   * The timeout multiplier this preference adds.
   *
   * @param pref a preference
   * @returns 1 for `Normal`, the factor for `Reluctant`, `Infinity` for `Observer`
   */
  multiplier(pref: LeadershipPreference): number;
  /**
   * True when the node may vote and campaign.
   *
   * @param pref a preference
   * @returns false only for `Observer`
   */
  canVote(pref: LeadershipPreference): boolean;
}

/** Constructors and helpers for {@link LeadershipPreference} (see {@link LeadershipPreferenceHelpers}). */
export const LeadershipPreference: LeadershipPreferenceHelpers = {
  Normal: NORMAL,

  Observer: OBSERVER,

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

  canVote(pref: LeadershipPreference): boolean {
    return pref.kind !== "observer";
  },
};
