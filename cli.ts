// The mosaik command line: `keygen` prints a group key; `node` runs a member with the key-value machine, driven by commands on stdin.
//
// Run it with `npx mosaik …` (after `npm install`), `deno run -A --unstable-net --unstable-kv cli.ts …`
// or `bun cli.ts …`. Exit codes: 0 done, 1 the node failed (network, store), 2 bad usage.

import { existsSync, readFileSync, writeFileSync } from "node:fs";
import process from "node:process";
import { createInterface } from "node:readline";
import { parseArgs } from "node:util";
import { Consistency, GroupKey, Network, PeerAddr } from "./mod.ts";
import { fromHex, toHex } from "./lib/primitives/bytes.ts";
import { KeyValue, type KvCommand } from "./lib/machine/kv.ts";
import { InMemoryLogStore } from "./storage/memory.ts";
import { openDefaultStore } from "./storage/default.ts";
import { runDemo } from "./examples/demo/demo.ts";

/** Exit status for bad usage (unknown command or flag, bad key, bad address). */
export const EXIT_USAGE = 2;
/** Exit status when the node itself failed (network, store). */
export const EXIT_FAILED = 1;

const HELP = `mosaik — consensus groups for Deno and Bun

Usage:
  mosaik keygen
      Print a new group key (64 hex characters). Share it with every member.
  mosaik node --key <hex> [--bootstrap <addr>]... [--listen <host:port>] [--store <path>]
      Run a member of the group with a replicated key-value map. Prints
      "addr <address>" once listening (give it to other nodes as --bootstrap),
      then reads commands on stdin, one per line:
        set <key> <value>    replicate a write; answers "ok <index>"
        del <key>            replicate a delete; answers "ok <index>"
        get <key> [--strong] read locally (or linearizably with --strong);
                             answers "value <v>" or "nil"
        status               "role=… leader=… term=… committed=… bonds=… keys=…"
        leave                leave the group gracefully and exit 0
      A failed command answers "error <message>" and the node keeps running.
      --store keeps the log on disk (Deno KV on Deno, SQLite on Bun) and the
      node's secret key beside it (<path>.key), so a restarted node is the
      same member. Without --store the node forgets everything when it exits.
  mosaik demo [--nodes N] [--runtime deno|bun|mixed] [...]
      Run the demo: a group of node processes on loopback, a workload, the
      leader killed and restarted, a final state check (mosaik demo --help).
  mosaik --help

Exit codes: 0 done, 1 the node failed, 2 bad usage.`;

/** A usage error: printed with a hint, exit status 2. */
class UsageError extends Error {
  override name = "UsageError";
}

function parseNodeArgs(args: string[]) {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      strict: true,
      allowPositionals: false,
      options: {
        key: { type: "string" },
        bootstrap: { type: "string", multiple: true },
        listen: { type: "string" },
        store: { type: "string" },
      },
    });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const v = parsed.values;
  if (v.key === undefined) throw new UsageError("Missing --key (make one with `mosaik keygen`)");
  let key: GroupKey;
  try {
    key = GroupKey.parse(v.key);
  } catch (err) {
    throw new UsageError(`Invalid --key: ${(err as Error).message}`);
  }
  const bootstrap = (v.bootstrap ?? []).map((a) => {
    try {
      return PeerAddr.parse(a);
    } catch (err) {
      throw new UsageError(`Invalid --bootstrap address: ${(err as Error).message}`);
    }
  });
  return { key, bootstrap, listen: v.listen ?? "127.0.0.1:0", store: v.store };
}

/** The node's secret key, kept in `<store>.key` so a restarted node is the same member. */
function secretFor(store: string): Uint8Array {
  const file = `${store}.key`;
  if (existsSync(file)) return fromHex(readFileSync(file, "utf8").trim(), 32);
  const secret = crypto.getRandomValues(new Uint8Array(32));
  writeFileSync(file, toHex(secret) + "\n", { mode: 0o600 });
  return secret;
}

async function runNode(args: string[]): Promise<number> {
  const opts = parseNodeArgs(args);
  let builder = Network.builder("mosaik-cli");
  try {
    builder = builder.withListenAddress(opts.listen);
  } catch (err) {
    throw new UsageError(`Invalid --listen: ${(err as Error).message}`);
  }
  if (opts.bootstrap.length > 0) builder = builder.withBootstrap(...opts.bootstrap);
  if (opts.store !== undefined) builder = builder.withSecretKey(secretFor(opts.store));
  const store = opts.store === undefined
    ? new InMemoryLogStore<KvCommand>()
    : await openDefaultStore<KvCommand>(opts.store);
  let network: Network;
  try {
    network = await builder.build();
  } catch (err) {
    await store.close?.();
    throw err;
  }
  const kv = new KeyValue();
  const group = network.groups().withKey(opts.key).withStateMachine(kv).withLogStorage(store)
    .join();
  console.log(`addr ${network.local().addr()}`);

  const answer = async (line: string): Promise<string | undefined> => {
    const [cmd, ...rest] = line.trim().split(/\s+/);
    switch (cmd) {
      case "set": {
        const [key, ...value] = rest;
        if (key === undefined || value.length === 0) return "error usage: set <key> <value>";
        return `ok ${await group.execute({ op: "set", key, value: value.join(" ") })}`;
      }
      case "del": {
        if (rest.length !== 1) return "error usage: del <key>";
        return `ok ${await group.execute({ op: "delete", key: rest[0]! })}`;
      }
      case "get": {
        const strong = rest.includes("--strong");
        const keys = rest.filter((r) => r !== "--strong");
        if (keys.length !== 1) return "error usage: get <key> [--strong]";
        const r = await group.query(keys[0]!, strong ? Consistency.Strong : Consistency.Weak);
        return r.result === null ? "nil" : `value ${r.result}`;
      }
      case "status": {
        const leader = group.leader();
        const role = group.isLeader() ? "leader" : leader !== undefined ? "follower" : "none";
        return `role=${role} leader=${leader?.toHex() ?? "-"} term=${group.logPosition().term} ` +
          `committed=${group.committed()} bonds=${group.bonds().size} keys=${kv.size}`;
      }
      case "help":
        return "commands: set <key> <value> | del <key> | get <key> [--strong] | status | leave";
      case "leave":
        return undefined;
      default:
        return `error unknown command ${JSON.stringify(cmd)} (try help)`;
    }
  };

  return await new Promise<number>((resolve) => {
    let leaving = false;
    const leave = async () => {
      if (leaving) return;
      leaving = true;
      lines.close();
      try {
        await group.leave();
        await network.close();
        await store.close?.();
        resolve(0);
      } catch (err) {
        console.error(`mosaik: leaving failed: ${(err as Error).message}`);
        resolve(EXIT_FAILED);
      }
    };
    const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
    // Commands answer in the order they were given.
    let queue = Promise.resolve();
    lines.on("line", (line) => {
      if (line.trim() === "") return;
      queue = queue.then(async () => {
        if (leaving) return;
        try {
          const out = await answer(line);
          if (out === undefined) {
            console.log("bye");
            await leave();
          } else console.log(out);
        } catch (err) {
          console.log(`error ${(err as Error).message}`);
        }
      });
    });
    lines.on("close", () => void queue.then(leave));
  });
}

/** Runs the command line `args`; resolves with the exit status. */
export async function main(args: string[]): Promise<number> {
  const [command, ...rest] = args;
  try {
    switch (command) {
      case undefined:
      case "--help":
      case "-h":
      case "help":
        console.log(HELP);
        return command === undefined ? EXIT_USAGE : 0;
      case "keygen":
        if (rest.length > 0) throw new UsageError("keygen takes no arguments");
        console.log(GroupKey.generate().toHex());
        return 0;
      case "node":
        return await runNode(rest);
      case "demo":
        return await runDemo(rest);
      default:
        throw new UsageError(`Unknown command ${JSON.stringify(command)}`);
    }
  } catch (err) {
    if (err instanceof UsageError) {
      console.error(`mosaik: ${err.message}\nRun \`mosaik --help\` for usage.`);
      return EXIT_USAGE;
    }
    console.error(`mosaik: ${err instanceof Error ? err.message : String(err)}`);
    return EXIT_FAILED;
  }
}

if (import.meta.main) {
  process.exit(await main(process.argv.slice(2).filter((a, i) => i > 0 || a !== "--")));
}
