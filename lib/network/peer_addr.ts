// PeerAddr: what another node needs to dial a peer (id, addresses, certificate hash) and its string form.

import { toHex } from "../primitives/bytes.ts";
import { PeerId } from "../primitives/ids.ts";

/** Length of a certificate hash (SHA-256) in bytes. */
export const CERTIFICATE_HASH_SIZE = 32;

/** Most addresses one PeerAddr (or peer entry) may list. */
export const MAX_ADDRESSES = 16;

/** Prefix of the string form; the digit is the format version. */
export const PEER_ADDR_PREFIX = "mosaik1:";

/** One way to reach a peer: a transport family and a socket address. */
export interface TransportAddress {
  /** Transport family, lowercase: `quic`, `h2`, `memory`, … (`[a-z][a-z0-9-]*`). */
  readonly transport: string;
  /** IPv4 address, DNS name, or IPv6 address (without brackets; no zone id). */
  readonly host: string;
  /** Port, 1–65535. */
  readonly port: number;
}

const TRANSPORT_RE = /^[a-z][a-z0-9-]{0,31}$/;
// Hostnames and IPv4 literals: no colon, so the `:port` split is unambiguous.
const NAME_HOST_RE = /^[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252}[A-Za-z0-9])?$/;
const IPV6_HOST_RE = /^[0-9A-Fa-f:.]{2,45}$/;
const PORT_RE = /^[1-9][0-9]{0,4}$/;
const PEER_HEX_RE = /^[0-9a-f]{64}$/;
const B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/**
 * Checks one address; returns what is wrong, or undefined when it is valid.
 * @internal
 */
export function addressProblem(a: unknown): string | undefined {
  if (typeof a !== "object" || a === null) return "address is not an object";
  const { transport, host, port } = a as Record<string, unknown>;
  if (typeof transport !== "string" || !TRANSPORT_RE.test(transport)) {
    return `transport ${JSON.stringify(transport)} is not [a-z][a-z0-9-]* (at most 32 characters)`;
  }
  if (typeof host !== "string") return "host is not a string";
  if (host.includes(":")) {
    if (!IPV6_HOST_RE.test(host)) return `host ${JSON.stringify(host)} is not an IPv6 address`;
  } else if (!NAME_HOST_RE.test(host)) {
    return `host ${JSON.stringify(host)} is not a DNS name or IPv4 address`;
  }
  if (typeof port !== "number" || !Number.isInteger(port) || port < 1 || port > 65535) {
    return `port ${String(port)} is not an integer in 1–65535`;
  }
  return undefined;
}

/** `quic/127.0.0.1:4433` or `quic/[::1]:4433`. */
function formatAddress(a: TransportAddress): string {
  const host = a.host.includes(":") ? `[${a.host}]` : a.host;
  return `${a.transport}/${host}:${a.port}`;
}

/** The inverse of {@link formatAddress}; throws a RangeError naming what is wrong. */
function parseAddress(s: string, index: number): TransportAddress {
  const fail = (what: string): never => {
    throw new RangeError(
      `Cannot parse PeerAddr: address ${index + 1} (${JSON.stringify(s)}) ${what}`,
    );
  };
  const slash = s.indexOf("/");
  if (slash < 0) fail("has no transport (expected transport/host:port)");
  const transport = s.slice(0, slash);
  const rest = s.slice(slash + 1);
  const colon = rest.lastIndexOf(":");
  if (colon < 0) fail("has no port");
  let host = rest.slice(0, colon);
  const portText = rest.slice(colon + 1);
  if (host.startsWith("[")) {
    if (!host.endsWith("]")) fail("has an unclosed IPv6 bracket");
    host = host.slice(1, -1);
    if (!host.includes(":")) fail("has brackets around a host that is not IPv6");
  } else if (host.includes(":")) {
    fail("has an IPv6 host without brackets");
  }
  if (!PORT_RE.test(portText)) fail(`has port ${JSON.stringify(portText)}, not a decimal 1–65535`);
  const address = { transport, host, port: Number(portText) };
  const problem = addressProblem(address);
  if (problem !== undefined) fail(problem);
  return address;
}

/** Unpadded base64url. */
function toBase64Url(bytes: Uint8Array): string {
  let out = "";
  for (let i = 0; i < bytes.length; i += 3) {
    const n = (bytes[i]! << 16) | ((bytes[i + 1] ?? 0) << 8) | (bytes[i + 2] ?? 0);
    const chars = Math.min(4, Math.ceil(((bytes.length - i) * 8) / 6));
    for (let c = 0; c < chars; c++) out += B64URL[(n >> (18 - 6 * c)) & 63]!;
  }
  return out;
}

/** Strict unpadded base64url: rejects padding, foreign characters and non-zero trailing bits. */
function fromBase64Url(s: string): Uint8Array | undefined {
  if (s.length % 4 === 1) return undefined;
  const out = new Uint8Array(Math.floor((s.length * 6) / 8));
  let acc = 0;
  let bits = 0;
  let at = 0;
  for (const ch of s) {
    const v = B64URL.indexOf(ch);
    if (v < 0) return undefined;
    acc = ((acc << 6) | v) & 0xffff;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[at++] = (acc >> bits) & 0xff;
    }
  }
  // Non-zero leftover bits would let two strings decode to the same bytes.
  if ((acc & ((1 << bits) - 1)) !== 0) return undefined;
  return out;
}

/**
 * What another node needs to dial a peer: its {@link PeerId}, the addresses it
 * listens on (in order of preference) and the SHA-256 of its TLS certificate,
 * which dialers pin (`serverCertificateHashes`) instead of trusting a CA.
 *
 * The string form, for command lines and config files:
 *
 * ```text
 * mosaik1:<peer id: 64 lowercase hex>@<address>[,<address>…]#<certificate hash: 43 chars base64url, unpadded>
 * address = <transport>/<host>:<port>      IPv6 hosts in brackets: quic/[::1]:4433
 * ```
 *
 * e.g. `mosaik1:3b6a…c2@quic/127.0.0.1:4433,quic/[::1]:4433#n4bQgYhMfWWaL-qgxVrQFaO_TxsrC4Is0V1sFbDwCgg`.
 * `parse` accepts only this canonical form (lowercase id, no port leading
 * zeros, strict base64url, no IPv6 zone ids, 1–{@link MAX_ADDRESSES}
 * addresses), so `PeerAddr.parse(s).toString() === s` for every accepted `s`,
 * and `PeerAddr.parse(a.toString())` equals `a`.
 *
 * @example
 * ```ts
 * import { PeerAddr, PeerId } from "@mosaik/mosaik";
 *
 * const addr = new PeerAddr({
 *   peerId: PeerId.random(),
 *   addresses: [{ transport: "quic", host: "::1", port: 4433 }],
 *   certificateHash: new Uint8Array(32),
 * });
 * const text = addr.toString(); // "mosaik1:…@quic/[::1]:4433#AAAA…"
 * if (!PeerAddr.parse(text).equals(addr)) throw new Error("the string form round-trips");
 * ```
 */
export class PeerAddr {
  /** The peer to dial. */
  readonly peerId: PeerId;
  /** Where it listens, most preferred first (frozen). */
  readonly addresses: readonly TransportAddress[];
  readonly #certificateHash: Uint8Array;

  /**
   * A peer address from its parts; usually obtained from
   * `network.local().addr()` or {@link PeerAddr.parse} instead.
   *
   * @param init the peer id, 1–{@link MAX_ADDRESSES} addresses and a 32-byte certificate hash (all copied)
   * @throws {TypeError} when `peerId` is not a PeerId or the hash is not a Uint8Array
   * @throws {RangeError} when an address is invalid, there are none or too many, or the hash is not 32 bytes
   */
  constructor(init: {
    peerId: PeerId;
    addresses: readonly TransportAddress[];
    certificateHash: Uint8Array;
  }) {
    if (!(init.peerId instanceof PeerId)) {
      throw new TypeError("Cannot create PeerAddr: peerId must be a PeerId");
    }
    if (!Array.isArray(init.addresses)) {
      throw new TypeError("Cannot create PeerAddr: addresses must be an array");
    }
    if (init.addresses.length === 0 || init.addresses.length > MAX_ADDRESSES) {
      throw new RangeError(
        `Cannot create PeerAddr: expected 1–${MAX_ADDRESSES} addresses, got ${init.addresses.length}`,
      );
    }
    init.addresses.forEach((a, i) => {
      const problem = addressProblem(a);
      if (problem !== undefined) {
        throw new RangeError(`Cannot create PeerAddr: address ${i + 1}: ${problem}`);
      }
    });
    if (!(init.certificateHash instanceof Uint8Array)) {
      throw new TypeError("Cannot create PeerAddr: certificateHash must be a Uint8Array");
    }
    if (init.certificateHash.length !== CERTIFICATE_HASH_SIZE) {
      throw new RangeError(
        `Cannot create PeerAddr: certificate hash must be ${CERTIFICATE_HASH_SIZE} bytes, got ${init.certificateHash.length}`,
      );
    }
    this.peerId = init.peerId;
    this.addresses = Object.freeze(
      init.addresses.map((a) =>
        Object.freeze({ transport: a.transport, host: a.host, port: a.port })
      ),
    );
    this.#certificateHash = init.certificateHash.slice();
  }

  /**
   * Parses the string form (see the class doc), e.g. a `--bootstrap`
   * argument. Only the canonical form is accepted.
   *
   * @param s the string form, `mosaik1:<peer id>@<addresses>#<certificate hash>`
   * @returns the address it names
   * @throws {TypeError} when `s` is not a string
   * @throws {RangeError} naming the part that is malformed
   *
   * @example
   * ```ts
   * import { PeerAddr } from "@mosaik/mosaik";
   *
   * const text = `mosaik1:${"ab".repeat(32)}@quic/127.0.0.1:4433#${"A".repeat(43)}`;
   * const addr = PeerAddr.parse(text);
   * if (addr.addresses[0]?.port !== 4433) throw new Error("port 4433");
   * if (addr.toString() !== text) throw new Error("canonical form round-trips");
   * try {
   *   PeerAddr.parse("127.0.0.1:4433");
   *   throw new Error("unreachable");
   * } catch (err) {
   *   if (!(err instanceof RangeError)) throw err; // "Cannot parse PeerAddr: must start with …"
   * }
   * ```
   */
  static parse(s: string): PeerAddr {
    if (typeof s !== "string") throw new TypeError("Cannot parse PeerAddr: input is not a string");
    if (s.length > 4096) throw new RangeError("Cannot parse PeerAddr: longer than 4096 characters");
    if (!s.startsWith(PEER_ADDR_PREFIX)) {
      throw new RangeError(`Cannot parse PeerAddr: must start with "${PEER_ADDR_PREFIX}"`);
    }
    const body = s.slice(PEER_ADDR_PREFIX.length);
    const at = body.indexOf("@");
    if (at < 0) throw new RangeError('Cannot parse PeerAddr: missing "@" after the peer id');
    const hash = body.lastIndexOf("#");
    if (hash < at) {
      throw new RangeError('Cannot parse PeerAddr: missing "#" before the certificate hash');
    }
    const idText = body.slice(0, at);
    if (!PEER_HEX_RE.test(idText)) {
      throw new RangeError("Cannot parse PeerAddr: peer id must be 64 lowercase hex characters");
    }
    const list = body.slice(at + 1, hash);
    if (list.length === 0) throw new RangeError("Cannot parse PeerAddr: no addresses");
    const parts = list.split(",");
    if (parts.length > MAX_ADDRESSES) {
      throw new RangeError(
        `Cannot parse PeerAddr: more than ${MAX_ADDRESSES} addresses (${parts.length})`,
      );
    }
    const addresses = parts.map(parseAddress);
    const hashText = body.slice(hash + 1);
    const certificateHash = fromBase64Url(hashText);
    if (certificateHash === undefined || certificateHash.length !== CERTIFICATE_HASH_SIZE) {
      throw new RangeError(
        "Cannot parse PeerAddr: certificate hash must be 43 characters of unpadded base64url (32 bytes)",
      );
    }
    return new PeerAddr({ peerId: PeerId.parse(idText), addresses, certificateHash });
  }

  /** A copy of the SHA-256 of the peer's TLS certificate (32 bytes). */
  get certificateHash(): Uint8Array {
    return this.#certificateHash.slice();
  }

  /**
   * True when both name the same peer, addresses (in order) and certificate hash.
   *
   * @param other the address to compare with
   * @returns whether their string forms are equal
   */
  equals(other: PeerAddr): boolean {
    return other instanceof PeerAddr && this.toString() === other.toString();
  }

  /**
   * The canonical string form (see the class doc).
   *
   * @returns `mosaik1:<peer id>@<addresses>#<certificate hash>`
   */
  toString(): string {
    return `${PEER_ADDR_PREFIX}${this.peerId.toHex()}@${
      this.addresses.map(formatAddress).join(",")
    }#${toBase64Url(this.#certificateHash)}`;
  }

  /** The string form, so a PeerAddr survives JSON. */
  toJSON(): string {
    return this.toString();
  }

  /** Hex of the certificate hash, for logs. */
  certificateHashHex(): string {
    return toHex(this.#certificateHash);
  }
}
