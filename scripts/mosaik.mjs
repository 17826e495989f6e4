#!/usr/bin/env node
// npm's `mosaik` command: runs cli.ts on the pinned Deno (MOSAIK_RUNTIME=bun for Bun), passing the exit status through.

import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const runtime = process.env.MOSAIK_RUNTIME === "bun" ? "bun" : "deno";
const pinned = join(root, "node_modules", ".bin", runtime);
const bin = existsSync(pinned) ? pinned : runtime;
const cli = join(root, "cli.ts");
const args = runtime === "deno"
  ? ["run", "--allow-all", "--unstable-net", "--unstable-kv", "--no-prompt", cli]
  : [cli];
const result = spawnSync(bin, [...args, ...process.argv.slice(2)], { stdio: "inherit" });
if (result.error !== undefined) {
  console.error(`mosaik: cannot start ${runtime}: ${result.error.message} (run npm install)`);
  process.exit(1);
}
process.exit(result.status ?? 1);
