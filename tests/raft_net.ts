// A tiny synchronous network of RaftCores for unit tests: explicit ticks, explicit delivery, drop rules.

import { RaftCore } from "../lib/raft/core.ts";
import type {
  NodeId,
  RaftConfig,
  RaftInit,
  RaftMessage,
  ReadState,
  Ready,
} from "../lib/raft/types.ts";
import { SeededRng } from "../lib/primitives/rng.ts";
import { InMemoryLogStore } from "../storage/memory.ts";
import { type LogEntry, SystemEntry } from "../storage/types.ts";

/** Overrides for one node's RaftConfig. */
export type NodeOptions = Partial<Omit<RaftConfig, "id" | "rng">> & { seed?: number };

/** Test defaults: short timeouts, no bootstrap delay. */
export const TEST_DEFAULTS = {
  electionTicks: 10,
  electionJitterTicks: 10,
  heartbeatTicks: 2,
  bootstrapTicks: 0,
  leadershipMultiplier: 1,
  canVote: true,
  autoBootstrap: false,
} as const;

/** A node: its core, durable store, and what it applied. */
export interface TestNode {
  core: RaftCore;
  store: InMemoryLogStore<unknown>;
  applied: LogEntry<unknown>[];
  readStates: ReadState[];
  dropped: string[];
  readies: Ready[];
  options: NodeOptions;
}

/** A factory, so tests can substitute a RaftCore subclass. */
export type CoreFactory = (config: RaftConfig, init: RaftInit) => RaftCore;

/**
 * Nodes `n1..nK` connected by a queue of messages. Nothing happens by itself:
 * tests tick and deliver explicitly, so every scenario is deterministic.
 */
export class TestNet {
  readonly nodes = new Map<NodeId, TestNode>();
  queue: RaftMessage[] = [];
  /** When set, storage reads (`Ready.fetch`) are answered at the node's next tick, as by an async store. */
  deferFetches = false;
  /** Every fetch range requested, per node, in order. */
  readonly fetchLog = new Map<NodeId, { start: number; end: number }[]>();
  #deferred = new Map<NodeId, { start: number; end: number }[]>();
  /** Directed links that drop messages: "from->to". */
  readonly blocked = new Set<string>();
  delivered = 0;

  constructor(private readonly factory: CoreFactory = (c, i) => new RaftCore(c, i)) {}

  /** Adds a node with an empty log (or the given init). */
  add(id: NodeId, options: NodeOptions = {}, init: RaftInit = {}): TestNode {
    const store = new InMemoryLogStore<unknown>();
    if (init.entries !== undefined) store.append([...init.entries]);
    if (init.hardState !== undefined) store.saveHardState(init.hardState);
    const node: TestNode = {
      core: this.#make(id, options, init),
      store,
      applied: [],
      readStates: [],
      dropped: [],
      readies: [],
      options,
    };
    this.nodes.set(id, node);
    return node;
  }

  #make(id: NodeId, options: NodeOptions, init: RaftInit): RaftCore {
    const { seed, ...rest } = options;
    return this.factory(
      { ...TEST_DEFAULTS, ...rest, id, rng: new SeededRng(seed ?? hash(id)) },
      init,
    );
  }

  /**
   * A cluster whose members all start with the same bootstrap entry (index 1,
   * term 1) listing `voters`; nobody is leader yet.
   */
  static withVoters(ids: NodeId[], options: NodeOptions = {}, factory?: CoreFactory): TestNet {
    const net = new TestNet(factory);
    const first: LogEntry<unknown> = {
      index: 1,
      term: 1,
      command: new SystemEntry({ type: "bootstrap", clusterId: "c0ffee", voters: ids }),
    };
    for (const id of ids) net.add(id, options, { hardState: { term: 1 }, entries: [first] });
    return net;
  }

  node(id: NodeId): TestNode {
    const n = this.nodes.get(id);
    if (n === undefined) throw new Error(`no node ${id}`);
    return n;
  }

  core(id: NodeId): RaftCore {
    return this.node(id).core;
  }

  /** Drains a node's Ready: persist, queue messages, apply, fetch, advance. */
  process(id: NodeId): void {
    const n = this.node(id);
    for (let guard = 0; guard < 1000 && n.core.hasReady(); guard++) {
      const rd = n.core.ready();
      n.readies.push(rd);
      if (rd.resetLog) {
        n.store.resetTo({ term: 0, index: 0 });
        n.applied = [];
      }
      if (rd.hardState !== undefined) n.store.saveHardState(rd.hardState);
      if (rd.truncateFrom !== undefined) n.store.truncate(rd.truncateFrom);
      if (rd.entries.length > 0) n.store.append(rd.entries);
      for (const m of rd.messages) this.queue.push(m);
      if (rd.apply !== undefined) {
        for (let i = rd.apply.range.start; i <= rd.apply.range.end; i++) {
          const e = rd.apply.entries.get(i) ?? n.store.get(i);
          if (e === undefined) throw new Error(`${id}: entry ${i} to apply is missing`);
          n.applied.push(e);
        }
      }
      n.readStates.push(...rd.readStates);
      n.dropped.push(...rd.droppedReads);
      n.core.advance(rd);
      const log = this.fetchLog.get(id) ?? [];
      log.push(...rd.fetch);
      this.fetchLog.set(id, log);
      if (this.deferFetches) {
        this.#deferred.set(id, [...(this.#deferred.get(id) ?? []), ...rd.fetch]);
      } else {
        for (const r of rd.fetch) n.core.provideEntries(n.store.getRange(r.start, r.end));
      }
      n.core.assertInvariants();
    }
  }

  processAll(): void {
    for (const id of this.nodes.keys()) this.process(id);
  }

  tick(id: NodeId, times = 1): void {
    for (let i = 0; i < times; i++) {
      const due = this.#deferred.get(id) ?? [];
      this.#deferred.delete(id);
      const n = this.node(id);
      for (const r of due) n.core.provideEntries(n.store.getRange(r.start, r.end));
      this.core(id).tick();
      this.process(id);
    }
  }

  tickAll(times = 1): void {
    for (let i = 0; i < times; i++) for (const id of this.nodes.keys()) this.tick(id);
  }

  /**
   * Delivers queued messages (and those they cause) until quiet or `max`
   * deliveries. `filter` may drop a message (false) or replace it (a message).
   */
  deliver(max = 100_000, filter: (m: RaftMessage) => boolean | RaftMessage = () => true): number {
    let count = 0;
    while (this.queue.length > 0 && count < max) {
      const queued = this.queue.shift()!;
      const verdict = filter(queued);
      if (verdict === false) continue;
      const m = verdict === true ? queued : verdict;
      if (this.blocked.has(`${m.from}->${m.to}`) || !this.nodes.has(m.to)) continue;
      count++;
      this.delivered++;
      this.core(m.to).step(m);
      this.process(m.to);
    }
    return count;
  }

  /** Ticks everyone and delivers, `rounds` times. */
  run(rounds: number): void {
    for (let r = 0; r < rounds; r++) {
      this.tickAll();
      this.deliver();
    }
  }

  /** Ticks and delivers until `cond` holds; throws after `maxRounds`. */
  until(cond: () => boolean, maxRounds = 500, what = "condition"): number {
    for (let r = 0; r < maxRounds; r++) {
      if (cond()) return r;
      this.tickAll();
      this.deliver();
    }
    if (cond()) return maxRounds;
    throw new Error(`${what} not reached within ${maxRounds} rounds`);
  }

  /** Ticks `id` until it campaigns, then delivers everything. */
  elect(id: NodeId, maxTicks = 500): void {
    const core = this.core(id);
    for (let i = 0; i < maxTicks && core.role === "follower"; i++) this.tick(id);
    this.deliver();
    if (core.role !== "leader") throw new Error(`${id} did not become leader (role ${core.role})`);
  }

  leaders(): NodeId[] {
    return [...this.nodes].filter(([, n]) => n.core.role === "leader").map(([id]) => id);
  }

  isolate(id: NodeId): void {
    for (const other of this.nodes.keys()) {
      if (other === id) continue;
      this.blocked.add(`${id}->${other}`);
      this.blocked.add(`${other}->${id}`);
    }
  }

  heal(): void {
    this.blocked.clear();
  }

  /** Crashes and restarts `id` from its durable store (volatile state lost). */
  restart(id: NodeId): RaftCore {
    const n = this.node(id);
    this.queue = this.queue.filter((m) => m.from !== id && m.to !== id);
    const last = n.store.last();
    const hardState = n.store.loadHardState();
    n.core = this.#make(id, n.options, {
      ...(hardState !== undefined ? { hardState } : {}),
      prefix: { term: 0, index: 0 },
      entries: n.store.getRange(1, last.index),
    });
    n.applied = [];
    return n.core;
  }

  /** User commands a node applied, in order. */
  commands(id: NodeId): unknown[] {
    return this.node(id).applied.filter((e) => !SystemEntry.is(e.command)).map((e) => e.command);
  }
}

function hash(s: string): number {
  let h = 2166136261;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619);
  return h >>> 0;
}
