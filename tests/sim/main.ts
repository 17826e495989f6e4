// Command line of the cluster simulator: `deno task sim --seeds N [--nodes K[,K…]] [--seed S] [--ticks T] [--quiet]`.

import { DEFAULT_TICKS, type FaultLevel, type RunResult, runSeed } from "./run.ts";

const USAGE = `Usage: deno task sim [options]   (or: bun run tests/sim/main.ts [options])

  --seeds N        run seeds 1..N (default 100)
  --from F         first seed of the range (default 1)
  --seed S         run the single seed S (replay)
  --nodes K[,K…]   cluster sizes, e.g. 3 or 3,5,7 (default 3)
  --ticks T        ticks of the fault phase (default ${DEFAULT_TICKS})
  --faults L       none | mixed | storm (default mixed)
  --trace          print faults, membership and leader changes (with --seed)
  --trace-steps    also print every step (with --seed; very verbose)
  --quiet          print only failures and the summary
  --help           this text`;

interface Args {
  seeds: number[];
  nodes: number[];
  ticks: number;
  faults: FaultLevel;
  trace: boolean;
  traceSteps: boolean;
  quiet: boolean;
}

/** Parses the command line; throws a TypeError with a message for bad input. */
export function parseArgs(argv: readonly string[]): Args | "help" {
  let count = 100;
  let from = 1;
  let single: number | undefined;
  let nodes = [3];
  let ticks = DEFAULT_TICKS;
  let faults: FaultLevel = "mixed";
  let trace = false;
  let traceSteps = false;
  let quiet = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const [flag, inline] = a.includes("=")
      ? [a.slice(0, a.indexOf("=")), a.slice(a.indexOf("=") + 1)]
      : [a, undefined];
    const value = (): string => {
      const v = inline ?? argv[++i];
      if (v === undefined) throw new TypeError(`Missing value for ${flag}`);
      return v;
    };
    const int = (min: number): number => {
      const v = value();
      const n = Number(v);
      if (!Number.isSafeInteger(n) || n < min) {
        throw new TypeError(`${flag} needs an integer ≥ ${min}, got ${v}`);
      }
      return n;
    };
    switch (flag) {
      case "--seeds":
        count = int(1);
        break;
      case "--from":
        from = int(0);
        break;
      case "--seed":
        single = int(0);
        break;
      case "--nodes":
        nodes = value().split(",").map((s) => {
          const n = Number(s);
          if (!Number.isSafeInteger(n) || n < 1 || n > 9) {
            throw new TypeError(`--nodes needs sizes 1..9, got ${s}`);
          }
          return n;
        });
        break;
      case "--ticks":
        ticks = int(1);
        break;
      case "--faults": {
        const v = value();
        if (v !== "none" && v !== "mixed" && v !== "storm") {
          throw new TypeError(`--faults needs none, mixed or storm`);
        }
        faults = v;
        break;
      }
      case "--trace":
        trace = true;
        break;
      case "--trace-steps":
        trace = true;
        traceSteps = true;
        break;
      case "--quiet":
        quiet = true;
        break;
      case "--help":
      case "-h":
        return "help";
      default:
        throw new TypeError(`Unknown option ${a}`);
    }
  }
  const seeds = single !== undefined ? [single] : Array.from({ length: count }, (_, k) => from + k);
  return { seeds, nodes, ticks, faults, trace, traceSteps, quiet };
}

/** The command that replays one run exactly. */
export function replayCommand(r: RunResult, ticks: number, faults: FaultLevel): string {
  const extra = (ticks !== DEFAULT_TICKS ? ` --ticks ${ticks}` : "") +
    (faults !== "mixed" ? ` --faults ${faults}` : "");
  return `deno task sim --seed ${r.seed} --nodes ${r.nodes}${extra}`;
}

/** Runs the simulator; returns the exit code. */
export function main(argv: readonly string[], print: (line: string) => void): number {
  let args: Args | "help";
  try {
    args = parseArgs(argv);
  } catch (e) {
    print(e instanceof Error ? e.message : String(e));
    print(USAGE);
    return 2;
  }
  if (args === "help") {
    print(USAGE);
    return 0;
  }
  const a = args;
  let runs = 0;
  let violations = 0;
  let inconclusive = 0;
  const started = performance.now();
  for (const nodes of a.nodes) {
    const t0 = performance.now();
    let failed = 0;
    for (const seed of a.seeds) {
      const r = runSeed({
        seed,
        nodes,
        ticks: a.ticks,
        faults: a.faults,
        ...(a.trace ? { trace: print } : {}),
        ...(a.traceSteps ? { traceSteps: true } : {}),
      });
      runs++;
      if (r.linearizability === "unknown") {
        inconclusive++;
        if (!a.quiet) {
          print(`note seed=${seed} nodes=${nodes}: linearizability check ran out of budget`);
        }
      }
      if (r.violation !== undefined) {
        violations++;
        failed++;
        const [first, ...rest] = r.violation.message.split("\n");
        print(
          `FAIL seed=${seed} nodes=${nodes}: ${r.violation.kind}: ${first} (tick ${r.violation.tick}, step ${r.violation.step})`,
        );
        for (const line of rest) print(`    ${line}`);
        print(`  replay: ${replayCommand(r, a.ticks, a.faults)}`);
      } else if (a.seeds.length === 1 && !a.quiet) {
        print(`ok seed=${seed} nodes=${nodes} ${JSON.stringify(r.stats)}`);
      }
    }
    if (!a.quiet && a.seeds.length > 1) {
      const ms = performance.now() - t0;
      print(
        `nodes=${nodes}: ${a.seeds.length} seeds, ${failed} violations, ${
          (ms / 1000).toFixed(1)
        } s`,
      );
    }
  }
  if (!a.quiet) {
    print(
      `time: ${((performance.now() - started) / 1000).toFixed(1)} s${
        inconclusive > 0 ? `, ${inconclusive} inconclusive history checks` : ""
      }`,
    );
  }
  print(`seeds: ${runs}, violations: ${violations}`);
  return violations > 0 ? 1 : 0;
}

interface DenoGlobal {
  args: string[];
  exit(code: number): never;
}
interface ProcessGlobal {
  argv: string[];
  exit(code: number): never;
}

if (import.meta.main) {
  const g = globalThis as { Deno?: DenoGlobal; process?: ProcessGlobal };
  const argv = g.Deno?.args ?? g.process?.argv.slice(2) ?? [];
  const code = main(argv, (line) => console.log(line));
  if (g.Deno !== undefined) g.Deno.exit(code);
  else g.process?.exit(code);
}
