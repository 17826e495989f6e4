// Group failover: an abruptly lost leader, a graceful leader departure, and a partitioned minority that must not commit or read stale.

import { test } from "../harness.ts";
import { assert, assertEquals } from "../assert.ts";
import { OfflineError } from "../../lib/groups/errors.ts";
import { Consistency } from "../../lib/groups/types.ts";
import type { ApplyContext, StateMachine } from "../../lib/machine/state_machine.ts";
import {
  agreedLeader,
  eventually,
  FAST,
  type Member as GenericMember,
  Nodes,
  votersSettle,
  votingCluster,
  withDeadline,
} from "../group_net.ts";

/** A journal command: one write, named so that loss and duplication are visible. */
type Write = { id: string };

/** Keeps every applied write in order; `query()` answers a copy of the journal. */
class Journal implements StateMachine<Write, null, string[]> {
  entries: string[] = [];
  signature(): string {
    return "journal/v1";
  }
  apply(c: Write, _ctx: ApplyContext): void {
    this.entries.push(c.id);
  }
  query(): string[] {
    return [...this.entries];
  }
  /** Lets a node that formed its own cluster before bonding rejoin after losing the merge. */
  reset(): void {
    this.entries = [];
  }
}

type Member = GenericMember<Journal>;

/** `count` voting members with journals, led by the first. */
const cluster = (nodes: Nodes, count: number): Promise<Member[]> =>
  votingCluster(nodes, count, () => new Journal());

/** Waits until every member applied exactly `expected`, in order. */
async function journalsAre(members: readonly Member[], expected: string[], what: string) {
  await eventually(
    () => members.every((m) => m.machine.entries.join() === expected.join()),
    what,
  );
  for (const m of members) assertEquals(m.machine.entries, expected, what);
}

/** The error a call rejected with, or a failure naming what it resolved to. */
async function rejection(call: Promise<unknown>, what: string): Promise<unknown> {
  try {
    const value = await call;
    throw new Error(`${what}: expected a rejection, got ${JSON.stringify(value)}`);
  } catch (err) {
    return err;
  }
}

/** True for an OfflineError or the rejection of an `AbortSignal.timeout` signal. */
function offlineOrTimedOut(err: unknown): boolean {
  return err instanceof OfflineError ||
    (err instanceof Error && err.name === "TimeoutError");
}

for (const fabric of ["memory", "quic"] as const) {
  test(`leader lost abruptly (${fabric}): survivors elect, keep writing and agree`, async () => {
    await using nodes = new Nodes(fabric);
    const members = await cluster(nodes, 3);
    const [old, ...survivors] = members as [Member, Member, Member];
    const written: string[] = [];
    for (const [k, m] of members.entries()) {
      await withDeadline(`write w${k}`, (o) => m.group.execute({ id: `w${k}` }, o));
      written.push(`w${k}`);
    }
    await journalsAre(members, written, "all applied the first writes");

    // Memory: cut the leader off first, so not even its departure reaches anyone.
    nodes.memory?.isolate(old.net.local().id());
    await nodes.close(old.net);

    const leader = await agreedLeader(survivors.map((s) => s.group), "survivors elect", {
      excluded: old.net.local().id(),
    });
    assert(survivors.some((s) => s.net.local().id().equals(leader)), "a survivor leads");
    for (const [k, s] of survivors.entries()) {
      await withDeadline(`write after loss ${k}`, (o) => s.group.execute({ id: `s${k}` }, o));
      written.push(`s${k}`);
    }
    await journalsAre(survivors, written, "survivors agree on every write");
    for (const s of survivors) {
      const r = await withDeadline(
        "strong read",
        (o) => s.group.query(null, Consistency.Strong, o),
      );
      assertEquals(r.result, written);
    }
  }, { timeout: 20_000 });

  test(`leader leaves gracefully (${fabric}): the others have a new leader soon`, async () => {
    await using nodes = new Nodes(fabric);
    const members = await cluster(nodes, 3);
    const [old, ...rest] = members as [Member, Member, Member];
    const before = await withDeadline("write", (o) => rest[0]!.group.execute({ id: "a" }, o));
    await withDeadline("all commit", (o) => rest[1]!.group.when().committed().reaches(before, o));

    await old.group.leave();
    // A few election timeouts; leadership is handed over, so this is generous.
    const ms = 6 * (FAST.electionTimeout + FAST.electionTimeoutJitter);
    const leader = await agreedLeader(rest.map((m) => m.group), "new leader after leave", {
      excluded: old.net.local().id(),
      ms,
    });
    assert(rest.some((m) => m.net.local().id().equals(leader)));
    await withDeadline("write after leave", (o) => rest[1]!.group.execute({ id: "b" }, o));
    await journalsAre(rest, ["a", "b"], "the rest keep replicating");
    // The departed member is dropped from the configuration.
    await votersSettle(rest, rest.map((m) => m.net.local().id()), "departed member removed");
  }, { timeout: 20_000 });
}

test(
  "partition (memory): a minority commits nothing and never reads stale; after heal all converge",
  async () => {
    await using nodes = new Nodes("memory");
    const members = await cluster(nodes, 5);
    const minority = members.slice(0, 2); // the leader and one follower
    const majority = members.slice(2);
    const id = (m: Member) => m.net.local().id();
    const acked: string[] = [];
    for (const k of [0, 1]) {
      await withDeadline("write before", (o) => members[k + 3]!.group.execute({ id: `p${k}` }, o));
      acked.push(`p${k}`);
    }
    await journalsAre(members, acked, "all applied the writes before the partition");
    const before = [...acked];
    const committedBefore = minority.map((m) => m.group.committed());

    nodes.memory!.partition(minority.map(id), majority.map(id));

    // The minority: executes through the old leader and through its follower must not commit.
    const minorityWrites = minority.map((m, k) =>
      rejection(
        m.group.execute({ id: `x${k}` }, { signal: AbortSignal.timeout(FAST.forwardTimeout) }),
        `minority execute ${k}`,
      )
    );

    // The majority elects among itself and commits.
    const leader = await agreedLeader(majority.map((m) => m.group), "majority elects", {
      excluded: id(members[0]!),
    });
    assert(majority.some((m) => id(m).equals(leader)));
    for (const [k, m] of majority.entries()) {
      await withDeadline(`majority write ${k}`, (o) => m.group.execute({ id: `m${k}` }, o));
      acked.push(`m${k}`);
    }
    await journalsAre(majority, acked, "the majority applied its writes");

    // The majority has moved on: a strong read in the minority must fail, not answer `before`.
    const minorityReads = minority.map((m, k) =>
      rejection(
        m.group.query(null, Consistency.Strong, {
          signal: AbortSignal.timeout(FAST.queryTimeout + FAST.forwardTimeout),
        }),
        `minority strong read ${k}`,
      )
    );
    for (const [k, err] of (await Promise.all(minorityWrites)).entries()) {
      assert(offlineOrTimedOut(err), `minority execute ${k} failed with ${String(err)}`);
    }
    for (const [k, err] of (await Promise.all(minorityReads)).entries()) {
      assert(offlineOrTimedOut(err), `minority strong read ${k} failed with ${String(err)}`);
    }
    for (const [k, m] of minority.entries()) {
      assertEquals(m.machine.entries, before, `minority member ${k} applied nothing new`);
      assertEquals(
        m.group.committed(),
        committedBefore[k],
        `minority member ${k} committed nothing`,
      );
    }

    nodes.memory!.heal();
    const final = await agreedLeader(members.map((m) => m.group), "one leader after heal");
    assert(majority.some((m) => id(m).equals(final)), "the majority's leader stays");
    await withDeadline("write after heal", (o) => minority[1]!.group.execute({ id: "h" }, o));
    acked.push("h");
    await eventually(
      () => members.every((m) => m.machine.entries.join() === members[0]!.machine.entries.join()),
      "everyone converges",
    );
    const journal = members[0]!.machine.entries;
    for (const m of members) assertEquals(m.machine.entries, journal);
    for (const w of acked) assert(journal.includes(w), `acknowledged write ${w} kept`);
    assertEquals(new Set(journal).size, journal.length, `no write applied twice: ${journal}`);
    assertEquals(journal.slice(0, before.length), before);
  },
  { timeout: 20_000 },
);
