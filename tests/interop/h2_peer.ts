// One side of the Deno ↔ Bun webtransport_h2 interop test: run as a child process (`listen` or `dial`), or imported for its two roles.
//
//   deno run -A tests/interop/h2_peer.ts listen
//   bun tests/interop/h2_peer.ts dial <port> <certificate base64> <server name> <messages>
//
// It reports on stdout, one JSON object per line: `{"listening": …}` once it
// listens, `{"verified": …}` once its messages came back intact, and
// `{"closed": CloseInfo}` when the connection ends; then it exits 0. Any
// failure exits 1 with the error on stderr.

import { Buffer } from "node:buffer";
import process from "node:process";
import { webTransportH2 } from "../../transport/webtransport_h2.ts";
import { createTlsIdentity, serverNameFor, sha256 } from "../../transport/cert.ts";
import { FramedStream } from "../../transport/framed.ts";
import { CloseCode, type CloseInfo, type Connection } from "../../transport/types.ts";

/** The runtime this module runs on. */
export const runtime: "deno" | "bun" = "Deno" in globalThis ? "deno" : "bun";

/** The code the dialing side closes with once its messages came back. */
export const DONE_CODE: number = CloseCode.Departure;

/** The reason the dialing side closes with: names its runtime. */
export function doneReason(from: string): string {
  return `interop done by ${from} ✓`;
}

/** A message of the exchange and its answer. */
interface Message {
  seq: number;
  from: string;
  body: Uint8Array;
}

/** Streams the dialer opens, each carrying its share of the messages. */
const STREAMS = 2;

/** Body of message `seq`: a few bytes, or now and then 256 KiB to cross many HTTP/2 frames. */
function body(seq: number): Uint8Array {
  const size = seq % 16 === 5 ? 256 * 1024 : 1 + (seq * 37) % 200;
  const out = new Uint8Array(size);
  for (let i = 0; i < size; i++) out[i] = (seq * 131 + i * 7) & 0xff;
  return out;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.byteLength === b.byteLength && a.every((v, i) => v === b[i]);
}

/**
 * The accepting role: answers every message on every stream the peer opens
 * with the same body, stamped with this runtime, until the peer closes.
 *
 * @returns how the connection closed
 */
export async function serve(conn: Connection): Promise<CloseInfo> {
  const handlers: Promise<void>[] = [];
  for await (const stream of conn.incomingStreams()) {
    handlers.push((async () => {
      await using framed = new FramedStream<Message>(stream);
      for await (const m of framed) await framed.send({ seq: m.seq, from: runtime, body: m.body });
    })());
  }
  const closed = await conn.closed;
  // A stream may fail with the connection; the answer to the exchange is in `closed`.
  await Promise.allSettled(handlers);
  return closed;
}

/**
 * The dialing role: sends `count` messages over {@link STREAMS} streams and
 * checks that each comes back intact, in order.
 *
 * @returns the runtime that answered
 * @throws {Error} when an answer is missing, out of order or altered
 */
export async function exchange(conn: Connection, count: number): Promise<string> {
  const peers = new Set<string>();
  await Promise.all(Array.from({ length: STREAMS }, async (_, lane) => {
    await using framed = new FramedStream<Message>(await conn.openStream());
    const seqs = Array.from({ length: count }, (_, i) => i).filter((i) => i % STREAMS === lane);
    const sending = (async () => {
      for (const seq of seqs) await framed.send({ seq, from: runtime, body: body(seq) });
      await framed.close();
    })();
    let next = 0;
    for await (const answer of framed) {
      const seq = seqs[next++];
      if (seq === undefined || answer.seq !== seq || !sameBytes(answer.body, body(seq))) {
        throw new Error(`Answer ${next - 1} on stream ${lane} is wrong (seq ${answer.seq})`);
      }
      peers.add(answer.from);
    }
    await sending;
    if (next !== seqs.length) {
      throw new Error(`Stream ${lane}: ${next} of ${seqs.length} answers arrived`);
    }
  }));
  if (peers.size !== 1) throw new Error(`Answers came from ${[...peers].join(", ")}`);
  return [...peers][0]!;
}

/** The listening details a `dial` run needs, as printed by a `listen` run. */
export interface Listening {
  port: number;
  certificate: string;
  serverName: string;
}

function report(event: Record<string, unknown>): void {
  console.log(JSON.stringify(event));
}

function randomPeerIdHex(): string {
  return Array.from(
    crypto.getRandomValues(new Uint8Array(32)),
    (b) => b.toString(16).padStart(2, "0"),
  )
    .join("");
}

async function main(args: string[]): Promise<void> {
  const identity = await createTlsIdentity(serverNameFor(randomPeerIdHex()));
  const transport = await webTransportH2()({ identity });
  try {
    if (args[0] === "listen") {
      const listener = await transport.listen({ host: "127.0.0.1", port: 0 });
      const listening: Listening = {
        port: listener.address.port,
        certificate: Buffer.from(identity.certificateDer).toString("base64"),
        serverName: identity.serverName,
      };
      report({ listening });
      const next = await listener.connections()[Symbol.asyncIterator]().next();
      if (next.done === true) throw new Error("The listener ended before a connection came");
      await listener.close();
      report({ closed: await serve(next.value) });
    } else if (args[0] === "dial" && args.length === 5) {
      const [, port, certificate, serverName, count] = args as [
        string,
        string,
        string,
        string,
        string,
      ];
      const conn = await transport.dial({
        address: { host: "127.0.0.1", port: Number(port) },
        certificateHash: await sha256(new Uint8Array(Buffer.from(certificate, "base64"))),
        serverName,
      });
      const peer = await exchange(conn, Number(count));
      report({ verified: { count: Number(count), peer } });
      conn.close(DONE_CODE, doneReason(runtime));
      report({ closed: await conn.closed });
    } else {
      throw new TypeError(
        "Usage: h2_peer.ts listen | dial <port> <certificate base64> <server name> <messages>",
      );
    }
  } finally {
    await transport.close();
  }
}

if (import.meta.main) {
  // A peer that hangs must not outlive the test that spawned it.
  const deadline = setTimeout(() => {
    console.error("h2_peer: gave up after 60 s");
    process.exit(2);
  }, 60_000);
  try {
    await main(process.argv.slice(2));
    clearTimeout(deadline);
  } catch (err) {
    console.error(err);
    process.exit(1);
  }
}
