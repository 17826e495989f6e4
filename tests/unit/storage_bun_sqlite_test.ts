// Tests for BunSqliteLogStore: the storage conformance suite on Bun, the open-time checks, and the error on Deno.

import { spawnSync } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { BunSqliteLogStore } from "../../storage/bun_sqlite.ts";
import {
  StoreCorruptError,
  StoreLockedError,
  StoreOwnerError,
  StoreVersionError,
} from "../../storage/errors.ts";
import type { LogEntry, Storage } from "../../storage/types.ts";
import { SystemEntry } from "../../storage/types.ts";
import { assert, assertEquals, assertThrows } from "../assert.ts";
import { assertSynchronous, runStorageConformance } from "../conformance/storage.ts";
import { runtime, test } from "../harness.ts";

/** The directory each store of the conformance suite lives in, to remove it on dispose. */
const dirs = new WeakMap<Storage<unknown>, string>();

async function tempDir(): Promise<string> {
  return await mkdtemp(join(tmpdir(), "mosaik-sqlite-"));
}

/** Runs `fn` with a fresh temporary directory and removes the directory afterwards. */
async function withDir(fn: (dir: string) => Promise<void> | void): Promise<void> {
  const dir = await tempDir();
  try {
    await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Entries 1..=n with the given term. */
function entries(n: number, term = 1): LogEntry<unknown>[] {
  return Array.from({ length: n }, (_, i) => ({
    index: i + 1,
    term,
    command: { op: "set", key: `k${i + 1}`, value: i + 1 },
  }));
}

/** A store at `path` holding entries 1..=5 (terms 1,1,2,2,3), a hard state and an owner, closed. */
function seed(path: string): LogEntry<unknown>[] {
  const store = BunSqliteLogStore.open(path);
  const log = [1, 1, 2, 2, 3].map((term, i) => ({
    index: i + 1,
    term,
    command: i === 2 ? SystemEntry.noop() : { n: i + 1 },
  }));
  store.claim({ group: "aa".repeat(32), member: "bb".repeat(32) });
  store.append(log);
  store.saveHardState({ term: 3, votedFor: "0a0b" });
  store.close();
  return log;
}

/** Opens `path` and checks it still holds exactly what {@link seed} wrote. */
function expectSeeded(path: string, log: LogEntry<unknown>[]): void {
  const store = BunSqliteLogStore.open(path);
  try {
    assertEquals(store.last(), { term: 3, index: 5 });
    assertEquals(store.getRange(1, 5), log);
    assertEquals(store.loadHardState(), { term: 3, votedFor: "0a0b" });
    store.claim({ group: "aa".repeat(32), member: "bb".repeat(32) });
  } finally {
    store.close();
  }
}

/** Asserts that `fn` throws an instance of `cls` and that the file at `path` is byte-for-byte unchanged. */
async function expectRefusedUnchanged(
  path: string,
  fn: () => unknown,
  cls: NonNullable<Parameters<typeof assertThrows>[1]>,
  includes: string,
): Promise<Error> {
  const before = await readFile(path);
  const err = assertThrows(fn, cls, includes);
  const after = await readFile(path);
  assert(before.equals(after), `${path} should be unchanged after a refused open`);
  return err;
}

// ---------------------------------------------------------------------------
// Raw access to the SQLite file, to damage a closed store the way a disk or a person might.

interface RawStatement {
  values(...params: unknown[]): unknown[][];
  finalize(): void;
}
interface RawDatabase {
  prepare(sql: string): RawStatement;
  close(throwOnError?: boolean): void;
}

/** Runs `sql` on the file at `path` with plain bun:sqlite and returns the rows of the last statement. */
function raw(path: string, ...statements: [string, ...unknown[]][]): unknown[][] {
  const require = (import.meta as { require?: (id: string) => unknown }).require;
  if (require === undefined) throw new Error("Cannot open raw database: not on Bun");
  const { Database } = require("bun:sqlite") as { Database: new (path: string) => RawDatabase };
  const db = new Database(path);
  try {
    let out: unknown[][] = [];
    for (const [sql, ...params] of statements) {
      const stmt = db.prepare(sql);
      try {
        out = stmt.values(...params);
      } finally {
        stmt.finalize();
      }
    }
    return out;
  } finally {
    db.close(true);
  }
}

// ---------------------------------------------------------------------------

if (runtime === "bun") {
  runStorageConformance("BunSqliteLogStore", {
    async create() {
      const dir = await tempDir();
      const store = BunSqliteLogStore.open(join(dir, "log.db"));
      dirs.set(store, dir);
      return store;
    },
    reopen(store) {
      const dir = dirs.get(store);
      if (dir === undefined) throw new Error("Cannot reopen: unknown store");
      store.close?.();
      const next = BunSqliteLogStore.open(join(dir, "log.db"));
      dirs.set(next, dir);
      return Promise.resolve(next);
    },
    async dispose(store) {
      const dir = dirs.get(store);
      if (dir !== undefined) await rm(dir, { recursive: true, force: true });
    },
  }, { timeout: 60_000 });

  test("BunSqliteLogStore: every method answers synchronously", () =>
    withDir((dir) => {
      assertSynchronous(BunSqliteLogStore.open<string>(join(dir, "log.db")));
    }));

  test("BunSqliteLogStore: a second open of the same path throws StoreLockedError until the first closes", () =>
    withDir((dir) => {
      const path = join(dir, "log.db");
      const first = BunSqliteLogStore.open(path);
      first.append(entries(3));
      const err = assertThrows(
        () => BunSqliteLogStore.open(path),
        StoreLockedError,
        "in use by another opener",
      );
      assertEquals((err as StoreLockedError).path, path);
      // The refused opener disturbed nothing: the first one keeps working.
      first.append([{ index: 4, term: 2, command: "after" }]);
      assertEquals(first.last(), { term: 2, index: 4 });
      first.close();
      const second = BunSqliteLogStore.open(path);
      try {
        assertEquals(second.last(), { term: 2, index: 4 });
        assertEquals(second.getRange(1, 3), entries(3));
      } finally {
        second.close();
      }
    }));

  test("BunSqliteLogStore: another process cannot open a store this process holds", () =>
    withDir((dir) => {
      const path = join(dir, "log.db");
      const moduleUrl = new URL("../../storage/bun_sqlite.ts", import.meta.url);
      const script = `
        import { BunSqliteLogStore } from ${JSON.stringify(fileURLToPath(moduleUrl))};
        try {
          BunSqliteLogStore.open(${JSON.stringify(path)}).close();
          console.log("opened");
        } catch (err) {
          console.log(err.name);
        }
      `;
      const run = () => {
        const child = spawnSync(process.execPath, ["-e", script], { encoding: "utf8" });
        assertEquals(child.status, 0, `child failed: ${child.stderr}`);
        return child.stdout.trim();
      };
      const store = BunSqliteLogStore.open(path);
      try {
        store.append(entries(2));
        assertEquals(run(), "StoreLockedError");
      } finally {
        store.close();
      }
      assertEquals(run(), "opened");
    }));

  test("BunSqliteLogStore: a new store is created at an absent path; a missing directory is a clear error", () =>
    withDir((dir) => {
      const store = BunSqliteLogStore.open(join(dir, "new.db"));
      try {
        assertEquals(store.last(), { term: 0, index: 0 });
        assertEquals(store.available(), { start: 1, end: 0 });
        assertEquals(store.loadHardState(), undefined);
      } finally {
        store.close();
      }
      assertThrows(
        () => BunSqliteLogStore.open(join(dir, "missing", "log.db")),
        Error,
        "Cannot open store",
      );
    }));

  test("BunSqliteLogStore: methods after close throw a clear error", () =>
    withDir((dir) => {
      const store = BunSqliteLogStore.open(join(dir, "log.db"));
      store.append(entries(1));
      store.close();
      assertThrows(() => store.append(entries(1)), Error, "Cannot append: store is closed");
      assertThrows(() => store.get(1), Error, "Cannot get: store is closed");
      assertThrows(() => store.last(), Error, "store is closed");
      assertThrows(() => store.saveHardState({ term: 1 }), Error, "store is closed");
      store.close();
    }));

  test("BunSqliteLogStore: a file that is not SQLite is refused as corrupt and left unchanged", () =>
    withDir(async (dir) => {
      const path = join(dir, "log.db");
      await writeFile(path, "these bytes are not an SQLite database, ".repeat(40));
      const err = await expectRefusedUnchanged(
        path,
        () => BunSqliteLogStore.open(path),
        StoreCorruptError,
        "it is corrupt",
      );
      assert(err.cause !== undefined, "the SQLite error should be the cause");
    }));

  test("BunSqliteLogStore: another application's database is refused and left unchanged", () =>
    withDir(async (dir) => {
      const path = join(dir, "other.db");
      raw(path, ["CREATE TABLE users (name TEXT)"], ["INSERT INTO users VALUES ('ann')"]);
      await expectRefusedUnchanged(
        path,
        () => BunSqliteLogStore.open(path),
        StoreCorruptError,
        "not a mosaik log store",
      );
      const other = join(dir, "other-meta.db");
      raw(other, ["CREATE TABLE meta (id INTEGER, data TEXT)"], [
        "INSERT INTO meta VALUES (1, 'x')",
      ]);
      await expectRefusedUnchanged(
        other,
        () => BunSqliteLogStore.open(other),
        StoreCorruptError,
        "not a mosaik log store",
      );
      assertEquals(raw(path, ["SELECT name FROM users"]), [["ann"]]);
    }));

  test("BunSqliteLogStore: another format version is refused with StoreVersionError", () =>
    withDir(async (dir) => {
      const path = join(dir, "log.db");
      const log = seed(path);
      raw(path, ["UPDATE meta SET value = 99 WHERE key = 'format'"]);
      const err = await expectRefusedUnchanged(
        path,
        () => BunSqliteLogStore.open(path),
        StoreVersionError,
        "format version 99",
      );
      assertEquals((err as StoreVersionError).found, 99);
      assertEquals((err as StoreVersionError).expected, 1);
      raw(path, ["UPDATE meta SET value = 1 WHERE key = 'format'"]);
      expectSeeded(path, log);
    }));

  test("BunSqliteLogStore: a hole in the log is found at open and nothing is changed", () =>
    withDir(async (dir) => {
      const path = join(dir, "log.db");
      const log = seed(path);
      const [row] = raw(path, ["SELECT idx, term, entry FROM log WHERE idx = 3"]);
      assert(row !== undefined, "entry 3 should be stored");
      raw(path, ["DELETE FROM log WHERE idx = 3"]);
      await expectRefusedUnchanged(
        path,
        () => BunSqliteLogStore.open(path),
        StoreCorruptError,
        "entry 3 is missing",
      );
      raw(path, ["INSERT INTO log (idx, term, entry) VALUES (?, ?, ?)", ...row]);
      expectSeeded(path, log);
    }));

  test("BunSqliteLogStore: a decreasing term or a log not starting after the prefix is found at open", () =>
    withDir(async (dir) => {
      const path = join(dir, "log.db");
      const log = seed(path);
      raw(path, ["UPDATE log SET term = 1 WHERE idx = 4"]);
      await expectRefusedUnchanged(
        path,
        () => BunSqliteLogStore.open(path),
        StoreCorruptError,
        "entry 4 has term 1, below the previous term 2",
      );
      raw(path, ["UPDATE log SET term = 2 WHERE idx = 4"]);
      raw(path, ["INSERT INTO meta (key, value) VALUES ('prefix_index', 2), ('prefix_term', 1)"]);
      await expectRefusedUnchanged(
        path,
        () => BunSqliteLogStore.open(path),
        StoreCorruptError,
        "the log starts at index 1, expected 3",
      );
      raw(path, ["DELETE FROM meta WHERE key IN ('prefix_index', 'prefix_term')"]);
      expectSeeded(path, log);
    }));

  test("BunSqliteLogStore: an entry that does not decode is reported on get, naming its index", () =>
    withDir((dir) => {
      const path = join(dir, "log.db");
      const log = seed(path);
      const [[good] = []] = raw(path, ["SELECT entry FROM log WHERE idx = 2"]);
      raw(path, ["UPDATE log SET entry = ? WHERE idx = 2", new Uint8Array([0xff, 0x00, 0x13])]);
      const store = BunSqliteLogStore.open(path);
      try {
        const err = assertThrows(() => store.get(2), StoreCorruptError, "entry 2 does not decode");
        assert(err.cause !== undefined, "the decode error should be the cause");
        assertThrows(() => store.getRange(1, 5), StoreCorruptError, "entry 2 does not decode");
        assertEquals(store.get(1), log[0]);
        assertEquals(store.getRange(3, 5), log.slice(2));
        assertEquals(store.termAt(2), 1);
      } finally {
        store.close();
      }
      raw(path, ["UPDATE log SET entry = ? WHERE idx = 2", good]);
      expectSeeded(path, log);
    }));

  test("BunSqliteLogStore: an entry stored at the wrong index is reported on get", () =>
    withDir((dir) => {
      const path = join(dir, "log.db");
      seed(path);
      const [[other] = []] = raw(path, ["SELECT entry FROM log WHERE idx = 1"]);
      raw(path, ["UPDATE log SET entry = ? WHERE idx = 2", other]);
      const store = BunSqliteLogStore.open(path);
      try {
        assertThrows(() => store.get(2), StoreCorruptError, "entry 2 holds the bytes of entry 1:1");
      } finally {
        store.close();
      }
    }));

  test("BunSqliteLogStore: a reopened store refuses another group or member and changes nothing", () =>
    withDir((dir) => {
      const path = join(dir, "log.db");
      const log = seed(path);
      const store = BunSqliteLogStore.open(path);
      try {
        const err = assertThrows(
          () => store.claim({ group: "cc".repeat(32), member: "bb".repeat(32) }),
          StoreOwnerError,
          "holds the log of group",
        );
        assertEquals((err as StoreOwnerError).owner.group, "aa".repeat(32));
        assertThrows(
          () => store.claim({ group: "aa".repeat(32), member: "dd".repeat(32) }),
          StoreOwnerError,
          "belongs to member",
        );
      } finally {
        store.close();
      }
      expectSeeded(path, log);
      // The refused claims were not recorded either.
      assertEquals(
        raw(path, ["SELECT value FROM meta WHERE key IN ('group', 'member') ORDER BY key"]),
        [[
          "aa".repeat(32),
        ], ["bb".repeat(32)]],
      );
    }));
} else {
  test("BunSqliteLogStore: open on Deno throws a clear error naming DenoKvLogStore", () =>
    withDir(async (dir) => {
      const path = join(dir, "log.db");
      assertThrows(
        () => BunSqliteLogStore.open(path),
        Error,
        "Cannot open BunSqliteLogStore: bun:sqlite is only available on Bun (on Deno use DenoKvLogStore",
      );
      // Nothing was created on the way.
      let exists = true;
      await readFile(path).catch(() => {
        exists = false;
      });
      assert(!exists, `${path} should not have been created`);
    }));
}
