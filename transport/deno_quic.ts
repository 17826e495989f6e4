// Raw-QUIC transport for Deno: Deno.QuicEndpoint and Deno.connectQuic (needs `--unstable-net`), ALPN `mosaik/1`, pinned certificates.

import type {
  CloseInfo,
  Connection,
  DialOptions,
  DialTarget,
  Listener,
  SocketAddress,
  Stream,
  TlsIdentity,
  Transport,
  TransportContext,
  TransportFactory,
} from "./types.ts";
import { AsyncQueue } from "./_queue.ts";
import { handshakeWithin, messageOf } from "./_dial.ts";
import { concatBytes } from "../lib/primitives/bytes.ts";

/** The ALPN protocol every mosaik QUIC connection negotiates. */
export const MOSAIK_ALPN = "mosaik/1";

/** Tuning of the {@link denoQuic} adapter. Every field has a default. */
export interface DenoQuicOptions {
  /**
   * A dial whose TLS handshake has not finished after this many milliseconds
   * fails (default 10 000). QUIC runs over UDP and has no RST: a dial to a
   * port nobody listens on hears nothing back, so this bound is what makes
   * it fail. The attempt itself lingers in the background until the idle
   * timeout or `close()`.
   */
  readonly handshakeTimeoutMs?: number;
  /**
   * A connection that hears nothing from its peer for this long is dropped
   * (default 30 000 ms; the effective value is the smaller of both sides').
   * With keep-alives on, only a dead or unreachable peer trips it.
   */
  readonly maxIdleTimeoutMs?: number;
  /**
   * Sends a keep-alive when the connection has been quiet this long (default
   * 5 000 ms), so an idle but healthy connection never reaches the idle
   * timeout, and NAT bindings stay open.
   */
  readonly keepAliveIntervalMs?: number;
  /** Streams the peer may have open at once on one connection (default 1 024; Deno's own is 100). */
  readonly maxConcurrentStreams?: number;
}

const DEFAULTS: Required<DenoQuicOptions> = {
  handshakeTimeoutMs: 10_000,
  maxIdleTimeoutMs: 30_000,
  keepAliveIntervalMs: 5_000,
  maxConcurrentStreams: 1024,
};

/**
 * Deno.connectQuic's options plus `serverCertificateHashes`, which Deno
 * honours (pinning as in WebTransport) but does not declare yet.
 */
type ConnectOptions = Deno.ConnectQuicOptions<false> & {
  serverCertificateHashes: { algorithm: "sha-256"; value: Uint8Array }[];
};

/**
 * The raw-QUIC adapter for Deno (`name` `deno_quic`, `family` `quic`): it
 * interoperates with `bun_quic`. Needs `--unstable-net` (or
 * `"unstable": ["net"]` in deno.json).
 *
 * Dials pin the peer's certificate by passing it as the only extra CA and
 * dialling its server name, so a different certificate fails the handshake.
 * Deno does not show a server the client's certificate, so accepted
 * connections report `remoteCertificateHash` `undefined`.
 *
 * Known limit: Deno's QUIC streams cannot send RESET_STREAM (abort and
 * cancel only release the stream), so `Stream.reset` ends our sending side
 * cleanly and the peer sees the end of the stream, not an error.
 *
 * @example
 * ```ts ignore
 * import { createTlsIdentity, serverNameFor } from "./cert.ts";
 * import { denoQuic } from "./deno_quic.ts";
 *
 * const identity = await createTlsIdentity(serverNameFor("ab".repeat(32)));
 * const transport = await denoQuic()({ identity });
 * const listener = await transport.listen({ host: "127.0.0.1", port: 0 });
 * await listener.close();
 * await transport.close();
 * ```
 */
export function denoQuic(options: DenoQuicOptions = {}): TransportFactory {
  return (context: TransportContext) => new DenoQuicTransport(context.identity, options);
}

interface DenoQuicApi {
  QuicEndpoint: typeof Deno.QuicEndpoint;
  connectQuic: (options: ConnectOptions) => Promise<Deno.QuicConn>;
}

/** The adapter behind {@link denoQuic}; use the factory unless you need the class. */
export class DenoQuicTransport implements Transport {
  readonly name = "deno_quic";
  readonly family = "quic";
  readonly #identity: TlsIdentity;
  readonly #options: Required<DenoQuicOptions>;
  readonly #api: DenoQuicApi;
  #dialEndpoint: Deno.QuicEndpoint | undefined;
  readonly #listeners = new Set<DenoQuicListener>();
  readonly #connections = new Set<DenoQuicConnection>();
  /** Dials still handshaking (including abandoned ones), so close() can wait for them. */
  readonly #handshakes = new Set<Promise<unknown>>();
  #closing: Promise<void> | undefined;

  /**
   * @param identity this node's certificate and key, served to dialers
   * @param options timeouts and limits, see {@link DenoQuicOptions}
   * @throws {Error} when Deno's QUIC API is missing (not Deno, or no `--unstable-net`)
   */
  constructor(identity: TlsIdentity, options: DenoQuicOptions = {}) {
    const deno = (globalThis as { Deno?: Partial<DenoQuicApi> }).Deno;
    if (typeof deno?.QuicEndpoint !== "function" || typeof deno.connectQuic !== "function") {
      throw new Error(
        "Cannot create deno_quic transport: Deno.QuicEndpoint is unavailable (run Deno with --unstable-net)",
      );
    }
    this.#api = deno as DenoQuicApi;
    this.#identity = identity;
    this.#options = { ...DEFAULTS, ...options };
  }

  /** Transport parameters shared by both roles. */
  get #transportOptions(): Deno.QuicTransportOptions {
    return {
      maxIdleTimeout: this.#options.maxIdleTimeoutMs,
      keepAliveInterval: this.#options.keepAliveIntervalMs,
      maxConcurrentBidirectionalStreams: this.#options.maxConcurrentStreams,
      // mosaik uses bidirectional streams only.
      maxConcurrentUnidirectionalStreams: 0,
    };
  }

  // deno-lint-ignore require-await -- async so that a failed bind rejects instead of throwing
  async listen(address: SocketAddress): Promise<Listener> {
    if (this.#closing !== undefined) throw new Error("Cannot listen: transport is closed");
    const where = formatAddress(address);
    let endpoint: Deno.QuicEndpoint;
    try {
      endpoint = new this.#api.QuicEndpoint({ hostname: address.host, port: address.port });
    } catch (err) {
      throw new Error(`Cannot listen on ${where}: ${messageOf(err)}`, { cause: err });
    }
    let quicListener: Deno.QuicListener;
    try {
      quicListener = endpoint.listen({
        alpnProtocols: [MOSAIK_ALPN],
        cert: this.#identity.certificatePem,
        key: this.#identity.privateKeyPem,
        ...this.#transportOptions,
      });
    } catch (err) {
      endpoint.close();
      throw new Error(`Cannot listen on ${where}: ${messageOf(err)}`, { cause: err });
    }
    const listener = new DenoQuicListener(endpoint, quicListener, {
      adopt: (conn) => this.#adopt(conn),
      forget: (l) => this.#listeners.delete(l),
    });
    this.#listeners.add(listener);
    return listener;
  }

  async dial(target: DialTarget, options: DialOptions = {}): Promise<Connection> {
    const { signal } = options;
    signal?.throwIfAborted();
    if (this.#closing !== undefined) throw new Error("Cannot dial: transport is closed");
    const where = formatAddress(target.address);
    const hash = target.certificateHash.slice();
    let connecting: Promise<Deno.QuicConn>;
    try {
      connecting = this.#api.connectQuic({
        hostname: target.address.host,
        port: target.address.port,
        alpnProtocols: [MOSAIK_ALPN],
        // Pin by hash. Deno accepts serverCertificateHashes (as in WebTransport)
        // though its type declarations do not list it yet; a wrong hash fails
        // the handshake with UnknownIssuer.
        serverCertificateHashes: [{ algorithm: "sha-256", value: hash }],
        serverName: target.serverName,
        endpoint: this.#endpointForDials(),
        zeroRtt: false,
        ...this.#transportOptions,
      });
    } catch (err) {
      throw new Error(`Cannot dial ${where}: ${messageOf(err)}`, { cause: err });
    }
    const handshake = connecting.then(() => {}, () => {});
    this.#handshakes.add(handshake);
    void handshake.then(() => this.#handshakes.delete(handshake));

    let conn: Deno.QuicConn;
    try {
      conn = await handshakeWithin(connecting, where, this.#options.handshakeTimeoutMs, signal);
    } catch (err) {
      // Deno cannot cancel one handshake on a shared endpoint: if it still
      // succeeds, close what nobody will use.
      void connecting.then(
        (late) => late.close({ closeCode: 0, reason: "dial abandoned" }),
        () => {},
      );
      throw err;
    }
    if (this.#closing !== undefined) {
      conn.close({ closeCode: 0, reason: "transport closed" });
      throw new Error("Cannot dial: transport is closed");
    }
    const connection = new DenoQuicConnection(conn, toSocketAddress(conn.remoteAddr), hash);
    this.#adopt(connection);
    return connection;
  }

  close(): Promise<void> {
    this.#closing ??= this.#shutdown();
    return this.#closing;
  }

  async #shutdown(): Promise<void> {
    const listeners = [...this.#listeners];
    for (const conn of this.#connections) conn.close(0, "transport closed");
    await Promise.all(listeners.map((l) => l.close()));
    await Promise.all([...this.#connections].map((c) => c.closed));
    // Closing the endpoints also fails handshakes still in flight.
    for (const l of listeners) l.destroy();
    this.#dialEndpoint?.close({ closeCode: 0, reason: "transport closed" });
    await Promise.all([...this.#handshakes, ...listeners.map((l) => l.settled)]);
  }

  /** One endpoint for every dial: one UDP socket however many peers we reach. */
  #endpointForDials(): Deno.QuicEndpoint {
    if (this.#dialEndpoint === undefined) {
      try {
        // "::" is dual-stack on common systems, so it reaches IPv4 peers too.
        this.#dialEndpoint = new this.#api.QuicEndpoint({ hostname: "::", port: 0 });
      } catch {
        this.#dialEndpoint = new this.#api.QuicEndpoint({ hostname: "0.0.0.0", port: 0 });
      }
    }
    return this.#dialEndpoint;
  }

  #adopt(conn: DenoQuicConnection): void {
    if (this.#closing !== undefined) conn.close(0, "transport closed");
    this.#connections.add(conn);
    void conn.closed.then(() => this.#connections.delete(conn));
  }
}

interface ListenerHooks {
  adopt(conn: DenoQuicConnection): void;
  forget(listener: DenoQuicListener): void;
}

class DenoQuicListener implements Listener {
  readonly address: SocketAddress;
  readonly #endpoint: Deno.QuicEndpoint;
  readonly #listener: Deno.QuicListener;
  readonly #hooks: ListenerHooks;
  readonly #queue = new AsyncQueue<Connection>();
  /** Accepted connections still open: the endpoint must outlive them. */
  readonly #live = new Set<DenoQuicConnection>();
  readonly #accepting = new Set<Promise<void>>();
  readonly #loop: Promise<void>;
  #stopped = false;
  #endpointClosed = false;

  constructor(endpoint: Deno.QuicEndpoint, listener: Deno.QuicListener, hooks: ListenerHooks) {
    this.#endpoint = endpoint;
    this.#listener = listener;
    this.#hooks = hooks;
    this.address = toSocketAddress(endpoint.addr);
    this.#loop = this.#acceptLoop();
  }

  /** Settles when the accept loop and every handshake it started are over. */
  get settled(): Promise<void> {
    return this.#loop.then(() => Promise.all(this.#accepting)).then(() => {});
  }

  connections(): AsyncIterable<Connection> {
    return this.#queue;
  }

  close(): Promise<void> {
    if (!this.#stopped) {
      this.#stopped = true;
      this.#listener.stop();
      this.#queue.end();
      this.#maybeCloseEndpoint();
    }
    return Promise.resolve();
  }

  /** Closes the endpoint now, with whatever is still on it (transport shutdown). */
  destroy(): void {
    if (!this.#stopped) {
      this.#stopped = true;
      this.#listener.stop();
      this.#queue.end();
    }
    this.#closeEndpoint();
  }

  async #acceptLoop(): Promise<void> {
    for (;;) {
      let incoming: Deno.QuicIncoming;
      try {
        incoming = await this.#listener.incoming();
      } catch {
        break; // the endpoint closed (stopping alone does not end a pending accept)
      }
      if (this.#stopped) {
        incoming.refuse();
        continue;
      }
      const accepting = this.#accept(incoming);
      this.#accepting.add(accepting);
      void accepting.then(() => this.#accepting.delete(accepting));
    }
    this.#queue.end();
  }

  async #accept(incoming: Deno.QuicIncoming): Promise<void> {
    let conn: Deno.QuicConn;
    try {
      conn = await incoming.accept();
    } catch {
      return; // the handshake failed, e.g. the dialer pinned another certificate
    }
    const connection = new DenoQuicConnection(conn, toSocketAddress(conn.remoteAddr), undefined);
    this.#live.add(connection);
    void connection.closed.then(() => {
      this.#live.delete(connection);
      this.#maybeCloseEndpoint();
    });
    this.#hooks.adopt(connection);
    if (!this.#queue.push(connection)) connection.close(0, "listener closed");
  }

  #maybeCloseEndpoint(): void {
    if (this.#stopped && this.#live.size === 0 && this.#accepting.size === 0) this.#closeEndpoint();
  }

  #closeEndpoint(): void {
    if (this.#endpointClosed) return;
    this.#endpointClosed = true;
    this.#endpoint.close({ closeCode: 0, reason: "listener closed" });
    this.#hooks.forget(this);
  }
}

class DenoQuicConnection implements Connection {
  readonly remoteAddress: SocketAddress;
  readonly remoteCertificateHash: Uint8Array | undefined;
  readonly closed: Promise<CloseInfo>;
  readonly #conn: Deno.QuicConn;
  #local: CloseInfo | undefined;
  #ended = false;
  #incoming: ReadableStreamDefaultReader<Deno.QuicBidirectionalStream> | undefined;

  constructor(conn: Deno.QuicConn, remoteAddress: SocketAddress, hash: Uint8Array | undefined) {
    this.#conn = conn;
    this.remoteAddress = remoteAddress;
    this.remoteCertificateHash = hash;
    this.closed = conn.closed.then(
      (info): CloseInfo =>
        this.#local ?? { code: info.closeCode, reason: info.reason, remote: true },
      // Deno rejects on anything but an application close (idle timeout, transport error).
      (err): CloseInfo => this.#local ?? { code: 0, reason: messageOf(err), remote: true },
    ).then((info) => {
      this.#ended = true;
      return info;
    });
  }

  async openStream(): Promise<Stream> {
    if (this.#local !== undefined || this.#ended) {
      throw new Error("Cannot open stream: connection is closed");
    }
    let bidi: Deno.QuicBidirectionalStream;
    try {
      // Waits for stream credit instead of failing when the peer's limit is reached.
      bidi = await this.#conn.createBidirectionalStream({ waitUntilAvailable: true });
    } catch (err) {
      throw new Error(`Cannot open stream: ${messageOf(err)}`, { cause: err });
    }
    return wrapStream(bidi);
  }

  async *incomingStreams(): AsyncIterable<Stream> {
    if (this.#local !== undefined) return;
    this.#incoming ??= this.#conn.incomingBidirectionalStreams.getReader();
    for (;;) {
      let next: ReadableStreamReadResult<Deno.QuicBidirectionalStream>;
      try {
        next = await this.#incoming.read();
      } catch {
        return; // the connection closed
      }
      if (next.done) return;
      yield wrapStream(next.value);
    }
  }

  close(code = 0, reason = ""): void {
    if (this.#local !== undefined || this.#ended) return;
    this.#local = { code, reason, remote: false };
    try {
      this.#conn.close({ closeCode: code, reason });
    } catch {
      // Already closed underneath us: `closed` settles either way.
    }
  }
}

/** Small writes queued while one is in flight go out together, up to this many bytes. */
const COALESCE_BYTES = 64 * 1024;

/**
 * Deno's stream halves behind our own, so `reset` works while the caller
 * holds locks on them. Reads are plain pulls (one read in flight, nothing
 * buffered ahead: quinn's flow control does the backpressure). Writes made
 * while one is in flight are coalesced into the next, because each Deno
 * write is an op whose fixed cost dominates small frames; `ready` waits
 * once COALESCE_BYTES are queued behind the one in flight.
 */
function wrapStream(bidi: Deno.QuicBidirectionalStream): Stream {
  const reader = bidi.readable.getReader();
  const writer = bidi.writable.getWriter();
  let readController: ReadableStreamDefaultController<Uint8Array> | undefined;
  let writeController: WritableStreamDefaultController | undefined;
  let reset = false;
  let queued: Uint8Array[] = [];
  let queuedBytes = 0;
  let flushing: Promise<void> | undefined;
  let failure: { error: unknown } | undefined;
  const waitingForRoom: (() => void)[] = [];
  const wake = () => {
    for (const resume of waitingForRoom.splice(0)) resume();
  };
  const throwIfFailed = () => {
    if (failure !== undefined) throw failure.error;
  };
  const flush = async () => {
    try {
      while (queued.length > 0) {
        const batch = queued.length === 1 ? queued[0]! : concatBytes(...queued);
        queued = [];
        queuedBytes = 0;
        wake();
        await writer.write(batch);
      }
    } catch (error) {
      failure ??= { error };
      queued = [];
      queuedBytes = 0;
      wake();
    } finally {
      flushing = undefined;
    }
  };

  const readable = new ReadableStream<Uint8Array>({
    start(controller) {
      readController = controller;
    },
    async pull(controller) {
      const next = await reader.read();
      if (reset) return;
      if (next.done) controller.close();
      else controller.enqueue(next.value);
    },
    cancel(reason) {
      return reader.cancel(reason).catch(() => {});
    },
  }, { highWaterMark: 0 });
  const writable = new WritableStream<Uint8Array>({
    start(controller) {
      writeController = controller;
    },
    async write(chunk) {
      throwIfFailed();
      queued.push(chunk);
      queuedBytes += chunk.byteLength;
      flushing ??= flush();
      if (queuedBytes > COALESCE_BYTES) {
        await new Promise<void>((resume) => waitingForRoom.push(resume));
        throwIfFailed();
      }
    },
    async close() {
      while (flushing !== undefined) await flushing;
      throwIfFailed();
      await writer.close();
    },
    abort(reason) {
      queued = [];
      queuedBytes = 0;
      return writer.abort(reason).catch(() => {});
    },
  });
  return {
    readable,
    writable,
    reset(code: number) {
      if (reset) return;
      reset = true;
      const err = new Error(`Stream was reset with code ${code}`);
      failure ??= { error: err };
      queued = [];
      queuedBytes = 0;
      wake();
      readController?.error(err);
      writeController?.error(err);
      // Releases both halves: STOP_SENDING to the peer, and (Deno's only
      // option) the end of our sending side.
      void reader.cancel(err).catch(() => {});
      void writer.abort(err).catch(() => {});
    },
  };
}

function toSocketAddress(addr: { hostname: string; port: number }): SocketAddress {
  return { host: addr.hostname, port: addr.port };
}

function formatAddress(address: SocketAddress): string {
  return address.host.includes(":")
    ? `[${address.host}]:${address.port}`
    : `${address.host}:${address.port}`;
}
