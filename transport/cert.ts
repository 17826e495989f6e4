// A node's TLS identity: a self-signed ECDSA P-256 certificate (CA:FALSE, SAN from the PeerId), built with Web Crypto.

import type { TlsIdentity } from "./types.ts";

/** How long a certificate is valid (ms). A node makes a new one at every start. */
export const CERTIFICATE_VALIDITY_MS = 30 * 24 * 60 * 60 * 1000;

/** Clock skew allowed before `notBefore` (ms). */
const BACKDATE_MS = 60 * 60 * 1000;

/**
 * The TLS server name of a peer: its 64-hex-character PeerId split into two
 * DNS labels (a label holds at most 63 characters) under `mosaik`.
 */
export function serverNameFor(peerIdHex: string): string {
  if (!/^[0-9a-f]{64}$/.test(peerIdHex)) {
    throw new RangeError("Cannot derive server name: expected 64 lowercase hex characters");
  }
  return `${peerIdHex.slice(0, 32)}.${peerIdHex.slice(32)}.mosaik`;
}

/** The PeerId hex a server name was derived from, or `undefined` if it is not one of ours. */
export function peerIdHexFromServerName(name: string): string | undefined {
  const m = /^([0-9a-f]{32})\.([0-9a-f]{32})\.mosaik$/.exec(name);
  return m === null ? undefined : m[1]! + m[2]!;
}

/**
 * Makes a fresh key pair and a self-signed certificate for `serverName`
 * (short validity, CA:FALSE, key usage digitalSignature, EKU server+client
 * auth), and the PEM/DER forms and SHA-256 every adapter needs.
 */
export async function createTlsIdentity(
  serverName: string,
  now: number = Date.now(),
): Promise<TlsIdentity> {
  const keys = await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, true, [
    "sign",
    "verify",
  ]) as CryptoKeyPair;
  const spki = new Uint8Array(await crypto.subtle.exportKey("spki", keys.publicKey));
  const pkcs8 = new Uint8Array(await crypto.subtle.exportKey("pkcs8", keys.privateKey));
  const serial = crypto.getRandomValues(new Uint8Array(16));
  serial[0] = (serial[0]! & 0x7f) | 0x01; // positive and non-zero
  const name = seq(set(seq(oid(OID.commonName), utf8String(serverName.slice(0, 64)))));
  const tbs = seq(
    explicit(0, integer(new Uint8Array([2]))), // v3
    integer(serial),
    seq(oid(OID.ecdsaWithSha256)),
    name,
    seq(time(now - BACKDATE_MS), time(now + CERTIFICATE_VALIDITY_MS)),
    name,
    spki,
    explicit(
      3,
      seq(
        extension(OID.basicConstraints, true, seq()), // cA absent = FALSE
        extension(OID.keyUsage, true, bitString(new Uint8Array([0x80]), 7)), // digitalSignature
        extension(OID.extKeyUsage, false, seq(oid(OID.serverAuth), oid(OID.clientAuth))),
        extension(OID.subjectAltName, false, seq(tlv(0x82, ascii(serverName)))), // dNSName
      ),
    ),
  );
  const raw = new Uint8Array(
    await crypto.subtle.sign(
      { name: "ECDSA", hash: "SHA-256" },
      keys.privateKey,
      tbs as Uint8Array<ArrayBuffer>,
    ),
  );
  const signature = seq(integer(raw.slice(0, 32)), integer(raw.slice(32)));
  const der = seq(tbs, seq(oid(OID.ecdsaWithSha256)), bitString(signature, 0));
  return {
    certificateDer: der,
    certificatePem: pem("CERTIFICATE", der),
    privateKeyPem: pem("PRIVATE KEY", pkcs8),
    certificateHash: await sha256(der),
    serverName,
  };
}

/** SHA-256 of `bytes`. */
export async function sha256(bytes: Uint8Array): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>));
}

/** PEM armour of DER bytes. */
export function pem(label: string, der: Uint8Array): string {
  let b64 = "";
  for (let i = 0; i < der.length; i += 3 * 1024) {
    b64 += btoa(String.fromCharCode(...der.subarray(i, i + 3 * 1024)));
  }
  const lines = b64.match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join("\n")}\n-----END ${label}-----\n`;
}

/** DER bytes of the first PEM block labelled `label`. */
export function derFromPem(text: string, label = "CERTIFICATE"): Uint8Array {
  const m = new RegExp(`-----BEGIN ${label}-----([\\s\\S]*?)-----END ${label}-----`).exec(text);
  if (m === null) throw new RangeError(`Cannot read PEM: no ${label} block`);
  const bin = atob(m[1]!.replace(/\s+/g, ""));
  return Uint8Array.from(bin, (c) => c.charCodeAt(0));
}

// ---- minimal DER encoder -------------------------------------------------------------------

const OID = {
  commonName: "2.5.4.3",
  ecdsaWithSha256: "1.2.840.10045.4.3.2",
  basicConstraints: "2.5.29.19",
  keyUsage: "2.5.29.15",
  extKeyUsage: "2.5.29.37",
  subjectAltName: "2.5.29.17",
  serverAuth: "1.3.6.1.5.5.7.3.1",
  clientAuth: "1.3.6.1.5.5.7.3.2",
} as const;

function tlv(tag: number, body: Uint8Array): Uint8Array {
  const n = body.length;
  let head: number[];
  if (n < 0x80) head = [tag, n];
  else if (n < 0x100) head = [tag, 0x81, n];
  else if (n < 0x10000) head = [tag, 0x82, n >> 8, n & 0xff];
  else head = [tag, 0x83, n >> 16, (n >> 8) & 0xff, n & 0xff];
  const out = new Uint8Array(head.length + n);
  out.set(head);
  out.set(body, head.length);
  return out;
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

const seq = (...items: Uint8Array[]) => tlv(0x30, concat(items));
const set = (...items: Uint8Array[]) => tlv(0x31, concat(items));
const explicit = (n: number, inner: Uint8Array) => tlv(0xa0 + n, inner);
const ascii = (s: string) => Uint8Array.from(s, (c) => c.charCodeAt(0) & 0x7f);
const utf8String = (s: string) => tlv(0x0c, new TextEncoder().encode(s));
const octetString = (b: Uint8Array) => tlv(0x04, b);
const boolean = (v: boolean) => tlv(0x01, new Uint8Array([v ? 0xff : 0]));

function bitString(bytes: Uint8Array, unusedBits: number): Uint8Array {
  return tlv(0x03, concat([new Uint8Array([unusedBits]), bytes]));
}

/** A non-negative INTEGER from big-endian magnitude bytes. */
function integer(magnitude: Uint8Array): Uint8Array {
  let i = 0;
  while (i < magnitude.length - 1 && magnitude[i] === 0) i++;
  let body = magnitude.subarray(i);
  if (body[0]! & 0x80) body = concat([new Uint8Array([0]), body]);
  return tlv(0x02, body);
}

function oid(dotted: string): Uint8Array {
  const parts = dotted.split(".").map(Number);
  const bytes = [parts[0]! * 40 + parts[1]!];
  for (const p of parts.slice(2)) {
    const chunk = [p & 0x7f];
    for (let v = p >>> 7; v > 0; v >>>= 7) chunk.unshift((v & 0x7f) | 0x80);
    bytes.push(...chunk);
  }
  return tlv(0x06, new Uint8Array(bytes));
}

function extension(id: string, critical: boolean, value: Uint8Array): Uint8Array {
  return critical
    ? seq(oid(id), boolean(true), octetString(value))
    : seq(oid(id), octetString(value));
}

/** UTCTime up to 2049, GeneralizedTime after (RFC 5280 §4.1.2.5). */
function time(ms: number): Uint8Array {
  const d = new Date(ms);
  const p2 = (n: number) => String(n).padStart(2, "0");
  const rest = `${p2(d.getUTCMonth() + 1)}${p2(d.getUTCDate())}${p2(d.getUTCHours())}` +
    `${p2(d.getUTCMinutes())}${p2(d.getUTCSeconds())}Z`;
  const year = d.getUTCFullYear();
  return year < 2050
    ? tlv(0x17, ascii(`${p2(year % 100)}${rest}`))
    : tlv(0x18, ascii(`${String(year).padStart(4, "0")}${rest}`));
}
