// One test API for both runtimes: the same test files run under `deno test` and `bun test`.
//
// On Deno every test keeps the op, resource and exit sanitizers on, so a test
// that leaks a timer, a socket or a pending promise fails. Deno has no per-test
// timeout, so the harness adds one; Bun gets the same value through bun:test.

/** What a test may set. */
export interface TestOptions {
  /** Fail the test if it has not finished after this many milliseconds (default 30 000). */
  timeout?: number;
}

/** A test body. */
export type TestFn = () => void | Promise<void>;

type BunTest = (name: string, fn: TestFn, timeout?: number) => void;

interface DenoLike {
  test(def: {
    name: string;
    fn: () => Promise<void>;
    sanitizeOps: boolean;
    sanitizeResources: boolean;
    sanitizeExit: boolean;
  }): void;
}

const DEFAULT_TIMEOUT_MS = 30_000;

const deno = (globalThis as { Deno?: DenoLike }).Deno;
// A specifier in a variable keeps `deno check` from trying to resolve the bun: scheme.
const bunModule = "bun:test";
const bunTest: BunTest | undefined = deno === undefined
  ? ((await import(bunModule)) as { test: BunTest }).test
  : undefined;

/** Name of the runtime the suite runs on, for messages. */
export const runtime: "deno" | "bun" = deno === undefined ? "bun" : "deno";

/** Registers a test on the current runtime. */
export function test(name: string, fn: TestFn, options: TestOptions = {}): void {
  const timeout = options.timeout ?? DEFAULT_TIMEOUT_MS;
  if (deno !== undefined) {
    deno.test({
      name,
      fn: () => withTimeout(name, fn, timeout),
      sanitizeOps: true,
      sanitizeResources: true,
      sanitizeExit: true,
    });
  } else if (bunTest !== undefined) {
    bunTest(name, fn, timeout);
  } else {
    throw new Error("Cannot register test: neither Deno nor bun:test is available");
  }
}

async function withTimeout(name: string, fn: TestFn, ms: number): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`Test "${name}" timed out after ${ms} ms`)), ms);
  });
  try {
    await Promise.race([Promise.resolve().then(fn), expired]);
  } finally {
    clearTimeout(timer);
  }
}
