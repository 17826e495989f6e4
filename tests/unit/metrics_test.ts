// Metrics building blocks: the latency histogram, the Prometheus formatter (parsed back strictly) and the HTTP endpoint.

import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { test } from "../harness.ts";
import { assert, assertEquals, assertRejects, assertThrows } from "../assert.ts";
import { LATENCY_BUCKETS_MS, LatencyHistogram } from "../../lib/metrics/histogram.ts";
import {
  formatPrometheus,
  METRIC_FAMILIES,
  type NodeMetrics,
} from "../../lib/metrics/prometheus.ts";
import { checkMetricsConfig } from "../../lib/metrics/config.ts";
import { MetricsServer } from "../../lib/metrics/server.ts";
import { GroupId, PeerId } from "../../lib/primitives/ids.ts";
import type { GroupMetrics } from "../../lib/groups/types.ts";
import { parsePrometheus, series, value } from "../prometheus.ts";

test("histogram: observations land in the first bucket whose bound is ≥ them; cumulative", () => {
  const h = new LatencyHistogram();
  for (const ms of [0, 0.5, 0.7, 3, 3, 99, 100, 20_000, -1]) h.observe(ms);
  const s = h.snapshot();
  assertEquals(s.boundsMs, LATENCY_BUCKETS_MS);
  assertEquals(s.count, 9);
  assertEquals(s.sumMs, 0 + 0.5 + 0.7 + 3 + 3 + 99 + 100 + 20_000 + 0);
  const at = (bound: number) => s.cumulative[LATENCY_BUCKETS_MS.indexOf(bound)];
  assertEquals(at(0.5), 3); // 0, 0.5 and the negative one (counted as 0)
  assertEquals(at(1), 4);
  assertEquals(at(5), 6);
  assertEquals(at(50), 6);
  assertEquals(at(100), 8);
  assertEquals(at(10_000), 8); // 20 s is above every bound: only in +Inf (count)
  for (let i = 1; i < s.cumulative.length; i++) assert(s.cumulative[i]! >= s.cumulative[i - 1]!);
  assertEquals(LatencyHistogram.empty().count, 0);
});

function groupMetrics(over: Partial<GroupMetrics> = {}): GroupMetrics {
  const h = new LatencyHistogram();
  h.observe(0.3);
  h.observe(4);
  h.observe(4000);
  const self = PeerId.random();
  const other = PeerId.random();
  return {
    groupId: GroupId.random(),
    self,
    role: "leader",
    term: 3,
    leader: self,
    committed: 10,
    applied: 9,
    lastLogIndex: 11,
    voters: [self, other],
    learners: [PeerId.random()],
    bonds: [
      { peerId: other, bytesIn: 100, bytesOut: 200, messagesIn: 3, messagesOut: 4, rttMs: 1.5 },
      {
        peerId: PeerId.random(),
        bytesIn: 1,
        bytesOut: 2,
        messagesIn: 0,
        messagesOut: 1,
        rttMs: undefined,
      },
    ],
    electionsStarted: 2,
    electionsWon: 1,
    leaderChanges: 2,
    proposals: 7,
    proposalsFailed: 1,
    forwarded: 0,
    forwardsServed: 5,
    mergesLost: 0,
    commitLatency: h.snapshot(),
    ...over,
  };
}

test("prometheus: every line parses, every family is typed, histograms are cumulative", () => {
  const a = groupMetrics();
  const b = groupMetrics({ role: "follower", leader: undefined, bonds: [] });
  const node: NodeMetrics = {
    peerId: a.self,
    connections: 2,
    catalogPeers: 3,
    bonds: 2,
    groups: [a, b],
  };
  const text = formatPrometheus(node);
  const e = parsePrometheus(text);
  // Every family of METRIC_FAMILIES is typed and helped, and nothing else is.
  assertEquals([...e.types.keys()].sort(), METRIC_FAMILIES.map((f) => f.name).sort());
  assertEquals([...e.helps.keys()].sort(), METRIC_FAMILIES.map((f) => f.name).sort());
  for (const f of METRIC_FAMILIES) {
    assert(f.name.startsWith("mosaik_"), f.name);
    assertEquals(e.types.get(f.name), f.type);
  }
  const ga = a.groupId.short();
  const gb = b.groupId.short();
  assertEquals(value(e, "mosaik_node_info", { peer: a.self.short() }), 1);
  assertEquals(value(e, "mosaik_network_connections"), 2);
  assertEquals(value(e, "mosaik_network_catalog_peers"), 3);
  assertEquals(value(e, "mosaik_network_bonds"), 2);
  assertEquals(value(e, "mosaik_network_groups"), 2);
  assertEquals(value(e, "mosaik_group_role", { group: ga, role: "leader" }), 1);
  assertEquals(value(e, "mosaik_group_role", { group: ga, role: "follower" }), 0);
  assertEquals(value(e, "mosaik_group_role", { group: gb, role: "follower" }), 1);
  assertEquals(series(e, "mosaik_group_role").length, 10); // five roles per group
  assertEquals(value(e, "mosaik_group_leader", { group: ga }), 1);
  assertEquals(series(e, "mosaik_group_leader")[0]!.labels.peer, a.self.short());
  assertEquals(series(e, "mosaik_group_leader").length, 1, "no leader known in b: no series");
  assertEquals(value(e, "mosaik_group_term", { group: ga }), 3);
  assertEquals(value(e, "mosaik_group_committed_index", { group: ga }), 10);
  assertEquals(value(e, "mosaik_group_applied_index", { group: ga }), 9);
  assertEquals(value(e, "mosaik_group_last_log_index", { group: ga }), 11);
  assertEquals(value(e, "mosaik_group_voters", { group: ga }), 2);
  assertEquals(value(e, "mosaik_group_learners", { group: ga }), 1);
  assertEquals(value(e, "mosaik_group_bonds", { group: ga }), 2);
  assertEquals(value(e, "mosaik_group_elections_started_total", { group: ga }), 2);
  assertEquals(value(e, "mosaik_group_elections_won_total", { group: ga }), 1);
  assertEquals(value(e, "mosaik_group_leader_changes_total", { group: ga }), 2);
  assertEquals(value(e, "mosaik_group_proposals_total", { group: ga }), 7);
  assertEquals(value(e, "mosaik_group_proposals_failed_total", { group: ga }), 1);
  assertEquals(value(e, "mosaik_group_forwarded_total", { group: ga }), 0);
  assertEquals(value(e, "mosaik_group_forwards_served_total", { group: ga }), 5);
  assertEquals(value(e, "mosaik_group_merges_lost_total", { group: ga }), 0);
  const peer = a.bonds[0]!.peerId.short();
  assertEquals(value(e, "mosaik_bond_received_bytes_total", { group: ga, peer }), 100);
  assertEquals(value(e, "mosaik_bond_sent_bytes_total", { group: ga, peer }), 200);
  assertEquals(value(e, "mosaik_bond_received_messages_total", { group: ga, peer }), 3);
  assertEquals(value(e, "mosaik_bond_sent_messages_total", { group: ga, peer }), 4);
  assertEquals(value(e, "mosaik_bond_rtt_seconds", { group: ga, peer }), 0.0015);
  assertEquals(series(e, "mosaik_bond_rtt_seconds").length, 1, "unmeasured RTT: no series");
  assertEquals(series(e, "mosaik_bond_sent_bytes_total").length, 2);
  // The histogram, in seconds.
  const h = "mosaik_group_commit_latency_seconds";
  assertEquals(value(e, `${h}_count`, { group: ga }), 3);
  assertEquals(value(e, `${h}_bucket`, { group: ga, le: "+Inf" }), 3);
  assertEquals(value(e, `${h}_bucket`, { group: ga, le: "0.0005" }), 1);
  assertEquals(value(e, `${h}_bucket`, { group: ga, le: "0.005" }), 2);
  assertEquals(value(e, `${h}_bucket`, { group: ga, le: "10" }), 3);
  assert(Math.abs(value(e, `${h}_sum`, { group: ga }) - 4.0043) < 1e-9);
  assertEquals(series(e, `${h}_bucket`).length, 2 * (LATENCY_BUCKETS_MS.length + 1));
  // No full id anywhere: groups and peers are short hex.
  assert(!text.includes(a.groupId.toHex()) && !text.includes(a.self.toHex()));
});

test("prometheus: the test parser refuses what a scraper would", () => {
  const bad = [
    "no_newline 1",
    "mosaik_x 1\n", // no TYPE
    "# TYPE a gauge\n# TYPE a gauge\n", // typed twice
    '# TYPE a gauge\na{x="1"} 1\na{x="1"} 2\n', // duplicate series
    "# TYPE a_total counter\na_total{x=1} 1\n", // unquoted label
    "# TYPE a counter\na 1\n", // counter without _total
    '# TYPE h histogram\nh_bucket{le="1"} 2\nh_bucket{le="+Inf"} 1\nh_count 1\nh_sum 0\n',
    '# TYPE h histogram\nh_bucket{le="1"} 1\nh_bucket{le="+Inf"} 1\nh_count 2\nh_sum 0\n',
    "# TYPE a gauge\na one\n",
    "garbage\n",
  ];
  for (const text of bad) assertThrows(() => parsePrometheus(text), Error);
  const ok = parsePrometheus('# HELP a x\n# TYPE a gauge\na{l="q\\"\\\\\\n"} 1.5\n');
  assertEquals(ok.samples[0]!.labels.l, 'q"\\\n');
});

test("metrics config: port and host are checked", () => {
  assertThrows(() => checkMetricsConfig({ port: -1 }), RangeError, "port");
  assertThrows(() => checkMetricsConfig({ port: 70000 }), RangeError, "port");
  assertThrows(() => checkMetricsConfig({ port: 1.5 }), RangeError, "port");
  assertThrows(() => checkMetricsConfig({ port: 0, host: "" }), RangeError, "host");
  checkMetricsConfig({ port: 0 });
  checkMetricsConfig({ port: 9464, host: "::" });
});

test("metrics server: serves /metrics, 404 elsewhere, 405 for POST; closes its sockets", async () => {
  let renders = 0;
  const server = await MetricsServer.start({ port: 0 }, () => {
    renders++;
    return "# HELP a x\n# TYPE a gauge\na 1\n";
  });
  try {
    const { host, port } = server.address;
    assertEquals(host, "127.0.0.1");
    assert(port > 0, "a free port was bound");
    const base = `http://127.0.0.1:${port}`;
    const ok = await fetch(`${base}/metrics`);
    assertEquals(ok.status, 200);
    assert(ok.headers.get("content-type")!.startsWith("text/plain; version=0.0.4"));
    assertEquals(parsePrometheus(await ok.text()).samples.length, 1);
    const query = await fetch(`${base}/metrics?x=1`);
    assertEquals(query.status, 200);
    await query.body?.cancel();
    const missing = await fetch(`${base}/other`);
    assertEquals(missing.status, 404);
    await missing.body?.cancel();
    const root = await fetch(`${base}/`);
    assertEquals(root.status, 404);
    await root.body?.cancel();
    const post = await fetch(`${base}/metrics`, { method: "POST", body: "x" });
    assertEquals(post.status, 405);
    await post.body?.cancel();
    assertEquals(renders, 2);
  } finally {
    await server.close();
    await server.close(); // idempotent
  }
  await assertRejects(() => fetch(`http://127.0.0.1:${server.address.port}/metrics`));
});

test("metrics server: a failing renderer gives 500, not a crash", async () => {
  const server = await MetricsServer.start({ port: 0 }, () => {
    throw new Error("boom");
  });
  try {
    const r = await fetch(`http://127.0.0.1:${server.address.port}/metrics`);
    assertEquals(r.status, 500);
    await r.body?.cancel();
  } finally {
    await server.close();
  }
});

test("README: the Metrics section names every metric family and every log event", () => {
  const root = fileURLToPath(new URL("../../", import.meta.url));
  const readme = readFileSync(join(root, "README.md"), "utf8");
  const start = readme.indexOf("\n## Metrics\n");
  assert(start >= 0, "README has a Metrics section");
  const end = readme.indexOf("\n## ", start + 1);
  const section = readme.slice(start, end < 0 ? undefined : end);
  for (const f of METRIC_FAMILIES) {
    const row = section.split("\n").find((l) => l.startsWith(`| \`${f.name}\``));
    assert(row !== undefined, `README documents ${f.name}`);
    assert(row.includes(`| ${f.type}`), `README gives the type of ${f.name}`);
    for (const label of f.labels) assert(row.includes(`\`${label}\``), `${f.name} label ${label}`);
  }
  // Every event the library logs (a call like `log.info("bond.up", …)` in lib/) has a row.
  const events = new Set<string>();
  const files = readdirSync(join(root, "lib"), { recursive: true }) as string[];
  for (const f of files.filter((f) => f.endsWith(".ts"))) {
    const source = readFileSync(join(root, "lib", f), "utf8");
    for (
      const m of source.matchAll(
        /(?:\.(?:debug|info|warn|error)|\[level\])\(\s*"([a-z]+\.[a-z_]+)"/g,
      )
    ) {
      events.add(m[1]!);
    }
  }
  assert(events.size >= 20, `found the log calls (${events.size})`);
  for (const e of events) {
    assert(section.includes(`| \`${e}\``), `README documents the log event ${e}`);
  }
});
