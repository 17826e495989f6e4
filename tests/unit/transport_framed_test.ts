// FramedStream: messages in frames over a transport stream, backpressure, and how a peer's bad framing is handled.

import {
  DecodeError,
  decodeMessage,
  encodeFrame,
  encodeMessage,
  EncodingError,
  FrameDecoder,
  FrameTooLargeError,
  TruncatedFrameError,
  type WireError,
} from "../../lib/wire/mod.ts";
import { FramedStream } from "../../transport/framed.ts";
import { MEMORY_HOST, MemoryNetwork } from "../../transport/memory.ts";
import type { Stream } from "../../transport/types.ts";
import { assert, assertEquals, assertRejects } from "../assert.ts";
import { randomIdentity } from "../conformance/transport.ts";
import { test } from "../harness.ts";

/** A stream whose peer is the test: it feeds the readable and inspects what was written. */
function fakeStream(options: { slowSink?: boolean } = {}) {
  let rc!: ReadableStreamDefaultController<Uint8Array>;
  let wc!: WritableStreamDefaultController;
  const written: Uint8Array[] = [];
  const resets: number[] = [];
  const state = { writableClosed: false, readableCancelled: false };
  let releaseSink: (() => void) | undefined;
  const sinkWaits: Promise<void>[] = [];
  const readable = new ReadableStream<Uint8Array>({
    start: (c) => {
      rc = c;
    },
    cancel: () => {
      state.readableCancelled = true;
    },
  });
  const writable = new WritableStream<Uint8Array>({
    start: (c) => {
      wc = c;
    },
    write: async (chunk) => {
      if (options.slowSink === true) {
        const wait = new Promise<void>((resolve) => releaseSink = resolve);
        sinkWaits.push(wait);
        await wait;
      }
      written.push(chunk.slice());
    },
    close: () => {
      state.writableClosed = true;
    },
  });
  const stream: Stream = {
    readable,
    writable,
    reset: (code) => {
      resets.push(code);
      const err = new Error(`reset with ${code}`);
      rc.error(err);
      wc.error(err);
    },
  };
  return {
    stream,
    written,
    resets,
    state,
    feed: (bytes: Uint8Array) => rc.enqueue(bytes),
    end: () => rc.close(),
    fail: (err: Error) => rc.error(err),
    /** Lets the slow sink take its pending chunk. */
    release: () => releaseSink?.(),
    get sinkCalls() {
      return sinkWaits.length;
    },
  };
}

/** The messages in the bytes written so far. */
function messagesIn(written: readonly Uint8Array[]): unknown[] {
  const decoder = new FrameDecoder();
  const out: unknown[] = [];
  for (const chunk of written) {
    for (const payload of decoder.push(chunk)) {
      out.push(decodeMessage(encodeFrame(payload)));
    }
  }
  decoder.finish();
  return out;
}

/** Lets pending promise callbacks and stream operations run. */
function turn(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}

const SAMPLES: unknown[] = [
  { term: 3, votes: new Set(["a", "b"]), big: 2n ** 70n },
  new Map<unknown, unknown>([[1, "one"], ["two", [2]]]),
  new Uint8Array([0, 1, 255]),
  [null, true, -0.5, "ü", { nested: { deep: [1, 2, 3] } }],
  "",
  0,
];

test("send writes one frame per message, in call order; frames sent together share a write", async () => {
  const peer = fakeStream();
  const framed = new FramedStream(peer.stream);
  await Promise.all(SAMPLES.map((m) => framed.send(m)));
  assertEquals(peer.written.length, 1, "messages sent in one turn reach the stream as one chunk");
  // Sent in separate turns: a chunk each.
  await framed.send("a");
  await framed.send("b");
  assertEquals(peer.written.length, 3);
  await framed.close();
  assert(peer.state.writableClosed, "close() ends our side");
  assertEquals(messagesIn(peer.written), [...SAMPLES, "a", "b"]);
});

test("frames sent together are cut into writes of at most 64 KiB, a bigger frame alone", async () => {
  const peer = fakeStream();
  const framed = new FramedStream(peer.stream);
  const kib = (n: number) => new Uint8Array(n * 1024).fill(n);
  const sizes = [30, 30, 30, 100, 1, 1];
  await Promise.all(sizes.map((n) => framed.send(kib(n))));
  await framed.close();
  assertEquals(messagesIn(peer.written), sizes.map(kib));
  // [30, 30] | [30] | [100] | [1, 1]: 30 + 30 + 30 KiB and 30 + 100 KiB are over the limit.
  assertEquals(peer.written.length, 4);
  assert(peer.written.every((c) => c.byteLength <= 64 * 1024 + 8 || c.byteLength > 100 * 1024));
});

test("receive decodes frames cut and merged anywhere, then undefined at a clean end", async () => {
  const peer = fakeStream();
  const framed = new FramedStream(peer.stream);
  const bytes = new Uint8Array(SAMPLES.flatMap((m) => [...encodeMessage(m)]));
  // Odd cuts: one byte, then growing pieces that straddle frame boundaries.
  for (let at = 0, size = 1; at < bytes.length; at += size, size += 3) {
    peer.feed(bytes.slice(at, at + size));
  }
  peer.end();
  for (const m of SAMPLES) assertEquals(await framed.receive(), m);
  assertEquals(await framed.receive(), undefined);
  assertEquals(await framed.receive(), undefined, "the end is sticky");
  assertEquals(peer.resets, []);
});

test("concurrent receives get messages in order; the iterator yields an undefined message", async () => {
  const peer = fakeStream();
  const framed = new FramedStream(peer.stream);
  const pending = [framed.receive(), framed.receive(), framed.receive()];
  peer.feed(encodeMessage("a"));
  peer.feed(encodeMessage("b"));
  peer.feed(encodeMessage("c"));
  assertEquals(await Promise.all(pending), ["a", "b", "c"]);
  peer.feed(encodeMessage(undefined));
  peer.feed(encodeMessage(1));
  peer.end();
  const rest: unknown[] = [];
  for await (const m of framed) rest.push(m);
  assertEquals(rest, [undefined, 1]);
});

test("an unencodable or oversized message is refused and nothing is sent", async () => {
  const peer = fakeStream();
  const framed = new FramedStream<unknown>(peer.stream, { maxFrameSize: 100 });
  await assertRejects(() => framed.send({ f: () => 1 }), EncodingError, "$.f");
  await assertRejects(() => framed.send(new Uint8Array(200)), FrameTooLargeError, "write");
  await framed.send("fine");
  await framed.close();
  assertEquals(messagesIn(peer.written), ["fine"]);
  assertEquals(peer.resets, [], "our own bad message is not the peer's violation");
  await assertRejects(() => framed.send("late"), Error, "closed");
});

test("an oversized frame from the peer resets the stream with 400 and reports the violation", async () => {
  const peer = fakeStream();
  const violations: WireError[] = [];
  const framed = new FramedStream(peer.stream, {
    maxFrameSize: 1024,
    onViolation: (err) => violations.push(err),
  });
  peer.feed(encodeMessage("ok"));
  // Only a header declaring 2 GiB: refused before any body is awaited.
  peer.feed(new Uint8Array([0x80, 0, 0, 0]));
  assertEquals(await framed.receive(), "ok");
  const err = await assertRejects(() => framed.receive(), FrameTooLargeError);
  assertEquals(peer.resets, [400]);
  assertEquals(violations, [err as WireError]);
  const again = await assertRejects(() => framed.receive(), FrameTooLargeError);
  assert(again === err, "later receives reject with the same error");
  assertEquals(violations.length, 1, "reported once");
  await framed[Symbol.asyncDispose]();
});

test("an undecodable or truncated frame is a violation too", async () => {
  for (
    const [bytes, cls] of [
      [encodeFrame(new Uint8Array([0xff])), DecodeError],
      [encodeFrame(new Uint8Array([0x82, 0x01])), DecodeError],
      [encodeMessage("cut short").subarray(0, 7), TruncatedFrameError],
      [new Uint8Array([0, 0]), TruncatedFrameError],
    ] as const
  ) {
    const peer = fakeStream();
    let reported: WireError | undefined;
    const framed = new FramedStream(peer.stream, { onViolation: (e) => reported = e });
    peer.feed(bytes);
    peer.end();
    const err = await assertRejects(() => framed.receive(), cls);
    assert(reported === err, `onViolation gets the ${cls.name}`);
    assertEquals(peer.resets, [400]);
  }
});

test("a failing stream rejects receive with its error and is not a violation", async () => {
  const peer = fakeStream();
  let violations = 0;
  const framed = new FramedStream(peer.stream, { onViolation: () => violations++ });
  const failure = new Error("connection closed by the peer");
  const pending = framed.receive();
  peer.fail(failure);
  assert((await assertRejects(() => pending)) === failure);
  assert((await assertRejects(() => framed.receive())) === failure);
  assertEquals(violations, 0);
  assertEquals(peer.resets, []);
  await framed.close();
});

test("send waits while the stream applies backpressure; what waits goes out together", async () => {
  const peer = fakeStream({ slowSink: true });
  const framed = new FramedStream<number>(peer.stream);
  let firstDone = false;
  const first = framed.send(1).then(() => firstDone = true);
  await turn();
  // The sink holds frame 1; the writer's queue is at its high-water mark.
  assert(firstDone, "the first frame is queued on the stream");
  assertEquals(peer.sinkCalls, 1);
  const later = [framed.send(2), framed.send(3)];
  const done = [false, false];
  later.forEach((p, i) => p.then(() => done[i] = true));
  await turn();
  assertEquals(done, [false, false], "frames 2 and 3 wait for room");
  const third = framed.send(4);
  peer.release();
  await turn();
  assertEquals(done, [true, true]);
  assertEquals(peer.written.length, 1);
  peer.release();
  await turn();
  peer.release();
  await Promise.all([first, ...later, third]);
  await framed.close();
  // 1 alone, then 2 and 3 together (they waited side by side), then 4.
  assertEquals(peer.written.map((c) => messagesIn([c])), [[1], [2, 3], [4]]);
});

test("dispose stops reading and finishes our side", async () => {
  const peer = fakeStream();
  {
    await using framed = new FramedStream(peer.stream);
    await framed.send("bye");
  }
  assert(peer.state.readableCancelled, "the readable is cancelled");
  assert(peer.state.writableClosed, "the writable is closed");
  assertEquals(messagesIn(peer.written), ["bye"]);
});

test("a locked stream is refused without keeping a lock", () => {
  const peer = fakeStream();
  const writer = peer.stream.writable.getWriter();
  let thrown: unknown;
  try {
    new FramedStream(peer.stream);
  } catch (err) {
    thrown = err;
  }
  assert(thrown instanceof TypeError, "a TypeError for a locked writable");
  assert(!peer.stream.readable.locked, "the reader lock is released");
  writer.releaseLock();
});

test("framed messages over a memory connection, both ways", async () => {
  await using net = new MemoryNetwork({ latencyMs: 1 });
  const [ia, ib] = await Promise.all([randomIdentity(), randomIdentity()]);
  const a = await net.transport()({ identity: ia });
  const b = await net.transport()({ identity: ib });
  const listener = await b.listen({ host: MEMORY_HOST, port: 0 });
  const accepting = listener.connections()[Symbol.asyncIterator]().next();
  const ab = await a.dial({
    address: listener.address,
    certificateHash: ib.certificateHash,
    serverName: ib.serverName,
  });
  const accepted = await accepting;
  assert(accepted.done !== true);
  const ba = accepted.value;
  await using client = new FramedStream<{ q: string } | { a: number }>(await ab.openStream());
  await client.send({ q: "six times seven" });
  const incoming = await ba.incomingStreams()[Symbol.asyncIterator]().next();
  assert(incoming.done !== true);
  await using server = new FramedStream<{ q: string } | { a: number }>(incoming.value);
  assertEquals(await server.receive(), { q: "six times seven" });
  await server.send({ a: 42 });
  await server.close();
  assertEquals(await client.receive(), { a: 42 });
  assertEquals(await client.receive(), undefined);
});

test("a custom decode turns payloads into messages; what it throws is a violation", async () => {
  const peer = fakeStream();
  const seen: number[] = [];
  const framed = new FramedStream(peer.stream, {
    decode: (payload) => {
      seen.push(payload.length);
      if (payload[0] === 0xf6) throw new Error("no nulls here");
      return { length: payload.length };
    },
    onViolation: () => {},
  });
  peer.feed(encodeMessage("abc"));
  peer.feed(encodeMessage(null));
  assertEquals(await framed.receive(), { length: 4 });
  const err = await assertRejects(() => framed.receive(), DecodeError);
  assert(err.cause instanceof Error && err.cause.message === "no nulls here", "keeps the cause");
  assertEquals(seen, [4, 1]);
  assertEquals(peer.resets, [400]);
});
