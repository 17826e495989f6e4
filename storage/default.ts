// The durable store of the runtime this code runs on: Deno KV on Deno, SQLite on Bun.

import type { Storage } from "./types.ts";

const onDeno = (globalThis as { Deno?: unknown }).Deno !== undefined;

/** The class name of this runtime's durable store, for messages. */
export const defaultStoreName: string = onDeno ? "DenoKvLogStore" : "BunSqliteWorkerStore";

/**
 * Opens this runtime's durable store at `path` (created when absent):
 * `DenoKvLogStore` on Deno (needs `--unstable-kv`), `BunSqliteWorkerStore`
 * on Bun (SQLite on a worker thread, so its disk syncs never stall the event
 * loop; `BunSqliteLogStore` is the same store on the calling thread). The
 * store module is imported only here, on demand, so code that never
 * asks for it loads no runtime-specific code.
 *
 * @param path the store's file
 * @returns the open store
 * @throws {StorageError} when the store is locked, corrupt or of another format version
 *
 * @example
 * ```ts
 * import { openDefaultStore } from "@mosaik/mosaik/storage/default";
 *
 * const dir = await Deno.makeTempDir(); // a real node keeps its store in a fixed place
 * try {
 *   const store = await openDefaultStore<{ add: number }>(`${dir}/node-1.db`);
 *   await store.append([{ index: 1, term: 1, command: { add: 1 } }]);
 *   await store.close?.();
 * } finally {
 *   await Deno.remove(dir, { recursive: true });
 * }
 * ```
 */
export async function openDefaultStore<C = unknown>(path: string): Promise<Storage<C>> {
  if (onDeno) {
    const { DenoKvLogStore } = await import("./deno_kv.ts");
    return await DenoKvLogStore.open<C>(path);
  }
  const { BunSqliteWorkerStore } = await import("./bun_sqlite_worker.ts");
  return await BunSqliteWorkerStore.open<C>(path);
}
