// Network: a node's identity, transport, connections and discovery (catalog sync and gossip over every connection).

import { toHex } from "../primitives/bytes.ts";
import { type GroupId, NetworkId, PeerId } from "../primitives/ids.ts";
import { createTlsIdentity, serverNameFor } from "../../transport/cert.ts";
import { FramedStream } from "../../transport/framed.ts";
import {
  CloseCode,
  type Connection,
  type Listener,
  type SocketAddress,
  type Stream,
  type TlsIdentity,
  type Transport,
  type TransportFactory,
} from "../../transport/types.ts";
import { Catalog, type DiscoveryEvents } from "./catalog.ts";
import {
  decodeSignedEntry,
  encodeSignedEntry,
  InvalidEntryError,
  type PeerEntry,
  type SignedPeerEntry,
  signEntry,
  verifyEntry,
} from "./entry.ts";
import { Identity } from "./identity.ts";
import { Groups } from "../groups/groups.ts";
import { NetworkGroupHost } from "../groups/host.ts";
import { PeerAddr, type TransportAddress } from "./peer_addr.ts";
import { checkLogger, Log, type Logger } from "../log/logger.ts";
import { formatPrometheus, type NodeMetrics } from "../metrics/prometheus.ts";
import { checkMetricsConfig, type MetricsConfig } from "../metrics/config.ts";
import type { MetricsServer } from "../metrics/server.ts";

/** Stream purpose of discovery streams (the `p` field of a stream's first frame). */
export const DISCOVERY_PURPOSE = "disc";

/** Most entries one discovery message may carry. */
export const MAX_ENTRIES_PER_MESSAGE = 10_000;

/** Timing of discovery, in milliseconds. */
export interface DiscoveryConfig {
  /** How often this node re-signs and re-announces its entry, purges stale peers and re-dials bootstrap peers (default 15 000). */
  readonly announceInterval: number;
  /** A peer whose entry has not been refreshed for this long is purged (default 10 × `announceInterval`). */
  readonly staleAfter: number;
  /** How long {@link Discovery.syncWith} waits, dial included (default 10 000). */
  readonly syncTimeout: number;
}

/** Settings the groups layer reads (stored by the network, used by bonds). */
export interface GroupsConfig {
  /** How long a bond handshake may take, in milliseconds (default 5 000). */
  readonly handshakeTimeout?: number;
  /** Most bonds (and bond handshakes in progress) on this node over all groups (default 1 024); more are refused with 30429. */
  readonly maxBonds?: number;
  /** Largest bond message in bytes (default 16 MiB); a peer sending more loses its connection (400). */
  readonly maxMessageSize?: number;
}

/** The first frame of every stream: its purpose, plus whatever that purpose needs. */
export interface StreamHeader {
  /** The purpose (`"disc"`, `"bond"`, …). */
  readonly p: string;
  readonly [key: string]: unknown;
}

/** An incoming stream whose purpose is not discovery, handed to a registered handler. */
export interface IncomingStream {
  /** The peer, when its discovery hello was already received on this connection. */
  readonly peerId: PeerId | undefined;
  /** The connection the stream came on. */
  readonly connection: Connection;
  /** The stream, framed; its header frame was already read. The handler owns it. */
  readonly stream: FramedStream<unknown>;
  /** The header frame. */
  readonly header: StreamHeader;
}

/** Handles incoming streams of one purpose (see {@link Network.handleStreams}). */
export type StreamHandler = (incoming: IncomingStream) => void;

/** Called for every connection that completed its discovery hello and won the duplicate tie-break. */
export type ConnectionListener = (peerId: PeerId, connection: Connection) => void;

/** Discovery messages after the header frame. */
type DiscMessage =
  | { t: "hello"; me: Uint8Array; catalog: Uint8Array[] }
  | { t: "gossip"; entries: Uint8Array[] };

/** Why a peer's discovery message is refused: the connection is closed with `code`. */
class PeerViolation extends Error {
  readonly code: number;

  constructor(code: number, message: string) {
    super(message);
    this.name = "PeerViolation";
    this.code = code;
  }
}

interface Link {
  readonly conn: Connection;
  /** Who dialed: this node ("local") or the peer ("remote"). */
  readonly initiator: "local" | "remote";
  /** The peer's id hex, once its hello was accepted. */
  peerHex: string | undefined;
  /**
   * When the peer's process started (`version.start` of the entry in its
   * hello): a restarted peer has a later one, and its new connection replaces
   * one left over from its previous run.
   */
  peerStart: number | undefined;
  /** Open discovery streams on this connection, for gossip. */
  readonly streams: Set<FramedStream<unknown>>;
  /** Resolves with true once the first hello was processed, false when the connection closed before. */
  readonly ready: Promise<boolean>;
  markReady(ok: boolean): void;
}

function isBytesArray(v: unknown): v is Uint8Array[] {
  return Array.isArray(v) && v.length <= MAX_ENTRIES_PER_MESSAGE &&
    v.every((x) => x instanceof Uint8Array);
}

function parseDiscMessage(raw: unknown): DiscMessage {
  if (typeof raw !== "object" || raw === null) {
    throw new PeerViolation(CloseCode.ProtocolViolation, "Discovery message is not a map");
  }
  const m = raw as Record<string, unknown>;
  if (
    m.t === "hello" && m.me instanceof Uint8Array && isBytesArray(m.catalog)
  ) {
    return { t: "hello", me: m.me, catalog: m.catalog };
  }
  if (m.t === "gossip" && isBytesArray(m.entries)) {
    return { t: "gossip", entries: m.entries };
  }
  throw new PeerViolation(CloseCode.ProtocolViolation, "Malformed discovery message");
}

function parseListenAddress(s: string): SocketAddress {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:\[\]]+)):(\d{1,5})$/.exec(s);
  const port = m === null ? NaN : Number(m[3]);
  if (m === null || port > 65535) {
    throw new RangeError(
      `Cannot set listen address: expected "host:port" or "[ipv6]:port", got ${JSON.stringify(s)}`,
    );
  }
  return { host: m[1] ?? m[2] ?? "", port };
}

/** The host others should dial: a wildcard bind is advertised as loopback. */
function advertisedHost(host: string): string {
  if (host === "0.0.0.0") return "127.0.0.1";
  if (host === "::") return "::1";
  return host;
}

/** This node: its id, address and certificate. */
export class LocalNode {
  readonly #network: Network;

  /** @internal created by {@link Network} */
  constructor(network: Network) {
    this.#network = network;
  }

  /**
   * This node's PeerId: its Ed25519 public key.
   *
   * @returns the id other nodes know this one by
   */
  id(): PeerId {
    return this.#network.identity.peerId;
  }

  /**
   * What another node needs to dial this one; its string form goes on a
   * command line. A wildcard listen address (`0.0.0.0`, `::`) is advertised
   * as loopback (`127.0.0.1`, `::1`).
   *
   * @returns this node's id, listen address and certificate hash
   */
  addr(): PeerAddr {
    return this.#network.localAddr;
  }

  /** This node's TLS certificate (DER, a copy); its SHA-256 is in {@link addr}. */
  certificate(): Uint8Array {
    return this.#network.tls.certificateDer.slice();
  }

  /** The tags this node announces. */
  tags(): readonly string[] {
    return this.#network.tags;
  }
}

/** Discovery: how this node finds peers and what it knows about them. */
export class Discovery {
  readonly #network: Network;

  /** @internal created by {@link Network} */
  constructor(network: Network) {
    this.#network = network;
  }

  /**
   * Connects to each peer that is not connected yet (fire and forget); the
   * connection then exchanges catalogs. Failures are silent; watch
   * {@link events} or use {@link syncWith} to wait.
   *
   * @param addrs one address or several, as `PeerAddr` or its string form
   * @throws {TypeError | RangeError} when a string does not parse as a PeerAddr
   */
  dial(addrs: PeerAddr | string | readonly (PeerAddr | string)[]): void {
    const list = Array.isArray(addrs) ? addrs : [addrs];
    for (const a of list) this.#network.dialAddr(typeof a === "string" ? PeerAddr.parse(a) : a);
  }

  /**
   * A full catalog exchange with a peer, both ways, dialing it if needed.
   * Resolves once the peer's catalog was received and merged. Gives up after
   * {@link DiscoveryConfig.syncTimeout}, dial included.
   *
   * @param addr the peer, as `PeerAddr` or its string form
   * @param options `signal` cancels the wait (the promise rejects with its reason)
   * @returns nothing; the peer's entries are in {@link catalog} once it resolves
   * @throws {TypeError | RangeError} (synchronously) when `addr` is a string that does not parse
   * @throws {Error} (as a rejection) when the peer cannot be reached or the exchange fails in time
   */
  syncWith(addr: PeerAddr | string, options: { signal?: AbortSignal } = {}): Promise<void> {
    return this.#network.syncWith(typeof addr === "string" ? PeerAddr.parse(addr) : addr, options);
  }

  /**
   * A snapshot of the catalog (this node included), keyed by PeerId hex.
   *
   * @returns a new map; later discoveries do not change it
   */
  catalog(): ReadonlyMap<string, PeerEntry> {
    return this.#network.catalog.snapshot();
  }

  /**
   * Discovery events from now on (discovered, updated, departed), this
   * node's own re-announcements included. Break out of `for await` or call
   * `close()` to unsubscribe.
   *
   * @param options `capacity`: events buffered before the oldest are dropped (default 1 024)
   * @returns a new subscription
   * @throws {RangeError} when `capacity` is not a positive integer
   */
  events(options: { capacity?: number } = {}): DiscoveryEvents {
    return this.#network.catalog.events(options);
  }

  /**
   * This node's current signed entry.
   *
   * @returns the entry as last signed and announced
   */
  me(): SignedPeerEntry {
    return this.#network.signedMe;
  }
}

/**
 * Builds a {@link Network}; every `with…` returns the builder. Get one from
 * {@link Network.builder}.
 *
 * @example Two nodes in one process, on the in-memory transport
 * ```ts
 * import { Network } from "@mosaik/mosaik";
 * import { MemoryNetwork } from "@mosaik/mosaik/transport/memory";
 *
 * await using net = new MemoryNetwork();
 * await using a = await Network.builder("my-app")
 *   .withTransport(net.transport())
 *   .withTags("matcher")
 *   .build();
 * await using b = await Network.builder("my-app")
 *   .withTransport(net.transport())
 *   .withBootstrap(a.local().addr()) // or its string form, e.g. from a command line
 *   .build();
 * await b.discovery().syncWith(a.local().addr());
 * const entry = b.discovery().catalog().get(a.local().id().toHex());
 * if (entry?.tags[0] !== "matcher") throw new Error("b knows a and its tags");
 * ```
 */
export class NetworkBuilder {
  readonly #name: string;
  #secretKey: Uint8Array | undefined;
  #transport: TransportFactory | undefined;
  #listen = "0.0.0.0:0";
  readonly #bootstrap: PeerAddr[] = [];
  readonly #tags: string[] = [];
  #groupsConfig: GroupsConfig = {};
  #discovery: Partial<DiscoveryConfig> = {};
  #metrics: MetricsConfig | undefined;
  #logger: Logger | undefined;

  /** @internal use {@link Network.builder} */
  constructor(name: string) {
    NetworkId.fromName(name); // validates early
    this.#name = name;
  }

  /**
   * The node's Ed25519 secret key; default a random one. A member that
   * restarts on its durable store must come back with the same key.
   *
   * @param secretKey 32 bytes (copied); checked by {@link build}
   * @returns this builder
   */
  withSecretKey(secretKey: Uint8Array): this {
    this.#secretKey = secretKey.slice();
    return this;
  }

  /**
   * The transport; default: raw QUIC of the runtime (`deno_quic` on Deno,
   * which needs `--unstable-net`; `bun_quic` on Bun).
   *
   * @param factory makes the transport from this node's TLS identity, e.g.
   *   `new MemoryNetwork().transport()` from `@mosaik/mosaik/transport/memory`
   * @returns this builder
   */
  withTransport(factory: TransportFactory): this {
    this.#transport = factory;
    return this;
  }

  /**
   * Where to listen, `"host:port"` or `"[ipv6]:port"` (default `"0.0.0.0:0"`:
   * every interface, a free port).
   *
   * @param address the address to bind, e.g. `"127.0.0.1:0"`
   * @returns this builder
   * @throws {RangeError} when it does not parse
   */
  withListenAddress(address: string): this {
    parseListenAddress(address);
    this.#listen = address;
    return this;
  }

  /**
   * Peers to dial at start (and again on every announce tick while not
   * connected). Additive.
   *
   * @param addrs peer addresses, as `PeerAddr` or its string form
   * @returns this builder
   * @throws {TypeError | RangeError} when a string does not parse as a PeerAddr
   */
  withBootstrap(...addrs: (PeerAddr | string)[]): this {
    for (const a of addrs) this.#bootstrap.push(typeof a === "string" ? PeerAddr.parse(a) : a);
    return this;
  }

  /**
   * Tags announced in this node's entry, for peers to select by. Additive.
   *
   * @param tags free-form labels, e.g. `"matcher"`
   * @returns this builder
   */
  withTags(...tags: string[]): this {
    this.#tags.push(...tags);
    return this;
  }

  /**
   * Settings of the groups layer (stored; bonds use them). Replaces an
   * earlier call.
   *
   * @param config handshake timeout, bond limit and message size limit; unset fields keep their defaults
   * @returns this builder
   * @throws {RangeError} when a given value is not a positive integer
   */
  withGroupsConfig(config: GroupsConfig): this {
    for (const name of ["handshakeTimeout", "maxBonds", "maxMessageSize"] as const) {
      const v = config[name];
      if (v !== undefined && (!Number.isSafeInteger(v) || v < 1)) {
        throw new RangeError(`Invalid groups config: ${name} must be a positive integer`);
      }
    }
    this.#groupsConfig = { ...config };
    return this;
  }

  /**
   * Discovery timing (see {@link DiscoveryConfig}); mostly for tests.
   * Merged into what earlier calls set.
   *
   * @param config the fields to set, in milliseconds; checked by {@link build}
   * @returns this builder
   */
  withDiscoveryConfig(config: Partial<DiscoveryConfig>): this {
    this.#discovery = { ...this.#discovery, ...config };
    return this;
  }

  /**
   * Serves this node's metrics over HTTP in the Prometheus text format
   * (0.0.4) at `/metrics`: every group running on the node, its bonds, and
   * network-level gauges (the README's "Metrics" section lists every name
   * and label). Any other path answers 404. Off by default. The server
   * starts with {@link build} and stops with `network.close()`.
   *
   * @param config `port` (0 picks a free one, see `network.metricsAddress()`)
   *   and `host` (default `"127.0.0.1"`, this machine only)
   * @returns this builder
   * @throws {RangeError} when the port is not an integer in 0–65535 or the host is empty
   *
   * @example
   * ```ts
   * import { Network } from "@mosaik/mosaik";
   * import { MemoryNetwork } from "@mosaik/mosaik/transport/memory";
   *
   * await using net = new MemoryNetwork();
   * await using network = await Network.builder("my-app")
   *   .withTransport(net.transport())
   *   .withMetrics({ port: 0 })
   *   .build();
   * const { host, port } = network.metricsAddress()!;
   * const res = await fetch(`http://${host}:${port}/metrics`);
   * const text = await res.text();
   * if (!text.includes("mosaik_network_bonds 0")) throw new Error("no bonds yet");
   * ```
   */
  withMetrics(config: MetricsConfig): this {
    checkMetricsConfig(config);
    this.#metrics = { ...config };
    return this;
  }

  /**
   * Where the node's structured log records go (role changes, elections,
   * bonds up and down with their close codes, membership changes, merges,
   * leaving). Without one, the library logs nothing. No record carries a
   * group key, the node's secret key or a TLS private key.
   *
   * @param logger `{ level, log(record) }`, e.g. `consoleLogger("info")`
   * @returns this builder
   * @throws {TypeError} when `logger` has no `log` function
   * @throws {RangeError} when its level is not debug, info, warn, error or off
   */
  withLogger(logger: Logger): this {
    checkLogger(logger);
    this.#logger = logger;
    return this;
  }

  /**
   * Generates or loads the identity, starts the transport and listener,
   * signs this node's entry and dials the bootstrap peers (without waiting
   * for them).
   *
   * @returns the running network; close it with `close()` or `await using`
   * @throws {TypeError | RangeError} on a bad secret key
   * @throws {RangeError} when a discovery timing is not a positive number
   * @throws {Error} when the transport cannot start or listen, or the metrics endpoint
   *   cannot bind (e.g. the port is taken); what was started is closed again
   */
  async build(): Promise<Network> {
    const announceInterval = this.#discovery.announceInterval ?? 15_000;
    const discovery: DiscoveryConfig = {
      announceInterval,
      staleAfter: this.#discovery.staleAfter ?? 10 * announceInterval,
      syncTimeout: this.#discovery.syncTimeout ?? 10_000,
    };
    for (const [k, v] of Object.entries(discovery)) {
      if (typeof v !== "number" || !(v > 0) || !Number.isFinite(v)) {
        throw new RangeError(
          `Cannot build Network: ${k} must be a positive number of milliseconds`,
        );
      }
    }
    const identity = this.#secretKey === undefined
      ? await Identity.generate()
      : await Identity.fromSecretKey(this.#secretKey);
    const tls = await createTlsIdentity(serverNameFor(identity.peerId.toHex()));
    const factory = this.#transport ??
      await (await import("../../transport/default.ts")).defaultTransport();
    const transport = await factory({ identity: tls });
    let listener: Listener;
    try {
      listener = await transport.listen(parseListenAddress(this.#listen));
    } catch (err) {
      await transport.close();
      throw err;
    }
    const network = new Network({
      networkId: NetworkId.fromName(this.#name),
      identity,
      tls,
      transport,
      listener,
      bootstrap: [...this.#bootstrap],
      tags: [...this.#tags],
      groupsConfig: this.#groupsConfig,
      discovery,
      ...(this.#logger === undefined ? {} : { logger: this.#logger }),
    });
    try {
      await network.start();
      if (this.#metrics !== undefined) await network.startMetrics(this.#metrics);
    } catch (err) {
      await network.close();
      throw err;
    }
    return network;
  }
}

interface NetworkInit {
  networkId: NetworkId;
  identity: Identity;
  tls: TlsIdentity;
  transport: Transport;
  listener: Listener;
  bootstrap: PeerAddr[];
  tags: string[];
  groupsConfig: GroupsConfig;
  discovery: DiscoveryConfig;
  logger?: Logger;
}

/**
 * A node on a mosaik network: its identity, a transport with one connection
 * per peer, and discovery over those connections.
 *
 * Every connection starts with a discovery stream (opened by the dialer) on
 * which both sides send a hello: their signed entry and their full catalog.
 * The dialer's transport pinned the certificate hash of the peer's address,
 * so its hello must carry the entry with that hash. Later entry
 * changes are gossiped on every open discovery stream. Every entry is
 * verified before it is stored; a peer that sends a malformed message or a
 * bad entry has its connection closed with 400 (30400 for a hello of another
 * network, 401 for a hello that does not match the dialed peer).
 *
 * When two peers dial each other at once, the connection initiated by the
 * lower PeerId is kept and the other closed with `CloseCode.DuplicateBond`.
 *
 * The first frame of every stream names its purpose (`{ p: "disc" }`);
 * other purposes (`"bond"`) go to handlers registered with
 * {@link handleStreams}; a stream with no handler is reset.
 */
export class Network implements AsyncDisposable {
  /** This network's id: `blake3(name)`. */
  readonly networkId: NetworkId;
  /** @internal */
  readonly identity: Identity;
  /** @internal */
  readonly tls: TlsIdentity;
  /** @internal */
  readonly catalog: Catalog;
  /** @internal */
  readonly localAddr: PeerAddr;
  /** The tags this node announces. */
  readonly tags: readonly string[];
  /** Settings of the groups layer, as given to the builder. */
  readonly groupsConfig: GroupsConfig;
  /** Discovery timing in effect. */
  readonly discoveryConfig: DiscoveryConfig;
  /** @internal where this node's log records go */
  readonly log: Log;

  readonly #transport: Transport;
  readonly #listener: Listener;
  readonly #bootstrap: readonly PeerAddr[];
  readonly #start = Date.now();
  readonly #local: LocalNode;
  readonly #discovery: Discovery;
  readonly #links = new Set<Link>();
  readonly #byPeer = new Map<string, Link>();
  readonly #dialing = new Map<string, Promise<Link>>();
  readonly #tasks = new Set<Promise<unknown>>();
  readonly #handlers = new Map<string, StreamHandler>();
  readonly #connectionListeners = new Set<ConnectionListener>();
  /** Certificates learned from discovery, by hash hex (self-certifying: keyed by their own hash). */
  #update = 0;
  #duplicatesClosed = 0;
  #groups: GroupId[] = [];
  #signedMe: SignedPeerEntry | undefined;
  #announcing: Promise<void> = Promise.resolve();
  #timer: ReturnType<typeof setInterval> | undefined;
  #closing: Promise<void> | undefined;
  #groupsHost: NetworkGroupHost | undefined;
  /** Aborts dials in progress when the network closes. */
  readonly #closingSignal = new AbortController();
  #groupsApi: Groups | undefined;
  #metricsServer: MetricsServer | undefined;

  /** @internal use {@link Network.builder} */
  constructor(init: NetworkInit) {
    this.networkId = init.networkId;
    this.identity = init.identity;
    this.tls = init.tls;
    this.#transport = init.transport;
    this.#listener = init.listener;
    this.#bootstrap = init.bootstrap;
    this.tags = Object.freeze(init.tags);
    this.groupsConfig = Object.freeze(init.groupsConfig);
    this.discoveryConfig = Object.freeze(init.discovery);
    this.catalog = new Catalog(init.networkId);
    this.log = new Log(init.logger, init.identity.peerId.short());
    const bound = init.listener.address;
    this.localAddr = new PeerAddr({
      peerId: init.identity.peerId,
      addresses: [{
        transport: init.transport.family,
        host: advertisedHost(bound.host),
        port: bound.port,
      }],
      certificateHash: init.tls.certificateHash,
    });
    this.#local = new LocalNode(this);
    this.#discovery = new Discovery(this);
  }

  /**
   * A network with every default: a random key, the runtime's QUIC, listening
   * on every interface at a free port. Same as `Network.builder(name).build()`.
   *
   * @param name the application's network name; only nodes with the same name talk
   * @returns the running network
   * @throws {TypeError | RangeError} when `name` is not a non-empty string
   * @throws {Error} when the transport cannot start
   *
   * @example
   * ```ts ignore
   * import { Network } from "@mosaik/mosaik";
   *
   * await using network = await Network.create("my-app");
   * console.log(`dial me at ${network.local().addr()}`);
   * ```
   */
  static create(name: string): Promise<Network> {
    return new NetworkBuilder(name).build();
  }

  /**
   * A builder for a network named `name`.
   *
   * @param name the application's network name; nodes of different names ignore each other
   * @returns a builder with every default
   * @throws {TypeError | RangeError} when `name` is not a non-empty string
   *
   * @example A node on loopback QUIC (Deno needs `--unstable-net`)
   * ```ts
   * import { Network } from "@mosaik/mosaik";
   *
   * await using network = await Network.builder("my-app")
   *   .withListenAddress("127.0.0.1:0")
   *   .build();
   * const addr = network.local().addr();
   * if (addr.addresses[0]?.host !== "127.0.0.1") throw new Error("listens on loopback");
   * // addr.toString() is what another node passes to withBootstrap(...)
   * ```
   */
  static builder(name: string): NetworkBuilder {
    return new NetworkBuilder(name);
  }

  /**
   * This node: its id, address, certificate and tags.
   *
   * @returns the same object on every call
   */
  local(): LocalNode {
    return this.#local;
  }

  /**
   * Discovery: dialing peers, catalog exchange, the catalog and its events.
   *
   * @returns the same object on every call
   */
  discovery(): Discovery {
    return this.#discovery;
  }

  /**
   * The groups of this node: `network.groups().withKey(key)...join()`.
   * Closing the network leaves every group gracefully.
   *
   * @returns the same registry on every call
   * @throws {Error} when called for the first time after {@link close}
   */
  groups(): Groups {
    if (this.#groupsApi === undefined) {
      if (this.closed) throw new Error("Cannot use groups: network is closed");
      const c = this.groupsConfig;
      this.#groupsHost = new NetworkGroupHost(this, {
        ...(c.maxBonds === undefined ? {} : { maxBonds: c.maxBonds }),
        ...(c.maxMessageSize === undefined ? {} : { maxMessageSize: c.maxMessageSize }),
        ...(c.handshakeTimeout === undefined ? {} : { handshakeTimeout: c.handshakeTimeout }),
      });
      this.#groupsApi = new Groups(this.#groupsHost);
    }
    return this.#groupsApi;
  }

  /** @internal the current signed entry */
  get signedMe(): SignedPeerEntry {
    if (this.#signedMe === undefined) throw new Error("Cannot read entry: network not started");
    return this.#signedMe;
  }

  /**
   * Where the metrics endpoint listens (`Network.builder().withMetrics(…)`),
   * with the port it really bound.
   *
   * @returns `{ host, port }`, or `undefined` without an endpoint or after {@link close}
   */
  metricsAddress(): SocketAddress | undefined {
    return this.closed ? undefined : this.#metricsServer?.address;
  }

  /**
   * This node's metrics: the network-level gauges and every running group's
   * metrics (`group.metrics()`), as the endpoint renders them.
   *
   * @returns a snapshot
   * @internal
   */
  nodeMetrics(): NodeMetrics {
    const catalogPeers = this.catalog.size -
      (this.catalog.get(this.identity.peerId) === undefined ? 0 : 1);
    return {
      peerId: this.identity.peerId,
      connections: this.#links.size,
      catalogPeers,
      bonds: this.#groupsHost?.bondCount ?? 0,
      groups: this.#groupsApi?.metrics() ?? [],
    };
  }

  /** @internal called by the builder: starts the metrics endpoint */
  async startMetrics(config: MetricsConfig): Promise<void> {
    const { MetricsServer } = await import("../metrics/server.ts");
    this.#metricsServer = await MetricsServer.start(
      config,
      () => formatPrometheus(this.nodeMetrics()),
    );
    const a = this.#metricsServer.address;
    this.log.info("metrics.listening", "Metrics endpoint listening", {
      host: a.host,
      port: a.port,
    });
  }

  /** True once {@link close} was called. */
  get closed(): boolean {
    return this.#closing !== undefined;
  }

  /** @internal called by the builder */
  async start(): Promise<void> {
    await this.#resign();
    this.#spawn(this.#acceptLoop());
    this.#timer = setInterval(() => this.#tick(), this.discoveryConfig.announceInterval);
    for (const a of this.#bootstrap) this.dialAddr(a);
  }

  // ---- hooks for the groups layer --------------------------------------------------------------

  /**
   * Announces the groups this node is a member of: re-signs the entry
   * (update + 1) and gossips it. Resolves once it is signed and sent.
   *
   * @internal hook of the groups layer
   */
  setGroups(groups: readonly GroupId[]): Promise<void> {
    this.#groups = [...groups];
    return this.announce();
  }

  /**
   * Re-signs this node's entry with update + 1 and gossips it to every peer.
   * Also done on every announce interval.
   *
   * @returns a promise that resolves once the entry is signed and sent; at once after close
   */
  announce(): Promise<void> {
    if (this.closed) return Promise.resolve();
    return this.#resign();
  }

  /**
   * The open connection to a peer (after its hello), if any.
   *
   * @param peer the peer, or its PeerId hex
   * @returns the connection, or `undefined` when there is none
   */
  peerConnection(peer: PeerId | string): Connection | undefined {
    return this.#byPeer.get(typeof peer === "string" ? peer : peer.toHex())?.conn;
  }

  /**
   * Connection counters: `open` connections (with or without a hello yet)
   * and `duplicatesClosed`, connections this node closed for the
   * one-connection-per-pair tie-break.
   *
   * @returns a snapshot of the counters
   */
  connectionStats(): { open: number; duplicatesClosed: number } {
    return { open: this.#links.size, duplicatesClosed: this.#duplicatesClosed };
  }

  /**
   * The peers with an open connection (after their hello).
   *
   * @returns their PeerId hexes
   */
  connectedPeers(): string[] {
    return [...this.#byPeer.keys()];
  }

  /**
   * The connection to a peer, dialing it (by its catalog entry, or the given
   * address) when there is none. Resolves once its discovery hello is done.
   *
   * @param peer a peer in the catalog, or the address to dial
   * @returns the connection that survived the duplicate tie-break
   * @throws {Error} when the peer is unknown or unreachable, or presents another certificate
   */
  async connect(peer: PeerId | PeerAddr): Promise<Connection> {
    const addr = peer instanceof PeerAddr ? peer : this.#addrOf(peer);
    const hex = addr.peerId.toHex();
    const existing = this.#byPeer.get(hex);
    if (existing !== undefined) return existing.conn;
    const link = await this.#dial(addr);
    if (!(await link.ready)) {
      const winner = this.#byPeer.get(hex);
      if (winner !== undefined) return winner.conn;
      throw new Error(`Cannot connect to peer ${addr.peerId.short()}: connection closed`);
    }
    return (this.#byPeer.get(hex) ?? link).conn;
  }

  /**
   * Calls `listener` for every connection that completes its hello and wins
   * the duplicate tie-break (the groups host opens bond streams on it).
   *
   * @returns a function that unregisters it
   * @internal hook of the groups layer
   */
  onConnection(listener: ConnectionListener): () => void {
    this.#connectionListeners.add(listener);
    return () => this.#connectionListeners.delete(listener);
  }

  /**
   * Routes incoming streams whose header names `purpose` to `handler`,
   * replacing any handler of that purpose.
   *
   * @returns a function that unregisters it
   * @throws {RangeError} for the reserved discovery purpose
   * @internal hook of the groups layer
   */
  handleStreams(purpose: string, handler: StreamHandler): () => void {
    if (purpose === DISCOVERY_PURPOSE) {
      throw new RangeError(`Cannot handle streams: purpose "${purpose}" is reserved`);
    }
    this.#handlers.set(purpose, handler);
    return () => {
      if (this.#handlers.get(purpose) === handler) this.#handlers.delete(purpose);
    };
  }

  /**
   * Opens a stream to a connected peer and sends its header frame.
   *
   * @throws {Error} when the peer is not connected or the stream cannot open
   * @internal hook of the groups layer
   */
  async openStream(peer: PeerId | string, header: StreamHeader): Promise<FramedStream<unknown>> {
    const hex = typeof peer === "string" ? peer : peer.toHex();
    const link = this.#byPeer.get(hex);
    if (link === undefined) {
      throw new Error(`Cannot open stream: peer ${hex.slice(0, 8)} is not connected`);
    }
    const framed = this.#frame(link, await link.conn.openStream());
    await framed.send(header);
    return framed;
  }

  // ---- close ---------------------------------------------------------------------------------

  /**
   * Leaves every group gracefully, then closes timers, streams, connections,
   * the listener and the transport. Idempotent.
   *
   * @returns a promise that resolves once everything is closed
   */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  /** Same as {@link close}, for `await using network = …`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  async #close(): Promise<void> {
    await this.#metricsServer?.close();
    if (this.#groupsApi !== undefined) {
      // Leaving groups may still need connections; dials to dead peers must not hold it up.
      await this.#groupsApi.close().catch(() => {});
      this.#closingSignal.abort(new Error("Cannot dial: network is closed"));
      await this.#groupsHost!.close();
    }
    this.#closingSignal.abort(new Error("Cannot dial: network is closed"));
    clearInterval(this.#timer);
    for (const link of this.#links) link.conn.close(CloseCode.Normal, "network closed");
    await this.#listener.close().catch(() => {});
    await this.#transport.close().catch(() => {});
    for (const link of this.#links) {
      for (const s of link.streams) await s[Symbol.asyncDispose]().catch(() => {});
    }
    while (this.#tasks.size > 0) await Promise.allSettled([...this.#tasks]);
    await this.#announcing;
    this.catalog.close();
  }

  // ---- internals ------------------------------------------------------------------------------

  #spawn(task: Promise<unknown>): void {
    const p = task.catch(() => {
      // A peer's misbehaviour or a lost connection must never crash the node.
    });
    this.#tasks.add(p);
    void p.finally(() => this.#tasks.delete(p));
  }

  #tick(): void {
    if (this.closed) return;
    void this.announce().catch(() => {});
    const now = Date.now();
    this.catalog.purgeStale(now, this.discoveryConfig.staleAfter);
    for (const a of this.#bootstrap) this.dialAddr(a);
  }

  #resign(): Promise<void> {
    const next = this.#announcing.then(async () => {
      const entry: PeerEntry = {
        networkId: this.networkId,
        peerId: this.identity.peerId,
        addresses: this.localAddr.addresses,
        certificateHash: this.tls.certificateHash,
        tags: this.tags,
        groups: this.#groups,
        version: { start: this.#start, update: this.#update++ },
      };
      const signed = await signEntry(entry, this.identity);
      this.#signedMe = signed;
      await this.catalog.upsert(signed, Date.now());
      this.#gossip([signed], undefined);
    });
    this.#announcing = next.catch(() => {});
    return next;
  }

  async #acceptLoop(): Promise<void> {
    for await (const conn of this.#listener.connections()) {
      if (this.closed) {
        conn.close(CloseCode.Normal, "network closed");
        continue;
      }
      this.#adopt(conn, "remote", undefined);
    }
  }

  #addrOf(peer: PeerId): PeerAddr {
    const entry = this.catalog.get(peer);
    if (entry === undefined || entry.addresses.length === 0) {
      throw new Error(`Cannot connect to peer ${peer.short()}: not in the catalog`);
    }
    return new PeerAddr({
      peerId: entry.peerId,
      addresses: entry.addresses,
      certificateHash: entry.certificateHash,
    });
  }

  /** @internal fire-and-forget dial (see {@link Discovery.dial}) */
  dialAddr(addr: PeerAddr): void {
    const hex = addr.peerId.toHex();
    if (this.closed || hex === this.identity.peerId.toHex() || this.#byPeer.has(hex)) return;
    if (this.#dialing.has(hex)) return;
    this.#spawn(this.#dial(addr));
  }

  #dial(addr: PeerAddr): Promise<Link> {
    const hex = addr.peerId.toHex();
    const pending = this.#dialing.get(hex);
    if (pending !== undefined) return pending;
    const p = this.#dialNow(addr).finally(() => this.#dialing.delete(hex));
    this.#dialing.set(hex, p);
    return p;
  }

  async #dialNow(addr: PeerAddr): Promise<Link> {
    if (this.closed) throw new Error("Cannot dial: network is closed");
    const target: TransportAddress | undefined = addr.addresses.find((a) =>
      a.transport === this.#transport.family
    );
    if (target === undefined) {
      throw new Error(
        `Cannot dial peer ${addr.peerId.short()}: no ${this.#transport.family} address`,
      );
    }
    const conn = await this.#transport.dial({
      address: { host: target.host, port: target.port },
      certificateHash: addr.certificateHash,
      serverName: serverNameFor(addr.peerId.toHex()),
    }, { signal: this.#closingSignal.signal });
    if (this.closed) {
      conn.close(CloseCode.Normal, "network closed");
      throw new Error("Cannot dial: network is closed");
    }
    return this.#adopt(conn, "local", addr);
  }

  #adopt(conn: Connection, initiator: "local" | "remote", expected: PeerAddr | undefined): Link {
    let markReady: (ok: boolean) => void = () => {};
    const ready = new Promise<boolean>((resolve) => (markReady = resolve));
    const link: Link = {
      conn,
      initiator,
      peerHex: undefined,
      peerStart: undefined,
      streams: new Set(),
      ready,
      markReady: (ok) => markReady(ok),
    };
    this.#links.add(link);
    this.#spawn(conn.closed.then(() => {
      this.#links.delete(link);
      link.markReady(false);
      if (link.peerHex !== undefined && this.#byPeer.get(link.peerHex) === link) {
        this.#byPeer.delete(link.peerHex);
      }
      for (const s of link.streams) this.#spawn(s[Symbol.asyncDispose]());
      link.streams.clear();
    }));
    this.#spawn(this.#incomingLoop(link));
    if (initiator === "local") {
      this.#spawn((async () => {
        const framed = this.#frame(link, await conn.openStream());
        await framed.send({ p: DISCOVERY_PURPOSE });
        await this.#session(link, framed, expected, false);
      })());
    }
    return link;
  }

  #frame(link: Link, stream: Stream): FramedStream<unknown> {
    return new FramedStream<unknown>(stream, {
      onViolation: (err) => link.conn.close(CloseCode.ProtocolViolation, err.message),
    });
  }

  async #incomingLoop(link: Link): Promise<void> {
    for await (const stream of link.conn.incomingStreams()) {
      this.#spawn(this.#dispatch(link, stream));
    }
  }

  async #dispatch(link: Link, stream: Stream): Promise<void> {
    const framed = this.#frame(link, stream);
    const header = await framed.receive();
    if (
      typeof header !== "object" || header === null ||
      typeof (header as StreamHeader).p !== "string"
    ) {
      link.conn.close(CloseCode.ProtocolViolation, "Stream header has no purpose");
      return;
    }
    const h = header as StreamHeader;
    if (h.p === DISCOVERY_PURPOSE) {
      await this.#session(link, framed, undefined, false);
      return;
    }
    const handler = this.#handlers.get(h.p);
    if (handler === undefined) {
      stream.reset(CloseCode.Normal);
      await framed[Symbol.asyncDispose]();
      return;
    }
    handler({
      peerId: link.peerHex === undefined ? undefined : PeerId.parse(link.peerHex),
      connection: link.conn,
      stream: framed,
      header: h,
    });
  }

  /**
   * One discovery stream: hellos both ways, then gossip until either side
   * ends it. With `once`, ends our side after the hello (a sync).
   */
  async #session(
    link: Link,
    framed: FramedStream<unknown>,
    expected: PeerAddr | undefined,
    once: boolean,
  ): Promise<boolean> {
    link.streams.add(framed);
    try {
      // Not awaited before reading: two large hellos must not wait on each other's window.
      const sent = framed.send(this.#hello());
      sent.catch(() => {});
      const first = await framed.receive();
      await sent;
      if (first === undefined) return false;
      const hello = parseDiscMessage(first);
      if (hello.t !== "hello") {
        throw new PeerViolation(CloseCode.ProtocolViolation, "Expected a discovery hello");
      }
      if (!(await this.#acceptHello(link, hello, expected))) return false;
      if (once) return true;
      for (;;) {
        const raw = await framed.receive();
        if (raw === undefined) return true;
        const msg = parseDiscMessage(raw);
        if (msg.t !== "gossip") {
          throw new PeerViolation(CloseCode.ProtocolViolation, "Unexpected second hello");
        }
        if (link.peerHex !== undefined) this.catalog.touch(PeerId.parse(link.peerHex), Date.now());
        await this.#merge(msg.entries, framed);
      }
    } catch (err) {
      if (err instanceof PeerViolation) link.conn.close(err.code, err.message);
      return false;
    } finally {
      link.streams.delete(framed);
      await framed.close();
    }
  }

  #hello(): DiscMessage {
    const catalog = this.catalog.signedEntries().map(encodeSignedEntry);
    return {
      t: "hello",
      me: encodeSignedEntry(this.signedMe),
      catalog,
    };
  }

  /** Checks and merges a peer's hello; false when the connection was dropped (self, duplicate). */
  async #acceptHello(
    link: Link,
    hello: Extract<DiscMessage, { t: "hello" }>,
    expected: PeerAddr | undefined,
  ): Promise<boolean> {
    let signed: SignedPeerEntry;
    let entry: PeerEntry;
    try {
      signed = decodeSignedEntry(hello.me);
      entry = await verifyEntry(signed, this.networkId);
    } catch (err) {
      if (err instanceof InvalidEntryError && err.reason === "network") {
        throw new PeerViolation(CloseCode.WrongNetwork, err.message);
      }
      throw new PeerViolation(
        CloseCode.ProtocolViolation,
        err instanceof Error ? err.message : "Bad hello entry",
      );
    }
    // The dialer's transport pinned the certificate of the entry's hash, so a
    // hello naming another certificate is an impostor. An accepting side cannot
    // see the client's certificate: its claim is proven by the bond handshake.
    const remoteHash = link.conn.remoteCertificateHash;
    if (remoteHash !== undefined && toHex(remoteHash) !== toHex(entry.certificateHash)) {
      throw new PeerViolation(
        CloseCode.Unauthorized,
        "Hello entry is not the dialed certificate's",
      );
    }
    if (expected !== undefined && !expected.peerId.equals(entry.peerId)) {
      throw new PeerViolation(CloseCode.Unauthorized, "Hello entry is not the dialed peer's");
    }
    const hex = entry.peerId.toHex();
    if (link.peerHex !== undefined && link.peerHex !== hex) {
      throw new PeerViolation(CloseCode.ProtocolViolation, "Hello names another peer");
    }
    const mine = this.identity.peerId.toHex();
    if (hex === mine) {
      link.conn.close(CloseCode.Normal, "connected to self");
      return false;
    }
    // Bound before any await, so a duplicate connection is resolved as early as possible.
    const first = link.peerHex === undefined;
    if (first) {
      link.peerHex = hex;
      link.peerStart = entry.version.start;
      if (!this.#bind(link, hex, mine)) return false;
    }
    const upsert = await this.catalog.upsert(signed, Date.now());
    if (upsert !== "stale") this.#gossip([signed], undefined);
    this.catalog.touch(entry.peerId, Date.now());
    if (first && this.#byPeer.get(hex) === link) this.#notify(hex, link);
    await this.#merge(hello.catalog, undefined);
    link.markReady(true);
    return true;
  }

  /** Registers the link as the peer's connection, applying the tie-break; false when it lost (and was closed). */
  #bind(link: Link, hex: string, mine: string): boolean {
    const existing = this.#byPeer.get(hex);
    if (existing === undefined || existing === link) {
      this.#byPeer.set(hex, link);
      return true;
    }
    // A connection from a later run of the peer wins: the other one is left over from a
    // process that died (it may take a transport idle timeout to notice). Between two
    // connections of the same run, the one initiated by the lower PeerId survives, so
    // both sides agree.
    const keep: "local" | "remote" = mine < hex ? "local" : "remote";
    const newer = (link.peerStart ?? 0) - (existing.peerStart ?? 0);
    const winner = newer > 0
      ? link
      : newer < 0
      ? existing
      : existing.initiator === keep
      ? existing
      : link.initiator === keep
      ? link
      : existing;
    const loser = winner === link ? existing : link;
    this.#byPeer.set(hex, winner);
    this.#duplicatesClosed++;
    loser.conn.close(CloseCode.DuplicateBond, "duplicate connection");
    return winner === link;
  }

  #notify(hex: string, link: Link): void {
    const peer = PeerId.parse(hex);
    for (const l of this.#connectionListeners) {
      try {
        l(peer, link.conn);
      } catch (bug) {
        queueMicrotask(() => {
          throw bug;
        });
      }
    }
  }

  /** Verifies and stores entries from a peer; gossips what was new. */
  async #merge(
    entries: readonly Uint8Array[],
    from: FramedStream<unknown> | undefined,
  ): Promise<void> {
    const fresh: SignedPeerEntry[] = [];
    for (const bytes of entries) {
      try {
        const signed = decodeSignedEntry(bytes);
        if ((await this.catalog.upsert(signed, Date.now())) !== "stale") fresh.push(signed);
      } catch (err) {
        throw new PeerViolation(
          CloseCode.ProtocolViolation,
          err instanceof Error ? err.message : "Bad peer entry",
        );
      }
    }
    if (fresh.length > 0) this.#gossip(fresh, from);
  }

  /** Pushes entries to every open discovery stream but `except`. */
  #gossip(entries: readonly SignedPeerEntry[], except: FramedStream<unknown> | undefined): void {
    if (this.closed) return;
    const msg: DiscMessage = { t: "gossip", entries: entries.map(encodeSignedEntry) };
    for (const link of this.#links) {
      for (const s of link.streams) {
        if (s !== except) void s.send(msg).catch(() => {});
      }
    }
  }

  /** One sync stream on `link`: hellos both ways; false when the connection failed. */
  async #syncOnce(link: Link, addr: PeerAddr): Promise<boolean> {
    let framed: FramedStream<unknown>;
    try {
      framed = this.#frame(link, await link.conn.openStream());
    } catch {
      return false;
    }
    const session = (async () => {
      await framed.send({ p: DISCOVERY_PURPOSE, sync: true });
      return await this.#session(link, framed, addr, true);
    })();
    const tracked = session.catch(() => false);
    this.#spawn(tracked);
    return await tracked;
  }

  /** @internal see {@link Discovery.syncWith} */
  async syncWith(addr: PeerAddr, options: { signal?: AbortSignal }): Promise<void> {
    options.signal?.throwIfAborted();
    const timeout = new AbortController();
    const timer = setTimeout(
      () => timeout.abort(new Error("Cannot sync: timed out")),
      this.discoveryConfig.syncTimeout,
    );
    const signals = [timeout.signal, ...(options.signal === undefined ? [] : [options.signal])];
    const abort = AbortSignal.any(signals);
    let onAbort: (() => void) | undefined;
    const aborted = new Promise<never>((_, reject) => {
      onAbort = () => reject(abort.reason);
      abort.addEventListener("abort", onAbort, { once: true });
    });
    aborted.catch(() => {});
    const hex = addr.peerId.toHex();
    try {
      // A connection can lose the duplicate tie-break under us: then sync over the survivor.
      for (let attempt = 1;; attempt++) {
        const conn = await Promise.race([this.connect(addr), aborted]);
        const link = [...this.#links].find((l) => l.conn === conn);
        if (link !== undefined && (await Promise.race([this.#syncOnce(link, addr), aborted]))) {
          return;
        }
        if (attempt >= 3) {
          throw new Error(`Cannot sync with peer ${addr.peerId.short()}: connection closed`);
        }
        if (link !== undefined) await Promise.race([link.conn.closed, aborted]);
        const pending = [...this.#links].filter((l) =>
          l.peerHex === undefined || l.peerHex === hex
        );
        await Promise.race([Promise.all(pending.map((l) => l.ready)), aborted]);
      }
    } finally {
      clearTimeout(timer);
      if (onAbort !== undefined) abort.removeEventListener("abort", onAbort);
    }
  }
}
