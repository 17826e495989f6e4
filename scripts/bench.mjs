#!/usr/bin/env node
// `npm run bench`: installs what is missing, then runs the cluster benchmark (bench/run.ts) on the
// pinned Deno, passing flags and exit status through. The node processes it starts run on the
// runtime(s) named by --runtime (the pinned Deno and/or Bun).

import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const bin = (name) => join(root, "node_modules", ".bin", name);

if (!existsSync(bin("deno")) || !existsSync(bin("bun"))) {
  // `npm install`, not `npm ci`: see scripts/test.mjs.
  console.log("first run: npm install (Deno and Bun come from npm, pinned in package.json)");
  const r = spawnSync("npm", ["install", "--no-audit", "--no-fund"], {
    cwd: root,
    stdio: "inherit",
  });
  if (r.status !== 0) {
    console.error("mosaik bench: npm install failed");
    process.exit(1);
  }
}

const args = process.argv.slice(2).filter((a, i) => i > 0 || a !== "--");
const result = spawnSync(
  bin("deno"),
  [
    "run",
    "--allow-all",
    "--unstable-net",
    "--unstable-kv",
    "--no-prompt",
    join(root, "bench", "run.ts"),
    ...args,
  ],
  { cwd: root, stdio: "inherit", env: { ...process.env, DENO_NO_UPDATE_CHECK: "1" } },
);
if (result.error !== undefined) {
  console.error(`mosaik bench: cannot start deno: ${result.error.message}`);
  process.exit(1);
}
process.exit(result.status ?? 1);
