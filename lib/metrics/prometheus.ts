// Renders a node's metrics in the Prometheus text exposition format 0.0.4 (pure: no I/O, no clock).

import type { PeerId } from "../primitives/ids.ts";
import type { GroupMetrics, GroupRole } from "../groups/types.ts";

/** The Content-Type of {@link formatPrometheus}'s output. */
export const PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

/** Everything `/metrics` shows for one node. */
export interface NodeMetrics {
  /** This node. */
  readonly peerId: PeerId;
  /** Open connections to other nodes. */
  readonly connections: number;
  /** Peers in this node's discovery catalog (itself excluded). */
  readonly catalogPeers: number;
  /** Bonds up on this node, over all groups. */
  readonly bonds: number;
  /** The groups running on this node. */
  readonly groups: readonly GroupMetrics[];
}

/** A Prometheus metric type, as `# TYPE` names it. */
export type MetricType = "counter" | "gauge" | "histogram";

/** One metric family: its name, type, help text and labels. */
export interface MetricFamily {
  /** The metric name (for a histogram, the base of `_bucket`, `_sum`, `_count`). */
  readonly name: string;
  /** Its type. */
  readonly type: MetricType;
  /** The `# HELP` text. */
  readonly help: string;
  /** Label names of its series (`le` of histogram buckets not included). */
  readonly labels: readonly string[];
}

const ROLES: readonly GroupRole[] = ["follower", "precandidate", "candidate", "leader", "learner"];

type Sample = readonly [labels: string, value: number];

interface Family extends MetricFamily {
  samples(node: NodeMetrics): Iterable<Sample>;
}

const g = (
  name: string,
  help: string,
  value: (m: GroupMetrics) => number,
  type: MetricType = "gauge",
): Family => ({
  name,
  type,
  help,
  labels: ["group"],
  *samples(node) {
    for (const m of node.groups) yield [groupLabel(m), value(m)];
  },
});

const bondFamily = (
  name: string,
  help: string,
  value: (b: GroupMetrics["bonds"][number]) => number | undefined,
  type: MetricType,
): Family => ({
  name,
  type,
  help,
  labels: ["group", "peer"],
  *samples(node) {
    for (const m of node.groups) {
      const group = m.groupId.short();
      for (const b of m.bonds) {
        const v = value(b);
        if (v !== undefined) yield [labels({ group, peer: b.peerId.short() }), v];
      }
    }
  },
});

const node = (name: string, help: string, value: (n: NodeMetrics) => number): Family => ({
  name,
  type: "gauge",
  help,
  labels: [],
  *samples(n) {
    yield ["", value(n)];
  },
});

const FAMILIES: readonly Family[] = [
  {
    name: "mosaik_node_info",
    type: "gauge",
    help: "This node; always 1 (label peer: its PeerId, short hex).",
    labels: ["peer"],
    *samples(n) {
      yield [labels({ peer: n.peerId.short() }), 1];
    },
  },
  node("mosaik_network_connections", "Open connections to other nodes.", (n) => n.connections),
  node(
    "mosaik_network_catalog_peers",
    "Peers in this node's discovery catalog.",
    (n) => n.catalogPeers,
  ),
  node("mosaik_network_bonds", "Bonds up on this node, over all groups.", (n) => n.bonds),
  node("mosaik_network_groups", "Groups running on this node.", (n) => n.groups.length),
  {
    name: "mosaik_group_role",
    type: "gauge",
    help: "1 for this node's role in the group, 0 for the other roles.",
    labels: ["group", "role"],
    *samples(n) {
      for (const m of n.groups) {
        const group = m.groupId.short();
        for (const role of ROLES) yield [labels({ group, role }), m.role === role ? 1 : 0];
      }
    },
  },
  {
    name: "mosaik_group_leader",
    type: "gauge",
    help: "The leader this node knows of (label peer, short hex); absent while none is known.",
    labels: ["group", "peer"],
    *samples(n) {
      for (const m of n.groups) {
        if (m.leader === undefined) continue;
        yield [labels({ group: m.groupId.short(), peer: m.leader.short() }), 1];
      }
    },
  },
  g("mosaik_group_term", "This node's current term.", (m) => m.term),
  g("mosaik_group_committed_index", "Highest log index known to be committed.", (m) => m.committed),
  g(
    "mosaik_group_applied_index",
    "Index of the last entry applied to the state machine.",
    (m) => m.applied,
  ),
  g("mosaik_group_last_log_index", "Index of the last entry in the log.", (m) => m.lastLogIndex),
  g("mosaik_group_voters", "Voters in the configuration in force.", (m) => m.voters.length),
  g("mosaik_group_learners", "Learners in the configuration in force.", (m) => m.learners.length),
  g("mosaik_group_bonds", "Bonds of the group up on this node.", (m) => m.bonds.length),
  g(
    "mosaik_group_elections_started_total",
    "Elections this node started (bootstrap included).",
    (m) => m.electionsStarted,
    "counter",
  ),
  g(
    "mosaik_group_elections_won_total",
    "Elections this node won (bootstrap included).",
    (m) => m.electionsWon,
    "counter",
  ),
  g(
    "mosaik_group_leader_changes_total",
    "Times this node learned of a leader different from the last one it knew.",
    (m) => m.leaderChanges,
    "counter",
  ),
  g(
    "mosaik_group_proposals_total",
    "Commands submitted on this node that a leader accepted.",
    (m) => m.proposals,
    "counter",
  ),
  g(
    "mosaik_group_proposals_failed_total",
    "Commands submitted on this node that failed (offline, lost, aborted, closed).",
    (m) => m.proposalsFailed,
    "counter",
  ),
  g(
    "mosaik_group_forwarded_total",
    "Commands this node forwarded to a leader (each attempt).",
    (m) => m.forwarded,
    "counter",
  ),
  g(
    "mosaik_group_forwards_served_total",
    "Commands this node proposed as leader for other members.",
    (m) => m.forwardsServed,
    "counter",
  ),
  g(
    "mosaik_group_merges_lost_total",
    "Times this node discarded its state because its cluster lost a merge.",
    (m) => m.mergesLost,
    "counter",
  ),
  {
    name: "mosaik_group_commit_latency_seconds",
    type: "histogram",
    help: "Latency of this node's successful execute calls, until committed and applied here.",
    labels: ["group"],
    samples: () => [], // rendered by histogramLines
  },
  bondFamily(
    "mosaik_bond_received_bytes_total",
    "Bytes received on the bond (length prefixes and handshake included).",
    (b) => b.bytesIn,
    "counter",
  ),
  bondFamily(
    "mosaik_bond_sent_bytes_total",
    "Bytes sent on the bond (length prefixes and handshake included).",
    (b) => b.bytesOut,
    "counter",
  ),
  bondFamily(
    "mosaik_bond_received_messages_total",
    "Frames received on the bond after the handshake (heartbeats included).",
    (b) => b.messagesIn,
    "counter",
  ),
  bondFamily(
    "mosaik_bond_sent_messages_total",
    "Frames sent on the bond after the handshake (heartbeats included).",
    (b) => b.messagesOut,
    "counter",
  ),
  bondFamily(
    "mosaik_bond_rtt_seconds",
    "Smoothed round-trip time of the bond's heartbeats; absent until measured.",
    (b) => b.rttMs === undefined ? undefined : b.rttMs / 1000,
    "gauge",
  ),
];

/** Every metric family `/metrics` can show, in output order (the README documents each). */
export const METRIC_FAMILIES: readonly MetricFamily[] = FAMILIES.map((f) => ({
  name: f.name,
  type: f.type,
  help: f.help,
  labels: f.labels,
}));

/**
 * Renders `node` as Prometheus text (format 0.0.4): for every family a
 * `# HELP` and a `# TYPE` line, then its samples. Groups are labelled by
 * their GroupId and peers by their PeerId, both short hex; no key appears.
 *
 * @param node the node's metrics
 * @returns the exposition, ending with a newline
 */
export function formatPrometheus(node: NodeMetrics): string {
  const out: string[] = [];
  for (const f of FAMILIES) {
    out.push(`# HELP ${f.name} ${escapeHelp(f.help)}`, `# TYPE ${f.name} ${f.type}`);
    if (f.type === "histogram") {
      for (const m of node.groups) histogramLines(out, f.name, m);
      continue;
    }
    for (const [l, v] of f.samples(node)) out.push(`${f.name}${l} ${formatValue(v)}`);
  }
  return out.join("\n") + "\n";
}

function histogramLines(out: string[], name: string, m: GroupMetrics): void {
  const group = m.groupId.short();
  const h = m.commitLatency;
  for (let i = 0; i < h.boundsMs.length; i++) {
    const le = formatValue(h.boundsMs[i]! / 1000);
    out.push(`${name}_bucket${labels({ group, le })} ${formatValue(h.cumulative[i]!)}`);
  }
  out.push(`${name}_bucket${labels({ group, le: "+Inf" })} ${formatValue(h.count)}`);
  out.push(`${name}_sum${labels({ group })} ${formatValue(h.sumMs / 1000)}`);
  out.push(`${name}_count${labels({ group })} ${formatValue(h.count)}`);
}

function groupLabel(m: GroupMetrics): string {
  return labels({ group: m.groupId.short() });
}

/** `{a="1",b="2"}`, values escaped; `""` for no labels. */
function labels(pairs: Readonly<Record<string, string>>): string {
  const parts = Object.entries(pairs).map(([k, v]) => `${k}="${escapeLabel(v)}"`);
  return parts.length === 0 ? "" : `{${parts.join(",")}}`;
}

function escapeLabel(v: string): string {
  return v.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}

function escapeHelp(v: string): string {
  return v.replace(/\\/g, "\\\\").replace(/\n/g, "\\n");
}

function formatValue(v: number): string {
  if (Number.isNaN(v)) return "NaN";
  if (v === Infinity) return "+Inf";
  if (v === -Infinity) return "-Inf";
  return String(v);
}
