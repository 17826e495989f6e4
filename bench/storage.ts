// Storage benchmark: appends/s for single entries and for batches, per store of the runtime it runs on (reported, never asserted).
//
// Usage: `npm run bench:storage` (both runtimes), or one of
//   deno run -A --unstable-kv bench/storage.ts [--quick]
//   bun bench/storage.ts [--quick]
// Each store appends 200-byte commands: one entry per `append` call (every
// call durable on return, so this is the fsync rate), then batches of 100 and
// 1000 entries; it also times reading everything back with `getRange`.

import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { InMemoryLogStore } from "../storage/memory.ts";
import type { LogEntry, Storage } from "../storage/types.ts";
import { defaultStoreName, openDefaultStore } from "../storage/default.ts";

const runtime = (globalThis as { Deno?: unknown }).Deno === undefined ? "bun" : "deno";
const quick = process.argv.includes("--quick");

type Command = { readonly key: string; readonly value: Uint8Array };

/** One measured run. */
interface Row {
  readonly store: string;
  readonly case: string;
  readonly entries: number;
  readonly seconds: number;
}

function command(i: number): Command {
  return { key: `k${i % 1000}`, value: new Uint8Array(180).fill(i & 0xff) };
}

/** Appends `total` entries in calls of `batch` entries after the store's last entry; returns seconds. */
async function appendRun(store: Storage<Command>, total: number, batch: number): Promise<number> {
  let next = (await store.last()).index + 1;
  const start = performance.now();
  for (let done = 0; done < total; done += batch) {
    const entries: LogEntry<Command>[] = [];
    for (let k = 0; k < batch; k++, next++) {
      entries.push({ index: next, term: 1, command: command(next) });
    }
    await store.append(entries);
  }
  return (performance.now() - start) / 1000;
}

async function readRun(store: Storage<Command>): Promise<{ entries: number; seconds: number }> {
  const range = await store.available();
  const start = performance.now();
  let n = 0;
  for (let from = range.start; from <= range.end; from += 1000) {
    n += (await store.getRange(from, Math.min(range.end, from + 999))).length;
  }
  return { entries: n, seconds: (performance.now() - start) / 1000 };
}

async function benchStore(name: string, open: () => Promise<Storage<Command>>): Promise<Row[]> {
  const rows: Row[] = [];
  const store = await open();
  try {
    const cases: [string, number, number][] = [
      ["append 1 entry per call", quick ? 200 : 2_000, 1],
      ["append batches of 100", quick ? 5_000 : 50_000, 100],
      ["append batches of 1000", quick ? 10_000 : 100_000, 1000],
    ];
    for (const [label, total, batch] of cases) {
      rows.push({
        store: name,
        case: label,
        entries: total,
        seconds: await appendRun(store, total, batch),
      });
    }
    const read = await readRun(store);
    rows.push({ store: name, case: "getRange 1000 at a time", ...read });
  } finally {
    await store.close?.();
  }
  return rows;
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), "mosaik-bench-storage-"));
  try {
    const rows = [
      ...await benchStore(
        "InMemoryLogStore",
        () => Promise.resolve(new InMemoryLogStore<Command>()),
      ),
      ...await benchStore(defaultStoreName, () => openDefaultStore<Command>(join(dir, "bench.db"))),
    ];
    console.log(`\nstorage benchmark on ${runtime}${quick ? " (quick)" : ""}, 200-byte commands\n`);
    console.log("| store | case | entries | seconds | entries/s |");
    console.log("|---|---|---:|---:|---:|");
    for (const r of rows) {
      const rate = Math.round(r.entries / Math.max(r.seconds, 1e-9));
      console.log(
        `| ${r.store} | ${r.case} | ${r.entries} | ${r.seconds.toFixed(3)} | ${
          rate.toLocaleString("en-US")
        } |`,
      );
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
