// Errors of the wire layer: what a caller catches when a frame or a message is bad.

/**
 * Close code for a stream or connection whose peer broke the wire protocol: a
 * frame over the size limit, a truncated frame, or a payload that does not
 * decode. It is the `400` of the Rust crate's close codes (DESIGN §5), so both
 * implementations report the same reason.
 */
export const PROTOCOL_VIOLATION = 400;

/** Which wire failure an error is, stable for logs and `switch`. */
export type WireErrorCode =
  | "FRAME_TOO_LARGE"
  | "TRUNCATED_FRAME"
  | "DECODE_FAILED"
  | "NOT_ENCODABLE";

/**
 * Base class of every error the wire layer throws on purpose. Catch this to
 * tell "the peer sent garbage" (close with {@link PROTOCOL_VIOLATION}) from a
 * bug.
 */
export class WireError extends Error {
  /** Which failure this is. */
  readonly code: WireErrorCode;

  /**
   * A wire error of kind `code`; thrown through its subclasses.
   *
   * @param code which failure this is
   * @param message what failed, sentence case, no trailing period
   * @param options the underlying error, if any
   */
  constructor(code: WireErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "WireError";
    this.code = code;
  }
}

/** A frame declares (or a caller offers) a payload larger than the configured maximum. */
export class FrameTooLargeError extends WireError {
  /** The payload size in bytes, as declared by the frame header or offered by the caller. */
  readonly size: number;
  /** The maximum payload size in bytes that was in force. */
  readonly limit: number;

  /**
   * An error naming the size and the limit.
   *
   * @param size the declared or offered payload size in bytes
   * @param limit the maximum payload size in bytes
   * @param operation whether the frame was being read (from a peer) or written
   */
  constructor(size: number, limit: number, operation: "read" | "write" = "read") {
    super(
      "FRAME_TOO_LARGE",
      `Cannot ${operation} frame: payload of ${size} bytes exceeds the limit of ${limit} bytes`,
    );
    this.name = "FrameTooLargeError";
    this.size = size;
    this.limit = limit;
  }
}

/** A stream or buffer ended in the middle of a frame. */
export class TruncatedFrameError extends WireError {
  /** Bytes of the unfinished frame that had arrived, header included. */
  readonly receivedBytes: number;
  /** Full size of the unfinished frame (header included), or `undefined` if its header was incomplete. */
  readonly expectedBytes: number | undefined;

  /**
   * An error naming how much of the frame arrived.
   *
   * @param receivedBytes bytes of the unfinished frame that had arrived, header included
   * @param expectedBytes full frame size when the header was complete
   */
  constructor(receivedBytes: number, expectedBytes?: number) {
    super(
      "TRUNCATED_FRAME",
      expectedBytes === undefined
        ? `Cannot read frame: input ended ${receivedBytes} of 4 bytes into a frame header`
        : `Cannot read frame: input ended ${receivedBytes} of ${expectedBytes} bytes into a frame`,
    );
    this.name = "TruncatedFrameError";
    this.receivedBytes = receivedBytes;
    this.expectedBytes = expectedBytes;
  }
}

/** Bytes that are not a valid encoding of what was expected (garbage, a foreign tag, a bad shape). */
export class DecodeError extends WireError {
  /**
   * A decode error with its message.
   *
   * @param message what failed, e.g. "Cannot decode value: unsupported CBOR tag 1"
   * @param options the underlying error (for example cbor-x's), if any
   */
  constructor(message: string, options?: ErrorOptions) {
    super("DECODE_FAILED", message, options);
    this.name = "DecodeError";
  }
}

/**
 * A command, query or result is not CBOR-encodable plain data. This is the
 * error users see when they hand the library a function, a class instance, a
 * `Date`, a cycle and the like.
 *
 * @example
 * ```ts
 * import { EncodingError, encodeEntry } from "@mosaik/mosaik";
 *
 * try {
 *   encodeEntry({ index: 1, term: 1, command: { at: new Date() } });
 *   throw new Error("unreachable");
 * } catch (err) {
 *   if (!(err instanceof EncodingError)) throw err;
 *   if (err.path !== "$.at") throw new Error(`unexpected path ${err.path}`); // where the bad value is
 * }
 * ```
 */
export class EncodingError extends WireError {
  /** Where the bad value sits inside the value being encoded, e.g. `$.a[2]` (`$` is the value itself). */
  readonly path: string;
  /** Why the value at {@link path} is rejected, e.g. "a function is not CBOR-encodable". */
  readonly reason: string;

  /**
   * An error naming where the bad value is and why it is rejected.
   *
   * @param path where the bad value sits, e.g. `$.a[2]`
   * @param reason why it is rejected
   * @param options the underlying error, if any
   */
  constructor(path: string, reason: string, options?: ErrorOptions) {
    super("NOT_ENCODABLE", `Cannot encode value: ${reason} at ${path}`, options);
    this.name = "EncodingError";
    this.path = path;
    this.reason = reason;
  }
}
