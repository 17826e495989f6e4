// Signed peer entries: what a node announces about itself in discovery, signed with its Ed25519 key.

import { concatBytes, utf8 } from "../primitives/bytes.ts";
import { GroupId, NetworkId, PeerId } from "../primitives/ids.ts";
import { decode, encode } from "../wire/codec.ts";
import { Identity, SIGNATURE_SIZE } from "./identity.ts";
import {
  addressProblem,
  CERTIFICATE_HASH_SIZE,
  MAX_ADDRESSES,
  type TransportAddress,
} from "./peer_addr.ts";

/** Domain tag prepended to the payload before signing, so the signature means nothing elsewhere. */
export const PEER_ENTRY_DOMAIN = "mosaik/peer-entry/v1";

/** Most tags an entry may carry. */
export const MAX_TAGS = 64;
/** Longest tag, in UTF-16 code units. */
export const MAX_TAG_LENGTH = 128;
/** Most group ids an entry may carry. */
export const MAX_GROUPS = 1024;

const DOMAIN_BYTES = utf8(PEER_ENTRY_DOMAIN);

/**
 * Which incarnation and revision of a peer's entry this is. Newer means
 * greater `(start, update)` in lexicographic order: a restarted process has a
 * later `start` and wins even though its `update` counter began again.
 */
export interface EntryVersion {
  /** When this process started, in milliseconds since the epoch. */
  readonly start: number;
  /** Incremented on every change to the entry within one process. */
  readonly update: number;
}

/** What a node announces about itself: where to reach it and what it does. */
export interface PeerEntry {
  /** The network the entry belongs to; entries of other networks are rejected. */
  readonly networkId: NetworkId;
  /** The peer the entry describes, and the key that signs it. */
  readonly peerId: PeerId;
  /** Where the peer listens, most preferred first (0–{@link MAX_ADDRESSES}). */
  readonly addresses: readonly TransportAddress[];
  /** SHA-256 of the peer's TLS certificate (32 bytes), which dialers pin. */
  readonly certificateHash: Uint8Array;
  /** Free-form labels (`"matcher"`), sorted and without duplicates once signed. */
  readonly tags: readonly string[];
  /** The groups the peer is a member of, in byte order without duplicates once signed. */
  readonly groups: readonly GroupId[];
  /** See {@link EntryVersion}. */
  readonly version: EntryVersion;
}

/**
 * A peer entry as it travels: the exact CBOR bytes that were signed and the
 * Ed25519 signature over `PEER_ENTRY_DOMAIN ‖ payload`. Keeping the bytes
 * (instead of re-encoding) means verification never depends on encoder
 * details. Read the entry only through {@link verifyEntry}.
 */
export interface SignedPeerEntry {
  /** Canonical CBOR of the entry (see {@link signEntry}). */
  readonly payload: Uint8Array;
  /** Ed25519 signature (64 bytes) by the entry's peer id. */
  readonly signature: Uint8Array;
}

/** Why an entry was rejected. */
export type InvalidEntryReason = "signature" | "network" | "malformed";

/** A peer entry that must be ignored: not decodable, of another network, or not signed by its peer. */
export class InvalidEntryError extends Error {
  /** Why the entry was rejected. */
  readonly reason: InvalidEntryReason;

  /**
   * @param reason why the entry was rejected
   * @param message what failed, sentence case, no trailing period
   * @param options the underlying error, if any
   */
  constructor(reason: InvalidEntryReason, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "InvalidEntryError";
    this.reason = reason;
  }
}

/**
 * Order of two versions: negative when `a` is older than `b`, zero when equal,
 * positive when newer. Lexicographic on `(start, update)`.
 */
export function compareVersions(a: EntryVersion, b: EntryVersion): number {
  if (a.start !== b.start) return a.start < b.start ? -1 : 1;
  if (a.update !== b.update) return a.update < b.update ? -1 : 1;
  return 0;
}

function isVersionNumber(n: unknown): n is number {
  return typeof n === "number" && Number.isSafeInteger(n) && n >= 0;
}

/** Bytes of a tag list in canonical order: sorted by code unit, duplicates removed. */
function canonicalTags(tags: readonly string[]): string[] {
  return [...new Set(tags)].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

function canonicalGroups(groups: readonly GroupId[]): GroupId[] {
  const byHex = new Map(groups.map((g) => [g.toHex(), g] as const));
  return [...byHex.values()].sort((a, b) => a.compare(b));
}

/**
 * The entry's problems as plain data, shared by signing (a RangeError) and
 * decoding (malformed); undefined when fine.
 */
function entryProblem(e: PeerEntry): string | undefined {
  if (!(e.networkId instanceof NetworkId)) return "networkId is not a NetworkId";
  if (!(e.peerId instanceof PeerId)) return "peerId is not a PeerId";
  if (!Array.isArray(e.addresses)) return "addresses is not an array";
  if (e.addresses.length > MAX_ADDRESSES) return `more than ${MAX_ADDRESSES} addresses`;
  for (const [i, a] of e.addresses.entries()) {
    const problem = addressProblem(a);
    if (problem !== undefined) return `address ${i + 1}: ${problem}`;
  }
  if (!(e.certificateHash instanceof Uint8Array)) return "certificateHash is not bytes";
  if (e.certificateHash.length !== CERTIFICATE_HASH_SIZE) {
    return `certificate hash is ${e.certificateHash.length} bytes, expected ${CERTIFICATE_HASH_SIZE}`;
  }
  if (!Array.isArray(e.tags)) return "tags is not an array";
  if (e.tags.length > MAX_TAGS) return `more than ${MAX_TAGS} tags`;
  for (const t of e.tags) {
    if (typeof t !== "string" || t.length === 0 || t.length > MAX_TAG_LENGTH) {
      return `tag ${JSON.stringify(t)} is not a string of 1–${MAX_TAG_LENGTH} characters`;
    }
  }
  if (!Array.isArray(e.groups)) return "groups is not an array";
  if (e.groups.length > MAX_GROUPS) return `more than ${MAX_GROUPS} groups`;
  if (!e.groups.every((g) => g instanceof GroupId)) return "a group is not a GroupId";
  if (typeof e.version !== "object" || e.version === null) return "version is not an object";
  if (!isVersionNumber(e.version.start) || !isVersionNumber(e.version.update)) {
    return "version start and update must be non-negative safe integers";
  }
  return undefined;
}

/**
 * The canonical plain form: a positional CBOR array, so the bytes do not depend
 * on property order, and tags and groups in canonical order.
 *
 * `[networkId, peerId, [[transport, host, port]…], certificateHash, [tag…], [groupId…], start, update]`
 */
function toPlain(e: PeerEntry): unknown[] {
  return [
    e.networkId.toBytes(),
    e.peerId.toBytes(),
    e.addresses.map((a) => [a.transport, a.host, a.port]),
    e.certificateHash.slice(),
    canonicalTags(e.tags),
    canonicalGroups(e.groups).map((g) => g.toBytes()),
    e.version.start,
    e.version.update,
  ];
}

const isBytes32 = (v: unknown): v is Uint8Array => v instanceof Uint8Array && v.length === 32;

/** The inverse of {@link toPlain}; throws InvalidEntryError("malformed"). */
function fromPayload(payload: Uint8Array): PeerEntry {
  const malformed = (what: string, cause?: unknown): never => {
    throw new InvalidEntryError(
      "malformed",
      `Cannot read peer entry: ${what}`,
      cause === undefined ? undefined : { cause },
    );
  };
  let plain: unknown;
  try {
    plain = decode(payload);
  } catch (err) {
    malformed("payload is not valid CBOR", err);
  }
  if (!Array.isArray(plain) || plain.length !== 8) malformed("payload is not an 8-item array");
  const [net, peer, addrs, cert, tags, groups, start, update] = plain as unknown[];
  if (!isBytes32(net)) return malformed("network id is not 32 bytes");
  if (!isBytes32(peer)) return malformed("peer id is not 32 bytes");
  if (!Array.isArray(addrs)) return malformed("addresses is not an array");
  if (addrs.length > MAX_ADDRESSES) return malformed(`more than ${MAX_ADDRESSES} addresses`);
  const addresses = addrs.map((a: unknown, i): TransportAddress => {
    if (!Array.isArray(a) || a.length !== 3) return malformed(`address ${i + 1} is not a triple`);
    const [transport, host, port] = a as unknown[];
    const address = { transport, host, port };
    const problem = addressProblem(address);
    if (problem !== undefined) return malformed(`address ${i + 1}: ${problem}`);
    return Object.freeze(address as TransportAddress);
  });
  if (!(cert instanceof Uint8Array)) return malformed("certificate hash is not bytes");
  if (!Array.isArray(tags) || !tags.every((t) => typeof t === "string")) {
    return malformed("tags is not an array of strings");
  }
  if (!Array.isArray(groups) || !groups.every(isBytes32)) {
    return malformed("groups is not an array of 32-byte ids");
  }
  const entry: PeerEntry = {
    networkId: new NetworkId(net),
    peerId: new PeerId(peer),
    addresses: Object.freeze(addresses),
    certificateHash: cert.slice(),
    tags: Object.freeze([...(tags as string[])]),
    groups: Object.freeze((groups as Uint8Array[]).map((g) => new GroupId(g))),
    version: Object.freeze({ start: start as number, update: update as number }),
  };
  const problem = entryProblem(entry);
  if (problem !== undefined) malformed(problem);
  return Object.freeze(entry);
}

function signedMessage(payload: Uint8Array): Uint8Array {
  return concatBytes(DOMAIN_BYTES, payload);
}

/**
 * Encodes `entry` canonically and signs it with `identity`.
 *
 * @param entry the entry to announce; its `peerId` must be the identity's
 * @param identity the key pair of `entry.peerId`
 * @returns the payload and signature, ready for {@link encodeSignedEntry}
 * @throws {RangeError} (as a rejection) when the entry is invalid or not the identity's
 */
export async function signEntry(entry: PeerEntry, identity: Identity): Promise<SignedPeerEntry> {
  const problem = entryProblem(entry);
  if (problem !== undefined) throw new RangeError(`Cannot sign peer entry: ${problem}`);
  if (!entry.peerId.equals(identity.peerId)) {
    throw new RangeError(
      `Cannot sign peer entry: it describes ${entry.peerId.short()} but the identity is ${identity.peerId.short()}`,
    );
  }
  const payload = encode(toPlain(entry));
  const signature = await identity.sign(signedMessage(payload));
  return Object.freeze({ payload, signature });
}

/**
 * Checks a signed entry and returns what it says. Checks, in order: the payload
 * decodes to a well-formed entry ("malformed"), it belongs to
 * `expectedNetworkId` ("network"; checked before the signature so foreign
 * entries cost no signature check), and its own peer id signed it
 * ("signature"; an empty signature — an unsigned entry — fails here too).
 *
 * @param signed the entry as received
 * @param expectedNetworkId this node's network
 * @throws {InvalidEntryError} (as a rejection) with the reason it was rejected
 */
export async function verifyEntry(
  signed: SignedPeerEntry,
  expectedNetworkId: NetworkId,
): Promise<PeerEntry> {
  if (
    typeof signed !== "object" || signed === null || !(signed.payload instanceof Uint8Array) ||
    !(signed.signature instanceof Uint8Array)
  ) {
    throw new InvalidEntryError("malformed", "Cannot read peer entry: not a signed entry");
  }
  const entry = fromPayload(signed.payload);
  if (!entry.networkId.equals(expectedNetworkId)) {
    throw new InvalidEntryError(
      "network",
      `Cannot accept peer entry: it belongs to network ${entry.networkId.short()}, not ${expectedNetworkId.short()}`,
    );
  }
  if (signed.signature.length !== SIGNATURE_SIZE) {
    throw new InvalidEntryError(
      "signature",
      `Cannot accept peer entry: signature is ${signed.signature.length} bytes, expected ${SIGNATURE_SIZE}`,
    );
  }
  if (!(await Identity.verify(entry.peerId, signedMessage(signed.payload), signed.signature))) {
    throw new InvalidEntryError(
      "signature",
      `Cannot accept peer entry: bad signature for peer ${entry.peerId.short()}`,
    );
  }
  return entry;
}

/** The wire form of a signed entry: CBOR `[payload, signature]`. */
export function encodeSignedEntry(signed: SignedPeerEntry): Uint8Array {
  return encode([signed.payload, signed.signature]);
}

/**
 * Reads the wire form written by {@link encodeSignedEntry}. Only the envelope is
 * checked here; {@link verifyEntry} checks the contents.
 *
 * @throws {InvalidEntryError} with reason "malformed" for anything else (never another error)
 */
export function decodeSignedEntry(bytes: Uint8Array): SignedPeerEntry {
  let plain: unknown;
  try {
    plain = decode(bytes);
  } catch (err) {
    throw new InvalidEntryError("malformed", "Cannot read signed peer entry: not valid CBOR", {
      cause: err,
    });
  }
  if (
    !Array.isArray(plain) || plain.length !== 2 || !(plain[0] instanceof Uint8Array) ||
    !(plain[1] instanceof Uint8Array)
  ) {
    throw new InvalidEntryError(
      "malformed",
      "Cannot read signed peer entry: expected [payload bytes, signature bytes]",
    );
  }
  // Copies: the decoder may hand out views into a buffer the caller reuses.
  return Object.freeze({ payload: plain[0].slice(), signature: plain[1].slice() });
}
