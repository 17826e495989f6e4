// GroupKey: the shared secret every member of a group holds; never printed, never sent.

import { blake3 } from "@noble/hashes/blake3.js";
import {
  constantTimeEqual,
  fromHex,
  INSPECT_DENO,
  INSPECT_NODE,
  randomBytes,
  toHex,
  utf8,
} from "../primitives/bytes.ts";
import { Digest } from "../primitives/digest.ts";

/** Length of a group key in bytes. */
export const GROUP_KEY_SIZE = 32;

const FINGERPRINT_DOMAIN = utf8("mosaik/group-key/fingerprint/v1");

/**
 * The shared secret all members of a group must possess.
 *
 * The secret is used to derive the {@link GroupId} and to prove membership in
 * the bond handshake; only proofs derived from it cross the wire. `toString()`,
 * `console.log`/`inspect` and `JSON.stringify` show a redacted form with a
 * short fingerprint (a one-way hash, so two keys can be told apart in logs
 * without revealing either). Use {@link GroupKey.toHex} / {@link GroupKey.toBytes}
 * deliberately to export the secret.
 *
 * @example
 * ```ts
 * import { GroupKey } from "@mosaik/mosaik";
 *
 * const key = GroupKey.generate();
 * const hex = key.toHex(); // the secret: hand it to the other members out of band
 * const same = GroupKey.parse(hex);
 * if (!key.equals(same)) throw new Error("parse(toHex()) gives the same key");
 * if (String(key).includes(hex) || JSON.stringify({ key }).includes(hex)) {
 *   throw new Error("printing never shows the secret");
 * }
 * // `GroupKey(<redacted> fp=…)`: the fingerprint tells keys apart in logs
 * if (!`${key}`.endsWith(`fp=${key.fingerprint()})`)) throw new Error("redacted form");
 * if (!GroupKey.fromSecret("shared words").equals(GroupKey.fromSecret("shared words"))) {
 *   throw new Error("a passphrase always gives the same key");
 * }
 * ```
 */
export class GroupKey {
  readonly #secret: Uint8Array;

  private constructor(secret: Uint8Array) {
    this.#secret = secret;
  }

  /**
   * A new key of 32 cryptographically random bytes.
   *
   * @returns the key; share it with every member through {@link GroupKey.toHex}
   */
  static generate(): GroupKey {
    return new GroupKey(randomBytes(GROUP_KEY_SIZE));
  }

  /**
   * The key derived from a shared passphrase: BLAKE3 of its UTF-8 bytes.
   * Only as strong as the passphrase.
   *
   * @param secret the passphrase every member uses
   * @returns the derived key
   * @throws {TypeError} when `secret` is not a string
   * @throws {RangeError} when `secret` is empty
   */
  static fromSecret(secret: string): GroupKey {
    if (typeof secret !== "string") {
      throw new TypeError("Cannot create GroupKey: secret must be a string");
    }
    if (secret.length === 0) {
      throw new RangeError("Cannot create GroupKey: secret must not be empty");
    }
    return new GroupKey(blake3(utf8(secret)));
  }

  /**
   * The key with exactly these 32 bytes (copied).
   *
   * @param bytes the secret, e.g. from {@link GroupKey.toBytes}
   * @returns the key
   * @throws {TypeError} when `bytes` is not a Uint8Array
   * @throws {RangeError} when it is not 32 bytes long
   */
  static fromBytes(bytes: Uint8Array): GroupKey {
    if (!(bytes instanceof Uint8Array)) {
      throw new TypeError("Cannot create GroupKey: bytes must be a Uint8Array");
    }
    if (bytes.length !== GROUP_KEY_SIZE) {
      throw new RangeError(
        `Cannot create GroupKey: expected ${GROUP_KEY_SIZE} bytes, got ${bytes.length}`,
      );
    }
    return new GroupKey(bytes.slice());
  }

  /**
   * Parses the 64 hex characters produced by {@link GroupKey.toHex}.
   *
   * @param hex 64 hex characters
   * @returns the key
   * @throws {TypeError} when `hex` is not a string
   * @throws {RangeError} when it is not 64 hex characters
   */
  static parse(hex: string): GroupKey {
    if (typeof hex !== "string") {
      throw new TypeError("Cannot parse GroupKey: input is not a string");
    }
    if (hex.length !== GROUP_KEY_SIZE * 2) {
      throw new RangeError(
        `Cannot parse GroupKey: expected ${GROUP_KEY_SIZE * 2} hex characters, got ${hex.length}`,
      );
    }
    return new GroupKey(fromHex(hex, GROUP_KEY_SIZE));
  }

  /**
   * A copy of the secret bytes. Handle with care.
   *
   * @returns 32 bytes
   */
  toBytes(): Uint8Array {
    return this.#secret.slice();
  }

  /**
   * The secret as 64 lowercase hex characters. Handle with care.
   *
   * @returns the hex form that {@link GroupKey.parse} reads
   */
  toHex(): string {
    return toHex(this.#secret);
  }

  /**
   * True when both keys hold the same secret; compares in constant time.
   *
   * @param other the key to compare with
   * @returns whether the secrets are equal
   */
  equals(other: GroupKey): boolean {
    return other instanceof GroupKey && constantTimeEqual(this.#secret, other.#secret);
  }

  /**
   * `blake3(secret)`: the root of the GroupId derivation (DESIGN.md §5).
   *
   * @returns the digest
   */
  digest(): Digest {
    return Digest.hash(this.#secret);
  }

  /**
   * A short one-way fingerprint (8 hex characters) that identifies the key in
   * logs without revealing it.
   *
   * @returns 8 lowercase hex characters
   */
  fingerprint(): string {
    return Digest.hash(FINGERPRINT_DOMAIN, this.#secret).toHex().slice(0, 8);
  }

  /**
   * The secret bytes for use inside the library (keyed proofs); not copied.
   * @internal
   */
  secretView(): Uint8Array {
    return this.#secret;
  }

  /** Redacted: `GroupKey(<redacted> fp=1a2b3c4d)`. */
  toString(): string {
    return `GroupKey(<redacted> fp=${this.fingerprint()})`;
  }

  /** Redacted, so a config serialised to JSON never carries the secret. */
  toJSON(): string {
    return this.toString();
  }

  /** What `console.log` shows on Deno: the redacted form. */
  [INSPECT_DENO](): string {
    return this.toString();
  }

  /** What `console.log` shows on Bun and Node: the redacted form. */
  [INSPECT_NODE](): string {
    return this.toString();
  }
}
