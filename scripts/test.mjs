#!/usr/bin/env node
// `npm test`: installs if needed, type-checks, lints, checks formatting and doc comments,
// runs the suite on Deno (with the doc examples) and on Bun, and ends with one line
// `N passed, N failed` over both.
//
// Usage: node scripts/test.mjs [deno] [bun] [--no-checks] [-- extra test paths]
// With no runtime named, both run. With paths, only those run (no doc examples).

import { spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { bin, ensureInstalled, root } from "./pinned.mjs";
const STEP_TIMEOUT_MS = 12 * 60 * 1000;

const args = process.argv.slice(2);
const dash = args.indexOf("--");
const paths = dash >= 0 ? args.slice(dash + 1) : [];
const flags = dash >= 0 ? args.slice(0, dash) : args;
const named = flags.filter((a) => a === "deno" || a === "bun");
const runtimes = named.length > 0 ? named : ["deno", "bun"];
const runChecks = !flags.includes("--no-checks");

const env = { ...process.env, NO_COLOR: "1", DENO_NO_UPDATE_CHECK: "1" };
delete env.FORCE_COLOR;

/** Runs a command, echoing its output, and resolves with { code, output }. */
function run(label, cmd, cmdArgs) {
  console.log(
    `\n=== ${label}: ${[cmd, ...cmdArgs].map((a) => a.replace(root + "/", "")).join(" ")}`,
  );
  return new Promise((resolve) => {
    const child = spawn(cmd, cmdArgs, { cwd: root, env, stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    const onData = (stream) => (chunk) => {
      output += chunk;
      stream.write(chunk);
    };
    child.stdout.on("data", onData(process.stdout));
    child.stderr.on("data", onData(process.stderr));
    const timer = setTimeout(() => {
      output += `\n${label} killed after ${STEP_TIMEOUT_MS} ms\n`;
      child.kill("SIGKILL");
    }, STEP_TIMEOUT_MS);
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code: code ?? (signal ? 1 : 0), output });
    });
  });
}

// deno-lint-ignore no-control-regex
const stripAnsi = (s) => s.replace(/\x1b\[[0-9;]*m/g, "");

/** mod.ts and every entry point in deno.json "exports": what `deno doc --lint` checks. */
function docEntryPoints() {
  const { exports = {} } = JSON.parse(readFileSync(join(root, "deno.json"), "utf8"));
  const entries = typeof exports === "string" ? [exports] : Object.values(exports);
  return [...new Set(["mod.ts", ...entries.map((e) => e.replace(/^\.\//, ""))])];
}

function parseDeno(output) {
  const m = stripAnsi(output).match(
    /^(?:ok|FAILED) \| (\d+) passed(?: \(\d+ steps?\))? \| (\d+) failed/m,
  );
  return m ? { passed: Number(m[1]), failed: Number(m[2]) } : undefined;
}

function parseBun(output) {
  const plain = stripAnsi(output);
  const pass = plain.match(/^\s*(\d+) pass$/m);
  const fail = plain.match(/^\s*(\d+) fail$/m);
  return pass && fail ? { passed: Number(pass[1]), failed: Number(fail[1]) } : undefined;
}

if (!ensureInstalled(env)) {
  console.log("0 passed, 1 failed");
  process.exit(1);
}

const lines = [];
let passed = 0;
let failed = 0;

if (runChecks) {
  const checks = [
    [
      "type check",
      bin("deno"),
      [
        "check",
        "--quiet",
        "--doc",
        ...["mod.ts", "cli.ts", "lib/", "storage/", "transport/", "tests/", "bench/", "examples/"]
          .filter((p) => existsSync(join(root, p))),
      ],
    ],
    ["lint", bin("deno"), ["lint", "--quiet"]],
    ["format", bin("deno"), ["fmt", "--check", "--quiet"]],
    // --quiet hides the warnings about node and bun type packages; lint errors still print.
    ["doc lint", bin("deno"), ["doc", "--lint", "--quiet", ...docEntryPoints()]],
  ];
  for (const [label, cmd, cmdArgs] of checks) {
    const r = await run(label, cmd, cmdArgs);
    lines.push(`${label}: ${r.code === 0 ? "ok" : "FAILED"}`);
    if (r.code !== 0) failed += 1;
  }
}

const suites = {
  deno: [
    bin("deno"),
    [
      "test",
      // The full run also runs the examples in doc comments (lib/, storage/ and transport/
      // hold no test files, so they add only those); a subset of paths runs just its tests.
      ...(paths.length ? [] : ["--doc"]),
      "--allow-all",
      "--unstable-net",
      "--unstable-kv",
      "--no-prompt",
      ...(paths.length ? paths : ["tests/", "mod.ts", "lib/", "storage/", "transport/"]),
    ],
    parseDeno,
  ],
  bun: [bin("bun"), [
    "test",
    "--timeout",
    "60000",
    ...(paths.length ? paths.map((p) => (p.startsWith(".") ? p : `./${p}`)) : ["./tests/"]),
  ], parseBun],
};

for (const rt of runtimes) {
  const [cmd, cmdArgs, parse] = suites[rt];
  const r = await run(`${rt} test`, cmd, cmdArgs);
  const counts = parse(r.output);
  if (counts === undefined) {
    lines.push(`${rt}: no summary found (exit code ${r.code}); counted as 1 failure`);
    failed += 1;
    continue;
  }
  let extra = 0;
  if (r.code !== 0 && counts.failed === 0) extra = 1; // crashed after the tests, or a load error
  passed += counts.passed;
  failed += counts.failed + extra;
  lines.push(
    `${rt}: ${counts.passed} passed, ${counts.failed} failed` +
      (extra ? ` (exit code ${r.code} counted as 1 failure)` : ""),
  );
}

console.log("\n=== summary");
for (const l of lines) console.log(l);
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
