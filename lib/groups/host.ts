// The groups host over a Network: bonds each joined group with the peers whose entries list it, and routes their messages.

/**
 * {@link NetworkGroupHost} connects the {@link Groups} registry to a
 * {@link Network}:
 *
 * - Joining a group adds its id to this node's signed peer entry (and
 *   leaving removes it), so discovery tells every peer who is in which group.
 * - For every peer whose entry lists a joined group, exactly one side opens
 *   the bond: the one with the lower PeerId (so simultaneous dials cannot
 *   happen). It tries when the group is joined, when a connection to the peer
 *   comes up, when the peer's entry changes, and on a timer with exponential
 *   backoff while the peer still lists the group and has no bond.
 * - Incoming `{ p: "bond" }` streams are handshaken against the joined
 *   groups' keys. A new bond from a peer that already has one in that group
 *   replaces it (the peer has lost the old one).
 * - Limits: at most `maxBonds` bonds and handshakes on this node (30429
 *   beyond), at most {@link MAX_PENDING_PER_PEER} handshakes per peer, and
 *   frames of at most `maxMessageSize` bytes (400 beyond).
 *
 * @module
 */

import { PeerId } from "../primitives/ids.ts";
import { UniqueId } from "../primitives/digest.ts";
import { DEFAULT_MAX_FRAME_SIZE } from "../wire/mod.ts";
import { CloseCode } from "../../transport/types.ts";
import type { Network } from "../network/network.ts";
import type { PeerEntry } from "../network/entry.ts";
import type { AnyStateMachine } from "../machine/state_machine.ts";
import type { NodeId } from "../raft/types.ts";
import type { GroupDefinition } from "./builder.ts";
import type { GroupMessage } from "./driver.ts";
import type { AttachedLink, GroupHost, GroupSink } from "./groups.ts";
import type { Bond as BondInfo, BondMetrics, Bonds } from "./types.ts";
import type { Log } from "../log/logger.ts";
import {
  acceptBond,
  type Bond,
  type BondChannel,
  BondError,
  type BondTimings,
  openBond,
  refuseBond,
} from "./bond/bond.ts";

/** Stream purpose of bond streams. */
export const BOND_PURPOSE = "bond";

/** Default most bonds (and handshakes in progress) on one node, over all its groups. */
export const DEFAULT_MAX_BONDS = 1024;

/** Default bond handshake timeout in milliseconds. */
export const DEFAULT_HANDSHAKE_TIMEOUT = 5_000;

/** Most bond handshakes one peer may have in progress with this node. */
export const MAX_PENDING_PER_PEER = 16;

/** Shortest and longest wait before re-dialing a bond that failed. */
const BACKOFF_MIN = 50;
const BACKOFF_MAX = 5_000;

/** Limits and timeouts of the host (from `NetworkBuilder.withGroupsConfig`). */
export interface HostLimits {
  readonly maxBonds: number;
  readonly maxMessageSize: number;
  readonly handshakeTimeout: number;
}

interface Retry {
  attempts: number;
  at: number;
}

class HostedGroup {
  readonly bonds = new Map<NodeId, { bond: Bond; id: UniqueId }>();
  /** Peers we are dialing a bond to. */
  readonly dialing = new Set<NodeId>();
  /** Backoff state of peers whose last bond attempt failed or whose bond died. */
  readonly retry = new Map<NodeId, Retry>();
  /** Peers that departed, with the entry version they had then: not re-dialed until it changes. */
  readonly departed = new Map<NodeId, string>();
  detached = false;
  readonly log: Log;

  constructor(
    readonly definition: GroupDefinition<AnyStateMachine>,
    readonly sink: GroupSink,
    log: Log,
  ) {
    this.log = log.forGroup(definition.groupId.short());
  }

  get hex(): string {
    return this.definition.groupId.toHex();
  }

  timings(limits: HostLimits, onMessage: (m: GroupMessage, b: Bond) => void): BondTimings {
    const c = this.definition.consensus;
    return {
      heartbeatInterval: c.heartbeatInterval,
      heartbeatJitter: Math.min(c.heartbeatJitter, c.heartbeatInterval - 1),
      maxMissedHeartbeats: c.maxMissedHeartbeats,
      handshakeTimeout: limits.handshakeTimeout,
      maxMessageSize: limits.maxMessageSize,
      onMessage,
    };
  }
}

/** The entry's version as a comparable string. */
const versionOf = (e: PeerEntry) => `${e.version.start}/${e.version.update}`;

/** Routes groups' traffic over bonds on a {@link Network}. Made by `network.groups()`. */
export class NetworkGroupHost implements GroupHost {
  readonly self: PeerId;
  readonly log: Log;
  readonly #network: Network;
  readonly #limits: HostLimits;
  readonly #selfHex: string;
  readonly #groups = new Map<string, HostedGroup>();
  readonly #pendingByPeer = new Map<string, number>();
  readonly #tasks = new Set<Promise<unknown>>();
  readonly #unsubscribe: (() => void)[] = [];
  #handshakes = 0;
  #timer: ReturnType<typeof setInterval> | undefined;
  #closed = false;

  /**
   * @param network the started network
   * @param limits bond limits (defaults: {@link DEFAULT_MAX_BONDS}, 16 MiB, {@link DEFAULT_HANDSHAKE_TIMEOUT})
   */
  constructor(network: Network, limits: Partial<HostLimits> = {}) {
    this.#network = network;
    this.self = network.identity.peerId;
    this.log = network.log;
    this.#selfHex = this.self.toHex();
    this.#limits = {
      maxBonds: limits.maxBonds ?? DEFAULT_MAX_BONDS,
      maxMessageSize: limits.maxMessageSize ?? DEFAULT_MAX_FRAME_SIZE,
      handshakeTimeout: limits.handshakeTimeout ?? DEFAULT_HANDSHAKE_TIMEOUT,
    };
    this.#unsubscribe.push(
      network.handleStreams(BOND_PURPOSE, (incoming) => {
        const channel: BondChannel = {
          stream: incoming.stream,
          connectionClosed: incoming.connection.closed,
          abort: (code, reason) => incoming.connection.close(code, reason),
        };
        this.#spawn(this.#accept(channel, incoming.peerId));
      }),
      network.onConnection((peer) => this.#considerPeer(peer.toHex())),
      network.catalog.onChange((event) => this.#considerPeer(event.peerId.toHex())),
    );
  }

  /** Bonds currently up, over all groups. */
  get bondCount(): number {
    let n = 0;
    for (const g of this.#groups.values()) n += g.bonds.size;
    return n;
  }

  attach(definition: GroupDefinition<AnyStateMachine>, sink: GroupSink): AttachedLink {
    if (this.#closed) throw new Error("Cannot join group: network is closed");
    const hosted = new HostedGroup(definition, sink, this.#network.log);
    this.#groups.set(hosted.hex, hosted);
    this.#announce();
    this.#timer ??= setInterval(() => this.#tick(), 100);
    this.#considerGroup(hosted);
    const link: AttachedLink = {
      send: (peer, message) => {
        const b = hosted.bonds.get(peer);
        if (b === undefined) return false;
        if (message.t === "bye") {
          void b.bond.depart();
          return true;
        }
        return b.bond.send(message);
      },
      bonded: () => hosted.bonds.keys(),
      known: () =>
        this.#network.catalog.peersInGroup(definition.groupId).map((e) => e.peerId.toHex()),
      bonds: () => snapshot(hosted),
      bondMetrics: () => bondMetrics(hosted),
      detach: () => this.#detach(hosted),
    };
    return link;
  }

  /** Departs every bond of every group and stops. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#timer);
    for (const u of this.#unsubscribe) u();
    await Promise.all([...this.#groups.values()].map((g) => this.#detach(g)));
    while (this.#tasks.size > 0) await Promise.allSettled([...this.#tasks]);
  }

  // ---- internals ------------------------------------------------------------------------------

  #spawn(task: Promise<unknown>): void {
    const p = task.catch(() => {
      // A peer's failure to bond must never crash the node.
    });
    this.#tasks.add(p);
    void p.finally(() => this.#tasks.delete(p));
  }

  #announce(): void {
    const ids = [...this.#groups.values()].filter((g) => !g.detached).map((g) =>
      g.definition.groupId
    );
    void this.#network.setGroups(ids).catch(() => {});
  }

  async #detach(g: HostedGroup): Promise<void> {
    if (g.detached) return;
    g.detached = true;
    if (this.#groups.get(g.hex) === g) this.#groups.delete(g.hex);
    this.#announce();
    const bonds = [...g.bonds.values()].map((b) => b.bond);
    // Flush a departure to every peer; a peer that never answers is cut after a few heartbeats.
    const wait = g.definition.consensus.heartbeatInterval * 3;
    await Promise.all(bonds.map(async (b) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([
        b.depart(),
        new Promise((r) => timer = setTimeout(r, wait)),
      ]);
      clearTimeout(timer);
      await b[Symbol.asyncDispose]();
    }));
    g.bonds.clear();
    if (this.#groups.size === 0) {
      clearInterval(this.#timer);
      this.#timer = undefined;
    }
  }

  #tick(): void {
    if (this.#closed) return;
    for (const g of this.#groups.values()) this.#considerGroup(g);
  }

  /** Considers every peer whose entry lists the group (only those can be bonded). */
  #considerGroup(g: HostedGroup): void {
    for (const entry of this.#network.catalog.peersInGroup(g.definition.groupId)) {
      this.#consider(g, entry.peerId.toHex());
    }
  }

  #considerPeer(peer: string): void {
    if (this.#closed) return;
    for (const g of this.#groups.values()) this.#consider(g, peer);
  }

  /** Dials a bond to `peer` in `g` when it is our turn (lower PeerId) and none is up or coming. */
  #consider(g: HostedGroup, peer: string): void {
    if (g.detached || peer === this.#selfHex || !(this.#selfHex < peer)) return;
    if (g.bonds.has(peer) || g.dialing.has(peer)) return;
    const entry = this.#network.catalog.get(PeerId.parse(peer));
    if (entry === undefined || !entry.groups.some((id) => id.equals(g.definition.groupId))) return;
    const departedAt = g.departed.get(peer);
    if (departedAt !== undefined) {
      if (departedAt === versionOf(entry)) return;
      g.departed.delete(peer);
    }
    const retry = g.retry.get(peer);
    if (retry !== undefined && Date.now() < retry.at) return;
    if (this.#handshakes + this.bondCount >= this.#limits.maxBonds) return;
    g.dialing.add(peer);
    this.#handshakes++;
    this.#spawn(
      this.#dial(g, peer, entry).finally(() => {
        g.dialing.delete(peer);
        this.#handshakes--;
      }),
    );
  }

  async #dial(g: HostedGroup, peer: string, entry: PeerEntry): Promise<void> {
    let bond: Bond;
    try {
      await this.#network.connect(entry.peerId);
      const stream = await this.#network.openStream(peer, { p: BOND_PURPOSE });
      const conn = this.#network.peerConnection(peer);
      if (conn === undefined) {
        await stream[Symbol.asyncDispose]();
        throw new Error("connection lost");
      }
      bond = await openBond({
        stream,
        connectionClosed: conn.closed,
        abort: (code, reason) => conn.close(code, reason),
      }, {
        ...g.timings(this.#limits, (m, b) => this.#onMessage(g, b, m)),
        identity: this.#network.identity,
        networkId: this.#network.networkId,
        groupId: g.definition.groupId,
        key: g.definition.key,
        certHash: entry.certificateHash,
      });
    } catch (err) {
      this.#backoff(g, peer);
      if (g.log.enabled("debug")) {
        g.log.debug("bond.failed", `Bond to peer failed: ${errorText(err)}`, {
          role: "dialer",
          ...(err instanceof BondError ? { code: err.code, remote: err.remote } : {}),
        }, peer);
      }
      throw err;
    }
    this.#adopt(g, bond);
  }

  async #accept(channel: BondChannel, connectedPeer: PeerId | undefined): Promise<void> {
    const peerKey = connectedPeer?.toHex() ?? "?";
    const pending = this.#pendingByPeer.get(peerKey) ?? 0;
    if (this.#closed) {
      await refuseBond(channel, CloseCode.Normal, "Network is closing");
      return;
    }
    if (
      this.#handshakes + this.bondCount >= this.#limits.maxBonds ||
      pending >= MAX_PENDING_PER_PEER
    ) {
      await refuseBond(channel, CloseCode.TooManyBonds, "Too many bonds");
      return;
    }
    this.#pendingByPeer.set(peerKey, pending + 1);
    this.#handshakes++;
    let hosted: HostedGroup | undefined;
    let bond: Bond;
    try {
      bond = await acceptBond(channel, {
        // Timings are per group, but the group is known only from the hello: use the strictest.
        heartbeatInterval: 1,
        heartbeatJitter: 0,
        maxMissedHeartbeats: 1,
        handshakeTimeout: this.#limits.handshakeTimeout,
        maxMessageSize: this.#limits.maxMessageSize,
        identity: this.#network.identity,
        networkId: this.#network.networkId,
        lookupGroup: (id) => {
          hosted = this.#groups.get(id.toHex());
          return hosted?.detached === false ? hosted.definition.key : undefined;
        },
        certHash: this.#network.tls.certificateHash,
        timingsFor: () => {
          const g = hosted!;
          return g.timings(this.#limits, (m, b) => this.#onMessage(g, b, m));
        },
      });
    } catch (err) {
      // Before the hello names a joined group there is no group to speak for: the node's log.
      const log = hosted?.log ?? this.#network.log;
      if (log.enabled("debug")) {
        log.debug("bond.failed", `Bond from peer failed: ${errorText(err)}`, {
          role: "acceptor",
          ...(err instanceof BondError ? { code: err.code, remote: err.remote } : {}),
        }, connectedPeer?.toHex());
      }
      throw err;
    } finally {
      this.#handshakes--;
      const left = (this.#pendingByPeer.get(peerKey) ?? 1) - 1;
      if (left === 0) this.#pendingByPeer.delete(peerKey);
      else this.#pendingByPeer.set(peerKey, left);
    }
    if (connectedPeer !== undefined && !connectedPeer.equals(bond.peer)) {
      bond.close(CloseCode.Unauthorized, "Bond peer is not the connection's peer");
      return;
    }
    if (hosted === undefined || hosted.detached || this.#closed) {
      bond.close(CloseCode.UnknownGroup, "Group was left");
      return;
    }
    this.#adopt(hosted, bond);
  }

  /** Registers an established bond and tells the group; closes it when the group is gone. */
  #adopt(g: HostedGroup, bond: Bond): void {
    if (g.detached || this.#closed) {
      bond.close(CloseCode.UnknownGroup, "Group was left");
      return;
    }
    const peer = bond.peerHex;
    const previous = g.bonds.get(peer);
    const record = { bond, id: UniqueId.random() };
    g.bonds.set(peer, record);
    g.retry.delete(peer);
    g.departed.delete(peer);
    if (previous !== undefined) previous.bond.close(CloseCode.DuplicateBond, "Bond replaced");
    g.log.info("bond.up", `Bond up (${bond.role})`, {
      role: bond.role,
      replaced: previous !== undefined,
    }, peer);
    this.#spawn(bond.closed.then((info) => {
      const current = g.bonds.get(peer)?.id === record.id;
      const level = info.code === CloseCode.Departure || info.code === CloseCode.DuplicateBond ||
          g.detached
        ? "info"
        : "warn";
      g.log[level](
        "bond.down",
        `Bond down (${info.code}${info.reason === "" ? "" : `: ${info.reason}`})`,
        {
          code: info.code,
          reason: info.reason,
          remote: info.remote,
          replaced: !current,
          bytesIn: bond.bytesIn,
          bytesOut: bond.bytesOut,
        },
        peer,
      );
      // A bond is removed only by its own id.
      if (!current) return;
      g.bonds.delete(peer);
      if (info.code === CloseCode.Departure) {
        const entry = this.#network.catalog.get(bond.peer);
        g.departed.set(peer, entry === undefined ? "" : versionOf(entry));
      } else {
        this.#backoff(g, peer);
      }
      if (!g.detached) g.sink.onPeerDown(peer);
    }));
    g.sink.onPeerUp(peer);
  }

  #onMessage(g: HostedGroup, bond: Bond, message: GroupMessage): void {
    if (g.detached || g.bonds.get(bond.peerHex)?.bond !== bond) return;
    g.sink.onMessage(bond.peerHex, message);
  }

  #backoff(g: HostedGroup, peer: string): void {
    const attempts = (g.retry.get(peer)?.attempts ?? 0) + 1;
    const delay = Math.min(BACKOFF_MAX, BACKOFF_MIN * 2 ** (attempts - 1));
    g.retry.set(peer, { attempts, at: Date.now() + delay * (0.5 + Math.random() / 2) });
  }
}

function snapshot(g: HostedGroup): Bonds {
  const list: BondInfo[] = [...g.bonds.values()].map((b) => ({ peerId: b.bond.peer, id: b.id }));
  const keys = new Set(g.bonds.keys());
  return {
    size: list.length,
    has: (peer: PeerId) => keys.has(peer.toHex()),
    [Symbol.iterator]: () => list[Symbol.iterator](),
  };
}

function bondMetrics(g: HostedGroup): BondMetrics[] {
  const out: BondMetrics[] = [];
  for (const { bond } of g.bonds.values()) {
    out.push({
      peerId: bond.peer,
      bytesIn: bond.bytesIn,
      bytesOut: bond.bytesOut,
      messagesIn: bond.framesReceived,
      messagesOut: bond.framesSent,
      rttMs: bond.rttMs,
    });
  }
  return out;
}

/** An error's message for a log line (never its stack). */
function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
