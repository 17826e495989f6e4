// Shared by the npm entry scripts (start, bench, test): install the pinned runtimes when missing,
// and run a TypeScript entry point on the pinned Deno, passing the exit status through.

import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";

/** The repository root. */
export const root = join(dirname(fileURLToPath(import.meta.url)), "..");

/** The path of a pinned binary in node_modules/.bin. */
export const bin = (name) => join(root, "node_modules", ".bin", name);

/**
 * Runs `npm install` when the pinned Deno or Bun is missing (a fresh clone).
 * `npm install`, not `npm ci`: cbor-extract names optional platform packages
 * the registry does not serve, which `npm ci` treats as a lock-file mismatch.
 *
 * @returns false when the install failed (npm printed why)
 */
export function ensureInstalled(env = process.env) {
  if (existsSync(bin("deno")) && existsSync(bin("bun"))) return true;
  console.log("first run: npm install (Deno and Bun come from npm, pinned in package.json)");
  const r = spawnSync("npm", ["install", "--no-audit", "--no-fund"], {
    cwd: root,
    stdio: "inherit",
    env,
  });
  return r.status === 0;
}

/**
 * Installs if needed, then runs `args` (a script and its fixed arguments, relative to the root)
 * on the pinned Deno with the user's command-line flags appended, and exits with its status.
 *
 * @param label the command's name in error messages, e.g. "mosaik demo"
 */
export function runOnDeno(label, args) {
  if (!ensureInstalled()) {
    console.error(`${label}: npm install failed`);
    process.exit(1);
  }
  const user = process.argv.slice(2).filter((a, i) => i > 0 || a !== "--");
  const [script, ...fixed] = args;
  const result = spawnSync(
    bin("deno"),
    [
      "run",
      "--allow-all",
      "--unstable-net",
      "--unstable-kv",
      "--no-prompt",
      join(root, script),
      ...fixed,
      ...user,
    ],
    { cwd: root, stdio: "inherit", env: { ...process.env, DENO_NO_UPDATE_CHECK: "1" } },
  );
  if (result.error !== undefined) {
    console.error(`${label}: cannot start deno: ${result.error.message}`);
    process.exit(1);
  }
  process.exit(result.status ?? 1);
}
