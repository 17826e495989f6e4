// The one contract every transport adapter implements: listen, dial, connections with bidirectional streams.

/** A host and port. `host` is an IP literal (IPv6 without brackets) or a name. */
export interface SocketAddress {
  /** An IP literal (IPv6 without brackets) or a name. */
  readonly host: string;
  /** The port, 0–65535; 0 asks `listen` for a free one. */
  readonly port: number;
}

/**
 * This node's TLS identity, made at start-up (see `transport/cert.ts`): a
 * self-signed ECDSA P-256 certificate (CA:FALSE) whose single SAN DNS name is
 * derived from the node's PeerId. Its SHA-256 goes into the node's signed peer
 * entry, so a dialer knows exactly which certificate to expect.
 */
export interface TlsIdentity {
  /** Certificate, DER. */
  readonly certificateDer: Uint8Array;
  /** Certificate, PEM. */
  readonly certificatePem: string;
  /** Private key, PKCS#8 PEM. */
  readonly privateKeyPem: string;
  /** SHA-256 of the DER certificate. */
  readonly certificateHash: Uint8Array;
  /** The DNS name in the certificate's SAN (the TLS server name to dial with). */
  readonly serverName: string;
}

/** What a dialer needs to reach and authenticate a peer. */
export interface DialTarget {
  /** Where the peer listens. */
  readonly address: SocketAddress;
  /**
   * SHA-256 of the peer's certificate (from its signed peer entry or its
   * PeerAddr), pinned: a peer presenting any other certificate fails the dial.
   */
  readonly certificateHash: Uint8Array;
  /** The peer's TLS server name (its certificate's SAN). */
  readonly serverName: string;
}

/**
 * Why and by whom a connection was closed. A connection lost without a close
 * frame (idle timeout, network error, transport shut down) reports code 0,
 * `remote: true` and the error text as `reason`.
 */
export interface CloseInfo {
  /** Application close code (DESIGN.md §5 codes, e.g. 400 protocol violation); 0 for a normal close. */
  readonly code: number;
  /** The reason text sent with the close, or the error text of a lost connection. */
  readonly reason: string;
  /** True when the other side (or the network) closed it, false when this side did. */
  readonly remote: boolean;
}

/**
 * A bidirectional byte stream. `readable` ends when the peer finishes its side;
 * `writable` applies backpressure (its `ready` promise waits while the peer
 * is slow), so a fast writer cannot grow memory without bound.
 *
 * Runtime limits, measured: Deno's QUIC cannot send RESET_STREAM, so after
 * `reset()` on Deno the peer sees a clean end of stream (the library closes
 * the whole connection with a code after a protocol violation, so nothing
 * depends on the reset itself). Bun's `node:quic` grants flow credit when data
 * arrives, not when it is read, so a Bun reader cannot slow a sender down; the
 * bun_quic adapter resets a stream whose reader falls `maxUnreadBytes`
 * (64 MiB) behind, which keeps memory bounded.
 */
export interface Stream {
  /** Bytes from the peer; ends when the peer finishes its side. */
  readonly readable: ReadableStream<Uint8Array>;
  /** Bytes to the peer; closing it finishes this side. */
  readonly writable: WritableStream<Uint8Array>;
  /** Aborts both directions at once (e.g. after a protocol violation). Idempotent. */
  reset(code: number): void;
}

/** An authenticated connection to one peer. */
export interface Connection {
  /** The peer's address as seen by this side. */
  readonly remoteAddress: SocketAddress;
  /**
   * SHA-256 of the peer's certificate when the transport verified it (always
   * on the dialing side, where it equals the pinned hash); `undefined` on an
   * accepting side that cannot see the client's certificate. Peer identity is
   * proven above the transport, by the bond handshake.
   */
  readonly remoteCertificateHash: Uint8Array | undefined;
  /** Opens a new bidirectional stream. Rejects once the connection is closed. */
  openStream(): Promise<Stream>;
  /** Streams the peer opens, in order; ends when the connection closes. */
  incomingStreams(): AsyncIterable<Stream>;
  /** Closes with an application code and reason, which reach the peer. Idempotent. */
  close(code?: number, reason?: string): void;
  /** Resolves (never rejects) when the connection is closed, by either side. */
  readonly closed: Promise<CloseInfo>;
}

/** Accepts incoming connections at a local address. */
export interface Listener {
  /** The bound address (with the real port when 0 was asked for). */
  readonly address: SocketAddress;
  /** Incoming connections, after their TLS handshake; ends when the listener closes. */
  connections(): AsyncIterable<Connection>;
  /** Stops accepting; established connections stay open. Idempotent. */
  close(): Promise<void>;
}

/** Options of {@link Transport.dial}. */
export interface DialOptions {
  /** Cancels the dial; the promise rejects with the signal's reason. */
  readonly signal?: AbortSignal;
}

/** One way of moving bytes between nodes. */
export interface Transport {
  /** Adapter name: `deno_quic`, `bun_quic`, `webtransport_h2`, `memory`. */
  readonly name: string;
  /**
   * Wire family: adapters with the same family interoperate (`quic` for
   * deno_quic and bun_quic, `h2` for webtransport_h2, `memory`).
   */
  readonly family: string;
  /** Binds and listens. Port 0 picks a free port. */
  listen(address: SocketAddress): Promise<Listener>;
  /** Connects to a peer and verifies its pinned certificate. */
  dial(target: DialTarget, options?: DialOptions): Promise<Connection>;
  /** Closes every listener and connection this transport made. Idempotent. */
  close(): Promise<void>;
}

/** What a transport is made from: this node's TLS identity. */
export interface TransportContext {
  /** The certificate and key the transport presents and the server name it answers to. */
  readonly identity: TlsIdentity;
}

/**
 * Makes a transport for a node (`Network.builder().withTransport(factory)`).
 * Called once per node, when the network is built.
 */
export type TransportFactory = (context: TransportContext) => Transport | Promise<Transport>;

/** Close codes used by the library (DESIGN.md §5, the Rust crate's values). */
export const CloseCode = {
  /** Normal close. */
  Normal: 0,
  /** Graceful departure. */
  Departure: 101,
  /** Malformed frame, oversized frame, unexpected message. */
  ProtocolViolation: 400,
  /** Handshake authentication failed (bad key proof or signature). */
  Unauthorized: 401,
  /** Wrong network. */
  WrongNetwork: 30400,
  /** Unknown group. */
  UnknownGroup: 30404,
  /** Duplicate bond (the tie-break closed this one). */
  DuplicateBond: 30405,
  /** Handshake timed out. */
  HandshakeTimeout: 30408,
  /** Too many bonds. */
  TooManyBonds: 30429,
} as const;
