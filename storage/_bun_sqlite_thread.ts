// The worker thread behind BunSqliteWorkerStore: one BunSqliteLogStore, driven by messages from the thread that opened it.
//
// Requests are `{ id, op, args }`; each gets `{ id, ok: true, value }` or
// `{ id, ok: false, error: { name, message, props } }`, in request order.
// Entries cross the thread boundary as `encodeEntry` bytes, never as objects.

import { BunSqliteLogStore, type EncodedEntry } from "./bun_sqlite.ts";
import {
  pack,
  type PackedEntries,
  type ThreadReply,
  type ThreadRequest,
  unpack,
} from "./_bun_sqlite_protocol.ts";

declare const self: {
  onmessage: ((event: { data: ThreadRequest }) => void) | null;
  postMessage(reply: ThreadReply, transfer?: ArrayBuffer[]): void;
};

let store: BunSqliteLogStore | undefined;

function run(op: string, args: readonly unknown[]): unknown {
  if (op === "open") {
    store = BunSqliteLogStore.open(args[0] as string);
    return { path: store.path };
  }
  if (store === undefined) throw new Error(`Cannot ${op}: the store is not open`);
  const s = store;
  // Arguments are passed on as sent; the store checks them as it checks any caller's.
  const a = args as unknown as [never, never];
  switch (op) {
    case "appendEncoded":
      return s.appendEncoded(a[0] as readonly EncodedEntry[]);
    case "appendPacked":
      return s.appendEncoded(unpack(a[0] as PackedEntries));
    case "getRangePacked":
      return pack(s.getRangeEncoded(a[0], a[1]));
    case "available":
      return s.available();
    case "last":
      return s.last();
    case "termAt":
      return s.termAt(a[0]);
    case "truncate":
      return s.truncate(a[0]);
    case "prunePrefix":
      return s.prunePrefix(a[0]);
    case "resetTo":
      return s.resetTo(a[0]);
    case "loadHardState":
      return s.loadHardState();
    case "saveHardState":
      return s.saveHardState(a[0]);
    case "claim":
      return s.claim(a[0]);
    case "close":
      return s.close();
    default:
      throw new Error(`Unknown store operation ${op}`);
  }
}

/** The error as data: its class name, message and own fields (a StorageError's `path`, …). */
function errorData(
  err: unknown,
): { name: string; message: string; props: Record<string, unknown> } {
  if (!(err instanceof Error)) return { name: "Error", message: String(err), props: {} };
  const props: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(err)) {
    if (v === null || ["string", "number", "boolean"].includes(typeof v)) props[k] = v;
  }
  return { name: err.constructor.name, message: err.message, props };
}

self.onmessage = (event) => {
  const { id, op, args } = event.data;
  let reply: ThreadReply;
  try {
    reply = { id, ok: true, value: run(op, args) };
  } catch (err) {
    reply = { id, ok: false, error: errorData(err) };
  }
  const value = reply.ok ? reply.value as Partial<PackedEntries> | undefined : undefined;
  // Packed rows are handed over, not copied.
  self.postMessage(
    reply,
    value?.data instanceof Uint8Array ? [value.data.buffer as ArrayBuffer] : [],
  );
};
