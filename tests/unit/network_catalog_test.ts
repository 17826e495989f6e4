// Tests for Catalog: upserts by version, removal, staleness purge, events with a bounded buffer, groups.

import { test } from "../harness.ts";
import { assert, assertEquals, assertRejects, assertThrows } from "../assert.ts";
import { Catalog, type DiscoveryEvent } from "../../lib/network/catalog.ts";
import { InvalidEntryError, type SignedPeerEntry, signEntry } from "../../lib/network/entry.ts";
import { Identity } from "../../lib/network/identity.ts";
import { GroupId, NetworkId } from "../../lib/primitives/ids.ts";

const NET = NetworkId.fromName("catalog-net");
const G = GroupId.random();

function sign(
  me: Identity,
  start: number,
  update: number,
  groups: GroupId[] = [],
  networkId: NetworkId = NET,
): Promise<SignedPeerEntry> {
  return signEntry({
    networkId,
    peerId: me.peerId,
    addresses: [{ transport: "quic", host: "127.0.0.1", port: 4000 + update }],
    certificateHash: new Uint8Array(32),
    tags: [],
    groups,
    version: { start, update },
  }, me);
}

test("upsert: discovered, updated on newer, stale on same or older", async () => {
  using catalog = new Catalog(NET);
  const a = await Identity.generate();
  assertEquals(await catalog.upsert(await sign(a, 10, 1), 100), "discovered");
  assertEquals(await catalog.upsert(await sign(a, 10, 1), 150), "stale");
  assertEquals(catalog.lastSeen(a.peerId), 100, "a re-gossiped copy is not a sign of life");
  assertEquals(await catalog.upsert(await sign(a, 10, 0), 150), "stale");
  assertEquals(await catalog.upsert(await sign(a, 10, 2), 200), "updated");
  assertEquals(await catalog.upsert(await sign(a, 9, 50), 200), "stale");
  assertEquals(await catalog.upsert(await sign(a, 11, 0), 300), "updated", "restart wins");
  assertEquals(catalog.get(a.peerId)?.version, { start: 11, update: 0 });
  assertEquals(catalog.lastSeen(a.peerId), 300);
  assertEquals(catalog.size, 1);
  const snap = catalog.snapshot();
  assertEquals([...snap.keys()], [a.peerId.toHex()]);
  assertEquals(snap.get(a.peerId.toHex())?.version.start, 11);
  assertEquals(catalog.getSigned(a.peerId)?.payload, (await sign(a, 11, 0)).payload);
  assertEquals(catalog.signedEntries().length, 1);
});

test("upsert rejects bad entries and leaves the catalog unchanged", async () => {
  using catalog = new Catalog(NET);
  const a = await Identity.generate();
  const good = await sign(a, 1, 1);
  const bad = good.signature.slice();
  bad[0]! ^= 1;
  await assertRejects(
    () => catalog.upsert({ payload: good.payload, signature: bad }, 1),
    InvalidEntryError,
  );
  const foreign = await sign(a, 1, 1, [], NetworkId.fromName("x"));
  await assertRejects(() => catalog.upsert(foreign, 1), InvalidEntryError, "network");
  assertEquals(catalog.size, 0);
});

test("events: discovered, updated, departed in order", async () => {
  using catalog = new Catalog(NET);
  const events = catalog.events();
  const a = await Identity.generate();
  await catalog.upsert(await sign(a, 1, 1), 0);
  await catalog.upsert(await sign(a, 1, 1), 0); // stale: no event
  await catalog.upsert(await sign(a, 1, 2), 0);
  assertEquals(catalog.remove(a.peerId)?.version.update, 2);
  assertEquals(catalog.remove(a.peerId), undefined);
  const seen: DiscoveryEvent[] = [];
  for await (const e of events) {
    seen.push(e);
    if (seen.length === 3) break;
  }
  assertEquals(seen.map((e) => e.type), ["discovered", "updated", "departed"]);
  assert(seen.every((e) => e.peerId.equals(a.peerId)));
  assertEquals(seen[2]!.entry.version.update, 2);
});

test("a waiting consumer gets the event; close ends iteration", async () => {
  const catalog = new Catalog(NET);
  const events = catalog.events();
  const a = await Identity.generate();
  const next = events.next();
  await catalog.upsert(await sign(a, 1, 1), 0);
  const r = await next;
  assert(!r.done && r.value.type === "discovered");
  const pending = events.next();
  catalog.close();
  assertEquals((await pending).done, true);
  // A closed subscription gets nothing more.
  const b = await Identity.generate();
  await catalog.upsert(await sign(b, 1, 1), 0);
  assertEquals((await events.next()).done, true);
});

test("a slow consumer's buffer is bounded: oldest dropped and counted", async () => {
  using catalog = new Catalog(NET, { eventBuffer: 3 });
  const events = catalog.events();
  const a = await Identity.generate();
  for (let u = 1; u <= 10; u++) await catalog.upsert(await sign(a, 1, u), u);
  assertEquals(events.dropped, 7);
  catalog.close();
  const updates: number[] = [];
  for await (const e of events) updates.push(e.entry.version.update);
  assertEquals(updates, [8, 9, 10], "the newest events are kept");
  assertThrows(() => catalog.events({ capacity: 0 }), RangeError);
  assertThrows(() => new Catalog(NET, { eventBuffer: -1 }), RangeError);
});

test("breaking out of for await unsubscribes", async () => {
  using catalog = new Catalog(NET, { eventBuffer: 2 });
  const events = catalog.events();
  const a = await Identity.generate();
  await catalog.upsert(await sign(a, 1, 1), 0);
  for await (const _ of events) break;
  for (let u = 2; u <= 5; u++) await catalog.upsert(await sign(a, 1, u), 0);
  assertEquals(events.dropped, 0, "no longer receiving");
  assertEquals((await events.next()).done, true);
});

test("purgeStale removes peers not seen for longer than maxAge; touch keeps them", async () => {
  using catalog = new Catalog(NET);
  const events = catalog.events();
  const a = await Identity.generate();
  const b = await Identity.generate();
  await catalog.upsert(await sign(a, 1, 1), 0);
  await catalog.upsert(await sign(b, 1, 1), 0);
  assert(catalog.touch(b.peerId, 900));
  assert(!catalog.touch((await Identity.generate()).peerId, 900));
  assertEquals(catalog.purgeStale(1000, 1000).length, 0, "exactly maxAge is not stale");
  const gone = catalog.purgeStale(1001, 1000);
  assertEquals(gone.map((e) => e.peerId.toHex()), [a.peerId.toHex()]);
  assertEquals(catalog.get(a.peerId), undefined);
  assert(catalog.get(b.peerId) !== undefined);
  const types: string[] = [];
  for (let i = 0; i < 3; i++) {
    const r = await events.next();
    if (!r.done) types.push(r.value.type);
  }
  assertEquals(types, ["discovered", "discovered", "departed"]);
});

test("a departed peer's old entry does not come back until its tombstone expires", async () => {
  using catalog = new Catalog(NET);
  const a = await Identity.generate();
  const old = await sign(a, 1, 1);
  await catalog.upsert(old, 0);
  catalog.remove(a.peerId, 10);
  assertEquals(await catalog.upsert(old, 20), "stale", "re-gossiped copy ignored");
  assertEquals(
    await catalog.upsert(await sign(a, 1, 2), 30),
    "discovered",
    "newer version returns",
  );
  catalog.remove(a.peerId, 40);
  catalog.purgeStale(2000, 1000);
  assertEquals(await catalog.upsert(old, 2000), "discovered", "tombstone forgotten after maxAge");
});

test("peersInGroup lists members of a group", async () => {
  using catalog = new Catalog(NET);
  const a = await Identity.generate();
  const b = await Identity.generate();
  const c = await Identity.generate();
  await catalog.upsert(await sign(a, 1, 1, [G]), 0);
  await catalog.upsert(await sign(b, 1, 1, [GroupId.random(), G]), 0);
  await catalog.upsert(await sign(c, 1, 1, []), 0);
  const members = catalog.peersInGroup(G).map((e) => e.peerId.toHex()).sort();
  assertEquals(members, [a.peerId.toHex(), b.peerId.toHex()].sort());
  assertEquals(catalog.peersInGroup(GroupId.random()), []);
  await catalog.upsert(await sign(a, 1, 2, []), 0);
  assertEquals(catalog.peersInGroup(G).map((e) => e.peerId.toHex()), [b.peerId.toHex()]);
});
