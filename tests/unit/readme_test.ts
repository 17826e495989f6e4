// README.md stays true: its TypeScript blocks type-check, and the scripts, tasks, bin, paths and consensus defaults it names exist.
//
// Every ```ts / ```typescript block is written to a file of its own and checked as a module of its
// own with `./node_modules/.bin/deno check --config deno.json`, as a reader who copies it into a
// file would run it: so each block imports what it uses, from "@mosaik/mosaik" (deno.json's name,
// which Deno resolves to mod.ts through its "exports") or a subpath such as
// "@mosaik/mosaik/storage/bun_sqlite". Bun-only code type-checks too: the Bun store declares the
// part of bun:sqlite it uses, so no Bun type package is needed.
//
// The files go to a fresh directory under the OS temp dir, not under .tmp/: deno.json excludes
// .tmp/, and `deno check` skips an excluded file with a warning and exit status 0 — a check that
// could never fail. Checking outside the repo with an explicit --config resolves the same names.
//
// A block that must not be checked is fenced as ```ts ignore <why>: the reason is required, and at
// most MAX_IGNORED such blocks are allowed. ```js / ```tsx blocks are refused (nothing would check
// them): write TypeScript.

import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { CONSENSUS_DEFAULTS, ConsensusConfig, DEFAULT_DEAD_MEMBER_TIMEOUT } from "../../mod.ts";
import { assert, assertEquals } from "../assert.ts";
import { test } from "../harness.ts";

const root = fileURLToPath(new URL("../../", import.meta.url));
const deno = join(root, "node_modules", ".bin", "deno");

/** Blocks fenced `ts ignore <reason>`; raise deliberately, each one is code nobody checks. */
const MAX_IGNORED = 2;

/** A fenced code block of a Markdown file. */
interface CodeBlock {
  /** 1-based line of the opening fence. */
  readonly line: number;
  /** The first word of the info string, lower case ("" when none). */
  readonly lang: string;
  /** The rest of the info string. */
  readonly attrs: string;
  /** The content, with the fence's indentation removed. */
  readonly code: string;
}

/** The fenced code blocks of `markdown` (``` or ~~~, indented ones inside lists included). */
export function codeBlocks(markdown: string): CodeBlock[] {
  const lines = markdown.split("\n");
  const blocks: CodeBlock[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^(\s*)(`{3,}|~{3,})\s*(.*)$/.exec(lines[i]!);
    if (open === null) continue;
    const [, indent = "", fence = "", info = ""] = open;
    const [lang = "", ...rest] = info.trim().split(/\s+/);
    const body: string[] = [];
    let j = i + 1;
    for (; j < lines.length; j++) {
      const close = /^\s*(`{3,}|~{3,})\s*$/.exec(lines[j]!);
      if (close !== null && close[1]![0] === fence[0] && close[1]!.length >= fence.length) break;
      const l = lines[j]!;
      body.push(l.startsWith(indent) ? l.slice(indent.length) : l.trimStart());
    }
    assert(j < lines.length, `README.md:${i + 1}: code block is never closed`);
    blocks.push({
      line: i + 1,
      lang: lang.toLowerCase(),
      attrs: rest.join(" "),
      code: body.join("\n") + "\n",
    });
    i = j;
  }
  return blocks;
}

/** Runs `cmd args` in the repo root; resolves with the exit code and the merged output. */
function run(cmd: string, args: string[]): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      cwd: root,
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, NO_COLOR: "1", DENO_NO_UPDATE_CHECK: "1" },
    });
    let output = "";
    child.stdout.setEncoding("utf8").on("data", (t: string) => (output += t));
    child.stderr.setEncoding("utf8").on("data", (t: string) => (output += t));
    child.once("error", reject);
    child.once("close", (code) => resolve({ code, output }));
  });
}

function readme(): string {
  return readFileSync(join(root, "README.md"), "utf8");
}

test("readme: the block parser finds fences, languages, attributes and list indentation", () => {
  const md = [
    "text",
    "```ts",
    "const a = 1;",
    "```",
    "1. item",
    "",
    "   ```sh",
    "   npm test",
    "   ```",
    "~~~ts ignore shows a compile error on purpose",
    "```",
    "~~~",
  ].join("\n");
  const blocks = codeBlocks(md);
  assertEquals(blocks.map((b) => [b.line, b.lang, b.attrs, b.code]), [
    [2, "ts", "", "const a = 1;\n"],
    [7, "sh", "", "npm test\n"],
    [10, "ts", "ignore shows a compile error on purpose", "```\n"],
  ]);
});

test("readme: every TypeScript block type-checks with deno check", async () => {
  assert(existsSync(deno), `${deno} is missing: run npm install`);
  const blocks = codeBlocks(readme());
  const refused = blocks.filter((b) => ["js", "javascript", "jsx", "tsx", "mjs"].includes(b.lang));
  assertEquals(
    refused.map((b) => `README.md:${b.line} (${b.lang})`),
    [],
    "blocks in a language nothing checks; use ts",
  );
  const typescript = blocks.filter((b) => b.lang === "ts" || b.lang === "typescript");
  const ignored = typescript.filter((b) => /^ignore\b/.test(b.attrs));
  for (const b of ignored) {
    assert(
      b.attrs.replace(/^ignore\b/, "").trim() !== "",
      `README.md:${b.line}: a \`ts ignore\` block must say why it is not checked`,
    );
  }
  assert(ignored.length <= MAX_IGNORED, `${ignored.length} ignored blocks, at most ${MAX_IGNORED}`);
  const checked = typescript.filter((b) => !ignored.includes(b));
  assert(checked.length > 0, "README.md has no TypeScript block to check");

  const dir = mkdtempSync(join(tmpdir(), "mosaik-readme-"));
  try {
    const files = checked.map((b) => {
      const file = join(dir, `readme_line_${b.line}.ts`);
      writeFileSync(file, b.code);
      return file;
    });
    const { code, output } = await run(deno, [
      "check",
      "--config",
      join(root, "deno.json"),
      "--no-lock",
      ...files,
    ]);
    // Deno names each root module it checks; a missing name means it skipped the file.
    const skipped = files.map((f) => basename(f)).filter((name) => !output.includes(name));
    assertEquals(skipped, [], `deno check skipped blocks:\n${output}`);
    // Point errors at README lines: block file line n is README line (fence line + n).
    const located = output.replace(
      /(?:file:\/\/)?[^\s()]*readme_line_(\d+)\.ts(?::(\d+))?/g,
      (_, fence: string, at?: string) =>
        at === undefined ? `README.md:${fence}` : `README.md:${Number(fence) + Number(at)}`,
    );
    assertEquals(code, 0, `README.md code blocks fail to type-check:\n${located}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}, { timeout: 180_000 });

test("readme: every npm script, deno task, bin and repository path it names exists", () => {
  const text = readme();
  const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as {
    scripts?: Record<string, string>;
    bin?: Record<string, string>;
  };
  const denoJson = JSON.parse(readFileSync(join(root, "deno.json"), "utf8")) as {
    tasks?: Record<string, string>;
  };
  const scripts = new Set(Object.keys(pkg.scripts ?? {}));
  const tasks = new Set(Object.keys(denoJson.tasks ?? {}));
  const missing: string[] = [];
  const named = (re: RegExp) => [...text.matchAll(re)].map((m) => m[1]!);

  for (const s of named(/\bnpm (start|test)\b/g)) if (!scripts.has(s)) missing.push(`npm ${s}`);
  for (const s of named(/\bnpm run ([\w:.-]+)/g)) if (!scripts.has(s)) missing.push(`npm run ${s}`);
  // `bun run <script>`; `bun run some/file.ts` runs a file instead.
  for (const s of named(/\bbun run ([\w:.\/-]+)/g)) {
    if (!s.includes("/") && !/\.[cm]?[jt]s$/.test(s) && !scripts.has(s)) {
      missing.push(`bun run ${s}`);
    }
  }
  for (const t of named(/\bdeno task ([\w:.-]+)/g)) {
    if (!tasks.has(t)) missing.push(`deno task ${t}`);
  }
  for (const b of named(/\bnpx (mosaik)\b/g)) {
    if (pkg.bin?.[b] === undefined) missing.push(`bin ${b}`);
  }
  // Paths into the repository, e.g. examples/leader_election.ts or tests/conformance/storage.ts.
  const paths = named(
    /(?<![\w./@-])((?:bench|examples|lib|scripts|storage|tests|transport)\/[\w./-]*)/g,
  );
  for (const p of paths.map((p) => p.replace(/\.+$/, ""))) {
    if (!existsSync(join(root, p))) missing.push(`path ${p}`);
  }
  assertEquals([...new Set(missing)], [], "README.md names things that do not exist");
  assert(text.includes("npm start") && text.includes("npm test"), "the quick start names both");
});

test("readme: the ConsensusConfig table has every parameter with its default and builder method", () => {
  const rows = readme().split("\n").filter((l) => l.startsWith("|"));
  const defaults: [string, number][] = [
    ...Object.entries(CONSENSUS_DEFAULTS),
    ["deadMemberTimeout", DEFAULT_DEAD_MEMBER_TIMEOUT],
    ["leadershipMultiplier", 1],
  ];
  const builder = ConsensusConfig.builder() as unknown as Record<string, unknown>;
  for (const [name, value] of defaults) {
    const row = rows.find((r) => r.startsWith(`| \`${name}\``));
    assert(row !== undefined, `README.md has no ConsensusConfig row for ${name}`);
    const cells = row.split("|").map((c) => c.trim());
    const method = /`(\w+)/.exec(cells[2] ?? "")?.[1] ?? "";
    assertEquals(typeof builder[method], "function", `${name}: builder method ${method}`);
    assertEquals(cells[3]?.replace(/ ms$/, ""), String(value), `${name}: default`);
  }
});
