// In-process transport for tests and simulation: nodes on one MemoryNetwork, with seeded latency, loss and partitions.

/**
 * A transport that moves bytes between transports of the same
 * {@link MemoryNetwork}, in one process, with the behaviour of a QUIC
 * connection over an unreliable network:
 *
 * - **Addresses.** Every listener is at host {@link MEMORY_HOST} with a port
 *   unique in its network (the requested host is ignored; port 0 picks a
 *   free port). Dialling a port nobody listens on fails at once with
 *   "connection refused".
 * - **Certificates.** A dial succeeds only if the target's pinned certificate
 *   (compared by SHA-256) and server name are the listener's own; otherwise
 *   it fails like a TLS handshake would. The dialing side sees the peer's
 *   certificate hash; the accepting side sees `undefined`, as with QUIC
 *   adapters that ask for no client certificate.
 * - **Streams.** Real WHATWG streams, ordered per stream and independent of
 *   each other (no head-of-line blocking across streams). Each direction of
 *   a stream has a receive window (`streamWindow` bytes): bytes written but
 *   not yet read by the peer application count against it, and a writer
 *   beyond it waits on `writer.ready`, so memory stays bounded. Chunks are
 *   cut into segments of at most 16 KiB and a read returns what has arrived,
 *   so frames reach the reader split and merged at arbitrary places.
 * - **Latency.** Every packet (segment, stream open, end of stream, reset,
 *   connection close, handshake) takes `latencyMs` plus a uniform draw from
 *   `[0, jitterMs)`; a dial takes one round trip.
 * - **Loss.** Streams are reliable, so loss never drops or corrupts bytes: a
 *   lost packet is retransmitted `retransmitMs` later (and may be lost
 *   again), which delays it and everything after it on the same stream.
 * - **Partitions.** Reachability is checked when a packet arrives: traffic
 *   between peers that cannot reach each other is held (not delivered and
 *   not dropped) and released in order by `heal()`, like a network that
 *   recovers within QUIC's idle timeout. A connection that stays cut off for
 *   `idleTimeoutMs` is closed on both sides with code 0 and reason
 *   "idle timeout", `remote: true` (the network closed it). A dial to an
 *   unreachable peer waits for a heal, and fails after `idleTimeoutMs`.
 * - **Determinism.** Jitter and loss come from one generator seeded with
 *   `seed`, drawn once per packet in the order packets are sent, so the same
 *   program sends the same packets with the same delays.
 * - **Close.** A connection close reaches the peer after every byte sent
 *   before it; the peer's streams then fail at once, even with unread data
 *   buffered (as QUIC discards stream state on CONNECTION_CLOSE).
 *
 * Nodes are named by the PeerId hex in their certificate's server name
 * (`peerIdHexFromServerName`); an identity whose server name is not one of
 * ours is named by the server name itself.
 *
 * @example
 * ```ts
 * import { Network } from "@mosaik/mosaik";
 * import { MemoryNetwork } from "@mosaik/mosaik/transport/memory";
 *
 * await using net = new MemoryNetwork({ latencyMs: 1, seed: 7 });
 * await using a = await Network.builder("t").withTransport(net.transport()).build();
 * await using b = await Network.builder("t").withTransport(net.transport()).build();
 * net.partition([a.local().id()], [b.local().id()]);
 * if (net.reachable(a.local().id(), b.local().id())) throw new Error("cut off");
 * net.heal();
 * await b.discovery().syncWith(a.local().addr());
 * if (!b.discovery().catalog().has(a.local().id().toHex())) throw new Error("b knows a");
 * ```
 *
 * @module
 */

import { SeededRng } from "../lib/primitives/rng.ts";
import { peerIdHexFromServerName } from "./cert.ts";
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

/** The host of every address on a {@link MemoryNetwork}. */
export const MEMORY_HOST = "memory";

/** Largest packet a write is cut into. */
const SEGMENT_SIZE = 16 * 1024;

/** Largest chunk a read returns (arrived segments are merged up to this). */
const READ_SIZE = 64 * 1024;

/** Bytes a writable stream queues before the sink before `writer.ready` waits. */
const WRITE_QUEUE_SIZE = 16 * 1024;

/** Where ephemeral ports start. */
const FIRST_PORT = 40000;

/** Options of a {@link MemoryNetwork}. Every duration is in milliseconds. */
export interface MemoryNetworkOptions {
  /** One-way delay of every packet (default 0: delivery on the next microtask). */
  latencyMs?: number;
  /** Extra delay per packet, uniform in `[0, jitterMs)` (default 0). */
  jitterMs?: number;
  /** Probability in `[0, 1)` that a packet is lost and must be retransmitted (default 0). */
  lossRate?: number;
  /** Extra delay of each retransmission (default `max(1, 3 × latencyMs)`, about QUIC's probe timeout). */
  retransmitMs?: number;
  /** Seed of the jitter and loss draws (default 0). */
  seed?: number;
  /** Receive window of each direction of each stream, in bytes (default 256 KiB). */
  streamWindow?: number;
  /**
   * How long a connection survives being cut off by a partition, and how long
   * a dial waits for a route, before failing (default 10 000; `Infinity`:
   * forever, until `heal()` or an abort).
   */
  idleTimeoutMs?: number;
}

/** A peer as partitions name it: a PeerId (anything with `toHex()`) or its hex. */
export type PeerRef = string | { toHex(): string };

/** Counters of a {@link MemoryNetwork}, for tests. */
export interface MemoryNetworkStats {
  /** Packets sent (handshakes, segments, stream and connection control). */
  readonly packets: number;
  /** Stream payload bytes sent. */
  readonly bytes: number;
  /** Retransmissions caused by loss. */
  readonly retransmissions: number;
  /** Delay added to packets beyond `latencyMs` (jitter and retransmissions), summed, in ms. */
  readonly addedDelayMs: number;
  /** Packets that arrived during a partition and were held. */
  readonly held: number;
  /**
   * Stream bytes written but not yet read by the receiving application
   * (in flight, held, or buffered at the receiver), over all live streams.
   * Bounded by the number of open stream directions × `streamWindow`.
   */
  readonly bufferedBytes: number;
}

/**
 * A simulated network. Each {@link transport} factory call makes a node's
 * transport; nodes reach each other's listeners by {@link MEMORY_HOST}
 * addresses, subject to the network's latency, loss and partitions (see the
 * module documentation for the exact semantics).
 *
 * Partitions name nodes by PeerId. {@link partition} and {@link isolate} add
 * cuts; {@link heal} removes them all and releases held traffic.
 */
export class MemoryNetwork implements AsyncDisposable {
  readonly #fabric: Fabric;

  /**
   * A new, empty simulated network; by default without latency, loss or
   * partitions.
   *
   * @param options latency, jitter, loss, seed, stream window, idle timeout
   * @throws {RangeError} when an option is out of range
   */
  constructor(options: MemoryNetworkOptions = {}) {
    this.#fabric = new Fabric(options);
  }

  /**
   * A factory for `Network.builder().withTransport(...)`: each call makes a
   * transport for the node whose TLS identity it is given.
   *
   * @returns the factory; one factory may serve many nodes
   */
  transport(): TransportFactory {
    return (context: TransportContext) => this.#fabric.makeTransport(context.identity);
  }

  /**
   * Cuts every peer of each group off from every peer of every other group.
   * Adds to the cuts already in place; peers not named are not affected.
   *
   * @param groups sets of peers that stay connected among themselves
   */
  partition(...groups: readonly (readonly PeerRef[])[]): void {
    const names = groups.map((g) => g.map(nodeName));
    for (let i = 0; i < names.length; i++) {
      for (let j = i + 1; j < names.length; j++) {
        for (const x of names[i]!) {
          for (const y of names[j]!) if (x !== y) this.#fabric.cuts.add(pairKey(x, y));
        }
      }
    }
    this.#fabric.topologyChanged();
  }

  /** Cuts each of `peers` off from every other node, including nodes that join later. */
  isolate(...peers: readonly PeerRef[]): void {
    for (const p of peers) this.#fabric.isolated.add(nodeName(p));
    this.#fabric.topologyChanged();
  }

  /** Removes every cut and isolation; held traffic is delivered, in order, and waiting dials proceed. */
  heal(): void {
    this.#fabric.cuts.clear();
    this.#fabric.isolated.clear();
    this.#fabric.topologyChanged();
  }

  /** Whether traffic from `a` reaches `b` now. */
  reachable(a: PeerRef, b: PeerRef): boolean {
    return this.#fabric.reachable(nodeName(a), nodeName(b));
  }

  /** A snapshot of the network's counters. */
  stats(): MemoryNetworkStats {
    return { ...this.#fabric.stats };
  }

  /**
   * Closes every transport made by this network; later {@link transport}
   * factories throw. Idempotent.
   */
  async close(): Promise<void> {
    await this.#fabric.close();
  }

  /** Same as {@link close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

// ---- internals --------------------------------------------------------------------------------

function nodeName(peer: PeerRef): string {
  const hex = typeof peer === "string" ? peer : peer.toHex();
  if (typeof hex !== "string" || hex.length === 0) {
    throw new TypeError("Cannot name peer: expected a PeerId or a non-empty hex string");
  }
  return hex.toLowerCase();
}

function pairKey(x: string, y: string): string {
  return x < y ? `${x}|${y}` : `${y}|${x}`;
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength !== b.byteLength) return false;
  for (let i = 0; i < a.byteLength; i++) if (a[i] !== b[i]) return false;
  return true;
}

function checkNumber(name: string, value: number, min: number, max = Infinity): number {
  if (typeof value !== "number" || Number.isNaN(value) || value < min || value > max) {
    throw new RangeError(`Cannot create MemoryNetwork: ${name} must be from ${min} to ${max}`);
  }
  return value;
}

function describeClose(info: CloseInfo): string {
  const who = info.remote ? "by the peer" : "locally";
  return `closed ${who} with code ${info.code}${info.reason === "" ? "" : `: ${info.reason}`}`;
}

/** An error of a stream that was reset, stopped, or lost with its connection. */
class StreamError extends Error {
  /** The application code, when the stream was reset or stopped with one. */
  readonly code: number | undefined;

  constructor(message: string, code?: number) {
    super(message);
    this.name = "StreamError";
    this.code = code;
  }
}

// ---- scheduler: one timer for the whole network ------------------------------------------------

interface Task {
  readonly at: number;
  readonly seq: number;
  /** `undefined` once run or cancelled. */
  run: (() => void) | undefined;
}

function before(a: Task, b: Task): boolean {
  return a.at < b.at || (a.at === b.at && a.seq < b.seq);
}

/**
 * Runs callbacks at points in time, in (time, scheduling order) order, with
 * at most one timer pending; when nothing is scheduled no timer is left, so a
 * closed network holds nothing the leak sanitizers would see.
 */
class Scheduler {
  #heap: Task[] = [];
  #seq = 0;
  #live = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #timerAt = Infinity;
  #flushQueued = false;

  now(): number {
    return performance.now();
  }

  schedule(at: number, run: () => void): Task {
    const task: Task = { at, seq: this.#seq++, run };
    const heap = this.#heap;
    heap.push(task);
    for (let i = heap.length - 1; i > 0;) {
      const parent = (i - 1) >> 1;
      if (!before(heap[i]!, heap[parent]!)) break;
      [heap[i], heap[parent]] = [heap[parent]!, heap[i]!];
      i = parent;
    }
    this.#live++;
    this.#arm();
    return task;
  }

  cancel(task: Task | undefined): void {
    if (task === undefined || task.run === undefined) return;
    task.run = undefined;
    if (--this.#live === 0) this.#idle();
  }

  #pop(): Task | undefined {
    const heap = this.#heap;
    const top = heap[0];
    const last = heap.pop();
    if (top === undefined || last === undefined || heap.length === 0) return top;
    heap[0] = last;
    for (let i = 0;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < heap.length && before(heap[l]!, heap[m]!)) m = l;
      if (r < heap.length && before(heap[r]!, heap[m]!)) m = r;
      if (m === i) break;
      [heap[i], heap[m]] = [heap[m]!, heap[i]!];
      i = m;
    }
    return top;
  }

  #idle(): void {
    this.#heap = [];
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#timerAt = Infinity;
  }

  #arm(): void {
    const top = this.#heap[0];
    if (top === undefined) return;
    const now = this.now();
    if (top.at <= now) {
      if (!this.#flushQueued) {
        this.#flushQueued = true;
        queueMicrotask(() => this.#flush());
      }
      return;
    }
    if (this.#timer !== undefined) {
      if (this.#timerAt <= top.at) return;
      clearTimeout(this.#timer);
    }
    this.#timerAt = top.at;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#timerAt = Infinity;
      this.#flush();
    }, Math.ceil(top.at - now));
  }

  #flush(): void {
    this.#flushQueued = false;
    const now = this.now();
    for (;;) {
      const top = this.#heap[0];
      if (top === undefined || top.at > now) break;
      this.#pop();
      const run = top.run;
      if (run === undefined) continue;
      top.run = undefined;
      this.#live--;
      try {
        run();
      } catch (err) {
        // A delivery bug must be loud, but must not stop the deliveries behind it.
        queueMicrotask(() => {
          throw err;
        });
      }
    }
    if (this.#live === 0) this.#idle();
    else this.#arm();
  }
}

// ---- the network's state ---------------------------------------------------------------------

/** Orders packets: none is delivered before one sent earlier on the same order. */
interface Order {
  lastAt: number;
}

/** One direction of a connection. */
interface Path extends Order {
  readonly pair: Pair;
  readonly to: MemoryConnection;
}

/** The two ends of one connection, and what the network holds for them. */
class Pair {
  held: { to: MemoryConnection; deliver: () => void }[] = [];
  idle: Task | undefined;

  constructor(readonly a: MemoryConnection, readonly b: MemoryConnection) {}

  get dead(): boolean {
    return this.a.isClosed && this.b.isClosed;
  }
}

interface PendingDial {
  fail(err: Error): void;
}

class Fabric {
  readonly latency: number;
  readonly jitter: number;
  readonly loss: number;
  readonly retransmit: number;
  readonly window: number;
  readonly idleTimeout: number;
  readonly rng: SeededRng;
  readonly scheduler = new Scheduler();
  readonly stats = {
    packets: 0,
    bytes: 0,
    retransmissions: 0,
    addedDelayMs: 0,
    held: 0,
    bufferedBytes: 0,
  };
  readonly cuts = new Set<string>();
  readonly isolated = new Set<string>();
  readonly pairs = new Set<Pair>();
  /** Dials waiting for a route, re-tried on every topology change. */
  readonly waiting = new Set<() => void>();
  readonly transports = new Set<MemoryTransport>();
  readonly #listeners = new Map<number, MemoryListener>();
  readonly #usedPorts = new Set<number>();
  #nextPort = FIRST_PORT;
  #closed = false;

  constructor(options: MemoryNetworkOptions) {
    this.latency = checkNumber("latencyMs", options.latencyMs ?? 0, 0, 1e9);
    this.jitter = checkNumber("jitterMs", options.jitterMs ?? 0, 0, 1e9);
    this.loss = checkNumber("lossRate", options.lossRate ?? 0, 0, 0.99);
    this.retransmit = checkNumber(
      "retransmitMs",
      options.retransmitMs ?? Math.max(1, 3 * this.latency),
      0,
      1e9,
    );
    this.window = checkNumber("streamWindow", options.streamWindow ?? 256 * 1024, 1, 2 ** 40);
    this.idleTimeout = checkNumber("idleTimeoutMs", options.idleTimeoutMs ?? 10_000, 1);
    this.rng = new SeededRng(checkNumber("seed", options.seed ?? 0, -(2 ** 53), 2 ** 53));
  }

  makeTransport(identity: TlsIdentity): MemoryTransport {
    if (this.#closed) throw new Error("Cannot make transport: the memory network is closed");
    const transport = new MemoryTransport(this, identity);
    this.transports.add(transport);
    return transport;
  }

  async close(): Promise<void> {
    this.#closed = true;
    await Promise.all([...this.transports].map((t) => t.close()));
  }

  reachable(x: string, y: string): boolean {
    if (x === y) return true;
    return !this.isolated.has(x) && !this.isolated.has(y) && !this.cuts.has(pairKey(x, y));
  }

  /** The network delay of one packet: latency, jitter, and a retransmission per loss. */
  delay(): number {
    this.stats.packets++;
    let d = this.latency;
    if (this.jitter > 0) d += this.rng.next() * this.jitter;
    if (this.loss > 0) {
      while (this.rng.next() < this.loss) {
        d += this.retransmit;
        this.stats.retransmissions++;
      }
    }
    this.stats.addedDelayMs += d - this.latency;
    return d;
  }

  /** Sends one packet along `path`, after everything sent earlier on `order`. */
  transmit(path: Path, order: Order, deliver: () => void): void {
    // A closed end takes nothing; scheduling it anyway would keep a timer alive for nothing.
    if (path.to.isClosed) return;
    let at = this.scheduler.now() + this.delay();
    if (at < order.lastAt) at = order.lastAt;
    order.lastAt = at;
    if (at > path.lastAt) path.lastAt = at;
    const to = path.to;
    const task = this.scheduler.schedule(at, () => {
      to.inbound.delete(task);
      this.#arrive(path.pair, to, deliver);
    });
    to.inbound.add(task);
  }

  #arrive(pair: Pair, to: MemoryConnection, deliver: () => void): void {
    if (to.isClosed) return;
    // Once anything is held, later packets queue behind it so nothing overtakes.
    if (pair.held.length > 0 || !this.reachable(pair.a.node, pair.b.node)) {
      pair.held.push({ to, deliver });
      this.stats.held++;
      return;
    }
    deliver();
  }

  topologyChanged(): void {
    for (const pair of this.pairs) this.#review(pair);
    for (const retry of [...this.waiting]) retry();
  }

  #review(pair: Pair): void {
    if (!this.reachable(pair.a.node, pair.b.node)) {
      if (pair.idle === undefined && this.idleTimeout !== Infinity) {
        pair.idle = this.scheduler.schedule(this.scheduler.now() + this.idleTimeout, () => {
          pair.idle = undefined;
          const info = { code: 0, reason: "idle timeout", remote: true };
          pair.a.shutdown(info);
          pair.b.shutdown(info);
        });
      }
      return;
    }
    this.scheduler.cancel(pair.idle);
    pair.idle = undefined;
    const held = pair.held;
    pair.held = [];
    // Synchronous, so no timer-driven delivery can slip in front of held packets.
    for (const h of held) if (!h.to.isClosed) h.deliver();
  }

  addPair(pair: Pair): void {
    this.pairs.add(pair);
    this.#review(pair);
  }

  /** Forgets what the network holds for a closed end. */
  endpointClosed(conn: MemoryConnection): void {
    for (const task of conn.inbound) this.scheduler.cancel(task);
    conn.inbound.clear();
    const pair = conn.pair;
    if (pair.dead) {
      this.pairs.delete(pair);
      this.scheduler.cancel(pair.idle);
      pair.idle = undefined;
      pair.held = [];
    } else {
      pair.held = pair.held.filter((h) => h.to !== conn);
    }
  }

  // -- ports --

  bind(port: number, listener: MemoryListener): number {
    if (port === 0) port = this.allocatePort();
    else if (this.#usedPorts.has(port)) {
      throw new Error(`Cannot listen on ${MEMORY_HOST}:${port}: address in use`);
    } else this.#usedPorts.add(port);
    this.#listeners.set(port, listener);
    return port;
  }

  unbind(port: number): void {
    this.#listeners.delete(port);
    this.#usedPorts.delete(port);
  }

  allocatePort(): number {
    for (let i = 0; i < 65536; i++) {
      const port = this.#nextPort;
      this.#nextPort = port >= 65535 ? 1024 : port + 1;
      if (!this.#usedPorts.has(port)) {
        this.#usedPorts.add(port);
        return port;
      }
    }
    throw new Error("Cannot allocate port: every memory port is in use");
  }

  releasePort(port: number): void {
    this.#usedPorts.delete(port);
  }

  // -- dialling --

  dial(
    from: MemoryTransport,
    target: DialTarget,
    pinned: Uint8Array,
    signal: AbortSignal | undefined,
  ): Promise<MemoryConnection> {
    const where = `${target.address.host}:${target.address.port}`;
    return new Promise<MemoryConnection>((resolve, reject) => {
      let settled = false;
      let syn: Task | undefined;
      let deadline: Task | undefined;
      let client: MemoryConnection | undefined;
      const settle = (err: unknown, conn?: MemoryConnection) => {
        if (settled) return;
        settled = true;
        this.scheduler.cancel(syn);
        this.scheduler.cancel(deadline);
        this.waiting.delete(arrive);
        from.dials.delete(pending);
        signal?.removeEventListener("abort", onAbort);
        if (conn !== undefined) resolve(conn);
        else {
          client?.close(0, "dial cancelled");
          reject(err);
        }
      };
      const pending: PendingDial = { fail: (err) => settle(err) };
      const onAbort = () => settle(signal?.reason);
      const arrive = () => {
        syn = undefined;
        const listener = target.address.host === MEMORY_HOST
          ? this.#listeners.get(target.address.port)
          : undefined;
        if (listener === undefined) {
          return settle(new Error(`Cannot dial ${where}: connection refused`));
        }
        const server = listener.transport;
        if (!this.reachable(from.node, server.node)) {
          // The handshake cannot get through; it is retried when the topology changes.
          this.waiting.add(arrive);
          if (deadline === undefined && this.idleTimeout !== Infinity) {
            deadline = this.scheduler.schedule(this.scheduler.now() + this.idleTimeout, () => {
              deadline = undefined;
              settle(new Error(`Cannot dial ${where}: timed out, the peer is unreachable`));
            });
          }
          return;
        }
        this.waiting.delete(arrive);
        this.scheduler.cancel(deadline);
        deadline = undefined;
        const identity = server.identity;
        if (!bytesEqual(pinned, identity.certificateHash)) {
          return settle(
            new Error(`Cannot dial ${where}: the peer's certificate is not the pinned certificate`),
          );
        }
        if (target.serverName !== identity.serverName) {
          return settle(
            new Error(
              `Cannot dial ${where}: the peer's certificate is not valid for ${target.serverName}`,
            ),
          );
        }
        const [c, s] = this.#connect(from, listener, identity.certificateHash);
        client = c;
        // A handshake failing later (idle timeout, peer closing at once) fails the dial.
        void c.closed.then((info) =>
          settle(new Error(`Cannot dial ${where}: connection ${describeClose(info)}`))
        );
        listener.offer(s);
        // The client learns the handshake is done one trip later.
        this.transmit(s.out, s.out, () => settle(undefined, c));
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      from.dials.add(pending);
      syn = this.scheduler.schedule(this.scheduler.now() + this.delay(), arrive);
    });
  }

  #connect(
    from: MemoryTransport,
    listener: MemoryListener,
    serverHash: Uint8Array,
  ): [MemoryConnection, MemoryConnection] {
    const server = listener.transport;
    const client = new MemoryConnection(this, from, { ...listener.address }, serverHash, 0);
    const accepted = new MemoryConnection(
      this,
      server,
      { host: MEMORY_HOST, port: from.endpointPort() },
      undefined,
      1,
    );
    const pair = new Pair(client, accepted);
    client.link(accepted, pair);
    accepted.link(client, pair);
    from.conns.add(client);
    server.conns.add(accepted);
    this.addPair(pair);
    return [client, accepted];
  }
}

// ---- streams --------------------------------------------------------------------------------

/**
 * One direction of one stream: the sender's writable and the receiver's
 * readable, joined by the network, with the receive window between them.
 */
class Channel implements Order {
  readonly readable: ReadableStream<Uint8Array>;
  readonly writable: WritableStream<Uint8Array>;
  lastAt = 0;
  readonly #fabric: Fabric;
  readonly #from: MemoryConnection;
  readonly #to: MemoryConnection;
  readonly #id: number;
  /** Bytes sent and not yet read or discarded by the receiver: what the window limits. */
  #outstanding = 0;
  #creditWaiters: { need: number; resolve: () => void; reject: (err: Error) => void }[] = [];
  #buffer: Uint8Array[] = [];
  #bufferHead = 0;
  #finArrived = false;
  #pullWaiting: (() => void) | undefined;
  #rc!: ReadableStreamDefaultController<Uint8Array>;
  #wc!: WritableStreamDefaultController;
  /** FIN or RESET sent, or sending failed: nothing more goes out. */
  sendDone = false;
  #sendError: Error | undefined;
  /** The readable is closed, errored or cancelled: nothing more comes in. */
  recvDone = false;

  constructor(fabric: Fabric, from: MemoryConnection, to: MemoryConnection, id: number) {
    this.#fabric = fabric;
    this.#from = from;
    this.#to = to;
    this.#id = id;
    this.readable = new ReadableStream<Uint8Array>({
      start: (c) => {
        this.#rc = c;
      },
      pull: () =>
        new Promise<void>((resolve) => {
          this.#pullWaiting = resolve;
          this.#feed();
        }),
      cancel: () => this.stopReceiving(0, undefined),
    }, { highWaterMark: 0 });
    this.writable = new WritableStream<Uint8Array>({
      start: (c) => {
        this.#wc = c;
        // abort() waits for an in-flight write, which may be waiting for credit forever.
        c.signal?.addEventListener("abort", () => this.resetSending(0, undefined), { once: true });
      },
      write: (chunk) => this.#write(chunk),
      close: () => this.#finish(),
      abort: () => this.resetSending(0, undefined),
    }, { highWaterMark: WRITE_QUEUE_SIZE, size: (chunk) => chunk.byteLength });
  }

  // -- sending side --

  async #write(chunk: Uint8Array): Promise<void> {
    if (!(chunk instanceof Uint8Array)) {
      throw new TypeError("Cannot write to stream: chunk is not a Uint8Array");
    }
    for (let offset = 0; offset < chunk.byteLength; offset += SEGMENT_SIZE) {
      if (this.#sendError !== undefined) throw this.#sendError;
      // A copy: the caller may reuse its buffer before the packet is delivered.
      const segment = chunk.slice(offset, offset + SEGMENT_SIZE);
      if (!this.#hasCredit(segment.byteLength)) {
        await new Promise<void>((resolve, reject) => {
          this.#creditWaiters.push({ need: segment.byteLength, resolve, reject });
        });
      }
      if (this.#sendError !== undefined) throw this.#sendError;
      this.#outstanding += segment.byteLength;
      if (!this.recvDone) this.#fabric.stats.bufferedBytes += segment.byteLength;
      this.#fabric.stats.bytes += segment.byteLength;
      this.#fabric.transmit(this.#from.out, this, () => this.#arrive(segment));
    }
  }

  #hasCredit(need: number): boolean {
    // One packet may always be outstanding, so a window smaller than a segment cannot deadlock.
    return this.#outstanding === 0 || this.#outstanding + need <= this.#fabric.window;
  }

  #finish(): void {
    if (this.#sendError !== undefined) throw this.#sendError;
    this.#setSendDone();
    this.#fabric.transmit(this.#from.out, this, () => {
      if (this.recvDone) return;
      this.#finArrived = true;
      this.#feed();
    });
  }

  /** Resets the sending direction (RESET_STREAM); `local` errors our writable with it. */
  resetSending(code: number, local: Error | undefined): void {
    if (this.sendDone) return;
    this.#failSend(local ?? new StreamError(`Stream was reset with code ${code}`, code));
    this.#fabric.transmit(this.#from.out, this, () => {
      this.failReceiving(new StreamError(`Stream reset by the peer with code ${code}`, code));
    });
  }

  /** Fails the sending direction here without telling the peer (e.g. the connection closed). */
  failSending(err: Error): void {
    if (!this.sendDone) this.#failSend(err);
  }

  #failSend(err: Error): void {
    this.#sendError = err;
    this.#setSendDone();
    this.#wc.error(err);
    const waiters = this.#creditWaiters;
    this.#creditWaiters = [];
    for (const w of waiters) w.reject(err);
  }

  #setSendDone(): void {
    this.sendDone = true;
    this.#from.forgetIfDone(this.#id);
  }

  // -- receiving side --

  #arrive(segment: Uint8Array): void {
    if (this.recvDone) return;
    this.#buffer.push(segment);
    this.#feed();
  }

  #feed(): void {
    const pull = this.#pullWaiting;
    if (pull === undefined) return;
    if (this.#bufferHead < this.#buffer.length) {
      const chunk = this.#take();
      this.#pullWaiting = undefined;
      this.#rc.enqueue(chunk);
      this.#release(chunk.byteLength);
      pull();
    } else if (this.#finArrived) {
      this.#pullWaiting = undefined;
      this.#setRecvDone();
      this.#rc.close();
      pull();
    }
  }

  /** The arrived segments, merged up to {@link READ_SIZE} bytes. */
  #take(): Uint8Array {
    const buffer = this.#buffer;
    let end = this.#bufferHead;
    let size = 0;
    while (
      end < buffer.length &&
      (end === this.#bufferHead || size + buffer[end]!.byteLength <= READ_SIZE)
    ) {
      size += buffer[end]!.byteLength;
      end++;
    }
    let chunk: Uint8Array;
    if (end === this.#bufferHead + 1) chunk = buffer[this.#bufferHead]!;
    else {
      chunk = new Uint8Array(size);
      let at = 0;
      for (let i = this.#bufferHead; i < end; i++) {
        chunk.set(buffer[i]!, at);
        at += buffer[i]!.byteLength;
      }
    }
    if (end === buffer.length) {
      this.#buffer = [];
      this.#bufferHead = 0;
    } else {
      this.#bufferHead = end;
      if (end >= 1024 && end * 2 >= buffer.length) {
        this.#buffer = buffer.slice(end);
        this.#bufferHead = 0;
      }
    }
    return chunk;
  }

  #release(n: number): void {
    this.#outstanding -= n;
    this.#fabric.stats.bufferedBytes -= n;
    while (this.#creditWaiters.length > 0 && this.#hasCredit(this.#creditWaiters[0]!.need)) {
      this.#creditWaiters.shift()!.resolve();
    }
  }

  /** Stops the receiving direction (STOP_SENDING); `local` errors our readable with it. */
  stopReceiving(code: number, local: Error | undefined): void {
    if (this.recvDone) return;
    this.failReceiving(local ?? new StreamError(`Stream was stopped with code ${code}`, code));
    this.#fabric.transmit(this.#to.out, this.#to.out, () => {
      this.failSending(new StreamError(`Stream stopped by the peer with code ${code}`, code));
    });
  }

  /** Fails the receiving direction here, discarding unread data. */
  failReceiving(err: Error): void {
    if (this.recvDone) return;
    // Discarded bytes leave the stats; the sender keeps them outstanding, so it
    // stops at the window as it would with a peer that no longer gives credit.
    this.#fabric.stats.bufferedBytes -= this.#outstanding;
    this.#buffer = [];
    this.#bufferHead = 0;
    this.#setRecvDone();
    this.#rc.error(err);
    const pull = this.#pullWaiting;
    this.#pullWaiting = undefined;
    pull?.();
  }

  #setRecvDone(): void {
    this.recvDone = true;
    this.#to.forgetIfDone(this.#id);
  }
}

/** A stream as one end sees it. */
interface StreamEnd {
  readonly stream: Stream;
  /** The direction this end writes. */
  readonly out: Channel;
  /** The direction this end reads. */
  readonly in: Channel;
}

// ---- connections, listeners, transports -------------------------------------------------------

class MemoryConnection implements Connection {
  readonly remoteAddress: SocketAddress;
  readonly remoteCertificateHash: Uint8Array | undefined;
  readonly closed: Promise<CloseInfo>;
  readonly node: string;
  /** Packets on their way to this end, cancelled when it closes. */
  readonly inbound = new Set<Task>();
  peer!: MemoryConnection;
  pair!: Pair;
  out!: Path;
  #info: CloseInfo | undefined;
  #resolveClosed!: (info: CloseInfo) => void;
  readonly #fabric: Fabric;
  readonly #transport: MemoryTransport;
  #nextId: number;
  readonly #streams = new Map<number, StreamEnd>();
  readonly #incoming = new AsyncQueue<Stream>();

  constructor(
    fabric: Fabric,
    transport: MemoryTransport,
    remoteAddress: SocketAddress,
    remoteCertificateHash: Uint8Array | undefined,
    firstStreamId: number,
  ) {
    this.#fabric = fabric;
    this.#transport = transport;
    this.node = transport.node;
    this.remoteAddress = Object.freeze(remoteAddress);
    this.remoteCertificateHash = remoteCertificateHash;
    this.#nextId = firstStreamId;
    this.closed = new Promise((resolve) => {
      this.#resolveClosed = resolve;
    });
  }

  link(peer: MemoryConnection, pair: Pair): void {
    this.peer = peer;
    this.pair = pair;
    this.out = { pair, to: peer, lastAt: 0 };
  }

  get isClosed(): boolean {
    return this.#info !== undefined;
  }

  openStream(): Promise<Stream> {
    if (this.#info !== undefined) {
      return Promise.reject(
        new Error(`Cannot open stream: connection ${describeClose(this.#info)}`),
      );
    }
    // Client-opened ids are even, server-opened odd, as in QUIC.
    const id = this.#nextId;
    this.#nextId += 2;
    const out = new Channel(this.#fabric, this, this.peer, id);
    const back = new Channel(this.#fabric, this.peer, this, id);
    const end = this.#register(id, out, back);
    // Sent on `out`'s order, so the peer knows the stream before its first byte.
    this.#fabric.transmit(this.out, out, () => this.peer.#accept(id, back, out));
    return Promise.resolve(end.stream);
  }

  /** The peer opened stream `id`: this end writes `writes` and reads `reads`. */
  #accept(id: number, writes: Channel, reads: Channel): void {
    if (this.#info !== undefined) return;
    this.#incoming.push(this.#register(id, writes, reads).stream);
  }

  #register(id: number, out: Channel, inbound: Channel): StreamEnd {
    const stream: Stream = {
      readable: inbound.readable,
      writable: out.writable,
      reset: (code: number) => {
        const err = new StreamError(`Stream was reset with code ${code}`, code);
        out.resetSending(code, err);
        inbound.stopReceiving(code, err);
      },
    };
    const end: StreamEnd = { stream, out, in: inbound };
    this.#streams.set(id, end);
    return end;
  }

  /** Drops a stream from the table once both its directions are finished here. */
  forgetIfDone(id: number): void {
    const end = this.#streams.get(id);
    if (end !== undefined && end.out.sendDone && end.in.recvDone) this.#streams.delete(id);
  }

  incomingStreams(): AsyncIterable<Stream> {
    return this.#incoming;
  }

  close(code = 0, reason = ""): void {
    if (this.#info !== undefined) return;
    if (!Number.isInteger(code) || code < 0) {
      throw new RangeError(
        `Cannot close connection: code must be a non-negative integer, got ${code}`,
      );
    }
    this.shutdown({ code, reason: String(reason), remote: false });
    if (!this.peer.isClosed) {
      // On the path's order: after every byte this end sent before closing.
      this.#fabric.transmit(
        this.out,
        this.out,
        () => this.peer.shutdown({ code, reason, remote: true }),
      );
    }
  }

  /** Closes this end without telling the peer. */
  shutdown(info: CloseInfo): void {
    if (this.#info !== undefined) return;
    this.#info = Object.freeze({ ...info });
    const err = new StreamError(`Connection ${describeClose(info)}`);
    for (const end of [...this.#streams.values()]) {
      end.out.failSending(err);
      end.in.failReceiving(err);
    }
    this.#streams.clear();
    this.#incoming.close();
    this.#transport.conns.delete(this);
    this.#fabric.endpointClosed(this);
    this.#resolveClosed(this.#info);
  }
}

class MemoryListener implements Listener {
  readonly address: SocketAddress;
  readonly transport: MemoryTransport;
  readonly #fabric: Fabric;
  readonly #queue = new AsyncQueue<Connection>();
  #closed = false;

  constructor(fabric: Fabric, transport: MemoryTransport, port: number) {
    this.#fabric = fabric;
    this.transport = transport;
    this.address = Object.freeze({ host: MEMORY_HOST, port: fabric.bind(port, this) });
  }

  connections(): AsyncIterable<Connection> {
    return this.#queue;
  }

  offer(conn: MemoryConnection): void {
    if (!this.#queue.push(conn)) conn.close(0, "listener closed");
  }

  close(): Promise<void> {
    this.shutdown();
    return Promise.resolve();
  }

  shutdown(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#fabric.unbind(this.address.port);
    this.transport.listeners.delete(this);
    // Accepted by the network but never by the application: nobody will ever use them.
    for (const conn of this.#queue.close()) conn.close(0, "listener closed");
  }
}

class MemoryTransport implements Transport {
  readonly name = "memory";
  readonly family = "memory";
  readonly identity: TlsIdentity;
  readonly node: string;
  readonly listeners = new Set<MemoryListener>();
  readonly conns = new Set<MemoryConnection>();
  readonly dials = new Set<PendingDial>();
  readonly #fabric: Fabric;
  #ephemeralPort: number | undefined;
  #closed = false;

  constructor(fabric: Fabric, identity: TlsIdentity) {
    this.#fabric = fabric;
    this.identity = identity;
    this.node = peerIdHexFromServerName(identity.serverName) ?? identity.serverName;
  }

  listen(address: SocketAddress): Promise<MemoryListener> {
    try {
      if (this.#closed) throw new Error("Cannot listen: transport is closed");
      const port = address.port;
      if (!Number.isInteger(port) || port < 0 || port > 65535) {
        throw new RangeError(`Cannot listen: port must be an integer from 0 to 65535, got ${port}`);
      }
      const listener = new MemoryListener(this.#fabric, this, port);
      this.listeners.add(listener);
      return Promise.resolve(listener);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  async dial(target: DialTarget, options: DialOptions = {}): Promise<MemoryConnection> {
    const signal = options.signal;
    signal?.throwIfAborted();
    if (this.#closed) throw new Error("Cannot dial: transport is closed");
    return await this.#fabric.dial(this, target, target.certificateHash, signal);
  }

  /** The port peers see this node's connections come from: its first listener's, like a shared QUIC endpoint. */
  endpointPort(): number {
    for (const l of this.listeners) return l.address.port;
    this.#ephemeralPort ??= this.#fabric.allocatePort();
    return this.#ephemeralPort;
  }

  close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      for (const l of [...this.listeners]) l.shutdown();
      for (const d of [...this.dials]) d.fail(new Error("Cannot dial: transport is closed"));
      for (const c of [...this.conns]) c.close(0, "transport closed");
      if (this.#ephemeralPort !== undefined) this.#fabric.releasePort(this.#ephemeralPort);
      this.#fabric.transports.delete(this);
    }
    return Promise.resolve();
  }
}
