// Example: a custom state machine with `applyBatch` — a bank ledger that posts a batch of transfers, then rebuilds its ranking once per batch.
//
// Run it with either runtime:
//   deno run -A --unstable-net examples/batch_ledger.ts
//   bun examples/batch_ledger.ts
//
// All three nodes live in this one process for brevity, but they talk to each
// other over real QUIC on 127.0.0.1, exactly as separate machines would.

import process from "node:process";
import {
  type ApplyContext,
  ConsensusConfig,
  Consistency,
  GroupKey,
  Network,
  type StateMachine,
} from "../mod.ts";

/** A command: move `amount` from one account to another. Plain data, so CBOR-encodable. */
type Transfer = { from: string; to: string; amount: number };

/** A query: an account's balance and its place in the ranking. */
type BalanceQuery = { account: string };
type Balance = { balance: number; rank: number };

/** The account money is issued from; the only one allowed to go below zero. */
const BANK = "bank";

/**
 * An append-only ledger of transfers, with balances and a ranking of the
 * accounts by balance.
 *
 * When a machine has `applyBatch`, the group calls it with all the commands
 * committed together instead of calling `apply` once per command. Which
 * commands arrive together differs from member to member (it depends on when
 * each one learns what is committed), so the state after a batch must be
 * exactly what applying its commands one by one would give. Batching is for
 * work that only the end result needs: here, sorting the ranking once per
 * batch rather than after every transfer.
 */
class Ledger implements StateMachine<Transfer, BalanceQuery, Balance> {
  /** Every transfer, in log order, and whether it was posted (an overdraft is refused). */
  readonly journal: (Transfer & { posted: boolean })[] = [];
  readonly #balances = new Map<string, number>();
  /** Accounts by balance, highest first; rebuilt once per batch. */
  #ranking: string[] = [];
  /** How many batches this member applied: local, not part of the replicated state. */
  batches = 0;

  signature(): string {
    return "example-ledger/v1";
  }

  applyBatch(transfers: Transfer[], _ctx: ApplyContext): void {
    for (const t of transfers) {
      // Deterministic checks only: every member must refuse the same transfers.
      const funds = this.balanceOf(t.from);
      const posted = t.amount > 0 && t.from !== t.to && (t.from === BANK || funds >= t.amount);
      if (posted) {
        this.#balances.set(t.from, funds - t.amount);
        this.#balances.set(t.to, this.balanceOf(t.to) + t.amount);
      }
      this.journal.push({ ...t, posted });
    }
    // The once-per-batch work: a full sort, with a tie-break so every member ranks alike.
    this.#ranking = [...this.#balances.keys()].filter((a) => a !== BANK).sort((a, b) =>
      this.balanceOf(b) - this.balanceOf(a) || (a < b ? -1 : 1)
    );
    this.batches++;
  }

  /** Still required: a single command is a batch of one. */
  apply(transfer: Transfer, ctx: ApplyContext): void {
    this.applyBatch([transfer], ctx);
  }

  query({ account }: BalanceQuery): Balance {
    return { balance: this.balanceOf(account), rank: this.#ranking.indexOf(account) + 1 };
  }

  /** Back to an empty ledger, should this member have to replay the group's log from the start. */
  reset(): void {
    this.journal.length = 0;
    this.#balances.clear();
    this.#ranking = [];
  }

  balanceOf(account: string): number {
    return this.#balances.get(account) ?? 0;
  }

  /** The sum of all balances; transfers only move money, so it stays 0. */
  total(): number {
    let sum = 0;
    for (const b of this.#balances.values()) sum += b;
    return sum;
  }
}

// Every member must hold the same key and use the same consensus settings
// (shorter than the defaults here, so the example is quick).
const key = GroupKey.generate();
const config = ConsensusConfig.builder()
  .withHeartbeatInterval(100)
  .withHeartbeatJitter(20)
  .withElectionTimeout(500)
  .withElectionTimeoutJitter(200)
  .withBootstrapDelay(500)
  .build();
const signal = () => AbortSignal.timeout(10_000);

// Three nodes; the first is everyone's bootstrap peer.
const first = await Network.builder("ledger-example").withListenAddress("127.0.0.1:0").build();
const networks = [first];
for (let i = 0; i < 2; i++) {
  networks.push(
    await Network.builder("ledger-example")
      .withListenAddress("127.0.0.1:0")
      .withBootstrap(first.local().addr())
      .build(),
  );
}
const ledgers = networks.map(() => new Ledger());
const groups = networks.map((n, i) =>
  n.groups().withKey(key).withStateMachine(ledgers[i]!).withConsensusConfig(config).join()
);

const leader = await groups[0]!.when().leaderElected({ signal: signal() });
await Promise.all(groups.map((g) => g.when().leaderIs(leader, { signal: signal() })));
const follower = groups.find((g) => !g.isLeader())!;
console.log(
  `leader: ${leader.short()}; sending transfers through node ${
    groups.indexOf(follower) + 1
  }, a follower`,
);

// `executeMany` sends several commands at once; they get consecutive indices,
// are committed together and usually reach `applyBatch` together.
const payday = await follower.executeMany([
  { from: BANK, to: "alice", amount: 100 },
  { from: BANK, to: "bob", amount: 50 },
  { from: BANK, to: "carol", amount: 20 },
], { signal: signal() });
console.log(`payday: 3 transfers committed at indices ${payday.start}..${payday.end}`);
const trades = await follower.executeMany([
  { from: "alice", to: "bob", amount: 30 },
  { from: "carol", to: "alice", amount: 500 }, // more than carol has: refused on every node
  { from: "bob", to: "carol", amount: 5 },
], { signal: signal() });
console.log(`trades: 3 transfers committed at indices ${trades.start}..${trades.end}`);
// Single commands sent concurrently may be committed, and applied, together too.
const last = Math.max(
  ...await Promise.all([
    follower.execute({ from: "bob", to: "dave", amount: 10 }, { signal: signal() }),
    follower.execute({ from: "alice", to: "dave", amount: 10 }, { signal: signal() }),
  ]),
);

// A strong query answers from the leader's ledger as of now.
for (const account of ["alice", "bob", "carol", "dave"]) {
  const r = await follower.query({ account }, Consistency.Strong, { signal: signal() });
  console.log(`${account}: balance ${r.result.balance}, rank ${r.result.rank}`);
}

// Once every node has committed the last transfer, each ledger holds the same
// journal and balances, however its commands were split into batches.
await Promise.all(groups.map((g) => g.when().committed().reaches(last, { signal: signal() })));
const weak = await Promise.all(groups.map((g) => g.query({ account: "alice" }, Consistency.Weak)));
for (const [i, l] of ledgers.entries()) {
  const refused = l.journal.filter((t) => !t.posted).length;
  console.log(
    `node ${i + 1}: ${l.journal.length} transfers (${refused} refused) in ${l.batches} batches, ` +
      `alice ${weak[i]!.result.balance}, total ${l.total()}`,
  );
}

await Promise.all(networks.map((n) => n.close()));
const journals = ledgers.map((l) => JSON.stringify(l.journal));
if (journals.some((j) => j !== journals[0]) || ledgers.some((l) => l.total() !== 0)) {
  console.error("the ledgers differ");
  process.exit(1);
}
console.log("every node holds the same ledger, and it balances");
