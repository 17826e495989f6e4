// The transport conformance suite: the behaviour every Transport adapter must show, run against each adapter.
//
// How to use it for an adapter (the memory transport's harness is in
// tests/unit/transport_memory_test.ts; `makeAdapter` and `unusedPort` stand for
// whatever the adapter's test file has):
//
//   runTransportConformance({
//     name: "deno_quic",
//     make: async () => {
//       const identity = await randomIdentity();
//       return { transport: await makeAdapter({ identity }), identity };
//     },
//     listenAddress: { host: "127.0.0.1", port: 0 },
//     closedAddress: async () => ({ host: "127.0.0.1", port: await unusedPort() }),
//   });
//
// `transportConformanceCases()` gives the same cases as plain functions, for
// running one case under a debugger or checking that a broken adapter fails.
//
// Every case makes its own transports, closes everything it opened in `finally`
// (so Deno's leak sanitizers check the adapter too), and never asserts on time:
// it waits for conditions, and deadlines only bound how long a failure takes.
// Peers always send before the other side waits for a stream, because a QUIC
// peer learns of a stream only from its first byte.

import { DecodeError, FrameTooLargeError, writeFrame } from "../../lib/wire/mod.ts";
import { createTlsIdentity, serverNameFor } from "../../transport/cert.ts";
import { FramedStream } from "../../transport/framed.ts";
import {
  CloseCode,
  type CloseInfo,
  type Connection,
  type DialTarget,
  type Listener,
  type SocketAddress,
  type Stream,
  type TlsIdentity,
  type Transport,
} from "../../transport/types.ts";
import { assert, assertEquals } from "../assert.ts";
import { test } from "../harness.ts";
import { pattern } from "../bytes.ts";
import { concatBytes } from "../../lib/primitives/bytes.ts";

/** How the suite gets transports of the adapter under test. */
export interface TransportHarness {
  /** Adapter name, the prefix of every test name. */
  name: string;
  /**
   * A transport for a fresh node identity, e.g. made with
   * `createTlsIdentity(serverNameFor(randomPeerIdHex()))`. The suite closes it.
   */
  make(): Promise<{ transport: Transport; identity: TlsIdentity }>;
  /** Where listeners bind, e.g. `{ host: "127.0.0.1", port: 0 }`; the bound address must be dialable. */
  listenAddress: SocketAddress;
  /** An address nothing listens on, for the "closed port" case. */
  closedAddress(): Promise<SocketAddress>;
  /** Multiplies the sizes of the big cases (stream and frame counts, 1 MiB frames); default 1. */
  scale?: number;
  /** Bound on each wait in a case, in ms (default 20 000). */
  waitTimeoutMs?: number;
  /** Per-test timeout passed to the test harness, in ms (harness default when omitted). */
  testTimeoutMs?: number;
  /**
   * How far a writer may get ahead of a reader that does not read, in bytes,
   * before the suite calls the buffering unbounded (default 64 MiB).
   */
  maxBufferedBytes?: number;
}

/** One check of the suite, runnable without a test runner: `run` rejects when the adapter fails it. */
export interface TransportConformanceCase {
  /** What the case checks, unique within the suite. */
  readonly name: string;
  /** Makes its own transports from the harness, checks them, and always closes them. */
  run(h: TransportHarness): Promise<void>;
}

/** Every case of the suite, in a stable order. */
export function transportConformanceCases(): TransportConformanceCase[] {
  return CASES.map((c) => ({ ...c }));
}

/** Registers one test per case, named `${h.name}: ${case.name}`. */
export function runTransportConformance(h: TransportHarness): void {
  const options = h.testTimeoutMs === undefined ? {} : { timeout: h.testTimeoutMs };
  for (const c of transportConformanceCases()) {
    test(`${h.name}: ${c.name}`, () => c.run(h), options);
  }
}

// ---------------------------------------------------------------------------
// Helpers

/** 64 random lowercase hex characters: a PeerId-shaped name for a test node. */
export function randomPeerIdHex(): string {
  return Array.from(
    crypto.getRandomValues(new Uint8Array(32)),
    (b) => b.toString(16).padStart(2, "0"),
  )
    .join("");
}

/** A fresh TLS identity for a random PeerId. */
export function randomIdentity(): Promise<TlsIdentity> {
  return createTlsIdentity(serverNameFor(randomPeerIdHex()));
}

const waitMs = (h: TransportHarness) => h.waitTimeoutMs ?? 20_000;
const scaled = (h: TransportHarness, n: number) => Math.max(1, Math.round(n * (h.scale ?? 1)));

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** `promise`, or a rejection naming `what` if it has not settled after `ms`. */
async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`Timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  try {
    return await Promise.race([promise, expired]);
  } finally {
    clearTimeout(timer);
  }
}

/** Waits until `cond()` holds, polling; rejects naming `what` after `ms`. */
async function until(cond: () => boolean, ms: number, what: string): Promise<void> {
  const end = performance.now() + ms;
  while (!cond()) {
    if (performance.now() > end) throw new Error(`Timed out after ${ms} ms waiting for ${what}`);
    await sleep(5);
  }
}

/** How a promise settled, without throwing. */
async function settle<T>(
  p: Promise<T>,
): Promise<{ ok: true; value: T } | { ok: false; error: unknown }> {
  try {
    return { ok: true, value: await p };
  } catch (error) {
    return { ok: false, error };
  }
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength !== b.byteLength) return false;
  for (let i = 0; i < a.byteLength; i++) if (a[i] !== b[i]) return false;
  return true;
}

async function writeAll(stream: Stream, bytes: Uint8Array, end = true): Promise<void> {
  const writer = stream.writable.getWriter();
  try {
    await writer.write(bytes);
    if (end) await writer.close();
  } finally {
    writer.releaseLock();
  }
}

async function readAll(readable: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  const reader = readable.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return concatBytes(...parts);
      parts.push(value);
    }
  } finally {
    reader.releaseLock();
  }
}

/** Reads exactly `n` bytes (or fewer if the stream ends), leaving the stream open. */
async function readExactly(
  reader: ReadableStreamDefaultReader<Uint8Array>,
  n: number,
): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  let got = 0;
  while (got < n) {
    const { done, value } = await reader.read();
    if (done) break;
    parts.push(value);
    got += value.byteLength;
  }
  assertEquals(got, n, `expected exactly ${n} bytes, got ${got}`);
  return concatBytes(...parts);
}

function targetOf(listener: Listener, identity: TlsIdentity): DialTarget {
  return {
    address: listener.address,
    certificateHash: identity.certificateHash,
    serverName: identity.serverName,
  };
}

/** Things a case opened, closed in reverse order whatever happens. */
class Scope {
  #closers: (() => unknown)[] = [];

  defer(close: () => unknown): void {
    this.#closers.push(close);
  }

  async make(h: TransportHarness): Promise<{ transport: Transport; identity: TlsIdentity }> {
    const node = await h.make();
    this.defer(() => node.transport.close());
    return node;
  }

  async listen(transport: Transport, address: SocketAddress): Promise<Listener> {
    const listener = await transport.listen(address);
    this.defer(() => listener.close());
    return listener;
  }

  conn(conn: Connection): Connection {
    this.defer(() => conn.close());
    return conn;
  }

  async close(): Promise<void> {
    const closers = this.#closers.reverse();
    this.#closers = [];
    let failure: { error: unknown } | undefined;
    for (const close of closers) {
      try {
        await close();
      } catch (error) {
        failure ??= { error };
      }
    }
    if (failure !== undefined) throw failure.error;
  }
}

/** Runs `body` with a scope, closing it afterwards; the body's failure wins over a close failure. */
async function scoped(body: (scope: Scope) => Promise<void>): Promise<void> {
  const scope = new Scope();
  try {
    await body(scope);
  } catch (err) {
    await scope.close().catch(() => {});
    throw err;
  }
  await scope.close();
}

interface Connected {
  readonly a: { transport: Transport; identity: TlsIdentity };
  readonly b: { transport: Transport; identity: TlsIdentity };
  readonly listener: Listener;
  /** The accepting side's iterator over the listener, for more connections. */
  readonly accepted: AsyncIterator<Connection>;
  /** The dialer's end. */
  readonly ab: Connection;
  /** The accepting end. */
  readonly ba: Connection;
}

/** Two nodes: `b` listens, `a` dials it. */
async function connect(h: TransportHarness, scope: Scope): Promise<Connected> {
  const a = await scope.make(h);
  const b = await scope.make(h);
  const listener = await scope.listen(b.transport, h.listenAddress);
  const accepted = listener.connections()[Symbol.asyncIterator]();
  const [ab, next] = await within(
    Promise.all([a.transport.dial(targetOf(listener, b.identity)), accepted.next()]),
    waitMs(h),
    "dial and accept",
  );
  scope.conn(ab);
  assert(next.done !== true, "listener ended instead of accepting");
  const ba = scope.conn(next.value);
  return { a, b, listener, accepted, ab, ba };
}

/** The next stream the peer opens on `conn`. */
async function nextStream(h: TransportHarness, conn: Connection, what: string): Promise<Stream> {
  const it = conn.incomingStreams()[Symbol.asyncIterator]();
  const next = await within(it.next(), waitMs(h), what);
  assert(next.done !== true, `incoming streams ended while waiting for ${what}`);
  return next.value;
}

/** Answers `count` streams the peer opens on `conn`: reads each to its end and writes it back. */
async function echoStreams(conn: Connection, count: number): Promise<void> {
  const handlers: Promise<void>[] = [];
  if (count > 0) {
    for await (const stream of conn.incomingStreams()) {
      handlers.push((async () => {
        const data = await readAll(stream.readable);
        await writeAll(stream, data);
      })());
      if (handlers.length === count) break;
    }
  }
  assertEquals(handlers.length, count, "incoming streams ended early");
  await Promise.all(handlers);
}

/** Opens a stream, sends `data`, ends it, and returns what comes back. */
async function roundTrip(conn: Connection, data: Uint8Array): Promise<Uint8Array> {
  const stream = await conn.openStream();
  const [, back] = await Promise.all([writeAll(stream, data), readAll(stream.readable)]);
  return back;
}

function checkClose(info: CloseInfo, code: number, reason: string | undefined, remote: boolean) {
  assertEquals(info.code, code, `close code: ${JSON.stringify(info)}`);
  if (reason !== undefined) {
    assertEquals(info.reason, reason, `close reason: ${JSON.stringify(info)}`);
  }
  assertEquals(info.remote, remote, `close remote flag: ${JSON.stringify(info)}`);
}

// ---------------------------------------------------------------------------
// The cases

const CASES: TransportConformanceCase[] = [
  {
    name: "dial and accept a connection that carries streams both ways",
    run: (h) =>
      scoped(async (scope) => {
        const { b, listener, ab, ba } = await connect(h, scope);
        assert(listener.address.port !== 0, "listener reports the port it bound");
        assert(
          ab.remoteCertificateHash !== undefined,
          "the dialer knows the peer's certificate hash",
        );
        assertEquals(ab.remoteCertificateHash, b.identity.certificateHash);
        assert(typeof ab.remoteAddress.host === "string" && ab.remoteAddress.port > 0);
        assert(typeof ba.remoteAddress.host === "string" && ba.remoteAddress.port > 0);
        if (ba.remoteCertificateHash !== undefined) {
          assertEquals(ba.remoteCertificateHash.byteLength, 32);
        }
        // Dialer-opened stream, half-closed by each side in turn.
        const ping = new TextEncoder().encode("ping");
        const [back1] = await within(
          Promise.all([roundTrip(ab, ping), echoStreams(ba, 1)]),
          waitMs(h),
          "a stream opened by the dialer",
        );
        assertEquals(back1, ping);
        // Acceptor-opened stream.
        const pong = new TextEncoder().encode("pong from the acceptor");
        const [back2] = await within(
          Promise.all([roundTrip(ba, pong), echoStreams(ab, 1)]),
          waitMs(h),
          "a stream opened by the acceptor",
        );
        assertEquals(back2, pong);
      }),
  },
  {
    name: "many concurrent streams in both directions on one connection",
    run: (h) =>
      scoped(async (scope) => {
        const { ab, ba } = await connect(h, scope);
        const n = scaled(h, 100);
        const open = async (conn: Connection, base: number) => {
          await Promise.all(Array.from({ length: n }, async (_, i) => {
            const data = pattern(base + i, 64 + (i % 7) * 100);
            const back = await roundTrip(conn, data);
            assert(sameBytes(back, data), `stream ${base + i} echoed different bytes`);
          }));
        };
        await within(
          Promise.all([open(ab, 0), open(ba, 100_000), echoStreams(ba, n), echoStreams(ab, n)]),
          waitMs(h),
          `${2 * n} streams`,
        );
      }),
  },
  {
    name: "10 000 small frames arrive complete and in order",
    run: (h) =>
      scoped(async (scope) => {
        const { ab, ba } = await connect(h, scope);
        const n = scaled(h, 10_000);
        const sender = new FramedStream<{ i: number; s: string }>(await ab.openStream());
        const send = (async () => {
          for (let i = 0; i < n; i++) await sender.send({ i, s: "x".repeat(i % 13) });
          await sender.close();
        })();
        const receive = (async () => {
          const receiver = new FramedStream<{ i: number; s: string }>(
            await nextStream(h, ba, "the frames' stream"),
          );
          let expected = 0;
          for await (const m of receiver) {
            assertEquals(m, { i: expected, s: "x".repeat(expected % 13) });
            expected++;
          }
          assertEquals(expected, n, "every frame arrived");
          await receiver[Symbol.asyncDispose]();
        })();
        await within(Promise.all([send, receive]), waitMs(h), `${n} frames`);
        await sender[Symbol.asyncDispose]();
      }),
  },
  {
    name: "1 MiB frames cross intact in both directions at once",
    run: (h) =>
      scoped(async (scope) => {
        const { ab, ba } = await connect(h, scope);
        const count = scaled(h, 3);
        const size = 1024 * 1024;
        const exchange = async (framed: FramedStream<Uint8Array>, mine: number, theirs: number) => {
          const send = (async () => {
            for (let i = 0; i < count; i++) await framed.send(pattern(mine + i, size));
            await framed.close();
          })();
          let got = 0;
          for await (const frame of framed) {
            assert(frame instanceof Uint8Array && frame.byteLength === size, "frame size");
            assert(sameBytes(frame, pattern(theirs + got, size)), `frame ${got} intact`);
            got++;
          }
          await send;
          assertEquals(got, count, "every 1 MiB frame arrived");
        };
        const fa = new FramedStream<Uint8Array>(await ab.openStream());
        await within(
          Promise.all([
            exchange(fa, 1, 1001),
            (async () => {
              const fb = new FramedStream<Uint8Array>(await nextStream(h, ba, "the big stream"));
              await exchange(fb, 1001, 1);
              await fb[Symbol.asyncDispose]();
            })(),
          ]),
          waitMs(h),
          "1 MiB frames",
        );
        await fa[Symbol.asyncDispose]();
      }),
  },
  {
    name: "an oversized frame closes the connection with ProtocolViolation",
    run: (h) =>
      scoped(async (scope) => {
        const { ab, ba } = await connect(h, scope);
        const sender = new FramedStream<Uint8Array>(await ab.openStream());
        await sender.send(new Uint8Array(4096));
        let violations = 0;
        const receiver = new FramedStream<Uint8Array>(await nextStream(h, ba, "the stream"), {
          maxFrameSize: 1024,
          onViolation: (err) => {
            violations++;
            ba.close(CloseCode.ProtocolViolation, err.message);
          },
        });
        const received = await within(settle(receiver.receive()), waitMs(h), "the rejection");
        assert(!received.ok, "an oversized frame must not be received");
        assert(received.error instanceof FrameTooLargeError, `got ${String(received.error)}`);
        assertEquals(violations, 1);
        const reason = received.error.message;
        checkClose(await within(ab.closed, waitMs(h), "the sender's close"), 400, reason, true);
        checkClose(await within(ba.closed, waitMs(h), "the receiver's close"), 400, reason, false);
      }),
  },
  {
    name: "an undecodable frame closes the connection with ProtocolViolation",
    run: (h) =>
      scoped(async (scope) => {
        const { ab, ba } = await connect(h, scope);
        const stream = await ab.openStream();
        const writer = stream.writable.getWriter();
        // 0xff is a CBOR "break" with nothing to end: not a valid item.
        await writeFrame(writer, new Uint8Array([0xff]));
        writer.releaseLock();
        const receiver = new FramedStream(await nextStream(h, ba, "the stream"), {
          onViolation: (err) => ba.close(CloseCode.ProtocolViolation, err.message),
        });
        const received = await within(settle(receiver.receive()), waitMs(h), "the rejection");
        assert(!received.ok && received.error instanceof DecodeError, "a DecodeError");
        checkClose(await within(ab.closed, waitMs(h), "the sender's close"), 400, undefined, true);
      }),
  },
  {
    name: "backpressure stalls a fast writer against a paused reader",
    run: (h) =>
      scoped(async (scope) => {
        const { ab, ba } = await connect(h, scope);
        const limit = h.maxBufferedBytes ?? 64 * 1024 * 1024;
        const chunk = pattern(7, 64 * 1024);
        const stream = await ab.openStream();
        const writer = stream.writable.getWriter();
        let accepted = 0;
        let stop = false;
        const writing = (async () => {
          while (!stop && accepted < limit) {
            await writer.ready;
            if (stop) break;
            // Failures surface through `ready`; the writes are not awaited on purpose.
            writer.write(chunk).catch(() => {});
            accepted += chunk.byteLength;
          }
        })();
        const peer = await nextStream(h, ba, "the stream");
        // The reader reads nothing; wait until the writer stops making progress.
        let last = -1;
        let still = 0;
        await until(
          () => {
            if (accepted >= limit) return true;
            still = accepted === last ? still + 1 : 0;
            last = accepted;
            return still >= 20;
          },
          waitMs(h),
          "the writer to stall",
        );
        const ahead = accepted;
        assert(ahead < limit, `the writer got ${ahead} bytes ahead of a paused reader`);
        assert(writer.desiredSize !== null && writer.desiredSize <= 0, "the writer is blocked");
        // Resume: everything written arrives, and the writer finishes.
        stop = true;
        const reading = readAll(peer.readable);
        await within(writing, waitMs(h), "the writer to resume");
        await within(writer.close(), waitMs(h), "the writer to finish");
        const data = await within(reading, waitMs(h), "the reader to drain");
        assertEquals(data.byteLength, accepted, "every accepted byte arrives");
        for (let at = 0; at < data.byteLength; at += chunk.byteLength) {
          assert(sameBytes(data.subarray(at, at + chunk.byteLength), chunk), `bytes at ${at}`);
        }
      }),
  },
  {
    name: "close code and reason reach the other side",
    run: (h) =>
      scoped(async (scope) => {
        const { ab, ba } = await connect(h, scope);
        const iterating = ba.incomingStreams()[Symbol.asyncIterator]().next();
        ab.close(CloseCode.DuplicateBond, "duplicate bond: départ ✓");
        ab.close(1, "ignored: close is idempotent");
        const remote = await within(ba.closed, waitMs(h), "the peer's close");
        checkClose(remote, CloseCode.DuplicateBond, "duplicate bond: départ ✓", true);
        checkClose(await ab.closed, CloseCode.DuplicateBond, "duplicate bond: départ ✓", false);
        assert((await within(iterating, waitMs(h), "incoming streams to end")).done === true);
        assert(!(await settle(ab.openStream())).ok, "openStream rejects after close");
        assert(!(await settle(ba.openStream())).ok, "openStream rejects on the closed peer");
        // The other direction, with the default code.
        const second = await connect(h, scope);
        second.ba.close();
        checkClose(await within(second.ab.closed, waitMs(h), "the dialer's close"), 0, "", true);
      }),
  },
  {
    name: "a stream reset errors the peer's reads",
    run: (h) =>
      scoped(async (scope) => {
        const { ab, ba } = await connect(h, scope);
        const stream = await ab.openStream();
        await writeAll(stream, new Uint8Array([1, 2, 3]), false);
        const peer = await nextStream(h, ba, "the stream");
        const reader = peer.readable.getReader();
        assertEquals(
          await within(readExactly(reader, 3), waitMs(h), "3 bytes"),
          new Uint8Array([1, 2, 3]),
        );
        stream.reset(CloseCode.ProtocolViolation);
        stream.reset(CloseCode.ProtocolViolation);
        const read = await within(settle(reader.read()), waitMs(h), "the reset to reach the peer");
        assert(!read.ok, "a read after the peer's reset rejects");
        // The connection itself is still usable.
        const [back] = await within(
          Promise.all([roundTrip(ab, new Uint8Array([9])), echoStreams(ba, 1)]),
          waitMs(h),
          "a stream after the reset",
        );
        assertEquals(back, new Uint8Array([9]));
      }),
  },
  {
    name: "dialling with a wrong certificate fails",
    run: (h) =>
      scoped(async (scope) => {
        const a = await scope.make(h);
        const b = await scope.make(h);
        const listener = await scope.listen(b.transport, h.listenAddress);
        const stranger = await randomIdentity();
        const target: DialTarget = {
          address: listener.address,
          certificateHash: stranger.certificateHash,
          serverName: b.identity.serverName,
        };
        const dialled = await within(
          settle(a.transport.dial(target)),
          waitMs(h),
          "the dial to fail",
        );
        if (dialled.ok) scope.conn(dialled.value);
        assert(!dialled.ok, "a dial pinning another certificate must fail");
        assert(dialled.error instanceof Error, "it fails with an Error");
      }),
  },
  {
    name: "dialling a closed port fails within a timeout",
    run: (h) =>
      scoped(async (scope) => {
        const a = await scope.make(h);
        const identity = await randomIdentity();
        const target: DialTarget = {
          address: await h.closedAddress(),
          certificateHash: identity.certificateHash,
          serverName: identity.serverName,
        };
        const controller = new AbortController();
        const dialling = settle(a.transport.dial(target, { signal: controller.signal }));
        try {
          const dialled = await within(dialling, waitMs(h), "a dial to a closed port to fail");
          if (dialled.ok) scope.conn(dialled.value);
          assert(!dialled.ok, "a dial to a closed port must fail");
        } finally {
          controller.abort(new Error("the case is over"));
          await dialling;
        }
      }),
  },
  {
    name: "an abort signal cancels a dial",
    run: (h) =>
      scoped(async (scope) => {
        const a = await scope.make(h);
        const b = await scope.make(h);
        const listener = await scope.listen(b.transport, h.listenAddress);
        const target = targetOf(listener, b.identity);
        const early = new AbortController();
        const reason1 = new Error("aborted before the dial");
        early.abort(reason1);
        const first = await settle(a.transport.dial(target, { signal: early.signal }));
        if (first.ok) scope.conn(first.value);
        assert(!first.ok && first.error === reason1, "an aborted signal rejects with its reason");
        const late = new AbortController();
        const reason2 = new Error("aborted during the dial");
        const dialling = settle(a.transport.dial(target, { signal: late.signal }));
        late.abort(reason2);
        const second = await within(dialling, waitMs(h), "the aborted dial");
        if (second.ok) scope.conn(second.value);
        assert(!second.ok && second.error === reason2, "an abort rejects the dial with its reason");
        // The transport still dials after the aborted attempts.
        const accepted = listener.connections()[Symbol.asyncIterator]();
        const ok = scope.conn(await within(a.transport.dial(target), waitMs(h), "a later dial"));
        // Aborted attempts may have reached the listener; find the live connection by using it.
        const serving = (async () => {
          for (;;) {
            const next = await accepted.next();
            if (next.done === true) return;
            const conn = scope.conn(next.value);
            void echoStreams(conn, 1).catch(() => {});
          }
        })();
        const data = new Uint8Array([4, 2]);
        assertEquals(
          await within(roundTrip(ok, data), waitMs(h), "a stream on the later dial"),
          data,
        );
        await listener.close();
        await within(serving, waitMs(h), "the listener to end");
      }),
  },
  {
    name: "closing a listener stops accepting and keeps established connections",
    run: (h) =>
      scoped(async (scope) => {
        const { a, b, listener, accepted, ab, ba } = await connect(h, scope);
        await listener.close();
        await listener.close();
        assert((await within(accepted.next(), waitMs(h), "connections() to end")).done === true);
        const data = new Uint8Array([1]);
        const [back] = await within(
          Promise.all([roundTrip(ab, data), echoStreams(ba, 1)]),
          waitMs(h),
          "a stream after the listener closed",
        );
        assertEquals(back, data);
        const dialled = await within(
          settle(a.transport.dial(targetOf(listener, b.identity))),
          waitMs(h),
          "a dial to the closed listener to fail",
        );
        if (dialled.ok) scope.conn(dialled.value);
        assert(!dialled.ok, "a closed listener accepts nothing");
      }),
  },
  {
    name: "closing transports ends listeners, connections and streams",
    run: (h) =>
      scoped(async (scope) => {
        const { a, b, accepted, ab, ba } = await connect(h, scope);
        const stream = await ab.openStream();
        await writeAll(stream, new Uint8Array([1]), false);
        const peer = await nextStream(h, ba, "the stream");
        const peerReader = peer.readable.getReader();
        await within(readExactly(peerReader, 1), waitMs(h), "the first byte");
        const pendingRead = settle(peerReader.read());
        const pendingAccept = accepted.next();
        const pendingIncoming = ab.incomingStreams()[Symbol.asyncIterator]().next();
        // Closing one side closes the other's connection as seen from the network.
        await within(a.transport.close(), waitMs(h), "transport a to close");
        const local = await within(ab.closed, waitMs(h), "a's connection to close");
        assertEquals(local.remote, false, "a closed its own connection");
        assert(
          (await within(pendingIncoming, waitMs(h), "a's incoming streams to end")).done === true,
        );
        const remote = await within(ba.closed, waitMs(h), "b to see the connection close");
        assertEquals(remote.remote, true, "the peer sees a remote close");
        const read = await within(pendingRead, waitMs(h), "the peer's pending read to settle");
        assert(
          !read.ok || read.value.done === true,
          "a pending read settles when the connection closes",
        );
        await within(b.transport.close(), waitMs(h), "transport b to close");
        assert((await within(pendingAccept, waitMs(h), "the listener to end")).done === true);
        // Closed means closed: idempotent, and nothing new can start.
        await within(a.transport.close(), waitMs(h), "a second close");
        assert(
          !(await settle(b.transport.listen(h.listenAddress))).ok,
          "listen after close rejects",
        );
        const redial = await settle(
          a.transport.dial({
            address: { host: "127.0.0.1", port: 1 },
            certificateHash: b.identity.certificateHash,
            serverName: b.identity.serverName,
          }),
        );
        if (redial.ok) scope.conn(redial.value);
        assert(!redial.ok, "dial after close rejects");
      }),
  },
];
