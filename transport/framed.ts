// Messages over a transport stream: each one CBOR-encoded in a length-prefixed frame, with backpressure and a size limit.

import {
  decode,
  DecodeError,
  DEFAULT_MAX_FRAME_SIZE,
  encodeMessage,
  FrameDecoder,
  FrameTooLargeError,
  WireError,
} from "../lib/wire/mod.ts";
import { concatBytes } from "../lib/primitives/bytes.ts";
import { CloseCode, type Stream } from "./types.ts";

/**
 * Frames sent together are written to the stream as one chunk of up to this
 * many bytes (a bigger frame goes alone): each write costs the transport a
 * call, and often a packet, whatever its size.
 */
const COALESCE_BYTES = 64 * 1024;

/** Frames waiting to be written together. */
interface Batch {
  readonly frames: Uint8Array[];
  bytes: number;
  /** Settles once the batch is queued on the stream (rejects if the stream failed). */
  written: Promise<void>;
}

/** Options of a {@link FramedStream}. */
export interface FramedStreamOptions {
  /**
   * Largest payload in bytes, sent or received (default 16 MiB,
   * `DEFAULT_MAX_FRAME_SIZE`). A bigger frame from the peer is a protocol
   * violation; a bigger message of ours is refused before anything is sent.
   */
  maxFrameSize?: number;
  /**
   * Called once, synchronously, when the peer breaks the wire protocol (an
   * oversized, truncated or undecodable frame), after the stream was reset
   * with `CloseCode.ProtocolViolation`, so the owner can close the whole
   * connection with code 400 and the error's message as the reason.
   */
  onViolation?: (err: WireError) => void;
  /**
   * Turns a received payload into a message (default: the wire codec's
   * `decode`). It must not keep `payload`, which may be a view of the
   * transport's buffer, beyond what it returns; whatever it throws is a
   * protocol violation (a `DecodeError` unless it is a `WireError`).
   */
  decode?: (payload: Uint8Array) => unknown;
}

/**
 * Sends and receives messages (CBOR-encodable plain data, see the wire
 * codec) on one transport {@link Stream}, one frame per message.
 *
 * A FramedStream owns its stream: it locks both directions. Messages are
 * received in the order sent; concurrent {@link send} calls go out in call
 * order, as do concurrent {@link receive} calls. Received messages are not
 * type-checked: `T` is what the caller expects, and a peer can send anything
 * decodable, so validate what you receive.
 *
 * When the peer sends an oversized, truncated or undecodable frame, the
 * stream is reset with `CloseCode.ProtocolViolation` (400), `onViolation`
 * runs, and this and every later {@link receive} rejects with the typed
 * wire error (`FrameTooLargeError`, `TruncatedFrameError`, `DecodeError`).
 *
 * @example
 * ```ts
 * import { FramedStream } from "./framed.ts";
 * import type { Connection } from "./types.ts";
 *
 * async function ping(conn: Connection): Promise<unknown> {
 *   await using framed = new FramedStream<{ ping: number }>(await conn.openStream(), {
 *     onViolation: (err) => conn.close(400, err.message),
 *   });
 *   await framed.send({ ping: 1 });
 *   await framed.close();
 *   return await framed.receive();
 * }
 * ```
 */
export class FramedStream<T = unknown> implements AsyncDisposable {
  readonly #stream: Stream;
  #maxFrameSize: number;
  readonly #onViolation: ((err: WireError) => void) | undefined;
  readonly #decode: (payload: Uint8Array) => unknown;
  readonly #reader: ReadableStreamDefaultReader<Uint8Array>;
  readonly #writer: WritableStreamDefaultWriter<Uint8Array>;
  readonly #decoder: FrameDecoder;
  /** Payloads of frames read from the stream and not yet returned. */
  #payloads: Uint8Array[] = [];
  #payloadHead = 0;
  #ended = false;
  /** Set once receiving failed: every later receive rejects with it. */
  #failure: { error: unknown } | undefined;
  /** Serializes receives, so concurrent calls get messages in order. */
  #receiving: Promise<unknown> = Promise.resolve();
  /** Serializes sends, likewise; settles (never rejects) when the last send is queued. */
  #sending: Promise<unknown> = Promise.resolve();
  /** The batch that later sends still join, until its turn to be written comes. */
  #open: Batch | undefined;
  #closing: Promise<void> | undefined;
  #bytesIn = 0;
  #bytesOut = 0;

  /**
   * @param stream the stream to use; its readable and writable are locked from now on
   * @param options `maxFrameSize` and `onViolation`
   * @throws {RangeError} when `maxFrameSize` is not an integer from 0 to 2^32 - 1
   * @throws {TypeError} when either direction of the stream is already locked
   */
  constructor(stream: Stream, options: FramedStreamOptions = {}) {
    this.#maxFrameSize = options.maxFrameSize ?? DEFAULT_MAX_FRAME_SIZE;
    this.#decoder = new FrameDecoder({ maxFrameSize: this.#maxFrameSize });
    this.#stream = stream;
    this.#onViolation = options.onViolation;
    this.#decode = options.decode ?? decode;
    this.#reader = stream.readable.getReader();
    try {
      this.#writer = stream.writable.getWriter();
    } catch (err) {
      this.#reader.releaseLock();
      throw err;
    }
  }

  /** Bytes read from the stream so far (frames with their length prefixes, as they arrived). */
  get bytesIn(): number {
    return this.#bytesIn;
  }

  /** Bytes of the frames queued on the stream so far, length prefixes included. */
  get bytesOut(): number {
    return this.#bytesOut;
  }

  /** Largest payload in bytes, sent or received. */
  get maxFrameSize(): number {
    return this.#maxFrameSize;
  }

  /**
   * Changes the size limit, e.g. once a stream's header told what it
   * carries. Frames already read but not yet received are held to the new
   * limit too.
   *
   * @throws {RangeError} when `value` is not an integer from 0 to 2^32 - 1
   */
  set maxFrameSize(value: number) {
    this.#decoder.maxFrameSize = value;
    this.#maxFrameSize = value;
  }

  /**
   * Sends one message, waiting while the peer is slow (backpressure). It
   * resolves once the frame is queued on the stream, not when the peer has
   * it. Messages sent in the same turn of the event loop, or while earlier
   * ones wait for room, are written to the stream together (up to 64 KiB).
   *
   * @param message plain data
   * @throws {EncodingError} when `message` is not CBOR-encodable (nothing is sent)
   * @throws {FrameTooLargeError} when its encoding exceeds `maxFrameSize` (nothing is sent)
   * @throws the stream's error when the stream was reset or its connection closed
   * @throws {Error} after {@link close}
   */
  send(message: T): Promise<void> {
    if (this.#closing !== undefined) {
      return Promise.reject(new Error("Cannot send message: stream is closed"));
    }
    let frame: Uint8Array;
    try {
      frame = encodeMessage(message, { maxFrameSize: this.#maxFrameSize });
    } catch (err) {
      return Promise.reject(err);
    }
    return this.#enqueue(frame);
  }

  /**
   * Adds a frame to the batch that is still open, or opens one behind those
   * already queued. A batch closes when its turn to be written comes, so
   * frames sent together (in one turn of the event loop, or while the
   * stream applies backpressure) reach the stream as one write.
   */
  #enqueue(frame: Uint8Array): Promise<void> {
    let batch = this.#open;
    if (batch === undefined || batch.bytes + frame.byteLength > COALESCE_BYTES) {
      const opened: Batch = { frames: [], bytes: 0, written: Promise.resolve() };
      opened.written = this.#sending.then(async () => {
        if (this.#open === opened) this.#open = undefined;
        const chunk = opened.frames.length === 1
          ? opened.frames[0]!
          : concatBytes(...opened.frames);
        await this.#writer.ready;
        // Reported through `ready`/`closed`; handled here so it is never an unhandled rejection.
        this.#writer.write(chunk).catch(() => {});
        this.#bytesOut += chunk.byteLength;
      });
      this.#sending = opened.written.catch(() => {});
      this.#open = batch = opened;
    }
    batch.frames.push(frame);
    batch.bytes += frame.byteLength;
    return batch.written;
  }

  /**
   * The next message, or `undefined` when the peer ended the stream cleanly.
   * A message that is itself `undefined` looks the same; iterate the stream
   * instead to tell them apart.
   *
   * @throws {FrameTooLargeError} when the peer sent a frame over `maxFrameSize`
   * @throws {TruncatedFrameError} when the peer ended the stream inside a frame
   * @throws {DecodeError} when a frame does not decode
   * @throws the stream's error when it was reset or its connection closed
   */
  async receive(): Promise<T | undefined> {
    const next = await this.#next();
    return next.done ? undefined : next.value;
  }

  /** Messages until the peer ends the stream; rejects like {@link receive}. */
  async *[Symbol.asyncIterator](): AsyncIterator<T> {
    for (;;) {
      const next = await this.#next();
      if (next.done) return;
      yield next.value;
    }
  }

  /**
   * Finishes our side: waits for pending sends and for queued frames to be
   * taken by the stream (so it waits while the peer applies backpressure),
   * then ends it. The
   * peer's side stays readable. Never rejects; idempotent.
   */
  close(): Promise<void> {
    this.#closing ??= this.#sending.then(() => this.#writer.close()).catch(() => {
      // Already reset or lost with its connection: there is nothing left to finish.
    });
    return this.#closing;
  }

  /** Stops reading (the peer's further sends fail) and finishes our side. */
  async [Symbol.asyncDispose](): Promise<void> {
    if (!this.#ended && this.#failure === undefined) {
      this.#failure = { error: new Error("Cannot receive message: stream was disposed") };
      await this.#reader.cancel().catch(() => {});
    }
    await this.close();
  }

  #next(): Promise<IteratorResult<T, undefined>> {
    const next = this.#receiving.then(() => this.#read());
    this.#receiving = next.catch(() => {});
    return next;
  }

  async #read(): Promise<IteratorResult<T, undefined>> {
    for (;;) {
      if (this.#failure !== undefined) throw this.#failure.error;
      if (this.#payloadHead < this.#payloads.length) {
        const payload = this.#payloads[this.#payloadHead]!;
        this.#payloadHead++;
        if (this.#payloadHead === this.#payloads.length) {
          this.#payloads = [];
          this.#payloadHead = 0;
        }
        if (payload.byteLength > this.#maxFrameSize) {
          throw this.#violation(new FrameTooLargeError(payload.byteLength, this.#maxFrameSize));
        }
        try {
          return { done: false, value: this.#decode(payload) as T };
        } catch (err) {
          throw this.#violation(err);
        }
      }
      if (this.#ended) return { done: true, value: undefined };
      let chunk: ReadableStreamReadResult<Uint8Array>;
      try {
        chunk = await this.#reader.read();
      } catch (err) {
        // The stream failed (reset, connection closed): not the peer's framing.
        this.#failure ??= { error: err };
        throw this.#failure.error;
      }
      try {
        if (chunk.done) {
          this.#decoder.finish();
          this.#ended = true;
        } else {
          this.#bytesIn += chunk.value.byteLength;
          for (const payload of this.#decoder.push(chunk.value)) this.#payloads.push(payload);
        }
      } catch (err) {
        throw this.#violation(err);
      }
    }
  }

  #violation(cause: unknown): WireError {
    const err = cause instanceof WireError
      ? cause
      : new DecodeError("Cannot decode message: unexpected decoder failure", { cause });
    this.#failure = { error: err };
    this.#payloads = [];
    this.#payloadHead = 0;
    this.#stream.reset(CloseCode.ProtocolViolation);
    const onViolation = this.#onViolation;
    if (onViolation !== undefined) {
      try {
        onViolation(err);
      } catch (bug) {
        // The owner's bug must surface, but not in place of the wire error.
        queueMicrotask(() => {
          throw bug;
        });
      }
    }
    return err;
  }
}
