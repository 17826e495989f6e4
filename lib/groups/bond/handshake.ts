// The bond handshake as a pure state machine: messages in, messages or a typed rejection out; no I/O, no clock.

/**
 * The bond handshake (DESIGN.md §5), transport-independent.
 *
 * Three messages cross one bidirectional stream:
 *
 * 1. initiator → acceptor: {@link Hello} (network, group, its PeerId, a fresh nonce);
 * 2. acceptor → initiator: {@link HelloAck} (the same fields for the acceptor,
 *    plus its key proof and signature);
 * 3. initiator → acceptor: {@link Confirm} (the initiator's key proof and signature).
 *
 * Each proof is `blake3-keyed(groupKey, transcript)` and each signature is
 * Ed25519 over the same transcript, where the transcript is
 * `"mosaik/bond/v1" ‖ role ‖ groupId ‖ nonceI ‖ nonceA ‖ certHash ‖ proverId`
 * ({@link bondTranscript}). The role byte keeps the initiator's proof from
 * being replayed as the acceptor's; `certHash` (SHA-256 of the acceptor's TLS
 * certificate) ties the proofs to this TLS connection; the fresh nonces keep a
 * recorded handshake from being replayed. No secret crosses the wire.
 *
 * The caller frames and sends the messages, and runs the handshake timer: when
 * it fires first, the caller closes with {@link HandshakeCode.HandshakeTimeout}.
 * Every incoming message is `unknown` and validated field by field, so a peer
 * can make a step return `{ reject }` but never throw.
 *
 * @module
 */

import { blake3 } from "@noble/hashes/blake3.js";
import * as ed from "@noble/ed25519";
import {
  compareBytes,
  concatBytes,
  constantTimeEqual,
  randomBytes,
  utf8,
} from "../../primitives/bytes.ts";
import type { GroupKey } from "../key.ts";
import { CloseCode } from "../../../transport/types.ts";

/** Protocol version carried in {@link Hello} and {@link HelloAck}. */
export const BOND_HANDSHAKE_VERSION = 1;

/** Domain tag at the start of every transcript. */
export const BOND_DOMAIN = "mosaik/bond/v1";

/** Size of ids (network, group, peer), nonces, certificate hashes and proofs. */
export const ID_SIZE = 32;

/** Size of an Ed25519 signature. */
export const SIGNATURE_SIZE = 64;

/**
 * Close codes the handshake ends with: the subset of `CloseCode`
 * (transport/types.ts, the Rust crate's numbers) that a handshake can produce.
 */
export const HandshakeCode = {
  /** Malformed message: wrong version, missing field, wrong size or type, our own PeerId. */
  ProtocolViolation: CloseCode.ProtocolViolation,
  /** Bad key proof or bad signature. */
  Unauthorized: CloseCode.Unauthorized,
  /** The peer is on another network. */
  WrongNetwork: CloseCode.WrongNetwork,
  /** The acceptor has no group with the requested id. */
  UnknownGroup: CloseCode.UnknownGroup,
  /** The tie-break closed this bond in favour of a duplicate ({@link survivingBond}). */
  DuplicateBond: CloseCode.DuplicateBond,
  /**
   * The handshake did not finish in time. This module has no clock: the caller
   * runs the timer and closes with this code when it fires.
   */
  HandshakeTimeout: CloseCode.HandshakeTimeout,
} as const;

/** One of the {@link HandshakeCode} values. */
export type HandshakeCode = typeof HandshakeCode[keyof typeof HandshakeCode];

/** Why a handshake step failed: the close code and a message for logs. */
export interface Rejection {
  /** The close code to close the connection with. */
  readonly code: HandshakeCode;
  /** What failed, for logs; never contains secrets. */
  readonly reason: string;
}

/** A failed handshake step. */
export interface Rejected {
  /** The close code and reason. */
  readonly reject: Rejection;
}

/** First message, initiator → acceptor. */
export interface Hello {
  /** Protocol version, {@link BOND_HANDSHAKE_VERSION}. */
  readonly v: 1;
  /** The initiator's network id (32 bytes). */
  readonly networkId: Uint8Array;
  /** The group the initiator wants to bond in (32 bytes). */
  readonly groupId: Uint8Array;
  /** The initiator's PeerId, its Ed25519 public key (32 bytes). */
  readonly peerId: Uint8Array;
  /** The initiator's fresh nonce (32 bytes). */
  readonly nonce: Uint8Array;
}

/** Second message, acceptor → initiator. */
export interface HelloAck {
  /** Protocol version, {@link BOND_HANDSHAKE_VERSION}. */
  readonly v: 1;
  /** The acceptor's network id (32 bytes). */
  readonly networkId: Uint8Array;
  /** The group id, echoed from the {@link Hello} (32 bytes). */
  readonly groupId: Uint8Array;
  /** The acceptor's PeerId, its Ed25519 public key (32 bytes). */
  readonly peerId: Uint8Array;
  /** The acceptor's fresh nonce (32 bytes). */
  readonly nonce: Uint8Array;
  /** The acceptor's key proof over the transcript (32 bytes). */
  readonly proof: Uint8Array;
  /** The acceptor's Ed25519 signature over the transcript (64 bytes). */
  readonly sig: Uint8Array;
}

/** Third message, initiator → acceptor. */
export interface Confirm {
  /** The initiator's key proof over the transcript (32 bytes). */
  readonly proof: Uint8Array;
  /** The initiator's Ed25519 signature over the transcript (64 bytes). */
  readonly sig: Uint8Array;
}

/** This node's identity as the handshake needs it (injected, so any key store fits). */
export interface BondSigner {
  /** This node's PeerId: its 32-byte Ed25519 public key. */
  readonly peerId: Uint8Array;
  /** An Ed25519 signature (64 bytes) over `message` with this node's secret key. */
  sign(message: Uint8Array): Promise<Uint8Array>;
}

/**
 * Checks an Ed25519 `signature` over `message` by `publicKey`. Must resolve
 * `false` (not reject) for any invalid input.
 */
export type SignatureVerifier = (
  signature: Uint8Array,
  message: Uint8Array,
  publicKey: Uint8Array,
) => Promise<boolean>;

/** Which side of the handshake proves. */
export type BondRole = "initiator" | "acceptor";

/** The outcome of a successful handshake, identical in content on both sides. */
export interface BondPeer {
  /** The authenticated PeerId of the other side. */
  readonly peerId: Uint8Array;
  /** The group the bond belongs to. */
  readonly groupId: Uint8Array;
  /** Our role in this bond. */
  readonly role: BondRole;
  /** PeerId of the side that opened the bond (for {@link survivingBond}). */
  readonly initiator: Uint8Array;
  /** PeerId of the side that accepted the bond. */
  readonly acceptor: Uint8Array;
}

/** What the initiator needs to open a bond. */
export interface InitiatorParams {
  /** Our network id (32 bytes). */
  readonly networkId: Uint8Array;
  /** The group to bond in (32 bytes). */
  readonly groupId: Uint8Array;
  /** The group's shared key. */
  readonly key: GroupKey;
  /** Our identity. */
  readonly signer: BondSigner;
  /** SHA-256 of the acceptor's TLS certificate, as pinned for this connection (32 bytes). */
  readonly certHash: Uint8Array;
  /** Our nonce; fresh random bytes when omitted (tests pass one to replay). */
  readonly nonce?: Uint8Array;
  /** Signature check; strict RFC 8032 Ed25519 when omitted. */
  readonly verify?: SignatureVerifier;
}

/** What the acceptor needs to answer a {@link Hello}. */
export interface AcceptorParams {
  /** Our network id (32 bytes). */
  readonly networkId: Uint8Array;
  /** Our identity. */
  readonly signer: BondSigner;
  /** SHA-256 of our own TLS certificate (32 bytes). */
  readonly certHash: Uint8Array;
  /** The key of the group with this id, or `undefined` when we are not in it. */
  readonly lookupGroup: (groupId: Uint8Array) => GroupKey | undefined;
  /** Our nonce; fresh random bytes when omitted (tests pass one to replay). */
  readonly nonce?: Uint8Array;
  /** Signature check; strict RFC 8032 Ed25519 when omitted. */
  readonly verify?: SignatureVerifier;
}

/** The initiator between sending {@link Hello} and receiving {@link HelloAck}. */
export interface InitiatorState {
  /** The parameters the handshake started with. */
  readonly params: InitiatorParams;
  /** The Hello we sent. */
  readonly hello: Hello;
}

/** The acceptor between sending {@link HelloAck} and receiving {@link Confirm}. */
export interface AcceptorState {
  /** The parameters the handshake started with. */
  readonly params: AcceptorParams;
  /** The key of the requested group. */
  readonly key: GroupKey;
  /** The validated Hello we received. */
  readonly hello: Hello;
  /** The HelloAck we sent. */
  readonly ack: HelloAck;
}

const DOMAIN_BYTES = utf8(BOND_DOMAIN);
const ROLE_BYTE: Readonly<Record<BondRole, number>> = { initiator: 1, acceptor: 2 };

/** Inputs of a transcript; all byte fields are 32 bytes. */
export interface TranscriptInput {
  /** Whose proof this is. */
  readonly role: BondRole;
  /** The group id. */
  readonly groupId: Uint8Array;
  /** The initiator's nonce. */
  readonly nonceI: Uint8Array;
  /** The acceptor's nonce. */
  readonly nonceA: Uint8Array;
  /** SHA-256 of the acceptor's TLS certificate. */
  readonly certHash: Uint8Array;
  /** PeerId of the prover. */
  readonly proverId: Uint8Array;
}

/**
 * The bytes a prover MACs and signs:
 * `"mosaik/bond/v1" ‖ role ‖ groupId ‖ nonceI ‖ nonceA ‖ certHash ‖ proverId`,
 * with role `1` for the initiator and `2` for the acceptor. Every field but the
 * constant tag has a fixed size, so the encoding is unambiguous.
 */
export function bondTranscript(t: TranscriptInput): Uint8Array {
  return concatBytes(
    DOMAIN_BYTES,
    Uint8Array.of(ROLE_BYTE[t.role]),
    t.groupId,
    t.nonceI,
    t.nonceA,
    t.certHash,
    t.proverId,
  );
}

/** The key proof over a transcript: keyed BLAKE3 with the group secret (32 bytes). */
export function keyProof(key: GroupKey, transcript: Uint8Array): Uint8Array {
  return blake3(transcript, { key: key.secretView() });
}

/** Strict (RFC 8032, not ZIP-215) Ed25519 verification that never rejects. */
export const verifyEd25519: SignatureVerifier = async (signature, message, publicKey) => {
  try {
    return await ed.verifyAsync(signature, message, publicKey, { zip215: false });
  } catch {
    return false;
  }
};

/**
 * Starts a handshake as the initiator.
 *
 * @returns the {@link Hello} to send and the state to pass to {@link checkAck}
 * @throws {RangeError} when a parameter has the wrong size (a local bug, not a peer's doing)
 */
export function makeHello(params: InitiatorParams): { hello: Hello; state: InitiatorState } {
  requireSize("networkId", params.networkId, ID_SIZE);
  requireSize("groupId", params.groupId, ID_SIZE);
  requireSize("signer.peerId", params.signer.peerId, ID_SIZE);
  requireSize("certHash", params.certHash, ID_SIZE);
  const nonce = params.nonce ?? randomBytes(ID_SIZE);
  requireSize("nonce", nonce, ID_SIZE);
  const hello: Hello = {
    v: BOND_HANDSHAKE_VERSION,
    networkId: params.networkId.slice(),
    groupId: params.groupId.slice(),
    peerId: params.signer.peerId.slice(),
    nonce: nonce.slice(),
  };
  return { hello, state: { params, hello } };
}

/**
 * Answers a {@link Hello} as the acceptor: checks network and group, then
 * proves our key and identity.
 *
 * @param params our side's parameters
 * @param message the decoded first message, unvalidated
 * @returns the {@link HelloAck} to send and the state for {@link checkConfirm},
 *   or `{ reject }` with 400, 30400 or 30404
 * @throws {RangeError} when a parameter has the wrong size (a local bug)
 */
export async function answerHello(
  params: AcceptorParams,
  message: unknown,
): Promise<{ ack: HelloAck; state: AcceptorState } | Rejected> {
  requireSize("networkId", params.networkId, ID_SIZE);
  requireSize("signer.peerId", params.signer.peerId, ID_SIZE);
  requireSize("certHash", params.certHash, ID_SIZE);
  const hello = parseHello(message);
  if (typeof hello === "string") return reject(HandshakeCode.ProtocolViolation, hello);
  if (!constantTimeEqual(hello.networkId, params.networkId)) {
    return reject(HandshakeCode.WrongNetwork, "Hello is from another network");
  }
  if (constantTimeEqual(hello.peerId, params.signer.peerId)) {
    return reject(HandshakeCode.ProtocolViolation, "Hello claims our own PeerId");
  }
  const key = params.lookupGroup(hello.groupId);
  if (key === undefined) return reject(HandshakeCode.UnknownGroup, "Hello names an unknown group");
  const nonce = params.nonce ?? randomBytes(ID_SIZE);
  requireSize("nonce", nonce, ID_SIZE);
  const transcript = bondTranscript({
    role: "acceptor",
    groupId: hello.groupId,
    nonceI: hello.nonce,
    nonceA: nonce,
    certHash: params.certHash,
    proverId: params.signer.peerId,
  });
  const ack: HelloAck = {
    v: BOND_HANDSHAKE_VERSION,
    networkId: params.networkId.slice(),
    groupId: hello.groupId.slice(),
    peerId: params.signer.peerId.slice(),
    nonce: nonce.slice(),
    proof: keyProof(key, transcript),
    sig: await params.signer.sign(transcript),
  };
  return { ack, state: { params, key, hello, ack } };
}

/**
 * Checks the acceptor's {@link HelloAck} as the initiator and, when it holds,
 * proves our key and identity in turn.
 *
 * @param state what {@link makeHello} returned
 * @param message the decoded second message, unvalidated
 * @returns the {@link Confirm} to send and the authenticated peer, or
 *   `{ reject }` with 400, 401 or 30400
 */
export async function checkAck(
  state: InitiatorState,
  message: unknown,
): Promise<{ confirm: Confirm; peer: BondPeer } | Rejected> {
  const { params, hello } = state;
  const ack = parseAck(message);
  if (typeof ack === "string") return reject(HandshakeCode.ProtocolViolation, ack);
  if (!constantTimeEqual(ack.networkId, params.networkId)) {
    return reject(HandshakeCode.WrongNetwork, "HelloAck is from another network");
  }
  if (!constantTimeEqual(ack.groupId, hello.groupId)) {
    return reject(HandshakeCode.ProtocolViolation, "HelloAck names another group");
  }
  if (constantTimeEqual(ack.peerId, hello.peerId)) {
    return reject(HandshakeCode.ProtocolViolation, "HelloAck claims our own PeerId");
  }
  if (constantTimeEqual(ack.nonce, hello.nonce)) {
    return reject(HandshakeCode.ProtocolViolation, "HelloAck reflects our nonce");
  }
  const theirs = bondTranscript({
    role: "acceptor",
    groupId: hello.groupId,
    nonceI: hello.nonce,
    nonceA: ack.nonce,
    certHash: params.certHash,
    proverId: ack.peerId,
  });
  const failed = await verifyProof(params.key, params.verify, theirs, ack, "HelloAck");
  if (failed !== undefined) return failed;
  const ours = bondTranscript({
    role: "initiator",
    groupId: hello.groupId,
    nonceI: hello.nonce,
    nonceA: ack.nonce,
    certHash: params.certHash,
    proverId: hello.peerId,
  });
  const confirm: Confirm = {
    proof: keyProof(params.key, ours),
    sig: await params.signer.sign(ours),
  };
  const peer: BondPeer = {
    peerId: ack.peerId.slice(),
    groupId: hello.groupId.slice(),
    role: "initiator",
    initiator: hello.peerId.slice(),
    acceptor: ack.peerId.slice(),
  };
  return { confirm, peer };
}

/**
 * Checks the initiator's {@link Confirm} as the acceptor.
 *
 * @param state what {@link answerHello} returned
 * @param message the decoded third message, unvalidated
 * @returns the authenticated peer, or `{ reject }` with 400 or 401
 */
export async function checkConfirm(
  state: AcceptorState,
  message: unknown,
): Promise<{ peer: BondPeer } | Rejected> {
  const { params, key, hello, ack } = state;
  const confirm = parseConfirm(message);
  if (typeof confirm === "string") return reject(HandshakeCode.ProtocolViolation, confirm);
  const theirs = bondTranscript({
    role: "initiator",
    groupId: hello.groupId,
    nonceI: hello.nonce,
    nonceA: ack.nonce,
    certHash: params.certHash,
    proverId: hello.peerId,
  });
  const failed = await verifyProof(key, params.verify, theirs, confirm, "Confirm");
  if (failed !== undefined) return failed;
  return {
    peer: {
      peerId: hello.peerId.slice(),
      groupId: hello.groupId.slice(),
      role: "acceptor",
      initiator: hello.peerId.slice(),
      acceptor: ack.peerId.slice(),
    },
  };
}

/** The two ends of a bond, as {@link BondPeer} reports them. */
export interface BondEnds {
  /** PeerId of the side that opened the bond. */
  readonly initiator: Uint8Array;
  /** PeerId of the side that accepted it. */
  readonly acceptor: Uint8Array;
}

/**
 * Which of two bonds between the same pair of peers survives: the one whose
 * initiator has the lower PeerId (byte order), so both peers, each calling
 * this with its own view, close the same bond (with
 * {@link HandshakeCode.DuplicateBond}). The answer does not depend on the
 * argument order unless both bonds have the same initiator; then the
 * tie-break cannot tell them apart and returns `b`, so a caller passing
 * `(existing, incoming)` keeps the newer bond.
 *
 * @returns `a` or `b`, whichever survives
 */
export function survivingBond<T extends BondEnds>(a: T, b: T): T {
  const byInitiator = compareBytes(a.initiator, b.initiator);
  if (byInitiator !== 0) return byInitiator < 0 ? a : b;
  return b;
}

// ---- internals ----

async function verifyProof(
  key: GroupKey,
  verify: SignatureVerifier | undefined,
  transcript: Uint8Array,
  msg: { readonly proof: Uint8Array; readonly sig: Uint8Array; readonly peerId?: Uint8Array },
  what: string,
): Promise<Rejected | undefined> {
  if (!constantTimeEqual(keyProof(key, transcript), msg.proof)) {
    return reject(HandshakeCode.Unauthorized, `${what} carries a bad key proof`);
  }
  // The prover id is the last field of the transcript: it is the key to check against.
  const proverId = transcript.subarray(transcript.length - ID_SIZE);
  let ok = false;
  try {
    ok = await (verify ?? verifyEd25519)(msg.sig, transcript, proverId);
  } catch {
    ok = false;
  }
  if (!ok) return reject(HandshakeCode.Unauthorized, `${what} carries a bad signature`);
  return undefined;
}

function reject(code: HandshakeCode, reason: string): Rejected {
  return { reject: { code, reason } };
}

function requireSize(name: string, value: Uint8Array, size: number): void {
  if (!(value instanceof Uint8Array) || value.length !== size) {
    throw new RangeError(`Cannot run bond handshake: ${name} must be ${size} bytes`);
  }
}

type Fields = Record<string, unknown>;

/** The message as a plain object with exactly `keys`, or a reason it is not. */
function record(message: unknown, what: string, keys: readonly string[]): Fields | string {
  if (typeof message !== "object" || message === null || Array.isArray(message)) {
    return `${what} is not a map`;
  }
  if (message instanceof Uint8Array || message instanceof Map) return `${what} is not a map`;
  const fields = message as Fields;
  const own = Object.keys(fields);
  for (const k of keys) {
    if (!Object.hasOwn(fields, k)) return `${what} lacks field ${k}`;
  }
  if (own.length !== keys.length) return `${what} has unexpected fields`;
  return fields;
}

function bytesField(fields: Fields, name: string, size: number, what: string): Uint8Array | string {
  const v = fields[name];
  if (!(v instanceof Uint8Array)) return `${what}.${name} is not bytes`;
  if (v.length !== size) return `${what}.${name} must be ${size} bytes, got ${v.length}`;
  // A copy in a plain Uint8Array, so later mutation of the decoded buffer cannot reach us.
  return Uint8Array.from(v);
}

const HELLO_KEYS = ["v", "networkId", "groupId", "peerId", "nonce"] as const;
const ACK_KEYS = [...HELLO_KEYS, "proof", "sig"] as const;
const CONFIRM_KEYS = ["proof", "sig"] as const;

function parseHello(message: unknown): Hello | string {
  return guarded("Hello", () => parseHelloFields(message));
}

function parseAck(message: unknown): HelloAck | string {
  return guarded("HelloAck", () => parseAckFields(message));
}

function parseConfirm(message: unknown): Confirm | string {
  return guarded("Confirm", () => parseConfirmFields(message));
}

/** Decoded CBOR is plain data, but a caller may hand us anything: a throwing getter is a bad message too. */
function guarded<T>(what: string, parse: () => T | string): T | string {
  try {
    return parse();
  } catch {
    return `${what} could not be read`;
  }
}

function parseHelloFields(message: unknown): Hello | string {
  const f = record(message, "Hello", HELLO_KEYS);
  if (typeof f === "string") return f;
  if (f.v !== BOND_HANDSHAKE_VERSION) return "Hello has an unsupported version";
  const out: Record<string, Uint8Array> = {};
  for (const k of HELLO_KEYS.slice(1)) {
    const b = bytesField(f, k, ID_SIZE, "Hello");
    if (typeof b === "string") return b;
    out[k] = b;
  }
  return {
    v: BOND_HANDSHAKE_VERSION,
    networkId: out.networkId!,
    groupId: out.groupId!,
    peerId: out.peerId!,
    nonce: out.nonce!,
  };
}

function parseAckFields(message: unknown): HelloAck | string {
  const f = record(message, "HelloAck", ACK_KEYS);
  if (typeof f === "string") return f;
  if (f.v !== BOND_HANDSHAKE_VERSION) return "HelloAck has an unsupported version";
  const out: Record<string, Uint8Array> = {};
  for (const k of ACK_KEYS.slice(1)) {
    const b = bytesField(f, k, k === "sig" ? SIGNATURE_SIZE : ID_SIZE, "HelloAck");
    if (typeof b === "string") return b;
    out[k] = b;
  }
  return {
    v: BOND_HANDSHAKE_VERSION,
    networkId: out.networkId!,
    groupId: out.groupId!,
    peerId: out.peerId!,
    nonce: out.nonce!,
    proof: out.proof!,
    sig: out.sig!,
  };
}

function parseConfirmFields(message: unknown): Confirm | string {
  const f = record(message, "Confirm", CONFIRM_KEYS);
  if (typeof f === "string") return f;
  const proof = bytesField(f, "proof", ID_SIZE, "Confirm");
  if (typeof proof === "string") return proof;
  const sig = bytesField(f, "sig", SIGNATURE_SIZE, "Confirm");
  if (typeof sig === "string") return sig;
  return { proof, sig };
}
