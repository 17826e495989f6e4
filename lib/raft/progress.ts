// The leader's view of one follower's replication: match/next index, probe or pipeline, in-flight window.

import type { Index } from "../primitives/cursor.ts";

/**
 * Replication progress of one peer, kept by the leader.
 *
 * - `probe`: the leader does not know where the follower's log matches; it
 *   sends one AppendEntries at a time and waits for the answer (or the next
 *   heartbeat) before the next probe.
 * - `replicate`: the follower matched; the leader pipelines up to `maxInflight`
 *   AppendEntries, advancing `next` optimistically.
 * - `syncing`: the follower is far behind and fetches committed entries from
 *   peers (state sync); the leader sends it only heartbeats and watches its
 *   last index in their answers.
 */
export class Progress {
  match: Index = 0;
  next: Index;
  state: "probe" | "replicate" | "syncing" = "probe";
  /** In syncing state: the follower's last index at its latest heartbeat answer. */
  syncSeen = 0;
  /** In syncing state: heartbeat answers in a row without progress. */
  syncStalls = 0;
  /** State sync stalled for this follower: the leader replicates to it itself. */
  noSync = false;
  /** In probe state: an AppendEntries was sent and not yet answered. */
  probeSent = false;
  /** Last index of each AppendEntries in flight (replicate state), ascending. */
  inflight: Index[] = [];
  /** Heard from since the last check-quorum round. */
  recentActive = false;
  /** Highest heartbeat sequence number the peer acknowledged (ReadIndex). */
  ackedSeq = 0;

  constructor(next: Index) {
    this.next = next;
  }

  /** True when the leader should not send another AppendEntries now. */
  isPaused(maxInflight: number): boolean {
    if (this.state === "syncing") return true;
    return this.state === "probe" ? this.probeSent : this.inflight.length >= maxInflight;
  }

  /** The follower catches up from peers; `from` is its last known index. */
  becomeSyncing(from: Index): void {
    this.state = "syncing";
    this.sentCommit = 0;
    this.probeSent = false;
    this.inflight = [];
    this.syncSeen = from;
    this.syncStalls = 0;
  }

  becomeProbe(): void {
    this.state = "probe";
    this.sentCommit = 0;
    this.probeSent = false;
    this.inflight = [];
    this.next = this.match + 1;
  }

  becomeReplicate(): void {
    this.state = "replicate";
    this.sentCommit = 0;
    this.probeSent = false;
    this.inflight = [];
    this.next = this.match + 1;
  }

  /**
   * The commit index the last AppendEntries to this follower carried, while
   * replicating: an empty append that would tell it nothing new is not sent.
   */
  sentCommit = 0;

  /** Records that entries up to `last` were sent. */
  sent(last: Index, count: number): void {
    if (this.state === "replicate") {
      if (count > 0) {
        this.next = last + 1;
        this.inflight.push(last);
      }
    } else {
      this.probeSent = true;
    }
  }

  /** A success up to `index`; returns true if it moved `match` forward. */
  maybeUpdate(index: Index): boolean {
    let updated = false;
    if (index > this.match) {
      this.match = index;
      updated = true;
      this.probeSent = false;
    }
    this.next = Math.max(this.next, index + 1);
    while (this.inflight.length > 0 && this.inflight[0]! <= index) this.inflight.shift();
    return updated;
  }

  /**
   * A rejection of an AppendEntries whose prevLogIndex was `rejected`; `probeAt`
   * is where the leader will probe next (from the follower's hint). Returns
   * false when the rejection is stale.
   */
  maybeDecrTo(rejected: Index, probeAt: Index): boolean {
    if (this.state === "replicate") {
      if (rejected <= this.match) return false;
      this.becomeProbe();
      this.next = Math.max(Math.min(rejected, probeAt), this.match + 1);
      return true;
    }
    if (this.next - 1 !== rejected) return false;
    this.next = Math.max(Math.min(rejected, probeAt), this.match + 1);
    this.probeSent = false;
    return true;
  }
}
