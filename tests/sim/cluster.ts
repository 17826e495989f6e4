// Simulated Raft cluster: nodes with durable storage, crash and restart, and the safety checkers run after every step.

import type { Index, IndexRange, Term } from "../../lib/primitives/cursor.ts";
import { SeededRng } from "../../lib/primitives/rng.ts";
import { type Accepted, InvariantError, RaftCore } from "../../lib/raft/core.ts";
import type {
  EntryLookup,
  NodeId,
  RaftConfig,
  RaftInit,
  RaftMessage,
  Ready,
  Role,
} from "../../lib/raft/types.ts";
import { InMemoryLogStore } from "../../storage/memory.ts";
import { type LogEntry, SystemEntry } from "../../storage/types.ts";
import type { SimNetwork } from "./network.ts";
import { isKvCommand, type KvCommand, KvStateMachine, type WorkloadTarget } from "./workload.ts";

// ---- violations ------------------------------------------------------------------------------

/** Which rule a violation breaks. */
export type ViolationKind =
  | "election-safety"
  | "log-matching"
  | "committed-changed"
  | "committed-lost"
  | "state-machine-safety"
  | "leader-completeness"
  | "core-invariant"
  | "core-error"
  | "driver"
  | "liveness"
  | "linearizability"
  | "runaway";

/** A broken rule, with where in the run it was seen. */
export interface Violation {
  readonly kind: ViolationKind;
  readonly message: string;
  readonly tick: number;
  readonly step: number;
}

/** Work the cluster may queue before the run counts it as a runaway (unbounded output of the core). */
export const MAX_PENDING_FETCHES = 1000;
export const MAX_IN_FLIGHT = 100_000;

/** Thrown to stop a run at its first violation; the state after it proves nothing more. */
export class SimAbort extends Error {
  override name = "SimAbort";
  readonly violation: Violation;
  constructor(v: Violation) {
    super(`${v.kind}: ${v.message}`);
    this.violation = v;
  }
}

// ---- the checker -----------------------------------------------------------------------------

/** An entry as the checker sees it: position and an identity string. */
export interface CheckedEntry {
  readonly index: Index;
  readonly term: Term;
  readonly id: string;
}

/** What the checker reads from a live node after a step. */
export interface NodeView {
  readonly id: NodeId;
  readonly role: Role;
  readonly term: Term;
  readonly committed: Index;
}

/** An identity for an entry: the op id of a client command, the body of a system entry. */
export function entryId(command: unknown): string {
  if (SystemEntry.is(command)) return `sys:${JSON.stringify(command.body)}`;
  if (isKvCommand(command)) return `op:${command.clientId}.${command.opId}`;
  return `raw:${JSON.stringify(command)}`;
}

/** Converts a log entry for the checker. */
export function checked(e: LogEntry<unknown>): CheckedEntry {
  return { index: e.index, term: e.term, id: entryId(e.command) };
}

/** The checker's copy of one node's durable log and what it has reported. */
interface Mirror {
  /** `chain[i]` names the whole log prefix `1..i` (hash-consed, so equal ids mean equal prefixes). */
  chain: number[];
  terms: Term[];
  ids: string[];
  /** Highest commit index the node ever reported, across restarts. */
  maxCommitEver: Index;
  /** Last index applied by the node's current state machine. */
  applied: Index;
  /** Applied entries not yet compared with the committed log. */
  appliedPending: CheckedEntry[];
  /** Term in which the node was last seen leading (leader completeness is checked once per term). */
  leaderTerm: Term;
}

/**
 * Raft's safety properties, checked incrementally. The driver reports every
 * durable write (append, truncate, reset), every applied entry and every
 * restart as it happens, and calls {@link SafetyChecker.check} with a view of
 * every live node after each step. It can also be fed synthetic events, which
 * is how tests prove that each rule can fail.
 *
 * - Election safety: at most one leader per term.
 * - Log matching: two logs with an entry of the same index and term agree on
 *   the whole prefix up to it (prefixes are hash-consed, so one lookup).
 * - Committed entries never change or disappear: the global committed log is
 *   extended from each node's commit index; a node's prefix up to its commit
 *   index must equal it, and no node may truncate below what it reported
 *   committed or remove an entry it holds that is globally committed.
 * - State machine safety: every node applies the committed log in order.
 * - Leader completeness: a new leader of term T holds every entry committed in
 *   a term below T.
 */
export class SafetyChecker {
  readonly violations: Violation[] = [];
  /** Position stamped on violations. */
  tick = 0;
  step = 0;
  readonly #intern = new Map<string, number>();
  readonly #byIndexTerm = new Map<string, { chain: number; node: NodeId }>();
  readonly #g = {
    chain: [0],
    terms: [0],
    ids: [""],
    /** Term of the entry at the commit point that first covered the index: the term it was committed in. */
    commitTerm: [0],
  };
  readonly #leaders = new Map<Term, NodeId>();
  readonly #mirrors = new Map<NodeId, Mirror>();

  /** Length of the global committed log. */
  get committedLength(): Index {
    return this.#g.chain.length - 1;
  }

  /** The global committed entry at `i`. */
  committedEntry(i: Index): CheckedEntry | undefined {
    if (i < 1 || i > this.committedLength) return undefined;
    return { index: i, term: this.#g.terms[i]!, id: this.#g.ids[i]! };
  }

  /** Last index of the checker's copy of `node`'s durable log. */
  lastIndex(node: NodeId): Index {
    return this.#mirror(node).chain.length - 1;
  }

  fail(kind: ViolationKind, message: string): void {
    this.violations.push({ kind, message, tick: this.tick, step: this.step });
  }

  #mirror(node: NodeId): Mirror {
    let m = this.#mirrors.get(node);
    if (m === undefined) {
      m = {
        chain: [0],
        terms: [0],
        ids: [""],
        maxCommitEver: 0,
        applied: 0,
        appliedPending: [],
        leaderTerm: 0,
      };
      this.#mirrors.set(node, m);
    }
    return m;
  }

  #chainId(prev: number, term: Term, id: string): number {
    const key = `${prev}|${term}|${id}`;
    let c = this.#intern.get(key);
    if (c === undefined) {
      c = this.#intern.size + 1;
      this.#intern.set(key, c);
    }
    return c;
  }

  /** `node` durably appended `entries` after its last entry. */
  append(node: NodeId, entries: readonly CheckedEntry[]): void {
    const m = this.#mirror(node);
    for (const e of entries) {
      const last = m.chain.length - 1;
      if (e.index !== last + 1) {
        this.fail("driver", `${node} appended index ${e.index} after ${last}`);
        return;
      }
      const chain = this.#chainId(m.chain[last]!, e.term, e.id);
      m.chain.push(chain);
      m.terms.push(e.term);
      m.ids.push(e.id);
      const key = `${e.index}:${e.term}`;
      const seen = this.#byIndexTerm.get(key);
      if (seen === undefined) {
        this.#byIndexTerm.set(key, { chain, node });
      } else if (seen.chain !== chain) {
        const other = this.#mirrors.get(seen.node);
        const where = other === undefined
          ? ""
          : ` (first difference at index ${firstDiff(m.chain, other.chain, e.index)})`;
        this.fail(
          "log-matching",
          `${node} and ${seen.node} both hold an entry at index ${e.index} term ${e.term} but their logs differ up to it${where}`,
        );
      }
    }
  }

  /** `node` durably removed its entries from `from` on. */
  truncate(node: NodeId, from: Index): void {
    const m = this.#mirror(node);
    const last = m.chain.length - 1;
    if (from > last) return;
    if (from <= m.maxCommitEver) {
      this.fail(
        "committed-lost",
        `${node} truncates its log from index ${from} but had reported index ${m.maxCommitEver} committed`,
      );
    } else if (from <= this.committedLength && m.chain[from] === this.#g.chain[from]) {
      this.fail(
        "committed-lost",
        `${node} truncates committed entry ${from} (term ${this.#g.terms[from]}, ${
          this.#g.ids[from]
        })`,
      );
    }
    m.chain.length = from;
    m.terms.length = from;
    m.ids.length = from;
  }

  /** `node` emptied its log and state machine (the losing side of a merge). */
  reset(node: NodeId): void {
    const m = this.#mirror(node);
    if (m.maxCommitEver > 0 || (this.committedLength > 0 && m.chain[1] === this.#g.chain[1])) {
      this.fail("committed-lost", `${node} reset its log although it holds committed entries`);
    }
    m.chain = [0];
    m.terms = [0];
    m.ids = [""];
    m.applied = 0;
    m.appliedPending = [];
  }

  /** `node` restarted: its state machine and commit index are gone, its durable log stays. */
  restart(node: NodeId): void {
    const m = this.#mirror(node);
    m.applied = 0;
    m.appliedPending = [];
  }

  /** `node`'s state machine applied `e`. */
  apply(node: NodeId, e: CheckedEntry): void {
    const m = this.#mirror(node);
    if (e.index !== m.applied + 1) {
      this.fail("state-machine-safety", `${node} applied index ${e.index} after ${m.applied}`);
    }
    m.applied = e.index;
    m.appliedPending.push(e);
  }

  /** Checks every rule against the live nodes after a step. */
  check(views: readonly NodeView[]): void {
    const g = this.#g;
    for (const v of views) {
      const m = this.#mirror(v.id);
      const c = v.committed;
      const last = m.chain.length - 1;
      if (c > last) {
        this.fail(
          "committed-changed",
          `${v.id} reports index ${c} committed but its durable log ends at ${last}`,
        );
        continue;
      }
      m.maxCommitEver = Math.max(m.maxCommitEver, c);
      const glen = this.committedLength;
      const upTo = Math.min(c, glen);
      if (m.chain[upTo] !== g.chain[upTo]) {
        const i = firstDiff(m.chain, g.chain, upTo);
        this.fail(
          "committed-changed",
          `${v.id} has index ${c} committed but its entry ${i} is (term ${m.terms[i]}, ${
            m.ids[i]
          }) ` +
            `where the committed log has (term ${g.terms[i]}, ${g.ids[i]})`,
        );
        continue;
      }
      if (c > glen) {
        const commitTerm = m.terms[c]!;
        for (let i = glen + 1; i <= c; i++) {
          g.chain.push(m.chain[i]!);
          g.terms.push(m.terms[i]!);
          g.ids.push(m.ids[i]!);
          g.commitTerm.push(commitTerm);
        }
      }
    }
    for (const v of views) {
      const m = this.#mirror(v.id);
      for (const e of m.appliedPending) {
        const gt = g.terms[e.index];
        if (e.index > this.committedLength || gt === undefined) {
          this.fail(
            "state-machine-safety",
            `${v.id} applied index ${e.index}, which no node has committed`,
          );
        } else if (gt !== e.term || g.ids[e.index] !== e.id) {
          this.fail(
            "state-machine-safety",
            `${v.id} applied (term ${e.term}, ${e.id}) at index ${e.index} where the committed log has (term ${gt}, ${
              g.ids[e.index]
            })`,
          );
        }
      }
      m.appliedPending = [];
    }
    for (const v of views) {
      if (v.role !== "leader") continue;
      const other = this.#leaders.get(v.term);
      if (other === undefined) this.#leaders.set(v.term, v.id);
      else if (other !== v.id) {
        this.fail("election-safety", `two leaders in term ${v.term}: ${other} and ${v.id}`);
      }
      const m = this.#mirror(v.id);
      if (m.leaderTerm === v.term) continue;
      m.leaderTerm = v.term;
      // Entries committed in this term or later need not be there (a delayed vote can elect a stale leader).
      let j = this.committedLength;
      while (j > 0 && g.commitTerm[j]! >= v.term) j--;
      if (j > 0 && m.chain[j] !== g.chain[j]) {
        const i = firstDiff(m.chain, g.chain, j);
        this.fail(
          "leader-completeness",
          `${v.id} became leader of term ${v.term} without committed entry ${i} (term ${
            g.terms[i]
          }, ${g.ids[i]}, committed in term ${g.commitTerm[i]})`,
        );
      }
    }
  }
}

/** Lowest index in `1..upTo` where the two chains differ (chains equal at i are equal below i). */
function firstDiff(a: readonly number[], b: readonly number[], upTo: Index): Index {
  let lo = 1;
  let hi = upTo;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (a[mid] !== undefined && a[mid] === b[mid]) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

// ---- nodes and the cluster -------------------------------------------------------------------

/** Per-run tuning of every core. */
export interface NodeTuning {
  readonly electionTicks: number;
  readonly electionJitterTicks: number;
  readonly heartbeatTicks: number;
  readonly bootstrapTicks: number;
  readonly maxEntriesPerMessage: number;
  readonly maxInflight: number;
  readonly cacheEntries: number;
}

/** Where {@link Cluster.crashPoint} crashes a node. */
export type CrashPoint = "none" | "beforeSend" | "afterStep";

/** Makes a core; tests pass one that breaks a rule on purpose. */
export type CoreFactory = (config: RaftConfig, init: RaftInit) => RaftCore;

/** The default core. */
export const defaultCore: CoreFactory = (config, init) => new RaftCore(config, init);

/** Callbacks into the workload. */
export interface ClusterListener {
  applied(node: number, incarnation: number, entry: LogEntry<unknown>, clock: number): void;
  readServed(node: number, incarnation: number, requestId: string): void;
  readDropped(node: number, incarnation: number, requestId: string): void;
  crashed(node: number): void;
}

/** One simulated server: durable storage that outlives crashes, and a core and state machine that do not. */
export class SimNode {
  readonly id: NodeId;
  readonly index: number;
  readonly storage: InMemoryLogStore<unknown> = new InMemoryLogStore<unknown>();
  core: RaftCore | undefined;
  kv: KvStateMachine = new KvStateMachine();
  /** Last index applied to `kv`. */
  applied: Index = 0;
  incarnation = 0;
  /** Crash during the next Ready, after its writes are durable and before its messages go out. */
  crashAfterPersist = false;
  /**
   * Crash part-way through persisting the next Ready that writes: after the
   * hard state, after the truncation, or after a prefix of the append (a store
   * is atomic per call, not per Ready).
   */
  crashMidPersist = false;
  /** Reads whose ReadIndex arrived, waiting for the state machine to reach it. */
  readonly pendingReads: Map<string, Index> = new Map<string, Index>();
  /** Sends nothing more and crashes at the end of the current step. */
  doomed = false;

  constructor(index: number) {
    this.index = index;
    this.id = `n${index}`;
  }

  get up(): boolean {
    return this.core !== undefined;
  }
}

/** What a cluster is made of. */
export interface ClusterOptions {
  readonly size: number;
  readonly rng: SeededRng;
  readonly network: SimNetwork;
  readonly tuning: NodeTuning;
  readonly makeCore?: CoreFactory;
  /** Deliveries per tick at most; the rest wait for the next tick. */
  readonly maxDeliveriesPerTick?: number;
}

/**
 * The cores, their storage and state machines, wired to the simulated
 * network. Every input to a core is one step: the core's Ready output is
 * drained (persist, send, apply, advance) and the checker runs. The first
 * violation throws {@link SimAbort}.
 */
export class Cluster implements WorkloadTarget {
  readonly nodes: SimNode[] = [];
  readonly checker: SafetyChecker = new SafetyChecker();
  readonly network: SimNetwork;
  readonly #rng: SeededRng;
  readonly #tuning: NodeTuning;
  readonly #makeCore: CoreFactory;
  readonly #maxDeliveries: number;
  #fetches: { node: number; incarnation: number; at: number; range: IndexRange }[] = [];
  listener: ClusterListener | undefined;
  /**
   * Asked after each Ready's writes are durable (fault injection at chosen
   * moments): `beforeSend` crashes the node before its messages go out;
   * `afterStep` loses its messages from now on (as the network may), lets it
   * apply and answer clients, and crashes it once the step has been checked.
   */
  crashPoint: ((n: SimNode, rd: Ready) => CrashPoint) | undefined;
  /** Called before every input step (tracing). */
  onStep: ((n: SimNode, what: string) => void) | undefined;
  /** Virtual time in ticks. */
  now = 0;
  /** Steps so far; the workload stamps its history with it. */
  clock = 0;
  readonly stats = { steps: 0, crashes: 0, restarts: 0, elections: 0, maxCommitted: 0 };

  constructor(opts: ClusterOptions) {
    this.network = opts.network;
    this.#rng = opts.rng;
    this.#tuning = opts.tuning;
    this.#makeCore = opts.makeCore ?? defaultCore;
    this.#maxDeliveries = opts.maxDeliveriesPerTick ?? 5000;
    for (let i = 0; i < opts.size; i++) this.nodes.push(new SimNode(i));
  }

  get size(): number {
    return this.nodes.length;
  }

  /** Starts every node; node 0 alone may bootstrap, the others wait to be added. */
  start(bootstrapNow: boolean): void {
    for (const n of this.nodes) this.#boot(n);
    const first = this.nodes[0]!;
    if (bootstrapNow) this.input(first, "bootstrap", (c) => void c.bootstrap());
  }

  #boot(n: SimNode): void {
    const t = this.#tuning;
    const last = n.storage.last().index;
    const hardState = n.storage.loadHardState();
    const init: RaftInit = {
      ...(hardState !== undefined ? { hardState } : {}),
      prefix: { term: 0, index: 0 },
      entries: n.storage.getRange(1, last),
    };
    const config: RaftConfig = {
      id: n.id,
      electionTicks: t.electionTicks,
      electionJitterTicks: t.electionJitterTicks,
      heartbeatTicks: t.heartbeatTicks,
      bootstrapTicks: t.bootstrapTicks,
      leadershipMultiplier: 1,
      canVote: true,
      autoBootstrap: n.index === 0,
      rng: new SeededRng(this.#rng.nextU32()),
      maxEntriesPerMessage: t.maxEntriesPerMessage,
      maxInflight: t.maxInflight,
      cacheEntries: t.cacheEntries,
    };
    n.kv = new KvStateMachine();
    n.applied = 0;
    n.pendingReads.clear();
    n.crashAfterPersist = false;
    n.crashMidPersist = false;
    this.#guard(n, "construct", () => {
      n.core = this.#makeCore(config, init);
    });
  }

  /** Kills a node: its core, state machine, unsent messages and pending reads are gone; storage stays. */
  crash(n: SimNode): void {
    if (!n.up) return;
    n.core = undefined;
    n.doomed = false;
    n.pendingReads.clear();
    this.#fetches = this.#fetches.filter((f) => f.node !== n.index);
    this.stats.crashes++;
    this.checker.restart(n.id);
    this.listener?.crashed(n.index);
  }

  /** Brings a crashed node back from its durable storage. */
  restart(n: SimNode): void {
    if (n.up) return;
    n.incarnation++;
    this.stats.restarts++;
    this.#beginStep();
    this.#boot(n);
    this.#process(n);
    this.#check();
    if (n.doomed) this.crash(n);
  }

  /** Feeds one input to a live node as a step; does nothing if it is down. */
  input(n: SimNode, what: string, fn: (core: RaftCore) => void): void {
    const core = n.core;
    if (core === undefined) return;
    this.#beginStep();
    this.onStep?.(n, what);
    this.#guard(n, what, () => fn(core));
    this.#process(n);
    this.#check();
    if (n.doomed) this.crash(n);
  }

  /** Delivers the messages due this tick, one step each, in random order. */
  deliver(): void {
    this.network.advanceTo(this.now);
    const inFlight = this.network.inFlight();
    if (inFlight > MAX_IN_FLIGHT) {
      this.checker.fail("runaway", `${inFlight} messages in flight: the cores send without bound`);
      this.#abortIfViolated();
    }
    for (let k = 0; k < this.#maxDeliveries; k++) {
      const m = this.network.take();
      if (m === undefined) return;
      const n = this.#byId(m.to);
      if (n === undefined || !n.up) continue;
      this.input(n, `step ${m.type} from ${m.from}`, (c) => c.step(m));
    }
  }

  /** Ticks every live node, one step each. */
  tickAll(): void {
    for (const n of this.nodes) this.input(n, "tick", (c) => c.tick());
  }

  /** Completes storage reads requested by `Ready.fetch` whose time has come. */
  runFetches(): void {
    if (this.#fetches.length === 0) return;
    const due = this.#fetches.filter((f) => f.at <= this.now);
    this.#fetches = this.#fetches.filter((f) => f.at > this.now);
    for (const f of due) {
      const n = this.nodes[f.node]!;
      if (n.incarnation !== f.incarnation) continue;
      const entries = n.storage.getRange(f.range.start, f.range.end);
      this.input(n, "provideEntries", (c) => c.provideEntries(entries));
    }
  }

  /** The live leader with the highest term, if any. */
  leader(): SimNode | undefined {
    let best: SimNode | undefined;
    for (const n of this.nodes) {
      const c = n.core;
      if (c === undefined || c.role !== "leader") continue;
      if (best === undefined || c.term > best.core!.term) best = n;
    }
    return best;
  }

  // ---- WorkloadTarget ----

  isUp(node: number): boolean {
    return this.nodes[node]?.up ?? false;
  }

  incarnation(node: number): number {
    return this.nodes[node]?.incarnation ?? 0;
  }

  indexOf(id: NodeId): number | undefined {
    return this.#byId(id)?.index;
  }

  leaderHint(node: number): NodeId | undefined {
    return this.nodes[node]?.core?.leader;
  }

  propose(node: number, cmd: KvCommand): Accepted<IndexRange> | undefined {
    const n = this.nodes[node];
    if (n === undefined || !n.up) return undefined;
    let result: Accepted<IndexRange> | undefined;
    this.input(n, "propose", (c) => {
      result = c.propose([cmd]);
    });
    return result;
  }

  readIndex(node: number, requestId: string): void {
    const n = this.nodes[node];
    if (n !== undefined) this.input(n, "readIndex", (c) => c.readIndex(requestId));
  }

  localRead(node: number, key: string): string | null {
    return this.nodes[node]?.kv.get(key) ?? null;
  }

  // ---- internals ----

  #byId(id: NodeId): SimNode | undefined {
    const i = Number(id.slice(1));
    const n = this.nodes[i];
    return n !== undefined && n.id === id ? n : undefined;
  }

  #beginStep(): void {
    this.clock++;
    this.stats.steps++;
    this.checker.tick = this.now;
    this.checker.step = this.clock;
  }

  #abortIfViolated(): void {
    const v = this.checker.violations[0];
    if (v !== undefined) throw new SimAbort(v);
  }

  #guard(n: SimNode, what: string, fn: () => void): void {
    try {
      fn();
    } catch (e) {
      if (e instanceof SimAbort) throw e;
      const kind = e instanceof InvariantError ? "core-invariant" : "core-error";
      const msg = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
      this.checker.fail(kind, `${n.id} threw during ${what}: ${msg}`);
      this.#abortIfViolated();
    }
  }

  /** Drains a node's Ready values: persist, (maybe crash), send, apply, serve reads, advance. */
  #process(n: SimNode): void {
    for (let rounds = 0;; rounds++) {
      const core = n.core;
      if (core === undefined) return;
      let has = false;
      this.#guard(n, "hasReady", () => {
        has = core.hasReady();
      });
      if (!has) break;
      if (rounds >= 1000) {
        this.checker.fail("core-error", `${n.id} still has a Ready after 1000 rounds`);
        this.#abortIfViolated();
      }
      let rd: (Ready & { resetLog?: true; lastEntryIndex: Index }) | undefined;
      this.#guard(n, "ready", () => {
        rd = core.ready();
      });
      if (rd === undefined) return;
      if (this.#persist(n, rd)) {
        this.crash(n);
        return;
      }
      const point = n.crashAfterPersist ? "beforeSend" : (this.crashPoint?.(n, rd) ?? "none");
      if (point === "beforeSend") {
        this.crash(n);
        return;
      }
      if (point === "afterStep") n.doomed = true;
      for (const m of rd.messages) this.#send(n, m);
      if (rd.apply !== undefined) this.#apply(n, rd.apply.range, rd.apply.entries);
      for (const r of rd.readStates) n.pendingReads.set(r.requestId, r.index);
      for (const id of rd.droppedReads) this.listener?.readDropped(n.index, n.incarnation, id);
      for (const range of rd.fetch) {
        // Storage reads complete later, as they would from an asynchronous store.
        this.#fetches.push({
          node: n.index,
          incarnation: n.incarnation,
          at: this.now + this.#rng.int(3),
          range,
        });
      }
      if (rd.fetch.length > 0 && this.#fetches.length > MAX_PENDING_FETCHES) this.#fetchRunaway(n);
      for (const ev of rd.events) {
        if (ev.type === "roleChanged" && ev.role === "leader") this.stats.elections++;
      }
      const ready = rd;
      this.#guard(n, "advance", () => core.advance(ready));
      this.#serveReads(n);
    }
    this.#serveReads(n);
  }

  /** Writes a Ready durably; returns true when a torn write was injected and the node must crash now. */
  #persist(n: SimNode, rd: Ready & { resetLog?: true }): boolean {
    const s = n.storage;
    const writes = (rd.hardState !== undefined ? 1 : 0) + (rd.truncateFrom !== undefined ? 1 : 0) +
      rd.entries.length;
    // 0: after the hard state, 1: after the truncation, 2: after a prefix of the entries
    const cut = n.crashMidPersist && writes > 1 && !rd.resetLog ? this.#rng.int(3) : -1;
    try {
      if (rd.resetLog) {
        this.checker.reset(n.id);
        s.resetTo({ term: 0, index: 0 });
        n.kv = new KvStateMachine();
        n.applied = 0;
      }
      if (rd.hardState !== undefined) {
        const prev = s.loadHardState();
        if (prev !== undefined) {
          const hs = rd.hardState;
          if (hs.term < prev.term) {
            this.checker.fail(
              "core-invariant",
              `${n.id} persisted term ${hs.term} after ${prev.term}`,
            );
          } else if (
            hs.term === prev.term && prev.votedFor !== undefined && hs.votedFor !== prev.votedFor
          ) {
            this.checker.fail(
              "election-safety",
              `${n.id} changed its persisted vote in term ${hs.term} from ${prev.votedFor} to ${
                hs.votedFor ?? "nobody"
              }`,
            );
          }
        }
        s.saveHardState(rd.hardState);
      }
      if (cut === 0) return true;
      if (rd.truncateFrom !== undefined) {
        this.checker.truncate(n.id, rd.truncateFrom);
        s.truncate(rd.truncateFrom);
      }
      if (cut === 1) return true;
      const entries = cut === 2
        ? rd.entries.slice(0, this.#rng.int(rd.entries.length + 1))
        : rd.entries;
      if (entries.length > 0) {
        s.append(entries);
        this.checker.append(n.id, entries.map(checked));
      }
      if (cut === 2) return true;
    } catch (e) {
      if (e instanceof SimAbort) throw e;
      this.checker.fail(
        "driver",
        `${n.id} storage rejected a Ready write: ${e instanceof Error ? e.message : e}`,
      );
    }
    this.#abortIfViolated();
    return false;
  }

  #send(n: SimNode, m: RaftMessage): void {
    if (m.from !== n.id) {
      this.checker.fail("core-error", `${n.id} sent a message claiming to be from ${m.from}`);
      this.#abortIfViolated();
    }
    if (!n.doomed) this.network.send(m, this.now);
  }

  #apply(n: SimNode, range: IndexRange, entries: EntryLookup): void {
    for (let i = range.start; i <= range.end; i++) {
      const e = entries.get(i) ?? n.storage.get(i);
      if (e === undefined) {
        this.checker.fail(
          "driver",
          `${n.id} must apply index ${i}, which is neither in the Ready nor in storage`,
        );
        this.#abortIfViolated();
        return;
      }
      if (e.index !== i) {
        this.checker.fail("core-error", `${n.id} handed entry ${e.index} to apply at index ${i}`);
        this.#abortIfViolated();
      }
      n.kv.apply(e);
      n.applied = i;
      this.checker.apply(n.id, checked(e));
      this.listener?.applied(n.index, n.incarnation, e, this.clock);
    }
  }

  #fetchRunaway(n: SimNode): void {
    const mine = this.#fetches.filter((f) => f.node === n.index);
    const distinct = new Set(mine.map((f) => `${f.range.start}-${f.range.end}`));
    this.checker.fail(
      "runaway",
      `${n.id} has ${mine.length} storage reads pending (Ready.fetch) for only ${distinct.size} distinct ranges: ` +
        `ranges already being read are requested again`,
    );
    this.#abortIfViolated();
  }

  #serveReads(n: SimNode): void {
    if (n.pendingReads.size === 0) return;
    for (const [id, index] of n.pendingReads) {
      if (index > n.applied) continue;
      n.pendingReads.delete(id);
      this.listener?.readServed(n.index, n.incarnation, id);
    }
  }

  #check(): void {
    const views: NodeView[] = [];
    for (const n of this.nodes) {
      const c = n.core;
      if (c === undefined) continue;
      this.#guard(n, "assertInvariants", () => c.assertInvariants());
      if (c.log.lastIndex !== n.storage.last().index) {
        this.checker.fail(
          "driver",
          `${n.id} core log ends at ${c.log.lastIndex} but durable storage at ${n.storage.last().index}`,
        );
      }
      if (c.committed > this.stats.maxCommitted) this.stats.maxCommitted = c.committed;
      views.push({ id: n.id, role: c.role, term: c.term, committed: c.committed });
    }
    this.checker.check(views);
    this.#abortIfViolated();
  }
}
