// Settings of the metrics endpoint, apart from the server so that node:http loads only when it is used.

/** Where the metrics endpoint listens (`Network.builder().withMetrics(…)`). */
export interface MetricsConfig {
  /** TCP port; 0 picks a free one (read it back with `network.metricsAddress()`). */
  readonly port: number;
  /**
   * Interface to bind (default `"127.0.0.1"`: only this machine can scrape).
   * Use `"0.0.0.0"` or `"::"` to let a Prometheus elsewhere in.
   */
  readonly host?: string;
}

/** The path that serves the metrics. */
export const METRICS_PATH = "/metrics";

/**
 * Checks a {@link MetricsConfig}.
 *
 * @throws {RangeError} when the port is not an integer in 0–65535 or the host is empty
 */
export function checkMetricsConfig(config: MetricsConfig): void {
  if (!Number.isInteger(config.port) || config.port < 0 || config.port > 65535) {
    throw new RangeError("Invalid metrics config: port must be an integer from 0 to 65535");
  }
  if (config.host !== undefined && (typeof config.host !== "string" || config.host === "")) {
    throw new RangeError("Invalid metrics config: host must be a non-empty string");
  }
}
