// The memory transport: the conformance suite, then what only a MemoryNetwork does (latency, loss, partitions, determinism).

import {
  MEMORY_HOST,
  MemoryNetwork,
  type MemoryNetworkOptions,
  type MemoryNetworkStats,
} from "../../transport/memory.ts";
import { FramedStream } from "../../transport/framed.ts";
import type {
  Connection,
  DialTarget,
  Listener,
  TlsIdentity,
  Transport,
} from "../../transport/types.ts";
import { peerIdHexFromServerName } from "../../transport/cert.ts";
import { assert, assertEquals, assertRejects, assertThrows } from "../assert.ts";
import { test } from "../harness.ts";
import {
  randomIdentity,
  runTransportConformance,
  type TransportHarness,
} from "../conformance/transport.ts";

function memoryHarness(name: string, options: MemoryNetworkOptions, scale = 1): TransportHarness {
  const net = new MemoryNetwork(options);
  const factory = net.transport();
  return {
    name,
    make: async () => {
      const identity = await randomIdentity();
      return { transport: await factory({ identity }), identity };
    },
    listenAddress: { host: MEMORY_HOST, port: 0 },
    // Ports are handed out from 40000 up, so port 1 is never bound by the suite.
    closedAddress: () => Promise.resolve({ host: MEMORY_HOST, port: 1 }),
    scale,
    waitTimeoutMs: 10_000,
  };
}

runTransportConformance(memoryHarness("memory", {}));
runTransportConformance(
  memoryHarness("memory (latency, jitter, loss)", {
    latencyMs: 1,
    jitterMs: 2,
    lossRate: 0.05,
    seed: 11,
  }, 0.25),
);

// ---------------------------------------------------------------------------
// Helpers

interface Node {
  readonly transport: Transport;
  readonly identity: TlsIdentity;
  readonly hex: string;
  readonly listener: Listener;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function until(cond: () => boolean, what: string, ms = 5_000): Promise<void> {
  const end = performance.now() + ms;
  while (!cond()) {
    if (performance.now() > end) throw new Error(`Timed out waiting for ${what}`);
    await sleep(2);
  }
}

/** Tracks a promise's settlement without awaiting it. */
function watch<T>(p: Promise<T>): { readonly settled: boolean; readonly promise: Promise<T> } {
  const state = { settled: false, promise: p };
  p.then(() => state.settled = true, () => state.settled = true);
  return state;
}

async function node(net: MemoryNetwork): Promise<Node> {
  const identity = await randomIdentity();
  const transport = await net.transport()({ identity });
  const listener = await transport.listen({ host: MEMORY_HOST, port: 0 });
  return { transport, identity, hex: peerIdHexFromServerName(identity.serverName)!, listener };
}

function target(to: Node): DialTarget {
  return {
    address: to.listener.address,
    certificateHash: to.identity.certificateHash,
    serverName: to.identity.serverName,
  };
}

/** `from` dials `to`; returns both ends. */
async function link(from: Node, to: Node): Promise<[Connection, Connection]> {
  const accepted = to.listener.connections()[Symbol.asyncIterator]();
  const [conn, next] = await Promise.all([from.transport.dial(target(to)), accepted.next()]);
  assert(next.done !== true);
  return [conn, next.value];
}

async function nextStream(conn: Connection) {
  const next = await conn.incomingStreams()[Symbol.asyncIterator]().next();
  assert(next.done !== true, "incoming streams ended");
  return next.value;
}

/** Runs `body` on a fresh network of `count` nodes, closing the network afterwards. */
async function withNet(
  options: MemoryNetworkOptions,
  count: number,
  body: (net: MemoryNetwork, nodes: Node[]) => void | Promise<void>,
): Promise<void> {
  await using net = new MemoryNetwork(options);
  const nodes: Node[] = [];
  for (let i = 0; i < count; i++) nodes.push(await node(net));
  await body(net, nodes);
}

// ---------------------------------------------------------------------------
// MemoryNetwork

test("MemoryNetwork rejects nonsense options", () => {
  assertThrows(() => new MemoryNetwork({ latencyMs: -1 }), RangeError, "latencyMs");
  assertThrows(() => new MemoryNetwork({ lossRate: 1 }), RangeError, "lossRate");
  assertThrows(() => new MemoryNetwork({ streamWindow: 0 }), RangeError, "streamWindow");
  assertThrows(() => new MemoryNetwork({ idleTimeoutMs: 0 }), RangeError, "idleTimeoutMs");
  assertThrows(() => new MemoryNetwork({ jitterMs: Number.NaN }), RangeError, "jitterMs");
});

test("listen picks free ports, refuses a port in use, and frees ports on close", async () => {
  await withNet({}, 2, async (_net, [a, b]) => {
    assertEquals(a!.listener.address.host, MEMORY_HOST);
    assert(a!.listener.address.port !== b!.listener.address.port, "ports are unique");
    const port = a!.listener.address.port;
    await assertRejects(() => b!.transport.listen({ host: MEMORY_HOST, port }), Error, "in use");
    await assertRejects(() => b!.transport.listen({ host: MEMORY_HOST, port: 70000 }), RangeError);
    await a!.transport.close();
    const again = await b!.transport.listen({ host: "0.0.0.0", port });
    assertEquals(again.address, { host: MEMORY_HOST, port });
  });
});

test("dials are refused for unbound ports and foreign hosts, and fail on a wrong server name", async () => {
  await withNet({}, 2, async (_net, [a, b]) => {
    const t = target(b!);
    await assertRejects(
      () => a!.transport.dial({ ...t, address: { host: MEMORY_HOST, port: 1 } }),
      Error,
      "connection refused",
    );
    await assertRejects(
      () => a!.transport.dial({ ...t, address: { host: "127.0.0.1", port: t.address.port } }),
      Error,
      "connection refused",
    );
    await assertRejects(
      () => a!.transport.dial({ ...t, serverName: "someone.else.mosaik" }),
      Error,
      "not valid for someone.else.mosaik",
    );
    const stranger = await randomIdentity();
    await assertRejects(
      () => a!.transport.dial({ ...t, certificateHash: stranger.certificateHash }),
      Error,
      "not the pinned certificate",
    );
  });
});

test("the accepting side sees the dialer's endpoint port and no certificate", async () => {
  await withNet({}, 2, async (_net, [a, b]) => {
    const [ab, ba] = await link(a!, b!);
    assertEquals(ab.remoteAddress, b!.listener.address);
    assertEquals(ab.remoteCertificateHash, b!.identity.certificateHash);
    assertEquals(ba.remoteAddress, a!.listener.address);
    assertEquals(ba.remoteCertificateHash, undefined);
  });
});

test("latency delays every packet by at least latencyMs", async () => {
  const latencyMs = 25;
  await withNet({ latencyMs }, 2, async (_net, [a, b]) => {
    const start = performance.now();
    const [ab, ba] = await link(a!, b!);
    assert(performance.now() - start >= 2 * latencyMs, "a dial takes a round trip");
    const stream = await ab.openStream();
    const writer = stream.writable.getWriter();
    const sent = performance.now();
    await writer.write(new Uint8Array([42]));
    const peer = await nextStream(ba);
    const { value } = await peer.readable.getReader().read();
    assertEquals(value, new Uint8Array([42]));
    assert(performance.now() - sent >= latencyMs, "a byte takes latencyMs to arrive");
  });
});

test("loss delays packets but never drops, reorders or corrupts stream bytes", async () => {
  await withNet({ latencyMs: 0, jitterMs: 1, lossRate: 0.3, seed: 3 }, 2, async (net, [a, b]) => {
    const [ab, ba] = await link(a!, b!);
    const streams = 4;
    const frames = 300;
    const send = Array.from({ length: streams }, async (_, s) => {
      const f = new FramedStream<[number, number, Uint8Array]>(await ab.openStream());
      for (let i = 0; i < frames; i++) await f.send([s, i, new Uint8Array(i * 7).fill(i & 0xff)]);
      await f.close();
    });
    const receive = (async () => {
      const seen = new Map<number, number>();
      let done = 0;
      const handlers: Promise<void>[] = [];
      for await (const stream of ba.incomingStreams()) {
        handlers.push((async () => {
          for await (
            const [s, i, bytes] of new FramedStream<[number, number, Uint8Array]>(stream)
          ) {
            assertEquals(i, seen.get(s) ?? 0, "frames of a stream arrive in order");
            assertEquals(bytes, new Uint8Array(i * 7).fill(i & 0xff));
            seen.set(s, i + 1);
          }
          done++;
        })());
        if (handlers.length === streams) break;
      }
      await Promise.all(handlers);
      assertEquals(done, streams);
      for (let s = 0; s < streams; s++) assertEquals(seen.get(s), frames);
    })();
    await Promise.all([...send, receive]);
    assert(net.stats().retransmissions > 0, "some packets were lost and retransmitted");
  });
});

test("the same seed gives the same delays; another seed does not", async () => {
  const run = async (seed: number) => {
    let stats: MemoryNetworkStats | undefined;
    await withNet({ jitterMs: 1, lossRate: 0.2, seed }, 2, async (net, [a, b]) => {
      const [ab, ba] = await link(a!, b!);
      const sender = new FramedStream<number>(await ab.openStream());
      const receiving = (async () => {
        const got: number[] = [];
        for await (const n of new FramedStream<number>(await nextStream(ba))) got.push(n);
        return got;
      })();
      for (let i = 0; i < 200; i++) await sender.send(i);
      await sender.close();
      assertEquals((await receiving).length, 200);
      ab.close();
      await ba.closed;
      stats = net.stats();
    });
    return stats!;
  };
  const first = await run(7);
  assertEquals(await run(7), first);
  assert(first.addedDelayMs > 0 && first.retransmissions > 0);
  assert((await run(8)).addedDelayMs !== first.addedDelayMs, "a different seed draws differently");
});

test("a partition holds traffic and heal() delivers it in order", async () => {
  await withNet({ latencyMs: 1 }, 2, async (net, [a, b]) => {
    const [ab, ba] = await link(a!, b!);
    const sender = new FramedStream<number>(await ab.openStream());
    await sender.send(-1);
    const receiver = new FramedStream<number>(await nextStream(ba));
    assertEquals(await receiver.receive(), -1);
    net.partition([a!.hex], [b!.hex]);
    assert(!net.reachable(a!.hex, b!.hex) && !net.reachable(b!.hex, a!.hex));
    const first = watch(receiver.receive());
    for (let i = 0; i < 50; i++) await sender.send(i);
    await until(() => net.stats().held >= 50, "packets to be held");
    assert(!first.settled, "nothing crosses a partition");
    net.heal();
    assertEquals(await first.promise, 0);
    for (let i = 1; i < 50; i++) assertEquals(await receiver.receive(), i);
    const [back] = await Promise.all([
      (async () => {
        const s = await ba.openStream();
        const w = s.writable.getWriter();
        await w.write(new Uint8Array([5]));
        return (await s.readable.getReader().read()).done;
      })(),
      (async () => {
        const s = await nextStream(ab);
        await s.readable.getReader().read();
        await s.writable.close();
      })(),
    ]);
    assertEquals(back, true, "the healed connection carries new streams");
  });
});

test("a dial across a partition waits for heal()", async () => {
  await withNet({ latencyMs: 1 }, 2, async (net, [a, b]) => {
    net.partition([a!.hex], [b!.hex]);
    const accepted = b!.listener.connections()[Symbol.asyncIterator]();
    const packets = net.stats().packets;
    const dial = watch(a!.transport.dial(target(b!)));
    await until(() => net.stats().packets > packets, "the handshake to be sent");
    await sleep(20);
    assert(!dial.settled, "the handshake cannot cross the partition");
    net.heal();
    const conn = await dial.promise;
    const next = await accepted.next();
    assert(next.done !== true);
    conn.close(7, "done");
    assertEquals((await next.value.closed).code, 7);
  });
});

test("a cut-off connection closes after idleTimeoutMs, and a dial gives up", async () => {
  await withNet({ latencyMs: 1, idleTimeoutMs: 40 }, 3, async (net, [a, b, c]) => {
    const [ab, ba] = await link(a!, b!);
    const [ac, ca] = await link(a!, c!);
    net.partition([a!.hex], [b!.hex]);
    const idle = { code: 0, reason: "idle timeout", remote: true };
    assertEquals(await ab.closed, idle);
    assertEquals(await ba.closed, idle);
    await assertRejects(() => a!.transport.dial(target(b!)), Error, "timed out");
    assert(!net.reachable(a!.hex, b!.hex) && net.reachable(a!.hex, c!.hex));
    ac.close(3, "still connected");
    assertEquals((await ca.closed).reason, "still connected");
  });
});

test("an abort signal cancels a dial waiting for a route", async () => {
  await withNet({ idleTimeoutMs: Infinity }, 2, async (net, [a, b]) => {
    net.isolate(b!.hex);
    const controller = new AbortController();
    const dial = a!.transport.dial(target(b!), { signal: controller.signal });
    await sleep(5);
    const reason = new Error("gave up");
    controller.abort(reason);
    const err = await assertRejects(() => dial);
    assert(err === reason);
  });
}, { timeout: 5_000 });

test("isolate() cuts a node off from everyone and takes PeerId-like values", async () => {
  await withNet({}, 3, (net, [a, b, c]) => {
    const peerA = { toHex: () => a!.hex };
    net.isolate(peerA);
    assert(!net.reachable(a!.hex, b!.hex) && !net.reachable(c!.hex, peerA));
    assert(net.reachable(b!.hex, c!.hex) && net.reachable(peerA, a!.hex));
    net.partition([b!.hex], [c!.hex.toUpperCase()]);
    assert(!net.reachable(b!.hex, c!.hex));
    net.heal();
    assert(net.reachable(a!.hex, b!.hex) && net.reachable(b!.hex, c!.hex));
  });
});

test("a paused reader bounds the buffered bytes by the stream window", async () => {
  const streamWindow = 64 * 1024;
  await withNet({ streamWindow, latencyMs: 1 }, 2, async (net, [a, b]) => {
    const [ab, ba] = await link(a!, b!);
    const stream = await ab.openStream();
    const writer = stream.writable.getWriter();
    const chunk = new Uint8Array(10_000).fill(1);
    let written = 0;
    let stop = false;
    const writing = (async () => {
      while (!stop) {
        await writer.ready;
        if (stop) break;
        writer.write(chunk).catch(() => {});
        written += chunk.byteLength;
      }
    })();
    const peer = await nextStream(ba);
    await until(
      () => net.stats().bufferedBytes >= streamWindow - chunk.byteLength,
      "the window to fill",
    );
    const stalledAt = written;
    await sleep(20);
    assertEquals(written, stalledAt, "the writer is blocked");
    assert(
      net.stats().bufferedBytes <= streamWindow,
      `${net.stats().bufferedBytes} bytes buffered`,
    );
    stop = true;
    const reader = peer.readable.getReader();
    let read = 0;
    const reading = (async () => {
      for (;;) {
        const r = await reader.read();
        if (r.done) return;
        read += r.value.byteLength;
      }
    })();
    await writing;
    await writer.close();
    await reading;
    assertEquals(read, written);
    assertEquals(net.stats().bufferedBytes, 0, "nothing stays buffered");
  });
});

test("cancelling a readable stops the peer's writer", async () => {
  await withNet({ latencyMs: 1 }, 2, async (_net, [a, b]) => {
    const [ab, ba] = await link(a!, b!);
    const stream = await ab.openStream();
    const writer = stream.writable.getWriter();
    await writer.write(new Uint8Array([1]));
    const peer = await nextStream(ba);
    await peer.readable.cancel();
    await assertRejects(() => writer.closed, Error, "stopped by the peer");
  });
});

test("closing the network closes its transports and later factories throw", async () => {
  const net = new MemoryNetwork({ latencyMs: 5, jitterMs: 5, idleTimeoutMs: 60_000 });
  const a = await node(net);
  const b = await node(net);
  const [ab, ba] = await link(a, b);
  const stream = await ab.openStream();
  void stream.writable.getWriter().write(new Uint8Array(100_000)).catch(() => {});
  net.partition([a.hex], [b.hex]);
  await net.close();
  await net.close();
  assertEquals((await ab.closed).remote, false);
  assertEquals((await ba.closed).remote, false);
  assertThrows(() => net.transport()({ identity: a.identity }), Error, "closed");
  await assertRejects(() => a.transport.listen({ host: MEMORY_HOST, port: 0 }), Error, "closed");
});

test("traffic towards a closed end leaves nothing scheduled", async () => {
  await withNet({ latencyMs: 50 }, 2, async (_net, [a, b]) => {
    const [ab, ba] = await link(a!, b!);
    const stream = await ba.openStream();
    ab.close(5, "leaving");
    // b has not heard of the close yet: it keeps sending to an end that takes nothing.
    const writer = stream.writable.getWriter();
    await writer.write(new Uint8Array(1000));
    stream.reset(1);
    ba.close();
    assertEquals((await ab.closed).code, 5);
    // Returning now, with no timer left, is what Deno's sanitizers check here.
  });
});
