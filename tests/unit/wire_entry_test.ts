// The entry codec stores use: user commands and SystemEntry round-trip; malformed bytes are refused.

import { test } from "../harness.ts";
import { assert, assertEquals, assertThrows } from "../assert.ts";
import { type LogEntry, SystemEntry } from "../../storage/types.ts";
import {
  assertEncodable,
  decode,
  decodeEntry,
  DecodeError,
  encode,
  encodeEntry,
  EncodingError,
} from "../../lib/wire/mod.ts";
import { decodeOwnedEntry, entryBytes } from "../../lib/wire/entry.ts";

function roundTrip<C>(entry: LogEntry<C>): LogEntry<C> {
  return decodeEntry<C>(encodeEntry(entry));
}

test("entry: user commands round-trip", () => {
  const commands: unknown[] = [
    null,
    undefined,
    0,
    -0,
    "set x",
    { op: "put", key: new Uint8Array([1, 2]), value: 2n ** 80n },
    [1, new Map([["a", new Set([1])]])],
    // Looks like a system body, but it is a plain object: it stays a user command.
    { type: "noop" },
  ];
  for (const command of commands) {
    const back = roundTrip({ index: 7, term: 3, command });
    assertEquals(back, { index: 7, term: 3, command }, String(command));
    assert(!(back.command instanceof SystemEntry));
  }
});

test("entry: SystemEntry values round-trip as SystemEntry instances", () => {
  const entries = [
    { index: 1, term: 1, command: SystemEntry.noop() },
    {
      index: 1,
      term: 1,
      command: new SystemEntry({ type: "bootstrap", clusterId: "00ff", voters: ["aa"] }),
    },
    {
      index: 2,
      term: 1,
      command: new SystemEntry({ type: "membership", voters: ["aa", "bb"], learners: [] }),
    },
    {
      index: Number.MAX_SAFE_INTEGER,
      term: 2 ** 40,
      command: new SystemEntry({ type: "membership", voters: [], learners: ["cc"] }),
    },
  ];
  for (const entry of entries) {
    const back = roundTrip(entry);
    assert(back.command instanceof SystemEntry, "a SystemEntry again");
    assertEquals(back, entry);
  }
});

test("entry: the encoding is [index, term, kind, payload]", () => {
  assertEquals(decode(encodeEntry({ index: 5, term: 2, command: { a: 1 } })), [5, 2, 0, { a: 1 }]);
  assertEquals(decode(encodeEntry({ index: 5, term: 2, command: SystemEntry.noop() })), [
    5,
    2,
    1,
    { type: "noop" },
  ]);
  const membership = new SystemEntry({ type: "membership", voters: ["a"], learners: ["b"] });
  assertEquals(decode(encodeEntry({ index: 1, term: 1, command: membership })), [
    1,
    1,
    1,
    { type: "membership", voters: ["a"], learners: ["b"] },
  ]);
});

test("entry: a SystemEntry is never plain data, so no command can pose as one", () => {
  assertThrows(
    () => assertEncodable(SystemEntry.noop()),
    EncodingError,
    "an instance of SystemEntry",
  );
  const err = assertThrows(
    () => encodeEntry({ index: 1, term: 1, command: { inner: SystemEntry.noop() } }),
    EncodingError,
  ) as EncodingError;
  assertEquals(err.path, "$.inner");
  assertThrows(() => encode([SystemEntry.noop()]), EncodingError, "$[0]");
});

test("entry: a command that is not encodable is refused with its path", () => {
  const err = assertThrows(
    () => encodeEntry({ index: 1, term: 1, command: { list: [1, new Date()] } }),
    EncodingError,
  ) as EncodingError;
  assertEquals(err.path, "$.list[1]");
});

test("entry: encode refuses bad positions and malformed system bodies", () => {
  for (const [index, term] of [[-1, 1], [1, -1], [1.5, 1], [1, NaN], [2 ** 53, 1], [1, Infinity]]) {
    assertThrows(
      () => encodeEntry({ index: index!, term: term!, command: null }),
      RangeError,
      "non-negative safe integers",
    );
  }
  const bad = new SystemEntry({ type: "membership", voters: [1], learners: [] } as never);
  assertThrows(() => encodeEntry({ index: 1, term: 1, command: bad }), TypeError, "system entry");
  const unknown = new SystemEntry({ type: "split" } as never);
  assertThrows(() => encodeEntry({ index: 1, term: 1, command: unknown }), TypeError);
});

test("entry: decode refuses every malformed shape", () => {
  const cases: [unknown, string][] = [
    [{ index: 1 }, "array of 4"],
    [[1, 1, 0], "array of 4"],
    [[1, 1, 0, null, null], "array of 4"],
    [[-1, 1, 0, null], "index"],
    [[1.5, 1, 0, null], "index"],
    [["1", 1, 0, null], "index"],
    [[1n, 1, 0, null], "index"],
    [[2 ** 53, 1, 0, null], "index"],
    [[1, -1, 0, null], "term"],
    [[1, null, 0, null], "term"],
    [[1, 1, 2, null], "unknown kind 2"],
    [[1, 1, "0", null], "unknown kind"],
    [[1, 1, -0.5, null], "unknown kind"],
    [[1, 1, 1, null], "system entry body"],
    [[1, 1, 1, []], "system entry body"],
    [[1, 1, 1, "noop"], "system entry body"],
    [[1, 1, 1, { type: "split" }], "system entry body"],
    [[1, 1, 1, { type: "noop", extra: 1 }], "system entry body"],
    [[1, 1, 1, { type: "membership", voters: [] }], "system entry body"],
    [[1, 1, 1, { type: "membership", voters: [], learners: [1] }], "system entry body"],
    [[1, 1, 1, { type: "membership", voters: "a", learners: [] }], "system entry body"],
    [[1, 1, 1, { type: "membership", voters: [], learners: [], x: 1 }], "system entry body"],
    [[1, 1, 1, new Map([["type", "noop"]])], "system entry body"],
  ];
  for (const [value, includes] of cases) {
    assertThrows(() => decodeEntry(encode(value)), DecodeError, includes);
  }
  assertThrows(() => decodeEntry(new Uint8Array(0)), DecodeError);
  assertThrows(() => decodeEntry(new Uint8Array([0xff, 0x00])), DecodeError);
  const good = encodeEntry({ index: 1, term: 1, command: "x" });
  assertThrows(() => decodeEntry(new Uint8Array([...good, 0])), DecodeError, "trailing");
  assertThrows(() => decodeEntry(good.subarray(0, good.length - 1)), DecodeError);
});

test("entry: entryBytes encodes an entry object once and encodeEntry hands out copies", () => {
  const entry = { index: 9, term: 2, command: { op: "set", key: "k", value: "v" } };
  const shared = entryBytes(entry);
  assert(entryBytes(entry) === shared, "the same entry object gives the same bytes");
  assertEquals(shared, encodeEntry(entry));
  const copy = encodeEntry(entry);
  assert(copy !== shared && copy !== encodeEntry(entry), "encodeEntry returns a new buffer");
  copy.fill(0);
  assertEquals(decodeEntry(entryBytes(entry)), entry, "changing a copy leaves the encoding");
  // A different but equal object is encoded on its own, to the same bytes.
  const twin = { ...entry };
  assert(entryBytes(twin) !== shared);
  assertEquals(entryBytes(twin), shared);
  // Unencodable commands still fail, and nothing is remembered for them.
  const bad = { index: 1, term: 1, command: { at: new Date(0) } };
  assertThrows(() => entryBytes(bad), EncodingError);
  assertThrows(() => entryBytes(bad), EncodingError);
});

test("entry: decodeOwnedEntry keeps the bytes it decoded as the entry's encoding", () => {
  const bytes = encodeEntry({ index: 4, term: 1, command: ["a", 1] });
  const entry = decodeOwnedEntry(bytes);
  assertEquals(entry, { index: 4, term: 1, command: ["a", 1] });
  assert(entryBytes(entry) === bytes);
  assertThrows(() => decodeOwnedEntry(new Uint8Array([0x83, 1, 2, 3])), DecodeError);
});

test("entry: an entry object reused for another entry is encoded again", () => {
  const entry = { index: 1, term: 1, command: { n: 1 } as unknown };
  const first = entryBytes(entry);
  entry.index = 2;
  entry.command = { n: 2 };
  const second = entryBytes(entry);
  assert(second !== first);
  assertEquals(decodeEntry(second), { index: 2, term: 1, command: { n: 2 } });
  assertEquals(encodeEntry(entry), second);
  assertEquals(decodeEntry(first), { index: 1, term: 1, command: { n: 1 } });
});
