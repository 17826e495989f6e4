// What BunSqliteWorkerStore and its thread (_bun_sqlite_thread.ts) exchange: requests, replies, and entries packed into one buffer.

import type { EncodedEntry } from "./bun_sqlite.ts";

/** What the opening thread sends. @internal */
export interface ThreadRequest {
  readonly id: number;
  readonly op: string;
  readonly args: readonly unknown[];
}

/** What the thread answers. @internal */
export type ThreadReply =
  | { readonly id: number; readonly ok: true; readonly value: unknown }
  | {
    readonly id: number;
    readonly ok: false;
    readonly error: { name: string; message: string; props: Record<string, unknown> };
  };

/**
 * Entries packed for the trip between threads: positions, and the encodings
 * back to back in one buffer (one clone or transfer instead of one per entry).
 * @internal
 */
export interface PackedEntries {
  readonly indexes: Float64Array;
  readonly terms: Float64Array;
  readonly lengths: Uint32Array;
  readonly data: Uint8Array;
}

/** Packs `records`; their positions must be numbers (a Float64Array would coerce anything else). @internal */
export function pack(records: readonly EncodedEntry[]): PackedEntries {
  const n = records.length;
  const indexes = new Float64Array(n);
  const terms = new Float64Array(n);
  const lengths = new Uint32Array(n);
  let total = 0;
  for (let i = 0; i < n; i++) total += records[i]!.bytes.byteLength;
  const data = new Uint8Array(total);
  let at = 0;
  for (let i = 0; i < n; i++) {
    const r = records[i]!;
    indexes[i] = r.index;
    terms[i] = r.term;
    lengths[i] = r.bytes.byteLength;
    data.set(r.bytes, at);
    at += r.bytes.byteLength;
  }
  return { indexes, terms, lengths, data };
}

/** The records of {@link pack}; each `bytes` is a view into `data`. @internal */
export function unpack(packed: PackedEntries): EncodedEntry[] {
  const out = new Array<EncodedEntry>(packed.indexes.length);
  let at = 0;
  for (let i = 0; i < out.length; i++) {
    const length = packed.lengths[i]!;
    out[i] = {
      index: packed.indexes[i]!,
      term: packed.terms[i]!,
      bytes: packed.data.subarray(at, at + length),
    };
    at += length;
  }
  return out;
}
