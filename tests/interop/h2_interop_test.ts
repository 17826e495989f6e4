// Deno ↔ Bun over webtransport_h2: this runtime and the other one, as a child process, exchange framed messages (dialling each way) and see each other die.

import { Buffer } from "node:buffer";
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { runtime, test } from "../harness.ts";
import { assert, assertEquals } from "../assert.ts";
import { webTransportH2 } from "../../transport/webtransport_h2.ts";
import { sha256 } from "../../transport/cert.ts";
import type { CloseInfo } from "../../transport/types.ts";
import { randomIdentity } from "../conformance/transport.ts";
import { DONE_CODE, doneReason, exchange, type Listening, serve } from "./h2_peer.ts";

const other = runtime === "deno" ? "bun" : "deno";
const MESSAGES = 400;
/** Bound on each wait for the child, in ms; the child gives up by itself after 60 s. */
const WAIT_MS = 30_000;

const root = fileURLToPath(new URL("../../", import.meta.url));
const peerScript = fileURLToPath(new URL("./h2_peer.ts", import.meta.url));

/** `promise`, or a rejection naming `what` after `WAIT_MS`. */
async function within<T>(promise: Promise<T>, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`Timed out waiting for ${what}`)), WAIT_MS);
  });
  try {
    return await Promise.race([promise, expired]);
  } finally {
    clearTimeout(timer);
  }
}

/** The other runtime running `h2_peer.ts` with `args`, its stdout split into JSON events. */
class Peer {
  readonly #child: ChildProcess;
  readonly #events: Record<string, unknown>[] = [];
  readonly #waiters = new Set<() => void>();
  readonly exited: Promise<number | null>;
  #stderr = "";

  constructor(args: string[]) {
    const bin = fileURLToPath(new URL(`../../node_modules/.bin/${other}`, import.meta.url));
    if (!existsSync(bin)) throw new Error(`Cannot run the interop test: ${bin} is missing`);
    const argv = other === "deno" ? ["run", "-A", peerScript, ...args] : [peerScript, ...args];
    this.#child = spawn(bin, argv, {
      cwd: root,
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, NO_COLOR: "1", DENO_NO_UPDATE_CHECK: "1" },
    });
    let pending = "";
    this.#child.stdout?.setEncoding("utf8");
    this.#child.stdout?.on("data", (chunk: string) => {
      pending += chunk;
      for (let nl = pending.indexOf("\n"); nl >= 0; nl = pending.indexOf("\n")) {
        const line = pending.slice(0, nl).trim();
        pending = pending.slice(nl + 1);
        if (line.startsWith("{")) this.#events.push(JSON.parse(line));
      }
      this.#wake();
    });
    this.#child.stderr?.setEncoding("utf8");
    this.#child.stderr?.on("data", (chunk: string) => (this.#stderr += chunk));
    // "close" comes after the process exits and its pipes are drained and closed;
    // "error" instead when it could not start.
    this.exited = new Promise((resolve) => {
      this.#child.once("close", (code: number | null) => {
        this.#wake();
        resolve(code);
      });
      this.#child.once("error", (err: Error) => {
        this.#stderr += String(err);
        this.#wake();
        resolve(null);
      });
    });
  }

  /** `promise`, unless the child exits first or `WAIT_MS` passes. */
  async guard<T>(promise: Promise<T>, what: string): Promise<T> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const stop = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`Timed out waiting for ${what}`)), WAIT_MS);
      this.exited.then(() =>
        reject(new Error(`The ${other} peer exited before ${what}: ${this.#stderr}`))
      );
    });
    stop.catch(() => {});
    try {
      return await Promise.race([promise, stop]);
    } finally {
      clearTimeout(timer);
    }
  }

  #wake(): void {
    for (const w of this.#waiters) w();
  }

  /** The first event named `name`, waiting for it; fails if the child exits or `WAIT_MS` passes. */
  async event<T>(name: string): Promise<T> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    let wake: () => void = () => {};
    try {
      return await new Promise<T>((resolve, reject) => {
        timer = setTimeout(
          () => reject(new Error(`No "${name}" from the ${other} peer in ${WAIT_MS} ms`)),
          WAIT_MS,
        );
        wake = () => {
          const found = this.#events.find((e) => name in e);
          if (found !== undefined) resolve(found[name] as T);
          else if (this.#child.exitCode !== null || this.#child.signalCode !== null) {
            reject(new Error(`The ${other} peer exited without "${name}": ${this.#stderr}`));
          }
        };
        this.#waiters.add(wake);
        wake();
      });
    } finally {
      clearTimeout(timer);
      this.#waiters.delete(wake);
    }
  }

  /** Waits for the child to exit by itself (bounded) and checks that it succeeded. */
  async success(): Promise<void> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const code = await Promise.race([
      this.exited,
      new Promise<"timeout">((resolve) => (timer = setTimeout(() => resolve("timeout"), WAIT_MS))),
    ]).finally(() => clearTimeout(timer));
    assertEquals(code, 0, `the ${other} peer's exit (stderr: ${this.#stderr})`);
  }

  /** Ends the child if it is still running, and waits until it is gone. */
  async kill(): Promise<void> {
    if (this.#child.exitCode === null && this.#child.signalCode === null) {
      this.#child.kill("SIGKILL");
    }
    await this.exited;
  }
}

test(`webtransport_h2 interop: ${runtime} listens, ${other} dials`, async () => {
  const identity = await randomIdentity();
  const transport = await webTransportH2()({ identity });
  let peer: Peer | undefined;
  try {
    const listener = await transport.listen({ host: "127.0.0.1", port: 0 });
    const accepted = listener.connections()[Symbol.asyncIterator]().next();
    peer = new Peer([
      "dial",
      String(listener.address.port),
      Buffer.from(identity.certificateDer).toString("base64"),
      identity.serverName,
      String(MESSAGES),
    ]);
    const next = await peer.guard(accepted, "its connection");
    assert(next.done !== true, "a connection arrived");
    // The peer closes once its messages came back; it may exit right after.
    const closed = await within(serve(next.value), "the exchange");
    assertEquals(closed, { code: DONE_CODE, reason: doneReason(other), remote: true });
    assertEquals(await peer.event("verified"), { count: MESSAGES, peer: runtime });
    const peerClosed = await peer.event<CloseInfo>("closed");
    assertEquals(peerClosed, { code: DONE_CODE, reason: doneReason(other), remote: false });
    await peer.success();
  } finally {
    await peer?.kill();
    await transport.close();
  }
}, { timeout: 90_000 });

test(`webtransport_h2 interop: ${other} listens, ${runtime} dials`, async () => {
  const transport = await webTransportH2()({ identity: await randomIdentity() });
  let peer: Peer | undefined;
  try {
    peer = new Peer(["listen"]);
    const listening = await peer.event<Listening>("listening");
    const conn = await transport.dial({
      address: { host: "127.0.0.1", port: listening.port },
      certificateHash: await sha256(new Uint8Array(Buffer.from(listening.certificate, "base64"))),
      serverName: listening.serverName,
    });
    assertEquals(await peer.guard(exchange(conn, MESSAGES), "the exchange"), other);
    conn.close(DONE_CODE, doneReason(runtime));
    assertEquals(await conn.closed, {
      code: DONE_CODE,
      reason: doneReason(runtime),
      remote: false,
    });
    assertEquals(await peer.event("closed"), {
      code: DONE_CODE,
      reason: doneReason(runtime),
      remote: true,
    });
    await peer.success();
  } finally {
    await peer?.kill();
    await transport.close();
  }
}, { timeout: 90_000 });

test(
  `webtransport_h2 interop: ${runtime} sees the ${other} peer's process die as a remote close`,
  async () => {
    const identity = await randomIdentity();
    const transport = await webTransportH2()({ identity });
    let peer: Peer | undefined;
    try {
      const listener = await transport.listen({ host: "127.0.0.1", port: 0 });
      const accepted = listener.connections()[Symbol.asyncIterator]().next();
      peer = new Peer([
        "dial",
        String(listener.address.port),
        Buffer.from(identity.certificateDer).toString("base64"),
        identity.serverName,
        "1000000", // more than it can send before it is killed
      ]);
      const next = await peer.guard(accepted, "its connection");
      assert(next.done !== true, "a connection arrived");
      const conn = next.value;
      const stream = await peer.guard(
        conn.incomingStreams()[Symbol.asyncIterator]().next(),
        "its first stream",
      );
      assert(stream.done !== true, "a stream arrived");
      const reader = stream.value.readable.getReader();
      assert((await within(reader.read(), "its first bytes")).done !== true);
      await peer.kill();
      const closed = await within(conn.closed, "the close");
      assertEquals({ code: closed.code, remote: closed.remote }, { code: 0, remote: true });
      reader.releaseLock();
    } finally {
      await peer?.kill();
      await transport.close();
    }
  },
  { timeout: 90_000 },
);
