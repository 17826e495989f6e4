// Group bad input: empty and unencodable commands, calls after leave, a node with another key, and garbage on a bond stream.

import { test } from "../harness.ts";
import { assert, assertEquals, assertRejects } from "../assert.ts";
import { GroupKey } from "../../lib/groups/key.ts";
import { EncodingError, GroupTerminatedError, NoCommandsError } from "../../lib/groups/errors.ts";
import { BondError, openBond } from "../../lib/groups/bond/bond.ts";
import { Consistency } from "../../lib/groups/types.ts";
import { decode, encode } from "../../lib/wire/codec.ts";
import { encodeFrame } from "../../lib/wire/framing.ts";
import { CloseCode } from "../../transport/types.ts";
import { Counter, type CounterCommand } from "../counter.ts";
import {
  agreedLeader,
  eventually,
  FAST,
  joinMember,
  type Member as GenericMember,
  Nodes,
  votingCluster,
  withDeadline,
  within,
} from "../group_net.ts";

type Member = GenericMember<Counter>;

/** Largest bond message the nodes of the garbage test accept. */
const MAX_MESSAGE = 64 * 1024;

/** `count` voting members whose nodes accept bond messages up to {@link MAX_MESSAGE}. */
const cluster = (nodes: Nodes, count: number): Promise<Member[]> =>
  votingCluster(nodes, count, () => new Counter(), {
    configure: (b) => b.withGroupsConfig({ handshakeTimeout: 3_000, maxMessageSize: MAX_MESSAGE }),
  });

/** Waits until every member is bonded with all the others, then proves the group commits. */
async function worksAgain(members: readonly Member[], add: number, what: string): Promise<void> {
  await eventually(
    () => members.every((m) => m.group.bonds().size === members.length - 1),
    `${what}: bonds re-established`,
  );
  await agreedLeader(members.map((m) => m.group), `${what}: one leader`);
  const target = members[0]!.machine.value + add;
  for (const m of members) {
    await withDeadline(`${what}: execute`, (o) => m.group.execute({ add }, o));
  }
  const total = target + add * (members.length - 1);
  await eventually(
    () => members.every((m) => m.machine.value === total),
    `${what}: all applied ${total}`,
  );
}

for (const fabric of ["memory", "quic"] as const) {
  test(
    `bad calls (${fabric}): empty batches, unencodable commands, calls after leave`,
    async () => {
      await using nodes = new Nodes(fabric);
      const [a, b] = await cluster(nodes, 2) as [Member, Member];

      for (const g of [a.group, b.group]) {
        await assertRejects(() => g.executeMany([]), NoCommandsError);
        await assertRejects(() => g.feedMany([]), NoCommandsError);
      }
      const unencodable = { add: 1, f: () => 1 } as unknown as CounterCommand;
      for (const g of [a.group, b.group]) {
        await assertRejects(() => g.execute(unencodable), EncodingError);
        await assertRejects(() => g.feed(unencodable), EncodingError);
        await assertRejects(() => g.executeMany([{ add: 1 }, unencodable]), EncodingError);
      }
      // Nothing of a refused call was applied, and the group keeps working.
      const i = await within(b.group.execute({ add: 2 }), "execute after refusals");
      await withDeadline("a commits", (o) => a.group.when().committed().reaches(i, o));
      await eventually(() => a.machine.value === 2 && b.machine.value === 2, "only the good write");
      assertEquals(a.machine.applied, 1);

      const pending = b.group.when().leaderChanged();
      const pendingResult = pending.then(() => "resolved", (err: unknown) => err);
      await b.group.leave();
      assert(await pendingResult instanceof GroupTerminatedError, "a pending wait rejects");
      await assertRejects(() => b.group.execute({ add: 1 }), GroupTerminatedError);
      await assertRejects(() => b.group.executeMany([{ add: 1 }]), GroupTerminatedError);
      await assertRejects(() => b.group.feed({ add: 1 }), GroupTerminatedError);
      await assertRejects(() => b.group.feedMany([{ add: 1 }]), GroupTerminatedError);
      await assertRejects(() => b.group.query(null, Consistency.Weak), GroupTerminatedError);
      await assertRejects(() => b.group.query(null, Consistency.Strong), GroupTerminatedError);
      await assertRejects(() => b.group.when().leaderElected(), GroupTerminatedError);
      await b.group.leave(); // idempotent
      // The member that stayed keeps working (alone it is a majority once b is removed).
      await withDeadline("a leads", (o) => a.group.when().isLeader(o));
      await withDeadline("a writes", (o) => a.group.execute({ add: 3 }, o));
      assertEquals((await a.group.query(null, Consistency.Strong)).result, 5);
    },
    { timeout: 20_000 },
  );

  test(`another key (${fabric}): a node with a different key bonds with nobody`, async () => {
    await using nodes = new Nodes(fabric);
    const members = await cluster(nodes, 3);
    const leader = members[0]!.net.local().id();
    const intruderNet = await nodes.add();
    const wrongKey = GroupKey.generate();
    const intruder = joinMember(intruderNet, wrongKey, new Counter());
    assert(!intruder.group.id().equals(members[0]!.group.id()));

    // Once every member has the intruder's entry (listing its group) and the intruder
    // elected itself, bonding would have been tried if the groups matched.
    await eventually(
      () =>
        members.every((m) =>
          m.net.catalog.get(intruderNet.local().id())?.groups.some((id) =>
            id.equals(intruder.group.id())
          ) === true
        ),
      "members know the intruder's group",
    );
    await withDeadline("intruder leads itself", (o) => intruder.group.when().isLeader(o));
    await withDeadline(
      "the group commits meanwhile",
      (o) => members[1]!.group.execute({ add: 1 }, o),
    );
    assertEquals(intruder.group.bonds().size, 0);
    for (const m of members) {
      assertEquals(m.group.bonds().size, 2);
      assert(!m.group.bonds().has(intruderNet.local().id()));
      assert(leader.equals(m.group.leader()), "the members' leader is unchanged");
    }

    // Claiming the real group id with the wrong key fails the handshake with 401.
    const victim = members[0]!.net;
    const entry = intruderNet.catalog.get(victim.local().id());
    assert(entry !== undefined, "the intruder knows the victim's entry");
    const conn = await intruderNet.connect(victim.local().id());
    const stream = await intruderNet.openStream(victim.local().id(), { p: "bond" });
    const err = await assertRejects(
      () =>
        openBond({
          stream,
          connectionClosed: conn.closed,
          abort: (code, reason) => conn.close(code, reason),
        }, {
          heartbeatInterval: FAST.heartbeatInterval,
          heartbeatJitter: FAST.heartbeatJitter,
          maxMissedHeartbeats: FAST.maxMissedHeartbeats,
          handshakeTimeout: 3_000,
          maxMessageSize: MAX_MESSAGE,
          identity: intruderNet.identity,
          networkId: intruderNet.networkId,
          groupId: members[0]!.group.id(),
          key: wrongKey,
          certHash: entry.certificateHash,
        }),
      BondError,
    );
    assertEquals((err as BondError).code, CloseCode.Unauthorized);
    assertEquals(intruder.group.bonds().size, 0);
    await worksAgain(members, 10, "after the wrong-key handshake");
    for (const m of members) assert(!m.group.bonds().has(intruderNet.local().id()));
    assertEquals(intruder.machine.value, 0, "the intruder received nothing");
  }, { timeout: 20_000 });

  test(
    `garbage on a bond stream (${fabric}): the victim closes the connection with 400 and its group recovers`,
    async () => {
      await using nodes = new Nodes(fabric);
      const members = await cluster(nodes, 3);
      const victim = members[0]!;
      const attacker = members[1]!.net;
      const victimId = victim.net.local().id();
      const victimHex = victimId.toHex();

      // A well-formed frame that is no bond hello: the bond stream is refused with 400.
      {
        const stream = await attacker.openStream(victimHex, { p: "bond" });
        await stream.send({ t: "garbage", x: [1, 2, 3] });
        const answer = await within(stream.receive(), "the victim answers the bad hello");
        assertEquals(
          (answer as { t?: unknown; code?: unknown } | undefined)?.code,
          CloseCode.ProtocolViolation,
          `refusal: ${JSON.stringify(answer)}`,
        );
        await stream[Symbol.asyncDispose]();
      }

      // Bytes that are no CBOR: the victim closes the whole connection with 400.
      {
        const garbage = new Uint8Array([0x1c, 0xff, 0xfe]);
        let undecodable = false;
        try {
          decode(garbage);
        } catch {
          undecodable = true;
        }
        assert(undecodable, "the garbage really is undecodable");
        const conn = await attacker.connect(victimId);
        const raw = await conn.openStream();
        const writer = raw.writable.getWriter();
        await writer.write(encodeFrame(encode({ p: "bond" })));
        await writer.write(encodeFrame(garbage));
        const info = await within(conn.closed, "the victim closes the connection");
        assertEquals(info.code, CloseCode.ProtocolViolation, `close: ${JSON.stringify(info)}`);
        assert(info.remote, "the victim closed it");
        writer.releaseLock();
        await raw.writable.abort().catch(() => {});
        await raw.readable.cancel().catch(() => {});
      }
      await worksAgain(members, 1, "after undecodable bytes");

      // A frame over the victim's maxMessageSize: the victim closes the connection with 400.
      {
        const conn = await attacker.connect(victimId);
        const stream = await attacker.openStream(victimHex, { p: "bond" });
        stream.maxFrameSize = 4 * MAX_MESSAGE;
        void stream.send(new Uint8Array(2 * MAX_MESSAGE)).catch(() => {});
        const info = await within(conn.closed, "the victim closes the connection");
        assertEquals(info.code, CloseCode.ProtocolViolation, `close: ${JSON.stringify(info)}`);
        assert(info.remote, "the victim closed it");
        await stream[Symbol.asyncDispose]();
      }
      await worksAgain(members, 2, "after an oversized frame");
      const value = victim.machine.value;
      assertEquals(value, 3 * 1 + 3 * 2);
      for (const m of members) {
        const r = await withDeadline(
          "strong read",
          (o) => m.group.query(null, Consistency.Strong, o),
        );
        assertEquals(r.result, value);
      }
    },
    { timeout: 20_000 },
  );
}
