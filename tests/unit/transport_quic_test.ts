// The raw-QUIC adapter of the runtime under test (deno_quic on Deno, bun_quic on Bun): the conformance suite plus adapter-specific checks.

import { createSocket } from "node:dgram";
import {
  randomIdentity,
  transportConformanceCases,
  type TransportHarness,
} from "../conformance/transport.ts";
import { defaultTransport } from "../../transport/default.ts";
import type {
  Connection,
  Listener,
  SocketAddress,
  TlsIdentity,
  Transport,
  TransportFactory,
} from "../../transport/types.ts";
import { assert, assertEquals, assertRejects } from "../assert.ts";
import { runtime, test } from "../harness.ts";

/** Short enough that the closed-port cases stay quick, long enough for a loaded CI machine. */
const HANDSHAKE_TIMEOUT_MS = 3_000;
/** Bound on each wait in the tests below. */
const WAIT_MS = 20_000;

const adapter = runtime === "deno" ? "deno_quic" : "bun_quic";

/** Only the current runtime's adapter is loaded: the other one cannot load here. */
async function factoryFor(options: { maxUnreadBytes?: number } = {}): Promise<TransportFactory> {
  if (runtime === "deno") {
    const { denoQuic } = await import("../../transport/deno_quic.ts");
    return denoQuic({ handshakeTimeoutMs: HANDSHAKE_TIMEOUT_MS });
  }
  const { bunQuic } = await import("../../transport/bun_quic.ts");
  return bunQuic({ handshakeTimeoutMs: HANDSHAKE_TIMEOUT_MS, ...options });
}

const factory = await factoryFor();

/** A loopback UDP port nobody listens on (bound, read, released). */
async function freeUdpPort(host: string): Promise<number> {
  const socket = createSocket(host.includes(":") ? "udp6" : "udp4");
  try {
    await new Promise<void>((resolve, reject) => {
      socket.once("error", reject);
      socket.bind(0, host, () => resolve());
    });
    return socket.address().port;
  } finally {
    await new Promise<void>((resolve) => socket.close(() => resolve()));
  }
}

const harness: TransportHarness = {
  name: adapter,
  make: async () => {
    const identity = await randomIdentity();
    return { transport: await factory({ identity }), identity };
  },
  listenAddress: { host: "127.0.0.1", port: 0 },
  closedAddress: async (): Promise<SocketAddress> => ({
    host: "127.0.0.1",
    port: await freeUdpPort("127.0.0.1"),
  }),
};

/**
 * Conformance cases the runtime's QUIC stack cannot meet, and why. Each has a
 * test below that pins down what the adapter does instead, so a runtime that
 * gains the feature fails that test and the case can come back.
 */
const UNMET: Record<"deno" | "bun", Record<string, string>> = {
  deno: {
    "a stream reset errors the peer's reads":
      "Deno's QUIC streams cannot send RESET_STREAM; abort and cancel only release them",
  },
  bun: {
    "backpressure stalls a fast writer against a paused reader":
      "Bun's node:quic grants flow-control credit as data arrives, not as it is read",
  },
};

const cases = transportConformanceCases();
for (const c of cases) {
  if (UNMET[runtime][c.name] !== undefined) continue;
  test(`${harness.name}: ${c.name}`, () => c.run(harness));
}

test(`${adapter}: every case it leaves out is still in the conformance suite`, () => {
  for (const name of Object.keys(UNMET[runtime])) {
    assert(cases.some((c) => c.name === name), `no conformance case named "${name}"`);
  }
});

// ---- adapter-specific checks ---------------------------------------------------------------

async function within<T>(promise: Promise<T>, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`Timed out waiting for ${what}`)), WAIT_MS);
  });
  try {
    return await Promise.race([promise, expired]);
  } finally {
    clearTimeout(timer);
  }
}

interface Pair {
  a: Transport;
  b: Transport;
  bIdentity: TlsIdentity;
  listener: Listener;
  ab: Connection;
  ba: Connection;
}

/** `b` listens on `host`, `a` dials it; `body` runs, then everything is closed. */
async function withPair(
  host: string,
  body: (pair: Pair) => Promise<void>,
  make: TransportFactory = factory,
): Promise<void> {
  const aIdentity = await randomIdentity();
  const bIdentity = await randomIdentity();
  const a = await make({ identity: aIdentity });
  const b = await make({ identity: bIdentity });
  try {
    const listener = await b.listen({ host, port: 0 });
    const [ab, accepted] = await within(
      Promise.all([
        a.dial({
          address: listener.address,
          certificateHash: bIdentity.certificateHash,
          serverName: bIdentity.serverName,
        }),
        listener.connections()[Symbol.asyncIterator]().next(),
      ]),
      "dial and accept",
    );
    assert(accepted.done !== true, "the listener ended instead of accepting");
    await body({ a, b, bIdentity, listener, ab, ba: accepted.value });
  } finally {
    await a.close();
    await b.close();
  }
}

async function write(conn: Connection, bytes: Uint8Array) {
  const stream = await conn.openStream();
  const writer = stream.writable.getWriter();
  await writer.write(bytes);
  writer.releaseLock();
  return stream;
}

async function nextStream(conn: Connection) {
  const next = await within(conn.incomingStreams()[Symbol.asyncIterator]().next(), "a stream");
  assert(next.done !== true, "incoming streams ended");
  return next.value;
}

test(`${adapter}: the dialer knows the pinned certificate's hash, the acceptor none`, () =>
  withPair("127.0.0.1", ({ ab, ba, bIdentity }) => {
    assertEquals(ab.remoteCertificateHash, bIdentity.certificateHash);
    // Dialers present no client certificate (Deno cannot), so there is nothing to hash.
    assertEquals(ba.remoteCertificateHash, undefined);
    assertEquals(ab.remoteAddress.host, "127.0.0.1");
    assertEquals(ba.remoteAddress.host, "127.0.0.1");
    return Promise.resolve();
  }));

test(`${adapter}: dials and accepts over IPv6 loopback`, () =>
  withPair("::1", async ({ ab, ba, listener }) => {
    assertEquals(listener.address.host, "::1");
    assertEquals(ab.remoteAddress, listener.address);
    const stream = await write(ab, new Uint8Array([6]));
    const reader = (await nextStream(ba)).readable.getReader();
    assertEquals((await within(reader.read(), "a byte")).value, new Uint8Array([6]));
    reader.releaseLock();
    await stream.writable.close();
  }));

test(`${adapter}: dial failures say what failed`, async () => {
  const identity = await randomIdentity();
  const transport = await factory({ identity });
  try {
    const port = await freeUdpPort("127.0.0.1");
    await assertRejects(
      () =>
        transport.dial({
          address: { host: "127.0.0.1", port },
          certificateHash: identity.certificateHash,
          serverName: identity.serverName,
        }),
      Error,
      `Cannot dial 127.0.0.1:${port}: no QUIC handshake within ${HANDSHAKE_TIMEOUT_MS} ms`,
    );
    const listener = await transport.listen({ host: "127.0.0.1", port: 0 });
    const stranger = await randomIdentity();
    const err = await assertRejects(
      () =>
        transport.dial({
          address: listener.address,
          certificateHash: stranger.certificateHash,
          serverName: identity.serverName,
        }),
      Error,
      `Cannot dial 127.0.0.1:${listener.address.port}:`,
    );
    // Deno's TLS stack names the failure; bun_quic compares the hash itself.
    assert(
      /UnknownIssuer|does not match the pinned certificate/.test(err.message),
      `unexpected message: ${err.message}`,
    );
  } finally {
    await transport.close();
  }
});

test(`defaultTransport picks ${adapter} on ${runtime}`, async () => {
  const transport = await (await defaultTransport())({ identity: await randomIdentity() });
  try {
    assertEquals(transport.name, adapter);
    assertEquals(transport.family, "quic");
  } finally {
    await transport.close();
  }
});

if (runtime === "deno") {
  test("deno_quic: a reset ends the peer's stream cleanly and errors ours (no RESET_STREAM in Deno)", () =>
    withPair("127.0.0.1", async ({ ab, ba }) => {
      const stream = await write(ab, new Uint8Array([1, 2, 3]));
      const reader = (await nextStream(ba)).readable.getReader();
      assertEquals((await within(reader.read(), "3 bytes")).value, new Uint8Array([1, 2, 3]));
      stream.reset(400);
      const end = await within(reader.read(), "the end of the stream");
      assertEquals(end.done, true, "the peer sees the end of the stream, not an error");
      await assertRejects(() => stream.readable.getReader().read(), Error, "reset with code 400");
      await assertRejects(() => stream.writable.getWriter().write(new Uint8Array([4])), Error);
      // The connection is still usable.
      const again = await write(ab, new Uint8Array([9]));
      const next = (await nextStream(ba)).readable.getReader();
      assertEquals(
        (await within(next.read(), "a byte on a new stream")).value,
        new Uint8Array([9]),
      );
      next.releaseLock();
      await again.writable.close();
    }));
}

if (runtime === "bun") {
  test("bun_quic: a stream whose reader falls maxUnreadBytes behind is reset, the connection lives on", async () => {
    const limit = 1024 * 1024;
    await withPair("127.0.0.1", async ({ ab, ba }) => {
      const stream = await write(ab, new Uint8Array(1));
      const peer = await nextStream(ba);
      const writer = stream.writable.getWriter();
      const chunk = new Uint8Array(64 * 1024);
      let written = 0;
      // The reader reads nothing: the writer goes on until the reset stops it.
      const stopped = await within(
        (async () => {
          for (;;) {
            try {
              await writer.ready;
            } catch (err) {
              return err;
            }
            writer.write(chunk).catch(() => {});
            written += chunk.byteLength;
          }
        })(),
        "the reset to stop the writer",
      );
      assert(stopped instanceof Error, "the writer fails");
      assert(written > limit, `the writer was stopped after ${written} bytes, below the limit`);
      await assertRejects(() => peer.readable.getReader().read(), Error, "received and not read");
      // The connection is still usable.
      const again = await write(ab, new Uint8Array([9]));
      const next = (await nextStream(ba)).readable.getReader();
      assertEquals(
        (await within(next.read(), "a byte on a new stream")).value,
        new Uint8Array([9]),
      );
      next.releaseLock();
      await again.writable.close();
    }, await factoryFor({ maxUnreadBytes: limit }));
  });
}
