// Members with durable stores as separate processes (Deno KV on Deno, SQLite on Bun), SIGKILLed and restarted.

import { runtime, test } from "../harness.ts";
import { followerRestart, wholeGroupRestart } from "./restart.ts";

/** Harness bound on one scenario; every wait inside has its own, shorter deadline. */
const SCENARIO_MS = 90_000;

const store = runtime === "deno" ? "Deno KV" : "SQLite";

test(
  `multi-process (3 ${runtime}, ${store}): all members SIGKILLed and restarted keep the committed state`,
  () => wholeGroupRestart(runtime),
  { timeout: SCENARIO_MS },
);

test(
  `multi-process (3 ${runtime}, ${store}): a SIGKILLed follower rejoins as the same member and catches up`,
  () => followerRestart(runtime),
  { timeout: SCENARIO_MS },
);
