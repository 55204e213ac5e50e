// The whole suite, as CI runs it: the checks (fmt, lint, types, docs), then
// the tests under Deno, Bun and Node.js. Every step runs even when an earlier
// one failed, so one run shows every failure; the exit code is 1 if any step
// failed.
//
//   npm test --prefix tools        (from the repository root)

import { spawnSync } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");

const steps = [
  ["checks (fmt, lint, types, docs)", "deno", ["task", "check"]],
  ["tests under Deno", "deno", ["task", "test"]],
  ["tests under Bun", "bun", ["test", "--timeout", "30000", "./tests/"]],
  ["tests under Node.js", process.execPath, ["tools/test-node.mjs"]],
];

const results = [];
for (const [name, command, args] of steps) {
  const started = performance.now();
  console.log(`\n=== ${name}: ${command} ${args.join(" ")}\n`);
  const run = spawnSync(command, args, { cwd: root, stdio: "inherit" });
  const seconds = ((performance.now() - started) / 1000).toFixed(0);
  const failed = run.status !== 0;
  results.push({ name, failed, seconds, why: run.error?.message });
}

console.log("\n=== summary");
for (const { name, failed, seconds, why } of results) {
  console.log(
    `${failed ? "FAILED" : "passed"}  ${name} (${seconds} s)${
      why ? `: ${why}` : ""
    }`,
  );
}
process.exit(results.some((result) => result.failed) ? 1 : 0);
