// Length-prefixed frames (u32 big-endian length ‖ payload) over byte streams, with a hard size limit.

import { decode } from "./codec.ts";
import { encodeValue } from "./encoder.ts";
import { DecodeError, FrameTooLargeError, TruncatedFrameError } from "./errors.ts";

/** Bytes of the length prefix in front of every payload. */
export const FRAME_HEADER_SIZE = 4;

/** Largest payload accepted by default: 16 MiB (DESIGN §6). */
export const DEFAULT_MAX_FRAME_SIZE = 16 * 1024 * 1024;

/** Options of the frame readers and writers. */
export interface FrameOptions {
  /**
   * Largest payload in bytes, excluding the 4-byte header (default
   * {@link DEFAULT_MAX_FRAME_SIZE}). An integer from 0 to 2^32 - 1.
   */
  maxFrameSize?: number;
}

/** Options of {@link readFrames}. */
export interface ReadFramesOptions extends FrameOptions {
  /** Stops reading: the stream is cancelled and the generator throws the signal's reason. */
  signal?: AbortSignal;
}

function maxFrameSizeOf(maxFrameSize: number | undefined): number {
  if (maxFrameSize === undefined) return DEFAULT_MAX_FRAME_SIZE;
  if (!Number.isInteger(maxFrameSize) || maxFrameSize < 0 || maxFrameSize > 0xffff_ffff) {
    throw new RangeError(
      `Cannot use frame size limit: expected an integer from 0 to 4294967295, got ${maxFrameSize}`,
    );
  }
  return maxFrameSize;
}

/**
 * Prefixes `payload` with its length, checking the size limit first so a
 * sender never emits a frame its peer must reject.
 *
 * @param payload the bytes to frame
 * @param maxFrameSize largest payload allowed (default {@link DEFAULT_MAX_FRAME_SIZE})
 * @returns a new buffer holding header and payload
 * @throws {FrameTooLargeError} when `payload` is longer than `maxFrameSize`
 * @throws {RangeError} when `maxFrameSize` is not an integer from 0 to 2^32 - 1
 */
export function encodeFrame(payload: Uint8Array, maxFrameSize?: number): Uint8Array {
  const limit = maxFrameSizeOf(maxFrameSize);
  if (payload.byteLength > limit) {
    throw new FrameTooLargeError(payload.byteLength, limit, "write");
  }
  // On an ArrayBuffer from the start: reading `.buffer` (here, and in the transports) would
  // otherwise make the engine allocate one and copy a small frame into it.
  const frame = new Uint8Array(new ArrayBuffer(FRAME_HEADER_SIZE + payload.byteLength));
  new DataView(frame.buffer).setUint32(0, payload.byteLength);
  frame.set(payload, FRAME_HEADER_SIZE);
  return frame;
}

/**
 * Splits a byte stream, delivered in chunks cut anywhere, into frame payloads.
 *
 * The header is checked as soon as its 4 bytes are in, before any of the body
 * is kept, so a peer declaring a huge frame is refused at once and the
 * decoder never holds more than `maxFrameSize + 4` bytes plus the chunk being
 * pushed. After any error the decoder is poisoned: every later call throws
 * the same error (the stream is out of sync and must be closed).
 *
 * Payloads that lie within one pushed chunk are returned as views of it (no
 * copy), so do not reuse a chunk's memory after pushing it.
 *
 * @example
 * ```ts
 * import { encodeFrame, FrameDecoder } from "./framing.ts";
 *
 * const decoder = new FrameDecoder({ maxFrameSize: 1024 });
 * const frame = encodeFrame(new Uint8Array([1, 2, 3]));
 * const first = decoder.push(frame.subarray(0, 2)); // [] — header incomplete
 * const rest = decoder.push(frame.subarray(2)); // [Uint8Array [1, 2, 3]]
 * decoder.finish(); // nothing left over
 * ```
 */
export class FrameDecoder {
  #maxFrameSize: number;
  /** Unconsumed input, in order; `#parts[#head]` is the oldest. */
  #parts: Uint8Array[] = [];
  #head = 0;
  #buffered = 0;
  /** Payload size of the frame being assembled, once its header is read. */
  #expected: number | undefined;
  #error: Error | undefined;

  /**
   * @param options `maxFrameSize`: largest payload accepted (default {@link DEFAULT_MAX_FRAME_SIZE})
   * @throws {RangeError} when `maxFrameSize` is not an integer from 0 to 2^32 - 1
   */
  constructor(options: FrameOptions = {}) {
    this.#maxFrameSize = maxFrameSizeOf(options.maxFrameSize);
  }

  /** Largest payload accepted. */
  get maxFrameSize(): number {
    return this.#maxFrameSize;
  }

  /**
   * Changes the limit for frames whose header is read from now on (a
   * protocol that learns its limit from a first frame).
   *
   * @throws {RangeError} when `value` is not an integer from 0 to 2^32 - 1
   */
  set maxFrameSize(value: number) {
    this.#maxFrameSize = maxFrameSizeOf(value);
  }

  /** Bytes held for frames not yet complete (headers already parsed are not counted). */
  get bufferedBytes(): number {
    return this.#buffered;
  }

  /**
   * Adds the next chunk of the stream.
   *
   * @param chunk the next bytes, of any length
   * @returns the payloads of the frames completed by this chunk, in order (possibly none)
   * @throws {FrameTooLargeError} when a header declares a payload over the limit (then the decoder is poisoned)
   */
  push(chunk: Uint8Array): Uint8Array[] {
    if (this.#error !== undefined) throw this.#error;
    if (!(chunk instanceof Uint8Array)) {
      throw new TypeError("Cannot read frame: chunk is not a Uint8Array");
    }
    if (chunk.byteLength > 0) {
      this.#parts.push(chunk);
      this.#buffered += chunk.byteLength;
    }
    const frames: Uint8Array[] = [];
    for (;;) {
      if (this.#expected === undefined) {
        if (this.#buffered < FRAME_HEADER_SIZE) break;
        const header = this.#take(FRAME_HEADER_SIZE);
        const size = new DataView(header.buffer, header.byteOffset, FRAME_HEADER_SIZE).getUint32(0);
        if (size > this.#maxFrameSize) {
          throw this.#fail(new FrameTooLargeError(size, this.#maxFrameSize));
        }
        this.#expected = size;
      }
      if (this.#buffered < this.#expected) break;
      frames.push(this.#take(this.#expected));
      this.#expected = undefined;
    }
    return frames;
  }

  /**
   * Declares the end of the stream.
   *
   * @throws {TruncatedFrameError} when part of a frame is buffered (then the decoder is poisoned)
   * @throws the error that poisoned the decoder, if any
   */
  finish(): void {
    if (this.#error !== undefined) throw this.#error;
    if (this.#expected !== undefined) {
      throw this.#fail(
        new TruncatedFrameError(
          FRAME_HEADER_SIZE + this.#buffered,
          FRAME_HEADER_SIZE + this.#expected,
        ),
      );
    }
    if (this.#buffered > 0) throw this.#fail(new TruncatedFrameError(this.#buffered));
  }

  #fail(error: Error): Error {
    this.#error = error;
    // Let go of whatever the peer sent; nothing more will be read from it.
    this.#parts = [];
    this.#head = 0;
    this.#buffered = 0;
    this.#expected = undefined;
    return error;
  }

  /** Removes the next `n` buffered bytes (`n <= #buffered`), as a view when they sit in one part. */
  #take(n: number): Uint8Array {
    this.#buffered -= n;
    const first = this.#parts[this.#head];
    if (first === undefined) return new Uint8Array(0);
    if (first.byteLength >= n) {
      this.#consume(first, n);
      return first.subarray(0, n);
    }
    const out = new Uint8Array(n);
    let at = 0;
    while (at < n) {
      const part = this.#parts[this.#head]!;
      const used = Math.min(part.byteLength, n - at);
      out.set(part.subarray(0, used), at);
      at += used;
      this.#consume(part, used);
    }
    return out;
  }

  #consume(part: Uint8Array, used: number): void {
    if (used < part.byteLength) {
      this.#parts[this.#head] = part.subarray(used);
      return;
    }
    this.#head++;
    if (this.#head === this.#parts.length) {
      this.#parts = [];
      this.#head = 0;
    } else if (this.#head >= 1024 && this.#head * 2 >= this.#parts.length) {
      // Many tiny chunks: drop the consumed prefix now and then instead of shifting each time.
      this.#parts = this.#parts.slice(this.#head);
      this.#head = 0;
    }
  }
}

/**
 * Reads frame payloads from a byte stream until it ends.
 *
 * The stream is locked while the generator runs. When it stops early — an
 * error, an abort, or the consumer leaving the loop — the stream is cancelled
 * (bytes already buffered would be lost, so nobody else can continue reading
 * it in sync); in every case the reader lock is released.
 *
 * @param readable the byte stream
 * @param options `maxFrameSize` (default {@link DEFAULT_MAX_FRAME_SIZE}) and an abort `signal`
 * @returns an async generator of payloads, in order
 * @throws {FrameTooLargeError} when a header declares a payload over the limit
 * @throws {TruncatedFrameError} when the stream ends inside a frame
 * @throws the signal's reason when aborted, or the stream's error when it errors
 */
export async function* readFrames(
  readable: ReadableStream<Uint8Array>,
  options: ReadFramesOptions = {},
): AsyncGenerator<Uint8Array, void, undefined> {
  const signal = options.signal;
  signal?.throwIfAborted();
  const decoder = new FrameDecoder(options);
  const reader = readable.getReader();
  let ended = false;
  let failure: unknown;
  // Cancelling settles a pending read, so an abort wakes the loop below.
  const onAbort = () => {
    reader.cancel(signal?.reason).catch(() => {});
  };
  signal?.addEventListener("abort", onAbort, { once: true });
  try {
    for (;;) {
      const { done, value } = await reader.read();
      signal?.throwIfAborted();
      if (done) {
        ended = true;
        decoder.finish();
        return;
      }
      for (const payload of decoder.push(value)) yield payload;
    }
  } catch (err) {
    failure = err;
    throw err;
  } finally {
    signal?.removeEventListener("abort", onAbort);
    if (!ended) await reader.cancel(failure).catch(() => {});
    reader.releaseLock();
  }
}

/**
 * Writes one frame holding `payload`, as a single chunk, after waiting for
 * the writer to have room (backpressure).
 *
 * The returned promise settles once the chunk is queued, not when the sink
 * has taken it; a failed write surfaces through the next `writer.ready` (so
 * the next `writeFrame` rejects) and through `writer.closed`.
 *
 * @param writer the writer of the byte stream
 * @param payload the bytes to send
 * @param options `maxFrameSize` (default {@link DEFAULT_MAX_FRAME_SIZE})
 * @throws {FrameTooLargeError} when `payload` is over the limit (nothing is written)
 * @throws the stream's error when the stream is errored or closed
 */
export async function writeFrame(
  writer: WritableStreamDefaultWriter<Uint8Array>,
  payload: Uint8Array,
  options: FrameOptions = {},
): Promise<void> {
  const frame = encodeFrame(payload, options.maxFrameSize);
  await writer.ready;
  // Reported through `ready`/`closed`; handled here so it is never an unhandled rejection.
  writer.write(frame).catch(() => {});
}

/**
 * Encodes `value` as CBOR and frames it: the bytes of one message on the wire.
 *
 * @param value plain data (see `assertEncodable`)
 * @param options `maxFrameSize` (default {@link DEFAULT_MAX_FRAME_SIZE})
 * @returns a new buffer holding header and payload
 * @throws {EncodingError} when `value` is not encodable
 * @throws {FrameTooLargeError} when the encoding is over the limit
 */
export function encodeMessage(value: unknown, options: FrameOptions = {}): Uint8Array {
  // Straight from the encoder's buffer into the frame: one copy instead of two.
  return encodeFrame(encodeValue(value), options.maxFrameSize);
}

/**
 * Decodes one complete frame (header and payload), the inverse of
 * {@link encodeMessage}.
 *
 * @param frame exactly one frame
 * @param options `maxFrameSize` (default {@link DEFAULT_MAX_FRAME_SIZE})
 * @returns the decoded value
 * @throws {TruncatedFrameError} when `frame` is shorter than its header says
 * @throws {FrameTooLargeError} when the header declares a payload over the limit
 * @throws {DecodeError} when bytes follow the frame or the payload does not decode
 */
export function decodeMessage(frame: Uint8Array, options: FrameOptions = {}): unknown {
  const limit = maxFrameSizeOf(options.maxFrameSize);
  if (frame.byteLength < FRAME_HEADER_SIZE) throw new TruncatedFrameError(frame.byteLength);
  const size = new DataView(frame.buffer, frame.byteOffset, frame.byteLength).getUint32(0);
  if (size > limit) throw new FrameTooLargeError(size, limit);
  const total = FRAME_HEADER_SIZE + size;
  if (frame.byteLength < total) throw new TruncatedFrameError(frame.byteLength, total);
  if (frame.byteLength > total) {
    throw new DecodeError(
      `Cannot decode frame: ${frame.byteLength - total} trailing bytes after the frame`,
    );
  }
  return decode(frame.subarray(FRAME_HEADER_SIZE));
}
