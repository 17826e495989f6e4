// The reference for the cluster benchmark: etcd 3.4 on this machine (3 members on loopback), written to over gRPC with the same loads as bench/run.ts.
//
// Usage: npm run bench:etcd -- [--quick] [--out DIR] [--no-write]
//   (or: deno run -A bench/etcd.ts …)
// Needs the `etcd` binary on PATH (Debian: `apt-get install etcd-server`);
// without it the run says so and exits 1. Reports; never fails on numbers.
//
// Three etcd members with their default settings (WAL fdatasync before
// every acknowledged write, heartbeat 100 ms, election 1 s) run on loopback
// with data in a temporary directory. The load goes to the leader, as in
// bench/run.ts and etcd's own benchmark tool: `Put`s of a 32-byte value
// on 1 000 keys by 1, 16, 64 and 256 concurrent callers, and `Txn`s of 100
// `Put`s (etcd's counterpart of executeMany ×100) by 1 and 16 callers —
// commands committed per second and the latency of one call. The client is
// a small gRPC client over node:http2 in this process, one HTTP/2 connection
// per caller up to 64 (callers share them beyond that).

import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import http2 from "node:http2";
import net from "node:net";
import os from "node:os";
import { join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { KEYS, summary, VALUE } from "./common.ts";
import { fmtMs, fmtRate, machine } from "./run.ts";

const root = fileURLToPath(new URL("../", import.meta.url));

/** Bound on the members starting and agreeing on a leader. */
const START_MS = 30_000;
/** Bound on one call. */
const CALL_MS = 10_000;
/** Most HTTP/2 connections the callers use. */
const MAX_CONNS = 64;

// ---------------------------------------------------------------- gRPC by hand

function varint(n: number): number[] {
  const out: number[] = [];
  while (n > 0x7f) {
    out.push((n & 0x7f) | 0x80);
    n >>>= 7;
  }
  out.push(n);
  return out;
}

/** A length-delimited protobuf field. */
function field(number: number, bytes: Uint8Array | number[]): number[] {
  return [...varint((number << 3) | 2), ...varint(bytes.length), ...bytes];
}

const text = new TextEncoder();
const value = text.encode(VALUE);

/** `PutRequest { key = 1; value = 2 }`. */
function putRequest(key: number): number[] {
  return [...field(1, text.encode(`k${key % KEYS}`)), ...field(2, value)];
}

/** `TxnRequest { success = 2 }` of `count` `RequestOp { request_put = 2 }` on distinct keys. */
function txnRequest(first: number, count: number): number[] {
  const ops: number[] = [];
  for (let j = 0; j < count; j++) ops.push(...field(2, field(2, putRequest(first + j))));
  return ops;
}

/** A gRPC message frame: not compressed, 4-byte length, message. */
function grpcFrame(message: number[]): Uint8Array {
  const frame = new Uint8Array(5 + message.length);
  new DataView(frame.buffer).setUint32(1, message.length);
  frame.set(message, 5);
  return frame;
}

/** One unary call; rejects unless grpc-status is 0. */
function unary(session: http2.ClientHttp2Session, path: string, body: Uint8Array): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = session.request({
      ":method": "POST",
      ":path": path,
      "content-type": "application/grpc",
      te: "trailers",
    });
    let status: string | undefined;
    let message = "";
    const timer = setTimeout(() => req.close(http2.constants.NGHTTP2_CANCEL), CALL_MS);
    const check = (headers: http2.IncomingHttpHeaders) => {
      if (headers["grpc-status"] !== undefined) status = String(headers["grpc-status"]);
      if (headers["grpc-message"] !== undefined) message = String(headers["grpc-message"]);
    };
    req.on("response", check);
    req.on("trailers", check);
    req.on("data", () => {});
    req.on("close", () => {
      clearTimeout(timer);
      if (status === "0") resolve();
      else reject(new Error(`${path}: grpc-status ${status ?? "none"} ${message}`));
    });
    req.on("error", () => {});
    req.end(body);
  });
}

// ---------------------------------------------------------------- the cluster

async function freePort(): Promise<number> {
  return await new Promise((resolve, reject) => {
    const server = net.createServer();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const port = (server.address() as net.AddressInfo).port;
      server.close(() => resolve(port));
    });
  });
}

interface Member {
  readonly name: string;
  readonly client: string;
  readonly proc: ChildProcess;
  stderr: string;
}

async function startCluster(dir: string): Promise<Member[]> {
  const specs = [];
  for (const name of ["e1", "e2", "e3"]) {
    specs.push({ name, client: await freePort(), peer: await freePort() });
  }
  const initial = specs.map((s) => `${s.name}=http://127.0.0.1:${s.peer}`).join(",");
  return specs.map((s) => {
    const client = `http://127.0.0.1:${s.client}`;
    const proc = spawn("etcd", [
      `--name=${s.name}`,
      `--data-dir=${join(dir, s.name)}`,
      `--listen-client-urls=${client}`,
      `--advertise-client-urls=${client}`,
      `--listen-peer-urls=http://127.0.0.1:${s.peer}`,
      `--initial-advertise-peer-urls=http://127.0.0.1:${s.peer}`,
      `--initial-cluster=${initial}`,
      "--initial-cluster-state=new",
      "--log-level=error",
    ], { stdio: ["ignore", "ignore", "pipe"] });
    const member: Member = { name: s.name, client, proc, stderr: "" };
    proc.stderr!.on("data", (d: Uint8Array) => {
      member.stderr = (member.stderr + new TextDecoder().decode(d)).slice(-4000);
    });
    return member;
  });
}

/** The member that leads, once all three answer; throws after START_MS. */
async function leaderOf(members: readonly Member[]): Promise<Member> {
  const deadline = Date.now() + START_MS;
  while (Date.now() < deadline) {
    try {
      const status = await Promise.all(members.map(async (m) => {
        const r = await fetch(`${m.client}/v3/maintenance/status`, {
          method: "POST",
          body: "{}",
          signal: AbortSignal.timeout(2_000),
        });
        return await r.json() as { header: { member_id: string }; leader: string };
      }));
      const leader = members.find((_, i) =>
        status[i]!.leader !== "0" && status[i]!.leader === status[i]!.header.member_id
      );
      if (leader !== undefined) return leader;
    } catch {
      // not up yet
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(
    `etcd did not form a cluster within ${START_MS} ms\n${
      members.map((m) => `${m.name}: ${m.stderr}`).join("\n")
    }`,
  );
}

// ---------------------------------------------------------------- the load

/** One measured load. */
export interface EtcdRow {
  readonly case: string;
  readonly callers: number;
  readonly batch: number;
  readonly connections: number;
  readonly rate: number;
  /** Latencies of one call (ms): n, p50, p90, p99, max, mean. */
  readonly latency: Record<string, number | null>;
  readonly errors: number;
}

async function load(
  leader: Member,
  callers: number,
  batch: number,
  warmupMs: number,
  durationMs: number,
): Promise<EtcdRow> {
  const connections = Math.min(callers, MAX_CONNS);
  const sessions = Array.from({ length: connections }, () => http2.connect(leader.client));
  try {
    const start = performance.now() + warmupMs;
    const end = start + durationMs;
    const latencies: number[] = [];
    let committed = 0;
    let errors = 0;
    let next = 0;
    const loop = async (k: number) => {
      const session = sessions[k % connections]!;
      while (performance.now() < end) {
        const first = next;
        next += batch;
        const body = batch === 1
          ? grpcFrame(putRequest(first))
          : grpcFrame(txnRequest(first % KEYS, batch));
        const t0 = performance.now();
        try {
          await unary(session, batch === 1 ? "/etcdserverpb.KV/Put" : "/etcdserverpb.KV/Txn", body);
        } catch {
          errors++;
          continue;
        }
        const t1 = performance.now();
        if (t0 >= start && t1 <= end) {
          committed += batch;
          latencies.push(t1 - t0);
        }
      }
    };
    await Promise.all(Array.from({ length: callers }, (_, k) => loop(k)));
    return {
      case: batch === 1
        ? `Put, ${callers} caller${callers === 1 ? "" : "s"}`
        : `Txn of ${batch} Puts, ${callers} caller${callers === 1 ? "" : "s"}`,
      callers,
      batch,
      connections,
      rate: committed / (durationMs / 1000),
      latency: summary(latencies),
      errors,
    };
  } finally {
    for (const s of sessions) s.close();
  }
}

// ---------------------------------------------------------------- main

export async function runEtcd(args: readonly string[]): Promise<number> {
  const { values } = parseArgs({
    args: [...args],
    options: {
      quick: { type: "boolean" },
      out: { type: "string" },
      "no-write": { type: "boolean" },
    },
  });
  const quick = values.quick === true;
  const version = spawnSync("etcd", ["--version"], { encoding: "utf8" });
  if (version.error !== undefined || version.status !== 0) {
    console.error(
      "bench:etcd: the etcd binary is not on PATH (Debian: apt-get install etcd-server)",
    );
    return 1;
  }
  const etcdVersion = /etcd Version: (\S+)/.exec(version.stdout)?.[1] ?? "unknown";
  const [warmupMs, durationMs] = quick ? [300, 1_500] : [1_000, 5_000];
  const dir = mkdtempSync(join(os.tmpdir(), "mosaik-etcd-"));
  const members = await startCluster(dir);
  const rows: EtcdRow[] = [];
  try {
    const leader = await leaderOf(members);
    console.log(`etcd ${etcdVersion}: 3 members on loopback, leader ${leader.name}`);
    const cases: [number, number][] = [[1, 1], [16, 1], [64, 1], [256, 1], [1, 100], [16, 100]];
    for (const [callers, batch] of cases) {
      const row = await load(leader, callers, batch, warmupMs, durationMs);
      rows.push(row);
      console.log(
        `  ${row.case}: ${fmtRate(row.rate)}, p50 ${fmtMs(row.latency.p50)}, p99 ${
          fmtMs(row.latency.p99)
        }, errors ${row.errors}`,
      );
    }
  } finally {
    for (const m of members) m.proc.kill("SIGKILL");
    await new Promise((r) => setTimeout(r, 300));
    rmSync(dir, { recursive: true, force: true });
  }
  const host = machine();
  const date = new Date().toISOString().slice(0, 10);
  const md = [
    `## etcd ${etcdVersion} on this machine, ${quick ? "quick" : "full"} mode, ${date}`,
    "",
    `Machine: ${host.cpu}, ${host.cores} cores, ${host.memoryGiB} GiB, ${host.os}.`,
    "3 members on loopback with default settings; gRPC to the leader from one client process " +
    `(one HTTP/2 connection per caller, at most ${MAX_CONNS}); ${durationMs / 1000} s per case ` +
    `after ${warmupMs / 1000} s of warm-up; 32-byte values on ${KEYS} keys.`,
    "",
    "| case | commands/s | p50 | p99 |",
    "| --- | ---: | ---: | ---: |",
    ...rows.map((r) =>
      `| ${r.case} | ${fmtRate(r.rate)} | ${fmtMs(r.latency.p50)} | ${fmtMs(r.latency.p99)} |`
    ),
    "",
  ].join("\n");
  console.log("\n" + md);
  const out = values["no-write"] ? undefined : values.out ?? join(root, "bench", "results");
  if (out !== undefined && !quick) {
    mkdirSync(out, { recursive: true });
    const base = join(out, `etcd-${date}`);
    writeFileSync(
      `${base}.json`,
      JSON.stringify(
        { benchmark: "etcd reference", etcd: etcdVersion, machine: host, rows },
        null,
        2,
      ) +
        "\n",
    );
    writeFileSync(`${base}.md`, md);
    spawnSync(join(root, "node_modules", ".bin", "deno"), [
      "fmt",
      "--quiet",
      `${base}.json`,
      `${base}.md`,
    ], {
      cwd: root,
      stdio: "ignore",
    });
    console.log(`wrote ${base}.json and ${base}.md`);
  }
  return rows.some((r) => r.errors > 0 && r.rate === 0) ? 1 : 0;
}

if (import.meta.main) {
  process.exit(await runEtcd(process.argv.slice(2).filter((a, i) => i > 0 || a !== "--")));
}
