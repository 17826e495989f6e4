// Tests for the Group error classes: names, messages, carried data, class relations.

import { test } from "../harness.ts";
import { assert, assertEquals, assertThrows } from "../assert.ts";
import {
  CommandLostError,
  EncodingError,
  GroupTerminatedError,
  NoCommandsError,
  OfflineError,
} from "../../lib/groups/errors.ts";
import { EncodingError as WireEncodingError } from "../../lib/wire/errors.ts";

function sentenceCase(message: string): void {
  assert(/^[A-Z]/.test(message), `message starts lower case: ${message}`);
  assert(!message.endsWith("."), `message ends with a period: ${message}`);
}

test("OfflineError carries the unsent commands for retry", () => {
  const commands = [{ add: 1 }, { add: 2 }];
  const err = new OfflineError({ kind: "commands", commands });
  assert(err instanceof Error);
  assert(err instanceof OfflineError);
  assertEquals(err.name, "OfflineError");
  assertEquals(err.message, "Cannot send 2 commands: no leader is reachable");
  assertEquals(err.commands, commands);
  assertEquals(err.query, undefined);
  assertEquals(err.unsent.kind, "commands");
  sentenceCase(err.message);
});

test("OfflineError names one command in the singular and takes a reason and a cause", () => {
  const cause = new Error("stream reset");
  const err = new OfflineError(
    { kind: "commands", commands: ["x"] },
    "forwarding to the leader timed out after 2000 ms",
    { cause },
  );
  assertEquals(
    err.message,
    "Cannot send command: forwarding to the leader timed out after 2000 ms",
  );
  assertEquals(err.cause, cause);
});

test("OfflineError carries the unsent query, even a null one", () => {
  const err = new OfflineError({ kind: "query", query: null });
  assertEquals(err.message, "Cannot run query: no leader is reachable");
  assertEquals(err.unsent, { kind: "query", query: null });
  assertEquals(err.query, null);
  assertEquals(err.commands, []);
  sentenceCase(err.message);
});

test("NoCommandsError is a RangeError named after the refused call", () => {
  const err = new NoCommandsError("executeMany");
  assert(err instanceof RangeError);
  assertEquals(err.name, "NoCommandsError");
  assertEquals(err.message, "Cannot executeMany: the list of commands is empty");
  sentenceCase(new NoCommandsError().message);
});

test("GroupTerminatedError says the group is closed", () => {
  const err = new GroupTerminatedError("execute command");
  assertEquals(err.name, "GroupTerminatedError");
  assertEquals(err.message, "Cannot execute command: group is closed");
  assertEquals(new GroupTerminatedError().message, "Group is closed");
  sentenceCase(err.message);
});

test("CommandLostError carries the index and term it had been given", () => {
  const err = new CommandLostError(17, 3);
  assertEquals(err.name, "CommandLostError");
  assertEquals(err.index, 17);
  assertEquals(err.term, 3);
  assert(err.message.includes("index 17") && err.message.includes("term 3"));
  sentenceCase(err.message);
});

test("EncodingError is the wire layer's class, re-exported, not a copy", () => {
  assert(EncodingError === WireEncodingError);
  const err = assertThrows(() => {
    throw new EncodingError("$.f", "a function is not CBOR-encodable");
  }, EncodingError);
  assertEquals(err.name, "EncodingError");
});

test("the error classes are distinct: catching one does not catch another", () => {
  const errors = [
    new OfflineError({ kind: "commands", commands: [] }),
    new NoCommandsError(),
    new GroupTerminatedError(),
    new CommandLostError(1, 1),
  ];
  const classes = [OfflineError, NoCommandsError, GroupTerminatedError, CommandLostError];
  errors.forEach((err, i) => {
    classes.forEach((cls, j) =>
      assertEquals(err instanceof cls, i === j, `${err.name} vs ${cls.name}`)
    );
  });
});
