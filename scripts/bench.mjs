#!/usr/bin/env node
// `npm run bench`: installs what is missing, then runs the cluster benchmark (bench/run.ts) on the
// pinned Deno, passing flags and exit status through. The node processes it starts run on the
// runtime(s) named by --runtime (the pinned Deno and/or Bun).

import { runOnDeno } from "./pinned.mjs";

runOnDeno("mosaik bench", ["bench/run.ts"]);
