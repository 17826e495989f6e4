// The demo (`npm start` / `mosaik demo`) runs end to end: nodes start, the leader is killed, a new one is elected, the killed node catches up, every node holds the same state, exit 0 with the summary. Bad flags exit 2; a failure exits 1 saying what failed.

import { spawn } from "node:child_process";
import process from "node:process";
import { assert, assertEquals, assertThrows } from "../assert.ts";
import { runtime, test } from "../harness.ts";
import { DemoUsageError, parseDemoArgs } from "../../examples/demo/demo.ts";
import { command, root } from "./cluster.ts";

/** A demo run is bounded by its own step deadlines; this only stops a hung child. */
const DEMO_MS = 120_000;

/** Runs `cmd args` to its exit; resolves with the exit code and output. */
function run(
  cmd: string,
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, {
      cwd: root,
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, NO_COLOR: "1", DENO_NO_UPDATE_CHECK: "1", ...env },
    });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8");
    child.stderr.setEncoding("utf8");
    child.stdout.on("data", (t: string) => (stdout += t));
    child.stderr.on("data", (t: string) => (stderr = (stderr + t).slice(-6000)));
    const timer = setTimeout(() => child.kill("SIGKILL"), DEMO_MS);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** `mosaik demo <args>` on this test's runtime. */
function demo(args: string[], env: Record<string, string> = {}) {
  const [cmd, cmdArgs] = command(runtime, ["demo", ...args], `${root}cli.ts`);
  return run(cmd, cmdArgs, env);
}

/** Checks a finished demo's output: exit 0, every step reported, a summary with numbers. */
function assertPassed(r: { code: number | null; stdout: string; stderr: string }, nodes: number) {
  const context = `\n--- stdout ---\n${r.stdout}\n--- stderr ---\n${r.stderr}`;
  assertEquals(r.code, 0, `demo exit code${context}`);
  for (
    const line of [
      /SIGKILL n\d \(\w+, leader of term \d+\)/,
      /new leader n\d \(term \d+\) after [\d.]+ m?s; writes succeed again after [\d.]+ m?s/,
      /n\d caught up in [\d.]+ m?s/,
      new RegExp(`all ${nodes} nodes hold the same [\\d,]+ keys at index [\\d,]+`),
      /ops done +[\d,]+ writes \+ [\d,]+ reads/,
      /failover +new leader after [\d.]+ m?s, writes succeeded again after/,
      /catch-up +[\d.]+ m?s for n\d to rejoin/,
      new RegExp(`state +identical on all ${nodes} nodes`),
      /^demo passed$/m,
    ]
  ) assert(line.test(r.stdout), `demo output lacks ${line}${context}`);
  const writes = Number(/ops done +([\d,]+) writes/.exec(r.stdout)![1]!.replaceAll(",", ""));
  assert(writes > 0, "the summary counts the writes done");
}

test("demo flags: defaults, and each bad flag is refused with a reason", () => {
  const d = parseDemoArgs([]);
  assertEquals([d.nodes, d.runtime, d.electionMs, d.writers, d.seconds, d.plain], [
    3,
    "deno",
    500,
    4,
    5,
    false,
  ]);
  assertEquals(parseDemoArgs(["--runtime", "mixed", "--nodes", "5"]).nodes, 5);
  for (
    const [args, says] of [
      [["--nodes", "2"], "--nodes must be an integer from 3 to 7"],
      [["--nodes", "3.5"], "--nodes must be an integer"],
      [["--runtime", "node"], "--runtime must be deno, bun or mixed"],
      [["--seconds", "0"], "--seconds must be an integer from 1 to 60"],
      [["--colour"], "colour"],
      [["extra"], "extra"],
    ] as const
  ) assertThrows(() => parseDemoArgs([...args]), DemoUsageError, says);
});

test("mosaik demo: a bad flag exits 2 with the reason and a hint", async () => {
  const r = await demo(["--runtime", "node"]);
  assertEquals(r.code, 2, r.stderr);
  assert(r.stderr.includes("--runtime must be deno, bun or mixed"), r.stderr);
  assert(r.stderr.includes("mosaik demo --help"), r.stderr);
}, { timeout: 30_000 });

test("mosaik demo: a step that fails exits 1 and says what failed", async () => {
  const r = await demo(["--seconds", "1"], { TMPDIR: `${root}.tmp/no/such/dir` });
  assertEquals(r.code, 1, r.stdout + r.stderr);
  assert(r.stderr.includes("demo failed: cannot create a directory for the stores"), r.stderr);
}, { timeout: 30_000 });

test(`mosaik demo --runtime ${runtime}: failover, catch-up, same state, exit 0`, async () => {
  assertPassed(await demo(["--runtime", runtime, "--seconds", "1", "--plain"]), 3);
}, { timeout: DEMO_MS });

if (runtime === "deno") {
  test("npm start -- --runtime mixed (scripts/start.mjs): Deno and Bun nodes, exit 0", async () => {
    const r = await run("node", ["scripts/start.mjs", "--runtime", "mixed", "--seconds", "1"]);
    assertPassed(r, 3);
    assert(/3 nodes \(deno, bun, deno\)/.test(r.stdout), r.stdout);
  }, { timeout: DEMO_MS });
}
