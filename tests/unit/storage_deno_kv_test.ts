// Tests for DenoKvLogStore: the storage conformance suite, locking, corrupt and incompatible files, large entries and batches, crashes.

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
      assertEquals([err.found, err.expected], [99, 1]);
      assertEquals(await contents(path), before, "nothing changed");
    });
  });

  test("DenoKvLogStore: an entry missing inside the bounds is found at open", async () => {
    await withDir(async (dir) => {
      const path = `${dir}/log.kv`;
      const store = await DenoKvLogStore.open(path);
      await store.append(entries(1, 10, 1));
      await store.close();
      await rawKv(path, (kv) => kv.delete(["e", 5]));
      const before = await contents(path);
      await assertRejects(() => DenoKvLogStore.open(path), StoreCorruptError, "entry 5 is missing");
      assertEquals(await contents(path), before, "nothing changed");
      await rawKv(path, (kv) => kv.delete(["e", 10]));
      await assertRejects(() => DenoKvLogStore.open(path), StoreCorruptError, "entry 5 is missing");
    });
  });

  test("DenoKvLogStore: records that contradict the bounds are found at open", async () => {
    await withDir(async (dir) => {
      const path = `${dir}/log.kv`;
      const store = await DenoKvLogStore.open(path);
      await store.append([...entries(1, 2, 1), ...entries(3, 4, 2)]);
      await store.close();
      const [one, three] = await rawKv(path, async (kv) => {
        const got = await kv.getMany<Uint8Array[]>([["e", 1], ["e", 3]]);
        return got.map((e) => e.value);
      });
      assert(one instanceof Uint8Array && three instanceof Uint8Array);
      // Entry 2 claims term 2, entry 3 term 1: the terms decrease.
      await rawKv(path, async (kv) => {
        await kv.set(["e", 2], three);
        await kv.set(["e", 3], one);
      });
      const before = await contents(path);
      await assertRejects(
        () => DenoKvLogStore.open(path),
        StoreCorruptError,
        "term decreases at entry 3",
      );
      assertEquals(await contents(path), before, "nothing changed");
      // Bounds whose last term is not the last entry's.
      await rawKv(path, async (kv) => {
        await kv.set(["e", 2], one);
        await kv.set(["e", 3], three);
        await kv.set(["bounds"], { prefixIndex: 0, prefixTerm: 0, lastIndex: 4, lastTerm: 7 });
      });
      await assertRejects(() => DenoKvLogStore.open(path), StoreCorruptError, "bounds say 7");
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
      await store.close();
      // A well-formed header (inline, term 1) in front of bytes that are no entry.
      const record = new Uint8Array([1, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff]);
      await rawKv(path, (kv) => kv.set(["e", 3], record));
      const reopened = await DenoKvLogStore.open(path);
      try {
        await assertRejects(() => reopened.get(3), StoreCorruptError, "entry 3 does not decode");
        await assertRejects(() => reopened.getRange(1, 4), StoreCorruptError, "entry 3");
        assertEquals(await reopened.getRange(1, 2), entries(1, 2, 1));
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
      await rawKv(path, async (kv) => {
        const three = (await kv.get(["e", 3])).value;
        await kv.set(["e", 8], three);
        await kv.set(["e", 4], three);
        await kv.set(["c", 9, 0], new Uint8Array(100));
        await kv.set(["e", 0], three);
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
          [["bounds"], ["e", 1], ["e", 2], ["e", 3], ["meta"]],
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
      // Each batch of 1500 entries (one of them chunked) needs two commits; the
      // first makes a prefix of the batch visible.
      const child = spawnDeno(`
        const { DenoKvLogStore } = await import(${JSON.stringify(STORE_URL)});
        const store = await DenoKvLogStore.open(${JSON.stringify(path)});
        const pad = "x".repeat(400);
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
