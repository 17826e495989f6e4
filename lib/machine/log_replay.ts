// LogReplaySync: the default state-sync strategy (catch up by fetching committed log entries).

import type { StateSync } from "./state_machine.ts";

/** Options of {@link LogReplaySync}. */
export interface LogReplayOptions {
  /** Entries fetched per request (default 2000). */
  batchSize?: number;
  /** How long to wait for one batch before asking another peer (ms, default 25 000). */
  fetchTimeout?: number;
}

/**
 * State sync by log replay: a new or lagging member fetches the committed
 * entries it is missing, in batches, from several peers, and applies them in
 * order. Its signature is part of the GroupId; `batchSize` and `fetchTimeout`
 * are local tuning and are not.
 *
 * This class holds the validated settings; the fetching itself is run by the
 * group driver. It is the default: a machine without `stateSync()` uses
 * `new LogReplaySync()`.
 *
 * @example
 * ```ts
 * import { type ApplyContext, LogReplaySync, type StateMachine, type StateSync } from "@mosaik/mosaik";
 *
 * class Log implements StateMachine<string, null, number> {
 *   lines: string[] = [];
 *   signature(): string {
 *     return "log/v1";
 *   }
 *   apply(line: string, _ctx: ApplyContext): void {
 *     this.lines.push(line);
 *   }
 *   query(_q: null): number {
 *     return this.lines.length;
 *   }
 *   stateSync(): StateSync {
 *     // Smaller batches for large commands; the GroupId stays that of the default.
 *     return new LogReplaySync({ batchSize: 200, fetchTimeout: 10_000 });
 *   }
 * }
 *
 * const sync = new Log().stateSync();
 * if (sync.signature() !== new LogReplaySync().signature()) throw new Error("same signature");
 * ```
 */
export class LogReplaySync implements StateSync {
  /** Entries fetched per request. */
  readonly batchSize: number;
  /** Per-request timeout (ms). */
  readonly fetchTimeout: number;

  /**
   * Validated settings for log replay.
   *
   * @param options `batchSize` (default 2000) and `fetchTimeout` (ms, default 25 000)
   * @throws {TypeError} when an option is not a number
   * @throws {RangeError} when an option is not an integer from 1 to 2^31 - 1
   */
  constructor(options: LogReplayOptions = {}) {
    this.batchSize = positive("batchSize", options.batchSize ?? 2000);
    this.fetchTimeout = positive("fetchTimeout", options.fetchTimeout ?? 25_000);
  }

  /**
   * The strategy's versioned name; part of the GroupId.
   *
   * @returns `"mosaik/log-replay/v1"`
   */
  signature(): string {
    return "mosaik/log-replay/v1";
  }
}

function positive(name: string, value: unknown): number {
  if (typeof value !== "number") {
    throw new TypeError(`Invalid LogReplaySync: ${name} must be a number`);
  }
  if (!Number.isInteger(value) || value < 1 || value > 2 ** 31 - 1) {
    throw new RangeError(
      `Invalid LogReplaySync: ${name} must be a positive integer below 2^31, got ${value}`,
    );
  }
  return value;
}
