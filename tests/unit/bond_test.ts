// Tests for bonds over MemoryNetwork: handshake outcomes and codes, message flow, heartbeats, departure, bad frames.

import { test } from "../harness.ts";
import { assert, assertEquals } from "../assert.ts";
import {
  acceptBond,
  type AcceptBondOptions,
  type Bond,
  type BondClose,
  BondError,
  type BondTimings,
  channelOf,
  openBond,
  type OpenBondOptions,
} from "../../lib/groups/bond/bond.ts";
import { checkAck, makeHello } from "../../lib/groups/bond/handshake.ts";
import type { GroupMessage } from "../../lib/groups/driver.ts";
import { GroupKey } from "../../lib/groups/key.ts";
import { Identity } from "../../lib/network/identity.ts";
import { Digest } from "../../lib/primitives/digest.ts";
import { GroupId, NetworkId } from "../../lib/primitives/ids.ts";
import { SeededRng } from "../../lib/primitives/rng.ts";
import { decode, encode, encodeFrame, EncodingError, FrameDecoder } from "../../lib/wire/mod.ts";
import { createTlsIdentity, serverNameFor } from "../../transport/cert.ts";
import { MemoryNetwork } from "../../transport/memory.ts";
import {
  CloseCode,
  type Connection,
  type Stream,
  type TlsIdentity,
  type Transport,
} from "../../transport/types.ts";

const NETWORK = NetworkId.fromName("bond-test");
const GROUP = new GroupId(Digest.hash("bond-test-group").bytesView());
const KEY = GroupKey.fromSecret("bond test key");

/** Tiny intervals so dead-bond detection takes tens of milliseconds. */
const FAST: BondTimings = {
  heartbeatInterval: 10,
  heartbeatJitter: 3,
  maxMissedHeartbeats: 3,
  handshakeTimeout: 2_000,
  maxMessageSize: 64 * 1024,
};

interface Node {
  readonly identity: Identity;
  readonly tls: TlsIdentity;
  readonly transport: Transport;
}

interface Pair {
  readonly net: MemoryNetwork;
  readonly a: Node;
  readonly b: Node;
  /** a's connection to b (a dialed). */
  readonly ca: Connection;
  /** b's side of it. */
  readonly cb: Connection;
  close(): Promise<void>;
}

async function node(net: MemoryNetwork): Promise<Node> {
  const identity = await Identity.generate();
  const tls = await createTlsIdentity(serverNameFor(identity.peerId.toHex()));
  const transport = await net.transport()({ identity: tls });
  return { identity, tls, transport };
}

async function pair(seed: number): Promise<Pair> {
  const net = new MemoryNetwork({ latencyMs: 1, seed });
  const a = await node(net);
  const b = await node(net);
  const listener = await b.transport.listen({ host: "memory", port: 0 });
  const incoming = listener.connections()[Symbol.asyncIterator]().next();
  const ca = await a.transport.dial({
    address: listener.address,
    certificateHash: b.tls.certificateHash,
    serverName: b.tls.serverName,
  });
  const next = await incoming;
  assert(!next.done);
  const cb = next.value;
  return {
    net,
    a,
    b,
    ca,
    cb,
    close: async () => {
      await listener.close();
      await net.close();
    },
  };
}

async function nextStream(conn: Connection): Promise<Stream> {
  const next = await conn.incomingStreams()[Symbol.asyncIterator]().next();
  assert(!next.done, "expected an incoming stream");
  return next.value;
}

function dialerOptions(p: Pair, extra: Partial<OpenBondOptions> = {}): OpenBondOptions {
  return {
    ...FAST,
    identity: p.a.identity,
    networkId: NETWORK,
    groupId: GROUP,
    key: KEY,
    certHash: p.b.tls.certificateHash,
    ...extra,
  };
}

function acceptorOptions(p: Pair, extra: Partial<AcceptBondOptions> = {}): AcceptBondOptions {
  return {
    ...FAST,
    identity: p.b.identity,
    networkId: NETWORK,
    lookupGroup: (id) => id.equals(GROUP) ? KEY : undefined,
    certHash: p.b.tls.certificateHash,
    ...extra,
  };
}

/** Both sides of a bond between a (dialer) and b (acceptor). */
async function bond(
  p: Pair,
  dial: Partial<OpenBondOptions> = {},
  accept: Partial<AcceptBondOptions> = {},
): Promise<[Bond, Bond]> {
  const accepted = nextStream(p.cb).then((s) =>
    acceptBond(channelOf(p.cb, s), acceptorOptions(p, accept))
  );
  const opened = open(p, dialerOptions(p, dial));
  return await Promise.all([opened, accepted]);
}

/** Opens a bond from a to b on a new stream of their connection. */
async function open(p: Pair, options: OpenBondOptions): Promise<Bond> {
  return await openBond(channelOf(p.ca, await p.ca.openStream()), options);
}

/** Accepts the next stream b gets as a bond. */
function accept(p: Pair, extra: Partial<AcceptBondOptions> = {}): Promise<Bond> {
  return nextStream(p.cb).then((s) => acceptBond(channelOf(p.cb, s), acceptorOptions(p, extra)));
}

/** The next frame on a raw stream, decoded (the handshake's close frame in these tests). */
async function readFrame(stream: Stream): Promise<unknown> {
  const reader = stream.readable.getReader();
  let buf = new Uint8Array(0);
  try {
    for (;;) {
      if (buf.length >= 4 && buf.length >= 4 + new DataView(buf.buffer).getUint32(0)) {
        return decode(buf.subarray(4, 4 + new DataView(buf.buffer).getUint32(0)));
      }
      const r = await reader.read();
      assert(!r.done, "stream ended before a whole frame");
      const merged = new Uint8Array(buf.length + r.value.length);
      merged.set(buf);
      merged.set(r.value, buf.length);
      buf = merged;
    }
  } finally {
    reader.releaseLock();
  }
}

/** `promise`, or a rejection naming `what` after `ms`. */
async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`Timed out waiting for ${what}`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Polls `cond` until it holds; rejects naming `what` after `ms` (and stops polling). */
async function waitFor(cond: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

/** The rejection of `promise` as a BondError. */
async function bondError(promise: Promise<unknown>): Promise<BondError> {
  try {
    await promise;
  } catch (err) {
    assert(err instanceof BondError, `expected a BondError, got ${String(err)}`);
    return err;
  }
  throw new Error("Expected the bond to fail");
}

/** Writes raw frames on a stream the way a FramedStream would. */
async function writeRaw(stream: Stream, frames: readonly Uint8Array[]): Promise<void> {
  const writer = stream.writable.getWriter();
  for (const f of frames) await writer.write(f);
  writer.releaseLock();
}

test("bond: both sides authenticate each other and exchange messages in order", async () => {
  const p = await pair(1);
  try {
    const gotA: GroupMessage[] = [];
    const gotB: GroupMessage[] = [];
    const [ba, bb] = await bond(
      p,
      { onMessage: (m) => gotA.push(m) },
      { onMessage: (m) => gotB.push(m) },
    );
    assert(ba.peer.equals(p.b.identity.peerId));
    assert(bb.peer.equals(p.a.identity.peerId));
    assertEquals(ba.peerHex, p.b.identity.peerId.toHex());
    assert(ba.groupId.equals(GROUP) && bb.groupId.equals(GROUP));
    assertEquals([ba.role, bb.role], ["initiator", "acceptor"]);
    for (let i = 0; i < 20; i++) {
      assert(ba.send({ t: "fwdErr", id: i, reason: "a" }));
      assert(bb.send({ t: "info", committed: i, observer: false, leader: false, voters: 1 }));
    }
    await waitFor(() => gotA.length === 20 && gotB.length === 20, 5_000, "messages");
    assertEquals(gotB.map((m) => m.t === "fwdErr" ? m.id : -1), [...Array(20).keys()]);
    assertEquals(gotA.map((m) => m.t === "info" ? m.committed : -1), [...Array(20).keys()]);
    ba.close(CloseCode.Normal, "done");
    const seen = await within(bb.closed, 5_000, "remote close");
    assertEquals(seen, { code: 0, reason: "done", remote: true });
    assertEquals(ba.send({ t: "bye" }), false);
    await ba[Symbol.asyncDispose]();
    await bb[Symbol.asyncDispose]();
    // Closing a bond leaves the connection to the other bonds and discovery.
    const [ba2, bb2] = await bond(p);
    ba2.close(CloseCode.Normal, "again");
    assertEquals((await within(bb2.closed, 5_000, "second close")).reason, "again");
  } finally {
    await p.close();
  }
});

test("bond: a message that is not encodable throws EncodingError and the bond stays up", async () => {
  const p = await pair(2);
  try {
    const got: GroupMessage[] = [];
    const [ba, bb] = await bond(p, {}, { onMessage: (m) => got.push(m) });
    let threw: unknown;
    try {
      ba.send({ t: "fwd", id: 1, commands: [() => 1] });
    } catch (err) {
      threw = err;
    }
    assert(threw instanceof EncodingError, "expected EncodingError");
    assert(ba.send({ t: "fwd", id: 2, commands: ["ok"] }));
    await waitFor(() => got.length === 1, 5_000, "the good message");
    assert(!ba.isClosed && !bb.isClosed);
    ba.close();
    await within(bb.closed, 5_000, "close");
  } finally {
    await p.close();
  }
});

test("bond: wrong group key fails both sides and the dialer sees 401", async () => {
  const p = await pair(3);
  try {
    const accepted = accept(p);
    const opened = open(p, dialerOptions(p, { key: GroupKey.fromSecret("other key") }));
    const [ea, eb] = await Promise.all([bondError(opened), bondError(accepted)]);
    assertEquals(ea.code, CloseCode.Unauthorized);
    assertEquals(eb.code, CloseCode.Unauthorized);
    // The refusal travels on the bond's stream; the shared connection stays up.
    const [ba, bb] = await bond(p);
    ba.close();
    await within(bb.closed, 5_000, "close");
  } finally {
    await p.close();
  }
});

test("bond: unknown group closes with 30404 and wrong network with 30400", async () => {
  for (
    const [extra, code] of [
      [{ groupId: new GroupId(Digest.hash("nope").bytesView()) }, CloseCode.UnknownGroup],
      [{ networkId: NetworkId.fromName("elsewhere") }, CloseCode.WrongNetwork],
    ] as const
  ) {
    const p = await pair(4);
    try {
      const accepted = accept(p);
      const opened = open(p, dialerOptions(p, extra));
      const [ea, eb] = await Promise.all([bondError(opened), bondError(accepted)]);
      assertEquals([ea.code, ea.remote], [code, true]);
      assertEquals([eb.code, eb.remote], [code, false]);
    } finally {
      await p.close();
    }
  }
});

test("bond: a silent peer is declared dead", async () => {
  const p = await pair(5);
  try {
    const [ba, bb] = await bond(p);
    p.net.isolate(p.b.identity.peerId);
    const [ia, ib] = await within(Promise.all([ba.closed, bb.closed]), 5_000, "dead bonds");
    assert(ia.reason.includes("dead") && ib.reason.includes("dead"), `${ia.reason} / ${ib.reason}`);
    assertEquals([ia.remote, ib.remote], [false, false]);
    p.net.heal();
  } finally {
    await p.close();
  }
});

test("bond: a healthy idle bond stays up across many heartbeat intervals", async () => {
  const p = await pair(6);
  try {
    const live = { maxMissedHeartbeats: 20 };
    const [ba, bb] = await bond(
      p,
      { ...live, rng: new SeededRng(1) },
      { ...live, rng: new SeededRng(2) },
    );
    // No application traffic: wait until each side has heard more heartbeats
    // than twice the missed-heartbeat limit; only the heartbeats kept it alive.
    await waitFor(() => ba.framesReceived > 40 && bb.framesReceived > 40, 10_000, "heartbeats");
    assert(!ba.isClosed && !bb.isClosed, "an idle bond died");
    ba.close();
    await within(bb.closed, 5_000, "close");
  } finally {
    await p.close();
  }
});

test("bond: depart delivers bye before the close and the peer sees 101", async () => {
  const p = await pair(7);
  try {
    const got: GroupMessage[] = [];
    const [ba, bb] = await bond(p, {}, { onMessage: (m) => got.push(m) });
    for (let i = 0; i < 50; i++) ba.send({ t: "fwdErr", id: i, reason: "x".repeat(1000) });
    const mine = await within(ba.depart(), 5_000, "departure");
    const theirs = await within(bb.closed, 5_000, "peer close");
    assertEquals(mine, { code: CloseCode.Departure, reason: "Departed", remote: false });
    assertEquals([theirs.code, theirs.remote], [CloseCode.Departure, true]);
    assertEquals(got.length, 51);
    assertEquals(got.at(-1), { t: "bye" });
    assertEquals(ba.send({ t: "bye" }), false);
  } finally {
    await p.close();
  }
});

/** Runs the dialer's handshake by hand on a raw stream, returning the stream for raw writes. */
async function rawDialer(p: Pair): Promise<{ stream: Stream; accepted: Promise<Bond> }> {
  const stream = await p.ca.openStream();
  const accepted = accept(p);
  const signer = {
    peerId: p.a.identity.peerId.bytesView(),
    sign: (m: Uint8Array) => p.a.identity.sign(m),
  };
  const { hello, state } = makeHello({
    networkId: NETWORK.bytesView(),
    groupId: GROUP.bytesView(),
    key: KEY,
    signer,
    certHash: p.b.tls.certificateHash,
  });
  await writeRaw(stream, [encodeFrame(encode(hello))]);
  const answer = await checkAck(state, await readFrame(stream));
  assert("confirm" in answer);
  await writeRaw(stream, [encodeFrame(encode(answer.confirm))]);
  return { stream, accepted };
}

test("bond: garbage, unknown or oversized frames from the peer close with 400", async () => {
  const garbage: readonly [string, Uint8Array][] = [
    ["undecodable", encodeFrame(Uint8Array.of(0xff, 0xff, 0xff))],
    ["unknown t", encodeFrame(encode({ t: "nope" }))],
    ["not a map", encodeFrame(encode([1, 2, 3]))],
    ["bad fields", encodeFrame(encode({ t: "fwd", id: "x", commands: [] }))],
    ["oversized", Uint8Array.of(0x7f, 0xff, 0xff, 0xff, 1, 2, 3)],
  ];
  for (const [what, frame] of garbage) {
    const p = await pair(8);
    try {
      const { stream, accepted } = await rawDialer(p);
      const bb = await accepted;
      await writeRaw(stream, [frame]);
      const info: BondClose = await within(bb.closed, 5_000, `close after ${what}`);
      assertEquals([info.code, info.remote], [CloseCode.ProtocolViolation, false], what);
      const theirs = await within(p.ca.closed, 5_000, "dialer close");
      assertEquals(theirs.code, CloseCode.ProtocolViolation, what);
    } finally {
      await p.close();
    }
  }
});

test("bond: a handshake that stalls closes with 30408 on both ends", async () => {
  // The acceptor never answers: the dialer times out and tells it so on the stream.
  const p = await pair(9);
  try {
    const peerSide = nextStream(p.cb);
    const opened = open(p, dialerOptions(p, { handshakeTimeout: 50 }));
    const err = await bondError(opened);
    assertEquals([err.code, err.remote], [CloseCode.HandshakeTimeout, false]);
    const s = await peerSide;
    await readFrame(s); // the dialer's hello
    const told = await within(readFrame(s), 5_000, "close frame") as Record<string, unknown>;
    assertEquals([told.t, told.code], ["close", CloseCode.HandshakeTimeout]);
  } finally {
    await p.close();
  }
  // The dialer opens a stream and says nothing: the acceptor times out.
  const q = await pair(10);
  try {
    const raw = await q.ca.openStream();
    await writeRaw(raw, []);
    const s = await nextStream(q.cb);
    const err = await bondError(
      acceptBond(channelOf(q.cb, s), acceptorOptions(q, { handshakeTimeout: 50 })),
    );
    assertEquals(err.code, CloseCode.HandshakeTimeout);
    const told = await within(readFrame(raw), 5_000, "close frame") as Record<string, unknown>;
    assertEquals([told.t, told.code], ["close", CloseCode.HandshakeTimeout]);
  } finally {
    await q.close();
  }
});

/** Reads frames from a raw stream one by one, keeping what arrived beyond the current frame. */
function frameReader(stream: Stream): { next(): Promise<unknown>; release(): void } {
  const reader = stream.readable.getReader();
  const decoder = new FrameDecoder();
  const ready: Uint8Array[] = [];
  return {
    async next() {
      while (ready.length === 0) {
        const r = await reader.read();
        assert(!r.done, "stream ended");
        ready.push(...decoder.push(r.value));
      }
      return decode(ready.shift()!);
    },
    release: () => reader.releaseLock(),
  };
}

test("bond: heartbeat pings measure the round trip; traffic is counted both ways", async () => {
  const p = await pair(11);
  try {
    const got: GroupMessage[] = [];
    const [ba, bb] = await bond(p, {}, { onMessage: (m) => got.push(m) });
    assert(ba.bytesOut > 0 && ba.bytesIn > 0, "the handshake's bytes count");
    for (let i = 0; i < 5; i++) assert(ba.send({ t: "fwdErr", id: i, reason: "x" }));
    await waitFor(() => got.length === 5, 5_000, "five messages");
    assert(ba.framesSent >= 5 && bb.framesReceived >= 5, "messages are counted");
    await waitFor(
      () => ba.rttMs !== undefined && bb.rttMs !== undefined,
      5_000,
      "a pong on both sides",
    );
    assert(ba.rttMs! >= 0 && bb.rttMs! >= 0, "round trips are durations");
    // Pongs are frames too: each side has received pings and pongs, and sent both.
    assert(ba.framesReceived > 0 && bb.framesSent > 0);
    assert(bb.bytesIn > 0 && bb.bytesOut > 0);
    await ba[Symbol.asyncDispose]();
    await bb[Symbol.asyncDispose]();
  } finally {
    await p.close();
  }
});

test("bond: a peer whose pings carry no timestamp (an older version) gets no pong", async () => {
  const p = await pair(12);
  try {
    const stream = await p.ca.openStream();
    const accepted = nextStream(p.cb).then((s) =>
      acceptBond(
        channelOf(p.cb, s),
        acceptorOptions(p, { heartbeatInterval: 40, heartbeatJitter: 5, maxMissedHeartbeats: 50 }),
      )
    );
    const signer = {
      peerId: p.a.identity.peerId.bytesView(),
      sign: (m: Uint8Array) => p.a.identity.sign(m),
    };
    const { hello, state } = makeHello({
      networkId: NETWORK.bytesView(),
      groupId: GROUP.bytesView(),
      key: KEY,
      signer,
      certHash: p.b.tls.certificateHash,
    });
    await writeRaw(stream, [encodeFrame(encode(hello))]);
    const frames = frameReader(stream);
    const answer = await checkAck(state, await frames.next());
    assert("confirm" in answer);
    await writeRaw(stream, [encodeFrame(encode(answer.confirm))]);
    const bb = await accepted;
    // The old peer pings as it always did: no pong comes back, only the acceptor's own pings.
    await writeRaw(stream, [
      encodeFrame(encode({ t: "ping" })),
      encodeFrame(encode({ t: "ping" })),
    ]);
    const seen: Record<string, unknown>[] = [];
    while (seen.filter((f) => f.t === "ping").length < 3) {
      seen.push(
        await within(frames.next(), 5_000, "the acceptor's pings") as Record<string, unknown>,
      );
    }
    assertEquals(seen.filter((f) => f.t !== "ping"), [], "nothing but pings");
    assert(seen.every((f) => typeof f.at === "number"), "new pings carry their timestamp");
    assertEquals(bb.isClosed, false);
    // A ping with a timestamp gets it back in a pong.
    await writeRaw(stream, [encodeFrame(encode({ t: "ping", at: 12.5 }))]);
    let pong: Record<string, unknown> | undefined;
    while (pong === undefined) {
      const f = await within(frames.next(), 5_000, "a pong") as Record<string, unknown>;
      if (f.t === "pong") pong = f;
      else assertEquals(f.t, "ping");
    }
    assertEquals(pong, { t: "pong", at: 12.5 });
    // A pong to one of its pings gives it a round trip.
    assertEquals(bb.rttMs, undefined);
    await writeRaw(stream, [encodeFrame(encode({ t: "pong", at: performance.now() - 3 }))]);
    await waitFor(() => bb.rttMs !== undefined, 5_000, "a round trip");
    assert(bb.rttMs! >= 3);
    frames.release();
    await bb[Symbol.asyncDispose]();
  } finally {
    await p.close();
  }
});
