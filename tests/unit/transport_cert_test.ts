// Tests for the node TLS identity: certificate fields, signature, PEM/DER forms, server names.

import { X509Certificate } from "node:crypto";
import { test } from "../harness.ts";
import { assert, assertEquals, assertThrows } from "../assert.ts";
import {
  CERTIFICATE_VALIDITY_MS,
  createTlsIdentity,
  derFromPem,
  peerIdHexFromServerName,
  serverNameFor,
  sha256,
} from "../../transport/cert.ts";
import { toHex } from "../../lib/primitives/bytes.ts";

const HEX = "0123456789abcdef".repeat(4);

test("cert: server names carry the PeerId in two DNS labels and map back", () => {
  const name = serverNameFor(HEX);
  assertEquals(name, `${HEX.slice(0, 32)}.${HEX.slice(32)}.mosaik`);
  assert(name.split(".").every((label) => label.length <= 63));
  assertEquals(peerIdHexFromServerName(name), HEX);
  assertEquals(peerIdHexFromServerName("example.com"), undefined);
  assertThrows(() => serverNameFor("abc"), RangeError);
  assertThrows(() => serverNameFor(HEX.toUpperCase()), RangeError);
});

test("cert: a self-signed ECDSA P-256 certificate, CA:FALSE, SAN = server name, short validity", async () => {
  const now = Date.UTC(2026, 10, 26, 12, 0, 0);
  const id = await createTlsIdentity(serverNameFor(HEX), now);
  const x = new X509Certificate(id.certificatePem);
  assertEquals(x.subjectAltName, `DNS:${id.serverName}`);
  assertEquals(x.ca, false);
  assert(x.verify(x.publicKey), "self-signature verifies");
  assertEquals(x.publicKey.asymmetricKeyType, "ec");
  assertEquals(x.publicKey.asymmetricKeyDetails?.namedCurve, "prime256v1");
  const from = Date.parse(x.validFrom);
  const to = Date.parse(x.validTo);
  assert(from <= now && from >= now - 2 * 3600_000, `validFrom ${x.validFrom}`);
  assertEquals(to, now + CERTIFICATE_VALIDITY_MS);
  assert(x.checkHost(id.serverName) === id.serverName, "host check passes for the server name");
  assertEquals(x.checkHost("other.mosaik"), undefined);
});

test("cert: PEM and DER agree, the hash is SHA-256 of the DER, and keys are fresh each time", async () => {
  const a = await createTlsIdentity(serverNameFor(HEX));
  const b = await createTlsIdentity(serverNameFor(HEX));
  assertEquals(derFromPem(a.certificatePem), a.certificateDer);
  assertEquals(a.certificateHash, await sha256(a.certificateDer));
  const x = new X509Certificate(a.certificateDer);
  assertEquals(x.fingerprint256.replaceAll(":", "").toLowerCase(), toHex(a.certificateHash));
  assert(a.privateKeyPem.startsWith("-----BEGIN PRIVATE KEY-----"));
  assert(toHex(a.certificateHash) !== toHex(b.certificateHash), "a new key pair per identity");
  assertThrows(() => derFromPem("junk"), RangeError);
});

test("cert: validity past 2049 uses GeneralizedTime", async () => {
  const id = await createTlsIdentity(serverNameFor(HEX), Date.UTC(2060, 0, 1));
  const x = new X509Certificate(id.certificatePem);
  assertEquals(new Date(x.validTo).getUTCFullYear(), 2060);
});
