// Crash-restart scenarios over child processes with durable stores: members SIGKILLed and restarted with the same key and store.

import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { GroupKey } from "../../mod.ts";
import { toHex } from "../../lib/primitives/bytes.ts";
import { assert, assertEquals } from "../assert.ts";
import { Cluster, type NodeProc, type Runtime } from "./cluster.ts";
import { agreedLeader, assertValue, write } from "./failover.ts";

/** Bound on the configuration settling on the expected members. */
const MEMBERS_MS = 15_000;

/** One member's identity across restarts: its secret key and its store. */
interface Seat {
  readonly secret: string;
  readonly store: string;
}

/** The configuration committed at every node in `procs`, once all of them report `voters` and no learner. */
async function membersSettle(procs: NodeProc[], voters: readonly string[]): Promise<void> {
  const want = JSON.stringify({ voters: [...voters].sort(), learners: [] });
  const end = Date.now() + MEMBERS_MS;
  let views: string[] = [];
  while (Date.now() < end) {
    views = await Promise.all(procs.map(async (p) => {
      const r = await p.call({ op: "members" });
      return JSON.stringify({ voters: r.voters, learners: r.learners });
    }));
    if (views.every((v) => v === want)) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`Members did not settle on ${want}:\n${views.join("\n")}`);
}

/**
 * A three-member group with durable stores on `runtime`: the first node starts alone and
 * leads, two more join, and all three become voters. `body` gets the running processes,
 * each member's seat (for restarts) and the cluster; the temporary stores are removed after.
 */
async function withDurableGroup(
  runtime: Runtime,
  body: (ctx: {
    cluster: Cluster;
    procs: NodeProc[];
    seats: Seat[];
    ids: string[];
    start(seat: Seat, bootstrap?: string): Promise<NodeProc>;
  }) => Promise<void>,
): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), "mosaik-restart-"));
  try {
    await using cluster = new Cluster(GroupKey.generate().toHex());
    const seats: Seat[] = [0, 1, 2].map((i) => ({
      secret: toHex(crypto.getRandomValues(new Uint8Array(32))),
      store: join(dir, `node${i}.db`),
    }));
    const start = (seat: Seat, bootstrap?: string) =>
      cluster.start(runtime, bootstrap, ["--store", seat.store, "--secret", seat.secret]);
    const first = await start(seats[0]!);
    const firstReady = await first.ready;
    assertEquals(await agreedLeader([first]), firstReady.id, "a lone node leads");
    const others = [];
    for (const seat of seats.slice(1)) others.push(await start(seat, firstReady.addr));
    const procs = [first, ...others];
    const ids = await Promise.all(procs.map(async (p) => (await p.ready).id));
    await agreedLeader(procs);
    await membersSettle(procs, ids);
    await body({ cluster, procs, seats, ids, start });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * All three members are SIGKILLed and restarted with the same keys and stores: they elect a
 * leader among themselves, every acknowledged write is still there (strong and weak reads),
 * the members are the same three, and the group keeps committing.
 */
export async function wholeGroupRestart(runtime: Runtime): Promise<void> {
  await withDurableGroup(runtime, async ({ procs, seats, ids, start }) => {
    let total = 0;
    let index = 0;
    for (let k = 1; k <= 9; k++) {
      index = await write(procs[k % 3]!, k);
      total += k;
    }
    await assertValue(procs, index, total);

    for (const p of procs) {
      const exit = await p.kill();
      assertEquals(exit.signal, "SIGKILL", `${p.label} died of SIGKILL`);
    }

    const first = await start(seats[0]!);
    const addr = (await first.ready).addr;
    const again = [first, await start(seats[1]!, addr), await start(seats[2]!, addr)];
    const againIds = await Promise.all(again.map(async (p) => (await p.ready).id));
    assertEquals(againIds, ids, "the restarted nodes have their old PeerIds");

    await agreedLeader(again);
    // The old entries commit with the new leader's first entry; then every machine replays them.
    await assertValue(again, index, total);
    await membersSettle(again, ids);

    const at = await write(again[1]!, 100);
    assert(at > index, `the log continues after the restart: ${at} after ${index}`);
    await assertValue(again, at, total + 100);
    for (const p of again) {
      const { code } = await p.stop();
      assertEquals(code, 0, `${p.label} exit code\n${p.stderr}`);
    }
  });
}

/**
 * One follower is SIGKILLed; the other two keep committing; the follower restarts with the
 * same key and store, catches up, and is still one of the same three voters — no member is
 * added or removed.
 */
export async function followerRestart(runtime: Runtime): Promise<void> {
  await withDurableGroup(runtime, async ({ procs, seats, ids, start }) => {
    let total = 0;
    let index = 0;
    for (let k = 1; k <= 5; k++) {
      index = await write(procs[k % 3]!, k);
      total += k;
    }
    await assertValue(procs, index, total);

    const leader = await agreedLeader(procs);
    const at = ids.findIndex((id) => id !== leader);
    const follower = procs[at]!;
    const exit = await follower.kill();
    assertEquals(exit.signal, "SIGKILL", `${follower.label} died of SIGKILL`);
    const rest = procs.filter((p) => p !== follower);
    for (let k = 0; k < 3; k++) {
      index = await write(rest[k % 2]!, 10);
      total += 10;
    }
    await assertValue(rest, index, total);

    const leaderProc = procs[ids.indexOf(leader)]!;
    const back = await start(seats[at]!, (await leaderProc.ready).addr);
    assertEquals((await back.ready).id, ids[at], "the restarted follower has its old PeerId");
    const all = [...rest, back];
    await assertValue(all, index, total);
    await membersSettle(all, ids);

    index = await write(back, 1000);
    total += 1000;
    await assertValue(all, index, total);
    await membersSettle(all, ids);
    for (const p of all) {
      const { code } = await p.stop();
      assertEquals(code, 0, `${p.label} exit code\n${p.stderr}`);
    }
  });
}
