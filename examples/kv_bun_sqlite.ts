// Example: a replicated key-value store kept in SQLite on Bun; a member stopped and started again on its store is the same member, with its state.
//
// Bun only (on Deno, see kv_deno_kv.ts):
//   bun examples/kv_bun_sqlite.ts
//
// All three members live in this one process for brevity, but they talk to
// each other over real QUIC on 127.0.0.1, exactly as separate machines would.
// Each has its own store file in a temporary directory, removed at the end.

import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import {
  ConsensusConfig,
  Consistency,
  type Group,
  GroupKey,
  KeyValue,
  type KvCommand,
  Network,
  type PeerAddr,
  SystemEntry,
} from "../mod.ts";
import { BunSqliteLogStore } from "../storage/bun_sqlite.ts";

// Every member must hold the same key and use the same consensus settings
// (shorter than the defaults here, so the example is quick).
const key = GroupKey.generate();
const config = ConsensusConfig.builder()
  .withHeartbeatInterval(100)
  .withHeartbeatJitter(20)
  .withElectionTimeout(500)
  .withElectionTimeoutJitter(200)
  .withBootstrapDelay(500)
  .build();
const signal = () => AbortSignal.timeout(10_000);

const dir = mkdtempSync(join(tmpdir(), "mosaik-kv-example-"));

/**
 * A member's secret key, kept beside its store: a member is its PeerId (made
 * from this key) plus its store. The store remembers which member it belongs
 * to and refuses to serve any other.
 */
function secretFor(path: string): Uint8Array {
  if (existsSync(path)) return new Uint8Array(readFileSync(path));
  const secret = crypto.getRandomValues(new Uint8Array(32));
  writeFileSync(path, secret, { mode: 0o600 });
  return secret;
}

interface Member {
  readonly network: Network;
  readonly store: BunSqliteLogStore<KvCommand>;
  readonly kv: KeyValue;
  readonly group: Group<KeyValue>;
  /** The index of the last entry its store held when it started. */
  readonly restoredTo: number;
}

/** Starts member `n` on its store and secret key (both created the first time). */
async function start(n: number, bootstrap: PeerAddr[]): Promise<Member> {
  const store = BunSqliteLogStore.open<KvCommand>(join(dir, `node-${n}.db`));
  const restoredTo = store.last().index;
  const network = await Network.builder("kv-example")
    .withSecretKey(secretFor(join(dir, `node-${n}.key`)))
    .withListenAddress("127.0.0.1:0")
    .withBootstrap(...bootstrap)
    .build();
  const kv = new KeyValue();
  const group = network.groups().withKey(key).withStateMachine(kv).withLogStorage(store)
    .withConsensusConfig(config).join();
  const on = restoredTo === 0 ? "a new store" : `its store, holding its log up to ${restoredTo}`;
  console.log(`node ${n} started as ${network.local().id().short()} on ${on}`);
  return { network, store, kv, group, restoredTo };
}

/**
 * Stops a member: leaves the group, closes the network, then the store. On
 * leaving, the leader takes the member out of the group; when it comes back,
 * the leader adds it again, as a learner until it has caught up.
 */
async function stop(m: Member): Promise<void> {
  await m.group.leave();
  await m.network.close();
  m.store.close();
}

/**
 * Waits until `m` has committed a configuration in which all three members
 * vote. A member joins as a learner (it copies the log but does not vote)
 * until the leader has caught it up and promoted it; stopping one of three
 * before that could leave the other two without a majority. The group
 * records membership changes as entries of its log, so that is where to look.
 */
async function allThreeVote(m: Member, signal: AbortSignal): Promise<void> {
  for (;;) {
    const committed = m.group.committed();
    let voters = 0;
    for (const e of await m.store.getRange(1, committed)) {
      if (SystemEntry.is(e.command) && "voters" in e.command.body) {
        voters = e.command.body.voters.length;
      }
    }
    if (voters === 3) return;
    await m.group.when().committed().reaches(committed + 1, { signal });
  }
}

// Three members; the first is everyone's bootstrap peer.
const first = await start(1, []);
const members = [
  first,
  await start(2, [first.network.local().addr()]),
  await start(3, [first.network.local().addr()]),
];

const leader = await first.group.when().leaderElected({ signal: signal() });
await Promise.all(members.map((m) => m.group.when().leaderIs(leader, { signal: signal() })));
const nodeOf = (m: Member) => `node ${members.indexOf(m) + 1}`;
const follower = members.find((m) => !m.group.isLeader())!;
console.log(`leader: ${leader.short()}; writing through ${nodeOf(follower)}, a follower`);

// Writes go to the leader (a follower forwards them) and resolve once committed.
// `executeMany` commits several commands at consecutive indices, in order.
await follower.group.execute({ op: "set", key: "colour", value: "blue" }, { signal: signal() });
const batch = await follower.group.executeMany([
  { op: "set", key: "shape", value: "circle" },
  { op: "set", key: "size", value: "large" },
  { op: "set", key: "colour", value: "green" },
], { signal: signal() });
console.log(`wrote 4 commands, the last three at indices ${batch.start}..${batch.end}`);

// A strong read is linearizable: it sees every write committed before it.
const strong = await follower.group.query("colour", Consistency.Strong, { signal: signal() });
console.log(`strong read of colour: ${strong.result}`);
// A weak read answers from this member's own copy, which may lag: wait until
// every member has committed the last write, then read each one locally.
await Promise.all(
  members.map((m) => m.group.when().committed().reaches(batch, { signal: signal() })),
);
const weak = await Promise.all(members.map((m) => m.group.query("shape", Consistency.Weak)));
console.log(`weak reads of shape: ${weak.map((r) => r.result).join(", ")}`);

// Stop a follower other than the bootstrap peer, once all three vote. Its log
// stays in its store.
await allThreeVote(first, signal());
const away = members.find((m) => m !== first && !m.group.isLeader())!;
const awayId = away.network.local().id();
const awayIndex = members.indexOf(away);
console.log(
  `stopping ${nodeOf(away)} (${awayId.short()}) at log position ${away.group.logPosition().index}`,
);
await stop(away);
const survivors = members.filter((m) => m !== away);

// The other two are still a majority: writes go on without it.
const writer = survivors.find((m) => !m.group.isLeader()) ?? survivors[0]!;
const whileAway = await writer.group.executeMany([
  { op: "delete", key: "size" },
  { op: "set", key: "owner", value: "ada" },
], { signal: signal() });
console.log(`while it was away: deleted size, set owner (indices up to ${whileAway.end})`);

// Start it again on the same store and secret key: the same PeerId, and a
// store that still holds the log it had written before it stopped.
const back = await start(
  awayIndex + 1,
  survivors.map((m) => m.network.local().addr()),
);
members[awayIndex] = back;

// It replays its own log and fetches the rest from the leader.
await back.group.when().committed().reaches(whileAway, { signal: signal() });
const owner = await back.group.query("owner", Consistency.Weak);
const size = await back.group.query("size", Consistency.Weak);
console.log(
  `${nodeOf(back)} caught up: owner=${owner.result}, size=${size.result}, ` +
    `${back.kv.size} keys`,
);

// Every member applied the same commands, so every copy holds the same map.
await Promise.all(
  members.map((m) => m.group.when().committed().reaches(whileAway, { signal: signal() })),
);
const copies = members.map((m) => JSON.stringify(m.kv.entries()));
const same = back.network.local().id().equals(awayId) && back.restoredTo >= batch.end &&
  owner.result === "ada" && size.result === null && copies.every((c) => c === copies[0]);
console.log(`every member holds ${copies[0]}`);

await Promise.all(members.map(stop));
rmSync(dir, { recursive: true });
if (!same) {
  console.error("unexpected state after the restart");
  process.exit(1);
}
console.log("the restarted member kept its log and caught up");
