// A bond: the authenticated, heartbeated channel carrying group messages between two members over one stream.

/**
 * Bonds (DESIGN.md §5): one per pair of members of a group, over one
 * bidirectional stream of the connection the two nodes share.
 *
 * - {@link openBond} (the dialer) runs the handshake of `handshake.ts`
 *   (Hello → HelloAck → Confirm) on a stream it opened; {@link acceptBond}
 *   (the acceptor) answers a stream the peer opened. Both are bounded by
 *   `handshakeTimeout`.
 * - **Close codes travel on the stream.** The connection carries discovery
 *   and the bonds of every group the two nodes share, so a bond never closes
 *   it for its own reasons: a failed handshake or a closed bond sends
 *   `{ t: "close", code, reason }` and finishes its side, and the peer
 *   reports that code (401 wrong key, 30404 unknown group, 30400 wrong
 *   network, 30408 handshake timeout, 101 departure, …). This differs from
 *   the Rust crate, which gives each bond its own connection.
 * - **A peer that breaks the wire protocol loses the connection.** An
 *   undecodable, oversized or malformed frame closes the whole connection
 *   with `CloseCode.ProtocolViolation` (400) through {@link BondChannel.abort};
 *   nothing is thrown at the caller.
 * - After the handshake the stream carries CBOR frames ({@link GroupMessage}s
 *   plus the bond's own `{ t: "ping" }`). Each side pings every
 *   `heartbeatInterval - random(0..heartbeatJitter)` ms; any frame received
 *   counts as liveness; after `maxMissedHeartbeats` whole intervals without
 *   one the bond is dead and closes (code 0, reason "Bond is dead: ...").
 * - **Round-trip time.** A ping carries the sender's clock (`at`, from
 *   `performance.now()`); a side that receives a ping with `at` answers
 *   `{ t: "pong", at }` at once, and the pinger measures the round trip
 *   ({@link Bond.rttMs}). A ping without `at` (an older peer) gets no pong,
 *   so an older peer never receives a frame it does not know.
 * - {@link Bond.depart} sends `{ t: "bye" }` and finishes its side; the peer
 *   delivers the bye and finishes its side in turn; each side then reports
 *   `CloseCode.Departure` (101). The bye is flushed before anything closes.
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
import { decode, decodeViews } from "../../wire/codec.ts";
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

/**
 * A bond's stream and what it needs from the connection underneath: the
 * stream (framed; any stream header was already exchanged), the
 * connection's fate, and a way to close the connection when the peer breaks
 * the protocol. See {@link channelOf}.
 */
export interface BondChannel {
  /** The stream; the bond owns it from now on and sets its frame limit to `maxMessageSize`. */
  readonly stream: FramedStream<unknown>;
  /** Resolves when the connection under the stream closes. */
  readonly connectionClosed: Promise<CloseInfo>;
  /** Closes the whole connection (the peer sent garbage). */
  abort(code: number, reason: string): void;
}

/**
 * A {@link BondChannel} over a raw stream of `conn`. A frame the peer
 * garbles closes `conn` with 400.
 *
 * @param conn the connection the stream belongs to
 * @param stream a stream of `conn`, not yet read or written
 */
export function channelOf(conn: Connection, stream: Stream): BondChannel {
  const abort = (code: number, reason: string) => conn.close(code, reason);
  return {
    stream: new FramedStream<unknown>(stream, {
      onViolation: (err) => abort(CloseCode.ProtocolViolation, err.message),
      decode: decodeBondFrame,
    }),
    connectionClosed: conn.closed,
    abort,
  };
}

/** The first bytes of every Raft message's frame: `{ t: "raft", m }` (a map of 2, "t", "raft"). */
const RAFT_FRAME = Uint8Array.of(0xa2, 0x61, 0x74, 0x64, 0x72, 0x61, 0x66, 0x74);

/**
 * Decodes a bond frame. A Raft message's only byte strings are log entries,
 * which `raftFromWire` copies out at once, so its byte strings are views of
 * the frame, not copies of their own (one allocation per entry fewer: ~0.4
 * µs each on Deno). Every other frame may carry user data and is decoded
 * with copies. @internal
 */
export function decodeBondFrame(payload: Uint8Array): unknown {
  let raft = payload.length > RAFT_FRAME.length;
  for (let i = 0; raft && i < RAFT_FRAME.length; i++) raft = payload[i] === RAFT_FRAME[i];
  return raft ? decodeViews(payload) : decode(payload);
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
  /**
   * The timings of the established bond, by its group (default: these
   * options' own). Only the group's hello tells which group a stream is for.
   */
  readonly timingsFor?: (groupId: GroupId) => BondTimings;
}

/** How a bond ended: its close code and reason, and whether the peer (or the connection) ended it. */
export type BondClose = CloseInfo;

/** Longest close reason sent; longer ones are cut. */
const MAX_REASON = 512;

/** The frame that closes a bond or refuses a handshake, with its typed code. */
interface CloseFrame {
  readonly t: "close";
  readonly code: number;
  readonly reason: string;
}

/** A heartbeat; `at` (the sender's `performance.now()`) asks for a pong. */
interface PingFrame {
  readonly t: "ping";
  readonly at?: number;
}

/** The answer to a ping that carried `at`, echoing it. */
interface PongFrame {
  readonly t: "pong";
  readonly at: number;
}

/** A frame on an established bond: a group message, a heartbeat (and its answer) or the close. */
type BondFrame = GroupMessage | PingFrame | PongFrame | CloseFrame;

/** Round trips longer than this (ms) are not samples but clock trouble: ignored. */
const MAX_RTT_SAMPLE_MS = 600_000;

/**
 * Opens a bond as the dialer over a stream this side opened.
 *
 * @param channel the stream and its connection; the bond owns the stream from now on
 * @param options identity, network, group, key, the acceptor's certificate hash, timings
 * @returns the established bond
 * @throws {BondError} (as a rejection) when the handshake fails or times out;
 *   the peer was told the code (or told us)
 * @throws {RangeError} (as a rejection) when a timing option is out of range
 */
export async function openBond(channel: BondChannel, options: OpenBondOptions): Promise<Bond> {
  checkTimings(options);
  return await establish(channel, options, undefined, async () => {
    const { hello, state } = makeHello({
      networkId: options.networkId.bytesView(),
      groupId: options.groupId.bytesView(),
      key: options.key,
      signer: signerOf(options.identity),
      certHash: options.certHash,
    });
    await sendStep(channel, hello);
    const answer = await checkAck(state, await receiveStep(channel));
    if ("reject" in answer) {
      throw new BondError(answer.reject.code, answer.reject.reason, false);
    }
    await sendStep(channel, answer.confirm);
    return answer.peer;
  });
}

/**
 * Accepts a bond on a stream the peer opened: reads its Hello first.
 *
 * @param channel the stream and its connection; the bond owns the stream from now on
 * @param options identity, network, group lookup, our certificate hash, timings
 * @returns the established bond
 * @throws {BondError} (as a rejection) when the handshake fails or times out;
 *   the peer was told the code (or told us)
 * @throws {RangeError} (as a rejection) when a timing option is out of range
 */
export async function acceptBond(
  channel: BondChannel,
  options: AcceptBondOptions,
): Promise<Bond> {
  checkTimings(options);
  const timingsFor = options.timingsFor;
  const after = timingsFor === undefined ? undefined : (peer: BondPeer) => {
    const t = timingsFor(new GroupId(peer.groupId));
    checkTimings(t);
    return t;
  };
  return await establish(channel, options, after, async () => {
    const answer = await answerHello({
      networkId: options.networkId.bytesView(),
      signer: signerOf(options.identity),
      certHash: options.certHash,
      lookupGroup: (id) => options.lookupGroup(new GroupId(id)),
    }, await receiveStep(channel));
    if ("reject" in answer) {
      throw new BondError(answer.reject.code, answer.reject.reason, false);
    }
    await sendStep(channel, answer.ack);
    const done = await checkConfirm(answer.state, await receiveStep(channel));
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

  readonly #channel: BondChannel;
  readonly #framed: FramedStream<unknown>;
  readonly #timings: BondTimings;
  #resolveClosed!: (info: BondClose) => void;
  #info: BondClose | undefined;
  /** False once our side of the stream is finished (we departed or closed, or the peer did). */
  #canSend = true;
  #departing = false;
  #byeReceived = false;
  /** Whether a frame arrived since the last liveness check. */
  #heard = true;
  #missed = 0;
  #pingTimer: ReturnType<typeof setTimeout> | undefined;
  #checkTimer: ReturnType<typeof setInterval> | undefined;
  #framesReceived = 0;
  #framesSent = 0;
  #srtt: number | undefined;
  #reading: Promise<void>;
  #teardown: Promise<void> | undefined;

  /** @internal made by {@link openBond} and {@link acceptBond} */
  constructor(channel: BondChannel, peer: BondPeer, timings: BondTimings) {
    this.#channel = channel;
    this.#framed = channel.stream;
    this.#timings = timings;
    this.peer = new PeerId(peer.peerId);
    this.peerHex = this.peer.toHex();
    this.groupId = new GroupId(peer.groupId);
    this.role = peer.role;
    this.initiator = peer.initiator;
    this.acceptor = peer.acceptor;
    this.closed = new Promise((resolve) => this.#resolveClosed = resolve);
    void channel.connectionClosed.then((info) => this.#finish(info));
    this.#schedulePing();
    this.#checkTimer = setInterval(() => this.#checkLiveness(), timings.heartbeatInterval);
    this.#reading = this.#readLoop();
  }

  /** Frames received from the peer since the handshake, heartbeats included (liveness, metrics). */
  get framesReceived(): number {
    return this.#framesReceived;
  }

  /** Frames sent to the peer since the handshake: group messages, heartbeats, pongs, the close. */
  get framesSent(): number {
    return this.#framesSent;
  }

  /** Bytes received on the bond's stream (length prefixes and handshake included). */
  get bytesIn(): number {
    return this.#framed.bytesIn;
  }

  /** Bytes queued for the peer on the bond's stream (length prefixes and handshake included). */
  get bytesOut(): number {
    return this.#framed.bytesOut;
  }

  /**
   * The smoothed round-trip time in milliseconds (each sample moves it an
   * eighth of the way, as TCP's SRTT), measured by heartbeat pings and
   * pongs; `undefined` before the first pong or with a peer that does not
   * answer pings.
   */
  get rttMs(): number | undefined {
    return this.#srtt;
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
   * Leaves gracefully: sends `{ t: "bye" }` and finishes our side; closes
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
        this.#finish({ code: CloseCode.Departure, reason: "Departed", remote: false });
      }
    }
    return this.closed;
  }

  /**
   * Closes the bond: the peer's bond closes with `code` and `reason`; the
   * connection stays open. Idempotent.
   *
   * @param code close code (default `CloseCode.Normal`)
   * @param reason for logs (cut to 512 characters)
   */
  close(code: number = CloseCode.Normal, reason = ""): void {
    if (this.#info !== undefined) return;
    const cut = reason.slice(0, MAX_REASON);
    if (this.#canSend) {
      this.#canSend = false;
      this.#write({ t: "close", code, reason: cut });
    }
    this.#finish({ code, reason: cut, remote: false });
  }

  /** Closes with `CloseCode.Normal` and waits until the stream is released. */
  async [Symbol.asyncDispose](): Promise<void> {
    this.close(CloseCode.Normal, "Bond disposed");
    await this.closed;
    await this.#teardown;
    await this.#reading;
  }

  /** Reports the close and releases the stream (after our queued frames are flushed). */
  #finish(info: BondClose): void {
    if (this.#info !== undefined) return;
    this.#info = info;
    this.#canSend = false;
    this.#stopPinging();
    clearInterval(this.#checkTimer);
    this.#checkTimer = undefined;
    this.#teardown = this.#framed.close().then(() => this.#framed[Symbol.asyncDispose]());
    this.#resolveClosed(info);
  }

  #write(frame: BondFrame): void {
    this.#framesSent++;
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
      this.#write({ t: "ping", at: performance.now() });
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

  /** The peer broke the protocol: the whole connection goes. */
  #violation(reason: string): void {
    this.#finish({ code: CloseCode.ProtocolViolation, reason, remote: false });
    this.#channel.abort(CloseCode.ProtocolViolation, reason);
  }

  async #readLoop(): Promise<void> {
    try {
      for await (const value of this.#framed) {
        if (this.#info !== undefined) return;
        this.#heard = true;
        this.#framesReceived++;
        const frame = parseFrame(value);
        if (frame === undefined) {
          this.#violation("Bond message is malformed");
          return;
        }
        if (frame.t === "ping") {
          if (frame.at !== undefined && this.#canSend) this.#write({ t: "pong", at: frame.at });
          continue;
        }
        if (frame.t === "pong") {
          const sample = performance.now() - frame.at;
          if (sample >= 0 && sample < MAX_RTT_SAMPLE_MS) {
            this.#srtt = this.#srtt === undefined ? sample : this.#srtt + (sample - this.#srtt) / 8;
          }
          continue;
        }
        if (frame.t === "close") {
          this.#finish({ code: frame.code, reason: frame.reason, remote: true });
          return;
        }
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
      if (this.#departing) {
        this.#finish({ code: CloseCode.Departure, reason: "Departed", remote: false });
      } else if (this.#byeReceived) {
        this.#finish({ code: CloseCode.Departure, reason: "Peer departed", remote: true });
      } else {
        this.#finish({ code: CloseCode.Normal, reason: "Bond stream ended", remote: true });
      }
    } catch (err) {
      if (this.#info !== undefined) return;
      if (err instanceof WireError) {
        // The framed stream already closed the connection (its onViolation).
        this.#finish({
          code: CloseCode.ProtocolViolation,
          reason: `Bond message is malformed: ${err.message}`,
          remote: false,
        });
        return;
      }
      // The stream failed: usually its connection closed, which reports the code; give it a moment.
      const info = await settleWithin(this.#channel.connectionClosed, 100);
      this.#finish(
        info === undefined
          ? { code: CloseCode.Normal, reason: "Bond stream failed", remote: true }
          : info,
      );
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

/** `promise`'s value, or `undefined` when it takes longer than `ms`. */
async function settleWithin<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<undefined>((resolve) => timer = setTimeout(() => resolve(undefined), ms)),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Runs one side's handshake under the timeout; on failure tells the peer the code and releases the stream. */
async function establish(
  channel: BondChannel,
  timings: BondTimings,
  after: ((peer: BondPeer) => BondTimings) | undefined,
  steps: () => Promise<BondPeer>,
): Promise<Bond> {
  const framed = channel.stream;
  framed.maxFrameSize = timings.maxMessageSize;
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
  const run = steps();
  // When the timeout wins, the steps fail later with the released stream: nothing to report.
  run.catch(() => {});
  try {
    const peer = await Promise.race([run, timedOut]);
    return new Bond(channel, peer, after === undefined ? timings : after(peer));
  } catch (err) {
    const failure = err instanceof BondError ? err : new BondError(
      CloseCode.ProtocolViolation,
      `Bond handshake failed: ${err instanceof Error ? err.message : String(err)}`,
      false,
    );
    if (failure.remote) await release(framed);
    else await refuseBond(channel, failure.code, failure.message);
    throw failure;
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Refuses a bond stream without a handshake (e.g. 30429, too many bonds):
 * tells the peer the code and releases the stream. Never rejects.
 *
 * @param channel the stream
 * @param code the close code the peer's handshake fails with
 * @param reason for logs (cut to 512 characters)
 */
export async function refuseBond(
  channel: BondChannel,
  code: number,
  reason: string,
): Promise<void> {
  const frame: CloseFrame = { t: "close", code, reason: reason.slice(0, MAX_REASON) };
  await channel.stream.send(frame).catch(() => {});
  await release(channel.stream);
}

/** Finishes our side and stops reading. */
async function release(framed: FramedStream<unknown>): Promise<void> {
  await framed.close();
  await framed[Symbol.asyncDispose]();
}

/** The next handshake message; a close frame from the peer rejects with its code. */
async function receiveStep(channel: BondChannel): Promise<unknown> {
  let value: unknown;
  try {
    value = await channel.stream.receive();
  } catch (err) {
    throw await streamFailure(channel, err);
  }
  if (value === undefined) {
    throw new BondError(
      CloseCode.ProtocolViolation,
      "Bond handshake failed: stream ended early",
      true,
    );
  }
  const close = parseClose(value);
  if (close !== undefined) throw new BondError(close.code, close.reason, true);
  return value;
}

async function sendStep(channel: BondChannel, message: unknown): Promise<void> {
  try {
    await channel.stream.send(message);
  } catch (err) {
    throw await streamFailure(channel, err);
  }
}

/**
 * A wire error is the peer's bad frame (400, the connection was closed);
 * any other stream failure means the connection closed, so report its code
 * (the handshake timeout bounds the wait).
 */
async function streamFailure(channel: BondChannel, err: unknown): Promise<BondError> {
  if (err instanceof WireError) {
    return new BondError(
      CloseCode.ProtocolViolation,
      `Bond handshake failed: ${err.message}`,
      false,
    );
  }
  const info = await channel.connectionClosed;
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
      // `at` is optional (older peers send none); a malformed one is dropped, not answered.
      return isFiniteNumber(f.at) ? f as BondFrame : { t: "ping" };
    case "pong":
      return isFiniteNumber(f.at) ? f as BondFrame : undefined;
    case "bye":
      return f as BondFrame;
    case "close":
      return parseClose(f);
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
          typeof f.leader === "boolean" && isNat(f.voters) &&
          (f.clusterId === undefined || isShortString(f.clusterId)) &&
          (f.leaving === undefined || typeof f.leaving === "boolean")
        ? f as BondFrame
        : undefined;
    case "dissolve":
      return isShortString(f.clusterId) ? f as BondFrame : undefined;
    case "syncReq":
      return isNat(f.id) && isShortString(f.clusterId) && isNat(f.start) && isNat(f.end) &&
          (f.start as number) >= 1 && (f.end as number) >= (f.start as number)
        ? f as BondFrame
        : undefined;
    case "syncRes":
      return isNat(f.id) && isNat(f.prevTerm) && Array.isArray(f.entries) &&
          f.entries.every((e) => e instanceof Uint8Array)
        ? f as BondFrame
        : undefined;
    case "syncErr":
      return isNat(f.id) && isShortString(f.reason) ? f as BondFrame : undefined;
    default:
      return undefined;
  }
}

const isFiniteNumber = (v: unknown): boolean => typeof v === "number" && Number.isFinite(v);

const isShortString = (v: unknown): boolean => typeof v === "string" && v.length <= 128;

/** A well-formed close frame, or `undefined`. */
function parseClose(value: unknown): CloseFrame | undefined {
  if (typeof value !== "object" || value === null) return undefined;
  const f = value as Fields;
  if (f.t !== "close" || !isNat(f.code) || typeof f.reason !== "string") return undefined;
  return { t: "close", code: f.code as number, reason: (f.reason as string).slice(0, MAX_REASON) };
}

function isRecord(v: unknown): boolean {
  return typeof v === "object" && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array) &&
    !(v instanceof Map) && !(v instanceof Set);
}
