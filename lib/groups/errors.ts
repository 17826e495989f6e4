// Errors a caller of Group<M> catches: offline, empty batch, group closed, command lost.

import type { Index, Term } from "../primitives/cursor.ts";

export { EncodingError } from "../wire/errors.ts";

/**
 * What an {@link OfflineError} could not deliver: the commands of one call, or
 * one query. Tagged because a query may itself be `null` or `undefined`.
 */
export type Unsent<C, Q> =
  | { readonly kind: "commands"; readonly commands: readonly C[] }
  | { readonly kind: "query"; readonly query: Q };

/**
 * No leader was reachable, or forwarding to the leader timed out. The
 * commands (or the query) ride along so the caller can retry them, for
 * instance after `await group.when().online()`.
 *
 * When no leader was known, the commands were never sent and retrying cannot
 * apply them twice. When forwarding timed out, the leader may have received
 * them and may still commit them: a retry can then apply a command twice, so
 * make commands idempotent (e.g. carry a request id the machine remembers)
 * when that matters. A command that was assigned an index and then lost is
 * reported by {@link CommandLostError} instead.
 *
 * @example Retrying once the group is back online
 * ```ts
 * import { type Group, type KeyValue, type KvCommand, OfflineError } from "@mosaik/mosaik";
 *
 * async function setWithRetry(group: Group<KeyValue>, command: KvCommand): Promise<number> {
 *   for (;;) {
 *     try {
 *       return await group.execute(command);
 *     } catch (err) {
 *       if (!(err instanceof OfflineError)) throw err;
 *       // err.commands holds [command]; a set of the same value is idempotent, so resending is safe.
 *       await group.when().online({ signal: AbortSignal.timeout(30_000) });
 *     }
 *   }
 * }
 *
 * const err = new OfflineError({ kind: "commands", commands: [{ add: 1 }] });
 * if (err.message !== "Cannot send command: no leader is reachable") throw new Error(err.message);
 * if (err.commands.length !== 1 || err.query !== undefined) throw new Error("carries the command");
 * ```
 */
export class OfflineError<C = unknown, Q = unknown> extends Error {
  /** What was left unsent, tagged. */
  readonly unsent: Unsent<C, Q>;

  /**
   * An offline error carrying what was not sent. The library throws these;
   * tests and wrappers may make their own.
   *
   * @param unsent the commands of the failed call, or its query
   * @param reason why nothing was sent, lower case, e.g. "forwarding to the leader timed out after 2000 ms"
   * @param options the underlying error, if any
   */
  constructor(
    unsent: Unsent<C, Q>,
    reason = "no leader is reachable",
    options?: ErrorOptions,
  ) {
    super(`Cannot ${describe(unsent)}: ${reason}`, options);
    this.name = "OfflineError";
    this.unsent = unsent;
  }

  /**
   * The commands that were not sent, in the order given; empty when a query failed.
   *
   * @returns the unsent commands
   */
  get commands(): readonly C[] {
    return this.unsent.kind === "commands" ? this.unsent.commands : [];
  }

  /**
   * The query that was not sent; `undefined` when commands failed (see {@link unsent} to tell).
   *
   * @returns the unsent query
   */
  get query(): Q | undefined {
    return this.unsent.kind === "query" ? this.unsent.query : undefined;
  }
}

function describe(unsent: Unsent<unknown, unknown>): string {
  if (unsent.kind === "query") return "run query";
  const n = unsent.commands.length;
  return n === 1 ? "send command" : `send ${n} commands`;
}

/**
 * `executeMany` / `feedMany` was given an empty list. A `RangeError` as well,
 * since it is a bad argument; the named class lets a caller that builds
 * batches dynamically catch exactly this case.
 */
export class NoCommandsError extends RangeError {
  /**
   * An error saying `operation` was given no commands.
   *
   * @param operation the call that was refused, e.g. "executeMany"; the message
   *   is "Cannot executeMany: the list of commands is empty"
   */
  constructor(operation = "execute commands") {
    super(`Cannot ${operation}: the list of commands is empty`);
    this.name = "NoCommandsError";
  }
}

/**
 * The group was closed (by `leave()`, `close()` or closing the network), so
 * the call cannot complete. Every pending wait of the group rejects with it.
 */
export class GroupTerminatedError extends Error {
  /**
   * An error saying `operation` failed because the group is closed.
   *
   * @param operation what could not be done, e.g. "execute command"; the message
   *   is "Cannot execute command: group is closed", or "Group is closed" without it
   * @param options the underlying error, if any
   */
  constructor(operation?: string, options?: ErrorOptions) {
    super(
      operation === undefined ? "Group is closed" : `Cannot ${operation}: group is closed`,
      options,
    );
    this.name = "GroupTerminatedError";
  }
}

/**
 * A command was given a log position by a leader, but a leader change removed
 * that entry before it was committed (another entry now holds, or will hold,
 * that index). The command was not applied, and `execute` never resolves on
 * someone else's entry. Retrying is safe: the command is not in the log.
 *
 * For a batch, {@link index} is the first index of the batch that was lost;
 * every later command of the batch is lost too.
 */
export class CommandLostError extends Error {
  /** The index the command had been given. */
  readonly index: Index;
  /** The term of the leader that gave it that index. */
  readonly term: Term;

  /**
   * An error naming the log position the lost command had been given.
   *
   * @param index the index the command had been given
   * @param term the term of the leader that assigned it
   * @param options the underlying error, if any
   */
  constructor(index: Index, term: Term, options?: ErrorOptions) {
    super(
      `Cannot execute command: its entry at index ${index} of term ${term} was superseded by a leader change before commit`,
      options,
    );
    this.name = "CommandLostError";
    this.index = index;
    this.term = term;
  }
}
