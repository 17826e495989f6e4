// A small peer for the Deno↔Bun interop test: listens or dials over the runtime's raw-QUIC adapter and exchanges framed messages.
//
// Usage (either runtime; Deno needs -A --unstable-net):
//   peer.ts listen            prints one JSON line {address, certificatePem, serverName},
//                             echoes every message of the first stream the dialer opens,
//                             then prints {runtime, echoed, closed} once the dialer closes.
//   peer.ts dial '<json>'     dials {address, certificatePem, serverName}, sends MESSAGES
//                             (messages() below), checks the echoes, closes with CLOSE_CODE
//                             and CLOSE_REASON, and prints {runtime, echoed}.
//   peer.ts listen-paused     like listen, but leaves the first stream unread until a second
//                             stream says resume (readAfterResume), then prints {runtime, received}.
//   peer.ts flood '<json>'    dials, writes until backpressure stops it (floodUntilStalled),
//                             then closes and prints {runtime, written}.
// A failure prints {error} and exits with status 1.

import process from "node:process";
import { createTlsIdentity, derFromPem, serverNameFor, sha256 } from "../../transport/cert.ts";
import { defaultTransport } from "../../transport/default.ts";
import { FramedStream } from "../../transport/framed.ts";
import { pattern } from "../bytes.ts";
import type { Connection, SocketAddress, Transport } from "../../transport/types.ts";

/** What a listening peer prints first, and a dialing peer takes on its command line. */
export interface PeerTarget {
  readonly address: SocketAddress;
  readonly certificatePem: string;
  readonly serverName: string;
}

/** A message of the exchange: small ones, then a few big binary ones. */
export type PeerMessage = { readonly i: number; readonly text: string } | Uint8Array;

/** The close code the dialer ends the exchange with (CloseCode.Departure). */
export const CLOSE_CODE = 101;
/** The close reason the dialer ends the exchange with; not ASCII, to check its encoding. */
export const CLOSE_REASON = "interop done ✓";

/** The messages a dialer sends, in order; the listener echoes each one back. */
export function messages(): PeerMessage[] {
  const out: PeerMessage[] = [];
  for (let i = 0; i < 2000; i++) out.push({ i, text: "x".repeat(i % 97) });
  for (let i = 0; i < 3; i++) out.push(pattern(i, 1024 * 1024));
  return out;
}

/** Deep equality for PeerMessage values (both sides decode CBOR, so shapes match exactly). */
export function sameMessage(a: unknown, b: PeerMessage): boolean {
  if (b instanceof Uint8Array) {
    if (!(a instanceof Uint8Array) || a.byteLength !== b.byteLength) return false;
    for (let i = 0; i < a.byteLength; i++) if (a[i] !== b[i]) return false;
    return true;
  }
  const m = a as { i?: unknown; text?: unknown } | null;
  return typeof m === "object" && m !== null && m.i === b.i && m.text === b.text;
}

/** Name of the runtime this runs on. */
export const runtime = (globalThis as { Deno?: unknown }).Deno === undefined ? "bun" : "deno";

async function makeTransport(): Promise<
  { transport: Transport; target: (a: SocketAddress) => PeerTarget }
> {
  const peerId = Array.from(
    crypto.getRandomValues(new Uint8Array(32)),
    (b) => b.toString(16).padStart(2, "0"),
  )
    .join("");
  const identity = await createTlsIdentity(serverNameFor(peerId));
  const transport = await (await defaultTransport())({ identity });
  return {
    transport,
    target: (address) => ({
      address,
      certificatePem: identity.certificatePem,
      serverName: identity.serverName,
    }),
  };
}

/** Echoes every message of the first stream the peer opens on `conn`; returns how many. */
export async function echoFirstStream(conn: Connection): Promise<number> {
  const next = await conn.incomingStreams()[Symbol.asyncIterator]().next();
  if (next.done === true) throw new Error("Connection closed before the dialer opened a stream");
  await using framed = new FramedStream<PeerMessage>(next.value);
  let echoed = 0;
  for await (const message of framed) {
    await framed.send(message);
    echoed++;
  }
  await framed.close();
  return echoed;
}

/** Sends messages() on a new stream of `conn` and checks every echo; returns how many came back. */
export async function exchange(conn: Connection): Promise<number> {
  const sent = messages();
  await using framed = new FramedStream<PeerMessage>(await conn.openStream());
  const sending = (async () => {
    for (const message of sent) await framed.send(message);
    await framed.close();
  })();
  let echoed = 0;
  for await (const message of framed) {
    const expected = sent[echoed];
    if (expected === undefined || !sameMessage(message, expected)) {
      throw new Error(`Echo ${echoed} differs from the message sent`);
    }
    echoed++;
  }
  await sending;
  if (echoed !== sent.length) throw new Error(`Got ${echoed} echoes of ${sent.length} messages`);
  return echoed;
}

async function listen(): Promise<void> {
  const { transport, target } = await makeTransport();
  try {
    const listener = await transport.listen({ host: "127.0.0.1", port: 0 });
    console.log(JSON.stringify(target(listener.address)));
    const next = await listener.connections()[Symbol.asyncIterator]().next();
    if (next.done === true) throw new Error("Listener ended before a dialer connected");
    await listener.close();
    const echoed = await echoFirstStream(next.value);
    const closed = await next.value.closed;
    console.log(JSON.stringify({ runtime, echoed, closed }));
  } finally {
    await transport.close();
  }
}

/** How far a writer may get ahead of a paused reader before it counts as unbounded. */
export const FLOOD_LIMIT_BYTES = 64 * 1024 * 1024;

/**
 * Writes 64 KiB chunks on a new stream of `conn` while the peer reads nothing
 * (see readAfterResume), until the writer stops making progress; then tells
 * the peer to resume on a second stream, finishes, and returns the bytes
 * written. Throws if the writer got FLOOD_LIMIT_BYTES ahead (no backpressure).
 */
export async function floodUntilStalled(conn: Connection, deadlineMs = 20_000): Promise<number> {
  const stream = await conn.openStream();
  const writer = stream.writable.getWriter();
  const chunk = new Uint8Array(64 * 1024).fill(7);
  let accepted = 0;
  let stop = false;
  const writing = (async () => {
    while (!stop && accepted < FLOOD_LIMIT_BYTES) {
      await writer.ready;
      if (stop) break;
      writer.write(chunk).catch(() => {}); // failures surface through `ready`
      accepted += chunk.byteLength;
    }
  })();
  // Stalled: no progress over 20 polls in a row (the wait is for a condition, bounded).
  const end = performance.now() + deadlineMs;
  let last = -1;
  let still = 0;
  while (accepted < FLOOD_LIMIT_BYTES && still < 20) {
    if (performance.now() > end) throw new Error("Timed out waiting for the writer to stall");
    await new Promise((resolve) => setTimeout(resolve, 5));
    still = accepted === last ? still + 1 : 0;
    last = accepted;
  }
  if (accepted >= FLOOD_LIMIT_BYTES) {
    throw new Error(`The writer got ${accepted} bytes ahead of a paused reader`);
  }
  if (writer.desiredSize === null || writer.desiredSize > 0) {
    throw new Error(`The stalled writer is not blocked (desiredSize ${writer.desiredSize})`);
  }
  stop = true;
  const control = new FramedStream<{ resume: true }>(await conn.openStream());
  await control.send({ resume: true });
  await control.close();
  await writing;
  await writer.close();
  return accepted;
}

/** The reading side of floodUntilStalled: returns how many bytes the first stream carried. */
export async function readAfterResume(conn: Connection): Promise<number> {
  const streams = conn.incomingStreams()[Symbol.asyncIterator]();
  const data = await streams.next();
  if (data.done === true) throw new Error("Connection closed before the writer opened a stream");
  const control = await streams.next();
  if (control.done === true) throw new Error("Connection closed before the writer said resume");
  await using framed = new FramedStream<{ resume: true }>(control.value);
  const resume = await framed.receive();
  if (resume?.resume !== true) throw new Error("Expected a resume message");
  const reader = data.value.readable.getReader();
  let received = 0;
  for (;;) {
    const next = await reader.read();
    if (next.done) return received;
    received += next.value.byteLength;
  }
}

async function listenPaused(): Promise<void> {
  const { transport, target } = await makeTransport();
  try {
    const listener = await transport.listen({ host: "127.0.0.1", port: 0 });
    console.log(JSON.stringify(target(listener.address)));
    const next = await listener.connections()[Symbol.asyncIterator]().next();
    if (next.done === true) throw new Error("Listener ended before a dialer connected");
    await listener.close();
    const received = await readAfterResume(next.value);
    next.value.close(CLOSE_CODE, CLOSE_REASON);
    console.log(JSON.stringify({ runtime, received }));
  } finally {
    await transport.close();
  }
}

async function connectTo(transport: Transport, json: string): Promise<Connection> {
  const peer = JSON.parse(json) as PeerTarget;
  return await transport.dial({
    address: peer.address,
    certificateHash: await sha256(derFromPem(peer.certificatePem)),
    serverName: peer.serverName,
  });
}

async function flood(json: string): Promise<void> {
  const { transport } = await makeTransport();
  try {
    const conn = await connectTo(transport, json);
    const written = await floodUntilStalled(conn);
    // The reader closes once it has read everything.
    const closed = await conn.closed;
    if (closed.code !== CLOSE_CODE) throw new Error(`Unexpected close: ${JSON.stringify(closed)}`);
    console.log(JSON.stringify({ runtime, written }));
  } finally {
    await transport.close();
  }
}

async function dial(json: string): Promise<void> {
  const { transport } = await makeTransport();
  try {
    const conn = await connectTo(transport, json);
    const echoed = await exchange(conn);
    conn.close(CLOSE_CODE, CLOSE_REASON);
    console.log(JSON.stringify({ runtime, echoed }));
  } finally {
    await transport.close();
  }
}

if (import.meta.main) {
  const [mode, arg] = process.argv.slice(2).filter((a) => a !== "--");
  try {
    if (mode === "listen") await listen();
    else if (mode === "listen-paused") await listenPaused();
    else if (mode === "dial" && arg !== undefined) await dial(arg);
    else if (mode === "flood" && arg !== undefined) await flood(arg);
    else throw new Error("Usage: peer.ts listen | listen-paused | dial '<json>' | flood '<json>'");
    process.exit(0);
  } catch (err) {
    console.log(JSON.stringify({ error: err instanceof Error ? err.message : String(err) }));
    process.exit(1);
  }
}
