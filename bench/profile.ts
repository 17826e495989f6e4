// Summarizes the CPU profiles benchmark nodes write (MOSAIK_BENCH_PROFILE): self time per function and per file, for each profile.
//
// Usage: deno run -A bench/profile.ts <dir or .cpuprofile>... [--top N]
//   (or: bun bench/profile.ts …)
// Reads Chrome DevTools `.cpuprofile` files (Bun's --cpu-prof, Deno's
// node:inspector profiles from bench/node.ts) and prints, for each, the
// functions and the files with the most self time, as a share of the samples.

import { readdirSync, readFileSync, statSync } from "node:fs";
import { basename, join } from "node:path";
import process from "node:process";

/** The part of a `.cpuprofile` this reads. */
interface CpuProfile {
  readonly nodes: readonly {
    readonly id: number;
    readonly callFrame: {
      readonly functionName: string;
      readonly url: string;
      readonly lineNumber: number;
    };
  }[];
  readonly samples?: readonly number[];
}

/** Self samples per function and per file, as shares of all samples. */
export function summarize(profile: CpuProfile): {
  total: number;
  functions: [string, number][];
  files: [string, number][];
} {
  const byId = new Map(profile.nodes.map((n) => [n.id, n.callFrame]));
  const functions = new Map<string, number>();
  const files = new Map<string, number>();
  const samples = profile.samples ?? [];
  for (const id of samples) {
    const frame = byId.get(id);
    if (frame === undefined) continue;
    const file = frame.url === "" ? "(native)" : frame.url.replace(/^.*\/(?=[^/]+\/[^/]+$)/, "");
    const fn = `${frame.functionName || "(anonymous)"} ${file}:${frame.lineNumber + 1}`;
    functions.set(fn, (functions.get(fn) ?? 0) + 1);
    files.set(file, (files.get(file) ?? 0) + 1);
  }
  const sorted = (m: Map<string, number>) =>
    [...m].sort((a, b) => b[1] - a[1]).map(([k, v]): [string, number] => [k, v / samples.length]);
  return { total: samples.length, functions: sorted(functions), files: sorted(files) };
}

function main(args: readonly string[]): number {
  const topAt = args.indexOf("--top");
  const top = topAt >= 0 ? Number(args[topAt + 1]) : 25;
  const paths = args.filter((a, i) => a !== "--top" && i !== topAt + 1);
  if (paths.length === 0 || !Number.isInteger(top) || top < 1) {
    console.error("usage: bench/profile.ts <dir or .cpuprofile>... [--top N]");
    return 2;
  }
  const files = paths.flatMap((p) =>
    statSync(p).isDirectory()
      ? readdirSync(p).filter((f) => f.endsWith(".cpuprofile")).map((f) => join(p, f))
      : [p]
  );
  for (const file of files) {
    const s = summarize(JSON.parse(readFileSync(file, "utf8")) as CpuProfile);
    const pct = (v: number) => `${(v * 100).toFixed(1).padStart(5)} %`;
    console.log(`\n## ${basename(file)}: ${s.total} samples\n\nby file:`);
    for (const [k, v] of s.files.slice(0, 12)) console.log(`${pct(v)}  ${k}`);
    console.log("\nby function:");
    for (const [k, v] of s.functions.slice(0, top)) console.log(`${pct(v)}  ${k}`);
  }
  return 0;
}

if (import.meta.main) process.exit(main(process.argv.slice(2)));
