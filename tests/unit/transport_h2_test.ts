// The webtransport_h2 adapter: the conformance suite, then pinning, timeouts, stream limits, and traffic past the library's 16 KiB and 100-stream limits.

import { createHash } from "node:crypto";
import http2 from "node:http2";
import net from "node:net";
import tls from "node:tls";
import { test } from "../harness.ts";
import { assert, assertEquals, assertRejects, assertThrows } from "../assert.ts";
import { webTransportH2, type WebTransportH2Options } from "../../transport/webtransport_h2.ts";
import type {
  Connection,
  DialTarget,
  Listener,
  SocketAddress,
  Stream,
  TlsIdentity,
  Transport,
} from "../../transport/types.ts";
import { CloseCode } from "../../transport/types.ts";
import { randomIdentity, runTransportConformance } from "../conformance/transport.ts";

const MiB = 1024 * 1024;
const LOOPBACK: SocketAddress = { host: "127.0.0.1", port: 0 };

/** A listening node and a dialing node, closed by `close()`. */
interface Pair {
  server: Transport;
  client: Transport;
  serverIdentity: TlsIdentity;
  listener: Listener;
  target: DialTarget;
  close(): Promise<void>;
}

async function pair(options: WebTransportH2Options = {}): Promise<Pair> {
  const serverIdentity = await randomIdentity();
  const server = await webTransportH2(options)({ identity: serverIdentity });
  const client = await webTransportH2(options)({ identity: await randomIdentity() });
  const listener = await server.listen(LOOPBACK).catch(async (err) => {
    await Promise.all([client.close(), server.close()]);
    throw err;
  });
  return {
    server,
    client,
    serverIdentity,
    listener,
    target: {
      address: listener.address,
      certificateHash: serverIdentity.certificateHash,
      serverName: serverIdentity.serverName,
    },
    close: async () => {
      await client.close();
      await server.close();
    },
  };
}

/** Dials and accepts one connection: [dialer's side, listener's side]. */
async function connect(p: Pair): Promise<[Connection, Connection]> {
  const accepted = p.listener.connections()[Symbol.asyncIterator]().next();
  const dialled = await p.client.dial(p.target);
  const next = await accepted;
  assert(!next.done, "listener accepted the connection");
  return [dialled, next.value];
}

async function nextStream(conn: Connection): Promise<Stream> {
  const next = await conn.incomingStreams()[Symbol.asyncIterator]().next();
  assert(!next.done, "a stream arrived");
  return next.value;
}

async function readAll(readable: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of readable) {
    parts.push(chunk);
    size += chunk.byteLength;
  }
  const out = new Uint8Array(size);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.byteLength;
  }
  return out;
}

/**
 * Test data: pseudo-random bytes repeating with a prime period, so chunks cut
 * anywhere differ and a lost, repeated or reordered chunk changes the digest.
 */
const PERIOD = 65_521;
const MAX_CHUNK = 256 * 1024;
const TABLE = (() => {
  const t = new Uint8Array(PERIOD + MAX_CHUNK);
  let x = 0x9e3779b9;
  for (let i = 0; i < PERIOD; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    t[i] = x & 0xff;
  }
  t.copyWithin(PERIOD, 0, MAX_CHUNK);
  return t;
})();

/** Writes `total` bytes of test data in chunks of `chunk` bytes, then closes; returns its SHA-256. */
async function writeData(
  writable: WritableStream<Uint8Array>,
  total: number,
  chunk: number,
): Promise<string> {
  const hash = createHash("sha256");
  const writer = writable.getWriter();
  for (let at = 0; at < total; at += chunk) {
    const start = at % PERIOD;
    // A copy: the transport may hold a written chunk until it is sent.
    const bytes = TABLE.slice(start, start + Math.min(chunk, total - at));
    hash.update(bytes);
    await writer.write(bytes);
  }
  await writer.close();
  return hash.digest("hex");
}

/** Reads the stream to its end: byte count and SHA-256. */
async function readData(readable: ReadableStream<Uint8Array>): Promise<[number, string]> {
  const hash = createHash("sha256");
  let size = 0;
  for await (const chunk of readable) {
    hash.update(chunk);
    size += chunk.byteLength;
  }
  return [size, hash.digest("hex")];
}

/** A TCP server that accepts and then says nothing; `accepted` resolves at the first connection. */
async function silentServer(): Promise<
  { address: SocketAddress; accepted: Promise<void>; close(): Promise<void> }
> {
  const sockets = new Set<net.Socket>();
  let onAccept: () => void = () => {};
  const accepted = new Promise<void>((resolve) => (onAccept = resolve));
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on("error", () => {});
    socket.on("close", () => sockets.delete(socket));
    onAccept();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    address: { host: "127.0.0.1", port },
    accepted,
    close: async () => {
      const closing = [...sockets].map((s) =>
        new Promise<void>((resolve) => {
          s.once("close", () => resolve());
          s.destroy();
        })
      );
      await Promise.all([
        ...closing,
        new Promise<void>((resolve) => server.close(() => resolve())),
      ]);
    },
  };
}

/** A port nothing listens on: bound once, then released. */
async function closedPort(): Promise<SocketAddress> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return { host: "127.0.0.1", port };
}

runTransportConformance({
  name: "webtransport_h2",
  make: async () => {
    const identity = await randomIdentity();
    return { transport: await webTransportH2()({ identity }), identity };
  },
  listenAddress: LOOPBACK,
  closedAddress: closedPort,
  // Unread bytes stay within one connection's flow-control window (15 MiB), not the suite's 64.
  maxBufferedBytes: 16 * MiB,
});

// ---------------------------------------------------------------------------
// What only this adapter does

test("webtransport_h2: names its family h2 and checks its options", async () => {
  const t = await webTransportH2()({ identity: await randomIdentity() });
  try {
    assertEquals(t.name, "webtransport_h2");
    assertEquals(t.family, "h2");
  } finally {
    await t.close();
  }
  assertThrows(() => webTransportH2({ maxStreams: 0 }), RangeError);
  assertThrows(() => webTransportH2({ sessionWindow: 1024 }), RangeError);
  assertThrows(() => webTransportH2({ streamWindow: 1.5 }), RangeError);
});

test("webtransport_h2: a dial expecting another certificate fails and delivers nothing", async () => {
  const p = await pair();
  try {
    const other = await randomIdentity();
    await assertRejects(
      () => p.client.dial({ ...p.target, certificateHash: other.certificateHash }),
      Error,
      "does not match the pinned hash",
    );
    await p.listener.close();
    for await (const _ of p.listener.connections()) throw new Error("nothing was accepted");
  } finally {
    await p.close();
  }
});

test("webtransport_h2: a dial honours its AbortSignal before and during the TLS handshake", async () => {
  const t = await webTransportH2()({ identity: await randomIdentity() });
  const silent = await silentServer();
  try {
    const other = await randomIdentity();
    const target = {
      address: silent.address,
      certificateHash: other.certificateHash,
      serverName: other.serverName,
    };
    const early = new AbortController();
    early.abort(new Error("stop early"));
    await assertRejects(() => t.dial(target, { signal: early.signal }), Error, "stop early");

    const late = new AbortController();
    const dialling = t.dial(target, { signal: late.signal });
    await silent.accepted; // TCP is up, TLS never completes
    late.abort(new Error("stop late"));
    await assertRejects(() => dialling, Error, "stop late");
  } finally {
    await silent.close();
    await t.close();
  }
});

test("webtransport_h2: a dial to a server that never answers times out", async () => {
  const t = await webTransportH2({ dialTimeout: 300 })({ identity: await randomIdentity() });
  const silent = await silentServer();
  try {
    const other = await randomIdentity();
    await assertRejects(
      () =>
        t.dial({
          address: silent.address,
          certificateHash: other.certificateHash,
          serverName: other.serverName,
        }),
      Error,
      "timed out",
    );
  } finally {
    await silent.close();
    await t.close();
  }
});

test("webtransport_h2: a TCP peer that never opens a session is cut after handshakeTimeout", async () => {
  const p = await pair({ handshakeTimeout: 200 });
  try {
    const socket = tls.connect({
      host: "127.0.0.1",
      port: p.listener.address.port,
      servername: p.serverIdentity.serverName,
      rejectUnauthorized: false,
      ALPNProtocols: ["h2"],
    });
    socket.on("error", () => {});
    socket.resume(); // a paused socket would not notice the server hanging up
    await new Promise<void>((resolve) => socket.once("close", () => resolve()));
  } finally {
    await p.close();
  }
});

test("webtransport_h2: a peer sending on a stream id that is ours to open is a protocol violation, not a crash", async () => {
  // A peer that never answers the close: no need to wait the default 2 s for it.
  const p = await pair({ closeTimeout: 100 });
  const h2 = http2.connect(`https://127.0.0.1:${p.listener.address.port}`, {
    servername: p.serverIdentity.serverName,
    rejectUnauthorized: false,
    settings: { enableConnectProtocol: true },
  });
  h2.on("error", () => {});
  const h2Closed = new Promise<void>((resolve) => h2.once("close", () => resolve()));
  try {
    const accepted = p.listener.connections()[Symbol.asyncIterator]().next();
    await new Promise<void>((resolve) => h2.once("remoteSettings", () => resolve()));
    // A WebTransport-over-HTTP/2 client by hand, on the adapter's session path.
    const connect = h2.request({
      ":method": "CONNECT",
      ":protocol": "webtransport",
      ":scheme": "https",
      ":path": "/mosaik/1",
    });
    connect.on("error", () => {});
    const next = await accepted;
    assert(!next.done);
    // WT_STREAM capsule (type 0x190b4d3b, length 4) on stream 0, an id only the server opens.
    connect.write(new Uint8Array([0x99, 0x0b, 0x4d, 0x3b, 0x04, 0x00, 1, 2, 3]));
    const closed = await next.value.closed;
    assertEquals(closed.code, CloseCode.ProtocolViolation);
    assertEquals(closed.remote, false);
    assert(closed.reason.includes("ours to open"), closed.reason);
  } finally {
    h2.destroy();
    await h2Closed;
    await p.close();
  }
});

test("webtransport_h2: reset fails both directions at the peer", async () => {
  const p = await pair();
  try {
    const [a, b] = await connect(p);
    const s = await a.openStream();
    const w = s.writable.getWriter();
    await w.write(new Uint8Array([1, 2, 3]));
    const peer = await nextStream(b);
    const reader = peer.readable.getReader();
    assertEquals((await reader.read()).value, new Uint8Array([1, 2, 3]));
    s.reset(CloseCode.ProtocolViolation);
    s.reset(CloseCode.ProtocolViolation);
    await assertRejects(() => reader.read());
    await assertRejects(() => w.write(new Uint8Array([4])));
    const pw = peer.writable.getWriter();
    // The peer's STOP_SENDING reaches the writer: some write (or close) fails.
    await assertRejects(async () => {
      for (;;) await pw.write(new Uint8Array(1024));
    });
    // The connection lives on.
    const again = await a.openStream();
    const aw = again.writable.getWriter();
    await aw.write(new Uint8Array([9]));
    await aw.close();
    assertEquals(await readAll((await nextStream(b)).readable), new Uint8Array([9]));
  } finally {
    await p.close();
  }
});

test("webtransport_h2: streams fail and incoming streams end when the peer's transport closes", async () => {
  const p = await pair();
  try {
    const [a, b] = await connect(p);
    const s = await a.openStream();
    const w = s.writable.getWriter();
    await w.write(new Uint8Array([1]));
    const peer = await nextStream(b);
    await p.server.close();
    assertEquals(await a.closed, { code: 0, reason: "Transport closed", remote: true });
    await assertRejects(async () => {
      for (;;) await w.write(new Uint8Array(1024));
    });
    await assertRejects(() => readAll(s.readable));
    assertEquals((await b.closed).remote, false);
    await assertRejects(() => readAll(peer.readable));
    await assertRejects(() => a.openStream(), Error, "closed");
    await assertRejects(() => p.server.listen(LOOPBACK), Error, "closed");
    await assertRejects(() => p.server.dial(p.target), Error, "closed");
  } finally {
    await p.close();
  }
});

test(
  "webtransport_h2: moves 64 MiB each way over one connection (the library stalls at 16 KiB by default)",
  async () => {
    const p = await pair();
    try {
      const [a, b] = await connect(p);
      const total = 64 * MiB;
      const s = await a.openStream();
      const upload = writeData(s.writable, total, MAX_CHUNK);
      const peer = await nextStream(b);
      const download = writeData(peer.writable, total, 192 * 1024 + 7);
      const [up, down] = await Promise.all([readData(peer.readable), readData(s.readable)]);
      assertEquals(up, [total, await upload]);
      assertEquals(down, [total, await download]);
    } finally {
      await p.close();
    }
  },
  { timeout: 60_000 },
);

test(
  "webtransport_h2: opens 1 200 streams from each side over one connection (the library stops at 100)",
  async () => {
    // The library's own default limit: it holds only because ended streams give their credit back.
    const p = await pair({ maxStreams: 100 });
    try {
      const [a, b] = await connect(p);
      const count = 1200;
      const echo = async (conn: Connection) => {
        let served = 0;
        for await (const s of conn.incomingStreams()) {
          const data = await readAll(s.readable);
          const w = s.writable.getWriter();
          await w.write(data);
          await w.close();
          if (++served === count) return served;
        }
        return served;
      };
      const ask = async (conn: Connection, i: number) => {
        const s = await conn.openStream();
        const w = s.writable.getWriter();
        const body = new TextEncoder().encode(`stream ${i}`);
        await w.write(body);
        await w.close();
        assertEquals(await readAll(s.readable), body);
      };
      const served = Promise.all([echo(b), echo(a)]);
      // More at once than the limit: the surplus waits for credit.
      for (let i = 0; i < count; i += 150) {
        await Promise.all(
          Array.from({ length: 150 }, (_, k) => [ask(a, i + k), ask(b, i + k)]).flat(),
        );
      }
      assertEquals(await served, [count, count]);
    } finally {
      await p.close();
    }
  },
  { timeout: 60_000 },
);

test("webtransport_h2: openStream waits at maxStreams until one of the streams has ended", async () => {
  const p = await pair({ maxStreams: 2 });
  try {
    const [a, b] = await connect(p);
    const first = await a.openStream();
    const second = await a.openStream();
    let ended = false;
    const third = a.openStream().then((s) => {
      assert(ended, "the third stream opened only after the first ended");
      return s;
    });
    const w1 = first.writable.getWriter();
    await w1.write(new Uint8Array([1]));
    const peer1 = await nextStream(b);
    ended = true;
    await w1.close();
    assertEquals(await readAll(peer1.readable), new Uint8Array([1]));
    await peer1.writable.close();
    assertEquals((await readAll(first.readable)).byteLength, 0);
    const w3 = (await third).writable.getWriter();
    // The second stream still works, and the third reaches the peer after it.
    const w2 = second.writable.getWriter();
    await w2.write(new Uint8Array([2]));
    await w3.write(new Uint8Array([3]));
    await w2.close();
    await w3.close();
    assertEquals(await readAll((await nextStream(b)).readable), new Uint8Array([2]));
    assertEquals(await readAll((await nextStream(b)).readable), new Uint8Array([3]));
  } finally {
    await p.close();
  }
});

test("webtransport_h2: transport.close ends listeners, connections and pending dials; it is idempotent", async () => {
  const p = await pair();
  const silent = await silentServer();
  try {
    const [a, b] = await connect(p);
    const other = await randomIdentity();
    const pending = p.client.dial({
      address: silent.address,
      certificateHash: other.certificateHash,
      serverName: other.serverName,
    });
    pending.catch(() => {}); // asserted below, after it fails
    await silent.accepted;
    const listening = p.listener.connections()[Symbol.asyncIterator]().next();
    await Promise.all([p.client.close(), p.client.close()]);
    await assertRejects(() => pending, Error, "closed");
    assertEquals(await a.closed, { code: 0, reason: "Transport closed", remote: false });
    assertEquals(await b.closed, { code: 0, reason: "Transport closed", remote: true });
    await p.server.close();
    assertEquals((await listening).done, true);
  } finally {
    await silent.close();
    await p.close();
  }
});

test("webtransport_h2: works over IPv6 loopback", async () => {
  const serverIdentity = await randomIdentity();
  const server = await webTransportH2()({ identity: serverIdentity });
  const client = await webTransportH2()({ identity: await randomIdentity() });
  try {
    let listener: Listener;
    try {
      listener = await server.listen({ host: "::1", port: 0 });
    } catch (err) {
      // A host without IPv6 (some containers): nothing to check here.
      if (/EADDRNOTAVAIL|EAFNOSUPPORT/.test(String((err as Error).cause ?? err))) return;
      throw err;
    }
    assertEquals(listener.address.host, "::1");
    const accepted = listener.connections()[Symbol.asyncIterator]().next();
    const conn = await client.dial({
      address: listener.address,
      certificateHash: serverIdentity.certificateHash,
      serverName: serverIdentity.serverName,
    });
    const next = await accepted;
    assert(!next.done);
    assertEquals(next.value.remoteAddress.host, "::1");
    conn.close();
    assertEquals(await next.value.closed, { code: 0, reason: "", remote: true });
  } finally {
    await client.close();
    await server.close();
  }
});
