// Tests for Network over MemoryNetwork: build and close, addresses, discovery, gossip, rejection of bad peers, staleness, stream routing.

import { test } from "../harness.ts";
import { assert, assertEquals, assertRejects } from "../assert.ts";
import { Network, type NetworkBuilder } from "../../lib/network/network.ts";
import type { DiscoveryEvent, DiscoveryEvents } from "../../lib/network/catalog.ts";
import { encodeSignedEntry, type SignedPeerEntry, signEntry } from "../../lib/network/entry.ts";
import { Identity } from "../../lib/network/identity.ts";
import { PeerAddr } from "../../lib/network/peer_addr.ts";
import { GroupId, NetworkId } from "../../lib/primitives/ids.ts";
import { createTlsIdentity, serverNameFor, sha256 } from "../../transport/cert.ts";
import { FramedStream } from "../../transport/framed.ts";
import { MemoryNetwork } from "../../transport/memory.ts";
import { CloseCode, type Connection, type Transport } from "../../transport/types.ts";

const APP = "network-test";
const DEADLINE_MS = 5_000;

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `cond` until it holds, failing after `ms`. */
async function waitFor(cond: () => boolean, what: string, ms = DEADLINE_MS): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`Timed out waiting for ${what}`);
    await delay(5);
  }
}

/** The first event matching `pred`, failing after `ms`. */
async function nextEvent(
  events: DiscoveryEvents,
  pred: (e: DiscoveryEvent) => boolean,
  what: string,
  ms = DEADLINE_MS,
): Promise<DiscoveryEvent> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`Timed out waiting for ${what}`)), ms);
  });
  try {
    for (;;) {
      const r = await Promise.race([events.next(), expired]);
      if (r.done) throw new Error(`Events ended before ${what}`);
      if (pred(r.value)) return r.value;
    }
  } finally {
    clearTimeout(timer);
  }
}

function builder(net: MemoryNetwork, name = APP): NetworkBuilder {
  return Network.builder(name)
    .withTransport(net.transport())
    .withListenAddress("127.0.0.1:0")
    .withDiscoveryConfig({ announceInterval: 50, staleAfter: 2_000, syncTimeout: 3_000 });
}

function hex(n: Network): string {
  return n.local().id().toHex();
}

/** Closes everything given, in reverse, even when one fails. */
async function closeAll(...items: (AsyncDisposable | undefined)[]): Promise<void> {
  for (const item of items.reverse()) await item?.[Symbol.asyncDispose]();
}

test("Network builds, closes idempotently and has a round-tripping address", async () => {
  const net = new MemoryNetwork({ latencyMs: 1, seed: 1 });
  let a: Network | undefined;
  try {
    a = await builder(net).withTags("matcher").build();
    const addr = a.local().addr();
    assert(addr.peerId.equals(a.local().id()));
    assert(PeerAddr.parse(addr.toString()).equals(addr));
    assertEquals(addr.addresses[0]?.transport, "memory");
    assertEquals(a.networkId.toHex(), NetworkId.fromName(APP).toHex());
    const me = a.discovery().catalog().get(hex(a));
    assert(me !== undefined, "own entry in catalog");
    assertEquals([...me.tags], ["matcher"]);
    assert(a.discovery().me().signature.length === 64);
    await a.close();
    await a.close();
    assert(a.closed);
  } finally {
    await closeAll(net, a);
  }
});

test("await using closes the network", async () => {
  const net = new MemoryNetwork({ latencyMs: 1, seed: 2 });
  let seen: Network | undefined;
  try {
    {
      await using n = await builder(net).build();
      seen = n;
      assert(!n.closed);
    }
    assert(seen.closed, "disposed at end of scope");
  } finally {
    await closeAll(net, seen);
  }
});

test("two nodes discover each other through a bootstrap address", async () => {
  const net = new MemoryNetwork({ latencyMs: 1, seed: 3 });
  let a: Network | undefined;
  let b: Network | undefined;
  try {
    a = await builder(net).build();
    const events = a.discovery().events();
    try {
      b = await builder(net).withBootstrap(a.local().addr().toString()).build();
      const bHex = hex(b);
      const ev = await nextEvent(
        events,
        (e) => e.type === "discovered" && e.peerId.toHex() === bHex,
        "A discovers B",
      );
      assert(ev.entry.peerId.equals(b.local().id()));
    } finally {
      events.close();
    }
    const [na, nb] = [a, b];
    await waitFor(() => na.discovery().catalog().size === 2, "A knows 2");
    await waitFor(() => nb.discovery().catalog().size === 2, "B knows 2");
    await waitFor(
      () => na.peerConnection(hex(nb)) !== undefined && nb.peerConnection(hex(na)) !== undefined,
      "A and B connected",
    );
  } finally {
    await closeAll(net, a, b);
  }
});

test("a node learns a third peer through gossip", async () => {
  const net = new MemoryNetwork({ latencyMs: 1, seed: 4 });
  let a: Network | undefined;
  let b: Network | undefined;
  let c: Network | undefined;
  try {
    a = await builder(net).build();
    b = await builder(net).withBootstrap(a.local().addr()).build();
    c = await builder(net).withBootstrap(a.local().addr()).build();
    const [nb, nc] = [b, c];
    await waitFor(() => nc.discovery().catalog().has(hex(nb)), "C learns B");
    await waitFor(() => nb.discovery().catalog().has(hex(nc)), "B learns C");
    assertEquals(nc.connectedPeers(), [hex(a)], "C is connected to A only: B came by gossip");
  } finally {
    await closeAll(net, a, b, c);
  }
});

test("an entry update propagates to peers", async () => {
  const net = new MemoryNetwork({ latencyMs: 1, seed: 5 });
  let a: Network | undefined;
  let b: Network | undefined;
  try {
    a = await builder(net).build();
    b = await builder(net).withBootstrap(a.local().addr()).build();
    const [na, nb] = [a, b];
    await waitFor(() => nb.discovery().catalog().has(hex(na)), "B learns A");
    const group = GroupId.random();
    await na.setGroups([group]);
    await waitFor(
      () => nb.discovery().catalog().get(hex(na))?.groups.some((g) => g.equals(group)) === true,
      "B sees A's group",
    );
  } finally {
    await closeAll(net, a, b);
  }
});

test("syncWith exchanges catalogs both ways", async () => {
  const net = new MemoryNetwork({ latencyMs: 1, seed: 6 });
  let a: Network | undefined;
  let b: Network | undefined;
  try {
    a = await builder(net).build();
    b = await builder(net).build();
    await b.discovery().syncWith(a.local().addr());
    assert(b.discovery().catalog().has(hex(a)), "B has A once syncWith resolves");
    const [na, nb] = [a, b];
    await waitFor(() => na.discovery().catalog().has(hex(nb)), "A learns B");
    // A second sync runs over the existing connection.
    await b.discovery().syncWith(a.local().addr());
    assertEquals(b.connectedPeers(), [hex(a)]);
  } finally {
    await closeAll(net, a, b);
  }
});

test("simultaneous dials leave one connection per pair", async () => {
  const net = new MemoryNetwork({ latencyMs: 1, seed: 7 });
  let a: Network | undefined;
  let b: Network | undefined;
  try {
    a = await builder(net).build();
    b = await builder(net).build();
    a.discovery().dial(b.local().addr());
    b.discovery().dial(a.local().addr());
    const [na, nb] = [a, b];
    // Both dials start before either hello, so one connection must lose the tie-break.
    await waitFor(() => {
      const [sa, sb] = [na.connectionStats(), nb.connectionStats()];
      return sa.duplicatesClosed + sb.duplicatesClosed >= 1 && sa.open === 1 && sb.open === 1;
    }, "one connection left on each side");
    await nb.discovery().syncWith(na.local().addr());
    assertEquals(na.connectedPeers(), [hex(nb)]);
    assertEquals(nb.connectedPeers(), [hex(na)]);
    assertEquals(na.connectionStats().open, 1);
    assertEquals(nb.connectionStats().open, 1);
  } finally {
    await closeAll(net, a, b);
  }
});

test("a restarted peer's connection replaces the one left over from its previous run", async () => {
  const net = new MemoryNetwork({ latencyMs: 1, seed: 11 });
  let a: Network | undefined;
  let old: Network | undefined;
  let again: Network | undefined;
  try {
    a = await builder(net).build();
    // The tie-break between two connections of one run keeps the one the lower PeerId
    // dialed; a restarted peer with the lower id dials again, so without the run
    // comparison the leftover connection would win.
    let secret = crypto.getRandomValues(new Uint8Array(32));
    while ((await Identity.fromSecretKey(secret)).peerId.toHex() >= hex(a)) {
      secret = crypto.getRandomValues(new Uint8Array(32));
    }
    old = await builder(net).withSecretKey(secret).withBootstrap(a.local().addr()).build();
    const [na, no] = [a, old];
    await waitFor(() => na.connectedPeers().includes(hex(no)), "a connected to the first run");
    const first = na.peerConnection(no.local().id());
    // A later run has a later start time (entry version), even on a coarse clock.
    const started = Date.now();
    while (Date.now() <= started) await delay(1);
    again = await builder(net).withSecretKey(secret).withBootstrap(a.local().addr()).build();
    const ng = again;
    assertEquals(hex(ng), hex(no), "the same secret key gives the same PeerId");
    await waitFor(
      () => ng.connectedPeers().includes(hex(na)) && na.peerConnection(ng.local().id()) !== first,
      "a switched to the connection of the second run",
    );
    await ng.discovery().syncWith(na.local().addr());
    assertEquals(na.connectedPeers(), [hex(ng)]);
  } finally {
    await closeAll(net, a, old, again);
  }
});

test("a departed peer is purged after the staleness timeout", async () => {
  const net = new MemoryNetwork({ latencyMs: 1, seed: 8 });
  let a: Network | undefined;
  let b: Network | undefined;
  try {
    a = await builder(net).withDiscoveryConfig({ announceInterval: 20, staleAfter: 200 }).build();
    b = await builder(net).withDiscoveryConfig({ announceInterval: 20, staleAfter: 200 })
      .withBootstrap(a.local().addr()).build();
    const [na, bHex] = [a, hex(b)];
    await waitFor(() => na.discovery().catalog().has(bHex), "A learns B");
    const events = na.discovery().events();
    try {
      await b.close();
      await nextEvent(
        events,
        (e) => e.type === "departed" && e.peerId.toHex() === bHex,
        "B departs",
      );
    } finally {
      events.close();
    }
    assert(!na.discovery().catalog().has(bHex));
  } finally {
    await closeAll(net, a, b);
  }
});

/** A raw peer on the memory network that speaks discovery by hand. */
async function rawPeer(
  net: MemoryNetwork,
  target: Network,
): Promise<{ id: Identity; cert: Uint8Array; transport: Transport; conn: Connection }> {
  const id = await Identity.generate();
  const tls = await createTlsIdentity(serverNameFor(id.peerId.toHex()));
  const transport = await net.transport()({ identity: tls });
  const addr = target.local().addr().addresses[0];
  assert(addr !== undefined);
  const conn = await transport.dial({
    address: { host: addr.host, port: addr.port },
    certificateHash: target.local().addr().certificateHash,
    serverName: serverNameFor(hex(target)),
  });
  return { id, cert: tls.certificateDer, transport, conn };
}

async function entryOf(
  id: Identity,
  certificateHash: Uint8Array,
  networkId = NetworkId.fromName(APP),
): Promise<SignedPeerEntry> {
  return await signEntry({
    networkId,
    peerId: id.peerId,
    addresses: [{ transport: "memory", host: "memory", port: 1 }],
    certificateHash,
    tags: [],
    groups: [],
    version: { start: 1, update: 0 },
  }, id);
}

/** Sends a hello and maybe more on a raw discovery stream; returns how the node closed the connection. */
async function speak(
  net: MemoryNetwork,
  target: Network,
  build: (peer: { id: Identity; cert: Uint8Array; hash: Uint8Array }) => Promise<unknown[]>,
): Promise<{ code: number; peerHex: string }> {
  const peer = await rawPeer(net, target);
  const framed = new FramedStream<unknown>(await peer.conn.openStream());
  try {
    const hash = await sha256(peer.cert);
    for (const msg of await build({ id: peer.id, cert: peer.cert, hash })) await framed.send(msg);
    const info = await peer.conn.closed;
    assert(info.remote, "the node closed it");
    return { code: info.code, peerHex: peer.id.peerId.toHex() };
  } finally {
    await framed[Symbol.asyncDispose]();
    peer.conn.close();
    await peer.transport.close();
  }
}

test("an entry with a bad signature is rejected and the connection closed with 400", async () => {
  const net = new MemoryNetwork({ latencyMs: 1, seed: 9 });
  let a: Network | undefined;
  try {
    a = await builder(net).build();
    const victim = await Identity.generate();
    const forged = await entryOf(victim, new Uint8Array(32));
    const badSig = forged.signature.slice();
    badSig[0] = badSig[0]! ^ 1;
    const tampered = { payload: forged.payload, signature: badSig };
    const { code } = await speak(net, a, async ({ id, hash }) => [
      { p: "disc" },
      {
        t: "hello",
        me: encodeSignedEntry(await entryOf(id, hash)),
        catalog: [encodeSignedEntry(tampered)],
      },
    ]);
    assertEquals(code, CloseCode.ProtocolViolation);
    assert(!a.discovery().catalog().has(victim.peerId.toHex()), "forged entry not stored");
  } finally {
    await closeAll(net, a);
  }
});

test("a hello of another network is rejected with 30400 and not stored", async () => {
  const net = new MemoryNetwork({ latencyMs: 1, seed: 10 });
  let a: Network | undefined;
  try {
    a = await builder(net).build();
    const { code, peerHex } = await speak(net, a, async ({ id, hash }) => [
      { p: "disc" },
      {
        t: "hello",
        me: encodeSignedEntry(await entryOf(id, hash, NetworkId.fromName("elsewhere"))),
        catalog: [],
      },
    ]);
    assertEquals(code, CloseCode.WrongNetwork);
    assert(!a.discovery().catalog().has(peerHex));
    assertEquals(a.discovery().catalog().size, 1);
  } finally {
    await closeAll(net, a);
  }
});

test("a malformed discovery message closes the connection with 400", async () => {
  const net = new MemoryNetwork({ latencyMs: 1, seed: 11 });
  let a: Network | undefined;
  try {
    a = await builder(net).build();
    const { code } = await speak(net, a, () => Promise.resolve([{ p: "disc" }, { t: "junk" }]));
    assertEquals(code, CloseCode.ProtocolViolation);
    // The node still works: a real peer can join afterwards.
    const na = a;
    const b = await builder(net).withBootstrap(na.local().addr()).build();
    try {
      await waitFor(() => na.discovery().catalog().has(hex(b)), "A learns B");
    } finally {
      await b.close();
    }
  } finally {
    await closeAll(net, a);
  }
});

test("streams are routed by purpose; unknown purposes are reset", async () => {
  const net = new MemoryNetwork({ latencyMs: 1, seed: 12 });
  let a: Network | undefined;
  let b: Network | undefined;
  try {
    a = await builder(net).build();
    b = await builder(net).withBootstrap(a.local().addr()).build();
    const [na, nb] = [a, b];
    await waitFor(() => nb.peerConnection(hex(na)) !== undefined, "B connected");
    const handled: Promise<void>[] = [];
    na.handleStreams("echo", ({ stream, header, peerId }) => {
      handled.push((async () => {
        assertEquals(peerId?.toHex(), hex(nb));
        await stream.send({ echo: header.n });
        await stream.close();
        await stream[Symbol.asyncDispose]();
      })());
    });
    const echo = await nb.openStream(hex(na), { p: "echo", n: 7 });
    try {
      assertEquals(await echo.receive(), { echo: 7 });
    } finally {
      await echo[Symbol.asyncDispose]();
    }
    await Promise.all(handled);
    const other = await nb.openStream(hex(na), { p: "nobody" });
    try {
      await assertRejects(async () => {
        const got = await other.receive();
        if (got === undefined) throw new Error("ended");
      });
    } finally {
      await other[Symbol.asyncDispose]();
    }
  } finally {
    await closeAll(net, a, b);
  }
});
