// Tests for PeerAddr: construction, the string form, exact round trips and rejection of malformed strings.

import { test } from "../harness.ts";
import { assert, assertEquals, assertThrows } from "../assert.ts";
import { PeerAddr, type TransportAddress } from "../../lib/network/peer_addr.ts";
import { PeerId } from "../../lib/primitives/ids.ts";

const ID_HEX = "3b".repeat(32);
const HASH = new Uint8Array(32).map((_, i) => i * 8 + 3);

function make(addresses: TransportAddress[], hash: Uint8Array = HASH): PeerAddr {
  return new PeerAddr({ peerId: PeerId.parse(ID_HEX), addresses, certificateHash: hash });
}

const GOOD = make([
  { transport: "quic", host: "127.0.0.1", port: 4433 },
  { transport: "quic", host: "::1", port: 4433 },
  { transport: "h2", host: "node-1.example.com", port: 443 },
]);

test("toString has the documented form", () => {
  const s = GOOD.toString();
  assert(
    s.startsWith(
      `mosaik1:${ID_HEX}@quic/127.0.0.1:4433,quic/[::1]:4433,h2/node-1.example.com:443#`,
    ),
  );
  const hash = s.slice(s.indexOf("#") + 1);
  assertEquals(hash.length, 43);
  assert(/^[A-Za-z0-9_-]+$/.test(hash));
});

test("parse and toString round trip exactly", () => {
  const s = GOOD.toString();
  const parsed = PeerAddr.parse(s);
  assertEquals(parsed.toString(), s);
  assert(parsed.equals(GOOD));
  assert(parsed.peerId.equals(GOOD.peerId));
  assertEquals(parsed.certificateHash, HASH);
  assertEquals(parsed.addresses, GOOD.addresses);
  assertEquals(JSON.stringify(parsed), JSON.stringify(s));
  // Every byte value of the hash survives base64url.
  for (let b = 0; b < 256; b += 17) {
    const h = new Uint8Array(32).fill(b);
    h[31] = 255 - b;
    const a = make([{ transport: "quic", host: "10.0.0.1", port: 1 }], h);
    assertEquals(PeerAddr.parse(a.toString()).certificateHash, h);
  }
  const full = make([{ transport: "quic", host: "fe80::1:2", port: 65535 }]);
  assertEquals(PeerAddr.parse(full.toString()).addresses[0]!.host, "fe80::1:2");
});

test("certificate hash and addresses are copies / frozen", () => {
  const hash = HASH.slice();
  const a = make([{ transport: "quic", host: "127.0.0.1", port: 1 }], hash);
  hash[0] = 99;
  a.certificateHash[1] = 99;
  assertEquals(a.certificateHash, HASH);
  assert(Object.isFrozen(a.addresses) && Object.isFrozen(a.addresses[0]));
});

test("constructor rejects invalid parts", () => {
  const addr: TransportAddress = { transport: "quic", host: "127.0.0.1", port: 1 };
  assertThrows(() => make([]), RangeError, "1–16 addresses");
  assertThrows(() => make(new Array(17).fill(addr)), RangeError, "addresses");
  assertThrows(() => make([addr], new Uint8Array(31)), RangeError, "32 bytes");
  assertThrows(() => make([{ ...addr, port: 0 }]), RangeError, "port");
  assertThrows(() => make([{ ...addr, port: 70000 }]), RangeError, "port");
  assertThrows(() => make([{ ...addr, port: 1.5 }]), RangeError, "port");
  assertThrows(() => make([{ ...addr, transport: "QUIC" }]), RangeError, "transport");
  assertThrows(() => make([{ ...addr, host: "" }]), RangeError, "host");
  assertThrows(() => make([{ ...addr, host: "a b" }]), RangeError, "host");
  assertThrows(() => make([{ ...addr, host: "fe80::1%eth0" }]), RangeError, "IPv6");
  assertThrows(
    () =>
      new PeerAddr({
        peerId: "x" as unknown as PeerId,
        addresses: [addr],
        certificateHash: HASH,
      }),
    TypeError,
  );
});

test("parse rejects malformed strings, naming the problem", () => {
  const s = GOOD.toString();
  const hash = s.slice(s.indexOf("#"));
  const cases: [string, string][] = [
    ["", "mosaik1:"],
    [s.replace("mosaik1:", "mosaik2:"), "mosaik1:"],
    [s.replace("@", ""), "peer id"],
    [`mosaik1:${ID_HEX}quic/1.2.3.4:1${hash}`, '"@"'],
    [s.slice(0, s.indexOf("#")), '"#"'],
    [s.replace(ID_HEX, ID_HEX.toUpperCase()), "peer id"],
    [s.replace(ID_HEX, ID_HEX.slice(2)), "peer id"],
    [`mosaik1:${ID_HEX}@${hash}`, "no addresses"],
    [`mosaik1:${ID_HEX}@quic/1.2.3.4:1,${hash}`, "address 2"],
    [`mosaik1:${ID_HEX}@1.2.3.4:1${hash}`, "no transport"],
    [`mosaik1:${ID_HEX}@quic/1.2.3.4${hash}`, "no port"],
    [`mosaik1:${ID_HEX}@quic/1.2.3.4:${hash}`, "port"],
    [`mosaik1:${ID_HEX}@quic/1.2.3.4:0443${hash}`, "port"],
    [`mosaik1:${ID_HEX}@quic/1.2.3.4:+443${hash}`, "port"],
    [`mosaik1:${ID_HEX}@quic/1.2.3.4:65536${hash}`, "port"],
    [`mosaik1:${ID_HEX}@quic/::1:443${hash}`, "without brackets"],
    [`mosaik1:${ID_HEX}@quic/[::1:443${hash}`, "bracket"],
    [`mosaik1:${ID_HEX}@quic/[1.2.3.4]:443${hash}`, "not IPv6"],
    [`mosaik1:${ID_HEX}@Quic/1.2.3.4:443${hash}`, "transport"],
    [`mosaik1:${ID_HEX}@quic/a b:443${hash}`, "host"],
    [`${s}=`, "certificate hash"],
    [s.slice(0, -1), "certificate hash"],
    [`${s}A`, "certificate hash"],
    [s.slice(0, -1) + "+", "certificate hash"],
    [`${s} `, "certificate hash"],
    [` ${s}`, "mosaik1:"],
    ["x".repeat(5000), "4096"],
  ];
  for (const [input, includes] of cases) {
    assertThrows(() => PeerAddr.parse(input), RangeError, includes);
  }
  const tooMany = `mosaik1:${ID_HEX}@${new Array(17).fill("quic/1.2.3.4:1").join(",")}${hash}`;
  assertThrows(() => PeerAddr.parse(tooMany), RangeError, "more than 16");
  assertThrows(() => PeerAddr.parse(42 as unknown as string), TypeError);
});

test("parse rejects a hash whose unused trailing bits are set (non-canonical)", () => {
  const s = make([{ transport: "quic", host: "127.0.0.1", port: 1 }], new Uint8Array(32))
    .toString();
  assert(s.endsWith("A"));
  // The last character carries 2 unused bits; "B" sets one of them.
  assertThrows(() => PeerAddr.parse(s.slice(0, -1) + "B"), RangeError, "certificate hash");
});
