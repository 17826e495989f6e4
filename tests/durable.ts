// The durable store of the runtime the tests run on: Deno KV on Deno, SQLite on Bun.

import type { Storage } from "../storage/types.ts";

const onDeno = (globalThis as { Deno?: unknown }).Deno !== undefined;

/** The name of this runtime's durable store, for test names and messages. */
export const durableStoreName: string = onDeno ? "DenoKvLogStore" : "BunSqliteLogStore";

/** Opens this runtime's durable store at `path` (created when absent). */
export async function openDurableStore<C = unknown>(path: string): Promise<Storage<C>> {
  if (onDeno) {
    const { DenoKvLogStore } = await import("../storage/deno_kv.ts");
    return await DenoKvLogStore.open<C>(path);
  }
  const { BunSqliteLogStore } = await import("../storage/bun_sqlite.ts");
  return BunSqliteLogStore.open<C>(path);
}
