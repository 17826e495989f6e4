// Simulated network of the cluster simulator: seeded delay, loss, duplication, reordering and partitions.

import type { Rng } from "../../lib/primitives/rng.ts";
import type { NodeId, RaftMessage } from "../../lib/raft/types.ts";

/** How unreliable the network is; every probability is per message. */
export interface NetworkFaults {
  /** Probability that a message is lost. */
  readonly loss: number;
  /** Probability that a message is delivered twice (each copy with its own delay). */
  readonly duplicate: number;
  /** Ordinary delay: uniform in `[0, maxDelay]` ticks. */
  readonly maxDelay: number;
  /** Probability that a message takes the long path instead (strong reordering). */
  readonly longDelay: number;
  /** Long delay: uniform in `[1, longDelayMax]` ticks. */
  readonly longDelayMax: number;
}

/** A network that delivers everything promptly and in order of sending within a tick. */
export const RELIABLE: NetworkFaults = Object.freeze({
  loss: 0,
  duplicate: 0,
  maxDelay: 0,
  longDelay: 0,
  longDelayMax: 1,
});

/** Counters for reports. */
export interface NetworkStats {
  sent: number;
  delivered: number;
  lost: number;
  duplicated: number;
  blocked: number;
}

/**
 * Messages in flight, keyed by the tick they become deliverable. Delivery order
 * among due messages is drawn from the run's generator, so any two messages may
 * be reordered; a partition is checked on delivery, so a message sent before a
 * cut is still lost if the cut is there when it arrives.
 */
export class SimNetwork {
  readonly #rng: Rng;
  #faults: NetworkFaults;
  /** Messages whose delivery tick is in the future. */
  readonly #later = new Map<number, RaftMessage[]>();
  /** Messages deliverable now, in no particular order. */
  #due: RaftMessage[] = [];
  /** Blocked directed links, as `from>to`. */
  readonly #blocked = new Set<string>();
  readonly stats: NetworkStats = { sent: 0, delivered: 0, lost: 0, duplicated: 0, blocked: 0 };

  constructor(rng: Rng, faults: NetworkFaults = RELIABLE) {
    this.#rng = rng;
    this.#faults = faults;
  }

  get faults(): NetworkFaults {
    return this.#faults;
  }

  set faults(f: NetworkFaults) {
    this.#faults = f;
  }

  /** Puts a message on the wire at tick `now`. */
  send(m: RaftMessage, now: number): void {
    this.stats.sent++;
    const f = this.#faults;
    if (f.loss > 0 && this.#rng.next() < f.loss) {
      this.stats.lost++;
      return;
    }
    this.#enqueue(m, now);
    if (f.duplicate > 0 && this.#rng.next() < f.duplicate) {
      this.stats.duplicated++;
      this.#enqueue(m, now);
    }
  }

  #enqueue(m: RaftMessage, now: number): void {
    const f = this.#faults;
    const delay = f.longDelay > 0 && this.#rng.next() < f.longDelay
      ? 1 + this.#rng.int(Math.max(1, f.longDelayMax))
      : (f.maxDelay > 0 ? this.#rng.int(f.maxDelay + 1) : 0);
    if (delay === 0) {
      this.#due.push(m);
      return;
    }
    const at = now + delay;
    const bucket = this.#later.get(at);
    if (bucket === undefined) this.#later.set(at, [m]);
    else bucket.push(m);
  }

  /** Makes every message due at or before `now` deliverable; call once at the start of a tick. */
  advanceTo(now: number): void {
    for (const [at, bucket] of this.#later) {
      if (at > now) continue;
      for (const m of bucket) this.#due.push(m);
      this.#later.delete(at);
    }
  }

  /**
   * A random deliverable message, or undefined when none is due. Messages on a
   * blocked link are dropped here.
   */
  take(): RaftMessage | undefined {
    while (this.#due.length > 0) {
      const i = this.#rng.int(this.#due.length);
      const m = this.#due[i]!;
      this.#due[i] = this.#due[this.#due.length - 1]!;
      this.#due.pop();
      if (this.#blocked.has(link(m.from, m.to))) {
        this.stats.blocked++;
        continue;
      }
      this.stats.delivered++;
      return m;
    }
    return undefined;
  }

  /** Messages still on the wire. */
  inFlight(): number {
    let n = this.#due.length;
    for (const b of this.#later.values()) n += b.length;
    return n;
  }

  /** Cuts the directed link `from → to`. */
  block(from: NodeId, to: NodeId): void {
    if (from !== to) this.#blocked.add(link(from, to));
  }

  /** Whether `from → to` is cut. */
  isBlocked(from: NodeId, to: NodeId): boolean {
    return this.#blocked.has(link(from, to));
  }

  /** Number of cut directed links. */
  blockedLinks(): number {
    return this.#blocked.size;
  }

  /** Restores every link. */
  heal(): void {
    this.#blocked.clear();
  }

  /** Human-readable list of cut links, for traces. */
  describePartition(): string {
    return this.#blocked.size === 0 ? "none" : [...this.#blocked].sort().join(" ");
  }
}

function link(from: NodeId, to: NodeId): string {
  return `${from}>${to}`;
}
