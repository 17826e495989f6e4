// Tests for DenoKvLogStore: the storage conformance suite, locking, corrupt and incompatible files, large entries and batches, crashes.

import { encodeEntry } from "../../lib/wire/entry.ts";
import { DenoKvLogStore } from "../../storage/deno_kv.ts";
import { StoreCorruptError, StoreLockedError, StoreVersionError } from "../../storage/errors.ts";
import type { LogEntry, Storage } from "../../storage/types.ts";
import { assert, assertEquals, assertRejects, assertThrows } from "../assert.ts";
import { runStorageConformance } from "../conformance/storage.ts";
import { runtime, test } from "../harness.ts";

if (runtime === "deno") {
  denoTests();
} else {
  test("DenoKvLogStore: open rejects on Bun, naming the store to use instead", async () => {
    await assertRejects(
      () => DenoKvLogStore.open("/tmp/mosaik-never-created.kv"),
      Error,
      "Deno KV is only available on Deno with --unstable-kv (on Bun use BunSqliteLogStore",
    );
  });
}

function denoTests(): void {
  const dirs = new Map<Storage<unknown>, string>();
  const dirOf = (store: Storage<unknown>): string => {
    const dir = dirs.get(store);
    if (dir === undefined) {
      throw new Error("Cannot find the directory of a store this suite did not open");
    }
    return dir;
  };

  runStorageConformance("DenoKvLogStore", {
    async create() {
      const dir = await Deno.makeTempDir({ prefix: "mosaik-kv-" });
      const store = await DenoKvLogStore.open(`${dir}/log.kv`);
      dirs.set(store, dir);
      return store;
    },
    async reopen(store) {
      const dir = dirOf(store);
      await store.close?.();
      const next = await DenoKvLogStore.open(`${dir}/log.kv`);
      dirs.set(next, dir);
      return next;
    },
    async dispose(store) {
      const dir = dirOf(store);
      for (const [s, d] of dirs) if (d === dir) dirs.delete(s);
      await Deno.remove(dir, { recursive: true });
    },
  }, { timeout: 60_000 });

  test("DenoKvLogStore: a second opener of the same file is refused until the first closes", async () => {
    await withDir(async (dir) => {
      const path = `${dir}/log.kv`;
      const first = await DenoKvLogStore.open(path);
      await first.append(entries(1, 3, 1));
      await assertRejects(() => DenoKvLogStore.open(path), StoreLockedError, "in use");
      // Another spelling of the same file is the same store.
      await assertRejects(() => DenoKvLogStore.open(`${dir}/./log.kv`), StoreLockedError);
      await Deno.symlink(path, `${dir}/alias.kv`);
      await assertRejects(() => DenoKvLogStore.open(`${dir}/alias.kv`), StoreLockedError);
      assertEquals(first.last(), { term: 1, index: 3 }, "the first opener still works");
      await first.close();
      const second = await DenoKvLogStore.open(path);
      try {
        assertEquals(await second.getRange(1, 3), entries(1, 3, 1));
      } finally {
        await second.close();
      }
    });
  });

  test("DenoKvLogStore: a store open in another process is refused, and freed when it exits", async () => {
    await withDir(async (dir) => {
      const path = `${dir}/log.kv`;
      const child = spawnDeno(`
        const { DenoKvLogStore } = await import(${JSON.stringify(STORE_URL)});
        const store = await DenoKvLogStore.open(${JSON.stringify(path)});
        await store.append([{ index: 1, term: 1, command: "from the child" }]);
        console.log("ready");
        for await (const _ of Deno.stdin.readable) { /* wait for the parent to close stdin */ }
        await store.close();
      `);
      try {
        await child.waitForLine((line) => line === "ready");
        await assertRejects(() => DenoKvLogStore.open(path), StoreLockedError);
      } finally {
        await child.process.stdin.close();
        await child.finish();
      }
      const store = await DenoKvLogStore.open(path);
      try {
        assertEquals(await store.get(1), { index: 1, term: 1, command: "from the child" });
      } finally {
        await store.close();
      }
    });
  });

  test("DenoKvLogStore: a path that names no file in an existing directory is refused", async () => {
    await withDir(async (dir) => {
      await assertRejects(
        () => DenoKvLogStore.open(`${dir}/missing/log.kv`),
        Error,
        "is not accessible",
      );
      await assertRejects(() => DenoKvLogStore.open(""), TypeError, "must name a file");
      await assertRejects(() => DenoKvLogStore.open(`${dir}/`), TypeError, "must name a file");
      assertEquals([...Deno.readDirSync(dir)], [], "nothing was created");
    });
  });

  test("DenoKvLogStore: a file that is not a database is corrupt and left as it was", async () => {
    await withDir(async (dir) => {
      const path = `${dir}/log.kv`;
      const garbage = new TextEncoder().encode(
        "this is not a SQLite database, just some text\n".repeat(40),
      );
      await Deno.writeFile(path, garbage);
      const err = await assertRejects(() => DenoKvLogStore.open(path), StoreCorruptError, path);
      assert(err.cause instanceof Error, "the KV error should be the cause");
      assertEquals(await Deno.readFile(path), garbage, "the file is unchanged");
      // The failed open released its lock: a retry fails the same way, not as locked.
      await assertRejects(() => DenoKvLogStore.open(path), StoreCorruptError);
    });
  });

  test("DenoKvLogStore: a KV file with data but no meta record is not a mosaik store", async () => {
    await withDir(async (dir) => {
      const path = `${dir}/log.kv`;
      await rawKv(path, (kv) => kv.set(["users", 1], { name: "someone else's data" }));
      const before = await contents(path);
      await assertRejects(
        () => DenoKvLogStore.open(path),
        StoreCorruptError,
        "not a mosaik log store",
      );
      assertEquals(await contents(path), before, "nothing changed");
    });
  });

  test("DenoKvLogStore: a store of another format version is refused unchanged", async () => {
    await withDir(async (dir) => {
      const path = `${dir}/log.kv`;
      const store = await DenoKvLogStore.open(path);
      await store.append(entries(1, 2, 1));
      await store.close();
      await rawKv(path, (kv) => kv.set(["meta"], { format: 99 }));
      const before = await contents(path);
      const err = await assertRejects(() => DenoKvLogStore.open(path), StoreVersionError, "99");
      assert(err instanceof StoreVersionError);
      assertEquals([err.found, err.expected], [99, 2]);
      assertEquals(await contents(path), before, "nothing changed");
    });
  });

  test("DenoKvLogStore: an entry missing inside the bounds is found at open", async () => {
    await withDir(async (dir) => {
      const path = `${dir}/log.kv`;
      const store = await DenoKvLogStore.open(path);
      // Records holding 1..4, 5, and 6..10.
      await store.append(entries(1, 4, 1));
      await store.append(entries(5, 5, 1));
      await store.append(entries(6, 10, 1));
      await store.close();
      assertEquals(
        await rawKv(path, (kv) => keys(kv, ["e"])),
        [["e", 1], ["e", 5], ["e", 6]],
      );
      await rawKv(path, (kv) => kv.delete(["e", 5]));
      const before = await contents(path);
      await assertRejects(() => DenoKvLogStore.open(path), StoreCorruptError, "entry 5 is missing");
      assertEquals(await contents(path), before, "nothing changed");
      await rawKv(path, (kv) => kv.delete(["e", 6]));
      await assertRejects(() => DenoKvLogStore.open(path), StoreCorruptError, "entry 5 is missing");
      // The records before: one holding 1..4, then nothing. A record holding
      // fewer entries than the gap to the next one leaves a hole as well.
      await rawKv(path, async (kv) => {
        await kv.set(["e", 1], packedRecord(entries(1, 3, 1)));
        await kv.set(["e", 5], packedRecord(entries(5, 10, 1)));
      });
      await assertRejects(() => DenoKvLogStore.open(path), StoreCorruptError, "entry 4 is missing");
      // A record missing at the start of the bounds.
      await rawKv(path, (kv) => kv.delete(["e", 1]));
      await assertRejects(() => DenoKvLogStore.open(path), StoreCorruptError, "entry 1 is missing");
      // A last record ending before the bounds do.
      await rawKv(path, async (kv) => {
        await kv.set(["e", 1], packedRecord(entries(1, 4, 1)));
        await kv.set(["e", 5], packedRecord(entries(5, 9, 1)));
      });
      await assertRejects(
        () => DenoKvLogStore.open(path),
        StoreCorruptError,
        "entry 10 is missing",
      );
      // Records that overlap.
      await rawKv(path, (kv) => kv.set(["e", 1], packedRecord(entries(1, 5, 1))));
      await assertRejects(
        () => DenoKvLogStore.open(path),
        StoreCorruptError,
        "the record of entry 5 overlaps",
      );
      // Repaired, the store opens.
      await rawKv(path, async (kv) => {
        await kv.delete(["e", 5]);
        await kv.set(["e", 6], packedRecord(entries(6, 10, 1)));
      });
      const reopened = await DenoKvLogStore.open(path);
      try {
        assertEquals(await reopened.getRange(1, 10), entries(1, 10, 1));
      } finally {
        await reopened.close();
      }
    });
  });

  test("DenoKvLogStore: records that contradict the bounds are found at open", async () => {
    await withDir(async (dir) => {
      const path = `${dir}/log.kv`;
      const store = await DenoKvLogStore.open(path);
      const log = [...entries(1, 2, 1), ...entries(3, 4, 2)];
      await store.append(log);
      await store.close();
      const original = await rawKv(path, async (kv) => (await kv.get(["e", 1])).value);
      assert(original instanceof Uint8Array);
      assertEquals(original, packedRecord(log), "one record holds the batch");
      // Entries 2 and 3 swapped: entry 2 claims term 2, entry 3 term 1, so the terms decrease.
      await rawKv(
        path,
        (kv) => kv.set(["e", 1], packedRecord([log[0]!, log[2]!, log[1]!, log[3]!])),
      );
      const before = await contents(path);
      await assertRejects(
        () => DenoKvLogStore.open(path),
        StoreCorruptError,
        "term decreases at entry 3",
      );
      assertEquals(await contents(path), before, "nothing changed");
      // The same across records.
      await rawKv(path, async (kv) => {
        await kv.set(["e", 1], packedRecord([log[0]!, log[2]!]));
        await kv.set(["e", 3], packedRecord([log[1]!, log[3]!]));
      });
      await assertRejects(
        () => DenoKvLogStore.open(path),
        StoreCorruptError,
        "term decreases at entry 3",
      );
      await rawKv(path, async (kv) => {
        await kv.delete(["e", 3]);
        await kv.set(["e", 1], original);
      });
      // Bounds whose last term is not the last entry's.
      await rawKv(
        path,
        (kv) => kv.set(["bounds"], { prefixIndex: 0, prefixTerm: 0, lastIndex: 4, lastTerm: 7 }),
      );
      await assertRejects(() => DenoKvLogStore.open(path), StoreCorruptError, "bounds say 7");
      // Bounds that end inside a record.
      await rawKv(
        path,
        (kv) => kv.set(["bounds"], { prefixIndex: 0, prefixTerm: 0, lastIndex: 3, lastTerm: 2 }),
      );
      await assertRejects(
        () => DenoKvLogStore.open(path),
        StoreCorruptError,
        "past the last entry 3",
      );
      // Bounds that start inside a record.
      await rawKv(
        path,
        (kv) => kv.set(["bounds"], { prefixIndex: 1, prefixTerm: 1, lastIndex: 4, lastTerm: 2 }),
      );
      await assertRejects(() => DenoKvLogStore.open(path), StoreCorruptError, "entry 2 is missing");
      await rawKv(path, (kv) => kv.delete(["bounds"]));
      await assertRejects(
        () => DenoKvLogStore.open(path),
        StoreCorruptError,
        "bounds record is missing",
      );
    });
  });

  test("DenoKvLogStore: a missing chunk of a large entry is found when the entry is read", async () => {
    await withDir(async (dir) => {
      const path = `${dir}/log.kv`;
      const big = { blob: blob(200_000, 3) };
      const store = await DenoKvLogStore.open(path);
      await store.append([entry(1, 1), entry(2, 1, big), entry(3, 1)]);
      await store.close();
      const chunks = await rawKv(path, (kv) => keys(kv, ["c", 2]));
      assertEquals(chunks.length, 4, "a 200 kB entry is stored in 4 chunks");
      await rawKv(path, (kv) => kv.delete(["c", 2, 1]));
      const before = await contents(path);
      // Chunks are not read at open (that would read every large entry), only with their entry.
      const reopened = await DenoKvLogStore.open(path);
      try {
        await assertRejects(
          () => reopened.get(2),
          StoreCorruptError,
          "chunk 1 of entry 2 is missing",
        );
        await assertRejects(() => reopened.getRange(1, 3), StoreCorruptError, "entry 2");
        assertEquals(await reopened.get(1), entry(1, 1));
        assertEquals(await reopened.get(3), entry(3, 1));
        assertEquals(reopened.termAt(2), 1);
      } finally {
        await reopened.close();
      }
      assertEquals(await contents(path), before, "nothing changed");
    });
  });

  test("DenoKvLogStore: an entry record that does not decode is reported with its index", async () => {
    await withDir(async (dir) => {
      const path = `${dir}/log.kv`;
      const store = await DenoKvLogStore.open(path);
      await store.append(entries(1, 4, 1));
      await store.append(entries(5, 5, 1));
      await store.close();
      // Well-formed records (term 1) holding bytes that are no entry: entry 3 in a
      // packed record, entry 5 alone.
      const garbage = new Uint8Array([0xff, 0xff, 0xff]);
      await rawKv(path, async (kv) => {
        await kv.set(
          ["e", 1],
          packedParts([
            [1, encodeEntry(entry(1, 1))],
            [1, encodeEntry(entry(2, 1))],
            [1, garbage],
            [1, encodeEntry(entry(4, 1))],
          ]),
        );
        await kv.set(["e", 5], packedParts([[1, garbage]]));
      });
      const reopened = await DenoKvLogStore.open(path);
      try {
        await assertRejects(() => reopened.get(3), StoreCorruptError, "entry 3 does not decode");
        await assertRejects(() => reopened.getRange(1, 4), StoreCorruptError, "entry 3");
        await assertRejects(() => reopened.get(5), StoreCorruptError, "entry 5 does not decode");
        await assertRejects(() => reopened.getRange(4, 5), StoreCorruptError, "entry 5");
        assertEquals(await reopened.getRange(1, 2), entries(1, 2, 1));
        assertEquals(await reopened.get(4), entry(4, 1));
      } finally {
        await reopened.close();
      }
      // An entry whose record claims another term than the entry has.
      await rawKv(path, (kv) => kv.set(["e", 5], packedParts([[1, encodeEntry(entry(5, 2))]])));
      const again = await DenoKvLogStore.open(path);
      try {
        await assertRejects(() => again.get(5), StoreCorruptError, "its record says term 1");
      } finally {
        await again.close();
      }
    });
  });

  test("DenoKvLogStore: a malformed packed record is found at open, naming its entry", async () => {
    await withDir(async (dir) => {
      const path = `${dir}/log.kv`;
      const store = await DenoKvLogStore.open(path);
      await store.append(entries(1, 4, 1));
      await store.append(entries(5, 8, 1));
      await store.close();
      const good = packedRecord(entries(5, 8, 1));
      const withCount = (count: number, bytes = good): Uint8Array => {
        const out = bytes.slice();
        new DataView(out.buffer).setUint32(1, count);
        return out;
      };
      const badLength = good.slice();
      // The first entry's length, made to run past the record.
      new DataView(badLength.buffer).setUint32(5 + 8, good.byteLength);
      const badTerm = good.slice();
      new DataView(badTerm.buffer).setFloat64(5, 1.5);
      const cases: [string, Uint8Array][] = [
        ["count 0", withCount(0, good.subarray(0, 5))],
        ["count past the entries", withCount(5)],
        ["count short of the entries (trailing bytes)", withCount(3)],
        ["a length past the end", badLength],
        ["a term that is no index", badTerm],
        ["cut short", good.subarray(0, good.byteLength - 1)],
        ["only a tag", new Uint8Array([3])],
        ["an unknown tag", Uint8Array.of(9, ...good.subarray(1))],
      ];
      for (const [what, record] of cases) {
        await rawKv(path, (kv) => kv.set(["e", 5], record));
        const before = await contents(path);
        await assertRejects(
          () => DenoKvLogStore.open(path),
          StoreCorruptError,
          "entry 5 has a malformed record",
        ).catch((err) => {
          throw new Error(`${what}: ${err}`, { cause: err });
        });
        assertEquals(await contents(path), before, `nothing changed (${what})`);
      }
      await rawKv(path, (kv) => kv.set(["e", 5], good));
      const reopened = await DenoKvLogStore.open(path);
      try {
        assertEquals(await reopened.getRange(1, 8), entries(1, 8, 1));
      } finally {
        await reopened.close();
      }
    });
  });

  test("DenoKvLogStore: 3000 entries in one batch and a 2 MiB entry round-trip and survive reopen", async () => {
    await withDir(async (dir) => {
      const path = `${dir}/log.kv`;
      const batch = entries(1, 3000, 1);
      const huge = entry(3001, 2, { blob: blob(2 * 1024 * 1024, 7) });
      const mixed = [
        ...entries(3002, 3400, 2),
        entry(3401, 2, { blob: blob(300_000, 8) }),
        ...entries(3402, 4000, 3),
      ];
      let store = await DenoKvLogStore.open(path);
      try {
        await store.append(batch);
        await store.append([huge]);
        await store.append(mixed);
        const all = [...batch, huge, ...mixed];
        assertEquals(store.last(), { term: 3, index: 4000 });
        assertEquals(await store.getRange(1, 4000), all);
        await store.close();
        store = await DenoKvLogStore.open(path);
        assertEquals(store.last(), { term: 3, index: 4000 });
        assertEquals(await store.get(3001), huge);
        assertEquals(await store.getRange(1, 4000), all);
        assertEquals([store.termAt(3000), store.termAt(3001), store.termAt(3402)], [1, 2, 3]);
        // Truncating and pruning across large entries deletes their chunks too.
        await store.truncate(3401);
        await store.prunePrefix(3001);
      } finally {
        await store.close();
      }
      const chunkKeys = await rawKv(path, (kv) => keys(kv, ["c"]));
      assertEquals(chunkKeys, [], "no chunk is left once its entries are gone");
    });
  });

  test("DenoKvLogStore: records outside the bounds never become visible and are removed at open", async () => {
    await withDir(async (dir) => {
      const path = `${dir}/log.kv`;
      let store = await DenoKvLogStore.open(path);
      await store.append(entries(1, 3, 1));
      await store.close();
      // What an interrupted append or prune could leave: records past the end and below the start.
      // With the records written as an append writes them: a packed one, an inline one,
      // a chunked one's header.
      await rawKv(path, async (kv) => {
        const first = (await kv.get(["e", 1])).value;
        await kv.set(["e", 8], packedRecord(entries(8, 9, 1)));
        await kv.set(["e", 4], packedRecord(entries(4, 6, 1)));
        await kv.set(["e", 7], inlineRecord(entry(7, 1)));
        await kv.set(["c", 9, 0], new Uint8Array(100));
        await kv.set(["e", 0], first);
      });
      store = await DenoKvLogStore.open(path);
      try {
        assertEquals(store.last(), { term: 1, index: 3 });
        assertEquals(store.available(), { start: 1, end: 3 });
        assertEquals(await store.get(4), undefined);
        assertEquals(await store.get(8), undefined);
        assertEquals(store.termAt(8), undefined);
        assertEquals(await store.getRange(0, 10), entries(1, 3, 1));
        await store.close();
        assertEquals(
          await rawKv(path, (kv) => keys(kv, [])),
          [["bounds"], ["e", 1], ["meta"]],
          "only the store's own records remain",
        );
        store = await DenoKvLogStore.open(path);
        const more = [entry(4, 2, "four"), ...entries(5, 8, 2)];
        await store.append(more);
        assertEquals(await store.get(8), entry(8, 2));
        assertEquals(await store.getRange(1, 8), [...entries(1, 3, 1), ...more]);
      } finally {
        await store.close();
      }
    });
  });

  test("DenoKvLogStore: a process killed while appending leaves a prefix of its batches", async () => {
    await withDir(async (dir) => {
      const path = `${dir}/log.kv`;
      // Each batch of 1500 entries (about 930 kB in packed records, and one
      // chunked entry of 150 kB) needs two commits; the first makes a prefix of
      // the batch visible.
      const child = spawnDeno(`
        const { DenoKvLogStore } = await import(${JSON.stringify(STORE_URL)});
        const store = await DenoKvLogStore.open(${JSON.stringify(path)});
        const pad = "x".repeat(600);
        let next = 1;
        for (let round = 0; ; round++) {
          const batch = [];
          for (let i = 0; i < 1500; i++, next++) {
            const command = i === 700 ? { n: next, blob: new Uint8Array(150000).fill(next & 0xff) } : { n: next, pad };
            batch.push({ index: next, term: 1 + Math.floor(round / 2), command });
          }
          await store.append(batch);
          console.log("acked " + (next - 1));
        }
      `);
      let acked = 0;
      let seen = 0;
      try {
        await child.waitForLine((line) => {
          if (line.startsWith("acked ")) acked = Number(line.slice(6));
          return acked >= 3000;
        });
        // Watch the file (SQLite lets a second process read it) for a commit that made
        // part of a batch visible, and kill the writer right then: between its commits.
        // Bounded, so a fast writer only makes the kill land elsewhere.
        seen = await rawKv(path, async (kv) => {
          let last = 0;
          for (let polls = 0; polls < 20_000 && last % 1500 === 0; polls++) {
            const bounds = (await kv.get<{ lastIndex: number }>(["bounds"])).value;
            last = bounds?.lastIndex ?? 0;
          }
          return last;
        });
      } finally {
        child.process.kill("SIGKILL");
        await child.finish();
      }
      const store = await DenoKvLogStore.open(path);
      try {
        const last = store.last();
        assert(last.index >= acked, `every acknowledged entry survives (${last.index} < ${acked})`);
        assert(last.index >= seen, `every committed entry survives (${last.index} < ${seen})`);
        const got = await store.getRange(1, last.index);
        assertEquals(got.length, last.index);
        got.forEach((e, i) => {
          assertEquals(e.index, i + 1);
          assertEquals(
            (e.command as { n: number }).n,
            i + 1,
            `entry ${i + 1} holds its own command`,
          );
        });
        assertEquals(store.termAt(last.index), last.term);
      } finally {
        await store.close();
      }
    });
  });

  test("DenoKvLogStore: batches are packed into few records, which round-trip and survive reopen", async () => {
    await withDir(async (dir) => {
      const path = `${dir}/log.kv`;
      const small = (index: number, term: number) =>
        entry(index, term, { n: index, pad: "p".repeat(200) });
      const batch: LogEntry<unknown>[] = [];
      for (let i = 1; i <= 1000; i++) batch.push(small(i, 1 + Math.floor(i / 300)));
      // Inside a batch: an entry too large to pack (20 kB, one record) and one over 64 KiB (chunked).
      const mixed: LogEntry<unknown>[] = [];
      for (let i = 1001; i <= 1300; i++) {
        mixed.push(
          i === 1100
            ? entry(i, 4, { blob: blob(20_000, 1) })
            : i === 1200
            ? entry(i, 4, { blob: blob(100_000, 2) })
            : small(i, 4),
        );
      }
      const singles = [small(1301, 4), small(1302, 5), small(1303, 5)];
      const all = [...batch, ...mixed, ...singles];
      let store = await DenoKvLogStore.open(path);
      try {
        await store.append(batch);
        const packed = await rawKv(path, (kv) => keys(kv, ["e"]));
        // About 230 bytes an entry: 4 records of up to 65 000 bytes.
        assert(packed.length <= 5, `1000 entries in ${packed.length} records`);
        await store.append(mixed);
        for (const e of singles) await store.append([e]);
        const records = await rawKv(path, (kv) => keys(kv, ["e"]));
        assert(records.length <= 5 + 6 + 3, `1303 entries in ${records.length} records`);
        for (const index of [1100, 1101, 1200, 1201, 1301, 1302, 1303]) {
          assert(records.some((k) => k[1] === index), `a record starts at ${index}`);
        }
        assertEquals(store.last(), { term: 5, index: 1303 });
        assertEquals(await store.getRange(1, 1303), all);
        await store.close();
        store = await DenoKvLogStore.open(path);
        assertEquals(store.last(), { term: 5, index: 1303 });
        assertEquals(await store.getRange(1, 1303), all);
        assertEquals(await store.getRange(250, 1250), all.slice(249, 1250));
        for (const index of [1, 299, 300, 301, 1000, 1100, 1199, 1200, 1201, 1303]) {
          assertEquals(await store.get(index), all[index - 1]);
          assertEquals(store.termAt(index), all[index - 1]!.term);
        }
      } finally {
        await store.close();
      }
    });
  });

  test("DenoKvLogStore: truncating and pruning inside a packed record keep every entry and term", async () => {
    await withDir(async (dir) => {
      const path = `${dir}/log.kv`;
      // The expected log, as entries by index.
      const log = new Map<number, LogEntry<unknown>>();
      const add = async (store: DenoKvLogStore, batch: LogEntry<unknown>[]) => {
        await store.append(batch);
        for (const e of batch) log.set(e.index, e);
      };
      const check = async (store: DenoKvLogStore, start: number, end: number) => {
        assertEquals(store.available(), { start, end });
        const want = [...log.values()].filter((e) => e.index >= start && e.index <= end);
        assertEquals(await store.getRange(0, end + 10), want);
        for (const e of want) {
          assertEquals(store.termAt(e.index), e.term, `the term of ${e.index}`);
          assertEquals(await store.get(e.index), e);
        }
        assertEquals(await store.get(start - 1), undefined);
        assertEquals(await store.get(end + 1), undefined);
      };
      let store = await DenoKvLogStore.open(path);
      try {
        // One record holding 1..200, terms 1 then 2.
        await add(store, [...entries(1, 100, 1), ...entries(101, 200, 2)]);
        assertEquals(await rawKv(path, (kv) => keys(kv, ["e"])), [["e", 1]]);
        await store.truncate(150);
        for (let i = 150; i <= 200; i++) log.delete(i);
        assertEquals(store.last(), { term: 2, index: 149 });
        assertEquals(await rawKv(path, (kv) => keys(kv, ["e"])), [["e", 1]]);
        await check(store, 1, 149);
        await add(store, entries(150, 170, 3));
        await store.prunePrefix(50);
        for (let i = 1; i <= 50; i++) log.delete(i);
        assertEquals(store.termAt(50), 1, "the prefix term");
        assertEquals(
          await rawKv(path, (kv) => keys(kv, ["e"])),
          [["e", 51], ["e", 150]],
          "the tail of the cut record is keyed by its first entry, the head is gone",
        );
        await check(store, 51, 170);
        await store.close();
        store = await DenoKvLogStore.open(path);
        await check(store, 51, 170);
        assertEquals(store.termAt(50), 1);
        // Again inside the record the prune wrote, then at its very start and end.
        await store.truncate(60);
        for (let i = 60; i <= 170; i++) log.delete(i);
        await add(store, entries(60, 80, 4));
        await store.prunePrefix(55);
        for (let i = 51; i <= 55; i++) log.delete(i);
        assertEquals(await rawKv(path, (kv) => keys(kv, ["e"])), [["e", 56], ["e", 60]]);
        await store.truncate(80);
        log.delete(80);
        await store.prunePrefix(56);
        log.delete(56);
        assertEquals(await rawKv(path, (kv) => keys(kv, ["e"])), [["e", 57], ["e", 60]]);
        await check(store, 57, 79);
        await store.truncate(60);
        for (let i = 60; i <= 79; i++) log.delete(i);
        assertEquals(await rawKv(path, (kv) => keys(kv, ["e"])), [["e", 57]]);
        await store.prunePrefix(59);
        log.delete(57);
        log.delete(58);
        log.delete(59);
        assertEquals(await rawKv(path, (kv) => keys(kv, ["e"])), []);
        assertEquals(store.last(), { term: 1, index: 59 });
        await add(store, entries(60, 64, 5));
        await store.close();
        store = await DenoKvLogStore.open(path);
        await check(store, 60, 64);
        assertEquals(store.termAt(59), 1);
        await store.resetTo({ term: 6, index: 100 });
        assertEquals(await rawKv(path, (kv) => keys(kv, ["e"])), []);
        log.clear();
        await add(store, entries(101, 103, 6));
        await store.close();
        store = await DenoKvLogStore.open(path);
        await check(store, 101, 103);
      } finally {
        await store.close();
      }
    });
  });

  test("DenoKvLogStore: a store of format 1 (one entry per record) is read as it is and marked format 2", async () => {
    await withDir(async (dir) => {
      const path = `${dir}/log.kv`;
      const big = entry(4, 2, { blob: blob(100_000, 5) });
      const old = [entry(1, 1), entry(2, 1, "two"), entry(3, 2), big, entry(5, 2)];
      await rawKv(path, async (kv) => {
        await kv.set(["meta"], { format: 1, group: "g1", member: "m1" });
        await kv.set(["hs"], { term: 2, votedFor: "m1" });
        await kv.set(["bounds"], { prefixIndex: 0, prefixTerm: 0, lastIndex: 5, lastTerm: 2 });
        for (const e of old) if (e !== big) await kv.set(["e", e.index], inlineRecord(e));
        // Entry 4 chunked, as format 1 wrote entries over 64 KiB.
        const bytes = encodeEntry(big);
        const header = new Uint8Array(21);
        const view = new DataView(header.buffer);
        header[0] = 2;
        view.setFloat64(1, 2);
        view.setUint32(9, 2);
        view.setFloat64(13, bytes.byteLength);
        await kv.set(["e", 4], header);
        await kv.set(["c", 4, 0], bytes.slice(0, 65_000));
        await kv.set(["c", 4, 1], bytes.slice(65_000));
      });
      let store = await DenoKvLogStore.open(path);
      try {
        assertEquals(store.last(), { term: 2, index: 5 });
        assertEquals(store.loadHardState(), { term: 2, votedFor: "m1" });
        assertEquals(await store.getRange(1, 5), old);
        assertEquals(await store.get(4), big);
        const meta = await rawKv(path, async (kv) => (await kv.get(["meta"])).value);
        assertEquals(meta, { format: 2, group: "g1", member: "m1" }, "marked format 2, owner kept");
        await store.claim({ group: "g1", member: "m1" });
        const more = entries(6, 50, 3);
        await store.append(more);
        await store.close();
        store = await DenoKvLogStore.open(path);
        assertEquals(await store.getRange(1, 50), [...old, ...more]);
        assertEquals([store.termAt(3), store.termAt(5), store.termAt(6)], [2, 2, 3]);
        await store.truncate(4);
        assertEquals(await rawKv(path, (kv) => keys(kv, ["c"])), [], "the old chunks are deleted");
        await store.prunePrefix(2);
        await store.append(entries(4, 6, 3));
        assertEquals(await store.getRange(1, 10), [entry(3, 2), ...entries(4, 6, 3)]);
      } finally {
        await store.close();
      }
      // Format 1 has no packed records: one there is corruption, not data.
      await rawKv(path, async (kv) => {
        await kv.set(["meta"], { format: 1 });
        await kv.set(["e", 3], packedRecord([entry(3, 2)]));
      });
      await assertRejects(
        () => DenoKvLogStore.open(path),
        StoreCorruptError,
        "entry 3 has a malformed record",
      );
    });
  });

  test("DenoKvLogStore: every method refuses a closed store, close stays idempotent", async () => {
    await withDir(async (dir) => {
      const store = await DenoKvLogStore.open(`${dir}/log.kv`);
      const pending = store.append(entries(1, 2, 1));
      const closing = store.close();
      await pending; // accepted before close, so it completes
      await closing;
      await store.close();
      await assertRejects(() => store.append(entries(3, 3, 1)), Error, "is closed");
      await assertRejects(() => store.get(1), Error, "is closed");
      await assertRejects(() => store.getRange(1, 2), Error, "is closed");
      await assertRejects(() => store.truncate(2), Error, "is closed");
      await assertRejects(() => store.prunePrefix(1), Error, "is closed");
      await assertRejects(() => store.resetTo({ term: 0, index: 0 }), Error, "is closed");
      await assertRejects(() => store.saveHardState({ term: 1 }), Error, "is closed");
      await assertRejects(() => store.claim({ group: "aa", member: "bb" }), Error, "is closed");
      assertThrows(() => store.last(), Error, "is closed");
      assertThrows(() => store.available(), Error, "is closed");
      assertThrows(() => store.termAt(1), Error, "is closed");
      assertThrows(() => store.loadHardState(), Error, "is closed");
      const reopened = await DenoKvLogStore.open(`${dir}/log.kv`);
      try {
        assertEquals(reopened.last(), { term: 1, index: 2 });
      } finally {
        await reopened.close();
      }
    });
  });

  test("DenoKvLogStore: a typed store is a Storage of its command type", async () => {
    await withDir(async (dir) => {
      await using store = await DenoKvLogStore.open<string>(`${dir}/log.kv`);
      const typed: Storage<string> = store;
      await typed.append([{ index: 1, term: 1, command: "set x" }]);
      const misuse = (s: Storage<string>) => {
        // @ts-expect-error a Storage<string> takes only string commands
        s.append([{ index: 2, term: 1, command: 42 }]);
      };
      void misuse;
      assertEquals(await store.get(1), { index: 1, term: 1, command: "set x" });
    });
  });
}

// ---------------------------------------------------------------------------
// Helpers (Deno only)

const STORE_URL = new URL("../../storage/deno_kv.ts", import.meta.url).href;
const ROOT = new URL("../../", import.meta.url);

function entry(index: number, term: number, command: unknown = { n: index }): LogEntry<unknown> {
  return { index, term, command };
}

function entries(from: number, to: number, term: number): LogEntry<unknown>[] {
  const out: LogEntry<unknown>[] = [];
  for (let i = from; i <= to; i++) out.push(entry(i, term));
  return out;
}

function blob(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = (i * 131 + seed * 17 + (i >>> 9)) & 0xff;
  return out;
}

/** A packed record (format 2) of `list`, as the store writes it. */
function packedRecord(list: readonly LogEntry<unknown>[]): Uint8Array {
  return packedParts(list.map((e) => [e.term, encodeEntry(e)]));
}

/** A packed record of (term, encoded entry) pairs, whatever the bytes are. */
function packedParts(parts: readonly (readonly [number, Uint8Array])[]): Uint8Array {
  const size = parts.reduce((n, [, bytes]) => n + 12 + bytes.byteLength, 5);
  const out = new Uint8Array(size);
  const view = new DataView(out.buffer);
  out[0] = 3;
  view.setUint32(1, parts.length);
  let at = 5;
  for (const [term, bytes] of parts) {
    view.setFloat64(at, term);
    view.setUint32(at + 8, bytes.byteLength);
    out.set(bytes, at + 12);
    at += 12 + bytes.byteLength;
  }
  return out;
}

/** An inline record (formats 1 and 2) of one entry. */
function inlineRecord(e: LogEntry<unknown>): Uint8Array {
  const bytes = encodeEntry(e);
  const out = new Uint8Array(9 + bytes.byteLength);
  out[0] = 1;
  new DataView(out.buffer).setFloat64(1, e.term);
  out.set(bytes, 9);
  return out;
}

async function withDir(body: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "mosaik-kv-" });
  try {
    await body(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Runs `fn` on the raw KV file, bypassing the store (and its lock). */
async function rawKv<T>(path: string, fn: (kv: Deno.Kv) => Promise<T>): Promise<T> {
  const kv = await Deno.openKv(path);
  try {
    return await fn(kv);
  } finally {
    kv.close();
  }
}

async function keys(kv: Deno.Kv, prefix: Deno.KvKey): Promise<Deno.KvKey[]> {
  const out: Deno.KvKey[] = [];
  for await (const e of kv.list({ prefix })) out.push(e.key);
  return out;
}

/** Every key and value in the file, to show that a refused open changed nothing. */
function contents(path: string): Promise<[Deno.KvKey, unknown][]> {
  return rawKv(path, async (kv) => {
    const out: [Deno.KvKey, unknown][] = [];
    for await (const e of kv.list({ prefix: [] })) out.push([e.key, e.value]);
    return out;
  });
}

interface Child {
  readonly process: Deno.ChildProcess;
  /** Reads stdout lines until `done` returns true; throws if the child's output ends first. */
  waitForLine(done: (line: string) => boolean): Promise<void>;
  /** Waits for the child to exit and releases its output. */
  finish(): Promise<void>;
}

/** A Deno child process running `code`, with KV enabled and the repository's config. */
function spawnDeno(code: string): Child {
  const proc = new Deno.Command(Deno.execPath(), {
    args: ["eval", "--unstable-kv", code],
    cwd: ROOT,
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = proc.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let buffered = "";
  return {
    process: proc,
    async waitForLine(done) {
      for (;;) {
        let newline = buffered.indexOf("\n");
        while (newline >= 0) {
          const line = buffered.slice(0, newline).trim();
          buffered = buffered.slice(newline + 1);
          if (done(line)) return;
          newline = buffered.indexOf("\n");
        }
        const { value, done: ended } = await reader.read();
        if (ended) throw new Error("Cannot wait for the child: its output ended first");
        buffered += value;
      }
    },
    async finish() {
      await reader.cancel();
      await proc.status;
      try {
        await proc.stdin.close();
      } catch {
        // Already closed by the test.
      }
    },
  };
}
