// Network over the runtime's default raw-QUIC transport: two nodes discover each other from a bootstrap address string.

import { test } from "../harness.ts";
import { assert, assertEquals } from "../assert.ts";
import { Network } from "../../lib/network/network.ts";
import { PeerAddr } from "../../lib/network/peer_addr.ts";

async function waitFor(cond: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

test(
  "network over QUIC: a node bootstrapping from an address string discovers its peer, and back",
  async () => {
    const discovery = { announceInterval: 100, staleAfter: 5_000, syncTimeout: 5_000 };
    let a: Network | undefined;
    let b: Network | undefined;
    try {
      a = await Network.builder("quic-smoke").withListenAddress("127.0.0.1:0")
        .withDiscoveryConfig(discovery).build();
      const addr = a.local().addr();
      assertEquals(addr.addresses[0]?.transport, "quic");
      // the string form is what a command line carries: peer id, address, certificate hash
      b = await Network.builder("quic-smoke").withListenAddress("127.0.0.1:0")
        .withDiscoveryConfig(discovery).withBootstrap(PeerAddr.parse(addr.toString()).toString())
        .build();
      const na = a;
      const nb = b;
      await waitFor(
        () =>
          na.discovery().catalog().has(nb.local().id().toHex()) &&
          nb.discovery().catalog().has(na.local().id().toHex()),
        15_000,
        "mutual discovery",
      );
      assert(nb.discovery().catalog().size === 2 && na.discovery().catalog().size === 2);
    } finally {
      await b?.close();
      await a?.close();
    }
  },
  { timeout: 30_000 },
);
