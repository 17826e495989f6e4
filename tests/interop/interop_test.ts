// Deno↔Bun over raw QUIC: this runtime's adapter against the other runtime's, run as a child process, in both dial directions.

import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { createTlsIdentity, derFromPem, serverNameFor, sha256 } from "../../transport/cert.ts";
import { defaultTransport } from "../../transport/default.ts";
import type { CloseInfo } from "../../transport/types.ts";
import { assert, assertEquals } from "../assert.ts";
import { runtime, test } from "../harness.ts";
import {
  CLOSE_CODE,
  CLOSE_REASON,
  echoFirstStream,
  exchange,
  FLOOD_LIMIT_BYTES,
  floodUntilStalled,
  messages,
  type PeerTarget,
  readAfterResume,
} from "./peer.ts";

/** Bound on one exchange, child start-up included (a cold Deno start type-checks nothing but still takes a while). */
const DEADLINE_MS = 40_000;

const root = fileURLToPath(new URL("../../", import.meta.url));
const peerScript = fileURLToPath(new URL("./peer.ts", import.meta.url));
const other = runtime === "deno" ? "bun" : "deno";

/** The other runtime's command line for peer.ts: the repository's pinned binary, else the one on PATH. */
function otherCommand(args: string[]): [string, string[]] {
  const pinned = `${root}node_modules/.bin/${other}`;
  const bin = existsSync(pinned) ? pinned : other;
  return other === "deno"
    ? [bin, ["run", "--allow-all", "--unstable-net", "--no-prompt", peerScript, ...args]]
    : [bin, [peerScript, ...args]];
}

/** A child peer whose stdout is read line by line; stderr is kept for failure messages. */
class Child {
  readonly #process: ChildProcess;
  readonly #lines: string[] = [];
  readonly #waiting: (() => void)[] = [];
  readonly exited: Promise<number | null>;
  #stderr = "";
  #buffer = "";

  constructor(args: string[]) {
    const [cmd, cmdArgs] = otherCommand(args);
    this.#process = spawn(cmd, cmdArgs, {
      cwd: root,
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, NO_COLOR: "1", DENO_NO_UPDATE_CHECK: "1" },
    });
    this.#process.stdout?.setEncoding("utf8");
    this.#process.stderr?.setEncoding("utf8");
    this.#process.stdout?.on("data", (text: string) => {
      this.#buffer += text;
      for (let nl = this.#buffer.indexOf("\n"); nl >= 0; nl = this.#buffer.indexOf("\n")) {
        this.#lines.push(this.#buffer.slice(0, nl));
        this.#buffer = this.#buffer.slice(nl + 1);
      }
      for (const wake of this.#waiting.splice(0)) wake();
    });
    this.#process.stderr?.on("data", (text: string) => {
      this.#stderr = (this.#stderr + text).slice(-4000);
    });
    this.exited = new Promise((resolve) => {
      this.#process.once("close", (code) => {
        for (const wake of this.#waiting.splice(0)) wake();
        resolve(code);
      });
      this.#process.once("error", (err) => {
        this.#stderr += `\nspawn failed: ${err.message}`;
        resolve(null);
      });
    });
  }

  /** The next JSON line the child prints; rejects if it exits first or prints an error. */
  async next<T>(): Promise<T> {
    let exited = false;
    void this.exited.then(() => (exited = true));
    for (;;) {
      const line = this.#lines.shift();
      if (line !== undefined) {
        const value = JSON.parse(line) as T | { error: string };
        if (typeof value === "object" && value !== null && "error" in value) {
          throw new Error(`${other} peer failed: ${value.error}\n${this.#stderr}`);
        }
        return value as T;
      }
      if (exited) throw new Error(`${other} peer exited early\n${this.#stderr}`);
      await new Promise<void>((wake) => this.#waiting.push(wake));
      await Promise.resolve();
    }
  }

  get stderr(): string {
    return this.#stderr;
  }

  kill(): void {
    if (this.#process.exitCode === null && this.#process.signalCode === null) {
      this.#process.kill("SIGKILL");
    }
  }
}

/** Runs `body` with a child started from `args`, bounded by DEADLINE_MS; the child never outlives it. */
async function withChild(args: string[], body: (child: Child) => Promise<void>): Promise<void> {
  const child = new Child(args);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(new Error(`Interop exchange timed out after ${DEADLINE_MS} ms\n${child.stderr}`)),
      DEADLINE_MS,
    );
  });
  try {
    await Promise.race([body(child), expired]);
    const code = await Promise.race([child.exited, expired]);
    assertEquals(code, 0, `${other} peer exit status\n${child.stderr}`);
  } finally {
    clearTimeout(timer);
    child.kill();
    await child.exited;
  }
}

async function localTransport() {
  const peerId = Array.from(
    crypto.getRandomValues(new Uint8Array(32)),
    (b) => b.toString(16).padStart(2, "0"),
  )
    .join("");
  const identity = await createTlsIdentity(serverNameFor(peerId));
  return { identity, transport: await (await defaultTransport())({ identity }) };
}

test(`${runtime} dials ${other} over raw QUIC and exchanges framed messages`, async () => {
  const { transport } = await localTransport();
  try {
    await withChild(["listen"], async (child) => {
      const peer = await child.next<PeerTarget>();
      const conn = await transport.dial({
        address: peer.address,
        certificateHash: await sha256(derFromPem(peer.certificatePem)),
        serverName: peer.serverName,
      });
      assertEquals(await exchange(conn), messages().length);
      conn.close(CLOSE_CODE, CLOSE_REASON);
      const report = await child.next<{ runtime: string; echoed: number; closed: CloseInfo }>();
      assertEquals(report.runtime, other);
      assertEquals(report.echoed, messages().length);
      assertEquals(report.closed, { code: CLOSE_CODE, reason: CLOSE_REASON, remote: true });
    });
  } finally {
    await transport.close();
  }
}, { timeout: DEADLINE_MS + 10_000 });

test(`${other} dials ${runtime} over raw QUIC and exchanges framed messages`, async () => {
  const { identity, transport } = await localTransport();
  try {
    const listener = await transport.listen({ host: "127.0.0.1", port: 0 });
    const target: PeerTarget = {
      address: listener.address,
      certificatePem: identity.certificatePem,
      serverName: identity.serverName,
    };
    await withChild(["dial", JSON.stringify(target)], async (child) => {
      const next = await Promise.race([
        listener.connections()[Symbol.asyncIterator]().next(),
        child.exited.then((code): never => {
          throw new Error(`${other} peer exited with ${code} before dialling\n${child.stderr}`);
        }),
      ]);
      assert(next.done !== true, "the listener ended before the peer dialled");
      const conn = next.value;
      await listener.close();
      assertEquals(await echoFirstStream(conn), messages().length);
      assertEquals(await conn.closed, { code: CLOSE_CODE, reason: CLOSE_REASON, remote: true });
      const report = await child.next<{ runtime: string; echoed: number }>();
      assertEquals(report, { runtime: other, echoed: messages().length });
    });
  } finally {
    await transport.close();
  }
}, { timeout: DEADLINE_MS + 10_000 });

// Bun's node:quic cannot push back from the reading side (it buffers what arrives), but its
// writer does wait for drain: against a Deno reader, whose flow control follows what is
// read, a Bun writer must stall. On Bun this process writes; on Deno it is the reader.
test("a Bun writer stalls against a paused Deno reader, then delivers everything", async () => {
  const { identity, transport } = await localTransport();
  try {
    if (runtime === "bun") {
      await withChild(["listen-paused"], async (child) => {
        const peer = await child.next<PeerTarget>();
        const conn = await transport.dial({
          address: peer.address,
          certificateHash: await sha256(derFromPem(peer.certificatePem)),
          serverName: peer.serverName,
        });
        const written = await floodUntilStalled(conn);
        assert(written < FLOOD_LIMIT_BYTES);
        assertEquals((await conn.closed).code, CLOSE_CODE);
        assertEquals(await child.next<{ runtime: string; received: number }>(), {
          runtime: "deno",
          received: written,
        });
      });
    } else {
      const listener = await transport.listen({ host: "127.0.0.1", port: 0 });
      const target: PeerTarget = {
        address: listener.address,
        certificatePem: identity.certificatePem,
        serverName: identity.serverName,
      };
      await withChild(["flood", JSON.stringify(target)], async (child) => {
        const next = await Promise.race([
          listener.connections()[Symbol.asyncIterator]().next(),
          child.exited.then((code): never => {
            throw new Error(`bun peer exited with ${code} before dialling\n${child.stderr}`);
          }),
        ]);
        assert(next.done !== true, "the listener ended before the peer dialled");
        const conn = next.value;
        await listener.close();
        const received = await readAfterResume(conn);
        conn.close(CLOSE_CODE, CLOSE_REASON);
        const report = await child.next<{ runtime: string; written: number }>();
        assertEquals(report, { runtime: "bun", written: received });
        assert(received < FLOOD_LIMIT_BYTES);
      });
    }
  } finally {
    await transport.close();
  }
}, { timeout: DEADLINE_MS + 10_000 });
