// Three group members as separate Deno processes over real QUIC: the leader is SIGKILLed, the other two elect a new one and keep committing.

import { test } from "../harness.ts";
import { leaderFailover } from "./failover.ts";

/** Harness bound on one scenario; every wait inside has its own, shorter deadline. */
const SCENARIO_MS = 60_000;

test(
  "multi-process (3 Deno): leader SIGKILLed, the other two elect a new leader and keep writing",
  () => leaderFailover({ runtimes: ["deno", "deno", "deno"] }),
  { timeout: SCENARIO_MS },
);
