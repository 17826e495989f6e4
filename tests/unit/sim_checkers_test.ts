// Proves the simulator's checkers can fail: synthetic bad histories, cores broken on purpose, and a scripted Figure 8.

import { test } from "../harness.ts";
import { assert, assertEquals } from "../assert.ts";
import type { Index } from "../../lib/primitives/cursor.ts";
import { SeededRng } from "../../lib/primitives/rng.ts";
import { RaftCore } from "../../lib/raft/core.ts";
import type { RaftConfig, RaftInit, Ready, VoteRequest } from "../../lib/raft/types.ts";
import {
  type CheckedEntry,
  Cluster,
  type CoreFactory,
  type NodeView,
  SafetyChecker,
  SimAbort,
  type SimNode,
  type Violation,
  type ViolationKind,
} from "../sim/cluster.ts";
import { RELIABLE, SimNetwork } from "../sim/network.ts";
import { type RunOptions, runSeed } from "../sim/run.ts";

// ---- synthetic histories fed to the checker -----------------------------------------------------

function e(index: Index, term: number, id: string): CheckedEntry {
  return { index, term, id };
}

function view(
  id: string,
  term: number,
  committed: Index,
  role: NodeView["role"] = "follower",
): NodeView {
  return { id, role, term, committed };
}

function kinds(c: SafetyChecker): ViolationKind[] {
  return c.violations.map((v) => v.kind);
}

test("checker: a correct history passes", () => {
  const c = new SafetyChecker();
  c.append("a", [e(1, 1, "x"), e(2, 1, "y")]);
  c.check([view("a", 1, 0, "leader")]);
  c.append("b", [e(1, 1, "x"), e(2, 1, "y")]);
  c.check([view("a", 1, 2, "leader"), view("b", 1, 0)]);
  c.apply("a", e(1, 1, "x"));
  c.apply("a", e(2, 1, "y"));
  c.check([view("a", 1, 2, "leader"), view("b", 1, 2)]);
  // b leads term 2 with everything committed; a's uncommitted suffix may be replaced
  c.append("a", [e(3, 1, "z")]);
  c.append("b", [e(3, 2, "noop")]);
  c.check([view("a", 2, 2), view("b", 2, 2, "leader")]);
  c.truncate("a", 3);
  c.append("a", [e(3, 2, "noop")]);
  c.restart("a");
  c.apply("a", e(1, 1, "x"));
  c.check([view("a", 2, 3), view("b", 2, 3, "leader")]);
  assertEquals(c.violations, []);
  assertEquals(c.committedLength, 3);
});

test("checker: two leaders in one term break election safety", () => {
  const c = new SafetyChecker();
  c.check([view("a", 3, 0, "leader")]);
  c.check([view("a", 3, 0, "leader"), view("b", 4, 0, "leader")]);
  assertEquals(c.violations, []);
  c.check([view("b", 3, 0, "leader")]);
  assertEquals(kinds(c), ["election-safety"]);
  assert(c.violations[0]!.message.includes("two leaders in term 3"));
});

test("checker: same index and term with different prefixes breaks log matching", () => {
  const c = new SafetyChecker();
  c.append("a", [e(1, 1, "x"), e(2, 2, "y")]);
  // b's entry 1 is of another term, so only the matching (2, 2) reveals the difference
  c.append("b", [e(1, 2, "other"), e(2, 2, "y")]);
  assertEquals(kinds(c), ["log-matching"]);
  assert(
    c.violations[0]!.message.includes("first difference at index 1"),
    c.violations[0]!.message,
  );
});

test("checker: a node committing a different entry breaks committed-never-changes", () => {
  const c = new SafetyChecker();
  c.append("a", [e(1, 1, "x")]);
  c.check([view("a", 1, 1, "leader")]);
  c.append("b", [e(1, 2, "y")]);
  c.check([view("b", 2, 1)]);
  assertEquals(kinds(c), ["committed-changed"]);
});

test("checker: truncating a committed entry is caught, whoever reported the commit", () => {
  const own = new SafetyChecker();
  own.append("a", [e(1, 1, "x"), e(2, 1, "y")]);
  own.check([view("a", 1, 2, "leader")]);
  own.restart("a"); // the commit index is volatile, the promise is not
  own.truncate("a", 2);
  assertEquals(kinds(own), ["committed-lost"]);

  const other = new SafetyChecker();
  other.append("a", [e(1, 1, "x"), e(2, 1, "y")]);
  other.append("b", [e(1, 1, "x"), e(2, 1, "y")]);
  other.check([view("a", 1, 2, "leader"), view("b", 1, 0)]);
  other.truncate("b", 2);
  assertEquals(kinds(other), ["committed-lost"]);
});

test("checker: applying out of order, uncommitted or different entries breaks state machine safety", () => {
  const gap = new SafetyChecker();
  gap.append("a", [e(1, 1, "x"), e(2, 1, "y")]);
  gap.apply("a", e(2, 1, "y"));
  assertEquals(kinds(gap), ["state-machine-safety"]);

  const early = new SafetyChecker();
  early.append("a", [e(1, 1, "x")]);
  early.apply("a", e(1, 1, "x"));
  early.check([view("a", 1, 0)]);
  assertEquals(kinds(early), ["state-machine-safety"]);

  const wrong = new SafetyChecker();
  wrong.append("a", [e(1, 1, "x")]);
  wrong.check([view("a", 1, 1, "leader")]);
  wrong.apply("b", e(1, 1, "not-x"));
  wrong.check([view("a", 1, 1, "leader"), view("b", 1, 0)]);
  assertEquals(kinds(wrong), ["state-machine-safety"]);
});

test("checker: a new leader without an entry committed in an earlier term breaks leader completeness", () => {
  const c = new SafetyChecker();
  c.append("a", [e(1, 1, "x"), e(2, 2, "y")]);
  c.append("b", [e(1, 1, "x")]);
  c.check([view("a", 2, 2, "leader"), view("b", 2, 1)]);
  // votes granted in term 1 and delivered late may still make b leader of term 1:
  // entries committed in term 2 need not be in its log
  c.check([view("b", 1, 1, "leader")]);
  assertEquals(c.violations, []);
  c.check([view("b", 3, 1, "leader")]);
  assertEquals(kinds(c), ["leader-completeness"]);
  assert(c.violations[0]!.message.includes("without committed entry 2"), c.violations[0]!.message);
});

// ---- cores broken on purpose, run through the simulator -----------------------------------------

/** Votes again in a term it already voted in: two votes per term. */
class DoubleVoteCore extends RaftCore {
  protected override grantVote(m: VoteRequest, _canVote: boolean): boolean {
    return this.log.isUpToDate(m.lastLogIndex, m.lastLogTerm);
  }
}

/** Votes for candidates whose log is behind its own. */
class StaleLogVoteCore extends RaftCore {
  protected override grantVote(_m: VoteRequest, canVote: boolean): boolean {
    return canVote;
  }
}

/** Once a quorum holds an entry of its term, commits everything it has, replicated or not. */
class CommitWithoutQuorumCore extends RaftCore {
  protected override commitCandidate(quorumIndex: Index): Index | undefined {
    return this.log.termAt(quorumIndex) === this.term ? this.log.lastIndex : undefined;
  }
}

/** Commits by counting replicas of an entry of an earlier term (Raft §5.4.2, Figure 8). */
class OldTermCommitCore extends RaftCore {
  protected override commitCandidate(quorumIndex: Index): Index | undefined {
    return quorumIndex;
  }
}

const BUDGET = 200;
/** Violations raised by the core's own assertions rather than by the simulator's checkers. */
const CORE_OWN: readonly ViolationKind[] = ["core-invariant", "core-error"];

/** Runs seeds 1..budget until one violates; returns it with its seed. */
function firstViolation(
  opts: Omit<RunOptions, "seed">,
  budget: number,
  accept: (v: Violation) => boolean = () => true,
): { seed: number; violation: Violation } | undefined {
  for (let seed = 1; seed <= budget; seed++) {
    const v = runSeed({ ...opts, seed }).violation;
    if (v !== undefined && accept(v)) return { seed, violation: v };
  }
  return undefined;
}

function factory(cls: new (config: RaftConfig, init: RaftInit) => RaftCore): CoreFactory {
  return (config, init) => new cls(config, init);
}

test("sim: two votes in one term are caught within the seed budget", () => {
  const found = firstViolation({ nodes: 3, makeCore: factory(DoubleVoteCore) }, BUDGET);
  assert(found !== undefined, `no violation in ${BUDGET} seeds`);
  console.log(`caught at seed ${found.seed}: ${found.violation.kind}: ${found.violation.message}`);
}, { timeout: 120_000 });

test("sim: voting for a stale log is caught by the checkers within the seed budget", () => {
  const found = firstViolation(
    { nodes: 3, makeCore: factory(StaleLogVoteCore) },
    BUDGET,
    (v) => !CORE_OWN.includes(v.kind),
  );
  assert(found !== undefined, `no checker violation in ${BUDGET} seeds`);
  console.log(`caught at seed ${found.seed}: ${found.violation.kind}: ${found.violation.message}`);
}, { timeout: 120_000 });

test("sim: committing without a quorum is caught by the checkers within the seed budget", () => {
  const found = firstViolation(
    { nodes: 3, makeCore: factory(CommitWithoutQuorumCore) },
    BUDGET,
    (v) => !CORE_OWN.includes(v.kind),
  );
  assert(found !== undefined, `no checker violation in ${BUDGET} seeds`);
  console.log(`caught at seed ${found.seed}: ${found.violation.kind}: ${found.violation.message}`);
}, { timeout: 120_000 });

test("sim: stale local reads are caught by the linearizability check", () => {
  const found = firstViolation(
    { nodes: 3, staleReads: true },
    20,
    (v) => v.kind === "linearizability",
  );
  assert(found !== undefined, "no linearizability violation in 20 seeds");
}, { timeout: 60_000 });

test("sim: a cluster left partitioned and crashed fails the liveness check", () => {
  const found = firstViolation(
    { nodes: 3, heal: false, livenessTicks: 100 },
    20,
    (v) => v.kind === "liveness",
  );
  assert(found !== undefined, "no liveness violation in 20 seeds");
}, { timeout: 60_000 });

// ---- Figure 8, scripted ------------------------------------------------------------------------

/**
 * Raft paper Figure 8 on three nodes, driven step by step through the
 * simulated cluster: n0 leads and writes A at index i while cut off; another
 * node S wins the next term and dies before telling anyone about its own
 * entry at i; n0 comes back, wins with the third node F, copies A to F (one
 * entry per message), and — with the broken rule — commits A, answers its
 * client and dies before F hears more. S returns and, with a log of a later
 * term at i, wins F's vote. Returns the first violation, if any.
 */
function figure8(makeCore: CoreFactory): Violation | undefined {
  const network = new SimNetwork(new SeededRng(1), RELIABLE);
  const c = new Cluster({
    size: 3,
    rng: new SeededRng(7),
    network,
    tuning: {
      electionTicks: 10,
      electionJitterTicks: 5,
      heartbeatTicks: 2,
      bootstrapTicks: 0,
      maxEntriesPerMessage: 1,
      maxInflight: 4,
      cacheEntries: 4096,
    },
    makeCore,
  });
  let now = 0;
  const tick = (): void => {
    c.now = now++;
    c.runFetches();
    c.deliver();
    c.tickAll();
  };
  const until = (what: string, cond: () => boolean): void => {
    for (let k = 0; k < 300; k++) {
      if (cond()) return;
      tick();
    }
    throw new Error(`Figure 8 script stuck at tick ${now}: ${what}`);
  };
  const isolate = (id: string): void => {
    for (const n of c.nodes) {
      network.block(id, n.id);
      network.block(n.id, id);
    }
  };
  try {
    c.start(true);
    const n0 = c.nodes[0]!;
    const core0 = () => n0.core!;
    for (const id of ["n1", "n2"]) {
      until(`add ${id}`, () => core0().canChangeMembership());
      c.input(n0, `addLearner ${id}`, (x) => void x.addLearner(id));
      until(`promote ${id}`, () => {
        let ok = false;
        c.input(n0, `promote ${id}`, (x) => {
          ok = x.promote(id).ok;
        });
        return ok;
      });
    }
    until("membership committed", () => core0().canChangeMembership());

    isolate(n0.id);
    let i = 0;
    c.input(n0, "propose A", (x) => {
      const r = x.propose([{ clientId: 9, opId: 1, op: "put", key: "k", value: "A" }]);
      if (r.ok) i = r.value.start;
    });
    assert(i > 0, "n0 accepted A");

    let s: SimNode | undefined;
    c.crashPoint = (n: SimNode, rd: Ready) => {
      if (n === n0 || !rd.events.some((ev) => ev.type === "roleChanged" && ev.role === "leader")) {
        return "none";
      }
      s = n;
      return "beforeSend";
    };
    until("another leader", () => s !== undefined);
    const S = s!;
    assertEquals(S.storage.last().index, i, "S holds its own entry at i");
    const F = c.nodes.find((n) => n !== n0 && n !== S)!;

    network.heal();
    c.crashPoint = (n: SimNode, rd: Ready) =>
      n === n0 && n.core?.role === "leader" && rd.apply !== undefined && rd.apply.range.end >= i
        ? "afterStep"
        : "none";
    until("n0 commits A", () => !n0.up);
    c.crashPoint = undefined;

    c.restart(S);
    until("a new leader", () => S.core?.role === "leader" || F.core?.role === "leader");
    for (let k = 0; k < 50; k++) tick();
  } catch (err) {
    if (err instanceof SimAbort) return err.violation;
    throw err;
  }
  return undefined;
}

test("sim: committing an old-term entry by counting replicas (Figure 8) is caught by the checkers", () => {
  const v = figure8(factory(OldTermCommitCore));
  assert(v !== undefined, "the broken commit rule went unnoticed");
  assert(!CORE_OWN.includes(v.kind), `caught only by the core's own assertion: ${v.message}`);
  assert(
    v.kind === "leader-completeness" || v.kind === "committed-lost",
    `${v.kind}: ${v.message}`,
  );
});

test("sim: the same Figure 8 script passes with the real commit rule", () => {
  assertEquals(figure8((config, init) => new RaftCore(config, init)), undefined);
});
