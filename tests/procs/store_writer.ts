// A child process that keeps writing to this runtime's durable store until it is killed, announcing every operation before and after it.
//
// Usage (either runtime; Deno needs --allow-all --unstable-kv):
//   store_writer.ts <store path> <seed>
// It opens the store, prints {"opened":true}, then runs random operations
// forever. Before each one it prints {"seq":n,"op":{…}} and when the
// operation's promise has resolved (durable) it prints {"ack":n}. The parent
// kills it with SIGKILL at a random moment and checks the store against the
// acknowledged operations. Entries' commands are rebuilt by the parent from
// (index, term, salt) with `commandFor`, so the lines stay short.

import { writeSync } from "node:fs";
import process from "node:process";
import type { Cursor } from "../../lib/primitives/cursor.ts";
import { SeededRng } from "../../lib/primitives/rng.ts";
import type { HardState, LogEntry, Storage } from "../../storage/types.ts";
import { openDefaultStore } from "../../storage/default.ts";

/** One operation on the store, as announced on stdout. */
export type WriterOp =
  | {
    readonly kind: "append";
    readonly from: number;
    readonly to: number;
    readonly term: number;
    readonly salt: number;
  }
  | { readonly kind: "truncate"; readonly from: number }
  | { readonly kind: "prune"; readonly upTo: number }
  | { readonly kind: "reset"; readonly cursor: Cursor }
  | { readonly kind: "hardState"; readonly state: HardState };

/** The command the writer stores at `index` in `term` for an append with `salt`. */
export interface WriterCommand {
  readonly i: number;
  readonly t: number;
  readonly s: number;
  readonly pad: Uint8Array;
}

/**
 * The command at (`index`, `term`, `salt`): mostly small, now and then larger
 * than a Deno KV value (64 KiB) or a whole KV commit (800 KiB).
 */
export function commandFor(index: number, term: number, salt: number): WriterCommand {
  const h = (Math.imul(index ^ salt, 0x9e3779b1) >>> 0) % 1000;
  const size = h < 3 ? 900_000 + h * 100_000 : h < 20 ? 60_000 + h * 1_000 : 16 + (h % 200);
  const pad = new Uint8Array(size);
  for (let k = 0; k < size; k++) pad[k] = (k + index * 7 + term * 13 + salt) & 0xff;
  return { i: index, t: term, s: salt, pad };
}

/** The entries an append announces. */
export function entriesFor(op: Extract<WriterOp, { kind: "append" }>): LogEntry<WriterCommand>[] {
  const out: LogEntry<WriterCommand>[] = [];
  for (let i = op.from; i <= op.to; i++) {
    out.push({ index: i, term: op.term, command: commandFor(i, op.term, op.salt) });
  }
  return out;
}

/** Applies `op` to `store`. */
export async function applyOp(store: Storage<WriterCommand>, op: WriterOp): Promise<void> {
  switch (op.kind) {
    case "append":
      return await store.append(entriesFor(op));
    case "truncate":
      return await store.truncate(op.from);
    case "prune":
      return await store.prunePrefix(op.upTo);
    case "reset":
      return await store.resetTo(op.cursor);
    case "hardState":
      return await store.saveHardState(op.state);
  }
}

/** Most entries the writer keeps before it prunes. */
const MAX_KEPT = 2_500;

/** The next operation, chosen from the store's current state. */
async function nextOp(store: Storage<WriterCommand>, rng: SeededRng): Promise<WriterOp> {
  const last = await store.last();
  const range = await store.available();
  const prefix = range.start - 1;
  const hs = (await store.loadHardState()) ?? { term: 0 };
  const roll = rng.int(100);
  if (last.index - prefix > MAX_KEPT) return { kind: "prune", upTo: last.index - 500 };
  if (roll < 8 && last.index > prefix) {
    return { kind: "truncate", from: prefix + 1 + rng.int(last.index - prefix) };
  }
  if (roll < 12 && last.index > prefix) {
    return { kind: "prune", upTo: prefix + 1 + rng.int(last.index - prefix) };
  }
  if (roll < 14) {
    const index = Math.max(0, last.index + rng.int(20) - 10);
    return {
      kind: "reset",
      cursor: index === 0 ? { term: 0, index: 0 } : { term: last.term + 1, index },
    };
  }
  if (roll < 24) {
    const term = hs.term + rng.int(2);
    return {
      kind: "hardState",
      state: rng.int(2) === 0 ? { term } : { term, votedFor: `v${rng.int(1000)}` },
    };
  }
  const count = roll < 34 ? 200 + rng.int(1300) : 1 + rng.int(50);
  const term = Math.max(1, last.term) + (rng.int(10) === 0 ? 1 : 0);
  return {
    kind: "append",
    from: last.index + 1,
    to: last.index + count,
    term,
    salt: rng.int(1 << 30),
  };
}

/**
 * Writes one line to stdout before returning, so no announced line can still
 * sit in a buffer when the process is killed.
 */
function say(value: unknown): void {
  const bytes = new TextEncoder().encode(JSON.stringify(value) + "\n");
  for (let off = 0, tries = 0; off < bytes.length;) {
    try {
      off += writeSync(1, bytes, off);
    } catch (err) {
      // A full pipe: the parent is reading; try again, bounded.
      if ((err as { code?: string }).code !== "EAGAIN" || ++tries > 10_000) throw err;
    }
  }
}

async function main(): Promise<void> {
  const [path, seedText] = process.argv.slice(2).filter((a) => a !== "--");
  if (path === undefined || seedText === undefined) {
    throw new Error("Usage: store_writer.ts <store path> <seed>");
  }
  const rng = new SeededRng(Number(seedText));
  const store = await openDefaultStore<WriterCommand>(path);
  say({ opened: true });
  // Bounded so a child the parent forgot cannot run forever.
  for (let seq = 1; seq <= 100_000; seq++) {
    const op = await nextOp(store, rng);
    say({ seq, op });
    await applyOp(store, op);
    say({ ack: seq });
  }
  await store.close?.();
}

if (import.meta.main) {
  try {
    await main();
  } catch (err) {
    say({ error: err instanceof Error ? err.stack : String(err) });
    process.exit(1);
  }
}
