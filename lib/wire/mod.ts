// The wire layer's public API: CBOR codec, length-prefixed frames, the log entry codec, wire errors.

/**
 * How mosaik puts data on the wire and in stores (DESIGN §6): plain data as
 * CBOR (cbor-x's format with records off, bigint-safe, written and read by
 * our own one-pass encoder and strict decoder), messages in frames of
 * `u32 big-endian length ‖ payload` with a size limit, and the entry codec
 * stores use for log entries.
 *
 * @example
 * ```ts
 * import { decodeMessage, encodeMessage, FrameDecoder } from "./mod.ts";
 *
 * const bytes = encodeMessage({ term: 3, votes: new Set(["a", "b"]), big: 2n ** 70n });
 * const decoder = new FrameDecoder();
 * const payloads = decoder.push(bytes); // one complete frame
 * decoder.finish();
 * const back = decodeMessage(bytes) as { term: number; votes: Set<string>; big: bigint };
 * if (payloads.length !== 1 || back.big !== 2n ** 70n || !back.votes.has("b")) {
 *   throw new Error("round trip");
 * }
 * ```
 *
 * @module
 */

export {
  DecodeError,
  EncodingError,
  FrameTooLargeError,
  PROTOCOL_VIOLATION,
  TruncatedFrameError,
  WireError,
  type WireErrorCode,
} from "./errors.ts";
export {
  assertEncodable,
  decode,
  decodePrefix,
  encode,
  MAX_BIGINT_BYTES,
  MAX_DEPTH,
} from "./codec.ts";
export {
  decodeMessage,
  DEFAULT_MAX_FRAME_SIZE,
  encodeFrame,
  encodeMessage,
  FRAME_HEADER_SIZE,
  FrameDecoder,
  type FrameOptions,
  readFrames,
  type ReadFramesOptions,
  writeFrame,
} from "./framing.ts";
export { decodeEntry, encodeEntry } from "./entry.ts";
