// Groups and their log stores: a store of another group or another member is refused at join and left untouched; a durable store keeps a lone member's log across a restart.

import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "../harness.ts";
import { assert, assertEquals } from "../assert.ts";
import { GroupKey } from "../../lib/groups/key.ts";
import { GroupTerminatedError } from "../../lib/groups/errors.ts";
import { StoreOwnerError } from "../../storage/errors.ts";
import { InMemoryLogStore } from "../../storage/memory.ts";
import type { Storage } from "../../storage/types.ts";
import { Counter, type CounterCommand } from "../counter.ts";
import { defaultStoreName, openDefaultStore } from "../../storage/default.ts";
import { eventually, FAST, Nodes, withDeadline } from "../group_net.ts";
import type { Network } from "../../lib/network/network.ts";

type Store = Storage<CounterCommand>;

/** Joins `net` to the group of `key` with `store` and a fresh counter. */
function joinWith(net: Network, key: GroupKey, store: Store) {
  const counter = new Counter();
  const group = net.groups().withKey(key).withStateMachine(counter).withLogStorage(store)
    .withConsensusConfig(FAST).join();
  return { group, counter };
}

/** The error a group's `when()` reports once the group stopped at join. */
async function joinFailure(group: ReturnType<typeof joinWith>["group"]): Promise<unknown> {
  try {
    await withDeadline("the join to fail", (o) => group.when().leaderElected(o));
  } catch (err) {
    return err;
  }
  throw new Error("the group joined although its store belongs to someone else");
}

/** Runs `body` with a memory store, and with this runtime's durable store in a temporary directory. */
function withEachStore(
  name: string,
  body: (open: () => Promise<Store>, nodes: Nodes) => Promise<void>,
): void {
  test(`${name} (InMemoryLogStore)`, async () => {
    await using nodes = new Nodes("memory");
    const store = new InMemoryLogStore<CounterCommand>();
    await body(() => Promise.resolve(store), nodes);
  });
  test(`${name} (${defaultStoreName})`, async () => {
    const dir = await mkdtemp(join(tmpdir(), "mosaik-groups-storage-"));
    try {
      await using nodes = new Nodes("memory");
      await body(() => openDefaultStore<CounterCommand>(join(dir, "log.db")), nodes);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
}

withEachStore("a store that holds another group's log is refused at join", async (open, nodes) => {
  const net = await nodes.add();
  const first = await open();
  const a = joinWith(net, GroupKey.generate(), first);
  await withDeadline("the lone member leads", (o) => a.group.when().isLeader(o));
  const at = await withDeadline("write", (o) => a.group.execute({ add: 7 }, o));
  await a.group.close();
  const before = await first.last();
  assert(before.index >= at, "the first group's entries are in the store");
  await first.close?.();

  const store = await open();
  try {
    const b = joinWith(net, GroupKey.generate(), store);
    const err = await joinFailure(b.group);
    assert(
      err instanceof GroupTerminatedError,
      `GroupTerminatedError expected, got ${String(err)}`,
    );
    assert(err.cause instanceof StoreOwnerError, `cause should be StoreOwnerError: ${err.cause}`);
    assert(/holds the log of group/.test(err.cause.message), err.cause.message);
    assertEquals(await store.last(), before, "the refused group changed nothing");
  } finally {
    await store.close?.();
  }
});

withEachStore(
  "a store of another member of the same group is refused at join",
  async (open, nodes) => {
    const key = GroupKey.generate();
    const [n1, n2] = await nodes.addMany(2);
    const first = await open();
    const a = joinWith(n1!, key, first);
    await withDeadline("the lone member leads", (o) => a.group.when().isLeader(o));
    await a.group.close();
    const before = await first.last();
    await first.close?.();

    const store = await open();
    try {
      const b = joinWith(n2!, key, store);
      const err = await joinFailure(b.group);
      assert(
        err instanceof GroupTerminatedError,
        `GroupTerminatedError expected, got ${String(err)}`,
      );
      assert(err.cause instanceof StoreOwnerError, `cause should be StoreOwnerError: ${err.cause}`);
      assert(/belongs to member/.test(err.cause.message), err.cause.message);
      assertEquals(await store.last(), before, "the refused member changed nothing");
    } finally {
      await store.close?.();
    }
  },
);

withEachStore(
  "a lone member restarted on its store keeps term, log and state",
  async (open, nodes) => {
    const key = GroupKey.generate();
    const secret = crypto.getRandomValues(new Uint8Array(32));
    const first = await open();
    const net1 = await nodes.add((b) => b.withSecretKey(secret));
    const a = joinWith(net1, key, first);
    await withDeadline("the lone member leads", (o) => a.group.when().isLeader(o));
    for (const add of [1, 2, 3]) await withDeadline("write", (o) => a.group.execute({ add }, o));
    const term = (await first.loadHardState())?.term ?? 0;
    // Closing the handle (not leave) keeps the member in its configuration, like a crash.
    await a.group.close();
    await nodes.close(net1);
    await first.close?.();

    const store = await open();
    try {
      const net2 = await nodes.add((b) => b.withSecretKey(secret));
      const b = joinWith(net2, key, store);
      await withDeadline("the restarted member leads again", (o) => b.group.when().isLeader(o));
      await eventually(() => b.counter.value === 6, "1 + 2 + 3 replayed from the store");
      await withDeadline("write after restart", (o) => b.group.execute({ add: 10 }, o));
      assertEquals(b.counter.value, 16, "execute resolves after the command was applied");
      assert(((await store.loadHardState())?.term ?? 0) > term, "a new term after the restart");
      await b.group.close();
    } finally {
      await store.close?.();
    }
  },
);
