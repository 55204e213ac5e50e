// Runs the test suite under Node.js: builds the npm package and the tests
// (build-npm.mjs), then `node --test` on every compiled test file, against
// the package's own modules in ../npm.
//
//   node tools/test-node.mjs          (or: npm run test:node --prefix tools)

import { spawnSync } from "node:child_process";
import { readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const tools = dirname(fileURLToPath(import.meta.url));
const root = join(tools, "..");

/**
 * Test files that cannot apply to Node.js, by name, each with the reason it is
 * skipped (printed). None today: every test runs on Node.js too.
 */
const notOnNode = {};

const build = spawnSync(process.execPath, [join(tools, "build-npm.mjs")], {
  stdio: "inherit",
});
if (build.status !== 0) process.exit(build.status ?? 1);

const tests = readdirSync(join(root, "npm", "tests"))
  .filter((name) => name.endsWith(".test.js"))
  .sort();
const files = [];
for (const name of tests) {
  if (name in notOnNode) {
    console.log(`Skipping tests/${name} on Node.js: ${notOnNode[name]}`);
  } else {
    files.push(join("npm", "tests", name));
  }
}

const run = spawnSync(
  process.execPath,
  ["--test", "--test-reporter=spec", ...files],
  { cwd: root, stdio: "inherit" },
);
process.exit(run.status ?? 1);
