// Client workload of the cluster simulator: a key-value state machine, clients issuing writes and ReadIndex reads, and their history.

import type { Index, IndexRange } from "../../lib/primitives/cursor.ts";
import type { Rng } from "../../lib/primitives/rng.ts";
import type { Accepted } from "../../lib/raft/core.ts";
import type { NodeId } from "../../lib/raft/types.ts";
import { type LogEntry, SystemEntry } from "../../storage/types.ts";
import type { KvInput, KvOutput, Operation } from "./linearizability.ts";

/** The user command the simulator replicates. */
export interface KvCommand {
  readonly clientId: number;
  readonly opId: number;
  readonly op: "put" | "append";
  readonly key: string;
  readonly value: string;
}

/** True when `x` looks like a {@link KvCommand}. */
export function isKvCommand(x: unknown): x is KvCommand {
  if (typeof x !== "object" || x === null) return false;
  const c = x as Record<string, unknown>;
  return typeof c.clientId === "number" && typeof c.opId === "number" &&
    (c.op === "put" || c.op === "append") && typeof c.key === "string" &&
    typeof c.value === "string";
}

/** The replicated key-value store; every node rebuilds one from its log after a restart. */
export class KvStateMachine {
  readonly #data = new Map<string, string>();

  /** Applies one committed entry; system entries and foreign commands change nothing. */
  apply(entry: LogEntry<unknown>): void {
    const c = entry.command;
    if (SystemEntry.is(c) || !isKvCommand(c)) return;
    if (c.op === "put") this.#data.set(c.key, c.value);
    else this.#data.set(c.key, (this.#data.get(c.key) ?? "") + c.value);
  }

  /** The value of `key`, null when absent. */
  get(key: string): string | null {
    return this.#data.get(key) ?? null;
  }
}

/** What the workload needs from the cluster. Calls that reach a core are steps of the simulation. */
export interface WorkloadTarget {
  /** Number of nodes; nodes are addressed by position. */
  readonly size: number;
  /** Step counter, the virtual time stamped on history entries. */
  readonly clock: number;
  isUp(node: number): boolean;
  /** Changes each time the node restarts, so an answer from an old life is never taken for a new one. */
  incarnation(node: number): number;
  indexOf(id: NodeId): number | undefined;
  /** The node's idea of the leader, if it is up and knows one. */
  leaderHint(node: number): NodeId | undefined;
  propose(node: number, cmd: KvCommand): Accepted<IndexRange> | undefined;
  readIndex(node: number, requestId: string): void;
  /** The node's state machine, read directly (a local, possibly stale read). */
  localRead(node: number, key: string): string | null;
}

/** Settings of the workload. */
export interface WorkloadOptions {
  readonly clients: number;
  readonly keys: readonly string[];
  /** Operations each client issues before the final phase. */
  readonly opsPerClient: number;
  /** Probability per tick that an idle client issues an operation. */
  readonly rate: number;
  /** Ticks after which a client gives up on an operation (its outcome is then unknown). */
  readonly timeoutTicks: number;
  /** Share of operations that are reads. */
  readonly readShare: number;
  /**
   * Serve reads from the contacted node's state machine without ReadIndex.
   * Not linearizable: only for proving that the linearizability check can fail.
   */
  readonly staleReads?: boolean;
}

type OpStatus = "waiting" | "ok" | "failed" | "unknown";

interface OpRecord {
  readonly clientId: number;
  readonly input: KvInput;
  readonly call: number;
  status: OpStatus;
  output?: KvOutput;
  ret?: number;
}

interface Waiting {
  readonly kind: "write" | "read";
  readonly rec: OpRecord;
  readonly opId: number;
  readonly node: number;
  readonly incarnation: number;
  /** Log index of a write once the leader accepted it. */
  index: Index | undefined;
  readonly requestId: string;
  readonly deadline: number;
}

interface Client {
  readonly id: number;
  opSeq: number;
  issued: number;
  /** Node the client believes leads. */
  guess: number;
  waiting: Waiting | undefined;
  finalWrite: boolean;
  finalRead: boolean;
}

/** Counters for reports. */
export interface WorkloadStats {
  ok: number;
  failed: number;
  unknown: number;
  refused: number;
}

/**
 * Clients with at most one outstanding operation each. A write completes when
 * the node that accepted it applies an entry carrying its op id; it fails
 * cleanly (and is left out of the history) when that node applies another
 * entry at its index, since the write can then never commit; it is unknown
 * (kept, without a return) when the client times out or the node crashes.
 */
export class Workload {
  readonly #rng: Rng;
  readonly #opts: WorkloadOptions;
  readonly #clients: Client[] = [];
  readonly #records: OpRecord[] = [];
  #finalFrom: number | undefined;
  readonly stats: WorkloadStats = { ok: 0, failed: 0, unknown: 0, refused: 0 };

  constructor(rng: Rng, opts: WorkloadOptions, nodes: number) {
    this.#rng = rng;
    this.#opts = opts;
    for (let id = 0; id < opts.clients; id++) {
      this.#clients.push({
        id,
        opSeq: 0,
        issued: 0,
        guess: rng.int(nodes),
        waiting: undefined,
        finalWrite: false,
        finalRead: false,
      });
    }
  }

  /** One tick of every client: time out, then maybe issue the next operation. */
  tick(now: number, target: WorkloadTarget): void {
    for (const c of this.#clients) {
      const w = c.waiting;
      if (w !== undefined && now >= w.deadline) {
        this.#finish(c, w.kind === "write" ? "unknown" : "failed");
        c.guess = this.#rng.int(target.size);
      }
      if (c.waiting !== undefined) continue;
      const final = this.#finalFrom !== undefined;
      if (!final && c.issued >= this.#opts.opsPerClient) continue;
      if (final && c.finalWrite && c.finalRead) continue;
      if (this.#rng.next() >= this.#opts.rate) continue;
      this.#issue(c, now, target);
    }
  }

  #issue(c: Client, now: number, target: WorkloadTarget): void {
    let node = c.guess;
    if (!target.isUp(node)) {
      const up = [...Array(target.size).keys()].filter((i) => target.isUp(i));
      if (up.length === 0) return;
      node = up[this.#rng.int(up.length)]!;
    }
    const keys = this.#opts.keys;
    const key = keys[this.#rng.int(keys.length)]!;
    let read = this.#rng.next() < this.#opts.readShare;
    if (this.#finalFrom !== undefined) read = c.finalWrite && !c.finalRead;
    const opId = ++c.opSeq;
    const deadline = now + this.#opts.timeoutTicks;
    const incarnation = target.incarnation(node);
    if (read) {
      const requestId = `c${c.id}.${opId}`;
      const rec: OpRecord = {
        clientId: c.id,
        input: { op: "get", key },
        call: target.clock,
        status: "waiting",
      };
      this.#records.push(rec);
      c.issued++;
      // Waiting is set first: the answer may come back within the same step.
      c.waiting = {
        kind: "read",
        rec,
        opId,
        node,
        incarnation,
        index: undefined,
        requestId,
        deadline,
      };
      if (this.#opts.staleReads) this.#finish(c, "ok", target.localRead(node, key), target.clock);
      else target.readIndex(node, requestId);
      return;
    }
    const op = this.#rng.next() < 0.5 ? "put" : "append";
    const value = `${c.id}.${opId};`;
    const cmd: KvCommand = { clientId: c.id, opId, op, key, value };
    const rec: OpRecord = {
      clientId: c.id,
      input: { op, key, value },
      call: target.clock,
      status: "waiting",
    };
    const w: Waiting = {
      kind: "write",
      rec,
      opId,
      node,
      incarnation,
      index: undefined,
      requestId: "",
      deadline,
    };
    c.waiting = w;
    const r = target.propose(node, cmd);
    if (r === undefined || !r.ok) {
      // Refused: nothing reached the log, so there is nothing to record.
      if (c.waiting === w) c.waiting = undefined;
      this.stats.refused++;
      const hint = target.leaderHint(node);
      const hinted = hint === undefined ? undefined : target.indexOf(hint);
      c.guess = hinted ?? this.#rng.int(target.size);
      return;
    }
    this.#records.push(rec);
    c.issued++;
    if (c.waiting === w) w.index = r.value.start;
  }

  #finish(c: Client, status: "ok" | "failed" | "unknown", output?: KvOutput, ret?: number): void {
    const w = c.waiting;
    if (w === undefined) return;
    c.waiting = undefined;
    w.rec.status = status;
    this.stats[status]++;
    if (status === "ok") {
      w.rec.output = output ?? null;
      w.rec.ret = ret ?? w.rec.call;
      c.guess = w.node;
      if (this.#finalFrom !== undefined && w.rec.call >= this.#finalFrom) {
        if (w.kind === "write") c.finalWrite = true;
        else c.finalRead = true;
      }
    }
  }

  /** A node applied a committed entry. */
  applied(node: number, incarnation: number, entry: LogEntry<unknown>, clock: number): void {
    const cmd = entry.command;
    for (const c of this.#clients) {
      const w = c.waiting;
      if (
        w === undefined || w.kind !== "write" || w.node !== node || w.incarnation !== incarnation
      ) continue;
      if (isKvCommand(cmd) && cmd.clientId === c.id && cmd.opId === w.opId) {
        this.#finish(c, "ok", null, clock);
      } else if (w.index === entry.index) this.#finish(c, "failed");
    }
  }

  /** A node may now serve read `requestId` from its state machine. */
  readServed(node: number, incarnation: number, requestId: string, target: WorkloadTarget): void {
    for (const c of this.#clients) {
      const w = c.waiting;
      if (w === undefined || w.kind !== "read" || w.requestId !== requestId) continue;
      if (w.node !== node || w.incarnation !== incarnation) continue;
      this.#finish(c, "ok", target.localRead(node, w.rec.input.key), target.clock);
    }
  }

  /** A node gave up on read `requestId`. */
  readDropped(node: number, incarnation: number, requestId: string): void {
    for (const c of this.#clients) {
      const w = c.waiting;
      if (w === undefined || w.kind !== "read" || w.requestId !== requestId) continue;
      if (w.node === node && w.incarnation === incarnation) this.#finish(c, "failed");
    }
  }

  /** A node crashed: its clients lose their answer. */
  crashed(node: number): void {
    for (const c of this.#clients) {
      const w = c.waiting;
      if (w !== undefined && w.node === node) {
        this.#finish(c, w.kind === "write" ? "unknown" : "failed");
      }
    }
  }

  /** From now on every client must complete one write and one read issued after `clock`. */
  startFinal(clock: number): void {
    this.#finalFrom = clock;
    for (const c of this.#clients) {
      c.finalWrite = false;
      c.finalRead = false;
    }
  }

  /** True once every client completed a write and a read in the final phase. */
  finalDone(): boolean {
    return this.#clients.every((c) => c.finalWrite && c.finalRead);
  }

  /** Clients that have not finished the final phase, for the liveness message. */
  describeStuck(): string {
    return this.#clients
      .filter((c) => !(c.finalWrite && c.finalRead))
      .map((c) => {
        const w = c.waiting;
        const state = w === undefined
          ? "idle"
          : `waiting on ${w.kind} ${w.rec.input.key} at n${w.node}${
            w.index === undefined ? "" : ` index ${w.index}`
          }`;
        return `client ${c.id} (write ${c.finalWrite ? "done" : "missing"}, read ${
          c.finalRead ? "done" : "missing"
        }, ${state})`;
      })
      .join("; ");
  }

  /** Number of operations recorded (including failed ones). */
  get recorded(): number {
    return this.#records.length;
  }

  /**
   * The history for the linearizability checker: completed operations with
   * their answers, writes of unknown outcome without a return, and nothing
   * of operations that failed cleanly or reads that never returned.
   */
  history(): Operation<KvInput, KvOutput>[] {
    const out: Operation<KvInput, KvOutput>[] = [];
    for (const r of this.#records) {
      if (r.status === "ok") {
        out.push({
          clientId: r.clientId,
          input: r.input,
          call: r.call,
          output: r.output ?? null,
          return: r.ret ?? r.call,
        });
      } else if ((r.status === "unknown" || r.status === "waiting") && r.input.op !== "get") {
        out.push({ clientId: r.clientId, input: r.input, call: r.call });
      }
    }
    return out;
  }
}
