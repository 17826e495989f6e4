// 32-byte identifiers (Digest / UniqueId) and their BLAKE3 derivation.

import { blake3 } from "@noble/hashes/blake3.js";
import {
  compareBytes,
  concatBytes,
  fromHex,
  INSPECT_DENO,
  INSPECT_NODE,
  randomBytes,
  toHex,
  utf8,
} from "./bytes.ts";

/** Length in bytes of every digest and id. */
export const DIGEST_SIZE = 32;

/** Number of hex characters in an id's short display form. */
export const SHORT_HEX_CHARS = 10;

/** What can be hashed or derived from: bytes, a string (as UTF-8) or another digest. */
export type DigestInput = Uint8Array | string | Digest;

function inputBytes(input: DigestInput): Uint8Array {
  if (typeof input === "string") return utf8(input);
  if (input instanceof Digest) return input.bytesView();
  if (input instanceof Uint8Array) return input;
  throw new TypeError("Cannot hash: input must be bytes, a string or a Digest");
}

/**
 * A 32-byte value: the output of BLAKE3, and the shape of every id in the library.
 *
 * Immutable: it copies the bytes it is given and hands out copies. Prints as a
 * short lowercase hex prefix; `toHex()` gives all 64 characters.
 */
export class Digest {
  readonly #bytes: Uint8Array;
  readonly #hex: string;

  /**
   * A digest holding a copy of `bytes`.
   *
   * @param bytes exactly 32 bytes (copied)
   * @throws {TypeError} when `bytes` is not a Uint8Array
   * @throws {RangeError} when it is not 32 bytes long
   */
  constructor(bytes: Uint8Array) {
    if (!(bytes instanceof Uint8Array)) {
      throw new TypeError(`Cannot create ${new.target.name}: bytes must be a Uint8Array`);
    }
    if (bytes.length !== DIGEST_SIZE) {
      throw new RangeError(
        `Cannot create ${new.target.name}: expected ${DIGEST_SIZE} bytes, got ${bytes.length}`,
      );
    }
    this.#bytes = bytes.slice();
    this.#hex = toHex(this.#bytes);
  }

  /**
   * BLAKE3 of the concatenation of `parts`.
   *
   * @param parts bytes, strings (hashed as UTF-8) or digests (their 32 bytes), in order
   * @returns the 32-byte hash as a `Digest`
   * @throws {TypeError} when a part is none of those
   *
   * @example
   * ```ts
   * import { Digest } from "@mosaik/mosaik";
   *
   * const d = Digest.hash("hello");
   * if (d.toHex().length !== 64 || d.short() !== d.toHex().slice(0, 10)) throw new Error("64 hex");
   * if (!Digest.parse(d.toHex()).equals(d)) throw new Error("parse round-trips");
   * if (!d.derive("world").equals(Digest.hash(d, "world"))) throw new Error("derive = hash of both");
   * ```
   */
  static hash(...parts: DigestInput[]): Digest {
    return new Digest(blake3(concatBytes(...parts.map(inputBytes))));
  }

  /**
   * A uniformly random value of the class it is called on (`PeerId.random()`
   * gives a `PeerId`).
   *
   * @returns 32 cryptographically random bytes
   */
  static random<T extends Digest>(this: new (bytes: Uint8Array) => T): T {
    return new this(randomBytes(DIGEST_SIZE));
  }

  /**
   * Parses 64 hex characters into a value of the class it is called on.
   *
   * @param hex 64 hex characters, as produced by {@link Digest.toHex}
   * @returns the digest (or id) with those bytes
   * @throws {RangeError} when `hex` is not 64 hex characters
   */
  static parse<T extends Digest>(this: new (bytes: Uint8Array) => T, hex: string): T {
    return new this(fromHex(hex, DIGEST_SIZE));
  }

  /**
   * `blake3(this ‖ other)`: how ids are chained (see DESIGN.md §5).
   *
   * @param other what to append before hashing
   * @returns a new `Digest`
   * @throws {TypeError} when `other` is not bytes, a string or a digest
   */
  derive(other: DigestInput): Digest {
    return new Digest(blake3(concatBytes(this.#bytes, inputBytes(other))));
  }

  /** A copy of the 32 bytes. */
  toBytes(): Uint8Array {
    return this.#bytes.slice();
  }

  /** The internal bytes, not copied; callers must not modify them. */
  bytesView(): Uint8Array {
    return this.#bytes;
  }

  /** All 64 lowercase hex characters; also the form used as a map key. */
  toHex(): string {
    return this.#hex;
  }

  /** The first {@link SHORT_HEX_CHARS} hex characters, for logs and display. */
  short(): string {
    return this.#hex.slice(0, SHORT_HEX_CHARS);
  }

  /** Same as {@link short}. */
  toString(): string {
    return this.short();
  }

  /** Full hex, so ids survive JSON. */
  toJSON(): string {
    return this.#hex;
  }

  /**
   * True when both hold the same bytes and are the same kind of id (a
   * `PeerId` never equals a `GroupId`).
   *
   * @param other the value to compare with; `undefined` gives false
   * @returns whether they are equal
   */
  equals(other: Digest | undefined): boolean {
    return other !== undefined && other.constructor === this.constructor &&
      other.#hex === this.#hex;
  }

  /**
   * Byte order: negative, zero or positive. Used for deterministic tie-breaks.
   *
   * @param other the digest to compare with
   * @returns negative when this sorts first, 0 when equal, positive when it sorts later
   */
  compare(other: Digest): number {
    return compareBytes(this.#bytes, other.#bytes);
  }

  /** What `console.log` shows on Deno: `ClassName(short hex)`. */
  [INSPECT_DENO](): string {
    return `${this.constructor.name}(${this.short()})`;
  }

  /** What `console.log` shows on Bun and Node: `ClassName(short hex)`. */
  [INSPECT_NODE](): string {
    return `${this.constructor.name}(${this.short()})`;
  }
}

/** A 32-byte unique id; the same thing as a {@link Digest}. */
export type UniqueId = Digest;
/** See {@link UniqueId}. */
export const UniqueId: typeof Digest = Digest;
