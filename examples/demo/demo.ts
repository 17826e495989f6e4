// The demo (`npm start`, `mosaik demo`): a group of node processes on loopback QUIC, a workload, a leader killed with SIGKILL, failover, catch-up and a final check that every node holds the same state.
//
// Each node is examples/demo/node.ts in its own process (Deno, Bun, or some of
// each with --runtime mixed), running the KeyValue machine on the runtime's
// durable store in a temporary directory. This file only starts, watches,
// kills and restarts them, and prints what it sees: a table redrawn in place on
// a terminal, plain lines otherwise. Exit 0 with a summary when every step
// worked; exit 1 naming the step that failed; exit 2 for bad flags.

import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { GroupKey } from "../../mod.ts";
import { toHex } from "../../lib/primitives/bytes.ts";

/** The runtimes a node can run on. */
export type Runtime = "deno" | "bun";

/** What `--runtime` accepts: every node on one runtime, or alternating Deno and Bun. */
export type RuntimeChoice = Runtime | "mixed";

/** The demo's settings, from its command line. */
export interface DemoOptions {
  /** Number of node processes (3–7). */
  readonly nodes: number;
  /** Which runtime(s) the nodes run on. */
  readonly runtime: RuntimeChoice;
  /** Base election timeout of the group (ms). */
  readonly electionMs: number;
  /** Concurrent writers in each node. */
  readonly writers: number;
  /** Seconds of workload before the leader is killed. */
  readonly seconds: number;
  /** Plain lines even on a terminal. */
  readonly plain: boolean;
}

/** Bad demo flags: printed with a hint, exit status 2. */
export class DemoUsageError extends Error {
  /** Always `"DemoUsageError"`. */
  override name = "DemoUsageError";
}

/** The demo's usage text. */
export const DEMO_HELP =
  `mosaik demo — a replicated key-value group, a leader crash, failover and catch-up

Usage: mosaik demo [--nodes N] [--runtime deno|bun|mixed] [--election-ms MS]
                   [--writers N] [--seconds S] [--plain]
       (npm start -- <flags>, deno task demo <flags>, bun run demo <flags>)

  --nodes N         node processes, 3–7 (default 3)
  --runtime R       deno, bun, or mixed (alternating Deno and Bun; default deno)
  --election-ms MS  election timeout, 100–10000 (default 500; heartbeats at a fifth)
  --writers N       concurrent writers per node, 1–64 (default 4)
  --seconds S       seconds of workload before the leader is killed, 1–60 (default 5)
  --plain           plain lines instead of a live table, even on a terminal

Steps: start the nodes and wait for a leader; run the workload; SIGKILL the
leader and time the election and the first write that succeeds after it;
restart the killed node on its store and time its catch-up; stop the workload
and check every node holds the same state; leave the group. Exit 0 when all
steps worked, 1 when one failed (it says which), 2 for bad flags.`;

/** Parses the demo's flags; throws {@link DemoUsageError} on anything it does not accept. */
export function parseDemoArgs(args: readonly string[]): DemoOptions & { help: boolean } {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...args],
      strict: true,
      allowPositionals: false,
      options: {
        nodes: { type: "string" },
        runtime: { type: "string" },
        "election-ms": { type: "string" },
        writers: { type: "string" },
        seconds: { type: "string" },
        plain: { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
    });
  } catch (err) {
    throw new DemoUsageError((err as Error).message);
  }
  const v = parsed.values;
  const int = (name: string, raw: string | undefined, dflt: number, min: number, max: number) => {
    if (raw === undefined) return dflt;
    const n = Number(raw);
    if (!/^\d+$/.test(raw) || n < min || n > max) {
      throw new DemoUsageError(`--${name} must be an integer from ${min} to ${max}, got ${raw}`);
    }
    return n;
  };
  const runtime = v.runtime ?? "deno";
  if (runtime !== "deno" && runtime !== "bun" && runtime !== "mixed") {
    throw new DemoUsageError(`--runtime must be deno, bun or mixed, got ${runtime}`);
  }
  return {
    nodes: int("nodes", v.nodes, 3, 3, 7),
    runtime,
    electionMs: int("election-ms", v["election-ms"], 500, 100, 10_000),
    writers: int("writers", v.writers, 4, 1, 64),
    seconds: int("seconds", v.seconds, 5, 1, 60),
    plain: v.plain === true,
    help: v.help === true,
  };
}

/** Bounds on each step; the demo fails, naming the step, when one is exceeded. */
const START_MS = 30_000;
const LEADER_MS = 30_000;
const FAILOVER_MS = 30_000;
const CATCH_UP_MS = 30_000;
const SETTLE_MS = 15_000;
const EXIT_MS = 15_000;
/** How often the plain view prints a line, and the live view redraws at most (ms). */
const PLAIN_EVERY_MS = 2_000;
const DRAW_EVERY_MS = 200;

const root = fileURLToPath(new URL("../../", import.meta.url));
const nodeScript = fileURLToPath(new URL("./node.ts", import.meta.url));

/** A status line of a node (see node.ts). */
interface Status {
  readonly at: number;
  readonly role: "leader" | "follower" | "none";
  readonly leader: string | null;
  readonly term: number;
  readonly committed: number;
  readonly applied: number;
  readonly bonds: number;
  readonly keys: number;
  readonly writes: number;
  readonly reads: number;
  readonly errors: number;
  readonly lastError: string | null;
  readonly leaders: readonly { at: number; leader: string }[];
  readonly recovered: { since: number; at: number } | null;
}

interface Digest {
  readonly applied: number;
  readonly keys: number;
  readonly digest: string;
}

/** A step that did not work: the demo prints it and exits 1. */
class StepFailed extends Error {
  override name = "StepFailed";
}

/** The binary and arguments that run node.ts on `runtime`. */
function nodeCommand(runtime: Runtime, args: string[]): [string, string[]] {
  const pinned = join(root, "node_modules", ".bin", runtime);
  const bin = existsSync(pinned) ? pinned : runtime;
  return runtime === "deno"
    ? [bin, [
      "run",
      "--allow-all",
      "--unstable-net",
      "--unstable-kv",
      "--no-prompt",
      nodeScript,
      ...args,
    ]]
    : [bin, [nodeScript, ...args]];
}

/** One node of the demo: its process (the current run), its store and secret, and what it last said. */
class DemoNode {
  readonly name: string;
  readonly runtime: Runtime;
  readonly store: string;
  readonly secret: string;
  child: ChildProcess | undefined;
  addr = "";
  id = "";
  status: Status | undefined;
  /** Earlier statuses of this run, for the applied rate (the last ~2 s). */
  history: Status[] = [];
  /** Ops done by earlier runs of this node (a killed run's last report). */
  carried = { writes: 0, reads: 0, errors: 0 };
  startedAt = 0;
  exited: Promise<{ code: number | null; signal: string | null }> = Promise.resolve({
    code: 0,
    signal: null,
  });
  stderr = "";
  #buffer = "";
  #waiters: { type: string; resolve: (msg: Record<string, unknown>) => void }[] = [];
  #gone = true;

  constructor(name: string, runtime: Runtime, store: string, secret: string) {
    this.name = name;
    this.runtime = runtime;
    this.store = store;
    this.secret = secret;
  }

  get running(): boolean {
    return !this.#gone;
  }

  /** Starts a run of the node process; resolves with its ready line. */
  start(key: string, electionMs: number, bootstrap: string[]): Promise<void> {
    const args = ["--store", this.store, "--election-ms", String(electionMs)];
    for (const b of bootstrap) args.push("--bootstrap", b);
    const [cmd, cmdArgs] = nodeCommand(this.runtime, args);
    this.status = undefined;
    this.history = [];
    this.#buffer = "";
    this.#gone = false;
    this.startedAt = Date.now();
    const child = spawn(cmd, cmdArgs, {
      cwd: root,
      stdio: ["pipe", "pipe", "pipe"],
      env: {
        ...process.env,
        MOSAIK_DEMO_KEY: key,
        MOSAIK_DEMO_SECRET: this.secret,
        NO_COLOR: "1",
        DENO_NO_UPDATE_CHECK: "1",
      },
    });
    this.child = child;
    child.stdin?.on("error", () => {}); // a killed child's stdin: its exit is reported below
    child.stdout?.setEncoding("utf8");
    child.stderr?.setEncoding("utf8");
    child.stdout?.on("data", (text: string) => this.#onStdout(text));
    child.stderr?.on("data", (text: string) => (this.stderr = (this.stderr + text).slice(-3000)));
    this.exited = new Promise((resolve) => {
      child.once("error", (err) => {
        this.stderr += `\ncannot start ${cmd}: ${err.message}`;
      });
      child.once("close", (code, signal) => {
        this.#gone = true;
        for (const w of this.#waiters.splice(0)) w.resolve({ t: "exit", code, signal });
        resolve({ code, signal });
      });
    });
    return this.next("ready").then((msg) => {
      if (msg.t !== "ready") {
        throw new StepFailed(
          `${this.name} (${this.runtime}) did not start: ${
            msg.t === "failed" ? msg.message : `exited (code ${msg.code}, signal ${msg.signal})`
          }`,
        );
      }
      this.addr = String(msg.addr);
      this.id = String(msg.id);
    });
  }

  /** Sends one command line to the node. */
  send(cmd: Record<string, unknown>): void {
    if (!this.#gone) this.child?.stdin?.write(JSON.stringify(cmd) + "\n");
  }

  /** The next line of type `type` (or a "failed"/"exit" line if the node dies first). */
  next(type: string): Promise<Record<string, unknown>> {
    if (this.#gone) return Promise.resolve({ t: "exit", code: null, signal: null });
    return new Promise((resolve) => this.#waiters.push({ type, resolve }));
  }

  /** SIGKILL: no goodbye to its peers. Keeps its counts, then waits for the exit. */
  async kill(): Promise<void> {
    this.#carry();
    this.child?.kill("SIGKILL");
    await this.exited;
  }

  /** Closes stdin (the node leaves the group and exits); resolves with the exit code. */
  async stop(): Promise<number | null> {
    this.#carry();
    this.child?.stdin?.end();
    return (await this.exited).code;
  }

  /** Kills the process if it still runs (after a failure). */
  reap(): Promise<unknown> {
    if (!this.#gone) this.child?.kill("SIGKILL");
    return this.exited;
  }

  /** Applied entries per second over the last ~2 s of status lines. */
  rate(): number {
    const first = this.history[0];
    const last = this.status;
    if (first === undefined || last === undefined || last.at <= first.at) return 0;
    return ((last.applied - first.applied) * 1000) / (last.at - first.at);
  }

  totals(): { writes: number; reads: number; errors: number } {
    const s = this.status;
    return {
      writes: this.carried.writes + (s?.writes ?? 0),
      reads: this.carried.reads + (s?.reads ?? 0),
      errors: this.carried.errors + (s?.errors ?? 0),
    };
  }

  #carry(): void {
    this.carried = this.totals();
    this.status = undefined;
  }

  #onStdout(text: string): void {
    this.#buffer += text;
    for (let nl = this.#buffer.indexOf("\n"); nl >= 0; nl = this.#buffer.indexOf("\n")) {
      const line = this.#buffer.slice(0, nl);
      this.#buffer = this.#buffer.slice(nl + 1);
      let msg: Record<string, unknown>;
      try {
        msg = JSON.parse(line);
      } catch {
        this.stderr = (this.stderr + `\n[stdout] ${line}`).slice(-3000);
        continue;
      }
      if (msg.t === "status") {
        const s = msg as unknown as Status;
        this.status = s;
        this.history.push(s);
        while (this.history.length > 1 && s.at - this.history[0]!.at > 2_000) this.history.shift();
      }
      const i = this.#waiters.findIndex((w) => w.type === msg.t || msg.t === "failed");
      if (i >= 0) this.#waiters.splice(i, 1)[0]!.resolve(msg);
    }
  }
}

/** What the demo prints: events as lines, and the node table (redrawn in place on a terminal). */
class View {
  readonly #live: boolean;
  readonly #t0 = Date.now();
  readonly #nodes: readonly DemoNode[];
  #drawn = 0;
  #lastDraw = 0;
  #lastPlain = 0;
  #done = false;

  constructor(nodes: readonly DemoNode[], live: boolean) {
    this.#nodes = nodes;
    this.#live = live;
  }

  /** Seconds since the demo started, as "12.3s". */
  elapsed(): string {
    return `${((Date.now() - this.#t0) / 1000).toFixed(1)}s`;
  }

  /** Prints one event line (above the table on a terminal). */
  event(text: string): void {
    this.#erase();
    process.stdout.write(`[${this.elapsed().padStart(6)}] ${text}\n`);
    this.#draw();
  }

  /** Called often; redraws the table (terminal) or prints a status line now and then (plain). */
  tick(): void {
    const now = Date.now();
    if (this.#live) {
      if (now - this.#lastDraw < DRAW_EVERY_MS) return;
      this.#erase();
      this.#draw();
    } else if (now - this.#lastPlain >= PLAIN_EVERY_MS) {
      this.#lastPlain = now;
      const parts = this.#nodes.map((n) => {
        const s = n.status;
        if (s === undefined) return `${n.name} ${n.running ? "starting" : "down"}`;
        return `${n.name} ${s.role} t${s.term} c${s.committed} ${
          Math.round(n.rate())
        }/s b${s.bonds}`;
      });
      process.stdout.write(`[${this.elapsed().padStart(6)}] ${parts.join(" | ")}\n`);
    }
  }

  /** Leaves the table on screen as it is and stops redrawing it. */
  finish(): void {
    this.#drawn = 0;
    this.#done = true;
  }

  #erase(): void {
    if (this.#live && this.#drawn > 0) process.stdout.write(`\x1b[${this.#drawn}A\x1b[J`);
    this.#drawn = 0;
  }

  #draw(): void {
    if (!this.#live || this.#done) return;
    this.#lastDraw = Date.now();
    const head = [
      "node",
      "runtime",
      "role",
      "term",
      "committed",
      "applied",
      "applied/s",
      "bonds",
      "writes",
    ];
    const rows = this.#nodes.map((n) => {
      const s = n.status;
      const t = n.totals();
      const role = s?.role ?? (n.running ? "starting" : "DOWN");
      return [
        n.name,
        n.runtime,
        role,
        s ? String(s.term) : "-",
        s ? String(s.committed) : "-",
        s ? String(s.applied) : "-",
        s ? String(Math.round(n.rate())) : "-",
        s ? String(s.bonds) : "-",
        String(t.writes),
      ];
    });
    const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
    const fmt = (r: string[]) => "  " + r.map((c, i) => c.padEnd(widths[i]!)).join("  ");
    const lines = [fmt(head), ...rows.map(fmt)];
    process.stdout.write(lines.join("\n") + "\n");
    this.#drawn = lines.length;
  }
}

/** Polls `check` (after each view tick) until it returns a value, or fails the step after `ms`. */
async function until<T>(
  view: View,
  what: string,
  ms: number,
  check: () => T | undefined,
): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    view.tick();
    const value = check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new StepFailed(`timed out after ${ms / 1000} s: ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** `promise`, or a {@link StepFailed} naming `what` after `ms`. */
async function bounded<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new StepFailed(`timed out after ${ms / 1000} s: ${what}`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Lets the workload run for `ms`, redrawing the view. */
async function runFor(view: View, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    view.tick();
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The leader every running node agrees on, if they all agree and know one. */
function agreedLeader(nodes: readonly DemoNode[]): DemoNode | undefined {
  const up = nodes.filter((n) => n.running);
  const leader = up[0]?.status?.leader;
  if (leader == null || !up.every((n) => n.status?.leader === leader)) return undefined;
  return up.find((n) => n.id === leader && n.status?.role === "leader");
}

const ms = (v: number) => (v < 1000 ? `${Math.round(v)} ms` : `${(v / 1000).toFixed(2)} s`);
const count = (v: number) => v.toLocaleString("en-US");

/**
 * Runs the demo with command-line `args`; resolves with the exit status (0
 * done, 1 a step failed, 2 bad flags). Prints to stdout/stderr.
 */
export async function runDemo(args: readonly string[]): Promise<number> {
  let opts;
  try {
    opts = parseDemoArgs(args);
  } catch (err) {
    if (!(err instanceof DemoUsageError)) throw err;
    console.error(`mosaik demo: ${err.message}\nRun \`mosaik demo --help\` for usage.`);
    return 2;
  }
  if (opts.help) {
    console.log(DEMO_HELP);
    return 0;
  }
  const runtimes: Runtime[] = Array.from(
    { length: opts.nodes },
    (_, i) => opts.runtime === "mixed" ? (i % 2 === 0 ? "deno" : "bun") : opts.runtime as Runtime,
  );
  let dir: string;
  try {
    dir = mkdtempSync(join(tmpdir(), "mosaik-demo-"));
  } catch (err) {
    console.error(
      `demo failed: cannot create a directory for the stores: ${(err as Error).message}`,
    );
    return 1;
  }
  const key = GroupKey.generate().toHex();
  const nodes = runtimes.map((rt, i) =>
    new DemoNode(
      `n${i + 1}`,
      rt,
      join(dir, `n${i + 1}.db`),
      toHex(crypto.getRandomValues(new Uint8Array(32))),
    )
  );
  const view = new View(nodes, process.stdout.isTTY === true && !opts.plain);
  let step = "start";
  try {
    console.log(
      `mosaik demo: ${opts.nodes} nodes (${runtimes.join(", ")}) on loopback QUIC, ` +
        `KeyValue machine, durable store (${
          [...new Set(runtimes)].map((r) => (r === "deno" ? "Deno KV" : "SQLite")).join(" / ")
        }), election timeout ${opts.electionMs} ms, ${opts.writers} writers per node`,
    );

    // 1. Start: the first node, then the others bootstrapping from it.
    step = "starting the nodes";
    const startAll = async () => {
      await nodes[0]!.start(key, opts.electionMs, []);
      await Promise.all(nodes.slice(1).map((n) => n.start(key, opts.electionMs, [nodes[0]!.addr])));
    };
    await bounded(startAll(), START_MS, "every node to start and join");
    view.event(
      `${opts.nodes} nodes up: ${nodes.map((n) => `${n.name}=${n.id.slice(0, 8)}`).join(" ")}`,
    );

    step = "electing the first leader";
    const first = await until(
      view,
      "all nodes agree on a leader and are bonded to all others",
      LEADER_MS,
      () => {
        const l = agreedLeader(nodes);
        return l !== undefined && nodes.every((n) => n.status!.bonds === opts.nodes - 1)
          ? l
          : undefined;
      },
    );
    view.event(
      `leader: ${first.name} (term ${first.status!.term}); every node bonded to ${
        opts.nodes - 1
      } peers`,
    );

    // 2. Workload.
    step = "running the workload";
    for (const n of nodes) n.send({ op: "load", writers: opts.writers });
    const loadStart = Date.now();
    view.event(
      `workload: ${opts.writers} writers on each node (writes forwarded to the leader, weak and strong reads)`,
    );
    await runFor(view, opts.seconds * 1000);
    const before = nodes.reduce((a, n) => a + n.totals().writes, 0);
    if (before === 0) throw new StepFailed(`no write succeeded in ${opts.seconds} s`);

    // 3. Kill the leader.
    step = "failing over";
    const victim = agreedLeader(nodes) ?? first;
    const oldTerm = victim.status?.term ?? 0;
    const survivors = nodes.filter((n) => n !== victim);
    const killedAt = Date.now();
    for (const n of survivors) n.send({ op: "mark", since: killedAt });
    await victim.kill();
    view.event(`SIGKILL ${victim.name} (${victim.runtime}, leader of term ${oldTerm})`);
    const failover = await until(view, "a new leader and a successful write", FAILOVER_MS, () => {
      const elected = survivors
        .flatMap((n) => n.status?.leaders ?? [])
        .filter((l) => l.at >= killedAt && l.leader !== victim.id)
        .map((l) => l.at);
      const recovered = survivors
        .map((n) => n.status?.recovered)
        .filter((r) => r != null && r.since === killedAt)
        .map((r) => r!.at);
      const leader = agreedLeader(survivors);
      if (elected.length === 0 || recovered.length === 0 || leader === undefined) return undefined;
      return {
        leader,
        elected: Math.min(...elected) - killedAt,
        writes: Math.min(...recovered) - killedAt,
      };
    });
    view.event(
      `new leader ${failover.leader.name} (term ${failover.leader.status!.term}) after ${
        ms(failover.elected)
      }; ` +
        `writes succeed again after ${ms(failover.writes)}`,
    );
    await runFor(view, 2_000);

    // 4. Restart the killed node on its store: same member, catches up.
    step = "restarting the killed node";
    const target = Math.max(...survivors.map((n) => n.status?.applied ?? 0));
    const restartAt = Date.now();
    await bounded(
      victim.start(key, opts.electionMs, survivors.map((n) => n.addr)),
      START_MS,
      `${victim.name} to start again`,
    );
    const readyIn = Date.now() - restartAt;
    view.event(
      `${victim.name} restarted on its store (process up in ${ms(readyIn)}); catching up to index ${
        count(target)
      }`,
    );
    step = "catching up";
    const caughtUp = await until(
      view,
      `${victim.name} applies up to index ${target}`,
      CATCH_UP_MS,
      () => {
        const s = victim.status;
        return s !== undefined && s.applied >= target ? s.at - restartAt : undefined;
      },
    );
    view.event(
      `${victim.name} caught up in ${ms(caughtUp)} (applied ${
        count(target)
      } entries, the same member: ${victim.id.slice(0, 8)})`,
    );
    victim.send({ op: "load", writers: opts.writers });
    await runFor(view, 2_000);

    // 5. Stop the workload; every node must hold the same state.
    step = "checking the state";
    const paused = nodes.map((n) => n.next("paused"));
    for (const n of nodes) n.send({ op: "pause" });
    const loadMs = Date.now() - loadStart;
    await bounded(Promise.all(paused), SETTLE_MS, "the writers to stop");
    const final = await settle(view, nodes);
    view.finish();
    view.event(
      `all ${opts.nodes} nodes hold the same ${count(final.keys)} keys at index ${
        count(final.applied)
      } (digest ${final.digest})`,
    );

    // 6. Leave.
    step = "leaving";
    const codes = await bounded(
      Promise.all(nodes.map((n) => n.stop())),
      EXIT_MS,
      "every node to leave and exit",
    );
    const bad = nodes.filter((_, i) => codes[i] !== 0);
    if (bad.length > 0) {
      throw new StepFailed(`${bad.map((n) => n.name).join(", ")} exited with an error`);
    }

    const t = nodes.reduce((a, n) => {
      const x = n.totals();
      return { writes: a.writes + x.writes, reads: a.reads + x.reads };
    }, { writes: 0, reads: 0 });
    console.log(
      [
        "",
        "summary",
        `  ops done     ${count(t.writes)} writes + ${count(t.reads)} reads in ${
          (loadMs / 1000).toFixed(1)
        } s ` +
        `(${count(Math.round((t.writes + t.reads) * 1000 / loadMs))} ops/s)`,
        `  failover     new leader after ${ms(failover.elected)}, writes succeeded again after ${
          ms(failover.writes)
        }`,
        `  catch-up     ${ms(caughtUp)} for ${victim.name} to rejoin and apply ${
          count(target)
        } entries`,
        `  state        identical on all ${opts.nodes} nodes (${count(final.keys)} keys, index ${
          count(final.applied)
        })`,
        "demo passed",
      ].join("\n"),
    );
    return 0;
  } catch (err) {
    view.finish();
    console.error(
      `\ndemo failed while ${step}: ${err instanceof Error ? err.message : String(err)}`,
    );
    for (const n of nodes) {
      const tail = n.stderr.trim();
      if (tail !== "") console.error(`--- ${n.name} (${n.runtime}) stderr ---\n${tail}`);
    }
    return 1;
  } finally {
    await Promise.all(nodes.map((n) => n.reap()));
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Waits until every node has applied the same index, then compares their digests. */
async function settle(view: View, nodes: readonly DemoNode[]): Promise<Digest> {
  const deadline = Date.now() + SETTLE_MS;
  for (;;) {
    const replies = nodes.map((n) => n.next("digest"));
    for (const n of nodes) n.send({ op: "digest" });
    const digests = (await Promise.all(replies)).map((r) => r as unknown as Digest);
    const applied = new Set(digests.map((d) => d.applied));
    if (applied.size === 1 && digests.every((d) => typeof d.digest === "string")) {
      const distinct = new Set(digests.map((d) => d.digest));
      if (distinct.size !== 1) {
        throw new StepFailed(
          `nodes applied the same index but hold different state: ${
            nodes.map((n, i) => `${n.name}=${digests[i]!.digest}`).join(" ")
          }`,
        );
      }
      return digests[0]!;
    }
    if (Date.now() > deadline) {
      throw new StepFailed(
        `nodes did not reach the same index in ${SETTLE_MS / 1000} s: ${
          nodes.map((n, i) => `${n.name}=${digests[i]!.applied}`).join(" ")
        }`,
      );
    }
    view.tick();
    await new Promise((r) => setTimeout(r, 100));
  }
}

if (import.meta.main) {
  process.exit(await runDemo(process.argv.slice(2).filter((a, i) => i > 0 || a !== "--")));
}
