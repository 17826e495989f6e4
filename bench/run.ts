// Cluster benchmark (`npm run bench`): real node processes on loopback QUIC, on Deno and on Bun, 3 and 5 nodes, in-memory and durable stores — write throughput and latency, read latency, failover and catch-up. Reports; never fails on numbers.
//
// Usage: npm run bench -- [--quick | --smoke] [--runtime deno|bun|both] [--nodes 3,5]
//                         [--stores memory,durable] [--out DIR] [--no-write]
//   (or: deno run -A --unstable-net --unstable-kv bench/run.ts …, or bun bench/run.ts …)
//
// Every node is bench/node.ts in its own process on the runtime measured; it
// measures with performance.now() and this file only starts, drives, kills
// and reaps them, aggregates and prints. See BENCH_HELP for what is measured.
// Exit 0 when every measurement ran (whatever the numbers), 1 when the
// harness could not measure something (it says what), 2 for bad flags.
// With MOSAIK_BENCH_PROFILE=<dir> in the environment, Bun nodes run with
// --cpu-prof --cpu-prof-md and Deno nodes profile themselves over
// node:inspector; each writes its .cpuprofile there (clusters are then closed
// gracefully, so that each node exits on its own and writes it).
// `deno run -A bench/profile.ts <dir>` summarizes them.

import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import { join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { GroupKey } from "../mod.ts";
import {
  type ConsensusName,
  FAST_CONSENSUS_VALUES,
  KEY_ENV,
  type Runtime,
  type StoreKind,
} from "./common.ts";

/** The usage text. */
export const BENCH_HELP = `mosaik cluster benchmark

Usage: npm run bench -- [--quick | --smoke] [--runtime deno|bun|both]
                        [--nodes 3,5] [--stores memory,durable] [--cases LIST]
                        [--callers LIST] [--out DIR] [--no-write]

  (no mode)   full: 3 and 5 nodes, both stores, Deno and Bun (default --runtime both),
              5 s per throughput run, 5 failover runs per config, 100 000 catch-up entries;
              writes bench/results/<runtime>-<date>.json and .md
  --quick     3 nodes, both stores, one runtime (default deno), short runs; under 3 minutes;
              writes nothing unless --out is given
  --smoke     3 nodes, memory store, 1 s runs, 1 failover run, 1 000 catch-up entries
              (for the test suite); writes nothing unless --out is given
  --runtime   which runtime the nodes run on: deno, bun or both
  --nodes     node counts, comma-separated (3–7 each)
  --stores    memory (InMemoryLogStore) and/or durable (Deno KV on Deno, SQLite on Bun)
  --cases     which measurements: write, read, catchup, failover (default: all)
  --callers   execute concurrencies, comma-separated (default 1,16,64,256)
  --out DIR   write <runtime>-<date>.json and .md into DIR
  --no-write  print only

Every node is its own process on loopback QUIC, running the KeyValue machine
(set commands of a 32-byte value). Writes are issued by callers on the
leader. Measured: commands/s committed with 1, 16, 64 and 256 concurrent
execute callers and with executeMany batches of 100 (1 and 16 callers);
execute latency; weak and strong query latency on a follower and on the
leader; failover (leader SIGKILLed → new leader → first write committed,
median over runs) with the default ConsensusConfig and a fast one (election
timeout 300 ms); catch-up of a new member joining a group with committed
entries.`;

/** The measurements `--cases` can choose. */
export const BENCH_CASES = ["write", "read", "catchup", "failover"] as const;
/** One of {@link BENCH_CASES}. */
export type BenchCase = typeof BENCH_CASES[number];

/** Bad flags: exit 2. */
class UsageError extends Error {
  override name = "UsageError";
}

/** What one run measures, and how long. */
export interface Plan {
  readonly mode: "full" | "quick" | "smoke";
  readonly runtimes: readonly Runtime[];
  readonly nodes: readonly number[];
  readonly stores: readonly StoreKind[];
  /** Which measurements run. */
  readonly cases: readonly BenchCase[];
  /** execute concurrencies measured. */
  readonly callers: readonly number[];
  /** executeMany concurrencies measured (batches of {@link batch}). */
  readonly batchCallers: readonly number[];
  readonly batch: number;
  readonly warmupMs: number;
  readonly writeMs: number;
  readonly readMs: number;
  readonly failoverRuns: Readonly<Record<ConsensusName, number>>;
  readonly catchUpEntries: number;
  /** How long to wait, before each measurement, for other processes to leave the CPU alone. */
  readonly quietMs: number;
  /** Directory for the result files, or undefined to write none. */
  readonly out: string | undefined;
}

const root = fileURLToPath(new URL("../", import.meta.url));
const nodeScript = fileURLToPath(new URL("./node.ts", import.meta.url));

/** Parses the flags into a plan; throws {@link UsageError}. */
export function parsePlan(args: readonly string[]): Plan & { help: boolean } {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...args],
      strict: true,
      allowPositionals: false,
      options: {
        quick: { type: "boolean" },
        smoke: { type: "boolean" },
        runtime: { type: "string" },
        nodes: { type: "string" },
        stores: { type: "string" },
        cases: { type: "string" },
        callers: { type: "string" },
        out: { type: "string" },
        "no-write": { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
    });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const v = parsed.values;
  if (v.quick && v.smoke) throw new UsageError("--quick and --smoke exclude each other");
  const mode = v.smoke ? "smoke" : v.quick ? "quick" : "full";
  const rt = v.runtime ?? (mode === "full" ? "both" : "deno");
  if (rt !== "deno" && rt !== "bun" && rt !== "both") {
    throw new UsageError(`--runtime must be deno, bun or both, got ${rt}`);
  }
  const runtimes: Runtime[] = rt === "both" ? ["deno", "bun"] : [rt];
  const nodes = v.nodes === undefined
    ? (mode === "full" ? [3, 5] : [3])
    : v.nodes.split(",").map((s) => {
      const n = Number(s);
      if (!/^\d+$/.test(s) || n < 3 || n > 7) {
        throw new UsageError(`--nodes takes counts from 3 to 7, got ${s}`);
      }
      return n;
    });
  const stores = v.stores === undefined
    ? (mode === "smoke" ? ["memory" as const] : ["memory" as const, "durable" as const])
    : v.stores.split(",").map((s) => {
      if (s !== "memory" && s !== "durable") {
        throw new UsageError(`--stores takes memory and durable, got ${s}`);
      }
      return s;
    });
  const cases = v.cases === undefined ? [...BENCH_CASES] : v.cases.split(",").map((s) => {
    const c = BENCH_CASES.find((k) => k === s);
    if (c === undefined) throw new UsageError(`--cases takes ${BENCH_CASES.join(", ")}, got ${s}`);
    return c;
  });
  const callers = v.callers === undefined ? [1, 16, 64, 256] : v.callers.split(",").map((s) => {
    const n = Number(s);
    if (!/^\d+$/.test(s) || n < 1 || n > 4096) {
      throw new UsageError(`--callers takes counts from 1 to 4096, got ${s}`);
    }
    return n;
  });
  const out = v["no-write"]
    ? undefined
    : v.out ?? (mode === "full" ? join(root, "bench", "results") : undefined);
  const common = { runtimes, nodes, stores, cases, out, callers, batch: 100 };
  const help = v.help === true;
  if (mode === "full") {
    return {
      ...common,
      mode,
      help,
      batchCallers: [1, 16],
      warmupMs: 1_000,
      writeMs: 5_000,
      readMs: 3_000,
      failoverRuns: { default: 5, fast: 5 },
      catchUpEntries: 100_000,
      quietMs: 60_000,
    };
  }
  if (mode === "quick") {
    return {
      ...common,
      mode,
      help,
      batchCallers: [1, 16],
      warmupMs: 300,
      writeMs: 1_500,
      readMs: 1_000,
      failoverRuns: { default: 3, fast: 3 },
      catchUpEntries: 20_000,
      quietMs: 5_000,
    };
  }
  return {
    ...common,
    mode,
    help,
    batchCallers: [1, 16],
    warmupMs: 200,
    writeMs: 1_000,
    readMs: 1_000,
    failoverRuns: { default: 1, fast: 1 },
    catchUpEntries: 1_000,
    quietMs: 0,
  };
}

// ---------------------------------------------------------------- processes

/** Bound on a node's start: spawn, module load, network, join. */
const START_MS = 30_000;
/** Bound on a cluster agreeing on a leader with every node a voter. */
const FORM_MS = 60_000;
/** Default bound on a request's round trip. */
const REQUEST_MS = 15_000;
/** Bound on a killed node's exit. */
const EXIT_MS = 10_000;
/** Bound on failover: a new leader and a committed write after the kill. */
const FAILOVER_MS = 30_000;

/** A measurement that could not be taken: the harness failed (exit 1). */
class HarnessError extends Error {
  override name = "HarnessError";
}

/** CPU profile directory for every node, from MOSAIK_BENCH_PROFILE (Bun: --cpu-prof; Deno: bench/node.ts). */
const profileDir = process.env.MOSAIK_BENCH_PROFILE;

/** Every child still running and every store directory, so that any failure or ^C cleans up. */
const live = new Set<ChildProcess>();
const dirs = new Set<string>();

function reapAll(): void {
  for (const c of live) c.kill("SIGKILL");
}

function removeDirs(): void {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  dirs.clear();
}

/** `promise`, or a {@link HarnessError} naming `what` after `ms`. */
async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new HarnessError(`timed out after ${ms} ms: ${what}`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

type Reply = Record<string, unknown> & { ok: boolean };

/** One bench/node.ts child. */
class BenchNode {
  readonly label: string;
  readonly ready: Promise<Record<string, unknown>>;
  readonly exited: Promise<{ code: number | null; signal: string | null }>;
  id = "";
  addr = "";
  version = "";
  readonly #child: ChildProcess;
  readonly #pending = new Map<number, (r: Reply) => void>();
  #next = 1;
  #buffer = "";
  #stderr = "";
  #gone = false;

  constructor(label: string, runtime: Runtime, key: string, args: string[]) {
    this.label = `${label} (${runtime})`;
    const pinned = join(root, "node_modules", ".bin", runtime);
    const bin = existsSync(pinned) ? pinned : runtime;
    const cmdArgs = runtime === "deno"
      ? [
        "run",
        "--allow-all",
        "--unstable-net",
        "--unstable-kv",
        "--no-prompt",
        nodeScript,
        ...args,
      ]
      : [
        ...(profileDir ? ["--cpu-prof", "--cpu-prof-md", `--cpu-prof-dir=${profileDir}`] : []),
        nodeScript,
        ...args,
      ];
    let readyResolve!: (v: Record<string, unknown>) => void;
    let readyReject!: (e: Error) => void;
    this.ready = new Promise((res, rej) => {
      readyResolve = res;
      readyReject = rej;
    });
    this.ready.catch(() => {});
    this.#child = spawn(bin, cmdArgs, {
      cwd: root,
      stdio: ["pipe", "pipe", "pipe"],
      env: { ...process.env, [KEY_ENV]: key, NO_COLOR: "1", DENO_NO_UPDATE_CHECK: "1" },
    });
    live.add(this.#child);
    this.#child.stdin?.on("error", () => {});
    this.#child.stdout?.setEncoding("utf8");
    this.#child.stderr?.setEncoding("utf8");
    this.#child.stderr?.on("data", (t: string) => (this.#stderr = (this.#stderr + t).slice(-3000)));
    this.#child.stdout?.on("data", (t: string) => {
      this.#buffer += t;
      for (let nl = this.#buffer.indexOf("\n"); nl >= 0; nl = this.#buffer.indexOf("\n")) {
        const line = this.#buffer.slice(0, nl);
        this.#buffer = this.#buffer.slice(nl + 1);
        let msg: Record<string, unknown>;
        try {
          msg = JSON.parse(line);
        } catch {
          this.#stderr = (this.#stderr + `\n[stdout] ${line}`).slice(-3000);
          continue;
        }
        if (msg.t === "ready") {
          this.id = String(msg.id);
          this.addr = String(msg.addr);
          this.version = String(msg.version);
          readyResolve(msg);
        } else if (msg.t === "failed") {
          readyReject(new HarnessError(`${this.label} failed to start: ${msg.message}`));
        } else if (typeof msg.id === "number") {
          const resolve = this.#pending.get(msg.id);
          this.#pending.delete(msg.id);
          resolve?.(msg as Reply);
        }
      }
    });
    this.exited = new Promise((resolve) => {
      this.#child.once("error", (err) => (this.#stderr += `\ncannot start ${bin}: ${err.message}`));
      this.#child.once("close", (code, signal) => {
        this.#gone = true;
        live.delete(this.#child);
        readyReject(new HarnessError(`${this.label} exited (code ${code}, signal ${signal})`));
        for (const [id, r] of this.#pending) {
          r({ ok: false, id, error: "Exited", message: `${this.label} exited` });
        }
        this.#pending.clear();
        resolve({ code, signal });
      });
    });
  }

  get stderr(): string {
    return this.#stderr.trim();
  }

  /** Sends a request; resolves with its reply, or a HarnessError after `ms`. */
  async request(fields: Record<string, unknown>, ms = REQUEST_MS): Promise<Reply> {
    if (this.#gone) throw new HarnessError(`${this.label} has exited`);
    const id = this.#next++;
    const reply = new Promise<Reply>((resolve) => this.#pending.set(id, resolve));
    this.#child.stdin?.write(JSON.stringify({ id, ...fields }) + "\n");
    try {
      return await within(reply, ms, `${this.label} answering ${fields.op}`);
    } finally {
      this.#pending.delete(id);
    }
  }

  /** Like {@link request}, but a failed reply is a HarnessError. */
  async call(fields: Record<string, unknown>, ms = REQUEST_MS): Promise<Reply> {
    const r = await this.request(fields, ms);
    if (!r.ok) {
      throw new HarnessError(
        `${this.label} ${JSON.stringify(fields)}: ${r.error}: ${r.message}`,
      );
    }
    return r;
  }

  /** Closes stdin: the node leaves the group and exits (bounded), then SIGKILL if it has not. */
  async stop(): Promise<void> {
    this.#child.stdin?.end();
    await within(this.exited, 15_000, `${this.label} to leave and exit`).catch(() => {});
    await this.reap();
  }

  /** SIGKILL, without waiting. */
  kill(): void {
    if (!this.#gone) this.#child.kill("SIGKILL");
  }

  /** SIGKILL, then waits for the exit (bounded). */
  async reap(): Promise<void> {
    this.kill();
    await within(this.exited, EXIT_MS, `${this.label} to exit after SIGKILL`).catch(() => {});
  }
}

/** Status fields a node reports. */
interface Status {
  role: string;
  leader: string | null;
  committed: number;
  applied: number;
  bonds: number;
}

/** A group of bench nodes, started together, with their stores in one temporary directory. */
class Cluster {
  readonly nodes: BenchNode[] = [];
  readonly key = GroupKey.generate().toHex();
  readonly #dir: string;
  #count = 0;
  #leaderId = "";

  constructor(
    readonly runtime: Runtime,
    readonly store: StoreKind,
    readonly consensus: ConsensusName,
  ) {
    this.#dir = mkdtempSync(join(os.tmpdir(), "mosaik-bench-"));
    dirs.add(this.#dir);
  }

  /** Starts one more node, bootstrapping from `bootstrap`; resolves when it has joined. */
  async add(bootstrap: readonly string[]): Promise<BenchNode> {
    const name = `n${++this.#count}`;
    const args = ["--store", this.store, "--consensus", this.consensus];
    if (this.store === "durable") args.push("--path", join(this.#dir, `${name}.db`));
    for (const b of bootstrap) args.push("--bootstrap", b);
    const node = new BenchNode(name, this.runtime, this.key, args);
    this.nodes.push(node);
    await within(node.ready, START_MS, `${node.label} to start`);
    return node;
  }

  /** Starts `n` nodes: the first, then the others bootstrapping from it; waits until formed. */
  async start(n: number): Promise<void> {
    const first = await this.add([]);
    await Promise.all(Array.from({ length: n - 1 }, () => this.add([first.addr])));
    await this.formed();
  }

  /** Waits until all nodes agree on a leader, are bonded to each other and are all voters. */
  async formed(): Promise<void> {
    const deadline = Date.now() + FORM_MS;
    const n = this.nodes.length;
    let last = "";
    while (Date.now() < deadline) {
      const st = (await Promise.all(this.nodes.map((p) =>
        p.call({ op: "status" })
      ))) as unknown as Status[];
      last = st.map((s, i) => `${this.nodes[i]!.label}: ${JSON.stringify(s)}`).join("\n");
      const leader = st[0]!.leader;
      const agreed = leader !== null && st.every((s) => s.leader === leader) &&
        st.some((s, i) => s.role === "leader" && this.nodes[i]!.id === leader) &&
        st.every((s) => s.bonds === n - 1);
      if (agreed) {
        this.#leaderId = leader;
        const ms = await Promise.all(this.nodes.map((p) => p.call({ op: "members" })));
        last += "\n" + ms.map((m) => JSON.stringify([m.voters, m.learners])).join("\n");
        if (
          ms.every((m) =>
            (m.voters as string[]).length === n && (m.learners as string[]).length === 0
          )
        ) {
          // One write through the leader: the group commits.
          await this.leader().call({ op: "fill", entries: 1, batch: 1, callers: 1 });
          return;
        }
      }
      await sleep(100);
    }
    throw new HarnessError(`the group did not form in ${FORM_MS / 1000} s:\n${last}`);
  }

  /** The node every node names as leader, by the latest statuses. */
  leader(): BenchNode {
    const l = this.#leaderId;
    const node = this.nodes.find((p) => p.id === l);
    if (node === undefined) throw new HarnessError("no known leader");
    return node;
  }

  /** Refreshes the leader from every running node's status; throws unless they agree. */
  async refreshLeader(nodes: readonly BenchNode[] = this.nodes): Promise<BenchNode> {
    const deadline = Date.now() + FORM_MS;
    for (;;) {
      const st = (await Promise.all(nodes.map((p) =>
        p.call({ op: "status" })
      ))) as unknown as Status[];
      const leader = st[0]!.leader;
      if (leader !== null && st.every((s) => s.leader === leader)) {
        this.#leaderId = leader;
        const node = nodes.find((p) => p.id === leader);
        if (node !== undefined) return node;
      }
      if (Date.now() > deadline) throw new HarnessError("the nodes do not agree on a leader");
      await sleep(50);
    }
  }

  /** Kills every node and removes the stores. */
  async close(): Promise<void> {
    // A profiled process writes its profile when it exits on its own.
    await Promise.all(this.nodes.map((p) => (profileDir ? p.stop() : p.reap())));
    rmSync(this.#dir, { recursive: true, force: true });
    dirs.delete(this.#dir);
  }

  /** The stderr tails of the nodes, for failure messages. */
  stderr(): string {
    return this.nodes.filter((p) => p.stderr !== "").map((p) =>
      `--- ${p.label} stderr ---\n${p.stderr}`
    )
      .join("\n");
  }
}

// ---------------------------------------------------------------- measurements

/** Latency percentiles (ms), as a node reports them. */
interface Latency {
  n: number;
  p50: number | null;
  p90: number | null;
  p99: number | null;
  max: number | null;
  mean: number | null;
}

/** A load run's result, as a node reports it. */
interface LoadResult {
  ops: number;
  seconds: number;
  rate: number;
  latency: Latency;
  errors: number;
  lastError: string | null;
  drained: boolean;
}

/** CPU use of one node during a run, in percent of one core. */
interface CpuShare {
  node: string;
  role: "leader" | "follower";
  percent: number;
}

/** One write case. */
interface WriteRow extends LoadResult {
  case: string;
  api: "execute" | "executeMany";
  callers: number;
  batch: number;
  cpu: CpuShare[];
  /** Busy share of the whole machine (all cores, every process) during the run, in %. */
  machineBusy: number | null;
  /** CPU of processes other than the benchmark's during the run, in % of one core. */
  others: number | null;
}

/** One read case. */
interface ReadRow extends LoadResult {
  case: string;
  consistency: "weak" | "strong";
  on: "follower" | "leader";
  /** CPU of processes other than the benchmark's during the run, in % of one core. */
  others: number | null;
}

/** One failover run (ms after the SIGKILL). */
interface FailoverRun {
  elected: number | null;
  firstWrite: number | null;
  /** Elections the survivors started (summed), and terms the group went through. */
  elections?: number;
  terms?: number;
  /** Each survivor's role/term changes, ms after the kill. */
  timeline?: string[];
  error?: string;
}

interface FailoverResult {
  consensus: ConsensusName;
  runs: FailoverRun[];
  medianElected: number | null;
  medianFirstWrite: number | null;
}

interface CatchUpResult {
  entries: number;
  fillSeconds: number;
  fillRate: number;
  /** ms from the new member's join() to its first applied entry and to the last one. */
  firstMs: number;
  totalMs: number;
  rate: number;
}

/** Everything measured for one (nodes, store) configuration. */
interface ConfigResult {
  nodes: number;
  store: StoreKind;
  storeName: string;
  writes: WriteRow[];
  reads: ReadRow[];
  failover: FailoverResult[];
  catchUp: CatchUpResult | null;
  /** os.loadavg() when this configuration started and when it ended. */
  loadAverage: { start: number[]; end: number[] };
  errors: string[];
}

function log(text: string): void {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${text}\n`);
}

const storeName = (rt: Runtime, store: StoreKind) =>
  store === "memory" ? "memory" : rt === "deno" ? "Deno KV" : "SQLite";

/** Busy and total jiffies of the whole machine from /proc/stat, or undefined off Linux. */
function machineTicks(): { busy: number; total: number } | undefined {
  try {
    // user nice system idle iowait irq softirq steal (guest time is already in user and nice)
    const f = readFileSync("/proc/stat", "utf8").split("\n")[0]!.trim().split(/\s+/).slice(1, 9)
      .map(Number);
    const total = f.reduce((a, b) => a + b, 0);
    return { busy: total - (f[3] ?? 0) - (f[4] ?? 0), total };
  } catch {
    return undefined;
  }
}

/** CPU (ms) this orchestrator process has used. */
const ownCpuMs = () => {
  const c = process.cpuUsage();
  return (c.user + c.system) / 1000;
};

/** A window over which the machine's CPU use is split into the nodes', this process's and everything else's. */
class CpuWindow {
  readonly #nodes: readonly BenchNode[];
  readonly #before: { at: number; us: number }[];
  readonly #ticks = machineTicks();
  readonly #own = ownCpuMs();
  readonly #wall = performance.now();

  private constructor(nodes: readonly BenchNode[], before: { at: number; us: number }[]) {
    this.#nodes = nodes;
    this.#before = before;
  }

  static async open(nodes: readonly BenchNode[]): Promise<CpuWindow> {
    return new CpuWindow(nodes, await cpuSample(nodes));
  }

  /** Per node % of one core; machine busy % (all cores); others = the rest, in % of one core. */
  async close(): Promise<{ nodes: number[]; machineBusy: number | null; others: number | null }> {
    const after = await cpuSample(this.#nodes);
    const ticks = machineTicks();
    const own = ownCpuMs() - this.#own;
    const wall = performance.now() - this.#wall;
    const nodes = this.#nodes.map((_, i) =>
      ((after[i]!.us - this.#before[i]!.us) / 1000) / (after[i]!.at - this.#before[i]!.at) * 100
    );
    if (this.#ticks === undefined || ticks === undefined || ticks.total <= this.#ticks.total) {
      return { nodes, machineBusy: null, others: null };
    }
    const machineBusy = (ticks.busy - this.#ticks.busy) / (ticks.total - this.#ticks.total) * 100;
    const others = machineBusy * os.cpus().length - nodes.reduce((a, b) => a + b, 0) -
      own / wall * 100;
    return { nodes, machineBusy, others: Math.max(0, others) };
  }
}

/** Other processes may use up to this much CPU (% of one core) for the machine to count as quiet. */
const QUIET_PERCENT = 25;

/**
 * Waits, at most `ms`, until processes other than the benchmark's use less
 * than {@link QUIET_PERCENT} of a core (measured over half a second); other
 * work on the machine (a test run, a build) skews every number. Resolves with
 * the last share measured.
 */
async function quiet(nodes: readonly BenchNode[], ms: number): Promise<number | null> {
  const deadline = Date.now() + ms;
  let said = false;
  for (;;) {
    const w = await CpuWindow.open(nodes);
    await sleep(500);
    const { others } = await w.close();
    if (others === null || others < QUIET_PERCENT || Date.now() >= deadline) {
      if (said) {
        log(
          others !== null && others >= QUIET_PERCENT
            ? `  still busy after ${ms / 1000} s (others ${
              Math.round(others)
            }% of a core); measuring anyway`
            : `  quiet again`,
        );
      }
      return others;
    }
    if (!said) log(`  waiting for other processes to calm down (${Math.round(others)}% of a core)`);
    said = true;
  }
}

async function cpuSample(nodes: readonly BenchNode[]) {
  return await Promise.all(nodes.map(async (p) => {
    const r = await p.call({ op: "cpu" });
    return { at: r.at as number, us: (r.user as number) + (r.system as number) };
  }));
}

/** Runs one write case through the leader, with CPU use of every node. */
async function writeCase(
  cluster: Cluster,
  plan: Plan,
  api: "execute" | "executeMany",
  callers: number,
): Promise<WriteRow> {
  const leader = await cluster.refreshLeader();
  const batch = api === "execute" ? 1 : plan.batch;
  await quiet(cluster.nodes, plan.quietMs);
  const window = await CpuWindow.open(cluster.nodes);
  const r = await leader.call(
    { op: "write", callers, batch, warmupMs: plan.warmupMs, durationMs: plan.writeMs },
    plan.warmupMs + plan.writeMs + 30_000,
  );
  const { nodes, machineBusy, others } = await window.close();
  const cpu = cluster.nodes.map((p, i): CpuShare => ({
    node: p.label,
    role: p === leader ? "leader" : "follower",
    percent: nodes[i]!,
  }));
  const label = api === "execute"
    ? `execute, ${callers} caller${callers === 1 ? "" : "s"}`
    : `executeMany ×${batch}, ${callers} caller${callers === 1 ? "" : "s"}`;
  return {
    case: label,
    api,
    callers,
    batch,
    cpu,
    machineBusy,
    others,
    ...(r as unknown as LoadResult),
  };
}

async function readCase(
  cluster: Cluster,
  plan: Plan,
  consistency: "weak" | "strong",
  on: "follower" | "leader",
): Promise<ReadRow> {
  const leader = await cluster.refreshLeader();
  const node = on === "leader" ? leader : cluster.nodes.find((p) => p !== leader)!;
  await quiet(cluster.nodes, plan.quietMs);
  const window = await CpuWindow.open(cluster.nodes);
  const r = await node.call(
    { op: "read", consistency, warmupMs: plan.warmupMs, durationMs: plan.readMs },
    plan.warmupMs + plan.readMs + 30_000,
  );
  const { others } = await window.close();
  return {
    case: `${consistency} query on the ${on}`,
    consistency,
    on,
    others,
    ...(r as unknown as LoadResult),
  };
}

/** Fills the group with `entries` commands (executeMany batches of 100), then times a new member's catch-up. */
async function catchUp(cluster: Cluster, plan: Plan): Promise<CatchUpResult> {
  const leader = await cluster.refreshLeader();
  await quiet(cluster.nodes, plan.quietMs);
  const fillMs = Math.max(60_000, plan.catchUpEntries); // ≥ 1 000 entries/s or give up
  const fill = await leader.call(
    { op: "fill", entries: plan.catchUpEntries, batch: plan.batch, callers: 8 },
    fillMs,
  );
  // The last filled command: a user command, so the new member's machine applies it.
  const target = fill.last as number;
  log(
    `  filled ${fill.entries} entries in ${
      (fill.seconds as number).toFixed(1)
    } s; a new member joins`,
  );
  await quiet(cluster.nodes, plan.quietMs);
  const joiner = await cluster.add(cluster.nodes.map((p) => p.addr));
  const timeoutMs = Math.max(60_000, target * 5); // ≥ 200 entries/s or give up
  const r = await joiner.call({ op: "waitApplied", index: target, timeoutMs }, timeoutMs + 5_000);
  const totalMs = r.reachedMs as number;
  return {
    entries: target,
    fillSeconds: fill.seconds as number,
    fillRate: (fill.entries as number) / (fill.seconds as number),
    firstMs: r.firstMs as number,
    totalMs,
    rate: target / (totalMs / 1000),
  };
}

/** One failover run on a fresh cluster: SIGKILL the leader, time the new leader and the first committed write. */
async function failoverRun(
  runtime: Runtime,
  store: StoreKind,
  consensus: ConsensusName,
  n: number,
  plan: Plan,
): Promise<FailoverRun> {
  const cluster = new Cluster(runtime, store, consensus);
  try {
    await cluster.start(n);
    const victim = await cluster.refreshLeader();
    const survivors = cluster.nodes.filter((p) => p !== victim);
    await quiet(cluster.nodes, plan.quietMs);
    await Promise.all(survivors.map((p) => p.call({ op: "arm" })));
    await sleep(50);
    const killedAt = Date.now();
    victim.kill();
    const probes = await Promise.all(
      survivors.map((p) => p.call({ op: "probe", timeoutMs: FAILOVER_MS }, FAILOVER_MS + 10_000)),
    );
    const elected = probes.flatMap((r) =>
      (r.leaders as { at: number; leader: string }[]).filter((l) =>
        l.leader !== victim.id && l.at >= killedAt
      ).map((l) => l.at)
    );
    const wrote = probes.map((r) => r.wrote).filter((w): w is number => typeof w === "number");
    const run: FailoverRun = {
      elected: elected.length > 0 ? Math.min(...elected) - killedAt : null,
      firstWrite: wrote.length > 0 ? Math.min(...wrote) - killedAt : null,
      elections: probes.reduce((a, r) => a + (r.elections as number), 0),
      terms: Math.max(...probes.map((r) => r.terms as number)),
      timeline: probes.map((r, i) =>
        `${survivors[i]!.label}: ` +
        (r.roles as { at: number; role: string; term: number }[])
          .map((x) => `${x.at - killedAt} ${x.role}@${x.term}`).join(", ")
      ),
    };
    if (run.firstWrite === null) run.error = `no write committed within ${FAILOVER_MS / 1000} s`;
    return run;
  } catch (err) {
    return {
      elected: null,
      firstWrite: null,
      error: `${(err as Error).message}\n${cluster.stderr()}`,
    };
  } finally {
    await cluster.close();
  }
}

function median(values: readonly number[]): number | null {
  if (values.length === 0) return null;
  const s = [...values].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Measurements disturbed by other processes are taken again this many times at most. */
const RETRIES = 2;

/**
 * Runs `measure` again (at most {@link RETRIES} times, and only when the
 * plan waits for quiet) while processes other than the benchmark's used more
 * than {@link QUIET_PERCENT} of a core during it; the last result is kept and
 * the table marks it if it was still disturbed.
 */
async function undisturbed<T extends { others: number | null; case: string }>(
  plan: Plan,
  measure: () => Promise<T>,
): Promise<T> {
  for (let attempt = 0;; attempt++) {
    const row = await measure();
    if (row.others === null || row.others < QUIET_PERCENT) return row;
    if (plan.quietMs === 0 || attempt >= RETRIES) return row;
    log(`  ${row.case}: other processes took ${Math.round(row.others)}% of a core; again`);
  }
}

/** Everything for one (runtime, nodes, store). */
async function benchConfig(
  runtime: Runtime,
  n: number,
  store: StoreKind,
  plan: Plan,
  versions: Map<Runtime, string>,
): Promise<ConfigResult> {
  const result: ConfigResult = {
    nodes: n,
    store,
    storeName: storeName(runtime, store),
    writes: [],
    reads: [],
    failover: [],
    catchUp: null,
    loadAverage: { start: os.loadavg(), end: [] },
    errors: [],
  };
  const runs = (c: BenchCase) => plan.cases.includes(c);
  if (runs("write") || runs("read")) {
    await measureCluster(runtime, n, store, plan, versions, result);
  }
  if (runs("catchup")) await measureCatchUp(runtime, n, store, plan, result);
  if (runs("failover")) await measureFailover(runtime, n, store, plan, result);
  result.loadAverage.end = os.loadavg();
  return result;
}

/** Records a failed measurement in `result` (and says so), with the nodes' stderr. */
async function attempt(
  result: ConfigResult,
  what: string,
  fn: () => Promise<void>,
  cluster?: Cluster,
): Promise<void> {
  try {
    await fn();
  } catch (err) {
    const msg = `${what}: ${(err as Error).message}${cluster ? `\n${cluster.stderr()}` : ""}`;
    log(`  FAILED ${msg}`);
    result.errors.push(msg);
  }
}

/** Writes and reads, on one cluster with the default config. */
async function measureCluster(
  runtime: Runtime,
  n: number,
  store: StoreKind,
  plan: Plan,
  versions: Map<Runtime, string>,
  result: ConfigResult,
): Promise<void> {
  log(
    `${runtime}, ${n} nodes, ${result.storeName}: starting the cluster (default ConsensusConfig)`,
  );
  const cluster = new Cluster(runtime, store, "default");
  try {
    let formed = false;
    await attempt(result, "starting the cluster", async () => {
      await cluster.start(n);
      versions.set(runtime, cluster.nodes[0]!.version);
      formed = true;
    }, cluster);
    if (formed) {
      for (const callers of plan.cases.includes("write") ? plan.callers : []) {
        await attempt(result, `execute with ${callers} callers`, async () => {
          const row = await undisturbed(plan, () => writeCase(cluster, plan, "execute", callers));
          result.writes.push(row);
          log(
            `  ${row.case}: ${fmtRate(row.rate)}, p50 ${
              fmtMs(row.latency.p50)
            }, errors ${row.errors}`,
          );
        }, cluster);
      }
      for (const callers of plan.cases.includes("write") ? plan.batchCallers : []) {
        await attempt(result, `executeMany with ${callers} callers`, async () => {
          const row = await undisturbed(
            plan,
            () => writeCase(cluster, plan, "executeMany", callers),
          );
          result.writes.push(row);
          log(
            `  ${row.case}: ${fmtRate(row.rate)}, p50 ${
              fmtMs(row.latency.p50)
            }, errors ${row.errors}`,
          );
        }, cluster);
      }
      for (const consistency of plan.cases.includes("read") ? ["weak", "strong"] as const : []) {
        for (const on of ["follower", "leader"] as const) {
          await attempt(result, `${consistency} reads on the ${on}`, async () => {
            const row = await undisturbed(plan, () => readCase(cluster, plan, consistency, on));
            result.reads.push(row);
            log(`  ${row.case}: p50 ${fmtMs(row.latency.p50)}, p99 ${fmtMs(row.latency.p99)}`);
          }, cluster);
        }
      }
    }
  } finally {
    await cluster.close();
  }
}

/** Catch-up, on a cluster of its own, so that its log holds only the filled entries. */
async function measureCatchUp(
  runtime: Runtime,
  n: number,
  store: StoreKind,
  plan: Plan,
  result: ConfigResult,
): Promise<void> {
  log(`${runtime}, ${n} nodes, ${result.storeName}: catch-up cluster`);
  const fresh = new Cluster(runtime, store, "default");
  try {
    await attempt(result, "catch-up", async () => {
      await fresh.start(n);
      result.catchUp = await catchUp(fresh, plan);
      log(`  catch-up: ${fmtRate(result.catchUp.rate)} (${fmtMs(result.catchUp.totalMs)})`);
    }, fresh);
  } finally {
    await fresh.close();
  }
}

/** Failover runs with both configs, each on a fresh cluster. */
async function measureFailover(
  runtime: Runtime,
  n: number,
  store: StoreKind,
  plan: Plan,
  result: ConfigResult,
): Promise<void> {
  for (const consensus of ["default", "fast"] as const) {
    const runs: FailoverRun[] = [];
    for (let i = 0; i < plan.failoverRuns[consensus]; i++) {
      const run = await failoverRun(runtime, store, consensus, n, plan);
      runs.push(run);
      log(
        `  failover (${consensus}) run ${i + 1}: ${
          run.error ??
            `new leader ${fmtMs(run.elected)}, first write ${fmtMs(run.firstWrite)}, ` +
              `${run.elections} election(s) started, ${run.terms} term(s)`
        }`,
      );
      if (run.error !== undefined) {
        result.errors.push(`failover (${consensus}) run ${i + 1}: ${run.error}`);
      }
    }
    result.failover.push({
      consensus,
      runs,
      medianElected: median(runs.flatMap((r) => r.elected === null ? [] : [r.elected])),
      medianFirstWrite: median(runs.flatMap((r) => r.firstWrite === null ? [] : [r.firstWrite])),
    });
  }
}

// ---------------------------------------------------------------- report

/** A duration in ms, in the tables' style (µs below 0.1 ms, s from 10 s). */
export function fmtMs(v: number | null | undefined): string {
  if (v === null || v === undefined) return "–";
  if (v < 0.0005) return "<1 µs";
  if (v < 0.1) return `${Math.round(v * 1000)} µs`;
  if (v < 1) return `${v.toFixed(2)} ms`;
  if (v < 10) return `${v.toFixed(1)} ms`;
  if (v < 10_000) return `${Math.round(v)} ms`;
  return `${(v / 1000).toFixed(1)} s`;
}

/** A rate per second, in the tables' style. */
export function fmtRate(v: number | null | undefined): string {
  if (v === null || v === undefined) return "–";
  return `${Math.round(v).toLocaleString("en-US")}/s`;
}

/** The machine the benchmark runs on. */
export function machine(): Record<string, unknown> {
  let cpu = os.cpus()[0]?.model ?? "unknown";
  try {
    const m = /^model name\s*:\s*(.+)$/m.exec(readFileSync("/proc/cpuinfo", "utf8"));
    if (m) cpu = m[1]!.trim();
  } catch {
    // not Linux
  }
  let distro: string | undefined;
  try {
    distro = /^PRETTY_NAME="?([^"\n]+)"?$/m.exec(readFileSync("/etc/os-release", "utf8"))?.[1];
  } catch {
    // no os-release
  }
  return {
    cpu,
    cores: os.cpus().length,
    memoryGiB: Math.round(os.totalmem() / 2 ** 30 * 10) / 10,
    os: `${os.type()} ${os.release()} ${os.arch()}${distro ? ` (${distro})` : ""}`,
  };
}

function git(): { commit: string; dirty: string[] } {
  const rev = spawnSync("git", ["rev-parse", "--short", "HEAD"], { cwd: root, encoding: "utf8" });
  const st = spawnSync("git", [
    "status",
    "--porcelain",
    "--",
    "lib",
    "storage",
    "transport",
    "mod.ts",
  ], {
    cwd: root,
    encoding: "utf8",
  });
  return {
    commit: rev.status === 0 ? rev.stdout.trim() : "unknown",
    dirty: st.status === 0
      ? st.stdout.split("\n").filter((l) => l.trim() !== "").map((l) => l.slice(3))
      : [],
  };
}

/** The row labels of the markdown table, in order (the smoke test checks each is present). */
export const ROWS = [
  "write: execute, 1 caller",
  "write latency: execute, 1 caller (p50 / p99)",
  "write: execute, 16 callers",
  "write: execute, 64 callers",
  "write: execute, 256 callers",
  "write: executeMany ×100, 1 caller",
  "write: executeMany ×100, 16 callers",
  "read: weak query on a follower (p50 / p99)",
  "read: weak query on the leader (p50 / p99)",
  "read: strong query on a follower (p50 / p99)",
  "read: strong query on the leader (p50 / p99)",
  "failover, default config: new leader / first write",
  "failover, fast config: new leader / first write",
  "catch-up: new member, entries/s (total time)",
] as const;

function writeCell(c: ConfigResult, api: "execute" | "executeMany", callers: number): string {
  const w = c.writes.find((r) => r.api === api && r.callers === callers);
  if (w === undefined) return "not run";
  const err = w.errors > 0 ? `, ${w.errors} errors` : "";
  return `${fmtRate(w.rate)} (p50 ${fmtMs(w.latency.p50)}${err})${mark(w.others)}`;
}

function readCell(c: ConfigResult, consistency: string, on: string): string {
  const r = c.reads.find((x) => x.consistency === consistency && x.on === on);
  if (r === undefined) return "not run";
  return `${fmtMs(r.latency.p50)} / ${fmtMs(r.latency.p99)}${mark(r.others)}`;
}

/** A mark on a cell measured while other processes used more than QUIET_PERCENT of a core. */
const mark = (others: number | null) => others !== null && others >= QUIET_PERCENT ? " ⚠" : "";

function failoverCell(c: ConfigResult, consensus: ConsensusName): string {
  const f = c.failover.find((x) => x.consensus === consensus);
  if (f === undefined || f.runs.length === 0) return "not run";
  const failed = f.runs.filter((r) => r.error !== undefined).length;
  return `${fmtMs(f.medianElected)} / ${fmtMs(f.medianFirstWrite)}${
    failed ? ` (${failed} failed)` : ""
  }`;
}

/** The markdown table of one runtime's results. */
export function markdown(configs: readonly ConfigResult[]): string {
  const head = ["", ...configs.map((c) => `${c.nodes} nodes, ${c.storeName}`)];
  const cells = (f: (c: ConfigResult) => string) => configs.map(f);
  const rows: string[][] = [
    [ROWS[0], ...cells((c) => writeCell(c, "execute", 1))],
    [
      ROWS[1],
      ...cells((c) => {
        const w = c.writes.find((r) => r.api === "execute" && r.callers === 1);
        return w ? `${fmtMs(w.latency.p50)} / ${fmtMs(w.latency.p99)}${mark(w.others)}` : "not run";
      }),
    ],
    [ROWS[2], ...cells((c) => writeCell(c, "execute", 16))],
    [ROWS[3], ...cells((c) => writeCell(c, "execute", 64))],
    [ROWS[4], ...cells((c) => writeCell(c, "execute", 256))],
    [ROWS[5], ...cells((c) => writeCell(c, "executeMany", 1))],
    [ROWS[6], ...cells((c) => writeCell(c, "executeMany", 16))],
    [ROWS[7], ...cells((c) => readCell(c, "weak", "follower"))],
    [ROWS[8], ...cells((c) => readCell(c, "weak", "leader"))],
    [ROWS[9], ...cells((c) => readCell(c, "strong", "follower"))],
    [ROWS[10], ...cells((c) => readCell(c, "strong", "leader"))],
    [ROWS[11], ...cells((c) => failoverCell(c, "default"))],
    [ROWS[12], ...cells((c) => failoverCell(c, "fast"))],
    [
      ROWS[13],
      ...cells((c) => {
        const u = c.catchUp;
        return u ? `${fmtRate(u.rate)} (${fmtMs(u.totalMs)})` : "not run";
      }),
    ],
  ];
  const line = (r: readonly string[]) => `| ${r.join(" | ")} |`;
  const table = [
    line(head),
    line(head.map((_, i) => (i === 0 ? "---" : "---:"))),
    ...rows.map(line),
  ];
  // CPU during the write runs: where the time goes.
  const cpuHead = [
    "CPU, % of one core: leader / followers · other processes",
    ...head.slice(1),
  ];
  const cpuRows = (configs[0]?.writes ?? []).map((w0) => [
    w0.case,
    ...configs.map((c) => {
      const w = c.writes.find((r) => r.case === w0.case);
      if (w === undefined) return "not run";
      const l = w.cpu.find((x) => x.role === "leader")?.percent ?? 0;
      const f = w.cpu.filter((x) => x.role === "follower").map((x) => x.percent);
      const m = w.others === null ? "" : ` · others ${Math.round(w.others)}`;
      return `${Math.round(l)} / ${f.map(Math.round).join(", ")}${m}`;
    }),
  ]);
  const cpuTable = [
    line(cpuHead),
    line(cpuHead.map((_, i) => (i === 0 ? "---" : "---:"))),
    ...cpuRows.map(line),
  ];
  // Every failover run, so that outliers show.
  const runs = configs.flatMap((c) =>
    c.failover.map((f) =>
      `- ${c.nodes} nodes, ${c.storeName}, ${f.consensus} config: ` +
      (f.runs.map((r) =>
        r.error !== undefined
          ? "failed"
          : `${Math.round(r.elected ?? NaN)}/${Math.round(r.firstWrite ?? NaN)} (${r.elections})`
      ).join(", ") || "none")
    )
  );
  return [
    ...table,
    "",
    ...cpuTable,
    "",
    "Failover runs, ms after the SIGKILL to the new leader / first write (elections started):",
    "",
    ...runs,
  ].join("\n");
}

/** The legend printed under the tables: what each number is. */
function legend(plan: Plan): string {
  const f = FAST_CONSENSUS_VALUES;
  return [
    `Writes: callers on the leader; commands committed per second over ${plan.writeMs / 1000} s ` +
    `after ${
      plan.warmupMs / 1000
    } s of warm-up; p50 is the latency of one execute/executeMany call. ` +
    `Reads: one caller, ${plan.readMs / 1000} s.`,
    `Failover: leader SIGKILLed → first node to see a new leader / first probe write committed ` +
    `(ms after the kill), median of ${plan.failoverRuns.default} run(s) with the default ` +
    `ConsensusConfig and of ${plan.failoverRuns.fast} with the fast one (election timeout ` +
    `${f.electionTimeout} ms + jitter ${f.electionTimeoutJitter}, heartbeat ${f.heartbeatInterval} ms ` +
    `− jitter ${f.heartbeatJitter}, bootstrap delay ${f.bootstrapDelay} ms), a fresh cluster each run.`,
    `Catch-up: a new member joins a group holding ${plan.catchUpEntries.toLocaleString("en-US")} ` +
    `committed commands (filled with executeMany batches of ${plan.batch}); entries applied per ` +
    `second from its join() to its last entry applied.`,
    `Each measurement waits (up to ${plan.quietMs / 1000} s) until processes other than the ` +
    `benchmark's use less than ${QUIET_PERCENT}% of a core, and is taken again (at most ` +
    `${RETRIES} times) when they used more during it; ⚠ marks a number still taken under such load.`,
  ].join("\n");
}

// ---------------------------------------------------------------- main

/**
 * Runs the benchmark with command-line `args`; resolves with the exit status
 * (0 measured, 1 the harness could not measure something, 2 bad flags).
 */
export async function runBench(args: readonly string[]): Promise<number> {
  let plan;
  try {
    plan = parsePlan(args);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    console.error(`bench: ${err.message}\nRun \`npm run bench -- --help\` for usage.`);
    return 2;
  }
  if (plan.help) {
    console.log(BENCH_HELP);
    return 0;
  }
  const started = Date.now();
  const date = new Date().toISOString().slice(0, 10);
  const host = machine();
  const repo = git();
  const orchestrator = (globalThis as { Deno?: { version: { deno: string } } }).Deno
    ? `deno ${(globalThis as unknown as { Deno: { version: { deno: string } } }).Deno.version.deno}`
    : `bun ${(globalThis as unknown as { Bun: { version: string } }).Bun.version}`;
  log(
    `${plan.mode} mode: ${plan.runtimes.join(" and ")}, ${plan.nodes.join(" and ")} nodes, ` +
      `stores ${plan.stores.join(" and ")}; ${host.cpu}, ${host.cores} cores`,
  );
  let failed = 0;
  const versions = new Map<Runtime, string>();
  const reports: string[] = [];
  for (const runtime of plan.runtimes) {
    const configs: ConfigResult[] = [];
    for (const n of plan.nodes) {
      for (const store of plan.stores) {
        configs.push(await benchConfig(runtime, n, store, plan, versions));
      }
    }
    failed += configs.reduce((a, c) => a + c.errors.length, 0);
    const version = versions.get(runtime) ?? "unknown";
    const title = `mosaik cluster benchmark — ${runtime} ${version}, ${plan.mode} mode, ${date}`;
    const machineLine =
      `Machine: ${host.cpu}, ${host.cores} cores, ${host.memoryGiB} GiB, ${host.os}. ` +
      `Commit ${repo.commit}${
        repo.dirty.length > 0 ? ` + uncommitted changes in ${repo.dirty.join(", ")}` : ""
      }.`;
    const command = args.length === 0 ? "npm run bench" : `npm run bench -- ${args.join(" ")}`;
    const md = [
      `## ${title}`,
      "",
      machineLine,
      `Command: \`${command}\` (orchestrator on ${orchestrator}).`,
      "",
      markdown(configs),
      "",
      legend(plan),
      ...(configs.some((c) => c.errors.length > 0)
        ? ["", "Errors:", ...configs.flatMap((c) => c.errors.map((e) => `- ${e.split("\n")[0]}`))]
        : []),
      "",
    ].join("\n");
    reports.push(md);
    console.log("\n" + md);
    if (plan.out !== undefined) {
      mkdirSync(plan.out, { recursive: true });
      const base = join(plan.out, `${runtime}-${date}`);
      const json = {
        benchmark: "mosaik cluster benchmark",
        mode: plan.mode,
        date: new Date().toISOString(),
        command,
        runtime: { name: runtime, version },
        orchestrator,
        machine: host,
        git: repo,
        plan: { ...plan, runtimes: [runtime] },
        fastConsensus: FAST_CONSENSUS_VALUES,
        configs,
      };
      writeFileSync(`${base}.json`, JSON.stringify(json, null, 2) + "\n");
      writeFileSync(`${base}.md`, md);
      // In the repository's format, so that `deno fmt --check` (npm test) passes on them.
      const deno = join(root, "node_modules", ".bin", "deno");
      spawnSync(
        existsSync(deno) ? deno : "deno",
        ["fmt", "--quiet", `${base}.json`, `${base}.md`],
        {
          cwd: root,
          stdio: "ignore",
        },
      );
      log(`wrote ${base}.json and ${base}.md`);
    }
  }
  log(`done in ${((Date.now() - started) / 1000).toFixed(0)} s`);
  if (failed > 0) {
    console.error(`bench: ${failed} measurement(s) could not be taken (see Errors above)`);
    return 1;
  }
  return 0;
}

if (import.meta.main) {
  const onSignal = () => {
    reapAll();
    setTimeout(() => {
      removeDirs();
      process.exit(130);
    }, 200);
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  let code = 1;
  try {
    code = await runBench(process.argv.slice(2).filter((a, i) => i > 0 || a !== "--"));
  } catch (err) {
    console.error(`bench failed: ${err instanceof Error ? err.stack : String(err)}`);
  } finally {
    reapAll();
    await sleep(200);
    removeDirs();
  }
  process.exit(code);
}
