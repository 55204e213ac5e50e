// Runs the test suite under Node.js: builds the npm package and the tests
// (build-npm.mjs), then `node --test` on every compiled test file (tests/ and
// its folders, such as tests/unit/), against the package's own modules in
// ../npm. Given test files (tests/x.test.ts), it runs only their compiled
// forms, and leaves out the declarations' check.
//
//   node tools/test-node.mjs          (or: npm run test:node --prefix tools)
//   node tools/test-node.mjs tests/unit/codec.test.ts

import { spawnSync } from "node:child_process";
import {
  cpSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";

const tools = dirname(fileURLToPath(import.meta.url));
const root = join(tools, "..");

/**
 * Test files that cannot apply to Node.js, by name, each with the reason it is
 * skipped (printed). None today: every test runs on Node.js too.
 */
const notOnNode = {};

/** The compiled form, in npm/tests, of a test file given as tests/….test.ts. */
function compiled(file) {
  const path = relative(root, resolve(root, file));
  if (!/^tests\/.*\.test\.ts$/.test(path.split(sep).join("/"))) {
    console.error(`Not a test file under tests/: ${file}`);
    process.exit(2);
  }
  return join("npm", path.replace(/\.ts$/, ".js"));
}
const given = process.argv.slice(2).map(compiled);

const build = spawnSync(process.execPath, [join(tools, "build-npm.mjs")], {
  stdio: "inherit",
});
if (build.status !== 0) process.exit(build.status ?? 1);

// The declarations as a Node.js project sees them: a program importing the
// package by name type-checks with @types/node and lib es2022 (no DOM
// library, no skipLibCheck). Part of the whole suite only.
if (given.length === 0) {
  const project = mkdtempSync(join(tmpdir(), "tcp-framework-types-"));
  try {
    mkdirSync(join(project, "node_modules", "@qtk"), { recursive: true });
    symlinkSync(
      join(root, "npm"),
      join(project, "node_modules", "@qtk", "tcp-framework"),
    );
    symlinkSync(
      join(tools, "node_modules", "@types"),
      join(project, "node_modules", "@types"),
    );
    writeFileSync(join(project, "package.json"), '{ "type": "module" }\n');
    cpSync(
      join(root, "tests", "fixtures", "node_user_app.ts"),
      join(project, "app.ts"),
    );
    const check = spawnSync(process.execPath, [
      join(tools, "node_modules", "typescript", "bin", "tsc"),
      "--ignoreConfig",
      "--noEmit",
      "--strict",
      "--target",
      "es2022",
      "--lib",
      "es2022",
      "--types",
      "node",
      "--module",
      "nodenext",
      "--moduleResolution",
      "nodenext",
      "app.ts",
    ], { cwd: project, stdio: "inherit" });
    if (check.status !== 0) {
      console.error("The package's declarations failed a Node.js project");
      process.exit(check.status ?? 1);
    }
    console.log(
      "Declarations type-check in a Node.js project (lib es2022, @types/node)",
    );
  } finally {
    rmSync(project, { recursive: true, force: true });
  }
}

// Every folder of tests/ (tests/unit/ among them), by pattern, not by list.
const tests = given.length > 0
  ? given.map((file) => relative(join("npm", "tests"), file))
  : readdirSync(join(root, "npm", "tests"), { recursive: true })
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
