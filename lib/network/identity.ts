// Identity: this node's Ed25519 key pair; its public key is its PeerId. The secret is never printed.

import * as ed from "@noble/ed25519";
import { INSPECT_DENO, INSPECT_NODE } from "../primitives/bytes.ts";
import { PeerId } from "../primitives/ids.ts";

/** Length of an Ed25519 secret key (seed) in bytes. */
export const SECRET_KEY_SIZE = 32;

/** Length of an Ed25519 signature in bytes. */
export const SIGNATURE_SIZE = 64;

/**
 * A node's Ed25519 key pair (DESIGN §5). The {@link PeerId} is the public key.
 *
 * `toString()`, `console.log`/`inspect` and `JSON.stringify` show only the
 * peer id; use {@link Identity.toSecretKey} deliberately to persist the secret.
 *
 * @example
 * ```ts
 * import { Identity } from "./identity.ts";
 *
 * const me = await Identity.generate();
 * const msg = new TextEncoder().encode("hello");
 * const sig = await me.sign(msg);
 * if (!(await Identity.verify(me.peerId, msg, sig))) throw new Error("the signature verifies");
 * ```
 */
export class Identity {
  readonly #secret: Uint8Array;
  readonly #peerId: PeerId;

  private constructor(secret: Uint8Array, peerId: PeerId) {
    this.#secret = secret;
    this.#peerId = peerId;
  }

  /** A new identity from 32 cryptographically random bytes. */
  static generate(): Promise<Identity> {
    return Identity.#from(ed.utils.randomSecretKey());
  }

  /**
   * The identity with this 32-byte secret key (copied), e.g. one persisted earlier.
   *
   * @param secretKey exactly 32 bytes
   * @throws {TypeError} (as a rejection) when `secretKey` is not a Uint8Array
   * @throws {RangeError} (as a rejection) when it is not 32 bytes long
   */
  static async fromSecretKey(secretKey: Uint8Array): Promise<Identity> {
    if (!(secretKey instanceof Uint8Array)) {
      throw new TypeError("Cannot create Identity: secret key must be a Uint8Array");
    }
    if (secretKey.length !== SECRET_KEY_SIZE) {
      throw new RangeError(
        `Cannot create Identity: expected ${SECRET_KEY_SIZE} bytes, got ${secretKey.length}`,
      );
    }
    return await Identity.#from(secretKey.slice());
  }

  static async #from(secret: Uint8Array): Promise<Identity> {
    const publicKey = await ed.getPublicKeyAsync(secret);
    return new Identity(secret, PeerId.fromPublicKey(publicKey));
  }

  /**
   * True when `signature` is a valid Ed25519 signature of `message` by `peerId`.
   * Never throws: malformed keys, signatures or arguments give `false`.
   *
   * @param peerId the claimed signer
   * @param message the signed bytes
   * @param signature 64 bytes
   */
  static async verify(
    peerId: PeerId,
    message: Uint8Array,
    signature: Uint8Array,
  ): Promise<boolean> {
    try {
      if (!(peerId instanceof PeerId)) return false;
      if (!(message instanceof Uint8Array) || !(signature instanceof Uint8Array)) return false;
      if (signature.length !== SIGNATURE_SIZE) return false;
      return await ed.verifyAsync(signature, message, peerId.bytesView());
    } catch {
      // noble throws on points that are not on the curve; that is just "not valid".
      return false;
    }
  }

  /** This node's peer id (its Ed25519 public key). */
  get peerId(): PeerId {
    return this.#peerId;
  }

  /**
   * The Ed25519 signature (64 bytes) of `message`.
   *
   * @throws {TypeError} (as a rejection) when `message` is not a Uint8Array
   */
  async sign(message: Uint8Array): Promise<Uint8Array> {
    if (!(message instanceof Uint8Array)) {
      throw new TypeError("Cannot sign: message must be a Uint8Array");
    }
    return await ed.signAsync(message, this.#secret);
  }

  /** A copy of the 32-byte secret key, for persisting the identity. Handle with care. */
  toSecretKey(): Uint8Array {
    return this.#secret.slice();
  }

  /** Redacted: `Identity(<redacted> peer=1a2b3c4d5e)`. */
  toString(): string {
    return `Identity(<redacted> peer=${this.#peerId.short()})`;
  }

  /** Redacted, so nothing serialised to JSON carries the secret. */
  toJSON(): string {
    return this.toString();
  }

  [INSPECT_DENO](): string {
    return this.toString();
  }

  [INSPECT_NODE](): string {
    return this.toString();
  }
}
