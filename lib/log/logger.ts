// Structured logging: the Logger contract users plug in, a console logger, and the library's quiet-by-default emitter.

import { SHORT_HEX_CHARS } from "../primitives/digest.ts";

/** How serious a record is, from least to most. */
export type LogLevel = "debug" | "info" | "warn" | "error";

/** The least serious level a logger wants, or `"off"` for nothing. */
export type LogThreshold = LogLevel | "off";

/** A value in {@link LogRecord.fields}: plain data, so a record survives `JSON.stringify`. */
export type LogValue = string | number | boolean | null | readonly string[];

/**
 * One structured log record. Ids are short lowercase hex (10 characters:
 * `PeerId.short()`, `GroupId.short()`); no record ever carries a group key,
 * a node's secret key or a TLS private key.
 */
export interface LogRecord {
  /** How serious it is. */
  readonly level: LogLevel;
  /** When it happened, in milliseconds since the epoch (`Date.now()`). */
  readonly time: number;
  /**
   * What happened, a stable dotted name to filter on, e.g. `"bond.down"` or
   * `"election.won"` (the README's "Logging" table lists them all).
   */
  readonly event: string;
  /** The same in one sentence for people. */
  readonly message: string;
  /** This node's PeerId, short hex. */
  readonly node: string;
  /** The group it concerns (GroupId, short hex), if any. */
  readonly group?: string;
  /** The other member it concerns (PeerId, short hex), if any. */
  readonly peer?: string;
  /** Event-specific details (term, close code, reason, voters, …). */
  readonly fields: Readonly<Record<string, LogValue>>;
}

/**
 * Where the library sends its log records (`Network.builder().withLogger(…)`).
 * Records less serious than `level` are never built. `log` is called
 * synchronously from the library's work; keep it fast, and do not throw (an
 * exception is swallowed).
 */
export interface Logger {
  /** The least serious level to receive; `"off"` receives nothing. */
  readonly level: LogThreshold;
  /**
   * Receives one record.
   *
   * @param record the record; the logger may keep it (the library does not reuse it)
   */
  log(record: LogRecord): void;
}

/** Options of {@link consoleLogger}. */
export interface ConsoleLoggerOptions {
  /** Print each record as one JSON line instead of text (default false). */
  readonly json?: boolean;
}

const RANK: Readonly<Record<LogThreshold, number>> = {
  debug: 0,
  info: 1,
  warn: 2,
  error: 3,
  off: 4,
};

/**
 * A {@link Logger} that prints to the console: `console.debug`, `info`,
 * `warn` or `error` by level, one line per record —
 * `2025-01-01T12:00:00.000Z INFO bond.up group=… peer=… Bond up (dialer)`, or
 * the record as JSON with `json: true`.
 *
 * @param level the least serious level to print (default `"info"`)
 * @param options `json` for JSON lines
 * @returns the logger
 * @throws {RangeError} when `level` is not a {@link LogThreshold}
 *
 * @example
 * ```ts
 * import { consoleLogger, Network } from "@mosaik/mosaik";
 * import { MemoryNetwork } from "@mosaik/mosaik/transport/memory";
 *
 * await using net = new MemoryNetwork();
 * await using network = await Network.builder("my-app")
 *   .withTransport(net.transport())
 *   .withLogger(consoleLogger("off")) // "info" prints role changes, elections, bonds…
 *   .build();
 * ```
 */
export function consoleLogger(
  level: LogThreshold = "info",
  options: ConsoleLoggerOptions = {},
): Logger {
  checkThreshold(level);
  const json = options.json === true;
  return {
    level,
    log(record: LogRecord): void {
      const line = json ? JSON.stringify(record) : formatText(record);
      switch (record.level) {
        case "debug":
          console.debug(line);
          return;
        case "info":
          console.info(line);
          return;
        case "warn":
          console.warn(line);
          return;
        case "error":
          console.error(line);
          return;
      }
    },
  };
}

/** A record as one line of text. */
function formatText(r: LogRecord): string {
  const parts = [new Date(r.time).toISOString(), r.level.toUpperCase(), r.event, `node=${r.node}`];
  if (r.group !== undefined) parts.push(`group=${r.group}`);
  if (r.peer !== undefined) parts.push(`peer=${r.peer}`);
  for (const [k, v] of Object.entries(r.fields)) {
    parts.push(
      `${k}=${typeof v === "string" ? JSON.stringify(v) : Array.isArray(v) ? v.join(",") : v}`,
    );
  }
  parts.push(r.message);
  return parts.join(" ");
}

function checkThreshold(level: unknown): asserts level is LogThreshold {
  if (typeof level !== "string" || !(level in RANK)) {
    throw new RangeError(
      `Invalid log level: ${String(level)} (expected debug, info, warn, error or off)`,
    );
  }
}

/**
 * Checks a user's logger.
 *
 * @internal
 * @throws {TypeError} when it has no `log` function
 * @throws {RangeError} when its level is not a {@link LogThreshold}
 */
export function checkLogger(logger: Logger): void {
  if (typeof logger !== "object" || logger === null || typeof logger.log !== "function") {
    throw new TypeError("Invalid logger: expected an object with a log(record) function");
  }
  checkThreshold(logger.level);
}

/**
 * The library's side of logging: knows the node (and group) it speaks for,
 * drops records below the logger's level before building them, and never
 * lets a logger's exception reach the caller. Quiet without a logger.
 *
 * @internal
 */
export class Log {
  readonly #logger: Logger | undefined;
  readonly #rank: number;
  readonly #node: string;
  readonly #group: string | undefined;

  /**
   * @param logger the user's logger (`undefined`: quiet)
   * @param node this node's PeerId, short hex
   * @param group the group, short hex
   */
  constructor(logger: Logger | undefined, node: string, group?: string) {
    this.#logger = logger;
    this.#rank = logger === undefined ? RANK.off : RANK[logger.level] ?? RANK.off;
    this.#node = node;
    this.#group = group;
  }

  /** The same logger, speaking for `group` (short hex). */
  forGroup(group: string): Log {
    return new Log(this.#logger, this.#node, group);
  }

  /** True when records of `level` are wanted: check before building expensive fields. */
  enabled(level: LogLevel): boolean {
    return RANK[level] >= this.#rank;
  }

  /** Logs at debug level. */
  debug(event: string, message: string, fields?: Record<string, LogValue>, peer?: string): void {
    this.#emit("debug", event, message, fields, peer);
  }

  /** Logs at info level. */
  info(event: string, message: string, fields?: Record<string, LogValue>, peer?: string): void {
    this.#emit("info", event, message, fields, peer);
  }

  /** Logs at warn level. */
  warn(event: string, message: string, fields?: Record<string, LogValue>, peer?: string): void {
    this.#emit("warn", event, message, fields, peer);
  }

  /** Logs at error level. */
  error(event: string, message: string, fields?: Record<string, LogValue>, peer?: string): void {
    this.#emit("error", event, message, fields, peer);
  }

  #emit(
    level: LogLevel,
    event: string,
    message: string,
    fields: Record<string, LogValue> | undefined,
    peer: string | undefined,
  ): void {
    if (RANK[level] < this.#rank) return;
    const record: LogRecord = {
      level,
      time: Date.now(),
      event,
      message,
      node: this.#node,
      ...(this.#group === undefined ? {} : { group: this.#group }),
      ...(peer === undefined ? {} : { peer: peer.slice(0, SHORT_HEX_CHARS) }),
      fields: fields ?? {},
    };
    try {
      this.#logger!.log(record);
    } catch {
      // A logger's failure must never disturb consensus.
    }
  }
}

/** A {@link Log} that drops everything. @internal */
export const QUIET: Log = new Log(undefined, "");
