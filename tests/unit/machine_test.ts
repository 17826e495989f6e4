// Tests for the state machine types: NoOp, LeadershipPreference, LogReplaySync.

import { test } from "../harness.ts";
import { assert, assertEquals, assertThrows } from "../assert.ts";
import { LeadershipPreference } from "../../lib/machine/leadership.ts";
import { LogReplaySync } from "../../lib/machine/log_replay.ts";
import { NoOp } from "../../lib/machine/noop.ts";
import type {
  ApplyContext,
  CommandOf,
  QueryOf,
  ResultOf,
  StateMachine,
} from "../../lib/machine/state_machine.ts";
import { Cursor } from "../../lib/primitives/cursor.ts";

const ctx: ApplyContext = {
  committed: () => Cursor.of(1, 1),
  logPosition: () => Cursor.of(1, 1),
  currentTerm: () => 1,
};

test("NoOp accepts null commands and answers null", () => {
  const m = new NoOp();
  assertEquals(m.signature(), "mosaik/noop/v1");
  m.apply(null, ctx);
  assertEquals(m.query(null), null);
  // type-level: NoOp's command, query and result types are all null
  const c: CommandOf<NoOp> = null;
  const q: QueryOf<NoOp> = null;
  const r: ResultOf<NoOp> = null;
  assertEquals([c, q, r], [null, null, null]);
});

test("a user state machine fits the interface and its types are extracted", () => {
  class Counter implements StateMachine<{ add: number }, "get", number> {
    value = 0;
    signature() {
      return "counter/v1";
    }
    apply(cmd: { add: number }) {
      this.value += cmd.add;
    }
    applyBatch(cmds: { add: number }[], c: ApplyContext) {
      for (const cmd of cmds) this.apply(cmd);
      assertEquals(c.currentTerm(), 1);
    }
    query(_q: "get") {
      return this.value;
    }
    leadershipPreference() {
      return LeadershipPreference.Reluctant();
    }
  }
  const m = new Counter();
  m.applyBatch([{ add: 2 }, { add: 3 }], ctx);
  assertEquals(m.query("get"), 5);
  const cmd: CommandOf<Counter> = { add: 1 };
  // @ts-expect-error a string is not a Counter command
  const bad: CommandOf<Counter> = "add";
  assert(cmd.add === 1 && (bad as unknown) === "add");
});

test("LeadershipPreference variants and multipliers", () => {
  assertEquals(LeadershipPreference.Normal, { kind: "normal" });
  assertEquals(LeadershipPreference.Observer, { kind: "observer" });
  assertEquals(LeadershipPreference.Reluctant(), { kind: "reluctant", factor: 3 });
  assertEquals(LeadershipPreference.Reluctant(5), { kind: "reluctant", factor: 5 });
  assertEquals(LeadershipPreference.multiplier(LeadershipPreference.Normal), 1);
  assertEquals(LeadershipPreference.multiplier(LeadershipPreference.Reluctant(4)), 4);
  assertEquals(LeadershipPreference.multiplier(LeadershipPreference.Observer), Infinity);
  assert(LeadershipPreference.canVote(LeadershipPreference.Reluctant()));
  assert(!LeadershipPreference.canVote(LeadershipPreference.Observer));
  for (const bad of [0, -2, 1.5, NaN]) {
    assertThrows(() => LeadershipPreference.Reluctant(bad), RangeError, "factor");
  }
  assertThrows(() => LeadershipPreference.Reluctant("3" as unknown as number), TypeError);
  assert(Object.isFrozen(LeadershipPreference.Reluctant(2)));
});

test("LogReplaySync defaults, options and validation", () => {
  const s = new LogReplaySync();
  assertEquals([s.batchSize, s.fetchTimeout], [2000, 25_000]);
  assertEquals(s.signature(), "mosaik/log-replay/v1");
  const t = new LogReplaySync({ batchSize: 10, fetchTimeout: 100 });
  assertEquals([t.batchSize, t.fetchTimeout], [10, 100]);
  assertEquals(t.signature(), s.signature(), "tuning does not change the signature");
  assertThrows(() => new LogReplaySync({ batchSize: 0 }), RangeError, "batchSize");
  assertThrows(() => new LogReplaySync({ fetchTimeout: 1.5 }), RangeError, "fetchTimeout");
  assertThrows(
    () => new LogReplaySync({ batchSize: "1" as unknown as number }),
    TypeError,
    "batchSize",
  );
});
