// LogReplaySync catch-up: a lagging member fetches committed entries in batches, in parallel from several peers.

/**
 * How a member that is behind catches up (the `LogReplaySync` strategy):
 *
 * - It engages when this node is in a cluster, is not its leader, and its
 *   log ends at least one batch (`batchSize` entries) below the highest
 *   committed index a peer of its cluster reported. Smaller gaps are left to
 *   the leader's own replication.
 * - The missing range is cut into windows of `batchSize`; each window is
 *   asked of one peer of the same cluster whose committed index covers it,
 *   with at most one request in flight per peer, non-leaders first (to spare
 *   the leader). A request unanswered within `fetchTimeout` is given to
 *   another peer, and the slow peer rests for a while.
 * - Answers may arrive out of order: they are buffered and installed in
 *   index order (`RaftCore.installCommitted`), so the log never has a hole.
 *   A peer answers only with entries it has committed and stored, and may
 *   send fewer than asked (at most {@link MAX_RESPONSE_BYTES}); the rest is
 *   asked again.
 *
 * The serving side is {@link serveSync}.
 *
 * @module
 */

import type { Index, Term } from "../primitives/cursor.ts";
import type { NodeId } from "../raft/types.ts";
import type { LogEntry, Storage } from "../../storage/types.ts";
import { copyBytes } from "../wire/bytes.ts";
import { decodeOwnedEntry, entryBytes } from "../wire/entry.ts";

/** The state-sync messages members exchange (part of the group's bond messages). */
export type SyncMessage =
  /** Asks for committed entries `start..=end` of cluster `clusterId`. */
  | {
    readonly t: "syncReq";
    readonly id: number;
    readonly clusterId: string;
    readonly start: Index;
    readonly end: Index;
  }
  /** Entries from the request's `start`, contiguous; `prevTerm` is the term at `start - 1`. */
  | {
    readonly t: "syncRes";
    readonly id: number;
    readonly prevTerm: Term;
    readonly entries: readonly Uint8Array[];
  }
  /** The peer cannot serve the request (another cluster, not committed yet, storage error). */
  | { readonly t: "syncErr"; readonly id: number; readonly reason: string };

/** Most bytes of entries in one answer (a peer answers with fewer entries rather than more bytes). */
export const MAX_RESPONSE_BYTES = 4 * 1024 * 1024;

/** Windows fetched ahead of the one that is next to install. */
const MAX_WINDOWS_AHEAD = 32;

/** What a catch-up needs from its driver. */
export interface SyncHost {
  /** This node's cluster, committed index, last log index and leader, now. */
  state(): {
    clusterId: string | undefined;
    leader: NodeId | undefined;
    isLeader: boolean;
    lastIndex: Index;
  };
  /** Bonded peers and what they last said about themselves. */
  peers(): Iterable<{ id: NodeId; clusterId: string | undefined; committed: Index }>;
  /** Sends a message to a bonded peer; false when there is no bond. */
  send(peer: NodeId, message: SyncMessage): boolean;
  /** Installs committed entries after `prevIndex`; resolves with the last index installed (0: none). */
  install(prevIndex: Index, prevTerm: Term, entries: LogEntry<unknown>[]): Promise<Index>;
}

interface Request {
  readonly id: number;
  readonly peer: NodeId;
  readonly start: Index;
  readonly end: Index;
  readonly sentAt: number;
}

/** Counters of a catch-up, for tests and metrics. */
export interface SyncStats {
  /** Requests sent. */
  requests: number;
  /** Entries received in answers. */
  entries: number;
  /** Requests that timed out or were refused. */
  failures: number;
  /** Distinct peers that answered at least once. */
  servedBy: Set<NodeId>;
}

/** One node's catch-up driver; call {@link tick} periodically. */
export class CatchUp {
  readonly stats: SyncStats = { requests: 0, entries: 0, failures: 0, servedBy: new Set() };
  readonly #host: SyncHost;
  readonly #batchSize: number;
  readonly #fetchTimeout: number;
  readonly #inFlight = new Map<number, Request>();
  /** Received windows by start index, waiting for their turn. */
  readonly #buffer = new Map<Index, { prevTerm: Term; entries: LogEntry<unknown>[] }>();
  /** Peers resting after a timeout or refusal, until this time. */
  readonly #resting = new Map<NodeId, number>();
  #seq = 0;
  #installing = false;
  #clusterId: string | undefined;

  /**
   * @param host the driver
   * @param options `batchSize` and `fetchTimeout` of the group's LogReplaySync
   */
  constructor(host: SyncHost, options: { batchSize: number; fetchTimeout: number }) {
    this.#host = host;
    this.#batchSize = options.batchSize;
    this.#fetchTimeout = options.fetchTimeout;
  }

  /** Requests in flight. */
  get inFlight(): number {
    return this.#inFlight.size;
  }

  /** Expires timed-out requests and sends new ones while this node is a batch or more behind. */
  tick(now = Date.now()): void {
    const st = this.#host.state();
    if (st.clusterId !== this.#clusterId) this.#reset(st.clusterId);
    for (const r of [...this.#inFlight.values()]) {
      if (now - r.sentAt >= this.#fetchTimeout) this.#fail(r, now);
    }
    if (st.clusterId === undefined || st.isLeader) return;
    const peers = [...this.#host.peers()].filter((p) =>
      p.clusterId === st.clusterId && (this.#resting.get(p.id) ?? 0) <= now
    );
    const target = Math.max(0, ...peers.map((p) => p.committed));
    if (target - st.lastIndex < this.#batchSize && this.#inFlight.size === 0) return;
    const busy = new Set([...this.#inFlight.values()].map((r) => r.peer));
    // Non-leaders first, then the leader; among them, those furthest ahead.
    const free = peers
      .filter((p) => !busy.has(p.id))
      .sort((a, b) =>
        (a.id === st.leader ? 1 : 0) - (b.id === st.leader ? 1 : 0) || b.committed - a.committed
      );
    let next = this.#nextWindowStart(st.lastIndex + 1);
    for (const p of free) {
      if (next > target || next > st.lastIndex + this.#batchSize * MAX_WINDOWS_AHEAD) break;
      // A window never reaches into a range already buffered or asked for.
      const end = Math.min(next + this.#batchSize - 1, p.committed, this.#nextHeldStart(next) - 1);
      if (end < next) continue;
      const id = ++this.#seq;
      const req: Request = { id, peer: p.id, start: next, end, sentAt: now };
      if (
        !this.#host.send(p.id, { t: "syncReq", id, clusterId: st.clusterId, start: next, end })
      ) continue;
      this.#inFlight.set(id, req);
      this.stats.requests++;
      next = this.#nextWindowStart(end + 1);
    }
  }

  /** An answer (or refusal) from `from`. */
  onMessage(from: NodeId, msg: SyncMessage): void {
    if (msg.t === "syncReq") return;
    const req = this.#inFlight.get(msg.id);
    if (req === undefined || req.peer !== from) return;
    this.#inFlight.delete(msg.id);
    if (msg.t === "syncErr") {
      this.#fail(req, Date.now(), false);
      return;
    }
    const entries: LogEntry<unknown>[] = [];
    let lastTerm = msg.prevTerm;
    for (const [k, bytes] of msg.entries.entries()) {
      let e: LogEntry<unknown>;
      try {
        e = decodeOwnedEntry(copyBytes(bytes));
      } catch {
        this.#fail(req, Date.now(), false);
        return;
      }
      if (e.index !== req.start + k || e.term < lastTerm || req.start + k > req.end) {
        this.#fail(req, Date.now(), false);
        return;
      }
      lastTerm = e.term;
      entries.push(e);
    }
    this.stats.servedBy.add(from);
    if (entries.length === 0) return;
    this.stats.entries += entries.length;
    this.#buffer.set(req.start, { prevTerm: msg.prevTerm, entries });
    void this.#drain();
  }

  /** A peer's bond went down: its request goes to someone else. */
  onPeerDown(peer: NodeId): void {
    for (const r of [...this.#inFlight.values()]) {
      if (r.peer === peer) this.#inFlight.delete(r.id);
    }
  }

  /** Forgets everything (the group stopped). */
  close(): void {
    this.#inFlight.clear();
    this.#buffer.clear();
  }

  #reset(clusterId: string | undefined): void {
    this.#clusterId = clusterId;
    this.#inFlight.clear();
    this.#buffer.clear();
    this.#resting.clear();
  }

  /** The ranges buffered or asked for, as [start, end]. */
  #held(): [Index, Index][] {
    return [
      ...[...this.#buffer].map(([start, w]) =>
        [start, start + w.entries.length - 1] as [
          Index,
          Index,
        ]
      ),
      ...[...this.#inFlight.values()].map((r) => [r.start, r.end] as [Index, Index]),
    ];
  }

  /** The first index from `from` on that is neither buffered nor asked for. */
  #nextWindowStart(from: Index): Index {
    const held = this.#held();
    let next = from;
    for (let moved = true; moved;) {
      moved = false;
      for (const [start, end] of held) {
        if (start <= next && next <= end) {
          next = end + 1;
          moved = true;
        }
      }
    }
    return next;
  }

  /** The start of the first buffered or asked range above `after` (Infinity when none). */
  #nextHeldStart(after: Index): Index {
    let first = Infinity;
    for (const [start] of this.#held()) if (start > after && start < first) first = start;
    return first;
  }

  #fail(req: Request, now: number, timedOut = true): void {
    this.#inFlight.delete(req.id);
    this.stats.failures++;
    this.#resting.set(req.peer, now + (timedOut ? this.#fetchTimeout : this.#fetchTimeout / 4));
  }

  /** Installs buffered windows in index order. */
  async #drain(): Promise<void> {
    if (this.#installing) return;
    this.#installing = true;
    try {
      for (;;) {
        const st = this.#host.state();
        // Drop what the log already holds.
        for (const start of [...this.#buffer.keys()]) {
          const w = this.#buffer.get(start)!;
          if (start + w.entries.length - 1 <= st.lastIndex) this.#buffer.delete(start);
        }
        const entry = [...this.#buffer.entries()].find(([start, w]) =>
          start <= st.lastIndex + 1 && start + w.entries.length - 1 > st.lastIndex
        );
        if (entry === undefined) return;
        const [start, w] = entry;
        this.#buffer.delete(start);
        const installed = await this.#host.install(start - 1, w.prevTerm, w.entries);
        if (installed === 0) return; // does not attach (the log changed under us): ask again later
      }
    } finally {
      this.#installing = false;
    }
  }
}

/**
 * Answers a peer's `syncReq` from this node's storage: only entries this
 * node has committed and stored, of the peer's cluster, up to
 * {@link MAX_RESPONSE_BYTES}.
 *
 * @param req the request
 * @param me this node's cluster and committed index, and the term at an index
 * @param storage where the entries are read
 * @returns the answer to send
 */
export async function serveSync(
  req: Extract<SyncMessage, { t: "syncReq" }>,
  me: { clusterId: string | undefined; committed: Index; termAt(i: Index): Term | undefined },
  storage: Storage<unknown>,
): Promise<SyncMessage> {
  if (me.clusterId === undefined || me.clusterId !== req.clusterId) {
    return { t: "syncErr", id: req.id, reason: "another cluster" };
  }
  const end = Math.min(req.end, me.committed);
  const prevTerm = req.start === 1 ? 0 : me.termAt(req.start - 1);
  if (end < req.start || prevTerm === undefined) {
    return { t: "syncErr", id: req.id, reason: "not available" };
  }
  let entries: readonly LogEntry<unknown>[];
  try {
    entries = await storage.getRange(req.start, end);
  } catch (err) {
    return { t: "syncErr", id: req.id, reason: `storage: ${String(err)}` };
  }
  const out: Uint8Array[] = [];
  let bytes = 0;
  for (const [k, e] of entries.entries()) {
    if (e.index !== req.start + k) break;
    const b = entryBytes(e);
    if (out.length > 0 && bytes + b.byteLength > MAX_RESPONSE_BYTES) break;
    out.push(b);
    bytes += b.byteLength;
  }
  return { t: "syncRes", id: req.id, prevTerm, entries: out };
}
