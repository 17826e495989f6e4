// Observability end to end: group.metrics() after known operations, the Prometheus endpoint scraped and parsed, structured logs.

import { test } from "../harness.ts";
import { assert, assertEquals, assertRejects } from "../assert.ts";
import { GroupKey } from "../../lib/groups/key.ts";
import type { GroupMetrics } from "../../lib/groups/types.ts";
import { NoOp } from "../../lib/machine/noop.ts";
import { ConsensusConfig } from "../../lib/groups/config.ts";
import { OfflineError } from "../../lib/groups/errors.ts";
import type { LogRecord, LogThreshold } from "../../lib/log/logger.ts";
import { Network } from "../../lib/network/network.ts";
import { MemoryNetwork } from "../../transport/memory.ts";
import { Counter } from "../counter.ts";
import { eventually, FAST, Nodes, votingCluster, withDeadline, within } from "../group_net.ts";
import { parsePrometheus, series, value } from "../prometheus.ts";

const hexes = (ids: readonly { toHex(): string }[]) => ids.map((i) => i.toHex()).sort();

test("metrics (memory): the snapshot after known writes, forwards and feeds", async () => {
  await using nodes = new Nodes("memory", "metrics-test", 5);
  const members = await votingCluster(nodes, 3, () => new Counter());
  const [leader, f1, f2] = members as [typeof members[0], typeof members[0], typeof members[0]];
  const ids = members.map((m) => m.net.local().id());
  const N = 5;
  const M = 3;
  for (let i = 0; i < N; i++) {
    await withDeadline("a write on the leader", (o) => leader.group.execute({ add: 1 }, o));
  }
  for (let i = 0; i < M; i++) {
    await withDeadline("a write through a follower", (o) => f1.group.execute({ add: 1 }, o));
  }
  const fed = await withDeadline("a feed", (o) => f2.group.feed({ add: 1 }, o));
  await eventually(
    () => members.every((m) => m.group.metrics().applied >= fed),
    "every member applied the feed",
  );

  const lm = leader.group.metrics();
  assert(lm.groupId.equals(leader.group.id()));
  assert(lm.self.equals(ids[0]!) && lm.leader?.equals(ids[0]!) === true);
  assertEquals(lm.role, "leader");
  assert(lm.electionsWon >= 1, "the leader won (founded) its term");
  assert(lm.electionsStarted >= lm.electionsWon);
  assert(lm.leaderChanges >= 1);
  assertEquals(hexes(lm.voters), hexes(ids), "voters are the three members");
  assertEquals(lm.learners, []);
  assert(
    lm.applied <= lm.committed && lm.committed <= lm.lastLogIndex,
    "applied ≤ committed ≤ last",
  );
  assert(lm.committed >= fed, "the feed is committed");
  assertEquals(lm.proposals, N, "the leader proposed its own N commands");
  assertEquals(lm.proposalsFailed, 0);
  assertEquals(lm.forwarded, 0, "a leader forwards nothing");
  assert(lm.forwardsServed >= M + 1, "it served the follower's M commands and the feed");
  assertEquals(lm.commitLatency.count, N, "one observation per execute");
  assert(lm.commitLatency.sumMs > 0);
  const cumulative = lm.commitLatency.cumulative;
  for (let i = 1; i < cumulative.length; i++) assert(cumulative[i]! >= cumulative[i - 1]!);
  assert(cumulative[cumulative.length - 1]! <= N);

  const m1 = f1.group.metrics();
  assertEquals(m1.role, "follower");
  assert(m1.leader?.equals(ids[0]!) === true);
  assertEquals(m1.term, lm.term, "one term: no election since the cluster formed");
  assertEquals(hexes(m1.voters), hexes(ids));
  assertEquals(m1.proposals, M);
  assert(m1.forwarded >= M, "its commands went to the leader");
  assertEquals(m1.forwardsServed, 0);
  assertEquals(m1.commitLatency.count, M);
  assert(m1.leaderChanges >= 1, "it learned of the leader");

  const m2 = f2.group.metrics();
  assertEquals(m2.proposals, 1);
  assertEquals(m2.commitLatency.count, 0, "feed does not wait for the commit");

  // Every bond carries traffic and measures its round trip.
  await eventually(
    () => members.every((m) => m.group.metrics().bonds.every((b) => b.rttMs !== undefined)),
    "every bond has a round-trip time",
  );
  for (const [i, m] of members.entries()) {
    const bonds = m.group.metrics().bonds;
    assertEquals(hexes(bonds.map((b) => b.peerId)), hexes(ids.filter((_, k) => k !== i)));
    for (const b of bonds) {
      assert(b.bytesIn > 0 && b.bytesOut > 0 && b.messagesIn > 0 && b.messagesOut > 0);
      assert(b.rttMs! >= 0);
    }
  }
  // The registry's view is the same group.
  const all: GroupMetrics[] = leader.net.groups().metrics();
  assertEquals(all.length, 1);
  assert(all[0]!.groupId.equals(lm.groupId));
});

test("metrics (memory): failed proposals are counted and not observed as latency", async () => {
  await using nodes = new Nodes("memory", "metrics-fail-test", 6);
  const net = await nodes.add();
  const consensus = ConsensusConfig.builder()
    .withHeartbeatInterval(25).withHeartbeatJitter(5)
    .withElectionTimeout(150).withElectionTimeoutJitter(75)
    .withBootstrapDelay(1_000) // long enough for a forward to time out before there is a leader
    .withForwardTimeout(100)
    .build();
  const group = net.groups().withKey(GroupKey.generate()).withStateMachine(new Counter())
    .withConsensusConfig(consensus).join();
  await assertRejects(() => group.execute({ add: 1 }), OfflineError);
  assertEquals(group.metrics().proposalsFailed, 1, "the failure is counted");
  await withDeadline("it leads", (o) => group.when().isLeader(o));
  await withDeadline("a write", (o) => group.execute({ add: 1 }, o));
  const m = group.metrics();
  assertEquals([m.proposals, m.proposalsFailed, m.commitLatency.count], [1, 1, 1]);
  assertEquals(m.electionsStarted, 1, "founding the cluster counts as one election");
  assertEquals(m.electionsWon, 1);
  assertEquals(hexes(m.voters), [net.local().id().toHex()]);
});

test(
  "metrics (quic): /metrics is scraped and parsed; other paths are 404; it closes with the network",
  async () => {
    await using nodes = new Nodes("quic", "metrics-http-test", 7);
    const key = GroupKey.generate();
    const members = await votingCluster(nodes, 2, () => new Counter(), {
      key,
      configure: (b) => b.withMetrics({ port: 0 }),
    });
    const [leader, follower] = members as [typeof members[0], typeof members[0]];
    // A second group on the leader's node: every group shows, each under its own label.
    const other = leader.net.groups().withKey(GroupKey.generate()).withStateMachine(new NoOp())
      .withConsensusConfig(FAST).join();
    for (let i = 0; i < 3; i++) {
      await withDeadline("a write", (o) => leader.group.execute({ add: 1 }, o));
    }
    await withDeadline("a forwarded write", (o) => follower.group.execute({ add: 1 }, o));
    await withDeadline("the other group founds itself", (o) => other.when().isLeader(o));
    await eventually(
      () => leader.group.metrics().bonds.every((b) => b.rttMs !== undefined),
      "the bond has a round-trip time",
    );

    const addr = leader.net.metricsAddress();
    assert(addr !== undefined && addr.port > 0, "the endpoint bound a free port");
    assertEquals(addr.host, "127.0.0.1");
    const base = `http://127.0.0.1:${addr.port}`;
    const res = await fetch(`${base}/metrics`);
    assertEquals(res.status, 200);
    assert(res.headers.get("content-type")?.startsWith("text/plain; version=0.0.4") === true);
    const text = await res.text();
    const e = parsePrometheus(text);

    const group = leader.group.id().short();
    const peer = follower.net.local().id().short();
    assertEquals(value(e, "mosaik_node_info", { peer: leader.net.local().id().short() }), 1);
    assertEquals(value(e, "mosaik_network_groups"), 2);
    assertEquals(value(e, "mosaik_network_bonds"), 1);
    assert(value(e, "mosaik_network_catalog_peers") >= 1);
    assert(value(e, "mosaik_network_connections") >= 1);
    assertEquals(value(e, "mosaik_group_role", { group, role: "leader" }), 1);
    assertEquals(value(e, "mosaik_group_role", { group, role: "follower" }), 0);
    assertEquals(value(e, "mosaik_group_role", { group: other.id().short(), role: "leader" }), 1);
    assertEquals(
      series(e, "mosaik_group_leader").find((s) => s.labels.group === group)?.labels.peer,
      leader.net.local().id().short(),
    );
    assertEquals(value(e, "mosaik_group_voters", { group }), 2);
    assertEquals(value(e, "mosaik_group_bonds", { group }), 1);
    assertEquals(value(e, "mosaik_group_proposals_total", { group }), 3);
    assert(value(e, "mosaik_group_forwards_served_total", { group }) >= 1);
    assert(value(e, "mosaik_group_elections_won_total", { group }) >= 1);
    assert(value(e, "mosaik_group_committed_index", { group }) >= 5);
    assert(value(e, "mosaik_group_term", { group }) >= 1);
    const h = "mosaik_group_commit_latency_seconds";
    assertEquals(value(e, `${h}_count`, { group }), 3);
    assertEquals(value(e, `${h}_bucket`, { group, le: "+Inf" }), 3);
    assert(value(e, `${h}_sum`, { group }) > 0);
    assertEquals(value(e, `${h}_count`, { group: other.id().short() }), 0);
    assert(value(e, "mosaik_bond_sent_bytes_total", { group, peer }) > 0);
    assert(value(e, "mosaik_bond_received_bytes_total", { group, peer }) > 0);
    assert(value(e, "mosaik_bond_sent_messages_total", { group, peer }) > 0);
    assert(value(e, "mosaik_bond_received_messages_total", { group, peer }) > 0);
    assert(value(e, "mosaik_bond_rtt_seconds", { group, peer }) >= 0);
    assert(!text.includes(key.toHex()), "the group key never shows");
    assert(!text.includes(leader.group.id().toHex()), "groups are labelled by short hex");

    // The follower's endpoint speaks for the follower.
    const faddr = follower.net.metricsAddress()!;
    const fe = parsePrometheus(
      await (await fetch(`http://127.0.0.1:${faddr.port}/metrics`)).text(),
    );
    assertEquals(value(fe, "mosaik_group_role", { group, role: "follower" }), 1);
    assertEquals(value(fe, "mosaik_group_forwarded_total", { group }), 1);

    const missing = await fetch(`${base}/nope`);
    assertEquals(missing.status, 404);
    await missing.body?.cancel();

    await nodes.close(leader.net);
    assertEquals(leader.net.metricsAddress(), undefined);
    await assertRejects(() => fetch(`${base}/metrics`));
  },
  { timeout: 60_000 },
);

/** A logger that keeps every record, tagged with the node it came from. */
function recorder(level: LogThreshold, into: LogRecord[]) {
  return { level, log: (r: LogRecord) => into.push(r) };
}

test("logging (memory): role changes, elections, bonds and a leave are logged", async () => {
  const records: LogRecord[] = [];
  await using nodes = new Nodes("memory", "logging-test", 8);
  const members = await votingCluster(nodes, 3, () => new Counter(), {
    configure: (b) => b.withLogger(recorder("info", records)),
  });
  const [first, second] = members as [typeof members[0], typeof members[0]];
  const a = first.net.local().id().short();
  const b = second.net.local().id().short();
  const group = first.group.id().short();
  const of = (node: string, event: string) =>
    records.filter((r) => r.node === node && r.event === event);
  assert(records.every((r) => r.level !== "debug"), "nothing below the logger's level");
  assert(records.every((r) => r.event === "metrics.listening" || r.group === group));
  assertEquals(of(a, "group.started").length, 1);
  assertEquals(of(a, "cluster.bootstrapped").length, 1);
  assert(of(a, "election.won").length >= 1);
  assert(of(a, "group.role").some((r) => r.fields.to === "leader"), "a became leader");
  assert(
    of(b, "group.role").some((r) => r.fields.from === "learner" && r.fields.to === "follower"),
    "b was promoted from learner",
  );
  assert(of(b, "leader.changed").some((r) => r.fields.leader === a), "b learned of leader a");
  assert(of(b, "bond.up").some((r) => r.peer === a), "b logged its bond to a");
  assert(of(a, "bond.up").some((r) => r.peer === b), "a logged its bond to b");
  assert(
    of(a, "membership.changed").some((r) =>
      (r.fields.voters as string[]).length === 3 && (r.fields.voters as string[]).includes(b)
    ),
    "the configuration with three voters",
  );

  // b leaves: it says so, and the others see its bond go down with 101 (departure).
  await withDeadline("b leaves", () => second.group.leave());
  assertEquals(of(b, "group.leaving").length, 1);
  assertEquals(of(b, "group.left").length, 1);
  assertEquals(of(b, "group.left")[0]!.fields.removed, true, "removed before it left");
  await eventually(
    () => of(a, "bond.down").some((r) => r.peer === b && r.fields.code === 101),
    "a logs the departure of b",
  );
  await eventually(
    () =>
      of(a, "membership.changed").some((r) =>
        (r.fields.voters as string[]).length === 2 && !(r.fields.voters as string[]).includes(b)
      ),
    "a logs b's removal",
  );
});

// ---- no secret in any log --------------------------------------------------------------------

function base64(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s);
}

/** Every printable form of a secret: hex (both cases), base64 and base64url (with and without padding). */
function forms(bytes: Uint8Array): string[] {
  const hex = [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
  const b64 = base64(bytes);
  const url = b64.replace(/\+/g, "-").replace(/\//g, "_");
  return [hex, hex.toUpperCase(), b64, b64.replace(/=+$/, ""), url, url.replace(/=+$/, "")];
}

/** The base64 body of a PEM, whole and line by line. */
function pemForms(pem: string): string[] {
  const lines = pem.split("\n").filter((l) => l !== "" && !l.startsWith("-----"));
  return [lines.join(""), ...lines.filter((l) => l.length >= 16)];
}

test(
  "logging (memory): no record ever shows the group key, a secret key or a TLS private key",
  async () => {
    const records: LogRecord[] = [];
    const memory = new MemoryNetwork({ latencyMs: 1, seed: 9 });
    const nets: Network[] = [];
    const secrets: string[] = [];
    const key = GroupKey.generate();
    secrets.push(...forms(key.toBytes()));
    const node = async (bootstrap?: Network) => {
      const secretKey = crypto.getRandomValues(new Uint8Array(32));
      secrets.push(...forms(secretKey));
      let b = Network.builder("no-secrets-test")
        .withTransport(memory.transport())
        .withSecretKey(secretKey)
        .withDiscoveryConfig({ announceInterval: 100, staleAfter: 5_000, syncTimeout: 5_000 })
        .withLogger(recorder("debug", records));
      if (bootstrap !== undefined) b = b.withBootstrap(bootstrap.local().addr());
      const n = await b.build();
      secrets.push(...pemForms(n.tls.privateKeyPem));
      nets.push(n);
      return n;
    };
    const join = (n: Network) =>
      n.groups().withKey(key).withStateMachine(new Counter()).withConsensusConfig(FAST).join();
    try {
      // Two nodes that start apart: each founds a cluster and writes; then they meet and merge.
      const a = await node();
      const b = await node();
      const ga = join(a);
      const gb = join(b);
      await withDeadline("a leads alone", (o) => ga.when().leaderIs(a.local().id(), o));
      await withDeadline("b leads alone", (o) => gb.when().leaderIs(b.local().id(), o));
      for (let i = 0; i < 3; i++) await withDeadline("a writes", (o) => ga.execute({ add: 1 }, o));
      await withDeadline("b writes", (o) => gb.execute({ add: 1 }, o));
      const reverted = gb.when().committed().reverted();
      b.discovery().dial(a.local().addr());
      await within(reverted, "b loses the merge");
      await withDeadline("b follows a", (o) => gb.when().leaderIs(a.local().id(), o));
      // A third node joins; then the leader leaves and the others elect a new one.
      const c = await node(a);
      const gc = join(c);
      await withDeadline("c follows a", (o) => gc.when().leaderIs(a.local().id(), o));
      await eventually(() => gb.metrics().voters.length === 3, "three voters");
      await withDeadline("c writes", (o) => gc.execute({ add: 1 }, o));
      await withDeadline("a leaves", () => ga.leave());
      await withDeadline("b and c elect", (o) => gb.when().leaderElected(o));
      await withDeadline("a write after", (o) => gc.execute({ add: 1 }, o));
    } finally {
      for (const n of nets) await n.close();
      await memory.close();
    }
    // The scenario produced the records it is about (a test that logs nothing proves nothing).
    const events = new Set(records.map((r) => r.event));
    for (
      const e of [
        "group.started",
        "cluster.bootstrapped",
        "election.won",
        "election.started",
        "leader.changed",
        "group.role",
        "bond.up",
        "bond.down",
        "membership.changed",
        "merge.won",
        "merge.lost",
        "state.reverted",
        "group.leaving",
        "group.left",
        "group.closed",
      ]
    ) {
      assert(events.has(e), `a ${e} record (got ${[...events].sort().join(", ")})`);
    }
    assert(records.some((r) => r.level === "debug"), "debug records too");
    for (const r of records) {
      const texts = [
        JSON.stringify(r),
        String(r),
        r.message,
        ...Object.values(r.fields).map((v) => String(v)),
      ];
      for (const t of texts) {
        for (const s of secrets) {
          assert(!t.includes(s), `record ${r.event} shows a secret: ${JSON.stringify(r)}`);
        }
      }
    }
  },
  { timeout: 60_000 },
);

test("metrics (memory): a metrics port that is taken fails build() and leaves nothing open", async () => {
  const memory = new MemoryNetwork({ latencyMs: 1, seed: 10 });
  const builder = () => Network.builder("metrics-port-test").withTransport(memory.transport());
  try {
    await using a = await builder().withMetrics({ port: 0 }).build();
    const { port } = a.metricsAddress()!;
    await assertRejects(() => builder().withMetrics({ port }).build());
    // Without an endpoint there is no address; a's endpoint still answers.
    await using b = await builder().build();
    assertEquals(b.metricsAddress(), undefined);
    const res = await fetch(`http://127.0.0.1:${port}/metrics`);
    assertEquals(res.status, 200);
    assertEquals(value(parsePrometheus(await res.text()), "mosaik_network_groups"), 0);
  } finally {
    await memory.close();
  }
});
