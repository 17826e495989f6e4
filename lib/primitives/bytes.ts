// Byte helpers used across the library: hex, UTF-8, concatenation, constant-time comparison.

const HEX = "0123456789abcdef";
const encoder = new TextEncoder();

/** Lowercase hex of `bytes`. */
export function toHex(bytes: Uint8Array): string {
  let out = "";
  for (const b of bytes) out += HEX[b >> 4]! + HEX[b & 15]!;
  return out;
}

/**
 * Parses hex (either case) into bytes.
 *
 * @throws {TypeError} when `hex` is not a string
 * @throws {RangeError} when it has odd length or a non-hex character, or not `expectedLength` bytes
 */
export function fromHex(hex: string, expectedLength?: number): Uint8Array {
  if (typeof hex !== "string") throw new TypeError("Cannot parse hex: input is not a string");
  if (hex.length % 2 !== 0) throw new RangeError("Cannot parse hex: odd number of digits");
  if (!/^[0-9a-fA-F]*$/.test(hex)) throw new RangeError("Cannot parse hex: invalid character");
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  if (expectedLength !== undefined && out.length !== expectedLength) {
    throw new RangeError(
      `Cannot parse hex: expected ${expectedLength} bytes, got ${out.length}`,
    );
  }
  return out;
}

/** UTF-8 bytes of `s`. */
export function utf8(s: string): Uint8Array {
  return encoder.encode(s);
}

/**
 * The concatenation of `parts`, in a buffer made on its own ArrayBuffer (so
 * that reading `.buffer` later, as transports and cbor-x do, copies nothing).
 */
export function concatBytes(...parts: readonly Uint8Array[]): Uint8Array {
  let len = 0;
  for (const p of parts) len += p.length;
  const out = new Uint8Array(new ArrayBuffer(len));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/**
 * Compares two byte arrays in time that depends only on their lengths, never on
 * where they differ (for secrets and proofs).
 */
export function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ b[i]!;
  return diff === 0;
}

/** Lexicographic byte order: negative, zero or positive. */
export function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const d = a[i]! - b[i]!;
    if (d !== 0) return d < 0 ? -1 : 1;
  }
  return a.length === b.length ? 0 : a.length < b.length ? -1 : 1;
}

/** `n` cryptographically random bytes (Web Crypto, present on every runtime we support). */
export function randomBytes(n: number): Uint8Array {
  const out = new Uint8Array(n);
  crypto.getRandomValues(out);
  return out;
}

/** Symbols runtimes use for custom inspection (Deno's console and Node/Bun's util.inspect). */
export const INSPECT_DENO: unique symbol = Symbol.for("Deno.customInspect") as never;
/** See {@link INSPECT_DENO}. */
export const INSPECT_NODE: unique symbol = Symbol.for("nodejs.util.inspect.custom") as never;
