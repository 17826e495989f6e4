// One member of a benchmark cluster, as its own process: the KeyValue machine on loopback QUIC, measuring what bench/run.ts asks for with performance.now().
//
// Started by bench/run.ts on Deno or Bun; the group key comes in the
// MOSAIK_BENCH_KEY environment variable (hex):
//   node.ts --store memory|durable [--path <file>] --consensus default|fast [--bootstrap <PeerAddr>]...
// It prints one line when it has joined:
//   {"t":"ready","addr":"mosaik1:…","id":hex,"runtime":"deno"|"bun","version":"2.9.6","joinMs":n}
// then answers each stdin request {"id":n,"op":…} with one stdout line
// {"id":n,"ok":true,…} or {"id":n,"ok":false,"error":name,"message":…}
// (requests run concurrently; replies may come out of order):
//   status                              role, leader, term, committed, applied, lastIndex, bonds
//   members                             voters and learners of the committed configuration
//                                       (scans the log: for small logs only)
//   cpu                                 process.cpuUsage() (µs) and rss (bytes)
//   write {callers,batch,warmupMs,durationMs}
//                                       `callers` concurrent loops of execute (batch 1) or
//                                       executeMany (batch > 1); counts the commands committed and
//                                       the latencies of calls that end in the measured window
//   read {consistency,warmupMs,durationMs}
//                                       one loop of query(key, weak|strong); latencies
//   fill {entries,batch,callers}        executeMany until `entries` more commands are committed
//   arm                                 starts recording leader changes (epoch ms)
//   probe {timeoutMs}                   a fresh execute every PROBE_EVERY_MS until one commits;
//                                       answers when it has, with the epoch ms of that commit and
//                                       the leader changes recorded since arm, the elections this
//                                       node started and the terms it went through since arm, and
//                                       its role/term changes (sampled every ROLE_POLL_MS)
//   waitApplied {index,timeoutMs}       waits until this node has applied `index`; answers with
//                                       ms since the join of the first applied entry and of `index`
//   leave                               leaves the group gracefully and exits 0
// Closing stdin does the same as leave. Exit 1: failed to start; 3: shutdown hung.

import process from "node:process";
import { createInterface } from "node:readline";
import {
  type ApplyContext,
  Consistency,
  GroupKey,
  KeyValue,
  type KvCommand,
  Network,
  PeerAddr,
} from "../mod.ts";
import { InMemoryLogStore } from "../storage/memory.ts";
import { openDefaultStore } from "../storage/default.ts";
import { type Storage, SystemEntry } from "../storage/types.ts";
import {
  consensusConfig,
  type ConsensusName,
  KEY_ENV,
  KEYS,
  NETWORK_NAME,
  type StoreKind,
  summary,
  VALUE,
} from "./common.ts";

/** Gap between two probe writes after a leader was killed (ms). */
const PROBE_EVERY_MS = 5;
/** How often role and term are sampled while a failover is timed (ms). */
const ROLE_POLL_MS = 2;
/** Pause after a failed write before its caller tries again (ms). */
const RETRY_MS = 20;
/** How long a measurement may run past its window while the last calls finish (ms). */
const DRAIN_MS = 15_000;
/** Leaving the group and closing may take this long before the process gives up (ms). */
const SHUTDOWN_MS = 10_000;

const runtime = (globalThis as { Deno?: unknown }).Deno === undefined ? "bun" : "deno";
const version = runtime === "deno"
  ? (globalThis as unknown as { Deno: { version: { deno: string } } }).Deno.version.deno
  : (globalThis as unknown as { Bun: { version: string } }).Bun.version;

type Request = Record<string, unknown> & { id?: unknown; op?: unknown };

function emit(value: Record<string, unknown>): void {
  console.log(JSON.stringify(value));
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** KeyValue that remembers the last index it applied and when it reached a target index. */
class BenchKeyValue extends KeyValue {
  appliedIndex = 0;
  firstAppliedAt: number | undefined;
  target = Infinity;
  reachedAt: number | undefined;
  #onReach: (() => void) | undefined;

  override apply(command: KvCommand, ctx: ApplyContext): void {
    super.apply(command, ctx);
    this.appliedIndex = ctx.logPosition().index;
    if (this.firstAppliedAt === undefined) this.firstAppliedAt = performance.now();
    if (this.appliedIndex >= this.target && this.reachedAt === undefined) {
      this.reachedAt = performance.now();
      this.#onReach?.();
    }
  }

  /** Resolves once `index` is applied; the time is in {@link reachedAt}. */
  reach(index: number, signal: AbortSignal): Promise<void> {
    this.target = index;
    if (this.appliedIndex >= index) {
      this.reachedAt ??= performance.now();
      return Promise.resolve();
    }
    return new Promise((resolve, reject) => {
      const abort = () => reject(new Error(`index ${index} not applied in time`));
      signal.addEventListener("abort", abort, { once: true });
      this.#onReach = () => {
        signal.removeEventListener("abort", abort);
        resolve();
      };
    });
  }
}

/** The committed configuration in `store` up to `committed`. */
async function members(store: Storage<KvCommand>, committed: number) {
  let found: { voters: string[]; learners: string[] } | undefined;
  for (let from = 1; from <= committed; from += 1000) {
    for (const e of await store.getRange(from, Math.min(committed, from + 999))) {
      if (!SystemEntry.is(e.command)) continue;
      const body = e.command.body;
      if (body.type === "bootstrap") found = { voters: [...body.voters], learners: [] };
      if (body.type === "membership") {
        found = { voters: [...body.voters], learners: [...body.learners] };
      }
    }
  }
  return {
    voters: (found?.voters ?? []).sort(),
    learners: (found?.learners ?? []).sort(),
  };
}

function parseArgs(args: string[]) {
  const bootstrap: PeerAddr[] = [];
  let store: StoreKind | undefined;
  let path: string | undefined;
  let consensus: ConsensusName = "default";
  for (let i = 0; i < args.length; i++) {
    const flag = args[i];
    const value = args[++i];
    if (value === undefined) throw new Error(`${flag} needs a value`);
    if (flag === "--bootstrap") bootstrap.push(PeerAddr.parse(value));
    else if (flag === "--store" && (value === "memory" || value === "durable")) store = value;
    else if (flag === "--path") path = value;
    else if (flag === "--consensus" && (value === "default" || value === "fast")) {
      consensus = value;
    } else throw new Error(`bad flag ${flag} ${value}`);
  }
  if (store === undefined) throw new Error("--store memory|durable is required");
  if (store === "durable" && path === undefined) throw new Error("--path is required");
  const key = process.env[KEY_ENV];
  if (key === undefined) throw new Error(`${KEY_ENV} must be set`);
  return { bootstrap, store, path, consensus, key: GroupKey.parse(key) };
}

function num(req: Request, name: string, min: number, max: number): number {
  const v = req[name];
  if (typeof v !== "number" || !Number.isFinite(v) || v < min || v > max) {
    throw new RangeError(`${name} must be a number in ${min}–${max}`);
  }
  return v;
}

async function main(): Promise<void> {
  const opts = parseArgs(process.argv.slice(2).filter((a) => a !== "--"));
  const store: Storage<KvCommand> = opts.store === "memory"
    ? new InMemoryLogStore<KvCommand>()
    : await openDefaultStore<KvCommand>(opts.path!);
  let network: Network;
  try {
    network = await Network.builder(NETWORK_NAME)
      .withListenAddress("127.0.0.1:0")
      .withBootstrap(...opts.bootstrap) // default discovery config: re-announce every 15 s
      .build();
  } catch (err) {
    await store.close?.();
    throw err;
  }
  const kv = new BenchKeyValue();
  const group = network.groups().withKey(opts.key).withStateMachine(kv).withLogStorage(store)
    .withConsensusConfig(consensusConfig(opts.consensus)).join();
  const joinedAt = performance.now();
  const self = network.local().id().toHex();

  let seq = 0;
  const command = (): KvCommand => ({ op: "set", key: `k${seq++ % KEYS}`, value: VALUE });
  const commands = (n: number): KvCommand[] => Array.from({ length: n }, command);

  const quit = new AbortController();
  const leaders: { at: number; leader: string }[] = [];
  let watching: Promise<void> | undefined;
  /** Failover diagnostics: elections and term when armed, role/term changes seen since. */
  let armed = { elections: 0, term: 0 };
  const roles: { at: number; role: string; term: number }[] = [];
  let rolePoll: ReturnType<typeof setInterval> | undefined;

  /** Runs `callers` loops of `call` from now for warmupMs + durationMs; stats of the window. */
  async function load(
    callers: number,
    perCall: number,
    warmupMs: number,
    durationMs: number,
    call: () => Promise<unknown>,
  ) {
    const t0 = performance.now();
    const from = t0 + warmupMs;
    const to = from + durationMs;
    let done = 0;
    let errors = 0;
    let lastError: string | null = null;
    const latencies: number[] = [];
    const loop = async () => {
      for (;;) {
        const start = performance.now();
        if (start >= to || quit.signal.aborted) return;
        try {
          await call();
          const end = performance.now();
          if (end >= from && end <= to) {
            done += perCall;
            latencies.push(end - start);
          }
        } catch (err) {
          errors++;
          lastError = `${(err as Error).name}: ${(err as Error).message}`;
          await sleep(RETRY_MS);
        }
      }
    };
    const all = Promise.all(Array.from({ length: callers }, loop));
    let timer: ReturnType<typeof setTimeout> | undefined;
    const drained = await Promise.race([
      all.then(() => true),
      new Promise<boolean>((
        r,
      ) => (timer = setTimeout(() => r(false), warmupMs + durationMs + DRAIN_MS))),
    ]);
    clearTimeout(timer);
    return {
      ops: done,
      seconds: durationMs / 1000,
      rate: done / (durationMs / 1000),
      latency: summary(latencies),
      errors,
      lastError,
      drained,
    };
  }

  const handle = async (req: Request): Promise<Record<string, unknown>> => {
    switch (req.op) {
      case "status": {
        const leader = group.leader();
        return {
          role: group.isLeader() ? "leader" : leader !== undefined ? "follower" : "none",
          leader: leader?.toHex() ?? null,
          term: group.logPosition().term,
          committed: group.committed(),
          applied: kv.appliedIndex,
          lastIndex: group.logPosition().index,
          bonds: group.bonds().size,
        };
      }
      case "members":
        return await members(store, group.committed());
      case "cpu": {
        const c = process.cpuUsage();
        return {
          at: performance.now(),
          user: c.user,
          system: c.system,
          rss: process.memoryUsage().rss,
        };
      }
      case "write": {
        const callers = num(req, "callers", 1, 10_000);
        const batch = num(req, "batch", 1, 100_000);
        const warmupMs = num(req, "warmupMs", 0, 600_000);
        const durationMs = num(req, "durationMs", 1, 600_000);
        return await load(
          callers,
          batch,
          warmupMs,
          durationMs,
          batch === 1 ? () => group.execute(command()) : () => group.executeMany(commands(batch)),
        );
      }
      case "read": {
        const consistency = req.consistency === "strong" ? Consistency.Strong : Consistency.Weak;
        const warmupMs = num(req, "warmupMs", 0, 600_000);
        const durationMs = num(req, "durationMs", 1, 600_000);
        let n = 0;
        return await load(
          1,
          1,
          warmupMs,
          durationMs,
          () => group.query(`k${n++ % KEYS}`, consistency),
        );
      }
      case "fill": {
        const entries = num(req, "entries", 1, 10_000_000);
        const batch = num(req, "batch", 1, 100_000);
        const callers = num(req, "callers", 1, 1_000);
        const start = performance.now();
        let issued = 0;
        let last = 0;
        const loop = async () => {
          while (issued < entries) {
            const n = Math.min(batch, entries - issued);
            issued += n;
            const range = await group.executeMany(commands(n));
            last = Math.max(last, range.end);
          }
        };
        await Promise.all(Array.from({ length: callers }, loop));
        return { entries: issued, last, seconds: (performance.now() - start) / 1000 };
      }
      case "arm": {
        leaders.length = 0;
        watching ??= (async () => {
          const when = group.when();
          try {
            for (;;) {
              const leader = await when.leaderChanged({ signal: quit.signal });
              leaders.push({ at: Date.now(), leader: leader.toHex() });
            }
          } catch {
            // quitting
          }
        })();
        const m = group.metrics();
        armed = { elections: m.electionsStarted, term: m.term };
        roles.length = 0;
        clearInterval(rolePoll);
        let last = "";
        rolePoll = setInterval(() => {
          const now = group.metrics();
          const key = `${now.role}/${now.term}`;
          if (key !== last && roles.length < 100) {
            roles.push({ at: Date.now(), role: now.role, term: now.term });
          }
          last = key;
        }, ROLE_POLL_MS);
        return { leader: group.leader()?.toHex() ?? null };
      }
      case "probe": {
        const timeoutMs = num(req, "timeoutMs", 1, 600_000);
        const started = Date.now();
        const deadline = started + timeoutMs;
        let wrote: number | undefined;
        let probes = 0;
        let failures = 0;
        while (wrote === undefined && Date.now() < deadline) {
          probes++;
          group.execute(command()).then(
            () => void (wrote ??= Date.now()),
            () => void failures++,
          );
          await sleep(PROBE_EVERY_MS);
        }
        clearInterval(rolePoll);
        const m = group.metrics();
        return {
          started,
          leaders: leaders.slice(),
          wrote: wrote ?? null,
          probes,
          failures,
          elections: m.electionsStarted - armed.elections,
          terms: m.term - armed.term,
          roles: roles.slice(),
        };
      }
      case "waitApplied": {
        const index = num(req, "index", 1, Number.MAX_SAFE_INTEGER);
        const timeoutMs = num(req, "timeoutMs", 1, 600_000);
        await kv.reach(index, AbortSignal.timeout(timeoutMs));
        return {
          applied: kv.appliedIndex,
          firstMs: (kv.firstAppliedAt ?? joinedAt) - joinedAt,
          reachedMs: kv.reachedAt! - joinedAt,
        };
      }
      case "leave":
        void shutdown();
        return {};
      default:
        throw new TypeError(`unknown op ${JSON.stringify(req.op)}`);
    }
  };

  let stopping: Promise<void> | undefined;
  const shutdown = (): Promise<void> => {
    stopping ??= (async () => {
      const timer = setTimeout(() => {
        console.error(`bench node: shutdown took longer than ${SHUTDOWN_MS} ms`);
        process.exit(3);
      }, SHUTDOWN_MS);
      quit.abort();
      clearInterval(rolePoll);
      await group.leave();
      await watching;
      await network.close();
      await store.close?.();
      await profiler?.stop();
      clearTimeout(timer);
      process.exit(0);
    })();
    return stopping;
  };

  const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
  lines.on("line", (line) => {
    if (line.trim() === "") return;
    let req: Request;
    try {
      req = JSON.parse(line) as Request;
    } catch {
      emit({ ok: false, error: "SyntaxError", message: "request is not JSON" });
      return;
    }
    handle(req).then(
      (r) => emit({ id: req.id, ok: true, ...r }),
      (err: Error) => emit({ id: req.id, ok: false, error: err.name, message: err.message }),
    );
  });
  lines.on("close", () => void shutdown());

  emit({
    t: "ready",
    addr: network.local().addr().toString(),
    id: self,
    runtime,
    version,
    joinMs: joinedAt,
  });
}

/** A CPU profiler over `node:inspector`, for Deno nodes (Bun has `--cpu-prof`). */
async function startProfiler(dir: string): Promise<{ stop(): Promise<void> }> {
  const { Session } = await import("node:inspector/promises");
  const { writeFileSync } = await import("node:fs");
  const session = new Session();
  session.connect();
  await session.post("Profiler.enable");
  await session.post("Profiler.setSamplingInterval", { interval: 200 });
  await session.post("Profiler.start");
  return {
    async stop() {
      const { profile } = await session.post("Profiler.stop");
      writeFileSync(`${dir}/deno-${process.pid}.cpuprofile`, JSON.stringify(profile));
      session.disconnect();
    },
  };
}

/** Set on Deno when MOSAIK_BENCH_PROFILE names a directory; written at a graceful shutdown. */
let profiler: { stop(): Promise<void> } | undefined;

if (import.meta.main) {
  try {
    const dir = process.env.MOSAIK_BENCH_PROFILE;
    if (dir && (globalThis as { Deno?: unknown }).Deno !== undefined) {
      profiler = await startProfiler(dir);
    }
    await main();
  } catch (err) {
    emit({ t: "failed", message: err instanceof Error ? err.message : String(err) });
    process.exit(1);
  }
}
