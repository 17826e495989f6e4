// The StateMachine contract users implement, and the context it is applied with.

import type { Cursor, Term } from "../primitives/cursor.ts";
import type { LeadershipPreference } from "./leadership.ts";

/** What `apply` may learn about where it is in the log. */
export interface ApplyContext {
  /** The group's commit position when this entry is applied. */
  committed(): Cursor;
  /** The position of the entry being applied (of the last entry, for a batch). */
  logPosition(): Cursor;
  /** The current term of this node. */
  currentTerm(): Term;
}

/**
 * How a lagging or new member catches up with the group's state. Part of the
 * GroupId through its {@link StateSync.signature}, so all members agree on it.
 */
export interface StateSync {
  /** A versioned name, e.g. `"mosaik/log-replay/v1"`; part of the GroupId. */
  signature(): string;
}

/**
 * A deterministic state machine replicated by a group.
 *
 * `C` is the command type, `Q` the query type, `R` the query result type; all
 * must be CBOR-encodable (plain objects, arrays, strings, numbers, bigint,
 * Uint8Array, Map, Set, booleans, null).
 *
 * Determinism is required: given the same commands in the same order, every
 * member must reach the same state. Do not read clocks, randomness or the
 * environment in `apply`; take such values as command fields.
 *
 * See `KeyValue` and `NoOp` for ready-made machines, and `GroupBuilder` for
 * joining a group with your own.
 */
export interface StateMachine<C, Q, R> {
  /**
   * A versioned name for this machine (e.g. `"counter/v1"`); part of the
   * GroupId, so members running incompatible versions form different groups.
   *
   * @returns a non-empty string
   */
  signature(): string;
  /**
   * Applies one committed command. Must be deterministic and must not throw for valid commands.
   * A command that throws is skipped (its effects so far stay) and recorded; every member
   * skips it the same way, since each command is applied on its own.
   *
   * @param command the command, as given to `execute` or `feed` on some member
   * @param ctx where in the log the command is (`logPosition` is this command's)
   */
  apply(command: C, ctx: ApplyContext): void;
  /**
   * Applies several committed commands in order; used instead of `apply` when present.
   *
   * Which commands arrive together is a matter of timing and differs between
   * members (and between a live run and a replay after restart), so the result
   * must be exactly that of applying the commands one by one, and it must not
   * throw: a throw skips the rest of that batch, which would make members
   * diverge.
   *
   * @param commands the commands, in log order
   * @param ctx where in the log they are (`logPosition` is the last one's)
   */
  applyBatch?(commands: C[], ctx: ApplyContext): void;
  /**
   * Answers a read-only query against the current state. Must not change the state.
   *
   * @param query the query, as given to `group.query`
   * @returns the answer
   */
  query(query: Q): R;
  /**
   * The state-sync strategy; default `new LogReplaySync()`.
   *
   * @returns the strategy; its signature is part of the GroupId
   */
  stateSync?(): StateSync;
  /**
   * How eagerly this node seeks leadership; default `LeadershipPreference.Normal`.
   *
   * @returns the preference; local to this node
   */
  leadershipPreference?(): LeadershipPreference;
  /**
   * Discards all state, back to what a new instance holds. Called when this
   * node loses a cluster merge (two clusters of one group met; the one with
   * the longer committed log wins, DESIGN.md §3.4): the node then replays
   * the winner's log from the start. Without `reset`, a node that loses a
   * merge leaves the group instead (its handles reject with
   * `GroupTerminatedError`, cause `MergeLostError`).
   */
  reset?(): void | Promise<void>;
}

/** Any state machine, for generic bounds. */
// deno-lint-ignore no-explicit-any
export type AnyStateMachine = StateMachine<any, any, any>;

/** The command type of a state machine. */
export type CommandOf<M> = M extends StateMachine<infer C, infer _Q, infer _R> ? C : never;
/** The query type of a state machine. */
export type QueryOf<M> = M extends StateMachine<infer _C, infer Q, infer _R> ? Q : never;
/** The query result type of a state machine. */
export type ResultOf<M> = M extends StateMachine<infer _C, infer _Q, infer R> ? R : never;
