// Tests for BunSqliteWorkerStore: the storage conformance suite on Bun, errors keeping their class across the thread, the file shared with BunSqliteLogStore, and the error on Deno.

import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BunSqliteLogStore } from "../../storage/bun_sqlite.ts";
import { BunSqliteWorkerStore } from "../../storage/bun_sqlite_worker.ts";
import { StoreLockedError, StoreOwnerError } from "../../storage/errors.ts";
import { type LogEntry, type Storage, SystemEntry } from "../../storage/types.ts";
import { EncodingError } from "../../lib/wire/errors.ts";
import { assert, assertEquals, assertRejects, assertThrows } from "../assert.ts";
import { runStorageConformance } from "../conformance/storage.ts";
import { runtime, test } from "../harness.ts";

/** The directory each store lives in, to remove it on dispose. */
const dirs = new WeakMap<Storage<unknown>, string>();

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), "mosaik-sqlite-worker-"));
  try {
    await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

const log: LogEntry<unknown>[] = [
  { index: 1, term: 1, command: { op: "set", key: "a", value: new Uint8Array([1, 2]) } },
  { index: 2, term: 1, command: SystemEntry.noop() },
  { index: 3, term: 2, command: new Map([["k", 2n ** 70n]]) },
];

if (runtime === "bun") {
  runStorageConformance("BunSqliteWorkerStore", {
    async create() {
      const dir = await mkdtemp(join(tmpdir(), "mosaik-sqlite-worker-"));
      const store = await BunSqliteWorkerStore.open(join(dir, "log.db"));
      dirs.set(store, dir);
      return store;
    },
    async reopen(store) {
      const dir = dirs.get(store);
      if (dir === undefined) throw new Error("Cannot reopen: unknown store");
      await store.close?.();
      const next = await BunSqliteWorkerStore.open(join(dir, "log.db"));
      dirs.set(next, dir);
      return next;
    },
    async dispose(store) {
      const dir = dirs.get(store);
      if (dir !== undefined) await rm(dir, { recursive: true, force: true });
    },
  }, { timeout: 60_000 });

  test("BunSqliteWorkerStore: errors from the thread keep their class and fields", () =>
    withDir(async (dir) => {
      const path = join(dir, "log.db");
      const store = await BunSqliteWorkerStore.open(path);
      try {
        const locked = await assertRejects(() => BunSqliteWorkerStore.open(path), StoreLockedError);
        assertEquals((locked as StoreLockedError).path, path);
        assert((await assertRejects(() => store.append([log[1]!]))) instanceof RangeError);
        await assertRejects(
          () => store.append([{ index: "1" as unknown as number, term: 1, command: "x" }]),
          TypeError,
        );
        await assertRejects(
          () => store.append([{ index: 1, term: 1, command: { at: new Date(0) } }]),
          EncodingError,
        );
        await store.claim({ group: "aa", member: "bb" });
        await assertRejects(() => store.claim({ group: "aa", member: "cc" }), StoreOwnerError);
        // Nothing refused was written, and the store still works.
        assertEquals(await store.last(), { term: 0, index: 0 });
        await store.append(log);
        assertEquals(await store.getRange(1, 3), log);
      } finally {
        await store.close();
      }
      await assertRejects(() => store.last(), Error, "store is closed");
      await store.close();
    }));

  test("BunSqliteWorkerStore: a batch wrong in position and encoding fails as in BunSqliteLogStore", () =>
    withDir(async (dir) => {
      const worker = await BunSqliteWorkerStore.open(join(dir, "worker.db"));
      const direct = BunSqliteLogStore.open(join(dir, "direct.db"));
      try {
        const bad = { at: new Date(0) };
        // Wrong start and unencodable: the position is reported first by both.
        const both = [{ index: 2, term: 1, command: "x" }, { index: 3, term: 1, command: bad }];
        const directError = assertThrows(() => direct.append(both), RangeError);
        const workerError = await assertRejects(() => worker.append(both));
        assert(workerError instanceof RangeError, `worker: ${String(workerError)}`);
        assertEquals(workerError.message, directError.message);
        // Right position, unencodable: EncodingError from both, and nothing written.
        const encoding = [{ index: 1, term: 1, command: "x" }, { index: 2, term: 1, command: bad }];
        await assertRejects(() => worker.append(encoding), EncodingError);
        assertThrows(() => direct.append(encoding), EncodingError);
        assertEquals(await worker.last(), { term: 0, index: 0 });
        assertEquals(direct.last(), { term: 0, index: 0 });
      } finally {
        await worker.close();
        direct.close();
      }
    }));

  test("BunSqliteWorkerStore: the same file as BunSqliteLogStore, both ways", () =>
    withDir(async (dir) => {
      const path = join(dir, "log.db");
      const worker = await BunSqliteWorkerStore.open(path);
      await worker.append(log);
      await worker.saveHardState({ term: 2, votedFor: "0a" });
      await worker.close();
      const direct = BunSqliteLogStore.open(path);
      try {
        assertEquals(direct.getRange(1, 3), log);
        assertEquals(direct.loadHardState(), { term: 2, votedFor: "0a" });
        direct.append([{ index: 4, term: 2, command: "more" }]);
      } finally {
        direct.close();
      }
      const again = await BunSqliteWorkerStore.open(path);
      try {
        assertEquals(await again.get(4), { index: 4, term: 2, command: "more" });
        assertEquals(await again.available(), { start: 1, end: 4 });
        assertEquals(await again.termAt(3), 2);
      } finally {
        await again.close();
      }
    }));
} else {
  test("BunSqliteWorkerStore: open on Deno throws a clear error naming DenoKvLogStore", async () => {
    await assertRejects(
      () => BunSqliteWorkerStore.open("/nonexistent/log.db"),
      Error,
      "Cannot open BunSqliteWorkerStore: it needs Bun (on Deno use DenoKvLogStore",
    );
  });
}
