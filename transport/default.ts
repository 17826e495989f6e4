// The transport a node uses unless told otherwise: raw QUIC through the adapter of the runtime it runs on.

import type { TransportFactory } from "./types.ts";

/**
 * The raw-QUIC adapter of the current runtime: `deno_quic` on Deno (which
 * needs `--unstable-net`), `bun_quic` on Bun, each with its default options.
 * The adapter module is imported only here, on demand, so code that never
 * asks for it (and `lib/`, which never does) loads no runtime-specific code.
 * Pass another factory to `withTransport(...)` to use something else, e.g.
 * `webtransport_h2` where UDP is blocked.
 *
 * @returns a factory for the runtime's QUIC adapter
 * @throws {Error} on a runtime that is neither Deno nor Bun
 *
 * @example
 * ```ts
 * import { Network } from "@mosaik/mosaik";
 * import { defaultTransport } from "./default.ts";
 *
 * const factory = await defaultTransport(); // what build() uses when withTransport is not called
 * await using network = await Network.builder("my-app")
 *   .withTransport(factory)
 *   .withListenAddress("127.0.0.1:0")
 *   .build();
 * if (network.local().addr().addresses[0]?.transport !== "quic") throw new Error("raw QUIC");
 * ```
 */
export async function defaultTransport(): Promise<TransportFactory> {
  const runtime = globalThis as { Deno?: unknown; Bun?: unknown };
  if (runtime.Bun !== undefined) {
    const { bunQuic } = await import("./bun_quic.ts");
    return bunQuic();
  }
  if (runtime.Deno !== undefined) {
    const { denoQuic } = await import("./deno_quic.ts");
    return denoQuic();
  }
  throw new Error(
    "Cannot pick a default transport: the runtime is neither Deno nor Bun; pass one to withTransport(...)",
  );
}
