// Frames: the header, the size limit checked from the header alone, arbitrary chunking, streams.

import { test } from "../harness.ts";
import { assert, assertEquals, assertRejects, assertThrows } from "../assert.ts";
import {
  DecodeError,
  decodeMessage,
  DEFAULT_MAX_FRAME_SIZE,
  encodeFrame,
  encodeMessage,
  EncodingError,
  FrameDecoder,
  FrameTooLargeError,
  readFrames,
  TruncatedFrameError,
  WireError,
  writeFrame,
} from "../../lib/wire/mod.ts";

const PAYLOADS = [
  new Uint8Array([1, 2, 3]),
  new Uint8Array(0),
  new Uint8Array([4]),
  new Uint8Array(300).map((_, i) => i & 0xff),
  new Uint8Array(0),
  new Uint8Array([5, 6, 7, 8, 9]),
];

function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

const STREAM = concat(PAYLOADS.map((p) => encodeFrame(p)));

/** Feeds `chunks` to a fresh decoder, finishes it and returns every payload. */
function decodeChunks(chunks: readonly Uint8Array[], maxFrameSize?: number): Uint8Array[] {
  const decoder = new FrameDecoder(maxFrameSize === undefined ? {} : { maxFrameSize });
  const frames = chunks.flatMap((c) => decoder.push(c));
  decoder.finish();
  assertEquals(decoder.bufferedBytes, 0);
  return frames;
}

/** A readable stream that delivers `chunks`, then closes; records a cancel. */
function streamOf(chunks: readonly Uint8Array[]): {
  readable: ReadableStream<Uint8Array>;
  cancelled: () => unknown[];
} {
  const reasons: unknown[] = [];
  let next = 0;
  const readable = new ReadableStream<Uint8Array>({
    pull(controller) {
      const chunk = chunks[next++];
      if (chunk === undefined) controller.close();
      else controller.enqueue(chunk);
    },
    cancel(reason) {
      reasons.push(reason);
    },
  }, { highWaterMark: 0 });
  return { readable, cancelled: () => reasons };
}

async function collect(frames: AsyncIterable<Uint8Array>): Promise<Uint8Array[]> {
  const out: Uint8Array[] = [];
  for await (const f of frames) out.push(f);
  return out;
}

test("framing: a frame is a big-endian u32 length then the payload", () => {
  assertEquals(encodeFrame(new Uint8Array([0xaa, 0xbb])), new Uint8Array([0, 0, 0, 2, 0xaa, 0xbb]));
  assertEquals(encodeFrame(new Uint8Array(0)), new Uint8Array([0, 0, 0, 0]));
  const big = encodeFrame(new Uint8Array(0x010203));
  assertEquals([...big.subarray(0, 4)], [0, 1, 2, 3]);
  assertEquals(big.length, 4 + 0x010203);
  assertEquals(DEFAULT_MAX_FRAME_SIZE, 16 * 1024 * 1024);
});

test("framing: a sender never emits a frame over the limit", () => {
  assertEquals(encodeFrame(new Uint8Array(10), 10).length, 14);
  const err = assertThrows(() => encodeFrame(new Uint8Array(11), 10), FrameTooLargeError, "write");
  assertEquals([(err as FrameTooLargeError).size, (err as FrameTooLargeError).limit], [11, 10]);
  assertEquals((err as FrameTooLargeError).code, "FRAME_TOO_LARGE");
  assertThrows(() => encodeFrame(new Uint8Array(DEFAULT_MAX_FRAME_SIZE + 1)), FrameTooLargeError);
  assertThrows(() => encodeFrame(new Uint8Array(1), -1), RangeError);
  assertThrows(() => encodeFrame(new Uint8Array(1), 1.5), RangeError);
  assertThrows(() => new FrameDecoder({ maxFrameSize: 2 ** 32 }), RangeError);
});

test("framing: one chunk with every frame decodes them in order", () => {
  assertEquals(decodeChunks([STREAM]), PAYLOADS);
});

test("framing: chunks split at every byte boundary decode the same", () => {
  for (let i = 0; i <= STREAM.length; i++) {
    assertEquals(decodeChunks([STREAM.subarray(0, i), STREAM.subarray(i)]), PAYLOADS, `split ${i}`);
  }
  const bytes = Array.from(STREAM, (_, i) => STREAM.subarray(i, i + 1));
  assertEquals(decodeChunks(bytes), PAYLOADS, "one byte per chunk");
});

test("framing: every pair of split points in a small stream decodes the same", () => {
  const small = concat([
    encodeFrame(new Uint8Array([1, 2])),
    encodeFrame(new Uint8Array(0)),
    encodeFrame(new Uint8Array([3])),
  ]);
  const expected = [new Uint8Array([1, 2]), new Uint8Array(0), new Uint8Array([3])];
  for (let i = 0; i <= small.length; i++) {
    for (let j = i; j <= small.length; j++) {
      const chunks = [small.subarray(0, i), small.subarray(i, j), small.subarray(j)];
      assertEquals(decodeChunks(chunks), expected, `splits ${i}, ${j}`);
    }
  }
});

test("framing: a payload inside one chunk is a view of it, one across chunks a copy", () => {
  const decoder = new FrameDecoder();
  const chunk = encodeFrame(new Uint8Array([7, 8, 9]));
  const [view] = decoder.push(chunk);
  assert(view !== undefined && view.buffer === chunk.buffer, "no copy");
  decoder.push(chunk.subarray(0, 5));
  const [copy] = decoder.push(chunk.subarray(5));
  assertEquals(copy, new Uint8Array([7, 8, 9]));
  decoder.finish();
});

test("framing: a payload of exactly the limit is accepted, one byte more is refused from the header", () => {
  assertEquals(decodeChunks([encodeFrame(new Uint8Array(10).fill(1))], 10), [
    new Uint8Array(10).fill(1),
  ]);
  const decoder = new FrameDecoder({ maxFrameSize: 10 });
  const err = assertThrows(
    () => decoder.push(new Uint8Array([0, 0, 0, 11])),
    FrameTooLargeError,
    "read",
  );
  assertEquals([(err as FrameTooLargeError).size, (err as FrameTooLargeError).limit], [11, 10]);
  assertEquals(decoder.bufferedBytes, 0);
});

test("framing: a header declaring 1 GiB is refused at once, holding almost nothing", () => {
  const decoder = new FrameDecoder();
  assertEquals(decoder.push(new Uint8Array([0x40, 0])), []);
  assert(decoder.bufferedBytes <= 4);
  const err = assertThrows(() => decoder.push(new Uint8Array([0, 0])), FrameTooLargeError);
  assertEquals((err as FrameTooLargeError).size, 2 ** 30);
  assertEquals((err as FrameTooLargeError).limit, DEFAULT_MAX_FRAME_SIZE);
  assert(decoder.bufferedBytes <= 4, `holds ${decoder.bufferedBytes} bytes`);
  // The largest header there is, with a body arriving in the same chunk: still refused.
  const other = new FrameDecoder();
  const chunk = new Uint8Array(4 + 1000).fill(0xff);
  assertThrows(() => other.push(chunk), FrameTooLargeError);
  assertEquals(other.bufferedBytes, 0);
});

test("framing: after an error the decoder is poisoned", () => {
  const decoder = new FrameDecoder({ maxFrameSize: 4 });
  const err = assertThrows(() => decoder.push(new Uint8Array([0, 0, 0, 5])), FrameTooLargeError);
  const again = assertThrows(
    () => decoder.push(encodeFrame(new Uint8Array(1))),
    FrameTooLargeError,
  );
  assert(again === err, "the same error");
  assert(assertThrows(() => decoder.finish(), FrameTooLargeError) === err);

  const truncated = new FrameDecoder();
  truncated.push(new Uint8Array([0, 0, 0, 3, 1]));
  const t = assertThrows(() => truncated.finish(), TruncatedFrameError);
  assert(assertThrows(() => truncated.push(new Uint8Array([2, 3])), TruncatedFrameError) === t);
});

test("framing: finish reports a frame cut inside its header or its body", () => {
  const inHeader = new FrameDecoder();
  inHeader.push(new Uint8Array([0, 0]));
  const a = assertThrows(
    () => inHeader.finish(),
    TruncatedFrameError,
    "header",
  ) as TruncatedFrameError;
  assertEquals([a.receivedBytes, a.expectedBytes], [2, undefined]);
  assertEquals(a.code, "TRUNCATED_FRAME");

  const inBody = new FrameDecoder();
  const two = concat([encodeFrame(new Uint8Array([9])), encodeFrame(new Uint8Array([1, 2, 3, 4]))]);
  assertEquals(inBody.push(two.subarray(0, two.length - 2)), [new Uint8Array([9])]);
  const b = assertThrows(
    () => inBody.finish(),
    TruncatedFrameError,
    "6 of 8",
  ) as TruncatedFrameError;
  assertEquals([b.receivedBytes, b.expectedBytes], [6, 8]);

  const clean = new FrameDecoder();
  clean.push(STREAM);
  clean.finish();
  clean.finish();
});

test("framing: readFrames yields every payload of a stream and releases it", async () => {
  const chunks = [
    STREAM.subarray(0, 1),
    STREAM.subarray(1, 6),
    STREAM.subarray(6, 200),
    STREAM.subarray(200),
  ];
  const { readable, cancelled } = streamOf(chunks);
  assertEquals(await collect(readFrames(readable)), PAYLOADS);
  assert(!readable.locked, "lock released");
  assertEquals(cancelled(), []);
});

test("framing: readFrames throws TruncatedFrameError when the stream ends mid-frame", async () => {
  const { readable } = streamOf([STREAM.subarray(0, STREAM.length - 1)]);
  const frames: Uint8Array[] = [];
  const err = await assertRejects(async () => {
    for await (const f of readFrames(readable)) frames.push(f);
  }, TruncatedFrameError);
  assertEquals(frames, PAYLOADS.slice(0, -1));
  assert(err instanceof WireError);
  assert(!readable.locked);
});

test("framing: readFrames refuses an oversized frame and cancels the stream", async () => {
  const { readable, cancelled } = streamOf([
    encodeFrame(new Uint8Array([1])),
    new Uint8Array([0, 0, 1, 0]),
    new Uint8Array(256),
  ]);
  const frames: Uint8Array[] = [];
  const err = await assertRejects(async () => {
    for await (const f of readFrames(readable, { maxFrameSize: 255 })) frames.push(f);
  }, FrameTooLargeError);
  assertEquals(frames, [new Uint8Array([1])]);
  assertEquals(cancelled(), [err]);
  assert(!readable.locked);
});

test("framing: leaving the loop early cancels the stream and releases it", async () => {
  const { readable, cancelled } = streamOf([STREAM]);
  for await (const f of readFrames(readable)) {
    assertEquals(f, PAYLOADS[0]);
    break;
  }
  assertEquals(cancelled().length, 1);
  assert(!readable.locked);
});

test("framing: a stream error propagates", async () => {
  const boom = new Error("boom");
  const readable = new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(encodeFrame(new Uint8Array([1])));
      controller.error(boom);
    },
  });
  const err = await assertRejects(() => collect(readFrames(readable)), Error, "boom");
  assert(err === boom);
  assert(!readable.locked);
});

test("framing: an abort stops a read that is waiting for data", async () => {
  let cancelledWith: unknown;
  let pulled!: () => void;
  const waiting = new Promise<void>((resolve) => pulled = resolve);
  const readable = new ReadableStream<Uint8Array>({
    pull() {
      pulled(); // and never deliver anything
    },
    cancel(reason) {
      cancelledWith = reason;
    },
  }, { highWaterMark: 0 });
  const controller = new AbortController();
  const reading = collect(readFrames(readable, { signal: controller.signal }));
  await waiting;
  const reason = new Error("stop");
  controller.abort(reason);
  const err = await assertRejects(() => reading, Error, "stop");
  assert(err === reason);
  assert(cancelledWith === reason);
  assert(!readable.locked);

  const already = AbortSignal.abort(new Error("before"));
  const { readable: untouched } = streamOf([]);
  await assertRejects(() => collect(readFrames(untouched, { signal: already })), Error, "before");
  assert(!untouched.locked, "never locked");
});

test("framing: writeFrame and readFrames round-trip through a stream pair, rechunked", async () => {
  const pipe = new TransformStream<Uint8Array, Uint8Array>();
  // Cut every chunk into pieces of 1–3 bytes on the way, so frames straddle chunks.
  const rechunk = new TransformStream<Uint8Array, Uint8Array>({
    transform(chunk, controller) {
      for (let i = 0; i < chunk.length;) {
        const n = 1 + (i % 3);
        controller.enqueue(chunk.slice(i, i + n));
        i += n;
      }
    },
  });
  const reading = collect(readFrames(pipe.readable.pipeThrough(rechunk)));
  const writer = pipe.writable.getWriter();
  for (const payload of PAYLOADS) await writeFrame(writer, payload);
  await writer.close();
  assertEquals(await reading, PAYLOADS);
});

test("framing: writeFrame refuses an oversized payload and writes nothing", async () => {
  const pipe = new TransformStream<Uint8Array, Uint8Array>();
  const reading = collect(readFrames(pipe.readable));
  const writer = pipe.writable.getWriter();
  await assertRejects(
    () => writeFrame(writer, new Uint8Array(9), { maxFrameSize: 8 }),
    FrameTooLargeError,
  );
  await writeFrame(writer, new Uint8Array(8), { maxFrameSize: 8 });
  await writer.close();
  assertEquals(await reading, [new Uint8Array(8)]);
});

test("framing: writeFrame waits for backpressure before writing", async () => {
  const written: Uint8Array[] = [];
  let release!: () => void;
  const gate = new Promise<void>((resolve) => release = resolve);
  const writable = new WritableStream<Uint8Array>({
    async write(chunk) {
      written.push(chunk);
      await gate;
    },
  }, { highWaterMark: 1 });
  const writer = writable.getWriter();
  await writeFrame(writer, new Uint8Array([1])); // queued; the sink now blocks on the gate
  let second = false;
  const pending = writeFrame(writer, new Uint8Array([2])).then(() => second = true);
  await Promise.resolve();
  await Promise.resolve();
  assert(!second, "the second frame waits for room");
  release();
  await pending;
  await writer.close();
  assertEquals(written, [encodeFrame(new Uint8Array([1])), encodeFrame(new Uint8Array([2]))]);
});

test("framing: encodeMessage and decodeMessage are inverses", () => {
  const value = { term: 3, votes: new Set(["a", "b"]), big: 2n ** 70n, data: new Uint8Array([1]) };
  const frame = encodeMessage(value);
  assertEquals(decodeMessage(frame), value);
  assertEquals(decodeChunks([frame]).map((p) => decodeMessage(encodeFrame(p))), [value]);
  assertThrows(() => encodeMessage({ f: () => 1 }), EncodingError, "$.f");
  assertThrows(() => encodeMessage("x".repeat(100), { maxFrameSize: 50 }), FrameTooLargeError);
  assertThrows(() => decodeMessage(frame.subarray(0, 3)), TruncatedFrameError);
  assertThrows(() => decodeMessage(frame.subarray(0, frame.length - 1)), TruncatedFrameError);
  assertThrows(() => decodeMessage(concat([frame, new Uint8Array(1)])), DecodeError, "trailing");
  assertThrows(() => decodeMessage(frame, { maxFrameSize: 4 }), FrameTooLargeError);
  assertThrows(() => decodeMessage(encodeFrame(new Uint8Array([0xff]))), DecodeError);
});
