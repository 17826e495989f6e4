// Test helper: a few Network nodes on MemoryNetwork or real loopback QUIC, with fast consensus timings, for group tests.

import { Network, type NetworkBuilder } from "../lib/network/network.ts";
import { ConsensusConfig } from "../lib/groups/config.ts";
import { MemoryNetwork } from "../transport/memory.ts";

/** Which transport the nodes use. */
export type Fabric = "memory" | "quic";

/** Consensus timings short enough for tests (heartbeat 25 ms, election 150–225 ms). */
export const FAST: ConsensusConfig = ConsensusConfig.builder()
  .withHeartbeatInterval(25)
  .withHeartbeatJitter(5)
  .withMaxMissedHeartbeats(8)
  .withElectionTimeout(150)
  .withElectionTimeoutJitter(75)
  .withBootstrapDelay(150)
  .withForwardTimeout(2_000)
  .withQueryTimeout(2_000)
  .build();

/** Default deadline of {@link eventually}. */
export const DEADLINE_MS = 10_000;

/** Polls `cond` every 5 ms until it holds; throws naming `what` after `ms`. */
export async function eventually(
  cond: () => boolean | Promise<boolean>,
  what: string,
  ms = DEADLINE_MS,
): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`Timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** `promise`, or a rejection naming `what` after `ms`. */
export async function within<T>(promise: Promise<T>, what: string, ms = DEADLINE_MS): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`Timed out after ${ms} ms: ${what}`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Nodes of one network name on one fabric; the first node is everyone's bootstrap peer. */
export class Nodes implements AsyncDisposable {
  readonly fabric: Fabric;
  /** The in-process network (memory fabric only): partitions, isolation. */
  readonly memory: MemoryNetwork | undefined;
  readonly all: Network[] = [];
  readonly #name: string;
  readonly #closed = new Set<Network>();

  constructor(fabric: Fabric, name = "group-test", seed = 1) {
    this.fabric = fabric;
    this.#name = name;
    this.memory = fabric === "memory" ? new MemoryNetwork({ latencyMs: 1, seed }) : undefined;
  }

  /** A builder with this fabric's transport, a loopback listen address and fast discovery. */
  builder(): NetworkBuilder {
    let b = Network.builder(this.#name)
      .withListenAddress("127.0.0.1:0")
      .withDiscoveryConfig({ announceInterval: 100, staleAfter: 5_000, syncTimeout: 5_000 })
      .withGroupsConfig({ handshakeTimeout: 3_000 });
    if (this.memory !== undefined) b = b.withTransport(this.memory.transport());
    const first = this.all.find((n) => !this.#closed.has(n));
    if (first !== undefined) b = b.withBootstrap(first.local().addr());
    return b;
  }

  /** Builds and starts one more node (bootstrapping to the first live one). */
  async add(configure: (b: NetworkBuilder) => NetworkBuilder = (b) => b): Promise<Network> {
    const n = await configure(this.builder()).build();
    this.all.push(n);
    return n;
  }

  /** Builds `count` more nodes. */
  async addMany(count: number): Promise<Network[]> {
    const out: Network[] = [];
    for (let i = 0; i < count; i++) out.push(await this.add());
    return out;
  }

  /** Closes one node's network (its groups leave gracefully). */
  async close(n: Network): Promise<void> {
    this.#closed.add(n);
    await n.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.memory?.heal();
    await Promise.all(this.all.map((n) => n.close().catch(() => {})));
    await this.memory?.close();
  }
}
