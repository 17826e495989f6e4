// One member of the demo cluster, as its own process: the KeyValue machine on a durable store over loopback QUIC.
//
// Started by examples/demo/demo.ts (`npm start`), on Deno or on Bun. The group key
// and the node's secret key come in the environment (MOSAIK_DEMO_KEY,
// MOSAIK_DEMO_SECRET, both hex), never on the command line:
//   node.ts --store <path> --election-ms <n> [--bootstrap <PeerAddr>]...
//
// It prints one JSON line when it has joined:
//   {"t":"ready","addr":"mosaik1:…","id":"<peer hex>","runtime":"deno"|"bun"}
// then a status line every STATUS_MS:
//   {"t":"status","at":<epoch ms>,"role":"leader"|"follower"|"none","leader":hex|null,
//    "term":n,"committed":n,"applied":n,"bonds":n,"keys":n,"writes":n,"reads":n,
//    "errors":n,"lastError":string|null,"leaders":[{"at":ms,"leader":hex}],
//    "recovered":{"since":ms,"at":ms}|null}
// and reads one JSON command per stdin line:
//   {"op":"load","writers":n}  start n writers (each: a write, then now and then a weak or strong read)
//   {"op":"pause"}             stop the writers; answers {"t":"paused"} once none is in flight
//   {"op":"mark","since":ms}   probe with fresh writes until one started at or after `since`
//                              succeeds; reported as "recovered" (how fast writes work again)
//   {"op":"digest"}            answers {"t":"digest","applied":n,"keys":n,"digest":hex}
// Closing stdin leaves the group gracefully and exits 0. Exit 1: failed to start.

import process from "node:process";
import { createInterface } from "node:readline";
import { sha256 } from "@noble/hashes/sha2.js";
import {
  type ApplyContext,
  ConsensusConfig,
  Consistency,
  GroupKey,
  KeyValue,
  type KvCommand,
  Network,
  PeerAddr,
} from "../../mod.ts";
import { fromHex, toHex, utf8 } from "../../lib/primitives/bytes.ts";
import { openDefaultStore } from "../../storage/default.ts";

/** How often a status line is printed (ms). */
const STATUS_MS = 200;
/** Keys each node's writers cycle through. */
const KEYS_PER_NODE = 200;
/** Pause after a failed write before the writer tries again (ms). */
const RETRY_MS = 50;
/** Gap between probe writes after a mark (ms), and how long probing may go on. */
const PROBE_EVERY_MS = 20;
const PROBE_FOR_MS = 30_000;
/** Leaving the group and closing may take this long before the process gives up. */
const SHUTDOWN_MS = 10_000;

const runtime = (globalThis as { Deno?: unknown }).Deno === undefined ? "bun" : "deno";

/** KeyValue that also remembers the index and term of the last entry it applied. */
class ObservedKeyValue extends KeyValue {
  appliedIndex = 0;
  term = 0;

  override apply(command: KvCommand, ctx: ApplyContext): void {
    super.apply(command, ctx);
    this.appliedIndex = ctx.logPosition().index;
    this.term = ctx.currentTerm();
  }

  override reset(): void {
    super.reset();
    this.appliedIndex = 0;
  }
}

function emit(value: Record<string, unknown>): void {
  console.log(JSON.stringify(value));
}

function parseArgs(args: string[]) {
  const bootstrap: PeerAddr[] = [];
  let store: string | undefined;
  let electionMs = 500;
  for (let i = 0; i < args.length; i++) {
    const flag = args[i];
    const value = args[++i];
    if (value === undefined) throw new Error(`${flag} needs a value`);
    if (flag === "--bootstrap") bootstrap.push(PeerAddr.parse(value));
    else if (flag === "--store") store = value;
    else if (flag === "--election-ms") electionMs = Number(value);
    else throw new Error(`unknown flag ${flag}`);
  }
  if (store === undefined) throw new Error("--store is required");
  const key = process.env.MOSAIK_DEMO_KEY;
  const secret = process.env.MOSAIK_DEMO_SECRET;
  if (key === undefined || secret === undefined) {
    throw new Error("MOSAIK_DEMO_KEY and MOSAIK_DEMO_SECRET must be set");
  }
  return { bootstrap, store, electionMs, key: GroupKey.parse(key), secret: fromHex(secret, 32) };
}

/** The demo's consensus timings: election after `electionMs` (+ up to half of it), heartbeats at a fifth. */
export function demoConsensus(electionMs: number): ConsensusConfig {
  const heartbeat = Math.max(10, Math.round(electionMs / 5));
  return ConsensusConfig.builder()
    .withElectionTimeout(electionMs)
    .withElectionTimeoutJitter(Math.round(electionMs / 2))
    .withHeartbeatInterval(heartbeat)
    .withHeartbeatJitter(Math.round(heartbeat / 5))
    .withMaxMissedHeartbeats(10)
    .withBootstrapDelay(electionMs)
    .withForwardTimeout(2_000)
    .withQueryTimeout(2_000)
    .build();
}

async function main(): Promise<void> {
  const opts = parseArgs(process.argv.slice(2).filter((a) => a !== "--"));
  const store = await openDefaultStore<KvCommand>(opts.store);
  let network: Network;
  try {
    network = await Network.builder("mosaik-demo")
      .withListenAddress("127.0.0.1:0")
      .withSecretKey(opts.secret)
      .withBootstrap(...opts.bootstrap)
      .withDiscoveryConfig({ announceInterval: 1_000 })
      .build();
  } catch (err) {
    await store.close?.();
    throw err;
  }
  const kv = new ObservedKeyValue();
  const group = network.groups().withKey(opts.key).withStateMachine(kv).withLogStorage(store)
    .withConsensusConfig(demoConsensus(opts.electionMs)).join();
  const self = network.local().id().toHex();
  const prefix = self.slice(0, 6);

  let writes = 0;
  let reads = 0;
  let errors = 0;
  let lastError: string | null = null;
  const leaders: { at: number; leader: string }[] = [];
  let recovered: { since: number; at: number } | null = null;
  let stopping = false;

  const quit = new AbortController();
  // Leader changes as this node saw them, with the time it saw them.
  const watchLeaders = (async () => {
    const when = group.when();
    try {
      for (;;) {
        const leader = await when.leaderChanged({ signal: quit.signal });
        leaders.push({ at: Date.now(), leader: leader.toHex() });
        if (leaders.length > 8) leaders.shift();
      }
    } catch {
      // closed, or left
    }
  })();

  let running = false;
  let active: Promise<void>[] = [];
  const writer = async (w: number) => {
    for (let n = 0; running && !stopping; n++) {
      const key = `${prefix}-${(w * 7919 + n) % KEYS_PER_NODE}`;
      try {
        await group.execute({ op: "set", key, value: `${n}` });
        writes++;
        if (n % 4 === 3) {
          await group.query(key, n % 16 === 15 ? Consistency.Strong : Consistency.Weak);
          reads++;
        }
      } catch (err) {
        errors++;
        lastError = (err as Error).message;
        await new Promise((r) => setTimeout(r, RETRY_MS));
      }
    }
  };

  /** Fresh writes every PROBE_EVERY_MS until one started at or after `since` succeeds. */
  const probe = async (since: number) => {
    const deadline = Date.now() + PROBE_FOR_MS;
    const inFlight: Promise<void>[] = [];
    let n = 0;
    while (recovered === null && !stopping && Date.now() < deadline) {
      const started = Date.now();
      if (started >= since) {
        inFlight.push(
          group.execute({ op: "set", key: `${prefix}-probe`, value: `${n++}` }).then(
            () => {
              if (recovered === null) recovered = { since, at: Date.now() };
            },
            () => {},
          ),
        );
      }
      await new Promise((r) => setTimeout(r, PROBE_EVERY_MS));
    }
    await Promise.all(inFlight);
  };
  let probing: Promise<void> = Promise.resolve();

  const status = () => {
    const leader = group.leader();
    emit({
      t: "status",
      at: Date.now(),
      role: group.isLeader() ? "leader" : leader !== undefined ? "follower" : "none",
      leader: leader?.toHex() ?? null,
      term: Math.max(group.logPosition().term, kv.term),
      committed: group.committed(),
      applied: kv.appliedIndex,
      bonds: group.bonds().size,
      keys: kv.size,
      writes,
      reads,
      errors,
      lastError,
      leaders,
      recovered,
    });
  };
  const ticker = setInterval(status, STATUS_MS);

  const handle = async (cmd: Record<string, unknown>) => {
    switch (cmd.op) {
      case "load": {
        const n = typeof cmd.writers === "number" ? cmd.writers : 4;
        running = true;
        active = Array.from({ length: n }, (_, w) => writer(w));
        return;
      }
      case "pause":
        running = false;
        await Promise.all(active);
        await probing;
        emit({ t: "paused" });
        return;
      case "mark":
        if (typeof cmd.since === "number") probing = probe(cmd.since);
        return;
      case "digest": {
        const entries = kv.entries().sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
        emit({
          t: "digest",
          applied: kv.appliedIndex,
          keys: kv.size,
          digest: toHex(sha256(utf8(JSON.stringify(entries)))).slice(0, 16),
        });
        return;
      }
      default:
        emit({ t: "error", message: `unknown op ${JSON.stringify(cmd.op)}` });
    }
  };

  const shutdown = async () => {
    if (stopping) return;
    stopping = true;
    running = false;
    clearInterval(ticker);
    const timer = setTimeout(() => {
      console.error(`demo node: shutdown took longer than ${SHUTDOWN_MS} ms`);
      process.exit(3);
    }, SHUTDOWN_MS);
    await Promise.all(active);
    await probing;
    quit.abort();
    await group.leave();
    await watchLeaders;
    await network.close();
    await store.close?.();
    clearTimeout(timer);
    process.exit(0);
  };

  const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
  lines.on("line", (line) => {
    if (line.trim() === "") return;
    let cmd: Record<string, unknown>;
    try {
      cmd = JSON.parse(line) as Record<string, unknown>;
    } catch {
      emit({ t: "error", message: "command is not JSON" });
      return;
    }
    handle(cmd).catch((err) => emit({ t: "error", message: (err as Error).message }));
  });
  lines.on("close", () => void shutdown());

  emit({ t: "ready", addr: network.local().addr().toString(), id: self, runtime });
  status();
}

if (import.meta.main) {
  try {
    await main();
  } catch (err) {
    emit({ t: "failed", message: err instanceof Error ? err.message : String(err) });
    process.exit(1);
  }
}
