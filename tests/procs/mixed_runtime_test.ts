// Mixed Deno/Bun groups as separate processes: the leader (Bun, then Deno) is SIGKILLed and the survivors take over.
//
// Bonds are opened by the lower PeerId, whichever side dialed, so these also cover streams opened
// by the QUIC listener side between Deno and Bun (which needed per-stream credit in bun_quic).

import { test } from "../harness.ts";
import { leaderFailover } from "./failover.ts";

/** Harness bound on one scenario; every wait inside has its own, shorter deadline. */
const SCENARIO_MS = 60_000;

test(
  "multi-process (Bun leader + 2 Deno): the Bun leader is SIGKILLed, the Deno pair takes over",
  () => leaderFailover({ runtimes: ["bun", "deno", "deno"] }),
  { timeout: SCENARIO_MS },
);

// The reluctant Deno makes the Bun node the likely next leader (logged, not asserted).
test(
  "multi-process (Deno leader + Bun + reluctant Deno): the Deno leader is SIGKILLed, writes continue",
  () => leaderFailover({ runtimes: ["deno", "bun", "deno"], reluctant: [2] }),
  { timeout: SCENARIO_MS },
);
