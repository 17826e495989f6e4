// Raft messages on the wire: entries as encoded bytes, and strict validation of everything a peer sends before the core sees it.

/**
 * The core assumes well-formed messages, so everything a peer sends is
 * checked here, at the bond boundary: {@link raftFromWire} accepts only a
 * message of a known type with every field of the right type and range,
 * addressed from the bond's peer to this node, with append entries that
 * decode, are contiguous after `prevLogIndex` and carry terms no newer than
 * the message. Anything else is `undefined` (the caller drops it and may
 * close the bond).
 *
 * @module
 */

import type { LogEntry } from "../../storage/types.ts";
import { copyBytes } from "../wire/bytes.ts";
import { decodeOwnedEntry, entryBytes } from "../wire/entry.ts";
import type { NodeId, RaftMessage } from "../raft/types.ts";

/** A Raft message as sent: plain CBOR data, append entries as encoded bytes. */
export type WireRaftMessage = Readonly<Record<string, unknown>>;

/** Longest cluster id or read request id accepted from a peer. */
const MAX_ID = 128;

/**
 * The wire form of a message the core produced.
 *
 * @throws {EncodingError} when an entry's command is not encodable (the driver checks commands before proposing)
 */
export function raftToWire(m: RaftMessage): WireRaftMessage {
  if (m.type !== "append") return m as unknown as WireRaftMessage;
  return { ...m, entries: m.entries.map(entryBytes) };
}

const nat = (v: unknown): v is number => typeof v === "number" && Number.isSafeInteger(v) && v >= 0;
const bool = (v: unknown): v is boolean => typeof v === "boolean";
const id = (v: unknown): v is string => typeof v === "string" && v.length <= MAX_ID;

/**
 * The message a peer sent, validated, or `undefined` when it is malformed.
 *
 * @param raw what arrived in a `{ t: "raft", m }` frame
 * @param from the bond's peer (the message must claim to be from it)
 * @param self this node (the message must be addressed to it)
 */
export function raftFromWire(raw: unknown, from: NodeId, self: NodeId): RaftMessage | undefined {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) return undefined;
  const m = raw as Record<string, unknown>;
  if (m.from !== from || m.to !== self || !nat(m.term)) return undefined;
  if (m.clusterId !== undefined && !id(m.clusterId)) return undefined;
  const base = {
    from,
    to: self,
    term: m.term,
    ...(m.clusterId === undefined ? {} : { clusterId: m.clusterId as string }),
  };
  switch (m.type) {
    case "vote":
      if (!bool(m.preVote) || !nat(m.lastLogIndex) || !nat(m.lastLogTerm) || !bool(m.transfer)) {
        return undefined;
      }
      return {
        ...base,
        type: "vote",
        preVote: m.preVote,
        lastLogIndex: m.lastLogIndex,
        lastLogTerm: m.lastLogTerm,
        transfer: m.transfer,
      };
    case "voteResponse":
      if (!bool(m.preVote) || !bool(m.granted)) return undefined;
      return { ...base, type: "voteResponse", preVote: m.preVote, granted: m.granted };
    case "append": {
      if (!nat(m.prevLogIndex) || !nat(m.prevLogTerm) || !nat(m.leaderCommit)) return undefined;
      if (!Array.isArray(m.entries) || m.prevLogTerm > m.term) return undefined;
      if (m.noReply !== undefined && m.noReply !== true) return undefined;
      const entries: LogEntry<unknown>[] = [];
      let expect = m.prevLogIndex + 1;
      let lastTerm = m.prevLogTerm;
      for (const bytes of m.entries as unknown[]) {
        if (!(bytes instanceof Uint8Array)) return undefined;
        let entry: LogEntry<unknown>;
        try {
          // Kept as the entry's encoding, in memory that decodes without a hidden copy.
          entry = decodeOwnedEntry(copyBytes(bytes));
        } catch {
          return undefined;
        }
        if (entry.index !== expect || entry.term < lastTerm || entry.term > m.term) {
          return undefined;
        }
        entries.push(entry);
        expect++;
        lastTerm = entry.term;
      }
      return {
        ...base,
        type: "append",
        prevLogIndex: m.prevLogIndex,
        prevLogTerm: m.prevLogTerm,
        entries,
        leaderCommit: m.leaderCommit,
        ...(m.noReply === true ? { noReply: true } : {}),
      };
    }
    case "appendResponse":
      if (
        !bool(m.success) || !nat(m.matchIndex) || !nat(m.rejectIndex) || !nat(m.hintIndex) ||
        !nat(m.hintTerm)
      ) return undefined;
      return {
        ...base,
        type: "appendResponse",
        success: m.success,
        matchIndex: m.matchIndex,
        rejectIndex: m.rejectIndex,
        hintIndex: m.hintIndex,
        hintTerm: m.hintTerm,
      };
    case "heartbeat":
      if (!nat(m.commit) || !nat(m.seq)) return undefined;
      return { ...base, type: "heartbeat", commit: m.commit, seq: m.seq };
    case "heartbeatResponse":
      if (!nat(m.seq) || !nat(m.lastIndex)) return undefined;
      return { ...base, type: "heartbeatResponse", seq: m.seq, lastIndex: m.lastIndex };
    case "timeoutNow":
      return { ...base, type: "timeoutNow" };
    case "readIndex":
      if (!id(m.requestId)) return undefined;
      return { ...base, type: "readIndex", requestId: m.requestId };
    case "readIndexResponse":
      if (!id(m.requestId) || !(nat(m.index) || m.index === -1)) return undefined;
      return {
        ...base,
        type: "readIndexResponse",
        requestId: m.requestId,
        index: m.index as number,
      };
    default:
      return undefined;
  }
}
