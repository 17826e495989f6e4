// The mosaik CLI as a user runs it: help, keygen, argument errors with exit status 2, and a two-node session driven through stdin.

import { type ChildProcess, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import process from "node:process";
import { GroupKey } from "../../lib/groups/key.ts";
import { assert, assertEquals } from "../assert.ts";
import { runtime, test } from "../harness.ts";
import { within } from "../group_net.ts";
import { command, root } from "../procs/cluster.ts";

const cli = fileURLToPath(new URL("../../cli.ts", import.meta.url));

/** Bound on one CLI process run to completion, or on one answer in a session. */
const RUN_MS = 20_000;

/** Runs the CLI with `args` to its exit; resolves with its status and output. */
async function run(args: string[]): Promise<{ code: number | null; out: string; err: string }> {
  const [cmd, cmdArgs] = command(runtime, args, cli);
  const child = spawn(cmd, cmdArgs, { cwd: root, stdio: ["ignore", "pipe", "pipe"], env: env() });
  let out = "";
  let err = "";
  child.stdout?.setEncoding("utf8").on("data", (t: string) => out += t);
  child.stderr?.setEncoding("utf8").on("data", (t: string) => err += t);
  const code = await within(
    new Promise<number | null>((resolve) => child.once("close", (c) => resolve(c))),
    `mosaik ${args.join(" ")} to exit`,
    RUN_MS,
  ).catch((e) => {
    child.kill("SIGKILL");
    throw e;
  });
  return { code, out, err };
}

function env(): Record<string, string | undefined> {
  return { ...process.env, NO_COLOR: "1", DENO_NO_UPDATE_CHECK: "1" };
}

test("cli: --help lists the commands and exits 0; no command prints it and exits 2", async () => {
  const help = await run(["--help"]);
  assertEquals(help.code, 0);
  for (const word of ["keygen", "node", "--key", "--bootstrap", "--listen", "--store"]) {
    assert(help.out.includes(word), `help mentions ${word}`);
  }
  const bare = await run([]);
  assertEquals(bare.code, 2);
}, { timeout: 60_000 });

test("cli: keygen prints a key that parses", async () => {
  const r = await run(["keygen"]);
  assertEquals(r.code, 0, r.err);
  const hex = r.out.trim();
  assertEquals(GroupKey.parse(hex).toHex(), hex);
}, { timeout: 60_000 });

test("cli: bad commands, flags, keys and addresses exit 2 with a clear message", async () => {
  const key = GroupKey.generate().toHex();
  const cases: [string[], RegExp][] = [
    [["frobnicate"], /Unknown command "frobnicate"/],
    [["keygen", "extra"], /keygen takes no arguments/],
    [["node"], /Missing --key/],
    [["node", "--key", "zz"], /Invalid --key/],
    [["node", "--key", key, "--bootstrap", "not-an-address"], /Invalid --bootstrap address/],
    [["node", "--key", key, "--listen", "nowhere"], /Invalid --listen/],
    [["node", "--key", key, "--colour", "blue"], /Unknown option/],
  ];
  for (const [args, message] of cases) {
    const r = await run(args);
    assertEquals(r.code, 2, `mosaik ${args.join(" ")}: exit status\n${r.err}`);
    assert(message.test(r.err), `mosaik ${args.join(" ")}: ${JSON.stringify(r.err)}`);
    assert(!r.err.includes(key), "the key is never echoed");
  }
}, { timeout: 120_000 });

/** A `mosaik node` process answering stdin commands line by line. */
class Session {
  readonly #child: ChildProcess;
  readonly #lines: string[] = [];
  #waiters: (() => void)[] = [];
  #buffer = "";
  #stderr = "";
  readonly exited: Promise<number | null>;

  constructor(args: string[]) {
    const [cmd, cmdArgs] = command(runtime, ["node", ...args], cli);
    this.#child = spawn(cmd, cmdArgs, { cwd: root, stdio: ["pipe", "pipe", "pipe"], env: env() });
    this.#child.stdin?.on("error", () => {});
    this.#child.stderr?.setEncoding("utf8").on("data", (t: string) => this.#stderr += t);
    this.#child.stdout?.setEncoding("utf8").on("data", (t: string) => {
      this.#buffer += t;
      for (let nl = this.#buffer.indexOf("\n"); nl >= 0; nl = this.#buffer.indexOf("\n")) {
        this.#lines.push(this.#buffer.slice(0, nl));
        this.#buffer = this.#buffer.slice(nl + 1);
      }
      for (const w of this.#waiters.splice(0)) w();
    });
    this.exited = new Promise((resolve) => this.#child.once("close", (c) => resolve(c)));
  }

  /** The next line of output, waiting up to {@link RUN_MS}. */
  async line(what: string): Promise<string> {
    const end = Date.now() + RUN_MS;
    while (this.#lines.length === 0) {
      if (Date.now() > end) throw new Error(`No output for ${what}\n${this.#stderr}`);
      await within(
        new Promise<void>((r) => this.#waiters.push(r)),
        `${what}\n${this.#stderr}`,
        RUN_MS,
      );
    }
    return this.#lines.shift()!;
  }

  /** Sends one command and returns its one-line answer. */
  async ask(cmd: string): Promise<string> {
    this.#child.stdin?.write(cmd + "\n");
    return await this.line(cmd);
  }

  /** Asks `cmd` until the answer matches `pattern`, bounded. */
  async askUntil(cmd: string, pattern: RegExp): Promise<string> {
    const end = Date.now() + RUN_MS;
    for (;;) {
      const a = await this.ask(cmd);
      if (pattern.test(a)) return a;
      if (Date.now() > end) throw new Error(`"${cmd}" never answered ${pattern}: last "${a}"`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  kill(): void {
    this.#child.kill("SIGKILL");
  }
}

test(
  "cli: two nodes on loopback replicate writes driven through stdin, then leave with exit 0",
  async () => {
    const key = GroupKey.generate().toHex();
    const a = new Session(["--key", key]);
    let b: Session | undefined;
    try {
      const addr = (await a.line("a's address")).replace(/^addr /, "");
      await a.askUntil("status", /^role=leader /);
      b = new Session(["--key", key, "--bootstrap", addr]);
      assert((await b.line("b's address")).startsWith("addr "), "b prints its address");
      await b.askUntil("status", /^role=follower leader=[0-9a-f]{64} /);

      assert(/^ok \d+$/.test(await b.ask("set colour deep blue")), "a write through the follower");
      assertEquals(await a.ask("get colour --strong"), "value deep blue");
      await b.askUntil("get colour", /^value deep blue$/);
      assert(/^ok \d+$/.test(await a.ask("del colour")), "a delete through the leader");
      assertEquals(await b.ask("get colour --strong"), "nil");
      assert((await a.ask("get")).startsWith("error usage: get"), "a usage error keeps the node");
      assert((await a.ask("fly")).startsWith("error unknown command"), "unknown commands too");

      assertEquals(await b.ask("leave"), "bye");
      assertEquals(await within(b.exited, "b to exit", RUN_MS), 0);
      assertEquals(await a.ask("leave"), "bye");
      assertEquals(await within(a.exited, "a to exit", RUN_MS), 0);
    } finally {
      a.kill();
      b?.kill();
      await Promise.all([a.exited, b?.exited]);
    }
  },
  { timeout: 90_000 },
);
