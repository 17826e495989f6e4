// Tests for the bond handshake state machine: success both ways, every rejection code, fuzzing, tie-break, no secret on the wire.

import * as ed from "@noble/ed25519";
import { test } from "../harness.ts";
import { assert, assertEquals } from "../assert.ts";
import { GroupKey } from "../../lib/groups/key.ts";
import { SeededRng } from "../../lib/primitives/rng.ts";
import { toHex } from "../../lib/primitives/bytes.ts";
import { decode, encode } from "../../lib/wire/codec.ts";
import { CloseCode } from "../../transport/types.ts";
import {
  type AcceptorParams,
  answerHello,
  type BondEnds,
  type BondPeer,
  type BondSigner,
  bondTranscript,
  checkAck,
  checkConfirm,
  type Confirm,
  HandshakeCode,
  type Hello,
  type HelloAck,
  type InitiatorParams,
  keyProof,
  makeHello,
  type Rejected,
  survivingBond,
} from "../../lib/groups/bond/handshake.ts";

const rng = new SeededRng(0x5eed_b0d);

function bytes(n: number, r: SeededRng = rng): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = r.int(256);
  return out;
}

/** An Ed25519 identity from seeded bytes, so failures replay. */
async function identity(): Promise<BondSigner & { secretKey: Uint8Array }> {
  const { secretKey, publicKey } = await ed.keygenAsync(bytes(32));
  return { peerId: publicKey, secretKey, sign: (m) => ed.signAsync(m, secretKey) };
}

/** What a message looks like after a trip through the real wire codec. */
function wire<T>(value: T): unknown {
  return decode(encode(value));
}

function flip(b: Uint8Array, at = 0): Uint8Array {
  const out = b.slice();
  out[at % out.length] = out[at % out.length]! ^ 1;
  return out;
}

interface World {
  networkId: Uint8Array;
  groupId: Uint8Array;
  key: GroupKey;
  a: Awaited<ReturnType<typeof identity>>;
  b: Awaited<ReturnType<typeof identity>>;
  certA: Uint8Array;
  certB: Uint8Array;
}

async function world(): Promise<World> {
  return {
    networkId: bytes(32),
    groupId: bytes(32),
    key: GroupKey.fromBytes(bytes(32)),
    a: await identity(),
    b: await identity(),
    certA: bytes(32),
    certB: bytes(32),
  };
}

/** `from` opens a bond to `to` (whose certificate hash is `cert`). */
function sides(
  w: World,
  from: BondSigner,
  to: BondSigner,
  cert: Uint8Array,
): { init: InitiatorParams; acc: AcceptorParams } {
  return {
    init: { networkId: w.networkId, groupId: w.groupId, key: w.key, signer: from, certHash: cert },
    acc: {
      networkId: w.networkId,
      signer: to,
      certHash: cert,
      lookupGroup: (id) => toHex(id) === toHex(w.groupId) ? w.key : undefined,
    },
  };
}

function isRejected(r: object): r is Rejected {
  return "reject" in r;
}

function expectCode(r: object, code: number, what: string): void {
  assert(isRejected(r), `${what}: expected rejection ${code}, got success`);
  assertEquals(r.reject.code, code, `${what}: ${r.reject.reason}`);
  assert(r.reject.reason.length > 0, `${what}: empty reason`);
}

/** Runs the three steps through the wire codec; returns every message and both outcomes. */
async function handshake(init: InitiatorParams, acc: AcceptorParams) {
  const { hello, state: is } = makeHello(init);
  const answered = await answerHello(acc, wire(hello));
  if (isRejected(answered)) throw new Error(`answerHello: ${answered.reject.reason}`);
  const checked = await checkAck(is, wire(answered.ack));
  if (isRejected(checked)) throw new Error(`checkAck: ${checked.reject.reason}`);
  const done = await checkConfirm(answered.state, wire(checked.confirm));
  if (isRejected(done)) throw new Error(`checkConfirm: ${done.reject.reason}`);
  return {
    hello,
    ack: answered.ack,
    confirm: checked.confirm,
    is,
    as: answered.state,
    initiatorView: checked.peer,
    acceptorView: done.peer,
  };
}

function sameBond(x: BondPeer, y: BondPeer): void {
  assertEquals(toHex(x.groupId), toHex(y.groupId));
  assertEquals(toHex(x.initiator), toHex(y.initiator));
  assertEquals(toHex(x.acceptor), toHex(y.acceptor));
}

test("bond handshake: succeeds both ways and both sides agree on the bond", async () => {
  const w = await world();
  for (const [from, to, cert] of [[w.a, w.b, w.certB], [w.b, w.a, w.certA]] as const) {
    const { init, acc } = sides(w, from, to, cert);
    const r = await handshake(init, acc);
    assertEquals(toHex(r.initiatorView.peerId), toHex(to.peerId));
    assertEquals(toHex(r.acceptorView.peerId), toHex(from.peerId));
    assertEquals(r.initiatorView.role, "initiator");
    assertEquals(r.acceptorView.role, "acceptor");
    assertEquals(toHex(r.initiatorView.initiator), toHex(from.peerId));
    assertEquals(toHex(r.initiatorView.acceptor), toHex(to.peerId));
    sameBond(r.initiatorView, r.acceptorView);
    assertEquals(toHex(r.acceptorView.groupId), toHex(w.groupId));
  }
});

test("bond handshake: fresh nonces make every run different", async () => {
  const w = await world();
  const { init, acc } = sides(w, w.a, w.b, w.certB);
  const one = await handshake(init, acc);
  const two = await handshake(init, acc);
  assert(toHex(one.hello.nonce) !== toHex(two.hello.nonce));
  assert(toHex(one.ack.nonce) !== toHex(two.ack.nonce));
  assert(toHex(one.confirm.proof) !== toHex(two.confirm.proof));
  // A Confirm recorded from one run does not authenticate another.
  expectCode(await checkConfirm(two.as, wire(one.confirm)), 401, "replayed Confirm");
});

test("bond handshake: close codes are the Rust crate's and transport CloseCode's", () => {
  assertEquals(HandshakeCode.ProtocolViolation, CloseCode.ProtocolViolation);
  assertEquals(HandshakeCode.Unauthorized, CloseCode.Unauthorized);
  assertEquals(HandshakeCode.WrongNetwork, CloseCode.WrongNetwork);
  assertEquals(HandshakeCode.UnknownGroup, CloseCode.UnknownGroup);
  assertEquals(HandshakeCode.DuplicateBond, CloseCode.DuplicateBond);
  assertEquals(HandshakeCode.HandshakeTimeout, CloseCode.HandshakeTimeout);
  assertEquals(
    [400, 401, 30400, 30404, 30405, 30408].join(),
    Object.values(HandshakeCode).sort((x, y) => x - y).join(),
  );
});

test("bond handshake: wrong network is 30400 at either side", async () => {
  const w = await world();
  const { init, acc } = sides(w, w.a, w.b, w.certB);
  const elsewhere = bytes(32);
  const { hello: foreign } = makeHello({ ...init, networkId: elsewhere });
  expectCode(await answerHello(acc, wire(foreign)), 30400, "acceptor");
  // An acceptor on another network that answers anyway (a relay rewrote the Hello).
  const { hello, state } = makeHello(init);
  const answered = await answerHello(
    { ...acc, networkId: elsewhere },
    wire({ ...hello, networkId: elsewhere }),
  );
  assert(!isRejected(answered));
  expectCode(await checkAck(state, wire(answered.ack)), 30400, "initiator");
});

test("bond handshake: unknown group is 30404", async () => {
  const w = await world();
  const { init, acc } = sides(w, w.a, w.b, w.certB);
  const { hello } = makeHello({ ...init, groupId: bytes(32) });
  expectCode(await answerHello(acc, wire(hello)), 30404, "unknown group");
});

test("bond handshake: wrong key is 401 at both stages", async () => {
  const w = await world();
  const { init, acc } = sides(w, w.a, w.b, w.certB);
  const other = GroupKey.fromBytes(bytes(32));
  // The acceptor holds another key: the initiator rejects the HelloAck.
  const { hello, state } = makeHello(init);
  const answered = await answerHello({ ...acc, lookupGroup: () => other }, wire(hello));
  assert(!isRejected(answered));
  expectCode(await checkAck(state, wire(answered.ack)), 401, "acceptor with wrong key");
  // The initiator holds another key (signature valid): the acceptor rejects the Confirm.
  const r = await handshake(init, acc);
  const transcript = bondTranscript({
    role: "initiator",
    groupId: w.groupId,
    nonceI: r.hello.nonce,
    nonceA: r.ack.nonce,
    certHash: w.certB,
    proverId: w.a.peerId,
  });
  const forged: Confirm = { proof: keyProof(other, transcript), sig: await w.a.sign(transcript) };
  expectCode(await checkConfirm(r.as, wire(forged)), 401, "initiator with wrong key");
  // And with the right key the same construction passes, so the check above is meaningful.
  const honest: Confirm = { proof: keyProof(w.key, transcript), sig: await w.a.sign(transcript) };
  assert(!isRejected(await checkConfirm(r.as, wire(honest))));
});

test("bond handshake: tampering with any Hello field fails the handshake", async () => {
  const w = await world();
  const { init, acc } = sides(w, w.a, w.b, w.certB);
  const otherKey = GroupKey.fromBytes(bytes(32));
  const otherGroup = bytes(32);
  const twoGroups: AcceptorParams = {
    ...acc,
    lookupGroup: (id) =>
      toHex(id) === toHex(w.groupId)
        ? w.key
        : toHex(id) === toHex(otherGroup)
        ? otherKey
        : undefined,
  };

  /** Runs a handshake whose Hello is rewritten in transit; returns the first rejection. */
  async function tampered(edit: (h: Hello) => Hello, fixAck?: (a: HelloAck) => HelloAck) {
    const { hello, state } = makeHello(init);
    const answered = await answerHello(twoGroups, wire(edit(hello)));
    if (isRejected(answered)) return answered;
    const ack = fixAck ? fixAck(answered.ack) : answered.ack;
    const checked = await checkAck(state, wire(ack));
    if (isRejected(checked)) return checked;
    return await checkConfirm(answered.state, wire(checked.confirm));
  }

  expectCode(await tampered((h) => ({ ...h, nonce: flip(h.nonce) })), 401, "Hello.nonce");
  expectCode(
    await tampered((h) => ({ ...h, peerId: w.b.peerId })),
    400,
    "Hello.peerId = acceptor's",
  );
  expectCode(await tampered((h) => ({ ...h, peerId: bytes(32) })), 401, "Hello.peerId");
  expectCode(await tampered((h) => ({ ...h, groupId: otherGroup })), 400, "Hello.groupId");
  expectCode(
    await tampered((h) => ({ ...h, groupId: otherGroup }), (a) => ({ ...a, groupId: w.groupId })),
    401,
    "Hello.groupId restored in HelloAck",
  );
  expectCode(
    await tampered((h) => ({ ...h, networkId: flip(h.networkId) })),
    30400,
    "Hello.networkId",
  );
});

test("bond handshake: tampering with any HelloAck field is 400 or 401", async () => {
  const w = await world();
  const { init, acc } = sides(w, w.a, w.b, w.certB);
  const cases: [string, (a: HelloAck, h: Hello) => HelloAck, number][] = [
    ["nonce", (a) => ({ ...a, nonce: flip(a.nonce) }), 401],
    ["nonce = ours", (a, h) => ({ ...a, nonce: h.nonce }), 400],
    ["peerId", (a) => ({ ...a, peerId: flip(a.peerId) }), 401],
    ["peerId = ours", (a) => ({ ...a, peerId: w.a.peerId }), 400],
    ["groupId", (a) => ({ ...a, groupId: flip(a.groupId) }), 400],
    ["proof", (a) => ({ ...a, proof: flip(a.proof, 7) }), 401],
    ["sig", (a) => ({ ...a, sig: flip(a.sig, 40) }), 401],
    ["v", (a) => ({ ...a, v: 2 as 1 }), 400],
  ];
  for (const [name, edit, code] of cases) {
    const { hello, state } = makeHello(init);
    const answered = await answerHello(acc, wire(hello));
    assert(!isRejected(answered));
    expectCode(await checkAck(state, wire(edit(answered.ack, hello))), code, `HelloAck.${name}`);
  }
});

test("bond handshake: a different certificate hash (another TLS connection) is 401", async () => {
  const w = await world();
  const { init, acc } = sides(w, w.a, w.b, w.certB);
  // The initiator pinned another certificate than the acceptor's own, as under a relay.
  const { hello, state } = makeHello({ ...init, certHash: bytes(32) });
  const answered = await answerHello(acc, wire(hello));
  assert(!isRejected(answered));
  expectCode(await checkAck(state, wire(answered.ack)), 401, "certHash at initiator");
  // And the acceptor sees the same mismatch in the Confirm.
  const r = await handshake(init, acc);
  const moved = await checkConfirm(
    { ...r.as, params: { ...r.as.params, certHash: bytes(32) } },
    wire(r.confirm),
  );
  expectCode(moved, 401, "certHash at acceptor");
});

test("bond handshake: tampering with any Confirm field is 400 or 401", async () => {
  const w = await world();
  const { init, acc } = sides(w, w.a, w.b, w.certB);
  const r = await handshake(init, acc);
  expectCode(
    await checkConfirm(r.as, wire({ ...r.confirm, proof: flip(r.confirm.proof) })),
    401,
    "proof",
  );
  expectCode(
    await checkConfirm(r.as, wire({ ...r.confirm, sig: flip(r.confirm.sig, 3) })),
    401,
    "sig",
  );
  expectCode(await checkConfirm(r.as, wire({ proof: r.confirm.proof })), 400, "missing sig");
});

test("bond handshake: one role's proof never passes as the other's", async () => {
  const w = await world();
  const { init, acc } = sides(w, w.a, w.b, w.certB);
  const r = await handshake(init, acc);
  // Reflection: the acceptor's own proof and signature sent back as the Confirm.
  expectCode(
    await checkConfirm(r.as, wire({ proof: r.ack.proof, sig: r.ack.sig })),
    401,
    "reflected",
  );
  // An acceptor that proves with the initiator's role byte over otherwise correct inputs.
  const { hello, state } = makeHello(init);
  const answered = await answerHello(acc, wire(hello));
  assert(!isRejected(answered));
  const asInitiator = bondTranscript({
    role: "initiator",
    groupId: w.groupId,
    nonceI: hello.nonce,
    nonceA: answered.ack.nonce,
    certHash: w.certB,
    proverId: w.b.peerId,
  });
  const wrongRole: HelloAck = {
    ...answered.ack,
    proof: keyProof(w.key, asInitiator),
    sig: await w.b.sign(asInitiator),
  };
  expectCode(await checkAck(state, wire(wrongRole)), 401, "initiator-role proof in HelloAck");
});

test("bond handshake: a signature by another key is 401", async () => {
  const w = await world();
  const { init, acc } = sides(w, w.a, w.b, w.certB);
  const mallory = await identity();
  // The acceptor claims b's PeerId but signs with mallory's key.
  const impostor: BondSigner = { peerId: w.b.peerId, sign: mallory.sign };
  const { hello, state } = makeHello(init);
  const answered = await answerHello({ ...acc, signer: impostor }, wire(hello));
  assert(!isRejected(answered));
  expectCode(await checkAck(state, wire(answered.ack)), 401, "HelloAck signed by another key");
  // Same for the initiator.
  const { hello: h2, state: s2 } = makeHello({
    ...init,
    signer: { peerId: w.a.peerId, sign: mallory.sign },
  });
  const a2 = await answerHello(acc, wire(h2));
  assert(!isRejected(a2));
  const c2 = await checkAck(s2, wire(a2.ack));
  assert(!isRejected(c2));
  expectCode(await checkConfirm(a2.state, wire(c2.confirm)), 401, "Confirm signed by another key");
  // A PeerId that is not a valid Ed25519 point fails as a bad signature, not a throw.
  const junkId = new Uint8Array(32).fill(0xff);
  const { hello: h3, state: s3 } = makeHello(init);
  const a3 = await answerHello(acc, wire(h3));
  assert(!isRejected(a3));
  const t3 = bondTranscript({
    role: "acceptor",
    groupId: w.groupId,
    nonceI: h3.nonce,
    nonceA: a3.ack.nonce,
    certHash: w.certB,
    proverId: junkId,
  });
  const junk: HelloAck = { ...a3.ack, peerId: junkId, proof: keyProof(w.key, t3) };
  expectCode(await checkAck(s3, wire(junk)), 401, "invalid public key");
});

/** Malformed variants of a valid message: never a throw, always 400. */
function malformed(valid: Record<string, unknown>): unknown[] {
  const out: unknown[] = [
    null,
    undefined,
    0,
    42,
    "hello",
    true,
    [],
    [valid],
    new Uint8Array(32),
    new Map(Object.entries(valid)),
    {},
    { ...valid, extra: 1 },
    Object.defineProperty({ ...valid }, "proof", {
      get() {
        throw new Error("boom");
      },
      enumerable: true,
    }),
  ];
  for (const k of Object.keys(valid)) {
    const v = valid[k];
    const without = { ...valid };
    delete without[k];
    out.push(without);
    for (const bad of [null, undefined, 1, "x", [], {}, true, new Uint8Array(0)]) {
      if (k === "v" && bad === 1) continue;
      out.push({ ...valid, [k]: bad });
    }
    if (v instanceof Uint8Array) {
      out.push({ ...valid, [k]: v.subarray(1) });
      out.push({ ...valid, [k]: new Uint8Array(v.length + 1) });
      out.push({ ...valid, [k]: Array.from(v) });
    }
    if (k === "v") {
      out.push({ ...valid, v: 2 }, { ...valid, v: 0 }, { ...valid, v: "1" }, { ...valid, v: 1n });
    }
  }
  return out;
}

test("bond handshake: malformed messages of every kind are 400, never a throw", async () => {
  const w = await world();
  const { init, acc } = sides(w, w.a, w.b, w.certB);
  const r = await handshake(init, acc);
  const { state } = makeHello(init);
  let n = 0;
  for (const m of malformed({ ...r.hello })) {
    expectCode(await answerHello(acc, m), 400, `Hello #${n++}`);
  }
  for (const m of malformed({ ...r.ack })) {
    expectCode(await checkAck(state, m), 400, `HelloAck #${n++}`);
  }
  for (const m of malformed({ ...r.confirm })) {
    expectCode(await checkConfirm(r.as, m), 400, `Confirm #${n++}`);
  }
  // A Hello is not a HelloAck and vice versa.
  expectCode(await checkAck(state, wire(r.hello)), 400, "Hello as HelloAck");
  expectCode(await answerHello(acc, wire(r.ack)), 400, "HelloAck as Hello");
  expectCode(await checkConfirm(r.as, wire(r.ack)), 400, "HelloAck as Confirm");
});

/** A random CBOR-ish value, for the fuzz loop. */
function randomValue(r: SeededRng, depth = 0): unknown {
  switch (r.int(depth > 2 ? 6 : 8)) {
    case 0:
      return null;
    case 1:
      return r.int(1000) - 500;
    case 2:
      return bytes(r.int(3) === 0 ? r.int(100) : [32, 64, 31, 33][r.int(4)]!, r);
    case 3:
      return "s".repeat(r.int(5));
    case 4:
      return r.int(2) === 0;
    case 5:
      return undefined;
    case 6:
      return Array.from({ length: r.int(4) }, () => randomValue(r, depth + 1));
    default: {
      const o: Record<string, unknown> = {};
      for (let i = r.int(8); i > 0; i--) {
        o[["v", "networkId", "groupId", "peerId", "nonce", "proof", "sig", "x"][r.int(8)]!] =
          randomValue(
            r,
            depth + 1,
          );
      }
      return o;
    }
  }
}

/** A valid message with one random mutation, always a real change. */
function mutate(r: SeededRng, valid: Record<string, unknown>): Record<string, unknown> {
  const keys = Object.keys(valid);
  const k = keys[r.int(keys.length)]!;
  const v = valid[k];
  const out = { ...valid };
  switch (r.int(4)) {
    case 0:
      delete out[k];
      break;
    case 1:
      out[k] = randomValue(r);
      if (v instanceof Uint8Array && out[k] instanceof Uint8Array) {
        out[k] = flip(v, r.int(v.length));
      }
      if (out[k] === v || (!(v instanceof Uint8Array) && out[k] === undefined)) delete out[k];
      break;
    case 2:
      out[`f${r.int(3)}`] = randomValue(r);
      break;
    default:
      if (v instanceof Uint8Array) out[k] = flip(v, r.int(v.length));
      else out[k] = 2 + r.int(3);
      break;
  }
  return out;
}

test("bond handshake: seeded fuzz of random and mutated messages never throws or passes", async () => {
  const w = await world();
  const { init, acc } = sides(w, w.a, w.b, w.certB);
  const fuzz = new SeededRng(20260517);
  const allowed = new Set<number>([400, 401, 30400, 30404]);
  for (let i = 0; i < 60; i++) {
    const r = await handshake(init, acc);
    const { hello, state } = makeHello(init);
    const answered = await answerHello(acc, wire(hello));
    assert(!isRejected(answered));
    const inputs: [string, () => Promise<object>][] = [
      ["Hello", () => answerHello(acc, randomValue(fuzz))],
      ["HelloAck", () => checkAck(state, randomValue(fuzz))],
      ["Confirm", () => checkConfirm(r.as, randomValue(fuzz))],
      ["mutated HelloAck", () => checkAck(state, wire(mutate(fuzz, { ...answered.ack })))],
      ["mutated Confirm", () => checkConfirm(r.as, wire(mutate(fuzz, { ...r.confirm })))],
    ];
    for (const [what, run] of inputs) {
      let out: object;
      try {
        out = await run();
      } catch (err) {
        throw new Error(`fuzz #${i} ${what} threw: ${String(err)}`);
      }
      assert(isRejected(out), `fuzz #${i} ${what} was accepted`);
      assert(allowed.has(out.reject.code), `fuzz #${i} ${what}: code ${out.reject.code}`);
    }
    // A mutated Hello may still be answerable (e.g. another nonce) but never throws.
    const mutatedHello = mutate(fuzz, { ...hello });
    const res = await answerHello(acc, wire(mutatedHello));
    if (isRejected(res)) assert(allowed.has(res.reject.code));
  }
});

test("bond handshake: survivingBond keeps the bond initiated by the lower PeerId on both sides", async () => {
  const w = await world();
  const ab = await handshake(
    ...Object.values(sides(w, w.a, w.b, w.certB)) as [InitiatorParams, AcceptorParams],
  );
  const ba = await handshake(
    ...Object.values(sides(w, w.b, w.a, w.certA)) as [InitiatorParams, AcceptorParams],
  );
  const lowerIsA = toHex(w.a.peerId) < toHex(w.b.peerId);
  // a's view of both bonds, and b's view of both bonds, in both argument orders.
  const aKeeps = [
    survivingBond(ab.initiatorView, ba.acceptorView),
    survivingBond(ba.acceptorView, ab.initiatorView),
  ];
  const bKeeps = [
    survivingBond(ab.acceptorView, ba.initiatorView),
    survivingBond(ba.initiatorView, ab.acceptorView),
  ];
  for (const kept of [...aKeeps, ...bKeeps]) {
    assertEquals(toHex(kept.initiator), toHex(lowerIsA ? w.a.peerId : w.b.peerId));
  }
  // Byte order, including ids that differ only late and in the high bit.
  const r = new SeededRng(7);
  for (let i = 0; i < 200; i++) {
    const x = bytes(32, r);
    const y = x.slice();
    const at = r.int(32);
    y[at] = (x[at]! + 1 + r.int(255)) % 256;
    const b1: BondEnds = { initiator: x, acceptor: y };
    const b2: BondEnds = { initiator: y, acceptor: x };
    const expected = x[at]! < y[at]! ? b1 : b2;
    assert(survivingBond(b1, b2) === expected, `case ${i}`);
    assert(survivingBond(b2, b1) === expected, `case ${i} swapped`);
  }
  // Same initiator twice (a reconnect): the later argument, the newer bond, survives.
  const old = { initiator: w.a.peerId, acceptor: w.b.peerId };
  const fresh = { initiator: w.a.peerId, acceptor: w.b.peerId };
  assert(survivingBond(old, fresh) === fresh);
});

/** True when `needle` occurs anywhere in `hay`. */
function contains(hay: Uint8Array, needle: Uint8Array): boolean {
  outer: for (let i = 0; i + needle.length <= hay.length; i++) {
    for (let j = 0; j < needle.length; j++) if (hay[i + j] !== needle[j]) continue outer;
    return true;
  }
  return false;
}

test("bond handshake: no message and no reason carries the group key", async () => {
  const w = await world();
  const secret = w.key.toBytes();
  const { init, acc } = sides(w, w.a, w.b, w.certB);
  const r = await handshake(init, acc);
  // Sanity: the search finds the key where it is.
  assert(contains(encode({ x: secret }), secret));
  for (const m of [r.hello, r.ack, r.confirm, r.initiatorView, r.acceptorView]) {
    const enc = encode(m);
    assert(!contains(enc, secret), "secret in a message");
    assert(
      !contains(enc, secret.subarray(0, 16)) && !contains(enc, secret.subarray(16)),
      "half the secret",
    );
  }
  const rejected = await checkConfirm(r.as, wire({ ...r.confirm, proof: flip(r.confirm.proof) }));
  assert(isRejected(rejected));
  assert(!rejected.reject.reason.includes(w.key.toHex()));
});
