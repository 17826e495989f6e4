// Structured logging: level filtering, record shape, a throwing logger, consoleLogger output, builder checks.

import { test } from "../harness.ts";
import { assert, assertEquals, assertThrows } from "../assert.ts";
import { consoleLogger, Log, type LogRecord, type LogThreshold } from "../../lib/log/logger.ts";
import { Network } from "../../lib/network/network.ts";

function capture(
  level: LogThreshold,
): { records: LogRecord[]; logger: { level: LogThreshold; log(r: LogRecord): void } } {
  const records: LogRecord[] = [];
  return { records, logger: { level, log: (r) => records.push(r) } };
}

test("log: records below the logger's level are dropped; records carry node, group and peer", () => {
  const { records, logger } = capture("info");
  const log = new Log(logger, "aaaaaaaaaa").forGroup("bbbbbbbbbb");
  assertEquals([log.enabled("debug"), log.enabled("info"), log.enabled("error")], [
    false,
    true,
    true,
  ]);
  log.debug("x.debug", "dropped");
  log.info("bond.up", "Bond up", { role: "initiator" }, "c".repeat(64));
  log.warn("x.warn", "careful");
  log.error("x.error", "bad", { code: 401 });
  assertEquals(records.map((r) => [r.level, r.event]), [
    ["info", "bond.up"],
    ["warn", "x.warn"],
    ["error", "x.error"],
  ]);
  const r = records[0]!;
  assertEquals(r.node, "aaaaaaaaaa");
  assertEquals(r.group, "bbbbbbbbbb");
  assertEquals(r.peer, "cccccccccc", "peers are short hex");
  assertEquals(r.fields, { role: "initiator" });
  assertEquals(r.message, "Bond up");
  assert(typeof r.time === "number" && Math.abs(r.time - Date.now()) < 60_000);
  assertEquals(records[1]!.fields, {});
  assert(!("peer" in records[1]!), "no peer field when there is none");
  const round = JSON.parse(JSON.stringify(r)) as LogRecord;
  assertEquals(round, r, "records are plain data");
});

test("log: no logger or level off logs nothing; a throwing logger is contained", () => {
  const quiet = new Log(undefined, "n");
  assertEquals(quiet.enabled("error"), false);
  quiet.error("x", "nothing happens");
  const { records, logger } = capture("off");
  const off = new Log(logger, "n");
  off.error("x", "dropped");
  assertEquals(records.length, 0);
  let calls = 0;
  const throwing = new Log({
    level: "debug",
    log: () => {
      calls++;
      throw new Error("logger bug");
    },
  }, "n");
  throwing.info("x", "goes to a broken logger"); // does not throw
  assertEquals(calls, 1);
});

test("consoleLogger: one line per record on the console method of its level; json option", () => {
  const original = {
    debug: console.debug,
    info: console.info,
    warn: console.warn,
    error: console.error,
  };
  const lines: [string, string][] = [];
  console.debug = (s: string) => lines.push(["debug", s]);
  console.info = (s: string) => lines.push(["info", s]);
  console.warn = (s: string) => lines.push(["warn", s]);
  console.error = (s: string) => lines.push(["error", s]);
  try {
    const text = new Log(consoleLogger("info"), "aaaaaaaaaa").forGroup("bbbbbbbbbb");
    text.debug("x.debug", "dropped");
    text.info(
      "bond.down",
      "Bond down",
      { code: 101, reason: "Departed", voters: ["a", "b"] },
      "c".repeat(64),
    );
    text.error("group.failed", "Failed");
    const json = new Log(consoleLogger("debug", { json: true }), "aaaaaaaaaa");
    json.debug("x.debug", "kept", { n: 1 });
  } finally {
    Object.assign(console, original);
  }
  assertEquals(lines.map(([m]) => m), ["info", "error", "debug"]);
  const line = lines[0]![1];
  assert(/^\d{4}-\d\d-\d\dT[\d:.]+Z INFO bond\.down /.test(line), line);
  for (
    const part of [
      "node=aaaaaaaaaa",
      "group=bbbbbbbbbb",
      "peer=cccccccccc",
      "code=101",
      'reason="Departed"',
      "voters=a,b",
      "Bond down",
    ]
  ) {
    assert(line.includes(part), `${part} in ${line}`);
  }
  const parsed = JSON.parse(lines[2]![1]) as LogRecord;
  assertEquals([parsed.level, parsed.event, parsed.fields], ["debug", "x.debug", { n: 1 }]);
  assertThrows(() => consoleLogger("loud" as LogThreshold), RangeError, "log level");
});

test("network builder: withLogger and withMetrics check their arguments", () => {
  const b = Network.builder("logger-test");
  assertThrows(() => b.withLogger({} as never), TypeError, "logger");
  assertThrows(() => b.withLogger({ level: "verbose", log: () => {} } as never), RangeError);
  assertThrows(() => b.withMetrics({ port: 65536 }), RangeError, "port");
  b.withLogger(consoleLogger("off")).withMetrics({ port: 0, host: "127.0.0.1" });
});
