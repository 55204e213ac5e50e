// Test files under Deno, Bun and Node.js, each with CI's flags (the commands
// of tools/_steps.mjs, which tools/test-all.mjs runs for the whole suite);
// every runtime runs even after a failure, and a summary closes.
//
//   npm run test:file --prefix tools -- tests/unit/codec.test.ts
//   node tools/test-file.mjs tests/x.test.ts tests/y.test.ts

import { existsSync } from "node:fs";
import { relative, resolve } from "node:path";
import { root, runSteps, testSteps } from "./_steps.mjs";

// Paths as the caller wrote them: npm runs a script in tools/, but says in
// INIT_CWD where it was called from. The steps take them from the root.
const cwd = process.env.INIT_CWD ?? process.cwd();
const paths = process.argv.slice(2).map((file) => resolve(cwd, file));
const missing = paths.filter((path) => !existsSync(path));
if (paths.length === 0 || missing.length > 0) {
  console.error(
    paths.length === 0
      ? "Usage: node tools/test-file.mjs tests/x.test.ts [...]"
      : `No such file: ${missing.join(", ")}`,
  );
  process.exit(2);
}
const files = paths.map((path) => relative(root, path));
process.exit(await runSteps(testSteps(files)));
