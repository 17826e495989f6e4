// Raw-QUIC transport for Bun: node:quic (lsquic), ALPN `mosaik/1`, pinned certificates checked by SHA-256.

import { createHash, createPrivateKey, type KeyObject } from "node:crypto";
import { isIP } from "node:net";
import { lookup } from "node:dns/promises";
import {
  CloseCode,
  type CloseInfo,
  type Connection,
  type DialOptions,
  type DialTarget,
  type Listener,
  type SocketAddress,
  type Stream,
  type TlsIdentity,
  type Transport,
  type TransportContext,
  type TransportFactory,
} from "./types.ts";
import { AsyncQueue } from "./_queue.ts";
import { handshakeWithin, messageOf } from "./_dial.ts";

/** The ALPN protocol every mosaik QUIC connection negotiates. */
export const MOSAIK_ALPN = "mosaik/1";

/** Tuning of the {@link bunQuic} adapter. Every field has a default. */
export interface BunQuicOptions {
  /**
   * A dial whose TLS handshake has not finished after this many milliseconds
   * fails and is abandoned (default 10 000). QUIC runs over UDP and has no
   * RST: a dial to a port nobody listens on hears nothing back, so this
   * bound is what makes it fail.
   */
  readonly handshakeTimeoutMs?: number;
  /**
   * A connection that hears nothing from its peer for this long is dropped
   * (default 30 000 ms, rounded up to whole seconds, the unit node:quic
   * takes; the effective value is the smaller of both sides'). lsquic pings
   * an idle connection by itself, so only a dead or unreachable peer trips it.
   */
  readonly maxIdleTimeoutMs?: number;
  /** Streams the peer may open on one connection before it must wait (default 1 024). */
  readonly maxConcurrentStreams?: number;
  /** Bytes a stream's writer accepts ahead of the network before `ready` waits (default 256 KiB). */
  readonly writeHighWaterMark?: number;
  /**
   * Bytes one stream may hold received but not yet read before it is reset
   * with `CloseCode.ProtocolViolation` (default 64 MiB). Bun's node:quic
   * grants the peer flow-control credit as data arrives, not as it is read,
   * so a reader that stops reading cannot push back on the sender; this
   * bound keeps such a stream from growing memory without limit.
   */
  readonly maxUnreadBytes?: number;
}

const DEFAULTS: Required<BunQuicOptions> = {
  handshakeTimeoutMs: 10_000,
  maxIdleTimeoutMs: 30_000,
  maxConcurrentStreams: 1024,
  writeHighWaterMark: 256 * 1024,
  maxUnreadBytes: 64 * 1024 * 1024,
};

/** How often each connection compares its streams' unread bytes with `maxUnreadBytes`. */
const UNREAD_CHECK_INTERVAL_MS = 100;

// ---- the part of node:quic we use --------------------------------------------------------
// Declared here because `deno check` (which runs over transport/) has no node:quic, and the
// module is loaded at run time only, on Bun.

interface NetAddress {
  readonly address: string;
  readonly port: number;
  readonly family?: string;
}

interface CloseOptions {
  readonly code?: number | bigint;
  readonly type?: "application" | "transport";
  readonly reason?: string;
}

interface QuicEndpointHandle {
  readonly address: NetAddress | undefined;
  readonly closed: Promise<void>;
  close(): Promise<void>;
  destroy(error?: unknown): void;
}

interface QuicWriter {
  readonly desiredSize: number | null;
  writeSync(chunk: Uint8Array): boolean;
  endSync(): number;
  fail(reason?: unknown): void;
}

interface QuicStreamHandle {
  readonly closed: Promise<void>;
  readonly destroyed: boolean;
  readonly writer: QuicWriter;
  highWaterMark: number;
  readonly stats: { readonly bytesReceived: bigint };
  stopSending(code?: number | bigint): void;
  destroy(error?: unknown, options?: CloseOptions): void;
  [Symbol.asyncIterator](): AsyncIterator<Uint8Array[]>;
}

interface QuicSessionHandle {
  readonly opened: Promise<unknown>;
  readonly closed: Promise<void>;
  readonly path: { readonly remote: NetAddress } | undefined;
  readonly peerCertificate: { readonly raw: Uint8Array } | undefined;
  onstream: ((stream: QuicStreamHandle) => void) | undefined;
  createBidirectionalStream(options?: { highWaterMark?: number }): Promise<QuicStreamHandle>;
  destroy(error?: unknown, options?: CloseOptions): void;
}

/** Initial flow-control credit of each bidirectional stream, both directions (bytes). */
const STREAM_WINDOW = 4 * 1024 * 1024;

interface SessionOptions {
  readonly endpoint?: QuicEndpointHandle | { readonly address: NetAddress };
  readonly alpn: string | readonly string[];
  readonly cc: "cubic";
  readonly servername?: string;
  readonly verifyPeer?: "manual";
  readonly sni?: Record<string, { readonly keys: KeyObject; readonly certs: Uint8Array }>;
  readonly transportParams: {
    readonly maxIdleTimeout: number;
    readonly initialMaxStreamsBidi: number;
    readonly initialMaxStreamsUni: number;
    readonly initialMaxStreamDataBidiLocal: number;
    readonly initialMaxStreamDataBidiRemote: number;
  };
}

interface QuicModule {
  QuicEndpoint: new (options: { address: NetAddress }) => QuicEndpointHandle;
  QuicError: new (message: string, options: { errorCode: number | bigint }) => Error;
  connect(address: NetAddress, options: SessionOptions): Promise<QuicSessionHandle>;
  listen(
    onsession: (session: QuicSessionHandle) => void,
    options: SessionOptions,
  ): Promise<QuicEndpointHandle>;
}

/** Where node:quic's writers keep their "wait for drain" method (the stream/iter drain protocol). */
const DRAINABLE = Symbol.for("Stream.drainableProtocol");

// A specifier in a variable keeps `deno check` from resolving a module Deno does not have.
const QUIC_MODULE = "node:quic";

let loading: Promise<QuicModule> | undefined;

function loadQuic(): Promise<QuicModule> {
  loading ??= import(QUIC_MODULE).then((m) => m as QuicModule, (cause) => {
    loading = undefined;
    const message = "Cannot create bun_quic transport: node:quic is unavailable (needs Bun 1.4+)";
    throw new Error(message, { cause });
  });
  return loading;
}

/**
 * The raw-QUIC adapter for Bun (`name` `bun_quic`, `family` `quic`), on
 * node:quic with CUBIC congestion control; it interoperates with
 * `deno_quic`. One UDP endpoint per address family serves every dial.
 *
 * A dial accepts any certificate during the handshake (`verifyPeer:
 * "manual"`) and then compares the SHA-256 of the one the peer presented
 * with the pinned one, closing the connection with `Unauthorized` when they
 * differ. Accepted connections report `remoteCertificateHash` `undefined`:
 * dialers do not present certificates.
 *
 * Known limit: received data is buffered as it arrives (see
 * {@link BunQuicOptions.maxUnreadBytes}), so backpressure reaches a writer
 * only from a Deno reader, or through the protocol above.
 *
 * @example
 * ```ts ignore
 * import { createTlsIdentity, serverNameFor } from "./cert.ts";
 * import { bunQuic } from "./bun_quic.ts";
 *
 * const identity = await createTlsIdentity(serverNameFor("ab".repeat(32)));
 * const transport = await bunQuic()({ identity });
 * const listener = await transport.listen({ host: "127.0.0.1", port: 0 });
 * await listener.close();
 * await transport.close();
 * ```
 */
export function bunQuic(options: BunQuicOptions = {}): TransportFactory {
  return async (context: TransportContext) =>
    new BunQuicTransport(await loadQuic(), context.identity, options);
}

/** The adapter behind {@link bunQuic}; make it through the factory, which loads node:quic. */
export class BunQuicTransport implements Transport {
  readonly name = "bun_quic";
  readonly family = "quic";
  readonly #quic: QuicModule;
  readonly #identity: TlsIdentity;
  readonly #options: Required<BunQuicOptions>;
  readonly #key: KeyObject;
  readonly #dialEndpoints = new Map<"ipv4" | "ipv6", QuicEndpointHandle>();
  readonly #listeners = new Set<BunQuicListener>();
  /** Listening sockets, until they are freed (after their listener closed and its sessions ended). */
  readonly #listenerEndpoints = new Set<QuicEndpointHandle>();
  readonly #connections = new Set<BunQuicConnection>();
  /** Dials still handshaking, destroyed by close(). */
  readonly #handshaking = new Set<QuicSessionHandle>();
  #closing: Promise<void> | undefined;

  /**
   * @param quic the node:quic module
   * @param identity this node's certificate and key, served to dialers
   * @param options timeouts and limits, see {@link BunQuicOptions}
   */
  constructor(quic: QuicModule, identity: TlsIdentity, options: BunQuicOptions = {}) {
    this.#quic = quic;
    this.#identity = identity;
    this.#options = { ...DEFAULTS, ...options };
    this.#key = createPrivateKey(identity.privateKeyPem);
  }

  #sessionOptions(): Pick<SessionOptions, "alpn" | "cc" | "transportParams"> {
    return {
      alpn: MOSAIK_ALPN,
      cc: "cubic",
      transportParams: {
        maxIdleTimeout: Math.ceil(this.#options.maxIdleTimeoutMs / 1000),
        initialMaxStreamsBidi: this.#options.maxConcurrentStreams,
        // mosaik uses bidirectional streams only.
        initialMaxStreamsUni: 0,
        // Without these, a stream opened by the *listening* side carries no data
        // between Deno and Bun (either direction): Bun's defaults give it no credit.
        initialMaxStreamDataBidiLocal: STREAM_WINDOW,
        initialMaxStreamDataBidiRemote: STREAM_WINDOW,
      },
    };
  }

  async listen(address: SocketAddress): Promise<Listener> {
    if (this.#closing !== undefined) throw new Error("Cannot listen: transport is closed");
    const host = await resolveHost(address.host);
    if (this.#closing !== undefined) throw new Error("Cannot listen: transport is closed");
    // Sessions that arrive before the listener object exists wait here.
    const early: QuicSessionHandle[] = [];
    let deliver = (session: QuicSessionHandle) => {
      early.push(session);
    };
    let endpoint: QuicEndpointHandle;
    try {
      endpoint = await this.#quic.listen((session) => deliver(session), {
        ...this.#sessionOptions(),
        alpn: [MOSAIK_ALPN],
        endpoint: { address: { address: host.address, port: address.port, family: host.family } },
        sni: {
          "*": {
            keys: this.#key,
            certs: new TextEncoder().encode(this.#identity.certificatePem),
          },
        },
      });
    } catch (err) {
      throw new Error(`Cannot listen on ${formatAddress(address)}: ${messageOf(err)}`, {
        cause: err,
      });
    }
    const bound = endpoint.address;
    const listener = new BunQuicListener(
      endpoint,
      { host: bound?.address ?? host.address, port: bound?.port ?? address.port },
      (session, early) => this.#adopt(session, early, undefined),
    );
    deliver = (session) => listener.incoming(session);
    this.#listeners.add(listener);
    void listener.ended.then(() => this.#listeners.delete(listener));
    this.#listenerEndpoints.add(endpoint);
    void endpoint.closed.then(() => this.#listenerEndpoints.delete(endpoint), () => {
      this.#listenerEndpoints.delete(endpoint);
    });
    for (const session of early) listener.incoming(session);
    if (this.#closing !== undefined) await listener.close();
    return listener;
  }

  async dial(target: DialTarget, options: DialOptions = {}): Promise<Connection> {
    const { signal } = options;
    signal?.throwIfAborted();
    if (this.#closing !== undefined) throw new Error("Cannot dial: transport is closed");
    const where = formatAddress(target.address);
    const pinned = target.certificateHash.slice();
    const host = await resolveHost(target.address.host);
    signal?.throwIfAborted();
    if (this.#closing !== undefined) throw new Error("Cannot dial: transport is closed");
    const remote: NetAddress = {
      address: host.address,
      port: target.address.port,
      family: host.family,
    };
    let session: QuicSessionHandle;
    try {
      session = await this.#quic.connect(remote, {
        ...this.#sessionOptions(),
        endpoint: this.#endpointForDials(host.family),
        servername: target.serverName,
        // Self-signed certificates never chain to a CA; the pin below is the check.
        verifyPeer: "manual",
      });
    } catch (err) {
      throw new Error(`Cannot dial ${where}: ${messageOf(err)}`, { cause: err });
    }
    session.closed.catch(() => {}); // settled (and mapped) by the connection, or abandoned
    const early = holdStreams(session);
    this.#handshaking.add(session);

    try {
      await handshakeWithin(session.opened, where, this.#options.handshakeTimeoutMs, signal);
      if (this.#closing !== undefined) throw new Error("Cannot dial: transport is closed");
      const presented = session.peerCertificate?.raw;
      if (presented === undefined || !sameBytes(sha256(presented), pinned)) {
        session.destroy(undefined, {
          code: CloseCode.Unauthorized,
          type: "application",
          reason: "certificate does not match the pinned one",
        });
        throw new Error(
          `Cannot dial ${where}: the peer's certificate does not match the pinned certificate`,
        );
      }
      signal?.throwIfAborted();
      return this.#adopt(session, early, pinned, remote);
    } catch (err) {
      session.destroy();
      throw err;
    } finally {
      this.#handshaking.delete(session);
    }
  }

  close(): Promise<void> {
    this.#closing ??= this.#shutdown();
    return this.#closing;
  }

  async #shutdown(): Promise<void> {
    for (const session of this.#handshaking) session.destroy();
    for (const conn of this.#connections) conn.close(0, "transport closed");
    await Promise.all([...this.#listeners].map((l) => l.close()));
    await Promise.all([...this.#connections].map((c) => c.closed));
    const endpoints = [...this.#dialEndpoints.values(), ...this.#listenerEndpoints];
    this.#dialEndpoints.clear();
    // node:quic sends the CONNECTION_CLOSE frames on a later turn of the event loop; closing
    // the sockets in this one would drop them, and peers would notice only much later.
    await new Promise((resolve) => setTimeout(resolve, 0));
    // Every session is gone, so a graceful close finishes at once and frees the sockets.
    await Promise.all(endpoints.map((e) => e.close().catch(() => {})));
  }

  /** One endpoint per address family for every dial: a `::` socket cannot reach IPv4 here. */
  #endpointForDials(family: "ipv4" | "ipv6"): QuicEndpointHandle {
    let endpoint = this.#dialEndpoints.get(family);
    if (endpoint === undefined) {
      const address = family === "ipv4" ? "0.0.0.0" : "::";
      endpoint = new this.#quic.QuicEndpoint({ address: { address, port: 0, family } });
      this.#dialEndpoints.set(family, endpoint);
    }
    return endpoint;
  }

  #adopt(
    session: QuicSessionHandle,
    early: QuicStreamHandle[],
    hash: Uint8Array | undefined,
    remote?: NetAddress,
  ): BunQuicConnection {
    const path = remote ?? session.path?.remote;
    const conn = new BunQuicConnection(
      this.#quic,
      session,
      early,
      { host: path?.address ?? "", port: path?.port ?? 0 },
      hash,
      this.#options,
    );
    this.#connections.add(conn);
    void conn.closed.then(() => this.#connections.delete(conn));
    if (this.#closing !== undefined) conn.close(0, "transport closed");
    return conn;
  }
}

class BunQuicListener implements Listener {
  readonly address: SocketAddress;
  readonly endpoint: QuicEndpointHandle;
  /** Resolves when the listener stopped accepting. */
  readonly ended: Promise<void>;
  readonly #adopt: (session: QuicSessionHandle, early: QuicStreamHandle[]) => BunQuicConnection;
  readonly #queue = new AsyncQueue<Connection>();
  #markEnded!: () => void;
  #stopped = false;

  constructor(
    endpoint: QuicEndpointHandle,
    address: SocketAddress,
    adopt: (session: QuicSessionHandle, early: QuicStreamHandle[]) => BunQuicConnection,
  ) {
    this.endpoint = endpoint;
    this.address = address;
    this.#adopt = adopt;
    this.ended = new Promise((resolve) => (this.#markEnded = resolve));
  }

  /** A session the endpoint accepted: handed out once its handshake is done. */
  incoming(session: QuicSessionHandle): void {
    session.closed.catch(() => {}); // mapped by the connection, or a failed handshake
    const early = holdStreams(session);
    session.opened.then(() => {
      if (this.#stopped) {
        session.destroy(undefined, { code: 0, type: "application", reason: "listener closed" });
        return;
      }
      this.#queue.push(this.#adopt(session, early));
    }, () => {
      // The handshake failed, e.g. the dialer pinned another certificate.
    });
  }

  connections(): AsyncIterable<Connection> {
    return this.#queue;
  }

  close(): Promise<void> {
    if (!this.#stopped) {
      this.#stopped = true;
      this.#queue.end();
      // Graceful: refuses new sessions, keeps the established ones, and frees
      // the socket once they are gone.
      this.endpoint.close().catch(() => {});
      this.#markEnded();
    }
    return Promise.resolve();
  }
}

class BunQuicConnection implements Connection {
  readonly remoteAddress: SocketAddress;
  readonly remoteCertificateHash: Uint8Array | undefined;
  readonly closed: Promise<CloseInfo>;
  readonly #quic: QuicModule;
  readonly #session: QuicSessionHandle;
  readonly #options: Required<BunQuicOptions>;
  readonly #incoming = new AsyncQueue<Stream>();
  readonly #streams = new Set<BunStream>();
  #timer: ReturnType<typeof setInterval> | undefined;
  #local: CloseInfo | undefined;
  #ended = false;

  constructor(
    quic: QuicModule,
    session: QuicSessionHandle,
    early: QuicStreamHandle[],
    remoteAddress: SocketAddress,
    hash: Uint8Array | undefined,
    options: Required<BunQuicOptions>,
  ) {
    this.#quic = quic;
    this.#session = session;
    this.#options = options;
    this.remoteAddress = remoteAddress;
    this.remoteCertificateHash = hash;
    const incoming = (handle: QuicStreamHandle) => {
      const stream = this.#track(handle);
      if (!this.#incoming.push(stream)) stream.reset(0);
    };
    session.onstream = incoming;
    for (const handle of early.splice(0)) incoming(handle);
    this.closed = session.closed.then(
      // A close with code 0 and an idle timeout both resolve.
      (): CloseInfo => this.#local ?? { code: 0, reason: "", remote: true },
      (err: unknown): CloseInfo => this.#local ?? closeInfoOf(err),
    ).then((info) => {
      this.#ended = true;
      this.#incoming.end();
      clearInterval(this.#timer);
      return info;
    });
  }

  async openStream(): Promise<Stream> {
    if (this.#local !== undefined || this.#ended) {
      throw new Error("Cannot open stream: connection is closed");
    }
    let handle: QuicStreamHandle;
    try {
      handle = await this.#session.createBidirectionalStream({
        highWaterMark: this.#options.writeHighWaterMark,
      });
    } catch (err) {
      throw new Error(`Cannot open stream: ${messageOf(err)}`, { cause: err });
    }
    return this.#track(handle);
  }

  incomingStreams(): AsyncIterable<Stream> {
    return this.#incoming;
  }

  close(code = 0, reason = ""): void {
    if (this.#local !== undefined || this.#ended) return;
    this.#local = { code, reason, remote: false };
    this.#incoming.end();
    // Immediate, like QUIC's CONNECTION_CLOSE: unsent stream data is dropped.
    this.#session.destroy(undefined, { code, type: "application", reason });
  }

  #track(handle: QuicStreamHandle): BunStream {
    handle.highWaterMark = this.#options.writeHighWaterMark;
    const stream = new BunStream(this.#quic, handle, () => this.#streams.delete(stream));
    this.#streams.add(stream);
    if (this.#timer === undefined && !this.#ended) {
      this.#timer = setInterval(() => this.#checkUnread(), UNREAD_CHECK_INTERVAL_MS);
      // The check must not keep a process alive on its own.
      (this.#timer as unknown as { unref?: () => void }).unref?.();
    }
    return stream;
  }

  #checkUnread(): void {
    for (const stream of this.#streams) {
      if (stream.unread() > this.#options.maxUnreadBytes) {
        stream.reset(
          CloseCode.ProtocolViolation,
          `Stream was reset: over ${this.#options.maxUnreadBytes} bytes received and not read`,
        );
      }
    }
  }
}

/**
 * A node:quic stream as WHATWG streams. Reads pull one batch at a time from
 * the stream's iterator; writes go through `writeSync` and, when it refuses,
 * wait for the writer's drain before retrying, so `writable.ready` waits
 * while the network (or the peer's flow control) is slow.
 */
class BunStream implements Stream {
  readonly readable: ReadableStream<Uint8Array>;
  readonly writable: WritableStream<Uint8Array>;
  readonly #quic: QuicModule;
  readonly #handle: QuicStreamHandle;
  readonly #gone: Promise<false>;
  #readController: ReadableStreamDefaultController<Uint8Array> | undefined;
  #writeController: WritableStreamDefaultController | undefined;
  #iterator: AsyncIterator<Uint8Array[]> | undefined;
  #delivered = 0;
  #reset = false;
  #readDone = false;

  constructor(quic: QuicModule, handle: QuicStreamHandle, onGone: () => void) {
    this.#quic = quic;
    this.#handle = handle;
    this.#gone = handle.closed.then(() => false as const, () => false as const).finally(onGone);
    const writer = handle.writer;
    this.readable = new ReadableStream<Uint8Array>({
      start: (controller) => {
        this.#readController = controller;
      },
      pull: (controller) => this.#pull(controller),
      cancel: () => {
        this.#readDone = true;
        if (!handle.destroyed) handle.stopSending(0);
      },
    }, { highWaterMark: 0 });
    this.writable = new WritableStream<Uint8Array>({
      start: (controller) => {
        this.#writeController = controller;
      },
      write: (chunk) => this.#write(writer, chunk),
      close: () => {
        if (writer.endSync() < 0) throw new Error("Cannot finish stream: it was reset or closed");
      },
      abort: (reason) => {
        writer.fail(new quic.QuicError(`Stream aborted: ${messageOf(reason)}`, { errorCode: 0 }));
      },
    });
  }

  /** Bytes received from the network that the reader has not taken yet. */
  unread(): number {
    if (this.#readDone || this.#reset || this.#handle.destroyed) return 0;
    return Number(this.#handle.stats.bytesReceived) - this.#delivered;
  }

  reset(code: number, message = `Stream was reset with code ${code}`): void {
    if (this.#reset) return;
    this.#reset = true;
    const err = new Error(message);
    this.#readController?.error(err);
    this.#writeController?.error(err);
    if (this.#handle.destroyed) return;
    try {
      // RESET_STREAM with our code (destroy skips it once the writer exists)...
      this.#handle.writer.fail(new this.#quic.QuicError(message, { errorCode: code }));
    } catch {
      // Already finished or failed.
    }
    // ...then STOP_SENDING with the same code, and release everything buffered.
    this.#handle.destroy(undefined, { code });
  }

  async #pull(controller: ReadableStreamDefaultController<Uint8Array>): Promise<void> {
    this.#iterator ??= this.#handle[Symbol.asyncIterator]();
    for (;;) {
      const next = await this.#iterator.next();
      if (this.#reset) return;
      if (next.done === true) {
        this.#readDone = true;
        controller.close();
        return;
      }
      if (next.value.length === 0) continue;
      for (const chunk of next.value) {
        this.#delivered += chunk.byteLength;
        controller.enqueue(chunk);
      }
      return;
    }
  }

  async #write(writer: QuicWriter, chunk: Uint8Array): Promise<void> {
    for (;;) {
      if (writer.writeSync(chunk)) return;
      const drain =
        (writer as unknown as Record<symbol, (() => Promise<boolean> | null) | undefined>)[
          DRAINABLE
        ]?.call(writer) ?? null;
      if (drain === null) {
        // No room and nothing to wait for: the peer stopped it, it was reset or its connection closed.
        throw new Error("Cannot write to stream: it was reset or closed");
      }
      drain.catch(() => {});
      // A stream destroyed with its connection never drains: stop waiting then too.
      if (!(await Promise.race([drain.then(() => true, () => false), this.#gone]))) {
        throw new Error("Cannot write to stream: it was reset or closed");
      }
    }
  }
}

/** The close a peer (or the network) caused, from the error `session.closed` rejected with. */
function closeInfoOf(err: unknown): CloseInfo {
  const e = err as { type?: unknown; errorCode?: unknown; reason?: unknown };
  if (e.type === "application" && typeof e.errorCode === "bigint") {
    return {
      code: Number(e.errorCode),
      reason: typeof e.reason === "string" ? e.reason : "",
      remote: true,
    };
  }
  // Transport errors have their own code space: report them by message only.
  return { code: 0, reason: messageOf(err), remote: true };
}

async function resolveHost(host: string): Promise<{ address: string; family: "ipv4" | "ipv6" }> {
  const version = isIP(host);
  if (version === 4) return { address: host, family: "ipv4" };
  if (version === 6) return { address: host, family: "ipv6" };
  const found = await lookup(host);
  return { address: found.address, family: found.family === 6 ? "ipv6" : "ipv4" };
}

/**
 * Keeps the streams a session's peer opens before the connection object
 * exists: node:quic can deliver one in the same turn as the handshake's end.
 */
function holdStreams(session: QuicSessionHandle): QuicStreamHandle[] {
  const early: QuicStreamHandle[] = [];
  session.onstream = (handle) => {
    handle.closed.catch(() => {});
    early.push(handle);
  };
  return early;
}

function sha256(bytes: Uint8Array): Uint8Array {
  return new Uint8Array(createHash("sha256").update(bytes).digest());
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength !== b.byteLength) return false;
  for (let i = 0; i < a.byteLength; i++) if (a[i] !== b[i]) return false;
  return true;
}

function formatAddress(address: SocketAddress): string {
  return address.host.includes(":")
    ? `[${address.host}]:${address.port}`
    : `${address.host}:${address.port}`;
}
