// The examples in examples/ run to completion on this runtime (the Deno KV one on Deno, the SQLite one on Bun): each is a child process that must exit 0 and print its last line.

import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { assert, assertEquals } from "../assert.ts";
import { runtime, test } from "../harness.ts";

/** An example may take this long, start-up included, before it is killed. */
const EXAMPLE_MS = 30_000;

const root = fileURLToPath(new URL("../../", import.meta.url));

/** Runs `examples/<name>.ts` on this runtime; resolves with its exit code and output. */
function runExample(
  name: string,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const script = `${root}examples/${name}.ts`;
  const pinned = `${root}node_modules/.bin/${runtime}`;
  const bin = existsSync(pinned) ? pinned : runtime;
  const args = runtime === "deno"
    ? ["run", "--allow-all", "--unstable-net", "--unstable-kv", "--no-prompt", script]
    : [script];
  return new Promise((resolve) => {
    const child = spawn(bin, args, {
      cwd: root,
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, NO_COLOR: "1", DENO_NO_UPDATE_CHECK: "1" },
    });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8");
    child.stderr.setEncoding("utf8");
    child.stdout.on("data", (t: string) => (stdout += t));
    child.stderr.on("data", (t: string) => (stderr = (stderr + t).slice(-4000)));
    const timer = setTimeout(() => {
      stderr += `\nkilled after ${EXAMPLE_MS} ms`;
      child.kill("SIGKILL");
    }, EXAMPLE_MS);
    child.once("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

test(
  `examples/leader_election.ts runs on ${runtime}: a leader, then a new one after it leaves`,
  async () => {
    const r = await runExample("leader_election");
    assertEquals(r.code, 0, `exit code\n${r.stdout}\n${r.stderr}`);
    const leader = /^leader: (node \d)/m.exec(r.stdout);
    const next = /^new leader: (node \d)/m.exec(r.stdout);
    assert(leader !== null && next !== null, `expected both leaders in the output\n${r.stdout}`);
    assert(leader[1] !== next[1], `the new leader differs from the closed one\n${r.stdout}`);
    assert(r.stdout.trimEnd().endsWith("done"), r.stdout);
  },
  { timeout: EXAMPLE_MS + 5_000 },
);

test(`examples/replicated_counter.ts runs on ${runtime}: 42 on every node`, async () => {
  const r = await runExample("replicated_counter");
  assertEquals(r.code, 0, `exit code\n${r.stdout}\n${r.stderr}`);
  assert(r.stdout.includes("strong query through the follower: 42"), r.stdout);
  assert(r.stdout.includes("weak queries on each node: 42, 42, 42"), r.stdout);
  assert(r.stdout.trimEnd().endsWith("counter is 42 on every node"), r.stdout);
}, { timeout: EXAMPLE_MS + 5_000 });

/** What both key-value examples print, whichever store they use. */
function assertKvStory(r: { code: number | null; stdout: string; stderr: string }): void {
  assertEquals(r.code, 0, `exit code\n${r.stdout}\n${r.stderr}`);
  assert(r.stdout.includes("strong read of colour: green"), r.stdout);
  assert(r.stdout.includes("weak reads of shape: circle, circle, circle"), r.stdout);
  const stopped = /^stopping (node \d) \((\w+)\)/m.exec(r.stdout);
  const restarted = /^(node \d) started as (\w+) on its store, holding its log up to \d+$/m
    .exec(r.stdout);
  assert(stopped !== null && restarted !== null, `expected a stop and a restart\n${r.stdout}`);
  assertEquals(restarted.slice(1), stopped.slice(1), "the same node restarts as the same member");
  assert(r.stdout.includes(`${stopped[1]} caught up: owner=ada, size=null, 3 keys`), r.stdout);
  assert(r.stdout.trimEnd().endsWith("the restarted member kept its log and caught up"), r.stdout);
}

if (runtime === "deno") {
  test(
    "examples/kv_deno_kv.ts runs on deno: a member restarted on its Deno KV store catches up",
    async () => {
      assertKvStory(await runExample("kv_deno_kv"));
    },
    { timeout: EXAMPLE_MS + 5_000 },
  );
} else {
  test(
    "examples/kv_bun_sqlite.ts runs on bun: a member restarted on its SQLite store catches up",
    async () => {
      assertKvStory(await runExample("kv_bun_sqlite"));
    },
    { timeout: EXAMPLE_MS + 5_000 },
  );
}

test(`examples/batch_ledger.ts runs on ${runtime}: the same ledger on every node`, async () => {
  const r = await runExample("batch_ledger");
  assertEquals(r.code, 0, `exit code\n${r.stdout}\n${r.stderr}`);
  const ranking = [
    "bob: balance 65, rank 1",
    "alice: balance 60, rank 2",
    "dave: balance 20, rank 4",
  ];
  for (const line of ranking) assert(r.stdout.includes(line), `expected "${line}"\n${r.stdout}`);
  const nodes = r.stdout.match(
    /^node \d: 8 transfers \(1 refused\) in \d+ batches, alice 60, total 0$/gm,
  );
  assertEquals(nodes?.length, 3, `every node's ledger\n${r.stdout}`);
  assert(
    r.stdout.trimEnd().endsWith("every node holds the same ledger, and it balances"),
    r.stdout,
  );
}, { timeout: EXAMPLE_MS + 5_000 });
