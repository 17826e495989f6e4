// One group member as its own process, driven by line-delimited JSON on stdin, for the multi-process tests.
//
// Usage (either runtime; Deno needs --allow-all --unstable-net):
//   node.ts <group key hex> [bootstrap PeerAddr] [--reluctant]
// The key may instead come from the MOSAIK_GROUP_KEY environment variable
// (then the first argument, if any, is the bootstrap address). `--reluctant`
// joins with `deprioritizeLeadership()` (this node only; same GroupId).
// `--store <path>` keeps the log in the runtime's durable store (Deno KV on
// Deno, SQLite on Bun) instead of memory; `--secret <hex>` fixes the node's
// 32-byte secret key, so a restarted node is the same member.
//
// The node listens on 127.0.0.1:0, joins the group with a replicated counter
// and fast consensus timings, and prints one line:
//   {"ready":true,"addr":"mosaik1:…","id":"<peer hex>","runtime":"deno"|"bun"}
// Then every stdin line is a request, answered by one stdout line carrying the
// same `id` (requests run concurrently, so replies may come out of order):
//   {"id":1,"op":"execute","add":5}            → {"id":1,"ok":true,"index":7}
//   {"id":2,"op":"status"}                     → {"id":2,"ok":true,"role":"leader"|"follower"|"none",
//                                                 "leader":hex|null,"term":n,"committed":n,
//                                                 "value":n,"applied":n,"bonds":n,
//                                                 "bondPeers":[hex],"catalog":[hex]}
//   {"id":3,"op":"query","consistency":"strong"|"weak"} → {"id":3,"ok":true,"result":n,"at":{term,index}}
//   {"id":4,"op":"waitLeader","except":hex?,"timeoutMs":n}  → {"id":4,"ok":true,"leader":hex}
//   {"id":5,"op":"waitCommitted","index":n,"timeoutMs":n}   → {"id":5,"ok":true,"committed":n}
//   {"id":7,"op":"members"}                    → {"id":7,"ok":true,"voters":[hex],"learners":[hex]}
//                                                 (the configuration committed in this node's log)
//   {"id":6,"op":"leave"}                      → {"id":6,"ok":true}, then the process exits 0
// A failed request answers {"id":…,"ok":false,"error":"<error class name>","message":"…"}.
// Closing stdin also leaves the group and exits 0; exit status 3 means shutdown hung.

import process from "node:process";
import { createInterface } from "node:readline";
import { Consistency, GroupKey, Network, PeerId } from "../../mod.ts";
import { Counter, type CounterCommand } from "../counter.ts";
import { fromHex } from "../../lib/primitives/bytes.ts";
import { openDefaultStore } from "../../storage/default.ts";
import { InMemoryLogStore } from "../../storage/memory.ts";
import type { Storage } from "../../storage/types.ts";
import { committedMembership, FAST } from "../group_net.ts";

/** Network name every node of the multi-process tests uses. */
export const NETWORK_NAME = "mosaik-procs";

/** How long leaving the group and closing the network may take before the process gives up. */
const SHUTDOWN_MS = 10_000;

/** Longest wait a `waitLeader` / `waitCommitted` request may ask for. */
const MAX_WAIT_MS = 60_000;

const runtime = (globalThis as { Deno?: unknown }).Deno === undefined ? "bun" : "deno";

type Request = Record<string, unknown> & { id?: unknown; op?: unknown };

function reply(value: Record<string, unknown>): void {
  console.log(JSON.stringify(value));
}

function waitMs(req: Request): number {
  const t = req.timeoutMs;
  if (typeof t !== "number" || !Number.isSafeInteger(t) || t < 1 || t > MAX_WAIT_MS) {
    throw new RangeError(`timeoutMs must be an integer in 1–${MAX_WAIT_MS}`);
  }
  return t;
}

/** The value after `name` in `args`, if the flag is there. */
function flagValue(args: readonly string[], name: string): string | undefined {
  const at = args.indexOf(name);
  if (at < 0) return undefined;
  const value = args[at + 1];
  if (value === undefined || value.startsWith("--")) throw new Error(`${name} needs a value`);
  return value;
}

async function main(): Promise<void> {
  const args = process.argv.slice(2).filter((a) => a !== "--");
  const reluctant = args.includes("--reluctant");
  const storePath = flagValue(args, "--store");
  const secretHex = flagValue(args, "--secret");
  const positional = args.filter((a, i) =>
    !a.startsWith("--") && args[i - 1] !== "--store" && args[i - 1] !== "--secret"
  );
  const envKey = process.env.MOSAIK_GROUP_KEY;
  const keyHex = envKey ?? positional.shift();
  if (keyHex === undefined) {
    throw new Error(
      "Usage: node.ts <group key hex> [bootstrap PeerAddr] [--reluctant] [--store path] [--secret hex]",
    );
  }
  const key = GroupKey.parse(keyHex);
  const bootstrap = positional.shift();

  let builder = Network.builder(NETWORK_NAME)
    .withListenAddress("127.0.0.1:0")
    .withDiscoveryConfig({ announceInterval: 200, staleAfter: 5_000, syncTimeout: 5_000 })
    .withGroupsConfig({ handshakeTimeout: 3_000 });
  if (bootstrap !== undefined) builder = builder.withBootstrap(bootstrap);
  if (secretHex !== undefined) builder = builder.withSecretKey(fromHex(secretHex, 32));
  const store: Storage<CounterCommand> = storePath === undefined
    ? new InMemoryLogStore<CounterCommand>()
    : await openDefaultStore<CounterCommand>(storePath);
  const network = await builder.build();

  const counter = new Counter();
  const group = network.groups()
    .withKey(key)
    .withStateMachine(counter)
    .withLogStorage(store)
    .withConsensusConfig(reluctant ? FAST.deprioritizeLeadership() : FAST)
    .join();
  const self = network.local().id();

  let stopping: Promise<void> | undefined;
  const shutdown = (): Promise<void> => {
    stopping ??= (async () => {
      const timer = setTimeout(() => {
        console.error(`node.ts: shutdown took longer than ${SHUTDOWN_MS} ms`);
        process.exit(3);
      }, SHUTDOWN_MS);
      try {
        await group.leave();
        await network.close();
        await store.close?.();
      } finally {
        clearTimeout(timer);
      }
      process.exit(0);
    })();
    return stopping;
  };

  /** A leader this node knows of that is not `except`, waiting for one if needed. */
  const leaderOtherThan = async (except: PeerId | undefined, signal: AbortSignal) => {
    const when = group.when();
    let leader = await when.leaderElected({ signal });
    // Each round waits for a leader change, so it ends either with another leader or on the signal.
    while (except !== undefined && leader.equals(except)) {
      leader = await when.leaderChanged({ signal });
    }
    return leader;
  };

  const handle = async (req: Request): Promise<Record<string, unknown>> => {
    switch (req.op) {
      case "execute": {
        if (typeof req.add !== "number") throw new TypeError("execute needs a numeric add");
        return { index: await group.execute({ add: req.add }) };
      }
      case "status": {
        const leader = group.leader();
        const role = group.isLeader() ? "leader" : leader !== undefined ? "follower" : "none";
        return {
          role,
          leader: leader?.toHex() ?? null,
          // The public Group API has no current-term accessor; the last log entry's term
          // is the current term once the leader's election entry has arrived.
          term: group.logPosition().term,
          committed: group.committed(),
          value: counter.value,
          applied: counter.applied,
          bonds: group.bonds().size,
          bondPeers: [...group.bonds()].map((b) => b.peerId.toHex()),
          catalog: [...network.discovery().catalog().keys()],
        };
      }
      case "query": {
        const consistency = req.consistency === "strong"
          ? Consistency.Strong
          : req.consistency === "weak"
          ? Consistency.Weak
          : undefined;
        if (consistency === undefined) throw new TypeError("consistency must be strong or weak");
        const r = await group.query(null, consistency);
        return { result: r.result, at: { term: r.atPosition.term, index: r.atPosition.index } };
      }
      case "waitLeader": {
        const except = typeof req.except === "string" ? PeerId.parse(req.except) : undefined;
        const leader = await leaderOtherThan(except, AbortSignal.timeout(waitMs(req)));
        return { leader: leader.toHex() };
      }
      case "waitCommitted": {
        if (typeof req.index !== "number") throw new TypeError("waitCommitted needs an index");
        const committed = await group.when().committed().reaches(req.index, {
          signal: AbortSignal.timeout(waitMs(req)),
        });
        return { committed };
      }
      case "members":
        return (await committedMembership(store, group.committed())) ??
          { voters: [], learners: [] };
      case "leave":
        return {};
      default:
        throw new TypeError(`Unknown op ${JSON.stringify(req.op)}`);
    }
  };

  const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
  lines.on("line", (line) => {
    if (line.trim() === "") return;
    let req: Request;
    try {
      req = JSON.parse(line) as Request;
    } catch {
      reply({ id: null, ok: false, error: "SyntaxError", message: "request is not JSON" });
      return;
    }
    handle(req).then(
      (result) => {
        reply({ id: req.id ?? null, ok: true, ...result });
        if (req.op === "leave") void shutdown();
      },
      (err: unknown) => {
        const e = err instanceof Error ? err : new Error(String(err));
        reply({ id: req.id ?? null, ok: false, error: e.name, message: e.message });
      },
    );
  });
  lines.on("close", () => void shutdown());

  reply({ ready: true, addr: network.local().addr().toString(), id: self.toHex(), runtime });
}

if (import.meta.main) {
  try {
    await main();
  } catch (err) {
    console.log(JSON.stringify({ error: err instanceof Error ? err.message : String(err) }));
    process.exit(1);
  }
}
