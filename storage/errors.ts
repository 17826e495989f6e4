// Errors a durable store raises at open or join: corrupt, incompatible, owned by someone else, locked.

/**
 * Base class of the errors a store raises when its backing data cannot be
 * used as it is. Nothing is changed on disk when one of these is thrown: the
 * caller decides whether to move the file aside, use another path, or fix the
 * configuration.
 *
 * @example Telling why a store cannot be used
 * ```ts
 * import {
 *   StorageError,
 *   StoreCorruptError,
 *   StoreLockedError,
 *   StoreOwnerError,
 *   StoreVersionError,
 * } from "@mosaik/mosaik";
 *
 * function explain(err: unknown): string {
 *   if (err instanceof StoreLockedError) return "another process uses it: stop that one first";
 *   if (err instanceof StoreOwnerError) return "it belongs to another group or member";
 *   if (err instanceof StoreVersionError) return `format ${err.found}, expected ${err.expected}`;
 *   if (err instanceof StoreCorruptError) return "corrupt: move it aside";
 *   if (err instanceof StorageError) return err.message;
 *   throw err;
 * }
 *
 * const err = new StoreLockedError("/var/lib/node-1.kv");
 * if (!(err instanceof StorageError) || err.path !== "/var/lib/node-1.kv") throw new Error("path");
 * if (!explain(err).startsWith("another process")) throw new Error("locked");
 * ```
 */
export class StorageError extends Error {
  /** The path of the store, when it has one. */
  readonly path: string | undefined;

  /**
   * A storage error with a message of its own; the subclasses build theirs.
   *
   * @param message what failed, in the house style ("Cannot open store …: …")
   * @param path the store's path, if any
   * @param options the underlying error, if any
   */
  constructor(message: string, path?: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "StorageError";
    this.path = path;
  }
}

/**
 * The backing file is not a store, or its records contradict each other
 * (a hole in the log, an entry that does not decode, a missing chunk).
 *
 * @example
 * ```ts
 * import { StoreCorruptError } from "@mosaik/mosaik";
 *
 * const err = new StoreCorruptError("/var/lib/node.db", "entry 7 does not decode");
 * if (err.message !== "Cannot use store /var/lib/node.db: it is corrupt (entry 7 does not decode)") {
 *   throw new Error(err.message);
 * }
 * ```
 */
export class StoreCorruptError extends StorageError {
  /**
   * An error saying the store at `path` is corrupt.
   *
   * @param path the store's path
   * @param detail what is wrong, lower case
   * @param options the underlying error, if any
   */
  constructor(path: string, detail: string, options?: ErrorOptions) {
    super(`Cannot use store ${path}: it is corrupt (${detail})`, path, options);
    this.name = "StoreCorruptError";
  }
}

/** The store was written in a format version this library does not read. */
export class StoreVersionError extends StorageError {
  /** The version found in the store. */
  readonly found: unknown;
  /** The version this library reads and writes. */
  readonly expected: number;

  /**
   * An error naming the version found and the one expected.
   *
   * @param path the store's path
   * @param found the version recorded in the store
   * @param expected the version this library supports
   */
  constructor(path: string, found: unknown, expected: number) {
    super(
      `Cannot use store ${path}: it has format version ${
        String(found)
      }, this library reads version ${expected}`,
      path,
    );
    this.name = "StoreVersionError";
    this.found = found;
    this.expected = expected;
  }
}

/** Who a store belongs to: one member (PeerId) of one group (GroupId). */
export interface StoreOwner {
  /** Hex GroupId of the group whose log the store holds. */
  readonly group: string;
  /** Hex PeerId of the member that wrote it. */
  readonly member: string;
}

/**
 * The store holds the log of another group, or of another member of this
 * group. Using it would mix two logs, or let this node speak with another
 * node's votes; a restarted member must come back with the same secret key
 * (`Network.builder().withSecretKey(…)`) and its own store.
 */
export class StoreOwnerError extends StorageError {
  /** Who the store belongs to. */
  readonly owner: StoreOwner;
  /** Who tried to use it. */
  readonly claimant: StoreOwner;

  /**
   * An error naming whose store it is and who tried to use it.
   *
   * @param path the store's path (or a description of an in-memory store)
   * @param owner who the store belongs to
   * @param claimant who tried to use it
   */
  constructor(path: string, owner: StoreOwner, claimant: StoreOwner) {
    const what = owner.group !== claimant.group
      ? `it holds the log of group ${short(owner.group)}, not of group ${short(claimant.group)}`
      : `it belongs to member ${short(owner.member)} of this group, not to member ${
        short(claimant.member)
      } (restart a member with the same secret key, or give a new member a new store)`;
    super(`Cannot use store ${path}: ${what}`, path);
    this.name = "StoreOwnerError";
    this.owner = owner;
    this.claimant = claimant;
  }
}

/** Another opener (in this process or another one) holds the store. */
export class StoreLockedError extends StorageError {
  /**
   * An error saying the store at `path` is in use.
   *
   * @param path the store's path
   * @param options the underlying error, if any
   */
  constructor(path: string, options?: ErrorOptions) {
    super(
      `Cannot open store ${path}: it is in use by another opener (one group per store, one process at a time)`,
      path,
      options,
    );
    this.name = "StoreLockedError";
  }
}

function short(hex: string): string {
  return hex.length > 16 ? `${hex.slice(0, 16)}…` : hex;
}
