// The `webtransport_h2` adapter: WebTransport over HTTP/2 + TLS (TCP) via @fails-components/webtransport, the fallback where UDP is blocked.
//
// The library (pinned at 1.6.8) is used through its public classes, with
// contained adjustments to its internals, each explained where it is made:
// - the dialer makes the TLS + HTTP/2 connection itself, to pin the peer
//   certificate by SHA-256 (the library's own check wants ≤ 14-day validity);
// - both ends use one flow-control window size, as the library's server
//   otherwise stalls a client after 16 KiB;
// - a stream that has ended both ways is released and its credit returned, as
//   the library keeps every stream and stops a peer after 100 (its default);
// - received bytes move into a stream's readable only as fast as it is read,
//   so flow control bounds what a slow reader buffers;
// - a close answers the close capsule with FIN rather than a reset, so the
//   code and reason arrive, and Deno's HTTP/2 does not crash;
// - a peer sending on a stream id that is ours to open is a protocol
//   violation rather than an uncaught exception;
// - every HTTP/2 session is tracked and ended, so nothing stays open.

import http2 from "node:http2";
import { createHash, randomBytes } from "node:crypto";
import { CloseCode } from "./types.ts";
import { AsyncQueue } from "./_queue.ts";
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

const MiB = 1024 * 1024;

/** Options of {@link webTransportH2}. */
export interface WebTransportH2Options {
  /**
   * Connection-level flow-control window in bytes, the same at both ends
   * (default 15 MiB). It bounds what one connection buffers for slow readers.
   */
  readonly sessionWindow?: number;
  /** Initial per-stream flow-control window in bytes (default 1 MiB); it grows up to 6 MiB. */
  readonly streamWindow?: number;
  /**
   * Streams the peer may have open at once on one connection (default 4096),
   * as QUIC's stream limit: `openStream` waits while the peer's limit is
   * reached. A stream counts until both sides have closed (or reset) their
   * writable and read the other side's end.
   */
  readonly maxStreams?: number;
  /** Milliseconds a dial may take, TCP + TLS + HTTP/2 + WebTransport (default 10 000). */
  readonly dialTimeout?: number;
  /** Milliseconds an accepted TCP connection has to become a WebTransport session (default 10 000). */
  readonly handshakeTimeout?: number;
  /** Milliseconds a closing side waits for the peer to take the close before cutting (default 2 000). */
  readonly closeTimeout?: number;
}

/** The HTTP/2 path both ends use for the WebTransport session. */
const SESSION_PATH = "/mosaik/1";

/** The library's limit on the stream count (it supports 32-bit stream ids only). */
const MAX_STREAM_LIMIT = 2 ** 30;

/**
 * Makes the `webtransport_h2` transport: WebTransport over HTTP/2 and TLS
 * (so over TCP), for networks that block UDP. Runs on Deno, Bun and Node
 * (Node ≥ 20), interoperates across them (family `h2`), and pins the peer
 * certificate by its SHA-256.
 *
 * One connection is one TCP connection carrying one WebTransport session;
 * streams are multiplexed inside it with their own flow control.
 *
 * @param options windows, stream limit and timeouts (all optional)
 * @returns a transport factory
 * @throws {RangeError} when an option is out of range
 *
 * @example
 * ```ts
 * import { webTransportH2 } from "./webtransport_h2.ts";
 * import { createTlsIdentity } from "./cert.ts";
 *
 * const factory = webTransportH2(); // Network.builder(…).withTransport(factory)
 * const transport = await factory({ identity: await createTlsIdentity("a.mosaik") });
 * const listener = await transport.listen({ host: "127.0.0.1", port: 0 });
 * if (listener.address.port === 0) throw new Error("a free port was picked");
 * await transport.close();
 * ```
 */
export function webTransportH2(options: WebTransportH2Options = {}): TransportFactory {
  const config = resolveOptions(options);
  return (context: TransportContext) => new H2Transport(context.identity, config);
}

interface Config {
  sessionWindow: number;
  streamWindow: number;
  maxStreams: number;
  dialTimeout: number;
  handshakeTimeout: number;
  closeTimeout: number;
}

function resolveOptions(o: WebTransportH2Options): Config {
  const int = (name: string, v: number | undefined, dflt: number, min: number, max: number) => {
    if (v === undefined) return dflt;
    if (!Number.isInteger(v) || v < min || v > max) {
      throw new RangeError(
        `Cannot use ${name}: expected an integer from ${min} to ${max}, got ${v}`,
      );
    }
    return v;
  };
  // HTTP/2 settings carry the windows and counts as 32-bit values.
  const sessionWindow = int("sessionWindow", o.sessionWindow, 15 * MiB, 64 * 1024, 2 ** 31 - 1);
  return {
    sessionWindow,
    streamWindow: int("streamWindow", o.streamWindow, MiB, 16 * 1024, sessionWindow),
    maxStreams: int("maxStreams", o.maxStreams, 4096, 1, MAX_STREAM_LIMIT),
    dialTimeout: int("dialTimeout", o.dialTimeout, 10_000, 1, 2 ** 31 - 1),
    handshakeTimeout: int("handshakeTimeout", o.handshakeTimeout, 10_000, 1, 2 ** 31 - 1),
    closeTimeout: int("closeTimeout", o.closeTimeout, 2_000, 1, 2 ** 31 - 1),
  };
}

// ---- the parts of the library we use (it ships no usable types for them) ---------------------

interface LibCloseInfo {
  closeCode?: number;
  reason?: string;
}

interface LibBidiStream {
  readable: ReadableStream<Uint8Array>;
  writable: WritableStream<Uint8Array>;
}

/** The HTTP/2 side of a session: the CONNECT stream and the capsule parser on it. */
interface LibNativeSession {
  stream: http2.Http2Stream;
  capsParser: LibCapsuleParser;
}

interface LibCapsuleParser {
  /** Every stream of the session, by id; the library never deletes from it. */
  readonly wtstreams: Map<bigint, LibNativeStream>;
  readonly scheduler: { Unregister(id: bigint): void };
  closeHttp2Stream(code: number): void;
  onCloseWebTransportSession(info: { code: number; reason: string }): void;
  onMaxStreamBiDi(max: bigint | undefined): void;
}

/** The library's HTTP/2-level stream: ids, flow control, send queue. */
interface LibNativeStream {
  readonly streamid: bigint;
  incomingClosed_: boolean;
  outgoingClosed_: boolean;
  readonly outgochunks: unknown[];
  readonly jsobj?: LibStreamObject;
  onFin(): void;
  onStreamSignal(type: "resetStream" | "stopSending"): void;
  resetStream(code: number): void;
  /** Returns the stream's credit to the peer (for a stream the peer opened). */
  onClose(): void;
}

/** The library's stream object behind the readable and writable it hands out. */
interface LibStreamObject {
  readonly readable?: ReadableStream<Uint8Array>;
  readonly readableController?: { readonly desiredSize: number | null };
  /** Set while the readable's pull waits for data. */
  readonly pendingoperationRead: Promise<void> | null;
  /** Moves received bytes into the readable; `stopReading` pauses the moving. */
  commitReadBuffer(buffer: unknown): { stopReading?: boolean };
}

interface LibStreamEvent {
  readonly stream: LibNativeStream;
  readonly incoming: boolean;
  readonly bidirectional: boolean;
}

/** The session object the parser reports new streams to. */
interface LibSessionInternals {
  onStream(event: LibStreamEvent): void;
}

/** A WebTransport session: the client `WebTransport` and the server's session objects alike. */
interface LibSession {
  readonly ready: Promise<void>;
  readonly closed: Promise<LibCloseInfo>;
  readonly incomingBidirectionalStreams: ReadableStream<LibBidiStream>;
  readonly incomingUnidirectionalStreams: ReadableStream<ReadableStream<Uint8Array>>;
  readonly datagrams: { readonly readable: ReadableStream<Uint8Array> };
  createBidirectionalStream(options?: { waitUntilAvailable?: boolean }): Promise<LibBidiStream>;
  close(info?: LibCloseInfo): void;
}

interface LibServerSession extends LibSession, LibSessionInternals {
  objint?: LibNativeSession;
}

interface LibClientSession extends LibSession {
  sessionint: LibSessionInternals & { objint?: LibNativeSession };
}

/** The client-side HTTP/2 transport object the library makes for each `WebTransport`. */
interface LibHttp2Client {
  initialSessionFlowControlWindow: number;
  initialStreamFlowControlWindow: number;
  initialBidirectionalStreams: number;
  initialUnidirectionalStreams: number;
  clientInt: http2.ClientHttp2Session | undefined;
  jsobj: {
    onClientConnected(event: { success: boolean }): void;
    onClientWebTransportSupport(event: Record<string, never>): void;
  };
  createTransport(): void;
}

interface LibHttpClientArgs {
  createReliableClient(client: unknown): LibHttp2Client;
}

interface LibWebTransportClass {
  new (url: string, init: LibClientInit): LibClientSession & {
    createClient(args: LibClientInit): { client: { args?: LibHttpClientArgs } };
  };
}

interface LibClientInit {
  forceReliable: true;
  initialSessionFlowControlWindow: number;
  initialStreamFlowControlWindow: number;
  streamFlowControlWindowSizeLimit: number;
  sessionFlowControlWindowSizeLimit: number;
  initialBidirectionalSendStreams: number;
  initialUnidirectionalSendStreams: number;
  quicConnectTimeout: number;
  webTransportConnectTimeout: number;
  /** Ours, passed through the library to our `createTransport`. */
  mosaikDial: DialState;
}

interface LibServerInit {
  port: number;
  host: string;
  secret: string;
  cert: string;
  privKey: string;
  initialSessionFlowControlWindow: number;
  initialStreamFlowControlWindow: number;
  streamFlowControlWindowSizeLimit: number;
  sessionFlowControlWindowSizeLimit: number;
  initialBidirectionalStreams: number;
  initialUnidirectionalStreams: number;
}

interface LibServer {
  readonly ready: Promise<void>;
  readonly closed: Promise<void>;
  transportInt?: { serverInt?: http2.Http2SecureServer };
  sessionStream(path: string): ReadableStream<LibServerSession>;
  startServer(): void;
  stopServer(): void;
  address(): { port: number; host: string } | null;
}

interface LibModule {
  Http2Server: new (init: LibServerInit) => LibServer;
  WebTransport: LibWebTransportClass;
  quicheLoaded: Promise<unknown>;
}

interface Library {
  Http2Server: new (init: LibServerInit) => LibServer;
  PinnedWebTransport: new (url: string, init: LibClientInit) => LibClientSession;
}

let library: Promise<Library> | undefined;

/**
 * Loads the library once. It tries to load its native HTTP/3 addon at import
 * time and prints the failure (four lines) when the addon is absent, which it
 * is on purpose: we only use HTTP/2. Those lines alone are held back while it
 * loads.
 */
function loadLibrary(): Promise<Library> {
  library ??= (async () => {
    const restore = muteAddonNotice();
    try {
      const mod = (await import("@fails-components/webtransport")) as unknown as LibModule;
      await mod.quicheLoaded;
      // The server half reports on its own promise, which settles in the same turn or the next.
      await new Promise<void>((resolve) => setTimeout(resolve, 0));
      return { Http2Server: mod.Http2Server, PinnedWebTransport: pinnedClientClass(mod) };
    } finally {
      restore();
    }
  })();
  return library;
}

const ADDON_NOTICES = new Set([
  "http3 loader:",
  "Problem loading http3-quiche transport",
  "Did you install @fails-components/webtransport-transport-http3-quiche?",
]);

function muteAddonNotice(): () => void {
  const { log, error } = console;
  const filter = (print: (...args: unknown[]) => void) => (...args: unknown[]) => {
    if (typeof args[0] === "string" && ADDON_NOTICES.has(args[0])) return;
    print.apply(console, args);
  };
  console.log = filter(log);
  console.error = filter(error);
  return () => {
    console.log = log;
    console.error = error;
  };
}

// ---- dialing --------------------------------------------------------------------------------

/** What one dial tells our `createTransport`, and what it learns. */
interface DialState {
  readonly authority: string;
  readonly serverName: string;
  readonly expectedHash: string;
  h2?: http2.ClientHttp2Session;
  h2Closed?: Promise<void>;
  failure?: Error;
}

/**
 * The library's `WebTransport`, with the HTTP/2 connection made by us: it is
 * the only place to reach it. Its own check accepts a hash only for a
 * certificate valid ≤ 14 days (the browser rule), and with no hash it demands a
 * CA-signed certificate; ours are self-signed and valid 30 days. So we connect
 * with verification off, compare the SHA-256 of the presented certificate with
 * the pinned one as soon as TLS completes, and let the library send its
 * CONNECT request only after that.
 */
function pinnedClientClass(mod: LibModule): Library["PinnedWebTransport"] {
  const Base = mod.WebTransport;
  return class PinnedWebTransport extends Base {
    override createClient(args: LibClientInit) {
      const made = super.createClient(args);
      const init = made.client.args;
      if (init === undefined) throw new Error("Cannot dial: unexpected library layout");
      const makeReliable = init.createReliableClient;
      init.createReliableClient = (client: unknown) => {
        const inner = makeReliable(client);
        inner.createTransport = () => connectPinned(inner, args.mosaikDial);
        return inner;
      };
      return made;
    }
  };
}

interface ConnectOptions extends http2.SecureClientSessionOptions {
  remoteCustomSettings: number[];
}

/** Custom HTTP/2 settings of WebTransport over HTTP/2 (draft-ietf-webtrans-http2). */
const WT_SETTINGS = [0x2b61, 0x2b62, 0x2b63, 0x2b64, 0x2b65];

function connectPinned(inner: LibHttp2Client, state: DialState): void {
  const settings = {
    enableConnectProtocol: true,
    customSettings: {
      0x2b61: inner.initialSessionFlowControlWindow, // WT_INITIAL_MAX_DATA
      0x2b62: inner.initialStreamFlowControlWindow, // WT_INITIAL_MAX_STREAM_DATA_UNI
      0x2b63: inner.initialStreamFlowControlWindow, // WT_INITIAL_MAX_STREAM_DATA_BIDI
      0x2b64: inner.initialUnidirectionalStreams, // WT_INITIAL_MAX_STREAMS_UNI
      0x2b65: inner.initialBidirectionalStreams, // WT_INITIAL_MAX_STREAMS_BIDI
    },
  } as http2.Settings;
  const options: ConnectOptions = {
    settings,
    remoteCustomSettings: WT_SETTINGS,
    servername: state.serverName,
    // Verified below by hash: the certificate is self-signed.
    rejectUnauthorized: false,
  };
  const h2 = http2.connect(state.authority, options);
  inner.clientInt = h2;
  state.h2 = h2;
  state.h2Closed = new Promise<void>((resolve) => h2.once("close", () => resolve()));

  let settled = false;
  let pinned = false;
  let connected = false;
  let upgradable = false;
  const fail = (err: Error) => {
    if (settled) return;
    settled = true;
    state.failure ??= err;
    h2.destroy();
    inner.jsobj.onClientConnected({ success: false });
  };
  const proceed = () => {
    if (settled || !pinned || !connected || !upgradable) return;
    settled = true;
    inner.jsobj.onClientConnected({ success: true });
    inner.jsobj.onClientWebTransportSupport({});
  };
  h2.socket.once("secureConnect", () => {
    const tls = h2.socket as unknown as {
      getPeerCertificate(detailed: true): { raw?: Uint8Array };
    };
    const raw = tls.getPeerCertificate(true).raw;
    const hash = raw === undefined ? "" : createHash("sha256").update(raw).digest("hex");
    if (hash !== state.expectedHash) {
      fail(new Error("Cannot dial: the peer's certificate does not match the pinned hash"));
      return;
    }
    pinned = true;
    proceed();
  });
  h2.once("connect", () => {
    connected = true;
    proceed();
  });
  h2.on("remoteSettings", (remote: http2.Settings) => {
    if (remote.enableConnectProtocol) {
      upgradable = true;
      proceed();
    } else {
      fail(new Error("Cannot dial: the peer does not accept extended CONNECT"));
    }
  });
  // Errors after the handshake reach the session through its CONNECT stream.
  h2.on("error", (err: Error) => fail(err));
  h2.once("close", () => fail(new Error("Cannot dial: connection closed during the handshake")));
}

// ---- the transport --------------------------------------------------------------------------

class H2Transport implements Transport {
  readonly name = "webtransport_h2";
  readonly family = "h2";
  readonly #identity: TlsIdentity;
  readonly #config: Config;
  readonly #listeners = new Set<H2Listener>();
  readonly #connections = new Set<H2Connection>();
  readonly #dials = new Set<{ abort: AbortController; done: Promise<unknown> }>();
  #closing: Promise<void> | undefined;

  constructor(identity: TlsIdentity, config: Config) {
    this.#identity = identity;
    this.#config = config;
  }

  async listen(address: SocketAddress): Promise<Listener> {
    if (this.#closing !== undefined) throw new Error("Cannot listen: transport is closed");
    const lib = await loadLibrary();
    const c = this.#config;
    // The initial window and the window limit must be equal: the library's server
    // opens its window at the limit but advertises the initial size, and then
    // sends a window update only after half the limit, which a client capped at
    // the initial size never reaches (16 KiB with the defaults).
    const server = new lib.Http2Server({
      port: address.port,
      host: address.host,
      secret: randomBytes(16).toString("hex"), // HTTP/3 only; required all the same
      cert: this.#identity.certificatePem,
      privKey: this.#identity.privateKeyPem,
      initialSessionFlowControlWindow: c.sessionWindow,
      initialStreamFlowControlWindow: c.streamWindow,
      streamFlowControlWindowSizeLimit: Math.max(c.streamWindow, 6 * MiB),
      sessionFlowControlWindowSizeLimit: c.sessionWindow,
      initialBidirectionalStreams: c.maxStreams,
      initialUnidirectionalStreams: 1, // we never use them (0 would mean the default, 100)
    });
    const sessions = server.sessionStream(SESSION_PATH);
    server.startServer();
    // Made synchronously by startServer unless the certificate or key was refused.
    const nodeServer = server.transportInt?.serverInt;
    if (nodeServer === undefined) throw new Error("Cannot listen: the HTTP/2 server did not start");
    const listener = new H2Listener(server, nodeServer, sessions, c, (conn) => this.#adopt(conn));
    try {
      await server.ready;
    } catch (err) {
      await listener.close();
      throw new Error(
        `Cannot listen on ${address.host}:${address.port}: ${(err as Error).message}`,
        { cause: err },
      );
    }
    if (this.#closing !== undefined) {
      await listener.shutdown();
      throw new Error("Cannot listen: transport is closed");
    }
    this.#listeners.add(listener);
    return listener;
  }

  async dial(target: DialTarget, options: DialOptions = {}): Promise<Connection> {
    const signal = options.signal;
    signal?.throwIfAborted();
    if (this.#closing !== undefined) throw new Error("Cannot dial: transport is closed");
    const abort = new AbortController();
    const onAbort = () => abort.abort(signal?.reason);
    signal?.addEventListener("abort", onAbort, { once: true });
    const attempt = this.#dial(target, abort.signal);
    const entry = { abort, done: attempt.catch(() => {}) };
    this.#dials.add(entry);
    try {
      const conn = await attempt;
      this.#adopt(conn);
      return conn;
    } finally {
      signal?.removeEventListener("abort", onAbort);
      this.#dials.delete(entry);
    }
  }

  async #dial(target: DialTarget, signal: AbortSignal): Promise<H2Connection> {
    const lib = await loadLibrary();
    const expected = target.certificateHash;
    signal.throwIfAborted();
    const { host, port } = target.address;
    const hostPart = host.includes(":") ? `[${host}]` : host;
    const state: DialState = {
      authority: `https://${hostPart}:${port}`,
      serverName: target.serverName,
      expectedHash: hex(expected),
    };
    const c = this.#config;
    const wt = new lib.PinnedWebTransport(`https://${hostPart}:${port}${SESSION_PATH}`, {
      forceReliable: true,
      initialSessionFlowControlWindow: c.sessionWindow,
      initialStreamFlowControlWindow: c.streamWindow,
      streamFlowControlWindowSizeLimit: Math.max(c.streamWindow, 6 * MiB),
      sessionFlowControlWindowSizeLimit: c.sessionWindow,
      initialBidirectionalSendStreams: c.maxStreams,
      initialUnidirectionalSendStreams: 1,
      // Our own deadline below governs; these only must not fire first.
      quicConnectTimeout: c.dialTimeout + 60_000,
      webTransportConnectTimeout: c.dialTimeout + 60_000,
      mosaikDial: state,
    });
    wt.closed.catch(() => {});
    let timer: ReturnType<typeof setTimeout> | undefined;
    let onAbort: (() => void) | undefined;
    const stopped = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`Cannot dial ${host}:${port}: timed out after ${c.dialTimeout} ms`)),
        c.dialTimeout,
      );
      onAbort = () => reject(signal.reason);
      signal.addEventListener("abort", onAbort, { once: true });
    });
    try {
      await Promise.race([wt.ready, stopped]);
      const native = wt.sessionint.objint;
      const h2 = state.h2;
      if (native === undefined || h2 === undefined || state.h2Closed === undefined) {
        throw new Error("Cannot dial: unexpected library layout");
      }
      const socket = h2.socket;
      return new H2Connection(wt, wt.sessionint, native, h2, state.h2Closed, {
        remoteAddress: socket?.remoteAddress !== undefined && socket.remotePort !== undefined
          ? { host: socket.remoteAddress, port: socket.remotePort }
          : target.address,
        remoteCertificateHash: expected,
        closeTimeout: c.closeTimeout,
      });
    } catch (err) {
      // What failed the handshake, not the destroy below.
      const cause = state.failure ?? err;
      state.h2?.destroy();
      await state.h2Closed;
      if (signal.aborted) throw signal.reason;
      const message = (cause as Error).message ?? String(cause);
      throw new Error(
        message.startsWith("Cannot dial") ? message : `Cannot dial ${host}:${port}: ${message}`,
        { cause },
      );
    } finally {
      clearTimeout(timer);
      if (onAbort !== undefined) signal.removeEventListener("abort", onAbort);
    }
  }

  #adopt(conn: H2Connection): void {
    this.#connections.add(conn);
    conn.closed.then(() => this.#connections.delete(conn));
    // Closed after we began closing: it was made meanwhile.
    if (this.#closing !== undefined) conn.close(0, "Transport closed");
  }

  close(): Promise<void> {
    this.#closing ??= (async () => {
      const reason = new Error("Cannot dial: transport is closed");
      for (const d of this.#dials) d.abort.abort(reason);
      await Promise.all([...this.#dials].map((d) => d.done));
      await Promise.all([...this.#listeners].map((l) => l.close()));
      for (const conn of this.#connections) conn.close(0, "Transport closed");
      // #adopt closes any made meanwhile; each leaves the set once closed.
      while (this.#connections.size > 0) {
        await Promise.all([...this.#connections].map((conn) => conn.closed));
      }
      await Promise.all([...this.#listeners].map((l) => l.shutdown()));
    })();
    return this.#closing;
  }
}

// ---- listening ------------------------------------------------------------------------------

/** An HTTP/2 session accepted by a server. */
interface Accepted {
  readonly h2: http2.ServerHttp2Session;
  readonly closed: Promise<void>;
  /** Cuts the session unless it carries a WebTransport session in time. */
  readonly timer: ReturnType<typeof setTimeout>;
  /** It carries one (it may carry only one). */
  upgraded: boolean;
}

class H2Listener implements Listener {
  readonly #server: LibServer;
  #address: SocketAddress = { host: "", port: 0 };
  readonly #queue = new AsyncQueue<Connection>();
  readonly #accepted = new Map<http2.ServerHttp2Session, Accepted>();
  readonly #config: Config;
  readonly #adopt: (conn: H2Connection) => void;
  readonly #acceptLoop: Promise<void>;
  #closing: Promise<void> | undefined;

  constructor(
    server: LibServer,
    nodeServer: http2.Http2SecureServer,
    sessions: ReadableStream<LibServerSession>,
    config: Config,
    adopt: (conn: H2Connection) => void,
  ) {
    this.#server = server;
    this.#config = config;
    this.#adopt = adopt;
    // The library adds no error listener to sessions: one socket error would
    // otherwise be an uncaught exception.
    nodeServer.on("session", (h2: http2.ServerHttp2Session) => this.#track(h2));
    this.#acceptLoop = this.#accept(sessions);
  }

  get address(): SocketAddress {
    // Kept after the server stops, when the library no longer knows it.
    const a = this.#server.address();
    if (a !== null) this.#address = { host: a.host, port: a.port };
    return this.#address;
  }

  #track(h2: http2.ServerHttp2Session): void {
    h2.on("error", () => {});
    const entry: Accepted = {
      h2,
      closed: new Promise<void>((resolve) => h2.once("close", () => resolve())),
      timer: setTimeout(() => h2.destroy(), this.#config.handshakeTimeout),
      upgraded: false,
    };
    this.#accepted.set(h2, entry);
    entry.closed.then(() => {
      clearTimeout(entry.timer);
      this.#accepted.delete(h2);
    });
    if (this.#closing !== undefined) h2.destroy();
  }

  async #accept(sessions: ReadableStream<LibServerSession>): Promise<void> {
    const reader = sessions.getReader();
    try {
      for (;;) {
        const { done, value: session } = await reader.read();
        if (done) return;
        session.closed.catch(() => {});
        const native = session.objint;
        const h2 = native?.stream.session as http2.ServerHttp2Session | undefined;
        const entry = h2 === undefined ? undefined : this.#accepted.get(h2);
        // One connection, one HTTP/2 session: a second session on it would share its fate.
        if (native === undefined || entry === undefined || entry.upgraded) {
          session.close({ closeCode: CloseCode.ProtocolViolation, reason: "Not accepted" });
          continue;
        }
        clearTimeout(entry.timer);
        entry.upgraded = true;
        const socket = entry.h2.socket;
        const conn = new H2Connection(session, session, native, entry.h2, entry.closed, {
          remoteAddress: {
            host: socket?.remoteAddress ?? "",
            port: socket?.remotePort ?? 0,
          },
          remoteCertificateHash: undefined,
          closeTimeout: this.#config.closeTimeout,
        });
        this.#adopt(conn);
        this.#queue.push(conn);
      }
    } catch {
      // The session stream only ends or errors when the server stops.
    } finally {
      this.#queue.end();
    }
  }

  connections(): AsyncIterable<Connection> {
    return this.#queue;
  }

  close(): Promise<void> {
    this.#closing ??= (async () => {
      try {
        this.#server.stopServer();
      } catch {
        // Never started (listen failed): nothing to stop.
      }
      // HTTP/2 sessions not yet carrying a connection can no longer become one.
      for (const entry of this.#accepted.values()) {
        if (!entry.upgraded) entry.h2.destroy();
      }
      await this.#acceptLoop;
    })();
    return this.#closing;
  }

  /** Closes and waits until the server and every HTTP/2 session it accepted have ended. */
  async shutdown(): Promise<void> {
    await this.close();
    for (const entry of this.#accepted.values()) entry.h2.destroy();
    await Promise.all([...this.#accepted.values()].map((e) => e.closed));
    if (await this.#server.ready.then(() => true, () => false)) await this.#server.closed;
  }
}

// ---- connections and streams ----------------------------------------------------------------

interface ConnectionInit {
  remoteAddress: SocketAddress;
  remoteCertificateHash: Uint8Array | undefined;
  closeTimeout: number;
}

class H2Connection implements Connection {
  readonly remoteAddress: SocketAddress;
  readonly remoteCertificateHash: Uint8Array | undefined;
  readonly closed: Promise<CloseInfo>;
  readonly #session: LibSession;
  readonly #parser: LibCapsuleParser;
  readonly #incoming: ReadableStreamDefaultReader<LibBidiStream>;
  /** Fires when the connection is gone, to wake operations the library would leave pending. */
  readonly #gone = new Cutoff();
  /** The library's streams by the readable it hands out, to follow each to its end. */
  readonly #lives = new WeakMap<ReadableStream<Uint8Array>, StreamLife>();
  /** Wakes `openStream` calls waiting for the peer to allow more streams. */
  #credit: { promise: Promise<void>; resolve: () => void } = deferred();
  #opening = false;
  #lastIncomingId = -1n;
  #local: CloseInfo | undefined;
  #peerClose: { code: number; reason: string } | undefined;
  #ended = false;

  constructor(
    session: LibSession,
    internals: LibSessionInternals,
    native: LibNativeSession,
    h2: http2.Http2Session,
    h2Closed: Promise<void>,
    init: ConnectionInit,
  ) {
    this.#session = session;
    this.#parser = native.capsParser;
    this.remoteAddress = init.remoteAddress;
    this.remoteCertificateHash = init.remoteCertificateHash;
    this.#incoming = session.incomingBidirectionalStreams.getReader();
    this.#interceptClose(native, init.closeTimeout);
    this.#interceptStreams(internals);
    discardUnused(session);

    this.closed = (async () => {
      let info: LibCloseInfo = {};
      try {
        info = await session.closed;
      } catch (err) {
        // The library rejects `closed` when the session was draining; it is closed all the same.
        info = { closeCode: 0, reason: (err as Error).message };
      }
      this.#ended = true;
      this.#gone.fire(new Error("Connection is closed"));
      // One connection, one HTTP/2 session: end it too (the client side of the library does
      // so itself), and cut it if the peer does not answer in time.
      if (!h2.closed && !h2.destroyed) h2.close();
      const cut = setTimeout(() => h2.destroy(), init.closeTimeout);
      await h2Closed;
      clearTimeout(cut);
      if (this.#local !== undefined) return this.#local;
      if (this.#peerClose !== undefined) return { ...this.#peerClose, remote: true };
      // Lost rather than closed (the peer died, the network failed): the library's code is
      // then an HTTP/2 error code, not an application one, so report 0 as the QUIC adapters do.
      return { code: 0, reason: info.reason || "Connection lost", remote: true };
    })();
  }

  /**
   * The library ends a session by resetting its CONNECT stream right after the
   * close capsule, at both ends. Two problems: the reset can overtake the
   * capsule at the receiver (it does on Deno), which then sees an HTTP/2 stream
   * error instead of our code and reason; and resetting and destroying a stream
   * the peer has already ended crashes Deno's HTTP/2 (an nghttp2 assertion or
   * a segfault, in about one close in five between processes). So the side
   * that receives the capsule ends its half of the stream instead, which
   * closes it cleanly, and the side that sent it waits for that (or for
   * `closeTimeout`) before resetting. The capsule the peer sends is kept, so
   * its reason is reported as sent.
   */
  #interceptClose(native: LibNativeSession, closeTimeout: number): void {
    const parser = native.capsParser;
    const stream = native.stream;
    const resetNow = parser.closeHttp2Stream.bind(parser);
    parser.closeHttp2Stream = (code: number) => {
      if (stream.closed || stream.destroyed) return;
      if (this.#local === undefined) {
        // The peer's close: answer with our end of the stream.
        stream.end();
        return;
      }
      const timer = setTimeout(() => resetNow(code), closeTimeout);
      stream.once("close", () => clearTimeout(timer));
    };
    const onClose = parser.onCloseWebTransportSession.bind(parser);
    parser.onCloseWebTransportSession = (info: { code: number; reason: string }) => {
      this.#peerClose ??= { code: info.code, reason: info.reason };
      onClose(info);
    };
  }

  /**
   * Follows every stream from its creation, for two library gaps. It throws
   * (an uncaught exception, from a socket callback) when the peer sends data on
   * a stream id that is ours to open; that is a protocol violation here and
   * closes the connection. And it keeps every stream for the life of the
   * connection, never returning the stream's credit after a normal end; see
   * {@link StreamLife}.
   */
  #interceptStreams(internals: LibSessionInternals): void {
    const onStream = internals.onStream.bind(internals);
    internals.onStream = (event: LibStreamEvent) => {
      const id = event.stream.streamid;
      if (!event.incoming && !this.#opening) {
        this.#violation(`Peer used stream id ${id}, which is ours to open`);
        return;
      }
      if (event.incoming && event.bidirectional) {
        // Ids only grow; an old one is a stream already ended and released.
        if (id <= this.#lastIncomingId) {
          this.#violation(`Peer reused stream id ${id}`);
          return;
        }
        this.#lastIncomingId = id;
      }
      onStream(event);
      const object = event.stream.jsobj;
      if (event.bidirectional && object?.readable !== undefined) {
        readOnDemand(object);
        this.#lives.set(object.readable, new StreamLife(event.stream, this.#parser));
      }
    };
    const onMaxStreams = this.#parser.onMaxStreamBiDi.bind(this.#parser);
    this.#parser.onMaxStreamBiDi = (max: bigint | undefined) => {
      onMaxStreams(max);
      const credit = this.#credit;
      this.#credit = deferred();
      credit.resolve();
    };
  }

  #violation(reason: string): void {
    // Not from inside the parser, which goes on with the rest of its buffer.
    queueMicrotask(() => this.close(CloseCode.ProtocolViolation, reason));
  }

  async openStream(): Promise<Stream> {
    for (;;) {
      if (this.#ended || this.#local !== undefined) {
        throw new Error("Cannot open stream: connection is closed");
      }
      const credit = this.#credit.promise;
      let inner: LibBidiStream;
      try {
        let opened: Promise<LibBidiStream>;
        // The library opens it synchronously, or refuses when the peer's limit is reached.
        this.#opening = true;
        try {
          opened = this.#session.createBidirectionalStream();
        } finally {
          this.#opening = false;
        }
        inner = await whileOpen(opened, [this.#gone]);
      } catch (err) {
        if (this.#ended || this.#local !== undefined) {
          throw new Error("Cannot open stream: connection is closed", { cause: err });
        }
        if ((err as Error).name !== "QuotaExceededError") {
          throw new Error(`Cannot open stream: ${(err as Error).message}`, { cause: err });
        }
        // As QUIC does: wait until the peer allows more (a stream of ours ends).
        await whileOpen(credit, [this.#gone]).catch(() => {});
        continue;
      }
      return new H2Stream(inner, this.#gone, this.#lives.get(inner.readable));
    }
  }

  incomingStreams(): AsyncIterable<Stream> {
    return { [Symbol.asyncIterator]: () => this.#nextIncoming() };
  }

  async *#nextIncoming(): AsyncGenerator<Stream, void, undefined> {
    for (;;) {
      if (this.#ended) return;
      let result: ReadableStreamReadResult<LibBidiStream>;
      try {
        result = await this.#incoming.read();
      } catch {
        return;
      }
      if (result.done || this.#ended) return;
      yield new H2Stream(result.value, this.#gone, this.#lives.get(result.value.readable));
    }
  }

  close(code = 0, reason = ""): void {
    if (this.#local !== undefined || this.#ended) return;
    if (!Number.isInteger(code) || code < 0 || code > 0xffff_ffff) {
      throw new RangeError(
        `Cannot close connection: code must be a 32-bit unsigned integer, got ${code}`,
      );
    }
    this.#local = { code, reason, remote: false };
    this.#session.close({ closeCode: code, reason });
  }
}

/**
 * One library stream, followed to its end at both sides so that it can be
 * released. The library keeps every stream in its map for the life of the
 * connection (3–7 KB each, measured) and returns a stream's credit to the peer only
 * after a reset, never after a normal end; the peer then runs out of streams
 * after `maxStreams`. Here a stream is released — dropped from the map, its
 * credit returned once — when the peer will send nothing more on it (its FIN
 * or RESET_STREAM arrived) and we send nothing more (our FIN went out, we
 * reset it, or the peer asked us to stop). A STOP_SENDING is answered with
 * RESET_STREAM, as QUIC does, so that both sides reach that point.
 */
class StreamLife {
  readonly #native: LibNativeStream;
  readonly #parser: LibCapsuleParser;
  #peerDone = false;
  #selfDone = false;
  #released = false;

  constructor(native: LibNativeStream, parser: LibCapsuleParser) {
    this.#native = native;
    this.#parser = parser;
    const onFin = native.onFin.bind(native);
    native.onFin = () => {
      onFin();
      this.#peerDone = true;
      this.#check();
    };
    const onSignal = native.onStreamSignal.bind(native);
    native.onStreamSignal = (type: "resetStream" | "stopSending") => {
      onSignal(type);
      if (type === "resetStream") {
        this.#peerDone = true;
      } else if (!this.#selfDone) {
        native.resetStream(0);
      }
      this.#selfDone ||= type === "stopSending";
      this.#check();
    };
    const resetStream = native.resetStream.bind(native);
    native.resetStream = (code: number) => {
      resetStream(code);
      this.#selfDone = true;
      this.#check();
    };
    // Reached from both directions' ends; the credit must go back once.
    const onClose = native.onClose.bind(native);
    let closed = false;
    native.onClose = () => {
      if (closed) return;
      closed = true;
      onClose();
    };
  }

  /** Our FIN is out. */
  finished(): void {
    this.#selfDone = true;
    this.#check();
  }

  #check(): void {
    if (this.#released || !this.#peerDone || !this.#selfDone) return;
    this.#released = true;
    const native = this.#native;
    native.outgochunks.length = 0; // left only after a reset: never to be sent
    try {
      this.#parser.scheduler.Unregister(native.streamid);
    } catch {
      // Unregistered already, when its FIN went out.
    }
    this.#parser.wtstreams.delete(native.streamid);
    if (!native.incomingClosed_ || !native.outgoingClosed_) {
      native.incomingClosed_ = true;
      native.outgoingClosed_ = true;
      native.onClose(); // returns the credit of a stream the peer opened
    }
  }
}

/**
 * The library moves received bytes into the stream's readable as they arrive,
 * pausing only when a waiting read finds the queue over full; with nobody
 * reading it never pauses, and counting the bytes as consumed it keeps opening
 * the flow-control window, so a peer could fill memory without bound. Here it
 * pauses whenever the queue is full and no read waits; the next read resumes
 * it. Unread bytes then stay within the flow-control windows.
 */
function readOnDemand(object: LibStreamObject): void {
  const commit = object.commitReadBuffer.bind(object);
  object.commitReadBuffer = (buffer: unknown) => {
    const result = commit(buffer);
    const room = object.readableController?.desiredSize ?? 1;
    if (object.pendingoperationRead === null && room <= 0) result.stopReading = true;
    return result;
  };
}

/**
 * Datagrams and unidirectional streams are not part of the contract, but a
 * peer may still send them; the library would queue them without bound.
 */
function discardUnused(session: LibSession): void {
  const drain = async <T>(readable: ReadableStream<T>, each: (item: T) => void) => {
    const reader = readable.getReader();
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) return;
        each(value);
      }
    } catch {
      // Errored on close: nothing left to drop.
    }
  };
  drain(session.datagrams.readable, () => {});
  drain(session.incomingUnidirectionalStreams, (s) => {
    s.cancel().catch(() => {});
  });
}

class H2Stream implements Stream {
  readonly readable: ReadableStream<Uint8Array>;
  readonly writable: WritableStream<Uint8Array>;
  readonly #reader: ReadableStreamDefaultReader<Uint8Array>;
  readonly #writer: WritableStreamDefaultWriter<Uint8Array>;
  readonly #connectionGone: Cutoff;
  readonly #reset = new Cutoff();
  #readController: ReadableStreamDefaultController<Uint8Array> | undefined;
  #writeController: WritableStreamDefaultController | undefined;

  constructor(inner: LibBidiStream, connectionGone: Cutoff, life: StreamLife | undefined) {
    this.#reader = inner.readable.getReader();
    this.#writer = inner.writable.getWriter();
    this.#reader.closed.catch(() => {});
    this.#writer.closed.catch(() => {});
    this.#connectionGone = connectionGone;

    this.readable = new ReadableStream<Uint8Array>({
      start: (controller) => {
        this.#readController = controller;
      },
      // No race with the connection's end here: the library errors unfinished
      // readables itself, and data that did arrive stays readable.
      pull: async (controller) => {
        const result = await this.#reader.read();
        if (result.done) controller.close();
        else controller.enqueue(result.value);
      },
      cancel: async (reason) => {
        await this.#reader.cancel(reason).catch(() => {});
      },
    }, { highWaterMark: 0 });

    // One chunk in flight: the library resolves a write once the chunk has gone
    // into HTTP/2, so a slow peer (flow control) holds the writer back.
    this.writable = new WritableStream<Uint8Array>({
      start: (controller) => {
        this.#writeController = controller;
      },
      write: (chunk) => this.#whileOpen(this.#writer.write(chunk)),
      close: async () => {
        await this.#whileOpen(this.#writer.close());
        life?.finished();
      },
      abort: async (reason) => {
        await this.#writer.abort(reason).catch(() => {});
      },
    });
  }

  /** The library leaves writes pending forever when the session dies under them. */
  #whileOpen<T>(p: Promise<T>): Promise<T> {
    return whileOpen(p, [this.#connectionGone, this.#reset]);
  }

  reset(code: number): void {
    if (this.#reset.error !== undefined) return;
    const err = new Error(`Stream reset with code ${code}`);
    this.#reset.fire(err);
    try {
      this.#readController?.error(err);
    } catch {
      // Already closed.
    }
    try {
      this.#writeController?.error(err);
    } catch {
      // Already closed.
    }
    // RESET_STREAM and STOP_SENDING. The library clamps stream codes to 0–255.
    const reason = { code };
    this.#writer.abort(reason).catch(() => {});
    this.#reader.cancel(reason).catch(() => {});
  }
}

// ---- small helpers --------------------------------------------------------------------------

/**
 * Something that can end (a connection, a stream) and wake whoever waits on it.
 * Not a promise raced against: a long-lived promise keeps every race's result
 * alive through its reactions, and with them every stream ever opened.
 */
class Cutoff {
  #error: Error | undefined;
  readonly #listeners = new Set<(err: Error) => void>();

  get error(): Error | undefined {
    return this.#error;
  }

  fire(err: Error): void {
    if (this.#error !== undefined) return;
    this.#error = err;
    for (const listener of this.#listeners) listener(err);
    this.#listeners.clear();
  }

  on(listener: (err: Error) => void): void {
    this.#listeners.add(listener);
  }

  off(listener: (err: Error) => void): void {
    this.#listeners.delete(listener);
  }
}

/** Settles as `p` does, or rejects as soon as one of `cutoffs` fires. */
function whileOpen<T>(p: Promise<T>, cutoffs: Cutoff[]): Promise<T> {
  p.catch(() => {});
  for (const c of cutoffs) {
    if (c.error !== undefined) return Promise.reject(c.error);
  }
  return new Promise<T>((resolve, reject) => {
    const stop = (err: Error) => {
      done();
      reject(err);
    };
    const done = () => {
      for (const c of cutoffs) c.off(stop);
    };
    for (const c of cutoffs) c.on(stop);
    p.then((value) => {
      done();
      resolve(value);
    }, (err) => {
      done();
      reject(err);
    });
  });
}

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve: () => void = () => {};
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}
