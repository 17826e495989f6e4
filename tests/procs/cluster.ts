// Test helper: group members as child processes (tests/procs/node.ts on Deno or Bun), driven over stdin/stdout.

import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { within } from "../group_net.ts";

/** A runtime a node process can run on. */
export type Runtime = "deno" | "bun";

/** The first line a node prints. */
export interface Ready {
  readonly ready: true;
  readonly addr: string;
  readonly id: string;
  readonly runtime: Runtime;
}

/** A reply to one request (see the header of node.ts for the fields of each op). */
export type Reply = { readonly ok: boolean; readonly [field: string]: unknown };

/** How the test saw a child end. */
export interface Exit {
  readonly code: number | null;
  readonly signal: string | null;
}

/** Bound on a node's start-up: spawn, module load, network build, join. */
export const START_MS = 20_000;
/** Default bound on one request's round trip. */
export const REQUEST_MS = 10_000;
/** Bound on a node's exit after its stdin closed or it was killed. */
export const EXIT_MS = 15_000;

/** The repository root, the working directory of every child. */
export const root: string = fileURLToPath(new URL("../../", import.meta.url));
const nodeScript = fileURLToPath(new URL("./node.ts", import.meta.url));

/**
 * The command line that runs `script` (default node.ts) on `runtime`: the
 * repository's pinned binary, else the one on PATH.
 */
export function command(
  runtime: Runtime,
  args: string[],
  script: string = nodeScript,
): [string, string[]] {
  const pinned = `${root}node_modules/.bin/${runtime}`;
  const bin = existsSync(pinned) ? pinned : runtime;
  return runtime === "deno"
    ? [bin, [
      "run",
      "--allow-all",
      "--unstable-net",
      "--unstable-kv",
      "--no-prompt",
      script,
      ...args,
    ]]
    : [bin, [script, ...args]];
}

/** One node.ts child process. */
export class NodeProc {
  readonly runtime: Runtime;
  readonly label: string;
  /** Resolves with the ready line; rejects if the child fails or exits first. */
  readonly ready: Promise<Ready>;
  /** Resolves when the child has exited and its pipes are closed. */
  readonly exited: Promise<Exit>;
  readonly #child: ChildProcess;
  readonly #pending = new Map<
    number,
    { resolve: (r: Reply) => void; reject: (e: Error) => void }
  >();
  #nextId = 1;
  #buffer = "";
  #stderr = "";
  #done = false;
  #readyResolve!: (r: Ready) => void;
  #readyReject!: (e: Error) => void;

  constructor(runtime: Runtime, label: string, args: string[]) {
    this.runtime = runtime;
    this.label = `${label} (${runtime})`;
    this.ready = new Promise((resolve, reject) => {
      this.#readyResolve = resolve;
      this.#readyReject = reject;
    });
    this.ready.catch(() => {}); // observed by whoever awaits it
    const [cmd, cmdArgs] = command(runtime, args);
    this.#child = spawn(cmd, cmdArgs, {
      cwd: root,
      stdio: ["pipe", "pipe", "pipe"],
      env: { ...process.env, NO_COLOR: "1", DENO_NO_UPDATE_CHECK: "1" },
    });
    // Writing to a killed child fails with EPIPE; the exit is reported through `exited`.
    this.#child.stdin?.on("error", () => {});
    this.#child.stdout?.setEncoding("utf8");
    this.#child.stderr?.setEncoding("utf8");
    this.#child.stdout?.on("data", (text: string) => this.#onStdout(text));
    this.#child.stderr?.on("data", (text: string) => {
      this.#stderr = (this.#stderr + text).slice(-4000);
    });
    this.exited = new Promise((resolve) => {
      this.#child.once("close", (code, signal) => {
        this.#done = true;
        this.#failAll(new Error(`${this.label} exited (code ${code}, signal ${signal})`));
        resolve({ code, signal });
      });
      this.#child.once("error", (err) => {
        this.#stderr += `\nspawn failed: ${err.message}`;
      });
    });
  }

  /** The last 4000 characters of the child's stderr, for failure messages. */
  get stderr(): string {
    return this.#stderr;
  }

  /** True once the child has exited. */
  get done(): boolean {
    return this.#done;
  }

  /** Sends one request and waits for its reply, at most `ms`. */
  async request(fields: Record<string, unknown>, ms = REQUEST_MS): Promise<Reply> {
    if (this.#done) throw new Error(`${this.label} has exited`);
    const id = this.#nextId++;
    const reply = new Promise<Reply>((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
    });
    this.#child.stdin?.write(JSON.stringify({ id, ...fields }) + "\n");
    try {
      return await within(reply, `${this.label} answering ${JSON.stringify(fields)}`, ms);
    } catch (err) {
      this.#pending.delete(id);
      throw new Error(`${(err as Error).message}\n--- ${this.label} stderr ---\n${this.#stderr}`);
    }
  }

  /** Like {@link request}, but throws unless the reply is ok. */
  async call(fields: Record<string, unknown>, ms = REQUEST_MS): Promise<Reply> {
    const r = await this.request(fields, ms);
    if (!r.ok) {
      throw new Error(`${this.label} failed ${JSON.stringify(fields)}: ${r.error}: ${r.message}`);
    }
    return r;
  }

  /** Kills the child with SIGKILL (no goodbye to its peers) and waits for it to exit. */
  async kill(): Promise<Exit> {
    if (!this.#done) this.#child.kill("SIGKILL");
    this.#child.stdin?.destroy();
    return await within(this.exited, `${this.label} to exit after SIGKILL`, EXIT_MS);
  }

  /** Closes the child's stdin (it leaves the group and exits) and waits for its exit. */
  async stop(): Promise<Exit> {
    this.#child.stdin?.end();
    return await within(this.exited, `${this.label} to exit after stdin closed`, EXIT_MS);
  }

  /** Makes sure the child is gone: SIGKILL if still running, then waits (bounded) for its exit. */
  async reap(): Promise<void> {
    if (!this.#done) this.#child.kill("SIGKILL");
    this.#child.stdin?.destroy();
    await within(this.exited, `${this.label} to be reaped`, EXIT_MS).catch(() => {});
  }

  #onStdout(text: string): void {
    this.#buffer += text;
    for (let nl = this.#buffer.indexOf("\n"); nl >= 0; nl = this.#buffer.indexOf("\n")) {
      const line = this.#buffer.slice(0, nl);
      this.#buffer = this.#buffer.slice(nl + 1);
      if (line.trim() !== "") this.#onLine(line);
    }
  }

  #onLine(line: string): void {
    let msg: Record<string, unknown>;
    try {
      msg = JSON.parse(line) as Record<string, unknown>;
    } catch {
      this.#stderr = (this.#stderr + `\n[stdout, not JSON] ${line}`).slice(-4000);
      return;
    }
    if (msg.ready === true) {
      this.#readyResolve(msg as unknown as Ready);
    } else if (typeof msg.error === "string" && !("id" in msg)) {
      this.#readyReject(new Error(`${this.label} failed to start: ${msg.error}\n${this.#stderr}`));
    } else if (typeof msg.id === "number") {
      const waiter = this.#pending.get(msg.id);
      this.#pending.delete(msg.id);
      waiter?.resolve(msg as Reply);
    }
  }

  #failAll(err: Error): void {
    this.#readyReject(new Error(`${err.message}\n${this.#stderr}`));
    for (const w of this.#pending.values()) w.reject(err);
    this.#pending.clear();
  }
}

/** The node processes of one test; disposing reaps every one still running. */
export class Cluster implements AsyncDisposable {
  readonly procs: NodeProc[] = [];
  readonly #key: string;

  /** @param keyHex the group key every node joins, as 64 hex characters */
  constructor(keyHex: string) {
    this.#key = keyHex;
  }

  /**
   * Starts a node and waits for its ready line.
   *
   * @param runtime where it runs
   * @param bootstrap the PeerAddr string of a node to bootstrap from
   * @param flags extra flags for node.ts, e.g. `--reluctant`
   */
  async start(runtime: Runtime, bootstrap?: string, flags: string[] = []): Promise<NodeProc> {
    const args = [this.#key, ...(bootstrap === undefined ? [] : [bootstrap]), ...flags];
    const proc = new NodeProc(runtime, `node ${this.procs.length + 1}`, args);
    this.procs.push(proc);
    await within(proc.ready, `${proc.label} to print its ready line`, START_MS);
    return proc;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await Promise.all(this.procs.map((p) => p.reap()));
  }
}
