// The cluster benchmark (bench/run.ts, `npm run bench`) runs end to end in its tiny --smoke configuration on this test's runtime: exit 0 and a table with every row measured. No timing is checked.

import { spawn } from "node:child_process";
import process from "node:process";
import { assert, assertEquals } from "../assert.ts";
import { runtime, test } from "../harness.ts";
import { parsePlan, ROWS } from "../../bench/run.ts";
import { command, root } from "./cluster.ts";

/** The smoke run takes about 30 s; this only stops a hung benchmark. */
const SMOKE_MS = 120_000;

/** Runs bench/run.ts with `args` on this test's runtime; resolves with its exit code and output. */
function bench(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const [cmd, cmdArgs] = command(runtime, args, `${root}bench/run.ts`);
  return new Promise((resolve) => {
    const child = spawn(cmd, cmdArgs, {
      cwd: root,
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, NO_COLOR: "1", DENO_NO_UPDATE_CHECK: "1" },
    });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8");
    child.stderr.setEncoding("utf8");
    child.stdout.on("data", (t: string) => (stdout += t));
    child.stderr.on("data", (t: string) => (stderr = (stderr + t).slice(-8000)));
    const timer = setTimeout(() => child.kill("SIGKILL"), SMOKE_MS);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

test("bench flags: modes, defaults and refusals", () => {
  const full = parsePlan([]);
  assertEquals([full.mode, full.runtimes, full.nodes, full.stores], [
    "full",
    ["deno", "bun"],
    [3, 5],
    ["memory", "durable"],
  ]);
  assertEquals([full.failoverRuns.default, full.failoverRuns.fast, full.catchUpEntries], [
    5,
    5,
    100_000,
  ]);
  assert(full.out?.endsWith("results") === true, "full mode writes bench/results");
  const quick = parsePlan(["--quick"]);
  assertEquals([quick.runtimes, quick.nodes, quick.out], [["deno"], [3], undefined]);
  const smoke = parsePlan(["--smoke", "--runtime", "bun"]);
  assertEquals([smoke.runtimes, smoke.stores, smoke.catchUpEntries], [["bun"], ["memory"], 1_000]);
  for (
    const bad of [["--runtime", "node"], ["--nodes", "2"], ["--stores", "disk"], [
      "--quick",
      "--smoke",
    ]]
  ) {
    let threw = false;
    try {
      parsePlan(bad);
    } catch {
      threw = true;
    }
    assert(threw, `${bad.join(" ")} is refused`);
  }
});

test(`bench --smoke on ${runtime}: exit 0 and a table with every row measured`, async () => {
  const r = await bench(["--smoke", "--runtime", runtime, "--no-write"]);
  const context = `\n--- stdout ---\n${r.stdout}\n--- stderr ---\n${r.stderr}`;
  assertEquals(r.code, 0, `bench exit code${context}`);
  assert(
    r.stdout.includes("| 3 nodes, memory |"),
    `the table has a 3-node memory column${context}`,
  );
  for (const row of ROWS) {
    const line = r.stdout.split("\n").find((l) => l.startsWith(`| ${row} |`));
    assert(line !== undefined, `the table lacks the row "${row}"${context}`);
    assert(
      !line.includes("not run") && !line.includes("failed"),
      `row "${row}" measured${context}`,
    );
  }
  assert(/^Machine: .+, \d+ cores/m.test(r.stdout), `the machine is named${context}`);
}, { timeout: SMOKE_MS + 10_000 });
