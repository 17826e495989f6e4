// GroupDriver over an in-process link: bootstrap tie-break, autopilot, forwarding, reads, failover, bad input.

import { test } from "../harness.ts";
import { Counter, type CounterCommand } from "../counter.ts";
import { assert, assertEquals, assertRejects } from "../assert.ts";
import { GroupBuilder, type GroupDefinition } from "../../lib/groups/builder.ts";
import { CONSENSUS_DEFAULTS, ConsensusConfig } from "../../lib/groups/config.ts";
import {
  driverTickMs,
  GroupDriver,
  type GroupLink,
  type GroupMessage,
} from "../../lib/groups/driver.ts";
import { GroupTerminatedError, NoCommandsError, OfflineError } from "../../lib/groups/errors.ts";
import { GroupKey } from "../../lib/groups/key.ts";
import type { Group } from "../../lib/groups/types.ts";
import { PeerId } from "../../lib/primitives/ids.ts";
import { SeededRng } from "../../lib/primitives/rng.ts";
import { EncodingError } from "../../lib/wire/errors.ts";
import { decodeEntry } from "../../lib/wire/entry.ts";
import { type HardState, type Storage, SystemEntry } from "../../storage/types.ts";
import { InMemoryLogStore } from "../../storage/memory.ts";

type Cmd = CounterCommand;

/** The test timings, with the given forward timeout. */
function timings(forwardTimeout = 600): ConsensusConfig {
  return ConsensusConfig.builder()
    .withHeartbeatInterval(20)
    .withHeartbeatJitter(5)
    .withElectionTimeout(100)
    .withElectionTimeoutJitter(50)
    .withBootstrapDelay(60)
    .withForwardTimeout(forwardTimeout)
    .withQueryTimeout(600)
    .withDeadMemberTimeout(2000)
    .build();
}

const CONFIG = timings();

/** What one member may have instead of the defaults: its own store and consensus config. */
interface MemberSetup {
  readonly storage?: Storage<Cmd>;
  readonly consensus?: ConsensusConfig;
}

function definition(key: GroupKey, setup: MemberSetup = {}): GroupDefinition<Counter> {
  let def: GroupDefinition<Counter> | undefined;
  const builder = new GroupBuilder(
    <M extends Parameters<ConstructorParameters<typeof GroupBuilder>[0]>[0]["machine"]>(
      d: GroupDefinition<M>,
    ) => {
      def = d as unknown as GroupDefinition<Counter>;
      return undefined as unknown as Group<M>;
    },
  ).withKey(key).withStateMachine(new Counter());
  const consensus = setup.consensus ?? CONFIG;
  if (setup.storage === undefined) builder.withConsensusConfig(consensus).join();
  else builder.withLogStorage(setup.storage).withConsensusConfig(consensus).join();
  return def!;
}

/** Drivers joined by an in-process "bond" fabric with async delivery and cuttable links. */
class Fabric {
  readonly drivers = new Map<string, GroupDriver<Counter>>();
  readonly cut = new Set<string>();
  /** Messages for which this answers true are lost on the way. */
  drop: ((from: string, to: string, message: GroupMessage) => boolean) | undefined;

  link(self: string): GroupLink {
    return {
      send: (peer: string, message: GroupMessage): boolean => {
        if (!this.#up(self, peer)) return false;
        if (this.drop?.(self, peer, message)) return true;
        queueMicrotask(() => {
          if (this.#up(self, peer)) this.drivers.get(peer)?.onMessage(self, message);
        });
        return true;
      },
      bonded: () => [...this.drivers.keys()].filter((p) => p !== self && this.#up(self, p)),
    };
  }

  #up(a: string, b: string): boolean {
    return this.drivers.has(a) && this.drivers.has(b) && !this.cut.has(a) && !this.cut.has(b);
  }

  async add(
    key: GroupKey,
    seed: number,
    setup: MemberSetup = {},
  ): Promise<[string, GroupDriver<Counter>]> {
    const self = new PeerId(new SeededRng(seed).bytes(32));
    const id = self.toHex();
    const driver = await GroupDriver.start({
      definition: definition(key, setup),
      self,
      link: this.link(id),
      rng: new SeededRng(seed),
    });
    this.drivers.set(id, driver);
    for (const other of this.drivers.keys()) {
      if (other === id) continue;
      driver.onPeerUp(other);
      this.drivers.get(other)!.onPeerUp(id);
    }
    return [id, driver];
  }

  isolate(id: string): void {
    this.cut.add(id);
    for (const other of this.drivers.keys()) {
      if (other !== id) {
        this.drivers.get(other)!.onPeerDown(id);
        this.drivers.get(id)!.onPeerDown(other);
      }
    }
  }

  leader(): GroupDriver<Counter> | undefined {
    return [...this.drivers.values()].find((d) => d.runner.core.role === "leader");
  }

  async close(): Promise<void> {
    for (const d of this.drivers.values()) await d.close();
  }
}

/** Polls `cond` until it holds; throws after `ms`. */
async function eventually(cond: () => boolean, ms = 5000, what = "condition"): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`${what} not reached within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

async function threeNodes(): Promise<Fabric> {
  const fabric = new Fabric();
  const key = GroupKey.generate();
  for (const seed of [11, 22, 33]) await fabric.add(key, seed);
  await eventually(
    () => {
      const l = fabric.leader();
      return l !== undefined && l.runner.core.membership.voters.length === 3 &&
        l.runner.core.committedInTerm();
    },
    8000,
    "three voters",
  );
  return fabric;
}

test(
  "driver: fresh nodes form one cluster — the lowest PeerId bootstraps, the others are added and promoted",
  async () => {
    const fabric = await threeNodes();
    try {
      const ids = [...fabric.drivers.keys()].sort();
      const clusters = new Set([...fabric.drivers.values()].map((d) => d.runner.core.clusterId));
      assertEquals(clusters.size, 1, "one cluster");
      // the bootstrap entry names the lowest id as the founding voter
      const first = fabric.drivers.get(ids[0]!)!.runner.core.log.entry(1)?.command as {
        body: { voters: string[] };
      };
      assertEquals(first.body.voters, [ids[0]]);
    } finally {
      await fabric.close();
    }
  },
  { timeout: 20_000 },
);

test(
  "driver: execute through a follower is forwarded, commits everywhere, and reads see it",
  async () => {
    const fabric = await threeNodes();
    try {
      const follower = [...fabric.drivers.values()].find((d) => d.runner.core.role !== "leader")!;
      const range = await follower.submit([{ add: 5 }], true);
      assert(range.start >= 1 && range.end === range.start);
      const r2 = await follower.submit([{ add: 1 }, { add: 2 }], false);
      assertEquals(r2.end - r2.start, 1, "feedMany gives a contiguous range");
      assert(r2.start > range.end);
      const strong = await follower.query(null, "strong");
      assert(strong.result === 5 || strong.result === 8, `strong read ${strong.result}`);
      await follower.submit([{ add: 0 }], true);
      const after = await follower.query(null, "strong");
      assertEquals(after.result, 8);
      await eventually(() =>
        [...fabric.drivers.values()].every((d) => d.runner.applied.index >= after.atPosition.index)
      );
      for (const d of fabric.drivers.values()) {
        assertEquals(
          (await d.query(null, "weak")).result,
          8,
        );
      }
    } finally {
      await fabric.close();
    }
  },
  { timeout: 20_000 },
);

test("driver: ten concurrent executes from two nodes commit at distinct indices", async () => {
  const fabric = await threeNodes();
  try {
    const [a, b] = [...fabric.drivers.values()];
    const results = await Promise.all(
      Array.from({ length: 10 }, (_, i) => (i % 2 === 0 ? a! : b!).submit([{ add: 1 }], true)),
    );
    const indices = results.map((r) => r.start);
    assertEquals(new Set(indices).size, 10);
    assertEquals((await a!.query(null, "strong")).result, 10);
  } finally {
    await fabric.close();
  }
}, { timeout: 20_000 });

test(
  "driver: when the leader leaves, the others elect a new leader and writes continue",
  async () => {
    const fabric = await threeNodes();
    try {
      const old = fabric.leader()!;
      await old.submit([{ add: 3 }], true);
      const oldId = old.runner.core.id;
      await old.leave();
      fabric.drivers.delete(oldId);
      await eventually(() => fabric.leader() !== undefined, 5000, "new leader");
      const next = fabric.leader()!;
      await next.submit([{ add: 4 }], true);
      assertEquals((await next.query(null, "strong")).result, 7);
      await eventually(() => !next.runner.core.isMember(oldId), 5000, "departed member removed");
    } finally {
      await fabric.close();
    }
  },
  { timeout: 20_000 },
);

test("driver: bad input and offline calls fail with their typed errors", async () => {
  const fabric = await threeNodes();
  try {
    const d = [...fabric.drivers.values()].find((x) => x.runner.core.role !== "leader")!;
    await assertRejects(() => d.submit([], true), NoCommandsError);
    await assertRejects(() => d.submit([{ add: () => 1 } as unknown as Cmd], true), EncodingError);
    fabric.isolate(d.runner.core.id);
    const err = await assertRejects(() => d.submit([{ add: 9 }], true), OfflineError);
    assertEquals((err as OfflineError<Cmd, null>).commands, [{ add: 9 }]);
    await assertRejects(() => d.query(null, "strong"), OfflineError);
    await d.close();
    await assertRejects(() => d.submit([{ add: 1 }], true), GroupTerminatedError);
  } finally {
    await fabric.close();
  }
}, { timeout: 20_000 });

/** True when `message` is an append carrying a configuration in which `peer` votes. */
function promotes(message: GroupMessage, peer: string): boolean {
  if (message.t !== "raft" || message.m.type !== "append") return false;
  return (message.m.entries as Uint8Array[]).some((bytes) => {
    const command = decodeEntry(bytes).command;
    return command instanceof SystemEntry && command.body.type === "membership" &&
      command.body.voters.includes(peer);
  });
}

/** `promise`, or a rejection naming `what` after `ms`. */
async function within<T>(promise: Promise<T>, what: string, ms: number): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

test(
  "driver: a learner that leaves while its promotion is in flight stays until removed, and the group goes on",
  async () => {
    const fabric = new Fabric();
    const key = GroupKey.generate();
    try {
      const [lid, leader] = await fabric.add(key, 11);
      await eventually(
        () => leader.runner.core.role === "leader" && leader.runner.core.committedInTerm(),
        5000,
        "a lone leader",
      );
      const xid = new PeerId(new SeededRng(22).bytes(32)).toHex();
      // The leader's append that makes X a voter does not reach X (yet).
      fabric.drop = (from, to, m) => from === lid && to === xid && promotes(m, xid);
      const [, x] = await fabric.add(key, 22);
      await eventually(
        () => leader.runner.core.membership.voters.includes(xid),
        5000,
        "the leader to propose X as a voter",
      );
      assert(!leader.runner.core.canChangeMembership(), "the promotion is not committed");
      // X leaves now: the configuration {leader, X} in the leader's log needs X's ack to commit.
      const leaving = x.leave();
      fabric.drop = undefined;
      await within(leaving, "X's leave", 5000);
      fabric.drivers.delete(xid);
      for (const d of fabric.drivers.values()) d.onPeerDown(xid);
      // The leader commits again, alone, and X is out of the configuration.
      const range = await within(leader.submit([{ add: 1 }], true), "a write after X left", 5000);
      assert(range.start > 0);
      assertEquals(leader.runner.core.membership.voters, [lid]);
      assertEquals(leader.runner.core.membership.learners, []);
      assert(x.runner.core.removed, "X saw its removal committed before it left");
    } finally {
      await fabric.close();
    }
  },
  { timeout: 20_000 },
);

/**
 * An in-memory store whose hard-state saves can be held back, as a durable
 * store's commit is pending while its I/O runs; released saves complete on a
 * later turn of the event loop, as an I/O completion does (Deno KV's commits).
 */
class HeldHardStateStore extends InMemoryLogStore<Cmd> {
  holding = false;
  #held: (() => void)[] = [];

  /** Saves waiting for {@link release}. */
  get held(): number {
    return this.#held.length;
  }

  override async saveHardState(state: HardState): Promise<void> {
    if (this.holding) await new Promise<void>((resolve) => this.#held.push(resolve));
    super.saveHardState(state);
  }

  /** Stops holding; the held saves complete on the next turn of the event loop. */
  release(): void {
    this.holding = false;
    const held = this.#held;
    this.#held = [];
    if (held.length > 0) setTimeout(() => held.forEach((resolve) => resolve()), 0);
  }
}

test(
  "driver: an execute on a follower whose vote is still being saved waits for the new leader instead of spinning until its forward deadline",
  async () => {
    // F votes for the new candidate and its store takes a while to make that vote durable.
    // Meanwhile F's core knows no leader, but its published status still names the old one
    // (statuses are published after each Ready is persisted). An execute on F must wait for
    // the new leader; it once looped on microtasks alone until its forward deadline — so the
    // vote could not be saved, the election stalled, and the execute failed offline.
    const key = GroupKey.generate();
    const seeds = [11, 22, 33];
    const hex = (seed: number) => new PeerId(new SeededRng(seed).bytes(32)).toHex();
    // The lowest PeerId founds the cluster and leads; F is another member, reluctant to lead,
    // so that the third member is the one that campaigns when the leader is gone.
    const founder = seeds.map(hex).sort()[0];
    const fSeed = seeds.find((s) => hex(s) !== founder)!;
    const store = new HeldHardStateStore();
    const fabric = new Fabric();
    try {
      for (const seed of seeds) {
        await fabric.add(
          key,
          seed,
          seed === fSeed
            ? {
              storage: store,
              consensus: timings(5_000).deprioritizeLeadershipBy(100),
            }
            : {},
        );
      }
      const fid = hex(fSeed);
      const f = fabric.drivers.get(fid)!;
      await eventually(
        () => {
          const l = fabric.leader();
          return l !== undefined && l !== f && l.runner.core.membership.voters.length === 3 &&
            l.runner.core.committedInTerm();
        },
        8000,
        "three voters, led by a member other than F",
      );
      const lid = fabric.leader()!.runner.core.id;
      const first = await f.submit([{ add: 1 }], true);
      // Every member holds the write, so F votes for the third member's log.
      await eventually(
        () => [...fabric.drivers.values()].every((d) => d.runner.applied.index >= first.end),
        5000,
        "every member to apply the first write",
      );
      assertEquals(f.status.get().leader?.toHex(), lid, "F's status names the leader");

      // The leader dies (its bonds stay up for now: messages to and from it are lost).
      store.holding = true;
      fabric.drop = (from, to) => from === lid || to === lid;
      await eventually(() => store.held > 0, 5000, "F to grant a vote and save it");
      assertEquals(f.runner.core.role, "follower");
      assertEquals(f.runner.core.leader, undefined, "F's core knows no leader");
      assertEquals(f.status.get().leader?.toHex(), lid, "F's status still names the dead leader");

      const write = f.submit([{ add: 2 }], true);
      store.release();
      const outcome = await write.then(
        () => "committed",
        (err: Error) => `${err.name}: ${err.message}`,
      );
      assertEquals(outcome, "committed");
      assert(f.runner.core.leader !== lid && f.runner.core.leader !== undefined, "a new leader");
      assertEquals((await f.query(null, "strong")).result, 3);
    } finally {
      store.release();
      await fabric.close();
    }
  },
  { timeout: 20_000 },
);

test("driver: the election timeout's jitter spans at least 20 tick values, so members rarely time out together", () => {
  for (
    const c of [
      CONSENSUS_DEFAULTS,
      { heartbeatInterval: 75, electionTimeoutJitter: 75 },
      { heartbeatInterval: 1000, electionTimeoutJitter: 2000 },
    ]
  ) {
    const tick = driverTickMs(c);
    assert(
      c.electionTimeoutJitter / tick >= 15,
      `jitter ${c.electionTimeoutJitter} ms in ticks of ${tick} ms`,
    );
    assert(tick <= c.heartbeatInterval / 5, "heartbeats keep their own cadence");
  }
  assertEquals(driverTickMs(CONSENSUS_DEFAULTS), 25);
  // no jitter: no need for finer ticks than a fifth of the heartbeat
  assertEquals(driverTickMs({ heartbeatInterval: 100, electionTimeoutJitter: 0 }), 20);
});
