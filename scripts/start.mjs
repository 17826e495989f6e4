#!/usr/bin/env node
// `npm start` (also `npm run demo`, `bun run demo`, `deno task demo`): installs what is
// missing, then runs the demo (cli.ts demo) on the pinned Deno, passing flags and exit status through.

import { runOnDeno } from "./pinned.mjs";

runOnDeno("mosaik demo", ["cli.ts", "demo"]);
