// Mixed Deno/Bun groups as separate processes: the leader (Bun, then Deno) is SIGKILLed and the survivors take over.
//
// BLOCKED, so not named *_test.ts: on a Deno<->Bun connection a bidirectional stream opened
// by the QUIC listener side carries no data back (Bun listener) or none at all (Deno
// listener), so bond handshakes between a Deno and a Bun node time out whenever the
// lower PeerId is the QUIC server (transport/bun_quic.ts #sessionOptions sets no
// initialMaxStreamDataBidiLocal/Remote). Both scenarios pass once bun_quic advertises them;
// then rename this file to mixed_runtime_test.ts.

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
