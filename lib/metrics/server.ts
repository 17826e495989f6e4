// The optional HTTP endpoint serving /metrics in Prometheus text format, on node:http (Deno and Bun alike).

import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { SocketAddress } from "../../transport/types.ts";
import { PROMETHEUS_CONTENT_TYPE } from "./prometheus.ts";
import { checkMetricsConfig, METRICS_PATH, type MetricsConfig } from "./config.ts";

/**
 * A small HTTP server: `GET`/`HEAD /metrics` answers with what `render`
 * returns; any other path is 404, any other method on `/metrics` 405.
 * {@link close} also ends kept-alive connections, so nothing lingers.
 *
 * @internal made by the network
 */
export class MetricsServer {
  readonly #server: Server;
  readonly #address: SocketAddress;
  #closing: Promise<void> | undefined;

  private constructor(server: Server, address: SocketAddress) {
    this.#server = server;
    this.#address = address;
  }

  /**
   * Binds and starts serving.
   *
   * @param config port and host
   * @param render the body of `/metrics`, called per request
   * @returns the listening server
   * @throws {Error} (as a rejection) when the address cannot be bound
   */
  static start(config: MetricsConfig, render: () => string): Promise<MetricsServer> {
    checkMetricsConfig(config);
    const server = createServer((req, res) => handle(req, res, render));
    return new Promise((resolve, reject) => {
      const onError = (err: Error) => reject(err);
      server.once("error", onError);
      server.listen(config.port, config.host ?? "127.0.0.1", () => {
        server.off("error", onError);
        const a = server.address() as AddressInfo;
        resolve(new MetricsServer(server, { host: a.address, port: a.port }));
      });
    });
  }

  /** The bound address (the real port when 0 was asked for). */
  get address(): SocketAddress {
    return this.#address;
  }

  /** Stops listening and closes every connection. Idempotent. */
  close(): Promise<void> {
    this.#closing ??= new Promise<void>((resolve) => {
      this.#server.close(() => resolve());
      this.#server.closeAllConnections?.();
    });
    return this.#closing;
  }
}

function handle(req: IncomingMessage, res: ServerResponse, render: () => string): void {
  const path = (req.url ?? "/").split("?", 1)[0];
  if (path !== METRICS_PATH) {
    reply(res, 404, "text/plain; charset=utf-8", "Not found\n", req.method === "HEAD");
    return;
  }
  if (req.method !== "GET" && req.method !== "HEAD") {
    res.setHeader("Allow", "GET, HEAD");
    reply(res, 405, "text/plain; charset=utf-8", "Method not allowed\n", false);
    return;
  }
  let body: string;
  try {
    body = render();
  } catch {
    reply(res, 500, "text/plain; charset=utf-8", "Cannot render metrics\n", false);
    return;
  }
  reply(res, 200, PROMETHEUS_CONTENT_TYPE, body, req.method === "HEAD");
}

function reply(
  res: ServerResponse,
  status: number,
  type: string,
  body: string,
  head: boolean,
): void {
  const bytes = new TextEncoder().encode(body);
  res.writeHead(status, { "Content-Type": type, "Content-Length": String(bytes.byteLength) });
  res.end(head ? undefined : bytes);
}
