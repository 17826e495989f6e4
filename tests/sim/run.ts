// One seeded run of the cluster simulator: faults, membership changes and client load, then healing, liveness and linearizability.

import { SeededRng } from "../../lib/primitives/rng.ts";
import {
  Cluster,
  type CoreFactory,
  type CrashPoint,
  SimAbort,
  type SimNode,
  type Violation,
} from "./cluster.ts";
import { checkLinearizability, kvModel } from "./linearizability.ts";
import { type NetworkFaults, RELIABLE, SimNetwork } from "./network.ts";
import { Workload } from "./workload.ts";

/** Default length of the fault phase, in ticks. */
export const DEFAULT_TICKS = 300;
/** Default bound on the healed phase: a leader and every client's final operations within it. */
export const DEFAULT_LIVENESS_TICKS = 400;

/** `none`: a calm cluster; `mixed`: fault rates drawn per seed, from calm to stormy; `storm`: always stormy. */
export type FaultLevel = "none" | "mixed" | "storm";

/** What to run. */
export interface RunOptions {
  readonly seed: number;
  readonly nodes: number;
  /** Ticks of the fault phase (default {@link DEFAULT_TICKS}). */
  readonly ticks?: number;
  /** Ticks allowed after healing (default {@link DEFAULT_LIVENESS_TICKS}). */
  readonly livenessTicks?: number;
  /** How hard to hit the cluster (default `mixed`: each seed draws its own fault rates). */
  readonly faults?: FaultLevel;
  /** Makes the cores (tests pass broken ones). */
  readonly makeCore?: CoreFactory;
  /** Heal before the liveness phase (default true; false proves the liveness check can fail). */
  readonly heal?: boolean;
  /** Serve reads locally without ReadIndex (proves the linearizability check can fail). */
  readonly staleReads?: boolean;
  /** Receives a line per fault, membership change and leader change. */
  readonly trace?: (line: string) => void;
  /** Also trace every step (very verbose). */
  readonly traceSteps?: boolean;
}

/** What a run found. */
export interface RunResult {
  readonly seed: number;
  readonly nodes: number;
  readonly violation?: Violation;
  /** Outcome of the history check; `unknown` means it ran out of budget (not counted as a violation). */
  readonly linearizability: "ok" | "illegal" | "unknown" | "skipped";
  readonly stats: RunStats;
}

/** Counters for reports and for tuning. */
export interface RunStats {
  ticks: number;
  steps: number;
  elections: number;
  crashes: number;
  restarts: number;
  membershipChanges: number;
  partitions: number;
  maxCommitted: number;
  messages: number;
  ops: number;
  historyOps: number;
  unknownOps: number;
}

/** Fault rates of one run, drawn from its seed so that runs range from calm to stormy. */
interface Profile {
  readonly net: NetworkFaults;
  readonly partitionRate: number;
  readonly crashRate: number;
  readonly crashAfterPersistRate: number;
  /** Probability that a leader dies in the Ready where its commit index advanced, before sending. */
  readonly crashOnCommitRate: number;
  /** Same, for the first commit of a leader's term (when it starts serving reads and membership changes). */
  readonly crashOnFirstCommitRate: number;
  /** Probability that a new leader dies in the Ready announcing its election, before sending. */
  readonly crashOnElectionRate: number;
  readonly membershipRate: number;
  readonly transferRate: number;
  /** Longest downtime of a crashed node, and longest life of a partition, in ticks. */
  readonly maxDown: number;
  readonly maxPartition: number;
  /** Faults begin after this many ticks (the cluster may still be forming). */
  readonly calmTicks: number;
}

function pick<T>(rng: SeededRng, xs: readonly T[]): T {
  return xs[rng.int(xs.length)]!;
}

const CALM: Profile = {
  net: RELIABLE,
  partitionRate: 0,
  crashRate: 0,
  crashAfterPersistRate: 0,
  crashOnCommitRate: 0,
  crashOnElectionRate: 0,
  crashOnFirstCommitRate: 0,
  membershipRate: 0,
  transferRate: 0,
  maxDown: 1,
  maxPartition: 1,
  calmTicks: 0,
};

function drawProfile(rng: SeededRng, level: FaultLevel): Profile {
  if (level === "none") return CALM;
  // A quarter of mixed runs are storms: constant leader churn is what exposes commit-rule bugs.
  const storm = level === "storm" || rng.int(4) === 0;
  if (storm) {
    return {
      net: {
        loss: pick(rng, [0.05, 0.15, 0.25]),
        duplicate: pick(rng, [0.02, 0.1]),
        maxDelay: pick(rng, [1, 3, 6]),
        longDelay: pick(rng, [0.02, 0.08]),
        longDelayMax: pick(rng, [10, 30]),
      },
      partitionRate: pick(rng, [0.03, 0.06]),
      crashRate: pick(rng, [0.02, 0.04]),
      crashAfterPersistRate: pick(rng, [0.005, 0.02]),
      crashOnCommitRate: pick(rng, [0.01, 0.03]),
      crashOnElectionRate: pick(rng, [0.05, 0.15]),
      crashOnFirstCommitRate: pick(rng, [0.1, 0.3]),
      membershipRate: pick(rng, [0.01, 0.03]),
      transferRate: pick(rng, [0.005, 0.02]),
      maxDown: pick(rng, [10, 25]),
      maxPartition: pick(rng, [15, 40]),
      calmTicks: rng.int(60),
    };
  }
  return {
    net: {
      loss: pick(rng, [0, 0.01, 0.05, 0.15]),
      duplicate: pick(rng, [0, 0.01, 0.05]),
      maxDelay: pick(rng, [0, 1, 2, 3, 5]),
      longDelay: pick(rng, [0, 0.01, 0.05]),
      longDelayMax: pick(rng, [8, 25]),
    },
    partitionRate: pick(rng, [0, 0.01, 0.03, 0.08]),
    crashRate: pick(rng, [0, 0.005, 0.02, 0.05]),
    crashAfterPersistRate: pick(rng, [0, 0.003, 0.01]),
    crashOnCommitRate: pick(rng, [0, 0, 0.01]),
    crashOnElectionRate: pick(rng, [0, 0, 0.05]),
    crashOnFirstCommitRate: pick(rng, [0, 0, 0.1]),
    membershipRate: pick(rng, [0, 0.005, 0.02]),
    transferRate: pick(rng, [0, 0.003, 0.01]),
    maxDown: pick(rng, [20, 60]),
    maxPartition: pick(rng, [30, 80]),
    calmTicks: rng.int(40),
  };
}

/** Partitions, crashes and restarts, driven by the run's generator. */
class Nemesis {
  readonly #c: Cluster;
  readonly #rng: SeededRng;
  readonly #p: Profile;
  readonly #trace: (line: string) => void;
  readonly #restartAt = new Map<number, number>();
  #healAt = 0;
  partitions = 0;

  constructor(c: Cluster, rng: SeededRng, p: Profile, trace: (line: string) => void) {
    this.#c = c;
    this.#rng = rng;
    this.#p = p;
    this.#trace = trace;
    if (p.crashOnCommitRate > 0 || p.crashOnElectionRate > 0 || p.crashOnFirstCommitRate > 0) {
      const committedInTerm = new Map<number, number>();
      c.crashPoint = (n, rd) => {
        if (!this.active || c.now < p.calmTicks || n.core?.role !== "leader") return "none";
        let point: CrashPoint;
        if (rd.events.some((e) => e.type === "roleChanged" && e.role === "leader")) {
          // Elected, persisted its first entry, told nobody.
          if (rng.next() >= p.crashOnElectionRate) return "none";
          point = "beforeSend";
        } else if (rd.apply !== undefined) {
          // Committed and answered its clients, but the followers never hear of it.
          const term = n.core.term;
          const first = committedInTerm.get(n.index) !== term;
          committedInTerm.set(n.index, term);
          if (rng.next() >= (first ? p.crashOnFirstCommitRate : p.crashOnCommitRate)) return "none";
          point = "afterStep";
        } else {
          return "none";
        }
        this.#trace(
          `crash ${n.id} (${point === "beforeSend" ? "as it is elected" : "as it commits"})`,
        );
        this.#restartAt.set(n.index, c.now + 1 + rng.int(p.maxDown));
        return point;
      };
    }
  }

  /** False once every fault has been healed. */
  active = true;

  tick(now: number): void {
    const rng = this.#rng;
    const c = this.#c;
    for (const [i, at] of this.#restartAt) {
      if (now < at) continue;
      this.#restartAt.delete(i);
      this.#trace(`restart n${i}`);
      c.restart(c.nodes[i]!);
    }
    if (c.network.blockedLinks() > 0 && now >= this.#healAt) this.heal();
    if (now < this.#p.calmTicks) return;
    if (rng.next() < this.#p.partitionRate) this.#partition(now);
    if (rng.next() < this.#p.crashRate) {
      const up = c.nodes.filter((n) => n.up);
      const l = c.leader();
      if (up.length > 0) {
        // Leaders half the time: their crashes are the ones that test recovery.
        const n = l !== undefined && rng.next() < 0.5 ? l : pick(rng, up);
        this.#trace(`crash ${n.id}`);
        c.crash(n);
        this.#restartAt.set(n.index, now + 1 + rng.int(this.#p.maxDown));
      }
    }
    if (rng.next() < this.#p.crashAfterPersistRate) {
      const up = c.nodes.filter((n) => n.up);
      if (up.length > 0) {
        const n = pick(rng, up);
        const torn = rng.next() < 0.5;
        if (torn) n.crashMidPersist = true;
        else n.crashAfterPersist = true;
        this.#restartAt.set(n.index, now + 2 + rng.int(this.#p.maxDown));
        this.#trace(`arm crash-${torn ? "mid" : "after"}-persist ${n.id}`);
      }
    }
  }

  heal(): void {
    if (this.#c.network.blockedLinks() === 0) return;
    this.#c.network.heal();
    this.#trace("heal partition");
    // A leader learns the links are back (as a transport reconnect would tell it).
    const l = this.#c.leader();
    if (l !== undefined) {
      for (const n of this.#c.nodes) {
        if (n !== l) this.#c.input(l, "reportConnected", (core) => core.reportConnected(n.id));
      }
    }
  }

  /** Ends every fault: heals the network and restarts every crashed node. */
  healAll(): void {
    this.active = false;
    this.heal();
    for (const n of this.#c.nodes) {
      n.crashAfterPersist = false;
      n.crashMidPersist = false;
      if (!n.up) {
        this.#trace(`restart ${n.id}`);
        this.#c.restart(n);
      }
    }
    this.#restartAt.clear();
  }

  #partition(now: number): void {
    const c = this.#c;
    const net = c.network;
    const rng = this.#rng;
    const ids = c.nodes.map((n) => n.id);
    net.heal();
    this.partitions++;
    this.#healAt = now + 3 + rng.int(this.#p.maxPartition);
    const leader = c.leader();
    const x = leader !== undefined && rng.next() < 0.5 ? leader.id : pick(rng, ids);
    const shuffled = shuffle(rng, ids);
    const cut = 1 + rng.int(ids.length - 1);
    const a = shuffled.slice(0, cut);
    const b = shuffled.slice(cut);
    const kind = rng.int(6);
    switch (kind) {
      case 0: // isolate one node
        for (const y of ids) {
          net.block(x, y);
          net.block(y, x);
        }
        break;
      case 1: // two sides
        for (const p of a) {
          for (const q of b) {
            net.block(p, q);
            net.block(q, p);
          }
        }
        break;
      case 2: // x can receive but not send
        for (const y of ids) net.block(x, y);
        break;
      case 3: // x can send but not receive
        for (const y of ids) net.block(y, x);
        break;
      case 4: // random one-way cuts
        for (const p of ids) for (const q of ids) if (rng.next() < 0.3) net.block(p, q);
        break;
      default: { // two sides joined only through one bridge node
        const bridge = pick(rng, ids);
        for (const p of a) {
          for (const q of b) {
            if (p === bridge || q === bridge) continue;
            net.block(p, q);
            net.block(q, p);
          }
        }
      }
    }
    this.#trace(`partition ${net.describePartition()}`);
    const l = c.leader();
    if (l !== undefined) {
      for (const n of c.nodes) {
        if (n !== l && net.isBlocked(l.id, n.id)) {
          c.input(l, "reportUnreachable", (core) => core.reportUnreachable(n.id));
        }
      }
    }
  }
}

function shuffle<T>(rng: SeededRng, xs: readonly T[]): T[] {
  const out = [...xs];
  for (let i = out.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

/**
 * The membership driver: grows the cluster from node 0 to every node (learner
 * first, then voter once caught up), and during faults removes a voter now and
 * then and re-admits it later with its durable state, never going below a
 * majority of the full size. Also asks for leadership transfers.
 */
class Autopilot {
  readonly #c: Cluster;
  readonly #rng: SeededRng;
  readonly #p: Profile;
  readonly #trace: (line: string) => void;
  readonly #wanted = new Set<number>();
  readonly #readmitAt = new Map<number, number>();
  changes = 0;

  constructor(c: Cluster, rng: SeededRng, p: Profile, trace: (line: string) => void) {
    this.#c = c;
    this.#rng = rng;
    this.#p = p;
    this.#trace = trace;
    for (let i = 0; i < c.size; i++) this.#wanted.add(i);
  }

  tick(now: number, chaos: boolean): void {
    const rng = this.#rng;
    const c = this.#c;
    for (const [i, at] of this.#readmitAt) {
      if (now < at) continue;
      this.#readmitAt.delete(i);
      this.#wanted.add(i);
    }
    const l = c.leader();
    const core = l?.core;
    if (l === undefined || core === undefined) return;
    const voters = core.membership.voters;
    if (chaos && rng.next() < this.#p.transferRate && voters.length > 1) {
      const others = voters.filter((v) => v !== l.id);
      const target = pick(rng, others);
      this.#trace(`transfer leadership ${l.id} -> ${target}`);
      c.input(l, "transferLeadership", (x) => void x.transferLeadership(target));
      return;
    }
    if (!core.canChangeMembership()) return;
    const floor = Math.floor(c.size / 2) + 1;
    const m = core.membership;
    const idx = (id: string) => c.indexOf(id)!;
    const unwanted = [...m.voters, ...m.learners].find((id) => !this.#wanted.has(idx(id)));
    if (unwanted !== undefined && (m.learners.includes(unwanted) || m.voters.length - 1 >= floor)) {
      this.#change(l, `remove ${unwanted}`, (x) => x.remove(unwanted));
      return;
    }
    for (const i of this.#wanted) {
      const id = c.nodes[i]!.id;
      if (!core.isMember(id)) {
        this.#change(l, `add learner ${id}`, (x) => x.addLearner(id));
        return;
      }
    }
    const learner = m.learners.find((id) => this.#wanted.has(idx(id)));
    if (learner !== undefined) {
      this.#change(l, `promote ${learner}`, (x) => x.promote(learner));
      return;
    }
    if (chaos && rng.next() < this.#p.membershipRate && m.voters.length - 1 >= floor) {
      const victim = pick(rng, m.voters);
      this.#wanted.delete(idx(victim));
      this.#readmitAt.set(idx(victim), now + 20 + rng.int(150));
    }
  }

  #change(
    l: SimNode,
    what: string,
    fn: (core: NonNullable<SimNode["core"]>) => { ok: boolean },
  ): void {
    let ok = false;
    this.#c.input(l, what, (x) => {
      ok = fn(x).ok;
    });
    if (ok) {
      this.changes++;
      this.#trace(`${l.id}: ${what}`);
    }
  }
}

/** Runs one seed and reports the first violation, if any. */
export function runSeed(opts: RunOptions): RunResult {
  const rng = new SeededRng(opts.seed);
  const faults = opts.faults ?? "mixed";
  const chaosTicks = opts.ticks ?? DEFAULT_TICKS;
  const livenessTicks = opts.livenessTicks ?? DEFAULT_LIVENESS_TICKS;
  const profile = drawProfile(rng, faults);
  const network = new SimNetwork(new SeededRng(rng.nextU32()), profile.net);
  const cluster = new Cluster({
    size: opts.nodes,
    rng: new SeededRng(rng.nextU32()),
    network,
    tuning: {
      electionTicks: 10,
      electionJitterTicks: pick(rng, [5, 10]),
      heartbeatTicks: pick(rng, [1, 2, 3]),
      bootstrapTicks: pick(rng, [0, 5]),
      maxEntriesPerMessage: pick(rng, [1, 3, 16, 512]),
      maxInflight: pick(rng, [1, 4, 64]),
      cacheEntries: pick(rng, [8, 16, 32, 4096]),
    },
    ...(opts.makeCore !== undefined ? { makeCore: opts.makeCore } : {}),
  });
  const workload = new Workload(new SeededRng(rng.nextU32()), {
    clients: 3,
    keys: ["x", "y", "z"],
    opsPerClient: Math.ceil(chaosTicks / 6),
    rate: 0.3,
    timeoutTicks: 60,
    readShare: 0.4,
    ...(opts.staleReads ? { staleReads: true } : {}),
  }, opts.nodes);
  cluster.listener = {
    applied: (node, inc, entry, clock) => workload.applied(node, inc, entry, clock),
    readServed: (node, inc, id) => workload.readServed(node, inc, id, cluster),
    readDropped: (node, inc, id) => workload.readDropped(node, inc, id),
    crashed: (node) => workload.crashed(node),
  };
  const trace = opts.trace ?? (() => {});
  const nemesis = new Nemesis(
    cluster,
    new SeededRng(rng.nextU32()),
    profile,
    (l) => trace(`t=${cluster.now} ${l}`),
  );
  const autopilot = new Autopilot(
    cluster,
    new SeededRng(rng.nextU32()),
    profile,
    (l) => trace(`t=${cluster.now} ${l}`),
  );
  let lastLeader = "";
  const traceLeader = () => {
    const l = cluster.leader();
    const s = l === undefined ? "none" : `${l.id} term ${l.core!.term}`;
    if (s !== lastLeader) trace(`t=${cluster.now} leader ${s}`);
    lastLeader = s;
  };
  if (opts.traceSteps) {
    cluster.onStep = (n, what) => trace(`t=${cluster.now} #${cluster.clock} ${n.id} ${what}`);
  }

  let violation: Violation | undefined;
  let lin: RunResult["linearizability"] = "skipped";
  let now = 0;
  const tick = (chaos: boolean) => {
    cluster.now = now;
    if (chaos) nemesis.tick(now);
    cluster.runFetches();
    cluster.deliver();
    cluster.tickAll();
    workload.tick(now, cluster);
    autopilot.tick(now, chaos);
    traceLeader();
    now++;
  };
  try {
    cluster.start(rng.next() < 0.5);
    for (let t = 0; t < chaosTicks; t++) tick(true);
    if (opts.heal ?? true) {
      nemesis.healAll();
      network.faults = { ...RELIABLE, maxDelay: 1 };
    }
    trace(`t=${now} healed; liveness phase`);
    workload.startFinal(cluster.clock);
    const deadline = now + livenessTicks;
    let healthy = false;
    while (now < deadline) {
      tick(false);
      if (workload.finalDone() && isHealthy(cluster)) {
        healthy = true;
        break;
      }
    }
    if (!healthy) {
      const l = cluster.leader();
      const leaderText = l === undefined
        ? "no leader"
        : `leader ${l.id} term ${l.core!.term} (${describeFollowers(cluster, l)})`;
      cluster.checker.tick = now;
      cluster.checker.fail(
        "liveness",
        `not settled ${livenessTicks} ticks after healing: ${leaderText}; ${
          workload.describeStuck() || "clients done"
        }`,
      );
      violation = cluster.checker.violations[0];
    }
  } catch (e) {
    if (!(e instanceof SimAbort)) throw e;
    violation = e.violation;
  }
  const history = workload.history();
  if (violation === undefined) {
    const r = checkLinearizability(kvModel, history, { maxSteps: 2_000_000 });
    lin = r.kind;
    if (r.kind === "illegal") {
      violation = {
        kind: "linearizability",
        message: `client history is not linearizable: ${r.explanation}`,
        tick: now,
        step: cluster.clock,
      };
    }
  }
  return {
    seed: opts.seed,
    nodes: opts.nodes,
    ...(violation !== undefined ? { violation } : {}),
    linearizability: lin,
    stats: {
      ticks: now,
      steps: cluster.stats.steps,
      elections: cluster.stats.elections,
      crashes: cluster.stats.crashes,
      restarts: cluster.stats.restarts,
      membershipChanges: autopilot.changes,
      partitions: nemesis.partitions,
      maxCommitted: cluster.stats.maxCommitted,
      messages: network.stats.sent,
      ops: workload.recorded,
      historyOps: history.length,
      unknownOps: workload.stats.unknown,
    },
  };
}

/** One leader that every live member follows in its term, with an entry of its term committed. */
function isHealthy(c: Cluster): boolean {
  const l = c.leader();
  const core = l?.core;
  if (l === undefined || core === undefined || !core.committedInTerm()) return false;
  const m = core.membership;
  for (const id of [...m.voters, ...m.learners]) {
    const n = c.nodes[c.indexOf(id) ?? -1];
    const nc = n?.core;
    if (nc === undefined || nc.leader !== l.id || nc.term !== core.term) return false;
  }
  return true;
}

function describeFollowers(c: Cluster, l: SimNode): string {
  const lc = l.core!;
  return c.nodes
    .filter((n) => n !== l)
    .map((n) => {
      const x = n.core;
      if (x === undefined) return `${n.id} down`;
      const member = lc.isVoter(n.id) ? "voter" : lc.isMember(n.id) ? "learner" : "non-member";
      return `${n.id} ${member} ${x.role} term ${x.term} leader ${
        x.leader ?? "-"
      } last ${x.log.lastIndex} commit ${x.committed}`;
    })
    .join(", ");
}
