// A bond: the authenticated, heartbeated channel carrying group messages between two members over one stream.

/**
 * Bonds (DESIGN.md §5): one per pair of members of a group, over one
 * bidirectional stream of a transport connection.
 *
 * - {@link openBond} (the dialer) opens the stream and runs the handshake of
 *   `handshake.ts` (Hello → HelloAck → Confirm); {@link acceptBond} (the
 *   acceptor) answers a stream the peer opened. Both are bounded by
 *   `handshakeTimeout`; any failure closes the connection with the typed
 *   code (401, 30400, 30404, 30408, 400) so the other side sees it too, and
 *   rejects with a {@link BondError} carrying that code.
 * - After the handshake the stream carries CBOR frames ({@link GroupMessage}s
 *   plus the bond's own `{ t: "ping" }`). Each side pings every
 *   `heartbeatInterval - random(0..heartbeatJitter)` ms; any frame received
 *   counts as liveness; after `maxMissedHeartbeats` whole intervals without
 *   one the bond is dead and closes (code 0, reason "Bond is dead: ...").
 * - A malformed or oversized frame from the peer closes the connection with
 *   `CloseCode.ProtocolViolation` (400); nothing is thrown at the caller.
 * - {@link Bond.depart} sends `{ t: "bye" }` and finishes its side; the peer
 *   delivers the bye, finishes its side in turn, and once this side sees that
 *   clean end it closes with `CloseCode.Departure` (101). So the bye is never
 *   raced by the close.
 *
 * A bond owns its connection: closing the bond closes the connection with
 * the bond's code (close codes only travel with a connection close), so use
 * one connection per bond.
 *
 * @module
 */

import { FramedStream } from "../../../transport/framed.ts";
import {
  CloseCode,
  type CloseInfo,
  type Connection,
  type Stream,
} from "../../../transport/types.ts";
import { assertEncodable, FrameTooLargeError, WireError } from "../../wire/mod.ts";
import { GroupId, type NetworkId, PeerId } from "../../primitives/ids.ts";
import type { Rng } from "../../primitives/rng.ts";
import type { Identity } from "../../network/identity.ts";
import type { GroupKey } from "../key.ts";
import type { GroupMessage } from "../driver.ts";
import {
  answerHello,
  type BondPeer,
  type BondRole,
  type BondSigner,
  checkAck,
  checkConfirm,
  makeHello,
} from "./handshake.ts";

/** Why a bond could not be established; `code` is the close code the connection got. */
export class BondError extends Error {
  /** The close code (e.g. 401 wrong key, 30404 unknown group, 30408 handshake timeout). */
  readonly code: number;
  /** True when the peer (or the network) closed the connection, false when this side did. */
  readonly remote: boolean;

  /**
   * @param code the close code
   * @param message what failed, sentence case, no trailing period
   * @param remote whether the other side closed
   */
  constructor(code: number, message: string, remote: boolean) {
    super(message);
    this.name = "BondError";
    this.code = code;
    this.remote = remote;
  }
}

/** Settings shared by both sides of a bond. Durations are in milliseconds. */
export interface BondTimings {
  /** Base interval between pings (seed default 500). */
  readonly heartbeatInterval: number;
  /** Largest random amount subtracted from each interval (seed default 150); below `heartbeatInterval`. */
  readonly heartbeatJitter: number;
  /** Whole intervals without any received frame after which the bond is dead (seed default 10). */
  readonly maxMissedHeartbeats: number;
  /** Longest the handshake may take before closing with 30408. */
  readonly handshakeTimeout: number;
  /** Largest frame payload in bytes, sent or received. */
  readonly maxMessageSize: number;
  /** Randomness for the heartbeat jitter (default `Math.random`). */
  readonly rng?: Rng;
  /**
   * Receives every group message from the peer, in order, including the
   * peer's `{ t: "bye" }`. Called synchronously from the read loop (the next
   * frame is read after it returns); an exception it throws is re-thrown on a
   * microtask, as the owner's bug. Messages arriving with no handler are dropped.
   */
  readonly onMessage?: (message: GroupMessage, bond: Bond) => void;
}

/** What the dialer needs: {@link openBond}. */
export interface OpenBondOptions extends BondTimings {
  /** This node's Ed25519 identity (signs the handshake). */
  readonly identity: Identity;
  /** This node's network. */
  readonly networkId: NetworkId;
  /** The group to bond in. */
  readonly groupId: GroupId;
  /** The group's key. */
  readonly key: GroupKey;
  /** SHA-256 of the acceptor's TLS certificate, as pinned for this connection. */
  readonly certHash: Uint8Array;
}

/** What the acceptor needs: {@link acceptBond}. */
export interface AcceptBondOptions extends BondTimings {
  /** This node's Ed25519 identity (signs the handshake). */
  readonly identity: Identity;
  /** This node's network. */
  readonly networkId: NetworkId;
  /** The key of the group with this id, or `undefined` when this node is not in it (→ 30404). */
  readonly lookupGroup: (groupId: GroupId) => GroupKey | undefined;
  /** SHA-256 of this node's own TLS certificate. */
  readonly certHash: Uint8Array;
}

/** How a bond ended: the connection's close code and reason, and which side closed. */
export type BondClose = CloseInfo;

/** A frame on an established bond: a group message or a heartbeat. */
type BondFrame = GroupMessage | { readonly t: "ping" };

/**
 * Opens a bond as the dialer: opens a stream on `conn` and runs the handshake.
 *
 * @param conn a connection to the peer; the bond owns it from now on
 * @param options identity, network, group, key, the acceptor's certificate hash, timings
 * @returns the established bond
 * @throws {BondError} (as a rejection) when the handshake fails or times out; the
 *   connection is closed with its `code`
 * @throws {RangeError} (as a rejection) when a timing option is out of range
 */
export async function openBond(conn: Connection, options: OpenBondOptions): Promise<Bond> {
  checkTimings(options);
  return await establish(conn, () => conn.openStream(), options, async (framed) => {
    const { hello, state } = makeHello({
      networkId: options.networkId.bytesView(),
      groupId: options.groupId.bytesView(),
      key: options.key,
      signer: signerOf(options.identity),
      certHash: options.certHash,
    });
    await sendStep(conn, framed, hello);
    const answer = await checkAck(state, await receiveStep(conn, framed));
    if ("reject" in answer) {
      throw new BondError(answer.reject.code, answer.reject.reason, false);
    }
    await sendStep(conn, framed, answer.confirm);
    return answer.peer;
  });
}

/**
 * Accepts a bond on a stream the peer opened: reads its Hello first.
 *
 * @param conn the connection the stream belongs to; the bond owns it from now on
 * @param stream the incoming stream
 * @param options identity, network, group lookup, our certificate hash, timings
 * @returns the established bond
 * @throws {BondError} (as a rejection) when the handshake fails or times out; the
 *   connection is closed with its `code`
 * @throws {RangeError} (as a rejection) when a timing option is out of range
 */
export async function acceptBond(
  conn: Connection,
  stream: Stream,
  options: AcceptBondOptions,
): Promise<Bond> {
  checkTimings(options);
  return await establish(conn, () => Promise.resolve(stream), options, async (framed) => {
    const answer = await answerHello({
      networkId: options.networkId.bytesView(),
      signer: signerOf(options.identity),
      certHash: options.certHash,
      lookupGroup: (id) => options.lookupGroup(new GroupId(id)),
    }, await receiveStep(conn, framed));
    if ("reject" in answer) {
      throw new BondError(answer.reject.code, answer.reject.reason, false);
    }
    await sendStep(conn, framed, answer.ack);
    const done = await checkConfirm(answer.state, await receiveStep(conn, framed));
    if ("reject" in done) throw new BondError(done.reject.code, done.reject.reason, false);
    return done.peer;
  });
}

/**
 * An established bond. Send with {@link send}; receive through the
 * `onMessage` option; watch {@link closed}. Implements `BondEnds`, so
 * `survivingBond(a, b)` picks between two bonds directly.
 */
export class Bond implements AsyncDisposable {
  /** The authenticated PeerId of the other side. */
  readonly peer: PeerId;
  /** The other side's PeerId as 64 lowercase hex characters (the driver's node id). */
  readonly peerHex: string;
  /** The group this bond belongs to. */
  readonly groupId: GroupId;
  /** Whether this side opened the bond. */
  readonly role: BondRole;
  /** PeerId bytes of the side that opened the bond. */
  readonly initiator: Uint8Array;
  /** PeerId bytes of the side that accepted it. */
  readonly acceptor: Uint8Array;
  /** Resolves (never rejects) once the bond is closed, by either side. */
  readonly closed: Promise<BondClose>;

  readonly #conn: Connection;
  readonly #framed: FramedStream<unknown>;
  readonly #timings: BondTimings;
  #resolveClosed!: (info: BondClose) => void;
  #info: BondClose | undefined;
  /** False once our side of the stream is finished (we departed or the peer did). */
  #canSend = true;
  #departing = false;
  #byeReceived = false;
  /** Whether a frame arrived since the last liveness check. */
  #heard = true;
  #missed = 0;
  #pingTimer: ReturnType<typeof setTimeout> | undefined;
  #framesReceived = 0;

  /** Frames received from the peer since the handshake, heartbeats included (liveness, metrics). */
  get framesReceived(): number {
    return this.#framesReceived;
  }
  #checkTimer: ReturnType<typeof setInterval> | undefined;

  /** @internal made by {@link openBond} and {@link acceptBond} */
  constructor(
    conn: Connection,
    framed: FramedStream<unknown>,
    peer: BondPeer,
    timings: BondTimings,
  ) {
    this.#conn = conn;
    this.#framed = framed;
    this.#timings = timings;
    this.peer = new PeerId(peer.peerId);
    this.peerHex = this.peer.toHex();
    this.groupId = new GroupId(peer.groupId);
    this.role = peer.role;
    this.initiator = peer.initiator;
    this.acceptor = peer.acceptor;
    this.closed = new Promise((resolve) => this.#resolveClosed = resolve);
    void conn.closed.then((info) => this.#finish(info));
    this.#schedulePing();
    this.#checkTimer = setInterval(() => this.#checkLiveness(), timings.heartbeatInterval);
    void this.#readLoop();
  }

  /** True once the bond is closed. */
  get isClosed(): boolean {
    return this.#info !== undefined;
  }

  /**
   * Queues a message for the peer; messages arrive in call order.
   *
   * Sends are not awaited: the frames queue behind the stream's backpressure.
   * A message whose encoding exceeds `maxMessageSize` is not sent and closes
   * the bond with 400 (a local bug: the peer would reject it anyway).
   *
   * @returns false (nothing sent) once the bond is closed or departing
   * @throws {EncodingError} when `message` is not CBOR-encodable (nothing is sent)
   */
  send(message: GroupMessage): boolean {
    if (!this.#canSend || this.#info !== undefined) return false;
    assertEncodable(message);
    this.#write(message);
    return true;
  }

  /**
   * Leaves gracefully: sends `{ t: "bye" }`, finishes our side, and closes
   * with `CloseCode.Departure` (101) once the peer has finished its side
   * (which it does after reading the bye). If the peer never does, the
   * heartbeat check closes the bond instead.
   *
   * @returns {@link closed}
   */
  depart(): Promise<BondClose> {
    if (this.#info === undefined && !this.#departing) {
      this.#departing = true;
      this.#stopPinging();
      if (this.#canSend) {
        this.#canSend = false;
        this.#write({ t: "bye" });
        void this.#framed.close();
      } else {
        // The peer departed first and we already finished: nothing left to flush.
        this.close(CloseCode.Departure, "Departed");
      }
    }
    return this.closed;
  }

  /**
   * Closes the bond and its connection at once; the peer sees `code` and
   * `reason`. Idempotent.
   *
   * @param code close code (default `CloseCode.Normal`)
   * @param reason for logs
   */
  close(code: number = CloseCode.Normal, reason = ""): void {
    if (this.#info !== undefined) return;
    this.#finish({ code, reason, remote: false });
    this.#conn.close(code, reason);
  }

  /** Closes with `CloseCode.Normal` and waits for {@link closed}. */
  async [Symbol.asyncDispose](): Promise<void> {
    this.close(CloseCode.Normal, "Bond disposed");
    await this.closed;
  }

  #finish(info: BondClose): void {
    if (this.#info !== undefined) return;
    this.#info = info;
    this.#canSend = false;
    this.#stopPinging();
    clearInterval(this.#checkTimer);
    this.#checkTimer = undefined;
    this.#resolveClosed(info);
  }

  #write(frame: BondFrame): void {
    this.#framed.send(frame).catch((err: unknown) => {
      if (err instanceof FrameTooLargeError) {
        this.close(CloseCode.ProtocolViolation, `Cannot send message: ${err.message}`);
      }
      // Any other failure is the stream's or connection's end, which `closed` reports.
    });
  }

  #schedulePing(): void {
    const { heartbeatInterval, heartbeatJitter, rng } = this.#timings;
    const jitter = (rng?.next() ?? Math.random()) * heartbeatJitter;
    this.#pingTimer = setTimeout(() => {
      this.#pingTimer = undefined;
      if (!this.#canSend || this.#info !== undefined) return;
      this.#write({ t: "ping" });
      this.#schedulePing();
    }, Math.max(1, heartbeatInterval - jitter));
  }

  #stopPinging(): void {
    clearTimeout(this.#pingTimer);
    this.#pingTimer = undefined;
  }

  #checkLiveness(): void {
    if (this.#heard) {
      this.#heard = false;
      this.#missed = 0;
      return;
    }
    this.#missed++;
    if (this.#missed >= this.#timings.maxMissedHeartbeats) {
      this.close(
        CloseCode.Normal,
        `Bond is dead: no frame for ${this.#missed} heartbeat intervals`,
      );
    }
  }

  async #readLoop(): Promise<void> {
    try {
      for await (const value of this.#framed) {
        if (this.#info !== undefined) return;
        this.#heard = true;
        this.#framesReceived++;
        const frame = parseFrame(value);
        if (frame === undefined) {
          this.close(CloseCode.ProtocolViolation, "Bond message is malformed");
          return;
        }
        if (frame.t === "ping") continue;
        if (frame.t === "bye") {
          this.#byeReceived = true;
          if (this.#canSend) {
            // Finishing our side is the peer's signal that the bye was read.
            this.#canSend = false;
            this.#stopPinging();
            void this.#framed.close();
          }
        }
        this.#deliver(frame);
      }
      // The peer finished its side cleanly.
      if (this.#info !== undefined) return;
      if (this.#departing) this.close(CloseCode.Departure, "Departed");
      else if (!this.#byeReceived) {
        this.close(CloseCode.ProtocolViolation, "Bond stream ended without bye");
      }
      // After the peer's bye, its own close (101) follows; the heartbeat check bounds the wait.
    } catch (err) {
      if (err instanceof WireError) {
        this.close(CloseCode.ProtocolViolation, `Bond message is malformed: ${err.message}`);
      }
      // Otherwise the stream failed with its connection, which `closed` reports.
    }
  }

  #deliver(message: GroupMessage): void {
    const handler = this.#timings.onMessage;
    if (handler === undefined) return;
    try {
      handler(message, this);
    } catch (bug) {
      queueMicrotask(() => {
        throw bug;
      });
    }
  }
}

// ---- internals ----

/** Runs one side's handshake under the timeout; closes the connection on any failure. */
async function establish(
  conn: Connection,
  open: () => Promise<Stream>,
  timings: BondTimings,
  steps: (framed: FramedStream<unknown>) => Promise<BondPeer>,
): Promise<Bond> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timedOut = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(
          new BondError(CloseCode.HandshakeTimeout, "Bond handshake timed out", false),
        ),
      timings.handshakeTimeout,
    );
  });
  let framed: FramedStream<unknown> | undefined;
  const run = (async () => {
    framed = new FramedStream<unknown>(await open(), { maxFrameSize: timings.maxMessageSize });
    return await steps(framed);
  })();
  // When the timeout wins, the steps fail later with the closed connection: nothing to report.
  run.catch(() => {});
  try {
    const peer = await Promise.race([run, timedOut]);
    return new Bond(conn, framed!, peer, timings);
  } catch (err) {
    const failure = err instanceof BondError ? err : new BondError(
      CloseCode.ProtocolViolation,
      `Bond handshake failed: ${err instanceof Error ? err.message : String(err)}`,
      false,
    );
    if (!failure.remote) conn.close(failure.code, failure.message);
    throw failure;
  } finally {
    clearTimeout(timer);
  }
}

/** The next handshake message; a failed stream is reported as the connection's close. */
async function receiveStep(conn: Connection, framed: FramedStream<unknown>): Promise<unknown> {
  let next: IteratorResult<unknown>;
  const it = framed[Symbol.asyncIterator]();
  try {
    next = await it.next();
  } catch (err) {
    throw await streamFailure(conn, err);
  }
  if (next.done) {
    throw new BondError(
      CloseCode.ProtocolViolation,
      "Bond handshake failed: stream ended early",
      false,
    );
  }
  return next.value;
}

async function sendStep(
  conn: Connection,
  framed: FramedStream<unknown>,
  message: unknown,
): Promise<void> {
  try {
    await framed.send(message);
  } catch (err) {
    throw await streamFailure(conn, err);
  }
}

/**
 * A wire error is the peer's bad frame (400); any other stream failure means
 * the connection closed, so report its code (the handshake timeout bounds the wait).
 */
async function streamFailure(conn: Connection, err: unknown): Promise<BondError> {
  if (err instanceof WireError) {
    return new BondError(
      CloseCode.ProtocolViolation,
      `Bond handshake failed: ${err.message}`,
      false,
    );
  }
  const info = await conn.closed;
  return new BondError(
    info.code,
    `Bond handshake failed: connection closed (${info.code}${
      info.reason === "" ? "" : `: ${info.reason}`
    })`,
    info.remote,
  );
}

function signerOf(identity: Identity): BondSigner {
  return { peerId: identity.peerId.bytesView(), sign: (m) => identity.sign(m) };
}

function checkTimings(t: BondTimings): void {
  const positive = (name: string, v: number) => {
    if (!Number.isFinite(v) || v <= 0) {
      throw new RangeError(`Cannot open bond: ${name} must be a positive number`);
    }
  };
  positive("heartbeatInterval", t.heartbeatInterval);
  positive("handshakeTimeout", t.handshakeTimeout);
  positive("maxMessageSize", t.maxMessageSize);
  if (!Number.isInteger(t.maxMissedHeartbeats) || t.maxMissedHeartbeats < 1) {
    throw new RangeError("Cannot open bond: maxMissedHeartbeats must be a positive integer");
  }
  if (
    !Number.isFinite(t.heartbeatJitter) || t.heartbeatJitter < 0 ||
    t.heartbeatJitter >= t.heartbeatInterval
  ) {
    throw new RangeError("Cannot open bond: heartbeatJitter must be in [0, heartbeatInterval)");
  }
}

type Fields = Readonly<Record<string, unknown>>;

const isNat = (v: unknown): boolean => typeof v === "number" && Number.isSafeInteger(v) && v >= 0;

/** The frame as a {@link BondFrame}, or `undefined` when it is not one (shape check only). */
function parseFrame(value: unknown): BondFrame | undefined {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return undefined;
  if (value instanceof Uint8Array || value instanceof Map || value instanceof Set) return undefined;
  const f = value as Fields;
  switch (f.t) {
    case "ping":
    case "bye":
      return f as BondFrame;
    case "raft":
      return isRecord(f.m) ? f as BondFrame : undefined;
    case "fwd":
      return isNat(f.id) && Array.isArray(f.commands) ? f as BondFrame : undefined;
    case "fwdOk":
      return isNat(f.id) && isNat(f.start) && isNat(f.end) && isNat(f.term)
        ? f as BondFrame
        : undefined;
    case "fwdErr":
      return isNat(f.id) && typeof f.reason === "string" ? f as BondFrame : undefined;
    case "info":
      return isNat(f.committed) && typeof f.observer === "boolean" &&
          (f.clusterId === undefined || typeof f.clusterId === "string")
        ? f as BondFrame
        : undefined;
    default:
      return undefined;
  }
}

function isRecord(v: unknown): boolean {
  return typeof v === "object" && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array) &&
    !(v instanceof Map) && !(v instanceof Set);
}
