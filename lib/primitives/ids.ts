// The kinds of 32-byte id: NetworkId, PeerId, GroupId. Each is its own class so
// they cannot be mixed up in signatures.

import { Digest } from "./digest.ts";

/** Identifies a network: nodes with different network ids ignore each other. */
export class NetworkId extends Digest {
  #kind = "NetworkId" as const;

  /**
   * The network id for an application name: `blake3(name)`. Nodes built
   * with `Network.builder(name)` get this id.
   *
   * @param name the application's network name
   * @returns `blake3(name)` as a `NetworkId`
   * @throws {TypeError} when `name` is not a string
   * @throws {RangeError} when `name` is empty
   */
  static fromName(name: string): NetworkId {
    if (typeof name !== "string") {
      throw new TypeError("Cannot create NetworkId: name must be a string");
    }
    if (name.length === 0) throw new RangeError("Cannot create NetworkId: name must not be empty");
    return new NetworkId(Digest.hash(name).bytesView());
  }

  /** The kind of id, for narrowing. */
  get kind(): "NetworkId" {
    return this.#kind;
  }
}

/** Identifies a node: its Ed25519 public key (32 bytes). */
export class PeerId extends Digest {
  #kind = "PeerId" as const;

  /**
   * The peer id of an Ed25519 public key.
   *
   * @param publicKey the 32-byte public key (copied)
   * @returns the key as a `PeerId`
   * @throws {TypeError} when `publicKey` is not a Uint8Array
   * @throws {RangeError} when it is not 32 bytes long
   */
  static fromPublicKey(publicKey: Uint8Array): PeerId {
    return new PeerId(publicKey);
  }

  /** The kind of id, for narrowing. */
  get kind(): "PeerId" {
    return this.#kind;
  }
}

/** Identifies a consensus group; derived from key, config, machine and sync (see group_id.ts). */
export class GroupId extends Digest {
  #kind = "GroupId" as const;

  /** The kind of id, for narrowing. */
  get kind(): "GroupId" {
    return this.#kind;
  }
}
