// The entry codec stores use to keep log entries as bytes: [index, term, kind, payload] in CBOR.

import { type LogEntry, SystemEntry, type SystemEntryBody } from "../../storage/types.ts";
import { copyBytes } from "./bytes.ts";
import { decode } from "./codec.ts";
import { encodeValue } from "./encoder.ts";
import { DecodeError } from "./errors.ts";

/** `kind` of an entry holding a user command. */
const KIND_COMMAND = 0;
/** `kind` of an entry holding a {@link SystemEntry} (payload: its body). */
const KIND_SYSTEM = 1;

/**
 * Encodes a log entry as the CBOR array `[index, term, kind, payload]`:
 * kind 0 carries a user command as it is, kind 1 the body of a
 * {@link SystemEntry}. A user command can never be mistaken for a system
 * entry: a `SystemEntry` is a class instance, which no command may contain.
 *
 * @param entry the entry to encode
 * @returns a new buffer holding the encoding
 * @throws {EncodingError} when the command is not CBOR-encodable (the path is relative to the command)
 * @throws {RangeError} when `index` or `term` is not a non-negative safe integer
 * @throws {TypeError} when a system entry's body is malformed
 */
export function encodeEntry<C>(entry: LogEntry<C>): Uint8Array {
  // Copied out of the encoder's shared buffer.
  const view = encodeView(entry);
  const out = new Uint8Array(view.byteLength);
  out.set(view);
  return out;
}

/** An encoding remembered for an entry object, with what it encoded. */
interface Encoded {
  readonly index: unknown;
  readonly term: unknown;
  readonly command: unknown;
  readonly bytes: Uint8Array;
}

/**
 * The encodings of entries already encoded or decoded, keyed by the entry
 * object: a leader encodes an entry once for every follower and for its own
 * store, and a follower stores the bytes the entry arrived in. An encoding is
 * used again only while the object still holds the same index, term and
 * command (a caller may reuse one object for several entries).
 */
const ENCODED = new WeakMap<LogEntry<unknown>, Encoded>();

/**
 * The encoding of `entry`, as {@link encodeEntry} makes it, computed once per
 * entry object and shared: callers must not change the returned bytes.
 * @internal
 *
 * @throws like {@link encodeEntry}
 */
export function entryBytes<C>(entry: LogEntry<C>): Uint8Array {
  const known = ENCODED.get(entry);
  if (
    known !== undefined && known.index === entry.index && known.term === entry.term &&
    known.command === entry.command
  ) {
    return known.bytes;
  }
  const bytes = copyBytes(encodeView(entry));
  remember(entry, bytes);
  return bytes;
}

function remember<C>(entry: LogEntry<C>, bytes: Uint8Array): void {
  ENCODED.set(entry, { index: entry.index, term: entry.term, command: entry.command, bytes });
}

/** The encoding, as a view into the encoder's shared buffer: copy it before the next encode. */
function encodeView<C>(entry: LogEntry<C>): Uint8Array {
  const { index, term, command } = entry;
  if (!isPosition(index) || !isPosition(term)) {
    throw new RangeError(
      `Cannot encode entry: index and term must be non-negative safe integers, got ${index} and ${term}`,
    );
  }
  // `+ 0` turns a -0 into 0, which is what every store should see.
  const at = index + 0;
  const of = term + 0;
  if (command instanceof SystemEntry) {
    const body = systemBody(command.body);
    if (body === undefined) {
      throw new TypeError("Cannot encode entry: malformed system entry body");
    }
    return encodeValue(body, [at, of, KIND_SYSTEM]);
  }
  // The command is checked as the root so error paths read `$.field`, not
  // `$[3].field`; the index and term written around it are checked above.
  return encodeValue(command, [at, of, KIND_COMMAND]);
}

/**
 * Decodes like {@link decodeEntry} and remembers `bytes` as the new entry's
 * encoding for {@link entryBytes}, so storing it does not encode it again.
 * The caller gives up `bytes`: nothing may change them afterwards. @internal
 *
 * @throws like {@link decodeEntry}
 */
export function decodeOwnedEntry<C>(bytes: Uint8Array): LogEntry<C> {
  const entry = decodeEntry<C>(bytes);
  remember(entry, bytes);
  return entry;
}

/**
 * Decodes what {@link encodeEntry} produced, checking the shape: an array of
 * four, non-negative safe integer index and term, kind 0 or 1, and for kind 1
 * a body with a known `type` and exactly its fields.
 *
 * @param bytes one encoded entry
 * @returns the entry; a kind-1 payload comes back as a {@link SystemEntry}
 * @throws {DecodeError} when `bytes` is not a well-formed entry
 * @throws {TypeError} when `bytes` is not a `Uint8Array`
 */
export function decodeEntry<C>(bytes: Uint8Array): LogEntry<C> {
  const value = decode(bytes);
  if (!Array.isArray(value) || value.length !== 4) {
    throw new DecodeError("Cannot decode entry: expected an array of 4 items");
  }
  const [index, term, kind, payload] = value as [unknown, unknown, unknown, unknown];
  if (!isPosition(index)) {
    throw new DecodeError("Cannot decode entry: index is not a non-negative safe integer");
  }
  if (!isPosition(term)) {
    throw new DecodeError("Cannot decode entry: term is not a non-negative safe integer");
  }
  if (kind === KIND_COMMAND) return { index, term, command: payload as C };
  if (kind === KIND_SYSTEM) {
    const body = systemBody(payload);
    if (body === undefined) {
      throw new DecodeError("Cannot decode entry: malformed system entry body");
    }
    return { index, term, command: new SystemEntry(body) };
  }
  throw new DecodeError(`Cannot decode entry: unknown kind ${String(kind)}`);
}

function isPosition(x: unknown): x is number {
  return typeof x === "number" && Number.isSafeInteger(x) && x >= 0;
}

/** A fresh, plain copy of `x` when it is a well-formed system entry body, else `undefined`. */
function systemBody(x: unknown): SystemEntryBody | undefined {
  if (typeof x !== "object" || x === null) return undefined;
  const proto: unknown = Object.getPrototypeOf(x);
  if (proto !== Object.prototype && proto !== null) return undefined;
  const fields = x as Record<string, unknown>;
  const keys = Object.keys(fields);
  switch (fields.type) {
    case "noop":
      return keys.length === 1 ? { type: "noop" } : undefined;
    case "bootstrap": {
      const { clusterId, voters } = fields;
      if (keys.length !== 3 || typeof clusterId !== "string" || !isStringArray(voters)) {
        return undefined;
      }
      return { type: "bootstrap", clusterId, voters: [...voters] };
    }
    case "membership": {
      const { voters, learners } = fields;
      if (keys.length !== 3 || !isStringArray(voters) || !isStringArray(learners)) return undefined;
      return { type: "membership", voters: [...voters], learners: [...learners] };
    }
    default:
      return undefined;
  }
}

function isStringArray(x: unknown): x is string[] {
  return Array.isArray(x) && x.every((item) => typeof item === "string");
}
